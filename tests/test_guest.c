/*
 * Guest memory and guest page tables through the public API: smmu_guest_read/write across page
 * and slot boundaries and their errors; the page-table builder (smmu_gas_*) for 4K, 2M and 1G
 * leaves, permissions, alignment and canonical checks, pool exhaustion, table/leaf conflicts;
 * several address spaces; and the walk's per-level table gfns.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096ull
#define MB2 (2ull << 20)
#define GB1 (1ull << 30)

static void fill_pattern(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

/* A VM with slot 0 = [0, 64) and slot 1 = [64, 128) adjacent, a hole, slot 2 = [256, 272). */
static smmu_vm *three_slots(void)
{
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 64, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 1, 64, 64, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 2, 256, 16, 0), 0);
	return vm;
}

/* ---- guest memory ----------------------------------------------------------------------------- */

static void test_read_write_boundaries(void **state)
{
	(void)state;
	smmu_vm *vm = three_slots();
	uint8_t out[3 * PAGE], in[3 * PAGE];

	/* Within a page, across one page boundary, across two. */
	const struct { smmu_gpa_t gpa; size_t len; } cases[] = {
		{ 5 * PAGE + 10, 100 }, { 6 * PAGE - 50, 100 }, { 7 * PAGE - 1, 2 * PAGE + 2 },
		{ 0, PAGE }, { 63 * PAGE, PAGE },
		/* Across the boundary of the adjacent slots 0 and 1 (gfn 64). */
		{ 64 * PAGE - 300, 600 }, { 63 * PAGE + 1, 2 * PAGE },
		/* Unaligned 8-byte values. */
		{ 10 * PAGE + 3, 8 }, { 11 * PAGE - 4, 8 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fill_pattern(in, cases[k].len, (uint8_t)k);
		assert_int_equal(smmu_guest_write(vm, cases[k].gpa, in, cases[k].len), 0);
		memset(out, 0, sizeof(out));
		assert_int_equal(smmu_guest_read(vm, cases[k].gpa, out, cases[k].len), 0);
		assert_memory_equal(out, in, cases[k].len);
		/* The bytes landed in the backing of the slot that holds each gfn. */
		for (size_t off = 0; off < cases[k].len; off += 97) {
			smmu_gpa_t a = cases[k].gpa + off;
			uint8_t *h = smmu_gfn_to_hva(vm, a >> 12);
			assert_non_null(h);
			assert_int_equal(h[a & (PAGE - 1)], in[off]);
		}
	}
	/* The two slots have separate backings: the bytes around gfn 64 are in both. */
	struct smmu_memslot_info s0, s1;
	assert_int_equal(smmu_memslot_get(vm, 0, &s0), 0);
	assert_int_equal(smmu_memslot_get(vm, 1, &s1), 0);
	fill_pattern(in, 16, 0x40);
	assert_int_equal(smmu_guest_write(vm, 64 * PAGE - 8, in, 16), 0);
	assert_memory_equal((uint8_t *)s0.hva + 64 * PAGE - 8, in, 8);
	assert_memory_equal((uint8_t *)s1.hva, in + 8, 8);

	/* u64 helpers. */
	uint64_t x = 0;
	assert_int_equal(smmu_guest_write_u64(vm, 256 * PAGE + 8, 0xfeedfacecafebeefull), 0);
	assert_int_equal(smmu_guest_read_u64(vm, 256 * PAGE + 8, &x), 0);
	assert_int_equal(x, 0xfeedfacecafebeefull);
	/* Zero-length accesses are fine, even without a buffer. */
	assert_int_equal(smmu_guest_read(vm, 0, NULL, 0), 0);
	assert_int_equal(smmu_guest_write(vm, 0, NULL, 0), 0);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_efault_outside_slots(void **state)
{
	(void)state;
	smmu_vm *vm = three_slots();
	uint8_t in[64], out[64], zero[64] = { 0 };
	fill_pattern(in, sizeof(in), 9);
	/* Entirely in the hole, starting in a slot and running into the hole, and back. */
	assert_int_equal(smmu_guest_write(vm, 200 * PAGE, in, sizeof(in)), -EFAULT);
	assert_int_equal(smmu_guest_write(vm, 128 * PAGE - 32, in, sizeof(in)), -EFAULT);
	assert_int_equal(smmu_guest_write(vm, 256 * PAGE - 32, in, sizeof(in)), -EFAULT);
	assert_int_equal(smmu_guest_write(vm, 272 * PAGE - 32, in, sizeof(in)), -EFAULT);
	/* Nothing written: the in-slot halves are still zero. */
	assert_int_equal(smmu_guest_read(vm, 128 * PAGE - 32, out, 32), 0);
	assert_memory_equal(out, zero, 32);
	assert_int_equal(smmu_guest_read(vm, 256 * PAGE, out, 32), 0);
	assert_memory_equal(out, zero, 32);
	assert_int_equal(smmu_guest_read(vm, 272 * PAGE - 32, out, 32), 0);
	assert_memory_equal(out, zero, 32);
	/* Reads likewise, and nothing of the buffer is filled. */
	memset(out, 0xee, sizeof(out));
	assert_int_equal(smmu_guest_read(vm, 200 * PAGE, out, sizeof(out)), -EFAULT);
	assert_int_equal(smmu_guest_read(vm, 128 * PAGE - 32, out, sizeof(out)), -EFAULT);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xee);
	/* Far away and wrapping around the end of the address space. */
	assert_int_equal(smmu_guest_read(vm, 1ull << 52, out, 8), -EFAULT);
	assert_int_equal(smmu_guest_write(vm, UINT64_MAX - 3, in, 8), -EFAULT);
	assert_int_equal(smmu_guest_read(vm, UINT64_MAX - 3, out, 8), -EFAULT);
	uint64_t x;
	assert_int_equal(smmu_guest_read_u64(vm, 300 * PAGE, &x), -EFAULT);
	assert_int_equal(smmu_guest_write_u64(vm, 300 * PAGE, 1), -EFAULT);
	/* NULL. */
	assert_int_equal(smmu_guest_read(NULL, 0, out, 8), -EINVAL);
	assert_int_equal(smmu_guest_write(NULL, 0, in, 8), -EINVAL);
	assert_int_equal(smmu_guest_read(vm, 0, NULL, 8), -EINVAL);
	assert_int_equal(smmu_guest_write(vm, 0, NULL, 8), -EINVAL);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* A range that ends exactly at 2^64 (its end wraps to 0) or runs to the top of the space is
 * refused with -EFAULT, nothing read or written; a slot that ends at the top of the guest
 * physical space is read and written up to its last byte. (Repro guest_rw_end_of_space.c: the
 * bound gpa + len wrapped to 0, the slot check passed, and the copy took a NULL slot.) */
static void test_range_end_of_space(void **state)
{
	(void)state;
	smmu_vm *vm = three_slots();
	const smmu_gfn_t top = SMMU_MAX_GFN - 16;
	assert_int_equal(smmu_memslot_create(vm, 3, top, 16, 0), 0);
	static uint8_t page[PAGE], zero[PAGE];
	uint64_t x = 0x1234;
	memset(page, 0xee, sizeof(page));
	assert_int_equal(smmu_guest_read_u64(vm, 0xfffffffffffffff8ull, &x), -EFAULT);
	assert_int_equal(x, 0x1234);
	assert_int_equal(smmu_guest_write_u64(vm, 0xfffffffffffffff8ull, 42), -EFAULT);
	assert_int_equal(smmu_guest_read(vm, 0xfffffffffffff000ull, page, PAGE), -EFAULT);
	for (size_t i = 0; i < PAGE; i++)
		assert_int_equal(page[i], 0xee);
	assert_int_equal(smmu_guest_write(vm, 0xfffffffffffff000ull, page, PAGE), -EFAULT);
	assert_int_equal(smmu_guest_write(vm, 0xffffffffffffffffull, page, 1), -EFAULT);
	/* From the top slot's last page to 2^64: the slot holds the start, nothing the rest. */
	const smmu_gpa_t last = (SMMU_MAX_GFN << 12) - PAGE;
	assert_int_equal(smmu_guest_write(vm, last, page, (size_t)(0 - last)), -EFAULT);
	assert_int_equal(smmu_guest_read(vm, last, page, PAGE), 0);
	assert_memory_equal(page, zero, PAGE);
	/* The top slot itself, up to its last byte. */
	assert_int_equal(smmu_guest_write_u64(vm, (SMMU_MAX_GFN << 12) - 8, 0x5eed), 0);
	assert_int_equal(smmu_guest_read_u64(vm, (SMMU_MAX_GFN << 12) - 8, &x), 0);
	assert_int_equal(x, 0x5eed);
	assert_int_equal(smmu_guest_read(vm, last, page, PAGE), 0);
	assert_int_equal(smmu_guest_read(vm, (SMMU_MAX_GFN << 12) - 4, page, 8), -EFAULT);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_erofs(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16, 0), 0);
	assert_int_equal(smmu_memslot_create(vm, 1, 16, 16, SMMU_MEM_READONLY), 0);
	/* The read-only slot reads (zeros), refuses writes, and keeps its contents. */
	struct smmu_memslot_info ro;
	assert_int_equal(smmu_memslot_get(vm, 1, &ro), 0);
	((uint8_t *)ro.hva)[100] = 0x5a; /* the host may write its own memory */
	uint8_t b[32];
	assert_int_equal(smmu_guest_read(vm, 16 * PAGE + 100, b, 1), 0);
	assert_int_equal(b[0], 0x5a);
	memset(b, 0x11, sizeof(b));
	assert_int_equal(smmu_guest_write(vm, 16 * PAGE + 100, b, 1), -EROFS);
	assert_int_equal(((uint8_t *)ro.hva)[100], 0x5a);
	assert_int_equal(smmu_guest_write_u64(vm, 20 * PAGE, 7), -EROFS);
	/* A write spanning the writable slot and the read-only one writes nothing at all. */
	assert_int_equal(smmu_guest_write(vm, 16 * PAGE - 16, b, sizeof(b)), -EROFS);
	uint8_t out[16], zero[16] = { 0 };
	assert_int_equal(smmu_guest_read(vm, 16 * PAGE - 16, out, 16), 0);
	assert_memory_equal(out, zero, 16);
	/* The page-table builder writes its pool: a pool in the read-only slot, or reaching into
	 * it, is refused whole, and *out is left alone. */
	smmu_gas *gas = NULL;
	assert_int_equal(smmu_gas_create(vm, 16, 4, &gas), -EROFS);
	assert_int_equal(smmu_gas_create(vm, 12, 8, &gas), -EROFS);
	assert_null(gas);
	/* A vCPU write to it is MMIO; a read maps it. */
	assert_int_equal(smmu_gas_create(vm, 1, 8, &gas), 0);
	assert_int_equal(smmu_gas_map(gas, 0x1000000, 16, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	assert_int_equal(smmu_vcpu_set_cr3(v, smmu_gas_cr3(gas)), 0);
	assert_int_equal(smmu_vcpu_fault(v, 0x1000000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MMIO);
	assert_int_equal(smmu_vcpu_read(v, 0x1000000 + 100, out, 1), 0);
	assert_int_equal(out[0], 0x5a);
	assert_int_equal(smmu_vcpu_write(v, 0x1000000 + 100, b, 1), -EFAULT);
	assert_int_equal(((uint8_t *)ro.hva)[100], 0x5a);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

/* ---- the page-table builder and the walk ---------------------------------------------------- */

#define POOL 2048ull /* pool gfn in test_gas_* guests */

static smmu_vm *gas_vm(smmu_gas **gas, uint64_t pool_pages)
{
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	/* 2 GiB: room for a 1G-aligned gfn. */
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 2 * (GB1 / PAGE), 0), 0);
	/* Garbage where the root will be: create must zero it. */
	assert_int_equal(smmu_guest_write_u64(vm, POOL * PAGE + 8, 0xdeadbeefull | 1), 0);
	assert_int_equal(smmu_gas_create(vm, POOL, pool_pages, gas), 0);
	uint64_t x = 1;
	assert_int_equal(smmu_guest_read_u64(vm, POOL * PAGE + 8, &x), 0);
	assert_int_equal(x, 0);
	assert_int_equal(smmu_gas_cr3(*gas), POOL * PAGE);
	return vm;
}

static void test_gas_map_levels(void **state)
{
	(void)state;
	smmu_gas *gas;
	smmu_vm *vm = gas_vm(&gas, 64);
	const smmu_gpa_t cr3 = smmu_gas_cr3(gas);
	struct smmu_guest_walk w;

	/* 4K: tables are taken from the pool in order (root = POOL, then POOL+1..+3). */
	assert_int_equal(smmu_gas_map(gas, 0x7f0000201000ull, 100, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x7f0000201000ull, &w), 0);
	assert_int_equal(w.gfn, 100);
	assert_int_equal(w.level, SMMU_LEVEL_4K);
	assert_int_equal(w.access, SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC);
	assert_true(w.pte & SMMU_PTE_PRESENT);
	assert_int_equal((w.pte & SMMU_PTE_ADDR_MASK) >> 12, 100);
	assert_int_equal(w.table_gfn[3], POOL);
	assert_int_equal(w.table_gfn[2], POOL + 1);
	assert_int_equal(w.table_gfn[1], POOL + 2);
	assert_int_equal(w.table_gfn[0], POOL + 3);
	/* The byte offset inside the page does not matter for the walk. */
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x7f0000201fffull, &w), 0);
	assert_int_equal(w.gfn, 100);
	/* The entries really are in guest memory where the walk says. */
	uint64_t e;
	assert_int_equal(smmu_guest_read_u64(vm, (POOL + 3) * PAGE + ((0x7f0000201000ull >> 12) & 511) * 8, &e), 0);
	assert_int_equal(e, w.pte);
	/* A neighbour in the same table uses no new table. */
	assert_int_equal(smmu_gas_map(gas, 0x7f0000202000ull, 101, SMMU_LEVEL_4K, 0), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x7f0000202000ull, &w), 0);
	assert_int_equal(w.table_gfn[0], POOL + 3);
	assert_int_equal(w.access, SMMU_ACC_EXEC); /* read-only, supervisor */

	/* 2M: a leaf at level 2; the 4K frame inside it follows the gva. */
	assert_int_equal(smmu_gas_map(gas, 0x40000000ull + MB2, 1024, SMMU_LEVEL_2M, SMMU_PROT_WRITE | SMMU_PROT_NOEXEC), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x40000000ull + MB2 + 5 * PAGE + 3, &w), 0);
	assert_int_equal(w.level, SMMU_LEVEL_2M);
	assert_int_equal(w.gfn, 1024 + 5);
	assert_int_equal(w.access, SMMU_ACC_WRITE);
	assert_true(w.pte & SMMU_PTE_LARGE);
	assert_true(w.pte & SMMU_PTE_NX);
	assert_int_equal(w.table_gfn[3], POOL);
	assert_int_equal(w.table_gfn[2], POOL + 4);
	assert_int_equal(w.table_gfn[1], POOL + 5);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x40000000ull + 2 * MB2 - 1, &w), 0);
	assert_int_equal(w.gfn, 1024 + 511);

	/* 1G: a leaf at level 3. */
	assert_int_equal(smmu_gas_map(gas, 0x8000000000ull, GB1 / PAGE, SMMU_LEVEL_1G, SMMU_PROT_USER), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x8000000000ull + 3 * MB2 + 7 * PAGE, &w), 0);
	assert_int_equal(w.level, SMMU_LEVEL_1G);
	assert_int_equal(w.gfn, GB1 / PAGE + 3 * 512 + 7);
	assert_int_equal(w.access, SMMU_ACC_USER | SMMU_ACC_EXEC);
	assert_int_equal(w.table_gfn[3], POOL);
	assert_int_equal(w.table_gfn[2], POOL + 6);

	/* Every combination of protections. */
	for (uint32_t prot = 0; prot < 8; prot++) {
		smmu_gva_t gva = 0x10000000ull + prot * PAGE;
		assert_int_equal(smmu_gas_map(gas, gva, 200 + prot, SMMU_LEVEL_4K, prot), 0);
		assert_int_equal(smmu_guest_walk(vm, cr3, gva, &w), 0);
		uint32_t want = ((prot & SMMU_PROT_WRITE) ? SMMU_ACC_WRITE : 0) |
				((prot & SMMU_PROT_USER) ? SMMU_ACC_USER : 0) |
				((prot & SMMU_PROT_NOEXEC) ? 0 : SMMU_ACC_EXEC);
		assert_int_equal(w.access, want);
		assert_int_equal(!!(w.pte & SMMU_PTE_WRITABLE), !!(prot & SMMU_PROT_WRITE));
		assert_int_equal(!!(w.pte & SMMU_PTE_USER), !!(prot & SMMU_PROT_USER));
		assert_int_equal(!!(w.pte & SMMU_PTE_NX), !!(prot & SMMU_PROT_NOEXEC));
	}
	/* Replacing a leaf: the walk sees the new frame and protection. */
	assert_int_equal(smmu_gas_map(gas, 0x10000000ull, 300, SMMU_LEVEL_4K, SMMU_PROT_USER), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x10000000ull, &w), 0);
	assert_int_equal(w.gfn, 300);
	assert_int_equal(w.access, SMMU_ACC_USER | SMMU_ACC_EXEC);
	/* The upper half of the canonical space works too. */
	assert_int_equal(smmu_gas_map(gas, 0xffff800000000000ull, 5, SMMU_LEVEL_4K, 0), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0xffff800000000000ull, &w), 0);
	assert_int_equal(w.gfn, 5);
	tl_assert_audit_clean(vm);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

