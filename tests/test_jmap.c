/* SPDX-License-Identifier: MIT */
/* test_jmap.c - the mapped journal of an owner that adopts names
 * (lib/journal_map.c): the record says what the owner holds through every
 * rewrite, two files take turns, a reader is never written under, and
 * each way a rewrite can fail or be cut short leaves a record that reads
 * and a reaper that finishes. */
#include "helpers.h"
#include "ctx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The adopted names here are "<ns>_...", which tenv_teardown does not
 * look for: none may be left either. */
static void jmap_fini(void)
{
	char pre[64], p[PATH_MAX];
	DIR *d = opendir(T.shm_dir);
	struct dirent *e;
	int left = 0;

	snprintf(pre, sizeof pre, "%s_", T.ns);
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, pre, strlen(pre)) == 0) {
			snprintf(p, sizeof p, "%s/%s", T.shm_dir, e->d_name);
			left += unlink(p) == 0;
		}
	if (d)
		closedir(d);
	tenv_teardown();
	cr_assert_eq(left, 0, "%d object(s) of the test left in %s", left,
		     T.shm_dir);
}

/* The mapped record is kept on file systems that write in place: the
 * namespace directory is a tmpfs of its own here, whatever /tmp is. */
static void jmap_init(void)
{
	tenv_setup();
	tns_tmpfs("16m");
}

TestSuite(jmap, .init = jmap_init, .fini = jmap_fini, .timeout = 60);

/* A context whose owner adopts names, as the preload's. */
static shmk_ctx *jopen(void)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);

	cr_assert_not_null(c);
	c->adopt = true;
	return c;
}

/* "/<ns>_<tag><i>": an adopted name no other test uses. */
static const char *jname(const char *tag, int i)
{
	static char b[4][96];
	static int k;
	char *p = b[k++ % 4];

	snprintf(p, sizeof b[0], "/%s_%s%d", T.ns, tag, i);
	return p;
}

