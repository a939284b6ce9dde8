/* SPDX-License-Identifier: MIT */
/* bare_pool.h - the floor of the pool benchmarks: a worker pool written
 * by hand with nothing of the library's architecture in it.
 *
 * The caller itself forks the workers (no supervisor, no intermediate
 * process, no registry, no watch thread).  Each slot is a POSIX shared
 * memory object made the way the library makes one (shm_open with
 * O_CREAT|O_EXCL|O_CLOEXEC, posix_fallocate so a full tmpfs fails now,
 * mmap MAP_SHARED, close); the control words (a ready counter and per
 * worker a doorbell, a done word and a result) live in one anonymous
 * MAP_SHARED page, which is all a pool whose workers are the caller's own
 * children needs.  A worker adds 1 to the ready word and FUTEX_WAKEs it,
 * then waits on its doorbell; a job is: the caller stores a new doorbell
 * value and FUTEX_WAKEs, the worker runs the job function on its slot,
 * stores the result and the doorbell value in "done" and FUTEX_WAKEs, the
 * caller FUTEX_WAITs until it reads it.  Stop: SIGTERM to every worker
 * (default action), waitpid() of each, munmap and shm_unlink of each slot,
 * munmap of the control page.
 *
 * Children inherit bench_trap_signals()'s handlers: SIGTERM gets its
 * default action back; a Ctrl-C or hang-up meant for the process group is
 * ignored (the parent sees it, stops and reaps its children). */
#ifndef SHMK_BARE_POOL_H
#define SHMK_BARE_POOL_H

#include "bench.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define BARE_MAX_WORKERS 8

/* ---- futexes and children ---------------------------------------------- */

static inline long bench_fx_wait(_Atomic uint32_t *w, uint32_t v,
				 const struct timespec *rel)
{
	return syscall(SYS_futex, w, FUTEX_WAIT, v, rel, NULL, 0);
}

static inline void bench_fx_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Waits until *w >= want (ge) or *w == want (!ge), 10 s at most; the clock
 * is read only once the value was not there at the first look.  0,
 * -ETIMEDOUT or -EINTR (bench_stop). */
static inline int bench_fx_wait_for(_Atomic uint32_t *w, uint32_t want,
				    bool ge)
{
	uint64_t deadline = 0;

	for (;;) {
		uint32_t v = atomic_load(w);
		struct timespec ts = {1, 0};
		if (ge ? v >= want : v == want)
			return 0;
		if (bench_stop)
			return -EINTR;
		if (!deadline)
			deadline = bench_now_ns() + 10000000000ull;
		else if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		bench_fx_wait(w, v, &ts);
	}
}

/* waitpid(pid) through EINTR.  0 or a negative errno. */
static inline int bench_reap_pid(pid_t pid, int *status)
{
	int st = 0;
	pid_t r;

	while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (status)
		*status = st;
	return r < 0 ? -errno : 0;
}

static inline void bench_child_signals(void)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

/* ---- bare segments ------------------------------------------------------- */

/* shm_open(O_CREAT|O_EXCL) + posix_fallocate + mmap + close, as the library
 * makes a segment.  0 or a negative errno (nothing left behind). */
static inline int bare_seg_create(const char *name, size_t size, void **addr)
{
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600), rc;

	*addr = NULL;
	if (fd < 0)
		return -errno;
	if ((rc = posix_fallocate(fd, 0, (off_t)size)) != 0) {
		close(fd);
		shm_unlink(name);
		return -rc;
	}
	*addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*addr == MAP_FAILED) {
		rc = -errno;
		*addr = NULL;
		close(fd);
		shm_unlink(name);
		return rc;
	}
	close(fd);
	return 0;
}

/* munmap + shm_unlink; *addr becomes NULL.  0 or a negative errno. */
static inline int bare_seg_destroy(const char *name, void **addr, size_t size)
{
	if (!*addr)
		return 0;
	munmap(*addr, size);
	*addr = NULL;
	return shm_unlink(name) < 0 ? -errno : 0;
}

/* ---- the bare pool ------------------------------------------------------- */

typedef int (*bare_job_fn)(void *mem, size_t size, void *arg);

struct bare_job {
	_Atomic uint32_t bell, done;
	_Atomic int32_t result;
	char pad[64 - 3 * sizeof(uint32_t)]; /* a cache line per worker */
};

struct bare_ctl {
	_Atomic uint32_t ready;
	char pad[60];
	struct bare_job w[BARE_MAX_WORKERS];
};

struct bare_pool {
	/* set by the caller before bare_pool_start() */
	unsigned workers;
	size_t slot_size;
	bare_job_fn fn;
	void *arg;
	char names[BARE_MAX_WORKERS][64]; /* the slots' shm names */
	/* owned: NULL / 0 when not there */
	struct bare_ctl *ctl;
	void *mem[BARE_MAX_WORKERS];
	pid_t pid[BARE_MAX_WORKERS];
};

