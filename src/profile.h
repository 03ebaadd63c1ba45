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
	/* make_mmu_pages_available, over the page budget. 3.11 (prepare_zap_oldest_mmu_page):
	 * zap the oldest page, a root in use included, one step at a time until KVM_REFILL_PAGES
	 * are free, counting each step in mmu_recycled. Today (kvm_mmu_zap_oldest_mmu_pages): pass
	 * over pages in use as roots, zap until KVM_REFILL_PAGES - available pages went to the
	 * invalid list, and count those pages in mmu_recycled. */
	bool recycle_skips_roots;
};

extern const struct smmu_rules smmu_rules_3_11;
extern const struct smmu_rules smmu_rules_today;

/* The rules of @p profile; NULL for an unknown one. */
const struct smmu_rules *smmu_profile_rules(enum smmu_profile profile);

#endif
