/* SPDX-License-Identifier: MIT */
/* test_pool.c - the worker pool: leasing under exhaustion, death
 * classification (exit code, signal, SIGKILL, real OOM kill), prompt
 * failure of a job whose worker dies, crash-loop quarantine, create/destroy
 * cycles that leave nothing behind, supervisor and service deaths, reinit
 * policies, shutdown with a job that never ends, the death report as JSON
 * and invalid use.
 *
 * Threads never call Criterion asserts: they store what they saw and the
 * main thread asserts after joining them.  Every test reaps every process
 * it starts, joins every thread, destroys its pool and closes its ctx. */
#include "helpers.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(pool, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

/* ---- the job function ---------------------------------------------------- */

/* The first HDR bytes of a slot hold the command; the rest is data. */
#define HDR 64
struct job {
	int op;
	int arg;
	_Atomic int started; /* set by long jobs once running */
	_Atomic int pid;     /* the worker that took the job  */
};

enum {
	OP_NONE = 0,  /* memory holds no command: EMPTY_RESULT      */
	OP_ECHO,      /* return arg                                  */
	OP_DOUBLE,    /* sleep 3 ms, return 2 * arg                  */
	OP_SLEEP,     /* started = 1, sleep arg ms, return arg       */
	OP_PID,       /* return getpid()                             */
	OP_EXIT,      /* exit(arg)                                   */
	OP_ABORT,     /* abort()                                     */
	OP_FILL_DIE,  /* fill the data with 0xAB, then SIGKILL self  */
	OP_COUNT,     /* return how many data bytes are non-zero     */
	OP_FOREVER,   /* ignore SIGTERM, started = 1, never return   */
	OP_OOM,       /* allocate and touch 256 MiB                  */
	OP_TERM_SLOW, /* on SIGTERM: 100 ms of cleanup, then a file  */
};
#define EMPTY_RESULT (-77)

/* Any job on a slot whose data starts with this crashes (crash loop). */
static const char POISON[] = "POISON:crash-me";

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static __attribute__((noreturn)) void die_abort(void)
{
	struct rlimit rl = {0, 0};

	setrlimit(RLIMIT_CORE, &rl); /* no core files from the tests */
	abort();
}

static int eat_memory(void)
{
	enum { CHUNK = 8 << 20, TOTAL = 256 << 20 };
	void *chunks[TOTAL / CHUNK];
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	size_t n = 0;

	/* Be the one the OOM killer picks, whatever else is in the cgroup. */
	if (fd >= 0) {
		if (write(fd, "1000", 4) < 0) {
		}
		close(fd);
	}
	for (; n < TOTAL / CHUNK; n++) {
		chunks[n] = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (chunks[n] == MAP_FAILED)
			break;
		memset(chunks[n], 1, CHUNK);
	}
	for (size_t k = 0; k < n; k++)
		munmap(chunks[k], CHUNK);
	return (int)n; /* survived: not what the test wants */
}

/* OP_TERM_SLOW: the file the worker's SIGTERM handler creates once its
 * 100 ms of cleanup are done (set before the pool is created). */
static char term_marker[PATH_MAX];

static void slow_term(int sig)
{
	struct timespec ts = {0, 100 * 1000000L};
	int fd;

	(void)sig;
	nanosleep(&ts, NULL);
	fd = open(term_marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	_exit(0);
}

static int job(void *mem, size_t size, void *arg)
{
	struct job *j = mem;
	unsigned char *data = (unsigned char *)mem + HDR;
	int n = 0;

	(void)arg;
	atomic_store(&j->pid, getpid());
	if (memcmp(data, POISON, sizeof POISON) == 0)
		die_abort();
	switch (j->op) {
	case OP_ECHO:
		return j->arg;
	case OP_DOUBLE:
		sleep_ms(3);
		return 2 * j->arg;
	case OP_SLEEP:
		atomic_store(&j->started, 1);
		sleep_ms((unsigned)j->arg);
		return j->arg;
	case OP_PID:
		return getpid();
	case OP_EXIT:
		exit(j->arg);
	case OP_ABORT:
		die_abort();
	case OP_FILL_DIE:
		memset(data, 0xAB, size - HDR);
		raise(SIGKILL);
		for (;;)
			pause();
	case OP_COUNT:
		for (size_t i = 0; i < size - HDR; i++)
			n += data[i] != 0;
		return n;
	case OP_FOREVER:
		signal(SIGTERM, SIG_IGN);
		atomic_store(&j->started, 1);
		for (;;)
			pause();
	case OP_OOM:
		return eat_memory();
	case OP_TERM_SLOW:
		signal(SIGTERM, slow_term);
		return 0;
	}
	return EMPTY_RESULT;
}

/* Under AddressSanitizer, exit() in a worker (a fork of this multi-threaded
 * test process) runs LeakSanitizer there, which cannot suspend the threads
 * it inherited the records of, may report false leaks and would then change
 * the exit code the test classifies.  Workers are not leak-checked. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	char comm[17] = "";

	prctl(PR_GET_NAME, comm);
	return strncmp(comm, "shmk-worker", 11) == 0;
}

/* ---- helpers ------------------------------------------------------------- */

static struct shmk_pool_options popts(unsigned workers, size_t slot_size)
{
	struct shmk_pool_options o = {
		.workers = workers,
		.slot_size = slot_size,
		.fn = job,
		.backoff_min_ms = 1,
		.backoff_max_ms = 4,
		.quarantine_deaths = 1000,
		.title = "shmk-test",
	};
	return o;
}

static shmk_pool *mkpool(shmk_ctx *c, const struct shmk_pool_options *o)
{
	shmk_pool *p = NULL;
	int rc = shmk_pool_create(c, o, &p);

	cr_assert_eq(rc, 0, "shmk_pool_create: %d %s", rc, shmk_last_error());
	cr_assert_not_null(p);
	return p;
}

static struct job *J(shmk_pool *p, unsigned slot)
{
	return shmk_pool_slot_mem(p, slot);
}

/* Writes a command into the slot (clearing the progress flags). */
static void cmd(shmk_pool *p, unsigned slot, int op, int arg)
{
	struct job *j = J(p, slot);

	atomic_store(&j->started, 0);
	atomic_store(&j->pid, 0);
	j->arg = arg;
	j->op = op;
}

static int lease_fail(shmk_pool *p)
{
	int s = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);

	cr_assert_geq(s, 0, "lease: %d %s", s, shmk_last_error());
	return s;
}

/* Gone, or a zombie nobody reaped yet. */
static bool pid_dead(pid_t pid)
{
	char path[64], buf[512], *rp;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return true;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X';
}

