/* SPDX-License-Identifier: MIT */
/* test_recv2.c - record format version 2: the owner's pid namespace
 * (issue 9 item 5).  A pid and a start time name a process only inside the
 * pid namespace they were read in, so version 2 records that namespace as
 * owner.pidns; version-1 records (no pidns: unknown) are still read.  The
 * fixtures of registry/ are also run through both parsers by
 * test_record.c; here each version-2 rule is held to both parsers by
 * name. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(recv2, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define FIX_NS "fix"
#define MAX53 9007199254740991ull
#define BOOT "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define INIT_PIDNS 4026531836ull /* the initial pid namespace's inode */

/* ---- helpers ------------------------------------------------------------- */

static char *fixture(const char *sub, const char *base, const char *ext,
		     size_t *len)
{
	char rel[PATH_MAX];
	char *s;

	snprintf(rel, sizeof rel, "registry/%s/%s%s", sub, base, ext);
	s = slurp(srcpath(rel), len);
	cr_assert_not_null(s, "cannot read %s", srcpath(rel));
	return s;
}

static uint64_t own_pidns(void)
{
	struct stat st;

	cr_assert_eq(stat("/proc/self/ns/pid", &st), 0, "%s", strerror(errno));
	return (uint64_t)st.st_ino;
}

/* The owner fields and segments of two parses are the same. */
static void same_record(const struct shmk_record *a,
			const struct shmk_record *b, const char *what)
{
	cr_assert_eq(a->version, b->version, "%s: version", what);
	cr_assert_str_eq(a->ns, b->ns, "%s", what);
	cr_assert_str_eq(a->id, b->id, "%s", what);
	cr_assert_eq(a->owner.pid, b->owner.pid, "%s", what);
	cr_assert_eq(a->owner.start_time, b->owner.start_time, "%s", what);
	cr_assert_str_eq(a->owner.boot_id, b->owner.boot_id, "%s", what);
	cr_assert_eq(a->owner.uid, b->owner.uid, "%s", what);
	cr_assert_eq(a->owner.pidns, b->owner.pidns, "%s: pidns", what);
	cr_assert_str_eq(a->role, b->role, "%s", what);
	cr_assert_eq(a->created, b->created, "%s", what);
	cr_assert_eq(a->n_ops, b->n_ops, "%s", what);
	cr_assert_eq(a->torn, b->torn, "%s", what);
	cr_assert_eq(a->n_segs, b->n_segs, "%s", what);
	for (size_t i = 0; i < a->n_segs; i++) {
		cr_assert_str_eq(a->segs[i]->name, b->segs[i]->name, "%s", what);
		cr_assert_eq(a->segs[i]->size, b->segs[i]->size, "%s", what);
		cr_assert_eq(a->segs[i]->created, b->segs[i]->created, "%s", what);
		cr_assert_eq(a->segs[i]->ino, b->segs[i]->ino, "%s", what);
		cr_assert_eq(a->segs[i]->state, b->segs[i]->state, "%s", what);
	}
}

/* Parses buf with the fast path (which must take it: 0) and with cJSON,
 * requires the same result, and leaves the slow path's in *out. */
static void parse_both(const char *buf, size_t len, const char *ns,
		       struct shmk_record *out, const char *what)
{
	struct shmk_record f;
	char why[512];
	int rc;

	rc = shmk__record_parse_fast(buf, len, ns, &f, why, sizeof why);
	cr_assert_eq(rc, 0, "%s: the fast path did not take it (%d)\n%.*s",
		     what, rc, (int)len, buf);
	rc = shmk__record_parse_slow(buf, len, ns, out, why, sizeof why);
	cr_assert_eq(rc, 0, "%s: %s", what, why);
	same_record(&f, out, what);
	shmk__record_free(&f);
}

static const struct shmk_rec_seg *seg_named(const struct shmk_record *r,
					    const char *name)
{
	return shmk__table_get(&r->index, name);
}

/* The one *.jsonl in T.ns_dir, as "<id>" (without the suffix). */
static void own_record_id(char *id, size_t sz)
{
	struct dirent *e;
	DIR *d = opendir(T.ns_dir);
	int found = 0;

	cr_assert_not_null(d, "opendir %s: %s", T.ns_dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] != '.' && l > 6 &&
		    strcmp(e->d_name + l - 6, ".jsonl") == 0) {
			snprintf(id, sz, "%.*s", (int)(l - 6), e->d_name);
			found++;
		}
	}
	closedir(d);
	cr_assert_eq(found, 1, "%d records in %s", found, T.ns_dir);
}

