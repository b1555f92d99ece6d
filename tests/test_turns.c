/*
 * Turns (src/pool.c, turn_earn): a caller served from the queue, or
 * barging past it, may keep taking connections ahead of the waiters for a
 * turn.  The turn starts at handoff_after_us and each checkout within it
 * earns another handoff_after_us, up to handoff_max_us (shorter when many
 * wait), and it never keeps the oldest waiter past its deadline.  So a
 * caller that comes straight back keeps its connection for a long turn,
 * and one that comes back slowly hands it over every time.
 *
 * Each test counts hand-offs: checkouts by a different thread from the one
 * before, on a pool of one slot, while every thread loops.  Holding the
 * slot is the workload here (a spin of HOLD_US, or a sleep for the slow
 * caller), not a stand-in for synchronisation.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static ts_server *srv;

int turns_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int turns_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

static cpool_t *open_turns(int after_us, int max_us) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1;
  cfg.handoff_after_us = after_us;
  cfg.handoff_max_us = max_us;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* ---- threads that loop on one slot ------------------------------------- */

enum { MAX_LOOPERS = 16 };

typedef struct loop_run {
  cpool_t *pool;
  int hold_us;  /* spin this long with the slot ... */
  int sleep_ms; /* ... or sleep this long (the slow caller) */
  atomic_int stop;
  atomic_int last; /* the thread that checked out last, -1 none */
  atomic_int handoffs, errors, last_err;
} loop_run;

typedef struct looper {
  loop_run *run;
  int id;
  pthread_t thread;
  int ops;
  int64_t worst_wait_us;
} looper;

