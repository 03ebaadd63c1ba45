/*
 * The model's objects: VM, memslot, shadow page, vCPU, and the functions each area offers the
 * others. Never installed. Layers (DESIGN.md): leaves (memslot, page_hash, lock, alloc) <
 * per-gfn maps (rmap, lpage, guest walker) < mmu_page < paths (fault, strategy, audit) <
 * policies (zap, fast_zap, memslot_flush, vcpu) < vm.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_MMU_H
#define SMMU_MMU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "list.h"
#include "lock.h"
#include "profile.h"
#include "spte.h"
#include "shadowmmu/shadowmmu.h"

/* ---- memslots (kvm_memory_slot) ------------------------------------------------------------ */

#define KVM_MEMSLOT_INVALID (1u << 16) /* being deleted or moved: no new mappings */

struct memslot {
	int id;
	smmu_gfn_t base_gfn;
	uint64_t npages;
	uint32_t flags;             /* SMMU_MEM_* | KVM_MEMSLOT_INVALID */
	uint8_t *hva;               /* backing, congruent with base_gfn modulo 1 GiB */
	void *map_base;             /* what to munmap */
	size_t map_len;
	uintptr_t *rmap[SMMU_NR_PAGE_SIZES];  /* rmap heads per level, gfn_to_index order */
	int32_t *lpage[SMMU_NR_PAGE_SIZES - 1]; /* disallow_lpage for levels 2 and 3 */
	uint64_t nr_entries[SMMU_NR_PAGE_SIZES]; /* entries of rmap[] / lpage[] per level */
	/* The base_gfn rmap[] and lpage[] were laid out for (kvm_arch_create_memslot): base_gfn,
	 * except after a move that kept them (rules->move_keeps_arch). lpage_info's edge entries
	 * describe this layout. */
	smmu_gfn_t arch_base_gfn;
	/* The largest page the host maps the backing with (host_mapping_level in 3.11: the vma's
	 * page size, raised to 2M by transparent_hugepage_adjust; host_pfn_mapping_level today: the
	 * host page tables). SMMU_LEVEL_1G by default: the model treats the backing as if 1 GiB
	 * pages (hugetlbfs) backed it, so only lpage_info limits the level. Set by
	 * smmu_memslot_set_host_level. */
	int host_level;
	/* With host_level 2M (THP): one bit per 2 MiB host page of the backing (hva order, from
	 * the 2 MiB page holding hva), set where the host split it and maps 4 KiB now: set by the
	 * MMU notifier under mmu_lock, read by a fault's pfn lookup without it (atomic). */
	_Atomic uint64_t *host_split;
	uint64_t host_split_words;
	_Atomic uint64_t *dirty_bitmap; /* with LOG_DIRTY_PAGES */
	/* Which pages of the backing the host's page tables map writable, one bit a page: what
	 * pte prefetch's atomic pfn lookups need (gfn_to_pfn_memslot_atomic, gfn_to_page_many_atomic:
	 * get_user_page_fast_only with FOLL_WRITE, which never faults a page in). Anonymous memory
	 * starts unmapped; a write fault's pfn lookup (FOLL_WRITE) or a write through smmu_guest_write
	 * maps the page writable, a read fault does not (the host maps its zero page read-only), the
	 * MMU notifier's invalidation unmaps it. Writes the library does not see (through a pointer
	 * from smmu_gfn_to_hva) are not counted. A bit a 4 KiB page; with host_level 2M a write sets
	 * every bit of its huge page until the host splits it (host_pte_set_writable). */
	_Atomic uint64_t *host_writable;
};

struct memslots {
	struct memslot *by_id[SMMU_MAX_MEMSLOTS];
	struct memslot *sorted[SMMU_MAX_MEMSLOTS]; /* by base_gfn, for binary search */
	int n;
	uint64_t total_pages;
	/* kvm_memslots()->generation: bumped at every publication of the array (memslots_publish_*,
	 * rules->memslots_gen_step), with KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS set in between (today).
	 * Read without locks by faults (make_mmio_spte, check_mmio_spte). */
	_Atomic uint64_t generation;
};

#define KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS (1ull << 63)

/* gfn_to_index: the slot-relative index of @gfn's entry at @level. */
static inline uint64_t gfn_to_index(smmu_gfn_t gfn, smmu_gfn_t base_gfn, int level)
{
	unsigned shift = (unsigned)(level - 1) * PT64_LEVEL_BITS;
	return (gfn >> shift) - (base_gfn >> shift);
}

