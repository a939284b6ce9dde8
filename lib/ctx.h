/* SPDX-License-Identifier: MIT */
/* ctx.h - the shmk_ctx and owner structures, shared by ctx.c, segment.c,
 * owner.c and admit.c. */
#ifndef SHMK_CTX_H
#define SHMK_CTX_H

#include "internal.h"

#include <pthread.h>

/* This process's stake in a namespace: its lock file, its record and the
 * segments it owns.  Created at the first shmk_segment_create(). */
struct shmk_owner {
	/* What every create and unlink touches comes first (two cache
	 * lines: under the preload a program pays for each miss). */
	pid_t pid; /* process the owner belongs to; 0 = no owner yet */
	bool must_rewrite;      /* an append failed: file may end torn */
	bool write_only; /* lines are written, never stored: settled at the
			  * first version (not wanted, or not mapped) */
	struct shmk_table segs; /* name -> struct shmk_rec_seg (owned) */
	/* The mapped journal (journal_map.c): the record (rec_fd) mapped,
	 * lines stored from wpos; the version before it, kept under the
	 * record's temporary name for the next snapshot.  map NULL: lines
	 * are appended with write(). */
	char *map;
	size_t map_size;
	size_t wpos;
	/* A dropped entry kept for the next intent (adopt.c): a program that
	 * makes and unlinks objects all its life reuses it. */
	struct shmk_rec_seg *free_ent;
	size_t jbytes;          /* journal bytes since the last snapshot */
	size_t pending_len;     /* bytes in pending[] */
	int old_fd;
	char *old_map;
	size_t old_size;
	size_t old_used; /* bytes of it that may not be spaces */
	size_t reserve;  /* the spaces the last snapshot left (grows) */
	size_t snap_bytes;      /* size of the last snapshot line */

	char id[SHMK_ID_MAX];
	char lock_name[SHMK_ID_MAX + 8];
	char rec_name[SHMK_ID_MAX + 8];
	char rec_path[PATH_MAX];
	int lock_fd; /* holds our fcntl lock: opened exactly once, see owner.c */
	int rec_fd;  /* O_APPEND fd of the current record version */
	struct shmk_ident ident;
	int64_t created;
	/* "live" (and, for adopted names, "drop") lines waiting to go out
	 * with the next append (one write instead of several); until then
	 * the record says "intent" (enough to reap the segment) or names an
	 * object that is gone (which the reaper shrugs off).  Two lines. */
	char pending[2 * (SHMK_SHM_NAME_MAX + 128)];
};

struct shmk_ctx {
	pthread_mutex_t mu;
	char dir[PATH_MAX];
	char ns_path[PATH_MAX];
	char ns[SHMK_NS_MAX + 1];
	char role[SHMK_ROLE_MAX + 1];
	char shm_path[PATH_MAX];
	int root_fd;
	int ns_fd;
	int shm_fd;
	bool durable;
	bool lazy_spawner; /* SHMK_OPEN_LAZY_SPAWNER */
	uint64_t budget;
	shmk_monitor *monitor; /* hard/soft limits on creation (not owned) */
	struct shmk_inoset foreign; /* other users' objects seen (admit.c) */
	/* Set by the preload (adopt.c) before its first create: the record
	 * is format 3 and holds adopted names; the lock descriptor stays open
	 * across exec (the exec'd image is the same owner); and the owner's
	 * descriptors are moved to fd_floor or above, out of the program's
	 * way (0: where open() puts them). */
	bool adopt;
	int fd_floor;
	struct shmk_owner own;
};

struct shmk_segment {
	shmk_ctx *ctx;
	void *addr;
	size_t size;
	pid_t owner_pid; /* pid that created it; 0 if attached */
	char name[SHMK_SHM_NAME_MAX];
};

/* segment.c: what shmk_segment_destroy() does but the munmap and the free:
 * the name is removed and the record drops it, the mapping stays (for
 * shmk_segment_detach()).  The pool's teardown removes its names while its
 * processes exit, and unmaps once they are gone. */
int shmk__segment_unlink(shmk_segment *seg);

