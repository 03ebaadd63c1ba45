/*
 * MMIO sptes and the memslot generation, both eras: a fault on a gfn in no slot installs an MMIO
 * spte carrying the MMIO generation (mark_mmio_spte, pf_mmio_spte_created); the next access
 * through it is answered without a page fault (handle_mmio_page_fault); a memslot update makes it
 * stale and the access faults again; the 19-bit generation's wrap zaps every page
 * (kvm_mmu_invalidate_mmio_sptes); and the audit reports an MMIO spte that is wrong.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "mmu.h"

#define POOL_GFN 4000u
#define GVA 0x40000000ull
#define GVA_RO 0x80000000ull
#define HOLE_GFN (1ull << 20) /* in no slot */
#define GEN_SPAN (1ull << 19)  /* MMIO_SPTE_GEN_MASK + 1 */

static const enum smmu_profile eras[2] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

static struct smmu_mmio_counters mc(smmu_vm *vm)
{
	struct smmu_mmio_counters c;
	assert_int_equal(smmu_vm_get_mmio_counters(vm, &c), 0);
	return c;
}

static struct smmu_vm_counters vc(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

/* A shadow guest (or a direct-mode VM) whose address @return faults on HOLE_GFN; in shadow
 * mode GVA_RO maps HOLE_GFN + 1 read-only. */
static smmu_gva_t guest_init(struct tl_guest *g, enum smmu_profile profile, enum smmu_mmu_mode mode)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.profile = profile;
	cfg.mode = mode;
	tl_guest_init_cfg(g, &cfg, 4096, POOL_GFN, 64);
	if (mode == SMMU_MODE_DIRECT)
		return HOLE_GFN << SMMU_PAGE_SHIFT;
	assert_int_equal(smmu_gas_map(g->gas, GVA, HOLE_GFN, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	assert_int_equal(smmu_gas_map(g->gas, GVA_RO, HOLE_GFN + 1, SMMU_LEVEL_4K, SMMU_PROT_USER), 0);
	return GVA;
}

/* guest_init in shadow mode, then the first fault on the hole: one MMIO spte. */
static smmu_gva_t guest_with_mmio(struct tl_guest *g, enum smmu_profile profile)
{
	smmu_gva_t hole = guest_init(g, profile, SMMU_MODE_SHADOW);
	assert_int_equal(smmu_vcpu_fault(g->vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
	return hole;
}

/* The level-1 spte the vCPU's root reaches for @addr, or NULL. */
static uint64_t *leaf_sptep(smmu_vcpu *v, uint64_t addr)
{
	uint64_t *table = v->root ? v->root->spt : NULL;
	for (int level = PT64_ROOT_LEVEL; table && level > SMMU_LEVEL_4K; level--) {
		uint64_t spte = table[PT64_INDEX(addr, level)];
		table = is_shadow_present_pte(spte) && !is_large_pte(spte) ? spte_to_child_spt(spte) : NULL;
	}
	return table ? &table[PT64_INDEX(addr, SMMU_LEVEL_4K)] : NULL;
}

/* A fault on a gfn in no slot leaves an MMIO spte with the current MMIO generation, the guest's
 * write and user rights and the gfn; no present leaf. The generation a new VM reaches after its
 * first slot: 3.11 starts 150 short of the wrap (MMIO_MAX_GEN - 150) and adds 1 a publication,
 * today starts at 0 and adds 2. */
static void test_spte_created_with_generation(void **state)
{
	(void)state;
	const uint64_t want_gen[2] = { GEN_SPAN - 1 - 150 + 1, 2 };
	for (int e = 0; e < 2; e++) {
		for (int m = 0; m < 2; m++) {
			struct tl_guest g;
			smmu_gva_t hole = guest_init(&g, eras[e], m ? SMMU_MODE_DIRECT : SMMU_MODE_SHADOW);
			struct smmu_fault_info fi;
			assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
			assert_int_equal(fi.gfn, HOLE_GFN);
			struct smmu_mmio_counters c = mc(g.vm);
			assert_int_equal(c.sptes_created, 1);
			assert_int_equal(c.sptes_now, 1);
			assert_int_equal(c.fast_hits, 0);
			assert_int_equal(c.mmio_generation, want_gen[e]);
			uint64_t *sptep = leaf_sptep(g.vcpu, hole);
			assert_non_null(sptep);
			assert_true(is_mmio_spte(*sptep));
			assert_false(is_shadow_present_pte(*sptep));
			assert_int_equal(get_mmio_spte_generation(*sptep), c.mmio_generation);
			assert_int_equal(get_mmio_spte_gfn(*sptep), HOLE_GFN);
			assert_int_equal(get_mmio_spte_access(*sptep), SMMU_ACC_WRITE | SMMU_ACC_USER);
			struct smmu_translation t;
			assert_int_equal(smmu_vcpu_translate(g.vcpu, hole, SMMU_ACC_USER, &t), -EFAULT);
			/* today RET_PF_EMULATE, not fixed; 3.11 counts every fault that reached the leaf */
			assert_int_equal(vc(g.vm).faults_fixed, eras[e] == SMMU_PROFILE_LINUX_3_11);
			tl_assert_audit_clean(g.vm);
			tl_guest_fini(&g);
		}
	}
}

/* The next accesses through a current MMIO spte take no page fault: no fault takes the lock, no
 * page or spte is made, the guest's tables are not walked. An access the spte's rights do not
 * allow goes to the page fault, whose walk reports the guest's fault. */
static void test_fast_path_on_reuse(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_with_mmio(&g, eras[e]);
		struct smmu_vm_counters v0 = vc(g.vm);
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
		assert_int_equal(fi.gfn, HOLE_GFN);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole + 8, SMMU_ACC_WRITE | SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		uint64_t buf = 0;
		assert_int_equal(smmu_vcpu_read(g.vcpu, hole, &buf, sizeof(buf)), -EFAULT); /* emulated MMIO */
		struct smmu_vm_counters v1 = vc(g.vm);
		struct smmu_mmio_counters c = mc(g.vm);
		assert_int_equal(c.fast_hits, 3);
		assert_int_equal(c.sptes_created, 1);
		assert_int_equal(c.stale_hits, 0);
		assert_int_equal(v1.faults, v0.faults);
		assert_int_equal(v1.pages_created, v0.pages_created);

		/* Read-only in the guest: the MMIO spte grants user only; a write is the guest's #PF. */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA_RO, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		assert_int_equal(get_mmio_spte_access(*leaf_sptep(g.vcpu, GVA_RO)), SMMU_ACC_USER);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA_RO, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi), SMMU_FAULT_GUEST_PF);
		assert_int_equal(fi.pf_reason, SMMU_PF_WRITE_PROTECTED);
		c = mc(g.vm);
		assert_int_equal(c.fast_hits, 3);
		assert_int_equal(c.sptes_created, 2);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* Any publication of the slot array moves the generation: after an unrelated slot comes or goes
 * the MMIO spte is stale, the access faults again and marks it anew; a slot over the gfn then
 * makes the fault map its memory. 3.11 adds 1 a publication, today 2 (a delete publishes twice:
 * the slot marked invalid, then removed). */
static void test_stale_after_memslot_change(void **state)
{
	(void)state;
	const uint64_t step[2] = { 1, 2 };
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_with_mmio(&g, eras[e]);
		uint64_t gen0 = mc(g.vm).memslots_generation;

		assert_int_equal(smmu_memslot_create(g.vm, 2, 1ull << 21, 16, 0), 0);
		assert_int_equal(mc(g.vm).memslots_generation, gen0 + step[e]);
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
		assert_int_equal(fi.pages_created, 0); /* the path is there: only the leaf is marked */
		struct smmu_mmio_counters c = mc(g.vm);
		assert_int_equal(c.stale_hits, 1);
		assert_int_equal(c.sptes_created, 2);
		assert_int_equal(get_mmio_spte_generation(*leaf_sptep(g.vcpu, hole)), c.mmio_generation);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		assert_int_equal(mc(g.vm).fast_hits, 1);

		assert_int_equal(smmu_memslot_delete(g.vm, 2), 0);
		assert_int_equal(mc(g.vm).memslots_generation, gen0 + 3 * step[e]);
		/* The delete's fast zap made every page obsolete: the vCPU reloads, builds anew. */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		assert_int_equal(mc(g.vm).sptes_created, 3);
		tl_assert_audit_clean(g.vm);

		/* A slot over the gfn: the MMIO spte is stale, the fault maps the slot's page. */
		assert_int_equal(smmu_memslot_create(g.vm, 3, HOLE_GFN, 16, 0), 0);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, &fi), SMMU_FAULT_MAPPED);
		c = mc(g.vm);
		assert_int_equal(c.stale_hits, 2);
		assert_int_equal(c.sptes_created, 3);
		assert_true(is_shadow_present_pte(*leaf_sptep(g.vcpu, hole)));
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(g.vcpu, hole, SMMU_ACC_USER, &t), 0);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* The 19-bit MMIO generation wraps: every page is zapped (fast zap: a new mmu_valid_gen, the
 * obsolete pages drained), so no old MMIO spte can match a generation again. Both eras start
 * two updates short of their wrap; today's zaps when the generation's low bits (address-space
 * bit aside) are 0, at that publication only; 3.11's when the MMIO generation is MMIO_MAX_GEN - 1
 * or more, at each change's commit: at MAX - 1 and again at MAX. */
static void test_wraparound_zaps_all(void **state)
{
	(void)state;
	const uint64_t start[2] = { 147, GEN_SPAN - 4 }; /* MMIO generation 2^19 - 4 in both */
	const uint64_t zaps_after_third[2] = { 2, 1 };
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_init(&g, eras[e], SMMU_MODE_SHADOW);
		assert_int_equal(smmu_vm_set_memslots_generation(g.vm, start[e]), 0);
		assert_int_equal(mc(g.vm).mmio_generation, GEN_SPAN - 4);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		/* Generations are set before the first page only. */
		assert_int_equal(smmu_vm_set_memslots_generation(g.vm, 0), -EBUSY);

		assert_int_equal(smmu_memslot_create(g.vm, 2, 1ull << 21, 16, 0), 0);
		assert_int_equal(mc(g.vm).wrap_zaps, 0);
		uint64_t gen0 = vc(g.vm).mmu_valid_gen, zapped0 = vc(g.vm).pages_zapped;
		assert_int_equal(smmu_memslot_set_flags(g.vm, 2, SMMU_MEM_LOG_DIRTY_PAGES), 0);
		struct smmu_mmio_counters c = mc(g.vm);
		assert_int_equal(c.wrap_zaps, 1);
		assert_int_equal(c.sptes_now, 0); /* the MMIO spte went with its page */
		struct smmu_vm_counters v = vc(g.vm);
		assert_int_equal(v.mmu_valid_gen, gen0 + 1);
		assert_true(v.pages_zapped > zapped0);
		assert_int_equal(v.indirect_shadow_pages, 0);
		tl_assert_audit_clean(g.vm);

		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		assert_int_equal(mc(g.vm).sptes_now, 1);
		assert_int_equal(smmu_memslot_set_flags(g.vm, 2, 0), 0);
		assert_int_equal(mc(g.vm).wrap_zaps, zaps_after_third[e]);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* 3.11's own wrap test: a new VM is 150 publications from its first wrap zap (at MMIO_MAX_GEN
 * - 1: the 149th). Slot 0's creation was the first; flag changes of an empty slot do the rest. */
static void test_wraparound_311_from_creation(void **state)
{
	(void)state;
	struct tl_guest g;
	smmu_gva_t hole = guest_init(&g, SMMU_PROFILE_LINUX_3_11, SMMU_MODE_SHADOW);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
	assert_int_equal(smmu_memslot_create(g.vm, 2, 1ull << 21, 16, 0), 0);
	for (int i = 0; i < 200 && !mc(g.vm).wrap_zaps; i++) {
		uint64_t n = mc(g.vm).memslots_generation;
		assert_true(n < 149);
		assert_int_equal(smmu_memslot_set_flags(g.vm, 2, (n & 1) ? SMMU_MEM_LOG_DIRTY_PAGES : 0), 0);
	}
	assert_int_equal(mc(g.vm).wrap_zaps, 1);
	assert_int_equal(mc(g.vm).memslots_generation, 149);
	assert_int_equal(mc(g.vm).mmio_generation, GEN_SPAN - 2);
	assert_int_equal(mc(g.vm).sptes_now, 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* An unsync page's MMIO spte is kept through the sync (marked again with the current
 * generation) while its guest pte still maps that gfn, and dropped when the pte maps another
 * (sync_mmio_spte); a trapped guest write to the pte drops it too (kvm_mmu_pte_write). 3.11
 * counts a kept one present (rules->sync_mmio_counts_present): a page left with no spte at all
 * is zapped there, one with an MMIO spte is not. */
static void sync_page_locked(struct tl_guest *g, struct smmu_sp *sp)
{
	struct list_node invalid;
	list_init(&invalid);
	vm_lock(g->vm, SMMU_SITE_USER0);
	kvm_sync_page(g->vcpu, sp, &invalid);
	kvm_mmu_commit_zap_page(g->vm, &invalid);
	vm_unlock(g->vm);
}

static void test_sync_and_pte_write(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_with_mmio(&g, eras[e]);
		smmu_vm *vm = g.vm;
		uint64_t *sptep = leaf_sptep(g.vcpu, hole);
		struct smmu_sp *sp = page_header(sptep);
		/* Another slot: the spte is stale; the sync marks it with the current generation. */
		assert_int_equal(smmu_memslot_create(vm, 2, 1ull << 21, 16, 0), 0);
		uint64_t zapped = vc(vm).pages_zapped;
		sync_page_locked(&g, sp);
		/* 3.11 counts the kept MMIO spte present: the page is not empty, not zapped. */
		assert_int_equal(vc(vm).pages_zapped, zapped);
		assert_true(is_mmio_spte(*sptep));
		assert_int_equal(get_mmio_spte_generation(*sptep), mc(vm).mmio_generation);
		assert_int_equal(mc(vm).sptes_created, 1); /* a sync is no fault */
		tl_assert_audit_clean(vm);
		/* The guest's pte maps another gfn now (a store the MMU does not see, as an unsync
		 * page's table takes them): the sync drops the spte. */
		uint64_t *gpte = (uint64_t *)smmu_gfn_to_hva(vm, sp->gfn) + PT64_INDEX(hole, SMMU_LEVEL_4K);
		uint64_t was = *gpte;
		*gpte = (was & ~SMMU_PTE_ADDR_MASK) | ((HOLE_GFN + 3) << SMMU_PAGE_SHIFT);
		sync_page_locked(&g, sp);
		/* Nothing left: 3.11 zaps the empty page (FNAME(sync_page) returned 0), today's keeps it. */
		assert_int_equal(vc(vm).pages_zapped, zapped + (eras[e] == SMMU_PROFILE_LINUX_3_11));
		if (eras[e] == SMMU_PROFILE_LINUX_TODAY)
			assert_int_equal(*sptep, 0);
		assert_int_equal(mc(vm).sptes_now, 0);
		*gpte = was;
		tl_assert_audit_clean(vm);
		/* Again, then a trapped write of the pte: kvm_mmu_pte_write clears it. */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		assert_int_equal(mc(vm).sptes_now, 1);
		assert_int_equal(smmu_gas_unmap(g.gas, GVA), 0);
		assert_int_equal(mc(vm).sptes_now, 0);
		tl_assert_audit_clean(vm);
		tl_guest_fini(&g);
	}
}

/* The audit on purpose-broken MMIO sptes: one of the current generation over a slot's gfn (a
 * publication that did not move the generation), one from a generation the last wrap should
 * have zapped, a page's MMIO count off by one. Each is reported, and clean once repaired. */
static void test_audit_catches_broken_mmio(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_with_mmio(&g, eras[e]);
		smmu_vm *vm = g.vm;
		uint64_t *sptep = leaf_sptep(g.vcpu, hole), good = *sptep;
		tl_assert_audit_clean(vm);

		/* A slot over the gfn whose publication left the generation as it was. */
		assert_int_equal(smmu_memslot_create(vm, 3, HOLE_GFN, 16, 0), 0);
		uint64_t cur = mc(vm).mmio_generation;
		*sptep = make_mmio_spte(cur, HOLE_GFN, SMMU_ACC_WRITE | SMMU_ACC_USER);
		struct smmu_violation v;
		assert_int_equal(tl_audit_count(vm, SMMU_INV_RMAP, &v), 1);
		assert_non_null(strstr(v.what, "current generation maps a gfn of a memslot"));
		assert_int_equal(v.gfn, HOLE_GFN);
		*sptep = good; /* stale: allowed */
		tl_assert_audit_clean(vm);

		/* A generation newer than the current one: what a wrap without the zap leaves. */
		*sptep = make_mmio_spte(cur + 5, HOLE_GFN, SMMU_ACC_WRITE | SMMU_ACC_USER);
		assert_int_equal(tl_audit_count(vm, SMMU_INV_RMAP, &v), 1);
		assert_non_null(strstr(v.what, "generation is not between"));
		/* More rights than the page's role, and another gfn. */
		*sptep = make_mmio_spte(cur - 1, HOLE_GFN + 7, SMMU_ACC_WRITE | SMMU_ACC_USER);
		assert_int_equal(tl_audit_count(vm, SMMU_INV_RMAP, &v), 1);
		assert_non_null(strstr(v.what, "another gfn"));
		*sptep = good;

		page_header(sptep)->n_mmio++;
		assert_int_equal(tl_audit_count(vm, SMMU_INV_PAGE_LISTS, &v), 1);
		assert_non_null(strstr(v.what, "n_mmio"));
		page_header(sptep)->n_mmio--;
		tl_assert_audit_clean(vm);
		tl_guest_fini(&g);
	}
}

