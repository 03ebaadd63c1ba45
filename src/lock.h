/*
 * mmu_lock: kvm->mmu_lock with spin_needbreak() and cond_resched_lock().
 *
 * A pthread spinlock is the lock word; in front of it, a ticket queue makes waiting FIFO, as the
 * kernel's own spinlocks are (ticket locks in 3.11, queued locks today) and pthread's are not.
 * Uncontended, a thread takes the spinlock directly (one load and a trylock); a thread that
 * finds it taken, or finds others queued, takes a ticket and waits its turn. needbreak() is
 * true while a ticket is outstanding. cond_resched() takes a ticket behind the waiters before
 * releasing, so each waiter gets the lock once before the breaker has it back: a break is a
 * real hand-off, and the breaker is not starved by a thread that retakes the lock in a loop.
 * Every wait and every stretch of holding is recorded per call site when statistics are built
 * in (SMMU_LOCK_STATS). The lock knows nothing of the MMU.
 *
 * When to break is the kernel's cond_resched_lock() rule, decided in one place
 * (mmu_lock_needbreak): need_resched() || spin_needbreak(), under the VM's preemption model
 * (enum smmu_preempt_model in shadowmmu/vm.h: spin_needbreak() sees waiters only under FULL;
 * need_resched() comes from a modelled scheduler slice, read from an injectable clock).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_LOCK_H
#define SMMU_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "histogram.h"
#include "shadowmmu/stats.h"
#include "shadowmmu/vm.h"

struct lock_site {
	struct histogram wait, hold;
	uint64_t breaks, handoffs;
	uint64_t remote_flushes; /* counted by the MMU, which flushes only under the lock */
	uint64_t remote_flush_ns;
	/* Remote requests made while the site held the lock that waited for vCPUs in guest mode:
	 * the time from the kicks to the last acknowledgment (recorded by the MMU). */
	struct histogram request_wait;
};

struct mmu_lock {
	pthread_spinlock_t spin;
	atomic_ulong next_ticket;   /* tickets handed out */
	atomic_ulong now_serving;   /* tickets whose holder has taken the lock (or may try now) */
	atomic_ulong acquisitions;  /* every successful acquisition */
	atomic_uintptr_t owner;     /* thread holding it (for lockdep-style assertions), or 0 */
	/* Protected by the lock itself: */
	enum smmu_site site;        /* who holds it now */
	uint64_t t_acquired;        /* when the current stretch began (ns) */
	struct lock_site sites[SMMU_SITE_COUNT];
	/* The preemption model, set once before the lock is used (mmu_lock_set_preempt): */
	enum smmu_preempt_model preempt;
	uint64_t resched_slice_ns;      /* need_resched() after this long on the CPU; 0 = never */
	uint64_t (*clock)(void *ctx);   /* the scheduler's clock (ns); NULL = smmu_now_ns */
	void *clock_ctx;
	uint64_t run_start;             /* protected by the lock: when the holder's slice began */
	/* Test hook (the fuzzer), internal: when nonzero, needbreak says "break" from the
	 * test_break_every-th check after the last break on, as if a waiter came then and waited to
	 * be served, so one thread drives the lock-break paths. */
	uint32_t test_break_every, test_break_count;
};

int mmu_lock_init(struct mmu_lock *l);
void mmu_lock_destroy(struct mmu_lock *l);
void mmu_lock_acquire(struct mmu_lock *l, enum smmu_site site);
void mmu_lock_release(struct mmu_lock *l);
/* Threads queued for the lock now. */
static inline unsigned long mmu_lock_waiters(const struct mmu_lock *l)
{
	struct mmu_lock *m = (struct mmu_lock *)l;
	return atomic_load_explicit(&m->next_ticket, memory_order_relaxed) -
	       atomic_load_explicit(&m->now_serving, memory_order_relaxed);
}
/* The preemption model (vm.h) and the slice after which need_resched() is set (0 = never).
 * Call before the lock is shared. */
void mmu_lock_set_preempt(struct mmu_lock *l, enum smmu_preempt_model model, uint64_t slice_ns);
/* Test hook: the clock the modelled scheduler reads (NULL = smmu_now_ns). Call before sharing
 * the lock, or while holding it. Lock statistics keep the real clock. */
void mmu_lock_set_clock(struct mmu_lock *l, uint64_t (*clock)(void *ctx), void *ctx);
/* need_resched(): the modelled scheduler wants the holder's CPU (its slice is used up). Holder. */
bool mmu_lock_need_resched(const struct mmu_lock *l);
/* spin_needbreak() / rwlock_needbreak(): a thread waits, and the kernel is preemptible. */
static inline bool mmu_lock_spin_needbreak(const struct mmu_lock *l)
{
	return l->preempt == SMMU_PREEMPT_FULL && mmu_lock_waiters(l) != 0;
}
/* cond_resched_lock()'s rule, need_resched() || spin_needbreak(): the one decision every
 * lock-breaking path makes (__cond_resched_lock; kvm_mmu_slot_remove_write_access and
 * slot_handle_level_range spell it out before flushing). Holder only. */
/* Test hook (the fuzzer): a forced break is due. */
bool mmu_lock_test_break(struct mmu_lock *l);
static inline bool mmu_lock_needbreak(const struct mmu_lock *l)
{
	return mmu_lock_spin_needbreak(l) || mmu_lock_need_resched(l) ||
	       (l->test_break_every && mmu_lock_test_break((struct mmu_lock *)l));
}
/* cond_resched_lock(): when needbreak, hand the lock to the waiters (if any) and retake it.
 * True if it broke. */
bool mmu_lock_cond_resched(struct mmu_lock *l);
/* True when the calling thread holds the lock. */
bool mmu_lock_held(const struct mmu_lock *l);
void mmu_lock_stats_reset(struct mmu_lock *l);
uint64_t smmu_now_ns(void);

#ifndef NDEBUG
#define lockdep_assert_held(l) \
	((void)(mmu_lock_held(l) || (smmu_assert_fail("mmu_lock not held", __FILE__, __LINE__, __func__), 0)))
#else
#define lockdep_assert_held(l) ((void)(l))
#endif
void smmu_assert_fail(const char *what, const char *file, int line, const char *func);

#endif
