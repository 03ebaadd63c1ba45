/*
 * Shadow pages (kvm_mmu_page): memory caches, allocation from them, linking into parents,
 * the two-phase zap (prepare onto an invalid list, commit after the TLB flush), the page limit,
 * and the requests that zaps send to vCPUs.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "mmu.h"
#include "smmu_config.h"

#define KVM_MIN_FREE_MMU_PAGES 5
#define KVM_REFILL_PAGES 25
/* mmu_topup_memory_caches: at least this many of each before a fault takes mmu_lock. */
#define SP_CACHE_MIN (PT64_ROOT_LEVEL + 1)
#define DESC_CACHE_MIN (8 + PTE_PREFETCH_NUM) /* 3.11's figure: the fault's own and prefetch's rmaps */

static size_t sp_bytes(const struct smmu_sp *sp)
{
	return sizeof(*sp) + TABLE_SIZE + (sp->gfns ? SMMU_PT_ENTRIES * sizeof(smmu_gfn_t) : 0);
}

/* A recycled header's gfns array: to the vCPU's gfns cache, else to the VM's. */
static void keep_gfns(struct smmu_vm *vm, struct mmu_cache *gfns, void *array)
{
	if (gfns->n < MMU_CACHE_CAP) {
		gfns->obj[gfns->n++] = array;
		return;
	}
	struct obj_chain one = { 0 };
	obj_chain_push(&one, array);
	obj_cache_put(&vm->gfns_cache, &one);
}

static int topup_sp(struct smmu_vm *vm, struct mmu_cache *c, struct mmu_cache *gfns)
{
	if (c->n >= SP_CACHE_MIN)
		return 0;
	while (c->n < MMU_CACHE_CAP / 4) {
		struct smmu_sp *sp = obj_cache_get(&vm->hdr_cache);
		if (sp && sp->gfns)
			keep_gfns(vm, gfns, sp->gfns);
		if (!sp)
			sp = smmu_malloc(sizeof(*sp));
		if (!sp)
			return c->n >= SP_CACHE_MIN ? 0 : -ENOMEM;
		uint64_t *spt = table_alloc(&vm->tables);
		if (!spt) {
			smmu_free(sp, sizeof(*sp));
			return c->n >= SP_CACHE_MIN ? 0 : -ENOMEM;
		}
		memset(sp, 0, sizeof(*sp));
		sp->spt = spt;
		*table_owner_slot(spt) = sp;
		c->obj[c->n++] = sp;
	}
	return 0;
}

/* From @from first (when not NULL), then from the allocator. */
static int topup_objs(struct mmu_cache *c, int min, int max, size_t size, struct obj_cache *from)
{
	if (c->n >= min)
		return 0;
	while (c->n < max) {
		void *o = from ? obj_cache_get(from) : NULL;
		if (!o)
			o = smmu_malloc(size);
		if (!o)
			return c->n >= min ? 0 : -ENOMEM;
		c->obj[c->n++] = o;
	}
	return 0;
}

int mmu_topup_memory_caches(struct smmu_vm *vm, struct vcpu_caches *c)
{
	int r = topup_objs(&c->desc, DESC_CACHE_MIN, MMU_CACHE_CAP, sizeof(struct pte_list_desc), NULL);
	if (!r)
		r = topup_sp(vm, &c->sp, &c->gfns);
	if (!r && vm->cfg.mode == SMMU_MODE_SHADOW)
		r = topup_objs(&c->gfns, SP_CACHE_MIN, MMU_CACHE_CAP / 4, SMMU_PT_ENTRIES * sizeof(smmu_gfn_t),
			       &vm->gfns_cache);
	return r;
}

void mmu_free_memory_caches(struct smmu_vm *vm, struct vcpu_caches *c)
{
	while (c->desc.n)
		smmu_free(c->desc.obj[--c->desc.n], sizeof(struct pte_list_desc));
	while (c->gfns.n)
		smmu_free(c->gfns.obj[--c->gfns.n], SMMU_PT_ENTRIES * sizeof(smmu_gfn_t));
	while (c->sp.n) {
		struct smmu_sp *sp = c->sp.obj[--c->sp.n];
		table_free(&vm->tables, sp->spt);
		smmu_free(sp, sizeof(*sp));
	}
}

/*
 * kvm_mmu_alloc_page. New pages go to the head of active_mmu_pages and never move (but for a
 * zapped root still in use, which 3.11 moves back to the head and today takes off the list:
 * rules->zapped_root_leaves_active_list): the list is FIFO, which kvm_zap_obsolete_pages relies
 * on when it stops at the first current page it meets from the tail.
 */
