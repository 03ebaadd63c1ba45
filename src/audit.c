/*
 * The audit: the correctness oracle (the invariants are listed in audit.h). In the spirit of KVM's
 * mmu_audit.c (audit_mappings, audit_rmap, audit_write_protection, ...), but complete: under
 * mmu_lock it checks every invariant over every page, spte, rmap entry, lpage_info entry, vCPU
 * root and TLB entry, and reports each violation with the objects it concerns.
 *
 * Cost: O(pages * 512 + entries of every slot's rmap and lpage_info arrays), plus the work of
 * translating every leaf reachable from a vCPU root. Scratch memory is O(pages): the active list
 * as an array, an open-addressing set from page to index, and two 512-bit bitmaps per page.
 * The "referenced" bitmap makes both back-reference checks O(1) per entry: walking every
 * parent_ptes list and every rmap sets the bit of each spte they name (after checking that the
 * spte points back), and the pass over all sptes then requires the bit of every present spte. A
 * non-leaf spte can only be named by a parent_ptes list and a leaf only by an rmap, so one
 * bitmap serves both. The "present" bitmap, filled by that pass, lets the walks from the roots
 * read only present sptes. In shadow mode each level-1 table reached gets one full guest walk;
 * its other leaves are compared with the entries of the guest table that walk ended in.
 * Violations are built only when found, so a clean audit is a few tens of nanoseconds per
 * present spte, bound by memory traffic.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"

#define SPTE_WORDS (SMMU_PT_ENTRIES / 64)
#define NO_INDEX UINT32_MAX
#define ACC_CHECKED (SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC)

struct page_set_entry {
	const struct smmu_sp *sp;
	uint32_t idx;
};

struct audit {
	struct smmu_vm *vm;
	struct smmu_audit_report *r;
	struct smmu_sp **pages;       /* active_mmu_pages, head (newest) first */
	uint32_t n;
	struct smmu_sp **zapped;      /* zapped_obsolete_pages: set indices n, n + 1, ... */
	uint32_t nz;
	uint32_t nz_drain;            /* zapped[0 .. nz_drain) are zapped_obsolete_pages', then
				       * zap_all_pending's up to nz_pending */
	uint32_t nz_pending;          /* zapped[nz_pending .. nz): zapped roots still in use that
				       * are on no list (today's rule), found through the vCPUs */
	size_t alloc_z;               /* entries of zapped */
	uint64_t mmio;                /* MMIO sptes in listed pages' tables */
	const struct smmu_vcpu *only; /* the vCPUs whose invariants 7, 8, 10 are checked: */
	bool all_vcpus;               /* every vCPU, else only this one (or none when NULL) */
	struct page_set_entry *set;   /* open addressing, linear probing */
	unsigned set_bits;
	uint64_t *ref;                /* SPTE_WORDS per page: spte named by parent_ptes / rmap */
	uint64_t *present;            /* SPTE_WORDS per page: present sptes, for the root walks */
	uint8_t *in_hash;             /* per page, then per zapped page: seen in mmu_page_hash */
	uint32_t *stamp;              /* per page: last root walk that visited it */
	uint32_t cur_stamp;
	size_t set_cap;
	size_t alloc_n;               /* entries allocated per per-page array (at least 1) */
	uint64_t *keys;               /* alloc_n: lpage_info keys (4) and shadowed gfns (5) */
	const struct memslot *last_slot; /* gfn_to_memslot cache: leaves come in gfn runs */
	const struct smmu_sp *last_sp;   /* set_lookup cache: rmap entries come in page runs */
	uint32_t last_idx;
};

static const char *const inv_names[SMMU_INV_COUNT] = {
	[SMMU_INV_PAGE_LISTS] = "page lists",
	[SMMU_INV_PARENT_LINKS] = "parent links",
	[SMMU_INV_RMAP] = "rmap",
	[SMMU_INV_LPAGE_COUNT] = "lpage_info count",
	[SMMU_INV_WRITE_PROTECT] = "write protection",
	[SMMU_INV_LARGE_SPTE] = "large spte",
	[SMMU_INV_TRANSLATION] = "translation",
	[SMMU_INV_OBSOLETE_ROOT] = "obsolete root",
	[SMMU_INV_SLOT_LIFETIME] = "slot lifetime",
	[SMMU_INV_TLB] = "tlb",
};

SMMU_API const char *smmu_invariant_name(enum smmu_invariant inv)
{
	if ((int)inv <= 0 || inv >= SMMU_INV_COUNT)
		return "?";
	return inv_names[inv];
}

/* ---- violations ----------------------------------------------------------------------------- */

/* What a violation concerns. Built only on the failure path (a compound literal at the call),
 * so the checks themselves cost nothing extra. NULL pointers mean "does not apply". */
struct spot {
	const struct smmu_sp *sp;     /* a page on the active list: its role, gen, gfn are read */
	const void *raw_sp;           /* a page pointer that may be dead: recorded, never read */
	const uint64_t *sptep;        /* gives the spte index in sp */
	const struct memslot *slot;
	const struct smmu_vcpu *vcpu;
	int level;                    /* 0: sp's level, if any */
	smmu_gfn_t gfn;
	uint64_t addr;
};

__attribute__((format(printf, 6, 7)))
static void report(struct audit *a, enum smmu_invariant inv, const struct spot *s, int64_t expected,
		   int64_t found, const char *fmt, ...)
{
	struct smmu_audit_report *r = a->r;
	r->total++;
	r->per_inv[inv]++;
	if (r->stored >= r->cap || !r->v)
		return;
	struct smmu_violation *v = &r->v[r->stored++];
	memset(v, 0, sizeof(*v));
	v->inv = inv;
	v->slot = s->slot ? s->slot->id : -1;
	v->level = s->level;
	v->gfn = s->gfn;
	v->spte_index = -1;
	v->vcpu = s->vcpu ? s->vcpu->id : -1;
	v->addr = s->addr;
	v->expected = expected;
	v->found = found;
	if (s->sp) {
		v->sp = s->sp;
		v->sp_role = s->sp->role.word;
		v->sp_gen = s->sp->mmu_valid_gen;
		v->sp_gfn = s->sp->gfn;
		if (!v->level)
			v->level = (int)s->sp->role.level;
		if (s->sptep)
			v->spte_index = (int)(s->sptep - s->sp->spt);
	} else {
		v->sp = s->raw_sp;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->what, sizeof(v->what), fmt, ap);
	va_end(ap);
}

#define SPOT(...) (&(const struct spot){ __VA_ARGS__ })

/* ---- the page set --------------------------------------------------------------------------- */

static size_t ptr_hash(const struct audit *a, const void *p)
{
	return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull) >> (64 - a->set_bits));
}

/* Insert @sp as page @idx; false when it is there already. */
static bool set_insert(struct audit *a, const struct smmu_sp *sp, uint32_t idx)
{
	size_t mask = a->set_cap - 1;
	for (size_t h = ptr_hash(a, sp);; h = (h + 1) & mask) {
		if (!a->set[h].sp) {
			a->set[h].sp = sp;
			a->set[h].idx = idx;
			return true;
		}
		if (a->set[h].sp == sp)
			return false;
	}
}

/* The index @sp was inserted with, or NO_INDEX. */
static uint32_t set_find(const struct audit *a, const void *sp)
{
	if (!sp)
		return NO_INDEX;
	size_t mask = a->set_cap - 1;
	for (size_t h = ptr_hash(a, sp);; h = (h + 1) & mask) {
		if (!a->set[h].sp)
			return NO_INDEX;
		if (a->set[h].sp == sp)
			return a->set[h].idx;
	}
}

/* The index of @sp on the active list, or NO_INDEX when it is not a page there. */
static uint32_t set_lookup(const struct audit *a, const void *sp)
{
	uint32_t idx = set_find(a, sp);
	return idx < a->n ? idx : NO_INDEX;
}

/* The index of @sp on zapped_obsolete_pages, or NO_INDEX. */
static uint32_t zapped_lookup(const struct audit *a, const void *sp)
{
	uint32_t idx = set_find(a, sp);
	return idx != NO_INDEX && idx >= a->n ? idx - a->n : NO_INDEX;
}

static bool ref_test(const struct audit *a, uint32_t idx, int i)
{
	return a->ref[(size_t)idx * SPTE_WORDS + (unsigned)i / 64] & (1ull << ((unsigned)i % 64));
}

