/*
 * smmu-bench: measuring one run. Each strategy runs on a freshly built workload (same seed, so
 * the same shape):
 *   build → floor (median of smmu_measure_floor) → counters → smmu_stats_reset → start the
 *   faulting vCPUs → [timed: the strategy's call] → stop the vCPUs → stats, counters, rusage.
 *
 * SPDX-License-Identifier: MIT
 */
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- measuring one run ------------------------------------------------------------------------- */

static const char *const preempt_names[SMMU_PREEMPT_MODEL_COUNT] = {
	[SMMU_PREEMPT_FULL] = "full", [SMMU_PREEMPT_VOLUNTARY] = "voluntary", [SMMU_PREEMPT_NONE] = "none",
};

const char *preempt_name(uint8_t model) { return model < SMMU_PREEMPT_MODEL_COUNT ? preempt_names[model] : "?"; }

int preempt_parse(const char *s, uint8_t *model)
{
	for (uint8_t m = 0; m < SMMU_PREEMPT_MODEL_COUNT; m++) {
		if (!strcmp(s, preempt_names[m])) {
			*model = m;
			return 0;
		}
	}
	return -EINVAL;
}

static struct hist5 to_hist5(const struct smmu_hist_summary *s)
{
	struct hist5 h = { s->count, s->p50, s->p99, s->p999, s->max };
	return h;
}

uint64_t rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static uint64_t maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss;
}

/* A raw histogram of one site, to tell the fast zap's drain from its bump. */
#define HIST_CAP 4096
struct hist_raw {
	int n;
	uint64_t lower[HIST_CAP], count[HIST_CAP];
};

static int hist_read(smmu_vm *vm, enum smmu_site site, struct hist_raw *h)
{
	int n = smmu_stats_hist(vm, site, true, h->lower, h->count, HIST_CAP);
	if (n < 0)
		return n;
	h->n = n < HIST_CAP ? n : HIST_CAP;
	return 0;
}

/* after -= before, bucket by bucket (both ascending by lower bound). */
static void hist_sub(struct hist_raw *after, const struct hist_raw *before)
{
	for (int i = 0; i < after->n; i++)
		for (int j = 0; j < before->n; j++)
			if (before->lower[j] == after->lower[i])
				after->count[i] -= before->count[j] < after->count[i] ? before->count[j]
										       : after->count[i];
}

static uint64_t hist_q(const struct hist_raw *h, double q, uint64_t total)
{
	uint64_t want = (uint64_t)(q * (double)total + 0.999999), acc = 0;
	if (want < 1)
		want = 1;
	for (int i = 0; i < h->n; i++) {
		acc += h->count[i];
		if (acc >= want)
			return h->lower[i];
	}
	return 0;
}

static struct hist5 hist_summary(const struct hist_raw *h)
{
	struct hist5 s = { 0, 0, 0, 0, 0 };
	for (int i = 0; i < h->n; i++) {
		s.count += h->count[i];
		if (h->count[i])
			s.max = h->lower[i];
	}
	s.p50 = hist_q(h, 0.50, s.count);
	s.p99 = hist_q(h, 0.99, s.count);
	s.p999 = hist_q(h, 0.999, s.count);
	return s;
}

