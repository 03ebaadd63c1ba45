/*
 * mmu_lock: a spinlock with needbreak and a cond_resched that really hands the lock over.
 *
 * pthread spinlocks are not fair: a thread that releases and at once retakes the lock usually
 * wins against a waiter on another core, so a naive lock break lets nobody in. Here a breaking
 * thread releases the lock and then waits, without touching it, until the acquisition counter
 * moves (a waiter got in) or no thread waits any more; only then does it queue again.
 *
 * SPDX-License-Identifier: MIT
 */
#include "lock.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smmu_config.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

static uint64_t clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/*
 * The lock reads the clock two or three times per acquisition, so the clock's cost shows in
 * every hold it measures. The TSC (invariant on every x86-64 this runs on) costs a third of
 * clock_gettime; it is calibrated once against CLOCK_MONOTONIC over 5 ms.
 */
static uint64_t tsc_mult; /* ns per tick, 32.32 fixed point */
static uint64_t tsc_base_ticks, tsc_base_ns;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static void tsc_calibrate(void)
{
	uint64_t n0 = clock_ns(), t0 = __builtin_ia32_rdtsc(), n1, t1;
	do {
		n1 = clock_ns();
		t1 = __builtin_ia32_rdtsc();
	} while (n1 - n0 < 5000000);
	tsc_mult = t1 > t0 ? (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0)) : 0;
	tsc_base_ticks = t1;
	tsc_base_ns = n1;
}

uint64_t smmu_now_ns(void)
{
	pthread_once(&tsc_once, tsc_calibrate);
	if (!tsc_mult)
		return clock_ns();
	uint64_t t = __builtin_ia32_rdtsc();
	return tsc_base_ns + (uint64_t)(((unsigned __int128)(t - tsc_base_ticks) * tsc_mult) >> 32);
}
#else
uint64_t smmu_now_ns(void) { return clock_ns(); }
#endif

void smmu_assert_fail(const char *what, const char *file, int line, const char *func)
{
	fprintf(stderr, "libshadowmmu: %s:%d: %s: assertion failed: %s\n", file, line, func, what);
	abort();
}

static uintptr_t self_id(void) { return (uintptr_t)pthread_self(); }

int mmu_lock_init(struct mmu_lock *l)
{
	memset(l, 0, sizeof(*l));
	int r = pthread_spin_init(&l->spin, PTHREAD_PROCESS_PRIVATE);
	if (r)
		return -r;
	mmu_lock_stats_reset(l);
	return 0;
}

void mmu_lock_destroy(struct mmu_lock *l) { pthread_spin_destroy(&l->spin); }

void mmu_lock_set_preempt(struct mmu_lock *l, enum smmu_preempt_model model, uint64_t slice_ns)
{
	l->preempt = model;
	l->resched_slice_ns = slice_ns;
}

void mmu_lock_set_clock(struct mmu_lock *l, uint64_t (*clock)(void *ctx), void *ctx)
{
	l->clock = clock;
	l->clock_ctx = ctx;
}

static uint64_t sched_clock(const struct mmu_lock *l) { return l->clock ? l->clock(l->clock_ctx) : smmu_now_ns(); }

bool mmu_lock_need_resched(const struct mmu_lock *l)
{
	return l->resched_slice_ns && sched_clock(l) - l->run_start >= l->resched_slice_ns;
}

/* The holder's slice begins: it took the lock, or came back from a resched break. */
static void slice_start(struct mmu_lock *l)
{
	if (l->resched_slice_ns)
		l->run_start = sched_clock(l);
}

void mmu_lock_stats_reset(struct mmu_lock *l)
{
	for (int i = 0; i < SMMU_SITE_COUNT; i++) {
		hist_reset(&l->sites[i].wait);
		hist_reset(&l->sites[i].hold);
		l->sites[i].breaks = 0;
		l->sites[i].handoffs = 0;
		l->sites[i].remote_flushes = 0;
		l->sites[i].remote_flush_ns = 0;
		hist_reset(&l->sites[i].request_wait);
	}
}

