/* SPDX-License-Identifier: MIT */
/* reap.c - reclaiming the segments of dead owners (invariants 4, 5, 7).
 *
 * For one namespace:
 *  1. List the namespace's objects in the shm directory (only if strays are
 *     wanted).  Listing before reading records means every object listed
 *     had its intent recorded before we read the records, so a segment
 *     being created right now is never mistaken for a stray.
 *  2. Find every owner id in the namespace directory (lock files, records,
 *     and temporary files of both; only names of the owner-file grammar)
 *     and ask the liveness judge (liveness.c) about each, holding nothing:
 *     ALIVE, DEAD or UNKNOWN with a cause.  Live and unknown owners'
 *     records are read for the names they claim.
 *  3. Dead owners one at a time, so the pass needs a fixed number of
 *     descriptors however many there are: take the lock (the judge again,
 *     now holding it), read the record strictly (a bad one is quarantined,
 *     never used as grounds to unlink; one we cannot read for our own
 *     reasons is kept), unlink each segment through shmk__seg_remove()
 *     (only the inode the owner created, only a regular file of ours, each
 *     name looked at right before; a segment only in "intent" is left
 *     alone if a live or unknown owner claims the name, their records read
 *     again for an object newer than our reading; an adopted name in
 *     "intent" is also left alone when its object is older than the
 *     intent; a record of an earlier
 *     boot on tmpfs unlinks nothing), then the record, temporary files and
 *     finally the lock file (still locked by us), and let go of the lock.
 *  4. Strays: listed objects no record names.  Reported; unlinked only on
 *     request, when older than the minimum age, ours, and when every
 *     record of the namespace could be read.
 */
#include "internal.h"

#include <bsd/string.h>
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


struct owner_ent {
	char id[SHMK_ID_MAX];
	bool self, loaded, load_tried, claimed;
	bool rec_bad;   /* a record exists that could not be read */
	int load_err;   /* reading it failed for our own reasons (ENOMEM...) */
	enum shmk_liveness state;
	int error;      /* with UNKNOWN: the cause's errno */
	char *cause;    /* with UNKNOWN and ALIVE: the judge's words (owned) */
	struct shmk_record rec;
};

struct stray {
	char name[NAME_MAX + 1];
	struct stat st;
	bool claimed;
};

struct reap {
	int nsfd, shmfd, rootfd;
	const char *ns;
	char ns_path[PATH_MAX];
	unsigned flags;
	struct shmk_reap_report *rep;
	struct shmk_ident me;
	uid_t uid;                /* geteuid(), once */
	struct shmk_table owners; /* id -> owner_ent */
	struct shmk_table claims; /* name -> owner_ent of a live owner */
	const char *ns_s;          /* r->ns, interned in the report          */
	const char *owner_src, *owner_s; /* last owner id and its copy       */
	struct timespec claims_at; /* when the live owners' records were read */
	bool volatile_shm; /* the shm dir is tmpfs: it held nothing before boot */
	bool claims_loaded;
	/* A live or unknown owner's record exists and could not be read: the
	 * names it claims are not known, so no intent is judged unclaimed. */
	bool claims_incomplete;
	bool records_unreadable; /* some record could not be read: no strays */
	struct shmk_table *strays;
	struct shmk_holders **holders; /* one scan per shmk_reap(); NULL: none */
	bool holders_failed;
	bool claimed;      /* the namespace's claim names this registry */
};

const char *shmk_reap_action_name(enum shmk_reap_action a)
{
	switch (a) {
	case SHMK_REAP_OWNER_DEAD: return "owner-dead";
	case SHMK_REAP_OWNER_ALIVE: return "owner-alive";
	case SHMK_REAP_SEGMENT_REAPED: return "reaped";
	case SHMK_REAP_SEGMENT_GONE: return "already-gone";
	case SHMK_REAP_SEGMENT_LIVE: return "live";
	case SHMK_REAP_STRAY_KEPT: return "stray-kept";
	case SHMK_REAP_STRAY_REMOVED: return "stray-removed";
	case SHMK_REAP_RECORD_QUARANTINED: return "quarantined";
	case SHMK_REAP_ERROR: return "error";
	case SHMK_REAP_OWNER_UNKNOWN: return "owner-unknown";
	case SHMK_REAP_SEGMENT_KEPT: return "kept";
	}
	return "unknown";
}

/* The report's strings and pid lists live in its arena (arena.c). */
static const char *intern(struct shmk_reap_report *rep, const char *str)
{
	const char *p = shmk__arena_dup(&rep->strings_, str, strlen(str) + 1, 1);

	return p ? p : "";
}

static const pid_t *intern_pids(struct shmk_reap_report *rep,
				const pid_t *pids, size_t n)
{
	return (const pid_t *)shmk__arena_dup(&rep->strings_, pids,
					      n * sizeof *pids,
					      _Alignof(pid_t));
}

/* Counts the action in the totals and, unless quiet, appends an item.
 * reason is copied unless it is a string literal (copy false). */
