/* SPDX-License-Identifier: MIT */
/* fuzz_record_fast.c - libFuzzer target: the record parser's fast path
 * (lib/record_fast.c) against its slow path (cJSON, lib/record.c).
 *
 * The fast path reads only the exact bytes the library's serialisers write
 * and says -EAGAIN for anything else; shmk__record_parse() then hands the
 * input to the slow path.  So the one promise to check is: whenever the
 * fast path takes an input (returns 0), the slow path accepts it too and
 * with exactly the same result (owner fields, every segment field, n_segs,
 * n_ops, torn, the index), and when it does not, it returns -EAGAIN with
 * rec zeroed (or -ENOMEM); and shmk__record_parse() gives the slow path's
 * verdict, with its reason on a refusal.  Any difference is an abort().
 *
 * Random bytes almost never have the library's shape, so each input is
 * used three ways:
 *
 *   1. as a record file, as it is (expect_ns NULL, "fix" and, if accepted,
 *      its own namespace);
 *   2. as a program that drives the serialisers (shmk__fmt_header_open,
 *      shmk__fmt_seg, shmk__fmt_op_*): owner fields (the pid namespace
 *      too: 0 writes a version-1 header), snapshot segments and
 *      journal operations, with values picked from the edges of every range
 *      (0, 2^53-1, 2^53, 2^64-1, pid 4194305, uid 4294967295, negative
 *      times...), names in and out of the namespace, of every length, with
 *      characters a name may not hold, repeated names, and a torn tail.
 *      The file is compared as written, and with one byte replaced,
 *      deleted or doubled where the program says;
 *   3. if the slow path accepts the input, the record written back by the
 *      serialisers as one snapshot line and as an empty snapshot plus a
 *      journal, each compared as written and with one byte changed.
 *
 * Built like the other targets, as target record_fast (FUZZ_TARGETS in
 * tests/fuzz/fuzz.mk); seeds: the record corpus (corpus/record/), whose
 * inputs serve both targets.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX53 9007199254740991ull /* 2^53 - 1 */
#define FIX_NS "fix"
#define WHY_LEN 512
#define GEN_CAP (256u << 10) /* generated files stay below this */

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr,                                      \
				"fuzz_record_fast: %s:%d: violated: %s: ",   \
				__FILE__, __LINE__, #cond);                  \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the comparison -------------------------------------------------------- */

static void same_record(const struct shmk_record *a,
			const struct shmk_record *b, const char *what)
{
	CHECK(a->version == b->version && strcmp(a->ns, b->ns) == 0 &&
		      strcmp(a->id, b->id) == 0 &&
		      a->owner.pid == b->owner.pid &&
		      a->owner.start_time == b->owner.start_time &&
		      strcmp(a->owner.boot_id, b->owner.boot_id) == 0 &&
		      a->owner.uid == b->owner.uid &&
		      a->owner.pidns == b->owner.pidns &&
		      strcmp(a->role, b->role) == 0 && a->created == b->created,
	      "%s: owner fields differ", what);
	CHECK(a->n_ops == b->n_ops, "%s: n_ops %zu vs %zu", what, a->n_ops,
	      b->n_ops);
	CHECK(a->torn == b->torn, "%s: torn %d vs %d", what, (int)a->torn,
	      (int)b->torn);
	CHECK(a->n_segs == b->n_segs, "%s: %zu vs %zu segments", what,
	      a->n_segs, b->n_segs);
	CHECK(a->index.used == a->n_segs && b->index.used == b->n_segs,
	      "%s: index %zu/%zu", what, a->index.used, b->index.used);
	for (size_t i = 0; i < a->n_segs; i++) {
		const struct shmk_rec_seg *x = a->segs[i], *y = b->segs[i];

		CHECK(strcmp(x->name, y->name) == 0 && x->size == y->size &&
			      x->created == y->created && x->ino == y->ino &&
			      x->state == y->state && x->kind == y->kind,
		      "%s: segment %zu differs: %s %" PRIu64 " %" PRId64
		      " %" PRIu64 " %d vs %s %" PRIu64 " %" PRId64 " %" PRIu64
		      " %d",
		      what, i, x->name, x->size, x->created, x->ino,
		      (int)x->state, y->name, y->size, y->created, y->ino,
		      (int)y->state);
		CHECK(shmk__table_get(&a->index, x->name) == x,
		      "%s: index misses %s", what, x->name);
	}
}

