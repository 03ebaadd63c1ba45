/*
 * The two eras' own rules (profile.h): each test runs the same sequence under the 3.11 and the
 * today profile, asserts where they differ, and ends with the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "mmu.h"

#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define GIB_PAGES (1ull << 18)

static const enum smmu_profile eras[2] = { SMMU_PROFILE_LINUX_3_11, SMMU_PROFILE_LINUX_TODAY };

static smmu_vm *era_vm(enum smmu_profile p, enum smmu_mmu_mode mode, enum smmu_flush_strategy s)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.profile = p;
	cfg.mode = mode;
	cfg.flush_strategy = s;
	return tl_vm_cfg(&cfg);
}

/* A direct-mode VM of profile @p with slot @id of @npages at gfn 0 and one vCPU. */
struct dvm {
	smmu_vm *vm;
	smmu_vcpu *v;
};

static struct dvm dvm_init(enum smmu_profile p, int id, uint64_t npages)
{
	struct dvm d = { .vm = era_vm(p, SMMU_MODE_DIRECT, SMMU_FLUSH_FAST_ZAP) };
	assert_int_equal(smmu_memslot_create(d.vm, id, 0, npages, 0), 0);
	assert_int_equal(smmu_vcpu_create(d.vm, &d.v), 0);
	return d;
}

/* Ends with the audit. */
static void dvm_fini(struct dvm *d)
{
	tl_assert_audit_clean(d->vm);
	smmu_vcpu_destroy(d->v);
	smmu_vm_destroy(d->vm);
}

static int32_t disallow(smmu_vm *vm, int id, smmu_gfn_t gfn, int level)
{
	int32_t d = -1;
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	assert_int_equal(smmu_lpage_disallow(vm, id, gfn, level, &d), 0);
	smmu_mmu_unlock(vm);
	return d;
}

/* ---- 1. KVM_MR_MOVE keeps the old rmap and lpage_info arrays in 3.11 -------------------------- */

/* A shadow guest whose page tables (at gfn 10..) lie in slot 0 [0, 512); slot 1 holds nothing. */
struct move_guest {
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *v;
	long shadowed; /* valid indirect pages, all with gfns in slot 0 */
};

