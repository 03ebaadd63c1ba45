/*
 * Allocation failure at every point of a scenario that touches every path: VM creation, slots,
 * guest address spaces, vCPUs, shadow and direct faults, guest page-table writes, every zap and
 * flush strategy, dirty logging, the MMU notifier, the page limit, the audit, teardown.
 *
 * The scenario runs once without failures to count its allocations (smmu_alloc_calls()), then
 * once for every n from 1 to that count with allocation n and every later one failing
 * (smmu_alloc_fail_after(n), src/alloc.h). Every call must return 0, an outcome, or -ENOMEM;
 * any other error fails the test. Once the scenario is over, failures are turned off, every
 * vCPU processes its requests, the audit must be clean, and everything is destroyed: run under
 * ASan/LSan (CI) or valgrind (SMMU_ALLOC_FAIL_ONLY=n or SMMU_ALLOC_FAIL_STEP=k select points)
 * to see that nothing leaks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* ---- checking return values -------------------------------------------------------------- */

static uint64_t cur_n; /* the failure point being tried, for messages */

static long check_(long r, bool outcome_ok, const char *what, int line)
{
	if (r == 0 || r == -ENOMEM || (outcome_ok && r > 0))
		return r;
	fail_msg("fail point %llu: line %d: %s returned %ld (only 0%s or -ENOMEM allowed)",
		 (unsigned long long)cur_n, line, what, r, outcome_ok ? ", a count/outcome" : "");
	return r;
}
/* 0 or -ENOMEM. */
#define OK(expr) check_((long)(expr), false, #expr, __LINE__)
/* 0, a non-negative outcome/count, or -ENOMEM. */
#define OUT(expr) check_((long)(expr), true, #expr, __LINE__)

/* An audit in the middle of the scenario, with failures armed: clean, or -ENOMEM. */
static void mid_audit(smmu_vm *vm)
{
	struct smmu_violation v[8];
	struct smmu_audit_report r = { .v = v, .cap = 8 };
	long n = smmu_audit(vm, &r);
	if (n > 0) {
		printf("fail point %llu: audit found %ld violations:\n", (unsigned long long)cur_n, n);
		smmu_audit_print(stdout, &r);
	}
	OK(n);
}

/* ---- the scenario ------------------------------------------------------------------------ */

#define SLOT0_PAGES 1024ull   /* two 2 MiB large pages */
#define SLOT1_BASE 1024ull
#define SLOT1_PAGES 512ull
#define POOL_GFN 64ull
#define POOL_PAGES 32ull
#define DATA_GFN 300ull
#define DATA_GVA 0x400000ull
#define NDATA 6
#define LARGE_GVA 0x40000000ull /* a guest 2M leaf onto gfn 512 */
#define PT_GVA 0x80000000ull    /* the guest's own root table, mapped: writes are emulated */
#define SLOT1_GVA 0xc0000000ull

struct shadow_state {
	smmu_vm *vm;
	bool slot0, slot1, slot1_logging;
	smmu_gfn_t slot1_base;
	smmu_gas *gas;
	smmu_vcpu *v[2];
};

static void fault_all(struct shadow_state *s, int vi, uint32_t access)
{
	if (!s->v[vi] || !s->gas)
		return;
	for (int i = 0; i < NDATA; i++)
		OUT(smmu_vcpu_fault(s->v[vi], DATA_GVA + (uint64_t)i * SMMU_PAGE_SIZE, access, NULL));
	OUT(smmu_vcpu_fault(s->v[vi], LARGE_GVA + 5 * SMMU_PAGE_SIZE, access, NULL));
	OUT(smmu_vcpu_fault(s->v[vi], SLOT1_GVA, access, NULL));
}

