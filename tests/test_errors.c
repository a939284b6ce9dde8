/* SPDX-License-Identifier: MIT */
/* test_errors.c - the error loop: for each kind of system call the library
 * makes, fail the k-th call (k = 1..K), once and always, under a workload
 * that uses everything (open, create, attach, destroy, a pool with a job,
 * close).  Every failure must come back as a clean error with a sentence,
 * and afterwards nothing may be left: no descriptor, no child, no thread,
 * no segment, no registry or temporary file, and (under ASan) no leaked
 * memory.  Modelled on SQLite's I/O-error and OOM loops. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fiu-control.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(errors, .init = tenv_setup, .fini = tenv_teardown, .timeout = 300);

/* LeakSanitizer's on-demand check, present only in sanitizer builds. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static const struct call {
	const char *name;
	int err;
	bool always_ok; /* can "always" fail and still leave a clean state? */
	bool absorbed;  /* the library retries it: the caller sees no error */
} calls[] = {
	{"openat", EMFILE, true, false},   {"write", ENOSPC, true, false},
	{"fsync", EIO, true, false},       {"rename", EXDEV, true, false},
	{"mkdir", EACCES, true, false},    {"shm_open", EMFILE, true, false},
	{"fallocate", ENOSPC, true, false}, {"mmap", ENOMEM, true, false},
	{"fcntl", ENOLCK, true, false},    {"fork", EAGAIN, true, false},
	/* An interrupted waitpid is retried; one that failed for good would
	 * leave a zombie by definition, so only "once" applies. */
	{"waitpid", EINTR, false, true},   {"malloc", ENOMEM, true, false},
	{"flock", ENOLCK, true, false},
};

static int kth, hits;
static bool always;

static int on_kth(const char *name, int *failnum, void **failinfo,
		  unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	hits++;
	return always ? hits >= kth : hits == kth;
}

