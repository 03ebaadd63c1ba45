/*
 * smmu-bench workloads: plan the guest (addresses, table pools, frames), build it through the
 * public API (smmu_gas_map, then smmu_vcpu_fault), and run the vCPU threads that fault during a
 * zap. The shapes are described in workload.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "workload.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SZ_2M_PAGES 512ull             /* 4 KiB pages per 2 MiB region */
#define GVA_USER_TOP (1ull << 47)      /* canonical user half */
#define SPAN_FACTOR 4                  /* shadow: regions chosen out of 4x as many */
#define MAPS_EXTRA_BASE (16ull << 40)  /* maps: faulters' extra pages start at 16 TiB */
/* --guest-writes: the self-map of the tables written, at 512 GiB (the shadow workload's pages lie
 * from 1 TiB up, the maps layouts' far above); one table per 8 pages, so that a fault there has no
 * neighbour to prefetch in its group of PTE_PREFETCH_NUM */
#define SELFMAP_GVA (512ull << 30)
#define SELFMAP_STRIDE 8ull

static const char *const kind_names[WL_KIND_COUNT] = { "direct", "shadow", "maps" };

const char *wl_kind_name(enum wl_kind k)
{
	return (unsigned)k < WL_KIND_COUNT ? kind_names[k] : "?";
}

