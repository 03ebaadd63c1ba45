/*
 * The preemption model (config.preempt, config.resched_slice_ns) and each era's commit rule for
 * a lock-breaking zap_all (profile rule zap_all_commit_once).
 *
 * No timing: the modelled scheduler reads an injected clock (mmu_lock_set_clock), which a hook
 * advances by a fixed step for every page the zapper zaps, and a waiting thread is queued at a
 * chosen page by the same hook. So "the slice ran out after 4 pages" is exact.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <sched.h>
#include <stdio.h>

#include "mmu.h"

#define MS 1000000ull

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx) { return ((struct fake_clock *)ctx)->now; }

/* ---- the lock alone ------------------------------------------------------------------------- */

struct blocker {
	struct mmu_lock *l;
	atomic_int done;
};

static void *blocker_main(void *arg)
{
	struct blocker *b = arg;
	mmu_lock_acquire(b->l, SMMU_SITE_USER1);
	mmu_lock_release(b->l);
	atomic_store(&b->done, 1);
	return NULL;
}

/* spin_needbreak() sees a waiter only on a preemptible kernel. */
static void test_waiter_breaks_only_full(void **state)
{
	(void)state;
	struct mmu_lock l;
	assert_int_equal(mmu_lock_init(&l), 0);
	mmu_lock_acquire(&l, SMMU_SITE_USER0);
	struct blocker b = { .l = &l };
	atomic_init(&b.done, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocker_main, &b), 0);
	while (!mmu_lock_waiters(&l))
		sched_yield();
	mmu_lock_set_preempt(&l, SMMU_PREEMPT_NONE, 0);
	assert_false(mmu_lock_needbreak(&l));
	assert_false(mmu_lock_cond_resched(&l));
	mmu_lock_set_preempt(&l, SMMU_PREEMPT_VOLUNTARY, 0);
	assert_false(mmu_lock_needbreak(&l));
	assert_false(mmu_lock_cond_resched(&l));
	assert_int_equal(atomic_load(&b.done), 0); /* still waiting: nobody let it in */
	mmu_lock_set_preempt(&l, SMMU_PREEMPT_FULL, 0);
	assert_true(mmu_lock_needbreak(&l));
	assert_true(mmu_lock_cond_resched(&l)); /* hands the lock over, then retakes it */
	assert_int_equal(l.sites[SMMU_SITE_USER0].handoffs, 1);
	mmu_lock_release(&l);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(atomic_load(&b.done), 1);
	mmu_lock_destroy(&l);
}

/* need_resched() comes with the slice's end, in every model, waiter or not; a resched break
 * starts a new slice; slice 0 means nothing else wants the CPU. */
static void test_slice_sets_need_resched(void **state)
{
	(void)state;
	static const enum smmu_preempt_model models[] = { SMMU_PREEMPT_NONE, SMMU_PREEMPT_VOLUNTARY,
							  SMMU_PREEMPT_FULL };
	for (size_t i = 0; i < 3; i++) {
		struct mmu_lock l;
		struct fake_clock clk = { .now = 1000 * MS };
		assert_int_equal(mmu_lock_init(&l), 0);
		mmu_lock_set_preempt(&l, models[i], 4 * MS);
		mmu_lock_set_clock(&l, fake_now, &clk);
		mmu_lock_acquire(&l, SMMU_SITE_USER0);
		clk.now += 4 * MS - 1;
		assert_false(mmu_lock_needbreak(&l));
		assert_false(mmu_lock_cond_resched(&l));
		clk.now += 1;
		assert_true(mmu_lock_need_resched(&l));
		assert_true(mmu_lock_needbreak(&l));
		assert_true(mmu_lock_cond_resched(&l)); /* nobody waits: it breaks all the same */
		assert_int_equal(l.sites[SMMU_SITE_USER0].breaks, 1);
		assert_int_equal(l.sites[SMMU_SITE_USER0].handoffs, 0);
		assert_false(mmu_lock_needbreak(&l)); /* back from schedule(): a fresh slice */
		clk.now += 4 * MS;
		assert_true(mmu_lock_needbreak(&l));
		mmu_lock_release(&l);
		/* A new acquisition starts a new slice too. */
		mmu_lock_acquire(&l, SMMU_SITE_USER0);
		assert_false(mmu_lock_needbreak(&l));
		mmu_lock_release(&l);
		/* Slice 0: need_resched never comes. */
		mmu_lock_set_preempt(&l, models[i], 0);
		mmu_lock_acquire(&l, SMMU_SITE_USER0);
		clk.now += 1000000 * MS;
		assert_false(mmu_lock_needbreak(&l));
		assert_false(mmu_lock_cond_resched(&l));
		mmu_lock_release(&l);
		mmu_lock_destroy(&l);
	}
}

/* ---- zaps on a VM --------------------------------------------------------------------------- */

