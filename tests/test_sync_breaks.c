/*
 * Lock breaks in mmu_sync_children, both eras: after each batch of synced pages, 3.11 commits the
 * batch's zaps and calls cond_resched_lock; today flushes or commits what is pending when
 * need_resched() || rwlock_needbreak() and yields (kvm_mmu_sync_roots: can_yield), or, where it
 * cannot yield (FNAME(fetch) syncing a page before linking it: rule fetch_syncs_children), makes
 * KVM_REQ_MMU_SYNC and the fault retries. Breaks are forced with the lock's test hook
 * (mmu_lock.test_break_every) or by a thread queued for the lock (full preemption).
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <sched.h>

#include "mmu.h"

#define POOL_GFN 16
#define POOL_PAGES 128
#define DATA_GVA 0x40000000ull /* PDPT index 1, PD indexes 0 .. N - 1 */
#define ALIAS_GVA 0x80000000ull /* PDPT index 2: the guest points it at the same PD */
#define WIN_GVA 0x10000000ull  /* the guest's window onto its level-1 tables */
#define N 40                   /* unsync level-1 pages: three batches of KVM_PAGE_ARRAY_NR (16) */
#define DATA_GFN 200
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static const enum smmu_profile profiles[] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

struct fix {
	struct tl_guest g;
	smmu_gfn_t l1[N]; /* data region i's level-1 guest table */
	smmu_gfn_t l2, l3; /* the PD and PDPT over them */
};

/* N data pages 2 MiB apart, read (a level-1 page each); then the guest clears each one's pte
 * through its window: every level-1 page goes unsync, and its sync will drop the spte. */
