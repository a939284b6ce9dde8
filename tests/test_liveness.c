/* SPDX-License-Identifier: MIT */
/* test_liveness.c - one judge, three answers: alive, dead, unknown with a
 * cause; only our own inode is ever unlinked; reaping takes a fixed number
 * of descriptors; durability is off by default. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <fiu-control.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(liveness, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define DEAD_ID "p4000000-1-00c0ffee"

static void obj_path(char *p, size_t sz, const char *seg)
{
	snprintf(p, sz, "%s/%s.%s", T.shm_dir, T.ns, seg);
}

static void make_seg(const char *seg)
{
	char p[PATH_MAX];
	obj_path(p, sizeof p, seg);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
}

static void drop_seg(const char *seg)
{
	char p[PATH_MAX];
	obj_path(p, sizeof p, seg);
	unlink(p);
}

static size_t count_action(const struct shmk_reap_report *rep,
			   enum shmk_reap_action a, const char *needle)
{
	size_t n = 0;
	for (size_t i = 0; i < rep->n_items; i++)
		if (rep->items[i].action == a &&
		    (!needle || strstr(rep->items[i].reason, needle)))
			n++;
	return n;
}

/* ---- unknown is never alive and never dead ------------------------------ */

Test(liveness, a_directory_in_place_of_the_lock_file_is_unknown_not_alive)
{
	char p[PATH_MAX];
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	struct shmk_ident who = me;
	who.pid = 4000000;
	who.start_time = 1;
	make_seg("victim");
	trecord(DEAD_ID, &who, "victim", SHMK_SEG_INTENT, 0);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".lock", T.ns_dir);
	cr_assert_eq(mkdir(p, 0700), 0);

	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, -EIO, "unknown must not be success (rc %d)", rc);
	cr_assert_eq(rep->owners_unknown, 1);
	cr_assert_eq(rep->owners_alive, 0, "unknown was reported as alive");
	cr_assert_eq(rep->owners_dead, 0);
	cr_assert_eq(rep->segments_kept, 1);
	cr_assert_eq(count_action(rep, SHMK_REAP_OWNER_UNKNOWN, "not a regular file"), 1);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("victim"));
	rmdir(p);
	drop_seg("victim");
}

Test(liveness, a_symlink_in_place_of_the_lock_file_is_unknown)
{
	char p[PATH_MAX];
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	make_seg("victim");
	trecord(DEAD_ID, &me, "victim", SHMK_SEG_INTENT, 0);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".lock", T.ns_dir);
	cr_assert_eq(symlink("/etc/passwd", p), 0);

	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(rep->owners_unknown, 1);
	cr_assert_eq(rep->owners_alive, 0);
	cr_assert_eq(count_action(rep, SHMK_REAP_OWNER_UNKNOWN, "symlink"), 1);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("victim"));
	unlink(p);
	drop_seg("victim");
}

/* Dead owner (free lock) in a registry that is read-only for the reaper
 * (ProtectSystem=strict without ReadWritePaths=): nothing can be reaped,
 * and the reap must say so, not "owner alive" and success. */
static int ro_reap(void *arg)
{
	(void)arg;
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(T.dir, T.dir, "none", MS_BIND, NULL) < 0 ||
	    mount("none", T.dir, "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		return 90;
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);
	int code = !rep                  ? 91
		   : rc != -EIO          ? 92
		   : rep->owners_alive   ? 93
		   : rep->segments_reaped ? 94
		   : rep->errors != 1    ? 95
		   : 0;
	shmk_reap_report_free(rep);
	return code;
}

Test(liveness, a_read_only_registry_is_an_error_not_a_live_owner)
{
	if (geteuid() != 0)
		cr_skip_test("needs root for a private read-only bind mount");
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	struct shmk_ident who = me;
	who.pid = 4000000;
	make_seg("victim");
	trecord(DEAD_ID, &who, "victim", SHMK_SEG_INTENT, 0);
	put_file(DEAD_ID ".lock", "", 0);
	int st = reap_child(spawn(ro_reap, NULL));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "read-only reap: code %d", WEXITSTATUS(st));
	cr_assert(shm_exists("victim"));
	/* Writable again: the same owner is reaped. */
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
}

Test(liveness, shmclean_exits_non_zero_when_an_owner_is_unknown)
{
	char p[PATH_MAX];
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	make_seg("victim");
	trecord(DEAD_ID, &me, "victim", SHMK_SEG_INTENT, 0);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".lock", T.ns_dir);
	cr_assert_eq(mkdir(p, 0700), 0);
	char *argv[] = {SHMK_BUILDDIR "/tools/shmclean", "--dir", T.dir,
			"--namespace", T.ns, "--shm-dir", T.shm_dir, NULL};
	struct out o = run_tool(argv[0], argv, NULL, 0);
	cr_assert_neq(o.code, 0, "unknown owner, exit 0:\n%s%s", o.out, o.err);
	cr_assert(strstr(o.out, "unknown") || strstr(o.err, "unknown"),
		  "no word of it:\n%s%s", o.out, o.err);
	out_free(&o);
	cr_assert(shm_exists("victim"));
	rmdir(p);
	drop_seg("victim");
}

