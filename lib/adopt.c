/* SPDX-License-Identifier: MIT */
/* adopt.c - the records of adopted names, for the preload
 * (lib/preload.c, libshmkeeper-preload.so).
 *
 * A program under the preload creates objects with names of its own
 * choosing ("/psm_1a2b", semaphores "sem.mp-x"); they are recorded, as
 * the library's segments are, in this process's record of the namespace
 * the operator chose, with the kind that says how they were made (record
 * format 3).  The same rules hold (invariants 1 and 2): the intent is in
 * the record before the object is created, the inode after it, the drop
 * after the unlink; a reaper removes one only when the owner is provably
 * dead and the name still holds the recorded inode (reap.c, unlink.c).
 *
 * Every function here runs with c->mu held by the caller.
 */
#include "ctx.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Puts back the entry an intent replaced: restated as intent, then live
 * with its inode (one append).  Best effort: if it is lost, the record
 * says less than it should about an object this process still holds, and
 * a reaper judges it as an intent when this process is dead. */
static void restore(shmk_ctx *c, const struct shmk_rec_seg *prev)
{
	char line[2 * (SHMK_SHM_NAME_MAX + 128)];
	struct shmk_rec_seg *e;
	int n, m = 0;

	if (!prev->state || !(e = malloc(sizeof *e)))
		return;
	*e = *prev;
	if (shmk__table_put(&c->own.segs, e->name, e) < 0) {
		free(e);
		return;
	}
	if ((n = shmk__fmt_op_adopt(line, sizeof line, e->name, e->size,
				    e->created, e->kind)) < 0 ||
	    (e->state == SHMK_SEG_LIVE &&
	     (m = shmk__fmt_op_live(line + n, sizeof line - (size_t)n, e->name,
				    e->ino)) < 0))
		return;
	(void)shmk__owner_log(c, line, (size_t)(n + m));
}

int shmk__adopt_intent(shmk_ctx *c, const char *full, enum shmk_seg_kind kind,
		       struct shmk_rec_seg *prev, struct shmk_rec_seg **made)
{
	char line[SHMK_SHM_NAME_MAX + 128];
	struct shmk_rec_seg *e;
	size_t nl = strlen(full);
	void *old;
	int n, rc;

	if (nl >= sizeof e->name)
		return shmk__err(-EINVAL, "%.255s: not a name the preload adopts",
				 full);
	if ((rc = shmk__owner_ensure(c)) < 0)
		return rc;
	if ((e = c->own.free_ent))
		c->own.free_ent = NULL;
	else if (!(e = SHMK_SYSP("malloc", NULL, malloc(sizeof *e))))
		return shmk__err(-ENOMEM, "%s: out of memory", full);
	memcpy(e->name, full, nl + 1);
	e->size = 0;
	e->ino = 0;
	e->created = shmk__now();
	e->state = SHMK_SEG_INTENT;
	e->kind = kind;
	if ((n = shmk__fmt_op_adopt(line, sizeof line, e->name, 0,
				    e->created, kind)) < 0) {
		free(e);
		return shmk__err(-ENOBUFS, "%s: record line does not fit", full);
	}
	/* A name recorded before (ours, or made and unlinked by someone else
	 * since): the new statement replaces it, in the record as here, and
	 * the caller gets the old one back to restore if nothing is made. */
	if ((rc = shmk__table_swap(&c->own.segs, e->name, e, &old)) < 0) {
		free(e);
		return shmk__err(rc, "%s: out of memory", full);
	}
	prev->state = 0;
	if (old) {
		*prev = *(struct shmk_rec_seg *)old;
		free(old);
	}
	if ((rc = shmk__owner_log(c, line, (size_t)n)) < 0) {
		free(shmk__table_del(&c->own.segs, full));
		restore(c, prev);
		return rc;
	}
	SHMK_CRASHPOINT("adopt/after_intent");
	if (made)
		*made = e;
	return 0;
}

void shmk__adopt_undo(shmk_ctx *c, const char *full,
		      const struct shmk_rec_seg *prev)
{
	shmk__adopt_drop(c, full);
	restore(c, prev);
}

void shmk__adopt_live(shmk_ctx *c, struct shmk_rec_seg *e, uint64_t ino)
{
	char line[SHMK_SHM_NAME_MAX + 128];
	int n;

	e->state = SHMK_SEG_LIVE;
	e->ino = ino;
	/* Written now, not deferred as the library's own: a program may hold
	 * one object for its whole life, and until this line a reaper would
	 * know only the name. */
	if ((n = shmk__fmt_op_live(line, sizeof line, e->name, ino)) > 0)
		(void)shmk__owner_log(c, line, (size_t)n);
}

void shmk__adopt_drop(shmk_ctx *c, const char *full)
{
	struct shmk_rec_seg *e = shmk__table_del(&c->own.segs, full);
	char line[SHMK_SHM_NAME_MAX + 128];
	int n;

	if (!e)
		return;
	if ((n = shmk__fmt_op_drop(line, sizeof line, e->name)) > 0) {
		/* Best effort either way: a lost drop leaves an entry whose
		 * name no longer holds its object (the reaper shrugs it off),
		 * or an intent that the reaper judges as any other. */
		if (e->state == SHMK_SEG_LIVE)
			shmk__owner_defer(c, line, (size_t)n);
		else
			(void)shmk__owner_log(c, line, (size_t)n);
	}
	if (!c->own.free_ent)
		c->own.free_ent = e;
	else
		free(e);
}

bool shmk__adopt_mine(shmk_ctx *c)
{
	return c->own.pid == shmk__pid(); /* 0 (no owner) is no pid */
}

void shmk__adopt_retire(shmk_ctx *c)
{
	struct shmk_owner *o = &c->own;

	if (o->pid == 0 || o->pid != shmk__pid())
		return;
	if (o->segs.used) { /* the deferred drops go out; the rest stays */
		if (o->pending_len)
			(void)shmk__owner_log(c, "", 0);
		return;
	}
	/* Record before lock file, as shmk__owner_close() does. */
	shmk__jmap_remove_old(c);
	if (unlinkat(c->ns_fd, o->rec_name, 0) == 0 || errno == ENOENT)
		(void)unlinkat(c->ns_fd, o->lock_name, 0);
	shmk__owner_forget(o);
}
