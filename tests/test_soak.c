/* SPDX-License-Identifier: MIT */
/* test_soak.c - leak-soak, run as the built program.
 *
 * Every run goes through fork/exec of SHMK_BUILDDIR/tools/leak-soak with
 * "--dir T.dir --namespace T.ns" and small sizes (64 KiB, 12 cycles, 3 of
 * them warm-up), its stdout and stderr captured through pipes.  Leaks are
 * made real with the tool's hidden fault switch (SHMKEEPER_SOAK_FAULT=fd
 * leaks one descriptor per cycle, =segment one object "/<ns>.leak-<i>" per
 * cycle, i from 0), set only in the child's environment. */
#include "helpers.h"


#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(soak, .init = tenv_setup, .fini = tenv_teardown, .timeout = 120);

#define SOAK SHMK_BUILDDIR "/tools/leak-soak"
#define FAULT_VAR "SHMKEEPER_SOAK_FAULT"

/* The sizes every run uses unless a test says otherwise. */
#define CYCLES 12
#define WARMUP 3
#define WORKERS 3
#define SEGMENTS 3
/* Objects a killed cycle leaves: a slot per worker, the pool's control
 * segment and the extra segments. */
#define LEFT_BY_KILL (WORKERS + 1 + SEGMENTS)

extern char **environ;

/* RLIMIT_NOFILE of the tool's process; 0: inherited. */
static rlim_t child_nofile;

/* ---- running the tool ----------------------------------------------------- */


/* Runs leak-soak with argv (argv[0] included, NULL-terminated) and this
 * process's environment minus FAULT_VAR, plus FAULT_VAR=fault if fault is
 * not NULL. */
static struct out run_env(const char *fault, char *const argv[])
{
	size_t ne = 0, k = 0;
	char **envp, fault_kv[64];
	struct out r;

	while (environ[ne])
		ne++;
	envp = calloc(ne + 2, sizeof *envp);
	cr_assert_not_null(envp);
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], FAULT_VAR "=", strlen(FAULT_VAR) + 1))
			envp[k++] = environ[i];
	if (fault) {
		snprintf(fault_kv, sizeof fault_kv, "%s=%s", FAULT_VAR, fault);
		envp[k++] = fault_kv;
	}
	envp[k] = NULL;
	r = run_tool(SOAK, argv, envp, child_nofile);
	free(envp);
	return r;
}

/* Runs leak-soak with "--dir T.dir --namespace T.ns", then first and the
 * rest of the NULL-terminated arguments in ap. */
static struct out vsoak(const char *fault, const char *first, va_list ap)
{
	char *argv[40];
	size_t n = 0;
	const char *a = first;

	argv[n++] = "leak-soak";
	argv[n++] = "--dir";
	argv[n++] = T.dir;
	argv[n++] = "--namespace";
	argv[n++] = T.ns;
	while (a && n < 39) {
		argv[n++] = (char *)a;
		a = va_arg(ap, const char *);
	}
	cr_assert_null(a, "too many arguments");
	argv[n] = NULL;
	return run_env(fault, argv);
}

/* Runs leak-soak (fault switch off) with the arguments. */
static struct out soak(const char *first, ...) __attribute__((sentinel));
static struct out soak(const char *first, ...)
{
	va_list ap;
	struct out r;

	va_start(ap, first);
	r = vsoak(NULL, first, ap);
	va_end(ap);
	return r;
}

/* Same, with SHMKEEPER_SOAK_FAULT=fault in the child's environment. */
static struct out soak_fault(const char *fault, const char *first, ...)
	__attribute__((sentinel));
static struct out soak_fault(const char *fault, const char *first, ...)
{
	va_list ap;
	struct out r;

	va_start(ap, first);
	r = vsoak(fault, first, ap);
	va_end(ap);
	return r;
}

/* Without the automatic --dir and --namespace (usage tests). */
static struct out soak_bare(const char *first, ...) __attribute__((sentinel));
static struct out soak_bare(const char *first, ...)
{
	char *argv[40];
	size_t n = 0;
	va_list ap;
	const char *a = first;

	argv[n++] = "leak-soak";
	va_start(ap, first);
	while (a && n < 39) {
		argv[n++] = (char *)a;
		a = va_arg(ap, const char *);
	}
	va_end(ap);
	argv[n] = NULL;
	return run_env(NULL, argv);
}

/* The small sizes, as arguments. */
#define SMALL "--size", "64K", "--cycles", "12", "--warmup", "3"

/* ---- reading the output --------------------------------------------------- */

static cJSON *parse_json(const struct out *r)
{
	cJSON *j = cJSON_Parse(r->out);

	cr_assert_not_null(j, "output is not JSON:\n%s\nstderr:\n%s", r->out,
			   r->err);
	return j;
}




static bool boolean(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	cr_assert(cJSON_IsBool(v), "\"%s\" is not a boolean", key);
	return cJSON_IsTrue(v);
}

/* The line of text that starts with prefix, copied into buf; fails if
 * there is none. */
