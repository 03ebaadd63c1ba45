/*
 * The VM (kvm_create_vm / kvm_destroy_vm) and the memslot lifecycle
 * (__kvm_set_memory_region: create, delete, move, flags; KVM_GET_DIRTY_LOG), which calls the
 * flush strategy the VM is configured with.
 *
 * Slot changes follow KVM's order: under slots_lock, mark the slot invalid and publish that
 * (the writer side of srcu waits for every fault and guest access in flight), flush its shadow
 * state with mmu_lock breaking as the strategy allows, then publish its removal and free it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"

#define SMMU_MAX_VCPUS 256
#define KVM_PERMILLE_MMU_PAGES 20
#define KVM_MIN_ALLOC_MMU_PAGES 64

/* ---- lock wrappers, events, audit points -------------------------------------------------- */

void vm_event(struct smmu_vm *vm, enum smmu_event ev, const struct smmu_sp *sp)
{
	if (vm->hook)
		vm->hook(vm, ev, sp, vm->hook_ctx);
}

void vm_lock(struct smmu_vm *vm, enum smmu_site site)
{
	mmu_lock_acquire(&vm->mmu_lock, site);
	vm_event(vm, SMMU_EV_LOCK_TAKEN, NULL);
}

void vm_unlock(struct smmu_vm *vm)
{
	struct obj_chain hdr = vm->freed_hdr;
	struct pte_list_desc *d = vm->deferred_desc;
	vm->freed_hdr = (struct obj_chain){ 0 };
	vm->deferred_desc = NULL;
	mmu_lock_release(&vm->mmu_lock);
	obj_cache_put(&vm->hdr_cache, &hdr);
	while (d) {
		struct pte_list_desc *next = d->more;
		smmu_free(d, sizeof(*d));
		d = next;
	}
}

bool vm_cond_resched(struct smmu_vm *vm)
{
	bool broke = mmu_lock_cond_resched(&vm->mmu_lock);
	if (broke)
		vm_event(vm, SMMU_EV_LOCK_BROKEN, NULL);
	return broke;
}

/* KVM's audit points (kvm_mmu_audit): check everything after an operation, abort on a violation. */
static void audit_point(struct smmu_vm *vm, const char *where, const struct smmu_vcpu *self)
{
	if (!vm->audit_every_op || vm->destroying)
		return;
	struct smmu_violation v[8];
	struct smmu_audit_report r = { .v = v, .cap = 8 };
	long n = audit_vm(vm, &r, false, self);
	if (n == 0)
		return;
	if (n < 0) { /* the audit could not run (no memory): that is not a violation */
		fprintf(stderr, "libshadowmmu: audit after %s could not run: %ld\n", where, n);
		return;
	}
	fprintf(stderr, "libshadowmmu: audit after %s: %ld violations\n", where, n);
	smmu_audit_print(stderr, &r);
	abort();
}

void vm_audit_point(struct smmu_vm *vm, const char *where) { audit_point(vm, where, NULL); }

void vcpu_audit_point(struct smmu_vcpu *v, const char *where) { audit_point(v->vm, where, v); }

/* kvm_mmu_calculate_mmu_pages: 2% of guest pages, at least 64. */
void vm_recompute_max_pages(struct smmu_vm *vm)
{
	if (vm->n_max_set_by_user)
		return;
	uint64_t n = vm->slots.total_pages * KVM_PERMILLE_MMU_PAGES / 1000;
	vm->n_max_mmu_pages = n < KVM_MIN_ALLOC_MMU_PAGES ? KVM_MIN_ALLOC_MMU_PAGES : n;
}

/* kvm_mmu_change_mmu_pages: zap the oldest while more than the budget is used, then (both eras)
 * the budget becomes the pages still in use, which exceeds the goal where only roots in use are
 * left. Lock held. */
static void change_mmu_pages_locked(struct smmu_vm *vm)
{
	if (vm->n_used_mmu_pages <= vm->n_max_mmu_pages)
		return;
	struct list_node invalid_list;
	list_init(&invalid_list);
	zap_oldest_to(vm, vm->n_max_mmu_pages, false, &invalid_list);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	vm->n_max_mmu_pages = vm->n_used_mmu_pages;
}

/* ---- VM ------------------------------------------------------------------------------------- */