/* Reaps pid (a child, maybe through PR_SET_CHILD_SUBREAPER) within ms. */
static bool reap_within(pid_t pid, unsigned ms)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (now_ms() > end)
			return false;
		sleep_ms(2);
	}
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static int thread_count(void)
{
	char *s = slurp("/proc/self/status", NULL), *t;
	int n = -1;

	cr_assert_not_null(s);
	if ((t = strstr(s, "\nThreads:")))
		n = atoi(t + 9);
	free(s);
	return n;
}

/* Children of every thread of this process, from /proc/self/task/X/children. */
static int children_listed(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char p[300], *s;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "/proc/self/task/%s/children", e->d_name);
		if (!(s = slurp(p, NULL)))
			continue;
		for (char *t = strtok(s, " \n"); t; t = strtok(NULL, " \n"))
			n++;
		free(s);
	}
	closedir(d);
	return n;
}

static bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD &&
	       children_listed() == 0;
}

/* Kills the worker of a slot from outside once its job has started. */
struct killer {
	shmk_pool *p;
	unsigned slot;
	unsigned delay_ms;
	pid_t pid;       /* from shmk_pool_worker_pid() */
	pid_t job_pid;   /* as the job itself reported  */
	int64_t t_kill;
	bool done;
	pthread_t th;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	struct job *j = J(k->p, k->slot);
	int64_t end = now_ms() + 10000;

	while (!atomic_load(&j->started))
		if (now_ms() > end)
			return NULL;
		else
			usleep(200);
	if (k->delay_ms)
		sleep_ms(k->delay_ms);
	k->job_pid = atomic_load(&j->pid);
	k->pid = shmk_pool_worker_pid(k->p, k->slot);
	if (k->pid > 0) {
		k->t_kill = now_ms();
		k->done = kill(k->pid, SIGKILL) == 0;
	}
	return NULL;
}

static void killer_start(struct killer *k, shmk_pool *p, unsigned slot,
			 unsigned delay_ms)
{
	memset(k, 0, sizeof *k);
	k->p = p;
	k->slot = slot;
	k->delay_ms = delay_ms;
	cr_assert_eq(pthread_create(&k->th, NULL, killer_main, k), 0);
}

/* ---- 1. exhaustion ------------------------------------------------------- */

struct leaser {
	shmk_pool *p;
	pthread_barrier_t *start, *tried;
	enum shmk_lease_policy policy;
	unsigned timeout_ms;
	int id;
	int rc;        /* lease result                 */
	int run_rc;    /* for the WAIT case             */
	int result;
	int64_t waited;
};

/* Everybody leases at once; whoever got a slot holds it until everybody
 * has tried (the second barrier), then gives it back. */
static void *lease_and_hold(void *arg)
{
	struct leaser *l = arg;
	int64_t t0;

	pthread_barrier_wait(l->start);
	t0 = now_ms();
	l->rc = shmk_pool_lease(l->p, l->policy, l->timeout_ms);
	l->waited = now_ms() - t0;
	pthread_barrier_wait(l->tried);
	if (l->rc >= 0)
		shmk_pool_release(l->p, (unsigned)l->rc);
	return NULL;
}

