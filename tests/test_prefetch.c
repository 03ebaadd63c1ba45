/*
 * pte prefetch (FNAME(pte_prefetch), direct_pte_prefetch): the aligned group of 8 around a 4 KiB
 * fault, only non-present sptes, only Accessed guest ptes and up to the first one that cannot
 * be mapped, clean ptes read-only, nothing the host does not map writable, nothing writable into
 * a dirty-logged slot, no run across a slot's edge, no writable spte on a shadowed table, and
 * the era rule on spurious faults. Each test ends with the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <string.h>

#define DATA_GVA 0x40000000ull
#define DATA_GFN 0x100ull /* 8-aligned: the gva's group is the gfn's group */
#define POOL_GFN 0x800ull
#define SLOT_PAGES 0x1000ull
#define DIRECT_SLOT_PAGES 0x1f8ull
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define PTE_A (1ull << 5)

static const enum smmu_profile profiles[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

struct pf {
	smmu_vm *vm;
	smmu_gas *gas; /* shadow mode */
	smmu_vcpu *v;
};

static void pf_init(struct pf *p, enum smmu_mmu_mode mode, enum smmu_profile profile, uint32_t slot_flags)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	cfg.profile = profile;
	p->vm = tl_vm_cfg(&cfg);
	/* Direct mode: a slot short of 2 MiB, so that faults map 4 KiB sptes (only they prefetch). */
	uint64_t npages = mode == SMMU_MODE_DIRECT ? DIRECT_SLOT_PAGES : SLOT_PAGES;
	assert_int_equal(smmu_memslot_create(p->vm, 0, 0, npages, slot_flags), 0);
	p->gas = NULL;
	if (mode == SMMU_MODE_SHADOW)
		assert_int_equal(smmu_gas_create(p->vm, POOL_GFN, 64, &p->gas), 0);
	assert_int_equal(smmu_vcpu_create(p->vm, &p->v), 0);
	if (p->gas)
		assert_int_equal(smmu_vcpu_set_cr3(p->v, smmu_gas_cr3(p->gas)), 0);
}

static void pf_fini(struct pf *p)
{
	tl_assert_audit_clean(p->vm);
	smmu_vcpu_destroy(p->v);
	smmu_gas_destroy(p->gas);
	smmu_vm_destroy(p->vm);
}

/* The host stores into gfns [gfn, gfn + n) through their host pointers. */
static void host_write(struct pf *p, smmu_gfn_t gfn, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		char *h = smmu_gfn_to_hva(p->vm, gfn + i);
		assert_non_null(h);
		h[0] = 1;
		assert_int_equal(smmu_host_wrote(p->vm, h, h + 1), 0);
	}
}

/* Shadow mode: gva page i -> DATA_GFN + i, for i < n, with @prot. */
static void map_pages(struct pf *p, uint64_t n, uint32_t prot)
{
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(smmu_gas_map(p->gas, DATA_GVA + i * SMMU_PAGE_SIZE, DATA_GFN + i, SMMU_LEVEL_4K, prot), 0);
}

/* The guest pte of gva page @i, rewritten before any fault shadows its table. */
static void set_gpte(struct pf *p, uint64_t i, uint64_t set, uint64_t clear)
{
	struct smmu_guest_walk w;
	smmu_gva_t gva = DATA_GVA + i * SMMU_PAGE_SIZE;
	assert_int_equal(smmu_guest_walk(p->vm, smmu_gas_cr3(p->gas), gva, &w), 0);
	smmu_gpa_t a = (w.table_gfn[0] << SMMU_PAGE_SHIFT) + ((gva >> SMMU_PAGE_SHIFT) & 511) * 8;
	uint64_t e;
	assert_int_equal(smmu_guest_read_u64(p->vm, a, &e), 0);
	assert_int_equal(smmu_guest_write_u64(p->vm, a, (e | set) & ~clear), 0);
}

static uint64_t faults_fixed(struct pf *p)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(p->vm, &c), 0);
	return c.faults_fixed;
}

static smmu_gva_t addr_of(struct pf *p, uint64_t i)
{
	return p->gas ? DATA_GVA + i * SMMU_PAGE_SIZE : (DATA_GFN + i) << SMMU_PAGE_SHIFT;
}