/* ---- reading -------------------------------------------------------------- */

Test(recv2, a_version_1_record_is_still_read_by_both_parsers_with_pidns_0)
{
	/* Written by the library before version 2: the fast path's shape of
	 * version 1, a snapshot and a journal. */
	struct shmk_record r;
	size_t len;
	char *buf = fixture("valid", "journal-intent-live-drop", ".jsonl", &len);

	cr_assert_eq(strncmp(buf, "{\"format\":\"shmkeeper-record\",\"version\":1,", 41),
		     0, "the fixture is no longer a version-1 record");
	parse_both(buf, len, FIX_NS, &r, "version 1");
	cr_assert_eq(r.version, 1);
	cr_assert_eq(r.owner.pidns, 0, "a version-1 owner's namespace is unknown");
	cr_assert_eq(r.owner.pid, 4242);
	cr_assert_eq(r.n_segs, 2);
	shmk__record_free(&r);
	free(buf);
}

Test(recv2, a_version_2_record_round_trips_through_the_serialiser_and_both_parsers)
{
	static const uint64_t pidnss[] = {1, INIT_PIDNS, MAX53};

	for (size_t k = 0; k < sizeof pidnss / sizeof *pidnss; k++) {
		struct shmk_ident me = {.pid = 4242, .start_time = 123456,
					.boot_id = BOOT, .uid = 1000,
					.pidns = pidnss[k]};
		struct shmk_rec_seg seg = {.name = "/fix.a", .size = 4096,
					   .created = 1700000001, .ino = 77,
					   .state = SHMK_SEG_LIVE};
		struct shmk_record r;
		char buf[2048], what[64];
		size_t len;
		int n;

		snprintf(what, sizeof what, "pidns %llu",
			 (unsigned long long)pidnss[k]);
		n = shmk__fmt_header_open(buf, sizeof buf, FIX_NS,
					  "p4242-123456-0badcafe", &me, "t",
					  1700000000);
		cr_assert_gt(n, 0);
		len = (size_t)n;
		cr_assert_gt(n = shmk__fmt_seg(buf + len, sizeof buf - len, &seg), 0);
		len += (size_t)n;
		memcpy(buf + len, "]}\n", 3);
		len += 3;
		cr_assert_gt(n = shmk__fmt_op_intent(buf + len, sizeof buf - len,
						     "/fix.b", 8192, 5), 0);
		len += (size_t)n;

		parse_both(buf, len, FIX_NS, &r, what);
		cr_assert_eq(r.version, 2, "%s", what);
		cr_assert_eq(r.owner.pidns, pidnss[k], "%s", what);
		cr_assert_eq(r.owner.pid, 4242);
		cr_assert_eq(r.owner.start_time, 123456);
		cr_assert_eq(r.n_segs, 2);
		cr_assert_eq(r.n_ops, 1);
		shmk__record_free(&r);
	}
}

Test(recv2, the_serialiser_puts_pidns_last_in_the_owner_and_changes_no_other_byte)
{
	struct shmk_ident me = {.pid = 4242, .start_time = 123456,
				.boot_id = BOOT, .uid = 1000,
				.pidns = INIT_PIDNS};
	char buf[1024];
#define HEAD(v) "{\"format\":\"shmkeeper-record\",\"version\":" v ",\"namespace\":" \
	"\"fix\",\"owner\":{\"id\":\"p4242-123456-0badcafe\",\"pid\":4242,"   \
	"\"start_time\":123456,\"boot_id\":\"" BOOT "\",\"uid\":1000,"         \
	"\"role\":\"r\",\"created\":1700000000"

	cr_assert_gt(shmk__fmt_header_open(buf, sizeof buf, FIX_NS,
					   "p4242-123456-0badcafe", &me, "r",
					   1700000000),
		     0);
	cr_assert_str_eq(buf, HEAD("2") ",\"pidns\":4026531836},\"segments\":[");
	/* An owner whose namespace is unknown is written exactly as version
	 * 1 was: it reads back as pidns 0, never as a refused "pidns":0. */
	me.pidns = 0;
	cr_assert_gt(shmk__fmt_header_open(buf, sizeof buf, FIX_NS,
					   "p4242-123456-0badcafe", &me, "r",
					   1700000000),
		     0);
	cr_assert_str_eq(buf, HEAD("1") "},\"segments\":[");
#undef HEAD
}

