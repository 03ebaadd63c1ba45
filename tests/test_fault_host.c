/*
 * The host's page fault inside KVM's (smmu_set_hva_to_pfn_hook: kvm_faultin_pfn → hva_to_pfn),
 * and what a fault does once it holds mmu_lock when the host invalidated since its mmu_seq
 * sample (the copy of the zero page on a write): it retries. Under the page budget, today's
 * kernel (the 6.1 build the harness recorded) recycles before it finds the fault stale; 3.11
 * checks first (rule fault_recycles_before_stale).
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>

#define SLOT_PAGES 4096ull
#define POOL_GFN 3000ull
#define POOL_PAGES 96ull
#define GVA 0x40000000ull
#define STRIDE (2ull << 20) /* one guest page table each */
#define DATA_GFN 100ull
#define NMAP 60
#define BUDGET 40
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static const enum smmu_profile profiles[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

/* The host: on the first write to @target, the zero page behind it is copied and unmapped. */
struct host {
	void *target;
	bool cow_pending;
	unsigned calls, writes, invalidations;
	void *last_hva;
};

static void host_hook(smmu_vm *vm, void *hva, bool write, void *ctx)
{
	struct host *h = ctx;
	h->calls++;
	h->writes += write;
	h->last_hva = hva;
	if (write && hva == h->target && h->cow_pending) {
		h->cow_pending = false;
		assert_true(smmu_mmu_notifier_invalidate_range(vm, hva, (char *)hva + 4096) >= 0);
		h->invalidations++;
	}
}

/* A shadow guest of @profile with NMAP pages mapped 2 MiB apart, and @h as its host. */
static void start(struct tl_guest *g, struct host *h, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.profile = profile;
	tl_guest_init_cfg(g, &cfg, SLOT_PAGES, POOL_GFN, POOL_PAGES);
	for (uint64_t i = 0; i < NMAP; i++)
		assert_int_equal(smmu_gas_map(g->gas, GVA + i * STRIDE, DATA_GFN + i, SMMU_LEVEL_4K, RW_USER), 0);
	*h = (struct host){ 0 };
	assert_int_equal(smmu_set_hva_to_pfn_hook(g->vm, host_hook, h), 0);
}

/* The hook sees each fault's host page, with the fault's direction, and not a fault the guest's
 * own tables refuse. */
static void test_hook_sees_faults(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct tl_guest g;
		struct host h;
		start(&g, &h, profiles[p]);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(h.calls, 1);
		assert_int_equal(h.writes, 0);
		assert_ptr_equal(h.last_hva, smmu_gfn_to_hva(g.vm, DATA_GFN));
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + STRIDE, SMMU_ACC_USER | SMMU_ACC_WRITE, NULL),
				 SMMU_FAULT_MAPPED);
		assert_int_equal(h.calls, 2);
		assert_int_equal(h.writes, 1);
		assert_ptr_equal(h.last_hva, smmu_gfn_to_hva(g.vm, DATA_GFN + 1));
		/* Not mapped by the guest: a guest #PF, no host page looked up. */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + NMAP * STRIDE, SMMU_ACC_USER, NULL),
				 SMMU_FAULT_GUEST_PF);
		assert_int_equal(h.calls, 2);
		assert_int_equal(smmu_set_hva_to_pfn_hook(g.vm, NULL, NULL), 0);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + 2 * STRIDE, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(h.calls, 2);
		assert_int_equal(smmu_set_hva_to_pfn_hook(NULL, host_hook, &h), -EINVAL);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* The host copies the zero page inside the write fault: its invalidation (from the hook, inside
 * the fault's srcu read section) makes the fault retry, the read-only spte is gone, and the
 * retried fault maps the page writable. Both eras. */
static void test_cow_retries(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct tl_guest g;
		struct host h;
		start(&g, &h, profiles[p]);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &t), -EACCES);
		h.target = smmu_gfn_to_hva(g.vm, DATA_GFN);
		h.cow_pending = true;
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &fi), SMMU_FAULT_RETRY);
		assert_int_equal(h.invalidations, 1);
		assert_int_equal(fi.pages_created, 0);
		/* The notifier dropped the read-only spte. */
		assert_int_not_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER, &t), 0);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_translate(g.vcpu, GVA, SMMU_ACC_USER | SMMU_ACC_WRITE, &t), 0);
		assert_int_equal(h.invalidations, 1);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* Under the page budget, with fewer than KVM_MIN_FREE_MMU_PAGES free, a write whose pfn lookup
 * copies the host's zero page (an invalidation of the gfn): 6.1 takes mmu_lock, recycles first
 * (make_mmu_pages_available before is_page_fault_stale) and retries having built nothing; 3.11
 * retries without recycling (mmu_notifier_retry first); today (6.9 on) retries before it takes
 * the lock at all (mmu_invalidate_retry_gfn_unsafe after the lookup). The retried fault then
 * recycles (3.11, today) or finds room (6.1) and maps. */
