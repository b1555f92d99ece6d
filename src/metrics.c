/*
 * A stats snapshot in the Prometheus text exposition format (0.0.4):
 * cpool_stats_write_prometheus.  A pure function of the snapshot, with
 * snprintf's contract: the whole text's length is returned, and as much
 * of it as fits is written.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PREFIX_MAX 64

/* The text so far: buf[0..len), n bytes produced (some may not fit). */
typedef struct text {
  char *buf;
  size_t len, n;
  int failed;
} text;

static void put(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...) {
  va_list ap;
  size_t room = t->n < t->len ? t->len - t->n : 0;
  va_start(ap, fmt);
  int k = vsnprintf(room > 0 ? t->buf + t->n : NULL, room, fmt, ap);
  va_end(ap);
  if (k < 0)
    t->failed = 1;
  else
    t->n += (size_t)k;
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > PREFIX_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return 0;
  }
  return 1;
}

static void head(text *t, const char *pre, const char *name, const char *type,
                 const char *help) {
  put(t, "# HELP %s_%s %s\n# TYPE %s_%s %s\n", pre, name, help, pre, name,
      type);
}

static void counter(text *t, const char *pre, const char *name, uint64_t v,
                    const char *help) {
  head(t, pre, name, "counter", help);
  put(t, "%s_%s %llu\n", pre, name, (unsigned long long)v);
}

static void gauge(text *t, const char *pre, const char *name, long long v,
                  const char *help) {
  head(t, pre, name, "gauge", help);
  put(t, "%s_%s %lld\n", pre, name, v);
}

static void slot_gauges(text *t, const char *pre, const cpool_stats_t *st) {
  const struct {
    const char *state;
    int n;
  } slots[] = {{"connecting", st->connecting},
               {"idle", st->idle},
               {"busy", st->busy},
               {"backoff", st->backoff},
               {"checking", st->checking},
               {"closed", st->closed}};
  gauge(t, pre, "size", st->size, "Slots in the pool.");
  head(t, pre, "slots", "gauge", "Slots in each state.");
  for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
    put(t, "%s_slots{state=\"%s\"} %d\n", pre, slots[i].state, slots[i].n);
  gauge(t, pre, "waiters", st->waiters, "Callers queued in cpool_checkout.");
}

static void counters(text *t, const char *pre, const cpool_stats_t *st) {
  const struct {
    const char *name;
    uint64_t v;
    const char *help;
  } c[] = {
      {"checkouts_total", st->checkouts, "Successful checkouts."},
      {"waits_total", st->waits, "Checkouts that had to queue."},
      {"checked_out_errors_total", st->checked_out_errors,
       "CPOOL_ECHECKEDOUT returned."},
      {"timeouts_total", st->timeouts, "CPOOL_ETIMEDOUT returned."},
      {"closed_errors_total", st->closed_errors, "CPOOL_ECLOSED returned."},
      {"overloads_total", st->overloads, "CPOOL_EOVERLOAD returned."},
      {"connects_total", st->connects, "Successful connects."},
      {"connect_failures_total", st->connect_failures,
       "Failed connect attempts."},
      {"disconnects_total", st->disconnects,
       "Connected sockets closed by the workers."},
      {"broken_checkins_total", st->broken_checkins,
       "Checkins with CPOOL_CONN_BROKEN."},
      {"idle_check_failures_total", st->idle_check_failures,
       "Dead connections found at checkout."},
      {"pings_total", st->pings, "on_ping runs."},
      {"ping_failures_total", st->ping_failures, "Failed on_ping runs."},
      {"recycles_total", st->recycles,
       "Connections closed after max_lifetime_ms."},
      {"peer_closes_total", st->peer_closes,
       "Connections the server closed or reset, seen by the workers."},
      {"validation_failures_total", st->validation_failures,
       "Checkins with CPOOL_CONN_OK that on_checkin refused."},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
    counter(t, pre, c[i].name, c[i].v, c[i].help);
}

/* One histogram: buckets (CPOOL_HIST_BUCKETS, each its own range) made
 * cumulative, the last one +Inf; the sum in seconds. */
static void histogram(text *t, const char *pre, const char *name,
                      const uint64_t *hist, uint64_t sum_us, const char *help) {
  static const char *const le[CPOOL_HIST_BUCKETS] = {
      "1e-05", "0.0001", "0.001", "0.01", "0.1", "1", "+Inf"};
  uint64_t count = 0;
  head(t, pre, name, "histogram", help);
  for (int i = 0; i < CPOOL_HIST_BUCKETS; i++) {
    count += hist[i];
    put(t, "%s_%s_bucket{le=\"%s\"} %llu\n", pre, name, le[i],
        (unsigned long long)count);
  }
  put(t, "%s_%s_sum %llu.%06llu\n", pre, name,
      (unsigned long long)(sum_us / 1000000),
      (unsigned long long)(sum_us % 1000000));
  put(t, "%s_%s_count %llu\n", pre, name, (unsigned long long)count);
}

int cpool_stats_write_prometheus(const cpool_stats_t *st, const char *prefix,
                                 char *buf, size_t len) {
  const char *pre = prefix != NULL ? prefix : "cpool";
  if (st == NULL || (buf == NULL && len > 0) || !valid_name(pre))
    return CPOOL_EINVAL;
  text t = {.buf = buf, .len = len};
  if (len > 0)
    buf[0] = '\0';
  slot_gauges(&t, pre, st);
  counters(&t, pre, st);
  histogram(&t, pre, "checkout_wait_seconds", st->wait_hist, st->wait_time_us,
            "Time checkouts spent queued.");
  histogram(&t, pre, "hold_seconds", st->hold_hist, st->hold_time_us,
            "Time connections were checked out (coarse clock).");
  histogram(&t, pre, "connect_seconds", st->connect_hist, st->connect_time_us,
            "Time of successful connects: resolve, connect, on_connect.");
  if (t.failed || t.n > (size_t)INT32_MAX)
    return CPOOL_EINVAL;
  return (int)t.n;
}
