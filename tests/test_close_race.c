/*
 * cpool_close against a fast checkin that is not done with the pool yet
 * (fixed in 167c16f): one interleaving, forced step by step.
 *
 * A fast checkin stores PARKED and then still reads the pool, and takes
 * its lock when close has begun.  In between, another caller may take the
 * slot from the park and give it back (close has begun: it gets
 * CPOOL_ESHUTDOWN), which ends close's drain: close used to free the pool
 * then, and the checkin went on in freed memory.  Now close waits until
 * the checkin is done (the slot's in_checkin).
 *
 * To stop the checkin at that point, this program is linked with
 * -Wl,--wrap=pthread_mutex_lock: the library's calls land in
 * __wrap_pthread_mutex_lock below, which holds the one armed thread just
 * before it takes the pool's lock, until the test lets it go.  It is also
 * linked with --wrap=sched_yield, which close calls while it waits for a
 * checkin to finish: that tells the test that close is waiting, with no
 * timer.  (A static libcpool only: --wrap applies to the objects linked
 * into the program.)  White-box in one place: the test reads the pool's
 * lock address and a slot's lease word from internal.h.
 *
 * The steps, on a pool of one slot:
 *   1. this thread (M) checks out and in: the slot is parked for M.
 *   2. T takes it (reclaimed from M's park), parks it, takes it on the
 *      fast path (HELD), and holds it.
 *   3. C calls cpool_close(WAIT_FOREVER): it drains, waiting for T's slot.
 *   4. T checks in: stores PARKED, sees close, and stops before the lock.
 *   5. M checks out: takes the slot from the park (M remembers it), sees
 *      close, gives it back, gets CPOOL_ESHUTDOWN.  The drain is over.
 *   6. M waits until close returned (the bug) or waits for T (the fix).
 *   7. T goes on.  Before the fix, with a sanitizer, T's read of the slot
 *      after the lock is a heap-use-after-free; without one, T is left
 *      where it is (letting it go would corrupt the heap) and the test
 *      fails on close having returned under it.
 */
#include "internal.h"
#include "testserver.h"
#include "testutil.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/stdlib.h>

/* ---- the wrappers ------------------------------------------------------ */

int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
int __real_sched_yield(void);
int __wrap_sched_yield(void);

static pthread_mutex_t *_Atomic stop_at; /* the lock to stop before */
static _Thread_local int armed;          /* this thread stops once */
static _Thread_local int is_closer;      /* this thread runs cpool_close */
static atomic_int stops, closer_yields;
static sem_t at_lock, go_lock;


/* checkin_vs_drain_deadline's holders (see there). */
static _Thread_local int drain_holder;   /* this thread is one */
static _Thread_local int drain_counted;  /* and has been counted */
static atomic_int drain_calling;         /* holders inside or done */
static _Atomic int64_t drain_deadline_us; /* the drain's, about */
static atomic_int closer_returned;

static void drain_hold(void) {
  if (!drain_counted) {
    drain_counted = 1;
    atomic_fetch_add(&drain_calling, 1);
  }
  if (tu_now_us() < atomic_load(&drain_deadline_us))
    return;
  /* Late: stay inside the checkin until close waits for us (it yields)
   * or has returned (the bug: then the pool is freed under us). */
  int64_t until = tu_now_us() + 2000000;
  while (atomic_load(&closer_yields) == 0 && !atomic_load(&closer_returned) &&
         tu_now_us() < until)
    tu_sleep_us(50);
}

int __wrap_pthread_mutex_lock(pthread_mutex_t *m) {
  if (drain_holder && m == atomic_load(&stop_at))
    drain_hold();
  if (armed && m == atomic_load(&stop_at)) {
    armed = 0;
    atomic_fetch_add(&stops, 1);
    sem_post(&at_lock);
    /* Longer than the test runs: when it is not let go, the process
     * exits first. */
    tu_sem_wait_ms(&go_lock, 60000);
  }
  return __real_pthread_mutex_lock(m);
}

int __wrap_sched_yield(void) {
  if (is_closer)
    atomic_fetch_add(&closer_yields, 1);
  return __real_sched_yield();
}

/* ---- the threads ------------------------------------------------------- */

static ts_server *srv;

typedef struct holder {
  cpool_t *pool;
  pthread_t thread;
  sem_t holding, go;
  int rc[3], lease;
  cpool_conn_t *conn;
  atomic_int checkin_rc; /* 1 until the checkin returned */
} holder;

