/* SPDX-License-Identifier: MIT */
/* common.c - messages, exit codes and helpers shared by the tools; see
 * common.h. */
#include "common.h"

#include "shmkeeper.h"

#include <bsd/libutil.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *tool_prog = "shmkeeper";

/* The first failed write to standard output (an errno), 0 if none. */
static int out_errno;

void tool_init(const char *prog)
{
	tool_prog = prog;
	/* A reader that goes away ("| head -1") must not kill us between two
	 * steps of the job: the write fails with EPIPE instead, is reported
	 * once, and the job goes on (tool_status()). */
	signal(SIGPIPE, SIG_IGN);
}

void tool_flush_stdout(void)
{
	int e;

	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return;
	/* glibc keeps the unwritten bytes, so fflush() retried the failed
	 * write and errno is its reason. */
	e = errno ? errno : EIO;
	if (out_errno)
		return;
	out_errno = e;
	fprintf(stderr, "%s: error: unable to write output: %s\n", tool_prog,
		strerror(e));
}

int tool_status(int status)
{
	tool_flush_stdout();
	return status == 0 && out_errno ? EX_IOERR : status;
}

static void vsay(const char *kind, const char *fmt, va_list ap)
{
	/* Anything already on stdout goes first, so that a reader of both
	 * streams sees events in order. */
	tool_flush_stdout();
	fprintf(stderr, "%s: %s: ", tool_prog, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void tool_fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("fatal", fmt, ap);
	va_end(ap);
	exit(code);
}

void tool_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("warning", fmt, ap);
	va_end(ap);
}

void tool_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("error", fmt, ap);
	va_end(ap);
}

void tool_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("usage", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", tool_prog);
	exit(EX_USAGE);
}

void tool_print_version(void)
{
	printf("%s %s (libshmkeeper %s)\n", tool_prog, SHMK_TOOL_VERSION,
	       shmk_version());
}

int tool_exit_code_for(int rc)
{
	switch (-rc) {
	case EPERM:
	case EACCES:
	case ELOOP:
	case ENOTDIR:
	case ENAMETOOLONG:
	case EINVAL:
	case ENOTEMPTY:       /* not a registry (no marker, not empty) */
	case EPROTONOSUPPORT: /* a registry of a newer version */
	case EBUSY:           /* the namespace is bound to another registry */
		return EX_CONFIG;
	default:
		return EX_OSERR;
	}
}

const char *tool_reason(const char *prefix)
{
	const char *e = shmk_last_error();
	size_t n = prefix ? strlen(prefix) : 0;

	if (n && strncmp(e, prefix, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
		return e + n + 2;
	return e[0] ? e : "unknown error";
}

bool tool_parse_uint(const char *s, unsigned long long max,
		     unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || s[0] < '0' || s[0] > '9')
		return false; /* no sign, no space, no empty string */
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* The one size formatter: sign ("" or "+"/"-") and magnitude. */
static const char *fmt_size(char buf[TOOL_HSIZE], const char *sign,
			    uint64_t bytes)
{
	char n[8];

	/* A width of 8 gives 7 characters at most, ls -h style: "4.0 KiB",
	 * "999 KiB", "1.0 MiB". */
	if (bytes > INT64_MAX ||
	    humanize_number(n, sizeof n, (int64_t)bytes, "B", HN_AUTOSCALE,
			    HN_DECIMAL | HN_IEC_PREFIXES) < 0)
		snprintf(n, sizeof n, "huge");
	snprintf(buf, TOOL_HSIZE, "%s%s", sign, n);
	return buf;
}

const char *tool_hsize(uint64_t bytes, char buf[TOOL_HSIZE])
{
	return fmt_size(buf, "", bytes);
}

const char *tool_hdelta(int64_t d, char buf[TOOL_HSIZE])
{
	return fmt_size(buf, d < 0 ? "-" : "+",
			d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d);
}

const char *tool_htime(int64_t t, char buf[TOOL_HTIME])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) ||
	    strftime(buf, TOOL_HTIME, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, TOOL_HTIME, "-");
	return buf;
}

const char *tool_hage(int64_t s, char buf[TOOL_HAGE])
{
	if (s < 0)
		s = 0; /* clock stepped back */
	if (s < 60)
		snprintf(buf, TOOL_HAGE, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, TOOL_HAGE, "%lldm%02llds", (long long)s / 60,
			 (long long)s % 60);
	else if (s < 86400)
		snprintf(buf, TOOL_HAGE, "%lldh%02lldm", (long long)s / 3600,
			 (long long)s % 3600 / 60);
	else
		snprintf(buf, TOOL_HAGE, "%lldd%02lldh", (long long)s / 86400,
			 (long long)s % 86400 / 3600);
	return buf;
}

