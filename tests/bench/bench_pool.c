/* SPDX-License-Identifier: MIT */
/* bench_pool.c - the worker pool against a pool written by hand with
 * nothing of the library's architecture (tests/bench/bare_pool.h: the
 * caller forks its workers itself; no supervisor, no registry, no watch
 * thread), measured in the same run.
 *
 * 1. init + teardown, 3 workers, 3 x 1 MiB slots
 *    lib : shmk_pool_create() + shmk_pool_destroy() (one ctx opened once,
 *          durability off, registry on a private tmpfs when run as root)
 *    bare: an anonymous MAP_SHARED control page; 3 slots made with
 *          shm_open(O_CREAT|O_EXCL)/posix_fallocate/mmap/close; the caller
 *          forks the 3 workers, each adds 1 to a ready word and FUTEX_WAKEs
 *          it, the caller FUTEX_WAITs until it reads 3.  Teardown: SIGTERM
 *          to each worker, waitpid() of each, munmap + shm_unlink of the
 *          slots, munmap of the control page.  The "up" part (start ->
 *          every worker ready) and the teardown are also reported apart.
 *          The whole leak-soak cycle (with reap, open, segments and jobs)
 *          is bench_cycle.  Measured twice: with the spawner forked at
 *          creation (the default; "pool_init_teardown") and with
 *          SHMK_OPEN_LAZY_SPAWNER ("pool_init_teardown_lazy"), where a pool
 *          without deaths has no spawner, as leak-soak runs it.
 * 2. job round trip on a leased worker
 *    lib : shmk_pool_run() on a slot leased once; the job increments an int
 *          at the start of its slot (the result and the slot are checked)
 *    bare: the same job function on the slot of worker 0 of a bare pool of
 *          3: store + FUTEX_WAKE of its doorbell, FUTEX_WAIT until its done
 *          word says so; the result and the slot are checked the same way.
 *          A pipe ping-pong (1 byte each way) is reported for reference
 * 3. worker SIGKILL -> replacement ready (backoff_min_ms = 1)
 *    lib : from kill(worker, SIGKILL) until shmk_pool_run() on the
 *          (still leased) slot succeeds again: the first run fails with
 *          -ECHILD when the death is seen, the next one waits (futex) for
 *          the replacement and runs a job on it; the worker pid is checked
 *          to have changed.  The quarantine window is 1 ms and kills are
 *          spaced by a few ms, so every restart is at the backoff floor
 *          (checked through deaths_in_window)
 *    bare: the same steps on worker 0 of a bare pool: kill(SIGKILL),
 *          waitpid(), fork() of the replacement, FUTEX_WAIT until it is
 *          ready, one job on it
 *    Budget: lib <= bare + 2 ms (raw difference, backoff included); the
 *    difference minus the configured 1 ms backoff floor is reported too.
 *
 * Rounds are interleaved (bare, lib, bare, lib, ...); medians over rounds.
 *
 *   bench_pool [--json] [--only LIST] [--rounds N] [--init-rounds N]
 *              [--init-ops N] [--rt-ops N] [--kills N] [--registry-in DIR]
 *
 * Budgets (docs/DESIGN.md): 1 lib/bare <= 1.3 (the leak-soak cycle's init
 * budget), 2 lib/bare <= 1.1; 3 lib - bare <= 2 ms.  Exit status 0 also
 * when over budget; 1 on any functional error; 2 on bad usage. */
#include "bare_pool.h"

#define PROG "bench_pool"
#define WORKERS 3
#define SLOT_SIZE (1u << 20)
#define BUDGET_INIT 1.3
#define BUDGET_RT 1.1
#define BUDGET_RESPAWN_MS 2.0
#define BACKOFF_MS 1
#define KILL_GAP_MS 5

static struct {
	char dir[PATH_MAX];
	char ns[40];
	shmk_ctx *ctx;
	shmk_ctx *ctx_lazy;         /* SHMK_OPEN_LAZY_SPAWNER */
	bool lazy;                  /* pools of the init bench: ctx_lazy */
	shmk_pool *pool;            /* of the benchmark running now */
	int lease;                  /* leased slot of pool, or -1 */
	struct bare_pool bp;        /* the floor (bare_pool.h) */
	pid_t pipe_kid;
	bool json;
} S = {.lease = -1};

