/*
 * A second thread for the fuzzer, deterministic: a vCPU fault that runs inside the lock breaks
 * of a zap. On the zap's nth zapped page (an event hook, mmu_lock held) the main thread lets
 * the racer thread start its fault and waits until the fault has queued for mmu_lock (or ended
 * without it); the zap's next needbreak check then sees a waiter and hands the lock over, as
 * kvm_mmu_zap_all's cond_resched_lock does to a faulting vCPU. Each time it has the lock back
 * (after a break, or a release of its own) the main thread again waits until the fault queued again or ended, so where the fault's locked parts fall in
 * the zap depends on the input alone, and fuzz_replay reproduces it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_ops.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mmu.h"

static struct {
	pthread_t thread, main;
	bool started;
	pthread_mutex_t lock; /* go, for the racer to sleep on while idle */
	pthread_cond_t wake;
	bool go;             /* the fault may start */
	atomic_int done;     /* it returned */
	smmu_vm *vm;
	smmu_vcpu *v;
	uint64_t addr;
	uint32_t access;
	long result;
	unsigned nth, zapped;
	bool fired;
} racer = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void *racer_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&racer.lock);
		while (!racer.go)
			pthread_cond_wait(&racer.wake, &racer.lock);
		racer.go = false;
		pthread_mutex_unlock(&racer.lock);
		struct smmu_fault_info fi;
		racer.result = smmu_vcpu_fault(racer.v, racer.addr, racer.access, &fi);
		atomic_store_explicit(&racer.done, 1, memory_order_release);
	}
	return NULL;
}

/* Until the fault waits for the lock we hold, or returned. Bounded: a fault blocked elsewhere
 * would hang the fuzzer, which is a harness bug to report, not to wait out. */
static void wait_queued_or_done(void)
{
	time_t t0 = time(NULL);
	while (!atomic_load_explicit(&racer.done, memory_order_acquire) && !mmu_lock_waiters(&racer.vm->mmu_lock)) {
		if (time(NULL) - t0 > 10) {
			fprintf(stderr, "fuzz_ops: the racing fault neither queued for mmu_lock nor returned\n");
			abort();
		}
		sched_yield();
	}
}

static void racer_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)vm;
	(void)sp;
	(void)ctx;
	if (!pthread_equal(pthread_self(), racer.main))
		return; /* the fault's own events */
	if (ev == SMMU_EV_PAGE_ZAPPED && !racer.fired && ++racer.zapped == racer.nth) {
		racer.fired = true;
		pthread_mutex_lock(&racer.lock);
		racer.go = true;
		pthread_cond_signal(&racer.wake);
		pthread_mutex_unlock(&racer.lock);
		wait_queued_or_done();
	} else if ((ev == SMMU_EV_LOCK_BROKEN || ev == SMMU_EV_LOCK_TAKEN) && racer.fired) {
		/* Retaken after a break (or a release of our own): the fault got the lock meanwhile
		 * and may want it once more. */
		wait_queued_or_done();
	}
}

int fuzz_racer_arm(smmu_vm *vm, smmu_vcpu *v, uint64_t addr, uint32_t access, unsigned nth_page)
{
	if (!racer.started) {
		if (pthread_create(&racer.thread, NULL, racer_main, NULL) != 0)
			return -1;
		pthread_detach(racer.thread);
		racer.started = true;
	}
	racer.main = pthread_self();
	racer.vm = vm;
	racer.v = v;
	racer.addr = addr;
	racer.access = access;
	racer.nth = nth_page;
	racer.zapped = 0;
	racer.fired = false;
	racer.result = 1;
	atomic_store(&racer.done, 0);
	return smmu_set_hook(vm, racer_hook, NULL);
}

long fuzz_racer_disarm(void)
{
	if (racer.fired)
		while (!atomic_load_explicit(&racer.done, memory_order_acquire))
			sched_yield();
	smmu_set_hook(racer.vm, NULL, NULL);
	racer.vm = NULL;
	return racer.fired ? racer.result : 1;
}
