/* SPDX-License-Identifier: MIT */
/* fuzz_record.c - libFuzzer target for the record parser (lib/record.c,
 * with its fast path lib/record_fast.c; fuzz_record_fast.c drives the
 * latter harder).
 *
 * The input is a whole record file, as it would be read from disk, so the
 * seeds are the fixtures of registry/ byte for byte and a crash file can be
 * read by eye.  Each input is parsed with expect_ns NULL, then with "fix"
 * (the namespace of every fixture) and with the record's own namespace, and
 * what the parser promises is checked; any violation is an abort().
 *
 *   - a refusal is -EINVAL, -EPROTONOSUPPORT or -ENOMEM, with a reason
 *     "line <n>: ..." (n at most the number of lines + 1), NUL-terminated
 *     however short the reason buffer is;
 *   - an acceptance with expect_ns NULL decides the others: same result
 *     when expect_ns is the record's namespace, a refusal for any other;
 *   - an accepted record: namespace, owner id, role and boot id valid,
 *     pid and uid in range, version 1 with pidns 0 or version 2 with
 *     pidns in 1..2^53-1; every segment named "/<ns>.<name>" and passing
 *     shmk__fullname_in_ns, size in 1..2^53-1, created and ino <= 2^53-1,
 *     state intent (ino 0) or live; n_segs equals the index count, segs[]
 *     sorted by name without duplicates and each one the index's entry;
 *     n_ops the number of complete lines after the first; torn iff the
 *     input does not end with '\n';
 *   - the fold: the operations applied to the snapshot by a second, naive
 *     implementation (cJSON and an array) give the same segments;
 *   - the fast path (record_fast.c), given the input and everything the
 *     round trip writes, accepts only what the general parser accepts and
 *     folds the same; it takes everything the serialisers write;
 *   - crash safety (invariant 3): a prefix of an accepted file cut anywhere
 *     after its first line is accepted too, and folds to the same segments
 *     as the file cut at the start of the line the cut falls in;
 *   - round trip: the record written back with shmk__fmt_header_open() and
 *     shmk__fmt_seg() as a snapshot line, and as an empty snapshot plus an
 *     intent (and live) operation per segment, parses to the same record;
 *     a formatter given one byte too few refuses without overrunning.
 *
 * Built with clang -fsanitize=fuzzer (make fuzz) and, without libFuzzer, by
 * tests/fuzz/replay.c over the committed corpus (make fuzz-replay).
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX53 9007199254740991ull /* 2^53 - 1 */
#define FIX_NS "fix"
#define WHY_LEN 512

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz_record: %s:%d: violated: %s: ", \
				__FILE__, __LINE__, #cond);                  \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int parse_fn(const char *, size_t, const char *, struct shmk_record *,
		     char *, size_t);

/* Parses an exact-size heap copy of buf[0..len) with fn, so that
 * AddressSanitizer sees any read past the end of what it was given. */
static int parse_with(parse_fn *fn, const char *buf, size_t len,
		      const char *ns, struct shmk_record *r, char *why,
		      size_t whylen)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	CHECK(copy, "out of memory");
	if (len)
		memcpy(copy, buf, len);
	rc = fn(copy, len, ns, r, why, whylen);
	free(copy);
	return rc;
}

static int parse_copy(const char *buf, size_t len, const char *ns,
		      struct shmk_record *r, char *why, size_t whylen)
{
	return parse_with(shmk__record_parse, buf, len, ns, r, why, whylen);
}

static size_t count_char(const char *s, size_t n, char c)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

static bool boot_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n != 0 && n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return false;
	return true;
}

/* The refusal reason: "line <n>: <something>", n in 1..max_line. */
static void check_refusal(int rc, const char *why, size_t max_line)
{
	unsigned long n;
	char *end;

	CHECK(rc == -EINVAL || rc == -EPROTONOSUPPORT || rc == -ENOMEM,
	      "rc %d", rc);
	if (rc == -ENOMEM)
		return;
	CHECK(strncmp(why, "line ", 5) == 0, "reason \"%s\"", why);
	n = strtoul(why + 5, &end, 10);
	CHECK(end != why + 5 && end[0] == ':' && end[1] == ' ' && end[2],
	      "reason \"%s\"", why);
	CHECK(n >= 1 && n <= max_line, "reason \"%s\" (%zu lines)", why,
	      max_line);
}

