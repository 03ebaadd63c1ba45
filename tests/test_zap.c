/*
 * zap_all in its three lock disciplines (HOLD, RESTART, GENERATION) on populated shadow and
 * direct VMs: what is left afterwards, what the report says, that translation faults rather than
 * reaching memory and that re-faulting works; and, with a second thread faulting new addresses
 * meanwhile, that the generation-bounded zap terminates and the round-limited restart zap
 * reports coherently. (The livelock itself is the concurrency tests' business.)
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

#define SLOT_PAGES 16384ull
#define DIRECT_SLOT_PAGES (1ull << 18) /* 1 GiB, lazily backed: 512 regions of 2 MiB */
#define REGION (2ull << 20) /* one guest last-level table per 2 MiB of gva */
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)

static void lock(smmu_vm *vm) { smmu_mmu_lock(vm, SMMU_SITE_USER0); }
static void unlock(smmu_vm *vm) { smmu_mmu_unlock(vm); }

/* A guest: its address space, its vCPU, and the addresses it maps (one per 2 MiB region). */
struct space {
	smmu_gas *gas;
	smmu_vcpu *vcpu;
	smmu_gva_t *addr;
	size_t n;
};

static smmu_vm *new_vm(enum smmu_mmu_mode mode)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	cfg.max_mmu_pages = 1ull << 20; /* no reclaim in the way */
	smmu_vm *vm = tl_vm_cfg(&cfg);
	/* Direct mode logs dirty pages so that every fault maps 4K and builds many pages. */
	if (mode == SMMU_MODE_DIRECT)
		assert_int_equal(smmu_memslot_create(vm, 0, 0, DIRECT_SLOT_PAGES, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	else
		assert_int_equal(smmu_memslot_create(vm, 0, 0, SLOT_PAGES, 0), 0);
	return vm;
}

/* Shadow: a guest with tables from @pool, mapping @n addresses from @gva_base, each in its own
 * 2 MiB region, onto frames from @data_gfn. Direct: @n gpas, each in its own 2 MiB region. */
static void space_init(smmu_vm *vm, struct space *s, smmu_gfn_t pool, smmu_gva_t gva_base, smmu_gfn_t data_gfn,
		       size_t n)
{
	struct smmu_vm_config cfg;
	assert_int_equal(smmu_vm_get_config(vm, &cfg), 0);
	s->n = n;
	s->addr = calloc(n, sizeof(*s->addr));
	assert_non_null(s->addr);
	s->gas = NULL;
	assert_int_equal(smmu_vcpu_create(vm, &s->vcpu), 0);
	if (cfg.mode == SMMU_MODE_SHADOW) {
		assert_int_equal(smmu_gas_create(vm, pool, n + 16, &s->gas), 0);
		assert_int_equal(smmu_vcpu_set_cr3(s->vcpu, smmu_gas_cr3(s->gas)), 0);
	}
	for (size_t i = 0; i < n; i++) {
		if (s->gas) {
			s->addr[i] = gva_base + i * REGION + (i % 5) * 0x1000;
			assert_int_equal(smmu_gas_map(s->gas, s->addr[i], data_gfn + i, SMMU_LEVEL_4K, RW_USER), 0);
		} else {
			assert_true(i < DIRECT_SLOT_PAGES / 512);
			s->addr[i] = (i * 512 + (i % 5)) << 12;
		}
	}
}

static void space_fini(struct space *s)
{
	smmu_vcpu_destroy(s->vcpu);
	smmu_gas_destroy(s->gas);
	free(s->addr);
}

static void fault_all(struct space *s)
{
	for (size_t i = 0; i < s->n; i++) {
		int r, tries = 0;
		do
			r = smmu_vcpu_fault(s->vcpu, s->addr[i], SMMU_ACC_WRITE, NULL);
		while (r == SMMU_FAULT_RETRY && ++tries < 4);
		assert_int_equal(r, SMMU_FAULT_MAPPED);
	}
}

/* Pages on the active list: all of them, and those that are zapped roots still in use. */
static void count_pages(smmu_vm *vm, uint64_t *all, uint64_t *pinned_invalid, uint64_t *other)
{
	*all = *pinned_invalid = *other = 0;
	lock(vm);
	for (smmu_sp *sp = smmu_active_first(vm); sp; sp = smmu_active_next(vm, sp)) {
		struct smmu_sp_info i;
		smmu_sp_get_info(vm, sp, &i);
		(*all)++;
		if (i.invalid && i.root_count > 0)
			(*pinned_invalid)++;
		else
			(*other)++;
	}
	unlock(vm);
}

static uint64_t n_used(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c.n_used_mmu_pages;
}

/* After a complete zap_all: only zapped roots in use remain; once the vCPU entered, nothing;
 * translation faults; re-faulting works. */
static void check_all_zapped(smmu_vm *vm, struct space *s)
{
	uint64_t all, pinned, other;
	count_pages(vm, &all, &pinned, &other);
	assert_int_equal(other, 0);
	assert_true(pinned <= 1);
	assert_int_equal(smmu_vcpu_enter(s->vcpu), 0);
	assert_int_equal(n_used(vm), 0);
	for (size_t i = 0; i < s->n; i++) {
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(s->vcpu, s->addr[i], 0, &t), -EFAULT);
	}
	tl_assert_audit_clean(vm);
	fault_all(s);
	for (size_t i = 0; i < s->n; i += 97) {
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(s->vcpu, s->addr[i], SMMU_ACC_WRITE, &t), 0);
	}
	tl_assert_audit_clean(vm);
}

