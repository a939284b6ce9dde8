/* SPDX-License-Identifier: MIT */
/* admit.c - may this segment be created?  One admission check for the
 * namespace budget (shmk_options.budget_bytes) and the limits of an
 * attached monitor, with one scan of the namespace for both.
 *
 * What counts is the caller's own objects by the memory they take
 * (shmk__ns_usage): a co-tenant's file in our namespace, however large it
 * claims to be, can neither exhaust our budget nor trip our hard limit.
 *
 * This sits above segment.c and monitor.c and below neither: segment.c
 * asks it, and monitor.c only hands over its limits and the RSS it reads,
 * so the monitor knows nothing about contexts. */
#include "ctx.h"

#include <inttypes.h>
#include <string.h>

int shmk__admit(shmk_ctx *c, const char *name, uint64_t size,
		struct shmk_sample *soft_out)
{
	struct shmk__limits l = {0};
	struct shmk_sample s = {0};
	uint64_t n = 0;
	int rc;

	if (c->monitor)
		shmk__monitor_get_limits(c->monitor, &l);
	if (c->budget || l.ns_bytes_hard || l.ns_bytes_soft) {
		/* The context's namespace in the context's shm directory,
		 * whatever namespace the monitor samples. */
		if ((rc = shmk__ns_usage(c->shm_fd, c->ns, &n, &s.ns_bytes,
					  &c->foreign)) < 0)
			return shmk__err(rc, "segment %s: %s: cannot list: %s",
					 name, c->shm_path, strerror(-rc));
	}
	if (c->budget && s.ns_bytes + size > c->budget)
		return shmk__err(-EDQUOT,
				 "segment %s: namespace %s would hold %" PRIu64
				 " bytes, over its budget of %" PRIu64,
				 name, c->ns, s.ns_bytes + size, c->budget);
	if (l.ns_bytes_hard && s.ns_bytes + size > l.ns_bytes_hard)
		return shmk__err(-EDQUOT,
				 "segment %s: namespace %s would hold %" PRIu64
				 " bytes, over the monitor's hard limit of %" PRIu64,
				 name, c->ns, s.ns_bytes + size, l.ns_bytes_hard);
	if (l.rss_hard || l.rss_soft)
		s.rss = shmk__monitor_rss(c->monitor);
	if (l.rss_hard && s.rss > l.rss_hard)
		return shmk__err(-ENOMEM,
				 "segment %s: RSS is %" PRIu64 " bytes, over the "
				 "monitor's hard limit of %" PRIu64,
				 name, s.rss, l.rss_hard);
	s.ns_bytes += size;
	if (!((l.ns_bytes_soft && s.ns_bytes > l.ns_bytes_soft) ||
	      (l.rss_soft && s.rss > l.rss_soft)))
		return 0;
	*soft_out = s;
	return 1;
}

int shmk_monitor_attach(shmk_monitor *m, shmk_ctx *c)
{
	if (!c)
		return shmk__err(-EINVAL, "monitor: ctx is NULL");
	pthread_mutex_lock(&c->mu);
	c->monitor = m;
	pthread_mutex_unlock(&c->mu);
	return 0;
}
