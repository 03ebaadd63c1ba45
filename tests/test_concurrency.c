/*
 * Concurrency: vCPU threads faulting and accessing memory while other threads zap, flush, change
 * guest page tables and memslots; the lock hand-off under real contention; the 2019
 * forward-progress contrast (zap_all RESTART livelocks, GENERATION and fast zap terminate); and
 * a root zapped while a vCPU still uses it.
 *
 * Threads never call cmocka: they record failures (stress_fail) and the main thread asserts after
 * joining them. Every loop is bounded twice: by wall time and by an iteration cap, so the file
 * stays well under a minute on 2 cores, also under ThreadSanitizer. No assertion depends on time.
 * Audits run only at quiescent points: every worker stopped at a barrier, every vCPU's requests
 * processed (smmu_vcpu_enter), since invariants 7, 8 and 10 assume no vCPU runs meanwhile.
 *
 * Two tests are regression tests for library bugs they found (see each).
 * SMMU_TEST_FILTER=<glob> runs only the matching tests.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmu.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000L };
	nanosleep(&ts, NULL);
}

/* xorshift64*: one state per thread. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd_below(uint64_t *s, uint32_t n) { return (uint32_t)(rnd(s) % n); }

/* A failure seen by a worker thread: counted, the first one kept for the report. */
static atomic_uint stress_failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_failure[256];

static void stress_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void stress_fail(const char *fmt, ...)
{
	if (atomic_fetch_add(&stress_failures, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		pthread_mutex_lock(&fail_lock);
		vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
		pthread_mutex_unlock(&fail_lock);
		va_end(ap);
	}
}

static void reset_failures(void)
{
	atomic_store(&stress_failures, 0);
	first_failure[0] = 0;
}

static void assert_no_worker_failure(void)
{
	unsigned n = atomic_load(&stress_failures);
	if (n) {
		pthread_mutex_lock(&fail_lock);
		printf("%u failure(s) in worker threads; first: %s\n", n, first_failure);
		pthread_mutex_unlock(&fail_lock);
	}
	assert_int_equal(n, 0);
}

/* Audit at a quiescent point: every vCPU processes its requests first. Returns violations. */
static long quiescent_audit(smmu_vm *vm, smmu_vcpu **vcpus, int n, const char *where)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(smmu_vcpu_enter(vcpus[i]), 0);
	struct smmu_violation v[16];
	struct smmu_audit_report r = { .v = v, .cap = 16 };
	long total = smmu_audit(vm, &r);
	if (total != 0) {
		printf("audit at %s: %ld violations\n", where, total);
		smmu_audit_print(stdout, &r);
	}
	return total;
}

static bool fault_ok(int r) { return r == SMMU_FAULT_MAPPED || r == SMMU_FAULT_RETRY; }

/* ======================================================================================== */
/* 1. The stress: vCPUs, a zapper, a guest page-table writer and a memslot changer           */
/* ======================================================================================== */

#define S_NVCPU 3
#define S_ROUNDS 6
#define S_ROUND_NS (250ull * 1000 * 1000) /* a round lasts this long ... */
#define S_ROUND_MAX_NS (1000ull * 1000 * 1000) /* ... or until the zapper ran every strategy once */
/* Iteration caps per round: a safety net; the round's wall time normally ends it first. */
#define S_VCPU_CAP 1000000u
#define S_ZAP_CAP 20000u
#define S_WRITER_CAP 1000000u
#define S_SLOT_CAP 5000u

#define S_SLOT0_PAGES 4608ull
#define S_POOL_BASE 64ull      /* pools: 64 frames per address space */
#define S_POOL_PAGES 64ull
#define S_DATA_BASE 512ull     /* data: 1024 frames per thread; 512-aligned */
#define S_DATA_PER 1024ull
#define S_NADDR 128            /* 4K data pages per vCPU: 8 guest L1 tables of 16 */
#define S_SLOT2_ID 2
#define S_SLOT2_A 0x40000ull   /* slot 2 lives at A or B (1 GiB aligned), or nowhere */
#define S_SLOT2_B 0x80000ull
#define S_SLOT2_PAGES 1024ull
#define MIB2 (2ull << 20)

/* vCPU i's addresses: its own PML4 entry. */
static uint64_t s_va_base(int i) { return (uint64_t)(i + 1) << 39; }
static uint64_t s_va_data(int i, int k) { return s_va_base(i) + (uint64_t)(k / 16) * MIB2 + (uint64_t)(k % 16) * SMMU_PAGE_SIZE; }
static uint64_t s_va_large(int i) { return s_va_base(i) + 64 * MIB2; }
static uint64_t s_va_slot2(int i, int which, int j) { return s_va_base(i) + (uint64_t)(128 + which) * MIB2 + (uint64_t)j * SMMU_PAGE_SIZE; }
static uint64_t s_gfn_data(int i) { return S_DATA_BASE + (uint64_t)i * S_DATA_PER; }

enum { ZS_HOLD, ZS_GENERATION, ZS_RESTART, ZS_FAST, ZS_FLUSH_ZAP_ALL, ZS_FLUSH_FAST, ZS_FLUSH_HASH,
       ZS_FLUSH_REBUILD, ZS_FLUSH_SLOT2, ZS_NOTIFIER, ZS_BUMP_DRAIN, ZS_COUNT };
static const char *const zs_names[ZS_COUNT] = {
	"zap_all(hold)", "zap_all(generation)", "zap_all(restart,64)", "fast_zap",
	"flush(slot0,zap_all)", "flush(slot0,fast_zap)", "flush(slot0,hash_walk)",
	"flush(slot0,rmap_rebuild)", "flush(slot2,hash_walk)", "notifier_invalidate_range",
	"fast_zap_bump+drain",
};

struct s_counts {
	uint64_t faults[4], fault_slot2[4], fault_err;
	uint64_t reads, writes, access_again, access_efault, verified;
	uint64_t enters, translates;
	uint64_t zaps[ZS_COUNT], zap_again, notifier_dropped;
	uint64_t maps, unmaps, raw_writes, cr3_loads;
	uint64_t slot_creates, slot_deletes, slot_moves, slot_flags, dirty_logs, max_pages, strategy;
};

struct stress;
struct s_worker {
	struct stress *s;
	pthread_t tid;
	int idx;
	uint64_t rng;
	smmu_vcpu *vcpu;
	smmu_gas *gas;
	uint64_t serial;
	struct s_counts c; /* own thread's; read by main after a barrier */
};

struct stress {
	smmu_vm *vm;
	pthread_barrier_t start, end;
	atomic_int stop, exit;
	atomic_int done; /* workers that hit their iteration cap this round */
	atomic_int zap_cycles; /* times the zapper went through every strategy, this round */
	struct s_worker vcpu[S_NVCPU], zapper, writer, slots;
	smmu_vcpu *all_vcpus[S_NVCPU + 1];
	int n_all_vcpus;
};

static bool s_running(struct s_worker *w, uint32_t it, uint32_t cap)
{
	if (atomic_load_explicit(&w->s->stop, memory_order_relaxed))
		return false;
	if (it >= cap) {
		atomic_fetch_add(&w->s->done, 1);
		return false;
	}
	return true;
}

