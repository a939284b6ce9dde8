/* SPDX-License-Identifier: MIT */
/* shmls - what is registered, who owns it, is the owner alive.
 *
 * A printer over shmk_registry_scan(), which is strictly read-only: it
 * takes no lock (liveness is asked, never taken), renames, unlinks and
 * writes nothing, and shows a bad record as an error line instead of
 * quarantining it.  The scan judges owners with the reaper's own judge and
 * reads records with its strict parser, so what shmls calls dead or bad
 * is exactly what shmclean would reap or quarantine.
 *
 * --openmetrics prints the totals per namespace in the OpenMetrics text
 * format, for Prometheus' node_exporter textfile collector (docs/systemd.md
 * has the recipe): always with strays, and ending in "# EOF" even when the
 * registry is refused (then shmkeeper_scan_ok is 0), so that a file
 * written by a timer says what went wrong instead of going stale.
 *
 * Exit status (docs/shmls.1): 0 listed; EX_DATAERR some record could not
 * be read; EX_TEMPFAIL some owner's liveness is unknown; EX_CONFIG the
 * registry (or, with --all, some namespace directory) or the shm
 * directory is refused; EX_USAGE; EX_OSERR; EX_IOERR.
 */
#include "common.h"
#include "shmkeeper.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct opts {
	const char *dir, *ns, *shm_dir;
	bool json, strays, openmetrics;
};

struct ns_totals {
	size_t owners, alive, dead, unknown;
	size_t segments, intent, missing;
	uint64_t bytes;
	size_t strays;
	uint64_t stray_bytes;
	size_t bad_records, quarantined;
	size_t unlinked;        /* unlinked but still mapped */
	uint64_t unlinked_bytes;
};

static void usage(FILE *f)
{
	fputs("Usage: shmls [--dir DIR] [--namespace NS] [--strays] [--shm-dir DIR]\n"
	      "             [--json | --openmetrics]\n"
	      "       shmls -h | --help | -V | --version\n"
	      "\n"
	      "Lists shmkeeper namespaces, their owners (alive, dead or unknown) and\n"
	      "segments.  Read-only: it never changes anything.\n"
	      "\n"
	      "Options:\n"
	      "  --dir DIR       registry directory (default: $SHMKEEPER_DIR, else\n"
	      "                  /run/shmkeeper for root, else $XDG_RUNTIME_DIR/shmkeeper,\n"
	      "                  else /run/user/UID/shmkeeper or ~/.local/state/shmkeeper)\n"
	      "  --namespace NS  only this namespace (default: every namespace)\n"
	      "  --strays        also list \"/<ns>.*\" objects no record names\n"
	      "  --shm-dir DIR   shared memory directory (default: /dev/shm)\n"
	      "  --json          one JSON document on standard output\n"
	      "  --openmetrics   totals per namespace as OpenMetrics text (for\n"
	      "                  node_exporter's textfile collector)\n"
	      "  -h, --help      show this help and exit\n"
	      "  -V, --version   show the version and exit\n"
	      "\n"
	      "Exit status:\n"
	      "  0    listed\n"
	      "  64   usage error\n"
	      "  65   some record could not be read\n"
	      "  71   system error\n"
	      "  74   the listing could not be written\n"
	      "  75   some owner's liveness is unknown\n"
	      "  78   registry, namespace or shared memory directory refused\n"
	      "See shmls(1).\n",
	      f);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_DIR = 256, O_NS, O_JSON, O_STRAYS, O_SHM, O_OM };
	static const struct option lo[] = {
		{"dir", required_argument, NULL, O_DIR},
		{"namespace", required_argument, NULL, O_NS},
		{"json", no_argument, NULL, O_JSON},
		{"strays", no_argument, NULL, O_STRAYS},
		{"shm-dir", required_argument, NULL, O_SHM},
		{"openmetrics", no_argument, NULL, O_OM},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", lo, NULL)) != -1) {
		switch (c) {
		case O_DIR:
			o->dir = tool_opt_dir("--dir", optarg);
			break;
		case O_NS:
			o->ns = tool_opt_ns("--namespace", optarg);
			break;
		case O_JSON: o->json = true; break;
		case O_STRAYS: o->strays = true; break;
		case O_OM: o->openmetrics = true; break;
		case O_SHM:
			o->shm_dir = tool_opt_dir("--shm-dir", optarg);
			break;
		default: tool_opt_other(c, argv, usage);
		}
	}
	if (optind < argc)
		tool_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->json && o->openmetrics)
		tool_usage_error("--json and --openmetrics exclude each other");
	if (o->openmetrics)
		o->strays = true; /* strays are what a fleet alerts on */
}


