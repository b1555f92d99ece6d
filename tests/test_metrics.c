/*
 * Metrics with time: the wait, hold and connect times of cpool_stats_t
 * (totals and histograms, CPOOL_HIST_BUCKETS), measured on a live pool,
 * and cpool_stats_write_prometheus: exact text for a hand-filled
 * snapshot, snprintf's contract, bad arguments, and text of a live pool
 * that parses as the Prometheus exposition format.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_server *srv;

int metrics_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int metrics_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

static cpool_t *open_pool(int size) {
  return tu_open_sync(ts_port(srv), size);
}

/* The header's buckets, independently: <= 10 us, <= 100 us ... > 1 s. */
static int bucket_of(int64_t us) {
  int b = 0;
  for (int64_t limit = 10; b < CPOOL_HIST_BUCKETS - 1 && us > limit;
       limit *= 10)
    b++;
  return b;
}

static uint64_t hist_sum(const uint64_t *h) {
  uint64_t n = 0;
  for (int i = 0; i < CPOOL_HIST_BUCKETS; i++)
    n += h[i];
  return n;
}

/* n times, each between lo_us and hi_us (what the test measured around
 * them): all in the buckets from lo's to hi's, none elsewhere. */
static void assert_in_buckets(const uint64_t *h, uint64_t n, int64_t lo_us,
                              int64_t hi_us) {
  int lo = bucket_of(lo_us < 0 ? 0 : lo_us), hi = bucket_of(hi_us);
  uint64_t inside = 0;
  for (int i = lo; i <= hi; i++)
    inside += h[i];
  TU_ASSERT_EQ(inside, n);
  TU_ASSERT_EQ(hist_sum(h), n);
}

/* ---- the printer, on a hand-filled snapshot ----------------------------- */

static void fill(cpool_stats_t *st) {
  memset(st, 0, sizeof *st);
  st->size = 8;
  st->connecting = 1, st->idle = 2, st->busy = 3, st->backoff = 1;
  st->checking = 1, st->closed = 0;
  st->waiters = 4;
  st->checkouts = 1000, st->waits = 6, st->checked_out_errors = 7;
  st->timeouts = 2, st->closed_errors = 3, st->overloads = 1;
  st->connects = 9, st->connect_failures = 5, st->disconnects = 4;
  st->broken_checkins = 2, st->idle_check_failures = 1;
  st->pings = 11, st->ping_failures = 1, st->recycles = 3;
  st->peer_closes = 17, st->validation_failures = 2;
  const uint64_t wait[] = {1, 0, 2, 1, 1, 0, 1},
                 hold[] = {990, 0, 0, 8, 2, 0, 0},
                 conn[] = {0, 0, 7, 2, 0, 0, 0};
  memcpy(st->wait_hist, wait, sizeof wait);
  memcpy(st->hold_hist, hold, sizeof hold);
  memcpy(st->connect_hist, conn, sizeof conn);
  st->wait_time_us = 1234567;
  st->hold_time_us = 95000;
  st->connect_time_us = 15300;
}

