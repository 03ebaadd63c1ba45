/*
 * smmu-bench results: table, JSON lines, CSV, and the goals of the bench's issue checked
 * against what was measured.
 *
 * SPDX-License-Identifier: MIT
 */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.*fus", ns < 10000 ? 2 : ns < 100000 ? 1 : 0, (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.*fms", ns < 10000000 ? 2 : ns < 100000000 ? 1 : 0, (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", (double)ns / 1e9);
	return buf;
}

static const char *fmt_count(char *buf, size_t len, double v)
{
	if (v < 1e4)
		snprintf(buf, len, "%.0f", v);
	else if (v < 1e6)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else if (v < 1e9)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else
		snprintf(buf, len, "%.2fG", v / 1e9);
	return buf;
}

void report_init(struct report *r, enum report_format fmt, FILE *out, const char *title)
{
	memset(r, 0, sizeof(*r));
	r->fmt = fmt;
	r->out = out;
	r->title = title;
}

void report_free(struct report *r)
{
	free(r->rows);
	r->rows = NULL;
	r->n = r->cap = 0;
}

/* ---- JSON and CSV ----------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *key, const char *v, bool comma)
{
	fprintf(f, "%s\"%s\":\"", comma ? "," : "", key);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		if ((unsigned char)*v >= 0x20)
			fputc(*v, f);
	}
	fputc('"', f);
}

static void json_u64(FILE *f, const char *key, uint64_t v)
{
	fprintf(f, ",\"%s\":%" PRIu64, key, v);
}

static void json_dbl(FILE *f, const char *key, double v)
{
	fprintf(f, ",\"%s\":%.4g", key, v);
}

static void json_hist(FILE *f, const char *key, const struct hist5 *h, bool p999)
{
	fprintf(f, ",\"%s\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64, key,
		h->count, h->p50, h->p99);
	if (p999)
		fprintf(f, ",\"p999\":%" PRIu64, h->p999);
	fprintf(f, ",\"max\":%" PRIu64 "}", h->max);
}

static void write_json(FILE *f, const struct run_result *x)
{
	fputc('{', f);
	json_str(f, "bench", x->bench, false);
	json_str(f, "workload", x->workload, true);
	json_str(f, "mode", x->mode, true);
	json_str(f, "strategy", x->strategy, true);
	json_str(f, "site", x->site, true);
	json_u64(f, "seed", x->seed);
	json_u64(f, "shadow_pages", x->shadow_pages);
	json_u64(f, "pages_after", x->pages_after);
	fprintf(f, ",\"vcpus\":%d,\"procs\":%d", x->vcpus, x->procs);
	json_u64(f, "total_ns", x->total_ns);
	json_u64(f, "floor_ns", x->floor_ns);
	json_u64(f, "floor_read_ns", x->floor_read_ns);
	json_u64(f, "floor_free_ns", x->floor_free_ns);
	json_dbl(f, "ratio_floor", x->ratio);
	json_dbl(f, "pages_per_s", x->pages_per_s);
	json_hist(f, "hold_ns", &x->hold, true);
	json_hist(f, "wait_ns", &x->wait, false);
	json_hist(f, "fault_hold_ns", &x->fault_hold, true);
	json_u64(f, "vcpu_site_wait_max_ns", x->vcpu_site_wait_max);
	json_u64(f, "breaks", x->breaks);
	json_u64(f, "handoffs", x->handoffs);
	if (x->has_report) {
		json_u64(f, "rounds", x->rounds);
		json_u64(f, "pages_zapped", x->pages_zapped);
		json_u64(f, "vm_pages_zapped", x->vm_pages_zapped);
		json_u64(f, "sptes_dropped", x->sptes_dropped);
		json_u64(f, "report_remote_flushes", x->rep_flushes);
		fprintf(f, ",\"completed\":%s", x->completed ? "true" : "false");
	} else {
		fputs(",\"rounds\":null", f);
		json_u64(f, "sptes_dropped", x->sptes_dropped);
	}
	json_u64(f, "remote_flushes", x->remote_flushes);
	json_u64(f, "site_remote_flushes", x->site_flushes);
	json_u64(f, "site_remote_flush_ns", x->site_flush_ns);
	json_hist(f, "site_request_wait_ns", &x->request_wait, false);
	json_u64(f, "reload_requests", x->reload_requests);
	json_u64(f, "vcpu_faults", x->faults_during);
	json_u64(f, "vcpu_faults_mapped", x->mapped_during);
	json_u64(f, "vcpu_pages_created", x->created_during);
	json_u64(f, "vcpu_fault_retries", x->retries_during);
	json_u64(f, "vcpu_fault_errors", x->errors_during);
	json_u64(f, "sp_bytes", x->sp_bytes);
	json_u64(f, "rmap_bytes", x->rmap_bytes);
	json_u64(f, "lpage_bytes", x->lpage_bytes);
	json_u64(f, "mem_bytes", x->mem_bytes);
	json_u64(f, "kvm_bytes", x->kvm_bytes);
	json_dbl(f, "mem_ratio", x->mem_ratio);
	json_u64(f, "rss_kb", x->rss_kb);
	json_u64(f, "maxrss_kb", x->maxrss_kb);
	json_u64(f, "build_ns", x->build_ns);
	json_u64(f, "build_map_ns", x->build_map_ns);
	json_u64(f, "build_fault_ns", x->build_fault_ns);
	json_u64(f, "hash_buckets", x->hash_buckets);
	json_str(f, "hash_fn", x->hash_fn, true);
	json_str(f, "profile", x->profile, true);
	json_u64(f, "zap_batch", x->zap_batch);
	fprintf(f, ",\"other_cpu\":%.3f", x->other_cpu);
	fprintf(f, ",\"floor_runs\":%d", x->floor_runs);
	json_u64(f, "holds_over_20us", x->holds_over_20us);
	json_u64(f, "hold_sum_ns", x->hold_sum_ns);
	json_u64(f, "noise_max_gap_ns", x->noise_max_gap_ns);
	fprintf(f, ",\"noise_gaps_20us_per_s\":%.1f", x->noise_gaps_20us_per_s);
	json_str(f, "preempt", x->preempt, true);
	json_u64(f, "resched_slice_ns", x->resched_slice_ns);
	if (x->first_hold_ns)
		json_u64(f, "first_hold_ns", x->first_hold_ns);
	fprintf(f, ",\"gpte_accessed\":%s,\"host_writable\":%s,\"per_table\":%d",
		x->gpte_accessed ? "true" : "false", x->host_writable ? "true" : "false", x->per_table);
	json_u64(f, "guest_writes", x->guest_writes);
	json_u64(f, "guest_reads", x->guest_reads);
	json_u64(f, "build_faults", x->build_faults);
	json_u64(f, "leaf_pages", x->leaf_pages);
	json_u64(f, "leaf_sptes", x->leaf_sptes);
	json_u64(f, "unsync_pages", x->unsync_pages);
	json_u64(f, "unsync_after", x->unsync_after);
	fprintf(f, ",\"rc\":%d}\n", x->rc);
}

static const char csv_header[] =
	"bench,workload,mode,strategy,site,seed,shadow_pages,pages_after,vcpus,procs,total_ns,"
	"floor_ns,floor_read_ns,floor_free_ns,ratio_floor,pages_per_s,"
	"hold_count,hold_p50_ns,hold_p99_ns,hold_p999_ns,hold_max_ns,"
	"wait_count,wait_p50_ns,wait_p99_ns,wait_max_ns,"
	"fault_hold_count,fault_hold_p50_ns,fault_hold_p99_ns,fault_hold_p999_ns,fault_hold_max_ns,"
	"vcpu_site_wait_max_ns,breaks,handoffs,rounds,completed,pages_zapped,sptes_dropped,"
	"remote_flushes,reload_requests,vcpu_faults,vcpu_pages_created,sp_bytes,rmap_bytes,"
	"lpage_bytes,mem_bytes,kvm_bytes,mem_ratio,rss_kb,maxrss_kb,build_ns,hash_buckets,hash_fn,"
	"profile,zap_batch,floor_runs,site_remote_flushes,other_cpu,holds_over_20us,noise_max_gap_ns,"
	"noise_gaps_20us_per_s,preempt,resched_slice_ns,first_hold_ns,rc,gpte_accessed,host_writable,"
	"per_table,guest_writes,guest_reads,build_faults,leaf_pages,leaf_sptes,unsync_pages,unsync_after\n";

static void write_csv(FILE *f, const struct run_result *x)
{
	fprintf(f, "%s,%s,%s,%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d,%d,%" PRIu64,
		x->bench, x->workload, x->mode, x->strategy, x->site, x->seed, x->shadow_pages,
		x->pages_after, x->vcpus, x->procs, x->total_ns);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.4g,%.4g", x->floor_ns, x->floor_read_ns,
		x->floor_free_ns, x->ratio, x->pages_per_s);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, x->hold.count,
		x->hold.p50, x->hold.p99, x->hold.p999, x->hold.max);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, x->wait.count, x->wait.p50,
		x->wait.p99, x->wait.max);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, x->fault_hold.count,
		x->fault_hold.p50, x->fault_hold.p99, x->fault_hold.p999, x->fault_hold.max);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, x->vcpu_site_wait_max, x->breaks, x->handoffs);
	if (x->has_report)
		fprintf(f, ",%" PRIu64 ",%d,%" PRIu64, x->rounds, x->completed, x->pages_zapped);
	else
		fputs(",,,", f);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, x->sptes_dropped,
		x->remote_flushes, x->reload_requests, x->faults_during, x->created_during);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.4g",
		x->sp_bytes, x->rmap_bytes, x->lpage_bytes, x->mem_bytes, x->kvm_bytes, x->mem_ratio);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u,%s,%s,%u,%d,%" PRIu64 ",%.3f",
		x->rss_kb, x->maxrss_kb, x->build_ns, x->hash_buckets, x->hash_fn, x->profile,
		x->zap_batch, x->floor_runs, x->site_flushes, x->other_cpu);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%.1f,%s,%" PRIu64 ",%" PRIu64 ",%d", x->holds_over_20us,
		x->noise_max_gap_ns, x->noise_gaps_20us_per_s, x->preempt, x->resched_slice_ns,
		x->first_hold_ns, x->rc);
	fprintf(f, ",%d,%d,%d,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		",%" PRIu64 "\n", x->gpte_accessed, x->host_writable, x->per_table, x->guest_writes,
		x->guest_reads, x->build_faults,
		x->leaf_pages, x->leaf_sptes, x->unsync_pages, x->unsync_after);
}

/* ---- the table -------------------------------------------------------------------------------- */

