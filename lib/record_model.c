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

/* The operation lines are written on every create and destroy: built with
 * memcpy and a hand-rolled decimal conversion rather than snprintf, which
 * was most of the user-space cost of an operation. */
static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Worst case of the fixed parts of an operation line, two numbers and a
 * kind. */
#define OP_FIXED 128

static int op_line(char *buf, size_t sz, const char *op, size_t oplen,
		   const char *name, const char *k1, size_t k1len, uint64_t v1,
		   const char *k2, size_t k2len, uint64_t v2, const char *tail)
{
	size_t nl = strlen(name);
	char tmp[SHMK_SHM_NAME_MAX + OP_FIXED], *p = tmp;

	if (nl >= SHMK_SHM_NAME_MAX)
		return -ENOBUFS;
	p = PUT(p, "{\"op\":\"");
	p = put(p, op, oplen);
	p = PUT(p, "\",\"name\":\"");
	p = put(p, name, nl);
	*p++ = '"';
	if (k1) {
		p = put(p, k1, k1len);
		p = put_u64(p, v1);
	}
	if (k2) {
		p = put(p, k2, k2len);
		p = put_u64(p, v2);
	}
	if (tail)
		p = put(p, tail, strlen(tail));
	p = PUT(p, "}\n");
	if ((size_t)(p - tmp) >= sz) /* as snprintf: room for a NUL too */
		return -ENOBUFS;
	memcpy(buf, tmp, (size_t)(p - tmp));
	buf[p - tmp] = '\0';
	return (int)(p - tmp);
}

int shmk__fmt_op_intent(char *buf, size_t sz, const char *name, uint64_t size,
			int64_t created)
{
	return op_line(buf, sz, "intent", 6, name, ",\"size\":", 8, size,
		       ",\"created\":", 11, (uint64_t)(created < 0 ? 0 : created),
		       NULL);
}

int shmk__fmt_op_adopt(char *buf, size_t sz, const char *name, uint64_t size,
		       int64_t created, enum shmk_seg_kind kind)
{
	const char *tail = kind == SHMK_KIND_ADOPTED_SEM
				   ? ",\"kind\":\"adopted-sem\""
				   : ",\"kind\":\"adopted-shm\"";

	if (kind == SHMK_KIND_SEGMENT)
		return -EINVAL;
	return op_line(buf, sz, "intent", 6, name, ",\"size\":", 8, size,
		       ",\"created\":", 11, (uint64_t)(created < 0 ? 0 : created),
		       tail);
}

int shmk__fmt_op_live(char *buf, size_t sz, const char *name, uint64_t ino)
{
	return op_line(buf, sz, "live", 4, name, ",\"ino\":", 7, ino, NULL, 0, 0,
		       NULL);
}

int shmk__fmt_op_drop(char *buf, size_t sz, const char *name)
{
	return op_line(buf, sz, "drop", 4, name, NULL, 0, 0, NULL, 0, 0, NULL);
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
