/* SPDX-License-Identifier: MIT */
/* test_scan.c - shmk_registry_scan(): the public, read-only view of a
 * registry that shmls prints.  It judges owners as the reaper does, reads
 * records with the reaper's strict parser, names who holds each object,
 * changes nothing, and fails whole only when nothing can be read. */
#include "helpers.h"
#include "internal.h" /* record writers, to make owners by hand */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(scan, .init = tenv_setup, .fini = tenv_teardown, .timeout = 60);

#define DEAD_ID "p4000000-1-00c0ffee"
#define ODD_ID "p4000001-1-0badf00d"

static struct shmk_scan_options sopts(unsigned flags)
{
	return (struct shmk_scan_options){.dir = T.dir, .ns = T.ns,
					  .shm_dir = T.shm_dir, .flags = flags};
}

static const struct shmk_scan_ns *the_ns(const struct shmk_scan *sc)
{
	cr_assert_eq(sc->n_ns, 1);
	cr_assert_str_eq(sc->ns[0].ns, T.ns);
	return &sc->ns[0];
}

static const struct shmk_scan_owner *owner(const struct shmk_scan_ns *v,
					   const char *id)
{
	for (size_t i = 0; i < v->n_owners; i++)
		if (!strcmp(v->owners[i].id, id))
			return &v->owners[i];
	cr_assert_fail("owner %s not in the scan", id);
	return NULL;
}

/* Names, sizes and mtimes of everything in the namespace directory and of
 * the namespace's objects: what a read-only scan must leave as it was. */
static char *snapshot(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *dirs[2] = {T.ns_dir, T.shm_dir};

	for (int k = 0; k < 2; k++) {
		struct dirent **ents;
		int n = scandir(dirs[k], &ents, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			char p[PATH_MAX * 2];
			struct stat st;
			snprintf(p, sizeof p, "%s/%s", dirs[k], ents[i]->d_name);
			if ((k == 0 || !strncmp(ents[i]->d_name, T.ns, strlen(T.ns))) &&
			    lstat(p, &st) == 0)
				fprintf(f, "%s %lld %lld.%09ld %o\n", p,
					(long long)st.st_size,
					(long long)st.st_mtim.tv_sec,
					st.st_mtim.tv_nsec, st.st_mode);
			free(ents[i]);
		}
		if (n >= 0)
			free(ents);
	}
	fclose(f);
	return buf;
}

