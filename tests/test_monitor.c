/* SPDX-License-Identifier: MIT */
/* test_monitor.c - the ResourceMonitor: what a sample reports (measured
 * independently of the library), baselines (explicit and after warm-up),
 * leak verdicts and their thresholds, tick(), soft limits (callback, also
 * one that cleans up through the library) and hard limits on segment
 * creation, the JSON-lines snapshot format and invalid arguments.
 *
 * Threads never call Criterion asserts: the main thread asserts after
 * joining them.  Every test reaps every child it forks, joins every thread,
 * destroys its monitors and closes its contexts.  No assertion depends on
 * timing; the only wait (a joined thread leaving the kernel's thread count)
 * polls for the condition. */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(monitor, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

#define MiB (1024ull * 1024ull)

/* ---- helpers -------------------------------------------------------------- */

static shmk_monitor *mon(const struct shmk_monitor_options *o)
{
	shmk_monitor *m = NULL;
	int rc = shmk_monitor_create(o, &m);

	cr_assert_eq(rc, 0, "shmk_monitor_create: %d %s", rc, shmk_last_error());
	cr_assert_not_null(m);
	return m;
}

static struct shmk_sample smp(shmk_monitor *m)
{
	struct shmk_sample s;
	int rc = shmk_monitor_sample(m, &s);

	cr_assert_eq(rc, 0, "shmk_monitor_sample: %d %s", rc, shmk_last_error());
	return s;
}

static struct shmk_verdict chk(shmk_monitor *m, const struct shmk_sample *s)
{
	struct shmk_verdict v;
	int rc = shmk_monitor_check(m, s, &v);

	cr_assert_eq(rc, 0, "shmk_monitor_check: %d %s", rc, shmk_last_error());
	return v;
}

/* Entries of a directory, "." and ".." excluded (opendir's own fd included
 * when dir is this process's fd directory). */
static long dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	long n = 0;

	cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* This process's descriptors, not counting the one used to list them. */
static long self_fds(void) { return dir_entries("/proc/self/fd") - 1; }
static long self_threads(void) { return dir_entries("/proc/self/task"); }

/* A joined thread leaves the kernel's count a moment after pthread_join()
 * returns (the tid is cleared before the task is released): sample until
 * the count is back, without asserting anything about how long it took. */
static struct shmk_sample settle_threads(shmk_monitor *m, long want)
{
	struct shmk_sample s = smp(m);

	for (int i = 0; i < 5000 && s.threads != want; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		s = smp(m);
	}
	return s;
}

/* Resident bytes from /proc/self/statm, read here. */
static uint64_t self_rss(void)
{
	char *txt = slurp("/proc/self/statm", NULL);
	unsigned long long size = 0, res = 0;

	cr_assert_not_null(txt);
	cr_assert_eq(sscanf(txt, "%llu %llu", &size, &res), 2);
	free(txt);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* A thread that lives until a byte arrives on fd (or it is closed). */
static void *wait_on_pipe(void *arg)
{
	char c;
	ssize_t n;

	do
		n = read(*(int *)arg, &c, 1);
	while (n < 0 && errno == EINTR);
	return NULL;
}

struct parked {
	pthread_t th;
	int p[2];
};

static void park_start(struct parked *t)
{
	cr_assert_eq(pipe2(t->p, O_CLOEXEC), 0);
	cr_assert_eq(pthread_create(&t->th, NULL, wait_on_pipe, &t->p[0]), 0);
}

static void park_end(struct parked *t)
{
	cr_assert_eq(write(t->p[1], "x", 1), 1);
	cr_assert_eq(pthread_join(t->th, NULL), 0);
	close(t->p[0]);
	close(t->p[1]);
}

/* A child that has exited and is left unreaped (a zombie): waitid with
 * WNOWAIT returns once it is dead, without reaping it. */
static pid_t zombie_child(void)
{
	siginfo_t si;
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(0);
	memset(&si, 0, sizeof si);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
		cr_assert_eq(errno, EINTR, "waitid: %s", strerror(errno));
	cr_assert_eq(si.si_pid, pid);
	return pid;
}

/* ---- what a sample reports ---------------------------------------------- */

Test(monitor, sample_counts_exactly_the_descriptors_of_this_process)
{
	shmk_monitor *m = mon(NULL);
	long before = self_fds();
	struct shmk_sample s = smp(m);
	long after = self_fds();

	cr_assert_eq(before, after);
	cr_assert_eq(s.fds, before, "sample says %ld fds, /proc/self/fd %ld",
		     s.fds, before);
	cr_assert_eq(s.pid, getpid());

	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	struct shmk_sample o = smp(m);
	cr_assert_eq(o.fds, s.fds + 1, "open: %ld -> %ld", s.fds, o.fds);
	cr_assert_eq(o.fds, self_fds());
	close(fd);
	struct shmk_sample c = smp(m);
	cr_assert_eq(c.fds, s.fds, "close: %ld -> %ld", s.fds, c.fds);
	shmk_monitor_destroy(m);
}

Test(monitor, sample_counts_a_thread_while_it_is_alive)
{
	shmk_monitor *m = mon(NULL);
	struct shmk_sample s = smp(m);
	struct parked t;

	cr_assert_eq(s.threads, self_threads());
	cr_assert_geq(s.threads, 1);
	park_start(&t);
	struct shmk_sample a = smp(m);
	long seen = self_threads();
	park_end(&t);
	cr_assert_eq(a.threads, s.threads + 1, "thread alive: %ld -> %ld",
		     s.threads, a.threads);
	cr_assert_eq(a.threads, seen);
	struct shmk_sample j = settle_threads(m, s.threads);
	cr_assert_eq(j.threads, s.threads, "after join: %ld, before %ld",
		     j.threads, s.threads);
	shmk_monitor_destroy(m);
}

Test(monitor, sample_counts_children_and_zombies_until_they_are_reaped)
{
	shmk_monitor *m = mon(NULL);
	struct shmk_sample s = smp(m);
	int p[2];

	/* A live child: a child, not a zombie. */
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t live = fork();
	cr_assert_geq(live, 0);
	if (live == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	struct shmk_sample l = smp(m);
	close(p[1]); /* lets the child exit */
	reap_child(live);
	cr_assert_eq(l.children, s.children + 1, "live child: %ld -> %ld",
		     s.children, l.children);
	cr_assert_eq(l.zombies, s.zombies);

	/* A child that exited and was not reaped. */
	pid_t z = zombie_child();
	struct shmk_sample zs = smp(m);
	int st = reap_child(z);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(zs.children, s.children + 1, "zombie: children %ld -> %ld",
		     s.children, zs.children);
	cr_assert_eq(zs.zombies, s.zombies + 1, "zombie: zombies %ld -> %ld",
		     s.zombies, zs.zombies);

	struct shmk_sample r = smp(m);
	cr_assert_eq(r.children, s.children, "after waitpid: %ld", r.children);
	cr_assert_eq(r.zombies, s.zombies, "after waitpid: %ld", r.zombies);
	shmk_monitor_destroy(m);
}

Test(monitor, sample_sees_rss_grow_when_memory_is_touched)
{
	shmk_monitor *m = mon(NULL);
	const size_t sz = 64 * MiB;
	struct shmk_sample s = smp(m);
	volatile unsigned char *mem = malloc(sz);

	cr_assert_not_null((void *)mem);
	cr_assert_gt(s.rss, 0);
	for (size_t i = 0; i < sz; i += 4096)
		mem[i] = (unsigned char)(i >> 12 | 1);
	struct shmk_sample g = smp(m);
	uint64_t statm = self_rss();
	unsigned sum = 0;
	for (size_t i = 0; i < sz; i += 1 * MiB)
		sum += mem[i];
	free((void *)mem);
	cr_assert_neq(sum, 0);
	cr_assert_geq(g.rss, s.rss + 60 * MiB,
		      "touched 64 MiB: rss %" PRIu64 " -> %" PRIu64, s.rss, g.rss);
	/* Independently, /proc/self/statm read just after says the same
	 * within a few pages of noise. */
	cr_assert(g.rss + 8 * MiB > statm && statm + 8 * MiB > g.rss,
		  "sample %" PRIu64 ", statm %" PRIu64, g.rss, statm);
	shmk_monitor_destroy(m);
}

static shmk_ctx *open_ns(const char *ns)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	int rc;

	o.ns = ns;
	rc = shmk_open(&o, &c);
	cr_assert_eq(rc, 0, "shmk_open %s: %d %s", ns, rc, shmk_last_error());
	return c;
}

/* The neighbours' objects, which tenv_teardown does not look for: removed
 * here even when the test failed half-way, then checked by the test. */
static char nsx[64], other[64], bare[PATH_MAX];

static void neighbours_teardown(void)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/%s.a", T.shm_dir, nsx);
	unlink(p);
	snprintf(p, sizeof p, "%s/%s.a", T.shm_dir, other);
	unlink(p);
	unlink(bare);
	tenv_teardown();
}

Test(monitor, sample_counts_the_segments_of_its_namespace_only,
     .fini = neighbours_teardown)
{
	char seg_x[128], seg_o[128];
	struct shmk_monitor_options o = {.ns = T.ns};
	struct shmk_monitor_options ox = {.ns = nsx};
	shmk_segment *a, *b, *x, *y;

	snprintf(nsx, sizeof nsx, "%sx", T.ns);      /* "<ns>x": a prefix */
	snprintf(other, sizeof other, "o%s", T.ns);  /* another namespace */
	snprintf(bare, sizeof bare, "%s/%s", T.shm_dir, T.ns); /* no dot */
	shmk_ctx *c = topen(), *cx = open_ns(nsx), *co = open_ns(other);
	shmk_monitor *m = mon(&o), *mx = mon(&ox), *none = mon(NULL);

	struct shmk_sample s0 = smp(m);
	cr_assert_eq(s0.ns_segments, 0);
	cr_assert_eq(s0.ns_bytes, 0);

	cr_assert_eq(shmk_segment_create(c, "a", 4096, &a), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "b", 12288, &b), 0);
	cr_assert_eq(shmk_segment_create(cx, "a", 8192, &x), 0);
	cr_assert_eq(shmk_segment_create(co, "a", 65536, &y), 0);
	/* An object named just "<ns>", without the dot. */
	int fd = open(bare, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", bare, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);

	struct shmk_sample s = smp(m), sx = smp(mx), sn = smp(none);
	unlink(bare);
	cr_assert_eq(s.ns_segments, 2, "ns_segments %" PRIu64, s.ns_segments);
	cr_assert_eq(s.ns_bytes, 4096 + 12288, "ns_bytes %" PRIu64, s.ns_bytes);
	cr_assert_eq(sx.ns_segments, 1);
	cr_assert_eq(sx.ns_bytes, 8192);
	cr_assert_eq(sn.ns_segments, 0, "no namespace: nothing counted");
	cr_assert_eq(sn.ns_bytes, 0);

	cr_assert_eq(shmk_segment_destroy(a), 0);
	struct shmk_sample d = smp(m);
	cr_assert_eq(d.ns_segments, 1);
	cr_assert_eq(d.ns_bytes, 12288);

	cr_assert_eq(shmk_segment_destroy(b), 0);
	cr_assert_eq(shmk_segment_destroy(x), 0);
	cr_assert_eq(shmk_segment_destroy(y), 0);
	cr_assert_eq(smp(m).ns_segments, 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(shmk_close(cx), 0);
	cr_assert_eq(shmk_close(co), 0);
	snprintf(seg_x, sizeof seg_x, "%s.a", nsx);
	snprintf(seg_o, sizeof seg_o, "%s.a", other);
	cr_assert_not(shm_file_exists(seg_x));
	cr_assert_not(shm_file_exists(seg_o));
	shmk_monitor_destroy(m);
	shmk_monitor_destroy(mx);
	shmk_monitor_destroy(none);
}

Test(monitor, sample_reports_the_shm_filesystem_as_statvfs_does)
{
	shmk_monitor *m = mon(NULL);
	struct statvfs v0, v1;

	cr_assert_eq(statvfs(T.shm_dir, &v0), 0);
	struct shmk_sample s = smp(m);
	cr_assert_eq(statvfs(T.shm_dir, &v1), 0);

	uint64_t total = (uint64_t)v0.f_blocks * v0.f_frsize;
	uint64_t f0 = (uint64_t)v0.f_bavail * v0.f_frsize;
	uint64_t f1 = (uint64_t)v1.f_bavail * v1.f_frsize;
	uint64_t lo = f0 < f1 ? f0 : f1, hi = f0 < f1 ? f1 : f0;
	/* Other tests may use /dev/shm at the same time: some slack. */
	uint64_t slack = total / 20;

	cr_assert_gt(s.shm_total, 0);
	cr_assert_gt(s.shm_free, 0);
	cr_assert_leq(s.shm_free, s.shm_total);
	cr_assert_eq(s.shm_total, total, "shm_total %" PRIu64 ", statvfs %" PRIu64,
		     s.shm_total, total);
	cr_assert(s.shm_free + slack >= lo && s.shm_free <= hi + slack,
		  "shm_free %" PRIu64 ", statvfs %" PRIu64 "..%" PRIu64,
		  s.shm_free, lo, hi);
	cr_assert_gt(s.when_ms, (int64_t)1600000000000);
	shmk_monitor_destroy(m);
}

/* ---- sampling another process -------------------------------------------- */

/* The child answers commands on cmd: 'o' opens three descriptors, 't'
 * starts two threads; EOF ends it.  Each command is acknowledged. */
static void *child_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int other_process(int cmd, int ack)
{
	char c;
	pthread_t th;

	if (write(ack, "r", 1) != 1)
		return 10;
	for (;;) {
		ssize_t n = read(cmd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (c == 'o') {
			for (int i = 0; i < 3; i++)
				if (open("/dev/null", O_RDONLY) < 0)
					return 11;
		} else if (c == 't') {
			for (int i = 0; i < 2; i++)
				if (pthread_create(&th, NULL, child_thread, NULL))
					return 12;
		}
		if (write(ack, "k", 1) != 1)
			return 13;
	}
}

static void expect_ack(int fd)
{
	char c = 0;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	cr_assert_eq(n, 1, "child did not answer");
}

Test(monitor, samples_another_process_by_pid)
{
	int cmd[2], ack[2];
	char path[64];

	cr_assert_eq(pipe2(cmd, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(ack, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		_exit(other_process(cmd[0], ack[1]));
	}
	close(cmd[0]);
	close(ack[1]);
	expect_ack(ack[0]);

	struct shmk_monitor_options o = {.pid = pid};
	shmk_monitor *m = mon(&o);
	struct shmk_sample s = smp(m);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	long fds = dir_entries(path);
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	long threads = dir_entries(path);

	cr_assert_eq(s.pid, pid);
	cr_assert_eq(s.fds, fds, "sample %ld fds, %s lists %ld", s.fds, path, fds);
	cr_assert_eq(s.threads, threads);
	cr_assert_eq(s.threads, 1, "a fork child has one thread");
	cr_assert_eq(s.children, 0);
	cr_assert_gt(s.rss, 0);

	cr_assert_eq(write(cmd[1], "o", 1), 1);
	expect_ack(ack[0]);
	struct shmk_sample so = smp(m);
	cr_assert_eq(so.fds, s.fds + 3, "child opened 3: %ld -> %ld", s.fds,
		     so.fds);

	cr_assert_eq(write(cmd[1], "t", 1), 1);
	expect_ack(ack[0]);
	struct shmk_sample st = smp(m);
	cr_assert_eq(st.threads, s.threads + 2, "child started 2: %ld -> %ld",
		     s.threads, st.threads);

	close(cmd[1]);
	int status = reap_child(pid);
	close(ack[0]);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %x",
		  status);

	/* Once the process is gone, sampling fails and says where. */
	struct shmk_sample gone;
	int rc = shmk_monitor_sample(m, &gone);
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	cr_assert_lt(rc, 0);
	cr_assert(has(shmk_last_error(), path), "%s", shmk_last_error());
	shmk_monitor_destroy(m);
}

/* ---- baseline --------------------------------------------------------------- */

static void assert_same_sample(const struct shmk_sample *a,
			       const struct shmk_sample *b)
{
	cr_assert_eq(a->when_ms, b->when_ms);
	cr_assert_eq(a->pid, b->pid);
	cr_assert_eq(a->fds, b->fds, "fds %ld != %ld", a->fds, b->fds);
	cr_assert_eq(a->rss, b->rss);
	cr_assert_eq(a->threads, b->threads);
	cr_assert_eq(a->children, b->children);
	cr_assert_eq(a->zombies, b->zombies);
	cr_assert_eq(a->ns_segments, b->ns_segments);
	cr_assert_eq(a->ns_bytes, b->ns_bytes);
	cr_assert_eq(a->shm_free, b->shm_free);
	cr_assert_eq(a->shm_total, b->shm_total);
}

Test(monitor, check_without_a_baseline_says_eagain)
{
	shmk_monitor *m = mon(NULL);
	struct shmk_verdict v;
	struct shmk_sample s = smp(m), b;

	cr_assert_eq(shmk_monitor_has_baseline(m), 0);
	cr_assert_eq(shmk_monitor_baseline(m, &b), -EAGAIN);
	cr_assert_eq(shmk_monitor_check(m, NULL, &v), -EAGAIN);
	cr_assert_eq(shmk_monitor_check(m, &s, &v), -EAGAIN);
	cr_assert(has(shmk_last_error(), "baseline"), "%s", shmk_last_error());
	/* Without a warm-up, samples never make a baseline. */
	for (int i = 0; i < 10; i++)
		smp(m);
	cr_assert_eq(shmk_monitor_has_baseline(m), 0);
	shmk_monitor_destroy(m);
}

Test(monitor, set_baseline_takes_a_fresh_sample_or_the_one_given)
{
	shmk_monitor *m = mon(NULL);
	struct shmk_sample b;

	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_monitor_has_baseline(m), 1);
	cr_assert_eq(shmk_monitor_baseline(m, &b), 0);
	cr_assert_eq(b.pid, getpid());
	cr_assert_eq(b.fds, self_fds());
	cr_assert_gt(b.rss, 0);
	cr_assert_gt(b.when_ms, 0);

	struct shmk_sample given = {.when_ms = 7, .pid = 11, .fds = 13,
				    .rss = 17, .threads = 19, .children = 23,
				    .zombies = 29, .ns_segments = 31,
				    .ns_bytes = 37, .shm_free = 41,
				    .shm_total = 43};
	cr_assert_eq(shmk_monitor_set_baseline(m, &given), 0);
	cr_assert_eq(shmk_monitor_has_baseline(m), 1);
	cr_assert_eq(shmk_monitor_baseline(m, &b), 0);
	assert_same_sample(&b, &given);

	/* Checks compare with that baseline. */
	struct shmk_sample now = given;
	now.fds = 15;
	struct shmk_verdict v = chk(m, &now);
	cr_assert_eq(v.fd_delta, 2);
	cr_assert_eq(v.fd_leak, 1);
	shmk_monitor_destroy(m);
}

Test(monitor, warm_up_makes_the_wth_sample_the_baseline)
{
	struct shmk_monitor_options o = {.warmup = 3};
	shmk_monitor *m = mon(&o);
	struct shmk_sample s[5], b;
	struct shmk_verdict v;
	int fd[2];

	/* Each sample differs in fds, so which one became the baseline shows. */
	s[1] = smp(m);
	cr_assert_eq(shmk_monitor_has_baseline(m), 0, "after 1 of 3");
	cr_assert_eq(shmk_monitor_baseline(m, &b), -EAGAIN);
	cr_assert_eq(shmk_monitor_check(m, &s[1], &v), -EAGAIN);
	fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s[2] = smp(m);
	cr_assert_eq(shmk_monitor_has_baseline(m), 0, "after 2 of 3");
	cr_assert_eq(shmk_monitor_baseline(m, &b), -EAGAIN);
	fd[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s[3] = smp(m);
	cr_assert_eq(shmk_monitor_has_baseline(m), 1, "after 3 of 3");
	cr_assert_eq(shmk_monitor_baseline(m, &b), 0);
	assert_same_sample(&b, &s[3]);
	cr_assert_eq(b.fds, s[1].fds + 2);

	/* Later samples leave it alone. */
	close(fd[1]);
	close(fd[0]);
	s[4] = smp(m);
	cr_assert_eq(s[4].fds, s[1].fds);
	cr_assert_eq(shmk_monitor_baseline(m, &b), 0);
	assert_same_sample(&b, &s[3]);
	v = chk(m, &s[4]);
	cr_assert_eq(v.fd_delta, -2);
	cr_assert_eq(v.fd_leak, 0);
	shmk_monitor_destroy(m);
}

/* ---- verdicts and thresholds ----------------------------------------------- */

Test(monitor, a_clean_state_is_no_leak)
{
	shmk_monitor *m = mon(NULL);

	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0);
	struct shmk_verdict v = chk(m, NULL);
	cr_assert_eq(v.leak, 0, "reason: %s", v.reason);
	cr_assert_eq(v.fd_leak + v.rss_leak + v.thread_leak + v.child_leak +
			     v.segment_leak + v.bytes_leak,
		     0);
	cr_assert_eq(v.fd_delta, 0);
	cr_assert_eq(v.thread_delta, 0);
	cr_assert_eq(v.child_delta, 0);
	cr_assert_eq(v.zombies, 0);
	cr_assert_eq(v.segment_delta, 0);
	cr_assert_eq(v.bytes_delta, 0);
	cr_assert_str_eq(v.reason, "no leak");
	shmk_monitor_destroy(m);
}

Test(monitor, one_extra_descriptor_is_a_leak_only_above_the_fd_threshold)
{
	struct shmk_monitor_options strict = {0}, lenient = {.fd_threshold = 1};
	shmk_monitor *ms = mon(&strict), *ml = mon(&lenient);

	cr_assert_eq(shmk_monitor_set_baseline(ms, NULL), 0);
	cr_assert_eq(shmk_monitor_set_baseline(ml, NULL), 0);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	struct shmk_sample s = smp(ms);
	struct shmk_verdict vs = chk(ms, &s), vl = chk(ml, &s);
	close(fd);

	cr_assert_eq(vs.fd_delta, 1);
	cr_assert_eq(vs.fd_leak, 1);
	cr_assert_eq(vs.leak, 1);
	cr_assert(has(vs.reason, "fd") && has(vs.reason, "+1"), "%s", vs.reason);

	cr_assert_eq(vl.fd_delta, 1);
	cr_assert_eq(vl.fd_leak, 0, "threshold 1: %s", vl.reason);
	cr_assert_eq(vl.leak, 0, "%s", vl.reason);
	cr_assert_str_eq(vl.reason, "no leak");

	/* Closed again: clean for both. */
	cr_assert_eq(chk(ms, NULL).fd_leak, 0);
	shmk_monitor_destroy(ms);
	shmk_monitor_destroy(ml);
}

Test(monitor, a_segment_left_in_the_namespace_is_a_segment_and_bytes_leak)
{
	struct shmk_monitor_options o = {.ns = T.ns};
	struct shmk_monitor_options lax = {.ns = T.ns, .segment_threshold = 1,
					   .bytes_threshold = 8192};
	shmk_ctx *c = topen();
	shmk_segment *s;
	char want[128];

	/* The first create opens the owner's lock file for good: do it once
	 * before the baseline so only the segment differs. */
	cr_assert_eq(shmk_segment_create(c, "warm", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	shmk_monitor *m = mon(&o), *ml = mon(&lax);
	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0);
	cr_assert_eq(shmk_monitor_set_baseline(ml, NULL), 0);

	cr_assert_eq(shmk_segment_create(c, "left", 8192, &s), 0);
	struct shmk_sample now = smp(m);
	struct shmk_verdict v = chk(m, &now), vl = chk(ml, &now);

	cr_assert_eq(v.segment_leak, 1);
	cr_assert_eq(v.segment_delta, 1);
	cr_assert_eq(v.bytes_leak, 1);
	cr_assert_eq(v.bytes_delta, 8192);
	cr_assert_eq(v.fd_leak, 0, "%s", v.reason);
	cr_assert_eq(v.leak, 1);
	snprintf(want, sizeof want, "segments of %s: +1", T.ns);
	cr_assert(has(v.reason, want), "reason \"%s\" lacks \"%s\"", v.reason,
		  want);
	snprintf(want, sizeof want, "bytes of %s: +8192", T.ns);
	cr_assert(has(v.reason, want), "reason \"%s\" lacks \"%s\"", v.reason,
		  want);

	/* At the thresholds, not above them: no leak. */
	cr_assert_eq(vl.segment_delta, 1);
	cr_assert_eq(vl.bytes_delta, 8192);
	cr_assert_eq(vl.segment_leak, 0);
	cr_assert_eq(vl.bytes_leak, 0);

	cr_assert_eq(shmk_segment_destroy(s), 0);
	v = chk(m, NULL);
	cr_assert_eq(v.segment_leak + v.bytes_leak, 0, "%s", v.reason);
	cr_assert_eq(v.segment_delta, 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
	shmk_monitor_destroy(ml);
}

/* A baseline of 100 MiB RSS and a sample `delta` above it. */
static struct shmk_verdict rss_verdict(double pct, uint64_t abs, int64_t delta)
{
	struct shmk_monitor_options o = {.rss_threshold_pct = pct,
					 .rss_threshold_bytes = abs};
	shmk_monitor *m = mon(&o);
	struct shmk_sample b = smp(m), s;

	b.rss = 100 * MiB;
	cr_assert_eq(shmk_monitor_set_baseline(m, &b), 0);
	s = b;
	s.rss = (uint64_t)((int64_t)b.rss + delta);
	struct shmk_verdict v = chk(m, &s);
	shmk_monitor_destroy(m);
	cr_assert_eq(v.rss_delta, delta);
	return v;
}

Test(monitor, rss_is_a_leak_only_past_both_thresholds)
{
	struct shmk_verdict v;

	/* Defaults: 10 % and 8 MiB. */
	v = rss_verdict(0, 0, 20 * MiB);
	cr_assert_eq(v.rss_leak, 1, "+20%% and +20 MiB: %s", v.reason);
	cr_assert_eq(v.leak, 1);
	cr_assert(has(v.reason, "rss") && has(v.reason, "+20971520"), "%s",
		  v.reason);
	v = rss_verdict(0, 0, 9 * MiB);
	cr_assert_eq(v.rss_leak, 0, "+9%% is under 10%%: %s", v.reason);

	/* The absolute threshold not exceeded. */
	v = rss_verdict(1.0, 8 * MiB, 5 * MiB);
	cr_assert_eq(v.rss_leak, 0, "+5 MiB is under 8 MiB: %s", v.reason);
	v = rss_verdict(1.0, 8 * MiB, 9 * MiB);
	cr_assert_eq(v.rss_leak, 1, "%s", v.reason);

	/* The relative threshold not exceeded. */
	v = rss_verdict(50.0, 1 * MiB, 20 * MiB);
	cr_assert_eq(v.rss_leak, 0, "+20%% is under 50%%: %s", v.reason);
	v = rss_verdict(50.0, 1 * MiB, 60 * MiB);
	cr_assert_eq(v.rss_leak, 1, "%s", v.reason);

	/* Shrinking is never a leak. */
	v = rss_verdict(1.0, 1, -(int64_t)(50 * MiB));
	cr_assert_eq(v.rss_leak, 0, "%s", v.reason);
}

Test(monitor, touching_64_mib_is_an_rss_leak_unless_the_threshold_is_higher)
{
	struct shmk_monitor_options lo = {.rss_threshold_pct = 1.0,
					  .rss_threshold_bytes = 16 * MiB};
	struct shmk_monitor_options hi = {.rss_threshold_pct = 1.0,
					  .rss_threshold_bytes = 1024 * MiB};
	shmk_monitor *ml = mon(&lo), *mh = mon(&hi);
	const size_t sz = 64 * MiB;
	struct shmk_sample b = smp(ml);

	cr_assert_eq(shmk_monitor_set_baseline(ml, &b), 0);
	cr_assert_eq(shmk_monitor_set_baseline(mh, &b), 0);
	volatile unsigned char *mem = malloc(sz);
	cr_assert_not_null((void *)mem);
	for (size_t i = 0; i < sz; i += 4096)
		mem[i] = 1;
	struct shmk_sample s = smp(ml);
	unsigned sum = mem[0] + mem[sz - 4096];
	free((void *)mem);
	cr_assert_eq(sum, 2);

	struct shmk_verdict vl = chk(ml, &s), vh = chk(mh, &s);
	cr_assert_geq(vl.rss_delta, (int64_t)(60 * MiB), "delta %" PRId64,
		      vl.rss_delta);
	cr_assert_eq(vl.rss_leak, 1, "%s", vl.reason);
	cr_assert(has(vl.reason, "rss: +"), "%s", vl.reason);
	cr_assert_eq(vh.rss_delta, vl.rss_delta);
	cr_assert_eq(vh.rss_leak, 0, "1 GiB threshold: %s", vh.reason);
	shmk_monitor_destroy(ml);
	shmk_monitor_destroy(mh);
}

Test(monitor, a_thread_left_running_is_a_thread_leak)
{
	shmk_monitor *m = mon(NULL);
	struct parked t;

	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0);
	park_start(&t);
	struct shmk_sample s = smp(m);
	park_end(&t);
	struct shmk_verdict v = chk(m, &s);
	cr_assert_eq(v.thread_leak, 1);
	cr_assert_eq(v.thread_delta, 1);
	cr_assert_eq(v.leak, 1);
	cr_assert(has(v.reason, "threads: +1"), "%s", v.reason);

	struct shmk_sample b;
	cr_assert_eq(shmk_monitor_baseline(m, &b), 0);
	s = settle_threads(m, b.threads);
	v = chk(m, &s);
	cr_assert_eq(v.thread_leak, 0, "after join: %s", v.reason);
	cr_assert_eq(v.thread_delta, 0);
	shmk_monitor_destroy(m);
}

Test(monitor, an_unreaped_child_is_a_child_leak)
{
	shmk_monitor *m = mon(NULL);

	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0);
	pid_t z = zombie_child();
	struct shmk_sample s = smp(m);
	reap_child(z);
	struct shmk_verdict v = chk(m, &s);
	cr_assert_eq(v.child_leak, 1);
	cr_assert_eq(v.child_delta, 1);
	cr_assert_eq(v.zombies, 1);
	cr_assert_eq(v.leak, 1);
	cr_assert(has(v.reason, "children: +1") && has(v.reason, "1 zombie"),
		  "%s", v.reason);

	v = chk(m, NULL);
	cr_assert_eq(v.child_leak, 0, "after waitpid: %s", v.reason);
	cr_assert_eq(v.child_delta, 0);
	cr_assert_eq(v.zombies, 0);
	shmk_monitor_destroy(m);
}

Test(monitor, the_reason_names_every_leaking_resource_with_its_delta)
{
	struct shmk_monitor_options o = {.ns = T.ns};
	shmk_monitor *m = mon(&o);
	struct shmk_sample b = smp(m), s;
	char want[128];

	cr_assert_eq(shmk_monitor_set_baseline(m, &b), 0);
	s = b;
	s.fds += 3;
	s.threads += 2;
	s.ns_segments += 4;
	s.ns_bytes += 40960;
	struct shmk_verdict v = chk(m, &s);
	cr_assert_eq(v.leak, 1);
	cr_assert(has(v.reason, "fd: +3"), "%s", v.reason);
	cr_assert(has(v.reason, "threads: +2"), "%s", v.reason);
	snprintf(want, sizeof want, "segments of %s: +4", T.ns);
	cr_assert(has(v.reason, want), "%s", v.reason);
	snprintf(want, sizeof want, "bytes of %s: +40960", T.ns);
	cr_assert(has(v.reason, want), "%s", v.reason);
	cr_assert_not(has(v.reason, "rss"), "%s", v.reason);
	cr_assert_not(has(v.reason, "children"), "%s", v.reason);
	cr_assert_not(has(v.reason, "no leak"), "%s", v.reason);
	shmk_monitor_destroy(m);
}

/* ---- tick ------------------------------------------------------------------ */

Test(monitor, tick_checks_on_every_nth_call)
{
	struct shmk_monitor_options o = {.check_every = 5};
	shmk_monitor *m = mon(&o);
	struct shmk_verdict v;

	cr_assert_eq(shmk_monitor_set_baseline(m, NULL), 0);
	for (int i = 1; i <= 4; i++)
		cr_assert_eq(shmk_monitor_tick(m, &v), 0, "tick %d", i);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	memset(&v, 0x5a, sizeof v);
	int rc = shmk_monitor_tick(m, &v);
	close(fd);
	cr_assert_eq(rc, 1, "the fifth tick checks");
	cr_assert_eq(v.fd_delta, 1);
	cr_assert_eq(v.fd_leak, 1);
	cr_assert_eq(v.leak, 1);
	cr_assert(has(v.reason, "fd: +1"), "%s", v.reason);

	for (int i = 6; i <= 9; i++)
		cr_assert_eq(shmk_monitor_tick(m, &v), 0, "tick %d", i);
	cr_assert_eq(shmk_monitor_tick(m, &v), 1, "the tenth tick checks");
	cr_assert_eq(v.fd_leak, 0, "%s", v.reason);
	cr_assert_str_eq(v.reason, "no leak");
	shmk_monitor_destroy(m);
}

/* ---- soft limits ------------------------------------------------------------ */

struct soft_log {
	shmk_ctx *ctx;
	const char *destroy; /* segment to destroy from the callback */
	int destroy_rc;
	int calls;
	char resource[4][16];
	uint64_t value[4], limit[4];
};

static void on_soft(const char *resource, uint64_t value, uint64_t limit,
		    void *arg)
{
	struct soft_log *l = arg;

	if (l->calls < 4) {
		snprintf(l->resource[l->calls], sizeof l->resource[0], "%s",
			 resource);
		l->value[l->calls] = value;
		l->limit[l->calls] = limit;
	}
	l->calls++;
	if (l->destroy) {
		l->destroy_rc = shmk_segment_destroy_name(l->ctx, l->destroy);
		l->destroy = NULL;
	}
}

Test(monitor, soft_ns_bytes_limit_calls_back_and_the_callback_may_clean_up)
{
	struct soft_log log = {.destroy_rc = 1};
	struct shmk_monitor_options o = {.ns = T.ns, .ns_bytes_soft = 10000,
					 .on_soft = on_soft, .arg = &log};
	shmk_ctx *c = topen();
	shmk_monitor *m = mon(&o);
	shmk_segment *a, *b;

	log.ctx = c;
	cr_assert_eq(shmk_monitor_attach(m, c), 0);
	/* 8192 <= 10000: silent. */
	cr_assert_eq(shmk_segment_create(c, "old", 8192, &a), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(log.calls, 0);
	shmk_segment_detach(a); /* still owned: destroyable by name */
	cr_assert(shm_exists("old"));

	/* 16384 > 10000: the create succeeds and the callback runs, outside
	 * the library's lock: it destroys "old" through the same ctx. */
	log.destroy = "old";
	cr_assert_eq(shmk_segment_create(c, "new", 8192, &b), 0, "%s",
		     shmk_last_error());
	cr_assert_not_null(b);
	cr_assert_eq(log.calls, 1);
	cr_assert_str_eq(log.resource[0], "ns_bytes");
	cr_assert_eq(log.value[0], 16384, "value %" PRIu64, log.value[0]);
	cr_assert_eq(log.limit[0], 10000);
	cr_assert_eq(log.destroy_rc, 0, "destroy from the callback: %d",
		     log.destroy_rc);
	cr_assert_not(shm_exists("old"));
	cr_assert(shm_exists("new"));
	cr_assert_eq(shmk_owned_count(c), 1);
	cr_assert_eq(smp(m).ns_bytes, 8192);

	cr_assert_eq(shmk_segment_destroy(b), 0);
	cr_assert_eq(shmk_monitor_attach(NULL, c), 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
}

Test(monitor, soft_rss_limit_calls_back_from_limits_and_from_create)
{
	struct soft_log log = {0};
	struct shmk_monitor_options o = {.ns = T.ns, .rss_soft = 500 * MiB,
					 .ns_bytes_soft = 1 * MiB,
					 .on_soft = on_soft, .arg = &log};
	shmk_monitor *m = mon(&o);
	struct shmk_sample s = smp(m);

	/* At or under the limits: nothing. */
	s.rss = 500 * MiB;
	s.ns_bytes = 1 * MiB;
	cr_assert_eq(shmk_monitor_limits(m, &s), 0);
	cr_assert_eq(log.calls, 0);

	s.rss = 500 * MiB + 1;
	cr_assert_eq(shmk_monitor_limits(m, &s), 1);
	cr_assert_eq(log.calls, 1);
	cr_assert_str_eq(log.resource[0], "rss");
	cr_assert_eq(log.value[0], 500 * MiB + 1);
	cr_assert_eq(log.limit[0], 500 * MiB);

	/* Both crossed: one call each. */
	s.ns_bytes = 2 * MiB;
	cr_assert_eq(shmk_monitor_limits(m, &s), 1);
	cr_assert_eq(log.calls, 3);
	cr_assert_str_eq(log.resource[1], "ns_bytes");
	cr_assert_eq(log.value[1], 2 * MiB);
	cr_assert_eq(log.limit[1], 1 * MiB);
	cr_assert_str_eq(log.resource[2], "rss");
	shmk_monitor_destroy(m);

	/* Through segment creation: a soft RSS limit below the real RSS. */
	struct soft_log log2 = {0};
	struct shmk_monitor_options o2 = {.rss_soft = 1, .on_soft = on_soft,
					  .arg = &log2};
	shmk_ctx *c = topen();
	shmk_segment *seg;
	m = mon(&o2);
	struct shmk_sample real = smp(m);
	cr_assert_eq(shmk_monitor_limits(m, &real), 1);
	cr_assert_eq(log2.calls, 1);
	cr_assert_eq(log2.value[0], real.rss);
	log2.calls = 0;
	cr_assert_eq(shmk_monitor_attach(m, c), 0);
	cr_assert_eq(shmk_segment_create(c, "s", 4096, &seg), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(log2.calls, 1);
	cr_assert_str_eq(log2.resource[0], "rss");
	cr_assert_gt(log2.value[0], 1);
	cr_assert_eq(log2.limit[0], 1);
	cr_assert_eq(shmk_segment_destroy(seg), 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
}

Test(monitor, limits_without_a_callback_still_report_the_crossing)
{
	struct shmk_monitor_options o = {.rss_soft = 1};
	shmk_monitor *m = mon(&o);
	struct shmk_sample s = smp(m);

	cr_assert_eq(shmk_monitor_limits(m, &s), 1);
	s.rss = 1;
	cr_assert_eq(shmk_monitor_limits(m, &s), 0);
	shmk_monitor_destroy(m);
}

/* ---- hard limits ------------------------------------------------------------ */

Test(monitor, hard_ns_bytes_limit_refuses_a_create_before_allocating)
{
	struct shmk_monitor_options o = {.ns_bytes_hard = 16384};
	shmk_ctx *c = topen();
	shmk_monitor *m = mon(&o);
	shmk_segment *a, *b, *x = NULL;

	cr_assert_eq(shmk_monitor_attach(m, c), 0);
	cr_assert_eq(shmk_segment_create(c, "a", 8192, &a), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "b", 8192, &b), 0, "at the limit: %s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "c", 4096, &x), -EDQUOT);
	cr_assert_null(x);
	cr_assert(has(shmk_last_error(), "hard limit") &&
			  has(shmk_last_error(), "16384"),
		  "%s", shmk_last_error());
	cr_assert_not(shm_exists("c"), "refused, yet allocated");
	cr_assert_eq(shm_count(), 2);
	cr_assert_eq(shmk_owned_count(c), 2);

	/* Under the limit again, creation works. */
	cr_assert_eq(shmk_segment_destroy(b), 0);
	cr_assert_eq(shmk_segment_create(c, "c", 4096, &x), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(x), 0);

	/* Detached, the limit is gone. */
	cr_assert_eq(shmk_monitor_attach(NULL, c), 0);
	cr_assert_eq(shmk_segment_create(c, "big", 65536, &x), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(x), 0);
	cr_assert_eq(shmk_segment_destroy(a), 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
}

Test(monitor, hard_rss_limit_below_the_current_rss_refuses_with_enomem)
{
	struct shmk_monitor_options low = {.rss_hard = 1};
	struct shmk_monitor_options high = {.rss_hard = 1ull << 50};
	shmk_ctx *c = topen();
	shmk_monitor *ml = mon(&low), *mh = mon(&high);
	shmk_segment *x = NULL;

	cr_assert_eq(shmk_monitor_attach(ml, c), 0);
	cr_assert_eq(shmk_segment_create(c, "r", 4096, &x), -ENOMEM);
	cr_assert_null(x);
	cr_assert(has(shmk_last_error(), "RSS") &&
			  has(shmk_last_error(), "hard limit"),
		  "%s", shmk_last_error());
	cr_assert_not(shm_exists("r"));
	cr_assert_eq(shmk_owned_count(c), 0);

	/* A limit above the RSS lets it through. */
	cr_assert_eq(shmk_monitor_attach(mh, c), 0);
	cr_assert_eq(shmk_segment_create(c, "r", 4096, &x), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(x), 0);

	/* Back to the low limit, then detached. */
	cr_assert_eq(shmk_monitor_attach(ml, c), 0);
	cr_assert_eq(shmk_segment_create(c, "r", 4096, &x), -ENOMEM);
	cr_assert_eq(shmk_monitor_attach(NULL, c), 0);
	cr_assert_eq(shmk_segment_create(c, "r", 4096, &x), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(x), 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(ml);
	shmk_monitor_destroy(mh);
}

/* ---- snapshot format --------------------------------------------------------- */

static void assert_json_is_sample(const char *buf, const struct shmk_sample *s)
{
	cJSON *j = cJSON_Parse(buf);
	static const char *const keys[] = {"when_ms",  "pid",	   "fds",
					   "rss",      "threads",  "children",
					   "zombies",  "ns_segments", "ns_bytes",
					   "shm_free", "shm_total"};
	const double want[] = {(double)s->when_ms,  (double)s->pid,
			       (double)s->fds,	    (double)s->rss,
			       (double)s->threads,  (double)s->children,
			       (double)s->zombies,  (double)s->ns_segments,
			       (double)s->ns_bytes, (double)s->shm_free,
			       (double)s->shm_total};

	cr_assert_not_null(j, "not JSON: %s", buf);
	cr_assert(cJSON_IsObject(j));
	cr_assert_eq(cJSON_GetArraySize(j), 11, "fields: %s", buf);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		cJSON *f = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		cr_assert(cJSON_IsNumber(f), "%s missing in %s", keys[i], buf);
		cr_assert_eq(f->valuedouble, want[i], "%s: %f, want %f", keys[i],
			     f->valuedouble, want[i]);
	}
	cJSON_Delete(j);
}

Test(monitor, sample_json_is_one_line_with_every_field)
{
	struct shmk_monitor_options o = {.ns = T.ns};
	shmk_monitor *m = mon(&o);
	struct shmk_sample s = smp(m);
	char buf[1024];
	int n = shmk_sample_json(&s, buf, sizeof buf);

	cr_assert_gt(n, 0, "%d %s", n, shmk_last_error());
	cr_assert_eq((size_t)n, strlen(buf));
	cr_assert_null(strchr(buf, '\n'), "not one line: %s", buf);
	cr_assert_eq(buf[0], '{');
	cr_assert_eq(buf[n - 1], '}');
	assert_json_is_sample(buf, &s);

	/* Distinct values, so a swapped field would show. */
	struct shmk_sample d = {.when_ms = 1700000000123, .pid = 2, .fds = 3,
				.rss = 4ull << 40, .threads = 5, .children = 6,
				.zombies = 7, .ns_segments = 8,
				.ns_bytes = 9ull << 30, .shm_free = 10,
				.shm_total = 11ull << 33};
	n = shmk_sample_json(&d, buf, sizeof buf);
	cr_assert_gt(n, 0);
	assert_json_is_sample(buf, &d);
	shmk_monitor_destroy(m);
}

Test(monitor, sample_json_into_a_too_small_buffer_is_enobufs)
{
	struct shmk_sample s = {.when_ms = 1, .pid = 1, .fds = 1};
	char buf[512];
	int n = shmk_sample_json(&s, buf, sizeof buf);

	cr_assert_gt(n, 0);
	/* Exactly the length: no room for the terminating NUL. */
	cr_assert_eq(shmk_sample_json(&s, buf, (size_t)n), -ENOBUFS);
	cr_assert(has(shmk_last_error(), "buffer"), "%s", shmk_last_error());
	cr_assert_eq(shmk_sample_json(&s, buf, 8), -ENOBUFS);
	cr_assert_eq(shmk_sample_json(&s, buf, (size_t)n + 1), n);
}

/* ---- invalid arguments ----------------------------------------------------- */

Test(monitor, create_rejects_a_bad_namespace)
{
	static const char *const bad[] = {"", "a/b", "a.b", "sp ace", "..",
					  "x23456789012345678901234567890123",
					  NULL};
	static char not_null;
	shmk_monitor *m;

	for (int i = 0; bad[i]; i++) {
		struct shmk_monitor_options o = {.ns = bad[i]};
		m = (shmk_monitor *)(void *)&not_null;
		cr_assert_eq(shmk_monitor_create(&o, &m), -EINVAL,
			     "namespace \"%s\" accepted", bad[i]);
		cr_assert_null(m);
	}
	cr_assert_eq(shmk_monitor_create(NULL, NULL), -EINVAL);
}

Test(monitor, create_for_a_process_that_does_not_exist_names_its_proc_dir)
{
	/* No pid reaches pid_max. */
	char *txt = slurp("/proc/sys/kernel/pid_max", NULL);
	char want[64];
	shmk_monitor *m = NULL;

	cr_assert_not_null(txt);
	struct shmk_monitor_options o = {.pid = (pid_t)strtol(txt, NULL, 10)};
	free(txt);
	cr_assert_gt(o.pid, 0);
	int rc = shmk_monitor_create(&o, &m);
	cr_assert_eq(rc, -ENOENT, "rc %d", rc);
	cr_assert_null(m);
	snprintf(want, sizeof want, "/proc/%d", (int)o.pid);
	cr_assert(has(shmk_last_error(), want), "\"%s\" lacks %s",
		  shmk_last_error(), want);
}

Test(monitor, create_with_a_missing_shm_dir_names_it)
{
	char dir[PATH_MAX];
	shmk_monitor *m = NULL;

	snprintf(dir, sizeof dir, "%s/no-such-dir", T.dir);
	struct shmk_monitor_options o = {.shm_dir = dir};
	cr_assert_eq(shmk_monitor_create(&o, &m), -ENOENT);
	cr_assert_null(m);
	cr_assert(has(shmk_last_error(), dir), "%s", shmk_last_error());
}
