/*
 * vCPUs and the threads around them: a vCPU's id stays fixed while other vCPUs come and go.
 *
 * Threads never call cmocka: they count failures and the main thread asserts after joining.
 * Every loop is bounded by an iteration cap; no assertion depends on time.
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

#include "mmu.h"

/* ---- a vCPU's id is fixed for life (issue 17, bug 6b) ------------------------------------------ */

/* Destroying a vCPU changes no other vCPU's id; a new one takes the smallest free id. */
static void test_vcpu_id_fixed(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *a, *b, *c, *d;
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_create(vm, &b), 0);
	assert_int_equal(smmu_vcpu_create(vm, &c), 0);
	smmu_vcpu_destroy(a);
	assert_int_equal(smmu_vcpu_id(b), 1);
	assert_int_equal(smmu_vcpu_id(c), 2);
	assert_int_equal(smmu_vcpu_create(vm, &d), 0);
	assert_int_equal(smmu_vcpu_id(d), 0);
	smmu_vcpu_destroy(b);
	assert_int_equal(smmu_vcpu_id(c), 2);
	assert_int_equal(smmu_vcpu_id(d), 0);
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_id(a), 1);
	smmu_vm_destroy(vm);
}

struct id_user {
	smmu_vcpu *v;
	int id;
	atomic_int done;
	atomic_uint changed;
};

static void *id_user_main(void *arg)
{
	struct id_user *u = arg;
	while (!atomic_load(&u->done)) {
		if (smmu_vcpu_id(u->v) != u->id)
			atomic_fetch_add(&u->changed, 1);
		smmu_vcpu_enter(u->v);
	}
	return NULL;
}

/* The reproducer of bug 6b: B's thread reads B's id while another thread destroys and creates
 * vCPU A, which used to move B to A's index and rewrite B's id from that thread (a data race
 * ThreadSanitizer reports, and a changed id). */
static void test_vcpu_id_vs_other_destroy(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *a;
	struct id_user u = { 0 };
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_create(vm, &u.v), 0);
	u.id = smmu_vcpu_id(u.v);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, id_user_main, &u), 0);
	for (int i = 0; i < 2000; i++) {
		smmu_vcpu_destroy(a);
		assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	}
	atomic_store(&u.done, 1);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&u.changed), 0);
	assert_int_equal(smmu_vcpu_id(u.v), u.id);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_id_fixed),
		cmocka_unit_test(test_vcpu_id_vs_other_destroy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
