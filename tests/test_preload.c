/* SPDX-License-Identifier: MIT */
/* test_preload.c - libshmkeeper-preload.so under programs that never heard
 * of shmkeeper: tests/prog_preload.c (each step prints what the program
 * saw) and, where installed, Python's multiprocessing.shared_memory.
 *
 * Adopted names are "/<T.ns>_<x>" (and semaphores "sem.<T.ns>_<x>"), so
 * that parallel tests never meet; the suite's fini fails a test that
 * leaves one. */
#include "helpers.h"
#include "internal.h"

#include <dirent.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG SHMK_BUILDDIR "/tests/prog_preload"
#define PRELOAD SHMK_BUILDDIR "/libshmkeeper-preload.so"

/* Objects of this test outside "<ns>.": removed, and counted. */
static size_t adopted_leftovers(char *names, size_t sz)
{
	char pfx[64], spfx[64];
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	size_t n = 0;

	snprintf(pfx, sizeof pfx, "%s_", T.ns);
	snprintf(spfx, sizeof spfx, "sem.%s_", T.ns);
	names[0] = '\0';
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, pfx, strlen(pfx)) &&
		    strncmp(e->d_name, spfx, strlen(spfx)))
			continue;
		n++;
		if (strlen(names) + strlen(e->d_name) + 2 < sz) {
			strcat(names, " ");
			strcat(names, e->d_name);
		}
		unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
	return n;
}

static void preload_fini(void)
{
	char names[1024];
	size_t left = adopted_leftovers(names, sizeof names);

	tenv_teardown();
	cr_assert_eq(left, 0, "test left %zu adopted object(s):%s", left, names);
}

TestSuite(preload, .init = tenv_setup, .fini = preload_fini, .timeout = 60);

/* "/<ns>_<x>" (one of four rotating buffers). */
static const char *an(const char *x)
{
	static __thread char b[4][128];
	static __thread int i;
	char *p = b[i++ & 3];

	snprintf(p, 128, "/%s_%s", T.ns, x);
	return p;
}

static ino_t obj_ino(const char *file)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof p, "/dev/shm/%s", file[0] == '/' ? file + 1 : file);
	return lstat(p, &st) == 0 ? st.st_ino : 0;
}

/* The environment of a preloaded run: ours, minus the variables we set,
 * plus LD_PRELOAD (if preload), SHMKEEPER_DIR, SHMKEEPER_NS and extra
 * (NULL-terminated).  Static storage: one at a time. */
static char **env_of(bool preload, const char *const *extra)
{
	static char *env[512];
	static char dir[PATH_MAX + 32], ns[80];
	extern char **environ;
	size_t n = 0;

	for (char **e = environ; *e && n < 480; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) &&
		    strncmp(*e, "SHMKEEPER_", 10))
			env[n++] = *e;
	if (preload)
		env[n++] = "LD_PRELOAD=" PRELOAD;
	/* extra first: getenv() finds the first of a name. */
	for (; extra && *extra; extra++)
		env[n++] = (char *)*extra;
	snprintf(dir, sizeof dir, "SHMKEEPER_DIR=%s", T.dir);
	snprintf(ns, sizeof ns, "SHMKEEPER_NS=%s", T.ns);
	env[n++] = dir;
	env[n++] = ns;
	env[n] = NULL;
	return env;
}

/* Runs prog_preload with the steps (NULL-terminated). */
static struct out run(bool preload, const char *const *extra,
		      const char *const *steps)
{
	const char *argv[64] = {PROG};
	size_t n = 1;

	for (; *steps && n < 62; steps++)
		argv[n++] = *steps;
	/* Not traced by make valgrind: under it, a preloaded program cannot
	 * exec (valgrind's own preloads), and descriptors differ. */
	argv[n++] = "shmk-vg-untraced";
	argv[n] = NULL;
	return run_tool(PROG, (char *const *)argv, env_of(preload, extra), 0);
}

/* A preloaded prog_preload in the background, stopped at its "W" step
 * until stdin is closed. */
struct bg {
	pid_t pid;
	int in, out;
};

static struct bg start(const char *const *steps)
{
	const char *argv[64] = {PROG};
	int pi[2], po[2];
	size_t n = 1, got = 0;
	char **env = env_of(true, NULL), buf[4096];
	struct bg b;