/* --- vCPU threads: faults, verified reads and writes, occasional slot-2 faults --- */
static void s_vcpu_round(struct s_worker *w)
{
	smmu_vcpu *v = w->vcpu;
	for (uint32_t it = 0; s_running(w, it, S_VCPU_CAP); it++) {
		/* The guest runs a while without exits now and then, so the other threads get
		 * mmu_lock without a vCPU queued every time. */
		if ((it & 31) == 31)
			sleep_us(20);
		uint32_t op = rnd_below(&w->rng, 100);
		if (op < 40) { /* write then read back a value only this vCPU writes */
			uint64_t addr = (op & 1) ? s_va_data(w->idx, (int)rnd_below(&w->rng, S_NADDR))
						 : s_va_large(w->idx) + (uint64_t)rnd_below(&w->rng, 512) * SMMU_PAGE_SIZE;
			addr += 8 * rnd_below(&w->rng, 8);
			uint64_t val = ((uint64_t)w->idx << 56) | ++w->serial, back = 0;
			int r = smmu_vcpu_write(v, addr, &val, sizeof(val));
			if (r == -EAGAIN) {
				w->c.access_again++;
				continue;
			}
			if (r) {
				stress_fail("vcpu %d: write 0x%llx: %d", w->idx, (unsigned long long)addr, r);
				continue;
			}
			w->c.writes++;
			r = smmu_vcpu_read(v, addr, &back, sizeof(back));
			if (r == -EAGAIN) {
				w->c.access_again++;
				continue;
			}
			if (r) {
				stress_fail("vcpu %d: read 0x%llx: %d", w->idx, (unsigned long long)addr, r);
				continue;
			}
			w->c.reads++;
			if (back != val)
				stress_fail("vcpu %d: read 0x%llx gave 0x%llx, wrote 0x%llx", w->idx,
					    (unsigned long long)addr, (unsigned long long)back, (unsigned long long)val);
			else
				w->c.verified++;
		} else if (op < 85) { /* a fault on one of its own mapped addresses */
			uint64_t addr = s_va_data(w->idx, (int)rnd_below(&w->rng, S_NADDR));
			uint32_t acc = (op & 1 ? SMMU_ACC_WRITE : 0) | (op & 2 ? SMMU_ACC_USER : 0);
			int r = smmu_vcpu_fault(v, addr, acc, NULL);
			if (r >= 0 && r < 4)
				w->c.faults[r]++;
			if (!fault_ok(r)) {
				w->c.fault_err++;
				stress_fail("vcpu %d: fault 0x%llx: %d", w->idx, (unsigned long long)addr, r);
			}
		} else if (op < 92) { /* slot 2: at A, at B, or absent. Faults only: see
					 test_access_vs_slot_delete for why no access. */
			int which = (int)rnd_below(&w->rng, 2);
			uint64_t addr = s_va_slot2(w->idx, which, (int)rnd_below(&w->rng, 16));
			int r = smmu_vcpu_fault(v, addr, (op & 1) ? SMMU_ACC_WRITE : 0, NULL);
			if (r >= 0 && r < 4)
				w->c.fault_slot2[r]++;
			if (r != SMMU_FAULT_MAPPED && r != SMMU_FAULT_MMIO && r != SMMU_FAULT_RETRY) {
				w->c.fault_err++;
				stress_fail("vcpu %d: slot-2 fault 0x%llx: %d", w->idx, (unsigned long long)addr, r);
			}
		} else if (op < 96) {
			struct smmu_translation t;
			int r = smmu_vcpu_translate(v, s_va_data(w->idx, (int)rnd_below(&w->rng, S_NADDR)), 0, &t);
			if (r != 0 && r != -EFAULT)
				stress_fail("vcpu %d: translate: %d", w->idx, r);
			w->c.translates++;
		} else {
			if (smmu_vcpu_enter(v) != 0)
				stress_fail("vcpu %d: enter failed", w->idx);
			w->c.enters++;
		}
	}
}

/* --- the zapper: every strategy in turn --- */
static void s_zapper_round(struct s_worker *w)
{
	smmu_vm *vm = w->s->vm;
	struct smmu_memslot_info slot0;
	if (smmu_memslot_get(vm, 0, &slot0) != 0) {
		stress_fail("zapper: slot 0 missing");
		return;
	}
	for (uint32_t it = 0; s_running(w, it, S_ZAP_CAP); it++) {
		int kind = (int)(w->serial++ % ZS_COUNT);
		struct smmu_zap_report rep;
		int r = 0;
		switch (kind) {
		case ZS_HOLD: r = smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &rep); break;
		case ZS_GENERATION: r = smmu_zap_all(vm, SMMU_ZAP_GENERATION, 0, &rep); break;
		case ZS_RESTART:
			r = smmu_zap_all(vm, SMMU_ZAP_RESTART, 64, &rep);
			if (r == -EAGAIN) {
				w->c.zap_again++;
				r = 0;
			}
			break;
		case ZS_FAST: r = smmu_fast_zap(vm, &rep); break;
		case ZS_FLUSH_ZAP_ALL: r = smmu_memslot_flush(vm, 0, SMMU_FLUSH_ZAP_ALL, &rep); break;
		case ZS_FLUSH_FAST: r = smmu_memslot_flush(vm, 0, SMMU_FLUSH_FAST_ZAP, &rep); break;
		case ZS_FLUSH_HASH: r = smmu_memslot_flush(vm, 0, SMMU_FLUSH_HASH_WALK, &rep); break;
		case ZS_FLUSH_REBUILD: r = smmu_memslot_flush(vm, 0, SMMU_FLUSH_RMAP_REBUILD, &rep); break;
		case ZS_FLUSH_SLOT2:
			r = smmu_memslot_flush(vm, S_SLOT2_ID, SMMU_FLUSH_HASH_WALK, &rep);
			if (r == -ENOENT)
				r = 0;
			break;
		case ZS_NOTIFIER: {
			/* A random range of slot 0's backing, up to 256 pages, mostly over the data
			 * frames the vCPUs map. */
			uint64_t first = rnd_below(&w->rng, 4) ? S_DATA_BASE + rnd_below(&w->rng, 4 * S_DATA_PER)
							      : rnd_below(&w->rng, (uint32_t)S_SLOT0_PAGES - 256);
			uint64_t n = 1 + rnd_below(&w->rng, 256);
			const uint8_t *b = (const uint8_t *)slot0.hva + first * SMMU_PAGE_SIZE;
			int64_t d = smmu_mmu_notifier_invalidate_range(vm, b, b + n * SMMU_PAGE_SIZE);
			if (d < 0)
				r = (int)d;
			else
				w->c.notifier_dropped += (uint64_t)d;
			break;
		}
		case ZS_BUMP_DRAIN:
			r = smmu_fast_zap_bump(vm, &rep);
			if (!r) {
				sched_yield(); /* let vCPUs fault between the halves */
				r = smmu_fast_zap_drain(vm, &rep);
			}
			break;
		}
		if (r)
			stress_fail("zapper: %s returned %d", zs_names[kind], r);
		w->c.zaps[kind]++;
		if (kind == ZS_COUNT - 1)
			atomic_fetch_add(&w->s->zap_cycles, 1);
		sleep_us(100 + rnd_below(&w->rng, 200)); /* let pages build up again */
	}
}

/* --- the guest page-table writer: its own address space and vCPU --- */
#define W_WINDOW 64 /* 4 guest L1 tables of 16 pages, plus a 2M slot */
static uint64_t w_va(int k) { return s_va_base(S_NVCPU) + (uint64_t)(k / 16) * MIB2 + (uint64_t)(k % 16) * SMMU_PAGE_SIZE; }
static uint64_t w_va_large(void) { return s_va_base(S_NVCPU) + 8 * MIB2; }

