/* SPDX-License-Identifier: MIT */
/* prog_preload.c - a plain program (nothing of shmkeeper linked) that the
 * preload tests run with and without LD_PRELOAD.  Each argument is one
 * step; each step prints one line saying exactly what the program saw
 * (return value, descriptor number, errno), so that the output with and
 * without the preload can be compared byte for byte.
 *
 *   C:name   shm_open(name, O_CREAT|O_EXCL|O_RDWR, 0600)
 *   O:name   shm_open(name, O_CREAT|O_RDWR, 0600)
 *   A:name   shm_open(name, O_RDWR)
 *   U:name   shm_unlink(name)
 *   T:size   ftruncate(last shm descriptor, size)
 *   B        print the size and allocated bytes of the last descriptor
 *   V:name   vfork; the child calls shm_open(name, O_CREAT|O_EXCL) and
 *            _exits (what POSIX does not allow, and the preload must not
 *            record: the child shares its parent's memory)
 *   Y:name   vfork; the child calls shm_unlink(name) and _exits
 *   G        vfork; the child sets a variable of its parent's memory and
 *            _exits; the parent prints it (what vfork is used for)
 *   Q        vfork refused by the kernel (a seccomp filter makes it fail
 *            with EAGAIN): print what vfork returned and errno
 *   L:name   a child made by clone(CLONE_VM) (our memory, another
 *            process) calls shm_open(name, O_CREAT|O_EXCL) and returns;
 *            the parent prints its status
 *   R:name   a child made by the clone system call itself (no fork
 *            handlers run: a raw clone) calls shm_open(name, O_CREAT|
 *            O_EXCL) and _exits; the parent prints its status
 *   s:name   sem_open(name, O_CREAT|O_EXCL, 0600, 1)
 *   o:name   sem_open(name, O_CREAT, 0600, 1)
 *   u:name   sem_unlink(name)
 *   S:name   print "ready", then for ever: sem_open(name, O_CREAT|O_EXCL,
 *            0600, 1), sem_close, sem_unlink (to be SIGKILLed anywhere)
 *   P:n:pfx  n threads at once each create pfx<i> (O_CREAT|O_EXCL)
 *   N:n:name n times: shm_open(name, O_CREAT|O_EXCL), close, shm_unlink;
 *            print how many went through
 *   E:val    errno = val, create and unlink a probe object, print errno
 *            (a successful call leaves the caller's errno alone)
 *   W        print "ready", then wait until stdin reaches end of file
 *   F        fork: the child goes on with the next steps; the parent
 *            waits for it and prints its status, then stops
 *   X        exec this program with the remaining steps (same process)
 *   K        SIGKILL itself
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int last_fd = -1;

/* The child of step L: runs in its parent's memory, on a stack of its
 * own, as another process. */
static int vm_child(void *name)
{
	return shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600) >= 0 ? 0 : 1;
}

static void say_int(const char *step, int rc)
{
	if (rc < 0)
		printf("%s = -1 %s\n", step, strerrorname_np(errno));
	else
		printf("%s = %d\n", step, rc);
}

static void say_sem(const char *step, sem_t *s)
{
	if (s == SEM_FAILED)
		printf("%s = SEM_FAILED %s\n", step, strerrorname_np(errno));
	else
		printf("%s = ok\n", step);
}

struct th {
	char name[256];
	int rc, err;
};

