/*
 * Which faults an MMU-notifier invalidation makes retry (rule notifier_retry_in_range). 3.11's
 * mmu_notifier_retry retries every fault while any invalidation is in progress; today's
 * is_page_fault_stale → mmu_invalidate_retry_hva (6.1) retries only a fault whose hva lies in
 * the range in progress (kvm_mmu_invalidate_begin: set when the count leaves 0, widened while
 * invalidations overlap), and counts only an invalidation that hits a slot. Both retry a fault
 * that sampled the sequence before an invalidation that has ended.
 *
 * A fault meets an invalidation in progress without timing: on the invalidation's first
 * mmu_lock (its range_start, before the count is raised) an event hook lets the vCPU thread
 * fault and holds the lock until that thread waits for it; the ticket lock then serves the
 * fault before the invalidation's range_end.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <sched.h>

#include "mmu.h"

#define SLOT_PAGES 1024ull
#define CUT_GFN 16ull /* the invalidation: gfns [CUT_GFN, CUT_GFN + CUT_PAGES) */
#define CUT_PAGES 8ull
#define GFN_IN 20ull
#define GFN_OUT 600ull
#define RW (SMMU_ACC_WRITE | SMMU_ACC_USER)

static const enum smmu_profile eras[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

/* A direct-mode VM of @profile: slot 0 of SLOT_PAGES at gfn 0 over host pages of @host_level,
 * one vCPU whose root is loaded (a fault on gfn 1), so that a fault takes mmu_lock once. */
static smmu_vm *direct_vm(enum smmu_profile profile, int host_level, smmu_vcpu **v)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.profile = profile;
	cfg.mode = SMMU_MODE_DIRECT;
	smmu_vm *vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_set_host_level(vm, 0, host_level), 0);
	assert_int_equal(smmu_vcpu_create(vm, v), 0);
	assert_int_equal(smmu_vcpu_fault(*v, 1ull << SMMU_PAGE_SHIFT, RW, NULL), SMMU_FAULT_MAPPED);
	return vm;
}

/* The audit, then the VM and its vCPU go. */
static void direct_vm_fini(smmu_vm *vm, smmu_vcpu *v)
{
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

static int fault_gfn(smmu_vcpu *v, smmu_gfn_t gfn)
{
	return smmu_vcpu_fault(v, gfn << SMMU_PAGE_SHIFT, RW, NULL);
}

static char *hva(smmu_vm *vm, smmu_gfn_t gfn)
{
	return smmu_gfn_to_hva(vm, gfn);
}

/* The host range of the invalidations in progress, or of the last ones, is [start, end). */
static void assert_range(smmu_vm *vm, const char *start, const char *end)
{
	assert_int_equal(vm->mmu_notifier_range_start, (uintptr_t)start);
	assert_int_equal(vm->mmu_notifier_range_end, (uintptr_t)end);
}

/* ---- a fault while an invalidation is in progress -------------------------------------------- */

struct race {
	smmu_vm *vm;
	smmu_vcpu *v;
	smmu_gfn_t gfn;
	pthread_t vcpu_thread;
	atomic_bool armed, go, vcpu_locked;
	uint64_t count_at_fault; /* mmu_notifier_count when the fault took mmu_lock (its own site) */
	int result;
};

static void *race_vcpu(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->go))
		sched_yield();
	r->result = fault_gfn(r->v, r->gfn);
	return NULL;
}

static void race_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct race *r = ctx;
	if (ev != SMMU_EV_LOCK_TAKEN)
		return;
	if (pthread_equal(pthread_self(), r->vcpu_thread)) {
		if (vm->mmu_lock.site == SMMU_SITE_FAULT && !atomic_exchange(&r->vcpu_locked, true))
			r->count_at_fault = vm->mmu_notifier_count;
		return;
	}
	if (!atomic_exchange(&r->armed, false))
		return;
	atomic_store(&r->go, true);
	while (mmu_lock_waiters(&vm->mmu_lock) == 0)
		sched_yield();
}

/* Fault @gfn on a vCPU thread while the main thread invalidates the host pages of gfns
 * [first, first + n): the fault takes mmu_lock between the invalidation's start and end. */