static struct shmk_reap_item *item_s(struct reap *r, enum shmk_reap_action a,
				     const char *owner, pid_t pid,
				     const char *object, uint64_t bytes, int err,
				     const char *reason)
{
	struct shmk_reap_report *rep = r->rep;
	struct shmk_reap_item *it;

	switch (a) {
	case SHMK_REAP_OWNER_DEAD: rep->owners_dead++; break;
	case SHMK_REAP_OWNER_ALIVE: rep->owners_alive++; break;
	case SHMK_REAP_SEGMENT_REAPED:
		rep->segments_reaped++;
		rep->bytes_reaped += bytes;
		break;
	case SHMK_REAP_SEGMENT_GONE: rep->segments_gone++; break;
	case SHMK_REAP_SEGMENT_LIVE:
		rep->segments_live++;
		rep->bytes_live += bytes;
		break;
	case SHMK_REAP_STRAY_KEPT:
		rep->strays_kept++;
		rep->bytes_strays += bytes;
		break;
	case SHMK_REAP_STRAY_REMOVED:
		rep->strays_removed++;
		rep->bytes_strays += bytes;
		break;
	case SHMK_REAP_RECORD_QUARANTINED: rep->quarantined++; break;
	case SHMK_REAP_ERROR: rep->errors++; break;
	case SHMK_REAP_OWNER_UNKNOWN: rep->owners_unknown++; break;
	case SHMK_REAP_SEGMENT_KEPT:
		rep->segments_kept++;
		rep->bytes_kept += bytes;
		break;
	}
	if ((r->flags & SHMK__REAP_QUIET) &&
	    (a == SHMK_REAP_SEGMENT_LIVE || a == SHMK_REAP_OWNER_ALIVE ||
	     a == SHMK_REAP_SEGMENT_REAPED || a == SHMK_REAP_SEGMENT_GONE))
		return NULL;
	/* Capacity is 8, then doubles whenever the count reaches a power of 2. */
	if (rep->n_items == 0 ||
	    (rep->n_items >= 8 && (rep->n_items & (rep->n_items - 1)) == 0)) {
		size_t cap = rep->n_items ? rep->n_items * 2 : 8;
		void *n = realloc(rep->items, cap * sizeof *it);
		if (!n)
			return NULL; /* totals stay right; detail is lost */
		rep->items = n;
	}
	if (!r->ns_s)
		r->ns_s = intern(rep, r->ns);
	owner = owner ? owner : "";
	if (owner != r->owner_src) { /* one copy per owner, not per item */
		r->owner_src = owner;
		r->owner_s = intern(rep, owner);
	}
	it = &rep->items[rep->n_items++];
	it->action = a;
	it->ns = r->ns_s;
	it->owner = r->owner_s;
	it->pid = pid;
	it->object = intern(rep, object ? object : "");
	it->bytes = bytes;
	it->error = err;
	it->reason = reason; /* a literal, or replaced by item() */
	it->n_holders = 0;
	it->holders = NULL;
	return it;
}

static void item(struct reap *r, enum shmk_reap_action a, const char *owner,
		 pid_t pid, const char *object, uint64_t bytes, int err,
		 const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* The one /proc pass of this shmk_reap() call, taken when first needed
 * (NULL: not wanted, or it failed; then nothing is known of holders). */
static struct shmk_holders *holders(struct reap *r)
{
	struct stat sd;

	if (!r->holders || r->holders_failed)
		return NULL;
	if (!*r->holders) {
		if (fstat(r->shmfd, &sd) < 0 ||
		    shmk__holders_scan(sd.st_dev, r->holders) < 0) {
			r->holders_failed = true;
			/* Strays were to be removed, and nothing can prove
			 * them unused now: unknown, never success. */
			if (r->flags & SHMK_REAP_STRAYS)
				item(r, SHMK_REAP_ERROR, "", 0, "/proc", 0,
				     -EIO, "cannot tell which processes hold "
				     "the objects, so no stray is removed: %s",
				     shmk_last_error());
			return NULL;
		}
	}
	return *r->holders;
}

/* Names in it the processes that hold inode ino.  For a segment just
 * unlinked (reaped), bytes count as freed only if nobody holds it. */
static size_t attach_holders(struct reap *r, struct shmk_reap_item *it,
			     uint64_t ino, bool reaped, uint64_t bytes)
{
	struct shmk_holders *h = ino ? holders(r) : NULL;
	pid_t pids[64];
	size_t n;

	if (!h || !(n = shmk__holders_of(h, (ino_t)ino, pids, 64, NULL)))
		return 0;
	if (reaped) {
		r->rep->bytes_reaped -= bytes;
		r->rep->bytes_held += bytes;
		r->rep->segments_held++;
	}
	if (it) {
		it->holders = intern_pids(r->rep, pids, n < 64 ? n : 64);
		it->n_holders = it->holders ? (n < 64 ? n : 64) : 0;
	}
	return n;
}

/* Inode of a live entry, or of whatever the name holds now (0: none). */
static uint64_t ino_of(struct reap *r, const struct shmk_rec_seg *s)
{
	struct stat st;

	if (s->state == SHMK_SEG_LIVE && s->ino)
		return s->ino;
	if (fstatat(r->shmfd, s->name + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (uint64_t)st.st_ino;
}

static void item(struct reap *r, enum shmk_reap_action a, const char *owner,
		 pid_t pid, const char *object, uint64_t bytes, int err,
		 const char *fmt, ...)
{
	struct shmk_reap_item *it = item_s(r, a, owner, pid, object, bytes, err, "");
	char reason[512];
	va_list ap;

	if (!it)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	it->reason = intern(r->rep, reason);
}

/* "p<pid>-<start>-<hex>" names this very process? */
static bool id_is_self(const struct reap *r, const char *id)
{
	int pid;
	unsigned long long st;

	return sscanf(id, "p%d-%llu-", &pid, &st) == 2 && pid == r->me.pid &&
	       st == r->me.start_time;
}

static struct owner_ent *owner_get(struct reap *r, const char *id)
{
	struct owner_ent *o = shmk__table_get(&r->owners, id);

	if (o)
		return o;
	if (!shmk__owner_id_ok(id) || !(o = calloc(1, sizeof *o)))
		return NULL;
	snprintf(o->id, sizeof o->id, "%s", id);
	if (shmk__table_put(&r->owners, o->id, o) < 0) {
		free(o);
		return NULL;
	}
	return o;
}

static int scan_owners(struct reap *r)
{
	int fd = openat(r->nsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return shmk__err(rc, "%s: cannot list: %s", r->ns_path,
				 strerror(-rc));
	}
	while ((d = readdir(dir))) {
		char id[SHMK_ID_MAX];
		enum shmk_ofile kind;

		/* Only names of the owner-file grammar (names.c) are ever an
		 * owner's: anything else here is never read or removed. */
		if (shmk__ofile_parse(d->d_name, id, &kind))
			(void)owner_get(r, id);
	}
	closedir(dir);
	return 0;
}

/* Reads the owner's record once.  A record that cannot be read is
 * quarantined when its owner is provably dead or absent (quarantine is
 * true), and otherwise reported and left where it is. */
static void load(struct reap *r, struct owner_ent *o, bool quarantine)
{
	char name[SHMK_ID_MAX + 16], why[256], qname[PATH_MAX];
	int rc;

	if (o->load_tried && !(quarantine && o->rec_bad))
		return;
	shmk__ofile_name(o->id, SHMK_OFILE_RECORD, name, sizeof name);
	if (!o->load_tried) {
		o->load_tried = true;
		rc = shmk__owner_record_load(r->nsfd, o->id, r->ns, r->uid,
					     &o->rec, why, sizeof why);
		if (rc == 0) {
			o->loaded = true;
			return;
		}
		shmk__record_free(&o->rec);
		if (rc == -ENOENT)
			return;
		if (rc != -EINVAL && rc != -EFBIG && rc != -ELOOP &&
		    rc != -EPERM && rc != -EPROTONOSUPPORT) {
			/* Our own trouble reading it (ENOMEM, EMFILE, EIO,
			 * EACCES...), not a fault of the record: never grounds
			 * to quarantine it or to act without it. */
			o->load_err = rc;
			r->records_unreadable = true;
			item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, rc,
			     "%s/%s: cannot read the record: %s; kept",
			     r->ns_path, name, why[0] ? why : strerror(-rc));
			return;
		}
		o->rec_bad = true;
		o->error = rc;
		free(o->cause);
		o->cause = strdup(why);
	}
	/* A live (or unknown) owner's file is never pulled from under it. */
	if (!quarantine) {
		r->records_unreadable = true;
		item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, o->error,
		     "%s/%s: unreadable record (%s)", r->ns_path, name,
		     o->cause ? o->cause : "");
		return;
	}
	o->rec_bad = false; /* reported once, here */
	if (r->flags & SHMK_REAP_DRY_RUN) {
		item(r, SHMK_REAP_RECORD_QUARANTINED, o->id, 0, name, 0, o->error,
		     "%s/%s: %s; would be moved to quarantine (dry run)",
		     r->ns_path, name, o->cause ? o->cause : "");
		return;
	}
	if (shmk__quarantine(r->nsfd, r->ns_path, name, qname, sizeof qname) < 0)
		item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, o->error,
		     "%s/%s: bad record (%s), and %s", r->ns_path, name,
		     o->cause ? o->cause : "", shmk_last_error());
	else
		item(r, SHMK_REAP_RECORD_QUARANTINED, o->id, 0, name, 0, o->error,
		     "%s/%s: %s; moved to %s", r->ns_path, name,
		     o->cause ? o->cause : "", qname);
}

