/* SPDX-License-Identifier: MIT */
/* test_tools2.c - the tools under load and abuse: a reader that goes away
 * (SIGPIPE), tens of thousands of owners, namespaces that are not ours to
 * use, and a registry fallback another user has squatted.
 *
 * Tools run as the built programs (SHMK_BUILDDIR/tools/<tool>) through
 * run_tool_opts(); owners are made dead for real (a child that creates
 * segments and _exit()s without closing) or written as files. */
#include "helpers.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

TestSuite(tools2, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"

/* argv of tool with the NULL-terminated arguments (at most 30). */
static void mkargv(char *argv[32], const char *tool, va_list ap)
{
	const char *a;
	int n = 0;

	argv[n++] = (char *)tool;
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	argv[n] = NULL;
}

/* Runs tool with the options ro and the NULL-terminated arguments. */
static struct out run_with(const struct run_opts *ro, const char *tool, ...)
	__attribute__((sentinel));
static struct out run_with(const struct run_opts *ro, const char *tool, ...)
{
	char *argv[32];
	va_list ap;

	va_start(ap, tool);
	mkargv(argv, tool, ap);
	va_end(ap);
	return run_tool_opts(tool, argv, NULL, ro);
}

/* Number of "<ns>." objects in T.shm_dir; removes them if remove. */
static size_t ns_objects(const char *ns, bool remove)
{
	size_t l = strlen(ns), n = 0;
	DIR *d = opendir(T.shm_dir);
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ns, l) != 0 || e->d_name[l] != '.')
			continue;
		n++;
		if (remove) {
			char p[PATH_MAX];
			snprintf(p, sizeof p, "%s/%s", T.shm_dir, e->d_name);
			unlink(p);
		}
	}
	closedir(d);
	return n;
}

/* ---- a reader that goes away ------------------------------------------------- */

enum { N_NS = 4, SEGS_PER_NS = 60 };
static char extra_ns[N_NS][64]; /* "<T.ns>a", "<T.ns>b", ... */

static int rm_tree_one(const char *p, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

/* The extra namespaces' objects, which tenv_teardown does not look for:
 * removed here even when the test failed half-way. */
static void extra_ns_teardown(void)
{
	for (int i = 0; i < N_NS; i++)
		if (extra_ns[i][0])
			ns_objects(extra_ns[i], true);
	tenv_teardown();
}

/* Child: creates SEGS_PER_NS segments in namespace arg and exits without
 * closing anything, leaving a dead owner behind.  Its report lines
 * ("<ns>: reaped /<ns>.s<i> (4.0K) of dead owner ...") fill far more
 * than one stdio buffer per namespace. */
static int die_holding_segments(void *arg)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	shmk_segment *s;
	char name[32];

	o.ns = arg;
	if (shmk_open(&o, &c) < 0)
		return 1;
	for (int i = 0; i < SEGS_PER_NS; i++) {
		snprintf(name, sizeof name, "s%d", i);
		if (shmk_segment_create(c, name, 4096, &s) < 0)
			return 2;
	}
	return 0; /* _exit: no shmk_close */
}

Test(tools2, shmclean_whose_reader_went_away_reaps_every_namespace_and_exits_74,
     .fini = extra_ns_teardown)
{
	struct run_opts ro = {.stdout_broken = true};
	struct out r;

	for (int i = 0; i < N_NS; i++) {
		snprintf(extra_ns[i], sizeof extra_ns[i], "%s%c", T.ns, 'a' + i);
		int st = reap_child(spawn(die_holding_segments, extra_ns[i]));
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "dead owner of %s not made (status %#x): run alone?",
			  extra_ns[i], st);
		cr_assert_eq(ns_objects(extra_ns[i], false), SEGS_PER_NS);
	}

	r = run_with(&ro, SHMCLEAN, "--dir", T.dir, "--shm-dir", T.shm_dir,
		     NULL);
	cr_assert_eq(r.code, EX_IOERR,
		     "shmclean exited %d (141: killed by SIGPIPE)\n%s", r.code,
		     r.err);
	cr_assert_not_null(strstr(r.err, "shmclean: error: unable to write "
					 "output: Broken pipe\n"),
			   "%s", r.err);
	cr_assert_null(strstr(strstr(r.err, "Broken pipe") + 1, "Broken pipe"),
		       "reported more than once:\n%s", r.err);
	for (int i = 0; i < N_NS; i++)
		cr_assert_eq(ns_objects(extra_ns[i], false), 0,
			     "namespace %s left unreaped:\n%s", extra_ns[i],
			     r.err);
	out_free(&r);
}

