/* SPDX-License-Identifier: MIT */
/* pool_death.c - a worker's death, seen by the service: claiming it,
 * reaping and classifying the worker (exit, code, signal, SIGKILL, OOM
 * from the cgroup's counter, timeout, or unknown when the service reaped
 * it itself), re-initialising the slot, the report, quarantine and the
 * request for a replacement; and the spawner's death, which stops the
 * pool. */
#include "pool_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static const char *const limit_names[] = {"", "cgroup2 memory.max",
					  "cgroup1 memory.limit_in_bytes",
					  "RLIMIT_AS"};
static const char *const oom_names[] = {"", "cgroup2 memory.events",
					"cgroup1 memory.oom_control"};

/* ---- cgroup and limits ------------------------------------------------- */

static bool key_value(const char *text, const char *key, uint64_t *out)
{
	size_t l = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, key, l) == 0 && p[l] == ' ') {
			*out = strtoull(p + l + 1, NULL, 10);
			return true;
		}
	return false;
}

/* Where the cgroup hierarchy of fstype ("cgroup2", or "cgroup" with the
 * memory controller) is mounted, into base: the conventional place if a
 * filesystem of that type is there (one statfs), else the first such
 * mount in /proc/self/mountinfo (reading it cost 0.4 ms per pool start,
 * when every start did).  False if there is none. */