static bool is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

/* Both paths and the dispatcher on an exact-size heap copy of buf (so that
 * ASan sees any overread).  *slow_ok: the slow path accepted.  Returns
 * whether the fast path took the input. */
static bool compare(const char *buf, size_t len, const char *ns,
		    const char *what, bool *slow_ok)
{
	struct shmk_record f, s, d;
	char fwhy[WHY_LEN], swhy[WHY_LEN], dwhy[WHY_LEN];
	char *copy = malloc(len ? len : 1);
	int rf, rs, rd;

	CHECK(copy, "out of memory");
	if (len)
		memcpy(copy, buf, len);
	rf = shmk__record_parse_fast(copy, len, ns, &f, fwhy, sizeof fwhy);
	rs = shmk__record_parse_slow(copy, len, ns, &s, swhy, sizeof swhy);
	rd = shmk__record_parse(copy, len, ns, &d, dwhy, sizeof dwhy);

	CHECK(rf == 0 || rf == -EAGAIN || rf == -ENOMEM, "%s: fast rc %d",
	      what, rf);
	if (rf == -EAGAIN)
		CHECK(is_zero(&f, sizeof f), "%s: -EAGAIN left rec set", what);
	if (rf == 0) {
		CHECK(rs == 0,
		      "%s: the fast path accepted what the slow path refuses "
		      "(%d: %s)\n%.*s",
		      what, rs, swhy, (int)(len < 4096 ? len : 4096), buf);
		same_record(&f, &s, what);
	}
	if (rs != -ENOMEM && rd != -ENOMEM) {
		CHECK(rd == rs, "%s: shmk__record_parse %d, slow path %d", what,
		      rd, rs);
		if (rs < 0)
			CHECK(strcmp(dwhy, swhy) == 0,
			      "%s: reason \"%s\", slow path \"%s\"", what, dwhy,
			      swhy);
		else
			same_record(&d, &s, what);
	}
	if (slow_ok)
		*slow_ok = rs == 0;
	shmk__record_free(&f);
	shmk__record_free(&s);
	shmk__record_free(&d);
	free(copy);
	return rf == 0;
}

/* The file, then one mutant of it: byte pos replaced by val, deleted or
 * doubled (how: 0, 1, 2). */
static void compare_with_mutant(const char *buf, size_t len, const char *ns,
				const char *what, size_t pos, unsigned char val,
				unsigned how)
{
	char *m;
	size_t ml = len;

	compare(buf, len, ns, what, NULL);
	if (len == 0)
		return;
	pos %= len;
	m = malloc(len + 1);
	CHECK(m, "out of memory");
	memcpy(m, buf, len);
	switch (how % 3) {
	case 0:
		m[pos] = (char)val;
		break;
	case 1:
		memmove(m + pos, m + pos + 1, len - pos - 1);
		ml--;
		break;
	default:
		memmove(m + pos + 1, m + pos, len - pos);
		ml++;
		break;
	}
	compare(m, ml, ns, what, NULL);
	free(m);
}

/* ---- 2. the input as a program for the serialisers ------------------------ */

struct prog {
	const uint8_t *p, *e;
};

static unsigned byte(struct prog *g)
{
	return g->p < g->e ? *g->p++ : 0;
}

static uint64_t u64(struct prog *g)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | byte(g);
	return v;
}

