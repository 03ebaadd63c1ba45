/*
 * faultrate: single-thread page-fault throughput with 4 KiB pages, in direct mode and in
 * shadow mode, and the memory the model holds per mapped GiB against KVM's.
 *
 * Per mode and run: a fresh VM; shadow mode maps every page with smmu_gas_map first (direct mode
 * has nothing to map: the slot is the mapping); then only the faults are timed, one per 4 KiB
 * page in address order. Memory is sp_bytes + rmap_bytes after the faults, scaled to one mapped
 * GiB, beside KVM's figure: one 4 KiB table per 512 leaf sptes plus the upper levels, and KVM
 * 3.11's tables plus its own metadata (kvm_mmu_page headers, gfns arrays of indirect pages,
 * 8-byte rmap heads). Public API only.
 *
 * usage: faultrate [--quick] [--pages N] [--runs N]
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shadowmmu/shadowmmu.h>

#define KVM_SP_HEADER_BYTES 168u /* sizeof(struct kvm_mmu_page), 3.11 x86-64 */
#define GIB (1ull << 30)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "faultrate: %s failed: %s\n", what, strerror(-r));
		exit(1);
	}
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct result {
	double faults_per_s;
	uint64_t pages, shadow_pages, indirect, mem_bytes, descs;
	int max_level;
	uint64_t not_mapped;
};

/* Tables a 4-level tree needs to map @n consecutive 4 KiB pages from an aligned start. */
static uint64_t kvm_tables(uint64_t n)
{
	uint64_t t = 1; /* root */
	for (unsigned shift = 9; shift <= 27; shift += 9)
		t += (n + (1ull << shift) - 1) >> shift;
	return t;
}

static struct result run(enum smmu_mmu_mode mode, uint64_t n)
{
	struct result res;
	memset(&res, 0, sizeof(res));
	uint64_t pool = mode == SMMU_MODE_SHADOW ? kvm_tables(n) + 8 : 0;
	uint64_t slot_pages = (pool + n + 511) / 512 * 512;
	smmu_vm *vm;
	smmu_vcpu *vcpu;
	smmu_gas *gas = NULL;
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	cfg.max_mmu_pages = 4 * kvm_tables(n) + 1024;
	check(smmu_vm_create(&cfg, &vm), "smmu_vm_create");
	/* direct: dirty logging keeps every leaf at 4 KiB; shadow: the guest maps 4 KiB pages */
	check(smmu_memslot_create(vm, 0, 0, slot_pages,
				  mode == SMMU_MODE_DIRECT ? SMMU_MEM_LOG_DIRTY_PAGES : 0),
	      "smmu_memslot_create");
	check(smmu_vcpu_create(vm, &vcpu), "smmu_vcpu_create");
	const smmu_gva_t base = mode == SMMU_MODE_SHADOW ? 0x7f0000000000ull : 0;
	if (mode == SMMU_MODE_SHADOW) {
		check(smmu_gas_create(vm, 0, pool, &gas), "smmu_gas_create");
		for (uint64_t i = 0; i < n; i++)
			check(smmu_gas_map(gas, base + (i << 12), pool + i, SMMU_LEVEL_4K,
					   SMMU_PROT_WRITE | SMMU_PROT_USER), "smmu_gas_map");
		check(smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)), "smmu_vcpu_set_cr3");
	}
	struct smmu_fault_info info;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		int r = smmu_vcpu_fault(vcpu, base + (i << 12), SMMU_ACC_WRITE | SMMU_ACC_USER, &info);
		check(r, "smmu_vcpu_fault");
		if (r != SMMU_FAULT_MAPPED)
			res.not_mapped++;
		else if (info.level > res.max_level)
			res.max_level = info.level;
	}
	uint64_t dt = now_ns() - t0;
	struct smmu_vm_counters c;
	check(smmu_vm_get_counters(vm, &c), "smmu_vm_get_counters");
	res.faults_per_s = (double)n * 1e9 / (double)dt;
	res.pages = n;
	res.shadow_pages = c.n_used_mmu_pages;
	res.indirect = c.indirect_shadow_pages;
	res.mem_bytes = c.sp_bytes + c.rmap_bytes;
	res.descs = c.rmap_descs;
	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	return res;
}

int main(int argc, char **argv)
{
	uint64_t n = 262144; /* 1 GiB of 4 KiB pages */
	int runs = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			n = 32768;
			runs = 3;
		} else if (!strcmp(argv[i], "--pages") && i + 1 < argc) {
			n = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: faultrate [--quick] [--pages N] [--runs N]\n");
			return 2;
		}
	}
	if (n < 512 || runs < 1) {
		fprintf(stderr, "faultrate: --pages at least 512, --runs at least 1\n");
		return 2;
	}
	printf("faultrate (libshadowmmu %d.%d.%d), %ld cores: %" PRIu64 " faults of 4 KiB pages "
	       "(%.2f GiB) per run, median of %d runs\n\n", SMMU_VERSION_MAJOR, SMMU_VERSION_MINOR,
	       SMMU_VERSION_PATCH, sysconf(_SC_NPROCESSORS_ONLN), n, (double)(n << 12) / GIB, runs);
	static const enum smmu_mmu_mode modes[] = { SMMU_MODE_DIRECT, SMMU_MODE_SHADOW };
	static const char *const names[] = { "direct", "shadow" };
	double *fps = calloc((size_t)runs, sizeof(*fps));
	if (!fps)
		return 1;
	for (int m = 0; m < 2; m++) {
		struct result last;
		memset(&last, 0, sizeof(last));
		for (int r = 0; r < runs; r++) {
			last = run(modes[m], n);
			fps[r] = last.faults_per_s;
		}
		qsort(fps, (size_t)runs, sizeof(*fps), cmp_dbl);
		double per_gib = (double)GIB / (double)(n << 12);
		double mem = (double)last.mem_bytes * per_gib;
		double kvm_tables_b = (double)kvm_tables(n) * 4096.0 * per_gib;
		/* KVM 3.11 with its metadata: tables + headers + gfns (indirect) + rmap heads (8 bytes
		 * per gfn per level of the mapped range) + the descriptors the model holds. */
		double kvm_meta = ((double)last.shadow_pages * (4096.0 + KVM_SP_HEADER_BYTES) +
				   (double)last.indirect * 4096.0 +
				   (double)n * 8.0 * (1.0 + 1.0 / 512 + 1.0 / 262144) +
				   (double)last.descs * 32.0) * per_gib;
		printf("%s mode:\n", names[m]);
		printf("  %.0f faults/s median (%.0f ns per fault; min %.0f, max %.0f faults/s)\n",
		       fps[runs / 2], 1e9 / fps[runs / 2], fps[0], fps[runs - 1]);
		printf("  %" PRIu64 " shadow pages (%" PRIu64 " indirect), largest leaf level %d%s\n",
		       last.shadow_pages, last.indirect, last.max_level,
		       last.not_mapped ? ", SOME FAULTS DID NOT MAP" : "");
		printf("  memory per mapped GiB: %.2f MiB (sp_bytes + rmap_bytes); KVM tables alone "
		       "%.2f MiB (%.2fx); KVM 3.11 tables + metadata %.2f MiB (%.3fx)\n",
		       mem / 1048576.0, kvm_tables_b / 1048576.0, mem / kvm_tables_b,
		       kvm_meta / 1048576.0, mem / kvm_meta);
	}
	free(fps);
	return 0;
}
