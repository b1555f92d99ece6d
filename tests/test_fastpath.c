/*
 * The fast path (see src/internal.h): a checkin while nobody waits parks
 * the slot for the thread, whose next checkout takes it back with one
 * compare-and-swap.  What callers must see of it: every checkout counted,
 * parked slots idle in the stats and free for any other thread, a second
 * checkin refused, no waiter asleep beside a parked slot, close not held
 * up by parked slots, the idle check, broken checkins and pings still
 * applied, and one thread using two pools in turn.  And, from a review of
 * the fast path (167c16f): no polling by a waiter beside a slot held
 * without a turn, no new turn for a nowait caller by asking again, and a
 * slot parked within a turn taken by the waiter beside it.
 *
 * White-box in one place: lease_of() reads a slot's lease word from
 * internal.h, so that a test can tell a checkout taken on the fast path
 * (HELD) from one taken under the lock (NONE), and fails if the fast path
 * it means to exercise is never taken.  Nothing else reaches inside.
 */
#include "internal.h"
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static ts_server *srv;

int fastpath_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int fastpath_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

/* The slot's lease word: CPOOL__LEASE_HELD right after a checkout means
 * it was taken on the fast path (HELD_TURN, within a turn, counts as
 * HELD here); PARKED after a checkin means parked. */
static int lease_of(cpool_conn_t *c) {
  int l = CPOOL__LEASE_STATE(atomic_load(&c->lease));
  return l == CPOOL__LEASE_HELD_TURN ? CPOOL__LEASE_HELD : l;
}

/* Check a slot out and in, then out again: the second checkout takes it on
 * the fast path (HELD, without a turn: nobody waits).  NULL, with a
 * failed assertion, if there was none. */
static cpool_conn_t *take_fast(cpool_t *p) {
  cpool_conn_t *c = NULL;

  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  if (c == NULL)
    return NULL;
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  if (c != NULL)
    TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_HELD);
  return c;
}

/* Sync start, so every slot is up when it returns.  idle_check_ms as given
 * (0 is the default, 500). */
static cpool_t *open_pool(int size, int idle_check_ms) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), size);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = idle_check_ms;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* ---- one thread: counts and slot states ------------------------------ */

/* One thread, checkout and checkin in a loop: all but the first checkout
 * take the parked slot on the fast path, and the stats count every one;
 * the parked slot shows as idle, the held one as busy. */
static void test_same_thread_counts(void) {
  enum { SIZE = 4, N = 1000 };
  /* -1: no peek, so every checkout after the first is a fast one. */
  cpool_t *p = open_pool(SIZE, -1);
  cpool_stats_t st;
  int slot = -1, fast = 0, other_slot = 0, failed = 0, io_errors = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < N; i++) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(p, &c, CPOOL_NOWAIT, NULL);

    if (rc != 0) {
      fprintf(stderr, "round %d: checkout %s\n", i, cpool_err_name(rc));
      failed++;
      break;
    }
    if (i == 0)
      slot = cpool_conn_slot(c);
    other_slot += cpool_conn_slot(c) != slot;
    fast += lease_of(c) == CPOOL__LEASE_HELD;
    if (i % 100 == 0) {
      io_errors += tu_echo(cpool_conn_fd(c), "fast", 2000) != 0;
      TU_ASSERT_CODE(cpool_stats(p, &st), 0);
      TU_ASSERT_EQ(st.busy, 1);
      TU_ASSERT_EQ(st.idle, SIZE - 1);
      TU_ASSERT_EQ(st.checkouts, (uint64_t)i + 1);
    }
    rc = cpool_checkin(p, c, CPOOL_CONN_OK);
    if (rc != 0) {
      fprintf(stderr, "round %d: checkin %s\n", i, cpool_err_name(rc));
      failed++;
      break;
    }
    if (i % 100 == 0) {
      TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_PARKED);
      TU_ASSERT_CODE(cpool_stats(p, &st), 0);
      TU_ASSERT_EQ(st.idle, SIZE);
      TU_ASSERT_EQ(st.busy, 0);
      TU_ASSERT_EQ(st.checkouts, (uint64_t)i + 1);
    }
  }
  TU_ASSERT_EQ(failed, 0);
  TU_ASSERT_EQ(io_errors, 0);
  TU_ASSERT_EQ(other_slot, 0);
  TU_ASSERT_EQ(fast, N - 1);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, N);
  TU_ASSERT_EQ(st.waits, 0);
  TU_ASSERT_EQ(st.connects, SIZE);
  TU_ASSERT_EQ(st.idle, SIZE);
  TU_ASSERT_EQ(st.busy, 0);
  tu_assert_all_slots_free(p, SIZE);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, N + SIZE);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* A second checkin of a slot taken and given back on the fast path is
 * refused and changes nothing; likewise after a broken checkin. */