/* ---- totals -------------------------------------------------------------- */

static void tally(const struct shmk_scan_ns *v, struct ns_totals *t)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < v->n_owners; i++) {
		const struct shmk_scan_owner *o = &v->owners[i];
		t->owners++;
		t->alive += o->state == SHMK_OWNER_ALIVE;
		t->dead += o->state == SHMK_OWNER_DEAD;
		t->unknown += o->state == SHMK_OWNER_UNKNOWN;
		t->bad_records += o->record == SHMK_RECORD_BAD;
		for (size_t j = 0; j < o->n_segments; j++) {
			t->segments++;
			t->bytes += o->segments[j].size;
			t->intent += o->segments[j].intent != 0;
			t->missing += !o->segments[j].present;
		}
	}
	for (size_t i = 0; i < v->n_strays; i++) {
		t->strays++;
		t->stray_bytes += v->strays[i].size;
	}
	t->quarantined = v->quarantined;
	for (size_t i = 0; i < v->n_unlinked; i++) {
		t->unlinked++;
		t->unlinked_bytes += v->unlinked[i].size;
	}
}

static void add(struct ns_totals *a, const struct ns_totals *b)
{
	a->owners += b->owners;
	a->alive += b->alive;
	a->dead += b->dead;
	a->unknown += b->unknown;
	a->segments += b->segments;
	a->intent += b->intent;
	a->missing += b->missing;
	a->bytes += b->bytes;
	a->strays += b->strays;
	a->stray_bytes += b->stray_bytes;
	a->bad_records += b->bad_records;
	a->quarantined += b->quarantined;
	a->unlinked += b->unlinked;
	a->unlinked_bytes += b->unlinked_bytes;
}

/* What a segment is, by its owner's state: "live" only while its owner is
 * alive, "orphaned" when the owner is dead (shmclean reaps it), "unknown"
 * when the owner's liveness is (shmclean keeps it).  Whether the record
 * confirmed the creation (intent) is another matter: JSON "intent".  The
 * text and JSON say the same. */
static const char *seg_state(const struct shmk_scan_owner *ow)
{
	switch (ow->state) {
	case SHMK_OWNER_ALIVE: return "live";
	case SHMK_OWNER_DEAD: return "orphaned";
	default: return "unknown";
	}
}

/* ---- text ---------------------------------------------------------------- */

static void print_totals(const char *label, const struct ns_totals *t,
			 bool strays)
{
	char h1[TOOL_HSIZE], h2[TOOL_HSIZE];

	printf("%s%zu owner%s (%zu alive, %zu dead", label, t->owners,
	       tool_s(t->owners), t->alive, t->dead);
	if (t->unknown)
		printf(", %zu unknown", t->unknown);
	printf("), %zu segment%s (%s)", t->segments, tool_s(t->segments),
	       tool_hsize(t->bytes, h1));
	if (strays)
		printf(", %zu stray%s (%s)", t->strays, tool_s(t->strays),
		       tool_hsize(t->stray_bytes, h2));
	if (t->bad_records)
		printf(", %zu bad record%s", t->bad_records,
		       tool_s(t->bad_records));
	if (t->quarantined)
		printf(", %zu quarantined file%s", t->quarantined,
		       tool_s(t->quarantined));
	if (t->unlinked)
		printf(", %zu unlinked but mapped (%s)", t->unlinked,
		       tool_hsize(t->unlinked_bytes, h1));
	putchar('\n');
}

/* "      held by pids 12, 34 (open, mapped)" for an object some process
 * holds, nothing otherwise. */
static void print_holders(size_t n, const pid_t *pids, unsigned held)
{
	if (!n)
		return;
	printf("      held by pid%s", n == 1 ? "" : "s");
	for (size_t i = 0; i < n && i < 32; i++)
		printf("%s %d", i ? "," : "", (int)pids[i]);
	printf("%s (%s%s%s)\n", n > 32 ? ", ..." : "",
	       held & SHMK_HELD_OPEN ? "open" : "",
	       (held & SHMK_HELD_OPEN) && (held & SHMK_HELD_MAPPED) ? ", " : "",
	       held & SHMK_HELD_MAPPED ? "mapped" : "");
}

