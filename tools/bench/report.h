/*
 * What cpool-bench prints: a progress line once a second on a terminal
 * (stderr), JSON interval objects once a second with --json (stdout), and
 * the summary, as text or as one JSON object.  Field names are documented
 * in docs/bench.md and are stable.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdint.h>

#include "args.h"
#include "cpool.h"
#include "hist.h"
#include "runner.h"
#include "server.h"

typedef struct report report_t;

/* report_new: pool and srv may be NULL (--connect-per-request, an outside
 * server); target names the server.  NULL when out of memory. */
report_t *report_new(const bench_args *a, runner_t *r, cpool_t *pool,
                     server_t *srv, const char *target);

/* report_begin: the run starts now (t0); remembers the pool's counters. */
void report_begin(report_t *rep, uint64_t t0);

/* report_interval: the figures since the previous interval, up to now: a
 * progress line and/or a JSON object, as the options say. */
void report_interval(report_t *rep, uint64_t now);

/* How the run ended, after it: -1 where not known. */
typedef struct report_end {
  int slots_idle;    /* connected and idle after settling */
  int64_t settle_ms; /* how long settling took */
  int fds_start;     /* open descriptors before the server and the pool */
  int fds_end;       /* and after both are gone */
} report_end;

/* report_finish: gather the whole run's figures, from t0 to end, the
 * pool's counters included; after it the pool and the server may go. */
void report_finish(report_t *rep, uint64_t end);

/* report_summary: print the figures gathered by report_finish, with e
 * (NULL: nothing known).  Returns the requests that succeeded. */
uint64_t report_summary(report_t *rep, const report_end *e);

/* report_mark: the warmup ends now: the figures of report_finish start
 * here. */
void report_mark(report_t *rep, uint64_t now);

/* report_files: after report_finish, write --hdr and --plot files.  0, or
 * -1 with a one-line message in err. */
int report_files(report_t *rep, char *err, size_t errlen);

void report_free(report_t *rep); /* NULL is a no-op */

/* The names of the err_kind values, as the JSON and CSV fields have them. */
extern const char *const report_err_names[ERR_KINDS];

/* The figures of the run, after report_finish, for report_out.c. */
typedef struct report_view {
  const bench_args *a;
  const char *target;
  double secs; /* of the figures, the warmup left out */
  uint64_t ok, failed, reconnects;
  const uint64_t *err; /* [ERR_KINDS] */
  const hist_t *lat, *wait;
  const double *series_t, *series_rps; /* requests/s of each interval */
  size_t series_n;
} report_view_t;

void report_view(const report_t *rep, report_view_t *v);

/* report_csv: the summary as a CSV header line and one line, on stdout. */
void report_csv(const report_view_t *v);

/* report_write_files: --hdr and --plot.  0, or -1 with a message. */
int report_write_files(const report_view_t *v, char *err, size_t errlen);

#endif