/* memslot.c */
struct memslot *gfn_to_memslot(const struct memslots *s, smmu_gfn_t gfn); /* any, valid or not */
struct memslot *gfn_to_valid_memslot(const struct memslots *s, smmu_gfn_t gfn);
int memslot_alloc(struct memslot **out, int id, smmu_gfn_t base_gfn, uint64_t npages, uint32_t flags);
int memslot_alloc_arch(struct memslot *slot, smmu_gfn_t base_gfn); /* rmap + lpage_info */
/* Whether @slot's arrays have an entry for every gfn of it at @base_gfn, at every level. */
bool memslot_arch_fits(const struct memslot *slot, smmu_gfn_t base_gfn);
void memslot_free_arch(struct memslot *slot);
/* The host's mapping level of @gfn's backing: host_level, or 4K where the host split its THP. */
int memslot_host_level(const struct memslot *slot, smmu_gfn_t gfn);
/* The 2 MiB host page of @slot's backing holding @hva (hva inside the slot): its split bit. */
uint64_t memslot_host_page(const struct memslot *slot, uintptr_t hva);
void memslot_free(struct memslot *slot); /* arch + backing + bitmap */
int memslots_insert(struct memslots *s, struct memslot *slot); /* -EEXIST on overlap */
void memslots_remove(struct memslots *s, struct memslot *slot);
/* A publication of the array moves its generation (rules->memslots_gen_step / _in_progress). */
void memslots_gen_publish(struct memslots *s, const struct smmu_rules *rules);
bool memslots_overlap(const struct memslots *s, smmu_gfn_t base, uint64_t npages, const struct memslot *except);
static inline void *memslot_gfn_to_hva(const struct memslot *slot, smmu_gfn_t gfn)
{
	return slot->hva + ((gfn - slot->base_gfn) << SMMU_PAGE_SHIFT);
}
static inline bool memslot_contains(const struct memslot *slot, smmu_gfn_t gfn)
{
	return gfn >= slot->base_gfn && gfn - slot->base_gfn < slot->npages;
}
void mark_page_dirty(struct memslot *slot, smmu_gfn_t gfn);
/* The host page table state of the backing (memslot.host_writable). */
void host_pte_set_writable(struct memslot *slot, smmu_gfn_t gfn);
bool host_pte_writable(const struct memslot *slot, smmu_gfn_t gfn);
void host_pte_unmap(struct memslot *slot, smmu_gfn_t start, smmu_gfn_t end); /* [start, end) */

/* ---- shadow pages (kvm_mmu_page) -------------------------------------------------------------- */

union sp_role {
	uint32_t word;
	struct {
		unsigned level : 4;
		unsigned direct : 1;
		unsigned access : 5;  /* enum smmu_access bits */
		unsigned quadrant : 2;
		unsigned invalid : 1;
		unsigned pad : 19;
	};
};
_Static_assert(sizeof(union sp_role) == 4, "role must stay one 32-bit word");

struct smmu_sp {
	struct list_node link;       /* active_mmu_pages, or an invalid list */
	struct hlist_node hash_link; /* mmu_page_hash */
	uint64_t *spt;               /* 512 sptes, 4 KiB aligned, from the table pool */
	/* Indirect: per spte, the gfn it maps and the access it was made for (today's
	 * sp->shadowed_translation: gfn << 12 | access; 3.11's sp->gfns, whose access part only
	 * the today-era sync reads); direct: NULL. */
	smmu_gfn_t *gfns;
	smmu_gfn_t gfn;
	union sp_role role;
	uint32_t root_count;
	uint64_t mmu_valid_gen;
	uint64_t zap_gen;            /* vm->zap_gen at creation: the thread's generation-bounded zap */
	uintptr_t parent_ptes;       /* pte_list of sptes pointing here */
	uint32_t n_present;          /* present sptes in spt */
	uint16_t n_mmio;             /* MMIO sptes in spt (mark_mmio_spte); cleared before it is freed */
	/* zap_leaf_first's scan hint: in generation zap_scan_gen (low 16 bits), no spte below
	 * zap_scan links an obsolete child. A stale hint only costs the leaf-first order. */
	uint16_t zap_scan, zap_scan_gen;
	/* Unsync pages (unsync.c): a level-1 indirect page whose guest table the guest may write
	 * without a trap (kvm_unsync_page); its parents carry one unsync_child_bitmap bit for it
	 * (mark_unsync), and unsync_children counts a page's set bits. Bits go stale when a child
	 * is unlinked; the unsync walks clear them (__mmu_unsync_walk), as KVM's do. */
	bool unsync;
	/* Trapped writes since the page was last used (detect_write_flooding; both eras): a walk
	 * through it or a lookup that finds it resets it (clear_sp_write_flooding_count). */
	uint8_t write_flooding_count;
	uint16_t unsync_children;
	uint64_t unsync_child_bitmap[SMMU_PT_ENTRIES / 64];
	/* 1 + the MMIO generation in which a sync marked an MMIO spte of this page again over a gfn
	 * a valid slot now holds (sync_mmio_spte does not look at the memslots), 0 if none: the
	 * audit accepts such a current MMIO spte, as KVM leaves it. */
	uint32_t mmio_resync_gen;
};

/* ---- vCPUs (kvm_vcpu + kvm_mmu) -------------------------------------------------------------- */

#define KVM_REQ_TLB_FLUSH (1u << 0)
#define KVM_REQ_MMU_RELOAD (1u << 1)
#define KVM_REQ_MMU_SYNC (1u << 2)
/* Today's request after a fast zap or the zap of a root in use (kvm_mmu_free_obsolete_roots);
 * 3.11 sends KVM_REQ_MMU_RELOAD (kvm_mmu_unload). rules->reload_frees_obsolete_only picks. */
#define KVM_REQ_MMU_FREE_OBSOLETE_ROOTS (1u << 3)

