/*
 * vCPUs: creation and ids, CR3 loads and the roots they pin, translation before and after a
 * fault, guest memory access across page boundaries, request processing at entry, counters.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_PAGES 4096
#define POOL_A 16
#define POOL_B 128
#define POOL_PAGES 32
#define GVA 0x40000000ull
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

/* Level-4 pages on the active list whose gfn is @gfn: how many, and the last one's info. */
static int roots_at(smmu_vm *vm, smmu_gfn_t gfn, struct smmu_sp_info *out)
{
	int n = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		if (smmu_sp_get_info(vm, sp, &i) == 0 && i.level == 4 && i.gfn == gfn) {
			n++;
			if (out)
				*out = i;
		}
	}
	unlock(vm);
	return n;
}

static struct smmu_vcpu_counters vc(smmu_vcpu *v)
{
	struct smmu_vcpu_counters c;
	assert_int_equal(smmu_vcpu_get_counters(v, &c), 0);
	return c;
}

static smmu_vm *vm_two_spaces(smmu_gas **a, smmu_gas **b)
{
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	assert_int_equal(smmu_gas_create(vm, POOL_A, POOL_PAGES, a), 0);
	assert_int_equal(smmu_gas_create(vm, POOL_B, POOL_PAGES, b), 0);
	/* The same gva maps different frames in the two address spaces. */
	assert_int_equal(smmu_gas_map(*a, GVA, 1000, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(*b, GVA, 2000, SMMU_LEVEL_4K, RW_USER), 0);
	return vm;
}

static void test_create_destroy_ids(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	smmu_vcpu *v[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(smmu_vcpu_create(vm, &v[i]), 0);
		assert_non_null(v[i]);
		assert_int_equal(smmu_vcpu_id(v[i]), i);
	}
	assert_int_equal(smmu_vcpu_id(NULL), -EINVAL);
	assert_int_equal(smmu_vcpu_create(NULL, &v[0]), -EINVAL);
	assert_int_equal(smmu_vcpu_create(vm, NULL), -EINVAL);
	smmu_vcpu_destroy(NULL);

	/* Destroying one changes no other vCPU's id (kvm_vcpu.vcpu_id is fixed for life). */
	smmu_vcpu_destroy(v[1]);
	for (int i = 0; i < 4; i++)
		if (i != 1)
			assert_int_equal(smmu_vcpu_id(v[i]), i);
	/* A fresh vCPU takes the smallest free id, has no counters and no root. */
	smmu_vcpu *n;
	assert_int_equal(smmu_vcpu_create(vm, &n), 0);
	assert_int_equal(smmu_vcpu_id(n), 1);
	struct smmu_vcpu_counters c = vc(n);
	assert_int_equal(c.faults + c.tlb_hits + c.tlb_misses + c.tlb_flushes + c.reloads + c.roots_loaded, 0);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(n, 0, 0, &t), -EFAULT);
	/* Shadow mode without a CR3 cannot fault. */
	assert_int_equal(smmu_vcpu_fault(n, 0, 0, NULL), -EINVAL);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v[0]);
	smmu_vcpu_destroy(v[2]);
	/* v[3] and n are destroyed with the VM. */
	smmu_vm_destroy(vm);
}

