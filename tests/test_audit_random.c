/*
 * A seeded random mix of public-API operations — guest page-table edits (through the builder
 * and as raw guest stores into table pages), faults and accesses on two vCPUs, memslot
 * create/delete/move/flags, every zap, the memslot flushes that keep the invariants, MMU
 * notifier range invalidation and the page limit — with the audit after every operation.
 * The first violation fails the test with the seed, the last operations and the report.
 *
 * SMMU_SEED=<n> runs one seed; SMMU_OPS=<n> changes the number of operations per seed;
 * SMMU_TRACE=1 prints every operation.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT0_PAGES 8192ull      /* slot 0: data and address space A's tables */
#define POOL_A 6144ull
#define POOL_A_PAGES 256ull
#define SLOT1_PAGES 1024ull      /* slot 1: address space B's tables and more data */
#define SLOT1_BASES 3
static const smmu_gfn_t slot1_bases[SLOT1_BASES] = { 1ull << 16, (1ull << 16) + 4096, 1ull << 18 };
#define POOL_B_OFF 896ull        /* B's pool: the last 128 pages of slot 1 at its first base */
#define POOL_B_PAGES 128ull
#define HISTORY 24
#define MAPPED 48                /* addresses remembered per address space */

/* A deliberately broken configuration, and the invariants the audit must then catch. */
struct variant {
	const char *name;
	uint32_t skip_flush;               /* enum smmu_flush_point bits */
	bool rmap_only;                    /* deletes and flushes may use SMMU_FLUSH_RMAP_ONLY */
	uint32_t expect;                   /* bit i: invariant i may be the one caught */
};

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

static uint64_t below(struct rng *r, uint64_t n) { return n ? rnd(r) % n : 0; }

struct world {
	struct rng rng;
	uint64_t seed;
	smmu_vm *vm;
	smmu_vcpu *vcpu[2];
	smmu_gas *gas[2];            /* A in slot 0, B in slot 1 (may be NULL while slot 1 is gone) */
	bool slot1;                  /* slot 1 exists */
	int slot1_base;              /* index in slot1_bases */
	char history[HISTORY][96];
	uint64_t nops;
	bool trace;                  /* SMMU_TRACE set: print every operation */
	const struct variant *var;   /* NULL: a correct configuration, which must stay clean */
	uint64_t caught[SMMU_INV_COUNT]; /* with a variant: the first violating audit's counts */
	bool stop;
	int as[2];                   /* address space each vCPU runs */
	smmu_gva_t mapped[2][MAPPED];
	uint64_t nmapped[2];
};

static void note(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct world *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->history[w->nops % HISTORY], sizeof(w->history[0]), fmt, ap);
	va_end(ap);
	if (w->trace)
		printf("%6" PRIu64 ": %s\n", w->nops, w->history[w->nops % HISTORY]);
}

/* A guest virtual address from a small set, so that operations collide. */
static smmu_gva_t fresh_gva(struct world *w)
{
	uint64_t r = below(&w->rng, 2), j = below(&w->rng, 4), k = below(&w->rng, 12);
	smmu_gva_t gva = (r << 39) | (1ull << 30) | (j << 21) | (k << 12);
	if (below(&w->rng, 8) == 0)
		gva |= 0xffff800000000000ull; /* the upper half, sign-extended */
	return gva;
}

/* Mostly an address the builder mapped lately in address space @as, else a fresh one. */
static smmu_gva_t rnd_gva(struct world *w, int as)
{
	if (w->nmapped[as] && below(&w->rng, 4) != 0)
		return w->mapped[as][below(&w->rng, w->nmapped[as] < MAPPED ? w->nmapped[as] : MAPPED)];
	return fresh_gva(w);
}

static void remember(struct world *w, int as, smmu_gva_t gva)
{
	w->mapped[as][w->nmapped[as]++ % MAPPED] = gva;
}

