/* SPDX-License-Identifier: MIT */
/* preload.c - libshmkeeper-preload.so: shmkeeper for programs that never
 * heard of it (LD_PRELOAD).  Not part of libshmkeeper.so.
 *
 * shm_open, shm_unlink, sem_open and sem_unlink (and, with
 * SHMKEEPER_RESERVE=1, ftruncate) are interposed.  An object the program
 * creates is recorded, under the name it chose ("adopted"), in this
 * process's record of the namespace $SHMKEEPER_NS (default "preload") of
 * the usual registry ($SHMKEEPER_DIR, ...): the intent before the real
 * call, the inode after it, the drop after the program's unlink
 * (adopt.c).  A reaper (shmclean, shmrun, shmk_reap) removes an adopted
 * object only when its owner is provably dead and the name still holds
 * that inode.
 *
 * The rules, and how they are kept:
 *  - The program sees what it would see without us: the real call does
 *    the work, with the program's arguments; the return value and
 *    descriptor are the real call's; errno is the real call's on failure
 *    and the caller's own on success.  Our descriptors sit at or above
 *    fd_floor(), so the program's next descriptor numbers are unchanged.
 *  - Only creations are recorded.  O_CREAT|O_EXCL is one.  O_CREAT alone
 *    is tried first without O_CREAT: if that opens an object, it existed
 *    (not ours); on ENOENT the intent is recorded and the call is made
 *    with O_EXCL added, so that what it returns is an object this call
 *    made; EEXIST there (made by someone else in between) drops the intent
 *    and starts over.  The result is the one the program's call would
 *    have had at some instant of it, as with any racing creator.
 *  - Registry unusable: one line on stderr, and every call goes through
 *    untracked (fail open); SHMKEEPER_STRICT=1 fails the call instead,
 *    with the registry's errno.
 *  - Lazy: the constructor only notes the pid and registers the fork
 *    handlers (no allocation in glibc, no registry work); everything else
 *    happens at the first call that creates.
 *  - Threads: one mutex (the context's) is held from the intent through
 *    the real call to the live mark, and from the real unlink to the drop,
 *    so no other thread's create or unlink of the same name interleaves.
 *  - fork: the handlers take that mutex around fork, so a child never
 *    inherits it locked; the child is a new owner (its own lock file and
 *    record, made at its first create); the parent's entries stay the
 *    parent's (shmk__owner_ensure).
 *  - vfork: a vfork child shares our memory and may only exec or _exit;
 *    a call in a process whose pid is not the one our memory belongs to
 *    (a vfork child, or a raw clone) goes through untracked, touching
 *    nothing.  Telling costs no system call in the common case (ours()):
 *    a page advised MADV_WIPEONFORK reads zero in any child not made by
 *    fork() (which the fork handler marks), and vfork and clone are
 *    interposed to count the children that run in our memory (vforks in
 *    progress; clone(CLONE_VM) children, for good); while there is one,
 *    every call asks getpid().  Where they are not interposed (other than
 *    x86-64), every call asks getpid().  A CLONE_VM child made by the
 *    system call itself is not seen: it must not call us (nor most of
 *    libc).
 *  - exec: the owner's lock descriptor is left open across exec (owner.c,
 *    c->adopt), so the exec'd image - the same process, using the same
 *    objects - keeps the owner alive for reapers; the new image makes an
 *    owner of its own if it creates.  If the program closes descriptors it
 *    did not open, the reaper's identity cross-check (a free lock whose
 *    process still runs is left alone) still keeps its objects.
 *  - Nothing recursive: the library never calls the interposed functions
 *    (it makes its own objects with openat in the shm directory), and the
 *    real ones are found with dlsym(RTLD_NEXT).
 */
#include "ctx.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define DEFAULT_NS "preload"
#define MAX_RETRIES 64   /* O_CREAT without O_EXCL racing other creators */
#define TRACK_MAX 4096   /* descriptors watched for SHMKEEPER_RESERVE */

