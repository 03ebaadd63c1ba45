/*
 * libshadowmmu — the VM: configuration, memslots (KVM_SET_USER_MEMORY_REGION), guest memory.
 *
 * Locking: every function here takes mmu_lock itself where it touches MMU state; none may be
 * called with mmu_lock held by the caller (that is strategy.h's domain). Memslot changes are
 * serialized by the VM's slots lock, as KVM's slots_lock serializes them.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_VM_H
#define SHADOWMMU_VM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How vCPUs translate: shadow paging of guest page tables, or two-dimensional (TDP-like). */
enum smmu_mmu_mode {
	SMMU_MODE_SHADOW = 0, /**< role.direct = 0 pages shadow guest tables; faults on gvas */
	SMMU_MODE_DIRECT = 1, /**< direct pages only; faults on gpas */
};

/** Which kernel's rules where they differ. */
enum smmu_profile {
	SMMU_PROFILE_LINUX_3_11 = 0, /**< the seed's kernel: mmu_page_hash is gfn & 1023 */
	SMMU_PROFILE_LINUX_TODAY = 1,/**< Linux 6.18 (7.2 measures alike): hash_64 over 4096
				       *  buckets. In every profile, every shadowed guest table
				       *  disallows large pages over it: today's KVM counts 4K-level
				       *  ones in account_shadowed and write-tracks the others, which
				       *  disallows the large page as well */
	SMMU_PROFILE_LINUX_6_1 = 2,  /**< Linux 6.1: today's rules but the few changed since
				       *  (docs/DESIGN.md lists them) */
};

/** kvm_arch_flush_shadow_memslot: what deleting or moving a slot does to the shadow MMU. */
enum smmu_flush_strategy {
	SMMU_FLUSH_ZAP_ALL = 0,        /**< kvm_mmu_zap_all, holding the lock throughout */
	SMMU_FLUSH_FAST_ZAP,           /**< kvm_mmu_invalidate_zap_all_pages (3.11's choice) */
	SMMU_FLUSH_RMAP_ONLY,          /**< the v4 patch: unmap the slot's rmaps; lpage_info left as is */
	SMMU_FLUSH_RMAP_REBUILD,       /**< the v4 patch plus re-initialising the slot's lpage_info */
	SMMU_FLUSH_HASH_WALK,          /**< Gleb's proposal: mmu_page_hash for every gfn, plus rmaps */
	SMMU_FLUSH_STRATEGY_COUNT
};

/** zap_all's three ways of holding the lock. */
enum smmu_zap_mode {
	SMMU_ZAP_HOLD = 0,   /**< hold mmu_lock for the whole walk (Linux before 3.11) */
	SMMU_ZAP_RESTART,    /**< break on needbreak and restart the walk (the 2019 hang) */
	SMMU_ZAP_GENERATION, /**< break on needbreak, zap only the starting generation (the thread) */
	SMMU_ZAP_MODE_COUNT
};

/** KVM flushes that a config can skip on purpose, to study the bug that results. */
enum smmu_flush_point {
	SMMU_SKIP_FLUSH_COMMIT_ZAP = 1u << 0,  /**< kvm_mmu_commit_zap_page's flush before freeing */
	SMMU_SKIP_FLUSH_WRPROT = 1u << 1,      /**< flush after a writable spte became read-only */
	SMMU_SKIP_FLUSH_RMAP_UNMAP = 1u << 2,  /**< flush after unmapping rmaps (notifier, flush) */
	SMMU_SKIP_FLUSH_PTE_WRITE = 1u << 3,   /**< flush after emulating a guest pte write */
	SMMU_SKIP_RELOAD_FAST_ZAP = 1u << 4,   /**< fast zap's reload request (all vCPUs) */
};

/** kvm_page_table_hashfn: which gfn → bucket function mmu_page_hash uses. */
enum smmu_hash_fn {
	SMMU_HASH_PROFILE = 0, /**< the profile's: MASK for 3.11, HASH64 for 6.1 and today */
	SMMU_HASH_MASK = 1,    /**< gfn & (buckets - 1), Linux 3.11: aligned gfns of direct pages
				    pile up in few buckets */
	SMMU_HASH_HASH64 = 2,  /**< hash_64(gfn, log2(buckets)), Linux today */
};

