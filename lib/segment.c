/* SPDX-License-Identifier: MIT */
/* segment.c - creating, attaching and destroying segments.
 *
 * Order of a create (invariant 1: never a segment without a record):
 *   record "intent" -> shm_open(O_CREAT|O_EXCL) -> posix_fallocate -> mmap
 *   -> record "live" (with the inode, so a reaper can tell our object from
 *   a later one of the same name).
 * Order of a destroy (invariant 2: a record entry outlives its segment):
 *   unlink -> record "drop".
 * A crash anywhere leaves at worst a record naming a segment that does not
 * exist, which the reaper shrugs off.
 */
#include "ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int full_name(shmk_ctx *c, const char *name, char *out)
{
	int rc = shmk_name_check(name);

	if (rc < 0)
		return rc;
	if ((size_t)snprintf(out, SHMK_SHM_NAME_MAX, "/%s.%s", c->ns, name) >=
	    NAME_MAX + 1) /* the object name, without '/', is a file name */
		return shmk__err(-ENAMETOOLONG, "segment /%s.%s: name too long",
				 c->ns, name);
	return 0;
}

static int log_op(shmk_ctx *c, int n, const char *line)
{
	if (n < 0)
		return shmk__err(n, "record line does not fit");
	return shmk__owner_log(c, line, (size_t)n);
}

int shmk_segment_create(shmk_ctx *c, const char *name, size_t size,
			shmk_segment **out)
{
	char line[SHMK_SHM_NAME_MAX + 128];
	struct shmk_rec_seg *e = NULL;
	shmk_segment *seg = NULL;
	struct stat st;
	void *addr = MAP_FAILED;
	const char *step = "create";
	struct shmk_sample soft_s;
	shmk_monitor *mon = NULL; /* the monitor that said "soft", kept */
	bool soft = false;
	int fd = -1, rc;

	if (!out)
		return shmk__err(-EINVAL, "shmk_segment_create: out is NULL");
	*out = NULL;
	if (!c)
		return shmk__err(-EINVAL, "shmk_segment_create: ctx is NULL");
	if (size == 0 || (uint64_t)size > (1ull << 53))
		return shmk__err(-EINVAL, "segment /%s.%s: invalid size %zu",
				 c->ns, name ? name : "", size);
	if (!(seg = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *seg))) ||
	    !(e = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *e)))) {
		free(seg);
		return shmk__err(-ENOMEM, "segment: out of memory");
	}
	if ((rc = full_name(c, name, e->name)) < 0) {
		free(seg);
		free(e);
		return rc;
	}

	pthread_mutex_lock(&c->mu);
	if ((rc = shmk__owner_ensure(c)) < 0)
		goto out;
	if (shmk__table_get(&c->own.segs, e->name)) {
		rc = shmk__err(-EEXIST, "segment %s: exists (owned by this "
					"process)",
			       e->name);
		goto out;
	}
	/* Budget and monitor limits: one check, one scan (admit.c). */
	if ((rc = shmk__admit(c, e->name, size, &soft_s)) != 0) {
		if (rc < 0)
			goto out;
		soft = true;
		mon = c->monitor;
	}

	/* 1. Intent, before the object exists. */
	e->size = size;
	e->created = shmk__now();
	e->state = SHMK_SEG_INTENT;
	if ((rc = shmk__table_put(&c->own.segs, e->name, e)) < 0) {
		rc = shmk__err(rc, "segment %s: out of memory", e->name);
		goto out;
	}
	rc = log_op(c, shmk__fmt_op_intent(line, sizeof line, e->name, size,
					   e->created), line);
	if (rc < 0) {
		shmk__table_del(&c->own.segs, e->name);
		goto out;
	}

	SHMK_CRASHPOINT("create/after_intent");
	/* 2. The object: exclusive, never adopting a pre-created name. */
	fiu_do_on("shmk/segment/shm_open", { errno = EMFILE; goto undo; });
	fd = SHMK_SYS("shm_open",
		      openat(c->shm_fd, e->name + 1,
			     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0600));
	if (fd < 0)
		goto undo;
	SHMK_CRASHPOINT("create/after_shm_open");
	/* 3. Reserve the memory now: a full tmpfs says ENOSPC here rather
	 *    than SIGBUS at first touch. */
	step = "reserve memory for";
	fiu_do_on("shmk/segment/fallocate", { errno = ENOSPC; goto unlink; });
	if ((rc = SHMK_SYSP("fallocate", shmk__fiu_errno(),
			    posix_fallocate(fd, 0, (off_t)size))) != 0) {
		errno = rc;
		goto unlink;
	}
	step = "map";
	fiu_do_on("shmk/segment/mmap", { errno = ENOMEM; goto unlink; });
	addr = SHMK_SYSP("mmap", MAP_FAILED,
			 mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	if (addr == MAP_FAILED || fstat(fd, &st) < 0)
		goto unlink;
	shmk__close(&fd);
	SHMK_CRASHPOINT("create/after_mmap");

	/* 4. Live.  If this line is lost the record still says "intent",
	 *    which is enough to reap the segment: succeed all the same. */
	e->state = SHMK_SEG_LIVE;
	e->ino = (uint64_t)st.st_ino;
	{
		int n = shmk__fmt_op_live(line, sizeof line, e->name, e->ino);
		if (n > 0)
			shmk__owner_defer(c, line, (size_t)n);
	}
	SHMK_CRASHPOINT("create/after_live");
	pthread_mutex_unlock(&c->mu);
	if (soft) /* outside the lock: the callback may clean up through us */
		shmk_monitor_limits(mon, &soft_s);

	seg->ctx = c;
	seg->addr = addr;
	seg->size = size;
	seg->owner_pid = c->own.pid;
	memcpy(seg->name, e->name, sizeof seg->name);
	*out = seg;
	return 0;

unlink:
	rc = -errno;
	if (addr != MAP_FAILED)
		munmap(addr, size);
	{
		/* Only the object we made: the name may hold another one by
		 * now (ours unlinked behind our back, a new one created). */
		struct stat mine;
		struct shmk_unlink_req q = {.shmfd = c->shm_fd, .name = e->name,
					    .uid = c->own.ident.uid};
		if (fd >= 0 && fstat(fd, &mine) == 0) {
			q.ino = (uint64_t)mine.st_ino;
			(void)shmk__seg_remove(&q, NULL, NULL, NULL);
		}
	}
	shmk__close(&fd);
	errno = -rc;
undo:
	rc = -errno;
	shmk__err(rc, "segment %s: cannot %s it: %s", e->name, step,
		  strerror(-rc));
	shmk__table_del(&c->own.segs, e->name);
	{
		/* Best effort: if the drop is lost the record names a segment
		 * that does not exist, which is harmless. */
		char msg[512];
		snprintf(msg, sizeof msg, "%s", shmk_last_error());
		(void)log_op(c, shmk__fmt_op_drop(line, sizeof line, e->name),
			     line);
		shmk__err(rc, "%s", msg);
	}
out:
	pthread_mutex_unlock(&c->mu);
	free(e);
	free(seg);
	return rc;
}

