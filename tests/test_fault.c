/*
 * The fault path: shadow pages built for a guest's page tables (the seed's set-up), their
 * accounting in lpage_info, trapped guest page-table writes, every fault outcome, large pages
 * allowed or refused exactly where lpage_info says, direct mode, the page limit and the TODAY
 * profile. Shadow pages are inspected through the public strategy API only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB_PAGES (1ull << 18) /* 4 KiB pages in 1 GiB */
#define MIB2_PAGES 512ull      /* 4 KiB pages in 2 MiB */
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

/* ---- helpers -------------------------------------------------------------------------------- */

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

/* A copy of every page on active_mmu_pages (head first); spt is not valid after the unlock. */
struct pages {
	size_t n;
	struct smmu_sp_info *info;
};

static struct pages snap_pages(smmu_vm *vm)
{
	struct pages p = { 0, NULL };
	size_t cap = 0;
	int bad = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		if (p.n == cap) {
			cap = cap ? cap * 2 : 64;
			p.info = realloc(p.info, cap * sizeof(*p.info));
			if (!p.info) {
				bad = 1;
				break;
			}
		}
		if (smmu_sp_get_info(vm, sp, &p.info[p.n]) != 0)
			bad = 1;
		p.n++;
	}
	unlock(vm);
	assert_int_equal(bad, 0);
	return p;
}

/* Valid indirect pages whose gfn lies in [lo, hi), at level @level (0 = any). */
static long count_indirect(const struct pages *p, smmu_gfn_t lo, smmu_gfn_t hi, int level)
{
	long n = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct smmu_sp_info *s = &p->info[i];
		if (!s->direct && !s->invalid && s->gfn >= lo && s->gfn < hi && (!level || s->level == level))
			n++;
	}
	return n;
}

/* Pages matching (gfn, level, direct); *out gets the last one found. */
static long find_pages(const struct pages *p, smmu_gfn_t gfn, int level, bool direct, struct smmu_sp_info *out)
{
	long n = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct smmu_sp_info *s = &p->info[i];
		if (s->gfn == gfn && s->level == level && s->direct == direct) {
			n++;
			if (out)
				*out = *s;
		}
	}
	return n;
}

static int32_t disallow(smmu_vm *vm, int slot, smmu_gfn_t gfn, int level)
{
	int32_t d = -1000;
	lock(vm);
	int r = smmu_lpage_disallow(vm, slot, gfn, level, &d);
	unlock(vm);
	assert_int_equal(r, 0);
	return d;
}

static int fault(smmu_vcpu *v, smmu_gva_t a, uint32_t acc, struct smmu_fault_info *fi)
{
	return smmu_vcpu_fault(v, a, acc, fi);
}

static void expect_mapped(smmu_vcpu *v, smmu_gva_t a, uint32_t acc, struct smmu_fault_info *fi)
{
	int r = fault(v, a, acc, fi);
	assert_int_equal(r, SMMU_FAULT_MAPPED);
	assert_int_equal(fi->outcome, SMMU_FAULT_MAPPED);
}

static smmu_vm *shadow_vm_cfg(enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	return tl_vm_cfg(&cfg);
}

/* ---- the seed's set-up ------------------------------------------------------------------------- */

#define SEED_CR3_GFN 10
#define SEED_POOL 10
#define SEED_GVA 0x40201000ull

/* Slot 0 = gfn 0, 100 pages; the guest's level-4 table at gfn 10. */
static void seed_setup(smmu_vm *vm, smmu_gas **gas, smmu_vcpu **v)
{
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 100, 0), 0);
	assert_int_equal(smmu_gas_create(vm, SEED_CR3_GFN, SEED_POOL, gas), 0);
	assert_int_equal(smmu_gas_cr3(*gas), SEED_CR3_GFN << SMMU_PAGE_SHIFT);
	assert_int_equal(smmu_vcpu_create(vm, v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(*v, smmu_gas_cr3(*gas)), 0);
}

static void test_seed_level4_page_accounted(void **state)
{
	(void)state;
	smmu_vm *vm = shadow_vm_cfg(SMMU_PROFILE_LINUX_3_11);
	smmu_gas *gas;
	smmu_vcpu *v;
	seed_setup(vm, &gas, &v);
	/* Before any fault: no shadow page, lpage_info holds only the edge bit. */
	assert_int_equal(disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_2M), 1);

	assert_int_equal(smmu_gas_map(gas, SEED_GVA, 50, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(v, SEED_GVA, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi);
	assert_int_equal(fi.gfn, 50);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	assert_int_equal(fi.pages_created, 4); /* the shadows of the guest's 4 tables */
	assert_false(fi.emulated_write);

	struct pages p = snap_pages(vm);
	long n_l4 = 0;
	struct smmu_sp_info root;
	memset(&root, 0, sizeof(root));
	for (size_t i = 0; i < p.n; i++) {
		if (p.info[i].level == 4) {
			n_l4++;
			root = p.info[i];
		}
	}
	assert_int_equal(n_l4, 1);
	assert_false(root.direct);
	assert_int_equal(root.gfn, SEED_CR3_GFN);
	assert_int_equal(root.root_count, 1);
	assert_false(root.invalid);
	assert_false(root.obsolete);

	/* The slot's single 2M (and 1G) entry: edge bit (100 pages do not fill 512) + the
	 * indirect pages whose gfn lies in it. */
	long count = count_indirect(&p, 0, MIB2_PAGES, 0);
	assert_int_equal(count, 4);
	assert_int_equal(disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_2M), 1 + count);
	assert_int_equal(disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_1G), 1 + count);
	free(p.info);

	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, SMMU_ACC_WRITE | SMMU_ACC_USER, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, 50));
	assert_int_equal(t.level, SMMU_LEVEL_4K);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

