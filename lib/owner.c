/* SPDX-License-Identifier: MIT */
/* owner.c - this process's lock file and record in a namespace.
 *
 * Liveness protocol (DESIGN.md, "owner liveness"):
 *  - The owner holds a POSIX (fcntl F_SETLK) write lock on <id>.lock for its
 *    whole life.  The kernel drops it when the process dies, however it
 *    dies, so "a reaper can take the lock" means "the owner is dead".
 *  - POSIX locks are per process and are all lost when the process closes
 *    ANY descriptor of the file.  So the owner opens its lock file exactly
 *    once (lock_fd) and nothing in this process ever opens it again: the
 *    reaper skips owners whose id names this very process (reap.c).
 *  - The lock file is created unnamed (O_TMPFILE), locked, and only then
 *    linked into place: a reaper never sees an unlocked lock file of a
 *    live owner (lock_create()).
 *  - POSIX locks are not inherited across fork, so a fork child never
 *    passes for the parent; it builds an owner of its own when it first
 *    creates a segment (shmk__owner_ensure() sees the pid changed).
 */
#include "ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Rewrite when the journal holds more than 256 KiB + twice the snapshot:
 * the rewrite costs O(snapshot) and comes after O(snapshot) bytes of
 * operations, so each operation costs O(1) amortised, and a small owner
 * rewrites once every few thousand operations (a file create on ext4 costs
 * hundreds of microseconds). */
#define COMPACT_SLACK_BYTES (256u << 10)

void shmk__fd_raise(int *fd, int floor)
{
	int e = errno, n;

	if (floor <= 0 || *fd < 0 || *fd >= floor)
		return;
	if ((n = fcntl(*fd, F_DUPFD_CLOEXEC, floor)) >= 0) {
		close(*fd);
		*fd = n;
	}
	errno = e;
}

void shmk__owner_forget(struct shmk_owner *o)
{
	void *v;

	shmk__jmap_forget(o);
	free(o->free_ent);
	o->free_ent = NULL;
	o->write_only = false;
	shmk__close(&o->rec_fd);
	shmk__close(&o->lock_fd);
	for (size_t it = 0; (v = shmk__table_next(&o->segs, &it));)
		free(v);
	shmk__table_free(&o->segs);
	o->pid = 0;
	o->jbytes = o->snap_bytes = o->pending_len = 0;
	o->must_rewrite = false;
}

/* Links the locked, unnamed file fd into place as name: through
 * /proc/self/fd (no privilege needed), else AT_EMPTY_PATH (needs
 * CAP_DAC_READ_SEARCH).  Neither opens the file, so our lock stays. */
static int link_unnamed(int fd, int dirfd, const char *name)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno == EEXIST)
		return -1;
	return linkat(fd, "", dirfd, name, AT_EMPTY_PATH);
}

/* The lock file is never visible unlocked (a reaper in that window would
 * call us dead): it is created unnamed (O_TMPFILE), locked, and only then
 * linked into place.  Where O_TMPFILE or the link is not available it is
 * created as ".<id>.lock.tmp", locked and renamed; the judge (liveness.c)
 * never takes such a newborn for dead. */
