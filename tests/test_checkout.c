/*
 * Checkout and checkin: nowait and waiting modes, FIFO hand-off, the
 * timeout-versus-checkin race, many threads, sync and async start, the
 * connection's socket and user data, IPv6 and Unix endpoints, 1024 slots.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/stdlib.h>

static ts_server *srv;

int checkout_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4 | TS_TCP6 | TS_UNIX);
  return srv ? 0 : -1;
}

int checkout_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

static cpool_t *open_pool(int size, cpool_start start, int handoff_after_us) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), size);
  cfg.start = start;
  cfg.handoff_after_us = handoff_after_us;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* ---- nowait and waiting ------------------------------------------------ */

static void test_nowait_checkedout(void) {
  cpool_t *p = open_pool(2, CPOOL_START_SYNC, 0);
  cpool_conn_t *a = NULL, *b = NULL, *c = NULL;
  cpool_stats_t st;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, CPOOL_NOWAIT, NULL), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &b, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT(a != b);
  CU_ASSERT(cpool_conn_slot(a) != cpool_conn_slot(b));
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), CPOOL_ECHECKEDOUT);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 100);
  CU_ASSERT_PTR_NULL(c);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.busy, 2);
  TU_ASSERT_EQ(st.idle, 0);
  TU_ASSERT_EQ(st.checkouts, 2);
  TU_ASSERT_EQ(st.checked_out_errors, 1);
  TU_ASSERT_EQ(st.waits, 0);
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT(c == a || cpool_conn_slot(c) == cpool_conn_slot(a));
  TU_ASSERT_CODE(cpool_checkin(p, b, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  tu_assert_all_slots_free(p, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_wait_timeout(void) {
  cpool_t *p = open_pool(1, CPOOL_START_SYNC, 0);
  cpool_conn_t *a = NULL, *b = NULL;
  cpool_stats_t st;
  int64_t t0, took;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, CPOOL_NOWAIT, NULL), 0);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkout(p, &b, 200, NULL), CPOOL_ETIMEDOUT);
  took = tu_now_ms() - t0;
  CU_ASSERT_PTR_NULL(b);
  TU_ASSERT_BETWEEN(took, 195, 200 + (TU_SANITIZED ? 2000 : 1000));
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.timeouts, 1);
  TU_ASSERT_EQ(st.waits, 1);
  TU_ASSERT_EQ(st.waiters, 0);
  TU_ASSERT_EQ(st.busy, 1);
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_wait_forever_gets_checkin(void) {
  cpool_t *p = open_pool(1, CPOOL_START_SYNC, 0);
  cpool_conn_t *a = NULL;
  cpool_stats_t st;
  tu_waiter w;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, CPOOL_NOWAIT, NULL), 0);
  TU_ASSERT_EQ(tu_waiter_start(&w, p, CPOOL_WAIT_FOREVER, 0, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  /* Still waiting a little later: forever means forever. */
  tu_sleep_ms(50);
  TU_ASSERT_EQ(w.rc, 1);
  /* Checked in from this thread, taken by the other one. */
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  tu_waiter_join(&w);
  TU_ASSERT_CODE(w.rc, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w.conn);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(w.conn), "handed over", 2000), 0);
  /* Any thread may check it in, not only the one that took it. */
  TU_ASSERT_CODE(cpool_checkin(p, w.conn, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 2);
  TU_ASSERT_EQ(st.waits, 1);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* Waiters queued one after the other get the slot in that order. */
static void fifo_order(int handoff_after_us) {
  enum { N = 6 };
  cpool_t *p = open_pool(1, CPOOL_START_SYNC, handoff_after_us);
  cpool_conn_t *a = NULL;
  _Atomic int seq = 0;
  cpool_stats_t st;
  tu_waiter w[N];

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &a, CPOOL_NOWAIT, NULL), 0);
  for (int i = 0; i < N; i++) {
    TU_ASSERT_EQ(tu_waiter_start(&w[i], p, 10000, 1, &seq), 0);
    /* The next one starts only once this one is queued. */
    TU_WAIT_STATS(p, st, st.waiters == i + 1, 5000);
    TU_ASSERT_EQ(st.waiters, i + 1);
  }
  TU_ASSERT_CODE(cpool_checkin(p, a, CPOOL_CONN_OK), 0);
  for (int i = 0; i < N; i++) {
    tu_waiter_join(&w[i]);
    TU_ASSERT_CODE(w[i].rc, 0);
    TU_ASSERT_CODE(w[i].checkin_rc, 0);
    TU_ASSERT_EQ(w[i].order, i);
  }
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_fifo_strict(void) {
  fifo_order(-1);
}
static void test_fifo_default_handoff(void) {
  fifo_order(0);
}

/* ---- the timeout-versus-checkin race ------------------------------------ */

