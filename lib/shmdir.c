/* SPDX-License-Identifier: MIT */
/* shmdir.c - the shared memory directory: opening it without trusting it,
 * listing a namespace's objects in it, and the claim that binds a
 * namespace to one registry.
 *
 * Every process of the host meets in the shm directory, co-tenants
 * included, so nothing read from it is trusted: the directory itself is
 * opened without following any symlink and refused unless it is /dev/shm
 * alike (root's and sticky) or our own private one; a namespace's objects
 * are the names of the names.c rule only; what counts against a budget is
 * our own regular files by the memory they really take; and the claim
 * object below is read, never believed, when another user could have put
 * it there. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- opening the directory ----------------------------------------------- */

/* Opens path one component at a time, each with O_NOFOLLOW, so that a
 * symlink anywhere on the path is refused and named. */
static int walk_nofollow(const char *path, int *out)
{
	char buf[PATH_MAX], *save = NULL, *comp, *next;
	int at = -1, fd = -1, rc;

	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return shmk__err(-ENAMETOOLONG,
				 "shared memory directory %.64s...: path too "
				 "long",
				 path);
	at = open(path[0] == '/' ? "/" : ".",
		  O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (at < 0)
		return shmk__err(-errno, "shared memory directory %s: %s",
				 path, strerror(errno));
	comp = strtok_r(buf, "/", &save);
	if (!comp) { /* "/" itself */
		fd = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fd < 0 ? -errno : 0;
		goto done;
	}
	for (; comp; comp = next) {
		next = strtok_r(NULL, "/", &save);
		/* Intermediate components need only search permission. */
		fd = openat(at, comp,
			    (next ? O_PATH : O_RDONLY) | O_DIRECTORY |
				    O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			struct stat st;
			rc = -errno;
			if ((rc == -ELOOP || rc == -ENOTDIR) &&
			    fstatat(at, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode)) {
				shmk__close(&at);
				if (!next)
					return shmk__err(-ELOOP,
							 "shared memory directory "
							 "%s: refused: it is a "
							 "symlink",
							 path);
				return shmk__err(-ELOOP,
						 "shared memory directory %s: "
						 "refused: \"%s\" on its path is "
						 "a symlink",
						 path, comp);
			}
			goto done;
		}
		shmk__close(&at);
		at = fd;
		fd = -1;
	}
	fd = at;
	at = -1;
	rc = 0;
done:
	shmk__close(&at);
	if (rc < 0)
		return shmk__err(rc, "shared memory directory %s: %s", path,
				 strerror(-rc));
	*out = fd;
	return 0;
}

int shmk__shmdir_open(const char *path, int *out)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_NO_SYMLINKS};
	struct stat st;
	int fd, rc;

	*out = -1;
	if (!path || !path[0])
		return shmk__err(-EINVAL, "shared memory directory: empty path");
	fd = SHMK_SYS("openat2", (int)syscall(SYS_openat2, AT_FDCWD, path, &how,
					    sizeof how));
	if (fd < 0) {
		/* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that
		 * does not know the call; EAGAIN: a concurrent rename (the
		 * walk does not care); ELOOP: find out which component. */
		if (errno != ENOSYS && errno != EPERM && errno != EAGAIN &&
		    errno != ELOOP)
			return shmk__err(-errno, "shared memory directory %s: %s",
					 path, strerror(errno));
		if ((rc = walk_nofollow(path, &fd)) < 0)
			return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		shmk__close(&fd);
		return shmk__err(rc, "shared memory directory %s: %s", path,
				 strerror(-rc));
	}
	/* /dev/shm: root's, and sticky, so no one removes or renames what
	 * another user created in it.  Or a private one: ours, and no one
	 * else may create in it. */
	if (st.st_uid == 0 && (st.st_mode & S_ISVTX)) {
		*out = fd;
		return 0;
	}
	if (st.st_uid != geteuid()) {
		shmk__close(&fd);
		return shmk__err(-EPERM,
				 "shared memory directory %s: refused: owned by "
				 "uid %u, neither root-owned and sticky nor ours "
				 "(uid %u)",
				 path, (unsigned)st.st_uid, (unsigned)geteuid());
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		shmk__close(&fd);
		return shmk__err(-EPERM,
				 "shared memory directory %s: refused: group or "
				 "world writable without the sticky bit (mode "
				 "%04o)",
				 path, (unsigned)(st.st_mode & 07777));
	}
	*out = fd;
	return 0;
}

