/* SPDX-License-Identifier: MIT */
/* shmclean - reap the shared memory segments of dead owners.
 *
 * Run at boot or before a service starts.  All the deciding is done by the
 * library (shmk_reap): an owner is dead only when its lock can be taken, a
 * segment is unlinked only if it is a regular file of our uid under the
 * namespace prefix, symlinks are never followed, a bad record is
 * quarantined and never used as grounds to unlink.  This program picks the
 * namespaces, prints what happened and turns it into an exit code
 * (docs/shmclean.1):
 *   0           everything found was handled
 *   EX_DATAERR  some record was quarantined (a boot script should notice)
 *   EX_TEMPFAIL some object could not be handled, or some owner's liveness
 *               could not be established (unknown is never success); the
 *               rest was done
 *   EX_USAGE    bad arguments
 *   EX_CONFIG   the registry directory is refused or unusable
 *   EX_OSERR    cannot run for another system reason
 *   EX_IOERR    the report could not be (wholly) written; the job was
 *               done all the same (a reader that goes away, as in
 *               "shmclean | head -1", does not stop it)
 *
 * --openmetrics prints the run's outcome per namespace in the OpenMetrics
 * text format instead of the report (errors and warnings still go to
 * stderr), for Prometheus' node_exporter textfile collector; also when the
 * reap cannot run at all (shmkeeper_reap_ok 0), so that the file a timer
 * writes never goes stale in silence.
 */
#include "common.h"
#include "shmkeeper.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct opts {
	const char *dir, *ns, *shm_dir;
	bool all, dry_run, strays, json, adopt, openmetrics;
	int verbose; /* -1 quiet, 0 normal, 1 verbose */
	unsigned long long min_age;
	bool min_age_set;
};

/* One namespace's outcome. */
struct ns_run {
	char ns[SHMK_NS_MAX + 1];
	int rc;
	struct shmk_reap_report *rep; /* owned; NULL if none */
	char failure[512];            /* why the reap failed (rc not 0/-EIO) */
};

struct totals {
	size_t owners_dead, owners_alive;
	size_t segments_reaped, segments_gone, segments_live;
	size_t strays_kept, strays_removed;
	size_t quarantined, errors;
	uint64_t bytes_reaped, bytes_live, bytes_strays;
	size_t owners_unknown, segments_kept;
	uint64_t bytes_kept;
	size_t segments_held;
	uint64_t bytes_held;
};

