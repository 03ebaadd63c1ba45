/*
 * smmu-kvmdiff — the library backend: a scenario through libshadowmmu (the profile of the kernel
 * compared with: kd_target_for_kernel).
 *
 * The guest is the same as the kernel backend's (scenario.h), its page tables built by the same
 * code (gpt.c) in the shape smmu_gas_map() builds. Each guest run fetches the guest
 * program at KD_CODE_GPA and reads the mailbox at KD_MBOX_GPA, as the real guest does, before
 * its data accesses; every access is a CPL 3 access.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shadowmmu/shadowmmu.h>

#include "backend.h"
#include "gpt.h"
#include "hostmem.h"

#define KD_HOST_SLOTS 32 /* scenario slots whose host pages are modelled */

struct lib {
	const struct kd_scenario *sc;
	const struct kd_step *st;
	smmu_vm *vm;
	smmu_vcpu *vcpu[KD_MAX_VCPUS];
	int vcpu_as[KD_MAX_VCPUS];
	struct kd_gpt gpt[KD_MAX_AS];
	const struct kd_target *tg;
	struct kd_rstep *cur; /* where the hook records events */
	bool oom;
	uint64_t dirty;
	struct {
		int id;  /* -1: free */
		bool ro; /* KVM_MEM_READONLY: a guest write is MMIO, the host page stays as it is */
		struct kd_hostmem h;
	} host[KD_HOST_SLOTS];
	char *err;
	size_t errlen;
};

static int lfail(struct lib *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lfail(struct lib *L, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_step_error(L->err, L->errlen, L->sc, L->st, fmt, ap);
	va_end(ap);
	return -1;
}

/* Called with mmu_lock held: note created and zapped pages in order. */
static void hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct lib *L = ctx;
	struct smmu_sp_info info;
	if ((ev != SMMU_EV_PAGE_CREATED && ev != SMMU_EV_PAGE_ZAPPED) || !L->cur || !sp ||
	    smmu_sp_get_info(vm, sp, &info))
		return;
	if (kd_rstep_event(L->cur, ev == SMMU_EV_PAGE_CREATED ? 'c' : 'z', info.level, info.gfn, info.direct))
		L->oom = true;
}

/* Guest memory as the host sees it: stores behind the MMU's back, as the kernel backend's
 * stores into the slot's mmap are. Writing a guest table that a valid shadow page shadows is
 * refused: the kernel would not notice such a write, so the two sides would part for a reason
 * that is the scenario's, not the MMU's. */
static bool shadowed(smmu_vm *vm, uint64_t gfn)
{
	bool found = false;
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_hash_first(vm, gfn); sp && !found; sp = smmu_hash_next(vm, sp)) {
		struct smmu_sp_info info;
		found = !smmu_sp_get_info(vm, sp, &info) && info.gfn == gfn && !info.direct && !info.invalid;
	}
	smmu_mmu_unlock(vm);
	return found;
}

/* The host pages behind @hva, NULL outside the scenario slots (the system slot is not modelled:
 * only the harness's own pages live there). */
static int host_of(struct lib *L, uintptr_t hva)
{
	for (int i = 0; i < KD_HOST_SLOTS; i++) {
		struct kd_hostmem *h = &L->host[i].h;
		if (L->host[i].id >= 0 && hva >= h->hva && hva < h->hva + (h->npages << 12))
			return i;
	}
	return -1;
}

/* The guest (@guest) or the host touches the page behind @gpa: what the host does first, the
 * library learns through its MMU notifier (hostmem.h). */
static void host_touch(struct lib *L, uint64_t gpa, bool write, bool guest)
{
	uintptr_t hva = (uintptr_t)smmu_gfn_to_hva(L->vm, gpa >> 12), start, end;
	int i = hva ? host_of(L, hva) : -1;
	if (i < 0 || (guest && write && L->host[i].ro))
		return;
	if (kd_hostmem_access(&L->host[i].h, hva, write, &start, &end))
		smmu_mmu_notifier_invalidate_range(L->vm, (void *)start, (void *)end);
}

/* The host's page fault inside KVM's (hva_to_pfn): the zero page copied on a write, or a huge
 * page split, is unmapped there, after the fault sampled mmu_seq, so that fault retries. */