/* A guest frame: mostly data in slot 0 or 1, sometimes a guest page table, sometimes MMIO. */
static smmu_gfn_t rnd_gfn(struct world *w)
{
	switch (below(&w->rng, 10)) {
	case 0:
		return POOL_A + below(&w->rng, 16);
	case 1:
		return slot1_bases[0] + POOL_B_OFF + below(&w->rng, 8);
	case 2:
		return (1ull << 20) + below(&w->rng, 64); /* in no slot */
	case 3:
	case 4:
		return slot1_bases[w->slot1_base] + below(&w->rng, 256);
	default:
		return 512 + below(&w->rng, 2048);
	}
}

static uint32_t rnd_prot(struct world *w) { return (uint32_t)below(&w->rng, 8); }

static uint32_t rnd_access(struct world *w)
{
	static const uint32_t acc[] = { 0, SMMU_ACC_WRITE, SMMU_ACC_USER, SMMU_ACC_WRITE | SMMU_ACC_USER,
					SMMU_ACC_EXEC, SMMU_ACC_EXEC | SMMU_ACC_USER };
	return acc[below(&w->rng, sizeof(acc) / sizeof(acc[0]))];
}

static void fail_with_report(struct world *w, const char *where)
{
	struct smmu_violation v[16];
	struct smmu_audit_report r = { .v = v, .cap = 16 };
	long n = smmu_audit(w->vm, &r);
	printf("seed %" PRIu64 ": audit after op %" PRIu64 " (%s) found %ld violations\nlast operations:\n",
	       w->seed, w->nops, where, n);
	uint64_t first = w->nops >= HISTORY ? w->nops - HISTORY + 1 : 0;
	for (uint64_t i = first; i <= w->nops; i++)
		printf("  %6" PRIu64 ": %s\n", i, w->history[i % HISTORY]);
	smmu_audit_print(stdout, &r);
	fail_msg("audit violation, seed %" PRIu64 " op %" PRIu64, w->seed, w->nops);
}

static void audit(struct world *w)
{
	struct smmu_audit_report r = { 0 };
	long n = smmu_audit(w->vm, &r);
	assert_true(n >= 0);
	if (!n)
		return;
	if (!w->var)
		fail_with_report(w, w->history[w->nops % HISTORY]);
	memcpy(w->caught, r.per_inv, sizeof(w->caught));
	w->stop = true;
}

/* The flush strategies an operation may pick. */
static enum smmu_flush_strategy rnd_strategy(struct world *w)
{
	static const enum smmu_flush_strategy s[] = { SMMU_FLUSH_ZAP_ALL, SMMU_FLUSH_FAST_ZAP,
						       SMMU_FLUSH_HASH_WALK, SMMU_FLUSH_RMAP_ONLY };
	return s[below(&w->rng, w->var && w->var->rmap_only ? 4 : 3)];
}

static void gas_new(struct world *w, int i)
{
	smmu_gfn_t pool = i == 0 ? POOL_A : slot1_bases[0] + POOL_B_OFF;
	uint64_t pages = i == 0 ? POOL_A_PAGES : POOL_B_PAGES;
	smmu_gas_destroy(w->gas[i]);
	w->gas[i] = NULL;
	w->nmapped[i] = 0;
	int r = smmu_gas_create(w->vm, pool, pages, &w->gas[i]);
	assert_true(r == 0 || (i == 1 && r == -EFAULT));
	if (r)
		w->gas[i] = NULL;
}

/* Which address space a vCPU runs: its CR3 stays set even when B's slot is gone. */
static smmu_gpa_t cr3_of(int i) { return (i == 0 ? POOL_A : slot1_bases[0] + POOL_B_OFF) << SMMU_PAGE_SHIFT; }

