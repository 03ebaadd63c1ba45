/*
 * The operation fuzzer: bytes → a sequence of shadow-MMU operations, with smmu_audit() after
 * every few. Any violation prints the operations so far and the audit report, then abort()s.
 *
 * Input: byte 0 configures the VM (mode, profile, flush strategy, zap batch, page budget); byte
 * 1 the harness: forced lock breaks (the lock's test hook makes needbreak say "break" from the
 * 1st, 3rd or 16th check after the last break on, so one thread drives the lock-break and
 * restart paths of zap_all, the fast zap's drain and the memslot flushes), the audit interval
 * (after every 1st, 4th, 16th or 64th operation, and always after the last), and a racing fault
 * (bit 4; bits 5-7 choose the zapped page it starts at): vCPU 2 faults on a second thread inside
 * each zap's lock breaks, in an order the input fixes (fuzz_racer.c). Then each operation is an
 * opcode byte followed by its argument bytes (missing bytes read as 0), at most MAX_OPS
 * operations. Some opcodes run another kind of operation when an argument bit their first
 * version left unused is set (fuzz_ops.h, enum fuzz_kind: the guest's MOV CR3, the entry that
 * loads a root, INVLPG, the memslots' starting generation, the host's page size, a host store),
 * so that the opcode numbers, and every input saved before, decode as they did. Sizes are bounded: at most 4 slots, chosen from a fixed table of layouts (one of
 * them 1 GiB, for 1 GiB sptes in direct mode, chosen by one byte value only), 2 guest address
 * spaces with 64-frame page-table pools, 3 vCPUs,
 * addresses from a small table. SMMU_FUZZ_AUDIT_EVERY=N in the environment overrides the
 * interval (1: find the first operation after which the audit fails).
 *
 * In the libFuzzer build a VM outlives its input and serves the next one with the same byte 0
 * (fuzz_pool.c), emptied and restored to as it was new; fuzz_replay creates every VM fresh.
 *
 * Strategies: every zap and flush strategy except SMMU_FLUSH_RMAP_ONLY, which breaks invariants
 * 4 and 9 on purpose (the seed's bug): including it would make every input that deletes a slot
 * holding a shadowed table a "crash". It is excluded from memslot flushes and from the VM's
 * delete/move strategy, so every invariant holds at every audit.
 *
 * A second oracle: a successful vCPU read or write must agree with guest memory at the frame
 * the guest's own tables map the address to (a stale translation would not). A third: every
 * successful write into a slot that logs dirty pages shows in that slot's next dirty log.
 * Except where x86 allows a stale translation: a vCPU store into a guest table whose shadow page
 * is unsync is not trapped, so every vCPU may go on using what that table said before, as a
 * hardware TLB may, until its next CR3 load (KVM_SET_SREGS or the guest's MOV CR3: either
 * flushes its TLB and has its roots synced before it runs again); until then its accesses are not
 * checked (fuzz_stats.unchecked_stale counts them). INVLPG syncs one address only: the flag stays.
 *
 * Error codes: each call's result is checked against what its header documents; a result
 * outside that set is counted (fuzz_ops_stats()->undocumented) and, with SMMU_FUZZ_STRICT=1 in
 * the environment, printed and abort()ed on.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_ops.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shadowmmu/shadowmmu.h>

#define MAX_OPS 1024
#define MAX_WRITTEN 64
#define NSLOTS 4
#define NGAS 2
#define NVCPU 3
#define POOL_PAGES 64ull
static const smmu_gfn_t pool_gfn[NGAS] = { 64, 192 };

/* Slot placements: (base_gfn, npages). Aligned and misaligned, tiny and large, overlapping. */
struct layout {
	smmu_gfn_t base;
	uint64_t npages;
};
static const struct layout layouts[17] = {
	{ 0, 2048 },     { 2048, 512 },  { 4099, 100 },   { 8192, 1024 },  { 2560, 16 },    { 16384, 1 },
	{ 0, 1024 },     { 3072, 1024 }, { 512, 512 },    { 9216, 4096 },  { 4096, 3 },     { 13312, 2048 },
	{ 262144, 262144 }, { 20000, 7 }, { 6144, 2048 }, { 1536, 1536 },
	{ 262144, 512 }, /* LAYOUT_1G_SMALL */
};
#define LAYOUT_1G 12
#define LAYOUT_1G_SMALL 16
#define LAYOUT_1G_BYTE 0xfc

/* A new slot's layout. The 1 GiB one (for 1 GiB sptes) costs a walk of 262144 rmap heads per
 * flush and audit, a hundred small slots' worth: only byte LAYOUT_1G_BYTE (1 in 256) chooses it;
 * the other bytes that name it place 2 MiB at its base instead. */
static const struct layout *layout_of(uint8_t l)
{
	int i = l & 15;
	return &layouts[i == LAYOUT_1G && l != LAYOUT_1G_BYTE ? LAYOUT_1G_SMALL : i];
}

static const uint64_t gva_bases[8] = {
	0x0ull, 0x200000ull, 0x40000000ull, 0x7fffffe00000ull, 0x8000000000ull, 0xffff800000000000ull,
	0x1000ull, 0xc0000000ull,
};

static const enum smmu_flush_strategy strategies[4] = { SMMU_FLUSH_ZAP_ALL, SMMU_FLUSH_FAST_ZAP,
							 SMMU_FLUSH_HASH_WALK, SMMU_FLUSH_RMAP_REBUILD };

static struct fuzz_stats stats;
const struct fuzz_stats *fuzz_ops_stats(void) { return &stats; }

static const char *const op_names[KIND_COUNT] = {
	"slot_create", "slot_delete", "slot_move", "slot_flags", "gas_map", "gas_unmap", "guest_write",
	"guest_read", "fault", "access", "enter", "set_cr3", "translate", "vcpu_recreate", "zap_all",
	"fast_zap", "memslot_flush", "notifier", "max_pages", "dirty_log", "flush_strategy", "strategy_api",
	"load_cr3", "mmu_reload", "invlpg", "memslots_gen", "host_level", "host_wrote", "pfn_hook",
	"bump_forget",
};
const char *fuzz_op_name(int kind) { return kind >= 0 && kind < KIND_COUNT ? op_names[kind] : "?"; }

/* ---- input -------------------------------------------------------------------------------- */

