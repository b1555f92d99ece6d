/*
 * What adopters with a client library need (issue 12): socket timeouts
 * that on_connect sets survive whatever their value, while the handshake
 * stays bounded (by the guard, not by socket options); io_timeout_ms; the
 * on_checkin validation hook, which sees what a library buffered; and the
 * idle check's EOF mode, which lets bytes wait (TLS 1.3 session tickets)
 * but still finds a peer's FIN.
 *
 * Real loopback sockets against the in-process test server; lease_of()
 * (internal.h) only tells which checkin path a test took.
 */
#include "internal.h"
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- socket timeouts ------------------------------------------------------
 */

static int timeo_ms(int fd, int opt) {
  struct timeval tv;
  socklen_t len = sizeof tv;

  if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0)
    return -1;
  return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

static int set_timeo(int fd, int opt, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* What the kernel reads back for ms (it keeps ticks). */
static int kernel_ms(int ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int got = -1;

  if (fd >= 0 && set_timeo(fd, SO_RCVTIMEO, ms) == 0)
    got = timeo_ms(fd, SO_RCVTIMEO);
  if (fd >= 0)
    close(fd);
  return got;
}

typedef struct timeo_cb {
  int rcv_ms, snd_ms;            /* to set in on_connect, 0 = leave */
  atomic_int seen_rcv, seen_snd; /* what on_connect found on entry */
} timeo_cb;

/* As hiredis' redisSetTimeout does: both options, the user's value. */
static int on_connect_timeo(int fd, void **data, void *arg) {
  timeo_cb *t = arg;

  (void)data;
  atomic_store(&t->seen_rcv, timeo_ms(fd, SO_RCVTIMEO));
  atomic_store(&t->seen_snd, timeo_ms(fd, SO_SNDTIMEO));
  if (t->rcv_ms > 0 && set_timeo(fd, SO_RCVTIMEO, t->rcv_ms) != 0)
    return -1;
  if (t->snd_ms > 0 && set_timeo(fd, SO_SNDTIMEO, t->snd_ms) != 0)
    return -1;
  return 0;
}

/* Open a one-slot pool on srv, check out, read both timeouts. */
static void timeouts_after_checkout(ts_server *srv, timeo_cb *t,
                                    int connect_timeout_ms, int io_timeout_ms,
                                    int *rcv, int *snd) {
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_t *p = NULL;

  *rcv = *snd = -2;
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.connect_timeout_ms = connect_timeout_ms;
  cfg.io_timeout_ms = io_timeout_ms;
  cfg.on_connect = t != NULL ? on_connect_timeo : NULL;
  cfg.cb_arg = t;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  if (p == NULL)
    return;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  if (c != NULL) {
    *rcv = timeo_ms(cpool_conn_fd(c), SO_RCVTIMEO);
    *snd = timeo_ms(cpool_conn_fd(c), SO_SNDTIMEO);
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "timeouts", 2000), 0);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* A value on_connect sets survives, equal to connect_timeout_ms (2000) or
 * one the kernel rounds (1999 ms): both used to read 0 after checkout,
 * taken for cpool's own bound and undone.  And cpool's bound is not on
 * the socket during on_connect at all. */
static void test_user_timeouts_survive(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  const int values[][2] = {{2000, 2000}, {1999, 1999}, {2000, 1999}, {1234, 0}};
  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    timeo_cb t = {.rcv_ms = values[i][0], .snd_ms = values[i][1]};
    int rcv, snd;
    timeouts_after_checkout(srv, &t, 2000, 0, &rcv, &snd);
    if (rcv != kernel_ms(t.rcv_ms) || snd != kernel_ms(t.snd_ms))
      fprintf(stderr, "on_connect set %d/%d ms, checkout read %d/%d ms\n",
              t.rcv_ms, t.snd_ms, rcv, snd);
    TU_ASSERT_EQ(rcv, kernel_ms(t.rcv_ms));
    TU_ASSERT_EQ(snd, kernel_ms(t.snd_ms));
    TU_ASSERT_EQ(atomic_load(&t.seen_rcv), 0);
    TU_ASSERT_EQ(atomic_load(&t.seen_snd), 0);
  }
  ts_stop(srv);
}

/* io_timeout_ms is what callers' I/O sees: with no on_connect, and over
 * what on_connect set; a negative one is refused, by name. */
