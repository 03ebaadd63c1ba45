/*
 * The operation fuzzer's entry point and its counters, shared by the libFuzzer build and the
 * corpus replay (fuzz_replay.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_FUZZ_OPS_H
#define SMMU_FUZZ_OPS_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point: decode @data into operations and run them, auditing after each. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Totals since the process started: inputs run, operations run (per kind), audits done, and
 * calls that returned an error their header does not document (see SMMU_FUZZ_STRICT). */
struct fuzz_stats {
	uint64_t inputs, ops, audits, undocumented;
	uint64_t per_op[OP_COUNT];
};
const struct fuzz_stats *fuzz_ops_stats(void);
const char *fuzz_op_name(int op);

#endif