static void move_guest_init(struct move_guest *g, enum smmu_profile p, enum smmu_flush_strategy s)
{
	g->vm = era_vm(p, SMMU_MODE_SHADOW, s);
	assert_int_equal(smmu_memslot_create(g->vm, 0, 0, 512, 0), 0);
	assert_int_equal(smmu_gas_create(g->vm, 10, 16, &g->gas), 0);
	assert_int_equal(smmu_vcpu_create(g->vm, &g->v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(g->v, smmu_gas_cr3(g->gas)), 0);
	assert_int_equal(smmu_gas_map(g->gas, 0x400000, 100, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_gas_map(g->gas, 0x40000000, 101, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_fault(g->v, 0x400000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_fault(g->v, 0x40000000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(g->vm, &c), 0);
	g->shadowed = (long)c.indirect_shadow_pages;
	assert_true(g->shadowed >= 4); /* root, L3, two L2 ... */
	assert_int_equal(disallow(g->vm, 0, 0, SMMU_LEVEL_2M), g->shadowed); /* no edge bit */
	tl_assert_audit_clean(g->vm);
}

static void move_guest_fini(struct move_guest *g)
{
	smmu_vcpu_destroy(g->v);
	smmu_gas_destroy(g->gas);
	smmu_vm_destroy(g->vm);
}

/* The seed thread's question: the v4 patch (rmap-only flush) leaves the counts of shadowed tables
 * no rmap reaches. 3.11's move keeps the array that holds them, so they now disallow large pages
 * at the slot's new place (and no page will ever take them back): the audit reports them. Today's
 * move starts from fresh arrays. In both, the pages outlived their gfns' slot. */
static void test_move_keeps_stale_lpage_count(void **state)
{
	(void)state;
	long lpage_violations[2], lifetime[2];
	int32_t d2m[2];
	for (int e = 0; e < 2; e++) {
		struct move_guest g;
		move_guest_init(&g, eras[e], SMMU_FLUSH_RMAP_ONLY);
		int32_t *before = g.vm->slots.by_id[0]->lpage[0];
		assert_int_equal(smmu_memslot_move(g.vm, 0, GIB_PAGES), 0); /* same layout, 1 GiB up */
		assert_true((g.vm->slots.by_id[0]->lpage[0] == before) == (eras[e] == SMMU_PROFILE_LINUX_3_11));
		d2m[e] = disallow(g.vm, 0, GIB_PAGES, SMMU_LEVEL_2M);
		lpage_violations[e] = tl_audit_count(g.vm, SMMU_INV_LPAGE_COUNT, NULL);
		lifetime[e] = tl_audit_count(g.vm, SMMU_INV_SLOT_LIFETIME, NULL);
		printf("%s: after an rmap-only move, disallow_lpage(2M) = %d, %ld lpage_info violations\n",
		       eras[e] == SMMU_PROFILE_LINUX_3_11 ? "3.11" : "today", d2m[e], lpage_violations[e]);
		move_guest_fini(&g);
	}
	assert_true(d2m[0] > 0);          /* 3.11: the stale counts moved with the slot */
	assert_int_equal(d2m[1], 0);      /* today: fresh, aligned: nothing disallowed */
	assert_int_equal(lpage_violations[0], 2); /* the 2M and the 1G entry hold counts of no page */
	assert_int_equal(lpage_violations[1], 0);
	assert_true(lifetime[0] > 0 && lifetime[0] == lifetime[1]);
}

/* With 3.11's own flush (the fast zap) every count is gone before the move, and the kept arrays
 * are exactly right for a layout-preserving move: the audit is clean in both eras. */
static void test_move_fast_zap_clean(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct move_guest g;
		move_guest_init(&g, eras[e], SMMU_FLUSH_FAST_ZAP);
		assert_int_equal(smmu_memslot_move(g.vm, 0, GIB_PAGES), 0);
		assert_int_equal(disallow(g.vm, 0, GIB_PAGES, SMMU_LEVEL_2M), 0);
		tl_assert_audit_clean(g.vm);
		move_guest_fini(&g);
	}
}

/* A move that changes the alignment: 3.11 keeps the edge entries of the old layout (the audit
 * accepts them, since they are what KVM 3.11 leaves); today's are recomputed. Where the new
 * layout needs more entries than the kept arrays hold, 3.11 would index past their end: the model
 * gives fresh arrays in both eras. */
static void test_move_changes_alignment(void **state)
{
	(void)state;
	int32_t first[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 768); /* 2M entries: 2 */
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		assert_int_equal(smmu_memslot_create(vm, 1, 4096, 1024, 0), 0); /* 2M entries: 2 */
		for (smmu_gfn_t gfn = 0; gfn < 768; gfn += 97)
			assert_int_equal(smmu_vcpu_fault(v, gfn << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_fault(v, 4096ull << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(disallow(vm, 0, 0, SMMU_LEVEL_2M), 0);
		int32_t *kept0 = vm->slots.by_id[0]->lpage[0], *kept1 = vm->slots.by_id[1]->lpage[0];

		assert_int_equal(smmu_memslot_move(vm, 0, 256), 0);  /* [256, 1024): still 2 entries */
		assert_int_equal(smmu_memslot_move(vm, 1, 4352), 0); /* [4352, 5376): needs 3 */
		bool old = eras[e] == SMMU_PROFILE_LINUX_3_11;
		assert_true((vm->slots.by_id[0]->lpage[0] == kept0) == old);
		assert_true(vm->slots.by_id[1]->lpage[0] != kept1);
		first[e] = disallow(vm, 0, 256, SMMU_LEVEL_2M);
		/* The guest runs on: faults map 4K pages (never a large page across the slot's edge). */
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(v, 300ull << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.level, SMMU_LEVEL_4K);
		assert_int_equal(smmu_vcpu_fault(v, 4400ull << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		dvm_fini(&d);
	}
	assert_int_equal(first[0], 0); /* the old layout's first entry: base 0 was aligned */
	assert_int_equal(first[1], 1); /* the new layout's: base 256 is not */
}

/* ---- 6. kvm_mmu_change_mmu_pages ------------------------------------------------------------- */

/* Two vCPUs on two guest address spaces (two roots in use), then a budget of one page. Both eras
 * zap the oldest pages and then set the budget to the pages still in use. 3.11 zaps the roots in
 * use as well (they stay, invalid, and every vCPU must reload); today's passes over them. */
static void test_change_mmu_pages(void **state)
{
	(void)state;
	uint64_t reloads[2], used[2];
	for (int e = 0; e < 2; e++) {
		smmu_vm *vm = era_vm(eras[e], SMMU_MODE_SHADOW, SMMU_FLUSH_FAST_ZAP);
		assert_int_equal(smmu_memslot_create(vm, 0, 0, 1024, 0), 0);
		smmu_gas *gas[2];
		smmu_vcpu *v[2];
		for (int i = 0; i < 2; i++) {
			assert_int_equal(smmu_gas_create(vm, 16 + 32 * (smmu_gfn_t)i, 32, &gas[i]), 0);
			assert_int_equal(smmu_vcpu_create(vm, &v[i]), 0);
			assert_int_equal(smmu_vcpu_set_cr3(v[i], smmu_gas_cr3(gas[i])), 0);
			for (smmu_gva_t a = 0; a < 4; a++) {
				smmu_gva_t gva = 0x40000000ull * (a + 1);
				assert_int_equal(smmu_gas_map(gas[i], gva, 200 + a, SMMU_LEVEL_4K, RW_USER), 0);
				assert_int_equal(smmu_vcpu_fault(v[i], gva, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
			}
		}
		struct smmu_vm_counters c0, c1;
		assert_int_equal(smmu_vm_get_counters(vm, &c0), 0);
		assert_true(c0.n_used_mmu_pages > 8);
		assert_int_equal(smmu_vm_set_max_mmu_pages(vm, 1), 0);
		assert_int_equal(smmu_vm_get_counters(vm, &c1), 0);
		used[e] = c1.n_used_mmu_pages;
		reloads[e] = c1.reload_requests - c0.reload_requests;
		/* kvm_mmu_change_mmu_pages: goal_nr_mmu_pages = n_used_mmu_pages after the loop. */
		assert_int_equal(c1.n_max_mmu_pages, c1.n_used_mmu_pages);
		assert_int_equal(used[e], 2); /* the two roots, in use */
		for (int i = 0; i < 2; i++) {
			bool valid = !v[i]->root->role.invalid;
			assert_true(valid == (eras[e] == SMMU_PROFILE_LINUX_TODAY));
		}
		tl_assert_audit_clean(vm);
		/* The vCPUs run on: 3.11's reload their roots first. */
		for (int i = 0; i < 2; i++)
			assert_int_equal(smmu_vcpu_fault(v[i], 0x40000000ull, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		tl_assert_audit_clean(vm);
		for (int i = 0; i < 2; i++) {
			smmu_vcpu_destroy(v[i]);
			smmu_gas_destroy(gas[i]);
		}
		smmu_vm_destroy(vm);
	}
	assert_true(reloads[0] > 0);
	assert_int_equal(reloads[1], 0);
}

/* ---- 7. the fault path ---------------------------------------------------------------------- */

/* Armed once: on the next mmu_lock acquisition (the fault's own), make every page obsolete and
 * ask the vCPUs to reload, as a fast zap on another CPU would have just before. */
static void bump_on_lock(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	int *armed = ctx;
	if (ev != SMMU_EV_LOCK_TAKEN || !*armed)
		return;
	*armed = 0;
	smmu_bump_gen(vm);
	smmu_reload_remote_mmus(vm);
}

/* A fault whose root went obsolete under it: today's is_page_fault_stale retries; 3.11 maps under
 * the obsolete root and the pending reload replaces it at the next entry. */
static void test_fault_stale_root(void **state)
{
	(void)state;
	int r[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 1024);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		assert_int_equal(smmu_vcpu_fault(v, 0x1000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		int armed = 1;
		assert_int_equal(smmu_set_hook(vm, bump_on_lock, &armed), 0);
		r[e] = smmu_vcpu_fault(v, 0x2000, SMMU_ACC_WRITE, NULL);
		assert_int_equal(armed, 0);
		assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
		tl_assert_audit_clean(vm); /* the reload is pending: the obsolete root is allowed */
		assert_int_equal(smmu_vcpu_enter(v), 0);
		assert_int_equal(smmu_vcpu_fault(v, 0x2000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		dvm_fini(&d);
	}
	assert_int_equal(r[0], SMMU_FAULT_MAPPED);
	assert_int_equal(r[1], SMMU_FAULT_RETRY);
}

/* Mark @slot as being deleted (KVM_MEMSLOT_INVALID) or valid again. Each flag change is a
 * publication of the slot array: the memslots' generation moves, so an MMIO spte installed in
 * between is stale afterwards. */
static void set_slot_invalid(smmu_vm *vm, struct memslot *slot, bool invalid)
{
	if (invalid)
		slot->flags |= KVM_MEMSLOT_INVALID;
	else
		slot->flags &= ~KVM_MEMSLOT_INVALID;
	memslots_gen_publish(&vm->slots, vm->rules);
	memslots_updated(vm, false);
}

/* A fault on a gfn of a slot being deleted (KVM_MEMSLOT_INVALID, set here as the delete sets it
 * before its flush): 3.11 sees no slot and takes an MMIO exit; today's retries. */
static void test_fault_invalid_slot(void **state)
{
	(void)state;
	int r[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 1024);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		assert_int_equal(smmu_memslot_create(vm, 1, 4096, 1024, 0), 0);
		struct memslot *slot = vm->slots.by_id[1];
		set_slot_invalid(vm, slot, true);
		struct smmu_fault_info fi;
		r[e] = smmu_vcpu_fault(v, 4100ull << SMMU_PAGE_SHIFT, 0, &fi);
		assert_int_equal((int)fi.outcome, r[e]);
		set_slot_invalid(vm, slot, false);
		assert_int_equal(smmu_vcpu_fault(v, 4100ull << SMMU_PAGE_SHIFT, 0, NULL), SMMU_FAULT_MAPPED);
		dvm_fini(&d);
	}
	assert_int_equal(r[0], SMMU_FAULT_MMIO);
	assert_int_equal(r[1], SMMU_FAULT_RETRY);
}

/* The guest maps gfns [512, 1024) with one 2M page, and the table holding that PDE is gfn 512
 * itself. 3.11 picks the level (2M) before the fetch shadows that table, so set_spte refuses the
 * writable large spte and the guest refaults, to get a 4K one; today's picks it after: 4K at once. */
static void test_fault_level_before_fetch(void **state)
{
	(void)state;
	int r[2];
	for (int e = 0; e < 2; e++) {
		smmu_vm *vm = era_vm(eras[e], SMMU_MODE_SHADOW, SMMU_FLUSH_FAST_ZAP);
		smmu_gas *gas;
		smmu_vcpu *v;
		assert_int_equal(smmu_memslot_create(vm, 0, 0, 2048, 0), 0);
		assert_int_equal(smmu_gas_create(vm, 510, 8, &gas), 0); /* root 510, L3 511, L2 512 */
		assert_int_equal(smmu_vcpu_create(vm, &v), 0);
		assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
		assert_int_equal(smmu_gas_map(gas, 0x40000000, 512, SMMU_LEVEL_2M, RW_USER), 0);
		struct smmu_guest_walk gw;
		assert_int_equal(smmu_guest_walk(vm, smmu_gas_cr3(gas), 0x40000000, &gw), 0);
		assert_int_equal(gw.level, SMMU_LEVEL_2M);
		assert_int_equal(gw.table_gfn[1], 512);
		struct smmu_fault_info fi;
		r[e] = smmu_vcpu_fault(v, 0x40003000, 0, &fi);
		if (r[e] == SMMU_FAULT_RETRY)
			assert_int_equal(smmu_vcpu_fault(v, 0x40003000, 0, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.level, SMMU_LEVEL_4K);
		assert_int_equal(disallow(vm, 0, 512, SMMU_LEVEL_2M), 1); /* the shadowed L2 table */
		tl_assert_audit_clean(vm);
		smmu_vcpu_destroy(v);
		smmu_gas_destroy(gas);
		smmu_vm_destroy(vm);
	}
	assert_int_equal(r[0], SMMU_FAULT_RETRY);
	assert_int_equal(r[1], SMMU_FAULT_MAPPED);
}

/* ---- 4. write protection of a large spte ------------------------------------------------------ */

/* A writable 2M spte, then dirty logging on: 3.11 drops it (__drop_large_spte), today's makes it
 * read-only. Either way a write faults and is logged at 4K. */
static void test_wrprot_large_spte(void **state)
{
	(void)state;
	uint64_t lpages[2];
	int level[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 1024);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		const smmu_gpa_t gpa = (512ull + 5) << SMMU_PAGE_SHIFT;
		struct smmu_fault_info fi;
		assert_int_equal(smmu_vcpu_fault(v, gpa, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.level, SMMU_LEVEL_2M);
		assert_int_equal(smmu_memslot_set_flags(vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
		struct smmu_vm_counters c;
		assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
		lpages[e] = c.lpages;
		struct smmu_translation t;
		int r = smmu_vcpu_translate(v, gpa, 0, &t);
		level[e] = r == 0 ? t.level : 0;
		if (r == 0)
			assert_int_equal(t.access & SMMU_ACC_WRITE, 0);
		assert_int_equal(smmu_vcpu_translate(v, gpa, SMMU_ACC_WRITE, &t), r == 0 ? -EACCES : r);
		tl_assert_audit_clean(vm);
		assert_int_equal(smmu_vcpu_fault(v, gpa, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(fi.level, SMMU_LEVEL_4K);
		uint64_t bm[16] = { 0 };
		assert_int_equal(smmu_memslot_get_dirty_log(vm, 0, bm, 16), 1);
		assert_int_equal(bm[(512 + 5) / 64], 1ull << ((512 + 5) % 64));
		dvm_fini(&d);
	}
	assert_int_equal(lpages[0], 0);
	assert_int_equal(level[0], 0);
	assert_int_equal(lpages[1], 1);
	assert_int_equal(level[1], SMMU_LEVEL_2M);
}

/* ---- 5. kvm_mmu_slot_remove_write_access: flushes at the lock breaks -------------------------- */

/* Contention on one thread's holds: on each acquisition or retake of mmu_lock by w.zapper (once
 * @only logs dirty pages, if set), queue the waiter for one more ticket, so that the next
 * needbreak() check sees it. Afterwards, tickets = want lets the waiter finish. */
struct hold_feeder {
	struct tl_waiter w;
	const struct memslot *only;
};

static void feed_holds(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct hold_feeder *f = ctx;
	if ((ev != SMMU_EV_LOCK_TAKEN && ev != SMMU_EV_LOCK_BROKEN) || !pthread_equal(pthread_self(), f->w.zapper) ||
	    (f->only && !(f->only->flags & SMMU_MEM_LOG_DIRTY_PAGES)) || atomic_load(&f->w.tickets) >= f->w.want)
		return;
	atomic_fetch_add(&f->w.tickets, 1);
	while (!smmu_needbreak(vm))
		sched_yield();
}

static void feed_end(smmu_vm *vm, struct hold_feeder *f, pthread_t t)
{
	atomic_store(&f->w.tickets, f->w.want);
	pthread_join(t, NULL);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
}

static void test_slot_wrprot_flush_at_break(void **state)
{
	(void)state;
	enum { BREAKS = 5 };
	uint64_t flushes[2], breaks[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 1, 1024);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		/* One 2M spte at [512, 1024): the breaks come at the first, empty, 4K rmap heads. */
		assert_int_equal(smmu_vcpu_fault(v, 600ull << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		struct hold_feeder f = { .w = { .vm = vm, .zapper = pthread_self(), .want = BREAKS },
					 .only = vm->slots.by_id[1] };
		pthread_t t;
		assert_int_equal(smmu_set_hook(vm, feed_holds, &f), 0);
		assert_int_equal(pthread_create(&t, NULL, tl_waiter_main, &f.w), 0);
		struct smmu_vm_counters c0, c1;
		struct smmu_site_stats s0, s1;
		assert_int_equal(smmu_vm_get_counters(vm, &c0), 0);
		assert_int_equal(smmu_stats_get(vm, SMMU_SITE_MEMSLOT, &s0), 0);
		assert_int_equal(smmu_memslot_set_flags(vm, 1, SMMU_MEM_LOG_DIRTY_PAGES), 0);
		assert_int_equal(smmu_vm_get_counters(vm, &c1), 0);
		assert_int_equal(smmu_stats_get(vm, SMMU_SITE_MEMSLOT, &s1), 0);
		feed_end(vm, &f, t);
		flushes[e] = c1.remote_tlb_flushes - c0.remote_tlb_flushes;
		breaks[e] = s1.breaks - s0.breaks;
		printf("%s: dirty-log enable with %llu lock breaks: %llu remote flushes\n",
		       eras[e] == SMMU_PROFILE_LINUX_3_11 ? "3.11" : "today", (unsigned long long)breaks[e],
		       (unsigned long long)flushes[e]);
		dvm_fini(&d);
	}
	assert_int_equal(breaks[0], BREAKS);
	assert_int_equal(breaks[1], BREAKS);
	assert_int_equal(flushes[0], BREAKS + 1); /* before every break, nothing changed, and at the end */
	assert_int_equal(flushes[1], 1);          /* once, after the walk */
}

/* ---- 2. kvm_mmu_notifier_release ------------------------------------------------------------ */

/* 3.11 releases through the fast invalidate (a new generation, a reload request, the obsolete
 * pages drained); today's through kvm_mmu_zap_all, which may break the lock after every page
 * (cond_resched_rwlock_write; here forced at every check). Every page goes in both. */
static void test_notifier_release(void **state)
{
	(void)state;
	uint64_t gens[2], reloads[2], breaks[2];
	for (int e = 0; e < 2; e++) {
		struct move_guest g;
		move_guest_init(&g, eras[e], SMMU_FLUSH_FAST_ZAP);
		struct smmu_vm_counters c0, c1;
		struct smmu_site_stats s0, s1;
		assert_int_equal(smmu_vm_get_counters(g.vm, &c0), 0);
		assert_int_equal(smmu_stats_get(g.vm, SMMU_SITE_MMU_NOTIFIER, &s0), 0);
		g.vm->mmu_lock.test_break_every = 1;
		assert_int_equal(smmu_mmu_notifier_release(g.vm), 0);
		g.vm->mmu_lock.test_break_every = 0;
		assert_int_equal(smmu_stats_get(g.vm, SMMU_SITE_MMU_NOTIFIER, &s1), 0);
		breaks[e] = s1.breaks - s0.breaks;
		assert_int_equal(smmu_vm_get_counters(g.vm, &c1), 0);
		gens[e] = c1.mmu_valid_gen - c0.mmu_valid_gen;
		reloads[e] = c1.reload_requests - c0.reload_requests;
		assert_int_equal(c1.indirect_shadow_pages, 0);
		assert_int_equal(c1.n_used_mmu_pages, 1); /* the vCPU's root, zapped, until it reloads */
		tl_assert_audit_clean(g.vm);
		assert_int_equal(smmu_vcpu_enter(g.v), 0);
		tl_assert_audit_clean(g.vm);
		move_guest_fini(&g);
	}
	assert_int_equal(gens[0], 1);
	assert_int_equal(gens[1], 0);
	assert_int_equal(reloads[0], 1);
	assert_int_equal(reloads[1], 1); /* zapping the root in use asks for it */
	/* 3.11's drain breaks only every BATCH_ZAP_PAGES pages (fewer here); today's walk at every
	 * page it zaps. */
	assert_int_equal(breaks[0], 0);
	assert_true(breaks[1] > 1);
}

/* ---- 3. the MMU notifier: the retry protocol, lock breaks in the range unmap ------------------ */

/* Armed once: on the fault's own mmu_lock acquisition, an invalidation ends (range_end's seq++)
 * between the fault's sample of mmu_notifier_seq and its lock. */
static void seq_on_lock(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	int *armed = ctx;
	if (ev != SMMU_EV_LOCK_TAKEN || !*armed)
		return;
	*armed = 0;
	atomic_fetch_add(&vm->mmu_notifier_seq, 1);
}

/* Both eras: a fault retries while an invalidation is in progress (count) or when one ended
 * since it sampled the sequence; then it maps. */
static void test_notifier_retry_protocol(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 1024);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		/* A range_start in progress on another thread, over the faulting page (today's
		 * retry looks at its range: rule notifier_retry_in_range, test_notifier_retry.c). */
		vm->mmu_notifier_count = 1;
		vm->mmu_notifier_range_start = (uintptr_t)smmu_gfn_to_hva(vm, 5);
		vm->mmu_notifier_range_end = vm->mmu_notifier_range_start + SMMU_PAGE_SIZE;
		assert_int_equal(smmu_vcpu_fault(v, 0x5000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_RETRY);
		vm->mmu_notifier_count = 0;
		int armed = 1;
		assert_int_equal(smmu_set_hook(vm, seq_on_lock, &armed), 0);
		assert_int_equal(smmu_vcpu_fault(v, 0x5000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_RETRY);
		assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
		assert_int_equal(armed, 0);
		assert_int_equal(smmu_vcpu_fault(v, 0x5000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		/* The notifier itself leaves the count at 0 and the sequence one further. */
		uint64_t seq = atomic_load(&vm->mmu_notifier_seq);
		struct smmu_memslot_info info;
		assert_int_equal(smmu_memslot_get(vm, 0, &info), 0);
		assert_int_equal(smmu_mmu_notifier_invalidate_range(vm, info.hva, (char *)info.hva + 0x10000), 1);
		assert_int_equal(vm->mmu_notifier_count, 0);
		assert_int_equal(atomic_load(&vm->mmu_notifier_seq), seq + 1);
		dvm_fini(&d);
	}
}

/* kvm_unmap_hva_range with a vCPU waiting for mmu_lock: 3.11 never lets it in before the end;
 * today's yields at each check that sees it (flushing what it dropped first). */
static void test_notifier_unmap_lock_breaks(void **state)
{
	(void)state;
	enum { WANT = 4 };
	uint64_t breaks[2];
	int64_t dropped[2];
	for (int e = 0; e < 2; e++) {
		struct dvm d = dvm_init(eras[e], 0, 2048);
		smmu_vm *vm = d.vm;
		smmu_vcpu *v = d.v;
		for (smmu_gfn_t gfn = 0; gfn < 2048; gfn += 512)
			assert_int_equal(smmu_vcpu_fault(v, (gfn + 7) << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		struct smmu_memslot_info info;
		assert_int_equal(smmu_memslot_get(vm, 0, &info), 0);
		struct hold_feeder f = { .w = { .vm = vm, .zapper = pthread_self(), .want = WANT } };
		pthread_t t;
		assert_int_equal(smmu_set_hook(vm, feed_holds, &f), 0);
		assert_int_equal(pthread_create(&t, NULL, tl_waiter_main, &f.w), 0);
		struct smmu_site_stats s0, s1;
		assert_int_equal(smmu_stats_get(vm, SMMU_SITE_MMU_NOTIFIER, &s0), 0);
		dropped[e] = smmu_mmu_notifier_invalidate_range(vm, info.hva, (char *)info.hva + (2048ull << SMMU_PAGE_SHIFT));
		assert_int_equal(smmu_stats_get(vm, SMMU_SITE_MMU_NOTIFIER, &s1), 0);
		feed_end(vm, &f, t);
		breaks[e] = s1.breaks - s0.breaks;
		printf("%s: notifier unmap of %lld sptes with a waiter: %llu lock breaks\n",
		       eras[e] == SMMU_PROFILE_LINUX_3_11 ? "3.11" : "today", (long long)dropped[e],
		       (unsigned long long)breaks[e]);
		dvm_fini(&d);
	}
	assert_int_equal(dropped[0], 4);
	assert_int_equal(dropped[1], 4);
	assert_int_equal(breaks[0], 0);
	assert_int_equal(breaks[1], WANT);
}

/* ---- 8. the host page size bounds the level --------------------------------------------------- */

/* The backing's host page size (internal: slot->host_level, 1G by default) caps the leaf in both
 * eras (3.11: host_mapping_level; today: host_pfn_mapping_level): 4K-backed memory gets 4K
 * sptes, THP-sized 2M ones, 1G-backed 1G ones where lpage_info allows. */
static void test_host_page_size(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		for (int host = SMMU_LEVEL_4K; host <= SMMU_LEVEL_1G; host++) {
			struct dvm d = dvm_init(eras[e], 0, GIB_PAGES);
			smmu_vm *vm = d.vm;
			smmu_vcpu *v = d.v;
			vm->slots.by_id[0]->host_level = host;
			struct smmu_fault_info fi;
			assert_int_equal(smmu_vcpu_fault(v, 0x12345000, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
			assert_int_equal(fi.level, host);
			dvm_fini(&d);
		}
	}
}

/* ---- 9. which faults pf_fixed counts ------------------------------------------------------------ */

/* A shadow-mode guest of era @p: 4096 pages, its tables at gfn 16. */
static void shadow_guest(struct tl_guest *g, enum smmu_profile p)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = p;
	tl_guest_init_cfg(g, &cfg, 4096, 16, 64);
}

static uint64_t pf_fixed(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c.faults_fixed;
}

/* rules->pf_fixed_only_if_fixed: today's kvm_mmu_do_page_fault counts RET_PF_FIXED only, so a
 * write to a shadowed guest table (its spte installed read-only, the write emulated:
 * RET_PF_EMULATE) and a fault that leaves its spte as it was (RET_PF_SPURIOUS) count nothing;
 * 3.11's FNAME(page_fault) counts both. An ordinary fault counts in both eras. */
static void test_pf_fixed_counts(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct tl_guest g;
		shadow_guest(&g, eras[e]);
		const smmu_gva_t data = 0x40000000, pt = data + 0x1000;
		assert_int_equal(smmu_gas_map(g.gas, data, 200, SMMU_LEVEL_4K, RW_USER), 0);
		struct smmu_fault_info fi;
		uint64_t n = pf_fixed(g.vm);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, data, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(pf_fixed(g.vm), n + 1);
		/* A read-only page faulted twice: the second spte comes out unchanged. */
		const smmu_gva_t ro = data + 0x10000;
		assert_int_equal(smmu_gas_map(g.gas, ro, 300, SMMU_LEVEL_4K, SMMU_PROT_USER), 0);
		n = pf_fixed(g.vm);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, ro, SMMU_ACC_READ, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, ro, SMMU_ACC_READ, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(pf_fixed(g.vm), n + 1 + (eras[e] == SMMU_PROFILE_LINUX_3_11));
		/* A gva onto the guest's page directory over data: a write to it is emulated (a level-1
		 * table would go unsync instead: mmu_try_to_unsync_pages). */
		struct smmu_guest_walk w;
		assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(g.gas), data, &w), 0);
		assert_int_equal(smmu_gas_map(g.gas, pt, w.table_gfn[1], SMMU_LEVEL_4K, RW_USER), 0);
		n = pf_fixed(g.vm);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, pt, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_true(fi.emulated_write);
		assert_int_equal(pf_fixed(g.vm), n + (eras[e] == SMMU_PROFILE_LINUX_3_11));
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* rules->spte_dirty_on_write, rules->spte_dirty_over_writable: 6.1's make_spte sets the Dirty
 * bit of a new writable spte but not where it overwrites a writable one, so the same write fault
 * again clears D: a fixed fault (not spurious) that flushes (mmu_spte_update). 6.13 on sets it
 * every time: the spte comes out the same, a spurious fault, no flush. 3.11 sets no D bit:
 * nothing to clear, and it counts every fault that reached the leaf. */
static void test_spte_dirty_bit(void **state)
{
	(void)state;
	static const struct {
		enum smmu_profile p;
		bool dirty_first, dirty_again;
		uint64_t flushes, fixed;
	} eras3[] = {
		{ SMMU_PROFILE_LINUX_3_11, false, false, 0, 1 },
		{ SMMU_PROFILE_LINUX_6_1, true, false, 1, 1 },
		{ SMMU_PROFILE_LINUX_TODAY, true, true, 0, 0 },
	};
	for (size_t e = 0; e < sizeof(eras3) / sizeof(eras3[0]); e++) {
		struct tl_guest g;
		shadow_guest(&g, eras3[e].p);
		const smmu_gva_t data = 0x40000000;
		assert_int_equal(smmu_gas_map(g.gas, data, 200, SMMU_LEVEL_4K, RW_USER), 0);
		struct smmu_fault_info fi;
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_fault(g.vcpu, data, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_translate(g.vcpu, data, SMMU_ACC_WRITE, &t), 0);
		assert_int_equal(!!(t.spte & PT_DIRTY_MASK), eras3[e].dirty_first);
		struct smmu_vm_counters c0, c1;
		assert_int_equal(smmu_vm_get_counters(g.vm, &c0), 0);
		assert_int_equal(smmu_vcpu_fault(g.vcpu, data, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vm_get_counters(g.vm, &c1), 0);
		assert_int_equal(smmu_vcpu_translate(g.vcpu, data, SMMU_ACC_WRITE, &t), 0);
		assert_int_equal(!!(t.spte & PT_DIRTY_MASK), eras3[e].dirty_again);
		assert_int_equal(c1.remote_tlb_flushes - c0.remote_tlb_flushes, eras3[e].flushes);
		assert_int_equal(c1.faults_fixed - c0.faults_fixed, eras3[e].fixed);
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_move_keeps_stale_lpage_count),
		cmocka_unit_test(test_move_fast_zap_clean),
		cmocka_unit_test(test_move_changes_alignment),
		cmocka_unit_test(test_change_mmu_pages),
		cmocka_unit_test(test_fault_stale_root),
		cmocka_unit_test(test_fault_invalid_slot),
		cmocka_unit_test(test_fault_level_before_fetch),
		cmocka_unit_test(test_wrprot_large_spte),
		cmocka_unit_test(test_slot_wrprot_flush_at_break),
		cmocka_unit_test(test_notifier_release),
		cmocka_unit_test(test_notifier_retry_protocol),
		cmocka_unit_test(test_notifier_unmap_lock_breaks),
		cmocka_unit_test(test_host_page_size),
		cmocka_unit_test(test_pf_fixed_counts),
		cmocka_unit_test(test_spte_dirty_bit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
