/*
 * The generation-bump fast zap (kvm_mmu_invalidate_zap_all_pages, Linux 3.11;
 * kvm_mmu_zap_all_fast today): bump mmu_valid_gen and ask every vCPU to reload its root, both
 * under mmu_lock, so every page is obsolete at once and no lookup returns one again; then zap the
 * obsolete pages from the tail of active_mmu_pages in small batches, breaking the lock between
 * batches. No TLB flush at the breaks: every vCPU reloads its root (and so flushes) before it
 * runs again; one flush at commit. Where the eras differ (profile.h): fast_zap_gen_toggles,
 * zapped_root_leaves_active_list, obsolete_zap_restarts_if_unstable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>

#include "mmu.h"

/*
 * The first obsolete child of @sp, or NULL (zap_leaf_first). Leaf sptes (also large ones) are not
 * links. A current child under an obsolete parent (a walk from a root not yet reloaded linked it)
 * is passed over: KVM only unlinks it, and so does the parent's zap here. Links made after the
 * bump lead to current pages only, so the scan resumes where the last one stopped.
 */
static struct smmu_sp *obsolete_child(const struct smmu_vm *vm, struct smmu_sp *sp)
{
	if (sp->role.level == 1 || !sp->n_present)
		return NULL;
	uint16_t gen = (uint16_t)vm->mmu_valid_gen;
	unsigned i = sp->zap_scan_gen == gen ? sp->zap_scan : 0;
	struct smmu_sp *child = NULL;
	for (; i < SMMU_PT_ENTRIES; i++) {
		uint64_t spte = sp->spt[i];
		if (!is_shadow_present_pte(spte) || is_last_spte(spte, sp->role.level))
			continue;
		child = page_header(spte_to_child_spt(spte));
		if (is_obsolete_sp(vm, child))
			break;
		child = NULL;
	}
	sp->zap_scan = (uint16_t)i;
	sp->zap_scan_gen = gen;
	return child;
}

/*
 * zap_leaf_first's walk down from the tail page: the path to the page zapped last. While no page
 * was zapped since (the VM's zap counter says so) every page on it is still live and obsolete,
 * so the next descent starts from the deepest one instead of the tail.
 */
struct descent {
	struct smmu_sp *path[PT64_ROOT_LEVEL];
	int depth;
	uint64_t stamp; /* vm->stat.pages_zapped after our last zap */
};

/* The lowest obsolete descendant of @tail: zapping it unlinks no obsolete page. Not in KVM,
 * which zaps @tail itself and unlinks up to 512 children in that one step. */
static struct smmu_sp *next_victim(const struct smmu_vm *vm, struct descent *d, struct smmu_sp *tail)
{
	if (!d->depth || d->stamp != vm->stat.pages_zapped || d->path[0] != tail) {
		d->path[0] = tail;
		d->depth = 1;
	}
	struct smmu_sp *sp = d->path[d->depth - 1];
	for (struct smmu_sp *child; (child = obsolete_child(vm, sp));) {
		SMMU_ASSERT(d->depth < PT64_ROOT_LEVEL, "obsolete descent deeper than the root level");
		d->path[d->depth++] = sp = child;
	}
	d->depth--; /* the victim leaves the path */
	return sp;
}

/* zap_commit_per_batch: free the batch, then let go of the lock even when nobody waits, so no
 * stretch of holding spans more than one batch. */
static void commit_and_break(struct smmu_vm *vm)
{
	kvm_mmu_commit_zap_page(vm, &vm->zapped_obsolete_pages);
	if (!vm_cond_resched(vm)) {
		enum smmu_site site = vm->mmu_lock.site;
		vm_unlock(vm);
		vm_lock(vm, site);
	}
}

