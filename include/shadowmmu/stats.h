/*
 * libshadowmmu — mmu_lock statistics and VM counters.
 *
 * Every acquisition of mmu_lock is timed: how long the taker waited for it and how long it held
 * it, per call site, in log-linear histograms (relative error under 2%). Lock breaks
 * (cond_resched_lock that really released the lock) and hand-offs (a waiter took the lock during
 * the break) are counted per site. With the build option lock_stats=false nothing is timed and
 * every figure here reads zero.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_STATS_H
#define SHADOWMMU_STATS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Who took mmu_lock: one histogram pair per site. */
enum smmu_site {
	SMMU_SITE_FAULT = 0,     /**< vCPU page fault (kvm_mmu_page_fault) */
	SMMU_SITE_PTE_WRITE,     /**< trapped guest page-table write (kvm_mmu_pte_write) */
	SMMU_SITE_VCPU,          /**< root load/free, CR3 switch, request processing */
	SMMU_SITE_ZAP_ALL,       /**< kvm_mmu_zap_all and its variants */
	SMMU_SITE_FAST_ZAP,      /**< kvm_mmu_invalidate_zap_all_pages */
	SMMU_SITE_MEMSLOT_FLUSH, /**< kvm_arch_flush_shadow_memslot */
	SMMU_SITE_MEMSLOT,       /**< memslot lifecycle: create, flags, dirty log */
	SMMU_SITE_MMU_NOTIFIER,  /**< host range invalidation and release */
	SMMU_SITE_AUDIT,         /**< smmu_audit */
	SMMU_SITE_FLOOR,         /**< smmu_measure_floor */
	SMMU_SITE_USER0,         /**< free for user strategies */
	SMMU_SITE_USER1,
	SMMU_SITE_USER2,
	SMMU_SITE_USER3,
	SMMU_SITE_COUNT
};

/** A histogram read out: all times in nanoseconds. */
struct smmu_hist_summary {
	uint64_t count; /**< samples */
	uint64_t min;   /**< smallest sample */
	uint64_t p50;   /**< median */
	uint64_t p90;   /**< 90th percentile */
	uint64_t p99;   /**< 99th percentile */
	uint64_t p999;  /**< 99.9th percentile */
	uint64_t max;   /**< largest sample */
	uint64_t sum; /**< total of all samples, for means */
};

/** One site's figures since the last reset. */
struct smmu_site_stats {
	struct smmu_hist_summary wait; /**< time from asking for mmu_lock to getting it */
	struct smmu_hist_summary hold; /**< one stretch of holding it (a break ends a stretch) */
	uint64_t breaks;   /**< cond_resched_lock calls that released the lock */
	uint64_t handoffs; /**< breaks during which a waiting thread took the lock */
	uint64_t remote_flushes; /**< kvm_flush_remote_tlbs calls made while this site held the lock */
	uint64_t remote_flush_ns; /**< time those calls took: posting a flush request to every vCPU
				       and waiting for the vCPUs in guest mode to acknowledge it */
	/**
	 * Request wait: one sample per remote request (TLB flush or MMU reload, KVM_REQUEST_WAIT)
	 * made while this site held the lock that found a vCPU in guest mode: the time from kicking
	 * those vCPUs out of guest mode to the last one's acknowledgment (it left guest mode and
	 * will see the request before it enters again). Requests that found every vCPU outside
	 * guest mode wait for nobody and are not sampled. Part of the holder's hold time.
	 */
	struct smmu_hist_summary request_wait;
};

/**
 * Read one site's lock statistics.
 * Takes no lock: call it at a quiescent point (no thread using the VM), as a bench does.
 * @return 0, or -EINVAL for a NULL pointer or a site out of range.
 */
SMMU_API int smmu_stats_get(const smmu_vm *vm, enum smmu_site site, struct smmu_site_stats *out);

/**
 * Export a site's raw histogram: for each non-empty bucket its lower bound (ns) and count.
 * @param hold true for hold times, false for wait times.
 * @return the number of non-empty buckets (which may exceed @p n: only @p n are written), or
 *         -EINVAL for a NULL vm, a site out of range, or NULL arrays with n > 0.
 */
SMMU_API int smmu_stats_hist(const smmu_vm *vm, enum smmu_site site, bool hold, uint64_t *lower_ns,
			     uint64_t *counts, size_t n);

/** Reset every site's statistics to zero. Quiescent point only. @return 0 or -EINVAL. */
SMMU_API int smmu_stats_reset(smmu_vm *vm);

/** Printable name of a site ("fault", "zap_all", ...), or "?" when out of range. */
SMMU_API const char *smmu_site_name(enum smmu_site site);

/** Counters of MMU work, as kvm->stat and kvm->arch hold them. Monotonic unless noted. */
struct smmu_vm_counters {
	uint64_t n_used_mmu_pages;     /**< pages allocated now (kvm_mod_used_mmu_pages) */
	uint64_t n_max_mmu_pages;      /**< the page budget now */
	uint64_t indirect_shadow_pages;/**< valid indirect pages now */
	uint64_t mmu_valid_gen;        /**< current generation */
	uint64_t pages_created;        /**< kvm_mmu_alloc_page calls */
	uint64_t pages_zapped;         /**< mmu_shadow_zapped: prepare_zap calls */
	uint64_t pages_freed;          /**< pages freed in commit */
	uint64_t pages_recycled;       /**< zapped by the page limit (mmu_recycled) */
	uint64_t faults;               /**< fault calls that took the lock */
	uint64_t faults_fixed;         /**< pf_fixed: faults that installed their leaf spte (today: not
	                                    a write emulated on a shadowed table, nor a fault whose
	                                    spte came out unchanged; 3.11: both counted) */
	uint64_t pte_writes;           /**< trapped guest page-table writes */
	uint64_t remote_tlb_flushes;   /**< kvm_flush_remote_tlbs calls */
	uint64_t reload_requests;      /**< kvm_reload_remote_mmus calls */
	uint64_t lpages;               /**< large sptes present now */
	uint64_t rmap_descs;           /**< pte_list_desc objects live now */
	uint64_t sp_bytes;             /**< bytes held by shadow pages now (header, table, gfns) */
	uint64_t rmap_bytes;           /**< bytes held by rmap heads and descriptors now */
	uint64_t lpage_bytes;          /**< bytes held by lpage_info arrays now */
};