	for (; *steps && n < 62; steps++)
		argv[n++] = *steps;
	/* Not traced by make valgrind: under it, a preloaded program cannot
	 * exec (valgrind's own preloads), and descriptors differ. */
	argv[n++] = "shmk-vg-untraced";
	argv[n] = NULL;
	cr_assert_eq(pipe2(pi, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
	b.pid = fork();
	cr_assert_geq(b.pid, 0);
	if (b.pid == 0) {
		dup2(pi[0], 0);
		dup2(po[1], 1);
		execve(PROG, (char *const *)argv, env);
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	b.in = pi[1];
	b.out = po[0];
	/* Wait for the state, not for a time: "ready" comes after every step
	 * before W. */
	for (;;) {
		ssize_t r = read(b.out, buf + got, sizeof buf - 1 - got);
		cr_assert_gt(r, 0, "program ended before \"ready\": %.*s",
			     (int)got, buf);
		got += (size_t)r;
		buf[got] = '\0';
		if (strstr(buf, "ready\n"))
			break;
	}
	return b;
}

/* Lets it finish (closing stdin) or kills it; returns its exit code, or
 * 128 + the signal that ended it. */
static int stop(struct bg *b, bool kill9)
{
	char buf[256];
	int st;

	if (kill9)
		kill(b->pid, SIGKILL);
	close(b->in);
	while (read(b->out, buf, sizeof buf) > 0)
		;
	close(b->out);
	st = reap_child(b->pid);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static struct shmk_reap_report *reap_ns(int *rc)
{
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .flags = SHMK_REAP_NO_STRAYS};
	struct shmk_reap_report *rep = NULL;

	*rc = shmk_reap(&o, &rep);
	cr_assert_not_null(rep);
	return rep;
}

/* Owner files (lock and record) in the namespace directory. */
static size_t owner_files(void) { return ns_files(".lock") + ns_files(".jsonl"); }

Test(preload, a_create_and_unlink_leave_nothing_behind)
{
	struct out o = run(true, NULL,
			   (const char *[]){"C:/x", "T:4096", "U:/x", NULL});

	cr_assert_eq(o.code, 0, "%s", o.err);
	cr_assert_str_eq(o.err, "");
	cr_assert_eq(owner_files(), 0, "an owner with no entry left at exit "
				       "removes its files");
	out_free(&o);
}

Test(preload, the_program_sees_the_same_results_errno_and_descriptors)
{
	char s[24][160];
	const char *steps[25];
	const char *fmt[] = {
		"C:%s_a", "C:%s_a", "O:%s_b", "O:%s_b", "A:%s_c", "U:%s_c",
		"T:8192", "B", "C:/x/%s_bad", "C:////",
		"s:%s_s", "s:%s_s", "o:%s_s", "u:%s_s", "u:%s_s", "E:5",
		"O:/%s_e", "U:%s_a", "U:%s_b", "U:/%s_e", "A:/%s_a"};
	size_t n = sizeof fmt / sizeof *fmt;
	struct out bare, pre;

	for (size_t i = 0; i < n; i++) {
		snprintf(s[i], sizeof s[i], fmt[i], an("") + 1);
		/* "%s_a" with "<ns>_" gives "<ns>__a": fine, unique */
		steps[i] = s[i];
	}
	steps[n] = NULL;
	bare = run(false, NULL, steps);
	pre = run(true, NULL, steps);
	cr_assert_eq(bare.code, 0, "%s", bare.err);
	cr_assert_eq(pre.code, 0, "%s", pre.err);
	cr_assert_str_eq(pre.out, bare.out, "with the preload:\n%s\nwithout:\n%s",
			 pre.out, bare.out);
	cr_assert_str_eq(pre.err, "");
	/* Not vacuous: the steps met the errors they were written for. */
	cr_assert_not_null(strstr(bare.out, "EEXIST"));
	cr_assert_not_null(strstr(bare.out, "ENOENT"));
	cr_assert_not_null(strstr(bare.out, "EINVAL"));
	cr_assert_not_null(strstr(bare.out, "errno after create = EIO"));
	cr_assert_eq(owner_files(), 0);
	out_free(&bare);
	out_free(&pre);
}

Test(preload, an_o_creat_open_of_an_existing_object_is_not_recorded)
{
	char p[PATH_MAX], O[160];
	int fd, rc;
	struct shmk_reap_report *rep;
	struct out o;

	snprintf(p, sizeof p, "/dev/shm%s", an("mine"));
	cr_assert_geq(fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0600), 0);
	close(fd);
	snprintf(O, sizeof O, "O:%s", an("mine"));
	/* It opens the object with O_CREAT and is killed holding it. */
	o = run(true, NULL, (const char *[]){O, "C:/x", "K", NULL});
	cr_assert_eq(o.code, 128 + SIGKILL);
	out_free(&o);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 1, "only the object it created");
	cr_assert(shm_file_exists(an("mine")), "an object it only opened is not its own");
	cr_assert_not(shm_file_exists(an("x")));
	shmk_reap_report_free(rep);
	unlink(p);
}

Test(preload, a_sigkilled_owner_loses_exactly_its_own_objects)
{
	char a[160], b[160], sm[160], r[160], l[160], path[PATH_MAX];
	struct shmk_reap_report *rep;
	struct bg live, dead;
	ino_t mine;
	int fd, rc;

	/* Another preloaded process, alive, under the same name pattern. */
	snprintf(l, sizeof l, "C:%s", an("live"));
	live = start((const char *[]){l, "W", NULL});
	/* The victim: two objects (one asked for twice, EEXIST the second
	 * time: its entry must survive that), a semaphore, and one whose name
	 * another process unlinks and makes again. */
	snprintf(a, sizeof a, "C:%s", an("a"));
	snprintf(b, sizeof b, "O:%s", an("b"));
	snprintf(sm, sizeof sm, "s:%s", an("s"));
	snprintf(r, sizeof r, "C:%s", an("repl"));
	dead = start((const char *[]){a, a, b, sm, r, "W", NULL});
	mine = obj_ino(an("repl"));
	snprintf(path, sizeof path, "/dev/shm%s", an("repl"));
	cr_assert_eq(unlink(path), 0);
	cr_assert_geq(fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600), 0);
	close(fd);
	cr_assert_neq(obj_ino(an("repl")), mine);
	/* And an object no preloaded process made. */
	snprintf(path, sizeof path, "/dev/shm%s", an("other"));
	cr_assert_geq(fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600), 0);
	close(fd);

	cr_assert_eq(stop(&dead, true), 128 + SIGKILL);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 1);
	cr_assert_eq(rep->segments_reaped, 3, "a, b and the semaphore");
	cr_assert_not(shm_file_exists(an("a")));
	cr_assert_not(shm_file_exists(an("b")));
	{
		char sem[160];
		snprintf(sem, sizeof sem, "sem.%s", an("s") + 1);
		cr_assert_not(shm_file_exists(sem));
	}
	cr_assert(shm_file_exists(an("repl")), "a name holding another inode is kept");
	cr_assert(shm_file_exists(an("other")), "an object in no record is kept");
	cr_assert(shm_file_exists(an("live")), "a live owner's object is kept");
	shmk_reap_report_free(rep);

	/* The live one, gone now too, is reaped by the next pass. */
	cr_assert_eq(stop(&live, true), 128 + SIGKILL);
	rep = reap_ns(&rc);
	cr_assert_eq(rep->segments_reaped, 1);
	cr_assert_not(shm_file_exists(an("live")));
	shmk_reap_report_free(rep);
	cr_assert_eq(owner_files(), 0);
	unlink(path);
	snprintf(path, sizeof path, "/dev/shm%s", an("repl"));
	unlink(path);
}