static void test_gas_map_errors(void **state)
{
	(void)state;
	smmu_gas *gas;
	smmu_vm *vm = gas_vm(&gas, 64);
	const smmu_gpa_t cr3 = smmu_gas_cr3(gas);
	struct smmu_guest_walk w;
	/* Misaligned gva for the level. */
	assert_int_equal(smmu_gas_map(gas, 0x1000ull + 8, 1, SMMU_LEVEL_4K, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, 0x1000ull + 0x800, 1, SMMU_LEVEL_4K, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, MB2 + PAGE, 512, SMMU_LEVEL_2M, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, GB1 + MB2, GB1 / PAGE, SMMU_LEVEL_1G, 0), -EINVAL);
	/* Misaligned gfn for the level. */
	assert_int_equal(smmu_gas_map(gas, MB2, 513, SMMU_LEVEL_2M, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, GB1, 512, SMMU_LEVEL_1G, 0), -EINVAL);
	/* Non-canonical. */
	assert_int_equal(smmu_gas_map(gas, 0x0000800000000000ull, 1, SMMU_LEVEL_4K, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, 0xfff0000000000000ull, 1, SMMU_LEVEL_4K, 0), -EINVAL);
	assert_int_equal(smmu_gas_unmap(gas, 0x0000800000000000ull), -EINVAL);
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x0000800000000000ull, &w), -EINVAL);
	/* Bad level, unknown prot bits. */
	assert_int_equal(smmu_gas_map(gas, 0, 1, 0, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, 0, 1, 4, 0), -EINVAL);
	assert_int_equal(smmu_gas_map(gas, 0, 1, SMMU_LEVEL_4K, 1u << 3), -EINVAL);
	/* None of these built anything: the root is still empty. */
	for (int i = 0; i < 512; i++) {
		uint64_t e = 1;
		assert_int_equal(smmu_guest_read_u64(vm, POOL * PAGE + (uint64_t)i * 8, &e), 0);
		assert_int_equal(e, 0);
	}

	/* Large leaf over a table: a 4K leaf in a 2M region, then a 2M leaf there. */
	assert_int_equal(smmu_gas_map(gas, 4 * MB2 + PAGE, 7, SMMU_LEVEL_4K, 0), 0);
	assert_int_equal(smmu_gas_map(gas, 4 * MB2, 1024, SMMU_LEVEL_2M, 0), -EEXIST);
	/* ... and a 1G leaf over the level-2 table. */
	assert_int_equal(smmu_gas_map(gas, 0, 0, SMMU_LEVEL_1G, 0), -EEXIST);
	/* The 4K mapping is intact. */
	assert_int_equal(smmu_guest_walk(vm, cr3, 4 * MB2 + PAGE, &w), 0);
	assert_int_equal(w.gfn, 7);
	/* A larger leaf covering the gva: 4K and 2M under a 2M / 1G leaf. */
	assert_int_equal(smmu_gas_map(gas, 8 * MB2, 2048, SMMU_LEVEL_2M, 0), 0);
	assert_int_equal(smmu_gas_map(gas, 8 * MB2 + 3 * PAGE, 9, SMMU_LEVEL_4K, 0), -EEXIST);
	assert_int_equal(smmu_gas_map(gas, 2 * GB1, GB1 / PAGE, SMMU_LEVEL_1G, 0), 0);
	assert_int_equal(smmu_gas_map(gas, 2 * GB1 + MB2, 512, SMMU_LEVEL_2M, 0), -EEXIST);
	assert_int_equal(smmu_gas_map(gas, 2 * GB1 + PAGE, 1, SMMU_LEVEL_4K, 0), -EEXIST);
	/* A 2M leaf may replace a 2M leaf. */
	assert_int_equal(smmu_gas_map(gas, 8 * MB2, 4096, SMMU_LEVEL_2M, 0), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 8 * MB2, &w), 0);
	assert_int_equal(w.gfn, 4096);

	/* Unmap of nothing; unmap, then nothing again. */
	assert_int_equal(smmu_gas_unmap(gas, 0x300000000ull), -ENOENT);
	assert_int_equal(smmu_gas_unmap(gas, 4 * MB2 + 2 * PAGE), -ENOENT); /* table there, no leaf */
	assert_int_equal(smmu_gas_unmap(gas, 4 * MB2 + PAGE), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 4 * MB2 + PAGE, &w), -ENOENT);
	assert_int_equal(w.level, SMMU_LEVEL_4K); /* present down to the level-1 table */
	assert_int_equal(smmu_gas_unmap(gas, 4 * MB2 + PAGE), -ENOENT);
	/* Unmapping a large leaf, through any address inside it. */
	assert_int_equal(smmu_gas_unmap(gas, 8 * MB2 + 77 * PAGE), 0);
	assert_int_equal(smmu_guest_walk(vm, cr3, 8 * MB2, &w), -ENOENT);
	assert_int_equal(w.level, SMMU_LEVEL_2M);
	/* Not present at the root. */
	assert_int_equal(smmu_guest_walk(vm, cr3, 0x7f0000000000ull, &w), -ENOENT);
	assert_int_equal(w.level, 4);
	assert_int_equal(w.table_gfn[3], POOL);
	/* A walk from a CR3 in no slot. */
	assert_int_equal(smmu_guest_walk(vm, 8ull * GB1, 0, &w), -EFAULT);
	tl_assert_audit_clean(vm);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