static void fill_common(struct run_result *x, const struct options *o, const struct workload *w,
			const char *strategy, enum smmu_site site, double load_before)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->bench, sizeof(x->bench), "smmu-bench");
	snprintf(x->workload, sizeof(x->workload), "%s", wl_kind_name(w->p.kind));
	snprintf(x->mode, sizeof(x->mode), "%s", w->p.kind == WL_DIRECT ? "direct" : "shadow");
	snprintf(x->strategy, sizeof(x->strategy), "%s", strategy);
	snprintf(x->site, sizeof(x->site), "%s", smmu_site_name(site));
	x->seed = o->wl.seed;
	x->vcpus = o->wl.vcpus;
	x->procs = w->nproc;
	x->build_ns = w->build_ns;
	x->build_map_ns = w->map_ns;
	x->build_fault_ns = w->fault_ns;
	x->hash_buckets = w->hash_buckets;
	x->zap_batch = w->zap_batch;
	x->other_cpu = load_before;
	snprintf(x->hash_fn, sizeof(x->hash_fn), "%s",
		 w->hash_fn == SMMU_HASH_MASK ? "mask" : w->hash_fn == SMMU_HASH_HASH64 ? "hash64" : "profile");
	snprintf(x->profile, sizeof(x->profile), "%s",
		 w->p.profile == SMMU_PROFILE_LINUX_TODAY ? "today" :
		 w->p.profile == SMMU_PROFILE_LINUX_6_1 ? "6.1" : "3.11");
	x->floor_runs = o->floor_runs;
	snprintf(x->preempt, sizeof(x->preempt), "%s", preempt_name(w->p.preempt));
	x->resched_slice_ns = w->p.resched_slice_ns;
	x->gpte_accessed = !w->p.gpte_no_accessed;
	x->host_writable = w->p.host_writable;
	x->per_table = w->p.kind == WL_SHADOW && w->p.per_table > 1 ? w->p.per_table : 1;
	x->guest_writes = w->guest_writes;
	x->guest_reads = w->guest_reads;
	x->build_faults = w->faults;
}

static void fill_census(struct run_result *x, const struct wl_census *c, uint64_t unsync_after)
{
	x->leaf_pages = c->leaf_pages;
	x->leaf_sptes = c->leaf_sptes;
	x->unsync_pages = c->unsync_pages;
	x->unsync_after = unsync_after;
}

static void fill_memory(struct run_result *x, const struct workload *w,
			const struct smmu_vm_counters *c)
{
	x->shadow_pages = c->n_used_mmu_pages;
	x->sp_bytes = c->sp_bytes;
	x->rmap_bytes = c->rmap_bytes;
	x->lpage_bytes = c->lpage_bytes;
	x->mem_bytes = c->sp_bytes + c->rmap_bytes;
	/* KVM 3.11 for the same objects: a 4 KiB table and a kvm_mmu_page per page, a 4 KiB gfns
	 * array per indirect page, 8 bytes of rmap head per gfn per level of the slot, and a
	 * pte_list_desc for each descriptor the model holds. */
	x->kvm_bytes = c->n_used_mmu_pages * (4096 + KVM_SP_HEADER_BYTES) +
		       c->indirect_shadow_pages * 4096 + wl_kvm_rmap_head_bytes(w) +
		       c->rmap_descs * KVM_PTE_LIST_DESC_BYTES;
	x->mem_ratio = x->kvm_bytes ? (double)x->mem_bytes / (double)x->kvm_bytes : 0;
}

static void fill_site(struct run_result *x, const struct smmu_site_stats *s)
{
	x->hold = to_hist5(&s->hold);
	x->breaks = s->breaks;
	x->handoffs = s->handoffs;
	x->site_flushes = s->remote_flushes;
	x->site_flush_ns = s->remote_flush_ns;
	x->request_wait = to_hist5(&s->request_wait);
}

static void fill_vcpus(struct run_result *x, smmu_vm *vm, const struct contention *c)
{
	struct smmu_site_stats f, v;
	if (!smmu_stats_get(vm, SMMU_SITE_FAULT, &f)) {
		x->fault_hold = to_hist5(&f.hold);
		x->wait = to_hist5(&f.wait);
	}
	if (!smmu_stats_get(vm, SMMU_SITE_VCPU, &v))
		x->vcpu_site_wait_max = v.wait.max;
	x->faults_during = c->faults;
	x->mapped_during = c->mapped;
	x->created_during = c->created;
	x->retries_during = c->retries;
	x->errors_during = c->errors;
	if (c->errors)
		fprintf(stderr, "smmu-bench: %s: %" PRIu64 " vCPU faults failed (first: %d)\n",
			x->strategy, c->errors, c->first_error);
}

