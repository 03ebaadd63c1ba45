/*
 * The lock's test hook (mmu_lock.test_break_every, used by the fuzzer): with it, needbreak says
 * "break" from the k-th check after the last break on, with nobody waiting, so one thread drives the lock-break paths of
 * zap_all, the fast zap's drain and the memslot flushes; without it, nothing breaks alone.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include "mmu.h"

/* From the k-th check since the last break on, and never with the hook off. */
static void test_needbreak_period(void **state)
{
	(void)state;
	struct mmu_lock l;
	assert_int_equal(mmu_lock_init(&l), 0);
	mmu_lock_acquire(&l, SMMU_SITE_USER0);
	for (int i = 0; i < 6; i++)
		assert_false(mmu_lock_needbreak(&l));
	l.test_break_every = 3;
	bool seen[5];
	for (int i = 0; i < 5; i++)
		seen[i] = mmu_lock_needbreak(&l);
	assert_false(seen[0] || seen[1]);
	assert_true(seen[2] && seen[3] && seen[4]); /* until a break serves the "waiter" */
	/* A forced break is a real one: released, retaken, counted; the count starts over. */
	uint64_t acq = atomic_load(&l.acquisitions);
	assert_true(mmu_lock_cond_resched(&l));
	assert_true(mmu_lock_held(&l));
	assert_int_equal(atomic_load(&l.acquisitions), acq + 1);
	assert_int_equal(l.sites[SMMU_SITE_USER0].breaks, 1);
	assert_false(mmu_lock_needbreak(&l));
	assert_false(mmu_lock_cond_resched(&l)); /* the second check since the break */
	assert_true(mmu_lock_cond_resched(&l));
	l.test_break_every = 1;
	assert_true(mmu_lock_needbreak(&l));
	l.test_break_every = 0;
	assert_false(mmu_lock_cond_resched(&l));
	mmu_lock_release(&l);
	mmu_lock_destroy(&l);
}

/* 24 pages 2 MiB apart faulted in (a shadow page table each, more than a drain batch). */
static void fault_spread(struct tl_guest *g)
{
	for (uint64_t i = 0; i < 24; i++)
		tl_map_and_fault(g, i << 21, 300 + i, 1, SMMU_ACC_WRITE | SMMU_ACC_USER);
}

/* A shadow guest with fault_spread's pages, the hook set to @every. */
static void guest_with_breaks(struct tl_guest *g, uint32_t every)
{
	tl_guest_init(g, SMMU_MODE_SHADOW, 2048, 64, 64);
	fault_spread(g);
	g->vm->mmu_lock.test_break_every = every;
}

/* zap_all's restart and generation walks break after every page, and still zap everything. */
static void test_zap_all_breaks(void **state)
{
	(void)state;
	for (int mode = SMMU_ZAP_RESTART; mode <= SMMU_ZAP_GENERATION; mode++) {
		for (uint32_t every = 0; every <= 1; every++) {
			struct tl_guest g;
			guest_with_breaks(&g, every);
			struct smmu_zap_report rep;
			assert_int_equal(smmu_zap_all(g.vm, (enum smmu_zap_mode)mode, 0, &rep), 0);
			assert_true(rep.completed);
			if (every)
				assert_true(rep.pages_zapped >= 24 && rep.lock_breaks >= rep.pages_zapped / 2);
			else
				assert_int_equal(rep.lock_breaks, 0);
			struct smmu_vm_counters c;
			assert_int_equal(smmu_vm_get_counters(g.vm, &c), 0);
			assert_int_equal(c.n_used_mmu_pages, 1); /* the vCPU's root, in use */
			tl_assert_audit_clean(g.vm);
			tl_guest_fini(&g);
		}
	}
}

/* The fast zap's drain and the slot-wide flushes break too, and leave the audit clean. */
static void test_drain_and_flush_break(void **state)
{
	(void)state;
	struct tl_guest g;
	guest_with_breaks(&g, 1);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap(g.vm, &rep), 0);
	assert_true(rep.lock_breaks > 0);
	tl_assert_audit_clean(g.vm);
	fault_spread(&g);
	assert_int_equal(smmu_memslot_flush(g.vm, 0, SMMU_FLUSH_HASH_WALK, &rep), 0);
	assert_true(rep.lock_breaks >= 2048); /* a break per gfn of the slot, at least */
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needbreak_period),
		cmocka_unit_test(test_zap_all_breaks),
		cmocka_unit_test(test_drain_and_flush_break),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
