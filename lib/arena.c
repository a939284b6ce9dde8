/* SPDX-License-Identifier: MIT */
/* arena.c - the one allocator for reports: strings and small arrays that
 * live exactly as long as the report (a reap report, a registry scan) and
 * are freed at once.
 *
 * One allocation per 64 KiB rather than one per string: the items of a reap
 * of 10,000 segments were a measurable part of its cost.  Nothing in an
 * arena ever moves, so pointers into it (hash-table keys among them) stay
 * valid until the arena is freed. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK (64u * 1024)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(max_align_t) char data[];
};

void *shmk__arena_alloc(void **arena, size_t n, size_t align)
{
	struct chunk *c = *arena;
	uintptr_t at;

	if (!c || c->cap - c->used < n + align - 1) {
		size_t cap = n + align > CHUNK ? n + align : CHUNK;
		struct chunk *nc = SHMK_SYSP("malloc", NULL, malloc(sizeof *nc + cap));
		if (!nc)
			return NULL;
		nc->next = c;
		nc->used = 0;
		nc->cap = cap;
		*arena = c = nc;
	}
	at = ((uintptr_t)(c->data + c->used) + align - 1) & ~(uintptr_t)(align - 1);
	at -= (uintptr_t)c->data;
	c->used = at + n;
	return c->data + at;
}

char *shmk__arena_dup(void **arena, const void *p, size_t n, size_t align)
{
	char *q = n ? shmk__arena_alloc(arena, n, align) : NULL;

	return q ? memcpy(q, p, n) : NULL;
}

void shmk__arena_free(void **arena)
{
	for (struct chunk *c = *arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	*arena = NULL;
}
