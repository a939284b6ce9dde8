/* SPDX-License-Identifier: MIT */
/* scan.c - reading a registry without touching it: shmk_registry_scan().
 *
 * What shmls shows, as data.  The rules it keeps are the registry's own,
 * each asked of the one module that owns it: which directory is a registry
 * (dir.c), which names are owner files (names.c), whether an owner lives
 * (liveness.c, asking, never taking a lock), how a record reads
 * (record_load.c, the strict parser shmk_reap() uses: what the scan calls
 * bad is what the reaper would quarantine), which objects are a
 * namespace's (shmdir.c) and who holds them (holders.c).
 *
 * Order, as in the reaper: a namespace's objects are listed before its
 * records are read, so an object created meanwhile had its intent recorded
 * before we read and is never shown as a stray.
 *
 * Everything the result points to lives in one arena (arena.c): the
 * owners' and strays' arrays are grown with realloc while a namespace is
 * read and copied into the arena once it is done. */
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *shmk_owner_state_name(enum shmk_owner_state s)
{
	switch (s) {
	case SHMK_OWNER_ALIVE: return "alive";
	case SHMK_OWNER_DEAD: return "dead";
	case SHMK_OWNER_UNKNOWN: break;
	}
	return "unknown";
}

const char *shmk_lock_state_name(enum shmk_lock_state s)
{
	switch (s) {
	case SHMK_LOCK_MISSING: return "missing";
	case SHMK_LOCK_FREE: return "free";
	case SHMK_LOCK_HELD: return "held";
	case SHMK_LOCK_REAPER: return "reaper";
	case SHMK_LOCK_BAD: break;
	}
	return "bad";
}

const char *shmk_record_state_name(enum shmk_record_state s)
{
	switch (s) {
	case SHMK_RECORD_OK: return "ok";
	case SHMK_RECORD_BAD: return "bad";
	case SHMK_RECORD_MISSING: break;
	}
	return "missing";
}

int shmk_registry_path(const char *dir, char *buf, size_t len)
{
	char path[PATH_MAX];
	int rc = shmk__dir_resolve(dir, path, sizeof path);

	if (rc < 0)
		return rc;
	if (!buf || strlen(path) >= len)
		return shmk__err(-ENAMETOOLONG, "registry directory %s: does "
				 "not fit a buffer of %zu bytes", path, len);
	memcpy(buf, path, strlen(path) + 1);
	return 0;
}

/* ---- the state of one scan ------------------------------------------------ */

struct scan {
	void *arena;
	struct shmk_scan *out;
	int shmfd, rootfd;
	unsigned flags;
	struct shmk_ident me;
	uid_t uid; /* geteuid(), once */
	long long btime; /* boot time from /proc/stat, -1 unknown */
	long clk_tck;
};

static const char *str(struct scan *s, const char *p)
{
	return p ? shmk__arena_dup(&s->arena, p, strlen(p) + 1, 1) : NULL;
}

/* *dst = a copy of p in the arena; -ENOMEM only if p was not NULL and
 * could not be copied. */
static int set_str(struct scan *s, const char **dst, const char *p)
{
	*dst = str(s, p);
	return p && !*dst ? -ENOMEM : 0;
}

static void read_btime(struct scan *s)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");

	s->btime = -1;
	if ((s->clk_tck = sysconf(_SC_CLK_TCK)) <= 0)
		s->clk_tck = 100;
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &s->btime) == 1)
			break;
	fclose(f);
}

/* Wall-clock start of a process of this boot, or 0 if unknown. */
static int64_t started_at(const struct scan *s, const struct shmk_ident *id)
{
	if (s->btime < 0 || (id->boot_id[0] && s->me.boot_id[0] &&
			     strcmp(id->boot_id, s->me.boot_id) != 0))
		return 0;
	return (int64_t)s->btime +
	       (int64_t)(id->start_time / (unsigned long long)s->clk_tck);
}

