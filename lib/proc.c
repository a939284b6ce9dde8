/* SPDX-License-Identifier: MIT */
/* proc.c - who a process is: pid, start time and boot id.
 *
 * Liveness is decided by the owner's lock (see owner.c); identity is the
 * cross-check and what shmls shows.  A pid alone proves nothing (pids are
 * reused); pid + start time + boot id names one process for ever. */
#include "internal.h"

#include <sys/resource.h>
#include <sys/syscall.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* getpid() is a system call since glibc 2.25; the hot paths ask for it
 * several times per operation.  Cached, and forgotten in a fork child by a
 * pthread_atfork handler (children made by raw clone() are not supported). */
static _Atomic pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void forget_pid(void) { cached_pid = 0; }
static void pid_init(void) { pthread_atfork(NULL, NULL, forget_pid); }

pid_t shmk__pid(void)
{
	pid_t p;

	pthread_once(&pid_once, pid_init);
	if (!(p = cached_pid))
		cached_pid = p = getpid();
	return p;
}

int64_t shmk__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t shmk__now(void)
{
	struct timespec ts;

	/* The kernel's own timestamps (ctime, mtime) come from this clock, and
	 * it costs no clock read (a preloaded create asks for it). */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

ssize_t shmk__read_small(int dirfd, const char *name, char *buf, size_t sz)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sz - 1)) < 0 && errno == EINTR)
		;
	e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return n;
}

/* Start time and state letter (R, S, D, Z, X, ...) of pid. */
/* pid 0 means "self": /proc/self/stat, whose first field (the pid as the
 * mounted /proc sees it) goes to *seen_pid if not NULL. */
