/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the modules of libshmkeeper share.  Nothing here is
 * exported (the library is built with -fvisibility=hidden).
 */
#ifndef SHMK_INTERNAL_H
#define SHMK_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shmkeeper.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* libfiu failpoints: the macros compile to nothing unless FIU_ENABLE is
 * defined (the test build), so release builds carry no cost. */
#include <fiu.h>

/* A crash point: a failpoint whose only use is for a test to act there
 * (fiu_enable_external() with a callback that SIGKILLs the process), so
 * that crash tests can stop the protocol between any two steps.  Nothing
 * in release builds.  The names are listed in docs/DESIGN.md. */
#define SHMK_CRASHPOINT(name) ((void)fiu_fail("shmk/crash/" name))

/* System-call failpoints "shmk/sys/<call>" at every call site of one kind
 * (openat, openat2, write, fsync, rename, mkdir, shm_open, fallocate, mmap,
 * fcntl, fork, waitpid, malloc): a test fails the k-th call, once or always, with
 * the errno given as failinfo (EIO if none).  Nothing in release builds. */
int shmk__fiu_errno(void);
#define SHMK_SYS(name, call) \
	(fiu_fail("shmk/sys/" name) ? (errno = shmk__fiu_errno(), -1) : (call))
#define SHMK_SYSP(name, failval, call)                                  \
	(fiu_fail("shmk/sys/" name) ? (errno = shmk__fiu_errno(), (failval)) \
				    : (call))

#define SHMK_FORMAT "shmkeeper-record"
/* The highest version the parsers read.  The serialisers write the lowest
 * version that can say what the record holds: 1 when the owner's pid
 * namespace is unknown, 2 otherwise, and 3 for an owner that adopts names
 * (the preload: entries with a "kind"; shmk__fmt_header_open_adopt). */
#define SHMK_FORMAT_VERSION 3
#define SHMK_RECORD_MAX (32u << 20) /* refuse records larger than 32 MiB */
#define SHMK_JSON_DEPTH_MAX 8       /* our documents nest 3 deep */
#define SHMK_ID_MAX 64
#define SHMK_SHM_NAME_MAX 257 /* "/<file>" + NUL: "/<ns>.<name>", or an
				 adopted object's file name (NAME_MAX) */
#define SHMK_QUARANTINE "quarantine"
#define SHMK_DEFAULT_SHM_DIR "/dev/shm"
#define SHMK_DEFAULT_STRAY_AGE SHMK_REAP_DEFAULT_STRAY_AGE
/* Owner file suffixes (names.c makes and reads the names). */
#define SHMK_LOCK_SUFFIX ".lock"
#define SHMK_REC_SUFFIX ".jsonl"
/* The file that makes a directory a registry (dir.c): a name no namespace
 * ([A-Za-z0-9_-]) can have. */
#define SHMK_REGISTRY_MARKER ".shmkeeper-registry"
#define SHMK_REGISTRY_FORMAT "shmkeeper-registry"
#define SHMK_REGISTRY_VERSION 1

/* ---- error.c ----------------------------------------------------------- */
/* Sets the thread's error sentence and returns rc (a negative errno). */
/* binding.c: the rows shmk_layout() answers from; a row with field NULL
 * gives a struct's size and comes before its fields, which follow in
 * order.  Ends with a row whose type is NULL. */
struct shmk__layout {
	const char *type, *field;
	size_t offset, size;
};
extern const struct shmk__layout shmk__layouts[];

int shmk__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Close without clobbering errno; sets *fd to -1. */
void shmk__close(int *fd);

/* ---- names.c ----------------------------------------------------------- */
bool shmk__ns_ok(const char *ns);
bool shmk__segname_ok(const char *name);
/* Is full ("/<ns>.<name>" or "<ns>.<name>") a segment name of ns? */
bool shmk__fullname_in_ns(const char *full, const char *ns);
/* An owner id is exactly "p<pid>-<start time>-<8 lowercase hex>" (pid
 * 1..2^22 and start time in decimal without leading zeros): made by
 * shmk__owner_id_make() and nothing else passes shmk__owner_id_ok(). */
