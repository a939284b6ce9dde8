/* SPDX-License-Identifier: MIT */
/* ctx.c - opening and closing a namespace. */
#include "ctx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Opens the namespace directory into c->ns_fd, making it if needed, and
 * takes a shared flock on it, held as long as ns_fd is open (the whole
 * life of the context, and of fork children that inherit it).  A reaper
 * removes an empty namespace directory only under an exclusive flock
 * (shmk__ns_rmdir()), so never one that a context has open, even before
 * its first file is in it.  Between our open and our lock a reaper may
 * have removed it: then it has no links left, and we make it again.
 * Bounded: a reaper holds its lock for one rmdir; one stopped while
 * holding it makes this fail with -EAGAIN after about a second.
 */
static int ns_dir_open(shmk_ctx *c)
{
	const struct timespec ms = {0, 1000 * 1000};
	struct stat st;
	int rc;

	for (int tries = 0;; tries++) {
		if ((rc = shmk__dir_open_secure(c->root_fd, c->ns, true,
						c->ns_path, &c->ns_fd)) < 0)
			return rc;
		(void)fiu_fail("shmk/test/ns/before_lock");
		bool locked =
			SHMK_SYS("flock", flock(c->ns_fd, LOCK_SH | LOCK_NB)) == 0;
		if (!locked && errno != EWOULDBLOCK) {
			rc = -errno;
			shmk__close(&c->ns_fd);
			return shmk__err(rc, "namespace directory %s: cannot lock: "
					     "%s",
					 c->ns_path, strerror(-rc));
		}
		if (locked && fstat(c->ns_fd, &st) == 0 && st.st_nlink > 0)
			return 0;
		/* Locked by a reaper, or removed by one: again. */
		shmk__close(&c->ns_fd);
		if (tries == 1000)
			return shmk__err(-EAGAIN,
					 "namespace directory %s: a reaper has "
					 "held it for a second; try again",
					 c->ns_path);
		nanosleep(&ms, NULL);
	}
}

int shmk_open(const struct shmk_options *opt, shmk_ctx **out)
{
	shmk_ctx *c;
	int rc;

	if (!out)
		return shmk__err(-EINVAL, "shmk_open: out is NULL");
	*out = NULL;
	if (!opt)
		return shmk__err(-EINVAL, "shmk_open: options are NULL");
	if ((rc = shmk_ns_check(opt->ns)) < 0)
		return rc;
	if (!shmk__role_ok(opt->role))
		return shmk__err(-EINVAL,
				 "role \"%.64s\": invalid: at most %d of "
				 "[A-Za-z0-9_.:@/+ -]",
				 opt->role, SHMK_ROLE_MAX);
	if (opt->durability > SHMK_DURABLE_ON)
		return shmk__err(-EINVAL, "shmk_open: unknown durability %d",
				 (int)opt->durability);
	if (!(c = SHMK_SYSP("malloc", NULL, calloc(1, sizeof *c))))
		return shmk__err(-ENOMEM, "shmk_open: out of memory");
	c->root_fd = c->ns_fd = c->shm_fd = -1;
	c->own.lock_fd = c->own.rec_fd = c->own.old_fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	snprintf(c->ns, sizeof c->ns, "%s", opt->ns);
	snprintf(c->role, sizeof c->role, "%s", opt->role ? opt->role : "");
	c->budget = opt->budget_bytes;

	if ((rc = shmk__dir_resolve(opt->dir, c->dir, sizeof c->dir)) < 0 ||
	    (rc = shmk__registry_open(c->dir, SHMK_REG_CREATE, &c->root_fd)) < 0)
		goto fail;
	snprintf(c->ns_path, sizeof c->ns_path, "%s/%s", c->dir, c->ns);
	if ((rc = ns_dir_open(c)) < 0)
		goto fail;
	snprintf(c->shm_path, sizeof c->shm_path, "%s",
		 opt->shm_dir ? opt->shm_dir : SHMK_DEFAULT_SHM_DIR);
	if ((rc = shmk__shmdir_open(c->shm_path, &c->shm_fd)) < 0)
		goto fail;
	/* The namespace belongs to this registry from now on, as the shm
	 * directory tells every process of the host (shmdir.c); -EBUSY if it
	 * belongs to another.  1, "unclaimed" (a co-tenant squats the name),
	 * is no reason to refuse service. */
	if ((rc = shmk__claim_bind(c->shm_fd, c->shm_path, c->ns, c->dir,
				   c->root_fd)) < 0)
		goto fail;
	/* Durability is off unless asked for (docs/DESIGN.md): the registry
	 * must survive the death of processes, which loses nothing written
	 * to the page cache, not power loss, which empties the tmpfs its
	 * segments live on anyway. */
	c->durable = opt->durability == SHMK_DURABLE_ON;
	c->lazy_spawner = opt->flags & SHMK_OPEN_LAZY_SPAWNER;

	/* A restarted service finds no garbage from its previous life.  What
	 * the reap could not handle (a quarantined record, say) is for
	 * shmclean to report; it does not stop the service. */
	if (!(opt->flags & SHMK_OPEN_NO_REAP)) {
		struct shmk_reap_report rep = {0};
		(void)shmk__reap_ns(c->root_fd, c->dir, c->ns, c->shm_fd,
				    SHMK_REAP_NO_STRAYS | SHMK_REAP_NO_HOLDERS |
					    SHMK__REAP_QUIET,
				    0, NULL, &rep);
		shmk__reap_report_clear(&rep);
	}
	*out = c;
	return 0;
fail:
	shmk__close(&c->shm_fd);
	shmk__close(&c->ns_fd);
	shmk__close(&c->root_fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return rc;
}

int shmk_close(shmk_ctx *c)
{
	int rc;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->mu);
	rc = shmk__owner_close(c);
	shmk__inoset_free(&c->foreign);
	pthread_mutex_unlock(&c->mu);
	shmk__close(&c->shm_fd);
	shmk__close(&c->ns_fd);
	shmk__close(&c->root_fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return rc;
}

const char *shmk_dir(const shmk_ctx *c) { return c->dir; }
const char *shmk_ns(const shmk_ctx *c) { return c->ns; }

size_t shmk_owned_count(shmk_ctx *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->own.pid == shmk__pid() ? c->own.segs.used : 0;
	pthread_mutex_unlock(&c->mu);
	return n;
}