static void *looper_main(void *arg) {
  looper *l = arg;
  loop_run *r = l->run;

  while (!atomic_load(&r->stop)) {
    cpool_conn_t *c = NULL;
    int64_t t0 = tu_now_us();
    int rc = cpool_checkout(r->pool, &c, 5000, NULL);
    int64_t waited = tu_now_us() - t0;

    if (rc != 0) {
      atomic_fetch_add(&r->errors, 1);
      atomic_store(&r->last_err, rc);
      continue;
    }
    if (waited > l->worst_wait_us)
      l->worst_wait_us = waited;
    if (atomic_exchange(&r->last, l->id) != l->id)
      atomic_fetch_add(&r->handoffs, 1);
    l->ops++;
    if (r->sleep_ms > 0) {
      tu_sleep_ms(r->sleep_ms);
    } else {
      int64_t until = tu_now_us() + r->hold_us;
      while (tu_now_us() < until)
        ;
    }
    if (cpool_checkin(r->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&r->errors, 1);
  }
  return NULL;
}

typedef struct loop_result {
  int handoffs, ops, min_ops, max_ops, errors, last_err;
  int64_t worst_wait_us;
} loop_result;

/* n threads loop on p for run_ms. */
static loop_result run_loopers(cpool_t *p, int n, int hold_us, int sleep_ms,
                               int run_ms) {
  loop_run r;
  looper ls[MAX_LOOPERS];
  loop_result res;

  memset(&r, 0, sizeof r);
  memset(ls, 0, sizeof ls);
  memset(&res, 0, sizeof res);
  r.pool = p;
  r.hold_us = hold_us;
  r.sleep_ms = sleep_ms;
  atomic_store(&r.last, -1);
  for (int i = 0; i < n; i++) {
    ls[i].run = &r;
    ls[i].id = i;
    CU_ASSERT_FATAL(pthread_create(&ls[i].thread, NULL, looper_main, &ls[i]) ==
                    0);
  }
  tu_sleep_ms(run_ms); /* the length of the run, not a synchronisation */
  atomic_store(&r.stop, 1);
  res.min_ops = -1;
  for (int i = 0; i < n; i++) {
    pthread_join(ls[i].thread, NULL);
    res.ops += ls[i].ops;
    if (res.min_ops < 0 || ls[i].ops < res.min_ops)
      res.min_ops = ls[i].ops;
    if (ls[i].ops > res.max_ops)
      res.max_ops = ls[i].ops;
    if (ls[i].worst_wait_us > res.worst_wait_us)
      res.worst_wait_us = ls[i].worst_wait_us;
  }
  res.handoffs = atomic_load(&r.handoffs);
  res.errors = atomic_load(&r.errors);
  res.last_err = atomic_load(&r.last_err);
  return res;
}

static void print_run(const char *what, const loop_result *r, int run_ms) {
  printf("\nFIGURE: %s: %d hand-offs in %d checkouts over %d ms, per thread "
         "%d..%d, longest wait %lld us\n",
         what, r->handoffs, r->ops, run_ms, r->min_ops, r->max_ops,
         (long long)r->worst_wait_us);
  if (r->errors)
    fprintf(stderr, "%s: %d errors, the last %s\n", what, r->errors,
            cpool_err_name(r->last_err));
}

/* ---- the tests --------------------------------------------------------- */

/* Two threads come straight back (a 20 us hold): each earns its turn up
 * to 20 ms, so the slot changes hands about every 20 ms, against every
 * 250 us or so with turns of 250 us exactly (the same run, for
 * comparison: at least 4 times as many hand-offs there). */
static void test_earned_turn_is_long(void) {
  enum { RUN_MS = 400, HOLD_US = 20, MAX_US = 20000 };
  cpool_t *earned = open_turns(250, MAX_US);
  CU_ASSERT_PTR_NOT_NULL_FATAL(earned);
  loop_result e = run_loopers(earned, 2, HOLD_US, 0, RUN_MS);
  print_run("two callers, turns earned up to 20 ms", &e, RUN_MS);
  tu_assert_all_slots_free(earned, 1);
  TU_ASSERT_CODE(cpool_close(earned, 0), 0);

  cpool_t *fixed = open_turns(250, 250);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fixed);
  loop_result f = run_loopers(fixed, 2, HOLD_US, 0, RUN_MS);
  print_run("two callers, turns of 250 us", &f, RUN_MS);
  tu_assert_all_slots_free(fixed, 1);
  TU_ASSERT_CODE(cpool_close(fixed, 0), 0);

  TU_ASSERT_EQ(e.errors, 0);
  TU_ASSERT_EQ(f.errors, 0);
  /* About RUN_MS / 20 ms = 20 hand-offs; a thread that is not scheduled
   * for a while ends its turn early, so allow four times that. */
  TU_ASSERT_INT(e.handoffs, <=, 4 * RUN_MS * 1000 / MAX_US);
  TU_ASSERT_INT(e.handoffs, >=, 2); /* both were served */
  TU_ASSERT_INT(e.min_ops, >, 0);
  TU_ASSERT_INT(f.handoffs, >=, 4 * e.handoffs);
  /* A turn, not the whole run: the wait is about one turn. */
  TU_ASSERT_INT(e.worst_wait_us, <, (MAX_US + 300000));
}

/* Two threads that hold the slot 2 ms, longer than handoff_after_us:
 * their turns end at their next checkin however long handoff_max_us is,
 * and the slot alternates, as with strict FIFO. */