static void exhaust(enum shmk_lease_policy policy, unsigned timeout_ms,
		    int want_err)
{
	enum { SLOTS = 31, THREADS = 40 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(SLOTS, 4096);
	shmk_pool *p = mkpool(c, &o);
	pthread_barrier_t start, tried;
	struct leaser l[THREADS];
	pthread_t th[THREADS];
	int ok = 0, err = 0, other = 0, other_rc = 0;
	bool seen[SLOTS] = {false}, dup = false;

	pthread_barrier_init(&start, NULL, THREADS);
	pthread_barrier_init(&tried, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		l[i] = (struct leaser){.p = p, .start = &start, .tried = &tried,
				       .policy = policy,
				       .timeout_ms = timeout_ms, .id = i};
		cr_assert_eq(pthread_create(&th[i], NULL, lease_and_hold, &l[i]),
			     0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&tried);
	for (int i = 0; i < THREADS; i++) {
		if (l[i].rc >= 0 && l[i].rc < SLOTS) {
			ok++;
			dup |= seen[l[i].rc];
			seen[l[i].rc] = true;
		} else if (l[i].rc == want_err) {
			err++;
			/* A deadline lease waits about its deadline. */
			if (policy == SHMK_LEASE_DEADLINE &&
			    (l[i].waited < (int64_t)timeout_ms - 20 ||
			     l[i].waited > (int64_t)timeout_ms + 3000))
				other++, other_rc = (int)l[i].waited;
		} else {
			other++;
			other_rc = l[i].rc;
		}
	}
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ok, SLOTS, "%d leases succeeded", ok);
	cr_assert_not(dup, "one slot was leased twice");
	cr_assert_eq(err, THREADS - SLOTS, "%d got %d", err, want_err);
	cr_assert_eq(other, 0, "unexpected result or wait: %d", other_rc);
}

Test(pool, fail_policy_leases_exactly_31_of_31_slots_to_40_threads_and_eagain_to_9)
{
	exhaust(SHMK_LEASE_FAIL, 0, -EAGAIN);
}

Test(pool, deadline_policy_leases_31_and_times_out_9_while_the_31_are_held)
{
	exhaust(SHMK_LEASE_DEADLINE, 200, -ETIMEDOUT);
}

static void *lease_run_release(void *arg)
{
	struct leaser *l = arg;
	int s;

	pthread_barrier_wait(l->start);
	l->rc = s = shmk_pool_lease(l->p, SHMK_LEASE_WAIT, 0);
	if (s < 0)
		return NULL;
	cmd(l->p, (unsigned)s, OP_DOUBLE, l->id);
	l->run_rc = shmk_pool_run(l->p, (unsigned)s, &l->result);
	shmk_pool_release(l->p, (unsigned)s);
	return NULL;
}

Test(pool, wait_policy_completes_60_jobs_of_60_threads_on_31_slots)
{
	enum { SLOTS = 31, THREADS = 60 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(SLOTS, 4096);
	shmk_pool *p = mkpool(c, &o);
	pthread_barrier_t start;
	struct leaser l[THREADS];
	pthread_t th[THREADS];
	int done = 0;

	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		l[i] = (struct leaser){.p = p, .start = &start, .id = i + 1,
				       .rc = -1, .run_rc = -1};
		cr_assert_eq(pthread_create(&th[i], NULL, lease_run_release,
					    &l[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
	for (int i = 0; i < THREADS; i++) {
		cr_expect(l[i].rc >= 0 && l[i].run_rc == 0 &&
				  l[i].result == 2 * l[i].id,
			  "thread %d: lease %d run %d result %d", i, l[i].rc,
			  l[i].run_rc, l[i].result);
		done += l[i].rc >= 0 && l[i].run_rc == 0 &&
			l[i].result == 2 * l[i].id;
	}
	cr_assert_eq(done, THREADS, "%d of %d jobs completed", done, THREADS);
}

/* ---- 2. classification --------------------------------------------------- */

Test(pool, classifies_exit_code_abort_and_outside_sigkill_20_times_each)
{
	enum { TRIALS = 20 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	/* KEEP: the command written after a death is never touched by the
	 * re-initialisation (that is tested on its own below). */
	o.reinit = SHMK_REINIT_KEEP;
	o.backoff_max_ms = 2;
	shmk_pool *p = mkpool(c, &o);
	unsigned s = (unsigned)lease_fail(p);
	int bad_exit = 0, bad_abort = 0, bad_kill = 0;
	char why[512] = "";

	for (int kind = 0; kind < 3; kind++) {
		for (int t = 0; t < TRIALS; t++) {
			struct shmk_death d;
			struct killer k;
			int rc, res = 0;
			pid_t job_pid;
			bool good;

			if (kind == 0)
				cmd(p, s, OP_EXIT, 3);
			else if (kind == 1)
				cmd(p, s, OP_ABORT, 0);
			else {
				cmd(p, s, OP_SLEEP, 5000);
				killer_start(&k, p, s, 0);
			}
			rc = shmk_pool_run(p, s, &res);
			if (kind == 2)
				pthread_join(k.th, NULL);
			job_pid = atomic_load(&J(p, s)->pid);
			shmk_pool_last_death(p, s, &d);
			good = rc == -ECHILD && d.pid == job_pid && d.pid > 0 &&
			       d.slot == s;
			switch (kind) {
			case 0:
				good = good && d.kind == SHMK_DEATH_EXIT_CODE &&
				       d.exit_code == 3 && d.signal == 0;
				bad_exit += !good;
				break;
			case 1:
				good = good && d.kind == SHMK_DEATH_SIGNAL &&
				       d.signal == SIGABRT;
				bad_abort += !good;
				break;
			default:
				good = good && k.done && k.pid == job_pid &&
				       d.kind == SHMK_DEATH_SIGKILL &&
				       d.signal == SIGKILL && d.oom_kills == 0;
				bad_kill += !good;
				break;
			}
			if (!good && !why[0])
				snprintf(why, sizeof why,
					 "kind %d trial %d: rc %d (%s) death %s "
					 "pid %d (job %d, killed %d) exit %d "
					 "signal %d oom_kills %" PRIu64,
					 kind, t, rc, shmk_last_error(),
					 shmk_death_kind_name(d.kind), (int)d.pid,
					 (int)job_pid, kind == 2 ? (int)k.pid : 0,
					 d.exit_code, d.signal, d.oom_kills);
		}
	}
	/* The slot still serves. */
	int res = 0, rc;
	cmd(p, s, OP_ECHO, 42);
	rc = shmk_pool_run(p, s, &res);
	unsigned deaths = shmk_pool_deaths(p);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(bad_exit + bad_abort + bad_kill, 0,
		     "misclassified: exit %d, abort %d, sigkill %d; first: %s",
		     bad_exit, bad_abort, bad_kill, why);
	cr_assert_eq(deaths, 3 * TRIALS);
	cr_assert_eq(rc, 0);
	cr_assert_eq(res, 42);
}

/* ---- 3. a real OOM kill -------------------------------------------------- */

#define OOM_LIMIT (64ull << 20)

struct cgroup {
	int v;                   /* 1 or 2 */
	char from[PATH_MAX];     /* the cgroup the test process came from */
	char dir[PATH_MAX];      /* the test's cgroup */
	char limit_file[PATH_MAX];
	char old_adj[16];
	bool made, moved;
};

static int put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* 0, or -errno: the library's reader of small files. */
static int get(const char *path, char *buf, size_t n)
{
	ssize_t r = shmk__read_small(AT_FDCWD, path, buf, n);

	return r < 0 ? (int)r : 0;
}

/* Mount point and root of the first mount of fstype (with option opt, if
 * given) in /proc/self/mountinfo. */
static bool find_mount(const char *fstype, const char *opt, char *mnt,
		       char *root)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f)) {
		char r[PATH_MAX], m[PATH_MAX], fs[64], opts[512] = "";
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %*s %511s", fs, opts) < 1)
			continue;
		if (strcmp(fs, fstype) != 0)
			continue;
		if (opt) {
			bool has = false;
			char *so;
			for (char *t = strtok_r(opts, ",", &so); t;
			     t = strtok_r(NULL, ",", &so))
				has |= strcmp(t, opt) == 0;
			if (!has)
				continue;
		}
		strcpy(mnt, m);
		strcpy(root, r);
		found = true;
	}
	fclose(f);
	return found;
}

/* This process's cgroup path for a v1 controller, or for v2 (ctrl NULL). */
static bool own_cgroup(const char *ctrl, char *path)
{
	char buf[4096];

	if (get("/proc/self/cgroup", buf, sizeof buf) < 0)
		return false;
	char *sl, *sc;

	for (char *l = strtok_r(buf, "\n", &sl); l; l = strtok_r(NULL, "\n", &sl)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		bool match = false;
		if (!ctrl)
			match = c1[1] == '\0';
		else
			for (char *t = strtok_r(c1 + 1, ",", &sc); t;
			     t = strtok_r(NULL, ",", &sc))
				match |= strcmp(t, ctrl) == 0;
		if (match) {
			strcpy(path, c2 + 1);
			return true;
		}
	}
	return false;
}

/* Removes test cgroups left in parent by test processes that died. */
static void sweep_stale(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		int pid;
		char p[PATH_MAX + 300];
		if (sscanf(e->d_name, "shmk-test-%d", &pid) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
		rmdir(p);
	}
	closedir(d);
}

static void cg_leave(struct cgroup *g)
{
	char p[PATH_MAX + 32], pid[32];

	snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (g->moved) {
		snprintf(p, sizeof p, "%s/cgroup.procs", g->from);
		if (put(p, pid) == 0)
			g->moved = false;
	}
	if (g->made && !g->moved && rmdir(g->dir) == 0)
		g->made = false;
	if (g->old_adj[0])
		put("/proc/self/oom_score_adj", g->old_adj);
}

/* Creates a memory cgroup with OOM_LIMIT and moves this process into it.
 * false with the reason in why if the machine does not allow it. */
static bool cg_enter(struct cgroup *g, char *why, size_t n)
{
	char mnt[PATH_MAX], root[PATH_MAX], own[PATH_MAX], p[PATH_MAX + 64];
	char buf[256], pid[32];
	const char *rel;
	int rc;

	memset(g, 0, sizeof *g);
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (geteuid() != 0) {
		snprintf(why, n, "not root: cannot create a memory cgroup");
		return false;
	}
	if (find_mount("cgroup", "memory", mnt, root) &&
	    own_cgroup("memory", own)) {
		/* v1: a child of our own memory cgroup, so that every limit
		 * above us still holds. */
		g->v = 1;
		rel = strncmp(own, root, strlen(root)) == 0 && strcmp(root, "/")
			      ? own + strlen(root)
			      : own;
		snprintf(g->from, sizeof g->from, "%s%s", mnt,
			 strcmp(rel, "/") ? rel : "");
		snprintf(g->limit_file, sizeof g->limit_file,
			 "%s/shmk-test-%s/memory.limit_in_bytes", g->from, pid);
	} else if (find_mount("cgroup2", NULL, mnt, root) &&
		   own_cgroup(NULL, own)) {
		/* v2: processes live only in leaves, so a new cgroup right
		 * under the root, where the memory controller is enabled. */
		g->v = 2;
		snprintf(p, sizeof p, "%s/cgroup.controllers", mnt);
		if (get(p, buf, sizeof buf) < 0 || !strstr(buf, "memory")) {
			snprintf(why, n, "no v1 memory controller and the v2 "
					 "hierarchy at %s has no memory "
					 "controller", mnt);
			return false;
		}
		snprintf(p, sizeof p, "%s/cgroup.subtree_control", mnt);
		if ((rc = put(p, "+memory")) < 0) {
			snprintf(why, n, "cannot enable memory in %s: %s", p,
				 strerror(-rc));
			return false;
		}
		snprintf(g->from, sizeof g->from, "%s%s", mnt,
			 strcmp(own, "/") ? own : "");
		snprintf(g->limit_file, sizeof g->limit_file,
			 "%s/shmk-test-%s/memory.max", mnt, pid);
	} else {
		snprintf(why, n, "neither a v1 memory cgroup nor a v2 hierarchy "
				 "is mounted");
		return false;
	}
	snprintf(g->dir, sizeof g->dir, "%.*s",
		 (int)(strrchr(g->limit_file, '/') - g->limit_file),
		 g->limit_file);
	snprintf(p, sizeof p, "%.*s", (int)(strrchr(g->dir, '/') - g->dir),
		 g->dir);
	sweep_stale(p);
	if (mkdir(g->dir, 0755) < 0) {
		snprintf(why, n, "mkdir %s: %s", g->dir, strerror(errno));
		return false;
	}
	g->made = true;
	snprintf(buf, sizeof buf, "%llu", OOM_LIMIT);
	if ((rc = put(g->limit_file, buf)) < 0) {
		snprintf(why, n, "%s: %s", g->limit_file, strerror(-rc));
		cg_leave(g);
		return false;
	}
	snprintf(p, sizeof p, "%s/%s", g->dir,
		 g->v == 1 ? "memory.swappiness" : "memory.swap.max");
	put(p, "0"); /* optional */
	if (g->v == 1) { /* the OOM killer on, whatever the parent says */
		snprintf(p, sizeof p, "%s/memory.oom_control", g->dir);
		put(p, "0");
	}
	/* The test process itself must never be the OOM victim; the job
	 * raises its own score to the maximum. */
	if (get("/proc/self/oom_score_adj", g->old_adj, sizeof g->old_adj) == 0) {
		g->old_adj[strcspn(g->old_adj, "\n")] = '\0';
		put("/proc/self/oom_score_adj", "-1000");
	}
	snprintf(p, sizeof p, "%s/cgroup.procs", g->dir);
	if ((rc = put(p, pid)) < 0) {
		snprintf(why, n, "cannot move into %s: %s", g->dir,
			 strerror(-rc));
		cg_leave(g);
		return false;
	}
	g->moved = true;
	return true;
}

Test(pool, classifies_a_real_oom_kill_and_a_sigkill_in_the_same_cgroup_apart)
{
	enum { TRIALS = 3 };
	struct cgroup g;
	char why[PATH_MAX + 128], limit_txt[64] = "";
	struct shmk_options so = topts();
	struct shmk_death d[TRIALS], dk;
	struct killer k = {0};
	int rc[TRIALS], res[TRIALS], rck = 0, rc_open, rc_create = 0, s = -1;
	shmk_ctx *c = NULL;
	shmk_pool *p = NULL;

	if (!cg_enter(&g, why, sizeof why)) {
		fprintf(stderr, "pool OOM test skipped: %s\n", why);
		cr_skip_test("no memory cgroup: %s", why);
	}
	/* No asserts until the process is out of the cgroup again. */
	get(g.limit_file, limit_txt, sizeof limit_txt);
	memset(d, 0, sizeof d);
	memset(&dk, 0, sizeof dk);
	memset(rc, 0, sizeof rc);
	rc_open = shmk_open(&so, &c);
	if (rc_open == 0) {
		/* Created inside the cgroup: supervisor and workers inherit it. */
		struct shmk_pool_options o = popts(1, 4096);
		o.reinit = SHMK_REINIT_KEEP;
		rc_create = shmk_pool_create(c, &o, &p);
	}
	if (p && (s = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0)) >= 0) {
		for (int t = 0; t < TRIALS; t++) {
			cmd(p, (unsigned)s, OP_OOM, 0);
			rc[t] = shmk_pool_run(p, (unsigned)s, &res[t]);
			shmk_pool_last_death(p, (unsigned)s, &d[t]);
		}
		/* A plain SIGKILL in the same cgroup is no OOM kill. */
		cmd(p, (unsigned)s, OP_SLEEP, 5000);
		memset(&k, 0, sizeof k);
		k.p = p;
		k.slot = (unsigned)s;
		if (pthread_create(&k.th, NULL, killer_main, &k) == 0) {
			rck = shmk_pool_run(p, (unsigned)s, NULL);
			pthread_join(k.th, NULL);
		}
		shmk_pool_last_death(p, (unsigned)s, &dk);
		shmk_pool_release(p, (unsigned)s);
	}
	int rc_destroy = shmk_pool_destroy(p);
	int rc_close = shmk_close(c);
	cg_leave(&g);

	cr_assert_not(g.moved, "could not move back to %s", g.from);
	cr_assert_not(g.made, "could not remove %s", g.dir);
	cr_assert_eq(rc_open, 0);
	cr_assert_eq(rc_create, 0);
	cr_assert_geq(s, 0);
	uint64_t limit = strtoull(limit_txt, NULL, 10);
	cr_assert_eq(limit, OOM_LIMIT, "limit file says %s", limit_txt);
	for (int t = 0; t < TRIALS; t++) {
		cr_log_info(
			"OOM trial %d (cgroup v%d): kind %s oom_kills %" PRIu64
			" peak_rss %" PRIu64 " limit %" PRIu64 " (%s) suggested %" PRIu64,
			t, g.v, shmk_death_kind_name(d[t].kind), d[t].oom_kills,
			d[t].peak_rss, d[t].mem_limit, d[t].limit_source,
			d[t].suggested_limit);
		cr_assert_eq(rc[t], -ECHILD, "trial %d: run %d (job returned "
			     "%d: survived)", t, rc[t], res[t]);
		cr_assert_eq(d[t].kind, SHMK_DEATH_OOM, "trial %d: %s", t,
			     shmk_death_kind_name(d[t].kind));
		cr_assert_eq(d[t].signal, SIGKILL);
		cr_assert_geq(d[t].oom_kills, 1);
		cr_assert_str_eq(d[t].oom_source, g.v == 1
			? "cgroup1 memory.oom_control" : "cgroup2 memory.events");
		cr_assert_eq(d[t].mem_limit, OOM_LIMIT);
		cr_assert_str_eq(d[t].limit_source, g.v == 1
			? "cgroup1 memory.limit_in_bytes" : "cgroup2 memory.max");
		cr_assert_gt(d[t].peak_rss, 0);
		/* As classify() decides: 150 % of the limit when the peak
		 * reached 95 % of it, else nothing. */
		if (d[t].peak_rss * 100 >= d[t].mem_limit * 95)
			cr_assert_eq(d[t].suggested_limit, OOM_LIMIT * 3 / 2);
		else
			cr_assert_eq(d[t].suggested_limit, 0);
	}
	cr_assert_eq(rck, -ECHILD);
	cr_assert(k.done, "the killer did not kill");
	cr_assert_eq(dk.kind, SHMK_DEATH_SIGKILL, "plain SIGKILL taken for %s",
		     shmk_death_kind_name(dk.kind));
	cr_assert_eq(dk.oom_kills, 0);
	cr_assert_eq(dk.pid, k.pid);
	cr_assert_eq(dk.mem_limit, OOM_LIMIT);
	cr_assert_eq(rc_destroy, 0);
	cr_assert_eq(rc_close, 0);
}

/* ---- 4. a job in flight ---------------------------------------------------- */

Test(pool, a_job_whose_worker_is_sigkilled_fails_at_once_and_the_slot_serves_on)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p = mkpool(c, &o);
	unsigned s = (unsigned)lease_fail(p);
	pid_t before = shmk_pool_worker_pid(p, s);
	struct shmk_death d;
	struct killer k;
	int rc, res = 0;
	int64_t t0, t1;

	cr_assert_gt(before, 0);
	cmd(p, s, OP_SLEEP, 5000);
	killer_start(&k, p, s, 50);
	t0 = now_ms();
	rc = shmk_pool_run(p, s, &res);
	t1 = now_ms();
	pthread_join(k.th, NULL);
	cr_assert(k.done, "the killer did not kill");
	cr_assert_eq(rc, -ECHILD, "run: %d %s", rc, shmk_last_error());
	cr_assert_lt(t1 - k.t_kill, 1000, "run returned %" PRId64 " ms after "
		     "the kill", t1 - k.t_kill);
	cr_assert_lt(t1 - t0, 2500, "run took %" PRId64 " ms", t1 - t0);
	cr_assert_eq(k.pid, before);
	shmk_pool_last_death(p, s, &d);
	cr_assert_eq(d.kind, SHMK_DEATH_SIGKILL);
	cr_assert_eq(d.pid, before);

	/* Same lease, next job: runs on the replacement. */
	cmd(p, s, OP_PID, 0);
	rc = shmk_pool_run(p, s, &res);
	cr_assert_eq(rc, 0, "run: %d %s", rc, shmk_last_error());
	cr_assert_gt(res, 0);
	cr_assert_neq(res, before, "the job ran on the dead worker's pid");
	cr_assert_eq(res, shmk_pool_worker_pid(p, s));
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
}

/* Regression: the slot's memory is re-initialised before the caller of the
 * failed job wakes, so what it writes right after -ECHILD (the next job's
 * input) is never wiped by the re-initialisation. */
Test(pool, input_written_right_after_a_death_reaches_the_next_job)
{
	enum { TRIALS = 20 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4u << 20);
	shmk_pool *p = mkpool(c, &o);
	unsigned s = (unsigned)lease_fail(p);
	int bad = 0, first_rc = 0, first_res = 0;

	for (int t = 0; t < TRIALS; t++) {
		int rc, res = 0;
		cmd(p, s, OP_FILL_DIE, 0);
		rc = shmk_pool_run(p, s, NULL);
		cmd(p, s, OP_ECHO, 1000 + t); /* at once, no waiting */
		if (rc == -ECHILD)
			rc = shmk_pool_run(p, s, &res);
		else
			rc = -1000 + rc;
		if (rc != 0 || res != 1000 + t) {
			if (!bad++)
				first_rc = rc, first_res = res;
		}
	}
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(bad, 0, "%d of %d next jobs lost their input (first: run "
		     "%d, result %d; %d means the memory was zeroed after the "
		     "caller wrote it)", bad, TRIALS, first_rc, first_res,
		     EMPTY_RESULT);
}

/* ---- 5. crash loop ------------------------------------------------------- */

Test(pool, a_crash_looping_slot_is_quarantined_after_3_deaths_while_the_others_serve)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(3, 4096);
	o.quarantine_deaths = 3;
	o.quarantine_window_ms = 10000;
	o.reinit = SHMK_REINIT_KEEP; /* the poison stays: a real crash loop */
	shmk_pool *p = mkpool(c, &o);
	unsigned a = (unsigned)lease_fail(p), b = (unsigned)lease_fail(p),
		 x = (unsigned)lease_fail(p);
	unsigned others[2] = {b, x};
	struct shmk_death d;
	int rc, res;

	memcpy((char *)shmk_pool_slot_mem(p, a) + HDR, POISON, sizeof POISON);
	for (int death = 1; death <= 3; death++) {
		cmd(p, a, OP_ECHO, 7);
		rc = shmk_pool_run(p, a, &res);
		cr_assert_eq(rc, -ECHILD, "death %d: run %d", death, rc);
		shmk_pool_last_death(p, a, &d);
		cr_assert_eq(d.kind, SHMK_DEATH_SIGNAL);
		cr_assert_eq(d.signal, SIGABRT);
		cr_assert_eq(d.deaths_in_window, (unsigned)death);
		cr_assert_eq(d.quarantined, death == 3, "death %d", death);
		cr_assert_eq(shmk_pool_slot_quarantined(p, a), death == 3);
		for (int i = 0; i < 2; i++) {
			res = 0;
			cmd(p, others[i], OP_ECHO, 100 * death + i);
			cr_assert_eq(shmk_pool_run(p, others[i], &res), 0);
			cr_assert_eq(res, 100 * death + i);
		}
	}
	cr_assert_eq(shmk_pool_run(p, a, &res), -ENODEV);
	cr_assert_eq(shmk_pool_worker_pid(p, a), 0);
	cr_assert_eq(shmk_pool_deaths(p), 3);
	for (int k = 0; k < 5; k++)
		for (int i = 0; i < 2; i++) {
			res = 0;
			cmd(p, others[i], OP_ECHO, 1000 + k);
			cr_assert_eq(shmk_pool_run(p, others[i], &res), 0);
			cr_assert_eq(res, 1000 + k);
		}
	/* Leasing never hands out the quarantined slot again. */
	for (unsigned i = 0; i < 3; i++)
		shmk_pool_release(p, i);
	int l1 = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0),
	    l2 = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0),
	    l3 = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);
	cr_assert(l1 >= 0 && l2 >= 0 && l1 != (int)a && l2 != (int)a && l1 != l2,
		  "leases %d %d (quarantined %u)", l1, l2, a);
	cr_assert_eq(l3, -EAGAIN);
	cmd(p, (unsigned)l1, OP_ECHO, 5);
	cr_assert_eq(shmk_pool_run(p, (unsigned)l1, &res), 0);
	cr_assert_eq(res, 5);
	shmk_pool_release(p, (unsigned)l1);
	shmk_pool_release(p, (unsigned)l2);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
}

