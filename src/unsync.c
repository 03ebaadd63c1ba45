/*
 * Unsync shadow pages: a level-1 indirect page whose guest table the guest may write without a
 * trap (kvm_unsync_page, from mmu_try_to_unsync_pages), the unsync_child bits that lead to it
 * from the roots (mark_unsync), the syncs that bring its sptes back in line with the guest table
 * (kvm_sync_page: on a root load, mmu_sync_children; on INVLPG, FNAME(invlpg)) and the zap of a
 * parent's unsync children (mmu_zap_unsync_children). Both eras; their differences are rules
 * (profile.h: prefetch_may_unsync, get_higher_zaps_unsync, sync_flushes_remote,
 * sync_zaps_empty).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

#define KVM_PAGE_ARRAY_NR 16 /* the unsync walk's batch (struct kvm_mmu_pages) */

static bool test_and_set_unsync_bit(struct smmu_sp *sp, int i)
{
	uint64_t bit = 1ull << (i % 64), *w = &sp->unsync_child_bitmap[i / 64];
	bool was = *w & bit;
	*w |= bit;
	return was;
}

/* clear_unsync_child_bit */
static void clear_unsync_child_bit(struct smmu_sp *sp, int i)
{
	SMMU_ASSERT(sp->unsync_children > 0, "unsync_children underflow");
	sp->unsync_children--;
	sp->unsync_child_bitmap[i / 64] &= ~(1ull << (i % 64));
}

static void kvm_mmu_mark_parents_unsync(struct smmu_vm *vm, struct smmu_sp *sp)
{
	struct rmap_iterator it;
	for (uint64_t *p = rmap_get_first(sp->parent_ptes, &it); p; p = rmap_get_next(&it))
		mark_unsync(vm, p);
}

void mark_unsync(struct smmu_vm *vm, uint64_t *sptep)
{
	struct smmu_sp *sp = page_header(sptep);
	if (test_and_set_unsync_bit(sp, (int)(sptep - sp->spt)))
		return;
	if (sp->unsync_children++)
		return;
	kvm_mmu_mark_parents_unsync(vm, sp);
}

/* kvm_unsync_page: mmu_unsync counts the unsync pages (a gauge: kvm_unlink_unsync_page lowers it). */
static void kvm_unsync_page(struct smmu_vm *vm, struct smmu_sp *sp)
{
	vm->mmu_unsync++;
	sp->unsync = true;
	kvm_mmu_mark_parents_unsync(vm, sp);
}

void kvm_unlink_unsync_page(struct smmu_vm *vm, struct smmu_sp *sp)
{
	SMMU_ASSERT(sp->unsync, "unlinking a sync page");
	sp->unsync = false;
	vm->mmu_unsync--;
}

/* The valid indirect pages of @gfn, as 3.11's for_each_gfn_indirect_valid_sp. */
#define for_each_gfn_indirect_valid_sp(vm, sp, gfn, node)                                        \
	for_each_sp_in_bucket(vm, sp, gfn, node)                                                  \
		if ((sp)->gfn != (gfn) || (sp)->role.direct || (sp)->role.invalid) {              \
		} else

/*
 * mmu_try_to_unsync_pages (today) / mmu_need_write_protect (3.11). A gfn that a page above
 * level 1 shadows stays write-protected (today: account_shadowed write-tracks it; 3.11 checks
 * the level); so does any shadowed gfn for a sync (!can_unsync), and one whose level-1 pages are
 * still sync for a prefetch where the profile says so. Otherwise every level-1 page of the gfn
 * goes unsync and the spte may be writable.
 */
