/* SPDX-License-Identifier: MIT */
/* test_tools.c - shmclean and shmls, run as the built programs.
 *
 * Every run goes through fork/exec of SHMK_BUILDDIR/tools/<tool> with
 * "--dir T.dir", its stdout and stderr captured through pipes.  Owners are
 * made dead for real (a child SIGKILLed while it holds segments) or forged
 * (a lock file nobody holds and a record naming a pid that has exited). */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(tools, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"

/* ---- running a tool ------------------------------------------------------- */


/* Runs path with argv (argv[0] included, NULL-terminated). */
static struct out run_argv(const char *path, char *const argv[])
{
	return run_tool(path, argv, NULL, 0);
}

/* Runs tool with "--dir T.dir" and the NULL-terminated arguments. */
static struct out run(const char *tool, ...) __attribute__((sentinel));
static struct out run(const char *tool, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;
	const char *a;

	argv[n++] = (char *)tool;
	argv[n++] = "--dir";
	argv[n++] = T.dir;
	va_start(ap, tool);
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return run_argv(tool, argv);
}

/* Same, without the automatic --dir. */
#define run_nodir run_tool_list

static cJSON *parse_json(const struct out *r)
{
	cJSON *j = cJSON_Parse(r->out);

	cr_assert_not_null(j, "output is not JSON:\n%s\nstderr:\n%s", r->out,
			   r->err);
	return j;
}




/* Totals of a shmclean --json document. */
static double total(const cJSON *doc, const char *key)
{
	return jnum(jget(doc, "totals"), key);
}

/* The namespace object of a shmls --json document for T.ns. */
static const cJSON *ls_ns(const cJSON *doc)
{
	const cJSON *n;

	cJSON_ArrayForEach(n, jget(doc, "namespaces"))
		if (strcmp(jstr(n, "namespace"), T.ns) == 0)
			return n;
	cr_assert_fail("namespace %s not listed", T.ns);
	return NULL;
}

/* The owner of pid in a shmls namespace object. */
static const cJSON *ls_owner(const cJSON *ns, pid_t pid)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, jget(ns, "owners"))
		if ((pid_t)jnum(o, "pid") == pid)
			return o;
	cr_assert_fail("owner with pid %d not listed", (int)pid);
	return NULL;
}

/* Number of items of a shmclean --json document with this action (and
 * this object, unless NULL). */
static size_t items(const cJSON *doc, const char *action, const char *object)
{
	const cJSON *i;
	size_t n = 0;

	cJSON_ArrayForEach(i, jget(doc, "items"))
		if (strcmp(jstr(i, "action"), action) == 0 &&
		    (!object || strcmp(jstr(i, "object"), object) == 0))
			n++;
	return n;
}

/* ---- making owners and objects ---------------------------------------------- */