static void fill_report(struct run_result *x, const struct smmu_zap_report *rep)
{
	x->has_report = true;
	x->rounds = rep->rounds;
	x->pages_zapped = rep->pages_zapped;
	x->sptes_dropped = rep->sptes_dropped;
	x->rep_flushes = rep->remote_flushes;
	x->completed = rep->completed;
}

/* The site that really held the lock: the expected one, else the busiest zapping site. */
static enum smmu_site zap_site(smmu_vm *vm, enum smmu_site expected)
{
	static const enum smmu_site cand[] = { SMMU_SITE_ZAP_ALL, SMMU_SITE_FAST_ZAP,
					       SMMU_SITE_MEMSLOT_FLUSH, SMMU_SITE_MEMSLOT,
					       SMMU_SITE_MMU_NOTIFIER };
	struct smmu_site_stats s;
	if (!smmu_stats_get(vm, expected, &s) && s.hold.count)
		return expected;
	enum smmu_site best = expected;
	uint64_t best_sum = 0;
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (!smmu_stats_get(vm, cand[i], &s) && s.hold.sum > best_sum)
			best = cand[i], best_sum = s.hold.sum;
	return best;
}

/*
 * fast_zap_kvm's first stretch of holding mmu_lock: from the zapper's taking it to its first lock
 * break (the bump, the reload requests and the first batch, KVM's first critical section). The
 * hook sees the zapper's events only; the stretch ends at its last event before the break (the
 * tail of that page's zap and the unlock are not in it), or, when it never broke, it is the
 * site's one hold. Installed at a quiescent point, before the vCPUs start.
 */
struct first_hold {
	pthread_t zapper;
	bool armed; /* set by the zapper right before its call */
	bool taken, broken;
	uint64_t t_taken, t_last;
};

static void first_hold_hook(smmu_vm *vm, enum smmu_event ev, const smmu_sp *sp, void *ctx)
{
	(void)vm;
	(void)sp;
	struct first_hold *h = ctx;
	if (!pthread_equal(pthread_self(), h->zapper) || !h->armed || h->broken)
		return;
	if (ev == SMMU_EV_LOCK_BROKEN) {
		h->broken = true;
	} else if (!h->taken) {
		h->taken = ev == SMMU_EV_LOCK_TAKEN;
		h->t_taken = h->t_last = bench_now_ns();
	} else {
		h->t_last = bench_now_ns();
	}
}

/* CPU time: the whole machine's busy time (/proc/stat) and this process's (rusage), in ns. */
struct cpu_snap {
	uint64_t wall, busy, self;
};

static void cpu_snap(struct cpu_snap *c)
{
	c->wall = bench_now_ns();
	c->busy = 0;
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[8] = { 0 };
	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
			   &v[4], &v[5], &v[6], &v[7]) == 8) /* user nice system idle iowait irq softirq steal */
			c->busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ull /
				  (uint64_t)sysconf(_SC_CLK_TCK));
		fclose(f);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	c->self = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		  ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* The share of all cores' time that other programs used between @p a and @p b. */
static double other_cpu(const struct cpu_snap *a, const struct cpu_snap *b)
{
	double cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
	double wall = (double)(b->wall - a->wall) * cores;
	double other = (double)(b->busy - a->busy) - (double)(b->self - a->self);
	if (wall <= 0 || other < 0)
		return 0;
	return other / wall > 1 ? 1 : other / wall;
}

static int cmp_floor(const void *a, const void *b)
{
	uint64_t x = ((const struct smmu_floor *)a)->total_ns, y = ((const struct smmu_floor *)b)->total_ns;
	return x < y ? -1 : x > y;
}

/* The median of @p runs floors (the machine's memory system is noisy from run to run). */
static int measure_floor(smmu_vm *vm, int runs, struct smmu_floor *out)
{
	struct smmu_floor f[99];
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < runs; i++) {
		int r = smmu_measure_floor(vm, &f[i]);
		if (r)
			return r;
	}
	qsort(f, (size_t)runs, sizeof(f[0]), cmp_floor);
	*out = f[runs / 2];
	return 0;
}