static const char *line_starting(const char *text, const char *prefix,
				 char *buf, size_t sz)
{
	size_t l = strlen(prefix);

	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n >= l && !strncmp(p, prefix, l)) {
			snprintf(buf, sz, "%.*s", (int)n, p);
			return buf;
		}
		p = nl ? nl + 1 : NULL;
	}
	cr_assert_fail("no line starting \"%s\" in:\n%s", prefix, text);
	return NULL;
}

static size_t count_of(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static size_t lines_of(const char *text)
{
	return count_of(text, "\n");
}

/* Sizes in the text report are all in the tools' one style ("64 KiB",
 * "+4.0 KiB", "0 B"): never a count of "bytes", never "K"/"M" alone.
 * Names are no sizes: the registry directory (a random "...-Jg4L3G") and
 * the namespace are blanked out first. */
static void assert_one_size_style(const char *report)
{
	char *text = strdup(report);

	cr_assert_not_null(text);
	for (const char *name[] = {T.dir, T.ns, NULL}, **n = name; *n; n++)
		for (char *p = text; (p = strstr(p, *n));)
			memset(p, ' ', strlen(*n));
	for (const char *p = text; *p; p++) {
		if (p > text && p[-1] >= '0' && p[-1] <= '9' &&
		    (!strncmp(p, " bytes", 6) || !strncmp(p, "bytes", 5)))
			cr_assert_fail("a size in bytes at \"%.30s\" in:\n%s",
				       p > text + 10 ? p - 10 : text, report);
		if (p > text && p[-1] >= '0' && p[-1] <= '9' &&
		    (*p == 'K' || *p == 'M' || *p == 'G') && p[1] != 'i')
			cr_assert_fail("a size without its unit at \"%.30s\" in:"
				       "\n%s", p > text + 10 ? p - 10 : text,
				       report);
	}
	cr_assert(strstr(text, " KiB") || strstr(text, " MiB") ||
		  strstr(text, " B"), "no size at all in:\n%s", report);
	free(text);
}

/* Nothing of T.ns left: no object in /dev/shm, no record, no lock. */
static void assert_nothing_left(void)
{
	cr_assert_eq(shm_count(), 0, "%zu object(s) of %s left in %s",
		     shm_count(), T.ns, T.shm_dir);
	cr_assert_eq(ns_files(".jsonl"), 0, "records left in %s", T.ns_dir);
	cr_assert_eq(ns_files(".lock"), 0, "lock files left in %s", T.ns_dir);
	cr_assert_eq(quarantined_files(), 0, "records quarantined in %s",
		     T.ns_dir);
}

/* ---- clean runs ------------------------------------------------------------ */

Test(soak, clean_run_passes)
{
	struct out r = soak(SMALL, NULL);
	char line[1024], want[1024];

	cr_assert_eq(r.code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	cr_assert_str_eq(r.err, "", "stderr: %s", r.err);
	cr_assert_str_eq(line_starting(r.out, "leak-soak: PASS", line,
				       sizeof line),
			 "leak-soak: PASS: no leak");
	snprintf(want, sizeof want,
		 "leak-soak: 12 cycles, 3 workers, 3 segments of 64 KiB, "
		 "namespace %s, registry %s",
		 T.ns, T.dir);
	cr_assert_str_eq(line_starting(r.out, "leak-soak: 12", line,
				       sizeof line), want);
	line_starting(r.out, "  init      mean ", line, sizeof line);
	cr_assert(strstr(line, "(12 cycles)"), "%s", line);
	line_starting(r.out, "  teardown  mean ", line, sizeof line);
	line_starting(r.out, "  after ", line, sizeof line);
	cr_assert(!strncmp(line, "  after 3 warm-up cycles: fds +0, ", 34),
		  "%s", line);
	cr_assert(strstr(line, "threads +0, children +0, zombies 0"), "%s",
		  line);
	snprintf(want, sizeof want,
		 "  left in namespace %s: 0 segments (0 B), 0 records", T.ns);
	cr_assert_str_eq(line_starting(r.out, "  left in namespace ", line,
				       sizeof line), want);
	cr_assert_null(strstr(r.out, "killed cycles"),
		       "crash-mode line without --kill-every:\n%s", r.out);
	cr_assert_eq(lines_of(r.out), 6, "stdout:\n%s", r.out);
	assert_one_size_style(r.out);
	out_free(&r);
	assert_nothing_left();
	cr_assert_neq(access(T.ns_dir, F_OK), 0,
		      "a clean run left its namespace directory %s", T.ns_dir);
}

Test(soak, quiet_prints_only_the_verdict)
{
	struct out r = soak(SMALL, "-q", NULL);

	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_assert_str_eq(r.out, "leak-soak: PASS: no leak\n");
	out_free(&r);
	r = soak("--size", "64K", "--cycles", "2", "--quiet", NULL);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_assert_str_eq(r.out, "leak-soak: PASS: no leak\n");
	out_free(&r);
	assert_nothing_left();
}

/* ---- leaks are caught ------------------------------------------------------ */

Test(soak, fd_leak_is_caught)
{
	struct out r = soak_fault("fd", SMALL, NULL);
	char line[1024];

	cr_assert_eq(r.code, 1, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	/* One descriptor per cycle; the baseline is taken after cycle 3, the
	 * verdict after cycle 12: 12 - 3 more. */
	cr_assert_str_eq(line_starting(r.out, "leak-soak: LEAK", line,
				       sizeof line),
			 "leak-soak: LEAK: fd: +9 (threshold 0)");
	line_starting(r.out, "  after ", line, sizeof line);
	cr_assert(!strncmp(line, "  after 3 warm-up cycles: fds +9, ", 34),
		  "%s", line);
	cr_assert_null(strstr(r.out, "PASS"), "%s", r.out);
	out_free(&r);
	/* A descriptor dies with its process: nothing else to clean. */
	assert_nothing_left();
}

Test(soak, fd_leak_delta_is_cycles_after_warmup)
{
	struct out r = soak_fault("fd", "--size", "64K", "--cycles", "8",
				  "--warmup", "2", "--json", NULL);
	cJSON *j;

	cr_assert_eq(r.code, 1, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	j = parse_json(&r);
	cr_assert(boolean(j, "leak"));
	cr_assert_eq(jnum(jget(j, "deltas"), "fds"), 8 - 2);
	cr_assert_str_eq(jstr(j, "verdict"), "LEAK: fd: +6 (threshold 0)");
	/* The per-cycle counts climb by one per cycle. */
	const cJSON *c, *cy = jget(j, "cycles");
	double prev = -1;
	cJSON_ArrayForEach(c, cy) {
		if (prev >= 0)
			cr_assert_eq(jnum(c, "fds"), prev + 1, "cycle %g",
				     jnum(c, "cycle"));
		prev = jnum(c, "fds");
	}
	cJSON_Delete(j);
	out_free(&r);
	assert_nothing_left();
}

/* The fault switch's objects: "<ns>.leak-<i>", i = 0 .. cycles - 1.  Asserts
 * they all exist, then removes them so that teardown finds nothing. */
static void remove_leaked_segments(unsigned cycles)
{
	char name[64];

	for (unsigned i = 0; i < cycles; i++) {
		snprintf(name, sizeof name, "leak-%u", i);
		cr_assert(shm_exists(name), "%s.%s was not leaked", T.ns, name);
	}
	cr_assert_eq(shm_count(), cycles, "%zu objects of %s, expected %u",
		     shm_count(), T.ns, cycles);
	for (unsigned i = 0; i < cycles; i++) {
		snprintf(name, sizeof name, "/%s.leak-%u", T.ns, i);
		cr_assert_eq(shm_unlink(name), 0, "shm_unlink %s: %s", name,
			     strerror(errno));
	}
	cr_assert_eq(shm_count(), 0);
}

Test(soak, segment_leak_is_caught)
{
	struct out r = soak_fault("segment", SMALL, NULL);
	char line[1024], want[512];

	cr_assert_eq(r.code, 1, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	/* The monitor sees 9 more than at the baseline; every one of the 12
	 * cycles left one (judged per cycle, the first named); and 12 are left
	 * at the end. */
	snprintf(want, sizeof want,
		 "leak-soak: LEAK: segments of %s: +9; 12 cycle problem(s), "
		 "first: cycle 1 left 1 segment(s) and 0 record(s); 12 "
		 "segment(s), 0 record(s) of %s left",
		 T.ns, T.ns);
	cr_assert_str_eq(line_starting(r.out, "leak-soak: LEAK", line,
				       sizeof line), want);
	snprintf(want, sizeof want,
		 "  left in namespace %s: 12 segments (0 B), 0 records", T.ns);
	cr_assert_str_eq(line_starting(r.out, "  left in namespace ", line,
				       sizeof line), want);
	out_free(&r);
	remove_leaked_segments(CYCLES);
	assert_nothing_left();
}

Test(soak, segment_leak_in_json)
{
	struct out r = soak_fault("segment", SMALL, "--json", NULL);
	cJSON *j;

	cr_assert_eq(r.code, 1, "exit %d\nstderr:\n%s", r.code, r.err);
	j = parse_json(&r);
	cr_assert(boolean(j, "leak"));
	cr_assert_eq(jnum(jget(j, "deltas"), "segments_left"), CYCLES);
	cr_assert_eq(jnum(jget(j, "deltas"), "records_left"), 0);
	cr_assert_eq(jnum(jget(j, "deltas"), "fds"), 0);
	cr_assert(strstr(jstr(j, "verdict"), "segment"), "%s",
		  jstr(j, "verdict"));
	cJSON_Delete(j);
	out_free(&r);
	remove_leaked_segments(CYCLES);
	assert_nothing_left();
}

/* A leftover of the namespace that the run did not make is still a leak
 * (the verdict is "nothing of the namespace left at all"). */
Test(soak, foreign_object_of_the_namespace_is_a_leak)
{
	char name[64];
	int fd;

	snprintf(name, sizeof name, "/%s.stray", T.ns);
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0, "shm_open: %s", strerror(errno));
	close(fd);
	struct out r = soak(SMALL, "-q", NULL);
	cr_assert_eq(r.code, 1, "exit %d\n%s%s", r.code, r.out, r.err);
	cr_assert(strstr(r.out, "LEAK") && strstr(r.out, "1 segment(s)"), "%s",
		  r.out);
	out_free(&r);
	cr_assert(shm_exists("stray"), "the tool removed a stray");
	cr_assert_eq(shm_unlink(name), 0);
	assert_nothing_left();
}

/* ---- crash mode --------------------------------------------------------------- */

Test(soak, crash_mode_reaps_every_killed_cycle)
{
	struct out r = soak(SMALL, "--kill-every", "3", "--json", NULL);
	cJSON *j;
	const cJSON *c, *cy;
	unsigned killed = 0, n = 0;
	bool after_kill = false;

	cr_assert_eq(r.code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	cr_assert_str_eq(r.err, "", "stderr: %s", r.err);
	j = parse_json(&r);
	cr_assert_not(boolean(j, "leak"));
	cr_assert_str_eq(jstr(j, "verdict"), "PASS: no leak");
	cr_assert_eq(jnum(jget(j, "config"), "kill_every"), 3);
	/* Cycles 3, 6 and 9 are killed; 12, the last, never is: the verdict
	 * needs a cycle that ran to its end. */
	cr_assert_eq(jnum(j, "killed_cycles"), 3);
	cr_assert_eq(jnum(j, "reaped_segments"), 3 * LEFT_BY_KILL);
	cr_assert_gt(jnum(j, "reaped_bytes"), 3.0 * (WORKERS + SEGMENTS) * 65536);
	cy = jget(j, "cycles");
	cr_assert_eq(cJSON_GetArraySize(cy), CYCLES);
	cJSON_ArrayForEach(c, cy) {
		unsigned i = ++n;
		bool k = boolean(c, "killed");
		cr_assert_eq(jnum(c, "cycle"), i);
		cr_assert_eq(k, i % 3 == 0 && i < CYCLES, "cycle %u", i);
		if (k) {
			killed++;
			/* What the killed process left, until the next
			 * cycle reaps it: its one record and everything. */
			cr_assert_eq(jnum(c, "segments"), LEFT_BY_KILL,
				     "cycle %u", i);
			cr_assert_eq(jnum(c, "records"), 1, "cycle %u", i);
			cr_assert_eq(jnum(c, "reaped"), 0, "cycle %u", i);
		} else {
			cr_assert_eq(jnum(c, "segments"), 0, "cycle %u", i);
			cr_assert_eq(jnum(c, "records"), 0, "cycle %u", i);
			cr_assert_eq(jnum(c, "reaped"),
				     after_kill ? LEFT_BY_KILL : 0, "cycle %u",
				     i);
			cr_assert_gt(jnum(c, "init_ms"), 0, "cycle %u", i);
		}
		after_kill = k;
	}
	cr_assert_eq(killed, 3);
	const cJSON *d = jget(j, "deltas");
	cr_assert_eq(jnum(d, "segments_left"), 0);
	cr_assert_eq(jnum(d, "records_left"), 0);
	cr_assert_eq(jnum(d, "children"), 0);
	cr_assert_eq(jnum(d, "zombies"), 0);
	cJSON_Delete(j);
	out_free(&r);
	assert_nothing_left();
}

Test(soak, crash_mode_text)
{
	struct out r = soak(SMALL, "--kill-every", "3", NULL);
	char line[1024], want[256];

	cr_assert_eq(r.code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	line_starting(r.out, "  (a cycle's process is SIGKILLed every 3 cycles)",
		      line, sizeof line);
	/* The times are of the cycles that ran to their end. */
	line_starting(r.out, "  init      mean ", line, sizeof line);
	cr_assert(strstr(line, "(9 cycles)"), "%s", line);
	snprintf(want, sizeof want,
		 "  killed cycles: 3; reaped after them: %d segments (",
		 3 * LEFT_BY_KILL);
	line_starting(r.out, want, line, sizeof line);
	line_starting(r.out, "leak-soak: PASS: no leak", line, sizeof line);
	out_free(&r);
	assert_nothing_left();
}

Test(soak, crash_mode_every_cycle)
{
	/* Every cycle but the last is killed; each is reaped by the next. */
	struct out r = soak("--size", "64K", "--cycles", "5", "--warmup", "1",
			    "--kill-every", "1", "--json", NULL);
	cJSON *j;

	cr_assert_eq(r.code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.code,
		     r.out, r.err);
	j = parse_json(&r);
	cr_assert_eq(jnum(j, "killed_cycles"), 4);
	cr_assert_eq(jnum(j, "reaped_segments"), 4 * LEFT_BY_KILL);
	cr_assert_str_eq(jstr(j, "verdict"), "PASS: no leak");
	cJSON_Delete(j);
	out_free(&r);
	assert_nothing_left();
}

/* A crash-mode child that fails before it is ready is a setup error, not a
 * killed cycle: descriptor limits from tiny upwards make every step of the
 * set-up fail in turn, in the parent or in the child. */
Test(soak, crash_mode_child_failing_early_is_fatal)
{
	unsigned early = 0;
	rlim_t n;
	struct out r;

	for (n = 6; n <= 128; n++) {
		child_nofile = n;
		r = soak("--size", "64K", "--cycles", "3", "--warmup", "1",
			 "--kill-every", "1", "-q", NULL);
		if (r.code == 0) {
			out_free(&r);
			break;
		}
		/* Never a verdict from a run that could not happen. */
		cr_assert(r.code >= 64 && r.code <= 78,
			  "limit %d: exit %d\nstdout:\n%s\nstderr:\n%s", (int)n,
			  r.code, r.out, r.err);
		cr_assert_str_eq(r.out, "", "limit %d: %s", (int)n, r.out);
		cr_assert(strstr(r.err, "leak-soak: fatal: "), "limit %d: %s",
			  (int)n, r.err);
		if (strstr(r.err, "the process to kill died before it was ready"))
			early++;
		out_free(&r);
	}
	child_nofile = 0;
	cr_assert_leq(n, 128, "still failing with 128 descriptors");
	cr_assert_gt(early, 0, "no limit made the child fail before ready");
	/* What the failed children left is reaped by a run that works. */
	r = soak("--size", "64K", "--cycles", "2", "--warmup", "1", "-q", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s%s", r.code, r.out, r.err);
	out_free(&r);
	assert_nothing_left();
}

/* ---- reports ------------------------------------------------------------------- */

/* The CSV's columns, in order. */
static const char *const CSV_COLUMNS[] = {
	"cycle", "killed", "init_ms", "teardown_ms", "fds", "rss", "threads",
	"children", "zombies", "segments", "bytes", "records", "reaped",
	"reaped_bytes"};

Test(soak, json_report)
{
	struct out r = soak(SMALL, "--json", NULL);
	const char *parts[] = {"mean", "p50", "p99", "max"};
	const char *deltas[] = {"fds", "rss", "threads", "children", "zombies",
				"segments_left", "bytes_left", "records_left"};
	cJSON *j;
	const cJSON *cfg, *c;

	cr_assert_eq(r.code, 0, "exit %d\nstderr:\n%s", r.code, r.err);
	cr_assert_str_eq(r.err, "", "stderr: %s", r.err);
	j = parse_json(&r);
	cr_assert(cJSON_IsObject(j));
	assert_json_format(j, "shmkeeper-leak-soak");

	cfg = jget(j, "config");
	cr_assert_eq(jnum(cfg, "cycles"), CYCLES);
	cr_assert_eq(jnum(cfg, "workers"), WORKERS);
	cr_assert_eq(jnum(cfg, "segments"), SEGMENTS);
	cr_assert_eq(jnum(cfg, "size"), 65536);
	cr_assert_eq(jnum(cfg, "kill_every"), 0);
	cr_assert_eq(jnum(cfg, "warmup"), WARMUP);
	cr_assert_str_eq(jstr(cfg, "namespace"), T.ns);
	cr_assert_str_eq(jstr(cfg, "dir"), T.dir);

	for (int w = 0; w < 2; w++) {
		const cJSON *t = jget(jget(j, "times_ms"), w ? "teardown" : "init");
		for (size_t i = 0; i < 4; i++)
			cr_assert_gt(jnum(t, parts[i]), 0, "%s",
				     parts[i]);
		cr_assert_leq(jnum(t, "p50"), jnum(t, "p99"));
		cr_assert_leq(jnum(t, "p99"), jnum(t, "max"));
		cr_assert_leq(jnum(t, "mean"), jnum(t, "max"));
	}
	for (size_t i = 0; i < sizeof deltas / sizeof *deltas; i++)
		jnum(jget(j, "deltas"), deltas[i]);
	cr_assert_eq(jnum(jget(j, "deltas"), "fds"), 0);
	cr_assert_eq(jnum(jget(j, "deltas"), "segments_left"), 0);
	cr_assert_eq(jnum(jget(j, "deltas"), "records_left"), 0);
	cr_assert_eq(jnum(j, "killed_cycles"), 0);
	cr_assert_eq(jnum(j, "reaped_segments"), 0);
	cr_assert_not(boolean(j, "leak"));
	cr_assert_str_eq(jstr(j, "verdict"), "PASS: no leak");

	const cJSON *cy = jget(j, "cycles");
	cr_assert(cJSON_IsArray(cy));
	cr_assert_eq(cJSON_GetArraySize(cy), CYCLES);
	int n = 0;
	cJSON_ArrayForEach(c, cy) {
		n++;
		/* Every column of the CSV, by the same name. */
		for (size_t i = 0; i < sizeof CSV_COLUMNS / sizeof *CSV_COLUMNS;
		     i++)
			cr_assert_not_null(jget(c, CSV_COLUMNS[i]),
					   "cycle %d has no \"%s\"", n + 1,
					   CSV_COLUMNS[i]);
		cr_assert_eq(jnum(c, "cycle"), n);
		cr_assert_not(boolean(c, "killed"));
		cr_assert_gt(jnum(c, "fds"), 0);
		cr_assert_gt(jnum(c, "rss"), 0);
		cr_assert_eq(jnum(c, "segments"), 0);
	}
	cJSON_Delete(j);
	out_free(&r);
	assert_nothing_left();
}

Test(soak, csv_has_a_header_and_a_row_per_cycle)
{
	char path[PATH_MAX], line[256];
	size_t len;
	char *csv;
	struct out r;

	snprintf(path, sizeof path, "%s/soak.csv", T.dir);
	r = soak(SMALL, "--csv", path, NULL);
	cr_assert_eq(r.code, 0, "exit %d\nstderr:\n%s", r.code, r.err);
	line_starting(r.out, "leak-soak: PASS", line, sizeof line);
	out_free(&r);
	csv = slurp(path, &len);
	cr_assert_not_null(csv, "no %s", path);
	cr_assert_eq(lines_of(csv), 1 + CYCLES, "%s", csv);
	{
		char header[256] = "";
		for (size_t i = 0; i < sizeof CSV_COLUMNS / sizeof *CSV_COLUMNS;
		     i++)
			snprintf(header + strlen(header),
				 sizeof header - strlen(header), "%s%s",
				 i ? "," : "", CSV_COLUMNS[i]);
		strcat(header, "\n");
		cr_assert(!strncmp(csv, header, strlen(header)), "header:\n%s",
			  csv);
	}
	/* Each row: its cycle number first and 14 fields. */
	const char *p = strchr(csv, '\n') + 1;
	for (int i = 1; i <= CYCLES; i++) {
		const char *nl = strchr(p, '\n');
		size_t commas = 0;
		cr_assert_not_null(nl);
		cr_assert_eq(atoi(p), i, "row %d: %.*s", i, (int)(nl - p), p);
		for (const char *q = p; q < nl; q++)
			commas += *q == ',';
		cr_assert_eq(commas, 13, "row %d: %.*s", i, (int)(nl - p), p);
		cr_assert(!strncmp(strchr(p, ','), ",0,", 3),
			  "row %d not marked as a whole cycle", i);
		p = nl + 1;
	}
	free(csv);
	assert_nothing_left();
}

/* The text of panel id of an SVG (from its <g> to its </g>), malloc'd. */
static char *svg_panel(const char *svg, const char *id)
{
	char tag[64];
	const char *p, *e;

	snprintf(tag, sizeof tag, "<g class=\"panel\" id=\"panel-%s\"", id);
	p = strstr(svg, tag);
	cr_assert_not_null(p, "no panel %s", id);
	e = strstr(p, "</g>");
	cr_assert_not_null(e);
	return strndup(p, (size_t)(e - p));
}

/* The number attribute attr="..." of the first element of class cls. */
static double svg_attr(const char *panel, const char *cls, const char *attr)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof key, "class=\"%s\"", cls);
	p = strstr(panel, key);
	cr_assert_not_null(p, "no %s in:\n%s", key, panel);
	snprintf(key, sizeof key, " %s=\"", attr);
	p = strstr(p, key);
	cr_assert_not_null(p, "no %s", attr);
	return atof(p + strlen(key));
}

/* Calls fn(y) for every point of every series of the panel. */
static void each_point_y(const char *panel, void (*fn)(double y, double arg),
			 double arg)
{
	size_t n = 0;

	for (const char *p = panel; (p = strstr(p, "class=\"series\""));) {
		const char *q = strstr(p, "points=\"") + 8, *end = strchr(q, '"');
		while (q < end) {
			char *c = strchr(q, ',');
			double y = strtod(c + 1, (char **)&q);
			fn(y, arg);
			n++;
			while (*q == ' ')
				q++;
		}
		p = end;
	}
	cr_assert_gt(n, 0, "no points in:\n%s", panel);
}

static void y_is(double y, double want)
{
	cr_assert_float_eq(y, want, 0.01, "a point at y %.1f, not %.1f", y, want);
}

static void y_below(double y, double line)
{
	/* SVG y grows downwards: below the line is a larger y. */
	cr_assert_gt(y, line, "a point at y %.1f, at or above the threshold "
			      "line at %.1f", y, line);
}

Test(soak, plot_is_an_svg_with_marks_thresholds_and_honest_scales)
{
	static const char *const judged[] = {"fds", "rss", "segments"};
	char path[PATH_MAX];
	size_t len;
	char *svg, *p;
	struct out r;

	snprintf(path, sizeof path, "%s/soak.svg", T.dir);
	r = soak(SMALL, "--plot", path, NULL);
	cr_assert_eq(r.code, 0, "exit %d\nstderr:\n%s", r.code, r.err);
	out_free(&r);
	svg = slurp(path, &len);
	cr_assert_not_null(svg, "no %s", path);
	cr_assert(!strncmp(svg, "<?xml", 5), "starts: %.40s", svg);
	cr_assert_not_null(strstr(svg, "<svg"));
	cr_assert_not_null(strstr(svg, "</svg>"));
	cr_assert_eq(count_of(svg, "<g class=\"panel\""), 4, "%zu panels",
		     count_of(svg, "<g class=\"panel\""));
	cr_assert_not_null(strstr(svg, "PASS: no leak"));

	/* Every judged panel: its leak threshold, the baseline cycle and the
	 * shaded warm-up; the times panel has no threshold. */
	for (size_t k = 0; k < 3; k++) {
		p = svg_panel(svg, judged[k]);
		cr_assert_eq(count_of(p, "class=\"threshold\""), 1, "%s", judged[k]);
		cr_assert_eq(count_of(p, "class=\"baseline\""), 1, "%s", judged[k]);
		cr_assert_eq(count_of(p, "class=\"warmup\""), 1, "%s", judged[k]);
		cr_assert_eq(count_of(p, "class=\"series\""), 1, "%s", judged[k]);
		free(p);
	}
	p = svg_panel(svg, "times");
	cr_assert_eq(count_of(p, "class=\"threshold\""), 0);
	cr_assert_eq(count_of(p, "class=\"baseline\""), 1);
	cr_assert_eq(count_of(p, "class=\"series\""), 2, "init and teardown");
	free(p);

	/* The baseline is drawn at the last warm-up cycle: x of cycle 3 of
	 * 12 over the 860 wide plot area starting at 90. */
	p = svg_panel(svg, "fds");
	cr_assert_float_eq(svg_attr(p, "baseline", "x1"), 90 + 2 * 860 / 11.0,
			   0.1);
	free(p);

	/* No segment is ever left after a clean cycle: a constant 0, a flat
	 * line at the very bottom of its panel, not centred. */
	p = svg_panel(svg, "segments");
	each_point_y(p, y_is, svg_attr(p, "panel", "data-bottom"));
	free(p);

	/* RSS moves by some KiB from cycle to cycle: the scale shows the
	 * threshold (at least 8 MiB above the baseline), so every point stays
	 * well below its line. */
	p = svg_panel(svg, "rss");
	each_point_y(p, y_below, svg_attr(p, "threshold", "y1"));
	free(p);
	free(svg);

	/* Crash mode: each killed cycle (3, 6, 9) is marked the same way in
	 * every panel, and the times have a gap there. */
	r = soak(SMALL, "--kill-every", "3", "--plot", path, "-q", NULL);
	cr_assert_eq(r.code, 0, "exit %d\nstderr:\n%s", r.code, r.err);
	out_free(&r);
	svg = slurp(path, &len);
	cr_assert_not_null(svg);
	static const char *const all[] = {"fds", "rss", "segments", "times"};
	for (size_t k = 0; k < 4; k++) {
		p = svg_panel(svg, all[k]);
		cr_assert_eq(count_of(p, "class=\"killed\""), 3, "%s: %zu marks",
			     all[k], count_of(p, "class=\"killed\""));
		free(p);
	}
	p = svg_panel(svg, "times");
	/* Cycles 1-2, 4-5, 7-8, 10-12: four pieces of each line. */
	cr_assert_eq(count_of(p, "class=\"series\""), 2 * 4);
	free(p);
	free(svg);
	assert_nothing_left();
}

/* A leak is drawn crossing into the leak zone: the fd line ends above the
 * threshold line. */
Test(soak, plot_shows_a_leak_above_its_threshold)
{
	char path[PATH_MAX];
	size_t len;
	char *svg, *p;
	struct out r;

	snprintf(path, sizeof path, "%s/soak.svg", T.dir);
	r = soak_fault("fd", SMALL, "--plot", path, "-q", NULL);
	cr_assert_eq(r.code, 1, "exit %d\nstderr:\n%s", r.code, r.err);
	out_free(&r);
	svg = slurp(path, &len);
	cr_assert_not_null(svg);
	p = svg_panel(svg, "fds");
	const char *pts = strstr(p, "points=\"");
	const char *last = strrchr(pts, ',');
	cr_assert_lt(atof(last + 1), svg_attr(p, "threshold", "y1"),
		     "the last cycle's fds are not drawn above the threshold");
	free(p);
	free(svg);
	assert_nothing_left();
}

/* ---- usage and setup errors ------------------------------------------------------ */

static void expect_usage(struct out r, const char *what, const char *needle)
{
	cr_assert_eq(r.code, 64, "%s: exit %d\nstdout:\n%s\nstderr:\n%s", what,
		     r.code, r.out, r.err);
	cr_assert_str_eq(r.out, "", "%s: stdout: %s", what, r.out);
	cr_assert(strstr(r.err, "leak-soak: usage: "), "%s: stderr: %s", what,
		  r.err);
	cr_assert(strstr(r.err, needle), "%s: no \"%s\" in: %s", what, needle,
		  r.err);
	out_free(&r);
}

/* Each bad argument comes after cheap ones (the last of an option wins), so
 * that a tool that wrongly accepted it would run one tiny cycle, not a
 * default soak. */
#define CHEAP "--cycles", "1", "--size", "4K", "--segments", "0", "--workers", "1"

Test(soak, bad_usage_exits_64)
{
	expect_usage(soak(CHEAP, "--cycles", "0", NULL), "--cycles 0",
		     "--cycles");
	expect_usage(soak(CHEAP, "--workers", "0", NULL), "--workers 0",
		     "--workers");
	expect_usage(soak(CHEAP, "--workers", "1025", NULL), "--workers 1025",
		     "--workers");
	expect_usage(soak(CHEAP, "--cycles", "many", NULL), "--cycles many",
		     "many");
	expect_usage(soak(CHEAP, "--cycles", "-1", NULL), "--cycles -1", "-1");
	expect_usage(soak(CHEAP, "--size", "0", NULL), "--size 0", "--size");
	expect_usage(soak(CHEAP, "--size", "1T", NULL), "--size 1T", "--size");
	expect_usage(soak(CHEAP, "--size", "2048G", NULL), "--size 2048G",
		     "--size");
	/* 2^54 + 1 KiB is 1 KiB modulo 2^64: a size that wraps. */
	expect_usage(soak(CHEAP, "--size", "18014398509481985K", NULL),
		     "--size that wraps", "--size");
	expect_usage(soak(CHEAP, "--frobnicate", NULL), "unknown option",
		     "unknown option --frobnicate");
	expect_usage(soak(CHEAP, "-x", NULL), "unknown short option",
		     "unknown option -x");
	expect_usage(soak(CHEAP, "--cycles", NULL), "missing argument",
		     "option --cycles needs an argument");
	expect_usage(soak(CHEAP, "--dir", "", NULL), "empty --dir", "--dir");
	expect_usage(soak(CHEAP, "extra", NULL), "an operand", "extra");
	expect_usage(soak(CHEAP, "--namespace", "no.dots", NULL),
		     "bad namespace", "no.dots");
	expect_usage(soak(CHEAP, "--namespace", "", NULL), "empty namespace",
		     "namespace");
	expect_usage(soak(CHEAP, "--namespace",
			  "a-namespace-longer-than-32-characters", NULL),
		     "long namespace", "namespace");
	assert_nothing_left();
}

Test(soak, help_and_version)
{
	struct out r = soak_bare("--help", NULL);

	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_assert(!strncmp(r.out, "Usage: leak-soak ", 17), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "--kill-every"));
	cr_assert_str_eq(r.err, "");
	out_free(&r);
	r = soak_bare("--version", NULL);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_assert(!strncmp(r.out, "leak-soak ", 10), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "libshmkeeper"));
	cr_assert_eq(lines_of(r.out), 1);
	out_free(&r);
}

Test(soak, unwritable_output_fails_before_the_run)
{
	char path[PATH_MAX];
	struct out r;

	snprintf(path, sizeof path, "%s/no/such/dir/soak.csv", T.dir);
	r = soak(SMALL, "--csv", path, NULL);
	cr_assert_eq(r.code, 73 /* EX_CANTCREAT */, "exit %d: %s", r.code,
		     r.err);
	cr_assert_str_eq(r.out, "", "it ran: %s", r.out);
	cr_assert(strstr(r.err, "leak-soak: fatal: unable to create "), "%s",
		  r.err);
	out_free(&r);
	snprintf(path, sizeof path, "%s/no/such/dir/soak.svg", T.dir);
	r = soak(SMALL, "--plot", path, NULL);
	cr_assert_eq(r.code, 73, "exit %d: %s", r.code, r.err);
	cr_assert_str_eq(r.out, "");
	out_free(&r);
	assert_nothing_left();
}

Test(soak, refused_registry_dir_is_a_config_error)
{
	char path[PATH_MAX];
	struct out r;

	/* A regular file where the registry directory should be. */
	snprintf(path, sizeof path, "%s/file", T.dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	r = soak(SMALL, "--dir", path, NULL);
	cr_assert_eq(r.code, 78 /* EX_CONFIG */, "exit %d\n%s%s", r.code,
		     r.out, r.err);
	cr_assert(strstr(r.err, "leak-soak: fatal: "), "%s", r.err);
	out_free(&r);
	/* A group-writable one. */
	snprintf(path, sizeof path, "%s/open", T.dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(chmod(path, 0777), 0);
	r = soak(SMALL, "--dir", path, NULL);
	cr_assert_eq(r.code, 78, "exit %d\n%s%s", r.code, r.out, r.err);
	out_free(&r);
	assert_nothing_left();
}