typedef struct race {
  cpool_t *pool;
  sem_t go, done;
  atomic_int stop;
  int got, timedout, other, bad_checkin;
  int other_rc;
} race;

/* One checkout with a 1 ms timeout per round, against the main thread's
 * checkin landing anywhere around that deadline. */
static void *race_waiter(void *arg) {
  race *r = arg;

  for (;;) {
    cpool_conn_t *c = NULL;
    int rc;

    sem_wait(&r->go);
    if (atomic_load(&r->stop))
      break;
    rc = cpool_checkout(r->pool, &c, 1, NULL);
    if (rc == 0) {
      r->got++;
      if (cpool_checkin(r->pool, c, CPOOL_CONN_OK) != 0)
        r->bad_checkin++;
    } else if (rc == CPOOL_ETIMEDOUT) {
      r->timedout++;
    } else {
      r->other++;
      r->other_rc = rc;
    }
    sem_post(&r->done);
  }
  return NULL;
}

static void test_timeout_race_hammer(void) {
  const int max_rounds = 4000;
  const int64_t budget_ms = TU_SANITIZED ? 8000 : 5000;
  cpool_t *p = open_pool(1, CPOOL_START_SYNC, 0);
  int rounds = 0, lost = 0, bad_checkin = 0;
  pthread_t th;
  cpool_stats_t st;
  race r;
  int64_t t0 = tu_now_ms();

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&r, 0, sizeof r);
  r.pool = p;
  sem_init(&r.go, 0, 0);
  sem_init(&r.done, 0, 0);
  CU_ASSERT_FATAL(pthread_create(&th, NULL, race_waiter, &r) == 0);
  while (rounds < max_rounds && tu_now_ms() - t0 < budget_ms) {
    cpool_conn_t *c = NULL;
    uint32_t pick = arc4random_uniform(100);
    /* Mostly right around the waiter's 1 ms deadline, sometimes at once. */
    int delay_us = pick < 10 ? 0 : 600 + (int)arc4random_uniform(900);

    if (cpool_checkout(p, &c, CPOOL_NOWAIT, NULL) != 0) {
      lost++; /* the only slot should be free between rounds */
      break;
    }
    sem_post(&r.go);
    if (delay_us)
      tu_sleep_us(delay_us);
    if (cpool_checkin(p, c, CPOOL_CONN_OK) != 0)
      bad_checkin++;
    sem_wait(&r.done);
    rounds++;
  }
  atomic_store(&r.stop, 1);
  sem_post(&r.go);
  pthread_join(th, NULL);
  printf("\nFIGURE: timeout race: %d rounds in %lld ms, waiter got the slot "
         "%d times, timed out %d times\n",
         rounds, (long long)(tu_now_ms() - t0), r.got, r.timedout);
  TU_ASSERT_EQ(lost, 0);
  TU_ASSERT_EQ(bad_checkin, 0);
  TU_ASSERT_EQ(r.bad_checkin, 0);
  if (r.other)
    fprintf(stderr, "race waiter got %s\n", cpool_err_name(r.other_rc));
  TU_ASSERT_EQ(r.other, 0);
  TU_ASSERT_INT(rounds, >=, 300);
  /* Both sides of the race were exercised. */
  TU_ASSERT_INT(r.got, >, 0);
  TU_ASSERT_INT(r.timedout, >, 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, (uint64_t)rounds + (uint64_t)r.got);
  TU_ASSERT_EQ(st.timeouts, (uint64_t)r.timedout);
  TU_ASSERT_EQ(st.idle + st.busy, 1);
  tu_assert_all_slots_free(p, 1);
  sem_destroy(&r.go);
  sem_destroy(&r.done);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- many threads ---------------------------------------------------- */

enum { MT_SIZE = 4, MT_THREADS = 16 };

typedef struct mt_shared {
  cpool_t *pool;
  int cycles;
  atomic_int in_use[MT_SIZE]; /* a slot held by two callers at once? */
  atomic_int overlaps, errors, io_errors, ok, broken;
  atomic_int last_err;
} mt_shared;

static void *mt_worker(void *arg) {
  mt_shared *m = arg;

  for (int i = 0; i < m->cycles; i++) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(m->pool, &c, 10000, NULL);
    int slot, status = CPOOL_CONN_OK;

    if (rc != 0) {
      atomic_fetch_add(&m->errors, 1);
      atomic_store(&m->last_err, rc);
      continue;
    }
    atomic_fetch_add(&m->ok, 1);
    slot = cpool_conn_slot(c);
    if (slot < 0 || slot >= MT_SIZE || atomic_exchange(&m->in_use[slot], 1))
      atomic_fetch_add(&m->overlaps, 1);
    if (i % 8 == 0 && tu_echo(cpool_conn_fd(c), "mt", 5000) != 0) {
      atomic_fetch_add(&m->io_errors, 1);
      status = CPOOL_CONN_BROKEN;
    }
    if (i % 97 == 5)
      status = CPOOL_CONN_BROKEN; /* mix reconnects into the traffic */
    if (status == CPOOL_CONN_BROKEN)
      atomic_fetch_add(&m->broken, 1);
    if (slot >= 0 && slot < MT_SIZE)
      atomic_store(&m->in_use[slot], 0);
    if (cpool_checkin(m->pool, c, status) != 0)
      atomic_fetch_add(&m->errors, 1);
  }
  return NULL;
}

