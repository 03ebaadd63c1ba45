/*
 * vCPUs (kvm_vcpu + kvm_mmu): creation, CR3 loads, request processing at entry, the hardware
 * walk of the shadow root, and memory access through a small software TLB.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>

#include "mmu.h"

#define SMMU_MAX_VCPUS 256
#define TLB_EMPTY (~0ull)

static size_t tlb_entries(const struct smmu_vm *vm) { return (size_t)vm->cfg.tlb_sets * vm->cfg.tlb_ways; }

void vcpu_tlb_flush(struct smmu_vcpu *v)
{
	size_t n = tlb_entries(v->vm);
	for (size_t i = 0; i < n; i++)
		v->tlb[i].vpn = TLB_EMPTY;
	v->stat.tlb_flushes++;
}

/* The smallest id no vCPU of @vm has: ids stay fixed for life, as kvm_vcpu.vcpu_id does, and
 * are reused after a destroy. Caller holds mmu_lock (which protects the vCPU array). */
static int lowest_free_id(const struct smmu_vm *vm)
{
	uint64_t used[SMMU_MAX_VCPUS / 64] = { 0 };
	for (int i = 0; i < vm->nr_vcpus; i++)
		used[vm->vcpus[i]->id / 64] |= 1ull << (vm->vcpus[i]->id % 64);
	int id = 0;
	while (used[id / 64] & (1ull << (id % 64)))
		id++;
	return id;
}

SMMU_API int smmu_vcpu_create(smmu_vm *vm, smmu_vcpu **out)
{
	if (!vm || !out)
		return -EINVAL;
	smmu_vcpu *v = smmu_calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->tlb = smmu_calloc(tlb_entries(vm), sizeof(*v->tlb));
	if (!v->tlb) {
		smmu_free(v, sizeof(*v));
		return -ENOMEM;
	}
	vcpu_tlb_flush(v);
	v->stat.tlb_flushes = 0;
	int r = 0;
	vm_lock(vm, SMMU_SITE_VCPU);
	if (vm->nr_vcpus == SMMU_MAX_VCPUS) {
		r = -ENOSPC;
	} else {
		v->id = lowest_free_id(vm);
		vm->vcpus[vm->nr_vcpus++] = v;
	}
	vm_unlock(vm);
	if (r) {
		smmu_free(v->tlb, 0);
		smmu_free(v, sizeof(*v));
		return r;
	}
	*out = v;
	return 0;
}

SMMU_API void smmu_vcpu_destroy(smmu_vcpu *v)
{
	if (!v)
		return;
	struct smmu_vm *vm = v->vm;
	struct list_node invalid_list;
	list_init(&invalid_list);
	vm_lock(vm, SMMU_SITE_VCPU);
	mmu_free_roots_locked(v, &invalid_list);
	kvm_mmu_commit_zap_page(vm, &invalid_list);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i] == v) {
			/* The last one takes the slot; ids do not change (kvm_vcpu.vcpu_id is fixed). */
			vm->vcpus[i] = vm->vcpus[--vm->nr_vcpus];
			break;
		}
	}
	vm_unlock(vm);
	mmu_free_memory_caches(vm, &v->caches);
	smmu_free(v->tlb, 0);
	smmu_free(v, sizeof(*v));
}

SMMU_API int smmu_vcpu_id(const smmu_vcpu *v) { return v ? v->id : -EINVAL; }

static bool cr3_ok(smmu_gpa_t cr3) { return !(cr3 & (SMMU_PAGE_SIZE - 1)) && cr3 < (1ull << SMMU_GPA_BITS); }

/* KVM_SET_SREGS with another CR3 (__set_sregs → kvm_mmu_reset_context → kvm_mmu_unload): every
 * root goes, cached ones too; the next entry or fault builds the new one. So does 3.11's
 * kvm_set_cr3 (kvm_mmu_new_cr3 → mmu_free_roots), which has no cache. */
SMMU_API int smmu_vcpu_set_cr3(smmu_vcpu *v, smmu_gpa_t cr3)
{
	if (!v || !cr3_ok(cr3))
		return -EINVAL;
	v->cr3 = cr3;
	v->has_cr3 = true;
	if (v->vm->cfg.mode == SMMU_MODE_SHADOW)
		mmu_free_roots(v);
	vcpu_tlb_flush(v);
	return 0;
}

