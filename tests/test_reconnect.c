/*
 * Reconnect and backoff: broken checkins, a refusing server, ECLOSED when
 * the backend is down (and why), recovery, connect timeouts against a
 * blackhole, dropped connections, and the events that say so.  Each test
 * has its own server, since most of them break it on purpose.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static int port_in(const char *s, int port) {
  char want[16];
  snprintf(want, sizeof want, ":%d", port);
  return strstr(s, want) != NULL;
}

static void test_broken_checkin_reconnects(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  /* A reconnect delayed by backoff would take 3 s: it must be at once. */
  cfg.backoff_min_ms = 3000;
  cfg.backoff_max_ms = 3000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(ts_wait_open(srv, 1, 5000));
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects == 2 && st.idle == 1, 5000);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 1500);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.idle, 1);
  TU_ASSERT_EQ(st.broken_checkins, 1);
  TU_ASSERT_EQ(st.disconnects, 1);
  TU_ASSERT_EQ(st.connect_failures, 0);
  /* The server saw the old connection close and a new one arrive. */
  CU_ASSERT(ts_wait_accepted(srv, 2, 5000));
  CU_ASSERT(ts_wait_open(srv, 1, 5000));
  TU_ASSERT_EQ(ts_get_counts(srv).peer_closed, 1);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "new socket", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

/* exp policy against a refusing server: the delays are min, 2 min, 4 min
 * ... capped at max, and the attempts are spaced at least that far. */
static void test_backoff_exp_timing(void) {
  static const int want[] = {20, 40, 80, 80, 80};
  enum { N = sizeof want / sizeof want[0] };
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_config cfg;
  cpool_t *p = NULL;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.backoff_type = CPOOL_BACKOFF_EXP;
  cfg.backoff_min_ms = 20;
  cfg.backoff_max_ms = 80;
  cfg.on_event = tu_events_cb;
  cfg.cb_arg = ev;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_CONNECT_FAILED, N + 1, 10000));
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  for (int i = 0; i < N; i++) {
    tu_event b, f0, f1;
    if (tu_events_get(ev, CPOOL_EVENT_BACKOFF, i, &b) != 0 ||
        tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, i, &f0) != 0 ||
        tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, i + 1, &f1) != 0) {
      CU_FAIL("missing BACKOFF or CONNECT_FAILED events");
      break;
    }
    /* BACKOFF says the delay; the next attempt comes no sooner. */
    TU_ASSERT_EQ(b.err.retry_in_ms, want[i]);
    TU_ASSERT_BETWEEN(f1.t_ms - f0.t_ms, want[i] - 2,
                      want[i] + (TU_SANITIZED ? 1000 : 500));
  }
  tu_events_free(ev);
  ts_stop(srv);
}

/* Failed attempts come at the backoff rate: never faster, and not much
 * slower on an idle loopback. */
static void test_backoff_rate(void) {
  const int delay = 20, window = 600;
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t a, b;
  cpool_t *p = NULL;
  int64_t t0, t1;
  uint64_t fails;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.backoff_type = CPOOL_BACKOFF_RAND;
  cfg.backoff_min_ms = delay;
  cfg.backoff_max_ms = delay;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, a, a.connect_failures >= 1, 5000);
  t0 = tu_now_ms();
  tu_sleep_ms(window); /* the quantity measured is a rate over time */
  TU_ASSERT_CODE(cpool_stats(p, &b), 0);
  t1 = tu_now_ms();
  fails = b.connect_failures - a.connect_failures;
  printf("\nFIGURE: backoff rate: %llu failed connects in %lld ms at %d ms "
         "backoff\n",
         (unsigned long long)fails, (long long)(t1 - t0), delay);
  TU_ASSERT_INT(fails, <=, (t1 - t0) / delay + 2);
  TU_ASSERT_INT(fails, >=, (t1 - t0) / delay / 4);
  TU_ASSERT_EQ(b.connects, 0);
  TU_ASSERT_CODE(b.last_error.code, CPOOL_ECONNECT);
  TU_ASSERT_EQ(b.last_error.sys_errno, ECONNREFUSED);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

static void check_why(const cpool_error_info *why, int port) {
  TU_ASSERT_CODE(why->code, CPOOL_ECONNECT);
  TU_ASSERT_EQ(why->step, CPOOL_STEP_CONNECT);
  TU_ASSERT_EQ(why->sys_errno, ECONNREFUSED);
  if (!port_in(why->addr, port) || !strstr(why->addr, "127.0.0.1")) {
    fprintf(stderr, "why->addr '%s' lacks 127.0.0.1:%d\n", why->addr, port);
    CU_FAIL("why->addr does not name the address");
  }
  CU_ASSERT(why->message[0] != '\0');
  TU_ASSERT_BETWEEN(why->retry_in_ms, 0, 20000);
}

