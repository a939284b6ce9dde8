/* SPDX-License-Identifier: MIT */
/* names.c - what a namespace, a segment name, an owner id and a role may be.
 *
 * Segments of namespace ns are "/<ns>.<name>": the dot ends the namespace,
 * so a prefix scan of /dev/shm for "<ns>." finds the namespace's objects and
 * nothing else (not "<ns>x..." nor "<ns>-other.").  Namespace names cannot
 * hold a dot, so one namespace is never a prefix of another's scan. */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool is_nschar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* glibc keeps the named semaphore "/x" as the object "sem.x" in /dev/shm:
 * namespace "sem" would take the host's semaphores for its segments (and a
 * stray scan would remove them). */
#define SHMK_NS_SEM "sem"

bool shmk__ns_ok(const char *ns)
{
	size_t n = 0;

	if (!ns || strcmp(ns, SHMK_NS_SEM) == 0)
		return false;
	for (; ns[n]; n++)
		if (n >= SHMK_NS_MAX || !is_nschar((unsigned char)ns[n]))
			return false;
	return n > 0;
}

bool shmk__segname_ok(const char *name)
{
	size_t n = 0;

	if (!name || name[0] == '\0' || name[0] == '.')
		return false; /* also rules out "." and ".." */
	for (; name[n]; n++)
		if (n >= SHMK_SEGNAME_MAX ||
		    !(is_nschar((unsigned char)name[n]) || name[n] == '.'))
			return false;
	return true;
}

bool shmk__fullname_in_ns(const char *full, const char *ns)
{
	size_t l = strlen(ns);

	if (full[0] == '/')
		full++;
	return strncmp(full, ns, l) == 0 && full[l] == '.' &&
	       shmk__segname_ok(full + l + 1);
}

/* ---- adopted names (format 3) -------------------------------------------
 *
 * A program under the preload names its objects as it likes; the record
 * keeps the object's file name in the shm directory.  The alphabet keeps a
 * name a plain JSON string (no escapes: the fast parser reads it as bytes)
 * and a plain file name: printable ASCII but '"', '\\' and '/', no leading
 * '.' (so never ".", "..", a hidden name or the namespace claim).  A name
 * outside it is not adopted: the preload leaves the call alone. */
const bool shmk__adopted_ch[256] = { /* the alphabet, but space */
	[0x21] = true,
	[0x23 ... 0x2e] = true,
	[0x30 ... 0x5b] = true,
	[0x5d ... 0x7e] = true,
};

bool shmk__adopted_name_ok(const char *full, enum shmk_seg_kind kind)
{
	const char *f = full + 1;
	size_t n;

	if (full[0] != '/' || f[0] == '.' || f[0] == '\0')
		return false;
	for (n = 0; f[n]; n++)
		if (n >= SHMK_ADOPTED_FILE_MAX ||
		    !shmk__adopted_ch[(unsigned char)f[n]])
			return false;
	switch (kind) {
	case SHMK_KIND_ADOPTED_SHM:
		return true;
	case SHMK_KIND_ADOPTED_SEM: /* glibc's "sem.<name>", name not empty */
		return strncmp(f, "sem.", 4) == 0 && f[4] != '\0';
	case SHMK_KIND_SEGMENT:
		break;
	}
	return false;
}

bool shmk__recname_ok(const char *full, const char *ns,
		      enum shmk_seg_kind kind)
{
	if (kind == SHMK_KIND_SEGMENT)
		return full[0] == '/' && shmk__fullname_in_ns(full, ns);
	return shmk__adopted_name_ok(full, kind);
}

static const char *const kind_names[] = {
	[SHMK_KIND_SEGMENT] = "segment",
	[SHMK_KIND_ADOPTED_SHM] = "adopted-shm",
	[SHMK_KIND_ADOPTED_SEM] = "adopted-sem",
};

const char *shmk__kind_name(enum shmk_seg_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "segment";
}

