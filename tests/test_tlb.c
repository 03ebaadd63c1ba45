/*
 * The vCPU's software TLB: filled by accesses, flushed by CR3 loads, reloads and remote flushes;
 * and for each flush a config can skip on purpose (SMMU_SKIP_FLUSH_*), the stale access that
 * results (a TLB hit without a fault) and the audit's invariant 10 naming the vCPU, next to the
 * same sequence without the skip, which faults and stays clean.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S1_BASE 8192ull
#define POOL 16
#define D_GVA 0x40000000ull      /* maps DATA_GFN */
#define DATA_GFN (S1_BASE + 5)
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

struct env {
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *other; /* id 0: makes the vCPU under test id 1 */
	smmu_vcpu *v;
};

static void env_init(struct env *e, uint32_t skip)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.skip_flush = skip;
	e->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(e->vm, 0, 0, 4096, 0), 0);
	assert_int_equal(smmu_memslot_create(e->vm, 1, S1_BASE, 1024, 0), 0);
	assert_int_equal(smmu_gas_create(e->vm, POOL, 64, &e->gas), 0);
	assert_int_equal(smmu_vcpu_create(e->vm, &e->other), 0);
	assert_int_equal(smmu_vcpu_create(e->vm, &e->v), 0);
	assert_int_equal(smmu_vcpu_id(e->v), 1);
	assert_int_equal(smmu_vcpu_set_cr3(e->v, smmu_gas_cr3(e->gas)), 0);
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(smmu_gas_map(e->gas, D_GVA + i * 0x1000, DATA_GFN + i, SMMU_LEVEL_4K, RW_USER), 0);
	uint64_t marker = 0x5eed5eed5eed5eedull;
	assert_int_equal(smmu_guest_write(e->vm, DATA_GFN << 12, &marker, sizeof(marker)), 0);
}

static void env_fini(struct env *e)
{
	smmu_vcpu_destroy(e->v);
	smmu_vcpu_destroy(e->other);
	smmu_gas_destroy(e->gas);
	smmu_vm_destroy(e->vm);
}

static struct smmu_vcpu_counters vc(smmu_vcpu *v)
{
	struct smmu_vcpu_counters c;
	assert_int_equal(smmu_vcpu_get_counters(v, &c), 0);
	return c;
}

/* Read D_GVA so that the TLB holds it; the next read is a hit. */
static void fill(struct env *e)
{
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(e->v, D_GVA, &x, sizeof(x)), 0);
	assert_int_equal(x, 0x5eed5eed5eed5eedull);
	struct smmu_vcpu_counters c0 = vc(e->v);
	assert_int_equal(smmu_vcpu_read(e->v, D_GVA + 8, &x, sizeof(x)), 0);
	struct smmu_vcpu_counters c1 = vc(e->v);
	assert_int_equal(c1.tlb_hits, c0.tlb_hits + 1);
	assert_int_equal(c1.tlb_misses, c0.tlb_misses);
	tl_assert_audit_clean(e->vm);
}

/* Access D_GVA (read, or write when @write): a TLB hit without a fault? */
static bool access_hits(struct env *e, bool write, int *rc)
{
	struct smmu_vcpu_counters c0 = vc(e->v);
	uint64_t x = 0x1111;
	*rc = write ? smmu_vcpu_write(e->v, D_GVA + 16, &x, sizeof(x)) : smmu_vcpu_read(e->v, D_GVA, &x, sizeof(x));
	struct smmu_vcpu_counters c1 = vc(e->v);
	bool hit = c1.tlb_hits > c0.tlb_hits && c1.faults == c0.faults && c1.tlb_misses == c0.tlb_misses;
	bool faulted = c1.faults > c0.faults;
	assert_true(hit != faulted || (!hit && !faulted && *rc != 0));
	return hit;
}

/* After requests were processed: exactly invariant 10 broken, naming the vCPU under test. */
static void expect_only_tlb_violation(struct env *e)
{
	assert_int_equal(smmu_vcpu_enter(e->v), 0);
	assert_int_equal(smmu_vcpu_enter(e->other), 0);
	struct smmu_violation v[16];
	struct smmu_audit_report r = { .v = v, .cap = 16 };
	long n = smmu_audit(e->vm, &r);
	assert_true(n > 0);
	for (int i = 1; i < SMMU_INV_COUNT; i++)
		if (i != SMMU_INV_TLB && r.per_inv[i]) {
			smmu_audit_print(stdout, &r);
			fail_msg("invariant %d also broken", i);
		}
	assert_true(r.per_inv[SMMU_INV_TLB] >= 1);
	struct smmu_violation first;
	assert_true(tl_audit_count(e->vm, SMMU_INV_TLB, &first) >= 1);
	assert_int_equal(first.inv, SMMU_INV_TLB);
	assert_int_equal(first.vcpu, smmu_vcpu_id(e->v));
	assert_int_equal(first.addr, D_GVA);
}