static void check_seg(const struct shmk_record *r, const struct shmk_rec_seg *s)
{
	size_t l = strlen(r->ns);

	CHECK(strnlen(s->name, sizeof s->name) < sizeof s->name, "unterminated");
	if (s->kind != SHMK_KIND_SEGMENT) { /* an adopted name: version 3 */
		CHECK(r->version == 3 && shmk__adopted_name_ok(s->name, s->kind),
		      "adopted \"%s\" (kind %d) in version %d", s->name,
		      (int)s->kind, r->version);
		CHECK(s->size <= MAX53, "%s size", s->name);
		goto common;
	}
	CHECK(s->name[0] == '/' && strncmp(s->name + 1, r->ns, l) == 0 &&
		      s->name[l + 1] == '.',
	      "segment \"%s\" outside namespace \"%s\"", s->name, r->ns);
	CHECK(shmk__fullname_in_ns(s->name, r->ns), "\"%s\" in \"%s\"",
	      s->name, r->ns);
	CHECK(shmk_name_check(s->name + l + 2) == 0, "\"%s\"", s->name);
	CHECK(s->size > 0 && s->size <= MAX53, "%s size %llu", s->name,
	      (unsigned long long)s->size);
common:
	CHECK(s->created >= 0 && (uint64_t)s->created <= MAX53,
	      "%s created %lld", s->name, (long long)s->created);
	CHECK(s->ino <= MAX53, "%s ino %llu", s->name,
	      (unsigned long long)s->ino);
	CHECK(s->state == SHMK_SEG_INTENT || s->state == SHMK_SEG_LIVE,
	      "%s state %d", s->name, (int)s->state);
	CHECK(s->state != SHMK_SEG_INTENT || s->ino == 0,
	      "%s in intent with ino %llu", s->name,
	      (unsigned long long)s->ino);
}

/* What an accepted record promises. */
static void check_record(const struct shmk_record *r, const char *buf,
			 size_t len, const char *expect_ns)
{
	size_t nl = count_char(buf, len, '\n');

	CHECK(r->version >= 1 && r->version <= SHMK_FORMAT_VERSION,
	      "version %d", r->version);
	/* Version 2 names the owner's pid namespace, version 1 does not,
	 * version 3 may. */
	CHECK(r->version == 1   ? r->owner.pidns == 0
	      : r->version == 3 ? r->owner.pidns <= MAX53
				: r->owner.pidns >= 1 && r->owner.pidns <= MAX53,
	      "version %d with pidns %llu", r->version,
	      (unsigned long long)r->owner.pidns);
	CHECK(shmk__ns_ok(r->ns) && shmk_ns_check(r->ns) == 0, "ns \"%s\"",
	      r->ns);
	CHECK(!expect_ns || strcmp(r->ns, expect_ns) == 0,
	      "ns \"%s\", expected \"%s\"", r->ns, expect_ns);
	CHECK(shmk__owner_id_ok(r->id), "owner id \"%s\"", r->id);
	CHECK(shmk__role_ok(r->role), "role \"%s\"", r->role);
	CHECK(boot_id_valid(r->owner.boot_id), "boot id \"%s\"",
	      r->owner.boot_id);
	CHECK(r->owner.pid >= 1 && r->owner.pid <= 4194304, "pid %d",
	      (int)r->owner.pid);
	CHECK(r->owner.start_time <= MAX53, "start_time %llu",
	      r->owner.start_time);
	CHECK((unsigned long long)r->owner.uid <= 4294967294ull, "uid %u",
	      (unsigned)r->owner.uid);
	CHECK(r->created >= 0 && (uint64_t)r->created <= MAX53,
	      "created %lld", (long long)r->created);

	CHECK(nl >= 1, "accepted without a complete line");
	CHECK(r->torn == (buf[len - 1] != '\n'), "torn %d", (int)r->torn);
	CHECK(r->n_ops == nl - 1, "n_ops %zu, %zu lines", r->n_ops, nl);

	CHECK(r->n_segs == r->index.used, "n_segs %zu, index %zu", r->n_segs,
	      r->index.used);
	CHECK(r->n_segs == 0 || r->segs, "segs NULL");
	for (size_t i = 0; i < r->n_segs; i++) {
		const struct shmk_rec_seg *s = r->segs[i];

		CHECK(s, "segs[%zu] NULL", i);
		check_seg(r, s);
		CHECK(i == 0 || strcmp(r->segs[i - 1]->name, s->name) < 0,
		      "segs not sorted or duplicated at %zu: %s, %s", i,
		      r->segs[i - 1]->name, s->name);
		CHECK(shmk__table_get(&r->index, s->name) == s,
		      "index does not find %s", s->name);
	}
}