Test(recv2, every_pidns_refusal_is_made_by_both_parsers_with_its_reason)
{
	/* The fast path never refuses: it passes (-EAGAIN) and the general
	 * parser says why, also through shmk__record_parse(). */
	static const char *const names[] = {
		"v2-missing-pidns", "v1-with-pidns",   "pidns-zero",
		"pidns-negative",   "pidns-fractional", "pidns-string",
		"pidns-oversized",  "pidns-null",       "duplicate-key-pidns"};

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		struct shmk_record f, s, d;
		char fwhy[512], swhy[512], dwhy[512];
		size_t len;
		char *buf = fixture("invalid", names[i], ".jsonl", &len);
		char *want = fixture("invalid", names[i], ".why", NULL);

		want[strcspn(want, "\n")] = '\0';
		cr_assert_eq(shmk__record_parse_fast(buf, len, FIX_NS, &f, fwhy,
						     sizeof fwhy),
			     -EAGAIN, "%s: the fast path took it", names[i]);
		cr_assert_eq(shmk__record_parse_slow(buf, len, FIX_NS, &s, swhy,
						     sizeof swhy),
			     -EINVAL, "%s: %s", names[i], swhy);
		cr_assert_eq(strncmp(swhy, "line 1: ", 8), 0, "%s: %s",
			     names[i], swhy);
		cr_assert_not_null(strstr(swhy, want), "%s: \"%s\" lacks \"%s\"",
				   names[i], swhy, want);
		cr_assert_eq(shmk__record_parse(buf, len, FIX_NS, &d, dwhy,
						sizeof dwhy),
			     -EINVAL);
		cr_assert_str_eq(dwhy, swhy, "%s", names[i]);
		shmk__record_free(&f);
		shmk__record_free(&s);
		shmk__record_free(&d);
		free(buf);
		free(want);
	}
}

Test(recv2, a_version_4_record_is_a_future_version_and_the_reason_names_those_read)
{
	struct shmk_record r;
	char why[512];
	size_t len;
	char *buf = fixture("invalid", "version-future", ".jsonl", &len);

	cr_assert_eq(shmk__record_parse_fast(buf, len, FIX_NS, &r, why, sizeof why),
		     -EAGAIN);
	cr_assert_eq(shmk__record_parse(buf, len, FIX_NS, &r, why, sizeof why),
		     -EPROTONOSUPPORT, "%s", why);
	cr_assert_str_eq(why, "line 1: future format version 4 (this library "
			      "reads versions 1 to 3)");
	shmk__record_free(&r);
	free(buf);
}

Test(recv2, a_restated_intent_of_a_live_segment_keeps_no_inode_in_either_parser)
{
	/* /fix.a is live in the snapshot and /fix.b goes live in the
	 * journal; an intent then re-states each: the object named may now
	 * be another one, so the old inode must not survive (a reaper would
	 * compare against it). */
	struct shmk_record r;
	const struct shmk_rec_seg *s;
	size_t len;
	char *buf = fixture("valid", "restated-intent-after-live", ".jsonl", &len);

	parse_both(buf, len, FIX_NS, &r, "restated-intent-after-live");
	cr_assert_eq(r.n_segs, 2);
	cr_assert_not_null(s = seg_named(&r, "/fix.a"));
	cr_assert_eq(s->state, SHMK_SEG_INTENT);
	cr_assert_eq(s->ino, 0, "the snapshot's inode survived the intent");
	cr_assert_eq(s->size, 8192);
	cr_assert_eq(s->created, 1700000002);
	cr_assert_not_null(s = seg_named(&r, "/fix.b"));
	cr_assert_eq(s->state, SHMK_SEG_INTENT);
	cr_assert_eq(s->ino, 0, "the journal's inode survived the intent");
	cr_assert_eq(s->size, 16384);
	cr_assert_eq(s->created, 1700000003);
	shmk__record_free(&r);
	free(buf);
}

/* ---- what the library writes ---------------------------------------------- */

