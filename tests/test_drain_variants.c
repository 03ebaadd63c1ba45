/*
 * The fast zap drain's two variants beside KVM's: zap_leaf_first (every obsolete page is zapped
 * after its obsolete children, so no step unlinks children) and zap_commit_per_batch (every batch
 * is flushed and freed, and the lock let go, before the next). Both must zap exactly what KVM's
 * order zaps and leave the same, audit-clean state.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include "smmu_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_PAGES 65536ull
#define POOL_GFN 60000
#define POOL_PAGES 4000
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define SPTE_PRESENT 1ull
#define SPTE_LARGE (1ull << 7)
#define SPTE_ADDR 0x000ffffffffff000ull
#define MAX_PAGES 4096

/* A spread of mappings: 4 regions of 512 GiB (level-3 tables), 5 GiB in each (level-2), 10 of
 * 2 MiB in each GiB (level-1), 3 pages in each: 225 tables, most with several children. */
static void populate(smmu_vm *vm, smmu_gas *gas, smmu_vcpu *v)
{
	(void)vm;
	uint64_t gfn = 16;
	for (uint64_t g = 0; g < 4; g++)
		for (uint64_t h = 0; h < 5; h++)
			for (uint64_t m = 0; m < 10; m++)
				for (uint64_t k = 0; k < 3; k++) {
					smmu_gva_t gva = (g << 39) + (h << 30) + ((m * 37) << 21) + (k * 3 << 12);
					assert_int_equal(smmu_gas_map(gas, gva, gfn++, SMMU_LEVEL_4K, RW_USER), 0);
					assert_int_equal(smmu_vcpu_fault(v, gva, SMMU_ACC_WRITE, NULL),
							 SMMU_FAULT_MAPPED);
				}
}

struct tree {
	int n;
	smmu_sp *sp[MAX_PAGES];
	const uint64_t *spt[MAX_PAGES];
	int level[MAX_PAGES];
	int npairs;
	int parent[MAX_PAGES * 4], child[MAX_PAGES * 4]; /* indexes into sp[] */
};

static int index_of_table(const struct tree *t, uint64_t addr)
{
	for (int i = 0; i < t->n; i++)
		if ((uint64_t)(uintptr_t)t->spt[i] == addr)
			return i;
	return -1;
}

static int index_of(const struct tree *t, const smmu_sp *sp)
{
	for (int i = 0; i < t->n; i++)
		if (t->sp[i] == sp)
			return i;
	return -1;
}

/* Every page and every parent → child link, read through the strategy API. */
static void snapshot(smmu_vm *vm, struct tree *t)
{
	memset(t, 0, sizeof(*t));
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		assert_int_equal(smmu_sp_get_info(vm, sp, &i), 0);
		assert_true(t->n < MAX_PAGES);
		t->sp[t->n] = sp;
		t->spt[t->n] = i.spt;
		t->level[t->n] = i.level;
		t->n++;
	}
	for (int p = 0; p < t->n; p++) {
		if (t->level[p] == 1)
			continue;
		for (int e = 0; e < 512; e++) {
			uint64_t spte = t->spt[p][e];
			if (!(spte & SPTE_PRESENT) || (spte & SPTE_LARGE))
				continue;
			int c = index_of_table(t, spte & SPTE_ADDR);
			assert_true(c >= 0);
			t->parent[t->npairs] = p;
			t->child[t->npairs] = c;
			t->npairs++;
		}
	}
	smmu_mmu_unlock(vm);
}

/* What the hook sees: the order of zaps, and whether a page's zap came before every earlier
 * zapped page was freed. */
struct order {
	const struct tree *t;
	int zapped_at[MAX_PAGES]; /* 1-based position in the zap order, 0 = not zapped */
	int n_zapped, n_freed;
	int zaps_with_unfreed_pages; /* a zap while an earlier zapped page was not yet freed */
	int pinned;                  /* zapped pages that stay (roots in use) */
};

static void hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct order *o = ctx;
	if (ev == SMMU_EV_PAGE_ZAPPED) {
		int i = index_of(o->t, sp);
		assert_true(i >= 0);
		struct smmu_sp_info info;
		assert_int_equal(smmu_sp_get_info(vm, sp, &info), 0);
		if (info.invalid) { /* a pinned root's second prepare_zap, when its vCPU lets go */
			assert_int_not_equal(o->zapped_at[i], 0);
			return;
		}
		assert_int_equal(o->zapped_at[i], 0);
		if (o->n_freed < o->n_zapped - o->pinned)
			o->zaps_with_unfreed_pages++;
		o->zapped_at[i] = ++o->n_zapped;
		if (info.root_count)
			o->pinned++;
	} else if (ev == SMMU_EV_PAGE_FREED) {
		o->n_freed++;
	}
}

