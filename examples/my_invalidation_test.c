/*
 * my_invalidation_test — CMocka tests of the kind you write for your own invalidation idea.
 *
 * Each test gets a fresh shadow-mode guest from the fixture (slot 0 of 512 pages, page tables at
 * gfns 16..47, 64 pages mapped and faulted in), does one thing to it, checks what a guest would
 * see, and ends with the audit: the audit is what tells you that no stale spte, rmap entry, hash
 * entry or lpage_info count survived. Copy this file and replace my_zap_slot() with your idea.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <shadowmmu/shadowmmu.h>

#define SLOT_PAGES 512
#define POOL_GFN 16
#define POOL_PAGES 32
#define DATA_GFN 100
#define N_PAGES 64
#define GVA_BASE 0x10000000ull

struct env {
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *vcpu;
};

static smmu_gva_t gva_of(int i)
{
	return GVA_BASE + (uint64_t)i * SMMU_PAGE_SIZE;
}

/* The check every test ends with: print the report and fail when any invariant is broken. */
static void assert_audit_clean(smmu_vm *vm)
{
	struct smmu_violation v[32];
	struct smmu_audit_report rep = { .v = v, .cap = 32 };
	long bad = smmu_audit(vm, &rep);

	if (bad != 0) {
		smmu_audit_print(stdout, &rep);
		fail_msg("audit: %ld violation(s)", bad);
	}
}

static void fault_all(struct env *e, uint32_t access)
{
	for (int i = 0; i < N_PAGES; i++) {
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(e->vcpu, gva_of(i), access, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.gfn, DATA_GFN + i);
	}
}

static int setup(void **state)
{
	static struct env e;
	struct smmu_vm_config cfg;

	memset(&e, 0, sizeof(e));
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	if (smmu_vm_create(&cfg, &e.vm) < 0 || smmu_memslot_create(e.vm, 0, 0, SLOT_PAGES, 0) < 0 ||
	    smmu_gas_create(e.vm, POOL_GFN, POOL_PAGES, &e.gas) < 0 ||
	    smmu_vcpu_create(e.vm, &e.vcpu) < 0 || smmu_vcpu_set_cr3(e.vcpu, smmu_gas_cr3(e.gas)) < 0)
		return -1;
	for (int i = 0; i < N_PAGES; i++)
		if (smmu_gas_map(e.gas, gva_of(i), DATA_GFN + (smmu_gfn_t)i, SMMU_LEVEL_4K,
				 SMMU_PROT_WRITE | SMMU_PROT_USER) < 0)
			return -1;
	for (int i = 0; i < N_PAGES; i++)
		if (smmu_vcpu_fault(e.vcpu, gva_of(i), SMMU_ACC_WRITE, NULL) != SMMU_FAULT_MAPPED)
			return -1;
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	smmu_vcpu_destroy(e->vcpu);
	smmu_gas_destroy(e->gas);
	smmu_vm_destroy(e->vm);
	return 0;
}

/* ---- my idea: zap the pages of one slot by walking active_mmu_pages from the tail ----------- */

/* Zap every shadow page whose gfn lies in slot @id, oldest first, then unmap the slot's rmaps. */
static int my_zap_slot(smmu_vm *vm, int id)
{
	struct smmu_invalid_list invalid;
	smmu_gfn_t base;
	uint64_t npages;
	int r;

	smmu_invalid_list_init(&invalid);
	smmu_mmu_lock(vm, SMMU_SITE_USER1);
	r = smmu_slot_range(vm, id, &base, &npages);
	if (r < 0)
		goto out;
restart:
	for (smmu_sp *sp = smmu_active_last(vm); sp; sp = smmu_active_prev(vm, sp)) {
		struct smmu_sp_info info;
		if (smmu_sp_get_info(vm, sp, &info) < 0 || info.invalid)
			continue;
		if (info.gfn < base || info.gfn >= base + npages)
			continue;
		r = smmu_zap_page(vm, sp, &invalid);
		if (r < 0)
			goto out;
		goto restart; /* the zap may have moved pages: neighbours are stale */
	}
	for (smmu_gfn_t gfn = base; gfn < base + npages; gfn++) {
		r = smmu_rmap_unmap(vm, id, gfn, SMMU_LEVEL_4K);
		if (r < 0)
			goto out;
	}
	for (smmu_gfn_t gfn = base; gfn < base + npages; gfn = (gfn | 511) + 1) {
		r = smmu_rmap_unmap(vm, id, gfn, SMMU_LEVEL_2M);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	smmu_flush_remote_tlbs(vm);
	smmu_commit_zap(vm, &invalid);
	smmu_mmu_unlock(vm);
	return r;
}

static void test_my_zap_slot(void **state)
{
	struct env *e = *state;
	struct smmu_vm_counters c;
	struct smmu_translation t;

	assert_int_equal(my_zap_slot(e->vm, 0), 0);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0);
	assert_int_equal(smmu_vm_get_counters(e->vm, &c), 0);
	assert_int_equal(c.indirect_shadow_pages, 0);
	assert_int_equal(smmu_vcpu_translate(e->vcpu, gva_of(0), SMMU_ACC_READ, &t), -EFAULT);
	assert_audit_clean(e->vm);

	fault_all(e, SMMU_ACC_WRITE); /* and the guest runs on */
	assert_audit_clean(e->vm);
}

/* ---- the library's strategies, checked the same way ---------------------------------------- */

