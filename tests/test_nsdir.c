/* SPDX-License-Identifier: MIT
 *
 * test_nsdir.c - a reaper removes a namespace directory that is left
 * empty, so that shmls does not list it for ever; never one holding
 * anything; and a process that opened the namespace meanwhile, or opens it
 * right then, is not hurt: it makes the directory again.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(nsdir, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

static bool ns_dir_exists(void)
{
	struct stat st;

	return lstat(T.ns_dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static int reap_ns(unsigned flags)
{
	struct shmk_reap_options ro = {.dir = T.dir, .ns = T.ns,
				       .shm_dir = T.shm_dir, .flags = flags};

	return shmk_reap(&ro, NULL);
}

static int reap_all(void)
{
	struct shmk_reap_options ro = {.dir = T.dir, .shm_dir = T.shm_dir};

	return shmk_reap(&ro, NULL);
}

/* Namespaces a scan of T.dir lists. */
static size_t listed(void)
{
	struct shmk_scan_options so = {.dir = T.dir, .shm_dir = T.shm_dir,
				       .flags = SHMK_SCAN_NO_HOLDERS};
	struct shmk_scan *sc;
	size_t n;

	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	n = sc->n_ns;
	shmk_scan_free(sc);
	return n;
}

/* A namespace whose last owner closed. */
static void closed_namespace(void)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	cr_assert_eq(shmk_segment_create(c, "x", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	shmk_segment_detach(s); /* the handle, after close (shmk_close(3)) */
	cr_assert(ns_dir_exists());
	cr_assert_eq(ns_files(NULL), 0);
}

Test(nsdir, a_reap_of_the_namespace_removes_its_empty_directory)
{
	closed_namespace();
	cr_assert_eq(listed(), 1);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert_not(ns_dir_exists(), "%s is still there", T.ns_dir);
	cr_assert_eq(listed(), 0, "an empty namespace is still listed");
	/* Reaping a namespace that has no directory is fine. */
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
}

Test(nsdir, a_reap_of_every_namespace_removes_the_empty_ones)
{
	closed_namespace();
	cr_assert_eq(reap_all(), 0, "%s", shmk_last_error());
	cr_assert_not(ns_dir_exists());
	cr_assert_eq(listed(), 0);
}

Test(nsdir, a_dry_run_removes_no_directory)
{
	closed_namespace();
	cr_assert_eq(reap_ns(SHMK_REAP_DRY_RUN), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists());
	cr_assert_eq(reap_ns(0), 0);
	cr_assert_not(ns_dir_exists());
}

/* Objects of the namespace that no record names (strays, kept while
 * young) keep it listed, with its directory: shmls and shmclean go on
 * showing them.  A reap that did not look for strays cannot know: it
 * keeps the directory too. */
Test(nsdir, a_namespace_with_strays_left_keeps_its_directory)
{
	char path[PATH_MAX];
	int fd;

	closed_namespace();
	cr_assert_eq(reap_ns(SHMK_REAP_NO_STRAYS), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists(), "removed without looking for strays");
	snprintf(path, sizeof path, "%s/%s.stray", T.shm_dir, T.ns);
	fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	close(fd);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert_eq(reap_all(), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists(), "removed with a stray left");
	cr_assert_eq(listed(), 1);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(reap_ns(0), 0);
	cr_assert_not(ns_dir_exists());
}

/* Crash: the owner is SIGKILLed holding its segments; the reap takes
 * them, its record and lock file, and then the directory, now empty. */
Test(nsdir, a_killed_owners_namespace_is_reaped_and_then_removed)
{
	static const char *const names[] = {"a", "b", NULL};

	tkilled_owner(names, NULL, 4096);
	cr_assert_eq(shm_count(), 2);
	cr_assert_eq(reap_all(), 0, "%s", shmk_last_error());
	cr_assert_eq(shm_count(), 0);
	cr_assert_not(ns_dir_exists());
}

Test(nsdir, a_namespace_holding_anything_is_kept)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	/* A live owner: its lock file and record. */
	cr_assert_eq(shmk_segment_create(c, "live", 4096, &s), 0);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists());
	cr_assert(shm_exists("live"));
	cr_assert_eq(shmk_close(c), 0);
	shmk_segment_detach(s);

	/* A file that is not ours: kept, and so is the directory. */
	put_file("notes", "mine\n", 5);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists());
	cr_assert_eq(ns_files("notes"), 1);
	{
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/notes", T.ns_dir);
		cr_assert_eq(unlink(p), 0);
	}

	/* A quarantined record: kept for whoever looks at it. */
	put_file("p4000000-1-00c0ffee.lock", "", 0);
	put_file("p4000000-1-00c0ffee.jsonl", "{not json", 9);
	cr_assert_eq(reap_ns(0), -EIO);
	cr_assert_eq(quarantined_files(), 1);
	cr_assert(ns_dir_exists());
}

/* A process that opened the namespace and has no file in it yet holds
 * its directory all the same: a reaper leaves it, and the first create
 * finds it there. */
