/*
 * cpool_close: waiters woken with ESHUTDOWN, the drain and its timeout, a
 * long backoff or a hanging connect cut short, and nothing left behind
 * (descriptors, threads) after many open/close cycles.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* ---- a forced close wakes a caller blocked on its connection ------------ */

/* A caller blocked in recv() on a connection it checked out.  Heap, not
 * the test's stack: if close fails to wake it, it outlives the test. */
typedef struct reader {
  cpool_conn_t *conn;
  pthread_t thread;
  atomic_int tid;  /* set just before recv() */
  atomic_int done; /* set once recv() returned */
  ssize_t n;       /* what recv() returned, */
  int err;         /* and its errno */
} reader;

/* ThreadSanitizer sees the worker's close() of the socket while recv() is
 * still on it as a race on the descriptor, which it is, by contract: close
 * shuts the socket down and closes it under a caller it cannot wait for.
 * Under TSan the caller blocks in poll() instead, which TSan does not
 * track per descriptor; the pool's side is the same. */
#if defined(__SANITIZE_THREAD__)
#define READER_BLOCKS_IN_POLL 1
#else
#define READER_BLOCKS_IN_POLL 0
#endif

static void *reader_main(void *arg) {
  reader *r = arg;
  int fd = cpool_conn_fd(r->conn);
  char buf[16];

  atomic_store(&r->tid, (int)syscall(SYS_gettid));
  /* No timeout on the socket: only the pool can end this. */
  if (READER_BLOCKS_IN_POLL) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    r->n = poll(&pfd, 1, -1) < 0 ? -1 : 0;
  } else {
    r->n = recv(fd, buf, sizeof buf, 0);
  }
  r->err = r->n < 0 ? errno : 0;
  /* The pool is being closed: the conn is no longer ours to touch. */
  atomic_store(&r->done, 1);
  return NULL;
}

/* 1 once thread tid is inside the system call the reader blocks in (recv
 * is recvfrom); -1 if that cannot be seen here (no /proc). */
static int in_recv(int tid) {
  char path[64];
  long nr = -1;
  FILE *f;

  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  f = fopen(path, "re");
  if (!f)
    return -1;
  if (fscanf(f, "%ld", &nr) != 1)
    nr = -1;
  fclose(f);
  if (READER_BLOCKS_IN_POLL)
    return nr == SYS_ppoll
#ifdef SYS_poll
           || nr == SYS_poll
#endif
        ;
  return nr == SYS_recvfrom;
}

/* The server accepts and never answers: the caller's recv() would block
 * for ever.  A close whose drain times out must shut the socket down
 * first, so that the caller wakes (it used to sleep on in recv). */
static void test_forced_close_wakes_reader(void) {
  ts_server *stall = ts_start(TS_STALL, TS_TCP4);
  cpool_config cfg;
  cpool_t *p = NULL;
  reader *r = calloc(1, sizeof *r);
  int64_t t0, woke_ms;
  int seen = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(stall);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  tu_config(&cfg, ts_port(stall), 1);
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &r->conn, 1000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->conn);
  CU_ASSERT_FATAL(pthread_create(&r->thread, NULL, reader_main, r) == 0);
  /* Wait until the reader sleeps in recv(); where /proc cannot tell,
   * give it a moment after the flag. */
  TU_WAIT(r->tid != 0, 5000); /* _Atomic: a plain read is a load */
  TU_ASSERT_INT(r->tid, !=, 0);
  TU_WAIT((seen = in_recv(r->tid)) != 0, 5000);
  if (seen < 0)
    tu_sleep_ms(50);
  CU_ASSERT(seen != 0);
  TU_ASSERT_EQ(atomic_load(&r->done), 0);

  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 50), CPOOL_EBUSY);
  TU_WAIT(r->done, 2000);
  woke_ms = tu_now_ms() - t0;
  if (!atomic_load(&r->done)) {
    /* Still blocked: leave it to the server's close, and leak r. */
    fprintf(stderr,
            "forced close: the caller blocked in recv() was not "
            "woken after %lld ms\n",
            (long long)woke_ms);
    CU_FAIL("forced close did not wake the caller blocked in recv()");
    pthread_detach(r->thread);
    ts_stop(stall);
    return;
  }
  pthread_join(r->thread, NULL);
  printf("\nFIGURE: forced close: the blocked %s returned %zd (%s) "
         "%lld ms after close began\n",
         READER_BLOCKS_IN_POLL ? "poll()" : "recv()", r->n,
         r->n < 0                ? strerror(r->err)
         : READER_BLOCKS_IN_POLL ? "readable"
                                 : "EOF",
         (long long)woke_ms);
  CU_ASSERT(r->n == 0 || r->n == -1);
  TU_ASSERT_INT(woke_ms, <, TU_SANITIZED ? 2000 : 1000);
  free(r);
  ts_stop(stall);
}

/* ---- close against waiters being handed the last slot ------------------- */

enum { HW_THREADS = 4 };

typedef struct hw_shared {
  cpool_t *pool;
  atomic_int done;
  int rc[HW_THREADS];
} hw_shared;

typedef struct hw_arg {
  hw_shared *sh;
  int i;
} hw_arg;

