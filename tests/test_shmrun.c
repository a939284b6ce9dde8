/* SPDX-License-Identifier: MIT */
/* test_shmrun.c - shmrun runs a program that knows nothing of shmkeeper,
 * keeps what it creates, waits for its whole tree, forwards signals, exits
 * with its status, and leaves nothing behind however the tree ended. */
#include "helpers.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHMRUN SHMK_BUILDDIR "/tools/shmrun"
#define PROG SHMK_BUILDDIR "/tests/prog_preload"
#define PRELOAD SHMK_BUILDDIR "/libshmkeeper-preload.so"
/* An argument that tells make valgrind not to trace a program. */
#define UNTRACED "shmk-vg-untraced"

static void setup(void)
{
	tenv_setup();
	cr_assert_eq(setenv("SHMKEEPER_PRELOAD", PRELOAD, 1), 0);
	unsetenv("SHMKEEPER_NS");
}

TestSuite(shmrun, .init = setup, .fini = tenv_teardown, .timeout = 60);

/* "/<T.ns>-<what>": an adopted name of this test (not under "<ns>."). */
static const char *adopted(const char *what)
{
	static char buf[4][128];
	static int k;
	char *b = buf[k++ % 4];

	snprintf(b, sizeof buf[0], "/%s-%s", T.ns, what);
	return b;
}

static struct out shmrun(char *const *cmd, bool json)
{
	char *argv[32] = {"shmrun", "--ns", T.ns, "--dir", T.dir};
	int n = 5;

	if (json)
		argv[n++] = "--json";
	argv[n++] = "--";
	for (int i = 0; cmd[i] && n < 31; i++)
		argv[n++] = cmd[i];
	argv[n] = NULL;
	return run_tool(SHMRUN, argv, NULL, 0);
}

Test(shmrun, reaps_what_a_killed_command_created_and_exits_with_its_signal)
{
	char c1[160], c2[160];
	snprintf(c1, sizeof c1, "C:%s", adopted("a"));
	snprintf(c2, sizeof c2, "C:%s", adopted("b"));
	char *cmd[] = {PROG, c1, c2, "K", NULL};

	struct out r = shmrun(cmd, false);
	cr_assert_eq(r.code, 128 + SIGKILL, "exit %d\n%s", r.code, r.err);
	cr_assert(strstr(r.err, "2 objects reaped"), "%s", r.err);
	cr_assert_not(shm_file_exists(adopted("a")), "left behind");
	cr_assert_not(shm_file_exists(adopted("b")), "left behind");
	out_free(&r);
}

Test(shmrun, exits_with_the_commands_status)
{
	char *ok[] = {"sh", "-c", "exit 3", NULL};
	char *sig[] = {"sh", "-c", "kill -USR1 $$", NULL};
	/* Not executable: 126 (127, not found, is what run_tool() takes for
	 * "shmrun itself cannot run"). */
	char plain[] = "/tmp/shmrun-test-XXXXXX";
	int pfd = mkstemp(plain);
	cr_assert_geq(pfd, 0);
	close(pfd); /* mode 0600: nobody may execute it, root neither */
	char *none[] = {plain, NULL};

	struct out r = shmrun(ok, false);
	cr_assert_eq(r.code, 3, "%s", r.err);
	cr_assert_str_eq(r.err, "", "nothing reaped, nothing said");
	out_free(&r);
	r = shmrun(sig, false);
	cr_assert_eq(r.code, 128 + SIGUSR1, "%s", r.err);
	out_free(&r);
	r = shmrun(none, false);
	unlink(plain);
	cr_assert_eq(r.code, 126, "%s", r.err);
	cr_assert(strstr(r.err, "unable to run"), "%s", r.err);
	out_free(&r);
}

/* The command exits at once; its orphaned grandchild creates an object
 * later and is SIGKILLed.  shmrun, the subreaper, waits for the whole tree
 * and only then reaps: nothing is left. */
Test(shmrun, waits_for_orphaned_descendants_before_it_reaps)
{
	char script[512];
	snprintf(script, sizeof script,
		 "{ sleep 0.3; exec %s C:%s K; } >/dev/null 2>&1 & exit 0", PROG,
		 adopted("late"));
	char *cmd[] = {"sh", "-c", script, NULL};

	struct out r = shmrun(cmd, false);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(strstr(r.err, "1 object reaped"), "%s", r.err);
	cr_assert_not(shm_file_exists(adopted("late")), "the grandchild's object is left");
	out_free(&r);
}

