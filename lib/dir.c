/* SPDX-License-Identifier: MIT */
/* dir.c - finding and opening the registry directory, failing closed, and
 * the marker that proves a directory is a registry.
 *
 * Everything below the registry root is reached through directory fds
 * (openat/renameat/unlinkat), so a path swapped for a symlink after the
 * check cannot redirect us. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Is fd a directory of uid that no other user can write to? */
static bool dir_fd_ours(int fd, uid_t uid)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid &&
	       !(st.st_mode & (S_IWGRP | S_IWOTH));
}

int shmk__dir_fallback(uid_t uid, const char *home, const char *run_user,
		       char *out, size_t outsz)
{
	static const char *const parents[] = {".local", "state"};
	char p[PATH_MAX];
	int fd = -1, next, n = -1;

	/* 1. The runtime directory logind makes for the user (what
	 *    XDG_RUNTIME_DIR names in a session).  Only root can create
	 *    entries in /run/user. */
	if (run_user && snprintf(p, sizeof p, "%s/%u", run_user,
				 (unsigned)uid) < (int)sizeof p &&
	    (fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		bool ours = dir_fd_ours(fd, uid);
		shmk__close(&fd);
		if (ours)
			return snprintf(out, outsz, "%s/shmkeeper", p);
	}
	/* 2. <home>/.local/state/shmkeeper, the parents made 0700, if home
	 *    and each parent are directories of uid that nobody else can
	 *    write to (so nobody else can have made them, or put a symlink
	 *    there). */
	if (home && home[0] == '/' && home[1]) {
		fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		for (size_t i = 0; fd >= 0 && i <= 2; i++) {
			if (!dir_fd_ours(fd, uid))
				break;
			if (i == 2) { /* home, .local, state: all ours */
				n = snprintf(out, outsz,
					     "%s/.local/state/shmkeeper", home);
				break;
			}
			if (mkdirat(fd, parents[i], 0700) < 0 && errno != EEXIST)
				break;
			next = openat(fd, parents[i],
				      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			shmk__close(&fd);
			fd = next;
		}
		shmk__close(&fd);
		if (n >= 0)
			return n;
	}
	/* 3. As before: anybody can pre-create it, and then it is refused
	 *    (not ours) rather than used. */
	return snprintf(out, outsz, "/tmp/shmkeeper-%u", (unsigned)uid);
}

/* The home directory of uid from the password database (not $HOME, which
 * sudo and su may carry over from another user), or NULL. */
static const char *home_of(uid_t uid, char **buf)
{
	struct passwd pw, *res = NULL;
	size_t sz = 4096;

	*buf = NULL;
	for (;;) {
		char *b = realloc(*buf, sz);
		int e;

		if (!b)
			break;
		*buf = b;
		e = getpwuid_r(uid, &pw, b, sz, &res);
		if (e != ERANGE || sz >= (1u << 20))
			break;
		sz *= 2;
	}
	return res && res->pw_dir ? res->pw_dir : NULL;
}

/* The registry directory, first that applies:
 *   1. arg (the caller's shmk_options.dir, a tool's --dir);
 *   2. $SHMKEEPER_DIR;
 *   3. /run/shmkeeper for root;
 *   4. $XDG_RUNTIME_DIR/shmkeeper;
 *   5. a place no other user can pre-create (shmk__dir_fallback()):
 *      /run/user/<uid>/shmkeeper if that runtime directory is ours and not
 *      group/world writable, else <home>/.local/state/shmkeeper with home
 *      from the password database (parents created 0700, home ours), else
 *      /tmp/shmkeeper-<uid>, which another user can squat: then it is
 *      refused (not ours) by shmk__dir_open_secure(), never used. */
int shmk__dir_resolve(const char *arg, char *out, size_t outsz)
{
	const char *env;
	char *pwbuf;
	int n;

	char cwd[PATH_MAX];
	const char *given = arg && arg[0] ? arg
			    : (env = getenv("SHMKEEPER_DIR")) && env[0] ? env
									: NULL;

	/* A relative path is made absolute: the namespace claim names the
	 * registry to every process of the host, whatever its directory. */
	if (given && given[0] != '/' && getcwd(cwd, sizeof cwd))
		n = snprintf(out, outsz, "%s/%s", strcmp(cwd, "/") ? cwd : "",
			     given);
	else if (given)
		n = snprintf(out, outsz, "%s", given);
	else if (geteuid() == 0)
		n = snprintf(out, outsz, "/run/shmkeeper");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && env[0] == '/')
		n = snprintf(out, outsz, "%s/shmkeeper", env);
	else {
		n = shmk__dir_fallback(geteuid(), home_of(geteuid(), &pwbuf),
				       "/run/user", out, outsz);
		free(pwbuf);
	}
	/* Leave room below it for "/<ns>/<file>" (and quarantine names). */
	if (n < 0 || (size_t)n >= outsz - 512)
		return shmk__err(-ENAMETOOLONG,
				 "registry directory \"%.64s...\": path too long",
				 out);
	/* Strip trailing slashes ("/run/x/" -> "/run/x") but keep "/". */
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

int shmk__dir_open_secure(int atfd, const char *name, bool create,
			  const char *path, int *out)
{
	struct stat st;
	int fd, tries = 0;

	*out = -1;
	fiu_return_on("shmk/dir/open", shmk__err(-EACCES,
		      "registry directory %s: cannot open: injected fault",
		      path));
again:
	if (create && SHMK_SYS("mkdir", mkdirat(atfd, name, 0700)) < 0 &&
	    errno != EEXIST)
		return shmk__err(-errno,
				 "registry directory %s: cannot create: %s",
				 path, strerror(errno));
	(void)fiu_fail("shmk/test/dir/after_mkdir");
	/* A reaper removes an empty namespace directory that no context
	 * holds (shmk__ns_rmdir()): between our mkdir and here it may have
	 * gone.  Make it again (a few times: each needs a whole reap in
	 * between). */
	if (fstatat(atfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT && create && tries++ < 8)
			goto again;
		return shmk__err(-errno, "registry directory %s: %s", path,
				 strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return shmk__err(-ELOOP,
				 "registry directory %s: refused: it is a "
				 "symlink",
				 path);
	if (!S_ISDIR(st.st_mode))
		return shmk__err(-ENOTDIR,
				 "registry directory %s: refused: not a "
				 "directory",
				 path);
	fd = SHMK_SYS("openat", openat(atfd, name, O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0 && errno == ENOENT && create && tries++ < 8)
		goto again;
	if (fd < 0)
		return shmk__err(-errno,
				 "registry directory %s: cannot open: %s", path,
				 strerror(errno));
	/* Check what we actually opened, not what the path named earlier. */
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		shmk__close(&fd);
		return shmk__err(rc, "registry directory %s: %s", path,
				 strerror(-rc));
	}
	if (!S_ISDIR(st.st_mode)) {
		shmk__close(&fd);
		return shmk__err(-ENOTDIR,
				 "registry directory %s: refused: not a "
				 "directory",
				 path);
	}
	if (st.st_uid != geteuid()) {
		shmk__close(&fd);
		return shmk__err(-EPERM,
				 "registry directory %s: refused: owned by uid "
				 "%u, not by us (uid %u)",
				 path, (unsigned)st.st_uid, (unsigned)geteuid());
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		shmk__close(&fd);
		return shmk__err(-EPERM,
				 "registry directory %s: refused: group or "
				 "world writable (mode %04o)",
				 path, (unsigned)(st.st_mode & 07777));
	}
	*out = fd;
	return 0;
}

bool shmk__fd_is_volatile(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0)
		return false; /* unknown: be durable */
	return sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC;
}

/* ---- the registry marker ----------------------------------------------------
 *
 * A registry proves it is one (DESIGN.md, "The registry"): its root holds
 * SHMK_REGISTRY_MARKER, a regular file of ours holding the one JSON line
 * below.  Nothing below an unmarked directory is ever read as a record,
 * deleted or quarantined; the marker is written only into a directory that
 * is empty (a new registry) or by an explicit adoption that checked every
 * entry (shmk__registry_adopt). */

#define MARKER_LINE                                                         \
	"{\"format\":\"" SHMK_REGISTRY_FORMAT "\",\"version\":" SHMK_STR(  \
		SHMK_REGISTRY_VERSION) "}\n"
#define SHMK_STR(x) SHMK_STR_(x)
#define SHMK_STR_(x) #x
#define MARKER_READ_MAX 256

/* Checks dirfd's marker: 0 valid, -ENOENT (no error set) if there is none,
 * else the refusal with its sentence. */
static int marker_check(int dirfd, const char *path)
{
	char buf[MARKER_READ_MAX + 1];
	const char *end = NULL;
	cJSON *doc = NULL, *fmt, *ver;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	fd = SHMK_SYS("openat", openat(dirfd, SHMK_REGISTRY_MARKER,
				       O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					       O_NOCTTY | O_CLOEXEC));
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0 && errno == ELOOP)
		return shmk__err(-ELOOP, "registry directory %s: refused: its "
					 "marker " SHMK_REGISTRY_MARKER " is a "
					 "symlink",
				 path);
	if (fd < 0)
		return shmk__err(-errno, "registry directory %s: cannot open "
					 "its marker " SHMK_REGISTRY_MARKER ": %s",
				 path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = shmk__err(-errno, "registry directory %s: marker %s: %s",
			       path, SHMK_REGISTRY_MARKER, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = shmk__err(-EINVAL, "registry directory %s: refused: its "
					"marker " SHMK_REGISTRY_MARKER " is not "
					"a regular file",
			       path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		rc = shmk__err(-EPERM, "registry directory %s: refused: its "
				       "marker " SHMK_REGISTRY_MARKER " is owned "
				       "by uid %u, not by us (uid %u)",
			       path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		rc = shmk__err(-EPERM, "registry directory %s: refused: its "
				       "marker " SHMK_REGISTRY_MARKER " is group "
				       "or world writable (mode %04o)",
			       path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof buf - 1 &&
	       (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = shmk__err(-errno, "registry directory %s: cannot "
					       "read its marker %s: %s",
				       path, SHMK_REGISTRY_MARKER,
				       strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	/* One JSON object, then at most a newline: nothing else is ours. */
	if (len == sizeof buf - 1 || strlen(buf) != len ||
	    !(doc = cJSON_ParseWithOpts(buf, &end, false)) ||
	    !cJSON_IsObject(doc) || strspn(end, "\n") != strlen(end)) {
		rc = shmk__err(-EINVAL, "registry directory %s: refused: its "
					"marker " SHMK_REGISTRY_MARKER " is not "
					"one JSON object of at most %d bytes",
			       path, MARKER_READ_MAX - 1);
		goto out;
	}
	fmt = cJSON_GetObjectItemCaseSensitive(doc, "format");
	ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
	if (!cJSON_IsString(fmt) ||
	    strcmp(fmt->valuestring, SHMK_REGISTRY_FORMAT) != 0) {
		rc = shmk__err(-EINVAL, "registry directory %s: refused: its "
					"marker " SHMK_REGISTRY_MARKER " is not "
					"a shmkeeper registry marker (format is "
					"not \"" SHMK_REGISTRY_FORMAT "\")",
			       path);
		goto out;
	}
	if (!cJSON_IsNumber(ver) || ver->valuedouble < 1 ||
	    ver->valuedouble > 1e9 ||
	    ver->valuedouble != (double)(int)ver->valuedouble) {
		rc = shmk__err(-EINVAL, "registry directory %s: refused: its "
					"marker " SHMK_REGISTRY_MARKER " has no "
					"valid version (a positive integer)",
			       path);
		goto out;
	}
	if ((int)ver->valuedouble > SHMK_REGISTRY_VERSION) {
		rc = shmk__err(-EPROTONOSUPPORT,
			       "registry directory %s: refused: its marker "
			       SHMK_REGISTRY_MARKER " says format version %d, "
			       "newer than this library reads (%d)",
			       path, (int)ver->valuedouble,
			       SHMK_REGISTRY_VERSION);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	shmk__close(&fd);
	return rc;
}

/* Writes dirfd's marker complete or not at all: an unnamed file, written
 * in full, then linked into place, so no reader ever meets a half-written
 * marker.  0 written, 1 if a concurrent opener linked one first (check
 * theirs), or -errno with the sentence. */
static int marker_write(int dirfd, const char *path)
{
	static const char line[] = MARKER_LINE;
	bool durable = !shmk__fd_is_volatile(dirfd);
	char proc[64];
	int fd = -1, rc;

	/* Tests: "shmk/marker/tmpfile" acts as a filesystem without
	 * O_TMPFILE, to drive the fallback. */
	fd = fiu_fail("shmk/marker/tmpfile")
		     ? (errno = EOPNOTSUPP, -1)
		     : SHMK_SYS("openat",
				openat(dirfd, ".",
				       O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
		       errno == EINVAL))
		goto fallback; /* no O_TMPFILE here */
	if (fd < 0)
		return shmk__err(-errno, "registry directory %s: cannot create "
					 "its marker " SHMK_REGISTRY_MARKER ": %s",
				 path, strerror(errno));
	if ((rc = shmk__write_all(fd, line, sizeof line - 1,
				  "shmk/marker/write")) < 0)
		goto fail;
	/* Once per registry: a marker lost to a power cut would leave a
	 * registry that refuses to open, so it is synced where that can
	 * happen (not on tmpfs, which a power cut empties anyway). */
	if (durable && SHMK_SYS("fsync", fsync(fd)) < 0) {
		rc = -errno;
		goto fail;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (SHMK_SYS("link", linkat(AT_FDCWD, proc, dirfd,
				    SHMK_REGISTRY_MARKER,
				    AT_SYMLINK_FOLLOW)) < 0) {
		rc = -errno;
		if (rc == -EEXIST) {
			shmk__close(&fd);
			return 1;
		}
		if (rc == -ENOENT) { /* no /proc */
			shmk__close(&fd);
			goto fallback;
		}
		goto fail;
	}
	shmk__close(&fd);
	if (durable && SHMK_SYS("fsync", fsync(dirfd)) < 0)
		return shmk__err(-errno, "registry directory %s: cannot fsync "
					 "after writing its marker: %s",
				 path, strerror(errno));
	return 0;
fail:
	shmk__close(&fd);
	return shmk__err(rc, "registry directory %s: cannot write its marker "
			     SHMK_REGISTRY_MARKER ": %s",
			 path, strerror(-rc));
fallback:
	/* Temp file, full write, rename: complete or not at all too.  A
	 * concurrent opener's identical marker may be replaced: no harm. */
	return shmk__replace(dirfd, path, SHMK_REGISTRY_MARKER, line,
			     sizeof line - 1, durable, NULL);
}

/* Does dirfd hold nothing (but a leftover temp file of the marker)?
 * 1 empty, 0 not (the first entry in first), -errno. */
static int dir_empty(int dirfd, const char *path, char *first, size_t sz)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dh;
	int rc = 1;

	if (fd < 0 || !(dh = fdopendir(fd))) {
		rc = -errno;
		shmk__close(&fd);
		return shmk__err(rc, "registry directory %s: cannot list: %s",
				 path, strerror(-rc));
	}
	while ((errno = 0, d = readdir(dh))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") ||
		    !strcmp(d->d_name, "." SHMK_REGISTRY_MARKER ".tmp"))
			continue;
		snprintf(first, sz, "%s", d->d_name);
		rc = 0;
		break;
	}
	if (rc == 1 && errno) {
		rc = -errno;
		shmk__err(rc, "registry directory %s: cannot list: %s", path,
			  strerror(-rc));
	}
	closedir(dh);
	return rc;
}

/* Marks dirfd unless a marker is there; a found marker must be valid. */
static int marker_ensure(int dirfd, const char *path)
{
	char why[512];
	int rc = marker_write(dirfd, path);

	if (rc == 1) /* a concurrent opener was first: is theirs ours? */
		return marker_check(dirfd, path);
	if (rc < 0) {
		/* Two fallback writers may take each other's temp file: if
		 * the other one won, there is a marker, which is all we
		 * need.  Otherwise our own failure is the answer. */
		snprintf(why, sizeof why, "%s", shmk_last_error());
		if (marker_check(dirfd, path) == 0)
			return 0;
		return shmk__err(rc, "%s", why);
	}
	return rc;
}

int shmk__registry_open(const char *path, enum shmk_reg_mode mode, int *out)
{
	char first[NAME_MAX + 1];
	int fd = -1, rc;

	*out = -1;
	if ((rc = shmk__dir_open_secure(AT_FDCWD, path, mode == SHMK_REG_CREATE,
					path, &fd)) < 0)
		return rc;
	rc = marker_check(fd, path);
	if (rc == -ENOENT) {
		/* New or empty: nothing in it can be misjudged, so it becomes
		 * a registry now - also for a reaper, which would otherwise
		 * refuse an empty registry made by a crashed or an old
		 * opener.  A reader writes nothing: to it an empty directory
		 * is an empty registry, and it reads only owner files. */
		/* Tests act here as a concurrent opener that marks the
		 * directory between our look for the marker and the listing. */
		(void)fiu_fail("shmk/test/registry/before_listing");
		if ((rc = dir_empty(fd, path, first, sizeof first)) == 1)
			rc = mode == SHMK_REG_READ ? 0 : marker_ensure(fd, path);
		/* Not empty: a concurrent opener may have marked it since we
		 * looked - its marker is linked before it creates anything
		 * else, so a second look after the listing sees it. */
		else if (rc == 0 && (rc = marker_check(fd, path)) == -ENOENT)
			rc = shmk__err(-ENOTEMPTY,
				       "registry directory %s: refused: not a "
				       "shmkeeper registry (no " SHMK_REGISTRY_MARKER
				       " marker) and not empty; adopt it with "
				       "'shmclean --adopt --dir %s' if it is one",
				       path, path);
	}
	if (rc < 0) {
		shmk__close(&fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/* A namespace directory written by shmkeeper holds owner files and its
 * quarantine/ only.  0, or -ENOTEMPTY naming the first other entry in bad. */
static int adopt_check_ns(int rootfd, const char *path, const char *ns,
			  char *bad, size_t sz)
{
	char nspath[PATH_MAX], id[SHMK_ID_MAX];
	struct dirent *d;
	struct stat st;
	DIR *dh;
	int fd = -1, rc;

	snprintf(nspath, sizeof nspath, "%s/%s", path, ns);
	if ((rc = shmk__dir_open_secure(rootfd, ns, false, nspath, &fd)) < 0)
		return rc;
	if (!(dh = fdopendir(fd))) {
		rc = -errno;
		shmk__close(&fd);
		return shmk__err(rc, "%s: cannot list: %s", nspath,
				 strerror(-rc));
	}
	rc = 0;
	while ((errno = 0, d = readdir(dh))) {
		const char *n = d->d_name;

		if (!strcmp(n, ".") || !strcmp(n, "..") ||
		    shmk__ofile_parse(n, id, NULL))
			continue;
		if (!strcmp(n, SHMK_QUARANTINE) &&
		    fstatat(dirfd(dh), n, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			continue;
		snprintf(bad, sz, "%s/%s", ns, n);
		rc = -ENOTEMPTY;
		break;
	}
	if (rc == 0 && errno) {
		rc = -errno;
		shmk__err(rc, "%s: cannot list: %s", nspath, strerror(-rc));
	}
	closedir(dh);
	return rc;
}

int shmk__registry_adopt(const char *path)
{
	char bad[NAME_MAX * 2 + 2] = "";
	struct dirent *d;
	struct stat st;
	DIR *dh = NULL;
	int fd = -1, lfd = -1, rc;

	if ((rc = shmk__dir_open_secure(AT_FDCWD, path, false, path, &fd)) < 0)
		return rc;
	if ((rc = marker_check(fd, path)) != -ENOENT)
		goto out; /* already a registry (0), or a refused marker */

	/* Every entry must be one shmkeeper writes: a namespace directory of
	 * owner files.  The first other one stops the adoption. */
	lfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lfd < 0 || !(dh = fdopendir(lfd))) {
		rc = shmk__err(-errno, "registry directory %s: cannot list: %s",
			       path, strerror(errno));
		shmk__close(&lfd);
		goto out;
	}
	rc = 0;
	while (rc == 0 && (errno = 0, d = readdir(dh))) {
		const char *n = d->d_name;

		if (!strcmp(n, ".") || !strcmp(n, "..") ||
		    !strcmp(n, "." SHMK_REGISTRY_MARKER ".tmp"))
			continue;
		if (!shmk__ns_ok(n) ||
		    fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			snprintf(bad, sizeof bad, "%s", n);
			rc = -ENOTEMPTY;
		} else {
			rc = adopt_check_ns(fd, path, n, bad, sizeof bad);
		}
	}
	if (rc == 0 && errno)
		rc = shmk__err(-errno, "registry directory %s: cannot list: %s",
			       path, strerror(errno));
	if (rc == -ENOTEMPTY)
		rc = shmk__err(rc, "registry directory %s: not adopted: %s/%s "
				   "is not something shmkeeper writes (a "
				   "registry holds namespace directories of "
				   "owner files only)",
			       path, path, bad);
	if (rc == 0 && (rc = marker_ensure(fd, path)) == 0)
		rc = 1;
out:
	if (dh)
		closedir(dh);
	shmk__close(&fd);
	return rc;
}

int shmk_registry_adopt(const char *dir)
{
	char path[PATH_MAX];
	int rc;

	if ((rc = shmk__dir_resolve(dir, path, sizeof path)) < 0)
		return rc;
	return shmk__registry_adopt(path);
}

int shmk__ns_rmdir(int rootfd, const char *ns)
{
	struct stat a, b;
	int fd, rc = 0;

	/* Only a directory no context has open: each holds a shared flock
	 * on it (ctx.c, ns_dir_open()).  And rmdir() removes a directory
	 * only if it is empty, atomically with respect to entries made in
	 * it: a record, a lock file, a temp file or a quarantine directory
	 * keeps it (ENOTEMPTY); it never follows a symlink (ENOTDIR). */
	fd = openat(rootfd, ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 &&
	    fstatat(rootfd, ns, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		(void)fiu_fail("shmk/test/ns/before_rmdir");
		rc = unlinkat(rootfd, ns, AT_REMOVEDIR) == 0;
	}
	close(fd); /* drops the lock */
	return rc;
}

int shmk__registry_list(int rootfd, const char *path,
			int (*fn)(void *arg, const char *ns), void *arg)
{
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dh;
	int rc = 0;

	if (fd < 0 || !(dh = fdopendir(fd))) {
		rc = shmk__err(-errno, "registry directory %s: cannot list: %s",
			       path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((errno = 0, d = readdir(dh))) {
		struct stat st;

		if (!shmk__ns_ok(d->d_name) ||
		    fstatat(rootfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)))
			continue;
		if ((rc = fn(arg, d->d_name)) < 0)
			break;
	}
	if (!rc && errno)
		rc = shmk__err(-errno, "registry directory %s: cannot list: %s",
			       path, strerror(errno));
	closedir(dh);
	return rc;
}
