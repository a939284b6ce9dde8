/* reap.c - reclaiming the segments of dead owners (invariants 4 and 5).
 *
 * For one namespace:
 *  1. List the namespace's objects in the shm directory (only if strays are
 *     wanted).  Listing before reading records means every object listed
 *     had its intent recorded before we read the records, so a segment
 *     being created right now is never mistaken for a stray.
 *  2. Find every owner id in the namespace directory (lock files, records,
 *     and temporary files of both) and probe each owner's lock with an
 *     open-file-description lock (F_OFD_SETLK): it conflicts with the
 *     owner's POSIX lock, with other reapers' OFD locks, even with other
 *     threads of this process, and never blocks.  Taking it proves the owner
 *     dead; we then re-check that the path still names the inode we locked.
 *     Owners that are this very process are never probed: opening our own
 *     lock file and closing it would drop our lock (owner.c).
 *  3. A dead owner's record is loaded strictly; a bad one is quarantined and
 *     never used as grounds to unlink.  Each segment is unlinked only if it
 *     is a regular file of our uid, and - if the record knows its inode -
 *     the same inode; a segment only in "intent" is left alone if a live
 *     owner claims the name.  Then the record, temporary files and finally
 *     the lock file (still locked by us) are removed.
 *  4. Strays: listed objects no record names.  Reported; unlinked only on
 *     request, when older than the minimum age and ours.
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
#include <unistd.h>

#define SHMK__REAP_QUIET 0x100u /* internal: no items for live owners */

struct owner_ent {
	char id[SHMK_ID_MAX];
	bool has_lock, has_tmp_lock, has_rec;
	bool self, dead, busy, loaded;
	bool lost_lock; /* lock free, process running: exiting, or a bug */
	int lock_fd;
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
	struct shmk_table objects; /* name -> struct listed (list_objects) */
	const char *ns_s;          /* r->ns, interned in the report          */
	const char *owner_src, *owner_s; /* last owner id and its copy       */
	bool listed, list_failed;
	bool kernel_owns_check; /* not root, sticky shm dir: EPERM for others' */
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
	}
	return "unknown";
}

/* The report's strings live in chunks it owns: one allocation per 64 KiB
 * of text rather than 640 bytes of fixed arrays per item (the items of a
 * reap of 10,000 segments were a measurable part of its cost). */
struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
};

static const char *intern(struct shmk_reap_report *rep, const char *str)
{
	struct chunk *c = rep->strings_;
	size_t n = strlen(str) + 1;

	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct chunk *nc = malloc(sizeof *nc + cap);
		if (!nc)
			return "";
		nc->next = c;
		nc->used = 0;
		nc->cap = cap;
		rep->strings_ = c = nc;
	}
	memcpy(c->data + c->used, str, n);
	c->used += n;
	return c->data + c->used - n;
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
	return it;
}

static void item(struct reap *r, enum shmk_reap_action a, const char *owner,
		 pid_t pid, const char *object, uint64_t bytes, int err,
		 const char *fmt, ...) __attribute__((format(printf, 8, 9)));
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

int shmk__owner_record_load(int nsfd, const char *id, const char *ns,
			    struct shmk_record *rec, char *why, size_t whylen)
{
	char name[SHMK_ID_MAX + 16];
	int rc;

	snprintf(name, sizeof name, "%s" SHMK_REC_SUFFIX, id);
	rc = shmk__record_load(nsfd, name, ns, rec, why, whylen);
	if (rc == 0 && strcmp(rec->id, id) != 0) {
		snprintf(why, whylen, "owner id \"%s\" does not match the file "
				      "name",
			 rec->id);
		rc = -EINVAL;
	}
	return rc;
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
	o->lock_fd = -1;
	if (shmk__table_put(&r->owners, o->id, o) < 0) {
		free(o);
		return NULL;
	}
	return o;
}

