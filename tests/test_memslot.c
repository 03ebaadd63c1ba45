/*
 * Memslots through the public API: create, delete, move, set_flags, get, gfn_to_hva; the error
 * table of vm.h with the VM state checked unchanged after every rejected call; contents kept by
 * a move; a lazily backed 1 TiB slot; the dirty log; lpage_info edge bits at creation.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

/* Sanitizer allocators fill large callocs (the 2 GiB rmap array of a 1 TiB slot): the resident
 * size says nothing about the library's laziness there. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

#define GIB_PAGES (1ull << 18) /* 1 GiB in 4 KiB pages */
#define MB2_PAGES 512ull

/* ---- the VM's observable state, to prove a rejected call changed nothing ---------------------- */

struct vm_snapshot {
	int rc[SMMU_MAX_MEMSLOTS];
	struct smmu_memslot_info info[SMMU_MAX_MEMSLOTS];
	struct smmu_vm_counters ctr;
};

static void snapshot(smmu_vm *vm, struct vm_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	for (int id = 0; id < SMMU_MAX_MEMSLOTS; id++)
		s->rc[id] = smmu_memslot_get(vm, id, &s->info[id]);
	assert_int_equal(smmu_vm_get_counters(vm, &s->ctr), 0);
}

static void assert_unchanged_(smmu_vm *vm, const struct vm_snapshot *before, const char *what,
			      const char *file, int line)
{
	struct vm_snapshot *now = malloc(sizeof(*now));
	assert_non_null(now);
	snapshot(vm, now);
	for (int id = 0; id < SMMU_MAX_MEMSLOTS; id++) {
		if (now->rc[id] != before->rc[id] ||
		    (now->rc[id] == 0 && memcmp(&now->info[id], &before->info[id], sizeof(now->info[id])))) {
			print_message("%s:%d: %s changed slot %d (rc %d -> %d)\n", file, line, what, id,
				      before->rc[id], now->rc[id]);
			_fail(file, line);
		}
	}
	if (memcmp(&now->ctr, &before->ctr, sizeof(now->ctr))) {
		print_message("%s:%d: %s changed the VM counters\n", file, line, what);
		_fail(file, line);
	}
	free(now);
	tl_assert_audit_clean_(vm, file, line);
}
#define assert_unchanged(vm, before, what) assert_unchanged_((vm), (before), (what), __FILE__, __LINE__)