static void test_seed_guest_pt_write_trapped(void **state)
{
	(void)state;
	smmu_vm *vm = shadow_vm_cfg(SMMU_PROFILE_LINUX_3_11);
	smmu_gas *gas;
	smmu_vcpu *v;
	seed_setup(vm, &gas, &v);
	assert_int_equal(smmu_gas_map(gas, SEED_GVA, 50, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(v, SEED_GVA, SMMU_ACC_WRITE, &fi);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, 0, &t), 0);

	/* 1. The guest clears its PTE (smmu_gas_unmap writes the entry): trapped, the spte goes. */
	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(vm, &c0), 0);
	assert_int_equal(smmu_gas_unmap(gas, SEED_GVA), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c1), 0);
	assert_true(c1.pte_writes > c0.pte_writes);
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, 0, &t), -EFAULT);
	/* Its page tables stay shadowed: only the entry was dropped. */
	assert_int_equal(c1.indirect_shadow_pages, c0.indirect_shadow_pages);
	tl_assert_audit_clean(vm);

	/* Re-map to another frame: the re-fault maps the new target. */
	assert_int_equal(smmu_gas_map(gas, SEED_GVA, 60, SMMU_LEVEL_4K, RW_USER), 0);
	expect_mapped(v, SEED_GVA, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.gfn, 60);
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, SMMU_ACC_WRITE, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, 60));

	/* 2. The guest rewrites the PTE in place with a plain store (smmu_guest_write_u64). */
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(vm, smmu_gas_cr3(gas), SEED_GVA, &w), 0);
	assert_int_equal(w.gfn, 60);
	smmu_gpa_t pte_gpa = (w.table_gfn[0] << SMMU_PAGE_SHIFT) + ((SEED_GVA >> 12) & 511) * 8;
	assert_int_equal(smmu_vm_get_counters(vm, &c0), 0);
	uint64_t pte = (70ull << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER |
		       SMMU_PTE_ACCESSED | SMMU_PTE_DIRTY;
	assert_int_equal(smmu_guest_write_u64(vm, pte_gpa, pte), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c1), 0);
	assert_int_equal(c1.pte_writes, c0.pte_writes + 1);
	/* The stale translation (to gfn 60) is gone. */
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, 0, &t), -EFAULT);
	tl_assert_audit_clean(vm);
	expect_mapped(v, SEED_GVA, 0, &fi);
	assert_int_equal(fi.gfn, 70);
	assert_int_equal(smmu_vcpu_translate(v, SEED_GVA, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, 70));
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

/* ---- outcomes ------------------------------------------------------------------------------------- */

#define POOL_GFN 16
#define POOL_PAGES 64
#define BASE_GVA 0x40000000ull

