/*
 * kvm_mmu_zap_all in the three ways the seed thread weighs holding mmu_lock:
 *   HOLD        hold it for the whole walk (Linux up to 3.10);
 *   RESTART     break it on contention and restart the walk (what Linux 5.1 shipped, and what
 *               hung 30-vCPU guests in 2019: faulting vCPUs refill the list faster than it drains);
 *   GENERATION  break it on contention but zap only pages older than the zap itself
 *               (Marcelo's kvm_mmu_zap_generation), so it always terminates.
 * RESTART and GENERATION break where cond_resched_lock would (mmu_lock_needbreak: need_resched()
 * or, on a preemptible kernel only, a waiter); the profile's zap_all_commit_once says whether
 * they commit before each break (the model's first reading) or once at the end (KVM since 5.1).
 * The seed thread's proposal differs from what KVM shipped in two ways, both kept apart here:
 *   - it breaks only `if (spin_needbreak(mmu_lock))`, which is 0 on a kernel without
 *     CONFIG_PREEMPT, so as written it never breaks there; KVM's walks call cond_resched_lock,
 *     which also breaks on need_resched(). The model follows KVM. With resched_slice_ns = 0
 *     (no other task on the zapper's CPU, so need_resched() never comes) the two agree:
 *     preempt = FULL breaks for waiters, NONE/VOLUNTARY never break; with a slice, the
 *     proposal would still never break under NONE/VOLUNTARY where KVM does, once a slice;
 *   - it says nothing of the invalid list at a break; KVM's kvm_mmu_zap_all keeps it and
 *     commits once (zap_all_commit_once, today's profile), the 3.11 profile commits first.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

static struct smmu_sp *sp_of(struct list_node *n) { return container_of(n, struct smmu_sp, link); }

/* Zap every page, holding the lock throughout. Caller holds mmu_lock. */
void kvm_mmu_zap_all_locked(struct smmu_vm *vm, struct smmu_zap_report *rep)
{
	struct list_node invalid_list;
	list_init(&invalid_list);
	lockdep_assert_held(&vm->mmu_lock);
	rep->rounds++;
restart:
	for (struct list_node *n = vm->active_mmu_pages.next, *next; n != &vm->active_mmu_pages; n = next) {
		struct smmu_sp *sp = sp_of(n);
		next = n->next;
		if (sp->role.invalid && sp->root_count)
			continue; /* zapped already; waits for its last user */
		if (next != &vm->active_mmu_pages) { /* the next page's header and table, early */
			__builtin_prefetch(sp_of(next));
			__builtin_prefetch(sp_of(next)->spt);
		}
		int ret = kvm_mmu_prepare_zap_page(vm, sp, &invalid_list);
		rep->pages_zapped += (uint64_t)ret;
		if (ret)
			goto restart;
	}
	kvm_mmu_commit_zap_page(vm, &invalid_list);
}

/*
 * cond_resched_lock in kvm_mmu_zap_all's walk, when need_resched() || spin_needbreak(). The
 * profile's zap_all_commit_once says whether what was zapped is committed (flushed and freed)
 * first, or stays on the invalid list, hashed and unflushed, until the walk's one commit at the
 * end (as the fast zap's drain keeps zapped_obsolete_pages across its breaks).
 */
static bool zap_break(struct smmu_vm *vm, struct list_node *invalid_list, struct smmu_zap_report *rep)
{
	if (!mmu_lock_needbreak(&vm->mmu_lock))
		return false;
	if (!vm->rules->zap_all_commit_once)
		kvm_mmu_commit_zap_page(vm, invalid_list);
	if (!vm_cond_resched(vm))
		return false;
	rep->lock_breaks++;
	rep->rounds++;
	return true;
}