Test(nsdir, a_reaper_never_removes_the_directory_of_an_open_namespace)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s;

	cr_assert_eq(ns_files(NULL), 0);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert_eq(reap_all(), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists(), "the reaper removed %s from under an open "
				   "namespace", T.ns_dir);
	cr_assert_eq(shmk_segment_create(c, "after", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
	/* Closed: now it goes. */
	cr_assert_eq(reap_ns(0), 0);
	cr_assert_not(ns_dir_exists());
}

/* A fork child that inherited the context holds the directory too, after
 * the parent closed it. */
static int child_creates_later(void *arg)
{
	shmk_ctx *c = arg;
	shmk_segment *s;
	char b;

	if (read(0, &b, 1) < 0) /* wait for the parent's reap */
		return 9;
	if (shmk_segment_create(c, "child", 4096, &s) < 0)
		return 1;
	return shmk_segment_destroy(s) < 0 ? 2 : 0;
}

Test(nsdir, an_inherited_context_keeps_the_directory_after_the_parent_closes)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	int p[2], saved = dup(0);

	cr_assert_eq(pipe(p), 0);
	dup2(p[0], 0);
	pid_t kid = spawn(child_creates_later, c);
	dup2(saved, 0);
	close(saved);
	close(p[0]);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(reap_ns(0), 0, "%s", shmk_last_error());
	cr_assert(ns_dir_exists());
	cr_assert_eq(write(p[1], "go", 2), 2);
	close(p[1]);
	int st = reap_child(kid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
	cr_assert_eq(reap_ns(0), 0); /* the child exited without closing */
	cr_assert_eq(shm_count(), 0);
	cr_assert_not(ns_dir_exists());
}

/* A reaper removing the directory at the failpoint, as a reaper running
 * right then would: between our mkdir (which found it) and our open of
 * it, or between that open and our lock.  Only the first removal counts. */
static int removals;
static int remove_ns_dir(const char *name, int *failnum, void **failinfo,
			 unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	if (!removals && rmdir(T.ns_dir) == 0)
		removals++;
	return 0; /* not a failure: just the reaper's step */
}

static void open_with_a_reaper_at(const char *failpoint)
{
	shmk_ctx *c;
	shmk_segment *s;
	struct shmk_options o = topts();

	closed_namespace(); /* the directory exists, empty */
	removals = 0;
	fiu_enable_external(failpoint, 1, NULL, 0, remove_ns_dir);
	int rc = shmk_open(&o, &c);
	fiu_disable(failpoint);
	cr_assert_eq(rc, 0, "shmk_open: %s", shmk_last_error());
	cr_assert_eq(removals, 1, "the failpoint was not reached");
	cr_assert(ns_dir_exists());
	cr_assert_eq(shmk_segment_create(c, "s", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
}

Test(nsdir, an_open_racing_a_reaper_between_mkdir_and_open_succeeds)
{
	open_with_a_reaper_at("shmk/test/dir/after_mkdir");
}

Test(nsdir, an_open_racing_a_reaper_between_open_and_lock_succeeds)
{
	open_with_a_reaper_at("shmk/test/ns/before_lock");
}

/* A reaper that stops while it holds the directory (between its lock and
 * its rmdir) delays an open by a bounded time, then fails it aloud. */
Test(nsdir, an_open_waits_for_a_stuck_reaper_a_bounded_time)
{
	shmk_ctx *c = NULL;
	struct shmk_options o = topts();
	struct timespec t0, t1;

	closed_namespace();
	int fd = open(T.ns_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0); /* the reaper's lock */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = shmk_open(&o, &c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(rc, -EAGAIN, "shmk_open: %d %s", rc, shmk_last_error());
	cr_assert_null(c);
	cr_assert(strstr(shmk_last_error(), T.ns_dir), "%s", shmk_last_error());
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "not bounded");
	close(fd);
	/* Let go: it opens. */
	c = topen();
	cr_assert_eq(shmk_close(c), 0);
}

/* The race for real: services open, create, destroy and close the
 * namespace in a loop while a reaper reaps it (removing its directory
 * whenever it is empty) in a loop.  No service call may fail. */
#define LOOPS 150
static int service_loop(void *arg)
{
	int k = (int)(intptr_t)arg;

	for (int i = 0; i < LOOPS; i++) {
		struct shmk_options o = topts();
		shmk_ctx *c;
		shmk_segment *s;
		char name[32];

		o.flags = SHMK_OPEN_NO_REAP;
		snprintf(name, sizeof name, "c%d-%d", k, i);
		if (shmk_open(&o, &c) < 0 ||
		    shmk_segment_create(c, name, 4096, &s) < 0 ||
		    shmk_segment_destroy(s) < 0 || shmk_close(c) < 0) {
			fprintf(stderr, "service %d, round %d: %s\n", k, i,
				shmk_last_error());
			return 1;
		}
		/* Closed for a moment: the reaper finds the directory
		 * empty and unheld, and races the next open. */
		struct timespec pause_ = {0, (100 + i % 7 * 50) * 1000};
		nanosleep(&pause_, NULL);
	}
	return 0;
}

Test(nsdir, services_and_a_reaper_removing_empty_directories_never_collide)
{
	pid_t kids[2];
	int running = 2, failed = 0, rounds = 0, removed = 0;

	tclaim();
	for (int k = 0; k < 2; k++)
		kids[k] = spawn(service_loop, (void *)(intptr_t)k);
	while (running) {
		bool had = ns_dir_exists();
		cr_assert_geq(reap_ns(SHMK_REAP_NO_HOLDERS), 0, "%s",
			      shmk_last_error());
		removed += had && !ns_dir_exists();
		rounds++;
		for (int k = 0; k < 2; k++) {
			int st;
			if (kids[k] > 0 && waitpid(kids[k], &st, WNOHANG) == kids[k]) {
				failed |= !WIFEXITED(st) || WEXITSTATUS(st);
				kids[k] = 0;
				running--;
			}
		}
	}
	cr_assert_not(failed, "a service call failed (its stderr says why)");
	cr_log_info("%d reaps, %d removed the directory", rounds, removed);
	cr_assert_gt(removed, 0, "the race was not run: no reap removed it");
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(reap_ns(0), 0);
	cr_assert_not(ns_dir_exists());
}
