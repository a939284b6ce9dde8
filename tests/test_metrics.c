/* SPDX-License-Identifier: MIT */
/* test_metrics.c - shmls --openmetrics and shmclean --openmetrics: what a
 * fleet's Prometheus reads (through node_exporter's textfile collector).
 * Each figure is checked against a registry made for the test, the
 * exposition's shape against the OpenMetrics rules the tools promise (one
 * declaration per family, TYPE/UNIT/HELP, samples under their family,
 * "# EOF" last), and label values against hostile registry paths.
 * `make metricscheck` has promtool and a strict OpenMetrics parser read the
 * same outputs. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(metrics, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"

#define run run_tool_list

/* The exposition's shape: every sample under the family declared last,
 * every family declared once as a gauge with a HELP, a UNIT that its name
 * ends with, and "# EOF" as the last line.  Returns the number of samples. */
static size_t check_shape(const char *text)
{
	char fam[256] = "", line[4096];
	char seen[64][128];
	size_t n_seen = 0, samples = 0;
	bool help = true, eof = false;
	const char *p = text, *nl;

	cr_assert(strlen(text) > 6 &&
		  !strcmp(text + strlen(text) - 6, "# EOF\n"),
		  "does not end in # EOF:\n%s", text);
	for (; *p; p = nl + 1) {
		cr_assert(!eof, "text after # EOF");
		cr_assert_not_null(nl = strchr(p, '\n'), "unterminated line");
		cr_assert_lt((size_t)(nl - p), sizeof line);
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (!strcmp(line, "# EOF")) {
			eof = true;
		} else if (!strncmp(line, "# TYPE ", 7)) {
			char type[32];
			cr_assert(help, "family %s has no HELP", fam);
			cr_assert_eq(sscanf(line + 7, "%255s %31s", fam, type), 2);
			cr_assert_str_eq(type, "gauge", "%s", line);
			for (size_t i = 0; i < n_seen; i++)
				cr_assert_str_neq(seen[i], fam,
						  "%s declared twice", fam);
			cr_assert_lt(n_seen, 64);
			snprintf(seen[n_seen++], sizeof seen[0], "%s", fam);
			cr_assert(!strncmp(fam, "shmkeeper_", 10), "%s", fam);
			help = false;
		} else if (!strncmp(line, "# UNIT ", 7)) {
			char name[256], unit[32], suffix[40];
			cr_assert_eq(sscanf(line + 7, "%255s %31s", name, unit), 2);
			cr_assert_str_eq(name, fam, "UNIT of another family");
			snprintf(suffix, sizeof suffix, "_%s", unit);
			cr_assert(strlen(fam) > strlen(suffix) &&
				  !strcmp(fam + strlen(fam) - strlen(suffix),
					  suffix),
				  "%s does not end in %s", fam, suffix);
		} else if (!strncmp(line, "# HELP ", 7)) {
			size_t l = strlen(fam);
			cr_assert(!strncmp(line + 7, fam, l) && line[7 + l] == ' ' &&
				  line[8 + l], "HELP of another family: %s", line);
			help = true;
		} else {
			size_t l = strlen(fam);
			char *end;
			const char *v = strrchr(line, ' ');
			cr_assert(fam[0] && !strncmp(line, fam, l) &&
				  (line[l] == '{' || line[l] == ' '),
				  "sample outside its family: %s", line);
			cr_assert_not_null(v);
			strtod(v + 1, &end);
			cr_assert(end != v + 1 && !*end, "bad value: %s", line);
			samples++;
		}
	}
	cr_assert(help, "family %s has no HELP", fam);
	return samples;
}

/* The value of the sample name{registry=dir,namespace=ns[,k=v]}; the test
 * fails if there is none. */
static double value(const char *text, const char *name, const char *ns,
		    const char *k, const char *v)
{
	char want[PATH_MAX + 256];
	const char *p;
	size_t l;

	l = (size_t)snprintf(want, sizeof want, "\n%s{registry=\"%s\"", name,
			     T.dir);
	if (ns)
		l += (size_t)snprintf(want + l, sizeof want - l,
				      ",namespace=\"%s\"", ns);
	if (k)
		l += (size_t)snprintf(want + l, sizeof want - l, ",%s=\"%s\"", k,
				      v);
	snprintf(want + l, sizeof want - l, "} ");
	cr_assert_not_null(p = strstr(text, want), "no sample%s in:\n%s", want,
			   text);
	return strtod(p + strlen(want), NULL);
}

