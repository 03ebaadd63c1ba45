/*
 * The public primitives for invalidation strategies (strategy.h): a memslot flush written with
 * them alone is as clean as the built-in HASH_WALK (also when the lock is broken in the middle),
 * the active list walks both ways in FIFO order, page-limit reclaim of the oldest page, and the
 * event hooks, whose counts agree with the VM's counters and lock statistics.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S0_PAGES 2048ull
#define S1_BASE 4096ull
#define S1_PAGES 2048ull
#define NMAP 24
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

/* ---- a custom memslot flush, written with the public primitives only ---------------------------- */

struct my_report {
	uint64_t pages_zapped, sptes_dropped, lock_breaks, restarts;
};

/* On contention: flush what was dropped, free what was zapped, let the waiter in. */
static bool my_break(smmu_vm *vm, struct smmu_invalid_list *inv, bool *flush, struct my_report *rep)
{
	if (!smmu_needbreak(vm))
		return false;
	if (*flush)
		smmu_flush_remote_tlbs(vm);
	*flush = false;
	smmu_commit_zap(vm, inv); /* flushes again when it frees pages */
	if (!smmu_cond_resched_lock(vm))
		return false;
	rep->lock_breaks++;
	return true;
}

/* Gleb's proposal by hand: zap every valid indirect page whose gfn is in the slot (found through
 * mmu_page_hash gfn by gfn), then drop every leaf spte of the slot through its rmaps. */
static int my_flush_slot(smmu_vm *vm, int id, struct my_report *rep)
{
	struct smmu_invalid_list inv;
	smmu_gfn_t base;
	uint64_t npages;
	bool flush = false;
	memset(rep, 0, sizeof(*rep));
	smmu_invalid_list_init(&inv);
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	int r = smmu_slot_range(vm, id, &base, &npages);
	if (r)
		goto out;
	for (smmu_gfn_t gfn = base; gfn < base + npages; gfn++) {
restart:
		for (smmu_sp *sp = smmu_hash_first(vm, gfn); sp; sp = smmu_hash_next(vm, sp)) {
			struct smmu_sp_info i;
			r = smmu_sp_get_info(vm, sp, &i);
			if (r)
				goto out;
			if (i.gfn != gfn || i.direct || i.invalid)
				continue;
			r = smmu_zap_page(vm, sp, &inv);
			if (r < 0)
				goto out;
			rep->pages_zapped += (uint64_t)r;
			/* The zap may have unlinked others: walk the bucket again (the page in hand is
			 * invalid now and skipped, so this ends). */
			rep->restarts++;
			goto restart;
		}
		if (my_break(vm, &inv, &flush, rep))
			goto restart; /* nothing held across the break, but look again */
	}
	for (int level = 1; level <= 3; level++) {
		uint64_t span = 1ull << (9 * (level - 1));
		for (smmu_gfn_t gfn = base; gfn < base + npages; gfn = (gfn | (span - 1)) + 1) {
			r = smmu_rmap_unmap(vm, id, gfn, level);
			if (r < 0)
				goto out;
			rep->sptes_dropped += (uint64_t)r;
			flush |= r > 0;
			my_break(vm, &inv, &flush, rep);
		}
	}
	r = 0;
out:
	if (flush)
		smmu_flush_remote_tlbs(vm);
	smmu_commit_zap(vm, &inv);
	smmu_mmu_unlock(vm);
	return r;
}

/* A two-slot shadow VM: guest A's tables in slot 0, guest B's in slot 1; both map data in both. */
struct setup {
	smmu_vm *vm;
	smmu_gas *gas[2];
	smmu_vcpu *v[2];
	smmu_gva_t gva[2][2 * NMAP];
	smmu_gfn_t gfn[2][2 * NMAP];
};