bool mmu_try_to_unsync_pages(struct smmu_vm *vm, smmu_gfn_t gfn, bool can_unsync, bool prefetch)
{
	struct smmu_sp *sp;
	if (!atomic_load_explicit(&vm->indirect_shadow_pages, memory_order_relaxed))
		return false;
	bool need_unsync = false;
	for_each_gfn_indirect_valid_sp(vm, sp, gfn, node) {
		if (!can_unsync || sp->role.level != SMMU_LEVEL_4K)
			return true;
		if (sp->unsync)
			continue;
		if (prefetch && !vm->rules->prefetch_may_unsync)
			return true; /* -EEXIST */
		need_unsync = true;
	}
	if (need_unsync) {
		for_each_gfn_indirect_valid_sp(vm, sp, gfn, node) {
			if (!sp->unsync)
				kvm_unsync_page(vm, sp);
		}
	}
	return false;
}

/*
 * __mmu_unsync_walk: add the unsync pages below @sp to @pages (each once, at most
 * KVM_PAGE_ARRAY_NR), clearing the bits that lead nowhere any more (a child unlinked, synced or
 * zapped since its bit was set). Returns the new count.
 */
static int unsync_walk(struct smmu_sp *sp, struct smmu_sp **pages, int n)
{
	for (int w = 0; w < SMMU_PT_ENTRIES / 64; w++) {
		for (uint64_t bits = sp->unsync_child_bitmap[w]; bits; bits &= bits - 1) {
			if (n == KVM_PAGE_ARRAY_NR)
				return n;
			int i = w * 64 + __builtin_ctzll(bits);
			uint64_t ent = sp->spt[i];
			if (!is_shadow_present_pte(ent) || is_last_spte(ent, (int)sp->role.level)) {
				clear_unsync_child_bit(sp, i);
				continue;
			}
			struct smmu_sp *child = page_header(spte_to_child_spt(ent));
			if (child->unsync_children) {
				n = unsync_walk(child, pages, n);
				if (!child->unsync_children)
					clear_unsync_child_bit(sp, i);
			} else if (child->unsync) {
				bool dup = false; /* mmu_pages_add: a page with two parents, once */
				for (int k = 0; k < n; k++)
					dup |= pages[k] == child;
				if (!dup)
					pages[n++] = child;
			} else {
				clear_unsync_child_bit(sp, i);
			}
		}
	}
	return n;
}

int mmu_zap_unsync_children(struct smmu_vm *vm, struct smmu_sp *parent, struct list_node *invalid_list)
{
	struct smmu_sp *pages[KVM_PAGE_ARRAY_NR];
	int zapped = 0, n;
	if (parent->role.level == SMMU_LEVEL_4K)
		return 0;
	while ((n = unsync_walk(parent, pages, 0)))
		for (int k = 0; k < n; k++) {
			kvm_mmu_prepare_zap_page(vm, pages[k], invalid_list);
			zapped++;
		}
	return zapped;
}

static uint32_t gpte_access(uint64_t gpte)
{
	return ((gpte & SMMU_PTE_WRITABLE) ? SMMU_ACC_WRITE : 0) | ((gpte & SMMU_PTE_USER) ? SMMU_ACC_USER : 0) |
	       ((gpte & SMMU_PTE_NX) ? 0 : SMMU_ACC_EXEC);
}

/* An MMIO spte of a page being synced: FNAME(prefetch_invalid_gpte) drops it for a pte that is
 * not present or not Accessed (a flush, as for any dropped spte); sync_mmio_spte clears it
 * (without a flush) when the pte maps another gfn, else marks it again with the current
 * generation and the pte's rights; 3.11 counts it present then (rules->sync_mmio_counts_present). */