/* A direct-mode VM with @n level-1 pages (one per 2 MiB region, 4 KiB leaves), each leaf read
 * once through the vCPU so that its TLB holds the translation. */
static smmu_vm *build_vm(enum smmu_profile profile, enum smmu_preempt_model model, uint64_t slice_ns,
			 unsigned n, smmu_vcpu **vcpu)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_DIRECT;
	cfg.profile = profile;
	cfg.preempt = (uint8_t)model;
	cfg.resched_slice_ns = slice_ns;
	smmu_vm *vm = tl_vm_cfg(&cfg);
	struct smmu_vm_config got;
	assert_int_equal(smmu_vm_get_config(vm, &got), 0);
	assert_int_equal(got.preempt, model);
	assert_int_equal(got.resched_slice_ns, slice_ns);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, (uint64_t)n * 512, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_vcpu_create(vm, vcpu), 0);
	for (unsigned i = 0; i < n; i++) {
		smmu_gpa_t gpa = (smmu_gpa_t)i * 512 * SMMU_PAGE_SIZE;
		assert_int_equal(smmu_vcpu_fault(*vcpu, gpa, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		uint64_t v;
		assert_int_equal(smmu_vcpu_read(*vcpu, gpa, &v, sizeof(v)), 0);
	}
	return vm;
}

/*
 * The zapper's hook: every page it zaps advances the scheduler's clock by @step; at page
 * @queue_at the waiter is let go and the zapper waits, holding the lock, until it has queued.
 * The waiter notes (under the lock) how many pages were zapped when it got in.
 */
struct scene {
	smmu_vm *vm;
	pthread_t zapper, waiter;
	struct fake_clock clk;
	uint64_t step;
	unsigned long queue_at; /* 0: no waiter */
	atomic_int go;
	unsigned long zapped;   /* under mmu_lock */
	unsigned long seen;     /* under mmu_lock */
	bool got;
};

static void scene_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct scene *s = ctx;
	if (ev == SMMU_EV_LOCK_TAKEN && s->queue_at && pthread_equal(pthread_self(), s->waiter) && !s->got) {
		s->seen = s->zapped;
		s->got = true;
	}
	if (ev != SMMU_EV_PAGE_ZAPPED || !pthread_equal(pthread_self(), s->zapper))
		return;
	s->zapped++;
	s->clk.now += s->step;
	if (s->zapped == s->queue_at) {
		atomic_store(&s->go, 1);
		while (!mmu_lock_waiters(&vm->mmu_lock))
			sched_yield();
	}
}

static void *waiter_main(void *arg)
{
	struct scene *s = arg;
	while (!atomic_load(&s->go))
		sched_yield();
	smmu_mmu_lock(s->vm, SMMU_SITE_USER1);
	smmu_mmu_unlock(s->vm);
	return NULL;
}

static void scene_start(struct scene *s, smmu_vm *vm, uint64_t step, unsigned long queue_at)
{
	s->vm = vm;
	s->zapper = pthread_self();
	s->clk.now = 1000 * MS;
	s->step = step;
	s->queue_at = queue_at;
	atomic_init(&s->go, 0);
	mmu_lock_set_clock(&vm->mmu_lock, fake_now, &s->clk);
	assert_int_equal(smmu_set_hook(vm, scene_hook, s), 0);
	if (queue_at)
		assert_int_equal(pthread_create(&s->waiter, NULL, waiter_main, s), 0);
}

static void scene_end(struct scene *s)
{
	if (s->queue_at)
		assert_int_equal(pthread_join(s->waiter, NULL), 0);
	assert_int_equal(smmu_set_hook(s->vm, NULL, NULL), 0);
	mmu_lock_set_clock(&s->vm->mmu_lock, NULL, NULL);
}

#define NPAGES 64

/* A restarting zap_all with a vCPU queued at its first page: under FULL it lets the vCPU in at
 * once; under NONE and VOLUNTARY not before need_resched, 4 pages (4 ms) later; with no other
 * task on its CPU (slice 0), never: the vCPU waits the whole zap. */
static void zap_with_waiter(enum smmu_preempt_model model, uint64_t slice, unsigned long want_seen,
			    bool want_all)
{
	smmu_vcpu *vcpu;
	smmu_vm *vm = build_vm(SMMU_PROFILE_LINUX_TODAY, model, slice, NPAGES, &vcpu);
	struct scene s = { 0 };
	scene_start(&s, vm, 1 * MS, 1);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_RESTART, 0, &rep), 0);
	scene_end(&s);
	assert_true(s.got);
	printf("preempt %d slice %llu ms: the vCPU queued at page 1 got the lock after page %lu of %llu; "
	       "%llu breaks\n", model, (unsigned long long)(slice / MS), s.seen,
	       (unsigned long long)rep.pages_zapped, (unsigned long long)rep.lock_breaks);
	if (want_all) {
		assert_int_equal(s.seen, s.zapped);
		assert_int_equal(rep.lock_breaks, 0);
	} else {
		assert_int_equal(s.seen, want_seen);
	}
	smmu_vcpu_destroy(vcpu);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_zap_full_breaks_for_waiter(void **state)
{
	(void)state;
	zap_with_waiter(SMMU_PREEMPT_FULL, 4 * MS, 1, false);
}

