/*
 * kvm_arch_flush_shadow_memslot and its relatives: the ways the seed thread weighs to remove one
 * slot's shadow state, write-protecting a slot for dirty logging, and the MMU notifier's range
 * invalidation. Each walks rmaps with KVM's lock-break discipline (slot_handle_level_range):
 * on contention, flush what is pending, then break the lock.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

/* Break on contention, flushing first when sptes were dropped since the last flush. */
static void rmap_walk_break(struct smmu_vm *vm, bool *flush, uint32_t skip_point, struct smmu_zap_report *rep)
{
	if (!mmu_lock_needbreak(&vm->mmu_lock))
		return;
	if (*flush)
		kvm_flush_remote_tlbs(vm, skip_point);
	*flush = false;
	if (vm_cond_resched(vm)) {
		rep->lock_breaks++;
		rep->rounds++;
	}
}

/* kvm_unmap_rmapp over every rmap head of [gfn_start, gfn_end) of @slot, every level; breaking
 * the lock on contention unless @no_break (3.11's kvm_unmap_hva_range). */
static uint64_t unmap_gfn_range_break(struct smmu_vm *vm, struct memslot *slot, smmu_gfn_t gfn_start,
				      smmu_gfn_t gfn_end, bool no_break, struct smmu_zap_report *rep)
{
	bool flush = false;
	uint64_t dropped = 0;
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
		uint64_t idx = gfn_to_index(gfn_start, slot->base_gfn, level);
		uint64_t end = gfn_to_index(gfn_end - 1, slot->base_gfn, level);
		for (; idx <= end; idx++) {
			uintptr_t *head = &slot->rmap[level - 1][idx];
			if (*head) {
				int n = kvm_unmap_rmapp(vm, head);
				dropped += (uint64_t)n;
				flush |= n > 0;
			}
			if (!no_break)
				rmap_walk_break(vm, &flush, SMMU_SKIP_FLUSH_RMAP_UNMAP, rep);
		}
	}
	if (flush)
		kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_RMAP_UNMAP);
	rep->sptes_dropped += dropped;
	return dropped;
}

static uint64_t unmap_gfn_range(struct smmu_vm *vm, struct memslot *slot, smmu_gfn_t gfn_start, smmu_gfn_t gfn_end,
				struct smmu_zap_report *rep)
{
	return unmap_gfn_range_break(vm, slot, gfn_start, gfn_end, false, rep);
}

/* Gleb's proposal: every valid indirect page whose gfn is in the slot, found through
 * mmu_page_hash, gfn by gfn — including those no rmap of the slot reaches (a guest page table
 * with no leaf mapping inside the slot) — then the slot's rmaps. */
static void flush_hash_walk(struct smmu_vm *vm, struct memslot *slot, struct smmu_zap_report *rep)
{
	struct list_node invalid_list;
	list_init(&invalid_list);
	for (smmu_gfn_t gfn = slot->base_gfn; gfn < slot->base_gfn + slot->npages; gfn++) {
		struct smmu_sp *sp;
		for_each_sp_in_bucket(vm, sp, gfn, node) {
			/* Zapped pages stay hashed until commit, so the chain stays walkable. */
			if (sp->gfn != gfn || sp->role.direct || sp->role.invalid)
				continue;
			rep->pages_zapped += (uint64_t)kvm_mmu_prepare_zap_page(vm, sp, &invalid_list);
		}
		if (mmu_lock_needbreak(&vm->mmu_lock)) {
			kvm_mmu_commit_zap_page(vm, &invalid_list);
			if (vm_cond_resched(vm)) {
				rep->lock_breaks++;
				rep->rounds++;
			}
		}
	}
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	unmap_gfn_range(vm, slot, slot->base_gfn, slot->base_gfn + slot->npages, rep);
}

