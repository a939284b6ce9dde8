/* SPDX-License-Identifier: MIT */
/* valgrind-preload.c - LD_PRELOADed by make valgrind (tests/valgrind.mk)
 * into every process of the run: the test runner, each test, the tools,
 * and all they fork.
 *
 * A child made by fork() without exec holds a copy of its parent's heap,
 * which it neither owns nor frees: it ends by _exit() or by a signal (test
 * children, the pool's spawner and workers, leak-soak's victim).
 * Memcheck's leak search at its exit would judge the parent's blocks by what
 * the compiler happened to keep live on the child's path, and by the stacks
 * of threads that fork did not copy; the "leaks" it reports belong to no
 * code of the child, and --error-exitcode turns its _exit(0) into exit 1.
 * So a forked child gets no leak search.  Every other check (invalid
 * accesses, uninitialised values, bad frees, syscall parameters, descriptor
 * tracking) stays on in it, and each program started by exec is
 * leak-checked in full at its exit.  Descriptors still open at the exit of
 * a test process are judged by valgrind.mk. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <valgrind/valgrind.h>

static void child_after_fork(void)
{
	VALGRIND_CLO_CHANGE("--leak-check=no");
	/* The mark by which valgrind.mk tells a forked child's log. */
	VALGRIND_PRINTF("shmk-vg: forked child, no leak search\n");
}

__attribute__((constructor)) static void init(void)
{
	if (RUNNING_ON_VALGRIND)
		pthread_atfork(NULL, NULL, child_after_fork);
}

/* The pool forks its spawner and its replacement workers with a raw
 * clone(CLONE_PARENT) - glibc's fork() takes no flags - which runs no
 * atfork handler: syscall() is interposed so that such a child is marked
 * all the same. */
long syscall(long n, ...)
{
	static long (*real)(long, ...);
	long a[6], r;
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	r = real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (n == SYS_clone && r == 0 && !(a[0] & CLONE_VM) && RUNNING_ON_VALGRIND)
		child_after_fork();
	return r;
}
