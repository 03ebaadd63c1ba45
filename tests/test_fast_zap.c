/*
 * The generation-bump fast zap (kvm_mmu_invalidate_zap_all_pages): what it leaves, that new
 * faults never meet an obsolete page after the bump, that the drain works in batches and breaks
 * the lock between them, the generation arithmetic, and the reload asked of every vCPU.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_PAGES 16384ull
#define POOL_A 16
#define POOL_B 1200
#define POOL_PAGES 1100
#define GVA 0x40000000ull
#define REGION (2ull << 20)
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

static smmu_vm *new_vm(uint32_t zap_batch)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.zap_batch = zap_batch;
	cfg.max_mmu_pages = 1ull << 20;
	smmu_vm *vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	return vm;
}

static smmu_gva_t addr_of(uint64_t i) { return GVA + i * REGION + (i % 3) * 0x1000; }

/* Map [first, first + n) of the address pattern in @gas (one last-level table each). */
static void map_range(smmu_gas *gas, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		assert_int_equal(smmu_gas_map(gas, addr_of(i), 8192 + i, SMMU_LEVEL_4K, RW_USER), 0);
}

static void fault_range(smmu_vcpu *v, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		int r, tries = 0;
		do
			r = smmu_vcpu_fault(v, addr_of(i), SMMU_ACC_WRITE, NULL);
		while (r == SMMU_FAULT_RETRY && ++tries < 4);
		assert_int_equal(r, SMMU_FAULT_MAPPED);
	}
}

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

struct census {
	uint64_t all, obsolete, invalid, pinned_invalid, current;
};

static struct census take_census(smmu_vm *vm)
{
	struct census c = { 0 };
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		smmu_sp_get_info(vm, sp, &i);
		c.all++;
		c.obsolete += i.obsolete;
		c.invalid += i.invalid;
		c.pinned_invalid += i.invalid && i.root_count > 0;
		c.current += !i.obsolete && !i.invalid;
	}
	unlock(vm);
	return c;
}

/* ---- what a fast zap leaves ------------------------------------------------------------------------ */

static void test_only_pinned_roots_left(void **state)
{
	(void)state;
	smmu_vm *vm = new_vm(0);
	smmu_gas *ga, *gb;
	assert_int_equal(smmu_gas_create(vm, POOL_A, POOL_PAGES, &ga), 0);
	assert_int_equal(smmu_gas_create(vm, POOL_B, POOL_PAGES, &gb), 0);
	map_range(ga, 0, 200);
	map_range(gb, 0, 100);
	smmu_vcpu *va, *vb, *idle;
	assert_int_equal(smmu_vcpu_create(vm, &va), 0);
	assert_int_equal(smmu_vcpu_create(vm, &vb), 0);
	assert_int_equal(smmu_vcpu_create(vm, &idle), 0); /* never loads a root */
	assert_int_equal(smmu_vcpu_set_cr3(va, smmu_gas_cr3(ga)), 0);
	assert_int_equal(smmu_vcpu_set_cr3(vb, smmu_gas_cr3(gb)), 0);
	fault_range(va, 0, 200);
	fault_range(vb, 0, 100);
	uint64_t before = counters(vm).n_used_mmu_pages;
	uint64_t gen = smmu_mmu_valid_gen(vm);

	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap(vm, &rep), 0);
	assert_true(rep.completed);
	assert_int_equal(rep.pages_zapped, before - 2); /* all but the two roots in use */
	assert_true(rep.rounds >= 1);
	assert_int_equal(rep.remote_flushes, 1);        /* one flush, at commit */
	assert_int_equal(smmu_mmu_valid_gen(vm), gen + 1);
	struct census c = take_census(vm);
	assert_int_equal(c.all, 2);
	assert_int_equal(c.pinned_invalid, 2);
	assert_int_equal(c.obsolete, 2);
	tl_assert_audit_clean(vm); /* the roots wait for their vCPUs' reloads */

	assert_int_equal(smmu_vcpu_enter(va), 0);
	assert_int_equal(take_census(vm).all, 1);
	assert_int_equal(smmu_vcpu_enter(vb), 0);
	assert_int_equal(smmu_vcpu_enter(idle), 0);
	assert_int_equal(counters(vm).n_used_mmu_pages, 0);
	struct smmu_translation t;
	for (uint64_t i = 0; i < 200; i += 13)
		assert_int_equal(smmu_vcpu_translate(va, addr_of(i), 0, &t), -EFAULT);
	tl_assert_audit_clean(vm);
	fault_range(va, 0, 200);
	fault_range(vb, 0, 100);
	assert_int_equal(counters(vm).n_used_mmu_pages, before);
	tl_assert_audit_clean(vm);

	assert_int_equal(smmu_fast_zap(NULL, &rep), -EINVAL);
	assert_int_equal(smmu_fast_zap_bump(NULL, &rep), -EINVAL);
	assert_int_equal(smmu_fast_zap_drain(NULL, &rep), -EINVAL);
	smmu_vcpu_destroy(va);
	smmu_vcpu_destroy(vb);
	smmu_vcpu_destroy(idle);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
}