Test(scan, judges_alive_dead_and_unknown_as_the_reaper_does_and_changes_nothing)
{
	static const char *const names[] = {"dead0", NULL};
	shmk_ctx *ctx = topen();
	shmk_segment *seg;
	char self_id[SHMK_ID_MAX], p[PATH_MAX];
	struct shmk_ident me;

	cr_assert_eq(shmk_segment_create(ctx, "mine", 4096, &seg), 0);
	tkilled_owner(names, NULL, 8192);
	/* An owner whose lock file is a directory: nothing proves it either
	 * way. */
	cr_assert_eq(shmk__self_ident(&me), 0);
	trecord(ODD_ID, &me, "odd", SHMK_SEG_INTENT, 0);
	snprintf(p, sizeof p, "%s/" ODD_ID ".lock", T.ns_dir);
	cr_assert_eq(mkdir(p, 0700), 0);

	char *before = snapshot();
	struct shmk_scan_options so = sopts(0);
	struct shmk_scan *sc;
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	char *after = snapshot();
	cr_assert_str_eq(before, after, "the scan changed something");

	const struct shmk_scan_ns *v = the_ns(sc);
	cr_assert(v->exists);
	cr_assert_null(v->error);
	cr_assert_eq(v->n_owners, 3);
	size_t alive = 0, dead = 0, unknown = 0;
	for (size_t i = 0; i < v->n_owners; i++) {
		const struct shmk_scan_owner *o = &v->owners[i];
		if (i)
			cr_assert_lt(strcmp(v->owners[i - 1].id, o->id), 0,
				     "owners not sorted");
		alive += o->state == SHMK_OWNER_ALIVE;
		dead += o->state == SHMK_OWNER_DEAD;
		unknown += o->state == SHMK_OWNER_UNKNOWN;
		if (o->state == SHMK_OWNER_ALIVE) {
			snprintf(self_id, sizeof self_id, "%s", o->id);
			cr_assert_eq(o->pid, getpid());
			cr_assert_eq(o->lock, SHMK_LOCK_HELD);
			cr_assert_eq(o->lock_holder, getpid());
			cr_assert_eq(o->n_segments, 1);
			cr_assert_str_eq(o->segments[0].name, tfull("mine"));
			cr_assert(o->segments[0].present);
			cr_assert_eq(o->segments[0].size, 4096);
			/* We map it: the pass over /proc says so. */
			cr_assert_geq(o->segments[0].n_holders, 1);
			cr_assert(o->segments[0].held & SHMK_HELD_MAPPED);
			cr_assert_gt(o->started, 0, "started of this boot");
		} else if (o->state == SHMK_OWNER_DEAD) {
			cr_assert_eq(o->lock, SHMK_LOCK_FREE);
			cr_assert_eq(o->record, SHMK_RECORD_OK);
			cr_assert_eq(o->n_segments, 1);
			cr_assert_eq(o->segments[0].n_holders, 0);
			cr_assert_eq(o->error, 0);
		}
	}
	cr_assert_eq(alive, 1);
	cr_assert_eq(dead, 1);
	cr_assert_eq(unknown, 1);
	const struct shmk_scan_owner *odd = owner(v, ODD_ID);
	cr_assert_eq(odd->lock, SHMK_LOCK_BAD);
	cr_assert_lt(odd->error, 0, "unknown comes with its cause");
	cr_assert(odd->note && strstr(odd->note, "not a regular file"),
		  "note: %s", odd->note ? odd->note : "(null)");
	cr_assert_eq(odd->segments[0].present, 0);
	cr_assert_str_eq(shmk_owner_state_name(odd->state), "unknown");
	shmk_scan_free(sc);

	/* The reaper sees the same three. */
	int rc;
	struct shmk_reap_report *rep = treap(SHMK_REAP_DRY_RUN | SHMK_REAP_NO_STRAYS, &rc);
	cr_assert_eq(rep->owners_dead, dead);
	cr_assert_eq(rep->owners_unknown, unknown);
	shmk_reap_report_free(rep);

	free(before);
	free(after);
	rmdir(p);
	cr_assert_eq(shmk_segment_destroy(seg), 0);
	cr_assert_eq(shmk_close(ctx), 0);
	rep = treap(SHMK_REAP_NO_STRAYS, &rc);
	shmk_reap_report_free(rep);
}

Test(scan, a_bad_record_is_reported_and_left_in_place)
{
	static const char junk[] = "{\"this is\": not a record\n";
	struct shmk_scan_options so = sopts(0);
	struct shmk_scan *sc;

	put_file(DEAD_ID ".jsonl", junk, sizeof junk - 1);
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	const struct shmk_scan_owner *o = owner(the_ns(sc), DEAD_ID);
	cr_assert_eq(o->record, SHMK_RECORD_BAD);
	cr_assert(o->record_error && strstr(o->record_error, DEAD_ID ".jsonl"),
		  "the error names the file: %s", o->record_error);
	cr_assert_eq(o->n_segments, 0);
	cr_assert_str_eq(shmk_record_state_name(o->record), "bad");
	shmk_scan_free(sc);
	cr_assert_eq(ns_files(".jsonl"), 1, "a scan never quarantines");
	cr_assert_eq(quarantined_files(), 0);
}

Test(scan, strays_are_listed_only_when_asked_with_who_holds_them)
{
	char p[PATH_MAX];
	struct shmk_scan *sc;

	snprintf(p, sizeof p, "%s/%s.loose", T.shm_dir, T.ns);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 8192), 0);

	struct shmk_scan_options so = sopts(0);
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0);
	cr_assert_eq(the_ns(sc)->strays_scanned, 0);
	cr_assert_eq(the_ns(sc)->n_strays, 0);
	shmk_scan_free(sc);

	so.flags = SHMK_SCAN_STRAYS;
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0);
	const struct shmk_scan_ns *v = the_ns(sc);
	cr_assert_eq(v->strays_scanned, 1);
	cr_assert_eq(v->n_strays, 1);
	cr_assert_str_eq(v->strays[0].name, tfull("loose"));
	cr_assert_eq(v->strays[0].size, 8192);
	cr_assert(v->strays[0].regular);
	cr_assert_eq(v->strays[0].uid, geteuid());
	bool me = false;
	for (size_t i = 0; i < v->strays[0].n_holders; i++)
		me |= v->strays[0].holders[i] == getpid();
	cr_assert(me, "we hold it open");
	cr_assert(v->strays[0].held & SHMK_HELD_OPEN);
	shmk_scan_free(sc);

	/* Without the pass over /proc, nobody is named. */
	so.flags = SHMK_SCAN_STRAYS | SHMK_SCAN_NO_HOLDERS;
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0);
	cr_assert_eq(the_ns(sc)->strays[0].n_holders, 0);
	shmk_scan_free(sc);
	close(fd);
	unlink(p);
}