static void test_guest_pf_reasons(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, POOL_GFN, POOL_PAGES);
	const smmu_gva_t ro = BASE_GVA, sup = BASE_GVA + 0x1000, nx = BASE_GVA + 0x2000;
	assert_int_equal(smmu_gas_map(g.gas, ro, 100, SMMU_LEVEL_4K, SMMU_PROT_USER), 0);
	assert_int_equal(smmu_gas_map(g.gas, sup, 101, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_gas_map(g.gas, nx, 102, SMMU_LEVEL_4K, RW_USER | SMMU_PROT_NOEXEC), 0);
	struct smmu_fault_info fi;
	struct smmu_translation t;

	/* Not present at the top level: nothing maps that 512 GiB region. */
	assert_int_equal(fault(g.vcpu, 0x7f0000000000ull, 0, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.outcome, SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_NOT_PRESENT);
	assert_int_equal(fi.pf_level, 4);
	/* Not present in the last level: the neighbour of a mapped page. */
	assert_int_equal(fault(g.vcpu, BASE_GVA + 0x5000, 0, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_NOT_PRESENT);
	assert_int_equal(fi.pf_level, 1);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, BASE_GVA + 0x5000, 0, &t), -EFAULT);

	/* Write to a read-only guest page. */
	assert_int_equal(fault(g.vcpu, ro, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_WRITE_PROTECTED);
	assert_int_equal(fi.pf_level, 1);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, ro, 0, &t), -EFAULT);
	expect_mapped(g.vcpu, ro, SMMU_ACC_USER, &fi);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, ro, SMMU_ACC_WRITE, &t), -EACCES);

	/* User access to a supervisor page. */
	assert_int_equal(fault(g.vcpu, sup, SMMU_ACC_USER, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_USER_PROTECTED);
	assert_int_equal(fi.pf_level, 1);
	expect_mapped(g.vcpu, sup, SMMU_ACC_WRITE, &fi);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, sup, SMMU_ACC_USER, &t), -EACCES);

	/* Fetch from a no-execute page (its host page written: a read fault maps it writable). */
	char *nx_hva = smmu_gfn_to_hva(g.vm, 102);
	assert_int_equal(smmu_host_wrote(g.vm, nx_hva, nx_hva + 1), 0);
	assert_int_equal(fault(g.vcpu, nx, SMMU_ACC_EXEC, &fi), SMMU_FAULT_GUEST_PF);
	assert_int_equal(fi.pf_reason, SMMU_PF_NX);
	assert_int_equal(fi.pf_level, 1);
	expect_mapped(g.vcpu, nx, SMMU_ACC_USER, &fi);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, nx, SMMU_ACC_EXEC, &t), -EACCES);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, nx, SMMU_ACC_WRITE | SMMU_ACC_USER, &t), 0);

	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_mmio_outside_slots_and_readonly(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, POOL_GFN, POOL_PAGES);
	const smmu_gfn_t rom_gfn = 8192, hole_gfn = 1ull << 20;
	assert_int_equal(smmu_memslot_create(g.vm, 1, rom_gfn, 64, SMMU_MEM_READONLY), 0);
	const smmu_gva_t mmio = BASE_GVA, rom = BASE_GVA + 0x1000;
	assert_int_equal(smmu_gas_map(g.gas, mmio, hole_gfn, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(g.gas, rom, rom_gfn + 3, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	struct smmu_translation t;

	/* A gfn in no slot: MMIO, nothing mapped, for reads and writes. */
	assert_int_equal(fault(g.vcpu, mmio, 0, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(fi.outcome, SMMU_FAULT_MMIO);
	assert_int_equal(fi.gfn, hole_gfn);
	assert_int_equal(fault(g.vcpu, mmio, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, mmio, 0, &t), -EFAULT);

	/* A write to a read-only slot: MMIO (emulated), nothing mapped. */
	assert_int_equal(fault(g.vcpu, rom, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(fi.gfn, rom_gfn + 3);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, rom, 0, &t), -EFAULT);
	/* A read maps it, read-only although the guest's PTE allows writes. */
	expect_mapped(g.vcpu, rom, SMMU_ACC_USER, &fi);
	assert_int_equal(fi.gfn, rom_gfn + 3);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, rom, 0, &t), 0);
	assert_int_equal(t.access & SMMU_ACC_WRITE, 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(g.vm, rom_gfn + 3));
	assert_int_equal(smmu_vcpu_translate(g.vcpu, rom, SMMU_ACC_WRITE, &t), -EACCES);
	/* Still MMIO for a write after the read mapped it. */
	assert_int_equal(fault(g.vcpu, rom, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MMIO);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, rom, SMMU_ACC_WRITE, &t), -EACCES);

	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_emulated_write_to_shadowed_table(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, POOL_GFN, POOL_PAGES);
	const smmu_gva_t data = BASE_GVA, pt = BASE_GVA + 0x1000;
	assert_int_equal(smmu_gas_map(g.gas, data, 200, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(g.vcpu, data, SMMU_ACC_WRITE, &fi);
	assert_false(fi.emulated_write); /* an ordinary data page */

	/* Map a gva onto the frame of the level-2 table on data's path: a table shadowed above
	 * level 1, which never goes unsync (mmu_try_to_unsync_pages, both eras; a level-1 table
	 * does: test_unsync.c). */
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(g.gas), data, &w), 0);
	smmu_gfn_t l2 = w.table_gfn[1];
	assert_true(l2 >= POOL_GFN && l2 < POOL_GFN + POOL_PAGES);
	assert_int_equal(smmu_gas_map(g.gas, pt, l2, SMMU_LEVEL_4K, RW_USER), 0);

	expect_mapped(g.vcpu, pt, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.gfn, l2);
	assert_true(fi.emulated_write);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, pt, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(g.vm, l2));
	assert_int_equal(smmu_vcpu_translate(g.vcpu, pt, SMMU_ACC_WRITE, &t), -EACCES);
	/* A read of it is no emulation. */
	expect_mapped(g.vcpu, pt, 0, &fi);
	assert_false(fi.emulated_write);

	/* A store through that mapping is emulated: it lands and is trapped as a pte write. */
	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(g.vm, &c0), 0);
	uint64_t val = 0; /* entry 511 of the table: unused, stays not present */
	assert_int_equal(smmu_vcpu_write(g.vcpu, pt + 511 * 8, &val, sizeof(val)), 0);
	assert_int_equal(smmu_vm_get_counters(g.vm, &c1), 0);
	assert_true(c1.pte_writes > c0.pte_writes);
	assert_int_equal(smmu_vcpu_translate(g.vcpu, pt, SMMU_ACC_WRITE, &t), -EACCES);
	/* The data page is still mapped: the write did not touch its entry. */
	assert_int_equal(smmu_vcpu_translate(g.vcpu, data, SMMU_ACC_WRITE, &t), 0);

	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- large pages ----------------------------------------------------------------------------------- */

