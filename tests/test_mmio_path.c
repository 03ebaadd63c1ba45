/*
 * A fault on a gfn in no slot (KVM_PFN_NOSLOT) is MMIO, but KVM still builds the shadow path to it
 * (handle_abnormal_pfn lets the fault go on; FNAME(fetch) / __direct_map, then set_mmio_spte), in
 * 3.11 and today, in shadow and direct mode. A write to a read-only slot (KVM_PFN_ERR_RO_FAULT)
 * is emulated at once and builds nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>

#define POOL_GFN 4000u
#define GVA 0x40000000ull
#define HOLE_GFN (1ull << 20) /* in no slot */
#define ROM_GFN 8192u         /* a read-only slot */

static uint64_t created(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c.pages_created;
}

static void run(enum smmu_mmu_mode mode, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	cfg.profile = profile;
	struct tl_guest g;
	tl_guest_init_cfg(&g, &cfg, 4096, POOL_GFN, 64);
	assert_int_equal(smmu_memslot_create(g.vm, 1, ROM_GFN, 64, SMMU_MEM_READONLY), 0);
	smmu_gva_t hole = HOLE_GFN << 12, rom = (uint64_t)ROM_GFN << 12;
	if (mode == SMMU_MODE_SHADOW) {
		/* each in its own 1 GiB of gva: no shadow page shared below the root */
		assert_int_equal(smmu_gas_map(g.gas, GVA, HOLE_GFN, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		assert_int_equal(smmu_gas_map(g.gas, GVA << 1, ROM_GFN, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		hole = GVA;
		rom = GVA << 1;
	}
	struct smmu_fault_info fi;
	uint64_t c0 = created(g.vm);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, rom, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(created(g.vm), c0);
	assert_int_equal(fi.pages_created, 0);

	assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(fi.outcome, SMMU_FAULT_MMIO);
	assert_int_equal(fi.gfn, HOLE_GFN);
	/* the root, then shadow: the guest's PDPT, PD and PT; direct: the three levels below it */
	assert_int_equal(fi.pages_created, 4);
	assert_int_equal(created(g.vm), c0 + 4);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, hole, SMMU_ACC_USER, &t), -EFAULT); /* no leaf */
	/* Again: the path is there, nothing new. */
	assert_int_equal(smmu_vcpu_fault(g.vcpu, hole, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(fi.pages_created, 0);

	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_noslot_fault_builds_path(void **state)
{
	(void)state;
	const enum smmu_profile eras[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };
	for (int e = 0; e < 2; e++) {
		run(SMMU_MODE_SHADOW, eras[e]);
		run(SMMU_MODE_DIRECT, eras[e]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noslot_fault_builds_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
