/* SPDX-License-Identifier: MIT */
/* bench_cycle.c - the whole leak-soak cycle through the library against
 * the same work in bare C, alternated cycle by cycle in one process, with
 * the registry on tmpfs and on disk.
 *
 * lib (what tools/leak-soak.c does in a cycle, with its defaults):
 *   init     shmk_reap() of the namespace (SHMK_REAP_NO_STRAYS), shmk_open()
 *            (SHMK_OPEN_NO_REAP, default durability), shmk_pool_create()
 *            (3 workers, 3 x 1 MiB slots, SHMK_LEASE_WAIT), 3 x
 *            shmk_segment_create() of 1 MiB
 *   jobs     per worker: shmk_pool_lease() + shmk_pool_run() of a job that
 *            writes every byte of its slot (memset) + shmk_pool_release();
 *            then memset of every segment
 *   teardown 3 x shmk_segment_destroy(), shmk_pool_destroy(), shmk_close()
 * bare (tests/bench/bare_pool.h: no supervisor, no registry):
 *   init     shm_unlink() of the 6 names a previous run would have left
 *            (the "reap" of a program that knows its names; all ENOENT),
 *            one anonymous MAP_SHARED control page, 3 slots made with
 *            shm_open(O_CREAT|O_EXCL)/posix_fallocate/mmap/close, 3 workers
 *            forked by the caller itself, FUTEX_WAIT until all 3 are ready
 *            (as shmk_pool_create() returns only then), 3 segments made as
 *            the slots
 *   jobs     per worker: a futex doorbell, the worker runs the same job
 *            function on its slot, futex done; then memset of every segment
 *   teardown SIGTERM to the 3 workers, waitpid() of each, munmap +
 *            shm_unlink of the 3 slots and the 3 segments, munmap of the
 *            control page
 *
 * Each pair of cycles is (bare, lib); the verdict is the median over cycles
 * of lib/bare (the budget of docs/DESIGN.md is defined on per-cycle pairs),
 * the ratio of the medians is printed beside it.  Wall time: several
 * processes take part.  The job phase is reported for reference (no
 * budget).  Each registry gets a namespace of its own (a namespace is bound
 * to one registry), and every cycle is checked to leave nothing in
 * /dev/shm and no registry file.
 *
 * tmpfs registry: a private tmpfs when run as root (bench.h), else
 * --tmpfs-in or $XDG_RUNTIME_DIR or /tmp; disk registry: --disk-in or the
 * first of /var/tmp, /tmp, $HOME that is not on tmpfs/ramfs.  The file
 * system type used is printed.
 *
 *   bench_cycle [--json] [--cycles N] [--warmup N] [--only tmpfs,disk]
 *               [--tmpfs-in DIR] [--disk-in DIR]
 *
 * Budgets: init <= 1.3, teardown <= 1.15 (both registries).  Exit status 0
 * also when over budget; 1 on any functional error; 2 on bad usage. */
#include "bare_pool.h"

#define PROG "bench_cycle"
#define WORKERS 3
#define SEGS 3
#define SIZE ((size_t)1 << 20)
#define BUDGET_INIT 1.3
#define BUDGET_TEARDOWN 1.15

static struct {
	bool json;
	/* of the registry being measured */
	char dir[PATH_MAX];
	char ns[40];
	const char *fs;
	char seg_names[SEGS][64]; /* bare segments */
	struct bare_pool bp;
	void *seg_mem[SEGS];
	/* lib objects of an unfinished cycle */
	shmk_ctx *ctx;
	shmk_pool *pool;
	shmk_segment *segs[SEGS];
} S;

struct times {
	double init, jobs, teardown; /* ns */
};

/* leak-soak's job: writes all of the slot. */
static int touch(void *mem, size_t size, void *arg)
{
	unsigned char v = (unsigned char)(uintptr_t)arg;

	memset(mem, v, size);
	return ((unsigned char *)mem)[size - 1] == v ? 0 : 1;
}

static unsigned char cycle_byte(size_t i)
{
	return (unsigned char)(1 + i % 255); /* never 0: the pages start 0 */
}

static bool filled(const void *mem, unsigned char v)
{
	const unsigned char *m = mem;

	return m[0] == v && m[SIZE / 2] == v && m[SIZE - 1] == v;
}