int run_one(const struct options *o, const struct strategy *st, uint64_t pages,
		   struct report *rep, const char *label)
{
	struct workload w;
	struct wl_params p = o->wl;
	p.pages = pages;
	p.label = label;
	p.commit_per_batch = st->kind == S_FAST_ZAP && (st->arg & 1);
	p.leaf_first = st->kind == S_FAST_ZAP && (st->arg & 2);
	if (p.leaf_first && !p.zap_batch)
		p.zap_batch = 1; /* built for the smallest stretches: one page per batch */
	struct cpu_snap cpu0, cpu1;
	cpu_snap(&cpu0);
	int r = wl_build(&w, &p);
	if (r) {
		wl_destroy(&w);
		return r;
	}
	if (st->kind == S_DIRTY_LOG && (w.slot_flags & SMMU_MEM_LOG_DIRTY_PAGES)) {
		/* the direct workload builds with logging on (4 KiB leaves): turn it off first */
		r = smmu_memslot_set_flags(w.vm, w.slot, w.slot_flags & ~SMMU_MEM_LOG_DIRTY_PAGES);
		if (r)
			fprintf(stderr, "smmu-bench: smmu_memslot_set_flags(off): %s\n", strerror(-r));
		w.slot_flags &= ~(uint32_t)SMMU_MEM_LOG_DIRTY_PAGES;
	}
	struct smmu_memslot_info slot;
	r = smmu_memslot_get(w.vm, w.slot, &slot);
	if (r) {
		fprintf(stderr, "smmu-bench: smmu_memslot_get: %s\n", strerror(-r));
		wl_destroy(&w);
		return r;
	}

	struct wl_census census;
	r = wl_census(&w, &census);
	if (r)
		fprintf(stderr, "smmu-bench: counting the shadow pages: %s\n", strerror(-r));
	progress(true, "%s: measuring the floor", label);
	struct smmu_floor floor;
	r = measure_floor(w.vm, o->floor_runs, &floor);
	if (r)
		fprintf(stderr, "smmu-bench: smmu_measure_floor: %s\n", strerror(-r));
	struct smmu_vm_counters c0, c1, cmid;
	smmu_vm_get_counters(w.vm, &c0);
	uint64_t rss0 = rss_kb();
	smmu_stats_reset(w.vm);

	struct first_hold fh = { .zapper = pthread_self() };
	if (st->kind == S_FAST_ZAP_ONE)
		smmu_set_hook(w.vm, first_hold_hook, &fh);
	struct contention con;
	r = wl_faulters_start(&w, &con, o->wl.vcpus);
	if (r) {
		wl_destroy(&w);
		return r;
	}
	progress(true, "%s: zapping %" PRIu64 " shadow pages (%d vCPU%s faulting)", label,
		 c0.n_used_mmu_pages, o->wl.vcpus, o->wl.vcpus == 1 ? "" : "s");

	struct smmu_zap_report zr, zr2;
	memset(&zr, 0, sizeof(zr));
	memset(&zr2, 0, sizeof(zr2));
	struct smmu_site_stats bump_stats;
	static struct hist_raw bump_hist, drain_hist;
	uint64_t t0, t1, t2 = 0;
	int64_t dropped = 0;
	int rc = 0, rc2 = 0;
	uint64_t max_rounds = o->max_rounds_given ? o->max_rounds : pages + 1000;