static const char *shm_path(const char *object)
{
	static __thread char b[4][PATH_MAX];
	static __thread int k;
	char *p = b[k++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", T.shm_dir, object);
	return p;
}

/* Creates T.shm_dir/<object> (not through the library) of size bytes. */
static void make_object(const char *object, size_t size)
{
	int fd = open(shm_path(object), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					     O_CLOEXEC,
		      0600);

	cr_assert_geq(fd, 0, "create %s: %s", object, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Waits until object is at least secs old by ctime (the age the reaper
 * judges strays by). */
static void wait_older(const char *object, int secs)
{
	struct stat st;

	cr_assert_eq(lstat(shm_path(object), &st), 0);
	while (time(NULL) - st.st_ctime < secs)
		usleep(50 * 1000);
}


/* A pid that has just exited (and been reaped). */
static pid_t dead_pid(void)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	reap_child(pid);
	return pid;
}

/* Forges a dead owner: an unlocked lock file and a record (exact format v1,
 * lib/record.c) naming segments names[] of 4096 bytes; a name whose object
 * exists is recorded "live" with its inode, otherwise "intent".  If body is
 * not NULL it is written as the record instead.  Returns the owner id in
 * id (64 bytes) and the pid. */
static pid_t forge_owner(char id[64], const char *const *names,
			 const char *body)
{
	pid_t pid = dead_pid();
	char rec[8192], name[128];
	size_t n;

	snprintf(id, 64, "p%d-12345-0badf00d", (int)pid);
	if (body) {
		snprintf(rec, sizeof rec, "%s", body);
	} else {
		n = (size_t)snprintf(
			rec, sizeof rec,
			"{\"format\":\"shmkeeper-record\",\"version\":1,"
			"\"namespace\":\"%s\",\"owner\":{\"id\":\"%s\","
			"\"pid\":%d,\"start_time\":12345,\"boot_id\":\"\","
			"\"uid\":%u,\"role\":\"forged\",\"created\":%lld},"
			"\"segments\":[",
			T.ns, id, (int)pid, (unsigned)geteuid(),
			(long long)time(NULL));
		for (int i = 0; names && names[i]; i++) {
			struct stat st;
			const char *f = tfull(names[i]);
			if (lstat(shm_path(f + 1), &st) == 0 && S_ISREG(st.st_mode))
				n += (size_t)snprintf(
					rec + n, sizeof rec - n,
					"%s{\"name\":\"%s\",\"size\":4096,"
					"\"state\":\"live\",\"created\":%lld,"
					"\"ino\":%llu}",
					i ? "," : "", f, (long long)time(NULL),
					(unsigned long long)st.st_ino);
			else
				n += (size_t)snprintf(
					rec + n, sizeof rec - n,
					"%s{\"name\":\"%s\",\"size\":4096,"
					"\"state\":\"intent\",\"created\":%lld}",
					i ? "," : "", f, (long long)time(NULL));
		}
		snprintf(rec + n, sizeof rec - n, "]}\n");
	}
	snprintf(name, sizeof name, "%s.lock", id);
	put_file(name, "", 0);
	snprintf(name, sizeof name, "%s.jsonl", id);
	put_file(name, rec, strlen(rec));
	return pid;
}

static void assert_registry_empty(void)
{
	cr_assert_eq(ns_files(".jsonl"), 0, "records left");
	cr_assert_eq(ns_files(".lock"), 0, "lock files left");
	cr_assert_eq(ns_files(NULL), 0, "files left in %s", T.ns_dir);
}

/* ---- shmls ------------------------------------------------------------------- */

Test(tools, shmls_shows_a_killed_owner_dead_with_its_segments)
{
	static const char *const names[] = {"alpha", "beta", NULL};
	static const size_t sizes[] = {4096, 8192};
	pid_t pid = tkilled_owner(names, sizes, 0);
	struct out r = run(SHMLS, "--json", NULL);
	char pidbuf[32];

	cr_assert_eq(r.code, 0, "shmls: %d\n%s", r.code, r.err);
	cJSON *doc = parse_json(&r);
	assert_json_format(doc, "shmkeeper-shmls");
	const cJSON *ns = ls_ns(doc);
	const cJSON *o = ls_owner(ns, pid);
	cr_assert_str_eq(jstr(o, "state"), "dead");
	cr_assert(cJSON_IsFalse(jget(o, "alive")));
	cr_assert_str_eq(jstr(o, "lock"), "free");
	cr_assert_str_eq(jstr(o, "role"), "victim");
	cr_assert_str_eq(jstr(o, "record"), "ok");
	const cJSON *segs = jget(o, "segments");
	cr_assert_eq(cJSON_GetArraySize(segs), 2);
	const cJSON *s0 = cJSON_GetArrayItem(segs, 0), *s1 = cJSON_GetArrayItem(segs, 1);
	cr_assert_str_eq(jstr(s0, "name"), tfull("alpha"));
	cr_assert_eq(jnum(s0, "size"), 4096);
	/* Its owner is dead: the segment is not "live" but "orphaned", which
	 * shmclean reaps. */
	cr_assert_str_eq(jstr(s0, "state"), "orphaned");
	cr_assert_str_eq(jstr(s1, "state"), "orphaned");
	cr_assert(cJSON_IsTrue(jget(s0, "present")));
	cr_assert_str_eq(jstr(s1, "name"), tfull("beta"));
	cr_assert_eq(jnum(s1, "size"), 8192);
	const cJSON *t = jget(ns, "totals");
	cr_assert_eq(jnum(t, "owners"), 1);
	cr_assert_eq(jnum(t, "owners_dead"), 1);
	cr_assert_eq(jnum(t, "owners_alive"), 0);
	cr_assert_eq(jnum(t, "segments"), 2);
	cr_assert_eq(jnum(t, "bytes"), 12288);
	cr_assert_eq(jnum(jget(doc, "totals"), "segments"), 2);
	cJSON_Delete(doc);
	out_free(&r);

	/* The human listing says the same. */
	r = run(SHMLS, NULL);
	cr_assert_eq(r.code, 0);
	snprintf(pidbuf, sizeof pidbuf, "pid %d", (int)pid);
	cr_assert(strstr(r.out, pidbuf) && strstr(r.out, "dead") &&
		  strstr(r.out, tfull("alpha")) && strstr(r.out, tfull("beta")) &&
		  strstr(r.out, "8.0 KiB") && strstr(r.out, "orphaned") &&
		  !strstr(r.out, " live "),
		  "listing:\n%s", r.out);
	out_free(&r);

	/* Listing changed nothing: the dead owner is still there to reap. */
	cr_assert_eq(shm_count(), 2);
	cr_assert_eq(ns_files(".jsonl"), 1);
	r = run(SHMCLEAN, "-q", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	out_free(&r);
	cr_assert_eq(shm_count(), 0);
}

Test(tools, shmls_shows_a_live_owner_alive)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	cr_assert_eq(shmk_segment_create(c, "mine", 4096, &s), 0);
	struct out r = run(SHMLS, "--namespace", T.ns, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	const cJSON *o = ls_owner(ls_ns(doc), getpid());
	cr_assert_str_eq(jstr(o, "state"), "alive");
	cr_assert(cJSON_IsTrue(jget(o, "alive")));
	cr_assert_str_eq(jstr(o, "lock"), "held");
	cr_assert_eq(jnum(o, "lock_holder"), getpid());
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(jget(o, "segments"), 0),
			      "state"), "live");
	cJSON_Delete(doc);
	out_free(&r);

	/* Asking who holds the lock took nothing: a reaper still finds us
	 * alive. */
	r = run(SHMCLEAN, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	doc = parse_json(&r);
	assert_json_format(doc, "shmkeeper-shmclean");
	cr_assert_eq(total(doc, "owners_alive"), 1);
	cr_assert_eq(total(doc, "segments_reaped"), 0);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert(shm_exists("mine"));
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(c), 0);
}

Test(tools, shmls_reports_a_corrupt_record_without_moving_it)
{
	char id[64];

	mkdir(T.ns_dir, 0700);
	forge_owner(id, NULL, "{\"format\":\"shmkeeper-record\",\"version\":1,"
			      "\"namespace\":");
	struct out r = run(SHMLS, NULL);
	cr_assert_eq(r.code, 65, "shmls: %d\n%s\n%s", r.code, r.out, r.err);
	cr_assert(strstr(r.out, "error") && strstr(r.out, id) &&
		  strstr(r.out, "truncated"),
		  "no error line naming the record and the reason:\n%s", r.out);
	out_free(&r);
	cr_assert_eq(quarantined_files(), 0, "shmls quarantined a file");
	cr_assert_eq(ns_files(".jsonl"), 1);

	r = run(SHMLS, "--json", NULL);
	cr_assert_eq(r.code, 65);
	cJSON *doc = parse_json(&r);
	const cJSON *ns = ls_ns(doc);
	cr_assert_eq(jnum(jget(ns, "totals"), "bad_records"), 1);
	cr_assert_eq(cJSON_GetArraySize(jget(ns, "errors")), 1);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert_eq(quarantined_files(), 0);
}

Test(tools, shmls_on_a_missing_registry_lists_nothing_and_creates_nothing)
{
	char dir[PATH_MAX + 16];
	struct stat st;

	snprintf(dir, sizeof dir, "%s/none", T.dir);
	struct out r = run_nodir(SHMLS, "--dir", dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(strstr(r.out, "does not exist"), "%s", r.out);
	out_free(&r);
	r = run_nodir(SHMLS, "--dir", dir, "--namespace", T.ns, "--strays",
		      "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	cr_assert(cJSON_IsFalse(jget(doc, "exists")));
	cJSON_Delete(doc);
	out_free(&r);
	r = run_nodir(SHMCLEAN, "--dir", dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	out_free(&r);
	cr_assert_neq(lstat(dir, &st), 0, "a tool created %s", dir);
}

Test(tools, shmls_fails_clearly_on_a_group_writable_registry)
{
	mkdir(T.ns_dir, 0700);
	cr_assert_eq(chmod(T.dir, 0777), 0);
	struct out r = run(SHMLS, NULL);
	struct out c = run(SHMCLEAN, NULL);
	struct out cn = run(SHMCLEAN, "--namespace", T.ns, NULL);
	chmod(T.dir, 0700);

	cr_assert_eq(r.code, 78, "shmls: %d\n%s", r.code, r.err);
	cr_assert(strstr(r.err, "shmls: fatal: unable to scan registry") &&
		  strstr(r.err, T.dir) && strstr(r.err, "writable"),
		  "unclear message: %s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert_eq(c.code, 78, "shmclean: %d\n%s", c.code, c.err);
	cr_assert(strstr(c.err, "shmclean: fatal: unable to") &&
		  strstr(c.err, T.dir) && strstr(c.err, "writable"),
		  "unclear message: %s", c.err);
	cr_assert_eq(cn.code, 78, "shmclean --namespace: %d\n%s", cn.code,
		     cn.err);
	cr_assert(strstr(cn.err, T.dir), "%s", cn.err);
	out_free(&r);
	out_free(&c);
	out_free(&cn);
}

/* ---- shmclean ------------------------------------------------------------------ */

Test(tools, shmclean_reaps_a_killed_owner_and_a_second_run_is_idempotent)
{
	static const char *const names[] = {"one", "two", "three", NULL};
	static const size_t sizes[] = {4096, 4096, 65536};
	pid_t pid = tkilled_owner(names, sizes, 0);
	char pidbuf[32];

	cr_assert_eq(shm_count(), 3);
	struct out r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 0, "shmclean: %d\n%s\n%s", r.code, r.out, r.err);
	snprintf(pidbuf, sizeof pidbuf, "pid %d", (int)pid);
	cr_assert(strstr(r.out, "reaped") && strstr(r.out, tfull("three")) &&
		  strstr(r.out, pidbuf) && strstr(r.out, "64 KiB"),
		  "output:\n%s", r.out);
	cr_assert_str_eq(r.err, "");
	out_free(&r);
	cr_assert_eq(shm_count(), 0);
	assert_registry_empty();

	r = run(SHMCLEAN, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	cr_assert_eq(total(doc, "owners_dead"), 0);
	cr_assert_eq(total(doc, "segments_reaped"), 0);
	cr_assert_eq(total(doc, "errors"), 0);
	cr_assert_eq(cJSON_GetArraySize(jget(doc, "items")), 0);
	cJSON_Delete(doc);
	out_free(&r);

	r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 0);
	cr_assert(strstr(r.out, "nothing to reap"), "%s", r.out);
	out_free(&r);
}

Test(tools, shmclean_leaves_a_live_owner_alone)
{
	static const char *const names[] = {"dead1", NULL};
	static const size_t sizes[] = {4096};
	shmk_ctx *c;
	shmk_segment *s;

	tkilled_owner(names, sizes, 0);
	c = topen_flags(SHMK_OPEN_NO_REAP);
	cr_assert_eq(shmk_segment_create(c, "alive", 4096, &s), 0);

	struct out r = run(SHMCLEAN, "-v", NULL);
	cr_assert_eq(r.code, 0, "%s\n%s", r.out, r.err);
	cr_assert(strstr(r.out, "live owner") && strstr(r.out, tfull("alive")),
		  "-v does not show the live owner:\n%s", r.out);
	out_free(&r);
	cr_assert(shm_exists("alive"), "a live owner's segment was reaped");
	cr_assert_not(shm_exists("dead1"));
	cr_assert_eq(ns_files(".jsonl"), 1);

	/* Again, all namespaces, strays on: still left alone. */
	r = run(SHMCLEAN, "--all", "--strays", "--min-age", "0", "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	cr_assert_eq(total(doc, "owners_alive"), 1);
	cr_assert_eq(total(doc, "segments_live"), 1);
	cr_assert_eq(total(doc, "segments_reaped"), 0);
	cr_assert_eq(total(doc, "strays_removed"), 0);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert(shm_exists("alive"));
	cr_assert_eq(*(volatile char *)shmk_segment_addr(s), 0);

	/* Without -v the live owner is not mentioned. */
	r = run(SHMCLEAN, NULL);
	cr_assert_null(strstr(r.out, tfull("alive")), "%s", r.out);
	out_free(&r);
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(c), 0);
}

Test(tools, dry_run_changes_nothing)
{
	static const char *const names[] = {"d1", "d2", NULL};
	static const size_t sizes[] = {4096, 4096};
	char id[64];

	tkilled_owner(names, sizes, 0);
	forge_owner(id, NULL, "not json\n"); /* would be quarantined */
	make_object(tfull("stray")+1, 4096);
	wait_older(tfull("stray") + 1, 1);
	size_t files = ns_files(NULL);

	struct out r = run(SHMCLEAN, "--dry-run", "--strays", "--min-age", "0",
			   NULL);
	cr_assert(strstr(r.out, "would reap") && strstr(r.out, tfull("d1")),
		  "%s", r.out);
	cr_assert(strstr(r.out, "dry run"), "%s", r.out);
	out_free(&r);
	cr_assert_eq(shm_count(), 3);
	cr_assert_eq(ns_files(NULL), files);
	cr_assert_eq(quarantined_files(), 0);

	r = run(SHMCLEAN, "--dry-run", "--json", NULL);
	cJSON *doc = parse_json(&r);
	cr_assert(cJSON_IsTrue(jget(doc, "dry_run")));
	cr_assert_eq(total(doc, "segments_reaped"), 2);
	/* The bad record is reported (as an error, or as "quarantined" with
	 * "would be" in the reason, depending on the library version). */
	cr_assert_geq(total(doc, "quarantined") + total(doc, "errors"), 1);
	cr_assert_eq(total(doc, "strays_kept"), 1);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert_eq(shm_count(), 3);
	cr_assert_eq(ns_files(NULL), files);

	/* For real now. */
	r = run(SHMCLEAN, "--strays", "--min-age", "0", NULL);
	cr_assert_eq(r.code, 65, "%d: %s", r.code, r.err);
	out_free(&r);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(quarantined_files(), 1);
}

Test(tools, quarantines_a_corrupt_record_of_a_dead_owner_and_exits_65)
{
	char id[64];

	make_object(tfull("orphan") + 1, 4096);
	forge_owner(id, NULL, "{\"format\":\"shmkeeper-record\",\"version\":1,"
			      "\"namespace\":\"x\"}garbage\n");
	struct out r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 65, "exit %d\n%s\n%s", r.code, r.out, r.err);
	cr_assert(strstr(r.err, "quarantined") && strstr(r.err, id),
		  "stderr does not name the quarantined record: %s", r.err);
	cr_assert(strstr(r.out, "1 record quarantined"), "%s", r.out);
	out_free(&r);
	cr_assert_eq(quarantined_files(), 1);
	cr_assert_eq(ns_files(".jsonl"), 0);
	/* Its segments are not known, so not touched: they are strays now. */
	bool kept = shm_exists("orphan");

	/* A second run has nothing more to quarantine. */
	r = run(SHMCLEAN, "--json", NULL);
	unlink(shm_path(tfull("orphan") + 1));
	cr_assert(kept, "a corrupt record was used as grounds to unlink");
	cr_assert_eq(r.code, 0, "%d %s", r.code, r.err);
	cJSON *doc = parse_json(&r);
	cr_assert_eq(total(doc, "quarantined"), 0);
	cr_assert_eq(total(doc, "strays_kept"), 1);
	cr_assert_eq(items(doc, "stray-kept", tfull("orphan")), 1);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert_eq(quarantined_files(), 1);
}

Test(tools, quarantines_a_symlinked_record_without_following_it)
{
	char id[64], target[PATH_MAX + 16], link[PATH_MAX + 80];
	const char *content = "precious\n";

	mkdir(T.ns_dir, 0700);
	snprintf(target, sizeof target, "%s/precious", T.dir);
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	forge_owner(id, NULL, "placeholder\n");
	snprintf(link, sizeof link, "%s/%s.jsonl", T.ns_dir, id);
	cr_assert_eq(unlink(link), 0);
	cr_assert_eq(symlink(target, link), 0);

	struct out r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 65, "%d\n%s\n%s", r.code, r.out, r.err);
	cr_assert(strstr(r.err, "symlink"), "%s", r.err);
	out_free(&r);
	cr_assert_eq(quarantined_files(), 1);
	char *got = slurp(target, NULL);
	cr_assert_str_eq(got, content, "the target was changed");
	free(got);
}

Test(tools, never_touches_names_outside_the_namespace_prefix)
{
	char foreign[300], other[300], other_ns[64];

	tclaim();
	snprintf(foreign, sizeof foreign, "%sxfoo", T.ns); /* no dot */
	snprintf(other_ns, sizeof other_ns, "%s-other", T.ns);
	snprintf(other, sizeof other, "%s.x", other_ns);
	make_object(foreign, 4096);
	make_object(other, 4096);
	make_object(tfull("mine") + 1, 4096);
	wait_older(foreign, 1);
	wait_older(other, 1);
	wait_older(tfull("mine") + 1, 1);

	struct out a = run(SHMCLEAN, "--namespace", T.ns, "--strays",
			   "--min-age", "0", "--json", NULL);
	bool f1 = shm_file_exists(foreign), o1 = shm_file_exists(other);
	struct out b = run(SHMCLEAN, "--all", "--strays", "--min-age", "0",
			   "--json", NULL);
	struct out l = run(SHMLS, "--namespace", T.ns, "--strays", NULL);
	bool f2 = shm_file_exists(foreign), o2 = shm_file_exists(other);
	unlink(shm_path(foreign));
	unlink(shm_path(other));

	cr_assert(f1 && o1 && f2 && o2,
		  "an object outside the namespace prefix was removed");
	cr_assert_eq(a.code, 0, "%s", a.err);
	cr_assert_eq(b.code, 0, "%s", b.err);
	cJSON *doc = parse_json(&a);
	cr_assert_eq(total(doc, "strays_removed"), 1, "%s", a.out);
	cr_assert_eq(items(doc, "stray-removed", tfull("mine")), 1);
	cr_assert_null(strstr(a.out, foreign), "%s", a.out);
	cr_assert_null(strstr(a.out, other), "%s", a.out);
	cJSON_Delete(doc);
	cr_assert_null(strstr(b.out, foreign), "%s", b.out);
	cr_assert_null(strstr(b.out, other), "%s", b.out);
	cr_assert_null(strstr(l.out, foreign), "shmls lists it:\n%s", l.out);
	cr_assert_null(strstr(l.out, other), "shmls lists it:\n%s", l.out);
	cr_assert_not(shm_exists("mine"));
	out_free(&a);
	out_free(&b);
	out_free(&l);
}

Test(tools, strays_are_reported_kept_when_young_and_removed_on_request)
{
	tclaim();
	make_object(tfull("stray") + 1, 4096);

	/* Default: reported, kept. */
	struct out r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(strstr(r.out, "stray") && strstr(r.out, tfull("stray")),
		  "stray not reported:\n%s", r.out);
	out_free(&r);
	cr_assert(shm_exists("stray"));

	/* shmls --strays lists it. */
	r = run(SHMLS, "--strays", "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	const cJSON *strays = jget(ls_ns(doc), "strays");
	cr_assert_eq(cJSON_GetArraySize(strays), 1);
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(strays, 0), "name"), tfull("stray"));
	cr_assert_eq(jnum(cJSON_GetArrayItem(strays, 0), "size"), 4096);
	cJSON_Delete(doc);
	out_free(&r);

	/* Younger than --min-age: kept even with --strays. */
	r = run(SHMCLEAN, "--strays", "--min-age", "3600", "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	doc = parse_json(&r);
	cr_assert_eq(total(doc, "strays_kept"), 1);
	cr_assert_eq(total(doc, "strays_removed"), 0);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert(shm_exists("stray"));

	/* The default minimum age (60 s) protects it too. */
	r = run(SHMCLEAN, "--strays", NULL);
	cr_assert_eq(r.code, 0);
	out_free(&r);
	cr_assert(shm_exists("stray"));

	/* --min-age 0: removed.  (The library reads a minimum of 0 as "the
	 * default", so the tool asks for 1 s: wait until it is that old.) */
	wait_older(tfull("stray") + 1, 1);
	r = run(SHMCLEAN, "--strays", "--min-age", "0", "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	doc = parse_json(&r);
	cr_assert_eq(total(doc, "strays_removed"), 1);
	cr_assert_eq(items(doc, "stray-removed", tfull("stray")), 1);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert_not(shm_exists("stray"));
}

Test(tools, never_touches_another_users_segment_or_stray)
{
	static const char *const names[] = {"theirs", NULL};
	char id[64];

	make_object(tfull("theirs") + 1, 4096);
	make_object(tfull("theirstray") + 1, 4096);
	if (chown(shm_path(tfull("theirs") + 1), 65534, 65534) < 0 ||
	    chown(shm_path(tfull("theirstray") + 1), 65534, 65534) < 0) {
		unlink(shm_path(tfull("theirs") + 1));
		unlink(shm_path(tfull("theirstray") + 1));
		cr_skip_test("cannot chown to another user (%s): needs root",
			     strerror(errno));
	}
	forge_owner(id, names, NULL);
	wait_older(tfull("theirstray") + 1, 1);

	struct out r = run(SHMCLEAN, "--strays", "--min-age", "0", NULL);
	bool seg = shm_exists("theirs"), stray = shm_exists("theirstray");
	size_t recs = ns_files(".jsonl");
	unlink(shm_path(tfull("theirs") + 1));
	unlink(shm_path(tfull("theirstray") + 1));

	cr_assert(seg, "another user's segment was unlinked");
	cr_assert(stray, "another user's stray was unlinked");
	cr_assert_eq(r.code, 75, "exit %d\n%s\n%s", r.code, r.out, r.err);
	cr_assert(strstr(r.err, "shmclean: error: unable to handle") &&
		  strstr(r.err, tfull("theirs")),
		  "error not reported: %s", r.err);
	cr_assert_eq(recs, 1, "the record of what could not be reaped is gone");
	out_free(&r);

	/* Once the object is gone, the record goes too. */
	r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	out_free(&r);
	assert_registry_empty();
}

Test(tools, never_follows_a_symlink_in_the_shm_directory)
{
	static const char *const names[] = {"link", NULL};
	char target[PATH_MAX + 16], id[64];

	snprintf(target, sizeof target, "%s/victim", T.dir);
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "v", 1), 1);
	close(fd);
	cr_assert_eq(symlink(target, shm_path(tfull("link") + 1)), 0);
	cr_assert_eq(symlink(target, shm_path(tfull("slink") + 1)), 0);
	forge_owner(id, names, NULL); /* records "link" in intent */
	wait_older(tfull("slink") + 1, 1);

	struct out r = run(SHMCLEAN, "--strays", "--min-age", "0", "--json",
			   NULL);
	bool l1 = shm_file_exists(tfull("link") + 1);
	bool l2 = shm_file_exists(tfull("slink") + 1);
	struct stat st;
	bool victim = lstat(target, &st) == 0 && st.st_size == 1;
	unlink(shm_path(tfull("link") + 1));
	unlink(shm_path(tfull("slink") + 1));

	cr_assert(victim, "the symlink target was touched");
	cr_assert(l1 && l2, "a symlink was removed");
	cr_assert_eq(r.code, 75, "exit %d\n%s\n%s", r.code, r.out, r.err);
	cJSON *doc = parse_json(&r);
	cr_assert_eq(items(doc, "error", tfull("link")), 1, "%s", r.out);
	cr_assert_eq(items(doc, "stray-kept", tfull("slink")), 1, "%s", r.out);
	cr_assert_eq(jnum(doc, "exit_status"), 75);
	cJSON_Delete(doc);
	out_free(&r);
	r = run(SHMCLEAN, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	out_free(&r);
	assert_registry_empty();
}

Test(tools, refuses_a_symlinked_registry_directory)
{
	char real[PATH_MAX + 16], link[PATH_MAX + 16];

	snprintf(real, sizeof real, "%s/real", T.dir);
	snprintf(link, sizeof link, "%s/link", T.dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, link), 0);
	struct out c = run_nodir(SHMCLEAN, "--dir", link, NULL);
	struct out l = run_nodir(SHMLS, "--dir", link, NULL);
	cr_assert_eq(c.code, 78, "%d %s", c.code, c.err);
	cr_assert(strstr(c.err, "symlink") && strstr(c.err, link), "%s", c.err);
	cr_assert_eq(l.code, 78, "%d %s", l.code, l.err);
	cr_assert(strstr(l.err, "symlink") && strstr(l.err, link), "%s", l.err);
	out_free(&c);
	out_free(&l);
}

Test(tools, json_output_parses_and_has_the_expected_totals)
{
	static const char *const names[] = {"j1", "j2", NULL};
	static const size_t sizes[] = {4096, 8192};
	shmk_ctx *c;
	shmk_segment *s;

	pid_t pid = tkilled_owner(names, sizes, 0);
	c = topen_flags(SHMK_OPEN_NO_REAP);
	cr_assert_eq(shmk_segment_create(c, "live", 4096, &s), 0);
	make_object(tfull("stray") + 1, 1000);

	struct out r = run(SHMCLEAN, "--json", NULL);
	unlink(shm_path(tfull("stray") + 1));
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_str_eq(r.err, "");
	cJSON *doc = parse_json(&r);
	cr_assert_str_eq(jstr(doc, "registry"), T.dir);
	cr_assert_eq(total(doc, "namespaces"), 1);
	cr_assert_eq(total(doc, "owners_dead"), 1);
	cr_assert_eq(total(doc, "owners_alive"), 1);
	cr_assert_eq(total(doc, "segments_reaped"), 2);
	cr_assert_eq(total(doc, "bytes_reaped"), 12288);
	cr_assert_eq(total(doc, "segments_live"), 1);
	cr_assert_eq(total(doc, "bytes_live"), 4096);
	cr_assert_eq(total(doc, "strays_kept"), 1);
	cr_assert_eq(total(doc, "bytes_strays"), 1000);
	cr_assert_eq(total(doc, "quarantined"), 0);
	cr_assert_eq(total(doc, "errors"), 0);
	cr_assert_eq(jnum(doc, "exit_status"), 0);
	cr_assert_eq(items(doc, "reaped", NULL), 2);
	cr_assert_eq(items(doc, "owner-dead", NULL), 1);
	cr_assert_eq(items(doc, "stray-kept", tfull("stray")), 1);
	const cJSON *it;
	cJSON_ArrayForEach(it, jget(doc, "items"))
	{
		if (strcmp(jstr(it, "action"), "reaped") != 0)
			continue;
		cr_assert_str_eq(jstr(it, "ns"), T.ns);
		cr_assert_eq(jnum(it, "pid"), pid);
		cr_assert_neq(jstr(it, "owner")[0], '\0');
		cr_assert_eq(jnum(it, "error"), 0);
		cr_assert(cJSON_IsString(jget(it, "reason")));
		cr_assert(strcmp(jstr(it, "object"), tfull("j1")) == 0 ||
			  strcmp(jstr(it, "object"), tfull("j2")) == 0);
	}
	cJSON_Delete(doc);
	out_free(&r);
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(c), 0);
}

