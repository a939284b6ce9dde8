/* SPDX-License-Identifier: MIT */
/*
 * shmkeeper.h - POSIX shared memory that cannot leak.
 *
 * Contract in brief
 *  - Every function returns 0 (or a count) on success and a negative errno
 *    value on failure.  The library never exits and never prints.
 *  - After a failure, shmk_last_error() returns a sentence, private to the
 *    calling thread, that names the object (file, segment, directory) and the
 *    cause.  It stays valid until the thread's next shmk_* call.
 *  - Every _create/_open has a _destroy/_close; passing NULL to those is a
 *    no-op.  Ownership of every returned pointer is stated next to the
 *    function.
 *  - Thread safety: one shmk_ctx may be used by many threads at once.
 *
 * Crash safety (see docs/DESIGN.md): the intent to create a segment is
 * recorded in the owner's registry record before the segment exists, a
 * record entry is dropped only after its segment is unlinked, and every
 * registry file is replaced atomically.  Each owning process holds an fcntl
 * lock on its own lock file for its whole life, so a reaper knows for sure
 * when an owner is dead; when it cannot tell (an unreadable lock file, an
 * owner of another pid namespace without one), the owner is "unknown" and
 * nothing of it is removed.  Nothing is ever unlinked that is not proven
 * garbage: only the inode an owner created, only a regular file of the
 * caller's uid, and never in a directory not proven to be a registry.
 */
#ifndef SHMKEEPER_H
#define SHMKEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHMK_API __attribute__((visibility("default")))
#else
#define SHMK_API
#endif

#define SHMK_VERSION_MAJOR 0
#define SHMK_VERSION_MINOR 1
#define SHMK_VERSION_PATCH 0
#define SHMK_VERSION_STRING "0.1.0"

/* Limits of names (see shmk_name_check()). */
#define SHMK_NS_MAX 32       /* namespace: [A-Za-z0-9_-]{1,32}               */
#define SHMK_SEGNAME_MAX 200 /* segment name after "<ns>.": [A-Za-z0-9_.-]  */
#define SHMK_ROLE_MAX 64     /* owner role label: [A-Za-z0-9 _.:@/+-]{0,64}  */

/* Version string of the library actually linked. */
SHMK_API const char *shmk_version(void);

/*
 * The sentence describing the calling thread's last failure, e.g.
 * "registry directory /run/x: refused: group or world writable (mode 0777)".
 * Never NULL; "" when nothing failed yet.  Owned by the library.
 */
SHMK_API const char *shmk_last_error(void);

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

/* 0 if ns is a valid namespace, else -EINVAL with shmk_last_error() set. */
SHMK_API int shmk_ns_check(const char *ns);
/* 0 if name is a valid segment name (the part after "<ns>."), else -EINVAL
 * or -ENAMETOOLONG.  Rejects "/", ".", "..", a leading '.', empty names and
 * any byte outside [A-Za-z0-9_.-]. */
SHMK_API int shmk_name_check(const char *name);

/* ------------------------------------------------------------------------ */
/* Opening a namespace                                                       */

typedef struct shmk_ctx shmk_ctx;

enum shmk_durability {
	/* The default, the same as OFF on every filesystem: the registry
	 * must survive the death of processes (nothing written to the page
	 * cache is lost by that), not power loss, which empties the tmpfs
	 * the segments live on anyway. */
	SHMK_DURABLE_AUTO = 0,
	SHMK_DURABLE_OFF = 1,  /* never fsync                                 */
	SHMK_DURABLE_ON = 2,   /* fsync files and the directory on each change */
};

/* shmk_options.flags */
#define SHMK_OPEN_NO_REAP 0x1u /* do not reap dead owners at open */
/* Pools of this context fork their spawner at their first replacement of a
 * worker, from the service, instead of at creation (see shmk_pool_create()):
 * a pool that never loses a worker starts and stops one process fewer.
 * For services that stay single-threaded: a pool created while the process
 * has more than one thread gets its spawner at creation all the same, and
 * a pool whose service has started a thread by its first replacement does
 * not fork (the fork could copy a lock another thread holds): it stops,
 * with that cause. */
#define SHMK_OPEN_LAZY_SPAWNER 0x2u

struct shmk_options {
	/* Registry directory (a relative path is made absolute).  NULL or "":
	 * $SHMKEEPER_DIR, else /run/shmkeeper for root, else
	 * $XDG_RUNTIME_DIR/shmkeeper (if absolute), else a directory no other
	 * user can create first: /run/user/<uid>/shmkeeper if that runtime
	 * directory is the caller's and not group/world writable, else
	 * <home>/.local/state/shmkeeper (home from the password database, not
	 * $HOME; missing parents made 0700; home and parents must be the
	 * caller's and not group/world writable), else /tmp/shmkeeper-<uid>,
	 * which is refused, never used, if another user made it.
	 * Created 0700 if missing; refused if it is a symlink, not owned by the
	 * caller, or group/world writable, and if it is not empty and carries
	 * no marker (-ENOTEMPTY; see shmk_registry_adopt()). */
	const char *dir;
	/* Namespace, required: every segment is named /<ns>.<name>. */
	const char *ns;
	/* Directory holding POSIX shm objects.  NULL: /dev/shm.  Only for
	 * tests and unusual hosts; every process of a namespace must agree.
	 * Opened without following a symlink in any component of its path
	 * (-ELOOP), and refused (-EPERM) unless it is root-owned and sticky
	 * (as /dev/shm is) or the caller's and not group/world writable. */
	const char *shm_dir;
	/* Role label shown by shmls (optional). */
	const char *role;
	enum shmk_durability durability;
	/* Namespace byte budget (0: none): a create that would take the
	 * namespace above it fails with -EDQUOT before anything is allocated.
	 * Only the caller's own objects (regular files of its euid) count, by
	 * the memory they take (allocated blocks), not their apparent size:
	 * another user's object in the namespace counts for nothing.  Costs a
	 * scan of the namespace's objects. */
	uint64_t budget_bytes;
	unsigned flags; /* SHMK_OPEN_* */
};

