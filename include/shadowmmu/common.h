/*
 * libshadowmmu — common definitions shared by every public header.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_COMMON_H
#define SHADOWMMU_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol exported from the shared library; everything else is hidden. */
#if defined(SMMU_BUILDING_LIBRARY) && defined(__GNUC__)
#define SMMU_API __attribute__((visibility("default")))
#else
#define SMMU_API
#endif

/** Guest frame number: a guest physical address shifted right by 12. */
typedef uint64_t smmu_gfn_t;
/** Guest physical address. */
typedef uint64_t smmu_gpa_t;
/** Guest virtual address (shadow mode) or guest physical address (direct mode). */
typedef uint64_t smmu_gva_t;

/** Page size of the model, as x86's. */
#define SMMU_PAGE_SHIFT 12
#define SMMU_PAGE_SIZE (1ull << SMMU_PAGE_SHIFT)
/** Guest physical address width: base_gfn + npages must stay below 2^(52-12). */
#define SMMU_GPA_BITS 52
#define SMMU_MAX_GFN (1ull << (SMMU_GPA_BITS - SMMU_PAGE_SHIFT))
/** Guest physical address width of a direct-mode VM: what its 4-level direct map reaches. Its
 *  memslots and its vCPUs' addresses stay below 2^48 (KVM: kvm_mmu_max_gfn); a shadow-mode VM
 *  has the whole SMMU_GPA_BITS. */
#define SMMU_DIRECT_GPA_BITS 48

/** Page-table levels, as KVM numbers them (PG_LEVEL_4K = 1 ...). */
enum smmu_level {
	SMMU_LEVEL_4K = 1,
	SMMU_LEVEL_2M = 2,
	SMMU_LEVEL_1G = 3,
	SMMU_LEVEL_512G = 4, /* root level of 4-level paging; never a leaf */
};
/** Number of page sizes a leaf may have (4K, 2M, 1G): KVM_NR_PAGE_SIZES. */
#define SMMU_NR_PAGE_SIZES 3
/** Entries in one shadow or guest page table. */
#define SMMU_PT_ENTRIES 512

/** Access bits of a fault or a permission set (KVM's ACC_* / PFERR_* meanings). */
enum smmu_access {
	SMMU_ACC_READ = 0,
	SMMU_ACC_WRITE = 1u << 1,
	SMMU_ACC_USER = 1u << 2,
	SMMU_ACC_EXEC = 1u << 4,
};

typedef struct smmu_vm smmu_vm;     /**< a VM: struct kvm + kvm_arch */
typedef struct smmu_vcpu smmu_vcpu; /**< a vCPU: struct kvm_vcpu + kvm_mmu */
typedef struct smmu_sp smmu_sp;     /**< a shadow page: struct kvm_mmu_page */
typedef struct smmu_gas smmu_gas;   /**< a guest address space (guest process) */

#ifdef __cplusplus
}
#endif
#endif