SMMU_API void smmu_vm_config_default(struct smmu_vm_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = SMMU_MODE_SHADOW;
	cfg->profile = SMMU_PROFILE_LINUX_3_11;
	cfg->flush_strategy = SMMU_FLUSH_FAST_ZAP;
	cfg->zap_batch = 10;
	cfg->tlb_sets = 64;
	cfg->tlb_ways = 4;
}

#if UINTPTR_MAX == UINT64_MAX
/* preempt and resched_slice_ns took reserved room: the layout of older callers stands. */
_Static_assert(sizeof(struct smmu_vm_config) == 104 && offsetof(struct smmu_vm_config, preempt) == 48 &&
		       offsetof(struct smmu_vm_config, resched_slice_ns) == 56 &&
		       offsetof(struct smmu_vm_config, reserved) == 64,
	       "smmu_vm_config's ABI changed");
#endif

static bool is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

static int config_resolve(const struct smmu_vm_config *in, struct smmu_vm_config *out)
{
	if (in)
		*out = *in;
	else
		smmu_vm_config_default(out);
	const struct smmu_rules *rules = smmu_profile_rules(out->profile);
	if (!rules || out->hash_fn > SMMU_HASH_HASH64)
		return -EINVAL;
	if (!out->hash_fn)
		out->hash_fn = (uint8_t)rules->hash_fn;
	if (!out->hash_buckets)
		out->hash_buckets = rules->hash_buckets;
	if (!out->zap_batch)
		out->zap_batch = 10;
	if (!out->tlb_sets)
		out->tlb_sets = 64;
	if (!out->tlb_ways)
		out->tlb_ways = 4;
	if ((unsigned)out->mode > SMMU_MODE_DIRECT || (unsigned)out->profile > SMMU_PROFILE_LINUX_6_1 ||
	    (unsigned)out->flush_strategy >= SMMU_FLUSH_STRATEGY_COUNT || !is_pow2(out->hash_buckets) ||
	    out->hash_buckets > (1u << 24) || !is_pow2(out->tlb_sets) || out->tlb_sets > 65536 ||
	    out->tlb_ways > 64 || out->preempt >= SMMU_PREEMPT_MODEL_COUNT ||
	    (out->skip_flush & ~(uint32_t)(SMMU_SKIP_FLUSH_COMMIT_ZAP | SMMU_SKIP_FLUSH_WRPROT |
					   SMMU_SKIP_FLUSH_RMAP_UNMAP | SMMU_SKIP_FLUSH_PTE_WRITE |
					   SMMU_SKIP_RELOAD_FAST_ZAP)))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(out->reserved_bytes); i++)
		if (out->reserved_bytes[i])
			return -EINVAL;
	for (size_t i = 0; i < sizeof(out->reserved) / sizeof(out->reserved[0]); i++)
		if (out->reserved[i])
			return -EINVAL;
	return 0;
}

SMMU_API int smmu_vm_create(const struct smmu_vm_config *cfg, smmu_vm **out)
{
	struct smmu_vm_config c;
	if (!out || config_resolve(cfg, &c))
		return -EINVAL;
	struct smmu_vm *vm = smmu_calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->cfg = c;
	vm->rules = smmu_profile_rules(c.profile);
	vm->mmio_gen_floor = mmio_generation(vm, 0); /* kvm_create_vm: address space 0's generation */
	vm->mmu_page_hash = smmu_calloc(c.hash_buckets, sizeof(struct hlist_head));
	vm->vcpus = smmu_calloc(SMMU_MAX_VCPUS, sizeof(*vm->vcpus));
	if (!vm->mmu_page_hash || !vm->vcpus)
		goto nomem;
	if (mmu_lock_init(&vm->mmu_lock) || table_pool_init(&vm->tables) ||
	    obj_cache_init(&vm->hdr_cache, sizeof(struct smmu_sp)) ||
	    obj_cache_init(&vm->gfns_cache, SMMU_PT_ENTRIES * sizeof(smmu_gfn_t)))
		goto nomem;
	mmu_lock_set_preempt(&vm->mmu_lock, (enum smmu_preempt_model)c.preempt, c.resched_slice_ns);
	pthread_mutex_init(&vm->slots_lock, NULL);
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* Writer-preferring, so a slot change is not starved by faulting vCPUs (SRCU never is). */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&vm->srcu, &attr);
	pthread_rwlockattr_destroy(&attr);
	vm->hash_mask = c.hash_buckets - 1;
	vm->hash_shift = 64u - (unsigned)__builtin_ctz(c.hash_buckets);
	vm->hash64 = c.hash_fn == SMMU_HASH_HASH64;
	list_init(&vm->active_mmu_pages);
	list_init(&vm->zapped_obsolete_pages);
	list_init(&vm->zap_all_pending);
	if (c.max_mmu_pages) {
		vm->n_max_mmu_pages = c.max_mmu_pages;
		vm->n_max_set_by_user = true;
	}
	vm_recompute_max_pages(vm);
	const char *env = getenv("SMMU_AUDIT");
	vm->audit_every_op = c.audit_every_op || (env && *env && strcmp(env, "0") != 0);
	*out = vm;
	return 0;