static void *holder_main(void *arg) {
  holder *t = arg;
  cpool_conn_t *c = NULL;

  t->rc[0] = cpool_checkout(t->pool, &c, CPOOL_NOWAIT, NULL);
  t->rc[1] = t->rc[0] ? -1 : cpool_checkin(t->pool, c, CPOOL_CONN_OK);
  c = NULL;
  t->rc[2] = cpool_checkout(t->pool, &c, CPOOL_NOWAIT, NULL);
  t->conn = c;
  t->lease = c ? CPOOL__LEASE_STATE(atomic_load(&c->lease)) : -1;
  sem_post(&t->holding);
  sem_wait(&t->go);
  if (c == NULL)
    return NULL;
  armed = 1;
  atomic_store(&t->checkin_rc, cpool_checkin(t->pool, c, CPOOL_CONN_OK));
  armed = 0;
  sem_post(&at_lock); /* if it never stopped: the test is not stuck */
  return NULL;
}

typedef struct closer {
  cpool_t *pool;
  pthread_t thread;
  atomic_int rc; /* 1 until close returned */
} closer;

static void *closer_main(void *arg) {
  closer *c = arg;

  is_closer = 1;
  atomic_store(&c->rc, cpool_close(c->pool, CPOOL_WAIT_FOREVER));
  return NULL;
}

static int timed_join(pthread_t t, int ms) {
  struct timespec dl;

  clock_gettime(CLOCK_REALTIME, &dl); /* pthread_timedjoin_np's clock */
  dl.tv_sec += ms / 1000 + 1;
  return pthread_timedjoin_np(t, NULL, &dl);
}

/* ---- the test ---------------------------------------------------------- */

