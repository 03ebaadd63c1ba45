/*
 * lockcost: what mmu_lock and the model's objects cost by themselves.
 *
 *  1. uncontended smmu_mmu_lock + smmu_mmu_unlock (with its per-site timing), median of several
 *     runs of many pairs, in ns per pair; a bare pthread spinlock pair beside it;
 *  2. bytes per shadow page (sp_bytes / n_used_mmu_pages), direct and indirect;
 *  3. bytes per rmap entry (rmap_bytes / leaf sptes) after faulting a known number of pages,
 *     with one spte per gfn and with several aliases per gfn (pte_list_desc chains);
 * each beside KVM 3.11's figure for the same objects. Public API only.
 *
 * usage: lockcost [--quick] [--runs N] [--iters N]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shadowmmu/shadowmmu.h>

#define KVM_SP_HEADER_BYTES 168u    /* sizeof(struct kvm_mmu_page), 3.11 x86-64 */
#define KVM_PTE_LIST_DESC_BYTES 32u /* 3 sptes + next */
#define KVM_PTE_LIST_EXT 3u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "lockcost: %s failed: %s\n", what, strerror(-r));
		exit(1);
	}
	return r;
}

/* ---- 1. the lock ------------------------------------------------------------------------------ */

static void lock_cost(int runs, uint64_t iters)
{
	smmu_vm *vm;
	check(smmu_vm_create(NULL, &vm), "smmu_vm_create");
	double *ns = calloc((size_t)runs, sizeof(*ns));
	double *bare = calloc((size_t)runs, sizeof(*bare));
	if (!ns || !bare)
		exit(1);
	pthread_spinlock_t spin;
	pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);

	for (uint64_t i = 0; i < iters / 10; i++) { /* warm up */
		smmu_mmu_lock(vm, SMMU_SITE_USER0);
		smmu_mmu_unlock(vm);
	}
	for (int r = 0; r < runs; r++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			smmu_mmu_lock(vm, SMMU_SITE_USER0);
			smmu_mmu_unlock(vm);
		}
		ns[r] = (double)(now_ns() - t0) / (double)iters;

		t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			pthread_spin_lock(&spin);
			__asm__ __volatile__("" ::: "memory");
			pthread_spin_unlock(&spin);
		}
		bare[r] = (double)(now_ns() - t0) / (double)iters;
	}
	struct smmu_site_stats st;
	check(smmu_stats_get(vm, SMMU_SITE_USER0, &st), "smmu_stats_get");
	qsort(ns, (size_t)runs, sizeof(*ns), cmp_dbl);
	qsort(bare, (size_t)runs, sizeof(*bare), cmp_dbl);
	printf("uncontended mmu_lock (smmu_mmu_lock + smmu_mmu_unlock, site user0), %d runs x %" PRIu64
	       " pairs:\n", runs, iters);
	printf("  median %.1f ns per pair (min %.1f, max %.1f)\n", ns[runs / 2], ns[0], ns[runs - 1]);
	printf("  bare pthread_spin_lock + unlock: median %.1f ns per pair (min %.1f, max %.1f)\n",
	       bare[runs / 2], bare[0], bare[runs - 1]);
	printf("  timing and bookkeeping add %.1f ns per pair (%.1fx the bare lock)\n",
	       ns[runs / 2] - bare[runs / 2], bare[runs / 2] > 0 ? ns[runs / 2] / bare[runs / 2] : 0);
	printf("  recorded holds of the empty section: %" PRIu64 " holds, p50 %" PRIu64 " ns, p99 %"
	       PRIu64 " ns, max %" PRIu64 " ns\n", st.hold.count, st.hold.p50, st.hold.p99,
	       st.hold.max);
	printf("  recorded waits (uncontended): p50 %" PRIu64 " ns, p99 %" PRIu64 " ns\n",
	       st.wait.p50, st.wait.p99);
	pthread_spin_destroy(&spin);
	free(ns);
	free(bare);
	smmu_vm_destroy(vm);
}

/* ---- 2 and 3. bytes per object ------------------------------------------------------------------ */

/* KVM's rmap heads for a slot: 8 bytes per gfn per level. */
static uint64_t kvm_heads(uint64_t base, uint64_t npages)
{
	uint64_t b = 0;
	for (unsigned l = 0; l < 3; l++)
		b += (((base + npages - 1) >> (9 * l)) - (base >> (9 * l)) + 1) * 8;
	return b;
}

static void direct_bytes(uint64_t npages)
{
	smmu_vm *vm;
	smmu_vcpu *vcpu;
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_DIRECT;
	cfg.max_mmu_pages = npages;
	check(smmu_vm_create(&cfg, &vm), "smmu_vm_create");
	/* dirty logging: every leaf at 4 KiB */
	check(smmu_memslot_create(vm, 0, 0, npages, SMMU_MEM_LOG_DIRTY_PAGES), "smmu_memslot_create");
	check(smmu_vcpu_create(vm, &vcpu), "smmu_vcpu_create");
	struct smmu_vm_counters c0, c;
	check(smmu_vm_get_counters(vm, &c0), "smmu_vm_get_counters");
	for (uint64_t g = 0; g < npages; g++)
		check(smmu_vcpu_fault(vcpu, g << 12, SMMU_ACC_WRITE | SMMU_ACC_USER, NULL), "fault");
	check(smmu_vm_get_counters(vm, &c), "smmu_vm_get_counters");
	uint64_t leaves = c.faults_fixed - c0.faults_fixed;
	uint64_t kvm_rmap = kvm_heads(0, npages) + c.rmap_descs * KVM_PTE_LIST_DESC_BYTES;
	printf("direct mode, %" PRIu64 " gfns faulted (4 KiB leaves), %" PRIu64 " shadow pages:\n",
	       npages, c.n_used_mmu_pages);
	printf("  bytes per shadow page: %.1f (KVM 3.11: %u = 4096 table + %u kvm_mmu_page)\n",
	       (double)c.sp_bytes / (double)c.n_used_mmu_pages, 4096 + KVM_SP_HEADER_BYTES,
	       KVM_SP_HEADER_BYTES);
	printf("  bytes per rmap entry, 1 spte per gfn: %.2f (rmap_bytes %" PRIu64 " / %" PRIu64
	       " leaf sptes; KVM: %.2f)\n", (double)c.rmap_bytes / (double)leaves, c.rmap_bytes, leaves,
	       (double)kvm_rmap / (double)leaves);
	printf("  lpage_info bytes: %" PRIu64 "; pte_list_desc live: %" PRIu64 "\n", c.lpage_bytes,
	       c.rmap_descs);
	smmu_vcpu_destroy(vcpu);
	smmu_vm_destroy(vm);
}

