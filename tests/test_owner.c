/* SPDX-License-Identifier: MIT */
/* test_owner.c - owner liveness: the kernel-held lock decides, identity
 * cross-checks, and nothing can make a live owner look dead. */
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

TestSuite(owner, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

/* A child that creates n segments, reports through the pipe, and waits for
 * the parent to close its end (or to be killed). */
struct holder {
	int n;
	int ready[2], go[2];
};

static int hold(void *arg)
{
	struct holder *h = arg;
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s;
	char b;

	close(h->ready[0]);
	close(h->go[1]);
	for (int i = 0; i < h->n; i++) {
		char n[16];
		snprintf(n, sizeof n, "h%d", i);
		if (shmk_segment_create(c, n, 4096, &s) != 0)
			return 1;
	}
	if (write(h->ready[1], "r", 1) != 1)
		return 2;
	if (read(h->go[0], &b, 1) < 0)
		return 3;
	return shmk_close(c) == 0 ? 0 : 4;
}

static pid_t start_holder(struct holder *h, int n)
{
	char b;
	h->n = n;
	cr_assert_eq(pipe(h->ready), 0);
	cr_assert_eq(pipe(h->go), 0);
	pid_t pid = spawn(hold, h);
	close(h->ready[1]);
	close(h->go[0]);
	cr_assert_eq(read(h->ready[0], &b, 1), 1, "holder failed to start");
	close(h->ready[0]);
	return pid;
}

Test(owner, a_live_owner_is_left_alone_and_a_killed_one_is_reaped)
{
	struct holder h;
	pid_t pid = start_holder(&h, 3);
	int rc;

	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_alive, 1);
	cr_assert_eq(rep->owners_dead, 0);
	cr_assert_eq(rep->segments_live, 3);
	cr_assert_eq(rep->segments_reaped, 0);
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 3);

	kill(pid, SIGKILL);
	int st = reap_child(pid);
	cr_assert(WIFSIGNALED(st));
	close(h.go[1]);
	rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 3);
	cr_assert_eq(rep->bytes_reaped, 3 * 4096);
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0, "dead owner's files left behind");
}

Test(owner, an_owner_that_exits_cleanly_leaves_nothing)
{
	struct holder h;
	pid_t pid = start_holder(&h, 2);
	close(h.go[1]);
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %x", st);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* Writes a record (and an unlocked lock file) for a forged identity that
 * owns one real segment "<ns>.<seg>". */
static void forge(const char *id, pid_t pid, unsigned long long start,
		  const char *seg, bool with_lock)
{
	struct shmk_ident me, who;
	char buf[2048], line[512], p[PATH_MAX];
	struct shmk_rec_seg s = {.size = 4096, .created = 1, .state = SHMK_SEG_INTENT};

	cr_assert_eq(shmk__self_ident(&me), 0);
	who = me;
	who.pid = pid;
	who.start_time = start;
	int n = shmk__fmt_header_open(buf, sizeof buf, T.ns, id, &who, "forged", 1);
	snprintf(s.name, sizeof s.name, "/%s.%s", T.ns, seg);
	n += shmk__fmt_seg(buf + n, sizeof buf - (size_t)n, &s);
	n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
	snprintf(line, sizeof line, "%s.jsonl", id);
	put_file(line, buf, (size_t)n);
	if (with_lock) {
		snprintf(line, sizeof line, "%s.lock", id);
		put_file(line, "", 0);
	}
	snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, seg);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
}

Test(owner, a_reused_pid_does_not_make_a_dead_owner_look_alive)
{
	/* The record names pid 1 - alive, but not the process that wrote the
	 * record (different start time), and the lock is free. */
	unsigned long long st1;
	cr_assert_eq(shmk__proc_start_time(1, &st1), 0);
	forge("p1-7-deadbeef", 1, st1 + 12345, "reused", true);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_not(shm_exists("reused"));
	cr_assert_eq(ns_files(NULL), 0);
}

Test(owner, a_free_lock_with_the_owner_process_still_alive_is_not_grounds_to_reap)
{
	/* Identity of a real live process (pid 1, its true start time) with a
	 * free lock: the lock says dead, identity says alive - keep it. */
	unsigned long long st1;
	cr_assert_eq(shmk__proc_start_time(1, &st1), 0);
	char id[64];
	snprintf(id, sizeof id, "p1-%llu-0badc0de", st1);
	forge(id, 1, st1, "keepme", true);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(rep->segments_reaped, 0);
	cr_assert_eq(rep->owners_alive, 1);
	cr_assert_eq(rep->segments_live, 1);
	cr_assert(strstr(rep->items[0].reason, "still running"), "%s",
		  rep->items[0].reason);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("keepme"));
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s.keepme", T.shm_dir, T.ns);
	unlink(p);
}

Test(owner, a_record_without_lock_file_is_judged_by_identity)
{
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	reap_child(dead);
	forge("p99999-1-00000001", dead, 1, "nolock", false);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(owner, an_unlocked_temporary_lock_file_of_a_dead_creator_is_removed)
{
	/* Older than a newborn's moment between create and lock. */
	struct timespec old[2] = {{.tv_sec = time(NULL) - 3600},
				  {.tv_sec = time(NULL) - 3600}};
	char p[PATH_MAX];
	put_file(".p12345-1-0000abcd.lock.tmp", "", 0);
	snprintf(p, sizeof p, "%s/.p12345-1-0000abcd.lock.tmp", T.ns_dir);
	cr_assert_eq(utimensat(AT_FDCWD, p, old, 0), 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	shmk_reap_report_free(rep);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(owner, opening_the_namespace_again_in_the_same_process_keeps_our_lock)
{
	/* The POSIX-lock trap: if the second open's reap opened and closed
	 * our own lock file, we would lose the lock and look dead. */
	shmk_ctx *a = topen(), *b;
	shmk_segment *s;
	cr_assert_eq(shmk_segment_create(a, "mine", 4096, &s), 0);
	b = topen();
	cr_assert_eq(shmk_close(b), 0);
	cr_assert(shm_exists("mine"), "reaped our own segment");

	pid_t pid = fork();
	if (pid == 0) {
		struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
					      .shm_dir = T.shm_dir,
					      .flags = SHMK_REAP_NO_STRAYS};
		struct shmk_reap_report *rep;
		int rc = shmk_reap(&o, &rep);
		_exit(rc == 0 && rep->segments_reaped == 0 &&
				      rep->owners_alive == 1
			      ? 0
			      : 1);
	}
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "another process saw us dead after a second open");
	cr_assert(shm_exists("mine"));
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(a), 0);
}

Test(owner, a_reaper_in_the_owners_own_process_leaves_its_segments_alone)
{
	shmk_ctx *a = topen();
	shmk_segment *s;
	int rc;
	cr_assert_eq(shmk_segment_create(a, "self", 4096, &s), 0);
	struct shmk_reap_report *rep = treap(0, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 0);
	cr_assert_eq(rep->segments_live, 1);
	cr_assert_eq(rep->strays_kept, 0, "own segment taken for a stray");
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("self"));
	shmk_segment_destroy(s);
	shmk_close(a);
}

Test(owner, open_reaps_what_a_killed_previous_life_left)
{
	struct holder h;
	pid_t pid = start_holder(&h, 4);
	kill(pid, SIGKILL);
	reap_child(pid);
	close(h.go[1]);
	cr_assert_eq(shm_count(), 4);
	shmk_ctx *c = topen(); /* a restarted service */
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
	shmk_close(c);
}
