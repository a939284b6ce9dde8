/* SPDX-License-Identifier: MIT */
/* atomic.c - the crash-safety protocol, in one place.
 *
 * Guarantee: a registry file is, at every instant and whatever process is
 * killed where, a complete valid document - the old one or the new one.
 *  - Whole-file changes go through shmk__replace(): write a tmp file in the
 *    same directory, fsync it (durable mode), rename it over the name (the
 *    atomic step), fsync the directory (durable mode).
 *  - Per-operation changes go through shmk__append(): one complete line per
 *    write.  A reader takes only '\n'-terminated lines, so a line torn by a
 *    crash is simply "not written yet": the old document.  After a failed
 *    append the writer rewrites the file with shmk__replace() before it
 *    appends again, so a torn line is never followed by another line.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int shmk__write_all(int fd, const void *buf, size_t len, const char *fp)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n;

		if (fiu_fail(fp)) {
			/* Inject a short write followed by an error, the
			 * worst thing a filesystem can do to us. */
			if (len > 1 && write(fd, p, len / 2) < 0)
				return -errno;
			errno = ENOSPC;
			return -ENOSPC;
		}
		if (fiu_fail("shmk/sys/write")) {
			/* Short write, then the error. */
			if (len > 1 && write(fd, p, len / 2) < 0)
				return -errno;
			errno = shmk__fiu_errno();
			return -errno;
		}
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int shmk__replace(int dirfd, const char *dirpath, const char *name,
		  const void *buf, size_t len, bool durable, int *keep_fd)
{
	char tmp[NAME_MAX + 1];
	int fd = -1, rc;
	const char *step;

	if (keep_fd)
		*keep_fd = -1;
	if ((size_t)snprintf(tmp, sizeof tmp, ".%s.tmp", name) >= sizeof tmp)
		return shmk__err(-ENAMETOOLONG, "%s/%s: name too long",
				 dirpath, name);

	step = "create temporary file";
	fiu_do_on("shmk/replace/open", { errno = EMFILE; goto fail; });
	fd = SHMK_SYS("openat", openat(dirfd, tmp,
					O_RDWR | O_APPEND | O_CREAT | O_EXCL |
						O_NOFOLLOW | O_CLOEXEC,
					0600));
	if (fd < 0 && errno == EEXIST) {
		/* Only the owner of name writes its tmp file: a leftover is
		 * from our own earlier failure (or planted, which we never
		 * follow: unlink removes a symlink itself). */
		unlinkat(dirfd, tmp, 0);
		fd = openat(dirfd, tmp,
			    O_RDWR | O_APPEND | O_CREAT | O_EXCL |
				    O_NOFOLLOW | O_CLOEXEC,
			    0600);
	}
	if (fd < 0)
		goto fail;

	SHMK_CRASHPOINT("replace/after_open");
	step = "write temporary file";
	if ((rc = shmk__write_all(fd, buf, len, "shmk/replace/write")) < 0) {
		errno = -rc;
		goto fail_unlink;
	}
	SHMK_CRASHPOINT("replace/after_write");
	step = "fsync temporary file";
	if (durable) {
		fiu_do_on("shmk/replace/fsync", { errno = EIO; goto fail_unlink; });
		if (SHMK_SYS("fsync", fsync(fd)) < 0)
			goto fail_unlink;
	}
	step = "rename temporary file into place";
	fiu_do_on("shmk/replace/rename", { errno = EXDEV; goto fail_unlink; });
	if (SHMK_SYS("rename", renameat(dirfd, tmp, dirfd, name)) < 0)
		goto fail_unlink;

	SHMK_CRASHPOINT("replace/after_rename");
	/* The new version is in place.  A failing directory fsync can no
	 * longer bring the old one back; report it all the same, since the
	 * change may not survive a power cut. */
	if (durable) {
		step = "fsync directory after rename";
		fiu_do_on("shmk/replace/dirsync", { errno = EIO; goto fail_after; });
		if (SHMK_SYS("fsync", fsync(dirfd)) < 0)
			goto fail_after;
	}
	if (keep_fd)
		*keep_fd = fd;
	else
		shmk__close(&fd);
	return 0;

fail_after:
	rc = -errno;
	shmk__close(&fd);
	return shmk__err(rc, "%s/%s: cannot %s: %s", dirpath, name, step,
			 strerror(-rc));
fail_unlink:
	rc = -errno;
	unlinkat(dirfd, tmp, 0);
	shmk__close(&fd);
	return shmk__err(rc, "%s/%s: cannot %s (old version kept): %s",
			 dirpath, name, step, strerror(-rc));
fail:
	rc = -errno;
	return shmk__err(rc, "%s/%s: cannot %s (old version kept): %s",
			 dirpath, name, step, strerror(-rc));
}

int shmk__append(int fd, const char *path, const char *line, size_t len,
		 bool durable)
{
	int rc;

	/* Tests only: write half the line and stop at a crash point where a
	 * test may kill us - readers must go on seeing the old document.  If
	 * not killed, finish the line as if nothing happened. */
	if (fiu_fail("shmk/test/append/half") && len > 1) {
		size_t half = len / 2;
		if ((rc = shmk__write_all(fd, line, half, "")) < 0)
			return shmk__err(rc, "%s: cannot append: %s", path,
					 strerror(-rc));
		SHMK_CRASHPOINT("append/after_half");
		line += half;
		len -= half;
	}
	rc = shmk__write_all(fd, line, len, "shmk/append/write");

	if (rc < 0)
		return shmk__err(rc, "%s: cannot append: %s", path,
				 strerror(-rc));
	if (durable) {
		fiu_do_on("shmk/append/fsync", { errno = EIO; rc = -EIO; });
		if (rc == 0 && SHMK_SYS("fsync", fdatasync(fd)) < 0)
			rc = -errno;
		if (rc < 0)
			return shmk__err(rc, "%s: cannot fsync append: %s",
					 path, strerror(-rc));
	}
	return 0;
}