struct in {
	const uint8_t *p;
	size_t n, i;
};
/* Every read is its own statement: the decoding must not depend on evaluation order. */
static uint8_t u8(struct in *in) { return in->i < in->n ? in->p[in->i++] : 0; }
static uint16_t u16(struct in *in)
{
	uint16_t lo = u8(in);
	uint16_t hi = u8(in);
	return (uint16_t)(lo | (hi << 8));
}
static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

/* ---- state and trace ------------------------------------------------------------------------ */

struct trace_entry {
	uint8_t op;
	int64_t a, b, c, d;
	int64_t ret;
};

struct fz {
	smmu_vm *vm;
	bool shadow;
	smmu_gas *gas[NGAS];
	smmu_vcpu *v[NVCPU];
	smmu_gpa_t cr3[NVCPU];      /* what each vCPU was last given */
	bool may_be_stale[NVCPU];   /* a guest table changed without a trap since its CR3 load */
	struct trace_entry trace[MAX_OPS];
	int n;
	int audit_every;            /* audit after every audit_every-th operation, and at the end */
	bool audit_exact;           /* ... exactly (SMMU_FUZZ_AUDIT_EVERY), not weighted by the slots */
	int since_audit;            /* operations since the last audit */
	enum smmu_flush_strategy strategy; /* the VM's, for slot deletes and moves */
	uint32_t break_every;       /* forced lock breaks (0: none) */
	unsigned race_nth;          /* a fault races each zap from its race_nth-th page (0: none) */
	unsigned races;
	uint64_t buckets;           /* mmu_page_hash buckets */
	uint64_t work;              /* estimated cost so far, against WORK_BUDGET */
	/* Writes the next get_dirty_log of their slot must report (see note_write). */
	struct {
		int slot;
		smmu_gfn_t gfn;
	} written[MAX_WRITTEN];
	int n_written;
	bool strict;
	_Atomic int pfn_hook_left;  /* invalidations the host's page-fault hook still makes */
};

/* The operations so far; with @current, the one in progress too (its result not yet known). */
static void dump_trace(const struct fz *f, bool current)
{
	fprintf(stderr, "fuzz_ops: %s mode, operations so far:\n", f->shadow ? "shadow" : "direct");
	for (int i = 0; i < f->n + (current ? 1 : 0) && i < MAX_OPS; i++) {
		const struct trace_entry *t = &f->trace[i];
		fprintf(stderr, "  %3d %-14s %#llx %#llx %#llx %#llx -> ", i, fuzz_op_name(t->op),
			(unsigned long long)t->a, (unsigned long long)t->b, (unsigned long long)t->c,
			(unsigned long long)t->d);
		if (i < f->n)
			fprintf(stderr, "%lld\n", (long long)t->ret);
		else
			fprintf(stderr, "(in progress)\n");
	}
}

