/*
 * The profile's rules (src/profile.h): each rule where Linux 3.11's KVM and today's differ,
 * run under both profiles on the same sequence, with the difference asserted.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <string.h>

#include "profile.h"

#define GUEST_PAGES 8192ull
#define POOL_GFN 4096ull
#define POOL_PAGES 1024ull
#define DATA_GFN 16ull

/* A shadow guest (testlib's) under @profile. */
static void era_guest_init(struct tl_guest *g, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.profile = profile;
	tl_guest_init_cfg(g, &cfg, GUEST_PAGES, POOL_GFN, POOL_PAGES);
}

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

struct zap_log {
	unsigned root_zaps; /* level-4 pages zapped (each once) */
};

static void count_root_zaps(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct smmu_sp_info info;
	if (ev != SMMU_EV_PAGE_ZAPPED || smmu_sp_get_info(vm, sp, &info))
		return;
	if (info.level == 4 && !info.invalid) /* a root's first zap (its second: invalid already) */
		((struct zap_log *)ctx)->root_zaps++;
}

/* Fault @n pages, each in its own 2 MiB region (a new level-1 shadow page each), under a budget
 * of @budget pages; a fault the recycling made stale (its root zapped) reloads and retries. */
static void fault_spread(struct tl_guest *g, int n, uint64_t budget, unsigned *retries)
{
	assert_int_equal(smmu_vm_set_max_mmu_pages(g->vm, budget), 0);
	for (int i = 0; i < n; i++) {
		smmu_gva_t gva = 0x40000000ull + (uint64_t)i * (2ull << 20);
		assert_int_equal(smmu_gas_map(g->gas, gva, DATA_GFN + (uint64_t)i, SMMU_LEVEL_4K,
					      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		int r = smmu_vcpu_fault(g->vcpu, gva, SMMU_ACC_WRITE, NULL);
		while (r == SMMU_FAULT_RETRY) {
			++*retries;
			assert_int_equal(smmu_vcpu_enter(g->vcpu), 0);
			r = smmu_vcpu_fault(g->vcpu, gva, SMMU_ACC_WRITE, NULL);
		}
		assert_int_equal(r, SMMU_FAULT_MAPPED);
		assert_true(counters(g->vm).n_used_mmu_pages <= budget);
	}
}

/* zap_oldest_skips_roots, 3.11: the oldest page is zapped whatever it is, so the root, the first
 * page created, is zapped by the first recycling: every vCPU is asked to reload, and
 * mmu_recycled counts the root's zap though it frees nothing. (The fault that recycled goes on
 * under the zapped root: 3.11 has no stale-root check after make_mmu_pages_available.) */
static void test_recycle_3_11_zaps_the_root(void **state)
{
	(void)state;
	struct tl_guest g;
	struct zap_log log = {0};
	unsigned retries = 0;
	era_guest_init(&g, SMMU_PROFILE_LINUX_3_11);
	assert_false(smmu_rules_3_11.zap_oldest_skips_roots);
	assert_int_equal(smmu_set_hook(g.vm, count_root_zaps, &log), 0);
	fault_spread(&g, 300, 64, &retries);
	struct smmu_vm_counters c = counters(g.vm);
	assert_true(c.pages_recycled > 0);
	assert_true(log.root_zaps > 0);
	assert_true(c.reload_requests > 0);
	/* Each recycling step is one zap, the root's included; a zapped root is zapped once more
	 * when its vCPU drops it (mmu_free_roots), and freed then. */
	assert_int_equal(c.pages_zapped, c.pages_recycled + log.root_zaps);
	assert_int_equal(c.reload_requests, log.root_zaps);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* zap_oldest_skips_roots, today: pages in use as roots are passed over, so no vCPU reloads and no
 * fault retries; mmu_recycled counts the pages that went to the invalid list, all freed. */
static void test_recycle_today_passes_over_roots(void **state)
{
	(void)state;
	struct tl_guest g;
	struct zap_log log = {0};
	unsigned retries = 0;
	era_guest_init(&g, SMMU_PROFILE_LINUX_TODAY);
	assert_true(smmu_rules_today.zap_oldest_skips_roots);
	assert_int_equal(smmu_set_hook(g.vm, count_root_zaps, &log), 0);
	fault_spread(&g, 300, 64, &retries);
	struct smmu_vm_counters c = counters(g.vm);
	assert_true(c.pages_recycled > 0);
	assert_int_equal(log.root_zaps, 0);
	assert_int_equal(retries, 0);
	assert_int_equal(c.reload_requests, 0);
	assert_int_equal(c.pages_recycled, c.pages_zapped);
	assert_int_equal(c.pages_recycled, c.pages_freed);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* Today's recycling stops as soon as KVM_REFILL_PAGES (25) are free: each round zaps
 * 25 - available pages, where available fell below KVM_MIN_FREE_MMU_PAGES (5). */
static void test_recycle_today_refills_to_25(void **state)
{
	(void)state;
	struct tl_guest g;
	unsigned retries = 0;
	era_guest_init(&g, SMMU_PROFILE_LINUX_TODAY);
	/* Fill to exactly 4 free pages below a budget of 64: no recycling yet. */
	fault_spread(&g, 1, 64, &retries);
	uint64_t used = counters(g.vm).n_used_mmu_pages; /* root, l3, l2, one l1 */
	assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, used + 4), 0);
	assert_int_equal(counters(g.vm).pages_recycled, 0);
	/* The next fault finds 4 < 5 free, zaps 25 - 4 = 21 pages (or all it can), then maps. */
	assert_int_equal(smmu_gas_map(g.gas, 0x40000000ull + (2ull << 20), DATA_GFN + 1, SMMU_LEVEL_4K,
				      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 0x40000000ull + (2ull << 20), SMMU_ACC_WRITE, NULL),
			 SMMU_FAULT_MAPPED);
	struct smmu_vm_counters c = counters(g.vm);
	/* Only 3 pages are not the root (l3, l2, l1): all three go, the root stays. */
	assert_int_equal(c.pages_recycled, used - 1);
	assert_int_equal(c.reload_requests, 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* The 6.1 profile is today's but for the rules changed since 6.1 (profile.h), each of which
 * differs: patched with today's values of those, it is today's, byte for byte. */
static void test_6_1_is_today_but_three(void **state)
{
	(void)state;
	assert_ptr_equal(smmu_profile_rules(SMMU_PROFILE_LINUX_6_1), &smmu_rules_6_1);
	assert_ptr_equal(smmu_profile_rules(SMMU_PROFILE_LINUX_TODAY), &smmu_rules_today);
	assert_null(smmu_profile_rules((enum smmu_profile)3));
	const struct smmu_rules *t = &smmu_rules_today;
	struct smmu_rules r;
	memcpy(&r, &smmu_rules_6_1, sizeof(r)); /* padding too: both are static, zero-filled */
	assert_int_not_equal(r.spte_dirty_over_writable, t->spte_dirty_over_writable);
	assert_int_not_equal(r.sync_skips_unchanged_access, t->sync_skips_unchanged_access);
	assert_int_not_equal(r.fault_retries_before_lock, t->fault_retries_before_lock);
	r.name = t->name;
	r.spte_dirty_over_writable = t->spte_dirty_over_writable;
	r.sync_skips_unchanged_access = t->sync_skips_unchanged_access;
	r.fault_retries_before_lock = t->fault_retries_before_lock;
	assert_memory_equal(&r, t, sizeof(r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_6_1_is_today_but_three),
		cmocka_unit_test(test_recycle_3_11_zaps_the_root),
		cmocka_unit_test(test_recycle_today_passes_over_roots),
		cmocka_unit_test(test_recycle_today_refills_to_25),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
