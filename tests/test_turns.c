/*
 * Turns (src/pool.c, turn_earn): a caller served from the queue, or
 * barging past it, may keep taking connections ahead of the waiters for a
 * turn.  The turn starts at handoff_after_us and each checkout within it
 * earns another handoff_after_us, up to handoff_max_us (shorter when many
 * wait), and it never keeps the oldest waiter past its deadline.  So a
 * caller that comes straight back keeps its connection for a long turn,
 * and one that comes back slowly hands it over every time.
 *
 * The tests run threads that loop on a pool of one slot, and count what
 * the pool did: checkouts that queued (cpool_stats' waits: one per turn
 * that ended, or per hand-off), how long each thread kept the slot before
 * another had it (its turn), and checkouts that kept the slot past a
 * waiter.  Not thread switches alone: on a busy machine the scheduler
 * switches threads when nobody waits.  Holding the slot is the workload
 * here (a spin, or a sleep for the slow caller), not a stand-in for
 * synchronisation.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* A pool of size slots (max_us 0: the default). */
static cpool_t *open_turns_n(int size, int after_us, int max_us) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), size);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1;
  cfg.handoff_after_us = after_us;
  cfg.handoff_max_us = max_us;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

static cpool_t *open_turns(int after_us, int max_us) {
  return open_turns_n(1, after_us, max_us);
}

/* ---- threads that loop on one slot ------------------------------------- */

enum { MAX_LOOPERS = 16, MAX_TURNS = 512 };

typedef struct loop_run {
  cpool_t *pool;
  int hold_us;  /* spin this long with the slot ... */
  int sleep_ms; /* ... or sleep this long (the slow caller) */
  /* Slow requests: in each turn, the first checkout at or after
   * slow_at_us[i] into the turn holds slow_us[i] (0: none). */
  int slow_at_us[2], slow_us[2];
  atomic_int stop;
  atomic_int pause;   /* loopers do not check out while set */
  atomic_int holding; /* loopers holding the slot now */
  atomic_int last;    /* the thread that checked out last, -1 none */
  atomic_int kept;    /* checkouts that kept the slot past a waiter */
  atomic_int ops;     /* checkouts by all loopers */
  atomic_int errors, last_err;
} loop_run;

typedef struct looper {
  loop_run *run;
  int id;
  pthread_t thread;
  int ops;
  int slow_done[2]; /* slow requests made in its current turn */
  int64_t worst_wait_us;
  int nturns;
  int64_t turns_us[MAX_TURNS]; /* how long each of its turns lasted */
} looper;