bool shmk__owner_id_ok(const char *id);
/* Writes the owner id of (pid, start time, random word): 0 or -EINVAL. */
int shmk__owner_id_make(pid_t pid, unsigned long long start, uint32_t rnd,
			char id[SHMK_ID_MAX]);
/* The files an owner <id> has in its namespace directory, and their names:
 * "<id>.lock", "<id>.jsonl", ".<id>.lock.tmp" (the lock file being
 * installed) and ".<id>.jsonl.tmp" (the record being rewritten by
 * shmk__replace()).  Only names of this grammar are ever read, removed or
 * quarantined in a registry (DESIGN.md, invariant 4). */
enum shmk_ofile {
	SHMK_OFILE_LOCK = 1,
	SHMK_OFILE_RECORD,
	SHMK_OFILE_LOCK_TMP,
	SHMK_OFILE_RECORD_TMP,
};
/* Writes the name of owner id's file of kind into buf: its length, or
 * -EINVAL (bad id or kind) / -ENAMETOOLONG (does not fit). */
int shmk__ofile_name(const char *id, enum shmk_ofile kind, char *buf,
		     size_t sz);
/* The inverse: is name an owner file?  If so, writes its owner id (and its
 * kind if kind is not NULL) and returns true. */
bool shmk__ofile_parse(const char *name, char id[SHMK_ID_MAX],
		       enum shmk_ofile *kind);
bool shmk__role_ok(const char *role);

/* What a record entry names (format 3).  A segment is "/<ns>.<name>" of
 * the record's namespace; an adopted object (the preload) is any POSIX
 * shared memory object or named semaphore a program created, recorded by
 * its file name in the shm directory: "/<file>", where <file> is 1 to 255
 * of the printable ASCII characters but '"', '\\' and '/', not starting
 * with '.', and for a semaphore "sem.<name>" (glibc's file for "/<name>").
 * They are not under the namespace's "<ns>." prefix, so they are never
 * strays of it. */
enum shmk_seg_kind {
	SHMK_KIND_SEGMENT = 0,
	SHMK_KIND_ADOPTED_SHM,
	SHMK_KIND_ADOPTED_SEM,
};
#define SHMK_ADOPTED_FILE_MAX 255 /* NAME_MAX */
/* The bytes of an adopted file name: printable ASCII but space, '"',
 * '/' and '\\'. */
extern const bool shmk__adopted_ch[256];
/* Is full ("/<file>") an adopted name of that kind (SHM: any adopted file
 * name, a semaphore's included, since both live in the shm directory)? */
bool shmk__adopted_name_ok(const char *full, enum shmk_seg_kind kind);
/* Is full a valid entry name of kind in namespace ns (segment: '/' and
 * shmk__fullname_in_ns)? */
bool shmk__recname_ok(const char *full, const char *ns,
		      enum shmk_seg_kind kind);
/* "segment", "adopted-shm", "adopted-sem"; and back (-1: none). */
const char *shmk__kind_name(enum shmk_seg_kind kind);
int shmk__kind_parse(const char *s);

/* ---- shmdir.c: the shm directory, a namespace's objects, the claim ------ */
/* Opens the shm directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC) without
 * following a symlink in any component, and refuses it unless it is
 * root-owned and sticky (/dev/shm) or ours and not group/world writable.
 * 0 with *out, or -ELOOP/-EPERM/-errno with the sentence set. */
int shmk__shmdir_open(const char *path, int *out);
/* Called for each object of ns; nonzero stops the listing and is returned
 * by shmk__ns_list().  name is the file name "<ns>.<x>" (no '/'); d_type
 * may be DT_UNKNOWN. */
typedef int (*shmk__ns_fn)(void *arg, const char *name, ino_t ino,
			   unsigned char d_type);
