/* SPDX-License-Identifier: MIT */
/* unlink.c - the one place a segment name is removed (invariants 2 and 4).
 *
 * Destroy, close and reap all come here, so the two rules hold in one
 * place:
 *  - A name is unlinked only while it holds the object its owner created:
 *    a regular file of our uid with the inode the owner recorded.  If the
 *    name was unlinked behind the owner's back and another process made an
 *    object of the same name since, that object is not ours to remove: the
 *    owner's object is gone, which is all the owner needs to know.
 *  - The record entry is dropped (the caller's drop callback) only after
 *    the name no longer holds the owner's object: unlinked now, already
 *    gone, or replaced by someone else's.  On any failure the entry stays,
 *    naming what is still there.
 *
 * The race that remains: Linux cannot unlink "this inode under this name".
 * Between our look at the name (fstatat) and the unlinkat, a process of the same uid could unlink the name
 * and create a new object under it; we would then remove that one.  It
 * takes a co-operating process of the same user racing a window of one
 * system call, on a name whose owner is dying or dead.  Other users cannot
 * do it: the shm directory is sticky (or ours alone), so the kernel refuses
 * their unlink and their object under our name would fail the uid check.
 */
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *shmk__unlink_result_name(enum shmk_unlink_result r)
{
	switch (r) {
	case SHMK_UL_UNLINKED: return "unlinked";
	case SHMK_UL_GONE: return "already gone";
	case SHMK_UL_REPLACED: return "gone; the name now belongs to another object (kept)";
	case SHMK_UL_FOREIGN: return "not a regular file of ours (kept)";
	case SHMK_UL_ERROR: return "error";
	}
	return "error";
}

enum shmk_unlink_result shmk__seg_remove(struct shmk_unlink_req *q,
					 struct stat *st,
					 int (*drop)(void *arg), void *arg)
{
	const char *obj = q->name[0] == '/' ? q->name + 1 : q->name;
	enum shmk_unlink_result res;
	struct stat local;

	if (!st)
		st = &local;
	memset(st, 0, sizeof *st);
	if (fstatat(q->shmfd, obj, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) {
			res = SHMK_UL_GONE;
			goto dropped;
		}
		q->error = -errno;
		return SHMK_UL_ERROR;
	}
	if (q->ino && (uint64_t)st->st_ino != q->ino) {
		res = SHMK_UL_REPLACED;
		goto dropped;
	}
	if (!S_ISREG(st->st_mode) || st->st_uid != q->uid) {
		/* Our inode under the name but not ours any more
		 * (chowned), or an intent entry's name held by a file
		 * that is not ours: never removed. */
		q->error = -EPERM;
		return SHMK_UL_FOREIGN;
	}
	if (q->flags & SHMK_UL_DRY_RUN)
		return SHMK_UL_UNLINKED;
	if ((q->fp && fiu_fail(q->fp) ? (errno = shmk__fiu_errno(), -1)
				      : unlinkat(q->shmfd, obj, 0)) < 0) {
		if (errno == ENOENT) { /* a concurrent reaper was faster */
			res = SHMK_UL_GONE;
			goto dropped;
		}
		q->error = -(errno ? errno : EIO);
		return SHMK_UL_ERROR;
	}
	res = SHMK_UL_UNLINKED;
dropped:
	if (drop && !(q->flags & SHMK_UL_DRY_RUN))
		drop(arg);
	return res;
}
