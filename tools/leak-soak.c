/* SPDX-License-Identifier: MIT */
/* leak-soak - init/teardown cycles of a real pool with real segments, with
 * leak verdicts from the ResourceMonitor.  See docs/leak-soak.1.
 *
 * A cycle: reap what a previous (killed) cycle left, open the namespace,
 * create a pool (workers with their slot segments) and extra segments, run a
 * job on every worker that writes all of its slot, write every extra
 * segment, tear it all down.  With --kill-every K, every K-th cycle runs in
 * a child process that is SIGKILLed in the middle of its jobs; the next
 * cycle's reap must take everything it left.  The process is a child
 * subreaper, so the killed cycle's orphaned workers (and a spawner, had
 * one been forked) are reaped here and cannot hide as zombies of init.
 */
#include "common.h"
#include "shmkeeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_LEAK 1

/* The leak thresholds, given to the monitor rather than left to its
 * defaults, so that the verdict and the picture can show them.  RSS grows
 * for innocent reasons (heap high-water marks): it is a leak only past
 * both RSS_PCT of the baseline and RSS_BYTES.  Descriptors, segments and
 * their bytes: any growth is a leak. */
#define RSS_PCT 10.0
#define RSS_BYTES (8ull << 20)

/* The RSS growth over base beyond which the monitor calls it a leak. */
static double rss_threshold(uint64_t base)
{
	double pct = (double)base * RSS_PCT / 100.0;

	return pct > (double)RSS_BYTES ? pct : (double)RSS_BYTES;
}

struct cfg {
	unsigned long long cycles, workers, segments, size, kill_every, warmup;
	const char *ns, *dir, *csv, *plot;
	bool json, quiet;
	enum { FAULT_NONE, FAULT_FD, FAULT_SEGMENT } fault;
};

struct row {
	bool killed;
	double init_ms, teardown_ms;
	struct shmk_sample s;   /* after the cycle */
	long records;           /* registry records left after the cycle */
	size_t reaped;          /* segments reaped at the start of the cycle */
	uint64_t reaped_bytes;
};

static struct cfg C = {.cycles = 50, .workers = 3, .segments = 3,
		       .size = 1u << 20, .ns = "leaksoak", .warmup = 5};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int touch(void *mem, size_t size, void *arg)
{
	unsigned char v = (unsigned char)(uintptr_t)arg;

	memset(mem, v, size);
	return ((unsigned char *)mem)[size - 1] == v ? 0 : 1;
}

static void usage(FILE *f)
{
	fputs("Usage: leak-soak [--cycles N] [--workers N] [--segments N] [--size BYTES]\n"
	      "                 [--namespace NS] [--dir DIR] [--kill-every K] [--warmup W]\n"
	      "                 [--json] [--csv FILE] [--plot FILE.svg] [-q]\n"
	      "       leak-soak -h | --help | -V | --version\n"
	      "\n"
	      "Runs init/teardown cycles of a worker pool with real segments and\n"
	      "reports leaks of descriptors, memory, threads, children, segments and\n"
	      "records.\n"
	      "\n"
	      "Options:\n"
	      "  --cycles N       cycles to run (default: 50)\n"
	      "  --workers N      pool workers, each with a slot (default: 3)\n"
	      "  --segments N     extra segments per cycle (default: 3)\n"
	      "  --size BYTES     size of each slot and segment, K/M/G suffixes\n"
	      "                   (default: 1M)\n"
	      "  --namespace NS   namespace to use (default: leaksoak)\n"
	      "  --dir DIR        registry directory (default: $SHMKEEPER_DIR, then\n"
	      "                   the library's defaults, see shmk_open(3))\n"
	      "  --kill-every K   SIGKILL a cycle's process every K cycles and check\n"
	      "                   that the next cycle reaps everything it left\n"
	      "                   (default: 0, never)\n"
	      "  --warmup W       cycles before the baseline (default: 5)\n"
	      "  --json           one JSON document on standard output\n"
	      "  --csv FILE       one row per cycle into FILE\n"
	      "  --plot FILE.svg  a picture of fds, RSS, segments and times per cycle\n"
	      "  -q, --quiet      only the verdict line\n"
	      "  -h, --help       show this help and exit\n"
	      "  -V, --version    show the version and exit\n"
	      "\n"
	      "Exit status:\n"
	      "  0    no leak\n"
	      "  1    a leak was found\n"
	      "  64   usage error\n"
	      "  70   a cycle went wrong\n"
	      "  71   system error\n"
	      "  73   the --csv or --plot file could not be created\n"
	      "  74   the report could not be written\n"
	      "  78   registry directory or namespace refused\n"
	      "See leak-soak(1).\n",
	      f);
}