static void usage(FILE *f)
{
	fputs("Usage: shmclean [--dir DIR] [--namespace NS | --all] [--dry-run] [--strays]\n"
	      "                [--min-age SECONDS] [--shm-dir DIR] [--json | --openmetrics]\n"
	      "                [-q | -v]\n"
	      "       shmclean --adopt [--dir DIR]\n"
	      "       shmclean -h | --help | -V | --version\n"
	      "\n"
	      "Reaps the POSIX shared memory segments of dead shmkeeper owners.\n"
	      "\n"
	      "Options:\n"
	      "  --dir DIR          registry directory (default: $SHMKEEPER_DIR, else\n"
	      "                     /run/shmkeeper for root, else\n"
	      "                     $XDG_RUNTIME_DIR/shmkeeper, else\n"
	      "                     /run/user/UID/shmkeeper or ~/.local/state/shmkeeper)\n"
	      "  --namespace NS     only this namespace\n"
	      "  --all              every namespace in the directory (default)\n"
	      "  --dry-run          report what would be done, change nothing\n"
	      "  --strays           also unlink strays: \"/<ns>.*\" objects that no\n"
	      "                     record names (old enough, ours and unused only)\n"
	      "  --min-age SECONDS  a stray younger than this is kept (default: 60)\n"
	      "  --shm-dir DIR      shared memory directory (default: /dev/shm)\n"
	      "  --json             one JSON document on standard output\n"
	      "  --openmetrics      the outcome per namespace as OpenMetrics text\n"
	      "                     (for node_exporter's textfile collector)\n"
	      "  --adopt            mark DIR as a registry (one made by a\n"
	      "                     pre-release build, which wrote no marker) if\n"
	      "                     all it holds is namespaces of owner files;\n"
	      "                     reap nothing\n"
	      "  -q, --quiet        print errors only\n"
	      "  -v, --verbose      also show live owners and their segments\n"
	      "  -h, --help         show this help and exit\n"
	      "  -V, --version      show the version and exit\n"
	      "\n"
	      "Exit status:\n"
	      "  0    everything found was handled\n"
	      "  64   usage error\n"
	      "  65   a record was quarantined\n"
	      "  71   system error\n"
	      "  74   the report could not be written\n"
	      "  75   some object could not be handled or some owner's liveness\n"
	      "       is unknown\n"
	      "  78   registry, namespace or shared memory directory refused\n"
	      "See shmclean(1).\n",
	      f);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_DIR = 256, O_NS, O_ALL, O_DRY, O_STRAYS, O_MINAGE, O_JSON,
	       O_SHM, O_ADOPT, O_OM };
	static const struct option lo[] = {
		{"dir", required_argument, NULL, O_DIR},
		{"namespace", required_argument, NULL, O_NS},
		{"all", no_argument, NULL, O_ALL},
		{"dry-run", no_argument, NULL, O_DRY},
		{"strays", no_argument, NULL, O_STRAYS},
		{"min-age", required_argument, NULL, O_MINAGE},
		{"shm-dir", required_argument, NULL, O_SHM},
		{"json", no_argument, NULL, O_JSON},
		{"adopt", no_argument, NULL, O_ADOPT},
		{"openmetrics", no_argument, NULL, O_OM},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	bool q = false, v = false;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qvhV", lo, NULL)) != -1) {
		switch (c) {
		case O_DIR:
			o->dir = tool_opt_dir("--dir", optarg);
			break;
		case O_NS:
			o->ns = tool_opt_ns("--namespace", optarg);
			break;
		case O_ALL: o->all = true; break;
		case O_DRY: o->dry_run = true; break;
		case O_STRAYS: o->strays = true; break;
		case O_MINAGE:
			if (!tool_parse_uint(optarg, UINT32_MAX, &o->min_age))
				tool_usage_error("--min-age: \"%s\" is not a "
						 "number of seconds",
						 optarg);
			o->min_age_set = true;
			break;
		case O_SHM:
			o->shm_dir = tool_opt_dir("--shm-dir", optarg);
			break;
		case O_JSON: o->json = true; break;
		case O_ADOPT: o->adopt = true; break;
		case O_OM: o->openmetrics = true; break;
		case 'q': q = true; break;
		case 'v': v = true; break;
		default: tool_opt_other(c, argv, usage);
		}
	}
	if (optind < argc)
		tool_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->all && o->ns)
		tool_usage_error("--all and --namespace exclude each other");
	if (q && v)
		tool_usage_error("-q and -v exclude each other");
	if (o->json && o->openmetrics)
		tool_usage_error("--json and --openmetrics exclude each other");
	if (o->openmetrics && v)
		tool_usage_error("-v and --openmetrics exclude each other");
	if (o->adopt && (o->all || o->ns || o->dry_run || o->strays ||
			 o->min_age_set || o->shm_dir || o->json ||
			 o->openmetrics))
		tool_usage_error("--adopt takes --dir only");
	/* The metrics are the report: only errors and warnings besides. */
	o->verbose = q || o->openmetrics ? -1 : v ? 1 : 0;
}

static unsigned reap_flags(const struct opts *o, unsigned *min_age)
{
	unsigned f = 0;

	if (o->dry_run)
		f |= SHMK_REAP_DRY_RUN;
	if (o->strays)
		f |= SHMK_REAP_STRAYS;
	*min_age = 0; /* the library's default, 60 s */
	if (o->min_age_set) {
		*min_age = (unsigned)o->min_age;
		if (o->min_age == 0) {
#ifdef SHMK_REAP_ANY_AGE
			f |= SHMK_REAP_ANY_AGE;
#else
			/* The library reads 0 as "default": ask for the
			 * smallest age it can express. */
			*min_age = 1;
#endif
		}
	}
	return f;
}

