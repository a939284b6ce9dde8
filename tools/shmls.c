/* shmls - what is registered, who owns it, is the owner alive.
 *
 * Strictly read-only: it takes no lock (liveness is asked with F_OFD_GETLK,
 * a query), renames, unlinks and writes nothing, and shows a bad record as
 * an error line instead of quarantining it.  Records are read with the
 * library's own strict parser, so what shmls calls bad is exactly what
 * shmclean would quarantine.
 *
 * Exit status (docs/shmls.1): 0 listed; EX_DATAERR some record could not
 * be read; EX_TEMPFAIL some owner's liveness is unknown; EX_CONFIG the
 * registry (or, with --all, some namespace directory) or the shm
 * directory is refused; EX_USAGE; EX_OSERR; EX_IOERR.
 */
#include "common.h"
#include "internal.h" /* record parser, directory checks, identities */

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct opts {
	const char *dir, *ns, *shm_dir;
	bool json, strays;
};

enum lock_state {
	LOCK_MISSING, /* no lock file (any more) */
	LOCK_FREE,    /* nobody holds it */
	LOCK_HELD,    /* a process holds its POSIX lock: the owner */
	LOCK_REAPER,  /* an OFD lock: a reaper has taken it */
	LOCK_BAD,     /* not a regular file of ours */
};
static const char *const lock_names[] = {"missing", "free", "held",
					 "reaper", "bad"};

enum live { LIVE_UNKNOWN, LIVE_ALIVE, LIVE_DEAD };
static const char *const live_names[] = {"unknown", "alive", "dead"};

struct owner {
	char id[SHMK_ID_MAX];
	bool has_lock, has_tmp_lock, has_rec;
	enum lock_state lock;
	pid_t holder; /* pid holding the POSIX lock, if known */
	enum live live;
	const char *note; /* NULL if none, else note_buf or a literal */
	char note_buf[256];
	bool loaded;
	struct shmk_record rec;
	char rec_error[512]; /* why the record is bad; "" if it is fine */
	bool *present;       /* per rec.segs[i]: the object exists */
	uint64_t *ino;       /* per rec.segs[i]: its inode (0: none) */
};

/* Who holds the listed objects: one pass over /proc for the whole run. */
static struct shmk_holders *held;

struct stray {
	char name[NAME_MAX + 2]; /* "/<ns>.<rest>" */
	struct stat st;
};

struct ns_totals {
	size_t owners, alive, dead, unknown;
	size_t segments, intent, missing;
	uint64_t bytes;
	size_t strays;
	uint64_t stray_bytes;
	size_t bad_records, quarantined;
};

struct ns_view {
	char ns[SHMK_NS_MAX + 1];
	char path[PATH_MAX];
	bool exists;
	char error[600]; /* the namespace could not be read */
	int rc;          /* and why, as a negative errno */
	struct owner *owners;
	size_t n_owners;
	struct stray *strays;
	size_t n_strays;
	bool strays_scanned;
	struct ns_totals t;
};

static int64_t now;
static struct shmk_ident me;
static long long boot_time = -1; /* btime from /proc/stat */
static long clk_tck = 100;

