/*
 * mmu_lock (src/lock.c, internal, and the strategy.h wrappers): ownership, needbreak and
 * cond_resched with and without a waiter, the hand-off of a lock break to a waiting thread, and
 * the per-site statistics.
 *
 * Synchronisation between threads is by polling with a deadline (never by sleeping and hoping);
 * the only sleep is the 1 ms hold whose measured length is checked.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmu.h"
#include "smmu_config.h"

#define DEADLINE_NS (10ull * 1000 * 1000 * 1000) /* a bound for polls, never reached when healthy */

/* Poll @cond until it holds or the deadline passes; fail the test on timeout. */
#define POLL_UNTIL(cond)                                                                    \
	do {                                                                                \
		uint64_t t_end_ = smmu_now_ns() + DEADLINE_NS;                              \
		while (!(cond)) {                                                           \
			if (smmu_now_ns() > t_end_)                                         \
				fail_msg("timed out waiting for %s", #cond);                \
			sched_yield();                                                      \
		}                                                                           \
	} while (0)

/* ---- a thread that takes the internal lock once ----------------------------------------------- */

struct one_shot {
	struct mmu_lock *l;
	enum smmu_site site;
	atomic_int started, acquired, held_inside, released;
};

static void *one_shot_thread(void *arg)
{
	struct one_shot *o = arg;
	atomic_store(&o->started, 1);
	mmu_lock_acquire(o->l, o->site);
	atomic_store(&o->held_inside, mmu_lock_held(o->l));
	atomic_store(&o->acquired, 1);
	mmu_lock_release(o->l);
	atomic_store(&o->released, 1);
	return NULL;
}

/* Start a thread that blocks on @l (held by the caller) and wait until it is counted a waiter. */
static void start_waiter(pthread_t *t, struct one_shot *o, struct mmu_lock *l, enum smmu_site site)
{
	memset(o, 0, sizeof(*o));
	o->l = l;
	o->site = site;
	assert_int_equal(pthread_create(t, NULL, one_shot_thread, o), 0);
	POLL_UNTIL(mmu_lock_waiters(l) > 0);
	assert_int_equal(atomic_load(&o->acquired), 0);
}

/* struct mmu_lock holds 28 histograms (over half a MiB): keep it off the stack. */
static struct mmu_lock *lock_new(void)
{
	struct mmu_lock *l = malloc(sizeof(*l));
	assert_non_null(l);
	assert_int_equal(mmu_lock_init(l), 0);
	return l;
}

static void lock_free(struct mmu_lock *l)
{
	mmu_lock_destroy(l);
	free(l);
}

struct held_probe {
	struct mmu_lock *l;
	int held;
};

static void *held_probe_thread(void *arg)
{
	struct held_probe *p = arg;
	p->held = mmu_lock_held(p->l);
	return NULL;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_acquire_release_owner(void **state)
{
	(void)state;
	struct mmu_lock *lp = lock_new();
	assert_false(mmu_lock_held(lp));
	mmu_lock_acquire(lp, SMMU_SITE_USER0);
	assert_true(mmu_lock_held(lp));
	/* Another thread does not hold it. */
	struct held_probe p = { .l = lp, .held = -1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, held_probe_thread, &p), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.held, 0);
	mmu_lock_release(lp);
	assert_false(mmu_lock_held(lp));
	/* Taken and released again, then by another thread that sees itself as the owner. */
	mmu_lock_acquire(lp, SMMU_SITE_USER1);
	assert_true(mmu_lock_held(lp));
	mmu_lock_release(lp);
	struct one_shot o;
	memset(&o, 0, sizeof(o));
	o.l = lp;
	o.site = SMMU_SITE_USER2;
	assert_int_equal(pthread_create(&t, NULL, one_shot_thread, &o), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(o.held_inside, 1);
	assert_false(mmu_lock_held(lp));
	assert_int_equal(atomic_load(&lp->acquisitions), 3);
	lock_free(lp);
}

static void test_needbreak(void **state)
{
	(void)state;
	struct mmu_lock *lp = lock_new();
	mmu_lock_acquire(lp, SMMU_SITE_USER0);
	assert_false(mmu_lock_needbreak(lp)); /* uncontended */
	pthread_t t;
	struct one_shot o;
	start_waiter(&t, &o, lp, SMMU_SITE_USER1);
	assert_true(mmu_lock_needbreak(lp)); /* a thread is blocked in acquire */
	assert_int_equal(atomic_load(&o.acquired), 0);
	mmu_lock_release(lp);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(o.acquired, 1);
	/* Nobody waits any more. */
	mmu_lock_acquire(lp, SMMU_SITE_USER0);
	assert_false(mmu_lock_needbreak(lp));
	mmu_lock_release(lp);
	lock_free(lp);
}

static void test_cond_resched(void **state)
{
	(void)state;
	struct mmu_lock *lp = lock_new();
	mmu_lock_acquire(lp, SMMU_SITE_USER0);
	/* Uncontended: no break, the lock stays held, nothing counted. */
	assert_false(mmu_lock_cond_resched(lp));
	assert_true(mmu_lock_held(lp));
	assert_int_equal(lp->sites[SMMU_SITE_USER0].breaks, 0);
	assert_int_equal(lp->sites[SMMU_SITE_USER0].handoffs, 0);

	/* With a waiter: the break releases, the waiter gets the lock, and the breaker retakes it. */
	pthread_t t;
	struct one_shot o;
	start_waiter(&t, &o, lp, SMMU_SITE_USER1);
	assert_true(mmu_lock_cond_resched(lp));
	assert_true(mmu_lock_held(lp));
	/* The hand-off: the waiter had the lock before the breaker got it back. */
	assert_int_equal(atomic_load(&o.acquired), 1);
	assert_int_equal(lp->sites[SMMU_SITE_USER0].breaks, 1);
	assert_true(lp->sites[SMMU_SITE_USER0].handoffs <= 1);
	/* The retaken stretch is attributed to the breaker's site again. */
	assert_int_equal(lp->site, SMMU_SITE_USER0);
	mmu_lock_release(lp);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* Stretches: USER0 held twice (before and after the break), USER1 once. */
#if SMMU_LOCK_STATS
	assert_int_equal(lp->sites[SMMU_SITE_USER0].hold.count, 2);
	assert_int_equal(lp->sites[SMMU_SITE_USER0].wait.count, 2);
	assert_int_equal(lp->sites[SMMU_SITE_USER1].hold.count, 1);
	assert_int_equal(lp->sites[SMMU_SITE_USER1].wait.count, 1);
#endif
	lock_free(lp);
}

/*
 * A break is a FIFO hand-off, and the breaker is not starved. A contender retakes the lock in a
 * tight loop; the breaker holds it and breaks 20 times. Each break must let the contender in
 * (a hand-off, counted) and give the lock back to the breaker after about one critical section
 * of the contender: a thread that retakes the lock in a loop queues behind the breaker's ticket.
 * (With a bare pthread spinlock the contender took the lock ~4 million times in 20 breaks.)
 */
struct looper {
	struct mmu_lock *l;
	atomic_int stop;
	atomic_ulong taken;
};

static void *looper_thread(void *arg)
{
	struct looper *c = arg;
	while (!atomic_load(&c->stop)) {
		mmu_lock_acquire(c->l, SMMU_SITE_USER1);
		atomic_fetch_add(&c->taken, 1);
		mmu_lock_release(c->l);
	}
	return NULL;
}

static void test_break_is_fifo_handoff(void **state)
{
	(void)state;
	enum { BREAKS = 20 };
	struct mmu_lock *lp = lock_new();
	struct looper c = { .l = lp };
	pthread_t t;
	mmu_lock_acquire(lp, SMMU_SITE_USER0);
	assert_int_equal(pthread_create(&t, NULL, looper_thread, &c), 0);
	unsigned long before = 0, most = 0;
	for (int i = 0; i < BREAKS; i++) {
		POLL_UNTIL(mmu_lock_needbreak(lp));
		before = atomic_load(&c.taken);
		assert_true(mmu_lock_cond_resched(lp));
		assert_true(mmu_lock_held(lp));
		unsigned long during = atomic_load(&c.taken) - before;
		if (during > most)
			most = during;
	}
	uint64_t breaks = lp->sites[SMMU_SITE_USER0].breaks, handoffs = lp->sites[SMMU_SITE_USER0].handoffs;
	atomic_store(&c.stop, 1);
	mmu_lock_release(lp);
	assert_int_equal(pthread_join(t, NULL), 0);
	lock_free(lp);
	assert_int_equal(breaks, BREAKS);
	assert_int_equal(handoffs, BREAKS); /* a waiter was queued at every break */
	/* One critical section per break: the contender's next try queues behind the breaker. */
	if (most > 2)
		fail_msg("the contender took the lock %lu times in one break (expected 1)", most);
}

/* Through the public API on a VM: smmu_needbreak / smmu_cond_resched_lock. */
struct vm_waiter {
	smmu_vm *vm;
	atomic_int acquired;
};

static void *vm_waiter_thread(void *arg)
{
	struct vm_waiter *w = arg;
	smmu_mmu_lock(w->vm, SMMU_SITE_USER1);
	atomic_store(&w->acquired, 1);
	smmu_mmu_unlock(w->vm);
	return NULL;
}

static void test_public_needbreak_cond_resched(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_stats_reset(vm), 0);
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	assert_false(smmu_needbreak(vm));
	assert_false(smmu_cond_resched_lock(vm));
	struct vm_waiter w = { .vm = vm };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, vm_waiter_thread, &w), 0);
	POLL_UNTIL(smmu_needbreak(vm));
	assert_true(smmu_cond_resched_lock(vm));
	assert_int_equal(atomic_load(&w.acquired), 1);
	assert_false(smmu_needbreak(vm));
	smmu_mmu_unlock(vm);
	assert_int_equal(pthread_join(t, NULL), 0);
	struct smmu_site_stats s;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER0, &s), 0);
	assert_int_equal(s.breaks, 1);
	assert_int_equal(s.handoffs, 1);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- the hand-off during a long zap loop ------------------------------------------------------ */