static void table_header(struct report *r, const struct run_result *x)
{
	FILE *f = r->out;
	if (r->title)
		fprintf(f, "%s\n", r->title);
	fprintf(f, "workload %s (%s mode), seed %" PRIu64 ", %d guest process%s, %d vCPU%s faulting "
		"during each zap\nprofile %s, mmu_page_hash %u buckets (%s), fast zap batch %u%s, floor = "
		"median of %d measurements right before each zap\n", x->workload, x->mode, x->seed,
		x->procs, x->procs == 1 ? "" : "es", x->vcpus, x->vcpus == 1 ? "" : "s", x->profile,
		x->hash_buckets, x->hash_fn, r->leaf_batch_note ? 10u : x->zap_batch,
		r->leaf_batch_note ? " (fast_zap_leaf: 1)" : "", x->floor_runs);
	char slice[24];
	if (x->resched_slice_ns)
		fprintf(f, "preemption model %s: cond_resched_lock breaks %s, and on need_resched after "
			"%s on the CPU (another task runnable there)\n\n", x->preempt,
			!strcmp(x->preempt, "full") ? "for a waiting vCPU" : "never for a waiting vCPU",
			fmt_ns(slice, sizeof(slice), x->resched_slice_ns));
	else
		fprintf(f, "preemption model %s: cond_resched_lock breaks %s; need_resched never comes "
			"(nothing else runnable on the zapper's CPU)\n\n", x->preempt,
			!strcmp(x->preempt, "full") ? "for a waiting vCPU only" : "never");
	if (strcmp(x->mode, "direct"))
		fprintf(f, "guest ptes: Accessed bit %s, host frames %s, %d page%s per guest table, %"
			PRIu64 " guest pte rewrite%s (%" PRIu64 " read); before the zap: %" PRIu64 " level-1 pages holding %"
			PRIu64 " sptes from %" PRIu64 " build faults, %" PRIu64 " unsync\n\n",
			x->gpte_accessed ? "on" : "off", x->host_writable ? "all mapped writable" :
			"mapped as faulted", x->per_table, x->per_table == 1 ? "" : "s", x->guest_writes,
			x->guest_writes == 1 ? "" : "s", x->guest_reads, x->leaf_pages, x->leaf_sptes, x->build_faults,
			x->unsync_pages);
	fprintf(f, "%-18s %8s %8s %8s %8s %6s | %-14s %7s %7s %7s %7s %7s | %6s %6s %7s %6s\n",
		"", "shadow", "", "", "floor", "total", "mmu_lock hold", "", "", "", "", "",
		"lock", "hand", "", "remote");
	fprintf(f, "%-18s %8s %8s %8s %8s %6s | %-14s %7s %7s %7s %7s %7s | %6s %6s %7s %6s\n",
		"strategy", "pages", "total", "pages/s", "(read+", "/floor", "site", "holds", "p50",
		"p99", "p99.9", "max", "breaks", "offs", "rounds", "flush");
	fprintf(f, "%-18s %8s %8s %8s %8s %6s | %-14s %7s %7s %7s %7s %7s | %6s %6s %7s %6s\n",
		"", "", "", "", "free)", "", "", "", "", "", "", "", "", "", "", "");
}