/* Mark spte @i of page @idx as named by a back-reference; false when it was named already. */
static bool ref_set(struct audit *a, uint32_t idx, int i)
{
	uint64_t *w = &a->ref[(size_t)idx * SPTE_WORDS + (unsigned)i / 64];
	uint64_t bit = 1ull << ((unsigned)i % 64);
	if (*w & bit)
		return false;
	*w |= bit;
	return true;
}

/* Where @sptep lies: its page's index on the active list (NO_INDEX if none) and its index. */
static uint32_t locate_spte(struct audit *a, const uint64_t *sptep, struct smmu_sp **sp,
			    int *i)
{
	*sp = page_header(sptep);
	uint32_t idx;
	if (*sp == a->last_sp) {
		idx = a->last_idx;
	} else {
		idx = set_lookup(a, *sp);
		if (idx != NO_INDEX) {
			a->last_sp = *sp;
			a->last_idx = idx;
		}
	}
	if (idx != NO_INDEX)
		*i = (int)(sptep - (*sp)->spt);
	return idx;
}

/* ---- scratch memory ------------------------------------------------------------------------- */

static void scratch_free(struct audit *a)
{
	smmu_free(a->pages, a->alloc_n * sizeof(*a->pages));
	smmu_free(a->set, a->set_cap * sizeof(*a->set));
	smmu_free(a->ref, a->alloc_n * SPTE_WORDS * sizeof(*a->ref));
	smmu_free(a->present, a->alloc_n * SPTE_WORDS * sizeof(*a->present));
	smmu_free(a->in_hash, a->alloc_n + a->alloc_z);
	smmu_free(a->zapped, a->alloc_z * sizeof(*a->zapped));
	smmu_free(a->stamp, a->alloc_n * sizeof(*a->stamp));
	smmu_free(a->keys, a->alloc_n * sizeof(*a->keys));
	memset(a, 0, sizeof(*a));
}

/* Scratch for up to @n active and @nz zapped pages, allocated before mmu_lock is taken. */
static int scratch_alloc(struct audit *a, size_t n, size_t nz)
{
	size_t m = n ? n : 1, mz = nz ? nz : 1;
	a->n = 0;
	a->nz = 0;
	a->alloc_n = m;
	a->alloc_z = mz;
	a->set_bits = 6;
	while ((1ull << a->set_bits) < 2ull * (m + mz))
		a->set_bits++;
	a->set_cap = (size_t)1 << a->set_bits;
	a->pages = smmu_calloc(m, sizeof(*a->pages));
	a->set = smmu_calloc(a->set_cap, sizeof(*a->set));
	a->ref = smmu_calloc(m * SPTE_WORDS, sizeof(*a->ref));
	a->present = smmu_calloc(m * SPTE_WORDS, sizeof(*a->present));
	a->in_hash = smmu_calloc(m + mz, 1);
	a->zapped = smmu_calloc(mz, sizeof(*a->zapped));
	a->stamp = smmu_calloc(m, sizeof(*a->stamp));
	a->keys = smmu_calloc(m, sizeof(*a->keys));
	if (!a->pages || !a->set || !a->ref || !a->present || !a->in_hash || !a->stamp || !a->keys ||
	    !a->zapped)
		return -ENOMEM;
	return 0;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* The first gfn of entry @idx of a slot's level-@level array, clipped to the slot. */
static smmu_gfn_t index_to_gfn(const struct memslot *slot, int level, uint64_t idx)
{
	unsigned shift = (unsigned)(level - 1) * PT64_LEVEL_BITS;
	smmu_gfn_t gfn = ((slot->base_gfn >> shift) + idx) << shift;
	return gfn < slot->base_gfn ? slot->base_gfn : gfn;
}

static uint64_t backing_frame(const struct memslot *slot, smmu_gfn_t gfn)
{
	return (uint64_t)((uintptr_t)memslot_gfn_to_hva(slot, gfn) >> SMMU_PAGE_SHIFT);
}

/* gfn_to_memslot (valid or not), remembering the last slot found. */
static const struct memslot *slot_of(struct audit *a, smmu_gfn_t gfn)
{
	const struct memslot *slot = a->last_slot;
	if (slot && memslot_contains(slot, gfn))
		return slot;
	slot = gfn_to_memslot(&a->vm->slots, gfn);
	if (slot)
		a->last_slot = slot;
	return slot;
}

/* gfn_to_valid_memslot through the same cache. */
static const struct memslot *valid_slot_of(struct audit *a, smmu_gfn_t gfn)
{
	const struct memslot *slot = slot_of(a, gfn);
	return slot && !(slot->flags & KVM_MEMSLOT_INVALID) ? slot : NULL;
}

/* ---- 1. page lists: active_mmu_pages, mmu_page_hash, zapped_obsolete_pages, counts -------- */

/* Count the list at @head (@name); a list that loops without reaching its head stops at a bound. */
static uint64_t count_list(struct audit *a, struct list_node *head, const char *name)
{
	struct list_node *slow = head, *fast = head;
	uint64_t count = 0;
	for (;;) { /* Floyd: the hare meets the tortoise only in a loop that misses the head */
		for (int step = 0; step < 2; step++) {
			fast = fast->next;
			if (!fast || fast == head)
				goto out;
			count++;
		}
		slow = slow->next;
		if (slow == fast) {
			report(a, SMMU_INV_PAGE_LISTS, SPOT(0), 0, (int64_t)count,
			       "%s loops without returning to its head", name);
			break;
		}
	}
out:
	if (!fast)
		report(a, SMMU_INV_PAGE_LISTS, SPOT(0), 0, 0, "%s has a NULL link", name);
	return count < UINT32_MAX ? count : UINT32_MAX - 1;
}

static void collect_active(struct audit *a, uint32_t limit)
{
	struct list_node *head = &a->vm->active_mmu_pages;
	uint32_t n = 0;
	for (struct list_node *node = head->next; node && node != head && n < limit; node = node->next) {
		struct smmu_sp *sp = container_of(node, struct smmu_sp, link);
		if (!set_insert(a, sp, n)) {
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.raw_sp = sp), 0, 0,
			       "page appears twice on active_mmu_pages");
			break;
		}
		a->pages[n++] = sp;
	}
	a->n = n; /* never more than allocated */
}

/* Append the pages of @head after the active ones and those collected so far; false when the
 * list crosses another or loops. */
static bool collect_pending(struct audit *a, struct list_node *head, const char *name, uint32_t limit)
{
	uint32_t n = a->nz;
	for (struct list_node *node = head->next; node && node != head && n < limit; node = node->next) {
		struct smmu_sp *sp = container_of(node, struct smmu_sp, link);
		if (!set_insert(a, sp, a->n + n)) {
			bool active = set_lookup(a, sp) != NO_INDEX;
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.raw_sp = sp), 0, 0,
			       active ? "page is on both active_mmu_pages and %s" :
					"page appears twice on %s or on both pending lists", name);
			a->nz = n;
			return false; /* the lists are crossed or loop: what follows is not this list */
		}
		a->zapped[n++] = sp;
	}
	a->nz = n;
	return true;
}

/* The pages zapped and not yet freed, after the active ones in the set: a fast-zap drain's
 * (zapped_obsolete_pages), then a lock-breaking zap_all's (zap_all_pending). */
static void collect_zapped(struct audit *a, uint32_t limit)
{
	a->nz = 0;
	bool ok = collect_pending(a, &a->vm->zapped_obsolete_pages, "zapped_obsolete_pages", limit);
	a->nz_drain = a->nz;
	if (ok)
		collect_pending(a, &a->vm->zap_all_pending, "zap_all_pending", limit);
}

/*
 * The zapped roots still in use that are on no list: today's __kvm_mmu_prepare_zap_page takes
 * such a root off active_mmu_pages, and only its users' root pointers reach it until the last
 * one drops it (mmu_free_root_page). They follow the pending pages in zapped[]. Every root a vCPU
 * holds is looked at (its current root; the roots cache's too, where there is one).
 */
static void collect_zapped_roots(struct audit *a, uint32_t limit)
{
	const struct smmu_vm *vm = a->vm;
	a->nz_pending = a->nz;
	for (int k = 0; k < vm->nr_vcpus && a->nz < limit; k++) {
		const struct smmu_vcpu *v = vm->vcpus[k];
		for (int i = -1; v && i < KVM_MMU_NUM_PREV_ROOTS && a->nz < limit; i++) {
			const struct smmu_sp *root = i < 0 ? v->root : v->prev_roots[i].sp;
			if (!root || !root->role.invalid || set_find(a, root) != NO_INDEX)
				continue; /* none, not zapped (invariant 8 looks at it), or found already */
			set_insert(a, root, a->n + a->nz);
			a->zapped[a->nz++] = (struct smmu_sp *)root;
		}
	}
}

