/*
 * libshadowmmu — guest page tables: a builder for x86-64 4-level paging.
 *
 * A guest address space (a guest process) owns a pool of guest frames for its page-table pages;
 * its CR3 is the first frame of the pool. Every table entry is written with smmu_guest_write(),
 * the same path as any guest store, so writes to tables the shadow MMU shadows are trapped.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_GUEST_H
#define SHADOWMMU_GUEST_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Guest PTE bits (x86-64). */
#define SMMU_PTE_PRESENT (1ull << 0)
#define SMMU_PTE_WRITABLE (1ull << 1)
#define SMMU_PTE_USER (1ull << 2)
#define SMMU_PTE_ACCESSED (1ull << 5)
#define SMMU_PTE_DIRTY (1ull << 6)
#define SMMU_PTE_LARGE (1ull << 7)
#define SMMU_PTE_NX (1ull << 63)
#define SMMU_PTE_ADDR_MASK 0x000ffffffffff000ull

/** Protection of a guest mapping. */
enum smmu_prot {
	SMMU_PROT_WRITE = 1u << 0,
	SMMU_PROT_USER = 1u << 1,
	SMMU_PROT_NOEXEC = 1u << 2,
};

/**
 * Create an address space whose page-table pages come from guest frames
 * [@p pool_gfn, @p pool_gfn + @p pool_pages). The root (level-4 table) is @p pool_gfn, zeroed.
 * @return 0 and *out; -EINVAL (NULL, pool_pages 0, pool beyond the address space); -EFAULT (a
 *         pool frame lies in no slot); -EROFS (a pool frame lies in a read-only slot: the builder
 *         writes its tables there); -ENOMEM.
 */
SMMU_API int smmu_gas_create(smmu_vm *vm, smmu_gfn_t pool_gfn, uint64_t pool_pages, smmu_gas **out);

/** Free the builder's bookkeeping (the guest memory is left as is). NULL is ignored. */
SMMU_API void smmu_gas_destroy(smmu_gas *gas);

/** The guest physical address of the root table: what a vCPU loads into CR3. */
SMMU_API smmu_gpa_t smmu_gas_cr3(const smmu_gas *gas);

/**
 * Map @p gva to @p gfn with a leaf at @p level (4K, 2M or 1G) and protection @p prot, making
 * intermediate tables as needed (present, writable, user). A leaf already there is replaced.
 * @return 0; -EINVAL (NULL, bad level, gva not canonical or misaligned for the level, gfn
 *         misaligned for the level, unknown prot bits); -EEXIST (a larger leaf covers gva, or a
 *         table sits where a large leaf is asked); -ENOSPC (the pool is used up); -EFAULT (a
 *         table the walk needs lies in no slot); -EROFS (a table lies in a read-only slot).
 */
SMMU_API int smmu_gas_map(smmu_gas *gas, smmu_gva_t gva, smmu_gfn_t gfn, int level, uint32_t prot);

/**
 * Clear the leaf that maps @p gva (any size). Tables are kept.
 * @return 0; -EINVAL (NULL, non-canonical); -ENOENT (nothing mapped there); -EFAULT (a table
 *         the walk needs lies in no slot); -EROFS (the table lies in a read-only slot).
 */
SMMU_API int smmu_gas_unmap(smmu_gas *gas, smmu_gva_t gva);

/** Result of a guest page-table walk. */
struct smmu_guest_walk {
	smmu_gfn_t gfn;     /**< the 4K frame that gva maps to */
	int level;          /**< the leaf's level */
	uint32_t access;    /**< granted smmu_access bits (WRITE, USER, EXEC) */
	uint64_t pte;       /**< the leaf entry */
	smmu_gfn_t table_gfn[4]; /**< gfn of the table walked at each level (index level-1) */
};

/**
 * Walk the guest's own tables from @p cr3 (FNAME(walk_addr) without the fault injection).
 * @return 0; -EINVAL (NULL, non-canonical); -ENOENT (not present at some level, out->level says
 *         where); -EFAULT (a table lies in no slot).
 */
SMMU_API int smmu_guest_walk(const smmu_vm *vm, smmu_gpa_t cr3, smmu_gva_t gva,
			     struct smmu_guest_walk *out);

#ifdef __cplusplus
}
#endif
#endif
