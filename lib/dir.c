/* dir.c - finding and opening the registry directory, failing closed.
 *
 * Everything below the registry root is reached through directory fds
 * (openat/renameat/unlinkat), so a path swapped for a symlink after the
 * check cannot redirect us. */
#include "internal.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

int shmk__dir_resolve(const char *arg, char *out, size_t outsz)
{
	const char *env;
	int n;

	if (arg && arg[0])
		n = snprintf(out, outsz, "%s", arg);
	else if ((env = getenv("SHMKEEPER_DIR")) && env[0])
		n = snprintf(out, outsz, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, outsz, "/run/shmkeeper");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && env[0] == '/')
		n = snprintf(out, outsz, "%s/shmkeeper", env);
	else
		n = snprintf(out, outsz, "/tmp/shmkeeper-%u",
			     (unsigned)geteuid());
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