static void test_double_checkin_einval(void) {
  enum { SIZE = 4 };
  cpool_t *p = open_pool(SIZE, -1);
  cpool_conn_t *c = NULL, *d = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &d, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_FATAL(d == c);
  TU_ASSERT_EQ(lease_of(d), CPOOL__LEASE_HELD);
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_OK), 0);
  /* The second checkin, either status: refused. */
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_BROKEN), CPOOL_EINVAL);
  TU_ASSERT_EQ(lease_of(d), CPOOL__LEASE_PARKED);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle, SIZE);
  TU_ASSERT_EQ(st.busy, 0);
  TU_ASSERT_EQ(st.checkouts, 2);
  TU_ASSERT_EQ(st.broken_checkins, 0);
  TU_ASSERT_EQ(st.connects, SIZE);

  /* Still parked and still ours: the fast path takes it again. */
  d = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &d, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_FATAL(d == c);
  TU_ASSERT_EQ(lease_of(d), CPOOL__LEASE_HELD);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(d), "still good", 2000), 0);
  /* Broken, then checked in again: refused, one reconnect only. */
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_BROKEN), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_WAIT_STATS(p, st, st.connects == SIZE + 1 && st.idle == SIZE, 5000);
  TU_ASSERT_EQ(st.connects, SIZE + 1);
  TU_ASSERT_EQ(st.idle, SIZE);
  TU_ASSERT_EQ(st.broken_checkins, 1);
  TU_ASSERT_EQ(st.disconnects, 1);
  TU_ASSERT_EQ(st.checkouts, 3);

  tu_assert_all_slots_free(p, SIZE);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 3 + SIZE);
  TU_ASSERT_EQ(st.broken_checkins, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- slots parked by other threads ----------------------------------- */

enum { PK_MAX = 4 };

/* A thread that takes n slots, gives them back (they park), says so, and
 * then either exits or waits for go (and may then check out once more). */
typedef struct parker {
  cpool_t *pool;
  int n;
  int block; /* wait for go after parking */
  int again; /* after go: one more checkout and checkin */
  sem_t parked, go;
  pthread_t thread;
  int rc[PK_MAX], checkin_rc[PK_MAX];
  cpool_conn_t *conn[PK_MAX];
  int again_rc, again_checkin_rc;
} parker;

static void *parker_main(void *arg) {
  parker *k = arg;

  for (int i = 0; i < k->n; i++)
    k->rc[i] = cpool_checkout(k->pool, &k->conn[i], CPOOL_NOWAIT, NULL);
  for (int i = 0; i < k->n; i++)
    if (k->rc[i] == 0)
      k->checkin_rc[i] = cpool_checkin(k->pool, k->conn[i], CPOOL_CONN_OK);
  sem_post(&k->parked);
  if (!k->block)
    return NULL;
  sem_wait(&k->go);
  if (k->again) {
    cpool_conn_t *c = NULL;
    k->again_rc = cpool_checkout(k->pool, &c, CPOOL_NOWAIT, NULL);
    if (k->again_rc == 0)
      k->again_checkin_rc = cpool_checkin(k->pool, c, CPOOL_CONN_OK);
  }
  return NULL;
}

static int parker_start(parker *k, cpool_t *pool, int n, int block, int again) {
  memset(k, 0, sizeof *k);
  k->pool = pool;
  k->n = n;
  k->block = block;
  k->again = again;
  k->again_rc = k->again_checkin_rc = 1; /* not a cpool code: not run */
  for (int i = 0; i < PK_MAX; i++)
    k->rc[i] = k->checkin_rc[i] = 1;
  sem_init(&k->parked, 0, 0);
  sem_init(&k->go, 0, 0);
  return pthread_create(&k->thread, NULL, parker_main, k);
}

/* Waits until k parked its slots; asserts they all did. */
static void parker_wait_parked(parker *k) {
  CU_ASSERT_FATAL(tu_sem_wait_ms(&k->parked, 5000) == 0);
  for (int i = 0; i < k->n; i++) {
    TU_ASSERT_CODE(k->rc[i], 0);
    TU_ASSERT_CODE(k->checkin_rc[i], 0);
    if (k->rc[i] == 0)
      TU_ASSERT_EQ(lease_of(k->conn[i]), CPOOL__LEASE_PARKED);
  }
}

static void parker_done(parker *k) {
  pthread_join(k->thread, NULL);
  sem_destroy(&k->parked);
  sem_destroy(&k->go);
}

/* Thread A parks both slots of a pool of 2 and stays alive; this thread
 * must still get both at once without waiting, one reclaimed from each of
 * A's parks. */
static void test_parked_slots_reclaimed(void) {
  cpool_t *p = open_pool(2, -1);
  cpool_conn_t *b0 = NULL, *b1 = NULL, *b2 = NULL;
  cpool_stats_t st;
  parker a;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_FATAL(parker_start(&a, p, 2, 1, 1) == 0);
  parker_wait_parked(&a);
  CU_ASSERT(a.conn[0] != a.conn[1]);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle, 2);
  TU_ASSERT_EQ(st.busy, 0);

  TU_ASSERT_CODE(cpool_checkout(p, &b0, CPOOL_NOWAIT, NULL), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &b1, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b1);
  CU_ASSERT(b0 != b1);
  /* Reclaimed: taken under the lock, not A's lease any more. */
  TU_ASSERT_EQ(lease_of(b0), CPOOL__LEASE_NONE);
  TU_ASSERT_EQ(lease_of(b1), CPOOL__LEASE_NONE);
  TU_ASSERT_CODE(cpool_checkout(p, &b2, CPOOL_NOWAIT, NULL), CPOOL_ECHECKEDOUT);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.busy, 2);
  TU_ASSERT_EQ(st.idle, 0);
  TU_ASSERT_EQ(st.waits, 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(b0), "reclaimed 0", 2000), 0);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(b1), "reclaimed 1", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, b0, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_checkin(p, b1, CPOOL_CONN_OK), 0);

  /* A is still there and can check out again (now from our parks). */
  sem_post(&a.go);
  parker_done(&a);
  TU_ASSERT_CODE(a.again_rc, 0);
  TU_ASSERT_CODE(a.again_checkin_rc, 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 5);
  TU_ASSERT_EQ(st.checked_out_errors, 1);
  TU_ASSERT_EQ(st.connects, 2);
  tu_assert_all_slots_free(p, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- waiters and parked slots ---------------------------------------- */

/* The plain case, without races: a waiter queued while this thread holds
 * the only slot gets it as soon as it is checked in, whether it was taken
 * under the lock or on the fast path; and a slot parked before a caller
 * queues is taken from the park at once.  A checkin that parked the slot
 * beside the queued waiter would leave it asleep until its timeout. */
enum { HOLD_LOCKED, HOLD_FAST, HOLD_ANY };

static void waiter_gets_checkin(cpool_t *p, int hold, int *served) {
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  tu_waiter w;
  int64_t t_in;
  int fast;

  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  if (hold == HOLD_FAST) {
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    c = NULL;
    TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  }
  fast = lease_of(c) == CPOOL__LEASE_HELD;
  if (hold != HOLD_ANY)
    TU_ASSERT_EQ(fast, hold == HOLD_FAST);
  TU_ASSERT_EQ(tu_waiter_start(&w, p, 2000, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  t_in = tu_now_ms();
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  tu_waiter_join(&w);
  if (w.rc != 0)
    fprintf(stderr, "waiter queued beside a %s slot: %s after %lld ms\n",
            fast ? "fast-path" : "locked", cpool_err_name(w.rc),
            (long long)(w.t1_ms - t_in));
  TU_ASSERT_CODE(w.rc, 0);
  TU_ASSERT_CODE(w.checkin_rc, 0);
  TU_ASSERT_INT(w.t1_ms - t_in, <, 500);
  *served += w.rc == 0;
}

static void test_waiter_gets_checkin(void) {
  cpool_t *p = open_pool(1, 500);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  tu_waiter w;
  int served = 0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  waiter_gets_checkin(p, HOLD_LOCKED, &served); /* the first checkout */
  waiter_gets_checkin(p, HOLD_FAST, &served);
  /* Again, with a turn behind us; the waiter parked the slot, and our
   * remembered slot may be taken back from its park. */
  waiter_gets_checkin(p, HOLD_ANY, &served);

  /* Parked by this thread (after a checkout and checkin with nobody
   * waiting), then another thread checks out with a timeout: at once. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_PARKED);
  TU_ASSERT_EQ(tu_waiter_start(&w, p, 2000, 0, NULL), 0);
  tu_waiter_join(&w);
  TU_ASSERT_CODE(w.rc, 0);
  TU_ASSERT_INT(w.t1_ms - w.t0_ms, <, 500);
  /* It holds the slot now: nothing is left parked for us. */
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), CPOOL_ECHECKEDOUT);
  if (w.conn)
    TU_ASSERT_CODE(cpool_checkin(p, w.conn, CPOOL_CONN_OK), 0);

  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(served, 3);
  TU_ASSERT_EQ(st.waits, 3);
  TU_ASSERT_EQ(st.timeouts, 0);
  /* 3 x (ours + the waiter's) + one fast one + ours + the last thread's */
  TU_ASSERT_EQ(st.checkouts, 3 * 2 + 1 + 2);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* Several threads on fewer slots: a slot is never held by two callers at
 * once, whether taken on the fast path or reclaimed under the lock. */
enum { DH_SIZE = 2, DH_THREADS = 4 };

typedef struct dh_shared {
  cpool_t *pool;
  int cycles;
  atomic_int in_use[DH_SIZE];
  atomic_int overlaps, errors, last_err, io_errors, ok, fast;
} dh_shared;

static void *dh_worker(void *arg) {
  dh_shared *m = arg;

  for (int i = 0; i < m->cycles; i++) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(m->pool, &c, 2000, NULL), slot;

    if (rc != 0) {
      atomic_fetch_add(&m->errors, 1);
      atomic_store(&m->last_err, rc);
      continue;
    }
    atomic_fetch_add(&m->ok, 1);
    if (lease_of(c) == CPOOL__LEASE_HELD)
      atomic_fetch_add(&m->fast, 1);
    slot = cpool_conn_slot(c);
    if (slot < 0 || slot >= DH_SIZE || atomic_exchange(&m->in_use[slot], 1))
      atomic_fetch_add(&m->overlaps, 1);
    if (i % 64 == 0 && tu_echo(cpool_conn_fd(c), "dh", 2000) != 0)
      atomic_fetch_add(&m->io_errors, 1);
    if (slot >= 0 && slot < DH_SIZE)
      atomic_store(&m->in_use[slot], 0);
    if (cpool_checkin(m->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&m->errors, 1);
  }
  return NULL;
}

static void test_no_double_hold(void) {
  cpool_t *p = open_pool(DH_SIZE, 500);
  pthread_t th[DH_THREADS];
  cpool_stats_t st;
  dh_shared m;
  int64_t t0 = tu_now_ms();

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&m, 0, sizeof m);
  m.pool = p;
  m.cycles = TU_SANITIZED ? 500 : 3000;
  for (int i = 0; i < DH_THREADS; i++)
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, dh_worker, &m) == 0);
  for (int i = 0; i < DH_THREADS; i++)
    pthread_join(th[i], NULL);
  printf("\nFIGURE: no double hold: %d threads x %d cycles on %d slots in "
         "%lld ms, %d on the fast path\n",
         DH_THREADS, m.cycles, DH_SIZE, (long long)(tu_now_ms() - t0),
         atomic_load(&m.fast));
  if (atomic_load(&m.errors))
    fprintf(stderr, "no double hold: last error %s\n",
            cpool_err_name(atomic_load(&m.last_err)));
  TU_ASSERT_EQ(atomic_load(&m.overlaps), 0);
  TU_ASSERT_EQ(atomic_load(&m.errors), 0);
  TU_ASSERT_EQ(atomic_load(&m.io_errors), 0);
  TU_ASSERT_EQ(atomic_load(&m.ok), DH_THREADS * m.cycles);
  TU_ASSERT_INT(atomic_load(&m.fast), >, 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, (uint64_t)atomic_load(&m.ok));
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, DH_SIZE);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- close ----------------------------------------------------------- */