static void test_slow_caller_short_turn(void) {
  enum { RUN_MS = 300, SLEEP_MS = 2 };
  cpool_t *p = open_turns(250, 100000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_result r = run_loopers(p, 2, 0, SLEEP_MS, RUN_MS);
  print_run("two callers holding 2 ms, turns of 250 us earned up to "
            "100 ms",
            &r, RUN_MS);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  TU_ASSERT_EQ(r.errors, 0);
  TU_ASSERT_INT(r.ops, >=, 20);
  /* Nearly every checkout is a hand-off (the first of each thread's is
   * not, and one may be lost at the end). */
  TU_ASSERT_INT(r.handoffs * 4, >=, r.ops * 3);
  TU_ASSERT_INT(r.worst_wait_us, <, 100000);
}

/* Many waiters shorten turns: with 16 threads on one slot, a waiter
 * waits for about 15 turns, so turns are cut to 4/15 of handoff_max_us
 * (WAIT_TURNS in pool.c), about 5 ms: some 110 hand-offs in 600 ms
 * against 30 with 20 ms turns. */
static void test_queue_shortens_turns(void) {
  enum { RUN_MS = 600, HOLD_US = 20, MAX_US = 20000, THREADS = 16 };
  cpool_t *p = open_turns(250, MAX_US);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_result r = run_loopers(p, THREADS, HOLD_US, 0, RUN_MS);
  print_run("16 callers on one slot, turns earned up to 20 ms", &r, RUN_MS);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  TU_ASSERT_EQ(r.errors, 0);
  TU_ASSERT_INT(r.handoffs, >=, 2 * RUN_MS * 1000 / MAX_US);
  TU_ASSERT_INT(r.min_ops, >, 0); /* nobody starved */
}

/* A caller with a turn that could last 10 s, and a waiter with a 100 ms
 * timeout: the turn is cut short before the waiter's deadline (2 x
 * handoff_after_us before it), and the waiter is served instead of timing
 * out.  (Usually at about 96 ms; sooner if its poll for abandoned slots
 * finds the slot parked between two of the caller's checkouts.)  The
 * waiter may win the slot at once instead (it is woken when the looper
 * checks in without a turn yet): such a round is run again. */
static void test_deadline_cuts_turn(void) {
  enum { TIMEOUT_MS = 100, ROUNDS = 3, TRIES = 20 };
  cpool_t *p = open_turns(2000, 10000000);
  loop_run r;
  looper l;
  int measured = 0, tries = 0, timeouts = 0;
  int64_t shortest_us = -1;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&r, 0, sizeof r);
  memset(&l, 0, sizeof l);
  r.pool = p;
  r.hold_us = 20;
  atomic_store(&r.last, -1);
  l.run = &r;
  l.id = 0;
  CU_ASSERT_FATAL(pthread_create(&l.thread, NULL, looper_main, &l) == 0);
  while (measured < ROUNDS && tries < TRIES) {
    cpool_conn_t *c = NULL;
    int64_t t0;
    int rc;

    tries++;
    /* The looper has the slot, or has just had it: our own turn (from
     * the last round) cannot take it back from the fast path. */
    TU_WAIT(atomic_load(&r.last) == 0, 5000);
    t0 = tu_now_us();
    rc = cpool_checkout(p, &c, TIMEOUT_MS, NULL);
    int64_t waited = tu_now_us() - t0;
    if (rc == CPOOL_ETIMEDOUT) {
      timeouts++;
      measured++;
      continue;
    }
    TU_ASSERT_CODE(rc, 0);
    if (rc != 0)
      break;
    atomic_store(&r.last, 1);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    /* Served from the queue, this thread has a turn of its own (2 ms):
     * let it run out, so that it queues next time instead of barging. */
    tu_sleep_ms(6);
    if (waited < 10000)
      continue; /* served at once: the looper had no turn */
    measured++;
    if (shortest_us < 0 || waited < shortest_us)
      shortest_us = waited;
  }
  atomic_store(&r.stop, 1);
  pthread_join(l.thread, NULL);
  printf("\nFIGURE: a waiter with a %d ms timeout beside a caller whose "
         "turn could last 10 s: %d of %d rounds served (%d tries), the "
         "shortest wait %lld us\n",
         TIMEOUT_MS, measured - timeouts, measured, tries,
         (long long)shortest_us);
  TU_ASSERT_EQ(atomic_load(&r.errors), 0);
  TU_ASSERT_EQ(measured, ROUNDS);
  TU_ASSERT_EQ(timeouts, 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

CU_TestInfo turns_tests[] = {
    {"earned_turn_is_long", test_earned_turn_is_long},
    {"slow_caller_short_turn", test_slow_caller_short_turn},
    {"queue_shortens_turns", test_queue_shortens_turns},
    {"deadline_cuts_turn", test_deadline_cuts_turn},
    CU_TEST_INFO_NULL,
};