/* The namespaces under the registry directory, sorted (the library's
 * scan, reading nothing inside them).  Returns the count; *out is
 * malloc'd (free each and the array).  A missing directory is no
 * namespace at all; a refused one is fatal.  Symlinks with a namespace's
 * name are listed too, so that the library refuses them and the refusal
 * is reported, rather than skipped in silence.
 *
 * Why not shmk_reap() with ns = NULL: it stops telling "could not run at
 * all" from "one namespace failed" (both are a plain errno), and here the
 * first is fatal while the second only makes the exit status 75. */
static void om_failed(const struct opts *o, const char *dir, double start,
		      int code);

static size_t list_namespaces(const struct opts *o, const char *dir,
			      double start, char ***out)
{
	struct shmk_scan_options so = {.dir = dir,
				       .flags = SHMK_SCAN_NAMES_ONLY};
	struct shmk_scan *sc;
	char **v = NULL;
	int rc;

	*out = NULL;
	if ((rc = shmk_registry_scan(&so, &sc)) < 0) {
		char pfx[PATH_MAX + 32];
		snprintf(pfx, sizeof pfx, "registry directory %s", dir);
		om_failed(o, dir, start, tool_exit_code_for(rc));
		tool_fatal(tool_exit_code_for(rc),
			   "unable to open registry directory %s: %s", dir,
			   tool_reason(pfx));
	}
	if (sc->n_ns && !(v = calloc(sc->n_ns, sizeof *v)))
		tool_fatal(EX_OSERR, "out of memory");
	for (size_t i = 0; i < sc->n_ns; i++)
		if (!(v[i] = strdup(sc->ns[i].ns)))
			tool_fatal(EX_OSERR, "out of memory");
	*out = v;
	rc = (int)sc->n_ns;
	shmk_scan_free(sc);
	return (size_t)rc;
}

/* ---- human output ---------------------------------------------------------- */

/* Reason without a leading "<path>: " that the line already shows. */
static const char *after(const char *reason, const char *path)
{
	size_t n = strlen(path);

	if (n && strncmp(reason, path, n) == 0 && reason[n] == ':' &&
	    reason[n + 1] == ' ')
		return reason + n + 2;
	return reason;
}

/* Reason without a leading word the line already says ("owner dead"). */
static const char *unsaid(const char *reason, const char *said)
{
	size_t n = strlen(said);

	if (strncmp(reason, said, n) != 0)
		return reason;
	reason += n;
	if ((reason[0] == ':' || reason[0] == ';') && reason[1] == ' ')
		reason += 2;
	else if (reason[0] == ' ')
		reason++;
	return reason[0] ? reason : said;
}

static void owner_desc(const struct shmk_reap_item *it, char *buf, size_t sz)
{
	if (it->pid > 0)
		snprintf(buf, sz, "%s (pid %d)", it->owner, (int)it->pid);
	else
		snprintf(buf, sz, "%s", it->owner);
}

/* "  held by pids 12, 34" under an object some process still holds. */
static void print_holders(const struct shmk_reap_item *it)
{
	if (!it->n_holders)
		return;
	printf("  %s still held by pid%s", it->object,
	       it->n_holders == 1 ? "" : "s");
	for (size_t i = 0; i < it->n_holders; i++)
		printf("%s %d", i ? "," : "", (int)it->holders[i]);
	putchar('\n');
}

