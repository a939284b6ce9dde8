/* SPDX-License-Identifier: MIT */
/* helpers.c - per-test environment; see helpers.h. */
#include "helpers.h"

#include <stdarg.h>
#include "internal.h" /* record writers, for trecord() */

#include <cjson/cJSON.h>

#include <criterion/hooks.h>
#include <criterion/internal/ordered-set.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct tenv T;

/* SHMK_TEST_TIMEOUT_SCALE=<n> (make valgrind sets 10): the runner multiplies
 * every suite's and test's timeout by n before it starts any test.  They are
 * hang guards, not budgets, and a suite's .timeout beats --timeout. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *e = getenv("SHMK_TEST_TIMEOUT_SCALE");
	double k = e ? strtod(e, NULL) : 0;

	if (!(k > 0))
		return;
	for (struct criterion_ordered_set_node *sn = set->suites->first; sn;
	     sn = sn->next) {
		struct criterion_suite_set *ss = (void *)(sn + 1);
		if (ss->suite.data)
			ss->suite.data->timeout *= k;
		for (struct criterion_ordered_set_node *tn =
			     ss->tests ? ss->tests->first : NULL;
		     tn; tn = tn->next) {
			struct criterion_test *t = (void *)(tn + 1);
			if (t->data)
				t->data->timeout *= k;
		}
	}
}

void tenv_setup(void)
{
	unsigned r;
	FILE *f = fopen("/dev/urandom", "r");

	fiu_init(0); /* failpoints are enabled per test with fiu_enable() */
	if (!f || fread(&r, sizeof r, 1, f) != 1)
		r = (unsigned)getpid() * 2654435761u;
	if (f)
		fclose(f);
	snprintf(T.dir, sizeof T.dir, "/tmp/shmk-test-XXXXXX");
	cr_assert_not_null(mkdtemp(T.dir), "mkdtemp: %s", strerror(errno));
	snprintf(T.ns, sizeof T.ns, "t%dx%08x", (int)getpid(), r);
	snprintf(T.ns_dir, sizeof T.ns_dir, "%s/%s", T.dir, T.ns);
	snprintf(T.shm_dir, sizeof T.shm_dir, "/dev/shm");
	/* T.dir is a registry from the start, so that tests may put files in
	 * it before the first open (an unmarked directory that is not empty
	 * is refused).  The marker suite uses directories of its own. */
	tmark();
}