/* Every hash chain holds only listed pages, each in its gfn's bucket (audit_all_active_sps
 * walks the list; KVM has no check of the hash). */
static void audit_hash(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	for (uint64_t b = 0; b <= vm->hash_mask; b++) {
		uint64_t guard = 0;
		struct hlist_node **pprev = &vm->mmu_page_hash[b].first;
		for (struct hlist_node *node = *pprev; node; pprev = &node->next, node = node->next) {
			struct smmu_sp *sp = container_of(node, struct smmu_sp, hash_link);
			if (++guard > (uint64_t)a->n + a->nz + 1) {
				report(a, SMMU_INV_PAGE_LISTS, SPOT(0), (int64_t)a->n + a->nz, (int64_t)guard,
				       "hash bucket %" PRIu64 " holds more pages than exist: a loop", b);
				break;
			}
			uint32_t idx = set_lookup(a, sp);
			if (idx == NO_INDEX) {
				/* A drain's zapped pages stay hashed until its final commit. */
				uint32_t z = zapped_lookup(a, sp);
				if (z == NO_INDEX) {
					report(a, SMMU_INV_PAGE_LISTS, SPOT(.raw_sp = sp), 0, (int64_t)b,
					       "page in mmu_page_hash bucket %" PRIu64 " is on no page list", b);
					continue;
				}
				idx = a->n + z;
			}
			if (node->pprev != pprev)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 0, 0,
				       "hash_link.pprev does not point at its predecessor");
			uint32_t want = kvm_page_table_hashfn(vm, sp->gfn);
			if (want != b)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), want, (int64_t)b,
				       "page is in the wrong mmu_page_hash bucket");
			if (a->in_hash[idx])
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 1, 2,
				       "page appears twice in mmu_page_hash");
			a->in_hash[idx] = 1;
		}
	}
}

static void audit_page_lists(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	uint64_t indirect = 0, unsync = 0;
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *sp = a->pages[k];
		if (!a->in_hash[k])
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 1, 0,
			       "page on active_mmu_pages is not in mmu_page_hash");
		if (sp->role.invalid && !sp->root_count)
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 1, 0,
			       "invalid page with no root user left on active_mmu_pages");
		else if (sp->role.invalid && vm->rules->zapped_root_leaves_active_list)
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 0, 1,
			       "zapped root in use left on active_mmu_pages (today's "
			       "__kvm_mmu_prepare_zap_page takes it off the list)");
		if (!sp->role.direct && !sp->role.invalid)
			indirect++;
		if (sp->unsync) {
			unsync++;
			if (sp->role.direct || sp->role.invalid || sp->role.level != SMMU_LEVEL_4K)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), 0, 1,
				       "unsync page that is not a valid level-1 indirect page");
		}
	}
	if (vm->mmu_unsync != unsync)
		report(a, SMMU_INV_PAGE_LISTS, SPOT(0), (int64_t)unsync, (int64_t)vm->mmu_unsync,
		       "mmu_unsync differs from the unsync pages listed");
	/* A zapped root in use counts until it is freed, on the list (3.11) or off it (today). */
	uint64_t used = (uint64_t)a->n + (a->nz - a->nz_pending);
	if (vm->n_used_mmu_pages != used)
		report(a, SMMU_INV_PAGE_LISTS, SPOT(0), (int64_t)used, (int64_t)vm->n_used_mmu_pages,
		       "n_used_mmu_pages differs from the length of active_mmu_pages plus the zapped "
		       "roots in use off it");
	/* account_shadowed counts every indirect page (whatever the profile counts in
	 * lpage_info); unaccount_shadowed undoes it when the page is zapped (marked invalid). */
	uint64_t isp = atomic_load_explicit(&vm->indirect_shadow_pages, memory_order_relaxed);
	if (isp != indirect)
		report(a, SMMU_INV_PAGE_LISTS, SPOT(0), (int64_t)indirect, (int64_t)isp,
		       "indirect_shadow_pages differs from the valid indirect pages listed");
}

#define ZAPPED SPOT(.sp = sp, .gfn = sp->gfn)

/* Present sptes in @sp's table, and n_present when the table has none: what a zapped page
 * must not have. */
static uint32_t zapped_present(const struct smmu_sp *sp)
{
	uint32_t present = 0;
	for (int i = 0; i < SMMU_PT_ENTRIES; i++)
		present += is_shadow_present_pte(sp->spt[i]);
	return present ? present : sp->n_present;
}

static uint32_t roots_holding(const struct smmu_vm *vm, const struct smmu_sp *sp);

/*
 * A zapped root still in use, on no list (collect_zapped_roots), set index @idx: only today's
 * rule takes it off active_mmu_pages (3.11 moves it to the head); it stays hashed until freed,
 * and its zap unlinked its parents and children (a fault under it retries: is_page_fault_stale).
 */
static void audit_zapped_root(struct audit *a, const struct smmu_sp *sp, uint32_t idx)
{
	const struct smmu_vm *vm = a->vm;
	uint32_t users = roots_holding(vm, sp);
	if (!vm->rules->zapped_root_leaves_active_list)
		report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 1, 0,
		       "zapped root in use is off active_mmu_pages (3.11's kvm_mmu_prepare_zap_page "
		       "moves it to the head)");
	if (sp->root_count < users)
		report(a, SMMU_INV_PAGE_LISTS, ZAPPED, users, sp->root_count,
		       "zapped root has fewer root users than vCPU roots (current and cached) holding it");
	if (!a->in_hash[idx])
		report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 1, 0,
		       "zapped root in use is not in mmu_page_hash (it stays there until freed)");
	if (sp->parent_ptes)
		report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, 1, "zapped root still has parent ptes");
	uint32_t present = zapped_present(sp);
	if (present)
		report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, present, "zapped root still has present sptes");
}

/*
 * The fast zap's drain in KVM's mode (kvm_zap_obsolete_pages) moves each page it zaps to
 * zapped_obsolete_pages, still hashed, and frees them all in one commit at its end; between
 * batches it may break the lock, and an audit may run there. Today's lock-breaking
 * kvm_mmu_zap_all keeps its invalid list (zap_all_pending) across its breaks the same way. Such
 * a page is dead to every walker: prepare_zap unlinked its children and parents and marked it
 * invalid (lookups skip it; a drain's pages are also obsolete), and no root holds it. That, not
 * its absence from the hash, is what is checked.
 */
static void audit_zapped(struct audit *a)
{
	const struct smmu_vm *vm = a->vm;
	for (uint32_t k = 0; k < a->nz; k++) {
		const struct smmu_sp *sp = a->zapped[k];
		bool drain = k < a->nz_drain;
		if (k >= a->nz_pending) {
			audit_zapped_root(a, sp, a->n + k);
			continue;
		}
		if (drain && !vm->zap_drains)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, 1,
			       "page on zapped_obsolete_pages while no fast-zap drain runs");
		if (!drain && !vm->zap_all_runs)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, 1,
			       "page on zap_all_pending while no lock-breaking zap_all runs");
		if (!sp->role.invalid)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 1, 0, "zapped page is not marked invalid");
		if (drain && !is_obsolete_sp(vm, sp))
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, (int64_t)sp->mmu_valid_gen,
			       "zapped page on zapped_obsolete_pages is of the current generation");
		if (sp->root_count)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, sp->root_count, "zapped page still has a root user");
		if (sp->parent_ptes)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, 1, "zapped page still has parent ptes");
		uint32_t present = zapped_present(sp);
		if (present)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, present, "zapped page still has present sptes");
		uint32_t mmio = 0;
		for (int i = 0; i < SMMU_PT_ENTRIES; i++)
			mmio += is_mmio_spte(sp->spt[i]);
		if (mmio || sp->n_mmio)
			report(a, SMMU_INV_PAGE_LISTS, ZAPPED, 0, mmio ? mmio : sp->n_mmio,
			       "zapped page still has MMIO sptes");
#undef ZAPPED
	}
}

/* ---- back-references: parent_ptes (2) and rmaps (3) set the referenced bits ------------------ */