static void print_item(const struct opts *o, const char *dir,
		       const struct shmk_reap_item *it)
{
	char hs[TOOL_HSIZE], who[128], path[PATH_MAX + 300];
	char rd[PATH_MAX + 330];
	bool dry = o->dry_run;

	owner_desc(it, who, sizeof who);
	switch (it->action) {
	case SHMK_REAP_OWNER_DEAD:
		if (o->verbose >= 0)
			printf("%s: dead owner %s: %s\n", it->ns, who,
			       unsaid(it->reason, "owner dead"));
		break;
	case SHMK_REAP_SEGMENT_REAPED:
		if (o->verbose >= 0)
			printf("%s: %s %s (%s) of dead owner %s\n", it->ns,
			       dry ? "would reap" : "reaped", it->object,
			       tool_hsize(it->bytes, hs), who);
		if (o->verbose >= 0)
			print_holders(it);
		break;
	case SHMK_REAP_SEGMENT_GONE:
		if (o->verbose > 0)
			printf("%s: %s of dead owner %s: %s\n", it->ns, it->object,
			       who, it->reason);
		break;
	case SHMK_REAP_OWNER_ALIVE:
		if (o->verbose > 0)
			printf("%s: live owner %s: left alone (%s)\n", it->ns,
			       who, unsaid(it->reason, "owner alive"));
		break;
	case SHMK_REAP_SEGMENT_LIVE:
		if (o->verbose > 0)
			printf("%s: live %s (%s) of owner %s\n", it->ns, it->object,
			       tool_hsize(it->bytes, hs), who);
		if (o->verbose > 0)
			print_holders(it);
		break;
	case SHMK_REAP_STRAY_KEPT:
		if (o->verbose >= 0)
			printf("%s: stray %s (%s) kept: %s\n", it->ns,
			       it->object, tool_hsize(it->bytes, hs),
			       it->reason);
		if (o->verbose >= 0)
			print_holders(it);
		break;
	case SHMK_REAP_STRAY_REMOVED:
		if (o->verbose >= 0)
			printf("%s: removed stray %s (%s): %s\n", it->ns,
			       it->object, tool_hsize(it->bytes, hs),
			       it->reason);
		break;
	case SHMK_REAP_OWNER_UNKNOWN:
		snprintf(path, sizeof path, "%s/%s/%s", dir, it->ns, it->owner);
		tool_error("owner %s: liveness unknown, left alone: %s", who,
			   after(it->reason, path));
		break;
	case SHMK_REAP_SEGMENT_KEPT:
		if (o->verbose >= 0)
			printf("%s: kept %s (%s) of owner %s: %s\n", it->ns,
			       it->object, tool_hsize(it->bytes, hs), who,
			       it->reason);
		if (o->verbose >= 0)
			print_holders(it);
		break;
	case SHMK_REAP_RECORD_QUARANTINED:
		snprintf(path, sizeof path, "%s/%s/%s", dir, it->ns, it->object);
		tool_warn("%s bad record %s: %s",
			  dry ? "would quarantine" : "quarantined", path,
			  after(it->reason, path));
		break;
	case SHMK_REAP_ERROR:
	default:
		if (it->object[0] == '/')
			snprintf(path, sizeof path, "%s", it->object);
		else if (strcmp(it->object, it->owner) == 0)
			snprintf(path, sizeof path, "owner %s in namespace %s",
				 who, it->ns);
		else
			snprintf(path, sizeof path, "%s/%s/%s", dir, it->ns,
				 it->object);
		snprintf(rd, sizeof rd, "registry directory %s", path);
		tool_error("unable to handle %s: %s", path,
			   after(after(it->reason, path), rd));
		break;
	}
}

static void add_totals(struct totals *t, const struct shmk_reap_report *r)
{
	t->owners_dead += r->owners_dead;
	t->owners_alive += r->owners_alive;
	t->segments_reaped += r->segments_reaped;
	t->segments_gone += r->segments_gone;
	t->segments_live += r->segments_live;
	t->strays_kept += r->strays_kept;
	t->strays_removed += r->strays_removed;
	t->quarantined += r->quarantined;
	t->errors += r->errors;
	t->bytes_reaped += r->bytes_reaped;
	t->bytes_live += r->bytes_live;
	t->bytes_strays += r->bytes_strays;
	t->owners_unknown += r->owners_unknown;
	t->segments_kept += r->segments_kept;
	t->bytes_kept += r->bytes_kept;
	t->segments_held += r->segments_held;
	t->bytes_held += r->bytes_held;
}

