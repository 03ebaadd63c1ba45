/*
 * seed_scenario — the case from the 2013 thread that libshadowmmu starts from.
 *
 * Xiao Guangrong's example: memslot 0 at gfn 0 with 100 pages, and an indirect shadow page of
 * level 4 with gfn 10: the shadow of the guest's top-level page table (its CR3). That page is
 * counted in slot 0's lpage_info, but no rmap of slot 0 leads to it, because it holds no
 * last-level mapping. So a memslot flush that only unmaps the slot's rmaps (the v4 patch) leaves
 * the page alive and its lpage_info count orphaned; walking mmu_page_hash for every gfn of the
 * slot (Gleb Natapov's answer) finds the page and zaps it.
 *
 * For each of the two strategies, on a fresh VM: build the guest and fault pages in, print the
 * lpage_info of the large pages holding gfn 10, delete and recreate slot 0, print it again and
 * run the audit. The rmap-only audit is expected to report violations: showing them is the point,
 * so the program still exits 0. It exits 1 when the hash walk's audit is not clean or a call fails.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shadowmmu/shadowmmu.h>

#define SLOT_PAGES 100   /* memslot[0].base_gfn = 0, npages = 100 */
#define CR3_GFN 10       /* the guest's level-4 table: the shadow page with gfn 10 */
#define POOL_PAGES 10    /* guest page-table frames 10..19 */
#define N_PAGES 16       /* guest pages mapped and faulted in */

/* Report a failed call with its location and leave the function with -1. */
#define CHECK(call)                                                                  \
	do {                                                                         \
		long r_ = (long)(call);                                              \
		if (r_ < 0) {                                                        \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, \
				#call, strerror((int)-r_));                          \
			return -1;                                                   \
		}                                                                    \
	} while (0)

/* Print disallow_lpage of the 2 MiB and 1 GiB pages of slot 0 that hold gfn 10. */
static void print_lpage_info(smmu_vm *vm, const char *when)
{
	int32_t d2m = 0, d1g = 0;

	/* strategy.h functions need mmu_lock; USER0 is the site free for user code. */
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	int r2 = smmu_lpage_disallow(vm, 0, CR3_GFN, SMMU_LEVEL_2M, &d2m);
	int r1 = smmu_lpage_disallow(vm, 0, CR3_GFN, SMMU_LEVEL_1G, &d1g);
	smmu_mmu_unlock(vm);
	if (r2 < 0 || r1 < 0)
		printf("  lpage_info %-22s slot 0 has none (%s)\n", when, strerror(-(r2 < 0 ? r2 : r1)));
	else
		printf("  lpage_info %-22s disallow_lpage = %d (2M page of gfn %d), %d (1G page)\n",
		       when, d2m, CR3_GFN, d1g);
}

/* Print the valid indirect shadow pages whose gfn is @gfn, found through mmu_page_hash. */
static void print_pages_at(smmu_vm *vm, smmu_gfn_t gfn, const char *when)
{
	int n = 0;

	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_hash_first(vm, gfn); sp; sp = smmu_hash_next(vm, sp)) {
		struct smmu_sp_info info;
		/* A bucket also holds pages of other gfns (gfn & (buckets - 1)). */
		if (smmu_sp_get_info(vm, sp, &info) < 0 || info.gfn != gfn || info.direct || info.invalid)
			continue;
		printf("  shadow page %-21s gfn %llu level %d gen %llu%s, %u present sptes\n", when,
		       (unsigned long long)info.gfn, info.level, (unsigned long long)info.mmu_valid_gen,
		       info.obsolete ? " (obsolete)" : "", info.n_present);
		n++;
	}
	smmu_mmu_unlock(vm);
	if (n == 0)
		printf("  shadow page %-21s none valid at gfn %llu\n", when, (unsigned long long)gfn);
}

/*
 * One run of the scenario with flush strategy @s.
 * @return the audit's violation count after delete + recreate, or -1 when a call failed.
 */
