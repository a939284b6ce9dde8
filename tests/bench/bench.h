/* SPDX-License-Identifier: MIT */
/* bench.h - what the benchmarks share: a monotonic clock, medians, the
 * result line (text and --json), a stop flag for SIGINT/SIGTERM, and
 * cleanup helpers (unique namespace, temp registry dir, purge of a
 * namespace's objects in /dev/shm).
 *
 * Every benchmark compares the library with the bare syscalls IN THE SAME
 * RUN, in interleaved rounds (bare, lib, bare, lib, ...), and reports the
 * median over rounds of the per-op time of each side and the ratio of the
 * medians against the budget of docs/DESIGN.md.  Over budget is reported
 * ("OVER") but is not an error: the exit status is non-zero only when
 * something functional went wrong. */
#ifndef SHMK_BENCH_H
#define SHMK_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "shmkeeper.h"

#define BENCH_SHM_DIR "/dev/shm"

/* ---- clock and statistics ------------------------------------------------ */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process, user + system.  For benchmarks whose both
 * sides run in this one process (segments, reap): it counts the kernel's
 * work, as the ratio must, but not the time spent waiting for a CPU that
 * other load on the machine took, which wall time does. */
static inline uint64_t bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Quantile q in [0,1] of v[0..n) (linear interpolation); v is not changed. */
static inline double bench_quantile(const double *v, size_t n, double q)
{
	double *s, r, pos;
	size_t i;

	if (n == 0)
		return 0;
	if (!(s = malloc(n * sizeof *s)))
		return v[0];
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, bench_cmp_double);
	pos = q * (double)(n - 1);
	i = (size_t)pos;
	r = i + 1 < n ? s[i] + (pos - (double)i) * (s[i + 1] - s[i]) : s[i];
	free(s);
	return r;
}

static inline double bench_median(const double *v, size_t n)
{
	return bench_quantile(v, n, 0.5);
}

/* ---- results ------------------------------------------------------------- */

struct bench_side {
	double med, p25, p75, min; /* ns per op over rounds */
};

struct bench_result {
	const char *id;    /* JSON "benchmark", e.g. "segment_create_destroy" */
	const char *label; /* text, e.g. "segment create+destroy 4KiB @10 live" */
	size_t rounds;
	size_t ops_per_round;
	struct bench_side lib, bare;
	double ratio, budget;
	const char *extra_text; /* appended to the text line (may be NULL) */
	const char *extra_json; /* ",\"k\":v..." appended (may be NULL) */
};

static inline void bench_side_stats(struct bench_side *s, const double *v,
				    size_t n)
{
	s->med = bench_median(v, n);
	s->p25 = bench_quantile(v, n, 0.25);
	s->p75 = bench_quantile(v, n, 0.75);
	s->min = bench_quantile(v, n, 0.0);
}

/* Fills the stats and ratio of r from the per-round samples. */
static inline void bench_finish(struct bench_result *r, const double *lib,
				const double *bare, size_t rounds)
{
	r->rounds = rounds;
	bench_side_stats(&r->lib, lib, rounds);
	bench_side_stats(&r->bare, bare, rounds);
	r->ratio = r->bare.med > 0 ? r->lib.med / r->bare.med : 0;
}

/* Median over rounds of lib[i] / bare[i]: each ratio compares two
 * neighbouring rounds, so slow drifts of the machine's load cancel out.
 * Reported beside the ratio of the medians, which stays the verdict except
 * in bench_cycle, whose budget is defined on per-cycle pairs. */
static inline double bench_pair_ratio(const double *lib, const double *bare,
				      size_t n)
{
	double *q = malloc((n ? n : 1) * sizeof *q), r;
	size_t k = 0;

	if (!q)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (bare[i] > 0)
			q[k++] = lib[i] / bare[i];
	r = bench_median(q, k);
	free(q);
	return r;
}

static inline const char *bench_verdict(const struct bench_result *r)
{
	return r->ratio <= r->budget ? "PASS" : "OVER";
}

/* Text line on stdout, or (json) the JSON object on stdout and the text
 * line on stderr, so that stdout stays machine-readable. */
