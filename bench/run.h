/*
 * smmu-bench: the strategies, the options, and measuring one run of one strategy.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_BENCH_RUN_H
#define SMMU_BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <shadowmmu/shadowmmu.h>

#include "report.h"
#include "workload.h"

enum strat_kind { S_ZAP_ALL, S_FAST_ZAP, S_FAST_ZAP_ONE, S_FLUSH, S_NOTIFIER, S_DIRTY_LOG };

struct strategy {
	const char *name;
	enum strat_kind kind;
	int arg; /* enum smmu_zap_mode or enum smmu_flush_strategy */
	enum smmu_site site;
	const char *help;
};

#define MAX_STRATEGIES 16

struct options {
	struct wl_params wl;
	bool selected[MAX_STRATEGIES];
	bool quick, scaling, force;
	uint64_t sizes[16];
	int nsizes;
	uint64_t max_rounds;
	bool max_rounds_given;
	int floor_runs;
	enum report_format fmt;
	const char *output;
	const char *save;
	const char *datadir;
	bool pages_given;
};

/*
 * Build the workload of @p pages, measure the floor, start the faulting vCPUs, time the
 * strategy's call, and add its row(s) to @p rep. @p label prefixes the progress lines.
 * @return 0, or a negative errno when the workload could not be built.
 */
int run_one(const struct options *o, const struct strategy *st, uint64_t pages,
	    struct report *rep, const char *label);

/* "none", "voluntary", "full" for an enum smmu_preempt_model, and back (0, or -EINVAL). */
const char *preempt_name(uint8_t model);
int preempt_parse(const char *s, uint8_t *model);

/* Resident set of this process, in KiB. */
uint64_t rss_kb(void);
/* MemAvailable, in bytes (0 when unknown). */
uint64_t mem_available(void);
/* What a run of @p pages needs at its peak, in bytes. */
uint64_t mem_needed(const struct options *o, uint64_t pages);

#endif
