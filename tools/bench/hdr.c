#include "hdr.h"

#include <math.h>

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)

/* The value a percentile reports for bucket i: as hist_percentile does. */
static uint64_t value_of(unsigned i, uint64_t max) {
  uint64_t v = hist_bucket_low(i) + hist_bucket_width(i) / 2;
  return v > max ? max : v;
}

/* The level after level (in %): a step of 100 / (HDR_TICKS * 2^(h+1)),
 * h the number of times the distance to 100% has halved. */
static double next_level(double level) {
  double halvings = floor(log2(100.0 / (100.0 - level)));
  return level + 100.0 / (HDR_TICKS * pow(2.0, halvings + 1.0));
}

unsigned hdr_iterate(const hist_t *h, hdr_fn fn, void *arg) {
  uint64_t n = hist_count(h), max = hist_max(h), cum = 0;
  unsigned steps = 0;
  if (n == 0)
    return 0;
  double level = 0.0;
  for (unsigned i = 0; i < HIST_BUCKETS && cum < n; i++) {
    uint64_t c = LOAD(&h->counts[i]);
    if (c == 0)
      continue;
    cum += c;
    /* Every level this bucket reaches; 100% is the final step's.  The
     * bucket that holds the last values reports one level only. */
    while (100.0 * (double)cum / (double)n >= level && level < 100.0) {
      hdr_point pt = {value_of(i, max), level / 100.0, cum, 0};
      fn(&pt, arg);
      steps++;
      if (cum == n)
        break;
      double next = next_level(level);
      if (!(next > level) || next >= 100.0)
        level = 100.0; /* no finer step left in a double */
      else
        level = next;
    }
  }
  hdr_point last = {max, 1.0, n, 1};
  fn(&last, arg);
  return steps + 1;
}

static void print_step(const hdr_point *pt, void *arg) {
  FILE *out = arg;
  if (pt->last)
    fprintf(out, "%12.3f %1.12f %10llu\n", (double)pt->value / 1000.0,
            pt->level, (unsigned long long)pt->count);
  else
    fprintf(out, "%12.3f %1.12f %10llu %14.2f\n", (double)pt->value / 1000.0,
            pt->level, (unsigned long long)pt->count, 1.0 / (1.0 - pt->level));
}

/* The standard deviation, from the buckets' values. */
static double stddev(const hist_t *h, double mean) {
  uint64_t n = hist_count(h), max = hist_max(h);
  double sq = 0.0;
  if (n == 0)
    return 0.0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    uint64_t c = LOAD(&h->counts[i]);
    if (c != 0) {
      double d = (double)value_of(i, max) - mean;
      sq += d * d * (double)c;
    }
  }
  return sqrt(sq / (double)n);
}

void hdr_write(FILE *out, const hist_t *h) {
  double mean = hist_mean(h);
  fprintf(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
          "1/(1-Percentile)");
  hdr_iterate(h, print_step, out);
  fprintf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / 1000.0,
          stddev(h, mean) / 1000.0);
  fprintf(out, "#[Max     = %12.3f, Total count    = %12llu]\n",
          (double)hist_max(h) / 1000.0, (unsigned long long)hist_count(h));
  fprintf(out, "#[Buckets = %12d, SubBuckets     = %12d]\n",
          HIST_MAX_BITS - HIST_SUB_BITS + 1, 2 << HIST_SUB_BITS);
}
