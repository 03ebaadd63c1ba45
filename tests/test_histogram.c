/*
 * The log-linear histogram (src/histogram.c, internal): bucket geometry, quantile error within
 * 1/64 on known distributions, the exact summary fields, reset, and the overflow bucket.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#include "histogram.h"

static struct histogram *hist_new(void)
{
	struct histogram *h = malloc(sizeof(*h));
	assert_non_null(h);
	hist_reset(h);
	return h;
}

/* |est - exact| <= exact / 64 (values below 64 are exact). */
static void assert_within_64th(uint64_t est, uint64_t exact, const char *what, double q)
{
	uint64_t err = est > exact ? est - exact : exact - est;
	if (err * 64 > exact) {
		print_message("%s q=%g: estimate %llu, exact %llu, error %llu > 1/64\n", what, q,
			      (unsigned long long)est, (unsigned long long)exact, (unsigned long long)err);
		fail();
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The exact quantile in hist_quantile's convention: the sample of rank floor(q * n). */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n);
	if (rank >= n)
		rank = n - 1;
	return sorted[rank];
}

static const double qs[] = { 0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0 };

/* Record @n samples, then check every quantile of qs against the sorted samples. */
static void check_distribution(uint64_t *v, size_t n, const char *what)
{
	struct histogram *h = hist_new();
	uint64_t sum = 0, mn = UINT64_MAX, mx = 0;
	for (size_t i = 0; i < n; i++) {
		hist_record(h, v[i]);
		sum += v[i];
		mn = v[i] < mn ? v[i] : mn;
		mx = v[i] > mx ? v[i] : mx;
	}
	qsort(v, n, sizeof(v[0]), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++)
		assert_within_64th(hist_quantile(h, qs[k]), exact_quantile(v, n, qs[k]), what, qs[k]);
	struct smmu_hist_summary s;
	hist_summarize(h, &s);
	assert_int_equal(s.count, n);
	assert_int_equal(s.sum, sum);
	assert_int_equal(s.min, mn);
	assert_int_equal(s.max, mx);
	assert_within_64th(s.p50, exact_quantile(v, n, 0.5), what, 0.5);
	assert_within_64th(s.p90, exact_quantile(v, n, 0.9), what, 0.9);
	assert_within_64th(s.p99, exact_quantile(v, n, 0.99), what, 0.99);
	assert_within_64th(s.p999, exact_quantile(v, n, 0.999), what, 0.999);
	free(h);
}

/* ---- bucket geometry ------------------------------------------------------------------------ */

static void test_exact_below_64(void **state)
{
	(void)state;
	for (uint64_t v = 0; v < HIST_SUB; v++) {
		assert_int_equal(hist_index(v), v);
		assert_int_equal(hist_bucket_low((unsigned)v), v);
	}
	/* 64 is the first value of the log-linear part, right after the exact ones. */
	assert_int_equal(hist_index(HIST_SUB), HIST_SUB);
	assert_int_equal(hist_bucket_low(HIST_SUB), HIST_SUB);

	/* A histogram of small values reports them exactly. */
	struct histogram *h = hist_new();
	for (uint64_t v = 0; v < HIST_SUB; v++)
		hist_record(h, v);
	for (uint64_t v = 0; v < HIST_SUB; v++)
		assert_int_equal(hist_quantile(h, (double)v / HIST_SUB), v);
	free(h);
}

static void test_bucket_low_monotonic(void **state)
{
	(void)state;
	/* Lower bounds strictly increase, and each bucket spans at most 1/64 of its lower bound. */
	for (unsigned i = 1; i < HIST_BUCKETS; i++) {
		uint64_t lo = hist_bucket_low(i), prev = hist_bucket_low(i - 1);
		assert_true(lo > prev);
		if (prev >= HIST_SUB)
			assert_true((lo - prev) * 64 <= prev);
		else
			assert_int_equal(lo - prev, 1);
		/* The bucket's lower bound falls in the bucket. */
		assert_int_equal(hist_index(lo), i);
		assert_int_equal(hist_index(lo - 1), i - 1);
	}
}

/* hist_index is monotonic and low(index(v)) <= v < low(index(v) + 1). */
static void check_index_of(uint64_t v, unsigned *last)
{
	unsigned i = hist_index(v);
	assert_true(i < HIST_BUCKETS);
	assert_true(i >= *last);
	*last = i;
	assert_true(hist_bucket_low(i) <= v);
	if (i + 1 < HIST_BUCKETS)
		assert_true(v < hist_bucket_low(i + 1));
	/* Within 1/64 below 2^44. */
	if (v < (1ull << HIST_MAX_EXP))
		assert_true((v - hist_bucket_low(i)) * 64 <= v);
}

static void test_index_monotonic(void **state)
{
	(void)state;
	unsigned last = 0;
	for (uint64_t v = 0; v < (1u << 18); v++)
		check_index_of(v, &last);
	/* Above that: each power of two, its neighbours and points inside, up to 2^63. */
	for (unsigned e = 18; e < 64; e++) {
		uint64_t p = 1ull << e;
		uint64_t pts[] = { p - 1, p, p + 1, p + p / 3, p + p / 2, p + (p / 64) * 63 - 1,
				   e < 63 ? 2 * p - 1 : UINT64_MAX };
		check_index_of(pts[0], &last);
		for (size_t k = 1; k < sizeof(pts) / sizeof(pts[0]); k++)
			check_index_of(pts[k], &last);
	}
	assert_int_equal(last, HIST_BUCKETS - 1);
}

static void test_beyond_2_44(void **state)
{
	(void)state;
	const uint64_t big = 1ull << HIST_MAX_EXP;
	/* From 2^44 on every value shares the last bucket. */
	assert_int_equal(hist_index(big), HIST_BUCKETS - 1);
	assert_int_equal(hist_index(big + 12345), HIST_BUCKETS - 1);
	assert_int_equal(hist_index(1ull << 60), HIST_BUCKETS - 1);
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
	/* The last bucket is also the top sub-bucket of exponent 43: [2^44 - 2^37, 2^44) shares it,
	 * and the sub-bucket below it is the one before. */
	assert_int_equal(hist_index(big - 1), HIST_BUCKETS - 1);
	assert_int_equal(hist_bucket_low(HIST_BUCKETS - 1), big - (big >> HIST_SUB_BITS) / 2);
	assert_int_equal(hist_index(big - (big >> HIST_SUB_BITS) / 2 - 1), HIST_BUCKETS - 2);

	struct histogram *h = hist_new();
	hist_record(h, big);
	hist_record(h, 1ull << 50);
	hist_record(h, 1ull << 55);
	assert_int_equal(h->bucket[HIST_BUCKETS - 1], 3);
	struct smmu_hist_summary s;
	hist_summarize(h, &s);
	assert_int_equal(s.count, 3);
	assert_int_equal(s.min, big);
	assert_int_equal(s.max, 1ull << 55);
	assert_int_equal(s.sum, big + (1ull << 50) + (1ull << 55));
	/* Every quantile stays inside [min, max]: the bucket's value is clamped to what was seen. */
	uint64_t qv[] = { s.p50, s.p90, s.p99, s.p999, hist_quantile(h, 0.0), hist_quantile(h, 1.0) };
	for (size_t k = 0; k < sizeof(qv) / sizeof(qv[0]); k++) {
		assert_true(qv[k] >= s.min);
		assert_true(qv[k] <= s.max);
	}
	free(h);

	/* A constant beyond 2^44 is reported exactly (min = max clamps the bucket's value). */
	h = hist_new();
	for (int i = 0; i < 10; i++)
		hist_record(h, (1ull << 47) + 7);
	hist_summarize(h, &s);
	assert_int_equal(s.p50, (1ull << 47) + 7);
	assert_int_equal(s.p999, (1ull << 47) + 7);
	free(h);
}

/* ---- quantiles on known distributions ------------------------------------------------------- */

static void test_quantiles_uniform(void **state)
{
	(void)state;
	const size_t n = 100000;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = i + 1;
	check_distribution(v, n, "uniform 1..1e5");
	/* Uniform over a wide range, shuffled order (seeded). */
	srand(12345);
	for (size_t i = 0; i < n; i++)
		v[i] = 1000 + ((uint64_t)rand() * 7919u) % 50000000u;
	check_distribution(v, n, "uniform 1e3..5e7");
	/* Log-uniform: every exponent from 2^0 to 2^40. */
	for (size_t i = 0; i < n; i++) {
		unsigned e = (unsigned)rand() % 40;
		v[i] = (1ull << e) + (((uint64_t)rand() << 20) % (1ull << e));
	}
	check_distribution(v, n, "log-uniform");
	free(v);
}

static void test_quantiles_constant(void **state)
{
	(void)state;
	const uint64_t consts[] = { 0, 1, 63, 64, 65, 1000, 12345, 999999937, 1ull << 40 };
	for (size_t k = 0; k < sizeof(consts) / sizeof(consts[0]); k++) {
		struct histogram *h = hist_new();
		for (int i = 0; i < 1000; i++)
			hist_record(h, consts[k]);
		struct smmu_hist_summary s;
		hist_summarize(h, &s);
		/* Clamped to [min, max] = the constant: exact. */
		assert_int_equal(s.count, 1000);
		assert_int_equal(s.min, consts[k]);
		assert_int_equal(s.max, consts[k]);
		assert_int_equal(s.p50, consts[k]);
		assert_int_equal(s.p90, consts[k]);
		assert_int_equal(s.p99, consts[k]);
		assert_int_equal(s.p999, consts[k]);
		assert_int_equal(s.sum, consts[k] * 1000);
		free(h);
	}
}

static void test_quantiles_two_point(void **state)
{
	(void)state;
	const size_t n = 1000;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	/* 10% at 1 µs, 90% at 1 ms. */
	for (size_t i = 0; i < n; i++)
		v[i] = i % 10 == 0 ? 1000 : 1000000;
	check_distribution(v, n, "two-point 10/90");
	struct histogram *h = hist_new();
	for (size_t i = 0; i < n; i++)
		hist_record(h, i < 100 ? 1000 : 1000000);
	assert_within_64th(hist_quantile(h, 0.05), 1000, "two-point low", 0.05);
	assert_within_64th(hist_quantile(h, 0.5), 1000000, "two-point high", 0.5);
	free(h);

	/* 50/50: p50 is the first sample of the upper half. */
	for (size_t i = 0; i < n; i++)
		v[i] = i & 1 ? 10 : 5000;
	check_distribution(v, n, "two-point 50/50");
	/* A rare outlier: 999 at 100 ns, one at 1 s; p999 (rank 999) is the outlier. */
	for (size_t i = 0; i < n; i++)
		v[i] = i == 500 ? 1000000000 : 100;
	check_distribution(v, n, "outlier");
	free(v);
}

/* ---- count, min, max, sum, reset, summarize --------------------------------------------------- */

static void test_count_min_max_sum(void **state)
{
	(void)state;
	struct histogram *h = hist_new();
	struct smmu_hist_summary s;
	/* Empty: every field zero (min too, although the internal min is UINT64_MAX). */
	hist_summarize(h, &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.min, 0);
	assert_int_equal(s.max, 0);
	assert_int_equal(s.sum, 0);
	assert_int_equal(s.p50, 0);
	assert_int_equal(s.p999, 0);
	assert_int_equal(hist_quantile(h, 0.5), 0);

	const uint64_t vals[] = { 500, 3, 77777, 64, 1ull << 33, 9 };
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		hist_record(h, vals[i]);
		sum += vals[i];
	}
	hist_summarize(h, &s);
	assert_int_equal(s.count, 6);
	assert_int_equal(s.min, 3);
	assert_int_equal(s.max, 1ull << 33);
	assert_int_equal(s.sum, sum);
	uint64_t nb = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		nb += h->bucket[i];
	assert_int_equal(nb, 6);
	/* Quantiles are ordered. */
	assert_true(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
	free(h);
}

static void test_reset(void **state)
{
	(void)state;
	struct histogram *h = hist_new();
	for (uint64_t v = 1; v < 100000; v += 7)
		hist_record(h, v);
	hist_reset(h);
	assert_int_equal(h->count, 0);
	assert_int_equal(h->sum, 0);
	assert_int_equal(h->max, 0);
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		assert_int_equal(h->bucket[i], 0);
	struct smmu_hist_summary s;
	hist_summarize(h, &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.min, 0);
	assert_int_equal(s.max, 0);
	assert_int_equal(s.p50, 0);
	/* After a reset the minimum starts over: a large sample is the new minimum. */
	hist_record(h, 5000);
	hist_record(h, 6000);
	hist_summarize(h, &s);
	assert_int_equal(s.count, 2);
	assert_int_equal(s.min, 5000);
	assert_int_equal(s.max, 6000);
	assert_int_equal(s.sum, 11000);
	free(h);
}

static void test_summarize_matches_quantile(void **state)
{
	(void)state;
	struct histogram *h = hist_new();
	srand(7);
	for (int i = 0; i < 20000; i++)
		hist_record(h, 100 + (uint64_t)rand() % 1000000);
	struct smmu_hist_summary s;
	memset(&s, 0xa5, sizeof(s));
	hist_summarize(h, &s);
	assert_int_equal(s.count, h->count);
	assert_int_equal(s.sum, h->sum);
	assert_int_equal(s.min, h->min);
	assert_int_equal(s.max, h->max);
	assert_int_equal(s.p50, hist_quantile(h, 0.50));
	assert_int_equal(s.p90, hist_quantile(h, 0.90));
	assert_int_equal(s.p99, hist_quantile(h, 0.99));
	assert_int_equal(s.p999, hist_quantile(h, 0.999));
	assert_true(s.p50 < s.p90 && s.p90 < s.p99);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_below_64),
		cmocka_unit_test(test_bucket_low_monotonic),
		cmocka_unit_test(test_index_monotonic),
		cmocka_unit_test(test_beyond_2_44),
		cmocka_unit_test(test_quantiles_uniform),
		cmocka_unit_test(test_quantiles_constant),
		cmocka_unit_test(test_quantiles_two_point),
		cmocka_unit_test(test_count_min_max_sum),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_summarize_matches_quantile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