static void shadow_scenario(struct shadow_state *s)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.hash_buckets = 64;
	cfg.tlb_sets = 4;
	if (OK(smmu_vm_create(&cfg, &s->vm)))
		return;
	smmu_vm *vm = s->vm;
	s->slot0 = OK(smmu_memslot_create(vm, 0, 0, SLOT0_PAGES, 0)) == 0;
	s->slot1_base = SLOT1_BASE;
	s->slot1 = OK(smmu_memslot_create(vm, 1, SLOT1_BASE, SLOT1_PAGES, SMMU_MEM_LOG_DIRTY_PAGES)) == 0;
	s->slot1_logging = s->slot1;
	if (s->slot0)
		OK(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &s->gas));
	for (int i = 0; i < 2; i++) {
		if (OK(smmu_vcpu_create(vm, &s->v[i])))
			s->v[i] = NULL;
		if (s->v[i] && s->gas)
			OK(smmu_vcpu_set_cr3(s->v[i], smmu_gas_cr3(s->gas)));
	}
	if (s->gas) {
		for (int i = 0; i < NDATA; i++)
			OK(smmu_gas_map(s->gas, DATA_GVA + (uint64_t)i * SMMU_PAGE_SIZE, DATA_GFN + (uint64_t)i,
					SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER));
		OK(smmu_gas_map(s->gas, LARGE_GVA, 512, SMMU_LEVEL_2M, SMMU_PROT_WRITE | SMMU_PROT_USER));
		OK(smmu_gas_map(s->gas, PT_GVA, POOL_GFN, SMMU_LEVEL_4K, SMMU_PROT_WRITE));
		OK(smmu_gas_map(s->gas, SLOT1_GVA, SLOT1_BASE + 3, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER));
	}

	/* Faults, reads and writes: shadow pages, rmaps, descriptors, TLB fills. */
	fault_all(s, 0, SMMU_ACC_WRITE | SMMU_ACC_USER);
	fault_all(s, 1, 0);
	if (s->v[0] && s->gas) {
		uint64_t x = 0x5a5a, y;
		OK(smmu_vcpu_write(s->v[0], DATA_GVA + 16, &x, sizeof(x)));
		OK(smmu_vcpu_read(s->v[0], DATA_GVA + 16, &y, sizeof(y)));
		OK(smmu_vcpu_read(s->v[0], LARGE_GVA + 8192, &y, sizeof(y)));
		/* A store into the guest's own root table through the vCPU: emulated, trapped. */
		uint64_t zero = 0;
		OK(smmu_vcpu_write(s->v[0], PT_GVA + 500 * 8, &zero, sizeof(zero)));
		struct smmu_translation t;
		long r = smmu_vcpu_translate(s->v[0], DATA_GVA, 0, &t);
		if (r != 0 && r != -EFAULT)
			fail_msg("fail point %llu: translate returned %ld", (unsigned long long)cur_n, r);
	}
	/* A raw guest store to a shadowed table: rewrite the root's first entry with itself. */
	if (s->gas) {
		uint64_t e;
		if (OK(smmu_guest_read_u64(vm, POOL_GFN << SMMU_PAGE_SHIFT, &e)) == 0)
			OK(smmu_guest_write_u64(vm, POOL_GFN << SMMU_PAGE_SHIFT, e));
		/* Unmap and remap a data page: trapped writes zap its spte. */
		OK(smmu_gas_unmap(s->gas, DATA_GVA));
		OK(smmu_gas_map(s->gas, DATA_GVA, DATA_GFN + 20, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER));
	}
	mid_audit(vm);

	/* Every zap, each followed by faults that rebuild. */
	struct smmu_zap_report rep;
	OK(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &rep));
	fault_all(s, 0, SMMU_ACC_WRITE);
	long r = smmu_zap_all(vm, SMMU_ZAP_RESTART, 100, &rep);
	if (r != 0)
		fail_msg("fail point %llu: zap_all(restart) without contention returned %ld", (unsigned long long)cur_n, r);
	fault_all(s, 1, SMMU_ACC_WRITE);
	OK(smmu_zap_all(vm, SMMU_ZAP_GENERATION, 0, &rep));
	fault_all(s, 0, 0);
	OK(smmu_fast_zap(vm, &rep));
	fault_all(s, 0, SMMU_ACC_WRITE);
	OK(smmu_fast_zap_bump(vm, &rep));
	fault_all(s, 1, SMMU_ACC_WRITE);
	OK(smmu_fast_zap_drain(vm, &rep));
	static const enum smmu_flush_strategy strategies[] = { SMMU_FLUSH_ZAP_ALL, SMMU_FLUSH_FAST_ZAP,
							      SMMU_FLUSH_HASH_WALK, SMMU_FLUSH_RMAP_REBUILD };
	for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
		fault_all(s, (int)(i & 1), SMMU_ACC_WRITE | SMMU_ACC_USER);
		if (s->slot0)
			OK(smmu_memslot_flush(vm, 0, strategies[i], &rep));
	}
	fault_all(s, 0, SMMU_ACC_WRITE);

	/* The MMU notifier over slot 0's data frames. */
	struct smmu_memslot_info info;
	if (s->slot0 && OK(smmu_memslot_get(vm, 0, &info)) == 0) {
		const uint8_t *b = (const uint8_t *)info.hva + DATA_GFN * SMMU_PAGE_SIZE;
		OUT(smmu_mmu_notifier_invalidate_range(vm, b, b + NDATA * SMMU_PAGE_SIZE));
	}

	/* Dirty logging on slot 1: read the log, turn it off and on again (allocates the bitmap). */
	uint64_t bm[SLOT1_PAGES / 64];
	if (s->slot1) {
		long d = smmu_memslot_get_dirty_log(vm, 1, bm, SLOT1_PAGES / 64);
		if (!(d >= 0 || (d == -ENODATA && !s->slot1_logging)))
			fail_msg("fail point %llu: get_dirty_log returned %ld", (unsigned long long)cur_n, d);
		if (OK(smmu_memslot_set_flags(vm, 1, 0)) == 0)
			s->slot1_logging = false;
		if (OK(smmu_memslot_set_flags(vm, 1, SMMU_MEM_LOG_DIRTY_PAGES)) == 0)
			s->slot1_logging = true;
		fault_all(s, 0, SMMU_ACC_WRITE | SMMU_ACC_USER);
		d = smmu_memslot_get_dirty_log(vm, 1, bm, SLOT1_PAGES / 64);
		if (!(d >= 0 || (d == -ENODATA && !s->slot1_logging)))
			fail_msg("fail point %llu: get_dirty_log returned %ld", (unsigned long long)cur_n, d);
	}

	/* The page limit: reclaim on the next faults, then a budget again. */
	OK(smmu_vm_set_max_mmu_pages(vm, 6));
	fault_all(s, 1, SMMU_ACC_WRITE);
	fault_all(s, 0, SMMU_ACC_WRITE);
	OK(smmu_vm_set_max_mmu_pages(vm, 500));

	/* Slot lifecycle: move slot 1 (allocates new rmaps/lpage_info), delete, recreate. */
	if (s->slot1) {
		OK(smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_HASH_WALK));
		if (OK(smmu_memslot_move(vm, 1, 4096)) == 0)
			s->slot1_base = 4096;
		fault_all(s, 0, SMMU_ACC_WRITE);
		OK(smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_FAST_ZAP));
		if (OK(smmu_memslot_move(vm, 1, SLOT1_BASE)) == 0)
			s->slot1_base = SLOT1_BASE;
		fault_all(s, 1, SMMU_ACC_WRITE);
		OK(smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_RMAP_REBUILD));
		OK(smmu_memslot_delete(vm, 1));
		s->slot1 = false;
		fault_all(s, 0, SMMU_ACC_WRITE); /* MMIO now */
		OK(smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_ZAP_ALL));
		s->slot1 = OK(smmu_memslot_create(vm, 1, SLOT1_BASE, SLOT1_PAGES, 0)) == 0;
		s->slot1_logging = false;
		fault_all(s, 0, SMMU_ACC_WRITE);
	}

	/* The strategy primitives: reclaim the oldest page by hand. */
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	struct smmu_invalid_list list;
	smmu_invalid_list_init(&list);
	smmu_zap_oldest(vm, &list);
	smmu_commit_zap(vm, &list);
	smmu_mmu_unlock(vm);

	struct smmu_floor fl;
	OK(smmu_measure_floor(vm, &fl));
	mid_audit(vm);

	/* One vCPU goes away while its root is zapped, the other reloads CR3 and keeps going. */
	OK(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &rep));
	smmu_vcpu_destroy(s->v[1]);
	s->v[1] = NULL;
	if (s->v[0] && s->gas) {
		OK(smmu_vcpu_enter(s->v[0]));
		OK(smmu_vcpu_set_cr3(s->v[0], smmu_gas_cr3(s->gas)));
	}
	fault_all(s, 0, SMMU_ACC_WRITE);
	OK(smmu_mmu_notifier_release(vm));
	fault_all(s, 0, 0);
}