/* The records of the namespace, parsed; returns how many. */
static size_t records(struct shmk_record *out, size_t max)
{
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	size_t n = 0;
	int nsfd = open(T.ns_dir, O_RDONLY | O_DIRECTORY);

	cr_assert(d && nsfd >= 0);
	while ((e = readdir(d)) && n < max) {
		char why[256];
		if (e->d_name[0] == '.' || !strstr(e->d_name, ".jsonl"))
			continue; /* a record's old version: not the record */
		cr_assert_eq(shmk__record_load(nsfd, e->d_name, T.ns, &out[n],
					       why, sizeof why),
			     0, "%s: %s", e->d_name, why);
		cr_assert_eq(out[n].version, 3);
		n++;
	}
	closedir(d);
	close(nsfd);
	return n;
}

Test(preload, a_fork_child_creates_under_an_owner_of_its_own)
{
	char p[160], c[160];
	struct shmk_record rec[4];
	struct shmk_reap_report *rep;
	struct out o;
	size_t n;
	int rc;

	snprintf(p, sizeof p, "C:%s", an("parent"));
	snprintf(c, sizeof c, "C:%s", an("child"));
	/* The child is killed holding its object; the parent then exits
	 * normally, keeping its own (left for a reaper). */
	o = run(true, NULL, (const char *[]){p, "F", c, "K", NULL});
	cr_assert_eq(o.code, 0, "%s", o.err);
	cr_assert_not_null(strstr(o.out, "child signal 9"), "%s", o.out);
	out_free(&o);
	cr_assert_eq(n = records(rec, 4), 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(rec[i].n_segs, 1);
		cr_assert_eq(rec[i].segs[0]->kind, SHMK_KIND_ADOPTED_SHM);
		cr_assert_eq(rec[i].segs[0]->state, SHMK_SEG_LIVE);
		cr_assert_eq(rec[i].segs[0]->ino, obj_ino(rec[i].segs[0]->name));
	}
	cr_assert_neq(rec[0].owner.pid, rec[1].owner.pid);
	cr_assert_str_neq(rec[0].segs[0]->name, rec[1].segs[0]->name);
	for (size_t i = 0; i < n; i++)
		shmk__record_free(&rec[i]);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->owners_dead, 2);
	cr_assert_eq(rep->segments_reaped, 2);
	shmk_reap_report_free(rep);
}