/* Guest 2M pages over every 2M region of a 2M-aligned slot; guest tables live in regions 0 and 5.
 * Each maps large exactly where lpage_info allows it. */
static void test_large_2m_refused_where_lpage_info_says(void **state)
{
	(void)state;
	const uint64_t regions = 16;
	smmu_vm *vm = shadow_vm_cfg(SMMU_PROFILE_LINUX_3_11);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, regions * MIB2_PAGES, 0), 0);
	smmu_gas *ga, *gb;
	smmu_vcpu *va, *vb;
	assert_int_equal(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &ga), 0); /* region 0 */
	const smmu_gfn_t pool_b = 5 * MIB2_PAGES + 7;                        /* region 5 */
	assert_int_equal(smmu_gas_create(vm, pool_b, 16, &gb), 0);
	assert_int_equal(smmu_vcpu_create(vm, &va), 0);
	assert_int_equal(smmu_vcpu_create(vm, &vb), 0);
	assert_int_equal(smmu_vcpu_set_cr3(va, smmu_gas_cr3(ga)), 0);
	assert_int_equal(smmu_vcpu_set_cr3(vb, smmu_gas_cr3(gb)), 0);
	/* vCPU b shadows its tables: region 5 now holds shadowed guest tables. */
	assert_int_equal(smmu_gas_map(gb, 0x1000, 100, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(vb, 0x1000, 0, &fi);

	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(vm, &c0), 0);
	uint64_t large = 0;
	for (uint64_t r = 0; r < regions; r++) {
		smmu_gva_t gva = BASE_GVA + r * (MIB2_PAGES << SMMU_PAGE_SHIFT);
		smmu_gfn_t gfn = r * MIB2_PAGES;
		assert_int_equal(smmu_gas_map(ga, gva, gfn, SMMU_LEVEL_2M, RW_USER), 0);
		expect_mapped(va, gva + 0x3000, SMMU_ACC_USER, &fi);
		assert_int_equal(fi.gfn, gfn + 3);
		int32_t d = disallow(vm, 0, gfn, SMMU_LEVEL_2M);
		bool has_tables = r == 0 || r == 5;
		assert_int_equal(d != 0, has_tables);
		int want = d == 0 ? SMMU_LEVEL_2M : SMMU_LEVEL_4K;
		assert_int_equal(fi.level, want);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(va, gva + 0x3000, SMMU_ACC_USER, &t), 0);
		assert_int_equal(t.level, want);
		assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, gfn + 3));
		struct pages p = snap_pages(vm);
		struct smmu_sp_info dp;
		memset(&dp, 0, sizeof(dp));
		long n_direct = find_pages(&p, gfn, SMMU_LEVEL_4K, true, &dp);
		free(p.info);
		if (want == SMMU_LEVEL_4K) {
			/* The guest's 2M page is split by a direct shadow page of level 1. */
			assert_int_equal(n_direct, 1);
			assert_false(dp.invalid);
		} else {
			assert_int_equal(n_direct, 0);
			large++;
		}
	}
	assert_int_equal(large, regions - 2);
	assert_int_equal(smmu_vm_get_counters(vm, &c1), 0);
	assert_int_equal(c1.lpages, c0.lpages + large);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(va);
	smmu_vcpu_destroy(vb);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
}

/* A guest 1G page in a 1G slot maps as a 1G spte; once a guest table lives in it, the 1G spte
 * is dropped and the page is mapped 2M where its 2M region is free of tables, 4K where not. */