_Noreturn static void oom(void) { tool_fatal(EX_OSERR, "out of memory"); }

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--dir DIR] [--namespace NS] [--strays] [--json]\n"
		"\n"
		"Lists shmkeeper namespaces, their owners (alive or dead) and\n"
		"segments.  Read-only: it never changes anything.\n"
		"\n"
		"  --dir DIR       registry directory (default: $SHMKEEPER_DIR,\n"
		"                  /run/shmkeeper for root, else\n"
		"                  $XDG_RUNTIME_DIR/shmkeeper, else\n"
		"                  /run/user/UID/shmkeeper or\n"
		"                  ~/.local/state/shmkeeper)\n"
		"  --namespace NS  only this namespace\n"
		"  --strays        also list \"/<ns>.*\" objects no record names\n"
		"  --shm-dir DIR   shared memory directory (default /dev/shm)\n"
		"  --json          one JSON document on standard output\n"
		"  -h, --help      this help\n"
		"  -V, --version   version\n"
		"\n"
		"Exit status: 0 listed, 65 some record is unreadable, 75 some\n"
		"owner's liveness is unknown, 64 usage, 78 refused registry or\n"
		"shm directory, 74 output error, 71 system error.  See shmls(1).\n",
		tool_prog);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_DIR = 256, O_NS, O_JSON, O_STRAYS, O_SHM };
	static const struct option lo[] = {
		{"dir", required_argument, NULL, O_DIR},
		{"namespace", required_argument, NULL, O_NS},
		{"json", no_argument, NULL, O_JSON},
		{"strays", no_argument, NULL, O_STRAYS},
		{"shm-dir", required_argument, NULL, O_SHM},
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
		case O_SHM:
			o->shm_dir = tool_opt_dir("--shm-dir", optarg);
			break;
		case 'h': usage(stdout); exit(tool_status(0));
		case 'V': tool_print_version(); exit(tool_status(0));
		case ':':
			tool_usage_error("option %s needs an argument",
					 argv[optind - 1]);
		default:
			if (optopt)
				tool_usage_error("unknown option -%c", optopt);
			tool_usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		tool_usage_error("unexpected argument \"%s\"", argv[optind]);
}

static void read_boot_time(void)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &boot_time) == 1)
			break;
	fclose(f);
	if ((clk_tck = sysconf(_SC_CLK_TCK)) <= 0)
		clk_tck = 100;
}

/* Wall-clock start of a process of this boot, or 0 if unknown. */
static int64_t started_at(const struct shmk_ident *id)
{
	if (boot_time < 0 ||
	    (id->boot_id[0] && me.boot_id[0] &&
	     strcmp(id->boot_id, me.boot_id) != 0))
		return 0;
	return (int64_t)boot_time + (int64_t)(id->start_time / (unsigned long long)clk_tck);
}

/* ---- reading a namespace ----------------------------------------------------- */

static int cmp_owner(const void *a, const void *b)
{
	return strcmp(((const struct owner *)a)->id,
		      ((const struct owner *)b)->id);
}

static int cmp_stray(const void *a, const void *b)
{
	return strcmp(((const struct stray *)a)->name,
		      ((const struct stray *)b)->name);
}

/* The owners seen so far, by id: one hash lookup per directory entry, so a
 * namespace of n owners is read in O(n) (a linear search made 40,000
 * owners take seconds).  The table's keys point into v->owners, so when
 * that array moves the table is rebuilt (amortised O(1) per owner, as the
 * array doubles). */
struct owner_index {
	struct shmk_table by_id; /* id -> index + 1 in v->owners */
	size_t cap;
};

static void index_put(struct owner_index *ix, struct ns_view *v, size_t i)
{
	if (shmk__table_put(&ix->by_id, v->owners[i].id,
			    (void *)(uintptr_t)(i + 1)) < 0)
		oom();
}

static struct owner *owner_get(struct ns_view *v, struct owner_index *ix,
			       const char *id)
{
	uintptr_t k = (uintptr_t)shmk__table_get(&ix->by_id, id);

	if (k)
		return &v->owners[k - 1];
	if (v->n_owners == ix->cap) {
		ix->cap = ix->cap ? ix->cap * 2 : 16;
		if (!(v->owners = reallocarray(v->owners, ix->cap,
					       sizeof *v->owners)))
			oom();
		shmk__table_free(&ix->by_id); /* its keys moved */
		if (shmk__table_init(&ix->by_id, ix->cap) < 0)
			oom();
		for (size_t i = 0; i < v->n_owners; i++)
			index_put(ix, v, i);
	}
	struct owner *o = &v->owners[v->n_owners];
	memset(o, 0, sizeof *o);
	snprintf(o->id, sizeof o->id, "%s", id);
	index_put(ix, v, v->n_owners++);
	return o;
}

