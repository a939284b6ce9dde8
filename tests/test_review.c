/* SPDX-License-Identifier: MIT */
/* test_review.c - an adversarial review of the issue 9 code (liveness.c,
 * unlink.c, reap.c, owner.c, segment.c).
 *
 * Each of the first ten proved a bug of the first cut of that code (it
 * failed there) and passes with its fix; the last two guard what the
 * review found to hold (the POSIX-lock trap). */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(review, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define DEAD_ID "p4000000-1-00c0ffee"

static void obj_path(char *p, size_t sz, const char *seg)
{
	snprintf(p, sz, "%s/%s.%s", T.shm_dir, T.ns, seg);
}

static ino_t make_seg(const char *seg)
{
	char p[PATH_MAX];
	struct stat st;
	obj_path(p, sizeof p, seg);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	return st.st_ino;
}

static ino_t seg_ino(const char *seg)
{
	char p[PATH_MAX];
	struct stat st;
	obj_path(p, sizeof p, seg);
	return lstat(p, &st) == 0 ? st.st_ino : 0;
}

static void drop_seg(const char *seg)
{
	char p[PATH_MAX];
	obj_path(p, sizeof p, seg);
	unlink(p);
}

/* The identity of a dead owner of this boot and pid namespace. */
static struct shmk_ident dead_who(void)
{
	struct shmk_ident me;
	cr_assert_eq(shmk__self_ident(&me), 0);
	me.pid = 4000000;
	me.start_time = 1;
	return me;
}

/* A dead owner: free lock file and a record naming seg. */
static void dead_owner(const char *seg, enum shmk_seg_state state,
		       uint64_t ino)
{
	struct shmk_ident who = dead_who();
	trecord(DEAD_ID, &who, seg, state, ino);
	put_file(DEAD_ID ".lock", "", 0);
}

static void ns_unlink(const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", T.ns_dir, name);
	unlink(p);
}

static void dump(const struct shmk_reap_report *rep)
{
	for (size_t i = 0; i < rep->n_items; i++)
		fprintf(stderr, "  %s %s: %s\n",
			shmk_reap_action_name(rep->items[i].action),
			rep->items[i].object, rep->items[i].reason);
}

/* ---- 1. an owner that finishes while the reaper looks is not "unknown" -- */

/* Acts as a second reaper (or the owner's own shmk_close) that finishes
 * with the owner between this reaper's survey and its taking the lock:
 * the lock file and the record go. */
static int finish_owner(const char *name, int *failnum, void **failinfo,
			unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	ns_unlink(DEAD_ID ".jsonl");
	ns_unlink(DEAD_ID ".lock");
	return 0; /* do not fail the lock: only act */
}

Test(review, an_owner_finished_by_another_reaper_meanwhile_is_not_unknown)
{
	dead_owner(NULL, SHMK_SEG_INTENT, 0);
	cr_assert_eq(fiu_enable_external("shmk/reap/lock", 1, NULL, 0,
					 finish_owner), 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	fiu_disable("shmk/reap/lock");
	dump(rep);
	cr_assert_eq(rep->owners_unknown, 0,
		     "an owner whose files vanished while we looked was "
		     "called unknown");
	cr_assert_eq(rc, 0, "a concurrent reap made this one fail: %s",
		     shmk_last_error());
	shmk_reap_report_free(rep);
}

/* ---- 2. an intent entry and a name a live owner creates meanwhile ------- */

static shmk_ctx *live_ctx;
static shmk_segment *live_seg;

static int live_owner_creates(const char *name, int *failnum, void **failinfo,
			      unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	if (!live_seg)
		(void)shmk_segment_create(live_ctx, "fresh", 4096, &live_seg);
	return 0;
}

Test(review, a_dead_owners_intent_never_unlinks_a_segment_created_during_the_pass)
{
	/* The dead owner recorded an intent for "fresh" and died before
	 * creating it.  A live owner creates "fresh" after the reaper read
	 * the live owners' records and before it reaches the dead owner. */
	live_ctx = topen();
	dead_owner("fresh", SHMK_SEG_INTENT, 0);
	cr_assert_eq(fiu_enable_external("shmk/reap/lock", 1, NULL, 0,
					 live_owner_creates), 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	fiu_disable("shmk/reap/lock");
	cr_assert_not_null(live_seg, "the live owner could not create");
	dump(rep);
	shmk_reap_report_free(rep);
	bool alive = shm_exists("fresh");
	cr_assert_eq(shmk_segment_destroy(live_seg), 0);
	cr_assert_eq(shmk_close(live_ctx), 0);
	cr_assert(alive, "a live owner's new segment was unlinked for a dead "
			 "owner's intent");
}

/* ---- 3. a record of an earlier boot and an inode number used again ------ */

Test(review, a_record_of_an_earlier_boot_never_unlinks_an_object_of_this_boot)
{
	/* On a disk registry a record outlives the boot; tmpfs numbers its
	 * inodes afresh, so the recorded inode can be a new object's. */
	shmk_ctx *c = topen();
	shmk_segment *s;
	cr_assert_eq(shmk_segment_create(c, "data", 4096, &s), 0);
	struct shmk_ident who = dead_who();
	snprintf(who.boot_id, sizeof who.boot_id,
		 "00000000-1111-2222-3333-444444444444");
	trecord(DEAD_ID, &who, "data", SHMK_SEG_LIVE, seg_ino("data"));
	put_file(DEAD_ID ".lock", "", 0);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	dump(rep);
	shmk_reap_report_free(rep);
	bool alive = shm_exists("data");
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert(alive, "a segment of this boot was unlinked for a record "
			 "of an earlier boot");
}

/* ---- 4. create's own undo unlinks by name -------------------------------- */

static ino_t other_ino;

static int replace_then_fail(const char *name, int *failnum, void **failinfo,
			     unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	/* Our new object is unlinked behind our back (an operator) and
	 * another process makes the name again. */
	drop_seg("undo");
	other_ino = make_seg("undo");
	return 1; /* and then the reservation fails (ENOSPC) */
}

Test(review, a_failed_create_never_unlinks_another_object_under_its_name)
{
	shmk_ctx *c = topen();
	shmk_segment *s = NULL;
	cr_assert_eq(fiu_enable_external("shmk/segment/fallocate", 1, NULL, 0,
					 replace_then_fail), 0);
	int rc = shmk_segment_create(c, "undo", 4096, &s);
	fiu_disable("shmk/segment/fallocate");
	cr_assert_lt(rc, 0);
	ino_t now = seg_ino("undo");
	drop_seg("undo");
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(now, other_ino,
		     "create's undo unlinked another process's object by name");
}

/* ---- 5. strays: only names of the namespace's rule ----------------------- */

Test(review, a_stray_removal_never_unlinks_a_name_outside_the_segment_rule)
{
	tclaim();
	make_seg("ok");      /* a stray by the rule: removed */
	make_seg(".hidden"); /* "<ns>..hidden": no segment name can be it */
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_STRAYS |
					       SHMK_REAP_ANY_AGE,
				      .stray_min_age = 0};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);
	cr_assert_not_null(rep);
	dump(rep);
	shmk_reap_report_free(rep);
	bool ok_gone = !shm_exists("ok"), hidden_kept = shm_exists(".hidden");
	drop_seg("ok");
	drop_seg(".hidden");
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert(ok_gone, "the stray of the rule was not removed");
	cr_assert(hidden_kept, "\"<ns>..hidden\", outside the segment name "
			       "rule, was unlinked as a stray");
}

/* ---- 6. our own lack of memory is not a bad record ---------------------- */

#define BIG_TAIL (24u << 20)

Test(review, a_valid_record_is_never_quarantined_because_the_reaper_is_short_of_memory)
{
	/* A valid record (its last line torn, which readers ignore) of 24
	 * MiB, under the 32 MiB limit.  A reaper that cannot allocate the
	 * buffer to read it has a problem of its own (ENOMEM, like EMFILE or
	 * ENFILE): the record is not bad and must stay where it is. */
	char p[PATH_MAX];
	if (access("/usr/bin/prlimit", X_OK) != 0)
		cr_skip_test("no prlimit(1)");
	make_seg("x");
	dead_owner("x", SHMK_SEG_INTENT, 0);
	snprintf(p, sizeof p, "%s/" DEAD_ID ".jsonl", T.ns_dir);
	int fd = open(p, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	char *tail = malloc(BIG_TAIL);
	memset(tail, 'x', BIG_TAIL);
	cr_assert_eq(write(fd, tail, BIG_TAIL), (ssize_t)BIG_TAIL);
	free(tail);
	close(fd);
	/* shmclean runs in less than 20 MiB of address space; the record
	 * does not fit in it. */
	char *argv[] = {"/usr/bin/prlimit", "--as=20971520",
			SHMK_BUILDDIR "/tools/shmclean", "--dir", T.dir,
			"--namespace", T.ns, "--shm-dir", T.shm_dir, NULL};
	struct out o = run_tool(argv[0], argv, NULL, 0);
	size_t q = quarantined_files();
	bool seg_left = shm_exists("x");
	/* Without the limit the same record is reaped: it is valid. */
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	size_t reaped = rep->segments_reaped;
	shmk_reap_report_free(rep);
	drop_seg("x");
	cr_assert_eq(q, 0, "a valid record was quarantined for our own ENOMEM "
			   "(exit %d):\n%s%s", o.code, o.out, o.err);
	out_free(&o);
	cr_assert(seg_left);
	cr_assert_eq(reaped, 1, "the record is not valid after all");
}

/* ---- 7. no /proc: nothing can be told by identity ----------------------- */

static int reap_without_proc(void *arg)
{
	(void)arg;
	struct shmk_ident me;
	if (shmk__self_ident(&me) < 0) /* cached while /proc is there */
		return 90;
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("none", "/proc", "tmpfs", 0, NULL) < 0)
		return 80; /* no privilege here: skipped */
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);
	int code = !rep ? 91 : rep->segments_reaped ? 92 : rc == 0 ? 93 : 0;
	if (rep && code)
		dump(rep);
	shmk_reap_report_free(rep);
	return code;
}