/* The guest's MOV CR3 (kvm_set_cr3). Another CR3: kvm_mmu_new_pgd, which finds its root among
 * the cached ones (rules->prev_roots) or leaves the vCPU without one. Then, as for the same CR3,
 * kvm_invalidate_pcid (no PCID): KVM_REQ_MMU_SYNC and a flush of the vCPU's TLB (3.11:
 * kvm_mmu_sync_roots and kvm_mmu_flush_tlb for the same CR3; the new root another CR3 gets is
 * synced as it is loaded). */
SMMU_API int smmu_vcpu_load_cr3(smmu_vcpu *v, smmu_gpa_t cr3)
{
	if (!v || !cr3_ok(cr3))
		return -EINVAL;
	struct smmu_vm *vm = v->vm;
	if (vm->cfg.mode == SMMU_MODE_SHADOW) {
		struct list_node invalid_list;
		list_init(&invalid_list);
		vm_lock(vm, SMMU_SITE_VCPU);
		if (!v->has_cr3 || cr3 != v->cr3)
			kvm_mmu_new_pgd(v, cr3, &invalid_list);
		v->cr3 = cr3;
		v->has_cr3 = true;
		kvm_mmu_commit_zap_page(vm, &invalid_list);
		vm_unlock(vm);
		vcpu_make_request(v, KVM_REQ_MMU_SYNC);
	} else {
		v->cr3 = cr3;
		v->has_cr3 = true;
	}
	vcpu_tlb_flush(v);
	vcpu_audit_point(v, "load_cr3");
	return 0;
}

/* The part of vcpu_enter_guest that handles requests. */
void vcpu_process_requests(struct smmu_vcpu *v)
{
	uint32_t req = atomic_exchange_explicit(&v->requests, 0, memory_order_acquire);
	if (!req)
		return;
	bool dropped = false;
	if (req & KVM_REQ_MMU_RELOAD) { /* kvm_mmu_unload */
		mmu_free_roots(v);
		v->stat.reloads++;
		dropped = true;
	}
	if (req & KVM_REQ_MMU_FREE_OBSOLETE_ROOTS) {
		dropped |= kvm_mmu_free_obsolete_roots(v);
		v->stat.reloads++;
	}
	if (req & KVM_REQ_MMU_SYNC)
		v->sync_pending = true; /* synced where srcu is held: kvm_mmu_reload or the next fault */
	/* A root dropped: the next one is loaded with a TLB flush (kvm_mmu_load). */
	if ((req & KVM_REQ_TLB_FLUSH) || dropped)
		vcpu_tlb_flush(v);
}

/* The vCPU leaves guest mode (the VM exit): OUTSIDE_GUEST_MODE, one more exit counted. The
 * release pairs with a requester waiting for this exit: what the vCPU did in guest mode happens
 * before the requester goes on. */
static void vcpu_guest_exit(struct smmu_vcpu *v)
{
	uint32_t m = atomic_load_explicit(&v->mode, memory_order_relaxed);
	uint32_t exits = (m >> VCPU_MODE_EXIT_SHIFT) + 1;
	atomic_store_explicit(&v->mode, (exits << VCPU_MODE_EXIT_SHIFT) | OUTSIDE_GUEST_MODE, memory_order_release);
}

/*
 * The entry (vcpu_enter_guest, after its requests): set IN_GUEST_MODE, then read the requests
 * again; if one arrived meanwhile (or a kick), go back outside and return false. The store of
 * the mode and the read of the requests are sequentially consistent, as a requester's post and
 * its read of the mode are: either the requester sees IN_GUEST_MODE and waits for this vCPU's
 * exit, or the vCPU sees the request before it touches its TLB.
 */
