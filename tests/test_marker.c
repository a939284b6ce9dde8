/* SPDX-License-Identifier: MIT */
/* test_marker.c - a registry proves it is one (issue 9, item 1).
 *
 * A directory is a registry only if it carries the .shmkeeper-registry
 * marker, or is empty (then it is marked at the first open).  An unmarked
 * directory that is not empty - a project tree given by a typo in --dir or
 * SHMKEEPER_DIR - is refused by shmk_open, shmk_reap, shmclean and shmls
 * alike, and nothing in it is read, removed or quarantined.  Only names of
 * the owner-id grammar are owner files.  0.1.0 registries, which have no
 * marker, are adopted explicitly (shmk_registry_adopt, shmclean --adopt).
 *
 * T.dir itself is marked by tenv_setup; these tests work in directories of
 * their own below it. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(marker, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"
#define MARKER ".shmkeeper-registry"
#define MARKER_LINE "{\"format\":\"shmkeeper-registry\",\"version\":1}\n"
#define NOT_A_REGISTRY "not a shmkeeper registry (no .shmkeeper-registry marker)"

/* ---- helpers ----------------------------------------------------------------- */

/* "<T.dir>/<rel>" in a static buffer, one of 64 used in turn: a test keeps
 * what it needs for longer in a buffer of its own. */
