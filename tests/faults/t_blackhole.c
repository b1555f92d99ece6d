/*
 * Suites "blackhole_netns" and "blackhole_backlog": connects whose SYNs
 * vanish.  connect_timeout_ms is honoured -- the attempt ends near its
 * bound, not after the kernel's minutes of SYN retries -- for a sync open,
 * for the background attempts of an async one (timed by on_event), and for
 * a caller waiting on those attempts, who gets CPOOL_ECLOSED then.  Closing
 * a pool whose workers are mid-connect is prompt.
 *
 *   blackhole_netns: in two network namespaces made by the test, joined by
 *     a veth pair on a private /30, A sends its frames for B's address to a
 *     MAC address nobody has, so B silently drops the SYNs.  The pool's
 *     workers are started from a thread inside A.  Needs root; otherwise it
 *     prints SKIPPED and exits 77 (CTest: skipped).
 *   blackhole_backlog: a loopback listener with listen(fd, 0) whose accept
 *     queue is full and that never accepts: the kernel drops new SYNs.
 */
#include "fault.h"
#include "testserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The backoff outlasts an attempt, so the first failures of all slots
 * overlap and a waiting caller sees the backend down after one round. */
enum { SIZE = 2, CONNECT_TIMEOUT = 300, BACKOFF = 400 };

/* A non-blocking connect to ip:port: 1 if it is still pending after
 * wait_ms (the SYN vanished), 0 if it completed or failed; *fdp keeps the
 * socket open (the caller closes it). */
static int connect_hangs(const char *ip, int port, int wait_ms, int *fdp) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  *fdp = fd;
  if (fd < 0)
    return 0;
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
    return 0;
  if (errno != EINPROGRESS)
    return 0;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, wait_ms) == 0;
}

/* The connect error of a timed-out attempt. */
static void check_timeout_error(const cpool_error_info *e, const char *addr,
                                const char *what) {
  TU_CHECK(e->code == CPOOL_ECONNECT && e->step == CPOOL_STEP_CONNECT,
           "%s: code %s step %d", what, cpool_err_name(e->code), e->step);
  TU_CHECK(e->sys_errno == ETIMEDOUT, "%s: sys_errno %d (%s)", what,
           e->sys_errno, strerror(e->sys_errno));
  TU_CHECK(strcmp(e->addr, addr) == 0, "%s: addr \"%s\", expected \"%s\"", what,
           e->addr, addr);
  TU_CHECK(strstr(e->message, addr) != NULL &&
               strstr(e->message, "timed out") != NULL,
           "%s: message \"%s\"", what, e->message);
}

/* Bounds of one attempt: not before connect_timeout_ms, not much after. */
static void check_attempt_ms(int64_t took_ms, const char *what) {
  TU_CHECK(took_ms >= CONNECT_TIMEOUT - 5 &&
               took_ms <= CONNECT_TIMEOUT + FH_MARGIN_MS,
           "%s: took %lld ms, connect_timeout_ms %d (+%d)", what,
           (long long)took_ms, CONNECT_TIMEOUT, FH_MARGIN_MS);
}

/* A sync open against the blackhole: ECONNECT after connect_timeout_ms.
 * Run from the thread whose network namespace the pool should use. */
static void sync_open_times_out(const char *host, int port, const char *addr,
                                const char *what) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *pool = NULL;

  fh_config(&cfg, host, port, SIZE);
  cfg.connect_timeout_ms = CONNECT_TIMEOUT;
  cfg.start = CPOOL_START_SYNC;
  int64_t t0 = tu_now_ms();
  int rc = cpool_open(&pool, &cfg, &err);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_CODE(rc, CPOOL_ECONNECT);
  check_attempt_ms(took, "sync open");
  if (rc == CPOOL_ECONNECT)
    check_timeout_error(&err, addr, "sync open");
  fh_figure("blackhole (%s): sync cpool_open gave up after %lld ms "
            "(connect_timeout_ms %d)",
            what, (long long)took, CONNECT_TIMEOUT);
  if (rc == 0)
    fh_close_pool(pool, "sync open");
}

/* An async open: the first attempts fail by on_event after
 * connect_timeout_ms; a caller waiting meanwhile gets ECLOSED then. */
