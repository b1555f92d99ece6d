/*
 * Suite "watch": each slot's worker watches its socket (src/worker.c,
 * watch_socket) and sees the peer's close the moment the kernel does.
 *
 *   - a FIN or a reset on an idle slot: the slot is closed and connected
 *     again by its worker, with no caller and no peek; the event says
 *     "closed by peer" or "reset by peer", and peer_closes counts it;
 *   - a FIN while the slot is checked out: its checkin with
 *     CPOOL_CONN_OK still reconnects it (the caller may have read a whole
 *     reply before the FIN), and the next caller gets a live one;
 *   - over a Unix socket too;
 *   - a server that hangs up right after each accept is backed off, not
 *     reconnected in a loop;
 *   - replies read by callers do not wake the worker (it asks for no
 *     POLLIN): its voluntary context switches stay near 0 over a run of
 *     round trips.
 *
 * Every pool here has the idle check off (CPOOL_IDLE_CHECK_NEVER): what
 * is found, the worker found.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"
#include "wakeups.h" /* tools/bench: cpool-bench counts them too */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cpool_t *open_watched(ts_server *s, int size, int unix_socket,
                             tu_events *ev) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(s), size);
  if (unix_socket) {
    cfg.host = NULL;
    cfg.port = 0;
    cfg.unix_path = ts_unix_path(s);
  }
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = CPOOL_IDLE_CHECK_NEVER;
  if (ev != NULL) {
    cfg.on_event = tu_events_cb;
    cfg.cb_arg = ev;
  }
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* The server closes (or resets) every idle connection: the workers see
 * it and connect again, nobody checks anything out meanwhile. */
static void idle_close(int rst, int unix_socket) {
  enum { N = 3 };
  ts_server *s = ts_start(TS_ECHO, unix_socket ? TS_UNIX : TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_stats_t st;
  tu_event e;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  cpool_t *p = open_watched(s, N, unix_socket, ev);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(ts_wait_open(s, N, 5000));
  int64_t t0 = tu_now_ms();
  TU_ASSERT_EQ(ts_drop(s, rst), N);
  TU_WAIT_STATS(p, st, st.connects == 2 * N && st.idle == N, 5000);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_EQ(st.connects, 2 * N);
  TU_ASSERT_EQ(st.idle, N);
  TU_ASSERT_EQ(st.peer_closes, N);
  TU_ASSERT_EQ(st.disconnects, N);
  TU_ASSERT_EQ(st.idle_check_failures, 0);
  TU_ASSERT_EQ(st.connect_failures, 0);
  TU_ASSERT_INT(took, <, TU_SANITIZED ? 2000 : 1000);
  printf("\nFIGURE: watch: %d idle slots %s by the peer (%s) connected "
         "again after %lld ms, no caller\n",
         N, rst ? "reset" : "closed", unix_socket ? "unix" : "tcp",
         (long long)took);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_DISCONNECTED, N, 2000));
  TU_ASSERT_EQ(tu_events_get(ev, CPOOL_EVENT_DISCONNECTED, 0, &e), 0);
  const char *want = rst && !unix_socket ? "reset by peer" : "closed by peer";
  if (strstr(e.err.message, want) == NULL)
    fprintf(stderr, "watch: event message \"%s\", expected \"%s\"\n",
            e.err.message, want);
  CU_ASSERT_PTR_NOT_NULL(strstr(e.err.message, want));
  if (rst && !unix_socket)
    TU_ASSERT_EQ(e.err.sys_errno, ECONNRESET);
  /* And every slot works. */
  cpool_conn_t *c[N];
  for (int i = 0; i < N; i++) {
    c[i] = NULL;
    TU_ASSERT_CODE(cpool_checkout(p, &c[i], 1000, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c[i]), "alive", 2000), 0);
  }
  for (int i = 0; i < N; i++)
    TU_ASSERT_CODE(cpool_checkin(p, c[i], CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  tu_events_free(ev);
  ts_stop(s);
}

static void test_fin_idle(void) {
  idle_close(0, 0);
}
static void test_rst_idle(void) {
  idle_close(1, 0);
}
static void test_fin_idle_unix(void) {
  idle_close(0, 1);
}

/* A FIN while the caller holds the slot: the worker marks it, and the
 * checkin, though CPOOL_CONN_OK, hands it back.  With again set the slot
 * is checked out a second time first, so that it is held on the fast
 * path (parked at the first checkin, taken back without the lock). */
static void checked_out_close(int again) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  cpool_t *p = open_watched(s, 1, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i <= again; i++) {
    if (c != NULL)
      TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "reply read", 2000), 0);
  }
  TU_ASSERT_EQ(ts_drop(s, 0), 1);
  TU_WAIT_STATS(p, st, st.peer_closes == 1, 2000);
  TU_ASSERT_EQ(st.peer_closes, 1);
  TU_ASSERT_EQ(st.busy, 1); /* still the caller's */
  TU_ASSERT_EQ(st.connects, 1);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_WAIT_STATS(p, st, st.connects == 2 && st.idle == 1, 2000);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.idle, 1);
  TU_ASSERT_EQ(st.broken_checkins, 0);
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "a live one", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(s);
}

