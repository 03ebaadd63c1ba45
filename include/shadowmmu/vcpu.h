/*
 * libshadowmmu — vCPUs: CR3, requests, faults, translation and memory access.
 *
 * A vCPU is used by one thread at a time (as a KVM vCPU is). Requests (MMU reload, TLB flush)
 * are posted to it by other threads and processed at its next entry: the start of its next
 * fault, access or smmu_vcpu_enter().
 *
 * Guest mode (kvm_vcpu.mode): a vCPU is in guest mode while smmu_vcpu_read/write use its TLB,
 * from the entry (requests processed, then checked again after the mode is set, as
 * vcpu_enter_guest does) to the end of the copy. Faults run outside it, and so does a walk of
 * the shadow root (it takes mmu_lock in this model); the vCPU enters again before the walk lets
 * the lock go, so that the walk and the access through it are one step, as in hardware. A
 * request from another thread (every TLB flush and MMU reload, made under mmu_lock) kicks each
 * vCPU in guest mode and waits until it has left guest mode, as KVM's IPI with
 * KVM_REQUEST_WAIT does: when the flush returns, no vCPU uses a TLB entry it removed. A vCPU
 * outside guest mode is not waited for. The time spent waiting is the request_wait figure of
 * smmu_site_stats.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_VCPU_H
#define SHADOWMMU_VCPU_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Create a vCPU with no root (kvm_vm_ioctl_create_vcpu). @return 0, -EINVAL, -ENOMEM, -ENOSPC. */
SMMU_API int smmu_vcpu_create(smmu_vm *vm, smmu_vcpu **out);

/** Drop the vCPU's root and free it (kvm_arch_vcpu_destroy). NULL is ignored. */
SMMU_API void smmu_vcpu_destroy(smmu_vcpu *vcpu);

/**
 * The vCPU's id in its VM: the smallest id (0, 1, ...) no other vCPU had when it was created;
 * fixed for the vCPU's life (kvm_vcpu.vcpu_id), other vCPUs' destruction does not change it.
 * @return the id, or -EINVAL for NULL.
 */
SMMU_API int smmu_vcpu_id(const smmu_vcpu *vcpu);

/**
 * Set CR3 from outside the guest, as KVM_SET_SREGS does when CR3 changes (kvm_mmu_reset_context
 * → kvm_mmu_unload; 3.11's kvm_set_cr3 → kvm_mmu_new_cr3 drops roots the same way): every root
 * the vCPU holds is dropped, the current one and, in the today profile, the cached ones, and the
 * TLB flushed; the new root is built at the next entry (smmu_vcpu_mmu_reload) or fault. Ignored
 * in direct mode except for the TLB flush. The roots are dropped on every call, the same CR3
 * too, where KVM_SET_SREGS with an unchanged CR3 resets no MMU state: a test can use that to
 * start from fresh roots; smmu_vcpu_load_cr3() is the guest's own reload.
 * @return 0; -EINVAL (NULL, cr3 not page-aligned or beyond the address space).
 */
SMMU_API int smmu_vcpu_set_cr3(smmu_vcpu *vcpu, smmu_gpa_t cr3);

/**
 * The guest's own MOV to CR3 (kvm_set_cr3). In the today profile a vCPU keeps up to 3 previous
 * roots (kvm_mmu_new_pgd → fast_pgd_switch): loading a CR3 whose root is cached, and not zapped
 * since, makes that root current again, no page created; otherwise the current root becomes the
 * most recently used cached one, the least recently used is dropped if the cache was full, and
 * the new root is built at the next entry or fault. In the 3.11 profile (no cache) the root is
 * dropped, as smmu_vcpu_set_cr3() does. Loading the CR3 the vCPU has changes no root. In every
 * case the roots are synced at the next entry (KVM_REQ_MMU_SYNC: the unsync pages below the
 * root) and the TLB is flushed. Ignored in direct mode except for the TLB flush.
 * @return 0; -EINVAL (NULL, cr3 not page-aligned or beyond the address space; nothing changed).
 */
