/*
 * Suite "refused": the server stops accepting (its listener is closed).
 * Once every slot is backing off, checkout fails with CPOOL_ECLOSED at once
 * in both modes -- a caller with a 10 s timeout gets it in well under
 * 100 ms -- and says why: the address and "Connection refused".  No caller
 * waits out its timeout for a backend that is down.
 */
#include "fault.h"
#include "testserver.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* "at once": well under this (sanitizers and a loaded host: longer) */
#define FAST_MS (TU_SANITIZED ? 400 : 100)

typedef struct waiter {
  cpool_t *pool;
  int timeout_ms;
  int rc;
  int64_t done_ms;
  cpool_error_info why;
} waiter;

static void *wait_thread(void *arg) {
  waiter *w = arg;
  cpool_conn_t *c = NULL;
  w->rc = cpool_checkout(w->pool, &c, w->timeout_ms, &w->why);
  w->done_ms = tu_now_ms();
  if (w->rc == 0)
    cpool_checkin(w->pool, c, CPOOL_CONN_OK);
  return NULL;
}

/* The why of an ECLOSED: a refused connect to addr. */
static void check_why(const cpool_error_info *why, const char *addr,
                      int backoff_max) {
  TU_CHECK(why->code == CPOOL_ECONNECT, "why->code %s",
           cpool_err_name(why->code));
  TU_CHECK(why->step == CPOOL_STEP_CONNECT, "why->step %d", why->step);
  TU_CHECK(why->sys_errno == ECONNREFUSED, "why->sys_errno %d (%s)",
           why->sys_errno, strerror(why->sys_errno));
  TU_CHECK(strcmp(why->addr, addr) == 0, "why->addr \"%s\", expected \"%s\"",
           why->addr, addr);
  TU_CHECK(strstr(why->message, addr) != NULL &&
               strstr(why->message, "Connection refused") != NULL,
           "why->message \"%s\" should name %s and say Connection refused",
           why->message, addr);
  TU_CHECK(why->retry_in_ms >= 0 && why->retry_in_ms <= backoff_max,
           "why->retry_in_ms %lld, backoff up to %d",
           (long long)why->retry_in_ms, backoff_max);
}

/* One checkout of a down backend: ECLOSED, fast, with the why. */
static void checkout_down(cpool_t *pool, int timeout_ms, const char *addr,
                          int backoff_max) {
  cpool_conn_t *c = NULL;
  cpool_error_info why;
  memset(&why, 0, sizeof why);
  int64_t t0 = tu_now_us();
  int rc = cpool_checkout(pool, &c, timeout_ms, &why);
  int64_t took_us = tu_now_us() - t0;

  TU_CHECK(rc == CPOOL_ECLOSED, "timeout %d: got %s", timeout_ms,
           cpool_err_name(rc));
  TU_CHECK(took_us < FAST_MS * 1000, "timeout %d: ECLOSED took %lld us",
           timeout_ms, (long long)took_us);
  if (rc == CPOOL_ECLOSED)
    check_why(&why, addr, backoff_max);
  if (rc == 0)
    cpool_checkin(pool, c, CPOOL_CONN_OK);
}

/* Every slot checked out, one caller queued with 10 s; the server closes
 * its listener and its connections; the slots come back broken.  The
 * queued caller and every later one get ECLOSED at once. */
static void test_listener_closed(void) {
  enum { SIZE = 4, BACKOFF = 1000 };
  int fds0 = tu_count_fds();
  ts_server *peer = ts_start(TS_PING, TS_TCP4);
  cpool_t *pool = NULL;
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  cpool_conn_t *held[SIZE] = {0};
  char addr[64];
  pthread_t th;
  waiter w = {.timeout_ms = 10000};

  TU_CHECK(peer != NULL, "peer did not start");
  if (peer == NULL)
    return;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ts_port(peer));
  fh_config(&cfg, "127.0.0.1", ts_port(peer), SIZE);
  /* Long enough that no slot retries while the checks run. */
  cfg.backoff_min_ms = cfg.backoff_max_ms = BACKOFF;
  int rc = cpool_open(&pool, &cfg, &err);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  TU_WAIT_STATS(pool, st, st.idle == SIZE, 3000);
  TU_CHECK(st.idle == SIZE, "idle %d", st.idle);

  for (int i = 0; i < SIZE; i++) {
    rc = cpool_checkout(pool, &held[i], CPOOL_NOWAIT, NULL);
    TU_ASSERT_CODE(rc, 0);
  }
  w.pool = pool;
  pthread_create(&th, NULL, wait_thread, &w);
  TU_WAIT_STATS(pool, st, st.waiters == 1, 2000);
  TU_CHECK(st.waiters == 1, "waiters %d", st.waiters);

  ts_refuse(peer);
  ts_drop(peer, 0);
  int64_t down_ms = tu_now_ms();
  for (int i = 0; i < SIZE; i++)
    if (held[i] != NULL)
      cpool_checkin(pool, held[i], CPOOL_CONN_BROKEN);
  pthread_join(th, NULL);
  TU_CHECK(w.rc == CPOOL_ECLOSED, "queued caller got %s", cpool_err_name(w.rc));
  TU_CHECK(w.done_ms - down_ms < FAST_MS,
           "queued caller (10 s timeout) got its answer %lld ms after the "
           "slots came back broken",
           (long long)(w.done_ms - down_ms));
  if (w.rc == CPOOL_ECLOSED)
    check_why(&w.why, addr, BACKOFF);

  TU_WAIT_STATS(pool, st, st.backoff == SIZE, 3000);
  TU_CHECK(st.backoff == SIZE, "backoff %d of %d", st.backoff, SIZE);
  for (int i = 0; i < 10; i++) {
    checkout_down(pool, CPOOL_NOWAIT, addr, BACKOFF);
    checkout_down(pool, 10000, addr, BACKOFF);
    checkout_down(pool, CPOOL_WAIT_FOREVER, addr, BACKOFF);
  }
  cpool_stats(pool, &st);
  TU_CHECK(st.closed_errors == 31, "closed_errors %llu, expected 31",
           (unsigned long long)st.closed_errors);
  TU_CHECK(st.last_error.sys_errno == ECONNREFUSED, "stats last_error \"%s\"",
           st.last_error.message);

  ts_resume(peer); /* heal: every slot idle again */