/* Caller holds slots_lock (the slot cannot go away), not mmu_lock. */
int flush_shadow_memslot(struct smmu_vm *vm, struct memslot *slot, enum smmu_flush_strategy s,
			 struct smmu_zap_report *rep)
{
	uint64_t t0 = smmu_now_ns();
	uint64_t flushes = atomic_load(&vm->remote_flushes);
	vm_lock(vm, SMMU_SITE_MEMSLOT_FLUSH);
	rep->rounds = 0;
	switch (s) {
	case SMMU_FLUSH_ZAP_ALL:
		kvm_mmu_zap_all_locked(vm, rep);
		break;
	case SMMU_FLUSH_FAST_ZAP:
		fast_zap_bump_locked(vm);
		kvm_zap_obsolete_pages(vm, rep);
		break;
	case SMMU_FLUSH_RMAP_ONLY:
	case SMMU_FLUSH_RMAP_REBUILD:
		/* The v4 patch: every page obsolete at once, the slot's sptes dropped through its
		 * rmaps now, obsolete pages left to be reclaimed later. Without the rebuild, the
		 * shadowed tables of the slot that no rmap reaches keep their lpage_info counts. */
		fast_zap_bump_locked(vm);
		if (s == SMMU_FLUSH_RMAP_REBUILD)
			lpage_forget_obsolete(vm);
		rep->rounds++;
		unmap_gfn_range(vm, slot, slot->base_gfn, slot->base_gfn + slot->npages, rep);
		break;
	case SMMU_FLUSH_HASH_WALK:
		rep->rounds++;
		flush_hash_walk(vm, slot, rep);
		break;
	default:
		vm_unlock(vm);
		return -EINVAL;
	}
	vm_unlock(vm);
	rep->completed = true;
	rep->remote_flushes = atomic_load(&vm->remote_flushes) - flushes;
	rep->total_ns = smmu_now_ns() - t0;
	return 0;
}

SMMU_API int smmu_memslot_flush(smmu_vm *vm, int id, enum smmu_flush_strategy strategy, struct smmu_zap_report *rep)
{
	struct smmu_zap_report local = { 0 };
	if (!vm || (unsigned)strategy >= SMMU_FLUSH_STRATEGY_COUNT)
		return -EINVAL;
	if (id < 0 || id >= SMMU_MAX_MEMSLOTS)
		return -ENOENT;
	pthread_mutex_lock(&vm->slots_lock);
	struct memslot *slot = vm->slots.by_id[id];
	int r = slot ? flush_shadow_memslot(vm, slot, strategy, &local) : -ENOENT;
	pthread_mutex_unlock(&vm->slots_lock);
	if (rep)
		*rep = local;
	vm_audit_point(vm, "memslot_flush");
	return r;
}

SMMU_API const char *smmu_flush_strategy_name(enum smmu_flush_strategy s)
{
	static const char *const names[] = { "zap_all", "fast_zap", "rmap_only", "rmap_rebuild", "hash_walk" };
	return (unsigned)s < SMMU_FLUSH_STRATEGY_COUNT ? names[s] : "?";
}

/* kvm_mmu_slot_remove_write_access, for dirty logging: every spte of the slot read-only (3.11
 * drops the writable large ones), so that writes fault and get logged at 4K. One flush at the end
 * in both eras (today's comes from kvm_mmu_slot_apply_flags, after the walk); 3.11 also flushes
 * before every lock break (rules->slot_wrprot_flush_at_break). */
void kvm_mmu_slot_remove_write_access(struct smmu_vm *vm, struct memslot *slot)
{
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
		for (uint64_t idx = 0; idx < slot->nr_entries[level - 1]; idx++) {
			uintptr_t *head = &slot->rmap[level - 1][idx];
			if (*head)
				__rmap_write_protect(vm, head, false);
			if (mmu_lock_needbreak(&vm->mmu_lock)) {
				if (vm->rules->slot_wrprot_flush_at_break)
					kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_WRPROT);
				vm_cond_resched(vm);
			}
		}
	}
	kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_WRPROT);
	vm_unlock(vm);
}

/* kvm_mmu_zap_collapsible_sptes (today, dirty logging turned off): through the slot's rmaps at
 * 4K and 2M, drop each spte of a direct page whose level is below what the gfn may be mapped
 * with now (kvm_mmu_zap_collapsible_spte); indirect pages follow the guest's page size. One
 * flush at the end, before any lock break (slot_handle_level with flush_on_yield). */