static bool same_seg(const struct shmk_rec_seg *a, const struct shmk_rec_seg *b)
{
	return strcmp(a->name, b->name) == 0 && a->size == b->size &&
	       a->created == b->created && a->ino == b->ino &&
	       a->state == b->state && a->kind == b->kind;
}

static void check_same_segs(const struct shmk_record *a,
			    const struct shmk_record *b, const char *what)
{
	CHECK(a->n_segs == b->n_segs, "%s: %zu segments, then %zu", what,
	      a->n_segs, b->n_segs);
	for (size_t i = 0; i < a->n_segs; i++)
		CHECK(same_seg(a->segs[i], b->segs[i]), "%s: %s differs", what,
		      a->segs[i]->name);
}

static void check_same_record(const struct shmk_record *a,
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
	      "%s: header differs", what);
	check_same_segs(a, b, what);
}

/* ---- the fast path against the general parser ------------------------------ */

/* shmk__record_parse_fast() (record_fast.c) reads only the exact bytes the
 * serialisers write: 0 with the same record as the general parser, -ENOMEM,
 * or -EAGAIN with rec zeroed.  It must never accept what
 * shmk__record_parse_slow() refuses, nor fold differently.  Returns the
 * fast path's rc. */
static int check_fast(const char *buf, size_t len, const char *ns)
{
	static const struct shmk_record zero;
	struct shmk_record f, sl;
	char why[WHY_LEN], whys[WHY_LEN];
	int rf, rs;

	rf = parse_with(shmk__record_parse_fast, buf, len, ns, &f, why,
			sizeof why);
	CHECK(rf == 0 || rf == -EAGAIN || rf == -ENOMEM, "fast path: %d", rf);
	if (rf == -EAGAIN)
		CHECK(memcmp(&f, &zero, sizeof f) == 0,
		      "fast path: -EAGAIN without zeroing the record");
	rs = parse_with(shmk__record_parse_slow, buf, len, ns, &sl, whys,
			sizeof whys);
	if (rf == 0) {
		CHECK(rs == 0, "fast path accepts (ns %s), general parser "
			       "refuses (%d): %s",
		      ns ? ns : "NULL", rs, whys);
		check_record(&f, buf, len, ns);
		check_same_record(&f, &sl, "fast path vs general parser");
		CHECK(f.n_ops == sl.n_ops && f.torn == sl.torn,
		      "fast path: n_ops %zu torn %d, general %zu %d", f.n_ops,
		      (int)f.torn, sl.n_ops, (int)sl.torn);
	}
	shmk__record_free(&f);
	shmk__record_free(&sl);
	return rf;
}

/* ---- round trip through the formatters ------------------------------------ */

struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_fmt(struct sbuf *b, int n)
{
	CHECK(n > 0 && (size_t)n < b->cap - b->len, "formatter returned %d",
	      n);
	b->len += (size_t)n;
}

/* A formatter given exactly the room its output needs refuses (-ENOBUFS:
 * no room for the NUL) without writing past the buffer; one byte more and
 * it writes the same text.  Exact-size heap buffers, for ASan. */