static void set_cause(struct owner_ent *o, const struct shmk_judgement *j)
{
	free(o->cause);
	o->cause = strdup(j->cause);
	o->error = j->error;
	o->state = j->state;
}

/* Is any file of owner id left in the namespace directory?  An owner
 * whose last file went while we looked (closed, or reaped by another
 * reaper) is simply gone, not unknown. */
static bool owner_files_left(struct reap *r, const char *id)
{
	static const enum shmk_ofile kinds[] = {
		SHMK_OFILE_LOCK, SHMK_OFILE_RECORD, SHMK_OFILE_LOCK_TMP,
		SHMK_OFILE_RECORD_TMP};
	char name[SHMK_ID_MAX + 16];
	struct stat st;

	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		shmk__ofile_name(id, kinds[i], name, sizeof name);
		if (fstatat(r->nsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			return true;
	}
	return false;
}

/* With no lock file, only the record can tell.  Its owner is absent: a bad
 * record is quarantined, and reported once. */
static void judge_absent(struct reap *r, struct owner_ent *o,
			 struct shmk_judgement *j)
{
	load(r, o, true);
	if (!o->loaded && !owner_files_left(r, o->id)) {
		j->state = SHMK_LIVE_GONE;
		return;
	}
	shmk__owner_recheck(o->loaded ? &o->rec.owner : NULL, j);
}

/* Step 2: what the judge says, holding nothing. */
static void survey(struct reap *r, struct owner_ent *o)
{
	struct shmk_judgement j;

	shmk__owner_judge(r->nsfd, o->id, r->uid, NULL, false, &j);
	if (j.no_lock)
		judge_absent(r, o, &j);
	set_cause(o, &j);
}

/* Names claimed by live and unknown owners: an "intent" entry of a dead
 * owner naming one of them was never created by that owner.  reload: read
 * the live owners' records again (they may have recorded new intents). */
static void load_claims_ex(struct reap *r, bool reload)
{
	struct owner_ent *o;

	if (r->claims_loaded && !reload)
		return;
	if (reload) {
		shmk__table_free(&r->claims);
		if (shmk__table_init(&r->claims, 16) < 0)
			return;
		/* Owners born since the survey claim names too. */
		(void)scan_owners(r);
		for (size_t it = 0; (o = shmk__table_next(&r->owners, &it));)
			if (!o->state && !(o->self = id_is_self(r, o->id)))
				survey(r, o);
			else if (!o->state)
				o->state = SHMK_LIVE_ALIVE;
	}
	r->claims_loaded = true;
	r->claims_incomplete = false;
	clock_gettime(CLOCK_REALTIME_COARSE, &r->claims_at);
	for (size_t it = 0; (o = shmk__table_next(&r->owners, &it));) {
		if (o->state == SHMK_LIVE_DEAD || o->state == SHMK_LIVE_GONE)
			continue;
		if (reload && !o->self) {
			shmk__record_free(&o->rec);
			o->loaded = o->load_tried = o->rec_bad = false;
			o->load_err = 0;
		}
		load(r, o, false);
		if (!o->loaded) {
			r->claims_incomplete |= o->load_err || o->rec_bad;
			continue;
		}
		for (size_t i = 0; i < o->rec.n_segs; i++)
			shmk__table_put(&r->claims, o->rec.segs[i]->name, o);
	}
}

static void load_claims(struct reap *r) { load_claims_ex(r, false); }

/* Does a live (or unknown) owner claim name, which a dead owner's record
 * holds only as "intent"?  Live owners record their intent before they
 * create, so an object older than our reading of their records that none
 * of them claims is not theirs.  An object as new as that reading (same
 * coarse clock as the kernel's ctime) may be one whose intent we have not
 * read: read the records again.  1 claimed, 0 not, -errno cannot tell. */
static int intent_claimed(struct reap *r, const char *name, uint64_t *seen)
{
	struct stat st;

	*seen = 0;
	load_claims(r);
	if (shmk__table_get(&r->claims, name))
		return 1;
	/* What is judged is the object seen here, and only it is unlinked
	 * (*seen): one a live owner makes under the name after this look
	 * is another inode. */
	if (fstatat(r->shmfd, name + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	*seen = (uint64_t)st.st_ino;
	if (r->claims_incomplete)
		return -EIO;
	if (st.st_ctim.tv_sec < r->claims_at.tv_sec ||
	    (st.st_ctim.tv_sec == r->claims_at.tv_sec &&
	     st.st_ctim.tv_nsec < r->claims_at.tv_nsec))
		return 0;
	load_claims_ex(r, true);
	if (shmk__table_get(&r->claims, name))
		return 1;
	return r->claims_incomplete ? -EIO : 0;
}

struct seg_drop {
	struct reap *r;
	const char *name;
};

/* The reaper's "drop": the name no longer holds the dead owner's object,
 * so it is not a stray either.  The record itself goes once every entry
 * is settled (reap_owner). */
static int seg_settled(void *arg)
{
	struct seg_drop *d = arg;
	struct stray *s = d->r->strays ? shmk__table_get(d->r->strays, d->name)
				       : NULL;

	if (s)
		s->claimed = true;
	return 0;
}

static void reap_segment(struct reap *r, struct owner_ent *o,
			 const struct shmk_rec_seg *s)
{
	pid_t pid = o->rec.owner.pid;
	struct seg_drop d = {r, s->name};
	struct shmk_unlink_req q = {.shmfd = r->shmfd, .name = s->name,
				    .ino = s->state == SHMK_SEG_LIVE ? s->ino : 0,
				    .uid = r->uid, .fp = "shmk/reap/unlink"};
	struct stat st;

	/* Every name is looked at (fstatat) right before its unlink: a listing
	 * taken earlier in the pass could be stale by then. */
	if (s->state == SHMK_SEG_INTENT && s->kind != SHMK_KIND_SEGMENT &&
	    fstatat(r->shmfd, s->name + 1, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (int64_t)st.st_ctime < s->created) {
		/* An adopted name is not under the namespace's prefix: any
		 * process may have made the object, preloaded or not.  One
		 * whose last change is older than the intent was not made by
		 * this owner (it died between its intent and its call). */
		seg_settled(&d);
		item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name, s->size,
		       0, "never created by this owner: the object is older "
			  "than its intent (kept)");
		return;
	}
	if (s->state == SHMK_SEG_INTENT) {
		uint64_t seen;
		int c = intent_claimed(r, s->name, &seen);

		SHMK_CRASHPOINT("reap/after_intent_look");
		if (c == 0 && !seen) { /* nothing under the name: settled */
			seg_settled(&d);
			item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name,
			       s->size, 0, "already gone");
			return;
		}
		q.ino = seen;
		if (c != 0) {
			if (c > 0)
				seg_settled(&d);
			item(r, c > 0 ? SHMK_REAP_SEGMENT_GONE : SHMK_REAP_ERROR,
			     o->id, pid, s->name, s->size, c > 0 ? 0 : c, "%s",
			     c > 0 ? "never created by this owner; a live owner "
				     "holds the name (kept)"
				   : "cannot tell whether a live owner holds "
				     "the name: kept");
			return;
		}
	}
	if (r->flags & SHMK_REAP_DRY_RUN)
		q.flags |= SHMK_UL_DRY_RUN;
	switch (shmk__seg_remove(&q, &st, seg_settled, &d)) {
	case SHMK_UL_UNLINKED: {
		uint64_t bytes = st.st_size ? (uint64_t)st.st_size : s->size;
		uint64_t ino = (uint64_t)st.st_ino;
		struct shmk_reap_item *it;

		SHMK_CRASHPOINT("reap/after_segment");
		it = item_s(r, SHMK_REAP_SEGMENT_REAPED, o->id, pid, s->name,
			    bytes, 0,
			    r->flags & SHMK_REAP_DRY_RUN
				    ? "would be unlinked (dry run)"
				    : "unlinked");
		if (attach_holders(r, it, ino, true, bytes) && it)
			it->reason = r->flags & SHMK_REAP_DRY_RUN
					     ? "would be unlinked (dry run); "
					       "still held by running processes"
					     : "unlinked; its memory is freed "
					       "when the processes holding it "
					       "let go";
		break;
	}
	case SHMK_UL_GONE:
		item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name, s->size,
		       0, "already gone");
		break;
	case SHMK_UL_REPLACED:
		item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name, s->size,
		       0, "gone; the name now belongs to another object (kept)");
		break;
	case SHMK_UL_FOREIGN:
		item(r, SHMK_REAP_ERROR, o->id, pid, s->name, s->size, -EPERM,
		     "not a regular file of uid %u (uid %u, mode %o): kept",
		     (unsigned)r->uid, (unsigned)st.st_uid,
		     (unsigned)st.st_mode);
		break;
	case SHMK_UL_ERROR:
		item(r, SHMK_REAP_ERROR, o->id, pid, s->name, s->size, q.error,
		     "cannot unlink: %s", strerror(-q.error));
		break;
	}
}

