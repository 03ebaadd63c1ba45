/*
 * Helpers shared by the tests: build a populated VM in a few lines and check the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_TESTLIB_H
#define SMMU_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include <shadowmmu/shadowmmu.h>

/* A VM with defaults in @mode (and the 3.11 profile); fails the test on error. */
smmu_vm *tl_vm(enum smmu_mmu_mode mode);
/* Same with a config. */
smmu_vm *tl_vm_cfg(const struct smmu_vm_config *cfg);

/* Run the audit; on any violation print the report and fail the test. */
void tl_assert_audit_clean_(smmu_vm *vm, const char *file, int line);
#define tl_assert_audit_clean(vm) tl_assert_audit_clean_((vm), __FILE__, __LINE__)

/* Run the audit and return the violations of @inv (and the first one in *first if not NULL). */
long tl_audit_count(smmu_vm *vm, enum smmu_invariant inv, struct smmu_violation *first);
/* Total violations of any invariant. */
long tl_audit_total(smmu_vm *vm);

/* smmu_vm_get_counters, failing the test on error. */
struct smmu_vm_counters tl_counters(smmu_vm *vm);
/* The valid indirect page of the current generation shadowing @gfn at @level, or NULL (takes
 * mmu_lock: call it where the test's thread does not hold it). */
smmu_sp *tl_find_sp(smmu_vm *vm, smmu_gfn_t gfn, int level);

/* A shadow-mode guest: slot 0 of @npages at gfn 0, page tables from a pool at @pool_gfn
 * (@pool_pages frames), one vCPU with CR3 loaded. */
struct tl_guest {
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *vcpu;
};
void tl_guest_init(struct tl_guest *g, enum smmu_mmu_mode mode, uint64_t npages, smmu_gfn_t pool_gfn,
		   uint64_t pool_pages);
/* Same with a config (its mode and profile). */
void tl_guest_init_cfg(struct tl_guest *g, const struct smmu_vm_config *cfg, uint64_t npages, smmu_gfn_t pool_gfn,
		       uint64_t pool_pages);
void tl_guest_fini(struct tl_guest *g);
/* mmu_unsync now (smmu_vm_get_mmu_unsync); fails the test on error. */
uint64_t tl_mmu_unsync(smmu_vm *vm);
/* Map @n 4 KiB pages: gva base + i * 4K -> gfn first_gfn + i (writable, user), and fault each
 * in with @access. In direct mode only faults gpa (first_gfn + i) * 4K. */
void tl_map_and_fault(struct tl_guest *g, smmu_gva_t base, smmu_gfn_t first_gfn, uint64_t n,
		      uint32_t access);

/*
 * Contention without timing: a thread that takes mmu_lock once per ticket, and a hook that,
 * on every @every-th page the zapping thread zaps (starting at @phase), hands out a ticket and
 * waits, holding the lock, until the thread has queued. The zap's next needbreak() check then
 * sees a waiter. Run tl_waiter_main in a thread and install tl_waiter_hook with smmu_set_hook.
 */
struct tl_waiter {
	smmu_vm *vm;
	pthread_t zapper;       /* the thread whose zaps count */
	unsigned want;          /* tickets to hand out in all */
	unsigned every, phase;  /* a ticket on zapped page number n when n % every == phase */
	atomic_uint tickets, served;
	unsigned long events;
};
void *tl_waiter_main(void *arg);
void tl_waiter_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx);

#endif