static bool has_sample(const char *text, const char *name, const char *ns)
{
	char want[PATH_MAX + 256];

	snprintf(want, sizeof want, "\n%s{registry=\"%s\",namespace=\"%s\"}",
		 name, T.dir, ns);
	return strstr(text, want) != NULL;
}

static const char *obj_path(const char *name)
{
	static __thread char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, name);
	return p;
}

static void make_object(const char *name, size_t size)
{
	int fd = open(obj_path(name), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		      0600);

	cr_assert_geq(fd, 0, "%s: %s", obj_path(name), strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Maps the existing object name (size bytes) as a process that shares it
 * would. */
static void *map_object(const char *name, size_t size)
{
	int fd = open(obj_path(name), O_RDWR | O_CLOEXEC);
	void *m;

	cr_assert_geq(fd, 0, "%s: %s", obj_path(name), strerror(errno));
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	close(fd);
	return m;
}

/* A registry with every kind of figure: a live owner (this process, one
 * 4 KiB segment), a dead one (two 8 KiB segments, one of them mapped by
 * this process), a 4 KiB stray. */
struct fleet {
	shmk_ctx *ctx;
	shmk_segment *live;
	void *held;
};

static void make_fleet(struct fleet *f)
{
	static const char *const dead[] = {"d0", "held", NULL};

	/* Opened first: an open reaps the namespace's dead owners. */
	f->ctx = topen();
	cr_assert_eq(shmk_segment_create(f->ctx, "live", 4096, &f->live), 0,
		     "%s", shmk_last_error());
	tkilled_owner(dead, NULL, 8192);
	f->held = map_object("held", 8192);
	make_object("loose", 4096);
}

static void end_fleet(struct fleet *f)
{
	munmap(f->held, 8192);
	cr_assert_eq(shmk_segment_destroy(f->live), 0);
	cr_assert_eq(shmk_close(f->ctx), 0);
	unlink(obj_path("loose"));
}

Test(metrics, shmls_counts_each_figure_of_a_namespace)
{
	struct fleet f;

	make_fleet(&f);
	struct out r = run(SHMLS, "--dir", T.dir, "--shm-dir", T.shm_dir,
			   "--openmetrics", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	cr_assert_eq(value(r.out, "shmkeeper_scan_ok", NULL, NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_holders_known", NULL, NULL, NULL),
		     1);
	cr_assert_eq(value(r.out, "shmkeeper_namespace_readable", T.ns, NULL,
			   NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_owners", T.ns, "state", "alive"), 1);
	cr_assert_eq(value(r.out, "shmkeeper_owners", T.ns, "state", "dead"), 1);
	cr_assert_eq(value(r.out, "shmkeeper_owners", T.ns, "state", "unknown"),
		     0);
	cr_assert_eq(value(r.out, "shmkeeper_segments", T.ns, NULL, NULL), 3);
	cr_assert_eq(value(r.out, "shmkeeper_segment_bytes", T.ns, NULL, NULL),
		     4096 + 2 * 8192);
	/* Strays are always scanned for the metrics (no --strays needed). */
	cr_assert_eq(value(r.out, "shmkeeper_strays", T.ns, NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_stray_bytes", T.ns, NULL, NULL),
		     4096);
	cr_assert_eq(value(r.out, "shmkeeper_bad_records", T.ns, NULL, NULL), 0);
	cr_assert_eq(value(r.out, "shmkeeper_quarantined_files", T.ns, NULL,
			   NULL), 0);
	cr_assert_eq(value(r.out, "shmkeeper_unlinked_mapped_segments", T.ns,
			   NULL, NULL), 0);
	out_free(&r);

	/* Reaped while we map it: unlinked, not freed, and said so by both. */
	r = run(SHMCLEAN, "--dir", T.dir, "--shm-dir", T.shm_dir,
		"--namespace", T.ns, "--openmetrics", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s", r.code, r.err);
	cr_assert_eq(value(r.out, "shmkeeper_reap_held_bytes", T.ns, NULL, NULL),
		     8192);
	cr_assert_eq(value(r.out, "shmkeeper_reap_freed_bytes", T.ns, NULL,
			   NULL), 8192);
	out_free(&r);
	r = run(SHMLS, "--dir", T.dir, "--shm-dir", T.shm_dir,
		"--openmetrics", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s", r.code, r.err);
	cr_assert_eq(value(r.out, "shmkeeper_owners", T.ns, "state", "dead"), 0);
	cr_assert_eq(value(r.out, "shmkeeper_segments", T.ns, NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_unlinked_mapped_segments", T.ns,
			   NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_unlinked_mapped_bytes", T.ns, NULL,
			   NULL), 8192);
	out_free(&r);
	end_fleet(&f);
}

Test(metrics, shmclean_counts_the_outcome_of_the_reap)
{
	struct fleet f;
	char name[128];
	pid_t gone;
	int st;

	make_fleet(&f);
	/* An unreadable record of an owner that is gone: quarantined. */
	if ((gone = fork()) == 0)
		_exit(0);
	cr_assert_eq(waitpid(gone, &st, 0), gone);
	snprintf(name, sizeof name, "p%d-12345-0badf00d.jsonl", (int)gone);
	put_file(name, "not a record\n", 13);

	struct out r = run(SHMCLEAN, "--dir", T.dir, "--shm-dir", T.shm_dir,
			   "--openmetrics", NULL);
	cr_assert_eq(r.code, 65, "exit %d\n%s\n%s", r.code, r.out, r.err);
	/* What a person should read still goes to stderr. */
	cr_assert(strstr(r.err, "quarantined"), "%s", r.err);
	check_shape(r.out);
	cr_assert_eq(value(r.out, "shmkeeper_reap_ok", NULL, NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_reap_exit_status", NULL, NULL,
			   NULL), 65);
	cr_assert_eq(value(r.out, "shmkeeper_reap_dry_run", NULL, NULL, NULL), 0);
	cr_assert_gt(value(r.out, "shmkeeper_reap_timestamp_seconds", NULL,
			   NULL, NULL), 1.7e9);
	cr_assert_geq(value(r.out, "shmkeeper_reap_duration_seconds", NULL,
			    NULL, NULL), 0);
	cr_assert_eq(value(r.out, "shmkeeper_reap_owners", T.ns, "state",
			   "alive"), 1);
	cr_assert_geq(value(r.out, "shmkeeper_reap_owners", T.ns, "state",
			    "dead"), 1);
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "removed"), 2);
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "live"), 1);
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "quarantined"), 1);
	/* The young stray is kept (strays are not removed without
	 * --strays, and this one is too young anyway). */
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "kept"), 1);
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "error"), 0);
	cr_assert_eq(value(r.out, "shmkeeper_reap_objects", T.ns, "outcome",
			   "gone"), 0);
	cr_assert_eq(value(r.out, "shmkeeper_reap_freed_bytes", T.ns, NULL,
			   NULL), 8192);
	cr_assert_eq(value(r.out, "shmkeeper_reap_held_bytes", T.ns, NULL, NULL),
		     8192);
	cr_assert(!strstr(r.out, "reaped "), "the text report leaked in");
	out_free(&r);
	cr_assert_eq(quarantined_files(), 1);
	end_fleet(&f);
}

