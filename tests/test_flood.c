/*
 * Trapped guest page-table writes that zap the whole shadow page (kvm_mmu_pte_write, today's
 * kvm_mmu_track_write): write flooding (the third write to a page above level 1 with no use of
 * it in between; a fault's walk through it or a lookup that finds it resets the count) and
 * misaligned writes (not one whole 8-byte entry; a 4-byte store counts as one of its whole
 * entry), each counted in mmu_flooded; and the eras' one difference there, the obsolete pages.
 * Every case runs in both profiles and ends with the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <string.h>

#include "mmu.h"

#define POOL_GFN 16
#define POOL_PAGES 64
#define DATA_GVA 0x40000000ull /* region i at DATA_GVA + i * 2 MiB: entry i of one directory */
#define DATA_GFN 200
#define NREGIONS 8
/* The guest's views of its tables, in another directory's range, each in a group of 8 ptes of
 * its own: pte prefetch never maps one for another (a prefetched writable spte would make the
 * level-1 table unsync in 3.11, prefetch_may_unsync). */
#define PD_WIN 0x80000000ull
#define ROOT_WIN (PD_WIN + 0x8000)
#define L1_WIN (PD_WIN + 0x10000)
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define REGION(i) (DATA_GVA + (uint64_t)(i) * (2ull << 20))

struct fix {
	struct tl_guest g;
	smmu_gfn_t root, l3, l2, l1; /* the data's tables: PML4, PDPT, directory, region 0's table */
};

static uint64_t flooded(smmu_vm *vm)
{
	uint64_t n = ~0ull;
	assert_int_equal(smmu_vm_get_mmu_flooded(vm, &n), 0);
	return n;
}

static struct smmu_sp *find_sp(smmu_vm *vm, smmu_gfn_t gfn, int level)
{
	return (struct smmu_sp *)tl_find_sp(vm, gfn, level);
}

static void read_region(struct fix *f, int i)
{
	uint64_t v;
	assert_int_equal(smmu_vcpu_read(f->g.vcpu, REGION(i), &v, sizeof(v)), 0);
}

/* NREGIONS data pages under one directory, read (so shadowed: root, l3, l2 and a level-1 page
 * each); the directory, the root and region 0's table mapped for the guest to store into, in
 * another directory's range, before anything was shadowed (no host write is trapped). */