static void audit_parent_ptes(struct audit *a)
{
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *child = a->pages[k];
		struct rmap_iterator it;
		for (uint64_t *sptep = rmap_get_first(child->parent_ptes, &it); sptep;
		     sptep = rmap_get_next(&it)) {
			struct smmu_sp *parent;
			int i = -1;
			uint32_t pi = locate_spte(a, sptep, &parent, &i);
			if (pi == NO_INDEX) {
				report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = child, .gfn = child->gfn), 0, 0,
				       "parent_ptes entry %p lies in page %p, not on the active list",
				       (void *)sptep, (void *)parent);
				continue;
			}
			uint64_t spte = *sptep;
			bool points_here = is_shadow_present_pte(spte) &&
					   !is_last_spte(spte, (int)parent->role.level) &&
					   spte_to_child_spt(spte) == child->spt;
			if (!points_here)
				report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = child, .gfn = child->gfn), 0,
				       (int64_t)spte, "parent_ptes entry (page %p spte %d) does not point here",
				       (void *)parent, i);
			else if (!ref_set(a, pi, i))
				report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = child, .gfn = child->gfn), 1, 2,
				       "parent_ptes names the spte of page %p index %d twice", (void *)parent, i);
			else if ((child->unsync || child->unsync_children) &&
				 !(parent->unsync_child_bitmap[i / 64] & (1ull << (i % 64))))
				report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = child, .gfn = child->gfn), 1, 0,
				       "parent (page %p spte %d) lacks the unsync_child bit of this %s page",
				       (void *)parent, i, child->unsync ? "unsync" : "unsync-parent");
		}
		/* mark_unsync / clear_unsync_child_bit keep the count and the bits together; stale
		 * bits (a child unlinked since) are allowed, the unsync walks clear them. */
		uint64_t bits = 0;
		for (int w = 0; w < SMMU_PT_ENTRIES / 64; w++)
			bits += (uint64_t)__builtin_popcountll(child->unsync_child_bitmap[w]);
		if (bits != child->unsync_children)
			report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = child, .gfn = child->gfn), (int64_t)bits,
			       child->unsync_children, "unsync_children differs from the bits set");
	}
}

static void audit_rmap_head(struct audit *a, const struct memslot *slot, int level, uint64_t idx,
			    uintptr_t head)
{
	struct rmap_iterator it;
	for (uint64_t *sptep = rmap_get_first(head, &it); sptep; sptep = rmap_get_next(&it)) {
		struct smmu_sp *sp;
		int i = -1;
		uint32_t pi = locate_spte(a, sptep, &sp, &i);
		if (pi == NO_INDEX) {
			report(a, SMMU_INV_RMAP,
			       SPOT(.raw_sp = sp, .slot = slot, .level = level, .gfn = index_to_gfn(slot, level, idx)),
			       0, 0, "rmap entry %p lies in a page not on the active list", (void *)sptep);
			continue;
		}
		uint64_t spte = *sptep;
		if (!is_shadow_present_pte(spte)) {
			report(a, SMMU_INV_RMAP,
			       SPOT(.sp = sp, .sptep = sptep, .slot = slot, .level = level,
				    .gfn = index_to_gfn(slot, level, idx)),
			       1, (int64_t)spte, "rmap entry is not a present spte");
			continue;
		}
		if ((int)sp->role.level != level || !is_last_spte(spte, level)) {
			report(a, SMMU_INV_RMAP,
			       SPOT(.sp = sp, .sptep = sptep, .slot = slot, .level = level,
				    .gfn = index_to_gfn(slot, level, idx)),
			       level, (int64_t)sp->role.level, "rmap entry is not a leaf spte of the rmap's level");
			continue;
		}
		smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, i);
		if (!memslot_contains(slot, gfn) || gfn_to_index(gfn, slot->base_gfn, level) != idx) {
			smmu_gfn_t want = index_to_gfn(slot, level, idx);
			report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .level = level, .gfn = want),
			       (int64_t)want, (int64_t)gfn, "rmap entry maps a gfn outside its rmap position");
			continue;
		}
		if (!ref_set(a, pi, i))
			report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .level = level, .gfn = gfn),
			       1, 2, "spte appears twice in the rmaps");
	}
}

/* Every rmap entry is a present leaf of its level mapping its gfn (check_mappings_rmap, from the
 * other side: KVM walks the leaves; this walks every head of every slot). */
static void audit_rmaps(struct audit *a)
{
	const struct memslots *s = &a->vm->slots;
	for (int k = 0; k < s->n; k++) {
		const struct memslot *slot = s->sorted[k];
		for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
			const uintptr_t *rmap = slot->rmap[level - 1];
			if (!rmap)
				continue;
			for (uint64_t idx = 0; idx < slot->nr_entries[level - 1]; idx++)
				if (rmap[idx])
					audit_rmap_head(a, slot, level, idx, rmap[idx]);
		}
	}
}

/* ---- every spte of every page: n_present (1), links (2), leaves (3), large sptes (6) -------- */

static void audit_nonleaf(struct audit *a, const struct smmu_sp *sp, uint32_t idx, const uint64_t *sptep)
{
	uint64_t spte = *sptep;
	uint64_t *spt = spte_to_child_spt(spte);
	struct smmu_sp *child = page_header(spt);
	if (set_lookup(a, child) == NO_INDEX) {
		report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = sp, .sptep = sptep, .gfn = sp->gfn), 0, (int64_t)spte,
		       "non-leaf spte points to page %p, not on the active list", (void *)child);
		return;
	}
	if (child->spt != spt) {
		report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = sp, .sptep = sptep, .gfn = sp->gfn), 0, (int64_t)spte,
		       "non-leaf spte points inside page %p's table, not at it", (void *)child);
		return;
	}
	if ((int)child->role.level != (int)sp->role.level - 1) {
		report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = sp, .sptep = sptep, .gfn = sp->gfn),
		       (int64_t)sp->role.level - 1, (int64_t)child->role.level, "child page %p has the wrong level",
		       (void *)child);
		return;
	}
	/* A direct page covers the gfns its position in a direct parent says (kvm_mmu_get_page's
	 * gfn in __direct_map / FNAME(fetch)): else the leaves under it map other gfns than the
	 * address that reaches them, as when a gpa beyond the map's reach aliases a lower one. */
	smmu_gfn_t want = kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt));
	if (sp->role.direct && child->role.direct && child->gfn != want)
		report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = sp, .sptep = sptep, .gfn = want), (int64_t)want,
		       (int64_t)child->gfn, "direct child page %p covers other gfns than its position",
		       (void *)child);
	if (!ref_test(a, idx, (int)(sptep - sp->spt)))
		report(a, SMMU_INV_PARENT_LINKS, SPOT(.sp = sp, .sptep = sptep, .gfn = sp->gfn), 1, 0,
		       "child page %p's parent_ptes lacks this spte", (void *)child);
}

static void audit_leaf(struct audit *a, const struct smmu_sp *sp, uint32_t idx, const uint64_t *sptep)
{
	uint64_t spte = *sptep;
	int i = (int)(sptep - sp->spt);
	int level = (int)sp->role.level;
	smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, i);
	const struct memslot *slot = slot_of(a, gfn);
	if (!slot) {
		report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .gfn = gfn), 0, (int64_t)spte,
		       "leaf spte maps a gfn in no memslot");
		return;
	}
	if (!ref_test(a, idx, i))
		report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), 1, 0,
		       "leaf spte has no rmap entry");
	uint64_t frame = backing_frame(slot, gfn);
	if (spte_to_pfn(spte) != frame)
		report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), (int64_t)frame,
		       (int64_t)spte_to_pfn(spte), "leaf frame is not the slot's backing of its gfn");
	if (level == SMMU_LEVEL_4K)
		return;
	if (gfn & (KVM_PAGES_PER_HPAGE(level) - 1)) {
		report(a, SMMU_INV_LARGE_SPTE, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), 0,
		       (int64_t)gfn, "large spte maps a gfn not aligned to its size");
		return;
	}
	/* KVM keeps no *writable* large spte where a large page is disallowed or dirty-logged:
	 * set_spte refuses one where has_wrprotected_page, and write protection drops (3.11) or
	 * write-protects (today) a large spte. A read-only one may stay over a shadowed table: 3.11
	 * maps one when it chose the level before the fetch, and neither era removes it. */
	if (!is_writable_pte(spte))
		return;
	int32_t disallow = slot->lpage[level - 2] ? *lpage_info_slot(slot, gfn, level) : 0;
	if (disallow)
		report(a, SMMU_INV_LARGE_SPTE, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), 0, disallow,
		       "large spte %#" PRIx64 " where lpage_info disallows a large page", spte);
	if (slot->flags & SMMU_MEM_LOG_DIRTY_PAGES)
		report(a, SMMU_INV_LARGE_SPTE, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), 0,
		       (int64_t)slot->flags, "large spte in a slot that logs dirty pages");
}