struct direct_state {
	smmu_vm *vm;
	bool slot0, slot1, logging;
	smmu_vcpu *v;
};

static void direct_faults(struct direct_state *d, uint32_t access)
{
	if (!d->v)
		return;
	static const smmu_gfn_t gfns[] = { 0, 5, 600, 1023, 1030, 2047, 4000 /* MMIO */ };
	for (size_t i = 0; i < sizeof(gfns) / sizeof(gfns[0]); i++)
		OUT(smmu_vcpu_fault(d->v, gfns[i] << SMMU_PAGE_SHIFT, access, NULL));
}

static void direct_scenario(struct direct_state *d)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_DIRECT;
	cfg.hash_buckets = 64;
	if (OK(smmu_vm_create(&cfg, &d->vm)))
		return;
	smmu_vm *vm = d->vm;
	d->slot0 = OK(smmu_memslot_create(vm, 0, 0, 1024, 0)) == 0;
	d->slot1 = OK(smmu_memslot_create(vm, 1, 1024, 1024, 0)) == 0;
	if (OK(smmu_vcpu_create(vm, &d->v)))
		d->v = NULL;
	if (d->v)
		OK(smmu_vcpu_set_cr3(d->v, 0));
	direct_faults(d, SMMU_ACC_WRITE);
	if (d->v) {
		uint64_t x = 7;
		OK(smmu_vcpu_write(d->v, 600 * SMMU_PAGE_SIZE + 8, &x, sizeof(x)));
		OK(smmu_vcpu_read(d->v, 1030 * SMMU_PAGE_SIZE + 8, &x, sizeof(x)));
	}
	if (d->slot1) {
		d->logging = OK(smmu_memslot_set_flags(vm, 1, SMMU_MEM_LOG_DIRTY_PAGES)) == 0;
		direct_faults(d, SMMU_ACC_WRITE);
		uint64_t bm[1024 / 64];
		long r = smmu_memslot_get_dirty_log(vm, 1, bm, 1024 / 64);
		if (!(r >= 0 || (r == -ENODATA && !d->logging)))
			fail_msg("fail point %llu: direct get_dirty_log returned %ld", (unsigned long long)cur_n, r);
	}
	struct smmu_zap_report rep;
	OK(smmu_fast_zap(vm, &rep));
	direct_faults(d, 0);
	if (d->slot0)
		OK(smmu_memslot_flush(vm, 0, SMMU_FLUSH_HASH_WALK, &rep));
	struct smmu_memslot_info info;
	if (d->slot1 && OK(smmu_memslot_get(vm, 1, &info)) == 0)
		OUT(smmu_mmu_notifier_invalidate_range(vm, info.hva, (uint8_t *)info.hva + 64 * SMMU_PAGE_SIZE));
	direct_faults(d, SMMU_ACC_WRITE);
	mid_audit(vm);
	if (d->slot1) {
		OK(smmu_memslot_delete(vm, 1));
		d->slot1 = false;
	}
	direct_faults(d, SMMU_ACC_WRITE);
}