/* What the preload does around a create that made inode ino. */
static int made(shmk_ctx *c, const char *full, uint64_t ino)
{
	struct shmk_rec_seg prev, *e;
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = shmk__adopt_intent(c, full, SHMK_KIND_ADOPTED_SHM, &prev, &e);
	if (rc == 0)
		shmk__adopt_live(c, e, ino);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void gone(shmk_ctx *c, const char *full)
{
	pthread_mutex_lock(&c->mu);
	shmk__adopt_drop(c, full);
	pthread_mutex_unlock(&c->mu);
}

static int nsdir(void)
{
	int fd = open(T.ns_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	return fd;
}

static char *file_of(shmk_ctx *c, bool old)
{
	static char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/%s%s%s", T.ns_dir, old ? "." : "",
		 c->own.rec_name, old ? ".tmp" : "");
	return p;
}

/* The record reads, and says what the owner's table holds: every entry
 * held is recorded, with its state and inode; the record may say more
 * (a drop not yet written, an entry a snapshot found gone), but only of
 * names that no longer hold the recorded object. */
static void expect_record_is_table(shmk_ctx *c, const char *when)
{
	struct shmk_record r;
	char why[256];
	int fd = nsdir();
	int rc = shmk__owner_record_load(fd, c->own.id, T.ns, geteuid(), &r, why,
					 sizeof why);
	size_t held = 0;

	close(fd);
	cr_assert_eq(rc, 0, "%s: %s", when, why);
	for (size_t i = 0; i < r.n_segs; i++) {
		struct shmk_rec_seg *t =
			shmk__table_get(&c->own.segs, r.segs[i]->name);
		struct stat st;
		char file[PATH_MAX];

		cr_assert_eq(r.segs[i]->kind, SHMK_KIND_ADOPTED_SHM);
		if (!t) {
			snprintf(file, sizeof file, "%s%s", T.shm_dir,
				 r.segs[i]->name);
			cr_assert(stat(file, &st) < 0 ||
					  st.st_ino != r.segs[i]->ino,
				  "%s: %s recorded, not held, and still there",
				  when, r.segs[i]->name);
			continue;
		}
		held++;
		cr_assert_eq(t->state, r.segs[i]->state, "%s: %s", when, t->name);
		cr_assert_eq(t->ino, r.segs[i]->ino, "%s: %s", when, t->name);
	}
	cr_assert_eq(held, c->own.segs.used, "%s: %zu of %zu held recorded",
		     when, held, c->own.segs.used);
	shmk__record_free(&r);
}

/* Counts the hits of a failpoint, failing none. */
static int hits_files, hits_publish;

static int count_hit(const char *name, int *failnum, void **failinfo,
		     unsigned *flags)
{
	(void)failnum; (void)failinfo; (void)flags;
	if (strcmp(name, "shmk/sys/openat") == 0)
		hits_files++;
	else
		hits_publish++;
	return 0;
}

Test(jmap, the_record_says_what_the_owner_holds_through_every_rewrite)
{
	shmk_ctx *c = jopen();
	struct stat st;

	for (int i = 0; i < 10; i++)
		cr_assert_eq(made(c, jname("keep", i), 100 + (uint64_t)i), 0,
			     "%s", shmk_last_error());
	expect_record_is_table(c, "after the first entries");
	hits_files = hits_publish = 0;
	fiu_enable_external("shmk/sys/openat", 1, NULL, 0, count_hit);
	fiu_enable_external("shmk/crash/jmap/after_publish", 1, NULL, 0,
			    count_hit);
	for (int i = 0; i < 6000; i++) {
		const char *n = jname("churn", i % 7);

		cr_assert_eq(made(c, n, 1000 + (uint64_t)i), 0, "%s",
			     shmk_last_error());
		if (i % 3)
			gone(c, n);
		if (i % 500 == 499)
			expect_record_is_table(c, "while churning");
	}
	fiu_disable("shmk/crash/jmap/after_publish");
	fiu_disable("shmk/sys/openat");
	/* Rewritten many times (6,000 x ~150 bytes of lines against a
	 * reserve of at most 64 KiB), in two files that took turns: a file
	 * was made for the second version only. */
	cr_assert_geq(hits_publish, 4, "%d rewrites", hits_publish);
	cr_assert_leq(hits_files, 1, "%d files made for %d rewrites: the old "
				     "version was not rewritten in place",
		      hits_files, hits_publish);
	cr_assert_eq(stat(file_of(c, true), &st), 0,
		     "the version before is kept under the temporary name");
	cr_assert_eq(stat(file_of(c, false), &st), 0);
	cr_assert_leq(st.st_size, (off_t)(64 << 10) + 64 * 1024,
		      "a record of %lld bytes", (long long)st.st_size);
	cr_assert_eq(shmk_close(c), 0, "%s", shmk_last_error());
	cr_assert_eq(ns_files(NULL), 0, "close leaves no file, old version "
					"included");
}

Test(jmap, the_reserve_is_spaces_that_both_parsers_take_for_a_torn_tail)
{
	shmk_ctx *c = jopen();
	char *buf, why[256];
	struct shmk_record f, s;
	int fd;
	struct stat st;
	ssize_t n;

	cr_assert_eq(made(c, jname("a", 0), 7), 0);
	cr_assert_eq(made(c, jname("b", 0), 8), 0);
	gone(c, jname("a", 0));
	fd = open(file_of(c, false), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	cr_assert_eq(n, st.st_size);
	cr_assert_eq(st.st_size % getpagesize(), 0);
	cr_assert_eq(buf[n - 1], ' ', "the file ends in its reserve");
	cr_assert_eq(shmk__record_parse_fast(buf, (size_t)n, T.ns, &f, why,
					     sizeof why),
		     0, "fast path: %s", why);
	cr_assert_eq(shmk__record_parse_slow(buf, (size_t)n, T.ns, &s, why,
					     sizeof why),
		     0, "slow path: %s", why);
	cr_assert(f.torn && s.torn);
	cr_assert_eq(f.n_segs, 1);
	cr_assert_eq(s.n_segs, 1);
	cr_assert_str_eq(f.segs[0]->name, jname("b", 0));
	cr_assert_eq(f.segs[0]->ino, 8);
	shmk__record_free(&f);
	shmk__record_free(&s);
	free(buf);
	shmk_close(c);
}

/* Until the old version exists, and then once more. */
static void churn_until_old(shmk_ctx *c)
{
	struct stat st;

	for (int i = 0; i < 20000 && stat(file_of(c, true), &st) < 0; i++) {
		cr_assert_eq(made(c, jname("u", 0), 5 + (uint64_t)i), 0);
		gone(c, jname("u", 0));
	}
	cr_assert_eq(stat(file_of(c, true), &st), 0, "no old version");
}

Test(jmap, a_reader_of_the_old_version_is_never_written_under)
{
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	shmk_ctx *c = jopen();
	char *before, *after;
	struct stat st;
	int fd;

	cr_assert_eq(made(c, jname("k", 0), 77), 0);
	churn_until_old(c);
	/* A reader that opened the record before the last swap holds what
	 * is now the old version, read-locked, as record_load.c does. */
	fd = open(file_of(c, true), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	before = malloc((size_t)st.st_size);
	after = malloc((size_t)st.st_size);
	cr_assert_eq(pread(fd, before, (size_t)st.st_size, 0), st.st_size);
	/* Three more rewrites at least: each finds the reader in the way. */
	for (int i = 0; i < 6000; i++) {
		cr_assert_eq(made(c, jname("v", i % 5), 900 + (uint64_t)i), 0,
			     "%s", shmk_last_error());
		gone(c, jname("v", i % 5));
	}
	cr_assert_eq(pread(fd, after, (size_t)st.st_size, 0), st.st_size);
	cr_assert_eq(memcmp(before, after, (size_t)st.st_size), 0,
		     "the version a reader holds was written under it");
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_nlink, 0, "its name went to a new file");
	expect_record_is_table(c, "after the rewrites");
	close(fd);
	free(before);
	free(after);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* A load meets failpoint fp once: it tries again and reads; every time:
 * it fails with -EAGAIN and why holds said. */
static void expect_load_tries_again(const char *fp, const char *said)
{
	shmk_ctx *c = jopen();
	struct shmk_record r;
	char why[256];
	int fd = nsdir(), rc;

	cr_assert_eq(made(c, jname("r", 0), 3), 0);
	fiu_enable(fp, 1, NULL, FIU_ONETIME);
	rc = shmk__owner_record_load(fd, c->own.id, T.ns, geteuid(), &r, why,
				     sizeof why);
	fiu_disable(fp);
	cr_assert_eq(rc, 0, "%s once, then again: %s", fp, why);
	cr_assert_eq(r.n_segs, 1);
	shmk__record_free(&r);
	fiu_enable(fp, 1, NULL, 0);
	rc = shmk__owner_record_load(fd, c->own.id, T.ns, geteuid(), &r, why,
				     sizeof why);
	fiu_disable(fp);
	cr_assert_eq(rc, -EAGAIN, "%s always: rc %d", fp, rc);
	cr_assert_not_null(strstr(why, said), "%s", why);
	close(fd);
	shmk_close(c);
}

/* Its read lock refused: what it opened is a version being rewritten. */
Test(jmap, a_reader_finding_a_version_rewritten_opens_the_name_again)
{
	expect_load_tries_again("shmk/record/read_lock", "being rewritten");
}

/* Two readings differ: the newer is checked against a third. */
/* Two readings differ: the newer is checked against a third. */
Test(jmap, a_record_that_changes_while_read_is_read_again)
{
	expect_load_tries_again("shmk/record/unstable", "changed under");
}

Test(jmap, without_a_name_exchange_each_version_is_renamed_into_place)
{
	shmk_ctx *c = jopen();
	struct stat st;

	fiu_enable("shmk/jmap/exchange", 1, NULL, 0);
	cr_assert_eq(made(c, jname("k", 0), 11), 0);
	for (int i = 0; i < 4000; i++) {
		cr_assert_eq(made(c, jname("x", i % 3), 50 + (uint64_t)i), 0,
			     "%s", shmk_last_error());
		if (i % 2)
			gone(c, jname("x", i % 3));
		if (i % 800 == 0)
			expect_record_is_table(c, "renamed versions");
	}
	fiu_disable("shmk/jmap/exchange");
	expect_record_is_table(c, "at the end");
	cr_assert_neq(stat(file_of(c, true), &st), 0,
		      "no old version is kept without an exchange");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(jmap, a_record_that_cannot_be_mapped_is_appended_to)
{
	shmk_ctx *c = jopen();
	struct stat st;
	char last;
	int fd;

	fiu_enable("shmk/sys/mmap", 1, NULL, 0);
	cr_assert_eq(made(c, jname("m", 0), 21), 0, "%s", shmk_last_error());
	fiu_disable("shmk/sys/mmap");
	cr_assert(c->own.write_only);
	for (int i = 1; i < 300; i++) {
		cr_assert_eq(made(c, jname("m", i), 21 + (uint64_t)i), 0);
		if (i % 2)
			gone(c, jname("m", i));
	}
	expect_record_is_table(c, "written, not mapped");
	fd = open(file_of(c, false), O_RDONLY);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(pread(fd, &last, 1, st.st_size - 1), 1);
	close(fd);
	cr_assert_eq(last, '\n', "no reserve: the lines are appended");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* Makes and drops objects with the old version refused (as by a reader)
 * and failpoint fp failing with err, until an operation fails (its -errno)
 * or 20,000 went through (0); *ops says how many were tried. */
static int churn_until_error(shmk_ctx *c, const char *fp, int err, int *ops)
{
	int rc = 0, i;

	fiu_enable("shmk/jmap/reader", 1, NULL, 0);
	fiu_enable(fp, 1, (void *)(intptr_t)err, 0);
	for (i = 0; i < 20000 && rc == 0; i++) {
		rc = made(c, jname("e", i % 4), 300 + (uint64_t)i);
		if (rc == 0)
			gone(c, jname("e", i % 4));
	}
	fiu_disable(fp);
	fiu_disable("shmk/jmap/reader");
	*ops = i;
	return rc;
}

Test(jmap, a_rewrite_that_fails_keeps_the_current_version_whole)
{
	shmk_ctx *c = jopen();
	int i, rc = 0;

	cr_assert_eq(made(c, jname("k", 0), 31), 0);
	churn_until_old(c);
	/* The old version refused (a reader), and no new file either. */
	rc = churn_until_error(c, "shmk/sys/openat", EMFILE, &i);
	cr_assert_eq(rc, -EMFILE, "rc %d after %d operations", rc, i);
	cr_assert_not_null(strstr(shmk_last_error(), "cannot create"), "%s",
			   shmk_last_error());
	expect_record_is_table(c, "after the failed rewrite");
	cr_assert_eq(made(c, jname("g", 0), 999), 0, "%s", shmk_last_error());
	expect_record_is_table(c, "after the next one");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* A process that is not the owner's (here a raw clone, which runs no fork
 * handler and so still takes itself for its parent) must not rewrite the
 * record: its descriptors and mapping would exist only in it. */
static int clone_snapshot(void *arg)
{
	shmk_ctx *c = arg;
	long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
	int st;

	if (pid == 0)
		_exit(shmk__owner_snapshot(c) == -EDEADLK ? 0 : 1);
	if (pid < 0 || waitpid((pid_t)pid, &st, 0) != (pid_t)pid)
		return 2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}

Test(jmap, a_snapshot_in_a_process_not_the_owners_is_refused)
{
	shmk_ctx *c = jopen();

	cr_assert_eq(made(c, jname("s", 0), 1), 0);
	cr_assert_eq(clone_snapshot(c), 0);
	expect_record_is_table(c, "after the child");
	shmk_close(c);
}

/* ---- SIGKILL anywhere in a rewrite ------------------------------------- */

static int kill_k;

static int kill_on_kth(const char *name, int *failnum, void **failinfo,
		       unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	if (--kill_k <= 0)
		kill(getpid(), SIGKILL);
	return 0;
}

struct cut {
	const char *point;
	int k;
};

/* Real objects made and unlinked as the preload does, until killed. */
static int cut_child(void *arg)
{
	struct cut *t = arg;
	char fp[96], file[PATH_MAX];
	shmk_ctx *c = jopen();

	kill_k = t->k;
	snprintf(fp, sizeof fp, "shmk/crash/%s", t->point);
	fiu_enable_external(fp, 1, NULL, 0, kill_on_kth);
	for (int i = 0;; i++) {
		const char *n = jname("obj", i);
		struct stat st;
		int fd;
		struct shmk_rec_seg prev, *e;

		pthread_mutex_lock(&c->mu);
		if (shmk__adopt_intent(c, n, SHMK_KIND_ADOPTED_SHM, &prev, &e) < 0)
			return 1;
		pthread_mutex_unlock(&c->mu);
		snprintf(file, sizeof file, "%s%s", T.shm_dir, n);
		fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || fstat(fd, &st) < 0)
			return 2;
		close(fd);
		pthread_mutex_lock(&c->mu);
		shmk__adopt_live(c, e, (uint64_t)st.st_ino);
		pthread_mutex_unlock(&c->mu);
		if (i % 16 != 15) { /* one object in 16 stays */
			if (unlink(file) < 0)
				return 3;
			gone(c, n);
		}
		if (i > 200000)
			return 4; /* the point was never reached */
	}
}

static size_t my_objects(void)
{
	char pre[64];
	DIR *d = opendir(T.shm_dir);
	struct dirent *e;
	size_t n = 0;

	snprintf(pre, sizeof pre, "%s_obj", T.ns);
	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, pre, strlen(pre)) == 0;
	if (d)
		closedir(d);
	return n;
}

Test(jmap, a_sigkill_anywhere_in_a_rewrite_leaves_what_a_reaper_finishes,
     .timeout = 120)
{
	static const char *points[] = {"jmap/after_rewrite", "jmap/after_publish"};
	static const int ks[] = {2, 3, 5, 8}; /* the first is at creation */

	for (size_t p = 0; p < 2; p++)
		for (size_t k = 0; k < sizeof ks / sizeof *ks; k++) {
			struct cut t = {points[p], ks[k]};
			struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
						      .flags = SHMK_REAP_NO_STRAYS};
			struct shmk_reap_report *rep = NULL;
			int st = reap_child(spawn(cut_child, &t));

			cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
				  "%s #%d: status %x", t.point, t.k, st);
			cr_assert_gt(my_objects(), 0);
			cr_assert_eq(shmk_reap(&o, &rep), 0, "%s",
				     shmk_last_error());
			cr_assert_eq(rep->errors, 0, "%s #%d", t.point, t.k);
			shmk_reap_report_free(rep);
			cr_assert_eq(my_objects(), 0,
				     "%s #%d: objects left after the reap",
				     t.point, t.k);
			cr_assert_eq(ns_files(NULL), 0,
				     "%s #%d: owner files left", t.point, t.k);
		}
}

/* ---- a full file system, a record read while it is stored into --------- */

/* The registry's namespace directory on a tmpfs of a few pages, in a
 * private mount namespace (a child of the test): the owner's first
 * version fits, then a filler takes every free block.  A rewrite must
 * then fail with ENOSPC: never a SIGBUS at a store into a page that was
 * never allocated. */
static int full_child(void *arg)
{
	char filler[PATH_MAX];
	shmk_ctx *c;
	int fd, rc = 0;

	(void)arg;
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", T.ns_dir, "tmpfs", 0, "size=64k,mode=0700") < 0)
		return 10;
	c = jopen();
	if (made(c, jname("f", 0), 1) < 0)
		return 11;
	snprintf(filler, sizeof filler, "%s/filler", T.ns_dir);
	if ((fd = open(filler, O_RDWR | O_CREAT, 0600)) < 0)
		return 12;
	for (off_t at = 0; posix_fallocate(fd, at, 4096) == 0; at += 4096)
		;
	for (int i = 0; i < 100000 && rc == 0; i++) {
		rc = made(c, jname("g", 0), 2 + (uint64_t)i);
		if (rc == 0)
			gone(c, jname("g", 0));
	}
	close(fd);
	unlink(filler);
	shmk_close(c);
	return rc == -ENOSPC ? 0 : 13;
}

Test(jmap, a_full_file_system_is_enospc_at_the_rewrite_not_sigbus)
{
	int st;

	cr_assert_eq(mkdir(T.ns_dir, 0700) == 0 || errno == EEXIST, 1);
	st = reap_child(spawn(full_child, NULL));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 10)
		cr_skip_test("cannot mount a tmpfs here (needs root)");
	cr_assert(WIFEXITED(st), "killed by signal %d", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "status %d", WEXITSTATUS(st));
}