static void *looper_main(void *arg) {
  looper *l = arg;
  loop_run *r = l->run;
  int64_t turn_start = 0, last_checkin = 0;
  int waiters_at_checkin = 0;

  while (!atomic_load(&r->stop)) {
    if (atomic_load(&r->pause)) {
      sched_yield();
      continue;
    }
    cpool_conn_t *c = NULL;
    cpool_stats_t st;
    int64_t t0 = tu_now_us();
    int rc = cpool_checkout(r->pool, &c, 5000, NULL);
    int64_t t1 = tu_now_us();

    if (rc != 0) {
      atomic_fetch_add(&r->errors, 1);
      atomic_store(&r->last_err, rc);
      continue;
    }
    atomic_fetch_add(&r->holding, 1);
    if (t1 - t0 > l->worst_wait_us)
      l->worst_wait_us = t1 - t0;
    if (atomic_exchange(&r->last, l->id) != l->id) {
      l->slow_done[0] = l->slow_done[1] = 0;
      /* Another thread had it since our last checkout: a new turn. */
      if (turn_start != 0 && l->nturns < MAX_TURNS)
        l->turns_us[l->nturns++] = last_checkin - turn_start;
      turn_start = t1;
    } else if (waiters_at_checkin > 0) {
      atomic_fetch_add(&r->kept, 1);
    }
    l->ops++;
    atomic_fetch_add(&r->ops, 1);
    if (r->sleep_ms > 0) {
      tu_sleep_ms(r->sleep_ms);
    } else {
      int hold = r->hold_us;
      for (int k = 0; k < 2; k++)
        if (r->slow_us[k] > 0 && !l->slow_done[k] &&
            t1 - turn_start >= r->slow_at_us[k]) {
          hold = r->slow_us[k];
          l->slow_done[k] = 1;
          break;
        }
      int64_t until = tu_now_us() + hold;
      while (tu_now_us() < until)
        ;
    }
    waiters_at_checkin = cpool_stats(r->pool, &st) == 0 ? st.waiters : 0;
    atomic_fetch_sub(&r->holding, 1);
    last_checkin = tu_now_us();
    if (cpool_checkin(r->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&r->errors, 1);
  }
  return NULL;
}

static void loopers_start(loop_run *r, looper *ls, int n) {
  for (int i = 0; i < n; i++) {
    ls[i].run = r;
    ls[i].id = i;
    CU_ASSERT_FATAL(pthread_create(&ls[i].thread, NULL, looper_main, &ls[i]) ==
                    0);
  }
}

static void loop_run_init(loop_run *r, cpool_t *p, int hold_us, int sleep_ms) {
  memset(r, 0, sizeof *r);
  r->pool = p;
  r->hold_us = hold_us;
  r->sleep_ms = sleep_ms;
  atomic_store(&r->last, -1);
}

typedef struct loop_result {
  int ops, min_ops, max_ops, kept, errors, last_err, nturns;
  uint64_t waits;
  int64_t worst_wait_us, median_turn_us;
} loop_result;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* n threads loop on p for run_ms. */
static loop_result run_loopers(cpool_t *p, int n, int hold_us, int sleep_ms,
                               int run_ms) {
  static looper ls[MAX_LOOPERS];
  static int64_t all[MAX_LOOPERS * MAX_TURNS];
  loop_run r;
  loop_result res;
  cpool_stats_t st0, st1;

  loop_run_init(&r, p, hold_us, sleep_ms);
  memset(ls, 0, sizeof ls);
  memset(&res, 0, sizeof res);
  TU_ASSERT_CODE(cpool_stats(p, &st0), 0);
  loopers_start(&r, ls, n);
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
    for (int k = 0; k < ls[i].nturns; k++)
      all[res.nturns++] = ls[i].turns_us[k];
  }
  TU_ASSERT_CODE(cpool_stats(p, &st1), 0);
  res.waits = st1.waits - st0.waits;
  qsort(all, (size_t)res.nturns, sizeof all[0], cmp_i64);
  res.median_turn_us = res.nturns > 0 ? all[res.nturns / 2] : -1;
  res.kept = atomic_load(&r.kept);
  res.errors = atomic_load(&r.errors);
  res.last_err = atomic_load(&r.last_err);
  return res;
}

static void print_run(const char *what, const loop_result *r, int run_ms) {
  printf("\nFIGURE: %s: %d checkouts over %d ms, %llu queued, %d turns "
         "(median %lld us), %d kept past a waiter, per thread %d..%d, "
         "longest wait %lld us\n",
         what, r->ops, run_ms, (unsigned long long)r->waits, r->nturns,
         (long long)r->median_turn_us, r->kept, r->min_ops, r->max_ops,
         (long long)r->worst_wait_us);
  if (r->errors)
    fprintf(stderr, "%s: %d errors, the last %s\n", what, r->errors,
            cpool_err_name(r->last_err));
}

/* ---- the tests --------------------------------------------------------- */

/* Two threads come straight back (a 20 us hold): each earns its turn up
 * to 20 ms, so the slot changes hands about every 20 ms, against every
 * 2 ms with turns of 2 ms exactly (the same run, for comparison).  The
 * turn starts at handoff_after_us, 2 ms here: with the default 250 us a
 * thread preempted early in its turn (on a machine busy with other tests)
 * loses it before it has earned more, and the median turn collapsed to
 * 138 us in one CI run.  Asserted on the median turn; the counts of
 * queued checkouts are compared too when the threads did overlap in the
 * run with short turns (it queued 100 times or more). */