/* kvm_mmu_root_info: a root the vCPU holds (one root_count) and the CR3 it shadows. */
#define KVM_MMU_NUM_PREV_ROOTS 3
struct vcpu_root {
	struct smmu_sp *sp;
	smmu_gpa_t pgd;
};
/* kvm_mmu_free_roots's roots_to_free: KVM_MMU_ROOT_CURRENT | KVM_MMU_ROOT_PREVIOUS(i). */
#define KVM_MMU_ROOT_CURRENT 1u
#define KVM_MMU_ROOT_PREVIOUS(i) (2u << (i))
#define KVM_MMU_ROOTS_ALL (~0u)

/*
 * vcpu->mode (kvm_vcpu.mode). The low two bits are the mode; the bits above count the vCPU's
 * exits from guest mode, so that a requester can tell a kicked vCPU has left guest mode even if
 * it has entered again since (the acknowledgment of KVM's IPI). Only the vCPU's own thread
 * enters and exits; another thread only turns IN_GUEST_MODE into EXITING_GUEST_MODE (the kick).
 */
enum { OUTSIDE_GUEST_MODE = 0, IN_GUEST_MODE = 1, EXITING_GUEST_MODE = 2, VCPU_MODE_MASK = 3 };
#define VCPU_MODE_EXIT_SHIFT 2

#define MMU_CACHE_CAP 40
struct mmu_cache {
	int n;
	void *obj[MMU_CACHE_CAP];
};
/* kvm_mmu_memory_cache ×3: headers (each with its table), gfns arrays, pte_list_desc. */
struct vcpu_caches {
	struct mmu_cache sp, gfns, desc;
};

struct tlb_entry {
	uint64_t vpn;       /* addr >> 12 of the 4 KiB page; ~0 = empty */
	uint64_t hfn;       /* host frame */
	uint32_t access;
	uint32_t age;
};

struct smmu_vcpu {
	smmu_vm *vm;
	int id;                     /* fixed for life (kvm_vcpu.vcpu_id) */
	_Atomic uint32_t requests;
	_Atomic uint32_t mode;      /* OUTSIDE/IN/EXITING_GUEST_MODE and the exit count, see above */
	uint32_t kick_mode;         /* mode word a requester's kick saw; protected by mmu_lock */
	smmu_gpa_t cr3;
	bool has_cr3;
	struct smmu_sp *root;       /* root_hpa; protected by mmu_lock */
	smmu_gpa_t root_pgd;        /* the CR3 root shadows (root.pgd) */
	/* mmu->prev_roots, most recently used first, protected by mmu_lock: roots kept across MOV
	 * CR3 (rules->prev_roots of them, none in 3.11), each holding one root_count (roots.c). */
	struct vcpu_root prev_roots[KVM_MMU_NUM_PREV_ROOTS];
	bool sync_pending;          /* KVM_REQ_MMU_SYNC taken, roots not synced yet (own thread) */
	struct vcpu_caches caches;
	struct tlb_entry *tlb;      /* tlb_sets * tlb_ways */
	uint32_t tlb_clock;
	struct smmu_vcpu_counters stat;
};

/* ---- the VM (struct kvm + kvm_arch) ----------------------------------------------------------- */