/* RESTART: after each page, break on contention and walk again from the head. */
static int zap_all_restart(struct smmu_vm *vm, uint64_t max_rounds, struct smmu_zap_report *rep)
{
	struct list_node *invalid_list = &vm->zap_all_pending;
	rep->rounds++;
restart:
	if (max_rounds && rep->rounds > max_rounds) {
		kvm_mmu_commit_zap_page(vm, invalid_list);
		return -EAGAIN;
	}
	for (struct list_node *n = vm->active_mmu_pages.next, *next; n != &vm->active_mmu_pages; n = next) {
		struct smmu_sp *sp = sp_of(n);
		next = n->next;
		if (sp->role.invalid && sp->root_count)
			continue;
		int ret = kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
		rep->pages_zapped += (uint64_t)ret;
		if (zap_break(vm, invalid_list, rep) || ret)
			goto restart;
	}
	kvm_mmu_commit_zap_page(vm, invalid_list);
	return 0;
}

/*
 * GENERATION: the pages to zap are those created before the zap began (zap_gen <= g). They lie
 * at the tail of the FIFO active list, so the walk starts there and stops at the first newer
 * page: a restart after a break costs nothing, and pages created meanwhile are never touched.
 */
static void zap_all_generation(struct smmu_vm *vm, struct smmu_zap_report *rep)
{
	struct list_node *invalid_list = &vm->zap_all_pending;
	uint64_t g = vm->zap_gen++;
	rep->rounds++;
restart:
	for (struct list_node *n = vm->active_mmu_pages.prev, *prev; n != &vm->active_mmu_pages; n = prev) {
		struct smmu_sp *sp = sp_of(n);
		prev = n->prev;
		if (sp->role.invalid && sp->root_count)
			continue; /* moved back to the head: skip, or the walk would not end */
		if (sp->zap_gen > g)
			break;
		int ret = kvm_mmu_prepare_zap_page(vm, sp, invalid_list);
		rep->pages_zapped += (uint64_t)ret;
		if (zap_break(vm, invalid_list, rep) || ret)
			goto restart;
	}
	kvm_mmu_commit_zap_page(vm, invalid_list);
}

int zap_all_mode_locked(struct smmu_vm *vm, enum smmu_zap_mode mode, uint64_t max_rounds,
			struct smmu_zap_report *rep)
{
	switch (mode) {
	case SMMU_ZAP_HOLD:
		kvm_mmu_zap_all_locked(vm, rep);
		return 0;
	case SMMU_ZAP_RESTART: {
		vm->zap_all_runs++; /* zap_all_pending may hold pages at our lock breaks (the audit) */
		int r = zap_all_restart(vm, max_rounds, rep);
		vm->zap_all_runs--;
		return r;
	}
	case SMMU_ZAP_GENERATION:
		vm->zap_all_runs++;
		zap_all_generation(vm, rep);
		vm->zap_all_runs--;
		return 0;
	default:
		return -EINVAL;
	}
}

SMMU_API int smmu_zap_all(smmu_vm *vm, enum smmu_zap_mode mode, uint64_t max_rounds, struct smmu_zap_report *rep)
{
	struct smmu_zap_report local = { 0 };
	if (!vm || (unsigned)mode >= SMMU_ZAP_MODE_COUNT)
		return -EINVAL;
	uint64_t t0 = smmu_now_ns();
	uint64_t flushes = atomic_load(&vm->remote_flushes);
	vm_lock(vm, SMMU_SITE_ZAP_ALL);
	int r = zap_all_mode_locked(vm, mode, max_rounds, &local);
	vm_unlock(vm);
	local.completed = r == 0;
	local.remote_flushes = atomic_load(&vm->remote_flushes) - flushes;
	local.total_ns = smmu_now_ns() - t0;
	if (rep)
		*rep = local;
	vm_audit_point(vm, "zap_all");
	return r;
}

SMMU_API const char *smmu_zap_mode_name(enum smmu_zap_mode mode)
{
	static const char *const names[] = { "hold", "restart", "generation" };
	return (unsigned)mode < SMMU_ZAP_MODE_COUNT ? names[mode] : "?";
}