static void table_row(struct report *r, const struct run_result *x)
{
	char b[12][24];
	FILE *f = r->out;
	char rounds[24];
	if (x->has_report)
		snprintf(rounds, sizeof(rounds), "%" PRIu64 "%s", x->rounds, x->completed ? "" : "!");
	else
		snprintf(rounds, sizeof(rounds), "-");
	char first[48] = "";
	if (x->first_hold_ns)
		snprintf(first, sizeof(first), "  (first hold %s)", fmt_ns(b[8], 24, x->first_hold_ns));
	fprintf(f, "%-18s %8" PRIu64 " %8s %8s %8s %6.2f | %-14s %7s %7s %7s %7s %7s | %6" PRIu64
		" %6" PRIu64 " %7s %6" PRIu64 "%s%s%s\n",
		x->strategy, x->shadow_pages, fmt_ns(b[0], 24, x->total_ns),
		fmt_count(b[1], 24, x->pages_per_s), fmt_ns(b[2], 24, x->floor_ns), x->ratio, x->site,
		fmt_count(b[3], 24, (double)x->hold.count), fmt_ns(b[4], 24, x->hold.p50),
		fmt_ns(b[5], 24, x->hold.p99), fmt_ns(b[6], 24, x->hold.p999),
		fmt_ns(b[7], 24, x->hold.max), x->breaks, x->handoffs, rounds, x->remote_flushes,
		x->rc == -EAGAIN ? "  (! = round limit)" : x->rc ? "  (error)" : "",
		x->other_cpu > 0.10 ? "  (shared)" : "", first);
	fflush(f);
}