nomem:
	smmu_free(vm->mmu_page_hash, 0);
	smmu_free(vm->vcpus, 0);
	smmu_free(vm, sizeof(*vm));
	return -ENOMEM;
}

SMMU_API void smmu_vm_destroy(smmu_vm *vm)
{
	if (!vm)
		return;
	vm->destroying = true;
	while (vm->nr_vcpus)
		smmu_vcpu_destroy(vm->vcpus[vm->nr_vcpus - 1]);
	struct smmu_zap_report rep = { 0 };
	vm_lock(vm, SMMU_SITE_ZAP_ALL);
	kvm_mmu_commit_zap_page(vm, &vm->zapped_obsolete_pages);
	kvm_mmu_zap_all_locked(vm, &rep);
	vm_unlock(vm);
	for (int i = 0; i < SMMU_MAX_MEMSLOTS; i++)
		memslot_free(vm->slots.by_id[i]);
	table_pool_destroy(&vm->tables);
	for (struct smmu_sp *sp = vm->hdr_cache.free.first; sp; sp = *(struct smmu_sp **)sp)
		smmu_free(sp->gfns, SMMU_PT_ENTRIES * sizeof(smmu_gfn_t)); /* the header keeps its array */
	obj_cache_destroy(&vm->hdr_cache);
	obj_cache_destroy(&vm->gfns_cache);
	mmu_lock_destroy(&vm->mmu_lock);
	pthread_mutex_destroy(&vm->slots_lock);
	pthread_rwlock_destroy(&vm->srcu);
	smmu_free(vm->mmu_page_hash, 0);
	smmu_free(vm->vcpus, 0);
	smmu_free(vm, sizeof(*vm));
}

SMMU_API int smmu_vm_get_config(const smmu_vm *vm, struct smmu_vm_config *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->cfg;
	return 0;
}

SMMU_API int smmu_vm_set_flush_strategy(smmu_vm *vm, enum smmu_flush_strategy s)
{
	if (!vm || (unsigned)s >= SMMU_FLUSH_STRATEGY_COUNT)
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	vm->cfg.flush_strategy = s;
	pthread_mutex_unlock(&vm->slots_lock);
	return 0;
}

SMMU_API int smmu_vm_set_max_mmu_pages(smmu_vm *vm, uint64_t limit)
{
	if (!vm || limit < 1)
		return -EINVAL;
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	vm->n_max_mmu_pages = limit;
	vm->n_max_set_by_user = true;
	change_mmu_pages_locked(vm);
	vm_unlock(vm);
	vm_audit_point(vm, "set_max_mmu_pages");
	return 0;
}

/* ---- memslots ------------------------------------------------------------------------------ */

/* The range fits the guest physical space the VM's MMU can map: kvm_arch_prepare_memory_region's
 * check of the last gfn against kvm_mmu_max_gfn (today's KVM; 3.11 accepted such a slot, which
 * its 4-level EPT could never reach). Written so that base + npages cannot wrap. */
static bool range_ok(const struct smmu_vm *vm, smmu_gfn_t base, uint64_t npages)
{
	smmu_gfn_t limit = vm_gfn_limit(vm);
	return npages && base < limit && npages <= limit - base;
}

/* Publish a change of the slot array: no fault or guest access is in flight while @fn runs.
 * Each publication moves the memslots' generation (memslots_gen_publish, memslots_updated). */
