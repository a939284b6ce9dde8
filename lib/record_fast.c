/* SPDX-License-Identifier: MIT */
/* record_fast.c - the records this library writes, read without cJSON.
 *
 * A reap reads one record per dead owner, and with cJSON most of the time
 * of a reap went to parsing them (a node, a malloc'd key and a strtod per
 * value).  This file recognises exactly the bytes the library's own
 * serialisers write, and nothing else:
 *
 *   line 1    shmk__fmt_header_open(), then shmk__fmt_seg() for each
 *             segment, joined by ',', then "]}\n" (shmk__owner_snapshot());
 *   lines 2.. shmk__fmt_op_intent(), shmk__fmt_op_live(),
 *             shmk__fmt_op_drop(), each ending with '\n';
 *   a torn last line (no '\n'), ignored as the slow path does.
 *
 * Any byte that does not fit that shape gives -EAGAIN with rec freed and
 * zeroed, and shmk__record_parse() hands the buffer to the general parser
 * (lib/record_slow.c), which also writes every refusal's reason.  So this path
 * only ever accepts, and it must accept only what the slow path accepts,
 * with the same result.  That holds because what it recognises is a subset
 * of JSON on which cJSON's reading is exact and the slow path's checks are
 * the ones made here:
 *
 *   - every line is one object with the keys of its kind in the fixed
 *     order of the serialisers: no key unknown, missing or twice, no
 *     whitespace, nothing after the value, nesting 3 deep at most;
 *   - strings hold only printable ASCII other than '"' and '\\' (so no
 *     escapes, no "\u0000", no NUL): cJSON's valuestring is exactly the
 *     bytes, and they go through the same validators as in record_slow.c
 *     (shmk__ns_ok, shmk__owner_id_ok, boot_id_ok, shmk__role_ok, '/' +
 *     shmk__fullname_in_ns) and the same length limits;
 *   - numbers are plain decimal integers, no sign, no leading zero but "0",
 *     at most 16 digits and at most the slow path's maximum (2^53-1, pid
 *     4194304, uid 4294967294): exact in a double, so cJSON's valuedouble
 *     is exactly the value, and in range as get_uint() demands; pid 0,
 *     pidns 0, size 0 are refused as there;
 *   - "version" is exactly 1, 2 or 3 (SHMK_FORMAT_VERSION); version 2
 *     ends the owner with "pidns":N, N in 1..2^53-1, version 3 may (and
 *     leaves pidns 0 without it), version 1 never; the namespace must equal
 *     expect_ns when one is given; a segment listed twice in the snapshot
 *     is refused; "live" segments have an ino and "intent" ones have none;
 *   - version 3 only: an entry and an intent may end with
 *     "kind":"adopted-shm" or "kind":"adopted-sem" (never "segment", which
 *     the serialisers do not write), and then their name is judged by
 *     shmk__adopted_name_ok() and size 0 is allowed; a live or drop may
 *     name an adopted file (the SHM rule, which covers semaphores);
 *   - the journal folds as in record_slow.c: an intent adds or replaces (ino
 *     0), a live sets state and ino of a known name and ignores an unknown
 *     one, a drop removes a known name;
 *   - a NUL byte anywhere, also in the torn tail, and a first line without
 *     '\n' (empty or truncated file) are left to the slow path.
 *
 * The index is sized from the file length (no growth on the way), and
 * the live of the intent just before it is applied without a lookup.  The
 * qsort by name (shmls relies on the order) is about a tenth of this
 * path's cost.  tests/test_record.c and tests/fuzz/fuzz_record_fast.c hold
 * the two paths to each other.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX53 9007199254740991ull /* 2^53 - 1 */
/* snapshot() knows the shapes of versions 1 and 2 only. */
_Static_assert(SHMK_FORMAT_VERSION == 3, "teach snapshot() the new version");

struct cur {
	const char *p, *e; /* next byte; end of the complete lines */
};