void report_add(struct report *r, const struct run_result *in)
{
	struct run_result copy = *in, *res = &copy;
	if (r->has_noise) {
		copy.noise_max_gap_ns = r->noise.max_gap_ns;
		copy.noise_gaps_20us_per_s = r->noise.gaps_over_20us_per_s;
	}
	if (r->n == r->cap) {
		int cap = r->cap ? 2 * r->cap : 32;
		struct run_result *rows = realloc(r->rows, (size_t)cap * sizeof(*rows));
		if (rows) {
			r->rows = rows;
			r->cap = cap;
		}
	}
	if (r->n < r->cap)
		r->rows[r->n++] = *res;
	if (r->json_copy) {
		write_json(r->json_copy, res);
		fflush(r->json_copy);
	}
	switch (r->fmt) {
	case FMT_JSON:
		write_json(r->out, res);
		fflush(r->out);
		break;
	case FMT_CSV:
		if (!r->header_done)
			fputs(csv_header, r->out);
		r->header_done = true;
		write_csv(r->out, res);
		fflush(r->out);
		break;
	default:
		if (!r->header_done)
			table_header(r, res);
		r->header_done = true;
		table_row(r, res);
		break;
	}
}

static void vcpu_table(struct report *r)
{
	FILE *f = r->out;
	fprintf(f, "\nvCPUs faulting during the zap (site fault), and memory before it\n");
	fprintf(f, "%-18s %8s %7s %7s | %7s %7s %7s | %7s %7s %7s %7s | %8s %8s %6s %8s %8s\n",
		"", "shadow", "vCPU", "pages", "fault", "hold", "", "wait", "", "", "reload",
		"sp+rmap", "KVM", "", "", "pages");
	fprintf(f, "%-18s %8s %7s %7s | %7s %7s %7s | %7s %7s %7s %7s | %8s %8s %6s %8s %8s\n",
		"strategy", "pages", "faults", "created", "p50", "p99", "max", "p50", "p99", "max", "max",
		"MiB", "MiB", "xKVM", "maxrss", "after");
	for (int i = 0; i < r->n; i++) {
		const struct run_result *x = &r->rows[i];
		char b[10][24];
		fprintf(f, "%-18s %8" PRIu64 " %7s %7s | %7s %7s %7s | %7s %7s %7s %7s | %8.1f %8.1f %6.3f "
			"%7.0fM %8" PRIu64 "\n",
			x->strategy, x->shadow_pages, fmt_count(b[0], 24, (double)x->faults_during),
			fmt_count(b[1], 24, (double)x->created_during), fmt_ns(b[2], 24, x->fault_hold.p50),
			fmt_ns(b[3], 24, x->fault_hold.p99), fmt_ns(b[4], 24, x->fault_hold.max),
			fmt_ns(b[5], 24, x->wait.p50), fmt_ns(b[6], 24, x->wait.p99),
			fmt_ns(b[7], 24, x->wait.max), fmt_ns(b[8], 24, x->vcpu_site_wait_max),
			(double)x->mem_bytes / 1048576.0, (double)x->kvm_bytes / 1048576.0, x->mem_ratio,
			(double)x->maxrss_kb / 1024.0, x->pages_after);
	}
}