/* Was the owner recorded in an earlier boot, with the shm directory on
 * tmpfs (so none of its objects can exist any more)? */
static bool earlier_boot(const struct reap *r, const struct shmk_ident *id)
{
	return r->volatile_shm && id->boot_id[0] && r->me.boot_id[0] &&
	       strcmp(id->boot_id, r->me.boot_id) != 0;
}

/* Step 3 for one owner the survey found dead: take its lock, read its
 * record, reap, remove its files, let go.  One lock descriptor at a time. */
static void reap_owner(struct reap *r, struct owner_ent *o)
{
	char name[SHMK_ID_MAX + 16];
	struct shmk_judgement j;
	size_t errors = r->rep->errors;
	pid_t pid;

	shmk__owner_judge(r->nsfd, o->id, r->uid,
			  o->loaded ? &o->rec.owner : NULL, true, &j);
	if (j.state == SHMK_LIVE_DEAD && !j.no_lock) {
		/* Not trusting a record read before the lock was ours: the
		 * owner may have written it after and before it died.  Once
		 * we hold a dead owner's lock nothing changes any more. */
		if (o->loaded) {
			shmk__record_free(&o->rec);
			o->loaded = false;
		}
		o->load_tried = false;
		load(r, o, j.lock_fd >= 0);
		shmk__owner_recheck(o->loaded ? &o->rec.owner : NULL, &j);
	} else if (j.no_lock) {
		judge_absent(r, o, &j);
	}
	set_cause(o, &j);
	if (j.other_reaper) {
		/* Another reaper holds it and will finish it. */
		o->state = SHMK_LIVE_GONE;
		return;
	}
	if (j.state != SHMK_LIVE_DEAD || o->load_err) {
		/* Alive after all (it is exiting), unknown, or its record
		 * could not be read for our own reasons (an error item says
		 * so): reported with the others (step 4), nothing removed. */
		if (o->load_err)
			o->state = SHMK_LIVE_GONE; /* already reported */
		shmk__close(&j.lock_fd);
		return;
	}
	pid = o->loaded ? o->rec.owner.pid : 0;
	if (j.lock_fd < 0 && !j.no_lock) {
		/* Dead, but we cannot hold its lock (read-only registry): we
		 * may not act for it. */
		item(r, SHMK_REAP_ERROR, o->id, pid, o->id, 0, j.error,
		     "%s/%s: %s", r->ns_path, o->id, j.cause);
		return;
	}
	if (o->loaded && earlier_boot(r, &o->rec.owner)) {
		/* Its objects lived on a tmpfs that the reboot emptied: an
		 * object under one of its names now, even with the same inode
		 * number (tmpfs numbers them anew), is of this boot. */
		for (size_t i = 0; i < o->rec.n_segs; i++) {
			struct seg_drop d = {r, o->rec.segs[i]->name};
			seg_settled(&d);
			item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid,
			       o->rec.segs[i]->name, o->rec.segs[i]->size, 0,
			       "recorded in an earlier boot: gone with it");
		}
	} else if (o->loaded) {
		for (size_t i = 0; i < o->rec.n_segs; i++)
			reap_segment(r, o, o->rec.segs[i]);
	}
	if (r->flags & SHMK_REAP_DRY_RUN) {
		item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
		     "owner dead (dry run: nothing removed)");
		goto out;
	}
	if (r->rep->errors != errors) {
		/* Keep the record: it still names what we could not unlink. */
		item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
		     "owner dead; record kept for what could not be reaped");
		goto out;
	}
	/* Invariant 2: record after segments; lock file last, still ours. */
	static const enum shmk_ofile order[] = {
		SHMK_OFILE_RECORD, SHMK_OFILE_RECORD_TMP, SHMK_OFILE_LOCK_TMP,
		SHMK_OFILE_LOCK};
	for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
		SHMK_CRASHPOINT("reap/before_file_unlink");
		shmk__ofile_name(o->id, order[i], name, sizeof name);
		if (fiu_fail("shmk/reap/unlink_record") ||
		    (unlinkat(r->nsfd, name, 0) < 0 && errno != ENOENT)) {
			item(r, SHMK_REAP_ERROR, o->id, pid, name, 0,
			     -(errno ? errno : EIO), "%s/%s: cannot remove: %s",
			     r->ns_path, name, strerror(errno ? errno : EIO));
			break;
		}
	}
	item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
	     "owner dead (%s): %zu segment(s) in record", j.cause,
	     o->loaded ? o->rec.n_segs : 0);