/* Owners and strays of the namespace being read, before they are final. */
struct side {
	struct shmk_record rec;
	bool has_rec, loaded;
};
struct ns_build {
	struct shmk_scan_ns *v;
	struct shmk_scan_owner *owners;
	struct side *side; /* per owner, while it is being read */
	size_t n_owners, cap_owners;
	struct shmk_table by_id; /* id (in the arena) -> index + 1 */
	struct shmk_scan_stray *strays;
	size_t n_strays, cap_strays;
	int shmfd;
	struct scan *s;
};

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	void *q;

	if (n < *cap)
		return p;
	if (!(q = reallocarray(p, *cap ? *cap * 2 : 16, size)))
		return NULL;
	*cap = *cap ? *cap * 2 : 16;
	return q;
}

static int owner_get(struct ns_build *b, const char *id, size_t *at)
{
	uintptr_t k = (uintptr_t)shmk__table_get(&b->by_id, id);
	size_t cap = b->cap_owners;
	void *p;

	if (k) {
		*at = k - 1;
		return 0;
	}
	if (!(p = grow(b->owners, &cap, b->n_owners, sizeof *b->owners)))
		return -ENOMEM;
	b->owners = p;
	cap = b->cap_owners;
	if (!(p = grow(b->side, &cap, b->n_owners, sizeof *b->side)))
		return -ENOMEM;
	b->side = p;
	b->cap_owners = cap;

	struct shmk_scan_owner *ow = &b->owners[b->n_owners];
	memset(ow, 0, sizeof *ow);
	memset(&b->side[b->n_owners], 0, sizeof *b->side);
	/* The key lives in the arena: it does not move with the array. */
	if (!(ow->id = str(b->s, id)) ||
	    shmk__table_put(&b->by_id, ow->id,
			    (void *)(uintptr_t)(b->n_owners + 1)) < 0)
		return -ENOMEM;
	*at = b->n_owners++;
	return 0;
}

/* Lists the namespace directory for owners.  Only names of the owner-file
 * grammar are looked at (names.c): a lock file, a record, or the
 * temporary lock file of an owner being born make an owner. */
