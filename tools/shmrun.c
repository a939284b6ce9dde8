/* SPDX-License-Identifier: MIT */
/* shmrun - run any program with its POSIX shared memory kept: nothing it
 * creates outlives it, whatever kills it.
 *
 *   shmrun [--ns NS] [--dir DIR] [--json] [--preload PATH] [--] CMD [ARGS...]
 *
 * CMD runs as a child with libshmkeeper-preload.so in LD_PRELOAD, so every
 * shm_open/sem_open that creates an object records it in namespace NS.
 * shmrun is a child subreaper: every process of CMD's tree that is orphaned
 * becomes its child, is reaped by it (zombies never pile up, also as PID 1
 * of a container), and is waited for.  SIGTERM, SIGINT, SIGHUP, SIGQUIT,
 * SIGUSR1 and SIGUSR2 are forwarded to CMD.  When the whole tree is gone,
 * shmrun reaps NS (every owner of it is dead by then, so every object they
 * created goes) and says on stderr what was reaped, then exits with CMD's
 * status (128 + n when a signal n killed it).  If shmrun itself is killed,
 * the records stay and shmclean (or the next shmrun of NS) reaps them.
 *
 * Exit status: CMD's; 127 CMD not found, 126 not executable; EX_USAGE;
 * EX_CONFIG the registry or namespace is refused; EX_OSERR fork or signal
 * setup failed.  The reap's own failure is reported but never hides CMD's
 * status (see shmrun(1)).
 */
#include "common.h"
#include "shmkeeper.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHMK_PRELOAD_PATH
#define SHMK_PRELOAD_PATH "/usr/local/lib/shmkeeper/libshmkeeper-preload.so"
#endif

struct opts {
	const char *ns, *dir, *preload;
	bool json;
	char **cmd;
};

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP,
				SIGQUIT, SIGUSR1, SIGUSR2};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shmrun [--ns NS] [--dir DIR] [--json] [--preload PATH] [--] CMD [ARGS...]\n"
		"       shmrun -h | --help | -V | --version\n"
		"\n"
		"Runs CMD with its POSIX shared memory kept: every object it creates is\n"
		"recorded, and when CMD and all its descendants are gone - however they\n"
		"ended - what they left is removed.\n"
		"\n"
		"Options:\n"
		"  --ns NS, --namespace NS\n"
		"                  namespace of the run (default: $SHMKEEPER_NS, else\n"
		"                  \"shmrun\")\n"
		"  --dir DIR       registry directory (default: $SHMKEEPER_DIR, then the\n"
		"                  library's defaults, see shmk_open(3))\n"
		"  --json          the reap report as JSON on standard error instead of\n"
		"                  one line\n"
		"  --preload PATH  the preload library (default: $SHMKEEPER_PRELOAD, else\n"
		"                  %s)\n"
		"  -h, --help      show this help and exit\n"
		"  -V, --version   show the version and exit\n"
		"\n"
		"Exit status:\n"
		"  CMD's exit status, or 128+N if signal N killed it, except:\n"
		"  64   usage error\n"
		"  71   system error (fork, signal setup)\n"
		"  78   preload library missing or $SHMKEEPER_NS invalid\n"
		"  126  CMD could not be executed\n"
		"  127  CMD was not found\n"
		"See shmrun(1).\n",
		SHMK_PRELOAD_PATH);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_NS = 256, O_DIR, O_JSON, O_PRELOAD };
	static const struct option lo[] = {
		{"ns", required_argument, NULL, O_NS},
		{"namespace", required_argument, NULL, O_NS},
		{"dir", required_argument, NULL, O_DIR},
		{"json", no_argument, NULL, O_JSON},
		{"preload", required_argument, NULL, O_PRELOAD},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	/* "+": stop at CMD, whose options are its own. */
	while ((c = getopt_long(argc, argv, "+:hV", lo, NULL)) != -1) {
		switch (c) {
		case O_NS: o->ns = tool_opt_ns("--ns", optarg); break;
		case O_DIR: o->dir = tool_opt_dir("--dir", optarg); break;
		case O_JSON: o->json = true; break;
		case O_PRELOAD:
			o->preload = tool_opt_dir("--preload", optarg);
			break;
		default: tool_opt_other(c, argv, usage);
		}
	}
	if (optind >= argc)
		tool_usage_error("no command to run");
	o->cmd = &argv[optind];
}

/* LD_PRELOAD for CMD: ours first, then whatever was there. */
static void set_env(const struct opts *o, const char *ns)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;

	if (old && *old) {
		if (asprintf(&v, "%s:%s", o->preload, old) < 0)
			_exit(EX_OSERR);
	} else if (!(v = strdup(o->preload))) {
		_exit(EX_OSERR);
	}
	if (setenv("LD_PRELOAD", v, 1) < 0 || setenv("SHMKEEPER_NS", ns, 1) < 0 ||
	    (o->dir && setenv("SHMKEEPER_DIR", o->dir, 1) < 0))
		_exit(EX_OSERR);
	free(v);
}

