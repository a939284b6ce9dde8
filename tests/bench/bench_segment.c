/* SPDX-License-Identifier: MIT */
/* bench_segment.c - segment create + destroy (4 KiB) through the library,
 * against the bare syscalls, at 10 and at 10,000 live segments.
 *
 *   lib : shmk_segment_create() + shmk_segment_destroy()
 *         (registry in a fresh mkdtemp dir under /tmp, durability off, a
 *         namespace of its own)
 *   bare: shm_open(O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC, 0600) + posix_fallocate
 *         + mmap + munmap + close + shm_unlink: the system calls that make
 *         and remove the object, and nothing else (no registry, no record,
 *         no lock); neither side touches the pages
 *
 * Before the measured pairs run at scale N, the library's owner already
 * holds N live (mapped) segments and the bare side N live (mapped) objects
 * of its own, so both sides run in the same process with the same
 * /dev/shm and address-space population.  Rounds are interleaved (bare,
 * lib, bare, lib, ...) and each round is a whole number of the library's
 * journal compaction periods (the record is rewritten once its journal
 * holds more than 64 + 2 * live lines; a create + destroy pair appends 3),
 * so every lib round pays its share of compaction exactly; the benchmark
 * checks that the record file really was rewritten in each lib round.
 *
 *   bench_segment [--json] [--rounds N] [--ops N] [--live N[,N...]]
 *                 [--registry-in DIR]
 *
 * The library makes ten system calls per pair where the floor makes six:
 * the intent line before the create (invariant 1), the fstat for the inode
 * that the "live" line records, the fstatat that checks the name still
 * holds that inode right before the unlink (invariant 4), and one write for
 * the deferred "live" line with the "drop".  On a VM where a null system
 * call costs ~1.1 us those four alone measure ~1.3-1.4x of the floor.
 *
 * Budget (docs/DESIGN.md): lib/bare <= 1.5 at each scale.  Exit status 0
 * also when over budget; 1 on any functional error; 2 on bad usage. */
#include "bench.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define PROG "bench_segment"
#define SEG_SIZE 4096
#define BUDGET 1.5
/* lib/owner.c: rewrite when journal bytes > 256 KiB + 2 * snapshot bytes.
 * A create+destroy pair appends about 150 bytes; a snapshot entry is about
 * 110 bytes.  Only used to size rounds: the bench checks that the record
 * really was rewritten in every lib round and says so. */
#define LIB_COMPACT_SLACK_BYTES (256u << 10)
#define MAX_SCALES 8

struct bare_obj {
	char name[64];
	void *addr;
};

static struct {
	char dir[PATH_MAX];
	char ns[40];
	char rec_path[PATH_MAX]; /* the owner's record file */
	shmk_ctx *ctx;
	shmk_segment **lib;
	size_t n_lib, cap_lib;
	struct bare_obj *bare;
	size_t n_bare, cap_bare;
	char lib_op[16];   /* name of the measured lib segment */
	char bare_op[64];  /* name of the measured bare object */
} S;

/* ---- the two sides ------------------------------------------------------- */

/* One bare create + destroy.  0 or -errno. */
static int bare_pair(const char *name)
{
	int fd, rc;
	void *p;

	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if ((rc = posix_fallocate(fd, 0, SEG_SIZE)) != 0) {
		close(fd);
		shm_unlink(name);
		return -rc;
	}
	p = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		close(fd);
		shm_unlink(name);
		return rc;
	}
	munmap(p, SEG_SIZE);
	close(fd);
	return shm_unlink(name) < 0 ? -errno : 0;
}

/* One library create + destroy.  0 or a negative errno. */
static int lib_pair(void)
{
	shmk_segment *s;
	int rc = shmk_segment_create(S.ctx, S.lib_op, SEG_SIZE, &s);

	if (rc < 0)
		return rc;
	return shmk_segment_destroy(s);
}