/**
 * The host kernel's preemption model (CONFIG_PREEMPT_NONE, CONFIG_PREEMPT_VOLUNTARY,
 * CONFIG_PREEMPT / CONFIG_PREEMPTION, or the live choice of CONFIG_PREEMPT_DYNAMIC), which decides
 * when cond_resched_lock() lets go of mmu_lock.
 *
 * In the kernel, cond_resched_lock() (__cond_resched_lock, 3.11 and today; today's rwlock twin
 * __cond_resched_rwlock_write) breaks the lock when need_resched() is set or when
 * spin_needbreak() (rwlock_needbreak() today) sees a waiter, and spin_needbreak() returns 0
 * unless the kernel is preemptible: `#ifdef CONFIG_PREEMPT` in 3.11's include/linux/sched.h,
 * `preempt_model_preemptible()` in today's include/linux/spinlock.h. So on a kernel built
 * without full preemption, a zapper never yields to a vCPU spinning on mmu_lock; it yields only
 * when the scheduler wants its CPU for another task.
 *
 * The model: every lock-breaking path asks one question, cond_resched_lock's rule
 * (need_resched() || spin_needbreak()). spin_needbreak() is "a thread is queued for mmu_lock"
 * under FULL and false otherwise. need_resched() is raised by a modelled scheduler: when
 * smmu_vm_config.resched_slice_ns is non-zero, another task is taken to be runnable on the CPU of
 * the thread holding mmu_lock, and need_resched() becomes true once that thread has held the lock
 * (or held it again after its last resched break) for resched_slice_ns. A break taken for
 * need_resched() starts a new slice; a break taken only for a waiter does not (the thread never
 * left its CPU). The time the breaker would spend off its CPU while the other task runs is not
 * modelled: it queues for the lock again at once, behind the waiters.
 */
enum smmu_preempt_model {
	SMMU_PREEMPT_FULL = 0,      /**< CONFIG_PREEMPT(ION): break for a waiter or on need_resched.
				      *  The default, and the only model before this option */
	SMMU_PREEMPT_VOLUNTARY = 1, /**< CONFIG_PREEMPT_VOLUNTARY (most distributions, and
				      *  PREEMPT_DYNAMIC's default): break on need_resched only. Its
				      *  extra resched points are might_sleep() calls, and none lies
				      *  under mmu_lock (nothing may sleep there), so every mmu_lock
				      *  hold is the same as under NONE */
	SMMU_PREEMPT_NONE = 2,      /**< CONFIG_PREEMPT_NONE (servers): break on need_resched only */
	SMMU_PREEMPT_MODEL_COUNT
};

/** A resched_slice_ns for a busy host: HZ=250's 4 ms tick, the first tick at which the scheduler
 *  (scheduler_tick → EEVDF's update_curr; CFS's check_preempt_tick before 6.6) finds that the
 *  holder used up a base slice of 3 ms (0.75 ms × (1 + log2(CPUs)), 8 CPUs or more) and sets
 *  need_resched. smmu-bench uses it unless told otherwise. */
#define SMMU_RESCHED_SLICE_NS 4000000ull