struct smmu_sp *kvm_mmu_alloc_page(struct smmu_vm *vm, struct vcpu_caches *c, bool direct)
{
	lockdep_assert_held(&vm->mmu_lock);
	SMMU_ASSERT(c->sp.n > 0, "shadow page cache empty: topup missed");
	struct smmu_sp *sp = c->sp.obj[--c->sp.n];
	if (!direct) {
		SMMU_ASSERT(c->gfns.n > 0, "gfns cache empty: topup missed");
		sp->gfns = c->gfns.obj[--c->gfns.n];
	}
	list_add(&sp->link, &vm->active_mmu_pages);
	vm->n_used_mmu_pages++;
	vm->stat.pages_created++;
	vm->stat.sp_bytes += sp_bytes(sp);
	return sp;
}

/* kvm_mmu_free_page, but for the table: it is returned to the caller, which gives a whole
 * batch back to the pool under one lock (kvm_mmu_commit_zap_page). */
static uint64_t *free_page_keep_table(struct smmu_vm *vm, struct smmu_sp *sp)
{
	SMMU_ASSERT(sp->n_present == 0, "freeing a shadow page with present sptes");
	SMMU_ASSERT(sp->n_mmio == 0, "freeing a shadow page with MMIO sptes");
	if (!hlist_unhashed(&sp->hash_link))
		hlist_del(&sp->hash_link);
	list_del(&sp->link);
	vm->stat.sp_bytes -= sp_bytes(sp);
	vm->stat.pages_freed++;
	vm_event(vm, SMMU_EV_PAGE_FREED, sp);
	uint64_t *spt = sp->spt;
	/* The header goes to the VM's cache after the lock (vm_unlock), its gfns array still
	 * attached: writing a link into the array would cost a cache miss under the lock. */
	obj_chain_push(&vm->freed_hdr, sp);
	return spt;
}


void mmu_spte_set(struct smmu_vm *vm, uint64_t *sptep, uint64_t spte)
{
	SMMU_ASSERT(!is_shadow_present_pte(*sptep), "mmu_spte_set over a present spte");
	mmio_spte_clear(vm, sptep); /* a stale MMIO spte is overwritten like a non-present one */
	__atomic_store_n(sptep, spte, __ATOMIC_RELAXED);
	page_header(sptep)->n_present++;
	if (is_large_pte(spte))
		vm->stat.lpages++;
}

/* link_shadow_page + mmu_page_add_parent_pte. */
void link_shadow_page(struct smmu_vm *vm, struct mmu_cache *desc, uint64_t *sptep, struct smmu_sp *sp)
{
	uint64_t spte = (uint64_t)(uintptr_t)sp->spt | PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK |
			PT_ACCESSED_MASK;
	mmu_spte_set(vm, sptep, spte);
	pte_list_add(vm, desc, sptep, &sp->parent_ptes);
	if (sp->unsync_children || sp->unsync)
		mark_unsync(vm, sptep);
}

void drop_parent_pte(struct smmu_vm *vm, struct smmu_sp *sp, uint64_t *parent_pte)
{
	pte_list_remove(vm, parent_pte, &sp->parent_ptes);
	mmu_spte_clear(vm, parent_pte);
}

bool mmu_page_zap_pte(struct smmu_vm *vm, struct smmu_sp *sp, uint64_t *spte)
{
	uint64_t pte = *spte;
	if (!is_shadow_present_pte(pte)) {
		mmio_spte_clear(vm, spte); /* an MMIO spte: mmu_spte_clear_no_track */
		return false;
	}
	if (is_last_spte(pte, sp->role.level))
		drop_spte(vm, spte);
	else
		drop_parent_pte(vm, page_header(spte_to_child_spt(pte)), spte);
	return true;
}

/* kvm_mmu_page_unlink_children: every spte of the table; stops once none is left present (nor
 * MMIO: a table goes back to the pool cleared). Tables are mostly sparse: a line of 8 sptes with
 * no present bit (nor an MMIO spte's marker) is skipped with one test. */