struct smmu_vm {
	struct smmu_vm_config cfg;
	const struct smmu_rules *rules; /* the profile's rules (profile.h) */
	struct mmu_lock mmu_lock;
	pthread_mutex_t slots_lock;     /* serializes memslot changes (kvm->slots_lock) */
	pthread_rwlock_t srcu;          /* readers: faults, guest accesses; writer: slot publish */
	struct memslots slots;
	/* Protected by mmu_lock: */
	struct list_node active_mmu_pages;   /* newest at head */
	struct list_node zapped_obsolete_pages;
	uint32_t zap_drains;            /* kvm_zap_obsolete_pages runs in progress (lock breaks) */
	/* A lock-breaking kvm_mmu_zap_all's invalid list, kept across its breaks when the profile
	 * commits once (zap_all_commit_once); the audit finds the pages there, as on
	 * zapped_obsolete_pages. */
	struct list_node zap_all_pending;
	uint32_t zap_all_runs;          /* lock-breaking kvm_mmu_zap_all runs in progress */
	struct hlist_head *mmu_page_hash;
	uint32_t hash_mask;
	unsigned hash_shift;            /* 64 - log2(buckets), for hash_64 */
	bool hash64;
	uint64_t mmu_valid_gen;
	uint64_t zap_gen;
	uint64_t lpage_reset_gen;       /* pages older than this are not counted in lpage_info */
	uint64_t n_used_mmu_pages;
	uint64_t n_max_mmu_pages;
	bool n_max_set_by_user;
	_Atomic uint64_t indirect_shadow_pages;
	struct smmu_vcpu **vcpus;
	int nr_vcpus, cap_vcpus;
	struct table_pool tables;
	smmu_hook_fn hook;
	void *hook_ctx;
	/* Test hook: called by a vCPU's thread in guest mode, before each access through its TLB.
	 * Set at a quiescent point; it must not take mmu_lock (a requester may hold it and wait). */
	void (*guest_mode_hook)(struct smmu_vcpu *v, void *ctx);
	void *guest_mode_hook_ctx;
	/* The host's page lookup in a fault (smmu_set_hva_to_pfn_hook); set at a quiescent point. */
	smmu_hva_to_pfn_fn hva_to_pfn_hook;
	void *hva_to_pfn_ctx;
	bool audit_every_op;
	bool destroying;
	struct smmu_vm_counters stat;   /* counters; live fields computed on read */
	_Atomic uint64_t remote_flushes;
	_Atomic uint64_t reload_requests;
	uint64_t unaccount_no_slot;     /* unaccount_shadowed found no slot: KVM would crash */
	uint64_t mmu_unsync;            /* kvm->stat.mmu_unsync: unsync pages now (protected by mmu_lock) */
	uint64_t mmu_flooded;           /* kvm->stat.mmu_flooded: pages zapped by a flooded or
	                                   misaligned trapped write (protected by mmu_lock) */
	/* MMIO sptes (mmio.c), protected by mmu_lock: the counters, MMIO sptes in tables now, and the
	 * MMIO generation current when the VM was made or when the last wrap zapped every page: no
	 * MMIO spte of a current page is older (the audit's check of their generation). */
	struct smmu_mmio_counters mmio_stat;
	uint64_t mmio_sptes;            /* changed under mmu_lock; read without it (__atomic) */
	uint64_t mmio_gen_floor;
	/* kvm->tlbs_dirty (rules->sync_leaves_tlbs_dirty): sptes a sync dropped since the last
	 * remote flush, which vCPU TLBs other than the syncer's may still hold. mmu_lock. */
	uint64_t tlbs_dirty;
	/* Freed under mmu_lock (protected by it), handed on by vm_unlock once the lock is free:
	 * headers (each with its gfns array) to hdr_cache, rmap descriptors to the allocator, whose
	 * free may purge or trim memory, milliseconds that are not KVM's. */
	struct obj_chain freed_hdr;
	struct pte_list_desc *deferred_desc; /* linked through more */
	/* kmem_caches, reused by mmu_topup_memory_caches: headers (with the gfns array they had, if
	 * any) and spare gfns arrays. */
	struct obj_cache hdr_cache, gfns_cache;
	/* The MMU notifier's retry protocol (kvm->mmu_notifier_count / mmu_notifier_seq, today's
	 * mmu_invalidate_in_progress / _seq): count is written under mmu_lock; seq changes under it
	 * and a fault samples it before taking it (mmu_notifier_retry). Atomic, as the range below:
	 * today's fault also reads them without the lock (rules->fault_retries_before_lock). */
	_Atomic uint64_t mmu_notifier_count;
	_Atomic uint64_t mmu_notifier_seq;
	/* The host range of the invalidations in progress (today's mmu_invalidate_range_start /
	 * _end, kvm_mmu_invalidate_begin), protected by mmu_lock: set by the invalidation that
	 * raises the count from 0, widened by each one that begins while others are in progress,
	 * and kept as it is when the count falls back to 0. Read by a fault only under
	 * rules->notifier_retry_in_range; kept in both eras. */
	_Atomic uintptr_t mmu_notifier_range_start, mmu_notifier_range_end;
};

/* kvm_page_table_hashfn: gfn & mask (3.11) or hash_64 (today: multiply by GOLDEN_RATIO_64). */
static inline uint32_t kvm_page_table_hashfn(const struct smmu_vm *vm, smmu_gfn_t gfn)
{
	if (vm->hash64)
		return vm->hash_shift >= 64 ? 0 : (uint32_t)((gfn * 0x61C8864680B583EBull) >> vm->hash_shift);
	return (uint32_t)(gfn & vm->hash_mask);
}
static inline bool is_obsolete_sp(const struct smmu_vm *vm, const struct smmu_sp *sp)
{
	return sp->mmu_valid_gen != vm->mmu_valid_gen;
}
/* clear_sp_write_flooding_count: the page holding @sptep was used (a fault's walk through it);
 * trapped writes to its guest table count from zero again. Both eras. */
/* make_spte's Dirty bit on a writable leaf @spte that replaces @old (rules->spte_dirty_on_write;
 * 6.1 skips it where @old is writable already, its goto out; 6.13 on does not:
 * rules->spte_dirty_over_writable). */
static inline uint64_t make_spte_dirty(const struct smmu_vm *vm, uint64_t spte, uint64_t old)
{
	if (vm->rules->spte_dirty_on_write && is_writable_pte(spte) &&
	    (vm->rules->spte_dirty_over_writable || !is_writable_pte(old)))
		spte |= PT_DIRTY_MASK;
	return spte;
}

static inline void clear_sp_write_flooding_count(const uint64_t *sptep)
{
	page_header(sptep)->write_flooding_count = 0;
}
/* kvm_mmu_max_gfn + 1: the first gfn the VM's MMU cannot map. Direct pages are indexed by the
 * gpa, so a 4-level direct map reaches 2^48 and a gpa above it would land in the spte of its
 * value modulo 2^48; shadow pages are indexed by the gva and a leaf holds any gfn below 2^52. */
