/*
 * The guest side: guest physical memory through the memslots, the guest page-table walker
 * (FNAME(walk_addr) for 4-level paging), and the page-table builder of guest address spaces.
 *
 * Guest memory is shared by every thread that runs the guest, so it is read and written with
 * relaxed atomics: 8 bytes at a time where aligned (page-table entries), else byte by byte.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>

#include "mmu.h"

uint64_t guest_read_pte(const void *hva) { return __atomic_load_n((const uint64_t *)hva, __ATOMIC_RELAXED); }

static void copy_in(uint8_t *dst, const uint8_t *src, size_t len)
{
	while (len) {
		if (!((uintptr_t)dst & 7) && len >= 8) {
			uint64_t v;
			memcpy(&v, src, 8);
			__atomic_store_n((uint64_t *)dst, v, __ATOMIC_RELAXED);
			dst += 8, src += 8, len -= 8;
		} else {
			__atomic_store_n(dst, *src, __ATOMIC_RELAXED);
			dst++, src++, len--;
		}
	}
}

static void copy_out(uint8_t *dst, const uint8_t *src, size_t len)
{
	while (len) {
		if (!((uintptr_t)src & 7) && len >= 8) {
			uint64_t v = __atomic_load_n((const uint64_t *)src, __ATOMIC_RELAXED);
			memcpy(dst, &v, 8);
			dst += 8, src += 8, len -= 8;
		} else {
			*dst = __atomic_load_n(src, __ATOMIC_RELAXED);
			dst++, src++, len--;
		}
	}
}

/* Check that [gpa, gpa + len) lies in valid slots; -EFAULT otherwise, -EROFS for a write to a
 * read-only slot. The walk goes by gfn up to the range's last byte, so a range that ends at (or
 * runs past) 2^64 neither wraps nor passes unchecked. */
static int check_range(const struct smmu_vm *vm, smmu_gpa_t gpa, size_t len, bool write)
{
	if (!len)
		return 0;
	smmu_gpa_t last = gpa + (len - 1);
	if (last < gpa)
		return -EFAULT;
	for (smmu_gfn_t gfn = gpa >> SMMU_PAGE_SHIFT; gfn <= last >> SMMU_PAGE_SHIFT;) {
		struct memslot *slot = gfn_to_valid_memslot(&vm->slots, gfn);
		if (!slot)
			return -EFAULT;
		if (write && (slot->flags & SMMU_MEM_READONLY))
			return -EROFS;
		gfn = slot->base_gfn + slot->npages; /* below 2^40: no wrap */
	}
	return 0;
}

int guest_read_locked(const struct smmu_vm *vm, smmu_gpa_t gpa, void *buf, size_t len)
{
	int r = check_range(vm, gpa, len, false);
	if (r)
		return r;
	uint8_t *out = buf;
	while (len) {
		smmu_gfn_t gfn = gpa >> SMMU_PAGE_SHIFT;
		size_t off = gpa & (SMMU_PAGE_SIZE - 1), n = SMMU_PAGE_SIZE - off;
		if (n > len)
			n = len;
		copy_out(out, (uint8_t *)memslot_gfn_to_hva(gfn_to_valid_memslot(&vm->slots, gfn), gfn) + off, n);
		out += n, gpa += n, len -= n;
	}
	return 0;
}

SMMU_API int smmu_guest_read(const smmu_vm *vm, smmu_gpa_t gpa, void *buf, size_t len)
{
	if (!vm || (!buf && len))
		return -EINVAL;
	pthread_rwlock_rdlock((pthread_rwlock_t *)&vm->srcu);
	int r = guest_read_locked(vm, gpa, buf, len);
	pthread_rwlock_unlock((pthread_rwlock_t *)&vm->srcu);
	return r;
}