typedef int (*shm_open_fn)(const char *, int, mode_t);
typedef int (*unlink_fn)(const char *);
typedef sem_t *(*sem_open_fn)(const char *, int, ...);
typedef int (*ftruncate_fn)(int, off_t);

/* The real functions, found once (a race finds the same twice). */
static void *next_sym(void *_Atomic *slot, const char *name)
{
	void *f = atomic_load_explicit(slot, memory_order_relaxed);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		atomic_store_explicit(slot, f, memory_order_relaxed);
	}
	return f;
}
static void *_Atomic r_shm_open, *_Atomic r_shm_unlink, *_Atomic r_sem_open,
	*_Atomic r_sem_unlink, *_Atomic r_ftruncate;
#define REAL(slot, type, name) ((type)next_sym(&(slot), name))

enum { ST_NEW, ST_READY, ST_OFF, ST_FAILED };

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int state;         /* ST_* */
static int strict_err;            /* ST_FAILED: the registry's -errno */
static bool strict;
static shmk_ctx *ctx;             /* ST_READY: ours for the process's life */
static _Atomic pid_t mem_pid;     /* the process this memory belongs to */
static atomic_flag warned = ATOMIC_FLAG_INIT;
static _Atomic bool reserve;      /* SHMKEEPER_RESERVE=1 */
static dev_t shm_dev;
static _Atomic uint64_t fd_ino[TRACK_MAX]; /* fd -> inode of an object made
					      through it (reserve only) */

/* ---- process life ------------------------------------------------------ */

/* A page advised MADV_WIPEONFORK, *mine nonzero: this memory is the
 * process's our fork handler last marked (a child made otherwise, by a raw
 * fork or clone system call, finds it zeroed).  NULL until init(), or if
 * the kernel cannot (older than 4.14). */
static _Atomic int *_Atomic mine;

#if defined(__x86_64__)
#define VFORK_HOOK 1
#define STR_(x) #x
#define STR(x) STR_(x)
/* Children that may run in our memory: vforks in progress, and children
 * made by clone(CLONE_VM) without CLONE_THREAD (counted for good: when
 * such a child ends is not known).  A call made while there is one may be
 * a child's, and asks getpid(). */
__attribute__((visibility("hidden"), used)) _Atomic int shmk__sharers;

__attribute__((visibility("hidden"), used)) long shmk__vfork_failed(long neg)
{
	errno = (int)-neg;
	return -1;
}

/* vfork as glibc's x86-64 vfork, counted.  The return address is kept in
 * a register across the system call (the child may overwrite our stack),
 * and pushed back; the child leaves the count to its parent, which takes
 * its vfork off when the child has exec'd or exited.  With a shadow
 * stack, the child returns by a jump, not popping the stack it shares. */
__asm__(".text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
	"	.cfi_startproc\n"
#ifdef __CET__
	"	endbr64\n"
#endif
	"	lock incl shmk__sharers(%rip)\n"
	"	popq %rdi\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_register %rip, %rdi\n"
	"	movl $" STR(SYS_vfork) ", %eax\n"
	"	syscall\n"
	"	pushq %rdi\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	testl %eax, %eax\n"
	"	jz 2f\n"
	"	lock decl shmk__sharers(%rip)\n"
	"	cmpl $-4095, %eax\n"
	"	jae 3f\n"
	"	ret\n"
	"2:	xorl %esi, %esi\n"
	"	rdsspq %rsi\n"
	"	testq %rsi, %rsi\n"
	"	jz 1f\n"
	"	popq %rdi\n"
	"	jmp *%rdi\n"
	"1:	ret\n"
	"3:	movslq %eax, %rdi\n"
	"	jmp shmk__vfork_failed\n"
	"	.cfi_endproc\n"
	".size vfork, .-vfork\n"
	".globl __vfork\n"
	".set __vfork, vfork\n");
#endif

#ifdef VFORK_HOOK
typedef int (*clone_fn)(int (*)(void *), void *, int, void *, ...);
static void *_Atomic r_clone;