/* The one listing of a namespace's objects: fn for every entry of the shm
 * directory that is a segment name of ns by names.c's rule (so never the
 * claim object).  0, fn's nonzero value, or -errno (sentence set). */
int shmk__ns_list(int shmfd, const char *ns, shmk__ns_fn fn, void *arg);
/* Number and allocated size (st_blocks * 512) of ns's objects that are
 * regular files of ours (geteuid()): another user's objects, however
 * large their apparent size, count for nothing.  0 or -errno. */
struct shmk_inoset;
int shmk__ns_usage(int shmfd, const char *ns, uint64_t *count,
		   uint64_t *bytes, struct shmk_inoset *foreign);
/* A set of inode numbers: the other users' objects a caller of
 * shmk__ns_usage() has seen (may be NULL there: no cache).  Only a cache:
 * bounded, and a failed allocation just means a stat next time. */
struct shmk_inoset {
	uint64_t *v;
	size_t cap, used;
};
bool shmk__inoset_has(const struct shmk_inoset *s, uint64_t ino);
void shmk__inoset_add(struct shmk_inoset *s, uint64_t ino);
void shmk__inoset_free(struct shmk_inoset *s);

/* The claim object binding ns to one registry:
 * "<shm dir>/.shmkeeper-claim.<euid>.<ns>" (see shmdir.c). */
#define SHMK_CLAIM_PREFIX ".shmkeeper-claim."
/* Binds ns to the registry regfd (its path regpath): 0 if ns is now, or
 * already was, claimed by it (a stale claim, whose registry is gone, is
 * replaced); -EBUSY with the sentence naming the right registry if another
 * live registry holds it; 1 "unclaimed" if the claim cannot be made or
 * believed (another user's squat, unreadable, no O_TMPFILE): never an
 * error because of a co-tenant.  Other negative errno: regfd unusable. */
int shmk__claim_bind(int shmfd, const char *shm_path, const char *ns,
		     const char *regpath, int regfd);
/* What the claim says about ns and the registry regfd: 1 claimed by it,
 * 0 unclaimed/stale/unknown, -EBUSY claimed by another live registry (its
 * path written to other, the sentence set).  Never changes anything: a
 * reaper removes strays only on 1 and refuses the namespace on -EBUSY. */
int shmk__claim_check(int shmfd, const char *ns, int regfd, char *other,
		      size_t otherlen);

/* ---- monitor.c: what admit.c needs from a monitor ---------------------- */
/* The limits a monitor puts on creation (0: none). */
struct shmk__limits {
	uint64_t ns_bytes_hard, ns_bytes_soft, rss_hard, rss_soft;
};
void shmk__monitor_get_limits(shmk_monitor *m, struct shmk__limits *out);
/* RSS of the monitored process in bytes (0 if it cannot be read). */
uint64_t shmk__monitor_rss(shmk_monitor *m);

/* ---- dir.c ------------------------------------------------------------- */
/* Resolves the registry directory path (argument > env > default; the
 * order is in dir.c). */
int shmk__dir_resolve(const char *arg, char *out, size_t outsz);
/* The registry directory of user uid when neither an argument, nor
 * SHMKEEPER_DIR, nor XDG_RUNTIME_DIR says (and uid is not root): one no
 * other user can pre-create.  home: uid's home directory (NULL: none);
 * run_user: where the runtime directories are ("/run/user").  May create
 * <home>/.local and <home>/.local/state (0700).  Returns what snprintf()
 * returns for out. */
int shmk__dir_fallback(uid_t uid, const char *home, const char *run_user,
		       char *out, size_t outsz);
/* Opens (creating 0700 if create) directory name relative to atfd and
 * refuses it unless it is a real directory owned by us and not
 * group/world writable.  what/path name it in errors. */
int shmk__dir_open_secure(int atfd, const char *name, bool create,
			  const char *path_for_msg, int *out);