static void test_many_threads(void) {
  cpool_t *p = open_pool(MT_SIZE, CPOOL_START_SYNC, 0);
  pthread_t th[MT_THREADS];
  mt_shared m;
  cpool_stats_t st;
  int64_t t0 = tu_now_ms();

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&m, 0, sizeof m);
  m.pool = p;
  m.cycles = 500;
  for (int i = 0; i < MT_THREADS; i++)
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, mt_worker, &m) == 0);
  for (int i = 0; i < MT_THREADS; i++)
    pthread_join(th[i], NULL);
  printf("\nFIGURE: many threads: %d threads x %d cycles on %d slots in %lld "
         "ms\n",
         MT_THREADS, m.cycles, MT_SIZE, (long long)(tu_now_ms() - t0));
  if (m.errors)
    fprintf(stderr, "many threads: last error %s\n",
            cpool_err_name(m.last_err));
  TU_ASSERT_EQ(m.errors, 0);
  TU_ASSERT_EQ(m.overlaps, 0);
  TU_ASSERT_EQ(m.io_errors, 0);
  TU_ASSERT_EQ(m.ok, MT_THREADS * m.cycles);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, (uint64_t)m.ok);
  TU_ASSERT_EQ(st.broken_checkins, (uint64_t)m.broken);
  TU_WAIT_STATS(p, st, st.connects >= (uint64_t)(MT_SIZE + m.broken), 5000);
  TU_ASSERT_EQ(st.connects, (uint64_t)(MT_SIZE + m.broken));
  tu_assert_all_slots_free(p, MT_SIZE);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- no waiter sleeps next to a free slot -------------------------------- */

enum { NS_SIZE = 2, NS_THREADS = 6 };

typedef struct ns_shared {
  cpool_t *pool;
  int cycles;
  atomic_int running; /* threads not yet through their cycles */
  atomic_int stop;    /* past the wall-time bound: give up */
  atomic_int timeouts, errors, last_err;
  int done[NS_THREADS]; /* cycles completed, per thread */
} ns_shared;

typedef struct ns_arg {
  ns_shared *sh;
  int i;
} ns_arg;

static void *ns_worker(void *arg) {
  ns_arg *a = arg;
  ns_shared *sh = a->sh;
  uint32_t x = 2463534242u + (uint32_t)a->i * 7919u; /* xorshift32 */

  for (int k = 0; k < sh->cycles && !atomic_load(&sh->stop); k++) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(sh->pool, &c, 2000, NULL);

    if (rc != 0) {
      atomic_fetch_add(rc == CPOOL_ETIMEDOUT ? &sh->timeouts : &sh->errors, 1);
      atomic_store(&sh->last_err, rc);
      continue;
    }
    /* Hold it 0..50 us, spinning: a sleep would last far longer. */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    for (int64_t until = tu_now_us() + x % 51; tu_now_us() < until;)
      ;
    if (cpool_checkin(sh->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&sh->errors, 1);
    else
      sh->done[a->i]++;
  }
  atomic_fetch_sub(&sh->running, 1);
  return NULL;
}

/* One run: NS_THREADS threads cycling on NS_SIZE slots.  The test thread
 * samples the pool meanwhile; returns the longest stretch of samples that
 * all showed a free slot beside queued callers. */