/* ---- 6. create/destroy cycles -------------------------------------------- */

Test(pool, fifty_create_destroy_cycles_leave_no_fd_thread_child_segment_or_file)
{
	enum { CYCLES = 50 };
	shmk_ctx *c = topen();
	shmk_segment *warm;
	int fds0, thr0;
	size_t shm0, files0;

	/* The process's record and lock file exist from the first segment
	 * on: make them exist before the baseline. */
	cr_assert_eq(shmk_segment_create(c, "warm", 4096, &warm), 0);
	fds0 = fd_count();
	thr0 = thread_count();
	shm0 = shm_count();
	files0 = ns_files(NULL);
	cr_assert(no_children());
	for (int i = 0; i < CYCLES; i++) {
		struct shmk_pool_options o = popts(3, 64 << 10);
		shmk_pool *p = mkpool(c, &o);
		int s = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0), res = 0;
		cr_assert_geq(s, 0);
		cmd(p, (unsigned)s, OP_ECHO, i);
		cr_assert_eq(shmk_pool_run(p, (unsigned)s, &res), 0);
		cr_assert_eq(res, i);
		shmk_pool_release(p, (unsigned)s);
		cr_assert_eq(shmk_pool_destroy(p), 0, "cycle %d: %s", i,
			     shmk_last_error());
		cr_assert_eq(fd_count(), fds0, "cycle %d: fds", i);
		cr_assert_eq(thread_count(), thr0, "cycle %d: threads", i);
		cr_assert(no_children(), "cycle %d: a child is left", i);
		cr_assert_eq(shm_count(), shm0, "cycle %d: segments", i);
		cr_assert_eq(ns_files(NULL), files0, "cycle %d: registry files",
			     i);
	}
	cr_assert_eq(shmk_segment_destroy(warm), 0);
	cr_assert_eq(shmk_close(c), 0);
}

