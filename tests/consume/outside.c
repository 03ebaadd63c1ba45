/*
 * A program from outside the project, built against an installed libshadowmmu with
 * `cc outside.c $(pkg-config --cflags --libs shadowmmu)`: create a VM, a slot and a vCPU, fault,
 * inspect (inspect.h), audit, destroy. Exits 0 when all of it works. .ci/run builds and runs it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include <shadowmmu/shadowmmu.h>

#define CHECK(call)                                                                        \
	do {                                                                               \
		long r_ = (long)(call);                                                    \
		if (r_ < 0) {                                                              \
			fprintf(stderr, "outside: %s failed: %s\n", #call, strerror((int)-r_)); \
			return 1;                                                          \
		}                                                                          \
	} while (0)

int main(void)
{
	struct smmu_vm_config cfg;
	struct smmu_fault_info fi;
	smmu_vm *vm;
	smmu_vcpu *vcpu;
	uint64_t val = 0x5eed, got = 0;

	/* Direct (TDP-like) mode: faults are on guest physical addresses, no guest tables needed. */
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_DIRECT;
	CHECK(smmu_vm_create(&cfg, &vm));
	CHECK(smmu_memslot_create(vm, 0, 0, 1024, 0));
	CHECK(smmu_vcpu_create(vm, &vcpu));

	CHECK(smmu_vcpu_fault(vcpu, 0x5000, SMMU_ACC_WRITE, &fi));
	if (fi.outcome != SMMU_FAULT_MAPPED || fi.gfn != 5) {
		fprintf(stderr, "outside: fault: outcome %d gfn %llu\n", fi.outcome,
			(unsigned long long)fi.gfn);
		return 1;
	}
	CHECK(smmu_vcpu_write(vcpu, 0x5008, &val, sizeof(val)));
	CHECK(smmu_guest_read_u64(vm, 0x5008, &got));

	/* inspect.h: the slot's direct pages, gfn 5's one rmap entry (at the leaf's level: 2 MiB
	 * here), its lpage_info (the 2 MiB page holds no guest table; the 1 GiB page is cut by the
	 * slot's end) */
	uint64_t per_level[SMMU_NR_PAGE_SIZES];
	int32_t disallow[SMMU_NR_PAGE_SIZES - 1];
	long direct = smmu_inspect_slot_pages(vm, 0, SMMU_SP_DIRECT, NULL, 0);
	CHECK(direct);
	long rmaps = smmu_inspect_rmap_count(vm, 5, per_level);
	CHECK(rmaps);
	CHECK(smmu_inspect_lpage_disallow(vm, 5, disallow));
	if (direct < 3 || smmu_inspect_slot_pages(vm, 0, SMMU_SP_INDIRECT, NULL, 0) != 0 ||
	    rmaps != 1 || fi.level < 1 || fi.level > SMMU_NR_PAGE_SIZES ||
	    per_level[fi.level - 1] != 1 || disallow[0] != 0 ||
	    disallow[1] != 1) {
		fprintf(stderr, "outside: inspect: %ld direct pages, rmap %llu/%llu/%llu, lpage %d/%d\n",
			direct, (unsigned long long)per_level[0], (unsigned long long)per_level[1],
			(unsigned long long)per_level[2], (int)disallow[0], (int)disallow[1]);
		return 1;
	}

	struct smmu_audit_report rep = { 0 };
	long bad = smmu_audit(vm, &rep);
	CHECK(bad);
	if (bad != 0 || got != val) {
		fprintf(stderr, "outside: audit %ld violation(s), read back %#llx\n", bad,
			(unsigned long long)got);
		return 1;
	}

	smmu_vcpu_destroy(vcpu);
	smmu_vm_destroy(vm);
	printf("outside: ok, libshadowmmu %d.%d.%d\n", SMMU_VERSION_MAJOR, SMMU_VERSION_MINOR,
	       SMMU_VERSION_PATCH);
	return 0;
}
