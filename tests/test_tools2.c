/* test_tools2.c - the tools under load and abuse: a reader that goes away
 * (SIGPIPE), tens of thousands of owners, namespaces that are not ours to
 * use, and a registry fallback another user has squatted.
 *
 * Tools run as the built programs (SHMK_BUILDDIR/tools/<tool>) through
 * run_tool_opts(); owners are made dead for real (a child that creates
 * segments and _exit()s without closing) or written as files. */
#include "helpers.h"
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(tools2, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define SHMCLEAN SHMK_BUILDDIR "/tools/shmclean"
#define SHMLS SHMK_BUILDDIR "/tools/shmls"

/* argv of tool with the NULL-terminated arguments (at most 30). */
static void mkargv(char *argv[32], const char *tool, va_list ap)
{
	const char *a;
	int n = 0;

	argv[n++] = (char *)tool;
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	argv[n] = NULL;
}

/* Runs tool with the options ro and the NULL-terminated arguments. */
static struct out run_with(const struct run_opts *ro, const char *tool, ...)
	__attribute__((sentinel));
static struct out run_with(const struct run_opts *ro, const char *tool, ...)
{
	char *argv[32];
	va_list ap;

	va_start(ap, tool);
	mkargv(argv, tool, ap);
	va_end(ap);
	return run_tool_opts(tool, argv, NULL, ro);
}

/* ---- shmls at scale ---------------------------------------------------------- */

/* Writes n owners into T.ns_dir as files: a lock file nobody holds and a
 * small valid record (no segments) of a pid that does not exist. */
static void write_owners(size_t n)
{
	char id[SHMK_ID_MAX], name[SHMK_ID_MAX + 16], buf[1024];

	cr_assert(mkdir(T.ns_dir, 0700) == 0 || errno == EEXIST);
	for (size_t i = 0; i < n; i++) {
		struct shmk_ident who = {.pid = 4000000 + (pid_t)i,
					 .start_time = 1, .uid = geteuid()};
		int len;

		snprintf(id, sizeof id, "p%d-1-%08x", (int)who.pid,
			 (unsigned)(i * 2654435761u));
		len = shmk__fmt_header_open(buf, sizeof buf, T.ns, id, &who,
					    "", 1);
		cr_assert_gt(len, 0);
		len += snprintf(buf + len, sizeof buf - (size_t)len, "]}\n");
		snprintf(name, sizeof name, "%s" SHMK_REC_SUFFIX, id);
		put_file(name, buf, (size_t)len);
		snprintf(name, sizeof name, "%s" SHMK_LOCK_SUFFIX, id);
		put_file(name, "", 0);
	}
}

/* 30,000 owners: a linear search per directory entry (the old owner
 * lookup) needs about 6 s of CPU here, one hash lookup 1 to 2 s.  The
 * CPU limit (SIGXCPU) turns "quadratic" into a failure without timing
 * anything in the test itself.  Writing and removing 60,000 files takes a
 * while on a busy disk: the timeout is only a hang guard. */
Test(tools2, shmls_lists_30000_owners_within_4_cpu_seconds, .timeout = 240)
{
	enum { N = 30000 };
	struct run_opts ro = {.cpu_secs = 4};
	struct out r;
	cJSON *doc, *ns;

	write_owners(N);
	r = run_with(&ro, SHMLS, "--dir", T.dir, "--namespace", T.ns,
		     "--json", NULL);
	cr_assert_eq(r.code, 0, "shmls exited %d (152: over its CPU limit)\n%s",
		     r.code, r.err);
	doc = cJSON_Parse(r.out);
	cr_assert_not_null(doc, "not JSON: %.200s", r.out);
	ns = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "namespaces"), 0);
	cr_assert_not_null(ns);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ns, "owners")), N);
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(
			     cJSON_GetObjectItem(doc, "totals"), "owners_dead")),
		     N);
	cJSON_Delete(doc);
	out_free(&r);
}