Test(review, without_proc_an_owner_without_lock_file_is_unknown_not_dead)
{
	/* A live owner whose lock file was removed by hand is judged by its
	 * identity; a reaper that cannot read /proc (chroot, sandbox) must
	 * not take "no /proc/<pid>/stat" for "process gone". */
	shmk_ctx *c = topen();
	shmk_segment *s;
	char lock[PATH_MAX];
	cr_assert_eq(shmk_segment_create(c, "mine", 4096, &s), 0);
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	lock[0] = '\0';
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".lock"))
			snprintf(lock, sizeof lock, "%s/%s", T.ns_dir, e->d_name);
	if (d)
		closedir(d);
	cr_assert_eq(unlink(lock), 0); /* no fd closed: our lock stays */
	int st = reap_child(spawn(reap_without_proc, NULL));
	bool alive = shm_exists("mine");
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 80)
		cr_skip_test("cannot mount over /proc here");
	cr_assert(alive, "a live owner's segment was reaped: no /proc was "
			 "taken for a dead owner");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child code %d",
		  WEXITSTATUS(st));
}

/* ---- 8. a bad record without lock file: reported once ------------------- */

Test(review, a_bad_record_without_lock_file_is_reported_once_and_not_as_unknown)
{
	put_file(DEAD_ID ".jsonl", "{garbage\n", 9);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	dump(rep);
	cr_assert_eq(rep->quarantined, 1);
	cr_assert_eq(rep->owners_unknown, 0,
		     "the quarantined owner was also reported unknown");
	cr_assert_eq(rep->n_items, 1, "%zu items for one bad record",
		     rep->n_items);
	shmk_reap_report_free(rep);
}

