/*
 * The histogram of cpool-bench: every percentile within 1% of the exact
 * value on known distributions, merging equal to recording the combined
 * data, and interval differences equal to what was recorded in between.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hist.h"

static const double quantiles[] = {50, 90, 99, 99.9, 100};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) /* xorshift64*: the same numbers on every run */
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}

static double uniform01(void) {
  return (double)(rng() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The exact nearest-rank percentile of sorted v[0..n), in integers. */
static uint64_t exact(const uint64_t *v, size_t n, double q) {
  uint64_t permille = (uint64_t)llround(q * 10);
  size_t rank = (size_t)((permille * n + 999) / 1000);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return v[rank - 1];
}

/* Record v[0..n), then check every percentile against the exact one. */
static void check_distribution(const char *name, uint64_t *v, size_t n) {
  hist_t *h = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  for (size_t i = 0; i < n; i++)
    hist_record(h, v[i]);
  qsort(v, n, sizeof *v, cmp_u64);
  CU_ASSERT_EQUAL(hist_count(h), n);
  CU_ASSERT_EQUAL(hist_max(h), v[n - 1]);
  for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++) {
    double want = (double)exact(v, n, quantiles[i]);
    double got = (double)hist_percentile(h, quantiles[i]);
    double err = want ? fabs(got - want) / want : fabs(got);
    if (err > 0.01)
      printf("\n%s p%g: got %.0f, exact %.0f (%.3f%%)", name, quantiles[i], got,
             want, err * 100);
    CU_ASSERT(err <= 0.01);
  }
  hist_free(h);
}

static void test_uniform(void) {
  size_t n = 1000000;
  uint64_t *v = malloc(n * sizeof *v);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  for (size_t i = 0; i < n; i++)
    v[i] = i + 1;
  check_distribution("1..1e6", v, n);
  for (size_t i = 0; i < n; i++)
    v[i] = 1000 + rng() % 9000000;
  check_distribution("uniform 1us..9ms", v, n);
  free(v);
}

static void test_lognormal(void) {
  size_t n = 300000;
  uint64_t *v = malloc(n * sizeof *v);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  for (size_t i = 0; i < n; i++) { /* Box-Muller, median ~50 us */
    double z = sqrt(-2 * log(1 - uniform01())) * cos(2 * M_PI * uniform01());
    v[i] = (uint64_t)exp(log(50000.0) + 1.5 * z);
  }
  check_distribution("lognormal", v, n);
  free(v);
}

static void test_bimodal_and_tail(void) {
  size_t n = 200000;
  uint64_t *v = malloc(n * sizeof *v);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  for (size_t i = 0; i < n; i++) /* fast hits, slow misses, rare stalls */
    v[i] = i % 1000 == 0 ? 2000000000u + rng() % 1000000000u
           : i % 10 == 0 ? 900000 + rng() % 200000
                         : 20000 + rng() % 5000;
  check_distribution("bimodal", v, n);
  free(v);
}

static void test_small_values_exact(void) {
  hist_t *h = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  for (uint64_t x = 0; x < 256; x++)
    hist_record(h, x);
  CU_ASSERT_EQUAL(hist_percentile(h, 50), 127);
  CU_ASSERT_EQUAL(hist_percentile(h, 100), 255);
  CU_ASSERT_EQUAL(hist_percentile(h, 0.1), 0);
  hist_reset(h);
  for (int i = 0; i < 10; i++)
    hist_record(h, 42);
  for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++)
    CU_ASSERT_EQUAL(hist_percentile(h, quantiles[i]), 42);
  hist_free(h);
}

