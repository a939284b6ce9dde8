/* SPDX-License-Identifier: MIT */
/* pool_shared.h - the worker pool's one cross-process contract: the layout
 * of the control segment that the service, its workers and the spawner
 * map at the same address, the meaning of every shared word, and the
 * functions the pool's files share.
 *
 * Files, one process role each:
 *   pool.c          the service side: create, lease, run, release, destroy
 *   pool_worker.c   a worker: runs jobs
 *   pool_spawner.c  the spawner: forks replacement workers (a state x event
 *                   table)
 *   pool_death.c    a death: reaping, classification, cgroup reading, the
 *                   report, the slot's re-initialisation
 *   pool_ctl.c      futexes (plain and robust), clocks, the state word,
 *                   what a child keeps (descriptors, titles)
 *
 * Processes (docs/DESIGN.md, "Worker pool"):
 *   service   shmk_pool_create() forks the workers itself and then the
 *             spawner; it has no thread of the pool's.  Every worker is its
 *             child, so it reaps and classifies every death.
 *   workers   one per slot; each registers a robust futex list naming two
 *             words of its slot (life, job) that the kernel marks
 *             FUTEX_OWNER_DIED when it dies, waking a waiter: a death is
 *             an event, seen by whoever waits, with no watcher.
 *   spawner   forked at creation, single-threaded for its whole life; forks
 *             replacements on request with CLONE_PARENT (they are the
 *             service's children too) from its copy of the service as it
 *             was at creation.
 */
#ifndef SHMK_POOL_SHARED_H
#define SHMK_POOL_SHARED_H

#include "ctx.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define POOL_MAGIC 0x73686d70u /* "shmp" */
#define MAX_WORKERS 1024
#define JOB_TIMEOUT_MS 60000 /* job_timeout_ms 0 */
/* After a timed-out worker is SIGKILLed, how long the caller waits for its
 * death before it returns anyway. */
#define KILL_REPORT_MS 1000
/* A worker whose life word says it died: how long it may take to become
 * reapable (the kernel marks the word in exit_mm(), shortly before the
 * process turns into a zombie). */
#define REAP_WAIT_MS 1000
/* Destroy: how long it waits past the grace for SIGKILLed processes (and a
 * spawner that does not exit) to go. */
#define EXIT_WAIT_MS 1000
/* How long a reader waits for a death report being written. */
#define REPORT_WAIT_MS 100
/* Without futex_waitv (Linux < 5.16, valgrind): how often a waiting caller
 * looks at the spawner's word. */
#define SLICE_MS 50

enum phase {
	PH_STARTING = 0, /* no ready worker (a replacement is coming)       */
	PH_READY = 1,    /* worker waiting for a job                      */
	PH_BUSY = 2,     /* a job is posted or running                    */
	PH_QUARANTINED = 3,
	PH_STOPPED = 4,  /* pool shut down or spawner gone                */
	PH_DYING = 5,    /* a caller is handling the worker's death       */
};

/* The state word: [leased:1 | phase:3 | gen:28]; every transition is a
 * compare-and-swap on it. */
#define ST_LEASED 0x80000000u
#define ST_PHASE(s) (((s) >> 28) & 0x7u)
#define ST_GEN(s) ((s)&0x0fffffffu)
#define ST_MAKE(leased, ph, gen) \
	(((leased) ? ST_LEASED : 0u) | ((uint32_t)(ph) << 28) | ((gen)&0x0fffffffu))

/* A robust word: [WAITERS:1 | OWNER_DIED:1 | tid:30] (futex(2)). */
#define RW_TID(v) ((v)&FUTEX_TID_MASK)
#define RW_DEAD(v) (((v)&FUTEX_OWNER_DIED) != 0)

struct death_rec { /* shmk_death without pointers: it lives in shared memory */
	int kind, exit_code, sig, core, quarantined, limit_src, oom_src;
	pid_t pid;
	unsigned deaths_in_window;
	uint64_t peak_rss, mem_limit, suggested, oom_kills;
	int64_t when;
	int reinit_err; /* positive errno: the slot's memory is lost */
};

/*
 * One slot.  The robust words and their list nodes come first, in this
 * order, so that the distance from a node to its word is the same for
 * every word of a list (a robust list has one futex_offset):
 *   worker's list:  head -> life_node -> job_node -> head  (offset W_OFF)
 *   spawner's list: head -> ctl's sp_node -> slot[0].sp_node -> ...
 *                   -> head                                (offset SP_OFF)
 * The kernel walks a list in order, so a worker's life word is marked
 * before its job word, and the spawner's own word before the slots'.
 *
 * life: the tid of whoever answers for the slot's worker: 0 before the
 *       first worker; the spawner's while a replacement is on its way (the
 *       service writes it when it asks for one); the worker's for its whole
 *       life.  OWNER_DIED: that process died.
 * job:  the worker's tid while a job is posted (written by the caller),
 *       0 once the worker finished it.  OWNER_DIED: the worker died with
 *       the job.
 */