static void scaling_table(struct report *r)
{
	FILE *f = r->out;
	fprintf(f, "\nmax mmu_lock hold versus shadow pages\n");
	fprintf(f, "%8s | %-32s | %-8s | %-26s | %-26s | %s\n", "shadow", "zap_all holding the lock",
		"fast zap", "fast zap drain (KVM)", "fast_zap_leaf drain", "memory");
	fprintf(f, "%8s | %8s %8s %8s %5s | %8s | %8s %8s %8s | %8s %8s %8s | %6s\n", "pages", "total",
		"max hold", "floor", "/flr", "bump", "total", "max hold", "wait p99", "total", "hold p99",
		"wait p99", "xKVM");
	for (int i = 0; i < r->n; i++) {
		const struct run_result *h = &r->rows[i];
		if (strcmp(h->strategy, "zap_all_hold"))
			continue;
		char b[12][24];
		const struct run_result *bump = NULL, *drain = NULL, *leaf = NULL;
		/* the fast zap rows of the same target size follow the hold row */
		for (int j = i + 1; j < r->n && strcmp(r->rows[j].strategy, "zap_all_hold"); j++) {
			if (!strcmp(r->rows[j].strategy, "fast_zap_bump"))
				bump = &r->rows[j];
			if (!strcmp(r->rows[j].strategy, "fast_zap_drain"))
				drain = &r->rows[j];
			if (!strcmp(r->rows[j].strategy, "fast_zap_leaf_drain"))
				leaf = &r->rows[j];
		}
		fprintf(f, "%8" PRIu64 " | %8s %8s %8s %5.2f | %8s | %8s %8s %8s | %8s %8s %8s | %6.3f\n",
			h->shadow_pages, fmt_ns(b[0], 24, h->total_ns), fmt_ns(b[1], 24, h->hold.max),
			fmt_ns(b[6], 24, h->floor_ns), h->ratio,
			bump ? fmt_ns(b[2], 24, bump->hold.max) : "-",
			drain ? fmt_ns(b[3], 24, drain->total_ns) : "-",
			drain ? fmt_ns(b[4], 24, drain->hold.max) : "-",
			drain ? fmt_ns(b[5], 24, drain->wait.p99) : "-",
			leaf ? fmt_ns(b[7], 24, leaf->total_ns) : "-",
			leaf ? fmt_ns(b[8], 24, leaf->hold.p99) : "-",
			leaf ? fmt_ns(b[9], 24, leaf->wait.p99) : "-", h->mem_ratio);
	}
}