/* ---- bare ---------------------------------------------------------------- */

/* Undoes whatever a bare cycle left (error or interruption). */
static void bare_abort(void)
{
	for (unsigned k = 0; k < SEGS; k++)
		bare_seg_destroy(S.seg_names[k], &S.seg_mem[k], SIZE);
	bare_pool_stop_sig(&S.bp, SIGKILL);
}

static int bare_cycle(size_t i, struct times *t)
{
	unsigned char v = cycle_byte(i);
	uint64_t t0, t1, t2, t3;
	int rc, res;

	S.bp.arg = (void *)(uintptr_t)v;
	t0 = bench_now_ns();
	for (unsigned w = 0; w < WORKERS; w++)
		shm_unlink(S.bp.names[w]);
	for (unsigned k = 0; k < SEGS; k++)
		shm_unlink(S.seg_names[k]);
	if ((rc = bare_pool_start(&S.bp)) < 0) {
		bench_err(PROG, "bare pool start: %s", strerror(-rc));
		return rc;
	}
	for (unsigned k = 0; k < SEGS; k++)
		if ((rc = bare_seg_create(S.seg_names[k], SIZE, &S.seg_mem[k])) < 0) {
			bench_err(PROG, "bare segment %s: %s", S.seg_names[k],
				  strerror(-rc));
			goto fail;
		}
	t1 = bench_now_ns();
	for (unsigned w = 0; w < WORKERS; w++) {
		if ((rc = bare_pool_run(&S.bp, w, &res)) < 0) {
			bench_err(PROG, "bare job on worker %u: %s", w,
				  strerror(-rc));
			goto fail;
		}
		if (res != 0 || !filled(S.bp.mem[w], v)) {
			bench_err(PROG, "bare job on worker %u: bad result", w);
			rc = -EPROTO;
			goto fail;
		}
	}
	for (unsigned k = 0; k < SEGS; k++)
		memset(S.seg_mem[k], v, SIZE);
	t2 = bench_now_ns();
	rc = bare_pool_stop(&S.bp);
	for (unsigned k = 0; k < SEGS; k++) {
		int r = bare_seg_destroy(S.seg_names[k], &S.seg_mem[k], SIZE);
		rc = rc ? rc : r;
	}
	t3 = bench_now_ns();
	if (rc < 0) {
		bench_err(PROG, "bare teardown: %s", strerror(-rc));
		goto fail;
	}
	t->init = (double)(t1 - t0);
	t->jobs = (double)(t2 - t1);
	t->teardown = (double)(t3 - t2);
	return 0;
fail:
	bare_abort();
	return rc;
}

/* ---- lib ----------------------------------------------------------------- */

static void lib_abort(void)
{
	for (unsigned k = 0; k < SEGS; k++)
		if (S.segs[k])
			shmk_segment_destroy(S.segs[k]);
	memset(S.segs, 0, sizeof S.segs);
	if (S.pool)
		shmk_pool_destroy(S.pool);
	S.pool = NULL;
	if (S.ctx)
		shmk_close(S.ctx);
	S.ctx = NULL;
}

static int lib_fail(int rc, const char *what)
{
	bench_err(PROG, "%s: %s", what, shmk_last_error());
	lib_abort();
	return rc < 0 ? rc : -EPROTO;
}