/* ---- small helpers --------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_stop)
		;
}

static int job_inc(void *mem, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	return ++*(int *)mem;
}

static void pool_opts(struct shmk_pool_options *o)
{
	memset(o, 0, sizeof *o);
	o->workers = WORKERS;
	o->slot_size = SLOT_SIZE;
	o->fn = job_inc;
	o->title = "bench_pool";
}

/* The context pools are made in now. */
static shmk_ctx *pool_ctx(void) { return S.lazy ? S.ctx_lazy : S.ctx; }

static int pool_up(const struct shmk_pool_options *o, bool lease)
{
	int rc = shmk_pool_create(pool_ctx(), o, &S.pool);

	if (rc < 0) {
		bench_err(PROG, "shmk_pool_create: %s", shmk_last_error());
		S.pool = NULL;
		return rc;
	}
	if (lease) {
		if ((rc = shmk_pool_lease(S.pool, SHMK_LEASE_WAIT, 0)) < 0) {
			bench_err(PROG, "shmk_pool_lease: %s", shmk_last_error());
			return rc;
		}
		S.lease = rc;
	}
	return 0;
}

static int pool_down(void)
{
	int rc;

	if (!S.pool)
		return 0;
	if (S.lease >= 0)
		shmk_pool_release(S.pool, (unsigned)S.lease);
	S.lease = -1;
	rc = shmk_pool_destroy(S.pool);
	S.pool = NULL;
	if (rc < 0)
		bench_err(PROG, "shmk_pool_destroy: %s", shmk_last_error());
	return rc;
}

/* ---- 1. init + teardown ------------------------------------------------------ */

/* Time spent bringing pools up (start -> every worker ready) in the current
 * round; the rest of a round is teardown. */
static uint64_t up_ns;

/* One bare init + teardown.  0 or a negative errno. */
static int bare_init_teardown(void)
{
	uint64_t t0 = bench_now_ns();
	int rc;

	if ((rc = bare_pool_start(&S.bp)) < 0) {
		bench_err(PROG, "bare pool start: %s", strerror(-rc));
		return rc;
	}
	up_ns += bench_now_ns() - t0;
	if ((rc = bare_pool_stop(&S.bp)) < 0)
		bench_err(PROG, "bare pool stop: %s", strerror(-rc));
	return rc;
}

static int lib_init_teardown(void)
{
	struct shmk_pool_options o;
	uint64_t t0 = bench_now_ns();
	int rc;

	pool_opts(&o);
	if ((rc = pool_up(&o, false)) < 0)
		return rc;
	up_ns += bench_now_ns() - t0;
	if (shmk_pool_worker_pid(S.pool, WORKERS - 1) <= 0) {
		bench_err(PROG, "pool created but worker %d has no pid",
			  WORKERS - 1);
		pool_down();
		return -EPROTO;
	}
	return pool_down();
}

/* ns per init + teardown, or a negative errno; *up: ns of the "up" part. */
static double init_round(bool lib, size_t ops, double *up)
{
	uint64_t t0 = bench_now_ns();

	up_ns = 0;
	for (size_t i = 0; i < ops; i++) {
		int rc = lib ? lib_init_teardown() : bare_init_teardown();
		if (rc < 0)
			return rc;
		if (bench_stop)
			return -EINTR;
	}
	*up = (double)up_ns / (double)ops;
	return (double)(bench_now_ns() - t0) / (double)ops;
}

