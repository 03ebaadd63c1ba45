/*
 * The machine's own interruptions, measured the way hardware-latency detectors do: one thread
 * per core reads the clock in a tight loop and keeps every gap between two reads. Each gap is
 * time the thread lost (an interrupt, the host running something else on the vCPU, another
 * program): a lock holder loses it too, inside its hold. On a shared virtual machine the longest
 * gap is far above the drain's 20 µs goal, so the bench reports it beside the holds.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_BENCH_NOISE_H
#define SMMU_BENCH_NOISE_H

#include <stdint.h>

struct noise {
	uint64_t ns;                 /* how long each thread looked */
	int threads;
	uint64_t max_gap_ns;         /* longest gap any thread saw */
	double gaps_over_20us_per_s; /* per thread, per second looked */
	double lost;                 /* share of the time in gaps over 1 µs */
};

/* Look for @p ns on @p threads threads (one per core when 0). @return 0 or a negative errno. */
int noise_measure(uint64_t ns, int threads, struct noise *out);

#endif