static void slots_publish_begin(struct smmu_vm *vm)
{
	pthread_rwlock_wrlock(&vm->srcu);
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	memslots_gen_publish(&vm->slots, vm->rules);
}

static void slots_publish_end(struct smmu_vm *vm)
{
	vm_unlock(vm);
	pthread_rwlock_unlock(&vm->srcu);
	memslots_updated(vm, false);
}

SMMU_API int smmu_memslot_create(smmu_vm *vm, int id, smmu_gfn_t base_gfn, uint64_t npages, uint32_t flags)
{
	if (!vm || id < 0 || id >= SMMU_MAX_MEMSLOTS || !range_ok(vm, base_gfn, npages) ||
	    (flags & ~(uint32_t)(SMMU_MEM_LOG_DIRTY_PAGES | SMMU_MEM_READONLY)))
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	int r = 0;
	struct memslot *slot = NULL;
	if (vm->slots.by_id[id] || memslots_overlap(&vm->slots, base_gfn, npages, NULL))
		r = -EEXIST;
	if (!r)
		r = memslot_alloc(&slot, id, base_gfn, npages, flags);
	if (!r) {
		slots_publish_begin(vm);
		r = memslots_insert(&vm->slots, slot);
		vm_recompute_max_pages(vm);
		slots_publish_end(vm);
		if (r)
			memslot_free(slot);
		else
			memslots_updated(vm, true); /* 3.11's kvm_arch_commit_memory_region */
	}
	pthread_mutex_unlock(&vm->slots_lock);
	if (!r)
		vm_audit_point(vm, "memslot_create");
	return r;
}

/* Take slots_lock and find slot @id: NULL (lock still held) when there is none. */
static struct memslot *slots_lock_get(struct smmu_vm *vm, int id)
{
	pthread_mutex_lock(&vm->slots_lock);
	return id >= 0 && id < SMMU_MAX_MEMSLOTS ? vm->slots.by_id[id] : NULL;
}

/* Mark @slot invalid (KVM_MEMSLOT_INVALID), then flush its shadow state. slots_lock held. */
static void invalidate_and_flush(struct smmu_vm *vm, struct memslot *slot)
{
	struct smmu_zap_report rep = { 0 };
	slots_publish_begin(vm);
	slot->flags |= KVM_MEMSLOT_INVALID;
	slots_publish_end(vm);
	flush_shadow_memslot(vm, slot, vm->cfg.flush_strategy, &rep);
}

SMMU_API int smmu_memslot_delete(smmu_vm *vm, int id)
{
	if (!vm)
		return -EINVAL;
	struct memslot *slot = slots_lock_get(vm, id);
	if (!slot) {
		pthread_mutex_unlock(&vm->slots_lock);
		return -ENOENT;
	}
	invalidate_and_flush(vm, slot);
	slots_publish_begin(vm);
	memslots_remove(&vm->slots, slot);
	vm_recompute_max_pages(vm);
	change_mmu_pages_locked(vm);
	slots_publish_end(vm);
	memslot_free(slot); /* the backing is unmapped: a stale spte now points at nothing */
	memslots_updated(vm, true);
	pthread_mutex_unlock(&vm->slots_lock);
	vm_audit_point(vm, "memslot_delete");
	return 0;
}

SMMU_API int smmu_memslot_move(smmu_vm *vm, int id, smmu_gfn_t new_base_gfn)
{
	if (!vm)
		return -EINVAL;
	struct memslot *slot = slots_lock_get(vm, id);
	int r = 0;
	if (!slot)
		r = -ENOENT;
	else if (!range_ok(vm, new_base_gfn, slot->npages))
		r = -EINVAL;
	else if (memslots_overlap(&vm->slots, new_base_gfn, slot->npages, slot))
		r = -EEXIST;
	/* 3.11 keeps old.arch (rules->move_keeps_arch), where the arrays are long enough. */
	bool keep = !r && vm->rules->move_keeps_arch && memslot_arch_fits(slot, new_base_gfn);
	struct memslot fresh = { 0 };
	if (!r && !keep) {
		fresh.npages = slot->npages;
		r = memslot_alloc_arch(&fresh, new_base_gfn);
	}
	if (r) {
		pthread_mutex_unlock(&vm->slots_lock);
		return r;
	}
	invalidate_and_flush(vm, slot);
	slots_publish_begin(vm);
	memslots_remove(&vm->slots, slot);
	if (!keep) { /* kvm_alloc_memslot_metadata, old arrays freed */
		memslot_free_arch(slot);
		memcpy(slot->rmap, fresh.rmap, sizeof(slot->rmap));
		memcpy(slot->lpage, fresh.lpage, sizeof(slot->lpage));
		memcpy(slot->nr_entries, fresh.nr_entries, sizeof(slot->nr_entries));
		slot->arch_base_gfn = fresh.arch_base_gfn;
	}
	slot->base_gfn = new_base_gfn;
	slot->flags &= ~KVM_MEMSLOT_INVALID;
	if (!keep)
		lpage_info_init(slot);
	memslots_insert(&vm->slots, slot);
	slots_publish_end(vm);
	memslots_updated(vm, true);
	pthread_mutex_unlock(&vm->slots_lock);
	vm_audit_point(vm, "memslot_move");
	return 0;
}

