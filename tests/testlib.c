/*
 * Helpers shared by the tests.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

smmu_vm *tl_vm_cfg(const struct smmu_vm_config *cfg)
{
	smmu_vm *vm = NULL;
	int r = smmu_vm_create(cfg, &vm);
	assert_int_equal(r, 0);
	assert_non_null(vm);
	return vm;
}

smmu_vm *tl_vm(enum smmu_mmu_mode mode)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	return tl_vm_cfg(&cfg);
}

void tl_assert_audit_clean_(smmu_vm *vm, const char *file, int line)
{
	struct smmu_violation v[16];
	struct smmu_audit_report r = { .v = v, .cap = 16 };
	long n = smmu_audit(vm, &r);
	if (n != 0) {
		fprintf(stdout, "audit at %s:%d found %ld violations:\n", file, line, n);
		smmu_audit_print(stdout, &r);
		_fail(file, line);
	}
}

long tl_audit_count(smmu_vm *vm, enum smmu_invariant inv, struct smmu_violation *first)
{
	struct smmu_violation v[64];
	struct smmu_audit_report r = { .v = v, .cap = 64 };
	long n = smmu_audit(vm, &r);
	assert_true(n >= 0);
	if (first) {
		for (size_t i = 0; i < r.stored; i++) {
			if (v[i].inv == inv) {
				*first = v[i];
				break;
			}
		}
	}
	return (long)r.per_inv[inv];
}

long tl_audit_total(smmu_vm *vm)
{
	struct smmu_audit_report r = { 0 };
	long n = smmu_audit(vm, &r);
	assert_true(n >= 0);
	return n;
}

void tl_guest_init(struct tl_guest *g, enum smmu_mmu_mode mode, uint64_t npages, smmu_gfn_t pool_gfn,
		   uint64_t pool_pages)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	tl_guest_init_cfg(g, &cfg, npages, pool_gfn, pool_pages);
}

void tl_guest_init_cfg(struct tl_guest *g, const struct smmu_vm_config *cfg, uint64_t npages, smmu_gfn_t pool_gfn,
		       uint64_t pool_pages)
{
	g->vm = tl_vm_cfg(cfg);
	assert_int_equal(smmu_memslot_create(g->vm, 0, 0, npages, 0), 0);
	g->gas = NULL;
	if (cfg->mode == SMMU_MODE_SHADOW) {
		assert_int_equal(smmu_gas_create(g->vm, pool_gfn, pool_pages, &g->gas), 0);
	}
	assert_int_equal(smmu_vcpu_create(g->vm, &g->vcpu), 0);
	if (g->gas)
		assert_int_equal(smmu_vcpu_set_cr3(g->vcpu, smmu_gas_cr3(g->gas)), 0);
}

struct smmu_vm_counters tl_counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

smmu_sp *tl_find_sp(smmu_vm *vm, smmu_gfn_t gfn, int level)
{
	smmu_sp *found = NULL;
	smmu_mmu_lock(vm, SMMU_SITE_USER3);
	for (smmu_sp *sp = smmu_active_first(vm); sp && !found; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		assert_int_equal(smmu_sp_get_info(vm, sp, &i), 0);
		if (i.gfn == gfn && i.level == level && !i.direct && !i.invalid && !i.obsolete)
			found = sp;
	}
	smmu_mmu_unlock(vm);
	return found;
}

void tl_guest_fini(struct tl_guest *g)
{
	smmu_vcpu_destroy(g->vcpu);
	smmu_gas_destroy(g->gas);
	smmu_vm_destroy(g->vm);
	g->vm = NULL;
}

uint64_t tl_mmu_unsync(smmu_vm *vm)
{
	uint64_t n = ~0ull;
	assert_int_equal(smmu_vm_get_mmu_unsync(vm, &n), 0);
	return n;
}

void tl_map_and_fault(struct tl_guest *g, smmu_gva_t base, smmu_gfn_t first_gfn, uint64_t n,
		      uint32_t access)
{
	for (uint64_t i = 0; i < n; i++) {
		smmu_gva_t addr;
		if (g->gas) {
			addr = base + i * SMMU_PAGE_SIZE;
			assert_int_equal(smmu_gas_map(g->gas, addr, first_gfn + i, SMMU_LEVEL_4K,
						      SMMU_PROT_WRITE | SMMU_PROT_USER), 0);
		} else {
			addr = (first_gfn + i) * SMMU_PAGE_SIZE;
		}
		struct smmu_fault_info fi;
		int r = smmu_vcpu_fault(g->vcpu, addr, access, &fi);
		assert_int_equal(r, SMMU_FAULT_MAPPED);
	}
}

void *tl_waiter_main(void *arg)
{
	struct tl_waiter *w = arg;
	while (atomic_load(&w->served) < w->want) {
		if (atomic_load(&w->tickets) == atomic_load(&w->served)) {
			sched_yield();
			continue;
		}
		smmu_mmu_lock(w->vm, SMMU_SITE_USER1);
		smmu_mmu_unlock(w->vm);
		atomic_fetch_add(&w->served, 1);
	}
	return NULL;
}

void tl_waiter_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	struct tl_waiter *w = ctx;
	if (ev != SMMU_EV_PAGE_ZAPPED || !pthread_equal(pthread_self(), w->zapper))
		return;
	/* A page's first zap only: a zapped root is zapped again when its vCPU drops it, in the
	 * vCPU's own request processing, which is no zap for a waiter to break into. */
	struct smmu_sp_info info;
	if (smmu_sp_get_info(vm, sp, &info) || info.invalid)
		return;
	if (w->events++ % w->every != w->phase || atomic_load(&w->tickets) >= w->want)
		return;
	atomic_fetch_add(&w->tickets, 1);
	while (!smmu_needbreak(vm))
		sched_yield();
}