/* ---- 7. supervisor SIGKILLed ------------------------------------------- */

struct caller {
	shmk_pool *p;
	unsigned slot;
	int rc;
	int64_t t_end;
	pthread_t th;
};

static void *caller_main(void *arg)
{
	struct caller *cl = arg;
	int res;

	cl->rc = shmk_pool_run(cl->p, cl->slot, &res);
	cl->t_end = now_ms();
	return NULL;
}

static void wait_started(shmk_pool *p, unsigned slot)
{
	int64_t end = now_ms() + 10000;

	while (!atomic_load(&J(p, slot)->started) && now_ms() < end)
		usleep(200);
	cr_assert(atomic_load(&J(p, slot)->started), "the job never started");
}

/* The spawner (shmk_pool_supervisor_pid()) is not on the job path: a job
 * under way when it is SIGKILLed finishes on its worker.  Without it no
 * worker could be replaced, so the pool stops at the next call: leases and
 * runs fail, every worker is SIGKILLed, destroy is quick. */
Test(pool, a_sigkilled_spawner_stops_the_pool_at_the_next_call_and_takes_the_workers)
{
	shmk_ctx *c;
	struct shmk_pool_options o = popts(3, 4096);
	shmk_pool *p;
	struct caller cl = {0};
	pid_t w[3], sup;
	bool reaped[3];
	int rc;

	c = topen();
	p = mkpool(c, &o);
	sup = shmk_pool_supervisor_pid(p);
	cr_assert_gt(sup, 0);
	for (unsigned i = 0; i < 3; i++) {
		w[i] = shmk_pool_worker_pid(p, i);
		cr_assert_gt(w[i], 0);
	}
	cl.p = p;
	cl.slot = (unsigned)lease_fail(p);
	cmd(p, cl.slot, OP_SLEEP, 300);
	cr_assert_eq(pthread_create(&cl.th, NULL, caller_main, &cl), 0);
	wait_started(p, cl.slot);
	cr_assert_eq(kill(sup, SIGKILL), 0);
	pthread_join(cl.th, NULL);
	cr_assert_eq(cl.rc, 0, "the job under way: %d", cl.rc);
	rc = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);
	for (unsigned i = 0; i < 3; i++)
		reaped[i] = reap_within(w[i], 1000);
	cr_assert_eq(rc, -ESHUTDOWN, "lease after the spawner died: %d", rc);
	for (unsigned i = 0; i < 3; i++)
		cr_assert(reaped[i], "worker %d outlived the pool's stop by 1 s",
			  (int)w[i]);
	cr_assert_eq(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0), -ESHUTDOWN);
	cr_assert_eq(shmk_pool_lease(p, SHMK_LEASE_WAIT, 0), -ESHUTDOWN);
	cr_assert_eq(shmk_pool_lease(p, SHMK_LEASE_DEADLINE, 100), -ESHUTDOWN);
	cr_assert_eq(shmk_pool_run(p, cl.slot, NULL), -ESHUTDOWN);
	shmk_pool_release(p, cl.slot);
	int64_t t0 = now_ms();
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_lt(now_ms() - t0, 2000, "destroy took %" PRId64 " ms",
		     now_ms() - t0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(shm_count(), 0);
	cr_assert(no_children());
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* ---- 8. the whole service SIGKILLed ------------------------------------ */

static int service(int wfd)
{
	struct shmk_options so = topts();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_ctx *c;
	shmk_pool *p;
	pid_t pids[3];

	so.flags = SHMK_OPEN_NO_REAP;
	if (shmk_open(&so, &c) != 0 || shmk_pool_create(c, &o, &p) != 0)
		return 1;
	pids[0] = shmk_pool_supervisor_pid(p);
	pids[1] = shmk_pool_worker_pid(p, 0);
	pids[2] = shmk_pool_worker_pid(p, 1);
	if (write(wfd, pids, sizeof pids) != (ssize_t)sizeof pids)
		return 2;
	for (;;)
		pause();
}

Test(pool, a_sigkilled_service_leaves_segments_the_next_open_reaps_and_no_process)
{
	int pfd[2];
	pid_t child, pids[3] = {0, 0, 0};
	ssize_t got = 0;
	size_t during;
	bool gone[3] = {false, false, false};

	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		close(pfd[0]);
		_exit(service(pfd[1]));
	}
	close(pfd[1]);
	struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
	if (poll(&pf, 1, 20000) == 1)
		got = read(pfd[0], pids, sizeof pids);
	close(pfd[0]);
	during = shm_count();
	kill(child, SIGKILL);
	int st = reap_child(child);

	/* The supervisor sees its service gone, kills and reaps its workers
	 * and exits; it is our child now (subreaper) and we reap it. */
	int64_t end = now_ms() + 3000;
	while (now_ms() < end) {
		for (int i = 0; i < 3; i++)
			if (pids[i] > 0 && !gone[i])
				gone[i] = (waitpid(pids[i], NULL, WNOHANG) ==
					   pids[i]) ||
					  pid_dead(pids[i]);
		if (gone[0] && gone[1] && gone[2])
			break;
		sleep_ms(5);
	}
	/* Whatever else was orphaned to us. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	prctl(PR_SET_CHILD_SUBREAPER, 0);

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		  "service child status %x", st);
	cr_assert_eq(got, (ssize_t)sizeof pids, "the service did not start");
	cr_assert_eq(during, 3, "pool segments while alive: %zu", during);
	for (int i = 0; i < 3; i++)
		cr_assert(gone[i], "%s %d outlived the service",
			  i ? "worker" : "supervisor", (int)pids[i]);
	cr_assert(no_children());
	cr_assert_eq(shm_count(), 3, "segments before the reap");

	shmk_ctx *c = topen(); /* reaps the dead service's segments */
	cr_assert_eq(shm_count(), 0, "the next open left %zu segments",
		     shm_count());
	cr_assert_eq(shmk_close(c), 0);
}

