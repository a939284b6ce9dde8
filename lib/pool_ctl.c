/* SPDX-License-Identifier: MIT */
/* pool_ctl.c - what every process of the pool shares: futexes (plain and
 * robust), the monotonic clock, the slot state word, start failures, and
 * what a child keeps of the service (descriptors, its title). */
#include "pool_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- futexes ------------------------------------------------------------ */

int shmk__fwait(_Atomic uint32_t *w, uint32_t val, const struct timespec *rel)
{
	return (int)syscall(SYS_futex, w, FUTEX_WAIT, val, rel, NULL, 0);
}

void shmk__fwake(_Atomic uint32_t *w, int n)
{
#ifdef __SANITIZE_ADDRESS__
	/* The kernel does not read the word to wake its waiters, but a wake
	 * on memory that is no longer ours is a use after free all the same
	 * (valgrind checks the futex address too): touch it, so that
	 * AddressSanitizer reports one. */
	(void)atomic_load_explicit(w, memory_order_relaxed);
#endif
	syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Remaining time to deadline (ms, -1 = forever) as a timespec; false when
 * it has passed. */
bool shmk__remaining(int64_t deadline, struct timespec *ts,
		     const struct timespec **out)
{
	int64_t left;

	if (deadline < 0) {
		*out = NULL;
		return true;
	}
	left = deadline - shmk__mono_ms();
	if (left <= 0)
		return false;
	ts->tv_sec = left / 1000;
	ts->tv_nsec = (left % 1000) * 1000000;
	*out = ts;
	return true;
}

bool shmk__rw_arm(_Atomic uint32_t *w, uint32_t *seen)
{
	uint32_t v = *seen;

	if (v & FUTEX_WAITERS)
		return true;
	if (atomic_compare_exchange_strong(w, &v, v | FUTEX_WAITERS)) {
		*seen = v | FUTEX_WAITERS;
		return true;
	}
	*seen = v;
	return false;
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif
struct fwaitv { /* struct futex_waitv (Linux 5.16) */
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

/* -1: not known yet; 0: the kernel has no futex_waitv (ENOSYS). */
static _Atomic int have_waitv = -1;

void shmk__wait2(_Atomic uint32_t *w, uint32_t val, _Atomic uint32_t *sp,
		 uint32_t spv, int64_t deadline)
{
	struct timespec ts;
	const struct timespec *rel;

	if (atomic_load_explicit(&have_waitv, memory_order_relaxed) != 0 &&
	    !fiu_fail("shmk/sys/futex_waitv")) {
		struct fwaitv v[2] = {
			{val, (uint64_t)(uintptr_t)w, FUTEX_32, 0},
			{spv, (uint64_t)(uintptr_t)sp, FUTEX_32, 0}};
		struct timespec abs;
		long r;

		if (deadline >= 0) {
			abs.tv_sec = deadline / 1000;
			abs.tv_nsec = (deadline % 1000) * 1000000;
		}
		r = syscall(SYS_futex_waitv, v, 2, 0,
			    deadline >= 0 ? &abs : NULL, CLOCK_MONOTONIC);
		if (r >= 0 || errno != ENOSYS) {
			atomic_store_explicit(&have_waitv, 1, memory_order_relaxed);
			return;
		}
		atomic_store_explicit(&have_waitv, 0, memory_order_relaxed);
	}
	/* No futex_waitv: wait on w alone, a slice at a time; the caller's
	 * loop looks at the spawner's word between slices. */
	if (deadline < 0 || deadline - shmk__mono_ms() > SLICE_MS)
		deadline = shmk__mono_ms() + SLICE_MS;
	if (shmk__remaining(deadline, &ts, &rel))
		shmk__fwait(w, val, rel);
}

/* ---- the state word ----------------------------------------------------- */

/* Sets the phase (and maybe gen) of a slot, keeping the leased bit.
 * Returns the state it replaced. */
uint32_t shmk__set_phase(struct pslot *s, enum phase ph, bool new_gen)
{
	uint32_t old = atomic_load(&s->state), nw;

	do {
		nw = ST_MAKE(old & ST_LEASED, ph, ST_GEN(old) + (new_gen ? 1 : 0));
	} while (!atomic_compare_exchange_weak(&s->state, &old, nw));
	shmk__fwake(&s->state, INT_MAX);
	return old;
}

void shmk__bump_free(struct pctl *c)
{
	atomic_fetch_add(&c->free_seq, 1);
	shmk__fwake(&c->free_seq, INT_MAX);
}

/* Tells shmk_pool_create() why the pool cannot start (the first failure
 * only): err is a positive errno, the sentence names the failing call. */
void shmk__start_failed(struct pctl *c, int err, const char *fmt, ...)
{
	int32_t none = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&c->start_err, &none, -1))
		return;
	va_start(ap, fmt);
	vsnprintf(c->start_msg, sizeof c->start_msg, fmt, ap);
	va_end(ap);
	atomic_store(&c->start_err, err > 0 ? err : EIO);
}

/* The signal state a child of the pool starts from: SIGTERM's default
 * action (the service may catch it; destroy's SIGTERM must end the child),
 * and every signal unblocked (a worker) or every one but SIGTERM blocked
 * (the spawner, whose loop must not be interrupted).  With the raw system
 * calls where the kernel's struct sigaction is the generic one, so that a
 * new child runs no code of libc's that the service had not run already:
 * on this path every first call into libc costs the child a lazy symbol
 * binding and page faults on code it had not touched (docs/DESIGN.md). */
void shmk__child_signals(bool spawner)
{
	uint64_t mask = spawner ? ~(1ull << (SIGTERM - 1)) : 0;
#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv)
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} dfl = {.handler = (void *)SIG_DFL};

	syscall(SYS_rt_sigaction, SIGTERM, &dfl, NULL, sizeof mask);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, sizeof mask);
