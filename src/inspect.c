/*
 * Read-only questions about the MMU state (inspect.h): each takes mmu_lock, reads, lets go.
 * They model no KVM function; they answer what a test would otherwise reach into the structures
 * for (a slot's shadow pages, a gfn's rmap heads, its kvm_lpage_info entries).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

#define SP_KINDS (SMMU_SP_INDIRECT | SMMU_SP_DIRECT)

/* Take mmu_lock for an inspection; -EDEADLK when this thread holds it already. */
static int inspect_lock(smmu_vm *vm)
{
	if (mmu_lock_held(&vm->mmu_lock))
		return -EDEADLK;
	vm_lock(vm, SMMU_SITE_AUDIT);
	return 0;
}

/* Take mmu_lock and find the slot holding @gfn (valid or being deleted); on error the lock is
 * not held: -EDEADLK as inspect_lock, -ENOENT when no slot holds @gfn. */
static int inspect_lock_gfn(smmu_vm *vm, smmu_gfn_t gfn, const struct memslot **slot)
{
	int r = inspect_lock(vm);
	if (r)
		return r;
	*slot = gfn_to_memslot(&vm->slots, gfn);
	if (!*slot) {
		vm_unlock(vm);
		return -ENOENT;
	}
	return 0;
}

static bool sp_matches(const struct smmu_vm *vm, const struct smmu_sp *sp, unsigned filter)
{
	if (!(filter & (sp->role.direct ? SMMU_SP_DIRECT : SMMU_SP_INDIRECT)))
		return false;
	if (sp->role.invalid)
		return filter & SMMU_SP_INVALID;
	if (is_obsolete_sp(vm, sp))
		return filter & SMMU_SP_OBSOLETE;
	return true;
}

SMMU_API long smmu_inspect_slot_pages(smmu_vm *vm, int id, unsigned filter,
				      struct smmu_sp_info *out, size_t cap)
{
	if (!vm || (!out && cap) || !(filter & SP_KINDS) || (filter & ~(unsigned)SMMU_SP_ALL))
		return -EINVAL;
	int r = inspect_lock(vm);
	if (r)
		return r;
	const struct memslot *slot = id >= 0 && id < SMMU_MAX_MEMSLOTS ? vm->slots.by_id[id] : NULL;
	if (!slot) {
		vm_unlock(vm);
		return -ENOENT;
	}
	long n = 0;
	for (struct list_node *l = vm->active_mmu_pages.next; l != &vm->active_mmu_pages; l = l->next) {
		const struct smmu_sp *sp = container_of(l, struct smmu_sp, link);
		if (!memslot_contains(slot, sp->gfn) || !sp_matches(vm, sp, filter))
			continue;
		if ((size_t)n < cap) {
			smmu_sp_get_info(vm, sp, &out[n]);
			out[n].spt = NULL; /* the table outlives nothing once the lock is gone */
		}
		n++;
	}
	vm_unlock(vm);
	return n;
}

SMMU_API long smmu_inspect_rmap_count(smmu_vm *vm, smmu_gfn_t gfn, uint64_t per_level[SMMU_NR_PAGE_SIZES])
{
	const struct memslot *slot;
	if (!vm)
		return -EINVAL;
	int r = inspect_lock_gfn(vm, gfn, &slot);
	if (r)
		return r;
	uint64_t count[SMMU_NR_PAGE_SIZES];
	long total = 0;
	for (int level = SMMU_LEVEL_4K; level <= SMMU_NR_PAGE_SIZES; level++) {
		count[level - 1] = pte_list_count(*__gfn_to_rmap(slot, gfn, level));
		total += (long)count[level - 1];
	}
	vm_unlock(vm);
	if (per_level)
		for (int i = 0; i < SMMU_NR_PAGE_SIZES; i++)
			per_level[i] = count[i];
	return total;
}

SMMU_API int smmu_inspect_lpage_disallow(smmu_vm *vm, smmu_gfn_t gfn, int32_t out[SMMU_NR_PAGE_SIZES - 1])
{
	const struct memslot *slot;
	if (!vm || !out)
		return -EINVAL;
	int r = inspect_lock_gfn(vm, gfn, &slot);
	if (r)
		return r;
	int32_t v[SMMU_NR_PAGE_SIZES - 1];
	for (int level = SMMU_LEVEL_2M; level <= SMMU_NR_PAGE_SIZES; level++)
		v[level - 2] = *lpage_info_slot(slot, gfn, level);
	vm_unlock(vm);
	for (int i = 0; i < SMMU_NR_PAGE_SIZES - 1; i++)
		out[i] = v[i];
	return 0;
}