#define CHECK_FMT_BOUNDS(what, call_with)                                    \
	do {                                                                 \
		char big_[2048], *exact_;                                    \
		int n_ = call_with(big_, sizeof big_), m_;                    \
		CHECK(n_ > 0 && (size_t)n_ == strlen(big_), "%s: %d", what,  \
		      n_);                                                   \
		exact_ = malloc((size_t)n_ + 1);                             \
		CHECK(exact_, "out of memory");                              \
		m_ = call_with(exact_, 0);                                   \
		CHECK(m_ == -ENOBUFS, "%s in 0 bytes: %d", what, m_);        \
		m_ = call_with(exact_, (size_t)n_);                          \
		CHECK(m_ == -ENOBUFS, "%s in %d bytes: %d", what, n_, m_);   \
		m_ = call_with(exact_, (size_t)n_ + 1);                      \
		CHECK(m_ == n_ && memcmp(exact_, big_, (size_t)n_ + 1) == 0, \
		      "%s in %d bytes: %d", what, n_ + 1, m_);               \
		free(exact_);                                                \
	} while (0)

static const struct shmk_record *fb_r;
static const struct shmk_rec_seg *fb_s;
/* The header and intent the library writes for r / s: format 3 for an
 * adopting owner, an adopted intent for an adopted entry. */
static int fmt_header_of(char *b, size_t sz, const struct shmk_record *r)
{
	return (r->version == 3 ? shmk__fmt_header_open_adopt
				: shmk__fmt_header_open)(b, sz, r->ns, r->id,
							 &r->owner, r->role,
							 r->created);
}
static int fmt_intent_of(char *b, size_t sz, const struct shmk_rec_seg *s)
{
	if (s->kind != SHMK_KIND_SEGMENT)
		return shmk__fmt_op_adopt(b, sz, s->name, s->size, s->created,
					  s->kind);
	return shmk__fmt_op_intent(b, sz, s->name, s->size, s->created);
}
static int fb_header(char *b, size_t sz) { return fmt_header_of(b, sz, fb_r); }
static int fb_seg(char *b, size_t sz) { return shmk__fmt_seg(b, sz, fb_s); }
static int fb_intent(char *b, size_t sz) { return fmt_intent_of(b, sz, fb_s); }
static int fb_live(char *b, size_t sz)
{
	return shmk__fmt_op_live(b, sz, fb_s->name, fb_s->ino);
}
static int fb_drop(char *b, size_t sz)
{
	return shmk__fmt_op_drop(b, sz, fb_s->name);
}

static void check_fmt_bounds(const struct shmk_record *r)
{
	fb_r = r;
	CHECK_FMT_BOUNDS("header", fb_header);
	/* The first and the last segment (names sort by length too). */
	for (size_t i = 0; i < r->n_segs; i += r->n_segs - 1 ? r->n_segs - 1 : 1) {
		fb_s = r->segs[i];
		CHECK_FMT_BOUNDS("segment", fb_seg);
		CHECK_FMT_BOUNDS("intent", fb_intent);
		CHECK_FMT_BOUNDS("live", fb_live);
		CHECK_FMT_BOUNDS("drop", fb_drop);
	}
}