/** VM settings. Fill with smmu_vm_config_default(), then change what you need. */
struct smmu_vm_config {
	enum smmu_mmu_mode mode;   /**< shadow (default) or direct */
	enum smmu_profile profile; /**< 3.11 (default), today or 6.1 */
	enum smmu_flush_strategy flush_strategy; /**< used by delete and move */
	uint32_t hash_buckets;    /**< power of two, at most 2^24; 0 = the profile's: 1024 (3.11),
				       4096 (today) */
	uint32_t zap_batch;       /**< fast zap's pages between lock breaks; 0 = BATCH_ZAP_PAGES (10) */
	uint64_t max_mmu_pages;   /**< page budget; 0 = KVM's: 2% of guest pages, at least 64 */
	uint32_t tlb_sets;        /**< software TLB sets per vCPU (power of two, at most 65536); 0 = 64 */
	uint32_t tlb_ways;        /**< ways per set, at most 64; 0 = 4 */
	uint32_t skip_flush;      /**< enum smmu_flush_point bits only: deliberate bugs; 0 = none */
	/** Audit after every MMU operation and abort with the report at the first violation: after
	 *  a VM-wide operation invariants 1-6 and 9, after a vCPU's fault also that vCPU's 7, 8
	 *  and 10, so vCPU threads may run meanwhile (audit.h, "Concurrency"). */
	bool audit_every_op;
	uint8_t hash_fn;          /**< enum smmu_hash_fn (0 to 2); 0 = the profile's */
	/** Fast zap's drain commits (flushes TLBs and frees) what it zapped after every batch and
	 *  then releases mmu_lock, waiter or not, instead of committing once at the end and breaking
	 *  only for a waiter as KVM does: one flush per batch buys stretches of holding no longer
	 *  than a batch, whatever the VM's size. false (KVM's way) by default. */
	bool zap_commit_per_batch;
	/** Fast zap's drain zaps each obsolete page's obsolete descendants before the page itself,
	 *  lowest level first, instead of KVM's oldest-first order that unlinks up to 512 children
	 *  in one step: every step then zaps a page whose children are already gone, so a step's
	 *  cost no longer depends on how many children a page has. Same pages zapped, same final
	 *  state. false (KVM's order) by default. */
	bool zap_leaf_first;
	/** enum smmu_preempt_model: when cond_resched_lock breaks mmu_lock. 0 = SMMU_PREEMPT_FULL:
	 *  a zero-filled config keeps meaning what it meant before the option existed. */
	uint8_t preempt;
	uint8_t reserved_bytes[3]; /**< zero */
	/** The modelled scheduler (see enum smmu_preempt_model): how long the thread holding
	 *  mmu_lock runs before need_resched() is set on its CPU. 0 = never: nothing else is
	 *  runnable on that CPU (the default; breaks then depend on waiters alone, and only under
	 *  FULL). SMMU_RESCHED_SLICE_NS (4 ms) models a busy host. */
	uint64_t resched_slice_ns;
	uint64_t reserved[5];     /**< zero: room to grow without breaking the ABI */
};

/** Fill @p cfg with defaults (shadow mode, 3.11 profile, fast-zap flush, full preemption with
 *  no other task on the zapper's CPU). NULL is ignored. */
SMMU_API void smmu_vm_config_default(struct smmu_vm_config *cfg);

/**
 * Create a VM (kvm_create_vm + kvm_arch_init_vm). Also audits every operation when the
 * environment variable SMMU_AUDIT is set to a non-zero value.
 * @param cfg settings, or NULL for the defaults.
 * @return 0 and *out, or -EINVAL (NULL out; hash_buckets not a power of two or above 2^24;
 *         tlb_sets not a power of two or above 65536; tlb_ways above 64; skip_flush bits that are
 *         no enum smmu_flush_point; hash_fn above SMMU_HASH_HASH64; unknown
 *         mode/profile/strategy/preemption model; non-zero reserved fields), -ENOMEM.
 */
SMMU_API int smmu_vm_create(const struct smmu_vm_config *cfg, smmu_vm **out);

/**
 * Destroy a VM (kvm_destroy_vm): zaps every page, frees every slot's backing and metadata.
 * The caller must have destroyed or stopped using every vCPU; vCPUs still alive are destroyed.
 * NULL is ignored.
 */
SMMU_API void smmu_vm_destroy(smmu_vm *vm);

/** Read back the VM's configuration (with defaults resolved). @return 0 or -EINVAL. */
SMMU_API int smmu_vm_get_config(const smmu_vm *vm, struct smmu_vm_config *out);

/** Change the flush strategy used by later deletes and moves. @return 0 or -EINVAL. */
SMMU_API int smmu_vm_set_flush_strategy(smmu_vm *vm, enum smmu_flush_strategy s);

/**
 * Set n_max_mmu_pages (kvm_mmu_change_mmu_pages): zaps the oldest pages while more are used; if
 * it had to zap, the budget becomes the pages still in use (more than @p limit where only roots
 * in use are left: the 3.11 profile zaps those too, today's passes over them).
 * @return 0, or -EINVAL for NULL or a limit below 1.
 */
