/*
 * The outside project's program: a shadow-mode guest faulting one page, then the audit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include <shadowmmu/shadowmmu.h>

int main(void)
{
	smmu_vm *vm;
	smmu_gas *gas;
	smmu_vcpu *vcpu;
	struct smmu_fault_info fi;

	if (smmu_vm_create(NULL, &vm) < 0 || smmu_memslot_create(vm, 0, 0, 100, 0) < 0 ||
	    smmu_gas_create(vm, 10, 8, &gas) < 0 ||
	    smmu_gas_map(gas, 0x400000, 50, SMMU_LEVEL_4K, SMMU_PROT_WRITE) < 0 ||
	    smmu_vcpu_create(vm, &vcpu) < 0 || smmu_vcpu_set_cr3(vcpu, smmu_gas_cr3(gas)) < 0 ||
	    smmu_vcpu_fault(vcpu, 0x400000, SMMU_ACC_WRITE, &fi) != SMMU_FAULT_MAPPED) {
		fprintf(stderr, "consume-subproject: setup failed\n");
		return 1;
	}
	struct smmu_audit_report rep = { 0 };
	long bad = smmu_audit(vm, &rep);
	smmu_vcpu_destroy(vcpu);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(vm);
	if (bad != 0) {
		fprintf(stderr, "consume-subproject: audit: %ld\n", bad);
		return 1;
	}
	printf("consume-subproject: ok (gfn %llu, %u shadow pages built)\n",
	       (unsigned long long)fi.gfn, fi.pages_created);
	return 0;
}
