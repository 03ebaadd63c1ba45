/*
 * smmu-kvmdiff — guest page tables for the kernel backend, built in the exact shape that the
 * library's smmu_gas_map() builds (same pool order, same entry bits), over any guest memory.
 * The library backend uses smmu_gas_map() itself; a test checks that both give the same bytes.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KVMDIFF_GPT_H
#define KVMDIFF_GPT_H

#include <stdint.h>

#include "scenario.h"

/* Guest physical memory as the builder sees it. Each returns 0 or a negative errno. */
struct kd_mem {
	void *ctx;
	int (*read)(void *ctx, uint64_t gpa, uint64_t *val);
	int (*write)(void *ctx, uint64_t gpa, uint64_t val);
	int (*zero_page)(void *ctx, uint64_t gpa);
};

/* A prot bit of the harness's own, beside SMMU_PROT_*: leave the leaf's Accessed bit clear. */
#define KD_PROT_NOACCESSED (1u << 8)

struct kd_gpt {
	struct kd_mem mem;
	uint64_t pool_gfn, pool_pages, used;
};

/* Start an address space whose root is the first pool frame (zeroed). @return 0 or -errno. */
int kd_gpt_init(struct kd_gpt *g, const struct kd_mem *mem, uint64_t pool_gfn, uint64_t pool_pages);
/* smmu_gas_map's semantics: @prot is SMMU_PROT_* bits (and KD_PROT_NOACCESSED). @return 0 or
 * -errno. */
int kd_gpt_map(struct kd_gpt *g, uint64_t gva, uint64_t gfn, int level, uint32_t prot);
/* The gpa of the entry at @level for @gva (the tables above it must exist). @return 0, -ENOENT,
 * -EEXIST (a large leaf above). */
int kd_gpt_entry_gpa(struct kd_gpt *g, uint64_t gva, int level, uint64_t *pte_gpa);
/* The entry a 4 KiB leaf mapping @gpa with @prot holds (as smmu_gas_map writes it). */
uint64_t kd_gpt_leaf(uint64_t gpa, int level, uint32_t prot);

/* The guest store a gpte or gclear step makes: the gva it stores to in the address space's pool
 * window (the entry's, plus the step's offset) and the value (its low st->bytes bytes are
 * stored). @return 0; -ENOENT (no table there; for gclear: entry not present); -ERANGE (the
 * store would run past the table's end). */
int kd_guest_store(struct kd_gpt *g, const struct kd_as *as, const struct kd_step *st, uint64_t *gva,
		   uint64_t *val);

/* A mapping callback: map one page. */
typedef int (*kd_map_fn)(void *ctx, uint64_t gva, uint64_t gfn, int level, uint32_t prot);
/* The mappings every address space starts with: the low 2 MiB identity, then its pool window. */
int kd_layout_as(const struct kd_as *as, kd_map_fn map, void *ctx);
/* The mappings of one 'map' step. */
int kd_layout_map(const struct kd_step *st, kd_map_fn map, void *ctx);

#endif
