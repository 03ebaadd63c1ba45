/*
 * Log-linear histograms of nanosecond times: exact below 64 ns, then 64 sub-buckets per power of
 * two, so a recorded value is known within 1/64 (1.6%). Values from 2^44 ns (4.9 hours) on share
 * the last bucket. Not thread-safe: the lock records into them while it is held.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_HISTOGRAM_H
#define SMMU_HISTOGRAM_H

#include <stdint.h>

#include "shadowmmu/stats.h"

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 44
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

struct histogram {
	uint64_t count, sum, min, max;
	uint64_t bucket[HIST_BUCKETS];
};

void hist_reset(struct histogram *h);
void hist_record(struct histogram *h, uint64_t ns);
/* The value below which a fraction q (0..1) of the samples lie, within the bucket's error. */
uint64_t hist_quantile(const struct histogram *h, double q);
void hist_summarize(const struct histogram *h, struct smmu_hist_summary *out);
/* Bucket index of a value, and the lowest value of a bucket (exposed for tests). */
unsigned hist_index(uint64_t ns);
uint64_t hist_bucket_low(unsigned idx);

#endif