/* cpool_close on its own thread: the test thread holds a connection. */
typedef struct closer {
  cpool_t *pool;
  int drain_ms;
  pthread_t thread;
  atomic_int rc; /* 1 until close returned */
  int64_t t1_ms; /* when close returned */
} closer;

static void *closer_main(void *arg) {
  closer *c = arg;

  int rc = cpool_close(c->pool, c->drain_ms);
  c->t1_ms = tu_now_ms();
  atomic_store(&c->rc, rc);
  return NULL;
}

static int closer_start(closer *c, cpool_t *pool, int drain_ms) {
  memset(c, 0, sizeof *c);
  c->pool = pool;
  c->drain_ms = drain_ms;
  atomic_store(&c->rc, 1);
  return pthread_create(&c->thread, NULL, closer_main, c);
}

/* Parked slots are idle: close neither waits for them nor reports them
 * as checked out, whether the threads that parked them have exited or
 * are still alive (blocked). */
static void test_close_with_parked_slots(void) {
  enum { SIZE = 4 };
  parker k[SIZE];
  cpool_stats_t st;
  cpool_t *p;
  int open0, rc;
  int64_t t0, took;

  CU_ASSERT(ts_wait_open(srv, 0, 5000)); /* earlier tests' sockets gone */
  open0 = ts_get_counts(srv).open;

  /* Parked by threads that have exited; no drain: EBUSY if any counted. */
  p = open_pool(SIZE, 500);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < SIZE; i++) {
    CU_ASSERT_FATAL(parker_start(&k[i], p, 1, 0, 0) == 0);
    parker_wait_parked(&k[i]);
    parker_done(&k[i]);
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle, SIZE);
  TU_ASSERT_EQ(st.busy, 0);
  TU_ASSERT_EQ(st.checkouts, SIZE);
  t0 = tu_now_ms();
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  took = tu_now_ms() - t0;
  TU_ASSERT_INT(took, <, 1000);
  CU_ASSERT(ts_wait_open(srv, open0, 5000));

  /* Parked by threads still alive, blocked; a drain of 3 s would run out
   * (and give EBUSY) if close waited for a parked slot. */
  p = open_pool(SIZE, 500);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < SIZE; i++) {
    CU_ASSERT_FATAL(parker_start(&k[i], p, 1, 1, 0) == 0);
    parker_wait_parked(&k[i]);
  }
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.idle, SIZE);
  TU_ASSERT_EQ(st.busy, 0);
  t0 = tu_now_ms();
  rc = cpool_close(p, 3000);
  took = tu_now_ms() - t0;
  TU_ASSERT_CODE(rc, 0);
  TU_ASSERT_INT(took, <, 1000);
  /* The parkers never touch the pool again. */
  for (int i = 0; i < SIZE; i++) {
    sem_post(&k[i].go);
    parker_done(&k[i]);
  }
  CU_ASSERT(ts_wait_open(srv, open0, 5000));
  printf("\nFIGURE: close with %d slots parked by blocked threads took "
         "%lld ms\n",
         SIZE, (long long)took);
}

/* Checkout and checkin in a loop until stop or CPOOL_ESHUTDOWN. */
typedef struct hammer {
  cpool_t *pool;
  int timeout_ms;
  pthread_t thread;
  atomic_int stop;
  atomic_int ok, fast; /* checkouts, and of them fast-path ones */
  atomic_int shutdown; /* ended on CPOOL_ESHUTDOWN */
  atomic_int errors, last_err, bad_checkin;
} hammer;

static void *hammer_main(void *arg) {
  hammer *h = arg;

  while (!atomic_load(&h->stop)) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(h->pool, &c, h->timeout_ms, NULL);

    if (rc == CPOOL_ESHUTDOWN) {
      atomic_store(&h->shutdown, 1);
      break;
    }
    if (rc != 0) {
      atomic_fetch_add(&h->errors, 1);
      atomic_store(&h->last_err, rc);
      continue;
    }
    if (lease_of(c) == CPOOL__LEASE_HELD)
      atomic_fetch_add(&h->fast, 1);
    atomic_fetch_add(&h->ok, 1);
    if (cpool_checkin(h->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&h->bad_checkin, 1);
  }
  return NULL;
}