static void s_writer_round(struct s_worker *w)
{
	smmu_vm *vm = w->s->vm;
	uint64_t gfn0 = s_gfn_data(S_NVCPU);
	for (uint32_t it = 0; s_running(w, it, S_WRITER_CAP); it++) {
		if ((it & 31) == 31)
			sleep_us(20);
		uint32_t op = rnd_below(&w->rng, 100);
		int k = (int)rnd_below(&w->rng, W_WINDOW);
		int r;
		if (op < 25) {
			uint32_t prot = SMMU_PROT_USER | (rnd_below(&w->rng, 4) ? SMMU_PROT_WRITE : 0);
			r = smmu_gas_map(w->gas, w_va(k), gfn0 + rnd_below(&w->rng, 256), SMMU_LEVEL_4K, prot);
			if (r)
				stress_fail("writer: map: %d", r);
			w->c.maps++;
		} else if (op < 40) {
			r = smmu_gas_unmap(w->gas, w_va(k));
			if (r && r != -ENOENT)
				stress_fail("writer: unmap: %d", r);
			w->c.unmaps++;
		} else if (op < 43) { /* a 2M guest leaf, or its removal */
			if (rnd_below(&w->rng, 2))
				r = smmu_gas_map(w->gas, w_va_large(), gfn0 + 512, SMMU_LEVEL_2M, SMMU_PROT_WRITE | SMMU_PROT_USER);
			else
				r = smmu_gas_unmap(w->gas, w_va_large());
			if (r && r != -ENOENT && r != -EEXIST)
				stress_fail("writer: large map/unmap: %d", r);
			w->c.maps++;
		} else if (op < 48) { /* a raw guest store to one of its data frames */
			uint64_t val = w->serial++;
			r = smmu_guest_write(vm, (gfn0 + rnd_below(&w->rng, 256)) * SMMU_PAGE_SIZE + 8 * rnd_below(&w->rng, 512),
					     &val, sizeof(val));
			if (r)
				stress_fail("writer: guest_write: %d", r);
			w->c.raw_writes++;
		} else if (op < 75) {
			uint64_t addr = rnd_below(&w->rng, 8) ? w_va(k) : w_va_large() + (uint64_t)k * SMMU_PAGE_SIZE;
			r = smmu_vcpu_fault(w->vcpu, addr, (op & 1) ? SMMU_ACC_WRITE | SMMU_ACC_USER : 0, NULL);
			if (r >= 0 && r < 4)
				w->c.faults[r]++;
			if (r != SMMU_FAULT_MAPPED && r != SMMU_FAULT_GUEST_PF && r != SMMU_FAULT_RETRY)
				stress_fail("writer: fault: %d", r);
		} else if (op < 98) {
			uint64_t val = 0;
			uint64_t addr = w_va(k) + 8 * rnd_below(&w->rng, 512);
			if (op & 1) {
				r = smmu_vcpu_write(w->vcpu, addr, &val, sizeof(val));
				w->c.writes++;
			} else {
				r = smmu_vcpu_read(w->vcpu, addr, &val, sizeof(val));
				w->c.reads++;
			}
			if (r == -EAGAIN)
				w->c.access_again++;
			else if (r == -EFAULT)
				w->c.access_efault++; /* unmapped or read-only in the guest's tables */
			else if (r)
				stress_fail("writer: access: %d", r);
		} else {
			r = smmu_vcpu_set_cr3(w->vcpu, smmu_gas_cr3(w->gas));
			if (r)
				stress_fail("writer: set_cr3: %d", r);
			w->c.cr3_loads++;
		}
	}
}

/* --- memslot changes on slot 2 (and the page limit and flush strategy) --- */
static void s_slots_round(struct s_worker *w)
{
	smmu_vm *vm = w->s->vm;
	static const enum smmu_flush_strategy strategies[] = { SMMU_FLUSH_ZAP_ALL, SMMU_FLUSH_FAST_ZAP,
							      SMMU_FLUSH_HASH_WALK, SMMU_FLUSH_RMAP_REBUILD };
	for (uint32_t it = 0; s_running(w, it, S_SLOT_CAP); it++) {
		struct smmu_memslot_info info;
		bool present = smmu_memslot_get(vm, S_SLOT2_ID, &info) == 0;
		uint32_t op = rnd_below(&w->rng, 100);
		int r = 0;
		if (!present) {
			r = smmu_memslot_create(vm, S_SLOT2_ID, rnd_below(&w->rng, 4) ? S_SLOT2_A : S_SLOT2_B,
						S_SLOT2_PAGES, rnd_below(&w->rng, 3) ? 0 : SMMU_MEM_LOG_DIRTY_PAGES);
			w->c.slot_creates++;
		} else if (op < 20) {
			r = smmu_memslot_delete(vm, S_SLOT2_ID);
			w->c.slot_deletes++;
		} else if (op < 45) {
			r = smmu_memslot_move(vm, S_SLOT2_ID, info.base_gfn == S_SLOT2_A ? S_SLOT2_B : S_SLOT2_A);
			w->c.slot_moves++;
		} else if (op < 65) {
			r = smmu_memslot_set_flags(vm, S_SLOT2_ID, info.flags ^ SMMU_MEM_LOG_DIRTY_PAGES);
			w->c.slot_flags++;
		} else if (op < 80) {
			uint64_t bm[S_SLOT2_PAGES / 64];
			int64_t d = smmu_memslot_get_dirty_log(vm, S_SLOT2_ID, bm, S_SLOT2_PAGES / 64);
			r = d == -ENODATA ? 0 : d < 0 ? (int)d : 0;
			w->c.dirty_logs++;
		} else if (op < 90) {
			r = smmu_vm_set_max_mmu_pages(vm, rnd_below(&w->rng, 2) ? 150 : 4000);
			w->c.max_pages++;
		} else {
			r = smmu_vm_set_flush_strategy(vm, strategies[rnd_below(&w->rng, 4)]);
			w->c.strategy++;
		}
		if (r)
			stress_fail("slots: op %u (present %d) returned %d", op, present, r);
		sleep_us(300 + rnd_below(&w->rng, 700));
	}
}

static void *s_thread(void *arg)
{
	struct s_worker *w = arg;
	struct stress *s = w->s;
	for (;;) {
		pthread_barrier_wait(&s->start);
		if (atomic_load(&s->exit))
			break;
		if (w == &s->zapper)
			s_zapper_round(w);
		else if (w == &s->writer)
			s_writer_round(w);
		else if (w == &s->slots)
			s_slots_round(w);
		else
			s_vcpu_round(w);
		pthread_barrier_wait(&s->end);
	}
	return NULL;
}

