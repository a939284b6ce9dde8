/* SPDX-License-Identifier: MIT */
/* record_model.c - the record in memory and on disk: the one model both
 * parsers fill (record_slow.c, record_fast.c are siblings over it) and the
 * serialisers that write it.
 *
 * A record file "<owner-id>.jsonl" is JSON Lines, format v3
 * (registry/schema.json; v1 without owner.pidns and v2 without adopted
 * names are still read, and still written where they say all):
 *   line 1    the snapshot: format, version, namespace, owner identity and
 *             the segments as they were when the file was last rewritten;
 *   lines 2.. one operation each ("intent", "live", "drop"), appended as
 *             they happen and folded into a new snapshot by an atomic
 *             rewrite.
 * Only '\n'-terminated lines count: a torn last line is the old document.
 */
#include "internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- formatting ---------------------------------------------------------- */

static int fmt_done(int n, size_t sz)
{
	return (n < 0 || (size_t)n >= sz) ? -ENOBUFS : n;
}

/* Version 2 names the owner's pid namespace ("pidns", the owner's last
 * key); an owner whose pid namespace is unknown (pidns 0) is written as
 * version 1, which has no such key and reads back as pidns 0, so that what
 * is written always parses back to the same identity.  Version 3 (an
 * adopting owner) has "pidns" when it is known and no key otherwise. */
static int header(char *buf, size_t sz, int version, const char *ns,
		  const char *id, const struct shmk_ident *o,
		  const char *role, int64_t created)
{
	char pidns[32] = "";

	if (o->pidns)
		snprintf(pidns, sizeof pidns, ",\"pidns\":%" PRIu64, o->pidns);
	return fmt_done(
		snprintf(buf, sz,
			 "{\"format\":\"" SHMK_FORMAT "\",\"version\":%d,"
			 "\"namespace\":\"%s\",\"owner\":{\"id\":\"%s\","
			 "\"pid\":%d,\"start_time\":%llu,\"boot_id\":\"%s\","
			 "\"uid\":%u,\"role\":\"%s\",\"created\":%" PRId64
			 "%s},\"segments\":[",
			 version, ns, id, (int)o->pid, o->start_time,
			 o->boot_id, (unsigned)o->uid, role ? role : "",
			 created, pidns),
		sz);
}

int shmk__fmt_header_open(char *buf, size_t sz, const char *ns,
			  const char *id, const struct shmk_ident *o,
			  const char *role, int64_t created)
{
	return header(buf, sz, o->pidns ? 2 : 1, ns, id, o, role, created);
}

int shmk__fmt_header_open_adopt(char *buf, size_t sz, const char *ns,
				const char *id, const struct shmk_ident *o,
				const char *role, int64_t created)
{
	return header(buf, sz, 3, ns, id, o, role, created);
}

int shmk__fmt_seg(char *buf, size_t sz, const struct shmk_rec_seg *s)
{
	char kind[32] = "";

	if (s->kind != SHMK_KIND_SEGMENT)
		snprintf(kind, sizeof kind, ",\"kind\":\"%s\"",
			 shmk__kind_name(s->kind));
	if (s->state == SHMK_SEG_LIVE)
		return fmt_done(snprintf(buf, sz,
					 "{\"name\":\"%s\",\"size\":%" PRIu64
					 ",\"state\":\"live\",\"created\":%" PRId64
					 ",\"ino\":%" PRIu64 "%s}",
					 s->name, s->size, s->created, s->ino,
					 kind),
				sz);
	return fmt_done(snprintf(buf, sz,
				 "{\"name\":\"%s\",\"size\":%" PRIu64
				 ",\"state\":\"intent\",\"created\":%" PRId64
				 "%s}",
				 s->name, s->size, s->created, kind),
			sz);
}

/* The operation lines are written on every create and destroy (and, under
 * the preload, on every shm_open and shm_unlink of the program): built in
 * place with fixed-size copies and a two-digits-at-a-time decimal
 * conversion rather than snprintf, which was most of the user-space cost of
 * an operation. */
#define PUT(p, lit) (memcpy(p, lit, sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static const char digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

static const uint64_t pow10_[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull,
	10000000000000000000ull,
};