static int lock_create(shmk_ctx *c, struct shmk_owner *o)
{
	char tmp[SHMK_ID_MAX + 16];
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	bool named = false;
	int rc;

	if ((rc = shmk__ofile_name(o->id, SHMK_OFILE_LOCK_TMP, tmp,
				   sizeof tmp)) < 0)
		return rc;
	fiu_return_on("shmk/lock/open",
		      shmk__err(-EMFILE, "%s/%s: cannot create lock file: "
					 "injected fault",
				c->ns_path, o->lock_name));
	o->lock_fd = SHMK_SYS("openat", openat(c->ns_fd, ".",
					       O_TMPFILE | O_RDWR | O_CLOEXEC,
					       0600));
	if (o->lock_fd < 0 && errno != EMFILE && errno != ENFILE &&
	    errno != ENOMEM && errno != EACCES && errno != EROFS &&
	    errno != ENOSPC && errno != EDQUOT && errno != EIO) {
		/* No O_TMPFILE here (EOPNOTSUPP, EISDIR, EINVAL, ...). */
		named = true;
		o->lock_fd = SHMK_SYS("openat",
				      openat(c->ns_fd, tmp,
					     O_RDWR | O_CREAT | O_EXCL |
						     O_NOFOLLOW | O_CLOEXEC,
					     0600));
	}
	if (o->lock_fd < 0)
		return shmk__err(-errno, "%s/%s: cannot create lock file: %s",
				 c->ns_path, o->lock_name, strerror(errno));
	shmk__fd_raise(&o->lock_fd, c->fd_floor); /* before the lock */
	fiu_do_on("shmk/lock/fcntl", { errno = ENOLCK; goto fail; });
	if (SHMK_SYS("fcntl", fcntl(o->lock_fd, F_SETLK, &fl)) < 0)
		goto fail;
	SHMK_CRASHPOINT("lock/after_lock");
	fiu_do_on("shmk/lock/rename", { errno = EIO; goto fail; });
	if (!named && link_unnamed(o->lock_fd, c->ns_fd, o->lock_name) < 0) {
		if (errno == EEXIST)
			goto fail;
		/* No way to name an unnamed file here: the old way. */
		named = true;
		shmk__close(&o->lock_fd);
		o->lock_fd = SHMK_SYS("openat",
				      openat(c->ns_fd, tmp,
					     O_RDWR | O_CREAT | O_EXCL |
						     O_NOFOLLOW | O_CLOEXEC,
					     0600));
		if (o->lock_fd >= 0)
			shmk__fd_raise(&o->lock_fd, c->fd_floor);
		if (o->lock_fd < 0 ||
		    SHMK_SYS("fcntl", fcntl(o->lock_fd, F_SETLK, &fl)) < 0)
			goto fail;
	}
	if (named &&
	    SHMK_SYS("rename", renameat(c->ns_fd, tmp, c->ns_fd, o->lock_name)) < 0)
		goto fail;
	/* An adopting owner's image may exec: the lock (and so the owner)
	 * lives on in the new image as long as this descriptor is open.
	 * Fork children inherit it without the lock (POSIX locks are per
	 * process), so it never makes another process pass for the owner. */
	if (c->adopt)
		(void)fcntl(o->lock_fd, F_SETFD, 0);
	return 0;
fail:
	rc = -errno;
	if (named)
		unlinkat(c->ns_fd, tmp, 0);
	shmk__close(&o->lock_fd);
	return shmk__err(rc, "%s/%s: cannot lock and install lock file: %s",
			 c->ns_path, o->lock_name, strerror(-rc));
}

int shmk__owner_ensure(shmk_ctx *c)
{
	struct shmk_owner *o = &c->own;
	pid_t pid = shmk__pid();
	uint32_t rnd = 0;
	int rc;

	if (o->pid == pid)
		return 0;
	if (o->pid != 0) /* inherited across fork: the parent's, not ours */
		shmk__owner_forget(o);

	if ((rc = shmk__self_ident(&o->ident)) < 0)
		return rc;
	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
		rnd = (uint32_t)random();
	if ((rc = shmk__owner_id_make(pid, o->ident.start_time, rnd,
				      o->id)) < 0 ||
	    (rc = shmk__ofile_name(o->id, SHMK_OFILE_LOCK, o->lock_name,
				   sizeof o->lock_name)) < 0 ||
	    (rc = shmk__ofile_name(o->id, SHMK_OFILE_RECORD, o->rec_name,
				   sizeof o->rec_name)) < 0)
		return rc;
	snprintf(o->rec_path, sizeof o->rec_path, "%s/%s", c->ns_path,
		 o->rec_name);
	o->created = shmk__now();
	o->rec_fd = o->lock_fd = -1;
	if ((rc = shmk__table_init(&o->segs, 16)) < 0)
		return shmk__err(rc, "out of memory");

	if ((rc = lock_create(c, o)) < 0)
		goto fail;
	SHMK_CRASHPOINT("owner/after_lock_file");
	o->pid = pid; /* shmk__owner_snapshot() writes an empty record */
	if ((rc = shmk__owner_snapshot(c)) < 0)
		goto fail_unlock;
	return 0;

fail_unlock:
	/* Record before lock file, as in shmk__owner_close(): the snapshot
	 * may have failed after its rename (a directory fsync). */
	unlinkat(c->ns_fd, o->rec_name, 0);
	unlinkat(c->ns_fd, o->lock_name, 0);
fail:
	shmk__owner_forget(o);
	return rc;
}