static bool vcpu_try_enter(struct smmu_vcpu *v)
{
	uint32_t m = atomic_load_explicit(&v->mode, memory_order_relaxed) & ~(uint32_t)VCPU_MODE_MASK;
	atomic_store_explicit(&v->mode, m | IN_GUEST_MODE, memory_order_seq_cst);
	if (!atomic_load_explicit(&v->requests, memory_order_seq_cst) &&
	    (atomic_load_explicit(&v->mode, memory_order_relaxed) & VCPU_MODE_MASK) == IN_GUEST_MODE)
		return true;
	vcpu_guest_exit(v);
	return false;
}

/* vcpu_enter_guest: process the requests, enter; again while requests keep coming. */
static void vcpu_guest_enter(struct smmu_vcpu *v)
{
	do
		vcpu_process_requests(v);
	while (!vcpu_try_enter(v));
}

/* kvm_mmu_reload → kvm_mmu_load (vcpu_enter_guest, both eras): the vCPU enters the guest with a
 * root, so a vCPU whose CR3 another one already shadows takes no fault to find it. With no CR3
 * yet, or a CR3 in no slot (mmu_check_root), nothing is loaded: the next fault says why. With
 * @sync_only, only the KVM_REQ_MMU_SYNC part (kvm_mmu_sync_roots of the root it has). */
static int kvm_mmu_reload(struct smmu_vcpu *v, bool sync_only)
{
	struct smmu_vm *vm = v->vm;
	if ((v->root && !v->sync_pending) || (vm->cfg.mode == SMMU_MODE_SHADOW && !v->has_cr3) ||
	    (sync_only && !v->root))
		return 0;
	int r = mmu_topup_memory_caches(vm, &v->caches);
	if (r)
		return r;
	pthread_rwlock_rdlock(&vm->srcu);
	vm_lock(vm, SMMU_SITE_VCPU);
	if (v->root) { /* KVM_REQ_MMU_SYNC: kvm_mmu_sync_roots */
		kvm_mmu_sync_roots_locked(v);
	} else {
		make_mmu_pages_available(vm);
		r = mmu_alloc_roots(v);
	}
	vm_unlock(vm);
	pthread_rwlock_unlock(&vm->srcu);
	return r == -EFAULT ? 0 : r;
}

SMMU_API int smmu_vcpu_enter(smmu_vcpu *v)
{
	if (!v)
		return -EINVAL;
	vcpu_process_requests(v);
	return 0;
}

SMMU_API int smmu_vcpu_mmu_reload(smmu_vcpu *v)
{
	if (!v)
		return -EINVAL;
	vcpu_process_requests(v);
	int r = kvm_mmu_reload(v, false);
	vcpu_audit_point(v, "mmu_reload");
	return r;
}

/* The hardware walk of the current root. Caller holds mmu_lock. */
static int shadow_translate(struct smmu_vcpu *v, smmu_gva_t addr, struct smmu_translation *out)
{
	if (!v->root)
		return -EFAULT;
	uint64_t *table = v->root->spt;
	uint32_t acc = SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC;
	for (int level = PT64_ROOT_LEVEL; level >= 1; level--) {
		uint64_t spte = table[PT64_INDEX(addr, level)];
		if (!is_shadow_present_pte(spte))
			return -EFAULT;
		acc &= spte_access(spte);
		if (is_last_spte(spte, level)) {
			uint64_t off = addr & ((1ull << PT64_LEVEL_SHIFT(level)) - 1);
			out->hva = (void *)(uintptr_t)((spte_to_pfn(spte) << SMMU_PAGE_SHIFT) + off);
			out->access = acc;
			out->level = level;
			out->spte = spte;
			return 0;
		}
		table = spte_to_child_spt(spte);
	}
	return -EFAULT;
}

/* An address the vCPU can use: canonical with a CR3 in shadow mode, below 2^48 (what the
 * 4-level direct map reaches: vm_gfn_limit) in direct mode; the whole range [addr, addr + len) so. */
static bool vcpu_addr_ok(const struct smmu_vcpu *v, smmu_gva_t addr, size_t len, bool need_cr3)
{
	smmu_gva_t last = addr + (len ? len - 1 : 0);
	if (last < addr)
		return false;
	if (v->vm->cfg.mode == SMMU_MODE_DIRECT)
		return (last >> SMMU_PAGE_SHIFT) < vm_gfn_limit(v->vm);
	/* Canonical at both ends and on the same side of the hole. */
	return (v->has_cr3 || !need_cr3) && is_canonical(addr) && is_canonical(last) &&
	       (addr >> 63) == (last >> 63);
}