static void fault(struct pf *p, uint64_t i, uint32_t access)
{
	assert_int_equal(smmu_vcpu_fault(p->v, addr_of(p, i), access, NULL), SMMU_FAULT_MAPPED);
}

/* Bit i set: page i has a present spte (a translation for a read). */
static unsigned present_mask(struct pf *p, uint64_t n)
{
	unsigned m = 0;
	for (uint64_t i = 0; i < n; i++) {
		struct smmu_translation t;
		if (smmu_vcpu_translate(p->v, addr_of(p, i), SMMU_ACC_READ, &t) == 0)
			m |= 1u << i;
	}
	return m;
}

static uint64_t spte_of(struct pf *p, uint64_t i)
{
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(p->v, addr_of(p, i), SMMU_ACC_READ, &t), 0);
	return t.spte;
}

static bool writable(struct pf *p, uint64_t i)
{
	struct smmu_translation t;
	return smmu_vcpu_translate(p->v, addr_of(p, i), SMMU_ACC_WRITE, &t) == 0;
}

/* ---- shadow paging ------------------------------------------------------------------------ */

/* One fault maps its group of 8, not beyond; the prefetched sptes have no Accessed bit and are
 * no fixed fault; the faulting one has it. */
static void test_shadow_group_of_8(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, profiles[k], 0);
		map_pages(&p, 16, RW_USER);
		host_write(&p, DATA_GFN, 16);
		uint64_t fixed = faults_fixed(&p);
		fault(&p, 11, SMMU_ACC_READ);
		assert_int_equal(present_mask(&p, 16), 0xff00);
		assert_int_equal(faults_fixed(&p), fixed + 1);
		for (uint64_t i = 8; i < 16; i++)
			assert_int_equal(!!(spte_of(&p, i) & PTE_A), i == 11);
		/* A prefetched spte is a translation like any other: the guest reaches it without a fault. */
		for (uint64_t i = 8; i < 16; i++)
			assert_true(writable(&p, i));
		pf_fini(&p);
	}
}

/* Nothing the host has not written: fresh anonymous memory is not mapped, and a read fault maps
 * the host's zero page, not a writable page. A write fault maps its own page writable. */
static void test_shadow_needs_host_writable_pages(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	map_pages(&p, 8, RW_USER);
	fault(&p, 0, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x01);
	fault(&p, 1, SMMU_ACC_READ); /* page 0's read fault made nothing writable on the host */
	assert_int_equal(present_mask(&p, 8), 0x03);
	host_write(&p, DATA_GFN + 3, 1); /* page 2 is not written: the group stops there */
	fault(&p, 7, SMMU_ACC_WRITE);
	assert_int_equal(present_mask(&p, 8), 0x83);
	pf_fini(&p);
}

/* prefetch_invalid_gpte: a pte without the Accessed bit (or not present) ends the group's
 * prefetch; the ptes before it are mapped. */
static void test_shadow_accessed_rule(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, profiles[k], 0);
		map_pages(&p, 8, RW_USER);
		set_gpte(&p, 5, 0, PTE_A);
		host_write(&p, DATA_GFN, 8);
		fault(&p, 3, SMMU_ACC_READ);
		assert_int_equal(present_mask(&p, 8), 0x1f); /* 0-2, 3 (the fault), 4; not 5, nor 6-7 */
		fault(&p, 5, SMMU_ACC_READ); /* the hardware sets A; a fault maps it */
		assert_int_equal(present_mask(&p, 8), 0xff);
		pf_fini(&p);
	}
}

/* Only non-present sptes: one already there keeps what its own fault made (its Accessed bit),
 * and the ones after it are still prefetched. */
static void test_shadow_only_non_present(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	map_pages(&p, 8, RW_USER);
	fault(&p, 2, SMMU_ACC_WRITE);
	uint64_t before = spte_of(&p, 2);
	assert_true(before & PTE_A);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 0, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0xff);
	assert_int_equal(spte_of(&p, 2), before);
	assert_int_equal(faults_fixed(&p), 2);
	pf_fini(&p);
}

/* protect_clean_gpte: a writable pte without the Dirty bit is prefetched read-only; a pte the
 * guest maps read-only stays so. */