static inline void bench_print(const struct bench_result *r, bool json)
{
	FILE *txt = json ? stderr : stdout;

	fprintf(txt,
		"%s: lib %.0f ns/op, bare %.0f ns/op, ratio %.2f (budget "
		"%.2f) %s  [%zu rounds x %zu ops; IQR lib %.0f-%.0f, bare "
		"%.0f-%.0f%s%s]\n",
		r->label, r->lib.med, r->bare.med, r->ratio, r->budget,
		bench_verdict(r), r->rounds, r->ops_per_round, r->lib.p25,
		r->lib.p75, r->bare.p25, r->bare.p75,
		r->extra_text ? "; " : "", r->extra_text ? r->extra_text : "");
	fflush(txt);
	if (!json)
		return;
	printf("{\"benchmark\":\"%s\",\"label\":\"%s\",\"rounds\":%zu,"
	       "\"ops_per_round\":%zu,"
	       "\"lib_ns_per_op\":%.1f,\"bare_ns_per_op\":%.1f,"
	       "\"lib_ns_p25\":%.1f,\"lib_ns_p75\":%.1f,\"lib_ns_min\":%.1f,"
	       "\"bare_ns_p25\":%.1f,\"bare_ns_p75\":%.1f,\"bare_ns_min\":%.1f,"
	       "\"ratio\":%.3f,\"budget\":%.2f,\"verdict\":\"%s\"%s}\n",
	       r->id, r->label, r->rounds, r->ops_per_round, r->lib.med,
	       r->bare.med, r->lib.p25, r->lib.p75, r->lib.min, r->bare.p25,
	       r->bare.p75, r->bare.min, r->ratio, r->budget, bench_verdict(r),
	       r->extra_json ? r->extra_json : "");
	fflush(stdout);
}

/* ---- errors and the stop flag -------------------------------------------- */

static volatile sig_atomic_t bench_stop;

static inline void bench_on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

/* SIGINT/SIGTERM/SIGHUP set bench_stop; the programs check it between
 * operations and clean up before exiting. */
static inline void bench_trap_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static inline void bench_err(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void bench_err(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: error: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- environment --------------------------------------------------------- */

/* A namespace nobody else uses: "<tag><pid>x<random hex>" (<= 32 chars). */
static inline void bench_unique_ns(char *out, size_t sz, const char *tag)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)bench_now_ns() ^ (uint32_t)getpid() * 2654435761u;
	snprintf(out, sz, "%s%dx%08x", tag, (int)getpid(), r);
}

/* Default parent of the registry directory (--registry-in overrides). */
#define BENCH_REGISTRY_PARENT "/tmp"

/* The registry belongs on tmpfs (docs/DESIGN.md), but /tmp and /run are
 * ext4 on some hosts.  As root, the default parent is a private tmpfs in a
 * new mount namespace (it vanishes with the process); otherwise /tmp. */
static char bench_tmpfs[64];

static inline const char *bench_registry_parent(void)
{
	if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) {
		snprintf(bench_tmpfs, sizeof bench_tmpfs, "/tmp/shmk-bench-XXXXXX");
		if (mkdtemp(bench_tmpfs) &&
		    mount("tmpfs", bench_tmpfs, "tmpfs", 0, "size=512m,mode=0700") == 0)
			return bench_tmpfs;
		if (bench_tmpfs[0])
			rmdir(bench_tmpfs);
		bench_tmpfs[0] = '\0';
	}
	return "/tmp";
}

static inline void bench_registry_parent_done(void)
{
	if (bench_tmpfs[0]) {
		umount2(bench_tmpfs, MNT_DETACH);
		rmdir(bench_tmpfs);
		bench_tmpfs[0] = '\0';
	}
}

/* A fresh registry directory: mkdtemp under parent (0700, ours). */
static inline int bench_mkdtemp(char *out, size_t sz, const char *parent,
				const char *tag)
{
	if ((size_t)snprintf(out, sz, "%s/shmk-bench-%s-XXXXXX", parent, tag) >=
	    sz)
		return -ENAMETOOLONG;
	return mkdtemp(out) ? 0 : -errno;
}