Test(shmrun, reports_as_json)
{
	char c1[160];
	snprintf(c1, sizeof c1, "C:%s", adopted("j"));
	char *cmd[] = {PROG, c1, "K", NULL};

	struct out r = shmrun(cmd, true);
	cr_assert_eq(r.code, 128 + SIGKILL, "%s", r.err);
	cJSON *doc = cJSON_Parse(r.err);
	cr_assert_not_null(doc, "not JSON: %s", r.err);
	assert_json_format(doc, "shmkeeper-shmrun");
	cr_assert_str_eq(jstr(doc, "namespace"), T.ns);
	cr_assert_eq(jnum(doc, "reaped"), 1);
	cr_assert_eq(jnum(doc, "rc"), 0);
	cJSON_Delete(doc);
	out_free(&r);
	cr_assert_not(shm_file_exists(adopted("j")));
}

/* SIGTERM to shmrun reaches the command; the run ends with its status. */
Test(shmrun, forwards_termination_signals_to_the_command)
{
	int outp[2];
	char ready[8];
	pid_t pid;
	int st;

	cr_assert_eq(pipe(outp), 0);
	if ((pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(outp[1], 1);
		close(outp[0]);
		/* Untraced by make valgrind: signals reach a traced
		 * process through valgrind's scheduler, late or not at
		 * all for a sigwaitinfo() loop. */
		execl(SHMRUN, "shmrun", "--ns", T.ns, "--dir", T.dir, "--", "sh",
		      "-c", "echo ready; exec sleep 30", UNTRACED, (char *)NULL);
		_exit(99);
	}
	close(outp[1]);
	cr_assert_eq(read(outp[0], ready, 6), 6, "the command did not start");
	cr_assert_eq(kill(pid, SIGTERM), 0);
	st = reap_child(pid);
	close(outp[0]);
	cr_assert(WIFEXITED(st), "shmrun itself died: %#x", st);
	cr_assert_eq(WEXITSTATUS(st), 128 + SIGTERM);
}

Test(shmrun, usage_help_and_version)
{
	char *none[] = {"shmrun", NULL};
	char *help[] = {"shmrun", "--help", NULL};
	char *ver[] = {"shmrun", "-V", NULL};
	char *bad[] = {"shmrun", "--ns", "no/slash", "--", "true", NULL};

	struct out r = run_tool(SHMRUN, none, NULL, 0);
	cr_assert_eq(r.code, 64, "%s", r.err);
	out_free(&r);
	r = run_tool(SHMRUN, help, NULL, 0);
	cr_assert_eq(r.code, 0);
	cr_assert(strstr(r.out, "Usage: shmrun"), "%s", r.out);
	out_free(&r);
	r = run_tool(SHMRUN, ver, NULL, 0);
	cr_assert_eq(r.code, 0);
	cr_assert(strstr(r.out, "shmrun"), "%s", r.out);
	out_free(&r);
	r = run_tool(SHMRUN, bad, NULL, 0);
	cr_assert_eq(r.code, 64, "%s", r.err);
	out_free(&r);
}

/* As PID 1 of a pid namespace (a container's entrypoint): orphans are its
 * to reap, and the run still ends and cleans up. */
Test(shmrun, works_as_pid_1)
{
	if (geteuid() != 0 || access("/usr/bin/unshare", X_OK) != 0)
		cr_skip_test("needs root and unshare(1)");
	char script[512];
	snprintf(script, sizeof script,
		 "{ %s C:%s K; } >/dev/null 2>&1 & sleep 0.2 & exit 0", PROG,
		 adopted("pid1"));
	char *argv[] = {"unshare", "--pid", "--fork", "--mount-proc", SHMRUN,
			"--ns", T.ns, "--dir", T.dir, "--", "sh", "-c", script,
			NULL};
	struct out r = run_tool("/usr/bin/unshare", argv, NULL, 0);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_not(shm_file_exists(adopted("pid1")), "left behind: %s", r.err);
	out_free(&r);
}

/* ---- trials with a program we did not write: Python multiprocessing ---- */

#define PY "/usr/bin/python3"
#define WORKLOAD SHMK_SRCDIR "/tests/data/mp_workload.py"

static int trials(int n)
{
	return getenv("SHMK_UNDER_VALGRIND") ? 3 : n;
}

static size_t leftovers(const char *prefix)
{
	char p[PATH_MAX];
	struct stat st;
	size_t n = 0;
	const char *sfx[] = {"-a", "-l"};

	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s%s", T.shm_dir, prefix, sfx[i]);
		n += lstat(p, &st) == 0;
	}
	return n;
}