SMMU_API int smmu_vcpu_load_cr3(smmu_vcpu *vcpu, smmu_gpa_t cr3);

/**
 * Process pending requests as vcpu_enter_guest does: a reload request after a fast zap or the
 * zap of a root in use drops the roots (3.11's KVM_REQ_MMU_RELOAD: every root; today's
 * KVM_REQ_MMU_FREE_OBSOLETE_ROOTS: the obsolete and zapped ones, current and cached, so an
 * obsolete root is released), KVM_REQ_TLB_FLUSH empties the TLB.
 * @return 0 or -EINVAL.
 */
SMMU_API int smmu_vcpu_enter(smmu_vcpu *vcpu);

/**
 * The whole of vcpu_enter_guest's MMU part: process the requests as smmu_vcpu_enter() does,
 * then load a root if the vCPU has none (kvm_mmu_reload → kvm_mmu_load, at every entry in both
 * eras): find or create the root shadow page of its CR3 (in direct mode, the direct root), so
 * that a vCPU whose CR3 another vCPU already shadows takes no fault to reach the sptes there.
 * smmu_vcpu_enter() leaves that to the next fault. Nothing is loaded while the vCPU has no CR3
 * (shadow mode) or its CR3 lies in no valid slot (the next fault reports that).
 * @return 0; -EINVAL (NULL); -ENOMEM (the root page could not be allocated).
 */
SMMU_API int smmu_vcpu_mmu_reload(smmu_vcpu *vcpu);

/**
 * INVLPG (kvm_mmu_invlpg → FNAME(invlpg)): where the walk of @p gva from the root reaches a leaf
 * of an unsync page (through pages with unsync children), that spte is zapped and the guest pte
 * it shadows now is mapped again (FNAME(update_pte)); then the vCPU's TLB is flushed. In direct
 * mode only the TLB flush.
 * @return 0; -EINVAL (NULL, non-canonical @p gva); -ENOMEM (the vCPU's caches could not be
 *         filled).
 */
SMMU_API int smmu_vcpu_invlpg(smmu_vcpu *vcpu, smmu_gva_t gva);

/** Outcome of a fault. */
enum smmu_fault_outcome {
	SMMU_FAULT_MAPPED = 0,   /**< an spte now maps the address with the access asked */
	SMMU_FAULT_GUEST_PF = 1, /**< the guest's own tables deny it: inject a page fault (see reason) */
	SMMU_FAULT_MMIO = 2,     /**< the gfn lies in no slot: emulated MMIO */
	SMMU_FAULT_RETRY = 3,    /**< raced with an invalidation; the guest retries the access */
};

/** Why the guest's tables deny an access (FNAME(walk_addr)'s error code). */
enum smmu_guest_pf_reason {
	SMMU_PF_NOT_PRESENT = 1,
	SMMU_PF_WRITE_PROTECTED = 2,
	SMMU_PF_USER_PROTECTED = 3,
	SMMU_PF_NX = 4,
};

/** What a fault did. */
struct smmu_fault_info {
	enum smmu_fault_outcome outcome; /**< what happened (also the return value) */
	enum smmu_guest_pf_reason pf_reason; /**< for SMMU_FAULT_GUEST_PF */
	int pf_level;        /**< guest level where the walk stopped, for SMMU_FAULT_GUEST_PF */
	smmu_gfn_t gfn;      /**< the guest frame the address maps to (MAPPED, MMIO) */
	int level;           /**< level of the installed leaf spte (MAPPED) */
	uint32_t pages_created; /**< shadow pages this fault created */
	bool emulated_write; /**< a write to a shadowed table: the access needs emulation */
};