Test(tools2, shmls_whose_reader_went_away_says_so_once_and_exits_74)
{
	struct run_opts ro = {.stdout_broken = true};
	struct out r = run_with(&ro, SHMLS, "--dir", T.dir, NULL);

	cr_assert_eq(r.code, EX_IOERR, "shmls exited %d (141: SIGPIPE)\n%s",
		     r.code, r.err);
	cr_assert_str_eq(r.err, "shmls: error: unable to write output: "
				"Broken pipe\n");
	out_free(&r);
}

/* --adopt's one line lost is the same output error as any other tool's. */
Test(tools2, shmclean_adopt_whose_reader_went_away_exits_74)
{
	struct run_opts ro = {.stdout_broken = true};
	struct out r = run_with(&ro, SHMCLEAN, "--adopt", "--dir", T.dir, NULL);

	cr_assert_eq(r.code, EX_IOERR, "shmclean --adopt exited %d\n%s",
		     r.code, r.err);
	cr_assert_str_eq(r.err, "shmclean: error: unable to write output: "
				"Broken pipe\n");
	out_free(&r);
}

/* ---- shmls at scale ---------------------------------------------------------- */

/* Writes n owners into T.ns_dir as files: a lock file nobody holds and a
 * small valid record (no segments) of a pid that does not exist. */
static void write_owners(size_t n)
{
	char id[SHMK_ID_MAX], name[SHMK_ID_MAX + 16], buf[1024];

	cr_assert(mkdir(T.ns_dir, 0700) == 0 || errno == EEXIST);
	for (size_t i = 0; i < n; i++) {
		struct shmk_ident who = {.pid = 4000000 + (pid_t)i,
					 .start_time = 1, .uid = geteuid()};
		int len;

		snprintf(id, sizeof id, "p%d-1-%08x", (int)who.pid,
			 (unsigned)(i * 2654435761u));
		len = shmk__fmt_header_open(buf, sizeof buf, T.ns, id, &who,
					    "", 1);
		cr_assert_gt(len, 0);
		len += snprintf(buf + len, sizeof buf - (size_t)len, "]}\n");
		snprintf(name, sizeof name, "%s" SHMK_REC_SUFFIX, id);
		put_file(name, buf, (size_t)len);
		snprintf(name, sizeof name, "%s" SHMK_LOCK_SUFFIX, id);
		put_file(name, "", 0);
	}
}

/* 30,000 owners: a linear search per directory entry (the old owner
 * lookup) needs about 6 s of CPU here, one hash lookup 1 to 2 s.  The
 * CPU limit (SIGXCPU) turns "quadratic" into a failure without timing
 * anything in the test itself.  Writing and removing 60,000 files takes a
 * while on a busy disk: the timeout is only a hang guard. */
Test(tools2, shmls_lists_30000_owners_within_4_cpu_seconds, .timeout = 240)
{
	enum { N = 30000 };
	struct run_opts ro = {.cpu_secs = 4};
	struct out r;
	cJSON *doc, *ns;

	write_owners(N);
	r = run_with(&ro, SHMLS, "--dir", T.dir, "--namespace", T.ns,
		     "--json", NULL);
	cr_assert_eq(r.code, 0, "shmls exited %d (152: over its CPU limit)\n%s",
		     r.code, r.err);
	doc = cJSON_Parse(r.out);
	cr_assert_not_null(doc, "not JSON: %.200s", r.out);
	ns = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "namespaces"), 0);
	cr_assert_not_null(ns);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ns, "owners")), N);
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(
			     cJSON_GetObjectItem(doc, "totals"), "owners_dead")),
		     N);
	cJSON_Delete(doc);
	out_free(&r);
}

/* ---- namespace "sem" ---------------------------------------------------------- */

Test(tools2, namespace_sem_is_refused_because_its_objects_are_semaphores)
{
	cr_assert_eq(shmk_ns_check("sem"), -EINVAL);
	cr_assert_not_null(strstr(shmk_last_error(), "semaphores"), "%s",
			   shmk_last_error());
	cr_assert_not(shmk__ns_ok("sem"));
	/* Only that name: its neighbours are ordinary namespaces. */
	cr_assert_eq(shmk_ns_check("sems"), 0);
	cr_assert_eq(shmk_ns_check("SEM"), 0);
	cr_assert(shmk__ns_ok("sem_"));
}