/* Expect @call to return @err and leave the VM as it was. */
#define EXPECT_REJECTED(vm, snap, call, err)                                         \
	do {                                                                         \
		snapshot((vm), (snap));                                              \
		int64_t r_ = (int64_t)(call);                                        \
		if (r_ != (int64_t)(err))                                            \
			fail_msg("%s returned %lld, expected %lld", #call, (long long)r_, \
				 (long long)(err));                                  \
		assert_unchanged((vm), (snap), #call);                               \
	} while (0)

static struct vm_snapshot *snap_new(void)
{
	struct vm_snapshot *s = malloc(sizeof(*s));
	assert_non_null(s);
	return s;
}

static int32_t lpage(smmu_vm *vm, int id, smmu_gfn_t gfn, int level)
{
	int32_t v = -1;
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	int r = smmu_lpage_disallow(vm, id, gfn, level, &v);
	smmu_mmu_unlock(vm);
	assert_int_equal(r, 0);
	return v;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void test_create_get_delete(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(vm, 3, &info), -ENOENT);
	assert_int_equal(smmu_memslot_create(vm, 3, 0x1000, 256, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16, SMMU_MEM_READONLY), 0);
	assert_int_equal(smmu_memslot_create(vm, SMMU_MAX_MEMSLOTS - 1, 0x10000, 1, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	memset(&info, 0, sizeof(info));
	assert_int_equal(smmu_memslot_get(vm, 3, &info), 0);
	assert_int_equal(info.id, 3);
	assert_int_equal(info.base_gfn, 0x1000);
	assert_int_equal(info.npages, 256);
	assert_int_equal(info.flags, 0);
	assert_non_null(info.hva);
	/* The backing is congruent with the gpa modulo 1 GiB (large pages can be backed). */
	assert_int_equal(((uintptr_t)info.hva >> 12) & (GIB_PAGES - 1), 0x1000);
	assert_int_equal(smmu_memslot_get(vm, 0, &info), 0);
	assert_int_equal(info.flags, SMMU_MEM_READONLY);
	assert_int_equal(smmu_memslot_get(vm, SMMU_MAX_MEMSLOTS - 1, &info), 0);
	assert_int_equal(info.flags, SMMU_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(info.npages, 1);

	/* gfn_to_hva: every gfn of the slot, NULL around it. */
	assert_int_equal(smmu_memslot_get(vm, 3, &info), 0);
	for (smmu_gfn_t g = 0x1000; g < 0x1100; g += 17)
		assert_ptr_equal(smmu_gfn_to_hva(vm, g), (uint8_t *)info.hva + ((g - 0x1000) << 12));
	assert_ptr_equal(smmu_gfn_to_hva(vm, 0x10ff), (uint8_t *)info.hva + (0xffull << 12));
	assert_null(smmu_gfn_to_hva(vm, 0xfff));
	assert_null(smmu_gfn_to_hva(vm, 0x1100));
	assert_null(smmu_gfn_to_hva(vm, SMMU_MAX_GFN));
	assert_null(smmu_gfn_to_hva(NULL, 0x1000));

	/* Counters follow the slots: 2% of guest pages, at least 64. */
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.n_max_mmu_pages, 64);
	assert_true(c.lpage_bytes > 0 && c.rmap_bytes > 0);
	tl_assert_audit_clean(vm);

	assert_int_equal(smmu_memslot_delete(vm, 3), 0);
	assert_int_equal(smmu_memslot_get(vm, 3, &info), -ENOENT);
	assert_null(smmu_gfn_to_hva(vm, 0x1000));
	assert_int_equal(smmu_memslot_delete(vm, 3), -ENOENT);
	/* The id and the range are free again. */
	assert_int_equal(smmu_memslot_create(vm, 3, 0x1080, 16, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 4, 0x1000, 0x80, 0), 0);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_page_budget_follows_slots(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 100000, 0), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.n_max_mmu_pages, 2000); /* 2% of 100000 */
	assert_int_equal(smmu_memslot_create(vm, 1, 200000, 50000, 0), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.n_max_mmu_pages, 3000);
	assert_int_equal(smmu_memslot_delete(vm, 0), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.n_max_mmu_pages, 1000);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- the error table ---------------------------------------------------------------------- */

static void test_create_errors(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	struct vm_snapshot *s = snap_new();
	/* Existing: slot 1 = [1000, 1100), slot 2 = [5000, 5010). */
	assert_int_equal(smmu_memslot_create(vm, 1, 1000, 100, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 2, 5000, 10, 0), 0);
	/* Fault something in so the counters are not all zero. */
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	smmu_gas *gas;
	assert_int_equal(smmu_gas_create(vm, 1000, 16, &gas), 0);
	assert_int_equal(smmu_gas_map(gas, 0x200000, 1050, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	assert_int_equal(smmu_vcpu_fault(v, 0x200000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_enter(v), 0);

	/* Overlaps: partial on the left, partial on the right, containment both ways, identical. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 990, 11, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1099, 50, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1010, 5, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1000, 1, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1099, 1, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 500, 10000, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1000, 100, 0), -EEXIST);
	/* Spanning both existing slots. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1050, 4000, 0), -EEXIST);
	/* Id in use, with a range that overlaps nothing. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 1, 9000, 10, 0), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 2, 9000, 10, SMMU_MEM_READONLY), -EEXIST);
	/* Beyond the 52-bit space (2^40 gfns), or overflowing. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, SMMU_MAX_GFN - 10, 11, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, SMMU_MAX_GFN, 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 0, SMMU_MAX_GFN + 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, UINT64_MAX - 5, 10, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 100000, UINT64_MAX, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 1ull << 63, 1ull << 63, 0), -EINVAL);
	/* npages 0. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 9000, 0, 0), -EINVAL);
	/* Id out of range. */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, -1, 9000, 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, SMMU_MAX_MEMSLOTS, 9000, 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 1 << 30, 9000, 1, 0), -EINVAL);
	/* Unknown flags, alone or with known ones (the internal INVALID bit included). */
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 9000, 1, 1u << 2), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 9000, 1, SMMU_MEM_READONLY | (1u << 5)), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 9000, 1, 1u << 16), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_create(vm, 7, 9000, 1, 0x80000000u), -EINVAL);
	/* NULL vm. */
	assert_int_equal(smmu_memslot_create(NULL, 7, 9000, 1, 0), -EINVAL);

	/* The edges that are allowed: adjacent on both sides, and the last gfn of the space. */
	assert_int_equal(smmu_memslot_create(vm, 8, 990, 10, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 9, 1100, 10, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 10, SMMU_MAX_GFN - 1, 1, 0), 0);
	uint64_t x = 0x1122334455667788ull, y = 0;
	assert_int_equal(smmu_guest_write_u64(vm, (SMMU_MAX_GFN - 1) << 12, x), 0);
	assert_int_equal(smmu_guest_read_u64(vm, (SMMU_MAX_GFN - 1) << 12, &y), 0);
	assert_int_equal(y, x);
	tl_assert_audit_clean(vm);
	free(s);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

static void test_delete_move_flags_get_errors(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	struct vm_snapshot *s = snap_new();
	assert_int_equal(smmu_memslot_create(vm, 1, 1000, 100, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 2, 5000, 10, SMMU_MEM_READONLY), 0);
	assert_int_equal(smmu_memslot_create(vm, 3, 8000, 64, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_fault(v, 1010ull << 12, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_fault(v, 5001ull << 12, 0, NULL), SMMU_FAULT_MAPPED);
	assert_int_equal(smmu_vcpu_enter(v), 0);

	/* delete */
	assert_int_equal(smmu_memslot_delete(NULL, 1), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_delete(vm, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_delete(vm, 77), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_delete(vm, -1), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_delete(vm, SMMU_MAX_MEMSLOTS), -ENOENT);

	/* move */
	assert_int_equal(smmu_memslot_move(NULL, 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 0, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, -1, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, SMMU_MAX_MEMSLOTS, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, 4950), -EEXIST);  /* onto slot 2 */
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, 5005), -EEXIST);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 2, 1050), -EEXIST);  /* inside slot 1 */
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 2, 995), -EEXIST);   /* across its start */
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, 7950), -EEXIST);  /* onto slot 3 */
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, SMMU_MAX_GFN - 99), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, SMMU_MAX_GFN), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_move(vm, 1, UINT64_MAX - 10), -EINVAL);

	/* set_flags */
	assert_int_equal(smmu_memslot_set_flags(NULL, 1, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 1, 1u << 2), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 1, SMMU_MEM_LOG_DIRTY_PAGES | (1u << 9)), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 1, 1u << 16), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 0, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, -1, 0), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, SMMU_MAX_MEMSLOTS, 0), -ENOENT);
	/* READONLY cannot change on an existing slot, in either direction. */
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 1, SMMU_MEM_READONLY), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 1, SMMU_MEM_READONLY | SMMU_MEM_LOG_DIRTY_PAGES), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 2, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 2, SMMU_MEM_LOG_DIRTY_PAGES), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_set_flags(vm, 3, SMMU_MEM_READONLY | SMMU_MEM_LOG_DIRTY_PAGES), -EINVAL);

	/* get */
	struct smmu_memslot_info info;
	EXPECT_REJECTED(vm, s, smmu_memslot_get(NULL, 1, &info), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_get(vm, 1, NULL), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_get(vm, 0, &info), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_get(vm, -5, &info), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_get(vm, SMMU_MAX_MEMSLOTS, &info), -ENOENT);

	/* get_dirty_log (slot 3 logs, slot 1 does not) */
	uint64_t bm[4];
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(NULL, 3, bm, 4), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(vm, 3, NULL, 4), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(vm, 3, bm, 0), -EINVAL);
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(vm, 1, bm, 4), -ENODATA);
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(vm, 9, bm, 4), -ENOENT);
	EXPECT_REJECTED(vm, s, smmu_memslot_get_dirty_log(vm, -1, bm, 4), -ENOENT);

	/* A move within its own range (shifting by one) overlaps only itself: allowed. */
	assert_int_equal(smmu_memslot_move(vm, 1, 1001), 0);
	tl_assert_audit_clean(vm);
	free(s);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* ---- move, delete ------------------------------------------------------------------------- */