static void test_shadow_clean_gpte_read_only(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_3_11, 0);
	map_pages(&p, 4, RW_USER);
	assert_int_equal(smmu_gas_map(p.gas, DATA_GVA + 4 * SMMU_PAGE_SIZE, DATA_GFN + 4, SMMU_LEVEL_4K, SMMU_PROT_USER), 0);
	set_gpte(&p, 2, 0, 1ull << 6);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 0, SMMU_ACC_WRITE);
	assert_int_equal(present_mask(&p, 8), 0x1f);
	assert_true(writable(&p, 1));
	assert_false(writable(&p, 2));
	assert_true(writable(&p, 3));
	assert_false(writable(&p, 4));
	pf_fini(&p);
}

/* mmu_set_spte's write protection holds for prefetch: a pte that maps a guest page table the MMU
 * shadows is prefetched read-only. */
static void test_shadow_prefetch_wrprots_shadowed_table(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	map_pages(&p, 8, RW_USER);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(p.vm, smmu_gas_cr3(p.gas), DATA_GVA, &w), 0);
	/* Page 6 maps the level-1 table that maps the data pages themselves. */
	assert_int_equal(smmu_gas_unmap(p.gas, DATA_GVA + 6 * SMMU_PAGE_SIZE), 0);
	assert_int_equal(smmu_gas_map(p.gas, DATA_GVA + 6 * SMMU_PAGE_SIZE, w.table_gfn[0], SMMU_LEVEL_4K, RW_USER), 0);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 0, SMMU_ACC_WRITE);
	assert_int_equal(present_mask(&p, 8), 0xff);
	assert_true(writable(&p, 5));
	assert_false(writable(&p, 6));
	assert_true(writable(&p, 7));
	pf_fini(&p);
}

/* gfn_to_memslot_dirty_bitmap: into a dirty-logged slot only read-only ptes are prefetched; the
 * first writable one ends the group. Nothing prefetched shows in the dirty log. */
static void test_shadow_dirty_log(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, SMMU_MEM_LOG_DIRTY_PAGES);
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(smmu_gas_map(p.gas, DATA_GVA + i * SMMU_PAGE_SIZE, DATA_GFN + i, SMMU_LEVEL_4K,
					      i < 2 ? SMMU_PROT_USER : RW_USER), 0);
	host_write(&p, DATA_GFN, 8);
	uint64_t bm[SLOT_PAGES / 64];
	assert_true(smmu_memslot_get_dirty_log(p.vm, 0, bm, SLOT_PAGES / 64) >= 0); /* clear the builder's */
	fault(&p, 5, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x23); /* 0 and 1 read-only, then 2 is writable: stop */
	/* The fault's own spte is writable (a dirty pte) and logged; nothing prefetched is. */
	assert_int_equal(smmu_memslot_get_dirty_log(p.vm, 0, bm, SLOT_PAGES / 64), 1);
	assert_int_equal(bm[(DATA_GFN + 5) / 64], 1ull << ((DATA_GFN + 5) % 64));
	pf_fini(&p);
}

/* A pte whose gfn lies in no slot ends the group; so does a read-only slot. */
static void test_shadow_no_slot_or_read_only(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	map_pages(&p, 8, RW_USER);
	assert_int_equal(smmu_gas_unmap(p.gas, DATA_GVA + 2 * SMMU_PAGE_SIZE), 0);
	assert_int_equal(smmu_gas_map(p.gas, DATA_GVA + 2 * SMMU_PAGE_SIZE, 0x10000, SMMU_LEVEL_4K, RW_USER), 0);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 0, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x03);
	/* A read-only slot at 0x10000, all its pages written by the host: the atomic lookup asks for
	 * a writable page, which a read-only slot never gives. */
	assert_int_equal(smmu_memslot_create(p.vm, 1, 0x10000, 8, SMMU_MEM_READONLY), 0);
	char *h = smmu_gfn_to_hva(p.vm, 0x10000);
	assert_int_equal(smmu_host_wrote(p.vm, h, h + 8 * SMMU_PAGE_SIZE), 0);
	fault(&p, 4, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x13); /* 2 (read-only slot) ends the group at once */
	pf_fini(&p);
}

/* A large leaf prefetches nothing; a guest 2 MiB page mapped with 4 KiB sptes (here: dirty
 * logging) prefetches its direct page's group. */
