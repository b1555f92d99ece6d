#include "report.h"

#include <bsd/string.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hist.h"

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)

static const char *const err_names[ERR_KINDS] = {
    "checked_out", "timed_out", "closed", "overload",
    "io",          "bad_reply", "other"};

/* The figures of one interval, or of the whole run. */
struct figures {
  double t_s;  /* seconds from the start to the end of the period */
  double secs; /* length of the period */
  uint64_t ok, failed, err[ERR_KINDS];
  uint64_t ops_min, ops_max;
  const hist_t *lat, *wait;
  uint64_t reconnects, disconnects, connect_failures, faults;
  int slots_connected; /* -1 without a pool */
};

struct pool_counts {
  uint64_t connects, disconnects, connect_failures;
  int connected;
};

struct report {
  bench_args a;
  runner_t *r;
  cpool_t *pool;
  server_t *srv;
  char target[160];
  bool progress; /* a terminal, and not --quiet */
  bool progress_shown;
  uint64_t t0, t_prev;
  hist_t *lat_now, *lat_prev, *lat_int, *wait_now, *wait_prev, *wait_int;
  uint64_t *ops_prev;
  uint64_t err_prev[ERR_KINDS];
  struct pool_counts pool0, pool_prev;
  uint64_t faults_prev;
  struct figures final; /* report_finish */
  bool finished;
  /* --endpoints: each endpoint's figures at the end (report_finish). */
  cpool_endpoint_stats_t eps[CPOOL_MAX_ENDPOINTS];
  int neps;
};

report_t *report_new(const bench_args *a, runner_t *r, cpool_t *pool,
                     server_t *srv, const char *target) {
  report_t *rep = calloc(1, sizeof *rep);
  if (rep == NULL)
    return NULL;
  rep->a = *a;
  rep->r = r;
  rep->pool = pool;
  rep->srv = srv;
  strlcpy(rep->target, target, sizeof rep->target);
  rep->progress = !a->quiet && isatty(STDERR_FILENO);
  rep->lat_now = hist_new();
  rep->lat_prev = hist_new();
  rep->lat_int = hist_new();
  rep->wait_now = hist_new();
  rep->wait_prev = hist_new();
  rep->wait_int = hist_new();
  rep->ops_prev = calloc((size_t)runner_threads(r), sizeof *rep->ops_prev);
  if (!rep->lat_now || !rep->lat_prev || !rep->lat_int || !rep->wait_now ||
      !rep->wait_prev || !rep->wait_int || !rep->ops_prev) {
    report_free(rep);
    return NULL;
  }
  return rep;
}

void report_free(report_t *rep) {
  if (rep == NULL)
    return;
  hist_free(rep->lat_now);
  hist_free(rep->lat_prev);
  hist_free(rep->lat_int);
  hist_free(rep->wait_now);
  hist_free(rep->wait_prev);
  hist_free(rep->wait_int);
  free(rep->ops_prev);
  free(rep);
}

static struct pool_counts pool_counts(const report_t *rep) {
  struct pool_counts pc = {.connected = -1};
  cpool_stats_t st;
  if (rep->pool != NULL && cpool_stats(rep->pool, &st) == 0) {
    pc.connects = st.connects;
    pc.disconnects = st.disconnects;
    pc.connect_failures = st.connect_failures;
    pc.connected = st.idle + st.busy + st.checking;
  }
  return pc;
}

static uint64_t faults(const report_t *rep) {
  return rep->srv != NULL ? server_faults(rep->srv) : 0;
}

void report_begin(report_t *rep, uint64_t t0) {
  rep->t0 = rep->t_prev = t0;
  rep->pool0 = rep->pool_prev = pool_counts(rep);
  rep->faults_prev = faults(rep);
}

/* --- gathering -------------------------------------------------------------
 */

/* Merge every thread's histograms into lat_now and wait_now. */
static void merge_threads(report_t *rep) {
  hist_reset(rep->lat_now);
  hist_reset(rep->wait_now);
  for (int i = 0; i < runner_threads(rep->r); i++) {
    thread_stats *st = runner_stats(rep->r, i);
    hist_merge(rep->lat_now, st->lat);
    hist_merge(rep->wait_now, st->wait);
  }
}

/* Requests and errors per thread; since the previous interval when
 * since_prev, else in all. */
