/*
 * smmu-bench: how long each invalidation strategy holds mmu_lock, how long faulting vCPUs wait
 * for it, and what the whole zap costs against the physical floor, on workloads of 1K to 1M
 * shadow pages. Public API only. This file: the strategies, the options, the loop over sizes
 * and strategies; run.c measures one run.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shadowmmu/shadowmmu.h>

#include "report.h"
#include "noise.h"
#include "run.h"
#include "workload.h"

/* ---- strategies -------------------------------------------------------------------------------- */

static const struct strategy strategies[] = {
	{ "zap_all_hold", S_ZAP_ALL, SMMU_ZAP_HOLD, SMMU_SITE_ZAP_ALL,
	  "kvm_mmu_zap_all holding mmu_lock throughout (before 3.11)" },
	{ "zap_all_restart", S_ZAP_ALL, SMMU_ZAP_RESTART, SMMU_SITE_ZAP_ALL,
	  "zap_all breaking the lock on contention and restarting the walk (the 2019 hang)" },
	{ "zap_all_gen", S_ZAP_ALL, SMMU_ZAP_GENERATION, SMMU_SITE_ZAP_ALL,
	  "zap_all breaking the lock, zapping only its starting generation (the thread)" },
	{ "fast_zap", S_FAST_ZAP, 0, SMMU_SITE_FAST_ZAP,
	  "smmu_fast_zap_bump then smmu_fast_zap_drain, reported as two rows" },
	{ "fast_zap_kvm", S_FAST_ZAP_ONE, 0, SMMU_SITE_FAST_ZAP,
	  "smmu_fast_zap: bump, reloads and drain in one critical section, as KVM does; reports the "
	  "first hold (bump + first batch)" },
	{ "fast_zap_batched", S_FAST_ZAP, 1, SMMU_SITE_FAST_ZAP,
	  "fast zap whose drain commits (flush + free) at every lock break (zap_commit_per_batch)" },
	{ "fast_zap_leaf", S_FAST_ZAP, 3, SMMU_SITE_FAST_ZAP,
	  "fast_zap_batched zapping lowest-level obsolete pages first (zap_leaf_first), batch 1" },
	{ "flush_zap_all", S_FLUSH, SMMU_FLUSH_ZAP_ALL, SMMU_SITE_MEMSLOT_FLUSH,
	  "memslot flush: zap_all" },
	{ "flush_fast_zap", S_FLUSH, SMMU_FLUSH_FAST_ZAP, SMMU_SITE_MEMSLOT_FLUSH,
	  "memslot flush: fast zap (3.11's choice)" },
	{ "flush_rmap_only", S_FLUSH, SMMU_FLUSH_RMAP_ONLY, SMMU_SITE_MEMSLOT_FLUSH,
	  "memslot flush: the slot's rmaps only (the v4 patch)" },
	{ "flush_rmap_rebuild", S_FLUSH, SMMU_FLUSH_RMAP_REBUILD, SMMU_SITE_MEMSLOT_FLUSH,
	  "memslot flush: rmaps plus an lpage_info rebuild" },
	{ "flush_hash_walk", S_FLUSH, SMMU_FLUSH_HASH_WALK, SMMU_SITE_MEMSLOT_FLUSH,
	  "memslot flush: mmu_page_hash for every gfn of the slot, plus rmaps" },
	{ "notifier", S_NOTIFIER, 0, SMMU_SITE_MMU_NOTIFIER,
	  "host range invalidation of the whole slot backing (MMU notifier)" },
	{ "dirty_log", S_DIRTY_LOG, 0, SMMU_SITE_MEMSLOT,
	  "turn on dirty logging: write-protect the slot (smmu_memslot_set_flags)" },
};
#define N_STRATEGIES (int)(sizeof(strategies) / sizeof(strategies[0]))
_Static_assert(N_STRATEGIES <= MAX_STRATEGIES, "raise MAX_STRATEGIES");

