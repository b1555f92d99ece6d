/* What cpool-bench writes besides its summary: --csv, --hdr, --plot. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hdr.h"
#include "plot.h"
#include "report.h"

static double us(uint64_t ns) {
  return (double)ns / 1000.0;
}

static void csv_latency(const char *name, const hist_t *h, bool header) {
  static const char *const cols[] = {"p50",  "p90", "p99",
                                     "p999", "max", "mean"};
  if (header) {
    for (int i = 0; i < 6; i++)
      printf(",%s_%s_us", name, cols[i]);
    return;
  }
  printf(",%.3f,%.3f,%.3f,%.3f,%.3f,%.3f", us(hist_percentile(h, 50)),
         us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
         us(hist_percentile(h, 99.9)), us(hist_max(h)), hist_mean(h) / 1000.0);
}

/* --csv: a header line and one line of figures (no commas in any field:
 * the target is left out, the protocol's name has none). */
void report_csv(const report_view_t *f) {
  const bench_args *a = f->a;
  printf("protocol,threads,pool,pipeline,rate,elapsed_s,requests_ok,"
         "requests_failed,rps");
  csv_latency("latency", f->lat, true);
  csv_latency("wait", f->wait, true);
  for (int k = 0; k < ERR_KINDS; k++)
    printf(",errors_%s", report_err_names[k]);
  printf(",reconnects\n%s,%d,%d,%d,%lld,%.3f,%llu,%llu,%.1f",
         a->no_io ? "none" : proto_name(a->protocol), a->threads,
         a->connect_per_request ? 0 : a->pool, a->pipeline, (long long)a->rate,
         f->secs, (unsigned long long)f->ok, (unsigned long long)f->failed,
         f->secs > 0 ? (double)f->ok / f->secs : 0.0);
  csv_latency("latency", f->lat, false);
  csv_latency("wait", f->wait, false);
  for (int k = 0; k < ERR_KINDS; k++)
    printf(",%llu", (unsigned long long)f->err[k]);
  printf(",%llu\n", (unsigned long long)f->reconnects);
}

static int write_file(const char *path, const report_view_t *v, bool svg,
                      char *err, size_t errlen) {
  const bench_args *a = v->a;
  FILE *out = fopen(path, "w");
  if (out == NULL) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  if (svg) {
    char title[400];
    snprintf(title, sizeof title, "cpool-bench: %d threads, pool %d, %s%s, %s",
             a->threads, a->pool, a->no_io ? "no I/O" : proto_name(a->protocol),
             a->pipeline > 1 ? " pipelined" : "", v->target);
    plot_data d = {v->lat,        v->wait,     v->series_t,
                   v->series_rps, v->series_n, (double)a->warmup_ms / 1000.0,
                   title};
    plot_write(out, &d);
  } else {
    hdr_write(out, v->lat);
  }
  if (ferror(out) | (fclose(out) != 0)) {
    snprintf(err, errlen, "cannot write %s", path);
    return -1;
  }
  return 0;
}

int report_write_files(const report_view_t *v, char *err, size_t errlen) {
  if (v->a->hdr_path != NULL &&
      write_file(v->a->hdr_path, v, false, err, errlen) != 0)
    return -1;
  if (v->a->plot_path != NULL &&
      write_file(v->a->plot_path, v, true, err, errlen) != 0)
    return -1;
  return 0;
}