static int fault_during_invalidation(smmu_vm *vm, smmu_vcpu *v, smmu_gfn_t gfn, smmu_gfn_t first, uint64_t n)
{
	struct race r = { .vm = vm, .v = v, .gfn = gfn };
	atomic_init(&r.armed, true);
	atomic_init(&r.go, false);
	atomic_init(&r.vcpu_locked, false);
	assert_int_equal(pthread_create(&r.vcpu_thread, NULL, race_vcpu, &r), 0);
	assert_int_equal(smmu_set_hook(vm, race_hook, &r), 0);
	assert_true(smmu_mmu_notifier_invalidate_range(vm, hva(vm, first), hva(vm, first) + n * SMMU_PAGE_SIZE) >= 0);
	assert_int_equal(pthread_join(r.vcpu_thread, NULL), 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	assert_true(atomic_load(&r.vcpu_locked));
	assert_int_equal(r.count_at_fault, 1); /* the invalidation was in progress */
	assert_int_equal(vm->mmu_notifier_count, 0);
	return r.result;
}

/* A fault on a gfn outside the range in progress: today it maps, 3.11 retries. One inside it
 * retries in both. Afterwards both map. */
static void test_fault_in_and_out_of_range(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		bool today = eras[e] == SMMU_PROFILE_LINUX_TODAY;
		smmu_vcpu *v;
		smmu_vm *vm = direct_vm(eras[e], SMMU_LEVEL_4K, &v);
		assert_int_equal(fault_during_invalidation(vm, v, GFN_OUT, CUT_GFN, CUT_PAGES),
				 today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		assert_int_equal(fault_during_invalidation(vm, v, GFN_IN, CUT_GFN, CUT_PAGES), SMMU_FAULT_RETRY);
		/* The first gfn of the range and the one past it. */
		assert_int_equal(fault_during_invalidation(vm, v, CUT_GFN, CUT_GFN, CUT_PAGES), SMMU_FAULT_RETRY);
		assert_int_equal(fault_during_invalidation(vm, v, CUT_GFN + CUT_PAGES, CUT_GFN, CUT_PAGES),
				 today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_MAPPED);
		assert_int_equal(fault_gfn(v, GFN_OUT), SMMU_FAULT_MAPPED);
		direct_vm_fini(vm, v);
	}
}

/* Over THP the invalidation of one page splits its huge page, whose own invalidation nests in
 * it: today's range in progress covers the whole 2 MiB page, so a fault on another page of it
 * retries, one in the next huge page maps. The range is set afresh by the next invalidation:
 * after one in the next huge page, a fault on the first maps (today). 3.11 retries them all. */
static void test_split_widens_then_resets(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		bool today = eras[e] == SMMU_PROFILE_LINUX_TODAY;
		smmu_vcpu *v;
		smmu_vm *vm = direct_vm(eras[e], SMMU_LEVEL_2M, &v);
		assert_int_equal(fault_during_invalidation(vm, v, 300, CUT_GFN, 1), SMMU_FAULT_RETRY);
		assert_range(vm, hva(vm, 0), hva(vm, 512));
		assert_int_equal(fault_during_invalidation(vm, v, 700, CUT_GFN + 1, 1),
				 today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		/* Split already: this invalidation's range is its own page. */
		assert_range(vm, hva(vm, CUT_GFN + 1), hva(vm, CUT_GFN + 2));
		assert_int_equal(fault_during_invalidation(vm, v, 300, 700, 1), today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		assert_range(vm, hva(vm, 512), hva(vm, 0) + SLOT_PAGES * SMMU_PAGE_SIZE);
		assert_int_equal(fault_gfn(v, 300), SMMU_FAULT_MAPPED);
		direct_vm_fini(vm, v);
	}
}

/* ---- overlapping invalidations ---------------------------------------------------------------- */

/* Another thread's invalidation of gfns [CUT_GFN, +CUT_PAGES) is in progress (its range_start
 * ran: the count and the range as kvm_mmu_invalidate_begin left them) when this thread's
 * invalidation of gfns [200, 208) begins and ends: the range widens to cover both and stays
 * so while the first is in progress. Today a fault on a gfn in the second range retries though
 * that one ended, so does one between the two (the range is one interval), one beyond both
 * maps; 3.11 retries every fault. When the first ends (range_end), every fault maps. */
static void test_overlap_widens(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		bool today = eras[e] == SMMU_PROFILE_LINUX_TODAY;
		smmu_vcpu *v;
		smmu_vm *vm = direct_vm(eras[e], SMMU_LEVEL_4K, &v);
		smmu_mmu_lock(vm, SMMU_SITE_USER0);
		vm->mmu_notifier_count = 1;
		vm->mmu_notifier_range_start = (uintptr_t)hva(vm, CUT_GFN);
		vm->mmu_notifier_range_end = (uintptr_t)hva(vm, CUT_GFN + CUT_PAGES);
		smmu_mmu_unlock(vm);
		assert_true(smmu_mmu_notifier_invalidate_range(vm, hva(vm, 200), hva(vm, 208)) >= 0);
		assert_int_equal(vm->mmu_notifier_count, 1);
		assert_range(vm, hva(vm, CUT_GFN), hva(vm, 208));
		assert_int_equal(fault_gfn(v, 204), SMMU_FAULT_RETRY);
		assert_int_equal(fault_gfn(v, 100), SMMU_FAULT_RETRY);
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_RETRY);
		assert_int_equal(fault_gfn(v, GFN_OUT), today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		smmu_mmu_lock(vm, SMMU_SITE_USER0); /* the first one's range_end */
		atomic_fetch_add(&vm->mmu_notifier_seq, 1);
		vm->mmu_notifier_count = 0;
		smmu_mmu_unlock(vm);
		assert_int_equal(fault_gfn(v, 204), SMMU_FAULT_MAPPED);
		assert_int_equal(fault_gfn(v, 100), SMMU_FAULT_MAPPED);
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_MAPPED);
		assert_int_equal(fault_gfn(v, GFN_OUT), SMMU_FAULT_MAPPED);
		direct_vm_fini(vm, v);
	}
}

