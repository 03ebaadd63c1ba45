/*
 * The fault path: kvm_mmu_get_page, root allocation, FNAME(fetch) for shadow paging,
 * __direct_map for direct (TDP-like) mode, mmu_set_spte, and kvm_mmu_pte_write for trapped
 * guest page-table writes.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>

#include "mmu.h"

#define ACC_ALL (SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC)

/* kvm_mmu_get_page: the page of this gfn and role from mmu_page_hash, never an obsolete one
 * (nor an invalid one: the invalid bit is part of the role), else a new page. An unsync page
 * found is synced first (3.11's kvm_sync_page_transient, today's kvm_sync_page: it stays
 * unsync), and one that cannot be is zapped and replaced. Unsync pages of the gfn met while
 * looking for a page above level 1 are zapped (today) or synced when the page is created
 * (3.11): rules->get_higher_zaps_unsync. A page found is in use again: its write-flooding
 * count restarts (__clear_sp_write_flooding_count, both eras). */
struct smmu_sp *kvm_mmu_get_page(struct smmu_vcpu *v, smmu_gfn_t gfn, int level, bool direct,
				 uint32_t access)
{
	struct smmu_vm *vm = v->vm;
	union sp_role role = { .word = 0 };
	role.level = (unsigned)level;
	role.direct = direct;
	role.access = access;
	struct smmu_sp *sp, *found = NULL;
	struct list_node invalid_list;
	bool need_sync = false;
	list_init(&invalid_list);
	for_each_sp_in_bucket(vm, sp, gfn, node) {
		if (sp->gfn != gfn || is_obsolete_sp(vm, sp))
			continue;
		if (sp->role.word != role.word) {
			need_sync |= sp->unsync;
			if (sp->unsync && level > SMMU_LEVEL_4K && vm->rules->get_higher_zaps_unsync)
				kvm_mmu_prepare_zap_page(vm, sp, &invalid_list);
			continue;
		}
		if (sp->unsync) {
			int ret = kvm_sync_page(v, sp, &invalid_list);
			if (ret < 0)
				break;
			if (ret > 0 && vm->rules->sync_flushes_remote)
				kvm_flush_remote_tlbs(vm, 0);
		}
		if (sp->unsync_children && !vm->rules->fetch_syncs_children)
			vcpu_make_request(v, KVM_REQ_MMU_SYNC);
		sp->write_flooding_count = 0;
		found = sp;
		break;
	}
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	if (found)
		return found;
	sp = kvm_mmu_alloc_page(vm, &v->caches, direct);
	sp->gfn = gfn;
	sp->role = role;
	sp->mmu_valid_gen = vm->mmu_valid_gen;
	sp->zap_gen = vm->zap_gen;
	hlist_add_head(&sp->hash_link, &vm->mmu_page_hash[kvm_page_table_hashfn(vm, gfn)]);
	if (!direct) {
		if (rmap_write_protect(vm, gfn))
			kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_WRPROT);
		if (level > SMMU_LEVEL_4K && need_sync && !vm->rules->get_higher_zaps_unsync)
			kvm_sync_pages(v, gfn);
		account_shadowed(vm, sp);
	}
	vm_event(vm, SMMU_EV_PAGE_CREATED, sp);
	return sp;
}

/* mmu_alloc_direct_roots / mmu_alloc_shadow_roots (64-bit: one root). */
int mmu_alloc_roots(struct smmu_vcpu *v)
{
	struct smmu_vm *vm = v->vm;
	struct smmu_sp *sp;
	if (vm->cfg.mode == SMMU_MODE_DIRECT) {
		sp = kvm_mmu_get_page(v, 0, PT64_ROOT_LEVEL, true, ACC_ALL);
	} else {
		smmu_gfn_t root_gfn = v->cr3 >> SMMU_PAGE_SHIFT;
		if (!gfn_to_valid_memslot(&vm->slots, root_gfn)) /* mmu_check_root */
			return -EFAULT;
		sp = kvm_mmu_get_page(v, root_gfn, PT64_ROOT_LEVEL, false, ACC_ALL);
	}
	sp->root_count++;
	v->root = sp;
	v->root_pgd = vm->cfg.mode == SMMU_MODE_DIRECT ? 0 : v->cr3; /* root.pgd */
	v->stat.roots_loaded++;
	kvm_mmu_sync_roots_locked(v); /* kvm_mmu_load: the root's unsync pages are synced */
	return 0;
}

