#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

hist_t *hist_new(void) {
  /* calloc's zero bytes are a valid zero for these lock-free atomics. */
  return calloc(1, sizeof(hist_t));
}

void hist_free(hist_t *h) {
  free(h);
}

void hist_reset(hist_t *h) {
  STORE(&h->max, 0);
  STORE(&h->sum, 0);
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    STORE(&h->counts[i], 0);
}

uint64_t hist_bucket_low(unsigned i) {
  if (i < (2u << HIST_SUB_BITS))
    return i;
  unsigned shift = (i >> HIST_SUB_BITS) - 1;
  uint64_t top = (i & ((1u << HIST_SUB_BITS) - 1)) | (1u << HIST_SUB_BITS);
  return top << shift;
}

uint64_t hist_bucket_width(unsigned i) {
  if (i < (2u << HIST_SUB_BITS))
    return 1;
  return UINT64_C(1) << ((i >> HIST_SUB_BITS) - 1);
}

uint64_t hist_merge(hist_t *dst, const hist_t *src) {
  uint64_t added = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    uint64_t n = LOAD(&src->counts[i]);
    if (n)
      STORE(&dst->counts[i], LOAD(&dst->counts[i]) + n);
    added += n;
  }
  STORE(&dst->sum, LOAD(&dst->sum) + LOAD(&src->sum));
  if (LOAD(&src->max) > LOAD(&dst->max))
    STORE(&dst->max, LOAD(&src->max));
  return added;
}

void hist_copy(hist_t *dst, const hist_t *src) {
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    STORE(&dst->counts[i], LOAD(&src->counts[i]));
  STORE(&dst->sum, LOAD(&src->sum));
  STORE(&dst->max, LOAD(&src->max));
}

/* The value reported for bucket i: its midpoint, never above the largest
 * value recorded. */
static uint64_t bucket_value(unsigned i, uint64_t max) {
  uint64_t v = hist_bucket_low(i) + hist_bucket_width(i) / 2;
  return v > max ? max : v;
}

void hist_diff(hist_t *out, const hist_t *now, const hist_t *before) {
  unsigned top = 0;
  int any = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    uint64_t a = LOAD(&now->counts[i]), b = LOAD(&before->counts[i]);
    uint64_t d = a > b ? a - b : 0;
    STORE(&out->counts[i], d);
    if (d) {
      top = i;
      any = 1;
    }
  }
  uint64_t sa = LOAD(&now->sum), sb = LOAD(&before->sum);
  STORE(&out->sum, sa > sb ? sa - sb : 0);
  uint64_t max = LOAD(&now->max);
  /* The largest value's own bucket grew: that value, exactly (or one in
   * the same bucket, recorded before). */
  STORE(&out->max, !any                     ? 0
                   : hist_index(max) == top ? max
                                            : bucket_value(top, max));
}

uint64_t hist_count(const hist_t *h) {
  uint64_t n = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++)
    n += LOAD(&h->counts[i]);
  return n;
}

uint64_t hist_max(const hist_t *h) {
  return LOAD(&h->max);
}

double hist_mean(const hist_t *h) {
  uint64_t n = hist_count(h);
  return n ? (double)LOAD(&h->sum) / (double)n : 0.0;
}

uint64_t hist_percentile(const hist_t *h, double q) {
  uint64_t n = hist_count(h);
  if (n == 0)
    return 0;
  if (q > 100.0)
    q = 100.0;
  /* Nearest rank, computed so that q = 100 is exactly n and a rank that is
   * an integer in theory is not pushed up by rounding. */
  double x = q / 100.0 * (double)n;
  double r = ceil(x - x * 1e-12);
  uint64_t rank = r < 1.0 ? 1 : (uint64_t)r;
  if (rank > n)
    rank = n;
  uint64_t seen = 0, max = LOAD(&h->max);
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += LOAD(&h->counts[i]);
    if (seen >= rank)
      return bucket_value(i, max);
  }
  return max;
}