static void s_add_counts(struct s_counts *t, const struct s_counts *c)
{
	const uint64_t *src = (const uint64_t *)c;
	uint64_t *dst = (uint64_t *)t;
	for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static void s_setup_vcpu(struct stress *s, struct s_worker *w, int i)
{
	smmu_vm *vm = s->vm;
	assert_int_equal(smmu_gas_create(vm, S_POOL_BASE + (uint64_t)i * S_POOL_PAGES, S_POOL_PAGES, &w->gas), 0);
	assert_int_equal(smmu_vcpu_create(vm, &w->vcpu), 0);
	assert_int_equal(smmu_vcpu_set_cr3(w->vcpu, smmu_gas_cr3(w->gas)), 0);
	s->all_vcpus[s->n_all_vcpus++] = w->vcpu;
	if (i == S_NVCPU) { /* the writer's window starts mapped */
		for (int k = 0; k < W_WINDOW; k++)
			assert_int_equal(smmu_gas_map(w->gas, w_va(k), s_gfn_data(i) + (uint64_t)k, SMMU_LEVEL_4K,
						      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		return;
	}
	for (int k = 0; k < S_NADDR; k++) {
		assert_int_equal(smmu_gas_map(w->gas, s_va_data(i, k), s_gfn_data(i) + (uint64_t)k, SMMU_LEVEL_4K,
					      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		assert_int_equal(smmu_vcpu_fault(w->vcpu, s_va_data(i, k), SMMU_ACC_WRITE | SMMU_ACC_USER, NULL),
				 SMMU_FAULT_MAPPED);
	}
	assert_int_equal(smmu_gas_map(w->gas, s_va_large(i), s_gfn_data(i) + 512, SMMU_LEVEL_2M,
				      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	for (int which = 0; which < 2; which++)
		for (int j = 0; j < 16; j++)
			assert_int_equal(smmu_gas_map(w->gas, s_va_slot2(i, which, j),
						      (which ? S_SLOT2_B : S_SLOT2_A) + (uint64_t)i * 64 + (uint64_t)j,
						      SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
}

/* @drain_variants: every fast zap drains leaf first, one page per batch, committing and letting go
 * of the lock after each (the path that keeps a descent across breaks while others zap). */
static void stress(bool drain_variants)
{
	reset_failures();
	struct stress *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.max_mmu_pages = 4000;
	if (drain_variants) {
		cfg.zap_leaf_first = true;
		cfg.zap_commit_per_batch = true;
		cfg.zap_batch = 1;
	}
	s->vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(s->vm, 0, 0, S_SLOT0_PAGES, 0), 0);
	assert_int_equal(smmu_memslot_create(s->vm, S_SLOT2_ID, S_SLOT2_A, S_SLOT2_PAGES, 0), 0);

	struct s_worker *workers[S_NVCPU + 3];
	int nw = 0;
	for (int i = 0; i < S_NVCPU; i++) {
		s->vcpu[i] = (struct s_worker){ .s = s, .idx = i, .rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) };
		s_setup_vcpu(s, &s->vcpu[i], i);
		workers[nw++] = &s->vcpu[i];
	}
	s->writer = (struct s_worker){ .s = s, .idx = S_NVCPU, .rng = 0xC0FFEEull };
	s_setup_vcpu(s, &s->writer, S_NVCPU);
	s->zapper = (struct s_worker){ .s = s, .idx = -1, .rng = 0xBADC0DEull };
	s->slots = (struct s_worker){ .s = s, .idx = -2, .rng = 0x5107ull };
	workers[nw++] = &s->writer;
	workers[nw++] = &s->zapper;
	workers[nw++] = &s->slots;
	assert_int_equal(quiescent_audit(s->vm, s->all_vcpus, s->n_all_vcpus, "setup"), 0);

	pthread_barrier_init(&s->start, NULL, (unsigned)nw + 1);
	pthread_barrier_init(&s->end, NULL, (unsigned)nw + 1);
	for (int i = 0; i < nw; i++)
		assert_int_equal(pthread_create(&workers[i]->tid, NULL, s_thread, workers[i]), 0);

	long violations = 0;
	int rounds = 0;
	uint64_t t_start = now_ns();
	for (; rounds < S_ROUNDS && !violations; rounds++) {
		atomic_store(&s->stop, 0);
		atomic_store(&s->done, 0);
		atomic_store(&s->zap_cycles, 0);
		pthread_barrier_wait(&s->start);
		/* Each round runs every zap strategy at least once (bounded by S_ROUND_MAX_NS: under
		 * ThreadSanitizer on a loaded machine a cycle may take longer than a round). */
		uint64_t t0 = now_ns();
		for (;;) {
			uint64_t t = now_ns() - t0;
			if (atomic_load(&s->done) >= nw || t >= S_ROUND_MAX_NS ||
			    (t >= S_ROUND_NS && atomic_load(&s->zap_cycles) > 0))
				break;
			sleep_us(2000);
		}
		atomic_store(&s->stop, 1);
		pthread_barrier_wait(&s->end);
		/* Quiescent: every worker waits at the start barrier. */
		char where[32];
		snprintf(where, sizeof(where), "end of round %d", rounds);
		violations = quiescent_audit(s->vm, s->all_vcpus, s->n_all_vcpus, where);
	}
	atomic_store(&s->exit, 1);
	pthread_barrier_wait(&s->start);
	for (int i = 0; i < nw; i++)
		pthread_join(workers[i]->tid, NULL);
	uint64_t elapsed_ms = (now_ns() - t_start) / 1000000;

	struct s_counts t = { 0 };
	for (int i = 0; i < nw; i++)
		s_add_counts(&t, &workers[i]->c);
	uint64_t zaps = 0;
	for (int k = 0; k < ZS_COUNT; k++)
		zaps += t.zaps[k];
	struct smmu_vm_counters vc;
	assert_int_equal(smmu_vm_get_counters(s->vm, &vc), 0);
	printf("stress%s: %d rounds in %llu ms, %d vCPU threads + writer + zapper + slot thread\n",
	       drain_variants ? " (leaf-first, per-batch drain)" : "", rounds, (unsigned long long)elapsed_ms,
	       S_NVCPU);
	printf("  faults: mapped %llu, guest #PF %llu, retry %llu (slot 2: mapped %llu, mmio %llu, retry %llu)\n",
	       (unsigned long long)t.faults[0], (unsigned long long)t.faults[1], (unsigned long long)t.faults[3],
	       (unsigned long long)t.fault_slot2[0], (unsigned long long)t.fault_slot2[2],
	       (unsigned long long)t.fault_slot2[3]);
	printf("  accesses: %llu writes, %llu reads, %llu verified, %llu -EAGAIN, %llu -EFAULT; %llu enters, %llu translates\n",
	       (unsigned long long)t.writes, (unsigned long long)t.reads, (unsigned long long)t.verified,
	       (unsigned long long)t.access_again, (unsigned long long)t.access_efault,
	       (unsigned long long)t.enters, (unsigned long long)t.translates);
	printf("  zapper: %llu operations (%llu restart zaps hit their round limit, %llu sptes dropped by the notifier):\n",
	       (unsigned long long)zaps, (unsigned long long)t.zap_again, (unsigned long long)t.notifier_dropped);
	for (int k = 0; k < ZS_COUNT; k++)
		printf("    %-28s %llu\n", zs_names[k], (unsigned long long)t.zaps[k]);
	printf("  guest page tables: %llu maps, %llu unmaps, %llu raw writes, %llu cr3 loads\n",
	       (unsigned long long)t.maps, (unsigned long long)t.unmaps, (unsigned long long)t.raw_writes,
	       (unsigned long long)t.cr3_loads);
	printf("  slot 2: %llu creates, %llu deletes, %llu moves, %llu flag changes, %llu dirty logs; "
	       "%llu page-limit changes, %llu strategy changes\n",
	       (unsigned long long)t.slot_creates, (unsigned long long)t.slot_deletes,
	       (unsigned long long)t.slot_moves, (unsigned long long)t.slot_flags, (unsigned long long)t.dirty_logs,
	       (unsigned long long)t.max_pages, (unsigned long long)t.strategy);
	printf("  vm: %llu pages created, %llu zapped, %llu recycled, %llu trapped pte writes, %llu remote flushes\n",
	       (unsigned long long)vc.pages_created, (unsigned long long)vc.pages_zapped,
	       (unsigned long long)vc.pages_recycled, (unsigned long long)vc.pte_writes,
	       (unsigned long long)vc.remote_tlb_flushes);

	printf("  mmu_lock per site: acquisitions, wait p50 / p99 / max, hold p99 / max (us), breaks, hand-offs\n");
	for (int site = 0; site < SMMU_SITE_COUNT; site++) {
		struct smmu_site_stats st;
		assert_int_equal(smmu_stats_get(s->vm, (enum smmu_site)site, &st), 0);
		if (!st.hold.count)
			continue;
		printf("    %-14s %9llu  %8.1f %8.1f %8.1f  %8.1f %8.1f  %llu %llu\n", smmu_site_name((enum smmu_site)site),
		       (unsigned long long)st.wait.count, st.wait.p50 / 1e3, st.wait.p99 / 1e3, st.wait.max / 1e3,
		       st.hold.p99 / 1e3, st.hold.max / 1e3, (unsigned long long)st.breaks,
		       (unsigned long long)st.handoffs);
	}

	assert_int_equal(violations, 0);
	assert_no_worker_failure();
	/* Every kind of work happened. */
	assert_true(t.faults[0] > 0 && t.verified > 0 && t.maps > 0 && t.unmaps > 0);
	for (int k = 0; k < ZS_COUNT; k++)
		assert_true(t.zaps[k] > 0);
	assert_true(t.slot_creates + t.slot_deletes + t.slot_moves + t.slot_flags > 0);

	pthread_barrier_destroy(&s->start);
	pthread_barrier_destroy(&s->end);
	for (int i = 0; i < S_NVCPU; i++) {
		smmu_vcpu_destroy(s->vcpu[i].vcpu);
		smmu_gas_destroy(s->vcpu[i].gas);
	}
	smmu_vcpu_destroy(s->writer.vcpu);
	smmu_gas_destroy(s->writer.gas);
	tl_assert_audit_clean(s->vm);
	smmu_vm_destroy(s->vm);
	free(s);
}

static void test_stress_all_strategies(void **state)
{
	(void)state;
	stress(false);
}

static void test_stress_drain_variants(void **state)
{
	(void)state;
	stress(true);
}

/* ======================================================================================== */
/* Faulters: vCPU threads that fault a large set of distinct pre-mapped addresses in turn, so  */
/* that after any zap each fault builds new shadow pages. Shared by tests 2 and 3.            */
/* ======================================================================================== */

#define F_MAX 3
#define F_MAX_ADDR 2048       /* one address per GiB: each has its own guest L2 and L1 table */
#define F_POOL_PAGES 4200ull  /* 2 tables per address + 4 L3 + root */
#define F_POOL_BASE 64ull
#define F_DATA_BASE 16384ull
#define F_SLOT_PAGES 32768ull

struct faulter {
	struct fctx *f;
	pthread_t tid;
	int idx;
	smmu_vcpu *vcpu;
	smmu_gas *gas;
	uint64_t faults, mapped, retries, during_zap, pages_created;
};

struct fctx {
	smmu_vm *vm;
	int n, n_addr;
	struct faulter t[F_MAX];
	smmu_vcpu *vcpus[F_MAX];
	atomic_int stop;
	atomic_int running;     /* faulters that have started faulting */
	/* Odd from the moment the zap call first holds mmu_lock until it returns: a fault that
	 * starts and ends inside that window got the lock while the zap was breaking it. */
	atomic_uint zap_epoch;
	atomic_int armed;       /* the next LOCK_TAKEN by the zapper thread opens the window */
	int pace;               /* see f_hook */
	uint64_t pace_until;    /* pacing stops at this time (ns), so no zap call runs unbounded */
	pthread_t zapper;
	uint64_t cap;           /* iteration cap per faulter */
};

/* Faulter i's address k: its own 1 GiB region, four PML4 entries per faulter. */
static uint64_t f_va(int i, int k) { return ((uint64_t)(4 * i + 1) << 39) + ((uint64_t)k << 30); }

static void *f_thread(void *arg)
{
	struct faulter *t = arg;
	struct fctx *f = t->f;
	atomic_fetch_add(&f->running, 1);
	for (uint64_t it = 0; it < f->cap && !atomic_load_explicit(&f->stop, memory_order_relaxed); it++) {
		unsigned e0 = atomic_load(&f->zap_epoch);
		struct smmu_fault_info fi;
		int r = smmu_vcpu_fault(t->vcpu, f_va(t->idx, (int)(it % (uint64_t)f->n_addr)),
					SMMU_ACC_WRITE | SMMU_ACC_USER, &fi);
		unsigned e1 = atomic_load(&f->zap_epoch);
		t->faults++;
		if (r == SMMU_FAULT_MAPPED)
			t->mapped++;
		else if (r == SMMU_FAULT_RETRY)
			t->retries++;
		else
			stress_fail("faulter %d: fault returned %d", t->idx, r);
		if (r >= 0)
			t->pages_created += fi.pages_created;
		if ((e0 & 1) && e0 == e1)
			t->during_zap++;
	}
	return NULL;
}

/* Wait (bounded) until a vCPU queues on mmu_lock. */
static void f_wait_for_waiter(struct fctx *f, smmu_vm *vm)
{
	uint64_t t0 = now_ns();
	if (t0 >= f->pace_until)
		return;
	while (!smmu_needbreak(vm) && now_ns() - t0 < 50ull * 1000 * 1000)
		sched_yield();
}

/*
 * Runs with mmu_lock held, on whichever thread took it: only atomics here. On the zapper's
 * thread, during a zap call:
 *  - the first LOCK_TAKEN opens the "during the zap" window (zap_epoch odd);
 *  - pacing: a guest with 30 vCPUs always has one queued on mmu_lock; 3 faulter threads on a
 *    2-core (and possibly loaded) machine do not, since the scheduler may run none of them for
 *    a few milliseconds, which is all a walk of a few thousand pages needs to finish unbroken.
 *    With pace >= 1 the zap, once it holds the lock, waits until a faulter queues (bounded by
 *    50 ms) before it starts; with pace 2 it does so again after every lock break
 *    (LOCK_BROKEN comes once the lock is retaken). That takes scheduler luck out of the
 *    comparison without changing what each strategy does with the contention it sees.
 *    Pacing ends 5 s after the zap call began (pace_until), whatever happens.
 */
static void f_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct fctx *f = ctx;
	if (!pthread_equal(pthread_self(), f->zapper))
		return;
	if (ev == SMMU_EV_LOCK_TAKEN && atomic_load_explicit(&f->armed, memory_order_relaxed)) {
		atomic_store(&f->armed, 0);
		atomic_fetch_add(&f->zap_epoch, 1);
		if (f->pace >= 1)
			f_wait_for_waiter(f, vm);
	} else if (ev == SMMU_EV_LOCK_BROKEN && f->pace >= 2 && (atomic_load(&f->zap_epoch) & 1)) {
		f_wait_for_waiter(f, vm);
	}
}

static void f_setup(struct fctx *f, int n, int n_addr, uint64_t max_pages)
{
	memset(f, 0, sizeof(*f));
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.max_mmu_pages = max_pages;
	f->vm = tl_vm_cfg(&cfg);
	f->n = n;
	f->n_addr = n_addr;
	assert_int_equal(smmu_memslot_create(f->vm, 0, 0, F_SLOT_PAGES, 0), 0);
	for (int i = 0; i < n; i++) {
		struct faulter *t = &f->t[i];
		t->f = f;
		t->idx = i;
		assert_int_equal(smmu_gas_create(f->vm, F_POOL_BASE + (uint64_t)i * F_POOL_PAGES, F_POOL_PAGES, &t->gas), 0);
		assert_int_equal(smmu_vcpu_create(f->vm, &t->vcpu), 0);
		assert_int_equal(smmu_vcpu_set_cr3(t->vcpu, smmu_gas_cr3(t->gas)), 0);
		f->vcpus[i] = t->vcpu;
		for (int k = 0; k < n_addr; k++)
			assert_int_equal(smmu_gas_map(t->gas, f_va(i, k), F_DATA_BASE + (uint64_t)i * F_MAX_ADDR + (uint64_t)k,
						      SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	}
	f->zapper = pthread_self();
	assert_int_equal(smmu_set_hook(f->vm, f_hook, f), 0);
}

/* Fault every address once from the main thread: about 2 shadow pages per address. The
 * vCPUs take turns, so none sits on a root that the page limit zapped (see the report on
 * prepare_zap_oldest_mmu_page: such a root at the tail stops reclaim). */
static void f_populate(struct fctx *f)
{
	for (int i = 0; i < f->n; i++)
		assert_int_equal(smmu_vcpu_enter(f->t[i].vcpu), 0);
	for (int k = 0; k < f->n_addr; k++) {
		for (int i = 0; i < f->n; i++) {
			int r = smmu_vcpu_fault(f->t[i].vcpu, f_va(i, k), SMMU_ACC_WRITE | SMMU_ACC_USER, NULL);
			assert_true(r == SMMU_FAULT_MAPPED || r == SMMU_FAULT_RETRY);
		}
	}
}

static uint64_t f_used_pages(struct fctx *f)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(f->vm, &c), 0);
	return c.n_used_mmu_pages;
}

static uint64_t f_recycled(struct fctx *f)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(f->vm, &c), 0);
	return c.pages_recycled;
}

static void f_start(struct fctx *f, uint64_t cap)
{
	atomic_store(&f->stop, 0);
	atomic_store(&f->running, 0);
	f->cap = cap;
	for (int i = 0; i < f->n; i++) {
		struct faulter *t = &f->t[i];
		t->faults = t->mapped = t->retries = t->during_zap = t->pages_created = 0;
		assert_int_equal(pthread_create(&t->tid, NULL, f_thread, t), 0);
	}
	/* The load is on before the zap starts: every faulter has begun and faulted a while. */
	while (atomic_load(&f->running) < f->n)
		sched_yield();
	sleep_us(20000);
}

static void f_stop(struct fctx *f)
{
	atomic_store(&f->stop, 1);
	for (int i = 0; i < f->n; i++)
		pthread_join(f->t[i].tid, NULL);
}

static void f_sum(struct fctx *f, uint64_t *faults, uint64_t *during, uint64_t *created)
{
	*faults = *during = *created = 0;
	for (int i = 0; i < f->n; i++) {
		*faults += f->t[i].faults;
		*during += f->t[i].during_zap;
		*created += f->t[i].pages_created;
	}
}

static void f_teardown(struct fctx *f)
{
	assert_int_equal(smmu_set_hook(f->vm, NULL, NULL), 0);
	assert_int_equal(quiescent_audit(f->vm, f->vcpus, f->n, "teardown"), 0);
	for (int i = 0; i < f->n; i++) {
		smmu_vcpu_destroy(f->t[i].vcpu);
		smmu_gas_destroy(f->t[i].gas);
	}
	smmu_vm_destroy(f->vm);
}

/* One zap call (kind 0: fast zap; else zap_all mode kind - 1) under the faulters' eyes. */
static int f_zap(struct fctx *f, int kind, uint64_t max_rounds, struct smmu_zap_report *rep)
{
	f->pace_until = now_ns() + 5000ull * 1000 * 1000;
	atomic_store(&f->armed, 1);
	int r;
	if (kind == 0)
		r = smmu_fast_zap(f->vm, rep);
	else
		r = smmu_zap_all(f->vm, (enum smmu_zap_mode)(kind - 1), max_rounds, rep);
	atomic_store(&f->armed, 0);
	if (atomic_load(&f->zap_epoch) & 1)
		atomic_fetch_add(&f->zap_epoch, 1);
	return r;
}

/* ======================================================================================== */
/* 2. The hand-off under real contention                                                     */
/* ======================================================================================== */

static void test_handoff_during_fast_zap(void **state)
{
	(void)state;
	reset_failures();
	struct fctx *f = malloc(sizeof(*f));
	assert_non_null(f);
	bool ok = false;
	for (int attempt = 1; attempt <= 3 && !ok; attempt++) {
		f_setup(f, 2, 1024, 20000);
		f->pace = 1; /* start the drain with a faulter queued; the rest is real contention */
		f_populate(f);
		uint64_t pages = f_used_pages(f);
		assert_int_equal(smmu_stats_reset(f->vm), 0);
		f_start(f, 2000000);
		struct smmu_zap_report rep;
		int r = f_zap(f, 0, 0, &rep);
		f_stop(f);
		assert_int_equal(r, 0);
		assert_true(rep.completed);
		struct smmu_site_stats st, fault_st;
		assert_int_equal(smmu_stats_get(f->vm, SMMU_SITE_FAST_ZAP, &st), 0);
		assert_int_equal(smmu_stats_get(f->vm, SMMU_SITE_FAULT, &fault_st), 0);
		uint64_t faults, during, created;
		f_sum(f, &faults, &during, &created);
		printf("hand-off attempt %d: fast zap of %llu pages: %llu zapped, %llu rounds, %.2f ms; "
		       "lock breaks %llu, hand-offs %llu; hold p50 %llu ns max %llu ns; "
		       "%llu faults completed during the zap (of %llu), fault wait p99 %llu ns\n",
		       attempt, (unsigned long long)pages, (unsigned long long)rep.pages_zapped,
		       (unsigned long long)rep.rounds, (double)rep.total_ns / 1e6, (unsigned long long)st.breaks,
		       (unsigned long long)st.handoffs, (unsigned long long)st.hold.p50,
		       (unsigned long long)st.hold.max, (unsigned long long)during, (unsigned long long)faults,
		       (unsigned long long)fault_st.wait.p99);
		ok = st.breaks > 0 && st.handoffs > 0 && during > 0;
		f_teardown(f);
	}
	free(f);
	assert_no_worker_failure();
	assert_true(ok);
}

/* ======================================================================================== */
/* 3. Forward progress: the 2019 hang against the generation-bounded and the fast zap         */
/* ======================================================================================== */

#define FP_FAULTERS 3
#define FP_ADDR 256
#define FP_BUDGET 400 /* n_max_mmu_pages: about a quarter of the 2 x 3 x 256 pages the faulters touch */

static void test_forward_progress_contrast(void **state)
{
	(void)state;
	reset_failures();
	struct fctx *f = malloc(sizeof(*f));
	assert_non_null(f);
	/* Each faulter cycles through 256 addresses, each with its own guest L2 and L1 table, and
	 * the page budget holds only a quarter of the 1536 shadow pages they need: by the time a
	 * faulter comes back to an address, the page limit has reclaimed its pages, so every fault
	 * builds two new pages (and reclaim drops two old ones). That is a guest that keeps
	 * faulting new pages, as the 30-vCPU guests of 2019 did. */
	f_setup(f, FP_FAULTERS, FP_ADDR, FP_BUDGET);
	f->pace = 2; /* a vCPU always queued, as with 30 vCPUs: see f_hook */

	/* RESTART: up to 3 attempts, each on a freshly populated VM under load. */
	int livelocked = 0;
	for (int attempt = 1; attempt <= 3 && !livelocked; attempt++) {
		f_populate(f);
		uint64_t pages = f_used_pages(f);
		/* Twice the rounds a walk would need if each round took one page away. */
		uint64_t max_rounds = 2 * pages;
		uint64_t recycled0 = f_recycled(f);
		assert_int_equal(smmu_stats_reset(f->vm), 0); /* quiescent: before the faulters start */
		f_start(f, 50000000);
		struct smmu_zap_report rep;
		int r = f_zap(f, 1 + SMMU_ZAP_RESTART, max_rounds, &rep);
		f_stop(f);
		struct smmu_site_stats st;
		assert_int_equal(smmu_stats_get(f->vm, SMMU_SITE_ZAP_ALL, &st), 0);
		uint64_t recycled = f_recycled(f) - recycled0;
		uint64_t faults, during, created;
		f_sum(f, &faults, &during, &created);
		printf("zap_all(restart, max_rounds %llu) attempt %d: %s, %llu rounds, %llu pages zapped "
		       "(%llu present at the start), %llu lock breaks, %.2f ms; faulters completed %llu faults "
		       "during it, creating %llu pages (the page limit reclaimed %llu); zap_all longest hold %.2f ms, "
		       "wait p50 %llu ns max %.2f ms\n",
		       (unsigned long long)max_rounds, attempt, r == -EAGAIN ? "-EAGAIN (did not finish)" : r == 0 ? "completed" : "error",
		       (unsigned long long)rep.rounds, (unsigned long long)rep.pages_zapped,
		       (unsigned long long)pages, (unsigned long long)rep.lock_breaks, (double)rep.total_ns / 1e6,
		       (unsigned long long)during, (unsigned long long)created, (unsigned long long)recycled,
		       (double)st.hold.max / 1e6,
		       (unsigned long long)st.wait.p50, (double)st.wait.max / 1e6);
		assert_true(r == 0 || r == -EAGAIN);
		assert_true(rep.completed == (r == 0));
		/* The hang: it took away more pages than there were when it began, and still was
		 * not done, because the faulters kept building new ones. */
		if (r == -EAGAIN) {
			assert_true(rep.rounds > max_rounds);
			livelocked = rep.pages_zapped > pages;
		}
		/* Clean up whatever the zap left before the next attempt or the next mode. */
		assert_int_equal(quiescent_audit(f->vm, f->vcpus, f->n, "after restart"), 0);
		assert_int_equal(smmu_zap_all(f->vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	}
	assert_true(livelocked);

	/* GENERATION and fast zap under the same load terminate: they take only pages older than
	 * the call, at most the budget, and a break restarts the walk only after a page (GENERATION)
	 * or a batch (fast zap) went. */
	for (int kind = 0; kind < 2; kind++) {
		f_populate(f);
		uint64_t pages = f_used_pages(f);
		uint64_t recycled0 = f_recycled(f);
		f_start(f, 50000000);
		struct smmu_zap_report rep;
		int r = f_zap(f, kind == 0 ? 1 + SMMU_ZAP_GENERATION : 0, 0, &rep);
		f_stop(f);
		uint64_t recycled = f_recycled(f) - recycled0;
		uint64_t faults, during, created;
		f_sum(f, &faults, &during, &created);
		printf("%s under the same load: %s, %llu rounds, %llu pages zapped (%llu present before the "
		       "load), %llu lock breaks, %.2f ms; faulters completed %llu faults during it, creating %llu pages "
		       "(the page limit reclaimed %llu)\n",
		       kind == 0 ? "zap_all(generation)" : "fast_zap", r == 0 && rep.completed ? "completed" : "NOT completed",
		       (unsigned long long)rep.rounds, (unsigned long long)rep.pages_zapped, (unsigned long long)pages,
		       (unsigned long long)rep.lock_breaks, (double)rep.total_ns / 1e6, (unsigned long long)during,
		       (unsigned long long)created, (unsigned long long)recycled);
		assert_int_equal(r, 0);
		assert_true(rep.completed);
		/* A break restarts the walk only after a page (GENERATION) or a batch (fast zap) went,
		 * or after a root in use was marked (at most one per faulter). */
		assert_true(rep.rounds <= rep.pages_zapped + 1 + FP_FAULTERS);
		assert_true(rep.pages_zapped <= FP_BUDGET + 64); /* the budget, plus one fault's overshoot per faulter */
		assert_int_equal(quiescent_audit(f->vm, f->vcpus, f->n, "after generation/fast zap"), 0);
	}
	f_teardown(f);
	free(f);
	assert_no_worker_failure();
}

/* ======================================================================================== */
/* 4. A root zapped while its vCPU still uses it                                              */
/* ======================================================================================== */

#define R_GVA 0x40000000ull
#define R_GFN 256ull
#define R_N 16

/* The vCPU's root as the library sees it (quiescent point). */
static struct smmu_sp_info root_info(smmu_vm *vm, smmu_vcpu *v, smmu_sp **sp)
{
	struct smmu_sp_info info;
	memset(&info, 0, sizeof(info));
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	*sp = v->root;
	if (*sp)
		assert_int_equal(smmu_sp_get_info(vm, *sp, &info), 0);
	smmu_mmu_unlock(vm);
	return info;
}

/* Whether @sp is still on active_mmu_pages. */
static bool on_active_list(smmu_vm *vm, smmu_sp *sp)
{
	bool found = false;
	smmu_mmu_lock(vm, SMMU_SITE_USER0);
	for (smmu_sp *p = smmu_active_first(vm); p && !found; p = smmu_active_next(vm, p))
		found = p == sp;
	smmu_mmu_unlock(vm);
	return found;
}

static void test_root_zapped_in_use(void **state)
{
	(void)state;
	for (int k = 0; k < 6; k++) {
		struct tl_guest g;
		tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, 1024, 64);
		tl_map_and_fault(&g, R_GVA, R_GFN, R_N, SMMU_ACC_WRITE | SMMU_ACC_USER);
		uint64_t val = 0x1234567800ull + (uint64_t)k;
		assert_int_equal(smmu_vcpu_write(g.vcpu, R_GVA + 8, &val, sizeof(val)), 0);
		smmu_sp *root;
		struct smmu_sp_info before = root_info(g.vm, g.vcpu, &root);
		assert_non_null(root);
		assert_int_equal(before.root_count, 1);

		int r = 0;
		switch (k) {
		case 0: r = smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL); break;
		case 1: r = smmu_zap_all(g.vm, SMMU_ZAP_GENERATION, 0, NULL); break;
		case 2: r = smmu_fast_zap(g.vm, NULL); break;
		case 3: r = smmu_memslot_flush(g.vm, 0, SMMU_FLUSH_ZAP_ALL, NULL); break;
		case 4: r = smmu_memslot_flush(g.vm, 0, SMMU_FLUSH_HASH_WALK, NULL); break;
		case 5: r = smmu_mmu_notifier_release(g.vm); break;
		}
		assert_int_equal(r, 0);

		/* The vCPU has not processed its reload: the root is still its root, zapped (or
		 * obsolete), pinned, still allocated and on the active list. */
		smmu_sp *still;
		struct smmu_sp_info after = root_info(g.vm, g.vcpu, &still);
		assert_ptr_equal(still, root);
		assert_int_equal(after.root_count, 1);
		assert_true(after.invalid || after.obsolete);
		assert_true(on_active_list(g.vm, root));
		/* The hardware walk through it finds nothing mapped any more, and does not crash. */
		struct smmu_translation t;
		r = smmu_vcpu_translate(g.vcpu, R_GVA + 8, 0, &t);
		assert_true(r == -EFAULT || r == 0);
		/* The audit accepts a root whose reload is pending. */
		tl_assert_audit_clean(g.vm);

		/* It keeps working: the access processes the reload, drops the old root, builds a
		 * new one and reads what was written before the zap. */
		uint64_t back = 0;
		assert_int_equal(smmu_vcpu_read(g.vcpu, R_GVA + 8, &back, sizeof(back)), 0);
		assert_int_equal(back, val);
		assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
		smmu_sp *fresh;
		struct smmu_sp_info now = root_info(g.vm, g.vcpu, &fresh);
		assert_non_null(fresh);
		assert_false(now.invalid || now.obsolete);
		assert_int_equal(now.root_count, 1);
		if (fresh != root) /* the old one is gone (the allocator may reuse the address) */
			assert_false(on_active_list(g.vm, root));
		tl_assert_audit_clean(g.vm);
		tl_guest_fini(&g);
	}
}

/* The same, with the vCPU on its own thread using its zapped root (translations through it,
 * faults that may come back RETRY) before it processes the reload, while the main thread zaps
 * again and again. Afterwards: enter, audit clean, destroy the vCPU with its root still zapped. */
struct rz_ctx {
	smmu_vm *vm;
	smmu_vcpu *v;
	atomic_int phase; /* 0 use without entering, 1 may enter, 2 stop */
	atomic_ullong translates; /* read by the main thread to pace phase 0 */
	uint64_t faults, retries, verified;
	int errors;
};

static void *rz_thread(void *arg)
{
	struct rz_ctx *c = arg;
	uint64_t rng = 42;
	for (uint64_t it = 0; it < 2000000; it++) {
		int ph = atomic_load(&c->phase);
		if (ph == 2)
			break;
		uint64_t addr = R_GVA + (uint64_t)rnd_below(&rng, R_N) * SMMU_PAGE_SIZE;
		if (ph == 0) {
			struct smmu_translation t;
			int r = smmu_vcpu_translate(c->v, addr, 0, &t);
			if (r != 0 && r != -EFAULT)
				c->errors++;
			atomic_fetch_add(&c->translates, 1);
		} else if (rnd_below(&rng, 4)) {
			uint64_t val = it, back = ~0ull;
			int r = smmu_vcpu_write(c->v, addr, &val, sizeof(val));
			if (!r)
				r = smmu_vcpu_read(c->v, addr, &back, sizeof(back));
			if (r == 0 && back == val)
				c->verified++;
			else if (r != -EAGAIN)
				c->errors++;
		} else {
			int r = smmu_vcpu_fault(c->v, addr, SMMU_ACC_WRITE | SMMU_ACC_USER, NULL);
			if (r == SMMU_FAULT_RETRY)
				c->retries++;
			else if (r != SMMU_FAULT_MAPPED)
				c->errors++;
			c->faults++;
		}
	}
	return NULL;
}

static void test_root_zapped_in_use_threaded(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, 1024, 64);
	tl_map_and_fault(&g, R_GVA, R_GFN, R_N, SMMU_ACC_WRITE | SMMU_ACC_USER);
	struct rz_ctx c = { .vm = g.vm, .v = g.vcpu };
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, rz_thread, &c), 0);
	uint64_t zaps = 0, t_end = now_ns() + 300ull * 1000 * 1000;
	/* Phase 0: the vCPU only walks its root (no request processing) while it is zapped: each
	 * zap waits until the vCPU has walked its zapped root a few times. */
	for (int i = 0; i < 200 && now_ns() < t_end; i++, zaps++) {
		uint64_t seen = atomic_load(&c.translates);
		assert_int_equal(i & 1 ? smmu_fast_zap(g.vm, NULL) : smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
		while (atomic_load(&c.translates) < seen + 10 && now_ns() < t_end)
			sched_yield();
	}
	/* Phase 1: it runs normally, faulting and accessing, while zaps continue. */
	atomic_store(&c.phase, 1);
	t_end = now_ns() + 300ull * 1000 * 1000;
	for (int i = 0; i < 2000 && now_ns() < t_end; i++, zaps++) {
		int r;
		switch (i % 4) {
		case 0: r = smmu_fast_zap(g.vm, NULL); break;
		case 1: r = smmu_zap_all(g.vm, SMMU_ZAP_GENERATION, 0, NULL); break;
		case 2: r = smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL); break;
		default: r = smmu_memslot_flush(g.vm, 0, SMMU_FLUSH_HASH_WALK, NULL); break;
		}
		assert_int_equal(r, 0);
		sleep_us(50);
	}
	atomic_store(&c.phase, 2);
	pthread_join(tid, NULL);
	printf("root zapped in use: %llu zaps; vCPU thread did %llu translations through its zapped root, "
	       "%llu faults (%llu RETRY), %llu verified write/read pairs\n",
	       (unsigned long long)zaps, (unsigned long long)atomic_load(&c.translates), (unsigned long long)c.faults,
	       (unsigned long long)c.retries, (unsigned long long)c.verified);
	assert_int_equal(c.errors, 0);
	/* Zap once more, and destroy the vCPU without letting it process the reload. */
	assert_int_equal(smmu_zap_all(g.vm, SMMU_ZAP_HOLD, 0, NULL), 0);
	tl_assert_audit_clean(g.vm);
	smmu_vcpu_destroy(g.vcpu);
	struct smmu_vm_counters vc;
	assert_int_equal(smmu_vm_get_counters(g.vm, &vc), 0);
	assert_int_equal(vc.n_used_mmu_pages, 0); /* the pinned root went with its vCPU */
	tl_assert_audit_clean(g.vm);
	g.vcpu = NULL;
	tl_guest_fini(&g);
}

/* ======================================================================================== */
/* vCPU memory access racing with slot deletion (a regression test)                           */
/* ======================================================================================== */

/*
 * smmu_vcpu_read/write copy through a host pointer from the TLB or the shadow walk, while
 * smmu_memslot_delete posts its flush and reload requests and then unmaps the backing. Before
 * the fix the copy ran outside srcu and a vCPU between its request check and its copy stored
 * into unmapped memory (SIGSEGV within a second on 2 cores). Now the requests are processed and
 * the copy done inside the srcu read section, which the deletion waits for before unmapping.
 */
struct race_ctx {
	smmu_vcpu *v;
	atomic_int stop;
	uint64_t ok, failed;
};

static void *race_thread(void *arg)
{
	struct race_ctx *c = arg;
	uint64_t val = 1;
	for (uint64_t i = 0; i < 50000000 && !atomic_load_explicit(&c->stop, memory_order_relaxed); i++) {
		if (smmu_vcpu_write(c->v, R_GVA, &val, sizeof(val)) == 0)
			c->ok++;
		else
			c->failed++;
	}
	return NULL;
}

static void test_access_vs_slot_delete(void **state)
{
	(void)state;
	struct tl_guest g;
	tl_guest_init(&g, SMMU_MODE_SHADOW, 4096, 1024, 64);
	assert_int_equal(smmu_memslot_create(g.vm, 2, 8192, 512, 0), 0);
	assert_int_equal(smmu_gas_map(g.gas, R_GVA, 8192, SMMU_LEVEL_4K, SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
	struct race_ctx c = { .v = g.vcpu };
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, race_thread, &c), 0);
	uint64_t cycles = 0, t_end = now_ns() + 3000ull * 1000 * 1000;
	for (; cycles < 100000 && now_ns() < t_end; cycles++) {
		assert_int_equal(smmu_memslot_delete(g.vm, 2), 0);
		assert_int_equal(smmu_memslot_create(g.vm, 2, 8192, 512, 0), 0);
	}
	atomic_store(&c.stop, 1);
	pthread_join(tid, NULL);
	printf("%llu delete/create cycles, %llu writes done, %llu refused: no crash\n", (unsigned long long)cycles,
	       (unsigned long long)c.ok, (unsigned long long)c.failed);
	assert_int_equal(smmu_vcpu_enter(g.vcpu), 0);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

/*
 * A regression test (repro measure_floor_race.c): smmu_measure_floor read n_used_mmu_pages
 * before it took mmu_lock, racing with kvm_mmu_alloc_page and the zaps. ThreadSanitizer reports
 * that read (CI runs this file under it); without TSan the test checks that every floor reads
 * pages that were there and that the VM audits clean after.
 */
struct floor_ctx {
	smmu_vm *vm;
	atomic_int stop;
	uint64_t floors, failed, max_pages;
};

static void *floor_thread(void *arg)
{
	struct floor_ctx *c = arg;
	for (uint64_t i = 0; i < 100000 && !atomic_load(&c->stop); i++) {
		struct smmu_floor f;
		if (smmu_measure_floor(c->vm, &f) != 0)
			c->failed++;
		else if (f.pages > c->max_pages)
			c->max_pages = f.pages;
		c->floors++;
	}
	return NULL;
}

static void test_measure_floor_vs_faults(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	const uint64_t npages = 1ull << 14;
	assert_int_equal(smmu_memslot_create(vm, 0, 0, npages, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	smmu_vcpu *v;
	assert_int_equal(smmu_vcpu_create(vm, &v), 0);
	struct floor_ctx c = { .vm = vm };
	pthread_t tid;
	assert_int_equal(pthread_create(&tid, NULL, floor_thread, &c), 0);
	uint64_t rounds = 0, t_end = now_ns() + 2000ull * 1000 * 1000;
	for (; rounds < 10 && now_ns() < t_end; rounds++) {
		for (uint64_t g = 0; g < npages; g += 512) /* a level-1 page per 2 MiB, 4K leaves */
			assert_int_equal(smmu_vcpu_fault(v, g << 12, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, NULL), 0);
		assert_int_equal(smmu_vcpu_enter(v), 0);
	}
	atomic_store(&c.stop, 1);
	pthread_join(tid, NULL);
	printf("%llu rounds, %llu floors, at most %llu pages read\n", (unsigned long long)rounds,
	       (unsigned long long)c.floors, (unsigned long long)c.max_pages);
	assert_int_equal(c.failed, 0);
	/* root, a level-3, a level-2 and npages / 512 level-1 pages: never more at once */
	assert_true(c.max_pages <= 3 + npages / 512);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(v);
	smmu_vm_destroy(vm);
}

/*
 * A regression test: the page limit stopped reclaiming behind a zapped root that an idle vCPU
 * still pins. prepare_zap_oldest_mmu_page (mmu_page.c) returns false
 * when the tail of active_mmu_pages is role.invalid, "only zapped roots in use are left", but
 * other pages may well be left: reclaim zaps vCPU A's root (the oldest page) while A is not
 * running, the root goes back to the head, becomes the tail again as newer pages are reclaimed,
 * and from then on make_mmu_pages_available() and kvm_mmu_change_mmu_pages reclaim nothing
 * until A processes its reload. KVM 3.11 zaps the tail again (moving the pinned root back to the
 * head) and goes on. Here vCPU B builds 1200 pages under a budget of 64.
 */
static void test_reclaim_passes_pinned_root(void **state)
{
	(void)state;
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.max_mmu_pages = 64;
	smmu_vm *vm = tl_vm_cfg(&cfg);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 16384, 0), 0);
	smmu_gas *ga, *gb;
	smmu_vcpu *a, *b;
	assert_int_equal(smmu_gas_create(vm, 100, 16, &ga), 0);
	assert_int_equal(smmu_gas_create(vm, 200, 2000, &gb), 0);
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_create(vm, &b), 0);
	assert_int_equal(smmu_vcpu_set_cr3(a, smmu_gas_cr3(ga)), 0);
	assert_int_equal(smmu_vcpu_set_cr3(b, smmu_gas_cr3(gb)), 0);
	assert_int_equal(smmu_gas_map(ga, 0x1000, 5000, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
	assert_int_equal(smmu_vcpu_fault(a, 0x1000, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
	uint64_t worst = 0;
	for (int k = 0; k < 600; k++) {
		uint64_t va = (1ull << 39) + ((uint64_t)k << 30);
		assert_int_equal(smmu_gas_map(gb, va, 6000 + (uint64_t)k, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
		assert_int_equal(smmu_vcpu_fault(b, va, SMMU_ACC_WRITE, NULL), SMMU_FAULT_MAPPED);
		struct smmu_vm_counters c;
		assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
		if (c.n_used_mmu_pages > worst)
			worst = c.n_used_mmu_pages;
	}
	printf("budget 64: up to %llu pages in use while vCPU A sat on its zapped root\n", (unsigned long long)worst);
	assert_int_equal(smmu_vcpu_enter(a), 0);
	tl_assert_audit_clean(vm);
	smmu_vcpu_destroy(a);
	smmu_vcpu_destroy(b);
	smmu_gas_destroy(ga);
	smmu_gas_destroy(gb);
	smmu_vm_destroy(vm);
	/* A fault builds at most 4 pages after make_mmu_pages_available() made room. */
	assert_true(worst <= 64 + 4);
}

int main(void)
{
	/* Audit-every-operation assumes no vCPU runs concurrently (audit.h): not in this file. */
	unsetenv("SMMU_AUDIT");
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* SMMU_TEST_FILTER=pattern runs only the matching tests (cmocka's glob). */
	const char *filter = getenv("SMMU_TEST_FILTER");
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_zapped_in_use),
		cmocka_unit_test(test_root_zapped_in_use_threaded),
		cmocka_unit_test(test_handoff_during_fast_zap),
		cmocka_unit_test(test_forward_progress_contrast),
		cmocka_unit_test(test_stress_all_strategies),
		cmocka_unit_test(test_stress_drain_variants),
		cmocka_unit_test(test_access_vs_slot_delete),
		cmocka_unit_test(test_reclaim_passes_pinned_root),
		cmocka_unit_test(test_measure_floor_vs_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