static void zap_mode_on(enum smmu_mmu_mode mode, enum smmu_zap_mode zmode)
{
	smmu_vm *vm = new_vm(mode);
	struct space s;
	space_init(vm, &s, 16, 0x40000000ull, 8192, 300);
	fault_all(&s);
	uint64_t before = n_used(vm);
	assert_true(before >= 300);
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(s.vcpu, s.addr[1], &x, sizeof(x)), 0);

	struct smmu_zap_report rep;
	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(smmu_zap_all(vm, zmode, 0, &rep), 0);
	assert_true(rep.completed);
	/* Every page but the vCPU's root went to the invalid list; the root waits for its user. */
	assert_int_equal(rep.pages_zapped, before - 1);
	assert_true(rep.rounds >= 1);
	assert_int_equal(rep.rounds, 1 + rep.lock_breaks); /* nobody waited: no break */
	assert_int_equal(rep.lock_breaks, 0);
	assert_true(rep.remote_flushes >= 1);
	assert_int_equal(rep.sptes_dropped, 0);
	printf("%s zap_all %s: %llu pages zapped, %llu rounds\n", mode == SMMU_MODE_SHADOW ? "shadow" : "direct",
	       smmu_zap_mode_name(zmode), (unsigned long long)rep.pages_zapped, (unsigned long long)rep.rounds);
	/* Memory is not reached through a stale TLB entry either: the read faults again. */
	struct smmu_vcpu_counters c0, c1;
	assert_int_equal(smmu_vcpu_get_counters(s.vcpu, &c0), 0);
	check_all_zapped(vm, &s);
	assert_int_equal(smmu_vcpu_read(s.vcpu, s.addr[1], &x, sizeof(x)), 0);
	assert_int_equal(smmu_vcpu_get_counters(s.vcpu, &c1), 0);
	assert_true(c1.faults > c0.faults);
	tl_assert_audit_clean(vm);
	space_fini(&s);
	smmu_vm_destroy(vm);
}

static void test_hold_shadow(void **state) { (void)state; zap_mode_on(SMMU_MODE_SHADOW, SMMU_ZAP_HOLD); }
static void test_restart_shadow(void **state) { (void)state; zap_mode_on(SMMU_MODE_SHADOW, SMMU_ZAP_RESTART); }
static void test_generation_shadow(void **state) { (void)state; zap_mode_on(SMMU_MODE_SHADOW, SMMU_ZAP_GENERATION); }
static void test_hold_direct(void **state) { (void)state; zap_mode_on(SMMU_MODE_DIRECT, SMMU_ZAP_HOLD); }
static void test_restart_direct(void **state) { (void)state; zap_mode_on(SMMU_MODE_DIRECT, SMMU_ZAP_RESTART); }
static void test_generation_direct(void **state) { (void)state; zap_mode_on(SMMU_MODE_DIRECT, SMMU_ZAP_GENERATION); }