static void host_hva_to_pfn(smmu_vm *vm, void *p, bool write, void *ctx)
{
	struct lib *L = ctx;
	uintptr_t hva = (uintptr_t)p, start, end;
	int i = host_of(L, hva);
	if (i >= 0 && kd_hostmem_access(&L->host[i].h, hva, write, &start, &end))
		smmu_mmu_notifier_invalidate_range(vm, (void *)start, (void *)end);
}

static int mem_read(void *ctx, uint64_t gpa, uint64_t *val)
{
	struct lib *L = ctx;
	host_touch(L, gpa, false, false);
	uint64_t *p = smmu_gfn_to_hva(L->vm, gpa >> 12);
	if (!p)
		return -EFAULT;
	*val = __atomic_load_n(p + (gpa & 4095) / 8, __ATOMIC_RELAXED);
	return 0;
}

static int mem_write(void *ctx, uint64_t gpa, uint64_t val)
{
	struct lib *L = ctx;
	uint64_t *p = smmu_gfn_to_hva(L->vm, gpa >> 12);
	if (!p)
		return -EFAULT;
	if (shadowed(L->vm, gpa >> 12))
		return -EBUSY;
	host_touch(L, gpa, true, false);
	__atomic_store_n(p + (gpa & 4095) / 8, val, __ATOMIC_RELAXED);
	return smmu_host_wrote(L->vm, p, p + 1); /* the host's store maps its page writable */
}

static int mem_zero(void *ctx, uint64_t gpa)
{
	for (uint64_t off = 0; off < 4096; off += 8) {
		int r = mem_write(ctx, gpa + off, 0);
		if (r)
			return r;
	}
	return 0;
}

static int gpt_map(void *ctx, uint64_t gva, uint64_t gfn, int level, uint32_t prot)
{
	return kd_gpt_map(ctx, gva, gfn, level, prot);
}

/* The host builds mappings (before the guest uses those tables). */
static int host_map(struct lib *L, int as, const struct kd_step *st)
{
	int r = st ? kd_layout_map(st, gpt_map, &L->gpt[as]) : kd_layout_as(&L->sc->as[as], gpt_map, &L->gpt[as]);
	if (r == -EBUSY)
		return lfail(L, "it writes a guest page table that is already shadowed; the kernel would "
				"not see that host write: let the guest do it (gpte, gunmap)");
	if (r)
		return lfail(L, "building the guest tables: %s%s", strerror(-r),
			     r == -ENOSPC ? " (the address space's pool is too small)" : "");
	return 0;
}

static int access_one(struct lib *L, smmu_vcpu *v, uint64_t gva, uint32_t acc, uint64_t val);

/* One CPL 3 access as the hardware and KVM would make it: through the sptes when they allow it,
 * else a fault; a store to a write-protected guest table is emulated. The host side of a fault
 * (a zero page copied, a huge page split) happens inside it (host_hva_to_pfn), as in KVM's
 * hva_to_pfn; a fault that retries for it re-executes the instruction: the guest fetches it
 * again first, and that fetch faults where the retried fault's recycling zapped the program's
 * shadow path. A store writes the low @bytes bytes of @val (within one page: the callers
 * check). */
