/* SPDX-License-Identifier: MIT */
/* monitor.c - the ResourceMonitor: samples, baseline, leak verdicts, limits.
 *
 * A sample reads exactly what it reports and nothing more: /proc/PID/fd
 * (one directory listing), /proc/PID/statm (RSS), /proc/PID/stat (threads),
 * /proc/PID/task/TID/children for each thread and /proc/CHILD/stat for each
 * child (zombies), the namespace's objects in the shm directory (listing and
 * one fstatat each: our own regular files, by allocated size, see
 * shmk__ns_usage), and statvfs of the shm directory.  Directory fds of
 * /proc/PID and of the shm directory are opened once and kept, so a sample
 * costs what the bare reads of the same files cost (make bench).
 */
#include "internal.h"

#include <pthread.h>

#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct shmk_monitor {
	struct shmk_monitor_options o;
	char ns[SHMK_NS_MAX + 1];
	char shm_path[PATH_MAX];
	int proc_fd; /* /proc/PID */
	int shm_fd;
	pid_t pid;
	long page;
	unsigned samples, ticks;
	bool has_base;
	struct shmk_sample base;
	pthread_mutex_t mu;
};

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int shmk_monitor_create(const struct shmk_monitor_options *o, shmk_monitor **out)
{
	struct shmk_monitor_options none = {0};
	shmk_monitor *m;
	char path[64];
	int rc;

	if (!out)
		return shmk__err(-EINVAL, "monitor: out is NULL");
	*out = NULL;
	if (!o)
		o = &none;
	if (o->ns && (rc = shmk_ns_check(o->ns)) < 0)
		return rc;
	if (!(m = calloc(1, sizeof *m)))
		return shmk__err(-ENOMEM, "monitor: out of memory");
	m->o = *o;
	m->proc_fd = m->shm_fd = -1;
	m->pid = o->pid ? o->pid : getpid();
	m->page = sysconf(_SC_PAGESIZE);
	if (!m->o.rss_threshold_pct)
		m->o.rss_threshold_pct = 10.0;
	if (!m->o.rss_threshold_bytes)
		m->o.rss_threshold_bytes = 8u << 20;
	snprintf(m->ns, sizeof m->ns, "%s", o->ns ? o->ns : "");
	snprintf(m->shm_path, sizeof m->shm_path, "%s",
		 o->shm_dir ? o->shm_dir : SHMK_DEFAULT_SHM_DIR);
	pthread_mutex_init(&m->mu, NULL);
	snprintf(path, sizeof path, "/proc/%d", (int)m->pid);
	m->proc_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->proc_fd < 0) {
		rc = shmk__err(-errno, "monitor: %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = shmk__shmdir_open(m->shm_path, &m->shm_fd)) < 0) {
		rc = shmk__err(rc, "monitor: %s", shmk_last_error());
		goto fail;
	}
	*out = m;
	return 0;
fail:
	shmk_monitor_destroy(m);
	return rc;
}

