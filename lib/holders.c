/* SPDX-License-Identifier: MIT */
/* holders.c - which processes have an shm object open or mapped (the
 * semantics of fuser(1)), for a whole set of objects in one pass over /proc.
 *
 * Why: a stray may be removed only when no process holds it (invariant 4),
 * and a reaped segment's bytes are freed only when nothing maps it any more.
 * Both questions are about inodes of one filesystem (the shm directory's),
 * so the scan keeps only the (inode, pid, how) triples whose device is that
 * filesystem's and answers each question by binary search.
 *
 * What is looked at, per process (numeric entries of /proc; threads are not
 * listed there and share the fd table and mm of their process):
 *   /proc/<pid>/fd/<n>  statx through the magic link: st_dev, st_ino;
 *   /proc/<pid>/maps    the "MM:mm inode" columns of every mapping.
 * One DIR (the /proc listing) plus at most one more descriptor (the fd
 * directory, then the maps file) is open at any time, whatever the number
 * of processes or fds.
 *
 * A mapping whose path maps prints with " (deleted)" is of an object that
 * has no name any more (unlinked, by a reaper or anyone): its memory stays
 * in use until the last mapping goes.  Such mappings are remembered apart,
 * per inode, with the name the object had and the highest byte mapped, so
 * that a scan can say how much unlinked memory is still pinned and by
 * whom.  (Only mappings: maps names the file; an unlinked object held by a
 * descriptor alone is counted among the holders of its inode, unnamed.)
 *
 * What is not seen (as with fuser): descriptors in flight in a unix socket
 * (SCM_RIGHTS), a thread that unshared its fd table (CLONE_FILES), and
 * processes of other pid namespaces than the one /proc was mounted for.
 *
 * Unknown is not "nobody" (invariant 7): a process whose fd directory or
 * maps cannot be read is remembered with its pid, uid and errno, and the
 * caller decides (a reaper must not call an object unheld while such a
 * process could hold it).  Zombies and kernel threads hold no files and are
 * not reported even when unreadable; a process that exits during the scan
 * ("vanished", ENOENT/ESRCH) holds nothing by then and is skipped.
 */
#include "internal.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PF_KTHREAD_FLAG 0x00200000u /* include/linux/sched.h */
#define MAPS_BUF (64u << 10)        /* a maps line is < PATH_MAX + 100 */

struct held {
	ino_t ino;
	pid_t pid;
	unsigned how; /* SHMK_HELD_FD | SHMK_HELD_MAP */
};

struct unreadable {
	pid_t pid;
	uid_t uid;
	int err; /* positive errno */
};

/* A mapped object with no name any more: the last component of the path
 * maps printed for it (minus " (deleted)"), and the highest byte any
 * mapping of it reaches (offset + length). */
struct gone {
	ino_t ino;
	uint64_t extent;
	char name[NAME_MAX + 1];
};

struct shmk_holders {
	struct held *e; /* sorted by (ino, pid), one entry per pair, owned */
	size_t n, cap;
	struct unreadable *u; /* in /proc order, owned */
	size_t nu, capu;
	struct gone *g; /* sorted by ino, one entry per inode, owned */
	size_t ng, capg;
};

/* The scan's working state: the result plus what one pass needs. */
struct scan {
	struct shmk_holders *h;
	int procfd;          /* /proc, borrowed from the DIR */
	unsigned maj, min;   /* of the device we look for */
	char devstr[32];     /* "MM:mm " exactly as maps prints it */
	size_t devlen;
	char *buf;           /* MAPS_BUF bytes, owned */
};

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	if (!(p = SHMK_SYSP("malloc", NULL, reallocarray(*arr, ncap, size))))
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Adds (ino, pid, how); entries of one process that follow each other with
 * the same inode (consecutive mappings of one file) are folded here, the
 * rest by the sort at the end.  start: the process's first entry. */