/* Shadow mode: @p ngfn data frames, each mapped at @p alias guest virtual addresses. */
static void shadow_bytes(uint64_t ngfn, unsigned alias)
{
	uint64_t nmap = ngfn * alias;
	uint64_t pool = nmap / 512 + nmap / (512 * 512) + 16;
	uint64_t npages = (pool + ngfn + 511) / 512 * 512;
	smmu_vm *vm;
	smmu_vcpu *vcpu;
	smmu_gas *gas;
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.max_mmu_pages = 4 * pool + 1024;
	check(smmu_vm_create(&cfg, &vm), "smmu_vm_create");
	check(smmu_memslot_create(vm, 0, 0, npages, 0), "smmu_memslot_create");
	check(smmu_gas_create(vm, 0, pool, &gas), "smmu_gas_create");
	check(smmu_vcpu_create(vm, &vcpu), "smmu_vcpu_create");
	const smmu_gva_t base = 0x7f0000000000ull;
	/* alias k of gfn g sits in the k-th copy of a dense range */
	for (unsigned k = 0; k < alias; k++)
		for (uint64_t g = 0; g < ngfn; g++)
			check(smmu_gas_map(gas, base + ((k * ngfn + g) << 12), pool + g, SMMU_LEVEL_4K,
					   SMMU_PROT_WRITE | SMMU_PROT_USER), "smmu_gas_map");
	check(smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)), "smmu_vcpu_set_cr3");
	struct smmu_vm_counters c0, c;
	check(smmu_vm_get_counters(vm, &c0), "smmu_vm_get_counters");
	for (uint64_t i = 0; i < nmap; i++)
		check(smmu_vcpu_fault(vcpu, base + (i << 12), SMMU_ACC_WRITE | SMMU_ACC_USER, NULL),
		      "fault");
	check(smmu_vm_get_counters(vm, &c), "smmu_vm_get_counters");
	uint64_t leaves = c.faults_fixed - c0.faults_fixed;
	uint64_t kvm_rmap = kvm_heads(0, npages) + c.rmap_descs * KVM_PTE_LIST_DESC_BYTES;
	printf("shadow mode, %" PRIu64 " gfns x %u alias%s = %" PRIu64 " leaf sptes, %" PRIu64
	       " shadow pages (%" PRIu64 " indirect):\n", ngfn, alias, alias == 1 ? "" : "es", leaves,
	       c.n_used_mmu_pages, c.indirect_shadow_pages);
	if (alias == 1)
		printf("  bytes per shadow page: %.1f (KVM 3.11: %u = 4096 table + 4096 gfns + %u "
		       "kvm_mmu_page)\n", (double)c.sp_bytes / (double)c.n_used_mmu_pages,
		       8192 + KVM_SP_HEADER_BYTES, KVM_SP_HEADER_BYTES);
	unsigned kvm_descs = alias > 1 ? (alias + KVM_PTE_LIST_EXT - 1) / KVM_PTE_LIST_EXT : 0;
	printf("  bytes per rmap entry, %u spte%s per gfn: %.2f (rmap_bytes %" PRIu64 " / %" PRIu64
	       " leaf sptes, %" PRIu64 " pte_list_desc; KVM with the same descriptors: %.2f; KVM ideal "
	       "for the mapped gfns alone: %.2f)\n",
	       alias, alias == 1 ? "" : "s", (double)c.rmap_bytes / (double)leaves, c.rmap_bytes,
	       leaves, c.rmap_descs, (double)kvm_rmap / (double)leaves,
	       (8.0 + kvm_descs * (double)KVM_PTE_LIST_DESC_BYTES) / alias);
	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
}

int main(int argc, char **argv)
{
	int runs = 11;
	uint64_t iters = 2000000, pages = 262144;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			runs = 5;
			iters = 200000;
			pages = 16384;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			iters = strtoull(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: lockcost [--quick] [--runs N] [--iters N]\n");
			return 2;
		}
	}
	if (runs < 1 || iters < 1) {
		fprintf(stderr, "lockcost: --runs and --iters must be positive\n");
		return 2;
	}
	printf("lockcost (libshadowmmu %d.%d.%d), %ld cores\n\n", SMMU_VERSION_MAJOR,
	       SMMU_VERSION_MINOR, SMMU_VERSION_PATCH, sysconf(_SC_NPROCESSORS_ONLN));
	lock_cost(runs, iters);
	printf("\n");
	direct_bytes(pages);
	printf("\n");
	shadow_bytes(pages, 1);
	shadow_bytes(pages / 8, 8);
	return 0;
}