static void test_earned_turn_is_long(void) {
  enum { RUN_MS = 400, HOLD_US = 20, AFTER_US = 2000, MAX_US = 20000 };
  cpool_t *earned = open_turns(AFTER_US, MAX_US);
  CU_ASSERT_PTR_NOT_NULL_FATAL(earned);
  loop_result e = run_loopers(earned, 2, HOLD_US, 0, RUN_MS);
  print_run("two callers, turns earned up to 20 ms", &e, RUN_MS);
  tu_assert_all_slots_free(earned, 1);
  TU_ASSERT_CODE(cpool_close(earned, 0), 0);

  cpool_t *fixed = open_turns(AFTER_US, AFTER_US);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fixed);
  loop_result f = run_loopers(fixed, 2, HOLD_US, 0, RUN_MS);
  print_run("two callers, turns of 2 ms", &f, RUN_MS);
  tu_assert_all_slots_free(fixed, 1);
  TU_ASSERT_CODE(cpool_close(fixed, 0), 0);

  TU_ASSERT_EQ(e.errors, 0);
  TU_ASSERT_EQ(f.errors, 0);
  TU_ASSERT_INT(e.min_ops, >, 0); /* both were served */
  TU_ASSERT_INT(e.nturns, >=, 2);
  /* Only if the two threads contended: most checkouts made while the
   * other waited.  With one busy loop on the other CPU they share one CPU
   * and take turns by the scheduler's 4 ms ticks, hardly ever queued in
   * the pool (10% of checkouts past a waiter, against over 95% on a
   * quiet machine), and the pool decides nothing. */
  if (e.kept * 2 < e.ops) {
    printf("\nNOTE: the two threads hardly contended (%d of %d checkouts "
           "past a waiter): turns not judged\n",
           e.kept, e.ops);
    return;
  }
  /* Two fixed turns' worth at least (the fixed median is about 2 ms;
   * earned, 20 ms on a quiet machine, 5.8 ms seen with three busy loops
   * on the two CPUs). */
  TU_ASSERT_INT(e.median_turn_us, >=, 2 * AFTER_US);
  if (f.waits >= 100)
    TU_ASSERT_INT(f.waits, >=, 2 * e.waits);
  else
    printf("\nNOTE: turns of 2 ms queued only %llu times: the threads "
           "hardly overlapped, no comparison of counts\n",
           (unsigned long long)f.waits);
}

/* Two threads that hold the slot 2 ms, longer than handoff_after_us:
 * their turns end at their next checkin however long handoff_max_us is,
 * and a thread that found the other waiting at its checkin does not keep
 * the slot.  (It may once after a moment when nobody waited: a first
 * barge begins a turn.) */
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
  TU_ASSERT_INT(r.ops, >=, 10);
  TU_ASSERT_INT(r.kept * 10, <=, r.ops);
  TU_ASSERT_INT(r.worst_wait_us, <, 3000000);
}

/* Many waiters shorten turns: with 16 threads on one slot, a waiter
 * waits for about 15 turns, so turns are cut to 4/15 of handoff_max_us
 * (WAIT_TURNS in pool.c): about 5 ms instead of 20.  The median turn
 * (turns stolen at their start by the waiters' poll included) must be
 * well under 20 ms. */
static void test_queue_shortens_turns(void) {
  enum { RUN_MS = 600, HOLD_US = 20, MAX_US = 20000, THREADS = 16 };
  cpool_t *p = open_turns(250, MAX_US);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_result r = run_loopers(p, THREADS, HOLD_US, 0, RUN_MS);
  print_run("16 callers on one slot, turns earned up to 20 ms", &r, RUN_MS);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  TU_ASSERT_EQ(r.errors, 0);
  TU_ASSERT_INT(r.nturns, >=, 10);
  TU_ASSERT_INT(r.median_turn_us, <, MAX_US * 6 / 10);
  TU_ASSERT_INT(r.min_ops, >, 0); /* nobody starved */
}

/* A caller with a turn that could last 10 s (a looper), and a waiter with
 * a 100 ms timeout behind it, alone or behind another that waits without
 * a deadline (ahead): turns are cut a quarter of the timeout before the
 * deadline, for the oldest waiter or any other, and the waiter is served
 * instead of timing out.  Each round: this thread holds the slot (the
 * looper paused meanwhile), lets the looper queue, then the waiters, and
 * checks in: the looper is served from the queue, so its turn begins,
 * and earns up to 10 s.  A round in which the waiter was served early
 * (its poll found the slot parked between two of the looper's checkouts)
 * does not test the cut: it is run again, up to TRIES. */
typedef struct cut_result {
  int rounds, served, timeouts, early;
  int64_t shortest_ms, longest_ms;
} cut_result;

