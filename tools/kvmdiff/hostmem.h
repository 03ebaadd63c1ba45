/*
 * smmu-kvmdiff — the host's pages behind a scenario slot, as the kernel backend's anonymous mmap
 * gets them (MADV_HUGEPAGE or MADV_NOHUGEPAGE), and what a guest access makes the host do that
 * KVM sees through its MMU notifier. The library side replays those notifications, so that both
 * sides' shadow MMUs see the same host.
 *
 *   - a read of a page nobody wrote maps the shared zero page (over THP: the huge zero page, for
 *     its whole 2 MiB): KVM maps it read-only (hva_to_pfn gets no writable pfn);
 *   - the first write to a zero-mapped page copies it (do_wp_page): the host unmaps the zero
 *     page first, an invalidation of that 4 KiB page; KVM drops its spte and refaults;
 *   - over THP, a write to the huge zero page splits it (do_huge_pmd_wp_page → __split_huge_pmd)
 *     and copies the 4 KiB page written: the host maps that 2 MiB with 4 KiB pages from then on
 *     (the library learns the split from the partial invalidation, smmu_memslot_set_host_level);
 *     from 6.13 (thp_write_allocates) it allocates a huge page instead, an invalidation of the
 *     whole 2 MiB;
 *     a first write to untouched THP memory allocates a huge page (do_huge_pmd_anonymous_page);
 *   - MADV_DONTNEED frees the range; over THP a huge page it covers only in part is split.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KVMDIFF_HOSTMEM_H
#define KVMDIFF_HOSTMEM_H

#include <stdbool.h>
#include <stdint.h>

struct kd_hostmem {
	uintptr_t hva;    /* start of the slot's backing */
	uint64_t npages;  /* 4 KiB pages */
	bool thp;         /* MADV_HUGEPAGE */
	bool thp_write_allocates; /* a write to the huge zero page allocates a THP (6.13 on) */
	uint8_t *page;    /* per 4 KiB page: KD_HP_* */
	uint8_t *huge;    /* per 2 MiB host page (from the one holding hva): KD_HH_* */
};

/* Create the model of a fresh mapping of @npages pages at @hva. @return 0 or -ENOMEM. */
int kd_hostmem_init(struct kd_hostmem *h, void *hva, uint64_t npages, bool thp, bool thp_write_allocates);
void kd_hostmem_free(struct kd_hostmem *h);
/* An access to the page at @hva (inside the mapping). @return true when the host invalidates
 * [*start, *end) before the access can complete (the MMU notifier's range). */
bool kd_hostmem_access(struct kd_hostmem *h, uintptr_t hva, bool write, uintptr_t *start, uintptr_t *end);
/* MADV_DONTNEED of [@hva, @hva + @len) (inside the mapping, page-aligned). */
void kd_hostmem_dontneed(struct kd_hostmem *h, uintptr_t hva, uint64_t len);

#endif