static long run(enum smmu_flush_strategy s)
{
	smmu_vm *vm = NULL;
	smmu_gas *gas = NULL;
	smmu_vcpu *vcpu = NULL;
	struct smmu_vm_config cfg;

	printf("== memslot flush strategy: %s\n", smmu_flush_strategy_name(s));

	/* Shadow mode is where lpage_info counts shadowed guest page tables; 3.11 profile. */
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	CHECK(smmu_vm_create(&cfg, &vm));
	CHECK(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0));

	/* The guest: its page tables come from gfns 10..19, the level-4 table (CR3) is gfn 10. */
	CHECK(smmu_gas_create(vm, CR3_GFN, POOL_PAGES, &gas));
	for (int i = 0; i < N_PAGES; i++) {
		/* Two regions of guest virtual space, so there are several tables at each level. */
		smmu_gva_t gva = (i < N_PAGES / 2 ? 0x400000ull : 0x40000000ull) + (uint64_t)(i % 8) * 4096;
		CHECK(smmu_gas_map(gas, gva, 40 + (smmu_gfn_t)i, SMMU_LEVEL_4K,
				   SMMU_PROT_WRITE | SMMU_PROT_USER));
	}

	/* A vCPU running that guest faults every page in: shadow pages for gfns 10.. appear. */
	CHECK(smmu_vcpu_create(vm, &vcpu));
	CHECK(smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)));
	uint32_t created = 0;
	for (int i = 0; i < N_PAGES; i++) {
		smmu_gva_t gva = (i < N_PAGES / 2 ? 0x400000ull : 0x40000000ull) + (uint64_t)(i % 8) * 4096;
		struct smmu_fault_info fi;
		CHECK(smmu_vcpu_fault(vcpu, gva, SMMU_ACC_WRITE | SMMU_ACC_USER, &fi));
		if (fi.outcome != SMMU_FAULT_MAPPED) {
			fprintf(stderr, "fault at %#llx: outcome %d\n", (unsigned long long)gva, fi.outcome);
			return -1;
		}
		created += fi.pages_created;
	}
	printf("  %d guest pages faulted in, %u shadow pages created\n", N_PAGES, created);
	print_pages_at(vm, CR3_GFN, "before:");
	print_lpage_info(vm, "before:");

	/* Delete slot 0 with the strategy under test, then create it again at the same place. */
	CHECK(smmu_vm_set_flush_strategy(vm, s));
	CHECK(smmu_memslot_delete(vm, 0));
	print_pages_at(vm, CR3_GFN, "after delete:");
	CHECK(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0));
	print_lpage_info(vm, "after recreate:");

	/* The vCPU enters the guest again: pending reload and TLB-flush requests are processed. */
	CHECK(smmu_vcpu_enter(vcpu));

	struct smmu_violation v[16];
	struct smmu_audit_report rep = { .v = v, .cap = 16 };
	long bad = smmu_audit(vm, &rep);
	CHECK(bad);
	printf("  audit: %ld violation(s)\n", bad);
	smmu_audit_print(stdout, &rep);

	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	printf("\n");
	return bad;
}

int main(void)
{
	long rmap_only = run(SMMU_FLUSH_RMAP_ONLY);
	long hash_walk = run(SMMU_FLUSH_HASH_WALK);

	if (rmap_only < 0 || hash_walk < 0)
		return 1;
	if (rmap_only > 0)
		printf("rmap-only: the page at gfn %d outlived its slot; its lpage_info count is orphaned"
		       " (%ld violations)\n", CR3_GFN, rmap_only);
	else
		printf("rmap-only: unexpectedly clean: the model no longer shows the seed's bug\n");
	if (hash_walk > 0) {
		printf("hash walk: %ld violations, expected none\n", hash_walk);
		return 1;
	}
	printf("hash walk: clean, the page at gfn %d was found through mmu_page_hash and zapped\n",
	       CR3_GFN);
	return 0;
}