/* A bad record is counted and does not cut the exposition short; a
 * namespace that cannot be read at all has readable 0 and no other figure
 * (unknown is not 0). */
Test(metrics, shmls_counts_bad_records_and_gives_no_figure_of_an_unreadable_namespace)
{
	put_file("p1-1-0badf00d.jsonl", "not a record\n", 13);
	struct out r = run(SHMLS, "--dir", T.dir, "--shm-dir", T.shm_dir,
			   "--openmetrics", NULL);
	cr_assert_eq(r.code, 65, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	cr_assert_eq(value(r.out, "shmkeeper_bad_records", T.ns, NULL, NULL), 1);
	cr_assert_eq(value(r.out, "shmkeeper_namespace_readable", T.ns, NULL,
			   NULL), 1);
	out_free(&r);

	cr_assert_eq(chmod(T.ns_dir, 0777), 0); /* refused: world writable */
	r = run(SHMLS, "--dir", T.dir, "--shm-dir", T.shm_dir,
		"--openmetrics", NULL);
	chmod(T.ns_dir, 0700);
	cr_assert_eq(r.code, 78, "exit %d\n%s", r.code, r.err);
	cr_assert(strstr(r.err, T.ns), "%s", r.err);
	check_shape(r.out);
	cr_assert_eq(value(r.out, "shmkeeper_namespace_readable", T.ns, NULL,
			   NULL), 0);
	cr_assert(!has_sample(r.out, "shmkeeper_segments", T.ns), "%s", r.out);
	cr_assert(!has_sample(r.out, "shmkeeper_strays", T.ns), "%s", r.out);
	cr_assert(!strstr(r.out, "shmkeeper_owners{"), "%s", r.out);
	out_free(&r);
}

/* A refused registry still yields a whole exposition (ok 0, "# EOF"), so
 * that a file a timer writes says what is wrong instead of going stale;
 * the exit status is the usual one. */
Test(metrics, a_refused_registry_is_a_complete_exposition_with_ok_0)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/foreign", T.dir);
	cr_assert_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/foreign/file", T.dir);
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(p, sizeof p, "%s/foreign", T.dir);

	struct out r = run(SHMLS, "--dir", p, "--openmetrics", NULL);
	cr_assert_eq(r.code, 78, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	cr_assert(strstr(r.out, "\nshmkeeper_scan_ok{registry=\""), "%s", r.out);
	cr_assert(strstr(r.out, "/foreign\"} 0\n"), "%s", r.out);
	out_free(&r);

	r = run(SHMCLEAN, "--dir", p, "--openmetrics", NULL);
	cr_assert_eq(r.code, 78, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	cr_assert(strstr(r.out, "/foreign\"} 0\n"), "%s", r.out);
	cr_assert(strstr(r.out, "shmkeeper_reap_exit_status{registry=\""));
	cr_assert(strstr(r.out, "/foreign\"} 78\n"), "%s", r.out);
	out_free(&r);
	unlink(strcat(p, "/file"));
}

/* Label values are escaped as OpenMetrics says (backslash, double quote,
 * line feed), and bytes that are not UTF-8 become U+FFFD: a registry path
 * can hold any of them. */
Test(metrics, label_values_are_escaped_and_always_utf8)
{
	char p[PATH_MAX], want[PATH_MAX * 2];

	snprintf(p, sizeof p, "%s/a\"b\\c\nd\xff" "e", T.dir);
	struct out r = run(SHMLS, "--dir", p, "--openmetrics", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	snprintf(want, sizeof want,
		 "\nshmkeeper_scan_ok{registry=\"%s/a\\\"b\\\\c\\nd\xef\xbf\xbd"
		 "e\"} 1\n",
		 T.dir);
	cr_assert(strstr(r.out, want), "want %s in:\n%s", want, r.out);
	out_free(&r);

	r = run(SHMCLEAN, "--dir", p, "--openmetrics", NULL);
	cr_assert_eq(r.code, 0, "exit %d\n%s", r.code, r.err);
	check_shape(r.out);
	snprintf(want, sizeof want,
		 "\nshmkeeper_reap_ok{registry=\"%s/a\\\"b\\\\c\\nd\xef\xbf\xbd"
		 "e\"} 1\n",
		 T.dir);
	cr_assert(strstr(r.out, want), "want %s in:\n%s", want, r.out);
	out_free(&r);
}

Test(metrics, openmetrics_excludes_json_and_verbose)
{
	struct out r = run(SHMLS, "--dir", T.dir, "--json", "--openmetrics",
			   NULL);
	cr_assert_eq(r.code, 64, "exit %d", r.code);
	out_free(&r);
	r = run(SHMCLEAN, "--dir", T.dir, "--openmetrics", "--json", NULL);
	cr_assert_eq(r.code, 64, "exit %d", r.code);
	out_free(&r);
	r = run(SHMCLEAN, "--dir", T.dir, "--openmetrics", "-v", NULL);
	cr_assert_eq(r.code, 64, "exit %d", r.code);
	out_free(&r);
}
