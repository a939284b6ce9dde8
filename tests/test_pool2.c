/* SPDX-License-Identifier: MIT */
/* test_pool2.c - a pool cannot be kept from starting by somebody who
 * pre-creates the names of its segments. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(pool2, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

static int job(void *mem, size_t size, void *arg)
{
	(void)arg;
	((unsigned char *)mem)[size - 1] = 42;
	return 7;
}

enum { WORKERS = 3, POOLS = 3 };

/* The names the old code gave the segments of this process's pools 0 to
 * POOLS-1 ("/<ns>.pool-<pid>-<n>-ctl", "...-slot<i>"), as files in
 * T.shm_dir, which is what shm_open() creates. */
static void squat(bool create)
{
	for (unsigned n = 0; n < POOLS; n++)
		for (int i = -1; i < WORKERS; i++) {
			char p[PATH_MAX];
			struct stat st;

			if (i < 0)
				snprintf(p, sizeof p, "%s/%s.pool-%d-%u-ctl",
					 T.shm_dir, T.ns, (int)getpid(), n);
			else
				snprintf(p, sizeof p, "%s/%s.pool-%d-%u-slot%d",
					 T.shm_dir, T.ns, (int)getpid(), n, i);
			if (create) {
				int fd = open(p, O_CREAT | O_EXCL | O_RDWR |
							 O_CLOEXEC, 0600);
				cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
				close(fd);
			} else {
				/* Never adopted, never removed by the pool. */
				cr_assert_eq(lstat(p, &st), 0, "%s is gone", p);
				cr_assert_eq(st.st_size, 0, "%s was used", p);
				cr_assert_eq(unlink(p), 0);
			}
		}
}

Test(pool2, a_pool_starts_although_the_names_of_its_segments_were_taken)
{
	struct shmk_pool_options o = {.workers = WORKERS, .slot_size = 4096,
				      .fn = job, .title = "shmk-test"};
	shmk_ctx *c;
	shmk_pool *p = NULL;
	int rc, res = -1, slot;

	squat(true);
	c = topen();
	rc = shmk_pool_create(c, &o, &p);
	cr_assert_eq(rc, 0, "shmk_pool_create: %d %s", rc, shmk_last_error());
	slot = shmk_pool_lease(p, SHMK_LEASE_DEFAULT, 0);
	cr_assert_geq(slot, 0, "lease: %d %s", slot, shmk_last_error());
	cr_assert_eq(shmk_pool_run(p, (unsigned)slot, &res), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(res, 7);
	shmk_pool_release(p, (unsigned)slot);
	cr_assert_eq(shmk_pool_destroy(p), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0, "%s", shmk_last_error());
	squat(false);
}