/* ---- 9. an owner another reaper is reaping is not "alive" --------------- */

static int hold_ofd(void *arg)
{
	int *pfd = arg; /* [0]: read end to wait on, [1]: write end "locked" */
	char p[PATH_MAX], c;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	snprintf(p, sizeof p, "%s/" DEAD_ID ".lock", T.ns_dir);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return 1;
	if (write(pfd[3], "l", 1) != 1)
		return 2;
	if (read(pfd[0], &c, 1) != 1)
		return 3;
	return 0;
}

Test(review, an_owner_another_reaper_is_reaping_is_not_counted_alive)
{
	int go[2], ready[2], p4[4];
	char c;
	dead_owner(NULL, SHMK_SEG_INTENT, 0);
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	p4[0] = go[0]; p4[1] = go[1]; p4[2] = ready[0]; p4[3] = ready[1];
	pid_t other = spawn(hold_ofd, p4);
	cr_assert_eq(read(ready[0], &c, 1), 1);
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(write(go[1], "g", 1), 1);
	int st = reap_child(other);
	for (int i = 0; i < 4; i++)
		close(p4[i]);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	dump(rep);
	size_t alive = rep->owners_alive;
	shmk_reap_report_free(rep);
	rep = treap(SHMK_REAP_NO_STRAYS, &rc); /* now it is ours to reap */
	shmk_reap_report_free(rep);
	cr_assert_eq(alive, 0, "a dead owner another reaper holds was counted "
			       "alive");
}