/* ---- no lock file: identity, only in its own pid namespace -------------- */

Test(liveness, a_format_1_record_without_lock_file_is_unknown)
{
	struct shmk_ident who = {.pid = 4000000, .start_time = 1,
				 .uid = geteuid()}; /* pidns 0: format 1 */
	make_seg("victim");
	trecord(DEAD_ID, &who, "victim", SHMK_SEG_INTENT, 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(rep->owners_unknown, 1);
	cr_assert_eq(rep->segments_reaped, 0);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("victim"));
	drop_seg("victim");
}

Test(liveness, a_record_of_an_earlier_boot_without_lock_file_is_dead_and_spares_this_boot)
{
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	struct shmk_ident who = me;
	who.pid = 4000000;
	who.pidns = 12345;
	memcpy(who.boot_id, "00000000-0000-0000-0000-000000000000", 37);
	make_seg("victim"); /* an object of this boot under its name */
	trecord(DEAD_ID, &who, "victim", SHMK_SEG_INTENT, 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 0, "an object of this boot was "
					      "unlinked for an earlier one");
	cr_assert_eq(rep->segments_gone, 1);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("victim"));
	cr_assert_eq(ns_files(NULL), 0, "the dead record was not removed");
	drop_seg("victim");
}

/* An owner in its own pid namespace (unshare --pid --fork): pid 1 there.
 * With its lock file removed, the reaper cannot judge "pid 1" from here:
 * the old code read the host's pid 1 and reaped a live owner. */
struct pidns_owner {
	int ready[2], go[2];
};

static int pidns_inner(void *arg)
{
	struct pidns_owner *h = arg;
	shmk_segment *s;
	shmk_ctx *c;
	char b;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(h->ready[0]);
	close(h->go[1]);
	c = topen_flags(SHMK_OPEN_NO_REAP);
	if (shmk_segment_create(c, "inns", 4096, &s) != 0)
		return 1;
	if (write(h->ready[1], "r", 1) != 1)
		return 2;
	if (read(h->go[0], &b, 1) < 0)
		return 3;
	shmk_segment_detach(s);
	return shmk_close(c) == 0 ? 0 : 4;
}

static int pidns_outer(void *arg)
{
	struct pidns_owner *h = arg;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWPID) < 0)
		return 80;
	pid_t p = fork();
	if (p < 0)
		return 81;
	if (p == 0)
		_exit(pidns_inner(arg));
	close(h->ready[0]);
	close(h->ready[1]);
	close(h->go[0]);
	close(h->go[1]);
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 82;
}

Test(liveness, an_owner_in_another_pid_namespace_without_lock_file_is_unknown)
{
	if (geteuid() != 0)
		cr_skip_test("needs root for a pid namespace");
	struct pidns_owner h;
	char b, lock[PATH_MAX] = "";
	cr_assert_eq(pipe(h.ready), 0);
	cr_assert_eq(pipe(h.go), 0);
	pid_t pid = spawn(pidns_outer, &h);
	close(h.ready[1]);
	close(h.go[0]);
	cr_assert_eq(read(h.ready[0], &b, 1), 1, "owner failed to start");

	/* The operator removes its lock file. */
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".lock"))
			snprintf(lock, sizeof lock, "%s/%s", T.ns_dir, e->d_name);
	closedir(d);
	cr_assert(lock[0]);
	cr_assert_eq(unlink(lock), 0);

	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rep->segments_reaped, 0, "a live owner's segment was reaped");
	cr_assert_eq(rep->owners_unknown, 1);
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(count_action(rep, SHMK_REAP_OWNER_UNKNOWN, "pid namespace"), 1);
	shmk_reap_report_free(rep);
	cr_assert(shm_exists("inns"));
	close(h.go[1]);
	close(h.ready[0]);
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "owner: %x", st);
	cr_assert_not(shm_exists("inns"));
}

/* ---- a bad record whose owner is absent --------------------------------- */

Test(liveness, a_bad_record_without_lock_file_is_quarantined_once)
{
	put_file(DEAD_ID ".jsonl", "{garbage\n", 9);
	int rc;
	struct shmk_reap_report *rep = treap(0, &rc);
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(rep->quarantined, 1);
	cr_assert_eq(rep->errors, 0, "reported more than once");
	shmk_reap_report_free(rep);
	cr_assert_eq(quarantined_files(), 1);
	rep = treap(0, &rc);
	cr_assert_eq(rc, 0, "stuck: %s", shmk_last_error());
	cr_assert_eq(rep->n_items, 0);
	shmk_reap_report_free(rep);
}

/* ---- the newborn lock file ---------------------------------------------- */

static int visible_at_lock;

static int count_visible(const char *name, int *failnum, void **failinfo,
			 unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' || strstr(e->d_name, "lock"))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				visible_at_lock++;
	if (d)
		closedir(d);
	return 0; /* do not fail: only look */
}

