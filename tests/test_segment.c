/* SPDX-License-Identifier: MIT */
/* test_segment.c - creating, attaching, destroying segments. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <fiu.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(segment, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

Test(segment, creates_a_zeroed_mapped_segment_under_the_namespace_prefix)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	char want[128];

	cr_assert_eq(shmk_segment_create(c, "a", 8192, &s), 0, "%s",
		     shmk_last_error());
	snprintf(want, sizeof want, "/%s.a", T.ns);
	cr_assert_str_eq(shmk_segment_name(s), want);
	cr_assert_eq(shmk_segment_size(s), 8192);
	unsigned char *p = shmk_segment_addr(s);
	for (size_t i = 0; i < 8192; i++)
		cr_assert_eq(p[i], 0);
	p[100] = 42;
	cr_assert(shm_exists("a"));
	cr_assert_eq(shmk_owned_count(c), 1);
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_not(shm_exists("a"));
	cr_assert_eq(shmk_owned_count(c), 0);
	cr_assert_eq(shmk_close(c), 0);
}

Test(segment, is_created_with_mode_0600)
{
	shmk_ctx *c = topen();
	shmk_segment *s;
	char p[512];
	struct stat st;

	cr_assert_eq(shmk_segment_create(c, "m", 4096, &s), 0);
	snprintf(p, sizeof p, "%s/%s.m", T.shm_dir, T.ns);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	shmk_segment_destroy(s);
	shmk_close(c);
}

Test(segment, is_visible_to_an_attacher_in_another_process)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	cr_assert_eq(shmk_segment_create(c, "shared", 4096, &s), 0);
	strcpy(shmk_segment_addr(s), "hello");
	pid_t pid = fork();
	if (pid == 0) {
		shmk_segment *a;
		if (shmk_segment_attach(c, "shared", &a) != 0)
			_exit(1);
		if (strcmp(shmk_segment_addr(a), "hello") != 0)
			_exit(2);
		strcpy(shmk_segment_addr(a), "world");
		/* An attacher may not destroy. */
		if (shmk_segment_destroy(a) != -EPERM)
			_exit(3);
		_exit(0);
	}
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %x", st);
	cr_assert_str_eq(shmk_segment_addr(s), "world");
	cr_assert_eq(shmk_segment_destroy(s), 0);
	shmk_close(c);
}

Test(segment, refuses_a_name_that_already_exists)
{
	shmk_ctx *c = topen();
	shmk_segment *s, *t = NULL;
	char p[512];
	int fd;

	/* Pre-created by somebody else: fail closed, never adopt it. */
	snprintf(p, sizeof p, "%s/%s.taken", T.shm_dir, T.ns);
	fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(shmk_segment_create(c, "taken", 4096, &t), -EEXIST);
	cr_assert_null(t);
	cr_assert(strstr(shmk_last_error(), "taken") != NULL, "%s",
		  shmk_last_error());
	unlink(p);

	/* Twice by ourselves. */
	cr_assert_eq(shmk_segment_create(c, "dup", 4096, &s), 0);
	cr_assert_eq(shmk_segment_create(c, "dup", 4096, &t), -EEXIST);
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0, "close left files behind");
}

Test(segment, rejects_hostile_names)
{
	shmk_ctx *c = topen();
	shmk_segment *s = NULL;
	static const char *const bad[] = {"",   ".",    "..",  "a/b", "/abs",
					  ".hidden", "sp ace", "ü", "a\nb",
					  "../../etc/passwd", NULL};
	char longname[400];

	for (int i = 0; bad[i]; i++) {
		cr_assert_eq(shmk_segment_create(c, bad[i], 4096, &s), -EINVAL,
			     "name \"%s\" was accepted", bad[i]);
		cr_assert_null(s);
		cr_assert(strstr(shmk_last_error(), "invalid") != NULL);
	}
	cr_assert_eq(shmk_segment_create(c, NULL, 4096, &s), -EINVAL);
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	cr_assert_eq(shmk_segment_create(c, longname, 4096, &s), -ENAMETOOLONG);
	cr_assert_eq(shmk_segment_create(c, "zero", 0, &s), -EINVAL);
	cr_assert_eq(shm_count(), 0);
	shmk_close(c);
}

Test(segment, close_destroys_everything_the_process_still_owns)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	for (int i = 0; i < 20; i++) {
		char n[16];
		snprintf(n, sizeof n, "k%d", i);
		cr_assert_eq(shmk_segment_create(c, n, 4096, &s), 0);
		if (i % 2)
			shmk_segment_detach(s); /* handle gone, segment not */
		else
			shmk_segment_destroy(s);
	}
	cr_assert_eq(shm_count(), 10);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(shm_count(), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(segment, destroy_by_name_works_after_detach)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	cr_assert_eq(shmk_segment_create(c, "byname", 4096, &s), 0);
	shmk_segment_detach(s);
	cr_assert(shm_exists("byname"));
	cr_assert_eq(shmk_segment_destroy_name(c, "byname"), 0);
	cr_assert_not(shm_exists("byname"));
	cr_assert_eq(shmk_segment_destroy_name(c, "byname"), -ENOENT);
	shmk_close(c);
}