static void kvm_mmu_page_unlink_children(struct smmu_vm *vm, struct smmu_sp *sp)
{
	for (int i = 0; i < SMMU_PT_ENTRIES && (sp->n_present || sp->n_mmio); i += 8) {
		const uint64_t *line = sp->spt + i;
		uint64_t any = line[0] | line[1] | line[2] | line[3] | line[4] | line[5] | line[6] | line[7];
		if (!(any & (PT_PRESENT_MASK | SPTE_MMIO_VALUE)))
			continue;
		for (int j = 0; j < 8; j++)
			mmu_page_zap_pte(vm, sp, sp->spt + i + j);
	}
}

static void kvm_mmu_unlink_parents(struct smmu_vm *vm, struct smmu_sp *sp)
{
	struct rmap_iterator it;
	uint64_t *sptep;
	while ((sptep = rmap_get_first(sp->parent_ptes, &it)))
		drop_parent_pte(vm, sp, sptep);
}

/* __kvm_mmu_prepare_zap_page (today's name; 3.11's kvm_mmu_prepare_zap_page): *@nr_zapped gets
 * the pages that went to @invalid_list, the unsync children zapped first
 * (mmu_zap_unsync_children) included; returns whether zapping children made active_mmu_pages
 * unstable (a walk over it must restart). */
bool __kvm_mmu_prepare_zap_page(struct smmu_vm *vm, struct smmu_sp *sp, struct list_node *invalid_list,
				int *nr_zapped)
{
	lockdep_assert_held(&vm->mmu_lock);
	int ret = 0;
	/* The neighbours the unlinking will write: their misses overlap the table scan. */
	__builtin_prefetch(sp->link.prev, 1);
	__builtin_prefetch(sp->link.next, 1);
	__builtin_prefetch(sp->hash_link.pprev, 1);
	__builtin_prefetch(sp->hash_link.next, 1);
	vm->stat.pages_zapped++;
	/* Every call, as the kvm_mmu_prepare_zap_page tracepoint, which comes first in both eras
	 * (before the unsync children it zaps): a root zapped while in use is prepared again when
	 * its last user drops it (mmu_free_root_page). The hook sees role.invalid still clear on
	 * the first zap only. */
	vm_event(vm, SMMU_EV_PAGE_ZAPPED, sp);
	ret = mmu_zap_unsync_children(vm, sp, invalid_list);
	kvm_mmu_page_unlink_children(vm, sp);
	kvm_mmu_unlink_parents(vm, sp);
	bool unstable = ret > 0;
	if (!sp->role.invalid && !sp->role.direct)
		unaccount_shadowed(vm, sp);
	if (sp->unsync)
		kvm_unlink_unsync_page(vm, sp);
	if (!sp->root_count) {
		ret++;
		/* From active_mmu_pages, or (a root zapped before, today) from no list: list_del
		 * left its link pointing at itself. */
		list_move(&sp->link, invalid_list);
		vm->n_used_mmu_pages--;
	} else {
		/* A root still in use stays until its last user drops it: off every list (today),
		 * or at the head of active_mmu_pages (3.11). */
		if (vm->rules->zapped_root_leaves_active_list)
			list_del(&sp->link);
		else
			list_move(&sp->link, &vm->active_mmu_pages);
		if (!sp->role.invalid && !is_obsolete_sp(vm, sp))
			kvm_reload_remote_mmus(vm);
	}
	sp->role.invalid = 1;
	*nr_zapped = ret;
	return unstable;
}

/* kvm_mmu_prepare_zap_page: returns the pages that went to @invalid_list. */
int kvm_mmu_prepare_zap_page(struct smmu_vm *vm, struct smmu_sp *sp, struct list_node *invalid_list)
{
	int nr_zapped;
	__kvm_mmu_prepare_zap_page(vm, sp, invalid_list, &nr_zapped);
	return nr_zapped;
}

/* kvm_mmu_commit_zap_page: flush every vCPU's TLB, then free (no walker can see them now). */
void kvm_mmu_commit_zap_page(struct smmu_vm *vm, struct list_node *invalid_list)
{
	lockdep_assert_held(&vm->mmu_lock);
	if (list_empty(invalid_list))
		return;
	kvm_flush_remote_tlbs(vm, SMMU_SKIP_FLUSH_COMMIT_ZAP);
	/* The tables go back to the pool as one chain, linked through their (zero) first word. */
	struct obj_chain tables = { 0 };
	while (!list_empty(invalid_list)) {
		struct smmu_sp *sp = container_of(invalid_list->next, struct smmu_sp, link);
		SMMU_ASSERT(sp->role.invalid && !sp->root_count, "committing a live page");
		obj_chain_push(&tables, free_page_keep_table(vm, sp));
	}
	table_free_batch(&vm->tables, &tables);
}