Test(tools2, shmclean_namespace_sem_is_a_usage_error)
{
	struct run_opts ro = {0};
	struct out r = run_with(&ro, SHMCLEAN, "--dir", T.dir, "--namespace",
				"sem", "--strays", "--dry-run", NULL);

	cr_assert_eq(r.code, EX_USAGE, "exit %d\n%s%s", r.code, r.out, r.err);
	cr_assert_not_null(strstr(r.err, "--namespace: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "semaphores"), "%s", r.err);
	out_free(&r);
}

Test(tools2, shmk_open_refuses_namespace_sem)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;

	o.ns = "sem";
	cr_assert_eq(shmk_open(&o, &c), -EINVAL, "%s", shmk_last_error());
	cr_assert_null(c);
}

/* ---- the registry fallback ---------------------------------------------------- */

static void mkdir_mode(const char *path, mode_t mode)
{
	cr_assert_eq(mkdir(path, mode), 0, "mkdir %s: %s", path, strerror(errno));
	cr_assert_eq(chmod(path, mode), 0); /* whatever the umask */
}

static void assert_mode(const char *path, mode_t mode)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert(S_ISDIR(st.st_mode), "%s is not a directory", path);
	cr_assert_eq(st.st_mode & 07777, mode, "%s: mode %04o", path,
		     (unsigned)(st.st_mode & 07777));
}

/* What shmk__dir_fallback() says for us with run_user and home. */
static const char *fallback(const char *home, const char *run_user)
{
	static char out[PATH_MAX];
	int n = shmk__dir_fallback(geteuid(), home, run_user, out, sizeof out);

	cr_assert(n > 0 && (size_t)n < sizeof out, "n = %d", n);
	return out;
}

Test(tools2, registry_fallback_is_the_runtime_directory_when_it_is_ours)
{
	char run[PATH_MAX], mine[PATH_MAX], want[PATH_MAX + 16];

	snprintf(run, sizeof run, "%s/run-user", T.dir);
	snprintf(mine, sizeof mine, "%s/%u", run, (unsigned)geteuid());
	mkdir_mode(run, 0755);
	mkdir_mode(mine, 0700);
	snprintf(want, sizeof want, "%s/shmkeeper", mine);
	cr_assert_str_eq(fallback(NULL, run), want);
}

Test(tools2, registry_fallback_skips_a_writable_runtime_directory_for_home)
{
	char run[PATH_MAX], mine[PATH_MAX], home[PATH_MAX], p[PATH_MAX + 32];

	snprintf(run, sizeof run, "%s/run-user", T.dir);
	snprintf(mine, sizeof mine, "%s/%u", run, (unsigned)geteuid());
	snprintf(home, sizeof home, "%s/home", T.dir);
	mkdir_mode(run, 0755);
	mkdir_mode(mine, 0777); /* anybody could have put things in it */
	mkdir_mode(home, 0750);
	snprintf(p, sizeof p, "%s/.local/state/shmkeeper", home);
	cr_assert_str_eq(fallback(home, run), p);
	/* The parents are made, 0700; the registry itself is left to
	 * shmk_open(), which creates and checks it. */
	snprintf(p, sizeof p, "%s/.local", home);
	assert_mode(p, 0700);
	snprintf(p, sizeof p, "%s/.local/state", home);
	assert_mode(p, 0700);
	snprintf(p, sizeof p, "%s/.local/state/shmkeeper", home);
	cr_assert_neq(access(p, F_OK), 0);
	/* Existing parents of ours are used as they are. */
	cr_assert_str_eq(fallback(home, NULL), strcat(strcpy(p, home),
						      "/.local/state/shmkeeper"));
}