/* A reader racing a live owner's stores: every load reads, and holds the
 * object the owner keeps (a line read with its '\n' but not its bytes
 * would have been refused, or read wrong). */
struct racer {
	int ready[2], stop[2];
};

static int racing_owner(void *arg)
{
	struct racer *rc = arg;
	shmk_ctx *c = jopen();
	char b, file[PATH_MAX];
	struct stat st;
	int fd;

	close(rc->ready[0]);
	close(rc->stop[1]);
	/* A real object: a rewrite forgets entries whose name is empty. */
	snprintf(file, sizeof file, "%s%s", T.shm_dir, jname("held", 0));
	if ((fd = open(file, O_RDWR | O_CREAT | O_EXCL, 0600)) < 0 ||
	    fstat(fd, &st) < 0 || made(c, jname("held", 0), st.st_ino) < 0 ||
	    write(rc->ready[1], &st.st_ino, sizeof st.st_ino) !=
		    sizeof st.st_ino)
		return 1;
	close(fd);
	fcntl(rc->stop[0], F_SETFL, O_NONBLOCK);
	for (int i = 0; read(rc->stop[0], &b, 1) < 0; i++) {
		if (made(c, jname("race", i % 3), 10 + (uint64_t)i) < 0)
			return 2;
		gone(c, jname("race", i % 3));
	}
	unlink(file);
	gone(c, jname("held", 0));
	return shmk_close(c) == 0 ? 0 : 3;
}