static const char *sub(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *sub(const char *fmt, ...)
{
	static char bufs[64][PATH_MAX];
	static int k;
	char *b = bufs[k++ % 64];
	char rel[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	snprintf(b, PATH_MAX, "%s/%s", T.dir, rel);
	return b;
}

static void write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A project tree somebody might give by mistake: <T.dir>/src with
 * proj/Cargo.lock, proj/data.jsonl and README.md.  Returns its path. */
static const char *fake_project(void)
{
	static char d[PATH_MAX];

	snprintf(d, sizeof d, "%s", sub("src"));
	cr_assert_eq(mkdir(d, 0700), 0);
	cr_assert_eq(mkdir(sub("src/proj"), 0700), 0);
	write_file(sub("src/proj/Cargo.lock"), "# This file is generated\n");
	write_file(sub("src/proj/data.jsonl"), "{\"not\":\"a record\"}\n");
	write_file(sub("src/README.md"), "hello\n");
	return d;
}

/* Everything fake_project() made is still there, and nothing was added. */
static void project_untouched(void)
{
	char *c = slurp(sub("src/proj/Cargo.lock"), NULL);

	cr_assert_not_null(c, "Cargo.lock is gone");
	cr_assert_str_eq(c, "# This file is generated\n");
	free(c);
	cr_assert(exists(sub("src/proj/data.jsonl")), "data.jsonl is gone");
	cr_assert(exists(sub("src/README.md")));
	cr_assert_not(exists(sub("src/proj/quarantine")), "a quarantine/ appeared");
	cr_assert_not(exists(sub("src/" MARKER)), "the project was marked");
	cr_assert_not(exists(sub("src/%s", T.ns)), "a namespace was created");
}

static int open_dir(const char *dir, const char *ns, shmk_ctx **c)
{
	struct shmk_options o = topts();

	o.dir = dir;
	o.ns = ns;
	*c = NULL;
	return shmk_open(&o, c);
}

static int reap_dir(const char *dir, const char *ns)
{
	struct shmk_reap_options o = {.dir = dir, .ns = ns,
				      .shm_dir = T.shm_dir};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);

	shmk_reap_report_free(rep);
	return rc;
}

static struct out tool(const char *path, const char *a1, const char *a2,
		       const char *a3, const char *a4, const char *a5)
{
	char *argv[] = {(char *)path, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, (char *)a5, NULL};

	return run_tool(path, argv, NULL, 0);
}

/* The marker of dir is there, a regular 0600 file holding MARKER_LINE. */
static void marked(const char *dir)
{
	char path[PATH_MAX], *c;
	struct stat st;

	snprintf(path, sizeof path, "%s/" MARKER, dir);
	cr_assert_eq(lstat(path, &st), 0, "%s: no marker", dir);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	cr_assert_eq(st.st_uid, geteuid());
	c = slurp(path, NULL);
	cr_assert_str_eq(c, MARKER_LINE);
	free(c);
}

/* ---- an unmarked directory that is not empty is not a registry ------------ */

Test(marker, shmk_open_refuses_a_project_directory_and_touches_nothing)
{
	const char *d = fake_project();
	shmk_ctx *c;
	int rc = open_dir(d, "proj", &c);

	cr_assert_eq(rc, -ENOTEMPTY, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_null(c);
	cr_assert(strstr(shmk_last_error(), NOT_A_REGISTRY) &&
			  strstr(shmk_last_error(), d) &&
			  strstr(shmk_last_error(), "shmclean --adopt --dir"),
		  "%s", shmk_last_error());
	project_untouched();
}

Test(marker, shmk_open_through_shmkeeper_dir_refuses_a_project_directory)
{
	const char *d = fake_project();
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	int rc;

	o.dir = NULL; /* the environment names the directory */
	o.ns = "proj";
	cr_assert_eq(setenv("SHMKEEPER_DIR", d, 1), 0);
	rc = shmk_open(&o, &c);
	unsetenv("SHMKEEPER_DIR");
	cr_assert_eq(rc, -ENOTEMPTY, "rc %d (%s)", rc, shmk_last_error());
	project_untouched();
}

Test(marker, shmk_reap_refuses_a_project_directory_for_all_namespaces_and_for_one)
{
	const char *d = fake_project();
	int rc;

	rc = reap_dir(d, NULL);
	cr_assert_eq(rc, -ENOTEMPTY, "rc %d (%s)", rc, shmk_last_error());
	cr_assert(strstr(shmk_last_error(), NOT_A_REGISTRY), "%s",
		  shmk_last_error());
	project_untouched();
	rc = reap_dir(d, "proj");
	cr_assert_eq(rc, -ENOTEMPTY, "rc %d (%s)", rc, shmk_last_error());
	project_untouched();
}

Test(marker, shmclean_and_shmls_exit_78_on_a_project_directory_and_touch_nothing)
{
	const char *d = fake_project();
	const char *const runs[][5] = {
		{SHMCLEAN, "--dir", d, "--all", NULL},
		{SHMCLEAN, "--dir", d, "--namespace", "proj"},
		{SHMCLEAN, "--dir", d, "--all", "--strays"},
		{SHMLS, "--dir", d, NULL, NULL},
		{SHMLS, "--dir", d, "--namespace", "proj"},
	};

	for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
		struct out r = tool(runs[i][0], runs[i][1], runs[i][2],
				    runs[i][3], runs[i][4], NULL);
		cr_assert_eq(r.code, 78, "run %zu: exit %d\n%s%s", i, r.code,
			     r.out, r.err);
		cr_assert(strstr(r.err, NOT_A_REGISTRY) &&
				  strstr(r.err, "shmclean --adopt --dir"),
			  "run %zu: %s", i, r.err);
		out_free(&r);
		project_untouched();
	}
}

/* ---- a new or empty directory becomes a registry --------------------------- */

Test(marker, a_new_registry_gets_the_marker)
{
	const char *d = sub("new");
	shmk_ctx *c;

	cr_assert_eq(open_dir(d, T.ns, &c), 0, "%s", shmk_last_error());
	marked(d);
	shmk_close(c);
}

Test(marker, an_existing_empty_directory_gets_the_marker_from_an_open_or_a_reap)
{
	const char *a = sub("empty-a"), *b = sub("empty-b");
	shmk_ctx *c;

	cr_assert_eq(mkdir(a, 0700), 0);
	cr_assert_eq(mkdir(b, 0700), 0);
	cr_assert_eq(open_dir(a, T.ns, &c), 0, "%s", shmk_last_error());
	marked(a);
	shmk_close(c);
	cr_assert_eq(reap_dir(b, NULL), 0, "%s", shmk_last_error());
	marked(b);
}

Test(marker, a_marked_registry_opens_again_and_keeps_its_marker)
{
	const char *d = sub("reg");
	struct stat st1, st2;
	shmk_segment *s;
	shmk_ctx *c;
	char m[PATH_MAX];

	snprintf(m, sizeof m, "%s/" MARKER, d);
	cr_assert_eq(open_dir(d, T.ns, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "a", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(lstat(m, &st1), 0);
	/* Not empty any more: it opens because it is marked. */
	for (int i = 0; i < 3; i++) {
		shmk_ctx *c2;
		cr_assert_eq(open_dir(d, T.ns, &c2), 0, "%s", shmk_last_error());
		shmk_close(c2);
	}
	cr_assert_eq(reap_dir(d, NULL), 0, "%s", shmk_last_error());
	shmk_segment_destroy(s);
	shmk_close(c);
	cr_assert_eq(lstat(m, &st2), 0);
	cr_assert_eq(st1.st_ino, st2.st_ino, "the marker was rewritten");
	marked(d);
}

static int race_round;

/* Each round's registry has a namespace of its own: a namespace belongs
 * to one registry (the claim, shmdir.c). */
static int open_fresh(void *arg)
{
	shmk_ctx *c;
	char ns[SHMK_NS_MAX + 1];
	snprintf(ns, sizeof ns, "%sr%d", T.ns, race_round);
	int rc = open_dir(arg, ns, &c);

	if (rc < 0)
		fprintf(stderr, "open_fresh: %s\n", shmk_last_error());
	shmk_close(c);
	return rc == 0 ? 0 : 1;
}

Test(marker, concurrent_first_opens_of_a_new_registry_all_succeed)
{
	const char *d = sub("race");
	pid_t kids[8];

	for (int round = 0; round < 5; round++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s%d", d, round);
		race_round = round;
		for (int i = 0; i < 8; i++)
			kids[i] = spawn(open_fresh, path);
		for (int i = 0; i < 8; i++) {
			int st = reap_child(kids[i]);
			cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
				  "round %d child %d: status %#x", round, i, st);
		}
		marked(path);
	}
}

/* Another opener, between our look for the marker and our listing: it
 * marks the directory and creates its namespace, as shmk_open does. */
static const char *other_dir;
static int other_opener(const char *name, int *failnum, void **failinfo,
			unsigned *flags)
{
	char p[PATH_MAX];
	int fd;

	(void)name; (void)failnum; (void)failinfo; (void)flags;
	snprintf(p, sizeof p, "%s/" MARKER, other_dir);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (write(fd, MARKER_LINE, strlen(MARKER_LINE)) < 0)
			abort();
		close(fd);
	}
	snprintf(p, sizeof p, "%s/other-ns", other_dir);
	mkdir(p, 0700);
	return 0;
}

Test(marker, a_registry_marked_by_another_opener_meanwhile_is_not_refused)
{
	char d[PATH_MAX];
	shmk_ctx *c;

	snprintf(d, sizeof d, "%s", sub("meanwhile"));
	other_dir = d;
	fiu_enable_external("shmk/test/registry/before_listing", 1, NULL,
			    FIU_ONETIME, other_opener);
	cr_assert_eq(open_dir(d, T.ns, &c), 0, "%s", shmk_last_error());
	fiu_disable("shmk/test/registry/before_listing");
	shmk_close(c);
	marked(d);
	cr_assert(exists(sub("meanwhile/other-ns")));
}

Test(marker, the_marker_is_complete_without_o_tmpfile_too)
{
	const char *d = sub("notmpfile");
	shmk_ctx *c;

	fiu_enable("shmk/marker/tmpfile", 1, NULL, 0);
	cr_assert_eq(open_dir(d, T.ns, &c), 0, "%s", shmk_last_error());
	fiu_disable("shmk/marker/tmpfile");
	marked(d);
	cr_assert_not(exists(sub("notmpfile/." MARKER ".tmp")));
	shmk_close(c);
}

/* Each system call of the marker's writing failed once: the open fails
 * with a sentence and leaves no marker or a complete one, never a part
 * of one, and the next open succeeds. */
static int kth, hits;
static int on_kth(const char *name, int *failnum, void **failinfo,
		  unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	return ++hits == kth;
}

Test(marker, a_failed_marker_write_leaves_no_marker_or_a_whole_one)
{
	static const char *const fps[] = {"shmk/sys/openat", "shmk/sys/write",
					  "shmk/sys/fsync", "shmk/sys/link",
					  "shmk/marker/write"};
	int failed = 0;

	for (size_t f = 0; f < sizeof fps / sizeof *fps; f++) {
		for (kth = 1; kth <= 6; kth++) {
			char d[PATH_MAX], m[PATH_MAX];
			struct stat st;
			shmk_ctx *c;
			int rc;

			snprintf(d, sizeof d, "%s/fail-%zu-%d", T.dir, f, kth);
			snprintf(m, sizeof m, "%s/" MARKER, d);
			cr_assert_eq(mkdir(d, 0700), 0);
			hits = 0;
			fiu_enable_external(fps[f], 1, NULL, 0, on_kth);
			rc = reap_dir(d, NULL); /* opens the root only */
			fiu_disable(fps[f]);
			if (rc < 0) {
				failed++;
				cr_assert(shmk_last_error()[0], "%s #%d: no sentence",
					  fps[f], kth);
				cr_assert(lstat(m, &st) < 0 || st.st_size ==
						  (off_t)strlen(MARKER_LINE),
					  "%s #%d: a partial marker", fps[f], kth);
			}
			cr_assert_not(exists(sub("fail-%zu-%d/." MARKER ".tmp", f, kth)));
			char ns[SHMK_NS_MAX + 1]; /* one registry, one namespace */
			snprintf(ns, sizeof ns, "%sf%zuk%d", T.ns, f, kth);
			cr_assert_eq(open_dir(d, ns, &c), 0, "%s #%d: %s", fps[f],
				     kth, shmk_last_error());
			shmk_close(c);
			marked(d);
		}
	}
	cr_assert_gt(failed, 0, "no failure was injected");
}

/* ---- an invalid marker is refused ----------------------------------------- */

static void refused_with(const char *name, int want, const char *words)
{
	const char *d = sub("%s", name);
	shmk_ctx *c;
	int rc = open_dir(d, T.ns, &c);

	cr_assert_eq(rc, want, "%s: rc %d (%s)", name, rc, shmk_last_error());
	cr_assert(strstr(shmk_last_error(), MARKER) &&
			  strstr(shmk_last_error(), words),
		  "%s: %s", name, shmk_last_error());
	cr_assert_not(exists(sub("%s/%s", name, T.ns)),
		      "%s: a namespace was created", name);
	cr_assert_eq(reap_dir(d, NULL), want, "%s: reap: %s", name,
		     shmk_last_error());
}

static const char *marker_dir(const char *name)
{
	const char *d = sub("%s", name);

	cr_assert_eq(mkdir(d, 0700), 0);
	return sub("%s/" MARKER, name);
}

Test(marker, a_marker_of_garbage_is_refused)
{
	write_file(marker_dir("garbage"), "hello, world\n");
	refused_with("garbage", -EINVAL, "not one JSON object");
	write_file(marker_dir("empty"), "");
	refused_with("empty", -EINVAL, "not one JSON object");
	write_file(marker_dir("twice"), MARKER_LINE MARKER_LINE);
	refused_with("twice", -EINVAL, "not one JSON object");
	write_file(marker_dir("other"), "{\"format\":\"shmkeeper-record\",\"version\":1}\n");
	refused_with("other", -EINVAL, "not a shmkeeper registry marker");
	write_file(marker_dir("nover"), "{\"format\":\"shmkeeper-registry\"}\n");
	refused_with("nover", -EINVAL, "version");
	write_file(marker_dir("v0"), "{\"format\":\"shmkeeper-registry\",\"version\":0}\n");
	refused_with("v0", -EINVAL, "version");
}

Test(marker, a_symlink_in_place_of_the_marker_is_refused_not_followed)
{
	const char *target = sub("real-marker");

	write_file(target, MARKER_LINE);
	cr_assert_eq(symlink(target, marker_dir("link")), 0);
	refused_with("link", -ELOOP, "symlink");
}

Test(marker, a_directory_named_like_the_marker_is_refused)
{
	cr_assert_eq(mkdir(marker_dir("dir"), 0700), 0);
	refused_with("dir", -EINVAL, "not a regular file");
}

Test(marker, a_marker_that_is_not_ours_or_writable_by_others_is_refused)
{
	const char *m = marker_dir("shared");

	write_file(m, MARKER_LINE);
	cr_assert_eq(chmod(m, 0622), 0);
	refused_with("shared", -EPERM, "writable");
	if (geteuid() != 0)
		return; /* chown needs root */
	m = marker_dir("foreign");
	write_file(m, MARKER_LINE);
	cr_assert_eq(chown(m, 65534, 65534), 0);
	refused_with("foreign", -EPERM, "uid 65534");
}

Test(marker, a_marker_of_a_future_version_is_eprotonosupport)
{
	char d[PATH_MAX];
	struct out r;

	snprintf(d, sizeof d, "%s", sub("future"));
	write_file(marker_dir("future"),
		   "{\"format\":\"shmkeeper-registry\",\"version\":2}\n");
	refused_with("future", -EPROTONOSUPPORT, "version 2");
	r = tool(SHMCLEAN, "--dir", d, NULL, NULL, NULL);
	cr_assert_eq(r.code, 78, "exit %d: %s", r.code, r.err);
	out_free(&r);
	cr_assert_eq(shmk_registry_adopt(d), -EPROTONOSUPPORT, "%s",
		     shmk_last_error());
}

/* ---- the owner-id grammar -------------------------------------------------- */

Test(marker, only_names_of_the_owner_id_grammar_are_owner_files)
{
	static const char *const not_owner[] = {
		"Cargo.lock", "x.lock", "data.jsonl", "p1-2-zzzzzzzz.lock",
		"p1-2-0000000.lock", "p1-2-000000000.lock", "p1-2-0000000A.lock",
		"p0-2-00000000.lock", "p01-2-00000000.lock", "p1-02-00000000.lock",
		"p4194305-1-00000000.lock", "p1-18446744073709551616-00000000.lock",
		"p1--00000000.lock", "p-1-00000000.lock", "P1-2-00000000.lock",
		"p1-2-00000000.lock.bak", "p1-2-00000000.LOCK", ".p1-2-00000000.lock",
		"p1-2-00000000.lock.tmp", "..p1-2-00000000.lock.tmp",
		".p1-2-00000000.tmp", "p1-2-00000000", ".lock", "quarantine",
		"p1-2-00000000.jsonl.1700000000.0", ""};
	char id[SHMK_ID_MAX];
	enum shmk_ofile kind;

	for (size_t i = 0; i < sizeof not_owner / sizeof *not_owner; i++)
		cr_assert_not(shmk__ofile_parse(not_owner[i], id, &kind),
			      "\"%s\" taken for an owner file", not_owner[i]);
	cr_assert(shmk__ofile_parse("p123-456-00c0ffee.lock", id, &kind));
	cr_assert_str_eq(id, "p123-456-00c0ffee");
	cr_assert_eq(kind, SHMK_OFILE_LOCK);
	cr_assert(shmk__owner_id_ok("p4194304-18446744073709551615-ffffffff"));
	cr_assert(shmk__owner_id_ok("p1-0-00000000"));
	cr_assert_not(shmk__owner_id_ok("Cargo"));
	cr_assert_not(shmk__owner_id_ok("p123"));
}

Test(marker, the_ids_and_files_the_library_makes_are_of_the_grammar)
{
	char id[SHMK_ID_MAX], oid[SHMK_ID_MAX];
	int owner_files = 0;
	struct dirent *e;
	shmk_segment *s;
	shmk_ctx *c = topen();
	DIR *dh;

	cr_assert_eq(shmk__owner_id_make(4194304, 18446744073709551615ull,
					 0xffffffffu, id), 0);
	cr_assert_str_eq(id, "p4194304-18446744073709551615-ffffffff");
	cr_assert_eq(shmk__owner_id_make(1, 0, 0xc0ffee, id), 0);
	cr_assert_str_eq(id, "p1-0-00c0ffee");
	/* The grammar is exactly what is made: nothing else passes. */
	cr_assert_eq(shmk__owner_id_make(0, 1, 1, id), -EINVAL);
	cr_assert_eq(shmk__owner_id_make(4194305, 1, 1, id), -EINVAL);
	/* The files an owner really writes are owner files, and its record
	 * names itself by an id of the grammar. */
	cr_assert_eq(shmk_segment_create(c, "a", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_not_null(dh = opendir(T.ns_dir));
	while ((e = readdir(dh))) {
		if (shmk__ofile_parse(e->d_name, oid, NULL)) {
			owner_files++;
			cr_assert(shmk__owner_id_ok(oid), "%s", oid);
		}
	}
	closedir(dh);
	shmk_segment_destroy(s);
	shmk_close(c);
	cr_assert_eq(owner_files, 2);
}

Test(marker, owner_file_names_round_trip_for_every_kind)
{
	static const char *const ids[] = {"p123-456-00c0ffee", "p1-0-00000000",
					  "p4194304-18446744073709551615-ffffffff"};
	static const struct {
		enum shmk_ofile kind;
		const char *fmt;
	} kinds[] = {
		{SHMK_OFILE_LOCK, "%s.lock"},
		{SHMK_OFILE_RECORD, "%s.jsonl"},
		{SHMK_OFILE_LOCK_TMP, ".%s.lock.tmp"},
		{SHMK_OFILE_RECORD_TMP, ".%s.jsonl.tmp"},
	};

	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
		for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
			char name[128], want[128], id[SHMK_ID_MAX];
			enum shmk_ofile kind = 0;
			int n = shmk__ofile_name(ids[i], kinds[k].kind, name,
						 sizeof name);

			snprintf(want, sizeof want, kinds[k].fmt, ids[i]);
			cr_assert_eq(n, (int)strlen(want));
			cr_assert_str_eq(name, want);
			cr_assert(shmk__ofile_parse(name, id, &kind), "%s", name);
			cr_assert_str_eq(id, ids[i]);
			cr_assert_eq(kind, kinds[k].kind, "%s", name);
			/* One byte short: refused, not cut. */
			cr_assert_eq(shmk__ofile_name(ids[i], kinds[k].kind, name,
						      strlen(want)),
				     -ENAMETOOLONG);
		}
	}
	cr_assert_eq(shmk__ofile_name("Cargo", SHMK_OFILE_LOCK, (char[64]){0}, 64),
		     -EINVAL);
}

Test(marker, names_outside_the_grammar_in_a_marked_registry_are_left_alone)
{
	static const char *const names[] = {"Cargo.lock", "x.lock", "data.jsonl",
					    "p1-2-zzzzzzzz.lock",
					    "p1-2-0000000.jsonl"};
	struct shmk_reap_report *rep;
	int rc;

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		put_file(names[i], "not ours\n", 9);
	rep = treap(0, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	shmk_reap_report_free(rep);
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", T.ns_dir, names[i]);
		cr_assert(exists(p), "%s was removed", names[i]);
	}
	cr_assert_eq(quarantined_files(), 0);
}

/* ---- adoption of a 0.1.0 registry ----------------------------------------- */

static int die_holding_a_segment(void *arg)
{
	shmk_ctx *c;
	shmk_segment *s;

	if (open_dir(arg, T.ns, &c) < 0 ||
	    shmk_segment_create(c, "left", 4096, &s) < 0)
		return 1;
	raise(SIGKILL);
	return 2;
}

/* A registry as 0.1.0 left it: a namespace with a dead owner's lock file,
 * record and segment, and a quarantine/ - and no marker. */
static const char *old_registry(void)
{
	static char d[PATH_MAX];
	char m[PATH_MAX];
	int st;

	snprintf(d, sizeof d, "%s", sub("old"));
	st = reap_child(spawn(die_holding_a_segment, (void *)d));
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	cr_assert(shm_exists("left"));
	cr_assert_eq(mkdir(sub("old/%s/quarantine", T.ns), 0700), 0);
	write_file(sub("old/%s/quarantine/p1-1-00000000.jsonl.1700000000.0", T.ns),
		   "bad\n");
	snprintf(m, sizeof m, "%s/" MARKER, d);
	cr_assert_eq(unlink(m), 0);
	return d;
}

Test(marker, a_0_1_0_registry_is_refused_until_adopted_then_reaped)
{
	const char *d = old_registry();
	shmk_ctx *c;
	struct shmk_reap_options o = {.dir = d, .shm_dir = T.shm_dir};
	struct shmk_reap_report *rep = NULL;

	cr_assert_eq(open_dir(d, T.ns, &c), -ENOTEMPTY, "%s", shmk_last_error());
	cr_assert(shm_exists("left"), "the unmarked registry was reaped");
	cr_assert_eq(shmk_registry_adopt(d), 1, "%s", shmk_last_error());
	marked(d);
	cr_assert_eq(shmk_registry_adopt(d), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_reap(&o, &rep), 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_not(shm_exists("left"));
	cr_assert_eq(open_dir(d, T.ns, &c), 0, "%s", shmk_last_error());
	shmk_close(c);
}

Test(marker, shmclean_adopt_prints_one_line_and_exits_0)
{
	const char *d = old_registry();
	struct out r = tool(SHMCLEAN, "--adopt", "--dir", d, NULL, NULL);
	char *nl;

	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	nl = strchr(r.out, '\n');
	cr_assert(nl && nl[1] == '\0', "not one line: \"%s\"", r.out);
	cr_assert(strstr(r.out, d) && strstr(r.out, "adopted"), "%s", r.out);
	out_free(&r);
	marked(d);
	cr_assert(shm_exists("left"), "adopting reaped");
	r = tool(SHMCLEAN, "--dir", d, NULL, NULL, NULL);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	out_free(&r);
	cr_assert_not(shm_exists("left"));
}

static void adoption_refused(const char *d, const char *foreign)
{
	struct out r;

	cr_assert_eq(shmk_registry_adopt(d), -ENOTEMPTY, "%s", shmk_last_error());
	cr_assert(strstr(shmk_last_error(), foreign), "%s does not name %s",
		  shmk_last_error(), foreign);
	cr_assert_not(exists(sub("old/" MARKER)), "marked all the same");
	r = tool(SHMCLEAN, "--adopt", "--dir", d, NULL, NULL);
	cr_assert_eq(r.code, 78, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, foreign), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	out_free(&r);
	cr_assert_not(exists(sub("old/" MARKER)), "marked all the same");
}

Test(marker, adoption_of_a_directory_with_one_foreign_file_is_refused_naming_it)
{
	const char *d = old_registry();
	char f[PATH_MAX];

	snprintf(f, sizeof f, "%s/notes.txt", T.ns);
	write_file(sub("old/%s", f), "mine\n");
	adoption_refused(d, f);
	cr_assert_eq(unlink(sub("old/%s", f)), 0);
	/* At the top: a file, or a directory that is not a namespace. */
	write_file(sub("old/Cargo.toml"), "[package]\n");
	adoption_refused(d, "Cargo.toml");
	cr_assert_eq(unlink(sub("old/Cargo.toml")), 0);
	cr_assert_eq(mkdir(sub("old/.git"), 0700), 0);
	adoption_refused(d, ".git");
	cr_assert_eq(rmdir(sub("old/.git")), 0);
	/* A symlink with a namespace's name is not a namespace. */
	cr_assert_eq(symlink(T.dir, sub("old/linked")), 0);
	adoption_refused(d, "linked");
	cr_assert_eq(unlink(sub("old/linked")), 0);
	/* Clean again: adopted, and the dead owner's segment reaped. */
	cr_assert_eq(shmk_registry_adopt(d), 1, "%s", shmk_last_error());
	cr_assert_eq(reap_dir(d, T.ns), 0, "%s", shmk_last_error());
	cr_assert_not(shm_exists("left"));
}

Test(marker, adoption_of_a_missing_directory_fails_and_creates_nothing)
{
	const char *d = sub("nowhere");
	struct out r;

	cr_assert_eq(shmk_registry_adopt(d), -ENOENT);
	cr_assert_not(exists(d));
	r = tool(SHMCLEAN, "--adopt", "--dir", d, NULL, NULL);
	cr_assert_eq(r.code, 78, "exit %d: %s", r.code, r.err);
	out_free(&r);
	cr_assert_not(exists(d));
}