static void test_shadow_large_pages(void **state)
{
	(void)state;
	for (int logged = 0; logged < 2; logged++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, logged ? SMMU_MEM_LOG_DIRTY_PAGES : 0);
		assert_int_equal(smmu_gas_map(p.gas, DATA_GVA, 0x200, SMMU_LEVEL_2M, SMMU_PROT_USER), 0);
		char *h = smmu_gfn_to_hva(p.vm, 0x200);
		assert_int_equal(smmu_host_wrote(p.vm, h, h + 512 * SMMU_PAGE_SIZE), 0);
		assert_int_equal(smmu_vcpu_fault(p.v, DATA_GVA + 3 * SMMU_PAGE_SIZE, SMMU_ACC_READ, NULL), SMMU_FAULT_MAPPED);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(p.v, DATA_GVA + 3 * SMMU_PAGE_SIZE, SMMU_ACC_READ, &t), 0);
		assert_int_equal(t.level, logged ? SMMU_LEVEL_4K : SMMU_LEVEL_2M);
		if (logged) {
			for (uint64_t i = 0; i < 10; i++)
				assert_int_equal(smmu_vcpu_translate(p.v, DATA_GVA + i * SMMU_PAGE_SIZE, SMMU_ACC_READ, &t) == 0,
						 i < 8);
		}
		pf_fini(&p);
	}
}

/* rules->prefetch_skips_spurious: a fault that leaves its spte unchanged prefetches in 3.11,
 * not today. */
static void test_spurious_fault_era_rule(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, profiles[k], 0);
		/* Read-only: a writable spte rebuilt over itself loses its Dirty bit today
		 * (rules->spte_dirty_on_write), so it would not come out unchanged. */
		map_pages(&p, 8, SMMU_PROT_USER);
		/* Page 3's frame mapped writable by the host from the start, so that its spte
		 * (SPTE_HOST_WRITABLE included) comes out the same the second time. */
		host_write(&p, DATA_GFN + 3, 1);
		fault(&p, 3, SMMU_ACC_READ);
		assert_int_equal(present_mask(&p, 8), 0x08);
		host_write(&p, DATA_GFN, 8);
		fault(&p, 3, SMMU_ACC_READ);
		assert_int_equal(present_mask(&p, 8), profiles[k] == SMMU_PROFILE_LINUX_3_11 ? 0xff : 0x08);
		pf_fini(&p);
	}
}

/* A prefetched spte is audited like any other: when the guest table changes behind the MMU's
 * back (a host store KVM does not see), the audit reports the prefetched translation. */
static void test_prefetched_spte_is_audited(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	map_pages(&p, 8, RW_USER);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 0, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0xff);
	tl_assert_audit_clean(p.vm);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(p.vm, smmu_gas_cr3(p.gas), DATA_GVA, &w), 0);
	uint64_t *gpte = (uint64_t *)smmu_gfn_to_hva(p.vm, w.table_gfn[0]) + ((DATA_GVA >> 12) & 511) + 6;
	uint64_t saved = *gpte;
	*gpte = (saved & ~SMMU_PTE_ADDR_MASK) | ((DATA_GFN + 100) << SMMU_PAGE_SHIFT);
	struct smmu_violation first;
	assert_int_equal(tl_audit_count(p.vm, SMMU_INV_TRANSLATION, &first), 1);
	assert_int_equal(first.addr, DATA_GVA + 6 * SMMU_PAGE_SIZE);
	*gpte = saved;
	pf_fini(&p);
}

/* ---- direct mode -------------------------------------------------------------------------- */

/* __direct_pte_prefetch: the group's contiguous gfns, as far as the host maps them writable;
 * each run of non-present sptes on its own. */
