/*
 * Today's fast zap against 3.11's, one profile rule each (profile.h):
 * - fast_zap_gen_toggles: today's kvm_mmu_zap_all_fast toggles mmu_valid_gen and drains in the
 *   same critical section, so the split smmu_fast_zap_bump refuses a bump while obsolete pages
 *   wait for their drain; 3.11's increment accepts it;
 * - zapped_root_leaves_active_list: a root zapped while in use leaves active_mmu_pages today
 *   (6.1's __kvm_mmu_prepare_zap_page), goes to its head in 3.11; freed when its last user drops
 *   it in both, and counted in n_used_mmu_pages until then;
 * - obsolete_zap_restarts_if_unstable: kvm_zap_obsolete_pages restarts from the tail after every
 *   page it listed (3.11) or only when unsync children went too (today); the zap order is the
 *   same.
 * Every test runs both profiles and ends with the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <string.h>

#include "mmu.h"

#define GUEST_PAGES 8192ull
#define POOL_GFN 4096ull
#define POOL_PAGES 64ull
#define DATA_GFN 256ull
#define DATA_GVA 0x40000000ull
#define REGIONS 4 /* 2 MiB regions mapped: one level-1 table each */
#define PER_REGION 8
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static const enum smmu_profile eras[2] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }


/* A shadow guest of @profile with REGIONS level-1 tables faulted in. */
static void guest(struct tl_guest *g, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	tl_guest_init_cfg(g, &cfg, GUEST_PAGES, POOL_GFN, POOL_PAGES);
	for (uint64_t r = 0; r < REGIONS; r++)
		tl_map_and_fault(g, DATA_GVA + (r << 21), DATA_GFN + r * PER_REGION, PER_REGION,
				 SMMU_ACC_WRITE | SMMU_ACC_USER);
	tl_assert_audit_clean(g->vm);
}

/* Fault the guest's pages back in through @v. */
static void refault(struct tl_guest *g, smmu_vcpu *v)
{
	for (uint64_t r = 0; r < REGIONS; r++)
		for (uint64_t i = 0; i < PER_REGION; i++) {
			int ret, tries = 0;
			do
				ret = smmu_vcpu_fault(v, DATA_GVA + (r << 21) + i * SMMU_PAGE_SIZE, SMMU_ACC_WRITE, NULL);
			while (ret == SMMU_FAULT_RETRY && ++tries < 4);
			assert_int_equal(ret, SMMU_FAULT_MAPPED);
		}
	tl_assert_audit_clean(g->vm);
}

/* A fast zap of @pages took all but the vCPU's root, which goes at its reload; audited. */
static void end_with_root_reload(struct tl_guest *g, const struct smmu_zap_report *rep, uint64_t pages)
{
	assert_int_equal(rep->pages_zapped, pages - 1);
	assert_int_equal(tl_counters(g->vm).n_used_mmu_pages, 1);
	tl_assert_audit_clean(g->vm);
	assert_int_equal(smmu_vcpu_enter(g->vcpu), 0);
	assert_int_equal(tl_counters(g->vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(g->vm);
	tl_guest_fini(g);
}

static uint64_t listed(smmu_vm *vm)
{
	uint64_t n = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp))
		n++;
	unlock(vm);
	return n;
}

static bool is_listed(smmu_vm *vm, const struct smmu_sp *want)
{
	bool found = false;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp))
		found |= sp == want;
	unlock(vm);
	return found;
}

/* ---- one obsolete generation at a time (fast_zap_gen_toggles) -------------------------------- */