static int64_t ns_run(int handoff_after_us, int cycles) {
  const int64_t wall_limit_ms = TU_SANITIZED ? 60000 : 20000;
  cpool_t *p = open_pool(NS_SIZE, CPOOL_START_SYNC, handoff_after_us);
  pthread_t th[NS_THREADS];
  ns_arg args[NS_THREADS];
  ns_shared sh;
  cpool_stats_t st;
  int64_t t0 = tu_now_ms(), stuck_since = -1, stuck_max = 0, samples = 0;
  int all_done = 1;

  if (!p)
    return 0;
  memset(&sh, 0, sizeof sh);
  sh.pool = p;
  sh.cycles = cycles;
  atomic_store(&sh.running, NS_THREADS);
  for (int i = 0; i < NS_THREADS; i++) {
    args[i] = (ns_arg){.sh = &sh, .i = i};
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, ns_worker, &args[i]) == 0);
  }
  while (atomic_load(&sh.running) > 0 && tu_now_ms() - t0 < wall_limit_ms) {
    int64_t now;

    tu_sleep_ms(1);
    if (cpool_stats(p, &st) != 0)
      break;
    samples++;
    now = tu_now_ms();
    if (st.idle > 0 && st.waiters > 0) {
      if (stuck_since < 0)
        stuck_since = now;
      if (now - stuck_since > stuck_max)
        stuck_max = now - stuck_since;
    } else {
      stuck_since = -1;
    }
  }
  if (atomic_load(&sh.running) > 0) {
    fprintf(stderr,
            "no sleep next to a free slot: %d threads still "
            "cycling after %lld ms\n",
            atomic_load(&sh.running), (long long)wall_limit_ms);
    atomic_store(&sh.stop, 1); /* checkouts time out in 2 s: joins end */
  }
  for (int i = 0; i < NS_THREADS; i++)
    pthread_join(th[i], NULL);
  printf("\nFIGURE: no sleep next to a free slot: handoff_after_us %d, %d "
         "threads x %d cycles on %d slots in %lld ms; %lld samples, longest "
         "run of a free slot beside queued callers %lld ms\n",
         handoff_after_us, NS_THREADS, cycles, NS_SIZE,
         (long long)(tu_now_ms() - t0), (long long)samples,
         (long long)stuck_max);
  if (sh.errors)
    fprintf(stderr, "no sleep next to a free slot: last error %s\n",
            cpool_err_name(sh.last_err));
  TU_ASSERT_EQ(sh.timeouts, 0);
  TU_ASSERT_EQ(sh.errors, 0);
  for (int i = 0; i < NS_THREADS; i++)
    all_done &= sh.done[i] == cycles;
  CU_ASSERT(all_done);
  TU_ASSERT_INT(tu_now_ms() - t0, <, wall_limit_ms);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, (uint64_t)NS_THREADS * (uint64_t)cycles);
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, NS_SIZE);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  return stuck_max;
}

/* Two slots, six threads cycling fast.  A waiter woken for a free slot
 * and then handed the other one directly used to swallow that wake: the
 * free slot sat idle while callers queued, and a waiter could sleep until
 * its timeout.  Checked in both modes: no timeouts, and every cycle done.
 *
 * In strict mode (-1) a freed slot goes straight to the oldest waiter, so
 * the pool is also sampled meanwhile: a free slot beside queued callers
 * may be seen briefly (a checkin between its store and its lock), never
 * for long.  With turns (100 us) a free slot does sit beside queued
 * callers while the waiter woken for it waits for a CPU (six threads spin
 * on two here): that run is printed, not judged. */
static void test_no_sleep_next_to_free_slot(void) {
  const int cycles = TU_SANITIZED ? 500 : 2000;
  const int64_t stuck_limit_ms = TU_SANITIZED ? 500 : 200;

  TU_ASSERT_INT(ns_run(-1, cycles), <, stuck_limit_ms);
  ns_run(100, cycles);
}

/* ---- start ------------------------------------------------------------- */

static void test_sync_start(void) {
  ts_counts before = ts_get_counts(srv);
  cpool_t *p = open_pool(4, CPOOL_START_SYNC, 0);
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  /* Connected when open returns, not some time later. */
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle, 4);
  TU_ASSERT_EQ(st.connecting + st.backoff, 0);
  TU_ASSERT_EQ(st.connects, 4);
  TU_ASSERT_EQ(st.connect_failures, 0);
  TU_ASSERT_EQ(st.last_error.code, 0);
  CU_ASSERT(ts_wait_accepted(srv, before.accepted + 4, 5000));
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* A slot's ping moves it to CHECKING: it is still connected.  With pings
 * due every millisecond and each taking 50 ms, every slot is being pinged
 * most of the time once it is up, so a sync open that waited for all of
 * them to be IDLE at once timed out (issue 10, fix 9). */
static int slow_ping(int fd, void *data, void *arg) {
  (void)fd;
  (void)data;
  atomic_fetch_add((atomic_int *)arg, 1);
  tu_sleep_ms(50);
  return 0;
}

/* Slots come up one after the other, 15 ms apart: the first ones are
 * being pinged when the last one connects. */
static int staggered_connect(int fd, void **data, void *arg) {
  (void)fd;
  (void)data;
  tu_sleep_ms(15 * atomic_fetch_add((atomic_int *)arg + 1, 1));
  return 0;
}