static int bench_init(size_t rounds, size_t ops, bool lazy)
{
	double *lib = calloc(rounds, sizeof *lib), *bare = calloc(rounds, sizeof *bare);
	double *lib_up = calloc(rounds, sizeof *lib_up);
	double *bare_up = calloc(rounds, sizeof *bare_up), *lib_dn = NULL, *bare_dn = NULL;
	double lu, bu, ld, bd;
	struct bench_result r = {0};
	char xt[448], xj[384];
	double v, pr, dummy;
	int rc = 0;

	lib_dn = calloc(rounds, sizeof *lib_dn);
	bare_dn = calloc(rounds, sizeof *bare_dn);
	if (!lib || !bare || !lib_up || !bare_up || !lib_dn || !bare_dn) {
		rc = -ENOMEM;
		goto out;
	}
	S.lazy = lazy;
	if ((v = init_round(false, 2, &dummy)) < 0 ||
	    (v = init_round(true, 2, &dummy)) < 0) {
		rc = (int)v;
		goto out;
	}
	for (size_t i = 0; i < rounds; i++) {
		if ((v = init_round(false, ops, &bare_up[i])) < 0 ||
		    (bare[i] = v, v = init_round(true, ops, &lib_up[i])) < 0) {
			rc = (int)v;
			goto out;
		}
		lib[i] = v;
		lib_dn[i] = lib[i] - lib_up[i];
		bare_dn[i] = bare[i] - bare_up[i];
	}
	if (shmk_owned_count(pool_ctx()) != 0) {
		bench_err(PROG, "the ctx still owns %zu segments after the pools "
				"were destroyed",
			  shmk_owned_count(pool_ctx()));
		rc = -EPROTO;
		goto out;
	}
	r.id = lazy ? "pool_init_teardown_lazy" : "pool_init_teardown";
	r.label = lazy ? "pool init+teardown, 3 workers, 3 x 1MiB, lazy spawner"
		       : "pool init+teardown, 3 workers, 3 x 1MiB, spawner at "
			 "creation";
	r.ops_per_round = ops;
	r.budget = BUDGET_INIT;
	bench_finish(&r, lib, bare, rounds);
	pr = bench_pair_ratio(lib, bare, rounds);
	lu = bench_median(lib_up, rounds);
	bu = bench_median(bare_up, rounds);
	ld = bench_median(lib_dn, rounds);
	bd = bench_median(bare_dn, rounds);
	snprintf(xt, sizeof xt,
		 "lib %.2f ms, bare %.2f ms; up to ready: lib %.2f / bare %.2f ms, "
		 "teardown: lib %.2f / bare %.2f ms; median of per-round ratios "
		 "%.2f; floor: 3 slots (shm_open/fallocate/mmap), 3 workers "
		 "forked by the caller (futex ready), SIGTERM + waitpid, "
		 "munmap/shm_unlink",
		 r.lib.med / 1e6, r.bare.med / 1e6, lu / 1e6, bu / 1e6, ld / 1e6,
		 bd / 1e6, pr);
	snprintf(xj, sizeof xj,
		 ",\"pair_ratio\":%.3f,\"lib_up_ns\":%.1f,\"bare_up_ns\":%.1f,"
		 "\"lib_teardown_ns\":%.1f,\"bare_teardown_ns\":%.1f,"
		 "\"workers\":3,\"slot_size\":1048576,"
		 "\"floor\":\"caller forks 3 workers, futex ready, SIGTERM, "
		 "waitpid; 3 slots, anonymous control page\"",
		 pr, lu, bu, ld, bd);
	r.extra_text = xt;
	r.extra_json = xj;
	bench_print(&r, S.json);
out:
	free(lib);
	free(bare);
	free(lib_up);
	free(bare_up);
	free(lib_dn);
	free(bare_dn);
	S.lazy = false;
	return rc;
}

/* ---- 2. job round trip -------------------------------------------------------- */

static int pipe_down[2] = {-1, -1}, pipe_up[2] = {-1, -1};
static int pipe_counter;