static void test_bad_mode_and_empty(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_SHADOW);
	struct smmu_zap_report rep;
	assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_MODE_COUNT, 0, &rep), -EINVAL);
	assert_int_equal(smmu_zap_all(vm, (enum smmu_zap_mode)-1, 0, &rep), -EINVAL);
	assert_int_equal(smmu_zap_all(NULL, SMMU_ZAP_HOLD, 0, &rep), -EINVAL);
	assert_string_equal(smmu_zap_mode_name(SMMU_ZAP_HOLD), "hold");
	assert_string_equal(smmu_zap_mode_name(SMMU_ZAP_RESTART), "restart");
	assert_string_equal(smmu_zap_mode_name(SMMU_ZAP_GENERATION), "generation");
	assert_string_equal(smmu_zap_mode_name(SMMU_ZAP_MODE_COUNT), "?");
	for (int m = 0; m < SMMU_ZAP_MODE_COUNT; m++) {
		assert_int_equal(smmu_zap_all(vm, (enum smmu_zap_mode)m, 0, &rep), 0);
		assert_int_equal(rep.pages_zapped, 0);
		assert_true(rep.completed);
		assert_int_equal(smmu_zap_all(vm, (enum smmu_zap_mode)m, 0, NULL), 0);
	}
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* A zap with no vCPU root: every page goes, none is left pinned. */
static void test_no_pinned_root(void **state)
{
	(void)state;
	smmu_vm *vm = new_vm(SMMU_MODE_SHADOW);
	struct space s;
	space_init(vm, &s, 16, 0x40000000ull, 8192, 50);
	fault_all(&s);
	uint64_t before = n_used(vm);
	assert_int_equal(smmu_vcpu_set_cr3(s.vcpu, smmu_gas_cr3(s.gas)), 0); /* drops the root */
	struct smmu_zap_report rep;
	assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_HOLD, 0, &rep), 0);
	assert_int_equal(rep.pages_zapped, before);
	assert_int_equal(n_used(vm), 0);
	uint64_t all, pinned, other;
	count_pages(vm, &all, &pinned, &other);
	assert_int_equal(all, 0);
	tl_assert_audit_clean(vm);
	space_fini(&s);
	smmu_vm_destroy(vm);
}

/* ---- with a vCPU faulting meanwhile -------------------------------------------------------------- */

struct faulter {
	struct space *s;
	atomic_int stop;
	atomic_ulong faults;
	atomic_int error;
};

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	size_t i = 0;
	while (!atomic_load(&f->stop)) {
		struct smmu_fault_info fi;
		int r = smmu_vcpu_fault(f->s->vcpu, f->s->addr[i], SMMU_ACC_WRITE, &fi);
		if (r < 0 || (r != SMMU_FAULT_MAPPED && r != SMMU_FAULT_RETRY))
			atomic_store(&f->error, r < 0 ? r : 1000 + r);
		atomic_fetch_add(&f->faults, 1);
		i = (i + 1) % f->s->n; /* new addresses; after a zap, every address is new again */
	}
	return NULL;
}

/*
 * Contention without timing: a hook that, every @every pages the zapping thread zaps, waits
 * (holding mmu_lock, as the hook is called) until the faulting thread queues for mmu_lock. The
 * zap's next needbreak() check then sees a waiter and breaks the lock. The faulter takes the lock
 * on every iteration, so the wait always ends.
 */
struct contention {
	pthread_t zapper;
	unsigned every;
	unsigned long zapped; /* touched by the zapper only */
	unsigned long forced;
};

static void contention_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)sp;
	struct contention *c = ctx;
	if (ev != SMMU_EV_PAGE_ZAPPED || !pthread_equal(pthread_self(), c->zapper))
		return;
	if (c->zapped++ % c->every)
		return;
	while (!smmu_needbreak(vm))
		sched_yield();
	c->forced++;
}

/* vCPU a has built its pages; vCPU b (another guest) will fault its addresses in a loop. */
static void concurrent_setup(smmu_vm **vmp, struct space *a, struct space *b)
{
	smmu_vm *vm = new_vm(SMMU_MODE_SHADOW);
	space_init(vm, a, 16, 0x40000000ull, 12000, 2000);
	space_init(vm, b, 2100, 0x8000000000ull, 14000, 2000);
	fault_all(a);
	*vmp = vm;
}

static void start_faulter(struct faulter *f, struct space *b, pthread_t *th)
{
	f->s = b;
	atomic_init(&f->stop, 0);
	atomic_init(&f->faults, 0);
	atomic_init(&f->error, 0);
	assert_int_equal(pthread_create(th, NULL, faulter_main, f), 0);
	/* Let it get going (a condition, not a delay). */
	while (atomic_load(&f->faults) < 100)
		sched_yield();
}