static void test_sync_start_while_pinging(void) {
  enum { ROUNDS = 10, SIZE = 4 };
  int failed = 0;

  for (int r = 0; r < ROUNDS; r++) {
    atomic_int counters[2] = {0, 0}; /* pings, connects */
    cpool_config cfg;
    cpool_error_info err;
    cpool_stats_t st;
    cpool_t *p = NULL;

    tu_config(&cfg, ts_port(srv), SIZE);
    cfg.start = CPOOL_START_SYNC;
    cfg.ping_interval_ms = 1;
    cfg.on_ping = slow_ping;
    cfg.on_connect = staggered_connect;
    cfg.cb_arg = counters;
    /* The sync deadline is twice this plus a second. */
    cfg.connect_timeout_ms = 500;
    int rc = cpool_open(&p, &cfg, &err);
    if (rc != 0) {
      printf("\nround %d: cpool_open: %s: %s\n", r, cpool_err_name(rc),
             err.message);
      failed++;
      continue;
    }
    TU_ASSERT_CODE(cpool_stats(p, &st), 0);
    TU_ASSERT_EQ(st.idle + st.checking + st.busy, SIZE);
    TU_ASSERT_EQ(st.connects, SIZE);
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
  printf("\nFIGURE: sync open with slow pings: %d of %d rounds failed\n",
         failed, ROUNDS);
  TU_ASSERT_EQ(failed, 0);
}

static void test_async_start(void) {
  cpool_t *p = open_pool(4, CPOOL_START_ASYNC, 0);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  /* The first checkout may have to wait for a slot to connect. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "async", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_WAIT_STATS(p, st, st.idle == 4, 5000);
  TU_ASSERT_EQ(st.idle, 4);
  TU_ASSERT_EQ(st.connects, 4);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* Against a server whose connects hang: async open returns at once, and
 * while slots are connecting the pool is busy, not down. */
static void test_async_start_slow_server(void) {
  ts_server *bh = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(bh);
  CU_ASSERT_FATAL(ts_blackhole(bh) == 0);
  tu_config(&cfg, ts_port(bh), 2);
  cfg.connect_timeout_ms = 3000;
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 1000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.connecting, 2);
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), CPOOL_ECHECKEDOUT);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkout(p, &c, 100, NULL), CPOOL_ETIMEDOUT);
  TU_ASSERT_INT(tu_now_ms() - t0, >=, 95);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  /* A connect in progress must not hold close much beyond its timeout. */
  TU_ASSERT_INT(tu_now_ms() - t0, <, 3000 + 1000);
  ts_stop(bh);
}

/* ---- the connection ------------------------------------------------------ */

static int sock_int(int fd, int level, int opt) {
  int v = -1;
  socklen_t len = sizeof v;
  return getsockopt(fd, level, opt, &v, &len) == 0 ? v : -1;
}

