/* SPDX-License-Identifier: MIT */
/* liveness.c - the one judge of whether an owner is alive (invariant 7).
 *
 * Three answers, never two: ALIVE, DEAD, UNKNOWN-with-a-cause.  The reaper
 * (reap.c) and shmls ask the same function, so they can never disagree.
 *
 *  1. The owner's lock file "<id>.lock" is the proof.  The owner holds a
 *     POSIX write lock on it for its whole life, and the file is never
 *     visible unlocked (owner.c links an already locked O_TMPFILE into
 *     place).  A reaper takes an open-file-description lock
 *     (F_OFD_SETLK): it conflicts with the owner's lock and with other
 *     reapers', never blocks, and proves the owner dead when it is taken -
 *     as long as the name still holds the inode we locked.  An inspector
 *     (shmls) only asks (F_OFD_GETLK) and disturbs nobody.
 *  2. Anything in the way of that proof is UNKNOWN with its cause: a lock
 *     file that cannot be opened (EACCES, a directory or symlink in its
 *     place, ELOOP) or locked for a reason other than "held", never "alive"
 *     and never "dead".  A lock file we can prove free but cannot open for
 *     writing (read-only registry) is DEAD without the lock held: nothing
 *     may be removed on that ground, and the reaper says so.
 *  3. No lock file at all (removed by hand): the recorded identity is the
 *     only evidence.  Another boot means dead.  Otherwise pid and start
 *     time mean something only in the pid namespace they were recorded in:
 *     if that is not ours (or unknown: format 1), the owner is UNKNOWN.
 *  4. A ".<id>.lock.tmp" is an owner being born where O_TMPFILE is not
 *     available: never judged while it is younger than NEWBORN_SECS.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEWBORN_SECS 10

const char *shmk__liveness_name(enum shmk_liveness l)
{
	switch (l) {
	case SHMK_LIVE_ALIVE: return "alive";
	case SHMK_LIVE_DEAD: return "dead";
	case SHMK_LIVE_UNKNOWN: return "unknown";
	case SHMK_LIVE_GONE: return "gone";
	}
	return "unknown";
}

static enum shmk_liveness say(struct shmk_judgement *j, enum shmk_liveness l,
			      int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum shmk_liveness say(struct shmk_judgement *j, enum shmk_liveness l,
			      int err, const char *fmt, ...)
{
	va_list ap;

	j->state = l;
	j->error = err;
	va_start(ap, fmt);
	vsnprintf(j->cause, sizeof j->cause, fmt, ap);
	va_end(ap);
	return l;
}

/* Judges by identity alone (no lock file to ask). */
static enum shmk_liveness by_identity(const struct shmk_ident *id,
				      struct shmk_judgement *j)
{
	struct shmk_ident me;
	int rc;

	if (!id)
		return say(j, SHMK_LIVE_UNKNOWN, -ENOENT,
			   "no lock file and no readable record: nothing "
			   "proves the owner dead");
	if ((rc = shmk__self_ident(&me)) < 0)
		return say(j, SHMK_LIVE_UNKNOWN, rc, "%s", shmk_last_error());
	if (id->boot_id[0] && me.boot_id[0] &&
	    strcmp(id->boot_id, me.boot_id) != 0)
		return say(j, SHMK_LIVE_DEAD, 0,
			   "no lock file; recorded in an earlier boot");
	if (!id->pidns || !me.pidns)
		return say(j, SHMK_LIVE_UNKNOWN, -ESRCH,
			   "no lock file, and the record names no pid "
			   "namespace: pid %d cannot be judged",
			   (int)id->pid);
	if (id->pidns != me.pidns)
		return say(j, SHMK_LIVE_UNKNOWN, -ESRCH,
			   "no lock file, and the owner ran in another pid "
			   "namespace (pid:[%llu], ours pid:[%llu]): pid %d "
			   "cannot be judged from here",
			   (unsigned long long)id->pidns,
			   (unsigned long long)me.pidns, (int)id->pid);
	if (!shmk__proc_is_ours())
		return say(j, SHMK_LIVE_UNKNOWN, -ESRCH,
			   "no lock file, and /proc is not of our pid "
			   "namespace: pid %d cannot be judged from here",
			   (int)id->pid);
	if ((rc = shmk__ident_alive(id)) < 0)
		return say(j, SHMK_LIVE_UNKNOWN, -EIO,
			   "no lock file, and /proc cannot tell whether "
			   "process %d is running",
			   (int)id->pid);
	if (rc > 0)
		return say(j, SHMK_LIVE_ALIVE, 0,
			   "no lock file, but process %d is running",
			   (int)id->pid);
	return say(j, SHMK_LIVE_DEAD, 0,
		   "no lock file; process %d is gone", (int)id->pid);
}

