/*
 * A program from outside the project, built against an installed libshadowmmu with
 * `cc outside.c $(pkg-config --cflags --libs shadowmmu)`: create a VM, a slot and a vCPU, fault,
 * audit, destroy. Exits 0 when all of it works. .ci/run builds and runs it.
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