static cut_result deadline_rounds(int ahead, int hold_us, int after_us,
                                  const int slow_at_us[2], const int slow_us[2],
                                  int timeout_ms, int rounds) {
  enum { TRIES = 25 };
  cpool_t *p = open_turns(after_us, 10000000);
  static looper l;
  loop_run r;
  cut_result res = {.shortest_ms = -1, .longest_ms = -1};

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_run_init(&r, p, hold_us, 0);
  for (int k = 0; k < 2; k++) {
    r.slow_at_us[k] = slow_at_us ? slow_at_us[k] : 0;
    r.slow_us[k] = slow_us ? slow_us[k] : 0;
  }
  memset(&l, 0, sizeof l);
  loopers_start(&r, &l, 1);
  for (int t = 0; t < TRIES && res.rounds - res.early < rounds; t++) {
    cpool_conn_t *c = NULL;
    cpool_stats_t st;
    tu_waiter w, first;

    atomic_store(&r.pause, 1);
    TU_WAIT(atomic_load(&r.holding) == 0, 5000);
    TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
    atomic_store(&r.last, -1); /* the looper's next checkout: a new turn */
    if (c == NULL)
      break;
    atomic_store(&r.pause, 0);
    TU_WAIT_STATS(p, st, st.waiters == 1, 5000); /* the looper */
    if (ahead) {
      TU_ASSERT_EQ(tu_waiter_start(&first, p, CPOOL_WAIT_FOREVER, 1, NULL), 0);
      TU_WAIT_STATS(p, st, st.waiters == 2, 5000);
    }
    TU_ASSERT_EQ(tu_waiter_start(&w, p, timeout_ms, 1, NULL), 0);
    TU_WAIT_STATS(p, st, st.waiters == 2 + ahead, 5000);
    TU_ASSERT_EQ(st.waiters, 2 + ahead);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    tu_waiter_join(&w);
    if (ahead) {
      tu_waiter_join(&first);
      TU_ASSERT_CODE(first.rc, 0);
    }
    res.rounds++;
    if (w.rc != 0) {
      TU_ASSERT_CODE(w.rc, CPOOL_ETIMEDOUT);
      res.timeouts++;
      continue;
    }
    int64_t waited = w.t1_ms - w.t0_ms;
    res.served++;
    res.early += waited < timeout_ms / 4;
    if (res.shortest_ms < 0 || waited < res.shortest_ms)
      res.shortest_ms = waited;
    if (waited > res.longest_ms)
      res.longest_ms = waited;
  }
  atomic_store(&r.stop, 1);
  pthread_join(l.thread, NULL);
  TU_ASSERT_EQ(atomic_load(&r.errors), 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  return res;
}

static void print_cut(const char *what, const cut_result *c) {
  printf("\nFIGURE: %s: %d rounds, %d served (%d early), %d timed out; "
         "waits %lld to %lld ms\n",
         what, c->rounds, c->served, c->early, c->timeouts,
         (long long)c->shortest_ms, (long long)c->longest_ms);
}

/* No round may time out.  If every round was served early, the cut was
 * not tested, and the test only shows that: seen on a loaded machine,
 * where the looper, preempted early in its turn, lost it before the cut.
 * Said, not failed. */
static void judge_cut(const char *what, const cut_result *c) {
  print_cut(what, c);
  TU_ASSERT_EQ(c->timeouts, 0);
  if (c->served - c->early == 0)
    printf("\nNOTE: every round was served early: the cut was not "
           "tested this time\n");
}

static void test_deadline_cuts_turn(void) {
  cut_result c = deadline_rounds(0, 20, 2000, NULL, NULL, 100, 3);
  judge_cut("a waiter with a 100 ms timeout behind a caller whose turn could "
            "last 10 s",
            &c);
}

/* The same with a waiter without a deadline ahead of it: the cut is for
 * every waiter's deadline, not only the oldest's. */
static void test_deadline_cuts_turn_behind(void) {
  cut_result c = deadline_rounds(1, 20, 2000, NULL, NULL, 100, 3);
  judge_cut("a waiter with a 100 ms timeout behind one without a deadline "
            "and a caller whose turn could last 10 s",
            &c);
}

/* The caller's requests are mostly short, but 2 ms into its turn one
 * takes 8 ms, and 25 ms in one takes 16 ms (slow commands).  A waiter
 * with a 40 ms timeout has its cut a quarter of that, 10 ms, before its
 * deadline (30 ms), moved earlier by the holder's longest request in the
 * turn (8 ms) to 22 ms: the holder's turn is over before its second slow
 * request, and the waiter is served after about 22 ms.  Without that
 * allowance the second one begins before the cut and ends past the
 * deadline. */
static void test_deadline_cut_allows_long_hold(void) {
  /* Under the sanitizers every time is 4 times longer (the logic is the
   * same at any scale): 40 ms left too little room for a loaded host. */
  enum { K = TU_SANITIZED ? 4 : 1 };
  static const int slow_at[2] = {2000 * K, 25000 * K},
                   slow[2] = {8000 * K, 16000 * K};
  cut_result c = deadline_rounds(0, 20, 250, slow_at, slow, 40 * K, 4);
  char what[160];
  snprintf(what, sizeof what,
           "a waiter with a %d ms timeout behind a caller with a request of %d ms "
           "%d ms into its turn and one of %d ms at %d ms",
           40 * K, 8 * K, 2 * K, 16 * K, 25 * K);
  judge_cut(what, &c);
}

/* A caller within a long turn (another thread waits without a deadline)
 * stops calling after 20000 checkouts, its slot parked as its own until
 * the turn ends, over a second away; a waiter with a 50 ms timeout queues
 * behind: the slot is the holder's only until that waiter's cut (a
 * quarter of its timeout before its deadline), then the first waiter has
 * it, gives it back, and the second is served in time.  The first waiter
 * polls for the slot by then at intervals of hundreds of ms: the new waiter
 * must wake it for its cut. */
static void test_parked_in_turn_yields_to_deadline(void) {
  enum { TIMEOUT_MS = 50 };
  cpool_t *p = open_turns(2000, 10000000);
  static looper l;
  loop_run r;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  tu_waiter first, w;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_run_init(&r, p, 20, 0);
  memset(&l, 0, sizeof l);
  atomic_store(&r.pause, 1);
  loopers_start(&r, &l, 1);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  atomic_store(&r.pause, 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000); /* the looper queues */
  TU_ASSERT_EQ(tu_waiter_start(&first, p, CPOOL_WAIT_FOREVER, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 2, 5000);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  /* Served from the queue: its turn earns 250 us a checkout. */
  TU_WAIT(atomic_load(&r.ops) >= 20000, 10000);
  atomic_store(&r.pause, 1);
  TU_WAIT(atomic_load(&r.holding) == 0, 5000); /* parked, and left */
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  if (st.waiters != 1) /* the first was served: the turn ended early */
    printf("\nNOTE: the looper's turn ended early (waiters %d): the "
           "protection was not tested\n",
           st.waiters);
  TU_ASSERT_EQ(tu_waiter_start(&w, p, TIMEOUT_MS, 1, NULL), 0);
  tu_waiter_join(&w);
  tu_waiter_join(&first);
  TU_ASSERT_CODE(first.rc, 0);
  printf("\nFIGURE: a slot parked within a turn and left, a waiter with a "
         "%d ms timeout: %s after %lld ms\n",
         TIMEOUT_MS, cpool_err_name(w.rc), (long long)(w.t1_ms - w.t0_ms));
  TU_ASSERT_CODE(w.rc, 0);
  atomic_store(&r.stop, 1);
  pthread_join(l.thread, NULL);
  TU_ASSERT_EQ(atomic_load(&r.errors), 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* CoDel (queue_target_ms 10): a waiter served at the end of a turn must
 * not look like a standing queue, so turns are kept to half the target.
 * Two threads hammer one slot for a second: nothing is shed. */
static void test_codel_with_turns(void) {
  enum { RUN_MS = 1000 };
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1;
  cfg.queue_target_ms = 10;
  cfg.queue_interval_ms = 100;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  loop_result r = run_loopers(p, 2, 20, 0, RUN_MS);
  print_run("two callers, CoDel target 10 ms", &r, RUN_MS);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  if (r.errors)
    TU_ASSERT_CODE(r.last_err, 0); /* names the error */
  TU_ASSERT_EQ(r.errors, 0);
  TU_ASSERT_INT(r.waits, >=, 20); /* they did take turns */
  /* Turns of 5 ms (25 ms without the cap); a thread preempted while it
   * holds the slot makes its turn look longer. */
  TU_ASSERT_INT(r.median_turn_us, <=, 12000);
}

/* Work conservation: a thread with a long earned turn that stops calling
 * leaves its slot to the oldest waiter handoff_after_us after its last
 * checkin, not at its turn's end.  Thread A is served from the queue (an
 * earned turn), then, with B waiting, checks in and out 500 times as fast
 * as it can (earning a turn of 10 s, the cap), and stops.  B must have the
 * slot well within a second of A's last checkin (before: some 10 s).
 * handoff_after_us is 50 ms: A's turn must outlast B's queuing before A
 * starts to cycle (slow under TSan).  A round where A was preempted for
 * longer than that anyway loses its turn (its nowait checkout is refused)
 * and is run again. */
enum { WC_AFTER_US = 50000, WC_CYCLES = 500 };

typedef struct wc_run {
  cpool_t *pool;
  sem_t go;
  _Atomic int served; /* A has the slot, from the queue */
  int lost_turn;      /* A's nowait checkout was refused */
  int rc;
  int64_t last_checkin_ms;
} wc_run;

static void *wc_holder(void *arg) {
  wc_run *r = arg;
  cpool_conn_t *c = NULL;
  r->rc = cpool_checkout(r->pool, &c, 5000, NULL);
  if (r->rc != 0) {
    atomic_store(&r->served, -1);
    return NULL;
  }
  atomic_store(&r->served, 1);
  tu_sem_wait_ms(&r->go, 10000);
  for (int i = 0; i < WC_CYCLES; i++) {
    cpool_checkin(r->pool, c, CPOOL_CONN_OK);
    if (cpool_checkout(r->pool, &c, CPOOL_NOWAIT, NULL) != 0) {
      r->lost_turn = 1;
      r->last_checkin_ms = tu_now_ms();
      return NULL;
    }
  }
  r->last_checkin_ms = tu_now_ms();
  cpool_checkin(r->pool, c, CPOOL_CONN_OK);
  return NULL;
}

/* One round: 1 if judged (B's wait after A stopped in *gap_ms), 0 if A
 * lost its turn. */
static int wc_round(int64_t *gap_ms) {
  cpool_t *p = open_turns(WC_AFTER_US, 10000000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  cpool_conn_t *c0 = NULL;
  cpool_stats_t st;
  wc_run r = {.pool = p};
  sem_init(&r.go, 0, 0);
  TU_ASSERT_CODE(cpool_checkout(p, &c0, 1000, NULL), 0);
  pthread_t a;
  TU_ASSERT_EQ(pthread_create(&a, NULL, wc_holder, &r), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  TU_ASSERT_CODE(cpool_checkin(p, c0, CPOOL_CONN_OK), 0);
  TU_WAIT(atomic_load(&r.served), 5000);
  TU_ASSERT_EQ(atomic_load(&r.served), 1);
  TU_ASSERT_CODE(r.rc, 0);
  tu_waiter b;
  TU_ASSERT_EQ(tu_waiter_start(&b, p, 20000, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  sem_post(&r.go);
  pthread_join(a, NULL);
  tu_waiter_join(&b);
  TU_ASSERT_CODE(b.rc, 0);
  *gap_ms = b.t1_ms - r.last_checkin_ms;
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  sem_destroy(&r.go);
  return !r.lost_turn;
}

static void test_stopped_caller_leaves_slot(void) {
  int judged = 0;
  for (int round = 0; round < 5 && judged < 2; round++) {
    int64_t gap = 0;
    if (!wc_round(&gap))
      continue;
    judged++;
    printf("\n    FIGURE: waiter served %lld ms after the holder stopped "
           "(reserve %d us)", (long long)gap, WC_AFTER_US);
    TU_ASSERT_INT(gap, <, 1000);
  }
  TU_ASSERT_INT(judged, >=, 1); /* A kept its turn in at least one round */
}

/* Work conservation at the queue's tail: two slots come free while the
 * only waiter, woken for the first, has not run yet, and a caller whose
 * turn is over queues beside the second.  Nobody else waits: the caller
 * must take the second slot at once, not sleep until the woken waiter runs
 * and wakes it.  The woken waiter is kept from running by a signal handler
 * that blocks in its thread (it sleeps in the pool, without the lock), so
 * a caller queued without a wake-up would time out beside a free slot.
 * The caller is a thread of its own: no turn from an earlier test. */
enum { SPARE_AFTER_US = 1000, SPARE_TIMEOUT_MS = 500 };
static int spare_in[2], spare_out[2]; /* to the handler, from it */

static void spare_block(int sig) {
  char b = 0;
  (void)sig;
  if (write(spare_out[1], &b, 1) != 1)
    return;
  while (read(spare_in[0], &b, 1) < 0) /* until the test lets it go */
    ;
}

typedef struct spare_run {
  cpool_t *pool;
  tu_waiter h;
  int h_held;         /* h is blocked in spare_block */
  const char *failed; /* the step that went wrong, NULL if none */
  int rc;             /* the caller's last checkout, past its turn */
  int64_t took_ms;
} spare_run;

#define SPARE_STEP(r, ok, what)                                                \
  do {                                                                         \
    if (!(ok)) {                                                               \
      (r)->failed = (what);                                                    \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void *spare_caller(void *arg) {
  spare_run *r = arg;
  cpool_t *p = r->pool;
  cpool_conn_t *c1 = NULL, *c2 = NULL, *c = NULL;
  cpool_stats_t st;
  char b = 0;

  /* Both slots out while nobody waits (no turn); h queues, and is held. */
  SPARE_STEP(r, cpool_checkout(p, &c1, 1000, NULL) == 0, "checkout c1");
  SPARE_STEP(r, cpool_checkout(p, &c2, 1000, NULL) == 0, "checkout c2");
  SPARE_STEP(r, tu_waiter_start(&r->h, p, 10000, 1, NULL) == 0, "start h");
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  SPARE_STEP(r, st.waiters == 1, "h queues");
  SPARE_STEP(r, pthread_kill(r->h.thread, SIGUSR1) == 0, "signal h");
  struct pollfd pf = {.fd = spare_out[0], .events = POLLIN};
  SPARE_STEP(r, poll(&pf, 1, 5000) == 1 && read(spare_out[0], &b, 1) == 1,
             "h held");
  r->h_held = 1;

  /* c2 is free and h woken for it; this thread barges (a turn begins)
   * and takes it, holds it past its turn, and gives both back: two free,
   * one waiter woken. */
  SPARE_STEP(r, cpool_checkin(p, c2, CPOOL_CONN_OK) == 0, "checkin c2");
  int64_t t0 = tu_now_us();
  SPARE_STEP(r, cpool_checkout(p, &c2, CPOOL_NOWAIT, NULL) == 0, "barge");
  TU_WAIT(tu_now_us() - t0 > 20 * SPARE_AFTER_US, 5000); /* the turn ends */
  SPARE_STEP(r, cpool_checkin(p, c2, CPOOL_CONN_OK) == 0, "checkin c2 again");
  SPARE_STEP(r, cpool_checkin(p, c1, CPOOL_CONN_OK) == 0, "checkin c1");
  SPARE_STEP(r, cpool_stats(p, &st) == 0 && st.idle == 2 && st.waiters == 1,
             "two free, h waiting");

  /* Past its turn, it queues behind h: one slot is h's, the other its. */
  int64_t t1 = tu_now_ms();
  r->rc = cpool_checkout(p, &c, SPARE_TIMEOUT_MS, NULL);
  r->took_ms = tu_now_ms() - t1;
  if (r->rc == 0)
    SPARE_STEP(r, cpool_checkin(p, c, CPOOL_CONN_OK) == 0, "checkin c");
  return NULL;
}

static void test_past_turn_takes_spare_slot(void) {
  cpool_t *p = open_turns_n(2, SPARE_AFTER_US, 0);
  spare_run r = {.pool = p, .rc = 1};
  struct sigaction sa = {.sa_handler = spare_block}, old;
  pthread_t t;
  char b = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_FATAL(pipe(spare_in) == 0 && pipe(spare_out) == 0);
  sigemptyset(&sa.sa_mask);
  CU_ASSERT_FATAL(sigaction(SIGUSR1, &sa, &old) == 0);
  CU_ASSERT_FATAL(pthread_create(&t, NULL, spare_caller, &r) == 0);
  pthread_join(t, NULL);
  if (r.h_held) /* h runs */
    CU_ASSERT_FATAL(write(spare_in[1], &b, 1) == 1);
  if (r.h.thread) {
    tu_waiter_join(&r.h);
    TU_ASSERT_CODE(r.h.rc, 0);
  }
  sigaction(SIGUSR1, &old, NULL);
  for (int i = 0; i < 2; i++) {
    close(spare_in[i]);
    close(spare_out[i]);
  }
  if (r.failed)
    printf("\n    step failed: %s", r.failed);
  CU_ASSERT_PTR_NULL(r.failed);
  printf("\n    FIGURE: past its turn, beside a spare slot: %s after %lld ms",
         cpool_err_name(r.rc), (long long)r.took_ms);
  TU_ASSERT_CODE(r.rc, 0);
  tu_assert_all_slots_free(p, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* The holders' looks (internal.h): while a holder cycles within its turn,
 * the oldest waiter need not wake every poll period to look for a slot
 * parked past its reservation: the holder's checkins look for it, and its
 * own timer grows to CPOOL__POLL_SCALE_MAX periods.  A and B queue for
 * the only slot; A is served (a 10 s turn) and cycles on it for LOOK_MS
 * while B waits, the oldest waiter from then on; B counts how often it
 * slept (its voluntary context switches).  Polling every 1 ms it would
 * wake ~LOOK_MS times; with the looks, about LOOK_MS / 8.  When A stops,
 * nobody is left to look: B's own timer still finds the slot. */
enum { LOOK_AFTER_US = 1000, LOOK_MS = 300 };

typedef struct look_run {
  cpool_t *pool;
  _Atomic int served; /* A: 1 served, -1 failed */
  int lost_turn;      /* A's nowait checkout was refused */
  int64_t stop_ms;    /* A's last checkin */
  int b_rc;
  long b_sleeps; /* B's voluntary context switches in its checkout */
  int64_t b_ms;  /* when B was served */
} look_run;

static void *look_a(void *arg) {
  look_run *r = arg;
  cpool_conn_t *c = NULL;
  if (cpool_checkout(r->pool, &c, 5000, NULL) != 0) {
    atomic_store(&r->served, -1);
    return NULL;
  }
  atomic_store(&r->served, 1);
  int64_t until = tu_now_ms() + LOOK_MS;
  while (tu_now_ms() < until) {
    cpool_checkin(r->pool, c, CPOOL_CONN_OK);
    if (cpool_checkout(r->pool, &c, CPOOL_NOWAIT, NULL) != 0) {
      r->lost_turn = 1;
      break;
    }
  }
  r->stop_ms = tu_now_ms();
  if (!r->lost_turn)
    cpool_checkin(r->pool, c, CPOOL_CONN_OK);
  return NULL;
}

static void *look_b(void *arg) {
  look_run *r = arg;
  cpool_conn_t *c = NULL;
  struct rusage u0, u1;
  getrusage(RUSAGE_THREAD, &u0);
  r->b_rc = cpool_checkout(r->pool, &c, 20000, NULL);
  getrusage(RUSAGE_THREAD, &u1);
  r->b_ms = tu_now_ms();
  r->b_sleeps = u1.ru_nvcsw - u0.ru_nvcsw;
  if (r->b_rc == 0)
    cpool_checkin(r->pool, c, CPOOL_CONN_OK);
  return NULL;
}

/* One round: 1 if judged (A kept its turn), 0 if not. */
static int look_round(look_run *r) {
  cpool_t *p = open_turns(LOOK_AFTER_US, 10000000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  cpool_conn_t *c0 = NULL;
  cpool_stats_t st;
  pthread_t a, b;
  *r = (look_run){.pool = p};
  TU_ASSERT_CODE(cpool_checkout(p, &c0, 1000, NULL), 0);
  TU_ASSERT_EQ(pthread_create(&a, NULL, look_a, r), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(pthread_create(&b, NULL, look_b, r), 0);
  TU_WAIT_STATS(p, st, st.waiters == 2, 5000);
  TU_ASSERT_EQ(st.waiters, 2);
  TU_ASSERT_CODE(cpool_checkin(p, c0, CPOOL_CONN_OK), 0); /* to A */
  pthread_join(a, NULL);
  TU_ASSERT_EQ(atomic_load(&r->served), 1);
  pthread_join(b, NULL);
  TU_ASSERT_CODE(r->b_rc, 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  return !r->lost_turn;
}

static void test_holders_look_for_waiter(void) {
  int judged = 0;
  for (int round = 0; round < 5 && judged < 2; round++) {
    look_run r;
    if (!look_round(&r))
      continue;
    judged++;
    printf("\n    FIGURE: the waiter slept %ld times in %d ms of a holder's "
           "turn (a poll period is %d us); served %lld ms after it stopped",
           r.b_sleeps, LOOK_MS, LOOK_AFTER_US, (long long)(r.b_ms - r.stop_ms));
    TU_ASSERT_INT(r.b_sleeps, <=, LOOK_MS * 1000 / LOOK_AFTER_US / 2);
    TU_ASSERT_INT(r.b_ms - r.stop_ms, <, 1000);
  }
  TU_ASSERT_INT(judged, >=, 1); /* A kept its turn in at least one round */
}

CU_TestInfo turns_tests[] = {
    {"holders_look_for_waiter", test_holders_look_for_waiter},
    {"stopped_caller_leaves_slot", test_stopped_caller_leaves_slot},
    {"earned_turn_is_long", test_earned_turn_is_long},
    {"slow_caller_short_turn", test_slow_caller_short_turn},
    {"queue_shortens_turns", test_queue_shortens_turns},
    {"deadline_cuts_turn", test_deadline_cuts_turn},
    {"deadline_cuts_turn_behind", test_deadline_cuts_turn_behind},
    {"deadline_cut_allows_long_hold", test_deadline_cut_allows_long_hold},
    {"parked_in_turn_yields_to_deadline",
     test_parked_in_turn_yields_to_deadline},
    {"codel_with_turns", test_codel_with_turns},
    {"past_turn_takes_spare_slot", test_past_turn_takes_spare_slot},
    CU_TEST_INFO_NULL,
};