/* ---- 9. reinit policies ------------------------------------------------- */

static void after_death(enum shmk_reinit policy, bool expect_kept)
{
	enum { SIZE = 64 << 10 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, SIZE);
	shmk_pool *p;
	unsigned s;
	const unsigned char *data;
	size_t ab = 0, zero = 0, hdr_nonzero = 0;
	int rc, res = -1;

	o.reinit = policy;
	p = mkpool(c, &o);
	s = (unsigned)lease_fail(p);
	cmd(p, s, OP_FILL_DIE, 0);
	cr_assert_eq(shmk_pool_run(p, s, NULL), -ECHILD);
	/* The replacement is started after the re-initialisation. */
	int64_t end = now_ms() + 5000;
	while (!shmk_pool_worker_pid(p, s) && now_ms() < end)
		sleep_ms(1);
	cr_assert_gt(shmk_pool_worker_pid(p, s), 0, "no replacement");
	data = (const unsigned char *)shmk_pool_slot_mem(p, s);
	for (size_t i = 0; i < HDR; i++)
		hdr_nonzero += data[i] != 0;
	for (size_t i = HDR; i < SIZE; i++) {
		ab += data[i] == 0xAB;
		zero += data[i] == 0;
	}
	if (expect_kept) {
		cr_assert_eq(ab, SIZE - HDR, "only %zu bytes kept", ab);
		cr_assert_eq(J(p, s)->op, OP_FILL_DIE, "header not kept");
	} else {
		cr_assert_eq(zero, SIZE - HDR, "%zu bytes not zero", SIZE - HDR - zero);
		cr_assert_eq(hdr_nonzero, 0, "header not zeroed");
	}
	/* The next job sees the same memory. */
	cmd(p, s, OP_COUNT, 0);
	rc = shmk_pool_run(p, s, &res);
	cr_assert_eq(rc, 0);
	cr_assert_eq(res, expect_kept ? SIZE - HDR : 0);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
}