static void test_fast_checkin_vs_close(void) {
  cpool_config cfg;
  cpool_conn_t *m = NULL;
  cpool_t *p = NULL;
  holder t;
  closer cl;
  int rc, probe = 0, closed_early, let_go;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1; /* the fast path without a peek */
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_FATAL(ts_wait_open(srv, 1, 5000));

  /* 1 */
  TU_ASSERT_CODE(cpool_checkout(p, &m, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  TU_ASSERT_CODE(cpool_checkin(p, m, CPOOL_CONN_OK), 0);
  TU_ASSERT_EQ(CPOOL__LEASE_STATE(atomic_load(&m->lease)),
               CPOOL__LEASE_PARKED);

  /* 2 */
  memset(&t, 0, sizeof t);
  t.pool = p;
  atomic_store(&t.checkin_rc, 1);
  sem_init(&t.holding, 0, 0);
  sem_init(&t.go, 0, 0);
  CU_ASSERT_FATAL(pthread_create(&t.thread, NULL, holder_main, &t) == 0);
  CU_ASSERT_FATAL(tu_sem_wait_ms(&t.holding, 5000) == 0);
  TU_ASSERT_CODE(t.rc[0], 0);
  TU_ASSERT_CODE(t.rc[1], 0);
  TU_ASSERT_CODE(t.rc[2], 0);
  CU_ASSERT_FATAL(t.conn == m);
  TU_ASSERT_EQ(t.lease, CPOOL__LEASE_HELD);

  /* 3: close has begun once a checkout gets CPOOL_ESHUTDOWN (until then
   * CPOOL_ECHECKEDOUT: T holds the slot, and nothing is taken). */
  memset(&cl, 0, sizeof cl);
  cl.pool = p;
  atomic_store(&cl.rc, 1);
  CU_ASSERT_FATAL(pthread_create(&cl.thread, NULL, closer_main, &cl) == 0);
  TU_WAIT((probe = cpool_checkout(p, &m, CPOOL_NOWAIT, NULL)) ==
              CPOOL_ESHUTDOWN,
          5000);
  TU_ASSERT_CODE(probe, CPOOL_ESHUTDOWN);

  /* 4 */
  atomic_store(&stop_at, &p->mu);
  sem_post(&t.go);
  CU_ASSERT_FATAL(tu_sem_wait_ms(&at_lock, 5000) == 0);
  /* Stopped before the lock, its checkin not returned. */
  TU_ASSERT_EQ(atomic_load(&stops), 1);
  TU_ASSERT_EQ(atomic_load(&t.checkin_rc), 1);
  if (atomic_load(&stops) != 1) { /* nothing to test; close is draining */
    CU_ASSERT_FATAL(timed_join(t.thread, 5000) == 0);
    CU_ASSERT_FATAL(timed_join(cl.thread, 5000) == 0);
    return;
  }

  /* 5: from here on the pool may be freed (before the fix): no more
   * reads of it or its slots. */
  m = NULL;
  rc = cpool_checkout(p, &m, CPOOL_NOWAIT, NULL);
  TU_ASSERT_CODE(rc, CPOOL_ESHUTDOWN);

  /* 6: the drain is over once the worker closed the connection; then
   * close either returns (the bug) or waits for T. */
  CU_ASSERT(ts_wait_open(srv, 0, 5000));
  TU_WAIT(atomic_load(&cl.rc) != 1 || atomic_load(&closer_yields) > 0, 2000);
  closed_early = atomic_load(&cl.rc) != 1;
  printf("\nFIGURE: close vs a fast checkin stopped before the lock: close "
         "%s (%d yields)\n",
         closed_early ? "RETURNED under it" : "waits for it",
         atomic_load(&closer_yields));
  if (closed_early)
    fprintf(stderr,
            "cpool_close returned (%s) and freed the pool while a "
            "checkin was still inside it\n",
            cpool_err_name(atomic_load(&cl.rc)));
  CU_ASSERT(!closed_early);

  /* 7 */
  let_go = !closed_early || TU_SANITIZED;
  if (!let_go)
    return; /* T stays stopped until the process exits */
  sem_post(&go_lock);
  CU_ASSERT_FATAL(timed_join(t.thread, 5000) == 0);
  TU_ASSERT_CODE(atomic_load(&t.checkin_rc), 0);
  CU_ASSERT_FATAL(timed_join(cl.thread, 5000) == 0);
  TU_ASSERT_CODE(atomic_load(&cl.rc), 0);
  sem_destroy(&t.holding);
  sem_destroy(&t.go);
}

/* ---- checkins racing the end of a timed drain ---------------------------- */

/* Holders check in at times spread over +-300 us around the drain's
 * deadline, some holding a slot taken through the locked path, some one
 * taken on the fast path, many rounds.  Those after the deadline used to
 * find the pool freed under them, at pthread_mutex_lock or inside the
 * lock: cpool_close stopped waiting for them at the deadline (issue 10;
 * a heap-use-after-free under ASan).  Now close waits for every checkin
 * and checkout call inside the pool, and a checkin after the drain
 * returns CPOOL_ESHUTDOWN.
 *
 * Two things make it repeatable.  A holder that reaches the pool's lock
 * after the deadline stays there (the wrapper, drain_hold) until close
 * waits for it (yields) or has returned.  And the workers' on_disconnect,
 * called as close shuts each slot, waits until every holder is inside
 * its checkin (at the lock) or done: a checkin that begins after
 * cpool_close returned would be the caller's bug, not the pool's. */
enum { DR_HOLDERS = 8, DR_DRAIN_MS = 20, DR_SPREAD_US = 300 };

typedef struct drain_round {
  cpool_t *pool;
  int64_t deadline_us;
  pthread_barrier_t ready;
} drain_round;

typedef struct drain_holder_t {
  drain_round *r;
  pthread_t thread;
  int fast; /* hold the slot as taken on the fast path */
  int offset_us;
  int rc;
} drain_holder_t;

static void sleep_until_us(int64_t at_us) {
  struct timespec ts = {.tv_sec = at_us / 1000000,
                        .tv_nsec = (at_us % 1000000) * 1000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

static void drain_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)data;
  (void)arg;
  TU_WAIT(atomic_load(&drain_calling) == DR_HOLDERS, 10000);
}

static void *drain_holder_main(void *arg) {
  drain_holder_t *h = arg;
  drain_round *r = h->r;
  cpool_conn_t *c = NULL;

  h->rc = cpool_checkout(r->pool, &c, 5000, NULL);
  pthread_barrier_wait(&r->ready); /* every slot is out: none is parked */
  if (h->rc == 0 && h->fast) {
    /* Parked for this thread, and taken back without the lock. */
    h->rc = cpool_checkin(r->pool, c, CPOOL_CONN_OK);
    if (h->rc == 0)
      h->rc = cpool_checkout(r->pool, &c, CPOOL_NOWAIT, NULL);
  }
  pthread_barrier_wait(&r->ready); /* the deadline is set */
  if (h->rc != 0) {
    h->rc = -1000 + h->rc;
    atomic_fetch_add(&drain_calling, 1);
    return NULL;
  }
  sleep_until_us(r->deadline_us + h->offset_us);
  drain_holder = 1;
  drain_counted = 0;
  h->rc = cpool_checkin(r->pool, c, CPOOL_CONN_OK);
  drain_holder = 0;
  if (!drain_counted) /* a fast checkin, without the lock */
    atomic_fetch_add(&drain_calling, 1);
  return NULL;
}

static void test_checkin_vs_drain_deadline(void) {
  const int rounds = TU_SANITIZED ? 20 : 40;
  int late = 0, early = 0, bad = 0, ebusy = 0;

  for (int round = 0; round < rounds; round++) {
    drain_round r;
    drain_holder_t h[DR_HOLDERS];
    cpool_config cfg;

    memset(&r, 0, sizeof r);
    atomic_store(&drain_calling, 0);
    atomic_store(&closer_yields, 0);
    atomic_store(&closer_returned, 0);
    atomic_store(&drain_deadline_us, INT64_MAX);
    tu_config(&cfg, ts_port(srv), DR_HOLDERS);
    cfg.start = CPOOL_START_SYNC;
    cfg.on_disconnect = drain_disconnect;
    TU_ASSERT_CODE(cpool_open(&r.pool, &cfg, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.pool);
    atomic_store(&stop_at, &r.pool->mu);
    pthread_barrier_init(&r.ready, NULL, DR_HOLDERS + 1);
    for (int i = 0; i < DR_HOLDERS; i++) {
      h[i].r = &r;
      h[i].fast = i % 2;
      h[i].offset_us =
          (int)arc4random_uniform(2 * DR_SPREAD_US + 1) - DR_SPREAD_US;
      h[i].rc = 1;
      CU_ASSERT_FATAL(pthread_create(&h[i].thread, NULL, drain_holder_main,
                                     &h[i]) == 0);
    }
    pthread_barrier_wait(&r.ready);
    r.deadline_us = tu_now_us() + DR_DRAIN_MS * 1000;
    atomic_store(&drain_deadline_us, r.deadline_us);
    pthread_barrier_wait(&r.ready);
    is_closer = 1;
    int rc = cpool_close(r.pool, DR_DRAIN_MS);
    is_closer = 0;
    atomic_store(&closer_returned, 1);
    atomic_store(&stop_at, NULL);
    for (int i = 0; i < DR_HOLDERS; i++) {
      CU_ASSERT_FATAL(timed_join(h[i].thread, 10000) == 0);
      if (h[i].rc == CPOOL_ESHUTDOWN) {
        late++;
      } else if (h[i].rc == 0) {
        early++;
      } else {
        bad++;
        printf("\nround %d holder %d (%s, %+d us): checkin %s (%d)\n", round,
               i, h[i].fast ? "fast" : "locked", h[i].offset_us,
               cpool_err_name(h[i].rc), h[i].rc);
      }
    }
    CU_ASSERT(rc == 0 || rc == CPOOL_EBUSY);
    ebusy += rc == CPOOL_EBUSY;
    pthread_barrier_destroy(&r.ready);
  }
  printf("\nFIGURE: %d rounds of %d checkins around the drain deadline: %d "
         "returned 0, %d CPOOL_ESHUTDOWN, %d other; close EBUSY in %d\n",
         rounds, DR_HOLDERS, early, late, bad, ebusy);
  TU_ASSERT_EQ(bad, 0);
}

static int suite_init(void) {
  sem_init(&at_lock, 0, 0);
  sem_init(&go_lock, 0, 0);
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

static int suite_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

static CU_TestInfo tests[] = {
    {"fast_checkin_vs_close", test_fast_checkin_vs_close},
    {"checkin_vs_drain_deadline", test_checkin_vs_drain_deadline},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"close_race", suite_init, suite_cleanup, NULL, NULL, tests},
    CU_SUITE_INFO_NULL,
};

int main(void) {
  unsigned failures;

  setvbuf(stdout, NULL, _IONBF, 0);
  if (CU_initialize_registry() != CUE_SUCCESS ||
      CU_register_suites(suites) != CUE_SUCCESS) {
    fprintf(stderr, "cpool-close-race: %s\n", CU_get_error_msg());
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
             CU_get_number_of_suites_failed();
  if (CU_get_number_of_tests_run() == 0)
    failures++;
  CU_cleanup_registry();
  return failures ? 1 : 0;
}