/* Every slot backing off: checkout fails at once, in both modes. */
static void test_eclosed_at_once(void) {
  static const int timeouts[] = {CPOOL_NOWAIT, 10000, CPOOL_WAIT_FOREVER};
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t st;
  cpool_t *p = NULL;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  tu_config(&cfg, ts_port(srv), 4);
  cfg.backoff_min_ms = 10000;
  cfg.backoff_max_ms = 20000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.backoff == 4, 5000);
  TU_ASSERT_EQ(st.backoff, 4);
  printf("\nFIGURE: backend down, checkout returned ECLOSED in");
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    cpool_conn_t *c = NULL;
    cpool_error_info why;
    int64_t t0 = tu_now_us(), took_us;

    memset(&why, 0, sizeof why);
    TU_ASSERT_CODE(cpool_checkout(p, &c, timeouts[i], &why), CPOOL_ECLOSED);
    took_us = tu_now_us() - t0;
    printf(" %lld us (timeout %d ms)%s", (long long)took_us, timeouts[i],
           i + 1 < sizeof timeouts / sizeof timeouts[0] ? "," : "\n");
    TU_ASSERT_INT(took_us, <, 1000 * 1000);
    CU_ASSERT_PTR_NULL(c);
    check_why(&why, ts_port(srv));
    /* why may be NULL */
    TU_ASSERT_CODE(cpool_checkout(p, &c, timeouts[i], NULL), CPOOL_ECLOSED);
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.closed_errors, 6);
  TU_ASSERT_EQ(st.timeouts, 0);
  check_why(&st.last_error, ts_port(srv));
  TU_ASSERT_INT(st.last_error.age_ms, >=, 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

/* Waiters queued while the backend goes down are woken with ECLOSED once
 * no slot is connected or connecting. */
static void test_waiters_woken_eclosed(void) {
  enum { W = 3 };
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *a = NULL, *b = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  tu_waiter w[W];
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 2);
  cfg.start = CPOOL_START_SYNC;
  cfg.backoff_min_ms = 10000;
  cfg.backoff_max_ms = 20000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &b, 1000, NULL), 0);
  for (int i = 0; i < W; i++)
    TU_ASSERT_EQ(tu_waiter_start(&w[i], p, 20000, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == W, 5000);
  TU_ASSERT_EQ(st.waiters, W);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_checkin(p, b, CPOOL_CONN_BROKEN), 0);
  for (int i = 0; i < W; i++) {
    tu_waiter_join(&w[i]);
    TU_ASSERT_CODE(w[i].rc, CPOOL_ECLOSED);
    TU_ASSERT_INT(w[i].t1_ms - t0, <, 2000);
    if (w[i].rc == CPOOL_ECLOSED)
      check_why(&w[i].why, ts_port(srv));
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.waiters, 0);
  TU_ASSERT_EQ(st.backoff, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

/* The server comes back: the pool heals by itself. */
static void test_recovery(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *c[4];
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 4);
  cfg.start = CPOOL_START_SYNC;
  cfg.backoff_min_ms = 20;
  cfg.backoff_max_ms = 100;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < 4; i++)
    TU_ASSERT_CODE(cpool_checkout(p, &c[i], 1000, NULL), 0);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  for (int i = 0; i < 4; i++)
    TU_ASSERT_CODE(cpool_checkin(p, c[i], CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connect_failures >= 8, 5000);
  TU_ASSERT_INT(st.connect_failures, >=, 8);
  TU_ASSERT_EQ(st.idle, 0);
  CU_ASSERT_FATAL(ts_resume(srv) == 0);
  t0 = tu_now_ms();
  TU_WAIT_STATS(p, st, st.idle == 4, 5000);
  printf("\nFIGURE: recovery from refusing: 4 slots back in %lld ms "
         "(backoff 20..100 ms)\n",
         (long long)(tu_now_ms() - t0));
  TU_ASSERT_EQ(st.idle, 4);
  TU_ASSERT_EQ(st.connects, 8);
  for (int i = 0; i < 4; i++) {
    TU_ASSERT_CODE(cpool_checkout(p, &c[i], 1000, NULL), 0);
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c[i]), "back", 2000), 0);
  }
  for (int i = 0; i < 4; i++)
    TU_ASSERT_CODE(cpool_checkin(p, c[i], CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

static void test_sync_open_refused(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = (cpool_t *)&p;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  tu_config(&cfg, ts_port(srv), 3);
  cfg.start = CPOOL_START_SYNC;
  memset(&err, 0, sizeof err);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_ECONNECT);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 5000);
  CU_ASSERT_PTR_NULL(p);
  check_why(&err, ts_port(srv));
  ts_stop(srv);
}