/*
 * Opens (creating if needed) the registry directory and the namespace, and
 * unless SHMK_OPEN_NO_REAP reaps segments of dead owners of the namespace.
 * Files of this process's own record are created lazily, at the first
 * segment it creates.  On success *out is owned by the caller: free with
 * shmk_close().
 *
 * A namespace belongs to one registry: the first open binds it with a claim
 * "<shm_dir>/.shmkeeper-claim.<euid>.<ns>" naming the registry (path,
 * device, inode).  Opening it with another registry while that one still
 * exists fails with -EBUSY and a sentence naming the right one ("use
 * --dir/SHMKEEPER_DIR=...").  A claim whose registry is gone is replaced; a
 * claim of another user, or one that cannot be read, is ignored (the
 * namespace is used unclaimed).  The claim is never removed.
 * The context holds the namespace directory (a shared flock) as long as it
 * is open, so that a reaper never removes it as empty (see shmk_reap()).
 * Errors besides the usual: -ENOTEMPTY the directory is not a registry
 * (not empty, no marker), -EPROTONOSUPPORT a marker of a newer version,
 * -EBUSY the namespace is bound to another registry, -ELOOP/-EPERM a
 * refused registry or shm directory, -EAGAIN a reaper has held the
 * namespace directory for a second (stopped while removing it).
 */
SHMK_API int shmk_open(const struct shmk_options *opt, shmk_ctx **out);

/*
 * Destroys every segment this process still owns in ctx (unlink, then drop
 * the record; as in shmk_segment_destroy(), only the object this process
 * created is unlinked), removes the process's record and lock file, and
 * frees ctx.
 * Handles of segments from ctx must not be used afterwards, except to
 * release them with shmk_segment_detach(), which touches only the handle
 * and its mapping (a mapping stays valid after the close: the memory of an
 * unlinked segment lives until its last mapping goes).  In a fork child that inherited ctx, only the child's own
 * segments are destroyed; the parent's are left alone.  NULL is a no-op.
 * Returns 0 or the first error met (the rest is still done).
 */
SHMK_API int shmk_close(shmk_ctx *ctx);

/*
 * A registry directory carries a marker, ".shmkeeper-registry", written
 * when shmk_open() (or shmk_reap(), shmclean) first opens it while it is
 * empty; shmk_registry_scan() and shmls write nothing, and take an empty
 * directory for an empty registry.  A directory that is not empty and has no marker is refused
 * by all of them (-ENOTEMPTY): nothing in it is ever read, removed or
 * quarantined.  Registries made by pre-release builds (before the marker existed) have no marker and are
 * adopted explicitly, with this function or "shmclean --adopt".
 *
 * Marks dir (NULL: resolved as for shmk_open(); never created) as a
 * registry if every entry in it is what shmkeeper writes: namespace
 * directories holding only owner files ("<id>.lock", "<id>.jsonl" and
 * their ".<...>.tmp" files, <id> as the library makes them) and
 * "quarantine" directories.  Returns 1 if it marked dir, 0 if dir already
 * was a registry, -ENOTEMPTY (the sentence names the first other entry)
 * and nothing written, or another negative errno: -ENOENT no such
 * directory, -ELOOP/-EPERM/-ENOTDIR a refused directory, -EINVAL a marker
 * that is not ours, -EPROTONOSUPPORT a marker of a newer version.
 */
SHMK_API int shmk_registry_adopt(const char *dir);

/* Path of the registry directory and of the namespace directory in use.
 * Owned by ctx. */
SHMK_API const char *shmk_dir(const shmk_ctx *ctx);
SHMK_API const char *shmk_ns(const shmk_ctx *ctx);