/* glibc's clone(), counted when the child shares our memory as another
 * process (a thread, CLONE_THREAD, is this process).  The optional
 * arguments are passed on as they came; clone reads only those its flags
 * name. */
EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	clone_fn f = REAL(r_clone, clone_fn, "clone");
	bool shares = (flags & CLONE_VM) && !(flags & CLONE_THREAD);
	pid_t *ptid, *ctid;
	void *tls;
	va_list ap;
	int rc;

	va_start(ap, arg);
	ptid = va_arg(ap, pid_t *);
	tls = va_arg(ap, void *);
	ctid = va_arg(ap, pid_t *);
	va_end(ap);
	if (!f)
		return errno = ENOSYS, -1;
	if (shares)
		atomic_fetch_add(&shmk__sharers, 1);
	rc = f(fn, stack, flags, arg, ptid, tls, ctid);
	if (shares && (rc < 0 || (flags & CLONE_VFORK)))
		atomic_fetch_sub(&shmk__sharers, 1); /* none, or done */
	return rc;
}
#endif

/* Is the process calling the one this memory belongs to?  Not in a vfork
 * child nor in a raw clone: those go through untracked. */
static inline bool ours(void)
{
#ifdef VFORK_HOOK
	_Atomic int *m = atomic_load_explicit(&mine, memory_order_acquire);

	if (m && atomic_load_explicit(m, memory_order_relaxed) &&
	    !atomic_load_explicit(&shmk__sharers, memory_order_acquire))
		return true;
#endif
	return getpid() == atomic_load(&mem_pid);
}

/* The page behind mine (in init(), not in the constructor). */
static void mine_map(void)
{
	size_t pg = (size_t)getpagesize();
	void *p = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (madvise(p, pg, MADV_WIPEONFORK) < 0) {
		munmap(p, pg);
		return;
	}
	*(int *)p = 1;
	atomic_store(&mine, (_Atomic int *)p);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&init_mu);
	if (ctx)
		pthread_mutex_lock(&ctx->mu);
}

static void fork_parent(void)
{
	if (ctx)
		pthread_mutex_unlock(&ctx->mu);
	pthread_mutex_unlock(&init_mu);
}

static void fork_child(void)
{
	_Atomic int *m = atomic_load(&mine);

	atomic_store(&mem_pid, getpid());
	if (m)
		atomic_store(m, 1);
	fork_parent();
}

/* No allocation and no registry work: the pid, and the fork handlers
 * (glibc keeps the first ones in static storage). */