static void round_trip(const struct shmk_record *r)
{
	struct sbuf b;
	struct shmk_record r2;
	char why[WHY_LEN];
	size_t n_live = 0;
	int rc;

	/* Header < 600 bytes, a drop < 300, a segment < 800 as operations. */
	b.cap = 2048 + r->n_segs * 800;
	b.len = 0;
	b.s = malloc(b.cap);
	CHECK(b.s, "out of memory");

	/* 1. One snapshot line holding every segment. */
	sb_fmt(&b, fmt_header_of(b.s, b.cap, r));
	for (size_t i = 0; i < r->n_segs; i++) {
		if (i)
			b.s[b.len++] = ',';
		sb_fmt(&b, shmk__fmt_seg(b.s + b.len, b.cap - b.len, r->segs[i]));
	}
	memcpy(b.s + b.len, "]}\n", 3);
	b.len += 3;
	rc = parse_copy(b.s, b.len, r->ns, &r2, why, sizeof why);
	CHECK(rc == 0, "snapshot written back refused (%d): %s\n%.*s", rc, why,
	      (int)b.len, b.s);
	check_record(&r2, b.s, b.len, r->ns);
	check_same_record(r, &r2, "snapshot round trip");
	CHECK(r2.n_ops == 0 && !r2.torn, "snapshot round trip: ops");
	shmk__record_free(&r2);
	/* What the serialisers write is the fast path's shape. */
	rc = check_fast(b.s, b.len, r->ns);
	CHECK(rc == 0, "fast path does not take a written snapshot (%d):\n%.*s",
	      rc, (int)b.len, b.s);

	/* 2. An empty snapshot, then the segments as journal operations. */
	b.len = 0;
	sb_fmt(&b, fmt_header_of(b.s, b.cap, r));
	memcpy(b.s + b.len, "]}\n", 3);
	b.len += 3;
	for (size_t i = 0; i < r->n_segs; i++) {
		const struct shmk_rec_seg *s = r->segs[i];

		sb_fmt(&b, fmt_intent_of(b.s + b.len, b.cap - b.len, s));
		if (s->state == SHMK_SEG_LIVE) {
			sb_fmt(&b, shmk__fmt_op_live(b.s + b.len, b.cap - b.len,
						     s->name, s->ino));
			n_live++;
		}
	}
	/* ...and a drop of a name of the namespace that is not there, which
	 * changes nothing. */
	{
		char absent[SHMK_SHM_NAME_MAX];
		unsigned k = 0;

		do
			snprintf(absent, sizeof absent, "/%s.absent%u", r->ns, k++);
		while (shmk__table_get(&r->index, absent));
		sb_fmt(&b, shmk__fmt_op_drop(b.s + b.len, b.cap - b.len, absent));
	}
	rc = parse_copy(b.s, b.len, r->ns, &r2, why, sizeof why);
	CHECK(rc == 0, "journal written back refused (%d): %s\n%.*s", rc, why,
	      (int)b.len, b.s);
	check_record(&r2, b.s, b.len, r->ns);
	check_same_record(r, &r2, "journal round trip");
	CHECK(r2.n_ops == r->n_segs + n_live + 1, "journal: %zu ops", r2.n_ops);
	shmk__record_free(&r2);
	rc = check_fast(b.s, b.len, r->ns);
	CHECK(rc == 0, "fast path does not take a written journal (%d):\n%.*s",
	      rc, (int)b.len, b.s);

	/* 3. A drop of "/<ns>x.y", a name outside the namespace that starts
	 * with it, refuses the file (in version 3 it is an adopted name). */
	if (r->version < 3) {
		char other[SHMK_SHM_NAME_MAX];

		snprintf(other, sizeof other, "/%sx.y", r->ns);
		sb_fmt(&b, shmk__fmt_op_drop(b.s + b.len, b.cap - b.len, other));
	}
	if (r->version < 3) {
		rc = parse_copy(b.s, b.len, r->ns, &r2, why, sizeof why);
		CHECK(rc == -EINVAL && strstr(why, "is not valid"),
		      "drop outside the namespace: %d %s", rc, why);
		CHECK(check_fast(b.s, b.len, r->ns) == -EAGAIN,
		      "fast path takes a drop outside the namespace");
		shmk__record_free(&r2);
	}
	free(b.s);
}

/* ---- the fold, by a second implementation --------------------------------- */

/* Folds the operation lines of an accepted file onto its snapshot (line 1,
 * parsed alone) by the rules of registry/README.md, with cJSON and a plain
 * array, and compares with what the parser folded. */
struct ref {
	struct shmk_rec_seg *v;
	size_t n, cap;
};

static struct shmk_rec_seg *ref_find(struct ref *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return &f->v[i];
	return NULL;
}

static int cmp_ref(const void *a, const void *b)
{
	return strcmp(((const struct shmk_rec_seg *)a)->name,
		      ((const struct shmk_rec_seg *)b)->name);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	CHECK(cJSON_IsNumber(v), "accepted operation without a number %s", k);
	return v->valuedouble;
}