/* Number of segments this process currently owns in ctx. */
SHMK_API size_t shmk_owned_count(shmk_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Segments                                                                  */

typedef struct shmk_segment shmk_segment;

/*
 * Creates segment /<ns>.<name> of size bytes (> 0), reserves its memory
 * (a full /dev/shm fails here with -ENOSPC, never later with SIGBUS) and maps
 * it read-write.  The memory is zero-filled.  Fails with -EEXIST if the name
 * exists (never adopts a pre-created object), -EDQUOT over the budget.
 * On success *out is owned by the caller; release with
 * shmk_segment_destroy() or shmk_segment_detach().
 */
SHMK_API int shmk_segment_create(shmk_ctx *ctx, const char *name, size_t size,
				 shmk_segment **out);

/*
 * Maps an existing segment /<ns>.<name> (created by any process of the same
 * user) read-write.  The handle does not own the segment: destroying it
 * fails with -EPERM.  *out is owned by the caller: release with
 * shmk_segment_detach().
 */
SHMK_API int shmk_segment_attach(shmk_ctx *ctx, const char *name,
				 shmk_segment **out);

/* Unmaps and frees the handle; the segment itself lives on (an owned one is
 * still destroyed by shmk_close()).  Uses nothing but the handle: it may be
 * called after shmk_close() of the handle's context.  NULL is a no-op. */
SHMK_API void shmk_segment_detach(shmk_segment *seg);

/*
 * Unlinks the segment, then drops it from the record, then unmaps and frees
 * the handle (always freed, even on error).  Only the process that created
 * it may destroy it (-EPERM otherwise, e.g. in a fork child).  NULL: no-op.
 * Only the inode this process created is unlinked: if the name was removed
 * behind its back and now holds another object (someone else's segment of
 * the same name), that object is left alone and the destroy succeeds (ours
 * is gone).  -EPERM if our inode under the name is no longer a regular file
 * of ours.  One race remains: Linux cannot unlink "this inode under this
 * name", so a process of the same uid replacing the name between our check
 * and the unlink (one system call) would lose its object.
 */
SHMK_API int shmk_segment_destroy(shmk_segment *seg);

/* Destroys the owned segment <name> by name (for owners that dropped the
 * handle with shmk_segment_detach()). -ENOENT if this process owns none. */
SHMK_API int shmk_segment_destroy_name(shmk_ctx *ctx, const char *name);

SHMK_API void *shmk_segment_addr(const shmk_segment *seg);
SHMK_API size_t shmk_segment_size(const shmk_segment *seg);
/* The POSIX name, "/<ns>.<name>".  Owned by seg. */
SHMK_API const char *shmk_segment_name(const shmk_segment *seg);

/* ------------------------------------------------------------------------ */
/* Reaping                                                                   */

enum shmk_reap_action {
	SHMK_REAP_OWNER_DEAD = 1,    /* owner dead: its segments were reaped  */
	SHMK_REAP_OWNER_ALIVE,       /* owner alive: left alone               */
	SHMK_REAP_SEGMENT_REAPED,    /* segment of a dead owner unlinked      */
	SHMK_REAP_SEGMENT_GONE,      /* segment of a dead owner already gone  */
	SHMK_REAP_SEGMENT_LIVE,      /* segment of a live owner, untouched    */
	SHMK_REAP_STRAY_KEPT,        /* prefix match with no record: reported */
	SHMK_REAP_STRAY_REMOVED,     /* stray unlinked on request             */
	SHMK_REAP_RECORD_QUARANTINED,/* bad record moved to quarantine/       */
	SHMK_REAP_ERROR,             /* could not act; see reason             */
	SHMK_REAP_OWNER_UNKNOWN,     /* liveness cannot be established: kept  */
	SHMK_REAP_SEGMENT_KEPT,      /* segment of an unknown owner: kept     */
};
/* An owner is alive (its lock is held), dead (its lock could be taken, or
 * without a lock file: an earlier boot, or a process gone in the pid
 * namespace the record names, which must be ours), or unknown: anything in
 * the way of that proof (a lock file that cannot be opened or tested, one
 * that is not a regular file of ours, no lock file and another or an
 * unrecorded pid namespace).  Unknown is never taken for alive or dead:
 * the owner is reported (OWNER_UNKNOWN, with the cause as reason and
 * error), its segments are kept (SEGMENT_KEPT) and the reap returns -EIO.
 * A dead owner whose lock file cannot be opened for writing (a read-only
 * registry) is an ERROR item, and nothing of it is removed. */

/* shmk_reap_options.flags */
#define SHMK_REAP_DRY_RUN 0x1u     /* report what would be done, change nothing */
/* Unlink strays, objects "<ns>.*" that no record names, but only when the
 * namespace's claim names this registry, every record of the namespace
 * could be read, the object is a regular file of ours, at least
 * stray_min_age old, and no process holds it (needs the holders pass: never
 * with SHMK_REAP_NO_HOLDERS).  Otherwise a stray is reported, kept. */
#define SHMK_REAP_STRAYS 0x2u
#define SHMK_REAP_NO_STRAYS 0x4u   /* do not even scan for strays               */
#define SHMK_REAP_ANY_AGE 0x8u     /* stray_min_age is taken as is, 0 included  */
/* Do not look through /proc for the processes that still hold (have open
 * or mapped) each segment: items then name no holders, every unlinked byte
 * counts as reaped, and no stray is ever removed (nothing proves it
 * unused).  For callers that only want the segments gone, fast. */
#define SHMK_REAP_NO_HOLDERS 0x10u

#define SHMK_REAP_DEFAULT_STRAY_AGE 60 /* seconds */

struct shmk_reap_options {
	const char *dir;     /* as in shmk_options; NULL: default resolution */
	const char *ns;      /* NULL: every namespace under dir              */
	const char *shm_dir; /* NULL: /dev/shm                               */
	unsigned flags;      /* SHMK_REAP_*                                  */
	/* A stray younger than this (seconds, by ctime) is never unlinked.
	 * 0 means SHMK_REAP_DEFAULT_STRAY_AGE, unless flags has
	 * SHMK_REAP_ANY_AGE. */
	unsigned stray_min_age;
};

/* One thing found and what was done.  The strings are owned by the report
 * (freed by shmk_reap_report_free()); never NULL. */
struct shmk_reap_item {
	enum shmk_reap_action action;
	const char *ns;
	const char *owner;  /* owner id ("" for strays)                     */
	pid_t pid;          /* owner pid from the record (0 if unknown)     */
	const char *object; /* segment name or registry file                */
	uint64_t bytes;     /* segment size (0 if unknown)                  */
	int error;          /* negative errno for ERROR, QUARANTINED and
			       OWNER_UNKNOWN (the cause), else 0          */
	const char *reason; /* why, in words                                */
	/* Processes that have the segment open or mapped, as one pass over
	 * /proc saw them (fuser semantics: processes this caller cannot
	 * inspect are not seen).  A reaped segment's memory is freed only
	 * when they let go.  Owned by the report; NULL when n_holders is 0. */
	size_t n_holders;
	const pid_t *holders;
};

struct shmk_reap_report {
	size_t n_items;
	struct shmk_reap_item *items;
	/* Totals. */
	size_t owners_dead, owners_alive;
	size_t segments_reaped, segments_gone, segments_live;
	size_t strays_kept, strays_removed;
	size_t quarantined, errors;
	/* bytes_reaped: only of reaped segments that nothing holds any more
	 * (the rest is in bytes_held). */
	uint64_t bytes_reaped, bytes_live, bytes_strays;
	void *strings_; /* private: where the items' strings live */
	/* Owners whose liveness could not be established (unreadable lock
	 * file, read-only registry, another pid namespace, ...): nothing of
	 * theirs was removed; each has an item saying why.  Makes the reap
	 * return -EIO, like errors. */
	size_t owners_unknown, segments_kept;
	uint64_t bytes_kept;
	/* Segments unlinked while some process still held them: their bytes
	 * are not in bytes_reaped (nothing is freed until the holders let
	 * go), but here. */
	size_t segments_held;
	uint64_t bytes_held;
};

/*
 * Reaps dead owners' segments of one namespace (opt->ns) or of every
 * namespace under the registry directory.  Live owners are skipped without
 * blocking; owners of unknown liveness are reported and left alone.  Safe
 * to run concurrently with itself and with live services.  A bad record is
 * quarantined (renamed into <ns>/quarantine/) and never used as grounds to
 * unlink anything.  A directory that is not a registry (not empty, no
 * marker) is refused with -ENOTEMPTY and nothing in it is read.
 * A namespace whose claim names another registry that still exists is not
 * reaped at all: an ERROR item (error -EBUSY) whose reason names the right
 * registry.  A namespace directory left empty is removed (not with
 * SHMK_REAP_DRY_RUN), so that it is not listed for ever: only if no
 * context has the namespace open, the reap looked for strays
 * (not SHMK_REAP_NO_STRAYS) and nothing of the namespace was left (no
 * stray kept, no error, no owner of unknown liveness); a quarantine
 * directory or any other file keeps it.
 * Unless SHMK_REAP_NO_HOLDERS, one pass over /proc names the
 * processes that still hold each reaped, live, kept segment and stray.
 * Returns 0 when everything found was handled, -EIO when some record was
 * quarantined, some object could not be handled or some owner's liveness
 * could not be established (the report says which), -EBUSY (with the
 * report) when the one namespace asked for is bound to another registry,
 * or another negative errno when the reap could not run at all.
 * If report is not NULL, *report receives a report owned by the caller (free
 * it with shmk_reap_report_free()), also on -EIO.
 */
SHMK_API int shmk_reap(const struct shmk_reap_options *opt,
		       struct shmk_reap_report **report);
SHMK_API void shmk_reap_report_free(struct shmk_reap_report *report);
/* "owner-dead", "owner-alive", "reaped", "already-gone", "live",
 * "stray-kept", "stray-removed", "quarantined", "error", "owner-unknown",
 * "kept" (static string). */
SHMK_API const char *shmk_reap_action_name(enum shmk_reap_action a);


/* ------------------------------------------------------------------------ */
/* Inspecting                                                                */
/*
 * shmk_registry_scan() reads a registry the way shmls shows it, and changes
 * nothing: it takes no lock (liveness is asked, never taken), writes,
 * renames and unlinks nothing, and reports a bad record instead of
 * quarantining it.  Liveness comes from the same judge shmk_reap() uses, so
 * the two cannot disagree: an owner is alive, dead, or unknown with a
 * cause, and unknown is never taken for either.
 */
enum shmk_owner_state {
	SHMK_OWNER_UNKNOWN = 0, /* nothing proves alive or dead: see note  */
	SHMK_OWNER_ALIVE,
	SHMK_OWNER_DEAD,
};
enum shmk_lock_state {
	SHMK_LOCK_MISSING = 0, /* no lock file (any more)                  */
	SHMK_LOCK_FREE,        /* nobody holds it                          */
	SHMK_LOCK_HELD,        /* a process holds its lock: the owner      */
	SHMK_LOCK_REAPER,      /* a reaper has taken it                    */
	SHMK_LOCK_BAD,         /* cannot be opened or tested, or not a
				  regular file of ours                     */
};
enum shmk_record_state {
	SHMK_RECORD_MISSING = 0, /* no record file                         */
	SHMK_RECORD_OK,
	SHMK_RECORD_BAD,         /* unreadable: shmk_reap() quarantines it
				    once the owner is dead                */
};

/* Who has an object open or mapped (one pass over /proc, fuser semantics:
 * processes the caller cannot inspect are not seen). */
#define SHMK_HELD_OPEN 0x1u
#define SHMK_HELD_MAPPED 0x2u

struct shmk_scan_segment {
	const char *name;     /* "/<ns>.<name>"                            */
	uint64_t size;
	int intent;           /* recorded before creation, never confirmed */
	int64_t created;      /* unix seconds                              */
	int present;          /* an object of that name exists             */
	uint64_t ino;         /* its inode (0 if none)                     */
	size_t n_holders;     /* processes holding it (pids below)         */
	const pid_t *holders;
	unsigned held;        /* SHMK_HELD_OPEN | SHMK_HELD_MAPPED          */
	/* "segment" (made by shmk_segment_create: name "/<ns>.<name>"), or
	 * an object a program created under the preload library, adopted
	 * under its own name: "adopted-shm", "adopted-sem" (static). */
	const char *kind;
};

struct shmk_scan_owner {
	const char *id;
	pid_t pid;            /* from the record, else the lock holder; 0 unknown */
	enum shmk_owner_state state;
	int error;            /* negative errno behind UNKNOWN, else 0     */
	const char *note;     /* the judge's cause or a remark; NULL if none */
	enum shmk_lock_state lock;
	pid_t lock_holder;    /* LOCK_HELD: the holder, if known, else 0   */
	enum shmk_record_state record;
	const char *record_error; /* RECORD_BAD: path and reason; else NULL */
	/* From the record (RECORD_OK); zero or "" otherwise. */
	unsigned long long start_time; /* clock ticks after boot            */
	int64_t started;      /* unix seconds, 0 if not of this boot       */
	const char *boot_id;
	uid_t uid;
	const char *role;
	int64_t created;
	size_t n_segments;
	const struct shmk_scan_segment *segments;
};

struct shmk_scan_stray {
	const char *name;     /* "/<ns>.<rest>": no record names it        */
	uint64_t size;
	int64_t ctime;
	uid_t uid;
	int regular;          /* a regular file (else something odd)       */
	uint64_t ino;
	size_t n_holders;
	const pid_t *holders;
	unsigned held;
};

/* An object of the namespace (by name: "/<ns>.*") that has no name in the
 * shm directory any more but that some process still maps: unlinked (by a
 * reaper, its owner or anyone) while in use, its memory is freed only when
 * the last mapping goes.  Seen in the holders pass (maps prints its path
 * with " (deleted)"), so only with that pass, and only through mappings
 * (not an object held by a descriptor alone). */
struct shmk_scan_unlinked {
	const char *name;     /* "/<ns>.<rest>": the name it had           */
	uint64_t ino;
	uint64_t size;        /* highest byte mapped (offset + length, the
				 largest of all mappings): what they pin,
				 at least                                  */
	size_t n_holders;     /* processes holding it                      */
	const pid_t *holders;
	unsigned held;        /* SHMK_HELD_MAPPED, | SHMK_HELD_OPEN         */
};

struct shmk_scan_ns {
	const char *ns;
	const char *path;     /* the namespace directory                   */
	int exists;           /* the directory exists                      */
	const char *error;    /* NULL, or why it could not be read         */
	int error_code;       /* negative errno with error, else 0         */
	size_t n_owners;      /* sorted by id                              */
	const struct shmk_scan_owner *owners;
	int strays_scanned;   /* SHMK_SCAN_STRAYS and the records were read */
	size_t n_strays;      /* sorted by name                            */
	const struct shmk_scan_stray *strays;
	size_t quarantined;   /* files in <ns>/quarantine/                 */
	size_t n_unlinked;    /* sorted by inode; 0 without the holders pass */
	const struct shmk_scan_unlinked *unlinked;
};

struct shmk_scan {
	const char *registry; /* the directory, resolved                    */
	int exists;           /* 0: no registry yet (nothing registered)   */
	const char *shm_dir;
	int64_t now;          /* unix seconds when the scan started        */
	size_t n_ns;          /* sorted by name                            */
	const struct shmk_scan_ns *ns;
	const char *holders_error; /* NULL, or why holders are not known  */
	void *private_;
};

/* shmk_scan_options.flags */
#define SHMK_SCAN_STRAYS 0x1u     /* also list "<ns>.*" objects no record names */
#define SHMK_SCAN_NO_HOLDERS 0x2u /* no pass over /proc: no holders        */
#define SHMK_SCAN_NAMES_ONLY 0x4u /* only the namespaces' names: nothing in
				     them is read (every ns has exists = 1) */

struct shmk_scan_options {
	const char *dir;      /* as in shmk_options; NULL: default resolution */
	const char *ns;       /* NULL: every namespace under dir            */
	const char *shm_dir;  /* NULL: /dev/shm                              */
	unsigned flags;       /* SHMK_SCAN_*                                 */
};

/*
 * Reads the registry (one namespace, or every one) into *out, owned by the
 * caller (free with shmk_scan_free()).  A namespace that cannot be read is
 * not fatal: its error says why.  Returns 0, or a negative errno (and *out
 * NULL) when nothing could be read: the directory cannot be resolved, the
 * registry or the shm directory is refused (-ENOTEMPTY not a registry,
 * -ELOOP/-EPERM a symlink or someone else's directory), -ENOMEM.  A
 * registry that does not exist is not an error (exists = 0).
 */
SHMK_API int shmk_registry_scan(const struct shmk_scan_options *opt,
				struct shmk_scan **out);
SHMK_API void shmk_scan_free(struct shmk_scan *scan); /* NULL is a no-op */
/* "unknown", "alive", "dead"; "missing", "free", "held", "reaper", "bad";
 * "missing", "ok", "bad" (static strings). */
SHMK_API const char *shmk_owner_state_name(enum shmk_owner_state s);
SHMK_API const char *shmk_lock_state_name(enum shmk_lock_state s);
SHMK_API const char *shmk_record_state_name(enum shmk_record_state s);

/* The registry directory dir resolves to (NULL: $SHMKEEPER_DIR, then the
 * defaults of shmk_options.dir), absolute, into buf.  Creates nothing.
 * 0, -ENAMETOOLONG, or -ENOENT when no default applies. */
SHMK_API int shmk_registry_path(const char *dir, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Worker pool                                                               */
/*
 * Model (see docs/DESIGN.md, "Worker pool"): shmk_pool_create() forks the
 * workers itself (they are the service's children) and starts no thread;
 * worker 0 forks the spawner, a single-threaded process (also the
 * service's child) that forks replacement workers from its copy of the
 * service as it was at creation - never from the service as it is when a
 * worker dies.  (With SHMK_OPEN_LAZY_SPAWNER, a pool created by a service
 * with one thread forks its spawner from the service at the first
 * replacement, only if the service still has one thread.)  Each worker
 * serves one slot: a shared-memory segment
 * created through the registry (owned by the calling process, so a crash of
 * the whole service leaves records the next open reaps).  A caller leases a
 * slot, writes input into its memory, runs the job and reads the result from
 * the same memory.  The job path is caller <-> worker through the slot's
 * memory and futexes.  A worker's death is an event: the kernel marks its
 * robust futex words and wakes the caller waiting on them; the caller that
 * sees it reaps, classifies and reports it, and asks the spawner for a
 * replacement.  A worker that dies idle is seen by the next call that looks
 * at its slot.
 */

typedef struct shmk_pool shmk_pool;

/* Runs in a worker for each job: mem/size is the slot's memory; the return
 * value is handed to the caller as the job's result.
 *
 * Fork safety: a worker is a fork of the service by the thread that calls
 * shmk_pool_create() (a replacement is a fork of the spawner, a copy of the
 * service at that moment; a lazy spawner is a copy of the one-thread
 * service at the first replacement).  What the job function may rely on is what was
 * consistent in the service at that moment.  If the service had one thread when it created the pool,
 * anything goes.  If it had more, a lock another thread held at that moment
 * (a mutex, stdio, an interpreter's global lock, a logging library's lock)
 * stays locked for ever in the workers: the job function must then use
 * only async-signal-safe functions (signal-safety(7)) and memory it does
 * not share with those threads - or the pool must be created before those
 * threads start.  (glibc keeps malloc() usable after fork.)  A job that
 * blocks on such a lock is ended by the job deadline.  A job function must
 * not use robust or priority-inheritance mutexes (a worker registers its
 * own robust futex list; in a replacement glibc's cached thread id is the
 * spawner's).  Workers hold only the descriptors 0, 1 and 2 of the service
 * (see shmk_pool_create()). */
typedef int (*shmk_job_fn)(void *mem, size_t size, void *arg);

enum shmk_lease_policy {
	SHMK_LEASE_DEFAULT = 0,  /* the pool's policy (in options: FAIL)     */
	SHMK_LEASE_FAIL,         /* no free slot: -EAGAIN at once            */
	SHMK_LEASE_WAIT,         /* wait as long as it takes (backpressure)  */
	SHMK_LEASE_DEADLINE,     /* wait up to timeout_ms, then -ETIMEDOUT   */
};

enum shmk_reinit {
	SHMK_REINIT_ZERO = 0, /* zero the slot's memory after a death (default) */
	SHMK_REINIT_KEEP,     /* leave it as the dead worker left it           */
	SHMK_REINIT_RECREATE, /* give the pages back and reserve fresh ones    */
};

struct shmk_pool_options {
	unsigned workers;          /* default 3                               */
	size_t slot_size;          /* bytes of each slot (default 1 MiB)      */
	shmk_job_fn fn;            /* required                                */
	void *arg;                 /* passed to fn                            */
	enum shmk_lease_policy lease_policy; /* default SHMK_LEASE_FAIL       */
	unsigned lease_timeout_ms; /* for SHMK_LEASE_DEADLINE (default 1000)  */
	enum shmk_reinit reinit;
	unsigned backoff_min_ms;   /* first restart delay (default 10)        */
	unsigned backoff_max_ms;   /* ceiling (default 2000)                  */
	unsigned quarantine_deaths;/* K deaths ...  (default 5)               */
	unsigned quarantine_window_ms; /* ... within this window (10000)      */
	unsigned shutdown_grace_ms;/* destroy: running jobs, then SIGTERM,
				      then SIGKILL, in one grace (2000)     */
	const char *title;         /* process titles "<title>: worker 3" (over
				      the child's own argv; NULL: none, the
				      kernel name "shmk-worker3" always)     */
	unsigned start_timeout_ms; /* create fails if the workers are not all
				      ready by then (default 10000)          */
	unsigned job_timeout_ms;   /* job deadline of shmk_pool_run()
				      (default 60000; SHMK_POOL_NO_DEADLINE:
				      none)                                   */
};

/* As a job deadline: wait as long as the job takes. */
#define SHMK_POOL_NO_DEADLINE (~0u)

enum shmk_death_kind {
	SHMK_DEATH_NONE = 0,
	SHMK_DEATH_EXIT_CLEAN,  /* exit(0)                                 */
	SHMK_DEATH_EXIT_CODE,   /* exit(n), n != 0                          */
	SHMK_DEATH_SIGNAL,      /* killed by a signal other than SIGKILL    */
	SHMK_DEATH_SIGKILL,     /* SIGKILL, and no OOM kill was counted     */
	SHMK_DEATH_OOM,         /* SIGKILL and the cgroup's oom_kill rose   */
	SHMK_DEATH_TIMEOUT,     /* SIGKILLed by the pool: its job passed its
				   deadline                                */
	SHMK_DEATH_UNKNOWN,     /* the service reaped the worker itself (a
				   SIGCHLD handler calling waitpid(-1), or
				   SIGCHLD set to SIG_IGN): how it died is
				   not known                               */
};

struct shmk_death {
	enum shmk_death_kind kind;
	unsigned slot;
	pid_t pid;
	int exit_code;           /* for EXIT_*                               */
	int signal;              /* for SIGNAL, SIGKILL, OOM                 */
	int core_dumped;
	uint64_t peak_rss;       /* bytes, from wait4() rusage               */
	uint64_t mem_limit;      /* bytes in force (cgroup or RLIMIT_AS), 0 none */
	const char *limit_source;/* "cgroup2 memory.max", "cgroup1 ...", "RLIMIT_AS", "" */
	uint64_t suggested_limit;/* 150 % of the limit when peak >= 95 %, else 0 */
	uint64_t oom_kills;      /* oom_kill counter rise seen at this death */
	const char *oom_source;  /* "cgroup2", "cgroup1", or "" if unavailable */
	unsigned deaths_in_window;
	int quarantined;         /* this death quarantined the slot          */
	int64_t when;            /* unix seconds                             */
	int reinit_errno;        /* the slot's memory could not be reserved
				    again after this death (SHMK_REINIT_RECREATE
				    on a full tmpfs: ENOSPC): the slot is
				    quarantined; 0 otherwise                 */
};

/*
 * Creates the slots (segments /<ns>.pool-<pid>-<n>-<16 random hex>-slot<i>
 * and a "-ctl" segment, through ctx; the random part keeps the names from
 * being pre-created), forks the workers (from the calling thread; worker
 * 0 forks the spawner, unless SHMK_OPEN_LAZY_SPAWNER and one thread: then
 * the first replacement forks it), and returns when every worker is
 * ready.
 * ctx must outlive the pool.  *out is owned by the caller: free with
 * shmk_pool_destroy().
 *
 * The spawner and the workers close every descriptor they did not create,
 * except 0, 1 and 2: a socket, pipe or file of the service that lacks
 * O_CLOEXEC is not held open by the pool (EOF on a pipe whose write end the
 * service closes still comes).
 *
 * A start failure of a worker (a fork, a prctl, set_robust_list, worker 0's
 * fork of the spawner) fails the call with that errno and a sentence naming
 * the failing call in shmk_last_error(); -ETIMEDOUT if the workers are not
 * all ready within start_timeout_ms, -ECHILD if a worker died while
 * starting (how, said).  The spawner's own start is not waited for: a
 * spawner that died there stops the pool when a worker must be replaced,
 * as does a lazy spawner that cannot be forked (its pipes, the fork, or a
 * service that has started threads by then; the sentence says which).
 *
 * The service may take its children's statuses itself (a SIGCHLD handler
 * calling waitpid(-1), SIGCHLD set to SIG_IGN): deaths are then reported
 * with the kind SHMK_DEATH_UNKNOWN, and every wait stays bounded.
 */
SHMK_API int shmk_pool_create(shmk_ctx *ctx, const struct shmk_pool_options *o,
			      shmk_pool **out);

/*
 * Shuts down: refuses new leases, lets running jobs finish, SIGTERMs the
 * workers and SIGKILLs what is left, all within one grace period
 * (shutdown_grace_ms) in total, reaps every child, wakes every caller still
 * waiting in shmk_pool_lease()/shmk_pool_run() with an error (-ESHUTDOWN or
 * -ECHILD), waits until none is inside the pool any more, and destroys the
 * slots.  Every wait in it is bounded, and a signal caught meanwhile skips
 * no step: a spawner that does not exit within a second after the grace
 * (stopped, say) is SIGKILLed.  Calls that began before it are safe; after
 * it returns, p is gone: a thread must not call anything on it (not even
 * shmk_pool_release()), so a thread woken with an error by a destroy must
 * not touch p again.  Returns 0 or the first error met.  NULL is a no-op.
 */
SHMK_API int shmk_pool_destroy(shmk_pool *p);

/*
 * Leases a slot whose worker is ready.  policy SHMK_LEASE_DEFAULT uses the
 * pool's.  Returns the slot number (>= 0), -EAGAIN (FAIL, none free),
 * -ETIMEDOUT (DEADLINE), -ESHUTDOWN (pool shutting down) or -ENODEV (every
 * slot quarantined).
 */
SHMK_API int shmk_pool_lease(shmk_pool *p, enum shmk_lease_policy policy,
			     unsigned timeout_ms);
SHMK_API void *shmk_pool_slot_mem(shmk_pool *p, unsigned slot);
SHMK_API size_t shmk_pool_slot_size(shmk_pool *p);

/*
 * Runs one job on the leased slot and waits for it, within the pool's job
 * deadline (job_timeout_ms).  On success returns 0 and *result holds fn's
 * return value.  If the worker dies first, returns -ECHILD at once
 * (shmk_pool_last_death() tells how it died); the slot's memory is
 * re-initialised by the pool's reinit policy and the slot serves again once
 * a replacement is ready.
 *
 * Past the deadline (which also bounds waiting for a replacement worker)
 * the worker is SIGKILLed, its death is classified SHMK_DEATH_TIMEOUT and
 * -ETIMEDOUT is returned as soon as the death is reported; the slot is
 * re-initialised and serves again, like after any death.  (If the
 * worker is not dead within a second - in D state, say - the call
 * returns all the same, and the slot is re-initialised when it does: input
 * written meanwhile may be wiped.)  With SHMK_REINIT_RECREATE, a slot whose memory cannot be
 * reserved again after a death is quarantined and never handed out:
 * -ENOSPC (the errno of posix_fallocate) or -ENODEV; its memory must not be
 * touched any more (its pages are gone), only released.
 */
SHMK_API int shmk_pool_run(shmk_pool *p, unsigned slot, int *result);

/* shmk_pool_run() with this call's deadline in milliseconds: 0 is the
 * pool's (job_timeout_ms), SHMK_POOL_NO_DEADLINE none. */
SHMK_API int shmk_pool_run_timeout(shmk_pool *p, unsigned slot, int *result,
				   unsigned timeout_ms);

/* Gives the slot back.  Every lease must be released. */
SHMK_API void shmk_pool_release(shmk_pool *p, unsigned slot);

/* The most recent death in the slot (kind NONE if none). */
SHMK_API int shmk_pool_last_death(shmk_pool *p, unsigned slot,
				  struct shmk_death *out);
/* Total deaths seen and whether the slot is quarantined (and why). */
SHMK_API unsigned shmk_pool_deaths(shmk_pool *p);
SHMK_API int shmk_pool_slot_quarantined(shmk_pool *p, unsigned slot);
/* pid of the slot's current worker (0 while none is ready). */
SHMK_API pid_t shmk_pool_worker_pid(shmk_pool *p, unsigned slot);
/* pid of the pool's spawner, which forks replacement workers (there is no
 * supervisor any more: the name stays for compatibility); 0 if it never
 * came up, and with SHMK_OPEN_LAZY_SPAWNER until the first replacement. */
SHMK_API pid_t shmk_pool_supervisor_pid(shmk_pool *p);

/* "exit-clean", "exit-code", "signal", "sigkill", "oom", "timeout",
 * "unknown", "none". */
SHMK_API const char *shmk_death_kind_name(enum shmk_death_kind k);
/* The report as one JSON object into buf; returns its length or -ENOBUFS. */
SHMK_API int shmk_death_json(const struct shmk_death *d, char *buf,
			     size_t size);

/* ------------------------------------------------------------------------ */
/* ResourceMonitor                                                           */

typedef struct shmk_monitor shmk_monitor;

struct shmk_sample {
	int64_t when_ms;      /* unix time, milliseconds                     */
	pid_t pid;            /* process sampled                             */
	long fds;             /* open descriptors (/proc/PID/fd)             */
	uint64_t rss;         /* resident bytes (/proc/PID/statm)            */
	long threads;         /* /proc/PID/stat                              */
	long children;        /* direct children, zombies included           */
	long zombies;         /* children that exited and were not reaped    */
	uint64_t ns_segments; /* our objects "<ns>.*" in the shm directory
				 (regular files of our euid)                 */
	uint64_t ns_bytes;    /* the memory they take (allocated blocks)     */
	uint64_t shm_free;    /* free bytes of the shm filesystem (statvfs)  */
	uint64_t shm_total;
};

struct shmk_verdict {
	int leak;             /* any of the below                             */
	int fd_leak, rss_leak, thread_leak, child_leak, segment_leak, bytes_leak;
	long fd_delta, thread_delta, child_delta, zombies;
	int64_t rss_delta, segment_delta, bytes_delta;
	char reason[512];     /* which resources and by how much, in words     */
};

/* Called when a soft limit is crossed: resource is "ns_bytes" or "rss".
 * It is called for every create (or shmk_monitor_limits()) that finds the
 * value above the limit, not only for the first crossing. */
typedef void (*shmk_soft_fn)(const char *resource, uint64_t value,
			     uint64_t limit, void *arg);

struct shmk_monitor_options {
	pid_t pid;              /* 0: this process (the one that created the
				   monitor: a fork child that inherits it
				   still samples its parent)                  */
	const char *ns;         /* namespace to count segments of (optional)  */
	const char *shm_dir;    /* NULL: /dev/shm                             */
	unsigned warmup;        /* automatic baseline after this many samples
				   (0: only shmk_monitor_set_baseline())      */
	/* Leak thresholds: a delta above them is a leak. */
	long fd_threshold;           /* default 0: any extra descriptor      */
	double rss_threshold_pct;    /* 10 % if 0     ... both must be      */
	uint64_t rss_threshold_bytes;/* 8 MiB if 0    ... exceeded          */
	uint64_t segment_threshold;  /* default 0                           */
	uint64_t bytes_threshold;    /* default 0                           */
	/* Limits (0: none).  Soft: the callback runs (the service warns and
	 * cleans up).  Hard: shmk_segment_create() on a context the monitor is
	 * attached to fails before allocating (-EDQUOT / -ENOMEM). */
	uint64_t ns_bytes_soft, ns_bytes_hard;
	uint64_t rss_soft, rss_hard;
	shmk_soft_fn on_soft;
	void *arg;
	unsigned check_every;   /* shmk_monitor_tick(): check every N calls  */
};

/* *out is owned by the caller: free with shmk_monitor_destroy(). */
SHMK_API int shmk_monitor_create(const struct shmk_monitor_options *o,
				 shmk_monitor **out);
SHMK_API void shmk_monitor_destroy(shmk_monitor *m);
/* Takes a sample (and counts it towards the warm-up). */
SHMK_API int shmk_monitor_sample(shmk_monitor *m, struct shmk_sample *out);
/* Sets the baseline to s, or to a fresh sample if s is NULL. */
SHMK_API int shmk_monitor_set_baseline(shmk_monitor *m,
				       const struct shmk_sample *s);
/* 1 if a baseline is set (explicitly or after the warm-up), else 0. */
SHMK_API int shmk_monitor_has_baseline(shmk_monitor *m);
SHMK_API int shmk_monitor_baseline(shmk_monitor *m, struct shmk_sample *out);
/* Compares s (or a fresh sample if NULL) with the baseline: 0 and a
 * verdict, or -EAGAIN while there is no baseline yet. */
SHMK_API int shmk_monitor_check(shmk_monitor *m, const struct shmk_sample *s,
				struct shmk_verdict *v);
/* Counts one operation; every check_every-th call samples and checks:
 * returns 1 (v filled), else 0. */
SHMK_API int shmk_monitor_tick(shmk_monitor *m, struct shmk_verdict *v);
/* Applies soft limits to s (calls on_soft), returns 1 if any is crossed. */
SHMK_API int shmk_monitor_limits(shmk_monitor *m, const struct shmk_sample *s);
/* Makes ctx's segment creation obey m's hard limits (NULL detaches).
 * m must outlive the attachment. */
SHMK_API int shmk_monitor_attach(shmk_monitor *m, shmk_ctx *ctx);
/* One JSON object on one line (no newline): for JSON-lines logs. */
SHMK_API int shmk_sample_json(const struct shmk_sample *s, char *buf,
			      size_t size);

/* ------------------------------------------------------------------------ */
/* For bindings                                                              */
/*
 * A binding that declares the structs above in its own language (Python's
 * ctypes, cffi in ABI mode) checks its declarations against the library it
 * loaded, rather than trusting a copy that may have drifted from this
 * header: shmk_layout(type, NULL, ...) gives the size of "struct <type>" as
 * this library was built, shmk_layout(type, field, ...) the offset and size
 * of one of its fields.  A binding checks the size of every struct it uses
 * and every field it declares, and refuses to load on a difference.
 * Described: shmk_options, shmk_reap_options, shmk_reap_item,
 * shmk_reap_report, shmk_monitor_options, shmk_sample, shmk_verdict.
 * offset and size may be NULL.  Returns 0, or -ENOENT (sentence set) for a
 * struct or field this library does not describe, -EINVAL for a NULL type.
 * The values of enums and flags (SHMK_REAP_*, ...) are part of the ABI and
 * never change meaning; a binding may copy them.
 */
SHMK_API int shmk_layout(const char *type, const char *field, size_t *offset,
			 size_t *size);

#ifdef __cplusplus
}
#endif
#endif /* SHMKEEPER_H */