Test(tools, quiet_prints_only_errors)
{
	static const char *const names[] = {"q", NULL};
	static const size_t sizes[] = {4096};

	tkilled_owner(names, sizes, 0);
	struct out r = run(SHMCLEAN, "-q", NULL);
	cr_assert_eq(r.code, 0);
	cr_assert_str_eq(r.out, "", "-q printed: %s", r.out);
	cr_assert_str_eq(r.err, "");
	out_free(&r);
	cr_assert_eq(shm_count(), 0);
}

Test(tools, bad_usage_exits_64_with_a_message)
{
	static const char *const bad[][4] = {
		{SHMCLEAN, "--bogus", NULL},
		{SHMCLEAN, "--min-age", "soon", NULL},
		{SHMCLEAN, "--min-age", "-1", NULL},
		{SHMCLEAN, "--namespace", "a/b", NULL},
		{SHMCLEAN, "--namespace", "x", "--all"},
		{SHMCLEAN, "-q", "-v", NULL},
		{SHMCLEAN, "stray-argument", NULL},
		{SHMCLEAN, "--dir", NULL},
		{SHMLS, "--bogus", NULL},
		{SHMLS, "--namespace", "../etc", NULL},
		{SHMLS, "extra", NULL},
	};

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *argv[6] = {0};
		for (int k = 0; k < 4 && bad[i][k]; k++)
			argv[k] = (char *)bad[i][k];
		struct out r = run_argv(bad[i][0], argv);
		cr_assert_eq(r.code, 64, "%s %s: exit %d", bad[i][0], bad[i][1],
			     r.code);
		cr_assert(strstr(r.err, ": usage: ") && strstr(r.err, "--help"),
			  "%s %s: no usage message: %s", bad[i][0], bad[i][1],
			  r.err);
		cr_assert_str_eq(r.out, "");
		out_free(&r);
	}
	cr_assert_eq(shm_count(), 0);
}

