/*
 * vCPUs and the threads around them: requests that wait for vCPUs in guest mode (issue 16 part
 * 2), the dirty log that must not lose a write (issue 17 bug 3), and a vCPU's id that stays
 * fixed while other vCPUs come and go (issue 17 bug 6b).
 *
 * A test holds a vCPU thread in guest mode with the VM's guest-mode test hook: the thread stays
 * there until the vCPU is kicked (a waiting request) or until the test lets it go; so a request
 * that did not wait is seen without any timing. Threads never call cmocka: they count failures
 * and the main thread asserts after joining. Every loop is bounded by an iteration cap or by
 * the other thread's progress; no assertion depends on time.
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
#include "smmu_config.h"

static void relax(unsigned *spins)
{
	if ((++*spins & 63) == 0)
		sched_yield();
}

static uint32_t vcpu_mode(smmu_vcpu *v) { return atomic_load(&v->mode) & VCPU_MODE_MASK; }
static uint32_t vcpu_exits(smmu_vcpu *v) { return atomic_load(&v->mode) >> VCPU_MODE_EXIT_SHIFT; }

/* ---- holding a vCPU thread in guest mode ---------------------------------------------------- */

struct hold {
	smmu_vcpu *v;
	smmu_gva_t addr;
	uint64_t value;
	atomic_int armed;    /* the next guest-mode entry of v is held */
	atomic_int in_guest; /* the held thread is in guest mode, in the hook */
	atomic_int release;  /* the test lets it go (when no kick came) */
	atomic_int kicked;   /* the hold ended because the vCPU was kicked */
	atomic_int left;     /* the hook returned: the access and the exit follow */
	int write_result;
};

/* The guest-mode hook: hold the armed entry until a kick or the release. */
static void hold_hook(struct smmu_vcpu *v, void *ctx)
{
	struct hold *h = ctx;
	if (v != h->v || !atomic_exchange(&h->armed, 0))
		return;
	atomic_store(&h->in_guest, 1);
	unsigned spins = 0;
	for (;;) {
		if (vcpu_mode(v) == EXITING_GUEST_MODE) {
			atomic_store(&h->kicked, 1);
			break;
		}
		if (atomic_load(&h->release))
			break;
		relax(&spins);
	}
	atomic_store(&h->left, 1);
}

static void *hold_writer(void *arg)
{
	struct hold *h = arg;
	h->write_result = smmu_vcpu_write(h->v, h->addr, &h->value, sizeof(h->value));
	return NULL;
}

/* Start a thread writing h->value at h->addr through h->v, and wait until it is held in guest mode. */
static void hold_start(smmu_vm *vm, struct hold *h, pthread_t *t)
{
	vm->guest_mode_hook = hold_hook;
	vm->guest_mode_hook_ctx = h;
	atomic_store(&h->armed, 1);
	assert_int_equal(pthread_create(t, NULL, hold_writer, h), 0);
	unsigned spins = 0;
	while (!atomic_load(&h->in_guest))
		relax(&spins);
}

static void hold_finish(smmu_vm *vm, struct hold *h, pthread_t t)
{
	atomic_store(&h->release, 1);
	pthread_join(t, NULL);
	vm->guest_mode_hook = NULL;
	assert_int_equal(h->write_result, 0);
}

/* A direct-mode VM, slot 0 of 64 pages at gfn 0 (dirty-logged when @log), two vCPUs; the first
 * has written page 1 once, so its TLB holds a writable entry for it. */
static smmu_vm *two_vcpus(bool log, smmu_vcpu **v, smmu_vcpu **idle)
{
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	assert_int_equal(smmu_memslot_create(vm, 0, 0, 64, log ? SMMU_MEM_LOG_DIRTY_PAGES : 0), 0);
	assert_int_equal(smmu_vcpu_create(vm, v), 0);
	assert_int_equal(smmu_vcpu_create(vm, idle), 0);
	uint64_t x = 1;
	assert_int_equal(smmu_vcpu_write(*v, 0x1000, &x, sizeof(x)), 0);
	assert_int_equal(smmu_vcpu_write(*idle, 0x2000, &x, sizeof(x)), 0);
	return vm;
}

/* ---- requests wait for the vCPUs in guest mode (issue 16 part 2) --------------------------- */

enum requester { REQ_FLUSH, REQ_RELOAD, REQ_DIRTY_LOG };

