/* SPDX-License-Identifier: MIT */
/* helpers.h - what every test needs: its own registry directory and
 * namespace, and a check that it left nothing in the shm directory. */
#ifndef SHMK_TEST_HELPERS_H
#define SHMK_TEST_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <limits.h>
#include <stdbool.h>
#include <time.h>
#include <stddef.h>
#include <sys/types.h>

#include "shmkeeper.h"

struct tenv {
	char dir[PATH_MAX];  /* registry directory (mkdtemp, 0700)        */
	char ns[40];         /* unique namespace "t<pid>x<rand>"          */
	char ns_dir[PATH_MAX];
	char shm_dir[PATH_MAX]; /* "/dev/shm" unless a test changed it   */
};

/* The current test's environment (set up by tenv_setup). */
extern struct tenv T;

/* Criterion .init/.fini: use as TestSuite(x, .init = tenv_setup,
 * .fini = tenv_teardown, .timeout = 30). teardown fails the test if any
 * "<ns>." object is left in T.shm_dir, then removes leftovers and dir. */
void tenv_setup(void);
void tenv_teardown(void);

/* Marks T.dir as a registry (shmk_registry_adopt); tenv_setup does. */
void tmark(void);

/* shmk_open() with T.dir, T.ns, T.shm_dir, durability off. */
shmk_ctx *topen(void);
shmk_ctx *topen_flags(unsigned flags);
struct shmk_options topts(void);
/* Opens and closes T.ns with T.dir, so the namespace is bound (claimed)
 * to T.dir as a service's first open binds it: strays are removed only in
 * a namespace bound to the reaper's registry. */
void tclaim(void);

/* "/<T.ns>.<name>", the object name reports and tools use (one of four
 * rotating per-thread buffers: valid for the next three calls). */
const char *tfull(const char *name);

/* Number of "<ns>." objects in T.shm_dir. */
size_t shm_count(void);
/* Does "<T.ns>.<name>" exist in T.shm_dir? */
bool shm_exists(const char *name);
/* Does the file T.shm_dir/<file> exist (leading slashes of file dropped:
 * an object's name as the tools and reports give it)? */
bool shm_file_exists(const char *file);
/* Files in T.ns_dir whose name ends with suffix (NULL: all but "." ".."
 * and the quarantine directory). */
size_t ns_files(const char *suffix);
/* T.ns_dir made a tmpfs of its own (size like "1m"), in a private mount
 * namespace of the calling process (it goes with it): where a test needs
 * what only tmpfs gives, whatever /tmp is.  Skips the test if it cannot
 * (needs root). */
void tns_tmpfs(const char *size);
/* Files in T.ns_dir/quarantine. */
size_t quarantined_files(void);
/* Whole content of a file (malloc'd, NUL-terminated) or NULL. */
char *slurp(const char *path, size_t *len);
/* Writes content to T.ns_dir/name (mode 0600). */
void put_file(const char *name, const char *content, size_t len);
/* Path of a file in the source tree (e.g. "registry/valid"). */
const char *srcpath(const char *rel);
/* Fork a child that runs fn(arg) and _exit(fn's return). */
pid_t spawn(int (*fn)(void *), void *arg);
/* waitpid, retrying EINTR; returns the status. */
int reap_child(pid_t pid);
/* Output of a program run by run_tool(). */
struct out {
	int code; /* exit status, or 128 + signal */
	char *out, *err;
};
void out_free(struct out *o);
/* Runs path with argv (argv[0] included, NULL-terminated) and envp (NULL:
 * this process's environment), stdout and stderr captured.  The program
 * dies with the test (PR_SET_PDEATHSIG), so a timed-out test leaves no
 * process behind.  nofile: its RLIMIT_NOFILE, with only descriptors 0-2
 * open (0: inherited, and whatever this process leaves open on exec). */
struct out run_tool(const char *path, char *const argv[], char *const envp[],
		    unsigned long nofile);
/* run_tool() with more control over the child. */
struct run_opts {
	unsigned long nofile; /* as run_tool()'s; 0: inherited             */
	unsigned cpu_secs;    /* RLIMIT_CPU, 0: none (none under valgrind,
				 which is slower than any budget)           */
	bool stdout_broken;   /* stdout: a pipe whose read end is closed
				 before the tool runs, SIGPIPE at its
				 default as under a shell (r.out stays "") */
};
struct out run_tool_opts(const char *path, char *const argv[],
			 char *const envp[], const struct run_opts *ro);
/* Temporary files of a semaphore's making left in T.shm_dir: glibc's
 * "sem.XXXXXX" (six characters) or the preload's "sem.shmk-<pid>-<n>",
 * changed since t0, of our uid, that no process holds open (their makers
 * hold them from before they exist until after their unlink, so one that
 * exists and is held by nobody was left by a maker that died). */
size_t shm_sem_temps_left(time_t t0);
/* run_tool() of path with argv[0] = path and the NULL-terminated
 * arguments that follow (at most 30), in this environment. */
struct out run_tool_list(const char *path, ...) __attribute__((sentinel));

/* JSON documents of the tools (--json): the member key of o, which must
 * exist (jget) and be a number (jnum) or a string (jstr); the test fails
 * otherwise.  Nodes are owned by o. */
struct cJSON;
const struct cJSON *jget(const struct cJSON *o, const char *key);
double jnum(const struct cJSON *o, const char *key);
const char *jstr(const struct cJSON *o, const char *key);
/* A tool's JSON document starts with "format": format and "version": 1,
 * as every tool's does (tools/common.h, tj_document()). */
void assert_json_format(const struct cJSON *doc, const char *format);

/* A child opens T.ns (role "victim"), creates names[i] (NULL-terminated)
 * of sizes[i] bytes (sizes NULL: size each), and is SIGKILLed holding
 * them: a dead owner the real way.  Returns its (reaped) pid. */
pid_t tkilled_owner(const char *const *names, const size_t *sizes, size_t size);

/* Writes T.ns_dir/<id>.jsonl: a record of owner id with identity who
 * (struct shmk_ident, internal.h) naming "<T.ns>.<seg>" (none if seg is
 * NULL) of 4096 bytes, in state (enum shmk_seg_state: intent or live)
 * with inode ino: an owner made by hand. */
struct shmk_ident;
void trecord(const char *id, const struct shmk_ident *who, const char *seg,
	     int state, uint64_t ino);

/* Reap everything dead in T.ns (strays not scanned); returns report
 * (caller frees) and the rc via *rc. */
struct shmk_reap_report *treap(unsigned flags, int *rc);

#endif