/* Lists the namespace directory for owners: "<id>.lock", "<id>.jsonl" and
 * the temporary ".<id>.lock.tmp" of an owner being born. */
static int scan_owners(struct ns_view *v, int nsfd)
{
	int fd = openat(nsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct owner_index ix = {0};
	struct dirent *d;
	DIR *dh;

	if (fd < 0 || !(dh = fdopendir(fd))) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((d = readdir(dh))) {
		char id[SHMK_ID_MAX];
		const char *n = d->d_name;

		enum shmk_ofile kind;

		if (!shmk__ofile_parse(n, id, &kind))
			continue; /* not an owner's file: never read */
		if (kind == SHMK_OFILE_LOCK)
			owner_get(v, &ix, id)->has_lock = true;
		else if (kind == SHMK_OFILE_RECORD)
			owner_get(v, &ix, id)->has_rec = true;
		else if (kind == SHMK_OFILE_LOCK_TMP)
			owner_get(v, &ix, id)->has_tmp_lock = true;
	}
	closedir(dh);
	shmk__table_free(&ix.by_id);
	if (v->n_owners)
		qsort(v->owners, v->n_owners, sizeof *v->owners, cmp_owner);
	return 0;
}

/* The library's one liveness judge (liveness.c), asking without taking
 * any lock: shmls and shmclean cannot disagree.  The lock state is kept
 * for the JSON output. */
static void judge(int nsfd, struct owner *o)
{
	struct shmk_judgement j;

	shmk__owner_judge(nsfd, o->id, geteuid(),
			  o->loaded ? &o->rec.owner : NULL, false, &j);
	o->holder = j.holder;
	o->live = j.state == SHMK_LIVE_ALIVE  ? LIVE_ALIVE
		  : j.state == SHMK_LIVE_DEAD ? LIVE_DEAD
					      : LIVE_UNKNOWN;
	if (j.no_lock)
		o->lock = LOCK_MISSING;
	else if (j.state == SHMK_LIVE_ALIVE && j.holder > 0)
		o->lock = LOCK_HELD;
	else if (j.state == SHMK_LIVE_DEAD && !strcmp(j.cause, "being reaped"))
		o->lock = LOCK_REAPER;
	else if (j.state == SHMK_LIVE_UNKNOWN)
		o->lock = LOCK_BAD;
	else
		o->lock = LOCK_FREE;
	o->note = NULL;
	if (j.no_lock && !o->loaded && !o->rec_error[0])
		o->note = "neither lock file nor record";
	else if (j.state != SHMK_LIVE_ALIVE || j.holder <= 0) {
		snprintf(o->note_buf, sizeof o->note_buf, "%s", j.cause);
		o->note = o->note_buf;
	}
}

static void load(struct ns_view *v, int nsfd, struct owner *o)
{
	char name[SHMK_ID_MAX + 16], why[256];
	int rc;

	if (!o->has_rec)
		return;
	shmk__ofile_name(o->id, SHMK_OFILE_RECORD, name, sizeof name);
	rc = shmk__owner_record_load(nsfd, o->id, v->ns, geteuid(), &o->rec,
				     why, sizeof why);
	if (rc == 0) {
		o->loaded = true;
		return;
	}
	shmk__record_free(&o->rec);
	if (rc == -ENOENT) { /* removed since we listed it */
		o->has_rec = false;
		return;
	}
	snprintf(o->rec_error, sizeof o->rec_error, "%s/%s: %s", v->path,
		 name, why);
}

static size_t count_quarantined(struct ns_view *v, int nsfd)
{
	char path[PATH_MAX + 16];
	struct dirent *d;
	DIR *dh;
	size_t n = 0;
	int fd;

	snprintf(path, sizeof path, "%s/" SHMK_QUARANTINE, v->path);
	if (shmk__dir_open_secure(nsfd, SHMK_QUARANTINE, false, path, &fd) < 0)
		return 0;
	if (!(dh = fdopendir(fd))) {
		close(fd);
		return 0;
	}
	while ((d = readdir(dh)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dh);
	return n;
}

struct stray_list {
	struct ns_view *v;
	int shmfd;
	size_t cap;
};

static int stray_listed(void *arg, const char *name, ino_t ino,
			unsigned char type)
{
	struct stray_list *l = arg;
	struct ns_view *v = l->v;
	struct stray *s;

	(void)ino;
	(void)type;
	if (v->n_strays == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		if (!(v->strays = reallocarray(v->strays, l->cap,
					       sizeof *v->strays)))
			oom();
	}
	s = &v->strays[v->n_strays];
	snprintf(s->name, sizeof s->name, "/%s", name);
	if (fstatat(l->shmfd, name, &s->st, AT_SYMLINK_NOFOLLOW) == 0)
		v->n_strays++;
	return 0;
}

/* The namespace's objects, by the library's one listing (shmdir.c). */
static int list_strays(struct ns_view *v, int shmfd)
{
	struct stray_list l = {v, shmfd, 0};
	int rc = shmk__ns_list(shmfd, v->ns, stray_listed, &l);

	if (rc < 0)
		return rc;
	v->strays_scanned = true;
	return 0;
}

/* Keeps only the listed objects that no record (live or dead) names. */
static void drop_claimed(struct ns_view *v)
{
	struct shmk_table names;
	size_t k = 0;

	if (shmk__table_init(&names, 16) < 0)
		oom();
	for (size_t i = 0; i < v->n_owners; i++)
		for (size_t j = 0; v->owners[i].loaded &&
				   j < v->owners[i].rec.n_segs; j++)
			if (shmk__table_put(&names, v->owners[i].rec.segs[j]->name,
					    &names) < 0)
				oom();
	for (size_t i = 0; i < v->n_strays; i++)
		if (!shmk__table_get(&names, v->strays[i].name))
			v->strays[k++] = v->strays[i];
	v->n_strays = k;
	shmk__table_free(&names);
	if (k)
		qsort(v->strays, k, sizeof *v->strays, cmp_stray);
}

static void check_present(struct owner *o, int shmfd)
{
	if (!o->loaded || !o->rec.n_segs)
		return;
	if (!(o->present = calloc(o->rec.n_segs, sizeof *o->present)) ||
	    !(o->ino = calloc(o->rec.n_segs, sizeof *o->ino)))
		oom();
	for (size_t i = 0; i < o->rec.n_segs; i++) {
		struct stat st;
		o->present[i] = fstatat(shmfd, o->rec.segs[i]->name + 1, &st,
					AT_SYMLINK_NOFOLLOW) == 0;
		o->ino[i] = o->present[i] ? (uint64_t)st.st_ino : 0;
	}
}

static void tally(struct ns_view *v)
{
	struct ns_totals *t = &v->t;

	for (size_t i = 0; i < v->n_owners; i++) {
		struct owner *o = &v->owners[i];
		t->owners++;
		t->alive += o->live == LIVE_ALIVE;
		t->dead += o->live == LIVE_DEAD;
		t->unknown += o->live == LIVE_UNKNOWN;
		t->bad_records += o->rec_error[0] != '\0';
		for (size_t j = 0; o->loaded && j < o->rec.n_segs; j++) {
			t->segments++;
			t->bytes += o->rec.segs[j]->size;
			t->intent += o->rec.segs[j]->state == SHMK_SEG_INTENT;
			t->missing += !o->present[j];
		}
	}
	for (size_t i = 0; i < v->n_strays; i++) {
		t->strays++;
		t->stray_bytes += (uint64_t)v->strays[i].st.st_size;
	}
}

/* Reads one namespace into v.  Never fatal: a namespace that cannot be
 * read gets v->error. */
static void read_ns(struct ns_view *v, int rootfd, int shmfd,
		    const struct opts *o)
{
	int nsfd = -1, rc;

	/* Objects first, records second (as the reaper does): an object
	 * created meanwhile had its intent recorded before we read, so it is
	 * never shown as a stray. */
	if (o->strays && (rc = list_strays(v, shmfd)) < 0) {
		snprintf(v->error, sizeof v->error,
			 "shared memory directory: cannot list: %s",
			 strerror(-rc));
		v->rc = rc;
	}
	rc = rootfd < 0 ? -ENOENT
			: shmk__dir_open_secure(rootfd, v->ns, false, v->path,
						&nsfd);
	if (rc == -ENOENT) {
		drop_claimed(v);
		tally(v);
		return;
	}
	if (rc < 0) {
		snprintf(v->error, sizeof v->error, "%s", shmk_last_error());
		v->rc = rc;
		v->n_strays = 0; /* unknown records: cannot tell strays */
		v->strays_scanned = false;
		return;
	}
	v->exists = true;
	if ((rc = scan_owners(v, nsfd)) < 0) {
		snprintf(v->error, sizeof v->error, "%s: cannot list: %s",
			 v->path, strerror(-rc));
		v->rc = rc;
		close(nsfd);
		return;
	}
	for (size_t i = 0; i < v->n_owners; i++) {
		load(v, nsfd, &v->owners[i]);
		judge(nsfd, &v->owners[i]);
		check_present(&v->owners[i], shmfd);
	}
	/* Drop owners that vanished while we looked (closed or reaped). */
	size_t k = 0;
	for (size_t i = 0; i < v->n_owners; i++) {
		struct owner *ow = &v->owners[i];
		if (ow->lock == LOCK_MISSING && !ow->loaded && !ow->rec_error[0]) {
			free(ow->present);
			free(ow->ino);
			continue;
		}
		v->owners[k++] = *ow;
		/* The note may point into the element that just moved. */
		if (ow->note == ow->note_buf)
			v->owners[k - 1].note = v->owners[k - 1].note_buf;
	}
	v->n_owners = k;
	v->t.quarantined = count_quarantined(v, nsfd);
	close(nsfd);
	drop_claimed(v);
	tally(v);
}

static void free_ns(struct ns_view *v)
{
	for (size_t i = 0; i < v->n_owners; i++) {
		shmk__record_free(&v->owners[i].rec);
		free(v->owners[i].present);
		free(v->owners[i].ino);
	}
	free(v->owners);
	free(v->strays);
}

/* ---- output -------------------------------------------------------------------- */

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
}

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
	putchar('\n');
}

