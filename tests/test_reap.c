/* SPDX-License-Identifier: MIT */
/* test_reap.c - reaping: hostile records, foreign names, strays, and
 * reapers racing each other and a live service. */
#include "helpers.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(reap, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define DEAD_ID "p4000000-1-00c0ffee"

static void make_object(const char *fullname)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", T.shm_dir, fullname);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
}

static void remove_object(const char *fullname)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", T.shm_dir, fullname);
	unlink(p);
}

/* A valid record of a dead owner naming "<ns>.victim", as text. */
static int good_record(char *buf, size_t sz, const char *seg_fullname)
{
	struct shmk_ident who = {.pid = 4000000, .start_time = 1, .uid = geteuid()};
	struct shmk_rec_seg s = {.size = 4096, .created = 1, .state = SHMK_SEG_INTENT};
	int n = shmk__fmt_header_open(buf, sz, T.ns, DEAD_ID, &who, "", 1);
	snprintf(s.name, sizeof s.name, "/%s", seg_fullname);
	n += shmk__fmt_seg(buf + n, sz - (size_t)n, &s);
	n += snprintf(buf + n, sz - (size_t)n, "]}\n");
	return n;
}

/* Dead owner (free lock file) whose record is content; victim exists.
 * Reap must quarantine the record and unlink nothing. */
static void expect_quarantined(const char *content, size_t len,
			       const char *why_part)
{
	char victim[128];
	int rc;

	snprintf(victim, sizeof victim, "%s.victim", T.ns);
	make_object(victim);
	put_file(DEAD_ID ".lock", "", 0);
	if (content)
		put_file(DEAD_ID ".jsonl", content, len);
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, -EIO, "reap of a bad record returned %d", rc);
	cr_assert_eq(rep->quarantined, 1, "%s", why_part);
	cr_assert_eq(rep->segments_reaped, 0);
	bool found = false;
	for (size_t i = 0; i < rep->n_items; i++)
		if (rep->items[i].action == SHMK_REAP_RECORD_QUARANTINED) {
			found = true;
			cr_assert(strstr(rep->items[i].reason, DEAD_ID ".jsonl") &&
					  strstr(rep->items[i].reason, why_part),
				  "reason \"%s\" lacks \"%s\"",
				  rep->items[i].reason, why_part);
		}
	cr_assert(found);
	shmk_reap_report_free(rep);
	cr_assert(shm_file_exists(victim), "a bad record was grounds to unlink");
	cr_assert_eq(quarantined_files(), 1, "record not in quarantine/");
	cr_assert_eq(ns_files(".jsonl"), 0);
	remove_object(victim);
}

Test(reap, quarantines_truncated_json_and_unlinks_nothing)
{
	char buf[2048];
	int n = good_record(buf, sizeof buf, "x");
	char victim_rec[2048];
	snprintf(victim_rec, sizeof victim_rec, "%.*s", n / 2, buf);
	expect_quarantined(victim_rec, strlen(victim_rec), "truncated");
}

Test(reap, quarantines_a_record_naming_a_segment_outside_its_namespace)
{
	char buf[2048];
	int n = good_record(buf, sizeof buf, "othernamespace.victim");
	expect_quarantined(buf, (size_t)n, "not valid");
}

Test(reap, quarantines_a_record_with_dotdot_or_slash_in_a_name)
{
	char buf[2048], name[128];
	snprintf(name, sizeof name, "%s.../../etc/passwd", T.ns);
	int n = good_record(buf, sizeof buf, name);
	expect_quarantined(buf, (size_t)n, "not valid");
}

Test(reap, quarantines_a_future_version_record)
{
	char buf[2048];
	good_record(buf, sizeof buf, "x");
	char *v = strstr(buf, "\"version\":1");
	cr_assert_not_null(v);
	v[10] = '7';
	expect_quarantined(buf, strlen(buf), "future format version 7");
}

Test(reap, quarantines_ten_thousand_nested_arrays)
{
	size_t n = 20000;
	char *buf = malloc(n + 2);
	memset(buf, '[', n / 2);
	memset(buf + n / 2, ']', n / 2);
	buf[n] = '\n';
	expect_quarantined(buf, n + 1, "nested");
	free(buf);
}