static void test_zap_none_waits_for_slice(void **state)
{
	(void)state;
	zap_with_waiter(SMMU_PREEMPT_NONE, 4 * MS, 4, false);
}

static void test_zap_voluntary_waits_for_slice(void **state)
{
	(void)state;
	zap_with_waiter(SMMU_PREEMPT_VOLUNTARY, 4 * MS, 4, false);
}

static void test_zap_none_idle_cpu_never_breaks(void **state)
{
	(void)state;
	zap_with_waiter(SMMU_PREEMPT_NONE, 0, 0, true);
}

/* The fast zap's drain breaks on need_resched under NONE, not at every batch and not for a
 * waiter: with 1 ms a page and a 25 ms slice, a break every 25 pages where FULL would let the
 * waiter in at the first batch boundary (page 10). */
static void test_drain_none_breaks_per_slice(void **state)
{
	(void)state;
	smmu_vcpu *vcpu;
	smmu_vm *vm = build_vm(SMMU_PROFILE_LINUX_3_11, SMMU_PREEMPT_NONE, 25 * MS, NPAGES, &vcpu);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
	struct scene s = { 0 };
	scene_start(&s, vm, 1 * MS, 2); /* a waiter queued at page 2 */
	assert_int_equal(smmu_fast_zap_drain(vm, &rep), 0);
	scene_end(&s);
	printf("drain under NONE: %llu pages, %llu breaks, the waiter got in after page %lu\n",
	       (unsigned long long)rep.pages_zapped, (unsigned long long)rep.lock_breaks, s.seen);
	assert_int_equal(s.seen, 25);
	assert_true(rep.pages_zapped >= NPAGES);
	assert_int_equal(rep.lock_breaks, (s.zapped - 1) / 25);
	smmu_vcpu_destroy(vcpu);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- zap_all_commit_once -------------------------------------------------------------------- */

/* Breaks forced by the slice (2 pages each), no thread: today's profile flushes once for all
 * of them, 3.11's before each one. Both leave a clean audit. */
static void commit_rule(enum smmu_profile profile, enum smmu_zap_mode mode)
{
	smmu_vcpu *vcpu;
	smmu_vm *vm = build_vm(profile, SMMU_PREEMPT_NONE, 2 * MS, NPAGES, &vcpu);
	struct scene s = { 0 };
	scene_start(&s, vm, 1 * MS, 0);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_zap_all(vm, mode, 0, &rep), 0);
	scene_end(&s);
	printf("%s %s: %llu breaks, %llu remote flushes\n",
	       profile == SMMU_PROFILE_LINUX_TODAY ? "today" : "3.11", smmu_zap_mode_name(mode),
	       (unsigned long long)rep.lock_breaks, (unsigned long long)rep.remote_flushes);
	assert_true(rep.lock_breaks >= NPAGES / 2 - 1);
	if (profile == SMMU_PROFILE_LINUX_TODAY)
		assert_int_equal(rep.remote_flushes, 1);
	else
		assert_true(rep.remote_flushes >= rep.lock_breaks);
	smmu_vcpu_destroy(vcpu);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_commit_once_today_restart(void **state)
{
	(void)state;
	commit_rule(SMMU_PROFILE_LINUX_TODAY, SMMU_ZAP_RESTART);
}

static void test_commit_once_today_generation(void **state)
{
	(void)state;
	commit_rule(SMMU_PROFILE_LINUX_TODAY, SMMU_ZAP_GENERATION);
}

static void test_commit_per_break_3_11(void **state)
{
	(void)state;
	commit_rule(SMMU_PROFILE_LINUX_3_11, SMMU_ZAP_RESTART);
	commit_rule(SMMU_PROFILE_LINUX_3_11, SMMU_ZAP_GENERATION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waiter_breaks_only_full),
		cmocka_unit_test(test_slice_sets_need_resched),
		cmocka_unit_test(test_zap_full_breaks_for_waiter),
		cmocka_unit_test(test_zap_none_waits_for_slice),
		cmocka_unit_test(test_zap_voluntary_waits_for_slice),
		cmocka_unit_test(test_zap_none_idle_cpu_never_breaks),
		cmocka_unit_test(test_drain_none_breaks_per_slice),
		cmocka_unit_test(test_commit_once_today_restart),
		cmocka_unit_test(test_commit_once_today_generation),
		cmocka_unit_test(test_commit_per_break_3_11),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