static void setup(struct fix *f, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	tl_guest_init_cfg(&f->g, &cfg, 4096, POOL_GFN, POOL_PAGES);
	for (int i = 0; i < NREGIONS; i++)
		assert_int_equal(smmu_gas_map(f->g.gas, REGION(i), DATA_GFN + i, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(f->g.vm, smmu_gas_cr3(f->g.gas), DATA_GVA, &w), 0);
	f->l1 = w.table_gfn[0];
	f->l2 = w.table_gfn[1];
	f->l3 = w.table_gfn[2];
	f->root = w.table_gfn[3];
	assert_int_equal(f->root, smmu_gas_cr3(f->g.gas) >> SMMU_PAGE_SHIFT);
	assert_int_equal(smmu_gas_map(f->g.gas, PD_WIN, f->l2, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(f->g.gas, ROOT_WIN, f->root, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(f->g.gas, L1_WIN, f->l1, SMMU_LEVEL_4K, RW_USER), 0);
	for (int i = 0; i < NREGIONS; i++)
		read_region(f, i);
	assert_non_null(find_sp(f->g.vm, f->l2, SMMU_LEVEL_2M));
	assert_non_null(find_sp(f->g.vm, f->l1, SMMU_LEVEL_4K));
	assert_int_equal(flooded(f->g.vm), 0);
}

/* The guest stores @bytes bytes at @offset past directory entry @idx through PD_WIN: the bytes
 * already there, so its tables do not change, but the store is trapped (the directory is
 * write-protected) and emulated like any other. */
static void pd_store(struct fix *f, unsigned idx, size_t bytes, unsigned offset)
{
	uint8_t cur[16];
	smmu_gpa_t at = (f->l2 << SMMU_PAGE_SHIFT) + idx * 8 + offset;
	assert_int_equal(smmu_guest_read(f->g.vm, at, cur, bytes), 0);
	struct smmu_vm_counters c0 = tl_counters(f->g.vm);
	assert_int_equal(smmu_vcpu_write(f->g.vcpu, PD_WIN + idx * 8 + offset, cur, bytes), 0);
	assert_int_equal(tl_counters(f->g.vm).pte_writes, c0.pte_writes + 1); /* trapped, once */
}

/* Emulated store of the same 8 bytes into entry @idx of table @gfn (smmu_guest_write). */
static void same_u64(struct fix *f, smmu_gfn_t gfn, unsigned idx)
{
	uint64_t v;
	smmu_gpa_t at = (gfn << SMMU_PAGE_SHIFT) + idx * 8;
	assert_int_equal(smmu_guest_read_u64(f->g.vm, at, &v), 0);
	assert_int_equal(smmu_guest_write_u64(f->g.vm, at, v), 0);
}

static const enum smmu_profile eras[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };
#define FOR_EACH_ERA(p) for (size_t e_ = 0; e_ < 2 && ((p) = eras[e_], 1); e_++)

/* ---- flooding ------------------------------------------------------------------------------- */

/* Three trapped stores into the directory with no use of it between: the third zaps it. */
static void test_third_write_floods(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		struct smmu_vm_counters c0 = tl_counters(f.g.vm);
		pd_store(&f, 1, 8, 0);
		pd_store(&f, 2, 8, 0);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		assert_int_equal(sp->write_flooding_count, 2);
		assert_int_equal(flooded(f.g.vm), 0);
		assert_int_equal(tl_counters(f.g.vm).pages_zapped, c0.pages_zapped);
		pd_store(&f, 3, 8, 0);
		assert_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 1);
		assert_int_equal(tl_counters(f.g.vm).pages_zapped, c0.pages_zapped + 1);
		tl_assert_audit_clean(f.g.vm);
		/* The guest's next use of the directory shadows it again, its count from zero. */
		read_region(&f, 4);
		sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		assert_int_equal(sp->write_flooding_count, 0);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* A fault whose walk goes through the directory (FNAME(fetch)) resets its count: two stores,
 * a use, two stores do not flood it; a third store in a row does. */
static void test_walk_resets_count(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		pd_store(&f, 1, 8, 0);
		pd_store(&f, 2, 8, 0);
		/* The store dropped entry 1's shadow entry: reading region 1 faults through l2. */
		struct smmu_vcpu_counters v0, v1;
		assert_int_equal(smmu_vcpu_get_counters(f.g.vcpu, &v0), 0);
		read_region(&f, 1);
		assert_int_equal(smmu_vcpu_get_counters(f.g.vcpu, &v1), 0);
		assert_int_equal(v1.faults, v0.faults + 1);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		assert_int_equal(sp->write_flooding_count, 0);
		pd_store(&f, 3, 8, 0);
		pd_store(&f, 4, 8, 0);
		assert_ptr_equal(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M), sp);
		assert_int_equal(flooded(f.g.vm), 0);
		pd_store(&f, 5, 8, 0);
		assert_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 1);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* A lookup that finds the page resets its count too (kvm_mmu_get_page, today's
 * kvm_mmu_find_shadow_page): a second vCPU loading the same CR3 finds the root. The root's own
 * stores are emulated writes without a vCPU (a vCPU's store would fault through the root and
 * reset the count itself). */
static void test_lookup_resets_count(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		struct smmu_sp *root = find_sp(f.g.vm, f.root, PT64_ROOT_LEVEL);
		assert_non_null(root);
		same_u64(&f, f.root, 1);
		same_u64(&f, f.root, 2);
		assert_int_equal(root->write_flooding_count, 2);
		smmu_vcpu *v2;
		assert_int_equal(smmu_vcpu_create(f.g.vm, &v2), 0);
		assert_int_equal(smmu_vcpu_set_cr3(v2, smmu_gas_cr3(f.g.gas)), 0);
		assert_int_equal(smmu_vcpu_mmu_reload(v2), 0);
		assert_ptr_equal(find_sp(f.g.vm, f.root, PT64_ROOT_LEVEL), root);
		assert_int_equal(root->write_flooding_count, 0);
		same_u64(&f, f.root, 3);
		same_u64(&f, f.root, 4);
		assert_int_equal(flooded(f.g.vm), 0);
		assert_ptr_equal(find_sp(f.g.vm, f.root, PT64_ROOT_LEVEL), root);
		same_u64(&f, f.root, 5);
		assert_int_equal(flooded(f.g.vm), 1);
		assert_null(find_sp(f.g.vm, f.root, PT64_ROOT_LEVEL)); /* zapped (a root in use: invalid) */
		/* Both vCPUs reload and go on. */
		read_region(&f, 0);
		uint64_t v;
		assert_int_equal(smmu_vcpu_read(v2, REGION(1), &v, sizeof(v)), 0);
		tl_assert_audit_clean(f.g.vm);
		smmu_vcpu_destroy(v2);
		tl_guest_fini(&f.g);
	}
}

/* Level-1 pages are never flooded (they may go unsync instead): five trapped writes to one
 * zap only the written sptes. */
static void test_level1_never_floods(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K);
		assert_non_null(sp);
		assert_true(is_shadow_present_pte(sp->spt[0]));
		struct smmu_vm_counters c0 = tl_counters(f.g.vm);
		for (unsigned i = 0; i < 5; i++)
			same_u64(&f, f.l1, i);
		assert_int_equal(tl_counters(f.g.vm).pte_writes, c0.pte_writes + 5);
		assert_ptr_equal(find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K), sp);
		assert_int_equal(sp->write_flooding_count, 0);
		assert_int_equal(flooded(f.g.vm), 0);
		assert_false(is_shadow_present_pte(sp->spt[0])); /* the written entry's spte is gone */
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* ---- misaligned writes ---------------------------------------------------------------------- */