Test(reap, quarantines_a_100_megabyte_record_without_reading_it)
{
	char p[PATH_MAX];
	put_file(DEAD_ID ".jsonl", "", 0);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".jsonl", T.ns_dir);
	cr_assert_eq(truncate(p, 100 << 20), 0);
	expect_quarantined(NULL, 0, "too large");
}

Test(reap, quarantines_a_symlink_in_place_of_a_record)
{
	char target[PATH_MAX], link[PATH_MAX], buf[2048];
	int n = good_record(buf, sizeof buf, "x");

	snprintf(target, sizeof target, "%s/elsewhere.jsonl", T.dir);
	FILE *f = fopen(target, "w");
	fwrite(buf, 1, (size_t)n, f);
	fclose(f);
	mkdir(T.ns_dir, 0700);
	snprintf(link, sizeof link, "%s/" DEAD_ID ".jsonl", T.ns_dir);
	cr_assert_eq(symlink(target, link), 0);
	expect_quarantined(NULL, 0, "symlink");
	struct stat st;
	cr_assert_eq(stat(target, &st), 0, "the symlink's target was touched");
}

Test(reap, quarantines_a_record_owned_by_another_user)
{
	char buf[2048], p[PATH_MAX];
	if (geteuid() != 0)
		cr_skip_test("needs root to chown a record to another uid");
	int n = good_record(buf, sizeof buf, "x");
	put_file(DEAD_ID ".jsonl", buf, (size_t)n);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".jsonl", T.ns_dir);
	cr_assert_eq(chown(p, 65534, 65534), 0);
	expect_quarantined(NULL, 0, "owned by uid 65534");
}

Test(reap, never_touches_a_foreign_prefix_or_another_namespace)
{
	char foreign[128], other[128], stray[128];
	int rc;

	tclaim();
	snprintf(foreign, sizeof foreign, "%sx.not-ours", T.ns); /* no dot */
	snprintf(other, sizeof other, "%s-2.seg", T.ns);
	snprintf(stray, sizeof stray, "%s.stray", T.ns);
	make_object(foreign);
	make_object(other);
	make_object(stray);
	/* Ask for strays to be removed, with no minimum age to hide behind. */
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_STRAYS,
				      .stray_min_age = 1};
	struct shmk_reap_report *rep;
	sleep(1);
	rc = shmk_reap(&o, &rep);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->strays_removed, 1);
	cr_assert_str_eq(rep->items[0].object + 1, stray);
	shmk_reap_report_free(rep);
	cr_assert(shm_file_exists(foreign));
	cr_assert(shm_file_exists(other));
	cr_assert_not(shm_file_exists(stray));
	remove_object(foreign);
	remove_object(other);
}

Test(reap, reports_strays_and_keeps_young_ones)
{
	char stray[128];
	int rc;

	tclaim();
	snprintf(stray, sizeof stray, "%s.young", T.ns);
	make_object(stray);
	struct shmk_reap_report *rep = treap(0, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(rep->strays_kept, 1);
	cr_assert_eq(rep->bytes_strays, 4096);
	shmk_reap_report_free(rep);
	rep = treap(SHMK_REAP_STRAYS, &rc); /* default minimum age: 60 s */
	cr_assert_eq(rep->strays_kept, 1);
	cr_assert_eq(rep->strays_removed, 0);
	cr_assert(strstr(rep->items[0].reason, "old"), "%s", rep->items[0].reason);
	shmk_reap_report_free(rep);
	cr_assert(shm_file_exists(stray));
	remove_object(stray);
}

Test(reap, dry_run_changes_nothing)
{
	char buf[2048], victim[128];
	int n, rc;

	snprintf(victim, sizeof victim, "%s.x", T.ns);
	n = good_record(buf, sizeof buf, victim);
	make_object(victim);
	put_file(DEAD_ID ".lock", "", 0);
	put_file(DEAD_ID ".jsonl", buf, (size_t)n);
	struct shmk_reap_report *rep = treap(SHMK_REAP_DRY_RUN, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 1); /* would be */
	shmk_reap_report_free(rep);
	cr_assert(shm_file_exists(victim));
	cr_assert_eq(ns_files(NULL), 2);
	rep = treap(0, &rc);
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_not(shm_file_exists(victim));
	cr_assert_eq(ns_files(NULL), 0);
}

Test(reap, a_dead_owners_intent_never_unlinks_a_name_a_live_owner_holds)
{
	/* The dead owner recorded an intent for "shared" but died before
	 * creating it; a live owner has since created that name. */
	shmk_ctx *c = topen();
	shmk_segment *s;
	char buf[2048], name[128];
	int rc;

	cr_assert_eq(shmk_segment_create(c, "shared", 4096, &s), 0);
	snprintf(name, sizeof name, "%s.shared", T.ns);
	int n = good_record(buf, sizeof buf, name);
	put_file(DEAD_ID ".lock", "", 0);
	put_file(DEAD_ID ".jsonl", buf, (size_t)n);
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 0);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("shared"), "a live owner's segment was reaped");
	shmk_segment_destroy(s);
	shmk_close(c);
}