static void stop_faulter(struct faulter *f, pthread_t th)
{
	atomic_store(&f->stop, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(atomic_load(&f->error), 0);
}

static void test_generation_terminates_while_faulting(void **state)
{
	(void)state;
	smmu_vm *vm;
	struct space a, b;
	concurrent_setup(&vm, &a, &b);
	struct faulter f;
	pthread_t th;
	struct contention c = { .zapper = pthread_self(), .every = 32 };
	assert_int_equal(smmu_set_hook(vm, contention_hook, &c), 0);
	start_faulter(&f, &b, &th);
	struct smmu_zap_report rep;
	unsigned long f0 = atomic_load(&f.faults);
	int r = smmu_zap_all(vm, SMMU_ZAP_GENERATION, 0, &rep);
	unsigned long during = atomic_load(&f.faults) - f0;
	stop_faulter(&f, th);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	printf("generation zap while faulting: %d, %llu pages zapped, %llu rounds, %llu lock breaks "
	       "(%lu forced), ~%lu faults by the other vCPU meanwhile\n", r, (unsigned long long)rep.pages_zapped,
	       (unsigned long long)rep.rounds, (unsigned long long)rep.lock_breaks, c.forced, during);
	assert_int_equal(r, 0);
	assert_true(rep.completed);
	assert_true(rep.lock_breaks >= 1); /* it really was contended */
	assert_int_equal(rep.rounds, 1 + rep.lock_breaks);
	/* Every page vCPU a had built is gone (only its own root, pinned, may wait). */
	assert_true(rep.pages_zapped >= 2000);
	for (size_t i = 0; i < a.n; i += 7) {
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(a.vcpu, a.addr[i], 0, &t), -EFAULT);
	}
	assert_int_equal(smmu_vcpu_enter(a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(b.vcpu), 0);
	tl_assert_audit_clean(vm);
	fault_all(&a);
	fault_all(&b);
	tl_assert_audit_clean(vm);
	space_fini(&a);
	space_fini(&b);
	smmu_vm_destroy(vm);
}

static void test_restart_round_limit_coherent(void **state)
{
	(void)state;
	smmu_vm *vm;
	struct space a, b;
	concurrent_setup(&vm, &a, &b);
	struct faulter f;
	pthread_t th;
	struct contention c = { .zapper = pthread_self(), .every = 32 };
	assert_int_equal(smmu_set_hook(vm, contention_hook, &c), 0);
	start_faulter(&f, &b, &th);
	const uint64_t max_rounds = 50;
	struct smmu_zap_report rep;
	int r = smmu_zap_all(vm, SMMU_ZAP_RESTART, max_rounds, &rep);
	stop_faulter(&f, th);
	assert_int_equal(smmu_set_hook(vm, NULL, NULL), 0);
	assert_true(rep.lock_breaks >= 1);
	printf("restart zap (max %llu rounds) while faulting: %d, completed %d, %llu rounds, "
	       "%llu lock breaks, %llu pages zapped\n", (unsigned long long)max_rounds, r, rep.completed,
	       (unsigned long long)rep.rounds, (unsigned long long)rep.lock_breaks,
	       (unsigned long long)rep.pages_zapped);
	assert_true(r == 0 || r == -EAGAIN);
	assert_true(rep.rounds >= 1);
	assert_true(rep.rounds <= max_rounds + 1);
	assert_int_equal(rep.completed, r == 0);
	if (r == -EAGAIN)
		assert_int_equal(rep.rounds, max_rounds + 1);
	assert_int_equal(smmu_vcpu_enter(a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(b.vcpu), 0);
	tl_assert_audit_clean(vm);
	/* Without contention the same zap completes. */
	assert_int_equal(smmu_zap_all(vm, SMMU_ZAP_RESTART, max_rounds, &rep), 0);
	assert_true(rep.completed);
	assert_int_equal(smmu_vcpu_enter(a.vcpu), 0);
	assert_int_equal(smmu_vcpu_enter(b.vcpu), 0);
	assert_int_equal(n_used(vm), 0);
	tl_assert_audit_clean(vm);
	space_fini(&a);
	space_fini(&b);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hold_shadow),
		cmocka_unit_test(test_restart_shadow),
		cmocka_unit_test(test_generation_shadow),
		cmocka_unit_test(test_hold_direct),
		cmocka_unit_test(test_restart_direct),
		cmocka_unit_test(test_generation_direct),
		cmocka_unit_test(test_bad_mode_and_empty),
		cmocka_unit_test(test_no_pinned_root),
		cmocka_unit_test(test_generation_terminates_while_faulting),
		cmocka_unit_test(test_restart_round_limit_coherent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