static void test_gas_pool_exhaustion(void **state)
{
	(void)state;
	smmu_gas *gas;
	smmu_vm *vm = gas_vm(&gas, 4); /* the root and three tables: one 4K path */
	assert_int_equal(smmu_gas_map(gas, 0x1000, 1, SMMU_LEVEL_4K, 0), 0);
	assert_int_equal(smmu_gas_map(gas, 0x2000, 2, SMMU_LEVEL_4K, 0), 0); /* same tables */
	/* Another 2M region needs a new level-1 table: the pool is used up. */
	assert_int_equal(smmu_gas_map(gas, MB2, 3, SMMU_LEVEL_4K, 0), -ENOSPC);
	assert_int_equal(smmu_gas_map(gas, 1ull << 39, 3, SMMU_LEVEL_4K, 0), -ENOSPC);
	/* A 2M leaf needs no new table there. */
	assert_int_equal(smmu_gas_map(gas, MB2, 512, SMMU_LEVEL_2M, 0), 0);
	/* What was mapped still walks; nothing beyond the pool was written. */
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(vm, smmu_gas_cr3(gas), 0x2000, &w), 0);
	assert_int_equal(w.gfn, 2);
	uint64_t e = 1;
	for (int i = 0; i < 512; i++) {
		assert_int_equal(smmu_guest_read_u64(vm, (POOL + 4) * PAGE + (uint64_t)i * 8, &e), 0);
		assert_int_equal(e, 0);
	}
	tl_assert_audit_clean(vm);
	smmu_gas_destroy(gas);

	/* A pool in no slot, or partly outside one. */
	assert_int_equal(smmu_gas_create(vm, 1ull << 30, 4, &gas), -EFAULT);
	assert_int_equal(smmu_gas_create(vm, 2 * (GB1 / PAGE) - 2, 4, &gas), -EFAULT);
	smmu_vm_destroy(vm);
}