/* A number for a field: mostly in range, often at an edge. */
static uint64_t pick_num(struct prog *g)
{
	static const uint64_t edge[] = {0,
					1,
					9,
					10,
					4096,
					65536,
					1700000000,
					4194304,
					4194305,
					4294967294u,
					4294967295u,
					MAX53 - 1,
					MAX53,
					MAX53 + 1,
					MAX53 + 2,
					9999999999999999ull,
					10000000000000000ull,
					UINT64_MAX};
	unsigned k = byte(g);

	if (k < 128)
		return edge[k % (sizeof edge / sizeof *edge)];
	if (k < 192)
		return byte(g) + 1;
	return u64(g) % (k < 240 ? MAX53 + 1 : UINT64_MAX);
}

static const char *const NSS[] = {FIX_NS, "a", "A_b-9", "fix2", "fi",
				  "abcdefghijklmnopqrstuvwxyz012345", /* 32 */
				  "abcdefghijklmnopqrstuvwxyz0123456", /* 33 */
				  "f.x", "", "f x"};

/* Name k of namespace ns, "/<ns>.<suffix>", or something that is not. */
static void pick_name(struct prog *g, const char *ns, char *out, size_t sz)
{
	unsigned k = byte(g);
	unsigned idx = byte(g) % 24; /* few names: repeats are common */
	char longname[SHMK_SEGNAME_MAX + 2];

	switch (k % 16) {
	case 0: /* the longest name, and one more */
	case 1:
		memset(longname, 'a' + (char)(idx % 26),
		       SHMK_SEGNAME_MAX + (k % 16));
		longname[SHMK_SEGNAME_MAX + (k % 16)] = '\0';
		snprintf(out, sz, "/%s.%s", ns, longname);
		break;
	case 2: /* not in the namespace, or not a name */
		{
			static const char *const bad[] = {
				"/%sx.a%u",  "%s.a%u",	 "/%s.",     "/%s..a%u",
				"/%s.a/%u",  "/%s.a %u", "/%s.\\u0061%u",
				"/other.%u", "/%s.a\"%u", "/%s.\xc3\xa9%u"};
			const char *f = bad[idx % (sizeof bad / sizeof *bad)];

			if (strstr(f, "%s"))
				snprintf(out, sz, f, ns, idx);
			else
				snprintf(out, sz, f, idx);
		}
		break;
	case 3:
		snprintf(out, sz, "/%s.-x.y_%u.", ns, idx);
		break;
	case 4: /* adopted names (format 3), good and bad */
		{
			static const char *const adopted[] = {
				"/psm_%u", "/sem.mp-%u", "/sem.", "/.x%u",
				"/a b%u", "/wnsm_%u~!", "/x/y%u", "/sem.%u"};
			snprintf(out, sz, adopted[idx % 8], idx);
		}
		break;
	default:
		snprintf(out, sz, "/%s.n%u", ns, idx);
		break;
	}
}