static void sync_mmio_spte(struct smmu_vm *vm, struct smmu_sp *sp, uint64_t *sptep, uint64_t gpte, int *nr_present,
			   bool *flush)
{
	smmu_gfn_t gfn = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	if (!(gpte & SMMU_PTE_PRESENT) || !(gpte & SMMU_PTE_ACCESSED)) {
		mmio_spte_clear(vm, sptep);
		*flush = true;
		if (vm->rules->sync_leaves_tlbs_dirty)
			vm->tlbs_dirty++; /* 3.11's sync_page counts every prefetch_invalid_gpte drop */
		return;
	}
	if (gfn != kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt))) {
		mmio_spte_clear(vm, sptep);
		return;
	}
	uint32_t access = sp->role.access & gpte_access(gpte);
	if (!(gpte & SMMU_PTE_DIRTY))
		access &= ~(uint32_t)SMMU_ACC_WRITE; /* FNAME(protect_clean_gpte) */
	mark_mmio_spte(vm, sptep, gfn, access, false);
	if (gfn_to_valid_memslot(&vm->slots, gfn)) /* a slot came since: KVM marks it all the same */
		sp->mmio_resync_gen = 1 + (uint32_t)get_mmio_spte_generation(*sptep);
	if (vm->rules->sync_mmio_counts_present)
		(*nr_present)++;
}

/*
 * FNAME(sync_page): each present spte against the guest pte it shadows now. A pte that is not
 * present, not Accessed (FNAME(prefetch_invalid_gpte)) or maps another gfn drops the spte; else
 * the spte keeps its frame and takes the pte's rights (make_spte / set_spte with can_unsync
 * false: no write where the gfn is shadowed, unless the spte was writable already; a clean pte
 * maps no write); from 6.4 an spte whose access is as stored is left alone
 * (rules->sync_skips_unchanged_access). Returns whether a flush is needed, or -1 when the guest
 * table is in no slot.
 */
static int sync_page(struct smmu_vm *vm, struct smmu_sp *sp, int *nr_present)
{
	struct memslot *tslot = gfn_to_valid_memslot(&vm->slots, sp->gfn);
	if (!tslot)
		return -1;
	const uint64_t *gptes = memslot_gfn_to_hva(tslot, sp->gfn);
	bool flush = false;
	*nr_present = 0;
	for (int i = 0; i < SMMU_PT_ENTRIES; i++) {
		uint64_t *sptep = &sp->spt[i], old = *sptep;
		if (is_mmio_spte(old)) {
			sync_mmio_spte(vm, sp, sptep, guest_read_pte(&gptes[i]), nr_present, &flush);
			continue;
		}
		if (!is_shadow_present_pte(old))
			continue;
		uint64_t gpte = guest_read_pte(&gptes[i]);
		smmu_gfn_t gfn = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
		if (!(gpte & SMMU_PTE_PRESENT) || !(gpte & SMMU_PTE_ACCESSED) || gfn != kvm_mmu_page_get_gfn(sp, i)) {
			drop_spte(vm, sptep);
			flush = true;
			if (vm->rules->sync_leaves_tlbs_dirty)
				vm->tlbs_dirty++; /* 3.11: no remote flush here */
			continue;
		}
		uint32_t access = sp->role.access & gpte_access(gpte);
		if (!(gpte & SMMU_PTE_DIRTY))
			access &= ~(uint32_t)SMMU_ACC_WRITE;
		if (vm->rules->sync_skips_unchanged_access) { /* FNAME(sync_spte), 6.4 on */
			if (kvm_mmu_page_get_access(sp, i) == access) {
				(*nr_present)++;
				continue;
			}
			kvm_mmu_page_set_access(sp, i, access);
		}
		struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
		/* Rebuilt as a prefetch (make_spte's prefetch, 3.11's set_spte speculative): no
		 * Accessed bit; Dirty as rules->spte_dirty_on_write says, below. */
		uint64_t spte = old & ~(PT_WRITABLE_MASK | PT_USER_MASK | PT64_NX_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK);
		if (!(access & SMMU_ACC_EXEC))
			spte |= PT64_NX_MASK;
		if (access & SMMU_ACC_USER)
			spte |= PT_USER_MASK;
		/* host_writable is the old spte's (FNAME(sync_page)): a frame the host mapped
		 * read-only (a read fault over the zero page) stays read-only. */
		if ((access & SMMU_ACC_WRITE) && slot && !(slot->flags & SMMU_MEM_READONLY) &&
		    (old & SPTE_HOST_WRITABLE) &&
		    (is_writable_pte(old) || !mmu_try_to_unsync_pages(vm, gfn, false, true))) {
			spte |= PT_WRITABLE_MASK;
			mark_page_dirty(slot, gfn);
		}
		spte = make_spte_dirty(vm, spte, old);
		if ((old & ~spte & (PT_WRITABLE_MASK | PT_USER_MASK)) || (spte & ~old & PT64_NX_MASK))
			flush = true; /* mmu_spte_update: rights taken away */
		if (old & ~spte & (PT_ACCESSED_MASK | PT_DIRTY_MASK))
			flush = true; /* today's mmu_spte_update: Accessed or Dirty cleared (3.11 flushes anyway) */
		__atomic_store_n(sptep, spte, __ATOMIC_RELAXED);
		(*nr_present)++;
	}
	return flush;
}