static void test_buckets(void) {
  /* Every value falls in the bucket that claims it, no bucket is wider
   * than 1/128 of its values, and indexes grow with the values. */
  unsigned prev = 0;
  for (uint64_t v = 1; v < HIST_MAX_VALUE; v += 1 + v / 97) {
    unsigned i = hist_index(v);
    CU_ASSERT_FATAL(i < HIST_BUCKETS);
    CU_ASSERT(hist_bucket_low(i) <= v);
    CU_ASSERT(v < hist_bucket_low(i) + hist_bucket_width(i));
    CU_ASSERT(hist_bucket_width(i) == 1 ||
              hist_bucket_width(i) * 128 <= hist_bucket_low(i));
    CU_ASSERT(i >= prev);
    prev = i;
  }
  CU_ASSERT_EQUAL(hist_index(HIST_MAX_VALUE), HIST_BUCKETS - 1);
  CU_ASSERT_EQUAL(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

static void test_empty_and_huge(void) {
  hist_t *h = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_EQUAL(hist_percentile(h, 99), 0);
  CU_ASSERT_EQUAL(hist_count(h), 0);
  CU_ASSERT_EQUAL(hist_mean(h), 0.0);
  uint64_t huge = HIST_MAX_VALUE * 4;
  hist_record(h, huge);
  CU_ASSERT_EQUAL(hist_max(h), huge);        /* max stays exact */
  CU_ASSERT(hist_percentile(h, 50) <= huge); /* clamped, never above max */
  hist_free(h);
  hist_free(NULL);
}

static void test_merge(void) {
  hist_t *all = hist_new(), *parts[4], *merged = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(all);
  CU_ASSERT_PTR_NOT_NULL_FATAL(merged);
  for (int p = 0; p < 4; p++) {
    parts[p] = hist_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(parts[p]);
  }
  for (int i = 0; i < 400000; i++) {
    uint64_t v =
        (rng() % 4 + 1) * (1000 + rng() % (i % 7 == 0 ? 5000000 : 50000));
    hist_record(all, v);
    hist_record(parts[rng() % 4], v);
  }
  for (int p = 0; p < 4; p++)
    hist_merge(merged, parts[p]);
  int same = 1;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    same &= atomic_load(&merged->counts[i]) == atomic_load(&all->counts[i]);
  CU_ASSERT(same);
  CU_ASSERT_EQUAL(hist_max(merged), hist_max(all));
  CU_ASSERT_EQUAL(hist_count(merged), hist_count(all));
  CU_ASSERT_DOUBLE_EQUAL(hist_mean(merged), hist_mean(all), 1e-6);
  for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++)
    CU_ASSERT_EQUAL(hist_percentile(merged, quantiles[i]),
                    hist_percentile(all, quantiles[i]));
  for (int p = 0; p < 4; p++)
    hist_free(parts[p]);
  hist_free(all);
  hist_free(merged);
}

static void test_diff(void) {
  hist_t *h = hist_new(), *before = hist_new(), *between = hist_new(),
         *d = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h && before && between && d);
  for (int i = 0; i < 10000; i++)
    hist_record(h, 100 + rng() % 100000);
  hist_copy(before, h);
  for (int i = 0; i < 10000; i++) {
    uint64_t v = 5000 + rng() % 1000;
    hist_record(h, v);
    hist_record(between, v);
  }
  hist_diff(d, h, before);
  CU_ASSERT_EQUAL(hist_count(d), hist_count(between));
  /* The same counts; only the top value can differ, as the interval's max
   * is estimated from its bucket. */
  for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++) {
    double a = (double)hist_percentile(d, quantiles[i]);
    double b = (double)hist_percentile(between, quantiles[i]);
    CU_ASSERT(fabs(a - b) <= 0.01 * b);
  }
  double maxerr = fabs((double)hist_max(d) - (double)hist_max(between)) /
                  (double)hist_max(between);
  CU_ASSERT(maxerr <= 0.01);
  hist_free(h);
  hist_free(before);
  hist_free(between);
  hist_free(d);
}

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite("bench_hist", NULL, NULL);
  CU_add_test(s, "uniform distributions within 1%", test_uniform);
  CU_add_test(s, "lognormal within 1%", test_lognormal);
  CU_add_test(s, "bimodal with a tail within 1%", test_bimodal_and_tail);
  CU_add_test(s, "small values are exact", test_small_values_exact);
  CU_add_test(s, "bucket bounds", test_buckets);
  CU_add_test(s, "empty and huge values", test_empty_and_huge);
  CU_add_test(s, "merge equals the combined data", test_merge);
  CU_add_test(s, "diff equals the values in between", test_diff);
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}
