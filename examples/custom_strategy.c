/*
 * custom_strategy — a memslot flush written outside the library, with strategy.h only.
 *
 * my_flush_slot() is Gleb Natapov's proposal from the 2013 thread, by hand: for every gfn of the
 * slot walk its mmu_page_hash bucket and zap each shadow page of that gfn (this catches the pages
 * that shadow guest page tables inside the slot, which no rmap leads to), then drop every leaf
 * spte of the slot through its rmaps at each level. It follows KVM's discipline: everything under
 * mmu_lock, zapped pages go to an invalid list and are freed by one commit after the TLB flush,
 * and on contention it commits, flushes and breaks the lock, restarting the walk in hand.
 *
 * The program checks it with the audit: after flushing a data-only slot and the slot holding the
 * guest's page tables, after faulting everything back in, and after deleting the slot with the
 * rmap-only strategy (harmless once my_flush_slot has run) and recreating it. Exits 0 when every
 * audit is clean and nothing of the slot survived, 1 otherwise.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shadowmmu/shadowmmu.h>

#define CHECK(call)                                                                  \
	do {                                                                         \
		long r_ = (long)(call);                                              \
		if (r_ < 0) {                                                        \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, \
				#call, strerror((int)-r_));                          \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

struct my_report {
	uint64_t pages_zapped, sptes_dropped, lock_breaks;
};

/* Pages per rmap entry at @level: 1, 512, 512 * 512. */
static uint64_t level_pages(int level)
{
	return 1ull << (9 * (level - 1));
}

/* Give a waiting thread mmu_lock: free what is zapped so far and flush first, as KVM does. */
static bool my_lock_break(smmu_vm *vm, struct smmu_invalid_list *invalid, struct my_report *rep)
{
	if (!smmu_needbreak(vm))
		return false;
	smmu_flush_remote_tlbs(vm);   /* no vCPU may keep a dropped translation past the break */
	smmu_commit_zap(vm, invalid); /* flushes, then frees the zapped pages */
	if (!smmu_cond_resched_lock(vm))
		return false;
	rep->lock_breaks++;
	return true;
}

/*
 * Flush slot @id: zap every shadow page whose gfn is in the slot, then unmap the slot's rmaps.
 * @return 0, or a negative errno from the primitives (-ENOENT: unknown slot).
 */
static int my_flush_slot(smmu_vm *vm, int id, struct my_report *rep)
{
	struct smmu_invalid_list invalid;
	smmu_gfn_t base;
	uint64_t npages;
	int r;

	memset(rep, 0, sizeof(*rep));
	smmu_invalid_list_init(&invalid);
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	r = smmu_slot_range(vm, id, &base, &npages);
	if (r < 0)
		goto out;

	/* 1. mmu_page_hash, gfn by gfn: the pages that shadow this slot's guest tables. */
	for (smmu_gfn_t gfn = base; gfn < base + npages; gfn++) {
restart:
		for (smmu_sp *sp = smmu_hash_first(vm, gfn); sp; sp = smmu_hash_next(vm, sp)) {
			struct smmu_sp_info info;
			r = smmu_sp_get_info(vm, sp, &info);
			if (r < 0)
				goto out;
			/* The bucket also holds other gfns; invalid pages are zapped already.
			 * Obsolete pages are zapped too: they still count in lpage_info. */
			if (info.gfn != gfn || info.invalid)
				continue;
			r = smmu_zap_page(vm, sp, &invalid);
			if (r < 0)
				goto out;
			rep->pages_zapped++;
			/* The zap may have unlinked other pages (a non-zero r says some went to
			 * the list): the next pointer may be stale, so start the bucket again.
			 * The page in hand is invalid now and skipped, so this terminates. */
			goto restart;
		}
		my_lock_break(vm, &invalid, rep); /* the walk of this gfn is over either way */
	}

	/* 2. The slot's rmaps: every leaf spte mapping a gfn of the slot, 4K, 2M and 1G. */
	for (int level = SMMU_LEVEL_4K; level <= SMMU_LEVEL_1G; level++) {
		uint64_t span = level_pages(level);
		for (smmu_gfn_t gfn = base; gfn < base + npages; gfn = (gfn | (span - 1)) + 1) {
			r = smmu_rmap_unmap(vm, id, gfn, level);
			if (r < 0)
				goto out;
			rep->sptes_dropped += (uint64_t)r;
			my_lock_break(vm, &invalid, rep);
		}
	}
	r = 0;
out:
	smmu_flush_remote_tlbs(vm);
	smmu_commit_zap(vm, &invalid);
	smmu_mmu_unlock(vm);
	return r;
}

/* ---- the check ------------------------------------------------------------------------------ */

#define SLOT0_PAGES 100  /* slot 0: gfns 0..99, holds the guest's page tables (CR3 at gfn 10) */
#define SLOT1_GFN 1024   /* slot 1: gfns 1024..1087, data only */
#define SLOT1_PAGES 64
#define N_PAGES 24

static smmu_gva_t page_gva(int i)
{
	return 0x400000ull + (uint64_t)i * 0x201000ull; /* spread over several tables */
}