void mmu_free_roots_locked(struct smmu_vcpu *v, struct list_node *invalid_list)
{
	kvm_mmu_free_roots_locked(v, KVM_MMU_ROOTS_ALL, invalid_list);
}

void mmu_free_roots(struct smmu_vcpu *v)
{
	struct list_node invalid_list;
	list_init(&invalid_list);
	vm_lock(v->vm, SMMU_SITE_VCPU);
	mmu_free_roots_locked(v, &invalid_list);
	kvm_mmu_commit_zap_page(v->vm, &invalid_list);
	vm_unlock(v->vm);
}

/* mmu_set_spte + set_spte: install the leaf. Returns true when a write had to be refused because
 * the gfn is a shadowed guest table that cannot go unsync (mmu_try_to_unsync_pages: the access
 * must be emulated). A prefetched spte (pte prefetch: speculative in 3.11, prefetch in make_spte
 * today) is made without the Accessed bit and is no fixed fault. */
bool mmu_set_spte(struct smmu_vcpu *v, uint64_t *sptep, uint32_t pte_access, bool write_fault, int level,
		  smmu_gfn_t gfn, struct memslot *slot, bool prefetch)
{
	struct smmu_vm *vm = v->vm;
	uint64_t pfn = (uintptr_t)memslot_gfn_to_hva(slot, gfn) >> SMMU_PAGE_SHIFT;
	uint64_t old = *sptep;
	uint32_t asked = pte_access; /* what the spte is made for: its shadowed translation's access */
	bool was_rmapped = false, wrprot = false;

	if (is_shadow_present_pte(old)) {
		if (level > SMMU_LEVEL_4K && !is_large_pte(old)) {
			/* A 2M leaf replaces a table: unlink the now unreachable child. */
			drop_parent_pte(vm, page_header(spte_to_child_spt(old)), sptep);
			kvm_flush_remote_tlbs(vm, 0);
		} else if (pfn != spte_to_pfn(old)) {
			drop_spte(vm, sptep);
			kvm_flush_remote_tlbs(vm, 0);
		} else {
			was_rmapped = true;
		}
	}

	uint64_t spte = PT_PRESENT_MASK | (prefetch ? 0 : PT_ACCESSED_MASK) | (pfn << SMMU_PAGE_SHIFT);
	if (!(pte_access & SMMU_ACC_EXEC))
		spte |= PT64_NX_MASK;
	if (pte_access & SMMU_ACC_USER)
		spte |= PT_USER_MASK;
	if (level > SMMU_LEVEL_4K)
		spte |= PT_PAGE_SIZE_MASK;
	/* !host_writable: a read-only slot, or a read fault on a page the host does not map writable
	 * (hva_to_pfn: the fast lookup asks for a writable page, the slow one maps it read-only). */
	if ((slot->flags & SMMU_MEM_READONLY) || (!prefetch && !write_fault && !host_pte_writable(slot, gfn)))
		pte_access &= ~(uint32_t)SMMU_ACC_WRITE;
	else
		spte |= SPTE_HOST_WRITABLE;
	if (pte_access & SMMU_ACC_WRITE) {
		spte |= PT_WRITABLE_MASK;
		if (mmu_try_to_unsync_pages(vm, gfn, true, prefetch)) {
			wrprot = true;
			spte &= ~PT_WRITABLE_MASK;
		} else {
			mark_page_dirty(slot, gfn);
		}
	}
	spte = make_spte_dirty(vm, spte, *sptep); /* *sptep, not old: a replaced pfn was dropped above */

	if (was_rmapped) { /* mmu_spte_update */
		if (is_writable_pte(old) && !is_writable_pte(spte))
			kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_WRPROT);
		else if ((old & PT_DIRTY_MASK) && !(spte & PT_DIRTY_MASK))
			kvm_flush_remote_tlbs(vm, 0); /* the Dirty bit cleared */
		__atomic_store_n(sptep, spte, __ATOMIC_RELAXED);
		struct smmu_sp *sp = page_header(sptep);
		kvm_mmu_page_set_access(sp, (int)(sptep - sp->spt), asked);
	} else {
		mmu_spte_set(vm, sptep, spte);
		rmap_add(vm, &v->caches.desc, sptep, gfn, asked);
	}
	bool emulate = wrprot && write_fault;
	/* pf_fixed (rules->pf_fixed_only_if_fixed): today RET_PF_FIXED only, neither emulated nor
	 * spurious; 3.11 whatever fetch returns. */
	if (!prefetch && (!vm->rules->pf_fixed_only_if_fixed || (!emulate && *sptep != old)))
		vm->stat.faults_fixed++;
	return emulate;
}

