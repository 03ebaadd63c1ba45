/*
 * The public primitives for invalidation strategies (strategy.h): thin, checked wrappers over
 * the same internal functions the built-in strategies use.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

_Static_assert(sizeof(((struct smmu_invalid_list *)0)->priv) == sizeof(struct list_node),
	       "smmu_invalid_list must hold a list head");

static struct list_node *inv_head(struct smmu_invalid_list *l) { return (struct list_node *)l->priv; }

SMMU_API void smmu_mmu_lock(smmu_vm *vm, enum smmu_site site)
{
	if ((unsigned)site >= SMMU_SITE_COUNT)
		site = SMMU_SITE_USER0;
	vm_lock(vm, site);
}

SMMU_API void smmu_mmu_unlock(smmu_vm *vm) { vm_unlock(vm); }

SMMU_API bool smmu_needbreak(const smmu_vm *vm) { return mmu_lock_needbreak(&vm->mmu_lock); }

SMMU_API bool smmu_cond_resched_lock(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	return vm_cond_resched(vm);
}

SMMU_API int smmu_sp_get_info(const smmu_vm *vm, const smmu_sp *sp, struct smmu_sp_info *out)
{
	if (!vm || !sp || !out)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	*out = (struct smmu_sp_info){
		.gfn = sp->gfn,
		.level = sp->role.level,
		.direct = sp->role.direct,
		.invalid = sp->role.invalid,
		.obsolete = is_obsolete_sp(vm, sp),
		.unsync = sp->unsync,
		.access = sp->role.access,
		.role = sp->role.word,
		.mmu_valid_gen = sp->mmu_valid_gen,
		.root_count = sp->root_count,
		.n_present = sp->n_present,
		.spt = sp->spt,
	};
	return 0;
}

static smmu_sp *active_at(smmu_vm *vm, struct list_node *n)
{
	return n == &vm->active_mmu_pages ? NULL : container_of(n, struct smmu_sp, link);
}

SMMU_API smmu_sp *smmu_active_first(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	return active_at(vm, vm->active_mmu_pages.next);
}

SMMU_API smmu_sp *smmu_active_last(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	return active_at(vm, vm->active_mmu_pages.prev);
}

SMMU_API smmu_sp *smmu_active_next(smmu_vm *vm, smmu_sp *sp)
{
	lockdep_assert_held(&vm->mmu_lock);
	return sp ? active_at(vm, sp->link.next) : NULL;
}

SMMU_API smmu_sp *smmu_active_prev(smmu_vm *vm, smmu_sp *sp)
{
	lockdep_assert_held(&vm->mmu_lock);
	return sp ? active_at(vm, sp->link.prev) : NULL;
}

SMMU_API smmu_sp *smmu_hash_first(smmu_vm *vm, smmu_gfn_t gfn)
{
	lockdep_assert_held(&vm->mmu_lock);
	struct hlist_node *n = vm->mmu_page_hash[kvm_page_table_hashfn(vm, gfn)].first;
	return n ? container_of(n, struct smmu_sp, hash_link) : NULL;
}

SMMU_API smmu_sp *smmu_hash_next(smmu_vm *vm, smmu_sp *sp)
{
	lockdep_assert_held(&vm->mmu_lock);
	return sp && sp->hash_link.next ? container_of(sp->hash_link.next, struct smmu_sp, hash_link) : NULL;
}

SMMU_API void smmu_invalid_list_init(struct smmu_invalid_list *list)
{
	if (!list)
		return;
	list_init(inv_head(list));
	list->count = 0;
}

SMMU_API int smmu_zap_page(smmu_vm *vm, smmu_sp *sp, struct smmu_invalid_list *list)
{
	if (!vm || !sp || !list)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	int ret = kvm_mmu_prepare_zap_page(vm, sp, inv_head(list));
	list->count += (uint64_t)ret;
	return ret;
}

SMMU_API void smmu_commit_zap(smmu_vm *vm, struct smmu_invalid_list *list)
{
	if (!vm || !list)
		return;
	lockdep_assert_held(&vm->mmu_lock);
	kvm_mmu_commit_zap_page(vm, inv_head(list));
	list->count = 0;
}

SMMU_API int smmu_zap_oldest(smmu_vm *vm, struct smmu_invalid_list *list)
{
	if (!vm || !list)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	uint64_t before = vm->n_used_mmu_pages;
	if (!prepare_zap_oldest_mmu_page(vm, inv_head(list)))
		return 0;
	int n = (int)(before - vm->n_used_mmu_pages);
	list->count += (uint64_t)n;
	return n;
}

SMMU_API uint64_t smmu_mmu_valid_gen(const smmu_vm *vm) { return vm ? vm->mmu_valid_gen : 0; }

SMMU_API uint64_t smmu_bump_gen(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	vm->mmu_valid_gen++;
	vm_event(vm, SMMU_EV_GEN_BUMPED, NULL);
	return vm->mmu_valid_gen;
}

SMMU_API void smmu_reload_remote_mmus(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	kvm_reload_remote_mmus(vm);
}

SMMU_API void smmu_flush_remote_tlbs(smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	kvm_flush_remote_tlbs(vm, 0);
}

SMMU_API int smmu_slot_range(smmu_vm *vm, int id, smmu_gfn_t *base_gfn, uint64_t *npages)
{
	if (!vm || !base_gfn || !npages)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	if (id < 0 || id >= SMMU_MAX_MEMSLOTS || !vm->slots.by_id[id])
		return -ENOENT;
	*base_gfn = vm->slots.by_id[id]->base_gfn;
	*npages = vm->slots.by_id[id]->npages;
	return 0;
}

static int rmap_head(smmu_vm *vm, int id, smmu_gfn_t gfn, int level, uintptr_t **head)
{
	if (!vm)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	if (id < 0 || id >= SMMU_MAX_MEMSLOTS || !vm->slots.by_id[id])
		return -ENOENT;
	struct memslot *slot = vm->slots.by_id[id];
	if (level < SMMU_LEVEL_4K || level > SMMU_LEVEL_1G || !memslot_contains(slot, gfn))
		return -EINVAL;
	*head = __gfn_to_rmap(slot, gfn, level);
	return 0;
}

SMMU_API int smmu_rmap_walk(smmu_vm *vm, int id, smmu_gfn_t gfn, int level, smmu_rmap_fn fn, void *ctx)
{
	uintptr_t *head;
	if (!fn)
		return -EINVAL;
	int r = rmap_head(vm, id, gfn, level, &head);
	if (r)
		return r;
	struct rmap_iterator it;
	for (uint64_t *s = rmap_get_first(*head, &it); s; s = rmap_get_next(&it)) {
		r = fn(vm, s, *s, ctx);
		if (r)
			return r;
	}
	return 0;
}

SMMU_API int smmu_rmap_unmap(smmu_vm *vm, int id, smmu_gfn_t gfn, int level)
{
	uintptr_t *head;
	int r = rmap_head(vm, id, gfn, level, &head);
	return r ? r : kvm_unmap_rmapp(vm, head);
}

SMMU_API int smmu_lpage_disallow(smmu_vm *vm, int id, smmu_gfn_t gfn, int level, int32_t *out)
{
	if (!vm || !out)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	if (id < 0 || id >= SMMU_MAX_MEMSLOTS || !vm->slots.by_id[id])
		return -ENOENT;
	struct memslot *slot = vm->slots.by_id[id];
	if (level < SMMU_LEVEL_2M || level > SMMU_LEVEL_1G || !memslot_contains(slot, gfn))
		return -EINVAL;
	*out = *lpage_info_slot(slot, gfn, level);
	return 0;
}

SMMU_API int smmu_lpage_forget_obsolete(smmu_vm *vm)
{
	if (!vm)
		return -EINVAL;
	lockdep_assert_held(&vm->mmu_lock);
	lpage_forget_obsolete(vm);
	return 0;
}

SMMU_API int smmu_set_hook(smmu_vm *vm, smmu_hook_fn fn, void *ctx)
{
	if (!vm)
		return -EINVAL;
	vm->hook = fn;
	vm->hook_ctx = ctx;
	return 0;
}