static void test_recycle_before_stale(void **state)
{
	(void)state;
	static const struct {
		enum smmu_profile p;
		bool locked, recycled; /* the first try: took mmu_lock, recycled */
	} eras[] = {
		{ SMMU_PROFILE_LINUX_3_11, true, false },
		{ SMMU_PROFILE_LINUX_6_1, true, true },
		{ SMMU_PROFILE_LINUX_TODAY, false, false },
	};
	for (size_t p = 0; p < sizeof(eras) / sizeof(eras[0]); p++) {
		struct tl_guest g;
		struct host h;
		start(&g, &h, eras[p].p);
		assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, BUDGET), 0);
		/* Read faults, one new guest table each, until fewer than 5 pages are free. */
		uint64_t i = 0;
		struct smmu_vm_counters c = tl_counters(g.vm);
		while (c.n_max_mmu_pages - c.n_used_mmu_pages >= 5) {
			assert_true(i < NMAP);
			assert_int_equal(smmu_vcpu_fault(g.vcpu, GVA + i * STRIDE, SMMU_ACC_USER, NULL), SMMU_FAULT_MAPPED);
			i++;
			c = tl_counters(g.vm);
		}
		assert_int_equal(c.pages_recycled, 0);
		/* A write to a page not mapped yet; the host copies its zero page. */
		smmu_gva_t gva = GVA + i * STRIDE;
		h.target = smmu_gfn_to_hva(g.vm, DATA_GFN + i);
		h.cow_pending = true;
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_USER | SMMU_ACC_WRITE, &fi), SMMU_FAULT_RETRY);
		assert_int_equal(h.invalidations, 1);
		assert_int_equal(fi.pages_created, 0);
		struct smmu_vm_counters c1 = tl_counters(g.vm);
		assert_int_equal(c1.pages_created, c.pages_created);
		assert_int_equal(c1.faults - c.faults, eras[p].locked);
		if (eras[p].recycled) {
			assert_true(c1.pages_recycled > 0);
			assert_true(c1.n_max_mmu_pages - c1.n_used_mmu_pages >= 5);
		} else {
			assert_int_equal(c1.pages_recycled, 0);
			assert_int_equal(c1.n_used_mmu_pages, c.n_used_mmu_pages);
		}
		tl_assert_audit_clean(g.vm);
		/* The retry: 3.11 and today recycle now, 6.1 has room; all map the page writable. */
		assert_int_equal(smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_USER | SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		struct smmu_vm_counters c2 = tl_counters(g.vm);
		assert_true(c2.pages_recycled > 0);
		if (eras[p].recycled)
			assert_int_equal(c2.pages_recycled, c1.pages_recycled);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(g.vcpu, gva, SMMU_ACC_USER | SMMU_ACC_WRITE, &t), 0);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_sees_faults),
		cmocka_unit_test(test_cow_retries),
		cmocka_unit_test(test_recycle_before_stale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