static void test_direct_vm(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_DIRECT, SLOT_PAGES, 0, 0);
	assert_int_equal(smmu_memslot_set_flags(g.vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0); /* 4K only */
	for (uint64_t i = 0; i < 32; i++)
		assert_int_equal(smmu_vcpu_fault(g.vcpu, i * REGION, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	uint64_t before = counters(g.vm).n_used_mmu_pages;
	assert_true(before >= 32);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap(g.vm, &rep), 0);
	assert_int_equal(rep.pages_zapped, before - 1);
	struct census c = take_census(g.vm);
	assert_int_equal(c.all, 1);
	assert_int_equal(c.pinned_invalid, 1);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(counters(g.vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(g.vm);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 5 * REGION, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- after the bump alone ------------------------------------------------------------------------ */

struct page_rec {
	const uint64_t *spt;
	struct smmu_sp_info info;
};

/* Every page reachable from @root_idx: how many, and how many are obsolete or of another gen. */
static void walk_reachable(const struct page_rec *p, size_t n, size_t idx, uint64_t gen, uint64_t *reached,
			   uint64_t *bad, uint64_t *missing)
{
	(*reached)++;
	if (p[idx].info.obsolete || p[idx].info.invalid || p[idx].info.mmu_valid_gen != gen)
		(*bad)++;
	int level = p[idx].info.level;
	if (level == 1)
		return;
	for (int e = 0; e < SMMU_PT_ENTRIES; e++) {
		uint64_t spte = p[idx].spt[e];
		if (!(spte & SMMU_PTE_PRESENT) || (spte & SMMU_PTE_LARGE))
			continue;
		const uint64_t *child = (const uint64_t *)(uintptr_t)(spte & SMMU_PTE_ADDR_MASK);
		size_t k;
		for (k = 0; k < n && p[k].spt != child; k++)
			;
		if (k == n) {
			(*missing)++;
			continue;
		}
		walk_reachable(p, n, k, gen, reached, bad, missing);
	}
}

static void test_new_faults_never_get_obsolete_pages(void **state)
{
	(void)state;
	smmu_vm *vm = new_vm(0);
	smmu_gas *gas;
	smmu_vcpu *v;
	assert_int_equal(smmu_gas_create(vm, POOL_A, POOL_PAGES, &gas), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	map_range(gas, 0, 400);
	fault_range(v, 0, 200); /* the old generation */
	uint64_t old_pages = counters(vm).n_used_mmu_pages;
	struct smmu_vm_counters c0 = counters(vm);

	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap_bump(vm, &rep), 0);
	assert_int_equal(rep.pages_zapped, 0);
	struct smmu_vm_counters c1 = counters(vm);
	assert_int_equal(c1.mmu_valid_gen, c0.mmu_valid_gen + 1);
	assert_int_equal(c1.reload_requests, c0.reload_requests + 1);
	struct census cs = take_census(vm);
	assert_int_equal(cs.all, old_pages);
	assert_int_equal(cs.obsolete, old_pages); /* every page at once */
	assert_int_equal(cs.invalid, 0);          /* but none zapped yet */
	tl_assert_audit_clean(vm);

	/* New addresses, through the same guest tables: fresh shadow pages for them. */
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(v, addr_of(200), SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 4); /* a new root, L3, L2 and L1: none reused */
	fault_range(v, 201, 199);
	/* And some old addresses again. */
	fault_range(v, 0, 20);

	uint64_t gen = smmu_mmu_valid_gen(vm);
	size_t n = (size_t)counters(vm).n_used_mmu_pages;
	struct page_rec *p = calloc(n, sizeof(*p));
	assert_non_null(p);
	size_t k = 0, root = SIZE_MAX, roots = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp && k < n; sp = smmu_active_next(vm, sp), k++) {
		smmu_sp_get_info(vm, sp, &p[k].info);
		p[k].spt = p[k].info.spt;
		if (p[k].info.level == 4 && p[k].info.root_count > 0) {
			root = k;
			roots++;
		}
	}
	uint64_t reached = 0, bad = 0, missing = 0;
	if (roots == 1)
		walk_reachable(p, k, root, gen, &reached, &bad, &missing);
	unlock(vm);
	assert_int_equal(k, n);
	assert_int_equal(roots, 1);
	assert_int_equal(p[root].info.gfn, POOL_A);
	assert_int_equal(missing, 0);
	assert_int_equal(bad, 0);
	assert_true(reached >= 4 + 219);
	/* The old pages are all still there, obsolete, until drained; the old root is unpinned. */
	uint64_t old_left = 0;
	for (size_t i = 0; i < k; i++)
		old_left += p[i].info.obsolete;
	assert_int_equal(old_left, old_pages);
	free(p);
	tl_assert_audit_clean(vm);

	assert_int_equal(smmu_fast_zap_drain(vm, &rep), 0);
	assert_int_equal(rep.pages_zapped, old_pages);
	assert_int_equal(smmu_mmu_valid_gen(vm), gen); /* the drain does not bump */
	cs = take_census(vm);
	assert_int_equal(cs.obsolete, 0);
	assert_int_equal(cs.all, reached);
	assert_int_equal(cs.current, reached);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, addr_of(300), SMMU_ACC_WRITE, &t), 0);
	assert_int_equal(smmu_vcpu_translate(v, addr_of(100), 0, &t), -EFAULT); /* old, not refaulted */
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

/* ---- batches and lock breaks ------------------------------------------------------------------------ */

/* Contention without timing: tl_waiter (testlib) queues for the lock on every 40th page zapped. */
static void test_drain_breaks_lock_between_batches(void **state)
{
	(void)state;
	smmu_vm *vm = new_vm(1);
	struct smmu_vm_config cfg;
	assert_int_equal(smmu_vm_get_config(vm, &cfg), 0);
	assert_int_equal(cfg.zap_batch, 1);
	smmu_gas *gas;
	smmu_vcpu *v;
	assert_int_equal(smmu_gas_create(vm, POOL_A, POOL_PAGES, &gas), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	map_range(gas, 0, 300);
	fault_range(v, 0, 300);
	uint64_t before = counters(vm).n_used_mmu_pages;

	struct tl_waiter w = { .vm = vm, .zapper = pthread_self(), .want = 4, .every = 40, .phase = 5 };
	atomic_init(&w.tickets, 0);
	atomic_init(&w.served, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tl_waiter_main, &w), 0);
	assert_int_equal(smmu_stats_reset(vm), 0);
	assert_int_equal(smmu_set_hook(vm, tl_waiter_hook, &w), 0);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap(vm, &rep), 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	printf("fast zap, batch 1, with a waiter: %llu pages, %llu rounds, %llu lock breaks\n",
	       (unsigned long long)rep.pages_zapped, (unsigned long long)rep.rounds,
	       (unsigned long long)rep.lock_breaks);
	assert_int_equal(atomic_load(&w.served), w.want);
	assert_true(rep.lock_breaks >= w.want);
	assert_int_equal(rep.rounds, 1 + rep.lock_breaks);
	assert_int_equal(rep.pages_zapped, before - 1);
	assert_true(rep.completed);
	struct smmu_site_stats st;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_FAST_ZAP, &st), 0);
	assert_int_equal(st.breaks, rep.lock_breaks);
	assert_true(st.handoffs >= w.want);
	/* No flush at the breaks: a single one at commit. */
	assert_int_equal(rep.remote_flushes, 1);
	assert_int_equal(smmu_vcpu_enter(v), 0);
	assert_int_equal(counters(vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(vm);

	/* Without a waiter, batch 1 never breaks. */
	fault_range(v, 0, 50);
	assert_int_equal(smmu_fast_zap(vm, &rep), 0);
	assert_int_equal(rep.lock_breaks, 0);
	assert_int_equal(rep.rounds, 1);
	assert_int_equal(smmu_vcpu_enter(v), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

/* ---- generations and reloads ----------------------------------------------------------------------- */

static void test_generation_increments_by_one(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, SLOT_PAGES, POOL_A, 64);
	uint64_t gen = smmu_mmu_valid_gen(g.vm);
	assert_int_equal(counters(g.vm).mmu_valid_gen, gen);
	for (int i = 0; i < 5; i++) {
		tl_map_and_fault(&g, GVA + (uint64_t)i * 0x1000, 500 + (smmu_gfn_t)i, 1, SMMU_ACC_WRITE);
		assert_int_equal(smmu_fast_zap_bump(g.vm, NULL), 0);
		assert_int_equal(smmu_mmu_valid_gen(g.vm), gen + 1);
		assert_int_equal(counters(g.vm).mmu_valid_gen, gen + 1);
		gen++;
		assert_int_equal(smmu_fast_zap_drain(g.vm, NULL), 0);
		assert_int_equal(smmu_mmu_valid_gen(g.vm), gen);
		assert_int_equal(smmu_fast_zap(g.vm, NULL), 0);
		assert_int_equal(smmu_mmu_valid_gen(g.vm), gen + 1);
		gen++;
		assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	}
	/* A drain with nothing obsolete, and a zap_all, leave the generation alone. */
	assert_int_equal(smmu_fast_zap_drain(g.vm, NULL), 0);
	assert_int_equal(smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	assert_int_equal(smmu_mmu_valid_gen(g.vm), gen);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_reload_requested_from_every_vcpu(void **state)
{
	(void)state;
	smmu_vm *vm = new_vm(0);
	smmu_gas *ga, *gb;
	assert_int_equal(smmu_gas_create(vm, POOL_A, 64, &ga), 0);
	assert_int_equal(smmu_gas_create(vm, POOL_B, 64, &gb), 0);
	map_range(ga, 0, 8);
	map_range(gb, 0, 8);
	enum { NV = 4 };
	smmu_vcpu *v[NV];
	for (int i = 0; i < NV; i++) {
		assert_int_equal(smmu_vcpu_create(vm, &v[i]), 0);
		assert_int_equal(smmu_vcpu_set_cr3(v[i], smmu_gas_cr3(i % 2 ? gb : ga)), 0);
		if (i < NV - 1) /* the last one has no root */
			fault_range(v[i], 0, 8);
	}
	struct smmu_vcpu_counters c0[NV], c1;
	for (int i = 0; i < NV; i++)
		assert_int_equal(smmu_vcpu_get_counters(v[i], &c0[i]), 0);
	uint64_t req0 = counters(vm).reload_requests;
	assert_int_equal(smmu_fast_zap(vm, NULL), 0);
	assert_true(counters(vm).reload_requests >= req0 + 1);
	tl_assert_audit_clean(vm); /* pending reloads: the roots are not checked yet */
	for (int i = 0; i < NV; i++) {
		assert_int_equal(smmu_vcpu_enter(v[i]), 0);
		assert_int_equal(smmu_vcpu_get_counters(v[i], &c1), 0);
		assert_int_equal(c1.reloads, c0[i].reloads + 1);
		assert_int_equal(c1.tlb_flushes, c0[i].tlb_flushes + 1);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(v[i], addr_of(0), 0, &t), -EFAULT);
	}
	assert_int_equal(counters(vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(vm);
	for (int i = 0; i < NV; i++)
		smmu_vcpu_destroy(v[i]);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_pinned_roots_left),
		cmocka_unit_test(test_direct_vm),
		cmocka_unit_test(test_new_faults_never_get_obsolete_pages),
		cmocka_unit_test(test_drain_breaks_lock_between_batches),
		cmocka_unit_test(test_generation_increments_by_one),
		cmocka_unit_test(test_reload_requested_from_every_vcpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
