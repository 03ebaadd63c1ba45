/*
 * The host's page size behind a slot (smmu_memslot_set_host_level): a leaf spte is never larger
 * than the host page (host_pfn_mapping_level), a THP cut in part by the MMU notifier is split and
 * maps 4 KiB from then on; and, with it, the era rule for turning dirty logging off (today's
 * kvm_mmu_zap_collapsible_sptes, none in 3.11).
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>

#define NPAGES 8192u          /* 32 MiB at gfn 0 */
#define POOL_GFN 16u          /* the guest's tables, in the first 2 MiB */
#define GVA 0x40000000ull
#define MIB2 (2ull << 20)
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define REGION(i) (512ull * (i)) /* first gfn of the i-th 2 MiB of the slot */

struct env {
	struct tl_guest g;
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *v;
};

static void env_init(struct env *e, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	tl_guest_init_cfg(&e->g, &cfg, NPAGES, POOL_GFN, 64);
	e->vm = e->g.vm;
	e->gas = e->g.gas;
	e->v = e->g.vcpu;
}

static void env_fini(struct env *e)
{
	tl_assert_audit_clean(e->vm);
	tl_guest_fini(&e->g);
}

/* Guest 2 MiB page @i: gva GVA + i * 2M → region i + 2 of the slot. */
static smmu_gva_t map_2m(struct env *e, int i)
{
	smmu_gva_t gva = GVA + (uint64_t)i * MIB2;
	assert_int_equal(smmu_gas_map(e->gas, gva, REGION(i + 2), SMMU_LEVEL_2M, RW_USER), 0);
	return gva;
}

/* Fault @gva in (it must map) and return the leaf level. */
static int fault_level(struct env *e, smmu_gva_t gva, uint32_t acc)
{
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(e->v, gva, acc | SMMU_ACC_USER, &fi), SMMU_FAULT_MAPPED);
	return fi.level;
}

/* The leaf level mapping @gva now, 0 when nothing maps it. */
static int mapped_level(struct env *e, smmu_gva_t gva)
{
	struct smmu_translation t;
	return smmu_vcpu_translate(e->v, gva, SMMU_ACC_USER, &t) ? 0 : t.level;
}

static void *hva_of(struct env *e, smmu_gfn_t gfn)
{
	return smmu_gfn_to_hva(e->vm, gfn);
}

/* The spte is as large as the host page behind it: 4 KiB host pages give 4 KiB sptes under a
 * direct level-1 page; THP gives 2 MiB; a new slot assumes 1 GiB pages (lpage_info decides). */
static void test_host_level_caps_leaf(void **state)
{
	(void)state;
	const int levels[] = { SMMU_LEVEL_4K, SMMU_LEVEL_2M, 0 /* default */ };
	const int want[] = { SMMU_LEVEL_4K, SMMU_LEVEL_2M, SMMU_LEVEL_2M };
	for (int k = 0; k < 3; k++) {
		struct env e;
		env_init(&e, SMMU_PROFILE_LINUX_TODAY);
		if (levels[k])
			assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, levels[k]), 0);
		smmu_gva_t gva = map_2m(&e, 0);
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(e.v, gva + 0x5000, SMMU_ACC_USER, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.level, want[k]);
		assert_int_equal(mapped_level(&e, gva + 0x5000), want[k]);
		/* the root, the guest's PDPT and PD shadowed; a 4 KiB host adds the direct PT */
		assert_int_equal(fi.pages_created, want[k] == SMMU_LEVEL_4K ? 4 : 3);
		env_fini(&e);
	}
}

/* Over THP, an invalidation that covers part of a huge page splits it: the whole 2 MiB goes (the
 * split's own invalidation) and refaults map 4 KiB; a huge page invalidated whole is not split;
 * hugetlbfs pages (1 GiB) are never split. */
static void test_thp_split_on_partial_invalidation(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_2M), 0);
	smmu_gva_t a = map_2m(&e, 0), b = map_2m(&e, 1);
	assert_int_equal(fault_level(&e, a, SMMU_ACC_WRITE), SMMU_LEVEL_2M);
	assert_int_equal(fault_level(&e, b, SMMU_ACC_WRITE), SMMU_LEVEL_2M);

	/* One 4 KiB page of a's host page: split. */
	char *p = hva_of(&e, REGION(2) + 7);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + 4096), 1);
	assert_int_equal(mapped_level(&e, a), 0);
	assert_int_equal(mapped_level(&e, b), SMMU_LEVEL_2M);
	assert_int_equal(fault_level(&e, a + 0x3000, SMMU_ACC_READ), SMMU_LEVEL_4K);
	assert_int_equal(fault_level(&e, a + 0x1ff000, SMMU_ACC_READ), SMMU_LEVEL_4K);

	/* a split host page stays split: a later partial invalidation drops only its own range */
	p = hva_of(&e, REGION(2) + 3);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + 4096), 1);
	assert_int_equal(mapped_level(&e, a + 0x1ff000), SMMU_LEVEL_4K);

	/* b's host page invalidated whole: freed, not split; the refault maps 2 MiB again */
	p = hva_of(&e, REGION(3));
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + MIB2), 1);
	assert_int_equal(fault_level(&e, b + 0x3000, SMMU_ACC_READ), SMMU_LEVEL_2M);
	env_fini(&e);

	/* Guest 4 KiB pages over a THP: the split drops every spte of the 2 MiB, not only the range. */
	env_init(&e, SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_2M), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(smmu_gas_map(e.gas, GVA + i * 0x1000ull, REGION(4) + 100 * (uint64_t)i,
					      SMMU_LEVEL_4K, RW_USER), 0);
		assert_int_equal(fault_level(&e, GVA + i * 0x1000ull, SMMU_ACC_WRITE), SMMU_LEVEL_4K);
	}
	p = hva_of(&e, REGION(4) + 100);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + 4096), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(mapped_level(&e, GVA + i * 0x1000ull), 0);
	env_fini(&e);

	/* 1 GiB host pages: the same partial invalidation drops only what it covers, no split. */
	env_init(&e, SMMU_PROFILE_LINUX_TODAY);
	a = map_2m(&e, 0);
	assert_int_equal(fault_level(&e, a, SMMU_ACC_WRITE), SMMU_LEVEL_2M);
	p = hva_of(&e, REGION(2) + 7);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + 4096), 1);
	assert_int_equal(fault_level(&e, a + 0x3000, SMMU_ACC_READ), SMMU_LEVEL_2M);
	env_fini(&e);
}