int wl_kind_parse(const char *s, enum wl_kind *out)
{
	for (int i = 0; i < WL_KIND_COUNT; i++) {
		if (!strcmp(s, kind_names[i])) {
			*out = (enum wl_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- progress ------------------------------------------------------------------------------ */

static bool progress_on;
static uint64_t progress_last_ns;

void progress_set(bool enabled)
{
	progress_on = enabled;
}

bool progress_enabled(void)
{
	return progress_on;
}

void progress(bool force, const char *fmt, ...)
{
	if (!progress_on)
		return;
	uint64_t now = bench_now_ns();
	if (!force && now - progress_last_ns < 100000000ull)
		return;
	progress_last_ns = now;
	va_list ap;
	va_start(ap, fmt);
	fputs("\r\033[K", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void progress_done(void)
{
	if (progress_on) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

/* ---- planning ------------------------------------------------------------------------------ */

/* A process before it exists: what to map and fault, with the frames behind. */
struct plan {
	smmu_gva_t *addr;
	smmu_gfn_t *gfn;      /* (smmu_gfn_t)-1: not assigned yet */
	uint32_t *prot, *access;
	int64_t *shared_idx;  /* maps: index into the layout's shared frames, or -1 */
	uint64_t n, cap;
	smmu_gva_t *extra;
	uint64_t n_extra;
	uint64_t pool_pages;
	smmu_gfn_t pool_gfn;
	int layout;
	uint64_t writes;      /* --guest-writes of this process: distinct last-level tables */
};

static int plan_reserve(struct plan *pl, uint64_t n)
{
	pl->addr = calloc(n ? n : 1, sizeof(*pl->addr));
	pl->gfn = calloc(n ? n : 1, sizeof(*pl->gfn));
	pl->prot = calloc(n ? n : 1, sizeof(*pl->prot));
	pl->access = calloc(n ? n : 1, sizeof(*pl->access));
	pl->shared_idx = calloc(n ? n : 1, sizeof(*pl->shared_idx));
	pl->cap = n;
	return pl->addr && pl->gfn && pl->prot && pl->access && pl->shared_idx ? 0 : -ENOMEM;
}

static void plan_free(struct plan *pl)
{
	free(pl->addr);
	free(pl->gfn);
	free(pl->prot);
	free(pl->access);
	free(pl->shared_idx);
	free(pl->extra);
}

static uint64_t per_table(const struct wl_params *p)
{
	return p->kind == WL_SHADOW && p->per_table > 1 ? (uint64_t)p->per_table : 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Guest tables a process needs: 1 root + distinct 512 GiB, 1 GiB and 2 MiB regions. */
static int plan_pool_size(struct plan *pl)
{
	uint64_t n = pl->n + pl->n_extra;
	uint64_t *v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, pl->addr, pl->n * sizeof(*v));
	if (pl->n_extra)
		memcpy(v + pl->n, pl->extra, pl->n_extra * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_u64);
	uint64_t tables = 1;
	for (unsigned shift = 21; shift <= 39; shift += 9) {
		for (uint64_t i = 0; i < n; i++)
			if (i == 0 || (v[i] >> shift) != (v[i - 1] >> shift))
				tables++;
	}
	free(v);
	/* the self-map of --guest-writes: its last-level tables, level-2 tables and one level-3 */
	uint64_t span = pl->writes * SELFMAP_STRIDE;
	if (pl->writes)
		tables += (span + 511) / 512 + (span + 512 * 512 - 1) / (512 * 512) + 1;
	pl->pool_pages = tables + 2;
	return 0;
}

/* Distinct 2 MiB regions (last-level guest tables) among the addresses a process faults. */
static int plan_tables(const struct plan *pl, uint64_t *out)
{
	uint64_t *v = malloc((pl->n ? pl->n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < pl->n; i++)
		v[i] = pl->addr[i] >> 21;
	qsort(v, pl->n, sizeof(*v), cmp_u64);
	uint64_t t = 0;
	for (uint64_t i = 0; i < pl->n; i++)
		t += i == 0 || v[i] != v[i - 1];
	free(v);
	*out = t;
	return 0;
}

/* Faulting vCPUs per process: vCPU t faults in process t % nproc. */
static uint64_t vcpus_on(int nproc, int vcpus, int p)
{
	if (vcpus <= 0)
		return 0;
	return (uint64_t)(vcpus / nproc + (p < vcpus % nproc ? 1 : 0));
}

static uint64_t extra_per_vcpu(const struct wl_params *p)
{
	if (p->extra)
		return p->extra;
	uint64_t x = p->pages / 8;
	return x < 1024 ? 1024 : x > 65536 ? 65536 : x;
}

/* shadow: n of 4n (+extras) 2 MiB regions of a 1 GiB-aligned span, random 4 KiB inside each. */
static int plan_shadow(const struct wl_params *p, uint64_t *rng, struct plan *pl, int nproc)
{
	for (int i = 0; i < nproc; i++) {
		uint64_t target = p->pages / (uint64_t)nproc + ((uint64_t)i < p->pages % (uint64_t)nproc);
		uint64_t n_extra = extra_per_vcpu(p) * vcpus_on(nproc, p->vcpus, i);
		/* target = n + ceil(span / 512) (level-2 pages) + root + a level-3 page or two */
		uint64_t n = target > 3 ? target - 3 : 1;
		for (int iter = 0; iter < 4; iter++) {
			uint64_t span = SPAN_FACTOR * n + n_extra;
			uint64_t l2 = (span + SZ_2M_PAGES - 1) / SZ_2M_PAGES;
			n = target > 2 + l2 ? target - 2 - l2 : 1;
		}
		uint64_t span = (SPAN_FACTOR * n + n_extra + SZ_2M_PAGES - 1) / SZ_2M_PAGES * SZ_2M_PAGES;
		uint64_t span_gib = span / SZ_2M_PAGES;
		uint64_t lo_gib = 1024, hi_gib = (GVA_USER_TOP >> 30) - 1024 - span_gib;
		if (hi_gib <= lo_gib)
			return -E2BIG;
		smmu_gva_t base = (lo_gib + bench_rand_below(rng, hi_gib - lo_gib)) << 30;

		uint32_t *perm = malloc(span * sizeof(*perm));
		if (!perm || plan_reserve(&pl[i], n)) {
			free(perm);
			return -ENOMEM;
		}
		for (uint64_t r = 0; r < span; r++)
			perm[r] = (uint32_t)r;
		uint64_t take = n + n_extra;
		for (uint64_t r = 0; r < take; r++) { /* partial Fisher-Yates */
			uint64_t j = r + bench_rand_below(rng, span - r);
			uint32_t t = perm[r];
			perm[r] = perm[j];
			perm[j] = t;
		}
		pl[i].n = n;
		uint64_t pt = per_table(p);
		for (uint64_t r = 0; r < n; r++) {
			/* --per-table N: N pages from an 8-aligned slot (a prefetch group's start) */
			uint64_t off = pt == 1 ? bench_rand_below(rng, SZ_2M_PAGES)
					       : bench_rand_below(rng, (SZ_2M_PAGES - pt) / 8 + 1) * 8;
			pl[i].addr[r] = base + ((uint64_t)perm[r] << 21) + (off << 12);
			pl[i].gfn[r] = (smmu_gfn_t)-1;
			pl[i].prot[r] = SMMU_PROT_WRITE | SMMU_PROT_USER | SMMU_PROT_NOEXEC;
			pl[i].access[r] = SMMU_ACC_WRITE | SMMU_ACC_USER;
			pl[i].shared_idx[r] = -1;
		}
		pl[i].n_extra = n_extra;
		pl[i].extra = calloc(n_extra ? n_extra : 1, sizeof(*pl[i].extra));
		if (!pl[i].extra) {
			free(perm);
			return -ENOMEM;
		}
		for (uint64_t r = 0; r < n_extra; r++)
			pl[i].extra[r] = base + ((uint64_t)perm[n + r] << 21) +
					 (bench_rand_below(rng, SZ_2M_PAGES) << 12);
		free(perm);
		pl[i].layout = -1;
	}
	return 0;
}

/* The pages of a layout a process faults: per_vma pages evenly spread over each VMA. */
struct layout_pages {
	smmu_gva_t *addr;
	uint32_t *prot, *access;
	bool *shared;
	uint64_t n;
	uint64_t est_pages; /* shadow pages one process of this layout creates */
	smmu_gfn_t shared_gfn; /* first of n frames shared by every process of the layout */
	bool shared_assigned;
};

static int layout_pick(const struct layout *l, int per_vma, struct layout_pages *lp)
{
	uint64_t cap = 0;
	for (int i = 0; i < l->n; i++) {
		uint64_t npg = (l->vma[i].end - l->vma[i].start) >> 12;
		cap += npg < (uint64_t)per_vma ? npg : (uint64_t)per_vma;
	}
	lp->addr = calloc(cap ? cap : 1, sizeof(*lp->addr));
	lp->prot = calloc(cap ? cap : 1, sizeof(*lp->prot));
	lp->access = calloc(cap ? cap : 1, sizeof(*lp->access));
	lp->shared = calloc(cap ? cap : 1, sizeof(*lp->shared));
	if (!lp->addr || !lp->prot || !lp->access || !lp->shared)
		return -ENOMEM;
	lp->n = 0;
	for (int i = 0; i < l->n; i++) {
		const struct vma *v = &l->vma[i];
		uint64_t npg = (v->end - v->start) >> 12;
		uint64_t k = npg < (uint64_t)per_vma ? npg : (uint64_t)per_vma;
		for (uint64_t j = 0; j < k; j++) {
			uint64_t off = k == 1 ? 0 : (npg - 1) * j / (k - 1);
			smmu_gva_t a = v->start + (off << 12);
			if (lp->n && lp->addr[lp->n - 1] == a)
				continue;
			lp->addr[lp->n] = a;
			lp->prot[lp->n] = SMMU_PROT_USER | (v->write ? SMMU_PROT_WRITE : 0) |
					  (v->exec ? 0 : SMMU_PROT_NOEXEC);
			lp->access[lp->n] = SMMU_ACC_USER | (v->write ? SMMU_ACC_WRITE : 0);
			lp->shared[lp->n] = v->shared_frames;
			lp->n++;
		}
	}
	uint64_t *s = malloc((lp->n ? lp->n : 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s, lp->addr, lp->n * sizeof(*s));
	qsort(s, lp->n, sizeof(*s), cmp_u64);
	lp->est_pages = 1;
	for (unsigned shift = 21; shift <= 39; shift += 9)
		for (uint64_t i = 0; i < lp->n; i++)
			if (i == 0 || (s[i] >> shift) != (s[i - 1] >> shift))
				lp->est_pages++;
	free(s);
	return 0;
}

static void layout_pages_free(struct layout_pages *lp, int n)
{
	for (int i = 0; lp && i < n; i++) {
		free(lp[i].addr);
		free(lp[i].prot);
		free(lp[i].access);
		free(lp[i].shared);
	}
	free(lp);
}

static int load_layouts(const struct wl_params *p, struct layout **out)
{
	if (p->maps_self) {
		*out = calloc(1, sizeof(**out));
		if (!*out)
			return -ENOMEM;
		int r = layout_load("/proc/self/maps", "self", *out);
		return r < 0 ? r : 1;
	}
	if (p->maps_file) {
		*out = calloc(1, sizeof(**out));
		if (!*out)
			return -ENOMEM;
		const char *base = strrchr(p->maps_file, '/');
		int r = layout_load(p->maps_file, base ? base + 1 : p->maps_file, *out);
		return r < 0 ? r : 1;
	}
	return layouts_load_dir(p->datadir, out);
}

/* maps: processes cycling through the layouts until the target is reached. */
static int plan_maps(struct workload *w, uint64_t *rng, struct plan **plp, int *nprocp,
		     struct layout_pages **lpp)
{
	const struct wl_params *p = &w->p;
	struct layout *lay = NULL;
	int nl = load_layouts(p, &lay);
	if (nl < 0) {
		fprintf(stderr, "smmu-bench: cannot load maps layouts: %s\n", strerror(-nl));
		return nl;
	}
	if (nl == 0) {
		fprintf(stderr, "smmu-bench: no *.maps layouts found in %s\n", p->datadir);
		free(lay);
		return -ENOENT;
	}
	struct layout_pages *lp = calloc((size_t)nl, sizeof(*lp));
	if (!lp) {
		layouts_free(lay, nl);
		return -ENOMEM;
	}
	int r = 0;
	for (int i = 0; i < nl && !r; i++) {
		r = layout_pick(&lay[i], p->per_vma, &lp[i]);
		if (!r && lp[i].n == 0) {
			fprintf(stderr, "smmu-bench: layout %s has no accessible VMA\n", lay[i].name);
			r = -ENOENT;
		}
	}
	layouts_free(lay, nl);
	if (r) {
		layout_pages_free(lp, nl);
		return r;
	}
	uint64_t total = 0;
	int nproc = 0;
	while (total < p->pages || nproc < p->procs) {
		total += lp[nproc % nl].est_pages;
		nproc++;
	}
	struct plan *pl = calloc((size_t)nproc, sizeof(*pl));
	if (!pl) {
		layout_pages_free(lp, nl);
		return -ENOMEM;
	}
	for (int i = 0; i < nproc; i++) {
		const struct layout_pages *l = &lp[i % nl];
		if (plan_reserve(&pl[i], l->n))
			goto nomem;
		pl[i].layout = i % nl;
		pl[i].n = l->n;
		/* Fault in a shuffled order, as a process touches its memory in no address order. */
		for (uint64_t j = 0; j < l->n; j++) {
			pl[i].addr[j] = l->addr[j];
			pl[i].prot[j] = l->prot[j];
			pl[i].access[j] = l->access[j];
			pl[i].gfn[j] = (smmu_gfn_t)-1;
			pl[i].shared_idx[j] = l->shared[j] ? (int64_t)j : -1;
		}
		for (uint64_t j = l->n; j > 1; j--) {
			uint64_t k = bench_rand_below(rng, j);
			smmu_gva_t a = pl[i].addr[j - 1];
			uint32_t pr = pl[i].prot[j - 1], ac = pl[i].access[j - 1];
			int64_t sh = pl[i].shared_idx[j - 1];
			pl[i].addr[j - 1] = pl[i].addr[k];
			pl[i].prot[j - 1] = pl[i].prot[k];
			pl[i].access[j - 1] = pl[i].access[k];
			pl[i].shared_idx[j - 1] = pl[i].shared_idx[k];
			pl[i].addr[k] = a;
			pl[i].prot[k] = pr;
			pl[i].access[k] = ac;
			pl[i].shared_idx[k] = sh;
		}
		uint64_t n_extra = extra_per_vcpu(p) * vcpus_on(nproc, p->vcpus, i);
		pl[i].n_extra = n_extra;
		pl[i].extra = calloc(n_extra ? n_extra : 1, sizeof(*pl[i].extra));
		if (!pl[i].extra)
			goto nomem;
		for (uint64_t j = 0; j < n_extra; j++)
			pl[i].extra[j] = MAPS_EXTRA_BASE + (j << 21) + (bench_rand_below(rng, SZ_2M_PAGES) << 12);
	}
	w->nlayouts = nl;
	*plp = pl;
	*nprocp = nproc;
	*lpp = lp;
	return 0;
nomem:
	for (int i = 0; i < nproc; i++)
		plan_free(&pl[i]);
	free(pl);
	layout_pages_free(lp, nl);
	return -ENOMEM;
}

/* ---- building ------------------------------------------------------------------------------ */

static int fail(const char *what, int r)
{
	fprintf(stderr, "smmu-bench: %s failed: %s (%d)\n", what, strerror(r < 0 ? -r : r), r);
	return r < 0 ? r : -EIO;
}

static int create_vm(struct workload *w, enum smmu_mmu_mode mode, uint64_t budget)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = mode;
	/* No reclaim during the bench: the page budget is far above what the run creates. */
	cfg.max_mmu_pages = budget;
	cfg.hash_buckets = w->p.hash_buckets;
	cfg.hash_fn = w->p.hash_fn;
	cfg.profile = w->p.profile;
	cfg.zap_batch = w->p.zap_batch;
	cfg.zap_commit_per_batch = w->p.commit_per_batch;
	cfg.zap_leaf_first = w->p.leaf_first;
	cfg.preempt = w->p.preempt;
	cfg.resched_slice_ns = w->p.resched_slice_ns;
	int r = smmu_vm_create(&cfg, &w->vm);
	if (r)
		return fail("smmu_vm_create", r);
	if (!smmu_vm_get_config(w->vm, &cfg)) {
		w->hash_buckets = cfg.hash_buckets;
		w->hash_fn = cfg.hash_fn;
		w->zap_batch = cfg.zap_batch;
	}
	r = smmu_vcpu_create(w->vm, &w->builder);
	if (r)
		return fail("smmu_vcpu_create", r);
	return 0;
}

static int create_slot(struct workload *w, uint64_t npages, uint32_t flags)
{
	w->slot = 0;
	w->slot_base = 0;
	w->slot_pages = (npages + SZ_2M_PAGES - 1) / SZ_2M_PAGES * SZ_2M_PAGES;
	w->slot_flags = flags;
	int r = smmu_memslot_create(w->vm, w->slot, w->slot_base, w->slot_pages, flags);
	return r ? fail("smmu_memslot_create", r) : 0;
}

static int do_fault(struct workload *w, smmu_gva_t addr, uint32_t access)
{
	struct smmu_fault_info info;
	int r;
	int tries = 0;
	do {
		r = smmu_vcpu_fault(w->builder, addr, access, &info);
	} while (r == SMMU_FAULT_RETRY && ++tries < 8);
	w->faults++;
	if (r < 0)
		return fail("smmu_vcpu_fault", r);
	if (r != SMMU_FAULT_MAPPED) {
		if (w->fault_errors++ == 0)
			fprintf(stderr, "smmu-bench: fault at %#llx: outcome %d (pf reason %d)\n",
				(unsigned long long)addr, r, (int)info.pf_reason);
		return 0;
	}
	if (info.level > w->leaf_level_max)
		w->leaf_level_max = info.level;
	return 0;
}

static int build_direct(struct workload *w, uint64_t *rng)
{
	const struct wl_params *p = &w->p;
	/* target = n last-level pages + ceil(n / 512) + a level-3 page or so + the root */
	uint64_t n = p->pages > 3 ? p->pages - 2 - (p->pages + SZ_2M_PAGES - 1) / SZ_2M_PAGES : 1;
	if (n == 0 || n > p->pages)
		n = 1;
	uint64_t x = extra_per_vcpu(p) * (uint64_t)(p->vcpus > 0 ? p->vcpus : 0);
	uint64_t regions = n + x;
	uint64_t budget = 4 * (regions + regions / SZ_2M_PAGES) + 65536;
	int r = create_vm(w, SMMU_MODE_DIRECT, budget);
	if (r)
		return r;
	/* Dirty logging keeps every leaf at 4 KiB (it disallows large pages), as the shape needs. */
	r = create_slot(w, regions * SZ_2M_PAGES, SMMU_MEM_LOG_DIRTY_PAGES);
	if (r)
		return r;
	w->proc = calloc(1, sizeof(*w->proc));
	if (!w->proc)
		return -ENOMEM;
	w->nproc = 1;
	struct wl_proc *pr = &w->proc[0];
	pr->addr = malloc(n * sizeof(*pr->addr));
	pr->extra = malloc((x ? x : 1) * sizeof(*pr->extra));
	uint32_t *perm = malloc(n * sizeof(*perm));
	if (!pr->addr || !pr->extra || !perm) {
		free(perm);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t k = bench_rand_below(rng, i);
		uint32_t t = perm[i - 1];
		perm[i - 1] = perm[k];
		perm[k] = t;
	}
	for (uint64_t i = 0; i < n; i++)
		pr->addr[i] = ((uint64_t)perm[i] * SZ_2M_PAGES + bench_rand_below(rng, SZ_2M_PAGES)) << 12;
	free(perm);
	pr->n = n;
	for (uint64_t i = 0; i < x; i++)
		pr->extra[i] = ((n + i) * SZ_2M_PAGES + bench_rand_below(rng, SZ_2M_PAGES)) << 12;
	pr->n_extra = x;

	uint64_t t_fault = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		r = do_fault(w, pr->addr[i], SMMU_ACC_WRITE | SMMU_ACC_USER);
		if (r)
			return r;
		if ((i & 1023) == 0)
			progress(false, "%s: faulting %llu/%llu  %.1f s", p->label,
				 (unsigned long long)i, (unsigned long long)n,
				 (double)(bench_now_ns() - w->build_ns) / 1e9);
	}
	w->fault_ns = bench_now_ns() - t_fault;
	return 0;
}

/* --gpte-accessed off: clear the Accessed bit of the leaf pte mapping @gva (before any fault, so
 * the write is not trapped: no table is shadowed yet). */
static int clear_accessed(smmu_vm *vm, smmu_gpa_t cr3, smmu_gva_t gva)
{
	struct smmu_guest_walk wk;
	int r = smmu_guest_walk(vm, cr3, gva, &wk);
	if (r)
		return r;
	smmu_gpa_t gpa = (wk.table_gfn[0] << SMMU_PAGE_SHIFT) + ((gva >> 12) & 511) * 8;
	return smmu_guest_write_u64(vm, gpa, wk.pte & ~(uint64_t)SMMU_PTE_ACCESSED);
}

/* --guest-writes: spread the writes over the processes that no faulting vCPU uses (a vCPU's
 * root load syncs its process's unsync pages before the zap), at most one per last-level table. */
static int plan_writes(const struct wl_params *p, struct plan *pl, int nproc)
{
	uint64_t *tables = calloc((size_t)nproc, sizeof(*tables)), cap = 0, left = p->guest_writes;
	int eligible = 0;
	if (!tables)
		return -ENOMEM;
	for (int i = 0; i < nproc; i++) {
		if (vcpus_on(nproc, p->vcpus, i))
			continue;
		if (plan_tables(&pl[i], &tables[i])) {
			free(tables);
			return -ENOMEM;
		}
		cap += tables[i];
		eligible++;
	}
	if (cap < left) {
		fprintf(stderr, "smmu-bench: --guest-writes %llu: the %d process%s that no faulting vCPU "
			"uses ha%s %llu last-level table%s (fewer --vcpus, more --procs or --pages)\n",
			(unsigned long long)left, eligible, eligible == 1 ? "" : "es",
			eligible == 1 ? "s" : "ve", (unsigned long long)cap, cap == 1 ? "" : "s");
		free(tables);
		return -EINVAL;
	}
	while (left)
		for (int i = 0; i < nproc && left; i++)
			if (pl[i].writes < tables[i] && !vcpus_on(nproc, p->vcpus, i))
				pl[i].writes++, left--;
	free(tables);
	return 0;
}

/* --guest-writes: map the last-level tables of pl->writes distinct regions writable in the
 * process's own address space (before any fault: the tables are not shadowed yet), and note
 * where each one's faulted pte is, seen through that map and in guest physical memory. */
static int map_self(smmu_vm *vm, struct wl_proc *pr, const struct plan *pl, bool reads)
{
	if (!pl->writes)
		return 0;
	uint64_t *v = malloc(pl->n * sizeof(*v));
	pr->wr_gva = calloc(pl->writes, sizeof(*pr->wr_gva));
	pr->wr_gpa = calloc(pl->writes, sizeof(*pr->wr_gpa));
	if (!v || !pr->wr_gva || !pr->wr_gpa) {
		free(v);
		return -ENOMEM;
	}
	memcpy(v, pl->addr, pl->n * sizeof(*v));
	qsort(v, pl->n, sizeof(*v), cmp_u64);
	int r = 0;
	for (uint64_t i = 0; i < pl->n && pr->n_wr < pl->writes && !r; i++) {
		if (i && v[i] >> 21 == v[i - 1] >> 21)
			continue;
		struct smmu_guest_walk wk;
		r = smmu_guest_walk(vm, pr->cr3, v[i], &wk);
		if (r)
			break;
		smmu_gva_t self = SELFMAP_GVA + pr->n_wr * SELFMAP_STRIDE * SMMU_PAGE_SIZE;
		uint64_t off = ((v[i] >> 12) & 511) * 8;
		struct smmu_guest_walk taken;
		if (!smmu_guest_walk(vm, pr->cr3, self, &taken)) { /* a layout maps the window itself */
			r = -EEXIST;
			break;
		}
		/* --guest-reads maps them read-only: a read through a writable, dirty pte would map
		 * the table writable and unsync it all the same */
		r = smmu_gas_map(pr->gas, self, wk.table_gfn[0], SMMU_LEVEL_4K,
				 (reads ? 0 : SMMU_PROT_WRITE) | SMMU_PROT_USER | SMMU_PROT_NOEXEC);
		pr->wr_gva[pr->n_wr] = self + off;
		pr->wr_gpa[pr->n_wr] = (wk.table_gfn[0] << SMMU_PAGE_SHIFT) + off;
		pr->n_wr++;
	}
	free(v);
	return r ? fail("mapping the tables for --guest-writes", r) : 0;
}

/* --guest-writes, after the build's faults: each process rewrites its chosen leaf ptes, the same
 * value, through its self-map; the write faults the table in writable, which unsyncs its level-1
 * shadow page (mmu_try_to_unsync_pages), and lands untrapped. --guest-reads: the same accesses as
 * reads, which map the tables read-only and leave their pages sync. */
static int guest_writes(struct workload *w)
{
	for (int i = 0; i < w->nproc; i++) {
		struct wl_proc *pr = &w->proc[i];
		if (!pr->n_wr)
			continue;
		int r = smmu_vcpu_set_cr3(w->builder, pr->cr3);
		if (r)
			return fail("smmu_vcpu_set_cr3", r);
		for (uint64_t k = 0; k < pr->n_wr; k++) {
			uint64_t pte;
			if (w->p.guest_reads) {
				r = smmu_vcpu_read(w->builder, pr->wr_gva[k], &pte, sizeof(pte));
				if (r)
					return fail("smmu_vcpu_read (--guest-reads)", r);
				w->guest_reads++;
				continue;
			}
			r = smmu_guest_read_u64(w->vm, pr->wr_gpa[k], &pte);
			if (!r)
				r = smmu_vcpu_write(w->builder, pr->wr_gva[k], &pte, sizeof(pte));
			if (r)
				return fail("smmu_vcpu_write (--guest-writes)", r);
			w->guest_writes++;
		}
	}
	return 0;
}

/* shadow and maps: plan, lay out frames, create the slot, map every page, fault the workload. */
static int build_guest(struct workload *w, uint64_t *rng)
{
	const struct wl_params *p = &w->p;
	struct plan *pl = NULL;
	struct layout_pages *lp = NULL;
	int nproc = 0;
	int r;
	if (p->kind == WL_SHADOW) {
		nproc = p->procs;
		pl = calloc((size_t)nproc, sizeof(*pl));
		if (!pl)
			return -ENOMEM;
		r = plan_shadow(p, rng, pl, nproc);
	} else {
		r = plan_maps(w, rng, &pl, &nproc, &lp);
	}
	if (r)
		goto out;

	if (p->guest_writes) {
		r = plan_writes(p, pl, nproc);
		if (r)
			goto out;
	}

	/* Frames: every process's table pool, then the data frames. */
	smmu_gfn_t next = 0;
	uint64_t total_addr = 0;
	for (int i = 0; i < nproc; i++) {
		r = plan_pool_size(&pl[i]);
		if (r)
			goto out;
		pl[i].pool_gfn = next;
		next += pl[i].pool_pages;
		total_addr += pl[i].n + pl[i].n_extra;
	}
	for (int i = 0; i < nproc; i++) {
		for (uint64_t j = 0; j < pl[i].n; j++) {
			if (pl[i].shared_idx[j] >= 0) {
				struct layout_pages *l = &lp[pl[i].layout];
				if (!l->shared_assigned) {
					l->shared_gfn = next;
					next += l->n;
					l->shared_assigned = true;
				}
				pl[i].gfn[j] = l->shared_gfn + (uint64_t)pl[i].shared_idx[j];
			} else {
				pl[i].gfn[j] = next;
				next += per_table(p);
			}
		}
	}
	smmu_gfn_t extra_gfn = next;
	for (int i = 0; i < nproc; i++)
		next += pl[i].n_extra; /* one frame each */

	uint64_t budget = 4 * (total_addr + (uint64_t)nproc * 4) + 65536;
	r = create_vm(w, SMMU_MODE_SHADOW, budget);
	if (r)
		goto out;
	r = create_slot(w, next, 0);
	if (r)
		goto out;
	if (p->host_writable) {
		struct smmu_memslot_info info;
		r = smmu_memslot_get(w->vm, w->slot, &info);
		if (!r)
			r = smmu_host_wrote(w->vm, info.hva, (const char *)info.hva + info.npages * SMMU_PAGE_SIZE);
		if (r) {
			r = fail("smmu_host_wrote", r);
			goto out;
		}
	}
	w->proc = calloc((size_t)nproc, sizeof(*w->proc));
	if (!w->proc) {
		r = -ENOMEM;
		goto out;
	}
	w->nproc = nproc;

	/* Map everything (workload and extras) before any fault, so no table write is trapped. */
	uint64_t mapped = 0;
	uint64_t t_map = bench_now_ns();
	for (int i = 0; i < nproc; i++) {
		struct wl_proc *pr = &w->proc[i];
		r = smmu_gas_create(w->vm, pl[i].pool_gfn, pl[i].pool_pages, &pr->gas);
		if (r) {
			r = fail("smmu_gas_create", r);
			goto out;
		}
		pr->cr3 = smmu_gas_cr3(pr->gas);
		for (uint64_t j = 0; j < pl[i].n; j++) {
			for (uint64_t k = 0; k < per_table(p); k++) {
				r = smmu_gas_map(pr->gas, pl[i].addr[j] + (k << 12), pl[i].gfn[j] + k,
						 SMMU_LEVEL_4K, pl[i].prot[j]);
				if (!r && p->gpte_no_accessed)
					r = clear_accessed(w->vm, pr->cr3, pl[i].addr[j] + (k << 12));
				if (r) {
					r = fail("smmu_gas_map", r);
					goto out;
				}
			}
			if ((++mapped & 1023) == 0)
				progress(false, "%s: mapping %llu/%llu  %.1f s", p->label,
					 (unsigned long long)mapped, (unsigned long long)total_addr,
					 (double)(bench_now_ns() - w->build_ns) / 1e9);
		}
		for (uint64_t j = 0; j < pl[i].n_extra; j++) {
			r = smmu_gas_map(pr->gas, pl[i].extra[j], extra_gfn++, SMMU_LEVEL_4K,
					 SMMU_PROT_WRITE | SMMU_PROT_USER | SMMU_PROT_NOEXEC);
			if (!r && p->gpte_no_accessed)
				r = clear_accessed(w->vm, pr->cr3, pl[i].extra[j]);
			if (r) {
				r = fail("smmu_gas_map (extra)", r);
				goto out;
			}
			mapped++;
		}
		r = map_self(w->vm, pr, &pl[i], p->guest_reads);
		if (r)
			goto out;
		/* Hand the arrays over to the workload. */
		pr->addr = pl[i].addr;
		pr->access = pl[i].access;
		pr->n = pl[i].n;
		pr->extra = pl[i].extra;
		pr->n_extra = pl[i].n_extra;
		pl[i].addr = NULL;
		pl[i].access = NULL;
		pl[i].extra = NULL;
	}

	w->map_ns = bench_now_ns() - t_map;
	uint64_t t_fault = bench_now_ns();
	uint64_t done = 0, todo = total_addr;
	for (int i = 0; i < nproc; i++)
		todo -= w->proc[i].n_extra;
	for (int i = 0; i < nproc; i++) {
		struct wl_proc *pr = &w->proc[i];
		r = smmu_vcpu_set_cr3(w->builder, pr->cr3);
		if (r) {
			r = fail("smmu_vcpu_set_cr3", r);
			goto out;
		}
		for (uint64_t j = 0; j < pr->n; j++) {
			r = do_fault(w, pr->addr[j], pr->access[j]);
			if (r)
				goto out;
			if ((++done & 1023) == 0)
				progress(false, "%s: faulting %llu/%llu  %.1f s", p->label,
					 (unsigned long long)done, (unsigned long long)todo,
					 (double)(bench_now_ns() - w->build_ns) / 1e9);
		}
	}
	w->fault_ns = bench_now_ns() - t_fault;
	r = guest_writes(w);
out:
	for (int i = 0; pl && i < nproc; i++)
		plan_free(&pl[i]);
	free(pl);
	if (lp)
		layout_pages_free(lp, w->nlayouts);
	return r;
}

int wl_build(struct workload *w, const struct wl_params *p)
{
	memset(w, 0, sizeof(*w));
	w->p = *p;
	if (!w->p.label)
		w->p.label = wl_kind_name(p->kind);
	if (w->p.procs < 1)
		w->p.procs = 1;
	if (w->p.per_vma < 1)
		w->p.per_vma = 1;
	uint64_t rng = p->seed;
	uint64_t t0 = bench_now_ns();
	w->build_ns = t0;
	int r = p->kind == WL_DIRECT ? build_direct(w, &rng) : build_guest(w, &rng);
	w->build_ns = bench_now_ns() - t0;
	if (r == -ENOMEM)
		fprintf(stderr, "smmu-bench: out of memory building the %s workload\n",
			wl_kind_name(p->kind));
	if (!r && w->fault_errors)
		fprintf(stderr, "smmu-bench: %llu of %llu build faults did not map\n",
			(unsigned long long)w->fault_errors, (unsigned long long)w->faults);
	return r;
}

void wl_destroy(struct workload *w)
{
	smmu_vcpu_destroy(w->builder);
	for (int i = 0; w->proc && i < w->nproc; i++) {
		smmu_gas_destroy(w->proc[i].gas);
		free(w->proc[i].addr);
		free(w->proc[i].access);
		free(w->proc[i].extra);
		free(w->proc[i].wr_gva);
		free(w->proc[i].wr_gpa);
	}
	free(w->proc);
	smmu_vm_destroy(w->vm);
	memset(w, 0, sizeof(*w));
}

int wl_census(struct workload *w, struct wl_census *out)
{
	memset(out, 0, sizeof(*out));
	smmu_mmu_lock(w->vm, SMMU_SITE_USER0);
	for (smmu_sp *sp = smmu_active_first(w->vm); sp; sp = smmu_active_next(w->vm, sp)) {
		struct smmu_sp_info info;
		if (smmu_sp_get_info(w->vm, sp, &info) || info.invalid || info.level != SMMU_LEVEL_4K)
			continue;
		out->leaf_pages++;
		out->leaf_sptes += info.n_present;
	}
	smmu_mmu_unlock(w->vm);
	return smmu_vm_get_mmu_unsync(w->vm, &out->unsync_pages);
}

uint64_t wl_kvm_rmap_head_bytes(const struct workload *w)
{
	/* KVM allocates one rmap head (8 bytes) per gfn per level for every slot (3.11's
	 * kvm_arch_create_memslot): level L has one entry per 512^(L-1) gfns the slot touches. */
	uint64_t bytes = 0;
	for (unsigned level = 1; level <= 3; level++) {
		unsigned shift = (level - 1) * 9;
		uint64_t first = w->slot_base >> shift;
		uint64_t last = (w->slot_base + w->slot_pages - 1) >> shift;
		bytes += (last - first + 1) * 8;
	}
	return bytes;
}

/* ---- faulting vCPUs ------------------------------------------------------------------------- */

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	struct contention *c = f->c;
	uint64_t i = 0;
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		struct smmu_fault_info info;
		int r = smmu_vcpu_fault(f->vcpu, f->addr[i], SMMU_ACC_WRITE | SMMU_ACC_USER, &info);
		if (++i == f->n)
			i = 0;
		f->faults++;
		if (r == SMMU_FAULT_MAPPED) {
			f->mapped++;
			f->created += info.pages_created;
		} else if (r == SMMU_FAULT_RETRY) {
			f->retries++;
		} else if (f->errors++ == 0) {
			f->first_error = r;
		}
		if (!f->started) {
			f->started = true;
			atomic_fetch_add_explicit(&c->ready, 1, memory_order_release);
		}
	}
	return NULL;
}

int wl_faulters_start(struct workload *w, struct contention *c, int n)
{
	memset(c, 0, sizeof(*c));
	c->w = w;
	atomic_init(&c->stop, false);
	atomic_init(&c->ready, 0);
	if (n <= 0)
		return 0;
	c->f = calloc((size_t)n, sizeof(*c->f));
	if (!c->f)
		return -ENOMEM;
	c->nf = n;
	/* vCPU t faults in process t % nproc, on its own slice of that process's extras. */
	for (int t = 0; t < n; t++) {
		struct faulter *f = &c->f[t];
		int pidx = t % w->nproc;
		struct wl_proc *pr = &w->proc[pidx];
		uint64_t share = vcpus_on(w->nproc, n, pidx);
		uint64_t k = (uint64_t)(t / w->nproc);
		uint64_t slice = share ? pr->n_extra / share : 0;
		f->c = c;
		f->addr = pr->extra + k * slice;
		f->n = slice;
		if (f->n == 0) {
			fprintf(stderr, "smmu-bench: no extra addresses for faulting vCPU %d\n", t);
			wl_faulters_stop(c);
			return -EINVAL;
		}
		int r = smmu_vcpu_create(w->vm, &f->vcpu);
		if (r) {
			wl_faulters_stop(c);
			return fail("smmu_vcpu_create", r);
		}
		if (w->p.kind != WL_DIRECT) {
			f->cr3 = pr->cr3;
			r = smmu_vcpu_set_cr3(f->vcpu, f->cr3);
			if (r) {
				wl_faulters_stop(c);
				return fail("smmu_vcpu_set_cr3", r);
			}
		}
	}
	for (int t = 0; t < n; t++) {
		int r = pthread_create(&c->f[t].thread, NULL, faulter_main, &c->f[t]);
		if (r) {
			wl_faulters_stop(c);
			return fail("pthread_create", -r);
		}
		c->n = t + 1;
	}
	while (atomic_load_explicit(&c->ready, memory_order_acquire) < n)
		sched_yield();
	return 0;
}

void wl_faulters_stop(struct contention *c)
{
	atomic_store(&c->stop, true);
	for (int t = 0; t < c->n; t++)
		pthread_join(c->f[t].thread, NULL);
	for (int t = 0; c->f && t < c->nf; t++) {
		struct faulter *f = &c->f[t];
		c->faults += f->faults;
		c->mapped += f->mapped;
		c->retries += f->retries;
		c->created += f->created;
		if (f->errors && !c->errors)
			c->first_error = f->first_error;
		c->errors += f->errors;
		smmu_vcpu_destroy(f->vcpu);
	}
	free(c->f);
	c->f = NULL;
	c->n = 0;
	c->nf = 0;
}