/* "      held by pids 12, 34 (open, mapped)" for an object some process
 * holds, nothing otherwise. */
static void print_holders(uint64_t ino)
{
	pid_t pids[32];
	unsigned how = 0;
	size_t n;

	if (!held || !ino ||
	    !(n = shmk__holders_of(held, (ino_t)ino, pids, 32, &how)))
		return;
	printf("      held by pid%s", n == 1 ? "" : "s");
	for (size_t i = 0; i < n && i < 32; i++)
		printf("%s %d", i ? "," : "", (int)pids[i]);
	printf("%s (%s%s%s)\n", n > 32 ? ", ..." : "",
	       how & SHMK_HELD_FD ? "open" : "",
	       (how & SHMK_HELD_FD) && (how & SHMK_HELD_MAP) ? ", " : "",
	       how & SHMK_HELD_MAP ? "mapped" : "");
}

static void json_holders(cJSON *o, uint64_t ino)
{
	cJSON *a = tj_arr(o, "holders");
	pid_t pids[256];
	size_t n;

	if (!held || !ino)
		return;
	n = shmk__holders_of(held, (ino_t)ino, pids, 256, NULL);
	for (size_t i = 0; i < n && i < 256; i++)
		tj_arr_num(a, pids[i]);
}

static void print_ns(const struct ns_view *v)
{
	char h[TOOL_HSIZE], t1[TOOL_HTIME], t2[TOOL_HTIME], a[TOOL_HAGE];

	printf("namespace %s (%s)%s\n", v->ns, v->path,
	       v->error[0] ? ": unreadable (see the error above)"
	       : v->exists ? "" : ": no registry directory");
	for (size_t i = 0; i < v->n_owners; i++) {
		const struct owner *ow = &v->owners[i];
		pid_t pid = ow->loaded ? ow->rec.owner.pid : ow->holder;

		if (pid > 0)
			printf("  owner %s  pid %d  %s", ow->id, (int)pid,
			       live_names[ow->live]);
		else
			printf("  owner %s  pid ?  %s", ow->id,
			       live_names[ow->live]);
		if (ow->note)
			printf(" (%s)", ow->note);
		if (ow->loaded) {
			if (ow->rec.role[0])
				printf("  role \"%s\"", ow->rec.role);
			printf("  started %s  created %s",
			       tool_htime(started_at(&ow->rec.owner), t1),
			       tool_htime(ow->rec.created, t2));
		}
		putchar('\n');
		if (ow->rec_error[0])
			printf("    error: bad record: %s (left in place; "
			       "shmclean quarantines it once the owner is "
			       "dead)\n",
			       ow->rec_error);
		for (size_t j = 0; ow->loaded && j < ow->rec.n_segs; j++) {
			const struct shmk_rec_seg *s = ow->rec.segs[j];
			printf("    %-32s %5s  %-6s  age %s%s\n", s->name,
			       tool_hsize(s->size, h),
			       s->state == SHMK_SEG_LIVE ? "live" : "intent",
			       tool_hage(now - s->created, a),
			       ow->present[j] ? "" : "  (no object)");
			print_holders(ow->ino[j]);
		}
	}
	for (size_t i = 0; i < v->n_strays; i++) {
		const struct stray *s = &v->strays[i];
		printf("  stray %-32s %5s  age %s  uid %u%s\n", s->name,
		       tool_hsize((uint64_t)s->st.st_size, h),
		       tool_hage(now - (int64_t)s->st.st_ctime, a),
		       (unsigned)s->st.st_uid,
		       S_ISREG(s->st.st_mode) ? "" : "  (not a regular file)");
		print_holders((uint64_t)s->st.st_ino);
	}
	print_totals("  total: ", &v->t, v->strays_scanned);
}

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
}

