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

/*
 * MMIO sptes (mark_mmio_spte / make_mmio_spte): a leaf for a gfn in no memslot, made so that the
 * hardware walk faults on it with a reserved bit (PFERR_RSVD) and handle_mmio_page_fault can
 * emulate the access without walking the guest's tables. It carries the gfn, the guest's write
 * and user rights (shadow_mmio_access_mask: ACC_WRITE_MASK | ACC_USER_MASK in both eras) and
 * the MMIO generation: 19 bits of the memslots' generation (MMIO_SPTE_GEN_MASK, 3.11 and today),
 * here laid out as today's spte.h lays them out (bits 0-7 in spte bits 3-10, bits 8-18 in 52-62;
 * 3.11 put 9 in bits 3-11 and 10 in 52-61). The marker is bit 51, a reserved bit as in today's
 * shadow_mmio_value for a host with fewer than 52 physical address bits, but without the present
 * bit that KVM sets with it: KVM's presence test skips MMIO sptes (3.11's is_shadow_present_pte
 * tests both, today's looks at SPTE_MMU_PRESENT_MASK, which MMIO sptes lack), and the model's
 * stays one bit. No other spte of the model has bit 51: frames and tables lie below 2^47. A gfn
 * is kept modulo 2^39 (bits 12-50); the page's gfns array (or a direct page's position) holds
 * the whole gfn.
 */
#define SPTE_MMIO_VALUE (1ull << 51)
#define SPTE_MMIO_MASK (SPTE_MMIO_VALUE | PT_PRESENT_MASK)
#define MMIO_SPTE_GEN_LOW_SHIFT 3
#define MMIO_SPTE_GEN_LOW_BITS 8
#define MMIO_SPTE_GEN_HIGH_SHIFT 52
#define MMIO_SPTE_GEN_BITS 19
#define MMIO_SPTE_GEN_MASK ((1ull << MMIO_SPTE_GEN_BITS) - 1)
#define MMIO_SPTE_GEN_LOW_MASK (((1ull << MMIO_SPTE_GEN_LOW_BITS) - 1) << MMIO_SPTE_GEN_LOW_SHIFT)
#define MMIO_SPTE_GEN_HIGH_MASK (((1ull << (MMIO_SPTE_GEN_BITS - MMIO_SPTE_GEN_LOW_BITS)) - 1) \
				 << MMIO_SPTE_GEN_HIGH_SHIFT)
#define MMIO_SPTE_ACCESS_MASK (PT_WRITABLE_MASK | PT_USER_MASK)
#define MMIO_SPTE_GFN_MASK 0x0007fffffffff000ull /* bits 12-50 */

static inline bool is_mmio_spte(uint64_t spte) { return (spte & SPTE_MMIO_MASK) == SPTE_MMIO_VALUE; }
/* Not an MMIO spte: those have no present bit here. */
static inline bool is_shadow_present_pte(uint64_t spte) { return spte & PT_PRESENT_MASK; }
static inline uint64_t make_mmio_spte(uint64_t gen, uint64_t gfn, uint32_t access)
{
	gen &= MMIO_SPTE_GEN_MASK;
	return SPTE_MMIO_VALUE | ((gen << MMIO_SPTE_GEN_LOW_SHIFT) & MMIO_SPTE_GEN_LOW_MASK) |
	       (((gen >> MMIO_SPTE_GEN_LOW_BITS) << MMIO_SPTE_GEN_HIGH_SHIFT) & MMIO_SPTE_GEN_HIGH_MASK) |
	       (access & MMIO_SPTE_ACCESS_MASK) | ((gfn << 12) & MMIO_SPTE_GFN_MASK);
}
static inline uint64_t get_mmio_spte_generation(uint64_t spte)
{
	return ((spte & MMIO_SPTE_GEN_LOW_MASK) >> MMIO_SPTE_GEN_LOW_SHIFT) |
	       (((spte & MMIO_SPTE_GEN_HIGH_MASK) >> MMIO_SPTE_GEN_HIGH_SHIFT) << MMIO_SPTE_GEN_LOW_BITS);
}
static inline uint32_t get_mmio_spte_access(uint64_t spte) { return (uint32_t)(spte & MMIO_SPTE_ACCESS_MASK); }
static inline uint64_t get_mmio_spte_gfn(uint64_t spte) { return (spte & MMIO_SPTE_GFN_MASK) >> 12; }
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
