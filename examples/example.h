/* SPDX-License-Identifier: MIT
 *
 * example.h - what every example needs around the API: a registry
 * directory and a namespace of its own, so that an example never touches a
 * real service's.  Not part of shmkeeper: a real service uses the default
 * registry (or $SHMKEEPER_DIR) and its own namespace name.
 *
 *   SHMKEEPER_DIR  the registry directory (shmk_open() reads it); if unset,
 *                  the example makes a temporary one, sets SHMKEEPER_DIR
 *                  and removes it at the end, with the claim in /dev/shm
 *                  that binds the namespace to it.
 *   SHMKEEPER_NS   the namespace; if unset, the example's own name.
 */
#ifndef SHMK_EXAMPLE_H
#define SHMK_EXAMPLE_H

#define _XOPEN_SOURCE 700 /* mkdtemp(), nftw(), setenv() */

#include <err.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char example_tmp[] = "/tmp/shmkeeper-example.XXXXXX";
static int example_made_dir;

/* Returns the namespace ($SHMKEEPER_NS, else fallback) and makes sure
 * $SHMKEEPER_DIR names a registry directory for shmk_open() to use. */
static const char *example_setup(const char *fallback)
{
	const char *d = getenv("SHMKEEPER_DIR"), *ns = getenv("SHMKEEPER_NS");

	if (!d || !d[0]) {
		if (!mkdtemp(example_tmp) ||
		    setenv("SHMKEEPER_DIR", example_tmp, 1) < 0)
			err(1, "%s", example_tmp);
		example_made_dir = 1;
	}
	return ns && ns[0] ? ns : fallback;
}

static int example_rm(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st; (void)type; (void)ftw;
	return remove(path);
}

/* After shmk_close(): removes the temporary registry, if the example made
 * one, and the claim binding ns to it (which the library keeps for ever:
 * it names a registry that is gone now). */
static void example_cleanup(const char *ns)
{
	char claim[128];

	if (!example_made_dir)
		return;
	if (nftw(example_tmp, example_rm, 8, FTW_DEPTH | FTW_PHYS) < 0)
		warn("removing %s", example_tmp);
	snprintf(claim, sizeof claim, "/dev/shm/.shmkeeper-claim.%u.%s",
		 (unsigned)geteuid(), ns);
	unlink(claim);
}

#endif