Test(scan, a_directory_that_is_not_a_registry_is_refused_whole)
{
	char d[PATH_MAX], f[PATH_MAX + 16];
	struct shmk_scan *sc = (void *)1;

	snprintf(d, sizeof d, "%s/src", T.dir);
	cr_assert_eq(mkdir(d, 0700), 0);
	snprintf(f, sizeof f, "%s/Cargo.lock", d);
	int fd = open(f, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);

	struct shmk_scan_options so = {.dir = d, .shm_dir = T.shm_dir};
	cr_assert_eq(shmk_registry_scan(&so, &sc), -ENOTEMPTY);
	cr_assert_null(sc);
	cr_assert(strstr(shmk_last_error(), d), "%s", shmk_last_error());
	unlink(f);
	rmdir(d);
}

Test(scan, a_missing_registry_is_empty_and_not_created)
{
	char d[PATH_MAX];
	struct shmk_scan *sc;
	struct stat st;

	snprintf(d, sizeof d, "%s/not-yet", T.dir);
	struct shmk_scan_options so = {.dir = d, .shm_dir = T.shm_dir};
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(sc->exists, 0);
	cr_assert_eq(sc->n_ns, 0);
	cr_assert_str_eq(sc->registry, d);
	shmk_scan_free(sc);
	cr_assert_eq(stat(d, &st), -1, "a scan created the registry");
}

Test(scan, names_only_reads_nothing_inside_and_a_symlinked_namespace_is_refused_aloud)
{
	char link_path[PATH_MAX];
	struct shmk_scan *sc;

	tclaim(); /* makes T.ns_dir */
	put_file(DEAD_ID ".jsonl", "junk\n", 5);
	snprintf(link_path, sizeof link_path, "%s/elsewhere", T.dir);
	cr_assert_eq(symlink("/etc", link_path), 0);

	struct shmk_scan_options so = {.dir = T.dir, .shm_dir = T.shm_dir,
				       .flags = SHMK_SCAN_NAMES_ONLY};
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(sc->n_ns, 2);
	cr_assert_str_eq(sc->ns[0].ns, "elsewhere");
	cr_assert_str_eq(sc->ns[1].ns, T.ns);
	cr_assert_eq(sc->ns[1].n_owners, 0, "names only: nothing read");
	shmk_scan_free(sc);

	so.flags = 0;
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(sc->n_ns, 2);
	cr_assert(sc->ns[0].error, "a symlink is refused, not followed");
	cr_assert_lt(sc->ns[0].error_code, 0);
	cr_assert_eq(sc->ns[0].n_owners, 0);
	cr_assert_eq(sc->ns[1].n_owners, 1);
	cr_assert_eq(sc->ns[1].owners[0].record, SHMK_RECORD_BAD);
	shmk_scan_free(sc);
	unlink(link_path);
}

Test(scan, a_bad_namespace_name_is_einval)
{
	struct shmk_scan *sc;
	struct shmk_scan_options so = {.dir = T.dir, .ns = "no/slash"};

	cr_assert_eq(shmk_registry_scan(&so, &sc), -EINVAL);
	cr_assert_null(sc);
	so.ns = "sem";
	cr_assert_eq(shmk_registry_scan(&so, &sc), -EINVAL);
	cr_assert_eq(shmk_registry_scan(&so, NULL), -EINVAL);
}

static unsigned kth, calls;
static int on_kth(const char *name, int *failnum, void **failinfo,
		  unsigned *flags)
{
	(void)name;
	(void)failnum;
	(void)flags;
	*failinfo = (void *)(intptr_t)ENOMEM;
	return ++calls == kth;
}

/* Makes "<T.ns>.<name>" of size bytes, maps len bytes of it from offset
 * and unlinks it: memory that only the mapping keeps. */