/*
 * An MMIO spte (mark_mmio_spte), checked with the leaves (3): it lies in a level-1 page, holds
 * nothing but the marker, generation, rights and gfn, names the gfn its page says for it, and
 * grants no right the page's role does not. In a page that is neither obsolete nor invalid (one
 * a vCPU may still walk) its generation is no older than the MMIO generation of the last wrap
 * zap (or of the VM's creation) and no newer than the current one: else the wrap would have left
 * a stale spte that the generation check takes for current some day. And while no slot update
 * is in progress, one of the current generation maps a gfn in no valid memslot: else a fault
 * through it is emulated as MMIO where the guest has memory (a publication of the slot array
 * that did not move the generation). The rmap check reports an rmap entry naming one.
 */
static void audit_mmio(struct audit *a, const struct smmu_sp *sp, const uint64_t *sptep)
{
	struct smmu_vm *vm = a->vm;
	uint64_t spte = *sptep;
	smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt));
#define MMIO SPOT(.sp = sp, .sptep = sptep, .gfn = gfn)
	const uint64_t known = SPTE_MMIO_VALUE | MMIO_SPTE_GEN_LOW_MASK | MMIO_SPTE_GEN_HIGH_MASK |
			       MMIO_SPTE_ACCESS_MASK | MMIO_SPTE_GFN_MASK;
	if (sp->role.level != SMMU_LEVEL_4K)
		report(a, SMMU_INV_RMAP, MMIO, SMMU_LEVEL_4K, (int64_t)sp->role.level, "MMIO spte above level 1");
	if (spte & ~known)
		report(a, SMMU_INV_RMAP, MMIO, 0, (int64_t)(spte & ~known), "MMIO spte has bits that are no part of one");
	if (get_mmio_spte_gfn(spte) != (gfn & (MMIO_SPTE_GFN_MASK >> SMMU_PAGE_SHIFT)))
		report(a, SMMU_INV_RMAP, MMIO, (int64_t)gfn, (int64_t)get_mmio_spte_gfn(spte),
		       "MMIO spte names another gfn than its page does");
	if (get_mmio_spte_access(spte) & ~sp->role.access)
		report(a, SMMU_INV_RMAP, MMIO, (int64_t)sp->role.access, (int64_t)get_mmio_spte_access(spte),
		       "MMIO spte grants more than its page's role");
	if (sp->role.invalid || is_obsolete_sp(vm, sp))
		return;
	uint64_t gen = atomic_load_explicit(&vm->slots.generation, memory_order_acquire);
	uint64_t cur = mmio_generation(vm, gen), sgen = get_mmio_spte_generation(spte);
	if (((sgen - vm->mmio_gen_floor) & MMIO_SPTE_GEN_MASK) > ((cur - vm->mmio_gen_floor) & MMIO_SPTE_GEN_MASK))
		report(a, SMMU_INV_RMAP, MMIO, (int64_t)cur, (int64_t)sgen,
		       "MMIO spte's generation is not between the last wrap's (%" PRIu64 ") and the current one",
		       vm->mmio_gen_floor);
	bool in_progress = vm->rules->memslots_gen_in_progress && (gen & KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS);
	const struct memslot *slot = in_progress || sgen != cur ? NULL : valid_slot_of(a, gfn);
	/* Except where a sync marked it again in this generation: sync_mmio_spte (3.11 and today)
	 * re-marks an MMIO spte whose gpte still names its gfn with the current generation without
	 * looking at the memslots, so an unsync page keeps it over a slot created since. KVM does
	 * the same; there the emulator then finds the slot and accesses memory. */
	if (slot && sp->mmio_resync_gen != 1 + sgen)
		report(a, SMMU_INV_RMAP, SPOT(.sp = sp, .sptep = sptep, .slot = slot, .gfn = gfn), 0, (int64_t)sgen,
		       "MMIO spte of the current generation maps a gfn of a memslot");
#undef MMIO
}

/* One pass over every table of every listed page (audit_sp + audit_sptes_have_rmaps,
 * inspect_spte_has_rmap), for invariants 1, 2, 3 and 6. */
static void audit_sptes(struct audit *a)
{
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *sp = a->pages[k];
		int level = (int)sp->role.level;
		uint32_t present = 0, mmio = 0;
		for (const uint64_t *sptep = sp->spt; sptep < sp->spt + SMMU_PT_ENTRIES; sptep++) {
			uint64_t spte = *sptep;
			if (is_mmio_spte(spte)) {
				mmio++;
				audit_mmio(a, sp, sptep);
			}
			if (!is_shadow_present_pte(spte))
				continue;
			present++;
			unsigned i = (unsigned)(sptep - sp->spt);
			a->present[(size_t)k * SPTE_WORDS + i / 64] |= 1ull << (i % 64);
			if (level > SMMU_NR_PAGE_SIZES && is_large_pte(spte))
				report(a, SMMU_INV_LARGE_SPTE, SPOT(.sp = sp, .sptep = sptep, .gfn = sp->gfn), 0,
				       (int64_t)spte, "large spte at a level that has no large pages");
			else if (!is_last_spte(spte, level))
				audit_nonleaf(a, sp, k, sptep);
			else
				audit_leaf(a, sp, k, sptep);
		}
		a->r->sptes_checked += SMMU_PT_ENTRIES;
		if (present != sp->n_present)
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), present, sp->n_present,
			       "n_present differs from the present sptes in the table");
		if (mmio != sp->n_mmio)
			report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), mmio, sp->n_mmio,
			       "n_mmio differs from the MMIO sptes in the table");
		a->mmio += mmio;
	}
	a->r->pages_checked = a->n;
	/* The zapped pages hold none (checked above): the VM's count is the listed pages'. */
	uint64_t count = __atomic_load_n(&a->vm->mmio_sptes, __ATOMIC_RELAXED);
	if (count != a->mmio)
		report(a, SMMU_INV_PAGE_LISTS, SPOT(.gfn = 0), (int64_t)a->mmio, (int64_t)count,
		       "the VM's MMIO spte count differs from the MMIO sptes in listed tables");
}

/* ---- 4. lpage_info recomputed from scratch, and 9. accounted pages lie in live slots ------- */

#define KEY_GFN_BITS 40 /* SMMU_MAX_GFN = 2^40 */
_Static_assert(SMMU_MAX_GFN == (1ull << KEY_GFN_BITS), "key layout");

static void audit_lpage(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	/* One key per accounted page: slot id above its gfn, so a sort groups slots and orders
	 * gfns, and each large page's pages are consecutive. */
	uint64_t *keys = a->keys;
	size_t nk = 0;
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *sp = a->pages[k];
		if (!sp_accounted(vm, sp))
			continue;
		const struct memslot *slot = gfn_to_memslot(&vm->slots, sp->gfn);
		if (!slot) {
			report(a, SMMU_INV_SLOT_LIFETIME, SPOT(.sp = sp, .gfn = sp->gfn), 0, 0,
			       "shadowed guest table's gfn lies in no memslot");
			continue;
		}
		keys[nk++] = ((uint64_t)slot->id << KEY_GFN_BITS) | sp->gfn;
	}
	qsort(keys, nk, sizeof(*keys), cmp_u64);

	for (int s = 0; s < vm->slots.n; s++) {
		const struct memslot *slot = vm->slots.sorted[s];
		/* 9: a slot lies where the MMU can map it (kvm_mmu_max_gfn), else its gfns alias. */
		smmu_gfn_t limit = vm_gfn_limit(vm);
		if (slot->base_gfn >= limit || slot->npages > limit - slot->base_gfn)
			report(a, SMMU_INV_SLOT_LIFETIME, SPOT(.slot = slot, .gfn = slot->base_gfn), (int64_t)limit,
			       (int64_t)(slot->base_gfn + slot->npages),
			       "memslot reaches beyond the guest physical space the MMU maps");
		/* slots.sorted is ordered by base_gfn, not by id: find this slot's keys. */
		uint64_t lo = (uint64_t)slot->id << KEY_GFN_BITS, hi = lo + SMMU_MAX_GFN;
		size_t b = 0, e = nk;
		while (b < e) { /* first key >= lo */
			size_t mid = b + (e - b) / 2;
			if (keys[mid] < lo)
				b = mid + 1;
			else
				e = mid;
		}
		for (int level = 2; level <= SMMU_NR_PAGE_SIZES; level++) {
			const int32_t *lpage = slot->lpage[level - 2];
			if (!lpage)
				continue;
			size_t j = b;
			for (uint64_t idx = 0; idx < slot->nr_entries[level - 1]; idx++) {
				int64_t count = 0;
				while (j < nk && keys[j] < hi &&
				       gfn_to_index(keys[j] & (SMMU_MAX_GFN - 1), slot->base_gfn, level) == idx) {
					count++;
					j++;
				}
				int64_t expected = lpage_edge_value(slot, level, idx) + count;
				if (lpage[idx] != expected)
					report(a, SMMU_INV_LPAGE_COUNT,
					       SPOT(.slot = slot, .level = level, .gfn = index_to_gfn(slot, level, idx)),
					       expected, lpage[idx], "disallow_lpage is not edge + shadowed tables inside");
			}
		}
	}
}

