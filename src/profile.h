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
	const char *name;       /* "linux-3.11", "linux-today" */
	/* kvm_page_table_hashfn: gfn & (buckets - 1) (3.11) or hash_64 (today) */
	enum smmu_hash_fn hash_fn;
	/* KVM_NUM_MMU_PAGES_HASH... : 1 << KVM_MMU_HASH_SHIFT, 10 (3.11) or 12 (today) */
	uint32_t hash_buckets;
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
};

extern const struct smmu_rules smmu_rules_3_11;
extern const struct smmu_rules smmu_rules_today;

/* The rules of @p profile; NULL for an unknown one. */
const struct smmu_rules *smmu_profile_rules(enum smmu_profile profile);

#endif