Test(jmap, a_reader_racing_the_owners_stores_reads_every_time, .timeout = 90)
{
	struct racer rc;
	char id[SHMK_ID_MAX + 16] = "";
	ino_t ino;
	int fd, loads = 0;
	pid_t pid;
	DIR *d;
	struct dirent *e;

	cr_assert_eq(pipe(rc.ready), 0);
	cr_assert_eq(pipe(rc.stop), 0);
	pid = spawn(racing_owner, &rc);
	close(rc.ready[1]);
	close(rc.stop[0]);
	cr_assert_eq(read(rc.ready[0], &ino, sizeof ino), sizeof ino);
	close(rc.ready[0]);
	d = opendir(T.ns_dir);
	while ((e = readdir(d)))
		if (e->d_name[0] == 'p' && strstr(e->d_name, ".jsonl"))
			snprintf(id, sizeof id, "%.*s",
				 (int)(strstr(e->d_name, ".jsonl") - e->d_name),
				 e->d_name);
	closedir(d);
	cr_assert_neq(id[0], '\0');
	fd = nsdir();
	for (time_t t0 = time(NULL); time(NULL) - t0 < 3; loads++) {
		struct shmk_record r;
		char why[256];
		bool held = false;
		int k = shmk__owner_record_load(fd, id, T.ns, geteuid(), &r, why,
						sizeof why);

		cr_assert_eq(k, 0, "load %d: %s", loads, why);
		for (size_t i = 0; i < r.n_segs; i++)
			held |= strcmp(r.segs[i]->name, jname("held", 0)) == 0 &&
				r.segs[i]->ino == (uint64_t)ino;
		cr_assert(held, "load %d: the held object is not in the record",
			  loads);
		shmk__record_free(&r);
	}
	close(fd);
	close(rc.stop[1]);
	cr_assert_eq(reap_child(pid), 0);
	cr_assert_gt(loads, 100);
}

