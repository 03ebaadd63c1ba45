/*
 * libshadowmmu — the audit: a correctness oracle over the whole shadow MMU.
 *
 * In the spirit of KVM's mmu_audit.c, but complete: smmu_audit() takes mmu_lock and checks
 * every invariant below over every page, spte, rmap, lpage_info entry, vCPU root and TLB,
 * reporting each violation with the objects it concerns.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_AUDIT_H
#define SHADOWMMU_AUDIT_H

#include <stdio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The invariants, numbered and described in docs/DESIGN.md (installed in share/doc/shadowmmu). */
enum smmu_invariant {
	SMMU_INV_PAGE_LISTS = 1,   /**< valid pages are on active list + hash, counts agree */
	SMMU_INV_PARENT_LINKS = 2, /**< non-leaf sptes and parent_ptes agree both ways */
	SMMU_INV_RMAP = 3,         /**< leaf sptes and rmap entries agree both ways */
	SMMU_INV_LPAGE_COUNT = 4,  /**< disallow_lpage = edge bit + shadowed tables inside */
	SMMU_INV_WRITE_PROTECT = 5,/**< no writable spte maps a shadowed guest table */
	SMMU_INV_LARGE_SPTE = 6,   /**< no large spte where lpage_info disallows it */
	SMMU_INV_TRANSLATION = 7,  /**< what a root maps, the guest maps, in a live slot */
	SMMU_INV_OBSOLETE_ROOT = 8,/**< no obsolete page reachable from a reloaded root */
	SMMU_INV_SLOT_LIFETIME = 9,/**< indirect pages lie in live slots */
	SMMU_INV_TLB = 10,         /**< TLB entries are backed by present sptes */
	SMMU_INV_COUNT = 11
};

/** One broken invariant and what it concerns; -1 / 0 where a field does not apply. */
struct smmu_violation {
	enum smmu_invariant inv;  /**< which invariant is broken */
	int slot;                 /**< memslot id, or -1 */
	int level;                /**< level of the spte, rmap or lpage_info entry, or 0 */
	smmu_gfn_t gfn;           /**< gfn concerned */
	const smmu_sp *sp;        /**< shadow page concerned, or NULL */
	uint32_t sp_role;         /**< its role word */
	uint64_t sp_gen;          /**< its mmu_valid_gen */
	smmu_gfn_t sp_gfn;        /**< its gfn */
	int spte_index;           /**< index of the spte in sp's table, or -1 */
	int vcpu;                 /**< vCPU id, or -1 */
	uint64_t addr;            /**< guest address concerned (invariants 7, 8, 10), or 0 */
	int64_t expected;         /**< the value the invariant requires */
	int64_t found;            /**< the value found */
	char what[96];            /**< one line saying what is wrong */
};

/** Where smmu_audit() writes. Set @c v and @c cap; the audit sets @c total and @c stored. */
struct smmu_audit_report {
	struct smmu_violation *v; /**< caller's array of @c cap entries (may be NULL with cap 0) */
	size_t cap;               /**< entries of @c v */
	size_t stored;            /**< violations written to @c v (at most cap) */
	size_t total;             /**< violations found (may exceed cap) */
	uint64_t per_inv[SMMU_INV_COUNT]; /**< total per invariant */
	uint64_t pages_checked;   /**< shadow pages the audit walked */
	uint64_t sptes_checked;   /**< sptes it read */
};

/**
 * Check every invariant. Takes mmu_lock (site AUDIT); the caller must not hold it. vCPU-related
 * invariants (7, 8, 10) assume no vCPU thread runs concurrently; pending requests are taken into
 * account as KVM would (a root with a pending reload is not checked for obsolescence).
 * @return the total number of violations (0 = clean), or -EINVAL (NULL), -ENOMEM.
 */
SMMU_API long smmu_audit(smmu_vm *vm, struct smmu_audit_report *report);

/** Print a report readably, one violation a line, then per-invariant totals. */
SMMU_API void smmu_audit_print(FILE *f, const struct smmu_audit_report *report);

/** Printable name of an invariant ("lpage_info count", ...), or "?". */
SMMU_API const char *smmu_invariant_name(enum smmu_invariant inv);

#ifdef __cplusplus
}
#endif
#endif