Test(tools, help_and_version_exit_0)
{
	static const char *const tools[] = {SHMCLEAN, SHMLS};

	for (int i = 0; i < 2; i++) {
		struct out r = run_nodir(tools[i], "--help", NULL);
		cr_assert_eq(r.code, 0);
		cr_assert(strstr(r.out, "Usage:") && strstr(r.out, "--json"),
			  "%s", r.out);
		out_free(&r);
		r = run_nodir(tools[i], "--version", NULL);
		cr_assert_eq(r.code, 0);
		cr_assert(strstr(r.out, SHMK_VERSION_STRING), "%s", r.out);
		out_free(&r);
	}
}

Test(tools, a_symlinked_namespace_directory_is_refused_not_followed)
{
	static const char *const names[] = {"behind", NULL};
	static const size_t sizes[] = {4096};
	char hidden[PATH_MAX + 16];

	tkilled_owner(names, sizes, 0);
	/* Not a valid namespace name, so --all does not list it. */
	snprintf(hidden, sizeof hidden, "%s/.hidden", T.dir);
	cr_assert_eq(rename(T.ns_dir, hidden), 0);
	cr_assert_eq(symlink(hidden, T.ns_dir), 0);

	struct out c = run(SHMCLEAN, NULL);
	struct out cn = run(SHMCLEAN, "--namespace", T.ns, NULL);
	struct out l = run(SHMLS, NULL);
	bool kept = shm_exists("behind");
	unlink(T.ns_dir);
	cr_assert_eq(rename(hidden, T.ns_dir), 0);

	cr_assert(kept, "shmclean followed a symlinked namespace directory");
	cr_assert_eq(c.code, 75, "%d\n%s\n%s", c.code, c.out, c.err);
	cr_assert(strstr(c.err, "symlink") && strstr(c.err, T.ns_dir), "%s",
		  c.err);
	cr_assert_eq(cn.code, 78, "%d %s", cn.code, cn.err);
	cr_assert(strstr(cn.err, "symlink"), "%s", cn.err);
	cr_assert_eq(l.code, 78, "%d\n%s\n%s", l.code, l.out, l.err);
	cr_assert(strstr(l.err, "symlink") && strstr(l.err, T.ns), "%s", l.err);
	out_free(&c);
	out_free(&cn);
	out_free(&l);

	/* Back in place, it is reaped as usual. */
	c = run(SHMCLEAN, NULL);
	cr_assert_eq(c.code, 0, "%s", c.err);
	out_free(&c);
	cr_assert_eq(shm_count(), 0);
}