static void check_second_bump(enum smmu_profile profile)
{
	struct tl_guest g;
	guest(&g, profile);
	smmu_vm *vm = g.vm;
	bool today = profile == SMMU_PROFILE_LINUX_TODAY;
	uint64_t gen = smmu_mmu_valid_gen(vm);
	uint64_t pages = tl_counters(vm).n_used_mmu_pages;
	assert_true(pages > REGIONS);

	assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
	assert_int_equal(smmu_mmu_valid_gen(vm), gen + 1);
	struct smmu_vm_counters c1 = tl_counters(vm);
	/* The pages of gen wait for their drain: a second bump. */
	struct smmu_zap_report rep;
	memset(&rep, 0xa5, sizeof(rep));
	int r = smmu_fast_zap_bump(vm, &rep);
	struct smmu_vm_counters c2 = tl_counters(vm);
	if (today) {
		/* The toggle would make them current again: refused, nothing changed. */
		assert_int_equal(r, -EBUSY);
		assert_int_equal(smmu_mmu_valid_gen(vm), gen + 1);
		assert_int_equal(c2.reload_requests, c1.reload_requests);
		assert_int_equal(rep.pages_zapped, 0xa5a5a5a5a5a5a5a5ull); /* report untouched */
	} else {
		/* 3.11 increments: both generations are obsolete. */
		assert_int_equal(r, 0);
		assert_int_equal(smmu_mmu_valid_gen(vm), gen + 2);
		assert_int_equal(c2.reload_requests, c1.reload_requests + 1);
	}
	assert_int_equal(c2.n_used_mmu_pages, pages);
	assert_int_equal(listed(vm), pages);
	tl_assert_audit_clean(vm);

	/* The drain zaps every obsolete page, whatever its generation; then a bump is fine. */
	assert_int_equal(smmu_fast_zap_drain(vm, &rep), 0);
	assert_int_equal(rep.pages_zapped, pages - 1); /* all but the root in use */
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, 1);
	tl_assert_audit_clean(vm);
	uint64_t g2 = smmu_mmu_valid_gen(vm);
	assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
	assert_int_equal(smmu_mmu_valid_gen(vm), g2 + 1);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(vm);

	/* Fault back; a lone bump, then the whole fast zap drains the pages of both bumps. */
	refault(&g, g.vcpu);
	pages = tl_counters(vm).n_used_mmu_pages;
	assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
	assert_int_equal(smmu_fast_zap_bump(vm, NULL), today ? -EBUSY : 0);
	assert_int_equal(smmu_fast_zap(vm, &rep), 0);
	end_with_root_reload(&g, &rep, pages);
}

static void test_second_bump(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++)
		check_second_bump(eras[e]);
}

/* With nothing left to drain, bumps follow each other in both eras (an empty VM). */
static void test_bumps_with_nothing_to_drain(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct smmu_vm_config cfg;
		smmu_vm_config_default(&cfg);
		cfg.profile = eras[e];
		smmu_vm *vm = tl_vm_cfg(&cfg);
		uint64_t gen = smmu_mmu_valid_gen(vm);
		for (int i = 1; i <= 3; i++) {
			assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
			assert_int_equal(smmu_mmu_valid_gen(vm), gen + (uint64_t)i);
		}
		tl_assert_audit_clean(vm);
		smmu_vm_destroy(vm);
	}
}

/* ---- zapped roots in use (zapped_root_leaves_active_list) ------------------------------------ */

static void check_zapped_root(enum smmu_profile profile)
{
	struct tl_guest g;
	guest(&g, profile);
	smmu_vm *vm = g.vm;
	bool today = profile == SMMU_PROFILE_LINUX_TODAY;
	/* A second vCPU on the same CR3: the root has two users. */
	smmu_vcpu *v2;
	assert_int_equal(smmu_vcpu_create(vm, &v2), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v2, smmu_gas_cr3(g.gas)), 0);
	refault(&g, v2);
	struct smmu_sp *root = g.vcpu->root;
	assert_non_null(root);
	assert_ptr_equal(v2->root, root);
	assert_int_equal(root->root_count, 2);

	assert_int_equal(smmu_fast_zap(vm, NULL), 0);
	assert_true(root->role.invalid);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, 1); /* counted until freed */
	if (today) {
		assert_false(is_listed(vm, root));
		assert_int_equal(listed(vm), 0);
	} else {
		assert_true(is_listed(vm, root)); /* back at the head */
		lock(vm);
		assert_ptr_equal(smmu_active_first(vm), root);
		unlock(vm);
		assert_int_equal(listed(vm), 1);
	}
	tl_assert_audit_clean(vm);

	/* The first user lets go: still zapped, still counted, still where it was. */
	assert_int_equal(smmu_vcpu_enter(v2), 0);
	assert_null(v2->root);
	assert_int_equal(root->root_count, 1);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, 1);
	assert_true(root->role.invalid);
	assert_int_equal(is_listed(vm, root), !today);
	tl_assert_audit_clean(vm);
	/* The last one: freed. */
	uint64_t freed = tl_counters(vm).pages_freed;
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(tl_counters(vm).pages_freed, freed + 1);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, 0);
	tl_assert_audit_clean(vm);

	/* A current root zapped alone (smmu_zap_page): its users are asked to reload. */
	refault(&g, g.vcpu);
	refault(&g, v2);
	root = g.vcpu->root;
	assert_ptr_equal(v2->root, root);
	uint64_t used = tl_counters(vm).n_used_mmu_pages;
	lock(vm);
	struct smmu_invalid_list inv;
	smmu_invalid_list_init(&inv);
	assert_int_equal(smmu_zap_page(vm, root, &inv), 0); /* in use: nothing listed */
	smmu_commit_zap(vm, &inv);
	unlock(vm);
	/* 6.1's __kvm_mmu_prepare_zap_page: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS; 3.11's: a reload. */
	assert_true(atomic_load(&g.vcpu->requests) &
		    (today ? KVM_REQ_MMU_FREE_OBSOLETE_ROOTS : KVM_REQ_MMU_RELOAD));
	assert_int_equal(is_listed(vm, root), !today);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, used);
	assert_int_equal(listed(vm), today ? used - 1 : used);
	tl_assert_audit_clean(vm);
	assert_true(atomic_load(&v2->requests) &
		    (today ? KVM_REQ_MMU_FREE_OBSOLETE_ROOTS : KVM_REQ_MMU_RELOAD));
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, used); /* v2 still holds it */
	tl_assert_audit_clean(vm);
	assert_int_equal(smmu_vcpu_enter(v2), 0);
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, used - 1); /* freed */
	tl_assert_audit_clean(vm);
	refault(&g, g.vcpu); /* a new root over the pages that stayed */
	assert_int_equal(tl_counters(vm).n_used_mmu_pages, used);
	tl_assert_audit_clean(vm);
	tl_guest_fini(&g);
}

