/*
 * The guest's Accessed and Dirty bits in both eras: a read of a clean gpte maps no write
 * (protect_clean_gpte) and the fault's walk sets A and D in the guest's own tables
 * (FNAME(update_accessed_dirty_bits)). Also kvm_mmu_reload at entry. (The host's side of a write
 * after a read, the zero page and its copy-on-write notifier, is the harness's:
 * tools/kvmdiff/hostmem.h.)
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>

#define SLOT_PAGES 4096ull
#define POOL_GFN 3000ull
#define POOL_PAGES 64ull
#define GVA 0x40000000ull
#define DATA_GFN 100ull
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)

static const enum smmu_profile profiles[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

static void guest_init(struct tl_guest *g, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	g->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(g->vm, 0, 0, SLOT_PAGES, 0), 0);
	assert_int_equal(smmu_gas_create(g->vm, POOL_GFN, POOL_PAGES, &g->gas), 0);
	assert_int_equal(smmu_vcpu_create(g->vm, &g->vcpu), 0);
	assert_int_equal(smmu_vcpu_set_cr3(g->vcpu, smmu_gas_cr3(g->gas)), 0);
}

/* Where the guest keeps its entry for @gva at @level (1 pte, 2 pde, ...). */
static smmu_gpa_t entry_gpa(struct tl_guest *g, smmu_gva_t gva, int level)
{
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(g->vm, smmu_gas_cr3(g->gas), gva, &w), 0);
	return (w.table_gfn[level - 1] << 12) + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
}

static uint64_t read_gpte(struct tl_guest *g, smmu_gpa_t a)
{
	uint64_t e;
	assert_int_equal(smmu_guest_read_u64(g->vm, a, &e), 0);
	return e;
}

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

/* A read fault on a clean gpte maps no write; the write refaults, sets D in the guest pte and
 * makes the spte writable; the walks set A at every level they use. */
static void test_clean_gpte(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct tl_guest g;
		guest_init(&g, profiles[p]);
		assert_int_equal(smmu_gas_map(g.gas, GVA, DATA_GFN, SMMU_LEVEL_4K, RW_USER), 0);
		/* The guest's entries without A (pde, pte) and D (pte), as a guest that cleared them. */
		smmu_gpa_t pte = entry_gpa(&g, GVA, 1), pde = entry_gpa(&g, GVA, 2);
		assert_int_equal(smmu_guest_write_u64(g.vm, pte, read_gpte(&g, pte) & ~(PTE_A | PTE_D)), 0);
		assert_int_equal(smmu_guest_write_u64(g.vm, pde, read_gpte(&g, pde) & ~PTE_A), 0);
		struct smmu_vm_counters c0 = counters(g.vm);

		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER, &t), 0);
		assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &t), -EACCES);
		assert_true(read_gpte(&g, pde) & PTE_A);
		assert_true(read_gpte(&g, pte) & PTE_A);
		assert_false(read_gpte(&g, pte) & PTE_D);
		assert_true(read_gpte(&g, pte) & 2); /* the guest still allows the write */

		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_false(fi.emulated_write);
		assert_true(read_gpte(&g, pte) & PTE_D);
		assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &t), 0);
		struct smmu_vm_counters c1 = counters(g.vm);
		assert_int_equal(c1.faults_fixed - c0.faults_fixed, 2);
		/* Setting A and D is KVM's own store, not a trapped guest write; RO → W needs no flush. */
		assert_int_equal(c1.pte_writes, c0.pte_writes);
		assert_int_equal(c1.remote_tlb_flushes, c0.remote_tlb_flushes);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* A write fault on a clean gpte sets D at once and maps the spte writable. */
static void test_write_sets_dirty(void **state)
{
	(void)state;
	struct tl_guest g;
	guest_init(&g, SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_gas_map(g.gas, GVA, DATA_GFN, SMMU_LEVEL_4K, RW_USER), 0);
	smmu_gpa_t pte = entry_gpa(&g, GVA, 1);
	assert_int_equal(smmu_guest_write_u64(g.vm, pte, read_gpte(&g, pte) & ~(PTE_A | PTE_D)), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(read_gpte(&g, pte) & (PTE_A | PTE_D), PTE_A | PTE_D);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_WRITE, &t), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* kvm_mmu_reload at entry: a second vCPU on the same CR3 finds the root the first one built,
 * and the sptes under it, without a fault. */
static void test_mmu_reload(void **state)
{
	(void)state;
	struct tl_guest g;
	guest_init(&g, SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_gas_map(g.gas, GVA, DATA_GFN, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, 0, NULL), SMMU_FAULT_MAPPED);
	smmu_vcpu *v1;
	assert_int_equal(smmu_vcpu_create(g.vm, &v1), 0);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_mmu_reload(v1), 0); /* no CR3 yet: nothing to load */
	assert_int_equal(smmu_vcpu_translate(v1, GVA, 0, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_set_cr3(v1, smmu_gas_cr3(g.gas)), 0);
	assert_int_equal(smmu_vcpu_enter(v1), 0);
	assert_int_equal(smmu_vcpu_translate(v1, GVA, 0, &t), -EFAULT); /* enter loads nothing */
	uint64_t created = counters(g.vm).pages_created;
	assert_int_equal(smmu_vcpu_mmu_reload(v1), 0);
	assert_int_equal(smmu_vcpu_translate(v1, GVA, 0, &t), 0);
	assert_int_equal(counters(g.vm).pages_created, created);
	/* A CR3 in no slot loads nothing either. */
	assert_int_equal(smmu_vcpu_set_cr3(v1, SLOT_PAGES << 12), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(v1), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(NULL), -EINVAL);
	tl_assert_audit_clean(g.vm);
	smmu_vcpu_destroy(v1);
	tl_guest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_gpte),
		cmocka_unit_test(test_write_sets_dirty),
		cmocka_unit_test(test_mmu_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