/* After the scenario: failures off, requests processed, audit clean, everything destroyed. */
static void finish(struct shadow_state *s, struct direct_state *d)
{
	smmu_alloc_fail_after(0);
	if (s->vm) {
		for (int i = 0; i < 2; i++)
			if (s->v[i])
				assert_int_equal(smmu_vcpu_enter(s->v[i]), 0);
		tl_assert_audit_clean(s->vm);
		for (int i = 0; i < 2; i++)
			smmu_vcpu_destroy(s->v[i]);
		smmu_gas_destroy(s->gas);
		smmu_vm_destroy(s->vm);
	}
	if (d->vm) {
		if (d->v)
			assert_int_equal(smmu_vcpu_enter(d->v), 0);
		tl_assert_audit_clean(d->vm);
		smmu_vcpu_destroy(d->v);
		smmu_vm_destroy(d->vm);
	}
}

/* One run with failures from allocation @n on (0: none). Returns whether a failure was injected. */
static bool run_scenario(uint64_t n)
{
	struct shadow_state s;
	struct direct_state d;
	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	cur_n = n;
	smmu_alloc_fail_after(n);
	shadow_scenario(&s);
	direct_scenario(&d);
	bool injected = smmu_alloc_injected() != 0;
	finish(&s, &d);
	return injected;
}

