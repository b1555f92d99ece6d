/*
 * cpool_close: waiters woken with ESHUTDOWN, the drain and its timeout, a
 * long backoff or a hanging connect cut short, and nothing left behind
 * (descriptors, threads) after many open/close cycles.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static ts_server *srv;

int close_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int close_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

/* cpool_close on its own thread: the test thread holds connections. */
typedef struct closer {
  cpool_t *pool;
  int drain_ms;
  pthread_t thread;
  int rc;
  int64_t t0_ms, t1_ms;
} closer;

static void *closer_main(void *arg) {
  closer *c = arg;

  c->t0_ms = tu_now_ms();
  c->rc = cpool_close(c->pool, c->drain_ms);
  c->t1_ms = tu_now_ms();
  return NULL;
}

static int closer_start(closer *c, cpool_t *pool, int drain_ms) {
  memset(c, 0, sizeof *c);
  c->pool = pool;
  c->drain_ms = drain_ms;
  c->rc = 1; /* not returned yet */
  return pthread_create(&c->thread, NULL, closer_main, c);
}

/* Callback counts, to see every socket closed through on_disconnect. */
typedef struct counts {
  atomic_int connects, disconnects;
} counts;

static int count_connect(int fd, void **data, void *arg) {
  (void)fd;
  (void)data;
  atomic_fetch_add(&((counts *)arg)->connects, 1);
  return 0;
}

static void count_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)data;
  atomic_fetch_add(&((counts *)arg)->disconnects, 1);
}

static cpool_t *open_sync(int size, counts *cb) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), size);
  cfg.start = CPOOL_START_SYNC;
  if (cb) {
    cfg.on_connect = count_connect;
    cfg.on_disconnect = count_disconnect;
    cfg.cb_arg = cb;
  }
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* With a size-1 pool held by the test, nowait says ECHECKEDOUT until
 * close begins, and ESHUTDOWN after. */
static int wait_closing(cpool_t *p) {
  cpool_conn_t *c = NULL;
  int rc = 0;

  TU_WAIT((rc = cpool_checkout(p, &c, CPOOL_NOWAIT, NULL)) == CPOOL_ESHUTDOWN,
          5000);
  return rc == CPOOL_ESHUTDOWN;
}

static void test_close_wakes_waiters(void) {
  enum { W = 3 };
  cpool_t *p = open_sync(1, NULL);
  cpool_conn_t *a = NULL, *c = NULL;
  cpool_stats_t st;
  tu_waiter w[W];
  closer cl;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  for (int i = 0; i < W; i++)
    TU_ASSERT_EQ(tu_waiter_start(&w[i], p, CPOOL_WAIT_FOREVER, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == W, 5000);
  TU_ASSERT_EQ(st.waiters, W);
  t0 = tu_now_ms();
  CU_ASSERT_FATAL(closer_start(&cl, p, CPOOL_WAIT_FOREVER) == 0);
  for (int i = 0; i < W; i++) {
    tu_waiter_join(&w[i]);
    TU_ASSERT_CODE(w[i].rc, CPOOL_ESHUTDOWN);
    TU_ASSERT_INT(w[i].t1_ms - t0, <, 1000);
  }
  /* Close is draining our connection: new checkouts fail at once. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), CPOOL_ESHUTDOWN);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), CPOOL_ESHUTDOWN);
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_WAIT_FOREVER, NULL),
                 CPOOL_ESHUTDOWN);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 500);
  CU_ASSERT_PTR_NULL(c);
  TU_ASSERT_EQ(cl.rc, 1); /* still draining */
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(a), "draining", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  pthread_join(cl.thread, NULL);
  TU_ASSERT_CODE(cl.rc, 0);
}

static void test_drain_waits_for_checkin(void) {
  counts cb = {0};
  cpool_t *p = open_sync(1, &cb);
  cpool_conn_t *a = NULL;
  closer cl;
  int64_t t_checkin;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  CU_ASSERT_FATAL(closer_start(&cl, p, 5000) == 0);
  CU_ASSERT(wait_closing(p));
  tu_sleep_ms(100); /* the caller's request still running */
  TU_ASSERT_EQ(cl.rc, 1);
  t_checkin = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  pthread_join(cl.thread, NULL);
  TU_ASSERT_CODE(cl.rc, 0);
  TU_ASSERT_INT(cl.t1_ms, >=, t_checkin);
  TU_ASSERT_INT(cl.t1_ms - t_checkin, <, 1000);
  TU_ASSERT_EQ(cb.connects, 1);
  TU_ASSERT_EQ(cb.disconnects, 1);
}

static void test_drain_timeout_ebusy(void) {
  counts cb = {0};
  cpool_t *p = open_sync(2, &cb);
  cpool_conn_t *a = NULL;
  closer cl;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  CU_ASSERT_FATAL(closer_start(&cl, p, 300) == 0);
  pthread_join(cl.thread, NULL);
  TU_ASSERT_CODE(cl.rc, CPOOL_EBUSY);
  TU_ASSERT_BETWEEN(cl.t1_ms - cl.t0_ms, 295,
                    300 + (TU_SANITIZED ? 2000 : 1000));
  /* The held connection was closed anyway, through on_disconnect. */
  TU_ASSERT_EQ(cb.connects, 2);
  TU_ASSERT_EQ(cb.disconnects, 2);
  CU_ASSERT(ts_wait_open(srv, 0, 5000));
  (void)a; /* no longer ours to use or check in */
}

static void test_close_zero_drain(void) {
  counts cb = {0};
  cpool_t *p = open_sync(3, &cb);
  cpool_conn_t *a = NULL;
  closer cl;
  int64_t t0;

  /* All idle: 0 at once, every socket through on_disconnect. */
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 1000);
  TU_ASSERT_EQ(cb.connects, 3);
  TU_ASSERT_EQ(cb.disconnects, 3);

  /* One busy: EBUSY at once, not after some drain. */
  p = open_sync(3, &cb);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  CU_ASSERT_FATAL(closer_start(&cl, p, 0) == 0);
  pthread_join(cl.thread, NULL);
  TU_ASSERT_CODE(cl.rc, CPOOL_EBUSY);
  TU_ASSERT_INT(cl.t1_ms - cl.t0_ms, <, 1000);
  TU_ASSERT_EQ(cb.disconnects, 6);
}

