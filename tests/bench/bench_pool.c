/* bench_pool.c - the worker pool against the bare processes and syscalls a
 * minimal hand-written supervisor would use, measured in the same run.
 *
 * 1. init + teardown, 3 workers, 3 x 1 MiB slots
 *    lib : shmk_pool_create() + shmk_pool_destroy() (one ctx opened once,
 *          durability off, registry on a private tmpfs when run as root)
 *    bare: the floor of a minimal supervisor with the same process model:
 *          shm_open/posix_fallocate/mmap of a 4 KiB control segment and
 *          3 x 1 MiB slots; fork of ONE intermediate process (the
 *          supervisor) which forks the 3 workers; each worker adds 1 to a
 *          ready word in the control segment and FUTEX_WAKEs it; the
 *          caller FUTEX_WAITs until it reads 3.  Teardown: one byte down a
 *          pipe to the intermediate, which SIGTERMs its 3 workers, waitpid()s
 *          them and exits; the caller waitpid()s it, then munmap +
 *          shm_unlink of the 4 segments (each fd is closed right after its
 *          mmap, as the library does).  The "up" part (start -> every
 *          worker ready) and the teardown are also reported apart.
 * 2. job round trip on a leased worker
 *    lib : shmk_pool_run() on a slot leased once; the job increments an int
 *          in the slot's memory (the result is checked)
 *    bare: a forked child and a shared-memory doorbell/done pair of futex
 *          words, the same mechanism as the pool (store + FUTEX_WAKE to
 *          post, FUTEX_WAIT until done); a pipe ping-pong (1 byte each
 *          way) is reported for reference
 * 3. worker SIGKILL -> replacement ready (backoff_min_ms = 1)
 *    lib : from kill(worker, SIGKILL) until shmk_pool_run() on the
 *          (still leased) slot succeeds again: the first run fails with
 *          -ECHILD when the supervisor sees the death, the next one waits
 *          (futex) for the replacement and runs a job on it; the worker
 *          pid is checked to have changed.  The quarantine window is 1 ms
 *          and kills are spaced by a few ms, so every restart is at the
 *          backoff floor (checked through deaths_in_window)
 *    bare: fork() + the child stores a ready word and FUTEX_WAKEs it,
 *          measured from just before fork() until the parent sees it
 *    Budget: lib <= bare + 2 ms (raw difference, backoff included); the
 *    difference minus the configured 1 ms backoff floor is reported too.
 *
 * Rounds are interleaved (bare, lib, bare, lib, ...); medians over rounds.
 *
 *   bench_pool [--json] [--only LIST] [--rounds N] [--init-rounds N]
 *              [--init-ops N] [--rt-ops N] [--kills N] [--registry-in DIR]
 *
 * Budgets (docs/DESIGN.md): 1 and 2 lib/bare <= 1.5; 3 lib - bare <= 2 ms.
 * Exit status 0 also when over budget; 1 on any functional error; 2 on bad
 * usage. */
#include "bench.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PROG "bench_pool"
#define WORKERS 3
#define SLOT_SIZE (1u << 20)
#define CTL_SIZE 4096
#define BUDGET_RATIO 1.5
#define BUDGET_RESPAWN_MS 2.0
#define BACKOFF_MS 1
#define KILL_GAP_MS 5

static struct {
	char dir[PATH_MAX];
	char ns[40];
	shmk_ctx *ctx;
	shmk_pool *pool;            /* of the benchmark running now */
	int lease;                  /* leased slot of pool, or -1 */
	pid_t kid;                  /* a bare child not waited for yet */
	pid_t pipe_kid;
	char bare_names[WORKERS + 1][64];
	bool json;
} S = {.lease = -1};

/* ---- small helpers --------------------------------------------------------- */

static long fx_wait(_Atomic uint32_t *w, uint32_t v, const struct timespec *rel)
{
	return syscall(SYS_futex, w, FUTEX_WAIT, v, rel, NULL, 0);
}

static void fx_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Waits until *w >= want (10 s at most).  0, -ETIMEDOUT or -EINTR. */
static int wait_at_least(_Atomic uint32_t *w, uint32_t want)
{
	uint64_t deadline = bench_now_ns() + 10000000000ull;

	for (;;) {
		uint32_t v = atomic_load(w);
		struct timespec ts = {1, 0};
		if (v >= want)
			return 0;
		if (bench_stop)
			return -EINTR;
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		fx_wait(w, v, &ts);
	}
}

static int reap(pid_t pid, int *status)
{
	int st = 0;
	pid_t r;

	while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (status)
		*status = st;
	return r < 0 ? -errno : 0;
}

