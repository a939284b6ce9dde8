/* SPDX-License-Identifier: MIT
 *
 * monitor.c - a ResourceMonitor with limits on a namespace.
 *
 * Shows: shmk_monitor_create() with a soft limit (a callback: the service
 * warns, sheds load) and a hard limit (shmk_segment_create() on the
 * attached context fails with -EDQUOT before anything is allocated) on the
 * bytes of the namespace; a baseline and a leak verdict
 * (shmk_monitor_check()) once everything is given back; a sample as JSON.
 *
 * Build: cc monitor.c $(pkg-config --cflags --libs shmkeeper)
 */
#include "example.h" /* first: it asks for the POSIX functions it uses */

#include <shmkeeper.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SEG_SIZE (64 * 1024)
#define MAX_SEGS 16

static unsigned soft_calls;

/* The soft limit's callback: called by every create that finds the
 * namespace above the limit. */
static void on_soft(const char *resource, uint64_t value, uint64_t limit,
		    void *arg)
{
	(void)arg;
	if (soft_calls++ == 0)
		printf("monitor: soft limit: %s is %llu bytes, above %llu\n",
		       resource, (unsigned long long)value,
		       (unsigned long long)limit);
}

int main(void)
{
	const char *ns = example_setup("example-monitor");
	struct shmk_options o = {.ns = ns};
	struct shmk_monitor_options mo = {
		.ns = ns,                     /* count this namespace's segments */
		.ns_bytes_soft = 4 * SEG_SIZE, /* callback above 256 KiB */
		.ns_bytes_hard = 6 * SEG_SIZE, /* refuse creates past 384 KiB */
		.on_soft = on_soft,
	};
	shmk_segment *segs[MAX_SEGS] = {0};
	struct shmk_sample s;
	struct shmk_verdict v;
	shmk_monitor *m;
	shmk_ctx *ctx;
	char line[512];
	int n = 0, rc = 0, failed = 0;

	if (shmk_open(&o, &ctx) < 0)
		errx(1, "%s", shmk_last_error());
	if (shmk_monitor_create(&mo, &m) < 0 || shmk_monitor_attach(m, ctx) < 0)
		errx(1, "%s", shmk_last_error());
	/* Warm up, then take the baseline: the first create opens this
	 * process's record and lock file, which stay open until shmk_close(). */
	if (shmk_segment_create(ctx, "warmup", SEG_SIZE, &segs[0]) < 0 ||
	    shmk_segment_destroy(segs[0]) < 0 ||
	    shmk_monitor_set_baseline(m, NULL) < 0)
		errx(1, "%s", shmk_last_error());

	/* Allocate until the hard limit says no. */
	while (n < MAX_SEGS) {
		char name[32];
		snprintf(name, sizeof name, "chunk%d", n);
		if ((rc = shmk_segment_create(ctx, name, SEG_SIZE, &segs[n])) < 0)
			break;
		n++;
	}
	printf("monitor: %d segments of %d KiB created; the next one: %s\n", n,
	       SEG_SIZE / 1024, rc < 0 ? shmk_last_error() : "(none refused)");
	failed |= rc != -EDQUOT || n != 6 || soft_calls == 0;

	if (shmk_monitor_sample(m, &s) == 0 &&
	    shmk_sample_json(&s, line, sizeof line) > 0)
		printf("monitor: sample: %s\n", line);
	if (shmk_monitor_check(m, &s, &v) == 0)
		printf("monitor: while holding them: %s\n",
		       v.leak ? v.reason : "no leak");
	failed |= !v.segment_leak;

	/* Give everything back: the verdict must be clean again. */
	for (int i = 0; i < n; i++)
		if (shmk_segment_destroy(segs[i]) < 0)
			errx(1, "%s", shmk_last_error());
	if (shmk_monitor_check(m, NULL, &v) < 0)
		errx(1, "%s", shmk_last_error());
	printf("monitor: after destroying them: %s\n",
	       v.leak ? v.reason : "no leak");
	failed |= v.leak;

	shmk_monitor_attach(NULL, ctx); /* detach before the monitor goes */
	shmk_monitor_destroy(m);
	if (shmk_close(ctx) < 0)
		errx(1, "%s", shmk_last_error());
	example_cleanup(ns);
	return failed;
}