/* Make one request of @kind; returns the lock site it is counted at. */
static enum smmu_site make_request(smmu_vm *vm, enum requester kind)
{
	uint64_t bm[1];
	switch (kind) {
	case REQ_FLUSH:
		smmu_mmu_lock(vm, SMMU_SITE_USER0);
		smmu_flush_remote_tlbs(vm);
		smmu_mmu_unlock(vm);
		return SMMU_SITE_USER0;
	case REQ_RELOAD:
		assert_int_equal(smmu_fast_zap_bump(vm, NULL), 0);
		return SMMU_SITE_FAST_ZAP;
	case REQ_DIRTY_LOG:
		assert_true(smmu_memslot_get_dirty_log(vm, 0, bm, 1) > 0);
		return SMMU_SITE_MEMSLOT;
	}
	return SMMU_SITE_COUNT;
}

/*
 * The requester returns only after the vCPU held in guest mode has left it (it was kicked, its
 * hook returned, it counted an exit), and the request's site counts one request wait. The
 * other vCPU, outside guest mode, is not waited for (it never runs: waiting for it would hang),
 * and sees the request at its next entry.
 */
static void check_request_waits(enum requester kind)
{
	smmu_vcpu *v, *idle;
	smmu_vm *vm = two_vcpus(kind == REQ_DIRTY_LOG, &v, &idle);
	struct smmu_vcpu_counters c0;
	assert_int_equal(smmu_vcpu_get_counters(idle, &c0), 0);
	assert_int_equal(smmu_stats_reset(vm), 0);
	struct hold h = { .v = v, .addr = 0x1000, .value = 2 };
	pthread_t t;
	hold_start(vm, &h, &t);
	uint32_t exits0 = vcpu_exits(v);
	enum smmu_site site = make_request(vm, kind);
	/* Read before the release: what the request's return saw. */
	int left = atomic_load(&h.left), kicked = atomic_load(&h.kicked);
	uint32_t exits1 = vcpu_exits(v);
	hold_finish(vm, &h, t);
	assert_true(left);
	assert_true(kicked);
	assert_true(exits1 != exits0);
	assert_int_equal(vcpu_mode(idle), OUTSIDE_GUEST_MODE);
	struct smmu_site_stats s;
	assert_int_equal(smmu_stats_get(vm, site, &s), 0);
#if SMMU_LOCK_STATS
	assert_int_equal(s.request_wait.count, 1);
	assert_true(s.request_wait.sum > 0);
#endif
	/* The idle vCPU processes the request when it next enters. */
	assert_int_equal(smmu_vcpu_enter(idle), 0);
	struct smmu_vcpu_counters c1;
	assert_int_equal(smmu_vcpu_get_counters(idle, &c1), 0);
	assert_int_equal(c1.tlb_flushes, c0.tlb_flushes + 1);
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(v, 0x1000, &x, sizeof(x)), 0);
	assert_int_equal(x, 2);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

static void test_flush_waits_for_vcpu_in_guest(void **state)
{
	(void)state;
	check_request_waits(REQ_FLUSH);
}

static void test_reload_waits_for_vcpu_in_guest(void **state)
{
	(void)state;
	check_request_waits(REQ_RELOAD);
}

static void test_dirty_log_flush_waits_for_vcpu_in_guest(void **state)
{
	(void)state;
	check_request_waits(REQ_DIRTY_LOG);
}

/* With every vCPU outside guest mode a request waits for nobody: no request wait is counted,
 * and each vCPU finds the request pending at its next entry. */
static void test_request_outside_guest_mode_not_waited(void **state)
{
	(void)state;
	smmu_vcpu *v, *idle;
	smmu_vm *vm = two_vcpus(false, &v, &idle);
	assert_int_equal(smmu_stats_reset(vm), 0);
	uint32_t exits = vcpu_exits(v);
	smmu_mmu_lock(vm, SMMU_SITE_USER1);
	smmu_flush_remote_tlbs(vm);
	smmu_reload_remote_mmus(vm);
	smmu_mmu_unlock(vm);
	struct smmu_site_stats s;
	assert_int_equal(smmu_stats_get(vm, SMMU_SITE_USER1, &s), 0);
	assert_int_equal(s.request_wait.count, 0);
	assert_int_equal(s.remote_flushes, 1);
	assert_int_equal(vcpu_exits(v), exits);
	assert_int_equal(atomic_load(&v->requests), KVM_REQ_TLB_FLUSH | KVM_REQ_MMU_RELOAD);
	assert_int_equal(atomic_load(&idle->requests), KVM_REQ_TLB_FLUSH | KVM_REQ_MMU_RELOAD);
	struct smmu_vcpu_counters c0, c1;
	assert_int_equal(smmu_vcpu_get_counters(v, &c0), 0);
	uint64_t x;
	assert_int_equal(smmu_vcpu_read(v, 0x1000, &x, sizeof(x)), 0);
	assert_int_equal(smmu_vcpu_get_counters(v, &c1), 0);
	assert_int_equal(c1.reloads, c0.reloads + 1);
	assert_int_equal(c1.tlb_flushes, c0.tlb_flushes + 1);
	assert_int_equal(atomic_load(&v->requests), 0);
	assert_int_equal(smmu_vcpu_enter(idle), 0);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}

