/*
 * smmu-kvmdiff — scenarios: a small text format, one step a line.
 *
 * The guest layout both backends build (so that their shadow pages can be compared gfn by gfn):
 *   - a system slot (id KD_SYS_SLOT) holding gpa [0, 16 MiB): the guest program at 0x1000, the
 *     mailbox at 0x10000, and from 2 MiB on the page-table pools of the address spaces;
 *   - every address space maps the low 2 MiB identity (4 KiB pages, user, writable, the leaf
 *     entries without the Accessed bit so that KVM prefetches none of them) and its own
 *     table pool at KD_PTWIN (user, writable, no-exec), so that the guest can store to its own
 *     page tables; then the scenario's mappings, in file order.
 * Scenario slots, gvas and gpas must stay clear of these (the parser checks).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KVMDIFF_SCENARIO_H
#define KVMDIFF_SCENARIO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KD_SYS_SLOT 500                 /* memslot id of the system slot */
#define KD_SYS_BYTES (16ull << 20)      /* gpa [0, 16 MiB) */
#define KD_IDMAP_BYTES (2ull << 20)     /* identity-mapped low 2 MiB */
#define KD_POOL_BASE (2ull << 20)       /* first pool frame */
#define KD_CODE_GPA 0x1000ull           /* guest program */
#define KD_MBOX_GPA 0x10000ull          /* mailbox: another group of 8 ptes than the program,
					 * so that KVM's pte prefetch never maps one for the other */
#define KD_PTWIN 0x1000000000ull        /* gva of each address space's view of its own pool */
#define KD_GPA_LIMIT (1ull << 36)       /* keep gpas below 64 GiB (MAXPHYADDR without CPUID) */
#define KD_MAX_VCPUS 8
#define KD_MAX_AS 8
#define KD_MAX_SLOT_ID 499
#define KD_IO_PORT 0x10                 /* the guest's `out` port: end of a step */

enum kd_op {
	KD_VCPUS,      /* vcpus N                          (first step only) */
	KD_MMU_PAGES,  /* mmu_pages N                      KVM_SET_NR_MMU_PAGES */
	KD_SLOT,       /* slot ID GPA SIZE [log] [ro] [thp] KVM_SET_USER_MEMORY_REGION create */
	KD_DELETE,     /* delete ID */
	KD_MOVE,       /* move ID GPA */
	KD_FLAGS,      /* flags ID log|none                flags-only change */
	KD_AS,         /* as NAME POOLPAGES [at GPA]       a guest address space; its table pool is
			  in the system area, or at GPA (in a scenario slot) */
	KD_MAP,        /* map AS GVA GPA N [2m] [gstride S] [ro] [nx] [noa]   host-built mappings;
			  noa: leaves without the Accessed bit (KVM prefetches only accessed gptes) */
	KD_CR3,        /* cr3 AS [vcpu V]                  KVM_SET_SREGS */
	KD_TOUCH,      /* touch GVA N STRIDE read|write [vcpu V]        the guest accesses */
	KD_GPTE,       /* gpte AS GVA GPA [ro] [vcpu V] [bytes N] [offset K]
			  the guest rewrites its own 4K pte */
	KD_GCLEAR,     /* gclear AS GVA LEVEL [vcpu V] [bytes N] [offset K]
			  the guest clears its own entry at LEVEL 1..3. bytes / offset: the store
			  is the low N bytes (1, 2, 4, 8; default 8) of the new entry at K bytes
			  (0..7) past the entry's start, so it may straddle into the next entry */
	KD_INVALIDATE, /* invalidate ID OFFSET SIZE        madvise(DONTNEED): the MMU notifier */
	KD_DIRTYLOG,   /* dirtylog ID                      KVM_GET_DIRTY_LOG */
	KD_MOVCR3,     /* movcr3 AS [vcpu V]               the guest's own MOV to CR3 */
};

struct kd_step {
	enum kd_op op;
	int line;          /* line in the file */
	char text[128];    /* the line as written (trimmed) */
	int id;            /* slot id, vcpu count, or address-space index */
	int vcpu;          /* vCPU the step runs on */
	uint64_t a, b, c;  /* gpa/gva, size/count, stride: see enum kd_op */
	uint64_t gstride;  /* map: gva advance per page */
	int level;         /* gclear: the level of the entry */
	int bytes, offset; /* gpte, gclear: the store's width (8 unless said) and offset in the entry */
	bool write, log, ro, thp, nx, large, noa;
};

struct kd_as {
	char name[16];
	uint64_t pool_gpa, pool_pages;
};

struct kd_scenario {
	char name[64];         /* file name without directory and extension */
	char path[512];
	int nvcpus;
	struct kd_as as[KD_MAX_AS];
	int nas;
	struct kd_step *steps;
	size_t nsteps;
};

/* Parse @path. @return 0, or -1 with "file:line: what" written to @err. */
int kd_scenario_load(const char *path, struct kd_scenario *sc, char *err, size_t errlen);
/* Parse from a string (for tests); @name stands for the file name in messages. */
int kd_scenario_parse(const char *name, const char *text, struct kd_scenario *sc, char *err, size_t errlen);
void kd_scenario_free(struct kd_scenario *sc);

/* Write "file:line: op: " and the message into @err for a failure while running @st (NULL: during
 * setup). @return -1, for `return kd_step_error(...)`. */
int kd_step_error(char *err, size_t len, const struct kd_scenario *sc, const struct kd_step *st, const char *fmt,
		  va_list ap);
/* CLOCK_MONOTONIC in nanoseconds: the wall time of a step. */
uint64_t kd_now_ns(void);

/* The op's name as written in files. */
const char *kd_op_name(enum kd_op op);
/* True for steps that run the guest (KVM_RUN): touch, gpte, gclear. */
bool kd_step_runs_guest(const struct kd_step *st);

#endif
