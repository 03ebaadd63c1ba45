/*
 * Shadow pages (src/mmu_page.c) through the public API and the internals: page_header() of every
 * spte finds its page, n_used_mmu_pages counts the active list, the list is FIFO (newest at the
 * head), prepare_zap + commit free pages, a zapped root in use lives on until its vCPU reloads,
 * the page limit holds after every fault, and the floor measures the pages there are.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"

#define GUEST_PAGES 8192ull
#define POOL_GFN 4096ull
#define POOL_PAGES 1024ull
#define DATA_GFN 16ull

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

/* Pages on active_mmu_pages (caller holds the lock). */
static uint64_t active_len(smmu_vm *vm)
{
	uint64_t n = 0;
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp))
		n++;
	return n;
}

static bool on_active_list(smmu_vm *vm, const smmu_sp *want)
{
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp))
		if (sp == want)
			return true;
	return false;
}

/* A shadow guest with @n data pages, each in its own 2 MiB region (a shadow page each). */
static void spread_guest(struct tl_guest *g, int n)
{
	tl_guest_init(g, SMMU_MODE_SHADOW, GUEST_PAGES, POOL_GFN, POOL_PAGES);
	for (int i = 0; i < n; i++) {
		smmu_gva_t gva = 0x40000000ull + (uint64_t)i * (2ull << 20);
		assert_int_equal(smmu_gas_map(g->gas, gva, DATA_GFN + (uint64_t)i, SMMU_LEVEL_4K,
					      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		assert_int_equal(smmu_vcpu_fault(g->vcpu, gva, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	}
}

/* ---- page_header and the counts ---------------------------------------------------------------- */

static void check_page_headers(smmu_vm *vm)
{
	uint64_t used = counters(vm).n_used_mmu_pages;
	lock(vm);
	uint64_t n = 0, links = 0;
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info info;
		assert_int_equal(smmu_sp_get_info(vm, sp, &info), 0);
		/* The table's owner slot names the page: O(1) lookup from any spte. */
		for (int i = 0; i < SMMU_PT_ENTRIES; i++)
			assert_ptr_equal(page_header(&info.spt[i]), sp);
		/* And from a parent's non-leaf spte, the child found through its table address. */
		for (int i = 0; i < SMMU_PT_ENTRIES; i++) {
			uint64_t spte = info.spt[i];
			if (is_shadow_present_pte(spte) && !is_last_spte(spte, info.level)) {
				smmu_sp *child = page_header(spte_to_child_spt(spte));
				assert_true(on_active_list(vm, child));
				assert_int_equal(child->role.level, info.level - 1);
				links++;
			}
		}
		n++;
	}
	assert_int_equal(n, active_len(vm));
	unlock(vm);
	assert_int_equal(n, used);
	assert_true(links > 0);
}

static void test_page_header_and_counts(void **state)
{
	(void)state;
	struct tl_guest g;
	spread_guest(&g, 40);
	struct smmu_vm_counters c = counters(g.vm);
	/* Root, one level-3 and one level-2 page (all of 0x40000000 + 40 * 2M lies in one 1G
	 * region), and 40 level-1 pages. */
	assert_int_equal(c.n_used_mmu_pages, 3 + 40);
	assert_int_equal(c.pages_created, c.n_used_mmu_pages);
	assert_int_equal(c.indirect_shadow_pages, 3 + 40);
	check_page_headers(g.vm);
	/* Direct mode too. */
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);

	tl_guest_init(&g, SMMU_MODE_DIRECT, 100, 0, 0);
	tl_map_and_fault(&g, 0, 0, 100, SMMU_ACC_WRITE);
	c = counters(g.vm);
	assert_int_equal(c.n_used_mmu_pages, 4); /* 4K leaves: one page per level */
	assert_int_equal(c.indirect_shadow_pages, 0);
	check_page_headers(g.vm);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- FIFO ---------------------------------------------------------------------------------- */

struct creation_log {
	smmu_sp *pages[256];
	int n;
};

static void record_created(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)vm;
	struct creation_log *log = ctx;
	if (ev == SMMU_EV_PAGE_CREATED && log->n < 256)
		log->pages[log->n++] = (smmu_sp *)sp;
}

static void test_fifo_newest_at_head(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, GUEST_PAGES, POOL_GFN, POOL_PAGES);
	struct creation_log log = { .n = 0 };
	assert_int_equal(smmu_set_hook(g.vm, record_created, &log), 0);
	/* Three rounds of faults: each creates pages after the previous round's. */
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 10; i++) {
			smmu_gva_t gva = (1ull << 39) * (uint64_t)(round + 1) + (uint64_t)i * (2ull << 20);
			assert_int_equal(smmu_gas_map(g.gas, gva, DATA_GFN + (uint64_t)i, SMMU_LEVEL_4K,
						      SMMU_PROT_WRITE), 0);
			assert_int_equal(smmu_vcpu_fault(g.vcpu, gva, 0, NULL), SMMU_FAULT_MAPPED);
		}
	assert_int_equal(smmu_set_hook(g.vm, NULL, NULL), 0);
	assert_int_equal(log.n, 1 + 3 * (2 + 10)); /* root; per round a level-3, a level-2, 10 level-1 */
	lock(g.vm);
	/* From the head: the newest first, i.e. the creation order reversed. */
	int k = log.n - 1;
	for (smmu_sp *sp = smmu_active_first(g.vm); sp; sp = smmu_active_next(g.vm, sp), k--) {
		assert_true(k >= 0);
		assert_ptr_equal(sp, log.pages[k]);
	}
	assert_int_equal(k, -1);
	/* From the tail: the oldest first, the root. */
	k = 0;
	for (smmu_sp *sp = smmu_active_last(g.vm); sp; sp = smmu_active_prev(g.vm, sp), k++)
		assert_ptr_equal(sp, log.pages[k]);
	assert_int_equal(k, log.n);
	struct smmu_sp_info info;
	assert_int_equal(smmu_sp_get_info(g.vm, smmu_active_last(g.vm), &info), 0);
	assert_int_equal(info.level, 4);
	assert_int_equal(info.root_count, 1);
	unlock(g.vm);
	/* Pages already there do not move when faults reuse them. */
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 1ull << 39, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	lock(g.vm);
	k = log.n - 1;
	for (smmu_sp *sp = smmu_active_first(g.vm); sp; sp = smmu_active_next(g.vm, sp), k--)
		assert_ptr_equal(sp, log.pages[k]);
	unlock(g.vm);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- prepare_zap + commit ------------------------------------------------------------------ */

static void test_zap_and_commit_frees(void **state)
{
	(void)state;
	struct tl_guest g;
	spread_guest(&g, 10);
	struct smmu_vm_counters before = counters(g.vm);
	lock(g.vm);
	/* The newest page: a level-1 page with one leaf, no root. */
	smmu_sp *sp = smmu_active_first(g.vm);
	struct smmu_sp_info info;
	assert_int_equal(smmu_sp_get_info(g.vm, sp, &info), 0);
	assert_int_equal(info.level, 1);
	assert_int_equal(info.root_count, 0);
	assert_false(info.invalid);
	smmu_gfn_t gfn = info.gfn;
	struct smmu_invalid_list list;
	smmu_invalid_list_init(&list);
	assert_int_equal(smmu_zap_page(g.vm, sp, &list), 1);
	assert_int_equal(list.count, 1);
	assert_int_equal(smmu_sp_get_info(g.vm, sp, &info), 0);
	assert_true(info.invalid);
	assert_int_equal(info.n_present, 0);
	assert_false(on_active_list(g.vm, sp)); /* on the invalid list now */
	assert_int_equal(active_len(g.vm), before.n_used_mmu_pages - 1);
	smmu_commit_zap(g.vm, &list);
	assert_int_equal(list.count, 0);
	/* Nothing in the hash bucket of its gfn is that page any more. */
	for (smmu_sp *h = smmu_hash_first(g.vm, gfn); h; h = smmu_hash_next(g.vm, h))
		assert_ptr_not_equal(h, sp);
	unlock(g.vm);
	struct smmu_vm_counters after = counters(g.vm);
	assert_int_equal(after.pages_zapped, before.pages_zapped + 1);
	assert_int_equal(after.pages_freed, before.pages_freed + 1);
	assert_int_equal(after.n_used_mmu_pages, before.n_used_mmu_pages - 1);
	assert_int_equal(after.indirect_shadow_pages, before.indirect_shadow_pages - 1);
	assert_true(after.remote_tlb_flushes > before.remote_tlb_flushes); /* commit flushes */
	tl_assert_audit_clean(g.vm);

	/* Zap two pages onto one list, commit once. */
	lock(g.vm);
	smmu_invalid_list_init(&list);
	smmu_sp *a = smmu_active_first(g.vm), *b = smmu_active_next(g.vm, a);
	assert_int_equal(smmu_zap_page(g.vm, a, &list), 1);
	assert_int_equal(smmu_zap_page(g.vm, b, &list), 1);
	assert_int_equal(list.count, 2);
	smmu_commit_zap(g.vm, &list);
	unlock(g.vm);
	assert_int_equal(counters(g.vm).pages_freed, before.pages_freed + 3);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	/* A fault rebuilds what was zapped. */
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 0x40000000ull + 9 * (2ull << 20), SMMU_ACC_WRITE, NULL),
			 SMMU_FAULT_MAPPED);
	assert_int_equal(counters(g.vm).n_used_mmu_pages, before.n_used_mmu_pages - 2);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_zapped_root_lives_until_reload(void **state)
{
	(void)state;
	struct tl_guest g;
	spread_guest(&g, 5);
	struct smmu_vm_counters before = counters(g.vm);
	lock(g.vm);
	smmu_sp *root = smmu_active_last(g.vm);
	struct smmu_sp_info info;
	assert_int_equal(smmu_sp_get_info(g.vm, root, &info), 0);
	assert_int_equal(info.level, 4);
	assert_int_equal(info.root_count, 1);
	struct smmu_invalid_list list;
	smmu_invalid_list_init(&list);
	/* In use: it does not go to the list. */
	assert_int_equal(smmu_zap_page(g.vm, root, &list), 0);
	assert_int_equal(list.count, 0);
	smmu_commit_zap(g.vm, &list);
	assert_int_equal(smmu_sp_get_info(g.vm, root, &info), 0);
	assert_true(info.invalid);
	assert_true(info.root_count > 0);
	assert_int_equal(info.n_present, 0); /* its children were unlinked */
	assert_true(on_active_list(g.vm, root));
	unlock(g.vm);
	struct smmu_vm_counters mid = counters(g.vm);
	assert_int_equal(mid.pages_freed, before.pages_freed);
	assert_int_equal(mid.pages_zapped, before.pages_zapped + 1);
	assert_int_equal(mid.n_used_mmu_pages, before.n_used_mmu_pages);
	assert_true(mid.reload_requests > before.reload_requests);
	tl_assert_audit_clean(g.vm);

	/* A fault before the reload is processed would see it; entering processes the reload. */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	lock(g.vm);
	assert_false(on_active_list(g.vm, root));
	unlock(g.vm);
	struct smmu_vm_counters after = counters(g.vm);
	assert_int_equal(after.pages_freed, before.pages_freed + 1);
	assert_int_equal(after.n_used_mmu_pages, before.n_used_mmu_pages - 1);
	tl_assert_audit_clean(g.vm);
	/* The next fault builds a new root; the old children are reused through the hash. */
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 0x40000000ull, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.pages_created, 1);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* smmu_zap_oldest zaps the tail page; the root (oldest, in use) is skipped after it was zapped. */
static void test_zap_oldest(void **state)
{
	(void)state;
	struct tl_guest g;
	spread_guest(&g, 4);
	lock(g.vm);
	struct smmu_invalid_list list;
	smmu_invalid_list_init(&list);
	smmu_sp *root = smmu_active_last(g.vm);
	/* The oldest is the root in use: zapped, kept (0 pages listed), moved to the head. */
	assert_int_equal(smmu_zap_oldest(g.vm, &list), 0);
	assert_ptr_equal(smmu_active_first(g.vm), root);
	/* Then the next oldest: the level-3 page. */
	smmu_sp *l3 = smmu_active_last(g.vm);
	struct smmu_sp_info info;
	assert_int_equal(smmu_sp_get_info(g.vm, l3, &info), 0);
	assert_int_equal(info.level, 3);
	assert_int_equal(smmu_zap_oldest(g.vm, &list), 1);
	assert_int_equal(list.count, 1);
	smmu_commit_zap(g.vm, &list);
	unlock(g.vm);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- the page limit ------------------------------------------------------------------------- */

static void test_page_limit(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, GUEST_PAGES, POOL_GFN, POOL_PAGES);
	assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, 100), 0);
	assert_int_equal(counters(g.vm).n_max_mmu_pages, 100);
	uint64_t peak = 0;
	for (int i = 0; i < 400; i++) {
		/* Each in its own 2 MiB region: a new level-1 page every fault, a level-2 every 512. */
		smmu_gva_t gva = 0x40000000ull + (uint64_t)i * (2ull << 20);
		assert_int_equal(smmu_gas_map(g.gas, gva, DATA_GFN + (uint64_t)i, SMMU_LEVEL_4K,
					      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		struct smmu_fault_info fi;
		int r = smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_WRITE, &fi);
		if (r == SMMU_FAULT_RETRY) { /* recycling zapped the root: reload and retry */
			assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
			r = smmu_vcpu_fault(g.vcpu, gva, SMMU_ACC_WRITE, &fi);
		}
		assert_int_equal(r, SMMU_FAULT_MAPPED);
		struct smmu_vm_counters c = counters(g.vm);
		if (c.n_used_mmu_pages > 100)
			fail_msg("fault %d: %llu pages used, limit 100", i, (unsigned long long)c.n_used_mmu_pages);
		peak = c.n_used_mmu_pages > peak ? c.n_used_mmu_pages : peak;
		if (i % 50 == 49)
			tl_assert_audit_clean(g.vm);
	}
	struct smmu_vm_counters c = counters(g.vm);
	assert_true(c.pages_recycled > 0);
	assert_true(c.pages_created > 100);
	assert_true(peak > 90); /* it did fill up to the limit */
	assert_int_equal(c.n_used_mmu_pages, c.pages_created - c.pages_freed);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);

	/* Lowering the limit zaps the oldest pages at once. */
	assert_int_equal(smmu_vm_set_max_mmu_pages(g.vm, 20), 0);
	c = counters(g.vm);
	assert_true(c.n_used_mmu_pages <= 20);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	/* Still usable: every mapping faults back in, within the limit. */
	for (int i = 0; i < 400; i += 37) {
		smmu_gva_t gva = 0x40000000ull + (uint64_t)i * (2ull << 20);
		uint64_t x;
		assert_int_equal(smmu_vcpu_read(g.vcpu, gva, &x, sizeof(x)), 0);
		assert_true(counters(g.vm).n_used_mmu_pages <= 20);
	}
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- the floor ------------------------------------------------------------------------------- */

