/*
 * The roots cache (roots.c): the guest's MOV CR3 (smmu_vcpu_load_cr3) keeps up to 3 previous
 * roots in the today profile (kvm_mmu_new_pgd → fast_pgd_switch) and none in 3.11's
 * (kvm_mmu_new_cr3 frees the root); KVM_SET_SREGS (smmu_vcpu_set_cr3) frees them all; after a
 * fast zap today's vCPU frees only the obsolete roots, current and cached
 * (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS), 3.11's every root (KVM_REQ_MMU_RELOAD → kvm_mmu_unload).
 * And the audit's root counts, broken on purpose.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <string.h>

#include "mmu.h"

#define NAS 5                        /* address spaces: one more than the current + 3 cached */
#define POOL_GFN 16
#define POOL_PAGES 128
#define DATA_GVA 0x40000000ull
#define DATA_GFN 1000
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

struct fix {
	smmu_vm *vm;
	smmu_gas *as[NAS];
	smmu_vcpu *v;
};

static void setup(struct fix *f, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	f->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(f->vm, 0, 0, 4096, 0), 0);
	for (int i = 0; i < NAS; i++) {
		assert_int_equal(smmu_gas_create(f->vm, POOL_GFN + (smmu_gfn_t)i * POOL_PAGES, POOL_PAGES, &f->as[i]), 0);
		assert_int_equal(smmu_gas_map(f->as[i], DATA_GVA, DATA_GFN + (smmu_gfn_t)i, SMMU_LEVEL_4K, RW_USER), 0);
	}
	assert_int_equal(smmu_vcpu_create(f->vm, &f->v), 0);
}

static void teardown(struct fix *f)
{
	smmu_vcpu_destroy(f->v);
	for (int i = 0; i < NAS; i++)
		smmu_gas_destroy(f->as[i]);
	smmu_vm_destroy(f->vm);
}

static smmu_gpa_t cr3(const struct fix *f, int i) { return smmu_gas_cr3(f->as[i]); }

/* The guest switches to address space @i itself and reads its data page. */
static void switch_and_read(struct fix *f, int i)
{
	assert_int_equal(smmu_vcpu_load_cr3(f->v, cr3(f, i)), 0);
	uint64_t val;
	assert_int_equal(smmu_vcpu_read(f->v, DATA_GVA, &val, sizeof(val)), 0);
}

/* The root page of address space @i (valid, current generation), or NULL. */
static struct smmu_sp *root_of(const struct fix *f, int i)
{
	smmu_gfn_t gfn = cr3(f, i) >> SMMU_PAGE_SHIFT;
	for (struct list_node *n = f->vm->active_mmu_pages.next; n != &f->vm->active_mmu_pages; n = n->next) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		if (sp->gfn == gfn && sp->role.level == PT64_ROOT_LEVEL && !sp->role.invalid &&
		    !is_obsolete_sp(f->vm, sp))
			return sp;
	}
	return NULL;
}

static struct smmu_vcpu_counters vcpu_ctr(const struct fix *f)
{
	struct smmu_vcpu_counters c;
	assert_int_equal(smmu_vcpu_get_counters(f->v, &c), 0);
	return c;
}

static struct smmu_vm_counters vm_ctr(const struct fix *f)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(f->vm, &c), 0);
	return c;
}

/* Today: switching back to a cached CR3 makes its root current again at the switch itself: no
 * root load, no page created; while cached it kept its root_count. */