/* ---- one listing of a namespace ----------------------------------------- */

int shmk__ns_list(int shmfd, const char *ns, shmk__ns_fn fn, void *arg)
{
	int fd = openat(shmfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		rc = -errno;
		shmk__close(&fd);
		return shmk__err(rc, "shared memory directory: cannot list: %s",
				 strerror(-rc));
	}
	for (;;) {
		errno = 0;
		if (!(d = readdir(dir))) {
			if (errno)
				rc = shmk__err(-errno,
					       "shared memory directory: cannot "
					       "list: %s",
					       strerror(errno));
			break;
		}
		/* The claim object starts with '.', which no namespace does. */
		if (!shmk__fullname_in_ns(d->d_name, ns))
			continue;
		if ((rc = fn(arg, d->d_name, d->d_ino, d->d_type)) != 0)
			break;
	}
	closedir(dir);
	return rc;
}

/* ---- a set of inode numbers (open addressing; 0 is never an inode) ---- */
#define INOSET_MAX (1u << 20) /* a co-tenant churning names: start over */

bool shmk__inoset_has(const struct shmk_inoset *s, uint64_t ino)
{
	if (!s || !s->cap || !ino)
		return false;
	for (size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (s->cap - 1);;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == ino)
			return true;
		if (!s->v[i])
			return false;
	}
}

void shmk__inoset_add(struct shmk_inoset *s, uint64_t ino)
{
	if (!s || !ino || shmk__inoset_has(s, ino))
		return;
	if (s->used >= INOSET_MAX)
		shmk__inoset_free(s);
	if (2 * (s->used + 1) > s->cap) {
		struct shmk_inoset n = {.cap = s->cap ? 2 * s->cap : 64};
		if (!(n.v = calloc(n.cap, sizeof *n.v)))
			return; /* only a cache: the next scan stats again */
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				shmk__inoset_add(&n, s->v[i]);
		free(s->v);
		*s = n;
	}
	for (size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ull) & (s->cap - 1);;
	     i = (i + 1) & (s->cap - 1))
		if (!s->v[i]) {
			s->v[i] = ino;
			s->used++;
			return;
		}
}

void shmk__inoset_free(struct shmk_inoset *s)
{
	if (!s)
		return;
	free(s->v);
	s->v = NULL;
	s->cap = s->used = 0;
}

struct usage {
	int shmfd;
	uid_t uid;
	uint64_t count, bytes;
	struct shmk_inoset *foreign;
};

static int usage_one(void *arg, const char *name, ino_t ino,
		     unsigned char type)
{
	struct usage *u = arg;
	struct stat st;

	if (type != DT_REG && type != DT_UNKNOWN)
		return 0;
	/* Another user's object seen before (under this inode number, which
	 * it keeps as long as it exists): not ours, no stat.  A co-tenant's
	 * 100,000 objects under our prefix cost one stat each once, not at
	 * every admission. */
	if (shmk__inoset_has(u->foreign, (uint64_t)ino))
		return 0;
	if (SHMK_SYS("fstatat", fstatat(u->shmfd, name, &st,
					AT_SYMLINK_NOFOLLOW)) < 0)
		return 0; /* gone since the listing */
	if (!S_ISREG(st.st_mode) || st.st_uid != u->uid) {
		shmk__inoset_add(u->foreign, (uint64_t)st.st_ino);
		return 0; /* not ours */
	}
	u->count++;
	u->bytes += (uint64_t)st.st_blocks * 512u;
	return 0;
}

int shmk__ns_usage(int shmfd, const char *ns, uint64_t *count,
		   uint64_t *bytes, struct shmk_inoset *foreign)
{
	struct usage u = {.shmfd = shmfd, .uid = geteuid(), .foreign = foreign};
	int rc = shmk__ns_list(shmfd, ns, usage_one, &u);

	*count = u.count;
	*bytes = u.bytes;
	return rc;
}