/* Reload CR3 (flushes the TLB): the model is clean again, the stale entry was the only fault. */
static void repair(struct env *e)
{
	assert_int_equal(smmu_vcpu_set_cr3(e->v, smmu_gas_cr3(e->gas)), 0);
	tl_assert_audit_clean(e->vm);
}

/* ---- filling and flushing ----------------------------------------------------------------------- */

static void test_read_fills_tlb(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, 0);
	uint64_t x;
	struct smmu_vcpu_counters c0 = vc(e.v);
	assert_int_equal(smmu_vcpu_read(e.v, D_GVA, &x, sizeof(x)), 0); /* faults it in */
	struct smmu_vcpu_counters c1 = vc(e.v);
	assert_true(c1.tlb_misses > c0.tlb_misses);
	assert_int_equal(c1.tlb_hits, c0.tlb_hits);
	assert_int_equal(c1.faults, c0.faults + 1);
	assert_int_equal(smmu_vcpu_read(e.v, D_GVA + 100, &x, sizeof(x)), 0);
	struct smmu_vcpu_counters c2 = vc(e.v);
	assert_int_equal(c2.tlb_hits, c1.tlb_hits + 1);
	assert_int_equal(c2.tlb_misses, c1.tlb_misses);
	assert_int_equal(c2.faults, c1.faults);
	/* The entry carries write permission (the spte is writable): a write hits too. */
	assert_int_equal(smmu_vcpu_write(e.v, D_GVA + 200, &x, sizeof(x)), 0);
	assert_int_equal(vc(e.v).tlb_hits, c2.tlb_hits + 1);
	/* A mapped but never accessed page: a miss without a fault after the first one. */
	assert_int_equal(smmu_vcpu_fault(e.v, D_GVA + 0x1000, 0, NULL), SMMU_FAULT_MAPPED);
	c1 = vc(e.v);
	assert_int_equal(smmu_vcpu_read(e.v, D_GVA + 0x1000, &x, sizeof(x)), 0);
	c2 = vc(e.v);
	assert_int_equal(c2.tlb_misses, c1.tlb_misses + 1);
	assert_int_equal(c2.faults, c1.faults);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

