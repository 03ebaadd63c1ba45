/*
 * smmu-bench results: one record per strategy run, written as an aligned table (default), JSON
 * lines (--json) or CSV (--csv), then the goals checked against the records.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_BENCH_REPORT_H
#define SMMU_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "noise.h"

/* KVM 3.11 x86-64: sizeof(struct kvm_mmu_page), the kmem_cache "kvm_mmu_page_header" object
 * (link 16, hash_link 16, gfn 8, role 4+4, spt 8, gfns 8, unsync/root_count/unsync_children 16,
 * parent_ptes 8, mmu_valid_gen 8, unsync_child_bitmap 64, write_flooding_count 4+4), and
 * sizeof(struct pte_list_desc) (3 sptes + next). Used for the memory reference. */
#define KVM_SP_HEADER_BYTES 168u
#define KVM_PTE_LIST_DESC_BYTES 32u

struct hist5 {
	uint64_t count, p50, p99, p999, max;
};

struct run_result {
	char bench[16];          /* "smmu-bench" */
	char workload[16];       /* direct, shadow, maps */
	char mode[8];            /* direct, shadow */
	char strategy[24];
	char site[16];           /* the mmu_lock site whose holds are reported */
	uint64_t seed;
	int vcpus, procs;
	uint64_t shadow_pages;   /* n_used_mmu_pages right before the zap */
	uint64_t pages_after;
	uint64_t total_ns;
	uint64_t floor_ns, floor_read_ns, floor_free_ns;
	double ratio;            /* total / floor */
	double pages_per_s;      /* shadow pages before / total */
	struct hist5 hold;       /* the zapping site */
	struct hist5 fault_hold; /* SMMU_SITE_FAULT */
	struct hist5 wait;       /* SMMU_SITE_FAULT's wait: vCPUs waiting for mmu_lock */
	uint64_t vcpu_site_wait_max; /* SMMU_SITE_VCPU's wait max (reloads, root loads) */
	uint64_t breaks, handoffs;
	bool has_report;         /* a struct smmu_zap_report exists for the call */
	uint64_t rounds, pages_zapped, sptes_dropped, rep_flushes;
	/* counters.pages_zapped delta (mmu_shadow_zapped: every prepare_zap, by any thread, until
	 * the vCPUs stopped): an in-use root counts twice here and not in pages_zapped */
	uint64_t vm_pages_zapped;
	bool completed;
	uint64_t remote_flushes; /* counters.remote_tlb_flushes delta */
	uint64_t site_flushes;   /* flushes made while the zapping site held the lock */
	uint64_t site_flush_ns;  /* the time those flushes took */
	struct hist5 request_wait; /* the zapping site's requests that waited for vCPUs in guest mode */
	uint64_t reload_requests;
	uint64_t faults_during, mapped_during, created_during, retries_during, errors_during;
	uint64_t sp_bytes, rmap_bytes, lpage_bytes;
	uint64_t mem_bytes;      /* sp_bytes + rmap_bytes before the zap */
	uint64_t kvm_bytes;      /* KVM's bytes for the same pages, rmaps and descriptors */
	double mem_ratio;
	uint64_t rss_kb, maxrss_kb;
	uint64_t build_ns, build_map_ns, build_fault_ns, destroy_ns;
	uint32_t hash_buckets;   /* mmu_page_hash buckets of the VM */
	char hash_fn[8];         /* mask, hash64 */
	uint32_t zap_batch;      /* fast zap's batch */
	char profile[8];         /* 3.11, today */
	double other_cpu;        /* share of the machine's CPU time other programs used during the
				    run (0..1): is the machine shared? */
	int floor_runs;          /* the floor is the median of this many measurements */
	uint64_t holds_over_20us; /* the zapping site's holds in histogram buckets from 20 µs up */
	uint64_t hold_sum_ns;     /* the zapping site's time holding the lock, all stretches */
	uint64_t noise_max_gap_ns;    /* the machine's longest lost stretch (noise.h), before the runs */
	double noise_gaps_20us_per_s; /* its lost stretches over 20 µs per second per core */
	char preempt[12];        /* the preemption model: none, voluntary, full */
	uint64_t resched_slice_ns; /* the modelled scheduler's slice (0 = need_resched never) */
	uint64_t first_hold_ns;  /* fast_zap_kvm: the first stretch, bump + reloads + first batch */
	int rc;                  /* the call's return value */
	/* pte prefetch and unsync pages: the workload's options, and the census before the zap */
	bool gpte_accessed;      /* leaf guest ptes carry the Accessed bit */
	bool host_writable;      /* the host mapped every frame writable before the build */
	int per_table;           /* shadow: 4 KiB pages mapped per guest last-level table */
	uint64_t guest_writes;   /* leaf ptes the guest rewrote through its tables' self-map */
	uint64_t guest_reads;    /* ... or read there (--guest-reads, the control) */
	uint64_t build_faults;   /* faults the build issued */
	uint64_t leaf_pages;     /* level-1 shadow pages before the zap */
	uint64_t leaf_sptes;     /* present sptes in them: faulted + prefetched */
	uint64_t unsync_pages;   /* mmu_unsync before the zap */
	uint64_t unsync_after;   /* mmu_unsync once the vCPUs stopped */
};

enum report_format { FMT_TABLE = 0, FMT_JSON, FMT_CSV };

struct report {
	enum report_format fmt;
	FILE *out;
	FILE *json_copy;         /* also write JSON lines here (--save), or NULL */
	struct run_result *rows;
	int n, cap;
	bool header_done;
	const char *title;
	bool has_noise;
	bool leaf_batch_note;    /* fast_zap_leaf runs with a batch of 1 (no --zap-batch given) */
	struct noise noise;      /* measured before the runs; copied into every record */
};

void report_init(struct report *r, enum report_format fmt, FILE *out, const char *title);
/* Write one run now (table row, JSON line or CSV row) and keep it for the summaries. */
void report_add(struct report *r, const struct run_result *res);
/* Table format: the vCPU/memory table, the scaling summary when @p scaling, then the goals. */
void report_finish(struct report *r, bool scaling);
void report_free(struct report *r);

/* "812ns", "12.3us", "4.56ms", "1.23s" */
const char *fmt_ns(char *buf, size_t len, uint64_t ns);

#endif
