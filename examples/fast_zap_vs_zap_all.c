/*
 * fast_zap_vs_zap_all — the two ways to zap every shadow page, and what a vCPU feels meanwhile.
 *
 * A shadow-mode guest with a few thousand guest page tables is faulted in (one shadow page per
 * table). It is zapped once with zap_all holding mmu_lock throughout (Linux before 3.11), then,
 * repopulated, with the fast zap (Linux 3.11: bump mmu_valid_gen, request reloads, drain the
 * obsolete pages in batches with lock breaks). During each zap a second vCPU thread keeps
 * faulting, so it waits for mmu_lock: its wait times, the zapper's hold times, the lock breaks and
 * hand-offs are printed side by side, with the floor (reading and freeing every page once) as the
 * yardstick. The audit must be clean after each zap; the program exits 1 otherwise.
 *
 * With the build option lock_stats=false the lock figures read zero.
 *
 * SPDX-License-Identifier: MIT
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shadowmmu/shadowmmu.h>

#define N_TABLES 3072        /* guest page tables (each maps 2 MiB): one shadow page each */
#define PER_TABLE 2          /* 4 KiB pages mapped per table */
#define POOL_GFN 0           /* page-table frames: gfns 0..4095, CR3 = gfn 0 */
#define POOL_PAGES 4096
#define DATA_GFN 4096        /* data frames: gfns 4096.. */
#define SLOT_PAGES (DATA_GFN + N_TABLES * PER_TABLE)

#define CHECK(call)                                                                  \
	do {                                                                         \
		long r_ = (long)(call);                                              \
		if (r_ < 0) {                                                        \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, \
				#call, strerror((int)-r_));                          \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

/* The i-th mapped page: table i / PER_TABLE covers gvas [t * 2 MiB, (t + 1) * 2 MiB). */
static smmu_gva_t page_gva(uint64_t i)
{
	return (i / PER_TABLE) * (2ull << 20) + (i % PER_TABLE) * SMMU_PAGE_SIZE;
}

/* Fault every mapped page in through @vcpu. */
static void populate(smmu_vcpu *vcpu)
{
	for (uint64_t i = 0; i < (uint64_t)N_TABLES * PER_TABLE; i++) {
		struct smmu_fault_info fi;
		CHECK(smmu_vcpu_fault(vcpu, page_gva(i), SMMU_ACC_WRITE, &fi));
		if (fi.outcome != SMMU_FAULT_MAPPED && fi.outcome != SMMU_FAULT_RETRY) {
			fprintf(stderr, "fault at %#llx: outcome %d\n",
				(unsigned long long)page_gva(i), fi.outcome);
			exit(1);
		}
	}
}

/* The contending vCPU: faults (reads) page after page until told to stop. */
struct faulter {
	smmu_vcpu *vcpu;
	atomic_bool stop;
	atomic_ulong faults;
	atomic_int error;  /* the first failure, 0 for none */
	atomic_bool done;  /* the thread has returned */
};

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	uint64_t i = 0;

	while (!atomic_load(&f->stop)) {
		int r = smmu_vcpu_fault(f->vcpu, page_gva(i), SMMU_ACC_READ, NULL);
		if (r < 0) {
			atomic_store(&f->error, r);
			break;
		}
		atomic_fetch_add(&f->faults, 1);
		i = (i + 7) % ((uint64_t)N_TABLES * PER_TABLE);
	}
	atomic_store(&f->done, true);
	return NULL;
}

/* What one zap cost, read after it. */
struct result {
	const char *name;
	struct smmu_zap_report rep;
	struct smmu_site_stats zapper; /* the zap's own site */
	struct smmu_site_stats fault;  /* the vCPUs' faults */
	struct smmu_floor floor;
	uint64_t pages_before;
};

enum which { ZAP_ALL_HOLD, FAST_ZAP };

static struct result zap_with_a_vcpu_faulting(smmu_vm *vm, smmu_vcpu *other, enum which w)
{
	struct result res = { .name = w == ZAP_ALL_HOLD ? "zap_all (hold)" : "fast zap" };
	struct smmu_vm_counters c;

	CHECK(smmu_vm_get_counters(vm, &c));
	res.pages_before = c.n_used_mmu_pages;
	CHECK(smmu_measure_floor(vm, &res.floor));
	CHECK(smmu_stats_reset(vm)); /* quiescent: no other thread runs yet */

	struct faulter f = { .vcpu = other };
	atomic_init(&f.stop, false);
	atomic_init(&f.faults, 0);
	atomic_init(&f.error, 0);
	atomic_init(&f.done, false);
	pthread_t t;
	if (pthread_create(&t, NULL, faulter_main, &f) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		exit(1);
	}
	while (atomic_load(&f.faults) < 100 && !atomic_load(&f.done)) /* let it get going */
		;

	if (w == ZAP_ALL_HOLD)
		CHECK(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &res.rep));
	else
		CHECK(smmu_fast_zap(vm, &res.rep));

	atomic_store(&f.stop, true);
	pthread_join(t, NULL);
	CHECK(atomic_load(&f.error));

	enum smmu_site site = w == ZAP_ALL_HOLD ? SMMU_SITE_ZAP_ALL : SMMU_SITE_FAST_ZAP;
	CHECK(smmu_stats_get(vm, site, &res.zapper));
	CHECK(smmu_stats_get(vm, SMMU_SITE_FAULT, &res.fault));
	return res;
}