int shmk__owner_snapshot(shmk_ctx *c)
{
	struct shmk_owner *o = &c->own;
	size_t cap = 1024 + o->segs.used * (SHMK_SHM_NAME_MAX + 192), len;
	char *buf;
	void *v;
	int n, fd, rc;

	/* Never another process's record: a child that shares our memory
	 * but not our descriptors (vfork, a raw clone) would leave us a
	 * descriptor and a mapping that exist only in it. */
	if (o->pid && o->pid != getpid())
		return shmk__err(-EDEADLK, "%s: not this process's record",
				 o->rec_path);
	if (!(buf = SHMK_SYSP("malloc", NULL, malloc(cap))))
		return shmk__err(-ENOMEM, "%s: out of memory for snapshot",
				 o->rec_path);
	n = (c->adopt ? shmk__fmt_header_open_adopt : shmk__fmt_header_open)(
		buf, cap, c->ns, o->id, &o->ident, c->role, o->created);
	if (n < 0)
		goto nobuf;
	len = (size_t)n;
	for (size_t it = 0; (v = shmk__table_next(&o->segs, &it));) {
		struct shmk_rec_seg *s = v;
		struct stat st;

		/* An adopted object unlinked by another process leaves its
		 * entry behind: forgotten here, once the name holds it no
		 * more (gone, or another inode). */
		if (s->kind != SHMK_KIND_SEGMENT && s->state == SHMK_SEG_LIVE &&
		    (fstatat(c->shm_fd, s->name + 1, &st,
			     AT_SYMLINK_NOFOLLOW) < 0
			     ? errno == ENOENT
			     : (uint64_t)st.st_ino != s->ino)) {
			free(shmk__table_del(&o->segs, s->name));
			continue;
		}
		if (buf[len - 1] != '[')
			buf[len++] = ',';
		if ((n = shmk__fmt_seg(buf + len, cap - len, v)) < 0)
			goto nobuf;
		len += (size_t)n;
	}
	if (cap - len < 4)
		goto nobuf;
	memcpy(buf + len, "]}\n", 3);
	len += 3;
	/* Whether lines are stored or written is settled at the first
	 * version (the file system does not change under an owner). */
	if (!o->write_only && !o->map && !shmk__jmap_wanted(c))
		o->write_only = true;
	if (!o->write_only) {
		rc = shmk__jmap_publish(c, buf, len);
		if (rc == 0)
			goto done;
		if (o->map)
			goto out; /* the current version stays */
		shmk__jmap_remove_old(c); /* never mapped: lines are written */
		o->write_only = true;
	}
	rc = shmk__replace(c->ns_fd, c->ns_path, o->rec_name, buf, len,
			   c->durable, &fd);
	if (rc < 0)
		goto out;
	shmk__fd_raise(&fd, c->fd_floor);
	shmk__close(&o->rec_fd);
	o->rec_fd = fd;
done:
	free(buf);
	o->must_rewrite = false;
	o->jbytes = 0;
	o->snap_bytes = len;
	o->pending_len = 0; /* the snapshot states it */
	return 0;
out:
	free(buf);
	return rc;
nobuf:
	free(buf);
	return shmk__err(-ENOBUFS, "%s: snapshot does not fit", o->rec_path);
}