/* Mapped virtual memory of the process (kB): slot backings and table chunks are mmap()ed, which
 * LSan and valgrind do not track, so a leaked one shows here. */
static long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void test_every_failure_point(void **state)
{
	(void)state;
	/* The reference run: how many allocations the scenario makes. */
	smmu_alloc_fail_after(0);
	struct shadow_state s;
	struct direct_state d;
	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	cur_n = 0;
	shadow_scenario(&s);
	direct_scenario(&d);
	uint64_t total = smmu_alloc_calls();
	assert_non_null(s.vm);
	assert_non_null(s.gas);
	assert_non_null(d.vm);
	finish(&s, &d);
	/* The scenario is deterministic: the same count again. */
	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	smmu_alloc_fail_after(0);
	shadow_scenario(&s);
	direct_scenario(&d);
	assert_int_equal(smmu_alloc_calls(), total);
	finish(&s, &d);

	uint64_t only = 0, step = 1;
	const char *e = getenv("SMMU_ALLOC_FAIL_ONLY");
	if (e && *e)
		only = strtoull(e, NULL, 0);
	e = getenv("SMMU_ALLOC_FAIL_STEP");
	if (e && *e && strtoull(e, NULL, 0) > 0)
		step = strtoull(e, NULL, 0);

	uint64_t tried = 0, not_injected = 0;
	long kb0 = vm_size_kb();
	for (uint64_t n = 1; n <= total; n += step) {
		if (only && n != only)
			continue;
		if (!run_scenario(n))
			not_injected++;
		tried++;
	}
	smmu_alloc_fail_after(0);
	long kb1 = vm_size_kb();
	printf("alloc_fail: the scenario makes %llu allocations; tried %llu failure points%s; "
	       "mapped memory %ld kB before, %ld kB after\n",
	       (unsigned long long)total, (unsigned long long)tried,
	       only ? " (SMMU_ALLOC_FAIL_ONLY)" : step > 1 ? " (SMMU_ALLOC_FAIL_STEP)" : "", kb0, kb1);
	/* No slot backing (>= 2 MiB here) or table chunk (2 MiB) left mapped; allocators may keep a
	 * little for themselves. Sanitizer runtimes and valgrind map memory of their own. */
	const char *preload = getenv("LD_PRELOAD");
	bool valgrind = preload && strstr(preload, "vgpreload");
	if (kb0 > 0 && kb1 > 0 && !SANITIZED && !valgrind)
		assert_true(kb1 - kb0 < 2048);
	/* Allocation n happens before anything can fail, so every point injects a failure. */
	assert_int_equal(not_injected, 0);
	assert_true(tried > 0);
}

int main(void)
{
	unsetenv("SMMU_AUDIT"); /* an audit per operation would allocate, and abort on -ENOMEM paths */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_failure_point),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