SMMU_API int smmu_memslot_set_flags(smmu_vm *vm, int id, uint32_t flags)
{
	if (!vm || (flags & ~(uint32_t)(SMMU_MEM_LOG_DIRTY_PAGES | SMMU_MEM_READONLY)))
		return -EINVAL;
	struct memslot *slot = slots_lock_get(vm, id);
	int r = 0;
	if (!slot)
		r = -ENOENT;
	else if ((slot->flags ^ flags) & SMMU_MEM_READONLY)
		r = -EINVAL; /* KVM refuses to change READONLY on an existing slot */
	if (r) {
		pthread_mutex_unlock(&vm->slots_lock);
		return r;
	}
	bool log_on = (flags & SMMU_MEM_LOG_DIRTY_PAGES) && !(slot->flags & SMMU_MEM_LOG_DIRTY_PAGES);
	bool log_off = !(flags & SMMU_MEM_LOG_DIRTY_PAGES) && (slot->flags & SMMU_MEM_LOG_DIRTY_PAGES);
	_Atomic uint64_t *bitmap = NULL, *old_bitmap = NULL;
	if (log_on) {
		bitmap = smmu_calloc((slot->npages + 63) / 64, sizeof(uint64_t));
		if (!bitmap) {
			pthread_mutex_unlock(&vm->slots_lock);
			return -ENOMEM;
		}
	}
	slots_publish_begin(vm);
	if (log_on)
		slot->dirty_bitmap = bitmap;
	if (log_off) {
		old_bitmap = slot->dirty_bitmap;
		slot->dirty_bitmap = NULL;
	}
	slot->flags = flags;
	slots_publish_end(vm);
	smmu_free((void *)old_bitmap, 0);
	if (log_on)
		kvm_mmu_slot_remove_write_access(vm, slot);
	if (log_off && vm->rules->log_off_zaps_collapsible)
		kvm_mmu_zap_collapsible_sptes(vm, slot);
	memslots_updated(vm, true);
	pthread_mutex_unlock(&vm->slots_lock);
	vm_audit_point(vm, "memslot_set_flags");
	return 0;
}

/* The host's page size behind a slot (host_pfn_mapping_level's input). */
SMMU_API int smmu_memslot_set_host_level(smmu_vm *vm, int id, int level)
{
	if (!vm || level < SMMU_LEVEL_4K || level > SMMU_LEVEL_1G)
		return -EINVAL;
	struct memslot *slot = slots_lock_get(vm, id);
	int r = slot ? 0 : -ENOENT;
	if (slot) {
		vm_lock(vm, SMMU_SITE_MEMSLOT);
		for (int l = level + 1; l <= SMMU_NR_PAGE_SIZES && !r; l++)
			for (uint64_t i = 0; i < slot->nr_entries[l - 1] && !r; i++)
				r = slot->rmap[l - 1][i] ? -EBUSY : 0;
		if (!r) {
			slot->host_level = level;
			for (uint64_t i = 0; i < slot->host_split_words; i++)
				atomic_store_explicit(&slot->host_split[i], 0, memory_order_relaxed);
		}
		vm_unlock(vm);
	}
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}