/* drop_large_spte: a large leaf where a table is needed now. */
static void drop_large_spte(struct smmu_vm *vm, uint64_t *sptep)
{
	if (is_shadow_present_pte(*sptep) && is_large_pte(*sptep)) {
		drop_spte(vm, sptep);
		kvm_flush_remote_tlbs(vm, 0);
	}
}

/* FNAME(gpte_changed): the guest entry read by the walk is not what memory holds now. */
static bool gpte_changed(struct smmu_vm *vm, const struct guest_walker *w, int level)
{
	smmu_gpa_t a = w->pte_gpa[level - 1];
	struct memslot *slot = gfn_to_valid_memslot(&vm->slots, a >> SMMU_PAGE_SHIFT);
	if (!slot)
		return true;
	uint64_t now = guest_read_pte((uint8_t *)memslot_gfn_to_hva(slot, a >> SMMU_PAGE_SHIFT) +
				      (a & (SMMU_PAGE_SIZE - 1)));
	return now != w->ptes[level - 1];
}

/* mmu_set_spte for a KVM_PFN_NOSLOT pfn: the leaf (always 4 KiB: no slot allows a large page)
 * becomes an MMIO spte with the guest's write and user rights (mark_mmio_spte, counted in
 * pf_mmio_spte_created), and the access is emulated (today RET_PF_EMULATE, not in pf_fixed;
 * 3.11's FNAME(page_fault) / __direct_map count it: rules->pf_fixed_only_if_fixed); the fetch
 * goes on to its pte prefetch, as for any leaf, in both eras. */
static int noslot_spte(struct smmu_vcpu *v, uint64_t *sptep, smmu_gfn_t gfn, uint32_t access)
{
	mark_mmio_spte(v->vm, sptep, gfn, access, true);
	if (!v->vm->rules->pf_fixed_only_if_fixed) /* 3.11 counts every fault that reached the leaf */
		v->vm->stat.faults_fixed++;
	pte_prefetch(v, sptep, false);
	return SMMU_FAULT_MMIO;
}

/* FNAME(fetch): build the shadow path for a walked guest address. Every page the walk goes
 * through, the leaf's table included, is in use: clear_sp_write_flooding_count (3.11 and today;
 * today's FNAME(page_fault) takes a write to a write-tracked gfn through a present spte to
 * emulation without the fetch, after shadow_page_table_clear_flood clears the same path). */