static int hammer_start(hammer *h, cpool_t *pool, int timeout_ms) {
  memset(h, 0, sizeof *h);
  h->pool = pool;
  h->timeout_ms = timeout_ms;
  return pthread_create(&h->thread, NULL, hammer_main, h);
}

/* Pool of 1.  A cycles the slot on the fast path; each round, this thread
 * (B) asks A to pause and checks out with a 2 s timeout.  A finishes the
 * cycle it is in, so its last act is a fast checkin that parks the slot,
 * often just as B queues, and then A stays away until B is served: if
 * neither side saw the other (the Dekker pair on lease and nwaiters), B
 * sleeps beside the parked slot until its timeout.  Up to 3000 rounds,
 * as many as fit in 1.5 s. */
typedef struct pause_hammer {
  cpool_t *pool;
  pthread_t thread;
  atomic_int stop, pause;
  atomic_int ok, fast, paused, errors, last_err, bad_checkin, stalled;
} pause_hammer;

static void *pause_hammer_main(void *arg) {
  pause_hammer *h = arg;
  uint32_t x = 2463534242u; /* xorshift32 */

  while (!atomic_load(&h->stop)) {
    cpool_conn_t *c = NULL;
    int rc = cpool_checkout(h->pool, &c, 2000, NULL);

    if (rc != 0) {
      atomic_fetch_add(&h->errors, 1);
      atomic_store(&h->last_err, rc);
    } else {
      if (lease_of(c) == CPOOL__LEASE_HELD)
        atomic_fetch_add(&h->fast, 1);
      atomic_fetch_add(&h->ok, 1);
      /* Hold it 0..15 us, spinning, so that B often queues meanwhile and
       * this checkin races with it. */
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      for (int64_t until = tu_now_us() + x % 16; tu_now_us() < until;)
        ;
      if (cpool_checkin(h->pool, c, CPOOL_CONN_OK) != 0)
        atomic_fetch_add(&h->bad_checkin, 1);
    }
    if (atomic_load(&h->pause)) {
      /* Parked (or handed over) and out of the way until B is served. */
      int64_t dl = tu_now_ms() + 10000;
      atomic_fetch_add(&h->paused, 1);
      while (atomic_load(&h->pause) && !atomic_load(&h->stop) &&
             tu_now_ms() < dl)
        sched_yield();
      if (atomic_load(&h->pause) && !atomic_load(&h->stop))
        atomic_fetch_add(&h->stalled, 1);
    }
  }
  return NULL;
}

static void test_waiter_beside_parked_slot(void) {
  /* Rounds, or as many as fit in the budget (a round is a few context
   * switches: 0.2..1 ms here, more under the sanitizers). */
  const int rounds = 3000, min_rounds = 100;
  const int64_t budget_ms = 1500;
  cpool_t *p = open_pool(1, 500);
  int done = 0, got = 0, timeouts = 0, other = 0, other_rc = 0;
  int bad_checkin = 0, a_idle = 0;
  int64_t max_wait_us = 0, t0 = tu_now_ms();
  cpool_stats_t st;
  pause_hammer a;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&a, 0, sizeof a);
  a.pool = p;
  CU_ASSERT_FATAL(pthread_create(&a.thread, NULL, pause_hammer_main, &a) == 0);
  /* At least min_rounds however busy the machine (up to 30 s), then as
   * many as fit in the budget. */
  while (done < rounds &&
         (done < min_rounds ? tu_now_ms() - t0 < 30000
                            : tu_now_ms() - t0 < budget_ms)) {
    cpool_conn_t *c = NULL;
    int seen = atomic_load(&a.ok), rc;
    int64_t dl = tu_now_ms() + 2000, w0, waited;

    /* A is cycling again (a couple of times since it last paused). */
    while (atomic_load(&a.ok) < seen + 2 && tu_now_ms() < dl)
      sched_yield();
    if (atomic_load(&a.ok) < seen + 2)
      a_idle++;
    atomic_store(&a.pause, 1);
    w0 = tu_now_us();
    rc = cpool_checkout(p, &c, 2000, NULL);
    waited = tu_now_us() - w0;
    if (waited > max_wait_us)
      max_wait_us = waited;
    if (rc == 0) {
      got++;
      if (cpool_checkin(p, c, CPOOL_CONN_OK) != 0)
        bad_checkin++;
    } else if (rc == CPOOL_ETIMEDOUT) {
      timeouts++;
    } else {
      other++;
      other_rc = rc;
    }
    atomic_store(&a.pause, 0);
    done++;
  }
  atomic_store(&a.stop, 1);
  pthread_join(a.thread, NULL);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  printf("\nFIGURE: waiter beside a parked slot: %d rounds in %lld ms, "
         "longest checkout %lld us, %d timeouts; A: %d checkouts, %d on the "
         "fast path, paused %d times; %llu checkouts queued\n",
         done, (long long)(tu_now_ms() - t0), (long long)max_wait_us, timeouts,
         atomic_load(&a.ok), atomic_load(&a.fast), atomic_load(&a.paused),
         (unsigned long long)st.waits);
  if (other)
    fprintf(stderr, "waiter beside a parked slot: checkout got %s\n",
            cpool_err_name(other_rc));
  if (atomic_load(&a.errors))
    fprintf(stderr, "waiter beside a parked slot: A got %s\n",
            cpool_err_name(atomic_load(&a.last_err)));
  TU_ASSERT_EQ(timeouts, 0);
  TU_ASSERT_EQ(other, 0);
  TU_ASSERT_EQ(bad_checkin, 0);
  TU_ASSERT_EQ(a_idle, 0);
  TU_ASSERT_EQ(got, done);
  TU_ASSERT_INT(done, >=, min_rounds);
  TU_ASSERT_INT(max_wait_us, <, 500000);
  TU_ASSERT_EQ(atomic_load(&a.errors), 0);
  TU_ASSERT_EQ(atomic_load(&a.bad_checkin), 0);
  TU_ASSERT_EQ(atomic_load(&a.stalled), 0);
  TU_ASSERT_INT(atomic_load(&a.fast), >, 0);
  TU_ASSERT_EQ(st.checkouts, (uint64_t)got + (uint64_t)atomic_load(&a.ok));
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* A thread cycles its slot on the fast path while another thread closes
 * the pool: it gets CPOOL_ESHUTDOWN soon and stops.  As in
 * close/close_wakes_waiters, the test thread holds a connection and the
 * close drains for as long as it takes, so the pool cannot be freed while
 * the hammering thread may still call into it: only once that thread has
 * been joined is the held connection checked in and close let go. */
