/* SPDX-License-Identifier: MIT */
/* fuzz_names.c - libFuzzer target for what a namespace, a segment name, an
 * owner id and a role may be (lib/names.c).
 *
 * The input, as a C string (cut at its first NUL), is checked whole; it is
 * also split at its first '\n' into a namespace and a name, and each part
 * is checked too.  Every predicate is compared with a reference written
 * from the documented alphabets (registry/README.md, shmkeeper.h):
 *
 *   namespace   [A-Za-z0-9_-]{1,32}
 *   name        [A-Za-z0-9_.-]{1,200}, not starting with '.' (so never "."
 *               or ".."), no '/'; shmk_name_check() says -ENAMETOOLONG
 *               beyond 200 bytes and -EINVAL for any other refusal
 *   owner id    p<pid>-<start>-<8 of [0-9a-f]>, pid 1..4194304 and start
 *               0..2^64-1 in decimal without leading zeros; owner file
 *               names "<id>.lock", "<id>.jsonl", ".<id>.lock.tmp",
 *               ".<id>.jsonl.tmp" (shmk__ofile_parse/_name)
 *   role        [A-Za-z0-9 _.:@/+-]{0,64}
 *
 * and for an accepted pair, "/<ns>.<name>" (and "<ns>.<name>") fits a shm
 * name and passes shmk__fullname_in_ns(full, ns) but not for another
 * namespace that is a prefix or an extension of ns; a full name passes for
 * at most one namespace, the part before its first dot.  Any difference is
 * an abort().
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz_names: %s:%d: violated: %s: ",  \
				__FILE__, __LINE__, #cond);                  \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the references ------------------------------------------------------ */

static bool in(const char *alphabet, char c)
{
	return c && strchr(alphabet, c);
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

static bool all_of(const char *s, const char *alphabet)
{
	for (; *s; s++)
		if (!in(alphabet, *s))
			return false;
	return true;
}

static bool ref_ns(const char *s)
{
	size_t n = strlen(s);

	/* "sem" is refused: glibc keeps named semaphores as "sem.<name>". */
	return n >= 1 && n <= SHMK_NS_MAX && all_of(s, ALNUM "_-") &&
	       strcmp(s, "sem") != 0;
}

static bool ref_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= SHMK_SEGNAME_MAX && s[0] != '.' &&
	       all_of(s, ALNUM "_.-");
}

/* "p<pid>-<start>-<8 lowercase hex>", written from registry/README.md
 * with sscanf-free reasoning: split at the two dashes. */
static bool ref_dec(const char *s, size_t n, bool zero_ok,
		    const char *max)
{
	size_t ml = strlen(max);

	if (n == 0 || n > ml || strspn(s, "0123456789") < n)
		return false;
	if (s[0] == '0')
		return zero_ok && n == 1;
	return n < ml || strncmp(s, max, n) <= 0;
}

static bool ref_owner_id(const char *s)
{
	const char *d1, *d2;

	if (s[0] != 'p' || !(d1 = strchr(s + 1, '-')) ||
	    !(d2 = strchr(d1 + 1, '-')))
		return false;
	return ref_dec(s + 1, (size_t)(d1 - s - 1), false, "4194304") &&
	       ref_dec(d1 + 1, (size_t)(d2 - d1 - 1), true,
		       "18446744073709551615") &&
	       strlen(d2 + 1) == 8 &&
	       strspn(d2 + 1, "0123456789abcdef") == 8;
}

/* Owner file names round trip through shmk__ofile_name/_parse, and a name
 * is an owner file exactly when it is one of the four shapes around a
 * valid id. */
