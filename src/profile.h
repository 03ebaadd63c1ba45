/*
 * libshadowmmu internals — the profile: every rule where Linux 3.11's KVM and today's differ,
 * named once, with each era's value in one table (profile.c). A path that behaves differently
 * per era reads its rule here (vm->rules->NAME); no path tests the profile enum itself.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_PROFILE_H
#define SMMU_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "shadowmmu/vm.h"

/* One field a rule. Keep each rule's comment saying what each era does and where (KVM function). */
struct smmu_rules {
	const char *name;       /* "linux-3.11", "linux-today", "linux-6.1" */
	/* kvm_page_table_hashfn: gfn & (buckets - 1) (3.11) or hash_64 (today) */
	enum smmu_hash_fn hash_fn;
	/* KVM_NUM_MMU_PAGES_HASH... : 1 << KVM_MMU_HASH_SHIFT, 10 (3.11) or 12 (today) */
	uint32_t hash_buckets;
	/* __kvm_set_memory_region, KVM_MR_MOVE. 3.11 calls kvm_arch_create_memslot for KVM_MR_CREATE
	 * only: the moved slot keeps old.arch, the rmap and lpage_info arrays laid out for the old
	 * base, with whatever counts the flush left in them. Today kvm_arch_prepare_memory_region →
	 * kvm_alloc_memslot_metadata allocates fresh ones for CREATE and MOVE (the 2020 fix "KVM: x86:
	 * Allocate new rmap and large page tracking when moving memslot"). Where the new base needs
	 * more entries than the kept arrays hold, 3.11 indexes past their end; the model cannot, and
	 * allocates fresh arrays there as today's KVM does. */
	bool move_keeps_arch;
	/* Reclaiming the oldest pages (kvm_mmu_change_mmu_pages, make_mmu_pages_available). 3.11's
	 * prepare_zap_oldest_mmu_page zaps the tail page even when it is a root in use (it is only
	 * marked invalid, frees nothing, and every vCPU reloads), one step at a time until
	 * KVM_REFILL_PAGES are free, counting each step in mmu_recycled. Today's
	 * kvm_mmu_zap_oldest_mmu_pages passes over roots in use, zaps until KVM_REFILL_PAGES -
	 * available pages went to the invalid list, and adds those pages to mmu_recycled. */
	bool zap_oldest_skips_roots;
	/* Page fault, once mmu_lock is taken: today's is_page_fault_stale retries a fault whose root
	 * was zapped or made obsolete since the vCPU loaded it (the reload request is pending); 3.11's
	 * FNAME(page_fault) / tdp_page_fault have no such check and map under that root. */
	bool fault_checks_stale_root;
	/* A fault on a gfn of a slot being deleted or moved (KVM_MEMSLOT_INVALID): today's
	 * kvm_faultin_pfn retries it; in 3.11 __gfn_to_hva_many gives KVM_HVA_ERR_BAD, so the pfn is
	 * KVM_PFN_NOSLOT and the gfn is treated as MMIO (handle_abnormal_pfn, set_mmio_spte). */
	bool fault_invalid_slot_retries;
	/* Shadow paging's leaf size. 3.11's FNAME(page_fault) picks it before FNAME(fetch) (mapping_level
	 * on the walked gfn), so a table shadowed by that very fetch may lie inside the large page:
	 * set_spte then refuses a writable large spte where has_wrprotected_page (the guest refaults).
	 * Today's FNAME(fetch) calls kvm_mmu_hugepage_adjust after the indirect pages are made. */
	bool fault_level_after_fetch;
	/* spte_write_protect on a writable large spte (shadowing a guest table: rmap_write_protect;
	 * dirty logging: kvm_mmu_slot_remove_write_access): 3.11 drops it (__drop_large_spte); today's
	 * clears its W bit like any other spte. Neither touches a read-only large spte. */
	bool wrprot_drops_large_spte;
	/* kvm_mmu_slot_remove_write_access (dirty logging turned on): 3.11 flushes remote TLBs before
	 * every lock break, whether anything changed since the last flush or not, and once at the end;
	 * today's walk_slot_rmaps(..., flush_on_yield = false) never flushes at a break, and
	 * kvm_mmu_slot_apply_flags flushes once after the walk. */
	bool slot_wrprot_flush_at_break;
	/* kvm_mmu_notifier_release → kvm_arch_flush_shadow_all: 3.11's is the fast invalidate
	 * (kvm_mmu_invalidate_zap_all_pages: bump, reload, drain the obsolete pages); today's is
	 * kvm_mmu_zap_all. */
	bool release_fast_zaps;
	/* The MMU notifier's range unmap: 3.11's kvm_unmap_hva_range (kvm_handle_hva_range) walks the
	 * rmaps without ever breaking mmu_lock; today's kvm_unmap_gfn_range →
	 * __kvm_rmap_zap_gfn_range(..., can_yield = range->may_block) yields on contention, flushing
	 * what it dropped first. */
	bool notifier_unmap_breaks_lock;
	/*
	 * A lock-breaking kvm_mmu_zap_all (SMMU_ZAP_RESTART, SMMU_ZAP_GENERATION): true keeps the
	 * invalid list across lock breaks, with no flush before a break, and commits (flushes and
	 * frees) once at the end. That is today's kvm_mmu_zap_all (5.1's cond_resched_lock, since
	 * 5.12 cond_resched_rwlock_write, then goto restart; one kvm_mmu_commit_zap_page after the
	 * walk), as kvm_zap_obsolete_pages does in both eras. false commits before every break.
	 * 3.11's kvm_mmu_zap_all never breaks the lock, so 3.11 has no value of its own: its
	 * profile keeps the model's first reading of the seed thread's proposal, whose pseudo-code
	 * breaks after zap_page and says nothing of the commit; it matches 3.11's own lock-breaking
	 * walk, kvm_mmu_slot_remove_write_access, which flushes before cond_resched_lock.
	 */
	bool zap_all_commit_once;
	/* pte prefetch after a fault whose spte came out unchanged (another vCPU had installed it):
	 * today's mmu_set_spte returns RET_PF_SPURIOUS and FNAME(fetch) / direct_map return before
	 * FNAME(pte_prefetch) / direct_pte_prefetch; 3.11's FNAME(fetch) and __direct_map prefetch
	 * after every mmu_set_spte. */
	bool prefetch_skips_spurious;
	/* Dirty logging turned off (a flags-only change): today's kvm_mmu_slot_apply_flags calls
	 * kvm_mmu_zap_collapsible_sptes, which drops every spte of a direct page at 4K or 2M whose
	 * level is below kvm_mmu_max_mapping_level for the page's gfn (lpage_info and the host page
	 * size), flushing once at the end; later faults map them large again. 3.11's
	 * kvm_arch_commit_memory_region acts only when logging is turned on: the small sptes stay. */
	bool log_off_zaps_collapsible;
	/* pf_fixed (faults_fixed): today's kvm_mmu_do_page_fault counts a fault only when it returns
	 * RET_PF_FIXED: not when mmu_set_spte returns RET_PF_EMULATE (a write refused because the gfn
	 * is a shadowed guest table: the spte is installed read-only and the write emulated) or
	 * RET_PF_SPURIOUS (the spte came out unchanged). 3.11's FNAME(page_fault) and the direct
	 * fault paths count every fault that reached FNAME(fetch) / __direct_map, emulated or not. */
	bool pf_fixed_only_if_fixed;
	/* The Dirty bit of a writable leaf spte: today's make_spte sets it (spte_shadow_dirty_mask)
	 * unless it overwrites an spte that is writable already (it jumps past it), so a fault that
	 * rebuilds such an spte clears D: not RET_PF_SPURIOUS, and mmu_spte_update flushes
	 * (kvm_flush_remote_tlbs_with_address from mmu_set_spte). 3.11's set_spte sets no D bit. */
	bool spte_dirty_on_write;
	/* Unsync pages (unsync.c). A prefetched spte (pte prefetch, INVLPG's update) of a gfn that
	 * sync level-1 pages shadow: today's mmu_try_to_unsync_pages returns -EEXIST for a prefetch
	 * and the spte is write-protected; 3.11's set_spte → mmu_need_write_protect unsyncs them as
	 * for a fault (speculative does not matter there). */
	bool prefetch_may_unsync;
	/* kvm_mmu_get_page for a page above level 1 meeting unsync pages of its gfn: today's
	 * __kvm_mmu_find_shadow_page zaps each unsync page of the gfn it meets in the bucket walk;
	 * 3.11 syncs them all (kvm_sync_pages, zapping those that fail) when it creates the page. */
	bool get_higher_zaps_unsync;
	/* The flush after a sync: 3.11's __kvm_sync_page flushes the syncing vCPU's own TLB
	 * (kvm_mmu_flush_tlb) after each page; today's mmu_sync_children / kvm_mmu_get_page flush
	 * remote TLBs once when a synced spte needs it (kvm_mmu_remote_flush_or_zap). Also the lock
	 * break in mmu_sync_children, after each batch: 3.11 commits the batch's zaps, then
	 * cond_resched_lock; today keeps the zaps and the flush pending across batches and, when
	 * need_resched() || rwlock_needbreak(), does them (kvm_mmu_remote_flush_or_zap) before
	 * cond_resched_rwlock_write, or returns -EINTR where it cannot yield. */
	bool sync_flushes_remote;
	/* FNAME(sync_page) leaving no spte present: 3.11's returns !nr_present and __kvm_sync_page
	 * zaps the page; today's returns whether to flush and keeps it. */
	bool sync_zaps_empty;
	/* The generation bump of the fast zap. Today's kvm_mmu_zap_all_fast toggles mmu_valid_gen
	 * between 0 and 1 (a u8 since 5.4's "Explicitly track only a single invalid mmu generation"),
	 * which is safe because the bump and kvm_zap_obsolete_pages sit in one mmu_lock critical
	 * section under slots_lock: at a bump no valid page of the previous generation is left, or
	 * the toggle would make it current again. 3.11's kvm_mmu_invalidate_zap_all_pages increments
	 * an unsigned long. The library counts bumps in both eras (its own bumps that KVM does not
	 * have, SMMU_FLUSH_RMAP_ONLY / _REBUILD and smmu_bump_gen, leave obsolete pages behind by
	 * design); under the toggle rule the split smmu_fast_zap_bump refuses (-EBUSY) to bump while
	 * obsolete pages wait for their drain, a state the kernel's toggle can never be in. */
	bool fast_zap_gen_toggles;
	/* A zapped root still in use (root_count). Today's __kvm_mmu_prepare_zap_page takes it off
	 * active_mmu_pages (list_del) and mmu_free_root_page frees it when its last user drops it
	 * (prepared again, list_add to the invalid list); kvm_zap_obsolete_pages and kvm_mmu_zap_all
	 * WARN on an invalid page on the list. 3.11's kvm_mmu_prepare_zap_page moves it to the head
	 * of active_mmu_pages, where the walks skip it. Both count it in n_used_mmu_pages until freed. */
	bool zapped_root_leaves_active_list;
	/* kvm_zap_obsolete_pages' walk after a zap: 3.11 restarts from the tail whenever
	 * kvm_mmu_prepare_zap_page listed a page (ret > 0); today's restarts only when
	 * __kvm_mmu_prepare_zap_page reports active_mmu_pages unstable (it zapped unsync children,
	 * or a nested TDP child), else goes on with the page before. Both add the pages zapped
	 * (nr_zapped, ret) to the batch, and break with cond_resched_lock (3.11) /
	 * cond_resched_rwlock_write (today) once the batch reaches BATCH_ZAP_PAGES. */
	bool obsolete_zap_restarts_if_unstable;
	/* A page fault once it holds mmu_lock: the order of recycling and the stale check. The kernel
	 * recorded (Debian's 6.1.0-57, i.e. 6.1.192: its kvm.ko's paging64_page_fault and
	 * direct_page_fault, disassembled) runs make_mmu_pages_available first and
	 * is_page_fault_stale after it, so a fault that retries because the host's MMU notifier
	 * invalidated since mmu_seq (the copy of the zero page in hva_to_pfn) has recycled pages all
	 * the same. Every upstream source we could read (5.16-6.0, 6.9 and later, all from before
	 * mid-2026) checks staleness first, as 3.11's FNAME(page_fault) and tdp_page_fault check
	 * mmu_notifier_retry first. Public reports date a fix to the shadow MMU's zap path
	 * (CVE-2026-64561, August 2026) in the stable builds 6.18.42, 6.12.101, 6.6.148 and 7.1.6;
	 * that this reorder is part of it is our inference, its source not read. The kvm.ko of
	 * Debian's 6.18.15 (before 6.18.42) checks staleness first, that of 6.12.117 (after 6.12.101)
	 * recycles first (tools/kvmdiff/golden/linux-6.12.117, linux-6.18.15). */
	bool fault_recycles_before_stale;
	/* A page found for a shadow path with unsync pages below it (unsync_children): today's
	 * FNAME(fetch) syncs them before it links the page (mmu_sync_children(..., can_yield =
	 * false): on a lock break it flushes, makes KVM_REQ_MMU_SYNC and the fault retries), and
	 * kvm_mmu_get_page makes no request (since 5.15, "KVM: X86: Synchronize the shadow pagetable
	 * before link it"); 3.11's kvm_mmu_get_page makes KVM_REQ_MMU_SYNC and fetch links the page
	 * as it is (the roots' sync at the next entry reaches it). */
	bool fetch_syncs_children;
	/* The roots cache on a guest's MOV CR3 (kvm_set_cr3 → kvm_mmu_new_pgd → fast_pgd_switch,
	 * cached_root_find_and_keep_current / cached_root_find_without_current): today's vCPU keeps
	 * up to KVM_MMU_NUM_PREV_ROOTS (3) previous roots, each holding a root_count; a switch to a
	 * CR3 whose root is cached and not zapped (is_root_usable) makes it current again, with a
	 * sync (KVM_REQ_MMU_SYNC) and a TLB flush, else the current root becomes the most recent
	 * cached one and the least recent is freed (mmu_free_root_page). 3.11's kvm_mmu_new_cr3
	 * (paging_new_cr3 → mmu_free_roots) frees the root: no cache (0). KVM_SET_SREGS changing
	 * CR3 is kvm_mmu_reset_context → kvm_mmu_unload in both eras: every root goes. */
	uint8_t prev_roots;
	/* What a fast zap (and the zap of a root in use) asks of every vCPU: today's
	 * KVM_REQ_MMU_FREE_OBSOLETE_ROOTS → kvm_mmu_free_obsolete_roots frees, at the vCPU's next
	 * entry, the current and cached roots that are obsolete or zapped (is_obsolete_root) and
	 * keeps the others; 3.11's KVM_REQ_MMU_RELOAD → kvm_mmu_unload frees the root whatever it
	 * is. */
	bool reload_frees_obsolete_only;
	/* The pages a trapped guest page-table write looks at (kvm_mmu_pte_write; today's
	 * kvm_mmu_track_write): 3.11's for_each_gfn_indirect_valid_sp skips invalid pages only, so
	 * an obsolete page still counts the write (detect_write_flooding), may be zapped by it
	 * (mmu_flooded) and has its written spte zapped; today's for_each_gfn_valid_sp_with_gptes
	 * skips obsolete pages too (is_obsolete_sp). Flood and misalignment detection themselves are
	 * the same in both eras. */
	bool pte_write_skips_obsolete;
	/*
	 * MMIO sptes and the memslot generation (mmio.c). Both eras install an MMIO spte for a gfn in
	 * no slot (mark_mmio_spte) carrying 19 bits of the memslots' generation, answer a fault on
	 * one of the current generation without a page fault (handle_mmio_page_fault), fault again
	 * on a stale one (RET_MMIO_PF_INVALID / RET_PF_INVALID), and zap every page when the MMIO
	 * generation wraps (kvm_mmu_invalidate_mmio_sptes: kvm_mmu_invalidate_zap_all_pages in 3.11,
	 * kvm_mmu_zap_all_fast today). They differ in how the generation moves:
	 *
	 * memslots_gen_step: what one publication of the slot array adds to the generation. 3.11's
	 * install_new_memslots (update_memslots) adds 1; today's kvm_swap_active_memslots adds
	 * KVM_ADDRESS_SPACE_NUM (2 on x86: the SMM address space takes the odd generations).
	 */
	uint8_t memslots_gen_step;
	/* memslots_gen_in_progress: today's kvm_swap_active_memslots publishes the new array with
	 * KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS (bit 63) set and clears it once readers are gone, and
	 * check_mmio_spte treats every MMIO spte as stale while it is set; 3.11 has no such bit. */
	bool memslots_gen_in_progress;
	/* mmio_gen_offset: the MMIO generation is the memslots' plus this, modulo 2^19. 3.11's
	 * kvm_current_mmio_generation adds MMIO_MAX_GEN - 150, "to easily test the code of handling
	 * generation number wrap-around" (a new VM is 150 updates from the wrap); today's
	 * make_mmio_spte / check_mmio_spte take the memslots' generation as it is (0 for a new VM,
	 * kvm_create_vm: the address space's number). */
	uint32_t mmio_gen_offset;
	/* mmio_wrap_every_publish: where the wrap is looked for. Today kvm_arch_memslots_updated runs
	 * kvm_mmu_invalidate_mmio_sptes at every publication (each kvm_swap_active_memslots, so twice
	 * for a delete or move), and zaps when the MMIO generation without its address-space bit is
	 * 0. 3.11's kvm_arch_commit_memory_region runs it once per change, after the last
	 * publication (never when the slot is only marked invalid), and zaps when the MMIO
	 * generation is MMIO_MAX_GEN - 1 or more. */
	bool mmio_wrap_every_publish;
	/* FNAME(sync_page) meeting an MMIO spte of an unsync page (sync_mmio_spte): both eras drop it
	 * when the guest pte is invalid or maps another gfn, else mark it again with the current
	 * generation; 3.11 counts it in nr_present (a page left with MMIO sptes only is not zapped as
	 * empty); today's does not count presence at all. */
	bool sync_mmio_counts_present;
	/* A fault on a gfn in no slot and the MMU notifier's retry: today's is_page_fault_stale
	 * checks mmu_invalidate_retry_hva only when fault->slot is set (an MMIO spte maps no host
	 * page an invalidation could concern); 3.11's FNAME(page_fault) / tdp_page_fault call
	 * mmu_notifier_retry for every fault. */
	bool noslot_fault_skips_notifier_retry;
	/* Which faults an MMU-notifier invalidation makes retry. 3.11: every one while any is in
	 * progress (mmu_notifier_retry: kvm->mmu_notifier_count non-zero, from FNAME(page_fault),
	 * tdp_page_fault, nonpaging_map), and kvm_mmu_notifier_invalidate_range_start / _end raise
	 * the count and bump the sequence for any range. Today (6.1, the kernel recorded):
	 * kvm_mmu_notifier_invalidate_range_start and _end → __kvm_handle_hva_range call
	 * kvm_mmu_invalidate_begin / _end only when the range hits a memslot (from the 2021 rework
	 * of KVM's MMU notifiers on: an invalidation of memory no slot maps neither counts nor
	 * bumps); begin records the hva range (mmu_invalidate_range_start / _end): the notifier's
	 * range when the count goes from 0 to 1, else widened to cover the ranges in progress (min
	 * / max, kept until the count falls to 0: a nested THP split's own invalidation widens it
	 * to its huge page); and is_page_fault_stale → mmu_invalidate_retry_hva retries a fault on
	 * a gfn of a slot only if its hva lies in that range while the count is non-zero, or the
	 * sequence moved since the fault sampled it. 6.1 checks once, under mmu_lock; 6.9 on also
	 * before it (rules->fault_retries_before_lock). Later kernels record and compare gfns
	 * (mmu_invalidate_retry_gfn, kvm_mmu_invalidate_range_add) where 6.1 compares hvas: the
	 * model compares hvas, the same for a gfn in one slot. */
	bool notifier_retry_in_range;

