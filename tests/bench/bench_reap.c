/* SPDX-License-Identifier: MIT */
/* bench_reap.c - reaping 10,000 orphans of 100 dead owners with shmk_reap(),
 * against bare shm_unlink() of the same 10,000 names.
 *
 *   lib : 100 fork children each shmk_open() (SHMK_OPEN_NO_REAP), create 100
 *         segments of 4 KiB and raise(SIGKILL); the parent reaps every child
 *         with waitpid(), then times one shmk_reap() of the namespace
 *         (SHMK_REAP_NO_STRAYS) and checks that it reaped all 10,000 and
 *         that /dev/shm and the namespace directory hold nothing of it.
 *   bare: the same 10,000 names created with shm_open + posix_fallocate
 *         (4 KiB, like the segments) + close, untimed; then the 10,000
 *         shm_unlink() calls are timed: what removing them costs when the
 *         names are known (no registry to read, no owner to judge, no
 *         record to remove).
 *
 * Rounds are interleaved (bare, lib, bare, lib, ...); the report gives the
 * median per-object time of each side and the ratio of the medians.
 *
 * The floor does less than the library must, by design (it is bare):
 *  - per object, the library looks at the name (fstatat) right before its
 *    unlinkat - the inode check of invariant 4 - so it makes two system
 *    calls where shm_unlink() makes one; alone that pair measures about
 *    1.25-1.35x of shm_unlink() on a VM where a null system call costs
 *    ~1.1 us;
 *  - per dead owner (~20 system calls): judge it twice (ask, then take its
 *    lock and check the lock file's inode), read its record, look at
 *    /proc/<pid>/stat, remove its record and lock file and the names of
 *    their temporary files (10,200 files removed, against 10,000);
 *  - per reap: one /proc pass for the holders (about 1-2 ms, more with many
 *    processes on the host) and a report item per object;
 *  - the lib round's orphans are made by fork() from this process, so each
 *    heap page the reap writes takes a copy-on-write fault (~350 per reap,
 *    ~10 us each on that VM); a fresh process pays first-touch faults
 *    instead, a warm long-lived one neither.
 *
 *   bench_reap [--json] [--rounds N] [--owners N] [--per-owner N]
 *              [--registry-in DIR]
 *
 * Budget (docs/DESIGN.md): lib/bare <= 1.5.  Exit status 0 also when over
 * budget; 1 on any functional error; 2 on bad usage. */
#include "bench.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PROG "bench_reap"
#define SEG_SIZE 4096
#define BUDGET 1.5

static struct {
	char dir[PATH_MAX];
	char ns[40];
	size_t owners, per_owner;
	char (*names)[48]; /* "/<ns>.c<owner>-s<j>", owners * per_owner */
	pid_t *kids;        /* children not yet waited for (0: done) */
} S;

static size_t total(void) { return S.owners * S.per_owner; }

/* ---- the orphans --------------------------------------------------------- */

static __attribute__((noreturn)) void child(size_t ci)
{
	struct shmk_options o = {0};
	shmk_ctx *c;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	o.dir = S.dir;
	o.ns = S.ns;
	o.durability = SHMK_DURABLE_OFF;
	o.flags = SHMK_OPEN_NO_REAP; /* never reap a sibling's leftovers */
	if (shmk_open(&o, &c) < 0) {
		fprintf(stderr, "%s: child %zu: shmk_open: %s\n", PROG, ci,
			shmk_last_error());
		_exit(10);
	}
	for (size_t j = 0; j < S.per_owner; j++) {
		const char *full = S.names[ci * S.per_owner + j];
		const char *name = full + 1 + strlen(S.ns) + 1;
		shmk_segment *s;

		if (shmk_segment_create(c, name, SEG_SIZE, &s) < 0) {
			fprintf(stderr, "%s: child %zu: %s\n", PROG, ci,
				shmk_last_error());
			_exit(11);
		}
	}
	raise(SIGKILL); /* die holding everything: the owner is an orphan maker */
	_exit(12);
}