static inline smmu_gfn_t vm_gfn_limit(const struct smmu_vm *vm)
{
	return vm->cfg.mode == SMMU_MODE_DIRECT ? 1ull << (SMMU_DIRECT_GPA_BITS - SMMU_PAGE_SHIFT) : SMMU_MAX_GFN;
}
_Static_assert(SMMU_DIRECT_GPA_BITS == PT64_LEVEL_SHIFT(PT64_ROOT_LEVEL + 1), "direct map reach");
/* Whether @sp holds a count in lpage_info (account_shadowed ran and no reset forgot it). */
bool sp_accounted(const struct smmu_vm *vm, const struct smmu_sp *sp);

#define for_each_sp_in_bucket(vm, sp, gfn, node)                                              \
	for (struct hlist_node *node = (vm)->mmu_page_hash[kvm_page_table_hashfn(vm, gfn)].first; \
	     node && ((sp) = container_of(node, struct smmu_sp, hash_link), 1); node = node->next)

/* The VM whose srcu this thread holds for read while the host's page lookup hook runs: the host
 * calls the hook may make (the MMU notifier, smmu_host_wrote) nest in that read section rather
 * than take the rwlock again, which would deadlock behind a waiting writer (SRCU readers nest). */
extern _Thread_local struct smmu_vm *srcu_hook_reader;
/* srcu for read unless this thread's hook already holds it; @return whether it was taken. */
static inline bool srcu_read_lock_nested(struct smmu_vm *vm)
{
	if (srcu_hook_reader == vm)
		return false;
	pthread_rwlock_rdlock(&vm->srcu);
	return true;
}

static inline void srcu_read_unlock_nested(struct smmu_vm *vm, bool taken)
{
	if (taken)
		pthread_rwlock_unlock(&vm->srcu);
}

/* ---- mmu_lock wrappers with hooks (vm.c) --------------------------------------------------- */
void vm_lock(struct smmu_vm *vm, enum smmu_site site);
/* Release mmu_lock, then hand on what was freed under it (freed_hdr, deferred_desc). */
void vm_unlock(struct smmu_vm *vm);
bool vm_cond_resched(struct smmu_vm *vm);
void vm_event(struct smmu_vm *vm, enum smmu_event ev, const struct smmu_sp *sp);
/* Run the audit after an operation when configured to; aborts with the report on a violation.
 * A VM-wide operation's point checks no vCPU's invariants (7, 8, 10): vCPU threads may run and
 * change their requests, TLB and CR3 outside mmu_lock. A vCPU's point checks that vCPU's too, as
 * KVM's kvm_mmu_audit(vcpu, point) audits the vCPU it runs on. */
void vm_audit_point(struct smmu_vm *vm, const char *where);
void vcpu_audit_point(struct smmu_vcpu *v, const char *where);
/* smmu_audit, checking the vCPU invariants of every vCPU (@all_vcpus) or of @only (NULL: none). */
long audit_vm(struct smmu_vm *vm, struct smmu_audit_report *report, bool all_vcpus,
	      const struct smmu_vcpu *only);
void vm_recompute_max_pages(struct smmu_vm *vm);

/* ---- rmap.c: pte_list (rmaps and parent_ptes) ------------------------------------------------ */
#define PTE_LIST_EXT 3
struct pte_list_desc {
	uint64_t *sptes[PTE_LIST_EXT];
	struct pte_list_desc *more;
};
struct rmap_iterator {
	struct pte_list_desc *desc;
	int pos;
};
/* pte_list_add: needs a descriptor from @cache when the list grows past one entry. */
int pte_list_add(struct smmu_vm *vm, struct mmu_cache *cache, uint64_t *spte, uintptr_t *head);
void pte_list_remove(struct smmu_vm *vm, uint64_t *spte, uintptr_t *head);
uint64_t *rmap_get_first(uintptr_t head, struct rmap_iterator *it);
uint64_t *rmap_get_next(struct rmap_iterator *it);
size_t pte_list_count(uintptr_t head);
void pte_list_free_all(struct smmu_vm *vm, uintptr_t *head); /* teardown only */
uintptr_t *gfn_to_rmap(struct smmu_vm *vm, smmu_gfn_t gfn, int level); /* valid or invalid slot */
uintptr_t *__gfn_to_rmap(const struct memslot *slot, smmu_gfn_t gfn, int level);
int rmap_add(struct smmu_vm *vm, struct mmu_cache *cache, uint64_t *spte, smmu_gfn_t gfn, uint32_t access);
void rmap_remove(struct smmu_vm *vm, uint64_t *spte);
/* drop_spte: clear a leaf spte and its rmap entry. */
void drop_spte(struct smmu_vm *vm, uint64_t *sptep);
/* kvm_unmap_rmapp: drop every spte of one rmap head; returns how many. */
int kvm_unmap_rmapp(struct smmu_vm *vm, uintptr_t *head);
/* __rmap_write_protect: make every spte of a head read-only; 3.11 drops writable large ones
 * (rules->wrprot_drops_large_spte). Returns true when a TLB flush is needed. */
bool __rmap_write_protect(struct smmu_vm *vm, uintptr_t *head, bool pt_protect);
bool rmap_write_protect(struct smmu_vm *vm, smmu_gfn_t gfn);