struct pslot {
	struct robust_list sp_node;   /* spawner's list -> life */
	struct robust_list life_node; /* worker's list  -> life */
	_Atomic uint32_t life;
	uint32_t pad0;
	struct robust_list job_node;  /* worker's list  -> job  */
	_Atomic uint32_t job;
	_Atomic uint32_t state;
	_Atomic uint32_t doorbell; /* job sequence posted (worker waits on it) */
	_Atomic uint32_t taken;    /* job sequence the worker began          */
	_Atomic int32_t result;
	_Atomic int32_t pid;       /* the current worker, 0 while none        */
	_Atomic int32_t timeout_pid; /* the worker a caller killed at its
					job's deadline                        */
	_Atomic uint32_t deaths;
	_Atomic uint32_t report_seq; /* seqlock over last (odd: writing)  */
	_Atomic int32_t reinit_err;  /* as death_rec's, while quarantined */
	struct death_rec last;
};

#define W_OFF ((long)(offsetof(struct pslot, life) - offsetof(struct pslot, life_node)))
#define SP_OFF ((long)(offsetof(struct pslot, life) - offsetof(struct pslot, sp_node)))
_Static_assert(offsetof(struct pslot, job) - offsetof(struct pslot, job_node) ==
		       offsetof(struct pslot, life) - offsetof(struct pslot, life_node),
	       "one futex_offset for the worker's list");

struct pctl {
	uint32_t magic;
	uint32_t nslots;
	/* The spawner's word (its tid; OWNER_DIED once it died), first on
	 * its robust list, at SP_OFF from sp_node like a slot's life. */
	struct robust_list sp_node;
	struct robust_list sp_pad;
	_Atomic uint32_t spawner;
	/* The spawner's pid, written by the kernel (CLONE_PARENT_SETTID) as
	 * worker 0 forks it; 0 until then. */
	_Atomic int32_t sp_tid;
	_Atomic uint32_t free_seq;  /* bumped whenever a slot may be leasable */
	_Atomic uint32_t shutdown;
	_Atomic uint32_t sp_gone;   /* the spawner died: the pool is stopped */
	_Atomic uint32_t deaths;
	_Atomic uint32_t lease_rr;  /* where the next lease scan starts       */
	/* A start failure of a worker: positive errno (-1 while start_msg is
	 * being written) and the sentence naming the failing call. */
	_Atomic int32_t start_err;
	char start_msg[256];
	struct pslot slot[];
};
_Static_assert(offsetof(struct pctl, spawner) - offsetof(struct pctl, sp_node) ==
		       offsetof(struct pslot, life) - offsetof(struct pslot, sp_node),
	       "one futex_offset for the spawner's list");

/* A child's names, formatted by the service before it forks. */
struct ptitle {
	char comm[16];  /* prctl(PR_SET_NAME): ps -o comm, top */
	char text[112]; /* over argv: ps -o args                */
};

/* The service's handle on the worker of a slot (its child). */
struct wproc {
	pid_t pid;   /* the worker fd names, 0: none                   */
	int fd;      /* its pidfd, -1 without one                      */
};

/* The service's memory of a slot's deaths (touched only by the caller
 * that claimed a death: state PH_DYING). */
struct wdeaths {
	unsigned streak;  /* consecutive deaths, for backoff */
	unsigned n_times;
	int64_t *times;   /* last K death times (ring) */
};

struct memwatch {
	char events[PATH_MAX]; /* file holding oom_kill */
	int src;               /* index into oom_names  */
	char limit[PATH_MAX];
	int limit_src;
	uint64_t oom_seen;
};

struct shmk_pool {
	shmk_ctx *ctx;
	struct shmk_pool_options o;
	char base[64];                /* segment name prefix            */
	shmk_segment *ctl_seg;
	struct pctl *ctl;
	shmk_segment **slots;
	pid_t service;                /* getpid() at creation            */
	bool pdeath;                  /* workers die with the creating thread */
	/* No spawner, nor its pipes, until the first replacement forks it
	 * from the service (SHMK_OPEN_LAZY_SPAWNER, one thread at creation);
	 * false once that was tried. */
	bool lazy_sp;
	pthread_mutex_t mu;           /* w, mw                           */
	struct wproc *w;
	struct wdeaths *d;
	struct memwatch mw;
	struct ptitle *titles; /* one per slot, then the spawner's */
	pid_t sp_pid;   /* the spawner, once known (ctl->sp_tid); 0 before */
	int sp_pidfd;
	/* The spawner's ends of its pipes (request, alive, ack): inherited by
	 * worker 0, which forks the spawner once it is ready; the service
	 * closes them after the forks. */
	int sp_fds[3];
	int req_fd;    /* service -> spawner requests (SOCK_SEQPACKET)     */
	int alive_fd;  /* write end of a pipe: its EOF tells the spawner the
			  service is gone                                 */
	int sp_ack_fd; /* read end: the spawner is up (a byte) or died or was
			  never forked (EOF); read at the first need      */
	/* Calls into the pool under way (low bits) and INFLIGHT_WAITER, set
	 * by destroy, which unmaps the shared state and frees p only once
	 * none is left inside. */
	_Atomic uint32_t inflight;
};