/* admit.c: called by shmk_segment_create() under c->mu, before anything
 * is allocated.  One scan of the namespace serves the budget and the
 * monitor's limits.  A negative errno refuses (budget or hard limit, the
 * sentence set); 1 admits but a soft limit would be crossed: the caller
 * runs shmk_monitor_limits(c->monitor, soft_out) once it has released
 * c->mu, so the callback may clean up through the library; 0 admits. */
int shmk__admit(shmk_ctx *c, const char *name, uint64_t size,
		struct shmk_sample *soft_out);

/* journal_map.c: the mapped journal (c->mu held).
 *   _wanted     does this context's owner keep its record mapped?
 *   _publish    the snapshot doc (len bytes) as the record's new version,
 *               mapped, its lines to be stored from len; 0 or -errno with
 *               the sentence set (the old version stays in place).
 *   _fits       is there room for len more bytes?
 *   _store      one or more '\n'-terminated lines (it fits).
 *   _remove_old the old version's file goes (at close).
 *   _forget     unmap and close, nothing removed (a fork child's copies,
 *               or after close). */
bool shmk__jmap_wanted(const shmk_ctx *c);
int shmk__jmap_publish(shmk_ctx *c, const char *doc, size_t len);
bool shmk__jmap_fits(const struct shmk_owner *o, size_t len);
void shmk__jmap_store(struct shmk_owner *o, const char *line, size_t len);
void shmk__jmap_remove_old(shmk_ctx *c);
void shmk__jmap_forget(struct shmk_owner *o);

/* owner.c */
int shmk__owner_ensure(shmk_ctx *c);
/* Moves *fd to the lowest free descriptor >= floor (close-on-exec), if
 * floor > 0 and *fd is below it; keeps it where it is if that fails.
 * Never for a descriptor that holds a POSIX lock: closing the old one
 * would drop it.  errno is kept. */
void shmk__fd_raise(int *fd, int floor);
void shmk__owner_forget(struct shmk_owner *o);
int shmk__owner_log(shmk_ctx *c, const char *line, size_t len);
void shmk__owner_defer(shmk_ctx *c, const char *line, size_t len);
int shmk__owner_snapshot(shmk_ctx *c);
int shmk__owner_close(shmk_ctx *c);

/* adopt.c: the preload's records of adopted names (caller holds c->mu,
 * c->adopt set).  full is "/<file>" (shmk__adopted_name_ok).
 *   _intent  the entry, in the record before the object is made (makes
 *            this process's owner if it has none: a fork child gets its
 *            own); 0 or -errno with the sentence set.  full is a name the
 *            caller has judged (shmk__adopted_name_ok).  An entry of the
 *            same name it replaces is copied to *prev (prev->state 0:
 *            none), for _undo; *made (if not NULL) is the new entry, for
 *            _live, valid until its name is dropped.
 *   _undo    the call made nothing: the intent goes, *prev comes back
 *            (our own live object under a name an O_EXCL create found
 *            taken stays recorded).
 *   _live    the object of entry e exists with inode ino (written at
 *            once).
 *   _drop    the name no longer holds the object (unlinked, or never
 *            made): forgets the entry.  A live entry's drop may wait for
 *            the next append (its inode protects any later object of the
 *            name); an intent's is written now, or a reaper could take a
 *            later object of the name for this owner's.
 *   _mine    does this process have an owner (not a fork child's copy
 *            of its parent's)?  Only then may _drop be called.
 *   _retire  at exit: if the owner holds no entry, remove its record and
 *            lock file; else write what was deferred, and leave both to a
 *            reaper. */
int shmk__adopt_intent(shmk_ctx *c, const char *full, enum shmk_seg_kind kind,
		       struct shmk_rec_seg *prev, struct shmk_rec_seg **made);
void shmk__adopt_undo(shmk_ctx *c, const char *full,
		      const struct shmk_rec_seg *prev);
void shmk__adopt_live(shmk_ctx *c, struct shmk_rec_seg *e, uint64_t ino);
void shmk__adopt_drop(shmk_ctx *c, const char *full);
bool shmk__adopt_mine(shmk_ctx *c);
void shmk__adopt_retire(shmk_ctx *c);

#endif