out:
	shmk__close(&j.lock_fd); /* lets go of our OFD lock */
	for (size_t i = 0; o->loaded && i < o->rec.n_segs; i++) {
		struct seg_drop d = {r, o->rec.segs[i]->name};
		seg_settled(&d); /* a name in a record is never a stray */
	}
	/* Its names are settled (or kept by the errors above, in which case
	 * the record stays on disk and the next reap tries again). */
	shmk__record_free(&o->rec);
	o->loaded = false;
}

struct stray_list {
	struct reap *r;
	struct shmk_table *out;
};

static int stray_listed(void *arg, const char *name, ino_t ino,
			unsigned char type)
{
	struct stray_list *l = arg;
	struct stray *s = calloc(1, sizeof *s);

	(void)ino;
	(void)type;
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof s->name, "/%s", name);
	if (fstatat(l->r->shmfd, name, &s->st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    shmk__table_put(l->out, s->name, s) < 0)
		free(s); /* gone meanwhile: no stray */
	return 0;
}

static int list_strays(struct reap *r, struct shmk_table *out)
{
	struct stray_list l = {r, out};
	int rc = shmk__ns_list(r->shmfd, r->ns, stray_listed, &l);

	return rc < 0 ? shmk__err(rc, "shared memory directory: cannot list "
				      "the objects of %s: %s",
				  r->ns, strerror(-rc))
		      : 0;
}

