/* SPDX-License-Identifier: MIT */
/* test_registry.c - atomic replacement and the owner's record. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(registry, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

static int ns_dirfd(void)
{
	mkdir(T.ns_dir, 0700);
	int fd = open(T.ns_dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	return fd;
}

static void assert_content(const char *name, const char *want)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", T.ns_dir, name);
	char *got = slurp(p, NULL);
	cr_assert_not_null(got, "%s is missing", p);
	cr_assert_str_eq(got, want);
	free(got);
}

Test(registry, keeps_the_old_file_when_any_step_before_rename_fails)
{
	static const char *const fps[] = {"shmk/replace/open",
					  "shmk/replace/write",
					  "shmk/replace/fsync",
					  "shmk/replace/rename", NULL};
	int dfd = ns_dirfd();

	cr_assert_eq(shmk__replace(dfd, T.ns_dir, "r.jsonl", "old\n", 4, true,
				   NULL), 0);
	for (int i = 0; fps[i]; i++) {
		fiu_enable(fps[i], 1, NULL, FIU_ONETIME);
		int rc = shmk__replace(dfd, T.ns_dir, "r.jsonl", "new-new\n", 8,
				       true, NULL);
		cr_assert_lt(rc, 0, "%s did not fail", fps[i]);
		cr_assert(strstr(shmk_last_error(), "r.jsonl") &&
				  strstr(shmk_last_error(), "old version kept"),
			  "%s: %s", fps[i], shmk_last_error());
		assert_content("r.jsonl", "old\n");
		cr_assert_eq(ns_files(".tmp"), 0, "%s left a temp file", fps[i]);
	}
	cr_assert_eq(shmk__replace(dfd, T.ns_dir, "r.jsonl", "new\n", 4, true,
				   NULL), 0);
	assert_content("r.jsonl", "new\n");
	close(dfd);
}

Test(registry, reports_a_failed_directory_fsync_after_the_new_file_is_in_place)
{
	int dfd = ns_dirfd();

	cr_assert_eq(shmk__replace(dfd, T.ns_dir, "r.jsonl", "old\n", 4, true,
				   NULL), 0);
	fiu_enable("shmk/replace/dirsync", 1, NULL, FIU_ONETIME);
	cr_assert_eq(shmk__replace(dfd, T.ns_dir, "r.jsonl", "new\n", 4, true,
				   NULL), -EIO);
	cr_assert(strstr(shmk_last_error(), "fsync directory"), "%s",
		  shmk_last_error());
	assert_content("r.jsonl", "new\n"); /* complete, just maybe not durable */
	cr_assert_eq(ns_files(".tmp"), 0);
	close(dfd);
}

Test(registry, never_follows_a_symlink_planted_at_the_temp_name)
{
	char target[PATH_MAX], link[PATH_MAX];
	int dfd = ns_dirfd();

	snprintf(target, sizeof target, "%s/victim", T.dir);
	int fd = open(target, O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(write(fd, "precious", 8), 8);
	close(fd);
	snprintf(link, sizeof link, "%s/.r.jsonl.tmp", T.ns_dir);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(shmk__replace(dfd, T.ns_dir, "r.jsonl", "x\n", 2, false,
				   NULL), 0);
	char *v = slurp(target, NULL);
	cr_assert_str_eq(v, "precious");
	free(v);
	assert_content("r.jsonl", "x\n");
	close(dfd);
}

static struct shmk_record load_own(void)
{
	struct shmk_record r;
	char why[256], name[256] = "";
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".jsonl") && e->d_name[0] != '.')
			snprintf(name, sizeof name, "%s", e->d_name);
	if (d)
		closedir(d);
	cr_assert(name[0], "no record in %s", T.ns_dir);
	int dfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY);
	int rc = shmk__record_load(dfd, name, T.ns, &r, why, sizeof why);
	close(dfd);
	cr_assert_eq(rc, 0, "record %s: %s", name, why);
	return r;
}

