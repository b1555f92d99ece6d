/*
 * A histogram as HdrHistogram prints it ("percentile distribution"), so
 * that HdrHistogram's plotters can read cpool-bench's latencies, and the
 * same percentile steps for cpool-bench's own plot (plot.c).
 *
 * The steps are HdrHistogram's: from 0% towards 100%, HDR_TICKS steps per
 * halving of the distance to 100% (so as many between 90% and 95% as
 * between 50% and 75%), each reported at the first bucket whose cumulative
 * count reaches it, then the largest value at 100%.
 */
#ifndef BENCH_HDR_H
#define BENCH_HDR_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define HDR_TICKS 5 /* steps per half distance, as HdrHistogram's default */

/* One step: the value (ns), the percentile level (0..1), the count of
 * values up to that value; last is set on the final, 100% step. */
typedef struct hdr_point {
  uint64_t value;
  double level;
  uint64_t count;
  int last;
} hdr_point;

typedef void (*hdr_fn)(const hdr_point *pt, void *arg);

/* hdr_iterate: call fn for each step of h, in order.  Nothing for an
 * empty histogram.  Returns the number of steps. */
unsigned hdr_iterate(const hist_t *h, hdr_fn fn, void *arg);

/* hdr_write: the percentile distribution of h, values in microseconds,
 * with the #[Mean ...], #[Max ...] and #[Buckets ...] footer. */
void hdr_write(FILE *out, const hist_t *h);

#endif