static inline bool lit(struct cur *c, const char *s, size_t n)
{
	if ((size_t)(c->e - c->p) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}
#define LIT(c, s) lit(c, s, sizeof(s) - 1)

static inline bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* A plain decimal integer <= max: "0" or [1-9][0-9]{0,15}. */
static inline bool num(struct cur *c, uint64_t max, uint64_t *out)
{
	const char *p = c->p, *e = c->e;
	uint64_t v;

	if (p == e || !is_digit(*p))
		return false;
	v = (uint64_t)(*p++ - '0');
	if (v == 0) {
		if (p < e && is_digit(*p))
			return false; /* leading zero */
	} else {
		for (int n = 1; p < e && is_digit(*p); p++) {
			if (++n > 16)
				return false;
			v = v * 10 + (uint64_t)(*p - '0');
		}
	}
	if (v > max)
		return false;
	c->p = p;
	*out = v;
	return true;
}

/* The bytes a string may hold here: printable ASCII but '"' (0x22) and
 * '\\' (0x5c), so never an escape. */
static const bool str_ok[256] = {
	[0x20 ... 0x21] = true,
	[0x23 ... 0x5b] = true,
	[0x5d ... 0x7e] = true,
};

/* The rest of a string after its opening quote, up to and including the
 * closing one, copied NUL-terminated to out (outsz bytes with the NUL, the
 * limit of get_str()).  Only printable ASCII but '"' and '\\'. */
static inline bool str(struct cur *c, char *out, size_t outsz)
{
	const char *q = c->p, *e = c->e;
	size_t n = 0;

	/* Copied as it is scanned: a memcpy of a short string costs more. */
	for (; q < e && str_ok[(unsigned char)*q]; q++) {
		if (n + 1 >= outsz)
			return false;
		out[n++] = *q;
	}
	if (q == e || *q != '"')
		return false;
	out[n] = '\0';
	c->p = q + 1;
	return true;
}

/* As in record_slow.c. */
static bool boot_id_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		      (s[n] >= 'a' && s[n] <= 'f') || s[n] == '-'))
			return false;
	return n == 0 || n == 36;
}

/* A name of a "live" or "drop": a segment of ns or, in version 3, an
 * adopted file name. */
static inline bool any_name(struct cur *c, char *out, const struct shmk_record *r)
{
	return str(c, out, SHMK_SHM_NAME_MAX) &&
	       (shmk__recname_ok(out, r->ns, SHMK_KIND_SEGMENT) ||
		(r->version >= 3 &&
		 shmk__adopted_name_ok(out, SHMK_KIND_ADOPTED_SHM)));
}

/* The optional ,"kind":"adopted-shm|adopted-sem" of version 3. */
static inline void kind(struct cur *c, int version, enum shmk_seg_kind *k)
{
	*k = SHMK_KIND_SEGMENT;
	if (version < 3)
		return;
	if (LIT(c, ",\"kind\":\"adopted-shm\""))
		*k = SHMK_KIND_ADOPTED_SHM;
	else if (LIT(c, ",\"kind\":\"adopted-sem\""))
		*k = SHMK_KIND_ADOPTED_SEM;
}

/* The name (read first, judged once the kind is known) and size of an
 * entry or intent of that kind. */
static inline bool name_size_ok(const char *name, uint64_t size,
				const char *ns, enum shmk_seg_kind k)
{
	return shmk__recname_ok(name, ns, k) &&
	       (size != 0 || k != SHMK_KIND_SEGMENT);
}

/* {"name":"..","size":N,"state":"live","created":N,"ino":N[,"kind":".."]}
 * {"name":"..","size":N,"state":"intent","created":N[,"kind":".."]} */
static bool snap_seg(struct cur *c, const struct shmk_record *r,
		     struct shmk_rec_seg *s)
{
	uint64_t u;