static int job(void *mem, size_t size, void *arg)
{
	(void)arg;
	memset(mem, 0x5a, size);
	return 42;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = -1; /* the listing's own descriptor */

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Child exit codes. */
enum { OK = 0, OK_NO_FAILURE = 1, OK_NOT_REACHED = 2, NO_SENTENCE = 10,
       FD_LEAK, CHILD_LEAK, MEM_LEAK, BAD_RESULT };

#define CHECK_RC(rc)                                                   \
	do {                                                           \
		if ((rc) < 0) {                                        \
			failures++;                                    \
			if (!shmk_last_error()[0])                     \
				_exit(NO_SENTENCE);                    \
		}                                                      \
	} while (0)

static int workload(const struct call *c)
{
	struct shmk_options o = topts();
	struct shmk_pool_options po = {.workers = 1, .slot_size = 4096,
				       .fn = job, .start_timeout_ms = 500,
				       .shutdown_grace_ms = 200,
				       .backoff_min_ms = 1, .backoff_max_ms = 5};
	shmk_ctx *ctx = NULL;
	shmk_segment *s[4] = {0}, *a = NULL;
	shmk_pool *p = NULL;
	long fds = count_fds();
	int rc, failures = 0;
	char name[256];

	if (!strcmp(c->name, "fsync"))
		o.durability = SHMK_DURABLE_ON; /* or nothing is ever synced */
	snprintf(name, sizeof name, "shmk/sys/%s", c->name);
	fiu_enable_external(name, 1, (void *)(intptr_t)c->err, 0, on_kth);

	rc = shmk_open(&o, &ctx);
	CHECK_RC(rc);
	if (rc == 0) {
		for (int i = 0; i < 4; i++) {
			char n[16];
			snprintf(n, sizeof n, "e%d", i);
			CHECK_RC(shmk_segment_create(ctx, n, 8192, &s[i]));
		}
		if (s[0])
			CHECK_RC(shmk_segment_destroy(s[0]));
		if (s[1]) {
			shmk_segment_detach(s[1]);
			CHECK_RC(shmk_segment_destroy_name(ctx, "e1"));
		}
		if (s[2]) {
			rc = shmk_segment_attach(ctx, "e2", &a);
			CHECK_RC(rc);
			shmk_segment_detach(a);
		}
		rc = shmk_pool_create(ctx, &po, &p);
		CHECK_RC(rc);
		if (rc == 0) {
			int slot = shmk_pool_lease(p, SHMK_LEASE_WAIT, 0), r = 0;
			if (slot >= 0) {
				rc = shmk_pool_run(p, (unsigned)slot, &r);
				CHECK_RC(rc);
				if (rc == 0 && r != 42)
					_exit(BAD_RESULT);
				shmk_pool_release(p, (unsigned)slot);
			}
			CHECK_RC(shmk_pool_destroy(p));
		}
		if (s[2])
			shmk_segment_detach(s[2]);
		if (s[3])
			shmk_segment_detach(s[3]);
		CHECK_RC(shmk_close(ctx));
	}
	fiu_disable(name);

	if (count_fds() != fds)
		_exit(FD_LEAK);
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		_exit(CHILD_LEAK);
	if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
		_exit(MEM_LEAK);
	_exit(failures ? OK : hits >= kth ? OK_NO_FAILURE : OK_NOT_REACHED);
}

static const char *what(int code)
{
	switch (code) {
	case NO_SENTENCE: return "an error came back without a sentence";
	case FD_LEAK: return "a descriptor leaked";
	case CHILD_LEAK: return "a child process was left";
	case MEM_LEAK: return "memory leaked";
	case BAD_RESULT: return "a job returned a wrong result";
	}
	return "unexpected exit";
}

Test(errors, every_failing_call_returns_a_clean_error_and_leaks_nothing)
{
	const int K = 8;
	int trials = 0, failed_runs = 0;

	for (size_t ci = 0; ci < sizeof calls / sizeof *calls; ci++) {
		int saw_failure = 0, reached = 0;
		for (int mode = 0; mode < 2; mode++) {
			if (mode == 1 && !calls[ci].always_ok)
				continue;
			for (int k = 1; k <= K; k++) {
				kth = k;
				hits = 0;
				always = mode == 1;
				pid_t pid = fork();
				cr_assert_geq(pid, 0);
				if (pid == 0)
					workload(&calls[ci]);
				int st = reap_child(pid);
				cr_assert(WIFEXITED(st) && WEXITSTATUS(st) <= OK_NOT_REACHED,
					  "%s fails at call %d (%s): %s (status %x)",
					  calls[ci].name, k, always ? "always" : "once",
					  WIFEXITED(st) ? what(WEXITSTATUS(st))
							: "killed by a signal",
					  st);
				/* What the failure left must be reapable, and a
				 * reap must leave nothing at all. */
				saw_failure += WEXITSTATUS(st) == OK;
				reached += WEXITSTATUS(st) != OK_NOT_REACHED;
				int rc;
				struct shmk_reap_report *rep = treap(0, &rc);
				cr_assert_eq(rep->quarantined + rep->errors, 0,
					     "%s #%d: reap found a bad record or error",
					     calls[ci].name, k);
				failed_runs += rep->owners_dead > 0;
				shmk_reap_report_free(rep);
				cr_assert_eq(shm_count(), 0, "%s #%d %s: segments left",
					     calls[ci].name, k, always ? "always" : "once");
				cr_assert_eq(ns_files(NULL), 0,
					     "%s #%d %s: registry files left",
					     calls[ci].name, k, always ? "always" : "once");
				trials++;
			}
		}
		/* The failpoint was reached, and made some call fail unless
		 * the library absorbs that failure (a retried EINTR). */
		cr_assert_gt(reached, 0, "%s was never called", calls[ci].name);
		if (!calls[ci].absorbed)
			cr_assert_gt(saw_failure, 0,
				     "failing %s never made any call fail",
				     calls[ci].name);
	}
	cr_log_info("error loop: %zu kinds of call, %d trials (K = %d, once and "
		    "always), %d left a dead owner's record for the reaper",
		    sizeof calls / sizeof *calls, trials, K, failed_runs);
}