/* File system type of path, in words (for the report). */
static inline const char *bench_fs_name(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0x01021994ul: return "tmpfs";
	case 0x858458f6ul: return "ramfs";
	case 0xef53ul: return "ext4";
	case 0x9123683eul: return "btrfs";
	case 0x58465342ul: return "xfs";
	case 0x794c7630ul: return "overlayfs";
	default: return "other";
	}
}

static inline int bench_rm_one(const char *p, const struct stat *st, int flag,
			       struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf path (never follows symlinks).  0 or -1. */
static inline int bench_rm_rf(const char *path)
{
	if (!path || !path[0])
		return 0;
	return nftw(path, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 &&
			       errno != ENOENT
		       ? -1
		       : 0;
}

/* Number of "<ns>." objects in /dev/shm; if unlink_them, removes them. */
static inline size_t bench_shm_scan(const char *ns, bool unlink_them)
{
	size_t l = strlen(ns), n = 0;
	DIR *d = opendir(BENCH_SHM_DIR);
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ns, l) != 0 || e->d_name[l] != '.')
			continue;
		n++;
		if (unlink_them)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	return n;
}

/* Files (not "." "..") directly in dir/sub; -1 if it cannot be listed. */
static inline long bench_dir_entries(const char *dir, const char *sub)
{
	char p[PATH_MAX];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(p, sizeof p, "%s/%s", dir, sub);
	if (!(d = opendir(p)))
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Removes the namespace's claim (DESIGN.md, "Namespace claim"): the
 * library never does, and a benchmark's namespace is used once. */
static inline void bench_unclaim(const char *ns)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/.shmkeeper-claim.%u.%s", BENCH_SHM_DIR,
		 (unsigned)geteuid(), ns);
	unlink(p);
}

/* The end of one namespace of a benchmark: close its context (if any),
 * remove - and complain about - any object of the namespace left in
 * /dev/shm and, with check_files, any registry file left, and remove the
 * registry directory.  0, or -1 if anything was left or could not be
 * removed. */
static inline int bench_teardown_ns(const char *prog, shmk_ctx **ctx,
				    char *dir, const char *ns, bool check_files)
{
	int bad = 0;
	size_t left;
	long files;

	if (*ctx && shmk_close(*ctx) < 0) {
		bench_err(prog, "shmk_close: %s", shmk_last_error());
		bad = -1;
	}
	*ctx = NULL;
	if (ns[0] && (left = bench_shm_scan(ns, true)) > 0) {
		bench_err(prog, "%zu object(s) of namespace %s were left in %s "
				"(removed now)",
			  left, ns, BENCH_SHM_DIR);
		bad = -1;
	}
	if (ns[0])
		bench_unclaim(ns);
	if (dir[0]) {
		if (check_files && ns[0] &&
		    (files = bench_dir_entries(dir, ns)) > 0) {
			bench_err(prog, "%s/%s: %ld registry file(s) left after "
					"shmk_close",
				  dir, ns, files);
			bad = -1;
		}
		if (bench_rm_rf(dir) < 0) {
			bench_err(prog, "cannot remove %s: %s", dir,
				  strerror(errno));
			bad = -1;
		}
		dir[0] = '\0';
	}
	return bad;
}

/* The end of every benchmark: bench_teardown_ns() of its namespace, then
 * the private tmpfs goes. */
static inline int bench_teardown_env(const char *prog, shmk_ctx **ctx,
				     char *dir, const char *ns, bool check_files)
{
	int bad = bench_teardown_ns(prog, ctx, dir, ns, check_files);

	bench_registry_parent_done();
	return bad;
}

/* Parses a positive count option value; exits 2 on garbage. */
static inline size_t bench_parse_count(const char *prog, const char *opt,
				       const char *v, size_t min)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = v ? strtoull(v, &end, 10) : 0;
	if (!v || errno || *end || n < min || n > 100000000ull) {
		fprintf(stderr, "%s: %s needs a number >= %zu\n", prog, opt,
			min);
		exit(2);
	}
	return (size_t)n;
}

#endif