int shmk__owner_log(shmk_ctx *c, const char *line, size_t len)
{
	struct shmk_owner *o = &c->own;
	char both[sizeof o->pending + SHMK_SHM_NAME_MAX + 128];
	int rc;

	if (o->map) {
		if (!shmk__jmap_fits(o, len) &&
		    (rc = shmk__owner_snapshot(c)) < 0)
			return rc; /* the current version, whole, stays */
		if (len)
			shmk__jmap_store(o, line, len);
		return 0;
	}
	if (o->must_rewrite && (rc = shmk__owner_snapshot(c)) < 0)
		return rc;
	if (o->pending_len && o->pending_len + len <= sizeof both) {
		memcpy(both, o->pending, o->pending_len);
		memcpy(both + o->pending_len, line, len);
		line = both;
		len += o->pending_len;
	}
	o->pending_len = 0;
	if ((rc = shmk__append(o->rec_fd, o->rec_path, line, len,
			       c->durable)) < 0) {
		o->must_rewrite = true;
		return rc;
	}
	o->jbytes += len;
	/* A failed rewrite leaves the old, complete file: try again later. */
	if (o->jbytes > COMPACT_SLACK_BYTES + 2 * o->snap_bytes)
		(void)shmk__owner_snapshot(c);
	return 0;
}

void shmk__owner_defer(shmk_ctx *c, const char *line, size_t len)
{
	struct shmk_owner *o = &c->own;

	if (o->pending_len + len > sizeof o->pending || c->durable || o->map) {
		/* Durable mode writes everything as it happens; a stored line
		 * costs less than keeping it. */
		(void)shmk__owner_log(c, line, len);
		return;
	}
	memcpy(o->pending + o->pending_len, line, len);
	o->pending_len += len;
}

struct close_drop {
	struct shmk_owner *o;
	struct shmk_rec_seg *s;
};

/* The whole record goes below, after every segment: no drop line. */
static int close_drop(void *arg)
{
	struct close_drop *d = arg;

	free(shmk__table_del(&d->o->segs, d->s->name));
	return 0;
}

int shmk__owner_close(shmk_ctx *c)
{
	struct shmk_owner *o = &c->own;
	struct shmk_rec_seg *s;
	int first = 0;

	if (o->pid == 0)
		return 0;
	if (o->pid != shmk__pid()) { /* a fork child: the parent's, hands off */
		shmk__owner_forget(o);
		return 0;
	}
	/* Invariants 2 and 4: a segment leaves the record only after it is
	 * gone, and only our inode is ever unlinked (unlink.c). */
	for (size_t it = 0; (s = shmk__table_next(&o->segs, &it));) {
		struct shmk_unlink_req q = {.shmfd = c->shm_fd, .name = s->name,
					    .ino = s->ino, .uid = o->ident.uid,
					    .fp = "shmk/segment/unlink"};
		struct close_drop d = {o, s};

		switch (shmk__seg_remove(&q, NULL, close_drop, &d)) {
		case SHMK_UL_UNLINKED:
		case SHMK_UL_GONE:
		case SHMK_UL_REPLACED:
			break;
		case SHMK_UL_FOREIGN:
		case SHMK_UL_ERROR:
			if (!first)
				first = shmk__err(q.error, "segment %s: cannot "
							   "unlink: %s",
						  s->name, strerror(-q.error));
			break;
		}
	}
	if (first == 0) {
		/* Record before lock file: a record without its lock file is
		 * judged by identity, and we are still alive. */
		SHMK_CRASHPOINT("close/after_segments");
		shmk__jmap_remove_old(c);
		if (unlinkat(c->ns_fd, o->rec_name, 0) < 0 && errno != ENOENT)
			first = shmk__err(-errno, "%s: cannot remove: %s",
					  o->rec_path, strerror(errno));
		else if (SHMK_CRASHPOINT("close/after_record"),
			 unlinkat(c->ns_fd, o->lock_name, 0) < 0 &&
			 errno != ENOENT)
			first = shmk__err(-errno, "%s/%s: cannot remove: %s",
					  c->ns_path, o->lock_name,
					  strerror(errno));
	}
	/* Whatever is left is released with the lock: a reaper finishes it. */
	shmk__owner_forget(o);
	return first;
}