/* ---- the dirty log loses no write (issue 17 bug 3) ------------------------------------------ */

/*
 * The race, made deterministic: the vCPU holds a writable TLB entry for page 1, whose dirty bit
 * its fault set, and is held in guest mode about to write through that entry. get_dirty_log
 * takes the bit and write-protects the page; the test copies the page as a migration would,
 * then lets the vCPU go. The write must show in the copy or in a later log. With a flush that
 * only posts its request, get_dirty_log returns at once, the copy misses the write, and no
 * later log shows the page: the write is lost.
 */
static void test_dirty_log_no_lost_write_held(void **state)
{
	(void)state;
	smmu_vcpu *v, *idle;
	smmu_vm *vm = two_vcpus(true, &v, &idle);
	uint64_t bm[1];
	/* Start clean: the page logged and write-protected; the next write faults and marks it. */
	assert_true(smmu_memslot_get_dirty_log(vm, 0, bm, 1) > 0);
	uint64_t x = 3;
	assert_int_equal(smmu_vcpu_write(v, 0x1000, &x, sizeof(x)), 0);
	struct hold h = { .v = v, .addr = 0x1000, .value = 4 };
	pthread_t t;
	hold_start(vm, &h, &t);
	assert_true(smmu_memslot_get_dirty_log(vm, 0, bm, 1) > 0);
	assert_true(bm[0] & 2);
	uint64_t copy;
	assert_int_equal(smmu_guest_read(vm, 0x1000, &copy, sizeof(copy)), 0);
	hold_finish(vm, &h, t);
	assert_true(smmu_memslot_get_dirty_log(vm, 0, bm, 1) >= 0);
	if (bm[0] & 2)
		assert_int_equal(smmu_guest_read(vm, 0x1000, &copy, sizeof(copy)), 0);
	assert_int_equal(copy, 4); /* else the write of 4 is in no log */
	assert_int_equal(smmu_vcpu_enter(v), 0);
	assert_int_equal(smmu_vcpu_enter(idle), 0);
	tl_assert_audit_clean(vm);
	smmu_vm_destroy(vm);
}


/*
 * The migration check of the reproducer, bounded: a vCPU thread writes two words into every
 * page of a logged slot, round after round (the second write goes through the TLB entry the
 * first one filled); a logger thread loops get_dirty_log and copies every page reported dirty.
 * At the end, one more log and copy: every page's copy must equal guest memory, or a write
 * showed in no log. With @hold_every, every hold_every-th guest-mode entry of the vCPU is held
 * until it is kicked or the logger has finished a whole round (log and copies) meanwhile: this
 * widens the race to a logger round, so a flush that does not wait loses writes nearly every
 * time, where the plain run loses one now and then.
 */
#define MIG_PAGES 512u
#define MIG_ROUNDS_MAX 200u