static cpool_t *async_open_times_out(const char *host, int port,
                                     const char *addr, tu_events *ev,
                                     int (*in_ns)(void *), void *ns_arg) {
  cpool_config cfg;
  cpool_error_info err, why;
  cpool_t *pool = NULL;
  cpool_conn_t *c = NULL;

  fh_config(&cfg, host, port, SIZE);
  cfg.connect_timeout_ms = CONNECT_TIMEOUT;
  cfg.backoff_min_ms = cfg.backoff_max_ms = BACKOFF;
  cfg.on_event = tu_events_cb;
  cfg.cb_arg = ev;
  int entered = in_ns == NULL || in_ns(ns_arg) == 0;
  int64_t t0 = tu_now_us();
  int rc = entered ? cpool_open(&pool, &cfg, &err) : CPOOL_ESYS;
  if (in_ns != NULL && entered)
    in_ns(NULL); /* back to our own namespace; the workers stay */
  TU_CHECK(rc == 0, "async open: %s", cpool_err_name(rc));
  if (rc != 0)
    return NULL;
  atomic_store(&ev->pool, pool);

  rc = cpool_checkout(pool, &c, 10000, &why);
  int64_t took = (tu_now_us() - t0) / 1000;
  TU_ASSERT_CODE(rc, CPOOL_ECLOSED);
  if (rc == CPOOL_ECLOSED)
    check_timeout_error(&why, addr, "checkout's why");
  check_attempt_ms(took, "a caller (10 s timeout) waiting on the attempts");
  if (rc == 0)
    cpool_checkin(pool, c, CPOOL_CONN_OK);

  tu_event e;
  TU_WAIT(tu_events_count(ev, CPOOL_EVENT_CONNECT_FAILED) >= 2 * SIZE, 3000);
  if (getenv("FAULT_VERBOSE"))
    for (int i = 0; tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, i, &e) == 0;
         i++)
      printf("  event %d: slot %d at %lld ms: %s\n", i, e.slot,
             (long long)(e.t_us - t0) / 1000, e.err.message);
  for (int i = 0; i < SIZE; i++) {
    if (tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, i, &e) != 0) {
      TU_CHECK(0, "no CONNECT_FAILED event %d", i);
      continue;
    }
    check_attempt_ms((e.t_us - t0) / 1000, "first attempt, by on_event");
    check_timeout_error(&e.err, addr, "CONNECT_FAILED event");
  }
  /* Later attempts: backoff, then another full connect_timeout_ms. */
  if (tu_events_get(ev, CPOOL_EVENT_CONNECT_FAILED, SIZE, &e) == 0) {
    int64_t since = (e.t_us - t0) / 1000;
    TU_CHECK(since >= 2 * CONNECT_TIMEOUT + BACKOFF - 10 &&
                 since <= 2 * CONNECT_TIMEOUT + BACKOFF + 2 * FH_MARGIN_MS,
             "second attempt failed %lld ms after open", (long long)since);
  }
  TU_CHECK(tu_events_count(ev, CPOOL_EVENT_CONNECTED) == 0,
           "%d CONNECTED events through a blackhole",
           tu_events_count(ev, CPOOL_EVENT_CONNECTED));
  TU_CHECK(tu_events_bad(ev) == 0, "%d malformed events", tu_events_bad(ev));
  return pool;
}

/* cpool_close while every worker is mid-connect (5 s timeout): prompt. */
static void close_mid_connect(const char *host, int port, int (*in_ns)(void *),
                              void *ns_arg) {
  cpool_config cfg;
  cpool_t *pool = NULL;
  cpool_stats_t st;

  fh_config(&cfg, host, port, SIZE);
  cfg.connect_timeout_ms = 5000;
  int entered = in_ns == NULL || in_ns(ns_arg) == 0;
  int rc = entered ? cpool_open(&pool, &cfg, NULL) : CPOOL_ESYS;
  if (in_ns != NULL && entered)
    in_ns(NULL);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    return;
  tu_sleep_ms(50); /* the SYNs are out and lost */
  cpool_stats(pool, &st);
  TU_CHECK(st.connecting == SIZE, "connecting %d of %d", st.connecting, SIZE);
  int64_t t0 = tu_now_ms();
  rc = cpool_close(pool, 0);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_CODE(rc, 0);
  TU_CHECK(took < 100 + FH_MARGIN_MS,
           "cpool_close with workers mid-connect took %lld ms",
           (long long)took);
}

/* ---- in a network namespace ------------------------------------------------
 */

static fh_netns ns;
static int ns_saved = -1;

/* in_ns callback: enter namespace A (arg non-NULL) or go back (NULL). */
static int enter_a(void *arg) {
  if (arg != NULL)
    return fh_netns_enter(ns.a, &ns_saved);
  int rc = fh_netns_leave(ns_saved);
  ns_saved = -1;
  return rc;
}