/* Does any process hold the stray (fuser semantics), or might one that
 * we cannot inspect?  Reports it kept if so. */
static bool stray_held(struct reap *r, const struct stray *s, uint64_t sz)
{
	struct shmk_holders *h = holders(r);
	struct shmk_reap_item *it;
	size_t n;

	if (!h) {
		item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
		     "in no record, but %s: kept",
		     r->holders ? "the processes holding it cannot be listed"
				: "not looking for processes holding it "
				  "(SHMK_REAP_NO_HOLDERS)");
		return true;
	}
	if ((n = shmk__holders_of(h, s->st.st_ino, NULL, 0, NULL))) {
		item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
		     "in no record, but open or mapped by %zu process(es): kept",
		     n);
		it = r->rep->n_items ? &r->rep->items[r->rep->n_items - 1] : NULL;
		if (it && it->action == SHMK_REAP_STRAY_KEPT)
			attach_holders(r, it, s->st.st_ino, false, 0);
		return true;
	}
	/* A process we cannot inspect could hold an object of its own uid
	 * (our own non-dumpable processes, say).  Root's are skipped, as
	 * fuser skips what it cannot see: a 0600 object of ours is held by
	 * root only if root chose to. */
	for (size_t i = 0; i < shmk__holders_unreadable(h); i++) {
		pid_t pid;
		uid_t uid;
		shmk__holders_unreadable_at(h, i, &pid, &uid);
		if (uid == s->st.st_uid && uid != 0) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but process %d of uid %u cannot be "
			     "inspected and might hold it: kept",
			     (int)pid, (unsigned)uid);
			return true;
		}
	}
	return false;
}

static void handle_strays(struct reap *r, struct shmk_table *strays,
			  unsigned min_age)
{
	int64_t now = shmk__now();
	struct owner_ent *o;
	struct stray *s;

	/* Who holds what is asked anew right before strays are judged: a
	 * pass taken earlier (for reaped segments, another namespace) could
	 * miss a process that opened one since. */
	if ((r->flags & SHMK_REAP_STRAYS) && !(r->flags & SHMK_REAP_DRY_RUN) &&
	    r->holders && strays->used) {
		shmk__holders_free(*r->holders);
		*r->holders = NULL;
		r->holders_failed = false;
	}
	/* Every name any record states, live or dead, is no stray. */
	for (size_t it = 0; (o = shmk__table_next(&r->owners, &it));)
		for (size_t i = 0; o->loaded && i < o->rec.n_segs; i++)
			if ((s = shmk__table_get(strays, o->rec.segs[i]->name)))
				s->claimed = true;
	for (size_t it = 0; (s = shmk__table_next(strays, &it));) {
		int64_t age = now - (int64_t)s->st.st_ctime;
		uint64_t sz = (uint64_t)s->st.st_size;

		if (s->claimed)
			continue;
		if (!(r->flags & SHMK_REAP_STRAYS) || (r->flags & SHMK_REAP_DRY_RUN)) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record (age %llds)%s", (long long)age,
			     (r->flags & SHMK_REAP_STRAYS) ? " (dry run)" : "");
		} else if (r->records_unreadable) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no readable record, but a record of the "
			     "namespace could not be read: kept");
		} else if (!r->claimed) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but namespace %s is not bound to "
			     "this registry (no claim naming it): kept",
			     r->ns);
		} else if (!S_ISREG(s->st.st_mode) || s->st.st_uid != r->uid) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but owned by uid %u: kept",
			     (unsigned)s->st.st_uid);
		} else if (age < (int64_t)min_age) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but only %llds old (minimum %us): "
			     "kept",
			     (long long)age, min_age);
		} else if (stray_held(r, s, sz)) {
			continue; /* reported there */
		} else {
			struct shmk_unlink_req q = {
				.shmfd = r->shmfd, .name = s->name,
				.ino = (uint64_t)s->st.st_ino, .uid = r->uid};
			switch (shmk__seg_remove(&q, NULL, NULL, NULL)) {
			case SHMK_UL_UNLINKED:
				item(r, SHMK_REAP_STRAY_REMOVED, "", 0, s->name,
				     sz, 0, "in no record, %llds old: unlinked",
				     (long long)age);
				break;
			case SHMK_UL_GONE:
				break;
			case SHMK_UL_REPLACED:
			case SHMK_UL_FOREIGN:
				item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz,
				     0, "changed while we looked: kept");
				break;
			case SHMK_UL_ERROR:
				item(r, SHMK_REAP_ERROR, "", 0, s->name, sz,
				     q.error, "stray: cannot unlink: %s",
				     strerror(-q.error));
				break;
			}
		}
	}
}