/*
 * Opens the registry root path (shmk__dir_open_secure: refused if a
 * symlink, not ours, group/world writable) and requires it to be a
 * registry: its SHMK_REGISTRY_MARKER valid (0), or the directory empty.
 * An empty directory is marked now, complete or not at all, except by a
 * reader (SHMK_REG_READ), which writes nothing and takes it as an empty
 * registry.  Refused with a sentence: unmarked and not empty -ENOTEMPTY;
 * marker a symlink -ELOOP, not ours -EPERM, not a regular file or not the
 * one JSON line -EINVAL, a newer version -EPROTONOSUPPORT.  Missing:
 * created 0700 with SHMK_REG_CREATE, else -ENOENT.  *out is the root's fd
 * (caller closes) or -1.
 */
/* Calls fn(arg, ns) for every entry of the registry root rootfd that may
 * be a namespace: a namespace's name (shmk__ns_ok) that is a directory, or
 * a symlink, listed so that the caller refuses it aloud
 * (shmk__dir_open_secure) rather than skip it in silence.  Unsorted.
 * Stops at fn's negative return and returns it; -errno with a sentence
 * naming path when the listing fails; else 0.  The one listing of a
 * registry's namespaces (reap, scan). */
int shmk__registry_list(int rootfd, const char *path,
			int (*fn)(void *arg, const char *ns), void *arg);
/* Removes the namespace directory ns of the registry rootfd if it is empty
 * and no context has it open (under an exclusive flock; a context holds a
 * shared one): a reaper's cleanup, so that an empty namespace is not
 * listed for ever.  1 if it removed it, 0 if not (not empty, open, gone,
 * refused: all fine). */
int shmk__ns_rmdir(int rootfd, const char *ns);
enum shmk_reg_mode {
	SHMK_REG_CREATE, /* shmk_open: make it if missing, mark it if empty */
	SHMK_REG_OPEN,   /* shmk_reap: never made, marked if empty           */
	SHMK_REG_READ,   /* shmk_registry_scan: writes nothing               */
};
int shmk__registry_open(const char *path, enum shmk_reg_mode mode, int *out);
/*
 * Marks the existing directory path as a registry if everything in it is
 * what shmkeeper writes: namespace directories holding owner files
 * (shmk__ofile_parse) and quarantine/ directories.  1 marked now, 0
 * already a registry, -ENOTEMPTY naming the first other entry, or another
 * -errno (-ENOENT: no such directory; a refused marker as above).
 */
int shmk__registry_adopt(const char *path);
/* Filesystem of fd is tmpfs or ramfs (no point in fsync). */
bool shmk__fd_is_volatile(int fd);

/* ---- atomic.c: the crash-safety protocol -------------------------------- */
/*
 * Replaces dirfd/name with exactly buf[0..len) so that at every instant the
 * name holds either the complete old content or the complete new one:
 * tmp file (O_EXCL|O_NOFOLLOW, 0600) in the same directory, full write,
 * fsync if durable, rename over name, fsync the directory if durable.
 * Any failure before the rename removes the tmp file and leaves name as it
 * was.  If keep_fd is not NULL the written file stays open (read-write,
 * O_APPEND, so mappable too) and is returned there, for appending to the
 * new version.
 */
int shmk__replace(int dirfd, const char *dirpath, const char *name,
		  const void *buf, size_t len, bool durable, int *keep_fd);
/*
 * Appends one complete line to an O_APPEND fd.  On failure the file may end
 * with a torn line: the caller must rewrite the file with shmk__replace()
 * before appending again (readers ignore a torn last line, which is the
 * "old version" of the document).
 */
int shmk__append(int fd, const char *path, const char *line, size_t len,
		 bool durable);
/* write(2) until done; failpoint names the step. */
int shmk__write_all(int fd, const void *buf, size_t len, const char *fp);