static void test_several_address_spaces(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, 1024, 16);
	smmu_gas *b;
	assert_int_equal(smmu_gas_create(g.vm, 2048, 16, &b), 0);
	assert_int_not_equal(smmu_gas_cr3(b), smmu_gas_cr3(g.gas));
	const smmu_gva_t X = 0x400000;
	assert_int_equal(smmu_gas_map(g.gas, X, 10, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_gas_map(b, X, 20, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	struct smmu_guest_walk wa, wb;
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(g.gas), X, &wa), 0);
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(b), X, &wb), 0);
	assert_int_equal(wa.gfn, 10);
	assert_int_equal(wb.gfn, 20);
	for (int l = 0; l < 4; l++)
		assert_int_not_equal(wa.table_gfn[l], wb.table_gfn[l]);
	assert_int_equal(wa.table_gfn[3], 1024);
	assert_int_equal(wb.table_gfn[3], 2048);
	assert_int_equal(smmu_guest_write_u64(g.vm, 10 * PAGE, 0xaaaa), 0);
	assert_int_equal(smmu_guest_write_u64(g.vm, 20 * PAGE, 0xbbbb), 0);
	/* The vCPU sees each address space's frame under its CR3. */
	uint64_t x = 0;
	assert_int_equal(smmu_vcpu_read(g.vcpu, X, &x, sizeof(x)), 0);
	assert_int_equal(x, 0xaaaa);
	assert_int_equal(smmu_vcpu_set_cr3(g.vcpu, smmu_gas_cr3(b)), 0);
	assert_int_equal(smmu_vcpu_read(g.vcpu, X, &x, sizeof(x)), 0);
	assert_int_equal(x, 0xbbbb);
	/* Writing through B lands in gfn 20 only. */
	uint64_t y = 0xcccc;
	assert_int_equal(smmu_vcpu_write(g.vcpu, X, &y, sizeof(y)), 0);
	assert_int_equal(smmu_guest_read_u64(g.vm, 20 * PAGE, &x), 0);
	assert_int_equal(x, 0xcccc);
	assert_int_equal(smmu_guest_read_u64(g.vm, 10 * PAGE, &x), 0);
	assert_int_equal(x, 0xaaaa);
	tl_assert_audit_clean(g.vm);
	/* Back to A. */
	assert_int_equal(smmu_vcpu_set_cr3(g.vcpu, smmu_gas_cr3(g.gas)), 0);
	assert_int_equal(smmu_vcpu_read(g.vcpu, X, &x, sizeof(x)), 0);
	assert_int_equal(x, 0xaaaa);
	/* Unmapping in A leaves B's mapping. */
	assert_int_equal(smmu_gas_unmap(g.gas, X), 0);
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(g.gas), X, &wa), -ENOENT);
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(b), X, &wb), 0);
	assert_int_equal(wb.gfn, 20);
	assert_int_equal(smmu_vcpu_read(g.vcpu, X, &x, sizeof(x)), -EFAULT);
	tl_assert_audit_clean(g.vm);
	smmu_gas_destroy(b);
	tl_guest_fini(&g);
}

