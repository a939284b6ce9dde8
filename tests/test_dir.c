/* SPDX-License-Identifier: MIT */
/* test_dir.c - finding the registry directory and refusing unsafe ones. */
#include "helpers.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(dir, .init = tenv_setup, .fini = tenv_teardown, .timeout = 30);

static int try_open(const char *dir, const char *ns)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	o.dir = dir;
	o.ns = ns;
	int rc = shmk_open(&o, &c);
	if (rc == 0)
		shmk_close(c);
	else
		cr_assert_null(c);
	return rc;
}

Test(dir, resolves_argument_then_environment_then_the_runtime_default)
{
	char out[PATH_MAX];

	setenv("SHMKEEPER_DIR", "/from/env", 1);
	cr_assert_eq(shmk__dir_resolve("/from/arg/", out, sizeof out), 0);
	cr_assert_str_eq(out, "/from/arg");
	cr_assert_eq(shmk__dir_resolve(NULL, out, sizeof out), 0);
	cr_assert_str_eq(out, "/from/env");
	unsetenv("SHMKEEPER_DIR");
	cr_assert_eq(shmk__dir_resolve(NULL, out, sizeof out), 0);
	if (geteuid() == 0) {
		cr_assert_str_eq(out, "/run/shmkeeper");
	} else {
		char want[PATH_MAX];
		const char *x = getenv("XDG_RUNTIME_DIR");
		if (x && x[0] == '/')
			snprintf(want, sizeof want, "%s/shmkeeper", x);
		else
			snprintf(want, sizeof want, "/tmp/shmkeeper-%u", geteuid());
		cr_assert_str_eq(out, want);
	}
}

Test(dir, creates_missing_directories_with_mode_0700)
{
	char d[PATH_MAX];
	struct stat st;

	snprintf(d, sizeof d, "%s/fresh", T.dir);
	cr_assert_eq(try_open(d, T.ns), 0, "%s", shmk_last_error());
	cr_assert_eq(stat(d, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(d, sizeof d, "%s/fresh/%s", T.dir, T.ns);
	cr_assert_eq(stat(d, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
}

Test(dir, refuses_a_symlinked_registry_directory)
{
	char real[PATH_MAX], link[PATH_MAX];

	snprintf(real, sizeof real, "%s/real", T.dir);
	snprintf(link, sizeof link, "%s/link", T.dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, link), 0);
	cr_assert_eq(try_open(link, T.ns), -ELOOP);
	cr_assert(strstr(shmk_last_error(), link) &&
			  strstr(shmk_last_error(), "symlink"),
		  "%s", shmk_last_error());
}

Test(dir, refuses_a_symlinked_namespace_directory)
{
	char real[PATH_MAX], link[PATH_MAX];

	snprintf(real, sizeof real, "%s/elsewhere", T.dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	snprintf(link, sizeof link, "%s/%s", T.dir, T.ns);
	cr_assert_eq(symlink(real, link), 0);
	cr_assert_eq(try_open(T.dir, T.ns), -ELOOP);
	cr_assert(strstr(shmk_last_error(), "symlink"), "%s", shmk_last_error());
}

Test(dir, refuses_a_group_or_world_writable_directory)
{
	cr_assert_eq(chmod(T.dir, 0777), 0);
	cr_assert_eq(try_open(T.dir, T.ns), -EPERM);
	cr_assert(strstr(shmk_last_error(), "world writable") &&
			  strstr(shmk_last_error(), T.dir),
		  "%s", shmk_last_error());
	cr_assert_eq(chmod(T.dir, 0720), 0);
	cr_assert_eq(try_open(T.dir, T.ns), -EPERM);
	cr_assert_eq(chmod(T.dir, 0700), 0);
	cr_assert_eq(try_open(T.dir, T.ns), 0, "%s", shmk_last_error());
}

Test(dir, refuses_a_directory_owned_by_another_user)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to chown a directory to another uid");
	cr_assert_eq(chown(T.dir, 65534, 65534), 0);
	cr_assert_eq(try_open(T.dir, T.ns), -EPERM);
	cr_assert(strstr(shmk_last_error(), "owned by uid 65534"), "%s",
		  shmk_last_error());
	cr_assert_eq(chown(T.dir, 0, 0), 0);
}

Test(dir, refuses_a_file_where_the_directory_should_be)
{
	char f[PATH_MAX];
	snprintf(f, sizeof f, "%s/plainfile", T.dir);
	FILE *fp = fopen(f, "w");
	cr_assert_not_null(fp);
	fclose(fp);
	cr_assert_eq(try_open(f, T.ns), -ENOTDIR);
	cr_assert(strstr(shmk_last_error(), "not a directory"), "%s",
		  shmk_last_error());
}

Test(dir, rejects_invalid_namespaces_before_touching_the_disk)
{
	static const char *const bad[] = {"", "a.b", "a/b", "..", "x y",
					  "012345678901234567890123456789012", NULL};
	for (int i = 0; bad[i]; i++) {
		cr_assert_eq(try_open(T.dir, bad[i]), -EINVAL, "\"%s\"", bad[i]);
		cr_assert(strstr(shmk_last_error(), "namespace"));
	}
	cr_assert_eq(try_open(T.dir, NULL), -EINVAL);
	cr_assert_eq(ns_files(NULL), 0);
}

Test(dir, auto_durability_is_off_on_tmpfs_and_on_elsewhere)
{
	int fd = open("/dev/shm", O_RDONLY | O_DIRECTORY);
	cr_assert(shmk__fd_is_volatile(fd));
	close(fd);
	fd = open("/proc", O_RDONLY | O_DIRECTORY);
	cr_assert_not(shmk__fd_is_volatile(fd));
	close(fd);
}
