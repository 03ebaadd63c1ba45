/*
 * rmaps and parent_ptes: pte_list, one word per gfn per level, as KVM stores them (a single
 * sptep, or with bit 0 set a pointer to a chain of pte_list_desc of PTE_LIST_EXT entries).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

/* mmu_alloc_pte_list_desc: from the vCPU's cache, never from the allocator (we hold mmu_lock). */
static struct pte_list_desc *desc_from_cache(struct smmu_vm *vm, struct mmu_cache *cache)
{
	SMMU_ASSERT(cache && cache->n > 0, "pte_list_desc cache empty: topup missed");
	struct pte_list_desc *d = cache->obj[--cache->n];
	d->sptes[0] = d->sptes[1] = d->sptes[2] = NULL;
	d->more = NULL;
	vm->stat.rmap_descs++;
	return d;
}

static void desc_free(struct smmu_vm *vm, struct pte_list_desc *d)
{
	lockdep_assert_held(&vm->mmu_lock);
	vm->stat.rmap_descs--;
	d->more = vm->deferred_desc; /* freed by vm_unlock, after the lock */
	vm->deferred_desc = d;
}

/* pte_list_add: returns how many entries were there before. */
int pte_list_add(struct smmu_vm *vm, struct mmu_cache *cache, uint64_t *spte, uintptr_t *head)
{
	if (!*head) {
		*head = (uintptr_t)spte;
		return 0;
	}
	if (!(*head & 1)) {
		struct pte_list_desc *d = desc_from_cache(vm, cache);
		d->sptes[0] = (uint64_t *)*head;
		d->sptes[1] = spte;
		*head = (uintptr_t)d | 1;
		return 1;
	}
	int count = 0;
	struct pte_list_desc *d = (struct pte_list_desc *)(*head & ~(uintptr_t)1);
	while (d->sptes[PTE_LIST_EXT - 1] && d->more) {
		d = d->more;
		count += PTE_LIST_EXT;
	}
	if (d->sptes[PTE_LIST_EXT - 1]) {
		d->more = desc_from_cache(vm, cache);
		d = d->more;
		count += PTE_LIST_EXT;
	}
	int i = 0;
	while (d->sptes[i])
		i++, count++;
	d->sptes[i] = spte;
	return count;
}

/* pte_list_desc_remove_entry: fill the hole with the descriptor's last entry. */
static void desc_remove_entry(struct smmu_vm *vm, uintptr_t *head, struct pte_list_desc *d, int i,
			      struct pte_list_desc *prev)
{
	int j = PTE_LIST_EXT - 1;
	while (!d->sptes[j] && j > i)
		j--;
	d->sptes[i] = d->sptes[j];
	d->sptes[j] = NULL;
	if (j != 0)
		return;
	if (!prev && !d->more)
		*head = (uintptr_t)d->sptes[0];
	else if (prev)
		prev->more = d->more;
	else
		*head = (uintptr_t)d->more | 1;
	desc_free(vm, d);
}

void pte_list_remove(struct smmu_vm *vm, uint64_t *spte, uintptr_t *head)
{
	SMMU_ASSERT(*head, "pte_list_remove: empty list");
	if (!(*head & 1)) {
		SMMU_ASSERT((uint64_t *)*head == spte, "pte_list_remove: spte not in its list");
		*head = 0;
		return;
	}
	struct pte_list_desc *prev = NULL;
	for (struct pte_list_desc *d = (struct pte_list_desc *)(*head & ~(uintptr_t)1); d; d = d->more) {
		for (int i = 0; i < PTE_LIST_EXT && d->sptes[i]; i++) {
			if (d->sptes[i] == spte) {
				desc_remove_entry(vm, head, d, i, prev);
				return;
			}
		}
		prev = d;
	}
	SMMU_ASSERT(0, "pte_list_remove: spte not in its list");
}

uint64_t *rmap_get_first(uintptr_t head, struct rmap_iterator *it)
{
	if (!head)
		return NULL;
	if (!(head & 1)) {
		it->desc = NULL;
		return (uint64_t *)head;
	}
	it->desc = (struct pte_list_desc *)(head & ~(uintptr_t)1);
	it->pos = 0;
	return it->desc->sptes[0];
}