SMMU_API int smmu_vm_set_max_mmu_pages(smmu_vm *vm, uint64_t limit);

/* ---- memslots ---------------------------------------------------------------------------- */

/** Memslot flags, KVM's values. */
enum smmu_memslot_flags {
	SMMU_MEM_LOG_DIRTY_PAGES = 1u << 0,
	SMMU_MEM_READONLY = 1u << 1,
};
/** Slot ids run from 0 to SMMU_MAX_MEMSLOTS - 1. */
#define SMMU_MAX_MEMSLOTS 512

/**
 * Create a slot of @p npages guest pages at @p base_gfn, with its own lazily allocated backing
 * (kvm_set_memory_region, KVM_MR_CREATE). The backing is zero-filled anonymous memory aligned to
 * 1 GiB so that large pages can be backed by it.
 * @return 0; -EINVAL (NULL vm, id out of range, npages 0, unknown flags, base_gfn + npages beyond
 *         the guest physical space the VM's MMU maps: 2^SMMU_GPA_BITS (52 bits) in shadow mode,
 *         2^SMMU_DIRECT_GPA_BITS (48 bits, the 4-level direct map's reach) in direct mode, as
 *         today's KVM refuses a slot beyond kvm_mmu_max_gfn); -EEXIST (id in use, or the range
 *         overlaps a slot); -ENOMEM. On error nothing changed.
 */
SMMU_API int smmu_memslot_create(smmu_vm *vm, int id, smmu_gfn_t base_gfn, uint64_t npages,
				 uint32_t flags);

/**
 * Delete a slot (KVM_MR_DELETE): marks it invalid, flushes with the VM's strategy
 * (kvm_arch_flush_shadow_memslot), then frees its rmaps, lpage_info and backing.
 * @return 0; -EINVAL for NULL; -ENOENT for an unknown id.
 */
SMMU_API int smmu_memslot_delete(smmu_vm *vm, int id);

/**
 * Move a slot to @p new_base_gfn keeping its backing (KVM_MR_MOVE): flushes like delete, then
 * rebuilds lpage_info for the new alignment.
 * @return 0; -EINVAL (NULL, range beyond the guest physical space, as for smmu_memslot_create);
 *         -ENOENT; -EEXIST (overlap); -ENOMEM. On error nothing changed.
 * Move a slot to @p new_base_gfn keeping its backing (KVM_MR_MOVE): flushes like delete. The
 * today profile then gives the slot fresh rmaps and lpage_info for the new alignment; the 3.11
 * profile keeps the old ones as KVM 3.11 did (edge entries of the old layout and any count the
 * flush left behind), unless the new alignment needs more entries than they have.
 * @return 0; -EINVAL (NULL, range beyond the address space); -ENOENT; -EEXIST (overlap);
 *         -ENOMEM. On error nothing changed.
 */
SMMU_API int smmu_memslot_move(smmu_vm *vm, int id, smmu_gfn_t new_base_gfn);

/**
 * Change a slot's flags (KVM_MR_FLAGS_ONLY). Turning on LOG_DIRTY_PAGES write-protects every
 * spte of the slot with lock break (kvm_mmu_slot_remove_write_access) and disallows large pages;
 * turning it off allows them again. READONLY cannot change on an existing slot: as KVM's
 * __kvm_set_memory_region (3.11 and today), a change of that bit is refused with -EINVAL;
 * delete the slot and create it again instead.
 * @return 0; -EINVAL (NULL, unknown flags, READONLY differs from the slot's); -ENOENT;
 *         -ENOMEM (dirty bitmap). On error nothing changed.
 */
SMMU_API int smmu_memslot_set_flags(smmu_vm *vm, int id, uint32_t flags);