static void check_ofile(const char *s)
{
	static const char *const shape[][2] = {
		{"", ".lock"}, {"", ".jsonl"}, {".", ".lock.tmp"},
		{".", ".jsonl.tmp"}};
	char id[SHMK_ID_MAX], name[SHMK_ID_MAX + 16];
	enum shmk_ofile kind;
	bool parsed = shmk__ofile_parse(s, id, &kind), ref = false;
	size_t n = strlen(s);

	for (size_t k = 0; k < 4; k++) {
		size_t p = strlen(shape[k][0]), q = strlen(shape[k][1]);
		char cand[512];

		if (n <= p + q || n - p - q >= sizeof cand ||
		    strncmp(s, shape[k][0], p) || strcmp(s + n - q, shape[k][1]))
			continue;
		memcpy(cand, s + p, n - p - q);
		cand[n - p - q] = '\0';
		if (ref_owner_id(cand)) {
			ref = true;
			CHECK(parsed && kind == (enum shmk_ofile)(k + 1) &&
				      !strcmp(id, cand),
			      "shmk__ofile_parse(\"%s\")", s);
		}
	}
	CHECK(parsed == ref, "shmk__ofile_parse(\"%s\") = %d, reference %d",
	      s, (int)parsed, (int)ref);
	if (parsed) {
		int l = shmk__ofile_name(id, kind, name, sizeof name);
		CHECK(l > 0 && !strcmp(name, s), "shmk__ofile_name(%s, %d)", id,
		      (int)kind);
	}
}

static bool ref_role(const char *s)
{
	return strlen(s) <= SHMK_ROLE_MAX && all_of(s, ALNUM " _.:@/+-");
}

/* Is full "/<ns>.<name>" or "<ns>.<name>" with name valid? */
static bool ref_fullname(const char *full, const char *ns)
{
	size_t l = strlen(ns);

	if (full[0] == '/')
		full++;
	return strncmp(full, ns, l) == 0 && full[l] == '.' &&
	       ref_name(full + l + 1);
}

/* ---- the checks ---------------------------------------------------------- */

static bool check_ns(const char *s)
{
	int rc = shmk_ns_check(s);
	bool ok = shmk__ns_ok(s), ref = ref_ns(s);

	CHECK(rc == 0 || rc == -EINVAL, "shmk_ns_check(\"%s\") = %d", s, rc);
	CHECK((rc == 0) == ref, "shmk_ns_check(\"%s\") = %d, reference %d", s,
	      rc, (int)ref);
	CHECK(ok == ref, "shmk__ns_ok(\"%s\") = %d, reference %d", s, (int)ok,
	      (int)ref);
	CHECK(rc == 0 || strstr(shmk_last_error(), "namespace"),
	      "error \"%s\"", shmk_last_error());
	if (ok) { /* spelled out, as the brief of the format says it */
		CHECK(!strchr(s, '.') && !strchr(s, '/') &&
			      strlen(s) <= SHMK_NS_MAX,
		      "namespace \"%s\"", s);
	}
	return ok;
}

static bool check_name(const char *s)
{
	int rc = shmk_name_check(s);
	bool ok = shmk__segname_ok(s), ref = ref_name(s);
	size_t n = strlen(s);

	CHECK((rc == 0) == ref, "shmk_name_check(\"%s\") = %d, reference %d",
	      s, rc, (int)ref);
	CHECK(ok == ref, "shmk__segname_ok(\"%s\") = %d, reference %d", s,
	      (int)ok, (int)ref);
	CHECK(rc == 0 || rc == (n > SHMK_SEGNAME_MAX ? -ENAMETOOLONG : -EINVAL),
	      "shmk_name_check(\"%s\") (%zu bytes) = %d", s, n, rc);
	CHECK(rc == 0 || strstr(shmk_last_error(), "segment name"),
	      "error \"%s\"", shmk_last_error());
	if (rc == 0) {
		CHECK(!strchr(s, '/'), "name \"%s\" holds a '/'", s);
		CHECK(strcmp(s, ".") && strcmp(s, ".."), "name \"%s\"", s);
		CHECK(s[0] != '.', "name \"%s\" starts with '.'", s);
		CHECK(n >= 1 && n <= SHMK_SEGNAME_MAX, "name of %zu bytes", n);
		CHECK(all_of(s, ALNUM "_.-"), "name \"%s\"", s);
	}
	return rc == 0;
}

static void check_owner_role(const char *s)
{
	bool id = shmk__owner_id_ok(s), role = shmk__role_ok(s);

	CHECK(id == ref_owner_id(s), "shmk__owner_id_ok(\"%s\") = %d", s,
	      (int)id);
	CHECK(role == ref_role(s), "shmk__role_ok(\"%s\") = %d", s, (int)role);
	if (id) /* a file name <id>.jsonl: no dot, no slash */
		CHECK(!strchr(s, '.') && !strchr(s, '/'), "owner id \"%s\"", s);
	if (role) /* written into JSON unescaped by shmk__fmt_header_open() */
		CHECK(!strchr(s, '"') && !strchr(s, '\\'), "role \"%s\"", s);
}