static void setup_init(struct setup *s)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.max_mmu_pages = 1ull << 16;
	s->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(s->vm, 0, 0, S0_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(s->vm, 1, S1_BASE, S1_PAGES, 0), 0);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(smmu_gas_create(s->vm, k ? S1_BASE + 40 : 16, 128, &s->gas[k]), 0);
		assert_int_equal(smmu_vcpu_create(s->vm, &s->v[k]), 0);
		assert_int_equal(smmu_vcpu_set_cr3(s->v[k], smmu_gas_cr3(s->gas[k])), 0);
		for (int i = 0; i < 2 * NMAP; i++) {
			/* Every third address in its own 2 MiB region: many last-level tables. */
			s->gva[k][i] = 0x40000000ull + (uint64_t)(i / 3) * (2ull << 20) + (uint64_t)(i % 3) * 0x1000;
			s->gfn[k][i] = (i % 2 ? S1_BASE + 600 : 600) + (smmu_gfn_t)i + (smmu_gfn_t)k * 100;
			assert_int_equal(smmu_gas_map(s->gas[k], s->gva[k][i], s->gfn[k][i], SMMU_LEVEL_4K, RW_USER), 0);
			assert_int_equal(smmu_vcpu_fault(s->v[k], s->gva[k][i], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		}
	}
	tl_assert_audit_clean(s->vm);
}

static void setup_fini(struct setup *s)
{
	for (int k = 0; k < 2; k++) {
		smmu_vcpu_destroy(s->v[k]);
		smmu_gas_destroy(s->gas[k]);
	}
	smmu_vm_destroy(s->vm);
}

static int count_cb(smmu_vm *vm, uint64_t *sptep, uint64_t spte, void *ctx)
{
	(void)vm;
	(void)sptep;
	(void)spte;
	(*(uint64_t *)ctx)++;
	return 0;
}

static uint64_t rmap_entries(smmu_vm *vm, int id)
{
	uint64_t n = 0;
	smmu_gfn_t base;
	uint64_t npages;
	lock(vm);
	int r = smmu_slot_range(vm, id, &base, &npages);
	for (int level = 1; !r && level <= 3; level++)
		for (smmu_gfn_t gfn = base; gfn < base + npages; gfn++)
			smmu_rmap_walk(vm, id, gfn, level, count_cb, &n);
	unlock(vm);
	assert_int_equal(r, 0);
	return n;
}

/* The postconditions, recorded to compare two VMs. */
struct outcome {
	uint64_t n_used_before_enter, n_used_after_enter, rmap_slot1, rmap_slot0;
	int translate[2][2 * NMAP];
};

static void record(struct setup *s, struct outcome *o)
{
	o->n_used_before_enter = counters(s->vm).n_used_mmu_pages;
	o->rmap_slot1 = rmap_entries(s->vm, 1);
	o->rmap_slot0 = rmap_entries(s->vm, 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s->v[k]), 0);
	o->n_used_after_enter = counters(s->vm).n_used_mmu_pages;
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 2 * NMAP; i++) {
			struct smmu_translation t;
			o->translate[k][i] = smmu_vcpu_translate(s->v[k], s->gva[k][i], 0, &t);
			if (s->gfn[k][i] >= S1_BASE)
				assert_int_equal(o->translate[k][i], -EFAULT);
		}
	}
	assert_int_equal(o->rmap_slot1, 0);
}