out:
  fh_end_pool(pool, "listener_closed");
  ts_stop(peer);
  fh_check_fds(fds0, "listener_closed");
}

/* Slots that keep retrying every 20 ms: a caller may find one of them
 * connecting, and then waits only for that attempt, never its timeout. */
static void test_cycling_backoff(void) {
  enum { SIZE = 4 };
  int fds0 = tu_count_fds();
  ts_server *peer = ts_start(TS_PING, TS_TCP4);
  cpool_t *pool = NULL;
  cpool_config cfg;
  cpool_stats_t st;
  char addr[64];

  TU_CHECK(peer != NULL, "peer did not start");
  if (peer == NULL)
    return;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ts_port(peer));
  ts_refuse(peer);
  fh_config(&cfg, "127.0.0.1", ts_port(peer), SIZE);
  cfg.backoff_min_ms = cfg.backoff_max_ms = 20;
  int rc = cpool_open(&pool, &cfg, NULL);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  /* At once after open, slots are still connecting: the caller waits for
   * their first attempts only. */
  int64_t max_us = 0, t_end = tu_now_ms() + 300;
  int n = 0, bad = 0;
  while (tu_now_ms() < t_end && n < 2000) {
    cpool_conn_t *c = NULL;
    cpool_error_info why;
    int64_t t0 = tu_now_us();
    rc = cpool_checkout(pool, &c, 10000, &why);
    int64_t took = tu_now_us() - t0;
    if (took > max_us)
      max_us = took;
    if (rc != CPOOL_ECLOSED) {
      bad++;
      if (rc == 0)
        cpool_checkin(pool, c, CPOOL_CONN_OK);
    }
    n++;
  }
  TU_CHECK(bad == 0, "%d of %d checkouts did not return ECLOSED", bad, n);
  TU_CHECK(max_us < FAST_MS * 1000,
           "slowest ECLOSED took %lld us (timeout was 10 s)",
           (long long)max_us);
  fh_figure("refused: %d checkouts (10 s timeout) while slots retry every "
            "20 ms: slowest ECLOSED %lld us",
            n, (long long)max_us);
  cpool_stats(pool, &st);
  TU_CHECK(st.connect_failures >= SIZE, "connect_failures %llu",
           (unsigned long long)st.connect_failures);
  ts_resume(peer);
out:
  fh_end_pool(pool, "cycling_backoff");
  ts_stop(peer);
  fh_check_fds(fds0, "cycling_backoff");
}

/* A sync open against a refusing server fails with the connect error. */
static void test_sync_open_refused(void) {
  int fds0 = tu_count_fds();
  ts_server *peer = ts_start(TS_PING, TS_TCP4);
  cpool_t *pool = NULL;
  cpool_config cfg;
  cpool_error_info err;
  char addr[64];

  TU_CHECK(peer != NULL, "peer did not start");
  if (peer == NULL)
    return;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ts_port(peer));
  ts_refuse(peer);
  fh_config(&cfg, "127.0.0.1", ts_port(peer), 2);
  cfg.start = CPOOL_START_SYNC;
  int64_t t0 = tu_now_ms();
  int rc = cpool_open(&pool, &cfg, &err);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_CODE(rc, CPOOL_ECONNECT);
  TU_CHECK(pool == NULL, "pool set on failure");
  TU_CHECK(took < FAST_MS, "sync open took %lld ms", (long long)took);
  if (rc == CPOOL_ECONNECT)
    check_why(&err, addr, 50);
  if (rc == 0)
    fh_end_pool(pool, "sync_open_refused");
  ts_stop(peer);
  fh_check_fds(fds0, "sync_open_refused");
}

const fault_test fault_refused_tests[] = {
    {"listener_closed", test_listener_closed},
    {"cycling_backoff", test_cycling_backoff},
    {"sync_open_refused", test_sync_open_refused},
    {NULL, NULL},
};