/* full against a valid namespace ns. */
static void check_fullname(const char *full, const char *ns)
{
	bool ok = shmk__fullname_in_ns(full, ns);
	const char *f = full[0] == '/' ? full + 1 : full;
	const char *dot = strchr(f, '.');

	CHECK(ok == ref_fullname(full, ns),
	      "shmk__fullname_in_ns(\"%s\", \"%s\") = %d", full, ns, (int)ok);
	/* The namespace of a full name is the part before its first dot:
	 * no other namespace can claim it. */
	if (ok)
		CHECK(dot && (size_t)(dot - f) == strlen(ns) &&
			      strncmp(f, ns, strlen(ns)) == 0,
		      "\"%s\" claimed by namespace \"%s\"", full, ns);
}

/* An accepted namespace and an accepted name. */
static void check_pair(const char *ns, const char *name)
{
	char full[SHMK_SHM_NAME_MAX + 8], other[SHMK_NS_MAX + 8];
	size_t l = strlen(ns);
	int n;

	n = snprintf(full, sizeof full, "/%s.%s", ns, name);
	CHECK(n > 0 && (size_t)n < SHMK_SHM_NAME_MAX,
	      "\"/%s.%s\" does not fit a shm name (%d bytes)", ns, name, n);
	CHECK(n <= 255, "\"/%s.%s\": longer than NAME_MAX", ns, name);
	CHECK(shmk__fullname_in_ns(full, ns), "\"%s\" not in \"%s\"", full,
	      ns);
	CHECK(shmk__fullname_in_ns(full + 1, ns), "\"%s\" not in \"%s\"",
	      full + 1, ns);
	check_fullname(full, ns);

	/* Not in a namespace that extends ns, nor in one that ns extends. */
	snprintf(other, sizeof other, "%s_", ns);
	CHECK(!shmk__fullname_in_ns(full, other), "\"%s\" in \"%s\"", full,
	      other);
	if (l > 1) {
		memcpy(other, ns, l - 1);
		other[l - 1] = '\0';
		CHECK(!shmk__fullname_in_ns(full, other), "\"%s\" in \"%s\"",
		      full, other);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;
	char *s, *a, *b, *nl;
	bool ns_a, ns_s, name_b, name_s;

	if (size > 4096)
		return 0;
	if (!once) { /* NULL, once */
		once = true;
		CHECK(shmk_ns_check(NULL) == -EINVAL, "shmk_ns_check(NULL)");
		CHECK(shmk_name_check(NULL) == -EINVAL, "shmk_name_check(NULL)");
		CHECK(!shmk__ns_ok(NULL) && !shmk__segname_ok(NULL) &&
			      !shmk__owner_id_ok(NULL) && shmk__role_ok(NULL),
		      "NULL");
	}

	s = malloc(size + 1);
	CHECK(s, "out of memory");
	memcpy(s, data, size);
	s[size] = '\0';

	/* Split at the first '\n' (of the C string): ns "\n" name. */
	a = strdup(s);
	CHECK(a, "out of memory");
	nl = strchr(a, '\n');
	b = nl ? nl + 1 : a + strlen(a);
	if (nl)
		*nl = '\0';

	ns_s = check_ns(s);
	name_s = check_name(s);
	check_owner_role(s);
	check_ofile(s);
	ns_a = check_ns(a);
	(void)check_name(a);
	check_owner_role(a);
	(void)check_ns(b);
	name_b = check_name(b);
	check_owner_role(b);
	check_ofile(b);

	/* Full names. */
	check_fullname(s, "fix");
	if (ns_a) {
		check_fullname(s, a);
		check_fullname(b, a);
		if (name_b)
			check_pair(a, b);
		if (name_s)
			check_pair(a, s);
	}
	if (ns_s) {
		check_fullname(b, s);
		if (name_b)
			check_pair(s, b);
		if (name_s)
			check_pair(s, s);
	}
	if (name_s)
		check_pair("fix", s);
	if (name_b)
		check_pair("fix", b);

	free(a);
	free(s);
	return 0;
}