static void *hw_waiter(void *arg) {
  hw_arg *a = arg;
  cpool_conn_t *c = NULL;

  a->sh->rc[a->i] = cpool_checkout(a->sh->pool, &c, CPOOL_WAIT_FOREVER, NULL);
  /* Got it or not, the pool is closing: c is not to be used, checked in,
   * or even looked at.  Just say we are out. */
  atomic_fetch_add(&a->sh->done, 1);
  return NULL;
}

/* A one-slot pool with callers queued for it: the slot is checked in and
 * close begins at once, so a waiter is handed the slot just as close
 * starts.  That waiter used to go on to peek at the slot without the lock
 * while close freed the pool (ASan: heap-use-after-free).  Now each
 * caller leaves with the slot (taken before close began) or ESHUTDOWN,
 * and nobody hangs. */
static void test_close_vs_handoff_hammer(void) {
  const int max_rounds = 200;
  const int64_t budget_ms = TU_SANITIZED ? 8000 : 2500;
  int rounds = 0, got = 0, shut = 0, other = 0, other_rc = 0;
  int two_got = 0, got_but_closed_ok = 0, ebusy = 0, ebusy_none = 0;
  int bad_close = 0;
  int not_queued = 0;
  int64_t t0 = tu_now_ms();

  while (rounds < max_rounds && tu_now_ms() - t0 < budget_ms) {
    cpool_config cfg;
    cpool_conn_t *a = NULL;
    cpool_stats_t st;
    cpool_t *p = NULL;
    pthread_t th[HW_THREADS];
    hw_arg args[HW_THREADS];
    hw_shared sh;
    int rc, n_got = 0;

    tu_config(&cfg, ts_port(srv), 1);
    cfg.start = CPOOL_START_SYNC;
    /* peek at every checkout: the old unlocked path */
    cfg.idle_check_ms = CPOOL_IDLE_CHECK_ALWAYS;
    /* In turn: strict hand-off (checkin gives the slot to the oldest
     * waiter), the default turns of 250 us, and turns never over (checkin
     * frees the slot and wakes the oldest waiter to take it). */
    cfg.handoff_after_us = (const int[]){-1, 0, 10000000}[rounds % 3];
    TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    TU_ASSERT_CODE(cpool_checkout(p, &a, 1000, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(&sh, 0, sizeof sh);
    sh.pool = p;
    for (int i = 0; i < HW_THREADS; i++) {
      sh.rc[i] = 1; /* not a cpool code: "did not return" */
      args[i] = (hw_arg){.sh = &sh, .i = i};
      CU_ASSERT_FATAL(pthread_create(&th[i], NULL, hw_waiter, &args[i]) == 0);
    }
    TU_WAIT_STATS(p, st, st.waiters == HW_THREADS, 5000);
    not_queued += st.waiters != HW_THREADS;
    TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
    rc = cpool_close(p, 0);
    /* close returns only once every waiter has left the pool. */
    TU_WAIT(sh.done == HW_THREADS, 5000);
    if (atomic_load(&sh.done) != HW_THREADS) {
      fprintf(stderr,
              "close vs hand-off: %d of %d callers still in "
              "cpool_checkout 5 s after cpool_close returned\n",
              HW_THREADS - atomic_load(&sh.done), HW_THREADS);
      abort(); /* they are inside a freed pool: nothing safe to do */
    }
    for (int i = 0; i < HW_THREADS; i++) {
      pthread_join(th[i], NULL);
      if (sh.rc[i] == 0) {
        n_got++;
      } else if (sh.rc[i] == CPOOL_ESHUTDOWN) {
        shut++;
      } else {
        other++;
        other_rc = sh.rc[i];
      }
    }
    got += n_got;
    two_got += n_got > 1;
    ebusy += rc == CPOOL_EBUSY;
    ebusy_none += rc == CPOOL_EBUSY && n_got == 0;
    bad_close += rc != 0 && rc != CPOOL_EBUSY;
    /* A caller that kept the slot never checked it in: close found it
     * out. */
    got_but_closed_ok += n_got > 0 && rc == 0;
    rounds++;
  }
  printf("\nFIGURE: close vs hand-off: %d rounds in %lld ms; of %d waiters "
         "%d got the slot before close, %d got ESHUTDOWN; close said EBUSY "
         "%d times, %d of them with the slot handed to a waiter that then "
         "got ESHUTDOWN\n",
         rounds, (long long)(tu_now_ms() - t0), rounds * HW_THREADS, got, shut,
         ebusy, ebusy_none);
  if (other)
    fprintf(stderr, "close vs hand-off: a waiter got %s\n",
            cpool_err_name(other_rc));
  TU_ASSERT_EQ(other, 0);
  TU_ASSERT_EQ(not_queued, 0);
  TU_ASSERT_EQ(two_got, 0);
  TU_ASSERT_EQ(bad_close, 0);
  TU_ASSERT_EQ(got_but_closed_ok, 0);
  TU_ASSERT_EQ(got + shut, rounds * HW_THREADS);
  TU_ASSERT_INT(rounds, >=, 50);
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
    {"forced_close_wakes_reader", test_forced_close_wakes_reader},
    {"close_vs_handoff_hammer", test_close_vs_handoff_hammer},
    {"close_cuts_backoff", test_close_cuts_backoff},
    {"close_cuts_connect", test_close_cuts_connect},
    {"no_leaks", test_no_leaks},
    CU_TEST_INFO_NULL,
};
