/*
 * Memslots (kvm_memory_slot): the sorted slot array, gfn lookup, and each slot's backing and
 * per-gfn metadata (rmaps, lpage_info, dirty bitmap).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "mmu.h"

#define GIB (1ull << 30)

/* search_memslots: binary search over slots sorted by base_gfn. */
struct memslot *gfn_to_memslot(const struct memslots *s, smmu_gfn_t gfn)
{
	int lo = 0, hi = s->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		struct memslot *m = s->sorted[mid];
		if (gfn < m->base_gfn)
			hi = mid - 1;
		else if (gfn - m->base_gfn >= m->npages)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

struct memslot *gfn_to_valid_memslot(const struct memslots *s, smmu_gfn_t gfn)
{
	struct memslot *m = gfn_to_memslot(s, gfn);
	return m && !(m->flags & KVM_MEMSLOT_INVALID) ? m : NULL;
}

bool memslots_overlap(const struct memslots *s, smmu_gfn_t base, uint64_t npages,
		      const struct memslot *except)
{
	for (int i = 0; i < s->n; i++) {
		const struct memslot *m = s->sorted[i];
		if (m == except)
			continue;
		if (base < m->base_gfn + m->npages && m->base_gfn < base + npages)
			return true;
	}
	return false;
}

int memslots_insert(struct memslots *s, struct memslot *slot)
{
	if (s->by_id[slot->id])
		return -EEXIST;
	if (memslots_overlap(s, slot->base_gfn, slot->npages, NULL))
		return -EEXIST;
	int i = s->n;
	while (i > 0 && s->sorted[i - 1]->base_gfn > slot->base_gfn) {
		s->sorted[i] = s->sorted[i - 1];
		i--;
	}
	s->sorted[i] = slot;
	s->n++;
	s->by_id[slot->id] = slot;
	s->total_pages += slot->npages;
	return 0;
}

void memslots_remove(struct memslots *s, struct memslot *slot)
{
	int i = 0;
	while (i < s->n && s->sorted[i] != slot)
		i++;
	if (i == s->n)
		return;
	memmove(&s->sorted[i], &s->sorted[i + 1], (size_t)(s->n - i - 1) * sizeof(s->sorted[0]));
	s->n--;
	s->by_id[slot->id] = NULL;
	s->total_pages -= slot->npages;
}

/* A publication of the slot array: 3.11's install_new_memslots (update_memslots: the generation
 * + 1), or the first half of today's kvm_swap_active_memslots (KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS
 * set on the new array; memslots_updated drops it and adds KVM_ADDRESS_SPACE_NUM once readers are
 * gone). Under the writer side of srcu. */
void memslots_gen_publish(struct memslots *s, const struct smmu_rules *rules)
{
	uint64_t gen = atomic_load_explicit(&s->generation, memory_order_relaxed);
	if (rules->memslots_gen_in_progress)
		gen |= KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS;
	else
		gen += rules->memslots_gen_step;
	atomic_store_explicit(&s->generation, gen, memory_order_release);
}

/* kvm_arch_create_memslot: rmap heads for every level, lpage_info for the large ones. */
int memslot_alloc_arch(struct memslot *slot, smmu_gfn_t base_gfn)
{
	smmu_gfn_t last = base_gfn + slot->npages - 1;
	slot->arch_base_gfn = base_gfn;
	memset(slot->rmap, 0, sizeof(slot->rmap));
	memset(slot->lpage, 0, sizeof(slot->lpage));
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
		uint64_t n = gfn_to_index(last, base_gfn, level) + 1;
		slot->nr_entries[level - 1] = n;
		slot->rmap[level - 1] = smmu_calloc(n, sizeof(uintptr_t));
		if (!slot->rmap[level - 1])
			goto fail;
		if (level > 1) {
			slot->lpage[level - 2] = smmu_calloc(n, sizeof(int32_t));
			if (!slot->lpage[level - 2])
				goto fail;
		}
	}
	return 0;
fail:
	memslot_free_arch(slot);
	return -ENOMEM;
}

bool memslot_arch_fits(const struct memslot *slot, smmu_gfn_t base_gfn)
{
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++)
		if (gfn_to_index(base_gfn + slot->npages - 1, base_gfn, level) >= slot->nr_entries[level - 1])
			return false;
	return true;
}

void memslot_free_arch(struct memslot *slot)
{
	for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
		smmu_free(slot->rmap[level - 1], slot->nr_entries[level - 1] * sizeof(uintptr_t));
		slot->rmap[level - 1] = NULL;
		if (level > 1) {
			smmu_free(slot->lpage[level - 2], slot->nr_entries[level - 1] * sizeof(int32_t));
			slot->lpage[level - 2] = NULL;
		}
	}
}

/* The backing: anonymous, lazily allocated, placed so that hva and gpa agree modulo 1 GiB
 * (so large pages can be backed, as THP or hugetlbfs would back them). */
static int backing_map(struct memslot *slot)
{
	size_t len = (size_t)slot->npages << SMMU_PAGE_SHIFT;
	size_t map_len = len + 2 * GIB;
	uint8_t *raw = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return -ENOMEM;
	uintptr_t start = ((uintptr_t)raw + GIB - 1) & ~(uintptr_t)(GIB - 1);
	start += (slot->base_gfn << SMMU_PAGE_SHIFT) & (GIB - 1);
	/* Trim what lies outside [start, start + len). */
	if (start > (uintptr_t)raw)
		munmap(raw, start - (uintptr_t)raw);
	uintptr_t end = (uintptr_t)raw + map_len;
	if (end > start + len)
		munmap((void *)(start + len), end - (start + len));
	slot->hva = (uint8_t *)start;
	slot->map_base = (void *)start;
	slot->map_len = len;
	return 0;
}