static void test_large_1g(void **state)
{
	(void)state;
	smmu_vm *vm = shadow_vm_cfg(SMMU_PROFILE_LINUX_3_11);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 1024, 0), 0);
	const smmu_gfn_t base1 = GIB_PAGES;
	assert_int_equal(smmu_memslot_create(vm, 1, base1, GIB_PAGES, 0), 0); /* lazily backed */
	smmu_gas *ga, *gb;
	smmu_vcpu *va, *vb;
	assert_int_equal(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &ga), 0);
	assert_int_equal(smmu_vcpu_create(vm, &va), 0);
	assert_int_equal(smmu_vcpu_set_cr3(va, smmu_gas_cr3(ga)), 0);
	const smmu_gva_t gva = 2ull << 30;
	assert_int_equal(smmu_gas_map(ga, gva, base1, SMMU_LEVEL_1G, RW_USER), 0);
	assert_int_equal(disallow(vm, 1, base1, SMMU_LEVEL_1G), 0);

	struct smmu_fault_info fi;
	struct smmu_translation t;
	expect_mapped(va, gva + 0x5000, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_1G);
	assert_int_equal(fi.gfn, base1 + 5);
	assert_int_equal(smmu_vcpu_translate(va, gva + 0x5000, SMMU_ACC_WRITE, &t), 0);
	assert_int_equal(t.level, SMMU_LEVEL_1G);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, base1 + 5));
	assert_int_equal(smmu_vcpu_translate(va, gva + (700ull << 20), 0, &t), 0); /* same spte */
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, base1 + (700ull << 8)));
	tl_assert_audit_clean(vm);

	/* A second guest keeps its page tables in 2M region 1 of slot 1. */
	const smmu_gfn_t pool_b = base1 + 1000;
	assert_int_equal(smmu_gas_create(vm, pool_b, 16, &gb), 0);
	assert_int_equal(smmu_vcpu_create(vm, &vb), 0);
	assert_int_equal(smmu_vcpu_set_cr3(vb, smmu_gas_cr3(gb)), 0);
	assert_int_equal(smmu_gas_map(gb, 0x1000, base1 + 5000, SMMU_LEVEL_4K, RW_USER), 0);
	expect_mapped(vb, 0x1000, 0, &fi);
	assert_true(disallow(vm, 1, base1, SMMU_LEVEL_1G) > 0);
	assert_true(disallow(vm, 1, pool_b, SMMU_LEVEL_2M) > 0);
	assert_int_equal(disallow(vm, 1, base1, SMMU_LEVEL_2M), 0);
	/* Shadowing those tables write-protected their gfns: the 1G spte over them is gone. */
	assert_int_equal(smmu_vcpu_translate(va, gva + 0x5000, 0, &t), -EFAULT);
	tl_assert_audit_clean(vm);

	/* Region 0 of the 1G page: 2M. Region 1 (the tables): 4K. Region 7: 2M. */
	expect_mapped(va, gva + 0x5000, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	expect_mapped(va, gva + (900ull << SMMU_PAGE_SHIFT) + 0x10, 0, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	expect_mapped(va, gva + 7 * (2ull << 20), SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	assert_int_equal(smmu_vcpu_translate(va, gva + 0x5000, SMMU_ACC_WRITE, &t), 0);
	assert_int_equal(t.level, SMMU_LEVEL_2M);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(vm, base1 + 5));
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(va);
	smmu_vcpu_destroy(vb);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
}

/*
 * The 2M region a guest 2M page maps also holds the guest tables that the same fault shadows
 * for the first time: the leaf level must be chosen after fetch() created those indirect pages
 * (today's KVM: kvm_mmu_hugepage_adjust after them; 3.11 refuses the large spte in set_spte and
 * the guest refaults: test_era), or a large spte lands where lpage_info disallows it (audit
 * invariant 6). Regression test: this failed before commit ea02ad2.
 * Layout: pool at gfn 508: root 508, L3 509, L2 510, L1 511 (region 0) for the first mapping,
 * then L3' 512, L2' 513 (region 1) for a 2M page at another 512 GiB slot mapping region 1.
 */
static void test_large_refused_for_tables_shadowed_by_same_fault(void **state)
{
	(void)state;
	smmu_vm *vm = shadow_vm_cfg(SMMU_PROFILE_LINUX_TODAY);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16 * MIB2_PAGES, 0), 0);
	smmu_gas *ga;
	smmu_vcpu *va;
	assert_int_equal(smmu_gas_create(vm, 508, 64, &ga), 0);
	assert_int_equal(smmu_vcpu_create(vm, &va), 0);
	assert_int_equal(smmu_vcpu_set_cr3(va, smmu_gas_cr3(ga)), 0);
	assert_int_equal(smmu_gas_map(ga, 0x1000, 100, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(va, 0x1000, SMMU_ACC_USER, &fi);
	const smmu_gva_t g2 = 1ull << 39;
	assert_int_equal(smmu_gas_map(ga, g2, MIB2_PAGES, SMMU_LEVEL_2M, RW_USER), 0);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(vm, smmu_gas_cr3(ga), g2, &w), 0);
	assert_int_equal(w.table_gfn[2] / MIB2_PAGES, 1); /* its L3 and L2 tables lie in region 1 */
	assert_int_equal(w.table_gfn[1] / MIB2_PAGES, 1);
	assert_int_equal(disallow(vm, 0, MIB2_PAGES, SMMU_LEVEL_2M), 0); /* not shadowed yet */

	expect_mapped(va, g2 + 0x3000, SMMU_ACC_USER, &fi);
	assert_int_equal(fi.pages_created, 3); /* the shadows of L3' and L2', a direct page for 4K */
	assert_true(disallow(vm, 0, MIB2_PAGES, SMMU_LEVEL_2M) > 0); /* shadowed now */
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(va);
	smmu_gas_destroy(ga);
	smmu_vm_destroy(vm);
}

/*
 * A read-only large spte stays when a guest table inside its large page becomes shadowed: KVM
 * 3.11's spte_write_protect drops only writable large sptes, today's drops none. It grants no
 * write, so the table stays protected, and the audit (invariant 6: writable large sptes only)
 * accepts it. (Commit ea02ad2 had the model drop it; the eras' own rules keep it.)
 */