SMMU_API int smmu_memslot_get(const smmu_vm *vm, int id, struct smmu_memslot_info *out)
{
	if (!vm || !out)
		return -EINVAL;
	if (id < 0 || id >= SMMU_MAX_MEMSLOTS)
		return -ENOENT;
	pthread_mutex_lock((pthread_mutex_t *)&vm->slots_lock);
	const struct memslot *slot = vm->slots.by_id[id];
	if (slot)
		*out = (struct smmu_memslot_info){ .id = id, .base_gfn = slot->base_gfn, .npages = slot->npages,
						   .flags = slot->flags & ~KVM_MEMSLOT_INVALID, .hva = slot->hva };
	pthread_mutex_unlock((pthread_mutex_t *)&vm->slots_lock);
	return slot ? 0 : -ENOENT;
}

/* kvm_vm_ioctl_get_dirty_log: take the bitmap, write-protect what was dirty, flush. */
SMMU_API int64_t smmu_memslot_get_dirty_log(smmu_vm *vm, int id, uint64_t *bitmap, size_t words)
{
	if (!vm || !bitmap)
		return -EINVAL;
	struct memslot *slot = slots_lock_get(vm, id);
	int64_t r = 0;
	if (!slot)
		r = -ENOENT;
	else if (!slot->dirty_bitmap)
		r = -ENODATA;
	else if (words < (slot->npages + 63) / 64)
		r = -EINVAL;
	if (r) {
		pthread_mutex_unlock(&vm->slots_lock);
		return r;
	}
	bool flush = false;
	vm_lock(vm, SMMU_SITE_MEMSLOT);
	for (uint64_t i = 0; i < (slot->npages + 63) / 64; i++) {
		uint64_t mask = atomic_exchange_explicit(&slot->dirty_bitmap[i], 0, memory_order_relaxed);
		bitmap[i] = mask;
		r += __builtin_popcountll(mask);
		for (; mask; mask &= mask - 1) { /* kvm_mmu_write_protect_pt_masked */
			smmu_gfn_t gfn = slot->base_gfn + i * 64 + (uint64_t)__builtin_ctzll(mask);
			flush |= __rmap_write_protect(vm, __gfn_to_rmap(slot, gfn, SMMU_LEVEL_4K), false);
		}
	}
	if (flush)
		kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_WRPROT);
	vm_unlock(vm);
	pthread_mutex_unlock(&vm->slots_lock);
	vm_audit_point(vm, "get_dirty_log");
	return r;
}

SMMU_API void *smmu_gfn_to_hva(const smmu_vm *vm, smmu_gfn_t gfn)
{
	if (!vm)
		return NULL;
	pthread_rwlock_rdlock((pthread_rwlock_t *)&vm->srcu);
	struct memslot *slot = gfn_to_valid_memslot(&vm->slots, gfn);
	void *p = slot ? memslot_gfn_to_hva(slot, gfn) : NULL;
	pthread_rwlock_unlock((pthread_rwlock_t *)&vm->srcu);
	return p;
}

SMMU_API int smmu_host_wrote(smmu_vm *vm, const void *start, const void *end)
{
	if (!vm || (uintptr_t)start > (uintptr_t)end)
		return -EINVAL;
	bool srcu = srcu_read_lock_nested(vm);
	for (int i = 0; i < vm->slots.n; i++) {
		struct memslot *slot = vm->slots.sorted[i];
		uintptr_t s0 = (uintptr_t)slot->hva, s1 = s0 + (slot->npages << SMMU_PAGE_SHIFT);
		uintptr_t hs = (uintptr_t)start > s0 ? (uintptr_t)start : s0;
		uintptr_t he = (uintptr_t)end < s1 ? (uintptr_t)end : s1;
		for (uintptr_t a = hs & ~(uintptr_t)(SMMU_PAGE_SIZE - 1); a < he; a += SMMU_PAGE_SIZE)
			host_pte_set_writable(slot, slot->base_gfn + ((a - s0) >> SMMU_PAGE_SHIFT));
	}
	srcu_read_unlock_nested(vm, srcu);
	return 0;
}

_Thread_local struct smmu_vm *srcu_hook_reader;

SMMU_API int smmu_set_hva_to_pfn_hook(smmu_vm *vm, smmu_hva_to_pfn_fn fn, void *ctx)
{
	if (!vm)
		return -EINVAL;
	vm->hva_to_pfn_hook = fn;
	vm->hva_to_pfn_ctx = ctx;
	return 0;
}
