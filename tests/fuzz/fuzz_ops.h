/*
 * The operation fuzzer's entry point and its counters, shared by the libFuzzer build and the
 * corpus replay (fuzz_replay.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_FUZZ_OPS_H
#define SMMU_FUZZ_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <shadowmmu/shadowmmu.h>

/* libFuzzer's entry point: decode @data into operations and run them, auditing after each. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* libFuzzer calls it once before the first input: the run's totals print at exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

enum fuzz_op {
	OP_SLOT_CREATE,
	OP_SLOT_DELETE,
	OP_SLOT_MOVE,
	OP_SLOT_FLAGS,
	OP_GAS_MAP,
	OP_GAS_UNMAP,
	OP_GUEST_WRITE,
	OP_GUEST_READ,
	OP_FAULT,
	OP_ACCESS,
	OP_ENTER,
	OP_SET_CR3,
	OP_TRANSLATE,
	OP_VCPU_RECREATE,
	OP_ZAP_ALL,
	OP_FAST_ZAP,
	OP_MEMSLOT_FLUSH,
	OP_NOTIFIER,
	OP_MAX_PAGES,
	OP_DIRTY_LOG,
	OP_FLUSH_STRATEGY,
	OP_STRATEGY_API,
	OP_COUNT
};

/* Kinds of operation an opcode runs besides its own, chosen by argument bits its first version
 * left unused (so the opcode numbers, and the corpus, stay as they were): the trace, the per-kind
 * counts and --require-all-ops name them as operations of their own. */
enum fuzz_kind {
	K_LOAD_CR3 = OP_COUNT, /* OP_SET_CR3, k & 4: the guest's MOV CR3 */
	K_MMU_RELOAD,          /* OP_ENTER, vCPU byte & 0x80: entry with kvm_mmu_reload */
	K_INVLPG,              /* OP_TRANSLATE, access byte & 0x80: INVLPG */
	K_MEMSLOTS_GEN,        /* OP_MAX_PAGES, byte & 0x80: the memslots' starting generation */
	K_HOST_LEVEL,          /* OP_SLOT_FLAGS, flags byte & 0x80: the host's page size */
	K_HOST_WROTE,          /* OP_GUEST_READ, offset & 0x8000: a host store through its pointer */
	K_PFN_HOOK,            /* OP_NOTIFIER, length 0xfffd: the host's page fault invalidates */
	K_BUMP_FORGET,         /* OP_STRATEGY_API 4, k & 0x80: bump, lpage_info re-init, reload */
	KIND_COUNT
};

/* Totals since the process started: inputs run, operations run (per kind), audits done, calls
 * that returned an error their header does not document (see SMMU_FUZZ_STRICT), lock breaks
 * (forced, or handed to the racing fault), faults that raced a zap (fuzz_racer.c), accesses left
 * unchecked (a stale translation is allowed there), and a hash of every operation's result (equal
 * for the same inputs with and without the VM pool). */
struct fuzz_stats {
	uint64_t inputs, ops, audits, undocumented, lock_breaks, result_hash, racing_faults;
	uint64_t unchecked_stale; /* accesses not checked: their vCPU may use a stale translation */
	uint64_t wrap_zaps;       /* MMIO-generation wraps that zapped every page (smmu_mmio_counters) */
	uint64_t per_op[KIND_COUNT]; /* per kind: enum fuzz_op, then enum fuzz_kind */
};
const struct fuzz_stats *fuzz_ops_stats(void);
const char *fuzz_op_name(int kind);

/* The VM pool (fuzz_pool.c), off unless enabled (the libFuzzer build enables it): a VM for
 * configuration byte @key, fresh or emptied and restored to as smmu_vm_create left it; and back
 * after the input, with no vCPU or address space left. */
void fuzz_pool_enable(bool on);
smmu_vm *fuzz_pool_get(uint8_t key, const struct smmu_vm_config *cfg);
void fuzz_pool_put(uint8_t key, smmu_vm *vm);
/* The lock's test hook: every @every-th needbreak check breaks (0: only for a waiter). */
void fuzz_set_forced_breaks(smmu_vm *vm, uint32_t every);
/* The racer (fuzz_racer.c): a fault of @v at @addr on a second thread, run inside the lock
 * breaks of the next zap from its @nth_page zapped page on; disarm waits for it and returns its
 * result (1 when it never started). Arm returns 0 or an error. */
int fuzz_racer_arm(smmu_vm *vm, smmu_vcpu *v, uint64_t addr, uint32_t access, unsigned nth_page);
long fuzz_racer_disarm(void);
/* The lock breaks cond_resched made so far, all sites (with one thread: forced ones). */
uint64_t fuzz_lock_breaks(const smmu_vm *vm);

#endif
