/*
 * kvm_arch_flush_shadow_memslot in each strategy on a populated two-slot shadow VM (the flushed
 * slot holds data frames and one guest's page tables), the seed thread's scenario (rmap-only
 * unmap leaves lpage_info counts behind; the hash walk and the rebuild do not), dirty logging,
 * and the MMU notifier's range invalidation and release.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S0_BASE 0ull
#define S0_PAGES 2048ull
#define S1_BASE 4096ull
#define S1_PAGES 2048ull
#define POOL_A 16ull               /* guest A's tables: slot 0 */
#define POOL_B (S1_BASE + 32)      /* guest B's tables: slot 1 */
#define NMAP 16
#define LARGE_GVA 0x60000000ull    /* guest A: a 2M page over slot 1 */
#define LARGE_GFN (S1_BASE + 1024) /* 2M-aligned, no guest table in its 2M region */
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

struct mapping {
	smmu_gva_t gva;
	smmu_gfn_t gfn;
	int level;
};

struct guest {
	smmu_gas *gas;
	smmu_vcpu *vcpu;
	struct mapping m[2 * NMAP + 1];
	int n;
};

struct setup {
	smmu_vm *vm;
	struct guest a, b;
};

static void add_map(struct guest *g, smmu_gva_t gva, smmu_gfn_t gfn, int level)
{
	assert_int_equal(smmu_gas_map(g->gas, gva, gfn, level, RW_USER), 0);
	g->m[g->n++] = (struct mapping){ gva, gfn, level };
}

static void fault_guest(struct guest *g)
{
	for (int i = 0; i < g->n; i++) {
		struct smmu_fault_info fi;
		int r, tries = 0;
		do
			r = smmu_vcpu_fault(g->vcpu, g->m[i].gva, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi);
		while (r == SMMU_FAULT_RETRY && ++tries < 4);
		assert_int_equal(r, SMMU_FAULT_MAPPED);
	}
}

static bool in_slot1(smmu_gfn_t gfn) { return gfn >= S1_BASE && gfn < S1_BASE + S1_PAGES; }

static void setup_init(struct setup *s, enum smmu_flush_strategy delete_strategy)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.flush_strategy = delete_strategy;
	cfg.max_mmu_pages = 1ull << 16;
	s->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(s->vm, 0, S0_BASE, S0_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(s->vm, 1, S1_BASE, S1_PAGES, 0), 0);
	struct guest *gs[2] = { &s->a, &s->b };
	for (int k = 0; k < 2; k++) {
		struct guest *g = gs[k];
		g->n = 0;
		assert_int_equal(smmu_gas_create(s->vm, k ? POOL_B : POOL_A, 64, &g->gas), 0);
		assert_int_equal(smmu_vcpu_create(s->vm, &g->vcpu), 0);
		assert_int_equal(smmu_vcpu_set_cr3(g->vcpu, smmu_gas_cr3(g->gas)), 0);
		for (uint64_t i = 0; i < NMAP; i++) {
			/* A: data in slot 0 at 0x4.., in slot 1 at 0x5..; B the other way round. */
			add_map(g, 0x40000000ull + i * 0x1000, (k ? S1_BASE + 700 : S0_BASE + 512) + i, SMMU_LEVEL_4K);
			add_map(g, 0x50000000ull + i * 0x1000, (k ? S0_BASE + 700 : S1_BASE + 512) + i, SMMU_LEVEL_4K);
		}
	}
	add_map(&s->a, LARGE_GVA, LARGE_GFN, SMMU_LEVEL_2M);
	fault_guest(&s->a);
	fault_guest(&s->b);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(s->a.vcpu, LARGE_GVA, 0, &t), 0);
	assert_int_equal(t.level, SMMU_LEVEL_2M);
	tl_assert_audit_clean(s->vm);
}

static void setup_fini(struct setup *s)
{
	smmu_vcpu_destroy(s->a.vcpu);
	smmu_vcpu_destroy(s->b.vcpu);
	smmu_gas_destroy(s->a.gas);
	smmu_gas_destroy(s->b.gas);
	smmu_vm_destroy(s->vm);
}