static void test_switch_back_reuses_cached_root(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	switch_and_read(&f, 0);
	struct smmu_sp *r0 = root_of(&f, 0);
	assert_non_null(r0);
	switch_and_read(&f, 1);
	assert_int_equal(r0->root_count, 1); /* held by the cache */
	assert_ptr_equal(f.v->prev_roots[0].sp, r0);
	struct smmu_vcpu_counters c0 = vcpu_ctr(&f);
	struct smmu_vm_counters m0 = vm_ctr(&f);
	assert_int_equal(smmu_vcpu_load_cr3(f.v, cr3(&f, 0)), 0);
	assert_ptr_equal(f.v->root, r0); /* current at once, before any entry */
	assert_ptr_equal(f.v->prev_roots[0].sp, root_of(&f, 1));
	uint64_t val;
	assert_int_equal(smmu_vcpu_read(f.v, DATA_GVA, &val, sizeof(val)), 0);
	assert_int_equal(vcpu_ctr(&f).roots_loaded, c0.roots_loaded);
	assert_int_equal(vm_ctr(&f).pages_created, m0.pages_created);
	assert_int_equal(vcpu_ctr(&f).tlb_flushes, c0.tlb_flushes + 1); /* kvm_invalidate_pcid */
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* 3.11: no cache; the root is dropped at the switch and looked up again at the next entry. */
static void test_3_11_switch_drops_root(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_3_11);
	switch_and_read(&f, 0);
	struct smmu_sp *r0 = root_of(&f, 0);
	switch_and_read(&f, 1);
	assert_int_equal(r0->root_count, 0);
	assert_null(f.v->prev_roots[0].sp);
	struct smmu_vcpu_counters c0 = vcpu_ctr(&f);
	assert_int_equal(smmu_vcpu_load_cr3(f.v, cr3(&f, 0)), 0);
	assert_null(f.v->root);
	uint64_t val;
	assert_int_equal(smmu_vcpu_read(f.v, DATA_GVA, &val, sizeof(val)), 0);
	assert_int_equal(vcpu_ctr(&f).roots_loaded, c0.roots_loaded + 1);
	assert_ptr_equal(f.v->root, r0); /* the page was still in the hash */
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* Loading the CR3 the vCPU has keeps its root (both eras). */
static void test_same_cr3_keeps_root(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct fix f;
		setup(&f, e ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		switch_and_read(&f, 0);
		struct smmu_sp *r0 = f.v->root;
		assert_non_null(r0);
		assert_int_equal(smmu_vcpu_load_cr3(f.v, cr3(&f, 0)), 0);
		assert_ptr_equal(f.v->root, r0);
		assert_int_equal(r0->root_count, 1);
		tl_assert_audit_clean(f.vm);
		teardown(&f);
	}
}

/* Today: the current root and 3 cached ones; a fifth address space evicts the least recently
 * used root (root_count back to 0), and switching to it then builds its root again. */
static void test_lru_root_evicted(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	struct smmu_sp *r[NAS];
	for (int i = 0; i < NAS - 1; i++) {
		switch_and_read(&f, i);
		r[i] = root_of(&f, i);
	}
	for (int i = 0; i < NAS - 1; i++)
		assert_int_equal(r[i]->root_count, 1);
	assert_ptr_equal(f.v->prev_roots[0].sp, r[2]);
	assert_ptr_equal(f.v->prev_roots[2].sp, r[0]);
	tl_assert_audit_clean(f.vm);
	/* Address space 1 was used more recently than 0: 0 is the one to go. */
	switch_and_read(&f, 1);
	switch_and_read(&f, 4);
	assert_int_equal(r[0]->root_count, 0);
	for (int i = 1; i < NAS - 1; i++)
		assert_int_equal(r[i]->root_count, 1);
	assert_ptr_equal(f.v->prev_roots[0].sp, r[1]);
	assert_ptr_equal(f.v->prev_roots[1].sp, r[3]);
	assert_ptr_equal(f.v->prev_roots[2].sp, r[2]);
	struct smmu_vcpu_counters c0 = vcpu_ctr(&f);
	switch_and_read(&f, 0);
	assert_int_equal(vcpu_ctr(&f).roots_loaded, c0.roots_loaded + 1); /* a miss */
	assert_int_equal(r[2]->root_count, 0);                              /* the next LRU went */
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* Today: a cached root is spared by page-budget recycling (a root in use), so switching back
 * creates no root page; 3.11 dropped it, recycling zaps it, and the switch back creates it. */
static void test_cached_root_survives_recycling(void **state)
{
	(void)state;
	uint64_t created[2];
	for (int e = 0; e < 2; e++) {
		struct fix f;
		setup(&f, e ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		assert_int_equal(smmu_vm_set_max_mmu_pages(f.vm, 64), 0);
		switch_and_read(&f, 0);
		/* Address space 1 maps 80 pages, each in its own 2 MiB region: a level-1 page each,
		 * more than the budget holds, so the oldest pages (address space 0's) are reclaimed. */
		for (uint64_t k = 1; k <= 80; k++)
			assert_int_equal(smmu_gas_map(f.as[1], DATA_GVA + (k << 21), DATA_GFN + 8 + k, SMMU_LEVEL_4K, RW_USER),
					 0);
		switch_and_read(&f, 1);
		for (uint64_t k = 1; k <= 80; k++) {
			uint64_t val;
			assert_int_equal(smmu_vcpu_read(f.v, DATA_GVA + (k << 21), &val, sizeof(val)), 0);
		}
		assert_true(vm_ctr(&f).pages_recycled > 0);
		uint64_t c0 = vm_ctr(&f).pages_created;
		assert_int_equal(smmu_vcpu_load_cr3(f.v, cr3(&f, 0)), 0);
		assert_int_equal(smmu_vcpu_mmu_reload(f.v), 0);
		created[e] = vm_ctr(&f).pages_created - c0;
		tl_assert_audit_clean(f.vm);
		teardown(&f);
	}
	assert_int_equal(created[1], 0); /* today: the cached root, current again */
	assert_int_equal(created[0], 1); /* 3.11: a new root page */
}

/* KVM_SET_SREGS (smmu_vcpu_set_cr3) frees every root, the cached ones too. */
static void test_set_sregs_frees_all(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	struct smmu_sp *r[3];
	for (int i = 0; i < 3; i++) {
		switch_and_read(&f, i);
		r[i] = root_of(&f, i);
	}
	assert_int_equal(smmu_vcpu_set_cr3(f.v, cr3(&f, 0)), 0);
	assert_null(f.v->root);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i]->root_count, 0);
		assert_null(f.v->prev_roots[i].sp);
	}
	tl_assert_audit_clean(f.vm);
	/* ... and the switch back finds no cached root: a load. */
	struct smmu_vcpu_counters c0 = vcpu_ctr(&f);
	switch_and_read(&f, 1);
	assert_int_equal(vcpu_ctr(&f).roots_loaded, c0.roots_loaded + 1);
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* A fast zap with cached roots. Both eras free every root at the vCPU's next entry here (all
 * are obsolete); today the cached ones too, which waited, zapped, on the active list. */