void shmk_monitor_destroy(shmk_monitor *m)
{
	if (!m)
		return;
	shmk__close(&m->proc_fd);
	shmk__close(&m->shm_fd);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Entries of dirfd/name, "." and ".." excluded. */
static long count_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	long n = 0;

	if (fd < 0)
		return -errno;
	if (!(dir = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Field k (1-based, k >= 3) of a /proc stat line. */
static const char *stat_field(const char *buf, int k)
{
	const char *p = strrchr(buf, ')');

	if (!p)
		return NULL;
	for (int f = 2; f < k && *p; p++)
		if (*p == ' ')
			f++;
	return *p ? p : NULL;
}

static int sample_proc(shmk_monitor *m, struct shmk_sample *s)
{
	char buf[4096];
	const char *f;
	long fds;

	/* Descriptors: listing /proc/self/fd opens one more, which is ours. */
	if ((fds = count_dir(m->proc_fd, "fd")) < 0)
		return shmk__err((int)fds, "monitor: /proc/%d/fd: %s", (int)m->pid,
				 strerror((int)-fds));
	s->fds = fds - (m->pid == getpid() ? 1 : 0);
	if (shmk__read_small(m->proc_fd, "statm", buf, sizeof buf) > 0) {
		unsigned long long size = 0, res = 0;
		if (sscanf(buf, "%llu %llu", &size, &res) == 2)
			s->rss = (uint64_t)res * (uint64_t)m->page;
	}
	if (shmk__read_small(m->proc_fd, "stat", buf, sizeof buf) > 0 &&
	    (f = stat_field(buf, 20)))
		s->threads = strtol(f, NULL, 10);

	/* Children of every thread; zombies among them. */
	int tfd = openat(m->proc_fd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *td = tfd >= 0 ? fdopendir(tfd) : NULL;
	struct dirent *d;

	if (!td) {
		if (tfd >= 0)
			close(tfd);
		return 0;
	}
	while ((d = readdir(td))) {
		char path[96], kids[4096];
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "task/%s/children", d->d_name);
		if (shmk__read_small(m->proc_fd, path, kids, sizeof kids) <= 0)
			continue;
		for (char *p = kids, *e; *p; p = e) {
			long pid = strtol(p, &e, 10);
			if (e == p)
				break;
			s->children++;
			snprintf(path, sizeof path, "/proc/%ld/stat", pid);
			if (shmk__read_small(AT_FDCWD, path, buf, sizeof buf) > 0 &&
			    (f = stat_field(buf, 3)) && *f == 'Z')
				s->zombies++;
		}
	}
	closedir(td);
	return 0;
}

static void sample_shm(shmk_monitor *m, struct shmk_sample *s)
{
	struct statvfs v;
	size_t l = strlen(m->ns);

	if (fstatvfs(m->shm_fd, &v) == 0) {
		s->shm_free = (uint64_t)v.f_bavail * v.f_frsize;
		s->shm_total = (uint64_t)v.f_blocks * v.f_frsize;
	}
	if (l)
		(void)shmk__ns_usage(m->shm_fd, m->ns, &s->ns_segments,
				     &s->ns_bytes, NULL);
}

int shmk_monitor_sample(shmk_monitor *m, struct shmk_sample *s)
{
	int rc;

	if (!m || !s)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	memset(s, 0, sizeof *s);
	s->when_ms = unix_ms();
	s->pid = m->pid;
	if ((rc = sample_proc(m, s)) < 0)
		return rc;
	sample_shm(m, s);
	pthread_mutex_lock(&m->mu);
	if (!m->has_base && m->o.warmup && ++m->samples == m->o.warmup) {
		m->base = *s;
		m->has_base = true;
	}
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int shmk_monitor_set_baseline(shmk_monitor *m, const struct shmk_sample *s)
{
	struct shmk_sample now;
	int rc;

	if (!m)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	if (!s) {
		if ((rc = shmk_monitor_sample(m, &now)) < 0)
			return rc;
		s = &now;
	}
	pthread_mutex_lock(&m->mu);
	m->base = *s;
	m->has_base = true;
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int shmk_monitor_has_baseline(shmk_monitor *m)
{
	int b;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->mu);
	b = m->has_base;
	pthread_mutex_unlock(&m->mu);
	return b;
}

int shmk_monitor_baseline(shmk_monitor *m, struct shmk_sample *out)
{
	int rc = 0;

	if (!m || !out)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	pthread_mutex_lock(&m->mu);
	if (m->has_base)
		*out = m->base;
	else
		rc = -EAGAIN;
	pthread_mutex_unlock(&m->mu);
	return rc < 0 ? shmk__err(rc, "monitor: no baseline yet") : 0;
}

static void add_reason(struct shmk_verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_reason(struct shmk_verdict *v, const char *fmt, ...)
{
	size_t l = strlen(v->reason);
	va_list ap;

	if (l && l + 2 < sizeof v->reason) {
		memcpy(v->reason + l, "; ", 3);
		l += 2;
	}
	va_start(ap, fmt);
	vsnprintf(v->reason + l, sizeof v->reason - l, fmt, ap);
	va_end(ap);
}

int shmk_monitor_check(shmk_monitor *m, const struct shmk_sample *s,
		       struct shmk_verdict *v)
{
	struct shmk_sample now, base;
	int rc;

	if (!m || !v)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	memset(v, 0, sizeof *v);
	if (!s) {
		if ((rc = shmk_monitor_sample(m, &now)) < 0)
			return rc;
		s = &now;
	}
	if ((rc = shmk_monitor_baseline(m, &base)) < 0)
		return rc;
	v->fd_delta = s->fds - base.fds;
	v->rss_delta = (int64_t)s->rss - (int64_t)base.rss;
	v->thread_delta = s->threads - base.threads;
	v->child_delta = s->children - base.children;
	v->zombies = s->zombies;
	v->segment_delta = (int64_t)s->ns_segments - (int64_t)base.ns_segments;
	v->bytes_delta = (int64_t)s->ns_bytes - (int64_t)base.ns_bytes;

	if (v->fd_delta > m->o.fd_threshold) {
		v->fd_leak = 1;
		add_reason(v, "fd: %+ld (threshold %ld)", v->fd_delta,
			   m->o.fd_threshold);
	}
	/* RSS grows for innocent reasons (heap high-water marks, page cache of
	 * mapped files): it is a leak only past both the relative and the
	 * absolute threshold. */
	if (v->rss_delta > 0 &&
	    (double)v->rss_delta > (double)base.rss * m->o.rss_threshold_pct / 100.0 &&
	    (uint64_t)v->rss_delta > m->o.rss_threshold_bytes) {
		v->rss_leak = 1;
		add_reason(v, "rss: %+" PRId64 " bytes (thresholds %.1f%% and %" PRIu64
			      " bytes)",
			   v->rss_delta, m->o.rss_threshold_pct,
			   m->o.rss_threshold_bytes);
	}
	if (v->thread_delta > 0) {
		v->thread_leak = 1;
		add_reason(v, "threads: %+ld", v->thread_delta);
	}
	if (v->child_delta > 0 || v->zombies > base.zombies) {
		v->child_leak = 1;
		add_reason(v, "children: %+ld (%ld zombie%s)", v->child_delta,
			   v->zombies, v->zombies == 1 ? "" : "s");
	}
	if (v->segment_delta > (int64_t)m->o.segment_threshold) {
		v->segment_leak = 1;
		add_reason(v, "segments of %s: %+" PRId64, m->ns, v->segment_delta);
	}
	if (v->bytes_delta > (int64_t)m->o.bytes_threshold) {
		v->bytes_leak = 1;
		add_reason(v, "bytes of %s: %+" PRId64, m->ns, v->bytes_delta);
	}
	v->leak = v->fd_leak || v->rss_leak || v->thread_leak || v->child_leak ||
		  v->segment_leak || v->bytes_leak;
	if (!v->leak)
		snprintf(v->reason, sizeof v->reason, "no leak");
	return 0;
}

int shmk_monitor_tick(shmk_monitor *m, struct shmk_verdict *v)
{
	unsigned t;
	int rc;

	if (!m || !v)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	if (!m->o.check_every)
		return 0;
	pthread_mutex_lock(&m->mu);
	t = ++m->ticks;
	pthread_mutex_unlock(&m->mu);
	if (t % m->o.check_every)
		return 0;
	if ((rc = shmk_monitor_check(m, NULL, v)) < 0)
		return rc == -EAGAIN ? 0 : rc;
	return 1;
}

int shmk_monitor_limits(shmk_monitor *m, const struct shmk_sample *s)
{
	int crossed = 0;

	if (!m || !s)
		return shmk__err(-EINVAL, "monitor: NULL argument");
	if (m->o.ns_bytes_soft && s->ns_bytes > m->o.ns_bytes_soft) {
		crossed = 1;
		if (m->o.on_soft)
			m->o.on_soft("ns_bytes", s->ns_bytes, m->o.ns_bytes_soft,
				     m->o.arg);
	}
	if (m->o.rss_soft && s->rss > m->o.rss_soft) {
		crossed = 1;
		if (m->o.on_soft)
			m->o.on_soft("rss", s->rss, m->o.rss_soft, m->o.arg);
	}
	return crossed;
}

void shmk__monitor_get_limits(shmk_monitor *m, struct shmk__limits *out)
{
	out->ns_bytes_hard = m->o.ns_bytes_hard;
	out->ns_bytes_soft = m->o.ns_bytes_soft;
	out->rss_hard = m->o.rss_hard;
	out->rss_soft = m->o.rss_soft;
}

uint64_t shmk__monitor_rss(shmk_monitor *m)
{
	unsigned long long sz, res;
	char buf[256];

	if (shmk__read_small(m->proc_fd, "statm", buf, sizeof buf) > 0 &&
	    sscanf(buf, "%llu %llu", &sz, &res) == 2)
		return (uint64_t)res * (uint64_t)m->page;
	return 0;
}

int shmk_sample_json(const struct shmk_sample *s, char *buf, size_t size)
{
	int n = snprintf(buf, size,
			 "{\"when_ms\":%" PRId64 ",\"pid\":%d,\"fds\":%ld,"
			 "\"rss\":%" PRIu64 ",\"threads\":%ld,\"children\":%ld,"
			 "\"zombies\":%ld,\"ns_segments\":%" PRIu64
			 ",\"ns_bytes\":%" PRIu64 ",\"shm_free\":%" PRIu64
			 ",\"shm_total\":%" PRIu64 "}",
			 s->when_ms, (int)s->pid, s->fds, s->rss, s->threads,
			 s->children, s->zombies, s->ns_segments, s->ns_bytes,
			 s->shm_free, s->shm_total);
	return (n < 0 || (size_t)n >= size) ? shmk__err(-ENOBUFS, "sample: "
								  "buffer too small")
					    : n;
}