static void test_close_while_hammering(void) {
  const int rounds = TU_SANITIZED ? 5 : 20;
  int no_start = 0, stuck = 0, slow = 0, errors = 0, bad_checkin = 0;
  int bad_guard = 0, bad_close = 0, slow_close = 0, fast = 0;
  int64_t max_shut_ms = 0;

  for (int r = 0; r < rounds; r++) {
    cpool_t *p = open_pool(2, 500);
    cpool_conn_t *guard = NULL;
    int64_t t_close, t_ci, shut_ms;
    hammer h;
    closer cl;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    TU_ASSERT_CODE(cpool_checkout(p, &guard, CPOOL_NOWAIT, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(guard);
    CU_ASSERT_FATAL(hammer_start(&h, p, 1000) == 0);
    TU_WAIT(atomic_load(&h.ok) >= 50, 5000);
    no_start += atomic_load(&h.ok) < 50;
    t_close = tu_now_ms();
    CU_ASSERT_FATAL(closer_start(&cl, p, CPOOL_WAIT_FOREVER) == 0);
    TU_WAIT(atomic_load(&h.shutdown), 5000);
    if (!atomic_load(&h.shutdown)) {
      stuck++;
      atomic_store(&h.stop, 1); /* the pool is still open: guard held */
    }
    pthread_join(h.thread, NULL);
    shut_ms = tu_now_ms() - t_close;
    if (shut_ms > max_shut_ms)
      max_shut_ms = shut_ms;
    slow += shut_ms >= 1000;
    errors += atomic_load(&h.errors);
    bad_checkin += atomic_load(&h.bad_checkin);
    fast += atomic_load(&h.fast);
    /* Close is still draining: our connection. */
    if (atomic_load(&cl.rc) != 1)
      bad_close++;
    t_ci = tu_now_ms();
    bad_guard += cpool_checkin(p, guard, CPOOL_CONN_OK) != 0;
    pthread_join(cl.thread, NULL);
    bad_close += atomic_load(&cl.rc) != 0;
    slow_close += cl.t1_ms - t_ci >= 1000;
  }
  printf("\nFIGURE: close while hammering: %d rounds, %d fast-path "
         "checkouts, hammering thread out with ESHUTDOWN at most %lld ms "
         "after close began\n",
         rounds, fast, (long long)max_shut_ms);
  TU_ASSERT_EQ(no_start, 0);
  TU_ASSERT_EQ(stuck, 0);
  TU_ASSERT_EQ(slow, 0);
  TU_ASSERT_EQ(errors, 0);
  TU_ASSERT_EQ(bad_checkin, 0);
  TU_ASSERT_EQ(bad_guard, 0);
  TU_ASSERT_EQ(bad_close, 0);
  TU_ASSERT_EQ(slow_close, 0);
  TU_ASSERT_INT(fast, >, 0);
}

/* ---- the idle check, broken checkins, pings -------------------------- */

/* The idle check on a parked slot whose connection the server made dead
 * (tu_idle_check_case): the next checkout by the thread that parked it
 * gets, with CPOOL_IDLE_CHECK_ALWAYS, or N and idle longer than N, a peek:
 * a new connection, and the dead one counted.  With CPOOL_IDLE_CHECK_NEVER,
 * never a peek: the dead one, as documented. */
static void assert_parked(cpool_conn_t *c) {
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_PARKED);
}

static void test_idle_check_parked_dead(void) {
  tu_idle_check_case(CPOOL_IDLE_CHECK_ALWAYS, 0, 1, assert_parked);
  tu_idle_check_case(50, 150, 1, assert_parked); /* idle past: peek */
  tu_idle_check_case(CPOOL_IDLE_CHECK_NEVER, 0, 0, assert_parked);
}

/* Broken at checkin after a fast-path checkout: the worker reconnects it,
 * a waiting checkout gets the new connection, and the fast path works on
 * it again. */
static void test_broken_after_fast_checkout(void) {
  ts_counts before = ts_get_counts(srv);
  cpool_t *p = open_pool(1, 500);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  int64_t t0;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  c = take_fast(p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "fast", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_NONE);

  /* Waits for the reconnect (no backoff after a broken checkin). */
  t0 = tu_now_ms();
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_INT(tu_now_ms() - t0, <, 1000);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "reconnected", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.broken_checkins, 1);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.disconnects, 1);
  TU_ASSERT_EQ(st.idle_check_failures, 0);
  TU_ASSERT_EQ(st.checkouts, 3);
  CU_ASSERT(ts_wait_accepted(srv, before.accepted + 2, 5000));

  /* Parked again, and taken on the fast path again. */
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_HELD);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "fast again", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 4);
  TU_ASSERT_EQ(st.idle, 1);
  TU_ASSERT_EQ(st.busy, 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* One thread, two pools in turn: the thread remembers one parked slot,
 * of one pool, at a time; the other pool's checkouts go under the lock,
 * and both keep working with the right counts. */
typedef struct tp_state {
  cpool_t *pool[2];
  int n[2], fast[2]; /* checkouts, and of them fast-path ones */
  int failed;
} tp_state;

static cpool_conn_t *tp_out(tp_state *t, int q) {
  cpool_conn_t *c = NULL;
  int rc = cpool_checkout(t->pool[q], &c, CPOOL_NOWAIT, NULL);

  if (rc != 0) {
    fprintf(stderr, "two pools: checkout from pool %d: %s\n", q,
            cpool_err_name(rc));
    t->failed++;
    return NULL;
  }
  t->n[q]++;
  t->fast[q] += lease_of(c) == CPOOL__LEASE_HELD;
  return c;
}

static void tp_in(tp_state *t, int q, cpool_conn_t *c) {
  if (c != NULL && cpool_checkin(t->pool[q], c, CPOOL_CONN_OK) != 0)
    t->failed++;
}

static void test_two_pools_alternating(void) {
  enum { SIZE = 2, N = 400 };
  tp_state t;
  cpool_stats_t st;

  memset(&t, 0, sizeof t);
  t.pool[0] = open_pool(SIZE, -1);
  t.pool[1] = open_pool(SIZE, -1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t.pool[0]);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t.pool[1]);
  for (int i = 0; i < N && !t.failed; i++) {
    int a = i % 8 < 4 ? 0 : 1, b = 1 - a; /* which pool goes first */
    cpool_conn_t *ca, *cb;

    switch (i % 4) {
    case 0: /* a out and in, then b */
      ca = tp_out(&t, a);
      tp_in(&t, a, ca);
      cb = tp_out(&t, b);
      tp_in(&t, b, cb);
      break;
    case 1: /* both out; a in first */
      ca = tp_out(&t, a);
      cb = tp_out(&t, b);
      tp_in(&t, a, ca);
      tp_in(&t, b, cb);
      break;
    case 2: /* both out; b in first */
      ca = tp_out(&t, a);
      cb = tp_out(&t, b);
      if (i == 2 && ca != NULL) /* a connection of the other pool */
        TU_ASSERT_CODE(cpool_checkin(t.pool[b], ca, CPOOL_CONN_OK),
                       CPOOL_EINVAL);
      tp_in(&t, b, cb);
      tp_in(&t, a, ca);
      break;
    default: /* a twice in a row, then b twice: each second one fast */
      for (int k = 0; k < 2; k++) {
        int q = k == 0 ? a : b;
        cpool_conn_t *c = tp_out(&t, q);
        tp_in(&t, q, c);
        c = tp_out(&t, q);
        if (c != NULL && lease_of(c) != CPOOL__LEASE_HELD) {
          fprintf(stderr,
                  "two pools: round %d: pool %d's remembered slot "
                  "not taken on the fast path\n",
                  i, q);
          t.failed++;
        }
        if (c != NULL && i % 50 == 3 &&
            tu_echo(cpool_conn_fd(c), "pool", 2000) != 0)
          t.failed++;
        tp_in(&t, q, c);
      }
      break;
    }
  }
  TU_ASSERT_EQ(t.failed, 0);
  printf("\nFIGURE: two pools alternating: %d and %d checkouts, %d and %d "
         "on the fast path\n",
         t.n[0], t.n[1], t.fast[0], t.fast[1]);
  for (int q = 0; q < 2; q++) {
    TU_ASSERT_INT(t.fast[q], >, 0);
    TU_ASSERT_INT(t.fast[q], <, t.n[q]);
    TU_ASSERT_CODE(cpool_stats(t.pool[q], &st), 0);
    TU_ASSERT_EQ(st.checkouts, (uint64_t)t.n[q]);
    TU_ASSERT_EQ(st.idle, SIZE);
    TU_ASSERT_EQ(st.busy, 0);
    TU_ASSERT_EQ(st.connects, SIZE);
    TU_ASSERT_EQ(st.checked_out_errors, 0);
    tu_assert_all_slots_free(t.pool[q], SIZE);
  }
  TU_ASSERT_CODE(cpool_close(t.pool[0], 0), 0);
  TU_ASSERT_CODE(cpool_close(t.pool[1], 0), 0);
}

