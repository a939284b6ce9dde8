/* SPDX-License-Identifier: MIT */
/* binding.c - what a binding that cannot read shmkeeper.h needs: the layout
 * of the public structs as this library was built.
 *
 * A ctypes (or cffi ABI-mode) binding has to declare the structs again in
 * its own language.  Such a copy drifts silently when the header changes;
 * with shmk_layout() the binding checks every field it declares, offset and
 * size, and the size of each struct, against the library it loaded, and
 * refuses to load on any difference instead of reading the wrong bytes.
 *
 * The table is written from the header by offsetof/sizeof, so it cannot be
 * wrong about a field it lists; tests/test_binding.c checks that it lists
 * every field (no gap between the fields it names wider than padding).
 */
#include "internal.h"

#include <stddef.h>
#include <string.h>

#define F(type, field)                                                  \
	{ #type, #field, offsetof(struct type, field),                  \
	  sizeof(((struct type *)0)->field) }
#define S(type) { #type, NULL, 0, sizeof(struct type) }

/* Each struct: its size (S) first, then its fields in order. */
const struct shmk__layout shmk__layouts[] = {
	S(shmk_options),
	F(shmk_options, dir),
	F(shmk_options, ns),
	F(shmk_options, shm_dir),
	F(shmk_options, role),
	F(shmk_options, durability),
	F(shmk_options, budget_bytes),
	F(shmk_options, flags),

	S(shmk_reap_options),
	F(shmk_reap_options, dir),
	F(shmk_reap_options, ns),
	F(shmk_reap_options, shm_dir),
	F(shmk_reap_options, flags),
	F(shmk_reap_options, stray_min_age),

	S(shmk_reap_item),
	F(shmk_reap_item, action),
	F(shmk_reap_item, ns),
	F(shmk_reap_item, owner),
	F(shmk_reap_item, pid),
	F(shmk_reap_item, object),
	F(shmk_reap_item, bytes),
	F(shmk_reap_item, error),
	F(shmk_reap_item, reason),
	F(shmk_reap_item, n_holders),
	F(shmk_reap_item, holders),

	S(shmk_reap_report),
	F(shmk_reap_report, n_items),
	F(shmk_reap_report, items),
	F(shmk_reap_report, owners_dead),
	F(shmk_reap_report, owners_alive),
	F(shmk_reap_report, segments_reaped),
	F(shmk_reap_report, segments_gone),
	F(shmk_reap_report, segments_live),
	F(shmk_reap_report, strays_kept),
	F(shmk_reap_report, strays_removed),
	F(shmk_reap_report, quarantined),
	F(shmk_reap_report, errors),
	F(shmk_reap_report, bytes_reaped),
	F(shmk_reap_report, bytes_live),
	F(shmk_reap_report, bytes_strays),
	F(shmk_reap_report, strings_),
	F(shmk_reap_report, owners_unknown),
	F(shmk_reap_report, segments_kept),
	F(shmk_reap_report, bytes_kept),
	F(shmk_reap_report, segments_held),
	F(shmk_reap_report, bytes_held),

	S(shmk_monitor_options),
	F(shmk_monitor_options, pid),
	F(shmk_monitor_options, ns),
	F(shmk_monitor_options, shm_dir),
	F(shmk_monitor_options, warmup),
	F(shmk_monitor_options, fd_threshold),
	F(shmk_monitor_options, rss_threshold_pct),
	F(shmk_monitor_options, rss_threshold_bytes),
	F(shmk_monitor_options, segment_threshold),
	F(shmk_monitor_options, bytes_threshold),
	F(shmk_monitor_options, ns_bytes_soft),
	F(shmk_monitor_options, ns_bytes_hard),
	F(shmk_monitor_options, rss_soft),
	F(shmk_monitor_options, rss_hard),
	F(shmk_monitor_options, on_soft),
	F(shmk_monitor_options, arg),
	F(shmk_monitor_options, check_every),

	S(shmk_sample),
	F(shmk_sample, when_ms),
	F(shmk_sample, pid),
	F(shmk_sample, fds),
	F(shmk_sample, rss),
	F(shmk_sample, threads),
	F(shmk_sample, children),
	F(shmk_sample, zombies),
	F(shmk_sample, ns_segments),
	F(shmk_sample, ns_bytes),
	F(shmk_sample, shm_free),
	F(shmk_sample, shm_total),

	S(shmk_verdict),
	F(shmk_verdict, leak),
	F(shmk_verdict, fd_leak),
	F(shmk_verdict, rss_leak),
	F(shmk_verdict, thread_leak),
	F(shmk_verdict, child_leak),
	F(shmk_verdict, segment_leak),
	F(shmk_verdict, bytes_leak),
	F(shmk_verdict, fd_delta),
	F(shmk_verdict, thread_delta),
	F(shmk_verdict, child_delta),
	F(shmk_verdict, zombies),
	F(shmk_verdict, rss_delta),
	F(shmk_verdict, segment_delta),
	F(shmk_verdict, bytes_delta),
	F(shmk_verdict, reason),

	{ NULL, NULL, 0, 0 },
};

int shmk_layout(const char *type, const char *field, size_t *offset,
		size_t *size)
{
	const struct shmk__layout *l;
	bool type_known = false;

	if (!type)
		return shmk__err(-EINVAL, "shmk_layout: type is NULL");
	for (l = shmk__layouts; l->type; l++) {
		if (strcmp(l->type, type) != 0)
			continue;
		type_known = true;
		if (field ? (l->field && !strcmp(l->field, field)) : !l->field) {
			if (offset)
				*offset = l->offset;
			if (size)
				*size = l->size;
			return 0;
		}
	}
	if (!type_known)
		return shmk__err(-ENOENT, "struct %s: not a struct this library "
					  "describes (version %s)",
				 type, SHMK_VERSION_STRING);
	return shmk__err(-ENOENT, "struct %s: no field %s in this library "
				  "(version %s)",
			 type, field, SHMK_VERSION_STRING);
}