static void test_set_cr3_switches_roots(void **state)
{
	(void)state;
	smmu_gas *a, *b;
	smmu_vm *vm = vm_two_spaces(&a, &b);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, 123), -EINVAL); /* not page-aligned */
	assert_int_equal(smmu_vcpu_set_cr3(NULL, 0), -EINVAL);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(a)), 0);
	assert_int_equal(roots_at(vm, POOL_A, NULL), 0); /* built at the first fault */
	assert_int_equal(smmu_vcpu_fault(v, GVA, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	struct smmu_sp_info ra = { 0 }, rb = { 0 };
	assert_int_equal(roots_at(vm, POOL_A, &ra), 1);
	assert_int_equal(ra.root_count, 1);
	assert_false(ra.direct);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, GVA, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, 1000));

	/* Switch to b: the old root loses its user, translation needs the new root. */
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(b)), 0);
	assert_int_equal(roots_at(vm, POOL_A, &ra), 1);
	assert_int_equal(ra.root_count, 0);
	assert_false(ra.invalid);
	assert_int_equal(smmu_vcpu_translate(v, GVA, 0, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_fault(v, GVA, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(roots_at(vm, POOL_B, &rb), 1);
	assert_int_equal(rb.root_count, 1);
	assert_int_equal(smmu_vcpu_translate(v, GVA, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, 2000));
	tl_assert_audit_clean(vm);

	/* Back to a: the old root page is found again (still valid), not rebuilt. */
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(a)), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(v, GVA, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 0);
	assert_int_equal(roots_at(vm, POOL_A, &ra), 1);
	assert_int_equal(ra.root_count, 1);
	assert_int_equal(roots_at(vm, POOL_B, &rb), 1);
	assert_int_equal(rb.root_count, 0);
	assert_int_equal(vc(v).roots_loaded, 3);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(v);
	assert_int_equal(roots_at(vm, POOL_A, &ra), 1);
	assert_int_equal(ra.root_count, 0);
	tl_assert_audit_clean(vm);
	smmu_gas_destroy(a);
	smmu_gas_destroy(b);
	smmu_vm_destroy(vm);
}

static void test_shared_root(void **state)
{
	(void)state;
	smmu_gas *a, *b;
	smmu_vm *vm = vm_two_spaces(&a, &b);
	smmu_vcpu *v0, *v1;
	assert_int_equal(smmu_vcpu_create(vm, &v0), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v1), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v0, smmu_gas_cr3(a)), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v1, smmu_gas_cr3(a)), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(v0, GVA, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 4);
	assert_int_equal(smmu_vcpu_fault(v1, GVA, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 0); /* every page shared */
	struct smmu_sp_info r;
	assert_int_equal(roots_at(vm, POOL_A, &r), 1);
	assert_int_equal(r.root_count, 2);
	struct smmu_translation t0, t1;
	assert_int_equal(smmu_vcpu_translate(v0, GVA, 0, &t0), 0);
	assert_int_equal(smmu_vcpu_translate(v1, GVA, 0, &t1), 0);
	assert_ptr_equal(t0.hva, t1.hva);
	tl_assert_audit_clean(vm);

	assert_int_equal(smmu_vcpu_set_cr3(v1, smmu_gas_cr3(b)), 0);
	assert_int_equal(roots_at(vm, POOL_A, &r), 1);
	assert_int_equal(r.root_count, 1);
	smmu_vcpu_destroy(v0);
	assert_int_equal(roots_at(vm, POOL_A, &r), 1);
	assert_int_equal(r.root_count, 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v1);
	smmu_gas_destroy(a);
	smmu_gas_destroy(b);
	smmu_vm_destroy(vm);
}

