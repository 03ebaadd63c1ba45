/*
 * inspect.h: a slot's shadow pages by kind and generation, a gfn's rmap entries per level and its
 * lpage_info counts, each read under mmu_lock by the library. Every answer is checked against a
 * hand-written oracle over strategy.h's primitives (what prototypes wrote before) and against
 * figures known from the scenario; bad arguments return their errno and leave the outputs alone.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <string.h>

#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define DATA_PAGES 1024ull  /* slot 0: gfns 0..1023, 2 MiB-aligned at both ends */
#define POOL_GFN 4096ull    /* slot 1: the guest's page tables */
#define POOL_PAGES 64ull

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

/* The oracle: walk active_mmu_pages by hand and count the pages of slot @id that @filter picks. */
static long oracle_slot_pages(smmu_vm *vm, int id, unsigned filter)
{
	smmu_gfn_t base;
	uint64_t npages;
	long n = 0;
	lock(vm);
	assert_int_equal(smmu_slot_range(vm, id, &base, &npages), 0);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info si;
		assert_int_equal(smmu_sp_get_info(vm, sp, &si), 0);
		if (si.gfn < base || si.gfn - base >= npages)
			continue;
		if (!(filter & (si.direct ? SMMU_SP_DIRECT : SMMU_SP_INDIRECT)))
			continue;
		if (si.invalid ? !(filter & SMMU_SP_INVALID) : si.obsolete && !(filter & SMMU_SP_OBSOLETE))
			continue;
		n++;
	}
	unlock(vm);
	return n;
}

static long slot_pages(smmu_vm *vm, int id, unsigned filter)
{
	long n = smmu_inspect_slot_pages(vm, id, filter, NULL, 0);
	assert_int_equal(n, oracle_slot_pages(vm, id, filter));
	return n;
}

/* Shadow mode, data in slot 0 and the guest's tables in slot 1, one vCPU with CR3 loaded. */
static void shadow_guest(struct tl_guest *g)
{
	g->vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_memslot_create(g->vm, 0, 0, DATA_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(g->vm, 1, POOL_GFN, POOL_PAGES, 0), 0);
	assert_int_equal(smmu_gas_create(g->vm, POOL_GFN, POOL_PAGES, &g->gas), 0);
	assert_int_equal(smmu_vcpu_create(g->vm, &g->vcpu), 0);
	assert_int_equal(smmu_vcpu_set_cr3(g->vcpu, smmu_gas_cr3(g->gas)), 0);
}

static void map_fault(struct tl_guest *g, smmu_gva_t gva, smmu_gfn_t gfn)
{
	assert_int_equal(smmu_gas_map(g->gas, gva, gfn, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_fault(g->vcpu, gva, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
}

/* The pages shadowing the guest's 4 tables belong to the tables' slot, not to the data's; a fast
 * zap makes them obsolete, the zapped root in use is invalid until the vCPU reloads. */
static void test_slot_pages_shadow(void **state)
{
	(void)state;
	struct tl_guest g;
	shadow_guest(&g);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_ALL), 0);
	for (int i = 0; i < 8; i++)
		map_fault(&g, 0x400000 + (smmu_gva_t)i * SMMU_PAGE_SIZE, 100 + (smmu_gfn_t)i);

	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_INDIRECT), 4); /* PML4, PDPT, PD, PT */
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_DIRECT), 0);
	assert_int_equal(slot_pages(g.vm, 0, SMMU_SP_ALL), 0); /* data is mapped, never shadowed */

	/* The list: newest first (the PT, level 1), every gfn in the pool, no table pointer. */
	struct smmu_sp_info info[6];
	memset(info, 0xa5, sizeof(info));
	struct smmu_sp_info untouched = info[2];
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 1, SMMU_SP_INDIRECT, info, 2), 4);
	assert_memory_equal(&info[2], &untouched, sizeof(untouched)); /* cap respected */
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 1, SMMU_SP_INDIRECT, info, 6), 4);
	unsigned levels = 0;
	for (int i = 0; i < 4; i++) {
		assert_false(info[i].direct);
		assert_false(info[i].obsolete);
		assert_null(info[i].spt);
		assert_true(info[i].gfn >= POOL_GFN && info[i].gfn < POOL_GFN + POOL_PAGES);
		levels |= 1u << info[i].level;
	}
	assert_int_equal(info[0].level, SMMU_LEVEL_4K);
	assert_int_equal(info[3].level, SMMU_LEVEL_512G);
	assert_int_equal(levels, 0x1e);

	/* Fast zap, bump only: the pages are obsolete, still there. */
	struct smmu_zap_report rep = { 0 };
	assert_int_equal(smmu_fast_zap_bump(g.vm, &rep), 0);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_INDIRECT), 0);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_INDIRECT | SMMU_SP_OBSOLETE), 4);

	/* The drain zaps them; the root, still the vCPU's, stays zapped (invalid) on the list. */
	assert_int_equal(smmu_fast_zap_drain(g.vm, &rep), 0);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_INDIRECT | SMMU_SP_OBSOLETE), 0);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_ALL), 1);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 1, SMMU_SP_INVALID | SMMU_SP_INDIRECT, info, 1), 1);
	assert_true(info[0].invalid);
	assert_int_equal(info[0].level, SMMU_LEVEL_512G);
	assert_int_equal(info[0].root_count, 1);

	/* The reload frees it; a new fault shadows the tables again. */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_ALL), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 0x400000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(slot_pages(g.vm, 1, SMMU_SP_INDIRECT), 4);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* Direct mode: only direct pages; a page belongs to the slot holding the first frame it maps. */
