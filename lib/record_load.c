/* SPDX-License-Identifier: MIT */
/* record_load.c - reading a record file: size-capped, ours, strict, by
 * whichever sibling parser fits (record_fast.c for the library's own
 * shape, record_slow.c for everything else and every refusal), and moving a
 * bad one aside (quarantine: never deleted).  The parsers depend on the
 * model only (record_model.c); only this file knows both. */
#include "internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The records the library writes take the fast path (record_fast.c);
 * anything else, and every refusal with its reason, is for cJSON here. */
int shmk__record_parse(const char *buf, size_t len, const char *expect_ns,
		       struct shmk_record *r, char *why, size_t whylen)
{
	int rc = shmk__record_parse_fast(buf, len, expect_ns, r, why, whylen);

	if (rc != -EAGAIN)
		return rc;
	return shmk__record_parse_slow(buf, len, expect_ns, r, why, whylen);
}

/* An owner that keeps its record mapped (journal_map.c) rewrites the
 * version before the current one in place, but only a version it can
 * write-lock (an open file description lock): we hold a read lock on the
 * file while we read it.  Refused: what we opened is such an old version,
 * being rewritten now, and the name holds a newer one.  Open again. */
#define REOPENS 8

static int read_lock(int fd)
{
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};

	if (fiu_fail("shmk/record/read_lock"))
		return -EAGAIN;
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	/* No such locks here (EINVAL): nor are records rewritten in place. */
	return errno == EAGAIN || errno == EACCES ? -EAGAIN : 0;
}

/* The file from offset 0 to its end (capped at SHMK_RECORD_MAX) into
 * *buf (malloc'd, *got bytes).  0 or -errno with why. */