static void op_map(struct world *w)
{
	int i = (int)below(&w->rng, 2);
	if (!w->gas[i])
		return;
	if (below(&w->rng, 6) == 0) {
		smmu_gva_t gva = fresh_gva(w) & ~((1ull << 21) - 1);
		smmu_gfn_t gfn = (512 + 512 * below(&w->rng, 4));
		if (below(&w->rng, 3) == 0)
			gfn = slot1_bases[w->slot1_base];
		int r = smmu_gas_map(w->gas[i], gva, gfn, SMMU_LEVEL_2M, rnd_prot(w));
		note(w, "gas_map %c %#" PRIx64 " -> %#" PRIx64 " 2M: %d", 'A' + i, gva, gfn, r);
		if (!r)
			remember(w, i, gva + (below(&w->rng, 512) << SMMU_PAGE_SHIFT));
	} else {
		smmu_gva_t gva = fresh_gva(w);
		smmu_gfn_t gfn = rnd_gfn(w);
		uint32_t prot = rnd_prot(w);
		int r = smmu_gas_map(w->gas[i], gva, gfn, SMMU_LEVEL_4K, prot);
		note(w, "gas_map %c %#" PRIx64 " -> %#" PRIx64 " prot %u: %d", 'A' + i, gva, gfn, prot, r);
		if (!r)
			remember(w, i, gva);
	}
}

static void op_unmap(struct world *w)
{
	int i = (int)below(&w->rng, 2);
	if (!w->gas[i])
		return;
	smmu_gva_t gva = rnd_gva(w, i);
	int r = smmu_gas_unmap(w->gas[i], gva);
	note(w, "gas_unmap %c %#" PRIx64 ": %d", 'A' + i, gva, r);
}

/* A raw guest store into a page-table page: clear an entry, point it elsewhere, change bits.
 * Mostly an entry on the walk of an address in use, so that shadowed entries change. */
static void op_raw_pte_write(struct world *w)
{
	int i = (int)below(&w->rng, 2);
	smmu_gfn_t table = i == 0 ? POOL_A + below(&w->rng, 24) : slot1_bases[0] + POOL_B_OFF + below(&w->rng, 12);
	smmu_gpa_t gpa = (table << SMMU_PAGE_SHIFT) + 8 * below(&w->rng, 512);
	if (below(&w->rng, 4) != 0) {
		smmu_gva_t gva = rnd_gva(w, i);
		struct smmu_guest_walk gw;
		int r = smmu_guest_walk(w->vm, cr3_of(i), gva, &gw);
		/* The leaf's level or a table above it (where a failed walk stopped, or above). */
		int level = gw.level + (int)below(&w->rng, (uint64_t)(5 - gw.level));
		if (r != -EINVAL && gw.level >= 1 && level <= 4 && gw.table_gfn[level - 1])
			gpa = (gw.table_gfn[level - 1] << SMMU_PAGE_SHIFT) + 8 * ((gva >> (12 + 9 * (level - 1))) & 511);
	}
	uint64_t old = 0, val;
	smmu_guest_read_u64(w->vm, gpa, &old);
	switch (below(&w->rng, 5)) {
	case 0:
		val = 0;
		break;
	case 1:
		val = old ^ (SMMU_PTE_WRITABLE << below(&w->rng, 2)); /* toggle W or U */
		break;
	case 2:
		val = old ^ SMMU_PTE_NX;
		break;
	case 3:
		val = (old & ~SMMU_PTE_ADDR_MASK) | (rnd_gfn(w) << SMMU_PAGE_SHIFT);
		break;
	default:
		val = SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER | (rnd_gfn(w) << SMMU_PAGE_SHIFT);
		break;
	}
	int r = smmu_guest_write_u64(w->vm, gpa, val);
	note(w, "guest_write_u64 %#" PRIx64 " = %#" PRIx64 " (was %#" PRIx64 "): %d", gpa, val, old, r);
}

static void op_fault(struct world *w)
{
	int i = (int)below(&w->rng, 2);
	smmu_gva_t gva = rnd_gva(w, w->as[i]) | (below(&w->rng, 4096) & ~7ull);
	uint32_t access = rnd_access(w);
	struct smmu_fault_info fi;
	int r = smmu_vcpu_fault(w->vcpu[i], gva, access, &fi);
	note(w, "fault vcpu%d %#" PRIx64 " access %#x: %d (level %d)", i, gva, access, r, fi.level);
	assert_true(r >= 0 || r == -EFAULT);
}