struct contender {
	smmu_vm *vm;
	atomic_int stop;
	atomic_int in_zap;          /* written by the zapper while it holds the lock */
	atomic_ulong total;         /* acquisitions by the contender */
	atomic_ulong during_zap;    /* ... of which while the zapper was inside its loop */
};

static void *contender_thread(void *arg)
{
	struct contender *c = arg;
	while (!atomic_load(&c->stop)) {
		smmu_mmu_lock(c->vm, SMMU_SITE_USER1);
		atomic_fetch_add(&c->total, 1);
		if (atomic_load(&c->in_zap))
			atomic_fetch_add(&c->during_zap, 1);
		smmu_mmu_unlock(c->vm);
	}
	return NULL;
}

static void test_handoff_during_zap_loop(void **state)
{
	(void)state;
	enum { N = 2000, FORCE_EVERY = 100 };
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_stats_reset(vm), 0);
	struct contender c = { .vm = vm };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, contender_thread, &c), 0);

	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	atomic_store(&c.in_zap, 1);
	volatile uint64_t work = 0;
	uint64_t breaks = 0, forced = 0;
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < 200; k++) /* a page's worth of "zapping" */
			work += (uint64_t)k;
		if (i % FORCE_EVERY == 0) {
			/* Every so often make sure the contender is waiting, so breaks must happen. */
			POLL_UNTIL(smmu_needbreak(vm));
			forced++;
		}
		if (smmu_cond_resched_lock(vm))
			breaks++;
		assert_true(mmu_lock_held(&vm->mmu_lock));
	}
	atomic_store(&c.in_zap, 0);
	smmu_mmu_unlock(vm);
	assert_true(work > 0);
	atomic_store(&c.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);

	/* The contender got the lock during the zapper's breaks. */
	assert_true(forced == N / FORCE_EVERY);
	assert_true(breaks >= forced);
	assert_true(atomic_load(&c.during_zap) > 0);

	struct smmu_site_stats z, w;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER0, &z), 0);
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER1, &w), 0);
	assert_int_equal(z.breaks, breaks);
	assert_true(z.handoffs > 0);
	assert_true(z.handoffs <= z.breaks);
	assert_int_equal(w.breaks, 0);