static int wait_kid(size_t i, int *status)
{
	pid_t r;

	while ((r = waitpid(S.kids[i], status, 0)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -errno;
	S.kids[i] = 0;
	return 0;
}

/* Makes owners * per_owner orphans: every child dies by SIGKILL after
 * creating its segments, and is waited for. */
static int make_orphans(void)
{
	int rc = 0;

	fflush(NULL);
	for (size_t i = 0; i < S.owners; i++) {
		pid_t p = fork();
		if (p < 0) {
			rc = -errno;
			bench_err(PROG, "fork: %s", strerror(errno));
			break;
		}
		if (p == 0)
			child(i);
		S.kids[i] = p;
	}
	for (size_t i = 0; i < S.owners; i++) {
		int st, r;
		if (!S.kids[i])
			continue;
		if ((r = wait_kid(i, &st)) < 0) {
			bench_err(PROG, "waitpid: %s", strerror(-r));
			rc = rc ? rc : r;
		} else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
			bench_err(PROG, "child %zu did not die by SIGKILL "
					"(status 0x%x)",
				  i, (unsigned)st);
			rc = rc ? rc : -ECHILD;
		}
	}
	if (rc == 0 && bench_stop)
		rc = -EINTR;
	return rc;
}

/* ---- the two sides ------------------------------------------------------- */

/* ns per object, or a negative errno. */
static double lib_round(void)
{
	struct shmk_reap_options ro = {0};
	struct shmk_reap_report *rep = NULL;
	size_t n = total(), left;
	long files;
	uint64_t t0, t1;
	int rc;

	if ((rc = make_orphans()) < 0)
		return rc;
	if ((left = bench_shm_scan(S.ns, false)) != n) {
		bench_err(PROG, "%zu objects of %s in %s before the reap, "
				"expected %zu",
			  left, S.ns, BENCH_SHM_DIR, n);
		return -EPROTO;
	}
	if ((files = bench_dir_entries(S.dir, S.ns)) != (long)(2 * S.owners)) {
		bench_err(PROG, "%s/%s holds %ld files before the reap, "
				"expected %zu (a lock file and a record per "
				"owner)",
			  S.dir, S.ns, files, 2 * S.owners);
		return -EPROTO;
	}
	ro.dir = S.dir;
	ro.ns = S.ns;
	ro.flags = SHMK_REAP_NO_STRAYS;
	t0 = bench_cpu_ns();
	rc = shmk_reap(&ro, &rep);
	t1 = bench_cpu_ns();
	if (rc < 0 || !rep) {
		bench_err(PROG, "shmk_reap: %s", shmk_last_error());
		shmk_reap_report_free(rep);
		return rc < 0 ? rc : -EPROTO;
	}
	if (rep->segments_reaped != n || rep->owners_dead != S.owners ||
	    rep->errors || rep->quarantined || rep->segments_gone ||
	    rep->owners_alive) {
		bench_err(PROG, "shmk_reap reported %zu reaped (expected %zu), "
				"%zu dead owners (expected %zu), %zu alive, "
				"%zu gone, %zu errors, %zu quarantined",
			  rep->segments_reaped, n, rep->owners_dead, S.owners,
			  rep->owners_alive, rep->segments_gone, rep->errors,
			  rep->quarantined);
		shmk_reap_report_free(rep);
		return -EPROTO;
	}
	shmk_reap_report_free(rep);
	if ((left = bench_shm_scan(S.ns, false)) != 0) {
		bench_err(PROG, "%zu object(s) of %s left in %s after the reap",
			  left, S.ns, BENCH_SHM_DIR);
		return -EPROTO;
	}
	if ((files = bench_dir_entries(S.dir, S.ns)) > 0) {
		bench_err(PROG, "%s/%s: %ld registry file(s) left after the "
				"reap",
			  S.dir, S.ns, files);
		return -EPROTO;
	}
	return (double)(t1 - t0) / (double)n;
}

static double bare_round(void)
{
	size_t n = total(), left;
	uint64_t t0, t1;

	for (size_t i = 0; i < n; i++) {
		int fd = shm_open(S.names[i], O_CREAT | O_EXCL | O_RDWR |
						      O_CLOEXEC,
				  0600), rc;
		if (fd < 0) {
			rc = -errno;
			bench_err(PROG, "shm_open %s: %s", S.names[i],
				  strerror(errno));
			return rc;
		}
		if ((rc = posix_fallocate(fd, 0, SEG_SIZE)) != 0) {
			bench_err(PROG, "posix_fallocate %s: %s", S.names[i],
				  strerror(rc));
			close(fd);
			return -rc;
		}
		close(fd);
	}
	t0 = bench_cpu_ns();
	for (size_t i = 0; i < n; i++)
		if (shm_unlink(S.names[i]) < 0) {
			int rc = -errno;
			bench_err(PROG, "shm_unlink %s: %s", S.names[i],
				  strerror(errno));
			return rc;
		}
	t1 = bench_cpu_ns();
	if ((left = bench_shm_scan(S.ns, false)) != 0) {
		bench_err(PROG, "%zu object(s) of %s left after the unlinks",
			  left, S.ns);
		return -EPROTO;
	}
	return (double)(t1 - t0) / (double)n;
}

/* ---- cleanup ------------------------------------------------------------- */

static int cleanup(void)
{
	int bad = 0;

	for (size_t i = 0; S.kids && i < S.owners; i++) {
		int st;
		if (!S.kids[i])
			continue;
		kill(S.kids[i], SIGKILL);
		wait_kid(i, &st);
	}
	{
		shmk_ctx *none = NULL;
		if (bench_teardown_env(PROG, &none, S.dir, S.ns, false) < 0)
			bad = -1;
	}
	free(S.names);
	free(S.kids);
	S.names = NULL;
	S.kids = NULL;
	return bad;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [--json] [--rounds N] [--owners N] [--per-owner N]\n"
		   "       [--registry-in DIR]\n"
		   "  --rounds N     interleaved rounds per side (default 9, "
		   "min 3)\n"
		   "  --owners N     dead owners (default 100)\n"
		   "  --per-owner N  segments per owner (default 100)\n"
		   "  --registry-in DIR  parent of the temporary registry "
		   "directory\n"
		   "                 (default /tmp; e.g. /dev/shm for tmpfs)\n"
		   "  --json         one JSON object per benchmark on stdout\n",
		PROG);
}