static void test_translate_before_after_fault(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, SLOT_PAGES, POOL_A, POOL_PAGES);
	assert_int_equal(smmu_gas_map(g.gas, GVA, 700, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA + 0x123, 0, &t), -EFAULT); /* no root yet */
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, 0, NULL), -EINVAL);
	assert_int_equal(smmu_vcpu_translate(NULL, GVA, 0, &t), -EINVAL);
	/* A read fault by the supervisor, on a page the host has written. */
	char *h = smmu_gfn_to_hva(g.vm, 700);
	assert_int_equal(smmu_host_wrote(g.vm, h, h + 1), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + 0x123, 0, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA + 0x123, 0, &t), 0);
	assert_ptr_equal(t.hva, (char *)smmu_gfn_to_hva(g.vm, 700) + 0x123);
	assert_int_equal(t.level, SMMU_LEVEL_4K);
	assert_true(t.access & SMMU_ACC_USER);
	assert_true(t.access & SMMU_ACC_WRITE); /* the guest PTE is dirty, the host's page writable */
	assert_int_equal(t.spte & 1, 1);
	/* The neighbouring page is still unmapped. */
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA + 0x1000, 0, &t), -EFAULT);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_read_write_across_pages(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, SLOT_PAGES, POOL_A, POOL_PAGES);
	/* Three consecutive gvas on frames that are not consecutive. */
	const smmu_gfn_t f[3] = { 900, 1500, 1201 };
	for (int i = 0; i < 3; i++)
		assert_int_equal(smmu_gas_map(g.gas, GVA + (uint64_t)i * 0x1000, f[i], SMMU_LEVEL_4K, RW_USER), 0);
	uint8_t buf[6000], back[6000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	const smmu_gva_t start = GVA + 0xff0; /* 16 bytes in page 0, all of page 1, rest in page 2 */
	assert_int_equal(smmu_vcpu_write(g.vcpu, start, buf, sizeof(buf)), 0);
	/* The bytes landed in the frames the guest maps. */
	assert_int_equal(smmu_guest_read(g.vm, (f[0] << 12) + 0xff0, back, 16), 0);
	assert_memory_equal(back, buf, 16);
	assert_int_equal(smmu_guest_read(g.vm, f[1] << 12, back, 4096), 0);
	assert_memory_equal(back, buf + 16, 4096);
	assert_int_equal(smmu_guest_read(g.vm, f[2] << 12, back, sizeof(buf) - 16 - 4096), 0);
	assert_memory_equal(back, buf + 16 + 4096, sizeof(buf) - 16 - 4096);
	/* And read back through the vCPU. */
	memset(back, 0, sizeof(back));
	assert_int_equal(smmu_vcpu_read(g.vcpu, start, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	/* Into an unmapped page: the guest's tables deny it. */
	assert_int_equal(smmu_vcpu_read(g.vcpu, GVA + 0x2ff0, back, 32), -EFAULT);
	assert_int_equal(smmu_vcpu_read(NULL, GVA, back, 1), -EINVAL);
	assert_int_equal(smmu_vcpu_write(g.vcpu, GVA, NULL, 1), -EINVAL);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_requests_processed_on_enter(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, SLOT_PAGES, POOL_A, POOL_PAGES);
	tl_map_and_fault(&g, GVA, 700, 4, SMMU_ACC_WRITE);
	smmu_vcpu *other;
	assert_int_equal(smmu_vcpu_create(g.vm, &other), 0);
	assert_int_equal(smmu_vcpu_set_cr3(other, smmu_gas_cr3(g.gas)), 0);
	assert_int_equal(smmu_vcpu_fault(other, GVA, 0, NULL), SMMU_FAULT_MAPPED);
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(g.vcpu, GVA, &x, sizeof(x)), 0);

	/* A reload request: posted by the bump, processed only at entry. */
	struct smmu_vcpu_counters c0 = vc(g.vcpu);
	assert_int_equal(smmu_fast_zap_bump(g.vm, NULL), 0);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, 0, &t), 0); /* old root still loaded */
	struct smmu_vcpu_counters c1 = vc(g.vcpu);
	assert_int_equal(c1.reloads, c0.reloads);
	assert_int_equal(c1.tlb_flushes, c0.tlb_flushes);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	c1 = vc(g.vcpu);
	assert_int_equal(c1.reloads, c0.reloads + 1);
	assert_int_equal(c1.tlb_flushes, c0.tlb_flushes + 1);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, 0, &t), -EFAULT); /* root dropped */
	/* Processed once: a second entry does nothing. */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	struct smmu_vcpu_counters c2 = vc(g.vcpu);
	assert_int_equal(c2.reloads, c1.reloads);
	assert_int_equal(c2.tlb_flushes, c1.tlb_flushes);
	/* The other vCPU got the request too and drops its root at its own entry. */
	assert_int_equal(smmu_vcpu_translate(other, GVA, 0, &t), 0);
	assert_int_equal(smmu_vcpu_enter(other), 0);
	assert_int_equal(vc(other).reloads, 1);
	assert_int_equal(smmu_vcpu_translate(other, GVA, 0, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_enter(NULL), -EINVAL);
	assert_int_equal(smmu_fast_zap_drain(g.vm, NULL), 0);
	tl_assert_audit_clean(g.vm);

	/* zap_all: the zapped root asks for a reload, the commit for a TLB flush; both at entry. */
	assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, 0, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_read(g.vcpu, GVA, &x, sizeof(x)), 0);
	c0 = vc(g.vcpu);
	assert_int_equal(smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	c1 = vc(g.vcpu);
	assert_int_equal(c1.tlb_flushes, c0.tlb_flushes + 1);
	assert_int_equal(c1.reloads, c0.reloads + 1);
	assert_int_equal(smmu_vcpu_enter(other), 0);
	tl_assert_audit_clean(g.vm);
	smmu_vcpu_destroy(other);
	tl_guest_fini(&g);
}

