/*
 * The audit while a fast zap drains in KVM's mode (issue 17, bug 5): the zapped pages wait on
 * zapped_obsolete_pages, still hashed, until the final commit, and the lock is broken between
 * batches. An audit that gets the lock at such a break must find the state clean:
 *
 * - smmu_audit from a second thread (no vCPU thread runs meanwhile, as audit.h requires);
 * - audit_every_op with a vCPU thread faulting during the drain: the fault's audit point runs
 *   at a break, and the zap's own audit point runs while the vCPU thread faults.
 *
 * No timing: a hook makes the zapping thread wait, lock held, until the other thread has queued
 * for the lock, so every drain breaks and hands it over. Threads never call cmocka; the main
 * thread asserts after joining them.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SLOT_PAGES (1ull << 16)
#define LEAF_TABLES (SLOT_PAGES / 512) /* one 4 KiB leaf per 2 MiB: a level-1 table each */
#define ROUNDS 3

/* Direct mode, 4 KiB leaves only (dirty logging), KVM's drain one page a batch. */
static smmu_vm *drain_vm(bool audit_every_op)
{
	struct smmu_vm_config c;
	smmu_vm_config_default(&c);
	c.mode = SMMU_MODE_DIRECT;
	c.zap_batch = 1;
	c.audit_every_op = audit_every_op;
	smmu_vm *vm = tl_vm_cfg(&c);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	return vm;
}

/* ---- smmu_audit from a second thread --------------------------------------------------------- */

struct auditor {
	struct tl_waiter w;      /* tickets from tl_waiter_hook; served here by an audit each */
	atomic_int done;
	atomic_uint zapping;     /* odd while the main thread is inside smmu_fast_zap */
	atomic_long audits_inside, violations, errors;
	struct smmu_violation first; /* written by the auditor only, read after the join */
};

static void *auditor_main(void *arg)
{
	struct auditor *a = arg;
	for (;;) {
		unsigned served = atomic_load(&a->w.served);
		if (atomic_load(&a->w.tickets) == served) {
			if (atomic_load(&a->done))
				break;
			sched_yield();
			continue;
		}
		unsigned z = atomic_load(&a->zapping);
		struct smmu_violation v[1];
		struct smmu_audit_report r = { .v = v, .cap = 1 };
		long n = smmu_audit(a->w.vm, &r);
		if (n < 0)
			atomic_fetch_add(&a->errors, 1);
		if (n > 0 && atomic_fetch_add(&a->violations, n) == 0)
			a->first = v[0];
		if ((z & 1) && atomic_load(&a->zapping) == z)
			atomic_fetch_add(&a->audits_inside, 1); /* the whole audit within one drain */
		atomic_fetch_add(&a->w.served, 1);
	}
	return NULL;
}