void kvm_mmu_zap_collapsible_sptes(struct smmu_vm *vm, struct memslot *slot)
{
	struct smmu_zap_report rep = { 0 };
	bool flush = false;
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	for (int level = SMMU_LEVEL_4K; level < SMMU_LEVEL_1G; level++) {
		for (uint64_t idx = 0; idx < slot->nr_entries[level - 1]; idx++) {
			uintptr_t *head = &slot->rmap[level - 1][idx];
			struct rmap_iterator it;
			uint64_t *sptep = rmap_get_first(*head, &it);
			while (sptep) {
				const struct smmu_sp *sp = page_header(sptep);
				if (sp->role.direct && (int)sp->role.level < mapping_level(vm, sp->gfn, SMMU_LEVEL_1G)) {
					drop_spte(vm, sptep);
					flush = true;
					sptep = rmap_get_first(*head, &it); /* restart: the rmap changed */
				} else {
					sptep = rmap_get_next(&it);
				}
			}
			rmap_walk_break(vm, &flush, SMMU_SKIP_FLUSH_RMAP_UNMAP, &rep);
		}
	}
	if (flush)
		kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_RMAP_UNMAP);
	vm_unlock(vm);
}

/* The host splits a THP that @start..@end covers only in part (zap_pmd_range →
 * __split_huge_pmd, whose own invalidation covers the whole 2 MiB page): mark the 2 MiB host page
 * of @hva split and widen [*hs, *he) to it, clipped to the slot's backing [s0, s1). */
static void host_split_thp(struct memslot *slot, uintptr_t hva, uintptr_t start, uintptr_t end, uintptr_t s0,
			   uintptr_t s1, uintptr_t *hs, uintptr_t *he)
{
	const uintptr_t size = (uintptr_t)1 << PT64_LEVEL_SHIFT(SMMU_LEVEL_2M);
	uintptr_t p0 = hva & ~(size - 1), p1 = p0 + size;
	uint64_t i = memslot_host_page(slot, hva);
	uint64_t word = atomic_load_explicit(&slot->host_split[i / 64], memory_order_relaxed);
	if ((start <= p0 && end >= p1) || (word >> (i % 64)) & 1)
		return; /* the whole page goes (zap_huge_pmd), or it is split already */
	atomic_fetch_or_explicit(&slot->host_split[i / 64], 1ull << (i % 64), memory_order_relaxed);
	if (p0 < *hs)
		*hs = p0 > s0 ? p0 : s0;
	if (p1 > *he)
		*he = p1 < s1 ? p1 : s1;
}

/* Widen the range in progress to cover [start, end) (a nested invalidation's begin). */
static void mmu_invalidate_range_widen(struct smmu_vm *vm, uintptr_t start, uintptr_t end)
{
	if (start < vm->mmu_notifier_range_start)
		vm->mmu_notifier_range_start = start;
	if (end > vm->mmu_notifier_range_end)
		vm->mmu_notifier_range_end = end;
}

/* kvm_mmu_invalidate_begin (today; 3.11's range_start raises the count alone): an invalidation
 * of host range [start, end) is in progress. The range of those in progress is this one when
 * none was, else the smallest range covering it and them (rules->notifier_retry_in_range). */
static void mmu_invalidate_begin(struct smmu_vm *vm, uintptr_t start, uintptr_t end)
{
	lockdep_assert_held(&vm->mmu_lock);
	if (vm->mmu_notifier_count++ == 0) {
		vm->mmu_notifier_range_start = start;
		vm->mmu_notifier_range_end = end;
	} else {
		mmu_invalidate_range_widen(vm, start, end);
	}
}

/* Does [start, end) hit a slot's backing? Today's __kvm_handle_hva_range runs its on_lock step
 * (kvm_mmu_invalidate_begin / _end) only then; 3.11's notifier counts every range. */
static bool notifier_range_counts(const struct smmu_vm *vm, uintptr_t start, uintptr_t end)
{
	if (!vm->rules->notifier_retry_in_range)
		return true;
	for (int i = 0; i < vm->slots.n; i++) {
		const struct memslot *slot = vm->slots.sorted[i];
		uintptr_t s0 = (uintptr_t)slot->hva, s1 = s0 + (slot->npages << SMMU_PAGE_SHIFT);
		if (start < s1 && end > s0)
			return true;
	}
	return false;
}

/* kvm_mmu_notifier_invalidate_range_start → kvm_unmap_hva_range, then _range_end: the count is
 * raised for the unmap and the sequence bumped when it ends, so that a fault that raced with it
 * retries (mmu_notifier_retry; today only a fault in the range, and only for a range that hits
 * a slot: rules->notifier_retry_in_range). 3.11 never breaks the lock in the unmap
 * (rules->notifier_unmap_breaks_lock). */