/* Strips suffix from name into id if it ends so. */
static bool strip(const char *name, const char *suffix, char *id)
{
	size_t n = strlen(name), s = strlen(suffix);

	if (n <= s || n - s >= SHMK_ID_MAX ||
	    strcmp(name + n - s, suffix) != 0)
		return false;
	memcpy(id, name, n - s);
	id[n - s] = '\0';
	return true;
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
		const char *n = d->d_name;
		struct owner_ent *o = NULL;

		if (strip(n, SHMK_LOCK_SUFFIX, id) && (o = owner_get(r, id)))
			o->has_lock = true;
		else if (strip(n, SHMK_REC_SUFFIX, id) && (o = owner_get(r, id)))
			o->has_rec = true;
		else if (n[0] == '.' &&
			 strip(n + 1, SHMK_LOCK_SUFFIX ".tmp", id) &&
			 (o = owner_get(r, id)))
			o->has_tmp_lock = true;
		else if (n[0] == '.' && strip(n + 1, SHMK_REC_SUFFIX ".tmp", id))
			(void)owner_get(r, id);
	}
	closedir(dir);
	return 0;
}

/* Probe the owner's lock.  Sets o->dead (lock taken and verified) or
 * o->busy (held by someone). */
static void probe(struct reap *r, struct owner_ent *o)
{
	char name[SHMK_ID_MAX + 16];
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat a, b;

	if (o->has_lock)
		snprintf(name, sizeof name, "%s" SHMK_LOCK_SUFFIX, o->id);
	else if (o->has_tmp_lock)
		snprintf(name, sizeof name, ".%s" SHMK_LOCK_SUFFIX ".tmp", o->id);
	else
		return; /* no lock file: judged by identity in load_and_judge */

	o->lock_fd = openat(r->nsfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (o->lock_fd < 0)
		return; /* gone meanwhile: reaped or closed by its owner */
	if (fstat(o->lock_fd, &a) < 0 || !S_ISREG(a.st_mode) ||
	    a.st_uid != r->uid) {
		item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, -EPERM,
		     "lock file is not a regular file of ours: left alone");
		shmk__close(&o->lock_fd);
		o->busy = true;
		return;
	}
	if (fiu_fail("shmk/reap/lock") ||
	    fcntl(o->lock_fd, F_OFD_SETLK, &fl) < 0) {
		shmk__close(&o->lock_fd);
		o->busy = true;
		return;
	}
	/* Locked.  Is it still the file under that name (not one unlinked by
	 * its closing owner or another reaper)? */
	if (fstatat(r->nsfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		shmk__close(&o->lock_fd);
		return;
	}
	o->dead = true;
}

static void load(struct reap *r, struct owner_ent *o)
{
	char name[SHMK_ID_MAX + 16], why[256], qname[PATH_MAX];
	int rc;

	/* Not trusting has_rec from the directory scan: the owner may have
	 * written its record after the scan and before it died.  Once we hold
	 * a dead owner's lock nothing changes any more, so read it now. */
	if (o->loaded)
		return;
	snprintf(name, sizeof name, "%s" SHMK_REC_SUFFIX, o->id);
	rc = shmk__owner_record_load(r->nsfd, o->id, r->ns, &o->rec, why,
				     sizeof why);
	if (rc == 0) {
		o->loaded = true;
		return;
	}
	shmk__record_free(&o->rec);
	o->has_rec = false;
	if (rc == -ENOENT)
		return;
	o->has_rec = true;
	/* A live owner's file is never pulled from under it; a dead owner's
	 * bad file is moved aside, and its segments become strays. */
	if (!o->dead) {
		item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, rc,
		     "%s/%s: unreadable record (%s)", r->ns_path, name, why);
		return;
	}
	if (r->flags & SHMK_REAP_DRY_RUN) {
		item(r, SHMK_REAP_RECORD_QUARANTINED, o->id, 0, name, 0, rc,
		     "%s/%s: %s; would be moved to quarantine (dry run)",
		     r->ns_path, name, why);
		return;
	}
	if (shmk__quarantine(r->nsfd, r->ns_path, name, qname, sizeof qname) < 0)
		item(r, SHMK_REAP_ERROR, o->id, 0, name, 0, rc,
		     "%s/%s: bad record (%s), and %s", r->ns_path, name, why,
		     shmk_last_error());
	else
		item(r, SHMK_REAP_RECORD_QUARANTINED, o->id, 0, name, 0, rc,
		     "%s/%s: %s; moved to %s", r->ns_path, name, why, qname);
}