/* ---- lpage.c: kvm_lpage_info ----------------------------------------------------------------- */
void lpage_info_init(struct memslot *slot); /* edge bits only */
int32_t *lpage_info_slot(const struct memslot *slot, smmu_gfn_t gfn, int level);
void account_shadowed(struct smmu_vm *vm, struct smmu_sp *sp);
void unaccount_shadowed(struct smmu_vm *vm, struct smmu_sp *sp);
/* has_wrprotected_page: disallow_lpage of the large page at @level holding @gfn (1 if no slot). */
int has_wrprotected_page(struct smmu_vm *vm, smmu_gfn_t gfn, int level);
/* mapping_level: the largest level <= @max_level a leaf for @gfn may have. */
int mapping_level(struct smmu_vm *vm, smmu_gfn_t gfn, int max_level);
/* The edge value lpage_info entry @idx of @level starts with (for the audit and the reset). */
int32_t lpage_edge_value(const struct memslot *slot, int level, uint64_t idx);
/* kvm_clear_all_lpage_info as the v4 patch used it: see smmu_lpage_forget_obsolete. */
void lpage_forget_obsolete(struct smmu_vm *vm);

/* ---- guest.c: the guest page-table walker --------------------------------------------------- */
struct guest_walker {
	int level;                    /* leaf level */
	smmu_gfn_t table_gfn[PT64_ROOT_LEVEL]; /* [L-1]: the table walked at level L */
	uint64_t ptes[PT64_ROOT_LEVEL];        /* [L-1]: the entry read at level L */
	smmu_gpa_t pte_gpa[PT64_ROOT_LEVEL];   /* [L-1]: where it was read */
	uint32_t pt_access;           /* access granted by the non-leaf entries */
	uint32_t pte_access;          /* ... and by the leaf */
	smmu_gfn_t gfn;               /* 4 KiB frame of the address */
	int fault_reason;             /* enum smmu_guest_pf_reason, 0 if none */
};
/* FNAME(walk_addr): 0, -ENOENT (guest #PF, see fault_reason), -EFAULT (a table in no slot). */
int guest_walk_addr(const struct smmu_vm *vm, smmu_gpa_t cr3, smmu_gva_t addr, uint32_t access,
		    struct guest_walker *w);
/* Guest memory through valid slots; -EFAULT outside them. Caller holds srcu for read. */
int guest_read_locked(const struct smmu_vm *vm, smmu_gpa_t gpa, void *buf, size_t len);
uint64_t guest_read_pte(const void *hva); /* atomic 8-byte read */
/* The end of FNAME(walk_addr_generic) for a fault: protect_clean_gpte, and
 * FNAME(update_accessed_dirty_bits) into the guest's tables. -EAGAIN: a gpte changed under the
 * cmpxchg, walk again. Caller holds srcu, not mmu_lock. */
int guest_walk_update_ad(struct smmu_vm *vm, struct guest_walker *w, bool write_fault);
static inline bool is_canonical(smmu_gva_t a) { return (uint64_t)((int64_t)(a << 16) >> 16) == a; }

/* ---- mmu_page.c: shadow pages ---------------------------------------------------------------- */
int mmu_topup_memory_caches(struct smmu_vm *vm, struct vcpu_caches *c);
void mmu_free_memory_caches(struct smmu_vm *vm, struct vcpu_caches *c);
struct smmu_sp *kvm_mmu_alloc_page(struct smmu_vm *vm, struct vcpu_caches *c, bool direct);
void link_shadow_page(struct smmu_vm *vm, struct mmu_cache *desc, uint64_t *sptep, struct smmu_sp *sp);
void drop_parent_pte(struct smmu_vm *vm, struct smmu_sp *sp, uint64_t *parent_pte);
void mmu_spte_set(struct smmu_vm *vm, uint64_t *sptep, uint64_t spte);
/* mmu_page_zap_pte: drop one spte of @sp (leaf via rmap, or unlink the child). True if present. */
bool mmu_page_zap_pte(struct smmu_vm *vm, struct smmu_sp *sp, uint64_t *spte);
int kvm_mmu_prepare_zap_page(struct smmu_vm *vm, struct smmu_sp *sp, struct list_node *invalid_list);
/* The same with today's signature: the pages zapped in *@nr_zapped; returns true when it zapped
 * children (unsync ones), so that a walk of active_mmu_pages must restart. */
bool __kvm_mmu_prepare_zap_page(struct smmu_vm *vm, struct smmu_sp *sp, struct list_node *invalid_list,
				int *nr_zapped);
void kvm_mmu_commit_zap_page(struct smmu_vm *vm, struct list_node *invalid_list);
/* Zap the oldest pages onto @invalid_list until at most @target are in use, by the profile's
 * rule zap_oldest_skips_roots: today's kvm_mmu_zap_oldest_mmu_pages (roots in use passed over,
 * the pages zapped counted in mmu_recycled) or 3.11's prepare_zap_oldest_mmu_page steps (each
 * counted in mmu_recycled when @count_steps: make_mmu_pages_available does, 3.11's
 * kvm_mmu_change_mmu_pages does not). Lock held. */