/* 3.11 takes a gfn of a slot being deleted for MMIO (KVM_PFN_NOSLOT): a write fault over the
 * present read-only leaf there drops it (mmu_set_spte: another pfn) for an MMIO spte; the
 * delete's final publication makes that stale. Today's fault retries instead. */
static void test_invalid_slot_leaf_becomes_mmio(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		guest_init(&g, eras[e], SMMU_MODE_SHADOW);
		smmu_vm *vm = g.vm;
		assert_int_equal(smmu_memslot_create(vm, 3, HOLE_GFN + 16, 16, 0), 0);
		const smmu_gva_t gva = GVA + 0x200000; /* its own page table */
		assert_int_equal(smmu_gas_map(g.gas, gva, HOLE_GFN + 16, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
		uint64_t *sptep = leaf_sptep(g.vcpu, gva);
		assert_true(is_shadow_present_pte(*sptep) && !is_writable_pte(*sptep)); /* host page not written */
		/* The delete's first publication, as smmu_memslot_delete makes it. */
		vm->slots.by_id[3]->flags |= KVM_MEMSLOT_INVALID;
		memslots_gen_publish(&vm->slots, vm->rules);
		memslots_updated(vm, false);
		int r = smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_WRITE | SMMU_ACC_USER, NULL);
		if (eras[e] == SMMU_PROFILE_LINUX_3_11) {
			assert_int_equal(r, SMMU_FAULT_MMIO);
			assert_true(is_mmio_spte(*sptep));
			assert_int_equal(get_mmio_spte_generation(*sptep), mc(vm).mmio_generation);
			tl_assert_audit_clean(vm); /* the slot is invalid: a current MMIO spte may map it */
		} else {
			assert_int_equal(r, SMMU_FAULT_RETRY);
			assert_true(is_shadow_present_pte(*sptep)); /* until the delete's flush */
		}
		vm->slots.by_id[3]->flags &= ~KVM_MEMSLOT_INVALID;
		assert_int_equal(smmu_memslot_delete(vm, 3), 0);
		tl_assert_audit_clean(vm);
		tl_guest_fini(&g);
	}
}