/* A connect that never completes ends near connect_timeout_ms, not at the
 * kernel's minutes-long default. */
static void test_connect_timeout_blackhole(void) {
  const int timeout = 300, slack = TU_SANITIZED ? 1500 : 700;
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  cpool_t *p = NULL;
  tu_event f;
  int64_t t0;
  int rc;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_FATAL(ts_blackhole(srv) == 0);

  tu_config(&cfg, ts_port(srv), 1);
  cfg.connect_timeout_ms = timeout;
  cfg.backoff_min_ms = 10000;
  cfg.backoff_max_ms = 10000;
  cfg.on_event = tu_events_cb;
  cfg.cb_arg = ev;
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_CONNECT_FAILED, 1, 10000));
  if (tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, 0, &f) == 0) {
    printf("\nFIGURE: blackholed connect gave up after %lld ms "
           "(connect_timeout_ms %d)\n",
           (long long)(f.t_ms - t0), timeout);
    TU_ASSERT_BETWEEN(f.t_ms - t0, timeout - 5, timeout + slack);
    TU_ASSERT_EQ(f.err.step, CPOOL_STEP_CONNECT);
    TU_ASSERT_EQ(f.err.sys_errno, ETIMEDOUT);
    CU_ASSERT(f.err.code == CPOOL_ECONNECT || f.err.code == CPOOL_ETIMEDOUT);
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.connect_failures, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  /* Sync: open fails near the same bound. */
  cfg.start = CPOOL_START_SYNC;
  cfg.on_event = NULL;
  memset(&err, 0, sizeof err);
  t0 = tu_now_ms();
  p = (cpool_t *)&p;
  rc = cpool_open(&p, &cfg, &err);
  CU_ASSERT(rc == CPOOL_ECONNECT || rc == CPOOL_ETIMEDOUT);
  TU_ASSERT_BETWEEN(tu_now_ms() - t0, timeout - 5, timeout + slack);
  CU_ASSERT_PTR_NULL(p);
  TU_ASSERT_EQ(err.step, CPOOL_STEP_CONNECT);
  tu_events_free(ev);
  ts_stop(srv);
}

/* The server drops every connection: each slot's worker sees the close
 * at once and reconnects, with no caller and no peek; callers are never
 * handed a dead socket. */
