/* SPDX-License-Identifier: MIT */
/* pool_spawner.c - the spawner: a process forked by worker 0 of a new pool
 * first thing, before it says it is ready (CLONE_PARENT: a child of the service),
 * single-threaded for its whole life, whose memory is the service as it was
 * at creation.  It forks the replacement
 * workers the service asks for (CLONE_PARENT: they are the service's
 * children, like the first ones, so the service reaps and classifies every
 * death), one at a time, after the backoff the request carries, and waits
 * until each has taken its slot over; it SIGKILLs every worker when the
 * service is gone.  It is never on the job path and never sees a death
 * but that of a child that died before it took its slot over.
 *
 * Written as a state x event table (s6-style): the loop turns what poll()
 * says into one event, and table[state][event] does it and names the next
 * state.
 *
 *   events:  REQUEST     a request from the service (read it)
 *            DUE         the earliest requested fork is due
 *            CHILD_UP    the child being started took its slot over
 *            CHILD_DIED  it died before (its ack pipe closed unwritten)
 *            CHILD_SLOW  it did not within start_timeout_ms
 *            STOP        the service closed its request socket (destroy)
 *            GONE        the service process is gone (EOF on the alive
 *                        pipe, whose write end only the service holds)
 *   states:  IDLE        no child starting
 *            CHILD       a child starting
 *            STOPPING    a child starting, then exit
 */
#include "pool_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum sp_state { SP_IDLE, SP_CHILD, SP_STOPPING, SP_NSTATES };
enum sp_event {
	EV_REQUEST,
	EV_DUE,
	EV_CHILD_UP,
	EV_CHILD_DIED,
	EV_CHILD_SLOW,
	EV_STOP,
	EV_GONE,
	EV_NEVENTS
};

struct sp {
	shmk_pool *p;
	struct pctl *c;
	unsigned n;
	pid_t self;   /* (the service's p->sp_pid was set after our fork) */
	int req_fd, alive_fd;
	int64_t *due; /* per slot: when to fork its replacement; -1: not asked */
	int *fd;      /* per slot: a pidfd on its worker, -1: none           */
	/* the child being started */
	unsigned slot;
	pid_t pid;
	int ack;           /* read end of its ack pipe */
	int64_t deadline;  /* CHILD_SLOW at; -1: killed, waiting for EOF */
};

static struct robust_list_head head;

/* ---- actions ------------------------------------------------------------ */

static enum sp_state a_request(struct sp *sp, enum sp_state st)
{
	struct sp_req r;

	while (recv(sp->req_fd, &r, sizeof r, MSG_DONTWAIT) == (ssize_t)sizeof r)
		if (r.slot < sp->n)
			sp->due[r.slot] = shmk__mono_ms() + r.delay_ms;
	return st;
}

/* Forks the replacement of the earliest due slot. */
static enum sp_state a_fork(struct sp *sp, enum sp_state st)
{
	shmk_pool *p = sp->p;
	int64_t now = shmk__mono_ms();
	unsigned i = sp->n;
	int ack[2];
	long pid;

	for (unsigned k = 0; k < sp->n; k++)
		if (sp->due[k] >= 0 && sp->due[k] <= now &&
		    (i == sp->n || sp->due[k] < sp->due[i]))
			i = k;
	if (i == sp->n)
		return st;
	sp->due[i] = -1;
	fiu_do_on("shmk/pool/fork", {
		sp->due[i] = now + p->o.backoff_max_ms;
		return st;
	});
	if (pipe2(ack, O_CLOEXEC) < 0) {
		sp->due[i] = now + p->o.backoff_max_ms; /* try again later */
		return st;
	}
	pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid == 0) {
		close(ack[0]);
		shmk__close_inherited(&ack[1], 1);
		shmk__worker_main(p, i, (uint32_t)sp->self, ack[1]);
	}
	close(ack[1]);
	if (pid < 0) {
		close(ack[0]);
		sp->due[i] = now + p->o.backoff_max_ms;
		return st;
	}
	sp->slot = i;
	sp->pid = (pid_t)pid;
	sp->ack = ack[0];
	sp->deadline = now + p->o.start_timeout_ms;
	shmk__close(&sp->fd[i]);
	/* Not reaped before it takes the slot over (only the service reaps,
	 * once the slot's word names it dead): the pid names it. */
	sp->fd[i] = shmk__pidfd_open((pid_t)pid);
	return SP_CHILD;
}

static enum sp_state a_child_up(struct sp *sp, enum sp_state st)
{
	shmk__close(&sp->ack);
	if (st == SP_STOPPING)
		_exit(0);
	return SP_IDLE;
}

/* The child died before it took the slot over: mark the word as its
 * death would have, so that the service reaps and classifies it. */
static enum sp_state a_child_died(struct sp *sp, enum sp_state st)
{
	struct pslot *s = &sp->c->slot[sp->slot];
	uint32_t v = atomic_load(&s->life);