static __attribute__((noreturn)) void bare_worker(struct bare_pool *bp,
						  unsigned w)
{
	struct bare_job *j = &bp->ctl->w[w];
	uint32_t seen = atomic_load(&j->bell);

	bench_child_signals();
	atomic_fetch_add(&bp->ctl->ready, 1);
	bench_fx_wake(&bp->ctl->ready);
	for (;;) {
		uint32_t bell = atomic_load(&j->bell);
		if (bell == seen) {
			bench_fx_wait(&j->bell, seen, NULL);
			continue;
		}
		seen = bell;
		atomic_store(&j->result, bp->fn(bp->mem[w], bp->slot_size, bp->arg));
		atomic_store(&j->done, seen);
		bench_fx_wake(&j->done);
	}
}

/* Forks worker w (its slot exists).  0 or a negative errno. */
static inline int bare_pool_fork(struct bare_pool *bp, unsigned w)
{
	pid_t pid = fork();

	if (pid == 0)
		bare_worker(bp, w);
	if (pid < 0)
		return -errno;
	bp->pid[w] = pid;
	return 0;
}

/* Every worker stopped and reaped, every slot and the control page gone
 * (also after a partial start).  SIGTERM, or sig.  0 or the first negative
 * errno; a worker that did not die by sig counts as -ECHILD. */
static inline int bare_pool_stop_sig(struct bare_pool *bp, int sig)
{
	int rc = 0, r, st;

	for (unsigned w = 0; w < bp->workers; w++)
		if (bp->pid[w] > 0)
			kill(bp->pid[w], sig);
	for (unsigned w = 0; w < bp->workers; w++) {
		if (bp->pid[w] <= 0)
			continue;
		r = bench_reap_pid(bp->pid[w], &st);
		bp->pid[w] = 0;
		if (rc == 0 && (r < 0 || !WIFSIGNALED(st) || WTERMSIG(st) != sig))
			rc = r < 0 ? r : -ECHILD;
	}
	for (unsigned w = 0; w < bp->workers; w++)
		if ((r = bare_seg_destroy(bp->names[w], &bp->mem[w],
					  bp->slot_size)) < 0 && rc == 0)
			rc = r;
	if (bp->ctl)
		munmap(bp->ctl, sizeof *bp->ctl);
	bp->ctl = NULL;
	return rc;
}

static inline int bare_pool_stop(struct bare_pool *bp)
{
	return bare_pool_stop_sig(bp, SIGTERM);
}

/* Control page, slots, the forks, then waits until every worker is ready.
 * 0 or a negative errno (and nothing left: stopped again). */
static inline int bare_pool_start(struct bare_pool *bp)
{
	int rc;

	if (bp->workers == 0 || bp->workers > BARE_MAX_WORKERS)
		return -EINVAL;
	bp->ctl = mmap(NULL, sizeof *bp->ctl, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (bp->ctl == MAP_FAILED) {
		bp->ctl = NULL;
		return -errno;
	}
	for (unsigned w = 0; w < bp->workers; w++)
		if ((rc = bare_seg_create(bp->names[w], bp->slot_size,
					  &bp->mem[w])) < 0)
			goto fail;
	for (unsigned w = 0; w < bp->workers; w++)
		if ((rc = bare_pool_fork(bp, w)) < 0)
			goto fail;
	if ((rc = bench_fx_wait_for(&bp->ctl->ready, bp->workers, true)) < 0)
		goto fail;
	return 0;
fail:
	bare_pool_stop_sig(bp, SIGKILL);
	return rc;
}

/* One job on worker w: doorbell, wait for done.  0 (result in *res) or a
 * negative errno. */
static inline int bare_pool_run(struct bare_pool *bp, unsigned w, int *res)
{
	struct bare_job *j = &bp->ctl->w[w];
	uint32_t seq = atomic_load(&j->bell) + 1;
	int rc;

	atomic_store(&j->bell, seq);
	bench_fx_wake(&j->bell);
	if ((rc = bench_fx_wait_for(&j->done, seq, false)) < 0)
		return rc;
	*res = atomic_load(&j->result);
	return 0;
}

/* Worker w replaced: SIGKILL, waitpid, a fresh fork, wait until it is
 * ready.  0 or a negative errno. */
static inline int bare_pool_respawn(struct bare_pool *bp, unsigned w)
{
	uint32_t ready = atomic_load(&bp->ctl->ready);
	int rc, st;

	kill(bp->pid[w], SIGKILL);
	rc = bench_reap_pid(bp->pid[w], &st);
	bp->pid[w] = 0;
	if (rc < 0)
		return rc;
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		return -ECHILD;
	/* The done word keeps the last job's value, the doorbell too: the
	 * new worker starts from the doorbell it finds. */
	if ((rc = bare_pool_fork(bp, w)) < 0)
		return rc;
	return bench_fx_wait_for(&bp->ctl->ready, ready + 1, true);
}

#endif