/* ---- 10. a plain user's listing goes stale during the pass -------------- */

static char user_obj[PATH_MAX];
static ino_t user_new_ino;

static int replace_x_once(const char *name, int *failnum, void **failinfo,
			  unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	if (!user_new_ino) {
		/* While the reaper unlinks "a": "x" is removed by hand and
		 * a live process makes "x" again. */
		struct stat st;
		unlink(user_obj);
		int fd = open(user_obj, O_CREAT | O_EXCL | O_RDWR, 0600);
		if (fd >= 0 && fstat(fd, &st) == 0)
			user_new_ino = st.st_ino;
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

static int stale_listing_as_user(void *arg)
{
	(void)arg;
	char dir[64] = "/tmp/shmk-review-XXXXXX", p[PATH_MAX], buf[4096];
	struct shmk_rec_seg seg[2] = {
		{.size = 4096, .created = 1, .state = SHMK_SEG_LIVE},
		{.size = 4096, .created = 1, .state = SHMK_SEG_LIVE}};
	const char *names[2] = {"a", "x"};
	int code = 0;

	if (setgid(65534) < 0 || setuid(65534) < 0 || !mkdtemp(dir))
		return 90;
	if (shmk_registry_adopt(dir) < 0)
		return 91;
	snprintf(p, sizeof p, "%s/%s", dir, T.ns);
	if (mkdir(p, 0700) < 0)
		return 92;
	struct shmk_ident who;
	if (shmk__self_ident(&who) < 0)
		return 93;
	who.pid = 4000000;
	who.start_time = 1;
	int n = shmk__fmt_header_open(buf, sizeof buf, T.ns, DEAD_ID, &who, "", 1);
	for (int i = 0; i < 2; i++) {
		struct stat st;
		snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, names[i]);
		int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
		if (fd < 0 || fstat(fd, &st) < 0)
			return 94;
		close(fd);
		seg[i].ino = st.st_ino;
		snprintf(seg[i].name, sizeof seg[i].name, "/%s.%s", T.ns, names[i]);
		if (i)
			buf[n++] = ',';
		n += shmk__fmt_seg(buf + n, sizeof buf - (size_t)n, &seg[i]);
	}
	n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
	snprintf(p, sizeof p, "%s/%s/" DEAD_ID ".jsonl", dir, T.ns);
	FILE *f = fopen(p, "w");
	if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f))
		return 95;
	snprintf(p, sizeof p, "%s/%s/" DEAD_ID ".lock", dir, T.ns);
	if (!(f = fopen(p, "w")) || fclose(f))
		return 96;
	snprintf(user_obj, sizeof user_obj, "%s/%s.x", T.shm_dir, T.ns);
	if (fiu_enable_external("shmk/reap/unlink", 1, NULL, 0,
				replace_x_once) < 0)
		return 97;
	struct shmk_reap_options o = {.dir = dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS |
					       SHMK_REAP_NO_HOLDERS};
	struct shmk_reap_report *rep = NULL;
	shmk_reap(&o, &rep);
	fiu_disable("shmk/reap/unlink");
	struct stat st;
	if (!user_new_ino)
		code = 98;
	else if (lstat(user_obj, &st) < 0 || st.st_ino != user_new_ino) {
		code = 1; /* the new object was unlinked */
		if (rep)
			dump(rep);
	}
	shmk_reap_report_free(rep);
	unlink(user_obj);
	snprintf(p, sizeof p, "%s/%s.a", T.shm_dir, T.ns);
	unlink(p);
	snprintf(p, sizeof p, "rm -rf %s", dir);
	if (system(p) != 0 && !code)
		code = 99;
	return code;
}