struct drain_result {
	struct smmu_zap_report rep;
	int parents_first, children_first, pairs;
	int zaps_with_unfreed_pages;
	struct smmu_site_stats st;
};

static struct drain_result run(bool leaf_first, bool per_batch, uint32_t batch)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.zap_batch = batch;
	cfg.zap_leaf_first = leaf_first;
	cfg.zap_commit_per_batch = per_batch;
	cfg.max_mmu_pages = 1u << 20;
	smmu_vm *vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	smmu_gas *gas;
	smmu_vcpu *v;
	assert_int_equal(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &gas), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	populate(vm, gas, v);

	static struct tree t;
	static struct order o;
	snapshot(vm, &t);
	memset(&o, 0, sizeof(o));
	o.t = &t;
	struct drain_result res = { 0 };
	assert_int_equal(smmu_stats_reset(vm), 0);
	assert_int_equal(smmu_set_hook(vm, hook, &o), 0);
	assert_int_equal(smmu_fast_zap(vm, &res.rep), 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_FAST_ZAP, &res.st), 0);

	/* Every page of the snapshot was zapped, each once. */
	assert_int_equal(o.n_zapped, t.n);
	for (int i = 0; i < t.n; i++)
		assert_true(o.zapped_at[i] > 0);
	res.pairs = t.npairs;
	for (int k = 0; k < t.npairs; k++) {
		if (o.zapped_at[t.child[k]] < o.zapped_at[t.parent[k]])
			res.children_first++;
		else
			res.parents_first++;
	}
	res.zaps_with_unfreed_pages = o.zaps_with_unfreed_pages;
	assert_int_equal(res.rep.pages_zapped, (uint64_t)(t.n - o.pinned));

	/* The pinned root goes when the vCPU reloads; then nothing is left. */
	tl_assert_audit_clean(vm);
	assert_int_equal(smmu_vcpu_enter(v), 0);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.n_used_mmu_pages, 0);
	tl_assert_audit_clean(vm);
	/* And the guest faults back in as before. */
	populate(vm, gas, v);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	return res;
}

/* KVM's order zaps a parent before its children: the workload has such pairs to reorder. */
static void test_kvm_order_zaps_parents_first(void **state)
{
	(void)state;
	struct drain_result r = run(false, false, 10);
	printf("KVM order: %d links, %d parent zapped first\n", r.pairs, r.parents_first);
	assert_true(r.pairs > 200);
	assert_true(r.parents_first > r.pairs / 2);
}

static void test_leaf_first_zaps_every_child_before_its_parent(void **state)
{
	(void)state;
	for (uint32_t batch = 1; batch <= 10; batch += 9) {
		struct drain_result r = run(true, false, batch);
		assert_true(r.pairs > 200);
		assert_int_equal(r.children_first, r.pairs);
		assert_int_equal(r.parents_first, 0);
	}
	struct drain_result r = run(true, true, 1);
	assert_int_equal(r.children_first, r.pairs);
}

/* Without a waiter KVM's drain never breaks; the per-batch variant lets go after every batch,
 * flushes once per batch, and frees a batch before it zaps the next page. */
static void test_per_batch_commit_breaks_and_frees_every_batch(void **state)
{
	(void)state;
	struct drain_result kvm = run(false, false, 1);
	assert_int_equal(kvm.rep.lock_breaks, 0);
	assert_int_equal(kvm.rep.remote_flushes, 1);
	assert_true(kvm.zaps_with_unfreed_pages > 100);

	for (int leaf = 0; leaf < 2; leaf++) {
		struct drain_result r = run(leaf, true, 1);
		uint64_t zapped = r.rep.pages_zapped;
		printf("per batch (leaf first %d): %llu pages, %llu breaks, %llu flushes, %llu holds\n", leaf,
		       (unsigned long long)zapped, (unsigned long long)r.rep.lock_breaks,
		       (unsigned long long)r.rep.remote_flushes, (unsigned long long)r.st.hold.count);
		/* A break before each page but the first (and before the pinned root, which counts
		 * for no batch, when it comes last): one stretch of holding per page. */
		assert_true(r.rep.lock_breaks >= zapped - 1 && r.rep.lock_breaks <= zapped);
		assert_int_equal(r.rep.rounds, r.rep.lock_breaks + 1);
#if SMMU_LOCK_STATS
		assert_int_equal(r.st.hold.count, r.rep.lock_breaks + 1);
#endif
		assert_int_equal(r.rep.remote_flushes, zapped);
		assert_int_equal(r.zaps_with_unfreed_pages, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kvm_order_zaps_parents_first),
		cmocka_unit_test(test_leaf_first_zaps_every_child_before_its_parent),
		cmocka_unit_test(test_per_batch_commit_breaks_and_frees_every_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
