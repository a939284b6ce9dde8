/* SPDX-License-Identifier: MIT */
/* pool.c - the worker pool, service side: create, lease, run, release,
 * destroy.  The process model, the shared words and the other files are
 * described in pool_shared.h and docs/DESIGN.md ("Worker pool").
 *
 * The service forks the first workers itself and then the spawner; it has
 * no thread of the pool's.  Every wait of a caller is a futex wait on a
 * shared word whose change is the event it waits for, and has a deadline
 * (invariant 8):
 *   - a job:          the slot's job word, which the worker clears when
 *                     done and the kernel marks when the worker dies
 *                     (robust futex);
 *   - a replacement:  the slot's life word (the new worker takes it over;
 *                     the kernel marks it if the spawner dies first);
 *   - a lease:        free_seq, and the spawner's word (futex_waitv).
 * The one ordering point between a caller posting a job and a caller
 * handling the worker's death is the compare-and-swap of the slot's state
 * word: READY -> BUSY (post), READY/BUSY/STARTING -> DYING (a death,
 * claimed by exactly one caller, which handles it in pool_death.c).
 */
#include "pool_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define mono_ms shmk__mono_ms
#define remaining shmk__remaining

/* ---- calls under way ---------------------------------------------------- */

/* Bumped and woken when the last caller leaves a pool whose destroy waits:
 * a word of the library's own, because the pool may be freed the moment
 * that caller's decrement lands.  Shared by every pool (a destroy woken
 * for another pool's caller checks its own count again). */
static _Atomic uint32_t callers_left;

static void enter(shmk_pool *p) { atomic_fetch_add(&p->inflight, 1); }

static void leave(shmk_pool *p)
{
	/* After this decrement destroy may free p at once: nothing of p is
	 * touched after it. */
	if (atomic_fetch_sub(&p->inflight, 1) == (INFLIGHT_WAITER | 1)) {
		(void)fiu_fail("shmk/test/pool/last_left");
		atomic_fetch_add(&callers_left, 1);
		shmk__fwake(&callers_left, INT_MAX);
	}
}

/* Destroy's side of leave(): returns once no call is inside p. */
static void wait_callers_left(shmk_pool *p)
{
	uint32_t seq = atomic_load(&callers_left);

	atomic_fetch_or(&p->inflight, INFLIGHT_WAITER);
	while (atomic_load(&p->inflight) != INFLIGHT_WAITER) {
		shmk__fwait(&callers_left, seq, NULL);
		seq = atomic_load(&callers_left);
	}
}

/* The spawner died (its word is marked): the pool stops.  true if so. */
static bool spawner_dead(shmk_pool *p)
{
	if (atomic_load(&p->ctl->sp_gone))
		return true;
	if (!RW_DEAD(atomic_load(&p->ctl->spawner)))
		return false;
	shmk__spawner_gone(p);
	return true;
}

/* The spawner's word armed (FUTEX_WAITERS), for a wait that its death
 * must end. */
static uint32_t spawner_armed(shmk_pool *p)
{
	uint32_t v = atomic_load(&p->ctl->spawner);

	while (!RW_DEAD(v) && !shmk__rw_arm(&p->ctl->spawner, &v))
		;
	return v;
}

/* ---- children ------------------------------------------------------------ */

static void close_sp_fds(shmk_pool *p)
{
	for (int k = 0; k < 3; k++)
		shmk__close(&p->sp_fds[k]);
}

/* Signals every process of the pool's slots that may be alive or a zombie
 * of ours: the handle's, the slot's current worker and a replacement that
 * died before it took its slot over.  Under p->mu. */
static void each_worker(shmk_pool *p, void (*fn)(shmk_pool *, unsigned, pid_t,
						 int, void *),
			void *arg)
{
	for (unsigned i = 0; i < p->o.workers; i++) {
		struct pslot *s = &p->ctl->slot[i];
		pid_t cand[3] = {p->w[i].pid, atomic_load(&s->pid), 0};
		uint32_t v = atomic_load(&s->life);
		if (RW_DEAD(v) && RW_TID(v) != (uint32_t)atomic_load(&p->ctl->sp_tid))
			cand[2] = (pid_t)RW_TID(v);
		for (int k = 0; k < 3; k++) {
			bool seen = cand[k] <= 0;
			for (int j = 0; j < k && !seen; j++)
				seen = cand[j] == cand[k];
			if (seen)
				continue;
			int fd = cand[k] == p->w[i].pid ? p->w[i].fd : -1;
			fn(p, i, cand[k], fd, arg);
		}
	}
}

static void send_sig(shmk_pool *p, unsigned i, pid_t pid, int fd, void *arg)
{
	int sig = *(int *)arg;

	if (fd >= 0)
		syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	else
		kill(pid, sig); /* our child, not reaped: the pid names it */
}

