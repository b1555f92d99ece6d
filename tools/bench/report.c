#include "report.h"

#include <bsd/string.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "hist.h"
#include "wakeups.h"

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)

const char *const report_err_names[ERR_KINDS] = {
    "checked_out", "timed_out", "closed", "overload",
    "io",          "bad_reply", "other",  "server_error"};

/* The figures of one interval, or of the whole run. */
struct figures {
  double t_s;  /* seconds from the start to the end of the period */
  double secs; /* length of the period */
  uint64_t ok, failed, err[ERR_KINDS];
  uint64_t ops_min, ops_max;
  const hist_t *lat, *wait;
  uint64_t reconnects, disconnects, connect_failures, faults;
  uint64_t peer_closes; /* of those disconnects, seen by the workers */
  long wakeups;         /* the workers' context switches, -1 unknown */
  int slots_connected; /* -1 without a pool */
  double busy;         /* the pool's connections held: a fraction of their
                          time (pool x secs); -1 without a pool */
};

struct pool_counts {
  uint64_t connects, disconnects, connect_failures, peer_closes;
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
  uint64_t busy_prev; /* the threads' busy_ns, summed */
  struct pool_counts pool0, pool_prev;
  uint64_t faults_prev;
  struct figures final; /* report_finish */
  bool finished;
  /* --warmup: the counts when it ended (report_mark), taken off the
   * run's; the start of the figures. */
  bool marked;
  uint64_t t_mark;
  hist_t *lat_mark, *wait_mark, *lat_fin, *wait_fin;
  uint64_t *ops_mark, err_mark[ERR_KINDS], faults_mark, busy_mark;
  struct pool_counts pool_mark;
  long wakeups_mark; /* worker_wakeups() at the start or the mark */
  /* requests/s of each interval, for --plot */
  double *series_t, *series_rps;
  size_t series_n, series_cap;
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
  rep->ops_mark = calloc((size_t)runner_threads(r), sizeof *rep->ops_mark);
  rep->lat_mark = hist_new();
  rep->wait_mark = hist_new();
  rep->lat_fin = hist_new();
  rep->wait_fin = hist_new();
  if (!rep->lat_now || !rep->lat_prev || !rep->lat_int || !rep->wait_now ||
      !rep->wait_prev || !rep->wait_int || !rep->ops_prev || !rep->ops_mark ||
      !rep->lat_mark || !rep->wait_mark || !rep->lat_fin || !rep->wait_fin) {
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
  free(rep->ops_mark);
  hist_free(rep->lat_mark);
  hist_free(rep->wait_mark);
  hist_free(rep->lat_fin);
  hist_free(rep->wait_fin);
  free(rep->series_t);
  free(rep->series_rps);
  free(rep);
}

static struct pool_counts pool_counts(const report_t *rep) {
  struct pool_counts pc = {.connected = -1};
  cpool_stats_t st;
  if (rep->pool != NULL && cpool_stats(rep->pool, &st) == 0) {
    pc.connects = st.connects;
    pc.disconnects = st.disconnects;
    pc.connect_failures = st.connect_failures;
    pc.peer_closes = st.peer_closes;
    pc.connected = st.idle + st.busy + st.checking;
  }
  return pc;
}

static uint64_t faults(const report_t *rep) {
  return rep->srv != NULL ? server_faults(rep->srv) : 0;
}

void report_begin(report_t *rep, uint64_t t0) {
  rep->t0 = rep->t_prev = rep->t_mark = t0;
  rep->wakeups_mark = worker_wakeups();
  rep->pool0 = rep->pool_prev = rep->pool_mark = pool_counts(rep);
  rep->faults_prev = rep->faults_mark = faults(rep);
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

/* The threads' busy_ns, summed. */
static uint64_t busy_ns(const report_t *rep) {
  uint64_t sum = 0;
  for (int i = 0; i < runner_threads(rep->r); i++)
    sum += LOAD(&runner_stats(rep->r, i)->busy_ns);
  return sum;
}

/* Requests and errors per thread; since the previous interval when
 * since_prev, else since the start of the figures (the warmup's end). */
static void count_threads(report_t *rep, struct figures *f, bool since_prev) {
  const bench_args *a = &rep->a;
  uint64_t busy = busy_ns(rep);
  double pool_ns = (double)a->pool * f->secs * 1e9;
  uint64_t since = since_prev ? rep->busy_prev : rep->busy_mark;
  bool pooled = !a->no_io && !a->connect_per_request && pool_ns > 0;
  f->busy = pooled ? (double)(busy - since) / pool_ns : -1;
  rep->busy_prev = busy;
  f->ops_min = UINT64_MAX;
  for (int i = 0; i < runner_threads(rep->r); i++) {
    thread_stats *st = runner_stats(rep->r, i);
    uint64_t ok = LOAD(&st->ok);
    uint64_t d = ok - (since_prev ? rep->ops_prev[i] : rep->ops_mark[i]);
    rep->ops_prev[i] = ok;
    f->ok += d;
    f->ops_min = d < f->ops_min ? d : f->ops_min;
    f->ops_max = d > f->ops_max ? d : f->ops_max;
    for (int k = 0; k < ERR_KINDS; k++)
      f->err[k] += LOAD(&st->err[k]);
  }
  for (int k = 0; k < ERR_KINDS; k++) {
    uint64_t all = f->err[k];
    f->err[k] -= since_prev ? rep->err_prev[k] : rep->err_mark[k];
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
  f->peer_closes = now.peer_closes - since->peer_closes;
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
    fprintf(out, "%s\"%s\":%llu", k ? "," : "", report_err_names[k],
            (unsigned long long)f->err[k]);
  fprintf(out,
          "},\"reconnects\":%llu,\"disconnects\":%llu,"
          "\"connect_failures\":%llu,\"peer_closes\":%llu,"
          "\"faults_injected\":%llu,"
          "\"thread_ops_min\":%llu,\"thread_ops_max\":%llu,"
          "\"slots_connected\":%d",
          (unsigned long long)f->reconnects, (unsigned long long)f->disconnects,
          (unsigned long long)f->connect_failures,
          (unsigned long long)f->peer_closes,
          (unsigned long long)f->faults, (unsigned long long)f->ops_min,
          (unsigned long long)f->ops_max, f->slots_connected);
  if (f->busy >= 0)
    fprintf(out, ",\"pool_busy\":%.4f", f->busy);
  else
    fputs(",\"pool_busy\":null", out);
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

/* One point of the requests/s series; dropped when out of memory. */
static void add_point(report_t *rep, double t, double rps) {
  if (rep->series_n == rep->series_cap) {
    size_t cap = rep->series_cap ? 2 * rep->series_cap : 64;
    double *a = realloc(rep->series_t, cap * sizeof *a);
    if (a == NULL)
      return;
    rep->series_t = a;
    double *b = realloc(rep->series_rps, cap * sizeof *b);
    if (b == NULL)
      return;
    rep->series_rps = b;
    rep->series_cap = cap;
  }
  rep->series_t[rep->series_n] = t;
  rep->series_rps[rep->series_n++] = rps;
}

/* The warmup is over: each thread's histograms and counts are read
 * together, one thread after another.  (The threads run on: a pass over
 * every histogram first, then the counts, let each count run ahead of its
 * histogram by all it did meanwhile, 812 requests once under TSan.) */
void report_mark(report_t *rep, uint64_t now) {
  hist_reset(rep->lat_mark);
  hist_reset(rep->wait_mark);
  memset(rep->err_mark, 0, sizeof rep->err_mark);
  for (int i = 0; i < runner_threads(rep->r); i++) {
    thread_stats *st = runner_stats(rep->r, i);
    uint64_t merged = hist_merge(rep->lat_mark, st->lat);
    hist_merge(rep->wait_mark, st->wait);
    /* The thread runs on: its requests are those its latency histogram
     * held as it was merged (each request ok is counted there once, as
     * it is in ok), so that the figures' requests_ok and histogram agree
     * exactly.  --no-io times 1 cycle in RUNNER_SAMPLE: its count. */
    rep->ops_mark[i] = rep->a.no_io ? LOAD(&st->ok) : merged;
    for (int k = 0; k < ERR_KINDS; k++)
      rep->err_mark[k] += LOAD(&st->err[k]);
  }
  rep->pool_mark = pool_counts(rep);
  rep->faults_mark = faults(rep);
  rep->busy_mark = busy_ns(rep);
  rep->t_mark = now;
  rep->wakeups_mark = worker_wakeups();
  rep->marked = true;
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
  add_point(rep, f.t_s, (double)f.ok / f.secs);
  if (rep->a.json) {
    fprintf(stdout, "{\"type\":\"interval\",\"t_s\":%.3f,\"elapsed_s\":%.3f,",
            f.t_s, f.secs);
    if (rep->a.warmup_ms != 0 && !rep->marked)
      fputs("\"warmup\":true,", stdout);
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
  fprintf(stdout,
          ",\"pipeline\":%d,\"keys\":%d,\"ratio_set\":%d,\"ratio_get\":%d,"
          "\"warmup_ms\":%lld,\"shared_queue\":%s,\"command\":",
          a->pipeline, a->keys, a->ratio_set, a->ratio_get,
          (long long)a->warmup_ms, a->shared_queue ? "true" : "false");
  if (a->command != NULL)
    json_string(stdout, a->command);
  else
    fputs("null", stdout);
  fputc(',', stdout);
  json_figures(stdout, f);
  if (e->slots_idle >= 0)
    fprintf(stdout, ",\"slots_idle\":%d,\"settle_ms\":%lld", e->slots_idle,
            (long long)e->settle_ms);
  if (e->fds_start >= 0 && e->fds_end >= 0)
    fprintf(stdout, ",\"fds_start\":%d,\"fds_end\":%d", e->fds_start,
            e->fds_end);
  if (f->wakeups >= 0)
    fprintf(stdout, ",\"worker_wakeups\":%ld", f->wakeups);
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
  else if (a->protocol == PROTO_COMMAND)
    printf(", command '%s'", a->command);
  else if (a->ratio_set || a->ratio_get)
    printf(", %s set:get %d:%d %d bytes",
           a->protocol >= PROTO_MC_GET ? "memcache" : "redis", a->ratio_set,
           a->ratio_get, a->size);
  else
    printf(", %s %d bytes", proto_name(a->protocol), a->size);
  if (a->pipeline > 1)
    printf(", pipeline %d", a->pipeline);
  if (a->rate)
    printf(", open loop at %lld/s%s", (long long)a->rate,
           a->shared_queue ? " (shared queue)" : "");
  printf(", %.2f s", f->secs);
  if (a->warmup_ms)
    printf(" after %.2f s of warmup", (double)a->warmup_ms / 1000.0);
  printf(", %s%s\n", rep->target, a->builtin ? " (built-in server)" : "");
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
  if (f->busy >= 0)
    printf("  %-18s %.1f%% of the %d connections' time\n", "pool busy",
           100.0 * f->busy, a->pool);
  printf("  %-18s", "errors");
  if (f->failed == 0)
    printf(" none");
  for (int k = 0; k < ERR_KINDS; k++)
    if (f->err[k] != 0)
      printf(" %s %s", report_err_names[k], grouped(n, sizeof n, f->err[k]));
  printf("\n");
  if (!a->connect_per_request)
    printf("  %-18s %llu (disconnects %llu, %llu of them closed by the "
           "server; failed connects %llu)\n",
           "reconnects", (unsigned long long)f->reconnects,
           (unsigned long long)f->disconnects,
           (unsigned long long)f->peer_closes,
           (unsigned long long)f->connect_failures);
  if (a->chaos_ms)
    printf("  %-18s %llu\n", "faults injected", (unsigned long long)f->faults);
  if (f->wakeups >= 0)
    printf("  %-18s %ld (the pool's worker threads woke)\n", "worker wakeups",
           f->wakeups);
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
                        .secs = (double)(end - rep->t_mark) / 1e9,
                        .lat = rep->lat_fin,
                        .wait = rep->wait_fin};
  if (rep->progress_shown) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    rep->progress_shown = false;
  }
  merge_threads(rep);
  if (rep->marked) { /* the figures after the warmup */
    hist_diff(rep->lat_fin, rep->lat_now, rep->lat_mark);
    hist_diff(rep->wait_fin, rep->wait_now, rep->wait_mark);
  } else {
    hist_copy(rep->lat_fin, rep->lat_now);
    hist_copy(rep->wait_fin, rep->wait_now);
  }
  count_threads(rep, f, false);
  count_pool(rep, f, &rep->pool_mark);
  f->faults = faults(rep) - rep->faults_mark;
  gather_endpoints(rep);
  long w = worker_wakeups();
  f->wakeups = w >= 0 && rep->wakeups_mark >= 0 ? w - rep->wakeups_mark : -1;
  rep->pool = NULL; /* the pool may be closed from here on */
  rep->srv = NULL;
  rep->finished = true;
}

void report_view(const report_t *rep, report_view_t *v) {
  const struct figures *f = &rep->final;
  *v = (report_view_t){.a = &rep->a,
                       .target = rep->target,
                       .secs = f->secs,
                       .ok = f->ok,
                       .failed = f->failed,
                       .err = f->err,
                       .reconnects = f->reconnects,
                       .lat = f->lat,
                       .wait = f->wait,
                       .series_t = rep->series_t,
                       .series_rps = rep->series_rps,
                       .series_n = rep->series_n};
}

int report_files(report_t *rep, char *err, size_t errlen) {
  if (!rep->finished)
    return 0;
  report_view_t v;
  report_view(rep, &v);
  return report_write_files(&v, err, errlen);
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
  else if (rep->a.csv) {
    report_view_t v;
    report_view(rep, &v);
    report_csv(&v);
  } else
    text_summary(rep, &rep->final, e);
  fflush(stdout);
  return rep->final.ok;
}