Test(review, a_plain_users_reap_never_unlinks_a_name_reused_after_its_listing)
{
	/* Not root, sticky /dev/shm: the reaper lists the namespace once and
	 * then trusts the listing's inode instead of a stat, for the whole
	 * pass.  A name reused after the listing is unlinked. */
	if (geteuid() != 0)
		cr_skip_test("needs root to drop to another user");
	int st = reap_child(spawn(stale_listing_as_user, NULL));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 98 &&
		  WEXITSTATUS(st) < 90, "setup failed: %x", st);
	cr_assert_eq(WEXITSTATUS(st), 0, "a new object under a name of the "
			      "stale listing was unlinked");
}

/* ---- guards: the POSIX-lock trap does not spring ------------------------ */

/* The id of the one owner of T.ns (its lock file), or "". */
static void only_owner(char id[SHMK_ID_MAX])
{
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	size_t n = 0;
	id[0] = '\0';
	while (d && (e = readdir(d))) {
		char tmp[SHMK_ID_MAX];
		enum shmk_ofile k;
		if (shmk__ofile_parse(e->d_name, tmp, &k) && k == SHMK_OFILE_LOCK) {
			memcpy(id, tmp, SHMK_ID_MAX);
			n++;
		}
	}
	if (d)
		closedir(d);
	cr_assert_eq(n, 1, "%zu lock files", n);
}

static char judged_id[SHMK_ID_MAX];

/* In another process: the judge's word on judged_id, and a reap that
 * must not touch it. */
static int judge_from_outside(void *arg)
{
	(void)arg;
	int nsfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct shmk_judgement j;
	if (nsfd < 0)
		return 90;
	if (shmk__owner_judge(nsfd, judged_id, geteuid(), NULL, true, &j) != SHMK_LIVE_ALIVE)
		return 91;
	close(nsfd);
	struct shmk_reap_report *rep = NULL;
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS};
	int rc = shmk_reap(&o, &rep);
	int code = rc != 0 ? 92 : rep->segments_reaped ? 93 : 0;
	shmk_reap_report_free(rep);
	return code;
}

static void expect_alive_from_outside(void)
{
	only_owner(judged_id);
	int st = reap_child(spawn(judge_from_outside, NULL));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the owner lost its lock (code %d)", WEXITSTATUS(st));
}

Test(review, a_second_open_and_reap_in_the_owner_process_keep_its_lock)
{
	shmk_ctx *a = topen(), *b;
	shmk_segment *s;
	cr_assert_eq(shmk_segment_create(a, "a", 4096, &s), 0);
	b = topen(); /* reaps the namespace in the owner's own process */
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(rep->segments_reaped, 0);
	shmk_reap_report_free(rep);
	cr_assert_eq(shmk_close(b), 0);
	expect_alive_from_outside();
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(a), 0);
}

static shmk_ctx *inherited;

static int child_opens_reaps_and_closes(void *arg)
{
	(void)arg;
	shmk_ctx *c;
	struct shmk_options o = topts();
	if (shmk_open(&o, &c) != 0)
		return 1;
	shmk_segment *s;
	if (shmk_segment_create(inherited, "child", 4096, &s) != 0)
		return 2;
	if (shmk_segment_destroy(s) != 0)
		return 3;
	if (shmk_close(c) != 0 || shmk_close(inherited) != 0)
		return 4;
	return 0;
}

Test(review, a_fork_child_that_opens_reaps_creates_and_closes_keeps_the_parents_lock)
{
	shmk_segment *s;
	inherited = topen();
	cr_assert_eq(shmk_segment_create(inherited, "p", 4096, &s), 0);
	int st = reap_child(spawn(child_opens_reaps_and_closes, NULL));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %x", st);
	expect_alive_from_outside();
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(inherited), 0);
}