static void test_fast_zap_frees_obsolete_roots(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct fix f;
		setup(&f, e ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		for (int i = 0; i < 3; i++)
			switch_and_read(&f, i);
		assert_int_equal(smmu_fast_zap(f.vm, NULL), 0);
		/* The roots still held (today 3, 3.11 the current one) stay, zapped, until the entry. */
		assert_int_equal(vm_ctr(&f).n_used_mmu_pages, e ? 3 : 1);
		tl_assert_audit_clean(f.vm);
		assert_int_equal(smmu_vcpu_enter(f.v), 0);
		assert_int_equal(vm_ctr(&f).n_used_mmu_pages, 0);
		assert_null(f.v->root);
		for (int i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++)
			assert_null(f.v->prev_roots[i].sp);
		tl_assert_audit_clean(f.vm);
		/* The switch back finds no usable root: a new one. */
		struct smmu_vcpu_counters c0 = vcpu_ctr(&f);
		switch_and_read(&f, 0);
		assert_int_equal(vcpu_ctr(&f).roots_loaded, c0.roots_loaded + 1);
		tl_assert_audit_clean(f.vm);
		teardown(&f);
	}
}

/* The request a zapped root in use sends: today's vCPU frees only obsolete roots, so another
 * vCPU's current and cached roots stay; 3.11's KVM_REQ_MMU_RELOAD drops its root anyway. */
