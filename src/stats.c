/*
 * Reading the lock statistics and counters, and measuring the floor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

SMMU_API const char *smmu_site_name(enum smmu_site site)
{
	static const char *const names[SMMU_SITE_COUNT] = {
		"fault", "pte_write", "vcpu", "zap_all", "fast_zap", "memslot_flush", "memslot",
		"mmu_notifier", "audit", "floor", "user0", "user1", "user2", "user3",
	};
	return (unsigned)site < SMMU_SITE_COUNT ? names[site] : "?";
}

SMMU_API int smmu_stats_get(const smmu_vm *vm, enum smmu_site site, struct smmu_site_stats *out)
{
	if (!vm || !out || (unsigned)site >= SMMU_SITE_COUNT)
		return -EINVAL;
	const struct lock_site *s = &vm->mmu_lock.sites[site];
	hist_summarize(&s->wait, &out->wait);
	hist_summarize(&s->hold, &out->hold);
	out->breaks = s->breaks;
	out->handoffs = s->handoffs;
	out->remote_flushes = s->remote_flushes;
	out->remote_flush_ns = s->remote_flush_ns;
	hist_summarize(&s->request_wait, &out->request_wait);
	return 0;
}

SMMU_API int smmu_stats_hist(const smmu_vm *vm, enum smmu_site site, bool hold, uint64_t *lower_ns,
			     uint64_t *counts, size_t n)
{
	if (!vm || (unsigned)site >= SMMU_SITE_COUNT || (n && (!lower_ns || !counts)))
		return -EINVAL;
	const struct histogram *h = hold ? &vm->mmu_lock.sites[site].hold : &vm->mmu_lock.sites[site].wait;
	size_t k = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (!h->bucket[i])
			continue;
		if (k < n) {
			lower_ns[k] = hist_bucket_low(i);
			counts[k] = h->bucket[i];
		}
		k++;
	}
	return (int)k;
}

SMMU_API int smmu_stats_reset(smmu_vm *vm)
{
	if (!vm)
		return -EINVAL;
	mmu_lock_stats_reset(&vm->mmu_lock);
	return 0;
}

SMMU_API int smmu_vm_get_counters(const smmu_vm *vm, struct smmu_vm_counters *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->stat;
	out->n_used_mmu_pages = vm->n_used_mmu_pages;
	out->n_max_mmu_pages = vm->n_max_mmu_pages;
	out->indirect_shadow_pages = atomic_load(&((smmu_vm *)vm)->indirect_shadow_pages);
	out->mmu_valid_gen = vm->mmu_valid_gen;
	out->remote_tlb_flushes = atomic_load(&((smmu_vm *)vm)->remote_flushes);
	out->reload_requests = atomic_load(&((smmu_vm *)vm)->reload_requests);
	out->rmap_bytes = vm->stat.rmap_descs * sizeof(struct pte_list_desc);
	out->lpage_bytes = 0;
	for (int i = 0; i < vm->slots.n; i++) {
		const struct memslot *s = vm->slots.sorted[i];
		for (int l = 1; l <= SMMU_NR_PAGE_SIZES; l++) {
			out->rmap_bytes += s->nr_entries[l - 1] * sizeof(uintptr_t);
			if (l > 1)
				out->lpage_bytes += s->nr_entries[l - 1] * sizeof(int32_t);
		}
	}
	return 0;
}

SMMU_API int smmu_vm_get_mmu_flooded(const smmu_vm *vm, uint64_t *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->mmu_flooded;
	return 0;
}

/* A zap's physical floor: read each table once, then free as many objects as the zap frees. */
SMMU_API int smmu_measure_floor(smmu_vm *vm, struct smmu_floor *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = (struct smmu_floor){ 0 };
	/* The page count is the fault path's to change under mmu_lock: read it there, then allocate
	 * after letting go (allocation stays out of the lock). Pages made meanwhile are read but
	 * not matched by a free; the floor stays what it is, an estimate. */
	vm_lock(vm, SMMU_SITE_FLOOR);
	uint64_t n = vm->n_used_mmu_pages, n_gfns = atomic_load(&vm->indirect_shadow_pages);
	vm_unlock(vm);
	if (n_gfns > n)
		n_gfns = n;
	struct smmu_sp **hdr = smmu_calloc(n + 1, sizeof(*hdr));
	uint64_t **tab = smmu_calloc(n + 1, sizeof(uint64_t *));
	int r = hdr && tab ? 0 : -ENOMEM;
	/* A header (with a gfns array for the indirect ones) and a table per page, from the caches
	 * a zap fills, as a fault would take them: repeated floors reuse the same objects. */
	for (uint64_t i = 0; i < n && !r; i++) {
		struct smmu_sp *h = obj_cache_get(&vm->hdr_cache);
		if (!h && (h = smmu_malloc(sizeof(*h))))
			h->gfns = NULL;
		hdr[i] = h;
		tab[i] = table_alloc(&vm->tables);
		if (h && i < n_gfns && !h->gfns && !(h->gfns = obj_cache_get(&vm->gfns_cache)))
			h->gfns = smmu_malloc(SMMU_PT_ENTRIES * sizeof(smmu_gfn_t));
		if (!h || !tab[i] || (i < n_gfns && !h->gfns))
			r = -ENOMEM;
	}

	uint64_t sum = 0, pages = 0, t0 = 0, t1 = 0;
	if (!r) {
		vm_lock(vm, SMMU_SITE_FLOOR);
		t0 = smmu_now_ns();
		for (struct list_node *l = vm->active_mmu_pages.next; l != &vm->active_mmu_pages; l = l->next) {
			const uint64_t *spt = container_of(l, struct smmu_sp, link)->spt;
			for (int i = 0; i < SMMU_PT_ENTRIES; i++)
				sum += __atomic_load_n(&spt[i], __ATOMIC_RELAXED);
			pages++;
		}
		t1 = smmu_now_ns();
		vm_unlock(vm);
	}

	/* Free as commit and vm_unlock free a page: its table to the pool, its header (gfns array
	 * attached) onto a chain handed to the header cache. */
	uint64_t t2 = smmu_now_ns();
	struct obj_chain chain = { 0 };
	for (uint64_t i = 0; i < n; i++) {
		if (tab && tab[i])
			table_free(&vm->tables, tab[i]);
		if (hdr && hdr[i])
			obj_chain_push(&chain, hdr[i]);
	}
	obj_cache_put(&vm->hdr_cache, &chain);
	uint64_t t3 = smmu_now_ns();
	smmu_free(hdr, 0);
	smmu_free(tab, 0);
	if (r)
		return r;
	*out = (struct smmu_floor){ .pages = pages, .read_ns = t1 - t0, .free_ns = t3 - t2,
				    .total_ns = (t1 - t0) + (t3 - t2), .checksum = sum };
	return 0;
}
