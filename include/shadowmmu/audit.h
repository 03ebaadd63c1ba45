/*
 * libshadowmmu — the audit: a correctness oracle over the whole shadow MMU.
 *
 * In the spirit of KVM's mmu_audit.c, but complete: smmu_audit() takes mmu_lock and checks
 * every invariant below over every page, spte, rmap, lpage_info entry, vCPU root and TLB,
 * reporting each violation with the objects it concerns.
 *
 * Words used below: a page is "listed" when it is on active_mmu_pages; "valid" when its
 * role.invalid is clear; "indirect" when it shadows a guest page table (role.direct clear; its gfn
 * is that table's); "obsolete" when its mmu_valid_gen is not the VM's; "counted" when it holds a
 * count in lpage_info: a valid indirect page created at or after the last lpage_info reset (the
 * reset SMMU_FLUSH_RMAP_REBUILD does; before any, every valid indirect page is counted).
 *
 * Concurrency: what an audit may assume.
 * - smmu_audit() takes mmu_lock, so it may run on any thread while another zaps or flushes; it
 *   then sees the state at one of that operation's lock breaks. The library's operations leave
 *   a state that passes invariants 1-6 and 9 at every break, including the drain of a fast zap
 *   in KVM's mode, whose zapped pages wait, still hashed, on zapped_obsolete_pages until its final
 *   commit, and the lock-breaking zap_all of today's profile, whose zapped pages wait the same way
 *   on its pending invalid list until its one commit: invariant 1 accepts them while such a zap
 *   runs and checks what makes them harmless.
 *   Known exception: enabling dirty logging (smmu_memslot_set_flags) sets the flag, then walks
 *   the slot's rmaps level by level with lock breaks; at a break before its large sptes are
 *   dropped, invariant 6 reports them.
 * - A strategy written with strategy.h that breaks the lock while pages wait on its own
 *   smmu_invalid_list leaves hashed pages on no list, and invariant 1 reports them: commit
 *   before breaking, as the 3.11 profile's zap_all does.
 * - Invariants 7, 8 and 10 read vCPU state that a vCPU thread changes outside mmu_lock (its
 *   requests, TLB and CR3). smmu_audit() checks them for every vCPU, so it assumes that no vCPU
 *   thread runs during the call: call it while the vCPU threads are stopped, or from the thread
 *   that runs them. The audit points of config.audit_every_op (or SMMU_AUDIT=1) keep to this by
 *   themselves, as KVM's kvm_mmu_audit(vcpu, point) audits the vCPU it runs on: after a VM-wide
 *   operation (zap, flush, memslot change, ...) they check invariants 1-6 and 9; after a vCPU's
 *   fault they also check that vCPU's 7, 8 and 10. So vCPU threads may fault while other
 *   threads zap with audit_every_op set.
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

/**
 * The invariants, each as smmu_audit() checks it (docs/DESIGN.md, installed in
 * share/doc/shadowmmu, explains them). A violation names the invariant and the objects
 * concerned; @c what says which check failed.
 */