/* Asks about the lock on dirfd/name without taking it. */
static enum shmk_liveness ask(int dirfd, const char *name, uid_t uid,
			      struct shmk_judgement *j)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat st;
	int fd = openat(dirfd, name,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	enum shmk_liveness l;

	if (fd < 0) {
		if (errno == ENOENT)
			return say(j, SHMK_LIVE_GONE, -ENOENT, "lock file gone");
		return say(j, SHMK_LIVE_UNKNOWN, -errno,
			   "lock file %s cannot be opened: %s", name,
			   errno == ELOOP ? "it is a symlink" : strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != uid)
		l = say(j, SHMK_LIVE_UNKNOWN, -EPERM,
			"lock file %s is not a regular file of ours", name);
	else if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		l = say(j, SHMK_LIVE_UNKNOWN, -errno,
			"lock file %s: cannot test the lock: %s", name,
			strerror(errno));
	else if (fl.l_type == F_UNLCK)
		l = say(j, SHMK_LIVE_DEAD, 0, "lock free");
	else if (fl.l_pid == -1) { /* OFD locks have no pid: a reaper's */
		j->other_reaper = true;
		l = say(j, SHMK_LIVE_DEAD, 0, "being reaped");
	}
	else {
		j->holder = fl.l_pid;
		l = say(j, SHMK_LIVE_ALIVE, 0, "lock held by process %d",
			(int)fl.l_pid);
	}
	close(fd);
	return l;
}

/* Takes the lock on dirfd/name: DEAD with j->lock_fd holding it, ALIVE,
 * GONE, or UNKNOWN. */
static enum shmk_liveness take(int dirfd, const char *name, uid_t uid,
			       struct shmk_judgement *j)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat a, b;
	int fd = SHMK_SYS("openat",
			  openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
						      O_CLOEXEC));

	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return say(j, SHMK_LIVE_GONE, -ENOENT, "lock file gone");
		if (e == EROFS || e == EACCES || e == EPERM || e == ETXTBSY) {
			/* Maybe we can still tell; we cannot hold it. */
			if (ask(dirfd, name, uid, j) == SHMK_LIVE_DEAD)
				return say(j, SHMK_LIVE_DEAD, -e,
					   "owner dead, but its lock file "
					   "cannot be opened for writing (%s): "
					   "nothing can be reaped on that ground",
					   strerror(e));
			return j->state;
		}
		return say(j, SHMK_LIVE_UNKNOWN, -e,
			   "lock file %s cannot be opened: %s", name,
			   e == ELOOP ? "it is a symlink" : strerror(e));
	}
	if (fstat(fd, &a) < 0 || !S_ISREG(a.st_mode) || a.st_uid != uid) {
		close(fd);
		return say(j, SHMK_LIVE_UNKNOWN, -EPERM,
			   "lock file %s is not a regular file of ours", name);
	}
	if (fiu_fail("shmk/reap/lock") ||
	    SHMK_SYS("fcntl", fcntl(fd, F_OFD_SETLK, &fl)) < 0) {
		int e = errno ? errno : EAGAIN;
		struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

		/* Held: by the owner (a pid), or by another reaper (an OFD
		 * lock has none), which is finishing a dead owner. */
		if ((e == EAGAIN || e == EACCES) &&
		    fcntl(fd, F_OFD_GETLK, &q) == 0 && q.l_type != F_UNLCK &&
		    q.l_pid == -1) {
			close(fd);
			j->other_reaper = true;
			return say(j, SHMK_LIVE_DEAD, -EBUSY,
				   "being reaped by another reaper");
		}
		close(fd);
		if (e == EAGAIN || e == EACCES)
			return say(j, SHMK_LIVE_ALIVE, 0, "lock held");
		return say(j, SHMK_LIVE_UNKNOWN, -e,
			   "lock file %s: cannot take the lock: %s", name,
			   strerror(e));
	}
	/* Locked.  Is it still the file under that name (not one unlinked by
	 * its closing owner or by another reaper)? */
	if (fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		close(fd);
		return say(j, SHMK_LIVE_GONE, 0, "lock file replaced or gone");
	}
	j->lock_fd = fd;
	return say(j, SHMK_LIVE_DEAD, 0, "lock taken");
}

enum shmk_liveness shmk__owner_recheck(const struct shmk_ident *rec_owner,
				       struct shmk_judgement *j)
{
	struct shmk_ident me;

	if (j->no_lock)
		return by_identity(rec_owner, j);
	/* The lock was free, but is the process gone?  A live owner that
	 * lost its lock (it is exiting, or a bug) must not lose its memory.
	 * Its identity only means something in its own pid namespace; format
	 * 1 records name none, and asking anyway can only turn "dead" into
	 * "alive", the safe direction. */
	if (j->state != SHMK_LIVE_DEAD || !rec_owner)
		return j->state;
	if (shmk__self_ident(&me) == 0 &&
	    (!rec_owner->pidns || me.pidns == rec_owner->pidns) &&
	    shmk__ident_running(rec_owner)) { /* the lock's word stands if
						 /proc cannot tell */
		shmk__close(&j->lock_fd);
		return say(j, SHMK_LIVE_ALIVE, 0,
			   "lock file unlocked but process %d is still "
			   "running (exiting?): left alone",
			   (int)rec_owner->pid);
	}
	return j->state;
}

enum shmk_liveness shmk__owner_judge(int nsfd, const char *id, uid_t uid,
				     const struct shmk_ident *rec_owner,
				     bool hold, struct shmk_judgement *j)
{
	char name[SHMK_ID_MAX + 16];
	struct stat st;
	enum shmk_liveness l;

	memset(j, 0, sizeof *j);
	j->lock_fd = -1;
	shmk__ofile_name(id, SHMK_OFILE_LOCK, name, sizeof name);
	l = hold ? take(nsfd, name, uid, j) : ask(nsfd, name, uid, j);
	if (l != SHMK_LIVE_GONE)
		return shmk__owner_recheck(rec_owner, j);

	/* No lock file.  An owner being born the old way? */
	shmk__ofile_name(id, SHMK_OFILE_LOCK_TMP, name, sizeof name);
	if (fstatat(nsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (shmk__now() - (int64_t)st.st_mtime < NEWBORN_SECS)
			return say(j, SHMK_LIVE_ALIVE, 0,
				   "owner being born (temporary lock file)");
		l = hold ? take(nsfd, name, uid, j) : ask(nsfd, name, uid, j);
		if (l != SHMK_LIVE_GONE)
			return shmk__owner_recheck(rec_owner, j);
	}
	j->no_lock = true;
	return by_identity(rec_owner, j);
}