void tmark(void)
{
	cr_assert_geq(shmk_registry_adopt(T.dir), 0, "marking %s: %s", T.dir,
		      shmk_last_error());
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static size_t shm_leftovers(bool remove_them, char *names, size_t sz)
{
	size_t l = strlen(T.ns), n = 0;
	DIR *d = opendir(T.shm_dir);
	struct dirent *e;

	if (!d)
		return 0;
	if (names && sz)
		names[0] = '\0';
	while ((e = readdir(d))) {
		/* The claims shmk_open() leaves for T.ns (and the neighbour
		 * namespaces some tests derive from it): not segments, and
		 * never removed by the library. */
		if (remove_them && !strncmp(e->d_name, ".shmkeeper-claim.", 17) &&
		    strstr(e->d_name, T.ns))
			unlinkat(dirfd(d), e->d_name, 0);
		if (strncmp(e->d_name, T.ns, l) != 0 || e->d_name[l] != '.')
			continue;
		n++;
		if (names && strlen(names) + strlen(e->d_name) + 2 < sz) {
			strcat(names, " ");
			strcat(names, e->d_name);
		}
		if (remove_them) {
			char p[PATH_MAX];
			snprintf(p, sizeof p, "%s/%s", T.shm_dir, e->d_name);
			unlink(p);
		}
	}
	closedir(d);
	return n;
}

void tenv_teardown(void)
{
	char names[1024];
	size_t left = shm_leftovers(true, names, sizeof names);

	if (T.dir[0])
		nftw(T.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	cr_assert_eq(left, 0, "test left %zu object(s) in %s:%s", left,
		     T.shm_dir, names);
}

struct shmk_options topts(void)
{
	struct shmk_options o = {.dir = T.dir,
				 .ns = T.ns,
				 .shm_dir = T.shm_dir,
				 .durability = SHMK_DURABLE_OFF};
	return o;
}

shmk_ctx *topen_flags(unsigned flags)
{
	struct shmk_options o = topts();
	shmk_ctx *c = NULL;
	int rc;

	o.flags = flags;
	rc = shmk_open(&o, &c);
	cr_assert_eq(rc, 0, "shmk_open: %d %s", rc, shmk_last_error());
	return c;
}

shmk_ctx *topen(void) { return topen_flags(0); }

void tclaim(void)
{
	shmk_ctx *c = topen_flags(SHMK_OPEN_NO_REAP);
	cr_assert_eq(shmk_close(c), 0);
}

const char *tfull(const char *name)
{
	static __thread char b[4][300];
	static __thread int k;
	char *p = b[k++ % 4];

	snprintf(p, 300, "/%s.%s", T.ns, name);
	return p;
}

size_t shm_count(void) { return shm_leftovers(false, NULL, 0); }

bool shm_file_exists(const char *file)
{
	char p[PATH_MAX];
	struct stat st;

	while (*file == '/')
		file++;
	snprintf(p, sizeof p, "%s/%s", T.shm_dir, file);
	return lstat(p, &st) == 0;
}

bool shm_exists(const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, name);
	return lstat(p, &st) == 0;
}

void tns_tmpfs(const char *size)
{
	char opts[64];

	snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
	if (mkdir(T.ns_dir, 0700) < 0 && errno != EEXIST)
		cr_assert_fail("%s: %s", T.ns_dir, strerror(errno));
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", T.ns_dir, "tmpfs", 0, opts) < 0)
		cr_skip_test("cannot mount a tmpfs on %s (%s): needs root",
			     T.ns_dir, strerror(errno));
}

size_t ns_files(const char *suffix)
{
	DIR *d = opendir(T.ns_dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "quarantine"))
			continue;
		if (suffix && (l < strlen(suffix) ||
			       strcmp(e->d_name + l - strlen(suffix), suffix)))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

size_t quarantined_files(void)
{
	char p[PATH_MAX];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(p, sizeof p, "%s/quarantine", T.ns_dir);
	if (!(d = opendir(p)))
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void put_file(const char *name, const char *content, size_t len)
{
	char p[PATH_MAX];
	int fd;

	mkdir(T.ns_dir, 0700);
	snprintf(p, sizeof p, "%s/%s", T.ns_dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
	cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
}

const char *srcpath(const char *rel)
{
	static __thread char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/%s", SHMK_SRCDIR, rel);
	return p;
}

pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int reap_child(pid_t pid)
{
	int st = 0;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			cr_assert_fail("waitpid(%d): %s", (int)pid,
				       strerror(errno));
	return st;
}

struct shmk_reap_report *treap(unsigned flags, int *rc)
{
	struct shmk_reap_options o = {.dir = T.dir, .ns = T.ns,
				      .shm_dir = T.shm_dir, .flags = flags};
	struct shmk_reap_report *rep = NULL;
	int r = shmk_reap(&o, &rep);

	if (rc)
		*rc = r;
	cr_assert_not_null(rep, "shmk_reap gave no report: %d %s", r,
			   shmk_last_error());
	return rep;
}

void out_free(struct out *o)
{
	free(o->out);
	free(o->err);
	o->out = o->err = NULL;
}

static void drain(int *fd, char **buf, size_t *len)
{
	char tmp[4096];
	ssize_t n = read(*fd, tmp, sizeof tmp);

	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	*buf = realloc(*buf, *len + (size_t)n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
}

/* Does any process have path open (a descriptor)? */
static bool held_open(const char *path)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	bool held = false;

	if (!proc)
		return true; /* cannot tell: not counted as left */
	while (!held && (p = readdir(proc))) {
		char fds[64], link[PATH_MAX], to[PATH_MAX];
		DIR *d;
		struct dirent *f;
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(fds, sizeof fds, "/proc/%s/fd", p->d_name);
		if (!(d = opendir(fds)))
			continue;
		while (!held && (f = readdir(d))) {
			ssize_t n;
			snprintf(link, sizeof link, "%s/%s", fds, f->d_name);
			if ((n = readlink(link, to, sizeof to - 1)) <= 0)
				continue;
			to[n] = '\0';
			held = strcmp(to, path) == 0;
		}
		closedir(d);
	}
	closedir(proc);
	return held;
}

size_t shm_sem_temps_left(time_t t0)
{
	DIR *d = opendir(T.shm_dir);
	struct dirent *e;
	struct stat st;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		bool glibc_tmp = strncmp(e->d_name, "sem.", 4) == 0 &&
				 strlen(e->d_name) == 10 &&
				 strspn(e->d_name + 4, "abcdefghijklmnopqrstuvwxyz"
							"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
							"0123456789") == 6;
		if (!glibc_tmp && strncmp(e->d_name, "sem.shmk-", 9) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", T.shm_dir, e->d_name);
		if (held_open(path))
			continue;
		if (lstat(path, &st) == 0 && st.st_ctime >= t0 &&
		    st.st_uid == geteuid())
			n++;
	}
	closedir(d);
	return n;
}

struct out run_tool_list(const char *path, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;
	const char *a;

	argv[n++] = (char *)path;
	va_start(ap, path);
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return run_tool(path, argv, NULL, 0);
}

struct out run_tool(const char *path, char *const argv[], char *const envp[],
		    unsigned long nofile)
{
	struct run_opts ro = {.nofile = nofile};

	return run_tool_opts(path, argv, envp, &ro);
}

struct out run_tool_opts(const char *path, char *const argv[],
			 char *const envp[], const struct run_opts *ro)
{
	unsigned long nofile = ro->nofile;
	extern char **environ;
	struct out r = {0};
	int po[2], pe[2], go[2] = {-1, -1}, pb[2] = {-1, -1}, st;
	size_t lo = 0, le = 0;
	pid_t pid, parent = getpid();
	char *untraced[64];

	cr_assert_eq(access(path, X_OK), 0,
		     "%s is not built (run make tools first): %s", path,
		     strerror(errno));
	if (nofile && getenv("SHMK_UNDER_VALGRIND")) {
		/* make valgrind traces every tool but one run under a
		 * descriptor limit: valgrind enforces the limit itself, after
		 * the kernel, so an open with O_CREAT over it creates its file
		 * and then says EMFILE, which no kernel does (shm_open would
		 * leave an object the library rightly thinks it never made).
		 * tests/valgrind.mk skips children with this argv[0]. */
		size_t n = 0;
		while (argv[n] && n < 63)
			n++;
		cr_assert_null(argv[n], "too many arguments");
		memcpy(untraced, argv, (n + 1) * sizeof *argv);
		untraced[0] = "shmk-vg-untraced";
		argv = untraced;
	}
	cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
	if (ro->stdout_broken) { /* nobody will ever read it */
		cr_assert_eq(pipe2(pb, O_CLOEXEC), 0);
		close(pb[0]);
	}
	if (nofile)
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(126);
		if (dup2(ro->stdout_broken ? pb[1] : po[1], 1) < 0 ||
		    dup2(pe[1], 2) < 0)
			_exit(126);
		if (ro->stdout_broken && signal(SIGPIPE, SIG_DFL) == SIG_ERR)
			_exit(126);
		if (ro->cpu_secs && !getenv("SHMK_UNDER_VALGRIND")) {
			struct rlimit cl = {ro->cpu_secs, ro->cpu_secs + 1};
			if (setrlimit(RLIMIT_CPU, &cl) < 0)
				_exit(126);
		}
		if (nofile) { /* ready; wait for the parent to set the limit */
			char c = 'r';
			close(go[1]);
			if (write(go[0], &c, 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(126);
			/* Only 0-2 count against the limit, as for a tool
			 * started from a shell: not what the runner leaves
			 * open (nanomsg's descriptors are not close-on-exec);
			 * and under valgrind execve itself needs one. */
			closefrom(3);
		}
		execve(path, argv, envp ? envp : environ);
		_exit(127);
	}
	if (nofile) {
		/* The parent sets the child's descriptor limit, with prlimit()
		 * before the child execs, because under valgrind (make
		 * valgrind) a process's setrlimit(RLIMIT_NOFILE) on itself is
		 * only emulated and lost at exec, while prlimit() on another
		 * process reaches the kernel.  Once the child says it runs:
		 * valgrind's own set-up of a forked child takes descriptors. */
		struct rlimit rl = {nofile, nofile};
		char c;
		int rc = read(go[1], &c, 1) == 1 ? 0 : -1;

		if (rc == 0)
			rc = prlimit(pid, RLIMIT_NOFILE, &rl, NULL);
		if (rc == 0 && write(go[1], "g", 1) != 1)
			rc = -1;
		close(go[0]);
		close(go[1]); /* on failure the child sees EOF: exit 126 */
		cr_assert_eq(rc, 0, "descriptor limit %lu: %s", nofile,
			     strerror(errno));
	}
	close(po[1]);
	close(pe[1]);
	if (pb[1] >= 0)
		close(pb[1]);
	r.out = calloc(1, 1);
	r.err = calloc(1, 1);
	while (po[0] >= 0 || pe[0] >= 0) {
		struct pollfd p[2] = {{.fd = po[0], .events = POLLIN},
				      {.fd = pe[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			cr_assert_eq(errno, EINTR, "poll: %s", strerror(errno));
			continue;
		}
		if (p[0].revents)
			drain(&po[0], &r.out, &lo);
		if (p[1].revents)
			drain(&pe[0], &r.err, &le);
	}
	st = reap_child(pid);
	r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	cr_assert_neq(r.code, 127, "cannot exec %s", path);
	return r;
}

void assert_json_format(const cJSON *doc, const char *format)
{
	const cJSON *first = doc ? doc->child : NULL;

	cr_assert(first && first->string && !strcmp(first->string, "format"),
		  "the document does not start with \"format\"");
	cr_assert_str_eq(jstr(doc, "format"), format);
	cr_assert_str_eq(first->next->string, "version");
	cr_assert_eq(jnum(doc, "version"), 1);
}

const cJSON *jget(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	cr_assert_not_null(v, "no \"%s\" in the JSON document", key);
	return v;
}

double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number", key);
	return v->valuedouble;
}

const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	cr_assert(cJSON_IsString(v), "\"%s\" is not a string", key);
	return v->valuestring;
}

/* helpers.h */
pid_t tkilled_owner(const char *const *names, const size_t *sizes, size_t size)
{
	int p[2];
	char c = 0;
	pid_t pid;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmk_options o = topts();
		shmk_ctx *ctx;
		shmk_segment *s;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		o.flags = SHMK_OPEN_NO_REAP;
		o.role = "victim";
		if (shmk_open(&o, &ctx) != 0)
			_exit(1);
		for (int i = 0; names[i]; i++)
			if (shmk_segment_create(ctx, names[i], sizes ? sizes[i] : size,
						 &s) != 0)
				_exit(2);
		if (write(p[1], "k", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	ssize_t n = read(p[0], &c, 1);
	close(p[0]);
	kill(pid, SIGKILL);
	int st = reap_child(pid);
	cr_assert(n == 1 && c == 'k', "child failed: status %x", st);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	return pid;
}

void trecord(const char *id, const struct shmk_ident *who, const char *seg,
	     int state, uint64_t ino)
{
	char buf[2048], name[128];
	struct shmk_rec_seg s = {.size = 4096, .created = 1,
				 .state = (enum shmk_seg_state)state, .ino = ino};
	int n = shmk__fmt_header_open(buf, sizeof buf, T.ns, id, who, "", 1);

	cr_assert_gt(n, 0);
	if (seg) {
		snprintf(s.name, sizeof s.name, "/%s.%s", T.ns, seg);
		n += shmk__fmt_seg(buf + n, sizeof buf - (size_t)n, &s);
	}
	n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
	snprintf(name, sizeof name, "%s.jsonl", id);
	put_file(name, buf, (size_t)n);
}