/* prepare_zap_oldest_mmu_page (3.11): zap the oldest page that can still be zapped, a root in use
 * included. Zapped roots still in use are passed over (3.11 zaps them again, which only moves
 * them to the head). */
bool prepare_zap_oldest_mmu_page(struct smmu_vm *vm, struct list_node *invalid_list)
{
	for (struct list_node *n = vm->active_mmu_pages.prev; n != &vm->active_mmu_pages; n = n->prev) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		if (sp->role.invalid)
			continue;
		kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
		return true;
	}
	return false; /* only zapped roots in use are left: nothing to reclaim */
}

/* kvm_mmu_zap_oldest_mmu_pages (today): walk from the oldest end, pass over pages in use as
 * roots, stop once @nr_to_zap pages went to @invalid_list; mmu_recycled counts them. */
static void kvm_mmu_zap_oldest_mmu_pages(struct smmu_vm *vm, uint64_t nr_to_zap,
					 struct list_node *invalid_list)
{
	uint64_t total = 0;
	struct list_node *n = vm->active_mmu_pages.prev;
	while (n != &vm->active_mmu_pages && total < nr_to_zap) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		n = n->prev; /* read before the zap moves sp to the invalid list */
		if (sp->root_count)
			continue;
		int ret = kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
		total += (uint64_t)ret;
		if (ret > 1) /* unsync children went too: the list is unstable, restart */
			n = vm->active_mmu_pages.prev;
	}
	vm->stat.pages_recycled += total;
}

void zap_oldest_to(struct smmu_vm *vm, uint64_t target, bool count_steps, struct list_node *invalid_list)
{
	lockdep_assert_held(&vm->mmu_lock);
	if (vm->rules->zap_oldest_skips_roots) {
		if (vm->n_used_mmu_pages > target)
			kvm_mmu_zap_oldest_mmu_pages(vm, vm->n_used_mmu_pages - target, invalid_list);
		return;
	}
	while (vm->n_used_mmu_pages > target && prepare_zap_oldest_mmu_page(vm, invalid_list))
		if (count_steps)
			vm->stat.pages_recycled++;
}

static uint64_t kvm_mmu_available_pages(const struct smmu_vm *vm)
{
	return vm->n_max_mmu_pages > vm->n_used_mmu_pages ? vm->n_max_mmu_pages - vm->n_used_mmu_pages : 0;
}

/* make_mmu_pages_available: below KVM_MIN_FREE_MMU_PAGES free, zap the oldest pages until
 * KVM_REFILL_PAGES are free (3.11 counts each step in mmu_recycled, a root's included). */
void make_mmu_pages_available(struct smmu_vm *vm)
{
	struct list_node invalid_list;
	if (kvm_mmu_available_pages(vm) >= KVM_MIN_FREE_MMU_PAGES)
		return;
	list_init(&invalid_list);
	uint64_t max = vm->n_max_mmu_pages;
	zap_oldest_to(vm, max > KVM_REFILL_PAGES ? max - KVM_REFILL_PAGES : 0, true, &invalid_list);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
}

smmu_gfn_t kvm_mmu_page_get_gfn(const struct smmu_sp *sp, int index)
{
	if (!sp->role.direct)
		return sp->gfns[index] >> SMMU_PAGE_SHIFT;
	return sp->gfn + ((uint64_t)index << ((sp->role.level - 1) * PT64_LEVEL_BITS));
}

uint32_t kvm_mmu_page_get_access(const struct smmu_sp *sp, int index)
{
	if (!sp->role.direct)
		return (uint32_t)(sp->gfns[index] & (SMMU_PAGE_SIZE - 1));
	return sp->role.access;
}

void kvm_mmu_page_set_translation(struct smmu_sp *sp, int index, smmu_gfn_t gfn, uint32_t access)
{
	if (!sp->role.direct)
		sp->gfns[index] = (gfn << SMMU_PAGE_SHIFT) | (access & (SMMU_PAGE_SIZE - 1));
}

void kvm_mmu_page_set_access(struct smmu_sp *sp, int index, uint32_t access)
{
	kvm_mmu_page_set_translation(sp, index, kvm_mmu_page_get_gfn(sp, index), access);
}