static int add_held(struct shmk_holders *h, size_t start, ino_t ino,
		    pid_t pid, unsigned how)
{
	if (h->n > start && h->e[h->n - 1].ino == ino) {
		h->e[h->n - 1].how |= how;
		return 0;
	}
	if (grow((void **)&h->e, &h->cap, h->n, sizeof *h->e) < 0)
		return -ENOMEM;
	h->e[h->n++] = (struct held){.ino = ino, .pid = pid, .how = how};
	return 0;
}

/* Reads the small file /proc/<name>/<what> into buf (NUL-terminated):
 * 0 or -errno. */
static int read_proc_small(int procfd, const char *name, const char *what,
			   char *buf, size_t sz)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof path, "%s/%s", name, what);
	n = shmk__read_small(procfd, path, buf, sz);
	return n < 0 ? (int)n : 0;
}

/* A process we could not read: is it one that holds nothing anyway (gone,
 * zombie, kernel thread)?  If not, remember it with its effective uid. */
static int note_unreadable(struct scan *s, const char *name, pid_t pid,
			   int err)
{
	struct shmk_holders *h = s->h;
	char buf[1024];
	const char *p;
	unsigned long flags = 0;
	uid_t uid = (uid_t)-1;
	int field;

	if (err == ENOENT || err == ESRCH)
		return 0; /* vanished */
	/* stat is world-readable: state is field 3 (after the last ')', comm
	 * may hold anything), flags field 9. */
	if (read_proc_small(s->procfd, name, "stat", buf, sizeof buf) < 0)
		return 0; /* vanished meanwhile (or no procfs at all) */
	if ((p = strrchr(buf, ')')) && p[1] == ' ' && p[2]) {
		if (p[2] == 'Z' || p[2] == 'X')
			return 0;
		for (field = 2, p++; field < 9 && *p; p++)
			if (*p == ' ')
				field++;
		if (field == 9)
			flags = strtoul(p, NULL, 10);
		if (flags & PF_KTHREAD_FLAG)
			return 0;
	}
	/* "Uid:\treal\teffective\tsaved\tfs" */
	if (read_proc_small(s->procfd, name, "status", buf, sizeof buf) == 0 &&
	    (p = strstr(buf, "\nUid:"))) {
		char *eff;
		(void)strtoul(p + 5, &eff, 10); /* skip the real uid */
		uid = (uid_t)strtoul(eff, NULL, 10);
	}
	if (grow((void **)&h->u, &h->capu, h->nu, sizeof *h->u) < 0)
		return -ENOMEM;
	h->u[h->nu++] = (struct unreadable){.pid = pid, .uid = uid, .err = err};
	return 0;
}

/* A hexadecimal number at *p, before end; *p moves past it. */
static uint64_t hex(const char **p, const char *end)
{
	uint64_t v = 0;

	for (; *p < end; (*p)++) {
		char c = **p;
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
						    : 16;
		if (d == 16)
			break;
		v = v << 4 | d;
	}
	return v;
}

/* The mapping on line [line, nl) of an object with no name any more
 * ("... inode   /dev/shm/x (deleted)"; p is past the inode): remembered
 * with its name and extent, one entry per inode in a row (the rest is
 * folded by sort_and_fold).  0 or -ENOMEM. */