static void die(const struct fz *f, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(const struct fz *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_ops: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	dump_trace(f, true);
	abort();
}

/* A result outside the documented set @ok (terminated by 1, which no call returns as an error). */
static void expect(struct fz *f, const char *call, long r, int nonneg_ok, ...)
{
	if (nonneg_ok ? r >= 0 : r == 0)
		return;
	va_list ap;
	va_start(ap, nonneg_ok);
	for (int e = va_arg(ap, int); e != 1; e = va_arg(ap, int)) {
		if (r == e) {
			va_end(ap);
			return;
		}
	}
	va_end(ap);
	stats.undocumented++;
	if (f->strict)
		die(f, "%s returned %ld, which its header does not document", call, r);
}
#define END 1

static void audit_or_die(struct fz *f, const char *when)
{
	struct smmu_violation v[16];
	struct smmu_audit_report r = { .v = v, .cap = 16 };
	long n = smmu_audit(f->vm, &r);
	stats.audits++;
	if (n == 0 || n == -ENOMEM)
		return;
	fprintf(stderr, "fuzz_ops: audit %s: %ld\n", when, n);
	if (n > 0)
		smmu_audit_print(stderr, &r);
	dump_trace(f, false);
	abort();
}

/* The audit reads every rmap head of every slot and every spte of every shadow page: with the
 * 1 GiB layout (262144 heads) or thousands of pages it costs a hundred operations. Its cost in
 * those units; the audit interval grows with it (1 up to 32768 units, 9 with the 1 GiB slot), so
 * that its cost per operation stays bounded, and it counts against the input's WORK_BUDGET. */
static uint64_t audit_cost(struct fz *f)
{
	uint64_t units = 0;
	for (int id = 0; id < NSLOTS; id++) {
		struct smmu_memslot_info info;
		if (smmu_memslot_get(f->vm, id, &info) == 0)
			units += info.npages;
	}
	struct smmu_vm_counters c;
	if (smmu_vm_get_counters(f->vm, &c) == 0)
		units += c.n_used_mmu_pages * 512;
	return units;
}

/*
 * A slot-wide operation walks every rmap head of the slot (and with HASH_WALK a hash bucket per
 * gfn); a forced break costs about eight heads. 1024 flushes of the 1 GiB slot with a break at
 * every head would take minutes and trip libFuzzer's timeout: an input stops once its estimated
 * work passes WORK_BUDGET (about 0.2 s of CPU under ASan), wherever that happens.
 */
#define WORK_BUDGET (1ull << 22)
static void charge_slot_walk(struct fz *f, int id, enum smmu_flush_strategy s)
{
	struct smmu_memslot_info info;
	if (smmu_memslot_get(f->vm, id, &info) != 0)
		return;
	uint64_t per_gfn = 1;
	struct smmu_vm_counters c;
	if (s == SMMU_FLUSH_HASH_WALK && smmu_vm_get_counters(f->vm, &c) == 0)
		per_gfn += c.n_used_mmu_pages / f->buckets;
	uint64_t breaks = f->break_every == 1 ? 8 : f->break_every == 3 ? 3 : 1;
	f->work += info.npages * per_gfn * breaks;
}

/* ---- argument decoding ---------------------------------------------------------------------- */

static smmu_gfn_t pick_gfn(struct in *in)
{
	uint8_t k = u8(in);
	uint16_t off = u16(in);
	switch (k & 3) {
	case 0: return pool_gfn[(k >> 2) & 1] + off % POOL_PAGES; /* a page-table frame */
	case 1: return layouts[(k >> 2) & 15].base + off % 2048;  /* inside (or near) a layout */
	case 2: return off % 4096;
	default: return (smmu_gfn_t)off << 9;                      /* 2 MiB aligned, far too */
	}
}

static uint64_t span_of(int level) { return 1ull << (12 + 9 * (level - 1)); }

static uint64_t pick_gva(struct in *in, int level)
{
	uint8_t k = u8(in);
	uint8_t idx = u8(in);
	uint64_t base = gva_bases[k & 7] & ~(span_of(level) - 1);
	return base + (uint64_t)(idx % 32) * span_of(level);
}

/* An address to fault or access: a guest virtual address in shadow mode, physical in direct. */
static uint64_t pick_addr(struct fz *f, struct in *in)
{
	if (f->shadow)
		return pick_gva(in, 1);
	return pick_gfn(in) << 12;
}

static int pick_slot(struct in *in) { return u8(in) % NSLOTS; }
static smmu_vcpu *pick_vcpu(struct fz *f, struct in *in, int *idx)
{
	*idx = u8(in) % NVCPU;
	return f->v[*idx];
}

/* ---- operations ------------------------------------------------------------------------------ */

/* Where the guest maps @addr for @vi, before an access: the gpa, or ~0 when its tables deny
 * @write (single-threaded: nothing changes between this walk and the access). */
static smmu_gpa_t guest_gpa(struct fz *f, int vi, uint64_t addr, bool write)
{
	if (!f->shadow)
		return addr;
	struct smmu_guest_walk w;
	if (smmu_guest_walk(f->vm, f->cr3[vi], addr, &w) != 0)
		return ~0ull;
	if (write && !(w.access & SMMU_ACC_WRITE))
		return ~0ull;
	return (w.gfn << 12) | (addr & 4095);
}

/* After a successful access: the guest's tables allowed it, and what the vCPU read or wrote is
 * what guest memory holds at the frame they mapped (a stale translation would differ). */
static void check_coherent(struct fz *f, int vi, uint64_t addr, smmu_gpa_t gpa, const void *seen, size_t len)
{
	if (gpa == ~0ull)
		die(f, "vCPU %d accessed 0x%llx, which its guest tables do not allow", vi, (unsigned long long)addr);
	uint8_t mem[8];
	if (smmu_guest_read(f->vm, gpa, mem, len) != 0)
		die(f, "vCPU %d accessed 0x%llx (gpa 0x%llx), which lies in no slot", vi, (unsigned long long)addr,
		    (unsigned long long)gpa);
	if (memcmp(mem, seen, len) != 0)
		die(f, "vCPU %d at 0x%llx saw other bytes than guest memory at gpa 0x%llx: stale translation", vi,
		    (unsigned long long)addr, (unsigned long long)gpa);
}

/*
 * A third oracle, dirty logging (KVM_GET_DIRTY_LOG): a successful write into a slot that logs
 * dirty pages, by a vCPU or by the host (kvm_write_guest), shows in the next dirty log of that
 * slot. A slot's pending writes are forgotten when the slot is deleted, moved, re-flagged or
 * created anew (the log starts over).
 */
static void note_write(struct fz *f, smmu_gpa_t gpa)
{
	for (int id = 0; id < NSLOTS && f->n_written < MAX_WRITTEN; id++) {
		struct smmu_memslot_info info;
		smmu_gfn_t gfn = gpa >> 12;
		if (smmu_memslot_get(f->vm, id, &info) == 0 && (info.flags & SMMU_MEM_LOG_DIRTY_PAGES) &&
		    gfn >= info.base_gfn && gfn - info.base_gfn < info.npages) {
			f->written[f->n_written].slot = id;
			f->written[f->n_written++].gfn = gfn;
		}
	}
}

static void forget_writes(struct fz *f, int id)
{
	int k = 0;
	for (int i = 0; i < f->n_written; i++)
		if (f->written[i].slot != id)
			f->written[k++] = f->written[i];
	f->n_written = k;
}

/* After get_dirty_log of slot @id returned @bm: every pending write there is in it. */
static void check_dirty_log(struct fz *f, int id, smmu_gfn_t base, const uint64_t *bm)
{
	for (int i = 0; i < f->n_written; i++) {
		uint64_t bit = f->written[i].gfn - base;
		if (f->written[i].slot == id && !(bm[bit / 64] >> (bit % 64) & 1))
			die(f, "gfn 0x%llx was written, but the dirty log of slot %d does not show it",
			    (unsigned long long)f->written[i].gfn, id);
	}
	forget_writes(f, id);
}

static void all_may_be_stale(struct fz *f)
{
	for (int i = 0; i < NVCPU; i++)
		f->may_be_stale[i] = true;
}

/* KVM_SET_SREGS (@mov false) or the guest's MOV CR3 (@mov true). Either flushes the vCPU's TLB
 * at once, and the roots it keeps (MOV CR3: the current one for the same CR3, a cached one
 * today) are synced at its next entry (KVM_REQ_MMU_SYNC, before any access), a root it builds is
 * synced as it is loaded: no stale translation survives, so the vCPU's flag clears. */
static int set_cr3_of(struct fz *f, int vi, smmu_gpa_t cr3, bool mov)
{
	int r = mov ? smmu_vcpu_load_cr3(f->v[vi], cr3) : smmu_vcpu_set_cr3(f->v[vi], cr3);
	if (r == 0) {
		f->cr3[vi] = cr3;
		f->may_be_stale[vi] = false; /* every root synced or rebuilt, the TLB flushed */
	}
	return r;
}

#define ANY_GFN (~0ull)
/* Whether a store to @gfn went into a guest table behind the MMU's back: @gfn is shadowed by an
 * unsync page (the only kind a vCPU store does not trap). ANY_GFN: any page is unsync. */
static bool unsync_table(struct fz *f, smmu_gfn_t gfn)
{
	uint64_t n_unsync = 0;
	if (!f->shadow || smmu_vm_get_mmu_unsync(f->vm, &n_unsync) != 0 || n_unsync == 0)
		return false;
	if (gfn == ANY_GFN)
		return true;
	for (int id = 0; id < NSLOTS; id++) {
		struct smmu_memslot_info si;
		if (smmu_memslot_get(f->vm, id, &si) != 0 || gfn < si.base_gfn || gfn - si.base_gfn >= si.npages)
			continue;
		unsigned filter = SMMU_SP_INDIRECT | SMMU_SP_OBSOLETE;
		long n = smmu_inspect_slot_pages(f->vm, id, filter, NULL, 0);
		struct smmu_sp_info *pages = n > 0 ? calloc((size_t)n, sizeof(*pages)) : NULL;
		bool found = false;
		if (pages && smmu_inspect_slot_pages(f->vm, id, filter, pages, (size_t)n) == n)
			for (long i = 0; i < n && !found; i++)
				found = pages[i].unsync && pages[i].gfn == gfn;
		free(pages);
		return found;
	}
	return false;
}

static int vcpu_new(struct fz *f, int vi)
{
	int r = smmu_vcpu_create(f->vm, &f->v[vi]);
	if (r) {
		f->v[vi] = NULL;
		return r;
	}
	return set_cr3_of(f, vi, f->shadow ? (pool_gfn[vi % NGAS] << 12) : 0, false);
}


/* The host's page fault, on the faulting thread (the racer's too): while invalidations are left,
 * it unmaps the 4 KiB page it is asked for, as a copy-on-write or a split would. */
static void pfn_hook(smmu_vm *vm, void *hva, bool write, void *ctx)
{
	(void)write;
	struct fz *f = ctx;
	int left = atomic_load(&f->pfn_hook_left);
	while (left > 0 && !atomic_compare_exchange_weak(&f->pfn_hook_left, &left, left - 1))
		;
	if (left <= 0)
		return;
	uint8_t *page = (uint8_t *)((uintptr_t)hva & ~(uintptr_t)4095);
	smmu_mmu_notifier_invalidate_range(vm, page, page + 4096);
}

/* Before a zap: with race_nth, vCPU 2 faults on another thread inside the zap's lock breaks. */
static bool race_arm(struct fz *f)
{
	if (!f->race_nth || !f->v[NVCPU - 1])
		return false;
	unsigned i = f->races++;
	uint64_t addr = f->shadow ? (i % 32) << 12 : (300 + i % 64) << 12;
	return fuzz_racer_arm(f->vm, f->v[NVCPU - 1], addr, SMMU_ACC_WRITE | SMMU_ACC_USER, f->race_nth) == 0;
}

/* After it: the fault's result joins the results hash. */
static void race_end(bool armed)
{
	if (!armed)
		return;
	long r = fuzz_racer_disarm();
	stats.racing_faults += r != 1;
	stats.result_hash = (stats.result_hash ^ (uint64_t)r) * 0x100000001b3ull;
}

static void run_op(struct fz *f, struct in *in, int op)
{
	struct trace_entry *t = &f->trace[f->n];
	*t = (struct trace_entry){ .op = (uint8_t)op };
	smmu_vm *vm = f->vm;
	long r = 0;
	struct smmu_zap_report rep;
	switch (op) {
	case OP_SLOT_CREATE: {
		int id = pick_slot(in);
		const struct layout *l = layout_of(u8(in));
		uint8_t fl = u8(in);
		uint32_t flags = (fl & 1 ? SMMU_MEM_LOG_DIRTY_PAGES : 0) | ((fl & 6) == 6 ? SMMU_MEM_READONLY : 0);
		t->a = id, t->b = (int64_t)l->base, t->c = (int64_t)l->npages, t->d = flags;
		f->work += l->npages;
		r = smmu_memslot_create(vm, id, l->base, l->npages, flags);
		forget_writes(f, id);
		expect(f, "smmu_memslot_create", r, 0, -EEXIST, -ENOMEM, END);
		break;
	}
	case OP_SLOT_DELETE:
		t->a = pick_slot(in);
		charge_slot_walk(f, (int)t->a, f->strategy);
		r = smmu_memslot_delete(vm, (int)t->a);
		forget_writes(f, (int)t->a);
		expect(f, "smmu_memslot_delete", r, 0, -ENOENT, END);
		break;
	case OP_SLOT_MOVE: {
		t->a = pick_slot(in);
		t->b = (int64_t)layouts[u8(in) & 15].base;
		charge_slot_walk(f, (int)t->a, f->strategy);
		r = smmu_memslot_move(vm, (int)t->a, (smmu_gfn_t)t->b);
		forget_writes(f, (int)t->a);
		expect(f, "smmu_memslot_move", r, 0, -ENOENT, -EEXIST, -ENOMEM, END);
		break;
	}
	case OP_SLOT_FLAGS: {
		t->a = pick_slot(in);
		uint8_t fl = u8(in);
		if (fl & 0x80) {
			/* The host's page size behind the slot (4K, 2M with THP splits, 1G). */
			t->op = K_HOST_LEVEL;
			t->b = 1 + ((fl >> 3) & 3) % 3;
			charge_slot_walk(f, (int)t->a, f->strategy);
			r = smmu_memslot_set_host_level(vm, (int)t->a, (int)t->b);
			expect(f, "smmu_memslot_set_host_level", r, 0, -ENOENT, -EBUSY, END);
			break;
		}
		t->b = (fl & 1 ? SMMU_MEM_LOG_DIRTY_PAGES : 0) | ((fl & 6) == 6 ? SMMU_MEM_READONLY : 0);
		charge_slot_walk(f, (int)t->a, f->strategy);
		r = smmu_memslot_set_flags(vm, (int)t->a, (uint32_t)t->b);
		forget_writes(f, (int)t->a);
		expect(f, "smmu_memslot_set_flags", r, 0, -ENOENT, -EINVAL, -ENOMEM, END);
		break;
	}
	case OP_GAS_MAP: {
		int g = u8(in) % NGAS;
		uint8_t lv = u8(in);
		int level = (lv & 7) == 7 ? 3 : (lv & 3) == 3 ? 2 : 1;
		uint64_t gva = pick_gva(in, level);
		smmu_gfn_t gfn = pick_gfn(in) & ~((span_of(level) >> 12) - 1);
		uint32_t prot = u8(in) & 7;
		t->a = g, t->b = (int64_t)gva, t->c = (int64_t)gfn, t->d = level | (prot << 4);
		if (!f->gas[g])
			break;
		r = smmu_gas_map(f->gas[g], gva, gfn, level, prot);
		expect(f, "smmu_gas_map", r, 0, -EINVAL, -EEXIST, -ENOSPC, -EFAULT, -EROFS, END);
		break;
	}
	case OP_GAS_UNMAP: {
		int g = u8(in) % NGAS;
		int level = 1 + u8(in) % 3;
		uint64_t gva = pick_gva(in, level);
		t->a = g, t->b = (int64_t)gva;
		if (!f->gas[g])
			break;
		r = smmu_gas_unmap(f->gas[g], gva);
		expect(f, "smmu_gas_unmap", r, 0, -EINVAL, -ENOENT, -EFAULT, -EROFS, END);
		break;
	}
	case OP_GUEST_WRITE: {
		static const size_t lens[8] = { 8, 8, 8, 4, 1, 2, 3, 16 };
		smmu_gfn_t gfn = pick_gfn(in);
		uint16_t off = u16(in);
		size_t len = lens[u8(in) & 7];
		uint8_t buf[16];
		uint64_t v0 = u64(in);
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(v0 >> (8 * (i & 7)));
		/* Mostly whole, aligned entries; sometimes anywhere in the page. */
		smmu_gpa_t gpa = (gfn << 12) + ((off & 0x8000) ? (off & 4095) : (off & 511) * 8);
		t->a = (int64_t)gpa, t->b = (int64_t)len, t->c = (int64_t)v0;
		/* KVM takes a 4-byte trapped store for one of its whole 8-byte gpte (a PAE guest's
		 * half-gpte store: mmu_pte_write_fetch_gpte, 3.11 and today), so one that straddles two
		 * gptes updates the first's spte only: the second's stays as it was, in KVM too, and
		 * the audit's translation invariant would flag KVM's own behaviour (test_flood's
		 * test_straddling_store_leaves_stale_spte). Such a store is made as the guest's two
		 * stores on either side of the boundary. */
		size_t first = len == 4 && (gpa & 7) > 4 ? 8 - (gpa & 7) : len;
		r = smmu_guest_write(vm, gpa, buf, first);
		if (r == 0 && first < len)
			r = smmu_guest_write(vm, gpa + first, buf + first, len - first);
		expect(f, "smmu_guest_write", r, 0, -EFAULT, -EROFS, END);
		if (r == 0) {
			note_write(f, gpa);
			if ((gpa + len - 1) >> 12 != gpa >> 12)
				note_write(f, gpa + len - 1);
		}
		break;
	}
	case OP_GUEST_READ: {
		smmu_gfn_t gfn = pick_gfn(in);
		uint16_t off = u16(in);
		smmu_gpa_t gpa = (gfn << 12) + (off & 4095);
		uint8_t buf[16];
		t->a = (int64_t)gpa;
		if (off & 0x8000) {
			/* The host stores through its own pointer what the page holds already (so the
			 * guest sees no change KVM missed), to the page's end at most: its page tables map
			 * the page writable, which pte prefetch's atomic lookups can then use. */
			t->op = K_HOST_WROTE;
			uint8_t *hva = smmu_gfn_to_hva(vm, gfn);
			if (!hva)
				break;
			size_t len = 4096 - (off & 4095) < 16 ? 4096 - (off & 4095) : 16;
			uint8_t *p = hva + (off & 4095);
			for (size_t i = 0; i < len; i++)
				__atomic_store_n(&p[i], __atomic_load_n(&p[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
			r = smmu_host_wrote(vm, p, p + len);
			expect(f, "smmu_host_wrote", r, 0, END);
			break;
		}
		r = smmu_guest_read(vm, gpa, buf, sizeof(buf));
		expect(f, "smmu_guest_read", r, 0, -EFAULT, END);
		break;
	}
	case OP_FAULT: {
		int vi;
		smmu_vcpu *v = pick_vcpu(f, in, &vi);
		uint64_t addr = pick_addr(f, in);
		addr |= u8(in) & 0xf8;
		uint8_t acc = u8(in);
		uint32_t access = (acc & 1 ? SMMU_ACC_WRITE : 0) | (acc & 2 ? SMMU_ACC_USER : 0) |
				  ((acc & 12) == 12 ? SMMU_ACC_EXEC : 0);
		t->a = vi, t->b = (int64_t)addr, t->c = access;
		if (!v)
			break;
		struct smmu_fault_info fi;
		r = smmu_vcpu_fault(v, addr, access, &fi);
		expect(f, "smmu_vcpu_fault", r, 1, -EFAULT, -ENOMEM, END);
		if (r >= 0 && r != (long)fi.outcome)
			die(f, "smmu_vcpu_fault returned %ld but info.outcome is %d", r, (int)fi.outcome);
		break;
	}
	case OP_ACCESS: {
		int vi;
		smmu_vcpu *v = pick_vcpu(f, in, &vi);
		uint8_t k = u8(in);
		size_t len = (size_t)1 << (k & 3);
		uint64_t addr = pick_addr(f, in);
		addr += (u16(in) & 4095) & ~(len - 1);
		uint64_t val = u64(in), seen = 0;
		bool write = k & 4;
		t->a = vi, t->b = (int64_t)addr, t->c = (int64_t)(len | (write ? 0x100 : 0)), t->d = (int64_t)val;
		if (!v)
			break;
		smmu_gpa_t gpa = guest_gpa(f, vi, addr, write);
		r = write ? smmu_vcpu_write(v, addr, &val, len) : smmu_vcpu_read(v, addr, &seen, len);
		expect(f, write ? "smmu_vcpu_write" : "smmu_vcpu_read", r, 0, -EFAULT, -EAGAIN, -ENOMEM, END);
		if (r != 0)
			break;
		if (f->may_be_stale[vi]) {
			/* Where a stale translation took the access is not known: nothing to check, and a
			 * store may have gone into another table (or into a logging slot unrecorded). */
			stats.unchecked_stale++;
			if (write && unsync_table(f, ANY_GFN))
				all_may_be_stale(f);
			break;
		}
		check_coherent(f, vi, addr, gpa, write ? (const void *)&val : (const void *)&seen, len);
		if (!write)
			break;
		note_write(f, gpa);
		if (unsync_table(f, gpa >> 12))
			all_may_be_stale(f);
		break;
	}
	case OP_ENTER: {
		uint8_t vb = u8(in); /* pick_vcpu's byte: its high bit chooses the kind */
		int vi = vb % NVCPU;
		smmu_vcpu *v = f->v[vi];
		t->a = vi;
		if (vb & 0x80) {
			t->op = K_MMU_RELOAD;
			if (v) {
				r = smmu_vcpu_mmu_reload(v);
				expect(f, "smmu_vcpu_mmu_reload", r, 0, -ENOMEM, END);
			}
			break;
		}
		if (v) {
			r = smmu_vcpu_enter(v);
			expect(f, "smmu_vcpu_enter", r, 0, END);
		}
		break;
	}
	case OP_SET_CR3: {
		int vi;
		smmu_vcpu *v = pick_vcpu(f, in, &vi);
		uint8_t k = u8(in);
		smmu_gfn_t gfn = (k & 1) ? pick_gfn(in) : pool_gfn[(k >> 1) & 1];
		bool mov = k & 4; /* the guest's MOV CR3, not KVM_SET_SREGS */
		t->op = mov ? K_LOAD_CR3 : OP_SET_CR3;
		t->a = vi, t->b = (int64_t)(gfn << 12);
		if (v) {
			r = set_cr3_of(f, vi, gfn << 12, mov);
			expect(f, mov ? "smmu_vcpu_load_cr3" : "smmu_vcpu_set_cr3", r, 0, END);
		}
		break;
	}
	case OP_TRANSLATE: {
		int vi;
		smmu_vcpu *v = pick_vcpu(f, in, &vi);
		uint64_t addr = pick_addr(f, in);
		uint8_t acc = u8(in);
		uint32_t access = acc & (SMMU_ACC_WRITE | SMMU_ACC_USER);
		t->a = vi, t->b = (int64_t)addr, t->c = access;
		if (acc & 0x80) {
			/* INVLPG syncs this one address (its spte in unsync pages, every root): other
			 * stale translations of the vCPU stay, so its flag does not clear. */
			t->op = K_INVLPG;
			if (v) {
				r = smmu_vcpu_invlpg(v, addr);
				expect(f, "smmu_vcpu_invlpg", r, 0, -ENOMEM, END);
			}
			break;
		}
		if (v) {
			struct smmu_translation tr;
			r = smmu_vcpu_translate(v, addr, access, &tr);
			expect(f, "smmu_vcpu_translate", r, 0, -EFAULT, -EACCES, END);
		}
		break;
	}
	case OP_VCPU_RECREATE: {
		int vi = u8(in) % NVCPU;
		t->a = vi;
		smmu_vcpu_destroy(f->v[vi]);
		f->v[vi] = NULL;
		r = vcpu_new(f, vi);
		expect(f, "smmu_vcpu_create", r, 0, -ENOMEM, END);
		break;
	}
	case OP_ZAP_ALL: {
		uint8_t k = u8(in);
		enum smmu_zap_mode mode = (enum smmu_zap_mode)(k % 3);
		t->a = mode, t->b = k >> 2;
		bool raced = race_arm(f);
		r = smmu_zap_all(vm, mode, (uint64_t)(k >> 2), &rep);
		race_end(raced);
		expect(f, "smmu_zap_all", r, 0, -EAGAIN, END);
		if (r == 0 && !rep.completed)
			die(f, "smmu_zap_all returned 0 with report.completed = false");
		break;
	}
	case OP_FAST_ZAP: {
		uint8_t k = u8(in) % 3;
		t->a = k;
		bool raced = race_arm(f);
		r = k == 0 ? smmu_fast_zap(vm, &rep) : k == 1 ? smmu_fast_zap_bump(vm, &rep) : smmu_fast_zap_drain(vm, &rep);
		race_end(raced);
		/* A bump alone is refused under the today profile while obsolete pages wait. */
		expect(f, "smmu_fast_zap", r, 0, k == 1 ? -EBUSY : 0, END);
		break;
	}
	case OP_MEMSLOT_FLUSH: {
		t->a = pick_slot(in);
		t->b = strategies[u8(in) & 3];
		charge_slot_walk(f, (int)t->a, (enum smmu_flush_strategy)t->b);
		bool raced = race_arm(f);
		r = smmu_memslot_flush(vm, (int)t->a, (enum smmu_flush_strategy)t->b, &rep);
		race_end(raced);
		expect(f, "smmu_memslot_flush", r, 0, -ENOENT, END);
		break;
	}
	case OP_NOTIFIER: {
		int id = pick_slot(in);
		uint16_t off = u16(in);
		uint16_t len = u16(in);
		t->a = id, t->b = off, t->c = len;
		if (len == 0xfffd) {
			/* The host's page fault (hva_to_pfn) of the next 1-4 faults on slot pages unmaps
			 * the page it maps (a copy-on-write, a THP split): the fault retries. */
			t->op = K_PFN_HOOK;
			atomic_store(&f->pfn_hook_left, 1 + (off & 3));
			r = smmu_set_hva_to_pfn_hook(vm, pfn_hook, f);
			expect(f, "smmu_set_hva_to_pfn_hook", r, 0, END);
			break;
		}
		if (len == 0xffff) {
			r = smmu_mmu_notifier_release(vm);
			expect(f, "smmu_mmu_notifier_release", r, 0, END);
			break;
		}
		struct smmu_memslot_info info;
		if (smmu_memslot_get(vm, id, &info) != 0)
			break;
		/* Byte granular, may start before or run past the slot's backing. */
		const uint8_t *s = (const uint8_t *)info.hva + (int64_t)off * 64 - 4096;
		r = smmu_mmu_notifier_invalidate_range(vm, s, s + (uint64_t)len * 16);
		expect(f, "smmu_mmu_notifier_invalidate_range", r, 1, END);
		break;
	}
	case OP_MAX_PAGES: {
		static const uint64_t limits[8] = { 1, 4, 5, 16, 64, 200, 1000, 100000 };
		uint8_t k = u8(in);
		if (k & 0x80) {
			/* The memslots' starting generation (a VM without shadow pages only: -EBUSY after
			 * its first fault): near each era's MMIO-generation wrap (3.11: the MMIO generation
			 * is the memslots' + 2^19 - 151 and wraps at 2^19 - 2; today: at every multiple of
			 * 2^19), so that a few slot updates reach it; an odd one (today: the SMM space's,
			 * -EINVAL) and one with the update-in-progress bit (-EINVAL). */
			static const uint64_t gens[8] = { 0, 146, 149, (1ull << 19) - 4, (1ull << 19) - 2,
							  (2ull << 19) + 146, (3ull << 19) - 2, 1ull << 63 };
			t->op = K_MEMSLOTS_GEN;
			t->a = (int64_t)gens[(k >> 3) & 7];
			r = smmu_vm_set_memslots_generation(vm, (uint64_t)t->a);
			expect(f, "smmu_vm_set_memslots_generation", r, 0, -EINVAL, -EBUSY, END);
			break;
		}
		t->a = (int64_t)limits[k & 7];
		r = smmu_vm_set_max_mmu_pages(vm, (uint64_t)t->a);
		expect(f, "smmu_vm_set_max_mmu_pages", r, 0, END);
		break;
	}
	case OP_DIRTY_LOG: {
		int id = pick_slot(in);
		t->a = id;
		struct smmu_memslot_info info;
		if (smmu_memslot_get(vm, id, &info) != 0)
			break;
		f->work += info.npages;
		size_t words = (info.npages + 63) / 64;
		uint64_t *bm = calloc(words, sizeof(uint64_t));
		if (!bm)
			break;
		int64_t d = smmu_memslot_get_dirty_log(vm, id, bm, words);
		r = (long)d;
		expect(f, "smmu_memslot_get_dirty_log", r, 1, -ENODATA, END);
		if (d >= 0)
			check_dirty_log(f, id, info.base_gfn, bm);
		free(bm);
		break;
	}
	case OP_FLUSH_STRATEGY:
		t->a = strategies[u8(in) & 3];
		r = smmu_vm_set_flush_strategy(vm, (enum smmu_flush_strategy)t->a);
		expect(f, "smmu_vm_set_flush_strategy", r, 0, END);
		if (r == 0)
			f->strategy = (enum smmu_flush_strategy)t->a;
		break;
	case OP_STRATEGY_API: {
		uint8_t k = u8(in);
		uint16_t arg = u16(in);
		t->a = k & 7, t->b = arg;
		struct smmu_invalid_list list;
		smmu_invalid_list_init(&list);
		smmu_mmu_lock(vm, SMMU_SITE_USER0);
		switch (k & 7) {
		case 0: /* reclaim the oldest page by hand */
			smmu_zap_oldest(vm, &list);
			break;
		case 1: { /* zap the arg-th page from the head, whatever it is (a root in use too) */
			smmu_sp *sp = smmu_active_first(vm);
			for (unsigned i = 0; sp && i < (arg & 63); i++)
				sp = smmu_active_next(vm, sp);
			if (sp)
				smmu_zap_page(vm, sp, &list);
			break;
		}
		case 2: { /* zap every valid indirect page in one hash bucket whose gfn matches */
			smmu_gfn_t gfn = pool_gfn[arg & 1] + ((arg >> 1) % POOL_PAGES);
			for (smmu_sp *sp = smmu_hash_first(vm, gfn), *next; sp; sp = next) {
				next = smmu_hash_next(vm, sp);
				struct smmu_sp_info si;
				smmu_sp_get_info(vm, sp, &si);
				if (si.gfn == gfn && !si.direct && !si.invalid && !si.obsolete && smmu_zap_page(vm, sp, &list))
					next = smmu_hash_first(vm, gfn); /* the walk restarts after a zap */
			}
			break;
		}
		case 3: { /* unmap one rmap head of slot 0..3, then flush as the caller must */
			smmu_gfn_t base;
			uint64_t npages;
			int id = arg & 3;
			if (smmu_slot_range(vm, id, &base, &npages) == 0) {
				int level = 1 + ((arg >> 2) % 3);
				smmu_rmap_unmap(vm, id, base + (arg >> 4) % npages, level);
				smmu_flush_remote_tlbs(vm);
			}
			break;
		}
		case 4: /* a fast zap's bump by hand: generation, then reloads, in one hold */
			smmu_bump_gen(vm);
			if (k & 0x80) { /* with RMAP_REBUILD's lpage_info re-init between */
				t->op = K_BUMP_FORGET;
				smmu_lpage_forget_obsolete(vm);
			}
			smmu_reload_remote_mmus(vm);
			break;
		case 5: { /* read lpage_info (no change) */
			int32_t d;
			smmu_lpage_disallow(vm, arg & 3, arg >> 2, 2, &d);
			break;
		}
		default: { /* drain obsolete pages from the tail by hand, as kvm_zap_obsolete_pages */
			smmu_sp *sp = smmu_active_last(vm);
			while (sp) {
				struct smmu_sp_info si;
				smmu_sp_get_info(vm, sp, &si);
				if (!si.obsolete)
					break;
				smmu_sp *prev = smmu_active_prev(vm, sp);
				if (!si.invalid && smmu_zap_page(vm, sp, &list)) {
					sp = smmu_active_last(vm); /* restart: the walk's neighbours may be gone */
					continue;
				}
				sp = prev;
			}
			break;
		}
		}
		smmu_commit_zap(vm, &list);
		smmu_mmu_unlock(vm);
		break;
	}
	}
	t->ret = r;
}

/* The vCPUs and address spaces of an input (the VM may outlive them: see the pool). */
static void fz_release(struct fz *f)
{
	smmu_set_hva_to_pfn_hook(f->vm, NULL, NULL); /* the pool's VM goes back without it */
	for (int i = 0; i < NVCPU; i++)
		smmu_vcpu_destroy(f->v[i]);
	for (int i = 0; i < NGAS; i++)
		smmu_gas_destroy(f->gas[i]);
}

/* The libFuzzer build's closing line (fuzz_replay prints its own): how much MMU work the run
 * did, which libFuzzer's exec count alone does not say. */
static double seconds(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static double t_start;
static void print_totals(void)
{
	double wall = seconds(CLOCK_MONOTONIC) - t_start, cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
	fprintf(stderr, "fuzz: %llu operations in %llu execs, %llu audits, %llu lock breaks, %llu racing faults, "
		"%llu accesses unchecked (stale allowed), %llu MMIO-generation wraps, "
		"%.1f s (%.1f s of CPU): %.0f operations/s, %.0f per CPU second; results hash %016llx\n",
		(unsigned long long)stats.ops, (unsigned long long)stats.inputs, (unsigned long long)stats.audits,
		(unsigned long long)stats.lock_breaks, (unsigned long long)stats.racing_faults,
		(unsigned long long)stats.unchecked_stale, (unsigned long long)stats.wrap_zaps, wall, cpu,
		wall > 0 ? (double)stats.ops / wall : 0.0,
		cpu > 0 ? (double)stats.ops / cpu : 0.0, (unsigned long long)stats.result_hash);
}

/*
 * With the pool, objects outlive their input (pooled VMs, their header caches), and libFuzzer,
 * which reruns an input under LeakSanitizer whenever it malloc()s more than it free()s, reran
 * one input in six to find nothing. So the pool turns that per-input check off (unless
 * -detect_leaks is given): LeakSanitizer still checks the whole heap at exit, where anything
 * unreachable (the pool reaches every VM) is a leak. SMMU_FUZZ_POOL=0 runs without the pool,
 * with libFuzzer's per-input check, to find which input leaks.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	t_start = seconds(CLOCK_MONOTONIC);
	atexit(print_totals);
	const char *e = getenv("SMMU_FUZZ_POOL");
	bool pool = !(e && strcmp(e, "0") == 0);
	fuzz_pool_enable(pool);
	for (int i = 1; i < *argc; i++)
		if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0)
			return 0;
	if (!pool)
		return 0;
	static char flag[] = "-detect_leaks=0";
	char **args = calloc((size_t)*argc + 2, sizeof(char *)); /* lives as long as the process */
	if (!args)
		return 0;
	memcpy(args, *argv, (size_t)*argc * sizeof(char *));
	args[(*argc)++] = flag;
	*argv = args;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool env_read, strict;
	static int audit_every_env = -1;
	if (!env_read) {
		const char *e = getenv("SMMU_FUZZ_STRICT");
		strict = e && strcmp(e, "1") == 0;
		e = getenv("SMMU_FUZZ_AUDIT_EVERY");
		if (e && *e)
			audit_every_env = atoi(e);
		env_read = true;
	}
	struct in in = { .p = data, .n = size, .i = 0 };
	static struct fz f; /* large trace: not on the stack */
	memset(&f, 0, sizeof(f));
	f.strict = strict;
	stats.inputs++;

	uint8_t c = u8(&in);
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = (c & 1) ? SMMU_MODE_DIRECT : SMMU_MODE_SHADOW;
	cfg.profile = (c & 2) ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11;
	cfg.flush_strategy = strategies[(c >> 2) & 3];
	cfg.zap_batch = (c & 0x10) ? 1 : 10;
	static const uint64_t budgets[4] = { 0, 16, 64, 300 };
	cfg.max_mmu_pages = budgets[(c >> 6) & 3];
	cfg.hash_buckets = (c & 0x20) ? 16 : 1024; /* a small hash: long buckets, shared by many gfns */
	/* Half the batch-1 inputs drain leaf first and commit per batch (no bit left: the budget's
	 * low bit chooses). */
	cfg.zap_leaf_first = cfg.zap_commit_per_batch = (c & 0x10) && (c & 0x40);
	f.shadow = cfg.mode == SMMU_MODE_SHADOW;
	/* Byte 1, how the harness runs: forced lock breaks (the test hook: every k-th needbreak check
	 * says "break", so the restart paths run without a second thread) and the audit interval. */
	uint8_t h = u8(&in);
	static const uint32_t break_every[4] = { 0, 1, 3, 16 };
	static const int audit_every[4] = { 1, 4, 16, 64 };
	f.audit_exact = audit_every_env >= 1;
	f.audit_every = f.audit_exact ? audit_every_env : audit_every[(h >> 2) & 3];

	f.strategy = cfg.flush_strategy;
	f.buckets = cfg.hash_buckets;
	f.break_every = break_every[h & 3];
	f.race_nth = (h & 0x10) ? 1 + (h >> 5) : 0;
	f.vm = fuzz_pool_get(c, &cfg);
	if (!f.vm)
		return 0;
	fuzz_set_forced_breaks(f.vm, f.break_every);
	uint64_t breaks0 = fuzz_lock_breaks(f.vm);
	/* Slot 0 holds both page-table pools; every input starts from it. */
	if (smmu_memslot_create(f.vm, 0, layouts[0].base, layouts[0].npages, 0) != 0) {
		fuzz_pool_put(c, f.vm);
		return 0;
	}
	if (f.shadow)
		for (int g = 0; g < NGAS; g++)
			if (smmu_gas_create(f.vm, pool_gfn[g], POOL_PAGES, &f.gas[g]) != 0)
				f.gas[g] = NULL;
	for (int i = 0; i < NVCPU; i++)
		vcpu_new(&f, i);
	if (f.audit_every == 1) /* the same for every input: sparse audits skip it */
		audit_or_die(&f, "after setup");

	while (in.i < in.n && f.n < MAX_OPS && f.work < WORK_BUDGET) {
		int op = u8(&in) % OP_COUNT;
		run_op(&f, &in, op);
		stats.result_hash = (stats.result_hash ^ (uint64_t)f.trace[f.n].ret ^ ((uint64_t)op << 56)) * 0x100000001b3ull;
		stats.ops++;
		stats.per_op[f.trace[f.n].op]++; /* its kind */
		f.n++;
		if (++f.since_audit < f.audit_every)
			continue;
		uint64_t cost = audit_cost(&f);
		if (f.audit_exact || f.since_audit >= f.audit_every * (int)(1 + cost / 32768)) {
			char when[48];
			snprintf(when, sizeof(when), "after operation %d (%s)", f.n - 1, fuzz_op_name(f.trace[f.n - 1].op));
			audit_or_die(&f, when);
			f.since_audit = 0;
			if (!f.audit_exact) /* a replay with exact audits runs at least as far */
				f.work += cost / 16;
		}
	}
	if (f.since_audit)
		audit_or_die(&f, "after the last operation");
	/* Every vCPU processes its requests; the audit still holds. */
	for (int i = 0; i < NVCPU; i++)
		if (f.v[i])
			smmu_vcpu_enter(f.v[i]);
	audit_or_die(&f, "after every vCPU entered");
	stats.lock_breaks += fuzz_lock_breaks(f.vm) - breaks0;
	struct smmu_mmio_counters mc;
	if (smmu_vm_get_mmio_counters(f.vm, &mc) == 0) /* a fresh or pooled VM starts at 0 */
		stats.wrap_zaps += mc.wrap_zaps;
	fz_release(&f);
	fuzz_pool_put(c, f.vm);
	return 0;
}