static void generated(const uint8_t *data, size_t size)
{
	static const char *const ids[] = {"p4242-123456-0badcafe", "p", "",
					  ".x", "a b",
					  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"};
	static const char *const roles[] = {"", "t", "r.o:l@e/+ -_", "a\"b",
					    "\\u0041", "tab\there",
					    "0123456789012345678901234567890123456789012345678901234567890123",
					    "01234567890123456789012345678901234567890123456789012345678901234"};
	static const char *const boots[] = {
		"", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		"0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", "0f1e"};
	static const char *const tails[] = {"", "{", "{\"op\":\"intent\",\"na",
					    "{\"op\":\"drop\",\"name\":\"/fix.a\"}",
					    "\x01\xff garbage"};
	struct prog g = {data, data + size};
	struct shmk_ident me;
	const char *ns, *id, *role;
	char *buf = malloc(GEN_CAP), name[SHMK_SHM_NAME_MAX + 64];
	unsigned flags, nseg, nops, how;
	uint64_t pid, uid;
	size_t len = 0, pos;
	unsigned char val;
	int n;

	CHECK(buf, "out of memory");
	flags = byte(&g);
	ns = (flags & 0x80) ? NSS[byte(&g) % (sizeof NSS / sizeof *NSS)]
			    : FIX_NS;
	id = (flags & 0x40) ? ids[byte(&g) % (sizeof ids / sizeof *ids)]
			    : ids[0];
	role = roles[byte(&g) % (sizeof roles / sizeof *roles)];
	memset(&me, 0, sizeof me);
	snprintf(me.boot_id, sizeof me.boot_id, "%s",
		 boots[byte(&g) % (sizeof boots / sizeof *boots)]);
	pid = (flags & 0x20) ? pick_num(&g) : 4242;
	uid = (flags & 0x10) ? pick_num(&g) : 1000;
	me.pid = (pid_t)pid;
	me.uid = (uid_t)uid;
	me.start_time = (flags & 0x08) ? pick_num(&g) : 123456;
	/* Version 2 unless the pick is 0 (unknown: written as version 1);
	 * picks past 2^53-1 make records both paths must refuse. */
	me.pidns = (flags & 0x02) ? pick_num(&g) : 4026531836u;

	/* Format 3 (an adopting owner) when flag 0x01 is set. */
	n = ((flags & 0x01) ? shmk__fmt_header_open_adopt
			    : shmk__fmt_header_open)(
		buf, GEN_CAP, ns, id, &me, role,
		(flags & 0x04) ? (int64_t)pick_num(&g) : 1700000000);
	CHECK(n > 0, "header: %d", n);
	len = (size_t)n;

	nseg = byte(&g) % 32;
	for (unsigned i = 0; i < nseg && len < GEN_CAP / 2; i++) {
		struct shmk_rec_seg s;

		memset(&s, 0, sizeof s);
		pick_name(&g, ns, s.name, sizeof s.name);
		s.size = pick_num(&g);
		s.created = (int64_t)pick_num(&g);
		s.state = byte(&g) & 1 ? SHMK_SEG_LIVE : SHMK_SEG_INTENT;
		if (s.state == SHMK_SEG_LIVE)
			s.ino = pick_num(&g);
		s.kind = (enum shmk_seg_kind)(byte(&g) % 3);
		if (i)
			buf[len++] = ',';
		n = shmk__fmt_seg(buf + len, GEN_CAP - len, &s);
		CHECK(n > 0, "segment: %d", n);
		len += (size_t)n;
	}
	memcpy(buf + len, "]}\n", 3);
	len += 3;

	nops = byte(&g) % 64;
	for (unsigned i = 0; i < nops && len < GEN_CAP / 2; i++) {
		unsigned op = byte(&g) % 3;

		pick_name(&g, ns, name, sizeof name);
		if (op == 0) {
			uint64_t sz = pick_num(&g);
			unsigned k = byte(&g) % 3;
			n = k ? shmk__fmt_op_adopt(buf + len, GEN_CAP - len, name,
						   sz, (int64_t)pick_num(&g),
						   (enum shmk_seg_kind)k)
			      : shmk__fmt_op_intent(buf + len, GEN_CAP - len,
						    name, sz,
						    (int64_t)pick_num(&g));
		} else if (op == 1) {
			n = shmk__fmt_op_live(buf + len, GEN_CAP - len, name,
					      pick_num(&g));
		} else {
			n = shmk__fmt_op_drop(buf + len, GEN_CAP - len, name);
		}
		if (n == -ENOBUFS) /* a name too long for an operation line */
			continue;
		CHECK(n > 0, "operation: %d", n);
		len += (size_t)n;
	}
	{
		const char *t = tails[byte(&g) % (sizeof tails / sizeof *tails)];
		memcpy(buf + len, t, strlen(t));
		len += strlen(t);
	}

	pos = (size_t)u64(&g);
	val = (unsigned char)byte(&g);
	how = byte(&g);
	compare_with_mutant(buf, len, FIX_NS, "generated", pos, val, how);
	compare(buf, len, NULL, "generated, no namespace", NULL);
	free(buf);
}

/* ---- 3. an accepted record written back ------------------------------------ */

static void written_back(const struct shmk_record *r, const uint8_t *data,
			 size_t size)
{
	size_t cap = 2048 + r->n_segs * 800, len = 0;
	char *buf = malloc(cap);
	uint64_t h = 1469598103934665603ull;
	int n;

	CHECK(buf, "out of memory");
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;

	/* One snapshot line. */
	n = (r->version == 3 ? shmk__fmt_header_open_adopt
			     : shmk__fmt_header_open)(buf, cap, r->ns, r->id,
						      &r->owner, r->role,
						      r->created);
	CHECK(n > 0, "header: %d", n);
	len = (size_t)n;
	for (size_t i = 0; i < r->n_segs; i++) {
		if (i)
			buf[len++] = ',';
		n = shmk__fmt_seg(buf + len, cap - len, r->segs[i]);
		CHECK(n > 0, "segment: %d", n);
		len += (size_t)n;
	}
	memcpy(buf + len, "]}\n", 3);
	len += 3;
	CHECK(compare(buf, len, r->ns, "written back as a snapshot", NULL),
	      "a snapshot the serialisers wrote took the slow path:\n%.*s",
	      (int)(len < 4096 ? len : 4096), buf);
	compare_with_mutant(buf, len, r->ns, "snapshot mutant", (size_t)h,
			    (unsigned char)(h >> 56), (unsigned)(h >> 48));

	/* An empty snapshot and a journal. */
	n = (r->version == 3 ? shmk__fmt_header_open_adopt
			     : shmk__fmt_header_open)(buf, cap, r->ns, r->id,
						      &r->owner, r->role,
						      r->created);
	len = (size_t)n;
	memcpy(buf + len, "]}\n", 3);
	len += 3;
	for (size_t i = 0; i < r->n_segs; i++) {
		const struct shmk_rec_seg *s = r->segs[i];

		n = s->kind ? shmk__fmt_op_adopt(buf + len, cap - len, s->name,
						 s->size, s->created, s->kind)
			    : shmk__fmt_op_intent(buf + len, cap - len, s->name,
						  s->size, s->created);
		CHECK(n > 0, "intent: %d", n);
		len += (size_t)n;
		if (s->state == SHMK_SEG_LIVE) {
			n = shmk__fmt_op_live(buf + len, cap - len, s->name,
					      s->ino);
			CHECK(n > 0, "live: %d", n);
			len += (size_t)n;
		}
	}
	CHECK(compare(buf, len, r->ns, "written back as a journal", NULL),
	      "a journal the serialisers wrote took the slow path:\n%.*s",
	      (int)(len < 4096 ? len : 4096), buf);
	compare_with_mutant(buf, len, r->ns, "journal mutant", (size_t)(h >> 7),
			    (unsigned char)(h >> 40), (unsigned)(h >> 32));
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct shmk_record r;
	char why[WHY_LEN];
	bool ok = false;

	if (size > (1u << 20)) /* the format allows 32 MiB; keep runs fast */
		return 0;

	/* 1. As it is. */
	compare(buf, size, NULL, "input", &ok);
	compare(buf, size, FIX_NS, "input in fix", NULL);
	if (ok) {
		CHECK(shmk__record_parse_slow(buf, size, NULL, &r, why,
					      sizeof why) == 0,
		      "slow path: not the same verdict twice");
		compare(buf, size, r.ns, "input in its namespace", NULL);
		/* 3. Written back by the serialisers. */
		written_back(&r, data, size);
		shmk__record_free(&r);
	}

	/* 2. As a program for the serialisers. */
	generated(data, size);
	return 0;
}