/* ---- 5. write protection of shadowed guest tables ------------------------------------------ */

/*
 * audit_write_protection, extended to the large-page rmaps that cover each shadowed gfn. Only
 * pages of the current generation count: an obsolete page is returned by no lookup, and every
 * vCPU drops a root that reaches one before it runs again (the reload the bump requested;
 * invariant 8), so no walk uses it whatever its guest table says. KVM's fast zap keeps them
 * write-protected until they are zapped (they still count in lpage_info and 3.11's
 * mmu_need_write_protect still sees them), but does not depend on it: today's kvm_mmu_pte_write
 * no longer updates obsolete pages, and the v4 patch's lpage_info reset stopped protecting them.
 */
static void audit_write_protect(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	smmu_gfn_t *gfns = a->keys; /* audit_lpage is done with them */
	size_t ng = 0;
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *sp = a->pages[k];
		if (!sp->role.direct && !sp->role.invalid && !is_obsolete_sp(vm, sp) && !sp->unsync)
			gfns[ng++] = sp->gfn;
	}
	qsort(gfns, ng, sizeof(*gfns), cmp_u64);

	const struct memslot *last_slot[SMMU_NR_PAGE_SIZES + 1] = { 0 };
	uint64_t last_idx[SMMU_NR_PAGE_SIZES + 1] = { 0 };
	for (size_t g = 0; g < ng; g++) {
		smmu_gfn_t gfn = gfns[g];
		if (g && gfn == gfns[g - 1])
			continue;
		const struct memslot *slot = gfn_to_memslot(&vm->slots, gfn);
		if (!slot)
			continue; /* invariant 9 */
		/* The rmap of gfn at level 1, and those of the large pages that contain it: sorted
		 * gfns visit each large page's rmap once. */
		for (int level = 1; level <= SMMU_NR_PAGE_SIZES; level++) {
			uint64_t idx = gfn_to_index(gfn, slot->base_gfn, level);
			if (last_slot[level] == slot && last_idx[level] == idx)
				continue;
			last_slot[level] = slot;
			last_idx[level] = idx;
			struct rmap_iterator it;
			for (uint64_t *sptep = rmap_get_first(slot->rmap[level - 1][idx], &it); sptep;
			     sptep = rmap_get_next(&it)) {
				uint64_t spte = *sptep;
				if (!is_shadow_present_pte(spte) || !is_writable_pte(spte))
					continue;
				struct smmu_sp *sp;
				int i = -1;
				if (locate_spte(a, sptep, &sp, &i) == NO_INDEX)
					continue; /* invariant 3 */
				report(a, SMMU_INV_WRITE_PROTECT,
				       SPOT(.sp = sp, .sptep = sptep, .slot = slot, .level = level, .gfn = gfn), 0,
				       (int64_t)spte, "writable spte maps a shadowed guest page table");
			}
		}
	}
}

/* ---- vCPUs: 7. translation, 8. obsolete roots, 10. TLB ------------------------------------- */

static uint64_t sign_extend_48(uint64_t addr) { return (uint64_t)((int64_t)(addr << 16) >> 16); }

/* What the guest's tables say about an address (shadow mode). */
struct guest_view {
	int rc;            /* guest_walk_addr's result */
	smmu_gfn_t gfn;
	int level;
	uint32_t access;   /* pte_access */
};

static void guest_view_walk(struct audit *a, const struct smmu_vcpu *v, uint64_t addr, struct guest_view *g)
{
	struct guest_walker w;
	g->rc = guest_walk_addr(a->vm, v->cr3, addr, 0, &w);
	g->gfn = w.gfn;
	g->level = w.level;
	g->access = w.pte_access;
}

/*
 * The guest walk of every leaf of one level-1 shadow table shares its upper levels: walk the
 * first leaf fully, and when that walk ends in a level-1 guest table, read the other leaves'
 * guest ptes from that table directly (x86-64: present, W, U, NX, address bits 12..51), with the
 * access the upper levels granted. Else every leaf gets a full walk.
 */
struct leaf_table {
	const uint64_t *gptes;  /* the level-1 guest table, or NULL: walk each leaf */
	uint32_t pt_access;
};

static void leaf_table_init(struct audit *a, const struct smmu_vcpu *v, uint64_t addr, struct leaf_table *t)
{
	struct guest_walker w;
	t->gptes = NULL;
	if (guest_walk_addr(a->vm, v->cr3, addr, 0, &w) || w.level != SMMU_LEVEL_4K)
		return;
	const struct memslot *slot = valid_slot_of(a, w.table_gfn[0]);
	if (!slot)
		return;
	t->gptes = memslot_gfn_to_hva(slot, w.table_gfn[0]);
	t->pt_access = w.pt_access;
}

static void guest_view_leaf(const struct leaf_table *t, unsigned i, struct guest_view *g)
{
	uint64_t gpte = guest_read_pte(&t->gptes[i]);
	g->level = SMMU_LEVEL_4K;
	g->rc = (gpte & SMMU_PTE_PRESENT) ? 0 : -ENOENT;
	g->gfn = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	g->access = t->pt_access & (((gpte & SMMU_PTE_WRITABLE) ? SMMU_ACC_WRITE : 0) |
				    ((gpte & SMMU_PTE_USER) ? SMMU_ACC_USER : 0) |
				    ((gpte & SMMU_PTE_NX) ? 0 : SMMU_ACC_EXEC));
}

/* Invariant 7 for the leaf at @sptep in @sp, reached from @v's root at @addr; @g is the guest's
 * view of @addr in shadow mode, NULL in direct mode. */
/* The guest view of a leaf of an unsync page: none to compare with (invariant 7). */
static const struct guest_view UNSYNC_VIEW;

static void audit_translation(struct audit *a, const struct smmu_vcpu *v, const struct smmu_sp *sp,
			      const uint64_t *sptep, uint64_t addr, const struct guest_view *g)
{
	uint64_t spte = *sptep;
	int level = (int)sp->role.level;
	smmu_gfn_t leaf_gfn = kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt)), gfn;