static void test_io_timeout(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  timeo_cb t = {.rcv_ms = 2000, .snd_ms = 2000};
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = (cpool_t *)&p;
  int rcv, snd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  timeouts_after_checkout(srv, NULL, 500, 300, &rcv, &snd);
  TU_ASSERT_EQ(rcv, kernel_ms(300));
  TU_ASSERT_EQ(snd, kernel_ms(300));
  timeouts_after_checkout(srv, &t, 500, 700, &rcv, &snd);
  TU_ASSERT_EQ(rcv, kernel_ms(700));
  TU_ASSERT_EQ(snd, kernel_ms(700));
  timeouts_after_checkout(srv, NULL, 500, 0, &rcv, &snd);
  TU_ASSERT_EQ(rcv, 0);
  TU_ASSERT_EQ(snd, 0);

  tu_config(&cfg, ts_port(srv), 1);
  cfg.io_timeout_ms = -1;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_EINVAL);
  CU_ASSERT_PTR_NULL(p);
  CU_ASSERT(strstr(err.message, "io_timeout_ms") != NULL);
  ts_stop(srv);
}

/* A handshake that blocks in recv(), with a timeout of its own far
 * longer than connect_timeout_ms (so that without the guard the test
 * fails in 5 s instead of hanging). */
static int on_connect_blocks(int fd, void **data, void *arg) {
  char c;
  (void)data;
  (void)arg;
  set_timeo(fd, SO_RCVTIMEO, 5000);
  return recv(fd, &c, 1, 0) == 1 ? 0 : -1;
}

/* The handshake is still bounded by connect_timeout_ms against a server
 * that never answers, though cpool no longer sets socket timeouts. */
static void test_handshake_bounded(void) {
  ts_server *srv = ts_start(TS_STALL, TS_TCP4);
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = NULL;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.connect_timeout_ms = 300;
  cfg.on_connect = on_connect_blocks;
  int64_t t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_EHANDSHAKE);
  int64_t took = tu_now_ms() - t0;
  printf("\nFIGURE: stalled handshake, connect_timeout_ms 300: failed "
         "after %lld ms: %s\n",
         (long long)took, err.message);
  CU_ASSERT_PTR_NULL(p);
  TU_ASSERT_BETWEEN(took, 290, TU_SANITIZED ? 3000 : 1500);
  TU_ASSERT_EQ(err.step, CPOOL_STEP_HANDSHAKE);
  TU_ASSERT_EQ(err.sys_errno, ETIMEDOUT);
  CU_ASSERT(strstr(err.message, "timed out after 300 ms") != NULL);
  ts_stop(srv);
}

static int on_ping_blocks(int fd, void *data, void *arg) {
  char c;
  (void)data;
  (void)arg;
  return recv(fd, &c, 1, 0) == 1 ? 0 : -1;
}

/* on_ping is bounded the same way: a stalled peer fails the ping. */
static void test_ping_bounded(void) {
  ts_server *srv = ts_start(TS_STALL, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t st;
  cpool_t *p = NULL;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.connect_timeout_ms = 200;
  cfg.ping_interval_ms = 50;
  cfg.on_ping = on_ping_blocks;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.ping_failures >= 1 && st.connects >= 2, 5000);
  TU_ASSERT_INT(st.ping_failures, >=, 1);
  TU_ASSERT_INT(st.connects, >=, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

/* ---- the validation hook ---------------------------------------------------
 */

/* A client library's read buffer, as hiredis keeps one: what was read
 * from the socket and not yet returned to the caller. */
typedef struct lib_conn {
  char buf[256];
  size_t len;
} lib_conn;

static int lib_connect(int fd, void **data, void *arg) {
  (void)fd;
  (void)arg;
  *data = calloc(1, sizeof(lib_conn));
  return *data != NULL ? 0 : -1;
}

static void lib_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  free(data);
}

/* Reads until at least want bytes are buffered (so a two-line reply is
 * all in the buffer, as a library reading in chunks would have it), then
 * returns the first line without its newline.  0, or -1. */
static int lib_read_line(int fd, lib_conn *l, size_t want, char *out,
                         size_t outlen) {
  while (l->len < want || memchr(l->buf, '\n', l->len) == NULL) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 2000) != 1)
      return -1;
    ssize_t n = recv(fd, l->buf + l->len, sizeof l->buf - l->len, 0);
    if (n <= 0)
      return -1;
    l->len += (size_t)n;
  }
  char *nl = memchr(l->buf, '\n', l->len);
  size_t line = (size_t)(nl - l->buf);
  snprintf(out, outlen, "%.*s", (int)line, l->buf);
  memmove(l->buf, nl + 1, l->len - line - 1);
  l->len -= line + 1;
  return 0;
}