static bool parse_size(const char *s, unsigned long long *out)
{
	char *e;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno || e == s)
		return false;
	int shift = 0;
	switch (*e) {
	case 'k': case 'K': shift = 10; e++; break;
	case 'm': case 'M': shift = 20; e++; break;
	case 'g': case 'G': shift = 30; e++; break;
	}
	if (v > (1ull << 40) >> shift) /* before the shift can wrap */
		return false;
	v <<= shift;
	if (*e == 'i' && e[1] == 'B')
		e += 2;
	else if (*e == 'B')
		e++;
	if (*e || v == 0 || v > (1ull << 40))
		return false;
	*out = v;
	return true;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{"cycles", 1, 0, 'c'},   {"workers", 1, 0, 'w'},
		{"segments", 1, 0, 's'}, {"size", 1, 0, 'z'},
		{"namespace", 1, 0, 'n'}, {"dir", 1, 0, 'd'},
		{"kill-every", 1, 0, 'k'}, {"warmup", 1, 0, 'W'},
		{"json", 0, 0, 'j'},     {"csv", 1, 0, 'C'},
		{"plot", 1, 0, 'p'},     {"help", 0, 0, 'h'},
		{"version", 0, 0, 'V'},  {"quiet", 0, 0, 'q'},
		{0, 0, 0, 0}};
	int o, li = 0;

	opterr = 0; /* our own messages, in the tools' style */
	while ((o = getopt_long(argc, argv, ":qhV", lo, &li)) != -1) {
		unsigned long long *u = NULL, max = 0;
		switch (o) {
		case 'c': u = &C.cycles; max = 100000000; break;
		case 'w': u = &C.workers; max = 1024; break;
		case 's': u = &C.segments; max = 100000; break;
		case 'k': u = &C.kill_every; max = 100000000; break;
		case 'W': u = &C.warmup; max = 100000000; break;
		case 'z':
			if (!parse_size(optarg, &C.size))
				tool_usage_error("--size: \"%s\" is not a size "
						 "(e.g. 4096, 64K, 1M)",
						 optarg);
			continue;
		case 'n': C.ns = optarg; continue;
		case 'd': C.dir = tool_opt_dir("--dir", optarg); continue;
		case 'j': C.json = true; continue;
		case 'C': C.csv = optarg; continue;
		case 'p': C.plot = optarg; continue;
		case 'q': C.quiet = true; continue;
		default: tool_opt_other(o, argv, usage);
		}
		if (!tool_parse_uint(optarg, max, u))
			tool_usage_error("--%s: \"%s\" is not a number from 0 to "
					 "%llu",
					 lo[li].name, optarg, max);
	}
	if (optind < argc)
		tool_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (C.cycles == 0 || C.workers == 0)
		tool_usage_error("--cycles and --workers must be at least 1");
	if (shmk_ns_check(C.ns) < 0)
		tool_usage_error("%s", shmk_last_error());
	/* Hidden fault switch, for the tests that prove leaks are caught. */
	const char *f = getenv("SHMKEEPER_SOAK_FAULT");
	if (f && !strcmp(f, "fd"))
		C.fault = FAULT_FD;
	else if (f && !strcmp(f, "segment"))
		C.fault = FAULT_SEGMENT;
}

static long count_records(const char *dir)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	long n = 0;

	snprintf(path, sizeof path, "%s/%s", dir, C.ns);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l > 6 && !strcmp(e->d_name + l - 6, ".jsonl"))
			n++;
	}
	closedir(d);
	return n;
}

/* One cycle in this process.  stop_fd >= 0: a child in crash mode, which
 * reports "ready" after init and then runs jobs until it is killed. */
static int cycle(unsigned long long i, double *init_ms, double *td_ms,
		 int ready_fd)
{
	/* One thread: the pools' spawners are forked only if a worker needs
	 * replacing, which a cycle never asks (docs/DESIGN.md). */
	struct shmk_options o = {.dir = C.dir, .ns = C.ns,
				 .flags = SHMK_OPEN_NO_REAP |
					  SHMK_OPEN_LAZY_SPAWNER,
				 .role = "leak-soak"};
	struct shmk_pool_options po = {.workers = (unsigned)C.workers,
				       .slot_size = C.size, .fn = touch,
				       .arg = (void *)(uintptr_t)(i & 0xff),
				       .title = "leak-soak",
				       .lease_policy = SHMK_LEASE_WAIT};
	shmk_segment **segs = calloc(C.segments + 1, sizeof *segs);
	shmk_ctx *ctx = NULL;
	shmk_pool *pool = NULL;
	double t0 = now_ms(), t1, t2;
	int rc;

	if (!segs)
		tool_fatal(EX_OSERR, "out of memory");
	if ((rc = shmk_open(&o, &ctx)) < 0)
		tool_fatal(tool_exit_code_for(rc), "unable to open namespace %s: %s",
			   C.ns, shmk_last_error());
	if ((rc = shmk_pool_create(ctx, &po, &pool)) < 0)
		tool_fatal(tool_exit_code_for(rc), "unable to create the pool: %s",
			   shmk_last_error());
	for (unsigned long long k = 0; k < C.segments; k++) {
		char name[64];
		snprintf(name, sizeof name, "soak-%llu", k);
		if ((rc = shmk_segment_create(ctx, name, C.size, &segs[k])) < 0)
			tool_fatal(tool_exit_code_for(rc),
				   "unable to create segment %s: %s", name,
				   shmk_last_error());
	}
	t1 = now_ms();
	if (ready_fd >= 0) {
		/* Crash mode: tell the parent we are in the middle of it, and
		 * keep the workers busy until the SIGKILL comes. */
		if (write(ready_fd, "r", 1) != 1)
			_exit(EX_OSERR);
		for (;;)
			for (unsigned w = 0; w < C.workers; w++) {
				int slot = shmk_pool_lease(pool, SHMK_LEASE_WAIT, 0), r;
				if (slot >= 0) {
					shmk_pool_run(pool, (unsigned)slot, &r);
					shmk_pool_release(pool, (unsigned)slot);
				}
			}
	}
	for (unsigned w = 0; w < C.workers; w++) {
		int slot = shmk_pool_lease(pool, SHMK_LEASE_WAIT, 0), r = -1;
		if (slot < 0)
			tool_fatal(EX_SOFTWARE, "unable to lease a slot: %s",
				   shmk_last_error());
		if ((rc = shmk_pool_run(pool, (unsigned)slot, &r)) < 0 || r != 0)
			tool_fatal(EX_SOFTWARE, "job on slot %d failed: %s", slot,
				   rc < 0 ? shmk_last_error() : "bad result");
		shmk_pool_release(pool, (unsigned)slot);
	}
	for (unsigned long long k = 0; k < C.segments; k++)
		memset(shmk_segment_addr(segs[k]), (int)(i & 0xff), C.size);
	if (C.fault == FAULT_FD && open("/dev/null", O_RDONLY) < 0)
		tool_warn("fault switch: cannot leak an fd");
	if (C.fault == FAULT_SEGMENT) {
		char name[96];
		snprintf(name, sizeof name, "/%s.leak-%llu", C.ns, i);
		int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
		if (fd >= 0)
			close(fd); /* outside the registry: a real leak */
	}

	t2 = now_ms();
	for (unsigned long long k = 0; k < C.segments; k++)
		if ((rc = shmk_segment_destroy(segs[k])) < 0)
			tool_fatal(EX_SOFTWARE, "unable to destroy a segment: %s",
				   shmk_last_error());
	if ((rc = shmk_pool_destroy(pool)) < 0)
		tool_fatal(EX_SOFTWARE, "unable to destroy the pool: %s",
			   shmk_last_error());
	if ((rc = shmk_close(ctx)) < 0)
		tool_fatal(EX_SOFTWARE, "unable to close the namespace: %s",
			   shmk_last_error());
	*init_ms = t1 - t0;
	*td_ms = now_ms() - t2;
	free(segs);
	return 0;
}