int main(int argc, char **argv)
{
	size_t rounds = 9;
	const char *parent = NULL;
	bool json = false;
	uint64_t t0 = bench_now_ns();
	double *lib = NULL, *bare = NULL, v;
	int rc = 0;

	S.owners = 100;
	S.per_owner = 100;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--rounds")) {
			rounds = bench_parse_count(PROG, a, val, 3);
			i++;
		} else if (!strcmp(a, "--registry-in") && val) {
			parent = val;
			i++;
		} else if (!strcmp(a, "--owners")) {
			S.owners = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--per-owner")) {
			S.per_owner = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (S.owners > 10000 || total() > 1000000) {
		fprintf(stderr, "%s: at most 10000 owners and 1000000 segments\n",
			PROG);
		return 2;
	}
	bench_trap_signals();
	bench_unique_ns(S.ns, sizeof S.ns, "brp");
	S.names = calloc(total(), sizeof *S.names);
	S.kids = calloc(S.owners, sizeof *S.kids);
	lib = calloc(rounds, sizeof *lib);
	bare = calloc(rounds, sizeof *bare);
	if (!S.names || !S.kids || !lib || !bare) {
		bench_err(PROG, "out of memory");
		rc = -ENOMEM;
		goto done;
	}
	for (size_t o = 0; o < S.owners; o++)
		for (size_t j = 0; j < S.per_owner; j++)
			snprintf(S.names[o * S.per_owner + j], sizeof *S.names,
				 "/%s.c%zu-s%zu", S.ns, o, j);
	if (!parent)
		parent = bench_registry_parent();
	if ((rc = bench_mkdtemp(S.dir, sizeof S.dir, parent, "reap")) < 0) {
		S.dir[0] = '\0';
		bench_err(PROG, "mkdtemp under %s: %s", parent, strerror(-rc));
		goto done;
	}
	fprintf(json ? stderr : stdout,
		"# %s: libshmkeeper %s, namespace %s, registry %s (%s), %s "
		"(%s), %ld CPU(s)\n",
		PROG, shmk_version(), S.ns, S.dir, bench_fs_name(S.dir), BENCH_SHM_DIR,
		bench_fs_name(BENCH_SHM_DIR), sysconf(_SC_NPROCESSORS_ONLN));

	/* Warm-up, unmeasured, then interleaved rounds. */
	for (size_t i = 0; i <= rounds && rc == 0; i++) {
		if ((v = bare_round()) < 0 || bench_stop) {
			rc = v < 0 ? (int)v : -EINTR;
			break;
		}
		if (i > 0)
			bare[i - 1] = v;
		if ((v = lib_round()) < 0 || bench_stop) {
			rc = v < 0 ? (int)v : -EINTR;
			break;
		}
		if (i > 0)
			lib[i - 1] = v;
	}
	if (rc == 0) {
		char label[128], extra_t[160], extra_j[192];
		struct bench_result r = {0};

		snprintf(label, sizeof label,
			 "reap %zu orphans of %zu dead owners (4KiB each)",
			 total(), S.owners);
		r.id = "reap_orphans";
		r.label = label;
		r.ops_per_round = total();
		r.budget = BUDGET;
		bench_finish(&r, lib, bare, rounds);
		snprintf(extra_t, sizeof extra_t,
			 "per reap (CPU time): lib %.1f ms, bare %.1f ms; registry on %s",
			 r.lib.med * (double)total() / 1e6,
			 r.bare.med * (double)total() / 1e6,
			 bench_fs_name(S.dir));
		snprintf(extra_j, sizeof extra_j,
			 ",\"owners\":%zu,\"segments\":%zu,\"size\":%d,"
			 "\"lib_ms_per_reap\":%.2f,\"bare_ms_per_reap\":%.2f,"
			 "\"registry_fs\":\"%s\"",
			 S.owners, total(), SEG_SIZE,
			 r.lib.med * (double)total() / 1e6,
			 r.bare.med * (double)total() / 1e6,
			 bench_fs_name(S.dir));
		r.extra_text = extra_t;
		r.extra_json = extra_j;
		bench_print(&r, json);
	}
done:
	free(lib);
	free(bare);
	if (cleanup() < 0 && rc == 0)
		rc = -EIO;
	if (rc == -EINTR)
		bench_err(PROG, "interrupted");
	fprintf(json ? stderr : stdout, "# %s: %s in %.1f s\n", PROG,
		rc == 0 ? "done" : "FAILED",
		(double)(bench_now_ns() - t0) / 1e9);
	return rc == 0 ? 0 : 1;
}