Test(liveness, the_lock_file_is_never_visible_before_it_is_locked)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	cr_assert_eq(fiu_enable_external("shmk/lock/fcntl", 1, NULL, 0,
					 count_visible), 0);
	cr_assert_eq(shmk_segment_create(c, "born", 4096, &s), 0);
	fiu_disable("shmk/lock/fcntl");
	cr_assert_eq(visible_at_lock, 0,
		     "%d name(s) visible in the namespace before the lock",
		     visible_at_lock);
	cr_assert_eq(ns_files(".lock"), 1);
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
}

Test(liveness, a_young_unlocked_temporary_lock_file_is_left_alone)
{
	put_file(".p12345-1-0000abcd.lock.tmp", "", 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rep->owners_dead, 0, "a newborn was called dead");
	shmk_reap_report_free(rep);
	cr_assert_eq(ns_files(NULL), 1);
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/.p12345-1-0000abcd.lock.tmp", T.ns_dir);
	unlink(p);
}

/* ---- only our inode is unlinked ----------------------------------------- */

/* Owner A's name is removed behind its back and owner B makes the same
 * name: A's destroy must not unlink B's object. */
Test(liveness, destroy_does_not_unlink_another_object_under_our_name)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	char p[PATH_MAX];
	cr_assert_eq(shmk_segment_create(c, "x", 4096, &s), 0);
	drop_seg("x");
	make_seg("x"); /* B's */
	struct stat b;
	obj_path(p, sizeof p, "x");
	cr_assert_eq(stat(p, &b), 0);
	cr_assert_eq(shmk_segment_destroy(s), 0, "%s", shmk_last_error());
	struct stat after;
	cr_assert_eq(stat(p, &after), 0, "B's segment was unlinked by A");
	cr_assert_eq(after.st_ino, b.st_ino);
	cr_assert_eq(shmk_owned_count(c), 0, "the entry was not dropped");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(shm_exists("x"));
	drop_seg("x");
}

Test(liveness, close_does_not_unlink_another_object_under_our_name)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	cr_assert_eq(shmk_segment_create(c, "y", 4096, &s), 0);
	shmk_segment_detach(s);
	drop_seg("y");
	make_seg("y");
	cr_assert_eq(shmk_close(c), 0, "%s", shmk_last_error());
	cr_assert(shm_exists("y"), "B's segment was unlinked by A's close");
	drop_seg("y");
	cr_assert_eq(ns_files(NULL), 0);
}

Test(liveness, destroy_by_name_does_not_unlink_another_object_under_our_name)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	cr_assert_eq(shmk_segment_create(c, "z", 4096, &s), 0);
	shmk_segment_detach(s);
	drop_seg("z");
	make_seg("z");
	cr_assert_eq(shmk_segment_destroy_name(c, "z"), 0);
	cr_assert(shm_exists("z"));
	cr_assert_eq(shmk_close(c), 0);
	drop_seg("z");
}

/* ---- scale: a fixed number of descriptors ------------------------------- */

#define MANY 1100

static int reap_many(void *arg)
{
	(void)arg;
	struct rlimit rl = {48, 48};
	/* Under valgrind a process's own descriptor limit is only emulated,
	 * and valgrind needs descriptors of its own: unbounded there. */
	if (!getenv("SHMK_UNDER_VALGRIND") && setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 90;
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);
	int code = !rep ? 91 : rc != 0 ? 92
		   : rep->owners_dead != MANY ? 93
		   : rep->segments_reaped != MANY ? 94 : 0;
	shmk_reap_report_free(rep);
	return code;
}

Test(liveness, reaping_many_dead_owners_needs_a_fixed_number_of_descriptors,
     .timeout = 120)
{
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	for (int i = 0; i < MANY; i++) {
		char id[64], seg[32], lock[80];
		struct shmk_ident who = me;
		who.pid = 4000000 + i;
		snprintf(id, sizeof id, "p%d-1-%08x", 4000000 + i, i);
		snprintf(seg, sizeof seg, "m%d", i);
		make_seg(seg);
		trecord(id, &who, seg, SHMK_SEG_INTENT, 0);
		snprintf(lock, sizeof lock, "%s.lock", id);
		put_file(lock, "", 0);
	}
	int st = reap_child(spawn(reap_many, NULL));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "reap with 48 descriptors: code %d", WEXITSTATUS(st));
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

/* ---- durability off by default ------------------------------------------ */

Test(liveness, the_default_durability_never_syncs_even_on_disk)
{
	struct shmk_options o = topts(); /* T.dir is on /tmp: a disk here */
	shmk_ctx *c = NULL;
	shmk_segment *s;
	o.durability = SHMK_DURABLE_AUTO;
	cr_assert_eq(shmk_open(&o, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(fiu_enable("shmk/sys/fsync", 1, (void *)(intptr_t)EIO, 0), 0);
	int rc = shmk_segment_create(c, "nosync", 4096, &s);
	fiu_disable("shmk/sys/fsync");
	cr_assert_eq(rc, 0, "an fsync was attempted: %s", shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
}