static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "hold", "zap_all_hold" },   { "restart", "zap_all_restart" },
	{ "generation", "zap_all_gen" }, { "gen", "zap_all_gen" },
	{ "fast", "fast_zap" },       { "rmap_only", "flush_rmap_only" },
	{ "hash_walk", "flush_hash_walk" }, { "mmu_notifier", "notifier" },
};

static int strategy_find(const char *name)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (!strcmp(name, aliases[i].alias))
			name = aliases[i].name;
	for (int i = 0; i < N_STRATEGIES; i++)
		if (!strcmp(name, strategies[i].name))
			return i;
	return -1;
}


/* ---- options ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: smmu-bench [options]\n"
"\n"
"Zaps a VM full of shadow pages with each strategy while vCPU threads keep faulting, and reports\n"
"mmu_lock hold times, vCPU wait, lock breaks, rounds, remote TLB flushes, memory, and the total\n"
"against the floor (reading and freeing every shadow page once, measured in the same run).\n"
"Without options: the headline comparison (shadow workload, 100K shadow pages, 16 processes,\n"
"1 vCPU faulting, every strategy but the MMU notifier's).\n"
"\n"
"workload\n"
"  --workload W       shadow (default), direct or maps\n"
"  --pages N          target shadow pages, 1K..1M (K = 1000, M = 1000000; default 100K)\n"
"  --procs N          guest processes (shadow; the minimum for maps; default 16)\n"
"  --seed N           the workload's seed (default 1): same seed, same shape\n"
"  --maps-file F      maps: use this /proc/PID/maps layout instead of the built-in ones\n"
"  --maps-self        maps: use this program's own /proc/self/maps\n"
"  --per-vma N        maps: pages faulted per VMA (default 4)\n"
"  --data-dir D       where the built-in layouts (*.maps) are\n"
"pte prefetch and unsync pages (shadow and maps workloads)\n"
"  --gpte-accessed on|off  leaf guest ptes with the Accessed bit (default on, as a used pte has\n"
"                     it; pte prefetch maps only such neighbours) or without (no prefetch)\n"
"  --host-writable on|off  on: the host maps every guest frame writable before the build (a guest\n"
"                     that touched its memory once), so prefetch can map the neighbours of a\n"
"                     fault; off (default): only frames faulted in or written\n"
"  --per-table N      shadow: N consecutive 4 KiB pages mapped per guest last-level table, the\n"
"                     first one faulted (default 1; 8 = a whole prefetch group), 1..512\n"
"  --guest-writes N   after the build, the guest rewrites the leaf pte of N of its last-level\n"
"                     tables through a writable mapping of them: N level-1 shadow pages go\n"
"                     unsync. Only in processes that no faulting vCPU uses (default 0)\n"
"  --guest-reads N    as --guest-writes, but the guest reads those ptes: the same self-map pages\n"
"                     and sptes, nothing unsync (the control for --guest-writes)\n"
"contention\n"
"  --vcpus N          vCPU threads faulting during each zap (default 1); at most cores - 1\n"
"  --force            allow more threads than cores (spinning waiters then measure the scheduler)\n"
"  --extra N          pre-mapped addresses per faulting vCPU (default pages/8, within 1024..65536)\n"
"  --max-rounds N     zap_all_restart gives up after N walks (default: pages + 1000, i.e. when\n"
"                     it restarted more often than there were pages to zap; 0 = never)\n"
"model\n"
"  --hash-buckets N   mmu_page_hash buckets, a power of two (default 4096)\n"
"  --hash-fn F        hash64 (default) or mask. The bench uses today's KVM hash (4096 buckets,\n"
"                     hash_64): with 3.11's (1024, gfn & 1023) a 100K-page VM has chains of\n"
"                     ~100 pages that make every fault several times slower, and in direct\n"
"                     mode the aligned gfns of direct pages pile up in buckets/512 buckets.\n"
"                     --hash-buckets 1024 --hash-fn mask reproduces 3.11\n"
"  --profile P        3.11 (default), 6.1 or today (6.18): the kernel whose rules apply\n"
"  --zap-batch N      fast zap's pages between lock breaks (default KVM's BATCH_ZAP_PAGES, 10;\n"
"                     fast_zap_leaf: 1)\n"
"  --preempt M        the host kernel's preemption model: full (default: cond_resched_lock breaks\n"
"                     for a waiting vCPU or on need_resched), voluntary or none (on need_resched\n"
"                     only: spin_needbreak is 0 unless the kernel is preemptible)\n"
"  --slice-us N       need_resched comes after the zapper ran N us, another task being runnable\n"
"                     on its CPU (default 4000: HZ=250's tick after a 3 ms base slice); 0 =\n"
"                     nothing else runnable there, need_resched never comes\n"
"  --floor-runs N     the floor is the median of N measurements right before the zap (default 3)\n"
"runs\n"
"  --strategies LIST  comma-separated; 'all' for every one (default: all but notifier);\n"
"                     --list shows them\n"
"  --quick            small sizes, a few seconds (2K pages; with --scaling 1K and 10K)\n"
"  --scaling          zap_all_hold, fast_zap and fast_zap_leaf at 1K, 10K, 100K, 1M pages: max\n"
"                     hold vs pages\n"
"  --sizes LIST       the sizes of --scaling\n"
"output\n"
"  --json             one JSON object per run per line\n"
"  --csv              one CSV row per run, with a header\n"
"  -o, --output F     write there instead of stdout\n"
"  --save F           also write the JSON lines to F (for bench/plot.sh), whatever the format\n"
"  --list             list the strategies\n"
"  -h, --help\n"
"Progress goes to stderr when it is a terminal.\n");
}

static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v *= 1e3, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1e6, end++;
	if (*end)
		return -EINVAL;
	*out = (uint64_t)(v + 0.5);
	return 0;
}

static int parse_list(const char *arg, uint64_t *v, int cap)
{
	char *s = strdup(arg), *save = NULL;
	int n = 0;
	if (!s)
		return -ENOMEM;
	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == cap || parse_count(t, &v[n])) {
			free(s);
			return -EINVAL;
		}
		n++;
	}
	free(s);
	return n;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum {
		O_WORKLOAD = 256, O_PAGES, O_PROCS, O_SEED, O_MAPS_FILE, O_MAPS_SELF, O_PER_VMA,
		O_DATA_DIR, O_VCPUS, O_FORCE, O_EXTRA, O_MAX_ROUNDS, O_STRATEGIES, O_QUICK, O_SCALING,
		O_SIZES, O_JSON, O_CSV, O_LIST, O_HASH, O_FLOOR_RUNS, O_SAVE, O_HASH_FN, O_PROFILE, O_ZAP_BATCH,
		O_PREEMPT, O_SLICE, O_GPTE_ACCESSED, O_HOST_WRITABLE, O_PER_TABLE, O_GUEST_WRITES,
		O_GUEST_READS,
	};
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, O_WORKLOAD },
		{ "pages", required_argument, NULL, O_PAGES },
		{ "procs", required_argument, NULL, O_PROCS },
		{ "seed", required_argument, NULL, O_SEED },
		{ "maps-file", required_argument, NULL, O_MAPS_FILE },
		{ "maps-self", no_argument, NULL, O_MAPS_SELF },
		{ "per-vma", required_argument, NULL, O_PER_VMA },
		{ "data-dir", required_argument, NULL, O_DATA_DIR },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "force", no_argument, NULL, O_FORCE },
		{ "extra", required_argument, NULL, O_EXTRA },
		{ "max-rounds", required_argument, NULL, O_MAX_ROUNDS },
		{ "strategies", required_argument, NULL, O_STRATEGIES },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "scaling", no_argument, NULL, O_SCALING },
		{ "sizes", required_argument, NULL, O_SIZES },
		{ "json", no_argument, NULL, O_JSON },
		{ "csv", no_argument, NULL, O_CSV },
		{ "output", required_argument, NULL, 'o' },
		{ "save", required_argument, NULL, O_SAVE },
		{ "list", no_argument, NULL, O_LIST },
		{ "hash-buckets", required_argument, NULL, O_HASH },
		{ "floor-runs", required_argument, NULL, O_FLOOR_RUNS },
		{ "hash-fn", required_argument, NULL, O_HASH_FN },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "zap-batch", required_argument, NULL, O_ZAP_BATCH },
		{ "preempt", required_argument, NULL, O_PREEMPT },
		{ "slice-us", required_argument, NULL, O_SLICE },
		{ "gpte-accessed", required_argument, NULL, O_GPTE_ACCESSED },
		{ "host-writable", required_argument, NULL, O_HOST_WRITABLE },
		{ "per-table", required_argument, NULL, O_PER_TABLE },
		{ "guest-writes", required_argument, NULL, O_GUEST_WRITES },
		{ "guest-reads", required_argument, NULL, O_GUEST_READS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->wl.kind = WL_SHADOW;
	o->wl.pages = 100000;
	o->wl.procs = 16;
	o->wl.vcpus = 1;
	o->wl.seed = 1;
	o->wl.per_vma = 4;
	o->floor_runs = 3;
	o->wl.hash_buckets = 4096;
	o->wl.hash_fn = SMMU_HASH_HASH64;
	o->wl.profile = SMMU_PROFILE_LINUX_3_11;
	o->wl.preempt = SMMU_PREEMPT_FULL;
	o->wl.resched_slice_ns = SMMU_RESCHED_SLICE_NS;
	bool any_selected = false, guest_opts = false, per_table_given = false;
	int c, guest_access = 0;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case O_WORKLOAD:
			if (wl_kind_parse(optarg, &o->wl.kind)) {
				fprintf(stderr, "smmu-bench: unknown workload '%s' (direct, shadow, maps)\n",
					optarg);
				return -EINVAL;
			}
			break;
		case O_PAGES:
			if (parse_count(optarg, &o->wl.pages) || o->wl.pages < 1000 ||
			    o->wl.pages > 1000000) {
				fprintf(stderr, "smmu-bench: --pages wants 1K..1M, not '%s'\n", optarg);
				return -EINVAL;
			}
			o->pages_given = true;
			break;
		case O_PROCS:
			if (parse_count(optarg, &v) || v < 1 || v > 100000) {
				fprintf(stderr, "smmu-bench: --procs wants 1..100000\n");
				return -EINVAL;
			}
			o->wl.procs = (int)v;
			break;
		case O_SEED:
			o->wl.seed = strtoull(optarg, NULL, 0);
			break;
		case O_MAPS_FILE:
			o->wl.maps_file = optarg;
			break;
		case O_MAPS_SELF:
			o->wl.maps_self = true;
			break;
		case O_PER_VMA:
			if (parse_count(optarg, &v) || v < 1 || v > 4096) {
				fprintf(stderr, "smmu-bench: --per-vma wants 1..4096\n");
				return -EINVAL;
			}
			o->wl.per_vma = (int)v;
			break;
		case O_DATA_DIR:
			o->datadir = optarg;
			break;
		case O_VCPUS:
			if (parse_count(optarg, &v) || v > 1024) {
				fprintf(stderr, "smmu-bench: --vcpus wants 0..1024\n");
				return -EINVAL;
			}
			o->wl.vcpus = (int)v;
			break;
		case O_FORCE:
			o->force = true;
			break;
		case O_EXTRA:
			if (parse_count(optarg, &o->wl.extra) || o->wl.extra < 1) {
				fprintf(stderr, "smmu-bench: --extra wants a count >= 1\n");
				return -EINVAL;
			}
			break;
		case O_MAX_ROUNDS:
			if (parse_count(optarg, &o->max_rounds)) {
				fprintf(stderr, "smmu-bench: --max-rounds wants a count\n");
				return -EINVAL;
			}
			o->max_rounds_given = true;
			break;
		case O_STRATEGIES: {
			char *s = strdup(optarg), *save = NULL;
			if (!s)
				return -ENOMEM;
			for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (!strcmp(t, "all")) {
					for (int i = 0; i < N_STRATEGIES; i++)
						o->selected[i] = true;
					any_selected = true;
					continue;
				}
				int i = strategy_find(t);
				if (i < 0) {
					fprintf(stderr, "smmu-bench: unknown strategy '%s' (see --list)\n", t);
					free(s);
					return -EINVAL;
				}
				o->selected[i] = true;
				any_selected = true;
			}
			free(s);
			break;
		}
		case O_QUICK:
			o->quick = true;
			break;
		case O_HASH:
			if (parse_count(optarg, &v) || v < 1 || v > (1u << 24) || (v & (v - 1))) {
				fprintf(stderr, "smmu-bench: --hash-buckets wants a power of two up to 16M\n");
				return -EINVAL;
			}
			o->wl.hash_buckets = (uint32_t)v;
			break;
		case O_HASH_FN:
			if (!strcmp(optarg, "hash64")) {
				o->wl.hash_fn = SMMU_HASH_HASH64;
			} else if (!strcmp(optarg, "mask")) {
				o->wl.hash_fn = SMMU_HASH_MASK;
			} else {
				fprintf(stderr, "smmu-bench: --hash-fn wants hash64 or mask\n");
				return -EINVAL;
			}
			break;
		case O_PROFILE:
			if (!strcmp(optarg, "3.11")) {
				o->wl.profile = SMMU_PROFILE_LINUX_3_11;
			} else if (!strcmp(optarg, "today")) {
				o->wl.profile = SMMU_PROFILE_LINUX_TODAY;
			} else if (!strcmp(optarg, "6.1")) {
				o->wl.profile = SMMU_PROFILE_LINUX_6_1;
			} else {
				fprintf(stderr, "smmu-bench: --profile wants 3.11, 6.1 or today\n");
				return -EINVAL;
			}
			break;
		case O_ZAP_BATCH:
			if (parse_count(optarg, &v) || v < 1 || v > 1000000) {
				fprintf(stderr, "smmu-bench: --zap-batch wants 1..1000000\n");
				return -EINVAL;
			}
			o->wl.zap_batch = (uint32_t)v;
			break;
		case O_PREEMPT:
			if (preempt_parse(optarg, &o->wl.preempt)) {
				fprintf(stderr, "smmu-bench: --preempt wants none, voluntary or full\n");
				return -EINVAL;
			}
			break;
		case O_SLICE:
			if (parse_count(optarg, &v) || v > 10000000) {
				fprintf(stderr, "smmu-bench: --slice-us wants 0..10000000\n");
				return -EINVAL;
			}
			o->wl.resched_slice_ns = v * 1000;
			break;
		case O_GPTE_ACCESSED:
		case O_HOST_WRITABLE: {
			bool on = !strcmp(optarg, "on");
			if (!on && strcmp(optarg, "off")) {
				fprintf(stderr, "smmu-bench: --%s wants on or off\n",
					c == O_GPTE_ACCESSED ? "gpte-accessed" : "host-writable");
				return -EINVAL;
			}
			if (c == O_GPTE_ACCESSED)
				o->wl.gpte_no_accessed = !on;
			else
				o->wl.host_writable = on;
			guest_opts = true;
			break;
		}
		case O_PER_TABLE:
			if (parse_count(optarg, &v) || v < 1 || v > 512) {
				fprintf(stderr, "smmu-bench: --per-table wants 1..512\n");
				return -EINVAL;
			}
			o->wl.per_table = (int)v;
			per_table_given = true;
			guest_opts = true;
			break;
		case O_GUEST_WRITES:
		case O_GUEST_READS:
			if (parse_count(optarg, &o->wl.guest_writes)) {
				fprintf(stderr, "smmu-bench: --guest-%s wants a count\n",
					c == O_GUEST_READS ? "reads" : "writes");
				return -EINVAL;
			}
			if (guest_access && guest_access != c) {
				fprintf(stderr, "smmu-bench: --guest-writes or --guest-reads, not both\n");
				return -EINVAL;
			}
			guest_access = c;
			o->wl.guest_reads = c == O_GUEST_READS;
			guest_opts = true;
			break;
		case O_FLOOR_RUNS:
			if (parse_count(optarg, &v) || v < 1 || v > 99) {
				fprintf(stderr, "smmu-bench: --floor-runs wants 1..99\n");
				return -EINVAL;
			}
			o->floor_runs = (int)v;
			break;
		case O_SCALING:
			o->scaling = true;
			break;
		case O_SIZES:
			o->nsizes = parse_list(optarg, o->sizes, 16);
			if (o->nsizes <= 0) {
				fprintf(stderr, "smmu-bench: --sizes wants a list like 1K,10K,100K\n");
				return -EINVAL;
			}
			for (int i = 0; i < o->nsizes; i++) {
				if (o->sizes[i] < 1000 || o->sizes[i] > 1000000) {
					fprintf(stderr, "smmu-bench: --sizes: each size 1K..1M\n");
					return -EINVAL;
				}
			}
			break;
		case O_JSON:
			o->fmt = FMT_JSON;
			break;
		case O_CSV:
			o->fmt = FMT_CSV;
			break;
		case 'o':
			o->output = optarg;
			break;
		case O_SAVE:
			o->save = optarg;
			break;
		case O_LIST:
			for (int i = 0; i < N_STRATEGIES; i++)
				printf("%-20s %s\n", strategies[i].name, strategies[i].help);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "smmu-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if ((o->wl.maps_file || o->wl.maps_self) && o->wl.kind != WL_MAPS) {
		if (o->wl.kind != WL_SHADOW) {
			fprintf(stderr, "smmu-bench: --maps-file and --maps-self need --workload maps\n");
			return -EINVAL;
		}
		o->wl.kind = WL_MAPS;
	}
	if (guest_opts && o->wl.kind == WL_DIRECT) {
		fprintf(stderr, "smmu-bench: --gpte-accessed, --host-writable, --per-table, "
			"--guest-writes and --guest-reads need guest page tables: --workload shadow or maps\n");
		return -EINVAL;
	}
	if (per_table_given && o->wl.kind != WL_SHADOW) {
		fprintf(stderr, "smmu-bench: --per-table needs --workload shadow (maps: --per-vma)\n");
		return -EINVAL;
	}
	if (o->quick && !o->pages_given)
		o->wl.pages = 2000;
	if (o->scaling) {
		if (!o->nsizes) {
			static const uint64_t full[] = { 1000, 10000, 100000, 1000000 };
			o->nsizes = o->quick ? 2 : 4;
			memcpy(o->sizes, full, sizeof(full));
		}
		if (!any_selected) {
			o->selected[strategy_find("zap_all_hold")] = true;
			o->selected[strategy_find("fast_zap")] = true;
			o->selected[strategy_find("fast_zap_leaf")] = true;
			any_selected = true;
		}
	}
	if (!any_selected) /* the headline: every strategy but the notifier (--strategies all) */
		for (int i = 0; i < N_STRATEGIES; i++)
			o->selected[i] = strategies[i].kind != S_NOTIFIER;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (o->wl.vcpus + 1 > cores && !o->force) {
		fprintf(stderr,
			"smmu-bench: --vcpus %d needs %d threads (%d faulting vCPUs + the zapper) but only "
			"%ld core%s online; mmu_lock is a spinlock, so an oversubscribed run measures the "
			"scheduler, not the lock. Use --vcpus %ld or fewer, or pass --force to run anyway.\n",
			o->wl.vcpus, o->wl.vcpus + 1, o->wl.vcpus, cores, cores == 1 ? " is" : "s are",
			cores > 1 ? cores - 1 : 0);
		return -EINVAL;
	}
	if (o->wl.vcpus + 1 > cores)
		fprintf(stderr, "smmu-bench: warning: %d threads on %ld cores (--force): waits and holds "
			"include preemption\n", o->wl.vcpus + 1, cores);
	o->wl.datadir = bench_datadir(o->datadir);
	if (o->wl.kind == WL_MAPS && !o->wl.maps_self) {
		struct layout *l = NULL;
		int n = o->wl.maps_file ? 1 : layouts_load_dir(o->wl.datadir, &l);
		layouts_free(l, n > 0 ? n : 0);
		if (o->wl.maps_file && access(o->wl.maps_file, R_OK))
			n = -errno;
		if (n <= 0) {
			fprintf(stderr, "smmu-bench: no maps layout in %s: %s (see --maps-file, --data-dir)\n",
				o->wl.maps_file ? o->wl.maps_file : o->wl.datadir,
				n < 0 ? strerror(-n) : "no *.maps file");
			return -ENOENT;
		}
	}
	return 0;
}


