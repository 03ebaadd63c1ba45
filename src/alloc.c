/*
 * Allocation through jemalloc (when built with it) or libc, with failure injection for tests,
 * and the table pool that gives shadow pages their 4 KiB tables.
 *
 * SPDX-License-Identifier: MIT
 */
#include "alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "smmu_config.h"
#if SMMU_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static _Atomic uint64_t alloc_calls;
static _Atomic uint64_t fail_at;     /* 0: never fail */
static _Atomic int injected;

void smmu_alloc_fail_after(uint64_t n)
{
	atomic_store(&alloc_calls, 0);
	atomic_store(&injected, 0);
	atomic_store(&fail_at, n);
}

uint64_t smmu_alloc_calls(void) { return atomic_load(&alloc_calls); }
int smmu_alloc_injected(void) { return atomic_load(&injected); }

static bool should_fail(void)
{
	uint64_t at = atomic_load_explicit(&fail_at, memory_order_relaxed);
	uint64_t n = atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed) + 1;
	if (at && n >= at) {
		atomic_store(&injected, 1);
		return true;
	}
	return false;
}

void *smmu_malloc(size_t size)
{
	if (should_fail())
		return NULL;
#if SMMU_HAVE_JEMALLOC
	return mallocx(size ? size : 1, 0);
#else
	return malloc(size);
#endif
}

void *smmu_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	if (should_fail())
		return NULL;
#if SMMU_HAVE_JEMALLOC
	return mallocx(n && size ? n * size : 1, MALLOCX_ZERO);
#else
	return calloc(n, size);
#endif
}

void smmu_free(void *p, size_t size)
{
	if (!p)
		return;
#if SMMU_HAVE_JEMALLOC
	if (size)
		sdallocx(p, size, 0);
	else
		dallocx(p, 0);
#else
	(void)size;
	free(p);
#endif
}

/* ---- object caches ---------------------------------------------------------------------- */

int obj_cache_init(struct obj_cache *c, size_t size)
{
	memset(c, 0, sizeof(*c));
	c->size = size;
	return -pthread_mutex_init(&c->lock, NULL);
}

void obj_cache_destroy(struct obj_cache *c)
{
	for (void *o = c->free.first, *next; o; o = next) {
		next = *(void **)o;
		smmu_free(o, c->size);
	}
	c->free = (struct obj_chain){ 0 };
	pthread_mutex_destroy(&c->lock);
}

void obj_cache_put(struct obj_cache *c, struct obj_chain *chain)
{
	if (!chain->n)
		return;
	pthread_mutex_lock(&c->lock);
	obj_chain_splice(&c->free, chain);
	pthread_mutex_unlock(&c->lock);
}

void *obj_cache_get(struct obj_cache *c)
{
	pthread_mutex_lock(&c->lock);
	void *o = obj_chain_pop(&c->free);
	pthread_mutex_unlock(&c->lock);
	return o;
}

/* ---- table pool ------------------------------------------------------------------------- */

/* The owner page of a chunk holds 511 owner pointers (index 1..511) and, in slot 0, the link
 * to the next chunk. */
static void **chunk_next(void *chunk) { return (void **)chunk; }

int table_pool_init(struct table_pool *p)
{
	memset(p, 0, sizeof(*p));
	return -pthread_mutex_init(&p->lock, NULL);
}

void table_pool_destroy(struct table_pool *p)
{
	void *c = p->chunks;
	while (c) {
		void *next = *chunk_next(c);
		munmap(c, TABLE_CHUNK_SIZE);
		c = next;
	}
	p->chunks = NULL;
	p->free = (struct obj_chain){ 0 };
	pthread_mutex_destroy(&p->lock);
}

/* Map a 2 MiB-aligned chunk: over-map by 2 MiB and trim both ends. */
static void *chunk_map(void)
{
	if (should_fail())
		return NULL;
	size_t len = 2 * (size_t)TABLE_CHUNK_SIZE;
	uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)raw + TABLE_CHUNK_SIZE - 1) & ~(uintptr_t)(TABLE_CHUNK_SIZE - 1);
	size_t head = start - (uintptr_t)raw;
	if (head)
		munmap(raw, head);
	size_t tail = len - head - TABLE_CHUNK_SIZE;
	if (tail)
		munmap((uint8_t *)start + TABLE_CHUNK_SIZE, tail);
	return (void *)start;
}

uint64_t *table_alloc(struct table_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (!p->free.n) {
		uint8_t *c = chunk_map();
		if (!c) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		*chunk_next(c) = p->chunks;
		p->chunks = c;
		p->n_chunks++;
		/* The 511 tables onto the free chain, lowest address first. */
		for (unsigned i = TABLES_PER_CHUNK; i >= 1; i--)
			obj_chain_push(&p->free, c + (size_t)i * TABLE_SIZE);
	}
	void **t = obj_chain_pop(&p->free);
	pthread_mutex_unlock(&p->lock);
	*t = NULL; /* the rest of a free table is already zero: tables are freed cleared */
	return (uint64_t *)t;
}

void table_free(struct table_pool *p, uint64_t *spt)
{
	struct obj_chain one = { 0 };
	obj_chain_push(&one, spt);
	table_free_batch(p, &one);
}

void table_free_batch(struct table_pool *p, struct obj_chain *tables)
{
	if (!tables->n)
		return;
	pthread_mutex_lock(&p->lock);
	obj_chain_splice(&p->free, tables);
	pthread_mutex_unlock(&p->lock);
}
