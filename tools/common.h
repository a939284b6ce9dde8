/* SPDX-License-Identifier: MIT */
/*
 * common.h - what the shmkeeper tools share: the program name, the
 * "prog: fatal: unable to VERB OBJECT: reason" style of messages, exit codes
 * (sysexits.h), argument parsing helpers, human sizes and times, and small
 * cJSON builders that never return NULL (out of memory is fatal).
 *
 * Only tools print; the library never does (STYLE.md, habit 2).
 */
#ifndef SHMK_TOOLS_COMMON_H
#define SHMK_TOOLS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#ifndef SHMK_TOOL_VERSION
#define SHMK_TOOL_VERSION "unknown"
#endif

/* Name the tool reports itself by ("shmclean"); set by tool_init(). */
extern const char *tool_prog;

/* Sets the name and ignores SIGPIPE (see tool_flush_stdout()). */
void tool_init(const char *prog);

/* "prog: fatal: <fmt>\n" on stderr, then exit(code). */
_Noreturn void tool_fatal(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "prog: warning: <fmt>\n" on stderr. */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: error: <fmt>\n" on stderr (a failure the tool carries on past). */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: usage: <fmt>\nTry 'prog --help'.\n" on stderr, exit(EX_USAGE). */
_Noreturn void tool_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* "prog <version> (libshmkeeper <version>)" on stdout. */
void tool_print_version(void);
/* What every tool's getopt_long() loop does with the options it does not
 * handle itself: 'h' usage(stdout) and exit 0, 'V' the version and exit
 * 0, ':' a missing argument and anything else unknown, usage errors
 * (opterr must be 0 and the optstring start with ':' or "+:"). */
_Noreturn void tool_opt_other(int c, char **argv, void (*usage)(FILE *));
/* Option values checked once for every tool: a directory (not empty) and a
 * namespace (shmk_ns_check).  A bad one is a usage error naming the option. */
const char *tool_opt_dir(const char *opt, const char *arg);
const char *tool_opt_ns(const char *opt, const char *arg);
/* Flushes stdout.  A failed write is reported once on stderr ("prog:
 * error: unable to write output: Broken pipe") and remembered, never fatal:
 * the job is finished first (tool_init() ignores SIGPIPE for this). */
void tool_flush_stdout(void);
/* The exit status of a run whose job ended with status: status itself, or
 * EX_IOERR if that is 0 and some output was lost (output that was silently
 * lost must not pass for a clean run; a job's own failure says more).
 * Flushes stdout first. */
int tool_status(int status);

/* Exit code for a library failure that keeps the tool from running at all:
 * a refused or unusable configuration (registry directory that is a
 * symlink, not ours, group/world writable, not a directory, a path too
 * long, an invalid name) is EX_CONFIG; anything else is EX_OSERR. */
int tool_exit_code_for(int rc);

/* The library's sentence for the last failure, minus a leading
 * "<prefix>: " when it starts so (to avoid saying the object twice). */
const char *tool_reason(const char *prefix);

/* Parses a decimal unsigned integer in [0, max]; false if not one. */
bool tool_parse_uint(const char *s, unsigned long long max,
		     unsigned long long *out);

/* Sizes in text output, one style for every tool: IEC units, with ls -h's
 * precision (libbsd humanize_number()): "0 B", "512 B", "4.0 KiB",
 * "12 KiB", "66 MiB" (at most 7 characters).  tool_hdelta() is the same
 * for a change, always signed: "+12 KiB", "-4.0 KiB", "+0 B".  Exact byte
 * counts are for JSON and CSV. */
#define TOOL_HSIZE 12
const char *tool_hsize(uint64_t bytes, char buf[TOOL_HSIZE]);
const char *tool_hdelta(int64_t delta, char buf[TOOL_HSIZE]);
/* Local time "2024-05-01 12:34:56", or "-" for 0. */
#define TOOL_HTIME 32
const char *tool_htime(int64_t t, char buf[TOOL_HTIME]);
/* Durations "42s", "3m05s", "2h03m", "4d02h". */
#define TOOL_HAGE 24
const char *tool_hage(int64_t secs, char buf[TOOL_HAGE]);

/* Appends "<sep><fmt>" to the string in buf (just "<fmt>" if it is empty),
 * truncating at sz: for sentences of parts ("3 reaped, 1 kept"). */
void tool_part(char *buf, size_t sz, const char *sep, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Plural helper: "segment" / "segments". */
static inline const char *tool_s(size_t n) { return n == 1 ? "" : "s"; }

/* cJSON builders: each returns the new node, never NULL (fatal EX_OSERR on
 * out of memory).  The node is owned by its parent. */
/* The root object of a tool's JSON document: caller owns it.  Every tool's
 * JSON output starts with the same two members as the library's own files
 * (registry marker, records, claims): "format" names the document,
 * "shmkeeper-<what>" (e.g. "shmkeeper-shmls"), and "version" is its
 * version, an integer (TOOL_JSON_VERSION) raised whenever a member changes
 * meaning or goes away (adding members does not raise it). */
#define TOOL_JSON_VERSION 1
cJSON *tj_document(const char *format);
cJSON *tj_obj(cJSON *parent, const char *key);
cJSON *tj_arr(cJSON *parent, const char *key);
cJSON *tj_arr_obj(cJSON *array); /* appends a new object to array */
void tj_arr_str(cJSON *array, const char *v); /* appends a string */
void tj_arr_num(cJSON *array, double v);      /* appends a number */
void tj_str(cJSON *o, const char *key, const char *v); /* NULL -> null */
void tj_num(cJSON *o, const char *key, double v); /* exact up to 2^53 */
void tj_bool(cJSON *o, const char *key, bool v);
void tj_null(cJSON *o, const char *key);
/* Prints doc (formatted, one document, final newline) on stdout and frees
 * it. */
void tj_print(cJSON *doc);

/* OpenMetrics text exposition on stdout, for Prometheus (node_exporter's
 * textfile collector reads such files).  Every family is a gauge: each run
 * writes the state of that run (the file is replaced, not appended), and
 * an OpenMetrics counter, whose samples end in "_total" unlike its family,
 * is not read back as one by the Prometheus text parser node_exporter and
 * promtool use.  A family is declared once (TYPE, UNIT if not NULL, HELP)
 * and its samples follow it; the output ends with tom_eof().  Names must
 * be [a-z_]+ and a family with a unit ends in "_<unit>" (OpenMetrics). */
void tom_family(const char *name, const char *unit, const char *help);
/* One sample: name{k1="v1",k2="v2"} value.  The label pairs end with NULL;
 * values are escaped (backslash, double quote, newline) and invalid UTF-8
 * becomes U+FFFD.  tom_u64 prints the integer exactly; tom_f with up to
 * millisecond precision (timestamps, durations). */
void tom_u64(const char *name, uint64_t v, ...)
	__attribute__((sentinel));
void tom_f(const char *name, double v, ...) __attribute__((sentinel));
/* "# EOF": the exposition is complete (a reader can tell a cut file). */
void tom_eof(void);

#endif