/* One line; only what is not zero, so a clean run says so in few words. */
static void print_totals(const struct opts *o, const struct totals *t,
			 size_t n_ns)
{
	char b[1024] = "", h[TOOL_HSIZE];

	if (o->verbose < 0)
		return;
	if (t->owners_dead)
		tool_part(b, sizeof b, ", ", "%zu dead owner%s",
			  t->owners_dead, tool_s(t->owners_dead));
	if (t->segments_reaped)
		tool_part(b, sizeof b, ", ", "%zu segment%s %s (%s %s)",
			  t->segments_reaped, tool_s(t->segments_reaped),
			  o->dry_run ? "would be reaped" : "reaped",
			  tool_hsize(t->bytes_reaped, h),
			  o->dry_run ? "to free" : "freed");
	if (t->segments_held) {
		char h2[TOOL_HSIZE];
		tool_part(b, sizeof b, ", ",
			  "%zu of them still held by running processes (%s "
			  "not freed until they let go)",
			  t->segments_held, tool_hsize(t->bytes_held, h2));
	}
	if (t->segments_gone)
		tool_part(b, sizeof b, ", ", "%zu already gone",
			  t->segments_gone);
	if (t->owners_alive)
		tool_part(b, sizeof b, ", ", "%zu live owner%s left alone",
			  t->owners_alive, tool_s(t->owners_alive));
	if (t->segments_live)
		tool_part(b, sizeof b, ", ", "%zu live segment%s (%s)",
			  t->segments_live, tool_s(t->segments_live),
			  tool_hsize(t->bytes_live, h));
	if (t->owners_unknown)
		tool_part(b, sizeof b, ", ",
			  "%zu owner%s of unknown liveness left alone "
			  "(%zu segment%s, %s)",
			  t->owners_unknown, tool_s(t->owners_unknown),
			  t->segments_kept, tool_s(t->segments_kept),
			  tool_hsize(t->bytes_kept, h));
	if (t->strays_kept)
		tool_part(b, sizeof b, ", ", "%zu stray%s kept",
			  t->strays_kept, tool_s(t->strays_kept));
	if (t->strays_removed)
		tool_part(b, sizeof b, ", ", "%zu stray%s removed",
			  t->strays_removed, tool_s(t->strays_removed));
	if (t->quarantined)
		tool_part(b, sizeof b, ", ", "%zu record%s %s", t->quarantined,
			  tool_s(t->quarantined),
			  o->dry_run ? "would be quarantined" : "quarantined");
	if (t->errors)
		tool_part(b, sizeof b, ", ", "%zu error%s", t->errors,
			  tool_s(t->errors));
	printf("%s%zu namespace%s: %s\n",
	       o->dry_run ? "dry run, nothing changed: " : "", n_ns,
	       tool_s(n_ns), b[0] ? b : "nothing to reap");
}

/* ---- JSON output ------------------------------------------------------------- */

static void json_item(cJSON *items, const struct shmk_reap_item *it)
{
	cJSON *j = tj_arr_obj(items);

	tj_str(j, "action", shmk_reap_action_name(it->action));
	tj_str(j, "ns", it->ns);
	tj_str(j, "owner", it->owner);
	tj_num(j, "pid", it->pid);
	tj_str(j, "object", it->object);
	tj_num(j, "bytes", (double)it->bytes);
	tj_num(j, "error", it->error);
	tj_str(j, "reason", it->reason);
	cJSON *h = tj_arr(j, "holders");
	for (size_t i = 0; i < it->n_holders; i++)
		tj_arr_num(h, it->holders[i]);
}