/* The first child of pid, waited for up to 5 s (0 if none came). */
static pid_t first_child(pid_t pid)
{
	char p[64];

	snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(p, "re");
		int c = 0;
		if (f) {
			if (fscanf(f, "%d", &c) != 1)
				c = 0;
			fclose(f);
		}
		if (c > 0)
			return c;
		usleep(10000);
	}
	return 0;
}

static unsigned rnd_ms(unsigned max)
{
	static unsigned s;
	if (!s)
		s = (unsigned)getpid() * 2654435761u;
	s = s * 1103515245u + 12345u;
	return (s >> 8) % max;
}

/* >= 50 runs under shmrun, the program's whole tree SIGKILLed at a random
 * moment (its own process group, made by setsid): after each run, nothing
 * it created is left.  One run left alone prints exactly what it prints
 * without shmrun. */
Test(shmrun, python_multiprocessing_killed_at_random_leaves_nothing,
     .timeout = 600)
{
	if (access(PY, X_OK) != 0)
		cr_skip_test("needs %s", PY);
	char prefix[96];
	int n = trials(50);

	time_t t0 = time(NULL);

	snprintf(prefix, sizeof prefix, "%s-same", T.ns);
	char *plain[] = {"python3", WORKLOAD, prefix, UNTRACED, NULL};
	struct out a = run_tool(PY, plain, NULL, 0);
	char *wrapped[] = {"shmrun", "--ns", T.ns, "--dir", T.dir, "--", PY,
			   WORKLOAD, prefix, UNTRACED, NULL};
	struct out b = run_tool(SHMRUN, wrapped, NULL, 0);
	cr_assert_eq(a.code, 0, "%s", a.err);
	cr_assert_eq(b.code, 0, "%s", b.err);
	cr_assert_str_eq(a.out, b.out, "the output changed under shmrun");
	out_free(&a);
	out_free(&b);

	for (int t = 0; t < n; t++) {
		snprintf(prefix, sizeof prefix, "%s-t%d", T.ns, t);
		pid_t run = fork();
		cr_assert_geq(run, 0);
		if (run == 0) {
			int null = open("/dev/null", O_RDWR);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			dup2(null, 1);
			dup2(null, 2);
			execl(SHMRUN, "shmrun", "--ns", T.ns, "--dir", T.dir, "--",
			      "setsid", PY, WORKLOAD, prefix, UNTRACED,
			      (char *)NULL);
			_exit(99);
		}
		pid_t group = first_child(run);
		usleep(rnd_ms(900) * 1000);
		if (group > 0)
			kill(-group, SIGKILL);
		int st = reap_child(run);
		cr_assert(WIFEXITED(st), "trial %d: shmrun died (%#x)", t, st);
		cr_assert(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 128 + SIGKILL,
			  "trial %d: exit %d", t, WEXITSTATUS(st));
		cr_assert_eq(leftovers(prefix), 0, "trial %d: %zu object(s) left",
			     t, leftovers(prefix));
		cr_assert_eq(shm_sem_temps_left(t0), 0,
			     "trial %d: a semaphore's temporary file is left", t);
	}
}

/* The same with only LD_PRELOAD and SHMKEEPER_NS in the environment, then
 * shmclean: nothing left. */