/* Writes to guest page tables go through the trapping path: a shadowed mapping changes. */
static void test_remap_is_trapped(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, 1024, 16);
	assert_int_equal(smmu_guest_write_u64(g.vm, 30 * PAGE, 30), 0);
	assert_int_equal(smmu_guest_write_u64(g.vm, 31 * PAGE, 31), 0);
	assert_int_equal(smmu_gas_map(g.gas, 0x800000, 30, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	uint64_t x = 0;
	assert_int_equal(smmu_vcpu_read(g.vcpu, 0x800000, &x, sizeof(x)), 0);
	assert_int_equal(x, 30);
	struct smmu_vm_counters c0, c1;
	assert_int_equal(smmu_vm_get_counters(g.vm, &c0), 0);
	assert_int_equal(smmu_gas_map(g.gas, 0x800000, 31, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_vm_get_counters(g.vm, &c1), 0);
	assert_true(c1.pte_writes > c0.pte_writes);
	assert_int_equal(smmu_vcpu_read(g.vcpu, 0x800000, &x, sizeof(x)), 0);
	assert_int_equal(x, 31);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_write_boundaries),
		cmocka_unit_test(test_efault_outside_slots),
		cmocka_unit_test(test_range_end_of_space),
		cmocka_unit_test(test_erofs),
		cmocka_unit_test(test_gas_map_levels),
		cmocka_unit_test(test_gas_map_errors),
		cmocka_unit_test(test_gas_pool_exhaustion),
		cmocka_unit_test(test_several_address_spaces),
		cmocka_unit_test(test_remap_is_trapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