static void test_syn_dropped_netns(void) {
  enum { PORT = 7000 };
  char why[512], addr[64];
  tu_events *ev = tu_events_new();
  cpool_t *pool = NULL;
  ts_server *peer = NULL;
  int fds0 = tu_count_fds();

  if (fh_netns_setup(&ns, why, sizeof why) != 0) {
    fh_skip("network namespaces not available: %s", why);
    tu_events_free(ev);
    return;
  }
  snprintf(addr, sizeof addr, "%s:%d", ns.ip_b, PORT);
  TU_CHECK(fh_netns_blackhole(&ns, 1) == 0, "cannot set the blackhole");

  /* The setup really eats SYNs: a plain connect from A hangs. */
  int probe = -1, hangs = 0;
  if (enter_a(&ns) == 0) {
    hangs = connect_hangs(ns.ip_b, PORT, 200, &probe);
    enter_a(NULL);
  }
  if (probe >= 0)
    close(probe);
  TU_CHECK(hangs, "a connect from %s to %s did not hang: no blackhole", ns.a,
           addr);
  if (!hangs)
    goto out;

  if (enter_a(&ns) == 0) {
    sync_open_times_out(ns.ip_b, PORT, addr, "netns");
    enter_a(NULL);
  } else {
    TU_CHECK(0, "cannot enter namespace %s: %s", ns.a, strerror(errno));
  }
  close_mid_connect(ns.ip_b, PORT, enter_a, &ns);
  pool = async_open_times_out(ns.ip_b, PORT, addr, ev, enter_a, &ns);

  /* Heal: a server in B, the route back: every slot connects. */
  peer = fh_netns_peer(&ns, PORT);
  TU_CHECK(peer != NULL, "peer in %s did not start", ns.b);
  fh_netns_blackhole(&ns, 0);
  if (pool != NULL) {
    cpool_stats_t st;
    TU_WAIT_STATS(pool, st, st.idle == SIZE, 3000);
    TU_CHECK(st.idle == SIZE, "after the blackhole ended: idle %d of %d",
             st.idle, SIZE);
    int calls, failed;
    tu_events_stats_calls(ev, &calls, &failed);
    TU_CHECK(calls - failed > 0, "on_event never called cpool_stats");
  }
out:
  fh_end_pool(pool, "syn_dropped_netns");
  ts_stop(peer);
  fh_netns_teardown(&ns);
  tu_events_free(ev);
  fh_check_fds(fds0, "syn_dropped_netns");
}

/* ---- a full accept queue on loopback ----------------------------------------
 */

#define MAX_FILL 16

typedef struct backlog {
  int lfd, port;
  int fill[MAX_FILL], nfill;
  pthread_t acceptor;
  atomic_int stop;
  int accepted[64];
  atomic_int naccepted;
} backlog;

/* listen(fd, 0) and connect to it until a connect hangs. */
static int backlog_fill(backlog *b) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  b->nfill = 0;
  b->port = tu_free_port();
  a.sin_port = htons((uint16_t)b->port);
  b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (b->lfd < 0 || bind(b->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(b->lfd, 0) != 0)
    return -1;
  while (b->nfill < MAX_FILL) {
    int fd;
    int hangs = connect_hangs("127.0.0.1", b->port, 100, &fd);
    if (fd >= 0)
      b->fill[b->nfill++] = fd;
    if (hangs)
      return 0;
  }
  return -1;
}

static void *acceptor(void *arg) {
  backlog *b = arg;
  while (!atomic_load(&b->stop)) {
    struct pollfd p = {.fd = b->lfd, .events = POLLIN};
    if (poll(&p, 1, 10) <= 0)
      continue;
    int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
    int n = atomic_load(&b->naccepted);
    if (fd >= 0 && n < 64) {
      b->accepted[n] = fd;
      atomic_store(&b->naccepted, n + 1);
    } else if (fd >= 0) {
      close(fd);
    }
  }
  return NULL;
}

static void backlog_close(backlog *b, int acceptor_started) {
  if (acceptor_started) {
    atomic_store(&b->stop, 1);
    pthread_join(b->acceptor, NULL);
  }
  for (int i = 0; i < atomic_load(&b->naccepted); i++)
    close(b->accepted[i]);
  for (int i = 0; i < b->nfill; i++)
    close(b->fill[i]);
  if (b->lfd >= 0)
    close(b->lfd);
}

static void test_backlog_full(void) {
  static backlog b;
  char addr[64];
  tu_events *ev = tu_events_new();
  cpool_t *pool = NULL;
  int fds0 = tu_count_fds(), acc = 0;

  memset(&b, 0, sizeof b);
  int filled = backlog_fill(&b) == 0;
  TU_CHECK(filled,
           "could not fill a listen(fd, 0) queue on port %d with %d "
           "connects: %s",
           b.port, b.nfill, strerror(errno));
  if (!filled)
    goto out;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", b.port);

  sync_open_times_out("127.0.0.1", b.port, addr, "full backlog");
  close_mid_connect("127.0.0.1", b.port, NULL, NULL);
  pool = async_open_times_out("127.0.0.1", b.port, addr, ev, NULL, NULL);

  /* Heal: start accepting; the next attempts get through. */
  acc = pthread_create(&b.acceptor, NULL, acceptor, &b) == 0;
  if (pool != NULL) {
    cpool_stats_t st;
    TU_WAIT_STATS(pool, st, st.idle == SIZE, 3000);
    TU_CHECK(st.idle == SIZE, "after accepting again: idle %d of %d", st.idle,
             SIZE);
  }
out:
  fh_end_pool(pool, "backlog_full");
  backlog_close(&b, acc);
  tu_events_free(ev);
  fh_check_fds(fds0, "backlog_full");
}

const fault_test fault_blackhole_netns_tests[] = {
    {"syn_dropped_netns", test_syn_dropped_netns},
    {NULL, NULL},
};

const fault_test fault_blackhole_backlog_tests[] = {
    {"backlog_full", test_backlog_full},
    {NULL, NULL},
};