/* kvm_zap_obsolete_pages. Caller holds mmu_lock. */
void kvm_zap_obsolete_pages(struct smmu_vm *vm, struct smmu_zap_report *rep)
{
	uint64_t batch = 0;
	struct descent d = { .depth = 0 };
	lockdep_assert_held(&vm->mmu_lock);
	rep->rounds++;
	vm->zap_drains++; /* zapped_obsolete_pages may hold pages at our lock breaks (the audit) */
restart:
	for (struct list_node *n = vm->active_mmu_pages.prev, *prev; n != &vm->active_mmu_pages; n = prev) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		prev = n->prev;
		/* active_mmu_pages is FIFO: nothing obsolete lies before the first current page. */
		if (!is_obsolete_sp(vm, sp))
			break;
		/* Zapped roots still in use go back to the head in 3.11; skipping them ends the walk.
		 * Today they leave the list, and kvm_zap_obsolete_pages WARNs on one here. */
		if (sp->role.invalid)
			continue;
		if (batch >= vm->cfg.zap_batch) {
			/* KVM frees nothing here (no flush at the breaks) and breaks only for a waiter. */
			bool broke = true;
			if (vm->cfg.zap_commit_per_batch)
				commit_and_break(vm);
			else
				broke = vm_cond_resched(vm);
			if (broke) {
				batch = 0;
				rep->lock_breaks++;
				rep->rounds++;
				goto restart;
			}
		}
		struct smmu_sp *victim = vm->cfg.zap_leaf_first ? next_victim(vm, &d, sp) : sp;
		int ret;
		bool unstable = __kvm_mmu_prepare_zap_page(vm, victim, &vm->zapped_obsolete_pages, &ret);
		d.stamp = vm->stat.pages_zapped;
		batch += (uint64_t)ret;
		rep->pages_zapped += (uint64_t)ret;
		/* 3.11 restarts after every page it listed; today only when children went too (the
		 * page before @sp may be gone), else it goes on with that page. */
		bool again = vm->rules->obsolete_zap_restarts_if_unstable ? unstable : ret > 0;
		if (again || victim != sp) {
			rep->restarts++;
			goto restart;
		}
	}
	/* Flush before freeing: a lockless walker may still use the tables. */
	kvm_mmu_commit_zap_page(vm, &vm->zapped_obsolete_pages);
	vm->zap_drains--;
}

/* Valid pages of an older generation still listed: the tail of active_mmu_pages is one (the
 * list is FIFO; zapped roots, at its head in 3.11, are passed over). */
static bool obsolete_pages_left(const struct smmu_vm *vm)
{
	for (const struct list_node *n = vm->active_mmu_pages.prev; n != &vm->active_mmu_pages; n = n->prev) {
		const struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		if (!sp->role.invalid)
			return is_obsolete_sp(vm, sp);
	}
	return false;
}

/*
 * The locked step: every page obsolete at once, every vCPU asked to reload. mmu_valid_gen counts
 * the bumps in both eras (rules->fast_zap_gen_toggles: KVM's own value today is its low bit, which
 * is the same obsolescence as long as one generation at most waits for its drain).
 */
void fast_zap_bump_locked(struct smmu_vm *vm)
{
	lockdep_assert_held(&vm->mmu_lock);
	vm->mmu_valid_gen++;
	vm_event(vm, SMMU_EV_GEN_BUMPED, NULL);
	/* Under mmu_lock, or a vCPU could drop its root yet miss the TLB flush. */
	if (!(vm->cfg.skip_flush & SMMU_SKIP_RELOAD_FAST_ZAP))
		kvm_reload_remote_mmus(vm);
}

enum fast_zap_part { FZ_BUMP = 1, FZ_DRAIN = 2 };

static int fast_zap(smmu_vm *vm, int parts, struct smmu_zap_report *rep, const char *what)
{
	struct smmu_zap_report local = { 0 };
	if (!vm)
		return -EINVAL;
	uint64_t t0 = smmu_now_ns();
	uint64_t flushes = atomic_load(&vm->remote_flushes);
	vm_lock(vm, SMMU_SITE_FAST_ZAP);
	/* A bump alone while a previous bump's pages wait for their drain: today's toggle would
	 * make them current again (kvm_mmu_zap_all_fast never meets them: it drains before it lets
	 * go of slots_lock). smmu_fast_zap drains them with its own. */
	if (parts == FZ_BUMP && vm->rules->fast_zap_gen_toggles && obsolete_pages_left(vm)) {
		vm_unlock(vm);
		return -EBUSY;
	}
	if (parts & FZ_BUMP)
		fast_zap_bump_locked(vm);
	if (parts & FZ_DRAIN)
		kvm_zap_obsolete_pages(vm, &local);
	vm_unlock(vm);
	local.completed = true;
	local.remote_flushes = atomic_load(&vm->remote_flushes) - flushes;
	local.total_ns = smmu_now_ns() - t0;
	if (rep)
		*rep = local;
	vm_audit_point(vm, what);
	return 0;
}

SMMU_API int smmu_fast_zap(smmu_vm *vm, struct smmu_zap_report *rep)
{
	return fast_zap(vm, FZ_BUMP | FZ_DRAIN, rep, "fast_zap");
}

SMMU_API int smmu_fast_zap_bump(smmu_vm *vm, struct smmu_zap_report *rep)
{
	return fast_zap(vm, FZ_BUMP, rep, "fast_zap_bump");
}

SMMU_API int smmu_fast_zap_drain(smmu_vm *vm, struct smmu_zap_report *rep)
{
	return fast_zap(vm, FZ_DRAIN, rep, "fast_zap_drain");
}