static void json_ns(cJSON *arr, const struct ns_view *v)
{
	cJSON *j = tj_arr_obj(arr), *owners, *errors;

	tj_str(j, "namespace", v->ns);
	tj_str(j, "path", v->path);
	tj_bool(j, "exists", v->exists);
	tj_str(j, "error", v->error[0] ? v->error : NULL);
	owners = tj_arr(j, "owners");
	errors = tj_arr(j, "errors");
	for (size_t i = 0; i < v->n_owners; i++) {
		const struct owner *ow = &v->owners[i];
		cJSON *oj = tj_arr_obj(owners), *segs;

		tj_str(oj, "id", ow->id);
		pid_t pid = ow->loaded ? ow->rec.owner.pid : ow->holder;
		if (pid > 0)
			tj_num(oj, "pid", pid);
		else
			tj_null(oj, "pid");
		tj_str(oj, "state", live_names[ow->live]);
		if (ow->live == LIVE_UNKNOWN)
			tj_null(oj, "alive");
		else
			tj_bool(oj, "alive", ow->live == LIVE_ALIVE);
		tj_str(oj, "lock", lock_names[ow->lock]);
		if (ow->lock == LOCK_HELD && ow->holder > 0)
			tj_num(oj, "lock_holder", ow->holder);
		else
			tj_null(oj, "lock_holder");
		tj_str(oj, "note", ow->note);
		tj_str(oj, "record", ow->loaded ? "ok"
				     : ow->rec_error[0] ? "bad" : "missing");
		tj_str(oj, "error", ow->rec_error[0] ? ow->rec_error : NULL);
		if (ow->rec_error[0])
			tj_arr_str(errors, ow->rec_error);
		if (!ow->loaded) {
			tj_null(oj, "segments");
			continue;
		}
		tj_num(oj, "start_time", (double)ow->rec.owner.start_time);
		int64_t st = started_at(&ow->rec.owner);
		if (st)
			tj_num(oj, "started", (double)st);
		else
			tj_null(oj, "started");
		tj_str(oj, "boot_id", ow->rec.owner.boot_id);
		tj_num(oj, "uid", ow->rec.owner.uid);
		tj_str(oj, "role", ow->rec.role);
		tj_num(oj, "created", (double)ow->rec.created);
		segs = tj_arr(oj, "segments");
		for (size_t k = 0; k < ow->rec.n_segs; k++) {
			const struct shmk_rec_seg *s = ow->rec.segs[k];
			cJSON *sj = tj_arr_obj(segs);

			tj_str(sj, "name", s->name);
			tj_num(sj, "size", (double)s->size);
			tj_str(sj, "state",
			       s->state == SHMK_SEG_LIVE ? "live" : "intent");
			tj_num(sj, "created", (double)s->created);
			tj_num(sj, "age", (double)(now - s->created));
			tj_bool(sj, "present", ow->present[k]);
			json_holders(sj, ow->ino[k]);
		}
	}
	if (!v->strays_scanned) {
		tj_null(j, "strays");
	} else {
		cJSON *sa = tj_arr(j, "strays");
		for (size_t i = 0; i < v->n_strays; i++) {
			const struct stray *s = &v->strays[i];
			cJSON *sj = tj_arr_obj(sa);

			tj_str(sj, "name", s->name);
			tj_num(sj, "size", (double)s->st.st_size);
			tj_num(sj, "age", (double)(now - (int64_t)s->st.st_ctime));
			tj_num(sj, "uid", s->st.st_uid);
			tj_bool(sj, "regular", S_ISREG(s->st.st_mode));
			json_holders(sj, (uint64_t)s->st.st_ino);
		}
	}
	json_totals(j, &v->t, v->strays_scanned);
}