static void test_conn_fd(void) {
  cpool_t *p = open_pool(2, CPOOL_START_SYNC, 0);
  cpool_conn_t *c = NULL;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  struct timeval tv;
  socklen_t tvlen = sizeof tv;
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  fd = cpool_conn_fd(c);
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_BETWEEN(cpool_conn_slot(c), 0, 1);
  CU_ASSERT_PTR_NULL(cpool_conn_data(c)); /* no on_connect */
  TU_ASSERT_EQ(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
  TU_ASSERT_EQ(peer.sin_family, AF_INET);
  TU_ASSERT_EQ(ntohs(peer.sin_port), ts_port(srv));
  TU_ASSERT_EQ(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
  TU_ASSERT_EQ(sock_int(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
  TU_ASSERT_EQ(sock_int(fd, SOL_SOCKET, SO_ERROR), 0);
  TU_ASSERT_INT(sock_int(fd, IPPROTO_TCP, TCP_NODELAY), >, 0);
  CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  /* Ready for the caller's ordinary blocking I/O, without a leftover
   * handshake timeout. */
  CU_ASSERT((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
  TU_ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen), 0);
  CU_ASSERT(tv.tv_sec == 0 && tv.tv_usec == 0);
  TU_ASSERT_EQ(tu_echo(fd, "hello, pool", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* Keepalive and TCP_USER_TIMEOUT from the config reach the socket; off by
 * default. */
static void test_tcp_options(void) {
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_t *p = NULL;
  int fd;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  fd = cpool_conn_fd(c);
  TU_ASSERT_EQ(sock_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  TU_ASSERT_EQ(sock_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  cfg.keepalive = 1;
  cfg.keepalive_idle_s = 7;
  cfg.keepalive_interval_s = 3;
  cfg.keepalive_count = 4;
  cfg.tcp_user_timeout_ms = 1234;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  fd = cpool_conn_fd(c);
  TU_ASSERT_INT(sock_int(fd, SOL_SOCKET, SO_KEEPALIVE), >, 0);
  TU_ASSERT_EQ(sock_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
  TU_ASSERT_EQ(sock_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
  TU_ASSERT_EQ(sock_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
  TU_ASSERT_EQ(sock_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 1234);
  TU_ASSERT_INT(sock_int(fd, IPPROTO_TCP, TCP_NODELAY), >, 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- user data through on_connect / on_disconnect ----------------------- */

#define DATA_MAGIC 0x5eed5eedu

typedef struct user_data {
  unsigned magic;
  int fd;
} user_data;

typedef struct cb_state {
  int fail;       /* on_connect fails (errno EPROTO) */
  int timeout_ms; /* the pool's connect_timeout_ms */
  atomic_int connects, disconnects, bad_fd, bad_data, io_failed, bad_timeout;
} cb_state;

static int on_connect(int fd, void **data, void *arg) {
  cb_state *s = arg;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  struct timeval tv;
  socklen_t tvlen = sizeof tv;
  user_data *d;

  atomic_fetch_add(&s->connects, 1);
  if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
    atomic_fetch_add(&s->bad_fd, 1);
  /* The handshake is bounded by the guard (shutdown at the deadline),
   * not by socket timeouts: the socket's are the user's, untouched. */
  if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen) != 0 ||
      tv.tv_sec != 0 || tv.tv_usec != 0)
    atomic_fetch_add(&s->bad_timeout, 1);
  /* A real exchange, as AUTH or a TLS handshake would do. */
  if (tu_echo(fd, "HELLO\r\n", 2000) != 0)
    atomic_fetch_add(&s->io_failed, 1);
  d = malloc(sizeof *d);
  if (!d)
    return -1;
  d->magic = DATA_MAGIC;
  d->fd = fd;
  *data = d;
  if (s->fail) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

static void on_disconnect(int fd, void *data, void *arg) {
  cb_state *s = arg;
  user_data *d = data;

  atomic_fetch_add(&s->disconnects, 1);
  if (!d || d->magic != DATA_MAGIC || d->fd != fd) {
    atomic_fetch_add(&s->bad_data, 1);
    return;
  }
  d->magic = 0;
  free(d);
}

static void cb_config(cpool_config *cfg, cb_state *s, int size) {
  tu_config(cfg, ts_port(srv), size);
  cfg->on_connect = on_connect;
  cfg->on_disconnect = on_disconnect;
  cfg->cb_arg = s;
  s->timeout_ms = cfg->connect_timeout_ms;
}

static void test_conn_data(void) {
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  cb_state s;
  user_data *d;

  memset(&s, 0, sizeof s);
  cb_config(&cfg, &s, 3);
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_EQ(s.connects, 3);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  d = cpool_conn_data(c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  TU_ASSERT_EQ(d->magic, DATA_MAGIC);
  TU_ASSERT_EQ(d->fd, cpool_conn_fd(c));
  /* The handshake's I/O timeouts are gone once the caller has the fd. */
  {
    struct timeval tv;
    socklen_t tvlen = sizeof tv;
    TU_ASSERT_EQ(
        getsockopt(cpool_conn_fd(c), SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen), 0);
    CU_ASSERT(tv.tv_sec == 0 && tv.tv_usec == 0);
  }
  /* The handshake's bytes were consumed by it: the stream is clean. */
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "after handshake", 2000), 0);
  /* Broken: on_disconnect releases this data, on_connect makes new. */
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects == 4 && st.idle == 3, 5000);
  TU_ASSERT_EQ(st.connects, 4);
  TU_ASSERT_EQ(st.disconnects, 1);
  TU_ASSERT_EQ(st.broken_checkins, 1);
  TU_ASSERT_EQ(s.connects, 4);
  TU_ASSERT_EQ(s.disconnects, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  /* Every on_connect had its on_disconnect, each with its own data. */
  TU_ASSERT_EQ(s.disconnects, 4);
  TU_ASSERT_EQ(s.bad_data, 0);
  TU_ASSERT_EQ(s.bad_fd, 0);
  TU_ASSERT_EQ(s.io_failed, 0);
  TU_ASSERT_EQ(s.bad_timeout, 0);
}

/* ---- the handshake's socket timeouts ------------------------------------ */

/* SO_RCVTIMEO or SO_SNDTIMEO in ms; -1 if it cannot be read. */
static int sock_timeo_ms(int fd, int opt) {
  struct timeval tv;
  socklen_t len = sizeof tv;

  if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0)
    return -1;
  return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* What the kernel reports back for a timeout of ms: it keeps jiffies, so
 * 1234 ms reads back as 1236 with HZ=250. */
static int kernel_timeo_ms(int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int got = -1;

  if (fd < 0)
    return -1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0)
    got = sock_timeo_ms(fd, SO_RCVTIMEO);
  close(fd);
  return got;
}

#define OWN_RCVTIMEO_MS 1234

static int on_connect_noop(int fd, void **data, void *arg) {
  (void)fd;
  (void)data;
  (void)arg;
  return 0;
}

/* A handshake that sets its own receive timeout for the caller. */
static int on_connect_own_rcvtimeo(int fd, void **data, void *arg) {
  struct timeval tv = {.tv_sec = OWN_RCVTIMEO_MS / 1000,
                       .tv_usec = (OWN_RCVTIMEO_MS % 1000) * 1000};

  (void)data;
  (void)arg;
  return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* on_connect runs bounded by connect_timeout_ms; the caller gets the fd
 * back without that bound, and with whatever on_connect set itself (it
 * used to be cleared to 0 whatever the callback had set).  The bound must
 * come off whatever connect_timeout_ms is, also one the kernel cannot
 * keep exactly (1234 ms reads back as 1236 with HZ=250). */
static void test_handshake_timeouts_restored(void) {
  const struct {
    const char *what;
    cpool_connect_cb cb;
    int connect_timeout_ms;
    int rcv_ms, snd_ms; /* wanted after checkout */
  } cases[] = {
      {"on_connect sets nothing", on_connect_noop, 500, 0, 0},
      {"on_connect sets SO_RCVTIMEO", on_connect_own_rcvtimeo, 500,
       kernel_timeo_ms(OWN_RCVTIMEO_MS), 0},
      {"on_connect sets nothing, connect_timeout_ms 1234", on_connect_noop,
       1234, 0, 0},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cpool_config cfg;
    cpool_conn_t *c = NULL;
    cpool_t *p = NULL;
    int rcv, snd;

    tu_config(&cfg, ts_port(srv), 1);
    cfg.start = CPOOL_START_SYNC;
    cfg.on_connect = cases[i].cb;
    cfg.connect_timeout_ms = cases[i].connect_timeout_ms;
    TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    rcv = sock_timeo_ms(cpool_conn_fd(c), SO_RCVTIMEO);
    snd = sock_timeo_ms(cpool_conn_fd(c), SO_SNDTIMEO);
    if (rcv != cases[i].rcv_ms || snd != cases[i].snd_ms)
      fprintf(stderr, "%s: SO_RCVTIMEO %d ms, SO_SNDTIMEO %d ms\n",
              cases[i].what, rcv, snd);
    TU_ASSERT_EQ(rcv, cases[i].rcv_ms);
    TU_ASSERT_EQ(snd, cases[i].snd_ms);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
}

static void test_on_connect_failure(void) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  cb_state s;

  memset(&s, 0, sizeof s);
  s.fail = 1;
  cb_config(&cfg, &s, 2);
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.connect_failures >= 4, 5000);
  TU_ASSERT_INT(st.connect_failures, >=, 4);
  TU_ASSERT_EQ(st.connects, 0);
  TU_ASSERT_EQ(st.idle + st.busy, 0);
  TU_ASSERT_CODE(st.last_error.code, CPOOL_EHANDSHAKE);
  TU_ASSERT_EQ(st.last_error.step, CPOOL_STEP_HANDSHAKE);
  TU_ASSERT_EQ(st.last_error.sys_errno, EPROTO);
  CU_ASSERT(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL) != 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  TU_ASSERT_EQ(s.disconnects, s.connects);
  TU_ASSERT_EQ(s.bad_data, 0);

  /* Sync: the handshake's failure is open's error. */
  memset(&s, 0, sizeof s);
  s.fail = 1;
  cb_config(&cfg, &s, 2);
  cfg.start = CPOOL_START_SYNC;
  memset(&err, 0, sizeof err);
  p = (cpool_t *)&p;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_EHANDSHAKE);
  CU_ASSERT_PTR_NULL(p);
  TU_ASSERT_EQ(err.step, CPOOL_STEP_HANDSHAKE);
  TU_ASSERT_EQ(s.disconnects, s.connects);
  TU_ASSERT_EQ(s.bad_data, 0);
}

/* ---- endpoints ------------------------------------------------------------
 */

static void endpoint_round_trip(cpool_config *cfg, int family) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  cpool_conn_t *c = NULL;
  cpool_error_info err;
  cpool_t *p = NULL;

  cfg->start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, cfg, &err), 0);
  if (!p) {
    fprintf(stderr, "open failed: %s\n", err.message);
    return;
  }
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(getpeername(cpool_conn_fd(c), (struct sockaddr *)&ss, &len), 0);
  TU_ASSERT_EQ(ss.ss_family, family);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "endpoint", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_ipv6(void) {
  cpool_config cfg;

  if (!ts_port6(srv)) {
    printf("\nSKIP: ipv6: ::1 cannot be bound on this machine\n");
    CU_PASS("IPv6 skipped: no ::1");
    return;
  }
  tu_config(&cfg, ts_port6(srv), 2);
  cfg.host = "::1";
  endpoint_round_trip(&cfg, AF_INET6);
}

static void test_unix_socket(void) {
  cpool_config cfg;

  CU_ASSERT_PTR_NOT_NULL_FATAL(ts_unix_path(srv));
  tu_config(&cfg, 0, 2);
  cfg.host = NULL;
  cfg.unix_path = ts_unix_path(srv);
  cfg.keepalive = 1; /* TCP options do not apply here: ignored */
  cfg.tcp_user_timeout_ms = 1000;
  endpoint_round_trip(&cfg, AF_UNIX);
}

/* A name with several addresses: each is tried in turn.  "localhost" with
 * ::1 first and the server only on 127.0.0.1 (its IPv6 port differs). */
static void test_all_addresses_tried(void) {
  struct addrinfo hints, *res = NULL;
  int v4 = 0, v6 = 0, v6_first = 0;
  cpool_config cfg;

  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo("localhost", "1", &hints, &res) == 0) {
    v6_first = res && res->ai_family == AF_INET6;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
      v4 |= a->ai_family == AF_INET;
      v6 |= a->ai_family == AF_INET6;
    }
    freeaddrinfo(res);
  }
  if (!v4 || !v6 || !v6_first) {
    printf("\nSKIP: all_addresses_tried: localhost is not ::1 then "
           "127.0.0.1 here\n");
    CU_PASS("skipped: localhost has one address family");
    return;
  }
  tu_config(&cfg, ts_port(srv), 1);
  cfg.host = "localhost";
  endpoint_round_trip(&cfg, AF_INET);
}

/* ---- 1024 slots ------------------------------------------------------- */

static void big_pool(int n) {
  long rss0, rss1;
  ts_counts before;
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int64_t t0, t_open, t_close;

  /* Earlier tests' connections are gone from the server first. */
  CU_ASSERT(ts_wait_open(srv, 0, 5000));
  before = ts_get_counts(srv);
  rss0 = tu_rss_kib();
  t0 = tu_now_ms();

  tu_config(&cfg, ts_port(srv), n);
  cfg.start = CPOOL_START_SYNC;
  cfg.connect_timeout_ms = 10000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), 0);
  t_open = tu_now_ms() - t0;
  if (!p) {
    fprintf(stderr, "1024 slots: %s\n", err.message);
    return;
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.size, n);
  TU_ASSERT_EQ(st.idle, n);
  TU_ASSERT_EQ(st.connects, n);
  CU_ASSERT(ts_wait_open_at_least(srv, before.open + n, 10000));
  TU_ASSERT_EQ(ts_get_counts(srv).accepted - before.accepted, (uint64_t)n);
  rss1 = tu_rss_kib();
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  t_close = tu_now_ms() - t0;
  CU_ASSERT(ts_wait_open(srv, before.open, 10000));
  printf("\nFIGURE: %d-slot pool: VmRSS %ld KiB with the pool open "
         "(%ld KiB before: +%ld KiB, %.1f KiB per slot)%s; sync open %lld ms, "
         "close %lld ms\n",
         n, rss1, rss0, rss1 - rss0, (double)(rss1 - rss0) / n,
         TU_SANITIZED ? " [sanitizer build]" : "", (long long)t_open,
         (long long)t_close);
  /* "Not more than a few MiB": the bound is loose, the figure is printed. */
  if (!TU_SANITIZED)
    TU_ASSERT_INT(rss1 - rss0, <, n / 32 * 1024);
}

static void test_1024_slots(void) {
  big_pool(1024);
}

/* The issue asks for "up to at least 4096".  ThreadSanitizer needs about
 * 1 MiB and several ms per thread: there the 1024-slot test stands in. */
static void test_4096_slots(void) {
#if defined(__SANITIZE_THREAD__)
  printf("\nSKIP: 4096_slots under ThreadSanitizer (1024_slots covers it)\n");
  CU_PASS("skipped under TSan");
#else
  big_pool(4096);
#endif
}

CU_TestInfo checkout_tests[] = {
    {"nowait_checkedout", test_nowait_checkedout},
    {"wait_timeout", test_wait_timeout},
    {"wait_forever_gets_checkin", test_wait_forever_gets_checkin},
    {"fifo_strict", test_fifo_strict},
    {"fifo_default_handoff", test_fifo_default_handoff},
    {"timeout_race_hammer", test_timeout_race_hammer},
    {"many_threads", test_many_threads},
    {"no_sleep_next_to_free_slot", test_no_sleep_next_to_free_slot},
    {"sync_start", test_sync_start},
    {"sync_start_while_pinging", test_sync_start_while_pinging},
    {"async_start", test_async_start},
    {"async_start_slow_server", test_async_start_slow_server},
    {"conn_fd", test_conn_fd},
    {"tcp_options", test_tcp_options},
    {"conn_data", test_conn_data},
    {"on_connect_failure", test_on_connect_failure},
    {"handshake_timeouts_restored", test_handshake_timeouts_restored},
    {"ipv6", test_ipv6},
    {"unix_socket", test_unix_socket},
    {"all_addresses_tried", test_all_addresses_tried},
    {"1024_slots", test_1024_slots},
    {"4096_slots", test_4096_slots},
    CU_TEST_INFO_NULL,
};