static void setup(struct fix *f, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	tl_guest_init_cfg(&f->g, &cfg, 4096, POOL_GFN, POOL_PAGES);
	for (int i = 0; i < N; i++) {
		smmu_gva_t gva = DATA_GVA + ((uint64_t)i << 21);
		assert_int_equal(smmu_gas_map(f->g.gas, gva, DATA_GFN + i, SMMU_LEVEL_4K, RW_USER), 0);
		uint64_t v;
		assert_int_equal(smmu_vcpu_read(f->g.vcpu, gva, &v, sizeof(v)), 0);
		struct smmu_guest_walk w;
		assert_int_equal(smmu_guest_walk(f->g.vm, smmu_gas_cr3(f->g.gas), gva, &w), 0);
		f->l1[i] = w.table_gfn[0];
		f->l2 = w.table_gfn[1];
		f->l3 = w.table_gfn[2];
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(smmu_gas_map(f->g.gas, WIN_GVA + ((uint64_t)i << 12), f->l1[i], SMMU_LEVEL_4K, RW_USER), 0);
	uint64_t zero = 0;
	for (int i = 0; i < N; i++)
		assert_int_equal(smmu_vcpu_write(f->g.vcpu, WIN_GVA + ((uint64_t)i << 12), &zero, sizeof(zero)), 0);
	assert_int_equal(tl_mmu_unsync(f->g.vm), N);
	/* The host takes the window's pages away (the MMU notifier drops the window's sptes), so that
	 * the sync's write protection finds nothing writable and flushes nothing of its own: every
	 * flush during the sync is one of the sptes it drops. */
	for (int i = 0; i < N; i++) {
		char *hva = smmu_gfn_to_hva(f->g.vm, f->l1[i]);
		assert_true(smmu_mmu_notifier_invalidate_range(f->g.vm, hva, hva + 4096) >= 1);
	}
	tl_assert_audit_clean(f->g.vm);
}

/* The root load's sync (kvm_mmu_sync_roots, which may yield). */
static void sync_roots(struct fix *f)
{
	assert_int_equal(smmu_vcpu_set_cr3(f->g.vcpu, smmu_gas_cr3(f->g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f->g.vcpu), 0);
}

/* What the breaker has done by each break: the flushes, and whether its zaps were committed. */
struct breaks {
	pthread_t self;
	unsigned n;
	uint64_t flushes[64];
	uint64_t zapped, freed; /* events, first zaps only */
	bool uncommitted_at_break;
	uint64_t unsync[64];
};

static void break_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct breaks *b = ctx;
	if (!pthread_equal(pthread_self(), b->self))
		return;
	if (ev == SMMU_EV_PAGE_ZAPPED) {
		struct smmu_sp_info info;
		if (!smmu_sp_get_info(vm, sp, &info) && !info.invalid)
			b->zapped++;
	} else if (ev == SMMU_EV_PAGE_FREED) {
		b->freed++;
	} else if (ev == SMMU_EV_LOCK_BROKEN && b->n < 64) {
		b->flushes[b->n] = atomic_load(&vm->remote_flushes);
		b->unsync[b->n] = vm->mmu_unsync;
		b->uncommitted_at_break |= b->zapped != b->freed;
		b->n++;
	}
}

/* With a forced break after every batch, the root sync breaks the lock between batches; before
 * each break it has flushed the sptes it dropped (3.11: the commit of the pages it zapped; today:
 * kvm_mmu_remote_flush_or_zap), nothing waits uncommitted, and it finishes the sync. */
static void test_sync_breaks_and_flushes_first(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct fix f;
		setup(&f, profiles[p]);
		struct breaks b = { .self = pthread_self() };
		assert_int_equal(smmu_set_hook(f.g.vm, break_hook, &b), 0);
		assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
		uint64_t flushes0 = atomic_load(&f.g.vm->remote_flushes);
		f.g.vm->mmu_lock.test_break_every = 1;
		assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
		f.g.vm->mmu_lock.test_break_every = 0;
		assert_int_equal(smmu_set_hook(f.g.vm, NULL, NULL), 0);
		/* A break after each of the 3 batches (3.11: cond_resched_lock after the last one too;
		 * today: the check after each batch, the last included). */
		assert_int_equal(b.n, 3);
		assert_false(b.uncommitted_at_break);
		uint64_t prev = flushes0;
		for (unsigned i = 0; i < b.n; i++) {
			assert_true(b.flushes[i] > prev); /* this batch's dropped sptes were flushed */
			prev = b.flushes[i];
		}
		assert_int_equal(b.unsync[0], N - 16);
		assert_int_equal(b.unsync[1], N - 32);
		assert_int_equal(b.unsync[2], 0);
		assert_int_equal(tl_mmu_unsync(f.g.vm), 0);
		for (int i = 0; i < N; i++) { /* every cleared pte's spte is gone */
			struct smmu_translation t;
			assert_int_not_equal(smmu_vcpu_translate(f.g.vcpu, DATA_GVA + ((uint64_t)i << 21), 0, &t), 0);
		}
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* A thread that wants mmu_lock while the root sync runs gets it at a break, mid-sync, and finds a
 * state the audit accepts (the VM-wide invariants: the vCPU runs meanwhile). */
struct waiter {
	smmu_vm *vm;
	pthread_t main, self;
	atomic_int ticket, done;
	bool armed;
	int64_t unsync_seen;
	long violations;
};

static void waiter_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct waiter *w = ctx;
	if (ev != SMMU_EV_LOCK_TAKEN)
		return;
	if (pthread_equal(pthread_self(), w->self)) {
		if (w->unsync_seen < 0)
			w->unsync_seen = (int64_t)vm->mmu_unsync; /* under the lock */
		return;
	}
	if (!w->armed || !pthread_equal(pthread_self(), w->main))
		return;
	w->armed = false;
	atomic_store(&w->ticket, 1);
	while (!smmu_needbreak(vm)) /* until the waiter is queued behind us */
		sched_yield();
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	while (!atomic_load(&w->ticket))
		sched_yield();
	struct smmu_violation v[8];
	struct smmu_audit_report r = { .v = v, .cap = 8 };
	w->violations = audit_vm(w->vm, &r, false, NULL); /* takes mmu_lock: queues */
	if (w->violations > 0)
		smmu_audit_print(stderr, &r);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_waiter_gets_lock_mid_sync(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct fix f;
		setup(&f, profiles[p]); /* full preemption (the default): a waiter makes a break */
		struct waiter w = { .vm = f.g.vm, .main = pthread_self(), .unsync_seen = -1 };
		assert_int_equal(pthread_create(&w.self, NULL, waiter_main, &w), 0);
		assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
		assert_int_equal(smmu_set_hook(f.g.vm, waiter_hook, &w), 0);
		uint64_t breaks0 = f.g.vm->mmu_lock.sites[SMMU_SITE_VCPU].breaks;
		w.armed = true; /* the next lock the vCPU takes: the reload and its root sync */
		assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
		assert_int_equal(pthread_join(w.self, NULL), 0);
		assert_int_equal(smmu_set_hook(f.g.vm, NULL, NULL), 0);
		assert_true(atomic_load(&w.done));
		assert_true(f.g.vm->mmu_lock.sites[SMMU_SITE_VCPU].breaks > breaks0);
		/* It had the lock after the first batch and before the last. */
		assert_true(w.unsync_seen > 0 && w.unsync_seen < N);
		assert_int_equal(w.violations, 0);
		assert_int_equal(tl_mmu_unsync(f.g.vm), 0);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* The guest points PDPT entry 2 at the PD that entry 1 uses, whose level-1 pages are unsync: a
 * fault through entry 2 finds that PD's shadow page, not linked there. Today FNAME(fetch) syncs
 * it first, with can_yield false: at the forced break it flushes what it dropped, makes
 * KVM_REQ_MMU_SYNC and the fault retries, with the lock never let go and nothing linked; the
 * retry's entry syncs the rest (it may yield) and maps. 3.11 links the page at once and leaves
 * the sync to KVM_REQ_MMU_SYNC. */
static void test_fetch_sync_cannot_yield(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		bool today = profiles[p] == SMMU_PROFILE_LINUX_TODAY;
		struct fix f;
		setup(&f, profiles[p]);
		uint64_t pdpte;
		smmu_gpa_t e1 = (f.l3 << 12) + 1 * 8, e2 = (f.l3 << 12) + 2 * 8;
		assert_int_equal(smmu_guest_read_u64(f.g.vm, e1, &pdpte), 0);
		assert_int_equal(smmu_guest_write_u64(f.g.vm, e2, pdpte), 0); /* trapped: the PDPT is shadowed */
		/* The data page of region 0 again, so that the fault gets past the PD. */
		uint64_t pte = ((uint64_t)(DATA_GFN + 0) << 12) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER;
		assert_int_equal(smmu_guest_write_u64(f.g.vm, f.l1[0] << 12, pte), 0); /* region 0's pte back */
		assert_int_equal(tl_mmu_unsync(f.g.vm), N);

		struct smmu_vm_counters c0 = tl_counters(f.g.vm);
		unsigned long acq0 = atomic_load(&f.g.vm->mmu_lock.acquisitions);
		uint64_t breaks0 = f.g.vm->mmu_lock.sites[SMMU_SITE_FAULT].breaks;
		f.g.vm->mmu_lock.test_break_every = 1;
		struct smmu_fault_info fi;
		int r = smmu_vcpu_fault(f.g.vcpu, ALIAS_GVA, SMMU_ACC_USER, &fi);
		struct smmu_vm_counters c1 = tl_counters(f.g.vm);
		uint64_t *l3spte = &f.g.vcpu->root->spt[PT64_INDEX(ALIAS_GVA, 4)];
		uint64_t *alias = is_shadow_present_pte(*l3spte)
					  ? &spte_to_child_spt(*l3spte)[PT64_INDEX(ALIAS_GVA, 3)]
					  : NULL;
		assert_non_null(alias);
		if (today) {
			assert_int_equal(r, SMMU_FAULT_RETRY);
			assert_int_equal(tl_mmu_unsync(f.g.vm), N - 16); /* one batch, then the break it could not take */
			assert_true(c1.remote_tlb_flushes > c0.remote_tlb_flushes); /* flushed before giving up */
			assert_int_equal(atomic_load(&f.g.vm->mmu_lock.acquisitions), acq0 + 1); /* never let go */
			assert_int_equal(f.g.vm->mmu_lock.sites[SMMU_SITE_FAULT].breaks, breaks0);
			assert_true(atomic_load(&f.g.vcpu->requests) & KVM_REQ_MMU_SYNC);
			assert_false(is_shadow_present_pte(*alias)); /* not linked */
			tl_assert_audit_clean(f.g.vm);
			/* The retry: its entry takes the sync request (the roots' sync, which yields). */
			r = smmu_vcpu_fault(f.g.vcpu, ALIAS_GVA, SMMU_ACC_USER, &fi);
		} else {
			assert_true(atomic_load(&f.g.vcpu->requests) & KVM_REQ_MMU_SYNC);
			assert_int_equal(tl_mmu_unsync(f.g.vm), N);
		}
		f.g.vm->mmu_lock.test_break_every = 0;
		assert_int_equal(r, SMMU_FAULT_MAPPED);
		assert_true(is_shadow_present_pte(*alias));
		if (today)
			assert_int_equal(tl_mmu_unsync(f.g.vm), 0);
		sync_roots(&f);
		assert_int_equal(tl_mmu_unsync(f.g.vm), 0);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* Another thread zaps the vCPU's root while the root load's sync (inside the fault here; at the
 * vCPU's entry in KVM) has let go of the lock. */
struct root_zapper {
	smmu_vcpu *vcpu;
	bool done;
};

static void zap_root_at_break(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct root_zapper *z = ctx;
	if (ev != SMMU_EV_LOCK_BROKEN || z->done || !z->vcpu->root)
		return;
	z->done = true;
	struct list_node invalid_list;
	list_init(&invalid_list);
	kvm_mmu_prepare_zap_page(vm, z->vcpu->root, &invalid_list);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
}

/* The fault does not go on under a root zapped during that break: it retries, the reload first. */
static void test_fault_after_sync_break_rechecks_root(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		struct fix f;
		setup(&f, profiles[p]);
		uint64_t pte = ((uint64_t)DATA_GFN << 12) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER;
		assert_int_equal(smmu_guest_write_u64(f.g.vm, f.l1[0] << 12, pte), 0); /* region 0 mapped again */
		assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
		struct root_zapper z = { .vcpu = f.g.vcpu };
		assert_int_equal(smmu_set_hook(f.g.vm, zap_root_at_break, &z), 0);
		f.g.vm->mmu_lock.test_break_every = 1;
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(f.g.vcpu, DATA_GVA, SMMU_ACC_USER, &fi), SMMU_FAULT_RETRY);
		f.g.vm->mmu_lock.test_break_every = 0;
		assert_int_equal(smmu_set_hook(f.g.vm, NULL, NULL), 0);
		assert_true(z.done);
		assert_int_equal(fi.pages_created, 0);
		tl_assert_audit_clean(f.g.vm);
		/* The retry reloads a fresh root and maps. */
		assert_int_equal(smmu_vcpu_fault(f.g.vcpu, DATA_GVA, SMMU_ACC_USER, &fi), SMMU_FAULT_MAPPED);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_breaks_and_flushes_first),
		cmocka_unit_test(test_waiter_gets_lock_mid_sync),
		cmocka_unit_test(test_fetch_sync_cannot_yield),
		cmocka_unit_test(test_fault_after_sync_break_rechecks_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