#else
	sigset_t set;

	if (spawner) {
		sigfillset(&set);
		sigdelset(&set, SIGTERM);
	} else {
		sigemptyset(&set);
	}
	signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_SETMASK, &set, NULL);
	(void)mask;
#endif
}

int shmk__robust_register(struct robust_list_head *h, struct robust_list *first,
			  long offset)
{
	h->list.next = first;
	h->futex_offset = offset;
	h->list_op_pending = NULL;
	return (int)syscall(SYS_set_robust_list, h, sizeof *h);
}

int shmk__pidfd_open(pid_t pid)
{
	return SHMK_SYS("pidfd_open", (int)syscall(SYS_pidfd_open, pid, 0));
}

/* ---- process titles ---------------------------------------------------- */

/* A title is written over the process's own argv strings, which the kernel
 * shows as /proc/<pid>/cmdline (ps, top): in a child of the pool that area
 * is its own copy, and nobody else reads it.  No libbsd setproctitle():
 * it needs the real argv, which a library is not given, and moving the
 * environment out of the way (what setproctitle_init() does, to make room
 * for longer titles) cost 0.6 ms at every pool start.  The title is cut to
 * the length of the original arguments.  shmk__titles_init() finds the
 * area once (program_invocation_name is argv[0]; /proc/self/cmdline gives
 * the length), in the service before the first fork, so that every child
 * inherits it.
 *
 * Every title is formatted by the service, before it forks (shmk__titles_
 * format()): a child only copies it.  Formatting in each child cost about
 * 0.25 ms a worker, most of it page faults on the pages of printf's code
 * and data that the child touched for the first time (docs/DESIGN.md). */
static char *title_area;
static size_t title_len;
/* The program's name, copied out of the area before a child writes over
 * it (program_invocation_name and _short_name point into the area). */
static char name_copy[256];
static size_t short_at;

void shmk__titles_init(void)
{
	char buf[4096];
	const char *slash;
	int n;

	if (title_area || !program_invocation_name)
		return;
	n = (int)shmk__read_small(AT_FDCWD, "/proc/self/cmdline", buf,
				  sizeof buf);
	/* Only if argv[0] is where program_invocation_name points and all
	 * of the arguments fitted in buf. */
	if (n <= 1 || n >= (int)sizeof buf - 1 ||
	    memcmp(program_invocation_name, buf, (size_t)n) != 0)
		return;
	snprintf(name_copy, sizeof name_copy, "%s", program_invocation_name);
	slash = strrchr(name_copy, '/');
	short_at = slash ? (size_t)(slash + 1 - name_copy) : 0;
	title_len = (size_t)n - 1; /* the last NUL stays */
	title_area = program_invocation_name;
}

void shmk__titles_format(struct ptitle *t, const char *title, const char *role,
			 unsigned i, bool numbered)
{
	snprintf(t->comm, sizeof t->comm, numbered ? "shmk-%s%u" : "shmk-%s",
		 role, i);
	t->text[0] = 0;
	if (title && title_area)
		snprintf(t->text, sizeof t->text,
			 numbered ? "%s: %s %u" : "%s: %s", title, role, i);
}

void shmk__title(const struct ptitle *t)
{
	if (t->text[0] && title_area) {
		size_t l = strnlen(t->text, sizeof t->text);
		if (program_invocation_name == title_area) {
			program_invocation_name = name_copy;
			program_invocation_short_name = name_copy + short_at;
		}
		if (l > title_len)
			l = title_len;
		memcpy(title_area, t->text, l);
		memset(title_area + l, 0, title_len - l);
	}
	syscall(SYS_prctl, PR_SET_NAME, t->comm, 0, 0, 0);
}