/**
 * Say how the host maps @p id's backing: with pages of at most @p level (SMMU_LEVEL_4K: 4 KiB
 * pages, e.g. MADV_NOHUGEPAGE; SMMU_LEVEL_2M: transparent huge pages; SMMU_LEVEL_1G: 1 GiB
 * hugetlbfs pages). A leaf spte is never larger than the host's page behind it (today's
 * kvm_mmu_max_mapping_level → host_pfn_mapping_level; 3.11's host_mapping_level and
 * transparent_hugepage_adjust). A new slot assumes SMMU_LEVEL_1G, so that only lpage_info limits
 * the level. At SMMU_LEVEL_2M the host splits a huge page that smmu_mmu_notifier_invalidate_range
 * covers only in part (as THP does: the split invalidates the whole 2 MiB page first), and that
 * page maps 4 KiB from then on (its pages keep their state, the cut's are unmapped); a write
 * into a huge page not split maps all of it writable, as THP's fault populates it whole (what
 * pte prefetch needs). hugetlbfs pages are never split. Setting the level again forgets
 * the splits (the host mapped the backing anew).
 * @return 0; -EINVAL (NULL @p vm, @p level not 1 to 3); -ENOENT (no slot @p id); -EBUSY (a leaf
 *         spte of the slot is larger than @p level: invalidate it first, as the host's remap
 *         would). On error nothing changed.
 */
SMMU_API int smmu_memslot_set_host_level(smmu_vm *vm, int id, int level);

/**
 * Start the memslots' generation at @p gen instead of 0, as kvm_create_vm did until Linux 5.x
 * (-150, "to easily test the code of handling generation number wrap-around"): a VM can then
 * reach the wrap of the 19-bit MMIO generation (smmu_mmio_counters) in a few slot updates. Only
 * on a VM that has no shadow page yet, so no MMIO spte carries an older generation.
 * @return 0; -EINVAL (NULL, bit 63 set (KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS), or in the today
 *         profile an odd @p gen: the odd generations are the SMM address space's); -EBUSY (the
 *         VM has shadow pages). On error nothing changed.
 */
SMMU_API int smmu_vm_set_memslots_generation(smmu_vm *vm, uint64_t gen);

/** What a slot is. */
struct smmu_memslot_info {
	int id;              /**< slot id */
	smmu_gfn_t base_gfn; /**< first guest frame */
	uint64_t npages;     /**< guest pages */
	uint32_t flags;      /**< enum smmu_memslot_flags */
	void *hva; /**< start of the backing */
};

/** Read a slot's description. @return 0, -EINVAL, -ENOENT. */
SMMU_API int smmu_memslot_get(const smmu_vm *vm, int id, struct smmu_memslot_info *out);

/**
 * Read and clear a slot's dirty bitmap (KVM_GET_DIRTY_LOG): bit i of @p bitmap is gfn
 * base_gfn + i; write-protects the pages that were dirty again and flushes every vCPU's TLB,
 * waiting for the vCPUs in guest mode: a write that this log does not show shows in a later one.
 * @param words length of @p bitmap in uint64_t; at least (npages + 63) / 64.
 * @return number of dirty pages; -EINVAL (NULL, too short); -ENOENT; -ENODATA (logging off).
 */
SMMU_API int64_t smmu_memslot_get_dirty_log(smmu_vm *vm, int id, uint64_t *bitmap, size_t words);

/**
 * Host pointer behind @p gfn (gfn_to_hva), or NULL when no valid slot holds it.
 * The pointer stays valid until that slot is deleted.
 */
SMMU_API void *smmu_gfn_to_hva(const smmu_vm *vm, smmu_gfn_t gfn);

/**
 * The host wrote [@p start, @p end) of slot backing through host pointers (smmu_gfn_to_hva,
 * smmu_vcpu_translate): its page tables now map the pages that range touches writable, as a
 * store into anonymous memory leaves them (over THP, smmu_memslot_set_host_level SMMU_LEVEL_2M,
 * the whole 2 MiB huge page holding each, until the host splits it). KVM never sees such a
 * store; it matters to pte
 * prefetch, whose atomic pfn lookups map only pages the host already maps writable. Faults,
 * smmu_guest_write and the MMU notifier keep this state themselves. Bytes in no slot's backing
 * are ignored, as the MMU notifier ignores them.
 * @return 0; -EINVAL (NULL vm, or @p start after @p end).
 */
SMMU_API int smmu_host_wrote(smmu_vm *vm, const void *start, const void *end);

/* ---- host side: the MMU notifier --------------------------------------------------------- */