Test(preload, an_exec_keeps_the_owner_alive_for_a_concurrent_reaper)
{
	char e[160];
	struct shmk_reap_report *rep;
	struct bg b;
	bool by_lock = false;
	int rc;

	snprintf(e, sizeof e, "C:%s", an("exec"));
	b = start((const char *[]){e, "X", "W", NULL});
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 0);
	cr_assert_eq(rep->owners_alive, 1);
	for (size_t i = 0; i < rep->n_items; i++)
		by_lock |= rep->items[i].action == SHMK_REAP_OWNER_ALIVE &&
			   strstr(rep->items[i].reason, "lock held");
	cr_assert(by_lock, "the exec'd image holds the owner's lock");
	cr_assert(shm_file_exists(an("exec")));
	shmk_reap_report_free(rep);
	cr_assert_eq(stop(&b, false), 0);
	rep = reap_ns(&rc);
	cr_assert_eq(rep->segments_reaped, 1, "gone with the process");
	cr_assert_not(shm_file_exists(an("exec")));
	shmk_reap_report_free(rep);
}

/* The namespace holds one record, whose one entry is an(name); a reap
 * takes it. */
static void expect_only_recorded(const char *name)
{
	struct shmk_record rec[2];
	struct shmk_reap_report *rep;
	int rc;

	cr_assert_eq(records(rec, 2), 1);
	cr_assert_eq(rec[0].n_segs, 1);
	cr_assert_str_eq(rec[0].segs[0]->name, an(name));
	shmk__record_free(&rec[0]);
	rep = reap_ns(&rc);
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
}

Test(preload, a_vfork_child_is_let_through_untracked)
{
	char v[160], c[160];
	struct out o;

	snprintf(v, sizeof v, "V:%s", an("vfork"));
	snprintf(c, sizeof c, "C:%s", an("after"));
	o = run(true, NULL, (const char *[]){v, c, "K", NULL});
	cr_assert_not_null(strstr(o.out, "child exit 0"), "%s", o.out);
	cr_assert(shm_file_exists(an("vfork")));
	out_free(&o);
	/* Only the parent's own create is in the parent's record. */
	expect_only_recorded("after");
	{
		char p[PATH_MAX];
		snprintf(p, sizeof p, "/dev/shm%s", an("vfork"));
		unlink(p);
	}
}

/* vfork is interposed (to count the vforks in progress): it must still be
 * vfork, the child running in its parent's memory, and fail as glibc's
 * does, errno and all. */