/* ---- the namespace claim ------------------------------------------------- */
/*
 * "<shm dir>/.shmkeeper-claim.<uid>.<ns>": a regular file, 0600, ours, whose
 * one JSON line names the registry the namespace belongs to by path, device
 * and inode.  It cannot be a segment name (those are "<ns>.<x>" and no
 * namespace starts with a dot); the uid keeps users' claims apart.
 *
 * It appears complete or not at all: written unnamed (O_TMPFILE), then
 * linked into place, which fails if someone claimed first.  A claim whose
 * registry no longer exists at its path with its device and inode is stale
 * and replaced, under an flock on the stale file, by a rename over it.
 *
 * The library never removes a claim: it is a few hundred bytes, a later
 * open of the namespace with the same registry reuses it, and the shm
 * directory is emptied at boot.  Removing it at close would race with
 * another process of the same namespace opening it.
 */
#define CLAIM_FORMAT "shmkeeper-claim"
#define CLAIM_VERSION 1
#define CLAIM_MAX 8192
#define CLAIM_TRIES 8

struct claim {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
};

static void claim_name(char *out, size_t sz, const char *ns)
{
	snprintf(out, sz, "%s%u.%s", SHMK_CLAIM_PREFIX, (unsigned)geteuid(),
		 ns);
}

/* Absolute path of the registry for the claim (and messages). */
static void abs_path(const char *p, char *out, size_t sz)
{
	char cwd[PATH_MAX];

	if (p[0] == '/' || !getcwd(cwd, sizeof cwd))
		snprintf(out, sz, "%s", p);
	else
		snprintf(out, sz, "%s/%s", cwd, p);
}

/* Parses a claim's content.  0 or -EINVAL. */
static int claim_parse(const char *buf, const char *ns, struct claim *cl)
{
	cJSON *doc = cJSON_Parse(buf);
	const cJSON *f, *v, *n, *r, *d, *i;
	int rc = -EINVAL;

	if (!doc)
		return -EINVAL;
	f = cJSON_GetObjectItemCaseSensitive(doc, "format");
	v = cJSON_GetObjectItemCaseSensitive(doc, "version");
	n = cJSON_GetObjectItemCaseSensitive(doc, "ns");
	r = cJSON_GetObjectItemCaseSensitive(doc, "registry");
	d = cJSON_GetObjectItemCaseSensitive(doc, "dev");
	i = cJSON_GetObjectItemCaseSensitive(doc, "ino");
	if (cJSON_IsString(f) && !strcmp(f->valuestring, CLAIM_FORMAT) &&
	    cJSON_IsNumber(v) && v->valuedouble == CLAIM_VERSION &&
	    cJSON_IsString(n) && !strcmp(n->valuestring, ns) &&
	    cJSON_IsString(r) && r->valuestring[0] == '/' &&
	    strlen(r->valuestring) < sizeof cl->path && cJSON_IsNumber(d) &&
	    d->valuedouble >= 0 && cJSON_IsNumber(i) && i->valuedouble > 0) {
		snprintf(cl->path, sizeof cl->path, "%s", r->valuestring);
		cl->dev = (dev_t)d->valuedouble;
		cl->ino = (ino_t)i->valuedouble;
		rc = 0;
	}
	cJSON_Delete(doc);
	return rc;
}

/* The claim's JSON line (malloc'd) or NULL. */
static char *claim_format(const char *ns, const char *regpath,
			  const struct stat *reg)
{
	cJSON *doc = cJSON_CreateObject();
	char *s = NULL, *line = NULL;

	/* dev and ino fit a double exactly on every file system we meet
	 * (below 2^53); cJSON prints them as integers. */
	if (doc && cJSON_AddStringToObject(doc, "format", CLAIM_FORMAT) &&
	    cJSON_AddNumberToObject(doc, "version", CLAIM_VERSION) &&
	    cJSON_AddStringToObject(doc, "ns", ns) &&
	    cJSON_AddStringToObject(doc, "registry", regpath) &&
	    cJSON_AddNumberToObject(doc, "dev", (double)reg->st_dev) &&
	    cJSON_AddNumberToObject(doc, "ino", (double)reg->st_ino) &&
	    (s = cJSON_PrintUnformatted(doc)) &&
	    (line = malloc(strlen(s) + 2)))
		sprintf(line, "%s\n", s);
	free(s);
	cJSON_Delete(doc);
	return line;
}