/* ---- proc.c: owner identity -------------------------------------------- */
struct shmk_ident {
	pid_t pid;
	unsigned long long start_time; /* clock ticks after boot (stat #22) */
	char boot_id[40];
	uid_t uid;
	uint64_t pidns; /* inode of the owner's pid namespace
			   (/proc/<pid>/ns/pid), 0 unknown (version-1 records) */
};
/* Identity of this process (cached per pid). */
int shmk__self_ident(struct shmk_ident *out);
/* Is the mounted /proc of our own pid namespace (so /proc/<pid> names the
 * pid that processes of our namespace recorded)?  Not after unshare --pid
 * without a new /proc mount. */
bool shmk__proc_is_ours(void);
/* Start time of pid: 0, -ENOENT if there is no such process, or -errno. */
int shmk__proc_start_time(pid_t pid, unsigned long long *out);
/* Is the process described by ident alive right now (same boot, pid, start
 * time)?  1 alive, 0 not (no such process, in a /proc of our pid
 * namespace), -1 cannot tell (/proc unreadable, not procfs, not ours). */
int shmk__ident_alive(const struct shmk_ident *id);
/* Does /proc show that process running right now?  For a caller to whom
 * "no" and "cannot tell" mean the same (a lock already proved it dead): no
 * statfs of /proc to tell them apart, one open of /proc/<pid>/stat. */
bool shmk__ident_running(const struct shmk_ident *id);
int64_t shmk__now(void);
int64_t shmk__mono_ms(void); /* CLOCK_MONOTONIC, milliseconds */
/* getpid(), cached (reset in fork children). */
pid_t shmk__pid(void);
/* Reads the small file dirfd/name (AT_FDCWD: a path) into buf, which it
 * NUL-terminates: bytes read (one read, at most sz - 1), or -errno. */
ssize_t shmk__read_small(int dirfd, const char *name, char *buf, size_t sz);

/* ---- unlink.c: the one place a segment name is removed ------------------ */
enum shmk_unlink_result {
	SHMK_UL_UNLINKED = 0, /* the owner's object was unlinked now        */
	SHMK_UL_GONE,         /* nothing under the name any more            */
	SHMK_UL_REPLACED,     /* the name holds another inode: not touched  */
	SHMK_UL_FOREIGN,      /* not a regular file of uid: not touched     */
	SHMK_UL_ERROR,        /* stat or unlink failed: req.error           */
};
#define SHMK_UL_DRY_RUN 0x1u /* decide, remove nothing, drop nothing */
struct shmk_unlink_req {
	int shmfd;
	const char *name;    /* "/<ns>.<x>" (or without the '/')            */
	uint64_t ino;        /* inode the owner recorded; 0: intent only    */
	uid_t uid;           /* whose objects may be removed                */
	unsigned flags;      /* SHMK_UL_*                                   */
	const char *fp;      /* failpoint name for the unlink (tests)       */
	int error;           /* out: negative errno for FOREIGN and ERROR   */
};
/* Unlinks q->name only if it still holds the owner's object, then (and
 * only then, and unless dry run) calls drop(arg) so the caller forgets the
 * entry: after UNLINKED, GONE and REPLACED.  st (may be NULL) receives the
 * object's stat when one was taken (st_size 0 otherwise). */
enum shmk_unlink_result shmk__seg_remove(struct shmk_unlink_req *q,
					 struct stat *st,
					 int (*drop)(void *arg), void *arg);
const char *shmk__unlink_result_name(enum shmk_unlink_result r);

/* ---- liveness.c: the one judge of an owner's life ---------------------- */
enum shmk_liveness {
	SHMK_LIVE_ALIVE = 1,
	SHMK_LIVE_DEAD,
	SHMK_LIVE_UNKNOWN, /* nothing proves either: keep, report, fail */
	SHMK_LIVE_GONE,    /* internal: the lock file vanished meanwhile */
};
struct shmk_judgement {
	enum shmk_liveness state;
	int error;      /* negative errno behind UNKNOWN (or a DEAD we cannot
			   act on: lock not held), else 0 */
	int lock_fd;    /* DEAD and asked to hold: the OFD-locked lock file,
			   owned by the caller (close it to let go); else -1 */
	pid_t holder;   /* ALIVE by an inspector's question: the lock holder */
	bool no_lock;   /* there is no lock file: judged by identity alone */
	bool other_reaper; /* the lock is held by another reaper (OFD lock) */
	char cause[256];
};
/*
 * Judges owner id of namespace directory nsfd.  rec_owner: the identity
 * from its record, if one could be read (NULL otherwise).  hold: take the
 * lock (a reaper: DEAD then comes with j->lock_fd, except when the lock
 * file cannot be opened for writing, j->error says why); otherwise only
 * ask (an inspector, disturbs nobody).  Never called for an owner that is
 * this very process (closing any fd of our own lock file drops our lock).
 * Returns j->state; never GONE when there is a record to judge by.
 */