/* ---- a live owner's record that cannot be read ----------------------- */

/* A dead owner's adopted intent names an object; a live owner's record
 * cannot be read.  That owner may claim the name (its intent, and then
 * the object, can be newer than anything we read), so the reaper cannot
 * tell the object is the dead owner's: it keeps it and says so. */
static int dies_after_create(void *arg)
{
	shmk_ctx *c = jopen();
	struct shmk_rec_seg prev, *e;
	char file[PATH_MAX];

	(void)arg;
	pthread_mutex_lock(&c->mu);
	if (shmk__adopt_intent(c, jname("x", 0), SHMK_KIND_ADOPTED_SHM, &prev,
			       &e) < 0)
		return 1;
	snprintf(file, sizeof file, "%s%s", T.shm_dir, jname("x", 0));
	if (close(open(file, O_RDWR | O_CREAT | O_EXCL, 0600)) < 0)
		return 2;
	kill(getpid(), SIGKILL); /* between the create and its live line */
	return 3;
}

static int lives_until_told(void *arg)
{
	struct racer *rc = arg;
	shmk_ctx *c = jopen();
	char b;

	close(rc->ready[0]);
	close(rc->stop[1]);
	if (made(c, jname("y", 0), 77) < 0 || write(rc->ready[1], "r", 1) != 1)
		return 1;
	while (read(rc->stop[0], &b, 1) < 0 && errno == EINTR)
		;
	shmk_close(c);
	return 0;
}