static void json_report(const struct opts *o, const char *dir,
			const struct ns_run *runs, size_t n,
			const struct totals *t, int status)
{
	cJSON *doc = tj_document("shmkeeper-shmclean"), *tj, *items, *nss;

	tj_str(doc, "registry", dir);
	tj_str(doc, "namespace", o->ns);
	tj_bool(doc, "dry_run", o->dry_run);
	tj_bool(doc, "remove_strays", o->strays);
	tj_num(doc, "min_age", o->min_age_set ? (double)o->min_age
					       : SHMK_REAP_DEFAULT_STRAY_AGE);
	nss = tj_arr(doc, "namespaces");
	for (size_t i = 0; i < n; i++)
		tj_arr_str(nss, runs[i].ns);
	tj = tj_obj(doc, "totals");
	tj_num(tj, "namespaces", (double)n);
	tj_num(tj, "owners_dead", (double)t->owners_dead);
	tj_num(tj, "owners_alive", (double)t->owners_alive);
	tj_num(tj, "segments_reaped", (double)t->segments_reaped);
	tj_num(tj, "segments_gone", (double)t->segments_gone);
	tj_num(tj, "segments_live", (double)t->segments_live);
	tj_num(tj, "strays_kept", (double)t->strays_kept);
	tj_num(tj, "strays_removed", (double)t->strays_removed);
	tj_num(tj, "quarantined", (double)t->quarantined);
	tj_num(tj, "errors", (double)t->errors);
	tj_num(tj, "bytes_reaped", (double)t->bytes_reaped);
	tj_num(tj, "bytes_live", (double)t->bytes_live);
	tj_num(tj, "bytes_strays", (double)t->bytes_strays);
	tj_num(tj, "owners_unknown", (double)t->owners_unknown);
	tj_num(tj, "segments_kept", (double)t->segments_kept);
	tj_num(tj, "bytes_kept", (double)t->bytes_kept);
	tj_num(tj, "segments_held", (double)t->segments_held);
	tj_num(tj, "bytes_held", (double)t->bytes_held);
	items = tj_arr(doc, "items");
	for (size_t i = 0; i < n; i++) {
		const struct ns_run *r = &runs[i];
		for (size_t k = 0; r->rep && k < r->rep->n_items; k++)
			json_item(items, &r->rep->items[k]);
		if (r->failure[0]) {
			char object[4096];
			snprintf(object, sizeof object, "%s/%s", dir, r->ns);
			struct shmk_reap_item it = {.action = SHMK_REAP_ERROR,
						    .error = r->rc,
						    .ns = r->ns,
						    .owner = "",
						    .object = object,
						    .reason = r->failure};
			json_item(items, &it);
		}
	}
	tj_num(doc, "exit_status", status);
	tj_print(doc);
}

/* ---- OpenMetrics -------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What every exposition has: did the reap run, when, how long, with which
 * exit status, for real or not. */
static void om_head(const struct opts *o, const char *dir, bool ok,
		    double start, int status)
{
	tom_family("shmkeeper_reap_ok", NULL,
		   "1 if shmclean could reap the registry, 0 if it could not "
		   "run at all (refused registry, system error: see its "
		   "standard error).");
	tom_u64("shmkeeper_reap_ok", ok, "registry", dir, NULL);
	tom_family("shmkeeper_reap_timestamp_seconds", "seconds",
		   "When the last reap started, in seconds since the epoch.");
	tom_f("shmkeeper_reap_timestamp_seconds", start, "registry", dir,
	      NULL);
	tom_family("shmkeeper_reap_duration_seconds", "seconds",
		   "How long the last reap took.");
	tom_f("shmkeeper_reap_duration_seconds", now_s() - start, "registry",
	      dir, NULL);
	tom_family("shmkeeper_reap_exit_status", NULL,
		   "shmclean's exit status: 0 clean, 65 a record was "
		   "quarantined, 75 something was left or some owner's "
		   "liveness is unknown, 78 refused configuration, 71 system "
		   "error (shmclean(1)).");
	tom_u64("shmkeeper_reap_exit_status", (uint64_t)status, "registry",
		dir, NULL);
	tom_family("shmkeeper_reap_dry_run", NULL,
		   "1 if the last reap was a dry run (nothing was changed: "
		   "what it counts would have been done).");
	tom_u64("shmkeeper_reap_dry_run", o->dry_run, "registry", dir, NULL);
}