#define AT(...) SPOT(.sp = sp, .sptep = sptep, .vcpu = v, .addr = addr, .gfn = leaf_gfn __VA_ARGS__)
	if (g == &UNSYNC_VIEW) {
		gfn = leaf_gfn;
	} else if (g) {
		if (g->rc) {
			report(a, SMMU_INV_TRANSLATION, AT(), 0, g->rc,
			       "guest tables do not map an address the shadow root maps");
			return;
		}
		if (g->gfn != leaf_gfn) {
			report(a, SMMU_INV_TRANSLATION, AT(), (int64_t)g->gfn, (int64_t)leaf_gfn,
			       "spte maps another gfn than the guest tables");
			return;
		}
		if (g->level < level)
			report(a, SMMU_INV_TRANSLATION, AT(), g->level, level,
			       "spte maps a larger page than the guest does");
		if (spte_access(spte) & ~g->access & ACC_CHECKED)
			report(a, SMMU_INV_TRANSLATION, AT(), g->access & ACC_CHECKED,
			       spte_access(spte) & ACC_CHECKED, "spte grants more access than the guest tables");
		gfn = g->gfn;
	} else {
		gfn = addr >> SMMU_PAGE_SHIFT;
		if (gfn != leaf_gfn) {
			report(a, SMMU_INV_TRANSLATION, AT(), (int64_t)gfn, (int64_t)leaf_gfn,
			       "direct page's gfn disagrees with the address it maps");
			return;
		}
	}
	const struct memslot *slot = valid_slot_of(a, gfn);
	if (!slot) {
		report(a, SMMU_INV_TRANSLATION, AT(), 0, (int64_t)spte,
		       "reachable leaf maps a gfn in no valid memslot");
		return;
	}
	uint64_t frame = backing_frame(slot, gfn);
	if (spte_to_pfn(spte) != frame)
		report(a, SMMU_INV_TRANSLATION, AT(, .slot = slot), (int64_t)frame, (int64_t)spte_to_pfn(spte),
		       "reachable leaf's frame is not the slot's backing of the gfn");
	if (is_writable_pte(spte) && (slot->flags & SMMU_MEM_READONLY))
		report(a, SMMU_INV_TRANSLATION, AT(, .slot = slot), 0, (int64_t)spte,
		       "writable spte in a read-only memslot");
#undef AT
}

/* Walk what @v's root reaches (mmu_spte_walk + audit_mappings): each page once for invariant
 * 8, each leaf for invariant 7. */
static void walk_root(struct audit *a, const struct smmu_vcpu *v, const struct smmu_sp *sp,
		      uint32_t idx, uint64_t prefix)
{
	int level = (int)sp->role.level;
	if (a->stamp[idx] != a->cur_stamp) {
		a->stamp[idx] = a->cur_stamp;
		if (is_obsolete_sp(a->vm, sp) || sp->role.invalid)
			report(a, SMMU_INV_OBSOLETE_ROOT, SPOT(.sp = sp, .gfn = sp->gfn, .vcpu = v, .addr = prefix),
			       (int64_t)a->vm->mmu_valid_gen, (int64_t)sp->mmu_valid_gen,
			       sp->role.invalid ? "invalid page reachable from a loaded root" :
						  "obsolete page reachable from a loaded root");
	}
	bool shadow = a->vm->cfg.mode == SMMU_MODE_SHADOW;
	struct leaf_table lt = { 0 };
	bool lt_ready = false;
	/* The present sptes, as the pass over every table found them (the lock is held). */
	const uint64_t *present = &a->present[(size_t)idx * SPTE_WORDS];
	for (unsigned wd = 0; wd < SPTE_WORDS; wd++) {
		for (uint64_t bits = present[wd]; bits; bits &= bits - 1) {
			unsigned i = wd * 64 + (unsigned)__builtin_ctzll(bits);
			const uint64_t *sptep = &sp->spt[i];
			uint64_t spte = *sptep;
			uint64_t addr = prefix | ((uint64_t)i << PT64_LEVEL_SHIFT(level));
			if (is_last_spte(spte, level)) {
				if (level > SMMU_NR_PAGE_SIZES)
					continue; /* invariant 6 */
				if (!shadow) {
					audit_translation(a, v, sp, sptep, addr, NULL);
					continue;
				}
				addr = sign_extend_48(addr);
				if (sp->unsync) {
					/* The guest writes an unsync page's table freely: its leaves
					 * follow the table only once synced (kvm_sync_page). */
					audit_translation(a, v, sp, sptep, addr, &UNSYNC_VIEW);
					continue;
				}
				struct guest_view g;
				if (level == SMMU_LEVEL_4K && !lt_ready) {
					leaf_table_init(a, v, addr, &lt);
					lt_ready = true;
				}
				if (level == SMMU_LEVEL_4K && lt.gptes)
					guest_view_leaf(&lt, i, &g);
				else
					guest_view_walk(a, v, addr, &g);
				audit_translation(a, v, sp, sptep, addr, &g);
				continue;
			}
			struct smmu_sp *child = page_header(spte_to_child_spt(spte));
			uint32_t ci = set_lookup(a, child);
			if (ci == NO_INDEX || child->spt != spte_to_child_spt(spte) ||
			    (int)child->role.level != level - 1)
				continue; /* invariant 2 */
			walk_root(a, v, child, ci, addr);
		}
	}
}

/* The leaf that translates @addr from @root, or NULL (and *why); *access is what the whole
 * path grants, as the hardware walk ANDs it. */
static const uint64_t *shadow_lookup(const struct audit *a, const struct smmu_sp *root, uint64_t addr,
				     int *level, uint32_t *access, const char **why)
{
	const struct smmu_sp *sp = root;
	*access = ACC_CHECKED;
	for (;;) {
		int l = (int)sp->role.level;
		const uint64_t *sptep = &sp->spt[PT64_INDEX(addr, l)];
		if (!is_shadow_present_pte(*sptep)) {
			*why = "TLB entry has no present spte behind it";
			return NULL;
		}
		*access &= spte_access(*sptep);
		if (is_last_spte(*sptep, l)) {
			*level = l;
			return sptep;
		}
		const struct smmu_sp *child = page_header(spte_to_child_spt(*sptep));
		if (set_lookup(a, child) == NO_INDEX || l <= 1) {
			*why = "TLB entry's walk reaches a page not on the active list";
			return NULL;
		}
		sp = child;
	}
}

static void audit_tlb(struct audit *a, const struct smmu_vcpu *v)
{
	size_t n = (size_t)a->vm->cfg.tlb_sets * a->vm->cfg.tlb_ways;
	if (!v->tlb)
		return;
	bool root_ok = v->root && set_lookup(a, v->root) != NO_INDEX;
	for (size_t k = 0; k < n; k++) {
		const struct tlb_entry *e = &v->tlb[k];
		if (e->vpn == ~0ull)
			continue;
		uint64_t addr = e->vpn << SMMU_PAGE_SHIFT;
		if (!root_ok) {
			report(a, SMMU_INV_TLB, SPOT(.vcpu = v, .addr = addr), (int64_t)e->hfn, 0,
			       v->root ? "TLB entry while the root is not on the active list" :
					 "TLB entry while the vCPU has no root");
			continue;
		}
		int level = 0;
		uint32_t access = 0;
		const char *why = NULL;
		const uint64_t *sptep = shadow_lookup(a, v->root, addr, &level, &access, &why);
		/* 3.11: a sync dropped sptes since the last remote flush (tlbs_dirty); another vCPU's
		 * TLB may still hold them, as the guest changed its ptes without invalidating there
		 * (x86 allows the stale entry); the MMU notifier flushes before the host frees. */
		if (a->vm->tlbs_dirty && (!sptep || spte_to_pfn(*sptep) + (e->vpn & (KVM_PAGES_PER_HPAGE(level) - 1)) != e->hfn))
			continue;
		if (!sptep) {
			report(a, SMMU_INV_TLB, SPOT(.vcpu = v, .addr = addr), (int64_t)e->hfn, 0, "%s", why);
			continue;
		}
		const struct smmu_sp *sp = page_header(sptep);
		uint64_t spte = *sptep;
		smmu_gfn_t gfn = kvm_mmu_page_get_gfn(sp, (int)(sptep - sp->spt));
		uint64_t frame = spte_to_pfn(spte) + (e->vpn & (KVM_PAGES_PER_HPAGE(level) - 1));
		if (frame != e->hfn)
			report(a, SMMU_INV_TLB, SPOT(.sp = sp, .sptep = sptep, .vcpu = v, .addr = addr, .gfn = gfn),
			       (int64_t)frame, (int64_t)e->hfn, "TLB entry's frame differs from the spte's");
		if (e->access & ~access & ACC_CHECKED)
			report(a, SMMU_INV_TLB, SPOT(.sp = sp, .sptep = sptep, .vcpu = v, .addr = addr, .gfn = gfn),
			       access, e->access & ACC_CHECKED, "TLB entry grants more access than the sptes");
	}
}

/* How many of the VM's vCPU roots, current and cached (prev_roots), are @sp. */
static uint32_t roots_holding(const struct smmu_vm *vm, const struct smmu_sp *sp)
{
	uint32_t n = 0;
	for (int k = 0; k < vm->nr_vcpus; k++) {
		const struct smmu_vcpu *v = vm->vcpus[k];
		n += v->root == sp;
		for (int i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++)
			n += v->prev_roots[i].sp == sp;
	}
	return n;
}