Test(reap, a_dead_owners_live_entry_never_unlinks_a_newer_object_of_that_name)
{
	/* The record says "live" with an inode; the object now under the name
	 * is another one (the name was reused after an unrecorded unlink). */
	char buf[2048], victim[128];
	struct shmk_ident who = {.pid = 4000000, .start_time = 1, .uid = geteuid()};
	struct shmk_rec_seg s = {.size = 4096, .created = 1,
				 .state = SHMK_SEG_LIVE, .ino = 1};
	int rc;

	snprintf(victim, sizeof victim, "%s.reused", T.ns);
	make_object(victim);
	int n = shmk__fmt_header_open(buf, sizeof buf, T.ns, DEAD_ID, &who, "", 1);
	snprintf(s.name, sizeof s.name, "/%s", victim);
	n += shmk__fmt_seg(buf + n, sizeof buf - (size_t)n, &s);
	n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
	put_file(DEAD_ID ".lock", "", 0);
	put_file(DEAD_ID ".jsonl", buf, (size_t)n);
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(rep->segments_reaped, 0);
	shmk_reap_report_free(rep);
	cr_assert(shm_file_exists(victim));
	remove_object(victim);
}

/* --- two reapers and a live service at once ------------------------------ */

static int service(void *arg)
{
	/* Creates, checks and destroys its own segments for a while; fails if
	 * any of its segments vanishes under it. */
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s;
	(void)arg;
	for (int i = 0; i < 400; i++) {
		char n[16];
		snprintf(n, sizeof n, "svc%d", i % 5);
		if (shmk_segment_create(c, n, 4096, &s) != 0)
			return 1;
		strcpy(shmk_segment_addr(s), "x");
		if (!shm_exists(n))
			return 2; /* reaped under us */
		if (shmk_segment_destroy(s) != 0)
			return 3;
	}
	return shmk_close(c) == 0 ? 0 : 4;
}

static int reaper(void *arg)
{
	(void)arg;
	for (int i = 0; i < 150; i++) {
		struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
					      .shm_dir = T.shm_dir};
		struct shmk_reap_report *rep;
		int rc = shmk_reap(&o, &rep);
		if (rc != 0 || rep->errors || rep->quarantined ||
		    rep->owners_unknown) {
			for (size_t k = 0; k < rep->n_items; k++)
				if (rep->items[k].action == SHMK_REAP_ERROR ||
				    rep->items[k].action == SHMK_REAP_OWNER_UNKNOWN ||
				    rep->items[k].action == SHMK_REAP_RECORD_QUARANTINED)
					fprintf(stderr, "reaper: %s %s: %s\n",
						shmk_reap_action_name(rep->items[k].action),
						rep->items[k].object, rep->items[k].reason);
			return 10;
		}
		for (size_t k = 0; k < rep->n_items; k++)
			if (strstr(rep->items[k].object, ".svc"))
				if (rep->items[k].action == SHMK_REAP_SEGMENT_REAPED ||
				    rep->items[k].action == SHMK_REAP_STRAY_REMOVED)
					return 11;
		shmk_reap_report_free(rep);
	}
	return 0;
}

static int victim_proc(void *arg)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s;
	for (int i = 0; i < 10; i++) {
		char n[16];
		snprintf(n, sizeof n, "v%d_%d", *(int *)arg, i);
		if (shmk_segment_create(c, n, 4096, &s) != 0)
			return 1;
	}
	kill(getpid(), SIGKILL);
	return 2;
}