static bool cgroup_mount(bool v2, char *base, size_t size)
{
	const char *guess = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
	char line[PATH_MAX];
	struct statfs sf;
	FILE *f;
	bool found = false;

	if (statfs(guess, &sf) == 0 &&
	    sf.f_type == (v2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC)) {
		snprintf(base, size, "%s", guess);
		return true;
	}
	if (!(f = fopen("/proc/self/mountinfo", "re")))
		return false;
	while (!found && fgets(line, sizeof line, f)) {
		char mnt[PATH_MAX], fstype[64], opts[512] = "";
		int n = sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s %*s %511s",
			       mnt, fstype, opts);
		if (n >= 2 && strcmp(fstype, v2 ? "cgroup2" : "cgroup") == 0 &&
		    (v2 || strstr(opts, "memory"))) {
			snprintf(base, size, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Find where this process's OOM-kill counter and memory limit live:
 * cgroup v2 memory.events / memory.max, or on hosts that still mount the v1
 * memory controller, memory.oom_control / memory.limit_in_bytes. */
static bool oom_count(const struct memwatch *m, uint64_t *out);

void shmk__memwatch_init(struct memwatch *m)
{
	char cg[4096], base[PATH_MAX];

	memset(m, 0, sizeof *m);
	if (shmk__read_small(AT_FDCWD, "/proc/self/cgroup", cg, sizeof cg) <= 0)
		return;
	for (char *l = strtok(cg, "\n"); l && !m->src; l = strtok(NULL, "\n")) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		bool v2;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrl = c1 + 1, *path = c2 + 1;
		if (strcmp(path, "/") == 0)
			path = "";
		if (strcmp(ctrl, "") == 0)
			v2 = true;
		else if (strstr(ctrl, "memory"))
			v2 = false;
		else
			continue;
		if (!cgroup_mount(v2, base, sizeof base))
			continue;
		/* A path that does not fit is no source (never a shorter
		 * path, which would name another cgroup's file). */
		if ((size_t)snprintf(m->events, sizeof m->events, "%s%s/%s",
				     base, path,
				     v2 ? "memory.events" : "memory.oom_control") >=
			    sizeof m->events ||
		    (size_t)snprintf(m->limit, sizeof m->limit, "%s%s/%s", base,
				     path,
				     v2 ? "memory.max" : "memory.limit_in_bytes") >=
			    sizeof m->limit ||
		    access(m->events, R_OK) != 0)
			continue;
		m->src = m->limit_src = v2 ? 1 : 2;
	}
	oom_count(m, &m->oom_seen);
}

static bool oom_count(const struct memwatch *m, uint64_t *out)
{
	char buf[1024];

	return m->src &&
	       shmk__read_small(AT_FDCWD, m->events, buf, sizeof buf) > 0 &&
	       key_value(buf, "oom_kill", out);
}

static void mem_limit(const struct memwatch *m, uint64_t *limit, int *src)
{
	char buf[64];
	struct rlimit rl;

	*limit = 0;
	*src = 0;
	if (m->limit_src &&
	    shmk__read_small(AT_FDCWD, m->limit, buf, sizeof buf) > 0 &&
	    strncmp(buf, "max", 3) != 0) {
		uint64_t v = strtoull(buf, NULL, 10);
		if (v > 0 && v < (1ull << 62)) { /* v1 says "unlimited" so */
			*limit = v;
			*src = m->limit_src;
			return;
		}
	}
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		*limit = rl.rlim_cur;
		*src = 3;
	}
}


/* ---- re-initialisation and classification ------------------------------ */

/* Re-initialises slot i after a death.  Returns 0, or a positive errno
 * when RECREATE gave the pages back and could not reserve them again (the
 * tmpfs filled up meanwhile): the memory is then lost - a write to it is
 * SIGBUS - and the slot must never be handed out again. */
static int reinit_slot(shmk_pool *p, unsigned i)
{
	void *mem = shmk_segment_addr(p->slots[i]);
	size_t size = p->o.slot_size;
	int fd, rc;

	switch (p->o.reinit) {
	case SHMK_REINIT_KEEP:
		return 0;
	case SHMK_REINIT_RECREATE:
		/* Give the pages back, then reserve fresh ones so a full tmpfs
		 * is seen now and not as SIGBUS in the next job. */
		fd = SHMK_SYS("openat",
			      openat(p->ctx->shm_fd,
				     shmk_segment_name(p->slots[i]) + 1,
				     O_RDWR | O_NOFOLLOW | O_CLOEXEC));
		if (fd < 0) { /* nothing given back: fresh zeroes all the same */
			memset(mem, 0, size);
			return 0;
		}
		madvise(mem, size, MADV_REMOVE);
		(void)fiu_fail("shmk/test/pool/pages_given_back");
		rc = fiu_fail("shmk/sys/fallocate") ? shmk__fiu_errno()
						    : posix_fallocate(fd, 0, (off_t)size);
		close(fd);
		return rc;
	case SHMK_REINIT_ZERO:
	default:
		memset(mem, 0, size);
		return 0;
	}
}

/* known: the status and rusage are the worker's (false: the service
 * reaped it itself); timed_out: the pool SIGKILLed it at its job's
 * deadline. */
static void classify(bool known, int status, const struct rusage *ru,
		     struct memwatch *mw, bool timed_out, struct death_rec *d)
{
	uint64_t oom = 0;

	memset(d, 0, sizeof *d);
	d->when = shmk__now();
	d->peak_rss = known ? (uint64_t)ru->ru_maxrss * 1024 : 0;
	if (!known) {
		/* A SIGCHLD handler calling waitpid(-1), or SIGCHLD set to
		 * SIG_IGN, took the status: how it died is not known - but
		 * a worker the pool killed at its deadline did time out. */
		d->kind = timed_out ? SHMK_DEATH_TIMEOUT : SHMK_DEATH_UNKNOWN;
		if (timed_out)
			d->sig = SIGKILL;
	} else if (WIFEXITED(status)) {
		d->exit_code = WEXITSTATUS(status);
		d->kind = d->exit_code ? SHMK_DEATH_EXIT_CODE : SHMK_DEATH_EXIT_CLEAN;
	} else if (WIFSIGNALED(status)) {
		d->sig = WTERMSIG(status);
		d->core = WCOREDUMP(status) ? 1 : 0;
		d->kind = SHMK_DEATH_SIGNAL;
		if (d->sig == SIGKILL && timed_out) {
			d->kind = SHMK_DEATH_TIMEOUT;
		} else if (d->sig == SIGKILL) {
			d->kind = SHMK_DEATH_SIGKILL;
			/* Exit status 137 alone proves nothing: only a rise of
			 * the cgroup's oom_kill counter makes it an OOM kill.
			 * Each OOM death consumes one counted kill. */
			if (oom_count(mw, &oom) && oom > mw->oom_seen) {
				d->kind = SHMK_DEATH_OOM;
				d->oom_kills = oom - mw->oom_seen;
				mw->oom_seen++;
			}
		}
	}
	d->oom_src = mw->src;
	mem_limit(mw, &d->mem_limit, &d->limit_src);
	if (d->mem_limit && d->peak_rss * 100 >= d->mem_limit * 95)
		d->suggested = d->mem_limit + d->mem_limit / 2;
}

static void publish(struct pslot *s, const struct death_rec *d)
{
	atomic_fetch_add(&s->report_seq, 1); /* odd: being written */
	atomic_thread_fence(memory_order_seq_cst);
	s->last = *d;
	atomic_thread_fence(memory_order_seq_cst);
	atomic_fetch_add(&s->report_seq, 1);
}


/* ---- a death --------------------------------------------------------- */

int shmk__worker_fd(shmk_pool *p, unsigned i, pid_t pid)
{
	struct wproc *w = &p->w[i];

	if (pid <= 0)
		return -1;
	if (w->pid != pid) {
		/* A replacement (forked by the spawner): our child, so its
		 * pid names it until we reap it - unless the service reaped
		 * it itself (see shmk__settle). */
		shmk__close(&w->fd);
		w->pid = pid;
		w->fd = shmk__pidfd_open(pid);
	}
	return w->fd;
}

/* Waits (bounded) until the worker pid (pidfd fd, or -1) has exited and
 * reaps it: true with its status and rusage, false if it was not ours to
 * reap any more (the service reaped it: ECHILD) or did not exit in time.
 * The pidfd names exactly that process; without one (pidfd_open: ENOSYS,
 * as under valgrind 3.19) the pid is asked, every 200 us, within the
 * bound: the process is already in exit(). */
static bool reap(int fd, pid_t pid, int *status, struct rusage *ru)
{
	int64_t end = shmk__mono_ms() + REAP_WAIT_MS;
	siginfo_t si;
	long r;

	for (;;) {
		memset(&si, 0, sizeof si);
		r = syscall(SYS_waitid, fd >= 0 ? P_PIDFD : P_PID,
			    fd >= 0 ? (id_t)fd : (id_t)pid, &si,
			    WEXITED | WNOHANG, ru);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || si.si_pid == pid || shmk__mono_ms() >= end)
			break;
		if (fd >= 0) {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			int64_t left = end - shmk__mono_ms();
			(void)poll(&pf, 1, left > 0 ? (int)left : 0);
		} else {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
	}
	if (r < 0 || si.si_pid != pid)
		return false;
	*status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
		  : si.si_code == CLD_DUMPED ? (si.si_status & 0x7f) | 0x80
					      : si.si_status & 0x7f;
	return true;
}

/* Stops every slot and SIGKILLs every worker: without its spawner the pool
 * could not replace them, so it stops, as it did when its supervisor
 * died.  The first caller that sees the spawner's death does it; every
 * waiter wakes (job waiters through their workers' deaths). */
void shmk__spawner_gone(shmk_pool *p)
{
	struct pctl *c = p->ctl;

	if (atomic_exchange(&c->sp_gone, 1))
		return;
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->o.workers; i++) {
		struct pslot *s = &c->slot[i];
		pid_t pid = atomic_load(&s->pid);
		int fd = shmk__worker_fd(p, i, pid);
		uint32_t v = atomic_load(&s->life);
		if (pid <= 0 || RW_TID(v) != (uint32_t)pid || RW_DEAD(v))
			continue;
		if (fd >= 0)
			syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
		else
			kill(pid, SIGKILL);
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->o.workers; i++) {
		shmk__set_phase(&c->slot[i], PH_STOPPED, true);
		shmk__fwake(&c->slot[i].life, INT_MAX);
	}
	shmk__fwake(&c->spawner, INT_MAX);
	shmk__bump_free(c);
}

