/*
 * MMIO sptes and the memslot generation (mark_mmio_spte, check_mmio_spte,
 * handle_mmio_page_fault, kvm_mmu_invalidate_mmio_sptes), Linux 3.11 and today.
 *
 * A fault on a gfn in no memslot builds the shadow path as for any gfn and ends in an MMIO spte
 * carrying the MMIO generation (19 bits of the memslots' generation, spte.h). The next access
 * through it is answered without a page fault, as long as the generation is current; every
 * publication of the slot array moves the generation on, so a slot created over the gfn since
 * makes the spte stale and the access faults again (and maps the slot's memory). When the 19
 * bits wrap, an old spte could look current again: every page is zapped then. Where the eras
 * differ (how the generation moves, where the wrap is looked for) the rules say
 * (profile.h: memslots_gen_step ... sync_mmio_counts_present).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

void __mmio_spte_clear(struct smmu_vm *vm, uint64_t *sptep)
{
	__atomic_store_n(sptep, 0, __ATOMIC_RELAXED);
	page_header(sptep)->n_mmio--;
	__atomic_fetch_sub(&vm->mmio_sptes, 1, __ATOMIC_RELAXED);
}

/* mark_mmio_spte (reached from mmu_set_spte for a KVM_PFN_NOSLOT pfn, or from sync_mmio_spte).
 * make_mmio_spte reads the generation of the memslots the vCPU sees, in-progress bit aside. */
void mark_mmio_spte(struct smmu_vm *vm, uint64_t *sptep, smmu_gfn_t gfn, uint32_t access, bool fault)
{
	lockdep_assert_held(&vm->mmu_lock);
	struct smmu_sp *sp = page_header(sptep);
	SMMU_ASSERT(sp->role.level == SMMU_LEVEL_4K, "MMIO spte above level 1");
	if (is_shadow_present_pte(*sptep)) { /* 3.11's mmu_set_spte: another pfn, drop it first */
		drop_spte(vm, sptep);
		kvm_flush_remote_tlbs(vm, 0);
	}
	mmio_spte_clear(vm, sptep);
	uint64_t gen = mmio_generation(vm, atomic_load_explicit(&vm->slots.generation, memory_order_acquire));
	__atomic_store_n(sptep, make_mmio_spte(gen, gfn, access), __ATOMIC_RELAXED);
	kvm_mmu_page_set_translation(sp, (int)(sptep - sp->spt), gfn, access);
	sp->n_mmio++;
	__atomic_fetch_add(&vm->mmio_sptes, 1, __ATOMIC_RELAXED);
	if (fault)
		vm->mmio_stat.sptes_created++; /* pf_mmio_spte_created (today's mmu_set_spte) */
}

/* check_mmio_spte: today refuses every MMIO spte while a slot update is in progress. */
bool check_mmio_spte(const struct smmu_vm *vm, uint64_t spte)
{
	uint64_t gen = atomic_load_explicit(&vm->slots.generation, memory_order_acquire);
	if (vm->rules->memslots_gen_in_progress && (gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS))
		return false;
	return mmio_generation(vm, gen) == get_mmio_spte_generation(spte);
}

/*
 * handle_mmio_page_fault (handle_mmio_page_fault_common in 3.11): the hardware walk of @addr
 * stopped at an MMIO spte (PFERR_RSVD). KVM walks the shadow tables locklessly; the model takes
 * mmu_lock for it (site VCPU, like its hardware walk). A walk that ends elsewhere is no MMIO
 * fault: the page fault handles it. An MMIO spte that does not grant @access sends the access
 * to the page fault too, whose guest walk reports the fault (in KVM the emulator's walk of the
 * guest's tables injects it). The walk takes the lock only while the VM has MMIO sptes, so
 * faults of a VM without MMIO take mmu_lock once, as before. The per-vCPU MMIO info cache (vcpu_cache_mmio_info) that KVM
 * checks first is not modelled: it answers the same accesses the spte answers.
 */