Test(tools2, registry_fallback_uses_tmp_only_when_home_is_not_safely_ours)
{
	char home[PATH_MAX], local[PATH_MAX + 16], shared[PATH_MAX], tmp[64];
	int fd;

	snprintf(tmp, sizeof tmp, "/tmp/shmkeeper-%u", (unsigned)geteuid());
	snprintf(home, sizeof home, "%s/home", T.dir);
	snprintf(local, sizeof local, "%s/.local", home);
	snprintf(shared, sizeof shared, "%s/shared", T.dir);
	cr_assert_str_eq(fallback(NULL, NULL), tmp);
	cr_assert_str_eq(fallback("/nonexistent-shmk-home", NULL), tmp);
	cr_assert_str_eq(fallback("relative/home", NULL), tmp);

	mkdir_mode(home, 0770); /* the group could squat .local */
	cr_assert_str_eq(fallback(home, NULL), tmp);
	cr_assert_neq(access(local, F_OK), 0, "created in a group-writable home");
	cr_assert_eq(chmod(home, 0700), 0);

	mkdir_mode(shared, 01777); /* .local: a symlink to a shared dir */
	cr_assert_eq(symlink(shared, local), 0);
	cr_assert_str_eq(fallback(home, NULL), tmp);
	cr_assert_eq(unlink(local), 0);

	fd = open(local, O_CREAT | O_WRONLY | O_CLOEXEC, 0600); /* not a dir */
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_str_eq(fallback(home, NULL), tmp);
	cr_assert_eq(unlink(local), 0);

	if (geteuid() == 0) { /* a home of somebody else */
		cr_assert_eq(chown(home, 65534, 65534), 0);
		cr_assert_str_eq(fallback(home, NULL), tmp);
		cr_assert_neq(access(local, F_OK), 0, "created in another's home");
	}
}

/* The end to end case, as root for a user (nobody, 65534) without
 * XDG_RUNTIME_DIR whose /tmp fallback somebody (root here) pre-created.
 * Its runtime directory is made for the test, as logind would. */
#define NOBODY 65534
static const char squat_dir[] = "/tmp/shmkeeper-65534";
static const char nobody_run[] = "/run/user/65534";
static bool made_squat, made_run;

static void squat_teardown(void)
{
	if (made_run)
		nftw(nobody_run, rm_tree_one, 16, FTW_DEPTH | FTW_PHYS);
	if (made_squat)
		rmdir(squat_dir);
	tenv_teardown();
}

/* Child: becomes nobody and opens T.ns with no directory given; writes
 * "ok <dir>" or "fail <sentence>" to the pipe *arg. */
static int open_as_nobody(void *arg)
{
	int wfd = *(int *)arg;
	struct shmk_options o = {.ns = T.ns, .shm_dir = T.shm_dir,
				 .durability = SHMK_DURABLE_OFF};
	shmk_ctx *c = NULL;
	shmk_segment *seg = NULL;
	char msg[PATH_MAX + 600];
	int rc;

	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("SHMKEEPER_DIR");
	setenv("HOME", T.dir, 1); /* not nobody's: must not be used */
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		return 3;
	rc = shmk_open(&o, &c);
	if (rc == 0 && (rc = shmk_segment_create(c, "x", 4096, &seg)) == 0)
		rc = shmk_segment_destroy(seg);
	snprintf(msg, sizeof msg, "%s %s", rc == 0 ? "ok" : "fail",
		 rc == 0 ? shmk_dir(c) : shmk_last_error());
	if (c && shmk_close(c) < 0 && rc == 0)
		snprintf(msg, sizeof msg, "fail %s", shmk_last_error());
	return write(wfd, msg, strlen(msg)) < 0 ? 4 : 0;
}

Test(tools2, a_user_without_runtime_env_is_not_stopped_by_a_squatted_tmp_registry,
     .fini = squat_teardown)
{
	char got[PATH_MAX + 600] = "";
	struct stat st;
	int p[2], st_child;
	ssize_t n;

	if (geteuid() != 0)
		cr_skip_test("needs root (to become uid %d)", NOBODY);
	if (lstat("/run/user", &st) < 0 || !S_ISDIR(st.st_mode))
		cr_skip_test("no /run/user on this system");
	if (lstat(squat_dir, &st) == 0 || lstat(nobody_run, &st) == 0)
		cr_skip_test("%s or %s exists already: not ours to touch",
			     squat_dir, nobody_run);
	/* The squat: not nobody's, so the old fallback refused it. */
	cr_assert_eq(mkdir(squat_dir, 0700), 0, "%s", strerror(errno));
	made_squat = true;
	cr_assert_eq(mkdir(nobody_run, 0700), 0, "%s", strerror(errno));
	made_run = true;
	cr_assert_eq(chown(nobody_run, NOBODY, NOBODY), 0);

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	st_child = reap_child(spawn(open_as_nobody, &p[1]));
	close(p[1]);
	n = read(p[0], got, sizeof got - 1);
	close(p[0]);
	cr_assert(WIFEXITED(st_child) && WEXITSTATUS(st_child) == 0,
		  "child status %#x", st_child);
	cr_assert_gt(n, 0);
	got[n] = '\0';
	cr_assert_str_eq(got, "ok /run/user/65534/shmkeeper");
	/* The squatted directory was left alone (and is still empty). */
	cr_assert_eq(rmdir(squat_dir), 0, "%s", strerror(errno));
	made_squat = false;
}

