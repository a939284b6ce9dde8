/* SPDX-License-Identifier: MIT */
/* test_pool3.c - the pool is bounded and correct: job deadlines (the
 * timeout death), a destroy that a stopped supervisor and a stream of
 * signals cannot hang and that spends one grace period, no use of the pool
 * after destroy freed it, no inherited descriptor held by the pool's
 * processes, a slot whose memory cannot be reserved again never handed
 * out, and start failures told with their cause.
 *
 * Threads never call Criterion asserts: they store what they saw and the
 * main thread asserts after joining them.  Every test reaps every process
 * it starts, joins every thread, destroys its pool and closes its ctx. */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(pool3, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

/* ---- the job function ---------------------------------------------------- */

struct job {
	int op;
	int arg;
	_Atomic int started; /* set once the job runs */
};

enum {
	OP_ECHO = 1,  /* return arg                                    */
	OP_HANG,      /* started = 1, never return                     */
	OP_LOCK,      /* started = 1, take held_at_fork, return arg    */
	OP_FOREVER,   /* ignore SIGTERM, started = 1, never return     */
	OP_FILL_DIE,  /* write the whole slot, then SIGKILL self       */
};

/* Locked by another thread of the service while the pool is created: the
 * lock a Python interpreter's other thread held at fork. */
static pthread_mutex_t held_at_fork = PTHREAD_MUTEX_INITIALIZER;

static int job(void *mem, size_t size, void *arg)
{
	struct job *j = mem;

	(void)arg;
	switch (j->op) {
	case OP_ECHO:
		return j->arg;
	case OP_HANG:
		atomic_store(&j->started, 1);
		for (;;)
			pause();
	case OP_LOCK:
		atomic_store(&j->started, 1);
		pthread_mutex_lock(&held_at_fork); /* never returns */
		pthread_mutex_unlock(&held_at_fork);
		return j->arg;
	case OP_FOREVER:
		signal(SIGTERM, SIG_IGN);
		atomic_store(&j->started, 1);
		for (;;)
			pause();
	case OP_FILL_DIE:
		memset((char *)mem + sizeof *j, 0xAB, size - sizeof *j);
		raise(SIGKILL);
		for (;;)
			pause();
	}
	return -77;
}

/* Workers are not leak-checked: __lsan_is_turned_off() in test_pool.c
 * (one test binary). */

/* ---- helpers ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void cmd(shmk_pool *p, unsigned slot, int op, int arg)
{
	struct job *j = J(p, slot);

	atomic_store(&j->started, 0);
	j->arg = arg;
	j->op = op;
}

static unsigned lease(shmk_pool *p)
{
	int s = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);

	cr_assert_geq(s, 0, "lease: %d %s", s, shmk_last_error());
	return (unsigned)s;
}

/* Waits (bounded) for the job on the slot to have started. */
static void wait_started(shmk_pool *p, unsigned slot)
{
	int64_t end = now_ms() + 10000;

	while (!atomic_load(&J(p, slot)->started)) {
		cr_assert_lt(now_ms(), end, "the job on slot %u never started",
			     slot);
		sched_yield();
	}
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

static void wait_dead(pid_t pid, unsigned ms)
{
	int64_t end = now_ms() + ms;

	while (!pid_dead(pid)) {
		cr_assert_lt(now_ms(), end, "process %d still alive", (int)pid);
		sched_yield();
	}
}

static bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* A thread in shmk_pool_run() on a leased slot. */
struct caller {
	shmk_pool *p;
	unsigned slot;
	unsigned timeout_ms; /* 0: shmk_pool_run() */
	int rc, result;
	pthread_t th;
};

static void *caller_main(void *arg)
{
	struct caller *cl = arg;

	cl->rc = cl->timeout_ms
			 ? shmk_pool_run_timeout(cl->p, cl->slot, &cl->result,
						 cl->timeout_ms)
			 : shmk_pool_run(cl->p, cl->slot, &cl->result);
	return NULL;
}

/* ---- 1. job deadlines ---------------------------------------------------- */

/* The slot's latest death is the timeout of worker w: waits (bounded) for
 * its report, which -ETIMEDOUT may precede when the supervisor is slow. */
static void expect_timeout_death(shmk_pool *p, unsigned s, pid_t w)
{
	struct shmk_death d;
	char buf[2048];
	cJSON *j, *f;
	int64_t end = now_ms() + 10000;

	for (;;) {
		cr_assert_eq(shmk_pool_last_death(p, s, &d), 0, "%s",
			     shmk_last_error());
		if (d.pid == w || now_ms() > end)
			break;
		sched_yield();
	}
	cr_assert_eq(d.kind, SHMK_DEATH_TIMEOUT, "kind %s",
		     shmk_death_kind_name(d.kind));
	cr_assert_eq(d.pid, w, "the death of %d, not of worker %d", (int)d.pid,
		     (int)w);
	cr_assert_eq(d.signal, SIGKILL);
	cr_assert_str_eq(shmk_death_kind_name(SHMK_DEATH_TIMEOUT), "timeout");
	cr_assert_gt(shmk_death_json(&d, buf, sizeof buf), 0);
	j = cJSON_Parse(buf);
	cr_assert_not_null(j, "not JSON: %s", buf);
	f = cJSON_GetObjectItemCaseSensitive(j, "kind");
	cr_assert(cJSON_IsString(f) && strcmp(f->valuestring, "timeout") == 0,
		  "%s", buf);
	cJSON_Delete(j);
}

Test(pool3, a_job_past_its_call_deadline_is_killed_as_a_timeout_and_the_slot_serves_again)
{
	enum { DEADLINE = 200 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	shmk_pool *p = mkpool(c, &o);
	unsigned s = lease(p);
	pid_t w = shmk_pool_worker_pid(p, s);
	int res = -1, rc;

	cmd(p, s, OP_HANG, 0);
	rc = shmk_pool_run_timeout(p, s, &res, DEADLINE);
	cr_assert_eq(rc, -ETIMEDOUT, "run: %d %s", rc, shmk_last_error());
	cr_assert(strstr(shmk_last_error(), "deadline") != NULL, "%s",
		  shmk_last_error());
	expect_timeout_death(p, s, w);
	wait_dead(w, 5000);
	/* The slot serves again, with a new worker, on the same lease. */
	cmd(p, s, OP_ECHO, 41);
	rc = shmk_pool_run_timeout(p, s, &res, 5000);
	cr_assert_eq(rc, 0, "run after the timeout: %d %s", rc,
		     shmk_last_error());
	cr_assert_eq(res, 41);
	cr_assert_neq(shmk_pool_worker_pid(p, s), w);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* The report's case: a job that blocks on a lock another thread of the
 * service held when the pool was forked never returns; the pool's default
 * deadline ends it. */
Test(pool3, a_job_blocked_on_a_lock_held_at_fork_ends_at_the_pool_default_deadline)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p;
	unsigned s;
	pid_t w;
	int res = -1, rc;
	int64_t t0, took;

	o.job_timeout_ms = 300;
	pthread_mutex_lock(&held_at_fork);
	p = mkpool(c, &o);
	pthread_mutex_unlock(&held_at_fork);
	s = lease(p);
	w = shmk_pool_worker_pid(p, s);
	cmd(p, s, OP_LOCK, 5);
	t0 = now_ms();
	rc = shmk_pool_run(p, s, &res);
	took = now_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "run: %d %s", rc, shmk_last_error());
	cr_assert_geq(took, 300, "timed out after %" PRId64 " ms", took);
	expect_timeout_death(p, s, w);
	cmd(p, s, OP_ECHO, 6);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0, "%s", shmk_last_error());
	cr_assert_eq(res, 6);
	/* A deadline that is long enough changes nothing. */
	cmd(p, s, OP_ECHO, 8);
	cr_assert_eq(shmk_pool_run_timeout(p, s, &res, SHMK_POOL_NO_DEADLINE), 0);
	cr_assert_eq(res, 8);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* With the supervisor stopped, nobody reports the killed worker's death:
 * the caller returns all the same, and a run on the same lease afterwards
 * waits for the death mark and the replacement instead of -EBUSY.  (KEEP:
 * the input written before the death is marked is not wiped then.) */
Test(pool3, a_timed_out_job_returns_even_with_the_supervisor_stopped_and_the_lease_serves_on)
{
	enum { DEADLINE = 200 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	shmk_pool *p;
	unsigned s;
	pid_t w, sup;
	siginfo_t si = {0};
	int64_t t0, took;
	int res = -1, rc;

	o.reinit = SHMK_REINIT_KEEP;
	p = mkpool(c, &o);
	s = lease(p);
	w = shmk_pool_worker_pid(p, s);
	sup = shmk_pool_supervisor_pid(p);
	cr_assert_eq(kill(sup, SIGSTOP), 0);
	cr_assert_eq(waitid(P_PID, (id_t)sup, &si, WSTOPPED | WNOWAIT), 0);
	cmd(p, s, OP_HANG, 0);
	t0 = now_ms();
	rc = shmk_pool_run_timeout(p, s, &res, DEADLINE);
	took = now_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "run: %d %s", rc, shmk_last_error());
	/* The deadline, then a second for a report that cannot come: a
	 * functional bound, not a speed. */
	cr_assert_lt(took, DEADLINE + 1000 + 2000, "took %" PRId64 " ms", took);
	wait_dead(w, 5000); /* killed by the caller, a zombie of the supervisor */
	cr_assert_eq(kill(sup, SIGCONT), 0);
	cmd(p, s, OP_ECHO, 12);
	rc = shmk_pool_run_timeout(p, s, &res, 10000);
	cr_assert_eq(rc, 0, "run after the timeout: %d %s", rc, shmk_last_error());
	cr_assert_eq(res, 12);
	expect_timeout_death(p, s, w);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- 2. destroy is bounded -------------------------------------------------- */

static void on_usr1(int sig) { (void)sig; }

struct pest {
	pthread_t target, th;
	_Atomic int stop;
	_Atomic unsigned sent;
};

/* Signals the destroying thread every millisecond until told to stop. */
static void *pester(void *arg)
{
	struct pest *ps = arg;
	struct timespec ms = {0, 1000000L};

	while (!atomic_load(&ps->stop)) {
		if (pthread_kill(ps->target, SIGUSR1) == 0)
			atomic_fetch_add(&ps->sent, 1);
		nanosleep(&ms, NULL);
	}
	return NULL;
}

Test(pool3, destroy_returns_with_a_stopped_supervisor_while_signals_interrupt_it, .timeout = 30)
{
	enum { GRACE = 300 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct sigaction sa = {.sa_handler = on_usr1}, old; /* no SA_RESTART */
	struct pest ps = {.target = pthread_self()};
	shmk_pool *p;
	pid_t sup, w[2];
	int64_t t0, took;
	int rc;

	o.shutdown_grace_ms = GRACE;
	p = mkpool(c, &o);
	sup = shmk_pool_supervisor_pid(p);
	for (unsigned i = 0; i < 2; i++)
		w[i] = shmk_pool_worker_pid(p, i);
	cr_assert_eq(kill(sup, SIGSTOP), 0);
	{ /* stopped for real before destroy starts */
		siginfo_t si = {0};
		cr_assert_eq(waitid(P_PID, (id_t)sup, &si, WSTOPPED | WNOWAIT), 0);
	}
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
	cr_assert_eq(pthread_create(&ps.th, NULL, pester, &ps), 0);
	t0 = now_ms();
	rc = shmk_pool_destroy(p);
	took = now_ms() - t0;
	atomic_store(&ps.stop, 1);
	pthread_join(ps.th, NULL);
	sigaction(SIGUSR1, &old, NULL);
	cr_log_info("destroy with a stopped supervisor took %" PRId64
		    " ms under %u signals", took, atomic_load(&ps.sent));
	cr_assert_eq(rc, 0, "destroy: %d %s", rc, shmk_last_error());
	cr_assert_gt(atomic_load(&ps.sent), 0);
	/* One grace, then a second for the supervisor to exit, then
	 * SIGKILL: a functional bound (it used to hang for ever). */
	cr_assert_lt(took, GRACE + 1000 + 3000, "destroy took %" PRId64 " ms",
		     took);
	cr_assert(no_children(), "the supervisor was not reaped");
	for (unsigned i = 0; i < 2; i++)
		wait_dead(w[i], 5000);
	cr_assert_eq(shmk_close(c), 0);
}

Test(pool3, destroy_spends_one_grace_period_on_a_job_that_ignores_sigterm)
{
	enum { GRACE = 1000 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct caller cl = {0};
	shmk_pool *p;
	int64_t t0, took;
	int rc;

	o.shutdown_grace_ms = GRACE;
	p = mkpool(c, &o);
	cl.p = p;
	cl.slot = lease(p);
	cmd(p, cl.slot, OP_FOREVER, 0);
	cr_assert_eq(pthread_create(&cl.th, NULL, caller_main, &cl), 0);
	wait_started(p, cl.slot);
	t0 = now_ms();
	rc = shmk_pool_destroy(p);
	took = now_ms() - t0;
	pthread_join(cl.th, NULL);
	cr_log_info("destroy took %" PRId64 " ms with grace %d ms", took, GRACE);
	cr_assert_eq(rc, 0, "destroy: %d %s", rc, shmk_last_error());
	cr_assert_eq(cl.rc, -ECHILD, "the caller got %d", cl.rc);
	/* Not before the grace is over: the job had it to finish in. */
	cr_assert_geq(took, GRACE, "destroy took %" PRId64 " ms", took);
	/* One grace in total, not one for the job and one more between
	 * SIGTERM and SIGKILL (2 x GRACE): a correctness bound. */
	cr_assert_lt(took, GRACE + GRACE / 2, "destroy took %" PRId64 " ms",
		     took);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- 3. no use of the pool after destroy freed it ----------------------- */

/* The hook sits where the last caller leaving a pool has made the
 * decrement that lets destroy free it.  Destroy must not return before
 * that caller is out: the hook gives destroy time to (wrongly) return and
 * records it if it did.  Under AddressSanitizer the old code's futex wake
 * on the freed pool is reported as a heap use after free. */
static _Atomic int destroying, destroyed, freed_under_caller, hooked;

static int last_left(const char *name, int *failnum, void **failinfo,
		     unsigned *flags)
{
	int64_t end;

	(void)name, (void)failnum, (void)failinfo, (void)flags;
	if (!atomic_load(&destroying))
		return 0;
	atomic_fetch_add(&hooked, 1);
	end = now_ms() + 300;
	while (now_ms() < end)
		if (atomic_load(&destroyed)) {
			atomic_store(&freed_under_caller, 1);
			break;
		} else {
			sched_yield();
		}
	return 0;
}

Test(pool3, destroy_frees_the_pool_only_after_the_last_of_many_callers_is_out)
{
	enum { SLOTS = 16, CYCLES = 6 };
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(SLOTS, 4096);
	struct caller cl[SLOTS];

	o.shutdown_grace_ms = 20;
	cr_assert_eq(fiu_enable_external("shmk/test/pool/last_left", 1, NULL, 0,
					 last_left), 0);
	for (int cyc = 0; cyc < CYCLES; cyc++) {
		shmk_pool *p = mkpool(c, &o);
		int rc;

		atomic_store(&destroying, 0);
		atomic_store(&destroyed, 0);
		memset(cl, 0, sizeof cl);
		for (unsigned i = 0; i < SLOTS; i++) {
			cl[i].p = p;
			cl[i].slot = lease(p);
			cmd(p, cl[i].slot, OP_FOREVER, 0);
			cr_assert_eq(pthread_create(&cl[i].th, NULL, caller_main,
						    &cl[i]), 0);
		}
		/* Every caller is inside shmk_pool_run() once its job runs. */
		for (unsigned i = 0; i < SLOTS; i++)
			wait_started(p, cl[i].slot);
		atomic_store(&destroying, 1);
		rc = shmk_pool_destroy(p);
		atomic_store(&destroyed, 1);
		for (unsigned i = 0; i < SLOTS; i++)
			pthread_join(cl[i].th, NULL);
		cr_assert_eq(rc, 0, "destroy: %d %s", rc, shmk_last_error());
		for (unsigned i = 0; i < SLOTS; i++)
			cr_assert(cl[i].rc == -ECHILD || cl[i].rc == -ESHUTDOWN,
				  "caller %u got %d", i, cl[i].rc);
		cr_assert_not(atomic_load(&freed_under_caller),
			      "cycle %d: destroy returned while the last caller "
			      "was still inside the pool",
			      cyc);
	}
	fiu_disable("shmk/test/pool/last_left");
	cr_log_info("the last caller was still leaving in %d of %d cycles",
		    atomic_load(&hooked), CYCLES);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- 4. inherited descriptors --------------------------------------------- */

/* Does any descriptor of pid point at the pipe with inode ino? */
static bool holds_pipe(pid_t pid, ino_t ino)
{
	char dir[64], want[64], path[PATH_MAX], link[128];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)ino);
	if (!(d = opendir(dir)))
		return false;
	while ((e = readdir(d))) {
		ssize_t n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if ((n = readlink(path, link, sizeof link - 1)) > 0) {
			link[n] = '\0';
			found = found || strcmp(link, want) == 0;
		}
	}
	closedir(d);
	return found;
}

Test(pool3, a_pipe_without_cloexec_sees_eof_when_the_service_closes_its_write_end)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct pollfd pf;
	struct stat st;
	shmk_pool *p;
	int pp[2], res = -1, r;
	char b;
	unsigned s;

	cr_assert_eq(pipe(pp), 0); /* no O_CLOEXEC: as a careless service */
	cr_assert_eq(fstat(pp[0], &st), 0);
	p = mkpool(c, &o);
	s = lease(p);
	cmd(p, s, OP_ECHO, 3);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0);
	cr_assert_eq(res, 3);
	cr_assert_not(holds_pipe(shmk_pool_supervisor_pid(p), st.st_ino),
		      "the spawner holds the service's pipe");
	for (unsigned i = 0; i < 2; i++)
		cr_assert_not(holds_pipe(shmk_pool_worker_pid(p, i), st.st_ino),
			      "worker %u holds the service's pipe", i);
	/* The service closes its write end and waits for EOF while the pool
	 * runs. */
	close(pp[1]);
	pf = (struct pollfd){.fd = pp[0], .events = POLLIN};
	r = poll(&pf, 1, 5000);
	cr_assert_eq(r, 1, "no EOF on the pipe within 5 s: a process of the "
			   "pool holds its write end");
	cr_assert_eq(read(pp[0], &b, 1), 0);
	close(pp[0]);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

static pid_t service_pid;
/* Failures injected in children, counted where the service sees them (a
 * MAP_SHARED page mapped before the pool forks). */
static _Atomic unsigned *child_failures;

/* Fails only outside the service (in the supervisor or a worker). */
static int in_child(const char *name, int *failnum, void **failinfo,
		    unsigned *flags)
{
	(void)name, (void)failnum, (void)failinfo, (void)flags;
	if (getpid() == service_pid)
		return 0;
	if (child_failures)
		atomic_fetch_add(child_failures, 1);
	return 1;
}

/* Kernels before 5.9 have no close_range: one close() per descriptor. */
Test(pool3, without_close_range_the_children_close_inherited_descriptors_one_by_one)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	struct stat st;
	shmk_pool *p;
	int pp[2];

	service_pid = getpid();
	child_failures = mmap(NULL, sizeof *child_failures,
			      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			      -1, 0);
	cr_assert_neq(child_failures, MAP_FAILED);
	cr_assert_eq(pipe(pp), 0);
	cr_assert_eq(fstat(pp[0], &st), 0);
	cr_assert_eq(fiu_enable_external("shmk/sys/close_range", 1,
					 (void *)(intptr_t)ENOSYS, 0, in_child), 0);
	p = mkpool(c, &o);
	fiu_disable("shmk/sys/close_range");
	/* The spawner and the worker both went without close_range. */
	cr_assert_geq(atomic_load(child_failures), 2);
	munmap((void *)child_failures, sizeof *child_failures);
	child_failures = NULL;
	cr_assert_not(holds_pipe(shmk_pool_supervisor_pid(p), st.st_ino));
	cr_assert_not(holds_pipe(shmk_pool_worker_pid(p, 0), st.st_ino));
	close(pp[1]);
	close(pp[0]);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- 5. a slot whose memory cannot be reserved again ---------------------- */

static void mount_tiny_shm(const char *size)
{
	char opts[64];

	/* A private mount namespace: the tmpfs dies with this test process. */
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		cr_skip_test("cannot make a private mount namespace (%s): "
			     "needs root", strerror(errno));
	snprintf(T.shm_dir, sizeof T.shm_dir, "%s/tinyshm", T.dir);
	mkdir(T.shm_dir, 01777);
	snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
	if (mount("tmpfs", T.shm_dir, "tmpfs", 0, opts) < 0)
		cr_skip_test("cannot mount a tiny tmpfs (%s)", strerror(errno));
}

static char filler_path[PATH_MAX];

/* Right after the pool gave the dead worker's pages back (in the caller
 * that handles the death): another tenant of the tmpfs takes every free
 * block. */
static int fill_tmpfs(const char *name, int *failnum, void **failinfo,
		      unsigned *flags)
{
	int fd = open(filler_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	off_t at = 0;

	(void)name, (void)failnum, (void)failinfo, (void)flags;
	if (fd < 0)
		return 0;
	at = lseek(fd, 0, SEEK_END);
	for (off_t chunk = 1 << 20; chunk >= 4096; chunk /= 2)
		while (posix_fallocate(fd, at, chunk) == 0)
			at += chunk;
	close(fd);
	return 0;
}

static void expect_slot_lost(shmk_pool *p, unsigned s, int rc)
{
	struct shmk_death d;

	cr_assert_eq(rc, -ENOSPC, "run: %d %s", rc, shmk_last_error());
	cr_assert(strstr(shmk_last_error(), "reserved again") != NULL, "%s",
		  shmk_last_error());
	cr_assert(shmk_pool_slot_quarantined(p, s));
	cr_assert_eq(shmk_pool_last_death(p, s, &d), 0);
	cr_assert_eq(d.reinit_errno, ENOSPC);
	cr_assert(d.quarantined);
	/* Never handed out again: not to this lease ... */
	cr_assert_eq(shmk_pool_run(p, s, NULL), -ENOSPC);
	shmk_pool_release(p, s);
	/* ... nor to a new one. */
	cr_assert_eq(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0), -ENODEV, "%s",
		     shmk_last_error());
}

Test(pool3, recreate_on_a_full_tiny_tmpfs_quarantines_the_slot_instead_of_sigbus)
{
	struct shmk_pool_options o = popts(1, 256 * 1024);
	shmk_ctx *c;
	shmk_pool *p;
	unsigned s;
	int rc;

	mount_tiny_shm("1m");
	snprintf(filler_path, sizeof filler_path, "%s/filler", T.shm_dir);
	c = topen();
	o.reinit = SHMK_REINIT_RECREATE;
	p = mkpool(c, &o);
	/* The service handles the death (the caller whose job failed). */
	cr_assert_eq(fiu_enable_external("shmk/test/pool/pages_given_back", 1,
					 NULL, 0, fill_tmpfs), 0);
	s = lease(p);
	cmd(p, s, OP_FILL_DIE, 0);
	rc = shmk_pool_run(p, s, NULL);
	fiu_disable("shmk/test/pool/pages_given_back");
	expect_slot_lost(p, s, rc);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	unlink(filler_path);
	cr_assert(no_children());
	umount(T.shm_dir);
}

Test(pool3, a_failed_fallocate_after_recreate_quarantines_the_slot)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 64 * 1024);
	shmk_pool *p;
	unsigned s;

	int rc;

	o.reinit = SHMK_REINIT_RECREATE;
	p = mkpool(c, &o);
	s = lease(p);
	cmd(p, s, OP_FILL_DIE, 0);
	/* The next fallocate is the re-reservation, in the caller that
	 * handles the death. */
	cr_assert_eq(fiu_enable("shmk/sys/fallocate", 1,
				(void *)(intptr_t)ENOSPC, 0), 0);
	rc = shmk_pool_run(p, s, NULL);
	fiu_disable("shmk/sys/fallocate");
	expect_slot_lost(p, s, rc);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* ---- 6. start failures with their cause ------------------------------------ */

/* fp fails with err in the children only (in_child), or in the service
 * too (cb NULL). */
static void expect_start_failure_cb(const char *fp, int err, const char *call,
				    external_cb_t *cb)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p = NULL;
	int rc;

	service_pid = getpid();
	o.start_timeout_ms = 5000;
	if (cb)
		cr_assert_eq(fiu_enable_external(fp, 1, (void *)(intptr_t)err, 0,
						 cb), 0);
	else
		cr_assert_eq(fiu_enable(fp, 1, (void *)(intptr_t)err, 0), 0);
	rc = shmk_pool_create(c, &o, &p);
	fiu_disable(fp);
	cr_assert_eq(rc, -err, "%s: create gave %d (%s)", fp, rc,
		     shmk_last_error());
	cr_assert_null(p);
	cr_assert(strstr(shmk_last_error(), call) != NULL &&
			  strstr(shmk_last_error(), strerror(err)) != NULL,
		  "%s: the sentence names neither %s nor %s: %s", fp, call,
		  strerror(err), shmk_last_error());
	cr_assert_eq(shm_count(), 0, "a failed create left segments");
	cr_assert(no_children());
	cr_assert_eq(shmk_close(c), 0);
}

static void expect_start_failure(const char *fp, int err, const char *call)
{
	expect_start_failure_cb(fp, err, call, in_child);
}

/* The service forks the first workers itself. */
Test(pool3, a_worker_that_cannot_be_forked_fails_create_with_the_fork_errno)
{
	expect_start_failure_cb("shmk/pool/fork", EAGAIN, "fork the worker", NULL);
}

/* The spawner's own start is not waited for: one that died there leaves
 * a pool that serves until the first death, which stops it (nothing could
 * replace the worker) - it never waits for a replacement that cannot
 * come. */
static void expect_no_spawner(const char *fp, external_cb_t *cb)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p;
	unsigned s;
	int res = -1, rc;

	service_pid = getpid();
	o.job_timeout_ms = 60000;
	if (cb)
		cr_assert_eq(fiu_enable_external(fp, 1, NULL, 0, cb), 0);
	else
		cr_assert_eq(fiu_enable(fp, 1, NULL, 0), 0);
	p = mkpool(c, &o);
	s = lease(p);
	cmd(p, s, OP_ECHO, 2);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0, "%s", shmk_last_error());
	cr_assert_eq(res, 2);
	fiu_disable(fp);
	cmd(p, s, OP_FILL_DIE, 0);
	rc = shmk_pool_run(p, s, NULL);
	cr_assert_eq(rc, -ECHILD, "run: %d %s", rc, shmk_last_error());
	cr_assert_eq(shmk_pool_supervisor_pid(p), 0);
	cr_assert_eq(shmk_pool_run(p, s, NULL), -ESHUTDOWN);
	cr_assert_eq(shmk_pool_lease(p, SHMK_LEASE_WAIT, 0), -ESHUTDOWN);
	cr_assert(strstr(shmk_last_error(), "no worker can be replaced"),
		  "the pool's stop does not say why: %s", shmk_last_error());
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* Worker 0 forks the spawner before it says it is ready. */
Test(pool3, a_spawner_that_cannot_be_forked_fails_create_with_the_cause)
{
	expect_start_failure_cb("shmk/pool/fork_spawner", EAGAIN,
				"fork the spawner", NULL);
}

/* The spawner and the workers register their robust futex lists first. */
Test(pool3, a_child_that_cannot_register_its_robust_list_fails_create_with_the_cause)
{
	expect_start_failure("shmk/sys/set_robust_list", EPERM, "set_robust_list");
}

Test(pool3, a_worker_that_cannot_set_its_death_signal_fails_create_with_the_cause)
{
	expect_start_failure("shmk/sys/prctl", EPERM, "prctl(PR_SET_PDEATHSIG)");
}

/* In a child only: it dies at once, by SIGKILL. */
static int kill_child(const char *name, int *failnum, void **failinfo,
		      unsigned *flags)
{
	(void)name, (void)failnum, (void)failinfo, (void)flags;
	if (getpid() != service_pid)
		raise(SIGKILL);
	return 0;
}

static void expect_killed_while_starting(const char *crashpoint,
					 const char *who)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	shmk_pool *p = NULL;
	int rc;

	service_pid = getpid();
	o.start_timeout_ms = 5000;
	cr_assert_eq(fiu_enable_external(crashpoint, 1, NULL, 0, kill_child), 0);
	rc = shmk_pool_create(c, &o, &p);
	fiu_disable(crashpoint);
	cr_assert_eq(rc, -ECHILD, "create gave %d (%s)", rc, shmk_last_error());
	cr_assert_null(p);
	cr_assert(strstr(shmk_last_error(), "killed by SIGKILL") != NULL &&
			  strstr(shmk_last_error(), who) != NULL,
		  "%s", shmk_last_error());
	cr_assert_eq(shm_count(), 0, "a failed create left segments");
	cr_assert(no_children());
	cr_assert_eq(shmk_close(c), 0);
}