void zap_oldest_to(struct smmu_vm *vm, uint64_t target, bool count_steps, struct list_node *invalid_list);
bool prepare_zap_oldest_mmu_page(struct smmu_vm *vm, struct list_node *invalid_list);
void make_mmu_pages_available(struct smmu_vm *vm);
smmu_gfn_t kvm_mmu_page_get_gfn(const struct smmu_sp *sp, int index);
/* kvm_mmu_page_get_access: the access an indirect page's spte @index was made for. */
uint32_t kvm_mmu_page_get_access(const struct smmu_sp *sp, int index);
/* kvm_mmu_page_set_translation / kvm_mmu_page_set_access (indirect pages; no-op for direct). */
void kvm_mmu_page_set_translation(struct smmu_sp *sp, int index, smmu_gfn_t gfn, uint32_t access);
void kvm_mmu_page_set_access(struct smmu_sp *sp, int index, uint32_t access);
void kvm_flush_remote_tlbs(struct smmu_vm *vm, uint32_t skip_point);
void kvm_reload_remote_mmus(struct smmu_vm *vm);
void vcpu_make_request(struct smmu_vcpu *v, uint32_t req);

/* ---- fault.c ------------------------------------------------------------------------------- */
struct smmu_sp *kvm_mmu_get_page(struct smmu_vcpu *v, smmu_gfn_t gfn, int level, bool direct,
				 uint32_t access);
int mmu_alloc_roots(struct smmu_vcpu *v);
/* kvm_mmu_unload: free every root the vCPU holds, current and cached. */
void mmu_free_roots(struct smmu_vcpu *v); /* takes mmu_lock */
void mmu_free_roots_locked(struct smmu_vcpu *v, struct list_node *invalid_list);

/* ---- roots.c: the roots cache (prev_roots) --------------------------------------------------- */
/* kvm_mmu_free_roots: drop the roots named by @roots_to_free (KVM_MMU_ROOT_*), previous ones
 * first; a zapped root whose last user this was goes to @invalid_list. mmu_lock held. */
void kvm_mmu_free_roots_locked(struct smmu_vcpu *v, unsigned roots_to_free, struct list_node *invalid_list);
/* kvm_mmu_free_obsolete_roots: drop the current and cached roots that are obsolete or zapped
 * (KVM_REQ_MMU_FREE_OBSOLETE_ROOTS); true when the current root went. Takes mmu_lock. */
bool kvm_mmu_free_obsolete_roots(struct smmu_vcpu *v);
/* kvm_mmu_new_pgd → fast_pgd_switch: make a cached root of @pgd current, or keep the current one
 * in the cache (evicting the least recently used) and leave the vCPU without a root. True on a
 * hit. mmu_lock held. */
bool kvm_mmu_new_pgd(struct smmu_vcpu *v, smmu_gpa_t pgd, struct list_node *invalid_list);
/* mmu_set_spte: install a leaf; @prefetch for pte prefetch's (no Accessed bit, not a fixed fault).
 * True when a write fault had to be refused (the gfn is a shadowed guest table). */
bool mmu_set_spte(struct smmu_vcpu *v, uint64_t *sptep, uint32_t pte_access, bool write_fault, int level,
		  smmu_gfn_t gfn, struct memslot *slot, bool prefetch);
/* kvm_mmu_pte_write: a guest store of @len bytes at @gpa landed; zap what depended on it. */
void kvm_mmu_pte_write(struct smmu_vm *vm, smmu_gpa_t gpa, size_t len);

/* ---- mmio.c: MMIO sptes and the memslot generation ------------------------------------------ */
/* The MMIO generation of memslots generation @gen (kvm_current_mmio_generation in 3.11). */
static inline uint64_t mmio_generation(const struct smmu_vm *vm, uint64_t gen)
{
	return (gen + vm->rules->mmio_gen_offset) & MMIO_SPTE_GEN_MASK;
}
/* mark_mmio_spte: install an MMIO spte for @gfn in the leaf @sptep (level 1); a present leaf
 * there is dropped first. Counts pf_mmio_spte_created when @fault. Lock held. */
void mark_mmio_spte(struct smmu_vm *vm, uint64_t *sptep, smmu_gfn_t gfn, uint32_t access, bool fault);
/* Clear @sptep if it is an MMIO spte (mmu_spte_clear_no_track). Lock held. Inline: the zap and
 * spte-setting paths ask it of every spte they meet. */
void __mmio_spte_clear(struct smmu_vm *vm, uint64_t *sptep);
static inline void mmio_spte_clear(struct smmu_vm *vm, uint64_t *sptep)
{
	if (__builtin_expect(is_mmio_spte(*sptep), 0))
		__mmio_spte_clear(vm, sptep);
}
/* check_mmio_spte: @spte carries the current MMIO generation (and no update is in progress). */
bool check_mmio_spte(const struct smmu_vm *vm, uint64_t spte);
/* handle_mmio_page_fault: 1 when the walk of @addr from the vCPU's root ends in an MMIO spte of
 * the current generation granting @access (the access is MMIO: *gfn), 0 otherwise (stale: the
 * page fault must run). Takes mmu_lock. */