static const char *const expected_lines[] = {
    "# HELP db_size Slots in the pool.",
    "# TYPE db_size gauge",
    "db_size 8",
    "# HELP db_slots Slots in each state.",
    "# TYPE db_slots gauge",
    "db_slots{state=\"connecting\"} 1",
    "db_slots{state=\"idle\"} 2",
    "db_slots{state=\"busy\"} 3",
    "db_slots{state=\"backoff\"} 1",
    "db_slots{state=\"checking\"} 1",
    "db_slots{state=\"closed\"} 0",
    "# HELP db_waiters Callers queued in cpool_checkout.",
    "# TYPE db_waiters gauge",
    "db_waiters 4",
    "# HELP db_checkouts_total Successful checkouts.",
    "# TYPE db_checkouts_total counter",
    "db_checkouts_total 1000",
    "# HELP db_waits_total Checkouts that had to queue.",
    "# TYPE db_waits_total counter",
    "db_waits_total 6",
    "# HELP db_checked_out_errors_total CPOOL_ECHECKEDOUT returned.",
    "# TYPE db_checked_out_errors_total counter",
    "db_checked_out_errors_total 7",
    "# HELP db_timeouts_total CPOOL_ETIMEDOUT returned.",
    "# TYPE db_timeouts_total counter",
    "db_timeouts_total 2",
    "# HELP db_closed_errors_total CPOOL_ECLOSED returned.",
    "# TYPE db_closed_errors_total counter",
    "db_closed_errors_total 3",
    "# HELP db_overloads_total CPOOL_EOVERLOAD returned.",
    "# TYPE db_overloads_total counter",
    "db_overloads_total 1",
    "# HELP db_connects_total Successful connects.",
    "# TYPE db_connects_total counter",
    "db_connects_total 9",
    "# HELP db_connect_failures_total Failed connect attempts.",
    "# TYPE db_connect_failures_total counter",
    "db_connect_failures_total 5",
    "# HELP db_disconnects_total Connected sockets closed by the workers.",
    "# TYPE db_disconnects_total counter",
    "db_disconnects_total 4",
    "# HELP db_broken_checkins_total Checkins with CPOOL_CONN_BROKEN.",
    "# TYPE db_broken_checkins_total counter",
    "db_broken_checkins_total 2",
    "# HELP db_idle_check_failures_total Dead connections found at checkout.",
    "# TYPE db_idle_check_failures_total counter",
    "db_idle_check_failures_total 1",
    "# HELP db_pings_total on_ping runs.",
    "# TYPE db_pings_total counter",
    "db_pings_total 11",
    "# HELP db_ping_failures_total Failed on_ping runs.",
    "# TYPE db_ping_failures_total counter",
    "db_ping_failures_total 1",
    "# HELP db_recycles_total Connections closed after max_lifetime_ms.",
    "# TYPE db_recycles_total counter",
    "db_recycles_total 3",
    "# HELP db_peer_closes_total Connections the server closed or reset, "
    "seen by the workers.",
    "# TYPE db_peer_closes_total counter",
    "db_peer_closes_total 17",
    "# HELP db_validation_failures_total Checkins with CPOOL_CONN_OK that "
    "on_checkin refused.",
    "# TYPE db_validation_failures_total counter",
    "db_validation_failures_total 2",
    "# HELP db_checkout_wait_seconds Time checkouts spent queued.",
    "# TYPE db_checkout_wait_seconds histogram",
    "db_checkout_wait_seconds_bucket{le=\"1e-05\"} 1",
    "db_checkout_wait_seconds_bucket{le=\"0.0001\"} 1",
    "db_checkout_wait_seconds_bucket{le=\"0.001\"} 3",
    "db_checkout_wait_seconds_bucket{le=\"0.01\"} 4",
    "db_checkout_wait_seconds_bucket{le=\"0.1\"} 5",
    "db_checkout_wait_seconds_bucket{le=\"1\"} 5",
    "db_checkout_wait_seconds_bucket{le=\"+Inf\"} 6",
    "db_checkout_wait_seconds_sum 1.234567",
    "db_checkout_wait_seconds_count 6",
    "# HELP db_hold_seconds Time connections were checked out (coarse clock).",
    "# TYPE db_hold_seconds histogram",
    "db_hold_seconds_bucket{le=\"1e-05\"} 990",
    "db_hold_seconds_bucket{le=\"0.0001\"} 990",
    "db_hold_seconds_bucket{le=\"0.001\"} 990",
    "db_hold_seconds_bucket{le=\"0.01\"} 998",
    "db_hold_seconds_bucket{le=\"0.1\"} 1000",
    "db_hold_seconds_bucket{le=\"1\"} 1000",
    "db_hold_seconds_bucket{le=\"+Inf\"} 1000",
    "db_hold_seconds_sum 0.095000",
    "db_hold_seconds_count 1000",
    "# HELP db_connect_seconds Time of successful connects: resolve, connect, "
    "on_connect.",
    "# TYPE db_connect_seconds histogram",
    "db_connect_seconds_bucket{le=\"1e-05\"} 0",
    "db_connect_seconds_bucket{le=\"0.0001\"} 0",
    "db_connect_seconds_bucket{le=\"0.001\"} 7",
    "db_connect_seconds_bucket{le=\"0.01\"} 9",
    "db_connect_seconds_bucket{le=\"0.1\"} 9",
    "db_connect_seconds_bucket{le=\"1\"} 9",
    "db_connect_seconds_bucket{le=\"+Inf\"} 9",
    "db_connect_seconds_sum 0.015300",
    "db_connect_seconds_count 9",
};