static int add_gone(struct shmk_holders *h, ino_t ino, const char *line,
		    const char *p, const char *nl)
{
	static const char del[] = " (deleted)";
	const size_t dl = sizeof del - 1;
	const char *q = line, *base;
	uint64_t lo, hi, off;
	size_t len;

	while (p < nl && *p == ' ')
		p++;
	if ((size_t)(nl - p) <= dl || memcmp(nl - dl, del, dl))
		return 0;
	for (base = nl - dl; base > p && base[-1] != '/'; base--)
		;
	if (!(len = (size_t)(nl - dl - base)) || len > NAME_MAX)
		return 0;
	lo = hex(&q, nl);
	if (q >= nl || *q++ != '-')
		return 0;
	hi = hex(&q, nl);
	if (q >= nl || *q++ != ' ' || !(q = memchr(q, ' ', (size_t)(nl - q))))
		return 0;
	q++;
	off = hex(&q, nl); /* "start-end perms offset ..." */
	if (hi < lo)
		return 0;
	if (h->ng && h->g[h->ng - 1].ino == ino) {
		struct gone *g = &h->g[h->ng - 1];
		if (off + (hi - lo) > g->extent)
			g->extent = off + (hi - lo);
		return 0;
	}
	if (grow((void **)&h->g, &h->capg, h->ng, sizeof *h->g) < 0)
		return -ENOMEM;
	/* Whole, so the bytes after the name that go to the caller through
	 * the socket are known ones. */
	memset(&h->g[h->ng], 0, sizeof h->g[h->ng]);
	h->g[h->ng].ino = ino;
	h->g[h->ng].extent = off + (hi - lo);
	memcpy(h->g[h->ng].name, base, len);
	h->g[h->ng].name[len] = '\0';
	h->ng++;
	return 0;
}

/* One maps line [p, nl): "start-end perms offset MM:mm inode   path". */
static int maps_line(struct scan *s, size_t start, pid_t pid, const char *p,
		     const char *nl)
{
	const char *line = p;
	ino_t ino = 0;
	int k, rc;

	for (k = 0; k < 3; k++) {
		if (!(p = memchr(p, ' ', (size_t)(nl - p))))
			return 0;
		p++;
	}
	if ((size_t)(nl - p) < s->devlen || memcmp(p, s->devstr, s->devlen))
		return 0;
	for (p += s->devlen; p < nl && *p >= '0' && *p <= '9'; p++)
		ino = ino * 10 + (ino_t)(*p - '0');
	if (!ino)
		return 0;
	if ((rc = add_held(s->h, start, ino, pid, SHMK_HELD_MAP)) < 0)
		return rc;
	return add_gone(s->h, ino, line, p, nl);
}

/* The mappings of one process: one read() loop into s->buf, lines parsed
 * in place.  0, -ENOMEM, or the positive errno that stopped the reading. */