/* The namespace's objects as one listing of the shm directory shows them,
 * taken once dead owners' locks are held: name -> inode and type. */
struct listed {
	char name[NAME_MAX + 2]; /* "/<ns>.<name>" */
	ino_t ino;
	unsigned char type;
};

static void list_objects(struct reap *r)
{
	size_t l = strlen(r->ns);
	int fd = openat(r->shmfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;

	r->listed = true;
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		r->list_failed = true; /* fall back to a stat per segment */
		return;
	}
	while ((d = readdir(dir))) {
		struct listed *e;
		if (strncmp(d->d_name, r->ns, l) != 0 || d->d_name[l] != '.')
			continue;
		if (!(e = malloc(sizeof *e))) {
			r->list_failed = true;
			break;
		}
		e->name[0] = '/';
		strlcpy(e->name + 1, d->d_name, sizeof e->name - 1);
		e->ino = d->d_ino;
		e->type = d->d_type;
		if (shmk__table_put(&r->objects, e->name, e) < 0) {
			free(e);
			r->list_failed = true;
			break;
		}
	}
	closedir(dir);
}

static void reap_segment(struct reap *r, struct owner_ent *o,
			 const struct shmk_rec_seg *s)
{
	const char *obj = s->name + 1;
	pid_t pid = o->rec.owner.pid;
	uint64_t bytes = s->size;
	struct listed *e;
	struct stat st;

	/* The listing only pays where it saves the stats (see below). */
	if (!r->listed) {
		if (r->kernel_owns_check)
			list_objects(r);
		else
			r->listed = r->list_failed = true;
	}
	/* A "live" entry whose inode the listing confirms is the object this
	 * owner created (tmpfs does not reuse inode numbers while this one
	 * lives, and no one else unlinks a name a dead owner's record holds
	 * while we hold its lock).  It may still have been given to another
	 * user since: where the kernel itself refuses to let us unlink
	 * another user's file (we are not root and the directory is sticky,
	 * as /dev/shm is), it is unlinked without a stat; otherwise, and for
	 * everything else, it is looked at closely first. */
	e = r->list_failed ? NULL : shmk__table_get(&r->objects, s->name);
	if (!r->list_failed && !e) {
		item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name, s->size, 0,
		       "already gone");
		return;
	}
	if (e && s->state == SHMK_SEG_LIVE && s->ino && e->ino != s->ino) {
		item(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name, s->size,
		     0, "gone; the name now belongs to another object (kept)");
		return;
	}
	if (!e || !r->kernel_owns_check || s->state != SHMK_SEG_LIVE ||
	    !s->ino || (e->type != DT_REG && e->type != DT_UNKNOWN)) {
		if (fstatat(r->shmfd, obj, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				item_s(r, SHMK_REAP_SEGMENT_GONE, o->id, pid,
				       s->name, s->size, 0, "already gone");
			else
				item(r, SHMK_REAP_ERROR, o->id, pid, s->name,
				     s->size, -errno, "cannot stat: %s",
				     strerror(errno));
			return;
		}
		if (!S_ISREG(st.st_mode) || st.st_uid != r->uid) {
			item(r, SHMK_REAP_ERROR, o->id, pid, s->name, s->size,
			     -EPERM,
			     "not a regular file of uid %u (uid %u, mode %o): kept",
			     (unsigned)r->uid, (unsigned)st.st_uid,
			     (unsigned)st.st_mode);
			return;
		}
		if (s->state == SHMK_SEG_LIVE && s->ino && s->ino != st.st_ino) {
			item(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name,
			     s->size, 0,
			     "gone; the name now belongs to another object (kept)");
			return;
		}
		if (s->state == SHMK_SEG_INTENT &&
		    shmk__table_get(&r->claims, s->name)) {
			item(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name,
			     s->size, 0,
			     "never created by this owner; a live owner holds "
			     "the name (kept)");
			return;
		}
		bytes = (uint64_t)st.st_size;
	}
	if (r->flags & SHMK_REAP_DRY_RUN) {
		item(r, SHMK_REAP_SEGMENT_REAPED, o->id, pid, s->name, bytes, 0,
		     "would be unlinked (dry run)");
		return;
	}
	if (fiu_fail("shmk/reap/unlink") || unlinkat(r->shmfd, obj, 0) < 0) {
		if (errno == ENOENT) /* a concurrent reaper was faster */
			item(r, SHMK_REAP_SEGMENT_GONE, o->id, pid, s->name,
			     s->size, 0, "already gone");
		else
			item(r, SHMK_REAP_ERROR, o->id, pid, s->name, s->size,
			     -errno, "cannot unlink: %s",
			     strerror(errno ? errno : EIO));
		return;
	}
	SHMK_CRASHPOINT("reap/after_segment");
	item_s(r, SHMK_REAP_SEGMENT_REAPED, o->id, pid, s->name, bytes, 0,
	       "unlinked");
}