/* The hook: a connection with buffered bytes nobody asked for is out of
 * step with the server. */
static int lib_checkin(int fd, void *data, void *arg) {
  atomic_int *calls = arg;
  (void)fd;
  atomic_fetch_add(calls, 1);
  return ((lib_conn *)data)->len != 0;
}

/* One request, its reply's first line. */
static int lib_request(cpool_conn_t *c, const char *req, size_t want, char *out,
                       size_t outlen) {
  int fd = cpool_conn_fd(c);
  if (tu_send_all(fd, req, strlen(req), 2000) != 0)
    return -1;
  return lib_read_line(fd, cpool_conn_data(c), want, out, outlen);
}

static int lease_of(cpool_conn_t *c) {
  int l = CPOOL__LEASE_STATE(atomic_load(&c->lease));
  return l == CPOOL__LEASE_HELD_TURN ? CPOOL__LEASE_HELD : l;
}

/* The echo server answers "A\nB\n" with two lines; the caller takes one
 * and leaves the other in its library's buffer, then checks in OK.  The
 * next caller asks "C": with the hook it gets "C" from a reconnected
 * slot; without it, the stale "B". */
static void validation_round(int with_hook, char *second, size_t len,
                             cpool_stats_t *st, int *calls_out) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  atomic_int calls = 0;
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_t *p = NULL;
  char line[64];

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.on_connect = lib_connect;
  cfg.on_disconnect = lib_disconnect;
  cfg.on_checkin = with_hook ? lib_checkin : NULL;
  cfg.cb_arg = &calls;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  /* A clean round first: the hook keeps it (parked, fast path next). */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  TU_ASSERT_EQ(lib_request(c, "Z\n", 2, line, sizeof line), 0);
  CU_ASSERT_STRING_EQUAL(line, "Z");
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  /* The stale round, on the fast path: one line left buffered. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_HELD);
  TU_ASSERT_EQ(lib_request(c, "A\nB\n", 4, line, sizeof line), 0);
  CU_ASSERT_STRING_EQUAL(line, "A");
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  if (with_hook)
    TU_WAIT_STATS(p, *st, st->connects == 2 && st->idle == 1, 5000);
  /* The next caller. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(lib_request(c, "C\n", 2, second, len), 0);
  /* Stats before the checkin: without the hook the stale line is still
   * buffered, and the hook would send the slot back. */
  TU_ASSERT_CODE(cpool_stats(p, st), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  *calls_out = atomic_load(&calls);
  ts_stop(srv);
}

static int on_checkin_refuses(int fd, void *data, void *arg) {
  (void)fd;
  (void)data;
  (void)arg;
  return 1;
}

/* A refused checkin on the locked path (the first checkout's), and the
 * event says why: "failed validation". */
static void test_validation_event(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  tu_events *ev = tu_events_new();
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  tu_event e;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.on_event = tu_events_cb;
  cfg.on_checkin = on_checkin_refuses;
  cfg.cb_arg = ev;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_NONE);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  CU_ASSERT(tu_events_wait(ev, CPOOL_EVENT_DISCONNECTED, 1, 5000));
  TU_ASSERT_EQ(tu_events_get(ev, CPOOL_EVENT_DISCONNECTED, 0, &e), 0);
  CU_ASSERT(strstr(e.err.message, "failed validation") != NULL);
  TU_WAIT_STATS(p, st, st.connects == 2 && st.idle == 1, 5000);
  TU_ASSERT_EQ(st.validation_failures, 1);
  TU_ASSERT_EQ(st.broken_checkins, 0);
  TU_ASSERT_EQ(st.connects, 2);
  /* A second checkin of it is still refused, and the hook not run. */
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  tu_events_free(ev);
  ts_stop(srv);
}

static void test_validation_hook(void) {
  cpool_stats_t st;
  char second[64];
  int calls = 0;

  /* Without the hook: the earlier caller's reply reaches the next one. */
  validation_round(0, second, sizeof second, &st, &calls);
  CU_ASSERT_STRING_EQUAL(second, "B");
  TU_ASSERT_EQ(st.connects, 1);
  TU_ASSERT_EQ(st.validation_failures, 0);

  /* With it: reconnected, the next caller gets its own reply. */
  validation_round(1, second, sizeof second, &st, &calls);
  if (strcmp(second, "C") != 0)
    fprintf(stderr, "with on_checkin the next caller read \"%s\"\n", second);
  CU_ASSERT_STRING_EQUAL(second, "C");
  TU_ASSERT_EQ(st.validation_failures, 1);
  TU_ASSERT_EQ(st.broken_checkins, 0);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.disconnects, 1);
  TU_ASSERT_EQ(calls, 2); /* OK checkins only: not the last, BROKEN, one */
}

