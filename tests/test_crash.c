/* SPDX-License-Identifier: MIT */
/* test_crash.c - SIGKILL between any two steps of the protocol, then check
 * invariants 1-3 and that a reap leaves nothing behind. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(crash, .init = tenv_setup, .fini = tenv_teardown, .timeout = 120);

static const char *const points[] = {
	"lock/after_lock",        "owner/after_lock_file",
	"replace/after_open",     "replace/after_write",
	"replace/after_rename",   "create/after_intent",
	"create/after_shm_open",  "create/after_mmap",
	"create/after_live",      "destroy/after_unlink",
	"destroy/after_drop",     "close/after_segments",
	"close/after_record",     "append/after_half",
	NULL};

static int kill_at; /* kill on this hit of the crash point */
static int hits;

static int kill_on_kth(const char *name, int *failnum, void **failinfo,
		       unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	if (++hits == kill_at)
		kill(getpid(), SIGKILL);
	return 0;
}

/* Creates and destroys enough to pass every crash point many times,
 * including journal compactions, then closes. */
static void workload(shmk_ctx *c)
{
	shmk_segment *keep[3], *s;
	char n[32];

	for (int i = 0; i < 3; i++) {
		snprintf(n, sizeof n, "keep%d", i);
		if (shmk_segment_create(c, n, 4096, &keep[i]) != 0)
			_exit(10);
	}
	for (int i = 0; i < 60; i++) {
		snprintf(n, sizeof n, "t%d", i % 7);
		if (shmk_segment_create(c, n, 4096, &s) != 0)
			_exit(11);
		if (shmk_segment_destroy(s) != 0)
			_exit(12);
	}
	shmk_segment_destroy(keep[0]);
	shmk_segment_detach(keep[1]);
	shmk_segment_detach(keep[2]);
	if (shmk_close(c) != 0)
		_exit(13);
}

struct trial {
	const char *point;
	int k;
};

static int run_trial(void *arg)
{
	struct trial *t = arg;
	char fp[128];

	kill_at = t->k;
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	if (strcmp(t->point, "append/after_half") == 0)
		fiu_enable_random("shmk/test/append/half", 1, NULL, 0, 0.3f);
	snprintf(fp, sizeof fp, "shmk/crash/%s", t->point);
	fiu_enable_external(fp, 1, NULL, 0, kill_on_kth);
	workload(c);
	return 0;
}

/* Invariants 1 and 3: every record parses; every object is named by one. */
static void check_invariants(const char *what)
{
	struct shmk_table named;
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	int dfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY);

	cr_assert_eq(shmk__table_init(&named, 16), 0);
	struct shmk_record recs[8];
	int nrec = 0;
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char why[256];
		if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 6, ".jsonl"))
			continue;
		cr_assert_lt(nrec, 8);
		int rc = shmk__record_load(dfd, e->d_name, T.ns, &recs[nrec], why,
					   sizeof why);
		cr_assert_eq(rc, 0, "%s: record %s invalid after crash: %s", what,
			     e->d_name, why);
		for (size_t i = 0; i < recs[nrec].n_segs; i++)
			shmk__table_put(&named, recs[nrec].segs[i]->name, recs[nrec].segs[i]);
		nrec++;
	}
	if (d)
		closedir(d);
	if (dfd >= 0)
		close(dfd);
	d = opendir(T.shm_dir);
	size_t l = strlen(T.ns);
	while (d && (e = readdir(d))) {
		char full[300];
		if (strncmp(e->d_name, T.ns, l) || e->d_name[l] != '.')
			continue;
		snprintf(full, sizeof full, "/%s", e->d_name);
		cr_assert_not_null(shmk__table_get(&named, full),
				   "%s: object %s exists without a record", what,
				   full);
	}
	if (d)
		closedir(d);
	for (int i = 0; i < nrec; i++)
		shmk__record_free(&recs[i]);
	shmk__table_free(&named);
}

static void reap_to_zero(const char *what)
{
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%s: reap: %s", what, shmk_last_error());
	cr_assert_eq(rep->errors + rep->quarantined, 0, "%s", what);
	shmk_reap_report_free(rep);
	cr_assert_eq(shm_count(), 0, "%s: objects left after reap", what);
	cr_assert_eq(ns_files(NULL), 0, "%s: registry files left after reap", what);
	cr_assert_eq(ns_files(".tmp"), 0);
}