#if SMMU_LOCK_STATS
	/* One stretch before the first break and one after each: hold and wait counts agree. */
	assert_int_equal(z.hold.count, 1 + breaks);
	assert_int_equal(z.wait.count, 1 + breaks);
	assert_int_equal(w.hold.count, atomic_load(&c.total));
	assert_int_equal(w.wait.count, atomic_load(&c.total));
#endif
	printf("hand-off: %d iterations, %llu breaks, %llu hand-offs, %lu contender acquisitions in breaks\n",
	       N, (unsigned long long)breaks, (unsigned long long)z.handoffs,
	       (unsigned long)atomic_load(&c.during_zap));
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- per-site statistics ------------------------------------------------------------------- */

static void test_site_counts(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_stats_reset(vm), 0);
	for (int i = 0; i < 5; i++) {
		smmu_mmu_lock(vm, SMMU_SITE_USER2);
		smmu_mmu_unlock(vm);
	}
	for (int i = 0; i < 3; i++) {
		smmu_mmu_lock(vm, SMMU_SITE_USER3);
		assert_false(smmu_cond_resched_lock(vm)); /* nobody waits: no break */
		smmu_mmu_unlock(vm);
	}
	struct smmu_site_stats s2, s3, s0;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER2, &s2), 0);
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER3, &s3), 0);
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER0, &s0), 0);
	assert_int_equal(s2.breaks, 0);
	assert_int_equal(s3.breaks, 0);
	assert_int_equal(s3.handoffs, 0);