/* Times ops pairs of one side; ns per pair, or a negative errno. */
static double run_round(bool lib, size_t ops)
{
	uint64_t t0 = bench_cpu_ns();

	for (size_t i = 0; i < ops; i++) {
		int rc = lib ? lib_pair() : bare_pair(S.bare_op);
		if (rc < 0) {
			bench_err(PROG, "%s create+destroy #%zu: %s",
				  lib ? "lib" : "bare", i,
				  lib ? shmk_last_error() : strerror(-rc));
			return rc;
		}
		if (bench_stop)
			return -EINTR;
	}
	return (double)(bench_cpu_ns() - t0) / (double)ops;
}

/* ---- population ---------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t want, size_t elem)
{
	void *n;

	if (want <= *cap)
		return 0;
	if (!(n = realloc(*arr, want * elem)))
		return -ENOMEM;
	*arr = n;
	*cap = want;
	return 0;
}

/* Brings both sides to n live segments (only ever grows). */
static int populate(size_t n)
{
	int rc;

	if (grow((void **)&S.lib, &S.cap_lib, n, sizeof *S.lib) < 0 ||
	    grow((void **)&S.bare, &S.cap_bare, n, sizeof *S.bare) < 0) {
		bench_err(PROG, "out of memory");
		return -ENOMEM;
	}
	while (S.n_lib < n && !bench_stop) {
		char name[32];
		snprintf(name, sizeof name, "live%zu", S.n_lib);
		if ((rc = shmk_segment_create(S.ctx, name, SEG_SIZE,
					      &S.lib[S.n_lib])) < 0) {
			bench_err(PROG, "populating the library side: %s",
				  shmk_last_error());
			return rc;
		}
		S.n_lib++;
	}
	while (S.n_bare < n && !bench_stop) {
		struct bare_obj *o = &S.bare[S.n_bare];
		int fd;

		snprintf(o->name, sizeof o->name, "/%s.bare%zu", S.ns, S.n_bare);
		fd = shm_open(o->name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
			      0600);
		if (fd < 0) {
			rc = -errno;
			bench_err(PROG, "shm_open %s: %s", o->name,
				  strerror(errno));
			return rc;
		}
		if ((rc = posix_fallocate(fd, 0, SEG_SIZE)) != 0 ||
		    (o->addr = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE,
				    MAP_SHARED, fd, 0)) == MAP_FAILED) {
			rc = rc ? rc : errno;
			bench_err(PROG, "%s: cannot reserve/map: %s", o->name,
				  strerror(rc));
			close(fd);
			shm_unlink(o->name);
			return -rc;
		}
		close(fd);
		S.n_bare++;
	}
	return bench_stop ? -EINTR : 0;
}

/* The owner's record file <dir>/<ns>/<id>.jsonl (there is one owner). */
static int find_record(void)
{
	char nsdir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(nsdir, sizeof nsdir, "%s/%s", S.dir, S.ns);
	if (!(d = opendir(nsdir)))
		return -errno;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] != '.' && l > 6 &&
		    strcmp(e->d_name + l - 6, ".jsonl") == 0)
			snprintf(S.rec_path, sizeof S.rec_path, "%s/%s", nsdir,
				 e->d_name);
	}
	closedir(d);
	return S.rec_path[0] ? 0 : -ENOENT;
}

/* Identity of the current version of the record file (changes when the
 * library rewrites it: a new file is renamed over the old one). */
struct file_id {
	uint64_t ino;
	int64_t btime_s;
	uint32_t btime_ns;
};

static int record_id(struct file_id *id)
{
	struct statx sx;

	memset(id, 0, sizeof *id);
	if (statx(AT_FDCWD, S.rec_path, AT_SYMLINK_NOFOLLOW,
		  STATX_INO | STATX_BTIME, &sx) < 0)
		return -errno;
	id->ino = sx.stx_ino;
	if (sx.stx_mask & STATX_BTIME) {
		id->btime_s = sx.stx_btime.tv_sec;
		id->btime_ns = sx.stx_btime.tv_nsec;
	}
	return 0;
}

static bool same_file(const struct file_id *a, const struct file_id *b)
{
	return a->ino == b->ino && a->btime_s == b->btime_s &&
	       a->btime_ns == b->btime_ns;
}

/* ---- one scale ----------------------------------------------------------- */

