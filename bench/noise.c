/*
 * See noise.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "noise.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

#define GAP_MIN_NS 1000u
#define GAP_GOAL_NS 20000u

struct looker {
	uint64_t ns, max_gap, over_goal, lost;
	pthread_t th;
};

static void *look(void *arg)
{
	struct looker *l = arg;
	uint64_t start = bench_now_ns(), prev = start, end = start + l->ns;
	while (prev < end) {
		uint64_t now = bench_now_ns(), gap = now - prev;
		if (gap > GAP_MIN_NS) {
			l->lost += gap;
			l->over_goal += gap > GAP_GOAL_NS;
			if (gap > l->max_gap)
				l->max_gap = gap;
		}
		prev = now;
	}
	return NULL;
}

int noise_measure(uint64_t ns, int threads, struct noise *out)
{
	memset(out, 0, sizeof(*out));
	if (threads <= 0)
		threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads <= 0 || threads > 256 || !ns)
		return -EINVAL;
	struct looker l[256];
	memset(l, 0, sizeof(l[0]) * (size_t)threads);
	int started = 0, r = 0;
	for (; started < threads; started++) {
		l[started].ns = ns;
		if ((r = pthread_create(&l[started].th, NULL, look, &l[started])))
			break;
	}
	uint64_t over = 0, lost = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(l[i].th, NULL);
		over += l[i].over_goal;
		lost += l[i].lost;
		if (l[i].max_gap > out->max_gap_ns)
			out->max_gap_ns = l[i].max_gap;
	}
	if (!started)
		return -r;
	out->ns = ns;
	out->threads = started;
	out->gaps_over_20us_per_s = (double)over / started / ((double)ns / 1e9);
	out->lost = (double)lost / started / (double)ns;
	return 0;
}
