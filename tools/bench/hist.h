/*
 * A log-linear latency histogram in the manner of HdrHistogram.
 *
 * Values below 2^(HIST_SUB_BITS+1) have a bucket each; above that, every
 * power of two is cut into 2^HIST_SUB_BITS buckets of equal width, so a
 * bucket is never wider than 1/128 of the values in it, and the value a
 * percentile reports (the bucket's midpoint, clamped to the largest value
 * recorded) is within 0.4% of the exact one.  Values of 2^HIST_MAX_BITS or
 * more are counted in the last bucket; max stays exact.
 *
 * One thread records into a histogram (hist_record: no lock, no atomic
 * read-modify-write); any thread may read it meanwhile with
 * hist_merge/hist_snapshot, getting counts that are each exact but may be a
 * few records apart from one another.  That is what the once-a-second
 * report needs, and it keeps the hot path to a load, an add and a store.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 36 /* 2^36 ns is about 68 s */
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)
#define HIST_MAX_VALUE ((UINT64_C(1) << HIST_MAX_BITS) - 1)

typedef struct hist {
  _Atomic uint64_t max;
  _Atomic uint64_t sum; /* for the mean; wraps after 584 years of ns */
  _Atomic uint64_t counts[HIST_BUCKETS];
} hist_t;

/* hist_new: a zeroed histogram, or NULL when out of memory. */
hist_t *hist_new(void);
/* hist_free: NULL is a no-op. */
void hist_free(hist_t *h);
void hist_reset(hist_t *h);

static inline unsigned hist_index(uint64_t v) {
  if (v > HIST_MAX_VALUE)
    v = HIST_MAX_VALUE;
  if (v < (UINT64_C(2) << HIST_SUB_BITS))
    return (unsigned)v;
  unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
  return (shift << HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* hist_record: count one value.  Only the owning thread may call it. */
static inline void hist_record(hist_t *h, uint64_t v) {
  _Atomic uint64_t *c = &h->counts[hist_index(v)];
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  atomic_store_explicit(&h->sum,
                        atomic_load_explicit(&h->sum, memory_order_relaxed) + v,
                        memory_order_relaxed);
  if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
    atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

/* hist_record_n: count the value v n times (a pipelined batch). */
static inline void hist_record_n(hist_t *h, uint64_t v, uint64_t n) {
  _Atomic uint64_t *c = &h->counts[hist_index(v)];
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
  atomic_store_explicit(
      &h->sum, atomic_load_explicit(&h->sum, memory_order_relaxed) + v * n,
      memory_order_relaxed);
  if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
    atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

/* The lowest value counted in bucket i, and the bucket's width. */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_width(unsigned i);

/* hist_merge: dst += src (max: the larger).  dst must not be recorded into
 * meanwhile; src may be.  Returns how many values it added: src's count
 * as it was read. */
uint64_t hist_merge(hist_t *dst, const hist_t *src);

/* hist_diff: out = now - before, for the counts recorded in between.
 * out->max is estimated from the highest bucket that grew (within 0.4%),
 * clamped to now->max. */
void hist_diff(hist_t *out, const hist_t *now, const hist_t *before);

/* hist_copy: dst = src. */
void hist_copy(hist_t *dst, const hist_t *src);

uint64_t hist_count(const hist_t *h);
uint64_t hist_max(const hist_t *h);
double hist_mean(const hist_t *h);

/* hist_percentile: the value at percentile q (0 < q <= 100), by nearest
 * rank: the smallest value v such that at least q% of the values are <= v.
 * 0 when the histogram is empty. */
uint64_t hist_percentile(const hist_t *h, double q);

#endif