static void count_threads(report_t *rep, struct figures *f, bool since_prev) {
  f->ops_min = UINT64_MAX;
  for (int i = 0; i < runner_threads(rep->r); i++) {
    thread_stats *st = runner_stats(rep->r, i);
    uint64_t ok = LOAD(&st->ok);
    uint64_t d = since_prev ? ok - rep->ops_prev[i] : ok;
    rep->ops_prev[i] = ok;
    f->ok += d;
    f->ops_min = d < f->ops_min ? d : f->ops_min;
    f->ops_max = d > f->ops_max ? d : f->ops_max;
    for (int k = 0; k < ERR_KINDS; k++)
      f->err[k] += LOAD(&st->err[k]);
  }
  for (int k = 0; k < ERR_KINDS; k++) {
    uint64_t all = f->err[k];
    if (since_prev)
      f->err[k] -= rep->err_prev[k];
    rep->err_prev[k] = all;
    f->failed += f->err[k];
  }
}

static void count_pool(report_t *rep, struct figures *f,
                       const struct pool_counts *since) {
  struct pool_counts now = pool_counts(rep);
  f->reconnects = now.connects - since->connects;
  f->disconnects = now.disconnects - since->disconnects;
  f->connect_failures = now.connect_failures - since->connect_failures;
  f->slots_connected = now.connected;
  rep->pool_prev = now;
}

/* --- printing --------------------------------------------------------------
 */

static double us(uint64_t ns) {
  return (double)ns / 1000.0;
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void json_latency(FILE *out, const char *name, const hist_t *h) {
  fprintf(out,
          "\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
          "\"max\":%.3f,\"mean\":%.3f}",
          name, us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
          us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)),
          us(hist_max(h)), hist_mean(h) / 1000.0);
}

static void json_figures(FILE *out, const struct figures *f) {
  fprintf(out, "\"requests_ok\":%llu,\"requests_failed\":%llu,\"rps\":%.1f,",
          (unsigned long long)f->ok, (unsigned long long)f->failed,
          f->secs > 0 ? (double)f->ok / f->secs : 0.0);
  json_latency(out, "latency_us", f->lat);
  fputc(',', out);
  json_latency(out, "wait_us", f->wait);
  fputs(",\"errors\":{", out);
  for (int k = 0; k < ERR_KINDS; k++)
    fprintf(out, "%s\"%s\":%llu", k ? "," : "", err_names[k],
            (unsigned long long)f->err[k]);
  fprintf(out,
          "},\"reconnects\":%llu,\"disconnects\":%llu,"
          "\"connect_failures\":%llu,\"faults_injected\":%llu,"
          "\"thread_ops_min\":%llu,\"thread_ops_max\":%llu,"
          "\"slots_connected\":%d",
          (unsigned long long)f->reconnects, (unsigned long long)f->disconnects,
          (unsigned long long)f->connect_failures,
          (unsigned long long)f->faults, (unsigned long long)f->ops_min,
          (unsigned long long)f->ops_max, f->slots_connected);
}