static int lib_cycle(size_t i, struct times *t)
{
	unsigned char v = cycle_byte(i);
	struct shmk_reap_options ro = {.dir = S.dir, .ns = S.ns,
				       .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_options o = {.dir = S.dir, .ns = S.ns,
				 .flags = SHMK_OPEN_NO_REAP |
					  SHMK_OPEN_LAZY_SPAWNER,
				 .role = PROG};
	struct shmk_pool_options po = {.workers = WORKERS, .slot_size = SIZE,
				       .fn = touch, .arg = (void *)(uintptr_t)v,
				       .title = PROG,
				       .lease_policy = SHMK_LEASE_WAIT};
	struct shmk_reap_report *rep = NULL;
	uint64_t t0, t1, t2, t3;
	size_t reaped;
	int rc, res;

	t0 = bench_now_ns();
	rc = shmk_reap(&ro, &rep);
	reaped = rep ? rep->segments_reaped : 0;
	shmk_reap_report_free(rep);
	if (rc < 0)
		return lib_fail(rc, "shmk_reap");
	if ((rc = shmk_open(&o, &S.ctx)) < 0)
		return lib_fail(rc, "shmk_open");
	if ((rc = shmk_pool_create(S.ctx, &po, &S.pool)) < 0)
		return lib_fail(rc, "shmk_pool_create");
	for (unsigned k = 0; k < SEGS; k++) {
		char name[16];
		snprintf(name, sizeof name, "soak-%u", k);
		if ((rc = shmk_segment_create(S.ctx, name, SIZE, &S.segs[k])) < 0)
			return lib_fail(rc, "shmk_segment_create");
	}
	t1 = bench_now_ns();
	for (unsigned w = 0; w < WORKERS; w++) {
		int slot = shmk_pool_lease(S.pool, SHMK_LEASE_WAIT, 0);
		if (slot < 0)
			return lib_fail(slot, "shmk_pool_lease");
		if ((rc = shmk_pool_run(S.pool, (unsigned)slot, &res)) < 0)
			return lib_fail(rc, "shmk_pool_run");
		if (res != 0 || !filled(shmk_pool_slot_mem(S.pool, (unsigned)slot), v)) {
			bench_err(PROG, "lib job on slot %d: bad result", slot);
			lib_abort();
			return -EPROTO;
		}
		shmk_pool_release(S.pool, (unsigned)slot);
	}
	for (unsigned k = 0; k < SEGS; k++)
		memset(shmk_segment_addr(S.segs[k]), v, SIZE);
	t2 = bench_now_ns();
	for (unsigned k = 0; k < SEGS; k++) {
		rc = shmk_segment_destroy(S.segs[k]);
		S.segs[k] = NULL;
		if (rc < 0)
			return lib_fail(rc, "shmk_segment_destroy");
	}
	rc = shmk_pool_destroy(S.pool);
	S.pool = NULL;
	if (rc < 0)
		return lib_fail(rc, "shmk_pool_destroy");
	rc = shmk_close(S.ctx);
	S.ctx = NULL;
	if (rc < 0)
		return lib_fail(rc, "shmk_close");
	t3 = bench_now_ns();
	if (reaped) {
		bench_err(PROG, "the reap at the start of a cycle took %zu "
				"segment(s): a cycle before left them",
			  reaped);
		return -EPROTO;
	}
	t->init = (double)(t1 - t0);
	t->jobs = (double)(t2 - t1);
	t->teardown = (double)(t3 - t2);
	return 0;
}

/* Nothing of the namespace in /dev/shm and no registry file after a
 * cycle (not timed). */
static int check_clean(const char *side)
{
	size_t left = bench_shm_scan(S.ns, false);
	long files = bench_dir_entries(S.dir, S.ns);

	if (left || files > 0) {
		bench_err(PROG, "a %s cycle left %zu object(s) in %s and %ld "
				"registry file(s) in %s/%s",
			  side, left, BENCH_SHM_DIR, files > 0 ? files : 0,
			  S.dir, S.ns);
		return -EPROTO;
	}
	return 0;
}

/* ---- one registry -------------------------------------------------------- */

static void report(const char *id, const char *what, double budget,
		   const double *lib, const double *bare, size_t n)
{
	struct bench_result r = {0};
	char label[128], fid[64], xt[256], xj[PATH_MAX + 256];
	double rom;

	snprintf(fid, sizeof fid, "cycle_%s_%s", id, S.fs);
	snprintf(label, sizeof label, "leak-soak cycle %s, registry on %s", what,
		 S.fs);
	r.id = fid;
	r.label = label;
	r.ops_per_round = 1;
	r.budget = budget;
	bench_finish(&r, lib, bare, n);
	rom = r.ratio;
	/* The verdict: the median of the per-cycle ratios. */
	r.ratio = bench_pair_ratio(lib, bare, n);
	snprintf(xt, sizeof xt,
		 "ratio = median of per-cycle lib/bare; ratio of medians "
		 "%.2f; lib %.2f ms, bare %.2f ms",
		 rom, r.lib.med / 1e6, r.bare.med / 1e6);
	snprintf(xj, sizeof xj,
		 ",\"ratio_kind\":\"median of per-cycle ratios\","
		 "\"ratio_of_medians\":%.3f,\"registry_fs\":\"%s\","
		 "\"registry\":\"%s\"",
		 rom, S.fs, S.dir);
	r.extra_text = xt;
	r.extra_json = xj;
	bench_print(&r, S.json);
}

/* The job phase, for reference (no budget). */
static void report_jobs(const double *lib, const double *bare, size_t n)
{
	double l = bench_median(lib, n), b = bench_median(bare, n);
	double pr = bench_pair_ratio(lib, bare, n);

	fprintf(S.json ? stderr : stdout,
		"leak-soak cycle jobs (3 jobs writing 1 MiB + 3 segment writes), "
		"registry on %s: lib %.2f ms, bare %.2f ms, median of per-cycle "
		"ratios %.2f, ratio of medians %.2f  [reference, no budget]\n",
		S.fs, l / 1e6, b / 1e6, pr, b > 0 ? l / b : 0);
	fflush(S.json ? stderr : stdout);
	if (S.json) {
		printf("{\"benchmark\":\"cycle_jobs_%s\",\"rounds\":%zu,"
		       "\"lib_ns_per_op\":%.1f,\"bare_ns_per_op\":%.1f,"
		       "\"ratio\":%.3f,\"ratio_of_medians\":%.3f,"
		       "\"verdict\":\"reference\"}\n",
		       S.fs, n, l, b, pr, b > 0 ? l / b : 0);
		fflush(stdout);
	}
}

/* Runs warmup + cycles pairs with the registry under parent.  0 or a
 * negative errno. */
static int run_registry(const char *parent, const char *tag, size_t cycles,
			size_t warmup)
{
	double *v[6];
	struct times tb, tl;
	int rc = 0;

	for (int k = 0; k < 6; k++)
		v[k] = calloc(cycles, sizeof(double));
	bench_unique_ns(S.ns, sizeof S.ns, tag);
	memset(&S.bp, 0, sizeof S.bp);
	S.bp.workers = WORKERS;
	S.bp.slot_size = SIZE;
	S.bp.fn = touch;
	for (unsigned w = 0; w < WORKERS; w++)
		snprintf(S.bp.names[w], sizeof S.bp.names[w], "/%s.bslot%u", S.ns, w);
	for (unsigned k = 0; k < SEGS; k++)
		snprintf(S.seg_names[k], sizeof S.seg_names[k], "/%s.bseg%u", S.ns, k);
	if ((rc = bench_mkdtemp(S.dir, sizeof S.dir, parent, "cycle")) < 0) {
		S.dir[0] = '\0';
		bench_err(PROG, "mkdtemp under %s: %s", parent, strerror(-rc));
		goto out;
	}
	S.fs = bench_fs_name(S.dir);
	fprintf(S.json ? stderr : stdout,
		"# %s: registry %s (%s), namespace %s, %zu + %zu warm-up cycle "
		"pairs\n",
		PROG, S.dir, S.fs, S.ns, cycles, warmup);
	fflush(NULL);
	for (int k = 0; k < 6; k++)
		if (!v[k]) {
			rc = -ENOMEM;
			goto out;
		}
	for (size_t i = 0; i < warmup + cycles; i++) {
		if ((rc = bare_cycle(i, &tb)) < 0 || (rc = check_clean("bare")) < 0 ||
		    (rc = lib_cycle(i, &tl)) < 0 || (rc = check_clean("lib")) < 0)
			goto out;
		if (bench_stop) {
			rc = -EINTR;
			goto out;
		}
		if (i < warmup)
			continue;
		v[0][i - warmup] = tl.init;
		v[1][i - warmup] = tb.init;
		v[2][i - warmup] = tl.teardown;
		v[3][i - warmup] = tb.teardown;
		v[4][i - warmup] = tl.jobs;
		v[5][i - warmup] = tb.jobs;
	}
	report("init", "init (reap, open, pool of 3 x 1 MiB, 3 x 1 MiB segments)",
	       BUDGET_INIT, v[0], v[1], cycles);
	report("teardown", "teardown (segments, pool, close)", BUDGET_TEARDOWN,
	       v[2], v[3], cycles);
	report_jobs(v[4], v[5], cycles);
out:
	bare_abort();
	lib_abort();
	if (bench_teardown_ns(PROG, &S.ctx, S.dir, S.ns, true) < 0 && rc == 0)
		rc = -EIO;
	for (int k = 0; k < 6; k++)
		free(v[k]);
	return rc;
}

/* ---- registry directories ------------------------------------------------ */

static bool on_ram(const char *path)
{
	const char *fs = bench_fs_name(path);

	return !strcmp(fs, "tmpfs") || !strcmp(fs, "ramfs");
}

static const char *tmpfs_parent(void)
{
	const char *p = bench_registry_parent(), *x = getenv("XDG_RUNTIME_DIR");

	if (on_ram(p))
		return p;
	if (x && x[0] == '/' && on_ram(x) && access(x, W_OK) == 0)
		return x;
	return p; /* not tmpfs: the report says what it is */
}

static const char *disk_parent(void)
{
	const char *c[] = {"/var/tmp", "/tmp", getenv("HOME")};

	for (size_t i = 0; i < sizeof c / sizeof *c; i++)
		if (c[i] && c[i][0] == '/' && access(c[i], W_OK) == 0 &&
		    !on_ram(c[i]))
			return c[i];
	return "/var/tmp"; /* no disk found: the report says what it is */
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--json] [--cycles N] [--warmup N] [--only tmpfs,disk]\n"
		"       [--tmpfs-in DIR] [--disk-in DIR]\n"
		"  --cycles N    measured (bare, lib) cycle pairs per registry "
		"(default 41)\n"
		"  --warmup N    unmeasured pairs first (default 3)\n"
		"  --only LIST   tmpfs, disk or both (default both)\n"
		"  --tmpfs-in DIR  parent of the tmpfs registry directory\n"
		"  --disk-in DIR   parent of the disk registry directory\n"
		"  --json        one JSON object per result on stdout\n",
		PROG);
}

