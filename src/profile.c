/*
 * libshadowmmu — the eras' rules, side by side (see profile.h for what each rule means): 3.11,
 * today (6.18), and 6.1, which is today's but for the rules changed since.
 *
 * SPDX-License-Identifier: MIT
 */
#include "profile.h"

#include <stddef.h>

const struct smmu_rules smmu_rules_3_11 = {
	.name = "linux-3.11",
	.hash_fn = SMMU_HASH_MASK,
	.hash_buckets = 1024,
	.move_keeps_arch = true,
	.zap_oldest_skips_roots = false,
	.fault_checks_stale_root = false,
	.fault_invalid_slot_retries = false,
	.fault_level_after_fetch = false,
	.wrprot_drops_large_spte = true,
	.slot_wrprot_flush_at_break = true,
	.release_fast_zaps = true,
	.notifier_unmap_breaks_lock = false,
	.zap_all_commit_once = false,
	.prefetch_skips_spurious = false,
	.log_off_zaps_collapsible = false,
	.pf_fixed_only_if_fixed = false,
	.spte_dirty_on_write = false,
	.prefetch_may_unsync = true,
	.get_higher_zaps_unsync = false,
	.sync_flushes_remote = false,
	.sync_leaves_tlbs_dirty = true,
	.sync_zaps_empty = true,
	.fast_zap_gen_toggles = false,
	.zapped_root_leaves_active_list = false,
	.obsolete_zap_restarts_if_unstable = false,
	.fault_recycles_before_stale = false,
	.fetch_syncs_children = false,
	.prev_roots = 0,
	.reload_frees_obsolete_only = false,
	.pte_write_skips_obsolete = false,
	.memslots_gen_step = 1,
	.memslots_gen_in_progress = false,
	.mmio_gen_offset = (1u << 19) - 1 - 150,
	.mmio_wrap_every_publish = false,
	.sync_mmio_counts_present = true,
	.noslot_fault_skips_notifier_retry = false,
	.notifier_retry_in_range = false,
	.spte_dirty_over_writable = false,
	.sync_skips_unchanged_access = false,
	.fault_retries_before_lock = false,
};

/* Linux 6.1 and today alike: every rule but those changed since 6.1, listed in each table. */
#define RULES_6_1_AND_TODAY \
	.hash_fn = SMMU_HASH_HASH64, \
	.hash_buckets = 4096, \
	.move_keeps_arch = false, \
	.zap_oldest_skips_roots = true, \
	.fault_checks_stale_root = true, \
	.fault_invalid_slot_retries = true, \
	.fault_level_after_fetch = true, \
	.wrprot_drops_large_spte = false, \
	.slot_wrprot_flush_at_break = false, \
	.release_fast_zaps = false, \
	.notifier_unmap_breaks_lock = true, \
	.zap_all_commit_once = true, \
	.prefetch_skips_spurious = true, \
	.log_off_zaps_collapsible = true, \
	.pf_fixed_only_if_fixed = true, \
	.spte_dirty_on_write = true, \
	.prefetch_may_unsync = false, \
	.get_higher_zaps_unsync = true, \
	.sync_flushes_remote = true, \
	.sync_leaves_tlbs_dirty = false, \
	.sync_zaps_empty = false, \
	.fast_zap_gen_toggles = true, \
	.zapped_root_leaves_active_list = true, \
	.obsolete_zap_restarts_if_unstable = true, \
	.fault_recycles_before_stale = true, \
	.fetch_syncs_children = true, \
	.prev_roots = 3, /* KVM_MMU_NUM_PREV_ROOTS */ \
	.reload_frees_obsolete_only = true, \
	.pte_write_skips_obsolete = true, \
	.memslots_gen_step = 2, \
	.memslots_gen_in_progress = true, \
	.mmio_gen_offset = 0, \
	.mmio_wrap_every_publish = true, \
	.sync_mmio_counts_present = false, \
	.noslot_fault_skips_notifier_retry = true, \
	.notifier_retry_in_range = true,

/* Linux 6.1 (Debian's 6.1.0-57: the records at the top of tools/kvmdiff/golden). */
const struct smmu_rules smmu_rules_6_1 = {
	.name = "linux-6.1",
	RULES_6_1_AND_TODAY
	.spte_dirty_over_writable = false,
	.sync_skips_unchanged_access = false,
	.fault_retries_before_lock = false,
};

/* Linux 6.18 (the records of tools/kvmdiff/golden/linux-6.18.15, and 7.2.12's alike). */
const struct smmu_rules smmu_rules_today = {
	.name = "linux-today",
	RULES_6_1_AND_TODAY
	.spte_dirty_over_writable = true,
	.sync_skips_unchanged_access = true,
	.fault_retries_before_lock = true,
};

const struct smmu_rules *smmu_profile_rules(enum smmu_profile profile)
{
	switch (profile) {
	case SMMU_PROFILE_LINUX_3_11:
		return &smmu_rules_3_11;
	case SMMU_PROFILE_LINUX_TODAY:
		return &smmu_rules_today;
	case SMMU_PROFILE_LINUX_6_1:
		return &smmu_rules_6_1;
	}
	return NULL;
}