static int fetch(struct smmu_vcpu *v, smmu_gva_t addr, const struct guest_walker *w, bool write_fault,
		 struct memslot *slot, struct smmu_fault_info *info)
{
	struct smmu_vm *vm = v->vm;
	uint64_t *table = v->root->spt;
	int level = PT64_ROOT_LEVEL;
	/* 3.11: the leaf size is chosen before the indirect pages (rules->fault_level_after_fetch). */
	int hlevel = SMMU_LEVEL_4K;
	if (!vm->rules->fault_level_after_fetch && w->level > SMMU_LEVEL_4K)
		hlevel = mapping_level(vm, w->gfn, w->level);

	if (gpte_changed(vm, w, PT64_ROOT_LEVEL))
		return SMMU_FAULT_RETRY;
	for (; level > w->level; level--) {
		uint64_t *sptep = &table[PT64_INDEX(addr, level)];
		struct smmu_sp *child = NULL;
		clear_sp_write_flooding_count(sptep);
		drop_large_spte(vm, sptep);
		if (!is_shadow_present_pte(*sptep)) {
			child = kvm_mmu_get_page(v, w->table_gfn[level - 2], level - 1, false, w->pt_access);
			/* Today: its unsync pages synced before it is linked (rules->fetch_syncs_children);
			 * a sync that had to break defers to KVM_REQ_MMU_SYNC and the fault retries. */
			if (vm->rules->fetch_syncs_children && child->unsync_children &&
			    mmu_sync_children(v, child, false))
				return SMMU_FAULT_RETRY;
		}
		/* The table just write-protected must still hold what the walk read. */
		if (gpte_changed(vm, w, level - 1))
			return SMMU_FAULT_RETRY;
		if (child)
			link_shadow_page(vm, &v->caches.desc, sptep, child);
		table = spte_to_child_spt(*sptep);
	}
	/* Today: only now choose the leaf size (kvm_mmu_hugepage_adjust after the indirect pages):
	 * the tables just shadowed may lie inside the guest's large page. */
	if (vm->rules->fault_level_after_fetch && w->level > SMMU_LEVEL_4K)
		hlevel = mapping_level(vm, w->gfn, w->level);
	/* A guest large page mapped with smaller sptes: direct pages split it. */
	uint32_t direct_access = w->pte_access;
	for (; level > hlevel; level--) {
		uint64_t *sptep = &table[PT64_INDEX(addr, level)];
		clear_sp_write_flooding_count(sptep);
		drop_large_spte(vm, sptep);
		if (is_shadow_present_pte(*sptep)) { /* validate_direct_spte */
			struct smmu_sp *child = page_header(spte_to_child_spt(*sptep));
			if (child->role.access != direct_access) {
				drop_parent_pte(vm, child, sptep);
				kvm_flush_remote_tlbs(vm, 0);
			}
		}
		if (!is_shadow_present_pte(*sptep)) {
			smmu_gfn_t direct_gfn = w->gfn & ~(KVM_PAGES_PER_HPAGE(level) - 1);
			struct smmu_sp *child = kvm_mmu_get_page(v, direct_gfn, level - 1, true, direct_access);
			link_shadow_page(vm, &v->caches.desc, sptep, child);
		}
		table = spte_to_child_spt(*sptep);
	}
	/* set_spte: no writable large spte where a table is shadowed now (3.11 can get here, having
	 * chosen the level before the fetch); the spte stays unset and the guest refaults. */
	if (hlevel > SMMU_LEVEL_4K && (w->pte_access & SMMU_ACC_WRITE) && has_wrprotected_page(vm, w->gfn, hlevel))
		return SMMU_FAULT_RETRY;
	info->level = hlevel;
	uint64_t *sptep = &table[PT64_INDEX(addr, hlevel)], old = *sptep;
	clear_sp_write_flooding_count(sptep);
	if (!slot)
		return noslot_spte(v, sptep, w->gfn, w->pte_access);
	smmu_gfn_t gfn = w->gfn & ~(KVM_PAGES_PER_HPAGE(hlevel) - 1);
	info->emulated_write = mmu_set_spte(v, sptep, w->pte_access, write_fault, hlevel, gfn, slot, false);
	pte_prefetch(v, sptep, *sptep == old && !info->emulated_write);
	info->level = hlevel;
	return SMMU_FAULT_MAPPED;
}

