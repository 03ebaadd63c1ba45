/*
 * libshadowmmu — primitives for writing invalidation strategies outside the library.
 *
 * Everything a built-in strategy uses is here: take and break mmu_lock, walk active_mmu_pages
 * and mmu_page_hash, read a page, zap it onto an invalid list and commit, walk a gfn's rmap,
 * read lpage_info, bump the generation, flush TLBs and request reloads.
 *
 * Locking: every function below except smmu_mmu_lock() requires mmu_lock held by the caller
 * (debug builds assert it). A page pointer stays valid while the lock is held and the page has
 * not been committed; after smmu_cond_resched_lock() returned true, restart any walk.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_STRATEGY_H
#define SHADOWMMU_STRATEGY_H

#include "common.h"
#include "stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- mmu_lock ----------------------------------------------------------------------------- */

/** Take mmu_lock (spin_lock(&kvm->mmu_lock)), timed under @p site. */
SMMU_API void smmu_mmu_lock(smmu_vm *vm, enum smmu_site site);
/** Release mmu_lock. */
SMMU_API void smmu_mmu_unlock(smmu_vm *vm);
/**
 * need_resched() || spin_needbreak(): whether cond_resched_lock would break the lock now, under
 * the VM's preemption model (config.preempt): a thread waits for mmu_lock and the model is
 * SMMU_PREEMPT_FULL, or the modelled scheduler's slice (config.resched_slice_ns) is used up.
 * KVM's lock-breaking walks ask this before flushing what they would leave pending.
 */
SMMU_API bool smmu_needbreak(const smmu_vm *vm);
/**
 * cond_resched_lock: when smmu_needbreak() holds, release mmu_lock, let the waiters (if any)
 * take it once each, and retake it.
 * @return true when the lock was released (walks must restart).
 */
SMMU_API bool smmu_cond_resched_lock(smmu_vm *vm);

/* ---- shadow pages --------------------------------------------------------------------------- */

/** A shadow page as a strategy sees it. */
struct smmu_sp_info {
	smmu_gfn_t gfn;      /**< guest frame shadowed (indirect) or first frame mapped (direct) */
	int level;           /**< role.level */
	bool direct;         /**< role.direct */
	bool invalid;        /**< role.invalid: zapped, waiting for its last root user or commit */
	bool obsolete;       /**< mmu_valid_gen differs from the VM's */
	/** sp->unsync: a level-1 guest table the guest may write without a trap; its sptes may
	 *  lag the guest's entries until a sync (CR3 load, INVLPG, kvm_mmu_get_page) */
	bool unsync;
	uint32_t access;     /**< role.access */
	uint32_t role;       /**< the whole role word */
	uint64_t mmu_valid_gen; /**< the generation it was created in */
	uint32_t root_count;    /**< vCPUs using it as their root */
	uint32_t n_present;  /**< present sptes in its table */
	const uint64_t *spt; /**< its 512 sptes (read-only) */
};
SMMU_API int smmu_sp_get_info(const smmu_vm *vm, const smmu_sp *sp, struct smmu_sp_info *out);

/** active_mmu_pages from the newest (head) or oldest (tail); NULL at the end. */
SMMU_API smmu_sp *smmu_active_first(smmu_vm *vm);
SMMU_API smmu_sp *smmu_active_last(smmu_vm *vm);
SMMU_API smmu_sp *smmu_active_next(smmu_vm *vm, smmu_sp *sp); /**< toward the tail */
SMMU_API smmu_sp *smmu_active_prev(smmu_vm *vm, smmu_sp *sp); /**< toward the head */

/** The mmu_page_hash bucket of @p gfn (every page in it, whatever its gfn); NULL at the end. */
SMMU_API smmu_sp *smmu_hash_first(smmu_vm *vm, smmu_gfn_t gfn);
SMMU_API smmu_sp *smmu_hash_next(smmu_vm *vm, smmu_sp *sp);

/** Pages zapped but not yet freed (KVM's invalid_list). Initialise with smmu_invalid_list_init. */
struct smmu_invalid_list {
	void *priv[2];   /**< the list head; private */
	uint64_t count;  /**< pages listed since init or the last commit */
};
SMMU_API void smmu_invalid_list_init(struct smmu_invalid_list *list);

/**
 * kvm_mmu_prepare_zap_page: unlink children and parents, unaccount_shadowed, mark invalid, and
 * move the page to @p list; a root a vCPU still uses is kept, at the head of the active list
 * (3.11 profile) or on no list (today's: the active-list walkers never meet it again).
 * Zapping a root in use makes **every** vCPU reload, not only its users: as KVM does, it calls
 * kvm_reload_remote_mmus, which posts MMU_RELOAD to all vCPUs (each drops its root at its next
 * entry and builds a fresh one at its next fault); an obsolete root requests nothing, as the
 * generation bump already did. The root is freed when its last user drops it.
 * @return the number of pages that went to @p list (the page itself and unsync children), so a
 *         walk must restart when it is non-zero and the walk's next pointer may be stale.
 */