static int count_cb(smmu_vm *vm, uint64_t *sptep, uint64_t spte, void *ctx)
{
	(void)vm;
	(void)sptep;
	(void)spte;
	(*(uint64_t *)ctx)++;
	return 0;
}

/* rmap entries of every gfn of slot @id at every level (each large page's rmap visited once). */
static uint64_t rmap_entries(smmu_vm *vm, int id)
{
	uint64_t n = 0;
	int bad = 0;
	lock(vm);
	smmu_gfn_t base;
	uint64_t npages;
	if (smmu_slot_range(vm, id, &base, &npages) != 0)
		bad = 1;
	for (int level = 1; !bad && level <= 3; level++) {
		uint64_t span = 1ull << (9 * (level - 1));
		for (smmu_gfn_t gfn = base; gfn < base + npages; gfn = (gfn | (span - 1)) + 1)
			if (smmu_rmap_walk(vm, id, gfn, level, count_cb, &n) != 0)
				bad = 1;
	}
	unlock(vm);
	assert_int_equal(bad, 0);
	return n;
}

/* Valid (not invalid, not obsolete) pages whose gfn lies in [lo, hi). */
static uint64_t current_pages_in(smmu_vm *vm, smmu_gfn_t lo, smmu_gfn_t hi)
{
	uint64_t n = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		smmu_sp_get_info(vm, sp, &i);
		if (!i.invalid && !i.obsolete && i.gfn >= lo && i.gfn < hi)
			n++;
	}
	unlock(vm);
	return n;
}

static void expect_translate(smmu_vm *vm, struct guest *g, bool slot1, int want)
{
	for (int i = 0; i < g->n; i++) {
		bool s1 = in_slot1(g->m[i].gfn);
		if (s1 != slot1)
			continue;
		struct smmu_translation t;
		int r = smmu_vcpu_translate(g->vcpu, g->m[i].gva + 0x10, 0, &t);
		if (r != want)
			fail_msg("translate %#llx (gfn %llu): %d, expected %d", (unsigned long long)g->m[i].gva,
				 (unsigned long long)g->m[i].gfn, r, want);
		if (r == 0)
			assert_ptr_equal(t.hva, (char *)smmu_gfn_to_hva(vm, g->m[i].gfn) + 0x10);
	}
}

/* ---- each strategy on the two-slot VM ---------------------------------------------------------------- */