static void test_direct_group(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_DIRECT, profiles[k], 0);
		host_write(&p, DATA_GFN, 16);
		uint64_t fixed = faults_fixed(&p);
		fault(&p, 2, SMMU_ACC_WRITE);
		assert_int_equal(present_mask(&p, 16), 0x00ff);
		assert_int_equal(faults_fixed(&p), fixed + 1);
		assert_false(spte_of(&p, 0) & PTE_A);
		assert_true(spte_of(&p, 2) & PTE_A);
		pf_fini(&p);
	}
	/* Runs [8] and [11,15] around the fault at 9 and a present 10; the host does not map 12, so
	 * the second run maps its prefix, 11. */
	struct pf p;
	pf_init(&p, SMMU_MODE_DIRECT, SMMU_PROFILE_LINUX_TODAY, 0);
	fault(&p, 10, SMMU_ACC_WRITE); /* nothing written by the host yet: alone */
	assert_int_equal(present_mask(&p, 16), 0x0400);
	host_write(&p, DATA_GFN + 8, 4);
	host_write(&p, DATA_GFN + 13, 3);
	fault(&p, 9, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 16), 0x0f00);
	pf_fini(&p);
}

/* gfn_to_page_many_atomic: a run that crosses the slot's end maps nothing and ends the group. */
static void test_direct_slot_edge(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_DIRECT, SMMU_PROFILE_LINUX_TODAY, 0);
	/* Slot 1: gfns 0x2000-0x2005; slot 2: 0x2006-0x2007, both written by the host. */
	assert_int_equal(smmu_memslot_create(p.vm, 1, 0x2000, 6, 0), 0);
	assert_int_equal(smmu_memslot_create(p.vm, 2, 0x2006, 2, 0), 0);
	for (smmu_gfn_t g = 0x2000; g < 0x2008; g++) {
		char *h = smmu_gfn_to_hva(p.vm, g);
		assert_int_equal(smmu_host_wrote(p.vm, h, h + 1), 0);
	}
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_fault(p.v, 0x2003ull << 12, SMMU_ACC_READ, NULL), SMMU_FAULT_MAPPED);
	unsigned m = 0;
	for (unsigned i = 0; i < 8; i++)
		if (smmu_vcpu_translate(p.v, (0x2000ull + i) << 12, SMMU_ACC_READ, &t) == 0)
			m |= 1u << i;
	assert_int_equal(m, 0x0f); /* [0,2] mapped; [4,7] runs into slot 2: nothing */
	pf_fini(&p);
}

/* Direct pages map with every access, so a dirty-logged slot gets no prefetch at all. */
static void test_direct_dirty_log(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_DIRECT, SMMU_PROFILE_LINUX_3_11, SMMU_MEM_LOG_DIRTY_PAGES);
	host_write(&p, DATA_GFN, 8);
	fault(&p, 4, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x10);
	pf_fini(&p);
}

/* The MMU notifier's unmap takes the pages off the host: a later fault prefetches none of them. */
static void test_notifier_unmaps_host_pages(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_DIRECT, SMMU_PROFILE_LINUX_TODAY, 0);
	host_write(&p, DATA_GFN, 8);
	char *h = smmu_gfn_to_hva(p.vm, DATA_GFN);
	assert_true(smmu_mmu_notifier_invalidate_range(p.vm, h, h + 8 * SMMU_PAGE_SIZE) >= 0);
	fault(&p, 0, SMMU_ACC_READ);
	assert_int_equal(present_mask(&p, 8), 0x01);
	pf_fini(&p);
}

/* Over THP (host level 2M) the host's first store into a huge page populates all of it, one
 * pmd: every page of it is host-writable and a fault prefetches its whole group. Over 4 KiB host
 * pages only the page written is. */
static void test_thp_write_maps_huge_page(void **state)
{
	(void)state;
	for (int level = SMMU_LEVEL_4K; level <= SMMU_LEVEL_2M; level++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
		assert_int_equal(smmu_memslot_set_host_level(p.vm, 0, level), 0);
		map_pages(&p, 16, RW_USER);
		host_write(&p, DATA_GFN + 3, 1);
		fault(&p, 0, SMMU_ACC_READ);
		fault(&p, 8, SMMU_ACC_READ);
		assert_int_equal(present_mask(&p, 16), level == SMMU_LEVEL_2M ? 0xffff : 0x0101);
		pf_fini(&p);
	}
}

/* A huge page the notifier cuts in part is split: the cut's pages are unmapped, the others stay
 * as they were (writable where the huge page was), and from then on a write maps only its own
 * 4 KiB page. */