int main(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, &o))
		return 2;
	progress_set(isatty(STDERR_FILENO));
	FILE *out = stdout;
	if (o.output && !(out = fopen(o.output, "w"))) {
		fprintf(stderr, "smmu-bench: cannot write %s: %s\n", o.output, strerror(errno));
		return 2;
	}
	char title[256];
	snprintf(title, sizeof(title), "smmu-bench (libshadowmmu %d.%d.%d), %ld cores%s",
		 SMMU_VERSION_MAJOR, SMMU_VERSION_MINOR, SMMU_VERSION_PATCH,
		 sysconf(_SC_NPROCESSORS_ONLN), o.scaling ? ", scaling run" : "");
	struct report rep;
	report_init(&rep, o.fmt, out, title);
	rep.leaf_batch_note = !o.wl.zap_batch;
	/* Before any VM exists, on every core: what a hold can lose to the machine itself. */
	progress(true, "measuring the machine's noise (%.1f s)", o.quick ? 0.2 : 1.0);
	rep.has_noise = !noise_measure(o.quick ? 200000000ull : 1000000000ull, 0, &rep.noise);
	if (o.save && !(rep.json_copy = fopen(o.save, "w"))) {
		fprintf(stderr, "smmu-bench: cannot write %s: %s\n", o.save, strerror(errno));
		return 2;
	}

	uint64_t sizes[16];
	int nsizes = 1;
	sizes[0] = o.wl.pages;
	if (o.scaling) {
		nsizes = o.nsizes;
		memcpy(sizes, o.sizes, sizeof(sizes));
	}
	int nsel = 0;
	for (int i = 0; i < N_STRATEGIES; i++)
		nsel += o.selected[i];
	int step = 0, failed = 0;
	uint64_t t0 = bench_now_ns();
	for (int si = 0; si < nsizes; si++) {
		for (int i = 0; i < N_STRATEGIES; i++) {
			if (!o.selected[i])
				continue;
			/* Checked before every build: the machine may be shared. */
			/* what this process still holds between runs is the allocator's cache: reusable */
			uint64_t need = mem_needed(&o, sizes[si]), avail = mem_available();
			if (avail)
				avail += rss_kb() * 1024;
			if (avail && need > avail / 10 * 9) {
				fprintf(stderr, "smmu-bench: %s at %" PRIu64 " %s pages needs about %.1f GiB at "
					"its peak and %.1f GiB are available%s\n", strategies[i].name,
					sizes[si], wl_kind_name(o.wl.kind), (double)need / (1 << 30),
					(double)avail / (1 << 30),
					o.force ? "; running anyway (--force)" : ": skipped (--force runs it)");
				if (!o.force) {
					step++;
					failed++;
					continue;
				}
			}
			char label[96];
			snprintf(label, sizeof(label), "[%d/%d %.0fs] %s, %s %" PRIu64, ++step,
				 nsel * nsizes, (double)(bench_now_ns() - t0) / 1e9, strategies[i].name,
				 wl_kind_name(o.wl.kind), sizes[si]);
			int r = run_one(&o, &strategies[i], sizes[si], &rep, label);
			if (r) {
				fprintf(stderr, "smmu-bench: %s at %" PRIu64 " pages failed: %s\n",
					strategies[i].name, sizes[si], strerror(-r));
				failed++;
				if (r != -ENOMEM)
					goto done; /* the next build would fail the same way */
			}
		}
	}
done:
	progress_done();
	report_finish(&rep, o.scaling);
	report_free(&rep);
	if (rep.json_copy)
		fclose(rep.json_copy);
	if (out != stdout)
		fclose(out);
	return failed ? 1 : 0;
}