/* The reap could not run at all: say so, then the caller exits with
 * code. */
static void om_failed(const struct opts *o, const char *dir, double start,
		      int code)
{
	if (!o->openmetrics)
		return;
	om_head(o, dir, false, start, code);
	tom_eof();
}

/* Objects of one namespace by what the reap did with them.  "removed":
 * segments of dead owners and strays unlinked; "gone": a dead owner's
 * segment already gone; "live": of a live owner, untouched; "kept": left
 * because liveness or the stray's safety could not be proven; "error":
 * could not be handled (a namespace that could not be reaped at all
 * counts one). */
static void om_objects(const char *dir, const struct ns_run *r)
{
	static const struct shmk_reap_report none;
	const struct shmk_reap_report *p = r->rep ? r->rep : &none;
	const struct {
		const char *outcome;
		uint64_t n;
	} v[] = {
		{"removed", p->segments_reaped + p->strays_removed},
		{"gone", p->segments_gone},
		{"live", p->segments_live},
		{"kept", p->segments_kept + p->strays_kept},
		{"quarantined", p->quarantined},
		{"error", p->errors + (r->failure[0] ? 1 : 0)},
	};

	for (size_t k = 0; k < sizeof v / sizeof *v; k++)
		tom_u64("shmkeeper_reap_objects", v[k].n, "registry", dir,
			"namespace", r->ns, "outcome", v[k].outcome, NULL);
}

static void om_report(const struct opts *o, const char *dir,
		      const struct ns_run *runs, size_t n, double start,
		      int status)
{
	static const struct shmk_reap_report none;

	om_head(o, dir, true, start, status);
	tom_family("shmkeeper_reap_owners", NULL,
		   "Owners the last reap found, by liveness: dead (reaped), "
		   "alive (left alone), unknown (left alone: nothing proves "
		   "either).");
	for (size_t i = 0; i < n; i++) {
		const struct shmk_reap_report *p = runs[i].rep ? runs[i].rep
							       : &none;
		tom_u64("shmkeeper_reap_owners", p->owners_dead, "registry",
			dir, "namespace", runs[i].ns, "state", "dead", NULL);
		tom_u64("shmkeeper_reap_owners", p->owners_alive, "registry",
			dir, "namespace", runs[i].ns, "state", "alive", NULL);
		tom_u64("shmkeeper_reap_owners", p->owners_unknown, "registry",
			dir, "namespace", runs[i].ns, "state", "unknown",
			NULL);
	}
	tom_family("shmkeeper_reap_objects", NULL,
		   "Segments, strays and records the last reap handled, by "
		   "outcome: removed, gone (already), live, kept, "
		   "quarantined, error.");
	for (size_t i = 0; i < n; i++)
		om_objects(dir, &runs[i]);
	tom_family("shmkeeper_reap_freed_bytes", "bytes",
		   "Bytes the last reap freed: unlinked segments and strays "
		   "that no process holds.");
	for (size_t i = 0; i < n; i++)
		tom_u64("shmkeeper_reap_freed_bytes",
			runs[i].rep ? runs[i].rep->bytes_reaped : 0,
			"registry", dir, "namespace", runs[i].ns, NULL);
	tom_family("shmkeeper_reap_held_bytes", "bytes",
		   "Bytes the last reap unlinked that some process still "
		   "holds: freed only when it lets go.");
	for (size_t i = 0; i < n; i++)
		tom_u64("shmkeeper_reap_held_bytes",
			runs[i].rep ? runs[i].rep->bytes_held : 0,
			"registry", dir, "namespace", runs[i].ns, NULL);
	tom_eof();
}