/* Every line exactly, in order, and nothing else. */
static void test_prometheus_exact(void) {
  cpool_stats_t st;
  char buf[16384], *at = buf;
  fill(&st);
  int n = cpool_stats_write_prometheus(&st, "db", buf, sizeof buf);
  TU_ASSERT_INT(n, >, 0);
  TU_ASSERT_EQ(strlen(buf), n);
  size_t nlines = sizeof expected_lines / sizeof expected_lines[0];
  for (size_t i = 0; i < nlines; i++) {
    char *nl = strchr(at, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    *nl = '\0';
    if (strcmp(at, expected_lines[i]) != 0)
      fprintf(stderr, "line %zu: got '%s', expected '%s'\n", i + 1, at,
              expected_lines[i]);
    CU_ASSERT_STRING_EQUAL(at, expected_lines[i]);
    at = nl + 1;
  }
  CU_ASSERT_STRING_EQUAL(at, ""); /* no more lines */
}

/* snprintf's contract: the whole length, whatever fits, NUL-terminated. */
static void test_prometheus_sizes(void) {
  cpool_stats_t st;
  char full[16384], small[40];
  fill(&st);
  int n = cpool_stats_write_prometheus(&st, NULL, NULL, 0);
  TU_ASSERT_INT(n, >, 0);
  TU_ASSERT_EQ(cpool_stats_write_prometheus(&st, NULL, full, sizeof full), n);
  TU_ASSERT_EQ(strlen(full), n);
  CU_ASSERT(strncmp(full, "# HELP cpool_size ", 18) == 0); /* the default */
  memset(small, 'x', sizeof small);
  TU_ASSERT_EQ(cpool_stats_write_prometheus(&st, NULL, small, sizeof small), n);
  TU_ASSERT_EQ(strlen(small), sizeof small - 1);
  CU_ASSERT(strncmp(small, full, sizeof small - 1) == 0);
  /* Exactly the room it needs, and one byte short of it. */
  char *exact = malloc((size_t)n + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
  TU_ASSERT_EQ(cpool_stats_write_prometheus(&st, NULL, exact, (size_t)n + 1),
               n);
  CU_ASSERT_STRING_EQUAL(exact, full);
  TU_ASSERT_EQ(cpool_stats_write_prometheus(&st, NULL, exact, (size_t)n), n);
  TU_ASSERT_EQ(strlen(exact), n - 1);
  free(exact);
}

static void test_prometheus_bad_args(void) {
  cpool_stats_t st;
  char buf[64];
  fill(&st);
  TU_ASSERT_CODE(cpool_stats_write_prometheus(NULL, NULL, buf, sizeof buf),
                 CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats_write_prometheus(&st, NULL, NULL, 5),
                 CPOOL_EINVAL);
  static const char *const bad[] = {
      "",
      "9lives",
      "a-b",
      "a b",
      "a{b}",
      "é",
      "a_prefix_that_is_far_too_long_for_a_metric_name_0123456789abcdefgh"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    TU_ASSERT_CODE(cpool_stats_write_prometheus(&st, bad[i], buf, sizeof buf),
                   CPOOL_EINVAL);
  TU_ASSERT_INT(cpool_stats_write_prometheus(&st, "ns:sub_2", buf, sizeof buf),
                >, 0);
}

/* ---- times on a live pool ---------------------------------------------- */

/* A checkout that queues for ~20 ms lands in the (10 ms, 100 ms] bucket;
 * a timed-out one is counted as a wait too. */
static void test_wait_time(void) {
  cpool_t *p = open_pool(1);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  tu_waiter w;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  int64_t t0 = tu_now_us();
  TU_ASSERT_EQ(tu_waiter_start(&w, p, 5000, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  int64_t queued = tu_now_us();
  tu_sleep_ms(20); /* the time measured, not a synchronisation */
  int64_t t1 = tu_now_us();
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  tu_waiter_join(&w);
  int64_t t2 = tu_now_us();
  TU_ASSERT_CODE(w.rc, 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.waits, 1);
  assert_in_buckets(st.wait_hist, 1, t1 - queued, t2 - t0);
  TU_ASSERT_EQ(st.wait_hist[4], t2 - t0 <= 100000 ? 1 : st.wait_hist[4]);
  TU_ASSERT_BETWEEN(st.wait_time_us, t1 - queued, t2 - t0);

  /* A wait that times out: 30 ms, counted too. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  t0 = tu_now_us();
  cpool_conn_t *none = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &none, 30, NULL), CPOOL_ETIMEDOUT);
  t1 = tu_now_us();
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  uint64_t before = st.wait_time_us;
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.waits, 2);
  TU_ASSERT_EQ(hist_sum(st.wait_hist), 2);
  TU_ASSERT_BETWEEN(st.wait_time_us - before, 30000, t1 - t0);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
}

/* A hold of ~20 ms, on the locked path and then on the fast path, lands
 * in the (10 ms, 100 ms] bucket (the coarse clock is off by a tick at
 * most); the quick ones in between, below it. */
static void test_hold_time(void) {
  cpool_t *p = open_pool(1);
  cpool_stats_t st;
  int64_t lo = INT64_MAX, hi = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < 2; i++) {
    cpool_conn_t *c = NULL;
    int64_t t0 = tu_now_us();
    TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
    int64_t t1 = tu_now_us();
    tu_sleep_ms(20); /* the time measured */
    int64_t t2 = tu_now_us();
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    int64_t t3 = tu_now_us();
    lo = t2 - t1 < lo ? t2 - t1 : lo;
    hi = t3 - t0 > hi ? t3 - t0 : hi;
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 2);
  /* A coarse tick is at most 4 ms (HZ=250), and both ends are stamped on
   * it: 5 ms of slack either way. */
  assert_in_buckets(st.hold_hist, 2, lo - 5000, hi + 5000);
  if (hi + 5000 <= 100000)
    TU_ASSERT_EQ(st.hold_hist[4], 2);
  TU_ASSERT_BETWEEN(st.hold_time_us, 2 * (lo - 5000), 2 * (hi + 5000));
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
}

/* Every successful connect is timed: at open, and after a broken checkin
 * the reconnect. */
static void test_connect_time(void) {
  cpool_t *p = open_pool(2);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(hist_sum(st.connect_hist), 2);
  TU_ASSERT_INT(st.connect_time_us, >, 0);
  TU_ASSERT_INT(st.connect_time_us, <, 2 * 500000); /* connect_timeout_ms */
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects == 3, 5000);
  TU_ASSERT_EQ(st.connects, 3);
  TU_ASSERT_EQ(hist_sum(st.connect_hist), 3);
  TU_ASSERT_EQ(hist_sum(st.hold_hist), 1);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
}

/* ---- the text of a live pool parses ------------------------------------ */

/* Each line: a comment (# HELP name text, # TYPE name type) or a sample
 * name{labels} value; each sample's family was announced by # TYPE; a
 * histogram's buckets grow, and +Inf is its count. */
static void check_exposition(char *text) {
  regex_t sample, help, type;
  const char *name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  char re[512];
  snprintf(
      re, sizeof re,
      "^(%s)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*"
      "=\"[^\"]*\")*\\})? (-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|\\+Inf)$",
      name);
  TU_ASSERT_EQ(regcomp(&sample, re, REG_EXTENDED), 0);
  snprintf(re, sizeof re, "^# HELP %s .+$", name);
  TU_ASSERT_EQ(regcomp(&help, re, REG_EXTENDED | REG_NOSUB), 0);
  snprintf(re, sizeof re, "^# TYPE (%s) (counter|gauge|histogram)$", name);
  TU_ASSERT_EQ(regcomp(&type, re, REG_EXTENDED), 0);
  char family[128] = "", *save = NULL;
  unsigned long long last_bucket = 0;
  int samples = 0, bad = 0;
  for (char *line = strtok_r(text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    regmatch_t m[8];
    if (line[0] == '#') {
      if (regexec(&type, line, 2, m, 0) == 0) {
        snprintf(family, sizeof family, "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                 line + m[1].rm_so);
        last_bucket = 0;
      } else if (regexec(&help, line, 0, NULL, 0) != 0) {
        fprintf(stderr, "not a comment of the format: '%s'\n", line);
        bad++;
      }
      continue;
    }
    if (regexec(&sample, line, 8, m, 0) != 0 ||
        strncmp(line, family, strlen(family)) != 0) {
      fprintf(stderr, "not a sample of '%s': '%s'\n", family, line);
      bad++;
      continue;
    }
    samples++;
    unsigned long long v = strtoull(strrchr(line, ' ') + 1, NULL, 10);
    if (strstr(line, "_bucket{le=") != NULL) {
      if (v < last_bucket)
        bad++;
      last_bucket = v;
    } else if (strstr(line, "_count ") != NULL && v != last_bucket) {
      bad++; /* the +Inf bucket is the count */
    }
  }
  TU_ASSERT_EQ(bad, 0);
  TU_ASSERT_INT(samples, >, 40);
  regfree(&sample);
  regfree(&help);
  regfree(&type);
}

static void test_prometheus_parses(void) {
  cpool_t *p = open_pool(2);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  char buf[16384];

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < 100; i++) {
    TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(hist_sum(st.hold_hist), 100);
  int n = cpool_stats_write_prometheus(&st, "app_pool", buf, sizeof buf);
  TU_ASSERT_BETWEEN(n, 1, (int)sizeof buf - 1);
  CU_ASSERT(strstr(buf, "\napp_pool_checkouts_total 100\n") != NULL);
  CU_ASSERT(strstr(buf, "\napp_pool_hold_seconds_count 100\n") != NULL);
  CU_ASSERT(strstr(buf, "\napp_pool_connect_seconds_count 2\n") != NULL);
  check_exposition(buf);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
  /* The hand-filled one too. */
  fill(&st);
  TU_ASSERT_INT(cpool_stats_write_prometheus(&st, NULL, buf, sizeof buf), >, 0);
  check_exposition(buf);
}

CU_TestInfo metrics_tests[] = {
    {"prometheus_exact", test_prometheus_exact},
    {"prometheus_sizes", test_prometheus_sizes},
    {"prometheus_bad_args", test_prometheus_bad_args},
    {"wait_time", test_wait_time},
    {"hold_time", test_hold_time},
    {"connect_time", test_connect_time},
    {"prometheus_parses", test_prometheus_parses},
    CU_TEST_INFO_NULL,
};