/* An MMU-notifier invalidation in progress: 3.11 retries every fault, today's only one on a gfn
 * in a slot (is_page_fault_stale): the MMIO spte is made at once. */
static void test_noslot_fault_and_notifier(void **state)
{
	(void)state;
	const int want[2] = { SMMU_FAULT_RETRY, SMMU_FAULT_MMIO };
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		smmu_gva_t hole = guest_init(&g, eras[e], SMMU_MODE_SHADOW);
		g.vm->mmu_notifier_count = 1; /* a range_start in progress on another thread */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), want[e]);
		assert_int_equal(mc(g.vm).sptes_created, (uint64_t)(want[e] == SMMU_FAULT_MMIO));
		g.vm->mmu_notifier_count = 0;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, NULL), SMMU_FAULT_MMIO);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* A vCPU thread reads a gpa in no slot while the main thread creates and deletes another slot
 * (each publication moves the generation under the reader: in-progress bit, stale sptes, the
 * delete's fast zap), every operation audited. Every read stays MMIO. */
struct reader {
	smmu_vcpu *v;
	atomic_bool stop;
	atomic_long reads, bad;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t buf;
	while (!atomic_load(&rd->stop)) {
		if (smmu_vcpu_read(rd->v, HOLE_GFN << SMMU_PAGE_SHIFT, &buf, sizeof(buf)) != -EFAULT)
			atomic_fetch_add(&rd->bad, 1);
		atomic_fetch_add(&rd->reads, 1);
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct smmu_vm_config cfg;
		smmu_vm_config_default(&cfg);
		cfg.profile = eras[e];
		cfg.mode = SMMU_MODE_DIRECT;
		cfg.audit_every_op = true;
		smmu_vm *vm = tl_vm_cfg(&cfg);
		assert_int_equal(smmu_memslot_create(vm, 0, 0, 1024, 0), 0);
		struct reader rd = { 0 };
		assert_int_equal(smmu_vcpu_create(vm, &rd.v), 0);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
		for (int i = 0; i < 60; i++) {
			long r0 = atomic_load(&rd.reads);
			while (atomic_load(&rd.reads) == r0) /* a read between any two updates */
				sched_yield();
			assert_int_equal(smmu_memslot_create(vm, 2, 1ull << 21, 16, 0), 0);
			assert_int_equal(smmu_memslot_delete(vm, 2), 0);
		}
		atomic_store(&rd.stop, true);
		pthread_join(t, NULL);
		assert_int_equal(atomic_load(&rd.bad), 0);
		assert_true(mc(vm).sptes_created >= 1);
		tl_assert_audit_clean(vm);
		smmu_vcpu_destroy(rd.v);
		smmu_vm_destroy(vm);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spte_created_with_generation),
		cmocka_unit_test(test_fast_path_on_reuse),
		cmocka_unit_test(test_stale_after_memslot_change),
		cmocka_unit_test(test_wraparound_zaps_all),
		cmocka_unit_test(test_wraparound_311_from_creation),
		cmocka_unit_test(test_sync_and_pte_write),
		cmocka_unit_test(test_audit_catches_broken_mmio),
		cmocka_unit_test(test_invalid_slot_leaf_becomes_mmio),
		cmocka_unit_test(test_noslot_fault_and_notifier),
		cmocka_unit_test(test_concurrent_updates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
