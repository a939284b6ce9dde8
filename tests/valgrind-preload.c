/* valgrind-preload.c - LD_PRELOADed by make valgrind (tests/valgrind.mk)
 * into every process of the run: the test runner, each test, the tools,
 * and all they fork.
 *
 * A child made by fork() without exec holds a copy of its parent's heap,
 * which it neither owns nor frees: it ends by _exit() or by a signal (test
 * children, the pool's supervisor and workers, leak-soak's victim).
 * Memcheck's leak search at its exit would judge the parent's blocks by what
 * the compiler happened to keep live on the child's path, and by the stacks
 * of threads that fork did not copy; the "leaks" it reports belong to no
 * code of the child, and --error-exitcode turns its _exit(0) into exit 1.
 * So a forked child gets no leak search.  Every other check (invalid
 * accesses, uninitialised values, bad frees, syscall parameters, descriptor
 * tracking) stays on in it, and each program started by exec is
 * leak-checked in full at its exit.  Descriptors still open at the exit of
 * a test process are judged by valgrind.mk. */
#include <pthread.h>
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