/* Children inherit bench_trap_signals()'s handlers.  SIGTERM gets its
 * default action back (the bare supervisor stops its workers with it, as the
 * pool's supervisor does); a Ctrl-C or hang-up meant for the whole process
 * group is ignored: the parent sees it and stops and reaps its children. */
static void child_signals(void)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

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

static int pool_up(const struct shmk_pool_options *o, bool lease)
{
	int rc = shmk_pool_create(S.ctx, o, &S.pool);

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

struct bare_ctl {
	_Atomic uint32_t ready;
};

/* Time spent bringing pools up (start -> every worker ready) in the current
 * round; the rest of a round is teardown. */
static uint64_t up_ns;

static __attribute__((noreturn)) void bare_worker(struct bare_ctl *c)
{
	child_signals();
	atomic_fetch_add(&c->ready, 1);
	fx_wake(&c->ready);
	for (;;)
		pause();
}

/* The intermediate "supervisor": forks the workers, waits for the stop
 * byte (or EOF), SIGTERMs and reaps them. */
static __attribute__((noreturn)) void bare_supervisor(struct bare_ctl *c,
						      int cmd_rfd)
{
	pid_t kids[WORKERS];
	unsigned n = 0;
	char b;

	for (; n < WORKERS; n++) {
		if ((kids[n] = fork()) == 0) {
			close(cmd_rfd);
			bare_worker(c);
		}
		if (kids[n] < 0)
			break;
	}
	if (n == WORKERS)
		while (read(cmd_rfd, &b, 1) < 0 && errno == EINTR)
			;
	for (unsigned i = 0; i < n; i++)
		kill(kids[i], SIGTERM);
	for (unsigned i = 0; i < n; i++)
		reap(kids[i], NULL);
	_exit(n == WORKERS ? 0 : 1);
}

static int bare_seg(const char *name, size_t size, void **addr)
{
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600), rc;

	if (fd < 0)
		return -errno;
	if ((rc = posix_fallocate(fd, 0, (off_t)size)) != 0) {
		close(fd);
		shm_unlink(name);
		return -rc;
	}
	*addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*addr == MAP_FAILED) {
		rc = -errno;
		close(fd);
		shm_unlink(name);
		return rc;
	}
	close(fd);
	return 0;
}

/* One bare init + teardown.  0 or a negative errno. */
static int bare_init_teardown(void)
{
	void *addr[WORKERS + 1] = {0};
	size_t size[WORKERS + 1];
	int cmd[2] = {-1, -1}, rc = 0, st = 0;
	unsigned made = 0;
	pid_t sup = -1;
	uint64_t t0 = bench_now_ns();

	for (; made <= WORKERS; made++) {
		size[made] = made == 0 ? CTL_SIZE : SLOT_SIZE;
		if ((rc = bare_seg(S.bare_names[made], size[made], &addr[made])) < 0) {
			bench_err(PROG, "bare %s: %s", S.bare_names[made],
				  strerror(-rc));
			goto out;
		}
	}
	if (pipe2(cmd, O_CLOEXEC) < 0) {
		rc = -errno;
		bench_err(PROG, "pipe2: %s", strerror(errno));
		goto out;
	}
	if ((sup = fork()) == 0) {
		close(cmd[1]);
		bare_supervisor(addr[0], cmd[0]);
	}
	if (sup < 0) {
		rc = -errno;
		bench_err(PROG, "fork: %s", strerror(errno));
		goto out;
	}
	S.kid = sup;
	close(cmd[0]);
	cmd[0] = -1;
	if ((rc = wait_at_least(&((struct bare_ctl *)addr[0])->ready, WORKERS)) < 0) {
		bench_err(PROG, "bare workers not ready: %s", strerror(-rc));
		goto out;
	}
	up_ns += bench_now_ns() - t0;
	/* teardown */
	if (write(cmd[1], "T", 1) != 1) {
		rc = -errno;
		bench_err(PROG, "write to the bare supervisor: %s", strerror(errno));
	}
out:
	if (cmd[0] >= 0)
		close(cmd[0]);
	if (cmd[1] >= 0)
		close(cmd[1]); /* EOF stops the bare supervisor in any case */
	if (sup > 0) {
		int r = reap(sup, &st);
		S.kid = 0;
		if (rc == 0 && (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st))) {
			bench_err(PROG, "bare supervisor: status 0x%x", (unsigned)st);
			rc = -ECHILD;
		}
	}
	for (unsigned i = 0; i < made; i++) {
		munmap(addr[i], size[i]);
		if (shm_unlink(S.bare_names[i]) < 0 && rc == 0) {
			rc = -errno;
			bench_err(PROG, "shm_unlink %s: %s", S.bare_names[i],
				  strerror(errno));
		}
	}
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