/* __direct_map: direct pages all the way; the leaf as large as lpage_info allows. */
static int direct_map(struct smmu_vcpu *v, smmu_gpa_t gpa, bool write_fault, struct memslot *slot,
		      struct smmu_fault_info *info)
{
	struct smmu_vm *vm = v->vm;
	smmu_gfn_t gfn = gpa >> SMMU_PAGE_SHIFT;
	int hlevel = mapping_level(vm, gfn, SMMU_LEVEL_1G);
	uint64_t *table = v->root->spt;
	for (int level = PT64_ROOT_LEVEL; level > hlevel; level--) {
		uint64_t *sptep = &table[PT64_INDEX(gpa, level)];
		drop_large_spte(vm, sptep);
		if (!is_shadow_present_pte(*sptep)) {
			smmu_gfn_t pseudo_gfn = (gpa & ~((1ull << PT64_LEVEL_SHIFT(level)) - 1)) >> SMMU_PAGE_SHIFT;
			struct smmu_sp *child = kvm_mmu_get_page(v, pseudo_gfn, level - 1, true, ACC_ALL);
			link_shadow_page(vm, &v->caches.desc, sptep, child);
		}
		table = spte_to_child_spt(*sptep);
	}
	info->level = hlevel;
	uint64_t *sptep = &table[PT64_INDEX(gpa, hlevel)], old = *sptep;
	if (!slot)
		return noslot_spte(v, sptep, gfn, ACC_ALL);
	smmu_gfn_t leaf_gfn = gfn & ~(KVM_PAGES_PER_HPAGE(hlevel) - 1);
	info->emulated_write = mmu_set_spte(v, sptep, ACC_ALL, write_fault, hlevel, leaf_gfn, slot, false);
	pte_prefetch(v, sptep, *sptep == old && !info->emulated_write);
	info->level = hlevel;
	return SMMU_FAULT_MAPPED;
}

/* mmu_notifier_retry (3.11) / mmu_invalidate_retry_hva (6.1), under mmu_lock, and today's
 * mmu_invalidate_retry_gfn_unsafe without it: retry a fault on @gfn (of @slot, or NULL) that
 * sampled @mmu_seq when an invalidation is in progress (today: one whose range holds the gfn's
 * hva, rules->notifier_retry_in_range) or one ended since. */
static bool mmu_invalidate_retry(struct smmu_vm *vm, const struct memslot *slot, smmu_gfn_t gfn,
				 uint64_t mmu_seq)
{
	if (vm->mmu_notifier_count) {
		if (!vm->rules->notifier_retry_in_range)
			return true;
		/* A gfn in no slot has no hva (KVM_HVA_ERR_BAD): no range holds it. */
		uintptr_t hva = slot ? (uintptr_t)memslot_gfn_to_hva(slot, gfn) : UINTPTR_MAX;
		if (hva >= vm->mmu_notifier_range_start && hva < vm->mmu_notifier_range_end)
			return true;
	}
	return atomic_load_explicit(&vm->mmu_notifier_seq, memory_order_relaxed) != mmu_seq;
}

/* kvm_faultin_pfn's mmu_invalidate_retry_gfn_unsafe (6.9 on, rules->fault_retries_before_lock):
 * retry without taking mmu_lock, for a gfn in a slot. */
static bool retry_before_lock(struct smmu_vm *vm, const struct memslot *slot, smmu_gfn_t gfn, uint64_t mmu_seq)
{
	return slot && vm->rules->fault_retries_before_lock && mmu_invalidate_retry(vm, slot, gfn, mmu_seq);
}