/* A 2-byte store and an 8-byte store across two entries are misaligned: each zaps the page at
 * once (the first write to it); a byte at an entry's start is not; nor is a 4-byte store, taken
 * for a store of the whole entry it starts in (CR4.PAE), even where it runs into the next one. */
static void test_misaligned(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		pd_store(&f, 1, 2, 0);
		assert_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 1);
		tl_assert_audit_clean(f.g.vm);

		read_region(&f, 1);
		pd_store(&f, 2, 8, 4);
		assert_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 2);
		tl_assert_audit_clean(f.g.vm);

		read_region(&f, 2);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		pd_store(&f, 3, 4, 4); /* the upper half of entry 3 */
		assert_ptr_equal(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M), sp);
		assert_false(is_shadow_present_pte(sp->spt[3]));
		pd_store(&f, 4, 1, 0); /* a byte at entry 4's start */
		assert_ptr_equal(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M), sp);
		assert_false(is_shadow_present_pte(sp->spt[4]));
		assert_int_equal(sp->write_flooding_count, 2);
		assert_int_equal(flooded(f.g.vm), 2);
		tl_assert_audit_clean(f.g.vm);

		/* Walks through the directory: the count restarts. */
		read_region(&f, 3);
		read_region(&f, 5);
		read_region(&f, 6);
		assert_int_equal(sp->write_flooding_count, 0);
		assert_true(is_shadow_present_pte(sp->spt[5]));
		assert_true(is_shadow_present_pte(sp->spt[6]));
		pd_store(&f, 5, 4, 6); /* entry 5's last 2 bytes and entry 6's first 2: entry 5's */
		assert_ptr_equal(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M), sp);
		assert_false(is_shadow_present_pte(sp->spt[5]));
		assert_true(is_shadow_present_pte(sp->spt[6]));
		pd_store(&f, 6, 1, 1); /* a byte inside entry 6 */
		assert_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 3);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* KVM's quirk, kept: a 4-byte store across two directory entries is taken for the first entry
 * only (mmu_pte_write_fetch_gpte widens it to that 8-byte entry), so the spte of the second
 * entry outlives the guest's change of it. The audit reports that stale translation; a zap of
 * the page clears it. */