#if SMMU_LOCK_STATS
	assert_int_equal(s2.hold.count, 5);
	assert_int_equal(s2.wait.count, 5);
	assert_int_equal(s3.hold.count, 3);
	assert_int_equal(s3.wait.count, 3);
	assert_true(s2.hold.min <= s2.hold.p50 && s2.hold.p50 <= s2.hold.max);
	/* The raw histogram export holds the same samples. */
	uint64_t lo[64], cnt[64];
	int nb = smmu_stats_hist(vm, SMMU_SITE_USER2, true, lo, cnt, 64);
	assert_true(nb > 0 && nb <= 64);
	uint64_t total = 0;
	for (int i = 0; i < nb; i++) {
		total += cnt[i];
		if (i)
			assert_true(lo[i] > lo[i - 1]);
	}
	assert_int_equal(total, 5);
	assert_int_equal(smmu_stats_hist(vm, SMMU_SITE_USER2, true, NULL, NULL, 0), nb);
#else
	assert_int_equal(s2.hold.count, 0);
	assert_int_equal(s2.wait.count, 0);
#endif
	/* Sites nobody used stay empty. */
	assert_int_equal(s0.hold.count, 0);
	assert_int_equal(s0.wait.count, 0);
	smmu_vm_destroy(vm);
}

static void assert_all_sites_zero(smmu_vm *vm)
{
	for (int site = 0; site < SMMU_SITE_COUNT; site++) {
		struct smmu_site_stats s;
		memset(&s, 0xff, sizeof(s));
		assert_int_equal(smmu_stats_get(vm, (enum smmu_site)site, &s), 0);
		assert_int_equal(s.hold.count, 0);
		assert_int_equal(s.hold.sum, 0);
		assert_int_equal(s.hold.min, 0);
		assert_int_equal(s.hold.max, 0);
		assert_int_equal(s.hold.p50, 0);
		assert_int_equal(s.hold.p999, 0);
		assert_int_equal(s.wait.count, 0);
		assert_int_equal(s.wait.sum, 0);
		assert_int_equal(s.wait.min, 0);
		assert_int_equal(s.wait.max, 0);
		assert_int_equal(s.breaks, 0);
		assert_int_equal(s.handoffs, 0);
		/* Whatever fields the structure grows, all of them read zero. */
		struct smmu_site_stats zero;
		memset(&zero, 0, sizeof(zero));
		assert_memory_equal(&s, &zero, sizeof(s));
		assert_int_equal(smmu_stats_hist(vm, (enum smmu_site)site, true, NULL, NULL, 0), 0);
		assert_int_equal(smmu_stats_hist(vm, (enum smmu_site)site, false, NULL, NULL, 0), 0);
	}
}