static void test_root_zap_frees_only_obsolete(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct fix f;
		setup(&f, e ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		switch_and_read(&f, 0);
		switch_and_read(&f, 1); /* today: 0 cached */
		smmu_vcpu *b;
		assert_int_equal(smmu_vcpu_create(f.vm, &b), 0);
		assert_int_equal(smmu_vcpu_load_cr3(b, cr3(&f, 2)), 0);
		assert_int_equal(smmu_vcpu_mmu_reload(b), 0);
		struct smmu_sp *r1 = f.v->root, *r2 = b->root;
		assert_non_null(r2);
		struct list_node invalid_list;
		list_init(&invalid_list);
		smmu_mmu_lock(f.vm, SMMU_SITE_USER0);
		kvm_mmu_prepare_zap_page(f.vm, r2, &invalid_list); /* in use: stays, asks for reloads */
		kvm_mmu_commit_zap_page(f.vm, &invalid_list);
		smmu_mmu_unlock(f.vm);
		assert_int_equal(smmu_vcpu_enter(f.v), 0);
		assert_int_equal(smmu_vcpu_enter(b), 0);
		assert_null(b->root); /* its zapped root went in both eras */
		if (e) {
			assert_ptr_equal(f.v->root, r1);
			assert_ptr_equal(f.v->prev_roots[0].sp, root_of(&f, 0));
			assert_int_equal(r1->root_count, 1);
		} else {
			assert_null(f.v->root);
			assert_int_equal(r1->root_count, 0);
		}
		tl_assert_audit_clean(f.vm);
		smmu_vcpu_destroy(b);
		tl_assert_audit_clean(f.vm);
		teardown(&f);
	}
}

/* INVLPG reaches the cached roots too (kvm_mmu_invalidate_gva): an unsync page below a cached
 * root gets the guest's new pte. */