Test(reap, two_reapers_and_a_live_service_never_step_on_each_other)
{
	pid_t svc = spawn(service, NULL);
	pid_t r1 = spawn(reaper, NULL), r2 = spawn(reaper, NULL);
	for (int i = 0; i < 30; i++)
		reap_child(spawn(victim_proc, &i));
	int st;
	st = reap_child(svc);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "service: %x", st);
	st = reap_child(r1);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reaper 1: %x", st);
	st = reap_child(r2);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reaper 2: %x", st);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0);
	if (shm_count()) {
		for (size_t k = 0; k < rep->n_items; k++)
			fprintf(stderr, "final: %s %s: %s\n",
				shmk_reap_action_name(rep->items[k].action),
				rep->items[k].object, rep->items[k].reason);
		char cmd[600];
		snprintf(cmd, sizeof cmd, "ls -la %s %s/quarantine >&2", T.ns_dir, T.ns_dir);
		system(cmd);
	}
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* --- as a plain user: the listing path ------------------------------------- */

static int die_with_five(void *arg)
{
	struct shmk_options o = topts();
	shmk_ctx *c;
	shmk_segment *s;

	o.dir = arg;
	o.flags = SHMK_OPEN_NO_REAP;
	if (shmk_open(&o, &c) < 0)
		return 1;
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof n, "u%d", i);
		if (shmk_segment_create(c, n, 4096, &s) < 0)
			return 2;
	}
	kill(getpid(), SIGKILL);
	return 3;
}

Test(reap, a_plain_user_reaps_by_listing_and_the_kernel_spares_others)
{
	/* Not root, in a sticky shm directory: the reaper trusts the listing
	 * for inodes and the kernel for ownership.  A record naming root's
	 * object with its very inode must still not get it unlinked. */
	char root_obj[128], path[PATH_MAX];
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root to drop to another user");
	snprintf(root_obj, sizeof root_obj, "%s.rootobj", T.ns);
	make_object(root_obj);
	snprintf(path, sizeof path, "%s/%s", T.shm_dir, root_obj);
	cr_assert_eq(stat(path, &st), 0);

	pid_t pid = fork();
	if (pid == 0) {
		char dir[64] = "/tmp/shmk-user-XXXXXX", buf[2048];
		struct shmk_reap_report *rep;
		struct shmk_reap_options ro = {.dir = dir, .ns = T.ns,
					       .shm_dir = T.shm_dir,
					       .flags = SHMK_REAP_NO_STRAYS};
		int code = 0;

		if (setgid(65534) < 0 || setuid(65534) < 0 || !mkdtemp(dir))
			_exit(90);
		int st2 = reap_child(spawn(die_with_five, dir));
		if (!WIFSIGNALED(st2))
			_exit(91);
		/* A dead owner whose record claims root's object, inode and
		 * all. */
		struct shmk_ident who = {.pid = 4000000, .start_time = 1,
					 .uid = geteuid()};
		struct shmk_rec_seg s = {.size = 4096, .created = 1,
					 .state = SHMK_SEG_LIVE,
					 .ino = (uint64_t)st.st_ino};
		int n = shmk__fmt_header_open(buf, sizeof buf, T.ns, DEAD_ID,
					      &who, "", 1);
		snprintf(s.name, sizeof s.name, "/%s", root_obj);
		n += shmk__fmt_seg(buf + n, sizeof buf - (size_t)n, &s);
		n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
		char f[PATH_MAX];
		snprintf(f, sizeof f, "%s/%s/" DEAD_ID ".jsonl", dir, T.ns);
		FILE *fp = fopen(f, "w");
		fwrite(buf, 1, (size_t)n, fp);
		fclose(fp);
		snprintf(f, sizeof f, "%s/%s/" DEAD_ID ".lock", dir, T.ns);
		fclose(fopen(f, "w"));

		shmk_reap(&ro, &rep);
		if (!rep || rep->segments_reaped != 5)
			code = 92;
		else if (rep->errors != 1)
			code = 93; /* root's object: EPERM, reported */
		shmk_reap_report_free(rep);
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		if (system(cmd) != 0)
			code = code ? code : 94;
		_exit(code);
	}
	int st3 = reap_child(pid);
	cr_assert(WIFEXITED(st3) && WEXITSTATUS(st3) == 0, "user child: %x", st3);
	cr_assert(shm_file_exists(root_obj), "root's object was unlinked");
	remove_object(root_obj);
	cr_assert_eq(shm_count(), 0);
}