static void *map_unlinked(const char *name, size_t size, off_t offset,
			  size_t len)
{
	char p[PATH_MAX];
	int fd;
	void *m;

	snprintf(p, sizeof p, "%s/%s.%s", T.shm_dir, T.ns, name);
	fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
	cr_assert_neq(m, MAP_FAILED);
	close(fd);
	cr_assert_eq(unlink(p), 0);
	return m;
}

/* What the reaper unlinked (or anyone did) while a process maps it is still
 * memory in use: listed in the namespace its name was in, with the highest
 * byte mapped and who maps it; what still has its name is not. */
Test(scan, objects_unlinked_but_still_mapped_are_listed_with_their_holders)
{
	shmk_ctx *ctx = topen();
	shmk_segment *seg, *kept;
	char p[PATH_MAX];

	/* A recorded segment whose name someone removed under its owner. */
	cr_assert_eq(shmk_segment_create(ctx, "seg", 3 * 4096, &seg), 0);
	cr_assert_eq(shmk_segment_create(ctx, "kept", 4096, &kept), 0);
	snprintf(p, sizeof p, "%s/%s.seg", T.shm_dir, T.ns);
	cr_assert_eq(unlink(p), 0);
	/* An object no record names, mapped in part: the middle page of
	 * three, and its first page apart (the largest extent counts). */
	snprintf(p, sizeof p, "%s/%s.raw", T.shm_dir, T.ns);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 3 * 4096), 0);
	void *m1 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
	void *m0 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(m1 != MAP_FAILED && m0 != MAP_FAILED);
	close(fd);
	cr_assert_eq(unlink(p), 0);

	struct shmk_scan_options so = sopts(0);
	struct shmk_scan *sc;
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_null(sc->holders_error, "%s", sc->holders_error);
	const struct shmk_scan_ns *v = the_ns(sc);
	cr_assert_eq(v->n_unlinked, 2, "%zu", v->n_unlinked);
	for (size_t i = 0; i < v->n_unlinked; i++) {
		const struct shmk_scan_unlinked *u = &v->unlinked[i];
		bool me = false;

		if (i)
			cr_assert_lt(v->unlinked[i - 1].ino, u->ino, "not sorted");
		if (!strcmp(u->name, tfull("seg")))
			cr_assert_eq(u->size, 3 * 4096);
		else if (!strcmp(u->name, tfull("raw")))
			cr_assert_eq(u->size, 2 * 4096, "offset + length");
		else
			cr_assert_fail("unexpected %s", u->name);
		cr_assert(u->held & SHMK_HELD_MAPPED);
		for (size_t k = 0; k < u->n_holders; k++)
			me |= u->holders[k] == getpid();
		cr_assert(me, "%s: we map it", u->name);
	}
	shmk_scan_free(sc);

	/* Without the pass over /proc nothing is known of them. */
	so = sopts(SHMK_SCAN_NO_HOLDERS);
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(the_ns(sc)->n_unlinked, 0);
	shmk_scan_free(sc);

	munmap(m1, 4096);
	munmap(m0, 4096);
	shmk_segment_destroy(seg); /* its name is gone already */
	cr_assert_eq(shmk_segment_destroy(kept), 0);
	cr_assert_eq(shmk_close(ctx), 0);

	/* Once unmapped, nothing is left to list. */
	so = sopts(0);
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(the_ns(sc)->n_unlinked, 0);
	shmk_scan_free(sc);
}

/* Every allocation of a scan fails in turn: each is -ENOMEM with a
 * sentence, or a whole result; nothing leaks (make asan, make valgrind). */
