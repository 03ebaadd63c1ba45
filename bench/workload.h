/*
 * smmu-bench workloads: a VM filled with a known, seed-determined set of shadow pages, and the
 * vCPU threads that keep faulting while a strategy zaps it. Public API only.
 *
 * Shapes (each sized by a target count of shadow pages, --pages):
 *  direct  one slot, direct (TDP-like) mode, one 4 KiB fault per 2 MiB region, the regions
 *          faulted in shuffled order: every fault creates one last-level page, so the VM holds
 *          ~1 page per fault plus its upper levels (1 per GiB, per 512 GiB, the root).
 *  shadow  P guest processes (--procs), each a smmu_gas with its own pool of table frames,
 *          mapping one 4 KiB page in each of n randomly chosen 2 MiB regions out of a span of
 *          4n: every guest last-level table holds one entry, so the shadow pages are many and
 *          lightly filled. Faulted through one vCPU that switches CR3 per process.
 *  maps    as shadow, but each process's VMAs come from a real /proc/PID/maps layout; a few
 *          pages per VMA (evenly spread); read-only VMAs of one layout share their frames across
 *          processes (as shared libraries do), writable ones are private. As many processes as
 *          the target needs (at least --procs), cycling through the layouts.
 *
 * pte prefetch and unsync pages (shadow and maps): smmu_gas_map writes leaf ptes with the
 * Accessed bit, as a guest's ptes carry it once used; --gpte-accessed off clears it before any
 * fault, so FNAME(prefetch_invalid_gpte) refuses every neighbour. Prefetch also needs the host to
 * map the neighbour's frame writable already (its pfn lookup is atomic): --host-writable on
 * marks every frame so before the build faults (a guest that has touched its memory once), off
 * leaves only what faults and table writes mapped. --per-table N (shadow) maps N consecutive
 * 4 KiB pages from an 8-aligned slot of each chosen 2 MiB region and faults the first: with
 * prefetch, that one fault maps up to 7 neighbours (PTE_PREFETCH_NUM = 8). --guest-writes N: after
 * the build, the guest rewrites (same value) the faulted leaf pte of N distinct last-level tables
 * through a writable mapping of those tables (a self-map at SELFMAP_GVA), in processes that no
 * faulting vCPU uses (a vCPU's root load syncs its process); each write faults the table in
 * writable, which unsyncs its level-1 shadow page (mmu_try_to_unsync_pages) instead of trapping.
 * --guest-reads N reads those ptes instead: the same pages and sptes, nothing unsync (the control).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_BENCH_WORKLOAD_H
#define SMMU_BENCH_WORKLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <shadowmmu/shadowmmu.h>

enum wl_kind { WL_DIRECT = 0, WL_SHADOW, WL_MAPS, WL_KIND_COUNT };

const char *wl_kind_name(enum wl_kind k);
int wl_kind_parse(const char *s, enum wl_kind *out);

struct wl_params {
	enum wl_kind kind;
	uint64_t pages;        /* target shadow pages */
	uint64_t seed;
	int procs;             /* guest processes (shadow), minimum processes (maps) */
	int vcpus;             /* faulting threads during the zap */
	uint64_t extra;        /* pre-mapped addresses per faulting vCPU; 0 = automatic */
	uint32_t hash_buckets; /* mmu_page_hash buckets; 0 = the profile's */
	uint8_t hash_fn;       /* enum smmu_hash_fn; 0 = the profile's */
	enum smmu_profile profile;
	uint32_t zap_batch;    /* fast zap's pages between lock breaks; 0 = KVM's 10 */
	bool commit_per_batch; /* fast zap's drain commits at every break (zap_commit_per_batch) */
	bool leaf_first;       /* fast zap's drain zaps the lowest levels first (zap_leaf_first) */
	uint8_t preempt;       /* enum smmu_preempt_model */
	uint64_t resched_slice_ns; /* the modelled scheduler's slice; 0 = nothing else runnable */
	int per_vma;           /* maps: pages per VMA */
	const char *maps_file; /* maps: one layout file; NULL = every *.maps in datadir */
	bool maps_self;        /* maps: the layout of this very process */
	const char *datadir;   /* where the built-in layouts live */
	/* pte prefetch and unsync pages (shadow and maps workloads; see wl_build) */
	bool gpte_no_accessed; /* --gpte-accessed off: leaf guest ptes without the Accessed bit */
	bool host_writable;    /* --host-writable on: the host maps every frame writable first */
	int per_table;         /* --per-table (shadow): 4 KiB pages mapped per guest table; 0 = 1 */
	uint64_t guest_writes; /* --guest-writes: leaf ptes the guest rewrites after the build */
	bool guest_reads;      /* --guest-reads: read them instead (the same self-map, no unsync) */
	const char *label;     /* progress: the stage being built for */
	bool progress;         /* stderr is a terminal */
};