Test(preload, vfork_is_interposed_and_answers_as_glibcs)
{
	char c[160];
	struct out bare, pre;

	snprintf(c, sizeof c, "C:%s", an("after"));
	bare = run(false, NULL, (const char *[]){"G", "Q", "G", NULL});
	pre = run(true, NULL, (const char *[]){"G", "Q", "G", NULL});
	cr_assert_str_eq(pre.out, bare.out, "with the preload:\n%s\nwithout:\n%s",
			 pre.out, bare.out);
	cr_assert_not_null(strstr(bare.out, "G = child wrote 42"), "%s", bare.out);
	cr_assert_not_null(strstr(bare.out, "Q = -1 EAGAIN"), "%s", bare.out);
	cr_assert_str_eq(pre.err, "");
	out_free(&bare);
	out_free(&pre);
	/* And the parent goes on tracking once its vfork returned. */
	pre = run(true, NULL, (const char *[]){"G", c, "K", NULL});
	out_free(&pre);
	expect_only_recorded("after");
}

/* A child made by the clone system call runs none of the fork handlers:
 * it still has its parent's memory, record mapping included.  The page
 * advised MADV_WIPEONFORK reads zero in it, so its create goes through
 * untracked instead of into its parent's record. */
/* The program creates "before", then a child (step letter: R a raw clone,
 * L a clone(CLONE_VM)) creates "clone", then the program is killed:
 * nothing after the child's create, so a line it stored into the shared
 * mapping would stay (a later one of ours would go over it).  The child's
 * object is not in the record, and no reaper touches it. */
static void expect_child_untracked(char letter)
{
	char a[160], r[160];
	struct out o;

	snprintf(a, sizeof a, "C:%s", an("before"));
	snprintf(r, sizeof r, "%c:%s", letter, an("clone"));
	o = run(true, NULL, (const char *[]){a, r, "K", NULL});
	cr_assert_not_null(strstr(o.out, "child exit 0"), "%s", o.out);
	cr_assert_str_eq(o.err, "");
	out_free(&o);
	cr_assert(shm_file_exists(an("clone")));
	expect_only_recorded("before"); /* the child's is not in it */
	cr_assert(shm_file_exists(an("clone")), "not ours: never reaped");
	{
		char p[PATH_MAX];
		snprintf(p, sizeof p, "/dev/shm%s", an("clone"));
		unlink(p);
	}
}

/* A child made by the clone system call runs none of the fork handlers:
 * it still has its parent's memory, record mapping included.  The page
 * advised MADV_WIPEONFORK reads zero in it. */
Test(preload, a_raw_clone_child_is_let_through_untracked)
{
	expect_child_untracked('R');
}

/* A clone(CLONE_VM) child is another process in our very memory: the
 * interposed clone() counts it, and calls ask getpid() from then on. */
Test(preload, a_clone_vm_child_is_let_through_untracked)
{
	expect_child_untracked('L');
}

/* A program that makes and unlinks objects all its life: its record is
 * rewritten many times (libshmkeeper's mapped journal), and at every
 * moment it reads and says what the program holds. */
Test(preload, a_program_that_churns_keeps_a_record_that_reads)
{
	char n[160], k[160];
	struct shmk_record rec[2];
	struct bg b;
	int rc;
	struct shmk_reap_report *rep;

	tns_tmpfs("16m"); /* a file system the record is mapped on */
	snprintf(n, sizeof n, "N:4000:%s", an("churn"));
	snprintf(k, sizeof k, "C:%s", an("kept"));
	b = start((const char *[]){n, k, "W", NULL});
	cr_assert_eq(records(rec, 2), 1);
	cr_assert_eq(rec[0].n_segs, 1);
	cr_assert_str_eq(rec[0].segs[0]->name, an("kept"));
	cr_assert(rec[0].torn, "the record ends in its reserve");
	shmk__record_free(&rec[0]);
	cr_assert_eq(ns_files(".jsonl.tmp"), 1, "its version before is kept");
	cr_assert_eq(stop(&b, true), 128 + SIGKILL);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 1);
	shmk_reap_report_free(rep);
	cr_assert_not(shm_file_exists(an("kept")));
	cr_assert_eq(ns_files(NULL), 0, "the reaper took the old version too");
}

/* A vfork child shares its parent's memory but not its descriptor table:
 * its unlink must touch nothing of the parent's owner (a drop it wrote
 * could compact the record into a descriptor only the child has).  The
 * parent's entry stays, harmless: the reaper finds the name gone. */
