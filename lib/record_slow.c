/* SPDX-License-Identifier: MIT */
/* record_slow.c - the strict cJSON parser of records: reads and judges
 * any input.  Parsing is strict: unknown keys, duplicate keys, wrong
 * types, names outside the namespace, nesting deeper than our own documents,
 * NUL bytes and oversize files are all refused, with the reason.  Its
 * sibling record_fast.c takes the library's own exact shape; both fill the
 * one model of record_model.c. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: exact in a double */

/* ---- parsing ------------------------------------------------------------- */

struct pctx {
	char *why;
	size_t whylen;
	size_t line;
};

static int bad(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int bad(struct pctx *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->why, p->whylen, "line %zu: ", p->line);

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < p->whylen)
		vsnprintf(p->why + n, p->whylen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Every key of o is in allowed (NULL-terminated) and appears once. */
static int check_keys(struct pctx *p, const cJSON *o, const char *what,
		      const char *const *allowed)
{
	const cJSON *c, *d;

	if (!cJSON_IsObject(o))
		return bad(p, "%s is not an object", what);
	for (c = o->child; c; c = c->next) {
		const char *const *a;
		for (a = allowed; *a && strcmp(*a, c->string); a++)
			;
		if (!*a)
			return bad(p, "%s has unknown key \"%.40s\"", what,
				    c->string);
		for (d = o->child; d != c; d = d->next)
			if (strcmp(d->string, c->string) == 0)
				return bad(p, "%s has key \"%s\" twice", what,
					   c->string);
	}
	return 0;
}

static int get_uint(struct pctx *p, const cJSON *o, const char *what,
		    const char *key, double max, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d;

	if (!v)
		return bad(p, "%s lacks \"%s\"", what, key);
	if (!cJSON_IsNumber(v))
		return bad(p, "%s.%s is not a number", what, key);
	d = v->valuedouble;
	if (d < 0 || d > max || d != (double)(uint64_t)d)
		return bad(p, "%s.%s = %.17g is out of range", what, key, d);
	*out = (uint64_t)d;
	return 0;
}

static int get_str(struct pctx *p, const cJSON *o, const char *what,
		   const char *key, char *out, size_t outsz,
		   bool (*valid)(const char *))
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v)
		return bad(p, "%s lacks \"%s\"", what, key);
	if (!cJSON_IsString(v))
		return bad(p, "%s.%s is not a string", what, key);
	if (strlen(v->valuestring) >= outsz ||
	    (valid && !valid(v->valuestring)))
		return bad(p, "%s.%s \"%.64s\" is not valid", what, key,
			   v->valuestring);
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static bool boot_id_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		      (s[n] >= 'a' && s[n] <= 'f') || s[n] == '-'))
			return false;
	return n == 0 || n == 36;
}

/* The validators of get_str() take the string alone: the namespace, the
 * kind of the entry being read and the record's version ride along here. */
static __thread const char *tl_ns;
static __thread enum shmk_seg_kind tl_kind;
static __thread int tl_version;
static bool seg_name_ok(const char *s)
{
	return shmk__recname_ok(s, tl_ns, tl_kind);
}
/* A "live" or "drop" names an entry of either kind (format 3). */
static bool any_name_ok(const char *s)
{
	return shmk__recname_ok(s, tl_ns, SHMK_KIND_SEGMENT) ||
	       (tl_version >= 3 &&
		shmk__adopted_name_ok(s, SHMK_KIND_ADOPTED_SHM));
}

/* The optional "kind" of an entry (format 3; absent: a segment). */
static int get_kind(struct pctx *p, const cJSON *o, const char *what,
		    enum shmk_seg_kind *out)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
	int v;

	*out = SHMK_KIND_SEGMENT;
	if (!k)
		return 0;
	if (tl_version < 3)
		return bad(p, "%s.kind is not a key of version %d", what,
			   tl_version);
	if (!cJSON_IsString(k))
		return bad(p, "%s.kind is not a string", what);
	if ((v = shmk__kind_parse(k->valuestring)) < 0)
		return bad(p, "%s has unknown kind \"%.20s\"", what,
			   k->valuestring);
	*out = (enum shmk_seg_kind)v;
	return 0;
}

/* Nesting depth of a JSON text, counted outside strings, so that a hostile
 * "[[[[...]]]]" is refused before cJSON recurses into it.  Sets *nul_esc if
 * a string holds "\u0000": cJSON would decode it into a NUL that silently
 * cuts every C-string check short ("/ns.a\u0000/../x" reads as "/ns.a"). */