Test(scan, every_allocation_failure_is_reported_and_leaks_nothing)
{
	static const char *const names[] = {"m0", "m1", NULL};
	char p[PATH_MAX];
	bool whole = false;

	tkilled_owner(names, NULL, 4096);
	snprintf(p, sizeof p, "%s/%s.loose", T.shm_dir, T.ns);
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	void *gone = map_unlinked("gone", 4096, 0, 4096);
	for (kth = 1; kth < 400 && !whole; kth++) {
		struct shmk_scan_options so = sopts(SHMK_SCAN_STRAYS);
		struct shmk_scan *sc = NULL;
		int rc;

		calls = 0;
		fiu_enable_external("shmk/sys/malloc", 1, NULL, 0, on_kth);
		rc = shmk_registry_scan(&so, &sc);
		fiu_disable("shmk/sys/malloc");
		if (calls < kth) {
			cr_assert_eq(rc, 0, "%s", shmk_last_error());
			whole = true;
		} else if (rc < 0) {
			cr_assert_eq(rc, -ENOMEM, "failure %u: rc %d", kth, rc);
			cr_assert_null(sc);
			cr_assert(shmk_last_error()[0]);
			continue;
		} else {
			/* Only the holders pass failed: said, not hidden. */
			cr_assert(sc->holders_error, "failure %u hidden", kth);
		}
		cr_assert_eq(the_ns(sc)->n_owners, 1);
		if (!sc->holders_error)
			cr_assert_eq(the_ns(sc)->n_unlinked, 1);
		shmk_scan_free(sc);
	}
	munmap(gone, 4096);
	cr_assert(whole, "the scan never completed");
	cr_assert_gt(kth, 3, "the scan allocates through the failpoint");
	unlink(p);
	int rc;
	shmk_reap_report_free(treap(SHMK_REAP_NO_STRAYS, &rc));
}

/* A reader writes nothing, not even the marker of an empty directory (the
 * reaper and shmk_open mark it): shmls is read-only as its page says. */
Test(scan, an_empty_unmarked_directory_is_read_as_empty_and_not_marked)
{
	char d[PATH_MAX], m[PATH_MAX + 32];
	struct shmk_scan *sc;
	struct stat st;

	snprintf(d, sizeof d, "%s/empty", T.dir);
	snprintf(m, sizeof m, "%s/.shmkeeper-registry", d);
	cr_assert_eq(mkdir(d, 0700), 0);
	struct shmk_scan_options so = {.dir = d, .shm_dir = T.shm_dir};
	cr_assert_eq(shmk_registry_scan(&so, &sc), 0, "%s", shmk_last_error());
	cr_assert_eq(sc->exists, 1);
	cr_assert_eq(sc->n_ns, 0);
	shmk_scan_free(sc);
	cr_assert_eq(lstat(m, &st), -1, "the scan wrote a marker");

	char *argv[] = {"shmls", "--dir", d, NULL};
	struct out r = run_tool(SHMK_BUILDDIR "/tools/shmls", argv, NULL, 0);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_eq(lstat(m, &st), -1, "shmls wrote a marker");
	out_free(&r);

	/* The reaper makes it a registry, as before. */
	struct shmk_reap_options ro = {.dir = d, .shm_dir = T.shm_dir,
				       .flags = SHMK_REAP_NO_HOLDERS};
	struct shmk_reap_report *rep = NULL;
	cr_assert_eq(shmk_reap(&ro, &rep), 0, "%s", shmk_last_error());
	shmk_reap_report_free(rep);
	cr_assert_eq(lstat(m, &st), 0, "the reaper marks an empty directory");
	unlink(m);
	rmdir(d);
}

/* The one listing of a registry's namespaces: a symlink with a namespace's
 * name is refused aloud by shmk_reap() of every namespace too (an error
 * item naming it, -EIO), not skipped in silence, and the others are still
 * reaped. */
Test(scan, reaping_every_namespace_refuses_a_symlinked_one_aloud)
{
	static const char *const names[] = {"gone0", NULL};
	char link_path[PATH_MAX];
	struct shmk_reap_report *rep = NULL;

	tkilled_owner(names, NULL, 4096);
	snprintf(link_path, sizeof link_path, "%s/elsewhere", T.dir);
	cr_assert_eq(symlink("/etc", link_path), 0);
	struct shmk_reap_options ro = {.dir = T.dir, .shm_dir = T.shm_dir,
				       .flags = SHMK_REAP_NO_STRAYS};
	cr_assert_eq(shmk_reap(&ro, &rep), -EIO);
	cr_assert_eq(rep->segments_reaped, 1, "the other namespace is reaped");
	bool named = false;
	for (size_t i = 0; i < rep->n_items; i++)
		named |= rep->items[i].action == SHMK_REAP_ERROR &&
			 !strcmp(rep->items[i].ns, "elsewhere");
	cr_assert(named, "the symlinked namespace is not reported");
	shmk_reap_report_free(rep);
	cr_assert(!shm_exists("gone0"));
	unlink(link_path);
}