enum shmk_liveness shmk__owner_judge(int nsfd, const char *id, uid_t uid,
				     const struct shmk_ident *rec_owner,
				     bool hold, struct shmk_judgement *j);
/* Judges again once the record could be read: by identity when there is
 * no lock file (j->no_lock), else the cross-check that a lock found free
 * belongs to a process that is really gone (closes j->lock_fd if not). */
enum shmk_liveness shmk__owner_recheck(const struct shmk_ident *rec_owner,
				       struct shmk_judgement *j);
const char *shmk__liveness_name(enum shmk_liveness l);

/* A child process closes every descriptor it inherited but 0, 1, 2 and
 * keep[0..n-1] (any order, at most SHMK_KEEP_MAX; below 3 or -1:
 * skipped): close_range, or one close() each before Linux 5.9.
 * Async-signal-safe (after a fork from a multithreaded process). */
#define SHMK_KEEP_MAX 8

/* Is the calling thread the process's only one, now?  From the kernel
 * (/proc/self/task), which also counts threads glibc did not make and no
 * longer counts those that ended; without /proc, glibc's
 * __libc_single_threaded (false once a thread was ever made, and in the
 * fork child of a process that had threads). */
bool shmk__one_thread(void);
void shmk__close_inherited(const int *keep, size_t n);

/* ---- arena.c: memory that lives exactly as long as one report -------- */
/* *arena starts NULL.  n bytes aligned to align (a power of two), or NULL
 * when out of memory; never moves; freed only all at once. */
void *shmk__arena_alloc(void **arena, size_t n, size_t align);
/* A copy of n bytes at p (NULL if n is 0 or no memory). */
char *shmk__arena_dup(void **arena, const void *p, size_t n, size_t align);
void shmk__arena_free(void **arena);

/* ---- table.c: name -> pointer hash table ------------------------------- */
struct shmk_table {
	size_t cap, used, tomb;
	struct shmk_slot {
		const char *key; /* NULL empty, SHMK_TOMB deleted */
		void *val;
	} *slots;
};
int shmk__table_init(struct shmk_table *t, size_t hint);
void shmk__table_free(struct shmk_table *t);
void *shmk__table_get(const struct shmk_table *t, const char *key);
/* key must stay valid while stored (it usually lives inside val). */
int shmk__table_put(struct shmk_table *t, const char *key, void *val);
/* As put, and *old is the value key had (NULL: none). */
int shmk__table_swap(struct shmk_table *t, const char *key, void *val,
		     void **old);
void *shmk__table_del(struct shmk_table *t, const char *key);
/* Iterate: for (size_t i = 0; (v = shmk__table_next(t, &i)); ) */
void *shmk__table_next(const struct shmk_table *t, size_t *it);

/* ---- the record: record_model.c (model, serialisers), record_slow.c and
 * record_fast.c (sibling parsers over the model), record_load.c (reading a
 * file with whichever parser fits; quarantine).  Format v2, v1 still read. */
enum shmk_seg_state { SHMK_SEG_INTENT = 1, SHMK_SEG_LIVE = 2 };

struct shmk_rec_seg {
	char name[SHMK_SHM_NAME_MAX]; /* "/<ns>.<name>" */
	uint64_t size;
	int64_t created;
	uint64_t ino; /* 0 while in intent */
	enum shmk_seg_state state;
	enum shmk_seg_kind kind; /* format 3; SEGMENT in versions 1 and 2 */
};