	while (RW_TID(v) == (uint32_t)sp->self && !RW_DEAD(v) &&
	       !atomic_compare_exchange_weak(
		       &s->life, &v,
		       (uint32_t)sp->pid | FUTEX_OWNER_DIED | (v & FUTEX_WAITERS)))
		;
	shmk__fwake(&s->life, INT_MAX);
	return a_child_up(sp, st);
}

static enum sp_state a_child_slow(struct sp *sp, enum sp_state st)
{
	if (sp->fd[sp->slot] >= 0)
		syscall(SYS_pidfd_send_signal, sp->fd[sp->slot], SIGKILL, NULL, 0);
	else
		kill(sp->pid, SIGKILL);
	sp->deadline = -1; /* its EOF comes next */
	return st;
}

static enum sp_state a_stop(struct sp *sp, enum sp_state st)
{
	if (st == SP_IDLE)
		_exit(0);
	shmk__close(&sp->req_fd);
	return SP_STOPPING;
}

/* The service is gone: so are its workers. */
static enum sp_state a_gone(struct sp *sp, enum sp_state st)
{
	for (unsigned i = 0; i < sp->n; i++) {
		pid_t pid = atomic_load(&sp->c->slot[i].pid);
		uint32_t v;
		if (sp->fd[i] < 0 && pid > 0) {
			/* A first worker: the pid names it while its word says
			 * it is alive after the open (a dead one may have been
			 * reaped, its pid reused). */
			sp->fd[i] = shmk__pidfd_open(pid);
			v = atomic_load(&sp->c->slot[i].life);
			if (RW_DEAD(v) || RW_TID(v) != (uint32_t)pid) {
				shmk__close(&sp->fd[i]);
				continue;
			}
		}
		if (sp->fd[i] >= 0)
			syscall(SYS_pidfd_send_signal, sp->fd[i], SIGKILL, NULL, 0);
		else if (pid > 0)
			kill(pid, SIGKILL); /* (no pidfd_open: the pid) */
	}
	if (st != SP_IDLE)
		kill(sp->pid, SIGKILL);
	_exit(0);
}

static enum sp_state a_none(struct sp *sp, enum sp_state st) { return st; }

typedef enum sp_state (*sp_action)(struct sp *, enum sp_state);

static const sp_action table[SP_NSTATES][EV_NEVENTS] = {
	/*              REQUEST    DUE     CHILD_UP    CHILD_DIED    CHILD_SLOW    STOP    GONE */
	[SP_IDLE]     = {a_request, a_fork, a_none,     a_none,       a_none,       a_stop, a_gone},
	[SP_CHILD]    = {a_request, a_none, a_child_up, a_child_died, a_child_slow, a_stop, a_gone},
	[SP_STOPPING] = {a_none,    a_none, a_child_up, a_child_died, a_child_slow, a_none, a_gone},
};

/* ---- the loop ------------------------------------------------------------ */

/* Blocks until the next event. */
static enum sp_event next_event(struct sp *sp, enum sp_state st)
{
	for (;;) {
		struct pollfd pf[3] = {{.fd = sp->alive_fd, .events = POLLIN},
				       {.fd = sp->req_fd, .events = POLLIN},
				       {.fd = st != SP_IDLE ? sp->ack : -1,
					.events = POLLIN}};
		int64_t now = shmk__mono_ms(), at = -1;
		int r;

		if (st == SP_IDLE) {
			for (unsigned k = 0; k < sp->n; k++)
				if (sp->due[k] >= 0 && (at < 0 || sp->due[k] < at))
					at = sp->due[k];
		} else {
			at = sp->deadline;
		}
		if (at >= 0 && at <= now)
			return st == SP_IDLE ? EV_DUE : EV_CHILD_SLOW;
		r = poll(pf, 3, at < 0 ? -1 : (int)(at - now));
		if (r < 0)
			continue; /* (every signal is blocked; EINTR all the same) */
		if (pf[0].revents)
			return EV_GONE;
		if (pf[2].revents) {
			char b;
			ssize_t n = read(sp->ack, &b, 1);
			if (n < 0 && errno == EINTR)
				continue;
			return n == 1 ? EV_CHILD_UP : EV_CHILD_DIED;
		}
		if (pf[1].revents) {
			struct sp_req rq;
			ssize_t n = recv(sp->req_fd, &rq, sizeof rq,
					 MSG_PEEK | MSG_DONTWAIT);
			if (n > 0)
				return EV_REQUEST;
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				return EV_STOP;
		}
	}
}