	if (!LIT(c, "{\"name\":\"") || !str(c, s->name, SHMK_SHM_NAME_MAX) ||
	    !LIT(c, ",\"size\":") || !num(c, MAX53, &s->size) ||
	    !LIT(c, ",\"state\":\""))
		return false;
	if (LIT(c, "live\",\"created\":")) {
		s->state = SHMK_SEG_LIVE;
		if (!num(c, MAX53, &u) || !LIT(c, ",\"ino\":") ||
		    !num(c, MAX53, &s->ino))
			return false;
	} else if (LIT(c, "intent\",\"created\":")) {
		s->state = SHMK_SEG_INTENT;
		if (!num(c, MAX53, &u))
			return false;
	} else {
		return false;
	}
	s->created = (int64_t)u;
	kind(c, r->version, &s->kind);
	return name_size_ok(s->name, s->size, r->ns, s->kind) && LIT(c, "}");
}

static int snapshot(struct cur *c, const char *expect_ns, size_t hint,
		    struct shmk_record *r)
{
	uint64_t u;

	if (!LIT(c, "{\"format\":\"" SHMK_FORMAT "\",\"version\":"))
		return -EAGAIN;
	if (LIT(c, "3"))
		r->version = 3;
	else if (LIT(c, "2"))
		r->version = 2;
	else if (LIT(c, "1"))
		r->version = 1;
	else
		return -EAGAIN;
	if (!LIT(c, ",\"namespace\":\"") ||
	    !str(c, r->ns, sizeof r->ns) || !shmk__ns_ok(r->ns) ||
	    (expect_ns && strcmp(r->ns, expect_ns) != 0) ||
	    !LIT(c, ",\"owner\":{\"id\":\"") ||
	    !str(c, r->id, sizeof r->id) || !shmk__owner_id_ok(r->id) ||
	    !LIT(c, ",\"pid\":") || !num(c, 4194304, &u) || u == 0)
		return -EAGAIN;
	r->owner.pid = (pid_t)u;
	if (!LIT(c, ",\"start_time\":") || !num(c, MAX53, &u))
		return -EAGAIN;
	r->owner.start_time = u;
	if (!LIT(c, ",\"boot_id\":\"") ||
	    !str(c, r->owner.boot_id, sizeof r->owner.boot_id) ||
	    !boot_id_ok(r->owner.boot_id) || !LIT(c, ",\"uid\":") ||
	    !num(c, 4294967294u, &u))
		return -EAGAIN;
	r->owner.uid = (uid_t)u;
	if (!LIT(c, ",\"role\":\"") || !str(c, r->role, sizeof r->role) ||
	    !shmk__role_ok(r->role) || !LIT(c, ",\"created\":") ||
	    !num(c, MAX53, &u))
		return -EAGAIN;
	r->created = (int64_t)u;
	if (r->version == 3 && !LIT(c, ",\"pidns\":")) {
		/* version 3 without pidns: unknown (0) */
	} else if (r->version >= 2 &&
		   ((r->version == 2 && !LIT(c, ",\"pidns\":")) ||
		    !num(c, MAX53, &r->owner.pidns) || r->owner.pidns == 0)) {
		return -EAGAIN;
	}
	if (!LIT(c, "},\"segments\":["))
		return -EAGAIN;

	/* Only now, so that a large file of another shape costs nothing. */
	if (shmk__table_init(&r->index, hint) < 0)
		return -ENOMEM;
	if (LIT(c, "]}\n"))
		return 0;
	for (;;) {
		struct shmk_rec_seg *s = calloc(1, sizeof *s);

		if (!s)
			return -ENOMEM;
		if (!snap_seg(c, r, s) ||
		    shmk__table_get(&r->index, s->name)) { /* listed twice */
			free(s);
			return -EAGAIN;
		}
		if (shmk__table_put(&r->index, s->name, s) < 0) {
			free(s);
			return -ENOMEM;
		}
		if (LIT(c, "]}\n"))
			return 0;
		if (!LIT(c, ","))
			return -EAGAIN;
	}
}

/* {"op":"intent","name":"..","size":N,"created":N[,"kind":".."]}
 * {"op":"live","name":"..","ino":N}
 * {"op":"drop","name":".."}
 * *last: the segment of the latest intent, which the live that the library
 * writes right after it finds without a lookup. */
static int operation(struct cur *c, struct shmk_record *r,
		     struct shmk_rec_seg **last)
{
	char name[SHMK_SHM_NAME_MAX];
	struct shmk_rec_seg *s;
	enum shmk_seg_kind k;
	uint64_t size, u;