static void op_access(struct world *w)
{
	int i = (int)below(&w->rng, 2);
	smmu_gva_t gva = rnd_gva(w, w->as[i]) | (below(&w->rng, 512) * 8);
	uint64_t x = w->nops;
	int r;
	if (below(&w->rng, 2)) {
		r = smmu_vcpu_write(w->vcpu[i], gva, &x, sizeof(x));
		note(w, "vcpu_write vcpu%d %#" PRIx64 ": %d", i, gva, r);
	} else {
		r = smmu_vcpu_read(w->vcpu[i], gva, &x, sizeof(x));
		note(w, "vcpu_read vcpu%d %#" PRIx64 ": %d", i, gva, r);
	}
	assert_true(r == 0 || r == -EFAULT || r == -EAGAIN);
}

static void op_slot1(struct world *w)
{
	int r;
	if (!w->slot1) {
		int b = (int)below(&w->rng, SLOT1_BASES);
		r = smmu_memslot_create(w->vm, 1, slot1_bases[b], SLOT1_PAGES, below(&w->rng, 4) == 0 ? SMMU_MEM_LOG_DIRTY_PAGES : 0);
		note(w, "memslot_create 1 at %#" PRIx64 ": %d", slot1_bases[b], r);
		assert_int_equal(r, 0);
		w->slot1 = true;
		w->slot1_base = b;
		if (b == 0)
			gas_new(w, 1); /* fresh memory: a fresh address space B */
		return;
	}
	switch (below(&w->rng, 4)) {
	case 0: {
		enum smmu_flush_strategy st = rnd_strategy(w);
		assert_int_equal(smmu_vm_set_flush_strategy(w->vm, st), 0);
		r = smmu_memslot_delete(w->vm, 1);
		note(w, "memslot_delete 1 (%s): %d", smmu_flush_strategy_name(st), r);
		assert_int_equal(r, 0);
		w->slot1 = false;
		break;
	}
	case 1: {
		int b = (int)below(&w->rng, SLOT1_BASES);
		r = smmu_memslot_move(w->vm, 1, slot1_bases[b]);
		note(w, "memslot_move 1 to %#" PRIx64 ": %d", slot1_bases[b], r);
		assert_int_equal(r, 0);
		w->slot1_base = b;
		break;
	}
	case 2: {
		struct smmu_memslot_info info;
		assert_int_equal(smmu_memslot_get(w->vm, 1, &info), 0);
		uint32_t flags = info.flags ^ SMMU_MEM_LOG_DIRTY_PAGES;
		r = smmu_memslot_set_flags(w->vm, 1, flags);
		note(w, "memslot_set_flags 1 %#x: %d", flags, r);
		assert_int_equal(r, 0);
		break;
	}
	default: {
		uint64_t bm[SLOT1_PAGES / 64];
		int64_t n = smmu_memslot_get_dirty_log(w->vm, 1, bm, SLOT1_PAGES / 64);
		note(w, "memslot_get_dirty_log 1: %" PRId64, n);
		assert_true(n >= 0 || n == -ENODATA);
		break;
	}
	}
}

static void op_zap(struct world *w)
{
	int r;
	switch (below(&w->rng, 3)) {
	case 0: {
		enum smmu_zap_mode m = (enum smmu_zap_mode)below(&w->rng, SMMU_ZAP_MODE_COUNT);
		r = smmu_zap_all(w->vm, m, 0, NULL);
		note(w, "zap_all %s: %d", smmu_zap_mode_name(m), r);
		break;
	}
	case 1:
		r = smmu_fast_zap(w->vm, NULL);
		note(w, "fast_zap: %d", r);
		break;
	default: {
		enum smmu_flush_strategy st = rnd_strategy(w);
		int id = w->slot1 ? (int)below(&w->rng, 2) : 0;
		r = smmu_memslot_flush(w->vm, id, st, NULL);
		note(w, "memslot_flush %d %s: %d", id, smmu_flush_strategy_name(st), r);
		break;
	}
	}
	assert_int_equal(r, 0);
}