/* kvm_mmu_page_fault → FNAME(page_fault) / tdp_page_fault. */
SMMU_API int smmu_vcpu_fault(smmu_vcpu *v, smmu_gva_t addr, uint32_t access, struct smmu_fault_info *info)
{
	struct smmu_fault_info dummy;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	if (!v || (access & ~(uint32_t)ACC_ALL))
		return -EINVAL;
	struct smmu_vm *vm = v->vm;
	bool shadow = vm->cfg.mode == SMMU_MODE_SHADOW;
	/* Direct mode: a gpa the 4-level direct map cannot reach would alias its value modulo 2^48
	 * (today's KVM emulates such a fault instead of installing an spte); the vCPU's guest
	 * physical width is what the map reaches, so it cannot raise one. */
	if (shadow ? (!is_canonical(addr) || !v->has_cr3) : (addr >> SMMU_PAGE_SHIFT) >= vm_gfn_limit(vm))
		return -EINVAL;

	vcpu_process_requests(v);
	/* kvm_mmu_page_fault: a walk that ended at an MMIO spte (PFERR_RSVD) of the current
	 * generation is emulated at once (handle_mmio_page_fault); a stale one falls through to
	 * the page fault (RET_PF_INVALID). */
	pthread_rwlock_rdlock(&vm->srcu);
	smmu_gfn_t mmio_gfn;
	int hit = handle_mmio_page_fault(v, addr, access, &mmio_gfn);
	pthread_rwlock_unlock(&vm->srcu);
	if (hit) {
		v->stat.faults++;
		info->outcome = SMMU_FAULT_MMIO;
		info->gfn = mmio_gfn;
		info->level = SMMU_LEVEL_4K;
		vcpu_audit_point(v, "fault");
		return SMMU_FAULT_MMIO;
	}
	int r = mmu_topup_memory_caches(vm, &v->caches);
	if (r)
		return r;
	v->stat.faults++;

	pthread_rwlock_rdlock(&vm->srcu);
	struct guest_walker w;
	smmu_gfn_t gfn;
	if (shadow) {
		do /* retry_walk */
			r = guest_walk_addr(vm, v->cr3, addr, access, &w);
		while (!r && guest_walk_update_ad(vm, &w, access & SMMU_ACC_WRITE) == -EAGAIN);
		if (r == -ENOENT) {
			info->outcome = SMMU_FAULT_GUEST_PF;
			info->pf_reason = (enum smmu_guest_pf_reason)w.fault_reason;
			info->pf_level = w.level;
			r = SMMU_FAULT_GUEST_PF;
			goto out_srcu;
		}
		if (r == -EFAULT) {
			/* A table in a slot being deleted: the guest retries; in no slot: an error. */
			r = gfn_to_memslot(&vm->slots, w.table_gfn[w.level - 1]) ? SMMU_FAULT_RETRY : -EFAULT;
			info->outcome = r > 0 ? SMMU_FAULT_RETRY : 0;
			goto out_srcu;
		}
		gfn = w.gfn;
	} else {
		gfn = addr >> SMMU_PAGE_SHIFT;
		memset(&w, 0, sizeof(w));
	}
	info->gfn = gfn;
	/* mmu_seq, sampled before the pfn is looked up (mmu_notifier_retry checks it under the lock). */
	uint64_t mmu_seq = atomic_load_explicit(&vm->mmu_notifier_seq, memory_order_acquire);
	struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
	if (slot && (slot->flags & KVM_MEMSLOT_INVALID)) {
		if (vm->rules->fault_invalid_slot_retries) {
			r = info->outcome = SMMU_FAULT_RETRY;
			goto out_srcu;
		}
		slot = NULL; /* 3.11: KVM_PFN_NOSLOT, an MMIO access */
	}
	/* A write to a read-only slot (KVM_PFN_ERR_RO_FAULT) is emulated at once. A gfn in no slot
	 * (KVM_PFN_NOSLOT) is MMIO too, but handle_abnormal_pfn lets the fault go on: the shadow path
	 * is built as for any gfn and ends in an MMIO spte (set_mmio_spte), 3.11 and today. */
	if (slot && (access & SMMU_ACC_WRITE) && (slot->flags & SMMU_MEM_READONLY)) {
		r = info->outcome = SMMU_FAULT_MMIO;
		goto out_srcu;
	}

	/* kvm_faultin_pfn, 6.9 on: an invalidation of the gfn in progress retries before the lookup. */
	if (retry_before_lock(vm, slot, gfn, mmu_seq)) {
		r = info->outcome = SMMU_FAULT_RETRY;
		goto out_srcu;
	}
	/* kvm_faultin_pfn → hva_to_pfn: the host's own page fault runs here, between the mmu_seq
	 * sample and mmu_lock; what it unmaps (a zero page copied) comes back through the MMU
	 * notifier and makes this fault retry. */
	if (slot && vm->hva_to_pfn_hook) {
		srcu_hook_reader = vm;
		vm->hva_to_pfn_hook(vm, memslot_gfn_to_hva(slot, gfn), access & SMMU_ACC_WRITE, vm->hva_to_pfn_ctx);
		srcu_hook_reader = NULL;
	}
	/* The pfn lookup of a write fault (FOLL_WRITE) maps the host page writable; a read fault's
	 * leaves an untouched page unmapped or on the zero page (memslot.host_writable). */
	if (slot && (access & SMMU_ACC_WRITE))
		host_pte_set_writable(slot, gfn);
	/* ... and again after it, still without mmu_lock (6.9 on): the pfn is released and the
	 * fault retries, before it takes the lock and recycles pages. */
	if (retry_before_lock(vm, slot, gfn, mmu_seq)) {
		r = info->outcome = SMMU_FAULT_RETRY;
		goto out_srcu;
	}

	vm_lock(vm, SMMU_SITE_FAULT);
	vm->stat.faults++;
	uint64_t created = vm->stat.pages_created;
	/* Today: recycle first, then the stale check (rules->fault_recycles_before_stale). */
	if (vm->rules->fault_recycles_before_stale)
		make_mmu_pages_available(vm);
	if (vm->rules->fault_checks_stale_root && v->root && (v->root->role.invalid || is_obsolete_sp(vm, v->root))) {
		/* is_page_fault_stale: the root was zapped; the reload request is pending. */
		r = SMMU_FAULT_RETRY;
	} else if ((slot || !vm->rules->noslot_fault_skips_notifier_retry) &&
		   mmu_invalidate_retry(vm, slot, gfn, mmu_seq)) {
		/* An invalidation is in progress or ended since the sample (today only for a gfn in a
		 * slot: rules->noslot_fault_skips_notifier_retry). */
		r = SMMU_FAULT_RETRY;
	} else {
		if (!vm->rules->fault_recycles_before_stale)
			make_mmu_pages_available(vm);
		unsigned long acquired = atomic_load_explicit(&vm->mmu_lock.acquisitions, memory_order_relaxed);
		r = v->root ? 0 : mmu_alloc_roots(v);
		if (!r && v->sync_pending) /* KVM_REQ_MMU_SYNC, taken at this entry */
			kvm_mmu_sync_roots_locked(v);
		/* KVM syncs the roots at the vCPU's entry, before the fault: where that sync let go of
		 * mmu_lock and the root was zapped meanwhile, the reload comes first. */
		if (!r && atomic_load_explicit(&vm->mmu_lock.acquisitions, memory_order_relaxed) != acquired &&
		    (v->root->role.invalid || is_obsolete_sp(vm, v->root)))
			r = SMMU_FAULT_RETRY;
		if (!r) {
			if (shadow) {
				r = fetch(v, addr, &w, access & SMMU_ACC_WRITE, slot, info);
			} else {
				r = direct_map(v, addr, access & SMMU_ACC_WRITE, slot, info);
			}
		}
	}
	info->pages_created = (uint32_t)(vm->stat.pages_created - created);
	vm_unlock(vm);
	if (r >= 0)
		info->outcome = (enum smmu_fault_outcome)r;
out_srcu:
	pthread_rwlock_unlock(&vm->srcu);
	vcpu_audit_point(v, "fault");
	return r;
}