static void test_stats_reset(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 2048, 1024, 64);
	tl_map_and_fault(&g, 0x400000, 16, 8, SMMU_ACC_WRITE);
	/* Some breaks and hand-offs too. */
	smmu_mmu_lock(g.vm, SMMU_SITE_USER0);
	struct vm_waiter w = { .vm = g.vm };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, vm_waiter_thread, &w), 0);
	POLL_UNTIL(smmu_needbreak(g.vm));
	assert_true(smmu_cond_resched_lock(g.vm));
	smmu_mmu_unlock(g.vm);
	assert_int_equal(pthread_join(t, NULL), 0);
	struct smmu_site_stats s;
	assert_int_equal(smmu_stats_get(g.vm, SMMU_SITE_USER0, &s), 0);
	assert_int_equal(s.breaks, 1);
#if SMMU_LOCK_STATS
	assert_int_equal(smmu_stats_get(g.vm, SMMU_SITE_FAULT, &s), 0);
	assert_true(s.hold.count >= 8);
#endif
	assert_int_equal(smmu_stats_reset(g.vm), 0);
	assert_all_sites_zero(g.vm);
	/* Counting starts again after the reset. */
	tl_map_and_fault(&g, 0x800000, 32, 2, SMMU_ACC_WRITE);
#if SMMU_LOCK_STATS
	assert_int_equal(smmu_stats_get(g.vm, SMMU_SITE_FAULT, &s), 0);
	assert_true(s.hold.count >= 2);
#endif
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* Hold and wait times measure real time: a 1 ms hold reads at least 500 µs (not a speed goal). */
struct sleeper_ctx {
	smmu_vm *vm;
	atomic_int acquired;
};

static void *stats_waiter_thread(void *arg)
{
	struct sleeper_ctx *c = arg;
	smmu_mmu_lock(c->vm, SMMU_SITE_USER3);
	atomic_store(&c->acquired, 1);
	smmu_mmu_unlock(c->vm);
	return NULL;
}

static void test_hold_and_wait_times(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_stats_reset(vm), 0);
	const struct timespec ms = { .tv_sec = 0, .tv_nsec = 1000000 };

	smmu_mmu_lock(vm, SMMU_SITE_USER2);
	nanosleep(&ms, NULL);
	smmu_mmu_unlock(vm);

	/* A waiter that waits while the holder sleeps 1 ms after it started waiting. */
	struct sleeper_ctx c = { .vm = vm };
	pthread_t t;
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	assert_int_equal(pthread_create(&t, NULL, stats_waiter_thread, &c), 0);
	POLL_UNTIL(smmu_needbreak(vm));
	nanosleep(&ms, NULL);
	smmu_mmu_unlock(vm);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(c.acquired, 1);

	struct smmu_site_stats h, w;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER2, &h), 0);
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER3, &w), 0);
#if SMMU_LOCK_STATS
	assert_int_equal(h.hold.count, 1);
	assert_true(h.hold.min >= 500000);
	assert_true(h.hold.max >= 500000);
	assert_true(h.hold.sum >= 500000);
	assert_true(h.hold.p50 >= 500000);
	assert_int_equal(w.wait.count, 1);
	assert_true(w.wait.max >= 500000);
	assert_true(w.wait.sum >= 500000);
	/* The holder of USER0 also held it about 1 ms. */
	struct smmu_site_stats z;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER0, &z), 0);
	assert_true(z.hold.max >= 500000);
#else
	/* Without lock statistics every figure reads zero. */
	assert_int_equal(h.hold.count, 0);
	assert_int_equal(h.hold.max, 0);
	assert_int_equal(w.wait.count, 0);
#endif
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acquire_release_owner),
		cmocka_unit_test(test_needbreak),
		cmocka_unit_test(test_cond_resched),
		cmocka_unit_test(test_break_is_fifo_handoff),
		cmocka_unit_test(test_public_needbreak_cond_resched),
		cmocka_unit_test(test_handoff_during_zap_loop),
		cmocka_unit_test(test_site_counts),
		cmocka_unit_test(test_stats_reset),
		cmocka_unit_test(test_hold_and_wait_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
