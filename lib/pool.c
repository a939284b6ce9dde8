/* pool.c - the worker-pool supervisor.
 *
 * Processes:
 *   service     calls shmk_pool_create(); its threads lease slots and run
 *               jobs; one watch thread waits on the supervisor's pidfd.
 *   supervisor  forked once at creation; single-threaded; forks workers,
 *               waits on their pidfds, classifies deaths, re-initialises
 *               slots and forks replacements with backoff.
 *   workers     one per slot, forked by the supervisor (a one-thread
 *               process with nothing locked); run the job function.
 * Without pidfd_open (Linux < 5.3, or valgrind 3.19, which answers ENOSYS)
 * deaths are still events: the supervisor reads SIGCHLD from a signalfd and
 * the service sees the supervisor's end of the command socket close.
 *
 * Shared state lives in a control segment created through the registry:
 * per slot one 32-bit state word [leased:1 | phase:3 | gen:28] that every
 * transition changes by compare-and-swap, so the caller's "start a job" and
 * the supervisor's "the worker died" are totally ordered:
 *   - a caller may post a job only by CAS READY -> BUSY in the current gen;
 *   - the supervisor marks a death by CAS to STARTING with gen + 1; if the
 *     phase it replaced was BUSY and the job is not done, it fails the job
 *     (failed = 1, done = doorbell) and wakes the caller at once.
 * Futexes on the shared words carry every wait: no polling, no heartbeats.
 *
 * Every wait of a caller has a deadline (invariant 8): a job's (the pool's
 * job_timeout_ms or the call's), past which the caller SIGKILLs the worker
 * itself (kill_timed_out) and the supervisor classifies the death as a
 * timeout; destroy's (one grace period in total, then SIGKILL, whatever a
 * signal or a stopped supervisor does).  Children close every descriptor
 * they did not create (close_inherited).
 */
#include "ctx.h"

#include <bsd/unistd.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAGIC 0x73686d70u /* "shmp" */
#define MAX_WORKERS 1024
#define JOB_TIMEOUT_MS 60000 /* job_timeout_ms 0 */
/* After a timed-out worker is SIGKILLed, how long the caller waits for the
 * supervisor to report the death before it returns anyway. */
#define KILL_REPORT_MS 1000
/* How long destroy waits past the grace for the supervisor to exit (it
 * SIGKILLs its workers at the grace) before it SIGKILLs the supervisor,
 * and then for the supervisor's death. */
#define SUP_EXIT_MS 1000
/* How long a reader waits for a death report being written. */
#define REPORT_WAIT_MS 100

enum phase {
	PH_STARTING = 0, /* no ready worker (being replaced or starting) */
	PH_READY = 1,    /* worker waiting for a job                      */
	PH_BUSY = 2,     /* a job is posted or running                    */
	PH_QUARANTINED = 3,
	PH_STOPPED = 4,  /* pool shut down or supervisor gone             */
};

#define ST_LEASED 0x80000000u
#define ST_PHASE(s) (((s) >> 28) & 0x7u)
#define ST_GEN(s) ((s)&0x0fffffffu)
#define ST_MAKE(leased, ph, gen) \
	(((leased) ? ST_LEASED : 0u) | ((uint32_t)(ph) << 28) | ((gen)&0x0fffffffu))

struct death_rec { /* shmk_death without pointers: it lives in shared memory */
	int kind, exit_code, sig, core, quarantined, limit_src, oom_src;
	pid_t pid;
	unsigned deaths_in_window;
	uint64_t peak_rss, mem_limit, suggested, oom_kills;
	int64_t when;
	int reinit_err; /* positive errno: the slot's memory is lost */
};

struct pslot {
	_Atomic uint32_t state;
	_Atomic uint32_t doorbell; /* job sequence posted by the caller   */
	_Atomic uint32_t done;     /* job sequence finished               */
	_Atomic int32_t result;
	_Atomic int32_t failed;    /* the job ended with its worker's death */
	_Atomic int32_t pid;
	_Atomic uint32_t deaths;
	_Atomic uint32_t report_seq; /* seqlock over last (odd: writing) */
	/* The worker a caller SIGKILLed at its job's deadline: the
	 * supervisor classifies that pid's death as a timeout. */
	_Atomic int32_t timeout_pid;
	_Atomic int32_t reinit_err; /* as death_rec's, while quarantined */
	struct death_rec last;
};

struct pctl {
	uint32_t magic;
	uint32_t nslots;
	_Atomic uint32_t free_seq;  /* bumped whenever a slot may be leasable */
	_Atomic uint32_t ready;     /* workers that became ready at least once */
	_Atomic uint32_t shutdown;
	_Atomic uint32_t sup_gone;  /* supervisor died (watch thread)         */
	_Atomic uint32_t deaths;
	_Atomic uint32_t lease_rr;  /* where the next lease scan starts       */
	/* A start failure of the supervisor or a worker: positive errno (-1
	 * while start_msg is being written) and the sentence naming the
	 * failing call. */
	_Atomic int32_t start_err;
	/* Bumped at each event shmk_pool_create() waits for (a worker ready,
	 * a start failure, the supervisor gone): the word it sleeps on, read
	 * before the conditions, so that no event is missed. */
	_Atomic uint32_t start_seq;
	char start_msg[256];
	struct pslot slot[];
};

struct shmk_pool {
	shmk_ctx *ctx;
	struct shmk_pool_options o;
	char base[64];                /* segment name prefix            */
	shmk_segment *ctl_seg;
	struct pctl *ctl;
	shmk_segment **slots;
	pid_t sup_pid;
	int sup_pidfd;
	int cmd_fd;                   /* write end: service -> supervisor */
	int watch_efd;                /* eventfd-like pipe to stop the watch thread */
	int watch_rfd;
	pthread_t watch;
	bool watch_started;
	/* Calls into the pool under way (low bits) and INFLIGHT_WAITER, set
	 * by destroy, which unmaps the shared state and frees p only once
	 * none is left inside (wait_callers_left). */
	_Atomic uint32_t inflight;
};

#define INFLIGHT_WAITER 0x80000000u


static const char *const limit_names[] = {"", "cgroup2 memory.max",
					  "cgroup1 memory.limit_in_bytes",
					  "RLIMIT_AS"};
static const char *const oom_names[] = {"", "cgroup2 memory.events",
					"cgroup1 memory.oom_control"};

/* ---- futexes ------------------------------------------------------------ */

static int fwait(_Atomic uint32_t *w, uint32_t val, const struct timespec *rel)
{
	return (int)syscall(SYS_futex, w, FUTEX_WAIT, val, rel, NULL, 0);
}