/* Where the retry for an invalidation in progress is decided: today (6.9 on) before the pfn
 * lookup, without mmu_lock (kvm_faultin_pfn → mmu_invalidate_retry_gfn_unsafe); 6.1 and 3.11
 * under the lock (is_page_fault_stale, mmu_notifier_retry). A fault outside the range still
 * maps in today's and 6.1's. */
static void test_retry_before_lock(void **state)
{
	(void)state;
	static const struct {
		enum smmu_profile p;
		uint64_t locked; /* faults that took mmu_lock for the one in the range */
	} profiles[] = {
		{ SMMU_PROFILE_LINUX_3_11, 1 },
		{ SMMU_PROFILE_LINUX_6_1, 1 },
		{ SMMU_PROFILE_LINUX_TODAY, 0 },
	};
	for (size_t e = 0; e < sizeof(profiles) / sizeof(profiles[0]); e++) {
		smmu_vcpu *v;
		smmu_vm *vm = direct_vm(profiles[e].p, SMMU_LEVEL_4K, &v);
		smmu_mmu_lock(vm, SMMU_SITE_USER0); /* another thread's range_start */
		vm->mmu_notifier_count = 1;
		vm->mmu_notifier_range_start = (uintptr_t)hva(vm, CUT_GFN);
		vm->mmu_notifier_range_end = (uintptr_t)hva(vm, CUT_GFN + CUT_PAGES);
		smmu_mmu_unlock(vm);
		uint64_t f0 = tl_counters(vm).faults;
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_RETRY);
		assert_int_equal(tl_counters(vm).faults - f0, profiles[e].locked);
		assert_int_equal(fault_gfn(v, GFN_OUT),
				 profiles[e].p == SMMU_PROFILE_LINUX_3_11 ? SMMU_FAULT_RETRY : SMMU_FAULT_MAPPED);
		smmu_mmu_lock(vm, SMMU_SITE_USER0); /* its range_end */
		atomic_fetch_add(&vm->mmu_notifier_seq, 1);
		vm->mmu_notifier_count = 0;
		smmu_mmu_unlock(vm);
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_MAPPED);
		direct_vm_fini(vm, v);
	}
}

/* ---- an invalidation that ended after the fault's sample ---------------------------------------- */

/* The host invalidates [start, end) from inside the fault's pfn lookup (between the fault's
 * sample of the sequence and its mmu_lock), once. */
struct host {
	char *start, *end;
	unsigned invalidations;
};

static void host_hook(smmu_vm *vm, void *page, bool write, void *ctx)
{
	(void)page;
	(void)write;
	struct host *h = ctx;
	if (h->start && !h->invalidations++)
		assert_true(smmu_mmu_notifier_invalidate_range(vm, h->start, h->end) >= 0);
}

static char elsewhere[4 * SMMU_PAGE_SIZE]; /* host memory in no slot */

/* An invalidation in a slot that ends after the fault sampled the sequence makes the fault
 * retry in both eras, wherever the fault is (the sequence moved). One of host memory that no
 * slot maps: 3.11 retries all the same; today it neither counts nor bumps, the fault maps. */
static void test_ended_invalidation(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		bool today = eras[e] == SMMU_PROFILE_LINUX_TODAY;
		smmu_vcpu *v;
		smmu_vm *vm = direct_vm(eras[e], SMMU_LEVEL_4K, &v);
		struct host h = { hva(vm, CUT_GFN), hva(vm, CUT_GFN + CUT_PAGES), 0 };
		assert_int_equal(smmu_set_hva_to_pfn_hook(vm, host_hook, &h), 0);
		uint64_t seq = vm->mmu_notifier_seq;
		assert_int_equal(fault_gfn(v, GFN_OUT), SMMU_FAULT_RETRY);
		assert_int_equal(h.invalidations, 1);
		assert_int_equal(vm->mmu_notifier_seq, seq + 1);
		assert_int_equal(fault_gfn(v, GFN_OUT), SMMU_FAULT_MAPPED);

		h = (struct host){ elsewhere, elsewhere + sizeof(elsewhere), 0 };
		assert_int_equal(fault_gfn(v, GFN_IN), today ? SMMU_FAULT_MAPPED : SMMU_FAULT_RETRY);
		assert_int_equal(h.invalidations, 1);
		assert_int_equal(vm->mmu_notifier_seq, seq + 1 + !today);
		assert_int_equal(vm->mmu_notifier_count, 0);
		assert_int_equal(fault_gfn(v, GFN_IN), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_set_hva_to_pfn_hook(vm, NULL, NULL), 0);
		direct_vm_fini(vm, v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_in_and_out_of_range),
		cmocka_unit_test(test_split_widens_then_resets),
		cmocka_unit_test(test_overlap_widens),
		cmocka_unit_test(test_retry_before_lock),
		cmocka_unit_test(test_ended_invalidation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