#define INFLIGHT_WAITER 0x80000000u

/* A request to the spawner (SOCK_SEQPACKET: one message each). */
struct sp_req {
	uint32_t slot;
	uint32_t delay_ms; /* backoff: fork no sooner than this */
};

/* ---- pool_ctl.c --------------------------------------------------------- */
int shmk__fwait(_Atomic uint32_t *w, uint32_t val, const struct timespec *rel);
void shmk__fwake(_Atomic uint32_t *w, int n);
bool shmk__remaining(int64_t deadline, struct timespec *ts,
		     const struct timespec **out);
/* Sets FUTEX_WAITERS in the robust word *w if it still holds seen;
 * returns the value to wait for, or the word's new value changed. */
bool shmk__rw_arm(_Atomic uint32_t *w, uint32_t *seen);
/* Waits while *w == val or *sp == spv (the spawner's word), up to the
 * deadline (mono ms, -1: none): futex_waitv, or slices of SLICE_MS. */
void shmk__wait2(_Atomic uint32_t *w, uint32_t val, _Atomic uint32_t *sp,
		 uint32_t spv, int64_t deadline);
uint32_t shmk__set_phase(struct pslot *s, enum phase ph, bool new_gen);
void shmk__bump_free(struct pctl *c);
void shmk__start_failed(struct pctl *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void shmk__titles_init(void);
/* Formats, in the service, the names a child gives itself: "shmk-<role>[i]"
 * and "<title>: <role>[ i]" (empty without a title or an area for it). */
void shmk__titles_format(struct ptitle *t, const char *title, const char *role,
			 unsigned i, bool numbered);
/* In a child: takes its formatted names (no formatting, no stdio). */
void shmk__title(const struct ptitle *t);
int shmk__pidfd_open(pid_t pid);
/* In a new child of the pool: SIGTERM's default action; every signal
 * unblocked (a worker) or all but SIGTERM blocked (the spawner). */
void shmk__child_signals(bool spawner);
/* Registers the calling process's robust list (set_robust_list(2)). */
int shmk__robust_register(struct robust_list_head *h, struct robust_list *first,
			  long offset);

/* ---- pool_worker.c ------------------------------------------------------ */
/* Runs the worker of slot i; never returns.  expect: the tid in the slot's
 * life word it takes over (0: a first worker; the spawner's); ack_fd:
 * written once ready, then closed. */
__attribute__((noreturn)) void shmk__worker_main(shmk_pool *p, unsigned i,
						 uint32_t expect, int ack_fd);

/* ---- pool_spawner.c ----------------------------------------------------- */
/* The spawner's pipes and socket: its ends in p->sp_fds (request, alive,
 * ack), the service's in p->req_fd, alive_fd, sp_ack_fd.  Made before the
 * workers are forked (worker 0 inherits the spawner's ends and forks it
 * first thing), or for a lazy spawner by shmk__spawner_fork_lazy().  0 or
 * a negative errno (the sentence set). */
int shmk__spawner_pipes(shmk_pool *p);
/* Worker 0, first thing: forks the spawner with CLONE_PARENT (a child of the
 * service) and closes its ends of the spawner's pipes. */
void shmk__spawner_fork(shmk_pool *p);
/* A lazy spawner (p->lazy_sp), at the first need of it, in the service
 * under p->mu: makes its pipes and forks it if the service has one thread.
 * If it cannot, the cause is the pool's start failure and the spawner
 * never comes (shmk__spawner_up() says so).  Nothing once tried. */
void shmk__spawner_fork_lazy(shmk_pool *p);

/* ---- pool_death.c ------------------------------------------------------- */
void shmk__memwatch_init(struct memwatch *m);
/* Handles the death of slot i's worker if its life word says it died:
 * claims it (PH_DYING), reaps and classifies it, re-initialises the slot,
 * publishes the report, quarantines or asks the spawner for a
 * replacement.  Returns true if the slot's worker is dead (handled here or
 * by another caller meanwhile). */
bool shmk__settle(shmk_pool *p, unsigned i);
/* The spawner is gone: the pool stops (every worker SIGKILLed, every slot
 * stopped, every waiter woken). */
void shmk__spawner_gone(shmk_pool *p);
/* The service's pidfd on pid, slot i's worker (opened if need be), or -1.
 * Under p->mu. */
int shmk__worker_fd(shmk_pool *p, unsigned i, pid_t pid);
/* Waits (bounded) until the spawner is up and p->sp_pid known; false if
 * it never will be (it failed or died at its start, or was never
 * forked): its word is then marked dead.  false too, without a wait, for a
 * lazy spawner nobody needed yet. */
bool shmk__spawner_up(shmk_pool *p);
/* Asks the spawner for a replacement of slot i after delay_ms.  false:
 * the spawner is gone. */
bool shmk__request(shmk_pool *p, unsigned i, uint32_t delay_ms);

#endif