Test(pool, reinit_zero_zeroes_the_slot_after_a_death)
{
	after_death(SHMK_REINIT_ZERO, false);
}

Test(pool, reinit_keep_keeps_what_the_dead_worker_wrote)
{
	after_death(SHMK_REINIT_KEEP, true);
}

Test(pool, reinit_recreate_leaves_fresh_zero_filled_memory)
{
	after_death(SHMK_REINIT_RECREATE, false);
}

/* ---- 10. shutdown with a job that never ends ----------------------------- */

Test(pool, destroy_ends_a_job_that_never_ends_within_the_grace_and_fails_its_caller)
{
	enum { GRACE = 300 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p;
	struct caller cl = {0};
	pthread_attr_t attr;
	struct sched_param sp = {.sched_priority = 1};
	int64_t t0, took;
	int rc;

	o.shutdown_grace_ms = GRACE;
	p = mkpool(c, &o);
	cl.p = p;
	cl.slot = (unsigned)lease_fail(p);
	cmd(p, cl.slot, OP_FOREVER, 0);
	/* shmk_pool_destroy() frees the pool as soon as the supervisor has
	 * exited, while the failed caller may still be on its way out of
	 * shmk_pool_run() (see the report on this race): give the caller a
	 * real-time priority when allowed, so it runs as soon as it wakes. */
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	pthread_attr_setschedparam(&attr, &sp);
	if (pthread_create(&cl.th, &attr, caller_main, &cl) != 0)
		cr_assert_eq(pthread_create(&cl.th, NULL, caller_main, &cl), 0);
	pthread_attr_destroy(&attr);
	wait_started(p, cl.slot);
	t0 = now_ms();
	rc = shmk_pool_destroy(p);
	took = now_ms() - t0;
	pthread_join(cl.th, NULL);
	cr_log_info("destroy with a never-ending job took %" PRId64
		    " ms (grace %d ms)", took, GRACE);
	cr_assert_eq(rc, 0, "destroy: %d %s", rc, shmk_last_error());
	/* One grace in total for the running job, SIGTERM and SIGKILL
	 * (test_pool3.c checks it is not two). */
	cr_assert_lt(took, 2 * GRACE + 1000, "destroy took %" PRId64 " ms", took);
	cr_assert_eq(cl.rc, -ECHILD, "the caller of the endless job got %d",
		     cl.rc);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* Regression: the supervisor used to start the SIGTERM -> SIGKILL grace
 * from a clock reading taken before it slept in poll(), so after an idle
 * spell longer than the grace, workers were SIGKILLed right after SIGTERM. */
Test(pool, workers_get_the_grace_period_between_sigterm_and_sigkill)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	struct stat st;
	shmk_pool *p;
	unsigned s;
	int res = -1;

	snprintf(term_marker, sizeof term_marker, "%s/terminated", T.dir);
	o.shutdown_grace_ms = 1000;
	p = mkpool(c, &o);
	s = (unsigned)lease_fail(p);
	cmd(p, s, OP_TERM_SLOW, 0);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0);
	cr_assert_eq(res, 0);
	shmk_pool_release(p, s);
	sleep_ms(1200); /* the supervisor idles longer than the grace */
	int64_t t0 = now_ms();
	cr_assert_eq(shmk_pool_destroy(p), 0);
	int64_t took = now_ms() - t0;
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(stat(term_marker, &st), 0,
		     "the worker was killed before its SIGTERM handler ended "
		     "(destroy took %" PRId64 " ms)", took);
	cr_assert_lt(took, 1000, "destroy took %" PRId64 " ms", took);
	unlink(term_marker);
}

