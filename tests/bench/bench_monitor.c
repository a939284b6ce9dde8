/* SPDX-License-Identifier: MIT */
/* bench_monitor.c - one ResourceMonitor sample against the bare reads of
 * the same /proc and /dev/shm entries, measured in the same run.
 *
 * Setup: a namespace holding 10 segments of 4 KiB (created through the
 * library, registry on a private tmpfs when run as root), 3 child processes
 * (sleeping) and 2 extra threads (blocked), so that a sample has children to
 * find and tasks to walk.
 *
 *   lib : shmk_monitor_sample() of a monitor created once with ns set
 *         (it keeps directory fds of /proc/PID and /dev/shm open)
 *   bare: the same reads with the same calls and no parsing beyond finding
 *         the children: directory fds of /proc/PID and /dev/shm opened once
 *         (as the monitor does), then per sample: list fd/ (fdopendir of
 *         openat + readdir), open/read/close statm and stat, list task/,
 *         open/read/close task/TID/children for each task and /proc/CHILD/stat
 *         for each child (strtol to find them), list /dev/shm and fstatat
 *         each "<ns>." object, fstatvfs of /dev/shm
 *         - no registry and no library call: the floor is the reads
 *   ref : the same again with absolute paths (/proc/self/..., opendir,
 *         statvfs("/dev/shm")) - what a naive sampler pays; reported only
 *
 * Rounds are interleaved (bare, lib, ref, bare, lib, ref, ...); medians over
 * rounds.
 *
 *   bench_monitor [--json] [--rounds N] [--ops N] [--segments N]
 *                 [--children N] [--threads N] [--registry-in DIR]
 *
 * Budget (docs/DESIGN.md): lib/bare <= 1.2.  Exit status 0 also when over
 * budget; 1 on any functional error; 2 on bad usage. */
#include "bench.h"

#include <pthread.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#define PROG "bench_monitor"
#define SEG_SIZE 4096
#define BUDGET 1.2
#define MAX_KIDS 64
#define MAX_THREADS 64

static struct {
	char dir[PATH_MAX];
	char ns[40];
	size_t ns_len;
	shmk_ctx *ctx;
	shmk_segment **segs;
	size_t n_segs;
	shmk_monitor *mon;
	pid_t kids[MAX_KIDS];
	size_t n_kids;
	pthread_t threads[MAX_THREADS];
	size_t n_threads;
	int park[2]; /* threads block reading park[0] */
	int proc_fd, shm_fd;
	char self_path[32]; /* "/proc/<pid>" */
	bool json;
} S = {.park = {-1, -1}, .proc_fd = -1, .shm_fd = -1};

/* What a bare sample found, checked against the setup. */
struct found {
	long fds, tasks, children, ns_objs;
	uint64_t ns_bytes;
	ssize_t statm, stat;
	unsigned long fsid;
};

/* ---- the bare reads ---------------------------------------------------------- */

static ssize_t slurp(int dirfd, const char *name, char *buf, size_t sz)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sz - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static long list_count(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;
	long n = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The children listed in buf: /proc/CHILD/stat read for each. */
static void read_kids(char *buf, struct found *f, bool paths)
{
	char path[64], st[1024];

	for (char *p = buf, *e;; p = e) {
		long pid = strtol(p, &e, 10);
		if (e == p)
			break;
		f->children++;
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		if (paths) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				if (read(fd, st, sizeof st - 1) < 0) {
				}
				close(fd);
			}
		} else {
			slurp(AT_FDCWD, path, st, sizeof st);
		}
	}
}