static smmu_gfn_t page_gfn(int i)
{
	return i % 2 ? SLOT1_GFN + (smmu_gfn_t)i : 40 + (smmu_gfn_t)i; /* half in each slot */
}

static void fault_all(smmu_vcpu *vcpu)
{
	for (int i = 0; i < N_PAGES; i++) {
		struct smmu_fault_info fi;
		CHECK(smmu_vcpu_fault(vcpu, page_gva(i), SMMU_ACC_WRITE, &fi));
		if (fi.outcome != SMMU_FAULT_MAPPED) {
			fprintf(stderr, "fault %d: outcome %d\n", i, fi.outcome);
			exit(1);
		}
	}
}

static void audit_clean(smmu_vm *vm, const char *after)
{
	struct smmu_violation v[16];
	struct smmu_audit_report rep = { .v = v, .cap = 16 };
	long bad = smmu_audit(vm, &rep);

	CHECK(bad);
	if (bad > 0) {
		printf("audit after %s: %ld violation(s)\n", after, bad);
		smmu_audit_print(stdout, &rep);
		exit(1);
	}
	printf("audit after %s: clean\n", after);
}

/* Valid shadow pages whose gfn lies in [base, base + npages), walking active_mmu_pages. */
static int pages_in(smmu_vm *vm, smmu_gfn_t base, uint64_t npages)
{
	int n = 0;

	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info info;
		if (smmu_sp_get_info(vm, sp, &info) == 0 && !info.invalid && info.gfn >= base &&
		    info.gfn < base + npages)
			n++;
	}
	smmu_mmu_unlock(vm);
	return n;
}

static int32_t disallow_2m(smmu_vm *vm, smmu_gfn_t gfn)
{
	int32_t d = -1;

	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	CHECK(smmu_lpage_disallow(vm, 0, gfn, SMMU_LEVEL_2M, &d));
	smmu_mmu_unlock(vm);
	return d;
}

static void flush_and_check(smmu_vm *vm, smmu_vcpu *vcpu, int id, smmu_gfn_t base, uint64_t npages)
{
	struct my_report rep;
	char what[64];

	int before = pages_in(vm, base, npages);
	CHECK(my_flush_slot(vm, id, &rep));
	CHECK(smmu_vcpu_enter(vcpu)); /* the vCPU processes its reload / flush requests */
	int after = pages_in(vm, base, npages);
	printf("my_flush_slot(%d): %llu pages zapped, %llu sptes dropped, %llu lock breaks; "
	       "shadow pages of the slot: %d -> %d\n", id, (unsigned long long)rep.pages_zapped,
	       (unsigned long long)rep.sptes_dropped, (unsigned long long)rep.lock_breaks, before,
	       after);
	if (after != 0) {
		fprintf(stderr, "pages of slot %d survived the flush\n", id);
		exit(1);
	}
	snprintf(what, sizeof(what), "my_flush_slot(%d)", id);
	audit_clean(vm, what);
}

int main(void)
{
	struct smmu_vm_config cfg;
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *vcpu;

	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	CHECK(smmu_vm_create(&cfg, &vm));
	CHECK(smmu_memslot_create(vm, 0, 0, SLOT0_PAGES, 0));
	CHECK(smmu_memslot_create(vm, 1, SLOT1_GFN, SLOT1_PAGES, 0));
	CHECK(smmu_gas_create(vm, 10, 30, &gas)); /* page tables from gfns 10..39 */
	for (int i = 0; i < N_PAGES; i++)
		CHECK(smmu_gas_map(gas, page_gva(i), page_gfn(i), SMMU_LEVEL_4K, SMMU_PROT_WRITE));
	CHECK(smmu_vcpu_create(vm, &vcpu));
	CHECK(smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)));

	fault_all(vcpu);
	audit_clean(vm, "faulting in");
	printf("disallow_lpage of gfn 10's 2M page: %d\n", disallow_2m(vm, 10));

	/* Slot 1 holds data only: its leaf sptes go, no shadow page has a gfn in it. */
	flush_and_check(vm, vcpu, 1, SLOT1_GFN, SLOT1_PAGES);
	/* Slot 0 holds every guest table: all indirect pages go, lpage_info back to the edge bit. */
	flush_and_check(vm, vcpu, 0, 0, SLOT0_PAGES);
	printf("disallow_lpage of gfn 10's 2M page: %d (the slot's edge bit only)\n",
	       disallow_2m(vm, 10));

	/* Everything can be faulted back in. */
	fault_all(vcpu);
	audit_clean(vm, "faulting in again");

	/* Run my flush before a delete whose own flush is only the v4 patch's rmap unmap: with
	 * the hash walk done first, deleting and recreating slot 0 leaves nothing behind. */
	struct my_report rep;
	CHECK(my_flush_slot(vm, 0, &rep));
	CHECK(smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_RMAP_ONLY));
	CHECK(smmu_memslot_delete(vm, 0));
	CHECK(smmu_memslot_create(vm, 0, 0, SLOT0_PAGES, 0));
	CHECK(smmu_vcpu_enter(vcpu));
	audit_clean(vm, "my_flush_slot(0) + rmap-only delete + recreate");

	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	return 0;
}
