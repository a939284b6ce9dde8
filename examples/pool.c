/* SPDX-License-Identifier: MIT
 *
 * pool.c - a worker pool whose jobs have deadlines.
 *
 * Shows: shmk_pool_create() with a job deadline (job_timeout_ms), a job
 * that passes input and result through its slot's shared memory, a job
 * that hangs and is ended by its deadline (shmk_pool_run_timeout():
 * -ETIMEDOUT, the worker SIGKILLed), the death report of that worker
 * (shmk_pool_last_death(), shmk_death_json(): kind "timeout", peak RSS,
 * limits), and the slot serving again with a fresh worker.
 *
 * Build: cc pool.c $(pkg-config --cflags --libs shmkeeper)
 */
#include "example.h" /* first: it asks for the POSIX functions it uses */

#include <shmkeeper.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What a caller writes into the slot, and the worker's answer. */
struct job {
	char op[16]; /* "sum" or "hang" */
	unsigned n;
	unsigned long long sum;
};

/* Runs in a worker process, once per job. */
static int work(void *mem, size_t size, void *arg)
{
	struct job *j = mem;

	(void)size; (void)arg;
	if (strcmp(j->op, "hang") == 0)
		for (;;)
			pause(); /* a stuck job: only its deadline ends it */
	j->sum = 0;
	for (unsigned i = 1; i <= j->n; i++)
		j->sum += i;
	return 0;
}

/* Leases a slot, runs one job on it within timeout_ms (0: the pool's
 * deadline) and releases it.  Returns shmk_pool_run_timeout()'s result. */
static int run(shmk_pool *p, const char *op, unsigned n, unsigned timeout_ms,
	       int *slot_out, unsigned long long *sum)
{
	int slot = shmk_pool_lease(p, SHMK_LEASE_DEADLINE, 5000), rc, result;

	if (slot < 0)
		errx(1, "lease: %s", shmk_last_error());
	struct job *j = shmk_pool_slot_mem(p, (unsigned)slot);
	snprintf(j->op, sizeof j->op, "%s", op);
	j->n = n;
	rc = shmk_pool_run_timeout(p, (unsigned)slot, &result, timeout_ms);
	if (rc == 0 && sum)
		*sum = j->sum;
	shmk_pool_release(p, (unsigned)slot);
	*slot_out = slot;
	return rc;
}

int main(void)
{
	const char *ns = example_setup("example-pool");
	struct shmk_options o = {.ns = ns};
	struct shmk_pool_options po = {
		.workers = 2,
		.slot_size = 4096,
		.fn = work,
		.job_timeout_ms = 2000,  /* the default deadline of every job */
		.shutdown_grace_ms = 500,
	};
	struct shmk_death d;
	shmk_ctx *ctx;
	shmk_pool *pool;
	unsigned long long sum = 0;
	char report[1024];
	int slot, rc, failed = 0;

	if (shmk_open(&o, &ctx) < 0)
		errx(1, "%s", shmk_last_error());
	if (shmk_pool_create(ctx, &po, &pool) < 0)
		errx(1, "%s", shmk_last_error());

	/* An ordinary job, within the pool's deadline. */
	if ((rc = run(pool, "sum", 1000, 0, &slot, &sum)) < 0)
		errx(1, "sum: %s", shmk_last_error());
	printf("pool: slot %d: sum 1..1000 = %llu\n", slot, sum);
	failed |= sum != 500500;

	/* A job that never ends, with a deadline of 100 ms for this call. */
	rc = run(pool, "hang", 0, 100, &slot, NULL);
	printf("pool: slot %d: hanging job: %s\n", slot,
	       rc == -ETIMEDOUT ? "ended by its deadline (-ETIMEDOUT)"
				: strerror(-rc));
	failed |= rc != -ETIMEDOUT;
	if (shmk_pool_last_death(pool, (unsigned)slot, &d) == 0 &&
	    shmk_death_json(&d, report, sizeof report) > 0)
		printf("pool: death report: %s\n", report);
	failed |= d.kind != SHMK_DEATH_TIMEOUT;

	/* The slot serves again, with a new worker. */
	if ((rc = run(pool, "sum", 10, 0, &slot, &sum)) < 0)
		errx(1, "sum: %s", shmk_last_error());
	printf("pool: slot %d: sum 1..10 = %llu; deaths so far: %u\n", slot,
	       sum, shmk_pool_deaths(pool));
	failed |= sum != 55;

	if (shmk_pool_destroy(pool) < 0) /* bounded by shutdown_grace_ms */
		errx(1, "%s", shmk_last_error());
	if (shmk_close(ctx) < 0)
		errx(1, "%s", shmk_last_error());
	example_cleanup(ns);
	return failed;
}