static void test_slot_pages_direct(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *v;
	const smmu_gfn_t far = 1ull << 20; /* 4 GiB: its own level-2 and level-1 pages */
	assert_int_equal(smmu_memslot_create(vm, 0, 0, DATA_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 1, far, 16, 0), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_fault(v, 0x5000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	long in0 = slot_pages(vm, 0, SMMU_SP_DIRECT);
	assert_true(in0 >= 3); /* root, level 3, level 2 (and level 1 for a 4 KiB leaf) */
	assert_int_equal(slot_pages(vm, 0, SMMU_SP_INDIRECT), 0);
	assert_int_equal(slot_pages(vm, 1, SMMU_SP_ALL), 0);

	assert_int_equal(smmu_vcpu_fault(v, (far + 3) * SMMU_PAGE_SIZE, SMMU_ACC_WRITE, NULL),
			 SMMU_FAULT_MAPPED);
	/* the root and the level-3 page (one entry per 1 GiB, from gfn 0) were there already */
	assert_int_equal(slot_pages(vm, 0, SMMU_SP_DIRECT), in0);
	assert_int_equal(slot_pages(vm, 1, SMMU_SP_DIRECT), 2); /* levels 2, 1 (slot not 2M wide) */

	struct smmu_zap_report rep = { 0 };
	assert_int_equal(smmu_memslot_flush(vm, 1, SMMU_FLUSH_ZAP_ALL, &rep), 0);
	assert_int_equal(smmu_vcpu_enter(v), 0);
	assert_int_equal(slot_pages(vm, 1, SMMU_SP_ALL), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* The oracle for rmaps: smmu_rmap_walk under the lock, counting. */
static int count_fn(smmu_vm *vm, uint64_t *sptep, uint64_t spte, void *ctx)
{
	(void)vm, (void)sptep, (void)spte;
	++*(long *)ctx;
	return 0;
}

static long rmap_count(smmu_vm *vm, int id, smmu_gfn_t gfn, uint64_t per_level[SMMU_NR_PAGE_SIZES])
{
	long total = smmu_inspect_rmap_count(vm, gfn, per_level);
	lock(vm);
	for (int level = SMMU_LEVEL_4K; level <= SMMU_NR_PAGE_SIZES; level++) {
		long n = 0;
		assert_int_equal(smmu_rmap_walk(vm, id, gfn, level, count_fn, &n), 0);
		assert_int_equal(per_level[level - 1], n);
	}
	unlock(vm);
	return total;
}

/* Four guest mappings of one frame: four 4 KiB rmap entries (a descriptor chain past three); the
 * guest unmapping one drops its spte; a 2 MiB spte counts at level 2 for every gfn it covers. */
static void test_rmap_count(void **state)
{
	(void)state;
	struct tl_guest g;
	uint64_t pl[SMMU_NR_PAGE_SIZES];
	shadow_guest(&g);
	assert_int_equal(rmap_count(g.vm, 0, 200, pl), 0);
	for (int i = 0; i < 4; i++)
		map_fault(&g, 0x400000 + (smmu_gva_t)i * 0x200000, 200);
	assert_int_equal(rmap_count(g.vm, 0, 200, pl), 4);
	assert_int_equal(pl[0], 4);
	assert_int_equal(pl[1] + pl[2], 0);
	assert_int_equal(rmap_count(g.vm, 0, 201, pl), 0);
	assert_int_equal(smmu_inspect_rmap_count(g.vm, 200, NULL), 4);

	assert_int_equal(smmu_gas_unmap(g.gas, 0x400000 + 0x200000), 0); /* trapped table write */
	assert_int_equal(rmap_count(g.vm, 0, 200, pl), 3);
	/* the guest's tables are shadowed, not mapped: no rmap entry */
	assert_int_equal(rmap_count(g.vm, 1, POOL_GFN, pl), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);

	/* direct mode: a large leaf where lpage_info allows it */
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *v;
	struct smmu_fault_info fi;
	assert_int_equal(smmu_memslot_create(vm, 0, 0, DATA_PAGES, 0), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_fault(v, 600 * SMMU_PAGE_SIZE, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	for (smmu_gfn_t gfn = 512; gfn < 1024; gfn += 111) {
		assert_int_equal(rmap_count(vm, 0, gfn, pl), 1);
		assert_int_equal(pl[1], 1);
	}
	assert_int_equal(rmap_count(vm, 0, 511, pl), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

static void lpage(smmu_vm *vm, int id, smmu_gfn_t gfn, int32_t l2, int32_t l3)
{
	int32_t out[SMMU_NR_PAGE_SIZES - 1] = { -7, -7 }, o2, o3;
	assert_int_equal(smmu_inspect_lpage_disallow(vm, gfn, out), 0);
	assert_int_equal(out[0], l2);
	assert_int_equal(out[1], l3);
	lock(vm);
	assert_int_equal(smmu_lpage_disallow(vm, id, gfn, SMMU_LEVEL_2M, &o2), 0);
	assert_int_equal(smmu_lpage_disallow(vm, id, gfn, SMMU_LEVEL_1G, &o3), 0);
	unlock(vm);
	assert_int_equal(o2, l2);
	assert_int_equal(o3, l3);
}

/* The seed thread's layout: data and tables in one slot (gfns 0..1023, tables from gfn 10).
 * Shadowing the 4 tables counts them in the large pages holding them; zapping uncounts them. */
static void test_lpage_disallow(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, DATA_PAGES, 10, 8);
	/* 2 MiB pages 0..511 and 512..1023 lie inside the slot; the 1 GiB page is cut by its end */
	lpage(g.vm, 0, 10, 0, 1);
	lpage(g.vm, 0, 600, 0, 1);
	map_fault(&g, 0x400000, 600);
	lpage(g.vm, 0, 10, 4, 5);
	lpage(g.vm, 0, 0, 4, 5);
	lpage(g.vm, 0, 600, 0, 5);
	assert_int_equal(slot_pages(g.vm, 0, SMMU_SP_INDIRECT), 4);

	struct smmu_zap_report rep = { 0 };
	assert_int_equal(smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, &rep), 0);
	lpage(g.vm, 0, 10, 0, 1); /* the zapped root in use counts no more */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* Bad arguments: the errno, the outputs untouched, the state unchanged; and no self-deadlock. */
static void test_bad_args(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, DATA_PAGES, 10, 8);
	map_fault(&g, 0x400000, 600);
	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(g.vm, &c0), 0);

	struct smmu_sp_info info[2], before[2];
	memset(info, 0x5a, sizeof(info));
	memcpy(before, info, sizeof(info));
	uint64_t pl[SMMU_NR_PAGE_SIZES] = { 7, 7, 7 };
	int32_t lp[SMMU_NR_PAGE_SIZES - 1] = { 7, 7 };

	assert_int_equal(smmu_inspect_slot_pages(NULL, 0, SMMU_SP_ALL, info, 2), -EINVAL);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, 0, info, 2), -EINVAL);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, SMMU_SP_OBSOLETE | SMMU_SP_INVALID, info, 2), -EINVAL);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, SMMU_SP_ALL | 0x10u, info, 2), -EINVAL);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, SMMU_SP_ALL, NULL, 2), -EINVAL);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 3, SMMU_SP_ALL, info, 2), -ENOENT);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, -1, SMMU_SP_ALL, info, 2), -ENOENT);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 1 << 20, SMMU_SP_ALL, info, 2), -ENOENT);
	assert_int_equal(smmu_inspect_rmap_count(NULL, 600, pl), -EINVAL);
	assert_int_equal(smmu_inspect_rmap_count(g.vm, DATA_PAGES, pl), -ENOENT);
	assert_int_equal(smmu_inspect_rmap_count(g.vm, SMMU_MAX_GFN + 5, pl), -ENOENT);
	assert_int_equal(smmu_inspect_lpage_disallow(NULL, 600, lp), -EINVAL);
	assert_int_equal(smmu_inspect_lpage_disallow(g.vm, 600, NULL), -EINVAL);
	assert_int_equal(smmu_inspect_lpage_disallow(g.vm, DATA_PAGES + 1, lp), -ENOENT);

	/* holding mmu_lock: refused instead of spinning on it forever */
	lock(g.vm);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, SMMU_SP_ALL, info, 2), -EDEADLK);
	assert_int_equal(smmu_inspect_rmap_count(g.vm, 600, pl), -EDEADLK);
	assert_int_equal(smmu_inspect_lpage_disallow(g.vm, 600, lp), -EDEADLK);
	unlock(g.vm);

	assert_memory_equal(info, before, sizeof(info));
	assert_int_equal(pl[0] + pl[1] + pl[2], 21);
	assert_int_equal(lp[0] + lp[1], 14);
	assert_int_equal(smmu_vm_get_counters(g.vm, &c1), 0);
	assert_int_equal(c1.n_used_mmu_pages, c0.n_used_mmu_pages);
	assert_int_equal(c1.pages_created, c0.pages_created);
	assert_int_equal(c1.pages_zapped, c0.pages_zapped);
	/* a slot that was deleted is gone for the inspection too */
	assert_int_equal(smmu_memslot_delete(g.vm, 0), 0);
	assert_int_equal(smmu_inspect_slot_pages(g.vm, 0, SMMU_SP_ALL, NULL, 0), -ENOENT);
	assert_int_equal(smmu_inspect_rmap_count(g.vm, 600, NULL), -ENOENT);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_pages_shadow),
		cmocka_unit_test(test_slot_pages_direct),
		cmocka_unit_test(test_rmap_count),
		cmocka_unit_test(test_lpage_disallow),
		cmocka_unit_test(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