static int scan_maps(struct scan *s, const char *name, pid_t pid, size_t start)
{
	char path[64];
	size_t have = 0;
	bool skip = false; /* the rest of an over-long line is in the way */
	int fd, rc = 0;

	snprintf(path, sizeof path, "%s/maps", name);
	if ((fd = openat(s->procfd, path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno;
	for (;;) {
		ssize_t n = read(fd, s->buf + have, MAPS_BUF - have);
		char *p, *nl, *end;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		end = s->buf + have;
		for (p = s->buf; (nl = memchr(p, '\n', (size_t)(end - p)));
		     p = nl + 1) {
			if (!skip && (rc = maps_line(s, start, pid, p, nl)) < 0)
				goto out;
			skip = false;
		}
		if (p == s->buf && have == MAPS_BUF) {
			/* No newline in a full buffer: the columns we want
			 * are at the start; parse them, drop the rest. */
			if (!skip && (rc = maps_line(s, start, pid, p, end)) < 0)
				goto out;
			skip = true;
			have = 0;
			continue;
		}
		have = (size_t)(end - p);
		memmove(s->buf, p, have);
	}
out:
	shmk__close(&fd);
	return rc;
}

/* The open descriptors of one process.  0, -ENOMEM, or a positive errno.
 * The directory is read with getdents64() into s->buf (free until the maps
 * are read): fdopendir() would add an fstat and two fcntl calls per
 * process, a third of this function's system calls for most of them. */
static int scan_fds(struct scan *s, const char *name, pid_t pid, size_t start)
{
	char path[64];
	int fd, rc = 0;

	snprintf(path, sizeof path, "%s/fd", name);
	fd = openat(s->procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	for (;;) {
		ssize_t n = getdents64(fd, s->buf, MAPS_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? errno : 0;
			break;
		}
		for (ssize_t off = 0; off < n && rc == 0;) {
			struct dirent64 *d = (struct dirent64 *)(s->buf + off);
			struct statx stx;

			off += d->d_reclen;
			if (d->d_name[0] == '.')
				continue;
			/* Follows the magic link to the open file.  DONT_SYNC:
			 * dev and inode need no revalidation, and a process's
			 * fd on a network or FUSE filesystem must not make us
			 * wait for its server. */
			if (statx(fd, d->d_name, AT_STATX_DONT_SYNC, STATX_INO,
				  &stx) < 0) {
				if (errno == ENOENT)
					continue; /* closed meanwhile */
				rc = errno;
				break;
			}
			if (stx.stx_dev_major == s->maj &&
			    stx.stx_dev_minor == s->min)
				rc = add_held(s->h, start, (ino_t)stx.stx_ino, pid,
					      SHMK_HELD_FD);
		}
		if (rc)
			break;
	}
	shmk__close(&fd);
	return rc;
}

static int scan_pid(struct scan *s, const char *name, pid_t pid)
{
	size_t start = s->h->n, gstart = s->h->ng;
	int rc;

	/* fds first, closed, then maps: never two per-process descriptors. */
	if ((rc = scan_fds(s, name, pid, start)) == 0)
		rc = scan_maps(s, name, pid, start);
	if (rc <= 0)
		return rc; /* done, or -ENOMEM */
	if (rc == EMFILE || rc == ENFILE || rc == ENOMEM)
		return -rc; /* our trouble, not the process's */
	if (rc == ENOENT || rc == ESRCH) {
		s->h->n = start; /* it exited: it holds nothing now */
		s->h->ng = gstart;
	}
	/* What was read before the failure is true and stays. */
	return note_unreadable(s, name, pid, rc);
}

static int cmp_held(const void *a, const void *b)
{
	const struct held *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_gone(const void *a, const void *b)
{
	const struct gone *x = a, *y = b;

	return (x->ino > y->ino) - (x->ino < y->ino);
}

/* Sorts by (ino, pid) and folds the entries of one pair into one; the
 * unnamed objects by inode, keeping the largest extent. */
static void sort_and_fold(struct shmk_holders *h)
{
	size_t i, k = 0;

	if (h->ng) {
		qsort(h->g, h->ng, sizeof *h->g, cmp_gone);
		for (i = 1; i < h->ng; i++) {
			if (h->g[i].ino != h->g[k].ino)
				h->g[++k] = h->g[i];
			else if (h->g[i].extent > h->g[k].extent)
				h->g[k].extent = h->g[i].extent;
		}
		h->ng = k + 1;
		k = 0;
	}
	if (!h->n)
		return;
	qsort(h->e, h->n, sizeof *h->e, cmp_held);
	for (i = 1; i < h->n; i++) {
		if (h->e[i].ino == h->e[k].ino && h->e[i].pid == h->e[k].pid)
			h->e[k].how |= h->e[i].how;
		else
			h->e[++k] = h->e[i];
	}
	h->n = k + 1;
}

static pid_t pid_of(const char *name)
{
	long v = 0;

	if (!*name)
		return 0;
	for (; *name; name++) {
		if (*name < '0' || *name > '9' || v > INT_MAX / 10)
			return 0;
		v = v * 10 + (*name - '0');
	}
	return (pid_t)v;
}

/* Which processes a scan looks at: all but the scanning child itself and
 * the caller it was forked from (whose inherited fds and mappings are the
 * caller's), or the caller alone, which looks at itself (a process may
 * always read its own /proc entries; a child may not read a parent that
 * changed its uid). */
enum scope { OTHERS, SELF };

/* The scan itself, in this process. */
static int scan_here(dev_t dev, enum scope scope, pid_t caller,
		     struct shmk_holders **out)
{
	struct scan s = {.maj = major(dev), .min = minor(dev)};
	struct dirent *d;
	DIR *proc = NULL;
	int fd = -1, rc = 0;

	*out = NULL;
	/* The kernel prints "%02x:%02x " (show_map_vma); so do we. */
	s.devlen = (size_t)snprintf(s.devstr, sizeof s.devstr, "%02x:%02x ",
				    s.maj, s.min);
	if (!(s.h = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *s.h))) ||
	    !(s.buf = SHMK_SYSP("malloc", NULL, malloc(MAPS_BUF)))) {
		rc = shmk__err(-ENOMEM, "/proc: scanning for holders: out of "
					"memory");
		goto out;
	}
	fd = SHMK_SYS("openat", openat(AT_FDCWD, "/proc",
				       O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (fd < 0 || !(proc = fdopendir(fd))) {
		rc = shmk__err(-errno, "/proc: cannot open: %s",
			       strerror(errno));
		shmk__close(&fd);
		goto out;
	}
	/* Not procfs (something mounted over it, a chroot): an empty or
	 * foreign directory would say "nobody holds anything". */
	if (!shmk__proc_is_ours()) {
		rc = shmk__err(-ENOSYS, "/proc: not the proc filesystem of our "
					"pid namespace: cannot tell who holds "
					"what");
		goto out;
	}
	s.procfd = dirfd(proc);
	if (scope == SELF) {
		char name[16];
		snprintf(name, sizeof name, "%d", (int)caller);
		if ((rc = scan_pid(&s, name, caller)) < 0)
			rc = shmk__err(rc, "/proc/%d: scanning for holders: "
					   "%s", (int)caller, strerror(-rc));
	}
	for (; scope == OTHERS;) {
		pid_t pid;

		errno = 0;
		if (!(d = readdir(proc))) {
			if (errno)
				rc = shmk__err(-errno, "/proc: cannot list: %s",
					       strerror(errno));
			break;
		}
		if ((pid = pid_of(d->d_name)) <= 0 || pid == caller ||
		    pid == getpid())
			continue;
		if ((rc = scan_pid(&s, d->d_name, pid)) < 0) {
			rc = shmk__err(rc, "/proc/%d: scanning for holders: "
					   "%s", (int)pid, strerror(-rc));
			break;
		}
	}
	if (rc == 0) {
		sort_and_fold(s.h);
		*out = s.h;
		s.h = NULL;
	}
out:
	if (proc)
		closedir(proc);
	free(s.buf);
	shmk__holders_free(s.h);
	return rc;
}

/* ---- bounded: the scan runs in a child ------------------------------------
 *
 * Reading /proc/<pid>/maps takes the target's mmap lock: a process stuck
 * in a page fault (a hung FUSE or NFS mapping) or one that holds the lock
 * for writing can make that read wait for as long as it likes.  Invariant
 * 8 says no co-tenant may hang a caller, so the pass runs in a child
 * process that is SIGKILLed at the deadline (the wait for the mmap lock is
 * killable): the caller then gets -ETIMEDOUT, which is "unknown", never
 * "nobody holds it" - no stray is removed on it.  The child sends its
 * result down a pipe: a header, then the two arrays. */

struct wire {
	int rc;
	size_t n, nu, ng;
	char err[512]; /* the child's sentence when rc < 0 */
};

static int timeout_ms(void)
{
	const char *e = getenv("SHMKEEPER_HOLDERS_TIMEOUT_MS");
	long v = e && *e ? strtol(e, NULL, 10) : 0;

	return v > 0 && v < 3600000 ? (int)v : SHMK_HOLDERS_TIMEOUT_MS;
}

static bool put(int fd, const void *p, size_t len)
{
	for (const char *c = p; len;) {
		ssize_t w = write(fd, c, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		len -= (size_t)w;
	}
	return true;
}

static _Noreturn void child(dev_t dev, pid_t caller, int wfd)
{
	struct shmk_holders *h = NULL;
	struct wire w = {0};

	shmk__close_inherited(&wfd, 1);
	if (fiu_fail("shmk/holders/hang"))
		for (;;)
			pause(); /* as a read of a stuck process's maps */
	w.rc = scan_here(dev, OTHERS, caller, &h);
	if (w.rc < 0)
		snprintf(w.err, sizeof w.err, "%s", shmk_last_error());
	else {
		w.n = h->n;
		w.nu = h->nu;
		w.ng = h->ng;
	}
	if (!put(wfd, &w, sizeof w) ||
	    (h && (!put(wfd, h->e, h->n * sizeof *h->e) ||
		   !put(wfd, h->u, h->nu * sizeof *h->u) ||
		   !put(wfd, h->g, h->ng * sizeof *h->g))))
		_exit(1);
	/* Leave only when the caller has read it all and let go (its end of
	 * the socket closed): until then this pid cannot be reaped and
	 * reused, so the caller may kill it by pid. */
	while (read(wfd, &w.rc, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* Reads len bytes by the deadline: 0, -ETIMEDOUT, or -EPIPE (the child
 * died or wrote less). */
static int get(int fd, void *p, size_t len, int64_t deadline)
{
	for (char *c = p; len;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - shmk__mono_ms();
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		if (!(pf.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(fd, c, len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -EPIPE;
		c += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Appends what b found to a. */
static int merge(struct shmk_holders *a, const struct shmk_holders *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (grow((void **)&a->e, &a->cap, a->n, sizeof *a->e) < 0)
			return shmk__err(-ENOMEM, "/proc: scanning for holders: "
						  "out of memory");
		a->e[a->n++] = b->e[i];
	}
	for (size_t i = 0; i < b->nu; i++) {
		if (grow((void **)&a->u, &a->capu, a->nu, sizeof *a->u) < 0)
			return shmk__err(-ENOMEM, "/proc: scanning for holders: "
						  "out of memory");
		a->u[a->nu++] = b->u[i];
	}
	for (size_t i = 0; i < b->ng; i++) {
		if (grow((void **)&a->g, &a->capg, a->ng, sizeof *a->g) < 0)
			return shmk__err(-ENOMEM, "/proc: scanning for holders: "
						  "out of memory");
		a->g[a->ng++] = b->g[i];
	}
	return 0;
}

int shmk__holders_scan(dev_t dev, struct shmk_holders **out)
{
	struct shmk_holders *h = NULL, *mine = NULL;
	struct wire w;
	int p[2], rc, ms = timeout_ms();
	pid_t self = getpid();
	int64_t deadline;
	pid_t pid;

	if (!out)
		return shmk__err(-EINVAL, "shmk__holders_scan: out is NULL");
	*out = NULL;
	if (SHMK_SYS("socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					       0, p)) < 0)
		return shmk__err(-errno, "/proc: scanning for holders: "
				 "socketpair: %s", strerror(errno));
	if ((pid = SHMK_SYS("fork", fork())) < 0) {
		rc = -errno;
		close(p[0]);
		close(p[1]);
		return shmk__err(rc, "/proc: scanning for holders: fork: %s",
				 strerror(-rc));
	}
	if (pid == 0)
		child(dev, self, p[1]);
	close(p[1]);
	deadline = shmk__mono_ms() + ms;
	rc = get(p[0], &w, sizeof w, deadline);
	w.err[sizeof w.err - 1] = '\0';
	if (rc == 0 && w.rc < 0) {
		rc = shmk__err(w.rc, "%s", w.err);
	} else if (rc == 0) {
		if (!(h = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *h))) ||
		    (w.n && !(h->e = SHMK_SYSP("malloc", NULL,
					       calloc(w.n, sizeof *h->e)))) ||
		    (w.nu && !(h->u = SHMK_SYSP("malloc", NULL,
						calloc(w.nu, sizeof *h->u)))) ||
		    (w.ng && !(h->g = SHMK_SYSP("malloc", NULL,
						calloc(w.ng, sizeof *h->g)))))
			rc = shmk__err(-ENOMEM, "/proc: scanning for holders: "
						"out of memory");
		else {
			h->n = h->cap = w.n;
			h->nu = h->capu = w.nu;
			h->ng = h->capg = w.ng;
			rc = get(p[0], h->e, w.n * sizeof *h->e, deadline);
			if (rc == 0)
				rc = get(p[0], h->u, w.nu * sizeof *h->u, deadline);
			if (rc == 0)
				rc = get(p[0], h->g, w.ng * sizeof *h->g, deadline);
		}
		if (rc == -ETIMEDOUT || rc == -EPIPE)
			rc = shmk__err(rc, "/proc: the scan for holders ended "
					   "before it said all");
	}
	if (rc == -ETIMEDOUT)
		rc = shmk__err(rc, "/proc: the scan for holders did not finish "
				   "within %d ms (some process's /proc entries "
				   "do not answer): cannot tell who holds what",
			       ms);
	else if (rc == -EPIPE && !shmk_last_error()[0])
		rc = shmk__err(rc, "/proc: the scan for holders died");
	/* Late: it is stuck (the wait for an mmap lock is killable).  Until
	 * we close our end it waits for us, so the pid is still its own. */
	if (rc == -ETIMEDOUT)
		kill(pid, SIGKILL);
	close(p[0]);
	/* It leaves now.  ECHILD: the caller's own SIGCHLD handler reaped it
	 * first, which is fine. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	/* And the caller itself, here. */
	if (rc == 0 && (rc = scan_here(dev, SELF, self, &mine)) == 0)
		rc = merge(h, mine);
	shmk__holders_free(mine);
	if (rc < 0) {
		shmk__holders_free(h);
		return rc;
	}
	sort_and_fold(h);
	*out = h;
	return 0;
}

void shmk__holders_free(struct shmk_holders *h)
{
	if (!h)
		return;
	free(h->e);
	free(h->u);
	free(h->g);
	free(h);
}

size_t shmk__holders_of(const struct shmk_holders *h, ino_t ino, pid_t *pids,
			size_t max, unsigned *how)
{
	size_t lo = 0, hi = h ? h->n : 0, count = 0;
	unsigned all = 0;

	while (lo < hi) { /* first entry with e.ino >= ino */
		size_t mid = lo + (hi - lo) / 2;
		if (h->e[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; h && lo < h->n && h->e[lo].ino == ino; lo++, count++) {
		if (count < max && pids)
			pids[count] = h->e[lo].pid;
		all |= h->e[lo].how;
	}
	if (how)
		*how = all;
	return count;
}

size_t shmk__holders_unreadable(const struct shmk_holders *h)
{
	return h ? h->nu : 0;
}

int shmk__holders_unreadable_at(const struct shmk_holders *h, size_t i,
				pid_t *pid, uid_t *uid)
{
	if (!h || i >= h->nu)
		return shmk__err(-EINVAL, "holders: no unreadable process #%zu",
				 i);
	if (pid)
		*pid = h->u[i].pid;
	if (uid)
		*uid = h->u[i].uid;
	return -h->u[i].err;
}

size_t shmk__holders_gone(const struct shmk_holders *h)
{
	return h ? h->ng : 0;
}

const char *shmk__holders_gone_at(const struct shmk_holders *h, size_t i,
				  ino_t *ino, uint64_t *extent)
{
	if (!h || i >= h->ng)
		return NULL;
	if (ino)
		*ino = h->g[i].ino;
	if (extent)
		*extent = h->g[i].extent;
	return h->g[i].name;
}