static void flush_slot1(enum smmu_flush_strategy strat)
{
	struct setup s;
	setup_init(&s, SMMU_FLUSH_FAST_ZAP);
	uint64_t entries = rmap_entries(s.vm, 1);
	assert_int_equal(entries, 2 * NMAP + 1); /* A: 16 + the 2M page, B: 16 */
	uint64_t s0_pages = current_pages_in(s.vm, S0_BASE, S0_BASE + S0_PAGES);
	assert_true(current_pages_in(s.vm, S1_BASE, S1_BASE + S1_PAGES) >= 4); /* B's tables */

	struct smmu_zap_report rep;
	assert_int_equal(smmu_memslot_flush(s.vm, 1, strat, &rep), 0);
	assert_true(rep.completed);
	assert_true(rep.rounds >= 1);
	printf("flush slot 1 with %s: %llu pages zapped, %llu sptes dropped, %llu flushes\n",
	       smmu_flush_strategy_name(strat), (unsigned long long)rep.pages_zapped,
	       (unsigned long long)rep.sptes_dropped, (unsigned long long)rep.remote_flushes);
	/* No present leaf spte maps a gfn of slot 1. */
	assert_int_equal(rmap_entries(s.vm, 1), 0);
	switch (strat) {
	case SMMU_FLUSH_RMAP_ONLY:
	case SMMU_FLUSH_RMAP_REBUILD:
		assert_int_equal(rep.sptes_dropped, entries);
		/* fall through */
	case SMMU_FLUSH_HASH_WALK:
		assert_true(rep.sptes_dropped > 0);
		/* Slot 0's mappings of guest A survive until the vCPU reloads. */
		expect_translate(s.vm, &s.a, false, 0);
		break;
	default:
		assert_true(rep.pages_zapped > 0);
		break;
	}
	if (strat == SMMU_FLUSH_HASH_WALK) {
		/* Only the pages of slot 1 went: guest A's tables in slot 0 are still current. */
		assert_int_equal(current_pages_in(s.vm, S1_BASE, S1_BASE + S1_PAGES), 0);
		assert_int_equal(current_pages_in(s.vm, S0_BASE, S0_BASE + S0_PAGES), s0_pages);
	}
	assert_int_equal(smmu_vcpu_enter(s.a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(s.b.vcpu), 0);
	expect_translate(s.vm, &s.a, true, -EFAULT);
	expect_translate(s.vm, &s.b, true, -EFAULT);
	if (strat != SMMU_FLUSH_RMAP_ONLY) {
		tl_assert_audit_clean(s.vm);
	} else {
		long n = tl_audit_total(s.vm);
		printf("  rmap_only flush without delete: audit finds %ld violation(s)\n", n);
	}
	/* The slot stays usable: everything faults back in. */
	fault_guest(&s.a);
	fault_guest(&s.b);
	expect_translate(s.vm, &s.a, true, 0);
	expect_translate(s.vm, &s.b, true, 0);
	assert_int_equal(rmap_entries(s.vm, 1), entries);
	if (strat != SMMU_FLUSH_RMAP_ONLY)
		tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

static void test_flush_zap_all(void **state) { (void)state; flush_slot1(SMMU_FLUSH_ZAP_ALL); }
static void test_flush_fast_zap(void **state) { (void)state; flush_slot1(SMMU_FLUSH_FAST_ZAP); }
static void test_flush_rmap_only(void **state) { (void)state; flush_slot1(SMMU_FLUSH_RMAP_ONLY); }
static void test_flush_rmap_rebuild(void **state) { (void)state; flush_slot1(SMMU_FLUSH_RMAP_REBUILD); }
static void test_flush_hash_walk(void **state) { (void)state; flush_slot1(SMMU_FLUSH_HASH_WALK); }

static void test_flush_bad_args(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 64, 0), 0);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_memslot_flush(NULL, 0, SMMU_FLUSH_HASH_WALK, &rep), -EINVAL);
	assert_int_equal(smmu_memslot_flush(vm, 0, SMMU_FLUSH_STRATEGY_COUNT, &rep), -EINVAL);
	assert_int_equal(smmu_memslot_flush(vm, 3, SMMU_FLUSH_HASH_WALK, &rep), -ENOENT);
	assert_int_equal(smmu_memslot_flush(vm, -1, SMMU_FLUSH_HASH_WALK, &rep), -ENOENT);
	assert_int_equal(smmu_memslot_flush(vm, SMMU_MAX_MEMSLOTS, SMMU_FLUSH_HASH_WALK, &rep), -ENOENT);
	for (int st = 0; st < SMMU_FLUSH_STRATEGY_COUNT; st++)
		assert_int_equal(smmu_memslot_flush(vm, 0, (enum smmu_flush_strategy)st, NULL), 0);
	assert_string_equal(smmu_flush_strategy_name(SMMU_FLUSH_HASH_WALK), "hash_walk");
	assert_string_equal(smmu_flush_strategy_name(SMMU_FLUSH_STRATEGY_COUNT), "?");
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- the seed's scenario --------------------------------------------------------------------------- */

#define SEED_CR3 10

struct seed {
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *v;
	long accounted; /* indirect pages counted in slot 0's single 2M entry */
};