static int bench_init(size_t rounds, size_t ops)
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
	if (shmk_owned_count(S.ctx) != 0) {
		bench_err(PROG, "the ctx still owns %zu segments after the pools "
				"were destroyed",
			  shmk_owned_count(S.ctx));
		rc = -EPROTO;
		goto out;
	}
	r.id = "pool_init_teardown";
	r.label = "pool init+teardown, 3 workers, 3 x 1MiB";
	r.ops_per_round = ops;
	r.budget = BUDGET_RATIO;
	bench_finish(&r, lib, bare, rounds);
	pr = bench_pair_ratio(lib, bare, rounds);
	lu = bench_median(lib_up, rounds);
	bu = bench_median(bare_up, rounds);
	ld = bench_median(lib_dn, rounds);
	bd = bench_median(bare_dn, rounds);
	snprintf(xt, sizeof xt,
		 "lib %.2f ms, bare %.2f ms; up to ready: lib %.2f / bare %.2f ms, "
		 "teardown: lib %.2f / bare %.2f ms; median of per-round ratios "
		 "%.2f; floor: 4 segments (shm_open/fallocate/mmap) + fork of 1 "
		 "intermediate that forks 3 workers (futex ready), pipe stop, "
		 "SIGTERM + waitpid, munmap/shm_unlink",
		 r.lib.med / 1e6, r.bare.med / 1e6, lu / 1e6, bu / 1e6, ld / 1e6,
		 bd / 1e6, pr);
	snprintf(xj, sizeof xj,
		 ",\"pair_ratio\":%.3f,\"lib_up_ns\":%.1f,\"bare_up_ns\":%.1f,"
		 "\"lib_teardown_ns\":%.1f,\"bare_teardown_ns\":%.1f,"
		 "\"workers\":3,\"slot_size\":1048576,"
		 "\"floor\":\"fork intermediate + 3 grandchildren, futex ready, "
		 "pipe stop, SIGTERM, waitpid; 4 segments\"",
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
	return rc;
}

/* ---- 2. job round trip -------------------------------------------------------- */

struct pingpong {
	_Atomic uint32_t doorbell, done, stop;
	_Atomic int32_t result;
	int counter;
};

static struct pingpong *PP;
static int pipe_down[2] = {-1, -1}, pipe_up[2] = {-1, -1};
static int pipe_counter;

static __attribute__((noreturn)) void futex_child(struct pingpong *pp)
{
	uint32_t last = atomic_load(&pp->doorbell);

	child_signals();
	for (;;) {
		if (atomic_load(&pp->stop))
			_exit(0);
		uint32_t bell = atomic_load(&pp->doorbell);
		if (bell == last) {
			fx_wait(&pp->doorbell, last, NULL);
			continue;
		}
		last = bell;
		int r = ++pp->counter;
		atomic_store(&pp->result, r);
		atomic_store(&pp->done, last);
		fx_wake(&pp->done);
	}
}