/* Opens the claim name.  0 with *fd and *st; -ENOENT; 1 if it is there but
 * not something we can believe (another user's, not a regular file). */
static int claim_open(int shmfd, const char *name, int *fd, struct stat *st)
{
	*fd = openat(shmfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					  O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? -ENOENT : 1;
	if (fstat(*fd, st) < 0 || !S_ISREG(st->st_mode) ||
	    st->st_uid != geteuid() || st->st_size > CLAIM_MAX) {
		shmk__close(fd);
		return 1;
	}
	return 0;
}

/* Reads and parses an opened claim: 0, or 1 if unreadable/unparsable. */
static int claim_read(int fd, const char *ns, struct claim *cl)
{
	char buf[CLAIM_MAX + 1];
	size_t len = 0;
	ssize_t n;

	while (len < CLAIM_MAX &&
	       (n = pread(fd, buf + len, CLAIM_MAX - len, (off_t)len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return claim_parse(buf, ns, cl) < 0 ? 1 : 0;
}

/* Does the registry a claim names still exist at its path, as itself?
 * 1 yes, 0 no (stale).  What cannot be looked at counts as alive: a
 * binding is never dropped on a guess. */
static int claim_alive(const struct claim *cl)
{
	struct stat st;

	if (stat(cl->path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : 1;
	return S_ISDIR(st.st_mode) && st.st_dev == cl->dev &&
	       st.st_ino == cl->ino;
}

/* Writes line into an unnamed file in the shm directory: the fd, or
 * -errno. */
static int claim_tmpfile(int shmfd, const char *line)
{
	int fd = SHMK_SYS("openat", openat(shmfd, ".",
					   O_TMPFILE | O_WRONLY | O_CLOEXEC,
					   0600));
	int rc;

	if (fd < 0)
		return -errno;
	rc = fchmod(fd, 0600) < 0 ? -errno : 0; /* the umask may be odd */
	if (rc == 0)
		rc = shmk__write_all(fd, line, strlen(line), "shmk/claim/write");
	if (rc < 0) {
		shmk__close(&fd);
		return rc;
	}
	return fd;
}

/* Links the unnamed fd to shmfd/name: 0 or -errno (-EEXIST: taken). */
static int claim_link(int fd, int shmfd, const char *name)
{
	char proc[64];

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, shmfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT) /* ENOENT: no /proc; try the other way */
		return -errno;
	/* Needs CAP_DAC_READ_SEARCH; the last resort without /proc. */
	return linkat(fd, "", shmfd, name, AT_EMPTY_PATH) == 0 ? 0 : -errno;
}

/* Replaces the stale claim open as oldfd (its inode st) with ours, holding
 * an flock on it so that two replacers cannot both win: 0 done, -EAGAIN
 * look again (the name changed under us), 1 leave unclaimed. */
static int claim_replace(int shmfd, const char *name, int oldfd,
			 const struct stat *old, const char *line)
{
	char tmp[NAME_MAX + 1];
	struct stat now;
	struct timespec ms = {0, 1000000};
	int fd = -1, rc = 1, i;

	/* Bounded (invariant 8): a holder only writes a few hundred bytes. */
	for (i = 0; i < 100 && flock(oldfd, LOCK_EX | LOCK_NB) < 0; i++) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return 1;
		nanosleep(&ms, NULL);
	}
	if (i == 100)
		return 1;
	/* Under the lock: is the stale file still the one the name holds? */
	if (fstatat(shmfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_ino != old->st_ino || now.st_dev != old->st_dev)
		return -EAGAIN; /* replaced meanwhile: read the new one */
	if ((fd = claim_tmpfile(shmfd, line)) < 0)
		return 1;
	/* The fixed temporary name is ours to reuse while we hold the lock;
	 * a crash leaves at most this one file per namespace. */
	snprintf(tmp, sizeof tmp, "%s.new", name);
	if (unlinkat(shmfd, tmp, 0) < 0 && errno != ENOENT)
		goto out; /* another user's squat (or worse): unclaimed */
	if (claim_link(fd, shmfd, tmp) < 0)
		goto out;
	if (renameat(shmfd, tmp, shmfd, name) < 0) {
		unlinkat(shmfd, tmp, 0);
		goto out;
	}
	rc = 0;
out:
	shmk__close(&fd);
	return rc;
}

static int busy(const char *ns, const struct claim *cl, const char *mine)
{
	return shmk__err(-EBUSY,
			 "namespace %s is bound to registry %s (%ju:%ju); this "
			 "process resolved %s; use --dir/SHMKEEPER_DIR=%s",
			 ns, cl->path, (uintmax_t)cl->dev, (uintmax_t)cl->ino,
			 mine, cl->path);
}

int shmk__claim_bind(int shmfd, const char *shm_path, const char *ns,
		     const char *regpath, int regfd)
{
	char name[NAME_MAX + 1], mine[PATH_MAX];
	char *line = NULL;
	struct stat reg, st;
	struct claim cl;
	int fd = -1, rc = 1;

	(void)shm_path;
	if (fstat(regfd, &reg) < 0)
		return shmk__err(-errno, "registry %s: %s", regpath,
				 strerror(errno));
	abs_path(regpath, mine, sizeof mine);
	claim_name(name, sizeof name, ns);
	if (!(line = claim_format(ns, mine, &reg)))
		return shmk__err(-ENOMEM, "namespace %s: claim: out of memory",
				 ns);
	/* Each turn either settles or sees the name change under it
	 * (another process claimed or replaced it): bounded. */
	for (int tries = 0; tries < CLAIM_TRIES; tries++) {
		int r = claim_open(shmfd, name, &fd, &st);

		if (r == -ENOENT) {
			int tfd = claim_tmpfile(shmfd, line);
			if (tfd < 0) {
				rc = 1; /* no O_TMPFILE here: unclaimed */
				goto out;
			}
			r = claim_link(tfd, shmfd, name);
			shmk__close(&tfd);
			if (r == 0) {
				rc = 0;
				goto out;
			}
			if (r != -EEXIST) {
				rc = 1;
				goto out;
			}
			continue; /* someone claimed first: read theirs */
		}
		if (r != 0 || claim_read(fd, ns, &cl) != 0) {
			/* A co-tenant's squat, or a claim we cannot read: no
			 * co-tenant can deny us service, so go on unclaimed. */
			rc = 1;
			goto out;
		}
		if (cl.dev == reg.st_dev && cl.ino == reg.st_ino) {
			rc = 0;
			goto out;
		}
		if (claim_alive(&cl)) {
			rc = busy(ns, &cl, mine);
			goto out;
		}
		r = claim_replace(shmfd, name, fd, &st, line);
		shmk__close(&fd);
		if (r != -EAGAIN) {
			rc = r;
			goto out;
		}
	}
	rc = 1; /* the name kept changing: settle for unclaimed */
out:
	shmk__close(&fd);
	free(line);
	return rc;
}

int shmk__claim_check(int shmfd, const char *ns, int regfd, char *other,
		      size_t otherlen)
{
	char name[NAME_MAX + 1];
	struct stat reg, st;
	struct claim cl;
	int fd = -1, rc = 0;

	if (other && otherlen)
		other[0] = '\0';
	if (fstat(regfd, &reg) < 0)
		return 0;
	claim_name(name, sizeof name, ns);
	if (claim_open(shmfd, name, &fd, &st) != 0)
		return 0;
	if (claim_read(fd, ns, &cl) == 0) {
		if (cl.dev == reg.st_dev && cl.ino == reg.st_ino) {
			rc = 1;
		} else if (claim_alive(&cl)) {
			if (other && otherlen)
				snprintf(other, otherlen, "%s", cl.path);
			rc = shmk__err(-EBUSY,
				       "namespace %s is bound to registry %s "
				       "(%ju:%ju), not to this one; use "
				       "--dir/SHMKEEPER_DIR=%s",
				       ns, cl.path, (uintmax_t)cl.dev,
				       (uintmax_t)cl.ino, cl.path);
		}
	}
	shmk__close(&fd);
	return rc;
}