static __attribute__((noreturn)) void pipe_child(void)
{
	int counter = 0;
	char b;

	bench_child_signals();
	close(pipe_down[1]);
	close(pipe_up[0]);
	while (read(pipe_down[0], &b, 1) == 1) {
		b = (char)++counter;
		if (write(pipe_up[1], &b, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static int rt_setup(void)
{
	int rc;

	if ((rc = bare_pool_start(&S.bp)) < 0) {
		bench_err(PROG, "bare pool start: %s", strerror(-rc));
		return rc;
	}
	if (pipe2(pipe_down, O_CLOEXEC) < 0 || pipe2(pipe_up, O_CLOEXEC) < 0)
		return -errno;
	if ((S.pipe_kid = fork()) == 0)
		pipe_child();
	if (S.pipe_kid < 0) {
		S.pipe_kid = 0;
		return -errno;
	}
	close(pipe_down[0]);
	close(pipe_up[1]);
	pipe_down[0] = pipe_up[1] = -1;
	return 0;
}

static int rt_teardown(void)
{
	int rc = bare_pool_stop(&S.bp), st;

	for (int i = 0; i < 2; i++) {
		if (pipe_down[i] >= 0)
			close(pipe_down[i]);
		if (pipe_up[i] >= 0)
			close(pipe_up[i]);
		pipe_down[i] = pipe_up[i] = -1;
	}
	if (S.pipe_kid > 0) {
		if (bench_reap_pid(S.pipe_kid, &st) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			rc = -ECHILD;
		S.pipe_kid = 0;
	}
	return rc;
}

/* One job on worker 0 of the bare pool, checked as the lib's is. */
static int bare_job(void)
{
	int res = 0, rc, *mem = S.bp.mem[0];
	int want = *mem + 1;

	if ((rc = bare_pool_run(&S.bp, 0, &res)) < 0) {
		if (rc != -EINTR)
			bench_err(PROG, "bare job: %s", strerror(-rc));
		return rc;
	}
	if (res != want || *mem != want) {
		bench_err(PROG, "bare job result %d, memory %d, expected %d", res,
			  *mem, want);
		return -EPROTO;
	}
	return 0;
}

enum rt_side { RT_LIB, RT_FUTEX, RT_PIPE };

static int rt_one(enum rt_side side)
{
	switch (side) {
	case RT_LIB: {
		int res = 0, rc, *mem = shmk_pool_slot_mem(S.pool, (unsigned)S.lease);
		int want = *mem + 1;
		if ((rc = shmk_pool_run(S.pool, (unsigned)S.lease, &res)) < 0) {
			bench_err(PROG, "shmk_pool_run: %s", shmk_last_error());
			return rc;
		}
		if (res != want || *mem != want) {
			bench_err(PROG, "job result %d, memory %d, expected %d",
				  res, *mem, want);
			return -EPROTO;
		}
		return 0;
	}
	case RT_FUTEX:
		return bare_job();
	case RT_PIPE: {
		char b = 'x';
		if (write(pipe_down[1], &b, 1) != 1 || read(pipe_up[0], &b, 1) != 1) {
			if (errno == EINTR && bench_stop)
				return -EINTR;
			bench_err(PROG, "pipe ping-pong: %s", strerror(errno));
			return -EIO;
		}
		if (b != (char)++pipe_counter) {
			bench_err(PROG, "pipe ping-pong: bad reply");
			return -EPROTO;
		}
		return 0;
	}
	}
	return -EINVAL;
}

static double rt_round(enum rt_side side, size_t ops)
{
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < ops; i++) {
		int rc = rt_one(side);
		if (rc < 0)
			return rc;
		if (bench_stop)
			return -EINTR;
	}
	return (double)(bench_now_ns() - t0) / (double)ops;
}

static int bench_roundtrip(size_t rounds, size_t ops)
{
	double *lib = calloc(rounds, sizeof *lib), *bare = calloc(rounds, sizeof *bare);
	double *pipe_v = calloc(rounds, sizeof *pipe_v);
	struct shmk_pool_options o;
	struct bench_result r = {0};
	char xt[256], xj[256];
	double v, pipe_med, pr;
	int rc = 0;

	if (!lib || !bare || !pipe_v) {
		rc = -ENOMEM;
		goto out;
	}
	pool_opts(&o);
	if ((rc = pool_up(&o, true)) < 0)
		goto out;
	if ((rc = rt_setup()) < 0) {
		bench_err(PROG, "round-trip setup: %s", strerror(-rc));
		goto out;
	}
	/* warm-up */
	for (int s = 0; s < 3; s++)
		if ((v = rt_round((enum rt_side)s, ops / 10 + 1)) < 0) {
			rc = (int)v;
			goto out;
		}
	for (size_t i = 0; i < rounds; i++) {
		if ((v = rt_round(RT_FUTEX, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		bare[i] = v;
		if ((v = rt_round(RT_LIB, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		lib[i] = v;
		if ((v = rt_round(RT_PIPE, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		pipe_v[i] = v;
	}
	pipe_med = bench_median(pipe_v, rounds);
	r.id = "pool_job_roundtrip";
	r.label = "job round trip on a leased worker";
	r.ops_per_round = ops;
	r.budget = BUDGET_RT;
	bench_finish(&r, lib, bare, rounds);
	pr = bench_pair_ratio(lib, bare, rounds);
	snprintf(xt, sizeof xt,
		 "median of per-round ratios %.2f; floor: the same job on a "
		 "worker the caller forked, futex doorbell/done; reference: pipe ping-pong "
		 "%.0f ns/op (lib/pipe %.2f)",
		 pr, pipe_med, pipe_med > 0 ? r.lib.med / pipe_med : 0);
	snprintf(xj, sizeof xj,
		 ",\"pair_ratio\":%.3f,\"floor\":\"same job, futex doorbell/done, direct fork\","
		 "\"pipe_ns_per_op\":%.1f,"
		 "\"pipe_ns_p25\":%.1f,\"pipe_ns_p75\":%.1f,\"ratio_to_pipe\":%.3f",
		 pr, pipe_med, bench_quantile(pipe_v, rounds, 0.25),
		 bench_quantile(pipe_v, rounds, 0.75),
		 pipe_med > 0 ? r.lib.med / pipe_med : 0);
	r.extra_text = xt;
	r.extra_json = xj;
	bench_print(&r, S.json);
out:
	{
		int r1 = rt_teardown(), r2 = pool_down();
		if (rc == 0 && r1 < 0) {
			bench_err(PROG, "a bare ping-pong child did not exit cleanly");
			rc = r1;
		}
		if (rc == 0)
			rc = r2;
	}
	free(lib);
	free(bare);
	free(pipe_v);
	return rc;
}

/* ---- 3. SIGKILL -> replacement ready --------------------------------------- */

/* ns from kill(SIGKILL) of bare worker 0 to a job done on its
 * replacement, or a negative errno. */
static double bare_respawn(void)
{
	uint64_t t0 = bench_now_ns();
	int rc;

	if ((rc = bare_pool_respawn(&S.bp, 0)) < 0) {
		if (rc != -EINTR)
			bench_err(PROG, "bare respawn: %s", strerror(-rc));
		return rc;
	}
	if ((rc = bare_job()) < 0)
		return rc;
	return (double)(bench_now_ns() - t0);
}

/* ns from kill(SIGKILL) to a successful job on the replacement, or a
 * negative errno.  *streak is set if the death was not at the floor. */
static double lib_respawn(bool *streak)
{
	unsigned slot = (unsigned)S.lease;
	pid_t old = shmk_pool_worker_pid(S.pool, slot), now_pid;
	struct shmk_death d;
	uint64_t t0, t1;
	int rc, res, fails = 0;

	if (old <= 0) {
		bench_err(PROG, "slot %u has no worker before the kill", slot);
		return -EPROTO;
	}
	t0 = bench_now_ns();
	if (kill(old, SIGKILL) < 0) {
		rc = -errno;
		bench_err(PROG, "kill %d: %s", (int)old, strerror(errno));
		return rc;
	}
	while ((rc = shmk_pool_run(S.pool, slot, &res)) == -ECHILD && fails < 10)
		fails++;
	t1 = bench_now_ns();
	if (rc < 0) {
		bench_err(PROG, "shmk_pool_run after the kill: %s",
			  shmk_last_error());
		return rc;
	}
	now_pid = shmk_pool_worker_pid(S.pool, slot);
	if (now_pid <= 0 || now_pid == old) {
		bench_err(PROG, "slot %u: worker pid %d after killing %d", slot,
			  (int)now_pid, (int)old);
		return -EPROTO;
	}
	if (shmk_pool_last_death(S.pool, slot, &d) < 0 ||
	    d.kind != SHMK_DEATH_SIGKILL || d.pid != old) {
		bench_err(PROG, "slot %u: last death %s of pid %d, expected "
				"sigkill of %d",
			  slot, shmk_death_kind_name(d.kind), (int)d.pid,
			  (int)old);
		return -EPROTO;
	}
	*streak = d.deaths_in_window > 1;
	return (double)(t1 - t0);
}

static int bench_respawn(size_t kills)
{
	double *lib = calloc(kills, sizeof *lib), *bare = calloc(kills, sizeof *bare);
	struct shmk_pool_options o;
	struct bench_result r = {0};
	size_t streaks = 0;
	double v, diff, diff_nb;
	const char *verdict;
	int rc = 0;

	if (!lib || !bare) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = bare_pool_start(&S.bp)) < 0) {
		bench_err(PROG, "bare pool start: %s", strerror(-rc));
		goto out;
	}
	pool_opts(&o);
	o.backoff_min_ms = BACKOFF_MS;
	o.quarantine_window_ms = 1; /* so every kill restarts at the floor */
	o.quarantine_deaths = 1000;
	if ((rc = pool_up(&o, true)) < 0)
		goto out;
	/* warm-up */
	for (int i = 0; i < 3; i++) {
		bool s;
		if ((v = bare_respawn()) < 0 || (v = lib_respawn(&s)) < 0) {
			rc = (int)v;
			goto out;
		}
		sleep_ms(KILL_GAP_MS);
	}
	for (size_t i = 0; i < kills; i++) {
		bool s = false;
		if ((v = bare_respawn()) < 0) {
			rc = (int)v;
			goto out;
		}
		bare[i] = v;
		if ((v = lib_respawn(&s)) < 0) {
			rc = (int)v;
			goto out;
		}
		lib[i] = v;
		streaks += s;
		sleep_ms(KILL_GAP_MS);
		if (bench_stop) {
			rc = -EINTR;
			goto out;
		}
	}
	bench_finish(&r, lib, bare, kills);
	diff = (r.lib.med - r.bare.med) / 1e6;
	diff_nb = diff - BACKOFF_MS;
	verdict = diff <= BUDGET_RESPAWN_MS ? "PASS" : "OVER";
	fprintf(S.json ? stderr : stdout,
		"worker SIGKILL -> replacement ready: lib %.3f ms, bare kill+waitpid+"
		"fork+ready+job "
		"%.3f ms, difference %.3f ms (budget floor + %.2f ms) %s; "
		"difference minus the configured backoff floor (%d ms): %.3f ms  "
		"[%zu kills; IQR lib %.3f-%.3f, bare %.3f-%.3f ms; best case "
		"(min - min) %.3f ms; ready = "
		"shmk_pool_run succeeds on the leased slot; backoff_min_ms=%d, "
		"reinit zero; %zu kill(s) not at the backoff floor]\n",
		r.lib.med / 1e6, r.bare.med / 1e6, diff, BUDGET_RESPAWN_MS,
		verdict, BACKOFF_MS, diff_nb, kills, r.lib.p25 / 1e6,
		r.lib.p75 / 1e6, r.bare.p25 / 1e6, r.bare.p75 / 1e6,
		(r.lib.min - r.bare.min) / 1e6, BACKOFF_MS, streaks);
	fflush(S.json ? stderr : stdout);
	if (S.json) {
		printf("{\"benchmark\":\"pool_worker_respawn\",\"label\":\"worker "
		       "SIGKILL -> replacement ready\",\"rounds\":%zu,"
		       "\"ops_per_round\":1,\"lib_ns_per_op\":%.1f,"
		       "\"bare_ns_per_op\":%.1f,\"lib_ns_p25\":%.1f,"
		       "\"lib_ns_p75\":%.1f,\"lib_ns_min\":%.1f,"
		       "\"bare_ns_p25\":%.1f,\"bare_ns_p75\":%.1f,"
		       "\"bare_ns_min\":%.1f,\"ratio\":%.3f,\"diff_ms\":%.4f,"
		       "\"diff_minus_backoff_ms\":%.4f,\"diff_min_ms\":%.4f,"
		       "\"backoff_min_ms\":%d,"
		       "\"budget_diff_ms\":%.2f,\"verdict\":\"%s\","
		       "\"kills_not_at_floor\":%zu}\n",
		       kills, r.lib.med, r.bare.med, r.lib.p25, r.lib.p75,
		       r.lib.min, r.bare.p25, r.bare.p75, r.bare.min, r.ratio, diff,
		       diff_nb, (r.lib.min - r.bare.min) / 1e6, BACKOFF_MS, BUDGET_RESPAWN_MS, verdict, streaks);
		fflush(stdout);
	}
	if (streaks)
		fprintf(stderr, "%s: warning: %zu kill(s) were restarted above "
				"the backoff floor\n",
			PROG, streaks);
out:
	{
		int r2 = pool_down();
		if (rc == 0)
			rc = r2;
	}
	{
		int r3 = bare_pool_stop_sig(&S.bp, SIGKILL);
		if (rc == 0 && r3 < 0) {
			bench_err(PROG, "bare pool stop: %s", strerror(-r3));
			rc = r3;
		}
	}
	free(lib);
	free(bare);
	return rc;
}

/* ---- cleanup ------------------------------------------------------------- */

static int cleanup(void)
{
	int bad = 0;

	bare_pool_stop_sig(&S.bp, SIGKILL);
	if (S.pipe_kid > 0) {
		kill(S.pipe_kid, SIGKILL);
		bench_reap_pid(S.pipe_kid, NULL);
		S.pipe_kid = 0;
	}
	rt_teardown();
	if (pool_down() < 0)
		bad = -1;
	if (S.ctx_lazy && shmk_close(S.ctx_lazy) < 0) {
		bench_err(PROG, "shmk_close: %s", shmk_last_error());
		bad = -1;
	}
	S.ctx_lazy = NULL;
	if (bench_teardown_env(PROG, &S.ctx, S.dir, S.ns, true) < 0)
		bad = -1;
	return bad;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--json] [--only LIST] [--rounds N] [--init-rounds N]\n"
		"       [--init-ops N] [--rt-ops N] [--kills N] [--registry-in DIR]\n"
		"  --only LIST   comma list of init,rt,respawn (default all)\n"
		"  --rounds N    interleaved rounds of job round trips (default 15)\n"
		"  --init-rounds N  interleaved rounds of init+teardown (default 41)\n"
		"  --init-ops N  pool init+teardowns per round (default 4)\n"
		"  --rt-ops N    job round trips per round (default 20000)\n"
		"  --kills N     SIGKILL -> replacement samples (default 151)\n"
		"  --registry-in DIR  parent of the temporary registry directory\n"
		"  --json        one JSON object per benchmark on stdout\n",
		PROG);
}

int main(int argc, char **argv)
{
	size_t rounds = 15, init_rounds = 41, init_ops = 4, rt_ops = 20000, kills = 151;
	bool do_init = true, do_rt = true, do_respawn = true;
	const char *parent = NULL;
	struct shmk_options o = {0};
	uint64_t t0 = bench_now_ns();
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			S.json = true;
		} else if (!strcmp(a, "--rounds")) {
			rounds = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--init-rounds")) {
			init_rounds = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--init-ops")) {
			init_ops = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--rt-ops")) {
			rt_ops = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--kills")) {
			kills = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--registry-in") && val) {
			parent = val;
			i++;
		} else if (!strcmp(a, "--only") && val) {
			do_init = strstr(val, "init") != NULL;
			do_rt = strstr(val, "rt") != NULL;
			do_respawn = strstr(val, "respawn") != NULL;
			if (!do_init && !do_rt && !do_respawn) {
				usage(stderr);
				return 2;
			}
			i++;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	bench_trap_signals();
	bench_unique_ns(S.ns, sizeof S.ns, "bpool");
	S.bp.workers = WORKERS;
	S.bp.slot_size = SLOT_SIZE;
	S.bp.fn = job_inc;
	for (int i = 0; i < WORKERS; i++)
		snprintf(S.bp.names[i], sizeof S.bp.names[i], "/%s.bare%d",
			 S.ns, i);
	if (!parent)
		parent = bench_registry_parent();
	if ((rc = bench_mkdtemp(S.dir, sizeof S.dir, parent, "pool")) < 0) {
		S.dir[0] = '\0';
		bench_err(PROG, "mkdtemp under %s: %s", parent, strerror(-rc));
		bench_registry_parent_done();
		return 1;
	}
	o.dir = S.dir;
	o.ns = S.ns;
	o.durability = SHMK_DURABLE_OFF;
	o.flags = SHMK_OPEN_NO_REAP;
	if ((rc = shmk_open(&o, &S.ctx)) < 0) {
		bench_err(PROG, "shmk_open: %s", shmk_last_error());
		goto done;
	}
	o.flags |= SHMK_OPEN_LAZY_SPAWNER;
	if ((rc = shmk_open(&o, &S.ctx_lazy)) < 0) {
		bench_err(PROG, "shmk_open: %s", shmk_last_error());
		goto done;
	}
	fprintf(S.json ? stderr : stdout,
		"# %s: libshmkeeper %s, namespace %s, registry %s (%s), %ld "
		"CPU(s)\n",
		PROG, shmk_version(), S.ns, S.dir, bench_fs_name(S.dir),
		sysconf(_SC_NPROCESSORS_ONLN));
	fflush(NULL);
	if (do_init && rc == 0)
		rc = bench_init(init_rounds, init_ops, false);
	if (do_init && rc == 0)
		rc = bench_init(init_rounds, init_ops, true);
	if (do_rt && rc == 0)
		rc = bench_roundtrip(rounds, rt_ops);
	if (do_respawn && rc == 0)
		rc = bench_respawn(kills);
done:
	if (bench_stop && rc == 0)
		rc = -EINTR;
	if (cleanup() < 0 && rc == 0)
		rc = -EIO;
	if (rc == -EINTR)
		bench_err(PROG, "interrupted");
	fprintf(S.json ? stderr : stdout, "# %s: %s in %.1f s\n", PROG,
		rc == 0 ? "done" : "FAILED", (double)(bench_now_ns() - t0) / 1e9);
	return rc == 0 ? 0 : 1;
}
