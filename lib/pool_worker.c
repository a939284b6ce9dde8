/* SPDX-License-Identifier: MIT */
/* pool_worker.c - a worker: takes over its slot's life word, says it is
 * ready, and runs the jobs posted to it, for ever.  A child of the service
 * (forked by shmk_pool_create(), or by the spawner with CLONE_PARENT), with
 * one thread. */
#include "pool_shared.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The worker's robust list head (its own memory; the nodes and words are
 * in the slot).  The worker is a process of its own with one thread, whose
 * robust list we replace: glibc registers one per thread for its robust
 * mutexes, so a job function must not use robust pthread mutexes (they
 * would not be released when the worker dies, which a worker never
 * survives anyway). */
static struct robust_list_head head;

void shmk__worker_main(shmk_pool *p, unsigned i, uint32_t expect, int ack_fd)
{
	struct pslot *s = &p->ctl->slot[i];
	void *mem = shmk_segment_addr(p->slots[i]);
	size_t size = p->o.slot_size;
	uint32_t tid = (uint32_t)syscall(SYS_gettid), v, last;
	bool waiters;

	SHMK_CRASHPOINT("pool/worker_start");
	/* Worker 0 of a new pool forks the spawner first, from this copy of
	 * the service as it was at creation: its fork then runs while the
	 * service forks the other workers, off the path to "ready".  Worker 0
	 * says it is ready only after that fork, so that a spawner that
	 * cannot be forked fails shmk_pool_create() rather than leaving a
	 * pool that could never replace a worker.  (The spawner's own start
	 * is not waited for.) */
	if (i == 0 && expect == 0 && p->sp_fds[0] >= 0) /* (lazy: -1) */
		shmk__spawner_fork(p);
	/* Die with the service.  PR_SET_PDEATHSIG follows the thread that
	 * forked us, so it is used only when that thread is the service's
	 * main thread; otherwise the spawner SIGKILLs the workers when the
	 * service is gone (docs/DESIGN.md). */
	if (p->pdeath) {
		if (SHMK_SYS("prctl", syscall(SYS_prctl, PR_SET_PDEATHSIG,
					      SIGKILL, 0, 0, 0)) < 0) {
			shmk__start_failed(p->ctl, errno, "pool: worker %u: prctl"
					   "(PR_SET_PDEATHSIG): %s", i, strerror(errno));
			_exit(112);
		}
		if (syscall(SYS_getppid) != p->service)
			_exit(111);
	}
	s->life_node.next = &s->job_node;
	s->job_node.next = &head.list;
	if (SHMK_SYS("set_robust_list",
		     shmk__robust_register(&head, &s->life_node, W_OFF)) < 0) {
		shmk__start_failed(p->ctl, errno, "pool: worker %u: "
				   "set_robust_list: %s", i, strerror(errno));
		_exit(112);
	}
	/* Take the life word over from whoever answered for the slot (the
	 * spawner, or nobody for a first worker); if that one died meanwhile
	 * (OWNER_DIED), the slot is being handled without us. */
	atomic_store(&s->pid, (int32_t)tid); /* first: see shmk__settle() */
	v = atomic_load(&s->life);
	do {
		if (RW_DEAD(v) || RW_TID(v) != expect)
			_exit(0);
	} while (!atomic_compare_exchange_weak(&s->life, &v, tid));
	waiters = v & FUTEX_WAITERS;
	shmk__child_signals(false);
	/* Ready: STARTING -> READY.  No caller can post while STARTING, and
	 * a job posted to the previous worker ended with it, so starting from
	 * the current doorbell loses nothing. */
	last = atomic_load(&s->doorbell);
	atomic_store(&s->taken, last);
	{
		uint32_t old = atomic_load(&s->state);
		while (ST_PHASE(old) == PH_STARTING &&
		       !atomic_compare_exchange_weak(
			       &s->state, &old,
			       ST_MAKE(old & ST_LEASED, PH_READY, ST_GEN(old))))
			;
	}
	shmk__fwake(&s->state, INT_MAX);
	/* Whoever waits for us sleeps on the life word (so that the death
	 * of the spawner or of this worker wakes it too), having set WAITERS
	 * before it looked at the state a last time: READY above, then this
	 * look, and one of the two sees the other. */
	if (waiters || (atomic_load(&s->life) & FUTEX_WAITERS))
		shmk__fwake(&s->life, INT_MAX);
	shmk__bump_free(p->ctl);
	if (ack_fd >= 0) {
		syscall(SYS_write, ack_fd, "r", 1);
		syscall(SYS_close, ack_fd);
	}
	/* Names are for people and ps(1): given once the pool no longer
	 * waits for us. */
	shmk__title(&p->titles[i]);

	for (;;) {
		uint32_t bell = atomic_load(&s->doorbell);
		if (bell == last) {
			shmk__fwait(&s->doorbell, last, NULL);
			continue;
		}
		last = bell;
		atomic_store(&s->taken, last);
		atomic_store(&s->result, p->o.fn(mem, size, p->o.arg));
		/* Done: the job word goes from our tid to 0 (the caller set
		 * WAITERS when it posted). */
		if (atomic_exchange(&s->job, 0) & FUTEX_WAITERS)
			shmk__fwake(&s->job, 1);
	}
}