static int dies_after_intent(void *arg)
{
	shmk_ctx *c = jopen();
	struct shmk_rec_seg prev, *e;

	(void)arg;
	pthread_mutex_lock(&c->mu);
	if (shmk__adopt_intent(c, jname("x", 0), SHMK_KIND_ADOPTED_SHM, &prev,
			       &e) < 0)
		return 1;
	kill(getpid(), SIGKILL); /* before its create */
	return 3;
}

/* A dead owner (dead, a child that records its intent and dies) beside a
 * live owner whose record is garbled (which a reap reports, -EIO); the
 * object of the intent is there after the reap exactly when it was
 * before, and the dead owner's files are gone when settled says so. */
static void unreadable_live_beside(int (*dead)(void *), bool settled)
{
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;
	char file[PATH_MAX], b;
	struct racer rc;
	DIR *d;
	struct dirent *e;
	pid_t live;
	bool made_it;
	int st;

	cr_assert_eq(pipe(rc.ready), 0);
	cr_assert_eq(pipe(rc.stop), 0);
	live = spawn(lives_until_told, &rc);
	close(rc.ready[1]);
	close(rc.stop[0]);
	cr_assert_eq(read(rc.ready[0], &b, 1), 1);
	close(rc.ready[0]);
	/* The live owner's record, garbled (as by a disk error). */
	d = opendir(T.ns_dir);
	while ((e = readdir(d)))
		if (e->d_name[0] == 'p' && strstr(e->d_name, ".jsonl")) {
			int fd;
			snprintf(file, sizeof file, "%s/%s", T.ns_dir, e->d_name);
			fd = open(file, O_WRONLY);
			cr_assert_eq(pwrite(fd, "#garbled#", 9, 0), 9);
			close(fd);
		}
	closedir(d);
	st = reap_child(spawn(dead, NULL));
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %x", st);

	snprintf(file, sizeof file, "%s%s", T.shm_dir, jname("x", 0));
	made_it = access(file, F_OK) == 0;
	cr_assert_eq(shmk_reap(&o, &rep), -EIO, "%s", shmk_last_error());
	cr_assert_eq(access(file, F_OK) == 0, made_it,
		     "a reaper unlinked an object a live owner may hold");
	cr_assert_eq(ns_files(".lock"), settled ? 1 : 2,
		     "the dead owner's files %s", settled ? "stayed" : "went");
	shmk_reap_report_free(rep);

	close(rc.stop[1]);
	cr_assert_eq(reap_child(live), 0);
	unlink(file);
	rep = NULL;
	cr_assert_eq(shmk_reap(&o, &rep), 0, "%s", shmk_last_error());
	shmk_reap_report_free(rep);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(jmap, an_intent_is_kept_while_a_live_owners_record_cannot_be_read)
{
	unreadable_live_beside(dies_after_create, false);
}

/* Nothing under the intent's name: settled as gone, whatever live
 * owners claim. */
Test(jmap, an_intent_of_nothing_is_settled_beside_an_unreadable_record)
{
	unreadable_live_beside(dies_after_intent, true);
}

Test(jmap, a_version_that_cannot_be_allocated_is_an_error_not_a_mapping)
{
	shmk_ctx *c = jopen();
	int rc = 0, i;

	/* The first version: lines are written instead. */
	fiu_enable("shmk/jmap/fill", 1, (void *)(intptr_t)ENOSPC, 0);
	cr_assert_eq(made(c, jname("a", 0), 1), 0, "%s", shmk_last_error());
	fiu_disable("shmk/jmap/fill");
	cr_assert(c->own.write_only);
	cr_assert_null(c->own.map);
	cr_assert_eq(ns_files(".tmp"), 0, "the unplaced version is removed");
	expect_record_is_table(c, "written");
	shmk_close(c);

	/* A later version: ENOSPC, the current one kept whole. */
	c = jopen();
	cr_assert_eq(made(c, jname("b", 0), 2), 0);
	cr_assert_not_null(c->own.map);
	rc = churn_until_error(c, "shmk/jmap/fill", ENOSPC, &i);
	cr_assert_eq(rc, -ENOSPC, "rc %d after %d", rc, i);
	expect_record_is_table(c, "after ENOSPC");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* ---- an intent's name made again while the reaper looks ---------------- */

/* Right after the reaper looked at the name of a dead owner's intent, a
 * live process makes an object under it (removing what was there, if
 * anything): that object is another inode, and must not be unlinked. */
static char remade[PATH_MAX];

static int remake_name(const char *name, int *failnum, void **failinfo,
		       unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	unlink(remade);
	close(open(remade, O_RDWR | O_CREAT | O_EXCL, 0600));
	return 0;
}


static void expect_remade_name_kept(int (*dead)(void *))
{
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;
	int st = reap_child(spawn(dead, NULL));

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %x", st);
	snprintf(remade, sizeof remade, "%s%s", T.shm_dir, jname("x", 0));
	fiu_enable_external("shmk/crash/reap/after_intent_look", 1, NULL, 0,
			    remake_name);
	cr_assert_eq(shmk_reap(&o, &rep), 0, "%s", shmk_last_error());
	fiu_disable("shmk/crash/reap/after_intent_look");
	shmk_reap_report_free(rep);
	cr_assert_eq(access(remade, F_OK), 0,
		     "the reaper unlinked an object made after its look");
	unlink(remade);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(jmap, an_intents_name_made_anew_after_the_reapers_look_is_kept)
{
	expect_remade_name_kept(dies_after_create);
}

Test(jmap, an_intents_name_made_after_the_reaper_found_none_is_kept)
{
	expect_remade_name_kept(dies_after_intent);
}

Test(jmap, a_copy_on_write_file_system_gets_lines_written)
{
	shmk_ctx *c = jopen();

	fiu_enable("shmk/jmap/cow", 1, NULL, 0);
	cr_assert_eq(made(c, jname("w", 0), 1), 0, "%s", shmk_last_error());
	fiu_disable("shmk/jmap/cow");
	cr_assert_null(c->own.map, "mapped on a file system that may SIGBUS");
	for (int i = 1; i < 200; i++)
		cr_assert_eq(made(c, jname("w", i), 1 + (uint64_t)i), 0);
	expect_record_is_table(c, "written");
	cr_assert_eq(shmk_close(c), 0);
}

/* A line that would fill the reserve to its last byte goes to a new
 * version: a mapped record always ends in a space, so that readers see a
 * torn tail and read twice. */
Test(jmap, a_mapped_record_always_ends_in_a_space)
{
	shmk_ctx *c = jopen();
	char last;
	int fd;

	for (int i = 0; i < 3000; i++) {
		cr_assert_eq(made(c, jname("z", i % 5), 10 + (uint64_t)i), 0);
		gone(c, jname("z", i % 5));
		cr_assert_lt(c->own.wpos, c->own.map_size, "after %d", i);
		cr_assert_eq(c->own.map[c->own.map_size - 1], ' ');
	}
	fd = open(file_of(c, false), O_RDONLY);
	cr_assert_eq(pread(fd, &last, 1, (off_t)c->own.map_size - 1), 1);
	close(fd);
	cr_assert_eq(last, ' ');
	shmk_close(c);
}