/* ---- the idle check's EOF mode
 * ----------------------------------------------- */

typedef struct ticket_cb {
  atomic_int connects;
  atomic_int first_fd;
} ticket_cb;

/* Like a TLS 1.3 handshake: the server's bytes arrive after on_connect
 * returns and nobody reads them (here: the echo of what it sent). */
static int on_connect_tickets(int fd, void **data, void *arg) {
  ticket_cb *t = arg;
  (void)data;
  if (atomic_fetch_add(&t->connects, 1) != 0)
    return 0; /* only the first connection gets "tickets" */
  atomic_store(&t->first_fd, fd);
  return tu_send_all(fd, "TICKETS\n", 8, 2000);
}

/* Wait until fd (the pool's, idle) reports events; 1 if it did. */
static int wait_events(int fd, short events) {
  struct pollfd pfd = {.fd = fd, .events = events};
  return poll(&pfd, 1, 5000) == 1 && (pfd.revents & events) != 0;
}

static cpool_t *ticket_pool(ts_server *srv, ticket_cb *t, int mode) {
  cpool_config cfg;
  cpool_t *p = NULL;

  memset(t, 0, sizeof *t);
  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = CPOOL_IDLE_CHECK_ALWAYS;
  cfg.idle_check_mode = mode;
  cfg.on_connect = on_connect_tickets;
  cfg.cb_arg = t;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  if (p != NULL)
    CU_ASSERT(wait_events(atomic_load(&t->first_fd), POLLIN));
  return p;
}

/* Strict (the default): bytes waiting on an idle slot mean dead. */
static void test_idle_check_strict(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  ticket_cb t;

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  cpool_t *p = ticket_pool(srv, &t, CPOOL_IDLE_CHECK_STRICT);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "fresh", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle_check_failures, 1);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(srv);
}

/* EOF mode: the same slot is kept, its bytes for the caller to read; a
 * FIN is still found, even behind bytes waiting; a bad mode is refused. */
static void test_idle_check_eof(void) {
  ts_server *srv = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_error_info err;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  ticket_cb t;
  char buf[8];

  CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
  cpool_t *p = ticket_pool(srv, &t, CPOOL_IDLE_CHECK_EOF);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(cpool_conn_fd(c), atomic_load(&t.first_fd));
  TU_ASSERT_EQ(tu_recv_exact(cpool_conn_fd(c), buf, 8, 2000), 0);
  CU_ASSERT(memcmp(buf, "TICKETS\n", 8) == 0);
  /* Bytes waiting again (the echo of "MORE"), then the server's FIN. */
  TU_ASSERT_EQ(tu_send_all(cpool_conn_fd(c), "MORE", 4, 2000), 0);
  CU_ASSERT(wait_events(cpool_conn_fd(c), POLLIN));
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle_check_failures, 0);
  TU_ASSERT_EQ(st.connects, 1);
  /* The FIN: checked out at once, the slot is either taken by its worker
   * (which watches the socket, and may have closed first_fd already) or
   * found by the peek behind the bytes waiting; the caller gets a live
   * one either way. */
  TU_ASSERT_EQ(ts_drop(srv, 0), 1);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "after FIN", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  /* The slot's worker, which watches the socket, usually sees the FIN
   * first; else the peek does, bytes waiting or not. */
  TU_ASSERT_EQ(st.idle_check_failures + st.peer_closes, 1);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  tu_config(&cfg, ts_port(srv), 1);
  cfg.idle_check_mode = 2;
  p = (cpool_t *)&p;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_EINVAL);
  CU_ASSERT_PTR_NULL(p);
  CU_ASSERT(strstr(err.message, "idle_check_mode") != NULL);
  ts_stop(srv);
}

CU_TestInfo adopt_tests[] = {
    {"user_timeouts_survive", test_user_timeouts_survive},
    {"io_timeout", test_io_timeout},
    {"handshake_bounded", test_handshake_bounded},
    {"ping_bounded", test_ping_bounded},
    {"validation_hook", test_validation_hook},
    {"validation_event", test_validation_event},
    {"idle_check_strict", test_idle_check_strict},
    {"idle_check_eof", test_idle_check_eof},
    CU_TEST_INFO_NULL,
};