	switch (st->kind) {
	case S_ZAP_ALL:
		t0 = bench_now_ns();
		rc = smmu_zap_all(w.vm, (enum smmu_zap_mode)st->arg, max_rounds, &zr);
		t1 = bench_now_ns();
		break;
	case S_FAST_ZAP:
		t0 = bench_now_ns();
		rc = smmu_fast_zap_bump(w.vm, &zr);
		t1 = bench_now_ns();
		/* between the two timed calls: what the bump alone held (only this thread takes
		 * the FAST_ZAP site, so its figures are stable while the vCPUs keep faulting) */
		smmu_stats_get(w.vm, SMMU_SITE_FAST_ZAP, &bump_stats);
		hist_read(w.vm, SMMU_SITE_FAST_ZAP, &bump_hist);
		smmu_vm_get_counters(w.vm, &cmid);
		t2 = bench_now_ns();
		rc2 = smmu_fast_zap_drain(w.vm, &zr2);
		t2 = bench_now_ns() - t2;
		break;
	case S_FAST_ZAP_ONE:
		fh.armed = true;
		t0 = bench_now_ns();
		rc = smmu_fast_zap(w.vm, &zr);
		t1 = bench_now_ns();
		break;
	case S_FLUSH:
		t0 = bench_now_ns();
		rc = smmu_memslot_flush(w.vm, w.slot, (enum smmu_flush_strategy)st->arg, &zr);
		t1 = bench_now_ns();
		break;
	case S_NOTIFIER:
		t0 = bench_now_ns();
		dropped = smmu_mmu_notifier_invalidate_range(w.vm, slot.hva,
			(const char *)slot.hva + slot.npages * SMMU_PAGE_SIZE);
		t1 = bench_now_ns();
		rc = dropped < 0 ? (int)dropped : 0;
		break;
	case S_DIRTY_LOG:
	default:
		t0 = bench_now_ns();
		rc = smmu_memslot_set_flags(w.vm, w.slot, w.slot_flags | SMMU_MEM_LOG_DIRTY_PAGES);
		t1 = bench_now_ns();
		break;
	}
	wl_faulters_stop(&con);
	if (st->kind == S_FAST_ZAP_ONE)
		smmu_set_hook(w.vm, NULL, NULL);
	smmu_vm_get_counters(w.vm, &c1);
	uint64_t unsync_after = 0;
	smmu_vm_get_mmu_unsync(w.vm, &unsync_after);
	progress(true, "%s: zapped %" PRIu64 " pages in %.1f ms", label,
		 c1.pages_zapped - c0.pages_zapped, (double)(t1 - t0 + t2) / 1e6);