/* Runs a cycle in a child and SIGKILLs it mid-cycle; reaps the child and,
 * as subreaper, its orphaned workers. */
static void killed_cycle(unsigned long long i)
{
	int p[2];
	char b;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		tool_fatal(EX_OSERR, "unable to create a pipe: %s", strerror(errno));
	if ((pid = fork()) < 0)
		tool_fatal(EX_OSERR, "unable to fork: %s", strerror(errno));
	if (pid == 0) {
		double a, t;
		close(p[0]);
		cycle(i, &a, &t, p[1]);
		_exit(EX_SOFTWARE);
	}
	close(p[1]);
	if (read(p[0], &b, 1) != 1) {
		/* It failed before it was ready (it said why on stderr): not a
		 * killed cycle, and not something to carry on past. */
		int st = 0;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : EX_SOFTWARE;
		tool_fatal(code >= EX__BASE && code <= EX__MAX ? code : EX_SOFTWARE,
			   "cycle %llu: the process to kill died before it was "
			   "ready (%s %d)",
			   i + 1, WIFEXITED(st) ? "exit status" : "signal",
			   WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	close(p[0]);
	{
		struct timespec ts = {0, 2 * 1000 * 1000}; /* into its jobs */
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	/* Everything that was below it: the orphans see the service gone
	 * and exit; as subreaper we collect them (deadline 10 s). */
	double deadline = now_ms() + 10000;
	for (;;) {
		pid_t r = waitpid(-1, NULL, WNOHANG);
		if (r < 0 && errno == ECHILD)
			break;
		if (r > 0)
			continue;
		if (now_ms() > deadline) {
			tool_warn("cycle %llu: processes of the killed cycle still "
				  "running after 10 s",
				  i + 1);
			break;
		}
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Problems of single cycles, judged as they happen (not only at the end). */
static size_t n_violations;
static char first_violation[300];

static void violation(unsigned long long i, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void violation(unsigned long long i, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!n_violations++)
		snprintf(first_violation, sizeof first_violation, "cycle %llu %s",
			 i + 1, msg);
	if (!C.quiet && !C.json)
		tool_warn("cycle %llu: %s", i + 1, msg);
}

/* The verdict's reasons in the tools' words and units (the monitor's own
 * sentence counts bytes): what grew past its threshold since the baseline
 * (v), the problems of single cycles, and what the last cycle left.
 * Returns true if there is any. */
static bool verdict_reason(const struct shmk_verdict *v,
			   const struct shmk_sample *base,
			   const struct row *last, char *b, size_t sz)
{
	char h[TOOL_HSIZE], h2[TOOL_HSIZE];

	b[0] = '\0';
	if (v->fd_leak)
		tool_part(b, sz, "; ", "fd: %+ld (threshold 0)", v->fd_delta);
	if (v->rss_leak)
		tool_part(b, sz, "; ", "rss: %s (threshold %s)",
			  tool_hdelta(v->rss_delta, h),
			  tool_hsize((uint64_t)rss_threshold(base->rss), h2));
	if (v->thread_leak)
		tool_part(b, sz, "; ", "threads: %+ld", v->thread_delta);
	if (v->child_leak)
		tool_part(b, sz, "; ", "children: %+ld (%ld zombie%s)",
			  v->child_delta, v->zombies,
			  tool_s((size_t)v->zombies));
	if (v->segment_leak)
		tool_part(b, sz, "; ", "segments of %s: %+" PRId64, C.ns,
			  v->segment_delta);
	if (v->bytes_leak)
		tool_part(b, sz, "; ", "bytes of %s: %s", C.ns,
			  tool_hdelta(v->bytes_delta, h));
	if (n_violations)
		tool_part(b, sz, "; ", "%zu cycle problem(s), first: %s",
			  n_violations, first_violation);
	if (last->s.ns_segments || last->records)
		tool_part(b, sz, "; ", "%" PRIu64 " segment(s), %ld record(s) "
				       "of %s left",
			  last->s.ns_segments, last->records, C.ns);
	if (last->s.zombies)
		tool_part(b, sz, "; ", "zombies left");
	return b[0] != '\0';
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double mean, p50, p99, max;
	size_t n;
};

static struct stats stats_of(const struct row *rows, size_t n, bool init)
{
	struct stats s = {0};
	double *v = malloc((n ? n : 1) * sizeof *v), sum = 0;

	if (!v)
		tool_fatal(EX_OSERR, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (!rows[i].killed) {
			v[s.n] = init ? rows[i].init_ms : rows[i].teardown_ms;
			sum += v[s.n++];
		}
	if (s.n) {
		qsort(v, s.n, sizeof *v, cmp_double);
		s.mean = sum / (double)s.n;
		s.p50 = v[(s.n - 1) / 2];
		s.p99 = v[(size_t)ceil(0.99 * (double)s.n) - 1];
		s.max = v[s.n - 1];
	}
	free(v);
	return s;
}

/* An output file, created before the run so that a bad path fails at once
 * rather than after the last cycle, losing the report. */
static FILE *create_output(const char *path)
{
	FILE *f = path ? fopen(path, "we") : NULL;

	if (path && !f)
		tool_fatal(EX_CANTCREAT, "unable to create %s: %s", path,
			   strerror(errno));
	return f;
}

/* The fields of one cycle, in the CSV's column order; the JSON's
 * "cycles" objects have the same members, so the two cannot drift apart. */
enum field_kind { F_COUNT, F_MS, F_BOOL };
static const struct field {
	const char *name;
	enum field_kind kind;
} FIELDS[] = {
	{"cycle", F_COUNT},    {"killed", F_BOOL},    {"init_ms", F_MS},
	{"teardown_ms", F_MS}, {"fds", F_COUNT},      {"rss", F_COUNT},
	{"threads", F_COUNT},  {"children", F_COUNT}, {"zombies", F_COUNT},
	{"segments", F_COUNT}, {"bytes", F_COUNT},    {"records", F_COUNT},
	{"reaped", F_COUNT},   {"reaped_bytes", F_COUNT},
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

/* Row i's values in FIELDS order (counts are exact: all below 2^53). */
static void row_values(const struct row *r, size_t i, double v[N_FIELDS])
{
	const double all[] = {
		(double)(i + 1),     r->killed,           r->init_ms,
		r->teardown_ms,      (double)r->s.fds,    (double)r->s.rss,
		(double)r->s.threads, (double)r->s.children,
		(double)r->s.zombies, (double)r->s.ns_segments,
		(double)r->s.ns_bytes, (double)r->records, (double)r->reaped,
		(double)r->reaped_bytes,
	};
	_Static_assert(sizeof all / sizeof all[0] == N_FIELDS,
		       "one value per field");
	memcpy(v, all, sizeof all);
}

static void write_csv(FILE *f, const struct row *rows, size_t n)
{
	double v[N_FIELDS];

	for (size_t k = 0; k < N_FIELDS; k++)
		fprintf(f, "%s%s", k ? "," : "", FIELDS[k].name);
	fputc('\n', f);
	for (size_t i = 0; i < n; i++) {
		row_values(&rows[i], i, v);
		for (size_t k = 0; k < N_FIELDS; k++)
			fprintf(f, FIELDS[k].kind == F_MS ? "%s%.3f" : "%s%.0f",
				k ? "," : "", v[k]);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		tool_fatal(EX_IOERR, "unable to write %s: %s", C.csv,
			   strerror(errno));
}

/* ---- the picture (--plot) ------------------------------------------------ */
/*
 * Four panels over the cycles, left to right: descriptors, RSS, segments
 * left after each cycle, and init/teardown times.  Each panel shows the
 * same marks: the warm-up cycles shaded and the baseline cycle as a
 * dashed vertical line, a grey vertical line at every killed cycle, and
 * (in the three judged panels) the leak threshold, baseline + what the
 * monitor allows, as a red line with the leak zone above it tinted.  The
 * vertical scale is chosen so that the threshold is always in view: a
 * wobble of a few KiB of RSS stays a flat line near the baseline, far
 * below an 8 MiB threshold, instead of filling the panel.  Counts and
 * times start at 0, so a constant 0 is a flat line at the bottom.
 * The SVG elements carry classes (panel, series, baseline, warmup,
 * threshold, leak-zone, killed) for tests and for restyling.
 */
enum unit { U_COUNT, U_BYTES, U_MS };

struct series {
	const double *v;  /* one value per cycle; NaN: none (a gap) */
	const char *color;
};

struct panel_spec {
	const char *id, *title;
	enum unit unit;
	struct series s[2];
	size_t n_series;
	bool judged;      /* has a leak threshold */
	double base;      /* the baseline value (judged panels) */
	double threshold; /* the largest value that is not a leak */
};

#define PLOT_W 860 /* plot area width */
#define PLOT_H 140 /* plot area height */
#define PLOT_X0 90 /* left edge of the plot area */
#define PLOT_TOP 22 /* top of the plot area inside a panel */
#define PANEL_STEP 190

static void axis_label(char *buf, size_t sz, enum unit u, double v)
{
	char h[TOOL_HSIZE];

	switch (u) {
	case U_BYTES:
		snprintf(buf, sz, "%s", tool_hsize(v > 0 ? (uint64_t)v : 0, h));
		break;
	case U_MS: snprintf(buf, sz, "%.3g ms", v); break;
	default: snprintf(buf, sz, "%.0f", v); break;
	}
}

static double plot_x(size_t i, size_t n)
{
	return PLOT_X0 + (n > 1 ? (double)i * PLOT_W / (double)(n - 1)
				: PLOT_W / 2.0);
}

static void panel(FILE *f, int y0, const struct panel_spec *p,
		  const struct row *rows, size_t n, size_t base_i)
{
	const double bottom = PLOT_TOP + PLOT_H;
	double lo = INFINITY, hi = -INFINITY;
	char l1[32], l2[32];

	for (size_t k = 0; k < p->n_series; k++)
		for (size_t i = 0; i < n; i++) { /* NaN compares false */
			if (p->s[k].v[i] < lo) lo = p->s[k].v[i];
			if (p->s[k].v[i] > hi) hi = p->s[k].v[i];
		}
	if (lo > hi)
		lo = hi = 0;
	if (p->unit != U_BYTES || !p->judged) {
		if (lo > 0)
			lo = 0; /* counts and times from 0 */
	} else if (p->base < lo) {
		lo = p->base;
	}
	if (p->judged) {
		/* The threshold in view, with room above it for the zone. */
		double room = p->unit == U_BYTES ? (p->threshold - p->base) / 4
						 : 1;
		if (p->threshold + room > hi)
			hi = p->threshold + room;
	}
	if (!(hi > lo))
		hi = lo + 1; /* a constant: a flat line at the bottom */
#define Y(v) (bottom - ((v) - lo) * PLOT_H / (hi - lo))

	fprintf(f, "<g class=\"panel\" id=\"panel-%s\" "
		   "transform=\"translate(0,%d)\" data-bottom=\"%.1f\">\n",
		p->id, y0, bottom);
	fprintf(f, "<text x=\"%d\" y=\"14\" font-size=\"13\" "
		   "font-weight=\"bold\">%s</text>\n", PLOT_X0, p->title);
	fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" "
		   "height=\"%d\" fill=\"#fafafa\" stroke=\"#999\"/>\n",
		PLOT_X0, PLOT_TOP, PLOT_W, PLOT_H);
	/* Warm-up: the cycles before and at the baseline. */
	fprintf(f, "<rect class=\"warmup\" x=\"%d\" y=\"%d\" width=\"%.1f\" "
		   "height=\"%d\" fill=\"#e8e8f4\"/>\n",
		PLOT_X0, PLOT_TOP, plot_x(base_i, n) - PLOT_X0, PLOT_H);
	if (p->judged) {
		double yt = Y(p->threshold);
		fprintf(f, "<rect class=\"leak-zone\" x=\"%d\" y=\"%d\" "
			   "width=\"%d\" height=\"%.1f\" fill=\"#fbe3e3\"/>\n",
			PLOT_X0, PLOT_TOP, PLOT_W, yt - PLOT_TOP);
		fprintf(f, "<line class=\"threshold\" x1=\"%d\" y1=\"%.1f\" "
			   "x2=\"%d\" y2=\"%.1f\" stroke=\"#d62728\" "
			   "stroke-dasharray=\"6,3\"/>\n",
			PLOT_X0, yt, PLOT_X0 + PLOT_W, yt);
		axis_label(l1, sizeof l1, p->unit, p->threshold);
		axis_label(l2, sizeof l2, p->unit, p->threshold - p->base);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" "
			   "fill=\"#d62728\" text-anchor=\"end\">leak: above %s "
			   "(baseline + %s)</text>\n",
			PLOT_X0 + PLOT_W - 4, yt - 3, l1, l2);
		fprintf(f, "<line class=\"base-level\" x1=\"%d\" y1=\"%.1f\" "
			   "x2=\"%d\" y2=\"%.1f\" stroke=\"#777\" "
			   "stroke-dasharray=\"2,3\"/>\n",
			PLOT_X0, Y(p->base), PLOT_X0 + PLOT_W, Y(p->base));
	}
	/* Killed cycles: the same grey line in every panel. */
	for (size_t i = 0; i < n; i++)
		if (rows[i].killed)
			fprintf(f, "<line class=\"killed\" x1=\"%.1f\" y1=\"%d\" "
				   "x2=\"%.1f\" y2=\"%.1f\" stroke=\"#aaa\" "
				   "stroke-width=\"2\"/>\n",
				plot_x(i, n), PLOT_TOP, plot_x(i, n), bottom);
	fprintf(f, "<line class=\"baseline\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
		   "y2=\"%.1f\" stroke=\"#4b4b9b\" stroke-dasharray=\"4,3\"/>\n",
		plot_x(base_i, n), PLOT_TOP, plot_x(base_i, n), bottom);
	for (size_t k = 0; k < p->n_series; k++) {
		const double *d = p->s[k].v;
		bool open = false;
		for (size_t i = 0; i < n; i++) {
			if (isnan(d[i])) { /* a gap */
				if (open)
					fprintf(f, "\"/>\n");
				open = false;
				continue;
			}
			if (!open)
				fprintf(f, "<polyline class=\"series\" fill=\"none\" "
					   "stroke=\"%s\" stroke-width=\"1.5\" "
					   "points=\"", p->s[k].color);
			open = true;
			fprintf(f, "%.1f,%.1f ", plot_x(i, n), Y(d[i]));
		}
		if (open)
			fprintf(f, "\"/>\n");
	}
	axis_label(l1, sizeof l1, p->unit, hi);
	axis_label(l2, sizeof l2, p->unit, lo);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" "
		   "text-anchor=\"end\">%s</text>\n",
		PLOT_X0 - 4, PLOT_TOP + 8, l1);
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" "
		   "text-anchor=\"end\">%s</text>\n", PLOT_X0 - 4, bottom, l2);
	if (p->judged) {
		axis_label(l1, sizeof l1, p->unit, p->base);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" "
			   "fill=\"#4b4b9b\">baseline %s</text>\n",
			PLOT_X0 + 4, Y(p->base) - 3, l1);
	}
#undef Y
	fprintf(f, "</g>\n");
}

static void write_plot(FILE *f, const struct row *rows, size_t n,
		       const char *verdict, unsigned long long warm,
		       const struct shmk_sample *base)
{
	/* The five series, one after the other in one block. */
	double *a = calloc(5 * (n ? n : 1), sizeof *a);
	size_t base_i = warm ? warm - 1 : 0; /* the baseline's row */
	char title[160], h[TOOL_HSIZE];

	if (!a)
		tool_fatal(EX_OSERR, "out of memory");
	double *b = a + n, *c = b + n, *d = c + n, *e = d + n;
	/* A killed cycle is a gap in every series: what it left (its
	 * segments until the next reap, its times) is not judged, and drawn
	 * it would look like the leak it is not; its grey line marks it. */
	for (size_t i = 0; i < n; i++) {
		bool k = rows[i].killed;
		a[i] = k ? NAN : (double)rows[i].s.fds;
		b[i] = k ? NAN : (double)rows[i].s.rss;
		c[i] = k ? NAN : (double)rows[i].s.ns_segments;
		d[i] = k ? NAN : rows[i].init_ms;
		e[i] = k ? NAN : rows[i].teardown_ms;
	}

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"980\" "
		   "height=\"%d\" font-family=\"sans-serif\">\n"
		   "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		   "<text x=\"%d\" y=\"24\" font-size=\"16\">leak-soak: %zu cycles, "
		   "namespace %s — %s</text>\n",
		50 + 4 * PANEL_STEP + 20, PLOT_X0, n, C.ns, verdict);
	fprintf(f, "<text x=\"%d\" y=\"42\" font-size=\"11\" fill=\"#555\">"
		   "shaded: warm-up; dashed blue: baseline (after cycle %zu); "
		   "red dashed: leak threshold, leak zone tinted; grey: a "
		   "killed cycle</text>\n", PLOT_X0, base_i + 1);

	const struct panel_spec fds = {
		.id = "fds", .title = "open file descriptors", .unit = U_COUNT,
		.s = {{a, "#1f77b4"}}, .n_series = 1, .judged = true,
		.base = (double)base->fds, .threshold = (double)base->fds};
	snprintf(title, sizeof title, "resident memory (RSS); leak: more than "
		 "%.0f%% and %s above the baseline", RSS_PCT,
		 tool_hsize(RSS_BYTES, h));
	const struct panel_spec rss = {
		.id = "rss", .title = title, .unit = U_BYTES,
		.s = {{b, "#2ca02c"}}, .n_series = 1, .judged = true,
		.base = (double)base->rss,
		.threshold = (double)base->rss + rss_threshold(base->rss)};
	const struct panel_spec segs = {
		.id = "segments", .title = "segments of the namespace left after "
		"the cycle", .unit = U_COUNT, .s = {{c, "#d62728"}},
		.n_series = 1, .judged = true,
		.base = (double)base->ns_segments,
		.threshold = (double)base->ns_segments};
	const struct panel_spec times = {
		.id = "times", .title = "init (blue) and teardown (orange) time "
		"per cycle (not judged: no threshold)", .unit = U_MS,
		.s = {{d, "#1f77b4"}, {e, "#ff7f0e"}}, .n_series = 2};
	panel(f, 50, &fds, rows, n, base_i);
	panel(f, 50 + PANEL_STEP, &rss, rows, n, base_i);
	panel(f, 50 + 2 * PANEL_STEP, &segs, rows, n, base_i);
	panel(f, 50 + 3 * PANEL_STEP, &times, rows, n, base_i);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">"
		   "cycle 1 … %zu, left to right</text>\n</svg>\n",
		PLOT_X0, 50 + 4 * PANEL_STEP + 10, n);
	free(a);
	if (fclose(f) != 0)
		tool_fatal(EX_IOERR, "unable to write %s: %s", C.plot,
			   strerror(errno));
}

int main(int argc, char **argv)
{
	struct shmk_monitor_options mo = {0};
	struct shmk_monitor *mon;
	struct row *rows;
	struct shmk_verdict v = {0};
	struct shmk_sample base = {0};
	char dir[4096] = "", verdict[700], reason[600];
	char hs[TOOL_HSIZE], hs2[TOOL_HSIZE];
	bool tty, leak;
	size_t reaped_total = 0, killed_total = 0;
	uint64_t reaped_bytes = 0;
	int rc;

	tool_init("leak-soak");
	parse_args(argc, argv);
	FILE *csv_f = create_output(C.csv), *plot_f = create_output(C.plot);
	tty = isatty(STDERR_FILENO) && !C.quiet && !C.json;
	if (!(rows = calloc(C.cycles, sizeof *rows)))
		tool_fatal(EX_OSERR, "out of memory for %llu cycles", C.cycles);
	/* Touch the whole table now: paged in one row per cycle, it would
	 * itself make RSS grow ~136 bytes a cycle (seen over 10,000 cycles). */
	explicit_bzero(rows, C.cycles * sizeof *rows); /* never elided */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		tool_warn("cannot become a child subreaper: %s", strerror(errno));
	mo.ns = C.ns;
	mo.rss_threshold_pct = RSS_PCT;
	mo.rss_threshold_bytes = RSS_BYTES;
	if ((rc = shmk_monitor_create(&mo, &mon)) < 0)
		tool_fatal(tool_exit_code_for(rc), "unable to start the monitor: %s",
			   shmk_last_error());
	{
		/* Resolve the directory the library will use, and check it. */
		struct shmk_options o = {.dir = C.dir, .ns = C.ns,
					 .flags = SHMK_OPEN_NO_REAP};
		shmk_ctx *c;
		if ((rc = shmk_open(&o, &c)) < 0)
			tool_fatal(tool_exit_code_for(rc),
				   "unable to open namespace %s: %s", C.ns,
				   shmk_last_error());
		snprintf(dir, sizeof dir, "%s", shmk_dir(c));
		shmk_close(c);
	}
	unsigned long long warm = C.warmup < C.cycles ? C.warmup : C.cycles - 1;
	if (!C.quiet && !C.json)
		printf("leak-soak: %llu cycles, %llu workers, %llu segments of "
		       "%s, namespace %s, registry %s\n",
		       C.cycles, C.workers, C.segments, tool_hsize(C.size, hs),
		       C.ns, dir);
	if (!C.quiet && !C.json && C.kill_every)
		printf("  (a cycle's process is SIGKILLed every %llu cycles)\n",
		       C.kill_every);
	tool_flush_stdout();

	for (unsigned long long i = 0; i < C.cycles; i++) {
		struct row *r = &rows[i];
		struct shmk_reap_options ro = {.dir = C.dir, .ns = C.ns,
					       .flags = SHMK_REAP_NO_STRAYS};
		struct shmk_reap_report *rep = NULL;
		double t0 = now_ms();

		/* Init begins with the reap a restarted service does. */
		rc = shmk_reap(&ro, &rep);
		if (rep) {
			r->reaped = rep->segments_reaped;
			r->reaped_bytes = rep->bytes_reaped;
			shmk_reap_report_free(rep);
		}
		if (rc < 0)
			violation(i, "reap failed: %s", shmk_last_error());
		/* After a killed cycle, this reap must take all it left: its
		 * slots, the pool's control segment and its extra segments. */
		if (i > 0 && rows[i - 1].killed &&
		    r->reaped < C.workers + 1 + C.segments)
			violation(i, "reaped %zu of the %llu segments the killed "
				     "cycle left",
				  r->reaped, C.workers + 1 + C.segments);
		double reap_ms = now_ms() - t0;
		reaped_total += r->reaped;
		reaped_bytes += r->reaped_bytes;

		if (C.kill_every && (i + 1) % C.kill_every == 0 && i + 1 < C.cycles) {
			r->killed = true;
			killed_total++;
			killed_cycle(i);
		} else {
			cycle(i, &r->init_ms, &r->teardown_ms, -1);
			r->init_ms += reap_ms;
		}
		if ((rc = shmk_monitor_sample(mon, &r->s)) < 0)
			tool_fatal(EX_OSERR, "unable to sample: %s", shmk_last_error());
		r->records = count_records(dir);
		/* Every cycle that ran to its end must leave nothing. */
		if (!r->killed && (r->s.ns_segments || r->records))
			violation(i, "left %" PRIu64 " segment(s) and %ld record(s)",
				  r->s.ns_segments, r->records);
		if (i + 1 == warm || (warm == 0 && i == 0))
			shmk_monitor_set_baseline(mon, &r->s);
		if (tty)
			fprintf(stderr, "\rleak-soak: cycle %llu/%llu  fds %ld  rss "
					"%.1f MiB  segments %" PRIu64 "   ",
				i + 1, C.cycles, r->s.fds, r->s.rss / 1048576.0,
				r->s.ns_segments);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");

	/* Verdict: last cycle against the baseline after warm-up, and nothing
	 * of the namespace left at all. */
	struct row *last = &rows[C.cycles - 1];
	shmk_monitor_baseline(mon, &base);
	shmk_monitor_check(mon, &last->s, &v);
	/* A thread just joined can still be counted by the kernel for a
	 * moment: look again before calling it a leak. */
	for (int k = 0; k < 20 && v.thread_leak; k++) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (shmk_monitor_sample(mon, &last->s) == 0)
			shmk_monitor_check(mon, &last->s, &v);
	}
	leak = verdict_reason(&v, &base, last, reason, sizeof reason);
	snprintf(verdict, sizeof verdict, "%s: %s", leak ? "LEAK" : "PASS",
		 leak ? reason : "no leak");

	struct stats si = stats_of(rows, C.cycles, true);
	struct stats st = stats_of(rows, C.cycles, false);
	if (csv_f)
		write_csv(csv_f, rows, C.cycles);
	if (plot_f)
		write_plot(plot_f, rows, C.cycles, verdict, warm, &base);

	if (C.json) {
		cJSON *doc = tj_document("shmkeeper-leak-soak"),
		      *cfg = tj_obj(doc, "config"),
		      *t = tj_obj(doc, "times_ms"), *d = tj_obj(doc, "deltas"),
		      *cy = tj_arr(doc, "cycles");
		tj_num(cfg, "cycles", (double)C.cycles);
		tj_num(cfg, "workers", (double)C.workers);
		tj_num(cfg, "segments", (double)C.segments);
		tj_num(cfg, "size", (double)C.size);
		tj_str(cfg, "namespace", C.ns);
		tj_str(cfg, "dir", dir);
		tj_num(cfg, "kill_every", (double)C.kill_every);
		tj_num(cfg, "warmup", (double)warm);
		cJSON *ti = tj_obj(t, "init"), *tt = tj_obj(t, "teardown");
		tj_num(ti, "mean", si.mean); tj_num(ti, "p50", si.p50);
		tj_num(ti, "p99", si.p99);   tj_num(ti, "max", si.max);
		tj_num(tt, "mean", st.mean); tj_num(tt, "p50", st.p50);
		tj_num(tt, "p99", st.p99);   tj_num(tt, "max", st.max);
		cJSON *th = tj_obj(doc, "thresholds"),
		      *bj = tj_obj(doc, "baseline");
		tj_num(th, "fds", 0);
		tj_num(th, "rss", rss_threshold(base.rss));
		tj_num(th, "rss_pct", RSS_PCT);
		tj_num(th, "rss_bytes", (double)RSS_BYTES);
		tj_num(th, "segments", 0);
		tj_num(th, "bytes", 0);
		tj_num(bj, "cycle", (double)(warm ? warm : 1));
		tj_num(bj, "fds", (double)base.fds);
		tj_num(bj, "rss", (double)base.rss);
		tj_num(bj, "threads", (double)base.threads);
		tj_num(bj, "children", (double)base.children);
		tj_num(bj, "segments", (double)base.ns_segments);
		tj_num(bj, "bytes", (double)base.ns_bytes);
		tj_num(d, "fds", (double)v.fd_delta);
		tj_num(d, "rss", (double)v.rss_delta);
		tj_num(d, "threads", (double)v.thread_delta);
		tj_num(d, "children", (double)v.child_delta);
		tj_num(d, "zombies", (double)last->s.zombies);
		tj_num(d, "segments_left", (double)last->s.ns_segments);
		tj_num(d, "bytes_left", (double)last->s.ns_bytes);
		tj_num(d, "records_left", (double)last->records);
		tj_num(doc, "killed_cycles", (double)killed_total);
		tj_num(doc, "reaped_segments", (double)reaped_total);
		tj_num(doc, "reaped_bytes", (double)reaped_bytes);
		tj_bool(doc, "leak", leak);
		tj_str(doc, "verdict", verdict);
		for (size_t i = 0; i < C.cycles; i++) {
			cJSON *o = tj_arr_obj(cy);
			double val[N_FIELDS];
			row_values(&rows[i], i, val);
			for (size_t k = 0; k < N_FIELDS; k++)
				if (FIELDS[k].kind == F_BOOL)
					tj_bool(o, FIELDS[k].name, val[k] != 0);
				else
					tj_num(o, FIELDS[k].name, val[k]);
		}
		tj_print(doc); /* prints and frees it */
	} else if (!C.quiet) {
		printf("  init      mean %.2f ms  p50 %.2f  p99 %.2f  max %.2f  "
		       "(%zu cycles)\n",
		       si.mean, si.p50, si.p99, si.max, si.n);
		printf("  teardown  mean %.2f ms  p50 %.2f  p99 %.2f  max %.2f\n",
		       st.mean, st.p50, st.p99, st.max);
		printf("  after %llu warm-up cycles: fds %+ld, rss %s (leak "
		       "threshold %s), threads %+ld, children %+ld, zombies %ld\n",
		       warm, v.fd_delta, tool_hdelta(v.rss_delta, hs),
		       tool_hsize((uint64_t)rss_threshold(base.rss), hs2),
		       v.thread_delta, v.child_delta, last->s.zombies);
		printf("  left in namespace %s: %" PRIu64 " segments (%s), %ld "
		       "records\n",
		       C.ns, last->s.ns_segments, tool_hsize(last->s.ns_bytes, hs),
		       last->records);
		if (C.kill_every)
			printf("  killed cycles: %zu; reaped after them: %zu "
			       "segments (%s)\n",
			       killed_total, reaped_total,
			       tool_hsize(reaped_bytes, hs));
	}
	if (!C.json)
		printf("leak-soak: %s\n", verdict);
	/* A clean run leaves not even its namespace's directory: the cycles'
	 * reaps skip strays, and only a reap that looked for them and found
	 * nothing removes it (docs/DESIGN.md, "Empty namespace
	 * directories").  After a leak it stays, with what was left. */
	if (!leak) {
		struct shmk_reap_options ro = {.dir = C.dir, .ns = C.ns,
					       .flags = SHMK_REAP_NO_HOLDERS};
		struct shmk_reap_report *rep = NULL;
		(void)shmk_reap(&ro, &rep);
		shmk_reap_report_free(rep);
	}
	rc = tool_status(leak ? EXIT_LEAK : 0); /* EX_IOERR: output lost */
	shmk_monitor_destroy(mon);
	free(rows);
	return rc;
}