static int list_owners(struct ns_build *b, int nsfd)
{
	int fd = openat(nsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dh;
	int rc = 0;

	if (fd < 0 || !(dh = fdopendir(fd))) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((errno = 0, d = readdir(dh))) {
		char id[SHMK_ID_MAX];
		enum shmk_ofile kind;
		size_t at;

		if (!shmk__ofile_parse(d->d_name, id, &kind) ||
		    (kind != SHMK_OFILE_LOCK && kind != SHMK_OFILE_RECORD &&
		     kind != SHMK_OFILE_LOCK_TMP))
			continue; /* not an owner's file: never read */
		if ((rc = owner_get(b, id, &at)) < 0)
			break;
		b->side[at].has_rec |= kind == SHMK_OFILE_RECORD;
	}
	if (!rc && errno)
		rc = -errno;
	closedir(dh);
	return rc;
}

/* Reads the owner's record with the reaper's strict parser; a bad one
 * becomes record_error ("<path>: <why>"), never a guess. */
static int load(struct ns_build *b, int nsfd, size_t i)
{
	struct shmk_scan_owner *ow = &b->owners[i];
	struct side *sd = &b->side[i];
	char name[SHMK_ID_MAX + 16], why[256], msg[PATH_MAX + 600];
	int rc;

	if (!sd->has_rec)
		return 0;
	rc = shmk__owner_record_load(nsfd, ow->id, b->v->ns, b->s->uid, &sd->rec, why,
				     sizeof why);
	if (rc == 0) {
		sd->loaded = true;
		ow->record = SHMK_RECORD_OK;
		return 0;
	}
	shmk__record_free(&sd->rec);
	if (rc == -ENOENT) { /* removed since we listed it */
		sd->has_rec = false;
		return 0;
	}
	if (rc == -ENOMEM)
		return rc;
	shmk__ofile_name(ow->id, SHMK_OFILE_RECORD, name, sizeof name);
	snprintf(msg, sizeof msg, "%s/%s: %s", b->v->path, name, why);
	ow->record = SHMK_RECORD_BAD;
	return set_str(b->s, &ow->record_error, msg);
}

/* The library's one liveness judge (liveness.c), asking without taking
 * any lock: a scan and a reap cannot disagree. */
static int judge(struct ns_build *b, int nsfd, size_t i)
{
	struct shmk_scan_owner *ow = &b->owners[i];
	struct side *sd = &b->side[i];
	struct shmk_judgement j;
	const char *note = NULL;

	shmk__owner_judge(nsfd, ow->id, b->s->uid, sd->loaded ? &sd->rec.owner : NULL,
			  false, &j);
	ow->state = j.state == SHMK_LIVE_ALIVE  ? SHMK_OWNER_ALIVE
		    : j.state == SHMK_LIVE_DEAD ? SHMK_OWNER_DEAD
						: SHMK_OWNER_UNKNOWN;
	ow->error = ow->state == SHMK_OWNER_UNKNOWN ? (j.error ? j.error : -EIO)
						    : 0;
	if (j.no_lock)
		ow->lock = SHMK_LOCK_MISSING;
	else if (j.state == SHMK_LIVE_ALIVE && j.holder > 0)
		ow->lock = SHMK_LOCK_HELD;
	else if (j.state == SHMK_LIVE_DEAD && j.other_reaper)
		ow->lock = SHMK_LOCK_REAPER;
	else if (j.state == SHMK_LIVE_UNKNOWN)
		ow->lock = SHMK_LOCK_BAD;
	else
		ow->lock = SHMK_LOCK_FREE;
	ow->lock_holder = ow->lock == SHMK_LOCK_HELD ? j.holder : 0;
	ow->pid = sd->loaded ? sd->rec.owner.pid : j.holder > 0 ? j.holder : 0;
	if (j.no_lock && !sd->loaded && ow->record != SHMK_RECORD_BAD)
		note = "neither lock file nor record";
	else if (j.state != SHMK_LIVE_ALIVE || j.holder <= 0)
		note = j.cause;
	return set_str(b->s, &ow->note, note);
}

/* The record's segments, each with whether its object exists. */
static int segments(struct ns_build *b, size_t i)
{
	struct shmk_scan_owner *ow = &b->owners[i];
	const struct shmk_record *rec = &b->side[i].rec;
	struct shmk_scan_segment *segs;
	struct scan *s = b->s;
	int rc;

	ow->start_time = rec->owner.start_time;
	ow->started = started_at(s, &rec->owner);
	ow->uid = rec->owner.uid;
	ow->created = rec->created;
	if ((rc = set_str(s, &ow->boot_id, rec->owner.boot_id)) < 0 ||
	    (rc = set_str(s, &ow->role, rec->role)) < 0)
		return rc;
	if (!rec->n_segs)
		return 0;
	if (!(segs = shmk__arena_alloc(&s->arena, rec->n_segs * sizeof *segs,
				       _Alignof(struct shmk_scan_segment))))
		return -ENOMEM;
	memset(segs, 0, rec->n_segs * sizeof *segs);
	for (size_t k = 0; k < rec->n_segs; k++) {
		const struct shmk_rec_seg *r = rec->segs[k];
		struct stat st;

		if ((rc = set_str(s, &segs[k].name, r->name)) < 0)
			return rc;
		segs[k].size = r->size;
		segs[k].intent = r->state == SHMK_SEG_INTENT;
		segs[k].created = r->created;
		segs[k].kind = shmk__kind_name(r->kind);
		segs[k].present = fstatat(b->shmfd, r->name + 1, &st,
					  AT_SYMLINK_NOFOLLOW) == 0;
		segs[k].ino = segs[k].present ? (uint64_t)st.st_ino : 0;
	}
	ow->segments = segs;
	ow->n_segments = rec->n_segs;
	return 0;
}

static size_t count_quarantined(const char *path, int nsfd)
{
	char qpath[PATH_MAX + 16];
	struct dirent *d;
	DIR *dh;
	size_t n = 0;
	int fd;

	snprintf(qpath, sizeof qpath, "%s/" SHMK_QUARANTINE, path);
	if (shmk__dir_open_secure(nsfd, SHMK_QUARANTINE, false, qpath, &fd) < 0)
		return 0;
	if (!(dh = fdopendir(fd))) {
		close(fd);
		return 0;
	}
	while ((d = readdir(dh)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dh);
	return n;
}

static int stray_listed(void *arg, const char *name, ino_t ino,
			unsigned char type)
{
	struct ns_build *b = arg;
	struct shmk_scan_stray *st;
	char full[NAME_MAX + 2];
	struct stat sb;
	void *p;

	(void)ino;
	(void)type;
	if (fstatat(b->shmfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone meanwhile */
	if (!(p = grow(b->strays, &b->cap_strays, b->n_strays,
		       sizeof *b->strays)))
		return -ENOMEM;
	b->strays = p;
	st = &b->strays[b->n_strays];
	memset(st, 0, sizeof *st);
	snprintf(full, sizeof full, "/%s", name);
	if (!(st->name = str(b->s, full)))
		return -ENOMEM;
	st->size = (uint64_t)sb.st_size;
	st->ctime = (int64_t)sb.st_ctime;
	st->uid = sb.st_uid;
	st->regular = S_ISREG(sb.st_mode);
	st->ino = (uint64_t)sb.st_ino;
	b->n_strays++;
	return 0;
}

/* Keeps only the listed objects that no record (live or dead) names. */
static int drop_claimed(struct ns_build *b)
{
	struct shmk_table names;
	size_t k = 0;

	if (shmk__table_init(&names, 16) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_owners; i++)
		for (size_t j = 0; j < b->owners[i].n_segments; j++)
			if (shmk__table_put(&names, b->owners[i].segments[j].name,
					    &names) < 0) {
				shmk__table_free(&names);
				return -ENOMEM;
			}
	for (size_t i = 0; i < b->n_strays; i++)
		if (!shmk__table_get(&names, b->strays[i].name))
			b->strays[k++] = b->strays[i];
	b->n_strays = k;
	shmk__table_free(&names);
	return 0;
}

static int cmp_owner(const void *a, const void *b)
{
	return strcmp(((const struct shmk_scan_owner *)a)->id,
		      ((const struct shmk_scan_owner *)b)->id);
}

static int cmp_stray(const void *a, const void *b)
{
	return strcmp(((const struct shmk_scan_stray *)a)->name,
		      ((const struct shmk_scan_stray *)b)->name);
}

/* Moves what was built into the arena, sorted.  Owners that vanished while
 * we looked (no lock file, no record any more: closed or reaped) are
 * left out. */
static int finish(struct ns_build *b)
{
	struct shmk_scan_ns *v = b->v;
	size_t k = 0;

	for (size_t i = 0; i < b->n_owners; i++) {
		const struct shmk_scan_owner *ow = &b->owners[i];
		if (ow->lock == SHMK_LOCK_MISSING && !b->side[i].loaded &&
		    ow->record != SHMK_RECORD_BAD)
			continue;
		b->owners[k++] = *ow;
	}
	if (k) {
		qsort(b->owners, k, sizeof *b->owners, cmp_owner);
		if (!(v->owners = (void *)shmk__arena_dup(
			      &b->s->arena, b->owners, k * sizeof *b->owners,
			      _Alignof(struct shmk_scan_owner))))
			return -ENOMEM;
	}
	v->n_owners = k;
	if (b->n_strays) {
		qsort(b->strays, b->n_strays, sizeof *b->strays, cmp_stray);
		if (!(v->strays = (void *)shmk__arena_dup(
			      &b->s->arena, b->strays,
			      b->n_strays * sizeof *b->strays,
			      _Alignof(struct shmk_scan_stray))))
			return -ENOMEM;
	}
	v->n_strays = b->n_strays;
	return 0;
}

static int ns_error(struct scan *s, struct shmk_scan_ns *v, int rc,
		    const char *msg)
{
	v->error_code = rc;
	return set_str(s, &v->error, msg);
}

/* Reads one namespace into v.  Returns -ENOMEM or 0: a namespace that
 * cannot be read gets v->error. */
static int read_ns(struct scan *s, struct shmk_scan_ns *v)
{
	struct ns_build b = {.v = v, .shmfd = s->shmfd, .s = s};
	char msg[PATH_MAX + 600];
	int nsfd = -1, rc;

	if ((rc = shmk__table_init(&b.by_id, 64)) < 0)
		return rc;
	if (s->flags & SHMK_SCAN_STRAYS) {
		rc = shmk__ns_list(s->shmfd, v->ns, stray_listed, &b);
		if (rc == -ENOMEM)
			goto out;
		if (rc < 0) {
			snprintf(msg, sizeof msg, "shared memory directory: "
				 "cannot list: %s", strerror(-rc));
			if ((rc = ns_error(s, v, rc, msg)) < 0)
				goto out;
		} else {
			v->strays_scanned = 1;
		}
	}
	rc = s->rootfd < 0 ? -ENOENT
			   : shmk__dir_open_secure(s->rootfd, v->ns, false,
						   v->path, &nsfd);
	if (rc == -ENOENT) {
		rc = drop_claimed(&b);
		goto done;
	}
	if (rc < 0) {
		rc = ns_error(s, v, rc, shmk_last_error());
		b.n_strays = 0; /* records unknown: no object is a stray */
		v->strays_scanned = 0;
		goto out;
	}
	v->exists = 1;
	if ((rc = list_owners(&b, nsfd)) < 0) {
		if (rc == -ENOMEM)
			goto out;
		snprintf(msg, sizeof msg, "%s: cannot list: %s", v->path,
			 strerror(-rc));
		rc = ns_error(s, v, rc, msg);
		b.n_owners = b.n_strays = 0;
		v->strays_scanned = 0;
		goto out;
	}
	for (size_t i = 0; i < b.n_owners; i++) {
		if ((rc = load(&b, nsfd, i)) < 0 || (rc = judge(&b, nsfd, i)) < 0 ||
		    (b.side[i].loaded && (rc = segments(&b, i)) < 0))
			goto out;
		shmk__record_free(&b.side[i].rec);
	}
	v->quarantined = count_quarantined(v->path, nsfd);
	rc = drop_claimed(&b);
done:
	if (rc == 0)
		rc = finish(&b);
out:
	for (size_t i = 0; i < b.n_owners; i++)
		shmk__record_free(&b.side[i].rec);
	if (nsfd >= 0)
		close(nsfd);
	shmk__table_free(&b.by_id);
	free(b.owners);
	free(b.side);
	free(b.strays);
	return rc;
}

/* ---- the registry ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct ns_names {
	struct scan *s;
	const char **v;
	size_t n, cap;
};

static int ns_listed(void *arg, const char *ns)
{
	struct ns_names *l = arg;
	void *p = grow(l->v, &l->cap, l->n, sizeof *l->v);

	if (!p)
		return -ENOMEM;
	l->v = p;
	if (!(l->v[l->n] = str(l->s, ns)))
		return -ENOMEM;
	l->n++;
	return 0;
}

/* The namespace directories' names (shmk__registry_list: symlinks too, to
 * be refused aloud), sorted, in the arena. */
static int list_namespaces(struct scan *s, const char ***out, size_t *n_out)
{
	struct ns_names l = {.s = s};
	int rc = shmk__registry_list(s->rootfd, s->out->registry, ns_listed, &l);

	if (rc == 0 && l.n) {
		qsort(l.v, l.n, sizeof *l.v, cmp_str);
		if (!(*out = (const char **)shmk__arena_dup(
			      &s->arena, l.v, l.n * sizeof *l.v,
			      _Alignof(const char *))))
			rc = -ENOMEM;
	}
	free(l.v);
	if (rc == 0)
		*n_out = l.n;
	return rc;
}

/* Fills one item's holders from the pass over /proc. */
static int holders_of(struct scan *s, const struct shmk_holders *h,
		      uint64_t ino, size_t *n, const pid_t **pids,
		      unsigned *held)
{
	pid_t buf[64];
	unsigned how = 0;
	size_t count;

	if (!ino || !(count = shmk__holders_of(h, (ino_t)ino, buf, 64, &how)))
		return 0;
	if (count > 64) {
		pid_t *all = shmk__arena_alloc(&s->arena, count * sizeof *all,
					       _Alignof(pid_t));
		if (!all)
			return -ENOMEM;
		shmk__holders_of(h, (ino_t)ino, all, count, NULL);
		*pids = all;
	} else if (!(*pids = (const pid_t *)shmk__arena_dup(
			     &s->arena, buf, count * sizeof *buf,
			     _Alignof(pid_t)))) {
		return -ENOMEM;
	}
	*n = count;
	*held = (how & SHMK_HELD_FD ? SHMK_HELD_OPEN : 0) |
		(how & SHMK_HELD_MAP ? SHMK_HELD_MAPPED : 0);
	return 0;
}

static int cmp_ns_name(const void *key, const void *elt)
{
	return strcmp(key, ((const struct shmk_scan_ns *)elt)->ns);
}

/* Is ino the inode of an object the namespace still has by name? */
static bool has_name(const struct shmk_scan_ns *v, uint64_t ino)
{
	for (size_t j = 0; j < v->n_owners; j++)
		for (size_t k = 0; k < v->owners[j].n_segments; k++)
			if (v->owners[j].segments[k].present &&
			    v->owners[j].segments[k].ino == ino)
				return true;
	for (size_t j = 0; j < v->n_strays; j++)
		if (v->strays[j].ino == ino)
			return true;
	return false;
}

/* The objects the pass over /proc saw mapped with no name any more, each
 * given to the namespace its name was in ("<ns>.*", a namespace of this
 * scan) unless that namespace still has an object of that inode by name.
 * They come sorted by inode, and so are the namespaces' lists. */
static int find_unlinked(struct scan *s, const struct shmk_holders *h)
{
	struct shmk_scan *out = s->out;
	size_t n = shmk__holders_gone(h);
	struct shmk_scan_unlinked *u;
	size_t *count;
	int rc = 0;

	if (!n || !out->n_ns)
		return 0;
	if (!(count = SHMK_SYSP("malloc", NULL,
				calloc(out->n_ns, sizeof *count))) ||
	    !(u = shmk__arena_alloc(&s->arena, n * sizeof *u,
				    _Alignof(struct shmk_scan_unlinked)))) {
		free(count);
		return -ENOMEM;
	}
	/* Two passes: count per namespace, then lay each one's entries out
	 * side by side in u. */
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		size_t at = 0;
		for (size_t i = 0; i < out->n_ns && pass == 1; i++) {
			struct shmk_scan_ns *v = (struct shmk_scan_ns *)&out->ns[i];
			v->unlinked = count[i] ? u + at : NULL;
			at += count[i];
			count[i] = 0;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			char ns[SHMK_NS_MAX + 1], full[NAME_MAX + 2];
			uint64_t extent;
			ino_t ino;
			const char *name = shmk__holders_gone_at(h, i, &ino,
								 &extent);
			const char *dot = strchr(name, '.');
			const struct shmk_scan_ns *v;
			struct shmk_scan_unlinked *e;
			size_t k;

			if (!dot || (size_t)(dot - name) > SHMK_NS_MAX)
				continue;
			memcpy(ns, name, (size_t)(dot - name));
			ns[dot - name] = '\0';
			if (!(v = bsearch(ns, out->ns, out->n_ns, sizeof *out->ns,
					  cmp_ns_name)) ||
			    has_name(v, ino))
				continue;
			k = (size_t)(v - out->ns);
			if (pass == 0) {
				count[k]++;
				continue;
			}
			e = (struct shmk_scan_unlinked *)&v->unlinked[count[k]];
			memset(e, 0, sizeof *e);
			snprintf(full, sizeof full, "/%s", name);
			e->ino = ino;
			e->size = extent;
			if ((rc = set_str(s, &e->name, full)) == 0)
				rc = holders_of(s, h, ino, &e->n_holders,
						&e->holders, &e->held);
			((struct shmk_scan_ns *)v)->n_unlinked = ++count[k];
		}
	}
	free(count);
	return rc;
}

/* One pass over /proc for the whole scan tells who holds each object, and
 * which objects of its namespaces are mapped with no name any more. */
static int find_holders(struct scan *s)
{
	struct shmk_scan *out = s->out;
	struct shmk_holders *h = NULL;
	struct stat sd;
	int rc = 0;

	if (!out->n_ns)
		return 0;
	if (fstat(s->shmfd, &sd) < 0 || shmk__holders_scan(sd.st_dev, &h) < 0)
		return set_str(s, &out->holders_error, shmk_last_error());
	for (size_t i = 0; i < out->n_ns && !rc; i++) {
		struct shmk_scan_ns *v = (struct shmk_scan_ns *)&out->ns[i];
		for (size_t j = 0; j < v->n_owners && !rc; j++) {
			const struct shmk_scan_owner *ow = &v->owners[j];
			for (size_t k = 0; k < ow->n_segments && !rc; k++) {
				struct shmk_scan_segment *g =
					(struct shmk_scan_segment *)&ow->segments[k];
				rc = holders_of(s, h, g->ino, &g->n_holders,
						&g->holders, &g->held);
			}
		}
		for (size_t j = 0; j < v->n_strays && !rc; j++) {
			struct shmk_scan_stray *t =
				(struct shmk_scan_stray *)&v->strays[j];
			rc = holders_of(s, h, t->ino, &t->n_holders,
					&t->holders, &t->held);
		}
	}
	if (rc == 0)
		rc = find_unlinked(s, h);
	shmk__holders_free(h);
	return rc;
}

static int scan(struct scan *s, const struct shmk_scan_options *o)
{
	struct shmk_scan *out = s->out;
	char dir[PATH_MAX], path[PATH_MAX + SHMK_NS_MAX + 2];
	const char **names = NULL, *one[1];
	struct shmk_scan_ns *views;
	size_t n = 0;
	int rc;

	if (o->ns && (rc = shmk_ns_check(o->ns)) < 0)
		return rc;
	if ((rc = shmk__dir_resolve(o->dir, dir, sizeof dir)) < 0 ||
	    (rc = set_str(s, &out->registry, dir)) < 0 ||
	    (rc = set_str(s, &out->shm_dir, o->shm_dir ? o->shm_dir
						      : SHMK_DEFAULT_SHM_DIR)) < 0)
		return rc;
	if (!(o->flags & SHMK_SCAN_NAMES_ONLY) &&
	    (rc = shmk__shmdir_open(out->shm_dir, &s->shmfd)) < 0)
		return rc;
	/* Never created by a scan; an unmarked directory that is not empty
	 * is not a registry (refused). */
	rc = shmk__registry_open(dir, SHMK_REG_READ, &s->rootfd);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	out->exists = s->rootfd >= 0;
	if (o->ns) {
		one[0] = str(s, o->ns);
		names = one;
		n = 1;
		if (!one[0])
			return -ENOMEM;
	} else if (s->rootfd >= 0 && (rc = list_namespaces(s, &names, &n)) < 0) {
		return rc;
	}
	if (n && !(views = shmk__arena_alloc(&s->arena, n * sizeof *views,
					     _Alignof(struct shmk_scan_ns))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct shmk_scan_ns *v = &views[i];

		memset(v, 0, sizeof *v);
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if ((rc = set_str(s, &v->ns, names[i])) < 0 ||
		    (rc = set_str(s, &v->path, path)) < 0)
			return rc;
		if (o->flags & SHMK_SCAN_NAMES_ONLY)
			v->exists = 1;
		else if ((rc = read_ns(s, v)) < 0)
			return rc;
	}
	out->ns = n ? views : NULL;
	out->n_ns = n;
	if (o->flags & (SHMK_SCAN_NO_HOLDERS | SHMK_SCAN_NAMES_ONLY))
		return 0;
	return find_holders(s);
}

int shmk_registry_scan(const struct shmk_scan_options *opt,
		       struct shmk_scan **out)
{
	static const struct shmk_scan_options none;
	struct scan s = {.shmfd = -1, .rootfd = -1};
	int rc;

	if (!out)
		return shmk__err(-EINVAL, "shmk_registry_scan: out is NULL");
	*out = NULL;
	s.flags = (opt ? opt : &none)->flags;
	s.uid = geteuid();
	if (!(s.out = shmk__arena_alloc(&s.arena, sizeof *s.out,
					_Alignof(struct shmk_scan))))
		return shmk__err(-ENOMEM, "registry scan: out of memory");
	memset(s.out, 0, sizeof *s.out);
	s.out->now = shmk__now();
	if (!(s.flags & SHMK_SCAN_NAMES_ONLY)) {
		if ((rc = shmk__self_ident(&s.me)) < 0) {
			shmk__arena_free(&s.arena);
			return rc;
		}
		read_btime(&s);
	}
	rc = scan(&s, opt ? opt : &none);
	if (s.rootfd >= 0)
		close(s.rootfd);
	if (s.shmfd >= 0)
		close(s.shmfd);
	if (rc < 0) {
		if (rc == -ENOMEM)
			shmk__err(-ENOMEM, "registry scan: out of memory");
		shmk__arena_free(&s.arena);
		return rc;
	}
	s.out->private_ = s.arena;
	*out = s.out;
	return 0;
}

void shmk_scan_free(struct shmk_scan *scan)
{
	void *arena;

	if (!scan)
		return;
	arena = scan->private_; /* scan itself lives in it */
	shmk__arena_free(&arena);
}