/* emulator_write_phys: the bytes land, then kvm_mmu_pte_write zaps what shadowed them. */
SMMU_API int smmu_guest_write(smmu_vm *vm, smmu_gpa_t gpa, const void *buf, size_t len)
{
	if (!vm || (!buf && len))
		return -EINVAL;
	pthread_rwlock_rdlock(&vm->srcu);
	int r = check_range(vm, gpa, len, true);
	const uint8_t *in = buf;
	while (!r && len) {
		smmu_gfn_t gfn = gpa >> SMMU_PAGE_SHIFT;
		size_t off = gpa & (SMMU_PAGE_SIZE - 1), n = SMMU_PAGE_SIZE - off;
		if (n > len)
			n = len;
		struct memslot *slot = gfn_to_valid_memslot(&vm->slots, gfn);
		copy_in((uint8_t *)memslot_gfn_to_hva(slot, gfn) + off, in, n);
		mark_page_dirty(slot, gfn);
		host_pte_set_writable(slot, gfn);
		if (atomic_load_explicit(&vm->indirect_shadow_pages, memory_order_relaxed))
			kvm_mmu_pte_write(vm, gpa, n);
		in += n, gpa += n, len -= n;
	}
	pthread_rwlock_unlock(&vm->srcu);
	return r;
}

SMMU_API int smmu_guest_read_u64(const smmu_vm *vm, smmu_gpa_t gpa, uint64_t *val)
{
	return smmu_guest_read(vm, gpa, val, sizeof(*val));
}

SMMU_API int smmu_guest_write_u64(smmu_vm *vm, smmu_gpa_t gpa, uint64_t val)
{
	return smmu_guest_write(vm, gpa, &val, sizeof(val));
}

/* ---- the walker --------------------------------------------------------------------------- */

#define ACC_ALL (SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC)

static uint32_t gpte_access(uint64_t gpte)
{
	return ((gpte & SMMU_PTE_WRITABLE) ? SMMU_ACC_WRITE : 0) | ((gpte & SMMU_PTE_USER) ? SMMU_ACC_USER : 0) |
	       ((gpte & SMMU_PTE_NX) ? 0 : SMMU_ACC_EXEC);
}

/* FNAME(walk_addr_generic) for 64-bit paging with CR0.WP = 1, up to the permission check; a
 * fault's walk then goes on with guest_walk_update_ad. Caller holds srcu for read. */