static __attribute__((noreturn)) void spawner_main(shmk_pool *p, int req_fd,
						   int alive_fd, int ack_fd)
{
	struct pctl *c = p->ctl;
	struct sp sp = {.p = p, .c = c, .n = p->o.workers, .req_fd = req_fd,
			.alive_fd = alive_fd, .ack = -1};
	enum sp_state st = SP_IDLE;

	/* Single-threaded from here on: the only thread of this process.
	 * SIGTERM from outside ends it (and the pool, which sees it dead). */
	shmk__child_signals(true);
	SHMK_CRASHPOINT("pool/spawner_start");
	/* Our word first, then every slot's life word: the kernel marks
	 * ours first when we die. */
	c->sp_node.next = &c->slot[0].sp_node;
	for (unsigned i = 0; i < sp.n; i++)
		c->slot[i].sp_node.next =
			i + 1 < sp.n ? &c->slot[i + 1].sp_node : &head.list;
	sp.self = getpid();
	{ /* keeping FUTEX_WAITERS a caller may have set */
		uint32_t v = atomic_load(&c->spawner);
		while (!atomic_compare_exchange_weak(
			&c->spawner, &v, (uint32_t)sp.self | (v & FUTEX_WAITERS)))
			;
	}
	if (SHMK_SYS("set_robust_list",
		     shmk__robust_register(&head, &c->sp_node, SP_OFF)) < 0) {
		shmk__start_failed(c, errno, "pool: spawner: set_robust_list: %s",
				   strerror(errno));
		_exit(112); /* the ack pipe closes unwritten */
	}
	shmk__title(&p->titles[p->o.workers]);
	/* The first workers get pidfds only when the service is gone (and
	 * only if their slot's word still names them alive after the open):
	 * nothing here but what the pool's start needs. */
	{
		static int64_t due_tab[MAX_WORKERS];
		static int fd_tab[MAX_WORKERS];
		sp.due = due_tab;
		sp.fd = fd_tab;
		for (unsigned i = 0; i < sp.n; i++) {
			due_tab[i] = -1;
			fd_tab[i] = -1;
		}
	}
	syscall(SYS_write, ack_fd, "s", 1);
	syscall(SYS_close, ack_fd);
	for (;;)
		st = table[st][next_event(&sp, st)](&sp, st);
}

int shmk__spawner_pipes(shmk_pool *p)
{
	int req[2], alive[2], ack[2];

	/* req is a socket pair so that requests are sent with MSG_NOSIGNAL
	 * (a dead spawner must not SIGPIPE the service); SEQPACKET keeps
	 * each one whole. */
	if (SHMK_SYS("socketpair", socketpair(AF_UNIX,
					      SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
					      req)) < 0)
		goto fail;
	p->req_fd = req[1];
	p->sp_fds[0] = req[0];
	if (pipe2(alive, O_CLOEXEC) < 0)
		goto fail;
	p->alive_fd = alive[1];
	p->sp_fds[1] = alive[0];
	if (pipe2(ack, O_CLOEXEC) < 0)
		goto fail;
	p->sp_ack_fd = ack[0];
	p->sp_fds[2] = ack[1];
	return 0;
fail:
	return shmk__err(-errno, "pool: cannot create pipes: %s", strerror(errno));
}

void shmk__spawner_fork(shmk_pool *p)
{
	int *f = p->sp_fds; /* request, alive, ack */
	long pid;

	pid = fiu_fail("shmk/pool/fork_spawner")
		      ? (errno = EAGAIN, -1)
		      : syscall(SYS_clone, CLONE_PARENT | CLONE_PARENT_SETTID | SIGCHLD,
				NULL, &p->ctl->sp_tid, NULL, 0);
	if (pid == 0) {
		shmk__close_inherited(f, 3);
		spawner_main(p, f[0], f[1], f[2]);
	}
	if (pid < 0) { /* the pool cannot start: it could replace nobody */
		shmk__start_failed(p->ctl, errno, "pool: worker 0: cannot fork the "
				   "spawner: %s", strerror(errno));
		_exit(112);
	}
	for (int k = 0; k < 3; k++)
		syscall(SYS_close, f[k]);
}

void shmk__spawner_fork_lazy(shmk_pool *p)
{
	int *f = p->sp_fds; /* request, alive, ack */
	pid_t pid;
	int rc;

	if (!p->lazy_sp)
		return;
	p->lazy_sp = false; /* asked once: forked, or never will be */
	if (!shmk__one_thread()) {
		shmk__start_failed(p->ctl, EDEADLK,
				   "pool: the spawner was to be forked from the "
				   "service at the first replacement "
				   "(SHMK_OPEN_LAZY_SPAWNER), but the service has "
				   "started threads since the pool was created, and "
				   "a fork now could copy a lock one of them holds");
	} else if ((rc = shmk__spawner_pipes(p)) < 0) {
		shmk__start_failed(p->ctl, -rc, "%s", shmk_last_error());
	} else {
		pid = fiu_fail("shmk/pool/fork_spawner")
			      ? (errno = EAGAIN, -1)
			      : SHMK_SYS("fork", fork());
		if (pid == 0) {
			shmk__close_inherited(f, 3);
			spawner_main(p, f[0], f[1], f[2]);
		}
		if (pid < 0)
			shmk__start_failed(p->ctl, errno, "pool: cannot fork the "
					   "spawner: %s", strerror(errno));
		else
			atomic_store(&p->ctl->sp_tid, (int32_t)pid);
	}
	/* The ack pipe's write end is the spawner's alone now: EOF at once
	 * if it was not forked. */
	for (int k = 0; k < 3; k++)
		shmk__close(&f[k]);
}