static int depth_of(const char *s, size_t n, bool *nul_esc)
{
	int d = 0, max = 0;
	bool in_str = false;
	size_t i;

	*nul_esc = false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\' && i + 5 < n && s[i + 1] == 'u' &&
			    strncmp(s + i + 2, "0000", 4) == 0)
				*nul_esc = true;
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++d > max)
				max = d;
		} else if (c == ']' || c == '}') {
			d--;
		}
	}
	return max;
}

static cJSON *parse_line(struct pctx *p, const char *s, size_t n, int *rc)
{
	const char *end = NULL;
	bool nul_esc;
	cJSON *j;
	int d = depth_of(s, n, &nul_esc);

	*rc = 0;
	if (d > SHMK_JSON_DEPTH_MAX) {
		*rc = bad(p, "JSON nested %d deep (limit %d)", d,
			  SHMK_JSON_DEPTH_MAX);
		return NULL;
	}
	if (nul_esc) {
		*rc = bad(p, "a string holds an escaped NUL (\\u0000)");
		return NULL;
	}
	j = cJSON_ParseWithLengthOpts(s, n, &end, false);
	if (!j) {
		const char *e = cJSON_GetErrorPtr();
		size_t off = (e && e >= s && e <= s + n) ? (size_t)(e - s) : 0;
		*rc = bad(p, "invalid JSON near byte %zu", off);
		return NULL;
	}
	/* One value per line: anything after it but blanks is refused, or a
	 * second operation glued to the first would be silently dropped. */
	while (end && end < s + n && (*end == ' ' || *end == '\t' || *end == '\r'))
		end++;
	if (!end || end != s + n) {
		*rc = bad(p, "trailing data after the JSON value near byte %zu",
			  end ? (size_t)(end - s) : 0);
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

static int add_seg(struct shmk_record *r, struct shmk_rec_seg *tmpl,
		   struct pctx *p)
{
	struct shmk_rec_seg *s = shmk__table_get(&r->index, tmpl->name);

	if (s) { /* re-stated: the newer statement wins */
		*s = *tmpl;
		return 0;
	}
	if (!(s = malloc(sizeof *s)))
		return -ENOMEM;
	*s = *tmpl;
	if (shmk__table_put(&r->index, s->name, s) < 0) {
		free(s);
		return -ENOMEM;
	}
	(void)p;
	return 0;
}

static int parse_seg(struct pctx *p, const cJSON *o, struct shmk_rec_seg *s)
{
	static const char *const keys[] = {"name", "size", "state", "created",
					   "ino", "kind", NULL};
	const cJSON *st;
	uint64_t u;
	int rc;

	memset(s, 0, sizeof *s);
	if ((rc = check_keys(p, o, "segment", keys)) < 0 ||
	    (rc = get_kind(p, o, "segment", &s->kind)) < 0)
		return rc;
	tl_kind = s->kind;
	if ((rc = get_str(p, o, "segment", "name", s->name, sizeof s->name,
			  seg_name_ok)) < 0 ||
	    (rc = get_uint(p, o, "segment", "size", MAX_SAFE_INT, &s->size)) < 0 ||
	    (rc = get_uint(p, o, "segment", "created", MAX_SAFE_INT, &u)) < 0)
		return rc;
	s->created = (int64_t)u;
	if (s->size == 0 && s->kind == SHMK_KIND_SEGMENT)
		return bad(p, "segment %s has size 0", s->name);
	st = cJSON_GetObjectItemCaseSensitive(o, "state");
	if (!cJSON_IsString(st))
		return bad(p, "segment %s lacks a string \"state\"", s->name);
	if (strcmp(st->valuestring, "live") == 0) {
		s->state = SHMK_SEG_LIVE;
		if ((rc = get_uint(p, o, "segment", "ino", MAX_SAFE_INT,
				   &s->ino)) < 0)
			return rc;
	} else if (strcmp(st->valuestring, "intent") == 0) {
		s->state = SHMK_SEG_INTENT;
		if (cJSON_GetObjectItemCaseSensitive(o, "ino"))
			return bad(p, "segment %s in intent has an ino",
				   s->name);
	} else {
		return bad(p, "segment %s has unknown state \"%.20s\"",
			   s->name, st->valuestring);
	}
	return 0;
}

static int parse_header(struct pctx *p, const cJSON *j, const char *expect_ns,
			struct shmk_record *r)
{
	static const char *const keys[] = {"format", "version", "namespace",
					   "owner", "segments", NULL};
	static const char *const okeys[] = {"id",  "pid",  "start_time",
					    "boot_id", "uid", "role",
					    "created", "pidns", NULL};
	const cJSON *f, *v, *o, *segs, *e;
	uint64_t u;
	int rc;

	if (!cJSON_IsObject(j))
		return bad(p, "not a JSON object");
	f = cJSON_GetObjectItemCaseSensitive(j, "format");
	if (!cJSON_IsString(f) || strcmp(f->valuestring, SHMK_FORMAT) != 0)
		return bad(p, "not a shmkeeper record (\"format\" is not "
			      "\"" SHMK_FORMAT "\")");
	v = cJSON_GetObjectItemCaseSensitive(j, "version");
	/* Judge the double before any cast: (int)4294967297.0 is undefined. */
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) ||
	    v->valuedouble != floor(v->valuedouble))
		return bad(p, "\"version\" is not a positive integer");
	if (v->valuedouble > SHMK_FORMAT_VERSION) {
		bad(p, "future format version %.17g (this library reads "
		       "versions 1 to %d)",
		    v->valuedouble, SHMK_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	r->version = tl_version = (int)v->valuedouble;
	if ((rc = check_keys(p, j, "record", keys)) < 0 ||
	    (rc = get_str(p, j, "record", "namespace", r->ns, sizeof r->ns,
			  shmk__ns_ok)) < 0)
		return rc;
	if (expect_ns && strcmp(r->ns, expect_ns) != 0)
		return bad(p, "record of namespace \"%s\" found in namespace "
			      "\"%s\"",
			   r->ns, expect_ns);
	o = cJSON_GetObjectItemCaseSensitive(j, "owner");
	if ((rc = check_keys(p, o, "owner", okeys)) < 0 ||
	    (rc = get_str(p, o, "owner", "id", r->id, sizeof r->id,
			  shmk__owner_id_ok)) < 0 ||
	    (rc = get_uint(p, o, "owner", "pid", 4194304, &u)) < 0)
		return rc;
	r->owner.pid = (pid_t)u;
	if (r->owner.pid <= 0)
		return bad(p, "owner.pid is 0");
	if ((rc = get_uint(p, o, "owner", "start_time", MAX_SAFE_INT, &u)) < 0)
		return rc;
	r->owner.start_time = u;
	if ((rc = get_str(p, o, "owner", "boot_id", r->owner.boot_id,
			  sizeof r->owner.boot_id, boot_id_ok)) < 0 ||
	    (rc = get_uint(p, o, "owner", "uid", 4294967294.0, &u)) < 0)
		return rc;
	r->owner.uid = (uid_t)u;
	if ((rc = get_str(p, o, "owner", "role", r->role, sizeof r->role,
			  shmk__role_ok)) < 0 ||
	    (rc = get_uint(p, o, "owner", "created", MAX_SAFE_INT, &u)) < 0)
		return rc;
	r->created = (int64_t)u;
	/* Version 2 names the pid namespace the pid and start time belong
	 * to; version 1 did not (0: unknown); version 3 does when known. */
	if (r->version == 1) {
		if (cJSON_GetObjectItemCaseSensitive(o, "pidns"))
			return bad(p, "owner.pidns is not a key of version 1");
	} else if (r->version == 3 &&
		   !cJSON_GetObjectItemCaseSensitive(o, "pidns")) {
		r->owner.pidns = 0;
	} else {
		if ((rc = get_uint(p, o, "owner", "pidns", MAX_SAFE_INT,
				   &r->owner.pidns)) < 0)
			return rc;
		if (r->owner.pidns == 0)
			return bad(p, "owner.pidns is 0");
	}

	segs = cJSON_GetObjectItemCaseSensitive(j, "segments");
	if (!cJSON_IsArray(segs))
		return bad(p, "\"segments\" is not an array");
	tl_ns = r->ns;
	cJSON_ArrayForEach(e, segs)
	{
		struct shmk_rec_seg s;
		if ((rc = parse_seg(p, e, &s)) < 0)
			return rc;
		if (shmk__table_get(&r->index, s.name))
			return bad(p, "segment %s listed twice", s.name);
		if ((rc = add_seg(r, &s, p)) < 0)
			return rc;
	}
	return 0;
}

static int parse_op(struct pctx *p, const cJSON *j, struct shmk_record *r)
{
	static const char *const ikeys[] = {"op", "name", "size", "created",
					    "kind", NULL};
	static const char *const lkeys[] = {"op", "name", "ino", NULL};
	static const char *const dkeys[] = {"op", "name", NULL};
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
	struct shmk_rec_seg s, *cur;
	uint64_t u;
	int rc;

	if (!cJSON_IsObject(j))
		return bad(p, "operation is not a JSON object");
	if (!cJSON_IsString(op))
		return bad(p, "operation lacks a string \"op\"");
	memset(&s, 0, sizeof s);
	tl_ns = r->ns;
	tl_version = r->version;
	if (strcmp(op->valuestring, "intent") == 0) {
		if ((rc = check_keys(p, j, "intent", ikeys)) < 0 ||
		    (rc = get_kind(p, j, "intent", &s.kind)) < 0)
			return rc;
		tl_kind = s.kind;
		if ((rc = get_str(p, j, "intent", "name", s.name,
				  sizeof s.name, seg_name_ok)) < 0 ||
		    (rc = get_uint(p, j, "intent", "size", MAX_SAFE_INT,
				   &s.size)) < 0 ||
		    (rc = get_uint(p, j, "intent", "created", MAX_SAFE_INT,
				   &u)) < 0)
			return rc;
		if (s.size == 0 && s.kind == SHMK_KIND_SEGMENT)
			return bad(p, "intent for %s has size 0", s.name);
		s.created = (int64_t)u;
		s.state = SHMK_SEG_INTENT;
		return add_seg(r, &s, p);
	}
	if (strcmp(op->valuestring, "live") == 0) {
		if ((rc = check_keys(p, j, "live", lkeys)) < 0 ||
		    (rc = get_str(p, j, "live", "name", s.name, sizeof s.name,
				  any_name_ok)) < 0 ||
		    (rc = get_uint(p, j, "live", "ino", MAX_SAFE_INT, &u)) < 0)
			return rc;
		/* A "live" for a name not in intent changes nothing: the
		 * record may only ever name more than exists, never less. */
		if ((cur = shmk__table_get(&r->index, s.name))) {
			cur->state = SHMK_SEG_LIVE;
			cur->ino = u;
		}
		return 0;
	}
	if (strcmp(op->valuestring, "drop") == 0) {
		if ((rc = check_keys(p, j, "drop", dkeys)) < 0 ||
		    (rc = get_str(p, j, "drop", "name", s.name, sizeof s.name,
				  any_name_ok)) < 0)
			return rc;
		free(shmk__table_del(&r->index, s.name));
		return 0;
	}
	return bad(p, "unknown operation \"%.20s\"", op->valuestring);
}

int shmk__record_parse_slow(const char *buf, size_t len, const char *expect_ns,
			    struct shmk_record *r, char *why, size_t whylen)
{
	struct pctx p = {.why = why, .whylen = whylen, .line = 1};
	const char *s = buf, *end = buf + len, *nl;
	size_t i = 0;
	void *v;
	int rc;

	memset(r, 0, sizeof *r);
	if (whylen)
		why[0] = '\0';
	if (shmk__table_init(&r->index, 16) < 0)
		return -ENOMEM;
	if (len == 0)
		return bad(&p, "empty file");
	if ((nl = memchr(buf, '\0', len))) {
		for (const char *q = buf; q < nl; q++)
			p.line += *q == '\n';
		return bad(&p, "NUL byte at offset %zu", (size_t)(nl - buf));
	}

	for (; s < end; s = nl + 1, p.line++) {
		cJSON *j;

		if (!(nl = memchr(s, '\n', (size_t)(end - s)))) {
			if (p.line == 1)
				return bad(&p, "truncated: the snapshot line "
					       "is incomplete");
			r->torn = true; /* a crash tore the last append */
			break;
		}
		if (!(j = parse_line(&p, s, (size_t)(nl - s), &rc)))
			return rc;
		if (p.line == 1)
			rc = parse_header(&p, j, expect_ns, r);
		else
			rc = parse_op(&p, j, r), r->n_ops++;
		cJSON_Delete(j);
		if (rc < 0)
			return rc;
	}

	r->segs = calloc(r->index.used ? r->index.used : 1, sizeof *r->segs);
	if (!r->segs)
		return -ENOMEM;
	for (size_t it = 0; (v = shmk__table_next(&r->index, &it));)
		r->segs[i++] = v;
	r->n_segs = i;
	shmk__record_sort(r);
	return 0;
}

