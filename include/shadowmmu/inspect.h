/*
 * libshadowmmu — read-only questions about the MMU state, for tests and experiments.
 *
 * Unlike strategy.h's primitives, each function here takes mmu_lock itself (timed under the
 * audit site, SMMU_SITE_AUDIT), answers from one consistent snapshot, and lets go of it before it
 * returns: call them from any thread that does not hold mmu_lock. They change no state.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_INSPECT_H
#define SHADOWMMU_INSPECT_H

#include "common.h"
#include "strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Which shadow pages smmu_inspect_slot_pages() returns, or'ed together. Pick at least one kind
 * (SMMU_SP_INDIRECT, SMMU_SP_DIRECT); the valid pages of the current generation of the kinds
 * picked are always returned, and SMMU_SP_OBSOLETE / SMMU_SP_INVALID add the older ones.
 */
enum smmu_sp_filter {
	SMMU_SP_INDIRECT = 1u << 0, /**< pages shadowing a guest table (role.direct = 0) */
	SMMU_SP_DIRECT = 1u << 1,   /**< direct (TDP-like) pages (role.direct = 1) */
	/** also valid pages of an older mmu_valid_gen, not zapped yet (a fast zap's leftovers) */
	SMMU_SP_OBSOLETE = 1u << 2,
	/** also zapped pages still on active_mmu_pages: roots a vCPU still uses (role.invalid) */
	SMMU_SP_INVALID = 1u << 3,
	SMMU_SP_ALL = 0xfu,         /**< every page on active_mmu_pages */
};

/**
 * The shadow pages of memslot @p id: those on active_mmu_pages whose gfn lies in the slot (for
 * an indirect page, the guest table it shadows; for a direct page, the first frame it maps),
 * selected by @p filter, newest first. Pages already taken off the active list by a zap and
 * waiting on an invalid list for their commit are never returned.
 *
 * With @p filter SMMU_SP_INDIRECT | SMMU_SP_OBSOLETE these are the pages that hold a count in
 * the slot's lpage_info (unless smmu_lpage_forget_obsolete() forgot the obsolete ones); after a
 * correct flush of the slot, SMMU_SP_ALL finds none.
 *
 * @param out  an array of @p cap entries, or NULL with @p cap 0 to only count. Each entry's
 *             @c spt is NULL: the table may be freed once the lock is released.
 * @return the number of pages that match (which may exceed @p cap: the first @p cap are
 *         written); -EINVAL (NULL @p vm, @p out NULL with @p cap > 0, no kind in @p filter or
 *         unknown bits); -ENOENT (no slot @p id); -EDEADLK (the calling thread holds mmu_lock).
 */
SMMU_API long smmu_inspect_slot_pages(smmu_vm *vm, int id, unsigned filter,
				      struct smmu_sp_info *out, size_t cap);

/**
 * The rmap entries of @p gfn, per level: @p per_level[L - 1] counts the sptes in the rmap head of
 * (gfn, L), i.e. the leaf sptes that map @p gfn with a page of level L (a 2 MiB or 1 GiB spte
 * maps every gfn of its large page, so it appears at level 2 or 3 for each of them).
 * @param per_level  SMMU_NR_PAGE_SIZES counters (4K, 2M, 1G), or NULL for the total only.
 * @return the total over the levels; -EINVAL (NULL @p vm); -ENOENT (@p gfn in no memslot);
 *         -EDEADLK (the calling thread holds mmu_lock).
 */
SMMU_API long smmu_inspect_rmap_count(smmu_vm *vm, smmu_gfn_t gfn,
				      uint64_t per_level[SMMU_NR_PAGE_SIZES]);

/**
 * lpage_info's disallow_lpage for the large pages holding @p gfn: @p out[0] for the 2 MiB page
 * (level 2), @p out[1] for the 1 GiB page (level 3). Each is the edge bit (1 where the slot's
 * edges or a gfn/host misalignment cut the large page) plus the shadowed guest tables inside it;
 * a large spte may map the page only while it is 0 (audit invariants 4 and 6).
 * @return 0; -EINVAL (NULL @p vm or @p out); -ENOENT (@p gfn in no memslot); -EDEADLK (the
 *         calling thread holds mmu_lock). @p out is unchanged on error.
 */
SMMU_API int smmu_inspect_lpage_disallow(smmu_vm *vm, smmu_gfn_t gfn,
					 int32_t out[SMMU_NR_PAGE_SIZES - 1]);

#ifdef __cplusplus
}
#endif
#endif