static void reap_owner(struct reap *r, struct owner_ent *o)
{
	char name[SHMK_ID_MAX + 16];
	size_t errors = r->rep->errors;
	pid_t pid = o->loaded ? o->rec.owner.pid : 0;

	if (o->loaded)
		for (size_t i = 0; i < o->rec.n_segs; i++)
			reap_segment(r, o, o->rec.segs[i]);
	if (r->flags & SHMK_REAP_DRY_RUN) {
		item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
		     "owner dead (dry run: nothing removed)");
		return;
	}
	if (r->rep->errors != errors) {
		/* Keep the record: it still names what we could not unlink. */
		item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
		     "owner dead; record kept for what could not be reaped");
		return;
	}
	/* Invariant 2: record after segments; lock file last, still ours. */
	static const char *const fmts[] = {"%s" SHMK_REC_SUFFIX,
					   ".%s" SHMK_REC_SUFFIX ".tmp",
					   ".%s" SHMK_LOCK_SUFFIX ".tmp",
					   "%s" SHMK_LOCK_SUFFIX};
	for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
		SHMK_CRASHPOINT("reap/before_file_unlink");
		snprintf(name, sizeof name, fmts[i], o->id);
		if (fiu_fail("shmk/reap/unlink_record") ||
		    (unlinkat(r->nsfd, name, 0) < 0 && errno != ENOENT)) {
			item(r, SHMK_REAP_ERROR, o->id, pid, name, 0,
			     -(errno ? errno : EIO), "%s/%s: cannot remove: %s",
			     r->ns_path, name, strerror(errno ? errno : EIO));
			break;
		}
	}
	item(r, SHMK_REAP_OWNER_DEAD, o->id, pid, o->id, 0, 0,
	     "owner dead: %zu segment(s) in record", o->loaded ? o->rec.n_segs : 0);
}

static int list_strays(struct reap *r, struct shmk_table *out)
{
	size_t l = strlen(r->ns);
	int fd = openat(r->shmfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return shmk__err(rc, "shared memory directory: cannot list: %s",
				 strerror(-rc));
	}
	while ((d = readdir(dir))) {
		struct stray *s;
		if (strncmp(d->d_name, r->ns, l) != 0 || d->d_name[l] != '.')
			continue;
		if (!(s = calloc(1, sizeof *s)))
			break;
		snprintf(s->name, sizeof s->name, "/%s", d->d_name);
		if (fstatat(r->shmfd, d->d_name, &s->st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    shmk__table_put(out, s->name, s) < 0)
			free(s);
	}
	closedir(dir);
	return 0;
}

static void handle_strays(struct reap *r, struct shmk_table *strays,
			  unsigned min_age)
{
	int64_t now = shmk__now();
	struct owner_ent *o;
	struct stray *s;

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
		} else if (!S_ISREG(s->st.st_mode) || s->st.st_uid != r->uid) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but owned by uid %u: kept",
			     (unsigned)s->st.st_uid);
		} else if (age < (int64_t)min_age) {
			item(r, SHMK_REAP_STRAY_KEPT, "", 0, s->name, sz, 0,
			     "in no record, but only %llds old (minimum %us): "
			     "kept",
			     (long long)age, min_age);
		} else if (unlinkat(r->shmfd, s->name + 1, 0) < 0 && errno != ENOENT) {
			item(r, SHMK_REAP_ERROR, "", 0, s->name, sz, -errno,
			     "stray: cannot unlink: %s", strerror(errno));
		} else {
			item(r, SHMK_REAP_STRAY_REMOVED, "", 0, s->name, sz, 0,
			     "in no record, %llds old: unlinked", (long long)age);
		}
	}
}