static void fwake(_Atomic uint32_t *w)
{
#ifdef __SANITIZE_ADDRESS__
	/* The kernel does not read the word to wake its waiters, but a wake
	 * on memory that is no longer ours is a use after free all the same
	 * (valgrind checks the futex address too): touch it, so that
	 * AddressSanitizer reports one. */
	(void)atomic_load_explicit(w, memory_order_relaxed);
#endif
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Bumped and woken when the last caller leaves a pool whose destroy waits:
 * a word of the library's own, because the pool may be freed the moment
 * that caller's decrement lands.  Shared by every pool (a destroy woken
 * for another pool's caller checks its own count again). */
static _Atomic uint32_t callers_left;

static void enter(shmk_pool *p) { atomic_fetch_add(&p->inflight, 1); }

static void leave(shmk_pool *p)
{
	/* After this decrement destroy may free p at once: nothing of p is
	 * touched after it. */
	if (atomic_fetch_sub(&p->inflight, 1) == (INFLIGHT_WAITER | 1)) {
		(void)fiu_fail("shmk/test/pool/last_left");
		atomic_fetch_add(&callers_left, 1);
		fwake(&callers_left);
	}
}

/* Destroy's side of leave(): returns once no call is inside p. */
static void wait_callers_left(shmk_pool *p)
{
	uint32_t seq = atomic_load(&callers_left);

	atomic_fetch_or(&p->inflight, INFLIGHT_WAITER);
	while (atomic_load(&p->inflight) != INFLIGHT_WAITER) {
		fwait(&callers_left, seq, NULL);
		seq = atomic_load(&callers_left);
	}
}

static void start_event(struct pctl *c)
{
	atomic_fetch_add(&c->start_seq, 1);
	fwake(&c->start_seq);
}

static void bump_free(struct pctl *c)
{
	atomic_fetch_add(&c->free_seq, 1);
	fwake(&c->free_seq);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remaining time to deadline (ms, -1 = forever) as a timespec; false when
 * it has passed. */
static bool remaining(int64_t deadline, struct timespec *ts,
		      const struct timespec **out)
{
	int64_t left;

	if (deadline < 0) {
		*out = NULL;
		return true;
	}
	left = deadline - mono_ms();
	if (left <= 0)
		return false;
	ts->tv_sec = left / 1000;
	ts->tv_nsec = (left % 1000) * 1000000;
	*out = ts;
	return true;
}

/* Sets the phase (and maybe gen) of a slot, keeping the leased bit. Returns
 * the state it replaced. */
static uint32_t set_phase(struct pslot *s, enum phase ph, bool new_gen)
{
	uint32_t old = atomic_load(&s->state), nw;

	do {
		nw = ST_MAKE(old & ST_LEASED, ph, ST_GEN(old) + (new_gen ? 1 : 0));
	} while (!atomic_compare_exchange_weak(&s->state, &old, nw));
	fwake(&s->state);
	return old;
}

/* Waits until fd is readable (true) or the deadline (mono ms) passes
 * (false).  A signal caught meanwhile never ends the wait early: poll is
 * called again for the time left. */
static bool wait_readable(int fd, int64_t deadline)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};

	for (;;) {
		int64_t left = deadline - mono_ms();
		int r = poll(&pf, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			return true;
		if (r == 0 || errno != EINTR)
			return false;
	}
}

/* ---- what a child keeps ------------------------------------------------ */

/* Closes every descriptor from lo to hi (inclusive): close_range, or one
 * close() each where the kernel has none (before 5.9).  Async-signal-safe:
 * the supervisor runs it right after a fork from a multithreaded service. */
static void close_span(unsigned lo, unsigned hi)
{
	struct rlimit rl;

	if (lo > hi || SHMK_SYS("close_range",
				 syscall(SYS_close_range, lo, hi, 0)) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur - 1 < hi)
		hi = (unsigned)(rl.rlim_cur - 1);
	else if (hi > 65535)
		hi = 65535;
	for (unsigned fd = lo; fd <= hi; fd++)
		close((int)fd);
}

/* A child of the pool closes every descriptor it inherited but 0, 1, 2 and
 * keep[0..n-1]: a service's socket, pipe or file lacking O_CLOEXEC must not
 * stay open in a supervisor or worker (a held write end keeps the service
 * from ever seeing EOF).  keep: ascending, each >= 3 (or -1: skipped). */
static void close_inherited(const int *keep, size_t n)
{
	unsigned lo = 3;

	for (size_t k = 0; k < n; k++) {
		if (keep[k] < (int)lo)
			continue;
		close_span(lo, (unsigned)keep[k] - 1);
		lo = (unsigned)keep[k] + 1;
	}
	close_span(lo, ~0u);
}

/* ---- start failures ------------------------------------------------------ */

/* Tells shmk_pool_create() why the pool cannot start (the first failure
 * only): err is a positive errno, the sentence names the failing call. */
static void start_failed(struct pctl *c, int err, const char *fmt, ...)
{
	int32_t none = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&c->start_err, &none, -1))
		return;
	va_start(ap, fmt);
	vsnprintf(c->start_msg, sizeof c->start_msg, fmt, ap);
	va_end(ap);
	atomic_store(&c->start_err, err > 0 ? err : EIO);
	start_event(c);
}

/* A job posted and not done ends now, with failure; its caller wakes. */
static void fail_job(struct pslot *s)
{
	uint32_t bell = atomic_load(&s->doorbell);

	if (atomic_load(&s->done) != bell) {
		atomic_store(&s->failed, 1);
		atomic_store(&s->done, bell);
		fwake(&s->done);
	}
}

/* ---- cgroup and limits (supervisor side) --------------------------------- */

struct memwatch {
	char events[PATH_MAX]; /* file holding oom_kill */
	int src;               /* index into oom_names  */
	char limit[PATH_MAX];
	int limit_src;
	uint64_t oom_seen;
};

static int read_text(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sz - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

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

/* Find where this process's OOM-kill counter and memory limit live:
 * cgroup v2 memory.events / memory.max, or on hosts that still mount the v1
 * memory controller, memory.oom_control / memory.limit_in_bytes. */
static void memwatch_init(struct memwatch *m)
{
	char cg[4096], line[PATH_MAX];
	FILE *f;

	memset(m, 0, sizeof *m);
	if (read_text("/proc/self/cgroup", cg, sizeof cg) <= 0)
		return;
	for (char *l = strtok(cg, "\n"); l; l = strtok(NULL, "\n")) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrl = c1 + 1, *path = c2 + 1;
		if (strcmp(ctrl, "") == 0 && !m->src) {
			/* cgroup v2: the unified mount point */
			if (!(f = fopen("/proc/self/mountinfo", "re")))
				continue;
			while (fgets(line, sizeof line, f)) {
				char mnt[PATH_MAX], fstype[64];
				if (sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s",
					   mnt, fstype) == 2 &&
				    strcmp(fstype, "cgroup2") == 0) {
					char ev[PATH_MAX];
					snprintf(ev, sizeof ev, "%s%s/memory.events",
						 mnt, strcmp(path, "/") ? path : "");
					if (access(ev, R_OK) == 0) {
						snprintf(m->events, sizeof m->events, "%s", ev);
						m->src = 1;
						snprintf(m->limit, sizeof m->limit,
							 "%s%s/memory.max", mnt,
							 strcmp(path, "/") ? path : "");
						m->limit_src = 1;
					}
				}
			}
			fclose(f);
		} else if (strstr(ctrl, "memory") && !m->src) {
			char base[PATH_MAX] = "";
			if (!(f = fopen("/proc/self/mountinfo", "re")))
				continue;
			while (fgets(line, sizeof line, f)) {
				char mnt[PATH_MAX], fstype[64], opts[512];
				if (sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s %*s %511s",
					   mnt, fstype, opts) == 3 &&
				    strcmp(fstype, "cgroup") == 0 && strstr(opts, "memory"))
					snprintf(base, sizeof base, "%s", mnt);
			}
			fclose(f);
			if (!base[0])
				continue;
			snprintf(m->events, sizeof m->events, "%s%s/memory.oom_control",
				 base, strcmp(path, "/") ? path : "");
			if (access(m->events, R_OK) == 0) {
				m->src = 2;
				snprintf(m->limit, sizeof m->limit,
					 "%s%s/memory.limit_in_bytes", base,
					 strcmp(path, "/") ? path : "");
				m->limit_src = 2;
			}
		}
	}
}

