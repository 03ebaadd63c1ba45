/*
 * The fuzzer's VM pool: a VM outlives the input that used it, so that the next input with the
 * same configuration byte skips smmu_vm_create (a table-pool chunk of 2 MiB faulted in page by
 * page, the lock's histograms, the hash) and smmu_vm_destroy. Between inputs a VM is emptied
 * through the API (zap_all, every slot deleted) and then put back exactly as smmu_vm_create
 * left it: the harness checks that nothing is left (no page, slot, vCPU or shadowed count), and
 * restores the scalars an input may have moved (generations, page budget, configuration,
 * counters) from a copy taken when the VM was new. So an input runs the same on a pooled VM as
 * on a fresh one, and fuzz_replay, which always takes a fresh VM, reproduces what the fuzzer
 * found. What differs is only which addresses the recycled tables and headers have.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"

#define POOL_SIZE 256 /* one per configuration byte */

/* What smmu_vm_create set and an input may change, besides the MMU's contents. */
#define FRESH_FIELDS(X) \
	X(struct smmu_vm_config, cfg) X(uint64_t, mmu_valid_gen) X(uint64_t, zap_gen) X(uint64_t, lpage_reset_gen) \
	X(uint64_t, n_max_mmu_pages) X(bool, n_max_set_by_user) X(struct smmu_vm_counters, stat) \
	X(uint64_t, unaccount_no_slot) X(struct smmu_mmio_counters, mmio_stat) X(uint64_t, mmio_gen_floor) \
	X(uint64_t, tlbs_dirty)
#define FRESH_ATOMICS(X) X(remote_flushes) X(reload_requests)

struct fresh {
#define DECLARE(type, name) type name;
#define DECLARE_ATOMIC(name) uint64_t name;
	FRESH_FIELDS(DECLARE)
	FRESH_ATOMICS(DECLARE_ATOMIC)
	/* The memslots' generation: slot updates move it, and smmu_vm_set_memslots_generation sets
	 * it; left as the last input left it, a pooled VM would reach an MMIO-generation wrap where a
	 * fresh one (fuzz_replay) does not. */
	uint64_t slots_generation;
};

static struct {
	smmu_vm *vm;
	uint8_t key;
	struct fresh fresh;
} pool[POOL_SIZE];
static bool pool_on;

void fuzz_pool_enable(bool on) { pool_on = on; }

static unsigned pool_index(uint8_t key) { return key % POOL_SIZE; }

static void save(const struct smmu_vm *vm, struct fresh *f)
{
#define SAVE(type, name) f->name = vm->name;
#define SAVE_ATOMIC(name) f->name = atomic_load(&((struct smmu_vm *)vm)->name);
	FRESH_FIELDS(SAVE)
	FRESH_ATOMICS(SAVE_ATOMIC)
	f->slots_generation = atomic_load(&((struct smmu_vm *)vm)->slots.generation);
}

static void restore(struct smmu_vm *vm, const struct fresh *f)
{
#define RESTORE(type, name) vm->name = f->name;
#define RESTORE_ATOMIC(name) atomic_store(&vm->name, f->name);
	FRESH_FIELDS(RESTORE)
	FRESH_ATOMICS(RESTORE_ATOMIC)
	atomic_store(&vm->slots.generation, f->slots_generation);
	vm->mmu_lock.test_break_every = 0;
	vm->mmu_lock.test_break_count = 0;
}

/* What is left after emptying, or NULL when the VM is as empty as a new one. */
static const char *leftover(const struct smmu_vm *vm)
{
	if (!list_empty(&vm->active_mmu_pages) || vm->n_used_mmu_pages)
		return "shadow pages after zap_all with no vCPU";
	if (!list_empty(&vm->zapped_obsolete_pages))
		return "zapped obsolete pages not freed";
	if (vm->mmio_sptes)
		return "MMIO sptes counted after zap_all";
	if (atomic_load(&vm->indirect_shadow_pages))
		return "indirect_shadow_pages not back to 0";
	if (vm->slots.n || vm->slots.total_pages)
		return "a memslot after deleting every slot";
	if (vm->nr_vcpus)
		return "a vCPU after destroying every vCPU";
	for (uint64_t b = 0; b <= vm->hash_mask; b++)
		if (vm->mmu_page_hash[b].first)
			return "a hashed page after zap_all";
	return NULL;
}

void fuzz_set_forced_breaks(smmu_vm *vm, uint32_t every)
{
	vm->mmu_lock.test_break_every = every;
	vm->mmu_lock.test_break_count = 0;
}

uint64_t fuzz_lock_breaks(const smmu_vm *vm)
{
	uint64_t n = 0;
	for (int i = 0; i < SMMU_SITE_COUNT; i++)
		n += vm->mmu_lock.sites[i].breaks;
	return n;
}

smmu_vm *fuzz_pool_get(uint8_t key, const struct smmu_vm_config *cfg)
{
	smmu_vm *vm;
	if (!pool_on)
		return smmu_vm_create(cfg, &vm) == 0 ? vm : NULL;
	unsigned i = pool_index(key);
	if (pool[i].vm && pool[i].key == key) {
		vm = pool[i].vm;
		pool[i].vm = NULL;
		return vm;
	}
	if (smmu_vm_create(cfg, &vm) != 0)
		return NULL;
	smmu_vm_destroy(pool[i].vm); /* another configuration's */
	pool[i].vm = NULL;
	pool[i].key = key;
	save(vm, &pool[i].fresh);
	return vm;
}

void fuzz_pool_put(uint8_t key, smmu_vm *vm)
{
	unsigned i = pool_index(key);
	if (!pool_on || pool[i].key != key || pool[i].vm) {
		smmu_vm_destroy(vm);
		return;
	}
	/* Caller destroyed every vCPU and address space: empty the MMU the way a user would. */
	vm->mmu_lock.test_break_every = 0;
	struct smmu_zap_report rep;
	smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &rep);
	smmu_vm_set_flush_strategy(vm, SMMU_FLUSH_ZAP_ALL);
	for (int id = 0; id < SMMU_MAX_MEMSLOTS; id++)
		if (vm->slots.by_id[id])
			smmu_memslot_delete(vm, id);
	const char *why = leftover(vm);
	if (why) {
		fprintf(stderr, "fuzz_ops: emptying the VM for the next input left %s\n", why);
		abort();
	}
	restore(vm, &pool[i].fresh);
	pool[i].vm = vm;
}