uint64_t *rmap_get_next(struct rmap_iterator *it)
{
	if (!it->desc)
		return NULL;
	if (it->pos < PTE_LIST_EXT - 1 && it->desc->sptes[it->pos + 1])
		return it->desc->sptes[++it->pos];
	it->desc = it->desc->more;
	it->pos = 0;
	return it->desc ? it->desc->sptes[0] : NULL;
}

size_t pte_list_count(uintptr_t head)
{
	struct rmap_iterator it;
	size_t n = 0;
	for (uint64_t *s = rmap_get_first(head, &it); s; s = rmap_get_next(&it))
		n++;
	return n;
}

void pte_list_free_all(struct smmu_vm *vm, uintptr_t *head)
{
	if (*head & 1) {
		struct pte_list_desc *d = (struct pte_list_desc *)(*head & ~(uintptr_t)1);
		while (d) {
			struct pte_list_desc *next = d->more;
			desc_free(vm, d);
			d = next;
		}
	}
	*head = 0;
}

uintptr_t *__gfn_to_rmap(const struct memslot *slot, smmu_gfn_t gfn, int level)
{
	return &slot->rmap[level - 1][gfn_to_index(gfn, slot->base_gfn, level)];
}

uintptr_t *gfn_to_rmap(struct smmu_vm *vm, smmu_gfn_t gfn, int level)
{
	struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
	SMMU_ASSERT(slot, "gfn_to_rmap: gfn in no slot");
	return __gfn_to_rmap(slot, gfn, level);
}

int rmap_add(struct smmu_vm *vm, struct mmu_cache *cache, uint64_t *spte, smmu_gfn_t gfn, uint32_t access)
{
	struct smmu_sp *sp = page_header(spte);
	kvm_mmu_page_set_translation(sp, (int)(spte - sp->spt), gfn, access);
	return pte_list_add(vm, cache, spte, gfn_to_rmap(vm, gfn, sp->role.level));
}

void rmap_remove(struct smmu_vm *vm, uint64_t *spte)
{
	struct smmu_sp *sp = page_header(spte);
	smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, (int)(spte - sp->spt));
	pte_list_remove(vm, spte, gfn_to_rmap(vm, gfn, sp->role.level));
}

void drop_spte(struct smmu_vm *vm, uint64_t *sptep)
{
	if (!is_shadow_present_pte(*sptep))
		return;
	rmap_remove(vm, sptep);
	mmu_spte_clear(vm, sptep);
}

int kvm_unmap_rmapp(struct smmu_vm *vm, uintptr_t *head)
{
	struct rmap_iterator it;
	uint64_t *sptep;
	int n = 0;
	while ((sptep = rmap_get_first(*head, &it))) {
		drop_spte(vm, sptep);
		n++;
	}
	return n;
}

/* spte_write_protect: true when the spte was dropped (the iteration must restart). A writable
 * large spte is dropped in 3.11 (__drop_large_spte), made read-only today
 * (rules->wrprot_drops_large_spte); a read-only one stays in both, even over a shadowed table. */
static bool spte_write_protect(struct smmu_vm *vm, uint64_t *sptep, bool *flush)
{
	uint64_t spte = *sptep;
	if (!is_writable_pte(spte))
		return false;
	*flush = true;
	if (is_large_pte(spte) && vm->rules->wrprot_drops_large_spte) {
		drop_spte(vm, sptep);
		return true;
	}
	__atomic_store_n(sptep, spte & ~PT_WRITABLE_MASK, __ATOMIC_RELAXED);
	return false;
}

bool __rmap_write_protect(struct smmu_vm *vm, uintptr_t *head, bool pt_protect)
{
	(void)pt_protect; /* KVM's SPTE_MMU_WRITEABLE is not modelled: it changes nothing here */
	struct rmap_iterator it;
	bool flush = false;
	for (uint64_t *sptep = rmap_get_first(*head, &it); sptep;) {
		if (spte_write_protect(vm, sptep, &flush))
			sptep = rmap_get_first(*head, &it);
		else
			sptep = rmap_get_next(&it);
	}
	return flush;
}

bool rmap_write_protect(struct smmu_vm *vm, smmu_gfn_t gfn)
{
	struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
	bool flush = false;
	if (!slot)
		return false;
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++)
		flush |= __rmap_write_protect(vm, __gfn_to_rmap(slot, gfn, level), true);
	return flush;
}