bool shmk__spawner_up(shmk_pool *p)
{
	bool up;

	pthread_mutex_lock(&p->mu);
	if (p->lazy_sp) {
		/* Not forked yet (nobody needed it): not up, not dead. */
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	if (p->sp_ack_fd >= 0) {
		struct pollfd pf = {.fd = p->sp_ack_fd, .events = POLLIN};
		int64_t end = shmk__mono_ms() + p->o.start_timeout_ms, left;
		int r = 0;
		char b;
		while ((left = end - shmk__mono_ms()) > 0 &&
		       (r = poll(&pf, 1, (int)left)) < 0 && errno == EINTR)
			;
		up = r > 0 && read(p->sp_ack_fd, &b, 1) == 1;
		shmk__close(&p->sp_ack_fd);
		p->sp_pid = atomic_load(&p->ctl->sp_tid);
		if (p->sp_pid > 0 && p->sp_pidfd < 0)
			p->sp_pidfd = shmk__pidfd_open(p->sp_pid);
		if (!up) /* it never will be: its word says so */
			atomic_store(&p->ctl->spawner,
				     (uint32_t)p->sp_pid | FUTEX_OWNER_DIED);
	}
	up = p->sp_pid > 0 && !RW_DEAD(atomic_load(&p->ctl->spawner));
	pthread_mutex_unlock(&p->mu);
	return up;
}

bool shmk__request(shmk_pool *p, unsigned i, uint32_t delay_ms)
{
	struct sp_req r = {.slot = i, .delay_ms = delay_ms};

	while (send(p->req_fd, &r, sizeof r, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return false;
	return true;
}

/* The death of pid, the worker of slot i, claimed by this caller (the
 * slot is PH_DYING, in a new generation). */
static void handle_death(shmk_pool *p, unsigned i, pid_t pid)
{
	struct pslot *s = &p->ctl->slot[i];
	struct wdeaths *wd = &p->d[i];
	struct death_rec d;
	struct rusage ru;
	int status = 0, fd;
	unsigned K = p->o.quarantine_deaths, in_window = 0;
	int64_t now = shmk__mono_ms(), delay;
	bool known, timed_out, stop;
	enum phase next;

	timed_out = atomic_exchange(&s->timeout_pid, 0) == pid;
	atomic_store(&s->pid, 0);
	memset(&ru, 0, sizeof ru);
	pthread_mutex_lock(&p->mu);
	fd = shmk__worker_fd(p, i, pid);
	known = reap(fd, pid, &status, &ru);
	shmk__close(&p->w[i].fd);
	p->w[i].pid = 0;
	classify(known, status, &ru, &p->mw, timed_out, &d);
	pthread_mutex_unlock(&p->mu);
	d.pid = pid;

	wd->times[wd->n_times++ % K] = now;
	for (unsigned k = 0; k < K && k < wd->n_times; k++)
		if (now - wd->times[k] <= (int64_t)p->o.quarantine_window_ms)
			in_window++;
	stop = atomic_load(&p->ctl->shutdown) || atomic_load(&p->ctl->sp_gone);
	d.deaths_in_window = in_window;
	d.quarantined = !stop && in_window >= K;
	/* The memory re-initialised before the caller goes on, or what it
	 * writes next (the next job's input) could be wiped; memory that
	 * could not be reserved again quarantines the slot for good. */
	if (!d.quarantined && !stop && (d.reinit_err = reinit_slot(p, i)) != 0) {
		d.quarantined = 1;
		atomic_store(&s->reinit_err, d.reinit_err);
	}
	publish(s, &d);
	atomic_fetch_add(&s->deaths, 1);
	atomic_fetch_add(&p->ctl->deaths, 1);

	next = stop ? PH_STOPPED : d.quarantined ? PH_QUARANTINED : PH_STARTING;
	/* Backoff: floor, doubled per consecutive death, up to the ceiling;
	 * a death after a quiet window starts again at the floor. */
	wd->streak = in_window <= 1 ? 1 : wd->streak + 1;
	delay = p->o.backoff_min_ms;
	for (unsigned k = 1; k < wd->streak && delay < p->o.backoff_max_ms; k++)
		delay *= 2;
	if (delay > p->o.backoff_max_ms)
		delay = p->o.backoff_max_ms;
	if (next == PH_STARTING) {
		/* The spawner answers for the slot from now on: if it dies
		 * before its child takes the word over, the kernel marks the
		 * word and wakes whoever waits for the replacement.  It is
		 * marked only if the spawner's robust list held it when it
		 * died: we wrote the word, then look at the spawner's own
		 * word, which the kernel marks before the slots' (Dekker: if
		 * we do not see the spawner dead, its exit reads our
		 * write).  The spawner must be up for that (its list
		 * registered): worker 0 forked it during create, or, lazy,
		 * it is forked from the service now. */
		pthread_mutex_lock(&p->mu);
		shmk__spawner_fork_lazy(p);
		pthread_mutex_unlock(&p->mu);
		if (!shmk__spawner_up(p)) {
			next = PH_STOPPED;
		} else {
			atomic_store(&s->life, (uint32_t)p->sp_pid);
			atomic_thread_fence(memory_order_seq_cst);
			if (RW_DEAD(atomic_load(&p->ctl->spawner)))
				next = PH_STOPPED;
		}
	}
	shmk__set_phase(s, next, false);
	shmk__fwake(&s->life, INT_MAX);
	if (next == PH_STARTING && !shmk__request(p, i, (uint32_t)delay))
		next = PH_STOPPED;
	if (next == PH_STOPPED && !atomic_load(&p->ctl->shutdown))
		shmk__spawner_gone(p);
	if (next == PH_QUARANTINED)
		shmk__bump_free(p->ctl); /* lease waiters re-check: maybe all gone */
}

bool shmk__settle(shmk_pool *p, unsigned i)
{
	struct pslot *s = &p->ctl->slot[i];
	int64_t end = -1;
	uint32_t st, v;
	pid_t pid;

	for (;;) {
		v = atomic_load(&s->life);
		if (!RW_DEAD(v))
			return false;
		st = atomic_load(&s->state);
		switch (ST_PHASE(st)) {
		case PH_QUARANTINED:
		case PH_STOPPED:
			return true;
		case PH_DYING: {
			/* Another caller handles it, within its bounds. */
			struct timespec ts;
			const struct timespec *rel;
			if (end < 0)
				end = shmk__mono_ms() + 2 * REAP_WAIT_MS;
			if (!shmk__remaining(end, &ts, &rel))
				return true;
			shmk__fwait(&s->state, st, rel);
			continue;
		}
		default:
			break;
		}
		if (atomic_compare_exchange_strong(
			    &s->state, &st,
			    ST_MAKE(st & ST_LEASED, PH_DYING, ST_GEN(st) + 1)))
			break;
	}
	/* The kernel leaves OWNER_DIED alone in a dead owner's word (its tid
	 * goes): the dead worker is the one the slot names (a worker writes
	 * its pid there before it takes the word over), or the child whose
	 * death the spawner wrote.  A word that was the spawner's died with
	 * it - and the spawner's own word, marked first, says so. */
	pid = RW_TID(v) ? (pid_t)RW_TID(v) : atomic_load(&s->pid);
	if (RW_DEAD(atomic_load(&p->ctl->spawner)) || pid <= 0) {
		shmk__spawner_gone(p);
		return true;
	}
	handle_death(p, i, pid);
	return true;
}


int shmk_pool_last_death(shmk_pool *p, unsigned slot, struct shmk_death *out)
{
	struct pslot *s;
	struct death_rec d;
	uint32_t a, b;

	memset(out, 0, sizeof *out);
	if (slot >= p->o.workers)
		return shmk__err(-EINVAL, "pool: no slot %u", slot);
	s = &p->ctl->slot[slot];
	shmk__settle(p, slot); /* a worker that died idle is reported too */
	do {
		/* Odd: a caller is writing it, for a few instructions -
		 * unless it was stopped or killed right there: bounded. */
		for (int64_t end = -1; (a = atomic_load(&s->report_seq)) & 1;) {
			if (end < 0)
				end = shmk__mono_ms() + REPORT_WAIT_MS;
			else if (shmk__mono_ms() > end)
				return shmk__err(-EAGAIN, "pool: slot %u: the "
							  "death report has "
							  "been written for %d "
							  "ms",
						 slot, REPORT_WAIT_MS);
			sched_yield();
		}
		atomic_thread_fence(memory_order_seq_cst);
		d = s->last;
		atomic_thread_fence(memory_order_seq_cst);
		b = atomic_load(&s->report_seq);
	} while (a != b);
	out->kind = (enum shmk_death_kind)d.kind;
	out->slot = slot;
	out->pid = d.pid;
	out->exit_code = d.exit_code;
	out->signal = d.sig;
	out->core_dumped = d.core;
	out->peak_rss = d.peak_rss;
	out->mem_limit = d.mem_limit;
	out->limit_source = limit_names[d.limit_src & 3];
	out->suggested_limit = d.suggested;
	out->oom_kills = d.oom_kills;
	out->oom_source = oom_names[d.oom_src % 3];
	out->deaths_in_window = d.deaths_in_window;
	out->quarantined = d.quarantined;
	out->when = d.when;
	out->reinit_errno = d.reinit_err;
	return 0;
}

const char *shmk_death_kind_name(enum shmk_death_kind k)
{
	switch (k) {
	case SHMK_DEATH_NONE: return "none";
	case SHMK_DEATH_EXIT_CLEAN: return "exit-clean";
	case SHMK_DEATH_EXIT_CODE: return "exit-code";
	case SHMK_DEATH_SIGNAL: return "signal";
	case SHMK_DEATH_SIGKILL: return "sigkill";
	case SHMK_DEATH_OOM: return "oom";
	case SHMK_DEATH_TIMEOUT: return "timeout";
	case SHMK_DEATH_UNKNOWN: return "unknown";
	}
	return "unknown";
}

int shmk_death_json(const struct shmk_death *d, char *buf, size_t size)
{
	int n = snprintf(
		buf, size,
		"{\"kind\":\"%s\",\"slot\":%u,\"pid\":%d,\"exit_code\":%d,"
		"\"signal\":%d,\"signal_name\":\"%s\",\"core_dumped\":%s,"
		"\"peak_rss\":%" PRIu64 ",\"mem_limit\":%" PRIu64
		",\"limit_source\":\"%s\",\"suggested_limit\":%" PRIu64
		",\"oom_kills\":%" PRIu64 ",\"oom_source\":\"%s\","
		"\"deaths_in_window\":%u,\"quarantined\":%s,\"when\":%" PRId64
		",\"reinit_errno\":%d}",
		shmk_death_kind_name(d->kind), d->slot, (int)d->pid, d->exit_code,
		d->signal, d->signal ? sigabbrev_np(d->signal) : "",
		d->core_dumped ? "true" : "false", d->peak_rss, d->mem_limit,
		d->limit_source ? d->limit_source : "", d->suggested_limit,
		d->oom_kills, d->oom_source ? d->oom_source : "",
		d->deaths_in_window, d->quarantined ? "true" : "false", d->when,
		d->reinit_errno);
	return (n < 0 || (size_t)n >= size) ? -ENOBUFS : n;
}