static void test_thp_split_back_to_4k(void **state)
{
	(void)state;
	struct pf p;
	pf_init(&p, SMMU_MODE_SHADOW, SMMU_PROFILE_LINUX_TODAY, 0);
	assert_int_equal(smmu_memslot_set_host_level(p.vm, 0, SMMU_LEVEL_2M), 0);
	/* gva pages 0..15: gfns 0x100..0x10f (2 MiB page 0); 512..527: gfns 0x300..0x30f (page 1). */
	map_pages(&p, 528, RW_USER);
	host_write(&p, DATA_GFN, 1); /* huge page 0 populated */
	char *h = smmu_gfn_to_hva(p.vm, DATA_GFN + 15);
	assert_true(smmu_mmu_notifier_invalidate_range(p.vm, h, h + SMMU_PAGE_SIZE) >= 0);
	fault(&p, 8, SMMU_ACC_READ); /* 9..14 stayed writable, 15 went */
	assert_int_equal(present_mask(&p, 16), 0x7f00);
	/* Huge page 1, split before anything was written: a write maps its own page only. */
	h = smmu_gfn_to_hva(p.vm, DATA_GFN + 0x200 + 8);
	assert_true(smmu_mmu_notifier_invalidate_range(p.vm, h, h + SMMU_PAGE_SIZE) >= 0);
	host_write(&p, DATA_GFN + 0x200 + 3, 1);
	fault(&p, 0x200, SMMU_ACC_READ);
	struct smmu_translation t;
	for (uint64_t i = 0x200; i < 0x208; i++)
		assert_int_equal(smmu_vcpu_translate(p.v, addr_of(&p, i), SMMU_ACC_READ, &t) == 0, i == 0x200);
	pf_fini(&p);
}

/* hva_to_pfn's map_writable: a read fault on a page the host does not map writable (never
 * written: unmapped or the zero page) maps it read-only even where the guest pte is dirty and
 * writable, in both eras; once the host wrote it, a read fault maps it writable. */
static void test_read_fault_map_writable(void **state)
{
	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct pf p;
		pf_init(&p, SMMU_MODE_SHADOW, profiles[k], 0);
		map_pages(&p, 16, RW_USER);
		fault(&p, 0, SMMU_ACC_READ);
		assert_false(writable(&p, 0));
		host_write(&p, DATA_GFN + 8, 1);
		fault(&p, 8, SMMU_ACC_READ);
		assert_true(writable(&p, 8));
		fault(&p, 0, SMMU_ACC_WRITE); /* a write fault maps its page writable itself */
		assert_true(writable(&p, 0));
		pf_fini(&p);
	}
}

static void test_host_wrote_bad_input(void **state)
{
	(void)state;
	char c = 0;
	assert_int_equal(smmu_host_wrote(NULL, &c, &c + 1), -EINVAL);
	struct pf p;
	pf_init(&p, SMMU_MODE_DIRECT, SMMU_PROFILE_LINUX_TODAY, 0);
	assert_int_equal(smmu_host_wrote(p.vm, &c + 1, &c), -EINVAL);
	assert_int_equal(smmu_host_wrote(p.vm, &c, &c + 1), 0); /* outside every slot: ignored */
	pf_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shadow_group_of_8),
		cmocka_unit_test(test_shadow_needs_host_writable_pages),
		cmocka_unit_test(test_shadow_accessed_rule),
		cmocka_unit_test(test_shadow_only_non_present),
		cmocka_unit_test(test_shadow_clean_gpte_read_only),
		cmocka_unit_test(test_shadow_prefetch_wrprots_shadowed_table),
		cmocka_unit_test(test_shadow_dirty_log),
		cmocka_unit_test(test_shadow_no_slot_or_read_only),
		cmocka_unit_test(test_shadow_large_pages),
		cmocka_unit_test(test_spurious_fault_era_rule),
		cmocka_unit_test(test_prefetched_spte_is_audited),
		cmocka_unit_test(test_direct_group),
		cmocka_unit_test(test_direct_slot_edge),
		cmocka_unit_test(test_direct_dirty_log),
		cmocka_unit_test(test_notifier_unmaps_host_pages),
		cmocka_unit_test(test_thp_write_maps_huge_page),
		cmocka_unit_test(test_thp_split_back_to_4k),
		cmocka_unit_test(test_read_fault_map_writable),
		cmocka_unit_test(test_host_wrote_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