struct mig {
	smmu_vm *vm;
	smmu_vcpu *v;
	uint64_t (*copy)[2];
	unsigned hold_every;
	uint64_t deadline_ns;
	atomic_int writer_done;
	atomic_ulong log_rounds;
	atomic_uint entries, holds;
	int write_errors;
	unsigned rounds, eagain;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void mig_hook(struct smmu_vcpu *v, void *ctx)
{
	struct mig *m = ctx;
	if (!m->hold_every || atomic_fetch_add(&m->entries, 1) % m->hold_every != m->hold_every - 1)
		return;
	atomic_fetch_add(&m->holds, 1);
	/* A round that starts after this point has ended when the count moved by two. */
	unsigned long r0 = atomic_load(&m->log_rounds);
	unsigned spins = 0;
	while (vcpu_mode(v) != EXITING_GUEST_MODE && atomic_load(&m->log_rounds) < r0 + 2)
		relax(&spins);
}

static void mig_copy_logged(struct mig *m, const uint64_t *bm)
{
	for (unsigned w = 0; w < MIG_PAGES / 64; w++)
		for (uint64_t b = bm[w]; b; b &= b - 1) {
			unsigned p = w * 64 + (unsigned)__builtin_ctzll(b);
			if (smmu_guest_read(m->vm, (smmu_gpa_t)p << 12, m->copy[p], sizeof(m->copy[p])))
				m->write_errors++;
		}
}

static void *mig_logger(void *arg)
{
	struct mig *m = arg;
	uint64_t bm[MIG_PAGES / 64];
	while (!atomic_load(&m->writer_done)) {
		if (smmu_memslot_get_dirty_log(m->vm, 0, bm, MIG_PAGES / 64) < 0)
			abort();
		mig_copy_logged(m, bm);
		atomic_fetch_add(&m->log_rounds, 1);
		/* A migration sends the pages between two logs. A logger always queued on mmu_lock
		 * would write-protect every page between the vCPU's fault and its retry. */
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	return NULL;
}

static void *mig_writer(void *arg)
{
	struct mig *m = arg;
	for (unsigned r = 1; r <= MIG_ROUNDS_MAX && now_ns() < m->deadline_ns; r++, m->rounds++)
		for (unsigned p = 0; p < MIG_PAGES && now_ns() < m->deadline_ns; p++) {
			uint64_t w0 = ((uint64_t)r << 32) | p << 1, w1 = w0 | 1;
			smmu_gpa_t a = (smmu_gpa_t)p << 12;
			int r0, r1;
			while ((r0 = smmu_vcpu_write(m->v, a, &w0, 8)) == -EAGAIN)
				m->eagain++;
			while ((r1 = smmu_vcpu_write(m->v, a + 8, &w1, 8)) == -EAGAIN)
				m->eagain++;
			if (r0 || r1)
				m->write_errors++;
		}
	atomic_store(&m->writer_done, 1);
	return NULL;
}

/* Run the check for about @ms milliseconds; returns the writes no log showed. */
static unsigned run_migration(enum smmu_mmu_mode mode, unsigned hold_every, unsigned ms)
{
	struct mig m = { .hold_every = hold_every };
	m.vm = tl_vm(mode);
	smmu_gas *gas = NULL;
	assert_int_equal(smmu_memslot_create(m.vm, 0, 0, MIG_PAGES, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_vcpu_create(m.vm, &m.v), 0);
	if (mode == SMMU_MODE_SHADOW) { /* gva = gpa, the tables in slot 1 */
		assert_int_equal(smmu_memslot_create(m.vm, 1, 1024, 64, 0), 0);
		assert_int_equal(smmu_gas_create(m.vm, 1024, 64, &gas), 0);
		for (unsigned p = 0; p < MIG_PAGES; p++)
			assert_int_equal(smmu_gas_map(gas, (smmu_gva_t)p << 12, p, SMMU_LEVEL_4K, SMMU_PROT_WRITE), 0);
		assert_int_equal(smmu_vcpu_set_cr3(m.v, smmu_gas_cr3(gas)), 0);
	}
	m.copy = calloc(MIG_PAGES, sizeof(*m.copy));
	assert_non_null(m.copy);
	uint64_t bm[MIG_PAGES / 64];
	assert_true(smmu_memslot_get_dirty_log(m.vm, 0, bm, MIG_PAGES / 64) >= 0);
	m.vm->guest_mode_hook = mig_hook;
	m.vm->guest_mode_hook_ctx = &m;
	m.deadline_ns = now_ns() + (uint64_t)ms * 1000000u;
	pthread_t lt, wt;
	assert_int_equal(pthread_create(&lt, NULL, mig_logger, &m), 0);
	assert_int_equal(pthread_create(&wt, NULL, mig_writer, &m), 0);
	pthread_join(wt, NULL);
	pthread_join(lt, NULL);
	m.vm->guest_mode_hook = NULL;
	assert_true(smmu_memslot_get_dirty_log(m.vm, 0, bm, MIG_PAGES / 64) >= 0);
	mig_copy_logged(&m, bm);
	unsigned lost = 0;
	for (unsigned p = 0; p < MIG_PAGES; p++) {
		uint64_t mem[2];
		assert_int_equal(smmu_guest_read(m.vm, (smmu_gpa_t)p << 12, mem, sizeof(mem)), 0);
		if (mem[0] != m.copy[p][0] || mem[1] != m.copy[p][1]) {
			if (!lost)
				printf("# page %u lost a write: memory %#llx %#llx, copy %#llx %#llx\n", p,
				       (unsigned long long)mem[0], (unsigned long long)mem[1],
				       (unsigned long long)m.copy[p][0], (unsigned long long)m.copy[p][1]);
			lost++;
		}
	}
	printf("# %s, hold every %u: %u rounds, %u -EAGAIN, %lu logs, %u holds, %u writes lost\n",
	       mode == SMMU_MODE_SHADOW ? "shadow" : "direct", hold_every, m.rounds, m.eagain,
	       atomic_load(&m.log_rounds), atomic_load(&m.holds), lost);
	assert_int_equal(m.write_errors, 0);
	assert_true(m.rounds > 0);
	assert_int_equal(smmu_vcpu_enter(m.v), 0);
	tl_assert_audit_clean(m.vm);
	free(m.copy);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(m.vm);
	return lost;
}

static void test_dirty_log_migration_stress(void **state)
{
	(void)state;
	unsigned lost = run_migration(SMMU_MODE_DIRECT, 0, 700);
	lost += run_migration(SMMU_MODE_DIRECT, 16, 700);
	lost += run_migration(SMMU_MODE_SHADOW, 16, 700);
	assert_int_equal(lost, 0);
}

/* ---- a vCPU's id is fixed for life (issue 17, bug 6b) ------------------------------------------ */

/* Destroying a vCPU changes no other vCPU's id; a new one takes the smallest free id. */
static void test_vcpu_id_fixed(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *a, *b, *c, *d;
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_create(vm, &b), 0);
	assert_int_equal(smmu_vcpu_create(vm, &c), 0);
	smmu_vcpu_destroy(a);
	assert_int_equal(smmu_vcpu_id(b), 1);
	assert_int_equal(smmu_vcpu_id(c), 2);
	assert_int_equal(smmu_vcpu_create(vm, &d), 0);
	assert_int_equal(smmu_vcpu_id(d), 0);
	smmu_vcpu_destroy(b);
	assert_int_equal(smmu_vcpu_id(c), 2);
	assert_int_equal(smmu_vcpu_id(d), 0);
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_id(a), 1);
	smmu_vm_destroy(vm);
}

struct id_user {
	smmu_vcpu *v;
	int id;
	atomic_int done;
	atomic_uint changed;
};

static void *id_user_main(void *arg)
{
	struct id_user *u = arg;
	while (!atomic_load(&u->done)) {
		if (smmu_vcpu_id(u->v) != u->id)
			atomic_fetch_add(&u->changed, 1);
		smmu_vcpu_enter(u->v);
	}
	return NULL;
}

/* The reproducer of bug 6b: B's thread reads B's id while another thread destroys and creates
 * vCPU A, which used to move B to A's index and rewrite B's id from that thread (a data race
 * ThreadSanitizer reports, and a changed id). */
static void test_vcpu_id_vs_other_destroy(void **state)
{
	(void)state;
	smmu_vm *vm = tl_vm(SMMU_MODE_DIRECT);
	smmu_vcpu *a;
	struct id_user u = { 0 };
	assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	assert_int_equal(smmu_vcpu_create(vm, &u.v), 0);
	u.id = smmu_vcpu_id(u.v);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, id_user_main, &u), 0);
	for (int i = 0; i < 2000; i++) {
		smmu_vcpu_destroy(a);
		assert_int_equal(smmu_vcpu_create(vm, &a), 0);
	}
	atomic_store(&u.done, 1);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&u.changed), 0);
	assert_int_equal(smmu_vcpu_id(u.v), u.id);
	smmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_waits_for_vcpu_in_guest),
		cmocka_unit_test(test_reload_waits_for_vcpu_in_guest),
		cmocka_unit_test(test_dirty_log_flush_waits_for_vcpu_in_guest),
		cmocka_unit_test(test_request_outside_guest_mode_not_waited),
		cmocka_unit_test(test_dirty_log_no_lost_write_held),
		cmocka_unit_test(test_dirty_log_migration_stress),
		cmocka_unit_test(test_vcpu_id_fixed),
		cmocka_unit_test(test_vcpu_id_vs_other_destroy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