struct shmk_record {
	int version;
	char ns[SHMK_NS_MAX + 1];
	char id[SHMK_ID_MAX];
	struct shmk_ident owner;
	char role[SHMK_ROLE_MAX + 1];
	int64_t created;
	size_t n_segs;
	struct shmk_rec_seg **segs; /* owned */
	struct shmk_table index;    /* name -> seg */
	size_t n_ops;               /* journal lines after the header */
	bool torn;                  /* a torn last line was ignored */
};

/* Parses a whole record file.  On failure returns -EINVAL (or -ENOMEM)
 * and writes the reason to why.  rec is to be freed with
 * shmk__record_free() in both cases. */
int shmk__record_parse(const char *buf, size_t len, const char *expect_ns,
		       struct shmk_record *rec, char *why, size_t whylen);
/* The two halves of shmk__record_parse(), for the tests that hold them to
 * each other.  _fast (record_fast.c) reads only the exact bytes the
 * serialisers below write: 0 with the same result as _slow, -ENOMEM, or
 * -EAGAIN ("not my shape", rec freed and zeroed) for anything else,
 * valid or not.  _slow (cJSON) reads and judges any input. */
int shmk__record_parse_fast(const char *buf, size_t len, const char *expect_ns,
			    struct shmk_record *rec, char *why, size_t whylen);
int shmk__record_parse_slow(const char *buf, size_t len, const char *expect_ns,
			    struct shmk_record *rec, char *why, size_t whylen);
void shmk__record_free(struct shmk_record *rec);
/* Sorts rec->segs by name: both parsers leave the entries in this order. */
void shmk__record_sort(struct shmk_record *rec);
/* Reads dirfd/name (O_NOFOLLOW, size-capped, must be a regular file owned
 * by us) and parses it.  -ENOENT if missing; -EINVAL/-EPERM/-EFBIG/-ELOOP
 * with why set when it must be quarantined. */
int shmk__record_load(int dirfd, const char *name, const char *expect_ns,
		      struct shmk_record *rec, char *why, size_t whylen);

/* Serialisers; return the length written or -ENOBUFS/-ENOMEM. */
int shmk__fmt_header_open(char *buf, size_t sz, const char *ns,
			  const char *id, const struct shmk_ident *owner,
			  const char *role, int64_t created);
/* The same header as format 3, for an owner that adopts names (its pid
 * namespace then optional: absent when unknown). */
int shmk__fmt_header_open_adopt(char *buf, size_t sz, const char *ns,
				const char *id, const struct shmk_ident *owner,
				const char *role, int64_t created);
/* A snapshot entry; an adopted one (format 3) ends with its "kind". */
int shmk__fmt_seg(char *buf, size_t sz, const struct shmk_rec_seg *s);
int shmk__fmt_op_intent(char *buf, size_t sz, const char *name, uint64_t size,
			int64_t created);
/* The intent of an adopted name (format 3), ending with its kind.  The
 * preload writes size 0: an object is created empty, and its size is
 * whatever the name holds when it is reaped. */
int shmk__fmt_op_adopt(char *buf, size_t sz, const char *name, uint64_t size,
		       int64_t created, enum shmk_seg_kind kind);
int shmk__fmt_op_live(char *buf, size_t sz, const char *name, uint64_t ino);
int shmk__fmt_op_drop(char *buf, size_t sz, const char *name);

/* Loads nsfd/<id>.jsonl as shmk__record_load() does, owned by uid (the
 * caller's geteuid(), asked once per pass rather than once per file), and
 * also refuses a record whose owner id is not the one its file name says. */
int shmk__owner_record_load(int nsfd, const char *id, const char *ns,
			    uid_t uid, struct shmk_record *rec, char *why,
			    size_t whylen);

/* Moves dirfd/name into dirfd/quarantine/ (never deletes).  Writes the new
 * name to out if not NULL. */