static char *put_u64(char *p, uint64_t v)
{
	/* The number of digits (log10 from log2, then one correction), then
	 * the digits from the last, two at a time. */
	int n = (64 - __builtin_clzll(v | 1)) * 1233 >> 12;
	char *q;

	n += n < 20 && v >= pow10_[n];
	n += n == 0;
	q = p + n;
	while (v >= 100) {
		q -= 2;
		memcpy(q, digits2 + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(q - 2, digits2 + 2 * v, 2);
	else
		q[-1] = (char)('0' + v);
	return p + n;
}

/* Worst case of the fixed parts of an operation line, two numbers and a
 * kind. */
#define OP_FIXED 128

/* '{"op":"<op>","name":"<name>"' into buf, which has room for the name
 * and OP_FIXED (op_line() checks).  The end of it. */
#define OP_HEAD(p, op, name, nl)                                   \
	do {                                                       \
		(p) = PUT(p, "{\"op\":\"" op "\",\"name\":\""); \
		memcpy(p, name, nl);                               \
		(p) += (nl);                                       \
		*(p)++ = '"';                                      \
	} while (0)

/* The line's length (as snprintf: room for a NUL too, which is written). */
static inline int op_end(char *buf, char *p)
{
	p = PUT(p, "}\n");
	*p = '\0';
	return (int)(p - buf);
}

enum op { OP_INTENT, OP_LIVE, OP_DROP };

/* One operation line: a is the size (intent) or the inode (live), created
 * and kind are the intent's.  -ENOBUFS if the name or the line does not
 * fit in sz. */
static int op_line(char *buf, size_t sz, enum op op, const char *name,
		   uint64_t a, int64_t created, int kind)
{
	char tmp[SHMK_SHM_NAME_MAX + OP_FIXED], *p = buf;
	size_t nl = strlen(name);
	int n;

	if (nl >= SHMK_SHM_NAME_MAX)
		return -ENOBUFS;
	if (sz < nl + OP_FIXED) { /* built where it fits, then copied */
		n = op_line(tmp, sizeof tmp, op, name, a, created, kind);
		if (n < 0 || (size_t)n >= sz)
			return -ENOBUFS;
		memcpy(buf, tmp, (size_t)n + 1);
		return n;
	}
	switch (op) {
	case OP_INTENT:
		OP_HEAD(p, "intent", name, nl);
		p = PUT(p, ",\"size\":");
		p = put_u64(p, a);
		p = PUT(p, ",\"created\":");
		p = put_u64(p, (uint64_t)(created < 0 ? 0 : created));
		if (kind == SHMK_KIND_ADOPTED_SEM)
			p = PUT(p, ",\"kind\":\"adopted-sem\"");
		else if (kind == SHMK_KIND_ADOPTED_SHM)
			p = PUT(p, ",\"kind\":\"adopted-shm\"");
		break;
	case OP_LIVE:
		OP_HEAD(p, "live", name, nl);
		p = PUT(p, ",\"ino\":");
		p = put_u64(p, a);
		break;
	case OP_DROP:
		OP_HEAD(p, "drop", name, nl);
		break;
	}
	return op_end(buf, p);
}

int shmk__fmt_op_intent(char *buf, size_t sz, const char *name, uint64_t size,
			int64_t created)
{
	return op_line(buf, sz, OP_INTENT, name, size, created,
		       SHMK_KIND_SEGMENT);
}

int shmk__fmt_op_adopt(char *buf, size_t sz, const char *name, uint64_t size,
		       int64_t created, enum shmk_seg_kind kind)
{
	if (kind == SHMK_KIND_SEGMENT)
		return -EINVAL;
	return op_line(buf, sz, OP_INTENT, name, size, created, (int)kind);
}

int shmk__fmt_op_live(char *buf, size_t sz, const char *name, uint64_t ino)
{
	return op_line(buf, sz, OP_LIVE, name, ino, 0, 0);
}

int shmk__fmt_op_drop(char *buf, size_t sz, const char *name)
{
	return op_line(buf, sz, OP_DROP, name, 0, 0, 0);
}

void shmk__record_free(struct shmk_record *r)
{
	void *v;

	if (!r)
		return;
	for (size_t it = 0; (v = shmk__table_next(&r->index, &it));)
		free(v);
	shmk__table_free(&r->index);
	free(r->segs);
	r->segs = NULL;
	r->n_segs = 0;
}


static int cmp_seg(const void *a, const void *b)
{
	const struct shmk_rec_seg *x = *(struct shmk_rec_seg *const *)a;
	const struct shmk_rec_seg *y = *(struct shmk_rec_seg *const *)b;

	return strcmp(x->name, y->name);
}

void shmk__record_sort(struct shmk_record *r)
{
	if (r->n_segs)
		qsort(r->segs, r->n_segs, sizeof *r->segs, cmp_seg);
}
