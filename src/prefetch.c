/*
 * pte prefetch: once a fault has installed a 4 KiB spte, KVM fills the other non-present sptes of
 * its aligned group of PTE_PREFETCH_NUM with what it can map without faulting: the guest's ptes
 * of the group that are present and Accessed (FNAME(pte_prefetch), shadow paging), or the
 * contiguous gfns of a direct page (direct_pte_prefetch). Prefetched sptes carry no Accessed
 * bit and are no fixed fault; they go in the rmaps like any other. The same in 3.11 and today
 * but for rules->prefetch_skips_spurious.
 *
 * The pfn lookups are atomic (gfn_to_pfn_memslot_atomic, gfn_to_page_many_atomic): they ask for
 * a writable host page and never fault one in, so only pages the host already maps writable are
 * prefetched (memslot.host_writable), never in a read-only slot, never writable into a
 * dirty-logged one (gfn_to_memslot_dirty_bitmap).
 *
 * SPDX-License-Identifier: MIT
 */
#include "mmu.h"

/* gfn_to_memslot_dirty_bitmap, and the atomic lookup's refusal of a read-only slot (it asks for
 * a writable page: KVM_HVA_ERR_RO_BAD): the slot to prefetch @gfn from, or NULL. */
static struct memslot *prefetch_slot(struct smmu_vm *vm, smmu_gfn_t gfn, bool writable)
{
	struct memslot *slot = gfn_to_valid_memslot(&vm->slots, gfn);
	if (!slot || (slot->flags & SMMU_MEM_READONLY) || (writable && (slot->flags & SMMU_MEM_LOG_DIRTY_PAGES)))
		return NULL;
	return slot;
}

/* direct_pte_prefetch_many: map [start, end) of direct page @sp, as far as the host maps the
 * gfns writable (get_user_pages_fast_only pins a prefix). False when nothing could be mapped,
 * which ends the group's prefetch. */
static bool direct_pte_prefetch_many(struct smmu_vcpu *v, struct smmu_sp *sp, uint64_t *start, uint64_t *end)
{
	uint32_t access = sp->role.access;
	smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, (int)(start - sp->spt));
	struct memslot *slot = prefetch_slot(v->vm, gfn, access & SMMU_ACC_WRITE);
	uint64_t n = (uint64_t)(end - start), got = 0;
	/* gfn_to_hva_many: the run must lie in the slot, else nothing of it is mapped. */
	if (!slot || gfn + n > slot->base_gfn + slot->npages)
		return false;
	while (got < n && host_pte_writable(slot, gfn + got))
		got++;
	for (uint64_t i = 0; i < got; i++)
		mmu_set_spte(v, start + i, access, false, SMMU_LEVEL_4K, gfn + i, slot, true);
	return got > 0;
}

/* __direct_pte_prefetch: each run of non-present sptes of the group, in order. */
static void direct_pte_prefetch(struct smmu_vcpu *v, struct smmu_sp *sp, uint64_t *sptep)
{
	uint64_t *spte = sp->spt + ((sptep - sp->spt) & ~(PTE_PREFETCH_NUM - 1)), *start = NULL;
	for (int i = 0; i < PTE_PREFETCH_NUM; i++, spte++) {
		if (is_shadow_present_pte(*spte) || spte == sptep) {
			if (start && !direct_pte_prefetch_many(v, sp, start, spte))
				return;
			start = NULL;
		} else if (!start) {
			start = spte;
		}
	}
	if (start)
		direct_pte_prefetch_many(v, sp, start, spte);
}

/* FNAME(prefetch_gpte): map one guest pte of the group. FNAME(prefetch_invalid_gpte) refuses a
 * pte that is not present or not Accessed (the walker checks no reserved bit, nor does this);
 * the spte it would drop is not present already. FNAME(protect_clean_gpte): a clean pte is
 * mapped read-only. */
bool prefetch_gpte(struct smmu_vcpu *v, struct smmu_sp *sp, uint64_t *spte, uint64_t gpte)
{
	if (!(gpte & SMMU_PTE_PRESENT) || !(gpte & SMMU_PTE_ACCESSED))
		return false;
	smmu_gfn_t gfn = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	uint32_t access = sp->role.access & (((gpte & SMMU_PTE_WRITABLE) ? SMMU_ACC_WRITE : 0) |
					     ((gpte & SMMU_PTE_USER) ? SMMU_ACC_USER : 0) |
					     ((gpte & SMMU_PTE_NX) ? 0 : SMMU_ACC_EXEC));
	if (!(gpte & SMMU_PTE_DIRTY))
		access &= ~(uint32_t)SMMU_ACC_WRITE;
	struct memslot *slot = prefetch_slot(v->vm, gfn, access & SMMU_ACC_WRITE);
	if (!slot || !host_pte_writable(slot, gfn))
		return false;
	mmu_set_spte(v, spte, access, false, SMMU_LEVEL_4K, gfn, slot, true);
	return true;
}

/* FNAME(pte_prefetch) / direct_pte_prefetch: a large leaf prefetches nothing; an indirect page's
 * group is filled from the guest table it shadows, in order, up to the first pte that cannot
 * be mapped. */
void pte_prefetch(struct smmu_vcpu *v, uint64_t *sptep, bool spurious)
{
	struct smmu_vm *vm = v->vm;
	lockdep_assert_held(&vm->mmu_lock);
	if (spurious && vm->rules->prefetch_skips_spurious)
		return;
	struct smmu_sp *sp = page_header(sptep);
	if (sp->role.level > SMMU_LEVEL_4K)
		return;
	if (sp->role.direct) {
		direct_pte_prefetch(v, sp, sptep);
		return;
	}
	/* The group's guest ptes, as FNAME(gpte_changed) read them for the walk's last level. */
	struct memslot *tslot = gfn_to_valid_memslot(&vm->slots, sp->gfn);
	if (!tslot)
		return;
	const uint64_t *gptes = memslot_gfn_to_hva(tslot, sp->gfn);
	int first = (int)(sptep - sp->spt) & ~(PTE_PREFETCH_NUM - 1);
	for (int i = first; i < first + PTE_PREFETCH_NUM; i++) {
		uint64_t *spte = &sp->spt[i];
		if (spte == sptep || is_shadow_present_pte(*spte))
			continue;
		if (!prefetch_gpte(v, sp, spte, guest_read_pte(&gptes[i])))
			break;
	}
}