/* Kept directory fds, openat() relative to them: the floor. */
static void bare_sample(struct found *f)
{
	char buf[4096], kids[4096], path[96];
	struct statvfs v;
	struct dirent *e;
	int fd;
	DIR *d;

	memset(f, 0, sizeof *f);
	f->fds = list_count(S.proc_fd, "fd");
	f->statm = slurp(S.proc_fd, "statm", buf, sizeof buf);
	f->stat = slurp(S.proc_fd, "stat", buf, sizeof buf);
	fd = openat(S.proc_fd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			f->tasks++;
			snprintf(path, sizeof path, "task/%s/children", e->d_name);
			if (slurp(S.proc_fd, path, kids, sizeof kids) > 0)
				read_kids(kids, f, false);
		}
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	fd = openat(S.shm_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while ((e = readdir(d))) {
			struct stat st;
			if (strncmp(e->d_name, S.ns, S.ns_len) != 0 ||
			    e->d_name[S.ns_len] != '.')
				continue;
			if (fstatat(S.shm_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				f->ns_objs++;
				f->ns_bytes += (uint64_t)st.st_size;
			}
		}
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	if (fstatvfs(S.shm_fd, &v) == 0)
		f->fsid = v.f_fsid + 1;
}

/* The same with absolute paths (reference only). */
static ssize_t slurp_path(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sz - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void path_sample(struct found *f)
{
	char buf[4096], kids[4096], path[PATH_MAX];
	struct statvfs v;
	struct dirent *e;
	DIR *d;

	memset(f, 0, sizeof *f);
	if ((d = opendir("/proc/self/fd"))) {
		while ((e = readdir(d)))
			f->fds += e->d_name[0] != '.';
		closedir(d);
	}
	f->statm = slurp_path("/proc/self/statm", buf, sizeof buf);
	f->stat = slurp_path("/proc/self/stat", buf, sizeof buf);
	if ((d = opendir("/proc/self/task"))) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			f->tasks++;
			snprintf(path, sizeof path, "/proc/self/task/%s/children",
				 e->d_name);
			if (slurp_path(path, kids, sizeof kids) > 0)
				read_kids(kids, f, true);
		}
		closedir(d);
	}
	if ((d = opendir(BENCH_SHM_DIR))) {
		while ((e = readdir(d))) {
			struct stat st;
			if (strncmp(e->d_name, S.ns, S.ns_len) != 0 ||
			    e->d_name[S.ns_len] != '.')
				continue;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				f->ns_objs++;
				f->ns_bytes += (uint64_t)st.st_size;
			}
		}
		closedir(d);
	}
	if (statvfs(BENCH_SHM_DIR, &v) == 0)
		f->fsid = v.f_fsid + 1;
}

/* ---- rounds ------------------------------------------------------------------ */

enum side { SIDE_BARE, SIDE_LIB, SIDE_PATHS };

static int check_found(const struct found *f, const char *what)
{
	/* fd/ lists the listing's own descriptor too: at least 3 + 1. */
	if (f->fds < 4 || f->statm <= 0 || f->stat <= 0 ||
	    f->tasks != (long)S.n_threads + 1 || f->children != (long)S.n_kids ||
	    f->ns_objs != (long)S.n_segs ||
	    f->ns_bytes != (uint64_t)S.n_segs * SEG_SIZE || !f->fsid) {
		bench_err(PROG, "%s sample: fds %ld, statm %zd, stat %zd, tasks "
				"%ld, children %ld, ns objects %ld (%llu bytes): "
				"expected %zu tasks, %zu children, %zu objects",
			  what, f->fds, f->statm, f->stat, f->tasks, f->children,
			  f->ns_objs, (unsigned long long)f->ns_bytes,
			  S.n_threads + 1, S.n_kids, S.n_segs);
		return -EPROTO;
	}
	return 0;
}

static int check_sample(const struct shmk_sample *s)
{
	if (s->fds < 3 || s->rss == 0 || s->threads != (long)S.n_threads + 1 ||
	    s->children != (long)S.n_kids || s->zombies != 0 ||
	    s->ns_segments != S.n_segs ||
	    s->ns_bytes != (uint64_t)S.n_segs * SEG_SIZE || s->shm_total == 0) {
		char j[512];
		shmk_sample_json(s, j, sizeof j);
		bench_err(PROG, "lib sample %s: expected %zu threads, %zu "
				"children, %zu segments",
			  j, S.n_threads + 1, S.n_kids, S.n_segs);
		return -EPROTO;
	}
	return 0;
}

/* ns per sample, or a negative errno.  The first sample of a round is
 * checked; the rest are only taken. */
static double run_round(enum side side, size_t ops)
{
	struct shmk_sample s;
	struct found f;
	uint64_t t0 = bench_now_ns();
	int rc;

	for (size_t i = 0; i < ops; i++) {
		switch (side) {
		case SIDE_LIB:
			if ((rc = shmk_monitor_sample(S.mon, &s)) < 0) {
				bench_err(PROG, "shmk_monitor_sample: %s",
					  shmk_last_error());
				return rc;
			}
			if (i == 0 && (rc = check_sample(&s)) < 0)
				return rc;
			break;
		case SIDE_BARE:
			bare_sample(&f);
			if (i == 0 && (rc = check_found(&f, "bare")) < 0)
				return rc;
			break;
		case SIDE_PATHS:
			path_sample(&f);
			if (i == 0 && (rc = check_found(&f, "path")) < 0)
				return rc;
			break;
		}
		if (bench_stop)
			return -EINTR;
	}
	return (double)(bench_now_ns() - t0) / (double)ops;
}