/* ---- main -------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct totals t = {0};
	struct ns_run *runs;
	char dir[PATH_MAX], **names = NULL;
	size_t n;
	unsigned min_age, flags;
	bool progress;
	int rc, status;
	double start;

	tool_init("shmclean");
	parse_args(argc, argv, &o);
	start = now_s();
	flags = reap_flags(&o, &min_age);
	if ((rc = shmk_registry_path(o.dir, dir, sizeof dir)) < 0) {
		om_failed(&o, "", start, tool_exit_code_for(rc));
		tool_fatal(tool_exit_code_for(rc),
			   "unable to resolve the registry directory: %s",
			   shmk_last_error());
	}

	if (o.adopt) {
		/* Explicit adoption of a registry without a marker (pre-release):
		 * the library checks every entry and marks it, or refuses
		 * naming the first foreign one. */
		if ((rc = shmk_registry_adopt(dir)) < 0) {
			char pfx[PATH_MAX + 32];
			snprintf(pfx, sizeof pfx, "registry directory %s", dir);
			tool_fatal(rc == -ENOENT ? EX_CONFIG
						 : tool_exit_code_for(rc),
				   "unable to adopt registry directory %s: %s",
				   dir, tool_reason(pfx));
		}
		if (o.verbose >= 0)
			printf("registry %s: %s\n", dir,
			       rc == 1 ? "adopted (marker written)"
				       : "already a registry (marked)");
		return tool_status(0); /* 74 if that line was lost */
	}
	if (o.ns) {
		/* shmk_reap() copes with a missing registry (strays only). */
		n = 1;
		if (!(names = calloc(1, sizeof *names)) ||
		    !(names[0] = strdup(o.ns)))
			tool_fatal(EX_OSERR, "out of memory");
	} else {
		n = list_namespaces(&o, dir, start, &names);
	}
	if (!(runs = calloc(n ? n : 1, sizeof *runs)))
		tool_fatal(EX_OSERR, "out of memory");

	progress = n > 1 && !o.json && o.verbose >= 0 && isatty(STDERR_FILENO);
	for (size_t i = 0; i < n; i++) {
		struct shmk_reap_options ro = {.dir = dir, .ns = names[i],
					       .shm_dir = o.shm_dir,
					       .flags = flags,
					       .stray_min_age = min_age};
		struct ns_run *r = &runs[i];

		snprintf(r->ns, sizeof r->ns, "%s", names[i]);
		if (progress)
			fprintf(stderr, "\r%s: namespace %zu/%zu %s\033[K",
				tool_prog, i + 1, n, names[i]);
		r->rc = shmk_reap(&ro, &r->rep);
		if (progress)
			fprintf(stderr, "\r\033[K");
		if (r->rc < 0 && r->rc != -EIO) {
			/* The namespace as a whole could not be reaped.  Asked
			 * for by name, that is the end of it. */
			if (o.ns) {
				om_failed(&o, dir, start,
					  tool_exit_code_for(r->rc));
				tool_fatal(tool_exit_code_for(r->rc),
					   "unable to reap namespace %s: %s",
					   o.ns, shmk_last_error());
			}
			if (!r->rep || r->rep->errors == 0) {
				/* Not in the report: count it ourselves. */
				snprintf(r->failure, sizeof r->failure, "%s",
					 shmk_last_error());
				t.errors++;
			}
		}
		if (r->rep)
			add_totals(&t, r->rep);
		if (o.json)
			continue;
		for (size_t k = 0; r->rep && k < r->rep->n_items; k++)
			print_item(&o, dir, &r->rep->items[k]);
		if (r->failure[0])
			tool_error("unable to reap namespace %s: %s", r->ns,
				   r->failure);
	}
	if (n == 0 && o.verbose > 0 && !o.json)
		printf("no namespace registered in %s\n", dir);

	status = t.quarantined                    ? EX_DATAERR
		 : t.errors || t.owners_unknown ? EX_TEMPFAIL
						  : 0;
	if (o.json)
		json_report(&o, dir, runs, n, &t, status);
	else if (o.openmetrics)
		om_report(&o, dir, runs, n, start, status);
	else
		print_totals(&o, &t, n);
	status = tool_status(status); /* EX_IOERR if output was lost */

	for (size_t i = 0; i < n; i++) {
		shmk_reap_report_free(runs[i].rep);
		free(names[i]);
	}
	free(names);
	free(runs);
	return status;
}
