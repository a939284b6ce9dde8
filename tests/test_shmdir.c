/* SPDX-License-Identifier: MIT */
/* test_shmdir.c - the shared memory directory is not trusted (no symlink
 * on its path, root's and sticky or ours and private), a namespace's usage
 * counts only our own objects by the memory they take, and a namespace
 * belongs to one registry (the claim object in the shm directory).
 *
 * Objects owned by another uid need root (chown); those tests skip
 * otherwise.  Each test removes what it made outside T.dir in its .fini:
 * foreign objects, extra registries and the claim objects (which are not
 * "<ns>." names, so tenv_teardown does not count them). */
#include "helpers.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOBODY 65534
#define TiB (1024ull * 1024ull * 1024ull * 1024ull)

/* What the tests made outside T.dir; removed by fini even after a failed
 * assertion. */
static char foreign[PATH_MAX];   /* an object in T.shm_dir */
static char extra[2][PATH_MAX];  /* registries other than T.dir */

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static void claim_path(char *out, size_t sz)
{
	snprintf(out, sz, "%s/.shmkeeper-claim.%u.%s", T.shm_dir,
		 (unsigned)geteuid(), T.ns);
}

static void shmdir_teardown(void)
{
	char p[PATH_MAX];

	if (foreign[0])
		unlink(foreign);
	foreign[0] = '\0';
	for (int i = 0; i < 2; i++) {
		if (extra[i][0])
			nftw(extra[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
		extra[i][0] = '\0';
	}
	claim_path(p, sizeof p);
	unlink(p);
	tenv_teardown();
}

TestSuite(shmdir, .init = tenv_setup, .fini = shmdir_teardown, .timeout = 60);

static bool has(const char *s, const char *what) { return strstr(s, what); }

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to make files of another uid");
}

/* shmk_open of T.ns with registry dir and shm directory shm. */
static int open_with(const char *dir, const char *shm, shmk_ctx **c)
{
	struct shmk_options o = topts();

	o.dir = dir;
	o.shm_dir = shm;
	*c = NULL;
	return shmk_open(&o, c);
}

static void make_dir(const char *p, mode_t mode)
{
	cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, mode), 0); /* exactly mode, whatever the umask */
}

static void new_registry(int i)
{
	snprintf(extra[i], sizeof extra[i], "/tmp/shmk-test-reg-XXXXXX");
	cr_assert_not_null(mkdtemp(extra[i]), "mkdtemp: %s", strerror(errno));
}

/* ---- the directory ---------------------------------------------------- */