static void server_drop(int rst) {
  enum { N = 4 };
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int io_errors = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), N);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = CPOOL_IDLE_CHECK_ALWAYS;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(ts_wait_open(srv, N, 5000));
  TU_ASSERT_EQ(ts_drop(srv, rst), N);
  TU_WAIT_STATS(p, st, st.connects == 2 * N && st.idle == N, 5000);
  TU_ASSERT_EQ(st.connects, 2 * N);
  TU_ASSERT_EQ(st.idle, N);
  TU_ASSERT_EQ(st.peer_closes, N);
  TU_ASSERT_EQ(st.idle_check_failures, 0);
  CU_ASSERT(ts_wait_open(srv, N, 5000));
  cpool_conn_t *c[N];
  int got = 0;
  for (int i = 0; i < N; i++)
    if (cpool_checkout(p, &c[got], 1000, NULL) == 0)
      got++;
  TU_ASSERT_EQ(got, N);
  for (int i = 0; i < got; i++) {
    int bad = tu_echo(cpool_conn_fd(c[i]), "after drop", 2000) != 0;
    io_errors += bad;
    cpool_checkin(p, c[i], bad ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
  }
  TU_ASSERT_EQ(io_errors, 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

static void test_server_drop_fin(void) {
  server_drop(0);
}
static void test_server_drop_rst(void) {
  server_drop(1);
}

/* on_event: connected, disconnected, connect failed, backoff, each with
 * the slot and the details the header promises. */
static void test_events(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  tu_event e;
  int slot;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  tu_config(&cfg, ts_port(srv), 2);
  cfg.start = CPOOL_START_SYNC;
  cfg.backoff_min_ms = 50;
  cfg.backoff_max_ms = 50;
  cfg.on_event = tu_events_cb;
  cfg.cb_arg = ev;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  atomic_store(&ev->pool, p); /* from now on callbacks call cpool_stats */
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_CONNECTED, 2, 5000));
  TU_ASSERT_EQ(tu_events_count(ev, CPOOL_EVENT_CONNECTED), 2);
  if (tu_events_get(ev, CPOOL_EVENT_CONNECTED, 0, &e) == 0)
    TU_ASSERT_BETWEEN(e.slot, 0, 1);

  /* Broken checkin while the server refuses: disconnected, then failed
   * connects with backoff, then connected again once it listens. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  slot = cpool_conn_slot(c);
  CU_ASSERT_FATAL(ts_refuse(srv) == 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_DISCONNECTED, 1, 5000));
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_BACKOFF, 2, 5000));
  if (tu_events_get(ev, CPOOL_EVENT_DISCONNECTED, 0, &e) == 0)
    TU_ASSERT_EQ(e.slot, slot);
  if (tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, 0, &e) == 0) {
    TU_ASSERT_EQ(e.slot, slot);
    TU_ASSERT_CODE(e.err.code, CPOOL_ECONNECT);
    TU_ASSERT_EQ(e.err.step, CPOOL_STEP_CONNECT);
    TU_ASSERT_EQ(e.err.sys_errno, ECONNREFUSED);
    CU_ASSERT(port_in(e.err.addr, ts_port(srv)));
    CU_ASSERT(e.err.message[0] != '\0');
  } else {
    CU_FAIL("no CONNECT_FAILED event");
  }
  if (tu_events_get(ev, CPOOL_EVENT_BACKOFF, 0, &e) == 0) {
    TU_ASSERT_EQ(e.slot, slot);
    TU_ASSERT_EQ(e.err.retry_in_ms, 50);
  }
  CU_ASSERT_FATAL(ts_resume(srv) == 0);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_CONNECTED, 3, 5000));
  TU_WAIT_STATS(p, st, st.idle == 2, 5000);
  TU_ASSERT_EQ(st.idle, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  /* Closing disconnects both slots; no event arrives after close. */
  TU_ASSERT_INT(tu_events_count(ev, CPOOL_EVENT_DISCONNECTED), >=, 1);
  TU_ASSERT_EQ(tu_events_count(ev, CPOOL_EVENT_CONNECT_FAILED),
               tu_events_count(ev, CPOOL_EVENT_BACKOFF));
  TU_ASSERT_EQ(ev->bad_slot, 0);
  TU_ASSERT_EQ(ev->null_err, 0);
  TU_ASSERT_INT(ev->stats_calls, >, 0);
  TU_ASSERT_EQ(ev->stats_failed, 0);
  tu_events_free(ev);
  ts_stop(srv);
}

/* A peer that accepts and never answers: the caller's own I/O timeout
 * fires, it checks the connection in broken, and the slot heals. */
static void test_stalled_peer(void) {
  ts_server *srv = ts_start(TS_STALL, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;
  int e;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  t0 = tu_now_ms();
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "anyone there?", 200), -1);
  e = errno;
  TU_ASSERT_EQ(e, ETIMEDOUT);
  TU_ASSERT_BETWEEN(tu_now_ms() - t0, 195, 1500);
  CU_ASSERT_FATAL(ts_set_mode(srv, TS_ECHO) == 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects == 2 && st.idle == 1, 5000);
  TU_ASSERT_EQ(st.connects, 2);
  /* The stalled connection was closed by the pool, seen by the server. */
  CU_ASSERT(ts_wait_open(srv, 1, 5000));
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "healed", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

CU_TestInfo reconnect_tests[] = {
    {"stalled_peer", test_stalled_peer},
    {"broken_checkin_reconnects", test_broken_checkin_reconnects},
    {"backoff_exp_timing", test_backoff_exp_timing},
    {"backoff_rate", test_backoff_rate},
    {"eclosed_at_once", test_eclosed_at_once},
    {"waiters_woken_eclosed", test_waiters_woken_eclosed},
    {"recovery", test_recovery},
    {"sync_open_refused", test_sync_open_refused},
    {"connect_timeout_blackhole", test_connect_timeout_blackhole},
    {"server_drop_fin", test_server_drop_fin},
    {"server_drop_rst", test_server_drop_rst},
    {"events", test_events},
    CU_TEST_INFO_NULL,
};