/* detect_write_misaligned: the write is not one whole 8-byte entry nor a byte at an entry's
 * start (Linux clears flag bits with a one-byte andb): more than one entry, or under 4 bytes.
 * The pte size is 8: the model shadows 64-bit guests only (role.cr4_pae, today's
 * !has_4_byte_gpte). Both eras. */
static bool detect_write_misaligned(smmu_gpa_t gpa, size_t bytes)
{
	unsigned offset = gpa & (SMMU_PAGE_SIZE - 1);
	if (!(offset & 7) && bytes == 1)
		return false;
	return ((offset ^ (offset + bytes - 1)) & ~7u) || bytes < 4;
}

/* detect_write_flooding: the third trapped write to a page with no use of it in between (the
 * count restarts where clear_sp_write_flooding_count is called) means its gfn is no longer a
 * page table, or a fork is rewriting it: zap it. Level-1 pages are never flooded: they can go
 * unsync instead. Both eras. */
static bool detect_write_flooding(struct smmu_sp *sp)
{
	if (sp->role.level == SMMU_LEVEL_4K)
		return false;
	return ++sp->write_flooding_count >= 3;
}

/* kvm_mmu_pte_write (3.11; today's kvm_mmu_track_write): a guest store of @len bytes at @gpa
 * hit a gfn that indirect pages shadow. Each such page is zapped when the store is misaligned
 * or floods it (mmu_flooded), else the spte of the written entry is zapped. Without a vCPU
 * there is no cache to prefetch the new entry from, so that spte is never updated in place.
 * Which pages are looked at: rules->pte_write_skips_obsolete. */