/** Read the counters. Quiescent point only. @return 0 or -EINVAL for NULL pointers. */
SMMU_API int smmu_vm_get_counters(const smmu_vm *vm, struct smmu_vm_counters *out);

/**
 * KVM's mmu_unsync VM stat: the shadow pages that are unsync now (kvm_unsync_page raises it,
 * kvm_unlink_unsync_page on a sync or a zap lowers it, in both eras). A function of its own:
 * struct smmu_vm_counters has no reserved room, and a field appended to it would overrun the
 * struct of a caller built against this header's earlier version. Quiescent point only.
 * @return 0 or -EINVAL for NULL pointers.
 */
SMMU_API int smmu_vm_get_mmu_unsync(const smmu_vm *vm, uint64_t *out);

/**
 * KVM's mmu_flooded VM stat: the shadow pages a trapped guest page-table write zapped instead
 * of updating (kvm_mmu_pte_write, today's kvm_mmu_track_write): the write was misaligned
 * (detect_write_misaligned: not one whole 8-byte entry, nor one byte at an entry's start; a
 * 4-byte store counts as one of its whole entry), or it was the third to a page above level 1
 * with no fault's walk through that page and no lookup finding it in between
 * (detect_write_flooding). Both eras. A function of its own, as smmu_vm_get_mmu_unsync is.
 * Monotonic. Quiescent point only.
 * @return 0 or -EINVAL for NULL pointers.
 */
SMMU_API int smmu_vm_get_mmu_flooded(const smmu_vm *vm, uint64_t *out);

/**
 * MMIO sptes and the memslot generation they carry (mark_mmio_spte, handle_mmio_page_fault,
 * kvm_mmu_invalidate_mmio_sptes; both profiles, as with the kvm module's mmio_caching=Y).
 * A fault on a gfn in no memslot ends in an MMIO spte holding 19 bits of the memslots'
 * generation; a later fault through it is answered at once while the generation is current
 * (SMMU_FAULT_MMIO, no page fault: KVM counts it in no page-fault statistic), and takes the page
 * fault again once a memslot update moved the generation on. A struct with room to grow: a
 * field appended to struct smmu_vm_counters would overrun a caller built against an earlier
 * header.
 */
struct smmu_mmio_counters {
	uint64_t sptes_created; /**< pf_mmio_spte_created (today's vCPU stat, summed over vCPUs):
				     MMIO sptes faults installed (mmu_set_spte → mark_mmio_spte).
				     3.11 has no such statistic; the model counts them in both eras */
	uint64_t fast_hits;     /**< faults answered from an MMIO spte of the current generation
				     granting the access (handle_mmio_page_fault: RET_PF_EMULATE) */
	uint64_t stale_hits;    /**< faults that met an MMIO spte of another generation, or while
				     a memslot update was in progress (check_mmio_spte false:
				     RET_PF_INVALID), and took the page fault */
	uint64_t wrap_zaps;     /**< every page zapped for an MMIO generation wraparound
				     (kvm_mmu_invalidate_mmio_sptes) */
	uint64_t sptes_now;     /**< MMIO sptes in shadow tables now (a gauge) */
	uint64_t memslots_generation; /**< kvm_memslots()->generation now: +1 per publication of
					   the slot array (3.11), +2 with bit 63 set while one is in
					   progress (today) */
	uint64_t mmio_generation; /**< the MMIO generation now (19 bits): today the memslots'
				       generation's low bits, 3.11 those plus MMIO_MAX_GEN - 150 */
	uint64_t reserved[9];   /**< zero */
};

/** Read the MMIO spte counters. Quiescent point only. @return 0 or -EINVAL for NULL pointers. */
SMMU_API int smmu_vm_get_mmio_counters(const smmu_vm *vm, struct smmu_mmio_counters *out);

/** The physical floor of a zap: the cost of touching each shadow page once. */
struct smmu_floor {
	uint64_t pages;    /**< shadow pages on active_mmu_pages when measured */
	uint64_t read_ns;  /**< reading each of their 4 KiB tables once, in active-list order */
	uint64_t free_ns;  /**< freeing as many header + table (+ gfns) objects as a zap's commit
			        does: tables to the VM's table pool, headers and gfns arrays to its
			        object caches (allocated beforehand, outside the timing) */
	uint64_t total_ns; /**< read_ns + free_ns */
	uint64_t checksum; /**< sum of the words read, so the reads cannot be optimized away */
};

/**
 * Measure the floor on the VM's current pages (takes mmu_lock twice, site FLOOR: briefly to
 * count the pages, then to read them, allocating in between). Changes nothing.
 * @return 0; -EINVAL (NULL); -ENOMEM (the objects to free could not be allocated).
 */
SMMU_API int smmu_measure_floor(smmu_vm *vm, struct smmu_floor *out);

#ifdef __cplusplus
}
#endif
#endif