int guest_walk_addr(const struct smmu_vm *vm, smmu_gpa_t cr3, smmu_gva_t addr, uint32_t access,
		    struct guest_walker *w)
{
	smmu_gfn_t table_gfn = cr3 >> SMMU_PAGE_SHIFT;
	uint32_t acc = ACC_ALL;
	memset(w, 0, sizeof(*w));
	for (int level = PT64_ROOT_LEVEL; level >= 1; level--) {
		struct memslot *slot = gfn_to_valid_memslot(&vm->slots, table_gfn);
		w->level = level;
		w->table_gfn[level - 1] = table_gfn;
		if (!slot)
			return -EFAULT;
		unsigned idx = PT64_INDEX(addr, level);
		uint64_t gpte = guest_read_pte((uint64_t *)memslot_gfn_to_hva(slot, table_gfn) + idx);
		w->ptes[level - 1] = gpte;
		w->pte_gpa[level - 1] = (table_gfn << SMMU_PAGE_SHIFT) + idx * 8;
		bool large = (gpte & SMMU_PTE_LARGE) && level > 1;
		if (!(gpte & SMMU_PTE_PRESENT) || (large && level == PT64_ROOT_LEVEL)) {
			w->fault_reason = SMMU_PF_NOT_PRESENT;
			return -ENOENT;
		}
		if (level > 1 && !large)
			w->pt_access = acc & gpte_access(gpte);
		acc &= gpte_access(gpte);
		if (level == 1 || large) {
			smmu_gfn_t base = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
			uint64_t span = KVM_PAGES_PER_HPAGE(level);
			w->gfn = (base & ~(span - 1)) + ((addr >> SMMU_PAGE_SHIFT) & (span - 1));
			break;
		}
		table_gfn = (gpte & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	}
	w->pte_access = acc;
	if ((access & SMMU_ACC_WRITE) && !(acc & SMMU_ACC_WRITE))
		w->fault_reason = SMMU_PF_WRITE_PROTECTED;
	else if ((access & SMMU_ACC_USER) && !(acc & SMMU_ACC_USER))
		w->fault_reason = SMMU_PF_USER_PROTECTED;
	else if ((access & SMMU_ACC_EXEC) && !(acc & SMMU_ACC_EXEC))
		w->fault_reason = SMMU_PF_NX;
	return w->fault_reason ? -ENOENT : 0;
}

/* protect_clean_gpte: a read fault on a guest pte whose Dirty bit is clear maps no write, so
 * that the guest's first write faults and sets it. FNAME(update_accessed_dirty_bits): the walk
 * sets the Accessed bit of every entry it used, and Dirty on the leaf for a write, with a
 * cmpxchg through the host's mapping of the table (KVM's own store: not trapped, not a
 * kvm_mmu_pte_write; the table page is logged dirty). Entries in a read-only slot are left as
 * they are. Both eras. */
int guest_walk_update_ad(struct smmu_vm *vm, struct guest_walker *w, bool write_fault)
{
	if (!write_fault && !(w->ptes[w->level - 1] & SMMU_PTE_DIRTY))
		w->pte_access &= ~(uint32_t)SMMU_ACC_WRITE;
	for (int level = PT64_ROOT_LEVEL; level >= w->level; level--) {
		uint64_t old = w->ptes[level - 1], pte = old | SMMU_PTE_ACCESSED;
		if (level == w->level && write_fault)
			pte |= SMMU_PTE_DIRTY;
		smmu_gfn_t table_gfn = w->table_gfn[level - 1];
		struct memslot *slot = gfn_to_valid_memslot(&vm->slots, table_gfn);
		if (pte == old || !slot || (slot->flags & SMMU_MEM_READONLY))
			continue;
		host_pte_set_writable(slot, table_gfn); /* __try_cmpxchg_user: a host write */
		uint64_t *p = (uint64_t *)((uint8_t *)memslot_gfn_to_hva(slot, table_gfn) +
					   (w->pte_gpa[level - 1] & (SMMU_PAGE_SIZE - 1)));
		if (!__atomic_compare_exchange_n(p, &old, pte, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return -EAGAIN;
		mark_page_dirty(slot, table_gfn);
		w->ptes[level - 1] = pte;
	}
	return 0;
}

SMMU_API int smmu_guest_walk(const smmu_vm *vm, smmu_gpa_t cr3, smmu_gva_t gva, struct smmu_guest_walk *out)
{
	if (!vm || !out || !is_canonical(gva))
		return -EINVAL;
	struct guest_walker w;
	pthread_rwlock_rdlock((pthread_rwlock_t *)&vm->srcu);
	int r = guest_walk_addr(vm, cr3, gva, 0, &w);
	pthread_rwlock_unlock((pthread_rwlock_t *)&vm->srcu);
	memset(out, 0, sizeof(*out));
	out->level = w.level;
	for (int i = 0; i < PT64_ROOT_LEVEL; i++)
		out->table_gfn[i] = w.table_gfn[i];
	if (r)
		return r;
	out->gfn = w.gfn;
	out->access = w.pte_access;
	out->pte = w.ptes[w.level - 1];
	return 0;
}

/* ---- the builder --------------------------------------------------------------------------- */

struct smmu_gas {
	smmu_vm *vm;
	smmu_gfn_t pool_gfn;
	uint64_t pool_pages;
	uint64_t used;   /* frames of the pool handed out; the first is the root */
};

static int zero_table(smmu_vm *vm, smmu_gfn_t gfn)
{
	static const uint8_t zeros[SMMU_PAGE_SIZE];
	return smmu_guest_write(vm, gfn << SMMU_PAGE_SHIFT, zeros, sizeof(zeros));
}

SMMU_API int smmu_gas_create(smmu_vm *vm, smmu_gfn_t pool_gfn, uint64_t pool_pages, smmu_gas **out)
{
	if (!vm || !out || !pool_pages || pool_gfn >= SMMU_MAX_GFN || pool_pages > SMMU_MAX_GFN - pool_gfn)
		return -EINVAL;
	pthread_rwlock_rdlock(&vm->srcu);
	/* The builder writes its tables into the pool: every frame must be writable guest memory. */
	int r = check_range(vm, pool_gfn << SMMU_PAGE_SHIFT, pool_pages << SMMU_PAGE_SHIFT, true);
	pthread_rwlock_unlock(&vm->srcu);
	if (r)
		return r;
	smmu_gas *gas = smmu_calloc(1, sizeof(*gas));
	if (!gas)
		return -ENOMEM;
	*gas = (smmu_gas){ .vm = vm, .pool_gfn = pool_gfn, .pool_pages = pool_pages, .used = 1 };
	r = zero_table(vm, pool_gfn);
	if (r) {
		smmu_free(gas, sizeof(*gas));
		return r;
	}
	*out = gas;
	return 0;
}

SMMU_API void smmu_gas_destroy(smmu_gas *gas) { smmu_free(gas, sizeof(*gas)); }

SMMU_API smmu_gpa_t smmu_gas_cr3(const smmu_gas *gas) { return gas ? gas->pool_gfn << SMMU_PAGE_SHIFT : 0; }

/* Find the entry for @gva at @level, making tables above it on the way when @create. */
static int gas_entry(smmu_gas *gas, smmu_gva_t gva, int level, bool create, smmu_gpa_t *pte_gpa)
{
	smmu_gfn_t table = gas->pool_gfn;
	for (int l = PT64_ROOT_LEVEL; l > level; l--) {
		smmu_gpa_t a = (table << SMMU_PAGE_SHIFT) + PT64_INDEX(gva, l) * 8;
		uint64_t e;
		int r = smmu_guest_read_u64(gas->vm, a, &e);
		if (r)
			return r;
		if (!(e & SMMU_PTE_PRESENT)) {
			if (!create)
				return -ENOENT;
			if (gas->used == gas->pool_pages)
				return -ENOSPC;
			smmu_gfn_t t = gas->pool_gfn + gas->used;
			r = zero_table(gas->vm, t);
			if (r)
				return r;
			gas->used++;
			e = (t << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER | SMMU_PTE_ACCESSED;
			r = smmu_guest_write_u64(gas->vm, a, e);
			if (r)
				return r;
		} else if (e & SMMU_PTE_LARGE) {
			return -EEXIST;
		}
		table = (e & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	}
	*pte_gpa = (table << SMMU_PAGE_SHIFT) + PT64_INDEX(gva, level) * 8;
	return 0;
}

SMMU_API int smmu_gas_map(smmu_gas *gas, smmu_gva_t gva, smmu_gfn_t gfn, int level, uint32_t prot)
{
	if (!gas || level < SMMU_LEVEL_4K || level > SMMU_LEVEL_1G || !is_canonical(gva))
		return -EINVAL;
	uint64_t span = KVM_PAGES_PER_HPAGE(level);
	if ((gva >> SMMU_PAGE_SHIFT) & (span - 1) || (gva & (SMMU_PAGE_SIZE - 1)) || (gfn & (span - 1)) ||
	    gfn >= SMMU_MAX_GFN || (prot & ~(uint32_t)(SMMU_PROT_WRITE | SMMU_PROT_USER | SMMU_PROT_NOEXEC)))
		return -EINVAL;
	smmu_gpa_t a;
	int r = gas_entry(gas, gva, level, true, &a);
	if (r)
		return r;
	if (level > 1) {
		uint64_t old;
		r = smmu_guest_read_u64(gas->vm, a, &old);
		if (r)
			return r;
		if ((old & SMMU_PTE_PRESENT) && !(old & SMMU_PTE_LARGE))
			return -EEXIST; /* a table sits where the large leaf would go */
	}
	uint64_t e = (gfn << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_ACCESSED;
	if (prot & SMMU_PROT_WRITE)
		e |= SMMU_PTE_WRITABLE | SMMU_PTE_DIRTY;
	if (prot & SMMU_PROT_USER)
		e |= SMMU_PTE_USER;
	if (prot & SMMU_PROT_NOEXEC)
		e |= SMMU_PTE_NX;
	if (level > 1)
		e |= SMMU_PTE_LARGE;
	return smmu_guest_write_u64(gas->vm, a, e);
}

SMMU_API int smmu_gas_unmap(smmu_gas *gas, smmu_gva_t gva)
{
	if (!gas || !is_canonical(gva))
		return -EINVAL;
	smmu_gfn_t table = gas->pool_gfn;
	for (int l = PT64_ROOT_LEVEL; l >= 1; l--) {
		smmu_gpa_t a = (table << SMMU_PAGE_SHIFT) + PT64_INDEX(gva, l) * 8;
		uint64_t e;
		int r = smmu_guest_read_u64(gas->vm, a, &e);
		if (r)
			return r;
		if (!(e & SMMU_PTE_PRESENT))
			return -ENOENT;
		if (l == 1 || (e & SMMU_PTE_LARGE))
			return smmu_guest_write_u64(gas->vm, a, 0);
		table = (e & SMMU_PTE_ADDR_MASK) >> SMMU_PAGE_SHIFT;
	}
	return -ENOENT;
}