/* The audit after a zap: every invariant must hold. */
static void audit_clean(smmu_vm *vm, const char *after)
{
	struct smmu_violation v[16];
	struct smmu_audit_report rep = { .v = v, .cap = 16 };
	long bad = smmu_audit(vm, &rep);

	CHECK(bad);
	if (bad > 0) {
		printf("audit after %s: %ld violation(s)\n", after, bad);
		smmu_audit_print(stdout, &rep);
		exit(1);
	}
	printf("audit after %s: clean (%llu pages, %llu sptes checked)\n", after,
	       (unsigned long long)rep.pages_checked, (unsigned long long)rep.sptes_checked);
}

/* Nanoseconds as a short human string, into @buf. */
static const char *ns(char *buf, uint64_t v)
{
	if (v < 10000)
		snprintf(buf, 16, "%llu ns", (unsigned long long)v);
	else if (v < 10000000)
		snprintf(buf, 16, "%.1f us", (double)v / 1e3);
	else
		snprintf(buf, 16, "%.1f ms", (double)v / 1e6);
	return buf;
}

static void row3(const char *label, const struct smmu_hist_summary *a,
		 const struct smmu_hist_summary *b)
{
	char x[3][16], y[3][16];
	printf("  %-26s %9s %9s %9s | %9s %9s %9s\n", label, ns(x[0], a->p50), ns(x[1], a->p99),
	       ns(x[2], a->max), ns(y[0], b->p50), ns(y[1], b->p99), ns(y[2], b->max));
}

static void print_side_by_side(const struct result *a, const struct result *b)
{
	char x[16], y[16];

	printf("\n  %-26s %29s | %29s\n", "", a->name, b->name);
	printf("  %-26s %29llu | %29llu\n", "shadow pages before",
	       (unsigned long long)a->pages_before, (unsigned long long)b->pages_before);
	printf("  %-26s %29llu | %29llu\n", "pages zapped",
	       (unsigned long long)a->rep.pages_zapped, (unsigned long long)b->rep.pages_zapped);
	printf("  %-26s %29s | %29s\n", "wall time", ns(x, a->rep.total_ns), ns(y, b->rep.total_ns));
	printf("  %-26s %29.2f | %29.2f\n", "wall time / floor",
	       a->floor.total_ns ? (double)a->rep.total_ns / (double)a->floor.total_ns : 0.0,
	       b->floor.total_ns ? (double)b->rep.total_ns / (double)b->floor.total_ns : 0.0);
	printf("  %-26s %29s | %29s\n", "floor (read + free)", ns(x, a->floor.total_ns),
	       ns(y, b->floor.total_ns));
	printf("  %-26s %9s %9s %9s | %9s %9s %9s\n", "", "p50", "p99", "max", "p50", "p99", "max");
	row3("zapper: hold", &a->zapper.hold, &b->zapper.hold);
	row3("zapper: wait", &a->zapper.wait, &b->zapper.wait);
	row3("vCPU faults: wait", &a->fault.wait, &b->fault.wait);
	printf("  %-26s %29llu | %29llu\n", "zapper: lock holds",
	       (unsigned long long)a->zapper.hold.count, (unsigned long long)b->zapper.hold.count);
	printf("  %-26s %13llu / %-13llu | %13llu / %-13llu\n", "lock breaks / handoffs",
	       (unsigned long long)a->zapper.breaks, (unsigned long long)a->zapper.handoffs,
	       (unsigned long long)b->zapper.breaks, (unsigned long long)b->zapper.handoffs);
	printf("  %-26s %29llu | %29llu\n", "zapper: remote TLB flushes",
	       (unsigned long long)a->zapper.remote_flushes, (unsigned long long)b->zapper.remote_flushes);
	printf("  %-26s %29llu | %29llu\n", "vCPU faults during run",
	       (unsigned long long)a->fault.wait.count, (unsigned long long)b->fault.wait.count);
}

int main(void)
{
	struct smmu_vm_config cfg;
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *vcpu, *other;

	/* Shadow mode; a page budget large enough that nothing is recycled while populating. */
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.max_mmu_pages = 4 * N_TABLES;
	CHECK(smmu_vm_create(&cfg, &vm));
	CHECK(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0));

	/* N_TABLES page tables, each mapping PER_TABLE pages to data frames. */
	CHECK(smmu_gas_create(vm, POOL_GFN, POOL_PAGES, &gas));
	for (uint64_t i = 0; i < (uint64_t)N_TABLES * PER_TABLE; i++)
		CHECK(smmu_gas_map(gas, page_gva(i), DATA_GFN + i, SMMU_LEVEL_4K, SMMU_PROT_WRITE));

	CHECK(smmu_vcpu_create(vm, &vcpu));
	CHECK(smmu_vcpu_create(vm, &other));
	CHECK(smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)));
	CHECK(smmu_vcpu_set_cr3(other, smmu_gas_cr3(gas)));

	populate(vcpu);
	audit_clean(vm, "populating");
	struct result hold = zap_with_a_vcpu_faulting(vm, other, ZAP_ALL_HOLD);
	CHECK(smmu_vcpu_enter(vcpu));
	audit_clean(vm, "zap_all (hold)");

	populate(vcpu);
	struct result fast = zap_with_a_vcpu_faulting(vm, other, FAST_ZAP);
	CHECK(smmu_vcpu_enter(vcpu));
	audit_clean(vm, "fast zap");

	print_side_by_side(&hold, &fast);

	smmu_vcpu_destroy(other);
	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	return 0;
}