int handle_mmio_page_fault(struct smmu_vcpu *v, uint64_t addr, uint32_t access, smmu_gfn_t *gfn)
{
	struct smmu_vm *vm = v->vm;
	int r = 0;
	/* The hardware walk cannot have met an MMIO spte where the VM has none: no lock then. (A
	 * count read just before another vCPU installs one only sends this fault the slow way,
	 * which installs the spte again, as a fault racing with the hardware walk does in KVM.) */
	if (!__atomic_load_n(&vm->mmio_sptes, __ATOMIC_RELAXED))
		return 0;
	vm_lock(vm, SMMU_SITE_VCPU);
	struct smmu_sp *root = v->root;
	uint64_t *table = root && !root->role.invalid && !is_obsolete_sp(vm, root) ? root->spt : NULL;
	for (int level = PT64_ROOT_LEVEL; table && level >= SMMU_LEVEL_4K; level--) {
		uint64_t *sptep = &table[PT64_INDEX(addr, level)], spte = *sptep;
		if (is_mmio_spte(spte)) {
			struct smmu_sp *sp = page_header(sptep);
			if (!check_mmio_spte(vm, spte)) {
				vm->mmio_stat.stale_hits++; /* RET_PF_INVALID: the page fault runs */
			} else if (!(access & (SMMU_ACC_WRITE | SMMU_ACC_USER) & ~get_mmio_spte_access(spte))) {
				*gfn = kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt));
				vm->mmio_stat.fast_hits++; /* RET_PF_EMULATE, trace handle_mmio_page_fault */
				r = 1;
			}
			break;
		}
		if (!is_shadow_present_pte(spte) || is_last_spte(spte, level))
			break;
		table = spte_to_child_spt(spte);
	}
	vm_unlock(vm);
	return r;
}

/* kvm_mmu_invalidate_mmio_sptes' test: has the MMIO generation of @gen wrapped? */
static bool mmio_gen_wrapped(const struct smmu_vm *vm, uint64_t gen)
{
	uint64_t mg = mmio_generation(vm, gen);
	if (vm->rules->mmio_wrap_every_publish) /* today: the address-space bits stripped, 0 */
		return (mg & ~(uint64_t)(vm->rules->memslots_gen_step - 1)) == 0;
	return mg >= MMIO_SPTE_GEN_MASK - 1; /* 3.11: MMIO_MAX_GEN - 1 or more */
}

/*
 * The end of a publication (@commit false: today's kvm_swap_active_memslots after
 * synchronize_srcu: the in-progress bit dropped, KVM_ADDRESS_SPACE_NUM added,
 * kvm_arch_memslots_updated) or of a whole change (@commit true: 3.11's
 * kvm_arch_commit_memory_region). Each looks for the wrap where its era does; a wrap bumps
 * mmu_valid_gen and requests reloads under mmu_lock, and the new generation is set in that same
 * critical section (KVM sets it just after the zap returns), then the obsolete pages drain.
 * Caller holds slots_lock, not mmu_lock.
 */
void memslots_updated(struct smmu_vm *vm, bool commit)
{
	const struct smmu_rules *r = vm->rules;
	uint64_t gen = atomic_load_explicit(&vm->slots.generation, memory_order_relaxed);
	if (!commit && (gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS))
		gen = (gen & ~KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS) + r->memslots_gen_step;
	bool look = r->mmio_wrap_every_publish ? !commit : commit;
	if (!look || !mmio_gen_wrapped(vm, gen)) {
		atomic_store_explicit(&vm->slots.generation, gen, memory_order_release);
		return;
	}
	struct smmu_zap_report rep = { 0 };
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	fast_zap_bump_locked(vm);
	vm->mmio_stat.wrap_zaps++;
	vm->mmio_gen_floor = mmio_generation(vm, gen);
	atomic_store_explicit(&vm->slots.generation, gen, memory_order_release);
	kvm_zap_obsolete_pages(vm, &rep);
	vm_unlock(vm);
}

SMMU_API int smmu_vm_get_mmio_counters(const smmu_vm *vm, struct smmu_mmio_counters *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->mmio_stat;
	out->sptes_now = __atomic_load_n(&vm->mmio_sptes, __ATOMIC_RELAXED);
	out->memslots_generation = atomic_load_explicit(&vm->slots.generation, memory_order_acquire);
	out->mmio_generation = mmio_generation(vm, out->memslots_generation);
	return 0;
}

SMMU_API int smmu_vm_set_memslots_generation(smmu_vm *vm, uint64_t gen)
{
	if (!vm || (gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS) || gen % vm->rules->memslots_gen_step)
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	int r = vm->n_used_mmu_pages || !list_empty(&vm->active_mmu_pages) ? -EBUSY : 0;
	if (!r) {
		atomic_store_explicit(&vm->slots.generation, gen, memory_order_release);
		vm->mmio_gen_floor = mmio_generation(vm, gen);
	}
	vm_unlock(vm);
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}