static void *th_create(void *arg)
{
	struct th *t = arg;

	t->rc = shm_open(t->name, O_CREAT | O_EXCL | O_RDWR, 0600);
	t->err = errno;
	if (t->rc >= 0)
		close(t->rc);
	return NULL;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *arg = a[1] == ':' ? a + 2 : "";
		int rc;

		if (!strcmp(a, "shmk-vg-untraced"))
			continue; /* tells make valgrind not to trace us */

		errno = 0;
		switch (a[0]) {
		case 'C':
			say_int(a, rc = shm_open(arg, O_CREAT | O_EXCL | O_RDWR, 0600));
			last_fd = rc >= 0 ? rc : last_fd;
			break;
		case 'O':
			say_int(a, rc = shm_open(arg, O_CREAT | O_RDWR, 0600));
			last_fd = rc >= 0 ? rc : last_fd;
			break;
		case 'A':
			say_int(a, rc = shm_open(arg, O_RDWR, 0));
			last_fd = rc >= 0 ? rc : last_fd;
			break;
		case 'U':
			say_int(a, shm_unlink(arg));
			break;
		case 'T':
			say_int(a, ftruncate(last_fd, atol(arg)));
			break;
		case 'M': {
			struct stat st;
			char *p;
			if (fstat(last_fd, &st) < 0 ||
			    (p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
				      MAP_SHARED, last_fd, 0)) == MAP_FAILED) {
				say_int(a, -1);
				break;
			}
			for (off_t o = 0; o < st.st_size; o += 4096)
				p[o] = 1;
			munmap(p, (size_t)st.st_size);
			say_int(a, 0);
			break;
		}
		case 'B': {
			struct stat st;
			if (fstat(last_fd, &st) < 0)
				say_int(a, -1);
			else
				printf("%s = size %lld allocated %lld\n", a,
				       (long long)st.st_size,
				       (long long)st.st_blocks * 512);
			break;
		}
		case 'V': {
			pid_t pid = vfork();
			int st;
			if (pid == 0)
				_exit(shm_open(arg, O_CREAT | O_EXCL | O_RDWR, 0600) >= 0
					      ? 0 : 1);
			waitpid(pid, &st, 0);
			printf("%s = child exit %d\n", a, WEXITSTATUS(st));
			break;
		}
		case 'Y': {
			pid_t pid = vfork();
			int st;
			if (pid == 0)
				_exit(shm_unlink(arg) == 0 ? 0 : 1);
			waitpid(pid, &st, 0);
			printf("%s = child exit %d\n", a, WEXITSTATUS(st));
			break;
		}
		case 'G': {
			volatile int seen = 0;
			pid_t pid = vfork();
			int st;
			if (pid == 0) {
				seen = 42;
				_exit(0);
			}
			waitpid(pid, &st, 0);
			printf("%s = child wrote %d\n", a, seen);
			break;
		}
		case 'Q': {
			struct sock_filter f[] = {
				BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					 offsetof(struct seccomp_data, nr)),
				BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_vfork, 0, 1),
				BPF_STMT(BPF_RET | BPF_K,
					 SECCOMP_RET_ERRNO | EAGAIN),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			};
			struct sock_fprog prog = {sizeof f / sizeof *f, f};
			pid_t pid;
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
			    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
				say_int(a, -1);
				break;
			}
			errno = 0;
			if ((pid = vfork()) == 0)
				_exit(0);
			say_int(a, pid);
			break;
		}
		case 'L': {
			static char stack[64 * 1024];
			int st;
			pid_t pid = clone(vm_child, stack + sizeof stack,
					  CLONE_VM | SIGCHLD, (void *)arg);
			if (pid < 0) {
				say_int(a, -1);
				break;
			}
			waitpid(pid, &st, __WALL);
			printf("%s = child exit %d\n", a, WEXITSTATUS(st));
			break;
		}
		case 'R': {
			long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
			int st;
			if (pid == 0)
				_exit(shm_open(arg, O_CREAT | O_EXCL | O_RDWR,
					       0600) >= 0 ? 0 : 1);
			waitpid((pid_t)pid, &st, 0);
			printf("%s = child exit %d\n", a, WEXITSTATUS(st));
			break;
		}
		case 's':
			say_sem(a, sem_open(arg, O_CREAT | O_EXCL, 0600, 1));
			break;
		case 'o':
			say_sem(a, sem_open(arg, O_CREAT, 0600, 1));
			break;
		case 'u':
			say_int(a, sem_unlink(arg));
			break;
		case 'S':
			printf("ready\n");
			fflush(stdout);
			for (;;) {
				sem_t *sm = sem_open(arg, O_CREAT | O_EXCL, 0600, 1);
				if (sm != SEM_FAILED)
					sem_close(sm);
				sem_unlink(arg);
			}
		case 'E': {
			char probe[64];
			int fd;
			/* A name of this process's: two runs at once must not
			 * meet on it (EEXIST). */
			snprintf(probe, sizeof probe, "/prog-preload-E-probe-%d",
				 (int)getpid());
			errno = atoi(arg);
			fd = shm_open(probe, O_CREAT | O_EXCL | O_RDWR, 0600);
			printf("%s errno after create = %s\n", a, strerrorname_np(errno));
			if (fd >= 0) {
				close(fd);
				shm_unlink(probe);
			}
			break;
		}
		case 'P': {
			int n = atoi(arg);
			const char *pfx = strchr(arg, ':');
			struct th *t = calloc((size_t)n, sizeof *t);
			pthread_t *ids = calloc((size_t)n, sizeof *ids);
			int ok = 0;
			for (int k = 0; k < n; k++) {
				snprintf(t[k].name, sizeof t[k].name, "%s%d",
					 pfx ? pfx + 1 : "/t", k);
				pthread_create(&ids[k], NULL, th_create, &t[k]);
			}
			for (int k = 0; k < n; k++) {
				pthread_join(ids[k], NULL);
				ok += t[k].rc >= 0;
			}
			printf("%s = %d created\n", a, ok);
			free(t);
			free(ids);
			break;
		}
		case 'N': {
			int n = atoi(arg), ok = 0;
			const char *nm = strchr(arg, ':');
			for (int k = 0; nm && k < n; k++) {
				int fd = shm_open(nm + 1, O_CREAT | O_EXCL | O_RDWR,
						  0600);
				if (fd >= 0 && close(fd) == 0 &&
				    shm_unlink(nm + 1) == 0)
					ok++;
			}
			printf("%s = %d made and unlinked\n", a, ok);
			break;
		}
		case 'W': {
			char buf[64];
			printf("ready\n");
			while (read(0, buf, sizeof buf) > 0)
				;
			break;
		}
		case 'F': {
			pid_t pid = fork();
			int st;
			if (pid == 0)
				break; /* the child goes on */
			waitpid(pid, &st, 0);
			printf("child %s %d\n", WIFEXITED(st) ? "exit" : "signal",
			       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			return 0;
		}
		case 'X':
			argv[i] = argv[0];
			execv("/proc/self/exe", argv + i);
			say_int(a, -1);
			return 1;
		case 'K':
			kill(getpid(), SIGKILL);
			break;
		default:
			fprintf(stderr, "prog_preload: unknown step %s\n", a);
			return 2;
		}
	}
	return 0;
}