/* on_ping for the echo server: a round trip. */
static int ping_echo(int fd, void *data, void *arg) {
  (void)data;
  atomic_fetch_add((atomic_int *)arg, 1);
  return tu_echo(fd, "PING\r\n", 1000);
}

/* A parked slot is idle: its worker reclaims and pings it once its ping
 * is due.  A slot held on the fast path is not idle: never pinged while
 * held, however long. */
static void test_ping_reclaims_parked(void) {
  enum { INTERVAL_MS = 200 };
  cpool_config cfg;
  cpool_conn_t *c = NULL, *d = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  atomic_int pings = 0;
  uint64_t held_pings;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.ping_interval_ms = INTERVAL_MS;
  cfg.on_ping = ping_echo;
  cfg.cb_arg = &pings;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);

  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_WAIT_STATS(p, st, st.pings >= 1 && st.idle == 1, 3000);
  TU_ASSERT_INT(st.pings, >=, 1);
  TU_ASSERT_EQ(st.ping_failures, 0);
  TU_ASSERT_EQ(st.idle, 1);
  TU_ASSERT_INT(atomic_load(&pings), >=, 1);
  /* Reclaimed from the park by its worker. */
  TU_ASSERT_EQ(lease_of(c), CPOOL__LEASE_NONE);

  /* The ping's bytes were its own: the stream is clean. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "after ping", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);

  /* Parked just now, taken back at once on the fast path, and held past
   * the interval: no ping meanwhile, the socket untouched. */
  TU_ASSERT_CODE(cpool_checkout(p, &d, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  TU_ASSERT_EQ(lease_of(d), CPOOL__LEASE_HELD);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  held_pings = st.pings;
  tu_sleep_ms(INTERVAL_MS + 150); /* holding it is what is under test */
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.pings, held_pings);
  TU_ASSERT_EQ(st.busy, 1);
  TU_ASSERT_EQ(lease_of(d), CPOOL__LEASE_HELD);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(d), "held", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, d, CPOOL_CONN_OK), 0);

  /* Parked again: pinged again once due. */
  TU_WAIT_STATS(p, st, st.pings > held_pings && st.idle == 1, 3000);
  TU_ASSERT_INT(st.pings, >, held_pings);
  TU_ASSERT_EQ(st.ping_failures, 0);
  TU_ASSERT_EQ(st.connects, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* ---- waiters beside the fast path: the review of 167c16f -------------- */

/* A slot taken on the fast path while nobody waits (HELD, no turn) is
 * handed over at its checkin like any other, so a waiter that queues
 * meanwhile has nothing to poll for: it sleeps until that checkin wakes
 * it.  It used to poll whenever any slot was on the fast list, every turn
 * and backing off to 16 turns (4 ms by default): 483 wake-ups while a
 * slot was held for 2 s.  Counted here as the waiting thread's voluntary
 * context switches (getrusage RUSAGE_THREAD, read in that thread) while
 * this thread holds the slot for HOLD_MS: before the fix over 100, now 1
 * or 2 (the condition wait, and perhaps the lock on the way out). */
typedef struct csw_waiter {
  cpool_t *pool;
  pthread_t thread;
  int rc;
  cpool_conn_t *conn;
  long nvcsw; /* voluntary context switches during the checkout */
  int64_t t0_us, t1_us;
} csw_waiter;

static void *csw_waiter_main(void *arg) {
  csw_waiter *w = arg;
  struct rusage r0, r1;

  getrusage(RUSAGE_THREAD, &r0);
  w->t0_us = tu_now_us();
  w->rc = cpool_checkout(w->pool, &w->conn, 5000, NULL);
  w->t1_us = tu_now_us();
  getrusage(RUSAGE_THREAD, &r1);
  w->nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
  return NULL;
}

static void test_waiter_no_polling_held(void) {
  enum { HOLD_MS = 500, MAX_SWITCHES = 10 };
  cpool_t *p = open_pool(1, -1); /* default turns of 250 us */
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  csw_waiter w;
  int64_t t_in;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  c = take_fast(p); /* on the fast path, and without a turn */
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);

  memset(&w, 0, sizeof w);
  w.pool = p;
  w.rc = 1; /* not a cpool code: did not return */
  CU_ASSERT_FATAL(pthread_create(&w.thread, NULL, csw_waiter_main, &w) == 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  tu_sleep_ms(HOLD_MS); /* the slot held while a caller waits: under test */
  t_in = tu_now_us();
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  pthread_join(w.thread, NULL);
  printf("\nFIGURE: waiter beside a slot held %d ms on the fast path: %ld "
         "voluntary context switches, served %lld us after the checkin\n",
         HOLD_MS, w.nvcsw, (long long)(w.t1_us - t_in));
  TU_ASSERT_CODE(w.rc, 0);
  if (w.rc == 0) {
    CU_ASSERT(w.conn == c);
    TU_ASSERT_CODE(cpool_checkin(p, w.conn, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_INT(w.t1_us - w.t0_us, >=, HOLD_MS * 1000LL);
  TU_ASSERT_INT(w.t1_us - t_in, <, 500000);
  TU_ASSERT_INT(w.nvcsw, <=, MAX_SWITCHES);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.waits, 1);
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* A caller that asks with CPOOL_NOWAIT in a tight loop, holding the slot
 * 20 us each time, while this thread checks out with a timeout.  Once its
 * turn (250 us) is over it must be refused until the waiter is served.  It
 * used to win a new turn by asking again (the refusal reset its turn), and
 * so barged past the waiter turn after turn: about 100 ms per checkout,
 * thousands of its checkouts, against a few ms and a turn's worth (a dozen)
 * now.  Both are counted: its checkouts made while somebody waited (it
 * looks at the stats while it holds the slot), per checkout of this
 * thread, which bounds the turns whatever the scheduler does, and this
 * thread's waits over SLOW_MS, with a few allowed for a busy machine.
 * Rounds: up to ROUNDS, as many as fit in the budget; each waits until the
 * hammering thread has cycled twice, so that it holds or has just parked
 * the slot when this thread asks. */
typedef struct nowait_hammer {
  cpool_t *pool;
  pthread_t thread;
  atomic_int stop;
  atomic_int ok, refused, barged, errors, last_err, bad_checkin;
} nowait_hammer;

static void *nowait_hammer_main(void *arg) {
  nowait_hammer *h = arg;

  while (!atomic_load(&h->stop)) {
    cpool_conn_t *c = NULL;
    cpool_stats_t st;
    int rc = cpool_checkout(h->pool, &c, CPOOL_NOWAIT, NULL);
    int64_t until = tu_now_us() + 20; /* a 20 us request, on the CPU */

    if (rc == CPOOL_ECHECKEDOUT) {
      /* Asks again at once.  (This used to keep the waiter woken for the
       * slot from the pool's lock, which is not fair: under ASan a waiter
       * waited up to 450 ms for the lock alone, past no checkout, at a
       * million refusals a second.  A nowait caller past its turn is now
       * turned away without the lock.) */
      atomic_fetch_add(&h->refused, 1);
      continue;
    }
    if (rc != 0) {
      atomic_fetch_add(&h->errors, 1);
      atomic_store(&h->last_err, rc);
      continue;
    }
    atomic_fetch_add(&h->ok, 1);
    if (cpool_stats(h->pool, &st) == 0 && st.waiters > 0)
      atomic_fetch_add(&h->barged, 1); /* while held: past the waiter */
    while (tu_now_us() < until)
      ;
    if (cpool_checkin(h->pool, c, CPOOL_CONN_OK) != 0)
      atomic_fetch_add(&h->bad_checkin, 1);
  }
  return NULL;
}

/* Turns of 250 us that a caller coming back within that earns longer, up
 * to handoff_max_us (max_us; 250 for turns of 250 us exactly).  A caller
 * may barge for barge_limit checkouts in one wait of this thread. */
static void nowait_no_new_turn(int max_us, int barge_limit) {
  enum { ROUNDS = 60, MIN_ROUNDS = 10 };
  enum { SLOW_MS = TU_SANITIZED ? 100 : 30, MAX_SLOW = 2 };
  const int64_t budget_ms = 1200;
  cpool_config cfg;
  cpool_t *p = NULL;
  int done = 0, got = 0, slow = 0, starved = 0, errors = 0, err_rc = 0;
  int bad_checkin = 0, h_idle = 0, max_barges = 0;
  int64_t worst_us = 0, t0 = tu_now_ms();
  cpool_stats_t st;
  nowait_hammer h;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1;
  cfg.handoff_after_us = 250;
  cfg.handoff_max_us = max_us;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(&h, 0, sizeof h);
  h.pool = p;
  CU_ASSERT_FATAL(pthread_create(&h.thread, NULL, nowait_hammer_main, &h) == 0);
  /* At least MIN_ROUNDS however busy the machine (up to 30 s). */
  while (done < ROUNDS &&
         (done < MIN_ROUNDS ? tu_now_ms() - t0 < 30000
                            : tu_now_ms() - t0 < budget_ms)) {
    cpool_conn_t *c = NULL;
    int seen = atomic_load(&h.ok), b0, barges, rc;
    int64_t dl = tu_now_ms() + 2000, w0, waited;

    while (atomic_load(&h.ok) < seen + 2 && tu_now_ms() < dl)
      sched_yield();
    h_idle += atomic_load(&h.ok) < seen + 2;
    b0 = atomic_load(&h.barged);
    w0 = tu_now_us();
    rc = cpool_checkout(p, &c, 1000, NULL);
    waited = tu_now_us() - w0;
    barges = atomic_load(&h.barged) - b0;
    if (waited > worst_us)
      worst_us = waited;
    if (barges > max_barges)
      max_barges = barges;
    slow += waited > SLOW_MS * 1000LL;
    starved += barges > barge_limit;
    if (rc == 0) {
      got++;
      bad_checkin += cpool_checkin(p, c, CPOOL_CONN_OK) != 0;
    } else {
      errors++;
      err_rc = rc;
    }
    done++;
  }
  atomic_store(&h.stop, 1);
  pthread_join(h.thread, NULL);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  printf("\nFIGURE: waiter against a nowait caller, turns of 250 us earned "
         "up to %d us: %d checkouts in %lld ms "
         "(%llu queued), %d over %d ms, longest %lld us; nowait caller: %d "
         "served (%d past the waiter, at most %d in one wait), %d refused\n",
         max_us, done, (long long)(tu_now_ms() - t0),
         (unsigned long long)st.waits, slow, SLOW_MS, (long long)worst_us,
         atomic_load(&h.ok), atomic_load(&h.barged), max_barges,
         atomic_load(&h.refused));
  if (errors)
    fprintf(stderr, "waiter against a nowait caller: checkout got %s\n",
            cpool_err_name(err_rc));
  TU_ASSERT_EQ(errors, 0);
  TU_ASSERT_EQ(got, done);
  TU_ASSERT_EQ(bad_checkin, 0);
  TU_ASSERT_EQ(h_idle, 0);
  TU_ASSERT_INT(done, >=, MIN_ROUNDS);
  /* Most checkouts queue: the hammering thread holds the slot.  (How
   * often it barges or is refused depends on the scheduler: on a busy
   * machine the waiter may run at once on its checkin, every time.) */
  TU_ASSERT_INT(st.waits, >=, (uint64_t)done / 2);
  TU_ASSERT_EQ(starved, 0);
  TU_ASSERT_INT(slow, <=, MAX_SLOW);
  TU_ASSERT_EQ(atomic_load(&h.errors), 0);
  TU_ASSERT_EQ(atomic_load(&h.bad_checkin), 0);
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* Turns of 250 us exactly: a dozen 20 us checkouts, and 50 is 4 turns. */
static void test_nowait_no_new_turn(void) {
  nowait_no_new_turn(250, 50);
}

/* Turns earned up to 5 ms: the nowait caller comes back within 250 us,
 * but its turns begin by barging past the waiter, never by being served
 * from the queue, so they are not earned: the same bound.  (When they
 * were, it made about 250 checkouts per wait of this thread, which got
 * one checkout every 5 ms.) */
static void test_nowait_no_new_turn_earned(void) {
  nowait_no_new_turn(5000, 50);
}

/* Long turns (100 ms).  This thread holds slot X on the fast path (HELD,
 * no turn), and thread A holds slot Y, taken under the lock; a waiter
 * queues; QUEUED_MS later A checks Y in and barges straight back for it
 * (a turn begins), uses it for USE_MS and checks it in within that turn:
 * parked beside the waiter, and then left there.  The waiter must take it
 * within about a turn (it is woken for it now).  It used to be polling
 * since it queued, because X was on the fast list, backing off to 16
 * turns; the wake-up for Y that it lost to the barge doubled its poll
 * again, and Y sat idle beside it until that poll, about 800 ms later.
 * (Were Y parked before the waiter had run after that wake-up, it would
 * find Y then, before and after the fix: the use of Y is what leaves it
 * time to.)  A is a new thread each round, with no turn behind it in any
 * pool (a turn elsewhere would keep it from barging here).  Barging back
 * can lose to the waiter: then the round is run again (under TSan it
 * loses most of the time, hence up to 50 rounds). */
typedef struct turn_parker {
  cpool_t *pool;
  pthread_t thread;
  sem_t holding, go;
  int rc, barge_rc, echo_rc, checkin_rc[2], waiters, slot, barged_slot;
  int64_t t_park_ms; /* just before the checkin that parks Y */
} turn_parker;

static void *turn_parker_main(void *arg) {
  enum { USE_MS = 20 };
  turn_parker *a = arg;
  cpool_conn_t *y = NULL;
  cpool_stats_t st;

  a->rc = cpool_checkout(a->pool, &y, CPOOL_NOWAIT, NULL);
  a->slot = y ? cpool_conn_slot(y) : -1;
  sem_post(&a->holding);
  if (a->rc != 0)
    return NULL;
  sem_wait(&a->go);
  a->checkin_rc[0] = cpool_checkin(a->pool, y, CPOOL_CONN_OK);
  y = NULL;
  a->barge_rc = cpool_checkout(a->pool, &y, CPOOL_NOWAIT, NULL);
  if (a->barge_rc != 0)
    return NULL;
  a->barged_slot = cpool_conn_slot(y);
  /* Still queued?  Else the waiter took Y and gave it back first. */
  a->waiters = cpool_stats(a->pool, &st) == 0 ? st.waiters : -1;
  a->echo_rc = tu_echo(cpool_conn_fd(y), "within the turn", 2000);
  tu_sleep_ms(USE_MS);        /* the rest of a request within the turn */
  a->t_park_ms = tu_now_ms(); /* the waiter cannot be served before this */
  a->checkin_rc[1] = cpool_checkin(a->pool, y, CPOOL_CONN_OK);
  return NULL;
}

static void test_parked_in_turn_taken(void) {
  enum { TURN_US = 100000, QUEUED_MS = 350, MAX_TAKE_MS = 200, TRIES = 50 };
  cpool_config cfg;
  cpool_conn_t *x = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int tries = 0, measured = 0;
  int64_t took_ms = -1, queued_ms = 0;

  tu_config(&cfg, ts_port(srv), 2);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = -1;
  cfg.handoff_after_us = TURN_US;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  x = take_fast(p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);

  while (!measured && tries < TRIES) {
    turn_parker a;
    tu_waiter w;
    int64_t t_q;

    tries++;
    memset(&a, 0, sizeof a);
    a.pool = p;
    a.barge_rc = a.rc = 1; /* not a cpool code: not run */
    sem_init(&a.holding, 0, 0);
    sem_init(&a.go, 0, 0);
    CU_ASSERT_FATAL(pthread_create(&a.thread, NULL, turn_parker_main, &a) == 0);
    CU_ASSERT_FATAL(tu_sem_wait_ms(&a.holding, 5000) == 0);
    TU_ASSERT_CODE(a.rc, 0);
    TU_ASSERT_INT(a.slot, !=, cpool_conn_slot(x));
    TU_ASSERT_EQ(tu_waiter_start(&w, p, 3000, 1, NULL), 0);
    TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
    TU_ASSERT_EQ(st.waiters, 1);
    t_q = tu_now_ms();
    tu_sleep_ms(QUEUED_MS); /* how long it has waited: under test */
    sem_post(&a.go);
    pthread_join(a.thread, NULL);
    tu_waiter_join(&w);
    TU_ASSERT_CODE(a.checkin_rc[0], 0);
    TU_ASSERT_CODE(w.rc, 0);
    TU_ASSERT_CODE(w.checkin_rc, 0);
    if (a.barge_rc == 0) {
      TU_ASSERT_EQ(a.barged_slot, a.slot);
      TU_ASSERT_EQ(a.echo_rc, 0);
      TU_ASSERT_CODE(a.checkin_rc[1], 0);
    } else {
      TU_ASSERT_CODE(a.barge_rc, CPOOL_ECHECKEDOUT); /* the waiter has Y */
    }
    if (a.barge_rc == 0 && a.waiters == 1) {
      measured = 1;
      queued_ms = a.t_park_ms - t_q;
      took_ms = w.t1_ms - a.t_park_ms;
      TU_ASSERT_EQ(w.slot, a.slot);
    }
    sem_destroy(&a.holding);
    sem_destroy(&a.go);
  }
  printf("\nFIGURE: slot parked within a 100 ms turn beside a waiter queued "
         "for %lld ms: taken %lld ms later (%d tries)\n",
         (long long)queued_ms, (long long)took_ms, tries);
  TU_ASSERT_EQ(measured, 1);
  TU_ASSERT_BETWEEN(took_ms, 0, MAX_TAKE_MS);
  TU_ASSERT_CODE(cpool_checkin(p, x, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.timeouts, 0);
  tu_assert_all_slots_free(p, 2);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

CU_TestInfo fastpath_tests[] = {
    {"same_thread_counts", test_same_thread_counts},
    {"double_checkin_einval", test_double_checkin_einval},
    {"parked_slots_reclaimed", test_parked_slots_reclaimed},
    {"waiter_gets_checkin", test_waiter_gets_checkin},
    {"waiter_beside_parked_slot", test_waiter_beside_parked_slot},
    {"no_double_hold", test_no_double_hold},
    {"close_with_parked_slots", test_close_with_parked_slots},
    {"close_while_hammering", test_close_while_hammering},
    {"idle_check_parked_dead", test_idle_check_parked_dead},
    {"broken_after_fast_checkout", test_broken_after_fast_checkout},
    {"two_pools_alternating", test_two_pools_alternating},
    {"ping_reclaims_parked", test_ping_reclaims_parked},
    {"waiter_no_polling_held", test_waiter_no_polling_held},
    {"nowait_no_new_turn", test_nowait_no_new_turn},
    {"nowait_no_new_turn_earned", test_nowait_no_new_turn_earned},
    {"parked_in_turn_taken", test_parked_in_turn_taken},
    CU_TEST_INFO_NULL,
};
