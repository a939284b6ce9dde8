/* SPDX-License-Identifier: MIT */
/* table.c - open-addressing hash table from names to pointers, so that an
 * owner with 10,000 segments finds one in O(1). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static const char tomb_key[1];
#define SHMK_TOMB tomb_key

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

int shmk__table_init(struct shmk_table *t, size_t hint)
{
	size_t cap = 16;

	while (cap < hint * 2)
		cap <<= 1;
	t->slots = SHMK_SYSP("malloc", NULL, calloc(cap, sizeof *t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->cap = cap;
	t->used = t->tomb = 0;
	return 0;
}

void shmk__table_free(struct shmk_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->used = t->tomb = 0;
}

static struct shmk_slot *find(const struct shmk_table *t, const char *key)
{
	size_t mask = t->cap - 1, i = hash(key) & mask;

	for (;; i = (i + 1) & mask) {
		struct shmk_slot *s = &t->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != SHMK_TOMB && strcmp(s->key, key) == 0)
			return s;
	}
}

void *shmk__table_get(const struct shmk_table *t, const char *key)
{
	struct shmk_slot *s = t->cap ? find(t, key) : NULL;

	return s ? s->val : NULL;
}

static int grow(struct shmk_table *t)
{
	struct shmk_table n;
	size_t i;

	if (shmk__table_init(&n, t->used + 1) < 0)
		return -ENOMEM;
	for (i = 0; i < t->cap; i++) {
		struct shmk_slot *s = &t->slots[i];
		if (s->key && s->key != SHMK_TOMB)
			shmk__table_put(&n, s->key, s->val);
	}
	free(t->slots);
	*t = n;
	return 0;
}

/* One probe: the slot holding key, else the first free one on its way
 * (a tombstone, or the empty slot that ends it). */
int shmk__table_swap(struct shmk_table *t, const char *key, void *val,
		     void **old)
{
	struct shmk_slot *s, *free_s = NULL;
	size_t mask, i;

	*old = NULL;
	if ((t->used + t->tomb + 1) * 4 > t->cap * 3 && grow(t) < 0)
		return -ENOMEM;
	mask = t->cap - 1;
	for (i = hash(key) & mask;; i = (i + 1) & mask) {
		s = &t->slots[i];
		if (!s->key)
			break;
		if (s->key == SHMK_TOMB) {
			if (!free_s)
				free_s = s;
		} else if (strcmp(s->key, key) == 0) {
			*old = s->val;
			s->key = key;
			s->val = val;
			return 0;
		}
	}
	if (free_s) {
		s = free_s;
		t->tomb--;
	}
	s->key = key;
	s->val = val;
	t->used++;
	return 0;
}

int shmk__table_put(struct shmk_table *t, const char *key, void *val)
{
	void *old;

	return shmk__table_swap(t, key, val, &old);
}

void *shmk__table_del(struct shmk_table *t, const char *key)
{
	struct shmk_slot *s = t->cap ? find(t, key) : NULL;
	void *v;

	if (!s)
		return NULL;
	v = s->val;
	s->key = SHMK_TOMB;
	s->val = NULL;
	t->used--;
	t->tomb++;
	return v;
}

void *shmk__table_next(const struct shmk_table *t, size_t *it)
{
	for (; *it < t->cap; (*it)++) {
		struct shmk_slot *s = &t->slots[*it];
		if (s->key && s->key != SHMK_TOMB) {
			(*it)++;
			return s->val;
		}
	}
	return NULL;
}
