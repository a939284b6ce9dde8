/* SPDX-License-Identifier: MIT */
/* test_perms.c - every file and segment the library creates is 0600 in a
 * 0700 directory, and a pre-created name or a planted symlink makes
 * creation fail closed. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(perms, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

static mode_t mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

Test(perms, every_file_and_segment_is_0600_in_0700_directories)
{
	/* Even with a permissive umask: the library asks for 0600/0700. */
	mode_t old = umask(0);
	shmk_ctx *c = topen();
	shmk_segment *s;
	char p[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int files = 0;

	cr_assert_eq(shmk_segment_create(c, "m", 4096, &s), 0);
	umask(old);
	cr_assert_eq(mode_of(T.dir), 0700);
	cr_assert_eq(mode_of(T.ns_dir), 0700);
	snprintf(p, sizeof p, "%s/%s.m", T.shm_dir, T.ns);
	cr_assert_eq(mode_of(p), 0600, "segment mode %o", mode_of(p));
	cr_assert_not_null(d = opendir(T.ns_dir));
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", T.ns_dir, e->d_name);
		cr_assert_eq(mode_of(p), 0600, "%s mode %o", e->d_name, mode_of(p));
		files++;
	}
	closedir(d);
	cr_assert_eq(files, 2, "expected a record and a lock file");
	shmk_segment_destroy(s);
	shmk_close(c);
}

Test(perms, the_quarantine_directory_is_0700)
{
	char buf[] = "not json\n";
	int rc;

	put_file("p4000000-1-00c0ffee.lock", "", 0);
	put_file("p4000000-1-00c0ffee.jsonl", buf, sizeof buf - 1);
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rep->quarantined, 1);
	shmk_reap_report_free(rep);
	char q[PATH_MAX];
	snprintf(q, sizeof q, "%s/quarantine", T.ns_dir);
	cr_assert_eq(mode_of(q), 0700);
}

Test(perms, a_symlink_planted_at_a_segment_name_fails_closed)
{
	shmk_ctx *c = topen();
	shmk_segment *s = NULL;
	char link[PATH_MAX], target[PATH_MAX];

	snprintf(target, sizeof target, "%s/target", T.dir);
	int fd = open(target, O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(write(fd, "keep", 4), 4);
	close(fd);
	snprintf(link, sizeof link, "%s/%s.planted", T.shm_dir, T.ns);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(shmk_segment_create(c, "planted", 4096, &s), -EEXIST);
	cr_assert_null(s);
	cr_assert_eq(shmk_segment_attach(c, "planted", &s), -ELOOP,
		     "attach followed a symlink");
	struct stat st;
	cr_assert_eq(stat(target, &st), 0);
	cr_assert_eq(st.st_size, 4, "the symlink's target was touched");
	unlink(link);
	shmk_close(c);
}

Test(perms, a_symlink_planted_at_the_lock_files_temporary_name_is_not_followed)
{
	/* The owner id is random, so plant at every name it could take is
	 * impossible; instead plant the record's and the lock's temporary
	 * names of a fixed id and check the library's O_EXCL|O_NOFOLLOW
	 * creation refuses them (shmk__replace removes a stale temp itself;
	 * the lock file's temp is created O_EXCL: a planted one fails the
	 * create, and nothing is written through it). */
	char target[PATH_MAX], link[PATH_MAX];
	struct stat st;

	mkdir(T.ns_dir, 0700);
	snprintf(target, sizeof target, "%s/victim", T.dir);
	int fd = open(target, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(link, sizeof link, "%s/.p1-1-00000000.lock.tmp", T.ns_dir);
	cr_assert_eq(symlink(target, link), 0);
	/* A reap treats it as a dead creator's temp (pid 1's start time
	 * does not match) and removes the link itself, not its target. */
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	shmk_reap_report_free(rep);
	cr_assert_eq(stat(target, &st), 0, "the target was removed");
	cr_assert_eq(st.st_size, 0);
	unlink(link);
}

Test(perms, a_registry_directory_with_a_planted_symlink_for_the_namespace_fails_closed)
{
	char real[PATH_MAX];

	snprintf(real, sizeof real, "%s/elsewhere", T.dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, T.ns_dir), 0);
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	cr_assert_eq(shmk_open(&o, &c), -ELOOP);
	cr_assert_null(c);
	DIR *d = opendir(real);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	cr_assert_eq(n, 0, "files were created through the symlink");
	unlink(T.ns_dir);
}