static void print_ns(const struct shmk_scan *sc, const struct shmk_scan_ns *v,
		     const struct ns_totals *t)
{
	char h[TOOL_HSIZE], t1[TOOL_HTIME], t2[TOOL_HTIME], a[TOOL_HAGE];

	printf("namespace %s (%s)%s\n", v->ns, v->path,
	       v->error ? ": unreadable (see the error above)"
	       : v->exists ? "" : ": no registry directory");
	for (size_t i = 0; i < v->n_owners; i++) {
		const struct shmk_scan_owner *ow = &v->owners[i];

		if (ow->pid > 0)
			printf("  owner %s  pid %d  %s", ow->id, (int)ow->pid,
			       shmk_owner_state_name(ow->state));
		else
			printf("  owner %s  pid ?  %s", ow->id,
			       shmk_owner_state_name(ow->state));
		if (ow->note)
			printf(" (%s)", ow->note);
		if (ow->record == SHMK_RECORD_OK) {
			if (ow->role[0])
				printf("  role \"%s\"", ow->role);
			printf("  started %s  created %s",
			       tool_htime(ow->started, t1),
			       tool_htime(ow->created, t2));
		}
		putchar('\n');
		if (ow->record_error)
			printf("    error: bad record: %s (left in place; "
			       "shmclean quarantines it once the owner is "
			       "dead)\n",
			       ow->record_error);
		for (size_t j = 0; j < ow->n_segments; j++) {
			const struct shmk_scan_segment *s = &ow->segments[j];
			printf("    %-32s %7s  %-8s  age %s%s%s%s\n", s->name,
			       tool_hsize(s->size, h), seg_state(ow),
			       tool_hage(sc->now - s->created, a),
			       s->present ? "" : "  (no object)",
			       strcmp(s->kind, "segment") ? "  " : "",
			       strcmp(s->kind, "segment") ? s->kind : "");
			print_holders(s->n_holders, s->holders, s->held);
		}
	}
	for (size_t i = 0; i < v->n_strays; i++) {
		const struct shmk_scan_stray *s = &v->strays[i];
		printf("  stray %-32s %7s  age %s  uid %u%s\n", s->name,
		       tool_hsize(s->size, h), tool_hage(sc->now - s->ctime, a),
		       (unsigned)s->uid,
		       s->regular ? "" : "  (not a regular file)");
		print_holders(s->n_holders, s->holders, s->held);
	}
	for (size_t i = 0; i < v->n_unlinked; i++) {
		const struct shmk_scan_unlinked *u = &v->unlinked[i];
		printf("  unlinked %-29s %5s  still mapped: freed when "
		       "the holders let go\n", u->name, tool_hsize(u->size, h));
		print_holders(u->n_holders, u->holders, u->held);
	}
	print_totals("  total: ", t, v->strays_scanned);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_totals(cJSON *parent, const struct ns_totals *t, bool strays)
{
	cJSON *j = tj_obj(parent, "totals");

	tj_num(j, "owners", (double)t->owners);
	tj_num(j, "owners_alive", (double)t->alive);
	tj_num(j, "owners_dead", (double)t->dead);
	tj_num(j, "owners_unknown", (double)t->unknown);
	tj_num(j, "segments", (double)t->segments);
	tj_num(j, "segments_intent", (double)t->intent);
	tj_num(j, "segments_missing", (double)t->missing);
	tj_num(j, "bytes", (double)t->bytes);
	if (strays) {
		tj_num(j, "strays", (double)t->strays);
		tj_num(j, "bytes_strays", (double)t->stray_bytes);
	} else {
		tj_null(j, "strays");
		tj_null(j, "bytes_strays");
	}
	tj_num(j, "bad_records", (double)t->bad_records);
	tj_num(j, "quarantined_files", (double)t->quarantined);
	tj_num(j, "unlinked", (double)t->unlinked);
	tj_num(j, "bytes_unlinked", (double)t->unlinked_bytes);
}

static void json_holders(cJSON *o, size_t n, const pid_t *pids)
{
	cJSON *a = tj_arr(o, "holders");

	for (size_t i = 0; i < n; i++)
		tj_arr_num(a, pids[i]);
}

static void json_owner(cJSON *owners, cJSON *errors, int64_t now,
		       const struct shmk_scan_owner *ow)
{
	cJSON *oj = tj_arr_obj(owners), *segs;

	tj_str(oj, "id", ow->id);
	if (ow->pid > 0)
		tj_num(oj, "pid", ow->pid);
	else
		tj_null(oj, "pid");
	tj_str(oj, "state", shmk_owner_state_name(ow->state));
	if (ow->state == SHMK_OWNER_UNKNOWN)
		tj_null(oj, "alive");
	else
		tj_bool(oj, "alive", ow->state == SHMK_OWNER_ALIVE);
	tj_str(oj, "lock", shmk_lock_state_name(ow->lock));
	if (ow->lock_holder > 0)
		tj_num(oj, "lock_holder", ow->lock_holder);
	else
		tj_null(oj, "lock_holder");
	tj_str(oj, "note", ow->note);
	tj_str(oj, "record", shmk_record_state_name(ow->record));
	tj_str(oj, "error", ow->record_error);
	if (ow->record_error)
		tj_arr_str(errors, ow->record_error);
	if (ow->record != SHMK_RECORD_OK) {
		tj_null(oj, "segments");
		return;
	}
	tj_num(oj, "start_time", (double)ow->start_time);
	if (ow->started)
		tj_num(oj, "started", (double)ow->started);
	else
		tj_null(oj, "started");
	tj_str(oj, "boot_id", ow->boot_id);
	tj_num(oj, "uid", ow->uid);
	tj_str(oj, "role", ow->role);
	tj_num(oj, "created", (double)ow->created);
	segs = tj_arr(oj, "segments");
	for (size_t k = 0; k < ow->n_segments; k++) {
		const struct shmk_scan_segment *s = &ow->segments[k];
		cJSON *sj = tj_arr_obj(segs);

		tj_str(sj, "name", s->name);
		tj_num(sj, "size", (double)s->size);
		tj_str(sj, "state", seg_state(ow));
		tj_bool(sj, "intent", s->intent);
		tj_num(sj, "created", (double)s->created);
		tj_num(sj, "age", (double)(now - s->created));
		tj_bool(sj, "present", s->present);
		tj_str(sj, "kind", s->kind);
		json_holders(sj, s->n_holders, s->holders);
	}
}

static void json_ns(cJSON *arr, int64_t now, const struct shmk_scan_ns *v,
		    const struct ns_totals *t)
{
	cJSON *j = tj_arr_obj(arr), *owners, *errors;

	tj_str(j, "namespace", v->ns);
	tj_str(j, "path", v->path);
	tj_bool(j, "exists", v->exists);
	tj_str(j, "error", v->error);
	owners = tj_arr(j, "owners");
	errors = tj_arr(j, "errors");
	for (size_t i = 0; i < v->n_owners; i++)
		json_owner(owners, errors, now, &v->owners[i]);
	if (!v->strays_scanned) {
		tj_null(j, "strays");
	} else {
		cJSON *sa = tj_arr(j, "strays");
		for (size_t i = 0; i < v->n_strays; i++) {
			const struct shmk_scan_stray *s = &v->strays[i];
			cJSON *sj = tj_arr_obj(sa);

			tj_str(sj, "name", s->name);
			tj_num(sj, "size", (double)s->size);
			tj_num(sj, "age", (double)(now - s->ctime));
			tj_num(sj, "uid", s->uid);
			tj_bool(sj, "regular", s->regular);
			json_holders(sj, s->n_holders, s->holders);
		}
	}
	cJSON *ua = tj_arr(j, "unlinked");
	for (size_t i = 0; i < v->n_unlinked; i++) {
		const struct shmk_scan_unlinked *u = &v->unlinked[i];
		cJSON *uj = tj_arr_obj(ua);

		tj_str(uj, "name", u->name);
		tj_num(uj, "size", (double)u->size);
		json_holders(uj, u->n_holders, u->holders);
	}
	json_totals(j, t, v->strays_scanned);
}

/* ---- OpenMetrics ----------------------------------------------------------- */

/* What shmls can say without a scan: the time, and whether the registry
 * could be read at all (ok 0: refused, the error is on stderr). */
static void om_head(const char *registry, int64_t now, bool ok)
{
	tom_family("shmkeeper_scan_ok", NULL,
		   "1 if shmls could read the registry, 0 if it was refused "
		   "(shmls says why on its standard error).");
	tom_u64("shmkeeper_scan_ok", ok, "registry", registry, NULL);
	tom_family("shmkeeper_scan_timestamp_seconds", "seconds",
		   "When shmls read the registry, in seconds since the epoch.");
	tom_f("shmkeeper_scan_timestamp_seconds", (double)now, "registry",
	      registry, NULL);
}

/* Which figure of a namespace's totals a family shows. */
enum om_what { OM_SEGMENTS, OM_BYTES, OM_STRAYS, OM_STRAY_BYTES, OM_BAD,
	       OM_QUARANTINED, OM_UNLINKED, OM_UNLINKED_BYTES };

static const struct {
	const char *name, *unit, *help;
	enum om_what what;
} om_families[] = {
	{"shmkeeper_segments", NULL, "Segments the namespace's records name.",
	 OM_SEGMENTS},
	{"shmkeeper_segment_bytes", "bytes",
	 "Size of the segments the namespace's records name.", OM_BYTES},
	{"shmkeeper_strays", NULL,
	 "Objects named like the namespace's that no record names.",
	 OM_STRAYS},
	{"shmkeeper_stray_bytes", "bytes", "Size of the strays.",
	 OM_STRAY_BYTES},
	{"shmkeeper_bad_records", NULL,
	 "Records that cannot be read (shmclean quarantines them once their "
	 "owner is dead).", OM_BAD},
	{"shmkeeper_quarantined_files", NULL,
	 "Files in the namespace's quarantine directory.", OM_QUARANTINED},
	{"shmkeeper_unlinked_mapped_segments", NULL,
	 "Objects of the namespace unlinked while some process still maps "
	 "them: their memory is freed only when it lets go.", OM_UNLINKED},
	{"shmkeeper_unlinked_mapped_bytes", "bytes",
	 "Bytes mapped of the objects unlinked but still mapped.",
	 OM_UNLINKED_BYTES},
};

static uint64_t om_value(const struct ns_totals *t, enum om_what w)
{
	switch (w) {
	case OM_SEGMENTS: return t->segments;
	case OM_BYTES: return t->bytes;
	case OM_STRAYS: return t->strays;
	case OM_STRAY_BYTES: return t->stray_bytes;
	case OM_BAD: return t->bad_records;
	case OM_QUARANTINED: return t->quarantined;
	case OM_UNLINKED: return t->unlinked;
	case OM_UNLINKED_BYTES: return t->unlinked_bytes;
	}
	return 0;
}

/* Per namespace, one family at a time (OpenMetrics keeps a family's
 * samples together).  A namespace that could not be read has readable 0
 * and no other sample: unknown is not 0.  Strays are known only where the
 * records could be read, unlinked objects only with the pass over /proc
 * (holders_known). */
static void om_print(const struct shmk_scan *sc, const struct ns_totals *t)
{
	static const char *const states[] = {"alive", "dead", "unknown"};
	const char *reg = sc->registry;

	om_head(reg, sc->now, true);
	tom_family("shmkeeper_holders_known", NULL,
		   "1 if the pass over /proc ran, so that holders and unlinked "
		   "objects are known, else 0.");
	tom_u64("shmkeeper_holders_known", !sc->holders_error, "registry", reg,
		NULL);
	tom_family("shmkeeper_namespace_readable", NULL,
		   "1 if the namespace could be read, else 0 (and no other "
		   "figure of it is given).");
	for (size_t i = 0; i < sc->n_ns; i++)
		tom_u64("shmkeeper_namespace_readable", !sc->ns[i].error,
			"registry", reg, "namespace", sc->ns[i].ns, NULL);
	tom_family("shmkeeper_owners", NULL,
		   "Owners of the namespace by liveness: alive, dead (to be "
		   "reaped), unknown (nothing proves either: see shmls).");
	for (size_t i = 0; i < sc->n_ns; i++) {
		const size_t n[3] = {t[i].alive, t[i].dead, t[i].unknown};
		for (size_t k = 0; k < 3 && !sc->ns[i].error; k++)
			tom_u64("shmkeeper_owners", n[k], "registry", reg,
				"namespace", sc->ns[i].ns, "state", states[k],
				NULL);
	}
	for (size_t f = 0; f < sizeof om_families / sizeof *om_families; f++) {
		enum om_what w = om_families[f].what;

		tom_family(om_families[f].name, om_families[f].unit,
			   om_families[f].help);
		for (size_t i = 0; i < sc->n_ns; i++) {
			const struct shmk_scan_ns *v = &sc->ns[i];
			if (v->error ||
			    ((w == OM_STRAYS || w == OM_STRAY_BYTES) &&
			     !v->strays_scanned) ||
			    ((w == OM_UNLINKED || w == OM_UNLINKED_BYTES) &&
			     sc->holders_error))
				continue;
			tom_u64(om_families[f].name, om_value(&t[i], w),
				"registry", reg, "namespace", v->ns, NULL);
		}
	}
	tom_eof();
}

/* ---- main ---------------------------------------------------------------- */

/* The scan could not run at all: the library's sentence names what was
 * refused (registry or shared memory directory) and why. */
static _Noreturn void scan_failed(int rc, const struct opts *o)
{
	char dir[PATH_MAX], pfx[PATH_MAX + 32];

	if (shmk_registry_path(o->dir, dir, sizeof dir) < 0) {
		if (o->openmetrics) {
			om_head("", time(NULL), false);
			tom_eof();
		}
		tool_fatal(tool_exit_code_for(rc),
			   "unable to resolve the registry directory: %s",
			   shmk_last_error());
	}
	if (o->openmetrics) {
		om_head(dir, time(NULL), false);
		tom_eof();
	}
	snprintf(pfx, sizeof pfx, "registry directory %s", dir);
	tool_fatal(tool_exit_code_for(rc), "unable to scan registry %s: %s",
		   dir, tool_reason(pfx));
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct ns_totals all = {0}, *t = NULL;
	struct shmk_scan *sc;
	int rc, status = 0;
	int failed = 0; /* exit code of the first namespace that failed */

	tool_init("shmls");
	parse_args(argc, argv, &o);
	struct shmk_scan_options so = {
		.dir = o.dir,
		.ns = o.ns,
		.shm_dir = o.shm_dir,
		.flags = o.strays ? SHMK_SCAN_STRAYS : 0,
	};
	if ((rc = shmk_registry_scan(&so, &sc)) < 0)
		scan_failed(rc, &o);
	if (sc->n_ns && !(t = calloc(sc->n_ns, sizeof *t)))
		tool_fatal(EX_OSERR, "out of memory");
	for (size_t i = 0; i < sc->n_ns; i++) {
		const struct shmk_scan_ns *v = &sc->ns[i];

		if (v->error) {
			if (o.ns && !o.openmetrics) /* there: readable 0 */
				tool_fatal(tool_exit_code_for(v->error_code),
					   "unable to read namespace %s: %s",
					   v->ns, v->error);
			tool_error("unable to read namespace %s: %s", v->ns,
				   v->error);
			if (!failed)
				failed = tool_exit_code_for(v->error_code);
		}
		tally(v, &t[i]);
		add(&all, &t[i]);
	}
	if (sc->holders_error)
		tool_warn("unable to tell which processes hold the segments: %s",
			  sc->holders_error);
	if (o.openmetrics) {
		om_print(sc, t);
	} else if (o.json) {
		cJSON *doc = tj_document("shmkeeper-shmls"), *arr;
		tj_str(doc, "registry", sc->registry);
		tj_bool(doc, "exists", sc->exists);
		tj_str(doc, "shm_dir", sc->shm_dir);
		arr = tj_arr(doc, "namespaces");
		for (size_t i = 0; i < sc->n_ns; i++)
			json_ns(arr, sc->now, &sc->ns[i], &t[i]);
		json_totals(doc, &all, o.strays);
		tj_print(doc);
	} else {
		printf("registry %s%s\n", sc->registry,
		       sc->exists ? "" : ": does not exist (nothing registered)");
		for (size_t i = 0; i < sc->n_ns; i++)
			print_ns(sc, &sc->ns[i], &t[i]);
		if (sc->n_ns != 1 || !o.ns) {
			char label[64];
			snprintf(label, sizeof label, "total: %zu namespace%s, ",
				 sc->n_ns, tool_s(sc->n_ns));
			print_totals(label, &all, o.strays);
		}
	}
	if (failed)
		status = failed;
	else if (all.bad_records)
		status = EX_DATAERR;
	else if (all.unknown)
		status = EX_TEMPFAIL; /* unknown is never a clean bill */
	status = tool_status(status); /* EX_IOERR if output was lost */
	free(t);
	shmk_scan_free(sc);
	return status;
}