SMMU_API int smmu_zap_page(smmu_vm *vm, smmu_sp *sp, struct smmu_invalid_list *list);

/** kvm_mmu_commit_zap_page: flush remote TLBs, then free every page on @p list. */
SMMU_API void smmu_commit_zap(smmu_vm *vm, struct smmu_invalid_list *list);

/** Page-limit reclaim: zap the oldest page (prepare_zap_oldest_mmu_page). @return pages listed. */
SMMU_API int smmu_zap_oldest(smmu_vm *vm, struct smmu_invalid_list *list);

/* ---- generation, requests, TLB -------------------------------------------------------------- */

SMMU_API uint64_t smmu_mmu_valid_gen(const smmu_vm *vm);
/** mmu_valid_gen++: every page becomes obsolete at once. @return the new generation. */
SMMU_API uint64_t smmu_bump_gen(smmu_vm *vm);
/** kvm_reload_remote_mmus: ask every vCPU to drop its root at its next entry; wait until each
 * vCPU in guest mode has left it (see vcpu.h). Caller holds mmu_lock. */
SMMU_API void smmu_reload_remote_mmus(smmu_vm *vm);
/** kvm_flush_remote_tlbs: ask every vCPU to flush its TLB at its next entry; wait until each
 * vCPU in guest mode has left it, so that none uses a stale entry once this returns. Caller
 * holds mmu_lock. */
SMMU_API void smmu_flush_remote_tlbs(smmu_vm *vm);

/* ---- memslots, rmaps, lpage_info ------------------------------------------------------------ */

/** Slot @p id's gfn range; -ENOENT when unknown. */
SMMU_API int smmu_slot_range(smmu_vm *vm, int id, smmu_gfn_t *base_gfn, uint64_t *npages);

/** Called for each spte of an rmap; return non-zero to stop the walk. */
typedef int (*smmu_rmap_fn)(smmu_vm *vm, uint64_t *sptep, uint64_t spte, void *ctx);

/**
 * Walk the rmap of (@p gfn, @p level) in slot @p id (for_each_rmap_spte).
 * @return 0 (or the callback's non-zero value); -ENOENT (unknown slot); -EINVAL (gfn out of the
 *         slot, bad level).
 */
SMMU_API int smmu_rmap_walk(smmu_vm *vm, int id, smmu_gfn_t gfn, int level, smmu_rmap_fn fn,
			    void *ctx);

/**
 * kvm_unmap_rmapp: drop every spte in the rmap of (@p gfn, @p level) of slot @p id. The caller
 * flushes TLBs before the lock is dropped.
 * @return sptes dropped, or -ENOENT / -EINVAL as smmu_rmap_walk.
 */
SMMU_API int smmu_rmap_unmap(smmu_vm *vm, int id, smmu_gfn_t gfn, int level);

/** lpage_info's disallow_lpage for the large page of @p level (2 or 3) holding @p gfn. */
SMMU_API int smmu_lpage_disallow(smmu_vm *vm, int id, smmu_gfn_t gfn, int level, int32_t *out);

/**
 * The v4 patch's lpage_info re-init (kvm_clear_all_lpage_info): every slot's lpage_info goes
 * back to its edge bits plus the shadowed tables of the current generation; pages of older
 * generations stop counting, and zapping them later will not uncount them. Meant to follow
 * smmu_bump_gen() in the same lock hold. @return 0 or -EINVAL.
 */
SMMU_API int smmu_lpage_forget_obsolete(smmu_vm *vm);

/* ---- hooks ----------------------------------------------------------------------------------- */

enum smmu_event {
	SMMU_EV_PAGE_CREATED = 0,
	/** Every kvm_mmu_prepare_zap_page, as KVM's tracepoint of that name: a root zapped while in
	 *  use is prepared again when its last user drops it (mmu_free_root_page), so it comes
	 *  twice. The hook sees smmu_sp_info.invalid false on a page's first zap only: a consumer
	 *  counting distinct pages skips the events whose page is invalid already. */
	SMMU_EV_PAGE_ZAPPED,
	SMMU_EV_PAGE_FREED,
	SMMU_EV_LOCK_TAKEN,
	SMMU_EV_LOCK_BROKEN,
	SMMU_EV_GEN_BUMPED,
	SMMU_EV_COUNT
};
/**
 * An event hook, called synchronously, with mmu_lock held (except LOCK_BROKEN, called after
 * the lock was retaken). @p sp is the page concerned or NULL. It must not take mmu_lock.
 */
typedef void (*smmu_hook_fn)(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx);
/** Install (or with NULL remove) the hook. Quiescent point only. @return 0 or -EINVAL. */
SMMU_API int smmu_set_hook(smmu_vm *vm, smmu_hook_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