int shmk__reap_ns(int rootfd, const char *rootpath, const char *ns,
		  int shmfd, unsigned flags, unsigned min_age,
		  struct shmk_reap_report *rep)
{
	struct reap r = {.nsfd = -1, .shmfd = shmfd, .rootfd = rootfd,
			 .ns = ns, .flags = flags, .rep = rep};
	struct shmk_table strays = {0};
	bool want_strays = !(flags & SHMK_REAP_NO_STRAYS);
	bool need_claims = want_strays || !(flags & SHMK__REAP_QUIET);
	struct owner_ent *o;
	int rc;

	snprintf(r.ns_path, sizeof r.ns_path, "%s/%s", rootpath, ns);
	r.uid = geteuid();
	{
		struct stat sd;
		r.kernel_owns_check = r.uid != 0 && fstat(shmfd, &sd) == 0 &&
				      (sd.st_mode & S_ISVTX);
	}
	if ((rc = shmk__self_ident(&r.me)) < 0)
		return rc;
	if (shmk__table_init(&r.owners, 16) < 0 ||
	    shmk__table_init(&r.claims, 16) < 0 ||
	    shmk__table_init(&r.objects, 64) < 0 ||
	    shmk__table_init(&strays, 16) < 0) {
		rc = shmk__err(-ENOMEM, "reap: out of memory");
		goto out;
	}
	if (want_strays && (rc = list_strays(&r, &strays)) < 0)
		goto out;

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

	/* Pass 1: who is dead; dead owners' records. */
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		if ((o->self = id_is_self(&r, o->id)))
			continue;
		probe(&r, o);
		if (o->dead) {
			load(&r, o);
			/* The lock was free, but is the process gone?  A live
			 * owner that lost its lock must not lose its memory. */
			if (o->loaded && shmk__ident_alive(&o->rec.owner)) {
				o->dead = false;
				o->lost_lock = true;
				shmk__close(&o->lock_fd);
			}
		} else if (!o->busy && !o->has_lock && !o->has_tmp_lock &&
			   o->has_rec) {
			/* No lock file at all: judge by identity. */
			load(&r, o);
			if (o->loaded && !shmk__ident_alive(&o->rec.owner))
				o->dead = true;
		} else if (!o->busy && !o->has_lock && !o->has_tmp_lock &&
			   !o->has_rec) {
			/* Only temporary files: judge by the pid and start
			 * time the id carries. */
			struct shmk_ident id = {0};
			if (sscanf(o->id, "p%d-%llu-", &id.pid, &id.start_time) == 2 &&
			    !shmk__ident_alive(&id))
				o->dead = true;
		}
		if (!o->dead && !o->loaded)
			o->busy = true;
	}
	/* Live owners' claims, needed for strays, for the report, and to
	 * keep an "intent" of a dead owner from hitting a live one's name. */
	for (size_t it = 0; !need_claims && (o = shmk__table_next(&r.owners, &it));)
		for (size_t i = 0; o->dead && o->loaded && i < o->rec.n_segs; i++)
			if (o->rec.segs[i]->state == SHMK_SEG_INTENT)
				need_claims = true;
	for (size_t it = 0; need_claims && (o = shmk__table_next(&r.owners, &it));) {
		if (o->dead)
			continue;
		load(&r, o);
		if (!o->loaded)
			continue;
		for (size_t i = 0; i < o->rec.n_segs; i++)
			shmk__table_put(&r.claims, o->rec.segs[i]->name, o);
	}

	/* Pass 2: act. */
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		if (o->dead) {
			reap_owner(&r, o);
			continue;
		}
		if (!o->self && !o->busy && !o->loaded)
			continue; /* vanished while we looked */
		pid_t pid = o->loaded ? o->rec.owner.pid : 0;
		item(&r, SHMK_REAP_OWNER_ALIVE, o->id, pid, o->id, 0, 0, "%s",
		     o->self ? "this process"
		     : o->lost_lock
			     ? "lock file unlocked but the process is still "
			       "running (exiting?): left alone"
		     : o->loaded && !shmk__ident_alive(&o->rec.owner)
			     ? "lock held (another reaper at work?)"
			     : "owner alive");
		for (size_t i = 0; o->loaded && i < o->rec.n_segs; i++)
			item_s(&r, SHMK_REAP_SEGMENT_LIVE, o->id, pid,
			       o->rec.segs[i]->name, o->rec.segs[i]->size, 0,
			       "owner alive");
	}