static void test_move_keeps_contents(void **state)
{
	(void)state;
	struct tl_guest g;
	/* Shadow guest: slot 0 holds the page tables; slot 1 holds data and moves. */
	tl_guest_init(&g, SMMU_MODE_SHADOW, 1024, 512, 32);
	assert_int_equal(smmu_memslot_create(g.vm, 1, 4096, 64, 0), 0);
	struct smmu_memslot_info before, after;
	assert_int_equal(smmu_memslot_get(g.vm, 1, &before), 0);
	char msg[64] = "contents survive a KVM_MR_MOVE";
	assert_int_equal(smmu_guest_write(g.vm, (4096ull + 3) * 4096 + 100, msg, sizeof(msg)), 0);
	/* One crossing a page boundary inside the slot. */
	assert_int_equal(smmu_guest_write(g.vm, (4096ull + 9) * 4096 - 8, msg, 16), 0);
	/* A guest mapping of the slot, faulted in. */
	tl_map_and_fault(&g, 0x40000000, 4096 + 3, 4, SMMU_ACC_WRITE);
	tl_assert_audit_clean(g.vm);

	assert_int_equal(smmu_memslot_move(g.vm, 1, 20000), 0);
	assert_int_equal(smmu_memslot_get(g.vm, 1, &after), 0);
	assert_int_equal(after.base_gfn, 20000);
	assert_int_equal(after.npages, 64);
	assert_int_equal(after.flags, 0);
	assert_ptr_equal(after.hva, before.hva); /* the backing is kept */
	char back[64];
	assert_int_equal(smmu_guest_read(g.vm, (20000ull + 3) * 4096 + 100, back, sizeof(back)), 0);
	assert_memory_equal(back, msg, sizeof(msg));
	assert_int_equal(smmu_guest_read(g.vm, (20000ull + 9) * 4096 - 8, back, 16), 0);
	assert_memory_equal(back, msg, 16);
	/* The old range is gone, the new one maps to the same backing. */
	assert_null(smmu_gfn_to_hva(g.vm, 4096 + 3));
	assert_int_equal(smmu_guest_read(g.vm, (4096ull + 3) * 4096, back, 8), -EFAULT);
	assert_ptr_equal(smmu_gfn_to_hva(g.vm, 20000 + 3), (uint8_t *)before.hva + 3 * 4096);
	/* The stale guest mapping now points at MMIO; nothing stale survives in the shadow MMU. */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 0x40000000, 0, &fi), SMMU_FAULT_MMIO);
	/* Remap the gva to the moved gfn: the vCPU reads the old contents there. */
	assert_int_equal(smmu_gas_map(g.gas, 0x40000000, 20000 + 3, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_vcpu_read(g.vcpu, 0x40000000 + 100, back, sizeof(back)), 0);
	assert_memory_equal(back, msg, sizeof(msg));
	/* And it can move back. */
	assert_int_equal(smmu_memslot_move(g.vm, 1, 4096), 0);
	assert_int_equal(smmu_guest_read(g.vm, (4096ull + 3) * 4096 + 100, back, sizeof(back)), 0);
	assert_memory_equal(back, msg, sizeof(msg));
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_delete_unmaps(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_DIRECT, 512, 0, 0);
	assert_int_equal(smmu_memslot_create(g.vm, 1, 4096, 32, 0), 0);
	assert_non_null(smmu_gfn_to_hva(g.vm, 4096));
	assert_non_null(smmu_gfn_to_hva(g.vm, 4096 + 31));
	tl_map_and_fault(&g, 0, 4096, 32, SMMU_ACC_WRITE);
	assert_int_equal(smmu_guest_write_u64(g.vm, 4100ull << 12, 42), 0);
	tl_assert_audit_clean(g.vm);
	assert_int_equal(smmu_memslot_delete(g.vm, 1), 0);
	for (smmu_gfn_t gfn = 4096; gfn < 4096 + 32; gfn++)
		assert_null(smmu_gfn_to_hva(g.vm, gfn));
	uint64_t x;
	assert_int_equal(smmu_guest_read_u64(g.vm, 4100ull << 12, &x), -EFAULT);
	assert_int_equal(smmu_guest_write_u64(g.vm, 4100ull << 12, 1), -EFAULT);
	/* A fault there is MMIO now. */
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	assert_int_equal(smmu_vcpu_fault(g.vcpu, 4100ull << 12, 0, NULL), SMMU_FAULT_MMIO);
	/* Slot 0 is untouched. */
	assert_non_null(smmu_gfn_to_hva(g.vm, 0));
	tl_assert_audit_clean(g.vm);
	/* A new slot in the same place starts zeroed. */
	assert_int_equal(smmu_memslot_create(g.vm, 1, 4096, 32, 0), 0);
	assert_int_equal(smmu_guest_read_u64(g.vm, 4100ull << 12, &x), 0);
	assert_int_equal(x, 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/* ---- a 1 TiB slot ------------------------------------------------------------------------- */

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void test_one_tib_slot(void **state)
{
	(void)state;
	const uint64_t npages = 1ull << 28; /* 1 TiB */
	if (UNDER_VALGRIND()) {
		/* Valgrind's address-space manager refuses a 1 TiB mapping (-ENOMEM here): the
		 * lazy backing cannot be had under it. Everything else runs under valgrind. */
		skip();
	}
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	uint64_t rss0 = rss_bytes();
	assert_int_equal(smmu_memslot_create(vm, 0, 0, npages, 0), 0);
	uint64_t rss1 = rss_bytes();
	/* Cheap: the backing is lazy. (Metadata — rmaps, lpage_info — is allowed its few MiB.) */
	if (RSS_MEANINGFUL && rss0 && rss1)
		assert_true(rss1 - rss0 < (256ull << 20));
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(vm, 0, &info), 0);
	assert_int_equal(info.npages, npages);
	/* Use a few pages: first, last, one in the middle, across a 1 GiB boundary. */
	const smmu_gpa_t gpas[] = { 0, (npages - 1) << 12, (npages / 2) << 12, (GIB_PAGES << 12) - 4 };
	for (size_t i = 0; i < sizeof(gpas) / sizeof(gpas[0]); i++)
		assert_int_equal(smmu_guest_write_u64(vm, gpas[i], 0xabcdef00ull + i), 0);
	for (size_t i = 0; i < sizeof(gpas) / sizeof(gpas[0]); i++) {
		uint64_t x = 0;
		assert_int_equal(smmu_guest_read_u64(vm, gpas[i], &x), 0);
		assert_int_equal(x, 0xabcdef00ull + i);
	}
	assert_null(smmu_gfn_to_hva(vm, npages));
	assert_ptr_equal(smmu_gfn_to_hva(vm, npages - 1), (uint8_t *)info.hva + ((npages - 1) << 12));
	/* Direct faults into it: large pages where lpage_info allows (aligned slot: 1 GiB leaves). */
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(v, (npages / 2) << 12, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.level, SMMU_LEVEL_1G);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, (npages / 2) << 12, SMMU_ACC_WRITE, &t), 0);
	assert_int_equal(*(uint64_t *)t.hva, 0xabcdef02ull);
	uint64_t rss2 = rss_bytes();
	if (RSS_MEANINGFUL && rss0 && rss2)
		assert_true(rss2 - rss0 < (256ull << 20));
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	assert_int_equal(smmu_memslot_delete(vm, 0), 0);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- dirty log ------------------------------------------------------------------------------ */

