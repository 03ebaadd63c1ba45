/*
 * The roots a vCPU holds: the current one and, today, a small cache of previous ones
 * (kvm_mmu.prev_roots, rules->prev_roots of them, most recently used first) that a guest's MOV
 * CR3 back to one of their CR3s makes current again without building a new root. Each held root,
 * current or cached, counts once in its page's root_count (the audit checks the sum). What frees
 * them: a CR3 switch evicting the least recently used (fast_pgd_switch), the reset of
 * KVM_SET_SREGS and the vCPU's end (kvm_mmu_unload: all), and today's
 * KVM_REQ_MMU_FREE_OBSOLETE_ROOTS after a fast zap (kvm_mmu_free_obsolete_roots: the obsolete
 * and zapped ones, current or cached).
 *
 * SPDX-License-Identifier: MIT
 */
#include "mmu.h"

/* mmu_free_root_page: drop one hold on @r's page; the last hold on a zapped root zaps it again,
 * which frees it (it waited on the active list for its users). */
static void mmu_free_root_page(struct smmu_vm *vm, struct vcpu_root *r, struct list_node *invalid_list)
{
	struct smmu_sp *sp = r->sp;
	if (!sp)
		return;
	r->sp = NULL;
	r->pgd = 0;
	if (--sp->root_count == 0 && sp->role.invalid)
		kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
}

/* kvm_mmu_free_roots: the previous roots first (0, 1, 2), then the current one, as KVM orders
 * them (the order of the zap events of zapped roots). */
void kvm_mmu_free_roots_locked(struct smmu_vcpu *v, unsigned roots_to_free, struct list_node *invalid_list)
{
	struct smmu_vm *vm = v->vm;
	lockdep_assert_held(&vm->mmu_lock);
	for (int i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++)
		if (roots_to_free & KVM_MMU_ROOT_PREVIOUS(i))
			mmu_free_root_page(vm, &v->prev_roots[i], invalid_list);
	if (roots_to_free & KVM_MMU_ROOT_CURRENT) {
		struct vcpu_root cur = { v->root, v->root_pgd };
		mmu_free_root_page(vm, &cur, invalid_list);
		v->root = NULL;
		v->root_pgd = 0;
	}
}

/* is_obsolete_root (is_obsolete_sp counts a zapped page as obsolete too). */
static bool is_obsolete_root(const struct smmu_vm *vm, const struct smmu_sp *sp)
{
	return sp && (sp->role.invalid || is_obsolete_sp(vm, sp));
}

bool kvm_mmu_free_obsolete_roots(struct smmu_vcpu *v)
{
	struct smmu_vm *vm = v->vm;
	struct list_node invalid_list;
	list_init(&invalid_list);
	vm_lock(vm, SMMU_SITE_VCPU);
	unsigned roots_to_free = 0;
	if (is_obsolete_root(vm, v->root))
		roots_to_free |= KVM_MMU_ROOT_CURRENT;
	for (int i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++)
		if (is_obsolete_root(vm, v->prev_roots[i].sp))
			roots_to_free |= KVM_MMU_ROOT_PREVIOUS(i);
	kvm_mmu_free_roots_locked(v, roots_to_free, &invalid_list);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	vm_unlock(vm);
	return roots_to_free & KVM_MMU_ROOT_CURRENT;
}

/* is_root_usable: a root of this CR3 whose role is the vCPU's. A shadow root's role differs
 * from the vCPU's only by the invalid bit here (one paging mode), so: not zapped. An obsolete
 * root passes, as in KVM: the request that came with the generation bump frees it at entry. */
static bool is_root_usable(const struct vcpu_root *r, smmu_gpa_t pgd)
{
	return r->sp && r->pgd == pgd && !r->sp->role.invalid;
}

static void swap_roots(struct vcpu_root *a, struct vcpu_root *b)
{
	struct vcpu_root t = *a;
	*a = *b;
	*b = t;
}

/* cached_root_find_and_keep_current: rotate the current root into the cache while looking; on
 * a miss the least recently used one ends up current, and is freed. */
static bool cached_root_find_and_keep_current(struct smmu_vcpu *v, smmu_gpa_t pgd, struct list_node *invalid_list)
{
	struct vcpu_root cur = { v->root, v->root_pgd };
	bool hit = is_root_usable(&cur, pgd);
	for (int i = 0; !hit && i < v->vm->rules->prev_roots; i++) {
		swap_roots(&cur, &v->prev_roots[i]);
		hit = is_root_usable(&cur, pgd);
	}
	v->root = cur.sp;
	v->root_pgd = cur.pgd;
	if (!hit)
		kvm_mmu_free_roots_locked(v, KVM_MMU_ROOT_CURRENT, invalid_list);
	return hit;
}

/* cached_root_find_without_current: a hit becomes current and the younger entries move up. */
static bool cached_root_find_without_current(struct smmu_vcpu *v, smmu_gpa_t pgd)
{
	int n = v->vm->rules->prev_roots, i = 0;
	while (i < n && !is_root_usable(&v->prev_roots[i], pgd))
		i++;
	if (i == n)
		return false;
	v->root = v->prev_roots[i].sp;
	v->root_pgd = v->prev_roots[i].pgd;
	for (; i < n - 1; i++)
		v->prev_roots[i] = v->prev_roots[i + 1];
	v->prev_roots[n - 1] = (struct vcpu_root){ NULL, 0 };
	return true;
}

bool kvm_mmu_new_pgd(struct smmu_vcpu *v, smmu_gpa_t pgd, struct list_node *invalid_list)
{
	lockdep_assert_held(&v->vm->mmu_lock);
	/* fast_pgd_switch */
	bool hit = v->root ? cached_root_find_and_keep_current(v, pgd, invalid_list)
			   : cached_root_find_without_current(v, pgd);
	/* A reused root is in use again: its write-flooding count restarts
	 * (__clear_sp_write_flooding_count; a direct root has none). */
	if (hit && v->root && !v->root->role.direct)
		v->root->write_flooding_count = 0;
	return hit;
}