static void check_fold(const struct shmk_record *r, const char *buf,
		       size_t len)
{
	const char *first = memchr(buf, '\n', len), *s, *nl;
	const char *end = buf + len;
	struct shmk_record snap;
	struct ref f = {0};
	char why[WHY_LEN];
	int rc;

	rc = parse_copy(buf, (size_t)(first - buf) + 1, r->ns, &snap, why,
			sizeof why);
	CHECK(rc == 0, "snapshot line alone refused: %s", why);
	f.cap = snap.n_segs + 16;
	f.v = malloc(f.cap * sizeof *f.v);
	CHECK(f.v, "out of memory");
	for (size_t i = 0; i < snap.n_segs; i++)
		f.v[f.n++] = *snap.segs[i];
	shmk__record_free(&snap);

	for (s = first + 1; s < end && (nl = memchr(s, '\n', (size_t)(end - s)));
	     s = nl + 1) {
		cJSON *j = cJSON_ParseWithLength(s, (size_t)(nl - s));
		const cJSON *op, *name;
		struct shmk_rec_seg *cur;

		CHECK(j, "accepted line does not parse: %.*s", (int)(nl - s), s);
		op = cJSON_GetObjectItemCaseSensitive(j, "op");
		name = cJSON_GetObjectItemCaseSensitive(j, "name");
		CHECK(cJSON_IsString(op) && cJSON_IsString(name) &&
			      strlen(name->valuestring) < SHMK_SHM_NAME_MAX,
		      "accepted operation: %.*s", (int)(nl - s), s);
		cur = ref_find(&f, name->valuestring);
		if (strcmp(op->valuestring, "intent") == 0) {
			if (!cur) {
				if (f.n == f.cap) {
					f.cap *= 2;
					f.v = realloc(f.v, f.cap * sizeof *f.v);
					CHECK(f.v, "out of memory");
				}
				cur = &f.v[f.n++];
			}
			memset(cur, 0, sizeof *cur);
			strcpy(cur->name, name->valuestring);
			cur->size = (uint64_t)num(j, "size");
			cur->created = (int64_t)num(j, "created");
			cur->state = SHMK_SEG_INTENT;
			{
				const cJSON *k = cJSON_GetObjectItemCaseSensitive(
					j, "kind");
				int kv = cJSON_IsString(k)
						 ? shmk__kind_parse(k->valuestring)
						 : 0;
				CHECK(kv >= 0, "accepted kind");
				cur->kind = (enum shmk_seg_kind)kv;
			}
		} else if (strcmp(op->valuestring, "live") == 0) {
			if (cur) {
				cur->state = SHMK_SEG_LIVE;
				cur->ino = (uint64_t)num(j, "ino");
			}
		} else {
			CHECK(strcmp(op->valuestring, "drop") == 0,
			      "accepted operation \"%s\"", op->valuestring);
			if (cur)
				*cur = f.v[--f.n];
		}
		cJSON_Delete(j);
	}

	qsort(f.v, f.n, sizeof *f.v, cmp_ref);
	CHECK(f.n == r->n_segs, "fold: %zu segments, reference %zu", r->n_segs,
	      f.n);
	for (size_t i = 0; i < f.n; i++)
		CHECK(same_seg(&f.v[i], r->segs[i]),
		      "fold: %s (state %d size %llu ino %llu), reference %s "
		      "(state %d size %llu ino %llu)",
		      r->segs[i]->name, (int)r->segs[i]->state,
		      (unsigned long long)r->segs[i]->size,
		      (unsigned long long)r->segs[i]->ino, f.v[i].name,
		      (int)f.v[i].state, (unsigned long long)f.v[i].size,
		      (unsigned long long)f.v[i].ino);
	free(f.v);
}

/* ---- crash safety: cutting an accepted file ------------------------------ */