	cpu_snap(&cpu1);
	double load = other_cpu(&cpu0, &cpu1);
	struct run_result x;
	if (st->kind == S_FAST_ZAP) {
		struct smmu_site_stats all;
		smmu_stats_get(w.vm, SMMU_SITE_FAST_ZAP, &all);
		hist_read(w.vm, SMMU_SITE_FAST_ZAP, &drain_hist);
		hist_sub(&drain_hist, &bump_hist);

		char row[48];
		snprintf(row, sizeof(row), "%s_bump", st->name);
		fill_common(&x, o, &w, row, SMMU_SITE_FAST_ZAP, load);
		fill_census(&x, &census, unsync_after);
		fill_memory(&x, &w, &c0);
		x.floor_ns = floor.total_ns;
		x.floor_read_ns = floor.read_ns;
		x.floor_free_ns = floor.free_ns;
		x.total_ns = t1 - t0;
		fill_site(&x, &bump_stats);
		fill_vcpus(&x, w.vm, &con);
		fill_report(&x, &zr);
		x.vm_pages_zapped = cmid.pages_zapped - c0.pages_zapped;
		x.remote_flushes = zr.remote_flushes;
		x.reload_requests = c1.reload_requests - c0.reload_requests;
		x.pages_after = c1.n_used_mmu_pages;
		x.rc = rc;
		x.ratio = x.floor_ns ? (double)x.total_ns / (double)x.floor_ns : 0;
		x.pages_per_s = x.total_ns ? (double)x.shadow_pages * 1e9 / (double)x.total_ns : 0;
		x.rss_kb = rss0;
		x.maxrss_kb = maxrss_kb();
		report_add(rep, &x);

		struct run_result d = x;
		snprintf(d.strategy, sizeof(d.strategy), "%s_drain", st->name);
		d.total_ns = t2;
		d.hold = hist_summary(&drain_hist);
		for (int i = 0; i < drain_hist.n; i++)
			if (drain_hist.lower[i] >= 20000)
				d.holds_over_20us += drain_hist.count[i];
		d.hold_sum_ns = all.hold.sum - bump_stats.hold.sum;
		if (all.hold.max > bump_stats.hold.max)
			d.hold.max = all.hold.max;
		d.breaks = all.breaks - bump_stats.breaks;
		d.handoffs = all.handoffs - bump_stats.handoffs;
		fill_report(&d, &zr2);
		d.vm_pages_zapped = c1.pages_zapped - cmid.pages_zapped;
		d.remote_flushes = c1.remote_tlb_flushes - c0.remote_tlb_flushes - zr.remote_flushes;
		d.rc = rc2;
		d.ratio = d.floor_ns ? (double)d.total_ns / (double)d.floor_ns : 0;
		d.pages_per_s = d.total_ns ? (double)d.shadow_pages * 1e9 / (double)d.total_ns : 0;
		report_add(rep, &d);
	} else {
		enum smmu_site site = zap_site(w.vm, st->site);
		struct smmu_site_stats s;
		memset(&s, 0, sizeof(s));
		smmu_stats_get(w.vm, site, &s);
		fill_common(&x, o, &w, st->name, site, load);
		fill_census(&x, &census, unsync_after);
		fill_memory(&x, &w, &c0);
		x.floor_ns = floor.total_ns;
		x.floor_read_ns = floor.read_ns;
		x.floor_free_ns = floor.free_ns;
		x.total_ns = t1 - t0;
		fill_site(&x, &s);
		fill_vcpus(&x, w.vm, &con);
		if (st->kind == S_ZAP_ALL || st->kind == S_FLUSH || st->kind == S_FAST_ZAP_ONE) {
			fill_report(&x, &zr);
			x.vm_pages_zapped = c1.pages_zapped - c0.pages_zapped;
		}
		if (st->kind == S_FAST_ZAP_ONE)
			x.first_hold_ns = fh.broken ? fh.t_last - fh.t_taken : s.hold.max;
		else if (st->kind == S_NOTIFIER)
			x.sptes_dropped = dropped > 0 ? (uint64_t)dropped : 0;
		x.remote_flushes = c1.remote_tlb_flushes - c0.remote_tlb_flushes;
		x.reload_requests = c1.reload_requests - c0.reload_requests;
		x.pages_after = c1.n_used_mmu_pages;
		x.rc = rc;
		x.ratio = x.floor_ns ? (double)x.total_ns / (double)x.floor_ns : 0;
		x.pages_per_s = x.total_ns ? (double)x.shadow_pages * 1e9 / (double)x.total_ns : 0;
		x.rss_kb = rss0;
		x.maxrss_kb = maxrss_kb();
		if (rc && rc != -EAGAIN)
			fprintf(stderr, "smmu-bench: %s returned %s\n", st->name, strerror(-rc));
		report_add(rep, &x);
	}
	progress(true, "%s: tearing down", label);
	wl_destroy(&w);
	return 0;
}

uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	uint64_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/*
 * What a run of @p pages needs at its peak (measured: 16.7 GB for 1M shadow pages, 11.9 GB for
 * 1M direct ones): per shadow page its 4 KiB table and header, in shadow mode the 4 KiB gfns
 * array and the guest's own 4 KiB table, in direct mode the 4 KiB of rmap heads its 2 MiB region
 * touches; plus the floor, which allocates header + table (+ gfns) objects while it measures
 * (partly reusing what the allocator keeps).
 */
uint64_t mem_needed(const struct options *o, uint64_t pages)
{
	uint64_t per = o->wl.kind == WL_DIRECT ? 4096 + 4096 + 256 + 4096 + 256
					       : 4096 + 4096 + 4096 + 256 + 4096 + 256;
	return pages * per + (64ull << 20);
}