static void custom_vs_hash_walk(bool contended)
{
	struct setup a, b;
	setup_init(&a);
	setup_init(&b);
	assert_true(rmap_entries(a.vm, 1) > 0);

	struct my_report mine;
	struct tl_waiter w = { .vm = a.vm, .zapper = pthread_self(), .want = 3, .every = 3, .phase = 0 };
	atomic_init(&w.tickets, 0);
	atomic_init(&w.served, 0);
	pthread_t th;
	if (contended) {
		assert_int_equal(pthread_create(&th, NULL, tl_waiter_main, &w), 0);
		assert_int_equal(smmu_set_hook(a.vm, tl_waiter_hook, &w), 0);
	}
	assert_int_equal(my_flush_slot(a.vm, 1, &mine), 0);
	if (contended) {
		assert_int_equal(smmu_set_hook(a.vm, NULL, NULL), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_int_equal(atomic_load(&w.served), w.want);
		assert_true(mine.lock_breaks >= w.want);
	} else {
		assert_int_equal(mine.lock_breaks, 0);
	}
	struct smmu_zap_report ref;
	assert_int_equal(smmu_memslot_flush(b.vm, 1, SMMU_FLUSH_HASH_WALK, &ref), 0);
	printf("custom flush%s: %llu pages, %llu sptes, %llu breaks; hash_walk: %llu pages, %llu sptes\n",
	       contended ? " (contended)" : "", (unsigned long long)mine.pages_zapped,
	       (unsigned long long)mine.sptes_dropped, (unsigned long long)mine.lock_breaks,
	       (unsigned long long)ref.pages_zapped, (unsigned long long)ref.sptes_dropped);
	assert_int_equal(mine.pages_zapped, ref.pages_zapped);
	assert_int_equal(mine.sptes_dropped, ref.sptes_dropped);
	assert_true(mine.pages_zapped > 0);

	struct outcome oa, ob;
	record(&a, &oa);
	record(&b, &ob);
	assert_int_equal(oa.n_used_before_enter, ob.n_used_before_enter);
	assert_int_equal(oa.n_used_after_enter, ob.n_used_after_enter);
	assert_int_equal(oa.rmap_slot0, ob.rmap_slot0);
	assert_memory_equal(oa.translate, ob.translate, sizeof(oa.translate));
	tl_assert_audit_clean(a.vm);
	tl_assert_audit_clean(b.vm);

	/* Both VMs fault everything back in and stay clean. */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 2 * NMAP; i++)
			assert_int_equal(smmu_vcpu_fault(a.v[k], a.gva[k][i], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	tl_assert_audit_clean(a.vm);
	/* A slot deleted after the custom flush leaves nothing behind, even with RMAP_ONLY. */
	assert_int_equal(my_flush_slot(a.vm, 1, &mine), 0);
	assert_int_equal(smmu_vm_set_flush_strategy(a.vm, SMMU_FLUSH_RMAP_ONLY), 0);
	assert_int_equal(smmu_memslot_delete(a.vm, 1), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(a.v[k]), 0);
	tl_assert_audit_clean(a.vm);
	assert_int_equal(my_flush_slot(a.vm, 1, &mine), -ENOENT);
	setup_fini(&a);
	setup_fini(&b);
}

static void test_custom_flush_as_clean_as_hash_walk(void **state)
{
	(void)state;
	custom_vs_hash_walk(false);
}

static void test_custom_flush_with_lock_breaks(void **state)
{
	(void)state;
	custom_vs_hash_walk(true);
}

/* ---- the active list ------------------------------------------------------------------------------------ */

static void test_active_list_both_ways(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s);
	size_t n = (size_t)counters(s.vm).n_used_mmu_pages;
	smmu_sp **fwd = calloc(n + 1, sizeof(*fwd)), **bwd = calloc(n + 1, sizeof(*bwd));
	assert_non_null(fwd);
	assert_non_null(bwd);
	size_t nf = 0, nb = 0;
	struct smmu_sp_info head, tail;
	lock(s.vm);
	for (smmu_sp *sp = smmu_active_first(s.vm); sp && nf <= n; sp = smmu_active_next(s.vm, sp))
		fwd[nf++] = sp;
	for (smmu_sp *sp = smmu_active_last(s.vm); sp && nb <= n; sp = smmu_active_prev(s.vm, sp))
		bwd[nb++] = sp;
	smmu_sp *none_next = smmu_active_next(s.vm, NULL), *none_prev = smmu_active_prev(s.vm, NULL);
	smmu_sp_get_info(s.vm, smmu_active_first(s.vm), &head);
	smmu_sp_get_info(s.vm, smmu_active_last(s.vm), &tail);
	unlock(s.vm);
	assert_int_equal(nf, n);
	assert_int_equal(nb, n);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(fwd[i], bwd[n - 1 - i]);
	assert_null(none_next);
	assert_null(none_prev);
	/* FIFO: the oldest page is guest A's root (the first fault built it), the newest is the
	 * last-level table of guest B's last address. */
	assert_int_equal(tail.level, 4);
	assert_int_equal(tail.gfn, 16);
	struct smmu_guest_walk gw;
	assert_int_equal(smmu_guest_walk(s.vm, smmu_gas_cr3(s.gas[1]), s.gva[1][2 * NMAP - 1], &gw), 0);
	assert_int_equal(head.level, 1);
	assert_int_equal(head.gfn, gw.table_gfn[0]);

	/* A new page goes in at the head, and nothing else moves. */
	assert_int_equal(smmu_gas_map(s.gas[0], 0x7f0000000000ull, 1000, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(s.v[0], 0x7f0000000000ull, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 3);
	lock(s.vm);
	smmu_sp *p = smmu_active_first(s.vm);
	for (int i = 0; i < 3; i++)
		p = smmu_active_next(s.vm, p);
	bool same = p == fwd[0];
	unlock(s.vm);
	assert_true(same);
	free(fwd);
	free(bwd);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

/* strategy.h's smmu_zap_page: zapping one vCPU's root makes every vCPU reload, the vCPU on the
 * other guest too (kvm_reload_remote_mmus); an obsolete root asks for nothing more. */
static void test_zap_root_reloads_every_vcpu(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s);
	struct smmu_vcpu_counters a0, b0, a1, b1;
	assert_int_equal(smmu_vcpu_get_counters(s.v[0], &a0), 0);
	assert_int_equal(smmu_vcpu_get_counters(s.v[1], &b0), 0);
	uint64_t req0 = counters(s.vm).reload_requests;

	struct smmu_invalid_list inv;
	smmu_invalid_list_init(&inv);
	lock(s.vm);
	smmu_sp *root_a = smmu_active_last(s.vm); /* guest A's root: the oldest page */
	struct smmu_sp_info ia;
	smmu_sp_get_info(s.vm, root_a, &ia);
	int r = smmu_zap_page(s.vm, root_a, &inv);
	smmu_commit_zap(s.vm, &inv);
	unlock(s.vm);
	assert_int_equal(ia.level, 4);
	assert_int_equal(ia.gfn, 16);
	assert_int_equal(r, 0); /* in use: kept until its user drops it */
	assert_int_equal(counters(s.vm).reload_requests, req0 + 1);

	/* vCPU 1 never used that root, yet drops its own at its next entry and rebuilds it. */
	assert_int_equal(smmu_vcpu_enter(s.v[1]), 0);
	assert_int_equal(smmu_vcpu_get_counters(s.v[1], &b1), 0);
	assert_int_equal(b1.reloads, b0.reloads + 1);
	assert_int_equal(smmu_vcpu_fault(s.v[1], s.gva[1][0], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_get_counters(s.v[1], &b1), 0);
	assert_int_equal(b1.roots_loaded, b0.roots_loaded + 1);
	assert_int_equal(smmu_vcpu_enter(s.v[0]), 0);
	assert_int_equal(smmu_vcpu_get_counters(s.v[0], &a1), 0);
	assert_int_equal(a1.reloads, a0.reloads + 1);
	tl_assert_audit_clean(s.vm);

	/* After a generation bump (which asked every vCPU already), zapping an obsolete root in use
	 * adds no request. */
	assert_int_equal(smmu_vcpu_fault(s.v[0], s.gva[0][0], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	lock(s.vm);
	smmu_bump_gen(s.vm);
	smmu_reload_remote_mmus(s.vm);
	uint64_t req1 = counters(s.vm).reload_requests;
	smmu_invalid_list_init(&inv);
	smmu_sp *root_new = smmu_active_first(s.vm);
	while (root_new) {
		struct smmu_sp_info i;
		smmu_sp_get_info(s.vm, root_new, &i);
		if (i.level == 4 && i.root_count)
			break;
		root_new = smmu_active_next(s.vm, root_new);
	}
	assert_non_null(root_new);
	smmu_zap_page(s.vm, root_new, &inv);
	smmu_commit_zap(s.vm, &inv);
	uint64_t req2 = counters(s.vm).reload_requests;
	unlock(s.vm);
	assert_int_equal(req2, req1);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s.v[k]), 0);
	struct smmu_zap_report rep = { 0 };
	assert_int_equal(smmu_fast_zap_drain(s.vm, &rep), 0);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

static void test_zap_oldest(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s);
	/* Guest A's root is the oldest page; while vCPU 0 uses it, reclaim cannot free it. */
	struct smmu_invalid_list inv;
	smmu_invalid_list_init(&inv);
	uint64_t used0 = counters(s.vm).n_used_mmu_pages;
	struct smmu_sp_info i0, i1;
	lock(s.vm);
	smmu_sp *oldest = smmu_active_last(s.vm);
	int r = smmu_zap_oldest(s.vm, &inv);
	smmu_sp_get_info(s.vm, oldest, &i0);
	bool at_head = smmu_active_first(s.vm) == oldest;
	smmu_commit_zap(s.vm, &inv);
	unlock(s.vm);
	assert_int_equal(r, 0); /* nothing went to the list */
	assert_true(i0.invalid);
	assert_int_equal(i0.root_count, 1);
	assert_true(at_head); /* 3.11 moves a zapped root still in use to the head */
	assert_int_equal(counters(s.vm).n_used_mmu_pages, used0);
	assert_int_equal(smmu_vcpu_enter(s.v[0]), 0); /* its reload frees it */
	assert_int_equal(counters(s.vm).n_used_mmu_pages, used0 - 1);
	tl_assert_audit_clean(s.vm);

	/* Now unpin guest B's root too; each reclaim takes exactly the oldest page. */
	assert_int_equal(smmu_vcpu_set_cr3(s.v[1], smmu_gas_cr3(s.gas[1])), 0);
	for (int round = 0; round < 5; round++) {
		uint64_t used = counters(s.vm).n_used_mmu_pages;
		smmu_invalid_list_init(&inv);
		lock(s.vm);
		smmu_sp *old = smmu_active_last(s.vm), *next_old = smmu_active_prev(s.vm, old);
		smmu_sp_get_info(s.vm, old, &i1);
		r = smmu_zap_oldest(s.vm, &inv);
		uint64_t listed = inv.count;
		smmu_sp *new_last = smmu_active_last(s.vm);
		smmu_commit_zap(s.vm, &inv);
		unlock(s.vm);
		assert_int_equal(i1.root_count, 0);
		assert_true(r >= 1);
		assert_int_equal((uint64_t)r, listed);
		assert_ptr_equal(new_last, next_old);
		assert_int_equal(counters(s.vm).n_used_mmu_pages, used - (uint64_t)r);
		tl_assert_audit_clean(s.vm);
	}
	/* An empty VM has nothing to reclaim. */
	assert_int_equal(smmu_zap_all(s.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s.v[k]), 0);
	smmu_invalid_list_init(&inv);
	lock(s.vm);
	r = smmu_zap_oldest(s.vm, &inv);
	unlock(s.vm);
	assert_int_equal(r, 0);
	assert_int_equal(smmu_zap_oldest(s.vm, NULL), -EINVAL);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

/* ---- hooks ----------------------------------------------------------------------------------------------- */

struct ev_count {
	uint64_t n[SMMU_EV_COUNT];
	uint64_t null_sp_zapped; /* PAGE_* events must name their page */
	uint64_t rezapped;       /* PAGE_ZAPPED on a page already invalid (a root's second prepare) */
};

static void count_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct ev_count *c = ctx;
	if ((unsigned)ev < SMMU_EV_COUNT)
		c->n[ev]++;
	struct smmu_sp_info info;
	if (ev == SMMU_EV_PAGE_ZAPPED && sp && !smmu_sp_get_info(vm, sp, &info) && info.invalid)
		c->rezapped++;
	if ((ev == SMMU_EV_PAGE_CREATED || ev == SMMU_EV_PAGE_ZAPPED || ev == SMMU_EV_PAGE_FREED) && !sp)
		c->null_sp_zapped++;
}

static uint64_t lock_acquisitions(smmu_vm *vm, uint64_t *breaks)
{
	uint64_t n = 0;
	*breaks = 0;
	for (int site = 0; site < SMMU_SITE_COUNT; site++) {
		struct smmu_site_stats st;
		assert_int_equal(smmu_stats_get(vm, (enum smmu_site)site, &st), 0);
		n += st.wait.count;
		*breaks += st.breaks;
	}
	return n;
}

static void test_hooks_match_counters(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s);
	struct ev_count ev;
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(smmu_set_hook(NULL, count_hook, &ev), -EINVAL);
	struct smmu_vm_counters c0 = counters(s.vm);
	assert_int_equal(smmu_set_hook(s.vm, count_hook, &ev), 0);
	assert_int_equal(smmu_stats_reset(s.vm), 0);

	/* Phase 1, no root pinned while zapping: every counter matches its event exactly. */
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_set_cr3(s.v[k], smmu_gas_cr3(s.gas[k])), 0); /* unpin */
	assert_int_equal(smmu_zap_all(s.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 2 * NMAP; i++)
			assert_int_equal(smmu_vcpu_fault(s.v[k], s.gva[k][i], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_set_cr3(s.v[k], smmu_gas_cr3(s.gas[k])), 0);
	assert_int_equal(smmu_fast_zap(s.vm, NULL), 0);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 2 * NMAP; i++)
			assert_int_equal(smmu_vcpu_fault(s.v[k], s.gva[k][i], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_set_cr3(s.v[k], smmu_gas_cr3(s.gas[k])), 0);
	struct smmu_zap_report hw;
	assert_int_equal(smmu_memslot_flush(s.vm, 1, SMMU_FLUSH_HASH_WALK, &hw), 0);
	assert_true(hw.pages_zapped > 0);
	lock(s.vm);
	smmu_bump_gen(s.vm);
	smmu_bump_gen(s.vm);
	unlock(s.vm);
	assert_int_equal(smmu_fast_zap_bump(s.vm, NULL), 0);
	struct smmu_vm_counters c1 = counters(s.vm);
	uint64_t breaks;
	uint64_t acq = lock_acquisitions(s.vm, &breaks);
	printf("events: created %llu zapped %llu freed %llu lock %llu gen %llu\n",
	       (unsigned long long)ev.n[SMMU_EV_PAGE_CREATED], (unsigned long long)ev.n[SMMU_EV_PAGE_ZAPPED],
	       (unsigned long long)ev.n[SMMU_EV_PAGE_FREED], (unsigned long long)ev.n[SMMU_EV_LOCK_TAKEN],
	       (unsigned long long)ev.n[SMMU_EV_GEN_BUMPED]);
	assert_true(ev.n[SMMU_EV_PAGE_CREATED] > 0);
	assert_int_equal(ev.n[SMMU_EV_PAGE_CREATED], c1.pages_created - c0.pages_created);
	assert_true(ev.n[SMMU_EV_PAGE_ZAPPED] > 0);
	assert_int_equal(ev.n[SMMU_EV_PAGE_ZAPPED], c1.pages_zapped - c0.pages_zapped);
	assert_int_equal(ev.n[SMMU_EV_PAGE_FREED], c1.pages_freed - c0.pages_freed);
	assert_int_equal(ev.n[SMMU_EV_GEN_BUMPED], c1.mmu_valid_gen - c0.mmu_valid_gen);
	assert_int_equal(ev.n[SMMU_EV_GEN_BUMPED], 4);
	assert_int_equal(ev.n[SMMU_EV_LOCK_BROKEN], breaks);
	if (acq) /* lock statistics are built in: every vm_lock is one acquisition */
		assert_int_equal(ev.n[SMMU_EV_LOCK_TAKEN], acq - breaks);
	assert_true(ev.n[SMMU_EV_LOCK_TAKEN] > 0);
	assert_int_equal(ev.null_sp_zapped, 0);

	/* LOCK_TAKEN counts each acquisition. */
	uint64_t taken = ev.n[SMMU_EV_LOCK_TAKEN];
	for (int i = 0; i < 3; i++) {
		lock(s.vm);
		unlock(s.vm);
	}
	assert_int_equal(ev.n[SMMU_EV_LOCK_TAKEN], taken + 3);

	/* Phase 2, roots pinned: a zapped root in use is prepared again when its vCPU lets go; the
	 * event and the counter both count prepare_zap calls (the kernel's tracepoint does), the
	 * second one seeing the page invalid already; each page is freed once. */
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s.v[k]), 0);
	assert_int_equal(smmu_fast_zap_drain(s.vm, NULL), 0);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 2 * NMAP; i++)
			assert_int_equal(smmu_vcpu_fault(s.v[k], s.gva[k][i], SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	c0 = counters(s.vm);
	struct ev_count before = ev;
	assert_int_equal(smmu_zap_all(s.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s.v[k]), 0);
	c1 = counters(s.vm);
	uint64_t events = ev.n[SMMU_EV_PAGE_ZAPPED] - before.n[SMMU_EV_PAGE_ZAPPED];
	uint64_t rezapped = ev.rezapped - before.rezapped;
	uint64_t freed = ev.n[SMMU_EV_PAGE_FREED] - before.n[SMMU_EV_PAGE_FREED];
	assert_int_equal(c1.n_used_mmu_pages, 0);
	assert_int_equal(rezapped, 2); /* two pinned roots */
	assert_int_equal(events - rezapped, c0.n_used_mmu_pages);
	assert_int_equal(freed, c0.n_used_mmu_pages);
	assert_int_equal(freed, c1.pages_freed - c0.pages_freed);
	assert_int_equal(c1.pages_zapped - c0.pages_zapped, events);

	/* Removing the hook stops the events. */
	assert_int_equal(smmu_set_hook(s.vm, NULL, NULL), 0);
	before = ev;
	lock(s.vm);
	smmu_bump_gen(s.vm);
	unlock(s.vm);
	assert_memory_equal(&before, &ev, sizeof(ev));
	for (int k = 0; k < 2; k++)
		assert_int_equal(smmu_vcpu_enter(s.v[k]), 0);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

/* ---- small primitives --------------------------------------------------------------------------------------- */

static void test_primitives_args(void **state)
{
	(void)state;
	struct setup s;
	setup_init(&s);
	struct smmu_sp_info i;
	int32_t d;
	smmu_gfn_t base;
	uint64_t npages;
	lock(s.vm);
	int r1 = smmu_sp_get_info(s.vm, NULL, &i);
	int r2 = smmu_slot_range(s.vm, 7, &base, &npages);
	int r3 = smmu_slot_range(s.vm, 1, &base, &npages);
	int r4 = smmu_rmap_walk(s.vm, 1, 5, 1, count_cb, &npages);  /* gfn outside slot 1 */
	int r5 = smmu_rmap_walk(s.vm, 1, S1_BASE, 4, count_cb, &npages);
	int r6 = smmu_rmap_walk(s.vm, 9, S1_BASE, 1, count_cb, &npages);
	int r7 = smmu_lpage_disallow(s.vm, 1, S1_BASE, 1, &d);
	int r8 = smmu_lpage_disallow(s.vm, 1, S1_BASE, 2, &d);
	int r9 = smmu_zap_page(s.vm, NULL, NULL);
	smmu_sp *h = smmu_hash_first(s.vm, 16);
	bool found_root = false;
	for (; h; h = smmu_hash_next(s.vm, h)) {
		smmu_sp_get_info(s.vm, h, &i);
		if (i.gfn == 16 && i.level == 4)
			found_root = true;
	}
	bool nb = smmu_needbreak(s.vm);
	bool broke = smmu_cond_resched_lock(s.vm);
	unlock(s.vm);
	assert_int_equal(r1, -EINVAL);
	assert_int_equal(r2, -ENOENT);
	assert_int_equal(r3, 0);
	assert_int_equal(base, S1_BASE);
	assert_int_equal(npages, S1_PAGES);
	assert_int_equal(r4, -EINVAL);
	assert_int_equal(r5, -EINVAL);
	assert_int_equal(r6, -ENOENT);
	assert_int_equal(r7, -EINVAL);
	assert_int_equal(r8, 0);
	assert_true(d >= 1); /* guest B's tables live in that 2 MiB page */
	assert_int_equal(r9, -EINVAL);
	assert_true(found_root);
	assert_false(nb);
	assert_false(broke);
	assert_int_equal(smmu_lpage_forget_obsolete(NULL), -EINVAL);
	tl_assert_audit_clean(s.vm);
	setup_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_custom_flush_as_clean_as_hash_walk),
		cmocka_unit_test(test_custom_flush_with_lock_breaks),
		cmocka_unit_test(test_active_list_both_ways),
		cmocka_unit_test(test_zap_oldest),
		cmocka_unit_test(test_zap_root_reloads_every_vcpu),
		cmocka_unit_test(test_hooks_match_counters),
		cmocka_unit_test(test_primitives_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