/* ---- 11. death report as JSON --------------------------------------------- */

Test(pool, the_death_report_is_json_with_kind_pid_signal_and_peak_rss)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	shmk_pool *p = mkpool(c, &o);
	unsigned s = (unsigned)lease_fail(p);
	pid_t w = shmk_pool_worker_pid(p, s);
	struct shmk_death d;
	char buf[2048], tiny[16];
	cJSON *j, *f;
	int n;

	cmd(p, s, OP_FILL_DIE, 0); /* dies by SIGKILL */
	cr_assert_eq(shmk_pool_run(p, s, NULL), -ECHILD);
	cr_assert_eq(shmk_pool_last_death(p, s, &d), 0);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);

	n = shmk_death_json(&d, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_eq((size_t)n, strlen(buf));
	cr_assert_eq(shmk_death_json(&d, tiny, sizeof tiny), -ENOBUFS);
	j = cJSON_Parse(buf);
	cr_assert_not_null(j, "not JSON: %s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "kind");
	cr_assert(cJSON_IsString(f) && strcmp(f->valuestring, "sigkill") == 0,
		  "%s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "pid");
	cr_assert(cJSON_IsNumber(f) && f->valuedouble == (double)w, "%s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "signal");
	cr_assert(cJSON_IsNumber(f) && f->valueint == SIGKILL, "%s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "peak_rss");
	cr_assert(cJSON_IsNumber(f) && f->valuedouble > 0 &&
			  f->valuedouble == (double)d.peak_rss,
		  "%s", buf);
	cJSON_Delete(j);

	/* A report with no death is still valid JSON. */
	memset(&d, 0, sizeof d);
	cr_assert_gt(shmk_death_json(&d, buf, sizeof buf), 0);
	j = cJSON_Parse(buf);
	cr_assert_not_null(j, "not JSON: %s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "kind");
	cr_assert(cJSON_IsString(f) && strcmp(f->valuestring, "none") == 0);
	cJSON_Delete(j);
}

/* ---- 12. invalid use -------------------------------------------------- */

Test(pool, refuses_invalid_use)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	static int sentinel;
	shmk_pool *p = (shmk_pool *)&sentinel; /* must be reset to NULL */
	struct shmk_death d;
	int res;

	o.fn = NULL;
	cr_assert_eq(shmk_pool_create(c, &o, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert(strlen(shmk_last_error()) > 0);
	o.fn = job;
	cr_assert_eq(shmk_pool_create(NULL, &o, &p), -EINVAL);
	cr_assert_eq(shmk_pool_create(c, NULL, &p), -EINVAL);
	cr_assert_eq(shmk_pool_create(c, &o, NULL), -EINVAL);
	o.workers = 100000;
	cr_assert_eq(shmk_pool_create(c, &o, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_eq(shm_count(), 0, "a refused create left segments");
	cr_assert(no_children());
	cr_assert_eq(shmk_pool_destroy(NULL), 0);

	o.workers = 2;
	p = mkpool(c, &o);
	cr_assert_eq(shmk_pool_run(p, 0, &res), -EPERM);
	cr_assert_eq(shmk_pool_run(p, 1, &res), -EPERM);
	cr_assert_eq(shmk_pool_run(p, 2, &res), -EINVAL);
	cr_assert_eq(shmk_pool_last_death(p, 2, &d), -EINVAL);
	cr_assert_null(shmk_pool_slot_mem(p, 2));
	cr_assert_eq(shmk_pool_worker_pid(p, 2), 0);
	cr_assert_eq(shmk_pool_slot_quarantined(p, 2), 0);
	shmk_pool_release(p, 2); /* no-op */
	shmk_pool_release(p, 0); /* not leased: no-op */
	cr_assert_eq(shmk_pool_last_death(p, 0, &d), 0);
	cr_assert_eq(d.kind, SHMK_DEATH_NONE);
	cr_assert_eq(shmk_pool_deaths(p), 0);

	/* A released lease cannot run jobs any more. */
	unsigned s = (unsigned)lease_fail(p);
	cmd(p, s, OP_ECHO, 9);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0);
	cr_assert_eq(res, 9);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_run(p, s, &res), -EPERM);
	cr_assert_eq(shmk_pool_slot_size(p), 4096);
	cr_assert_eq(shmk_pool_destroy(p), 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- destroy while callers wait ------------------------------------------- */

struct waiter {
	shmk_pool *p;
	unsigned slot;
	int rc;
	_Atomic int started;
};

static void *wait_on_replacement(void *arg)
{
	struct waiter *w = arg;
	int r;

	atomic_store(&w->started, 1);
	w->rc = shmk_pool_run(w->p, w->slot, &r);
	return NULL;
}

Test(pool, destroy_wakes_a_caller_waiting_for_a_replacement_and_frees_after_it)
{
	/* The worker dies; its replacement waits out a 10 s backoff; a caller
	 * runs again on the leased slot and so waits for the replacement.
	 * Destroy must wake it with an error and unmap only after it left. */
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	o.backoff_min_ms = o.backoff_max_ms = 10000;
	o.shutdown_grace_ms = 200;
	shmk_pool *p = mkpool(c, &o);
	struct waiter w = {.p = p};
	pthread_t t;
	int r, slot = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);

	cr_assert_geq(slot, 0);
	w.slot = (unsigned)slot;
	struct job *j = shmk_pool_slot_mem(p, w.slot);
	j->op = OP_EXIT;
	j->arg = 7;
	cr_assert_eq(shmk_pool_run(p, w.slot, &r), -ECHILD);
	cr_assert_eq(pthread_create(&t, NULL, wait_on_replacement, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	sleep_ms(50); /* let it block on the slot's state */
	cr_assert_eq(shmk_pool_destroy(p), 0);
	pthread_join(t, NULL);
	cr_assert(w.rc == -ESHUTDOWN || w.rc == -ECHILD,
		  "the waiting caller got %d", w.rc);
	cr_assert_eq(shmk_close(c), 0);
}