static void test_measure_floor(void **state)
{
	(void)state;
	struct tl_guest g;
	spread_guest(&g, 60);
	struct smmu_vm_counters before = counters(g.vm);
	struct smmu_floor f;
	memset(&f, 0, sizeof(f));
	assert_int_equal(smmu_measure_floor(g.vm, &f), 0);
	assert_int_equal(f.pages, before.n_used_mmu_pages);
	assert_true(f.read_ns > 0);
	assert_true(f.free_ns > 0);
	assert_int_equal(f.total_ns, f.read_ns + f.free_ns);
	/* The checksum is the sum of every spte of every page. */
	lock(g.vm);
	uint64_t sum = 0;
	for (smmu_sp *sp = smmu_active_first(g.vm); sp; sp = smmu_active_next(g.vm, sp)) {
		struct smmu_sp_info info;
		assert_int_equal(smmu_sp_get_info(g.vm, sp, &info), 0);
		for (int i = 0; i < SMMU_PT_ENTRIES; i++)
			sum += info.spt[i];
	}
	unlock(g.vm);
	assert_int_equal(f.checksum, sum);
	/* It changed nothing. */
	struct smmu_vm_counters after = counters(g.vm);
	assert_memory_equal(&after, &before, sizeof(after));
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);

	/* An empty VM: zero pages. */
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_measure_floor(vm, &f), 0);
	assert_int_equal(f.pages, 0);
	assert_int_equal(f.checksum, 0);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_header_and_counts),
		cmocka_unit_test(test_fifo_newest_at_head),
		cmocka_unit_test(test_zap_and_commit_frees),
		cmocka_unit_test(test_zapped_root_lives_until_reload),
		cmocka_unit_test(test_zap_oldest),
		cmocka_unit_test(test_page_limit),
		cmocka_unit_test(test_measure_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
