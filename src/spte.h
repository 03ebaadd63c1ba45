/*
 * Shadow PTE format: x86-64 bits. A leaf's address field holds the host frame of the slot's
 * backing (hva >> 12), so a translation yields a real pointer; a non-leaf's holds the child's
 * table address. Host virtual addresses are below 2^47, so both fit bits 12..51.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_SPTE_H
#define SMMU_SPTE_H

#include <stdbool.h>
#include <stdint.h>

#define PT_PRESENT_MASK (1ull << 0)
#define PT_WRITABLE_MASK (1ull << 1)
#define PT_USER_MASK (1ull << 2)
#define PT_ACCESSED_MASK (1ull << 5)
#define PT_DIRTY_MASK (1ull << 6)
#define PT_PAGE_SIZE_MASK (1ull << 7)
#define PT64_NX_MASK (1ull << 63)
/* A software bit of leaf sptes: the host maps the frame writable (shadow_host_writable_mask,
 * today's DEFAULT_SPTE_HOST_WRITABLE, bit 9; 3.11's SPTE_HOST_WRITEABLE). make_spte / set_spte
 * never make a spte writable without it, and a sync keeps it from the spte it rebuilds. */
#define SPTE_HOST_WRITABLE (1ull << 9)
#define PT64_BASE_ADDR_MASK 0x000ffffffffff000ull
#define PT64_PERM_MASK (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT64_NX_MASK)

#define PT64_LEVEL_BITS 9
#define PT64_LEVEL_SHIFT(level) (12 + ((level) - 1) * PT64_LEVEL_BITS)
#define PT64_INDEX(addr, level) (((addr) >> PT64_LEVEL_SHIFT(level)) & 511)
#define PT64_ROOT_LEVEL 4
#define KVM_PAGES_PER_HPAGE(level) (1ull << (((level) - 1) * PT64_LEVEL_BITS))

static inline bool is_shadow_present_pte(uint64_t spte) { return spte & PT_PRESENT_MASK; }
static inline bool is_large_pte(uint64_t spte) { return spte & PT_PAGE_SIZE_MASK; }
static inline bool is_writable_pte(uint64_t spte) { return spte & PT_WRITABLE_MASK; }
static inline bool is_last_spte(uint64_t spte, int level) { return level == 1 || is_large_pte(spte); }
static inline uint64_t spte_to_pfn(uint64_t spte) { return (spte & PT64_BASE_ADDR_MASK) >> 12; }
static inline uint64_t *spte_to_child_spt(uint64_t spte)
{
	return (uint64_t *)(uintptr_t)(spte & PT64_BASE_ADDR_MASK);
}
/* Access bits an spte grants, as enum smmu_access (READ is implied by presence). */
static inline uint32_t spte_access(uint64_t spte)
{
	return ((spte & PT_WRITABLE_MASK) ? 2u : 0u) | ((spte & PT_USER_MASK) ? 4u : 0u) |
	       ((spte & PT64_NX_MASK) ? 0u : 16u);
}

#endif
