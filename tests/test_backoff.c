/* The backoff policies (src/backoff.h), unit-tested without sockets. */
#include "backoff.h"
#include "suites.h"
#include "testutil.h"

#include <limits.h>

static void test_exp_sequence(void) {
  static const int want[] = {10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000};
  cpool__backoff b;

  cpool__backoff_init(&b, CPOOL_BACKOFF_EXP, 10, 1000);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    TU_ASSERT_EQ(cpool__backoff_next(&b), want[i]);
}

/* Doubling near INT_MAX must cap, not overflow. */
static void test_exp_no_overflow(void) {
  cpool__backoff b;
  int prev = 0;

  cpool__backoff_init(&b, CPOOL_BACKOFF_EXP, 1 << 29, INT_MAX);
  for (int i = 0; i < 10; i++) {
    int d = cpool__backoff_next(&b);
    TU_ASSERT_BETWEEN(d, 1 << 29, INT_MAX);
    TU_ASSERT_INT(d, >=, prev);
    prev = d;
  }
  TU_ASSERT_EQ(prev, INT_MAX);
}

static void test_rand_within_bounds(void) {
  const int lo = 100, hi = 400, n = 20000;
  int below_quarter = 0, above_3quarters = 0, min_seen = INT_MAX, max_seen = 0;
  cpool__backoff b;

  cpool__backoff_init(&b, CPOOL_BACKOFF_RAND, lo, hi);
  for (int i = 0; i < n; i++) {
    int d = cpool__backoff_next(&b);
    TU_ASSERT_BETWEEN(d, lo, hi);
    below_quarter += d < lo + (hi - lo) / 4;
    above_3quarters += d > hi - (hi - lo) / 4;
    if (d < min_seen)
      min_seen = d;
    if (d > max_seen)
      max_seen = d;
  }
  /* Uniform: about a quarter each (5000); both ends reachable. */
  TU_ASSERT_BETWEEN(below_quarter, 4000, 6000);
  TU_ASSERT_BETWEEN(above_3quarters, 4000, 6000);
  TU_ASSERT_EQ(min_seen, lo);
  TU_ASSERT_EQ(max_seen, hi);
}

/* rand_exp: starts at min, then each delay is in [min, 3 * previous],
 * capped at max. */
static void test_rand_exp_bounds(void) {
  const int lo = 10, hi = 5000;

  for (int run = 0; run < 500; run++) {
    cpool__backoff b;
    int prev;

    cpool__backoff_init(&b, CPOOL_BACKOFF_RAND_EXP, lo, hi);
    prev = cpool__backoff_next(&b);
    TU_ASSERT_EQ(prev, lo);
    for (int i = 0; i < 30; i++) {
      int d = cpool__backoff_next(&b);
      int cap = 3 * prev < hi ? 3 * prev : hi;
      TU_ASSERT_BETWEEN(d, lo, cap);
      prev = d;
    }
  }
}

/* On average it grows: the mean delay after k failures rises with k and
 * soon nears the cap. */
static void test_rand_exp_grows(void) {
  const int lo = 10, hi = 100000, runs = 2000;
  double mean[8] = {0};

  for (int run = 0; run < runs; run++) {
    cpool__backoff b;
    cpool__backoff_init(&b, CPOOL_BACKOFF_RAND_EXP, lo, hi);
    for (int k = 0; k < 8; k++)
      mean[k] += (double)cpool__backoff_next(&b) / runs;
  }
  for (int k = 1; k < 8; k++)
    CU_ASSERT(mean[k] > 1.3 * mean[k - 1]);
  CU_ASSERT(mean[7] > 20.0 * lo);
}

static void test_rand_exp_reaches_cap(void) {
  cpool__backoff b;
  int max_seen = 0;

  cpool__backoff_init(&b, CPOOL_BACKOFF_RAND_EXP, 10, 1000);
  for (int i = 0; i < 200; i++) {
    int d = cpool__backoff_next(&b);
    TU_ASSERT_BETWEEN(d, 10, 1000);
    if (d > max_seen)
      max_seen = d;
  }
  TU_ASSERT_INT(max_seen, >=, 500);
}

static void test_reset(void) {
  static const cpool_backoff_type types[] = {CPOOL_BACKOFF_EXP,
                                             CPOOL_BACKOFF_RAND_EXP};
  for (size_t t = 0; t < 2; t++) {
    cpool__backoff b;
    cpool__backoff_init(&b, types[t], 7, 7000);
    for (int i = 0; i < 12; i++)
      cpool__backoff_next(&b);
    cpool__backoff_reset(&b);
    TU_ASSERT_EQ(cpool__backoff_next(&b), 7);
  }
}

/* min == max: every policy always waits exactly that long. */
static void test_min_equals_max(void) {
  static const cpool_backoff_type types[] = {
      CPOOL_BACKOFF_EXP, CPOOL_BACKOFF_RAND, CPOOL_BACKOFF_RAND_EXP};
  for (size_t t = 0; t < 3; t++) {
    cpool__backoff b;
    cpool__backoff_init(&b, types[t], 25, 25);
    for (int i = 0; i < 50; i++)
      TU_ASSERT_EQ(cpool__backoff_next(&b), 25);
  }
}

static void test_cap_at_max(void) {
  static const cpool_backoff_type types[] = {
      CPOOL_BACKOFF_EXP, CPOOL_BACKOFF_RAND, CPOOL_BACKOFF_RAND_EXP};
  for (size_t t = 0; t < 3; t++) {
    cpool__backoff b;
    cpool__backoff_init(&b, types[t], 1, 64);
    for (int i = 0; i < 1000; i++)
      TU_ASSERT_BETWEEN(cpool__backoff_next(&b), 1, 64);
  }
}

CU_TestInfo backoff_tests[] = {
    {"exp_sequence", test_exp_sequence},
    {"exp_no_overflow", test_exp_no_overflow},
    {"rand_within_bounds", test_rand_within_bounds},
    {"rand_exp_bounds", test_rand_exp_bounds},
    {"rand_exp_grows", test_rand_exp_grows},
    {"rand_exp_reaches_cap", test_rand_exp_reaches_cap},
    {"reset", test_reset},
    {"min_equals_max", test_min_equals_max},
    {"cap_at_max", test_cap_at_max},
    CU_TEST_INFO_NULL,
};