/* The child: CMD, with the signal mask shmrun started with. */
static _Noreturn void run_cmd(const struct opts *o, const char *ns,
			      const sigset_t *orig)
{
	int e;

	sigprocmask(SIG_SETMASK, orig, NULL);
	set_env(o, ns);
	execvp(o->cmd[0], o->cmd);
	e = errno;
	fprintf(stderr, "%s: unable to run %s: %s\n", tool_prog, o->cmd[0],
		strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

/* Waits for every process of the tree (ours by birth or as subreaper),
 * forwarding signals to CMD while it lives.  Returns CMD's wait status. */
static int supervise(pid_t cmd, const sigset_t *set)
{
	bool cmd_done = false;
	int cmd_status = 0;

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(set, &si);

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			tool_fatal(EX_OSERR, "sigwaitinfo: %s", strerror(errno));
		}
		if (sig != SIGCHLD) {
			if (!cmd_done)
				kill(cmd, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);

			if (p == 0)
				break;
			if (p < 0) {
				if (errno == EINTR)
					continue;
				/* ECHILD: the whole tree is gone. */
				return cmd_status;
			}
			if (p == cmd) {
				cmd_done = true;
				cmd_status = st;
			}
		}
		(void)cmd_done;
	}
}

static int exit_code_of(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EX_SOFTWARE;
}

static void report(const struct opts *o, const char *ns, int rc,
		   const struct shmk_reap_report *rep)
{
	char h[TOOL_HSIZE];

	if (o->json) {
		cJSON *doc = tj_document("shmkeeper-shmrun"), *items;
		char *text;

		tj_str(doc, "namespace", ns);
		tj_num(doc, "rc", rc);
		tj_str(doc, "error", rc < 0 ? shmk_last_error() : NULL);
		if (rep) {
			tj_num(doc, "owners_dead", (double)rep->owners_dead);
			tj_num(doc, "owners_unknown", (double)rep->owners_unknown);
			tj_num(doc, "reaped", (double)rep->segments_reaped);
			tj_num(doc, "bytes_reaped", (double)rep->bytes_reaped);
			tj_num(doc, "held", (double)rep->segments_held);
			tj_num(doc, "bytes_held", (double)rep->bytes_held);
			tj_num(doc, "errors", (double)rep->errors);
			items = tj_arr(doc, "items");
			for (size_t i = 0; i < rep->n_items; i++) {
				const struct shmk_reap_item *it = &rep->items[i];
				cJSON *j = tj_arr_obj(items);
				tj_str(j, "action", shmk_reap_action_name(it->action));
				tj_str(j, "owner", it->owner);
				tj_num(j, "pid", it->pid);
				tj_str(j, "object", it->object);
				tj_num(j, "bytes", (double)it->bytes);
				tj_str(j, "reason", it->reason);
			}
		}
		if (!(text = cJSON_Print(doc)))
			tool_fatal(EX_OSERR, "out of memory");
		fprintf(stderr, "%s\n", text);
		free(text);
		cJSON_Delete(doc);
		return;
	}
	if (rc < 0 && (!rep || !rep->n_items)) {
		tool_error("unable to reap namespace %s: %s (shmclean reaps it "
			   "later)", ns, shmk_last_error());
		return;
	}
	if (rep->segments_reaped || rep->errors || rep->owners_unknown ||
	    rep->segments_held)
		fprintf(stderr, "%s: namespace %s: %zu object%s reaped (%s)%s%s\n",
			tool_prog, ns, rep->segments_reaped,
			tool_s(rep->segments_reaped),
			tool_hsize(rep->bytes_reaped + rep->bytes_held, h),
			rc < 0 ? "; some could not be handled: " : "",
			rc < 0 ? shmk_last_error() : "");
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct shmk_reap_report *rep = NULL;
	const char *ns;
	sigset_t set, orig;
	pid_t cmd;
	int st, rc;

	tool_init("shmrun");
	parse_args(argc, argv, &o);
	if (!o.preload)
		o.preload = getenv("SHMKEEPER_PRELOAD") && *getenv("SHMKEEPER_PRELOAD")
				    ? getenv("SHMKEEPER_PRELOAD")
				    : SHMK_PRELOAD_PATH;
	if (access(o.preload, R_OK) < 0)
		tool_fatal(EX_CONFIG, "preload library %s: %s", o.preload,
			   strerror(errno));
	if (!(ns = o.ns) && (ns = getenv("SHMKEEPER_NS")) && *ns &&
	    shmk_ns_check(ns) < 0)
		tool_fatal(EX_CONFIG, "SHMKEEPER_NS: %s", shmk_last_error());
	/* One namespace for all runs is safe: a run reaps only owners that
	 * are dead, never another run's live ones. */
	if (!ns || !*ns)
		ns = "shmrun";

	/* Every signal that matters is taken by sigwaitinfo, never by a
	 * handler: nothing runs asynchronously, also as PID 1. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
		sigaddset(&set, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &set, &orig) < 0 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		tool_fatal(EX_OSERR, "unable to set up signals: %s",
			   strerror(errno));
	fflush(NULL);
	if ((cmd = fork()) < 0)
		tool_fatal(EX_OSERR, "fork: %s", strerror(errno));
	if (cmd == 0)
		run_cmd(&o, ns, &orig);

	st = supervise(cmd, &set);

	/* Everyone of the tree is gone: every owner of ns that this run
	 * made is dead, so its objects go. */
	struct shmk_reap_options ro = {.dir = o.dir, .ns = ns,
				       .flags = SHMK_REAP_NO_STRAYS};
	rc = shmk_reap(&ro, &rep);
	report(&o, ns, rc, rep);
	shmk_reap_report_free(rep);
	return exit_code_of(st);
}
