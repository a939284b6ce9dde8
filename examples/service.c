/* SPDX-License-Identifier: MIT
 *
 * service.c - a service whose forked children share segments.
 *
 * Shows: shmk_open() (which also reaps what a crashed earlier run left),
 * shmk_segment_create() of a zero-filled, reserved, mapped segment, forked
 * children writing into it through the mapping they inherit, a child that
 * maps it again by name with shmk_segment_attach() (as a program started
 * later would), then shmk_segment_destroy() and shmk_close().  Had the
 * service been killed at any point, the next shmk_open() of the namespace
 * (or shmclean) would have removed the segment.
 *
 * Build: cc service.c $(pkg-config --cflags --libs shmkeeper)
 */
#include "example.h" /* first: it asks for the POSIX functions it uses */

#include <shmkeeper.h>

#include <err.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 4
#define ROUNDS 10000

struct table {
	atomic_ulong hits;
	char greeting[64];
	unsigned long per_child[CHILDREN];
};

/* A child: counts into the shared table through the inherited mapping. */
static void child(struct table *t, int k)
{
	for (int i = 0; i < ROUNDS; i++) {
		atomic_fetch_add(&t->hits, 1);
		t->per_child[k]++;
	}
}

/* The last child maps the segment again by name, as another program of
 * the service would, and reads what the parent wrote. */
static int attached_child(shmk_ctx *ctx)
{
	shmk_segment *seg;

	if (shmk_segment_attach(ctx, "table", &seg) < 0) {
		fprintf(stderr, "service: %s\n", shmk_last_error());
		return 1;
	}
	struct table *t = shmk_segment_addr(seg);
	int ok = strcmp(t->greeting, "hello from the parent") == 0;
	child(t, CHILDREN - 1);
	shmk_segment_detach(seg);
	return ok ? 0 : 1;
}

int main(void)
{
	const char *ns = example_setup("example-service");
	pid_t pids[CHILDREN];
	int failed = 0;

	/* [readme] */
	struct shmk_options o = { .ns = ns };     /* registry: $SHMKEEPER_DIR or the default */
	shmk_ctx *ctx;
	shmk_segment *seg;

	if (shmk_open(&o, &ctx) < 0)              /* also reaps dead owners */
		errx(1, "%s", shmk_last_error());
	if (shmk_segment_create(ctx, "table", sizeof(struct table), &seg) < 0)
		errx(1, "%s", shmk_last_error()); /* /<ns>.table */
	struct table *t = shmk_segment_addr(seg); /* zeroed, reserved, mapped */
	strcpy(t->greeting, "hello from the parent");
	/* [/readme] */

	for (int k = 0; k < CHILDREN; k++) {
		if ((pids[k] = fork()) < 0)
			err(1, "fork");
		if (pids[k] == 0) {
			/* A child only uses the memory: the segment is the
			 * parent's, and only its creator may destroy it. */
			if (k == CHILDREN - 1)
				_exit(attached_child(ctx));
			child(t, k);
			_exit(0);
		}
	}
	for (int k = 0; k < CHILDREN; k++) {
		int st;
		if (waitpid(pids[k], &st, 0) < 0)
			err(1, "waitpid");
		failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	printf("service: %s: %lu hits from %d children (expected %d)\n",
	       shmk_segment_name(seg), (unsigned long)atomic_load(&t->hits),
	       CHILDREN, CHILDREN * ROUNDS);
	if (atomic_load(&t->hits) != CHILDREN * ROUNDS)
		failed = 1;

	/* [readme] */
	if (shmk_segment_destroy(seg) < 0)        /* unlink, then drop the record */
		errx(1, "%s", shmk_last_error());
	if (shmk_close(ctx) < 0)                  /* destroys whatever is left */
		errx(1, "%s", shmk_last_error());
	/* [/readme] */
	example_cleanup(ns);
	return failed;
}