static int access_store(struct lib *L, smmu_vcpu *v, uint64_t gva, uint32_t acc, uint64_t val, unsigned bytes)
{
	acc |= SMMU_ACC_USER;
	for (int tries = 0; tries < 8; tries++) {
		struct smmu_translation t;
		int r = smmu_vcpu_translate(v, gva, acc, &t);
		if (!r) {
			if (acc & SMMU_ACC_WRITE) {
				if (bytes == 8)
					__atomic_store_n((uint64_t *)t.hva, val, __ATOMIC_RELAXED);
				else
					memcpy(t.hva, &val, bytes); /* little-endian: the low bytes */
				/* The store lands in the library's backing: its host page is mapped
				 * writable from now on, as the kernel's would be after a write. */
				return smmu_host_wrote(L->vm, t.hva, (char *)t.hva + bytes) ? lfail(L, "smmu_host_wrote") : 0;
			}
			return 0;
		}
		/* The error code the hardware would give: the SMMU_ACC_* bits are PFERR's W, U and F,
		 * and P says the translation was present but did not allow the access. */
		if (kd_rstep_fault(L->cur, gva, acc | (r == -EACCES ? 1u : 0)))
			return lfail(L, "out of memory");
		struct smmu_fault_info fi;
		r = smmu_vcpu_fault(v, gva, acc, &fi);
		if (r < 0)
			return lfail(L, "smmu_vcpu_fault(%#llx): %s", (unsigned long long)gva, strerror(-r));
		if (r == SMMU_FAULT_MMIO)
			return 0; /* emulated: KVM_EXIT_MMIO */
		if (r == SMMU_FAULT_GUEST_PF)
			return lfail(L, "the guest's tables do not allow access %#x at gva %#llx (reason %d): "
					"the real guest would take a #PF it cannot handle", acc,
				     (unsigned long long)gva, fi.pf_reason);
		if (r == SMMU_FAULT_RETRY && !(acc & SMMU_ACC_EXEC) &&
		    access_one(L, v, KD_CODE_GPA, SMMU_ACC_EXEC, 0))
			return -1;
		if (r == SMMU_FAULT_MAPPED && fi.emulated_write) {
			/* The emulator's store (kvm_write_guest): the host's page fault, if any, first. */
			host_touch(L, (fi.gfn << 12) | (gva & 4095), true, true);
			r = smmu_guest_write(L->vm, (fi.gfn << 12) | (gva & 4095), &val, bytes);
			return r ? lfail(L, "emulated store at %#llx: %s", (unsigned long long)gva, strerror(-r)) : 0;
		}
	}
	return lfail(L, "no progress at gva %#llx after 8 faults", (unsigned long long)gva);
}

static int access_one(struct lib *L, smmu_vcpu *v, uint64_t gva, uint32_t acc, uint64_t val)
{
	return access_store(L, v, gva, acc, val, 8);
}

/* A guest run: vcpu_enter_guest, fetch the program, read the mailbox, then the step's work. */
static int guest_enter(struct lib *L, int v)
{
	if (L->vcpu_as[v] < 0)
		return lfail(L, "vcpu %d has no cr3 yet", v);
	int r = smmu_vcpu_mmu_reload(L->vcpu[v]); /* vcpu_enter_guest: requests, then kvm_mmu_reload */
	if (r)
		return lfail(L, "smmu_vcpu_mmu_reload: %s", strerror(-r));
	if (access_one(L, L->vcpu[v], KD_CODE_GPA, SMMU_ACC_EXEC, 0) ||
	    access_one(L, L->vcpu[v], KD_MBOX_GPA, SMMU_ACC_READ, 0))
		return -1;
	return 0;
}

/* The guest's own MOV to CR3 (the kernel side runs it at CPL 0 from the program's page): the
 * entry, the fetch of the MOV in the old address space, smmu_vcpu_load_cr3 (kvm_set_cr3), the
 * entry after the intercept and the fetch of the HLT after it in the new one. */
static int guest_movcr3(struct lib *L, const struct kd_step *st)
{
	smmu_vcpu *v = L->vcpu[st->vcpu];
	if (L->vcpu_as[st->vcpu] < 0)
		return lfail(L, "vcpu %d has no cr3 yet", st->vcpu);
	int r = smmu_vcpu_mmu_reload(v);
	if (r)
		return lfail(L, "smmu_vcpu_mmu_reload: %s", strerror(-r));
	if (access_one(L, v, KD_CODE_GPA, SMMU_ACC_EXEC, 0))
		return -1;
	if ((r = smmu_vcpu_load_cr3(v, L->sc->as[st->id].pool_gpa)))
		return lfail(L, "smmu_vcpu_load_cr3: %s", strerror(-r));
	L->vcpu_as[st->vcpu] = st->id;
	if ((r = smmu_vcpu_mmu_reload(v)))
		return lfail(L, "smmu_vcpu_mmu_reload: %s", strerror(-r));
	return access_one(L, v, KD_CODE_GPA, SMMU_ACC_EXEC, 0);
}

/* The guest stores into its own page table through its pool window. */
static int guest_pte_store(struct lib *L, const struct kd_step *st)
{
	const struct kd_as *as = &L->sc->as[st->id];
	uint64_t gva, val;
	if (L->vcpu_as[st->vcpu] != st->id)
		return lfail(L, "vcpu %d does not run in address space '%s' (cr3 first)", st->vcpu, as->name);
	int e = kd_guest_store(&L->gpt[st->id], as, st, &gva, &val);
	if (e == -ERANGE)
		return lfail(L, "the %d-byte store at offset %d runs past the table's end", st->bytes, st->offset);
	if (e)
		return lfail(L, "gva %#llx has no such entry in '%s'", (unsigned long long)st->a, as->name);
	if (guest_enter(L, st->vcpu))
		return -1;
	return access_store(L, L->vcpu[st->vcpu], gva, SMMU_ACC_WRITE, val, (unsigned)st->bytes);
}