static void test_readonly_large_spte_kept_when_table_shadowed(enum smmu_profile profile)
{
	smmu_vm *vm = shadow_vm_cfg(profile);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16 * MIB2_PAGES, 0), 0);
	smmu_gas *ga, *gb;
	smmu_vcpu *va, *vb;
	assert_int_equal(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &ga), 0);
	assert_int_equal(smmu_vcpu_create(vm, &va), 0);
	assert_int_equal(smmu_vcpu_set_cr3(va, smmu_gas_cr3(ga)), 0);
	/* A read-only guest 2M page over region 3: mapped by a read-only 2M spte. */
	const smmu_gva_t gva = BASE_GVA;
	assert_int_equal(smmu_gas_map(ga, gva, 3 * MIB2_PAGES, SMMU_LEVEL_2M, SMMU_PROT_USER), 0);
	struct smmu_fault_info fi;
	expect_mapped(va, gva + 0x3000, SMMU_ACC_USER, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(va, gva + 0x3000, 0, &t), 0);
	assert_int_equal(t.access & SMMU_ACC_WRITE, 0);
	tl_assert_audit_clean(vm);

	/* Another guest keeps its tables in region 3 and gets them shadowed. */
	assert_int_equal(smmu_gas_create(vm, 3 * MIB2_PAGES + 9, 8, &gb), 0);
	assert_int_equal(smmu_vcpu_create(vm, &vb), 0);
	assert_int_equal(smmu_vcpu_set_cr3(vb, smmu_gas_cr3(gb)), 0);
	assert_int_equal(smmu_gas_map(gb, 0x1000, 100, SMMU_LEVEL_4K, RW_USER), 0);
	expect_mapped(vb, 0x1000, 0, &fi);
	assert_true(disallow(vm, 0, 3 * MIB2_PAGES, SMMU_LEVEL_2M) > 0);
	/* The read-only large spte stays where lpage_info now disallows a large page. */
	assert_int_equal(smmu_vcpu_translate(va, gva + 0x3000, 0, &t), 0);
	assert_int_equal(t.level, SMMU_LEVEL_2M);
	assert_int_equal(t.access & SMMU_ACC_WRITE, 0);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(va);
	smmu_vcpu_destroy(vb);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
}

static void test_readonly_large_spte_kept_3_11(void **state)
{
	(void)state;
	test_readonly_large_spte_kept_when_table_shadowed(SMMU_PROFILE_LINUX_3_11);
}

static void test_readonly_large_spte_kept_today(void **state)
{
	(void)state;
	test_readonly_large_spte_kept_when_table_shadowed(SMMU_PROFILE_LINUX_TODAY);
}

/* ---- direct mode ------------------------------------------------------------------------------------- */

/* The largest level whose aligned region around @gfn lies wholly inside [base, base + n). */
static int expected_level(smmu_gfn_t base, uint64_t n, smmu_gfn_t gfn)
{
	for (int level = SMMU_LEVEL_1G; level > SMMU_LEVEL_4K; level--) {
		uint64_t span = 1ull << (9 * (level - 1));
		smmu_gfn_t lo = gfn & ~(span - 1);
		if (lo >= base && lo + span <= base + n)
			return level;
	}
	return SMMU_LEVEL_4K;
}