/* Every tool answers -h/--help and -V/--version with 0 and an unknown
 * option with 64 (leak-soak took -h for an unknown option and rejected
 * -V). */
Test(tools2, every_tool_takes_the_same_help_and_version_options)
{
	static const char *const tools[] = {"shmclean", "shmls", "leak-soak",
					    "shmrun"};
	static const char *const good[] = {"-h", "--help", "-V", "--version"};

	for (size_t t = 0; t < 4; t++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, SHMK_BUILDDIR "/tools/%s", tools[t]);
		for (size_t g = 0; g < 4; g++) {
			char *argv[] = {(char *)tools[t], (char *)good[g], NULL};
			struct out r = run_tool(path, argv, NULL, 0);
			cr_assert_eq(r.code, 0, "%s %s: %d %s", tools[t], good[g],
				     r.code, r.err);
			cr_assert_neq(r.out[0], '\0', "%s %s said nothing",
				      tools[t], good[g]);
			out_free(&r);
		}
		char *argv[] = {(char *)tools[t], "--no-such-option", NULL};
		struct out r = run_tool(path, argv, NULL, 0);
		cr_assert_eq(r.code, 64, "%s: %d", tools[t], r.code);
		out_free(&r);
	}
}

/* Every tool's --help has one layout (the usage lines differed in case and
 * shape, exit codes were missing): "Usage: <tool> ..." and a line for
 * -h/-V, an "Options:" list that ends with -h and -V, an "Exit status:"
 * list of "  <code>  <meaning>" lines in increasing order, "See <tool>(1).",
 * and no line wider than 80 columns.  That every option the tool parses is
 * in its help and its man page is checked by make mancheck. */
Test(tools2, every_tool_help_has_the_same_layout)
{
	static const char *const tools[] = {"shmclean", "shmls", "leak-soak",
					    "shmrun"};

	for (size_t t = 0; t < 4; t++) {
		char path[PATH_MAX], want[128], *argv[] = {(char *)tools[t],
							   "--help", NULL};
		snprintf(path, sizeof path, SHMK_BUILDDIR "/tools/%s", tools[t]);
		struct out r = run_tool(path, argv, NULL, 0);
		const char *p, *ex;
		int last = -1, codes = 0;

		cr_assert_eq(r.code, 0, "%s: %d %s", tools[t], r.code, r.err);
		snprintf(want, sizeof want, "Usage: %s ", tools[t]);
		cr_assert(!strncmp(r.out, want, strlen(want)), "%s", r.out);
		snprintf(want, sizeof want, "\n       %s -h | --help | -V | --version\n",
			 tools[t]);
		cr_assert_not_null(strstr(r.out, want), "%s", r.out);
		cr_assert_not_null(strstr(r.out, "\n\nOptions:\n"), "%s", r.out);
		cr_assert_not_null(strstr(r.out, "\n  -h, --help "), "%s", r.out);
		cr_assert_not_null(strstr(r.out, "\n  -V, --version "), "%s", r.out);
		cr_assert_not_null(ex = strstr(r.out, "\n\nExit status:\n"), "%s",
				   r.out);
		for (p = strchr(ex + 2, '\n') + 1; !strncmp(p, "  ", 2);
		     p = strchr(p, '\n') + 1) {
			int code;
			if (sscanf(p, "  %d", &code) != 1)
				continue; /* a continuation or shmrun's CMD line */
			cr_assert_gt(code, last, "%s: exit codes out of order at %d",
				     tools[t], code);
			last = code;
			codes++;
		}
		cr_assert_geq(codes, 4, "%s: %d exit codes listed", tools[t], codes);
		snprintf(want, sizeof want, "See %s(1).\n", tools[t]);
		cr_assert_str_eq(p, want, "%s: help ends with %s", tools[t], p);
		for (p = r.out; *p; p = strchr(p, '\n') + 1)
			cr_assert_leq(strcspn(p, "\n"), 80, "%s: long line: %.100s",
				      tools[t], p);
		out_free(&r);
	}
}