int shmk__reap_ns(int rootfd, const char *rootpath, const char *ns,
		  int shmfd, unsigned flags, unsigned min_age,
		  struct shmk_holders **holders, struct shmk_reap_report *rep)
{
	struct reap r = {.nsfd = -1, .shmfd = shmfd, .rootfd = rootfd,
			 .ns = ns, .flags = flags, .rep = rep,
			 .holders = (flags & SHMK_REAP_NO_HOLDERS) ? NULL : holders};
	struct shmk_table strays = {0};
	bool want_strays = !(flags & SHMK_REAP_NO_STRAYS);
	struct owner_ent *o;
	int rc;

	snprintf(r.ns_path, sizeof r.ns_path, "%s/%s", rootpath, ns);
	r.uid = geteuid();
	r.volatile_shm = shmk__fd_is_volatile(shmfd);
	if ((rc = shmk__self_ident(&r.me)) < 0)
		return rc;
	if (shmk__table_init(&r.owners, 16) < 0 ||
	    shmk__table_init(&r.claims, 16) < 0 ||
	    shmk__table_init(&strays, 16) < 0) {
		rc = shmk__err(-ENOMEM, "reap: out of memory");
		goto out;
	}
	/* A namespace belongs to one registry (shmdir.c): if its claim names
	 * another, nothing here is ours to judge, least of all strays. */
	if (rootfd >= 0) {
		char other[PATH_MAX]; /* the sentence names it too */
		rc = shmk__claim_check(shmfd, ns, rootfd, other, sizeof other);
		if (rc < 0) {
			item(&r, SHMK_REAP_ERROR, "", 0, r.ns_path, 0, rc, "%s",
			     shmk_last_error());
			goto out;
		}
		r.claimed = rc == 1;
		rc = 0;
	}
	if (want_strays) {
		if ((rc = list_strays(&r, &strays)) < 0)
			goto out;
		r.strays = &strays;
	}

	rc = rootfd < 0 ? -ENOENT
			: shmk__dir_open_secure(rootfd, ns, false, r.ns_path,
						&r.nsfd);
	if (rc == -ENOENT) {
		rc = 0; /* no records at all: only strays */
		goto strays;
	}
	if (rc < 0) {
		item(&r, SHMK_REAP_ERROR, "", 0, r.ns_path, 0, rc, "%s",
		     shmk_last_error());
		goto out;
	}
	if ((rc = scan_owners(&r)) < 0) {
		item(&r, SHMK_REAP_ERROR, "", 0, r.ns_path, 0, rc, "%s",
		     shmk_last_error());
		goto out;
	}

	/* Step 2: the judge's word on every owner, holding nothing. */
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		if ((o->self = id_is_self(&r, o->id))) {
			o->state = SHMK_LIVE_ALIVE;
			continue;
		}
		survey(&r, o);
	}
	/* Live and unknown owners' names, for strays and for the report. */
	if (want_strays || !(flags & SHMK__REAP_QUIET))
		load_claims(&r);

	/* Step 3: dead owners, one at a time (from a list: re-reading the
	 * claims may add owners born meanwhile to the table). */
	{
		size_t n = 0, k = 0;
		struct owner_ent **dead = NULL;
		for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));)
			n += o->state == SHMK_LIVE_DEAD;
		if (n && !(dead = malloc(n * sizeof *dead))) {
			rc = shmk__err(-ENOMEM, "reap: out of memory");
			goto out;
		}
		for (size_t it = 0; n && (o = shmk__table_next(&r.owners, &it));)
			if (o->state == SHMK_LIVE_DEAD)
				dead[k++] = o;
		for (size_t i = 0; i < k; i++)
			reap_owner(&r, dead[i]);
		if (n)
			free(dead);
	}

	/* What is left alone, and why. */
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		pid_t pid = o->loaded ? o->rec.owner.pid : 0;

		if (o->state == SHMK_LIVE_DEAD || o->state == SHMK_LIVE_GONE)
			continue;
		if (o->state == SHMK_LIVE_UNKNOWN) {
			item(&r, SHMK_REAP_OWNER_UNKNOWN, o->id, pid, o->id, 0,
			     o->error ? o->error : -EIO, "%s/%s: %s: left alone",
			     r.ns_path, o->id, o->cause ? o->cause : "unknown");
			for (size_t i = 0; o->loaded && i < o->rec.n_segs; i++)
				attach_holders(&r,
					       item_s(&r, SHMK_REAP_SEGMENT_KEPT,
						      o->id, pid,
						      o->rec.segs[i]->name,
						      o->rec.segs[i]->size, 0,
						      "owner's liveness unknown: "
						      "kept"),
					       ino_of(&r, o->rec.segs[i]), false, 0);
			continue;
		}
		if (!o->self && !o->loaded && !o->rec_bad && o->load_tried)
			continue; /* closed while we looked */
		item(&r, SHMK_REAP_OWNER_ALIVE, o->id, pid, o->id, 0, 0, "%s",
		     o->self ? "this process"
			     : o->cause && o->cause[0] ? o->cause : "owner alive");
		for (size_t i = 0; o->loaded && i < o->rec.n_segs; i++) {
			struct shmk_reap_item *li = item_s(
				&r, SHMK_REAP_SEGMENT_LIVE, o->id, pid,
				o->rec.segs[i]->name, o->rec.segs[i]->size, 0,
				"owner alive");
			if (li)
				attach_holders(&r, li, ino_of(&r, o->rec.segs[i]),
					       false, 0);
		}
	}
strays:
	if (want_strays)
		handle_strays(&r, &strays, min_age);