/* Arguments; a level below a leaf the slot has is refused and changes nothing; setting the level
 * again forgets the splits. */
static void test_set_host_level_errors(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_memslot_set_host_level(NULL, 0, SMMU_LEVEL_2M), -EINVAL);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, 0), -EINVAL);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_1G + 1), -EINVAL);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 7, SMMU_LEVEL_2M), -ENOENT);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, -1, SMMU_LEVEL_2M), -ENOENT);

	smmu_gva_t a = map_2m(&e, 0);
	assert_int_equal(fault_level(&e, a, SMMU_ACC_WRITE), SMMU_LEVEL_2M);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_4K), -EBUSY);
	assert_int_equal(mapped_level(&e, a), SMMU_LEVEL_2M);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_2M), 0); /* 2M leaves fit */

	/* split, then set again: the host mapped it anew, 2 MiB once more */
	char *p = hva_of(&e, REGION(2) + 7);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + 4096), 1);
	assert_int_equal(fault_level(&e, a, SMMU_ACC_READ), SMMU_LEVEL_4K);
	assert_int_equal(smmu_memslot_set_host_level(e.vm, 0, SMMU_LEVEL_2M), 0);
	p = hva_of(&e, REGION(2));
	assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, p, p + MIB2), 1);
	assert_int_equal(fault_level(&e, a, SMMU_ACC_READ), SMMU_LEVEL_2M);
	env_fini(&e);
}

/* Dirty logging off: today's KVM drops the 4 KiB sptes of direct pages that could be large again
 * (kvm_mmu_zap_collapsible_sptes); 3.11 keeps them. Sptes of indirect pages (the guest maps 4 KiB
 * there) stay in both eras. */
static void test_log_off_zaps_collapsible(void **state)
{
	(void)state;
	const enum smmu_profile eras[] = { SMMU_PROFILE_LINUX_TODAY, SMMU_PROFILE_LINUX_3_11 };
	for (int k = 0; k < 2; k++) {
		bool today = eras[k] == SMMU_PROFILE_LINUX_TODAY;
		struct env e;
		env_init(&e, eras[k]);
		smmu_gva_t a = map_2m(&e, 0);
		smmu_gva_t small = GVA + 16 * MIB2;
		assert_int_equal(smmu_gas_map(e.gas, small, REGION(8), SMMU_LEVEL_4K, RW_USER), 0);
		assert_int_equal(fault_level(&e, a, SMMU_ACC_WRITE), SMMU_LEVEL_2M);

		assert_int_equal(smmu_memslot_set_flags(e.vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
		for (int i = 0; i < 4; i++)
			assert_int_equal(fault_level(&e, a + i * 0x10000ull, SMMU_ACC_WRITE), SMMU_LEVEL_4K);
		assert_int_equal(fault_level(&e, small, SMMU_ACC_WRITE), SMMU_LEVEL_4K);
		struct smmu_vm_counters c0, c1;
		assert_int_equal(smmu_vm_get_counters(e.vm, &c0), 0);

		assert_int_equal(smmu_memslot_set_flags(e.vm, 0, 0), 0);
		assert_int_equal(smmu_vm_get_counters(e.vm, &c1), 0);
		for (int i = 0; i < 4; i++)
			assert_int_equal(mapped_level(&e, a + i * 0x10000ull), today ? 0 : SMMU_LEVEL_4K);
		assert_int_equal(mapped_level(&e, small), SMMU_LEVEL_4K);
		assert_int_equal(c1.remote_tlb_flushes - c0.remote_tlb_flushes, today ? 1 : 0);
		/* and the refault maps large again (today) */
		if (today)
			assert_int_equal(fault_level(&e, a, SMMU_ACC_WRITE), SMMU_LEVEL_2M);
		env_fini(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_level_caps_leaf),
		cmocka_unit_test(test_thp_split_on_partial_invalidation),
		cmocka_unit_test(test_set_host_level_errors),
		cmocka_unit_test(test_log_off_zaps_collapsible),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
