/* SPDX-License-Identifier: MIT */
/* test_holders.c - who has an shm object open or mapped: forked holders
 * of each kind, nobody, ourselves, another filesystem, a process we may not
 * read, and a scan with hardly any descriptors to spare. */
#include "helpers.h"
#include "internal.h"

#include <errno.h>
#include <fiu-control.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(holders, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define NOBODY 65534
#define MANY_FDS 300

/* Creates "<ns>.<name>" (4 KiB, held by nobody) and returns its inode;
 * its path goes to path. */
static ino_t make_object(const char *name, char *path, size_t sz)
{
	struct stat st;
	int fd;

	snprintf(path, sz, "%s/%s.%s", T.shm_dir, T.ns, name);
	fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	return st.st_ino;
}

static dev_t shm_dev(void)
{
	struct stat st;

	cr_assert_eq(stat(T.shm_dir, &st), 0, "%s: %s", T.shm_dir,
		     strerror(errno));
	return st.st_dev;
}

enum hold { HOLD_FD, HOLD_MAP, HOLD_MANY };

/* In the child: take hold of path the way mode says.  0 or -1. */
static int take_hold(const char *path, enum hold mode)
{
	int fd = open(path, O_RDWR | O_CLOEXEC), i;

	if (fd < 0)
		return -1;
	if (mode == HOLD_FD)
		return 0; /* fd stays open, nothing closed */
	for (i = 0; i < (mode == HOLD_MANY ? 3 : 1); i++)
		if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
			return -1;
	if (mode == HOLD_MAP)
		return close(fd);
	for (i = 0; i < MANY_FDS; i++) /* HOLD_MANY: fds and mappings */
		if (fcntl(fd, F_DUPFD_CLOEXEC, 0) < 0)
			return -1;
	return 0;
}

struct holder {
	pid_t pid;
	int go_w; /* the child blocks until this closes or it is killed */
};

/* Forks a child that holds path as mode says, and returns once it does.
 * The child also dies with us (PDEATHSIG) if an assertion ends the test
 * before stop_holder. */