out:
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		shmk__record_free(&o->rec);
		free(o->cause);
		free(o);
	}
	void *v;
	for (size_t it = 0; (v = shmk__table_next(&strays, &it));)
		free(v);
	shmk__table_free(&strays);
	shmk__table_free(&r.owners);
	shmk__table_free(&r.claims);
	shmk__close(&r.nsfd);
	return rc;
}

/* What of a namespace may stay behind a reap: counts of the report
 * before and after one namespace's reap. */
struct ns_marks {
	size_t strays_kept, errors, owners_unknown, segments_kept;
};

static struct ns_marks ns_marks_of(const struct shmk_reap_report *rep)
{
	return (struct ns_marks){rep->strays_kept, rep->errors,
				 rep->owners_unknown, rep->segments_kept};
}

/* After the reap of namespace ns: its directory goes if it is empty now
 * (shmk__ns_rmdir(): and no context has it open), but only if the reap
 * looked for strays and saw nothing of the namespace left (no stray kept,
 * no error, no owner of unknown liveness): an empty namespace is not
 * listed for ever, and one with objects left in the shm directory stays
 * listed, so that shmls and shmclean keep showing them. */
static void ns_tidy(int rootfd, const char *ns, int rc, unsigned flags,
		    const struct shmk_reap_report *rep, struct ns_marks before)
{
	struct ns_marks now = ns_marks_of(rep);

	if (rootfd < 0 || rc < 0 ||
	    (flags & (SHMK_REAP_DRY_RUN | SHMK_REAP_NO_STRAYS)) ||
	    memcmp(&now, &before, sizeof now) != 0)
		return;
	(void)shmk__ns_rmdir(rootfd, ns);
}

/* shmk_reap() of every namespace: one shmk__reap_ns() per namespace the
 * registry lists. */
struct reap_all {
	int rootfd;
	const char *dir;
	int shmfd;
	unsigned flags, min_age;
	struct shmk_holders **held;
	struct shmk_reap_report *rep;
};

static int reap_listed(void *arg, const char *ns)
{
	struct reap_all *a = arg;
	struct shmk_reap_report *rep = a->rep;
	size_t before = rep->errors;
	struct ns_marks marks = ns_marks_of(rep);
	int rc = shmk__reap_ns(a->rootfd, a->dir, ns, a->shmfd, a->flags,
			       a->min_age, a->held, rep);

	ns_tidy(a->rootfd, ns, rc, a->flags, rep, marks);

	/* A namespace that cannot be reaped (a symlink in its place among
	 * them) is an error item of the report (-EIO at the end), not the
	 * end of the run: the other namespaces are still reaped. */
	if (rc < 0 && rep->errors == before) {
		struct reap er = {.ns = ns, .rep = rep};
		item(&er, SHMK_REAP_ERROR, "", 0, ns, 0, rc, "%s",
		     shmk_last_error());
	}
	return rc == -ENOMEM ? rc : 0;
}

int shmk_reap(const struct shmk_reap_options *opt,
	      struct shmk_reap_report **out)
{
	struct shmk_reap_options none = {0};
	struct shmk_reap_report *rep;
	struct shmk_holders *held = NULL; /* one /proc pass for the call */
	char dir[PATH_MAX];
	const char *shm;
	int rootfd = -1, shmfd = -1, rc;
	unsigned min_age;

	if (out)
		*out = NULL;
	if (!opt)
		opt = &none;
	if (opt->ns && (rc = shmk_ns_check(opt->ns)) < 0)
		return rc;
	if (!(rep = calloc(1, sizeof *rep)))
		return shmk__err(-ENOMEM, "reap: out of memory");
	min_age = opt->stray_min_age || (opt->flags & SHMK_REAP_ANY_AGE)
			  ? opt->stray_min_age
			  : SHMK_DEFAULT_STRAY_AGE;
	shm = opt->shm_dir ? opt->shm_dir : SHMK_DEFAULT_SHM_DIR;
	if ((rc = shmk__dir_resolve(opt->dir, dir, sizeof dir)) < 0)
		goto out;
	if ((rc = shmk__shmdir_open(shm, &shmfd)) < 0)
		goto out;
	rc = shmk__registry_open(dir, SHMK_REG_OPEN, &rootfd);
	if (rc == -ENOENT && opt->ns) {
		/* No registry at all: only strays of this namespace. */
		rc = shmk__reap_ns(-1, dir, opt->ns, shmfd,
				   opt->flags, min_age, &held, rep);
		goto out;
	}
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	if (opt->ns) {
		struct ns_marks marks = ns_marks_of(rep);
		rc = shmk__reap_ns(rootfd, dir, opt->ns, shmfd, opt->flags,
				   min_age, &held, rep);
		ns_tidy(rootfd, opt->ns, rc, opt->flags, rep, marks);
	} else {
		struct reap_all all = {rootfd, dir, shmfd, opt->flags, min_age,
				       &held, rep};
		rc = shmk__registry_list(rootfd, dir, reap_listed, &all);
	}
out:
	shmk__holders_free(held);
	shmk__close(&rootfd);
	shmk__close(&shmfd);
	if (rc == 0 && (rep->quarantined || rep->errors || rep->owners_unknown))
		rc = shmk__err(-EIO, "reap: %zu record(s) quarantined, %zu "
				     "error(s), %zu owner(s) of unknown "
				     "liveness; see the report",
			       rep->quarantined, rep->errors,
			       rep->owners_unknown);
	if (out)
		*out = rep;
	else
		shmk_reap_report_free(rep);
	return rc;
}

void shmk__reap_report_clear(struct shmk_reap_report *rep)
{
	shmk__arena_free(&rep->strings_);
	free(rep->items);
	rep->items = NULL;
}

void shmk_reap_report_free(struct shmk_reap_report *rep)
{
	if (!rep)
		return;
	shmk__reap_report_clear(rep);
	free(rep);
}