/* A worker sleeping out a 10 s backoff does not hold close up. */
static void test_close_cuts_backoff(void) {
  ts_server *down = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(down);
  CU_ASSERT_FATAL(ts_refuse(down) == 0);
  tu_config(&cfg, ts_port(down), 4);
  cfg.backoff_min_ms = 10000;
  cfg.backoff_max_ms = 20000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.backoff == 4, 5000);
  TU_ASSERT_EQ(st.backoff, 4);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  printf("\nFIGURE: close during a 10 s backoff took %lld ms\n",
         (long long)(tu_now_ms() - t0));
  TU_ASSERT_INT(tu_now_ms() - t0, <, 1000);
  ts_stop(down);
}

/* A connect that hangs (blackhole) does not hold close up either. */
static void test_close_cuts_connect(void) {
  ts_server *bh = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(bh);
  CU_ASSERT_FATAL(ts_blackhole(bh) == 0);
  tu_config(&cfg, ts_port(bh), 2);
  cfg.connect_timeout_ms = 10000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.connecting == 2, 5000);
  tu_sleep_ms(50); /* let the workers get into connect's wait */
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  printf("\nFIGURE: close during a hanging connect took %lld ms\n",
         (long long)(tu_now_ms() - t0));
  TU_ASSERT_INT(tu_now_ms() - t0, <, 2000);
  ts_stop(bh);
}

/* ---- nothing left behind ---------------------------------------------- */

static int count_threads(void) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  int n = -1;

  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1)
      break;
  fclose(f);
  return n;
}

static void one_cycle(ts_server *down) {
  cpool_config cfg;
  cpool_conn_t *a = NULL, *b = NULL;
  cpool_stats_t st;
  cpool_t *p;
  closer cl;

  /* Normal use, one broken checkin. */
  p = open_sync(4, NULL);
  if (!p)
    return;
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &b, 1000, NULL), 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(a), "cycle", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_checkin(p, b, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  /* Closed with a connection still out. */
  p = open_sync(2, NULL);
  if (!p)
    return;
  TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
  CU_ASSERT_FATAL(closer_start(&cl, p, 0) == 0);
  pthread_join(cl.thread, NULL);
  TU_ASSERT_CODE(cl.rc, CPOOL_EBUSY);

  /* Backing off against a refusing server. */
  tu_config(&cfg, ts_port(down), 2);
  p = NULL;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  if (p) {
    TU_WAIT_STATS(p, st, st.connect_failures >= 2, 5000);
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }

  /* Failed opens leave nothing behind. */
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), CPOOL_ECONNECT);
  cfg.size = -1;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), CPOOL_EINVAL);
}

static void test_no_leaks(void) {
  const int cycles = TU_SANITIZED ? 5 : 15;
  ts_server *down = ts_start(TS_ECHO, TS_TCP4);
  int fds0, threads0, fds1, threads1;

  CU_ASSERT_PTR_NOT_NULL_FATAL(down);
  CU_ASSERT_FATAL(ts_refuse(down) == 0);
  CU_ASSERT(ts_wait_open(srv, 0, 5000));
  fds0 = tu_count_fds();
  threads0 = count_threads();
  for (int i = 0; i < cycles; i++)
    one_cycle(down);
  /* The server closes its ends as it reads each EOF. */
  CU_ASSERT(ts_wait_open(srv, 0, 5000));
  TU_WAIT(tu_count_fds() == fds0 && count_threads() == threads0, 5000);
  fds1 = tu_count_fds();
  threads1 = count_threads();
  printf("\nFIGURE: %d open/close cycles: descriptors %d -> %d, threads %d -> "
         "%d\n",
         cycles, fds0, fds1, threads0, threads1);
  TU_ASSERT_EQ(fds1, fds0);
  TU_ASSERT_EQ(threads1, threads0);
  ts_stop(down);
}

CU_TestInfo close_tests[] = {
    {"close_wakes_waiters", test_close_wakes_waiters},
    {"drain_waits_for_checkin", test_drain_waits_for_checkin},
    {"drain_timeout_ebusy", test_drain_timeout_ebusy},
    {"close_zero_drain", test_close_zero_drain},
    {"close_cuts_backoff", test_close_cuts_backoff},
    {"close_cuts_connect", test_close_cuts_connect},
    {"no_leaks", test_no_leaks},
    CU_TEST_INFO_NULL,
};