static void test_dirty_log(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	const uint64_t npages = 200; /* 4 words, the last one partial */
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 64, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 1, 1024, npages, 0), 0);
	uint64_t bm[4] = { 0 };
	/* Logging off. */
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), -ENODATA);
	assert_int_equal(smmu_memslot_set_flags(vm, 1, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	struct smmu_memslot_info info;
	assert_int_equal(smmu_memslot_get(vm, 1, &info), 0);
	assert_int_equal(info.flags, SMMU_MEM_LOG_DIRTY_PAGES);
	/* Nothing written yet. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(bm[i], 0);

	const uint64_t dirty[] = { 0, 3, 63, 64, 130, 199 };
	for (size_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++)
		assert_int_equal(smmu_guest_write_u64(vm, (1024 + dirty[i]) << 12, i), 0);
	/* A write crossing pages 100 -> 101 dirties both. */
	char buf[16] = "xxxxxxxxxxxxxxx";
	assert_int_equal(smmu_guest_write(vm, ((1024ull + 101) << 12) - 8, buf, sizeof(buf)), 0);
	/* Writes elsewhere do not show up. */
	assert_int_equal(smmu_guest_write_u64(vm, 5ull << 12, 1), 0);
	/* Reads do not dirty. */
	uint64_t x;
	assert_int_equal(smmu_guest_read_u64(vm, (1024ull + 50) << 12, &x), 0);

	/* A short bitmap is refused and consumes nothing. */
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 3), -EINVAL);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), 8);
	uint64_t want[4] = { 0 };
	for (size_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++)
		want[dirty[i] / 64] |= 1ull << (dirty[i] % 64);
	want[100 / 64] |= 1ull << (100 % 64);
	want[101 / 64] |= 1ull << (101 % 64);
	for (int i = 0; i < 4; i++)
		assert_int_equal(bm[i], want[i]);
	/* Read and cleared: a second call finds nothing. */
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(bm[i], 0);

	/* Through the vCPU: a write fault dirties the page; after the log was read the spte is
	 * write-protected again, so the next write faults and dirties it again. */
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	uint64_t val = 7;
	assert_int_equal(smmu_vcpu_write(v, (1024ull + 10) << 12, &val, sizeof(val)), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), 1);
	assert_int_equal(bm[0], 1ull << 10);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(v, (1024ull + 10) << 12, SMMU_ACC_WRITE, &t), -EACCES);
	assert_int_equal(smmu_vcpu_write(v, (1024ull + 10) << 12, &val, sizeof(val)), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), 1);
	assert_int_equal(bm[0], 1ull << 10);
	tl_assert_audit_clean(vm);

	/* Logging off again: -ENODATA. */
	assert_int_equal(smmu_memslot_set_flags(vm, 1, 0), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 1, bm, 4), -ENODATA);
	/* Created with logging on: the bitmap exists at once. */
	assert_int_equal(smmu_memslot_create(vm, 2, 4096, 64, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_guest_write_u64(vm, (4096ull + 63) << 12, 1), 0);
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 2, bm, 1), 1);
	assert_int_equal(bm[0], 1ull << 63);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* Dirty logging drops large sptes and write-protects the slot: writes fault again at 4K. */
