/* SPDX-License-Identifier: MIT */
/* journal_map.c - the mapped journal of an owner that adopts names (the
 * preload: lib/preload.c, lib/adopt.c).
 *
 * Under the preload every shm_open and shm_unlink of the program writes
 * journal lines, and a write() per line cost more than the call itself.
 * So such an owner (never a durable one) keeps its record mapped, shared,
 * and stores its lines into it: no system call per line.
 *
 * The file is the same document as ever (record_model.c): the snapshot
 * line, the journal lines, and then a reserve of spaces, which readers
 * take for a torn tail (what follows the last '\n' is ignored, and spaces
 * are never '\n' nor NUL).  A line is in the record once its '\n' is
 * stored, and that store comes last.  A store reaches the file's page
 * cache as it is made, so a SIGKILL loses nothing that write() would have
 * kept; a power cut can, as with write() without fsync, and durable owners
 * write.
 *
 * When a line does not fit, the record is rewritten (a snapshot) with a
 * new reserve: RESERVE_MIN at first, doubling up to RESERVE_MAX, and never
 * less than the snapshot itself, so each rewrite follows as many bytes of
 * lines as it writes (O(1) amortised).
 *
 * Two files take turns.  A snapshot is written into the version before the
 * current one, kept under the record's temporary name (".<id>.jsonl.tmp")
 * and still mapped, and swapped into place with the current one
 * (renameat2 RENAME_EXCHANGE): the record's name always holds a complete
 * document, and the pages are written again where they are, not newly
 * allocated and faulted in (a first touch of a page is the dearest thing
 * a store can do; on some virtual machines it costs as much as several
 * system calls).
 *
 * Rewriting a file in place that was once the record is safe only if no
 * reader still reads it: readers hold an open-file-description read lock
 * on a record while they read it (record_load.c), and the owner reuses the
 * old version only if it can take a write lock on it at once, holding it
 * until the new content is complete.  A reader that finds the write lock
 * opens the record's name again.  If the lock is refused, or the file
 * system cannot exchange names, a new file is made instead, as shmk__replace()
 * does.  Every function here runs with c->mu held.
 */
#include "ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#define RESERVE_MIN 4096u
#define RESERVE_MAX (64u << 10)

/* Spaces written to [from, to) of fd: the pages are allocated now, so
 * that a full file system says ENOSPC here, not SIGBUS at a store into the
 * mapping later (a file grown by ftruncate is a hole).  0 or -errno. */