static void test_set_cr3_flushes(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, 0);
	fill(&e);
	struct smmu_vcpu_counters c0 = vc(e.v);
	assert_int_equal(smmu_vcpu_set_cr3(e.v, smmu_gas_cr3(e.gas)), 0);
	assert_int_equal(vc(e.v).tlb_flushes, c0.tlb_flushes + 1);
	int rc;
	assert_false(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	assert_true(vc(e.v).faults > c0.faults); /* the root was dropped too */
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

static void test_fast_zap_reload_flushes(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, 0);
	fill(&e);
	struct smmu_vcpu_counters c0 = vc(e.v);
	assert_int_equal(smmu_fast_zap(e.vm, NULL), 0);
	int rc;
	assert_false(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	struct smmu_vcpu_counters c1 = vc(e.v);
	assert_int_equal(c1.reloads, c0.reloads + 1);
	assert_true(c1.tlb_flushes > c0.tlb_flushes);
	assert_true(c1.faults > c0.faults);
	assert_int_equal(smmu_vcpu_enter(e.other), 0);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

static void test_zap_all_commit_flushes(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, 0);
	fill(&e);
	struct smmu_vcpu_counters c0 = vc(e.v);
	assert_int_equal(smmu_zap_all(e.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	int rc;
	assert_false(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	assert_true(vc(e.v).faults > c0.faults);
	assert_int_equal(smmu_vcpu_enter(e.other), 0);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

/* ---- skipped flushes ------------------------------------------------------------------------------ */

/*
 * SMMU_SKIP_FLUSH_COMMIT_ZAP with zap_all: no stale entry in this model, by design. zap_all
 * always zaps every root in use, and zapping a root in use posts KVM_REQ_MMU_RELOAD to every
 * vCPU; processing the reload flushes the TLB (as kvm_mmu_load does in KVM) whether or not the
 * commit flushed. So the next access misses and faults, and the audit stays clean.
 * The commit flush does matter when a zap spares the root: below, a misaligned guest write to a
 * last-level table zaps that table's shadow page (kvm_mmu_pte_write → prepare_zap → commit).
 */
static void test_skip_commit_zap_with_zap_all(void **state)
{
	(void)state;
	struct env e;
	env_init(&e, SMMU_SKIP_FLUSH_COMMIT_ZAP);
	fill(&e);
	assert_int_equal(smmu_zap_all(e.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	int rc;
	assert_false(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	assert_int_equal(smmu_vcpu_enter(e.other), 0);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

/* Rewrite 8 bytes straddling entries 0 and 1 of D_GVA's last-level table, unchanged: a
 * misaligned pte write, so the whole shadow page is zapped (not the root). */
static void misaligned_table_write(struct env *e)
{
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(e->vm, smmu_gas_cr3(e->gas), D_GVA, &w), 0);
	smmu_gpa_t a = (w.table_gfn[0] << 12) + 4;
	uint64_t bytes;
	assert_int_equal(smmu_guest_read(e->vm, a, &bytes, sizeof(bytes)), 0);
	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(e->vm, &c0), 0);
	assert_int_equal(smmu_guest_write(e->vm, a, &bytes, sizeof(bytes)), 0);
	assert_int_equal(smmu_vm_get_counters(e->vm, &c1), 0);
	assert_int_equal(c1.pte_writes, c0.pte_writes + 1);
	assert_int_equal(c1.pages_zapped, c0.pages_zapped + 1);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(e->v, D_GVA, 0, &t), -EFAULT);
}

static void test_skip_commit_zap(void **state)
{
	(void)state;
	for (int skip = 1; skip >= 0; skip--) {
		struct env e;
		env_init(&e, skip ? SMMU_SKIP_FLUSH_COMMIT_ZAP : 0);
		fill(&e);
		misaligned_table_write(&e);
		if (skip) {
			expect_only_tlb_violation(&e);
			int rc;
			assert_true(access_hits(&e, false, &rc)); /* stale: no spte behind it */
			assert_int_equal(rc, 0);
			repair(&e);
		} else {
			int rc;
			assert_false(access_hits(&e, false, &rc));
			assert_int_equal(rc, 0);
			tl_assert_audit_clean(e.vm);
		}
		env_fini(&e);
	}
}

static void test_skip_rmap_unmap(void **state)
{
	(void)state;
	for (int skip = 1; skip >= 0; skip--) {
		struct env e;
		env_init(&e, skip ? SMMU_SKIP_FLUSH_RMAP_UNMAP : 0);
		fill(&e);
		struct smmu_memslot_info info;
		assert_int_equal(smmu_memslot_get(e.vm, 1, &info), 0);
		uint8_t *h = (uint8_t *)info.hva + (DATA_GFN - S1_BASE) * 4096;
		assert_int_equal(smmu_mmu_notifier_invalidate_range(e.vm, h, h + 4096), 1);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(e.v, D_GVA, 0, &t), -EFAULT);
		int rc;
		if (skip) {
			expect_only_tlb_violation(&e);
			assert_true(access_hits(&e, false, &rc)); /* reaches memory the host unmapped */
			assert_int_equal(rc, 0);
			repair(&e);
		} else {
			assert_false(access_hits(&e, false, &rc));
			assert_int_equal(rc, 0);
			tl_assert_audit_clean(e.vm);
		}
		env_fini(&e);
	}
}

static void test_skip_pte_write(void **state)
{
	(void)state;
	for (int skip = 1; skip >= 0; skip--) {
		struct env e;
		env_init(&e, skip ? SMMU_SKIP_FLUSH_PTE_WRITE : 0);
		fill(&e);
		/* The guest unmaps the page: an aligned store to its PTE, trapped. */
		assert_int_equal(smmu_gas_unmap(e.gas, D_GVA), 0);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(e.v, D_GVA, 0, &t), -EFAULT);
		int rc;
		if (skip) {
			expect_only_tlb_violation(&e);
			assert_true(access_hits(&e, false, &rc)); /* the guest unmapped it, yet it reads */
			assert_int_equal(rc, 0);
			repair(&e);
		} else {
			struct smmu_vcpu_counters c0 = vc(e.v);
			assert_false(access_hits(&e, false, &rc));
			assert_int_equal(rc, -EFAULT); /* the guest's #PF */
			assert_true(vc(e.v).faults > c0.faults);
			tl_assert_audit_clean(e.vm);
		}
		env_fini(&e);
	}
}

static void test_skip_wrprot(void **state)
{
	(void)state;
	for (int skip = 1; skip >= 0; skip--) {
		struct env e;
		env_init(&e, skip ? SMMU_SKIP_FLUSH_WRPROT : 0);
		fill(&e);
		assert_int_equal(smmu_memslot_set_flags(e.vm, 1, SMMU_MEM_LOG_DIRTY_PAGES), 0);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(e.v, D_GVA, SMMU_ACC_WRITE, &t), -EACCES);
		uint64_t bm[1024 / 64];
		int rc;
		if (skip) {
			expect_only_tlb_violation(&e);
			/* The write goes through the stale writable entry: no fault, so not logged. */
			assert_true(access_hits(&e, true, &rc));
			assert_int_equal(rc, 0);
			assert_int_equal(smmu_memslot_get_dirty_log(e.vm, 1, bm, 1024 / 64), 0);
			repair(&e);
		} else {
			assert_false(access_hits(&e, true, &rc));
			assert_int_equal(rc, 0);
			memset(bm, 0, sizeof(bm));
			assert_int_equal(smmu_memslot_get_dirty_log(e.vm, 1, bm, 1024 / 64), 1);
			assert_true(bm[0] & (1ull << (DATA_GFN - S1_BASE)));
			tl_assert_audit_clean(e.vm);
		}
		env_fini(&e);
	}
}

/*
 * SMMU_SKIP_RELOAD_FAST_ZAP: no stale TLB entry in this model; what breaks is the root.
 * Without the reload request the vCPU keeps its root after the bump. (1) Bump alone: the TLB
 * entry still matches a present spte (the obsolete page is intact), so the hit is "correct" for
 * invariant 10; the audit reports invariant 8 instead (an obsolete page reachable from a root
 * whose vCPU has no reload pending). (2) The full fast zap: the drain zaps the (obsolete) root
 * too and its commit flushes every TLB, so the entry is gone before it can be used stale; the
 * vCPU is left on an invalid root that nothing makes it drop. 3.11 (the default profile) has no
 * stale-root check: the fault maps under that root (today's would retry until the access gives
 * up with -EAGAIN). The audit reports invariant 8, not 10.
 */
static void test_skip_reload_fast_zap(void **state)
{
	(void)state;
	struct env e;
	/* (1) bump only */
	env_init(&e, SMMU_SKIP_RELOAD_FAST_ZAP);
	fill(&e);
	struct smmu_vm_counters m0, m1;
	assert_int_equal(smmu_vm_get_counters(e.vm, &m0), 0);
	assert_int_equal(smmu_fast_zap_bump(e.vm, NULL), 0);
	assert_int_equal(smmu_vm_get_counters(e.vm, &m1), 0);
	assert_int_equal(m1.reload_requests, m0.reload_requests); /* skipped */
	assert_int_equal(smmu_vcpu_enter(e.v), 0);
	int rc;
	assert_true(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	struct smmu_violation v;
	assert_true(tl_audit_count(e.vm, SMMU_INV_OBSOLETE_ROOT, &v) > 0);
	assert_int_equal(v.vcpu, smmu_vcpu_id(e.v));
	assert_int_equal(tl_audit_count(e.vm, SMMU_INV_TLB, NULL), 0);
	env_fini(&e);

	/* (2) the full fast zap */
	env_init(&e, SMMU_SKIP_RELOAD_FAST_ZAP);
	fill(&e);
	assert_int_equal(smmu_fast_zap(e.vm, NULL), 0);
	assert_int_equal(smmu_vcpu_enter(e.v), 0);
	assert_int_equal(smmu_vcpu_enter(e.other), 0);
	assert_int_equal(tl_audit_count(e.vm, SMMU_INV_TLB, NULL), 0);
	assert_true(tl_audit_count(e.vm, SMMU_INV_OBSOLETE_ROOT, &v) > 0);
	assert_int_equal(v.vcpu, smmu_vcpu_id(e.v));
	struct smmu_vcpu_counters c0 = vc(e.v);
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(e.v, D_GVA, &x, sizeof(x)), 0);
	struct smmu_vcpu_counters c1 = vc(e.v);
	assert_int_equal(c1.tlb_hits, c0.tlb_hits); /* the commit flushed the TLB */
	assert_true(c1.faults > c0.faults);
	repair(&e); /* a CR3 load drops the root: clean, and the access works again */
	assert_int_equal(smmu_vcpu_read(e.v, D_GVA, &x, sizeof(x)), 0);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);

	/* Without the skip: the reload flushes, the access faults and succeeds, clean. */
	env_init(&e, 0);
	fill(&e);
	assert_int_equal(smmu_fast_zap(e.vm, NULL), 0);
	assert_false(access_hits(&e, false, &rc));
	assert_int_equal(rc, 0);
	assert_int_equal(smmu_vcpu_enter(e.other), 0);
	tl_assert_audit_clean(e.vm);
	env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_fills_tlb),
		cmocka_unit_test(test_set_cr3_flushes),
		cmocka_unit_test(test_fast_zap_reload_flushes),
		cmocka_unit_test(test_zap_all_commit_flushes),
		cmocka_unit_test(test_skip_commit_zap_with_zap_all),
		cmocka_unit_test(test_skip_commit_zap),
		cmocka_unit_test(test_skip_rmap_unmap),
		cmocka_unit_test(test_skip_pte_write),
		cmocka_unit_test(test_skip_wrprot),
		cmocka_unit_test(test_skip_reload_fast_zap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