enum smmu_invariant {
	/** Page lists. active_mmu_pages and zapped_obsolete_pages are proper lists (no loop, no
	 *  NULL link, no page twice, no page on both). Every page in mmu_page_hash is listed or on
	 *  zapped_obsolete_pages, once, in the bucket of its gfn, with a consistent back link. Every
	 *  listed page is in mmu_page_hash; a listed page is invalid only while a root user holds it
	 *  (root_count), and only under the 3.11 profile: today's takes a zapped root in use off the
	 *  list, and the audit finds it through the vCPUs' roots (invalid, hashed, no parent ptes,
	 *  no present spte; under 3.11 one off the list is a violation). A root's root_count is the
	 *  number of vCPU roots holding it, current and cached (the today profile's previous roots),
	 *  none cached beyond what the profile keeps (checked at every audit point).
	 *  n_used_mmu_pages is the number of listed pages plus those zapped roots off the list,
	 *  indirect_shadow_pages the
	 *  number of valid indirect ones, and each page's n_present the number of present sptes in
	 *  its table (n_mmio of MMIO sptes, and the VM's count their sum). zapped_obsolete_pages holds pages only while a fast-zap drain runs
	 *  (kvm_zap_obsolete_pages, between its lock breaks), and each of them is invalid, obsolete,
	 *  no root, with no parent ptes and no present spte; the same holds for the pending invalid
	 *  list of a lock-breaking zap_all that commits once (today's profile), but for obsolete.
	 *  An unsync page is a valid level-1 indirect page, and the VM's mmu_unsync counts the
	 *  listed unsync pages. */
	SMMU_INV_PAGE_LISTS = 1,
	/** Parent links. Every entry of a listed page's parent_ptes is a present non-leaf spte of a
	 *  listed page that points at this page's table, named once; every present non-leaf spte of
	 *  a listed page points at the table of a listed page one level lower whose parent_ptes
	 *  names it; a direct child of a direct parent covers the gfns of its place there. Every
	 *  parent spte of an unsync page, or of a page with unsync children, has its bit set in the
	 *  parent's unsync_child_bitmap, and each page's unsync_children is the number of bits set
	 *  (bits of children unlinked since may stay set: the unsync walks clear them). */
	SMMU_INV_PARENT_LINKS = 2,
	/** Rmaps. Every entry of a slot's rmap (gfn, level) is a present leaf spte of a listed page
	 *  of that level that maps that gfn, named once; every present leaf spte maps a gfn that
	 *  lies in a memslot (valid or being deleted), has its rmap entry, and holds the frame of
	 *  that slot's backing of the gfn. MMIO sptes (smmu_mmio_counters), leaves in no rmap: each
	 *  lies in a level-1 page, names its page's gfn for it, grants no right beyond the page's
	 *  role; in a page neither obsolete nor invalid its generation is no older than the last
	 *  wrap zap's and no newer than the current one, and one of the current generation maps a
	 *  gfn in no valid memslot. */
	SMMU_INV_RMAP = 3,
	/** lpage_info counts. For every slot, level 2 and 3, and large page: disallow_lpage equals
	 *  its edge value (1 where the slot's first or last large page is cut by the slot's edges,
	 *  or everywhere when gfn and host address disagree on alignment; else 0) plus the number of
	 *  counted pages whose gfn lies in that large page of that slot. The seed thread's bug
	 *  fails this one (after a slot is created again, see zap.h). */
	SMMU_INV_LPAGE_COUNT = 4,
	/** Write protection. No present writable spte, 4 KiB or large, maps a gfn that a listed,
	 *  valid, indirect page of the current generation shadows, unless it is unsync (a gfn whose
	 *  pages are all unsync may be mapped writable: the guest writes that table untrapped until
	 *  a sync); checked through the rmaps of the gfn and of the large pages holding it. Obsolete pages are left out: lookups never return
	 *  them and no vCPU walks one after its reload (invariant 8), so their tables may change. */
	SMMU_INV_WRITE_PROTECT = 5,
	/** Large sptes. None at the top level; each maps a gfn aligned to its size, in a large page
	 *  whose disallow_lpage is 0, of a slot that does not log dirty pages. */
	SMMU_INV_LARGE_SPTE = 6,
	/** Translation, per vCPU with no reload pending. In shadow mode it has a CR3 when it has a
	 *  root. Every present leaf reachable from its root: in shadow mode (but in an unsync page,
	 *  whose leaves follow its guest table only once synced) the guest's tables map that
	 *  address to the same gfn, with a page at least as large and at least the spte's
	 *  write, user and exec rights; in direct mode the gfn is the address's. The gfn lies in a
	 *  valid memslot, the frame is that slot's backing, and no spte is writable in a read-only
	 *  slot. */
	SMMU_INV_TRANSLATION = 7,
	/** Obsolete roots, per vCPU with no reload pending: its root is listed, and no page reached
	 *  from it is obsolete or invalid. */
	SMMU_INV_OBSOLETE_ROOT = 8,
	/** Slot lifetime. Every listed counted page shadows a gfn that lies in a memslot (valid or
	 *  being deleted): a deleted slot left no page that unaccount_shadowed would need it for.
	 *  Pages no longer counted (obsolete past an lpage_info reset) are not checked; a leaf spte
	 *  left in no slot is reported by invariant 3, and rmaps and lpage_info go with the slot.
	 *  Every slot lies in the space the MMU maps (direct mode: below 2^48, the 4-level map's
	 *  reach). */
	SMMU_INV_SLOT_LIFETIME = 9,
	/** TLB, per vCPU with neither a reload nor a TLB flush pending: for every TLB entry the
	 *  vCPU has a listed root, the walk of the entry's address from it reaches a present leaf
	 *  through listed pages, the leaf's frame is the entry's, and the entry grants no right
	 *  (write, user, exec) the sptes on that walk do not. */
	SMMU_INV_TLB = 10,
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
 * Check every invariant. Takes mmu_lock (site AUDIT); the caller must not hold it. Another thread
 * may zap or flush meanwhile; no vCPU thread may run during the call, since invariants 7, 8 and
 * 10 read every vCPU's state (see "Concurrency" above). Pending requests are taken into account
 * as KVM would: a vCPU with a reload pending is not checked for 7, 8, 10, one with a TLB flush
 * pending not for 10.
 * @return the total number of violations (0 = clean), or -EINVAL (NULL vm or report, or a NULL
 *         array with a non-zero cap), -ENOMEM (the audit's scratch memory).
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