void kvm_mmu_pte_write(struct smmu_vm *vm, smmu_gpa_t gpa, size_t len)
{
	smmu_gfn_t gfn = gpa >> SMMU_PAGE_SHIFT;
	struct list_node invalid_list;
	bool zap_page = false, remote_flush = false;
	/* mmu_pte_write_fetch_gpte, both eras: with CR4.PAE (every 64-bit guest) a 4-byte store is
	 * taken for a store of the whole entry it starts in, as a 32-bit PAE guest writes a gpte in
	 * two halves. A 4-byte store that straddles two entries is so taken for its first entry
	 * only, as in KVM. */
	if (len == 4) {
		gpa &= ~(smmu_gpa_t)7;
		len = 8;
	}
	list_init(&invalid_list);
	vm_lock(vm, SMMU_SITE_PTE_WRITE);
	vm->stat.pte_writes++;
	struct smmu_sp *sp;
	for_each_sp_in_bucket(vm, sp, gfn, node) {
		if (sp->gfn != gfn || sp->role.direct || sp->role.invalid)
			continue;
		if (vm->rules->pte_write_skips_obsolete && is_obsolete_sp(vm, sp))
			continue;
		if (detect_write_misaligned(gpa, len) || detect_write_flooding(sp)) {
			zap_page |= kvm_mmu_prepare_zap_page(vm, sp, &invalid_list) != 0;
			vm->mmu_flooded++;
			continue;
		}
		uint64_t *spte = &sp->spt[(gpa & (SMMU_PAGE_SIZE - 1)) / 8];
		if (mmu_page_zap_pte(vm, sp, spte))
			remote_flush = true; /* need_remote_flush: present → not present */
	}
	if (!zap_page && remote_flush)
		kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_PTE_WRITE);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	vm_unlock(vm);
}
