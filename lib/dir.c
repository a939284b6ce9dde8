/* dir.c - finding and opening the registry directory, failing closed.
 *
 * Everything below the registry root is reached through directory fds
 * (openat/renameat/unlinkat), so a path swapped for a symlink after the
 * check cannot redirect us. */
#include "internal.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

	if (arg && arg[0])
		n = snprintf(out, outsz, "%s", arg);
	else if ((env = getenv("SHMKEEPER_DIR")) && env[0])
		n = snprintf(out, outsz, "%s", env);
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
	int fd;

	*out = -1;
	fiu_return_on("shmk/dir/open", shmk__err(-EACCES,
		      "registry directory %s: cannot open: injected fault",
		      path));
	if (create && SHMK_SYS("mkdir", mkdirat(atfd, name, 0700)) < 0 &&
	    errno != EEXIST)
		return shmk__err(-errno,
				 "registry directory %s: cannot create: %s",
				 path, strerror(errno));
	if (fstatat(atfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return shmk__err(-errno, "registry directory %s: %s", path,
				 strerror(errno));
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