static int step(struct lib *L, const struct kd_step *st)
{
	int r = 0;
	struct smmu_memslot_info mi;
	switch (st->op) {
	case KD_VCPUS:
		return 0; /* created up front */
	case KD_MMU_PAGES:
		r = smmu_vm_set_max_mmu_pages(L->vm, st->b);
		break;
	case KD_SLOT:
		r = smmu_memslot_create(L->vm, st->id, st->a >> 12, st->b >> 12,
					(st->log ? SMMU_MEM_LOG_DIRTY_PAGES : 0) | (st->ro ? SMMU_MEM_READONLY : 0));
		/* The kernel side's backing: THP (MADV_HUGEPAGE) or 4 KiB pages (MADV_NOHUGEPAGE). */
		if (!r)
			r = smmu_memslot_set_host_level(L->vm, st->id, st->thp ? SMMU_LEVEL_2M : SMMU_LEVEL_4K);
		if (!r && !(r = smmu_memslot_get(L->vm, st->id, &mi))) {
			int i = 0;
			while (i < KD_HOST_SLOTS && L->host[i].id >= 0)
				i++;
			if (i == KD_HOST_SLOTS)
				return lfail(L, "more than %d slots at once", KD_HOST_SLOTS);
			if (!(r = kd_hostmem_init(&L->host[i].h, mi.hva, mi.npages, st->thp,
						  L->tg->thp_write_allocates))) {
				L->host[i].id = st->id;
				L->host[i].ro = st->ro;
			}
		}
		break;
	case KD_DELETE:
		r = smmu_memslot_delete(L->vm, st->id);
		for (int i = 0; !r && i < KD_HOST_SLOTS; i++)
			if (L->host[i].id == st->id) { /* its backing is unmapped */
				kd_hostmem_free(&L->host[i].h);
				L->host[i].id = -1;
			}
		break;
	case KD_MOVE:
		r = smmu_memslot_move(L->vm, st->id, st->a >> 12);
		break;
	case KD_FLAGS:
		if (!(r = smmu_memslot_get(L->vm, st->id, &mi)))
			r = smmu_memslot_set_flags(L->vm, st->id, (mi.flags & ~(uint32_t)SMMU_MEM_LOG_DIRTY_PAGES) |
								   (st->log ? SMMU_MEM_LOG_DIRTY_PAGES : 0));
		break;
	case KD_AS: {
		struct kd_mem mem = { L, mem_read, mem_write, mem_zero };
		if ((r = kd_gpt_init(&L->gpt[st->id], &mem, st->a >> 12, st->b)))
			break;
		return host_map(L, st->id, NULL);
	}
	case KD_MAP:
		return host_map(L, st->id, st);
	case KD_CR3:
		r = smmu_vcpu_set_cr3(L->vcpu[st->vcpu], L->sc->as[st->id].pool_gpa);
		if (!r)
			L->vcpu_as[st->vcpu] = st->id;
		break;
	case KD_MOVCR3:
		return guest_movcr3(L, st);
	case KD_TOUCH:
		if (guest_enter(L, st->vcpu))
			return -1;
		/* The guest's loop fetches its next instruction after every access: where a fault's
		 * page recycling zapped the program's shadow path, that fetch faults again. */
		for (uint64_t i = 0; i < st->b; i++)
			if (access_one(L, L->vcpu[st->vcpu], st->a + i * st->c,
				       st->write ? SMMU_ACC_WRITE : SMMU_ACC_READ, 0) ||
			    access_one(L, L->vcpu[st->vcpu], KD_CODE_GPA, SMMU_ACC_EXEC, 0))
				return -1;
		return 0;
	case KD_GPTE:
	case KD_GCLEAR:
		return guest_pte_store(L, st);
	case KD_INVALIDATE:
		if (!(r = smmu_memslot_get(L->vm, st->id, &mi))) {
			char *start = (char *)mi.hva + st->a;
			int64_t n = smmu_mmu_notifier_invalidate_range(L->vm, start, start + st->b);
			r = n < 0 ? (int)n : 0;
			int h = host_of(L, (uintptr_t)start);
			if (h >= 0)
				kd_hostmem_dontneed(&L->host[h].h, (uintptr_t)start, st->b);
		}
		break;
	case KD_DIRTYLOG: {
		if ((r = smmu_memslot_get(L->vm, st->id, &mi)))
			break;
		size_t words = (mi.npages + 63) / 64;
		uint64_t *bm = calloc(words, sizeof(*bm));
		if (!bm)
			return lfail(L, "out of memory");
		int64_t n = smmu_memslot_get_dirty_log(L->vm, st->id, bm, words);
		free(bm);
		if (n >= 0)
			L->dirty = (uint64_t)n;
		r = n < 0 ? (int)n : 0;
		break;
	}
	}
	return r ? lfail(L, "%s", strerror(-r)) : 0;
}