static void test_zapped_root(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++)
		check_zapped_root(eras[e]);
}

/* ---- the drain's restarts (obsolete_zap_restarts_if_unstable) -------------------------------- */

struct zap_log {
	uint64_t n;
	uint64_t key[256];
};

static void log_zaps(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct zap_log *l = ctx;
	struct smmu_sp_info i;
	if (ev != SMMU_EV_PAGE_ZAPPED || l->n >= 256 || smmu_sp_get_info(vm, sp, &i))
		return;
	l->key[l->n++] = i.gfn << 3 | (uint64_t)i.level;
}

/*
 * The guest writes one of its level-1 tables through a writable mapping of it: the page goes
 * unsync (both eras), and the root's zap, the drain's first, zaps it as an unsync child.
 */
static void check_drain_restarts(enum smmu_profile profile, bool with_unsync, struct zap_log *log)
{
	struct tl_guest g;
	guest(&g, profile);
	smmu_vm *vm = g.vm;
	if (with_unsync) {
		struct smmu_guest_walk w;
		assert_int_equal(smmu_guest_walk(vm, smmu_gas_cr3(g.gas), DATA_GVA, &w), 0);
		smmu_gva_t pt_gva = DATA_GVA + ((uint64_t)REGIONS << 21);
		assert_int_equal(smmu_gas_map(g.gas, pt_gva, w.table_gfn[0], SMMU_LEVEL_4K, RW_USER), 0);
		uint64_t pte;
		assert_int_equal(smmu_vcpu_read(g.vcpu, pt_gva, &pte, sizeof(pte)), 0);
		assert_int_equal(smmu_vcpu_write(g.vcpu, pt_gva, &pte, sizeof(pte)), 0);
		uint64_t unsync = 0;
		assert_int_equal(smmu_vm_get_mmu_unsync(vm, &unsync), 0);
		assert_int_equal(unsync, 1);
	}
	uint64_t pages = tl_counters(vm).n_used_mmu_pages;
	memset(log, 0, sizeof(*log));
	assert_int_equal(smmu_set_hook(vm, log_zaps, log), 0);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap(vm, &rep), 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	if (profile == SMMU_PROFILE_LINUX_3_11)
		/* After every page it listed (the root's zap lists only its unsync child). */
		assert_int_equal(rep.restarts, pages - 1);
	else
		/* Only when a zap took unsync children with it (the root's). */
		assert_int_equal(rep.restarts, with_unsync ? 1 : 0);
	end_with_root_reload(&g, &rep, pages);
}

static void test_drain_restarts(void **state)
{
	(void)state;
	for (int u = 0; u < 2; u++) {
		struct zap_log logs[2];
		for (int e = 0; e < 2; e++)
			check_drain_restarts(eras[e], u, &logs[e]);
		/* Restarting or going on from the page before: the same pages, in the same order. */
		assert_int_equal(logs[0].n, logs[1].n);
		assert_memory_equal(logs[0].key, logs[1].key, logs[0].n * sizeof(logs[0].key[0]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_bump),
		cmocka_unit_test(test_bumps_with_nothing_to_drain),
		cmocka_unit_test(test_zapped_root),
		cmocka_unit_test(test_drain_restarts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