/* Waits until the process has exited (true) or the deadline passes.  A
 * signal caught meanwhile never ends the wait early. */
static bool wait_exit(pid_t pid, int fd, int64_t deadline)
{
	siginfo_t si;

	for (;;) {
		int64_t left = deadline - mono_ms();
		if (fd >= 0) {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			int r = poll(&pf, 1, left > 0 ? (int)left : 0);
			if (r > 0)
				return true;
			if (r == 0 || errno != EINTR)
				return false;
			continue;
		}
		/* Without pidfd_open (ENOSYS: Linux < 5.3, valgrind 3.19): the
		 * pid, every millisecond. */
		si.si_pid = 0;
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			return errno == ECHILD; /* reaped by the service itself */
		if (si.si_pid == pid)
			return true;
		if (left <= 0)
			return false;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

struct exits {
	int64_t deadline;
	bool all;
};

static void wait_one(shmk_pool *p, unsigned i, pid_t pid, int fd, void *arg)
{
	struct exits *e = arg;

	if (!wait_exit(pid, fd, e->deadline))
		e->all = false;
}

static void reap_one(shmk_pool *p, unsigned i, pid_t pid, int fd, void *arg)
{
	siginfo_t si;

	/* Exited (or SIGKILLed and waited for): it cannot block long; ECHILD
	 * if the service reaped it itself. */
	while (waitid(fd >= 0 ? P_PIDFD : P_PID, fd >= 0 ? (id_t)fd : (id_t)pid,
		      &si, WEXITED | WNOHANG) < 0 &&
	       errno == EINTR)
		;
}

/* Reaps the spawner, which exits once its request socket is closed (and
 * the child it may be starting has taken its slot over).  If it has not
 * by the deadline + EXIT_WAIT_MS (stopped, say), it is SIGKILLed. */
static int reap_spawner(shmk_pool *p, int64_t deadline)
{
	siginfo_t si;
	int st;
	pid_t r;

	/* Not ours any more: the service reaped it itself. */
	if (waitid(p->sp_pidfd >= 0 ? P_PIDFD : P_PID,
		   p->sp_pidfd >= 0 ? (id_t)p->sp_pidfd : (id_t)p->sp_pid, &si,
		   WEXITED | WNOHANG | WNOWAIT) < 0 &&
	    errno == ECHILD)
		return 0;

	if (!wait_exit(p->sp_pid, p->sp_pidfd, deadline + EXIT_WAIT_MS)) {
		if (p->sp_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, p->sp_pidfd, SIGKILL, NULL, 0);
		else
			kill(p->sp_pid, SIGKILL);
		if (!wait_exit(p->sp_pid, p->sp_pidfd, mono_ms() + EXIT_WAIT_MS))
			return shmk__err(-ETIMEDOUT, "pool: spawner %d still not "
						     "dead %d ms after SIGKILL",
					 (int)p->sp_pid, EXIT_WAIT_MS);
	}
	while ((r = SHMK_SYS("waitpid", waitpid(p->sp_pid, &st, 0))) < 0 &&
	       errno == EINTR)
		;
	if (r < 0 && errno != ECHILD) /* ECHILD: the service reaped it */
		return shmk__err(-errno, "pool: waitpid(spawner %d): %s",
				 (int)p->sp_pid, strerror(errno));
	return 0;
}

/* The names of the pool's segments go (and their records drop them); the
 * mappings stay until unmap_segments(). */
static void unlink_segments(shmk_pool *p, int *first)
{
	int rc;

	for (unsigned i = 0; p->slots && i < p->o.workers; i++)
		if (p->slots[i] && (rc = shmk__segment_unlink(p->slots[i])) < 0 &&
		    !*first)
			*first = rc;
	if (p->ctl_seg && (rc = shmk__segment_unlink(p->ctl_seg)) < 0 && !*first)
		*first = rc;
}

static void unmap_segments(shmk_pool *p)
{
	for (unsigned i = 0; p->slots && i < p->o.workers; i++)
		shmk_segment_detach(p->slots[i]);
	free(p->slots);
	p->slots = NULL;
	shmk_segment_detach(p->ctl_seg);
	p->ctl_seg = NULL;
	p->ctl = NULL;
}

/* Every process of the pool goes: the spawner is told to exit (its request
 * socket closes), the workers get SIGTERM, and what is left at the
 * deadline (mono ms; -1: at once) SIGKILL; all are reaped.  The segments'
 * names go while they exit (a name is not what a process maps).  Then
 * every slot stops, the callers still inside leave, and the mappings
 * go. */
static void teardown(shmk_pool *p, int64_t deadline, int *first)
{
	int rc, sig;
	struct exits e = {.all = true};
	bool again; /* a second round of SIGKILL and waits is needed */

	if (deadline < 0)
		deadline = mono_ms();
	shmk__close(&p->req_fd);
	if (p->w && p->ctl) {
		pthread_mutex_lock(&p->mu);
		sig = deadline > mono_ms() ? SIGTERM : SIGKILL;
		each_worker(p, send_sig, &sig);
		pthread_mutex_unlock(&p->mu);
	}
	unlink_segments(p, first);
	if (p->w && p->ctl) {
		pthread_mutex_lock(&p->mu);
		e.deadline = deadline;
		e.all = true;
		each_worker(p, wait_one, &e);
		if (!e.all) {
			sig = SIGKILL;
			each_worker(p, send_sig, &sig);
		}
		pthread_mutex_unlock(&p->mu);
	}
	again = !e.all;
	/* The workers are gone: worker 0 forked the spawner or never will
	 * (the kernel wrote its pid as it forked it). */
	if (!p->sp_pid && p->ctl)
		p->sp_pid = atomic_load(&p->ctl->sp_tid);
	if (p->sp_pid > 0) {
		if (p->sp_pidfd < 0)
			p->sp_pidfd = shmk__pidfd_open(p->sp_pid);
		if ((rc = reap_spawner(p, deadline)) < 0 && !*first)
			*first = rc;
		p->sp_pid = 0;
		again = true;
	}
	if (p->w && p->ctl) {
		pthread_mutex_lock(&p->mu);
		if (again) {
			/* SIGKILLed after the grace, or with the spawner gone
			 * no worker comes any more: one that it finished
			 * starting meanwhile is SIGKILLed too. */
			sig = SIGKILL;
			each_worker(p, send_sig, &sig);
			e.deadline = mono_ms() + EXIT_WAIT_MS;
			e.all = true;
			each_worker(p, wait_one, &e);
			if (!e.all && !*first)
				*first = shmk__err(-ETIMEDOUT, "pool: a worker "
							       "still not dead %d "
							       "ms after SIGKILL",
						   EXIT_WAIT_MS);
		}
		each_worker(p, reap_one, NULL);
		for (unsigned i = 0; i < p->o.workers; i++) {
			shmk__close(&p->w[i].fd);
			p->w[i].pid = 0;
		}
		pthread_mutex_unlock(&p->mu);
	}
	shmk__close(&p->sp_pidfd);
	shmk__close(&p->sp_ack_fd);
	shmk__close(&p->alive_fd);
	/* Every process of the pool is gone.  Stop every slot, so that no
	 * caller waits on a worker that will never come; then unmap only
	 * when no caller is inside the pool any more. */
	if (p->ctl) {
		atomic_store(&p->ctl->shutdown, 1);
		for (unsigned i = 0; i < p->o.workers; i++) {
			shmk__set_phase(&p->ctl->slot[i], PH_STOPPED, true);
			shmk__fwake(&p->ctl->slot[i].life, INT_MAX);
			shmk__fwake(&p->ctl->slot[i].job, INT_MAX);
		}
		shmk__fwake(&p->ctl->spawner, INT_MAX);
		shmk__bump_free(p->ctl);
		wait_callers_left(p);
	}
	unmap_segments(p);
}

static void free_pool(shmk_pool *p)
{
	if (p->d)
		free(p->d[0].times);
	free(p->d);
	free(p->w);
	free(p->titles);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* ---- create ----------------------------------------------------------------- */

static void defaults(struct shmk_pool_options *o)
{
	if (!o->workers)
		o->workers = 3;
	if (!o->slot_size)
		o->slot_size = 1u << 20;
	if (o->lease_policy == SHMK_LEASE_DEFAULT)
		o->lease_policy = SHMK_LEASE_FAIL;
	if (!o->lease_timeout_ms)
		o->lease_timeout_ms = 1000;
	if (!o->backoff_min_ms)
		o->backoff_min_ms = 10;
	if (!o->backoff_max_ms)
		o->backoff_max_ms = 2000;
	if (o->backoff_max_ms < o->backoff_min_ms)
		o->backoff_max_ms = o->backoff_min_ms;
	if (!o->quarantine_deaths)
		o->quarantine_deaths = 5;
	if (!o->quarantine_window_ms)
		o->quarantine_window_ms = 10000;
	if (!o->shutdown_grace_ms)
		o->shutdown_grace_ms = 2000;
	if (!o->start_timeout_ms)
		o->start_timeout_ms = 10000;
	if (!o->job_timeout_ms)
		o->job_timeout_ms = JOB_TIMEOUT_MS;
}


/* Segment names carry a random part: "pool-<pid>-<n>-<16 hex>-ctl" and
 * "...-slot<i>".  Without it they were predictable, and another process of
 * ours that pre-created them kept every pool from starting (O_EXCL never
 * adopts a name).  A name that exists all the same gets a new random part,
 * a few times. */
#define POOL_NAME_TRIES 4

static void new_base(shmk_pool *p, unsigned n)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) {
		/* No entropy yet (early boot): weaker, still not a guess
		 * from the pid, and EEXIST is retried. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = ((uint64_t)ts.tv_nsec << 32 | (uint64_t)random()) ^
		    (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)p;
	}
	snprintf(p->base, sizeof p->base, "pool-%d-%u-%016" PRIx64,
		 (int)getpid(), n, r);
}

/* Creates the pool's segment "<base>-<what>"; on EEXIST the base gets a
 * new random part (kept for the segments that follow) and it is tried
 * again. */
static int pool_seg_create(shmk_pool *p, unsigned n, const char *what,
			   size_t size, shmk_segment **out)
{
	char name[128];
	int rc = -EEXIST;

	for (int t = 0; t < POOL_NAME_TRIES && rc == -EEXIST; t++) {
		if (t)
			new_base(p, n);
		snprintf(name, sizeof name, "%s-%s", p->base, what);
		rc = shmk_segment_create(p->ctx, name, size, out);
	}
	return rc;
}


/* Why a first worker did not come up: its own sentence, or how it died. */
static int start_failure(shmk_pool *p, unsigned ready)
{
	int32_t err = atomic_load(&p->ctl->start_err);

	if (err > 0)
		return shmk__err(-err, "%s", p->ctl->start_msg);
	for (unsigned i = 0; i < p->o.workers; i++) {
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)p->w[i].pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid != p->w[i].pid)
			continue;
		if (si.si_code == CLD_EXITED)
			return shmk__err(-ECHILD, "pool: worker %u (pid %d) exited "
						  "with status %d while starting",
					 i, (int)si.si_pid, si.si_status);
		const char *sig = sigabbrev_np(si.si_status);
		return shmk__err(-ECHILD, "pool: worker %u (pid %d) was killed "
					  "by SIG%s while starting",
				 i, (int)si.si_pid, sig ? sig : "?");
	}
	return shmk__err(-ECHILD, "pool: %u of %u workers came up; the others "
				  "died while starting", ready, p->o.workers);
}

/* Reads one byte per worker from the start pipe until all came up (0), a
 * worker failed or died first (its write end closed without a byte: EOF
 * before the count), or the start deadline passed. */
static int wait_ready(shmk_pool *p, int rfd)
{
	int64_t deadline = mono_ms() + p->o.start_timeout_ms;
	unsigned ready = 0;
	char buf[64];

	while (ready < p->o.workers) {
		struct pollfd pf = {.fd = rfd, .events = POLLIN};
		int64_t left = deadline - mono_ms();
		int r = poll(&pf, 1, left > 0 ? (int)left : 0);
		ssize_t n;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return shmk__err(-ETIMEDOUT, "pool: workers not ready "
						     "after %u ms (%u of %u)",
					 p->o.start_timeout_ms, ready,
					 p->o.workers);
		n = read(rfd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return start_failure(p, ready);
		ready += (unsigned)n;
	}
	return 0;
}

int shmk_pool_create(shmk_ctx *ctx, const struct shmk_pool_options *opt,
		     shmk_pool **out)
{
	static _Atomic unsigned counter;
	shmk_pool *p;
	int start[2] = {-1, -1}, rc = 0, first = 0;
	char name[32];
	size_t ctl_size;
	unsigned n;

	if (!out)
		return shmk__err(-EINVAL, "shmk_pool_create: out is NULL");
	*out = NULL;
	if (!ctx || !opt || !opt->fn)
		return shmk__err(-EINVAL, "shmk_pool_create: ctx, options and "
					  "fn are required");
	if (opt->workers > MAX_WORKERS)
		return shmk__err(-EINVAL, "pool: %u workers is more than %d",
				 opt->workers, MAX_WORKERS);
	if (!(p = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *p))))
		return shmk__err(-ENOMEM, "pool: out of memory");
	p->ctx = ctx;
	p->o = *opt;
	defaults(&p->o);
	p->sp_pidfd = p->req_fd = p->alive_fd = p->sp_ack_fd = -1;
	p->sp_fds[0] = p->sp_fds[1] = p->sp_fds[2] = -1;
	pthread_mutex_init(&p->mu, NULL);
	p->service = getpid();
	/* PR_SET_PDEATHSIG follows the forking thread: only the main
	 * thread's end is the service's. */
	p->pdeath = syscall(SYS_gettid) == p->service;
	/* A lazy spawner only for a service with one thread now: with more,
	 * a fork of it at the first replacement could copy a lock that
	 * another thread holds. */
	p->lazy_sp = ctx->lazy_spawner && shmk__one_thread();
	n = atomic_fetch_add(&counter, 1);
	new_base(p, n);
	p->w = SHMK_SYSP("malloc", NULL, calloc(p->o.workers, sizeof *p->w));
	p->d = SHMK_SYSP("malloc", NULL, calloc(p->o.workers, sizeof *p->d));
	if (p->d)
		p->d[0].times = SHMK_SYSP("malloc", NULL,
					  calloc((size_t)p->o.workers *
							 p->o.quarantine_deaths,
						 sizeof(int64_t)));
	if (!p->w || !p->d || !p->d[0].times) {
		rc = shmk__err(-ENOMEM, "pool: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->o.workers; i++) {
		p->w[i].fd = -1;
		p->d[i].times = p->d[0].times + (size_t)i * p->o.quarantine_deaths;
	}

	/* Slots and control block, through the registry. */
	ctl_size = sizeof(struct pctl) + p->o.workers * sizeof(struct pslot);
	if ((rc = pool_seg_create(p, n, "ctl", ctl_size, &p->ctl_seg)) < 0)
		goto fail;
	p->ctl = shmk_segment_addr(p->ctl_seg);
	p->ctl->magic = POOL_MAGIC;
	p->ctl->nslots = p->o.workers;
	if (!(p->slots = SHMK_SYSP("malloc", NULL,
				   calloc(p->o.workers, sizeof *p->slots)))) {
		rc = shmk__err(-ENOMEM, "pool: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->o.workers; i++) {
		snprintf(name, sizeof name, "slot%u", i);
		if ((rc = pool_seg_create(p, n, name, p->o.slot_size,
					  &p->slots[i])) < 0)
			goto fail;
		atomic_store(&p->ctl->slot[i].state, ST_MAKE(0, PH_STARTING, 0));
	}
	/* Where the OOM-kill counter is, and its value now (the workers'
	 * deaths are told against it). */
	shmk__memwatch_init(&p->mw);
	if (p->o.title)
		shmk__titles_init();
	if (!(p->titles = SHMK_SYSP("malloc", NULL,
				    calloc(p->o.workers + 1, sizeof *p->titles)))) {
		rc = shmk__err(-ENOMEM, "pool: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->o.workers; i++)
		shmk__titles_format(&p->titles[i], p->o.title, "worker", i, true);
	shmk__titles_format(&p->titles[p->o.workers], p->o.title, "spawner", 0,
			    false);

	/* The workers, forked from this thread; each writes a byte to the
	 * start pipe when it is ready and closes its end: EOF before the
	 * count is a worker that failed or died.  Worker 0 then forks the
	 * spawner (a lazy one: the first replacement, from here). */
	if (!p->lazy_sp && (rc = shmk__spawner_pipes(p)) < 0)
		goto fail;
	if (pipe2(start, O_CLOEXEC) < 0) {
		rc = shmk__err(-errno, "pool: cannot create pipes: %s",
			       strerror(errno));
		goto fail;
	}
	for (unsigned i = 0; i < p->o.workers; i++) {
		pid_t pid;
		fiu_do_on("shmk/pool/fork", {
			errno = EAGAIN;
			rc = shmk__err(-EAGAIN, "pool: cannot fork the worker of "
						"slot %u: %s", i, strerror(EAGAIN));
			goto fail;
		});
		pid = SHMK_SYS("fork", fork());
		if (pid < 0) {
			rc = shmk__err(-errno, "pool: cannot fork the worker of "
					       "slot %u: %s", i, strerror(errno));
			goto fail;
		}
		if (pid == 0) {
			/* Worker 0 keeps the spawner's ends (-1, skipped,
			 * for a lazy spawner: not made yet). */
			int keep[4] = {start[1], -1, -1, -1};
			if (i == 0)
				memcpy(keep + 1, p->sp_fds, sizeof p->sp_fds);
			shmk__close_inherited(keep, 4);
			shmk__worker_main(p, i, 0, start[1]);
		}
		p->w[i].pid = pid;
		p->w[i].fd = shmk__pidfd_open(pid); /* -1 (ENOSYS): the pid */
	}
	shmk__close(&start[1]);
	close_sp_fds(p); /* worker 0 has them */
	if ((rc = wait_ready(p, start[0])) < 0)
		goto fail;
	shmk__close(&start[0]);
	*out = p;
	return 0;
fail:
	{
		char msg[512];
		snprintf(msg, sizeof msg, "%s", shmk_last_error());
		shmk__close(&start[0]);
		shmk__close(&start[1]);
		close_sp_fds(p);
		teardown(p, -1, &first);
		free_pool(p);
		shmk__err(rc, "%s", msg);
	}
	return rc;
}

int shmk_pool_destroy(shmk_pool *p)
{
	int first = 0;
	int64_t deadline;

	if (!p)
		return 0;
	atomic_store(&p->ctl->shutdown, 1);
	shmk__bump_free(p->ctl); /* lease waiters: -ESHUTDOWN */
	/* One grace period in total: running jobs may finish within it, and
	 * the workers get what is left of it between SIGTERM and SIGKILL. */
	deadline = mono_ms() + p->o.shutdown_grace_ms;
	for (unsigned i = 0; i < p->o.workers; i++) {
		struct pslot *s = &p->ctl->slot[i];
		uint32_t st;
		struct timespec ts;
		const struct timespec *rel;
		while (ST_PHASE(st = atomic_load(&s->state)) == PH_BUSY &&
		       !RW_DEAD(atomic_load(&s->life)) &&
		       remaining(deadline, &ts, &rel))
			shmk__fwait(&s->state, st, rel);
	}
	teardown(p, deadline, &first);
	free_pool(p);
	return first;
}

/* ---- lease ----------------------------------------------------------------- */

static int lease(shmk_pool *p, enum shmk_lease_policy policy,
		 unsigned timeout_ms)
{
	struct pctl *c = p->ctl;
	unsigned n = p->o.workers;
	int64_t deadline = -1;

	if (policy == SHMK_LEASE_DEFAULT)
		policy = p->o.lease_policy;
	if (policy == SHMK_LEASE_DEADLINE)
		deadline = mono_ms() + (timeout_ms ? timeout_ms : p->o.lease_timeout_ms);
	for (;;) {
		uint32_t seq = atomic_load(&c->free_seq), spv;
		unsigned start = atomic_fetch_add(&c->lease_rr, 1), quarantined = 0;

		if (atomic_load(&c->shutdown))
			return shmk__err(-ESHUTDOWN, "pool: shutting down");
		if (spawner_dead(p))
			return atomic_load(&c->start_err) > 0
				       ? shmk__err(-ESHUTDOWN, "pool: stopped, no "
						   "worker can be replaced: %s",
						   c->start_msg)
				       : shmk__err(-ESHUTDOWN, "pool: stopped, no "
						   "worker can be replaced: the "
						   "spawner is gone");
		for (unsigned k = 0; k < n; k++) {
			unsigned i = (start + k) % n;
			struct pslot *s = &c->slot[i];
			uint32_t st = atomic_load(&s->state);
			if (ST_PHASE(st) == PH_QUARANTINED)
				quarantined++;
			if ((st & ST_LEASED) || ST_PHASE(st) != PH_READY)
				continue;
			/* A worker that died idle is not handed out: its
			 * death is handled now. */
			if (RW_DEAD(atomic_load(&s->life))) {
				shmk__settle(p, i);
				if (ST_PHASE(atomic_load(&s->state)) == PH_QUARANTINED)
					quarantined++;
				continue;
			}
			if (atomic_compare_exchange_strong(&s->state, &st,
							   st | ST_LEASED))
				return (int)i;
		}
		if (quarantined == n)
			return shmk__err(-ENODEV, "pool: every slot is quarantined");
		if (policy == SHMK_LEASE_FAIL)
			return shmk__err(-EAGAIN, "pool: all %u slots are leased",
					 n);
		if (deadline >= 0 && mono_ms() >= deadline)
			return shmk__err(-ETIMEDOUT, "pool: no slot free within "
						     "%u ms",
					 timeout_ms ? timeout_ms : p->o.lease_timeout_ms);
		spv = spawner_armed(p);
		if (RW_DEAD(spv))
			continue;
		shmk__wait2(&c->free_seq, seq, &c->spawner, spv, deadline);
	}
}

void *shmk_pool_slot_mem(shmk_pool *p, unsigned slot)
{
	return slot < p->o.workers ? shmk_segment_addr(p->slots[slot]) : NULL;
}

size_t shmk_pool_slot_size(shmk_pool *p) { return p->o.slot_size; }

int shmk_pool_lease(shmk_pool *p, enum shmk_lease_policy policy,
		    unsigned timeout_ms)
{
	int rc;

	enter(p);
	rc = lease(p, policy, timeout_ms);
	leave(p);
	return rc;
}


/* ---- run ------------------------------------------------------------------ */

/* SIGKILLs the worker of slot i, whose job is past its deadline, and marks
 * its pid so that its death is classified as a timeout.  It is our child:
 * its pidfd (or, without one, its pid: not reaped before its death is
 * handled) names it; the life word, read after, says it is still that
 * worker alive. */
static void kill_timed_out(shmk_pool *p, unsigned i)
{
	struct pslot *s = &p->ctl->slot[i];
	pid_t pid;
	uint32_t v;
	int fd;

	pthread_mutex_lock(&p->mu);
	pid = atomic_load(&s->pid);
	fd = shmk__worker_fd(p, i, pid);
	v = atomic_load(&s->life);
	if (pid > 0 && RW_TID(v) == (uint32_t)pid && !RW_DEAD(v)) {
		atomic_store(&s->timeout_pid, pid);
		if (fd >= 0)
			syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
		else
			kill(pid, SIGKILL);
	}
	pthread_mutex_unlock(&p->mu);
}

/* The error of a job that ended with its worker's death (pid). */
static int job_failed(shmk_pool *p, unsigned slot, pid_t pid,
		      unsigned timeout_ms)
{
	struct pslot *s = &p->ctl->slot[slot];
	struct shmk_death d;
	int err = atomic_load(&s->reinit_err);

	shmk_pool_last_death(p, slot, &d);
	if (d.pid != pid)
		return shmk__err(-ECHILD, "pool: slot %u: worker %d died during "
					  "the job (the pool is stopping)",
				 slot, (int)pid);
	if (err)
		return shmk__err(-err, "pool: slot %u: worker %d died (%s) and the "
				       "slot's memory could not be reserved again "
				       "(posix_fallocate: %s): the slot is "
				       "quarantined, do not touch its memory",
				 slot, (int)d.pid, shmk_death_kind_name(d.kind),
				 strerror(err));
	if (d.kind == SHMK_DEATH_TIMEOUT)
		return shmk__err(-ETIMEDOUT, "pool: slot %u: the job passed its "
					     "deadline of %u ms; worker %d was "
					     "killed",
				 slot, timeout_ms, (int)d.pid);
	return shmk__err(-ECHILD, "pool: slot %u: worker %d died during "
				  "the job (%s)",
			 slot, (int)d.pid, shmk_death_kind_name(d.kind));
}

/* Waits while the robust word *w holds v (armed) and the deadline has not
 * passed.  false: it has. */
static bool wait_word(_Atomic uint32_t *w, uint32_t v, int64_t deadline)
{
	struct timespec ts;
	const struct timespec *rel;

	if (!remaining(deadline, &ts, &rel))
		return false;
	shmk__fwait(w, v, rel);
	return true;
}

static int run(shmk_pool *p, unsigned slot, int *result, unsigned timeout_ms)
{
	struct pslot *s;
	uint32_t st, v, tid, seq;
	int64_t deadline = -1;

	if (slot >= p->o.workers)
		return shmk__err(-EINVAL, "pool: no slot %u", slot);
	if (!timeout_ms)
		timeout_ms = p->o.job_timeout_ms;
	if (timeout_ms != SHMK_POOL_NO_DEADLINE)
		deadline = mono_ms() + timeout_ms;
	s = &p->ctl->slot[slot];
	for (;;) {
		st = atomic_load(&s->state);
		v = atomic_load(&s->life);
		if (!(st & ST_LEASED))
			return shmk__err(-EPERM, "pool: slot %u is not leased", slot);
		if (ST_PHASE(st) != PH_QUARANTINED && ST_PHASE(st) != PH_STOPPED &&
		    spawner_dead(p))
			continue;
		switch (ST_PHASE(st)) {
		case PH_READY:
			if (RW_DEAD(v)) { /* died idle: handled now */
				shmk__settle(p, slot);
				continue;
			}
			break;
		case PH_BUSY:
		case PH_STARTING:
			if (ST_PHASE(st) == PH_BUSY &&
			    atomic_load(&s->timeout_pid) <= 0)
				return shmk__err(-EBUSY, "pool: slot %u is busy",
						 slot);
			/* A worker we killed at a deadline (its death comes),
			 * or a replacement on its way: wait on the life word,
			 * which the new worker takes over and the kernel marks
			 * at a death.  WAITERS first, then the state a last
			 * time (the worker: READY, then a look at WAITERS). */
			if (RW_DEAD(v)) {
				shmk__settle(p, slot);
				continue;
			}
			if (!shmk__rw_arm(&s->life, &v) ||
			    atomic_load(&s->state) != st)
				continue;
			if (!wait_word(&s->life, v, deadline))
				return shmk__err(-ETIMEDOUT, "pool: slot %u: no "
							     "worker ready within "
							     "%u ms",
						 slot, timeout_ms);
			continue;
		case PH_DYING: {
			struct timespec ts;
			const struct timespec *rel;
			if (!remaining(deadline, &ts, &rel))
				return shmk__err(-ETIMEDOUT, "pool: slot %u: no "
							     "worker ready within "
							     "%u ms",
						 slot, timeout_ms);
			shmk__fwait(&s->state, st, rel);
			continue;
		}
		case PH_QUARANTINED:
			if (atomic_load(&s->reinit_err))
				return job_failed(p, slot, s->last.pid, timeout_ms);
			return shmk__err(-ENODEV, "pool: slot %u is quarantined "
						  "after %u deaths",
					 slot, atomic_load(&s->deaths));
		case PH_STOPPED:
			return shmk__err(-ESHUTDOWN, "pool: slot %u is stopped",
					 slot);
		default:
			return shmk__err(-EBUSY, "pool: slot %u is busy", slot);
		}
		/* The ordering point with a caller handling a death. */
		if (atomic_compare_exchange_strong(
			    &s->state, &st, ST_MAKE(1, PH_BUSY, ST_GEN(st))))
			break;
	}
	/* Post: the job word names the worker, then the doorbell.  Then the
	 * life word: a worker that died before the job word named it left
	 * the job word alone, but its life word - marked first - says so
	 * (Dekker: the kernel marks life, then reads the job word; we write
	 * the job word, then read life; one of us sees the other's write). */
	tid = RW_TID(v);
	seq = atomic_load(&s->doorbell) + 1;
	atomic_store(&s->job, tid | FUTEX_WAITERS); /* armed: we will wait */
	atomic_store(&s->doorbell, seq);
	shmk__fwake(&s->doorbell, 1);
	atomic_thread_fence(memory_order_seq_cst);
	v = RW_DEAD(atomic_load(&s->life)) ? atomic_load(&s->job) | FUTEX_OWNER_DIED
					   : atomic_load(&s->job);
	/* The job word alone: it changes when the job is done or the worker
	 * died.  (The spawner is not on the job path: its death does not
	 * end a job, and is seen by the next call.) */
	while (v != 0 && !RW_DEAD(v)) {
		struct timespec ts;
		const struct timespec *rel;
		if (!remaining(deadline, &ts, &rel)) {
			/* Past the deadline: the worker dies, and we return
			 * once its death is handled (or KILL_REPORT_MS later
			 * all the same: a worker slow to die, in D state). */
			int64_t end = mono_ms() + KILL_REPORT_MS;
			kill_timed_out(p, slot);
			while ((v = atomic_load(&s->job)) != 0 && !RW_DEAD(v) &&
			       remaining(end, &ts, &rel))
				if (shmk__rw_arm(&s->job, &v))
					shmk__fwait(&s->job, v, rel);
			if (RW_DEAD(v) || RW_DEAD(atomic_load(&s->life))) {
				shmk__settle(p, slot);
				return job_failed(p, slot, (pid_t)tid, timeout_ms);
			}
			return shmk__err(-ETIMEDOUT, "pool: slot %u: the job "
						     "passed its deadline of %u "
						     "ms; its worker was killed",
					 slot, timeout_ms);
		}
		shmk__fwait(&s->job, v, rel);
		v = atomic_load(&s->job);
	}
	if (v != 0) {
		shmk__settle(p, slot);
		return job_failed(p, slot, (pid_t)tid, timeout_ms);
	}
	/* BUSY -> READY in our generation; if a death was handled meanwhile
	 * (new generation), the result stands and the CAS just fails. */
	uint32_t busy = ST_MAKE(1, PH_BUSY, ST_GEN(st));
	atomic_compare_exchange_strong(&s->state, &busy,
				       ST_MAKE(1, PH_READY, ST_GEN(st)));
	if (atomic_load(&p->ctl->shutdown)) /* a destroy waits for the job */
		shmk__fwake(&s->state, INT_MAX);
	if (result)
		*result = atomic_load(&s->result);
	return 0;
}

int shmk_pool_run(shmk_pool *p, unsigned slot, int *result)
{
	return shmk_pool_run_timeout(p, slot, result, 0);
}

int shmk_pool_run_timeout(shmk_pool *p, unsigned slot, int *result,
			  unsigned timeout_ms)
{
	int rc;

	enter(p);
	rc = run(p, slot, result, timeout_ms);
	leave(p);
	return rc;
}

void shmk_pool_release(shmk_pool *p, unsigned slot)
{
	struct pslot *s;
	uint32_t st;

	if (slot >= p->o.workers)
		return;
	enter(p); /* a release racing destroy keeps the control block mapped */
	s = &p->ctl->slot[slot];
	st = atomic_load(&s->state);
	while ((st & ST_LEASED) &&
	       !atomic_compare_exchange_weak(&s->state, &st, st & ~ST_LEASED))
		;
	shmk__bump_free(p->ctl);
	leave(p);
}

unsigned shmk_pool_deaths(shmk_pool *p)
{
	for (unsigned i = 0; i < p->o.workers; i++)
		shmk__settle(p, i);
	return atomic_load(&p->ctl->deaths);
}

int shmk_pool_slot_quarantined(shmk_pool *p, unsigned slot)
{
	if (slot >= p->o.workers)
		return 0;
	shmk__settle(p, slot);
	return ST_PHASE(atomic_load(&p->ctl->slot[slot].state)) == PH_QUARANTINED;
}

pid_t shmk_pool_worker_pid(shmk_pool *p, unsigned slot)
{
	uint32_t ph;

	if (slot >= p->o.workers)
		return 0;
	shmk__settle(p, slot);
	ph = ST_PHASE(atomic_load(&p->ctl->slot[slot].state));
	if (ph != PH_READY && ph != PH_BUSY)
		return 0;
	return atomic_load(&p->ctl->slot[slot].pid);
}

pid_t shmk_pool_supervisor_pid(shmk_pool *p)
{
	return shmk__spawner_up(p) ? p->sp_pid : 0;
}