int shmk__kind_parse(const char *s)
{
	for (int k = 0; k < 3; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

/* ---- owner ids and owner file names ------------------------------------
 *
 * The one place where they are made and read.  An owner id is exactly what
 * shmk__owner_id_make() writes, "p<pid>-<start time>-<8 lowercase hex>":
 *   pid         1..SHMK_PID_MAX, decimal, no leading zero
 *   start time  decimal (clock ticks after boot), no leading zero but "0"
 *   random      exactly 8 of [0-9a-f]
 * Nothing else is an owner id, so "Cargo.lock" or "data.jsonl" found in a
 * registry are never taken for an owner's files. */

#define SHMK_PID_MAX 4194304 /* PID_MAX_LIMIT on 64-bit Linux (2^22) */

int shmk__owner_id_make(pid_t pid, unsigned long long start, uint32_t rnd,
			char id[SHMK_ID_MAX])
{
	int n = snprintf(id, SHMK_ID_MAX, "p%d-%llu-%08" PRIx32, (int)pid,
			 start, rnd);

	return n > 0 && n < SHMK_ID_MAX && shmk__owner_id_ok(id)
		       ? 0
		       : shmk__err(-EINVAL, "owner id for pid %d: invalid",
				   (int)pid);
}

/* Reads a decimal without leading zeros ("0" alone allowed if zero_ok) of
 * at most max; advances *s past it. */
static bool decimal(const char **s, bool zero_ok, unsigned long long max)
{
	const char *p = *s;
	unsigned long long v = 0;

	if (*p == '0') {
		if (!zero_ok)
			return false;
		*s = p + 1;
		return !(p[1] >= '0' && p[1] <= '9');
	}
	if (!(*p >= '1' && *p <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return false; /* v * 10 + d > max */
		v = v * 10 + d;
	}
	*s = p;
	return true;
}

bool shmk__owner_id_ok(const char *id)
{
	const char *p = id;

	if (!id || strnlen(id, SHMK_ID_MAX) >= SHMK_ID_MAX || *p++ != 'p' ||
	    !decimal(&p, false, SHMK_PID_MAX) || *p++ != '-' ||
	    !decimal(&p, true, ULLONG_MAX) || *p++ != '-')
		return false;
	for (int i = 0; i < 8; i++, p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return *p == '\0';
}

/* Owner file names, by kind: the prefix and the suffix around the id.  The
 * temporary names are those the protocols write: the lock file is created
 * as ".<id>.lock.tmp" (owner.c) and the record is rewritten through
 * shmk__replace()'s ".<name>.tmp" (atomic.c). */
static const struct {
	const char *pre, *suf;
} ofile[] = {
	[SHMK_OFILE_LOCK] = {"", SHMK_LOCK_SUFFIX},
	[SHMK_OFILE_RECORD] = {"", SHMK_REC_SUFFIX},
	[SHMK_OFILE_LOCK_TMP] = {".", SHMK_LOCK_SUFFIX ".tmp"},
	[SHMK_OFILE_RECORD_TMP] = {".", SHMK_REC_SUFFIX ".tmp"},
};
#define N_OFILE (sizeof ofile / sizeof ofile[0])

int shmk__ofile_name(const char *id, enum shmk_ofile kind, char *buf,
		     size_t sz)
{
	int n;

	if ((unsigned)kind >= N_OFILE || !ofile[kind].suf ||
	    !shmk__owner_id_ok(id))
		return shmk__err(-EINVAL, "owner file of \"%.64s\" (kind %d): "
					  "invalid owner id or kind",
				 id ? id : "(null)", (int)kind);
	n = snprintf(buf, sz, "%s%s%s", ofile[kind].pre, id, ofile[kind].suf);
	if (n < 0 || (size_t)n >= sz)
		return shmk__err(-ENAMETOOLONG, "owner file of %s: name does "
						"not fit in %zu bytes",
				 id, sz);
	return n;
}

bool shmk__ofile_parse(const char *name, char id[SHMK_ID_MAX],
		       enum shmk_ofile *kind)
{
	size_t n = strnlen(name, NAME_MAX + 1);

	for (unsigned k = 1; k < N_OFILE; k++) {
		size_t p = strlen(ofile[k].pre), s = strlen(ofile[k].suf);

		if (n <= p + s || n - p - s >= SHMK_ID_MAX ||
		    strncmp(name, ofile[k].pre, p) != 0 ||
		    strcmp(name + n - s, ofile[k].suf) != 0)
			continue;
		memcpy(id, name + p, n - p - s);
		id[n - p - s] = '\0';
		/* The id holds no '.', so at most one kind can match. */
		if (!shmk__owner_id_ok(id))
			break;
		if (kind)
			*kind = (enum shmk_ofile)k;
		return true;
	}
	id[0] = '\0';
	return false;
}

bool shmk__role_ok(const char *role)
{
	size_t n = 0;

	if (!role)
		return true;
	for (; role[n]; n++) {
		unsigned char c = (unsigned char)role[n];
		if (n >= SHMK_ROLE_MAX ||
		    !(is_nschar(c) || strchr(" .:@/+", c)))
			return false;
	}
	return true;
}

int shmk_ns_check(const char *ns)
{
	if (ns && strcmp(ns, SHMK_NS_SEM) == 0)
		return shmk__err(-EINVAL,
				 "namespace \"%s\": refused: glibc keeps named "
				 "semaphores as /dev/shm/sem.<name>, so its "
				 "objects would be the host's semaphores",
				 ns);
	if (!shmk__ns_ok(ns))
		return shmk__err(-EINVAL,
				 "namespace \"%.64s\": invalid: must be 1 to %d "
				 "characters of [A-Za-z0-9_-]",
				 ns ? ns : "(null)", SHMK_NS_MAX);
	return 0;
}

int shmk_name_check(const char *name)
{
	if (name && strlen(name) > SHMK_SEGNAME_MAX)
		return shmk__err(-ENAMETOOLONG,
				 "segment name \"%.64s...\": too long (max %d)",
				 name, SHMK_SEGNAME_MAX);
	if (!shmk__segname_ok(name))
		return shmk__err(-EINVAL,
				 "segment name \"%.64s\": invalid: must be "
				 "[A-Za-z0-9_.-], not start with '.', and hold "
				 "no '/'",
				 name ? name : "(null)");
	return 0;
}
