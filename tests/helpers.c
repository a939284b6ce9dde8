/* helpers.c - per-test environment; see helpers.h. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct tenv T;

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

size_t shm_count(void) { return shm_leftovers(false, NULL, 0); }

bool shm_exists(const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, name);
	return lstat(p, &st) == 0;
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

struct out run_tool(const char *path, char *const argv[], char *const envp[],
		    unsigned long nofile)
{
	extern char **environ;
	struct out r = {0};
	int po[2], pe[2], st;
	size_t lo = 0, le = 0;
	pid_t pid, parent = getpid();

	cr_assert_eq(access(path, X_OK), 0,
		     "%s is not built (run make tools first): %s", path,
		     strerror(errno));
	cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(126);
		if (dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
			_exit(126);
		if (nofile) {
			struct rlimit rl = {nofile, nofile};
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		execve(path, argv, envp ? envp : environ);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
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