static void check_cut(const struct shmk_record *r, const char *buf, size_t len)
{
	const char *first = memchr(buf, '\n', len);
	size_t start, cut, line_start;
	struct shmk_record a, b;
	char why[WHY_LEN];
	uint64_t h = 1469598103934665603ull;
	int rc;

	start = (size_t)(first - buf) + 1;
	if (start >= len)
		return;
	/* A cut point after the first line, chosen by the content. */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
	cut = start + (size_t)(h % (len - start)); /* start .. len-1 */
	line_start = cut;
	while (buf[line_start - 1] != '\n')
		line_start--;

	rc = parse_copy(buf, cut, r->ns, &a, why, sizeof why);
	CHECK(rc == 0, "accepted file cut at %zu of %zu refused (%d): %s", cut,
	      len, rc, why);
	check_record(&a, buf, cut, r->ns);
	rc = parse_copy(buf, line_start, r->ns, &b, why, sizeof why);
	CHECK(rc == 0, "accepted file cut at %zu of %zu refused (%d): %s",
	      line_start, len, rc, why);
	check_record(&b, buf, line_start, r->ns);
	check_same_record(&a, &b, "torn line");
	(void)check_fast(buf, cut, r->ns);
	(void)check_fast(buf, line_start, r->ns);
	CHECK(a.n_ops == b.n_ops, "torn line counted as an operation");
	shmk__record_free(&a);
	shmk__record_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t lines = count_char(buf, size, '\n') + 1;
	struct shmk_record r, r2;
	char why[WHY_LEN];
	char *small;
	size_t smalllen;
	int rc, rc2;

	if (size > (1u << 20)) /* the format allows 32 MiB; keep runs fast */
		return 0;

	/* 1. Without an expected namespace. */
	rc = parse_copy(buf, size, NULL, &r, why, sizeof why);
	if (rc < 0) {
		check_refusal(rc, why, lines);
		shmk__record_free(&r);
		/* Adding expect_ns only adds a condition: still refused. */
		rc2 = parse_copy(buf, size, FIX_NS, &r2, why, sizeof why);
		CHECK(rc2 < 0, "refused without a namespace, accepted in fix");
		check_refusal(rc2, why, lines);
		shmk__record_free(&r2);
	} else {
		check_record(&r, buf, size, NULL);

		/* 2. In its own namespace: the same record. */
		rc2 = parse_copy(buf, size, r.ns, &r2, why, sizeof why);
		CHECK(rc2 == 0, "refused in its own namespace %s: %s", r.ns,
		      why);
		check_record(&r2, buf, size, r.ns);
		check_same_record(&r, &r2, "own namespace");
		shmk__record_free(&r2);

		/* 3. In namespace fix: accepted iff it is fix's. */
		rc2 = parse_copy(buf, size, FIX_NS, &r2, why, sizeof why);
		if (strcmp(r.ns, FIX_NS) == 0) {
			CHECK(rc2 == 0, "refused in fix: %s", why);
			check_same_record(&r, &r2, "namespace fix");
		} else {
			CHECK(rc2 == -EINVAL && strstr(why, "found in namespace"),
			      "record of %s in fix: %d %s", r.ns, rc2, why);
		}
		shmk__record_free(&r2);

		check_fold(&r, buf, size);
		round_trip(&r);
		check_fmt_bounds(&r);
		check_cut(&r, buf, size);
		shmk__record_free(&r);
	}

	/* 4. The fast path against the general parser, on the input as it
	 * is (most inputs are not of its shape: -EAGAIN). */
	(void)check_fast(buf, size, NULL);
	(void)check_fast(buf, size, FIX_NS);

	/* 5. A short reason buffer (0..15 bytes, exact size on the heap):
	 * never overrun, always terminated, same verdict. */
	smalllen = size % 16;
	small = malloc(smalllen ? smalllen : 1);
	CHECK(small, "out of memory");
	memset(small, 'x', smalllen ? smalllen : 1);
	rc2 = parse_copy(buf, size, NULL, &r2, small, smalllen);
	CHECK((rc2 == 0) == (rc == 0), "verdict depends on the reason buffer");
	CHECK(smalllen == 0 || memchr(small, '\0', smalllen),
	      "reason not terminated");
	shmk__record_free(&r2);
	free(small);
	return 0;
}
