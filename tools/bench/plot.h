/*
 * --plot: an SVG that cpool-bench writes itself, readable in a browser.
 * Above, latency by percentile as HdrHistogram's plots show it (x: log
 * scale of 1/(1-p), labelled 0%, 90%, 99%, 99.9% ...; y: microseconds),
 * for the whole call and for the checkout wait; below, requests/s of each
 * one-second interval over the run's time.
 *
 * The paths carry ids ("latency-call", "latency-wait", "rps") for tests
 * and scripts.
 */
#ifndef BENCH_PLOT_H
#define BENCH_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "hist.h"

typedef struct plot_data {
  const hist_t *lat, *wait; /* the whole call, the checkout wait */
  const double *t, *rps;    /* the intervals: end time (s), requests/s */
  size_t n;
  double warmup_s;   /* 0: no warmup; else a line where it ended */
  const char *title; /* a line of text, escaped here */
} plot_data;

/* plot_write: the SVG of d on out.  0, or -1 if out failed. */
int plot_write(FILE *out, const plot_data *d);

#endif