	/* sync_leaves_tlbs_dirty: 3.11's FNAME(sync_page) drops an spte (invalid gpte, or another
	 * gfn) without a remote flush and counts it in kvm->tlbs_dirty: another vCPU's TLB may keep
	 * the dropped translation (the guest changed its pte without invalidating it there, which
	 * x86 allows) until any kvm_flush_remote_tlbs clears the count, and the MMU notifier flushes
	 * while it is set (kvm_mmu_notifier_invalidate_range_start: need_tlb_flush |= tlbs_dirty),
	 * before the host frees a page such a TLB entry may map. Today's sync flushes remote TLBs
	 * itself (sync_flushes_remote) and tlbs_dirty is gone (5.12). */
	bool sync_leaves_tlbs_dirty;

	/* ---- changed since 6.1: the 6.1 profile keeps 6.1's value, today's is 6.18's ---- */

	/* make_spte's Dirty bit over an spte that is writable already (rules->spte_dirty_on_write
	 * set): 6.1 jumps past it (a fault that rebuilds such an spte clears D, is no spurious
	 * fault, and flushes); from 6.13 (make_spte sets the Dirty bit of every writable spte,
	 * commit cc7ed3358e41) the rebuilt spte is the same, the fault RET_PF_SPURIOUS: no pf_fixed
	 * and no flush. */
	bool spte_dirty_over_writable;
	/* The sync of an unsync page's spte whose gpte still maps the same gfn: from 6.4
	 * (FNAME(sync_spte)) it is left as it is when the access the gpte gives now equals the one
	 * stored for the spte (kvm_mmu_page_get_access: sp->shadowed_translation, set by
	 * mmu_set_spte → rmap_add or kvm_mmu_page_set_access); 6.1's FNAME(sync_page) and 3.11's
	 * rebuild every such spte as a prefetch (Accessed cleared, so a flush). */
	bool sync_skips_unchanged_access;
	/* kvm_faultin_pfn (6.9 on) checks the MMU notifier's retry before the pfn lookup and again
	 * after it, without mmu_lock (mmu_invalidate_retry_gfn_unsafe: the range in progress, then
	 * the sequence), and retries at once: a host page fault inside the lookup that invalidated
	 * the gfn (a zero page copied on write) retries before the fault recycles pages. 6.1 and
	 * 3.11 check under mmu_lock only. */
	bool fault_retries_before_lock;
};

extern const struct smmu_rules smmu_rules_3_11;
extern const struct smmu_rules smmu_rules_today;
extern const struct smmu_rules smmu_rules_6_1;

/* The rules of @p profile; NULL for an unknown one. */
const struct smmu_rules *smmu_profile_rules(enum smmu_profile profile);

#endif