static void test_invlpg_syncs_cached_root(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	/* The data page's level-1 table of address space 0, mapped writable in address space 0 at
	 * PT_GVA, so that the guest's write unsyncs it instead of being trapped. */
	const smmu_gva_t pt_gva = DATA_GVA + (4ull << 20);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(f.vm, cr3(&f, 0), DATA_GVA, &w), 0);
	assert_int_equal(smmu_gas_map(f.as[0], pt_gva, w.table_gfn[0], SMMU_LEVEL_4K, RW_USER), 0);
	switch_and_read(&f, 0);
	uint64_t val;
	assert_int_equal(smmu_vcpu_read(f.v, pt_gva, &val, sizeof(val)), 0);
	/* The guest rewrites data's pte to map another frame. */
	uint64_t pte = ((uint64_t)(DATA_GFN + 100) << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE |
		       SMMU_PTE_USER | SMMU_PTE_ACCESSED | SMMU_PTE_DIRTY;
	assert_int_equal(smmu_vcpu_write(f.v, pt_gva + 8 * ((DATA_GVA >> 12) & 511), &pte, sizeof(pte)), 0);
	uint64_t unsync = 0;
	assert_int_equal(smmu_vm_get_mmu_unsync(f.vm, &unsync), 0);
	assert_int_equal(unsync, 1);
	switch_and_read(&f, 1); /* address space 0's root is cached now */
	struct smmu_sp *r0 = f.v->prev_roots[0].sp;
	assert_non_null(r0);
	/* The new frame is mapped by the host (as after a write), so FNAME(prefetch_gpte)'s atomic
	 * pfn lookup finds it. */
	char *h = smmu_gfn_to_hva(f.vm, DATA_GFN + 100);
	assert_int_equal(smmu_host_wrote(f.vm, h, h + SMMU_PAGE_SIZE), 0);
	assert_int_equal(smmu_vcpu_invlpg(f.v, DATA_GVA), 0);
	/* FNAME(invlpg) from the cached root updated the unsync page's spte to the new frame. */
	uint64_t *l4 = &r0->spt[PT64_INDEX(DATA_GVA, 4)];
	uint64_t *l3 = &((uint64_t *)spte_to_child_spt(*l4))[PT64_INDEX(DATA_GVA, 3)];
	uint64_t *l2 = &((uint64_t *)spte_to_child_spt(*l3))[PT64_INDEX(DATA_GVA, 2)];
	uint64_t leaf = ((uint64_t *)spte_to_child_spt(*l2))[PT64_INDEX(DATA_GVA, 1)];
	assert_true(is_shadow_present_pte(leaf));
	assert_int_equal(spte_to_pfn(leaf) << SMMU_PAGE_SHIFT,
			 (uintptr_t)smmu_gfn_to_hva(f.vm, DATA_GFN + 100));
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* The leaf spte for @gva under @root (present or not). */
static uint64_t leaf_under(const struct smmu_sp *root, smmu_gva_t gva)
{
	const uint64_t *table = root->spt;
	for (int level = PT64_ROOT_LEVEL; level > 1; level--) {
		uint64_t e = table[PT64_INDEX(gva, level)];
		if (!is_shadow_present_pte(e))
			return 0;
		table = spte_to_child_spt(e);
	}
	return table[PT64_INDEX(gva, 1)];
}

/* A cached root reused by MOV CR3 is synced at the next entry (KVM_REQ_MMU_SYNC →
 * kvm_mmu_sync_roots). 3.11 and 6.1 rebuild its unsync page's kept sptes as prefetches, without
 * the Accessed bit; 6.1's clearing is a remote flush of its own (mmu_spte_update), after the
 * one for the write protection; 3.11 flushes locally. Today (FNAME(sync_spte), 6.4 on) an spte
 * whose gpte gives the access it was made for is left alone: Accessed kept, no flush for it. */
static void test_reuse_syncs_cached_root(void **state)
{
	(void)state;
	static const struct {
		enum smmu_profile p;
		uint64_t flushes;
		bool accessed_kept;
	} eras[] = {
		{ SMMU_PROFILE_LINUX_3_11, 1, false }, /* the write protection */
		{ SMMU_PROFILE_LINUX_6_1, 2, false },  /* and the Accessed bits cleared */
		{ SMMU_PROFILE_LINUX_TODAY, 1, true },
	};
	for (size_t e = 0; e < sizeof(eras) / sizeof(eras[0]); e++) {
		struct fix f;
		setup(&f, eras[e].p);
		const smmu_gva_t pt_gva = DATA_GVA + (4ull << 20);
		struct smmu_guest_walk w;
		assert_int_equal(smmu_guest_walk(f.vm, cr3(&f, 0), DATA_GVA, &w), 0);
		assert_int_equal(smmu_gas_map(f.as[0], pt_gva, w.table_gfn[0], SMMU_LEVEL_4K, RW_USER), 0);
		switch_and_read(&f, 0);
		struct smmu_sp *r0 = f.v->root;
		assert_true(leaf_under(r0, DATA_GVA) & PT_ACCESSED_MASK);
		/* The guest writes another pte of the data page's table: the page goes unsync. */
		uint64_t pte = ((uint64_t)(DATA_GFN + 50) << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_USER;
		assert_int_equal(smmu_vcpu_write(f.v, pt_gva + 8 * 7, &pte, sizeof(pte)), 0);
		uint64_t unsync = 0;
		assert_int_equal(smmu_vm_get_mmu_unsync(f.vm, &unsync), 0);
		assert_int_equal(unsync, 1);
		switch_and_read(&f, 1);
		uint64_t c0 = vm_ctr(&f).remote_tlb_flushes;
		assert_int_equal(smmu_vcpu_load_cr3(f.v, cr3(&f, 0)), 0);
		assert_int_equal(smmu_vcpu_mmu_reload(f.v), 0);
		assert_int_equal(vm_ctr(&f).remote_tlb_flushes - c0, eras[e].flushes);
		assert_int_equal(smmu_vm_get_mmu_unsync(f.vm, &unsync), 0);
		assert_int_equal(unsync, 0);
		uint64_t leaf = leaf_under(f.v->root, DATA_GVA);
		assert_true(is_shadow_present_pte(leaf));
		assert_int_equal(!!(leaf & PT_ACCESSED_MASK), eras[e].accessed_kept);
		tl_assert_audit_clean(f.vm);
		teardown(&f);
	}
}

/* The audit's root counts, broken on purpose: a cached root's root_count off by one; a cached
 * root forgotten without its count dropped; a cached root in a profile that keeps none. */
static void test_audit_root_counts(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	switch_and_read(&f, 0);
	switch_and_read(&f, 1);
	struct smmu_sp *r0 = f.v->prev_roots[0].sp;
	assert_non_null(r0);
	tl_assert_audit_clean(f.vm);
	struct smmu_violation first;

	r0->root_count++;
	assert_int_equal(tl_audit_count(f.vm, SMMU_INV_PAGE_LISTS, &first), 1);
	assert_int_equal(first.expected, 1);
	assert_int_equal(first.found, 2);
	assert_int_equal(tl_audit_total(f.vm), 1);
	r0->root_count--;
	tl_assert_audit_clean(f.vm);

	f.v->prev_roots[0].sp = NULL; /* held no more, still counted */
	assert_int_equal(tl_audit_count(f.vm, SMMU_INV_PAGE_LISTS, &first), 1);
	assert_int_equal(first.expected, 0);
	assert_int_equal(first.found, 1);
	f.v->prev_roots[0].sp = r0;
	tl_assert_audit_clean(f.vm);

	/* A root held twice but counted once. */
	f.v->prev_roots[1] = f.v->prev_roots[0];
	assert_int_equal(tl_audit_count(f.vm, SMMU_INV_PAGE_LISTS, &first), 1);
	assert_int_equal(first.expected, 2);
	f.v->prev_roots[1] = (struct vcpu_root){ NULL, 0 };
	tl_assert_audit_clean(f.vm);

	/* The 3.11 profile keeps no cached root. */
	f.vm->rules = &smmu_rules_3_11;
	assert_int_equal(tl_audit_count(f.vm, SMMU_INV_PAGE_LISTS, &first), 1);
	f.vm->rules = &smmu_rules_today;
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

/* Today's kvm_mmu_new_pgd: a cached root reused by MOV CR3 is in use again, so its
 * write-flooding count restarts (__clear_sp_write_flooding_count); two trapped stores into the
 * cached root's table do not carry over to flood it on the next one. */
static void test_reuse_clears_flood_count(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	switch_and_read(&f, 0);
	switch_and_read(&f, 1);
	struct smmu_sp *root0 = root_of(&f, 0);
	assert_non_null(root0);
	assert_ptr_equal(f.v->prev_roots[0].sp, root0);
	uint64_t zero = 0;
	for (int i = 0; i < 2; i++) /* stores into an unused PML4 entry: trapped, counted */
		assert_int_equal(smmu_guest_write(f.vm, cr3(&f, 0) + 500 * 8, &zero, sizeof(zero)), 0);
	assert_int_equal(root0->write_flooding_count, 2);
	switch_and_read(&f, 0);
	assert_ptr_equal(f.v->root, root0); /* reused, not rebuilt */
	assert_int_equal(root0->write_flooding_count, 0);
	tl_assert_audit_clean(f.vm);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_switch_back_reuses_cached_root),
		cmocka_unit_test(test_3_11_switch_drops_root),
		cmocka_unit_test(test_same_cr3_keeps_root),
		cmocka_unit_test(test_lru_root_evicted),
		cmocka_unit_test(test_cached_root_survives_recycling),
		cmocka_unit_test(test_set_sregs_frees_all),
		cmocka_unit_test(test_fast_zap_frees_obsolete_roots),
		cmocka_unit_test(test_root_zap_frees_only_obsolete),
		cmocka_unit_test(test_invlpg_syncs_cached_root),
		cmocka_unit_test(test_reuse_syncs_cached_root),
		cmocka_unit_test(test_audit_root_counts),
		cmocka_unit_test(test_reuse_clears_flood_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