__attribute__((constructor)) static void preload_boot(void)
{
	atomic_store(&mem_pid, getpid());
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* A normal exit: an owner left with no entry removes its files (the
 * registry stays tidy); one with entries leaves them to a reaper, for
 * its objects outlive it only until then. */
__attribute__((destructor)) static void preload_exit(void)
{
	int e = errno;

	if (atomic_load(&state) != ST_READY || getpid() != atomic_load(&mem_pid) ||
	    pthread_mutex_trylock(&ctx->mu) != 0)
		return;
	shmk__adopt_retire(ctx);
	pthread_mutex_unlock(&ctx->mu);
	errno = e;
}

/* ---- the registry ------------------------------------------------------- */

static bool env_on(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/* One line on stderr, once per process tree (a fork child inherits that
 * it was said). */
static void warn(const char *sentence)
{
	char buf[1024];
	int n;

	if (atomic_flag_test_and_set(&warned))
		return;
	n = snprintf(buf, sizeof buf,
		     "shmkeeper-preload: pid %d: %s; %s\n", (int)getpid(),
		     sentence,
		     strict ? "shared memory calls fail (SHMKEEPER_STRICT=1)"
			    : "shared memory is not tracked "
			      "(SHMKEEPER_STRICT=1 makes this an error)");
	if (n > 0)
		(void)!write(STDERR_FILENO, buf,
			     (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Our descriptors go high, out of the way of the program's numbering:
 * near the soft RLIMIT_NOFILE, at most 1024 (so no fd table grows past
 * what select() users have anyway).  0: leave them where they are. */
static int fd_floor(void)
{
	struct rlimit rl;
	rlim_t lim;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	lim = rl.rlim_cur > 1024 ? 1024 : rl.rlim_cur;
	return lim > 128 ? (int)(lim - 64) : 0;
}

static void role_of_program(char *out, size_t sz)
{
	const char *p = program_invocation_short_name;
	size_t n = (size_t)snprintf(out, sz, "preload:");

	for (; p && *p && n + 1 < sz && n < SHMK_ROLE_MAX; p++)
		out[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				   (*p >= '0' && *p <= '9') || strchr("_.-+@", *p)
			   ? *p
			   : '_';
	out[n] = '\0';
}

static int init(void)
{
	struct shmk_options o = {.flags = SHMK_OPEN_NO_REAP};
	char role[SHMK_ROLE_MAX + 1], why[768];
	struct stat st;
	shmk_ctx *c = NULL;
	int rc, s;

	pthread_mutex_lock(&init_mu);
	if ((s = atomic_load(&state)) != ST_NEW)
		goto out;
	strict = env_on("SHMKEEPER_STRICT");
	o.ns = getenv("SHMKEEPER_NS");
	if (!o.ns || !*o.ns)
		o.ns = DEFAULT_NS;
	role_of_program(role, sizeof role);
	o.role = role;
	if ((rc = shmk_open(&o, &c)) == 0 && fstat(c->shm_fd, &st) < 0)
		rc = shmk__err(-errno, "shm directory: %s", strerror(errno));
	if (rc < 0) {
		snprintf(why, sizeof why, "namespace %.40s: %s", o.ns,
			 shmk_last_error());
		shmk_close(c);
		strict_err = rc;
		warn(why);
		s = strict ? ST_FAILED : ST_OFF;
		atomic_store(&state, s);
		goto out;
	}
	mine_map();
	c->adopt = true;
	c->fd_floor = fd_floor();
	shmk__fd_raise(&c->root_fd, c->fd_floor);
	shmk__fd_raise(&c->ns_fd, c->fd_floor);
	shmk__fd_raise(&c->shm_fd, c->fd_floor);
	shm_dev = st.st_dev;
	ctx = c;
	atomic_store(&reserve, env_on("SHMKEEPER_RESERVE"));
	atomic_store(&state, s = ST_READY);
out:
	pthread_mutex_unlock(&init_mu);
	return s;
}

/* 1: track this call (ctx usable), 0: let it through untouched, or the
 * -errno that fails it (strict). */
static int ready(void)
{
	int s;

	if (!ours())
		return 0; /* a vfork child: nothing here is ours to touch */
	if ((s = atomic_load(&state)) == ST_NEW)
		s = init();
	return s == ST_READY ? 1 : s == ST_FAILED ? strict_err : 0;
}

/* The context, if this process tracks (never initialises: an unlink of
 * a name we never made has nothing to do with us). */
static shmk_ctx *tracking(void)
{
	return atomic_load(&state) == ST_READY && ours() ? ctx : NULL;
}

/* "/<file>" of name as glibc names it in the shm directory (leading
 * slashes dropped; "sem." before a semaphore's), if we adopt it: the bytes
 * shmk__adopted_name_ok() takes, judged as they are copied (every call
 * with O_CREAT, and every unlink, comes through here). */
static bool adopt_name(const char *name, enum shmk_seg_kind kind,
		       char full[SHMK_SHM_NAME_MAX])
{
	bool sem = kind == SHMK_KIND_ADOPTED_SEM;
	char *p = full + 1;
	size_t n;

	if (!name)
		return false;
	while (*name == '/')
		name++;
	full[0] = '/';
	if (sem) {
		memcpy(p, "sem.", 4);
		p += 4;
	}
	if (name[0] == '\0' || (!sem && name[0] == '.'))
		return false;
	for (n = 0; name[n]; n++) {
		if (n >= SHMK_ADOPTED_FILE_MAX - (sem ? 4 : 0) ||
		    !shmk__adopted_ch[(unsigned char)name[n]])
			return false;
		p[n] = name[n];
	}
	p[n] = '\0';
	return true;
}

/* ---- creating ------------------------------------------------------------ */

struct call {
	enum shmk_seg_kind kind;
	const char *name;
	char full[SHMK_SHM_NAME_MAX];
	mode_t mode;
	unsigned value;
	int fd;     /* shm_open's result */
	sem_t *sem; /* sem_open's result */
};

/* The real call with oflag: true on success, else errno is its errno. */
static bool call_real(struct call *k, int oflag)
{
	if (k->kind == SHMK_KIND_ADOPTED_SHM) {
		shm_open_fn f = REAL(r_shm_open, shm_open_fn, "shm_open");
		if (!f) {
			errno = ENOSYS;
			return (k->fd = -1), false;
		}
		k->fd = f(k->name, oflag, k->mode);
		return k->fd >= 0;
	}
	sem_open_fn f = REAL(r_sem_open, sem_open_fn, "sem_open");
	if (!f) {
		errno = ENOSYS;
		return (k->sem = SEM_FAILED), false;
	}
	k->sem = oflag & O_CREAT ? f(k->name, oflag, k->mode, k->value)
				 : f(k->name, oflag);
	return k->sem != SEM_FAILED;
}

/* fstat, by the system call that does only that where there is one:
 * glibc's fstat is fstatat(fd, "", AT_EMPTY_PATH), which costs the kernel
 * a look at the empty path (a sixth of the call on x86-64). */
static int fd_stat(int fd, struct stat *st)
{
#if defined(__x86_64__) && defined(SYS_fstat)
	return (int)syscall(SYS_fstat, fd, st);
#else
	return fstat(fd, st);
#endif
}

/* Inode of what the call just made (0: cannot tell, and the entry stays
 * "intent").  A semaphore has no descriptor: its name is looked at right
 * after sem_open made it (a name unlinked and made again in between by
 * another process would be recorded with that inode). */
static uint64_t made_ino(const struct call *k)
{
	struct stat st;
	int rc = k->kind == SHMK_KIND_ADOPTED_SHM
			 ? fd_stat(k->fd, &st)
			 : fstatat(ctx->shm_fd, k->full + 1, &st,
				   AT_SYMLINK_NOFOLLOW);

	return rc == 0 ? (uint64_t)st.st_ino : 0;
}

/* sem_open(O_CREAT | O_EXCL) of k->full, made here rather than by glibc.
 * glibc writes the new semaphore into a file of a random name
 * ("sem.XXXXXX"), links it to the name and unlinks the first: a SIGKILL
 * in between leaves that file for ever, under a name nobody recorded and
 * nobody can tell from a semaphore of that name.  Here the temporary
 * name is ours ("sem.shmk-<pid>-<n>") and its intent recorded before it
 * is made, so a reaper removes it if we die; the bytes are those
 * sem_init() gives a process-shared semaphore (what glibc writes); the
 * link makes k->full, the unlink drops the temporary name, and glibc then
 * opens k->full for its handle (its own mapping, which sem_close() knows).
 * The caller holds ctx->mu and recorded the intent of k->full.  true, or
 * false with errno. */
static bool sem_create(struct call *k, int oflag)
{
	static _Atomic unsigned seq;
	char tmp[SHMK_SHM_NAME_MAX];
	struct shmk_rec_seg prev;
	struct stat made, now;
	sem_t init;
	int fd = -1, e;

	memset(&init, 0, sizeof init);
	if (sem_init(&init, 1, k->value) < 0) /* EINVAL past SEM_VALUE_MAX */
		return false;
	for (int tries = 0;; tries++) {
		snprintf(tmp, sizeof tmp, "/sem.shmk-%d-%u", (int)shmk__pid(),
			 atomic_fetch_add(&seq, 1));
		if (shmk__adopt_intent(ctx, tmp, SHMK_KIND_ADOPTED_SEM, &prev,
				       NULL) < 0)
			return call_real(k, oflag | O_EXCL); /* as before */
		fd = openat(ctx->shm_fd, tmp + 1,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    k->mode);
		if (fd >= 0)
			break;
		e = errno;
		shmk__adopt_undo(ctx, tmp, &prev);
		if (e != EEXIST || tries >= MAX_RETRIES)
			return errno = e, false;
	}
	e = -shmk__write_all(fd, &init, sizeof init, "shmk/preload/sem_write");
	if (!e && linkat(ctx->shm_fd, tmp + 1, ctx->shm_fd, k->full + 1, 0) < 0)
		e = errno;
	if (e) {
		(void)unlinkat(ctx->shm_fd, tmp + 1, 0);
		shmk__adopt_drop(ctx, tmp);
		close(fd);
		return errno = e, false;
	}
	if (fstat(fd, &made) < 0)
		made.st_ino = 0;
	(void)unlinkat(ctx->shm_fd, tmp + 1, 0);
	shmk__adopt_drop(ctx, tmp);
	close(fd);
	if (call_real(k, oflag & ~(O_CREAT | O_EXCL)))
		return true;
	/* No handle (out of descriptors or memory): as with glibc, no
	 * semaphore is left made - unless the name no longer holds ours
	 * (unlinked by another process, ENOENT, or made again since). */
	e = errno;
	if (made.st_ino &&
	    fstatat(ctx->shm_fd, k->full + 1, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == made.st_ino && now.st_dev == made.st_dev)
		(void)unlinkat(ctx->shm_fd, k->full + 1, 0);
	return errno = e, false;
}

/* The program's call: true on success (k->fd / k->sem), else errno is the
 * one the program gets. */
static bool create(struct call *k, int oflag)
{
	int saved = errno, rc, e;
	struct shmk_rec_seg prev, *ent;
	uint64_t ino;

	if ((rc = ready()) == 0) {
		errno = saved; /* a failed init() set it */
		return call_real(k, oflag);
	}
	if (rc < 0) {
		errno = -rc;
		return false;
	}
	pthread_mutex_lock(&ctx->mu);
	for (int tries = 0;; tries++) {
		if (!(oflag & O_EXCL)) {
			/* An existing object is opened, not created. */
			if (call_real(k, oflag & ~O_CREAT))
				goto done;
			if (errno != ENOENT || tries >= MAX_RETRIES) {
				e = errno;
				if (errno == ENOENT) /* others keep racing us */
					goto untracked;
				goto fail;
			}
		}
		if ((rc = shmk__adopt_intent(ctx, k->full, k->kind, &prev,
					     &ent)) < 0) {
			if (strict) {
				e = -rc;
				goto fail;
			}
			warn(shmk_last_error());
			goto untracked;
		}
		if (k->kind == SHMK_KIND_ADOPTED_SEM ? sem_create(k, oflag)
						      : call_real(k, oflag | O_EXCL)) {
			if ((ino = made_ino(k))) {
				shmk__adopt_live(ctx, ent, ino);
				if (k->kind == SHMK_KIND_ADOPTED_SHM &&
				    atomic_load(&reserve) && k->fd < TRACK_MAX)
					atomic_store(&fd_ino[k->fd], ino);
			}
			goto done;
		}
		e = errno;
		shmk__adopt_undo(ctx, k->full, &prev); /* nothing was made */
		if (e != EEXIST || (oflag & O_EXCL))
			goto fail;
		/* Made by another process since our first try: open it. */
	}
untracked:
	pthread_mutex_unlock(&ctx->mu);
	errno = saved;
	return call_real(k, oflag);
done:
	pthread_mutex_unlock(&ctx->mu);
	errno = saved;
	return true;
fail:
	pthread_mutex_unlock(&ctx->mu);
	errno = e;
	return false;
}

EXPORT int shm_open(const char *name, int oflag, mode_t mode)
{
	struct call k = {.kind = SHMK_KIND_ADOPTED_SHM, .name = name,
			 .mode = mode, .fd = -1};

	if (!(oflag & O_CREAT) || !adopt_name(name, k.kind, k.full)) {
		shm_open_fn f = REAL(r_shm_open, shm_open_fn, "shm_open");
		if (!f)
			return errno = ENOSYS, -1;
		return f(name, oflag, mode);
	}
	return create(&k, oflag) ? k.fd : -1;
}

EXPORT sem_t *sem_open(const char *name, int oflag, ...)
{
	struct call k = {.kind = SHMK_KIND_ADOPTED_SEM, .name = name,
			 .sem = SEM_FAILED};
	va_list ap;

	if (oflag & O_CREAT) {
		va_start(ap, oflag);
		k.mode = (mode_t)va_arg(ap, unsigned int);
		k.value = va_arg(ap, unsigned int);
		va_end(ap);
	}
	if (!(oflag & O_CREAT) || !adopt_name(name, k.kind, k.full))
		return call_real(&k, oflag) ? k.sem : SEM_FAILED;
	return create(&k, oflag) ? k.sem : SEM_FAILED;
}

/* ---- unlinking ----------------------------------------------------------- */

/* The program's unlink, then (if the name was one of ours) the drop. */
static int unlink_call(const char *name, enum shmk_seg_kind kind,
		       void *_Atomic *slot, const char *sym)
{
	unlink_fn f = REAL(*slot, unlink_fn, sym);
	char full[SHMK_SHM_NAME_MAX];
	shmk_ctx *c;
	int rc, e, saved = errno;

	if (!f)
		return errno = ENOSYS, -1;
	if (!(c = tracking()) || !adopt_name(name, kind, full))
		return f(name);
	pthread_mutex_lock(&c->mu);
	if (!shmk__adopt_mine(c)) { /* no owner, or a fork child's copy */
		pthread_mutex_unlock(&c->mu);
		return f(name);
	}
	rc = f(name);
	e = errno;
	/* The name holds our object no more, if it was ours. */
	if (rc == 0 || e == ENOENT)
		shmk__adopt_drop(c, full);
	pthread_mutex_unlock(&c->mu);
	errno = rc == 0 ? saved : e;
	return rc;
}

EXPORT int shm_unlink(const char *name)
{
	return unlink_call(name, SHMK_KIND_ADOPTED_SHM, &r_shm_unlink,
			   "shm_unlink");
}

EXPORT int sem_unlink(const char *name)
{
	return unlink_call(name, SHMK_KIND_ADOPTED_SEM, &r_sem_unlink,
			   "sem_unlink");
}

/* ---- SHMKEEPER_RESERVE: ftruncate reserves the pages ----------------------- */

/* fd was returned by a create of ours (and still names that object): a
 * size grown by ftruncate gets its pages now (posix_fallocate), so a full
 * tmpfs says ENOSPC here rather than SIGBUS at first touch; on failure the
 * old size is put back. */
static int reserve_truncate(ftruncate_fn f, int fd, off_t len)
{
	uint64_t ino = atomic_load(&fd_ino[fd]);
	int saved = errno, r;
	struct stat st;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != ino ||
	    st.st_dev != shm_dev) {
		atomic_store(&fd_ino[fd], 0); /* closed and reused */
		errno = saved;
		return f(fd, len);
	}
	if (f(fd, len) < 0)
		return -1;
	if (len > st.st_size &&
	    (r = posix_fallocate(fd, st.st_size, len - st.st_size)) != 0) {
		(void)f(fd, st.st_size);
		errno = r;
		return -1;
	}
	errno = saved;
	return 0;
}

EXPORT int ftruncate(int fd, off_t len)
{
	ftruncate_fn f = REAL(r_ftruncate, ftruncate_fn, "ftruncate");

	if (!f)
		return errno = ENOSYS, -1;
	if (!atomic_load_explicit(&reserve, memory_order_relaxed) || fd < 0 ||
	    fd >= TRACK_MAX ||
	    !atomic_load_explicit(&fd_ino[fd], memory_order_relaxed))
		return f(fd, len);
	return reserve_truncate(f, fd, len);
}

/* 64-bit glibc makes ftruncate64 the same function. */
EXPORT int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));