static __attribute__((noreturn)) void pipe_child(void)
{
	int counter = 0;
	char b;

	child_signals();
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
	char name[64];
	int fd;

	/* The bare ping-pong page: a POSIX shm object like the pool's control
	 * segment (unlinked at once: nothing can leak). */
	snprintf(name, sizeof name, "/%s.bpp", S.ns);
	if ((fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		bench_err(PROG, "shm_open %s: %s", name, strerror(errno));
		return -errno;
	}
	shm_unlink(name);
	if (ftruncate(fd, 4096) < 0 ||
	    (PP = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		    MAP_FAILED) {
		int rc = -errno;
		PP = NULL;
		close(fd);
		bench_err(PROG, "ping-pong page: %s", strerror(-rc));
		return rc;
	}
	close(fd);
	if ((S.kid = fork()) == 0)
		futex_child(PP);
	if (S.kid < 0) {
		S.kid = 0;
		return -errno;
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
	int rc = 0, st;

	if (S.kid > 0 && PP) {
		atomic_store(&PP->stop, 1);
		atomic_fetch_add(&PP->doorbell, 1);
		fx_wake(&PP->doorbell);
		if (reap(S.kid, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = -ECHILD;
		S.kid = 0;
	}
	for (int i = 0; i < 2; i++) {
		if (pipe_down[i] >= 0)
			close(pipe_down[i]);
		if (pipe_up[i] >= 0)
			close(pipe_up[i]);
		pipe_down[i] = pipe_up[i] = -1;
	}
	if (S.pipe_kid > 0) {
		if (reap(S.pipe_kid, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = -ECHILD;
		S.pipe_kid = 0;
	}
	if (PP)
		munmap(PP, 4096);
	PP = NULL;
	return rc;
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
	case RT_FUTEX: {
		uint32_t seq = atomic_load(&PP->doorbell) + 1, d;
		atomic_store(&PP->doorbell, seq);
		fx_wake(&PP->doorbell);
		/* No timeout, as in the pool; a signal (Ctrl-C) interrupts. */
		while ((d = atomic_load(&PP->done)) != seq)
			if (fx_wait(&PP->done, d, NULL) < 0 && errno == EINTR &&
			    bench_stop)
				return -EINTR;
		if (atomic_load(&PP->result) != PP->counter) {
			bench_err(PROG, "bare futex ping-pong: bad result");
			return -EPROTO;
		}
		return 0;
	}
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
	r.budget = BUDGET_RATIO;
	bench_finish(&r, lib, bare, rounds);
	pr = bench_pair_ratio(lib, bare, rounds);
	snprintf(xt, sizeof xt,
		 "median of per-round ratios %.2f; floor: fork child, futex "
		 "doorbell/done in shared memory; reference: pipe ping-pong "
		 "%.0f ns/op (lib/pipe %.2f)",
		 pr, pipe_med, pipe_med > 0 ? r.lib.med / pipe_med : 0);
	snprintf(xj, sizeof xj,
		 ",\"pair_ratio\":%.3f,\"floor\":\"futex ping-pong\","
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

/* ns from fork() to the child's readiness, or a negative errno. */
static double bare_spawn(void)
{
	_Atomic uint32_t *ready = &PP->doorbell;
	uint64_t t0, t1;
	pid_t pid;
	int rc, st;

	atomic_store(ready, 0);
	t0 = bench_now_ns();
	if ((pid = fork()) == 0) {
		/* readiness first: the floor is fork + ready (SIGKILLed after) */
		atomic_store(ready, 1);
		fx_wake(ready);
		for (;;)
			pause();
	}
	if (pid < 0)
		return -errno;
	S.kid = pid;
	rc = wait_at_least(ready, 1);
	t1 = bench_now_ns();
	kill(pid, SIGKILL);
	reap(pid, &st);
	S.kid = 0;
	if (rc < 0) {
		bench_err(PROG, "bare child not ready: %s", strerror(-rc));
		return rc;
	}
	return (double)(t1 - t0);
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
	char name[64];
	int rc = 0, fd;

	if (!lib || !bare) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(name, sizeof name, "/%s.bsp", S.ns);
	if ((fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		bench_err(PROG, "shm_open %s: %s", name, strerror(errno));
		goto out;
	}
	shm_unlink(name);
	if (ftruncate(fd, 4096) < 0 ||
	    (PP = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		    MAP_FAILED) {
		rc = -errno;
		PP = NULL;
		close(fd);
		goto out;
	}
	close(fd);
	pool_opts(&o);
	o.backoff_min_ms = BACKOFF_MS;
	o.quarantine_window_ms = 1; /* so every kill restarts at the floor */
	o.quarantine_deaths = 1000;
	if ((rc = pool_up(&o, true)) < 0)
		goto out;
	/* warm-up */
	for (int i = 0; i < 3; i++) {
		bool s;
		if ((v = bare_spawn()) < 0 || (v = lib_respawn(&s)) < 0) {
			rc = (int)v;
			goto out;
		}
		sleep_ms(KILL_GAP_MS);
	}
	for (size_t i = 0; i < kills; i++) {
		bool s = false;
		if ((v = bare_spawn()) < 0) {
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
		"worker SIGKILL -> replacement ready: lib %.3f ms, bare fork+ready "
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
	if (PP)
		munmap(PP, 4096);
	PP = NULL;
	free(lib);
	free(bare);
	return rc;
}

/* ---- cleanup ------------------------------------------------------------- */

static int cleanup(void)
{
	int bad = 0;

	if (S.kid > 0) {
		kill(S.kid, SIGKILL);
		reap(S.kid, NULL);
		S.kid = 0;
	}
	rt_teardown();
	if (S.pipe_kid > 0) {
		kill(S.pipe_kid, SIGKILL);
		reap(S.pipe_kid, NULL);
	}
	if (pool_down() < 0)
		bad = -1;
	for (int i = 0; i <= WORKERS; i++)
		if (S.bare_names[i][0])
			shm_unlink(S.bare_names[i]);
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
	for (int i = 0; i <= WORKERS; i++)
		snprintf(S.bare_names[i], sizeof S.bare_names[i], "/%s.bare%d",
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
	fprintf(S.json ? stderr : stdout,
		"# %s: libshmkeeper %s, namespace %s, registry %s (%s), %ld "
		"CPU(s)\n",
		PROG, shmk_version(), S.ns, S.dir, bench_fs_name(S.dir),
		sysconf(_SC_NPROCESSORS_ONLN));
	fflush(NULL);
	if (do_init && rc == 0)
		rc = bench_init(init_rounds, init_ops);
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