void vcpu_make_request(struct smmu_vcpu *v, uint32_t req)
{
	/* Sequentially consistent, as the mode read that follows: the vCPU stores its mode, then
	 * reads its requests (vcpu_enter_guest), so one of the two sides sees the other. */
	atomic_fetch_or_explicit(&v->requests, req, memory_order_seq_cst);
}

/* kvm_vcpu_exiting_guest_mode: the kick. IN_GUEST_MODE becomes EXITING_GUEST_MODE; returns the
 * mode word found. */
static uint32_t kvm_vcpu_exiting_guest_mode(struct smmu_vcpu *v)
{
	uint32_t m = atomic_load_explicit(&v->mode, memory_order_seq_cst);
	while ((m & VCPU_MODE_MASK) == IN_GUEST_MODE &&
	       !atomic_compare_exchange_weak_explicit(&v->mode, &m, (m & ~(uint32_t)VCPU_MODE_MASK) | EXITING_GUEST_MODE,
						      memory_order_seq_cst, memory_order_seq_cst))
		;
	return m;
}

/* Wait for the IPI's acknowledgment: the vCPU has left guest mode since the kick saw @kicked. */
static void vcpu_wait_exit(struct smmu_vcpu *v, uint32_t kicked)
{
	unsigned spins = 0;
	while ((atomic_load_explicit(&v->mode, memory_order_acquire) >> VCPU_MODE_EXIT_SHIFT) ==
	       kicked >> VCPU_MODE_EXIT_SHIFT) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		if ((++spins & 127) == 0)
			sched_yield(); /* the vCPU's thread may need this core */
	}
}

/*
 * kvm_make_all_cpus_request with KVM_REQUEST_WAIT (today), make_all_cpus_request (3.11, which
 * always waits): post @req to every vCPU, kick those in guest mode (or already exiting it), then
 * wait until each of them has left guest mode. A vCPU outside guest mode is not waited for: it
 * sees the request before it enters again. Both eras wait for TLB flushes and MMU reloads.
 */
static void kvm_make_all_cpus_request(struct smmu_vm *vm, uint32_t req, struct lock_site *site)
{
	bool kicked = false;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct smmu_vcpu *v = vm->vcpus[i];
		vcpu_make_request(v, req);
		v->kick_mode = kvm_vcpu_exiting_guest_mode(v);
		kicked |= (v->kick_mode & VCPU_MODE_MASK) != OUTSIDE_GUEST_MODE;
	}
	if (!kicked)
		return;
#if SMMU_LOCK_STATS
	uint64_t t0 = smmu_now_ns();
#endif
	for (int i = 0; i < vm->nr_vcpus; i++)
		if ((vm->vcpus[i]->kick_mode & VCPU_MODE_MASK) != OUTSIDE_GUEST_MODE)
			vcpu_wait_exit(vm->vcpus[i], vm->vcpus[i]->kick_mode);
#if SMMU_LOCK_STATS
	hist_record(&site->request_wait, smmu_now_ns() - t0);
#else
	(void)site;
#endif
}

void kvm_flush_remote_tlbs(struct smmu_vm *vm, uint32_t skip_point)
{
	if (vm->cfg.skip_flush & skip_point)
		return;
	lockdep_assert_held(&vm->mmu_lock);
	struct lock_site *site = &vm->mmu_lock.sites[vm->mmu_lock.site];
#if SMMU_LOCK_STATS
	uint64_t t0 = smmu_now_ns();
#endif
	atomic_fetch_add_explicit(&vm->remote_flushes, 1, memory_order_relaxed);
	site->remote_flushes++;
	kvm_make_all_cpus_request(vm, KVM_REQ_TLB_FLUSH, site);
	vm->tlbs_dirty = 0; /* 3.11's kvm_flush_remote_tlbs: every TLB is flushed now */
#if SMMU_LOCK_STATS
	site->remote_flush_ns += smmu_now_ns() - t0;
#endif
}

void kvm_reload_remote_mmus(struct smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	atomic_fetch_add_explicit(&vm->reload_requests, 1, memory_order_relaxed);
	/* Today: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS (kvm_mmu_zap_all_fast, __kvm_mmu_prepare_zap_page);
	 * 3.11: KVM_REQ_MMU_RELOAD (kvm_reload_remote_mmus). */
	uint32_t req = vm->rules->reload_frees_obsolete_only ? KVM_REQ_MMU_FREE_OBSOLETE_ROOTS : KVM_REQ_MMU_RELOAD;
	kvm_make_all_cpus_request(vm, req, &vm->mmu_lock.sites[vm->mmu_lock.site]);
}