	if (!LIT(c, "{\"op\":\""))
		return -EAGAIN;
	if (LIT(c, "intent\",\"name\":\"")) {
		if (!str(c, name, sizeof name) || !LIT(c, ",\"size\":") ||
		    !num(c, MAX53, &size) || !LIT(c, ",\"created\":") ||
		    !num(c, MAX53, &u))
			return -EAGAIN;
		kind(c, r->version, &k);
		if (!name_size_ok(name, size, r->ns, k) || !LIT(c, "}\n"))
			return -EAGAIN;
		if (!(s = shmk__table_get(&r->index, name))) {
			if (!(s = malloc(sizeof *s)))
				return -ENOMEM;
			memset(s, 0, sizeof *s);
			memcpy(s->name, name, strlen(name) + 1);
			if (shmk__table_put(&r->index, s->name, s) < 0) {
				free(s);
				return -ENOMEM;
			}
		} /* else re-stated: the newer statement wins */
		s->size = size;
		s->created = (int64_t)u;
		s->ino = 0;
		s->state = SHMK_SEG_INTENT;
		s->kind = k;
		*last = s;
		return 0;
	}
	if (LIT(c, "live\",\"name\":\"")) {
		if (!str(c, name, sizeof name))
			return -EAGAIN;
		/* The name of the latest intent was judged valid already. */
		if (*last && strcmp((*last)->name, name) == 0)
			s = *last;
		else if (shmk__recname_ok(name, r->ns, SHMK_KIND_SEGMENT) ||
			 (r->version >= 3 &&
			  shmk__adopted_name_ok(name, SHMK_KIND_ADOPTED_SHM)))
			s = shmk__table_get(&r->index, name);
		else
			return -EAGAIN;
		if (!LIT(c, ",\"ino\":") || !num(c, MAX53, &u) ||
		    !LIT(c, "}\n"))
			return -EAGAIN;
		if (s) { /* a live of an unknown name changes nothing */
			s->state = SHMK_SEG_LIVE;
			s->ino = u;
		}
		return 0;
	}
	if (LIT(c, "drop\",\"name\":\"")) {
		if (!any_name(c, name, r) || !LIT(c, "}\n"))
			return -EAGAIN;
		s = shmk__table_del(&r->index, name);
		if (s && s == *last)
			*last = NULL;
		free(s);
		return 0;
	}
	return -EAGAIN;
}

int shmk__record_parse_fast(const char *buf, size_t len, const char *expect_ns,
			    struct shmk_record *r, char *why, size_t whylen)
{
	struct shmk_rec_seg *last = NULL;
	const char *nl;
	struct cur c;
	size_t i = 0;
	void *v;
	int rc;

	memset(r, 0, sizeof *r);
	if (whylen)
		why[0] = '\0';
	/* Empty, truncated first line: the slow path says why. */
	if (len == 0 || !(nl = memrchr(buf, '\n', len)))
		return -EAGAIN;
	c.p = buf;
	c.e = nl + 1;
	if (c.e < buf + len) { /* a torn tail: never parsed, but no NUL */
		if (memchr(c.e, '\0', (size_t)(buf + len - c.e)))
			return -EAGAIN;
		r->torn = true;
	}
	/* Each segment takes at least ~50 bytes of the file, ~100 as the
	 * library writes it: len / 100 sizes the index (at least twice that
	 * many slots) to hold them all without growing. */
	if ((rc = snapshot(&c, expect_ns, len / 100, r)) < 0)
		goto fail;
	for (; c.p < c.e; r->n_ops++)
		if ((rc = operation(&c, r, &last)) < 0)
			goto fail;

	r->segs = malloc((r->index.used ? r->index.used : 1) * sizeof *r->segs);
	if (!r->segs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t it = 0; (v = shmk__table_next(&r->index, &it));)
		r->segs[i++] = v;
	r->n_segs = i;
	shmk__record_sort(r);
	return 0;
fail:
	shmk__record_free(r);
	memset(r, 0, sizeof *r);
	return rc;
}