static int read_all(int fd, size_t size, char **buf, size_t *got, char *why,
		    size_t whylen)
{
	/* The owner may be appending while we read: read to EOF, capped. */
	size_t cap = size + 4096, n = 0;
	char *b = malloc(cap + 1);

	if (!b) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		ssize_t k = pread(fd, b + n, cap - n, (off_t)n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int rc = -errno;
			snprintf(why, whylen, "cannot read: %s", strerror(-rc));
			free(b);
			return rc;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n == cap) {
			char *nb;

			if (cap >= SHMK_RECORD_MAX) {
				snprintf(why, whylen, "too large (limit %u)",
					 SHMK_RECORD_MAX);
				free(b);
				return -EFBIG;
			}
			if (!(nb = realloc(b, cap * 2 + 1))) {
				snprintf(why, whylen, "out of memory");
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
	}
	*buf = b;
	*got = n;
	return 0;
}

/* A record that ends in a torn tail may be a mapped one (journal_map.c)
 * whose owner is storing a line right now: its size is not what publishes
 * a line, and a read that overtakes the store can see the line's '\n'
 * with what was there before the line (spaces) in front of it.  So such a
 * record is read again, and the first reading taken only if the second
 * has the same bytes up to the first one's last '\n': a line whose '\n'
 * was seen had all its bytes stored before the second reading began.  A
 * record without a torn tail is published by its size (write()), and read
 * once.  Tries a few times, then says the record keeps changing. */
#define REREADS 16

static int read_stable(int fd, size_t size, char **buf, size_t *got,
		       char *why, size_t whylen)
{
	char *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, keep;
	const char *nl;
	int rc;

	if ((rc = read_all(fd, size, &a, &na, why, whylen)) < 0)
		return rc;
	for (int i = 0;; i++) {
		nl = na ? memrchr(a, '\n', na) : NULL;
		keep = nl ? (size_t)(nl + 1 - a) : 0;
		if (keep == na && !fiu_fail("shmk/record/unstable"))
			break; /* no torn tail */
		if (i == REREADS) {
			free(a);
			snprintf(why, whylen, "changed under %d readings", i + 1);
			return -EAGAIN;
		}
		if ((rc = read_all(fd, size, &b, &nb, why, whylen)) < 0) {
			free(a);
			return rc;
		}
		if (nb >= keep && memcmp(a, b, keep) == 0 &&
		    !fiu_fail("shmk/record/unstable")) {
			free(b);
			break;
		}
		free(a); /* changed: the newer reading is checked in turn */
		a = b;
		na = nb;
	}
	*buf = a;
	*got = na;
	return 0;
}

static int record_load_as(int dirfd, const char *name, const char *expect_ns,
			  uid_t uid, struct shmk_record *r, char *why,
			  size_t whylen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc, tries = 0;

	memset(r, 0, sizeof *r);
	why[0] = '\0';
again:
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			snprintf(why, whylen, "is a symlink");
		else
			snprintf(why, whylen, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(why, whylen, "not a regular file");
		goto out;
	}
	if (st.st_uid != uid) {
		rc = -EPERM;
		snprintf(why, whylen, "owned by uid %u, not by us (uid %u)",
			 (unsigned)st.st_uid, (unsigned)uid);
		goto out;
	}
	if ((rc = read_lock(fd)) < 0) {
		shmk__close(&fd);
		if (++tries < REOPENS) {
			/* The owner holds its lock for a copy of the document:
			 * give it time, 50 us doubling (some 25 ms in all). */
			struct timespec ts = {0, 50000L << (tries - 1)};

			nanosleep(&ts, NULL);
			goto again;
		}
		snprintf(why, whylen, "being rewritten by its owner (tried %d "
				      "times)",
			 tries);
		return rc;
	}
	if ((uint64_t)st.st_size > SHMK_RECORD_MAX) {
		rc = -EFBIG;
		snprintf(why, whylen, "too large: %lld bytes (limit %u)",
			 (long long)st.st_size, SHMK_RECORD_MAX);
		goto out;
	}
	if ((rc = read_stable(fd, (size_t)st.st_size, &buf, &got, why,
			      whylen)) < 0)
		goto out;
	rc = shmk__record_parse(buf, got, expect_ns, r, why, whylen);
out:
	free(buf);
	shmk__close(&fd);
	return rc;
}

int shmk__record_load(int dirfd, const char *name, const char *expect_ns,
		      struct shmk_record *r, char *why, size_t whylen)
{
	return record_load_as(dirfd, name, expect_ns, geteuid(), r, why,
			      whylen);
}

int shmk__owner_record_load(int nsfd, const char *id, const char *ns,
			    uid_t uid, struct shmk_record *rec, char *why,
			    size_t whylen)
{
	char name[SHMK_ID_MAX + 16];
	int rc;

	shmk__ofile_name(id, SHMK_OFILE_RECORD, name, sizeof name);
	rc = record_load_as(nsfd, name, ns, uid, rec, why, whylen);
	if (rc == 0 && strcmp(rec->id, id) != 0) {
		snprintf(why, whylen, "owner id \"%s\" does not match the file "
				      "name",
			 rec->id);
		rc = -EINVAL;
	}
	return rc;
}

int shmk__quarantine(int dirfd, const char *dirpath, const char *name,
		     char *out, size_t outsz)
{
	char path[PATH_MAX], dst[NAME_MAX + 1];
	int qfd, rc;

	snprintf(path, sizeof path, "%s/" SHMK_QUARANTINE, dirpath);
	if ((rc = shmk__dir_open_secure(dirfd, SHMK_QUARANTINE, true, path,
					&qfd)) < 0)
		return rc;
	/* Never overwrite an earlier quarantined file: add a counter. */
	for (int i = 0; i < 1000; i++) {
		snprintf(dst, sizeof dst, "%.200s.%lld.%d", name,
			 (long long)shmk__now(), i);
		if (renameat2(dirfd, name, qfd, dst, RENAME_NOREPLACE) == 0) {
			if (out)
				snprintf(out, outsz, "%s/%s", path, dst);
			shmk__close(&qfd);
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	rc = -errno;
	shmk__close(&qfd);
	return shmk__err(rc, "%s/%s: cannot move to quarantine: %s", dirpath,
			 name, strerror(-rc));
}