Test(pool3, a_worker_killed_while_starting_fails_create_saying_how_it_died)
{
	expect_killed_while_starting("shmk/crash/pool/worker_start", "worker");
}

Test(pool3, a_spawner_killed_while_starting_stops_the_pool_at_the_first_death)
{
	expect_no_spawner("shmk/crash/pool/spawner_start", kill_child);
}

/* ---- 7. the process model --------------------------------------------------
 * The service forks its workers and a spawner; no thread of the pool's runs
 * in it; a worker's death is a robust-futex event that wakes whoever waits. */

static int threads_of_self(void)
{
	char buf[4096], *t;
	int n = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	n = (int)fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	t = strstr(buf, "\nThreads:");
	return t ? atoi(t + 9) : -1;
}

Test(pool3, no_watch_thread_and_a_worker_killed_during_a_job_wakes_the_caller_at_once)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct caller cl = {0};
	struct shmk_death d;
	shmk_pool *p;
	int before, after;
	int64_t t0;
	pid_t w;

	o.job_timeout_ms = 60000; /* far: the death must end the wait */
	before = threads_of_self();
	p = mkpool(c, &o);
	after = threads_of_self();
	cr_assert_eq(after, before, "create added threads: %d -> %d", before,
		     after);
	cl.p = p;
	cl.slot = lease(p);
	w = shmk_pool_worker_pid(p, cl.slot);
	cmd(p, cl.slot, OP_HANG, 0);
	cr_assert_eq(pthread_create(&cl.th, NULL, caller_main, &cl), 0);
	wait_started(p, cl.slot);
	t0 = now_ms();
	cr_assert_eq(kill(w, SIGKILL), 0);
	pthread_join(cl.th, NULL);
	cr_assert_eq(cl.rc, -ECHILD, "run: %d", cl.rc);
	cr_assert_lt(now_ms() - t0, 5000, "the caller was not woken by the death");
	cr_assert_eq(shmk_pool_last_death(p, cl.slot, &d), 0);
	cr_assert_eq(d.pid, w);
	cr_assert_eq(d.kind, SHMK_DEATH_SIGKILL, "kind %s",
		     shmk_death_kind_name(d.kind));
	shmk_pool_release(p, cl.slot);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* Nobody watches an idle worker: its death is seen by the next call that
 * looks at the slot (its life word is marked), not at a deadline. */