static int bench_scale(size_t live, size_t rounds, size_t min_ops, bool json)
{
	/* Pairs per compaction period: the first k with 3k > slack + 2*live
	 * (during a pair the live count is live+1 for "intent" and "live"
	 * and live for "drop"; the rewrite comes on a "drop" line). */
	size_t period = (LIB_COMPACT_SLACK_BYTES + 2 * (400 + 110 * live)) / 140 + 1;
	size_t ops = (min_ops + period - 1) / period * period;
	double *lib = calloc(rounds, sizeof *lib);
	double *bare = calloc(rounds, sizeof *bare);
	size_t rewritten = 0;
	char label[96], extra_t[160], extra_j[192];
	struct bench_result r = {0};
	struct file_id before, after;
	double v;
	int rc = 0;

	if (!lib || !bare) {
		bench_err(PROG, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = populate(live)) < 0)
		goto out;
	if (!S.rec_path[0] && (rc = find_record()) < 0) {
		bench_err(PROG, "%s/%s: no owner record found: %s", S.dir,
			  S.ns, strerror(-rc));
		goto out;
	}
	/* Warm-up, unmeasured: one round of each. */
	if ((v = run_round(false, ops)) < 0 || (v = run_round(true, ops)) < 0) {
		rc = (int)v;
		goto out;
	}
	for (size_t i = 0; i < rounds; i++) {
		if ((v = run_round(false, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		bare[i] = v;
		if ((rc = record_id(&before)) < 0) {
			bench_err(PROG, "%s: %s", S.rec_path, strerror(-rc));
			goto out;
		}
		if ((v = run_round(true, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		lib[i] = v;
		if ((rc = record_id(&after)) < 0) {
			bench_err(PROG, "%s: %s", S.rec_path, strerror(-rc));
			goto out;
		}
		rewritten += !same_file(&before, &after);
		if (shmk_owned_count(S.ctx) != live) {
			bench_err(PROG, "library owns %zu segments after a "
					"round, expected %zu",
				  shmk_owned_count(S.ctx), live);
			rc = -EPROTO;
			goto out;
		}
	}

	snprintf(label, sizeof label, "segment create+destroy 4KiB @%zu live",
		 live);
	snprintf(extra_t, sizeof extra_t,
		 "CPU time; registry on %s; record rewritten every %zu pairs, seen in "
		 "%zu/%zu lib rounds",
		 bench_fs_name(S.dir), period, rewritten, rounds);
	snprintf(extra_j, sizeof extra_j,
		 ",\"size\":%d,\"live\":%zu,\"registry_fs\":\"%s\","
		 "\"compaction_period_pairs\":%zu,\"rounds_with_rewrite\":%zu",
		 SEG_SIZE, live, bench_fs_name(S.dir), period, rewritten);
	r.id = "segment_create_destroy";
	r.label = label;
	r.ops_per_round = ops;
	r.budget = BUDGET;
	r.extra_text = extra_t;
	r.extra_json = extra_j;
	bench_finish(&r, lib, bare, rounds);
	bench_print(&r, json);
	if (rewritten < rounds)
		fprintf(stderr, "%s: warning: the record was not rewritten in "
				"%zu lib round(s) at %zu live: compaction "
				"path not exercised as expected\n",
			PROG, rounds - rewritten, live);
out:
	free(lib);
	free(bare);
	return rc;
}

/* ---- cleanup ------------------------------------------------------------- */

/* Releases everything; returns -1 if something was left behind. */
static int cleanup(void)
{
	int bad = 0;

	for (size_t i = 0; i < S.n_bare; i++) {
		munmap(S.bare[i].addr, SEG_SIZE);
		if (shm_unlink(S.bare[i].name) < 0 && errno != ENOENT) {
			bench_err(PROG, "shm_unlink %s: %s", S.bare[i].name,
				  strerror(errno));
			bad = -1;
		}
	}
	free(S.bare);
	S.bare = NULL;
	S.n_bare = 0;
	if (S.bare_op[0])
		shm_unlink(S.bare_op); /* only exists after an error */
	for (size_t i = 0; i < S.n_lib; i++)
		shmk_segment_detach(S.lib[i]);
	free(S.lib);
	S.lib = NULL;
	S.n_lib = 0;
	if (bench_teardown_env(PROG, &S.ctx, S.dir, S.ns, true) < 0)
		bad = -1;
	return bad;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [--json] [--rounds N] [--ops N] [--live N[,N...]]\n"
		   "       [--registry-in DIR]\n"
		   "  --rounds N  interleaved rounds per side (default 21, min 3)\n"
		   "  --ops N     minimum create+destroy pairs per round (default "
		   "2000;\n"
		   "              rounded up to whole compaction periods)\n"
		   "  --live L    live-segment scales (default 10,10000)\n"
		   "  --registry-in DIR  parent of the temporary registry "
		   "directory\n"
		   "              (default /tmp; e.g. /dev/shm for a tmpfs "
		   "registry)\n"
		   "  --json      one JSON object per benchmark on stdout\n",
		PROG);
}

int main(int argc, char **argv)
{
	size_t rounds = 21, min_ops = 2000, scales[MAX_SCALES] = {10, 10000};
	size_t n_scales = 2;
	const char *parent = NULL;
	bool json = false;
	struct shmk_options o = {0};
	uint64_t t0 = bench_now_ns();
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--rounds")) {
			rounds = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--ops")) {
			min_ops = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--registry-in") && val) {
			parent = val;
			i++;
		} else if (!strcmp(a, "--live")) {
			char *tok, *save, *list = val ? strdup(val) : NULL;
			n_scales = 0;
			for (tok = list ? strtok_r(list, ",", &save) : NULL; tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (n_scales == MAX_SCALES) {
					fprintf(stderr, "%s: at most %d scales\n",
						PROG, MAX_SCALES);
					return 2;
				}
				scales[n_scales++] =
					bench_parse_count(PROG, a, tok, 1);
			}
			free(list);
			if (!n_scales)
				bench_parse_count(PROG, a, NULL, 1);
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
	bench_unique_ns(S.ns, sizeof S.ns, "bseg");
	snprintf(S.lib_op, sizeof S.lib_op, "op");
	snprintf(S.bare_op, sizeof S.bare_op, "/%s.bareop", S.ns);
	if (!parent)
		parent = bench_registry_parent();
	if ((rc = bench_mkdtemp(S.dir, sizeof S.dir, parent, "seg")) < 0) {
		S.dir[0] = '\0';
		bench_err(PROG, "mkdtemp under %s: %s", parent, strerror(-rc));
		return 1;
	}
	o.dir = S.dir;
	o.ns = S.ns;
	o.durability = SHMK_DURABLE_OFF;
	o.flags = SHMK_OPEN_NO_REAP; /* fresh namespace: nothing to reap */
	if ((rc = shmk_open(&o, &S.ctx)) < 0) {
		bench_err(PROG, "shmk_open: %s", shmk_last_error());
		goto done;
	}
	fprintf(json ? stderr : stdout,
		"# %s: libshmkeeper %s, namespace %s, registry %s (%s), %s "
		"(%s), %ld CPU(s)\n",
		PROG, shmk_version(), S.ns, S.dir, bench_fs_name(S.dir), BENCH_SHM_DIR,
		bench_fs_name(BENCH_SHM_DIR), sysconf(_SC_NPROCESSORS_ONLN));
	/* Scales only grow the population: run them in increasing order. */
	for (size_t i = 1; i < n_scales; i++)
		for (size_t j = i; j > 0 && scales[j - 1] > scales[j]; j--) {
			size_t t = scales[j];
			scales[j] = scales[j - 1];
			scales[j - 1] = t;
		}
	for (size_t i = 0; i < n_scales && rc == 0; i++)
		rc = bench_scale(scales[i], rounds, min_ops, json);
done:
	if (bench_stop && rc == 0)
		rc = -EINTR;
	if (cleanup() < 0 && rc == 0)
		rc = -EIO;
	if (rc == -EINTR)
		bench_err(PROG, "interrupted");
	fprintf(json ? stderr : stdout, "# %s: %s in %.1f s\n", PROG,
		rc == 0 ? "done" : "FAILED",
		(double)(bench_now_ns() - t0) / 1e9);
	return rc == 0 ? 0 : 1;
}