int kvm_sync_page(struct smmu_vcpu *v, struct smmu_sp *sp, struct list_node *invalid_list)
{
	struct smmu_vm *vm = v->vm;
	int nr_present = 0, r = sync_page(vm, sp, &nr_present);
	if (r < 0 || (!nr_present && vm->rules->sync_zaps_empty)) {
		kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
		return -1;
	}
	if (!vm->rules->sync_flushes_remote)
		vcpu_make_request(v, KVM_REQ_TLB_FLUSH); /* 3.11's kvm_mmu_flush_tlb, every synced page */
	return r;
}

/* kvm_mmu_remote_flush_or_zap: commit the invalid list (its commit flushes), else flush if asked
 * (@skip: the smmu_skip_flush bit that may leave that flush out). */
static void remote_flush_or_zap(struct smmu_vm *vm, struct list_node *invalid_list, bool flush, uint32_t skip)
{
	if (!list_empty(invalid_list))
		kvm_mmu_commit_zap_page(vm, invalid_list);
	else if (flush)
		kvm_flush_remote_tlbs(vm, skip);
}

/*
 * mmu_sync_children: write-protect the gfns of a batch of unsync pages, then sync each; after
 * each batch, the lock break. 3.11 commits the batch's zaps and calls cond_resched_lock (its
 * flush before the break is that commit; each synced page asked for its own vCPU's TLB flush).
 * Today (rules->sync_flushes_remote) breaks when need_resched() || rwlock_needbreak(), flushing
 * or committing what is pending first (kvm_mmu_remote_flush_or_zap); a caller that cannot yield
 * (@can_yield false: FNAME(fetch), which holds no reference to @parent) gets -EINTR instead, with
 * KVM_REQ_MMU_SYNC made so that the vCPU's next entry finishes the roots' sync. @return 0 or
 * -EINTR.
 */
int mmu_sync_children(struct smmu_vcpu *v, struct smmu_sp *parent, bool can_yield)
{
	struct smmu_vm *vm = v->vm;
	struct smmu_sp *pages[KVM_PAGE_ARRAY_NR];
	struct list_node invalid_list;
	bool flush = false;
	int n;
	list_init(&invalid_list);
	while ((n = unsync_walk(parent, pages, 0))) {
		bool protected = false;
		for (int k = 0; k < n; k++)
			protected |= rmap_write_protect(vm, pages[k]->gfn);
		if (protected) {
			remote_flush_or_zap(vm, &invalid_list, true, SMMU_SKIP_FLUSH_WRPROT);
			flush = false;
		}
		for (int k = 0; k < n; k++) {
			kvm_unlink_unsync_page(vm, pages[k]);
			flush |= kvm_sync_page(v, pages[k], &invalid_list) > 0;
		}
		if (!vm->rules->sync_flushes_remote) {
			kvm_mmu_commit_zap_page(vm, &invalid_list); /* 3.11: each batch */
			vm_cond_resched(vm);
			continue;
		}
		if (mmu_lock_needbreak(&vm->mmu_lock)) {
			remote_flush_or_zap(vm, &invalid_list, flush, 0);
			if (!can_yield) {
				vcpu_make_request(v, KVM_REQ_MMU_SYNC);
				return -EINTR;
			}
			vm_cond_resched(vm);
			flush = false;
		}
	}
	remote_flush_or_zap(vm, &invalid_list, flush && vm->rules->sync_flushes_remote, 0);
	return 0;
}