Test(preload, a_vfork_childs_unlink_touches_nothing_of_its_parents)
{
	char c1[160], y[160], c2[160];
	struct shmk_record rec[2];
	struct out o;
	bool gone_kept = false;

	snprintf(c1, sizeof c1, "C:%s", an("vgone"));
	snprintf(y, sizeof y, "Y:%s", an("vgone"));
	snprintf(c2, sizeof c2, "C:%s", an("after"));
	o = run(true, NULL, (const char *[]){c1, y, c2, "K", NULL});
	cr_assert_not_null(strstr(o.out, "child exit 0"), "%s", o.out);
	cr_assert_not(shm_file_exists(an("vgone")));
	out_free(&o);
	cr_assert_eq(records(rec, 2), 1);
	cr_assert_eq(rec[0].n_segs, 2, "the child changed the parent's record");
	for (size_t i = 0; i < rec[0].n_segs; i++)
		gone_kept |= strcmp(rec[0].segs[i]->name, an("vgone")) == 0;
	cr_assert(gone_kept);
	shmk__record_free(&rec[0]);
	{
		int rc;
		struct shmk_reap_report *rep = reap_ns(&rc);
		cr_assert_eq(rc, 0, "%s", shmk_last_error());
		cr_assert_eq(rep->segments_reaped, 1, "only the live one");
		shmk_reap_report_free(rep);
	}
}

/* A program SIGKILLed while it makes and unlinks semaphores in a loop:
 * after the reap, nothing of it is left - not the semaphore, nor the
 * temporary file a semaphore is made in (glibc's random "sem.XXXXXX",
 * which nobody could ever tell from a semaphore: the preload makes
 * semaphores under a temporary name it records first). */
Test(preload, a_semaphore_cut_short_at_any_point_leaves_no_file, .timeout = 120)
{
	char step[160], sem[160];
	time_t t0 = time(NULL);
	int n = getenv("SHMK_UNDER_VALGRIND") ? 5 : 60, rc;
	unsigned seed = (unsigned)getpid();

	snprintf(step, sizeof step, "S:%s", an("loop"));
	snprintf(sem, sizeof sem, "sem.%s", an("loop") + 1);
	for (int t = 0; t < n; t++) {
		struct bg b = start((const char *[]){step, NULL});
		struct shmk_reap_report *rep;
		seed = seed * 1103515245u + 12345u;
		usleep((seed >> 8) % 3000);
		cr_assert_eq(stop(&b, true), 128 + SIGKILL);
		rep = reap_ns(&rc);
		cr_assert_eq(rc, 0, "%s", shmk_last_error());
		shmk_reap_report_free(rep);
		cr_assert_not(shm_file_exists(sem), "trial %d: the semaphore is left", t);
		cr_assert_eq(shm_sem_temps_left(t0), 0,
			     "trial %d: a temporary semaphore file is left", t);
	}
	cr_assert_eq(owner_files(), 0);
}

Test(preload, semaphores_are_recorded_and_dropped)
{
	char s[160], u[160];
	struct out o;

	snprintf(s, sizeof s, "s:%s", an("sem"));
	snprintf(u, sizeof u, "u:%s", an("sem"));
	o = run(true, NULL, (const char *[]){s, u, s, u, NULL});
	cr_assert_eq(o.code, 0);
	cr_assert_eq(owner_files(), 0, "every entry dropped");
	out_free(&o);
}

Test(preload, threads_creating_at_once_are_all_recorded)
{
	char t[160];
	struct shmk_reap_report *rep;
	struct out o;
	int rc;

	snprintf(t, sizeof t, "P:16:%s", an("t"));
	o = run(true, NULL, (const char *[]){t, "K", NULL});
	cr_assert_not_null(strstr(o.out, "= 16 created"), "%s", o.out);
	out_free(&o);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	cr_assert_eq(rep->segments_reaped, 16);
	shmk_reap_report_free(rep);
}