SMMU_API int smmu_vcpu_translate(smmu_vcpu *v, smmu_gva_t addr, uint32_t access, struct smmu_translation *out)
{
	if (!v || !out || !vcpu_addr_ok(v, addr, 1, false) ||
	    (access & ~(uint32_t)(SMMU_ACC_WRITE | SMMU_ACC_USER | SMMU_ACC_EXEC)))
		return -EINVAL;
	vm_lock(v->vm, SMMU_SITE_VCPU);
	int r = shadow_translate(v, addr, out);
	vm_unlock(v->vm);
	if (!r && (access & ~out->access))
		r = -EACCES;
	return r;
}

/* ---- memory access through the TLB -------------------------------------------------------- */

static struct tlb_entry *tlb_lookup(struct smmu_vcpu *v, uint64_t vpn)
{
	uint32_t ways = v->vm->cfg.tlb_ways;
	struct tlb_entry *set = &v->tlb[(vpn & (v->vm->cfg.tlb_sets - 1)) * ways];
	for (uint32_t i = 0; i < ways; i++)
		if (set[i].vpn == vpn)
			return &set[i];
	return NULL;
}

static void tlb_fill(struct smmu_vcpu *v, uint64_t vpn, uint64_t hfn, uint32_t access)
{
	uint32_t ways = v->vm->cfg.tlb_ways;
	struct tlb_entry *set = &v->tlb[(vpn & (v->vm->cfg.tlb_sets - 1)) * ways], *victim = &set[0];
	for (uint32_t i = 0; i < ways; i++) {
		if (set[i].vpn == TLB_EMPTY) {
			victim = &set[i];
			break;
		}
		if (set[i].age < victim->age)
			victim = &set[i];
	}
	*victim = (struct tlb_entry){ .vpn = vpn, .hfn = hfn, .access = access, .age = ++v->tlb_clock };
}

#define ACCESS_TRIES 8

static void copy_bytes(uint8_t *hva, uint8_t *rbuf, const uint8_t *wbuf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (wbuf)
			__atomic_store_n(&hva[i], wbuf[i], __ATOMIC_RELAXED);
		else
			rbuf[i] = __atomic_load_n(&hva[i], __ATOMIC_RELAXED);
	}
}

/* The access itself, in guest mode, after the test hook. */
static void copy_at(struct smmu_vcpu *v, uint64_t hfn, smmu_gva_t addr, uint8_t *rbuf, const uint8_t *wbuf,
		    size_t len)
{
	if (v->vm->guest_mode_hook)
		v->vm->guest_mode_hook(v, v->vm->guest_mode_hook_ctx);
	copy_bytes((uint8_t *)(uintptr_t)((hfn << SMMU_PAGE_SHIFT) | (addr & (SMMU_PAGE_SIZE - 1))), rbuf, wbuf, len);
}

/*
 * Try the access as the hardware would, in guest mode: through the TLB, else through a walk of
 * the root that fills the TLB. True if done; false if the access needs a fault.
 *
 * The model's walk takes mmu_lock, so it cannot run in guest mode (a requester holding the lock
 * waits for the vCPUs in guest mode). The vCPU leaves guest mode for the walk and enters again
 * before it lets the lock go: walk and use are then one step, as the hardware's walk in guest
 * mode is. A request made before that entry is pending there (requests are made under the
 * lock): the vCPU processes it and walks again; one made after kicks it and waits for the copy.
 */