Test(segment, budget_refuses_a_create_before_allocating)
{
	struct shmk_options o = topts();
	shmk_ctx *c;
	shmk_segment *a, *b = NULL;

	o.budget_bytes = 3 * 4096;
	cr_assert_eq(shmk_open(&o, &c), 0);
	cr_assert_eq(shmk_segment_create(c, "a", 2 * 4096, &a), 0);
	cr_assert_eq(shmk_segment_create(c, "b", 2 * 4096, &b), -EDQUOT);
	cr_assert_null(b);
	cr_assert(strstr(shmk_last_error(), "budget") != NULL, "%s",
		  shmk_last_error());
	cr_assert_not(shm_exists("b"));
	cr_assert_eq(shmk_segment_create(c, "b", 4096, &b), 0);
	shmk_segment_destroy(a);
	shmk_segment_destroy(b);
	shmk_close(c);
}

Test(segment, fork_child_gets_its_own_record_and_cannot_destroy_the_parents)
{
	shmk_ctx *c = topen();
	shmk_segment *s;

	cr_assert_eq(shmk_segment_create(c, "parent", 4096, &s), 0);
	pid_t pid = fork();
	if (pid == 0) {
		shmk_segment *k;
		if (shmk_segment_destroy(s) != -EPERM)
			_exit(1);
		if (shmk_segment_create(c, "child", 4096, &k) != 0)
			_exit(2);
		if (ns_files(".jsonl") != 2 || ns_files(".lock") != 2)
			_exit(3);
		/* Closing in the child removes the child's, not the parent's. */
		if (shmk_close(c) != 0 || shm_exists("child") ||
		    !shm_exists("parent"))
			_exit(4);
		_exit(0);
	}
	int st = reap_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %x", st);
	cr_assert(shm_exists("parent"));
	cr_assert_eq(ns_files(".jsonl"), 1);
	cr_assert_eq(shmk_segment_destroy(s), 0);
	shmk_close(c);
}

Test(segment, failing_shm_open_or_fallocate_or_mmap_leaves_no_object)
{
	static const char *const fps[] = {"shmk/segment/shm_open",
					  "shmk/segment/fallocate",
					  "shmk/segment/mmap", NULL};
	shmk_ctx *c = topen();
	shmk_segment *s = NULL;

	for (int i = 0; fps[i]; i++) {
		fiu_enable(fps[i], 1, NULL, FIU_ONETIME);
		cr_assert_lt(shmk_segment_create(c, "f", 4096, &s), 0, "%s", fps[i]);
		cr_assert_null(s);
		cr_assert_eq(shm_count(), 0, "%s left the object", fps[i]);
		cr_assert_eq(shmk_owned_count(c), 0);
	}
	/* And the context still works. */
	cr_assert_eq(shmk_segment_create(c, "f", 4096, &s), 0);
	shmk_segment_destroy(s);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(ns_files(NULL), 0);
}

static void mount_tiny_shm(void)
{
	/* A private mount namespace: the tmpfs dies with this test process. */
	if (unshare(CLONE_NEWNS) < 0 ||
	    /* The type is ignored for MS_PRIVATE; a string, not NULL, so that
	     * valgrind does not flag the syscall parameter. */
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		cr_skip_test("cannot make a private mount namespace (%s): "
			     "ENOSPC test needs root",
			     strerror(errno));
	}
	snprintf(T.shm_dir, sizeof T.shm_dir, "%s/tinyshm", T.dir);
	mkdir(T.shm_dir, 01777);
	if (mount("tmpfs", T.shm_dir, "tmpfs", 0, "size=64k,mode=1777") < 0)
		cr_skip_test("cannot mount a tiny tmpfs (%s)", strerror(errno));
}

Test(segment, full_tmpfs_fails_with_enospc_at_creation_not_sigbus_later)
{
	shmk_ctx *c;
	shmk_segment *s = NULL, *ok;

	mount_tiny_shm();
	c = topen();
	cr_assert_eq(shmk_segment_create(c, "fits", 16 * 1024, &ok), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "huge", 1 << 20, &s), -ENOSPC,
		     "%s", shmk_last_error());
	cr_assert_null(s);
	cr_assert(strstr(shmk_last_error(), "huge") != NULL, "%s",
		  shmk_last_error());
	cr_assert_not(shm_exists("huge"), "a failed create left its object");
	memset(shmk_segment_addr(ok), 0xab, 16 * 1024); /* no SIGBUS */
	shmk_segment_destroy(ok);
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(shm_count(), 0);
	umount(T.shm_dir);
}