static void seed_init(struct seed *s, enum smmu_flush_strategy strat)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.flush_strategy = strat;
	s->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(s->vm, 0, 0, 100, 0), 0);
	assert_int_equal(smmu_gas_create(s->vm, SEED_CR3, 10, &s->gas), 0);
	assert_int_equal(smmu_vcpu_create(s->vm, &s->v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(s->v, smmu_gas_cr3(s->gas)), 0);
	/* Two 2 MiB regions of gva: two last-level tables. */
	assert_int_equal(smmu_gas_map(s->gas, 0x400000, 50, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(s->gas, 0x40000000, 51, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_fault(s->v, 0x400000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_fault(s->v, 0x40000000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	s->accounted = 0;
	bool root_at_10 = false;
	lock(s->vm);
	for (smmu_sp *sp = smmu_active_first(s->vm); sp; sp = smmu_active_next(s->vm, sp)) {
		struct smmu_sp_info i;
		smmu_sp_get_info(s->vm, sp, &i);
		if (!i.direct && !i.invalid && i.gfn < 512)
			s->accounted++;
		if (!i.direct && i.level == 4 && i.gfn == SEED_CR3)
			root_at_10 = true;
	}
	int32_t d = -1;
	smmu_lpage_disallow(s->vm, 0, SEED_CR3, SMMU_LEVEL_2M, &d);
	unlock(s->vm);
	assert_true(root_at_10);
	assert_int_equal(s->accounted, 6); /* root, L3, two L2 (two 1 GiB regions), two L1 */
	assert_int_equal(d, 1 + s->accounted);
	tl_assert_audit_clean(s->vm);
}

static void seed_fini(struct seed *s)
{
	smmu_vcpu_destroy(s->v);
	smmu_gas_destroy(s->gas);
	smmu_vm_destroy(s->vm);
}

struct audit_out {
	struct smmu_violation v[64];
	struct smmu_audit_report r;
};

static long audit(smmu_vm *vm, struct audit_out *o)
{
	memset(o, 0, sizeof(*o));
	o->r.v = o->v;
	o->r.cap = 64;
	long n = smmu_audit(vm, &o->r);
	assert_true(n >= 0);
	return n;
}

static void test_seed_rmap_only_leaves_lpage_count(void **state)
{
	(void)state;
	struct seed s;
	seed_init(&s, SMMU_FLUSH_RMAP_ONLY);
	assert_int_equal(smmu_memslot_delete(s.vm, 0), 0);

	/* The level-4 page at gfn 10 (and the other shadowed tables) outlived slot 0. */
	struct audit_out o;
	audit(s.vm, &o);
	assert_int_equal(o.r.per_inv[SMMU_INV_SLOT_LIFETIME], (uint64_t)s.accounted);
	bool names_10 = false;
	for (size_t i = 0; i < o.r.stored; i++)
		if (o.v[i].inv == SMMU_INV_SLOT_LIFETIME && o.v[i].sp_gfn == SEED_CR3)
			names_10 = true;
	assert_true(names_10);
	struct smmu_violation first;
	assert_true(tl_audit_count(s.vm, SMMU_INV_SLOT_LIFETIME, &first) > 0);
	assert_true(first.sp_gfn >= SEED_CR3 && first.sp_gfn < SEED_CR3 + 10);

	/* Re-create slot 0: fresh lpage_info, but the old pages still count. */
	assert_int_equal(smmu_memslot_create(s.vm, 0, 0, 100, 0), 0);
	audit(s.vm, &o);
	assert_int_equal(o.r.per_inv[SMMU_INV_SLOT_LIFETIME], 0);
	assert_int_equal(o.r.per_inv[SMMU_INV_LPAGE_COUNT], 2); /* the 2M and the 1G entry */
	assert_int_equal(o.r.total, 2);
	bool seen[4] = { false };
	for (size_t i = 0; i < o.r.stored; i++) {
		const struct smmu_violation *v = &o.v[i];
		if (v->inv != SMMU_INV_LPAGE_COUNT)
			continue;
		assert_int_equal(v->slot, 0);
		assert_true(v->level == 2 || v->level == 3);
		assert_int_equal(v->gfn, 0);
		assert_int_equal(v->found, 1);                    /* the edge bit only */
		assert_int_equal(v->expected - v->found, s.accounted); /* the orphaned counts */
		seen[v->level] = true;
	}
	assert_true(seen[2] && seen[3]);
	struct smmu_violation lp;
	assert_true(tl_audit_count(s.vm, SMMU_INV_LPAGE_COUNT, &lp) > 0);
	assert_int_equal(lp.slot, 0);
	seed_fini(&s);
}

static void seed_clean(enum smmu_flush_strategy strat)
{
	struct seed s;
	seed_init(&s, strat);
	assert_int_equal(smmu_memslot_delete(s.vm, 0), 0);
	tl_assert_audit_clean(s.vm);
	assert_int_equal(smmu_memslot_create(s.vm, 0, 0, 100, 0), 0);
	tl_assert_audit_clean(s.vm);
	int32_t d = -1;
	lock(s.vm);
	smmu_lpage_disallow(s.vm, 0, SEED_CR3, SMMU_LEVEL_2M, &d);
	unlock(s.vm);
	assert_int_equal(d, 1);
	assert_int_equal(smmu_vcpu_enter(s.v), 0);
	tl_assert_audit_clean(s.vm);
	/* Draining whatever is obsolete keeps it clean. */
	assert_int_equal(smmu_fast_zap_drain(s.vm, NULL), 0);
	tl_assert_audit_clean(s.vm);
	seed_fini(&s);
}

static void test_seed_hash_walk_clean(void **state) { (void)state; seed_clean(SMMU_FLUSH_HASH_WALK); }
static void test_seed_rmap_rebuild_clean(void **state) { (void)state; seed_clean(SMMU_FLUSH_RMAP_REBUILD); }
static void test_seed_zap_all_clean(void **state) { (void)state; seed_clean(SMMU_FLUSH_ZAP_ALL); }
static void test_seed_fast_zap_clean(void **state) { (void)state; seed_clean(SMMU_FLUSH_FAST_ZAP); }

/* ---- dirty logging ----------------------------------------------------------------------------------- */

static void test_dirty_logging(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s, SMMU_FLUSH_FAST_ZAP);
	uint64_t bm[S1_PAGES / 64];
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, S1_PAGES / 64), -ENODATA);
	struct smmu_translation t;
	const smmu_gva_t a0 = 0x50000000ull; /* guest A, slot 1 gfn S1_BASE + 512 + i */
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0, SMMU_ACC_WRITE, &t), 0);

	assert_int_equal(smmu_memslot_set_flags(s.vm, 1, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(s.vm, 1, &info), 0);
	assert_int_equal(info.flags, SMMU_MEM_LOG_DIRTY_PAGES);
	/* Every 4K spte of slot 1 is read-only now, the 2M one is gone. */
	for (uint64_t i = 0; i < NMAP; i++) {
		assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + i * 0x1000, SMMU_ACC_WRITE, &t), -EACCES);
		assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + i * 0x1000, 0, &t), 0);
		assert_int_equal(smmu_vcpu_translate(s.b.vcpu, 0x40000000ull + i * 0x1000, SMMU_ACC_WRITE, &t), -EACCES);
	}
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, LARGE_GVA, 0, &t), -EFAULT);
	/* Slot 0 is not logged: still writable. */
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, 0x40000000ull, SMMU_ACC_WRITE, &t), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, 1), -EINVAL); /* too short */
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, S1_PAGES / 64), 0);
	tl_assert_audit_clean(s.vm);

	/* A write fault maps it writable again and marks the bitmap. */
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(s.a.vcpu, a0 + 3 * 0x1000, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + 3 * 0x1000, SMMU_ACC_WRITE, &t), 0);
	uint32_t val = 0x1234;
	assert_int_equal(smmu_vcpu_write(s.b.vcpu, 0x40000000ull + 5 * 0x1000 + 8, &val, sizeof(val)), 0);
	/* The large page faults back as 4K while logging (its host page written). */
	char *h7 = smmu_gfn_to_hva(s.vm, LARGE_GFN + 7);
	assert_int_equal(smmu_host_wrote(s.vm, h7, h7 + 1), 0);
	assert_int_equal(smmu_vcpu_fault(s.a.vcpu, LARGE_GVA + 0x7000, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	/* (A read, but the guest PTE is writable and dirty: the spte is made writable and the page
	 * logged, as set_spte does.) */
	struct smmu_translation t2;
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, LARGE_GVA + 0x7000, SMMU_ACC_WRITE, &t2), 0);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, S1_PAGES / 64), 3);
	for (uint64_t g = 0; g < S1_PAGES; g++) {
		bool dirty = bm[g / 64] & (1ull << (g % 64));
		assert_int_equal(dirty, g == 512 + 3 || g == 700 + 5 || g == LARGE_GFN - S1_BASE + 7);
	}
	/* Taking the log write-protects the dirty pages again. */
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + 3 * 0x1000, SMMU_ACC_WRITE, &t), -EACCES);
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, S1_PAGES / 64), 0);
	assert_int_equal(smmu_vcpu_enter(s.a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(s.b.vcpu), 0);
	tl_assert_audit_clean(s.vm);

	/* Logging off. */
	assert_int_equal(smmu_memslot_set_flags(s.vm, 1, 0), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(s.vm, 1, bm, S1_PAGES / 64), -ENODATA);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

/* ---- the MMU notifier -------------------------------------------------------------------------------- */

static void test_notifier_range_and_release(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s, SMMU_FLUSH_FAST_ZAP);
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(s.vm, 1, &info), 0);
	uint8_t *hva = info.hva;
	const smmu_gva_t a0 = 0x50000000ull; /* guest A: gfn S1_BASE + 512 + i */

	assert_int_equal(smmu_mmu_notifier_invalidate_range(s.vm, hva + 10, hva), -EINVAL);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(NULL, hva, hva + 1), -EINVAL);
	/* A range no slot backs. */
	static uint8_t elsewhere[4096];
	assert_int_equal(smmu_mmu_notifier_invalidate_range(s.vm, elsewhere, elsewhere + sizeof(elsewhere)), 0);

	/* Host pages of gfns 516..519 of slot 1 (relative), the last one only partly. */
	int64_t n = smmu_mmu_notifier_invalidate_range(s.vm, hva + (512 + 4) * 4096ull, hva + (512 + 7) * 4096ull + 1);
	assert_int_equal(n, 4);
	struct smmu_translation t;
	for (uint64_t i = 0; i < NMAP; i++) {
		int want = i >= 4 && i < 8 ? -EFAULT : 0;
		assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + i * 0x1000, 0, &t), want);
		assert_int_equal(smmu_vcpu_translate(s.b.vcpu, 0x40000000ull + i * 0x1000, 0, &t), 0);
		assert_int_equal(smmu_vcpu_translate(s.a.vcpu, 0x40000000ull + i * 0x1000, 0, &t), 0);
	}
	/* One byte of the 2M page's backing drops the whole large spte. */
	n = smmu_mmu_notifier_invalidate_range(s.vm, hva + (LARGE_GFN - S1_BASE + 10) * 4096ull,
					      hva + (LARGE_GFN - S1_BASE + 10) * 4096ull + 1);
	assert_int_equal(n, 1);
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, LARGE_GVA, 0, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, LARGE_GVA + (100ull << 12), 0, &t), -EFAULT);
	assert_int_equal(smmu_vcpu_enter(s.a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(s.b.vcpu), 0);
	tl_assert_audit_clean(s.vm);
	/* Faulting back maps the same frames. */
	fault_guest(&s.a);
	assert_int_equal(smmu_vcpu_translate(s.a.vcpu, a0 + 5 * 0x1000, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(s.vm, S1_BASE + 512 + 5));
	tl_assert_audit_clean(s.vm);

	/* Release: everything goes. */
	assert_int_equal(smmu_mmu_notifier_release(NULL), -EINVAL);
	assert_int_equal(smmu_mmu_notifier_release(s.vm), 0);
	assert_int_equal(smmu_vcpu_enter(s.a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(s.b.vcpu), 0);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(s.vm, &c), 0);
	assert_int_equal(c.n_used_mmu_pages, 0);
	expect_translate(s.vm, &s.a, true, -EFAULT);
	expect_translate(s.vm, &s.a, false, -EFAULT);
	expect_translate(s.vm, &s.b, true, -EFAULT);
	expect_translate(s.vm, &s.b, false, -EFAULT);
	assert_int_equal(rmap_entries(s.vm, 0) + rmap_entries(s.vm, 1), 0);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_zap_all),
		cmocka_unit_test(test_flush_fast_zap),
		cmocka_unit_test(test_flush_rmap_only),
		cmocka_unit_test(test_flush_rmap_rebuild),
		cmocka_unit_test(test_flush_hash_walk),
		cmocka_unit_test(test_flush_bad_args),
		cmocka_unit_test(test_seed_rmap_only_leaves_lpage_count),
		cmocka_unit_test(test_seed_hash_walk_clean),
		cmocka_unit_test(test_seed_rmap_rebuild_clean),
		cmocka_unit_test(test_seed_zap_all_clean),
		cmocka_unit_test(test_seed_fast_zap_clean),
		cmocka_unit_test(test_dirty_logging),
		cmocka_unit_test(test_notifier_range_and_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