static void op_notifier(struct world *w)
{
	int id = w->slot1 ? (int)below(&w->rng, 2) : 0;
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(w->vm, id, &info), 0);
	uint64_t first = below(&w->rng, info.npages), n = 1 + below(&w->rng, 600);
	if (first + n > info.npages)
		n = info.npages - first;
	uint8_t *hva = info.hva;
	int64_t r = smmu_mmu_notifier_invalidate_range(w->vm, hva + (first << SMMU_PAGE_SHIFT),
						       hva + ((first + n) << SMMU_PAGE_SHIFT));
	note(w, "notifier_invalidate slot %d gfns %#" PRIx64 "+%" PRIu64 ": %" PRId64, id, info.base_gfn + first, n, r);
	assert_true(r >= 0);
}

static void op_misc(struct world *w)
{
	int r;
	switch (below(&w->rng, 4)) {
	case 0: {
		uint64_t limit = below(&w->rng, 3) ? 2000 : 8 + below(&w->rng, 64);
		r = smmu_vm_set_max_mmu_pages(w->vm, limit);
		note(w, "set_max_mmu_pages %" PRIu64 ": %d", limit, r);
		assert_int_equal(r, 0);
		break;
	}
	case 1: {
		int i = (int)below(&w->rng, 2), as = (int)below(&w->rng, 2);
		r = smmu_vcpu_set_cr3(w->vcpu[i], cr3_of(as));
		w->as[i] = as;
		note(w, "set_cr3 vcpu%d %c: %d", i, 'A' + as, r);
		assert_int_equal(r, 0);
		break;
	}
	case 2: {
		int i = (int)below(&w->rng, 2);
		if (i == 1 && !(w->slot1 && w->slot1_base == 0)) {
			note(w, "gas reset B skipped");
			break;
		}
		gas_new(w, i);
		note(w, "gas reset %c", 'A' + i);
		break;
	}
	default:
		r = smmu_mmu_notifier_release(w->vm);
		note(w, "notifier_release: %d", r);
		assert_int_equal(r, 0);
		break;
	}
}

/* Run @nops random operations from @seed; with a variant, stop at the first violation and
 * return its per-invariant counts in @caught. Returns the operations run. */