static void test_direct_levels(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *v;
	/* Slot 0: 2 GiB at gfn 0 (aligned, big). Slot 1: unaligned at both ends. */
	const uint64_t n0 = 2 * GIB_PAGES;
	const smmu_gfn_t b1 = 4 * GIB_PAGES + 3;
	const uint64_t n1 = 2048;
	assert_int_equal(smmu_memslot_create(vm, 0, 0, n0, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 1, b1, n1, 0), 0);
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	const smmu_gfn_t gfns[] = { 0, 5, GIB_PAGES + 777, b1, b1 + 600, b1 + 1200, b1 + n1 - 1, b1 + 508 };
	for (size_t i = 0; i < sizeof(gfns) / sizeof(gfns[0]); i++) {
		smmu_gfn_t gfn = gfns[i];
		int want = gfn < n0 ? expected_level(0, n0, gfn) : expected_level(b1, n1, gfn);
		struct smmu_fault_info fi;
		expect_mapped(v, (gfn << SMMU_PAGE_SHIFT) + 0x10, SMMU_ACC_WRITE, &fi);
		assert_int_equal(fi.gfn, gfn);
		assert_int_equal(fi.level, want);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(v, (gfn << SMMU_PAGE_SHIFT) + 0x10, SMMU_ACC_WRITE, &t), 0);
		assert_int_equal(t.level, want);
		assert_ptr_equal(t.hva, (char *)smmu_gfn_to_hva(vm, gfn) + 0x10);
	}
	/* The aligned slot gets 1G leaves, the unaligned one 2M in its middle, 4K at its edges. */
	assert_int_equal(expected_level(0, n0, 5), SMMU_LEVEL_1G);
	assert_int_equal(expected_level(b1, n1, b1 + 600), SMMU_LEVEL_2M);
	assert_int_equal(expected_level(b1, n1, b1), SMMU_LEVEL_4K);
	struct pages p = snap_pages(vm);
	for (size_t i = 0; i < p.n; i++)
		assert_true(p.info[i].direct);
	free(p.info);
	tl_assert_audit_clean(vm);

	/* Dirty logging on slot 0: its large sptes go, new faults map 4K. */
	assert_int_equal(smmu_memslot_set_flags(vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_enter(v), 0);
	assert_int_equal(smmu_vcpu_translate(v, 5ull << SMMU_PAGE_SHIFT, 0, &t), -EFAULT);
	struct smmu_fault_info fi;
	expect_mapped(v, 5ull << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	expect_mapped(v, (GIB_PAGES + 4096) << SMMU_PAGE_SHIFT, 0, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	/* Slot 1 does not log: still 2M in its middle. */
	expect_mapped(v, (b1 + 1100) << SMMU_PAGE_SHIFT, 0, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	tl_assert_audit_clean(vm);

	/* Logging off: large again for a new address. */
	assert_int_equal(smmu_memslot_set_flags(vm, 0, 0), 0);
	expect_mapped(v, (GIB_PAGES / 2) << SMMU_PAGE_SHIFT, 0, &fi);
	assert_int_equal(fi.level, SMMU_LEVEL_1G);
	tl_assert_audit_clean(vm);

	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* ---- the page limit -------------------------------------------------------------------------------- */

/* A direct VM maps what its 4-level direct map reaches, gpas below 2^48, and nothing beyond
 * can alias into it (repros direct_gpa_above_2_48_aliases.c and _abort.c: a slot at gpa 2^48
 * was accepted, gpa 2^48 + X landed in the spte of gpa X, the vCPU read the wrong slot and a
 * zap aborted in the rmap code). A shadow VM keeps the 52-bit space: its tables are indexed by
 * the gva, so a high gfn is just a leaf's target. */
static void test_direct_gpa_bounds(void **state)
{
	(void)state;
	const smmu_gfn_t hi = 1ull << (SMMU_DIRECT_GPA_BITS - 12); /* gfn of gpa 2^48 */
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16, 0), 0);
	/* Slots at or across 2^48 are refused; one that ends exactly there is fine. */
	assert_int_equal(smmu_memslot_create(vm, 1, hi, 16, 0), -EINVAL);
	assert_int_equal(smmu_memslot_create(vm, 1, hi - 8, 16, 0), -EINVAL);
	assert_int_equal(smmu_memslot_create(vm, 1, SMMU_MAX_GFN - 16, 16, 0), -EINVAL);
	assert_int_equal(smmu_memslot_create(vm, 1, hi - 16, 16, 0), 0);
	assert_int_equal(smmu_memslot_move(vm, 1, hi - 8), -EINVAL);
	assert_int_equal(smmu_memslot_move(vm, 1, hi), -EINVAL);
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(vm, 1, &info), 0);
	assert_int_equal(info.base_gfn, hi - 16);

	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	uint64_t a = 0xaaaa, b = 0xbbbb, got = 0;
	assert_int_equal(smmu_vcpu_write(v, 0x1000, &a, 8), 0);
	/* The last page below 2^48 maps, through the last entry of every level. */
	struct smmu_fault_info fi;
	expect_mapped(v, (hi - 1) << 12, SMMU_ACC_WRITE, &fi);
	assert_int_equal(fi.gfn, hi - 1);
	assert_int_equal(smmu_vcpu_write(v, ((hi - 1) << 12) + 8, &b, 8), 0);
	/* gpa 2^48 + 0x1000 would alias gpa 0x1000: refused, nothing written or mapped. */
	assert_int_equal(smmu_vcpu_write(v, (hi << 12) + 0x1000, &b, 8), -EINVAL);
	assert_int_equal(smmu_vcpu_fault(v, (hi << 12) + 0x1000, SMMU_ACC_WRITE, &fi), -EINVAL);
	assert_int_equal(smmu_vcpu_read(v, (hi << 12) + 0x1000, &got, 8), -EINVAL);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, (hi << 12) + 0x1000, 0, &t), -EINVAL);
	/* A range that runs across 2^48 is refused whole. */
	assert_int_equal(smmu_vcpu_read(v, (hi << 12) - 4, &got, 8), -EINVAL);
	assert_int_equal(smmu_vcpu_read(v, 0x1000, &got, 8), 0);
	assert_int_equal(got, a);
	assert_int_equal(smmu_guest_read_u64(vm, 0x1000, &got), 0);
	assert_int_equal(got, a);
	assert_int_equal(smmu_guest_read_u64(vm, ((hi - 1) << 12) + 8, &got), 0);
	assert_int_equal(got, b);
	tl_assert_audit_clean(vm);
	assert_int_equal(smmu_memslot_delete(vm, 0), 0);
	assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);

	/* Shadow mode: a slot above 2^48, mapped from a low gva, holds its own bytes. */
	smmu_vm *svm = tl_vm(SMMU_MODE_SHADOW);
	smmu_gas *gas;
	assert_int_equal(smmu_memslot_create(svm, 0, 0, 64, 0), 0);
	assert_int_equal(smmu_memslot_create(svm, 1, hi, 16, 0), 0);
	assert_int_equal(smmu_gas_create(svm, 8, 8, &gas), 0);
	assert_int_equal(smmu_gas_map(gas, 0x400000, 1, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(gas, 0x401000, hi + 1, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_create(svm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	assert_int_equal(smmu_vcpu_write(v, 0x400000, &a, 8), 0);
	assert_int_equal(smmu_vcpu_write(v, 0x401000, &b, 8), 0);
	assert_int_equal(smmu_guest_read_u64(svm, 0x1000, &got), 0);
	assert_int_equal(got, a);
	assert_int_equal(smmu_guest_read_u64(svm, (hi + 1) << 12, &got), 0);
	assert_int_equal(got, b);
	tl_assert_audit_clean(svm);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(svm);
}

static void test_page_limit_holds(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 8192, POOL_GFN, 600);
	const uint64_t limit = 20;
	assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, limit), 0);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(g.vm, &c), 0);
	assert_int_equal(c.n_max_mmu_pages, limit);
	uint64_t peak = 0;
	/* 200 addresses, each in its own 2 MiB region: each needs its own last-level table. */
	for (uint64_t i = 0; i < 200; i++) {
		smmu_gva_t gva = BASE_GVA + i * (2ull << 20) + (i % 7) * 0x1000;
		assert_int_equal(smmu_gas_map(g.gas, gva, 1024 + i, SMMU_LEVEL_4K, RW_USER), 0);
		struct smmu_fault_info fi;
		int r, tries = 0;
		do {
			r = fault(g.vcpu, gva, SMMU_ACC_WRITE, &fi);
		} while (r == SMMU_FAULT_RETRY && ++tries < 4);
		assert_int_equal(r, SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vm_get_counters(g.vm, &c), 0);
		assert_true(c.n_used_mmu_pages <= c.n_max_mmu_pages);
		if (c.n_used_mmu_pages > peak)
			peak = c.n_used_mmu_pages;
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(g.vcpu, gva, SMMU_ACC_WRITE, &t), 0);
		assert_ptr_equal(t.hva, smmu_gfn_to_hva(g.vm, 1024 + i));
	}
	assert_true(c.pages_recycled > 0);
	assert_true(c.pages_created > limit);
	printf("page limit %llu: peak %llu used, %llu created, %llu recycled\n", (unsigned long long)limit,
	       (unsigned long long)peak, (unsigned long long)c.pages_created,
	       (unsigned long long)c.pages_recycled);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);

	/* Lowering the limit below what is used zaps the oldest pages at once. */
	assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, 3), 0);
	assert_int_equal(smmu_vm_get_counters(g.vm, &c), 0);
	assert_true(c.n_used_mmu_pages <= 3);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- the TODAY profile ------------------------------------------------------------------------------- */

