/* SPDX-License-Identifier: MIT */
/* bench_reap_scale.c - reaping many dead owners in a fixed number of
 * descriptors, in linear time.
 *
 * Budget (DESIGN.md): "reap 100,000 dead owners: completes with
 * RLIMIT_NOFILE 64, linear time".  For N in {10,000, 100,000} (or --owners
 * a,b,...): N dead owners, each with a lock file (free: nobody holds it),
 * a record naming one segment, and the segment itself, are written
 * directly into a fresh registry; then a child limited to RLIMIT_NOFILE 64
 * runs one shmk_reap() of the namespace and must reap all N owners and N
 * segments and leave nothing.  Reported: wall and CPU time per owner for
 * each N, so linearity shows as a flat per-owner cost.  No floor: the
 * budget is a bound on descriptors and the shape of the cost, not a ratio. */
#include "bench.h"
#include "internal.h"

#include <sys/resource.h>
#include <sys/wait.h>

#define PROG "bench_reap_scale"

static int forge(const char *nsdir, const char *ns, size_t n)
{
	struct shmk_ident me;
	char buf[1024], path[PATH_MAX], id[SHMK_ID_MAX];
	int fd;

	if (shmk__self_ident(&me) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct shmk_ident who = me;
		struct shmk_rec_seg s = {.size = 4096, .created = 1,
					 .state = SHMK_SEG_INTENT};
		int len;

		who.pid = (pid_t)(4000000 + i % 190000);
		shmk__owner_id_make(who.pid, 1 + i / 190000, (uint32_t)i, id);
		len = shmk__fmt_header_open(buf, sizeof buf, ns, id, &who, "",
					    1);
		snprintf(s.name, sizeof s.name, "/%s.s%zu", ns, i);
		len += shmk__fmt_seg(buf + len, sizeof buf - (size_t)len, &s);
		len += snprintf(buf + len, sizeof buf - (size_t)len, "]}\n");
		snprintf(path, sizeof path, "%s/%s.jsonl", nsdir, id);
		if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			       0600)) < 0 ||
		    write(fd, buf, (size_t)len) != len)
			return -1;
		close(fd);
		snprintf(path, sizeof path, "%s/%s.lock", nsdir, id);
		if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			       0600)) < 0)
			return -1;
		close(fd);
		snprintf(path, sizeof path, "%s/%s.s%zu", BENCH_SHM_DIR, ns, i);
		if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			       0600)) < 0 ||
		    ftruncate(fd, 4096) < 0)
			return -1;
		close(fd);
	}
	return 0;
}

struct result {
	uint64_t wall_ns, cpu_ns;
	size_t owners, segments;
	long fds_at_start;
	int rc;
};

static int run_reap(const char *dir, const char *ns, size_t n,
		    struct result *res)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		struct rlimit rl = {64, 64};
		struct shmk_reap_options o = {.dir = dir, .ns = ns,
					      .flags = SHMK_REAP_NO_STRAYS};
		struct shmk_reap_report *rep = NULL;
		struct result r = {0};
		uint64_t w, c;

		close(p[0]);
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(2);
		r.fds_at_start = bench_dir_entries("/proc/self", "fd");
		w = bench_now_ns();
		c = bench_cpu_ns();
		r.rc = shmk_reap(&o, &rep);
		r.cpu_ns = bench_cpu_ns() - c;
		r.wall_ns = bench_now_ns() - w;
		if (rep) {
			r.owners = rep->owners_dead;
			r.segments = rep->segments_reaped;
		}
		if (r.rc < 0)
			fprintf(stderr, PROG ": shmk_reap: %s\n",
				shmk_last_error());
		shmk_reap_report_free(rep);
		if (write(p[1], &r, sizeof r) != sizeof r)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	ssize_t got = read(p[0], res, sizeof *res);
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	(void)n;
	return got == sizeof *res && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

int main(int argc, char **argv)
{
	size_t counts[8] = {10000, 100000}, nc = 2;
	int failed = 0;

	if (argc > 2 && !strcmp(argv[1], "--owners")) {
		nc = 0;
		for (char *t = strtok(argv[2], ","); t && nc < 8;
		     t = strtok(NULL, ","))
			counts[nc++] = bench_parse_count(PROG, "--owners", t, 1);
	}
	bench_trap_signals();
	printf("# %s: libshmkeeper %s, RLIMIT_NOFILE 64 for the reap\n", PROG,
	       shmk_version());
	for (size_t k = 0; k < nc; k++) {
		char dir[PATH_MAX], nsdir[PATH_MAX + 64], ns[40];
		struct shmk_options oo = {0};
		struct result r;
		shmk_ctx *ctx = NULL;
		size_t n = counts[k];

		bench_unique_ns(ns, sizeof ns, "brs");
		if (bench_mkdtemp(dir, sizeof dir, bench_registry_parent(),
				  "shmk-bench-scale") < 0) {
			bench_err(PROG, "mkdtemp: %s", strerror(errno));
			return 1;
		}
		/* A marked registry with the namespace bound to it. */
		oo.dir = dir;
		oo.ns = ns;
		oo.flags = SHMK_OPEN_NO_REAP;
		if (shmk_open(&oo, &ctx) < 0) {
			bench_err(PROG, "shmk_open: %s", shmk_last_error());
			return 1;
		}
		shmk_close(ctx);
		snprintf(nsdir, sizeof nsdir, "%s/%s", dir, ns);
		if (forge(nsdir, ns, n) < 0) {
			bench_err(PROG, "writing %zu owners: %s", n,
				  strerror(errno));
			failed = 1;
		} else if (run_reap(dir, ns, n, &r) < 0 || r.rc != 0 ||
			   r.owners != n || r.segments != n ||
			   bench_dir_entries(dir, ns) != 0) {
			bench_err(PROG, "reap of %zu owners with 64 descriptors "
				  "failed: rc %d, %zu owners, %zu segments",
				  n, r.rc, r.owners, r.segments);
			failed = 1;
		} else {
			printf("reap %zu dead owners (%zu segments), "
			       "RLIMIT_NOFILE 64 (%ld open at start): wall "
			       "%.2f s, CPU %.2f s, %.1f us/owner\n",
			       n, r.segments, r.fds_at_start,
			       (double)r.wall_ns / 1e9, (double)r.cpu_ns / 1e9,
			       (double)r.wall_ns / 1e3 / (double)n);
		}
		bench_shm_scan(ns, true);
		bench_unclaim(ns);
		bench_rm_rf(dir);
		bench_registry_parent_done();
	}
	return failed;
}