Test(shmrun, python_with_only_the_preload_then_shmclean_leaves_nothing,
     .timeout = 600)
{
	if (access(PY, X_OK) != 0)
		cr_skip_test("needs %s", PY);
	char prefix[96], env_pre[PATH_MAX + 16], env_ns[96], env_dir[PATH_MAX + 16];
	int n = trials(50);
	time_t t0 = time(NULL);

	snprintf(env_pre, sizeof env_pre, "LD_PRELOAD=%s", PRELOAD);
	snprintf(env_ns, sizeof env_ns, "SHMKEEPER_NS=%s", T.ns);
	snprintf(env_dir, sizeof env_dir, "SHMKEEPER_DIR=%s", T.dir);
	for (int t = 0; t < n; t++) {
		snprintf(prefix, sizeof prefix, "%s-p%d", T.ns, t);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			char *envp[] = {env_pre, env_ns, env_dir, "PATH=/usr/bin:/bin",
					NULL};
			int null = open("/dev/null", O_RDWR);
			setpgid(0, 0);
			dup2(null, 1);
			dup2(null, 2);
			execle(PY, "python3", WORKLOAD, prefix, UNTRACED,
			       (char *)NULL, envp);
			_exit(99);
		}
		setpgid(pid, pid);
		usleep(rnd_ms(900) * 1000);
		kill(-pid, SIGKILL);
		reap_child(pid);
		/* Its pool workers and resource tracker die with the group;
		 * wait until none of the group is left. */
		for (int i = 0; i < 500 && kill(-pid, 0) == 0; i++)
			usleep(10000);
	}
	char *clean[] = {"shmclean", "--dir", T.dir, "--namespace", T.ns, NULL};
	struct out r = run_tool(SHMK_BUILDDIR "/tools/shmclean", clean, NULL, 0);
	cr_assert_eq(r.code, 0, "shmclean: %d\n%s%s", r.code, r.out, r.err);
	out_free(&r);
	for (int t = 0; t < n; t++) {
		snprintf(prefix, sizeof prefix, "%s-p%d", T.ns, t);
		cr_assert_eq(leftovers(prefix), 0, "trial %d: %zu object(s) left",
			     t, leftovers(prefix));
	}
	cr_assert_eq(shm_sem_temps_left(t0), 0,
		     "a semaphore's temporary file is left");
}

/* A program running under shmrun while reapers run beside it, again and
 * again: every object it made stays (its workers reopen them by name and
 * check their bytes each round), no reap takes anything, and its output
 * is the output it has without shmrun. */
Test(shmrun, python_multiprocessing_beside_a_reaper_loop_keeps_every_object,
     .timeout = 300)
{
	if (access(PY, X_OK) != 0)
		cr_skip_test("needs %s", PY);
	char prefix[96], buf[4096];
	char *rounds = getenv("SHMK_UNDER_VALGRIND") ? "3" : "40";
	int p[2], st, reaps = 0;
	size_t got = 0;

	snprintf(prefix, sizeof prefix, "%s-live", T.ns);
	cr_assert_eq(setenv("MP_ROUNDS", rounds, 1), 0);
	char *plain[] = {"python3", WORKLOAD, prefix, UNTRACED, NULL};
	struct out a = run_tool(PY, plain, NULL, 0);
	cr_assert_eq(a.code, 0, "%s", a.err);

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t run = fork();
	cr_assert_geq(run, 0);
	if (run == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		execl(SHMRUN, "shmrun", "--ns", T.ns, "--dir", T.dir, "--", PY,
		      WORKLOAD, prefix, UNTRACED, (char *)NULL);
		_exit(99);
	}
	close(p[1]);
	/* Reap the namespace until the program is done (its output pipe
	 * closes when the whole tree has let go of it). */
	for (;;) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		struct shmk_reap_report *rep = NULL;
		struct shmk_reap_options ro = {.dir = T.dir, .ns = T.ns};
		int rc = shmk_reap(&ro, &rep);
		cr_assert_eq(rc, 0, "reap %d: %s", reaps, shmk_last_error());
		cr_assert_eq(rep->segments_reaped, 0,
			     "reap %d took %zu object(s) of a live program",
			     reaps, rep->segments_reaped);
		shmk_reap_report_free(rep);
		reaps++;
		if (poll(&pf, 1, 5) > 0) {
			ssize_t n = read(p[0], buf + got, sizeof buf - 1 - got);
			cr_assert_geq(n, 0);
			if (n == 0)
				break;
			got += (size_t)n;
		}
	}
	close(p[0]);
	buf[got] = '\0';
	st = reap_child(run);
	unsetenv("MP_ROUNDS");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the program failed beside the reapers (%#x)", st);
	cr_assert_str_eq(buf, a.out, "the output changed under shmrun");
	cr_assert_gt(reaps, 10, "only %d reaps ran beside the program", reaps);
	cr_assert_eq(leftovers(prefix), 0, "%zu object(s) left", leftovers(prefix));
	out_free(&a);
}