static bool access_hw(struct smmu_vcpu *v, smmu_gva_t addr, uint32_t access, uint8_t *rbuf, const uint8_t *wbuf,
		      size_t len)
{
	uint64_t vpn = addr >> SMMU_PAGE_SHIFT;
	vcpu_guest_enter(v);
	struct tlb_entry *e = tlb_lookup(v, vpn);
	if (e && (access & ~e->access) == 0) {
		v->stat.tlb_hits++;
		copy_at(v, e->hfn, addr, rbuf, wbuf, len);
		vcpu_guest_exit(v);
		return true;
	}
	vcpu_guest_exit(v);
	v->stat.tlb_misses++;
	for (int tries = 0; tries < ACCESS_TRIES; tries++) {
		struct smmu_translation t;
		vm_lock(v->vm, SMMU_SITE_VCPU);
		int r = shadow_translate(v, addr, &t);
		bool ok = !r && (access & ~t.access) == 0, entered = ok && vcpu_try_enter(v);
		vm_unlock(v->vm);
		if (!ok)
			return false;
		if (entered) {
			uint64_t hfn = (uintptr_t)t.hva >> SMMU_PAGE_SHIFT;
			tlb_fill(v, vpn, hfn, t.access);
			copy_at(v, hfn, addr, rbuf, wbuf, len);
			vcpu_guest_exit(v);
			return true;
		}
		vcpu_process_requests(v);
	}
	return false;
}

/*
 * One access within a 4 KiB page. The TLB lookup and the copy run in guest mode inside the srcu
 * read section, after the requests are processed: a flush kicks the vCPU and waits until it left
 * guest mode, so no stale entry is used once the flush returned; a slot being deleted has
 * flushed before it waits for readers, and its backing is unmapped only after.
 */
static int access_page(struct smmu_vcpu *v, smmu_gva_t addr, uint32_t access, uint8_t *rbuf, const uint8_t *wbuf,
		       size_t len)
{
	for (int tries = 0; tries < ACCESS_TRIES; tries++) {
		/* vcpu_enter_guest: KVM_REQ_MMU_SYNC syncs the roots before the guest runs (after a MOV
		 * CR3 the root kept, or a cached one made current, may have unsync pages the guest
		 * changed): the hardware walk below must not use their stale sptes. Only this vCPU
		 * posts that request, so none arrives between here and the entry. */
		vcpu_process_requests(v);
		int r = kvm_mmu_reload(v, true);
		if (r)
			return r;
		pthread_rwlock_rdlock(&v->vm->srcu);
		bool done = access_hw(v, addr, access, rbuf, wbuf, len);
		pthread_rwlock_unlock(&v->vm->srcu);
		if (done)
			return 0;
		struct smmu_fault_info fi;
		r = smmu_vcpu_fault(v, addr, access, &fi);
		if (r < 0)
			return r;
		if (r == SMMU_FAULT_GUEST_PF || r == SMMU_FAULT_MMIO)
			return -EFAULT;
		if (r == SMMU_FAULT_MAPPED && fi.emulated_write)
			/* x86_emulate_instruction: the store goes through the trapping write path. */
			return smmu_guest_write(v->vm, (fi.gfn << SMMU_PAGE_SHIFT) | (addr & (SMMU_PAGE_SIZE - 1)),
						wbuf, len);
	}
	return -EAGAIN;
}

static int vcpu_access(struct smmu_vcpu *v, smmu_gva_t addr, uint8_t *rbuf, const uint8_t *wbuf, size_t len)
{
	if (!v || (!rbuf && !wbuf && len) || !vcpu_addr_ok(v, addr, len, true))
		return -EINVAL;
	uint32_t access = wbuf ? SMMU_ACC_WRITE : 0;
	while (len) {
		size_t n = SMMU_PAGE_SIZE - (addr & (SMMU_PAGE_SIZE - 1));
		if (n > len)
			n = len;
		int r = access_page(v, addr, access, rbuf, wbuf, n);
		if (r)
			return r;
		addr += n, len -= n;
		if (rbuf)
			rbuf += n;
		if (wbuf)
			wbuf += n;
	}
	return 0;
}

SMMU_API int smmu_vcpu_read(smmu_vcpu *v, smmu_gva_t addr, void *buf, size_t len)
{
	return vcpu_access(v, addr, buf, NULL, len);
}

SMMU_API int smmu_vcpu_write(smmu_vcpu *v, smmu_gva_t addr, const void *buf, size_t len)
{
	return vcpu_access(v, addr, NULL, buf, len);
}

SMMU_API int smmu_vcpu_get_counters(const smmu_vcpu *v, struct smmu_vcpu_counters *out)
{
	if (!v || !out)
		return -EINVAL;
	*out = v->stat;
	return 0;
}