static uint64_t run_seed(uint64_t seed, uint64_t nops, const struct variant *var, uint64_t *caught)
{
	struct world w;
	memset(&w, 0, sizeof(w));
	w.seed = seed;
	w.var = var;
	w.trace = getenv("SMMU_TRACE") != NULL;
	w.rng.s = seed * 0x9e3779b97f4a7c15ull + 1;
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.skip_flush = var ? var->skip_flush : 0;
	w.vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(w.vm, 0, 0, SLOT0_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(w.vm, 1, slot1_bases[0], SLOT1_PAGES, 0), 0);
	w.slot1 = true;
	gas_new(&w, 0);
	gas_new(&w, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(smmu_vcpu_create(w.vm, &w.vcpu[i]), 0);
		assert_int_equal(smmu_vcpu_set_cr3(w.vcpu[i], cr3_of(i)), 0);
		w.as[i] = i;
	}
	/* A starting population. */
	for (int k = 0; k < 40; k++) {
		smmu_gva_t gva = fresh_gva(&w);
		smmu_gfn_t gfn = 512 + below(&w.rng, 2048);
		for (int i = 0; i < 2; i++) {
			if (smmu_gas_map(w.gas[i], gva, gfn, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER) == 0)
				remember(&w, i, gva);
			smmu_vcpu_fault(w.vcpu[i], gva, SMMU_ACC_WRITE, NULL);
		}
	}
	note(&w, "setup");
	audit(&w);

	for (w.nops = 1; w.nops <= nops && !w.stop; w.nops++) {
		uint64_t dice = below(&w.rng, 100);
		if (dice < 16)
			op_map(&w);
		else if (dice < 22)
			op_unmap(&w);
		else if (dice < 30)
			op_raw_pte_write(&w);
		else if (dice < 62)
			op_fault(&w);
		else if (dice < 74)
			op_access(&w);
		else if (dice < 79)
			op_slot1(&w);
		else if (dice < 83)
			op_zap(&w);
		else if (dice < 88)
			op_notifier(&w);
		else if (dice < 92)
			op_misc(&w);
		else {
			int i = (int)below(&w.rng, 2);
			assert_int_equal(smmu_vcpu_enter(w.vcpu[i]), 0);
			note(&w, "vcpu_enter vcpu%d", i);
		}
		audit(&w);
	}
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(w.vm, &c), 0);
	uint64_t ran = w.nops - 1;
	if (!var)
		printf("seed %" PRIu64 ": %" PRIu64 " ops clean; %" PRIu64 " pages created, %" PRIu64
		       " zapped, %" PRIu64 " faults fixed, %" PRIu64 " pte writes\n",
		       seed, ran, c.pages_created, c.pages_zapped, c.faults_fixed, c.pte_writes);
	if (caught)
		memcpy(caught, w.caught, sizeof(w.caught));
	for (int i = 0; i < 2; i++)
		smmu_vcpu_destroy(w.vcpu[i]);
	smmu_gas_destroy(w.gas[0]);
	smmu_gas_destroy(w.gas[1]);
	smmu_vm_destroy(w.vm);
	return ran;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static void test_random_mix(void **state)
{
	(void)state;
	uint64_t nops = env_u64("SMMU_OPS", 2500);
	if (getenv("SMMU_SEED")) {
		run_seed(env_u64("SMMU_SEED", 1), nops, NULL, NULL);
		return;
	}
	for (uint64_t seed = 1; seed <= 4; seed++)
		run_seed(seed, nops, NULL, NULL);
}

/* The same mix in configurations broken on purpose: the audit must catch each, with the
 * invariant that names the bug. */
static void test_random_catches_bugs(void **state)
{
	(void)state;
	const struct variant variants[] = {
		{ "skip the flush after a trapped pte write", SMMU_SKIP_FLUSH_PTE_WRITE, false,
		  1u << SMMU_INV_TLB },
		{ "skip the flush after rmap unmaps", SMMU_SKIP_FLUSH_RMAP_UNMAP, false, 1u << SMMU_INV_TLB },
		{ "fast zap without reload requests", SMMU_SKIP_RELOAD_FAST_ZAP, false,
		  1u << SMMU_INV_OBSOLETE_ROOT | 1u << SMMU_INV_TLB },
		{ "flush slots with the v4 patch (rmaps only)", 0, true,
		  1u << SMMU_INV_SLOT_LIFETIME | 1u << SMMU_INV_LPAGE_COUNT },
	};
	for (size_t k = 0; k < sizeof(variants) / sizeof(variants[0]); k++) {
		const struct variant *var = &variants[k];
		uint64_t caught[SMMU_INV_COUNT] = { 0 }, ran = 0, seed;
		for (seed = 1; seed <= 8; seed++) {
			ran += run_seed(seed, 3000, var, caught);
			bool any = false;
			for (int i = 1; i < SMMU_INV_COUNT; i++)
				any |= caught[i] != 0;
			if (any)
				break;
		}
		printf("%s: caught after %" PRIu64 " ops (seed %" PRIu64 "):", var->name, ran, seed);
		uint32_t seen = 0;
		for (int i = 1; i < SMMU_INV_COUNT; i++) {
			if (caught[i]) {
				printf(" %s %" PRIu64 ";", smmu_invariant_name((enum smmu_invariant)i), caught[i]);
				seen |= 1u << i;
			}
		}
		printf("\n");
		if (!seen)
			fail_msg("%s: never caught", var->name);
		if (!(seen & var->expect))
			fail_msg("%s: caught, but not as the expected invariant", var->name);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_mix),
		cmocka_unit_test(test_random_catches_bugs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