Test(registry, record_names_exactly_the_live_segments_and_stays_compact)
{
	shmk_ctx *c = topen();
	shmk_segment *s[300];

	for (int i = 0; i < 300; i++) {
		char n[16];
		snprintf(n, sizeof n, "s%d", i);
		cr_assert_eq(shmk_segment_create(c, n, 4096, &s[i]), 0);
	}
	for (int i = 0; i < 300; i += 2)
		cr_assert_eq(shmk_segment_destroy(s[i]), 0);
	struct shmk_record r = load_own();
	cr_assert_eq(r.n_segs, 150);
	for (size_t i = 0; i < r.n_segs; i++) {
		cr_assert_eq(r.segs[i]->state, SHMK_SEG_LIVE);
		cr_assert_neq(r.segs[i]->ino, 0);
		int k = atoi(strrchr(r.segs[i]->name, '.') + 2);
		cr_assert(k % 2 == 1, "destroyed %s still listed", r.segs[i]->name);
	}
	cr_assert_eq(r.owner.pid, getpid());
	cr_assert_eq(r.owner.uid, geteuid());
	shmk__record_free(&r);

	/* The journal is folded into a new snapshot before it holds more than
	 * 256 KiB + twice the snapshot (owner.c), whatever the churn. */
	for (int i = 0; i < 4000; i++) {
		shmk_segment *t;
		cr_assert_eq(shmk_segment_create(c, "churn", 4096, &t), 0);
		cr_assert_eq(shmk_segment_destroy(t), 0);
	}
	r = load_own();
	cr_assert_eq(r.n_segs, 150);
	cr_assert_lt(r.n_ops, 8000, "the journal was never folded");
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(T.ns_dir);
	struct stat st = {0};
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".jsonl")) {
			snprintf(path, sizeof path, "%s/%s", T.ns_dir, e->d_name);
			stat(path, &st);
		}
	closedir(d);
	cr_assert_lt(st.st_size, (256 << 10) + 3 * 150 * 120 + 1024,
		     "record is %lld bytes", (long long)st.st_size);
	shmk__record_free(&r);
	for (int i = 1; i < 300; i += 2)
		shmk_segment_detach(s[i]);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(registry, a_failed_append_fails_the_create_and_the_next_one_rewrites_the_file)
{
	shmk_ctx *c = topen();
	shmk_segment *a, *b = NULL, *d;

	cr_assert_eq(shmk_segment_create(c, "a", 4096, &a), 0);
	/* Short write then error: the file now ends with a torn line. */
	fiu_enable("shmk/append/write", 1, NULL, FIU_ONETIME);
	cr_assert_eq(shmk_segment_create(c, "b", 4096, &b), -ENOSPC);
	cr_assert_null(b);
	cr_assert_not(shm_exists("b"), "object created without its intent");
	struct shmk_record r = load_own();
	cr_assert(r.torn, "the injected short write should leave a torn line");
	cr_assert_eq(r.n_segs, 1);
	shmk__record_free(&r);
	/* Next operation rewrites the file before appending again. */
	cr_assert_eq(shmk_segment_create(c, "d", 4096, &d), 0);
	r = load_own();
	cr_assert_not(r.torn);
	cr_assert_eq(r.n_segs, 2);
	shmk__record_free(&r);
	shmk_segment_destroy(a);
	shmk_segment_destroy(d);
	cr_assert_eq(shmk_close(c), 0);
}

Test(registry, durable_mode_fails_cleanly_when_fsync_fails)
{
	struct shmk_options o = topts();
	shmk_ctx *c;
	shmk_segment *a = NULL;

	o.durability = SHMK_DURABLE_ON;
	cr_assert_eq(shmk_open(&o, &c), 0);
	fiu_enable("shmk/append/fsync", 1, NULL, FIU_ONETIME);
	cr_assert_eq(shmk_segment_create(c, "a", 4096, &a), -EIO);
	cr_assert(strstr(shmk_last_error(), "fsync"), "%s", shmk_last_error());
	cr_assert_not(shm_exists("a"));
	cr_assert_eq(shmk_segment_create(c, "a", 4096, &a), 0);
	shmk_segment_destroy(a);
	cr_assert_eq(shmk_close(c), 0);
}

static int kill_self(const char *name, int *failnum, void **failinfo,
		     unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	kill(getpid(), SIGKILL);
	return 1;
}

static int torn_child(void *arg)
{
	(void)arg;
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *a, *b;
	if (shmk_segment_create(c, "a", 4096, &a) != 0)
		return 1;
	fiu_enable("shmk/test/append/half", 1, NULL, 0);
	fiu_enable_external("shmk/crash/append/after_half", 1, NULL, 0, kill_self);
	shmk_segment_create(c, "b", 4096, &b);
	return 2; /* not reached */
}

Test(registry, a_line_torn_by_a_crash_reads_as_the_old_document)
{
	int st = reap_child(spawn(torn_child, NULL));
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %x", st);
	struct shmk_record r = load_own();
	cr_assert(r.torn);
	cr_assert_eq(r.n_segs, 1);
	cr_assert_str_eq(strrchr(r.segs[0]->name, '.'), ".a");
	shmk__record_free(&r);
	cr_assert(shm_exists("a"));
	cr_assert_not(shm_exists("b"));
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}