/**
 * Handle a page fault at @p addr for @p access (kvm_mmu_page_fault → FNAME(page_fault) in shadow
 * mode, tdp_page_fault/direct_map in direct mode). Memory caches are topped up before mmu_lock.
 * In shadow mode @p addr is a guest virtual address and the vCPU needs a CR3. A gfn in no slot
 * leaves an MMIO spte; a later fault whose walk of the root ends at an MMIO spte of the current
 * memslot generation granting @p access returns SMMU_FAULT_MMIO at once, without a page fault
 * (handle_mmio_page_fault; smmu_mmio_counters in stats.h).
 * @param info may be NULL.
 * @return an smmu_fault_outcome (>= 0), or -EINVAL (NULL vcpu, unknown access bits, address
 *         beyond the address space: non-canonical in shadow mode, at or above
 *         2^SMMU_DIRECT_GPA_BITS (2^48, what the 4-level direct map reaches) in direct mode;
 *         shadow mode without CR3), -ENOMEM (caches could not be filled; nothing changed),
 *         -EFAULT (a guest table lies in no slot).
 */
SMMU_API int smmu_vcpu_fault(smmu_vcpu *vcpu, smmu_gva_t addr, uint32_t access,
			     struct smmu_fault_info *info);

/** What the hardware would reach through the current shadow root. */
struct smmu_translation {
	void *hva;          /**< host pointer to the byte at addr */
	uint32_t access;    /**< permissions the sptes grant (WRITE, USER, EXEC bits) */
	int level;          /**< leaf level */
	uint64_t spte;      /**< the leaf spte */
};

/**
 * Walk the current shadow root for @p addr without faulting, as the hardware walker would.
 * Takes mmu_lock (site VCPU).
 * @return 0; -EINVAL (NULL, unknown access bits, an address the vCPU cannot use: non-canonical
 *         in shadow mode, at or above 2^48 in direct mode); -EFAULT (no present leaf, or no root);
 *         -EACCES (present but does not grant @p access).
 */
SMMU_API int smmu_vcpu_translate(smmu_vcpu *vcpu, smmu_gva_t addr, uint32_t access,
				 struct smmu_translation *out);

/**
 * Access guest memory as the vCPU would: process requests, enter guest mode and look up the
 * vCPU's TLB, else walk the shadow root and fill the TLB, else fault and retry; a write to a
 * write-protected guest page table is emulated through smmu_guest_write. May cross pages. A
 * @p len of 0 accesses nothing and returns 0 once @p addr itself is one the vCPU can use
 * (@p buf may then be NULL).
 * @return 0; -EINVAL (NULL vcpu, NULL buffer with len > 0, a range the vCPU cannot address:
 *         non-canonical or no CR3 in shadow mode, reaching 2^48 in direct mode; nothing
 *         counted); -EFAULT (the guest's tables deny it, or MMIO); -ENOMEM; -EAGAIN (no progress
 *         after repeated faults).
 */
SMMU_API int smmu_vcpu_read(smmu_vcpu *vcpu, smmu_gva_t addr, void *buf, size_t len);
SMMU_API int smmu_vcpu_write(smmu_vcpu *vcpu, smmu_gva_t addr, const void *buf, size_t len);

/** vCPU counters. */
struct smmu_vcpu_counters {
	uint64_t faults;       /**< smmu_vcpu_fault calls that got past argument checks */
	uint64_t tlb_hits;     /**< accesses the software TLB answered */
	uint64_t tlb_misses;   /**< accesses that walked the shadow root */
	uint64_t tlb_flushes;  /**< TLB flushes (requests processed, CR3 loads) */
	uint64_t reloads;      /**< MMU reload requests processed (3.11's KVM_REQ_MMU_RELOAD: every root dropped; today's KVM_REQ_MMU_FREE_OBSOLETE_ROOTS: the obsolete ones) */
	uint64_t roots_loaded; /**< roots allocated (mmu_alloc_roots) */
};
SMMU_API int smmu_vcpu_get_counters(const smmu_vcpu *vcpu, struct smmu_vcpu_counters *out);

#ifdef __cplusplus
}
#endif
#endif