/* One guest process: its address space and the addresses faulted to build the workload. */
struct wl_proc {
	smmu_gas *gas;
	smmu_gpa_t cr3;
	smmu_gva_t *addr;      /* faulted while building */
	uint32_t *access;      /* access of each fault (NULL: write|user) */
	uint64_t n;
	smmu_gva_t *extra;     /* pre-mapped, never faulted while building */
	uint64_t n_extra;
	smmu_gva_t *wr_gva;    /* --guest-writes: each leaf pte to rewrite, as the self-map shows it */
	smmu_gpa_t *wr_gpa;    /* ... and its guest physical address */
	uint64_t n_wr;
};

struct workload {
	struct wl_params p;
	smmu_vm *vm;
	int slot;
	smmu_gfn_t slot_base;
	uint64_t slot_pages;
	uint32_t slot_flags;
	smmu_vcpu *builder;
	struct wl_proc *proc;  /* direct mode: one pseudo-process holding gpas */
	int nproc;
	int nlayouts;          /* maps: layouts used */
	uint64_t build_ns;
	uint64_t map_ns;       /* of which: writing the guest page tables (smmu_gas_map) */
	uint64_t fault_ns;     /* of which: the faults */
	uint64_t faults;       /* build faults issued */
	uint64_t fault_errors; /* build faults that did not map */
	int leaf_level_max;    /* largest leaf level seen while building */
	uint32_t hash_buckets; /* as the VM resolved it */
	uint8_t hash_fn;       /* as the VM resolved it (0 when it does not say) */
	uint32_t zap_batch;    /* as the VM resolved it */
	uint64_t guest_writes; /* leaf ptes the guest rewrote through its self-map (--guest-writes) */
	uint64_t guest_reads;  /* ... or read (--guest-reads) */
};

/* What the VM holds at a quiescent point: the figures pte prefetch and unsync pages move. */
struct wl_census {
	uint64_t leaf_sptes;   /* present sptes in level-1 shadow pages (faulted + prefetched) */
	uint64_t leaf_pages;   /* level-1 shadow pages */
	uint64_t unsync_pages; /* KVM's mmu_unsync */
};

/* Build the workload: VM, slot, guest tables, faults. @return 0 or a negative errno (printed). */
int wl_build(struct workload *w, const struct wl_params *p);
void wl_destroy(struct workload *w);
/* Count the census (takes mmu_lock, site USER0; no thread may use the VM). @return 0 or -errno. */
int wl_census(struct workload *w, struct wl_census *out);

/* KVM's own bytes for the same objects (see report.h), from the slot geometry. */
uint64_t wl_kvm_rmap_head_bytes(const struct workload *w);

/* ---- vCPUs faulting during a zap ------------------------------------------------------------ */

struct faulter {
	pthread_t thread;
	struct contention *c;
	smmu_vcpu *vcpu;
	smmu_gpa_t cr3;        /* 0 in direct mode */
	const smmu_gva_t *addr;
	uint64_t n;
	uint64_t faults, mapped, retries, errors, created;
	int first_error;
	bool started;
};

struct contention {
	struct workload *w;
	int n;                 /* threads running */
	int nf;                /* entries of f */
	struct faulter *f;
	atomic_bool stop;
	atomic_int ready;
	/* Totals over every thread, filled by wl_faulters_stop. */
	uint64_t faults, mapped, retries, errors, created;
	int first_error;
};

/* Create the vCPUs and start the threads; returns when each has completed one fault. */
int wl_faulters_start(struct workload *w, struct contention *c, int n);
/* Tell them to stop, join them, add up their counts, destroy their vCPUs. */
void wl_faulters_stop(struct contention *c);

/* ---- helpers shared by the bench programs -------------------------------------------------- */

uint64_t bench_now_ns(void);
/* splitmix64 */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static inline uint64_t bench_rand_below(uint64_t *state, uint64_t n)
{
	return n ? bench_rand(state) % n : 0;
}

/* Progress on stderr (only when enabled): one line rewritten in place, at most ~10 per second. */
void progress_set(bool enabled);
bool progress_enabled(void);
void progress(bool force, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_done(void);

/* ---- maps.c: /proc/PID/maps layouts ---------------------------------------------------------- */

struct vma {
	uint64_t start, end; /* [start, end), page aligned */
	bool write, exec, shared_frames;
};
struct layout {
	char name[64];
	struct vma *vma;
	int n;
};
/* Parse "start-end perms ..." lines; skips inaccessible (---p) and non-user ranges. */
int layout_load(const char *path, const char *name, struct layout *out);
/* Load every *.maps of @dir in name order. @return count (>= 0) or negative errno. */
int layouts_load_dir(const char *dir, struct layout **out);
void layouts_free(struct layout *l, int n);
/* The data directory: --data-dir, $SMMU_BENCH_DATADIR, the source tree, the installed path. */
const char *bench_datadir(const char *override);

#endif