/* kvm_mmu_sync_roots under mmu_lock (it may break the lock: can_yield). */
void kvm_mmu_sync_roots_locked(struct smmu_vcpu *v)
{
	lockdep_assert_held(&v->vm->mmu_lock);
	v->sync_pending = false;
	if (v->root && v->root->unsync_children)
		mmu_sync_children(v, v->root, true);
}

void kvm_sync_pages(struct smmu_vcpu *v, smmu_gfn_t gfn)
{
	struct smmu_vm *vm = v->vm;
	struct list_node invalid_list;
	struct smmu_sp *sp;
	list_init(&invalid_list);
	for_each_gfn_indirect_valid_sp(vm, sp, gfn, node) {
		if (!sp->unsync)
			continue;
		kvm_unlink_unsync_page(vm, sp);
		kvm_sync_page(v, sp, &invalid_list);
	}
	kvm_mmu_commit_zap_page(vm, &invalid_list);
}

/*
 * FNAME(invlpg) under mmu_lock: follow @gva down the root while the pages on the way have unsync
 * children; at a leaf of an unsync page, zap the spte and map the guest pte it shadows now
 * (FNAME(update_pte) → FNAME(prefetch_gpte)).
 */
static void invlpg_locked(struct smmu_vcpu *v, struct smmu_sp *root, smmu_gva_t gva)
{
	struct smmu_vm *vm = v->vm;
	if (!root)
		return;
	uint64_t *table = root->spt;
	for (int level = PT64_ROOT_LEVEL; level >= 1; level--) {
		uint64_t *sptep = &table[PT64_INDEX(gva, level)];
		struct smmu_sp *sp = page_header(sptep);
		if (is_last_spte(*sptep, level)) {
			if (!sp->unsync)
				break;
			if (mmu_page_zap_pte(vm, sp, sptep))
				kvm_flush_remote_tlbs(vm, 0);
			struct memslot *tslot = gfn_to_valid_memslot(&vm->slots, sp->gfn);
			if (!tslot)
				break;
			prefetch_gpte(v, sp, sptep, guest_read_pte((const uint64_t *)memslot_gfn_to_hva(tslot, sp->gfn) +
								   (sptep - sp->spt)));
		}
		if (!is_shadow_present_pte(*sptep) || !sp->unsync_children)
			break;
		table = spte_to_child_spt(*sptep);
	}
}

/* kvm_mmu_invlpg → kvm_mmu_invalidate_gva: FNAME(invlpg) from the current root, then from each
 * cached root (today; 3.11 has none), then the vCPU's TLB entry (the model flushes its whole
 * TLB). */
SMMU_API int smmu_vcpu_invlpg(smmu_vcpu *v, smmu_gva_t gva)
{
	if (!v || !is_canonical(gva))
		return -EINVAL;
	struct smmu_vm *vm = v->vm;
	vcpu_process_requests(v);
	if (vm->cfg.mode == SMMU_MODE_SHADOW) {
		int r = mmu_topup_memory_caches(vm, &v->caches);
		if (r)
			return r;
		pthread_rwlock_rdlock(&vm->srcu);
		vm_lock(vm, SMMU_SITE_VCPU);
		invlpg_locked(v, v->root, gva);
		for (int i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++)
			invlpg_locked(v, v->prev_roots[i].sp, gva);
		vm_unlock(vm);
		pthread_rwlock_unlock(&vm->srcu);
	}
	vcpu_tlb_flush(v);
	vcpu_audit_point(v, "invlpg");
	return 0;
}

SMMU_API int smmu_vm_get_mmu_unsync(const smmu_vm *vm, uint64_t *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->mmu_unsync;
	return 0;
}