/* ---- setup and cleanup ------------------------------------------------------- */

static void *parked(void *arg)
{
	char b;

	(void)arg;
	while (read(S.park[0], &b, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static int setup(size_t segs, size_t kids, size_t threads)
{
	int rc;

	if (!(S.segs = calloc(segs, sizeof *S.segs)))
		return -ENOMEM;
	for (; S.n_segs < segs; S.n_segs++) {
		char name[32];
		snprintf(name, sizeof name, "seg%zu", S.n_segs);
		if ((rc = shmk_segment_create(S.ctx, name, SEG_SIZE,
					      &S.segs[S.n_segs])) < 0) {
			bench_err(PROG, "shmk_segment_create: %s",
				  shmk_last_error());
			return rc;
		}
	}
	if (pipe2(S.park, O_CLOEXEC) < 0) {
		bench_err(PROG, "pipe2: %s", strerror(errno));
		return -errno;
	}
	for (; S.n_threads < threads; S.n_threads++)
		if ((rc = pthread_create(&S.threads[S.n_threads], NULL, parked,
					 NULL)) != 0) {
			bench_err(PROG, "pthread_create: %s", strerror(rc));
			return -rc;
		}
	fflush(NULL);
	for (; S.n_kids < kids; S.n_kids++) {
		pid_t p = fork();
		if (p == 0) {
			/* Ctrl-C of the group: the parent stops and reaps us. */
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
			for (;;)
				pause();
		}
		if (p < 0) {
			bench_err(PROG, "fork: %s", strerror(errno));
			return -errno;
		}
		S.kids[S.n_kids] = p;
	}
	snprintf(S.self_path, sizeof S.self_path, "/proc/%d", (int)getpid());
	if ((S.proc_fd = open(S.self_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (S.shm_fd = open(BENCH_SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		bench_err(PROG, "open %s or %s: %s", S.self_path, BENCH_SHM_DIR,
			  strerror(errno));
		return -errno;
	}
	{
		struct shmk_monitor_options mo = {0};
		mo.ns = S.ns;
		if ((rc = shmk_monitor_create(&mo, &S.mon)) < 0) {
			bench_err(PROG, "shmk_monitor_create: %s",
				  shmk_last_error());
			return rc;
		}
	}
	return 0;
}

static int cleanup(void)
{
	int bad = 0;

	shmk_monitor_destroy(S.mon);
	S.mon = NULL;
	for (size_t i = 0; i < S.n_kids; i++) {
		int st;
		kill(S.kids[i], SIGKILL);
		while (waitpid(S.kids[i], &st, 0) < 0 && errno == EINTR)
			;
	}
	S.n_kids = 0;
	if (S.park[1] >= 0)
		close(S.park[1]); /* EOF: the parked threads return */
	S.park[1] = -1;
	for (size_t i = 0; i < S.n_threads; i++)
		pthread_join(S.threads[i], NULL);
	S.n_threads = 0;
	if (S.park[0] >= 0)
		close(S.park[0]);
	S.park[0] = -1;
	if (S.proc_fd >= 0)
		close(S.proc_fd);
	if (S.shm_fd >= 0)
		close(S.shm_fd);
	S.proc_fd = S.shm_fd = -1;
	for (size_t i = 0; i < S.n_segs; i++)
		if (shmk_segment_destroy(S.segs[i]) < 0) {
			bench_err(PROG, "shmk_segment_destroy: %s",
				  shmk_last_error());
			bad = -1;
		}
	free(S.segs);
	S.segs = NULL;
	S.n_segs = 0;
	if (bench_teardown_env(PROG, &S.ctx, S.dir, S.ns, true) < 0)
		bad = -1;
	return bad;
}

static int bench(size_t rounds, size_t ops)
{
	double *lib = calloc(rounds, sizeof *lib), *bare = calloc(rounds, sizeof *bare);
	double *paths = calloc(rounds, sizeof *paths), v, pmed, pr;
	struct bench_result r = {0};
	char xt[400], xj[256];
	int rc = 0;

	if (!lib || !bare || !paths) {
		rc = -ENOMEM;
		goto out;
	}
	for (int s = 0; s < 3; s++) /* warm-up */
		if ((v = run_round((enum side)s, ops / 4 + 1)) < 0) {
			rc = (int)v;
			goto out;
		}
	for (size_t i = 0; i < rounds; i++) {
		if ((v = run_round(SIDE_BARE, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		bare[i] = v;
		if ((v = run_round(SIDE_LIB, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		lib[i] = v;
		if ((v = run_round(SIDE_PATHS, ops)) < 0) {
			rc = (int)v;
			goto out;
		}
		paths[i] = v;
	}
	pmed = bench_median(paths, rounds);
	r.id = "monitor_sample";
	r.label = "one monitor sample";
	r.ops_per_round = ops;
	r.budget = BUDGET;
	bench_finish(&r, lib, bare, rounds);
	pr = bench_pair_ratio(lib, bare, rounds);
	snprintf(xt, sizeof xt,
		 "sample costs %.1f us; median of per-round ratios %.2f; ns of "
		 "%zu segments, %zu children, %zu threads; floor: kept dirfds of "
		 "/proc/PID and /dev/shm + openat; reference: bare with "
		 "/proc/self paths %.1f us (lib/paths %.2f)",
		 r.lib.med / 1e3, pr, S.n_segs, S.n_kids, S.n_threads + 1,
		 pmed / 1e3, pmed > 0 ? r.lib.med / pmed : 0);
	snprintf(xj, sizeof xj,
		 ",\"sample_us\":%.2f,\"pair_ratio\":%.3f,\"segments\":%zu,"
		 "\"children\":%zu,\"threads\":%zu,\"paths_ns_per_op\":%.1f,"
		 "\"ratio_to_paths\":%.3f",
		 r.lib.med / 1e3, pr, S.n_segs, S.n_kids, S.n_threads + 1, pmed,
		 pmed > 0 ? r.lib.med / pmed : 0);
	r.extra_text = xt;
	r.extra_json = xj;
	bench_print(&r, S.json);
out:
	free(lib);
	free(bare);
	free(paths);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--json] [--rounds N] [--ops N] [--segments N]\n"
		"       [--children N] [--threads N] [--registry-in DIR]\n"
		"  --rounds N    interleaved rounds per side (default 61, min 3)\n"
		"  --ops N       samples per round (default 100)\n"
		"  --segments N  segments in the sampled namespace (default 10)\n"
		"  --children N  child processes to find (default 3, max %d)\n"
		"  --threads N   extra threads (default 2, max %d)\n"
		"  --registry-in DIR  parent of the temporary registry directory\n"
		"  --json        one JSON object per benchmark on stdout\n",
		PROG, MAX_KIDS, MAX_THREADS);
}

int main(int argc, char **argv)
{
	size_t rounds = 61, ops = 100, segs = 10, kids = 3, threads = 2;
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
		} else if (!strcmp(a, "--ops")) {
			ops = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--segments")) {
			segs = bench_parse_count(PROG, a, val, 1);
			i++;
		} else if (!strcmp(a, "--children")) {
			kids = bench_parse_count(PROG, a, val, 0);
			i++;
		} else if (!strcmp(a, "--threads")) {
			threads = bench_parse_count(PROG, a, val, 0);
			i++;
		} else if (!strcmp(a, "--registry-in") && val) {
			parent = val;
			i++;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (kids > MAX_KIDS || threads > MAX_THREADS) {
		usage(stderr);
		return 2;
	}
	bench_trap_signals();
	bench_unique_ns(S.ns, sizeof S.ns, "bmon");
	S.ns_len = strlen(S.ns);
	if (!parent)
		parent = bench_registry_parent();
	if ((rc = bench_mkdtemp(S.dir, sizeof S.dir, parent, "mon")) < 0) {
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
	if ((rc = setup(segs, kids, threads)) < 0)
		goto done;
	fprintf(S.json ? stderr : stdout,
		"# %s: libshmkeeper %s, namespace %s, registry %s (%s), %s has "
		"%ld entries, %ld CPU(s)\n",
		PROG, shmk_version(), S.ns, S.dir, bench_fs_name(S.dir),
		BENCH_SHM_DIR, bench_dir_entries(BENCH_SHM_DIR, "."),
		sysconf(_SC_NPROCESSORS_ONLN));
	fflush(NULL);
	rc = bench(rounds, ops);
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