int main(int argc, char **argv)
{
	size_t cycles = 41, warmup = 3;
	bool do_tmpfs = true, do_disk = true;
	const char *tmpfs_in = NULL, *disk_in = NULL;
	uint64_t t0 = bench_now_ns();
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			S.json = true;
		} else if (!strcmp(a, "--cycles")) {
			cycles = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--warmup")) {
			warmup = bench_parse_count(PROG, a, val, 0);
			i++;
		} else if (!strcmp(a, "--tmpfs-in") && val) {
			tmpfs_in = val;
			i++;
		} else if (!strcmp(a, "--disk-in") && val) {
			disk_in = val;
			i++;
		} else if (!strcmp(a, "--only") && val) {
			do_tmpfs = strstr(val, "tmpfs") != NULL;
			do_disk = strstr(val, "disk") != NULL;
			if (!do_tmpfs && !do_disk) {
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
	/* First: as root it moves this process into its own mount namespace. */
	if (!tmpfs_in)
		tmpfs_in = tmpfs_parent();
	if (!disk_in)
		disk_in = disk_parent();
	fprintf(S.json ? stderr : stdout,
		"# %s: libshmkeeper %s, %ld CPU(s); tmpfs registry under %s "
		"(%s), disk registry under %s (%s)\n",
		PROG, shmk_version(), sysconf(_SC_NPROCESSORS_ONLN), tmpfs_in,
		bench_fs_name(tmpfs_in), disk_in, bench_fs_name(disk_in));
	fflush(NULL);
	if (do_tmpfs)
		rc = run_registry(tmpfs_in, "bcyct", cycles, warmup);
	if (do_disk && rc == 0 && !bench_stop)
		rc = run_registry(disk_in, "bcycd", cycles, warmup);
	bench_registry_parent_done();
	if (bench_stop && rc == 0)
		rc = -EINTR;
	if (rc == -EINTR)
		bench_err(PROG, "interrupted");
	fprintf(S.json ? stderr : stdout, "# %s: %s in %.1f s\n", PROG,
		rc == 0 ? "done" : "FAILED", (double)(bench_now_ns() - t0) / 1e9);
	return rc == 0 ? 0 : 1;
}