static bool oom_count(const struct memwatch *m, uint64_t *out)
{
	char buf[1024];

	return m->src && read_text(m->events, buf, sizeof buf) > 0 &&
	       key_value(buf, "oom_kill", out);
}

static void mem_limit(const struct memwatch *m, uint64_t *limit, int *src)
{
	char buf[64];
	struct rlimit rl;

	*limit = 0;
	*src = 0;
	if (m->limit_src && read_text(m->limit, buf, sizeof buf) > 0 &&
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

/* ---- process titles ---------------------------------------------------- */

/* libbsd's setproctitle() needs setproctitle_init(argc, argv, envp) with the
 * process's real argv, which a library is not given, and prints a warning
 * without it (a library must never print).  In the supervisor - a child of
 * its own, whose argv area nobody else reads - rebuild argv from
 * program_invocation_name (which points at argv[0]) and the argument count
 * in /proc/self/cmdline, and hand that over.  If anything does not add up,
 * titles are skipped; PR_SET_NAME still names the process for ps/top. */
/* The argv handed to setproctitle_init(), which moves the arguments out of
 * the area it reuses for the title into copies stored in this array: the
 * supervisor's argv from then on, held (not leaked) for the process's
 * lifetime.  Non-NULL: titles work. */
static char **titles_argv;

static void titles_init(void)
{
	extern char **environ;
	char buf[8192], **argv;
	int n = read_text("/proc/self/cmdline", buf, sizeof buf), argc = 0;
	char *a = program_invocation_name;

	if (n <= 0 || !a || strcmp(a, buf) != 0)
		return;
	for (int i = 0; i < n; i++)
		argc += buf[i] == '\0';
	if (argc <= 0 || !(argv = calloc((size_t)argc + 1, sizeof *argv)))
		return;
	for (int i = 0; i < argc; i++) {
		argv[i] = a;
		a += strlen(a) + 1;
	}
	setproctitle_init(argc, argv, environ);
	titles_argv = argv;
}

static void title(const char *fmt, const char *t, unsigned i, const char *comm)
{
	if (titles_argv)
		setproctitle(fmt, t, i);
	prctl(PR_SET_NAME, comm);
}

/* ---- worker ------------------------------------------------------------- */

static __attribute__((noreturn)) void worker_main(shmk_pool *p, unsigned i,
						  uint32_t gen, pid_t sup)
{
	struct pslot *s = &p->ctl->slot[i];
	void *mem = shmk_segment_addr(p->slots[i]);
	size_t size = p->o.slot_size;
	sigset_t none;
	uint32_t last, old;

	/* Die with the supervisor; if it died before prctl took effect, our
	 * parent is already someone else. */
	if (SHMK_SYS("prctl", prctl(PR_SET_PDEATHSIG, SIGKILL)) < 0) {
		start_failed(p->ctl, errno, "pool: worker %u: prctl"
				     "(PR_SET_PDEATHSIG): %s", i, strerror(errno));
		_exit(112);
	}
	if (getppid() != sup)
		_exit(111);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	{
		char comm[16];
		snprintf(comm, sizeof comm, "shmk-worker%u", i);
		title("%s: worker %u", p->o.title, i, comm);
	}
	atomic_store(&s->pid, getpid());
	/* Ready: STARTING -> READY in our generation.  No caller can post
	 * while STARTING, and the previous worker's job, if any, was failed,
	 * so starting from the current doorbell loses nothing. */
	last = atomic_load(&s->doorbell);
	old = atomic_load(&s->state);
	while (ST_GEN(old) == ST_GEN(gen) && ST_PHASE(old) == PH_STARTING &&
	       !atomic_compare_exchange_weak(
		       &s->state, &old,
		       ST_MAKE(old & ST_LEASED, PH_READY, ST_GEN(old))))
		;
	fwake(&s->state);
	atomic_fetch_add(&p->ctl->ready, 1);
	start_event(p->ctl);
	bump_free(p->ctl);

	for (;;) {
		uint32_t bell = atomic_load(&s->doorbell);
		if (bell == last) {
			fwait(&s->doorbell, last, NULL);
			continue;
		}
		last = bell;
		int r = p->o.fn(mem, size, p->o.arg);
		atomic_store(&s->result, r);
		atomic_store(&s->done, last);
		fwake(&s->done);
	}
}

/* ---- supervisor --------------------------------------------------------- */

struct sup_slot {
	pid_t pid;
	int pidfd;
	int64_t respawn_at; /* ms, 0 = not pending */
	unsigned streak;    /* consecutive deaths, for backoff */
	int64_t *times;     /* last K death times (ring) */
	unsigned n_times;
};

/* The service's SIGCHLD action, which the supervisor replaces and gives
 * back to its workers. */
static struct sigaction service_chld;

static void on_death(shmk_pool *p, unsigned i, struct sup_slot *ss,
		     struct memwatch *mw);

/* Forks the worker of slot i.  all: every slot's state (their pidfds are
 * the supervisor's, not the worker's); cmd_rfd and *sig_fd likewise.  A
 * worker whose death could not be seen (no pidfd, and no SIGCHLD signalfd
 * either: out of descriptors) is killed at once and handled as a death. */
static pid_t spawn_worker(shmk_pool *p, unsigned i, struct sup_slot *all,
			  int cmd_rfd, int *sig_fd, struct memwatch *mw)
{
	uint32_t gen = ST_GEN(atomic_load(&p->ctl->slot[i].state));
	pid_t sup = getpid();
	pid_t pid;

	fiu_do_on("shmk/pool/fork", { errno = EAGAIN; return -1; });
	pid = SHMK_SYS("fork", fork());
	if (pid == 0) {
		/* Not the supervisor's pidfds, command socket, signalfd or
		 * shm directory: a worker needs only its mapped slot. */
		close_inherited(NULL, 0);
		sigaction(SIGCHLD, &service_chld, NULL);
		worker_main(p, i, gen, sup);
	}
	if (pid < 0)
		return -1;
	all[i].pid = pid;
	all[i].pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (all[i].pidfd < 0 && *sig_fd < 0) {
		/* No pidfd_open, say: the death comes through SIGCHLD, blocked
		 * since the supervisor started, so a signalfd made now still
		 * reads one that came before. */
		sigset_t chld;
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		*sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	}
	if (all[i].pidfd < 0 && *sig_fd < 0) {
		kill(pid, SIGKILL);
		on_death(p, i, &all[i], mw);
	}
	return pid;
}

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

/* timed_out: the pool SIGKILLed this worker at its job's deadline. */
static void classify(int status, const struct rusage *ru, struct memwatch *mw,
		     bool timed_out, struct death_rec *d)
{
	uint64_t oom = 0;

	memset(d, 0, sizeof *d);
	d->when = shmk__now();
	d->peak_rss = (uint64_t)ru->ru_maxrss * 1024;
	if (WIFEXITED(status)) {
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

static void on_death(shmk_pool *p, unsigned i, struct sup_slot *ss,
		     struct memwatch *mw)
{
	struct pslot *s = &p->ctl->slot[i];
	struct death_rec d;
	struct rusage ru;
	int status = 0;
	unsigned K = p->o.quarantine_deaths, in_window = 0;
	int64_t now = mono_ms();
	uint32_t old;
	bool timed_out;

	/* The pid stops naming the worker before it is reaped (after which
	 * the number may be reused): see kill_timed_out(). */
	atomic_store(&s->pid, 0);
	timed_out = atomic_exchange(&s->timeout_pid, 0) == ss->pid;
	if (wait4(ss->pid, &status, 0, &ru) < 0)
		memset(&ru, 0, sizeof ru);
	shmk__close(&ss->pidfd);
	classify(status, &ru, mw, timed_out, &d);
	d.pid = ss->pid;
	ss->pid = 0;

	ss->times[ss->n_times++ % K] = now;
	for (unsigned k = 0; k < K && k < ss->n_times; k++)
		if (now - ss->times[k] <= (int64_t)p->o.quarantine_window_ms)
			in_window++;
	d.deaths_in_window = in_window;
	d.quarantined = !atomic_load(&p->ctl->shutdown) && in_window >= K;
	/* The memory re-initialised before the caller wakes, or what it
	 * writes next (the next job's input) could be wiped; memory that
	 * could not be reserved again quarantines the slot for good. */
	if (!d.quarantined && !atomic_load(&p->ctl->shutdown) &&
	    (d.reinit_err = reinit_slot(p, i)) != 0) {
		d.quarantined = 1;
		atomic_store(&s->reinit_err, d.reinit_err);
	}
	/* The report before the caller wakes, so that it reads this death. */
	publish(s, &d);
	atomic_fetch_add(&s->deaths, 1);
	atomic_fetch_add(&p->ctl->deaths, 1);

	/* The ordering point: after this CAS no caller can post to the dead
	 * worker, and a job it had is failed right here. */
	old = set_phase(s,
			atomic_load(&p->ctl->shutdown) ? PH_STOPPED
			: d.quarantined                ? PH_QUARANTINED
						       : PH_STARTING,
			true);
	if (ST_PHASE(old) == PH_BUSY)
		fail_job(s);
	if (d.quarantined)
		bump_free(p->ctl); /* lease waiters re-check: maybe all gone */
	if (d.quarantined || atomic_load(&p->ctl->shutdown))
		return;
	/* Backoff: floor, doubled per consecutive death, up to the ceiling;
	 * a death after a quiet window starts again at the floor. */
	ss->streak = in_window <= 1 ? 1 : ss->streak + 1;
	int64_t delay = p->o.backoff_min_ms;
	for (unsigned k = 1; k < ss->streak && delay < p->o.backoff_max_ms; k++)
		delay *= 2;
	if (delay > p->o.backoff_max_ms)
		delay = p->o.backoff_max_ms;
	ss->respawn_at = now + delay;
}

static void kill_all(shmk_pool *p, struct sup_slot *ss, int sig)
{
	for (unsigned i = 0; i < p->o.workers; i++)
		if (ss[i].pid > 0)
			kill(ss[i].pid, sig);
}

static bool any_alive(shmk_pool *p, struct sup_slot *ss)
{
	for (unsigned i = 0; i < p->o.workers; i++)
		if (ss[i].pid > 0)
			return true;
	return false;
}

/* What the service sends the supervisor (a SOCK_SEQPACKET message). */
struct sup_cmd {
	char op;           /* 'T': stop the workers                      */
	uint32_t grace_ms; /* SIGTERM now, SIGKILL after this long         */
};

static __attribute__((noreturn)) void supervisor_main(shmk_pool *p, int cmd_rfd)
{
	unsigned n = p->o.workers;
	struct sup_slot *ss = calloc(n, sizeof *ss);
	struct pollfd *pf = calloc(n + 2, sizeof *pf);
	struct memwatch mw;
	int64_t stop_deadline = -1;
	bool stopping = false, termed = false, killed = false;
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t all;
	int sig_fd = -1; /* SIGCHLD, made when a worker has no pidfd */

	/* Single-threaded from here on: the only thread of this process. */
	sigfillset(&all);
	sigdelset(&all, SIGTERM); /* SIGTERM from outside: die, workers follow */
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* SIGCHLD (blocked, so queued even at SIG_DFL) for the workers that
	 * have no pidfd.  SIG_DFL, not an inherited SIG_IGN: that would make
	 * the kernel reap the workers before wait4 could classify them. */
	sigaction(SIGCHLD, &dfl, &service_chld);
	titles_init();
	title("%s: supervisor%.0u", p->o.title, 0, "shmk-supervisor");
	SHMK_CRASHPOINT("pool/supervisor_start");
	if (!ss || !pf) {
		start_failed(p->ctl, errno, "pool: supervisor: cannot allocate "
					    "its tables for %u workers: %s",
			     n, strerror(errno));
		_exit(112);
	}
	memwatch_init(&mw);
	oom_count(&mw, &mw.oom_seen);
	for (unsigned i = 0; i < n; i++)
		ss[i].pidfd = -1;
	for (unsigned i = 0; i < n; i++) {
		ss[i].times = SHMK_SYSP("malloc", NULL,
					calloc(p->o.quarantine_deaths,
					       sizeof *ss[i].times));
		if (!ss[i].times) {
			start_failed(p->ctl, errno, "pool: supervisor: cannot "
						    "allocate the death times of "
						    "slot %u: %s",
				     i, strerror(errno));
			_exit(112); /* its workers die with it */
		}
	}
	/* A first worker that cannot be forked fails the start with its
	 * cause, rather than a retry the caller sees as "not ready". */
	for (unsigned i = 0; i < n; i++)
		if (spawn_worker(p, i, ss, cmd_rfd, &sig_fd, &mw) < 0) {
			start_failed(p->ctl, errno, "pool: supervisor: cannot "
						    "fork the worker of slot %u: %s",
				     i, strerror(errno));
			_exit(112);
		}

	for (;;) {
		int64_t now = mono_ms(), next = -1;
		nfds_t nf = 0;

		for (unsigned i = 0; i < n; i++) {
			if (!stopping && ss[i].respawn_at && ss[i].respawn_at <= now) {
				ss[i].respawn_at = 0;
				if (spawn_worker(p, i, ss, cmd_rfd, &sig_fd, &mw) < 0)
					ss[i].respawn_at = now + p->o.backoff_max_ms;
			}
			if (ss[i].respawn_at && (next < 0 || ss[i].respawn_at < next))
				next = ss[i].respawn_at;
		}
		if (stopping) {
			if (!any_alive(p, ss))
				_exit(0);
			if (now >= stop_deadline && !killed) {
				kill_all(p, ss, SIGKILL);
				killed = true;
			}
			if (!killed)
				next = stop_deadline;
		}
		pf[nf].fd = cmd_rfd;
		pf[nf++].events = POLLIN;
		for (unsigned i = 0; i < n; i++) {
			pf[nf].fd = ss[i].pidfd; /* -1 entries are ignored */
			pf[nf++].events = POLLIN;
		}
		pf[nf].fd = sig_fd;
		pf[nf++].events = POLLIN;
		int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
		if (poll(pf, nf, timeout) < 0)
			continue;
		if (pf[0].revents) {
			struct sup_cmd cmd = {0};
			ssize_t r = read(cmd_rfd, &cmd, sizeof cmd);
			if (r <= 0 || cmd.op == 'T') {
				/* Shutdown asked, with what is left of destroy's
				 * one grace period; or the service is gone (EOF). */
				if (!stopping) {
					stopping = true;
					stop_deadline = mono_ms() + cmd.grace_ms;
				}
				if (r <= 0) {
					kill_all(p, ss, SIGKILL);
					killed = true;
					pf[0].fd = -1;
					cmd_rfd = -1;
				} else if (!termed) {
					kill_all(p, ss, SIGTERM);
					termed = true;
				}
			}
		}
		for (unsigned i = 0; i < n; i++)
			if (pf[i + 1].fd >= 0 && pf[i + 1].revents)
				on_death(p, i, &ss[i], &mw);
		if (pf[n + 1].fd >= 0 && pf[n + 1].revents) {
			struct signalfd_siginfo sfi;
			while (read(sig_fd, &sfi, sizeof sfi) > 0)
				;
			/* Signals coalesce: ask every worker without a
			 * pidfd, leaving the zombie for on_death's wait4. */
			for (unsigned i = 0; i < n; i++) {
				siginfo_t si;
				if (ss[i].pid <= 0 || ss[i].pidfd >= 0)
					continue;
				si.si_pid = 0;
				if (waitid(P_PID, (id_t)ss[i].pid, &si,
					   WEXITED | WNOHANG | WNOWAIT) == 0 &&
				    si.si_pid == ss[i].pid)
					on_death(p, i, &ss[i], &mw);
			}
		}
	}
}

/* ---- watch thread (service side) -------------------------------------- */

/* The descriptor that becomes readable when the supervisor is gone: its
 * pidfd, or without one the command socket, whose other end only the
 * supervisor holds (the supervisor never writes to it: readable = EOF). */
static int sup_gone_fd(const shmk_pool *p)
{
	return p->sup_pidfd >= 0 ? p->sup_pidfd : p->cmd_fd;
}

/* Waits for the supervisor to die.  If it dies while the pool is in use
 * (SIGKILLed, say), every slot stops and every waiting caller wakes with an
 * error: nothing ever hangs on a pool whose supervisor is gone. */
static void *watch_main(void *arg)
{
	shmk_pool *p = arg;
	struct pollfd pf[2] = {{.fd = sup_gone_fd(p), .events = POLLIN},
			       {.fd = p->watch_rfd, .events = POLLIN}};

	for (;;) {
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents)
			return NULL; /* shmk_pool_destroy() is taking over */
		if (pf[0].revents)
			break;
	}
	if (p->sup_pidfd < 0) {
		/* The socket closes early in the supervisor's exit; a pidfd
		 * says "exited" only once its workers are orphaned.  Wait for
		 * that too (WNOWAIT: teardown() reaps it). */
		siginfo_t si;
		while (waitid(P_PID, (id_t)p->sup_pid, &si, WEXITED | WNOWAIT) < 0 &&
		       errno == EINTR)
			;
	}
	atomic_store(&p->ctl->sup_gone, 1);
	for (unsigned i = 0; i < p->o.workers; i++) {
		struct pslot *s = &p->ctl->slot[i];
		uint32_t old = set_phase(s, PH_STOPPED, true);
		if (ST_PHASE(old) == PH_BUSY)
			fail_job(s);
	}
	start_event(p->ctl);
	bump_free(p->ctl);
	return NULL;
}

/* ---- service API ---------------------------------------------------------- */

static void defaults(struct shmk_pool_options *o)
{
	if (!o->workers)
		o->workers = 3;
	if (!o->slot_size)
		o->slot_size = 1u << 20;
	if (o->lease_policy == SHMK_LEASE_DEFAULT)
		o->lease_policy = SHMK_LEASE_FAIL;
	if (!o->lease_timeout_ms)
		o->lease_timeout_ms = 1000;
	if (!o->backoff_min_ms)
		o->backoff_min_ms = 10;
	if (!o->backoff_max_ms)
		o->backoff_max_ms = 2000;
	if (o->backoff_max_ms < o->backoff_min_ms)
		o->backoff_max_ms = o->backoff_min_ms;
	if (!o->quarantine_deaths)
		o->quarantine_deaths = 5;
	if (!o->quarantine_window_ms)
		o->quarantine_window_ms = 10000;
	if (!o->shutdown_grace_ms)
		o->shutdown_grace_ms = 2000;
	if (!o->title)
		o->title = "shmkeeper";
	if (!o->start_timeout_ms)
		o->start_timeout_ms = 10000;
	if (!o->job_timeout_ms)
		o->job_timeout_ms = JOB_TIMEOUT_MS;
}

/* Reaps the supervisor, which exits by itself once its workers are gone
 * (it SIGKILLs them at the grace deadline).  If it has not within
 * SUP_EXIT_MS after the deadline (stopped, say, or stuck) it is SIGKILLed
 * (its workers die with it).  Bounded, whatever signals the caller
 * catches meanwhile: an interrupted wait is resumed for the time left and
 * skips no step. */
static int reap_supervisor(shmk_pool *p, int64_t deadline)
{
	int fd = sup_gone_fd(p), st;
	pid_t r;

	if (fd < 0 || !wait_readable(fd, deadline + SUP_EXIT_MS))
		kill(p->sup_pid, SIGKILL);
	/* With a pidfd, readable means exited: the reap below cannot block
	 * (without one, the kernel delivers SIGKILL to any process). */
	if (p->sup_pidfd >= 0 &&
	    !wait_readable(p->sup_pidfd, mono_ms() + SUP_EXIT_MS))
		return shmk__err(-ETIMEDOUT, "pool: supervisor %d still not "
					     "dead %d ms after SIGKILL",
				 (int)p->sup_pid, SUP_EXIT_MS);
	while ((r = SHMK_SYS("waitpid", waitpid(p->sup_pid, &st, 0))) < 0 &&
	       errno == EINTR)
		;
	if (r < 0)
		return shmk__err(-errno, "pool: waitpid(supervisor %d): %s",
				 (int)p->sup_pid, strerror(errno));
	return 0;
}

/* deadline: end of destroy's grace period (mono ms), -1 for a pool that
 * failed to start (its supervisor, if any, was already SIGKILLed). */
static void teardown(shmk_pool *p, int64_t deadline, int *first)
{
	int rc;

	if (p->watch_started) {
		if (write(p->watch_efd, "x", 1) < 0) {
		}
		pthread_join(p->watch, NULL);
		p->watch_started = false;
	}
	shmk__close(&p->watch_efd);
	shmk__close(&p->watch_rfd);
	if (p->sup_pid > 0) {
		if ((rc = reap_supervisor(p, deadline < 0 ? mono_ms() : deadline)) < 0 &&
		    !*first)
			*first = rc;
		p->sup_pid = 0;
	}
	shmk__close(&p->sup_pidfd);
	shmk__close(&p->cmd_fd);
	/* Every process of the pool is gone.  Stop every slot and fail any job
	 * still marked busy (the supervisor may have been killed before it
	 * could), so that no caller waits on a worker that will never come;
	 * then unmap only when no caller is inside the pool any more. */
	if (p->ctl) {
		for (unsigned i = 0; i < p->o.workers; i++) {
			struct pslot *s = &p->ctl->slot[i];
			if (ST_PHASE(set_phase(s, PH_STOPPED, true)) == PH_BUSY)
				fail_job(s);
		}
		atomic_store(&p->ctl->shutdown, 1);
		bump_free(p->ctl);
		wait_callers_left(p);
	}
	for (unsigned i = 0; p->slots && i < p->o.workers; i++)
		if (p->slots[i] && (rc = shmk_segment_destroy(p->slots[i])) < 0 &&
		    !*first)
			*first = rc;
	free(p->slots);
	p->slots = NULL;
	if (p->ctl_seg && (rc = shmk_segment_destroy(p->ctl_seg)) < 0 && !*first)
		*first = rc;
	p->ctl_seg = NULL;
}

/* The sentence for a supervisor that died while the workers started: how
 * it died (it is not reaped here: teardown does). */
static int supervisor_died(shmk_pool *p)
{
	siginfo_t si = {0};

	if (waitid(P_PID, (id_t)p->sup_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == p->sup_pid) {
		if (si.si_code == CLD_EXITED)
			return shmk__err(-ECHILD, "pool: the supervisor %d exited "
						  "with status %d while starting "
						  "the workers",
					 (int)p->sup_pid, si.si_status);
		const char *sig = sigabbrev_np(si.si_status);
		return shmk__err(-ECHILD, "pool: the supervisor %d was killed by "
					  "SIG%s while starting the workers",
				 (int)p->sup_pid, sig ? sig : "?");
	}
	return shmk__err(-ECHILD, "pool: the supervisor %d died while starting "
				  "the workers", (int)p->sup_pid);
}

/* Segment names carry a random part: "pool-<pid>-<n>-<16 hex>-ctl" and
 * "...-slot<i>".  Without it they were predictable, and another process of
 * ours that pre-created them kept every pool from starting (O_EXCL never
 * adopts a name).  A name that exists all the same gets a new random part,
 * a few times. */
#define POOL_NAME_TRIES 4

static void new_base(shmk_pool *p, unsigned n)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) {
		/* No entropy yet (early boot): weaker, still not a guess
		 * from the pid, and EEXIST is retried. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = ((uint64_t)ts.tv_nsec << 32 | (uint64_t)random()) ^
		    (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)p;
	}
	snprintf(p->base, sizeof p->base, "pool-%d-%u-%016" PRIx64,
		 (int)getpid(), n, r);
}

/* Creates the pool's segment "<base>-<what>"; on EEXIST the base gets a
 * new random part (kept for the segments that follow) and it is tried
 * again. */
static int pool_seg_create(shmk_pool *p, unsigned n, const char *what,
			   size_t size, shmk_segment **out)
{
	char name[128];
	int rc = -EEXIST;

	for (int t = 0; t < POOL_NAME_TRIES && rc == -EEXIST; t++) {
		if (t)
			new_base(p, n);
		snprintf(name, sizeof name, "%s-%s", p->base, what);
		rc = shmk_segment_create(p->ctx, name, size, out);
	}
	return rc;
}

int shmk_pool_create(shmk_ctx *ctx, const struct shmk_pool_options *opt,
		     shmk_pool **out)
{
	static _Atomic unsigned counter;
	shmk_pool *p;
	int cmd[2] = {-1, -1}, wp[2] = {-1, -1}, rc = 0, first = 0;
	char name[32];
	size_t ctl_size;
	unsigned n;

	if (!out)
		return shmk__err(-EINVAL, "shmk_pool_create: out is NULL");
	*out = NULL;
	if (!ctx || !opt || !opt->fn)
		return shmk__err(-EINVAL, "shmk_pool_create: ctx, options and "
					  "fn are required");
	if (opt->workers > MAX_WORKERS)
		return shmk__err(-EINVAL, "pool: %u workers is more than %d",
				 opt->workers, MAX_WORKERS);
	if (!(p = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *p))))
		return shmk__err(-ENOMEM, "pool: out of memory");
	p->ctx = ctx;
	p->o = *opt;
	defaults(&p->o);
	p->sup_pidfd = p->cmd_fd = p->watch_efd = p->watch_rfd = -1;
	n = atomic_fetch_add(&counter, 1);
	new_base(p, n);

	/* Slots and control block, through the registry. */
	ctl_size = sizeof(struct pctl) + p->o.workers * sizeof(struct pslot);
	if ((rc = pool_seg_create(p, n, "ctl", ctl_size, &p->ctl_seg)) < 0)
		goto fail;
	p->ctl = shmk_segment_addr(p->ctl_seg);
	p->ctl->magic = POOL_MAGIC;
	p->ctl->nslots = p->o.workers;
	if (!(p->slots = SHMK_SYSP("malloc", NULL,
				   calloc(p->o.workers, sizeof *p->slots)))) {
		rc = shmk__err(-ENOMEM, "pool: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->o.workers; i++) {
		snprintf(name, sizeof name, "slot%u", i);
		if ((rc = pool_seg_create(p, n, name, p->o.slot_size,
					  &p->slots[i])) < 0)
			goto fail;
		atomic_store(&p->ctl->slot[i].state, ST_MAKE(0, PH_STARTING, 0));
	}

	/* cmd is a socket pair so that shmk_pool_destroy() can send with
	 * MSG_NOSIGNAL: a dead supervisor must not SIGPIPE the service;
	 * SEQPACKET keeps each struct sup_cmd whole. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cmd) < 0 ||
	    pipe2(wp, O_CLOEXEC) < 0) {
		rc = shmk__err(-errno, "pool: cannot create pipes: %s",
			       strerror(errno));
		goto fail;
	}
	fiu_do_on("shmk/pool/fork_supervisor", {
		errno = EAGAIN;
		rc = shmk__err(-EAGAIN, "pool: cannot fork the supervisor: "
					"injected fault");
		goto fail;
	});
	p->sup_pid = SHMK_SYS("fork", fork());
	if (p->sup_pid < 0) {
		rc = shmk__err(-errno, "pool: cannot fork the supervisor: %s",
			       strerror(errno));
		goto fail;
	}
	if (p->sup_pid == 0) {
		/* Its command socket and the shm directory (for RECREATE);
		 * nothing else of the service, CLOEXEC or not. */
		int keep[2] = {cmd[0], p->ctx->shm_fd};
		if (keep[0] > keep[1]) {
			keep[0] = keep[1];
			keep[1] = cmd[0];
		}
		close_inherited(keep, 2);
		supervisor_main(p, cmd[0]);
	}
	close(cmd[0]);
	cmd[0] = -1;
	p->cmd_fd = cmd[1];
	cmd[1] = -1;
	p->watch_rfd = wp[0];
	p->watch_efd = wp[1];
	wp[0] = wp[1] = -1;
	p->sup_pidfd = (int)syscall(SYS_pidfd_open, p->sup_pid, 0);
	if (p->sup_pidfd < 0 && errno != ENOSYS) { /* ENOSYS: sup_gone_fd() */
		rc = shmk__err(-errno, "pool: pidfd_open(supervisor %d): %s",
			       (int)p->sup_pid, strerror(errno));
		goto fail;
	}
	if ((rc = -pthread_create(&p->watch, NULL, watch_main, p)) < 0) {
		rc = shmk__err(rc, "pool: cannot start the watch thread: %s",
			       strerror(-rc));
		goto fail;
	}
	p->watch_started = true;

	/* Ready when every worker has come up once; not when the supervisor
	 * or a worker said why it cannot start, or the supervisor died. */
	int64_t start_deadline = mono_ms() + p->o.start_timeout_ms;
	for (;;) {
		uint32_t seq = atomic_load(&p->ctl->start_seq);
		uint32_t r = atomic_load(&p->ctl->ready);
		int32_t err = atomic_load(&p->ctl->start_err);
		if (r >= p->o.workers)
			break;
		if (err > 0) {
			rc = shmk__err(-err, "%s", p->ctl->start_msg);
			goto fail;
		}
		if (err == 0 && atomic_load(&p->ctl->sup_gone)) {
			rc = supervisor_died(p);
			goto fail;
		}
		struct timespec ts;
		const struct timespec *rel;
		if (!remaining(start_deadline, &ts, &rel) ||
		    (fwait(&p->ctl->start_seq, seq, rel) < 0 && errno == ETIMEDOUT)) {
			rc = shmk__err(-ETIMEDOUT, "pool: workers not ready "
						   "after %u ms (%u of %u)",
				       p->o.start_timeout_ms, r, p->o.workers);
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	{
		char msg[512];
		snprintf(msg, sizeof msg, "%s", shmk_last_error());
		if (cmd[0] >= 0)
			close(cmd[0]);
		if (cmd[1] >= 0)
			close(cmd[1]);
		if (wp[0] >= 0)
			close(wp[0]);
		if (wp[1] >= 0)
			close(wp[1]);
		if (p->sup_pid > 0)
			kill(p->sup_pid, SIGKILL);
		teardown(p, -1, &first);
		free(p);
		shmk__err(rc, "%s", msg);
	}
	return rc;
}

int shmk_pool_destroy(shmk_pool *p)
{
	int first = 0;
	int64_t deadline, left;
	struct sup_cmd cmd;

	if (!p)
		return 0;
	memset(&cmd, 0, sizeof cmd); /* padding too: it is sent */
	cmd.op = 'T';
	atomic_store(&p->ctl->shutdown, 1);
	bump_free(p->ctl); /* lease waiters: -ESHUTDOWN */
	/* One grace period in total: running jobs may finish within it, and
	 * the workers get what is left of it between SIGTERM and SIGKILL. */
	deadline = mono_ms() + p->o.shutdown_grace_ms;
	for (unsigned i = 0; i < p->o.workers; i++) {
		struct pslot *s = &p->ctl->slot[i];
		uint32_t st;
		struct timespec ts;
		const struct timespec *rel;
		while (ST_PHASE(st = atomic_load(&s->state)) == PH_BUSY &&
		       remaining(deadline, &ts, &rel))
			fwait(&s->state, st, rel);
	}
	/* Then SIGTERM, the rest of the grace, SIGKILL: the supervisor does
	 * it and exits. */
	left = deadline - mono_ms();
	cmd.grace_ms = left > 0 ? (uint32_t)left : 0;
	/* (Failing, the supervisor is gone or is SIGKILLed at the deadline
	 * by reap_supervisor(): no step is skipped either way.) */
	while (p->cmd_fd >= 0 &&
	       send(p->cmd_fd, &cmd, sizeof cmd, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
	teardown(p, deadline, &first);
	free(p);
	return first;
}

static int lease(shmk_pool *p, enum shmk_lease_policy policy,
		 unsigned timeout_ms)
{
	struct pctl *c = p->ctl;
	unsigned n = p->o.workers;
	int64_t deadline = -1;

	if (policy == SHMK_LEASE_DEFAULT)
		policy = p->o.lease_policy;
	if (policy == SHMK_LEASE_DEADLINE)
		deadline = mono_ms() + (timeout_ms ? timeout_ms : p->o.lease_timeout_ms);
	for (;;) {
		uint32_t seq = atomic_load(&c->free_seq);
		unsigned start = atomic_fetch_add(&c->lease_rr, 1), quarantined = 0;
		struct timespec ts;
		const struct timespec *rel;

		if (atomic_load(&c->shutdown) || atomic_load(&c->sup_gone))
			return shmk__err(-ESHUTDOWN, "pool: shutting down");
		for (unsigned k = 0; k < n; k++) {
			unsigned i = (start + k) % n;
			struct pslot *s = &c->slot[i];
			uint32_t st = atomic_load(&s->state);
			if (ST_PHASE(st) == PH_QUARANTINED)
				quarantined++;
			if ((st & ST_LEASED) || ST_PHASE(st) != PH_READY)
				continue;
			if (atomic_compare_exchange_strong(&s->state, &st,
							   st | ST_LEASED))
				return (int)i;
		}
		if (quarantined == n)
			return shmk__err(-ENODEV, "pool: every slot is quarantined");
		if (policy == SHMK_LEASE_FAIL)
			return shmk__err(-EAGAIN, "pool: all %u slots are leased",
					 n);
		if (!remaining(deadline, &ts, &rel))
			return shmk__err(-ETIMEDOUT, "pool: no slot free within "
						     "%u ms",
					 timeout_ms ? timeout_ms : p->o.lease_timeout_ms);
		fwait(&c->free_seq, seq, rel);
	}
}

void *shmk_pool_slot_mem(shmk_pool *p, unsigned slot)
{
	return slot < p->o.workers ? shmk_segment_addr(p->slots[slot]) : NULL;
}

size_t shmk_pool_slot_size(shmk_pool *p) { return p->o.slot_size; }

int shmk_pool_lease(shmk_pool *p, enum shmk_lease_policy policy,
		    unsigned timeout_ms)
{
	int rc;

	enter(p);
	rc = lease(p, policy, timeout_ms);
	leave(p);
	return rc;
}

/* SIGKILLs the worker of slot s, whose job is past its deadline, and marks
 * its pid so that the supervisor classifies the death as a timeout.  The
 * pid names that worker only until the supervisor reaps it, and the
 * supervisor clears s->pid before it reaps: a pidfd opened before a
 * re-read that still finds the pid refers to that worker, never to a
 * process that reused its number.  (Without pidfd_open the window left is
 * the time between that re-read and kill().) */
static void kill_timed_out(struct pslot *s)
{
	pid_t pid = atomic_load(&s->pid);
	int fd;

	if (pid <= 0)
		return;
	atomic_store(&s->timeout_pid, pid);
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (atomic_load(&s->pid) == pid) {
		if (fd >= 0)
			syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
		else
			kill(pid, SIGKILL);
	}
	shmk__close(&fd);
}

/* Waits until the job seq is done or the deadline (mono ms, -1: none)
 * passes. */
static bool wait_done(struct pslot *s, uint32_t seq, int64_t deadline)
{
	struct timespec ts;
	const struct timespec *rel;

	for (uint32_t d; (d = atomic_load(&s->done)) != seq;)
		if (!remaining(deadline, &ts, &rel))
			return false;
		else
			fwait(&s->done, d, rel);
	return true;
}

/* The error of a job that ended with its worker's death. */
static int job_failed(shmk_pool *p, unsigned slot, unsigned timeout_ms)
{
	struct pslot *s = &p->ctl->slot[slot];
	struct shmk_death d;
	int err = atomic_load(&s->reinit_err);

	shmk_pool_last_death(p, slot, &d);
	if (err)
		return shmk__err(-err, "pool: slot %u: worker %d died (%s) and the "
				       "slot's memory could not be reserved again "
				       "(posix_fallocate: %s): the slot is "
				       "quarantined, do not touch its memory",
				 slot, (int)d.pid, shmk_death_kind_name(d.kind),
				 strerror(err));
	if (d.kind == SHMK_DEATH_TIMEOUT)
		return shmk__err(-ETIMEDOUT, "pool: slot %u: the job passed its "
					     "deadline of %u ms; worker %d was "
					     "killed",
				 slot, timeout_ms, (int)d.pid);
	return shmk__err(-ECHILD, "pool: slot %u: worker %d died during "
				  "the job (%s)",
			 slot, (int)d.pid, shmk_death_kind_name(d.kind));
}

/* A BUSY slot under our own lease whose job was timed out and whose
 * worker's death the supervisor has not marked yet: wait for it. */
static bool timeout_pending(struct pslot *s)
{
	pid_t tp = atomic_load(&s->timeout_pid), pid = atomic_load(&s->pid);

	return tp > 0 && (pid == tp || pid == 0);
}

static int run(shmk_pool *p, unsigned slot, int *result, unsigned timeout_ms)
{
	struct pslot *s;
	uint32_t st, seq;
	int64_t deadline = -1;
	struct timespec ts;
	const struct timespec *rel;

	if (slot >= p->o.workers)
		return shmk__err(-EINVAL, "pool: no slot %u", slot);
	if (!timeout_ms)
		timeout_ms = p->o.job_timeout_ms;
	if (timeout_ms != SHMK_POOL_NO_DEADLINE)
		deadline = mono_ms() + timeout_ms;
	s = &p->ctl->slot[slot];
	for (;;) {
		st = atomic_load(&s->state);
		if (!(st & ST_LEASED))
			return shmk__err(-EPERM, "pool: slot %u is not leased", slot);
		switch (ST_PHASE(st)) {
		case PH_READY:
			break;
		case PH_BUSY:
			if (!timeout_pending(s))
				return shmk__err(-EBUSY, "pool: slot %u is busy",
						 slot);
			/* fall through */
		case PH_STARTING:
			/* Its worker died earlier; wait for the replacement
			 * (the death itself was reported to whoever waited). */
			if (!remaining(deadline, &ts, &rel))
				return shmk__err(-ETIMEDOUT, "pool: slot %u: no "
							     "worker ready within "
							     "%u ms",
						 slot, timeout_ms);
			fwait(&s->state, st, rel);
			continue;
		case PH_QUARANTINED:
			if (atomic_load(&s->reinit_err))
				return job_failed(p, slot, timeout_ms);
			return shmk__err(-ENODEV, "pool: slot %u is quarantined "
						  "after %u deaths",
					 slot, atomic_load(&s->deaths));
		case PH_STOPPED:
			return shmk__err(-ESHUTDOWN, "pool: slot %u is stopped",
					 slot);
		default:
			return shmk__err(-EBUSY, "pool: slot %u is busy", slot);
		}
		/* The ordering point with the supervisor (see the top). */
		if (atomic_compare_exchange_strong(
			    &s->state, &st, ST_MAKE(1, PH_BUSY, ST_GEN(st))))
			break;
	}
	atomic_store(&s->failed, 0);
	seq = atomic_load(&s->doorbell) + 1;
	atomic_store(&s->doorbell, seq);
	fwake(&s->doorbell);
	if (!wait_done(s, seq, deadline)) {
		/* Past the deadline: the worker dies, and the caller returns
		 * once the death is reported (or, with the supervisor too
		 * slow to report it, KILL_REPORT_MS later all the same). */
		kill_timed_out(s);
		if (!wait_done(s, seq, mono_ms() + KILL_REPORT_MS) ||
		    !atomic_load(&s->failed))
			return shmk__err(-ETIMEDOUT, "pool: slot %u: the job "
						     "passed its deadline of %u "
						     "ms; its worker was killed",
					 slot, timeout_ms);
	}
	if (atomic_load(&s->failed))
		return job_failed(p, slot, timeout_ms);
	/* BUSY -> READY in our generation; if the worker died after finishing
	 * (new generation), the result stands and the CAS just fails. */
	uint32_t busy = ST_MAKE(1, PH_BUSY, ST_GEN(st));
	atomic_compare_exchange_strong(&s->state, &busy,
				       ST_MAKE(1, PH_READY, ST_GEN(st)));
	if (result)
		*result = atomic_load(&s->result);
	return 0;
}

int shmk_pool_run(shmk_pool *p, unsigned slot, int *result)
{
	return shmk_pool_run_timeout(p, slot, result, 0);
}

int shmk_pool_run_timeout(shmk_pool *p, unsigned slot, int *result,
			  unsigned timeout_ms)
{
	int rc;

	enter(p);
	rc = run(p, slot, result, timeout_ms);
	leave(p);
	return rc;
}

void shmk_pool_release(shmk_pool *p, unsigned slot)
{
	struct pslot *s;
	uint32_t st;

	if (slot >= p->o.workers)
		return;
	enter(p); /* a release racing destroy keeps the control block mapped */
	s = &p->ctl->slot[slot];
	st = atomic_load(&s->state);
	while ((st & ST_LEASED) &&
	       !atomic_compare_exchange_weak(&s->state, &st, st & ~ST_LEASED))
		;
	bump_free(p->ctl);
	leave(p);
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
	do {
		/* Odd: the supervisor is writing it, for a few instructions -
		 * unless it was stopped or killed right there: bounded. */
		for (int64_t end = -1; (a = atomic_load(&s->report_seq)) & 1;) {
			if (end < 0)
				end = mono_ms() + REPORT_WAIT_MS;
			else if (mono_ms() > end)
				return shmk__err(-EAGAIN, "pool: slot %u: the "
							  "supervisor has been "
							  "writing the death "
							  "report for %d ms",
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

unsigned shmk_pool_deaths(shmk_pool *p) { return atomic_load(&p->ctl->deaths); }

int shmk_pool_slot_quarantined(shmk_pool *p, unsigned slot)
{
	return slot < p->o.workers &&
	       ST_PHASE(atomic_load(&p->ctl->slot[slot].state)) == PH_QUARANTINED;
}

pid_t shmk_pool_worker_pid(shmk_pool *p, unsigned slot)
{
	if (slot >= p->o.workers ||
	    ST_PHASE(atomic_load(&p->ctl->slot[slot].state)) == PH_STARTING)
		return 0;
	return atomic_load(&p->ctl->slot[slot].pid);
}

pid_t shmk_pool_supervisor_pid(shmk_pool *p) { return p->sup_pid; }

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
