/*
 * libshadowmmu — invalidation: zap_all, the generation-bump fast zap, memslot flush.
 *
 * Each call takes mmu_lock itself (the caller must not hold it) and fills a report of what it
 * did; the lock's hold and wait times land in the VM's statistics under the call's site.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_ZAP_H
#define SHADOWMMU_ZAP_H

#include "common.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What an invalidation did. */
struct smmu_zap_report {
	uint64_t pages_zapped;   /**< prepare_zap calls that took a page off the active list */
	uint64_t sptes_dropped;  /**< leaf sptes dropped through rmaps (rmap-based strategies) */
	uint64_t lock_breaks;    /**< cond_resched_lock calls that released the lock */
	uint64_t rounds;         /**< walks started (1 + restarts) */
	uint64_t remote_flushes; /**< kvm_flush_remote_tlbs calls */
	uint64_t total_ns;       /**< wall time of the call */
	bool completed;          /**< false when a round limit stopped it (SMMU_ZAP_RESTART) */
	uint64_t restarts;       /**< the fast zap's drain: walks restarted from the tail after a
				  *   zap, not at a lock break (not in rounds): 3.11 restarts after
				  *   every page it listed, today only when unsync children went too */
};

/**
 * Zap every shadow page (kvm_mmu_zap_all) in @p mode.
 *
 * RESTART and GENERATION break the lock where cond_resched_lock would: on need_resched, or for a
 * waiting thread on a preemptible kernel only (config.preempt, config.resched_slice_ns). Under
 * the 3.11 profile they commit (flush and free) what they zapped before every break; under
 * today's they keep it until one commit at the end, as today's kvm_mmu_zap_all does.
 * The seed thread's proposal (GENERATION) breaks only `if (spin_needbreak())`: KVM's walks use
 * cond_resched_lock, which also breaks on need_resched. The two agree with resched_slice_ns = 0;
 * with a slice, NONE/VOLUNTARY give KVM's behaviour, and the proposal as written would never
 * break there (run it with resched_slice_ns = 0 to see that).
 * @param max_rounds for SMMU_ZAP_RESTART: give up after this many walks (0 = no limit), so a
 *        test of the livelock ends; the report then says completed = false. Ignored otherwise.
 * @param rep may be NULL.
 * @return 0; -EINVAL (NULL vm, unknown mode); -EAGAIN (round limit hit: not all pages zapped).
 */
SMMU_API int smmu_zap_all(smmu_vm *vm, enum smmu_zap_mode mode, uint64_t max_rounds,
			  struct smmu_zap_report *rep);

/**
 * Fast zap (kvm_mmu_invalidate_zap_all_pages, Linux 3.11; kvm_mmu_zap_all_fast today): under
 * mmu_lock bump mmu_valid_gen and request an MMU reload from every vCPU, then zap the obsolete
 * pages from the tail of active_mmu_pages in batches of config.zap_batch, breaking the lock
 * between batches. Pages a bump alone (smmu_fast_zap_bump) left obsolete are drained with the
 * new ones. mmu_valid_gen counts the bumps in both profiles; today's KVM toggles it between 0
 * and 1, its low bit (see smmu_fast_zap_bump).
 * @return 0 or -EINVAL.
 */
SMMU_API int smmu_fast_zap(smmu_vm *vm, struct smmu_zap_report *rep);

/**
 * Fast zap's locked step alone: bump the generation and request reloads. The obsolete pages stay
 * listed until smmu_fast_zap_drain() (or smmu_fast_zap()) zaps them.
 *
 * Under the today profile a bump is refused while obsolete pages of an earlier bump are still
 * listed: today's kvm_mmu_zap_all_fast toggles mmu_valid_gen between 0 and 1 and drains in the
 * same critical section, so a second bump before the drain would make those pages current
 * again; the kernel never meets that state, and the library does not create it. The 3.11
 * profile increments (kvm_mmu_invalidate_zap_all_pages) and accepts it: the pages of both
 * generations are obsolete and the next drain zaps them all.
 * @return 0; -EINVAL (NULL vm); -EBUSY (today profile: obsolete pages wait for a drain; nothing
 *         changed, the report is not written).
 */
SMMU_API int smmu_fast_zap_bump(smmu_vm *vm, struct smmu_zap_report *rep);

/** Fast zap's drain alone (kvm_zap_obsolete_pages). @return 0 or -EINVAL. */
SMMU_API int smmu_fast_zap_drain(smmu_vm *vm, struct smmu_zap_report *rep);

/**
 * Flush slot @p id's shadow state with @p strategy (kvm_arch_flush_shadow_memslot), without
 * deleting it. The slot stays usable.
 *
 * SMMU_FLUSH_RMAP_ONLY (the seed thread's bug) drops the slot's leaf sptes and makes every page
 * obsolete, but leaves the pages valid and still counted in lpage_info, the indirect ones that
 * shadow the slot's guest tables included (no rmap reaches a table with no leaf in the slot).
 * On a slot that is kept those counts are right for pages that still exist, and the audit
 * reports nothing. It shows once the slot goes, with the VM's flush strategy set to RMAP_ONLY:
 * - after smmu_memslot_delete (or smmu_memslot_move elsewhere), each such page is a counted
 *   page whose gfn lies in no slot: invariant 9, once per page;
 * - once a slot is created over those gfns again, its fresh lpage_info lacks their counts:
 *   invariant 4 at each large page holding them (found = expected - pages); and when those
 *   pages are zapped later (a guest write to the table, a fast zap's drain, reclaim),
 *   unaccount_shadowed takes their counts from the new slot, which can go below zero (invariant
 *   4 again, found = expected - pages: -6 for six tables in a 2 MiB page with no edge bit).
 * SMMU_FLUSH_RMAP_REBUILD resets lpage_info so that the obsolete pages no longer count; neither
 * invariant is broken, and the obsolete pages' tables are left unprotected, which is harmless
 * (audit.h, invariant 5).
 * @return 0; -EINVAL (NULL, unknown strategy); -ENOENT (unknown slot).
 */
SMMU_API int smmu_memslot_flush(smmu_vm *vm, int id, enum smmu_flush_strategy strategy,
				struct smmu_zap_report *rep);

/** Printable names, or "?" when out of range. */
SMMU_API const char *smmu_zap_mode_name(enum smmu_zap_mode mode);
SMMU_API const char *smmu_flush_strategy_name(enum smmu_flush_strategy s);

#ifdef __cplusplus
}
#endif
#endif