static struct holder start_holder(const char *path, enum hold mode)
{
	int ready[2], go[2];
	struct holder h;
	char r = 0;

	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	h.pid = fork();
	cr_assert_geq(h.pid, 0, "fork: %s", strerror(errno));
	if (h.pid == 0) {
		char c = 'e', b;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		close(go[1]);
		if (take_hold(path, mode) == 0)
			c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(go[0], &b, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	while (read(ready[0], &r, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	h.go_w = go[1];
	cr_assert_eq(r, 'r', "holder child %d could not take hold of %s",
		     (int)h.pid, path);
	return h;
}

static void stop_holder(struct holder *h)
{
	kill(h->pid, SIGKILL);
	reap_child(h->pid);
	close(h->go_w);
}

static struct shmk_holders *scan(dev_t dev)
{
	struct shmk_holders *h = NULL;
	int rc = shmk__holders_scan(dev, &h);

	cr_assert_eq(rc, 0, "scan: %d %s", rc, shmk_last_error());
	cr_assert_not_null(h);
	return h;
}

Test(holders, finds_a_child_that_holds_an_open_descriptor_as_fd_holder)
{
	char path[PATH_MAX];
	ino_t ino = make_object("fd", path, sizeof path);
	struct holder c = start_holder(path, HOLD_FD);
	struct shmk_holders *h = scan(shm_dev());
	pid_t pids[4];
	unsigned how = 99;

	size_t n = shmk__holders_of(h, ino, pids, 4, &how);
	cr_assert_eq(n, 1, "%zu holders", n);
	cr_assert_eq(pids[0], c.pid);
	cr_assert_eq(how, SHMK_HELD_FD, "how %u", how);
	shmk__holders_free(h);
	stop_holder(&c);
	unlink(path);
}

Test(holders, finds_a_child_that_mapped_and_closed_as_map_holder)
{
	char path[PATH_MAX];
	ino_t ino = make_object("map", path, sizeof path);
	struct holder c = start_holder(path, HOLD_MAP);
	struct shmk_holders *h = scan(shm_dev());
	pid_t pids[4];
	unsigned how = 99;

	size_t n = shmk__holders_of(h, ino, pids, 4, &how);
	cr_assert_eq(n, 1, "%zu holders", n);
	cr_assert_eq(pids[0], c.pid);
	cr_assert_eq(how, SHMK_HELD_MAP, "how %u", how);
	shmk__holders_free(h);
	stop_holder(&c);
	unlink(path);
}

Test(holders, reports_no_holder_for_an_object_nobody_holds)
{
	char path[PATH_MAX];
	ino_t ino = make_object("free", path, sizeof path);
	struct shmk_holders *h = scan(shm_dev());
	unsigned how = 99;

	cr_assert_eq(shmk__holders_of(h, ino, NULL, 0, &how), 0);
	cr_assert_eq(how, 0);
	shmk__holders_free(h);
	unlink(path);
}

Test(holders, finds_this_process_when_only_it_maps_the_object)
{
	char path[PATH_MAX];
	ino_t ino = make_object("self", path, sizeof path);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	void *a = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(a, MAP_FAILED);
	close(fd);

	struct shmk_holders *h = scan(shm_dev());
	pid_t pid = 0;
	unsigned how = 99;
	cr_assert_eq(shmk__holders_of(h, ino, &pid, 1, &how), 1);
	cr_assert_eq(pid, getpid());
	cr_assert_eq(how, SHMK_HELD_MAP, "how %u", how);
	shmk__holders_free(h);
	munmap(a, 4096);
	unlink(path);
}

Test(holders, tells_each_object_of_one_scan_its_own_holders)
{
	char pa[PATH_MAX], pb[PATH_MAX], pc[PATH_MAX];
	ino_t a = make_object("a", pa, sizeof pa);
	ino_t b = make_object("b", pb, sizeof pb);
	ino_t c = make_object("c", pc, sizeof pc);
	struct holder ha = start_holder(pa, HOLD_FD);
	struct holder hb1 = start_holder(pb, HOLD_MAP);
	struct holder hb2 = start_holder(pb, HOLD_FD);
	struct shmk_holders *h = scan(shm_dev());
	pid_t pids[4] = {0};
	unsigned how;

	cr_assert_eq(shmk__holders_of(h, a, pids, 4, &how), 1);
	cr_assert_eq(pids[0], ha.pid);
	cr_assert_eq(how, SHMK_HELD_FD);
	/* Two holders of b, ascending pids; only one fits in max = 1, but the
	 * count says two. */
	cr_assert_eq(shmk__holders_of(h, b, pids, 1, &how), 2);
	cr_assert_eq(pids[0], hb1.pid < hb2.pid ? hb1.pid : hb2.pid);
	cr_assert_eq(how, SHMK_HELD_FD | SHMK_HELD_MAP);
	cr_assert_eq(shmk__holders_of(h, c, pids, 4, &how), 0);
	shmk__holders_free(h);
	stop_holder(&ha);
	stop_holder(&hb1);
	stop_holder(&hb2);
	unlink(pa);
	unlink(pb);
	unlink(pc);
}

Test(holders, ignores_the_same_inode_number_on_another_filesystem)
{
	char path[PATH_MAX];
	ino_t ino = make_object("dev", path, sizeof path);
	struct stat root;
	cr_assert_eq(stat("/", &root), 0);
	if (root.st_dev == shm_dev()) {
		unlink(path);
		cr_skip_test("/ and %s are one filesystem", T.shm_dir);
	}
	/* Held both ways, by us and by a child. */
	int fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	struct holder c = start_holder(path, HOLD_FD);

	struct shmk_holders *right = scan(shm_dev());
	struct shmk_holders *other = scan(root.st_dev);
	unsigned how = 99;
	cr_assert_eq(shmk__holders_of(right, ino, NULL, 0, NULL), 2);
	cr_assert_eq(shmk__holders_of(other, ino, NULL, 0, &how), 0,
		     "inode %lu of another device reported as held",
		     (unsigned long)ino);
	cr_assert_eq(how, 0);
	shmk__holders_free(right);
	shmk__holders_free(other);
	stop_holder(&c);
	munmap(m, 4096);
	close(fd);
	unlink(path);
}

Test(holders, folds_hundreds_of_fds_and_mappings_of_one_holder_into_one)
{
	char path[PATH_MAX];
	ino_t ino = make_object("many", path, sizeof path);
	struct holder c = start_holder(path, HOLD_MANY);
	struct shmk_holders *h = scan(shm_dev());
	pid_t pids[4];
	unsigned how;

	cr_assert_eq(shmk__holders_of(h, ino, pids, 4, &how), 1);
	cr_assert_eq(pids[0], c.pid);
	cr_assert_eq(how, SHMK_HELD_FD | SHMK_HELD_MAP);
	shmk__holders_free(h);
	stop_holder(&c);
	unlink(path);
}

/* What a scanning child sends back. */
struct child_scan {
	int rc;
	size_t holders;      /* of the object */
	bool watched_found;  /* the watched pid is among the unreadable */
	uid_t watched_uid;
	int watched_err;
	bool self_unreadable;
	char err[256];
};

enum scanner { AS_NOBODY, WITH_FEW_FDS };

/* Runs the scan in a child, unprivileged (AS_NOBODY) or with only fds 0-3
 * and RLIMIT_NOFILE 6 (WITH_FEW_FDS: the /proc listing and one more),
 * and returns what it saw of ino and of process watch. */
static struct child_scan scan_in_child(enum scanner how, dev_t dev, ino_t ino,
				       pid_t watch)
{
	struct child_scan r = {.rc = -1};
	int res[2];
	pid_t pid;

	cr_assert_eq(pipe2(res, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmk_holders *h = NULL;
		int out = res[1];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (how == AS_NOBODY) {
			if (setgroups(0, NULL) < 0 ||
			    setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
			    setresuid(NOBODY, NOBODY, NOBODY) < 0)
				_exit(2);
		} else {
			struct rlimit rl = {6, 6};
			if (dup2(res[1], 3) < 0)
				_exit(2);
			out = 3;
			close_range(4, ~0u, 0);
			/* Under valgrind a process's own descriptor limit is
			 * only emulated, and valgrind needs descriptors of its
			 * own: the scan still runs, only unbounded. */
			if (!getenv("SHMK_UNDER_VALGRIND") &&
			    setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(2);
		}
		r.rc = shmk__holders_scan(dev, &h);
		snprintf(r.err, sizeof r.err, "%s", shmk_last_error());
		if (r.rc == 0) {
			r.holders = shmk__holders_of(h, ino, NULL, 0, NULL);
			for (size_t i = 0; i < shmk__holders_unreadable(h); i++) {
				pid_t p;
				uid_t u;
				int e = shmk__holders_unreadable_at(h, i, &p, &u);
				if (p == getpid())
					r.self_unreadable = true;
				if (p == watch) {
					r.watched_found = true;
					r.watched_uid = u;
					r.watched_err = e;
				}
			}
		}
		shmk__holders_free(h);
		_exit(write(out, &r, sizeof r) == sizeof r ? 0 : 3);
	}
	close(res[1]);
	ssize_t n = read(res[0], &r, sizeof r);
	close(res[0]);
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "scanning child failed (status %#x)", st);
	cr_assert_eq(n, (ssize_t)sizeof r);
	return r;
}

Test(holders, lists_a_process_of_another_user_it_cannot_read_as_unreadable)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: a root-owned holder and a scanner "
			     "that drops to uid %d", NOBODY);
	char path[PATH_MAX];
	ino_t ino = make_object("foreign", path, sizeof path);
	/* The object is ours (root's) and held by a root child that the
	 * unprivileged scanner may not look into. */
	struct holder c = start_holder(path, HOLD_FD);
	struct child_scan r = scan_in_child(AS_NOBODY, shm_dev(), ino, c.pid);

	cr_assert_eq(r.rc, 0, "scan as nobody: %d %s", r.rc, r.err);
	cr_assert(r.watched_found, "holder %d not listed as unreadable",
		  (int)c.pid);
	cr_assert_eq(r.watched_uid, 0);
	cr_assert_eq(r.watched_err, -EACCES, "errno %d", -r.watched_err);
	cr_assert_eq(r.holders, 0, "an unreadable process cannot be a known "
				   "holder");
	cr_assert_not(r.self_unreadable, "the scanner could not read itself");
	stop_holder(&c);
	unlink(path);
}

Test(holders, scans_hundreds_of_fds_with_six_descriptors_allowed)
{
	char path[PATH_MAX];
	ino_t ino = make_object("fewfds", path, sizeof path);
	struct holder c = start_holder(path, HOLD_MANY);
	struct child_scan r = scan_in_child(WITH_FEW_FDS, shm_dev(), ino,
					    c.pid);

	cr_assert_eq(r.rc, 0, "scan with RLIMIT_NOFILE 6: %d %s", r.rc, r.err);
	cr_assert_eq(r.holders, 1);
	cr_assert_not(r.watched_found);
	stop_holder(&c);
	unlink(path);
}

Test(holders, says_which_unreadable_index_does_not_exist)
{
	struct shmk_holders *h = scan(shm_dev());
	size_t n = shmk__holders_unreadable(h);

	cr_assert_eq(shmk__holders_unreadable_at(h, n, NULL, NULL), -EINVAL);
	cr_assert(strstr(shmk_last_error(), "unreadable"));
	shmk__holders_free(h);
	shmk__holders_free(NULL);
}

/* Invariant 8: reading a process's maps waits for its mmap lock, which a
 * stuck process (a hung FUSE mapping) may never let go.  The pass runs in
 * a child killed at the deadline: -ETIMEDOUT (unknown), no hang, no child
 * left; a reap with strays keeps them. */
Test(holders, a_scan_that_does_not_answer_is_cut_at_its_deadline)
{
	char path[PATH_MAX];
	struct shmk_holders *h = (void *)1;
	ino_t ino = make_object("stuck", path, sizeof path);

	(void)ino;
	cr_assert_eq(setenv("SHMKEEPER_HOLDERS_TIMEOUT_MS", "300", 1), 0);
	cr_assert_eq(fiu_enable("shmk/holders/hang", 1, NULL, 0), 0);
	int64_t t0 = shmk__mono_ms();
	int rc = shmk__holders_scan(shm_dev(), &h);
	int64_t took = shmk__mono_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "rc %d: %s", rc, shmk_last_error());
	cr_assert_null(h);
	cr_assert(strstr(shmk_last_error(), "did not finish"), "%s",
		  shmk_last_error());
	cr_assert_lt(took, 30000, "the deadline did not hold (%lld ms)",
		     (long long)took);
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child was left behind");
	cr_assert_eq(errno, ECHILD);

	/* The reaper keeps the stray: nobody is known not to hold it. */
	tclaim();
	struct shmk_reap_options ro = {.dir = T.dir, .ns = T.ns,
				       .shm_dir = T.shm_dir,
				       .flags = SHMK_REAP_STRAYS |
						SHMK_REAP_ANY_AGE};
	struct shmk_reap_report *rep = NULL;
	rc = shmk_reap(&ro, &rep);
	fiu_disable("shmk/holders/hang");
	cr_assert_lt(rc, 0, "unknown holders must not be success");
	cr_assert_eq(rep->strays_removed, 0);
	cr_assert(access(path, F_OK) == 0, "the stray was removed");
	shmk_reap_report_free(rep);
	unlink(path);
}