SMMU_API int64_t smmu_mmu_notifier_invalidate_range(smmu_vm *vm, const void *start, const void *end)
{
	if (!vm || (uintptr_t)start > (uintptr_t)end)
		return -EINVAL;
	struct smmu_zap_report rep = { 0 };
	uint64_t dropped = 0;
	bool srcu = srcu_read_lock_nested(vm); /* it may run inside a fault's hva_to_pfn hook */
	vm_lock(vm, SMMU_SITE_MMU_NOTIFIER);
	/* The slots cannot change before _range_end (kvm_swap_active_memslots waits for
	 * mn_active_invalidate_count), so _end finds what _start found. */
	bool counted = notifier_range_counts(vm, (uintptr_t)start, (uintptr_t)end);
	if (counted)
		mmu_invalidate_begin(vm, (uintptr_t)start, (uintptr_t)end);
	for (int i = 0; i < vm->slots.n; i++) {
		struct memslot *slot = vm->slots.sorted[i];
		uintptr_t s0 = (uintptr_t)slot->hva, s1 = s0 + (slot->npages << SMMU_PAGE_SHIFT);
		uintptr_t hs = (uintptr_t)start > s0 ? (uintptr_t)start : s0;
		uintptr_t he = (uintptr_t)end < s1 ? (uintptr_t)end : s1;
		if (hs >= he)
			continue;
		/* The host's ptes of the cut itself go; a split huge page's other pages stay mapped as
		 * they were (__split_huge_pmd keeps their protection). */
		smmu_gfn_t c0 = slot->base_gfn + ((hs - s0) >> SMMU_PAGE_SHIFT);
		smmu_gfn_t c1 = slot->base_gfn + ((he - s0 + SMMU_PAGE_SIZE - 1) >> SMMU_PAGE_SHIFT);
		if (slot->host_level == SMMU_LEVEL_2M) { /* a THP cut in part is split first */
			host_split_thp(slot, hs, (uintptr_t)start, (uintptr_t)end, s0, s1, &hs, &he);
			host_split_thp(slot, he - 1, (uintptr_t)start, (uintptr_t)end, s0, s1, &hs, &he);
			/* The split's own invalidation, nested in this one, widens the range. */
			mmu_invalidate_range_widen(vm, hs, he);
		}
		/* The gfns of every page that intersects [hs, he). */
		smmu_gfn_t g0 = slot->base_gfn + ((hs - s0) >> SMMU_PAGE_SHIFT);
		smmu_gfn_t g1 = slot->base_gfn + ((he - s0 + SMMU_PAGE_SIZE - 1) >> SMMU_PAGE_SHIFT);
		dropped += unmap_gfn_range_break(vm, slot, g0, g1, !vm->rules->notifier_unmap_breaks_lock, &rep);
		host_pte_unmap(slot, c0, c1); /* MADV_DONTNEED: the host's ptes of the range are gone */
	}
	/* 3.11: need_tlb_flush |= kvm->tlbs_dirty, before the host may free the pages. */
	if (vm->tlbs_dirty)
		kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_RMAP_UNMAP);
	vm_unlock(vm);
	srcu_read_unlock_nested(vm, srcu);
	/* kvm_mmu_notifier_invalidate_range_end: the host's change is done. */
	vm_lock(vm, SMMU_SITE_MMU_NOTIFIER);
	if (counted) { /* kvm_mmu_invalidate_end */
		atomic_fetch_add_explicit(&vm->mmu_notifier_seq, 1, memory_order_release);
		vm->mmu_notifier_count--;
	}
	vm_unlock(vm);
	vm_audit_point(vm, "mmu_notifier_invalidate_range");
	return (int64_t)dropped;
}

/* kvm_mmu_notifier_release → kvm_arch_flush_shadow_all: kvm_mmu_invalidate_zap_all_pages (3.11)
 * or kvm_mmu_zap_all (today), rules->release_fast_zaps. */
SMMU_API int smmu_mmu_notifier_release(smmu_vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct smmu_zap_report rep = { 0 };
	vm_lock(vm, SMMU_SITE_MMU_NOTIFIER);
	if (vm->rules->release_fast_zaps) {
		fast_zap_bump_locked(vm);
		kvm_zap_obsolete_pages(vm, &rep);
	} else {
		/* Today's kvm_mmu_zap_all: cond_resched_rwlock_write after every page, from the head
		 * again after a break, one commit at the end (rules->zap_all_commit_once). */
		zap_all_mode_locked(vm, SMMU_ZAP_RESTART, 0, &rep);
	}
	vm_unlock(vm);
	vm_audit_point(vm, "mmu_notifier_release");
	return 0;
}