/**
 * The host unmapped [@p start, @p end) of slot backing (kvm_mmu_notifier_invalidate_range_start
 * → kvm_unmap_hva_range, then _range_end): drops every spte whose frame lies in the range,
 * through the rmaps of the gfns behind it, and flushes TLBs. Faults that race with it retry
 * (mmu_notifier_count / mmu_notifier_seq): in the 3.11 profile every fault while it is in
 * progress; in today's only a fault on a page in the range in progress (mmu_invalidate_retry_hva),
 * and a range that no slot maps concerns no fault. Either retries a fault that sampled the
 * sequence before an invalidation ended. The 3.11 profile holds mmu_lock for the whole unmap;
 * today's breaks it when a thread waits.
 * @return the number of sptes dropped, or -EINVAL (NULL, start > end).
 */
SMMU_API int64_t smmu_mmu_notifier_invalidate_range(smmu_vm *vm, const void *start,
						    const void *end);

/**
 * The host's page lookup in a fault (kvm_faultin_pfn → hva_to_pfn → the host's page fault):
 * smmu_vcpu_fault calls it for a fault on a gfn of a slot (not a write to a read-only slot),
 * with the host address of the gfn's page and whether the fault writes, after the fault sampled
 * the MMU notifier's sequence and before it takes mmu_lock, on the faulting thread. The host does
 * there what its own page fault would (map the zero page, copy it on a write, split a huge page)
 * and reports what it unmapped through smmu_mmu_notifier_invalidate_range from inside the hook;
 * the fault then retries (SMMU_FAULT_RETRY), as KVM's does. The hook may call
 * smmu_mmu_notifier_invalidate_range and smmu_host_wrote for @p vm, nothing else of the library.
 */
typedef void (*smmu_hva_to_pfn_fn)(smmu_vm *vm, void *hva, bool write, void *ctx);

/**
 * Install (or with NULL remove) the host's page-lookup hook (smmu_hva_to_pfn_fn). Without one,
 * a fault finds the host's page as it is. Quiescent point only (no fault in flight).
 * @return 0; -EINVAL (NULL @p vm).
 */
SMMU_API int smmu_set_hva_to_pfn_hook(smmu_vm *vm, smmu_hva_to_pfn_fn fn, void *ctx);

/** The host address space is going away (kvm_mmu_notifier_release): zaps all, with the fast
 *  invalidate in the 3.11 profile, with kvm_mmu_zap_all in today's. @return 0/-EINVAL. */
SMMU_API int smmu_mmu_notifier_release(smmu_vm *vm);

/* ---- guest memory ------------------------------------------------------------------------ */

/**
 * Read guest physical memory (kvm_read_guest). May cross page and slot boundaries. A @p len of 0
 * reads nothing and returns 0 (@p buf may then be NULL).
 * @return 0; -EINVAL (NULL vm, NULL buf with len > 0); -EFAULT (some byte of
 *         [gpa, gpa + len) lies in no valid slot, or the range runs past 2^64; nothing read).
 */
SMMU_API int smmu_guest_read(const smmu_vm *vm, smmu_gpa_t gpa, void *buf, size_t len);

/**
 * Write guest physical memory as an emulated guest store (emulator_write_phys): when a written
 * gfn is a shadowed guest page table, the write is trapped and kvm_mmu_pte_write zaps the
 * shadow entries that depended on the old value, or the whole shadow page when the write is
 * misaligned or floods it (smmu_vm_get_mmu_flooded says when). Each page's part of the range is
 * one write. A @p len of 0 writes nothing and returns 0 (@p buf may then be NULL).
 * @return 0; -EINVAL (NULL vm, NULL buf with len > 0); -EFAULT (a byte in no valid slot, or the
 *         range runs past 2^64; nothing written); -EROFS (slot read-only; nothing written).
 */
SMMU_API int smmu_guest_write(smmu_vm *vm, smmu_gpa_t gpa, const void *buf, size_t len);

/** 64-bit helpers over smmu_guest_read/write, same errors. */
SMMU_API int smmu_guest_read_u64(const smmu_vm *vm, smmu_gpa_t gpa, uint64_t *val);
SMMU_API int smmu_guest_write_u64(smmu_vm *vm, smmu_gpa_t gpa, uint64_t val);

#ifdef __cplusplus
}
#endif
#endif