/* "1,234,567" */
static const char *grouped(char *buf, size_t len, uint64_t n) {
  char digits[32];
  int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
  size_t o = 0;
  for (int i = 0; i < nd && o + 2 < len; i++) {
    if (i > 0 && (nd - i) % 3 == 0)
      buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

static const char *micros(char *buf, size_t len, uint64_t ns) {
  double v = us(ns);
  snprintf(buf, len, v < 10 ? "%.3f" : v < 1000 ? "%.1f" : "%.0f", v);
  return buf;
}

static void progress_line(report_t *rep, const struct figures *f) {
  char n[32], p99[32];
  fprintf(stderr, "\r[%4.0fs] %s req/s  p99 %s us  errors %llu", f->t_s,
          grouped(n, sizeof n, (uint64_t)((double)f->ok / f->secs + 0.5)),
          micros(p99, sizeof p99, hist_percentile(f->lat, 99)),
          (unsigned long long)f->failed);
  if (f->slots_connected >= 0)
    fprintf(stderr, "  slots %d/%d", f->slots_connected, rep->a.pool);
  if (rep->a.chaos_ms)
    fprintf(stderr, "  faults %llu", (unsigned long long)faults(rep));
  fputs("\033[K", stderr);
  fflush(stderr);
  rep->progress_shown = true;
}

void report_interval(report_t *rep, uint64_t now) {
  struct figures f = {.t_s = (double)(now - rep->t0) / 1e9,
                      .secs = (double)(now - rep->t_prev) / 1e9,
                      .lat = rep->lat_int,
                      .wait = rep->wait_int};
  if (f.secs <= 0)
    return;
  merge_threads(rep);
  hist_diff(rep->lat_int, rep->lat_now, rep->lat_prev);
  hist_diff(rep->wait_int, rep->wait_now, rep->wait_prev);
  hist_copy(rep->lat_prev, rep->lat_now);
  hist_copy(rep->wait_prev, rep->wait_now);
  count_threads(rep, &f, true);
  struct pool_counts since = rep->pool_prev;
  count_pool(rep, &f, &since);
  uint64_t fl = faults(rep);
  f.faults = fl - rep->faults_prev;
  rep->faults_prev = fl;
  rep->t_prev = now;
  if (rep->a.json) {
    fprintf(stdout, "{\"type\":\"interval\",\"t_s\":%.3f,\"elapsed_s\":%.3f,",
            f.t_s, f.secs);
    json_figures(stdout, &f);
    fputs("}\n", stdout);
    fflush(stdout);
  }
  if (rep->progress)
    progress_line(rep, &f);
}

/* Per-endpoint figures (--endpoints): slots connected at the end, and
 * connects and failed connects over the pool's life. */
static void gather_endpoints(report_t *rep) {
  cpool_stats_t st;
  rep->neps = 0;
  if (rep->pool == NULL || rep->a.endpoints == NULL ||
      cpool_stats(rep->pool, &st) != 0)
    return;
  for (int i = 0; i < st.nendpoints && i < CPOOL_MAX_ENDPOINTS; i++)
    if (cpool_endpoint_stats(rep->pool, i, &rep->eps[rep->neps]) == 0)
      rep->neps++;
}

static void text_endpoints(const report_t *rep) {
  for (int i = 0; i < rep->neps; i++) {
    const cpool_endpoint_stats_t *e = &rep->eps[i];
    printf("  %-18s %s: %d slots connected, %llu connects, %llu failed%s%s\n",
           i == 0 ? "endpoints" : "", e->addr, e->connected,
           (unsigned long long)e->connects, (unsigned long long)e->failures,
           e->last_error.code ? "; last: " : "",
           e->last_error.code ? e->last_error.message : "");
  }
}

static void json_endpoints(const report_t *rep) {
  if (rep->neps == 0)
    return;
  fputs(",\"endpoints\":[", stdout);
  for (int i = 0; i < rep->neps; i++) {
    const cpool_endpoint_stats_t *e = &rep->eps[i];
    fputs(i ? ",{\"addr\":" : "{\"addr\":", stdout);
    json_string(stdout, e->addr);
    fprintf(stdout, ",\"connected\":%d,\"connects\":%llu,\"failures\":%llu,"
                    "\"last_error\":",
            e->connected, (unsigned long long)e->connects,
            (unsigned long long)e->failures);
    json_string(stdout, e->last_error.message);
    fputc('}', stdout);
  }
  fputc(']', stdout);
}

static const char *mode_name(const bench_args *a) {
  return a->connect_per_request ? "connect-per-request"
         : a->nowait            ? "nowait"
                                : "wait";
}

static void json_summary(const report_t *rep, const struct figures *f,
                         const report_end *e) {
  const bench_args *a = &rep->a;
  fprintf(stdout, "{\"type\":\"summary\",\"elapsed_s\":%.3f,\"threads\":%d,",
          f->secs, a->threads);
  fprintf(stdout,
          "\"pool\":%d,\"mode\":\"%s\",\"timeout_ms\":%d,\"protocol\":\"%s\","
          "\"size\":%d,\"no_io\":%s,\"connect_per_request\":%s,\"rate\":%lld,"
          "\"chaos_ms\":%lld,\"handoff_us\":%d,\"handoff_max_us\":%d,"
          "\"builtin_server\":%s,"
          "\"target\":",
          a->connect_per_request ? 0 : a->pool, mode_name(a),
          a->nowait ? 0 : a->timeout_ms,
          a->no_io ? "none" : proto_name(a->protocol), a->size,
          a->no_io ? "true" : "false",
          a->connect_per_request ? "true" : "false", (long long)a->rate,
          (long long)a->chaos_ms, a->handoff_us, a->handoff_max_us,
          a->builtin ? "true" : "false");
  json_string(stdout, rep->target);
  fputc(',', stdout);
  json_figures(stdout, f);
  if (e->slots_idle >= 0)
    fprintf(stdout, ",\"slots_idle\":%d,\"settle_ms\":%lld", e->slots_idle,
            (long long)e->settle_ms);
  if (e->fds_start >= 0 && e->fds_end >= 0)
    fprintf(stdout, ",\"fds_start\":%d,\"fds_end\":%d", e->fds_start,
            e->fds_end);
  json_endpoints(rep);
  fputs("}\n", stdout);
  fflush(stdout);
}

static void text_latency(const char *label, const hist_t *h) {
  char b[5][32];
  printf("  %-18s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", label,
         micros(b[0], 32, hist_percentile(h, 50)),
         micros(b[1], 32, hist_percentile(h, 90)),
         micros(b[2], 32, hist_percentile(h, 99)),
         micros(b[3], 32, hist_percentile(h, 99.9)),
         micros(b[4], 32, hist_max(h)));
}

static void text_header(const report_t *rep, const struct figures *f) {
  const bench_args *a = &rep->a;
  printf("cpool-bench %s: %d threads, ", cpool_version_string(), a->threads);
  if (a->connect_per_request)
    printf("no pool (a new connection per request)");
  else if (a->nowait)
    printf("pool %d, nowait", a->pool);
  else
    printf("pool %d, wait (timeout %d ms)", a->pool, a->timeout_ms);
  if (a->no_io)
    printf(", no I/O");
  else if (a->protocol == PROTO_PING)
    printf(", ping");
  else
    printf(", %s %d bytes", proto_name(a->protocol), a->size);
  if (a->rate)
    printf(", open loop at %lld/s", (long long)a->rate);
  printf(", %.2f s, %s%s\n", f->secs, rep->target,
         a->builtin ? " (built-in server)" : "");
}

static void text_summary(const report_t *rep, const struct figures *f,
                         const report_end *e) {
  const bench_args *a = &rep->a;
  char n[32], r[32];
  text_header(rep, f);
  printf("  %-18s %s  (%s /s)\n", "requests ok", grouped(n, sizeof n, f->ok),
         grouped(r, sizeof r,
                 (uint64_t)(f->secs > 0 ? (double)f->ok / f->secs + 0.5 : 0)));
  text_latency(a->no_io  ? "latency us (1/128)"
               : a->rate ? "latency us (due)"
                         : "latency us",
               f->lat);
  text_latency(a->connect_per_request ? "connect us"
               : a->no_io             ? "checkout us (1/128)"
                                      : "checkout wait us",
               f->wait);
  printf("  %-18s", "errors");
  if (f->failed == 0)
    printf(" none");
  for (int k = 0; k < ERR_KINDS; k++)
    if (f->err[k] != 0)
      printf(" %s %s", err_names[k], grouped(n, sizeof n, f->err[k]));
  printf("\n");
  if (!a->connect_per_request)
    printf("  %-18s %llu (disconnects %llu, failed connects %llu)\n",
           "reconnects", (unsigned long long)f->reconnects,
           (unsigned long long)f->disconnects,
           (unsigned long long)f->connect_failures);
  if (a->chaos_ms)
    printf("  %-18s %llu\n", "faults injected", (unsigned long long)f->faults);
  text_endpoints(rep);
  printf("  %-18s fewest %s, most %s requests by one thread (%.2f)\n",
         "fairness", grouped(n, sizeof n, f->ops_min),
         grouped(r, sizeof r, f->ops_max),
         f->ops_max ? (double)f->ops_min / (double)f->ops_max : 0.0);
  if (e->slots_idle >= 0)
    printf("  %-18s %d of %d slots idle, %lld ms after the run\n", "settled",
           e->slots_idle, a->pool, (long long)e->settle_ms);
  if (e->fds_start >= 0 && e->fds_end >= 0)
    printf("  %-18s %d open at the start, %d at the end%s\n", "descriptors",
           e->fds_start, e->fds_end,
           e->fds_end > e->fds_start ? " (leaked!)" : "");
}

void report_finish(report_t *rep, uint64_t end) {
  struct figures *f = &rep->final;
  *f = (struct figures){.t_s = (double)(end - rep->t0) / 1e9,
                        .secs = (double)(end - rep->t0) / 1e9,
                        .lat = rep->lat_now,
                        .wait = rep->wait_now};
  if (rep->progress_shown) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    rep->progress_shown = false;
  }
  merge_threads(rep);
  count_threads(rep, f, false);
  count_pool(rep, f, &rep->pool0);
  f->faults = faults(rep);
  gather_endpoints(rep);
  rep->pool = NULL; /* the pool may be closed from here on */
  rep->srv = NULL;
  rep->finished = true;
}

uint64_t report_summary(report_t *rep, const report_end *e) {
  static const report_end none = {.slots_idle = -1, .fds_start = -1,
                                  .fds_end = -1};
  if (!rep->finished)
    return 0;
  if (e == NULL)
    e = &none;
  if (rep->a.json)
    json_summary(rep, &rep->final, e);
  else
    text_summary(rep, &rep->final, e);
  fflush(stdout);
  return rep->final.ok;
}