struct destroy_drop {
	shmk_ctx *c;
	struct shmk_rec_seg *e;
};

/* Forgets the entry once its name no longer holds our object.  A lost
 * drop line leaves a record naming a gone segment: harmless, and the
 * owner rewrites the file before its next append. */
static int destroy_drop(void *arg)
{
	struct destroy_drop *d = arg;
	char line[SHMK_SHM_NAME_MAX + 64];

	SHMK_CRASHPOINT("destroy/after_unlink");
	shmk__table_del(&d->c->own.segs, d->e->name);
	(void)log_op(d->c, shmk__fmt_op_drop(line, sizeof line, d->e->name),
		     line);
	SHMK_CRASHPOINT("destroy/after_drop");
	free(d->e);
	return 0;
}

/* Caller holds c->mu and is the owner.  Invariants 2 and 4 in one place:
 * shmk__seg_remove() unlinks only our inode and drops after it. */
static int destroy_locked(shmk_ctx *c, struct shmk_rec_seg *e)
{
	struct destroy_drop d = {c, e};
	struct shmk_unlink_req q = {.shmfd = c->shm_fd, .name = e->name,
				    .ino = e->ino, .uid = c->own.ident.uid,
				    .fp = "shmk/segment/unlink"};
	char name[SHMK_SHM_NAME_MAX];
	struct stat st;

	memcpy(name, e->name, sizeof name);
	switch (shmk__seg_remove(&q, &st, destroy_drop, &d)) {
	case SHMK_UL_UNLINKED:
	case SHMK_UL_GONE:
	case SHMK_UL_REPLACED: /* ours was removed behind our back */
		return 0;
	case SHMK_UL_FOREIGN:
		return shmk__err(-EPERM, "segment %s: cannot unlink: no longer "
					 "a regular file of ours (uid %u)",
				 name, (unsigned)st.st_uid);
	case SHMK_UL_ERROR:
		break;
	}
	return shmk__err(q.error, "segment %s: cannot unlink: %s", name,
			 strerror(-q.error));
}