int memslot_alloc(struct memslot **out, int id, smmu_gfn_t base_gfn, uint64_t npages, uint32_t flags)
{
	struct memslot *slot = smmu_calloc(1, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	slot->id = id;
	slot->base_gfn = base_gfn;
	slot->npages = npages;
	slot->flags = flags;
	slot->host_level = SMMU_LEVEL_1G;
	/* The backing starts at base_gfn's offset in a 2 MiB page (hva and gpa agree modulo 1 GiB). */
	uint64_t host_pages = ((base_gfn & (KVM_PAGES_PER_HPAGE(SMMU_LEVEL_2M) - 1)) + npages +
			       KVM_PAGES_PER_HPAGE(SMMU_LEVEL_2M) - 1) / KVM_PAGES_PER_HPAGE(SMMU_LEVEL_2M);
	slot->host_split_words = (host_pages + 63) / 64;
	slot->host_split = smmu_calloc(slot->host_split_words, sizeof(uint64_t));
	int r = slot->host_split ? memslot_alloc_arch(slot, base_gfn) : -ENOMEM;
	if (r)
		goto fail;
	if (flags & SMMU_MEM_LOG_DIRTY_PAGES) {
		slot->dirty_bitmap = smmu_calloc((npages + 63) / 64, sizeof(uint64_t));
		if (!slot->dirty_bitmap) {
			r = -ENOMEM;
			goto fail;
		}
	}
	slot->host_writable = smmu_calloc((npages + 63) / 64, sizeof(uint64_t));
	if (!slot->host_writable) {
		r = -ENOMEM;
		goto fail;
	}
	r = backing_map(slot);
	if (r)
		goto fail;
	lpage_info_init(slot);
	*out = slot;
	return 0;
fail:
	memslot_free(slot);
	return r;
}

void memslot_free(struct memslot *slot)
{
	if (!slot)
		return;
	memslot_free_arch(slot);
	smmu_free((void *)slot->dirty_bitmap, 0);
	smmu_free((void *)slot->host_writable, 0);
	smmu_free((void *)slot->host_split, slot->host_split_words * sizeof(uint64_t));
	if (slot->map_base)
		munmap(slot->map_base, slot->map_len);
	smmu_free(slot, sizeof(*slot));
}

uint64_t memslot_host_page(const struct memslot *slot, uintptr_t hva)
{
	return (hva >> PT64_LEVEL_SHIFT(SMMU_LEVEL_2M)) - ((uintptr_t)slot->hva >> PT64_LEVEL_SHIFT(SMMU_LEVEL_2M));
}

/* host_pfn_mapping_level (today), host_mapping_level (3.11), as the slot's backing is mapped. */
int memslot_host_level(const struct memslot *slot, smmu_gfn_t gfn)
{
	if (slot->host_level != SMMU_LEVEL_2M)
		return slot->host_level;
	uint64_t i = memslot_host_page(slot, (uintptr_t)memslot_gfn_to_hva(slot, gfn));
	uint64_t word = atomic_load_explicit(&slot->host_split[i / 64], memory_order_relaxed);
	return (word >> (i % 64)) & 1 ? SMMU_LEVEL_4K : SMMU_LEVEL_2M;
}

void mark_page_dirty(struct memslot *slot, smmu_gfn_t gfn)
{
	_Atomic uint64_t *bm = slot->dirty_bitmap;
	if (!bm)
		return;
	uint64_t rel = gfn - slot->base_gfn;
	atomic_fetch_or_explicit(&bm[rel / 64], 1ull << (rel % 64), memory_order_relaxed);
}

/* A host write maps its page writable: the 4 KiB page, or the whole 2 MiB huge page holding it
 * where the host maps the backing with THP and has not split that page (the write fault
 * populated the huge page, one pmd for all of it). The huge page is in hva order, clipped to the
 * slot. */
void host_pte_set_writable(struct memslot *slot, smmu_gfn_t gfn)
{
	uint64_t rel = gfn - slot->base_gfn, end = rel + 1;
	if (memslot_host_level(slot, gfn) == SMMU_LEVEL_2M) {
		uintptr_t hva = (uintptr_t)memslot_gfn_to_hva(slot, gfn), base = (uintptr_t)slot->hva;
		uintptr_t p0 = hva & ~(((uintptr_t)1 << PT64_LEVEL_SHIFT(SMMU_LEVEL_2M)) - 1);
		uintptr_t p1 = p0 + ((uintptr_t)1 << PT64_LEVEL_SHIFT(SMMU_LEVEL_2M));
		rel = p0 > base ? (p0 - base) >> SMMU_PAGE_SHIFT : 0;
		end = (p1 - base) >> SMMU_PAGE_SHIFT;
		if (end > slot->npages)
			end = slot->npages;
	}
	for (; rel < end; rel++)
		atomic_fetch_or_explicit(&slot->host_writable[rel / 64], 1ull << (rel % 64), memory_order_relaxed);
}

bool host_pte_writable(const struct memslot *slot, smmu_gfn_t gfn)
{
	uint64_t rel = gfn - slot->base_gfn;
	return atomic_load_explicit(&slot->host_writable[rel / 64], memory_order_relaxed) & (1ull << (rel % 64));
}

void host_pte_unmap(struct memslot *slot, smmu_gfn_t start, smmu_gfn_t end)
{
	for (uint64_t rel = start - slot->base_gfn; rel < end - slot->base_gfn; rel++)
		atomic_fetch_and_explicit(&slot->host_writable[rel / 64], ~(1ull << (rel % 64)), memory_order_relaxed);
}