static void test_counters(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, SLOT_PAGES, POOL_A, POOL_PAGES);
	assert_int_equal(smmu_vcpu_get_counters(NULL, NULL), -EINVAL);
	assert_int_equal(smmu_vcpu_get_counters(g.vcpu, NULL), -EINVAL);
	struct smmu_vm_counters m0, m1;
	assert_int_equal(smmu_vm_get_counters(g.vm, &m0), 0);
	tl_map_and_fault(&g, GVA, 700, 8, SMMU_ACC_WRITE);
	struct smmu_vcpu_counters c = vc(g.vcpu);
	assert_int_equal(c.faults, 8);
	assert_int_equal(c.roots_loaded, 1);
	assert_int_equal(c.tlb_hits + c.tlb_misses, 0);
	assert_int_equal(smmu_vm_get_counters(g.vm, &m1), 0);
	assert_int_equal(m1.faults - m0.faults, 8);
	assert_int_equal(m1.faults_fixed - m0.faults_fixed, 8);
	assert_int_equal(m1.pages_created - m0.pages_created, 4);
	assert_int_equal(m1.n_used_mmu_pages, 4);
	assert_int_equal(m1.indirect_shadow_pages, 4);
	/* Reads: the first misses, the second hits. */
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(g.vcpu, GVA, &x, sizeof(x)), 0);
	assert_int_equal(smmu_vcpu_read(g.vcpu, GVA + 8, &x, sizeof(x)), 0);
	c = vc(g.vcpu);
	assert_int_equal(c.tlb_misses, 1);
	assert_int_equal(c.tlb_hits, 1);
	assert_int_equal(c.faults, 8); /* already mapped: no fault */
	/* A GUEST_PF is a fault too. */
	assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + 0x100000, 0, NULL), SMMU_FAULT_GUEST_PF);
	assert_int_equal(vc(g.vcpu).faults, 9);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_direct_mode_vcpu(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	smmu_vcpu *v0, *v1;
	assert_int_equal(smmu_vcpu_create(vm, &v0), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v1), 0);
	/* No CR3 needed; both vCPUs share the single direct root. */
	assert_int_equal(smmu_vcpu_fault(v0, 0x5000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_fault(v1, 0x6000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	struct smmu_sp_info r = { 0 };
	assert_int_equal(roots_at(vm, 0, &r), 1);
	assert_true(r.direct);
	assert_int_equal(r.root_count, 2);
	uint32_t val = 0xdeadbeef, back = 0;
	assert_int_equal(smmu_vcpu_write(v0, 0x7ffe, &val, sizeof(val)), 0);
	assert_int_equal(smmu_vcpu_read(v1, 0x7ffe, &back, sizeof(back)), 0);
	assert_int_equal(back, val);
	assert_int_equal(smmu_guest_read(vm, 0x7ffe, &back, sizeof(back)), 0);
	assert_int_equal(back, val);
	/* set_cr3 in direct mode keeps the root and flushes the TLB. */
	struct smmu_vcpu_counters c0 = vc(v0);
	assert_int_equal(smmu_vcpu_set_cr3(v0, 0x1000), 0);
	assert_int_equal(vc(v0).tlb_flushes, c0.tlb_flushes + 1);
	assert_int_equal(roots_at(vm, 0, &r), 1);
	assert_int_equal(r.root_count, 2);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v0, 0x5000, SMMU_ACC_WRITE, &t), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v0);
	smmu_vcpu_destroy(v1);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy_ids),
		cmocka_unit_test(test_set_cr3_switches_roots),
		cmocka_unit_test(test_shared_root),
		cmocka_unit_test(test_translate_before_after_fault),
		cmocka_unit_test(test_read_write_across_pages),
		cmocka_unit_test(test_requests_processed_on_enter),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_direct_mode_vcpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