int shmk__quarantine(int dirfd, const char *dirpath, const char *name,
		     char *out, size_t outsz);

/* ---- reap.c -------------------------------------------------------------- */
/* Reap one namespace directory; appends to report.  self: skip owners that
 * are this process. */
#define SHMK__REAP_QUIET 0x100u /* no items for live owners and reaped segments */
struct shmk_holders;
int shmk__reap_ns(int rootfd, const char *rootpath, const char *ns,
		  int shmfd, unsigned flags, unsigned min_age,
		  struct shmk_holders **holders, struct shmk_reap_report *rep);
/* Frees what a report holds (items, strings), not the report itself. */
void shmk__reap_report_clear(struct shmk_reap_report *rep);

/* ---- holders.c: who has shm objects open or mapped (fuser semantics) ---- */
/* One pass over /proc answers "who holds inode X of the shm filesystem" for
 * any number of X: a reaper scans once per pass, not once per object. */
struct shmk_holders; /* opaque; free with shmk__holders_free() */
#define SHMK_HELD_FD 1u  /* some process has an open descriptor to it */
#define SHMK_HELD_MAP 2u /* some process maps it */
/* Scans every /proc/<pid> once: its open descriptors (statx through the
 * /proc/<pid>/fd links: device and inode) and its mappings (the device
 * "MM:mm" and inode columns of /proc/<pid>/maps), remembering only what
 * lives on device dev.  Processes that exit meanwhile, zombies and kernel
 * threads are skipped.  A process whose fd directory or maps cannot be read
 * (EACCES, ...) is remembered as unreadable with its pid, effective uid and
 * errno; what was read of it before the failure is kept.  At most two
 * descriptors are open at any time.  Returns 0 and *out (caller owns it;
 * free with shmk__holders_free) or -errno with shmk__err() set and *out
 * NULL: -ENOMEM, -EMFILE/-ENFILE (our limits, not a process's fault), or
 * the error listing /proc. */
int shmk__holders_scan(dev_t dev, struct shmk_holders **out);
/* The scan runs in a child killed past this deadline (-ETIMEDOUT: who
 * holds what is unknown); $SHMKEEPER_HOLDERS_TIMEOUT_MS overrides it. */
#define SHMK_HOLDERS_TIMEOUT_MS 10000
void shmk__holders_free(struct shmk_holders *h); /* NULL is a no-op */
/* Pids holding inode ino (open fd or mapping), ascending, up to max written
 * to pids (may be NULL if max is 0); returns the total count (may exceed
 * max).  *how (if not NULL) gets the union of SHMK_HELD_FD/SHMK_HELD_MAP
 * over all holders (0 if none).  O(log n). */
size_t shmk__holders_of(const struct shmk_holders *h, ino_t ino, pid_t *pids,
			size_t max, unsigned *how);
/* Processes that could not be read: how many, and the i-th one's pid and
 * uid ((uid_t)-1 if unknown) through pid/uid (either may be NULL).
 * _unreadable_at returns the negative errno that stopped the reading
 * (e.g. -EACCES; always < 0), or -EINVAL with shmk__err() set if
 * i >= shmk__holders_unreadable(h). */
size_t shmk__holders_unreadable(const struct shmk_holders *h);
int shmk__holders_unreadable_at(const struct shmk_holders *h, size_t i,
				pid_t *pid, uid_t *uid);
/* Objects of the filesystem that some process maps but that have no name
 * any more (maps prints their path with " (deleted)"): how many distinct
 * inodes, sorted by inode; the i-th one's inode, highest byte mapped by
 * any process (offset + length: what the mappings pin, at least) and the
 * name it had (the path's last component, owned by h), or NULL if i is
 * out of range.  Its holders are those of its inode (shmk__holders_of). */
size_t shmk__holders_gone(const struct shmk_holders *h);
const char *shmk__holders_gone_at(const struct shmk_holders *h, size_t i,
				  ino_t *ino, uint64_t *extent);

#endif