/* The counters after a step, by KVM's names. mmu_unsync, mmu_flooded and pf_mmio_spte_created
 * come from calls of their own (smmu_vm_get_mmu_unsync, smmu_vm_get_mmu_flooded,
 * smmu_vm_get_mmio_counters). */
static void counters(struct lib *L, struct kd_rstep *s)
{
	struct smmu_vm_counters c;
	struct smmu_mmio_counters mmio;
	uint64_t unsync = 0, flooded = 0;
	smmu_vm_get_counters(L->vm, &c);
	smmu_vm_get_mmu_unsync(L->vm, &unsync);
	smmu_vm_get_mmu_flooded(L->vm, &flooded);
	smmu_vm_get_mmio_counters(L->vm, &mmio);
	uint64_t pages_4k = 0;
	smmu_mmu_lock(L->vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_active_first(L->vm); sp; sp = smmu_active_next(L->vm, sp)) {
		struct smmu_sp_info info;
		if (!smmu_sp_get_info(L->vm, sp, &info) && info.level == 1)
			pages_4k += info.n_present; /* every spte of a level-1 table is a 4 KiB leaf */
	}
	smmu_mmu_unlock(L->vm);
	const struct {
		enum kd_ctr c;
		uint64_t v;
	} have[] = {
		{ KD_C_MMU_CACHE_MISS, c.pages_created }, { KD_C_MMU_SHADOW_ZAPPED, c.pages_zapped },
		{ KD_C_MMU_RECYCLED, c.pages_recycled },  { KD_C_PF_FIXED, c.faults_fixed },
		{ KD_C_PAGES_4K, pages_4k },              { KD_C_PAGES_2M, c.lpages },
		{ KD_C_MMU_PTE_WRITE, c.pte_writes },     { KD_C_MMU_UNSYNC, unsync },
		{ KD_C_MMU_FLOODED, flooded },
		/* The library counts every kvm_flush_remote_tlbs call: KVM's remote_tlb_flush_requests.
		 * KVM's remote_tlb_flush counts only the calls that kicked a vCPU in guest mode, which
		 * the library does not count: absent. */
		{ KD_C_REMOTE_TLB_FLUSH_REQUESTS, c.remote_tlb_flushes },
		{ KD_C_DIRTY_PAGES, L->dirty },
		{ KD_C_PF_MMIO_SPTE_CREATED, mmio.sptes_created },
	};
	for (size_t i = 0; i < sizeof(have) / sizeof(have[0]); i++) {
		s->ctr[have[i].c] = have[i].v;
		s->have[have[i].c] = true;
	}
}

static int audit(struct lib *L)
{
	struct smmu_violation v[8];
	struct smmu_audit_report rep = { .v = v, .cap = 8 };
	long n = smmu_audit(L->vm, &rep);
	if (n < 0)
		return lfail(L, "smmu_audit: %s", strerror((int)-n));
	if (n > 0) {
		smmu_audit_print(stderr, &rep);
		return lfail(L, "the audit found %ld violation(s) after this step", n);
	}
	return 0;
}

void kd_target_for_kernel(const char *release, struct kd_target *t)
{
	unsigned major = 0, minor = 0;
	memset(t, 0, sizeof(*t));
	if (release)
		snprintf(t->kernel, sizeof(t->kernel), "%s", release);
	bool known = release && sscanf(release, "%u.%u", &major, &minor) == 2;
	unsigned v = known ? major * 1000 + minor : ~0u; /* unknown: today's */
	/* The rules changed since 6.1 (profile.h) came in 6.4, 6.9 and 6.13: the 6.1 profile is
	 * exact up to 6.3, today's from 6.13 on; a kernel in between differs from both. */
	t->profile = v < 6004 ? SMMU_PROFILE_LINUX_6_1 : SMMU_PROFILE_LINUX_TODAY;
	t->profile_name = v < 6004 ? "linux-6.1" : "linux-today";
	t->thp_write_allocates = v >= 6013;
}