static void test_audit_thread_during_drain(void **state)
{
	(void)state;
	smmu_vm *vm = drain_vm(false);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	struct auditor a;
	memset(&a, 0, sizeof(a));
	a.w.vm = vm;
	a.w.zapper = pthread_self();
	a.w.want = 1u << 30;
	a.w.every = 8;
	a.w.phase = 3;
	assert_int_equal(smmu_set_hook(vm, tl_waiter_hook, &a.w), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, auditor_main, &a), 0);
	uint64_t breaks = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (uint64_t g = 0; g < SLOT_PAGES; g += 512)
			assert_int_equal(smmu_vcpu_fault(v, g << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL),
					 SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_enter(v), 0);
		struct smmu_zap_report rep;
		atomic_fetch_add(&a.zapping, 1);
		assert_int_equal(smmu_fast_zap(vm, &rep), 0);
		atomic_fetch_add(&a.zapping, 1);
		assert_true(rep.pages_zapped >= LEAF_TABLES);
		breaks += rep.lock_breaks;
		/* Audits run only while this thread, the vCPU's, is inside the zap (audit.h). */
		while (atomic_load(&a.w.served) != atomic_load(&a.w.tickets))
			sched_yield();
		assert_int_equal(smmu_vcpu_enter(v), 0);
	}
	atomic_store(&a.done, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	printf("%u audits from a second thread, %ld of them inside a drain, %llu lock breaks\n",
	       atomic_load(&a.w.served), atomic_load(&a.audits_inside), (unsigned long long)breaks);
	if (atomic_load(&a.violations))
		fail_msg("an audit during the drain found %ld violation(s), first: invariant %d (%s): %s",
			 atomic_load(&a.violations), (int)a.first.inv, smmu_invariant_name(a.first.inv), a.first.what);
	assert_int_equal(atomic_load(&a.errors), 0);
	assert_true(breaks > 0);
	assert_true(atomic_load(&a.audits_inside) > 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/* ---- audit_every_op with a vCPU thread faulting during the drain ---------------------------- */

/* Every 8th page the calling thread zaps, the zap waits, lock held, until another thread queues. */
static void waiter_every_8th(struct tl_waiter *w, smmu_vm *vm)
{
	memset(w, 0, sizeof(*w));
	w->vm = vm;
	w->zapper = pthread_self();
	w->want = 1u << 30;
	w->every = 8;
	w->phase = 5;
}

struct vcpu_thread {
	smmu_vcpu *v;
	atomic_int done;
	atomic_long faults, errors;
};

static void *vcpu_main(void *arg)
{
	struct vcpu_thread *t = arg;
	for (uint64_t i = 0; !atomic_load(&t->done); i++) {
		int r = smmu_vcpu_fault(t->v, ((i * 512) % SLOT_PAGES) << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL);
		if (r != SMMU_FAULT_MAPPED && r != SMMU_FAULT_RETRY)
			atomic_fetch_add(&t->errors, 1);
		atomic_fetch_add(&t->faults, 1);
	}
	return NULL;
}

static void test_audit_every_op_vcpu_during_drain(void **state)
{
	(void)state;
	smmu_vm *vm = drain_vm(true); /* a violation at any audit point aborts the test */
	struct vcpu_thread vt;
	memset(&vt, 0, sizeof(vt));
	assert_int_equal(smmu_vcpu_create(vm, &vt.v), 0);
	for (uint64_t g = 0; g < SLOT_PAGES; g += 512)
		assert_int_equal(smmu_vcpu_fault(vt.v, g << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	/* Every 8th zapped page the zap waits, lock held, until the vCPU thread queues for it. */
	struct tl_waiter w;
	waiter_every_8th(&w, vm);
	assert_int_equal(smmu_set_hook(vm, tl_waiter_hook, &w), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, vcpu_main, &vt), 0);
	uint64_t breaks = 0, zapped = 0;
	for (int round = 0; round < 4 * ROUNDS; round++) {
		struct smmu_zap_report rep;
		assert_int_equal(smmu_fast_zap(vm, &rep), 0);
		breaks += rep.lock_breaks;
		zapped += rep.pages_zapped;
	}
	atomic_store(&vt.done, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	printf("%ld faults on the vCPU thread, %llu pages zapped, %llu lock breaks during the drains\n",
	       atomic_load(&vt.faults), (unsigned long long)zapped, (unsigned long long)breaks);
	assert_int_equal(atomic_load(&vt.errors), 0);
	assert_true(breaks > 0);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	assert_int_equal(smmu_vcpu_enter(vt.v), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(vt.v);
	smmu_vm_destroy(vm);
}

/* ---- audit_every_op with a vCPU thread faulting during a lock-breaking zap_all -------------- */

/* Today's kvm_mmu_zap_all keeps its invalid list across its lock breaks (zap_all_commit_once):
 * the pages it zapped wait there, still hashed, unflushed, while a vCPU faults and audits. */
static void zap_all_during_faults(enum smmu_zap_mode mode)
{
	struct smmu_vm_config c;
	smmu_vm_config_default(&c);
	c.mode = SMMU_MODE_DIRECT;
	c.profile = SMMU_PROFILE_LINUX_TODAY;
	c.audit_every_op = true; /* a violation at any audit point aborts the test */
	smmu_vm *vm = tl_vm_cfg(&c);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	struct vcpu_thread vt;
	memset(&vt, 0, sizeof(vt));
	assert_int_equal(smmu_vcpu_create(vm, &vt.v), 0);
	struct tl_waiter w;
	waiter_every_8th(&w, vm);
	uint64_t breaks = 0, zapped = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (uint64_t g = 0; g < SLOT_PAGES; g += 512)
			assert_int_equal(smmu_vcpu_fault(vt.v, g << SMMU_PAGE_SHIFT, SMMU_ACC_WRITE, NULL),
					 SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_vcpu_enter(vt.v), 0);
		atomic_store(&vt.done, 0);
		assert_int_equal(smmu_set_hook(vm, tl_waiter_hook, &w), 0);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, vcpu_main, &vt), 0);
		struct smmu_zap_report rep;
		/* RESTART may not finish while the vCPU refills (the 2019 hang): bounded rounds. */
		int r = smmu_zap_all(vm, mode, 200, &rep);
		assert_true(r == 0 || (mode == SMMU_ZAP_RESTART && r == -EAGAIN));
		breaks += rep.lock_breaks;
		zapped += rep.pages_zapped;
		atomic_store(&vt.done, 1);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	}
	printf("%s: %ld faults on the vCPU thread, %llu pages zapped, %llu lock breaks\n",
	       smmu_zap_mode_name(mode), atomic_load(&vt.faults), (unsigned long long)zapped,
	       (unsigned long long)breaks);
	assert_int_equal(atomic_load(&vt.errors), 0);
	assert_true(breaks > 0);
	assert_int_equal(smmu_vcpu_enter(vt.v), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(vt.v);
	smmu_vm_destroy(vm);
}

static void test_audit_every_op_vcpu_during_zap_all_restart(void **state)
{
	(void)state;
	zap_all_during_faults(SMMU_ZAP_RESTART);
}

static void test_audit_every_op_vcpu_during_zap_all_generation(void **state)
{
	(void)state;
	zap_all_during_faults(SMMU_ZAP_GENERATION);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_thread_during_drain),
		cmocka_unit_test(test_audit_every_op_vcpu_during_drain),
		cmocka_unit_test(test_audit_every_op_vcpu_during_zap_all_restart),
		cmocka_unit_test(test_audit_every_op_vcpu_during_zap_all_generation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
