/* SPDX-License-Identifier: MIT */
/* test_safety.c - never delete what isn't garbage (issue 9), end to end:
 * a namespace answers to the one registry that claimed it, a stray some
 * process holds is no stray, a segment reaped while still mapped frees
 * nothing yet (and the report says who holds it), a shm directory reached
 * through a symlink or writable by anyone is refused, and an owner whose
 * liveness cannot be told is "unknown", never "dead" or "alive".
 *
 * Owners and holders are real processes: a service child blocked on a pipe
 * (alive: it holds its lock), a child SIGKILLed while it owns segments
 * (dead), a child or grandchild that keeps an object open or mapped. */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

TestSuite(safety, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"
#define SEG ((size_t)65536)

/* ---- objects ------------------------------------------------------------- */


/* T.shm_dir/<ns>.<name> */
static const char *opath(const char *name)
{
	static __thread char b[4][PATH_MAX];
	static __thread int k;
	char *p = b[k++ % 4];

	snprintf(p, PATH_MAX, "%s/%s.%s", T.shm_dir, T.ns, name);
	return p;
}

/* "<ns>.<name>" made by hand (no record names it): a stray. */
static void make_stray(const char *name, size_t size)
{
	int fd = open(opath(name), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					   O_CLOEXEC,
		      0600);

	cr_assert_geq(fd, 0, "create %s: %s", opath(name), strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Maps <ns>.<name> into this process (the descriptor is closed at once,
 * so only the mapping holds it). */
static void *map_here(const char *name, size_t size)
{
	int fd = open(opath(name), O_RDWR | O_CLOEXEC);
	void *a;

	cr_assert_geq(fd, 0, "open %s: %s", opath(name), strerror(errno));
	a = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(a, MAP_FAILED, "mmap %s: %s", opath(name),
		      strerror(errno));
	return a;
}

static char *claim_path(const char *shm_dir, char *p, size_t sz)
{
	snprintf(p, sz, "%s/.shmkeeper-claim.%u.%s", shm_dir,
		 (unsigned)geteuid(), T.ns);
	return p;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static void rm_tree(const char *p)
{
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- processes ----------------------------------------------------------- */

/* A live service of T.ns with registry T.dir: it opens the namespace,
 * creates names[] of SEG bytes each, and blocks until go_w is closed; then
 * it closes its context (destroying them) and exits 0. */
struct service {
	pid_t pid;
	int go_w;
};

static struct service start_service(const char *const *names)
{
	int ready[2], go[2];
	struct service s;
	char c = 0;

	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	s.pid = fork();
	cr_assert_geq(s.pid, 0, "fork: %s", strerror(errno));
	if (s.pid == 0) {
		struct shmk_options o = topts();
		shmk_ctx *ctx;
		shmk_segment *seg;
		char b;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		close(go[1]);
		o.flags = SHMK_OPEN_NO_REAP;
		o.role = "service";
		if (shmk_open(&o, &ctx) != 0)
			_exit(1);
		for (int i = 0; names[i]; i++)
			if (shmk_segment_create(ctx, names[i], SEG, &seg) != 0)
				_exit(2);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		while (read(go[0], &b, 1) < 0 && errno == EINTR)
			;
		_exit(shmk_close(ctx) == 0 ? 0 : 4);
	}
	close(ready[1]);
	close(go[0]);
	while (read(ready[0], &c, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	s.go_w = go[1];
	cr_assert_eq(c, 'r', "service %d did not start", (int)s.pid);
	return s;
}

static void stop_service(struct service *s)
{
	close(s->go_w);
	int st = reap_child(s->pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "service %d ended with status %#x", (int)s->pid, st);
}

/* A dead owner of names[] of SEG bytes each (helpers.c). */
static pid_t killed_owner(const char *const *names)
{
	return tkilled_owner(names, NULL, SEG);
}

/* A child that holds path: with an open descriptor (map false) or only
 * with a mapping, its descriptor closed (map true).  It blocks until go_w
 * is closed or it is killed, and dies with us. */
struct holder {
	pid_t pid;
	int go_w;
};

static struct holder start_holder(const char *path, bool map)
{
	int ready[2], go[2];
	struct holder h;
	char r = 0;

	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	h.pid = fork();
	cr_assert_geq(h.pid, 0, "fork: %s", strerror(errno));
	if (h.pid == 0) {
		int fd;
		char c = 'e', b;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		close(go[1]);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && !map)
			c = 'r';
		if (fd >= 0 && map &&
		    mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED &&
		    close(fd) == 0)
			c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(go[0], &b, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	while (read(ready[0], &r, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	h.go_w = go[1];
	cr_assert_eq(r, 'r', "holder %d could not take hold of %s", (int)h.pid,
		     path);
	return h;
}

static void stop_holder(struct holder *h)
{
	kill(h->pid, SIGKILL);
	reap_child(h->pid);
	close(h->go_w);
}

static bool has_pid(const pid_t *pids, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* The report's item for object (NULL: none). */
static const struct shmk_reap_item *item_for(const struct shmk_reap_report *rep,
					     enum shmk_reap_action a,
					     const char *object)
{
	for (size_t i = 0; i < rep->n_items; i++)
		if (rep->items[i].action == a &&
		    strcmp(rep->items[i].object, object) == 0)
			return &rep->items[i];
	return NULL;
}

/* ---- tools --------------------------------------------------------------- */

/* Runs tool with "--dir dir --namespace T.ns --shm-dir shm" and the
 * NULL-terminated further arguments. */
static struct out tool(const char *path, const char *dir, const char *shm, ...)
	__attribute__((sentinel));
static struct out tool(const char *path, const char *dir, const char *shm, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;
	const char *a;

	argv[n++] = (char *)path;
	argv[n++] = "--dir";
	argv[n++] = (char *)dir;
	argv[n++] = "--namespace";
	argv[n++] = T.ns;
	argv[n++] = "--shm-dir";
	argv[n++] = (char *)shm;
	va_start(ap, shm);
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return run_tool(path, argv, NULL, 0);
}

static cJSON *parse_json(const struct out *r)
{
	cJSON *j = cJSON_Parse(r->out);

	cr_assert_not_null(j, "output is not JSON:\n%s\nstderr:\n%s", r->out,
			   r->err);
	return j;
}




/* Does the JSON array "holders" of o hold pid? */
static bool json_holds(const cJSON *o, pid_t pid)
{
	const cJSON *h = jget(o, "holders"), *e;

	cr_assert(cJSON_IsArray(h), "\"holders\" is no array");
	cJSON_ArrayForEach(e, h)
		if (cJSON_IsNumber(e) && (pid_t)e->valuedouble == pid)
			return true;
	return false;
}

/* The shmclean --json item with this action and object. */
static const cJSON *clean_item(const cJSON *doc, const char *action,
			       const char *object)
{
	const cJSON *i;

	cJSON_ArrayForEach(i, jget(doc, "items"))
		if (!strcmp(jstr(i, "action"), action) &&
		    !strcmp(jstr(i, "object"), object))
			return i;
	cr_assert_fail("no item %s %s in\n%s", action, object,
		       cJSON_Print(doc));
	return NULL;
}

/* The owner with this pid in T.ns of a shmls --json document. */
static const cJSON *ls_owner(const cJSON *doc, pid_t pid)
{
	const cJSON *n, *o;

	cJSON_ArrayForEach(n, jget(doc, "namespaces"))
		if (!strcmp(jstr(n, "namespace"), T.ns))
			cJSON_ArrayForEach(o, jget(n, "owners"))
				if (cJSON_IsNumber(cJSON_GetObjectItem(o, "pid")) &&
				    (pid_t)jnum(o, "pid") == pid)
					return o;
	cr_assert_fail("no owner with pid %d in\n%s", (int)pid,
		       cJSON_Print(doc));
	return NULL;
}

/* ---- item 2: a namespace belongs to the registry that claimed it ---------- */

/* A second registry, "R2": an empty directory of its own. */
static void other_registry(char *r2, size_t sz)
{
	snprintf(r2, sz, "/tmp/shmk-test-r2-XXXXXX");
	cr_assert_not_null(mkdtemp(r2), "mkdtemp: %s", strerror(errno));
}

/* Before the claim (f636184) R2 had no record of T.ns, so every live
 * segment was a stray of any age and was unlinked, rc 0. */
Test(safety, another_registry_reaping_a_live_namespace_unlinks_nothing_and_names_the_bound_one)
{
	static const char *const names[] = {"a", "b", NULL};
	struct service svc = start_service(names);
	char r2[PATH_MAX];
	other_registry(r2, sizeof r2);

	/* The operator's typo: the right namespace, the wrong registry, and
	 * strays of any age to be removed. */
	struct shmk_reap_options o = {.dir = r2, .ns = T.ns,
				      .shm_dir = T.shm_dir,
				      .flags = SHMK_REAP_STRAYS |
					       SHMK_REAP_ANY_AGE,
				      .stray_min_age = 0};
	struct shmk_reap_report *rep = NULL;
	int rc = shmk_reap(&o, &rep);
	const struct shmk_reap_item *err = NULL;

	cr_assert_lt(rc, 0, "a reap with the wrong registry succeeded");
	cr_assert_not_null(rep);
	cr_assert(shm_exists("a") && shm_exists("b"),
		  "a live service's segments were unlinked");
	cr_assert_eq(rep->strays_removed, 0);
	cr_assert_eq(rep->segments_reaped, 0);
	cr_assert_geq(rep->errors, 1);
	for (size_t i = 0; i < rep->n_items; i++)
		if (rep->items[i].action == SHMK_REAP_ERROR)
			err = &rep->items[i];
	cr_assert_not_null(err, "no error item");
	cr_assert(strstr(err->reason, T.dir),
		  "the error does not name registry %s: %s", T.dir,
		  err->reason);
	shmk_reap_report_free(rep);

	stop_service(&svc);
	cr_assert_not(shm_exists("a"));
	rm_tree(r2);
}

/* f636184: "2 strays removed", exit 0. */
Test(safety, shmclean_with_another_registry_fails_names_the_bound_one_and_keeps_the_segments)
{
	static const char *const names[] = {"a", "b", NULL};
	struct service svc = start_service(names);
	char r2[PATH_MAX];
	other_registry(r2, sizeof r2);

	struct out r = tool(SHMCLEAN, r2, T.shm_dir, "--strays", "--min-age",
			    "0", NULL);
	cr_assert_neq(r.code, 0, "exit 0:\n%s%s", r.out, r.err);
	cr_assert(strstr(r.err, T.dir), "stderr does not name %s:\n%s", T.dir,
		  r.err);
	cr_assert(shm_exists("a") && shm_exists("b"),
		  "a live service's segments were unlinked:\n%s", r.out);
	out_free(&r);

	stop_service(&svc);
	rm_tree(r2);
}

/* ---- item 2: a stray some process holds is not garbage -------------------- */

static void held_stray_is_kept_until_let_go(bool map)
{
	struct shmk_reap_report *rep;
	const struct shmk_reap_item *it;
	int rc;

	tclaim();
	make_stray("s", 4096);
	struct holder h = start_holder(opath("s"), map);

	rep = treap(SHMK_REAP_STRAYS | SHMK_REAP_ANY_AGE, &rc);
	cr_assert_eq(rc, 0, "%d %s", rc, shmk_last_error());
	cr_assert(shm_exists("s"), "a held stray was removed");
	cr_assert_eq(rep->strays_removed, 0);
	it = item_for(rep, SHMK_REAP_STRAY_KEPT, tfull("s"));
	cr_assert_not_null(it, "no stray-kept item");
	cr_assert(has_pid(it->holders, it->n_holders, h.pid),
		  "holder %d not among the item's %zu holder(s) (%s)",
		  (int)h.pid, it->n_holders, it->reason);
	shmk_reap_report_free(rep);

	/* Let go: now it is garbage, and the same reap removes it. */
	stop_holder(&h);
	rep = treap(SHMK_REAP_STRAYS | SHMK_REAP_ANY_AGE, &rc);
	cr_assert_eq(rc, 0, "%d %s", rc, shmk_last_error());
	cr_assert_eq(rep->strays_removed, 1);
	cr_assert_not_null(item_for(rep, SHMK_REAP_STRAY_REMOVED, tfull("s")));
	shmk_reap_report_free(rep);
	cr_assert_not(shm_exists("s"));
}

/* f636184 looked at no holder: both strays were unlinked while held. */
Test(safety, a_stray_a_process_holds_open_is_kept_with_its_pid_until_it_exits)
{
	held_stray_is_kept_until_let_go(false);
}

Test(safety, a_stray_a_process_only_maps_is_kept_with_its_pid_until_it_exits)
{
	held_stray_is_kept_until_let_go(true);
}

/* f636184 had no claim: the stray was unlinked. */
Test(safety, a_stray_of_a_namespace_never_claimed_is_kept_and_says_why)
{
	char cp[PATH_MAX];
	struct stat st;
	int rc;

	make_stray("s", 4096);
	/* No namespace directory at all, then an empty one: neither is a
	 * claim, and neither is made one by reaping. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			cr_assert_eq(mkdir(T.ns_dir, 0700), 0);
		struct shmk_reap_report *rep =
			treap(SHMK_REAP_STRAYS | SHMK_REAP_ANY_AGE, &rc);
		const struct shmk_reap_item *it =
			item_for(rep, SHMK_REAP_STRAY_KEPT, tfull("s"));
		cr_assert(shm_exists("s"), "pass %d: removed", pass);
		cr_assert_eq(rep->strays_removed, 0);
		cr_assert_not_null(it, "pass %d: no stray-kept item", pass);
		cr_assert(strstr(it->reason, "not bound to this registry") &&
			  strstr(it->reason, "claim"),
			  "pass %d: reason says nothing of the registry or "
			  "claim: %s",
			  pass, it->reason);
		shmk_reap_report_free(rep);
	}
	cr_assert_neq(lstat(claim_path(T.shm_dir, cp, sizeof cp), &st), 0,
		      "the reaper claimed the namespace");
	unlink(opath("s"));
}

/* ---- item 9: reaped is not freed while something still maps it ----------- */

/* A dead owner of names[] (SEG bytes each) whose fork child, the
 * "survivor", still maps them.  The survivor is reparented to this
 * process (a subreaper) and waits for *go_w to close.  Returns its pid. */
static pid_t dead_owner_with_survivor(const char *const *names, int *go_w)
{
	int ready[2], go[2];
	pid_t owner, survivor = 0;

	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	owner = fork();
	cr_assert_geq(owner, 0);
	if (owner == 0) {
		struct shmk_options o = topts();
		shmk_ctx *ctx;
		shmk_segment *seg;
		pid_t g;

		close(ready[0]);
		close(go[1]);
		o.flags = SHMK_OPEN_NO_REAP;
		if (shmk_open(&o, &ctx) != 0)
			_exit(1);
		for (int i = 0; names[i]; i++)
			if (shmk_segment_create(ctx, names[i], SEG, &seg) != 0)
				_exit(2);
		if ((g = fork()) < 0)
			_exit(3);
		if (g == 0) {
			/* The survivor: the mappings are inherited; every
			 * descriptor but the go pipe is dropped, the owner's
			 * lock file's among them, so the owner is dead once
			 * it exits. */
			char b;
			if ((go[0] > 3 &&
			     close_range(3, (unsigned)go[0] - 1, 0) < 0) ||
			    close_range((unsigned)go[0] + 1, ~0u, 0) < 0)
				_exit(4);
			while (read(go[0], &b, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		_exit(write(ready[1], &g, sizeof g) == sizeof g ? 0 : 5);
	}
	close(ready[1]);
	close(go[0]);
	ssize_t n = read(ready[0], &survivor, sizeof survivor);
	close(ready[0]);
	int st = reap_child(owner);
	*go_w = go[1];
	cr_assert(n == sizeof survivor && WIFEXITED(st) &&
			  WEXITSTATUS(st) == 0,
		  "owner child failed: status %#x", st);
	return survivor;
}

/* f636184 counted every unlinked byte as reaped and named no holder. */
Test(safety, segments_reaped_while_a_surviving_child_maps_them_count_as_held_not_freed)
{
	static const char *const names[] = {"a", "b", NULL};
	static const char *const later[] = {"c", NULL};
	int go_w, rc;
	pid_t survivor = dead_owner_with_survivor(names, &go_w);
	struct shmk_reap_report *rep = treap(SHMK_REAP_NO_STRAYS, &rc);

	cr_assert_eq(rc, 0, "%d %s", rc, shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 2);
	cr_assert_eq(rep->segments_held, 2);
	cr_assert_eq(rep->bytes_reaped, 0, "%llu bytes said freed while "
					   "mapped",
		     (unsigned long long)rep->bytes_reaped);
	cr_assert_eq(rep->bytes_held, 2 * SEG);
	for (int i = 0; names[i]; i++) {
		const struct shmk_reap_item *it =
			item_for(rep, SHMK_REAP_SEGMENT_REAPED, tfull(names[i]));
		cr_assert_not_null(it, "no reaped item for %s", names[i]);
		cr_assert(has_pid(it->holders, it->n_holders, survivor),
			  "%s: survivor %d not among %zu holder(s)", names[i],
			  (int)survivor, it->n_holders);
	}
	shmk_reap_report_free(rep);
	cr_assert_not(shm_exists("a") || shm_exists("b"));

	/* Once the survivor is gone, the next dead owner's bytes are freed. */
	close(go_w);
	int st = reap_child(survivor);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "survivor %#x", st);
	killed_owner(later);
	rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rc, 0, "%d %s", rc, shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	cr_assert_eq(rep->segments_held, 0);
	cr_assert_eq(rep->bytes_held, 0);
	cr_assert_eq(rep->bytes_reaped, SEG);
	const struct shmk_reap_item *it =
		item_for(rep, SHMK_REAP_SEGMENT_REAPED, tfull("c"));
	cr_assert_not_null(it);
	cr_assert_eq(it->n_holders, 0);
	shmk_reap_report_free(rep);
}

/* f636184: no "holders", no "segments_held"/"bytes_held", all bytes
 * reported freed. */
Test(safety, shmclean_names_the_pids_still_holding_reaped_segments_in_json_and_text)
{
	static const char *const two[] = {"d", "e", NULL};
	static const char *const one[] = {"f", NULL};
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());

	/* JSON: both segments of a dead owner mapped here. */
	killed_owner(two);
	void *d = map_here("d", SEG), *e = map_here("e", SEG);
	struct out r = tool(SHMCLEAN, T.dir, T.shm_dir, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	const cJSON *tot = jget(doc, "totals");
	cr_assert_eq(jnum(tot, "segments_reaped"), 2);
	cr_assert_eq(jnum(tot, "segments_held"), 2);
	cr_assert_eq(jnum(tot, "bytes_held"), 2.0 * SEG);
	cr_assert_eq(jnum(tot, "bytes_reaped"), 0);
	cr_assert(json_holds(clean_item(doc, "reaped", tfull("d")), getpid()));
	cr_assert(json_holds(clean_item(doc, "reaped", tfull("e")), getpid()));
	cJSON_Delete(doc);
	out_free(&r);
	munmap(d, SEG);
	munmap(e, SEG);

	/* Text: the same, one line per held object. */
	killed_owner(one);
	void *f = map_here("f", SEG);
	r = tool(SHMCLEAN, T.dir, T.shm_dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	char want[400];
	snprintf(want, sizeof want, "%s still held by pid %s", tfull("f"), pid);
	cr_assert(strstr(r.out, want), "no \"%s\" in:\n%s", want, r.out);
	cr_assert(strstr(r.out, "not freed"), "totals do not say so:\n%s",
		  r.out);
	out_free(&r);
	munmap(f, SEG);
	cr_assert_eq(shm_count(), 0);
}

/* f636184's shmls had no "holders" and no "held by" line. */
Test(safety, shmls_lists_the_process_mapping_a_live_segment_among_its_holders)
{
	static const char *const names[] = {"live", NULL};
	struct service svc = start_service(names);
	struct holder h = start_holder(opath("live"), true);

	struct out r = tool(SHMLS, T.dir, T.shm_dir, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cJSON *doc = parse_json(&r);
	const cJSON *segs = jget(ls_owner(doc, svc.pid), "segments");
	cr_assert_eq(cJSON_GetArraySize(segs), 1);
	const cJSON *s = cJSON_GetArrayItem(segs, 0);
	cr_assert_str_eq(jstr(s, "name"), tfull("live"));
	cr_assert(json_holds(s, h.pid), "holder %d not listed:\n%s",
		  (int)h.pid, r.out);
	cr_assert(json_holds(s, svc.pid), "the owner, which maps it too, not "
					  "listed:\n%s",
		  r.out);
	cJSON_Delete(doc);
	out_free(&r);

	/* Text: "held by pids ..., <holder> (mapped)". */
	r = tool(SHMLS, T.dir, T.shm_dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	char hp[32];
	snprintf(hp, sizeof hp, " %d", (int)h.pid);
	const char *line = strstr(r.out, "held by pid");
	cr_assert_not_null(line, "no holders line:\n%s", r.out);
	cr_assert(strstr(line, hp) && strstr(line, "mapped"), "%s", r.out);
	out_free(&r);

	stop_holder(&h);
	stop_service(&svc);
}

/* ---- item 4: the shm directory is not trusted ----------------------------- */

/* A private shm directory of our own (0700) holding a stray of T.ns, and
 * a symlink to it. */
struct private_shm {
	char dir[PATH_MAX], link[PATH_MAX + 8], stray[PATH_MAX + 64];
};

static void private_shm(struct private_shm *p)
{
	int fd;

	snprintf(p->dir, sizeof p->dir, "/tmp/shmk-test-shm-XXXXXX");
	cr_assert_not_null(mkdtemp(p->dir), "mkdtemp: %s", strerror(errno));
	snprintf(p->link, sizeof p->link, "%s.link", p->dir);
	cr_assert_eq(symlink(p->dir, p->link), 0, "symlink: %s",
		     strerror(errno));
	snprintf(p->stray, sizeof p->stray, "%s/%s.s", p->dir, T.ns);
	fd = open(p->stray, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p->stray, strerror(errno));
	close(fd);
}

static void private_shm_remove(struct private_shm *p)
{
	char cp[PATH_MAX];

	unlink(p->link);
	unlink(claim_path(p->dir, cp, sizeof cp));
	rm_tree(p->dir);
}

/* Both tools on shm directory shm: exit 78, and the stray is still there. */
static void both_refuse(const char *shm, const char *stray)
{
	struct stat st;
	struct out r = tool(SHMCLEAN, T.dir, shm, "--strays", "--min-age", "0",
			    NULL);
	cr_assert_eq(r.code, EX_CONFIG, "shmclean --shm-dir %s: exit %d\n%s%s",
		     shm, r.code, r.out, r.err);
	cr_assert(strstr(r.err, shm), "refusal does not name %s: %s", shm,
		  r.err);
	out_free(&r);
	cr_assert_eq(lstat(stray, &st), 0, "stray removed through %s", shm);

	r = tool(SHMLS, T.dir, shm, "--strays", NULL);
	cr_assert_eq(r.code, EX_CONFIG, "shmls --shm-dir %s: exit %d\n%s%s",
		     shm, r.code, r.out, r.err);
	out_free(&r);
}

/* f636184 followed the symlink: both exited 0 and shmclean unlinked the
 * stray behind it; the same for a 0777 directory. */
Test(safety, shmclean_and_shmls_refuse_a_symlinked_shm_dir_with_78)
{
	struct private_shm p;
	private_shm(&p);

	/* The directory itself is acceptable (ours, 0700)... */
	struct out r = tool(SHMLS, T.dir, p.dir, "--strays", NULL);
	cr_assert_eq(r.code, 0, "shmls on %s: %s", p.dir, r.err);
	out_free(&r);
	/* ...reached through a symlink it is not. */
	both_refuse(p.link, p.stray);
	private_shm_remove(&p);
}

Test(safety, shmclean_and_shmls_refuse_a_world_writable_shm_dir_that_is_not_sticky_with_78)
{
	struct private_shm p;
	private_shm(&p);

	cr_assert_eq(chmod(p.dir, 0777), 0);
	both_refuse(p.dir, p.stray);
	private_shm_remove(&p);
}

/* ---- item 7: an owner whose liveness cannot be told is unknown ------------- */

#define UNKNOWN_ID "p4000000-12345-0badf00d"

/* f636184: shmls said "unknown" but exited 0; shmclean said "1 live
 * owner left alone" and exited 0. */
Test(safety, an_owner_with_a_directory_for_lock_file_is_unknown_to_shmls_and_shmclean_exits_75)
{
	char rec[2048], lock[PATH_MAX];

	make_stray("victim", 4096);
	snprintf(rec, sizeof rec,
		 "{\"format\":\"shmkeeper-record\",\"version\":1,"
		 "\"namespace\":\"%s\",\"owner\":{\"id\":\"" UNKNOWN_ID "\","
		 "\"pid\":4000000,\"start_time\":12345,\"boot_id\":\"\","
		 "\"uid\":%u,\"role\":\"locked-out\",\"created\":%lld},"
		 "\"segments\":[{\"name\":\"%s\",\"size\":4096,"
		 "\"state\":\"intent\",\"created\":%lld}]}\n",
		 T.ns, (unsigned)geteuid(), (long long)time(NULL), tfull("victim"),
		 (long long)time(NULL));
	put_file(UNKNOWN_ID ".jsonl", rec, strlen(rec));
	snprintf(lock, sizeof lock, "%s/" UNKNOWN_ID ".lock", T.ns_dir);
	cr_assert_eq(mkdir(lock, 0700), 0);

	struct out r = tool(SHMLS, T.dir, T.shm_dir, "--json", NULL);
	cr_assert_eq(r.code, EX_TEMPFAIL, "shmls exit %d:\n%s%s", r.code,
		     r.out, r.err);
	cJSON *doc = parse_json(&r);
	const cJSON *o = ls_owner(doc, 4000000);
	cr_assert_str_eq(jstr(o, "state"), "unknown", "%s", r.out);
	cr_assert(cJSON_IsNull(jget(o, "alive")), "%s", r.out);
	cJSON_Delete(doc);
	out_free(&r);

	r = tool(SHMCLEAN, T.dir, T.shm_dir, NULL);
	cr_assert_eq(r.code, EX_TEMPFAIL, "shmclean exit %d:\n%s%s", r.code,
		     r.out, r.err);
	cr_assert_null(strstr(r.out, "live owner"), "%s", r.out);
	out_free(&r);
	cr_assert(shm_exists("victim"));

	rmdir(lock);
	unlink(opath("victim"));
}