int kd_lib_run(const struct kd_scenario *sc, const struct kd_target *tg, struct kd_record *rec, bool do_audit,
	       char *err, size_t errlen)
{
	struct lib L = { .sc = sc, .err = err, .errlen = errlen };
	struct smmu_vm_config cfg;
	struct kd_target today;
	int r, rc = -1;
	for (int i = 0; i < KD_HOST_SLOTS; i++)
		L.host[i].id = -1;
	if (!tg) {
		kd_target_for_kernel(NULL, &today);
		tg = &today;
	}
	L.tg = tg;

	memset(rec, 0, sizeof(*rec));
	kd_record_header(rec, "library", sc->name);
	rec->events = true; /* the hook sees every page created and zapped */
	kd_record_note(rec, "libshadowmmu %d.%d.%d, shadow mode, profile %s%s%s%s, flush fast-zap",
		       SMMU_VERSION_MAJOR, SMMU_VERSION_MINOR, SMMU_VERSION_PATCH, tg->profile_name,
		       tg->kernel[0] ? " (for kernel " : "", tg->kernel, tg->kernel[0] ? ")" : "");
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = (enum smmu_profile)tg->profile;
	cfg.flush_strategy = SMMU_FLUSH_FAST_ZAP; /* kvm_mmu_zap_all_fast: today's slot flush */
	if ((r = smmu_vm_create(&cfg, &L.vm)))
		return lfail(&L, "smmu_vm_create: %s", strerror(-r));
	if ((r = smmu_memslot_create(L.vm, KD_SYS_SLOT, 0, KD_SYS_BYTES >> 12, 0))) {
		lfail(&L, "system slot: %s", strerror(-r));
		goto out;
	}
	/* The kernel side's host stores into the system slot (the program, the GDT at 0x3000, the
	 * mailbox every step) leave those pages mapped writable, so KVM's read faults on them map
	 * writable sptes (map_writable); the library learns it so. */
	static const uint64_t sys_written[] = { KD_CODE_GPA, 0x3000, KD_MBOX_GPA };
	for (size_t i = 0; i < sizeof(sys_written) / sizeof(sys_written[0]); i++) {
		char *h = smmu_gfn_to_hva(L.vm, sys_written[i] >> 12);
		if (!h || smmu_host_wrote(L.vm, h, h + 4096)) {
			lfail(&L, "smmu_host_wrote");
			goto out;
		}
	}
	for (int v = 0; v < sc->nvcpus; v++) {
		L.vcpu_as[v] = -1;
		if ((r = smmu_vcpu_create(L.vm, &L.vcpu[v]))) {
			lfail(&L, "smmu_vcpu_create: %s", strerror(-r));
			goto out;
		}
	}
	smmu_set_hook(L.vm, hook, &L);
	smmu_set_hva_to_pfn_hook(L.vm, host_hva_to_pfn, &L);
	for (size_t i = 0; i < sc->nsteps; i++) {
		L.st = &sc->steps[i];
		if (!(L.cur = kd_record_step(rec, L.st->line, L.st->text))) {
			lfail(&L, "out of memory");
			goto out;
		}
		uint64_t t0 = kd_now_ns();
		r = step(&L, L.st);
		L.cur->ns = kd_now_ns() - t0;
		if (r)
			goto out;
		if (L.oom) {
			lfail(&L, "out of memory recording events");
			goto out;
		}
		counters(&L, L.cur);
		if (do_audit && audit(&L))
			goto out;
	}
	rc = 0;
out:
	L.cur = NULL;
	smmu_set_hook(L.vm, NULL, NULL);
	smmu_set_hva_to_pfn_hook(L.vm, NULL, NULL);
	smmu_vm_destroy(L.vm);
	for (int i = 0; i < KD_HOST_SLOTS; i++)
		if (L.host[i].id >= 0)
			kd_hostmem_free(&L.host[i].h);
	if (rc)
		kd_record_free(rec);
	return rc;
}
