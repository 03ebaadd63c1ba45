/*
 * Allocation: every allocation of the library goes through here, so that jemalloc can be used
 * underneath (build option jemalloc) and tests can make the N-th allocation fail.
 *
 * Shadow page tables come from a table pool: 2 MiB chunks whose first 4 KiB page holds, for each
 * of the other 511 pages, the shadow page that owns it. That makes page_header(sptep) O(1), as
 * KVM's page->private does.
 *
 * The locked paths never allocate: faults take objects from per-vCPU caches topped up before
 * mmu_lock is taken (mmu_topup_memory_caches). Nothing under the lock frees to the allocator
 * (whose free may purge memory): tables go back to the VM's table pool, headers and gfns
 * arrays to its object caches, rmap descriptors to the allocator after the unlock (vm_unlock).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_ALLOC_H
#define SMMU_ALLOC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct smmu_sp;

void *smmu_malloc(size_t size);
void *smmu_calloc(size_t n, size_t size);
void smmu_free(void *p, size_t size); /* size may be 0 when unknown */

/* Test hook: make allocation number @n (counting from 1 after the call) and every later one fail;
 * n = 0 turns failures off. Counts every smmu_malloc/calloc and pool chunk. */
void smmu_alloc_fail_after(uint64_t n);
uint64_t smmu_alloc_calls(void);
/* True while a failure injection is armed and has triggered at least once. */
int smmu_alloc_injected(void);

/*
 * A chain of free objects linked through their first word: the free list of the table pool and
 * of the object caches, and what a commit builds under mmu_lock to hand them in one step.
 */
struct obj_chain {
	void *first, *last;
	uint64_t n;
};
static inline void obj_chain_push(struct obj_chain *c, void *obj)
{
	*(void **)obj = c->first;
	c->first = obj;
	if (!c->last)
		c->last = obj;
	c->n++;
}
static inline void *obj_chain_pop(struct obj_chain *c)
{
	void *o = c->first;
	if (o) {
		c->first = *(void **)o;
		if (!c->first)
			c->last = NULL;
		c->n--;
	}
	return o;
}
/* Move all of @from to the front of @to, in O(1). */
static inline void obj_chain_splice(struct obj_chain *to, struct obj_chain *from)
{
	if (!from->n)
		return;
	*(void **)from->last = to->first;
	if (!to->first)
		to->last = from->last;
	to->first = from->first;
	to->n += from->n;
	*from = (struct obj_chain){ 0 };
}

#define TABLE_CHUNK_SIZE (2u << 20)
#define TABLE_SIZE 4096u
#define TABLES_PER_CHUNK (TABLE_CHUNK_SIZE / TABLE_SIZE - 1)

struct table_pool {
	pthread_mutex_t lock;
	struct obj_chain free; /* free tables */
	uint64_t n_chunks;
	void *chunks;          /* chunks, linked through the last word of their owner page */
};

int table_pool_init(struct table_pool *p);
void table_pool_destroy(struct table_pool *p); /* unmaps every chunk */
uint64_t *table_alloc(struct table_pool *p);   /* a zeroed 4 KiB table, or NULL */
void table_free(struct table_pool *p, uint64_t *spt);
/* Free a chain of tables (and empty it), taking the pool lock once. */
void table_free_batch(struct table_pool *p, struct obj_chain *tables);

/*
 * Objects of one size kept for reuse, as KVM's kmem_caches keep shadow-page headers: the VM keeps
 * zapped headers (with their gfns arrays) and spare gfns arrays this way until it is destroyed.
 */
struct obj_cache {
	pthread_mutex_t lock;
	struct obj_chain free;
	size_t size;
};
int obj_cache_init(struct obj_cache *c, size_t size);
void obj_cache_destroy(struct obj_cache *c); /* gives every object back to the allocator */
/* Take a whole chain (and empty it). */
void obj_cache_put(struct obj_cache *c, struct obj_chain *chain);
/* One object (contents undefined), or NULL when the cache is empty. */
void *obj_cache_get(struct obj_cache *c);

static inline struct smmu_sp **table_owner_slot(const void *p)
{
	uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)(TABLE_CHUNK_SIZE - 1);
	return &((struct smmu_sp **)chunk)[((uintptr_t)p - chunk) / TABLE_SIZE];
}
/* page_header(__pa(sptep)): the shadow page whose table holds @sptep. */
static inline struct smmu_sp *page_header(const void *sptep) { return *table_owner_slot(sptep); }

#endif