static void test_fast_zap_then_refault(void **state)
{
	struct env *e = *state;
	struct smmu_zap_report rep;

	assert_int_equal(smmu_fast_zap(e->vm, &rep), 0);
	assert_true(rep.pages_zapped > 0);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0); /* drops the obsolete root */
	assert_audit_clean(e->vm);
	fault_all(e, SMMU_ACC_WRITE);
	assert_audit_clean(e->vm);
}

/* Delete and recreate slot 0 with @s: nothing may survive (the guest's memory is new, zeroed). */
static void delete_recreate(struct env *e, enum smmu_flush_strategy s)
{
	assert_int_equal(smmu_vm_set_flush_strategy(e->vm, s), 0);
	assert_int_equal(smmu_memslot_delete(e->vm, 0), 0);
	assert_int_equal(smmu_memslot_create(e->vm, 0, 0, SLOT_PAGES, 0), 0);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0);
}

static void test_delete_recreate_zap_all(void **state)
{
	delete_recreate(*state, SMMU_FLUSH_ZAP_ALL);
	assert_audit_clean(((struct env *)*state)->vm);
}

static void test_delete_recreate_fast_zap(void **state)
{
	delete_recreate(*state, SMMU_FLUSH_FAST_ZAP);
	assert_audit_clean(((struct env *)*state)->vm);
}

static void test_delete_recreate_hash_walk(void **state)
{
	delete_recreate(*state, SMMU_FLUSH_HASH_WALK);
	assert_audit_clean(((struct env *)*state)->vm);
}

/* A known-bad strategy must be caught: the seed's orphaned lpage_info count (invariant 4). */
static void test_rmap_only_is_caught(void **state)
{
	struct env *e = *state;
	struct smmu_audit_report rep = { 0 };

	delete_recreate(e, SMMU_FLUSH_RMAP_ONLY);
	assert_true(smmu_audit(e->vm, &rep) > 0);
	assert_true(rep.per_inv[SMMU_INV_LPAGE_COUNT] > 0);
}

/* ---- guest-side and host-side invalidations ---------------------------------------------- */

/* Guest remaps a page to another frame: the write to its page table is trapped, so the vCPU must
 * read the new frame, not a stale spte or TLB entry. */
static void test_guest_remap_is_seen(void **state)
{
	struct env *e = *state;
	uint64_t old_val = 0x1111, new_val = 0x2222, got = 0;

	assert_int_equal(smmu_guest_write_u64(e->vm, DATA_GFN * SMMU_PAGE_SIZE, old_val), 0);
	assert_int_equal(smmu_guest_write_u64(e->vm, 400 * SMMU_PAGE_SIZE, new_val), 0);
	assert_int_equal(smmu_vcpu_read(e->vcpu, gva_of(0), &got, sizeof(got)), 0);
	assert_int_equal(got, old_val); /* the TLB now holds gva_of(0) */

	assert_int_equal(smmu_gas_map(e->gas, gva_of(0), 400, SMMU_LEVEL_4K,
				      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	assert_int_equal(smmu_vcpu_read(e->vcpu, gva_of(0), &got, sizeof(got)), 0);
	assert_int_equal(got, new_val);
	assert_audit_clean(e->vm);
}

/* Guest unmaps a page: no translation may remain, the next access is the guest's own #PF. */
static void test_guest_unmap(void **state)
{
	struct env *e = *state;
	struct smmu_translation t;
	struct smmu_fault_info fi;

	assert_int_equal(smmu_gas_unmap(e->gas, gva_of(5)), 0);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0);
	assert_int_equal(smmu_vcpu_translate(e->vcpu, gva_of(5), SMMU_ACC_READ, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_fault(e->vcpu, gva_of(5), SMMU_ACC_READ, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_NOT_PRESENT);
	assert_audit_clean(e->vm);
}

/* The host takes back part of the backing (MMU notifier): those sptes go, the rest stay. */
static void test_host_range_invalidation(void **state)
{
	struct env *e = *state;
	struct smmu_memslot_info slot;
	struct smmu_translation t;

	assert_int_equal(smmu_memslot_get(e->vm, 0, &slot), 0);
	char *first = (char *)slot.hva + DATA_GFN * SMMU_PAGE_SIZE;
	int64_t n = smmu_mmu_notifier_invalidate_range(e->vm, first, first + 8 * SMMU_PAGE_SIZE);
	assert_int_equal(n, 8);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0);
	assert_int_equal(smmu_vcpu_translate(e->vcpu, gva_of(0), SMMU_ACC_READ, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_translate(e->vcpu, gva_of(8), SMMU_ACC_READ, &t), 0);
	assert_audit_clean(e->vm);
}

/* Dirty logging write-protects the slot: a write faults again and is logged. */
static void test_dirty_logging(void **state)
{
	struct env *e = *state;
	uint64_t bitmap[SLOT_PAGES / 64], val = 42;
	struct smmu_translation t;

	assert_int_equal(smmu_memslot_set_flags(e->vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_vcpu_enter(e->vcpu), 0);
	assert_int_equal(smmu_vcpu_translate(e->vcpu, gva_of(3), SMMU_ACC_WRITE, &t), -EACCES);
	assert_int_equal(smmu_vcpu_write(e->vcpu, gva_of(3), &val, sizeof(val)), 0);
	assert_true(smmu_memslot_get_dirty_log(e->vm, 0, bitmap, SLOT_PAGES / 64) >= 1);
	assert_true(bitmap[(DATA_GFN + 3) / 64] & (1ull << ((DATA_GFN + 3) % 64)));
	assert_audit_clean(e->vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_my_zap_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_zap_then_refault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_recreate_zap_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_recreate_fast_zap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_recreate_hash_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmap_only_is_caught, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_remap_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_unmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_range_invalidation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_logging, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