Test(shmdir, a_shm_dir_that_is_a_symlink_is_refused_by_open_and_monitor)
{
	char real[PATH_MAX], link[PATH_MAX];
	shmk_monitor *m = NULL;
	shmk_ctx *c;
	int rc;

	snprintf(real, sizeof real, "%s/shm", T.dir);
	snprintf(link, sizeof link, "%s/shm-link", T.dir);
	make_dir(real, 0700);
	cr_assert_eq(symlink(real, link), 0);

	rc = open_with(T.dir, link, &c);
	cr_assert_eq(rc, -ELOOP, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_null(c);
	cr_assert(has(shmk_last_error(), link) &&
			  has(shmk_last_error(), "refused: it is a symlink"),
		  "%s", shmk_last_error());

	struct shmk_monitor_options mo = {.ns = T.ns, .shm_dir = link};
	rc = shmk_monitor_create(&mo, &m);
	cr_assert_eq(rc, -ELOOP, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_null(m);
	cr_assert(has(shmk_last_error(), "symlink"), "%s", shmk_last_error());

	/* The directory itself is fine. */
	cr_assert_eq(open_with(T.dir, real, &c), 0, "%s", shmk_last_error());
	shmk_close(c);
}

/* Both ways of opening: openat2(RESOLVE_NO_SYMLINKS), and the walk one
 * component at a time that replaces it where openat2 is missing (forced
 * with the failpoint: openat2 says ENOSYS). */
static void middle_symlink_refused(bool walk)
{
	char a[PATH_MAX], real[PATH_MAX], l[PATH_MAX], via[PATH_MAX];
	shmk_ctx *c;
	int rc;

	snprintf(a, sizeof a, "%s/a", T.dir);
	snprintf(real, sizeof real, "%s/a/shm", T.dir);
	snprintf(l, sizeof l, "%s/l", T.dir);
	snprintf(via, sizeof via, "%s/l/shm", T.dir);
	make_dir(a, 0700);
	make_dir(real, 0700);
	cr_assert_eq(symlink(a, l), 0);

	if (walk)
		fiu_enable("shmk/sys/openat2", 1, (void *)(intptr_t)ENOSYS, 0);
	rc = open_with(T.dir, via, &c);
	fiu_disable("shmk/sys/openat2");
	cr_assert_eq(rc, -ELOOP, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_null(c);
	cr_assert(has(shmk_last_error(), via) && has(shmk_last_error(), "symlink"),
		  "%s", shmk_last_error());
	/* The walk knows which component it was. */
	if (walk)
		cr_assert(has(shmk_last_error(), "\"l\" on its path is a symlink"),
			  "%s", shmk_last_error());

	if (walk)
		fiu_enable("shmk/sys/openat2", 1, (void *)(intptr_t)ENOSYS, 0);
	rc = open_with(T.dir, real, &c);
	fiu_disable("shmk/sys/openat2");
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	shmk_close(c);
}

Test(shmdir, a_symlink_in_a_middle_component_of_the_shm_dir_is_refused)
{
	middle_symlink_refused(false);
}

Test(shmdir, a_symlink_in_a_middle_component_is_refused_without_openat2_too)
{
	middle_symlink_refused(true);
}

Test(shmdir, a_world_writable_shm_dir_is_refused_unless_root_owned_and_sticky)
{
	char p[PATH_MAX];
	shmk_segment *s;
	shmk_ctx *c;
	int rc;

	snprintf(p, sizeof p, "%s/ww", T.dir);
	make_dir(p, 0777);
	rc = open_with(T.dir, p, &c);
	cr_assert_eq(rc, -EPERM, "rc %d (%s)", rc, shmk_last_error());
	cr_assert(has(shmk_last_error(), "refused: group or world writable "
					 "without the sticky bit (mode 0777)"),
		  "%s", shmk_last_error());

	cr_assert_eq(chmod(p, 0770), 0);
	rc = open_with(T.dir, p, &c);
	cr_assert_eq(rc, -EPERM, "group writable: rc %d (%s)", rc,
		     shmk_last_error());

	/* Like /dev/shm: root's and sticky. */
	need_root();
	cr_assert_eq(chmod(p, 01777), 0);
	cr_assert_eq(open_with(T.dir, p, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "s", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	shmk_close(c);
}

Test(shmdir, a_shm_dir_owned_by_another_uid_is_refused)
{
	char p[PATH_MAX];
	shmk_ctx *c;
	int rc;

	need_root();
	snprintf(p, sizeof p, "%s/theirs", T.dir);
	make_dir(p, 0700);
	cr_assert_eq(chown(p, NOBODY, NOBODY), 0);
	rc = open_with(T.dir, p, &c);
	cr_assert_eq(rc, -EPERM, "rc %d (%s)", rc, shmk_last_error());
	cr_assert(has(shmk_last_error(), "refused: owned by uid 65534, neither "
					 "root-owned and sticky nor ours"),
		  "%s", shmk_last_error());

	/* Sticky is not enough when it is not root's. */
	cr_assert_eq(chmod(p, 01777), 0);
	rc = open_with(T.dir, p, &c);
	cr_assert_eq(rc, -EPERM, "rc %d (%s)", rc, shmk_last_error());
}

/* ---- what a namespace uses ----------------------------------------------- */

Test(shmdir, a_foreign_sparse_terabyte_counts_neither_for_budget_nor_monitor)
{
	struct shmk_monitor_options mo = {.ns = T.ns, .ns_bytes_hard = 1u << 20};
	struct shmk_options o = topts();
	shmk_monitor *m = NULL;
	struct shmk_sample smp;
	shmk_segment *s;
	shmk_ctx *c = NULL;
	int fd;

	need_root();
	snprintf(foreign, sizeof foreign, "%s/%s.foreign", T.shm_dir, T.ns);
	fd = open(foreign, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", foreign, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)TiB), 0, "%s", strerror(errno));
	cr_assert_eq(fchown(fd, NOBODY, NOBODY), 0);
	close(fd);

	o.budget_bytes = 1u << 20;
	cr_assert_eq(shmk_open(&o, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "mine", 4096, &s), 0,
		     "budget: %s", shmk_last_error());
	cr_assert_eq(shmk_monitor_create(&mo, &m), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_monitor_sample(m, &smp), 0);
	cr_assert_eq(smp.ns_segments, 1, "ns_segments %" PRIu64,
		     smp.ns_segments);
	cr_assert_eq(smp.ns_bytes, 4096, "ns_bytes %" PRIu64, smp.ns_bytes);

	/* The monitor's hard limit, attached: the same one check. */
	shmk_segment *s2;
	cr_assert_eq(shmk_monitor_attach(m, c), 0);
	cr_assert_eq(shmk_segment_create(c, "mine2", 4096, &s2), 0,
		     "hard limit: %s", shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s2), 0);
	cr_assert_eq(shmk_segment_destroy(s), 0);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
	/* Never touched: it is not ours. */
	struct stat st;
	cr_assert_eq(lstat(foreign, &st), 0);
	cr_assert_eq(st.st_uid, NOBODY);
	unlink(foreign);
	foreign[0] = '\0';
}

Test(shmdir, a_sparse_file_of_ours_counts_by_its_blocks_not_its_size)
{
	struct shmk_monitor_options mo = {.ns = T.ns};
	struct shmk_options o = topts();
	shmk_monitor *m = NULL;
	struct shmk_sample smp;
	shmk_segment *s;
	shmk_ctx *c = NULL;
	long page = sysconf(_SC_PAGESIZE);
	char *buf = calloc(1, (size_t)page);
	int fd;

	snprintf(foreign, sizeof foreign, "%s/%s.sparse", T.shm_dir, T.ns);
	fd = open(foreign, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", foreign, strerror(errno));
	cr_assert_eq(ftruncate(fd, 1ll << 30), 0); /* 1 GiB apparent */
	buf[0] = 1;
	cr_assert_eq(pwrite(fd, buf, (size_t)page, 0), page); /* one page real */
	close(fd);
	free(buf);

	cr_assert_eq(shmk_monitor_create(&mo, &m), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_monitor_sample(m, &smp), 0);
	cr_assert_eq(smp.ns_segments, 1);
	cr_assert_eq(smp.ns_bytes, (uint64_t)page, "ns_bytes %" PRIu64,
		     smp.ns_bytes);

	/* Budget: one page used of 1 MiB, not 1 GiB. */
	o.budget_bytes = 1u << 20;
	cr_assert_eq(shmk_open(&o, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "x", 4096, &s), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_segment_destroy(s), 0);
	/* ...and it still binds: what is really there counts. */
	cr_assert_eq(shmk_segment_create(c, "y", 1u << 20, &s), -EDQUOT);
	cr_assert_eq(shmk_close(c), 0);
	shmk_monitor_destroy(m);
	unlink(foreign);
	foreign[0] = '\0';
}

/* ---- the namespace claim -------------------------------------------------- */

Test(shmdir, a_namespace_opened_with_one_registry_is_refused_to_another)
{
	shmk_ctx *c1, *c2;
	int rc;

	new_registry(0);
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c1), 0, "%s",
		     shmk_last_error());
	rc = open_with(extra[0], T.shm_dir, &c2);
	cr_assert_eq(rc, -EBUSY, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_null(c2);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof want, "namespace %s is bound to registry %s (",
		 T.ns, T.dir);
	cr_assert(has(shmk_last_error(), want), "\"%s\" lacks \"%s\"",
		  shmk_last_error(), want);
	cr_assert(has(shmk_last_error(), extra[0]), "%s", shmk_last_error());
	snprintf(want, sizeof want, "SHMKEEPER_DIR=%s", T.dir);
	cr_assert(has(shmk_last_error(), want), "%s", shmk_last_error());

	/* Also once the first context is closed: the claim outlives it. */
	cr_assert_eq(shmk_close(c1), 0);
	cr_assert_eq(open_with(extra[0], T.shm_dir, &c2), -EBUSY);
}

Test(shmdir, a_removed_registrys_claim_is_stale_and_replaced)
{
	char cp[PATH_MAX], *txt;
	shmk_ctx *c;
	int rc;

	new_registry(0);
	new_registry(1);
	cr_assert_eq(open_with(extra[0], T.shm_dir, &c), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), -EBUSY);

	cr_assert_eq(nftw(extra[0], rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	rc = open_with(T.dir, T.shm_dir, &c);
	cr_assert_eq(rc, 0, "rc %d (%s)", rc, shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);

	/* The claim now names T.dir: a third registry is refused with it. */
	claim_path(cp, sizeof cp);
	cr_assert_not_null(txt = slurp(cp, NULL));
	cr_assert(has(txt, T.dir), "%s", txt);
	free(txt);
	rc = open_with(extra[1], T.shm_dir, &c);
	cr_assert_eq(rc, -EBUSY, "rc %d", rc);
	cr_assert(has(shmk_last_error(), T.dir), "%s", shmk_last_error());

	/* No temporary left behind by the replacement. */
	char tmp[PATH_MAX + 8];
	struct stat st;
	snprintf(tmp, sizeof tmp, "%s.new", cp);
	cr_assert_neq(lstat(tmp, &st), 0);
}

Test(shmdir, a_registry_recreated_at_the_same_path_takes_the_claim_over)
{
	shmk_ctx *c;

	new_registry(0);
	cr_assert_eq(open_with(extra[0], T.shm_dir, &c), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	/* A new directory at the old path: not the registry the claim names
	 * (other inode), and the old one is gone. */
	cr_assert_eq(nftw(extra[0], rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	make_dir(extra[0], 0700);
	cr_assert_eq(open_with(extra[0], T.shm_dir, &c), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), -EBUSY);
}

Test(shmdir, two_opens_of_one_registry_share_its_claim)
{
	char cp[PATH_MAX], *txt;
	shmk_ctx *a, *b;
	struct stat st, reg;
	cJSON *doc;

	cr_assert_eq(open_with(T.dir, T.shm_dir, &a), 0, "%s", shmk_last_error());
	cr_assert_eq(open_with(T.dir, T.shm_dir, &b), 0, "%s", shmk_last_error());

	/* The claim: ours, 0600, one complete JSON line naming T.dir. */
	claim_path(cp, sizeof cp);
	cr_assert_eq(lstat(cp, &st), 0, "no claim %s", cp);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(st.st_uid, geteuid());
	cr_assert_eq(stat(T.dir, &reg), 0);
	cr_assert_not_null(txt = slurp(cp, NULL));
	cr_assert_eq(txt[strlen(txt) - 1], '\n');
	cr_assert_not_null(doc = cJSON_Parse(txt), "%s", txt);
	cr_assert_str_eq(cJSON_GetObjectItem(doc, "format")->valuestring,
			 "shmkeeper-claim");
	cr_assert_eq(cJSON_GetObjectItem(doc, "version")->valueint, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(doc, "ns")->valuestring, T.ns);
	cr_assert_str_eq(cJSON_GetObjectItem(doc, "registry")->valuestring,
			 T.dir);
	cr_assert_eq((dev_t)cJSON_GetObjectItem(doc, "dev")->valuedouble,
		     reg.st_dev);
	cr_assert_eq((ino_t)cJSON_GetObjectItem(doc, "ino")->valuedouble,
		     reg.st_ino);
	cJSON_Delete(doc);
	free(txt);

	/* The claim is no segment: nothing of ns is counted. */
	struct shmk_monitor_options mo = {.ns = T.ns};
	shmk_monitor *m = NULL;
	struct shmk_sample smp;
	cr_assert_eq(shmk_monitor_create(&mo, &m), 0);
	cr_assert_eq(shmk_monitor_sample(m, &smp), 0);
	cr_assert_eq(smp.ns_segments, 0);
	shmk_monitor_destroy(m);
	cr_assert_eq(shmk_close(a), 0);
	cr_assert_eq(shmk_close(b), 0);
}

Test(shmdir, claim_check_tells_this_registry_another_and_none_apart)
{
	char other[PATH_MAX];
	int shmfd = -1, r1, r2;
	shmk_ctx *c;

	new_registry(0);
	cr_assert_eq(shmk__shmdir_open(T.shm_dir, &shmfd), 0);
	r1 = open(T.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r2 = open(extra[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(r1 >= 0 && r2 >= 0);

	cr_assert_eq(shmk__claim_check(shmfd, T.ns, r1, other, sizeof other), 0,
		     "nothing claimed yet");
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk__claim_check(shmfd, T.ns, r1, other, sizeof other), 1);
	cr_assert_eq(shmk__claim_check(shmfd, T.ns, r2, other, sizeof other),
		     -EBUSY);
	cr_assert_str_eq(other, T.dir);
	cr_assert(has(shmk_last_error(), T.dir), "%s", shmk_last_error());
	cr_assert_eq(shmk__claim_bind(shmfd, T.shm_dir, T.ns, T.dir, r1), 0);
	cr_assert_eq(shmk_close(c), 0);
	close(r1);
	close(r2);
	close(shmfd);
}

/* No co-tenant can deny service: whatever sits in the claim's place that we
 * cannot believe, shmk_open goes on, unclaimed. */
Test(shmdir, a_claim_name_squatted_by_another_uid_does_not_stop_open)
{
	char cp[PATH_MAX];
	const char *junk = "{\"format\":\"shmkeeper-claim\",\"version\":1,"
			   "\"ns\":\"x\",\"registry\":\"/\",\"dev\":1,\"ino\":2}\n";
	shmk_ctx *c;
	int fd, shmfd = -1, rfd;

	need_root();
	claim_path(cp, sizeof cp);
	fd = open(cp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", cp, strerror(errno));
	cr_assert_eq(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
	cr_assert_eq(fchown(fd, NOBODY, NOBODY), 0);
	close(fd);

	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	/* ...and the squat is left alone, and claims nothing. */
	struct stat st;
	cr_assert_eq(lstat(cp, &st), 0);
	cr_assert_eq(st.st_uid, NOBODY);
	cr_assert_eq(shmk__shmdir_open(T.shm_dir, &shmfd), 0);
	rfd = open(T.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_eq(shmk__claim_check(shmfd, T.ns, rfd, NULL, 0), 0);
	close(rfd);
	close(shmfd);
}

Test(shmdir, an_unreadable_claim_or_a_fifo_in_its_place_does_not_stop_open)
{
	char cp[PATH_MAX];
	shmk_ctx *c;
	int fd;

	claim_path(cp, sizeof cp);
	/* A claim of ours that does not parse. */
	fd = open(cp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "{not json", 9), 9);
	close(fd);
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
	unlink(cp);
	/* A FIFO: opening it must not wait for a writer. */
	cr_assert_eq(mkfifo(cp, 0600), 0);
	cr_assert_eq(open_with(T.dir, T.shm_dir, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_close(c), 0);
}

/* ---- a co-tenant's many objects under our prefix --------------------------- */

static int stats_seen;

static int count_stat(const char *name, int *failnum, void **failinfo,
		      unsigned *flags)
{
	(void)name; (void)failnum; (void)failinfo; (void)flags;
	stats_seen++;
	return 0; /* only count: the call goes on */
}

Test(shmdir, a_cotenants_objects_under_our_prefix_are_looked_at_once_not_at_every_create)
{
	/* Item 12: 100,000 foreign files made each budgeted create stat them
	 * all.  They are another user's: looked at once, then known. */
	enum { FOREIGN = 60 };
	char p[PATH_MAX];
	shmk_segment *a, *b;
	shmk_ctx *c;

	if (geteuid() != 0)
		cr_skip_test("needs root to make another user's objects");
	for (int i = 0; i < FOREIGN; i++) {
		snprintf(p, sizeof p, "%s/%s.foreign%d", T.shm_dir, T.ns, i);
		int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
		cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
		cr_assert_eq(fchown(fd, NOBODY, NOBODY), 0);
		close(fd);
	}
	struct shmk_options o = topts();
	o.budget_bytes = 1ull << 30;
	cr_assert_eq(shmk_open(&o, &c), 0, "%s", shmk_last_error());
	cr_assert_eq(shmk_segment_create(c, "a", 4096, &a), 0, "%s",
		     shmk_last_error());
	cr_assert_eq(fiu_enable_external("shmk/sys/fstatat", 1, NULL, 0,
					 count_stat), 0);
	int rc = shmk_segment_create(c, "b", 4096, &b);
	fiu_disable("shmk/sys/fstatat");
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_geq(stats_seen, 1, "our own segment was not looked at");
	cr_assert_lt(stats_seen, 10, "%d stats for one create: the %d foreign "
				     "objects were looked at again",
		     stats_seen, FOREIGN);
	cr_assert_eq(shmk_segment_destroy(a), 0);
	cr_assert_eq(shmk_segment_destroy(b), 0);
	cr_assert_eq(shmk_close(c), 0);
	for (int i = 0; i < FOREIGN; i++) {
		snprintf(p, sizeof p, "%s/%s.foreign%d", T.shm_dir, T.ns, i);
		unlink(p);
	}
}