/* The goals, checked on whatever sizes were run. */
/* A fast zap row: "fast_zap..." ending in @suffix. */
static bool is_fast(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);
	return !strncmp(name, "fast_zap", 8) && n >= k && !strcmp(name + n - k, suffix);
}

static void goals(struct report *r)
{
	FILE *f = r->out;
	char b[4][24];
	fprintf(f, "\ngoals (from the bench's issue), at the sizes run here\n");
	int lines = 0;
	for (int i = 0; i < r->n; i++) {
		const struct run_result *x = &r->rows[i];
		if (is_fast(x->strategy, "_bump")) {
			fprintf(f, "  %-4s %s + reload holds mmu_lock <= 1 us: %s at %" PRIu64
				" pages\n", x->hold.max <= 1000 ? "ok" : "MISS", x->strategy,
				fmt_ns(b[0], 24, x->hold.max), x->shadow_pages);
			lines++;
		} else if (is_fast(x->strategy, "_drain") && x->vcpus >= 1) {
			bool ok = x->hold.max <= 20000 && x->wait.p99 <= 10000;
			fprintf(f, "  %-4s %s, %d vCPU faulting: max hold %s (<= 20 us), vCPU "
				"wait p99 %s (<= 10 us) at %" PRIu64 " pages%s\n", ok ? "ok" : "MISS",
				x->strategy, x->vcpus, fmt_ns(b[0], 24, x->hold.max), fmt_ns(b[1], 24, x->wait.p99),
				x->shadow_pages, x->shadow_pages >= 900000 ? "" : " (goal set at 1M)");
			if (!ok) {
				fprintf(f, "       %" PRIu64 " of %" PRIu64 " holds (%.1f per million) in buckets "
					"from 20 us up, p99.9 %s", x->holds_over_20us, x->hold.count,
					x->hold.count ? 1e6 * (double)x->holds_over_20us / (double)x->hold.count : 0.0,
					fmt_ns(b[2], 24, x->hold.p999));
				/* the holds a gap over 20 us would land in if gaps came at the measured rate */
				if (r->has_noise && x->hold_sum_ns)
					fprintf(f, "; the machine's noise alone would put a gap over 20 us into "
						"~%.0f of them (%s held x %.0f gaps/s)", (double)x->hold_sum_ns / 1e9 *
						r->noise.gaps_over_20us_per_s, fmt_ns(b[3], 24, x->hold_sum_ns),
						r->noise.gaps_over_20us_per_s);
				fputc('\n', f);
			}
			lines++;
		} else if (!strcmp(x->strategy, "zap_all_hold")) {
			fprintf(f, "  %-4s zap_all holding the lock: total %s = %.2fx the floor %s (<= 2x) "
				"at %" PRIu64 " pages%s\n", x->ratio <= 2.0 ? "ok" : "MISS",
				fmt_ns(b[0], 24, x->total_ns), x->ratio, fmt_ns(b[1], 24, x->floor_ns),
				x->shadow_pages, x->shadow_pages >= 90000 ? "" : " (goal set at 100K and 1M)");
			lines++;
		} else if ((!strcmp(x->strategy, "zap_all_gen") ||
			    !strcmp(x->strategy, "zap_all_restart")) && x->has_report) {
			char left[64] = "";
			if (!x->completed)
				snprintf(left, sizeof(left), ", %" PRIu64 " pages still there", x->pages_after);
			fprintf(f, "  %-4s %s with %d vCPU%s faulting: %s after %" PRIu64 " round%s (%"
				PRIu64 " lock breaks, %" PRIu64 " pages zapped%s) in %s\n",
				!strcmp(x->strategy, "zap_all_restart") ? "info" :
				x->completed && !x->rc ? "ok" : "MISS", x->strategy, x->vcpus,
				x->vcpus == 1 ? "" : "s",
				x->completed ? "terminated" : "gave up at the round limit",
				x->rounds, x->rounds == 1 ? "" : "s", x->breaks, x->pages_zapped, left,
				fmt_ns(b[0], 24, x->total_ns));
			lines++;
		}
		if (is_fast(x->strategy, "_drain") && x->vcpus >= 1 && x->has_report) {
			fprintf(f, "  %-4s %s with %d vCPU%s faulting: %s after %" PRIu64
				" round%s\n", x->completed && !x->rc ? "ok" : "MISS", x->strategy, x->vcpus,
				x->vcpus == 1 ? "" : "s", x->completed ? "terminated" : "did not finish",
				x->rounds, x->rounds == 1 ? "" : "s");
			lines++;
		}
	}
	/* memory: the largest build of each workload */
	const struct run_result *big = NULL;
	for (int i = 0; i < r->n; i++)
		if (!big || r->rows[i].shadow_pages > big->shadow_pages)
			big = &r->rows[i];
	if (big && big->kvm_bytes) {
		fprintf(f, "  %-4s memory: sp_bytes + rmap_bytes = %.1f MiB, %.3fx KVM's %.1f MiB for the "
			"same tables + metadata (<= 1.10x) at %" PRIu64 " pages%s\n",
			big->mem_ratio <= 1.10 ? "ok" : "MISS", (double)big->mem_bytes / 1048576.0,
			big->mem_ratio, (double)big->kvm_bytes / 1048576.0, big->shadow_pages,
			big->shadow_pages >= 900000 ? "" : " (goal set at 1M)");
		lines++;
	}
	if (!lines)
		fprintf(f, "  (none of the strategies the goals name was run)\n");
}

void report_finish(struct report *r, bool scaling)
{
	if (r->fmt != FMT_TABLE || !r->n)
		return;
	double other = 0;
	for (int i = 0; i < r->n; i++)
		other = r->rows[i].other_cpu > other ? r->rows[i].other_cpu : other;
	if (other > 0.10)
		fprintf(r->out, "\nnote: (shared) runs: other programs used up to %.0f%% of the machine's CPU "
			"time during a run, so its waits and holds include their preemption\n",
			other * 100);
	if (r->has_noise) {
		char b[24];
		fprintf(r->out, "\nthe machine's noise: a thread per core reading the clock for %.1f s lost "
			"%.2f%% of it, %.0f times a second more than 20 us at once, at most %s: a lock "
			"holder loses the same inside its holds\n", (double)r->noise.ns / 1e9,
			100 * r->noise.lost, r->noise.gaps_over_20us_per_s, fmt_ns(b, sizeof(b), r->noise.max_gap_ns));
	}
	vcpu_table(r);
	if (scaling)
		scaling_table(r);
	goals(r);
	fflush(r->out);
}