Test(pool3, a_worker_killed_idle_is_noticed_by_the_next_run_without_waiting_for_the_deadline)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	struct shmk_death d;
	shmk_pool *p;
	unsigned s;
	int64_t t0;
	int res = -1, rc;
	pid_t w;

	o.reinit = SHMK_REINIT_KEEP; /* the input written below stays */
	o.job_timeout_ms = 60000;
	p = mkpool(c, &o);
	s = lease(p);
	w = shmk_pool_worker_pid(p, s);
	cr_assert_eq(kill(w, SIGKILL), 0);
	wait_dead(w, 5000);
	cmd(p, s, OP_ECHO, 5);
	t0 = now_ms();
	rc = shmk_pool_run(p, s, &res);
	cr_assert_eq(rc, 0, "run: %d %s", rc, shmk_last_error());
	cr_assert_eq(res, 5);
	cr_assert_lt(now_ms() - t0, 10000);
	cr_assert_neq(shmk_pool_worker_pid(p, s), w);
	cr_assert_eq(shmk_pool_last_death(p, s, &d), 0);
	cr_assert_eq(d.pid, w);
	cr_assert_eq(d.kind, SHMK_DEATH_SIGKILL);
	cr_assert_eq(shmk_pool_deaths(p), 1);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

static void reap_all(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

/* The service takes its children's statuses itself: SIGCHLD ignored (the
 * kernel reaps them) or a handler calling waitpid(-1).  A death is still
 * seen at once and told honestly ("unknown" when the status was taken,
 * never a wrong kind), a replacement serves, destroy is bounded and leaves
 * no zombie. */
static void with_stolen_statuses(const struct sigaction *sa)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct sigaction old;
	struct shmk_death d;
	shmk_pool *p;
	unsigned s;
	int res = -1, rc;
	int64_t t0;

	cr_assert_eq(sigaction(SIGCHLD, sa, &old), 0);
	o.job_timeout_ms = 30000;
	p = mkpool(c, &o);
	s = lease(p);
	cmd(p, s, OP_FILL_DIE, 0);
	t0 = now_ms();
	rc = shmk_pool_run(p, s, NULL);
	cr_assert_eq(rc, -ECHILD, "run: %d %s", rc, shmk_last_error());
	cr_assert_lt(now_ms() - t0, 10000);
	cr_assert_eq(shmk_pool_last_death(p, s, &d), 0);
	cr_assert(d.kind == SHMK_DEATH_UNKNOWN || d.kind == SHMK_DEATH_SIGKILL,
		  "kind %s", shmk_death_kind_name(d.kind));
	if (sa->sa_handler == SIG_IGN)
		cr_assert_eq(d.kind, SHMK_DEATH_UNKNOWN, "kind %s",
			     shmk_death_kind_name(d.kind));
	cmd(p, s, OP_ECHO, 9);
	rc = shmk_pool_run(p, s, &res);
	cr_assert_eq(rc, 0, "run on the replacement: %d %s", rc, shmk_last_error());
	cr_assert_eq(res, 9);
	shmk_pool_release(p, s);
	t0 = now_ms();
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_lt(now_ms() - t0, 5000);
	sigaction(SIGCHLD, &old, NULL);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

Test(pool3, a_service_ignoring_sigchld_gets_bounded_honest_results)
{
	struct sigaction sa = {.sa_handler = SIG_IGN};

	sigemptyset(&sa.sa_mask);
	with_stolen_statuses(&sa);
}

Test(pool3, a_service_whose_sigchld_handler_reaps_every_child_gets_bounded_honest_results)
{
	struct sigaction sa = {.sa_handler = reap_all, .sa_flags = SA_RESTART};

	sigemptyset(&sa.sa_mask);
	with_stolen_statuses(&sa);
}

struct holder {
	pthread_t th;
	_Atomic int locked, release;
};

static void *hold_lock(void *arg)
{
	struct holder *h = arg;

	pthread_mutex_lock(&held_at_fork);
	atomic_store(&h->locked, 1);
	while (!atomic_load(&h->release))
		sched_yield();
	pthread_mutex_unlock(&held_at_fork);
	return NULL;
}

/* The fork-safety point of the spawner: a replacement is not forked from
 * the service as it is now (another thread holds a lock the job takes) but
 * from its memory at creation. */
Test(pool3, a_replacement_forked_while_another_thread_holds_a_lock_the_job_takes_does_not_deadlock)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	struct holder h = {0};
	shmk_pool *p;
	unsigned s;
	int res = -1, rc;
	pid_t w;

	o.reinit = SHMK_REINIT_KEEP;
	p = mkpool(c, &o); /* one thread: the lock is free in the snapshot */
	cr_assert_eq(pthread_create(&h.th, NULL, hold_lock, &h), 0);
	while (!atomic_load(&h.locked))
		sched_yield();
	s = lease(p);
	w = shmk_pool_worker_pid(p, s);
	cr_assert_eq(kill(w, SIGKILL), 0);
	wait_dead(w, 5000);
	cmd(p, s, OP_LOCK, 21);
	rc = shmk_pool_run_timeout(p, s, &res, 10000);
	atomic_store(&h.release, 1);
	pthread_join(h.th, NULL);
	cr_assert_eq(rc, 0, "the replacement's job: %d %s", rc, shmk_last_error());
	cr_assert_eq(res, 21);
	cr_assert_neq(shmk_pool_worker_pid(p, s), w);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* Without pidfd_open (Linux < 5.3; valgrind 3.19 answers ENOSYS) the pool
 * reaps, signals and waits by pid: a death is classified, a replacement
 * serves, destroy reaps everything. */
Test(pool3, without_pidfd_open_deaths_replacements_and_destroy_work_by_pid)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(2, 4096);
	struct shmk_death d;
	shmk_pool *p;
	unsigned s;
	int res = -1, rc;

	cr_assert_eq(fiu_enable("shmk/sys/pidfd_open", 1, (void *)(intptr_t)ENOSYS,
				0), 0);
	o.shutdown_grace_ms = 300;
	p = mkpool(c, &o);
	s = lease(p);
	cmd(p, s, OP_FILL_DIE, 0);
	rc = shmk_pool_run(p, s, NULL);
	cr_assert_eq(rc, -ECHILD, "run: %d %s", rc, shmk_last_error());
	cr_assert_eq(shmk_pool_last_death(p, s, &d), 0);
	cr_assert_eq(d.kind, SHMK_DEATH_SIGKILL, "kind %s",
		     shmk_death_kind_name(d.kind));
	cmd(p, s, OP_ECHO, 4);
	cr_assert_eq(shmk_pool_run(p, s, &res), 0, "%s", shmk_last_error());
	cr_assert_eq(res, 4);
	/* A job that ignores SIGTERM: destroy's SIGKILL after the grace. */
	cmd(p, s, OP_FOREVER, 0);
	{
		struct caller cl = {.p = p, .slot = s, .timeout_ms = 30000};
		cr_assert_eq(pthread_create(&cl.th, NULL, caller_main, &cl), 0);
		wait_started(p, s);
		cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
		pthread_join(cl.th, NULL);
		cr_assert(cl.rc == -ECHILD || cl.rc == -ESHUTDOWN, "run: %d",
			  cl.rc);
	}
	fiu_disable("shmk/sys/pidfd_open");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

/* A lease waiter sleeps on free_seq and on the spawner's word (a SIGKILLed
 * spawner stops the pool: nothing could replace a worker any more).
 * Without futex_waitv (Linux < 5.16, valgrind) it waits on free_seq in
 * slices and looks at the spawner's word between them. */
struct leaser {
	shmk_pool *p;
	int rc;
	_Atomic int started;
	pthread_t th;
};

static void *lease_wait(void *arg)
{
	struct leaser *l = arg;

	atomic_store(&l->started, 1);
	l->rc = shmk_pool_lease(l->p, SHMK_LEASE_WAIT, 0);
	return NULL;
}

static void spawner_killed_under_a_lease_waiter(bool waitv)
{
	shmk_ctx *c = topen();
	struct shmk_pool_options o = popts(1, 4096);
	struct leaser l = {0};
	shmk_pool *p;
	unsigned s;
	int64_t t0;
	pid_t sp;

	if (!waitv)
		cr_assert_eq(fiu_enable("shmk/sys/futex_waitv", 1, NULL, 0), 0);
	p = mkpool(c, &o);
	sp = shmk_pool_supervisor_pid(p);
	cr_assert_gt(sp, 0);
	s = lease(p); /* the only slot: the waiter below waits */
	l.p = p;
	cr_assert_eq(pthread_create(&l.th, NULL, lease_wait, &l), 0);
	while (!atomic_load(&l.started))
		sched_yield();
	t0 = now_ms();
	cr_assert_eq(kill(sp, SIGKILL), 0);
	pthread_join(l.th, NULL);
	cr_assert_eq(l.rc, -ESHUTDOWN, "lease: %d", l.rc);
	cr_assert_lt(now_ms() - t0, 5000);
	cr_assert_eq(shmk_pool_run(p, s, NULL), -ESHUTDOWN);
	shmk_pool_release(p, s);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	if (!waitv)
		fiu_disable("shmk/sys/futex_waitv");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(no_children());
}

Test(pool3, a_sigkilled_spawner_wakes_a_lease_waiter_with_eshutdown)
{
	spawner_killed_under_a_lease_waiter(true);
}

Test(pool3, without_futex_waitv_a_sigkilled_spawner_still_wakes_a_lease_waiter)
{
	spawner_killed_under_a_lease_waiter(false);
}

/* ---- 7. the lazy spawner (SHMK_OPEN_LAZY_SPAWNER) ------------------------ */

/* Criterion's test process has threads of its own, so each test runs in a
 * forked child, which has one: there, a failed check says where on stderr
 * and ends the child with status 1 (no Criterion call in it). */
#define CHILD_CHECK(cond, ...)                                               \
	do {                                                                 \
		if (!(cond)) {                                               \
			dprintf(2, "%s:%d: %s: ", __FILE__, __LINE__, #cond); \
			dprintf(2, __VA_ARGS__);                             \
			dprintf(2, "\n");                                    \
			_exit(1);                                            \
		}                                                            \
	} while (0)

/* Runs body(arg) in a child with one thread; the test fails if it does. */
static void in_one_thread(int (*body)(void *), const void *arg)
{
	int st = reap_child(spawn(body, (void *)arg));

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the child failed (status %#x): see its message above", st);
	cr_assert(no_children());
}

/* Children the calling (main) thread forked, from the kernel's list. */
static unsigned count_children(void)
{
	char path[64], buf[4096];
	unsigned n = 0;
	ssize_t len;
	int fd;

	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	len = read(fd, buf, sizeof buf - 1);
	close(fd);
	CHILD_CHECK(len >= 0, "%s", strerror(errno));
	buf[len] = '\0';
	for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
		n++;
	return n;
}

static shmk_ctx *lazy_open(void)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	int rc;

	o.flags = SHMK_OPEN_LAZY_SPAWNER;
	rc = shmk_open(&o, &c);
	CHILD_CHECK(rc == 0, "shmk_open: %s", shmk_last_error());
	return c;
}

static shmk_pool *lazy_pool(shmk_ctx *c, unsigned workers)
{
	struct shmk_pool_options o = popts(workers, 4096);
	shmk_pool *p = NULL;
	int rc = shmk_pool_create(c, &o, &p);

	CHILD_CHECK(rc == 0, "shmk_pool_create: %s", shmk_last_error());
	return p;
}

static void lazy_end(shmk_ctx *c, shmk_pool *p, unsigned leased)
{
	shmk_pool_release(p, leased);
	CHILD_CHECK(shmk_pool_destroy(p) == 0, "%s", shmk_last_error());
	CHILD_CHECK(shmk_close(c) == 0, "%s", shmk_last_error());
	CHILD_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD,
		    "destroy left a child");
}

/* SIGKILLs the idle worker of slot s and waits until it is dead. */
static pid_t kill_idle(shmk_pool *p, unsigned s)
{
	pid_t w = shmk_pool_worker_pid(p, s);
	int64_t end = now_ms() + 5000;

	CHILD_CHECK(w > 0 && kill(w, SIGKILL) == 0, "worker %d", (int)w);
	while (!pid_dead(w)) {
		CHILD_CHECK(now_ms() < end, "worker %d still alive", (int)w);
		sched_yield();
	}
	/* Handles the death (zeroes the slot) before a command is written. */
	(void)shmk_pool_worker_pid(p, s);
	return w;
}

/* Kills the worker of slot s and runs a job there: its replacement
 * serves it, and the death is the kill. */
static void replace_by_kill(shmk_pool *p, unsigned s, int v)
{
	pid_t w = kill_idle(p, s), now;
	struct shmk_death d;
	int res = -1, rc;

	cmd(p, s, OP_ECHO, v);
	rc = shmk_pool_run(p, s, &res);
	CHILD_CHECK(rc == 0 && res == v, "run after the kill: %d, result %d: %s",
		    rc, res, shmk_last_error());
	now = shmk_pool_worker_pid(p, s);
	CHILD_CHECK(now > 0 && now != w, "worker %d, before %d", (int)now, (int)w);
	CHILD_CHECK(shmk_pool_last_death(p, s, &d) == 0 && d.pid == w &&
			    d.kind == SHMK_DEATH_SIGKILL,
		    "death of %d: kind %d", (int)d.pid, (int)d.kind);
}

/* A second thread of the service, blocked on a pipe until stopped. */
struct second_thread {
	pthread_t th;
	int tp[2];
};

static void *thread_blocked(void *arg)
{
	char b;

	while (read(*(int *)arg, &b, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void second_thread_start(struct second_thread *t)
{
	CHILD_CHECK(pipe2(t->tp, O_CLOEXEC) == 0, "pipe2");
	CHILD_CHECK(pthread_create(&t->th, NULL, thread_blocked, &t->tp[0]) == 0,
		    "pthread_create");
}

static void second_thread_stop(struct second_thread *t)
{
	CHILD_CHECK(write(t->tp[1], "x", 1) == 1, "write");
	pthread_join(t->th, NULL);
	close(t->tp[0]);
	close(t->tp[1]);
}

static int lazy_first_replacement(void *arg)
{
	shmk_ctx *c = lazy_open();
	shmk_pool *p = lazy_pool(c, 2);
	unsigned s;
	int res = -1, leased;
	pid_t sp;

	(void)arg;
	CHILD_CHECK(shmk_pool_supervisor_pid(p) == 0, "a spawner at creation");
	CHILD_CHECK(count_children() == 2, "%u children, not the 2 workers",
		    count_children());
	leased = shmk_pool_lease(p, SHMK_LEASE_FAIL, 0);
	CHILD_CHECK(leased >= 0, "lease: %s", shmk_last_error());
	s = (unsigned)leased;
	cmd(p, s, OP_ECHO, 4);
	CHILD_CHECK(shmk_pool_run(p, s, &res) == 0 && res == 4, "run: %s",
		    shmk_last_error());
	CHILD_CHECK(shmk_pool_supervisor_pid(p) == 0, "a job forked a spawner");

	replace_by_kill(p, s, 5);
	sp = shmk_pool_supervisor_pid(p);
	CHILD_CHECK(sp > 0, "no spawner after the first replacement");
	CHILD_CHECK(count_children() == 3, "%u children, not 2 workers and "
					   "the spawner", count_children());
	replace_by_kill(p, s, 6);
	CHILD_CHECK(shmk_pool_supervisor_pid(p) == sp, "a second spawner");
	CHILD_CHECK(shmk_pool_deaths(p) == 2, "%u deaths", shmk_pool_deaths(p));
	lazy_end(c, p, s);
	return 0;
}

Test(pool3, a_lazy_spawner_is_forked_from_the_service_only_at_the_first_replacement)
{
	in_one_thread(lazy_first_replacement, NULL);
}

/* A fork of a service with threads could copy a lock one of them holds:
 * the pool stops, with the cause, and forks nothing. */
static int lazy_then_thread(void *arg)
{
	shmk_ctx *c = lazy_open();
	shmk_pool *p = lazy_pool(c, 2); /* one thread: lazy */
	struct second_thread t;
	int rc;

	(void)arg;
	second_thread_start(&t);
	CHILD_CHECK(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0) == 0, "lease");
	kill_idle(p, 0);
	cmd(p, 0, OP_ECHO, 1);
	rc = shmk_pool_run(p, 0, NULL);
	CHILD_CHECK(rc == -ESHUTDOWN, "run: %d %s", rc, shmk_last_error());
	rc = shmk_pool_lease(p, SHMK_LEASE_WAIT, 0);
	CHILD_CHECK(rc == -ESHUTDOWN, "lease: %d", rc);
	CHILD_CHECK(strstr(shmk_last_error(), "no worker can be replaced") &&
			    strstr(shmk_last_error(), "started threads"),
		    "the stop does not say why: %s", shmk_last_error());
	CHILD_CHECK(shmk_pool_supervisor_pid(p) == 0, "a spawner was forked");
	second_thread_stop(&t);
	lazy_end(c, p, 0);
	return 0;
}

Test(pool3, a_lazy_pool_whose_service_started_a_thread_stops_rather_than_fork_it)
{
	in_one_thread(lazy_then_thread, NULL);
}

/* Created with threads (the test process has them): the spawner comes at
 * creation, as without the flag, and replaces workers while they run. */
static int thread_then_lazy(void *arg)
{
	struct second_thread t;
	shmk_ctx *c;
	shmk_pool *p;

	(void)arg;
	second_thread_start(&t);
	c = lazy_open();
	p = lazy_pool(c, 1);
	CHILD_CHECK(shmk_pool_supervisor_pid(p) > 0, "no spawner at creation");
	CHILD_CHECK(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0) == 0, "lease");
	replace_by_kill(p, 0, 7);
	second_thread_stop(&t);
	lazy_end(c, p, 0);
	return 0;
}

Test(pool3, a_lazy_flag_in_a_service_with_threads_forks_the_spawner_at_creation)
{
	in_one_thread(thread_then_lazy, NULL);
}

/* A lazy spawner that cannot be made: failpoint fp fails (with err) while
 * the first replacement is asked for; the pool stops, and says why. */
struct lazy_failure {
	const char *fp;
	int err;
	const char *why;
};

static int lazy_fails(void *arg)
{
	const struct lazy_failure *f = arg;
	shmk_ctx *c = lazy_open();
	shmk_pool *p = lazy_pool(c, 1);
	int rc;

	CHILD_CHECK(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0) == 0, "lease");
	CHILD_CHECK(fiu_enable(f->fp, 1, (void *)(intptr_t)f->err, 0) == 0,
		    "fiu");
	kill_idle(p, 0);
	fiu_disable(f->fp);
	cmd(p, 0, OP_ECHO, 1);
	rc = shmk_pool_run(p, 0, NULL);
	CHILD_CHECK(rc == -ESHUTDOWN, "run: %d %s", rc, shmk_last_error());
	CHILD_CHECK(shmk_pool_lease(p, SHMK_LEASE_WAIT, 0) == -ESHUTDOWN, "lease");
	CHILD_CHECK(strstr(shmk_last_error(), f->why) &&
			    strstr(shmk_last_error(), strerror(f->err)),
		    "the stop does not say why: %s", shmk_last_error());
	CHILD_CHECK(shmk_pool_supervisor_pid(p) == 0, "a spawner came up");
	lazy_end(c, p, 0);
	return 0;
}

Test(pool3, a_lazy_spawner_that_cannot_be_forked_stops_the_pool_with_the_cause)
{
	static const struct lazy_failure f = {"shmk/pool/fork_spawner", EAGAIN,
					      "cannot fork the spawner"};
	in_one_thread(lazy_fails, &f);
}

/* Its pipes are made when it is forked: out of descriptors then, the pool
 * stops with that cause. */
Test(pool3, a_lazy_spawner_without_descriptors_for_its_pipes_stops_the_pool_with_the_cause)
{
	static const struct lazy_failure f = {"shmk/sys/socketpair", EMFILE,
					      "cannot create pipes"};
	in_one_thread(lazy_fails, &f);
}

/* Forked from the service long after create, the spawner closes what the
 * service opened since, as every child of the pool does. */
static int lazy_descriptors(void *arg)
{
	shmk_ctx *c = lazy_open();
	shmk_pool *p = lazy_pool(c, 1);
	struct pollfd pf;
	struct stat st;
	int pp[2];
	char b;

	(void)arg;
	CHILD_CHECK(pipe(pp) == 0 && fstat(pp[0], &st) == 0, "pipe"); /* no O_CLOEXEC */
	CHILD_CHECK(shmk_pool_lease(p, SHMK_LEASE_FAIL, 0) == 0, "lease");
	replace_by_kill(p, 0, 8);
	CHILD_CHECK(!holds_pipe(shmk_pool_supervisor_pid(p), st.st_ino),
		    "the lazy spawner holds the service's pipe");
	CHILD_CHECK(!holds_pipe(shmk_pool_worker_pid(p, 0), st.st_ino),
		    "its replacement holds the service's pipe");
	close(pp[1]);
	pf = (struct pollfd){.fd = pp[0], .events = POLLIN};
	CHILD_CHECK(poll(&pf, 1, 5000) == 1 && read(pp[0], &b, 1) == 0,
		    "no EOF on the pipe");
	close(pp[0]);
	lazy_end(c, p, 0);
	return 0;
}

Test(pool3, a_lazy_spawner_holds_no_descriptor_the_service_opened_after_create)
{
	in_one_thread(lazy_descriptors, NULL);
}
