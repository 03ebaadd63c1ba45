/*
 * smmu-kvmdiff — guest page tables in the library's shape (see gpt.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "gpt.h"

#include <errno.h>

#include <shadowmmu/guest.h>

#define INDEX(gva, level) (((gva) >> (12 + 9 * ((level) - 1))) & 511)

int kd_gpt_init(struct kd_gpt *g, const struct kd_mem *mem, uint64_t pool_gfn, uint64_t pool_pages)
{
	*g = (struct kd_gpt){ .mem = *mem, .pool_gfn = pool_gfn, .pool_pages = pool_pages, .used = 1 };
	return g->mem.zero_page(g->mem.ctx, pool_gfn << 12);
}

uint64_t kd_gpt_leaf(uint64_t gpa, int level, uint32_t prot)
{
	uint64_t e = gpa | SMMU_PTE_PRESENT | (prot & KD_PROT_NOACCESSED ? 0 : SMMU_PTE_ACCESSED);
	if (prot & SMMU_PROT_WRITE)
		e |= SMMU_PTE_WRITABLE | SMMU_PTE_DIRTY;
	if (prot & SMMU_PROT_USER)
		e |= SMMU_PTE_USER;
	if (prot & SMMU_PROT_NOEXEC)
		e |= SMMU_PTE_NX;
	if (level > 1)
		e |= SMMU_PTE_LARGE;
	return e;
}

/* The entry for @gva at @level, making the tables above it from the pool (in order). */
static int entry(struct kd_gpt *g, uint64_t gva, int level, int create, uint64_t *pte_gpa)
{
	uint64_t table = g->pool_gfn;
	for (int l = 4; l > level; l--) {
		uint64_t a = (table << 12) + INDEX(gva, l) * 8, e;
		int r = g->mem.read(g->mem.ctx, a, &e);
		if (r)
			return r;
		if (!(e & SMMU_PTE_PRESENT)) {
			if (!create)
				return -ENOENT;
			if (g->used == g->pool_pages)
				return -ENOSPC;
			uint64_t t = g->pool_gfn + g->used;
			if ((r = g->mem.zero_page(g->mem.ctx, t << 12)))
				return r;
			g->used++;
			e = (t << 12) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER | SMMU_PTE_ACCESSED;
			if ((r = g->mem.write(g->mem.ctx, a, e)))
				return r;
		} else if (e & SMMU_PTE_LARGE) {
			return -EEXIST;
		}
		table = (e & SMMU_PTE_ADDR_MASK) >> 12;
	}
	*pte_gpa = (table << 12) + INDEX(gva, level) * 8;
	return 0;
}

int kd_gpt_map(struct kd_gpt *g, uint64_t gva, uint64_t gfn, int level, uint32_t prot)
{
	uint64_t span = 1ull << (9 * (level - 1)), a, old;
	if (level < 1 || level > 3 || ((gva >> 12) & (span - 1)) || (gva & 4095) || (gfn & (span - 1)))
		return -EINVAL;
	int r = entry(g, gva, level, 1, &a);
	if (r)
		return r;
	if (level > 1) {
		if ((r = g->mem.read(g->mem.ctx, a, &old)))
			return r;
		if ((old & SMMU_PTE_PRESENT) && !(old & SMMU_PTE_LARGE))
			return -EEXIST;
	}
	return g->mem.write(g->mem.ctx, a, kd_gpt_leaf(gfn << 12, level, prot));
}

int kd_gpt_entry_gpa(struct kd_gpt *g, uint64_t gva, int level, uint64_t *pte_gpa)
{
	return entry(g, gva, level, 0, pte_gpa);
}

int kd_guest_store(struct kd_gpt *g, const struct kd_as *as, const struct kd_step *st, uint64_t *gva,
		   uint64_t *val)
{
	uint64_t a, old;
	int level = st->op == KD_GCLEAR ? st->level : 1;
	if (entry(g, st->a, level, 0, &a))
		return -ENOENT;
	if (st->op == KD_GCLEAR) {
		if (g->mem.read(g->mem.ctx, a, &old) || !(old & SMMU_PTE_PRESENT))
			return -ENOENT;
		*val = 0;
	} else {
		*val = kd_gpt_leaf(st->c, 1, SMMU_PROT_USER | (st->ro ? 0 : SMMU_PROT_WRITE));
	}
	/* A store that runs past the table's end would be two stores (the emulator splits it). */
	if ((a & 4095) + (uint64_t)st->offset + (uint64_t)st->bytes > 4096)
		return -ERANGE;
	*gva = KD_PTWIN + (a - as->pool_gpa) + (uint64_t)st->offset;
	return 0;
}

int kd_layout_as(const struct kd_as *as, kd_map_fn map, void *ctx)
{
	int r = 0;
	for (uint64_t a = 0; !r && a < KD_IDMAP_BYTES; a += 4096)
		r = map(ctx, a, a >> 12, 1, SMMU_PROT_WRITE | SMMU_PROT_USER | KD_PROT_NOACCESSED);
	for (uint64_t i = 0; !r && i < as->pool_pages; i++)
		r = map(ctx, KD_PTWIN + i * 4096, (as->pool_gpa >> 12) + i, 1,
			SMMU_PROT_WRITE | SMMU_PROT_USER | SMMU_PROT_NOEXEC);
	return r;
}

int kd_layout_map(const struct kd_step *st, kd_map_fn map, void *ctx)
{
	int level = st->large ? 2 : 1;
	uint64_t psz = st->large ? 2ull << 20 : 4096;
	uint32_t prot = SMMU_PROT_USER | (st->ro ? 0 : SMMU_PROT_WRITE) | (st->nx ? SMMU_PROT_NOEXEC : 0) |
			(st->noa ? KD_PROT_NOACCESSED : 0);
	int r = 0;
	for (uint64_t i = 0; !r && i < st->b; i++)
		r = map(ctx, st->a + i * st->gstride, (st->c + i * psz) >> 12, level, prot);
	return r;
}