void tool_part(char *buf, size_t sz, const char *sep, const char *fmt, ...)
{
	size_t n = strlen(buf), l = strlen(sep);
	va_list ap;

	if (n && n + l < sz) {
		memcpy(buf + n, sep, l + 1);
		n += l;
	}
	va_start(ap, fmt);
	if (n < sz)
		vsnprintf(buf + n, sz - n, fmt, ap);
	va_end(ap);
}

/* ---- JSON ------------------------------------------------------------------ */

static cJSON *must(cJSON *n)
{
	if (!n)
		tool_fatal(EX_OSERR, "unable to build JSON output: out of memory");
	return n;
}

cJSON *tj_document(const char *format)
{
	cJSON *doc = must(cJSON_CreateObject());

	tj_str(doc, "format", format);
	tj_num(doc, "version", TOOL_JSON_VERSION);
	return doc;
}
cJSON *tj_obj(cJSON *p, const char *k) { return must(cJSON_AddObjectToObject(p, k)); }
cJSON *tj_arr(cJSON *p, const char *k) { return must(cJSON_AddArrayToObject(p, k)); }

cJSON *tj_arr_obj(cJSON *a)
{
	cJSON *o = must(cJSON_CreateObject());

	if (!cJSON_AddItemToArray(a, o)) {
		cJSON_Delete(o);
		must(NULL);
	}
	return o;
}

void tj_arr_num(cJSON *a, double v)
{
	cJSON *s = must(cJSON_CreateNumber(v));

	if (!cJSON_AddItemToArray(a, s)) {
		cJSON_Delete(s);
		must(NULL);
	}
}

void tj_arr_str(cJSON *a, const char *v)
{
	cJSON *s = must(cJSON_CreateString(v));

	if (!cJSON_AddItemToArray(a, s)) {
		cJSON_Delete(s);
		must(NULL);
	}
}

void tj_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		must(cJSON_AddStringToObject(o, k, v));
	else
		must(cJSON_AddNullToObject(o, k));
}

void tj_num(cJSON *o, const char *k, double v) { must(cJSON_AddNumberToObject(o, k, v)); }
void tj_bool(cJSON *o, const char *k, bool v) { must(cJSON_AddBoolToObject(o, k, v)); }
void tj_null(cJSON *o, const char *k) { must(cJSON_AddNullToObject(o, k)); }

void tj_print(cJSON *doc)
{
	char *s = cJSON_Print(doc);

	cJSON_Delete(doc);
	if (!s)
		must(NULL);
	fputs(s, stdout);
	fputc('\n', stdout);
	cJSON_free(s);
	tool_flush_stdout();
}

const char *tool_opt_dir(const char *opt, const char *arg)
{
	if (!arg[0])
		tool_usage_error("%s: empty directory name", opt);
	return arg;
}

const char *tool_opt_ns(const char *opt, const char *arg)
{
	if (shmk_ns_check(arg) < 0)
		tool_usage_error("%s: %s", opt, shmk_last_error());
	return arg;
}

void tool_opt_other(int c, char **argv, void (*usage)(FILE *))
{
	switch (c) {
	case 'h':
		usage(stdout);
		exit(tool_status(0));
	case 'V':
		tool_print_version();
		exit(tool_status(0));
	case ':':
		tool_usage_error("option %s needs an argument", argv[optind - 1]);
	default:
		if (optopt)
			tool_usage_error("unknown option -%c", optopt);
		tool_usage_error("unknown option %s", argv[optind - 1]);
	}
}

/* ---- OpenMetrics ------------------------------------------------------------ */

void tom_family(const char *name, const char *unit, const char *help)
{
	printf("# TYPE %s gauge\n", name);
	if (unit)
		printf("# UNIT %s %s\n", name, unit);
	printf("# HELP %s %s\n", name, help);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static void label_value(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p;) {
		size_t n = utf8_len(p);

		if (*p == '\\' || *p == '"')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (n)
			fwrite(p, 1, n, stdout);
		else
			fputs("\xef\xbf\xbd", stdout); /* U+FFFD */
		p += n ? n : 1;
	}
}

static void sample_start(const char *name, va_list ap)
{
	const char *k, *sep = "{";

	fputs(name, stdout);
	while ((k = va_arg(ap, const char *))) {
		printf("%s%s=\"", sep, k);
		label_value(va_arg(ap, const char *));
		putchar('"');
		sep = ",";
	}
	if (sep[0] == ',')
		putchar('}');
}

void tom_u64(const char *name, uint64_t v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_start(name, ap);
	va_end(ap);
	printf(" %llu\n", (unsigned long long)v);
}

void tom_f(const char *name, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_start(name, ap);
	va_end(ap);
	printf(" %.3f\n", v);
}

void tom_eof(void)
{
	puts("# EOF");
}