static void test_straddling_store_leaves_stale_spte(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		assert_true(is_shadow_present_pte(sp->spt[2]));
		/* Entry 1's last 2 bytes as they are, entry 2's first 2 bytes zero: not present. */
		uint8_t b[4];
		smmu_gpa_t at = (f.l2 << SMMU_PAGE_SHIFT) + 1 * 8 + 6;
		assert_int_equal(smmu_guest_read(f.g.vm, at, b, 2), 0);
		b[2] = b[3] = 0;
		assert_int_equal(smmu_vcpu_write(f.g.vcpu, PD_WIN + 1 * 8 + 6, b, sizeof(b)), 0);
		uint64_t pde2;
		assert_int_equal(smmu_guest_read_u64(f.g.vm, (f.l2 << SMMU_PAGE_SHIFT) + 2 * 8, &pde2), 0);
		assert_false(pde2 & SMMU_PTE_PRESENT);
		assert_ptr_equal(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M), sp); /* not misaligned */
		assert_false(is_shadow_present_pte(sp->spt[1])); /* the entry it was taken for */
		assert_true(is_shadow_present_pte(sp->spt[2]));  /* stale */
		struct smmu_violation first;
		assert_true(tl_audit_count(f.g.vm, SMMU_INV_TRANSLATION, &first) >= 1);
		assert_int_equal(first.addr, REGION(2));
		assert_int_equal(smmu_zap_all(f.g.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* Misalignment zaps a level-1 page too (only flooding skips them). */
static void test_misaligned_level1(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		uint16_t low;
		smmu_gpa_t at = f.l1 << SMMU_PAGE_SHIFT;
		assert_int_equal(smmu_guest_read(f.g.vm, at, &low, sizeof(low)), 0);
		assert_int_equal(smmu_guest_write(f.g.vm, at, &low, sizeof(low)), 0);
		assert_null(find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K));
		assert_non_null(find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M));
		assert_int_equal(flooded(f.g.vm), 1);
		tl_assert_audit_clean(f.g.vm);
		read_region(&f, 0);
		assert_non_null(find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K));
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* ---- the eras: obsolete pages --------------------------------------------------------------- */

/* After a fast zap's bump, before its drain: 3.11's kvm_mmu_pte_write still looks at the
 * obsolete directory (three writes flood it), today's skips it. */
static void test_obsolete_pages_by_era(void **state)
{
	(void)state;
	enum smmu_profile p;
	FOR_EACH_ERA(p) {
		struct fix f;
		setup(&f, p);
		struct smmu_sp *sp = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
		assert_non_null(sp);
		assert_int_equal(smmu_fast_zap_bump(f.g.vm, NULL), 0);
		assert_true(is_obsolete_sp(f.g.vm, sp));
		struct smmu_vm_counters c0 = tl_counters(f.g.vm);
		for (unsigned i = 1; i <= 3; i++)
			same_u64(&f, f.l2, i);
		struct smmu_vm_counters c1 = tl_counters(f.g.vm);
		assert_int_equal(c1.pte_writes, c0.pte_writes + 3);
		if (p == SMMU_PROFILE_LINUX_3_11) {
			assert_int_equal(flooded(f.g.vm), 1);
			assert_true(sp->role.invalid);
			assert_int_equal(c1.pages_zapped, c0.pages_zapped + 1);
		} else {
			assert_int_equal(flooded(f.g.vm), 0);
			assert_false(sp->role.invalid);
			assert_int_equal(sp->write_flooding_count, 0);
			assert_true(is_shadow_present_pte(sp->spt[1])); /* not even its entry's spte */
			assert_int_equal(c1.pages_zapped, c0.pages_zapped);
		}
		assert_int_equal(smmu_fast_zap_drain(f.g.vm, NULL), 0);
		read_region(&f, 0);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_third_write_floods),
		cmocka_unit_test(test_walk_resets_count),
		cmocka_unit_test(test_lookup_resets_count),
		cmocka_unit_test(test_level1_never_floods),
		cmocka_unit_test(test_misaligned),
		cmocka_unit_test(test_straddling_store_leaves_stale_spte),
		cmocka_unit_test(test_misaligned_level1),
		cmocka_unit_test(test_obsolete_pages_by_era),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
