/*
 * smmu-kvmdiff — the host's pages behind a scenario slot (see hostmem.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "hostmem.h"

#include <errno.h>
#include <stdlib.h>

#define HUGE_SHIFT 21
#define HUGE_PAGES 512u

enum { KD_HP_NONE, KD_HP_ZERO, KD_HP_ANON };             /* a 4 KiB page */
enum { KD_HH_NONE, KD_HH_ZERO, KD_HH_THP, KD_HH_SPLIT }; /* a 2 MiB host page (THP only) */

int kd_hostmem_init(struct kd_hostmem *h, void *hva, uint64_t npages, bool thp, bool thp_write_allocates)
{
	uint64_t nhuge = (((uintptr_t)hva + (npages << 12) - 1) >> HUGE_SHIFT) - ((uintptr_t)hva >> HUGE_SHIFT) + 1;
	*h = (struct kd_hostmem){ .hva = (uintptr_t)hva, .npages = npages, .thp = thp,
				  .thp_write_allocates = thp_write_allocates };
	h->page = calloc(npages, 1);
	h->huge = calloc(nhuge, 1);
	if (!h->page || !h->huge) {
		kd_hostmem_free(h);
		return -ENOMEM;
	}
	return 0;
}

void kd_hostmem_free(struct kd_hostmem *h)
{
	free(h->page);
	free(h->huge);
	h->page = h->huge = NULL;
}

static uint64_t huge_index(const struct kd_hostmem *h, uintptr_t hva)
{
	return (hva >> HUGE_SHIFT) - (h->hva >> HUGE_SHIFT);
}

/* The 4 KiB pages of the mapping inside 2 MiB host page @i get state @st. */
static void huge_pages_set(struct kd_hostmem *h, uint64_t i, uint8_t st)
{
	uintptr_t p0 = ((h->hva >> HUGE_SHIFT) + i) << HUGE_SHIFT;
	for (uintptr_t a = p0; a < p0 + ((uintptr_t)HUGE_PAGES << 12); a += 4096)
		if (a >= h->hva && a < h->hva + (h->npages << 12))
			h->page[(a - h->hva) >> 12] = st;
}

bool kd_hostmem_access(struct kd_hostmem *h, uintptr_t hva, bool write, uintptr_t *start, uintptr_t *end)
{
	uint64_t p = (hva - h->hva) >> 12, i = huge_index(h, hva);
	*start = hva & ~(uintptr_t)4095;
	*end = *start + 4096;
	if (h->thp && h->huge[i] != KD_HH_SPLIT) {
		if (h->huge[i] == KD_HH_NONE) /* the huge zero page, or a huge page allocated */
			h->huge[i] = write ? KD_HH_THP : KD_HH_ZERO;
		else if (h->huge[i] == KD_HH_ZERO && write && h->thp_write_allocates) {
			/* 6.13 on: a THP replaces the huge zero page, which is unmapped whole */
			h->huge[i] = KD_HH_THP;
			*start = ((h->hva >> HUGE_SHIFT) + i) << HUGE_SHIFT;
			*end = *start + ((uintptr_t)HUGE_PAGES << 12);
			return true;
		} else if (h->huge[i] == KD_HH_ZERO && write) { /* split, 4 KiB zero pages, this one copied */
			h->huge[i] = KD_HH_SPLIT;
			huge_pages_set(h, i, KD_HP_ZERO);
			h->page[p] = KD_HP_ANON;
			return true;
		}
		return false;
	}
	if (h->page[p] == KD_HP_NONE)
		h->page[p] = write ? KD_HP_ANON : KD_HP_ZERO;
	else if (h->page[p] == KD_HP_ZERO && write) {
		h->page[p] = KD_HP_ANON;
		return true;
	}
	return false;
}

void kd_hostmem_dontneed(struct kd_hostmem *h, uintptr_t hva, uint64_t len)
{
	for (uintptr_t a = hva; a < hva + len; a += 4096) {
		uint64_t i = huge_index(h, a);
		uintptr_t p0 = ((h->hva >> HUGE_SHIFT) + i) << HUGE_SHIFT;
		if (h->thp && h->huge[i] != KD_HH_SPLIT && h->huge[i] != KD_HH_NONE) {
			if (hva <= p0 && hva + len >= p0 + ((uintptr_t)HUGE_PAGES << 12)) {
				h->huge[i] = KD_HH_NONE; /* the whole huge page goes */
				a = p0 + ((uintptr_t)HUGE_PAGES << 12) - 4096;
				continue;
			}
			/* zap_pmd_range splits a huge page cut in part: its pages stay as they were */
			huge_pages_set(h, i, h->huge[i] == KD_HH_ZERO ? KD_HP_ZERO : KD_HP_ANON);
			h->huge[i] = KD_HH_SPLIT;
		}
		if (!h->thp || h->huge[i] == KD_HH_SPLIT)
			h->page[(a - h->hva) >> 12] = KD_HP_NONE;
	}
}