static int fill_spaces(int fd, size_t from, size_t to)
{
	static const char spaces[16384] = {[0 ... 16383] = ' '};
	size_t n;
	ssize_t w;

	if (fiu_fail("shmk/jmap/fill")) {
		errno = shmk__fiu_errno();
		return -errno;
	}
	for (; from < to; from += (size_t)w) {
		n = to - from < sizeof spaces ? to - from : sizeof spaces;
		w = pwrite(fd, spaces, n, (off_t)from);
		if (w < 0 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
	}
	return 0;
}

static char *map_file(int fd, size_t size)
{
	void *m = SHMK_SYSP("mmap", MAP_FAILED,
			    mmap(NULL, size, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, fd, 0));

	return m == MAP_FAILED ? NULL : m;
}

static void unmap(char **map, size_t *size)
{
	if (*map)
		munmap(*map, *size);
	*map = NULL;
	*size = 0;
}

/* Only where a store into a page already written needs no new block:
 * tmpfs, ext2/3/4 and XFS write in place.  A copy-on-write file system
 * (btrfs, ZFS, bcachefs) allocates at every store after writeback, and
 * full it answers a store with SIGBUS: there, and anywhere unknown, lines
 * are written. */
static bool writes_in_place(int dirfd)
{
	struct statfs sf;

	if (fiu_fail("shmk/jmap/cow") || fstatfs(dirfd, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case TMPFS_MAGIC:
	case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
	case XFS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

bool shmk__jmap_wanted(const shmk_ctx *c)
{
	return c->adopt && !c->durable && writes_in_place(c->ns_fd);
}

void shmk__jmap_forget(struct shmk_owner *o)
{
	unmap(&o->map, &o->map_size);
	unmap(&o->old_map, &o->old_size);
	shmk__close(&o->old_fd);
	o->wpos = o->old_used = o->reserve = 0;
}

void shmk__jmap_remove_old(shmk_ctx *c)
{
	struct shmk_owner *o = &c->own;
	char tmp[SHMK_ID_MAX + 16];

	if (o->old_fd < 0 ||
	    shmk__ofile_name(o->id, SHMK_OFILE_RECORD_TMP, tmp, sizeof tmp) < 0)
		return;
	(void)unlinkat(c->ns_fd, tmp, 0);
	unmap(&o->old_map, &o->old_size);
	shmk__close(&o->old_fd);
}

/* Strictly less: a mapped record always ends in a space at least, so
 * that a reader sees a torn tail and reads twice (record_load.c); a line
 * ending exactly at the end of the file would look published by the size,
 * as an append is, and be read once while it is being stored. */
bool shmk__jmap_fits(const struct shmk_owner *o, size_t len)
{
	return len < o->map_size - o->wpos;
}

void shmk__jmap_store(struct shmk_owner *o, const char *line, size_t len)
{
	char *p = o->map + o->wpos;

	memcpy(p, line, len - 1);
	__atomic_store_n(p + len - 1, line[len - 1], __ATOMIC_RELEASE);
	o->wpos += len;
}

/* The size of a version holding len bytes of document: len and the next
 * reserve, to a page boundary. */
static size_t version_size(struct shmk_owner *o, size_t len)
{
	size_t pg = (size_t)getpagesize(), r;

	r = o->reserve >= RESERVE_MIN ? 2 * o->reserve : RESERVE_MIN;
	if (r > RESERVE_MAX)
		r = RESERVE_MAX;
	if (r < len)
		r = len;
	/* Readers refuse a file over SHMK_RECORD_MAX: a huge document gets
	 * what room is left under it (0: none, the caller fails). */
	if (len + r > SHMK_RECORD_MAX)
		r = len + pg <= SHMK_RECORD_MAX ? SHMK_RECORD_MAX - len : 0;
	return r ? (len + r + pg - 1) / pg * pg : 0;
}

/* The old version, write-locked for rewriting in place and at least size
 * bytes long: 0, or -errno if it cannot be (a reader holds it: the caller
 * makes a new file). */
static int reuse_old(struct shmk_owner *o, size_t size)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char *m;
	int rc;

	if (o->old_fd < 0 || !o->old_map)
		return -ENOENT;
	fiu_return_on("shmk/jmap/reader", -EAGAIN);
	if (fcntl(o->old_fd, F_OFD_SETLK, &fl) < 0)
		return -errno;
	if (o->old_size >= size)
		return 0;
	/* Grown: the new bytes allocated (spaces) before they are mapped. */
	if ((rc = fill_spaces(o->old_fd, o->old_size, size)) < 0 ||
	    !(m = map_file(o->old_fd, size))) {
		struct flock un = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

		rc = rc < 0 ? rc : -errno;
		(void)fcntl(o->old_fd, F_OFD_SETLK, &un);
		return rc;
	}
	unmap(&o->old_map, &o->old_size);
	o->old_map = m;
	o->old_size = size;
	return 0;
}

/* A new file under the temporary name, size bytes of spaces, mapped, as
 * the old version (the one it replaces, if any, is left to its readers). */
static int make_old(shmk_ctx *c, const char *tmp, size_t size)
{
	struct shmk_owner *o = &c->own;
	int fd, rc;
	char *m;

	(void)unlinkat(c->ns_fd, tmp, 0); /* ours: the version a reader holds */
	unmap(&o->old_map, &o->old_size);
	shmk__close(&o->old_fd);
	fd = SHMK_SYS("openat", openat(c->ns_fd, tmp,
					O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
						O_CLOEXEC,
					0600));
	if (fd < 0)
		return -errno;
	if ((rc = fill_spaces(fd, 0, size)) < 0 || !(m = map_file(fd, size))) {
		rc = rc < 0 ? rc : -errno;
		(void)unlinkat(c->ns_fd, tmp, 0);
		close(fd);
		return rc;
	}
	shmk__fd_raise(&fd, c->fd_floor);
	o->old_fd = fd;
	o->old_map = m;
	o->old_size = size;
	o->old_used = 0; /* spaces already */
	return 0;
}

int shmk__jmap_publish(shmk_ctx *c, const char *doc, size_t len)
{
	struct shmk_owner *o = &c->own;
	struct flock un = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	char tmp[SHMK_ID_MAX + 16], *m;
	size_t size = version_size(o, len), end;
	bool locked;
	int rc, fd;

	if ((rc = shmk__ofile_name(o->id, SHMK_OFILE_RECORD_TMP, tmp,
				   sizeof tmp)) < 0)
		return rc;
	if (!size)
		return shmk__err(-ENOBUFS, "%s: a record of %zu bytes leaves no "
					   "room under %u",
				 o->rec_path, len, SHMK_RECORD_MAX);
	locked = (rc = reuse_old(o, size)) == 0;
	if (!locked && (rc = make_old(c, tmp, size)) < 0)
		return shmk__err(rc, "%s/%s: cannot create: %s", c->ns_path, tmp,
				 strerror(-rc));
	if (o->old_size > size)
		size = o->old_size; /* a larger old version keeps its size */

	/* The document, then spaces over whatever the old version held. */
	memcpy(o->old_map, doc, len);
	end = o->old_used > len ? o->old_used : len;
	memset(o->old_map + len, ' ', end - len);
	o->old_used = len;
	SHMK_CRASHPOINT("jmap/after_rewrite");
	if (locked)
		(void)fcntl(o->old_fd, F_OFD_SETLK, &un);

	/* Into place: swapped with the current version, which becomes the old
	 * one; the first version, or a file system that cannot swap, renames
	 * (the version it replaces goes). */
	if (o->rec_fd >= 0 && o->map) {
		if (fiu_fail("shmk/jmap/exchange"))
			errno = EINVAL; /* as a file system that cannot */
		else if (SHMK_SYS("rename",
				  renameat2(c->ns_fd, tmp, c->ns_fd, o->rec_name,
					    RENAME_EXCHANGE)) == 0)
			goto swapped;
		if (errno != EINVAL && errno != ENOSYS)
			goto fail;
	}
	if (SHMK_SYS("rename", renameat(c->ns_fd, tmp, c->ns_fd, o->rec_name)) < 0)
		goto fail;
	unmap(&o->map, &o->map_size);
	shmk__close(&o->rec_fd);
	o->wpos = 0;
swapped:
	SHMK_CRASHPOINT("jmap/after_publish");
	/* The current version becomes the old one (its lines written up to
	 * wpos), the new one current. */
	fd = o->rec_fd;
	m = o->map;
	o->rec_fd = o->old_fd;
	o->map = o->old_map;
	o->old_fd = fd;
	o->old_map = m;
	o->old_used = o->wpos;
	end = o->map_size;
	o->map_size = o->old_size;
	o->old_size = end;
	o->wpos = len;
	o->reserve = size - len;
	if (!o->old_map) /* nothing to keep: the first version */
		shmk__close(&o->old_fd);
	return 0;
fail:
	rc = -errno;
	return shmk__err(rc, "%s: cannot put the new version in place (old "
			     "version kept): %s",
			 o->rec_path, strerror(-rc));
}