static void test_fin_checked_out(void) {
  checked_out_close(0);
}
static void test_fin_checked_out_fast(void) {
  checked_out_close(1);
}

/* The server accepts and hangs up at once, as one at its client limit
 * does: the first such close is followed by an attempt at once, the next
 * ones by a growing back-off, never a loop. */
static void test_hangup_backs_off(void) {
  enum { WATCH_MS = 1000, BACKOFF_MIN = 50 };
  ts_server *s = ts_start(TS_HANGUP, TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_config cfg;
  cpool_t *p = NULL;
  tu_event e;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  tu_config(&cfg, ts_port(s), 1);
  cfg.idle_check_ms = CPOOL_IDLE_CHECK_NEVER;
  cfg.backoff_min_ms = BACKOFF_MIN;
  cfg.backoff_max_ms = 4 * BACKOFF_MIN;
  cfg.on_event = tu_events_cb;
  cfg.cb_arg = ev;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_BACKOFF, 1, 2000));
  uint64_t first = ts_get_counts(s).accepted;
  tu_sleep_ms(WATCH_MS); /* the time is what is under test */
  uint64_t n = ts_get_counts(s).accepted - first;
  /* Two connects per delay at most; a loop would make thousands. */
  printf("\nFIGURE: watch: a server that hangs up at once got %llu "
         "connects in %d ms (backoff %d..%d ms)\n",
         (unsigned long long)n, WATCH_MS, BACKOFF_MIN, 4 * BACKOFF_MIN);
  TU_ASSERT_INT(n, <=, 2 * WATCH_MS / BACKOFF_MIN + 4);
  TU_ASSERT_INT(n, >=, 2);
  TU_ASSERT_EQ(tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, 0, &e), 0);
  if (strstr(e.err.message, "times in a row") == NULL)
    fprintf(stderr, "watch: connect_failed says \"%s\"\n", e.err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(e.err.message, "closed by peer"));
  CU_ASSERT_PTR_NOT_NULL(strstr(e.err.message, "times in a row"));
  TU_ASSERT_EQ(e.err.code, CPOOL_ECONNECT);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  tu_events_free(ev);
  ts_stop(s);
}

/* Replies to callers must not wake the worker: it polls for the peer's
 * close, not for input. */
static void test_replies_do_not_wake(void) {
  enum { ROUNDS = 2000 };
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  cpool_t *p = open_watched(s, 1, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  long before = worker_wakeups(); /* its one worker, cpool-w0 */
  TU_ASSERT_INT(before, >=, 0);
  int failed = 0;
  for (int i = 0; i < ROUNDS && !failed; i++) {
    cpool_conn_t *c = NULL;
    failed = cpool_checkout(p, &c, 1000, NULL) != 0 ||
             tu_echo(cpool_conn_fd(c), "round trip", 2000) != 0;
    if (c != NULL)
      cpool_checkin(p, c, failed ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
  }
  long woke = worker_wakeups() - before;
  printf("\nFIGURE: watch: the worker woke %ld times over %d round trips on "
         "its slot\n",
         woke, ROUNDS);
  TU_ASSERT_EQ(failed, 0);
  TU_ASSERT_INT(woke, <=, 5);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(s);
}

CU_TestInfo watch_tests[] = {
    {"fin_idle", test_fin_idle},
    {"rst_idle", test_rst_idle},
    {"fin_idle_unix", test_fin_idle_unix},
    {"fin_checked_out", test_fin_checked_out},
    {"fin_checked_out_fast", test_fin_checked_out_fast},
    {"hangup_backs_off", test_hangup_backs_off},
    {"replies_do_not_wake", test_replies_do_not_wake},
    CU_TEST_INFO_NULL,
};