strays:
	if (want_strays)
		handle_strays(&r, &strays, min_age);
out:
	for (size_t it = 0; (o = shmk__table_next(&r.owners, &it));) {
		shmk__close(&o->lock_fd); /* releases our OFD lock */
		shmk__record_free(&o->rec);
		free(o);
	}
	void *v;
	for (size_t it = 0; (v = shmk__table_next(&strays, &it));)
		free(v);
	shmk__table_free(&strays);
	shmk__table_free(&r.owners);
	shmk__table_free(&r.claims);
	for (size_t it = 0; (v = shmk__table_next(&r.objects, &it));)
		free(v);
	shmk__table_free(&r.objects);
	shmk__close(&r.nsfd);
	return rc;
}

int shmk_reap(const struct shmk_reap_options *opt,
	      struct shmk_reap_report **out)
{
	struct shmk_reap_options none = {0};
	struct shmk_reap_report *rep;
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
	shmfd = open(shm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (shmfd < 0) {
		rc = shmk__err(-errno, "shared memory directory %s: %s", shm,
			       strerror(errno));
		goto out;
	}
	rc = shmk__registry_open(dir, false, &rootfd);
	if (rc == -ENOENT && opt->ns) {
		/* No registry at all: only strays of this namespace. */
		rc = shmk__reap_ns(-1, dir, opt->ns, shmfd,
				   opt->flags, min_age, rep);
		goto out;
	}
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	if (opt->ns) {
		rc = shmk__reap_ns(rootfd, dir, opt->ns, shmfd, opt->flags,
				   min_age, rep);
	} else {
		int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *d;
		DIR *dh;

		if (fd < 0 || !(dh = fdopendir(fd))) {
			rc = shmk__err(-errno, "%s: cannot list: %s", dir,
				       strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		while ((d = readdir(dh))) {
			struct stat st;
			if (!shmk__ns_ok(d->d_name) ||
			    fstatat(rootfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			/* A namespace that cannot be reaped is an error item
			 * of the report (-EIO at the end), not the end of the
			 * run: the other namespaces are still reaped. */
			size_t before = rep->errors;
			int r2 = shmk__reap_ns(rootfd, dir, d->d_name, shmfd,
					       opt->flags, min_age, rep);
			if (r2 < 0 && rep->errors == before) {
				struct reap er = {.ns = d->d_name, .rep = rep};
				item(&er, SHMK_REAP_ERROR, "", 0, d->d_name, 0, r2,
				     "%s", shmk_last_error());
			}
		}
		closedir(dh);
	}
out:
	shmk__close(&rootfd);
	shmk__close(&shmfd);
	if (rc == 0 && (rep->quarantined || rep->errors))
		rc = shmk__err(-EIO, "reap: %zu record(s) quarantined, %zu "
				     "error(s); see the report",
			       rep->quarantined, rep->errors);
	if (out)
		*out = rep;
	else
		shmk_reap_report_free(rep);
	return rc;
}

void shmk__reap_report_clear(struct shmk_reap_report *rep)
{
	for (struct chunk *c = rep->strings_, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	rep->strings_ = NULL;
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