/* Today's KVM counts 4K-level tables in account_shadowed and write-tracks the others, and a
 * write track disallows the large page too: both profiles count every shadowed table. */
static void test_profiles_count_every_shadowed_table(void **state)
{
	(void)state;
	long counted[2];
	for (int prof = 0; prof < 2; prof++) {
		smmu_vm *vm = shadow_vm_cfg(prof ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		smmu_gas *gas;
		smmu_vcpu *v;
		seed_setup(vm, &gas, &v);
		/* Two last-level tables: addresses in two 2 MiB regions. */
		assert_int_equal(smmu_gas_map(gas, SEED_GVA, 50, SMMU_LEVEL_4K, RW_USER), 0);
		assert_int_equal(smmu_gas_map(gas, SEED_GVA + (2ull << 20), 51, SMMU_LEVEL_4K, RW_USER), 0);
		struct smmu_fault_info fi;
		expect_mapped(v, SEED_GVA, 0, &fi);
		expect_mapped(v, SEED_GVA + (2ull << 20), 0, &fi);
		struct pages p = snap_pages(vm);
		long all = count_indirect(&p, 0, MIB2_PAGES, 0);
		long l1 = count_indirect(&p, 0, MIB2_PAGES, SMMU_LEVEL_4K);
		free(p.info);
		assert_int_equal(all, 5);
		assert_int_equal(l1, 2);
		counted[prof] = disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_2M) - 1;
		assert_int_equal(counted[prof], all);
		assert_int_equal(disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_1G) - 1, counted[prof]);
		tl_assert_audit_clean(vm);

		/* Zapping everything uncounts exactly what was counted. */
		assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, NULL), 0);
		assert_int_equal(smmu_vcpu_enter(v), 0);
		assert_int_equal(disallow(vm, 0, SEED_CR3_GFN, SMMU_LEVEL_2M), 1);
		tl_assert_audit_clean(vm);
		smmu_vcpu_destroy(v);
		smmu_gas_destroy(gas);
		smmu_vm_destroy(vm);
	}
	assert_int_equal(counted[0], counted[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_level4_page_accounted),
		cmocka_unit_test(test_seed_guest_pt_write_trapped),
		cmocka_unit_test(test_guest_pf_reasons),
		cmocka_unit_test(test_mmio_outside_slots_and_readonly),
		cmocka_unit_test(test_emulated_write_to_shadowed_table),
		cmocka_unit_test(test_large_2m_refused_where_lpage_info_says),
		cmocka_unit_test(test_large_1g),
		cmocka_unit_test(test_large_refused_for_tables_shadowed_by_same_fault),
		cmocka_unit_test(test_readonly_large_spte_kept_3_11),
		cmocka_unit_test(test_readonly_large_spte_kept_today),
		cmocka_unit_test(test_direct_levels),
		cmocka_unit_test(test_direct_gpa_bounds),
		cmocka_unit_test(test_page_limit_holds),
		cmocka_unit_test(test_profiles_count_every_shadowed_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