/* ---- main -------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t list_namespaces(int rootfd, const char *dir, char ***out)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dh;

	if (fd < 0 || !(dh = fdopendir(fd)))
		tool_fatal(EX_OSERR, "unable to list registry directory %s: %s",
			   dir, strerror(errno));
	while ((d = readdir(dh))) {
		struct stat st;

		if (!shmk__ns_ok(d->d_name) ||
		    fstatat(rootfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)))
			continue; /* a symlink is kept: to be refused aloud */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if (!(v = reallocarray(v, cap, sizeof *v)))
				oom();
		}
		if (!(v[n++] = strdup(d->d_name)))
			oom();
	}
	closedir(dh);
	if (n)
		qsort(v, n, sizeof *v, cmp_str);
	*out = v;
	return n;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct ns_totals all = {0};
	struct ns_view *views;
	char dir[PATH_MAX], **names = NULL;
	const char *shm;
	size_t n = 0;
	int rootfd = -1, shmfd, rc, status = 0;
	int failed = 0; /* exit code of the first namespace that failed */
	bool bad = false;

	tool_init("shmls");
	parse_args(argc, argv, &o);
	now = shmk__now();
	if ((rc = shmk__self_ident(&me)) < 0)
		tool_fatal(EX_OSERR, "unable to read own identity: %s",
			   shmk_last_error());
	read_boot_time();
	if ((rc = shmk__dir_resolve(o.dir, dir, sizeof dir)) < 0)
		tool_fatal(tool_exit_code_for(rc),
			   "unable to resolve the registry directory: %s",
			   shmk_last_error());
	shm = o.shm_dir ? o.shm_dir : SHMK_DEFAULT_SHM_DIR;
	if ((rc = shmk__shmdir_open(shm, &shmfd)) < 0)
		tool_fatal(tool_exit_code_for(rc),
			   "unable to open shared memory directory %s: %s", shm,
			   tool_reason("shared memory directory"));

	/* create = false: listing must never create the directory; and an
	 * unmarked directory that is not empty is not a registry (refused). */
	rc = shmk__registry_open(dir, false, &rootfd);
	if (rc < 0 && rc != -ENOENT) {
		char pfx[PATH_MAX + 32];
		snprintf(pfx, sizeof pfx, "registry directory %s", dir);
		tool_fatal(tool_exit_code_for(rc),
			   "unable to open registry directory %s: %s", dir,
			   tool_reason(pfx));
	}
	if (o.ns) {
		n = 1;
		if (!(names = calloc(1, sizeof *names)) ||
		    !(names[0] = strdup(o.ns)))
			oom();
	} else if (rootfd >= 0) {
		n = list_namespaces(rootfd, dir, &names);
	}
	if (!(views = calloc(n ? n : 1, sizeof *views)))
		oom();
	for (size_t i = 0; i < n; i++) {
		struct ns_view *v = &views[i];

		snprintf(v->ns, sizeof v->ns, "%s", names[i]);
		snprintf(v->path, sizeof v->path, "%s/%s", dir, names[i]);
		read_ns(v, rootfd, shmfd, &o);
		if (v->error[0]) {
			if (o.ns)
				tool_fatal(tool_exit_code_for(v->rc),
					   "unable to read namespace %s: %s",
					   v->ns, v->error);
			tool_error("unable to read namespace %s: %s", v->ns,
				   v->error);
			if (!failed)
				failed = tool_exit_code_for(v->rc);
		}
		bad |= v->t.bad_records > 0;
		add(&all, &v->t);
	}

	/* One pass over /proc tells who still holds each object. */
	{
		struct stat sd;
		if ((all.segments || all.strays) && fstat(shmfd, &sd) == 0 &&
		    shmk__holders_scan(sd.st_dev, &held) < 0)
			tool_warn("unable to tell which processes hold the "
				  "segments: %s", shmk_last_error());
	}
	if (o.json) {
		cJSON *doc = tj_object(), *arr;
		tj_str(doc, "registry", dir);
		tj_bool(doc, "exists", rootfd >= 0);
		tj_str(doc, "shm_dir", shm);
		arr = tj_arr(doc, "namespaces");
		for (size_t i = 0; i < n; i++)
			json_ns(arr, &views[i]);
		json_totals(doc, &all, o.strays);
		tj_print(doc);
	} else {
		printf("registry %s%s\n", dir,
		       rootfd >= 0 ? "" : ": does not exist (nothing registered)");
		for (size_t i = 0; i < n; i++)
			print_ns(&views[i]);
		if (n != 1 || !o.ns) {
			char label[64];
			snprintf(label, sizeof label, "total: %zu namespace%s, ",
				 n, tool_s(n));
			print_totals(label, &all, o.strays);
		}
	}
	if (failed)
		status = failed;
	else if (bad)
		status = EX_DATAERR;
	else if (all.unknown)
		status = EX_TEMPFAIL; /* unknown is never a clean bill */
	shmk__holders_free(held);
	status = tool_status(status); /* EX_IOERR if output was lost */
	for (size_t i = 0; i < n; i++) {
		free_ns(&views[i]);
		free(names[i]);
	}
	free(names);
	free(views);
	if (rootfd >= 0)
		close(rootfd);
	close(shmfd);
	return status;
}