int shmk_segment_destroy_name(shmk_ctx *c, const char *name)
{
	char full[SHMK_SHM_NAME_MAX];
	struct shmk_rec_seg *e;
	int rc;

	if (!c)
		return shmk__err(-EINVAL, "shmk_segment_destroy_name: ctx is NULL");
	if ((rc = full_name(c, name, full)) < 0)
		return rc;
	pthread_mutex_lock(&c->mu);
	if (c->own.pid != shmk__pid() || !(e = shmk__table_get(&c->own.segs, full)))
		rc = shmk__err(-ENOENT, "segment %s: not owned by this process",
			       full);
	else
		rc = destroy_locked(c, e);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int shmk__segment_unlink(shmk_segment *seg)
{
	shmk_ctx *c = seg->ctx;
	struct shmk_rec_seg *e;
	int rc;

	if (seg->owner_pid == 0) {
		rc = shmk__err(-EPERM, "segment %s: attached, not created by "
				       "this process: cannot destroy",
			       seg->name);
	} else if (seg->owner_pid != shmk__pid()) {
		rc = shmk__err(-EPERM, "segment %s: owned by process %d, not "
				       "by this one",
			       seg->name, (int)seg->owner_pid);
	} else {
		pthread_mutex_lock(&c->mu);
		if (c->own.pid != shmk__pid() ||
		    !(e = shmk__table_get(&c->own.segs, seg->name)))
			rc = shmk__err(-ENOENT, "segment %s: already destroyed",
				       seg->name);
		else
			rc = destroy_locked(c, e);
		pthread_mutex_unlock(&c->mu);
	}
	return rc;
}

int shmk_segment_destroy(shmk_segment *seg)
{
	int rc;

	if (!seg)
		return 0;
	munmap(seg->addr, seg->size);
	rc = shmk__segment_unlink(seg);
	free(seg);
	return rc;
}

int shmk_segment_attach(shmk_ctx *c, const char *name, shmk_segment **out)
{
	shmk_segment *seg;
	struct stat st;
	int fd, rc;

	if (!out || !c)
		return shmk__err(-EINVAL, "shmk_segment_attach: NULL argument");
	*out = NULL;
	if (!(seg = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *seg))))
		return shmk__err(-ENOMEM, "segment: out of memory");
	if ((rc = full_name(c, name, seg->name)) < 0)
		goto fail;
	fd = SHMK_SYS("shm_open", openat(c->shm_fd, seg->name + 1,
					 O_RDWR | O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0) {
		rc = shmk__err(-errno, "segment %s: cannot attach: %s",
			       seg->name, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		rc = shmk__err(-EINVAL, "segment %s: cannot attach: not a "
					"usable shared memory object",
			       seg->name);
		goto fail_fd;
	}
	if (st.st_uid != geteuid()) {
		rc = shmk__err(-EPERM, "segment %s: cannot attach: owned by "
				       "uid %u, not by us",
			       seg->name, (unsigned)st.st_uid);
		goto fail_fd;
	}
	seg->size = (size_t)st.st_size;
	seg->addr = SHMK_SYSP("mmap", MAP_FAILED,
			      mmap(NULL, seg->size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0));
	if (seg->addr == MAP_FAILED) {
		rc = shmk__err(-errno, "segment %s: cannot map: %s", seg->name,
			       strerror(errno));
		goto fail_fd;
	}
	shmk__close(&fd);
	seg->ctx = c;
	*out = seg;
	return 0;
fail_fd:
	shmk__close(&fd);
fail:
	free(seg);
	return rc;
}

void shmk_segment_detach(shmk_segment *seg)
{
	if (!seg)
		return;
	munmap(seg->addr, seg->size);
	free(seg);
}

void *shmk_segment_addr(const shmk_segment *s) { return s->addr; }
size_t shmk_segment_size(const shmk_segment *s) { return s->size; }
const char *shmk_segment_name(const shmk_segment *s) { return s->name; }