/* A directory that is not a registry: not empty, no marker. */
static void not_a_registry(char *dir, size_t sz)
{
	char f[PATH_MAX];
	int fd;

	snprintf(dir, sz, "%s/foreign", T.dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(f, sizeof f, "%s/Cargo.lock", dir);
	cr_assert_geq(fd = open(f, O_CREAT | O_WRONLY, 0600), 0);
	close(fd);
}

Test(preload, an_unusable_registry_fails_open_with_one_line)
{
	char dir[PATH_MAX], d[PATH_MAX + 32], x[160], y[160], ux[160], uy[160];
	struct out o;

	not_a_registry(dir, sizeof dir);
	snprintf(d, sizeof d, "SHMKEEPER_DIR=%s", dir);
	snprintf(x, sizeof x, "C:%s", an("x"));
	snprintf(y, sizeof y, "O:%s", an("y"));
	snprintf(ux, sizeof ux, "U:%s", an("x"));
	snprintf(uy, sizeof uy, "U:%s", an("y"));
	o = run(true, (const char *[]){d, NULL},
		(const char *[]){x, y, ux, uy, NULL});
	cr_assert_eq(o.code, 0);
	/* The program's descriptors are numbered as without the preload
	 * (not checked under make valgrind, which emulates the descriptor
	 * limit and keeps descriptors of its own in the test process). */
	if (!getenv("SHMK_UNDER_VALGRIND"))
		cr_assert_not_null(strstr(o.out, "= 3\n"), "%s", o.out);
	cr_assert_null(strstr(o.out, "-1"), "%s", o.out);
	cr_assert_not_null(strstr(o.err, "shmkeeper-preload: "), "%s", o.err);
	cr_assert_not_null(strstr(o.err, "not tracked"), "%s", o.err);
	cr_assert_eq(strchr(o.err, '\n'), o.err + strlen(o.err) - 1,
		     "one line: %s", o.err);
	out_free(&o);
}

/* Going through untracked after a failed start must not leave the
 * library's errno behind on a call that succeeds. */
Test(preload, an_unusable_registry_keeps_the_callers_errno_on_success)
{
	char dir[PATH_MAX], d[PATH_MAX + 32];
	struct out bare, pre;

	not_a_registry(dir, sizeof dir);
	snprintf(d, sizeof d, "SHMKEEPER_DIR=%s", dir);
	bare = run(false, NULL, (const char *[]){"E:5", "E:1", NULL});
	pre = run(true, (const char *[]){d, NULL},
		  (const char *[]){"E:5", "E:1", NULL});
	cr_assert_str_eq(pre.out, bare.out, "with the preload:\n%s\nwithout:\n%s",
			 pre.out, bare.out);
	cr_assert_not_null(strstr(bare.out, "EIO"), "%s", bare.out);
	cr_assert_not_null(strstr(pre.err, "not tracked"), "%s", pre.err);
	out_free(&bare);
	out_free(&pre);
}

Test(preload, strict_mode_fails_the_call_with_the_registry_errno)
{
	char dir[PATH_MAX], d[PATH_MAX + 32], x[160];
	struct out o;

	not_a_registry(dir, sizeof dir);
	snprintf(d, sizeof d, "SHMKEEPER_DIR=%s", dir);
	snprintf(x, sizeof x, "C:%s", an("x"));
	o = run(true, (const char *[]){d, "SHMKEEPER_STRICT=1", NULL},
		(const char *[]){x, x, "A:/x", NULL});
	cr_assert_eq(o.code, 0);
	cr_assert_not_null(strstr(o.out, "= -1 ENOTEMPTY\n"), "%s", o.out);
	/* An open that creates nothing is not the registry's business. */
	cr_assert_not_null(strstr(o.out, "A:/x = -1 ENOENT\n"), "%s", o.out);
	cr_assert_not(shm_file_exists(an("x")));
	cr_assert_eq(strchr(o.err, '\n'), o.err + strlen(o.err) - 1,
		     "one line: %s", o.err);
	out_free(&o);
}

Test(preload, reserve_makes_a_full_tmpfs_fail_at_ftruncate)
{
	char c[160], u[160];
	struct out on, off;
	const char *steps[] = {c, "T:1048576", "B", "T:1099511627776", "B", u,
			       NULL};

	snprintf(c, sizeof c, "C:%s", an("r"));
	snprintf(u, sizeof u, "U:%s", an("r"));
	on = run(true, (const char *[]){"SHMKEEPER_RESERVE=1", NULL}, steps);
	off = run(true, NULL, steps);
	/* Reserved: 1 MiB allocated at once; 1 TiB (more than the tmpfs)
	 * ENOSPC now, and the size left as it was. */
	cr_assert_not_null(strstr(on.out, "B = size 1048576 allocated 1048576\n"
					  "T:1099511627776 = -1 ENOSPC\n"
					  "B = size 1048576 allocated 1048576\n"),
			   "%s", on.out);
	/* Not reserved: what ftruncate does alone. */
	cr_assert_not_null(strstr(off.out, "B = size 1048576 allocated 0\n"
					   "T:1099511627776 = 0\n"),
			   "%s", off.out);
	out_free(&on);
	out_free(&off);
}

/* ---- Python's multiprocessing ------------------------------------------------ */

static bool have_python(void)
{
	return access("/usr/bin/python3", X_OK) == 0;
}

static struct out python(const char *code)
{
	/* Python is not ours to check under make valgrind. */
	const char *argv[] = {"python3", "-c", code, "shmk-vg-untraced", NULL};

	return run_tool("/usr/bin/python3", (char *const *)argv,
			env_of(true, NULL), 0);
}

Test(preload, python_shared_memory_create_close_unlink_leaves_nothing)
{
	char code[1024];
	struct out o;

	if (!have_python())
		cr_skip_test("python3 is not installed");
	snprintf(code, sizeof code,
		 "from multiprocessing import shared_memory as s\n"
		 "m = s.SharedMemory(name='%s', create=True, size=65536)\n"
		 "m.buf[0] = 7\n"
		 "m.close(); m.unlink(); print('done')\n",
		 an("py") + 1);
	o = python(code);
	cr_assert_eq(o.code, 0, "%s", o.err);
	cr_assert_str_eq(o.out, "done\n");
	cr_assert_null(strstr(o.err, "shmkeeper"), "%s", o.err);
	cr_assert_not(shm_file_exists(an("py")));
	cr_assert_eq(owner_files(), 0);
	out_free(&o);
}

Test(preload, python_shared_memory_of_a_sigkilled_interpreter_is_reaped)
{
	struct shmk_reap_report *rep;
	char code[1024];
	struct out o;
	int rc;

	if (!have_python())
		cr_skip_test("python3 is not installed");
	snprintf(code, sizeof code,
		 "import os, signal\n"
		 "from multiprocessing import shared_memory as s\n"
		 "m = s.SharedMemory(name='%s', create=True, size=65536)\n"
		 "os.kill(os.getpid(), signal.SIGKILL)\n",
		 an("pyk") + 1);
	o = python(code);
	cr_assert_eq(o.code, 128 + SIGKILL, "%s", o.err);
	out_free(&o);
	rep = reap_ns(&rc);
	cr_assert_eq(rc, 0, "%s", shmk_last_error());
	/* Python's resource tracker may have unlinked it first (it warns of
	 * a leak when its client dies): reaped by us, or already gone. */
	cr_assert_eq(rep->segments_reaped + rep->segments_gone, 1);
	cr_assert_not(shm_file_exists(an("pyk")));
	shmk_reap_report_free(rep);
}

/* What a preloaded program created is shown for what it is: the scan (and
 * shmls) give each entry's kind, "adopted-shm" / "adopted-sem". */
Test(preload, the_scan_and_shmls_show_adopted_objects_as_such)
{
	char c[160], s[160];
	struct shmk_scan *sc;
	struct bg b;

	snprintf(c, sizeof c, "C:%s", an("seen"));
	snprintf(s, sizeof s, "s:%s", an("sem"));
	b = start((const char *[]){c, s, "W", NULL});
	struct shmk_scan_options so = {.dir = T.dir, .ns = T.ns,
				       .flags = SHMK_SCAN_NO_HOLDERS};
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	size_t shm = 0, sem = 0;
	for (size_t i = 0; i < sc->ns[0].n_owners; i++)
		for (size_t k = 0; k < sc->ns[0].owners[i].n_segments; k++) {
			const struct shmk_scan_segment *g =
				&sc->ns[0].owners[i].segments[k];
			shm += !strcmp(g->kind, "adopted-shm");
			sem += !strcmp(g->kind, "adopted-sem");
		}
	shmk_scan_free(sc);
	cr_assert_eq(shm, 1, "adopted shm objects seen: %zu", shm);
	cr_assert_eq(sem, 1, "adopted semaphores seen: %zu", sem);

	char *argv[] = {"shmls", "--dir", T.dir, "--namespace", T.ns, NULL};
	struct out r = run_tool(SHMK_BUILDDIR "/tools/shmls", argv, NULL, 0);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(strstr(r.out, "adopted-shm") && strstr(r.out, "adopted-sem"),
		  "%s", r.out);
	out_free(&r);
	cr_assert_eq(stop(&b, false), 0);
	int rc;
	shmk_reap_report_free(reap_ns(&rc));
}