/* Wait for @ticket's turn, then for the spinlock, then admit the next ticket. Yield now and
 * then: a 2-core machine may run more threads than cores. */
static void ticket_wait(struct mmu_lock *l, unsigned long ticket)
{
	unsigned spins = 0;
	while (atomic_load_explicit(&l->now_serving, memory_order_acquire) != ticket) {
		cpu_relax();
		if ((++spins & 255) == 0)
			sched_yield();
	}
	while (pthread_spin_trylock(&l->spin) != 0) {
		cpu_relax();
		if ((++spins & 255) == 0)
			sched_yield();
	}
	atomic_store_explicit(&l->now_serving, ticket + 1, memory_order_release);
}

static void on_acquired(struct mmu_lock *l, enum smmu_site site, uint64_t t0, bool contended)
{
	/* Only the holder writes the counter: a load and a store are enough. */
	atomic_store_explicit(&l->acquisitions,
			      atomic_load_explicit(&l->acquisitions, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&l->owner, self_id(), memory_order_relaxed);
	l->site = site;
#if SMMU_LOCK_STATS
	uint64_t t1 = contended ? smmu_now_ns() : t0;
	hist_record(&l->sites[site].wait, t1 - t0);
	l->t_acquired = t1;
#else
	(void)t0;
	(void)contended;
#endif
}

void mmu_lock_acquire(struct mmu_lock *l, enum smmu_site site)
{
#if SMMU_LOCK_STATS
	uint64_t t0 = smmu_now_ns();
#else
	uint64_t t0 = 0;
#endif
	/* Fast path: nobody queued and the spinlock free. */
	bool contended = mmu_lock_waiters(l) != 0 || pthread_spin_trylock(&l->spin) != 0;
	if (contended)
		ticket_wait(l, atomic_fetch_add_explicit(&l->next_ticket, 1, memory_order_relaxed));
	on_acquired(l, site, t0, contended);
	slice_start(l);
}

static void end_stretch(struct mmu_lock *l)
{
#if SMMU_LOCK_STATS
	hist_record(&l->sites[l->site].hold, smmu_now_ns() - l->t_acquired);
#else
	(void)l;
#endif
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
}

void mmu_lock_release(struct mmu_lock *l)
{
	end_stretch(l);
	pthread_spin_unlock(&l->spin);
}

/* The test hook's answer: break from the test_break_every-th check since the last break on. */
bool mmu_lock_test_break(struct mmu_lock *l) { return ++l->test_break_count >= l->test_break_every; }

bool mmu_lock_cond_resched(struct mmu_lock *l)
{
	bool resched = mmu_lock_need_resched(l);
	if (!resched && !mmu_lock_needbreak(l))
		return false;
	enum smmu_site site = l->site;
	/* Queue behind the waiters before letting go: each of them goes first. */
	unsigned long serving = atomic_load_explicit(&l->now_serving, memory_order_relaxed);
	unsigned long ticket = atomic_fetch_add_explicit(&l->next_ticket, 1, memory_order_relaxed);
	l->sites[site].breaks++;
	l->test_break_count = 0;
	end_stretch(l);
	pthread_spin_unlock(&l->spin);
#if SMMU_LOCK_STATS
	uint64_t t0 = smmu_now_ns();
#else
	uint64_t t0 = 0;
#endif
	ticket_wait(l, ticket);
	on_acquired(l, site, t0, true);
	if (resched) /* it left its CPU to the other task: a new slice when it is back */
		slice_start(l);
	if (ticket != serving) /* tickets ahead of ours were served while we were out */
		l->sites[site].handoffs++;
	return true;
}

bool mmu_lock_held(const struct mmu_lock *l)
{
	return atomic_load_explicit(&((struct mmu_lock *)l)->owner, memory_order_relaxed) == self_id();
}