Test(crash, sigkill_at_every_step_leaves_a_reapable_consistent_state)
{
	static const int ks[] = {1, 2, 3, 5, 8, 13, 40, 90};
	int trials = 0, killed = 0;

	for (int p = 0; points[p]; p++) {
		int killed_here = 0;
		for (size_t k = 0; k < sizeof ks / sizeof *ks; k++) {
			struct trial t = {points[p], ks[k]};
			char what[128];
			snprintf(what, sizeof what, "%s #%d", t.point, t.k);
			int st = reap_child(spawn(run_trial, &t));
			cr_assert((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
					  (WIFEXITED(st) && WEXITSTATUS(st) == 0),
				  "%s: child status %x", what, st);
			killed += WIFSIGNALED(st);
			killed_here += WIFSIGNALED(st);
			trials++;
			check_invariants(what);
			reap_to_zero(what);
		}
		cr_assert_gt(killed_here, 0, "crash point %s was never reached",
			     points[p]);
	}
	cr_log_info("crash points: %d, trials: %d, killed mid-protocol: %d",
		    (int)(sizeof points / sizeof *points - 1), trials, killed);
}

static int reaper_trial(void *arg)
{
	struct trial *t = arg;
	char fp[128];
	struct shmk_reap_report *rep;
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_NO_STRAYS};
	kill_at = t->k;
	snprintf(fp, sizeof fp, "shmk/crash/%s", t->point);
	fiu_enable_external(fp, 1, NULL, 0, kill_on_kth);
	shmk_reap(&o, &rep);
	return 0;
}

static int die_holding(void *arg)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s;
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof n, "%s%d", (const char *)arg, i);
		if (shmk_segment_create(c, n, 4096, &s) != 0)
			return 1;
	}
	kill(getpid(), SIGKILL);
	return 2;
}

Test(crash, a_reaper_killed_midway_is_finished_by_the_next_one)
{
	static const char *const rpoints[] = {"reap/after_segment",
					      "reap/before_file_unlink", NULL};
	int trials = 0;
	for (int p = 0; rpoints[p]; p++) {
		for (int k = 1; k <= 6; k++) {
			reap_child(spawn(die_holding, "a"));
			reap_child(spawn(die_holding, "b"));
			cr_assert_eq(shm_count(), 10);
			struct trial t = {rpoints[p], k};
			int st = reap_child(spawn(reaper_trial, &t));
			cr_assert(WIFSIGNALED(st) || WIFEXITED(st));
			check_invariants(t.point);
			reap_to_zero(t.point);
			trials++;
		}
	}
	cr_log_info("reaper crash trials: %d", trials);
}

static int churn(void *arg)
{
	(void)arg;
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	shmk_segment *s[4] = {0};
	for (unsigned i = 0;; i++) {
		char n[16];
		unsigned j = i % 4;
		if (s[j]) {
			shmk_segment_destroy(s[j]);
			s[j] = NULL;
		} else {
			snprintf(n, sizeof n, "c%u", i % 13);
			shmk_segment_create(c, n, 4096, &s[j]);
		}
	}
	return 0;
}

Test(crash, hundreds_of_random_sigkills_never_leak_and_never_touch_the_living)
{
	shmk_ctx *live = topen();
	shmk_segment *mine;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int trials = 300;

	cr_log_info("random kill seed %u", seed);
	srand(seed);
	cr_assert_eq(shmk_segment_create(live, "living", 4096, &mine), 0);
	strcpy(shmk_segment_addr(mine), "still here");
	for (int i = 0; i < trials; i++) {
		pid_t pid = spawn(churn, NULL);
		struct timespec ts = {0, (rand() % 3000) * 1000L};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		reap_child(pid);
		check_invariants("random kill");
		int rc;
		struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);
		cr_assert_eq(rc, 0, "trial %d: %s", i, shmk_last_error());
		cr_assert_eq(rep->owners_alive, 1);
		shmk_reap_report_free(rep);
		cr_assert_eq(shm_count(), 1, "trial %d (seed %u): %zu objects", i,
			     seed, shm_count());
		cr_assert(shm_exists("living"));
		cr_assert_eq(ns_files(".jsonl"), 1);
	}
	cr_assert_str_eq(shmk_segment_addr(mine), "still here");
	shmk_segment_destroy(mine);
	cr_assert_eq(shmk_close(live), 0);
	cr_log_info("random kill trials: %d", trials);
}