static void test_dirty_log_forces_4k(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 4 * MB2_PAGES, 0), 0);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(v, MB2_PAGES << 12, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.level, SMMU_LEVEL_2M);
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.lpages, 1);
	assert_int_equal(smmu_memslot_set_flags(vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	assert_int_equal(c.lpages, 0);
	assert_int_equal(smmu_vcpu_enter(v), 0);
	assert_int_equal(smmu_vcpu_fault(v, (MB2_PAGES + 5) << 12, SMMU_ACC_WRITE, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(fi.level, SMMU_LEVEL_4K);
	uint64_t bm[32];
	assert_int_equal(smmu_memslot_get_dirty_log(vm, 0, bm, 32), 1);
	assert_int_equal(bm[(MB2_PAGES + 5) / 64], 1ull << ((MB2_PAGES + 5) % 64));
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* ---- lpage_info edge bits ------------------------------------------------------------------- */

static void test_lpage_edges(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	/* Not aligned to 2M on either end: [1, 1 + 2048). */
	assert_int_equal(smmu_memslot_create(vm, 0, 1, 2048, 0), 0);
	assert_int_equal(lpage(vm, 0, 1, SMMU_LEVEL_2M), 1);           /* first entry */
	assert_int_equal(lpage(vm, 0, 511, SMMU_LEVEL_2M), 1);
	assert_int_equal(lpage(vm, 0, 512, SMMU_LEVEL_2M), 0);         /* middle ones */
	assert_int_equal(lpage(vm, 0, 1024, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 0, 2047, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 0, 2048, SMMU_LEVEL_2M), 1);        /* last entry */
	assert_int_equal(lpage(vm, 0, 1, SMMU_LEVEL_1G), 1);           /* first = last */

	/* Aligned to 2M on both ends but not to 1G: [16 * 2M, 18 * 2M). */
	assert_int_equal(smmu_memslot_create(vm, 1, 16 * MB2_PAGES, 2 * MB2_PAGES, 0), 0);
	assert_int_equal(lpage(vm, 1, 16 * MB2_PAGES, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 1, 18 * MB2_PAGES - 1, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 1, 16 * MB2_PAGES, SMMU_LEVEL_1G), 1);

	/* Aligned start, unaligned end: first 0, last 1. */
	assert_int_equal(smmu_memslot_create(vm, 2, 32 * MB2_PAGES, 1000, 0), 0);
	assert_int_equal(lpage(vm, 2, 32 * MB2_PAGES, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 2, 32 * MB2_PAGES + 999, SMMU_LEVEL_2M), 1);
	/* Unaligned start, aligned end. */
	assert_int_equal(smmu_memslot_create(vm, 3, 48 * MB2_PAGES + 100, 2 * MB2_PAGES - 100, 0), 0);
	assert_int_equal(lpage(vm, 3, 48 * MB2_PAGES + 100, SMMU_LEVEL_2M), 1);
	assert_int_equal(lpage(vm, 3, 50 * MB2_PAGES - 1, SMMU_LEVEL_2M), 0);

	/* Aligned to 1G on both ends: every entry 0 at both levels. */
	assert_int_equal(smmu_memslot_create(vm, 4, GIB_PAGES, GIB_PAGES, 0), 0);
	assert_int_equal(lpage(vm, 4, GIB_PAGES, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 4, GIB_PAGES + GIB_PAGES / 2, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 4, 2 * GIB_PAGES - 1, SMMU_LEVEL_2M), 0);
	assert_int_equal(lpage(vm, 4, GIB_PAGES, SMMU_LEVEL_1G), 0);

	/* A single-page slot in the middle of a large page: 1 at both levels. */
	assert_int_equal(smmu_memslot_create(vm, 5, 3 * GIB_PAGES + 7, 1, 0), 0);
	assert_int_equal(lpage(vm, 5, 3 * GIB_PAGES + 7, SMMU_LEVEL_2M), 1);
	assert_int_equal(lpage(vm, 5, 3 * GIB_PAGES + 7, SMMU_LEVEL_1G), 1);

	/* A move to an unaligned base re-initialises the edge bits for the new alignment. */
	assert_int_equal(smmu_memslot_move(vm, 1, 40 * MB2_PAGES + 1), 0);
	assert_int_equal(lpage(vm, 1, 40 * MB2_PAGES + 1, SMMU_LEVEL_2M), 1);
	assert_int_equal(lpage(vm, 1, 42 * MB2_PAGES, SMMU_LEVEL_2M), 1);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_get_delete),
		cmocka_unit_test(test_page_budget_follows_slots),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_delete_move_flags_get_errors),
		cmocka_unit_test(test_move_keeps_contents),
		cmocka_unit_test(test_delete_unmaps),
		cmocka_unit_test(test_one_tib_slot),
		cmocka_unit_test(test_dirty_log),
		cmocka_unit_test(test_dirty_log_forces_4k),
		cmocka_unit_test(test_lpage_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