/* Invariant 1's root counts: a listed page's root_count is the number of vCPU roots, current
 * and cached, that hold it. The roots are changed under mmu_lock only (roots.c), so every audit
 * point checks this, whatever requests are pending. */
static void audit_root_counts(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	for (uint32_t k = 0; k < a->n; k++) {
		const struct smmu_sp *sp = a->pages[k];
		if (sp->root_count) {
			uint32_t held = roots_holding(vm, sp);
			if (held != sp->root_count)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn), held, sp->root_count,
				       "root_count is not the number of vCPU roots (current and cached) holding the page");
		}
	}
	/* A root held by a page whose root_count is 0 (the loop above passed over it). */
	for (int k = 0; k < vm->nr_vcpus; k++) {
		const struct smmu_vcpu *v = vm->vcpus[k];
		for (int i = -1; i < KVM_MMU_NUM_PREV_ROOTS; i++) {
			const struct smmu_sp *sp = i < 0 ? v->root : v->prev_roots[i].sp;
			if (sp && set_lookup(a, sp) != NO_INDEX && !sp->root_count)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.sp = sp, .gfn = sp->gfn, .vcpu = v), 1, 0,
				       i < 0 ? "vCPU's root has root_count 0" : "vCPU's cached root has root_count 0");
		}
		for (int i = vm->rules->prev_roots; i < KVM_MMU_NUM_PREV_ROOTS; i++)
			if (v->prev_roots[i].sp)
				report(a, SMMU_INV_PAGE_LISTS, SPOT(.raw_sp = v->prev_roots[i].sp, .vcpu = v),
				       vm->rules->prev_roots, i + 1, "more cached roots than the profile keeps");
	}
}

static void audit_vcpus(struct audit *a)
{
	struct smmu_vm *vm = a->vm;
	if (!a->all_vcpus && !a->only)
		return;
	for (int k = 0; k < vm->nr_vcpus; k++) {
		struct smmu_vcpu *v = vm->vcpus[k];
		if (!v || (!a->all_vcpus && v != a->only))
			continue;
		uint32_t req = atomic_load_explicit(&v->requests, memory_order_relaxed);
		if (req & (KVM_REQ_MMU_RELOAD | KVM_REQ_MMU_FREE_OBSOLETE_ROOTS))
			continue; /* the root is dropped at the next entry: nothing to check yet */
		if (v->root) {
			uint32_t ri = set_lookup(a, v->root);
			if (ri == NO_INDEX) {
				report(a, SMMU_INV_OBSOLETE_ROOT, SPOT(.raw_sp = v->root, .vcpu = v), 0, 0,
				       "vCPU's root is not a page on the active list");
			} else if (vm->cfg.mode == SMMU_MODE_SHADOW && !v->has_cr3) {
				report(a, SMMU_INV_TRANSLATION, SPOT(.sp = v->root, .gfn = v->root->gfn, .vcpu = v), 0, 0,
				       "vCPU has a shadow root but no CR3");
			} else {
				a->cur_stamp++;
				walk_root(a, v, v->root, ri, 0);
			}
		}
		if (!(req & KVM_REQ_TLB_FLUSH))
			audit_tlb(a, v);
	}
}

/* ---- entry points --------------------------------------------------------------------------- */

/* The length of a page list, stopping at a loop (Floyd) and reporting nothing: what the
 * scratch must hold. The audit proper counts again, and reports. */
static uint64_t count_list_quiet(struct list_node *head)
{
	struct list_node *slow = head, *fast = head;
	uint64_t count = 0;
	for (;;) {
		for (int step = 0; step < 2; step++) {
			fast = fast->next;
			if (!fast || fast == head)
				return count;
			count++;
		}
		slow = slow->next;
		if (slow == fast)
			return count;
	}
}

/* Every check, with the scratch ready and mmu_lock held. */
static long audit_run(struct audit *a, struct smmu_vm *vm, struct smmu_audit_report *r)
{
	lockdep_assert_held(&vm->mmu_lock);
	r->stored = 0;
	r->total = 0;
	memset(r->per_inv, 0, sizeof(r->per_inv));
	r->pages_checked = 0;
	r->sptes_checked = 0;
	a->vm = vm;
	a->r = r;
	uint64_t count = count_list(a, &vm->active_mmu_pages, "active_mmu_pages");
	collect_active(a, (uint32_t)(count < a->alloc_n ? count : a->alloc_n));
	count = count_list(a, &vm->zapped_obsolete_pages, "zapped_obsolete_pages") +
		count_list(a, &vm->zap_all_pending, "zap_all_pending");
	collect_zapped(a, (uint32_t)(count < a->alloc_z ? count : a->alloc_z));
	collect_zapped_roots(a, (uint32_t)a->alloc_z);
	audit_hash(a);
	audit_page_lists(a);
	audit_root_counts(a);
	audit_zapped(a);
	audit_parent_ptes(a);
	audit_rmaps(a);
	audit_sptes(a);
	audit_lpage(a);
	audit_write_protect(a);
	audit_vcpus(a);
	return (long)r->total;
}

/*
 * Like the fault path, the audit allocates before it takes mmu_lock: it sizes its scratch by
 * the pages it finds, and if more were added meanwhile it lets go and tries again bigger.
 */
long audit_vm(struct smmu_vm *vm, struct smmu_audit_report *report, bool all_vcpus,
	      const struct smmu_vcpu *only)
{
	struct audit a;
	memset(&a, 0, sizeof(a));
	size_t cap = 0, cap_z = 0;
	for (;;) {
		if (scratch_alloc(&a, cap, cap_z)) {
			scratch_free(&a);
			return -ENOMEM;
		}
		vm_lock(vm, SMMU_SITE_AUDIT);
		uint64_t need = count_list_quiet(&vm->active_mmu_pages);
		uint64_t need_z = count_list_quiet(&vm->zapped_obsolete_pages) +
				  count_list_quiet(&vm->zap_all_pending) +
				  (uint64_t)vm->nr_vcpus * (1 + KVM_MMU_NUM_PREV_ROOTS);
		if (need <= a.alloc_n && need_z <= a.alloc_z)
			break;
		vm_unlock(vm);
		scratch_free(&a);
		cap = (size_t)(need + need / 8 + 64);
		cap_z = (size_t)(need_z + need_z / 8 + 64);
	}
	a.all_vcpus = all_vcpus;
	a.only = only;
	long n = audit_run(&a, vm, report);
	vm_unlock(vm);
	scratch_free(&a);
	return n;
}

SMMU_API long smmu_audit(smmu_vm *vm, struct smmu_audit_report *report)
{
	if (!vm || !report || (!report->v && report->cap))
		return -EINVAL;
	return audit_vm(vm, report, true, NULL);
}

SMMU_API void smmu_audit_print(FILE *f, const struct smmu_audit_report *r)
{
	if (!f || !r)
		return;
	fprintf(f, "audit: %zu violation%s (%" PRIu64 " pages, %" PRIu64 " sptes checked)\n", r->total,
		r->total == 1 ? "" : "s", r->pages_checked, r->sptes_checked);
	for (size_t k = 0; k < r->stored && r->v; k++) {
		const struct smmu_violation *v = &r->v[k];
		fprintf(f, "  [%d %s] slot %d level %d gfn 0x%" PRIx64, (int)v->inv,
			smmu_invariant_name(v->inv), v->slot, v->level, v->gfn);
		if (v->sp)
			fprintf(f, " sp %p (role 0x%08" PRIx32 " gen %" PRIu64 " gfn 0x%" PRIx64 ")",
				(const void *)v->sp, v->sp_role, v->sp_gen, v->sp_gfn);
		else
			fprintf(f, " sp -");
		fprintf(f, " spte %d vcpu %d addr 0x%" PRIx64 " expected %" PRId64 " (0x%" PRIx64
			") found %" PRId64 " (0x%" PRIx64 "): %s\n",
			v->spte_index, v->vcpu, v->addr, v->expected, (uint64_t)v->expected, v->found,
			(uint64_t)v->found, v->what);
	}
	if (r->total) {
		fprintf(f, "  per invariant:");
		for (int i = 1; i < SMMU_INV_COUNT; i++)
			if (r->per_inv[i])
				fprintf(f, " %s %" PRIu64 ";", smmu_invariant_name((enum smmu_invariant)i),
					r->per_inv[i]);
		fprintf(f, "\n");
	}
	if (r->total > r->stored)
		fprintf(f, "  %zu more not stored\n", r->total - r->stored);
}