static int proc_stat_ex(pid_t pid, unsigned long long *start, char *state,
			pid_t *seen_pid)
{
	char path[64], buf[1024];
	const char *p;
	int n, field;

	if (pid)
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/stat");
	if ((n = shmk__read_small(AT_FDCWD, path, buf, sizeof buf)) < 0)
		return n == -ESRCH ? -ENOENT : n;
	if (seen_pid)
		*seen_pid = (pid_t)strtol(buf, NULL, 10);
	/* comm (field 2) may hold spaces and ')': fields resume after the
	 * last ')'.  Field 3 follows it; start time is field 22. */
	if (!(p = strrchr(buf, ')')) || p[1] != ' ' || !p[2])
		return -EINVAL;
	*state = p[2];
	p++;
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	if (field != 22)
		return -EINVAL;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static int proc_stat(pid_t pid, unsigned long long *start, char *state)
{
	return proc_stat_ex(pid, start, state, NULL);
}

int shmk__proc_start_time(pid_t pid, unsigned long long *out)
{
	char state;

	return proc_stat(pid, out, &state);
}

static struct shmk_ident self;
static bool self_proc_ours; /* /proc is of our pid namespace */
static pid_t self_pid; /* self is valid for this pid */

static void read_boot_id(char out[40])
{
	char buf[64];
	int n = (int)shmk__read_small(AT_FDCWD, "/proc/sys/kernel/random/boot_id",
				 buf, sizeof buf);

	out[0] = '\0';
	if (n >= 36) {
		memcpy(out, buf, 36);
		out[36] = '\0';
	}
}

/* Inode of this process's pid namespace, the namespace its pid (and start
 * time) mean something in: 0 if it cannot be read, or if it does not fit
 * the record format (above 2^53-1; nsfs inode numbers are 32-bit). */
static uint64_t read_pidns(void)
{
	struct stat st;

	if (stat("/proc/self/ns/pid", &st) < 0 ||
	    (uint64_t)st.st_ino > 9007199254740991ull)
		return 0;
	return (uint64_t)st.st_ino;
}

int shmk__self_ident(struct shmk_ident *out)
{
	pid_t pid = shmk__pid();

	/* Cached per pid: a fork child computes its own.  Racing threads
	 * compute the same values, so the unlocked cache is benign. */
	if (__atomic_load_n(&self_pid, __ATOMIC_ACQUIRE) != pid) {
		struct shmk_ident id = {.pid = pid, .uid = geteuid()};
		pid_t seen = 0;
		char state;
		/* /proc/self, not /proc/<getpid()>: in a pid namespace whose
		 * /proc was not mounted anew, /proc/<our pid> is another
		 * process (as pid 1, the host's init). */
		int rc = proc_stat_ex(0, &id.start_time, &state, &seen);

		if (rc < 0)
			return shmk__err(rc, "/proc/self/stat: cannot read own "
					     "start time: %s",
					 strerror(-rc));
		read_boot_id(id.boot_id);
		id.pidns = read_pidns();
		/* Other processes' /proc entries name our pid namespace's
		 * processes only if the mounted /proc is of that namespace. */
		self_proc_ours = seen == pid;
		self = id;
		__atomic_store_n(&self_pid, pid, __ATOMIC_RELEASE);
	}
	*out = self;
	out->pid = pid;
	return 0;
}

bool shmk__proc_is_ours(void)
{
	struct shmk_ident me;
	struct statfs sfs;

	/* Asked each time: something may be mounted over /proc since. */
	return shmk__self_ident(&me) == 0 && self_proc_ours &&
	       statfs("/proc", &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;
}

/* 1 running, 0 not (earlier boot, another process under the pid, a
 * zombie), or the negative errno of reading /proc/<pid>/stat. */
static int ident_stat(const struct shmk_ident *id)
{
	struct shmk_ident me;
	unsigned long long st;
	char state;
	int rc;

	if (id->pid <= 0)
		return 0;
	if (shmk__self_ident(&me) == 0 && id->boot_id[0] && me.boot_id[0] &&
	    strcmp(id->boot_id, me.boot_id) != 0)
		return 0; /* recorded in an earlier boot */
	if ((rc = proc_stat(id->pid, &st, &state)) < 0)
		return rc;
	/* A zombie is dead: it has released its files, locks included. */
	return st == id->start_time && state != 'Z' && state != 'X';
}

int shmk__ident_alive(const struct shmk_ident *id)
{
	int rc = ident_stat(id);

	if (rc >= 0)
		return rc;
	return rc == -ENOENT && shmk__proc_is_ours() ? 0 : -1;
}

bool shmk__ident_running(const struct shmk_ident *id)
{
	return ident_stat(id) > 0;
}

bool shmk__one_thread(void)
{
	struct stat st;

	/* The link count of /proc/self/task is 2 + the number of threads. */
	if (stat("/proc/self/task", &st) == 0 && st.st_nlink >= 3)
		return st.st_nlink == 3;
	return __libc_single_threaded;
}

/* Closes every descriptor from lo to hi (inclusive): close_range, or one
 * close() each where the kernel has none (before 5.9).  Async-signal-safe. */
static void close_span(unsigned lo, unsigned hi)
{
	struct rlimit rl;

	if (lo > hi || SHMK_SYS("close_range",
				 syscall(SYS_close_range, lo, hi, 0)) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur - 1 < hi)
		hi = (unsigned)(rl.rlim_cur - 1);
	else if (hi > 65535)
		hi = 65535;
	for (unsigned fd = lo; fd <= hi; fd++)
		close((int)fd);
}

void shmk__close_inherited(const int *keep, size_t n)
{
	int k_sorted[SHMK_KEEP_MAX];
	unsigned lo = 3;

	if (n > SHMK_KEEP_MAX)
		n = SHMK_KEEP_MAX;
	for (size_t a = 0; a < n; a++) { /* insertion sort: n is tiny */
		size_t b = a;
		for (; b > 0 && k_sorted[b - 1] > keep[a]; b--)
			k_sorted[b] = k_sorted[b - 1];
		k_sorted[b] = keep[a];
	}
	for (size_t k = 0; k < n; k++) {
		if (k_sorted[k] < (int)lo)
			continue;
		close_span(lo, (unsigned)k_sorted[k] - 1);
		lo = (unsigned)k_sorted[k] + 1;
	}
	close_span(lo, ~0u);
}
