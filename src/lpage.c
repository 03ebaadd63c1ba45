/*
 * lpage_info (kvm_lpage_info.disallow_lpage): per slot and large level, for each large page, the
 * number of shadowed guest page tables inside it, plus 1 where the slot's edges (or a gfn/hva
 * misalignment) cut it. A large spte may map a large page only while its count is zero.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mmu.h"

/* For the layout the arrays were made for (arch_base_gfn): after a 3.11 move that kept them,
 * the edge entries still describe the old base, as KVM 3.11 leaves them. */
int32_t lpage_edge_value(const struct memslot *slot, int level, uint64_t idx)
{
	uint64_t mask = KVM_PAGES_PER_HPAGE(level) - 1;
	uint64_t last = slot->nr_entries[level - 1] - 1;
	smmu_gfn_t base = slot->arch_base_gfn;
	smmu_gfn_t ugfn = (uintptr_t)slot->hva >> SMMU_PAGE_SHIFT;
	if ((base ^ ugfn) & mask)
		return 1; /* host and guest disagree on alignment: no large page anywhere */
	if (idx == 0 && (base & mask))
		return 1;
	if (idx == last && ((base + slot->npages) & mask))
		return 1;
	return 0;
}

/* The lpage_info part of kvm_arch_create_memslot. */
void lpage_info_init(struct memslot *slot)
{
	for (int level = 2; level <= SMMU_NR_PAGE_SIZES; level++)
		for (uint64_t i = 0; i < slot->nr_entries[level - 1]; i++)
			slot->lpage[level - 2][i] = lpage_edge_value(slot, level, i);
}

int32_t *lpage_info_slot(const struct memslot *slot, smmu_gfn_t gfn, int level)
{
	return &slot->lpage[level - 2][gfn_to_index(gfn, slot->base_gfn, level)];
}

/*
 * Every indirect page disallows large pages over its gfn, in both profiles: 3.11's
 * account_shadowed counts every level; today's counts 4K-level pages itself and write-tracks the
 * others, and adding a write track (__kvm_write_track_add_gfn) disallows the large page too.
 */
bool sp_accounted(const struct smmu_vm *vm, const struct smmu_sp *sp)
{
	return !sp->role.direct && !sp->role.invalid && sp->mmu_valid_gen >= vm->lpage_reset_gen;
}

static void lpage_add(struct memslot *slot, smmu_gfn_t gfn, int32_t delta)
{
	for (int level = 2; level <= SMMU_NR_PAGE_SIZES; level++)
		*lpage_info_slot(slot, gfn, level) += delta;
}

/* account_shadowed: a new indirect page shadows the guest table at sp->gfn. */
void account_shadowed(struct smmu_vm *vm, struct smmu_sp *sp)
{
	lockdep_assert_held(&vm->mmu_lock);
	atomic_fetch_add_explicit(&vm->indirect_shadow_pages, 1, memory_order_relaxed);
	struct memslot *slot = gfn_to_memslot(&vm->slots, sp->gfn);
	SMMU_ASSERT(slot, "account_shadowed: guest table in no slot");
	lpage_add(slot, sp->gfn, 1);
}

/* unaccount_shadowed: called from prepare_zap for a page that still counts. */
void unaccount_shadowed(struct smmu_vm *vm, struct smmu_sp *sp)
{
	lockdep_assert_held(&vm->mmu_lock);
	atomic_fetch_sub_explicit(&vm->indirect_shadow_pages, 1, memory_order_relaxed);
	if (!sp_accounted(vm, sp))
		return;
	struct memslot *slot = gfn_to_memslot(&vm->slots, sp->gfn);
	if (!slot) {
		/* KVM dereferences a NULL slot here: the teardown crash of pages outliving their
		 * slot. The model counts it instead, and the audit has already reported the page. */
		vm->unaccount_no_slot++;
		return;
	}
	lpage_add(slot, sp->gfn, -1);
}

int has_wrprotected_page(struct smmu_vm *vm, smmu_gfn_t gfn, int level)
{
	struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
	return slot ? *lpage_info_slot(slot, gfn, level) : 1;
}

int mapping_level(struct smmu_vm *vm, smmu_gfn_t gfn, int max_level)
{
	struct memslot *slot = gfn_to_valid_memslot(&vm->slots, gfn);
	if (!slot || (slot->flags & SMMU_MEM_LOG_DIRTY_PAGES)) /* mapping_level_dirty_bitmap */
		return SMMU_LEVEL_4K;
	int host_level = memslot_host_level(slot, gfn); /* host_mapping_level / host_pfn_mapping_level */
	if (max_level > host_level)
		max_level = host_level;
	int level;
	for (level = SMMU_LEVEL_2M; level <= max_level; level++) {
		if (has_wrprotected_page(vm, gfn, level))
			break;
		/* The edge entries of lpage_info keep a large page inside its slot. After a 3.11
		 * move that kept them (rules->move_keeps_arch) they describe the old base, and KVM
		 * 3.11 could map across the slot's edge; the model stops here, so that no spte
		 * maps memory outside a slot's backing. */
		smmu_gfn_t first = gfn & ~(KVM_PAGES_PER_HPAGE(level) - 1);
		if (first < slot->base_gfn || first + KVM_PAGES_PER_HPAGE(level) > slot->base_gfn + slot->npages)
			break;
	}
	return level - 1;
}

void lpage_forget_obsolete(struct smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	for (int i = 0; i < vm->slots.n; i++)
		lpage_info_init(vm->slots.sorted[i]);
	vm->lpage_reset_gen = vm->mmu_valid_gen;
	/* active_mmu_pages is FIFO: the current generation's pages are all at the head. */
	for (struct list_node *n = vm->active_mmu_pages.next; n != &vm->active_mmu_pages; n = n->next) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		if (sp->role.invalid)
			continue; /* a zapped root still in use, moved back to the head */
		if (is_obsolete_sp(vm, sp))
			break;
		if (sp_accounted(vm, sp)) {
			struct memslot *slot = gfn_to_memslot(&vm->slots, sp->gfn);
			if (slot)
				lpage_add(slot, sp->gfn, 1);
		}
	}
}