int handle_mmio_page_fault(struct smmu_vcpu *v, uint64_t addr, uint32_t access, smmu_gfn_t *gfn);
/* After a publication of the slot array (kvm_swap_active_memslots' end / 3.11's commit): bump
 * the generation past the update and zap every page if the MMIO generation wrapped
 * (kvm_arch_memslots_updated / kvm_arch_commit_memory_region → kvm_mmu_invalidate_mmio_sptes).
 * @last: the change's last publication (3.11 looks for the wrap only there). */
void memslots_updated(struct smmu_vm *vm, bool last);

/* ---- prefetch.c ---------------------------------------------------------------------------- */
#define PTE_PREFETCH_NUM 8 /* the aligned group of sptes a fault may fill */
/* FNAME(pte_prefetch) / direct_pte_prefetch after a fault installed @sptep; @spurious: the fault
 * left @sptep as it was (RET_PF_SPURIOUS). Caller holds mmu_lock. */
void pte_prefetch(struct smmu_vcpu *v, uint64_t *sptep, bool spurious);
/* FNAME(prefetch_gpte): map @gpte into @spte of indirect page @sp; false when it cannot. */
bool prefetch_gpte(struct smmu_vcpu *v, struct smmu_sp *sp, uint64_t *spte, uint64_t gpte);

/* ---- unsync.c: unsync shadow pages ------------------------------------------------------------ */
/* mark_unsync for the spte @sptep that links an unsync page (or one with unsync children). */
void mark_unsync(struct smmu_vm *vm, uint64_t *sptep);
/* mmu_try_to_unsync_pages / 3.11's mmu_need_write_protect: true when a writable spte of @gfn
 * must be refused (write-protected); else every valid indirect page of @gfn is unsync now. */
bool mmu_try_to_unsync_pages(struct smmu_vm *vm, smmu_gfn_t gfn, bool can_unsync, bool prefetch);
void kvm_unlink_unsync_page(struct smmu_vm *vm, struct smmu_sp *sp);
/* mmu_zap_unsync_children: prepare_zap every unsync page below @parent; how many. */
int mmu_zap_unsync_children(struct smmu_vm *vm, struct smmu_sp *parent, struct list_node *invalid_list);
/* kvm_sync_page: bring @sp's sptes in line with its guest table; -1 when @sp was zapped
 * instead, else whether a TLB flush is needed. Does not clear sp->unsync. */
int kvm_sync_page(struct smmu_vcpu *v, struct smmu_sp *sp, struct list_node *invalid_list);
/* kvm_mmu_sync_roots: sync every unsync page below the vCPU's root. mmu_lock held; it may be
 * let go and retaken (mmu_sync_children's break). */
void kvm_mmu_sync_roots_locked(struct smmu_vcpu *v);
/* mmu_sync_children: sync the unsync pages below @parent, breaking mmu_lock between batches where
 * needbreak; -EINTR where it had to break and @can_yield is false (today: KVM_REQ_MMU_SYNC made,
 * nothing let go). mmu_lock held. */
int mmu_sync_children(struct smmu_vcpu *v, struct smmu_sp *parent, bool can_yield);
/* 3.11's kvm_sync_pages: sync (or zap) every unsync page of @gfn. Lock held. */
void kvm_sync_pages(struct smmu_vcpu *v, smmu_gfn_t gfn);

/* ---- vcpu.c -------------------------------------------------------------------------------- */
void vcpu_process_requests(struct smmu_vcpu *v);
void vcpu_tlb_flush(struct smmu_vcpu *v);

/* ---- zap.c / fast_zap.c / memslot_flush.c ---------------------------------------------------- */
void kvm_mmu_zap_all_locked(struct smmu_vm *vm, struct smmu_zap_report *rep); /* HOLD, caller locks */
void kvm_zap_obsolete_pages(struct smmu_vm *vm, struct smmu_zap_report *rep);
int flush_shadow_memslot(struct smmu_vm *vm, struct memslot *slot, enum smmu_flush_strategy s,
			 struct smmu_zap_report *rep);
/* kvm_mmu_slot_remove_write_access: write-protect every spte of @slot, with lock break. */
void kvm_mmu_slot_remove_write_access(struct smmu_vm *vm, struct memslot *slot);
/* kvm_mmu_zap_collapsible_sptes: drop the sptes of @slot's direct pages that could be larger. */
void kvm_mmu_zap_collapsible_sptes(struct smmu_vm *vm, struct memslot *slot);


#define SMMU_ASSERT(cond, msg) ((cond) ? (void)0 : smmu_assert_fail(msg, __FILE__, __LINE__, __func__))

/* ---- spte updates that keep n_present and the large-page count right (mmu_page.c) ---------- */
static inline void mmu_spte_clear(struct smmu_vm *vm, uint64_t *sptep)
{
	uint64_t old = *sptep;
	if (!is_shadow_present_pte(old))
		return;
	__atomic_store_n(sptep, 0, __ATOMIC_RELAXED);
	page_header(sptep)->n_present--;
	if (is_large_pte(old))
		vm->stat.lpages--;
}

/* zap.c / fast_zap.c, for the memslot flush: caller holds mmu_lock. */
int zap_all_mode_locked(struct smmu_vm *vm, enum smmu_zap_mode mode, uint64_t max_rounds,
			struct smmu_zap_report *rep);
void fast_zap_bump_locked(struct smmu_vm *vm);

#endif