Test(recv2, the_library_writes_version_2_with_this_processs_pid_namespace)
{
	struct shmk_ident me;
	struct shmk_record r, f;
	shmk_segment *s = NULL;
	shmk_ctx *c = topen();
	char id[SHMK_ID_MAX + 8], why[512], path[PATH_MAX], want[64];
	size_t len;
	char *buf;
	int nsfd;

	cr_assert_eq(shmk__self_ident(&me), 0, "%s", shmk_last_error());
	cr_assert_eq(me.pidns, own_pidns());
	cr_assert_eq(shmk_segment_create(c, "v2", 4096, &s), 0, "%s",
		     shmk_last_error());

	own_record_id(id, sizeof id);
	nsfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(nsfd, 0);
	cr_assert_eq(shmk__owner_record_load(nsfd, id, T.ns, geteuid(), &r, why, sizeof why),
		     0, "%s", why);
	cr_assert_eq(r.version, 2);
	cr_assert_eq(r.owner.pidns, own_pidns());
	cr_assert_eq(r.owner.pid, getpid());
	cr_assert_eq(r.n_segs, 1);
	close(nsfd);

	/* The bytes: pidns is the owner's last key, and the file is the fast
	 * path's shape. */
	snprintf(path, sizeof path, "%s/%s.jsonl", T.ns_dir, id);
	cr_assert_not_null(buf = slurp(path, &len));
	snprintf(want, sizeof want, ",\"pidns\":%llu},\"segments\":[",
		 (unsigned long long)own_pidns());
	cr_assert_not_null(strstr(buf, want), "%s not in\n%s", want, buf);
	parse_both(buf, len, T.ns, &f, "the library's record");
	same_record(&f, &r, "loaded and parsed");
	shmk__record_free(&f);
	shmk__record_free(&r);
	free(buf);
	cr_assert_eq(shmk_segment_destroy(s), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0, "%s", shmk_last_error());
}

/* In a new pid namespace (as pid 1 there): create a segment, and check the
 * record names this namespace, not the parent's (arg).  Exit codes say
 * which step failed. */
static int inner_owner(void *arg)
{
	uint64_t outer = *(const uint64_t *)arg;
	struct shmk_options o = topts();
	struct shmk_record r;
	shmk_segment *s = NULL;
	shmk_ctx *c = NULL;
	char id[SHMK_ID_MAX + 8] = "", why[512];
	struct dirent *e;
	struct stat st;
	int nsfd, rc = 0;
	DIR *d;

	if (stat("/proc/self/ns/pid", &st) < 0 || (uint64_t)st.st_ino == outer)
		return 10; /* not in a new pid namespace */
	if (shmk_open(&o, &c) < 0 || shmk_segment_create(c, "inner", 4096, &s) < 0)
		return 11;
	if (!(d = opendir(T.ns_dir)))
		return 12;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".jsonl") && e->d_name[0] != '.')
			snprintf(id, sizeof id, "%.*s",
				 (int)(strlen(e->d_name) - 6), e->d_name);
	closedir(d);
	nsfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nsfd < 0 || shmk__owner_record_load(nsfd, id, T.ns, geteuid(), &r, why,
						 sizeof why) < 0)
		rc = 13;
	else if (r.version != 2 || r.owner.pidns != (uint64_t)st.st_ino)
		rc = 14; /* not this namespace */
	else if (r.owner.pid != getpid())
		rc = 15;
	if (nsfd >= 0) {
		shmk__record_free(&r);
		close(nsfd);
	}
	if (shmk_segment_destroy(s) < 0 || shmk_close(c) < 0)
		rc = rc ? rc : 16;
	return rc;
}

/* Enters a new pid namespace and runs inner_owner as its pid 1. */
static int unshare_and_run(void *arg)
{
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWPID) < 0)
		return 20;
	if ((pid = spawn(inner_owner, arg)) < 0)
		return 21;
	st = reap_child(pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 22;
}

Test(recv2, an_owner_in_a_new_pid_namespace_records_that_namespace)
{
	uint64_t outer = own_pidns();
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root (CAP_SYS_ADMIN) for unshare(CLONE_NEWPID)");
	st = reap_child(spawn(unshare_and_run, &outer));
	cr_assert(WIFEXITED(st), "status %#x", st);
	cr_assert_neq(WEXITSTATUS(st), 20, "unshare(CLONE_NEWPID) failed");
	cr_assert_eq(WEXITSTATUS(st), 0,
		     "the inner owner failed at step %d (14: its record names "
		     "another pid namespace than its own)",
		     WEXITSTATUS(st));
}
