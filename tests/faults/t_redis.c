/*
 * Suite "redis_kill": a real redis-server, killed with SIGKILL under load
 * and restarted on the same port, three times.
 *
 *   - every checkout and every request returns within its timeout plus a
 *     small margin;
 *   - the only errors are CPOOL_ECLOSED, CPOOL_ETIMEDOUT, or an I/O error
 *     on a socket of the dead server: on a request in flight at the kill,
 *     or ("late") on one that started after it on a slot used within the
 *     idle check (the default, 500 ms: such a slot is trusted without a
 *     peek).  A late one fails at once (eof, ECONNRESET or EPIPE), and
 *     none starts once the server is back (every slot had been found dead
 *     by then);
 *   - the pool serves again within backoff_min_ms + 100 ms of the server
 *     being back (backoff_min_ms == backoff_max_ms, so the bound holds).
 */
#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum {
  SIZE = 4,
  THREADS = 8,
  TIMEOUT = 250,     /* checkout timeout, ms */
  IO_TIMEOUT = 1000, /* request timeout: only a dead server should end one
                        (a busy machine can stall a live one for 250 ms) */
  BACKOFF = 50,      /* backoff_min_ms == backoff_max_ms */
  CYCLES = 3,
  NCODES = 16,
  GRACE = 20, /* ms after the reap for the client kernel to see the close */
  /* The bound: serving again within backoff_min_ms + 100 ms of the
   * server being back.  Sanitizers slow the connect path several times. */
  RECOVERY_BOUND = BACKOFF + 100 + (TU_SANITIZED ? 150 : 0)
};

typedef struct load {
  cpool_t *pool;
  atomic_int stop;
  atomic_llong kill_ms, reap_ms; /* the latest kill; reap_ms INT64_MAX
                                    while the server is being killed */
  atomic_llong back_ms;          /* server back; 0 before the first kill */
  atomic_llong first_ok_ms;      /* first success after back_ms, or 0 */
  /* Totals, from all threads. */
  atomic_llong ok, io_inflight, io_late;
  /* The first late I/O error: when its request started, how long it took,
   * what it was. */
  atomic_llong late_t0_ms, late_took_ms, late_kind;
  atomic_llong late_kill_ms, late_reap_ms, late_back_ms;
  /* Late errors that break the rules above, and the slowest late one. */
  atomic_llong late_slow, late_kind_odd, late_after_back, late_max_ms;
  atomic_llong codes[NCODES]; /* by -code */
  atomic_llong slow_checkouts, slow_requests;
  atomic_llong max_checkout_ms, max_request_ms;
} load;

static void atomic_max(atomic_llong *m, long long v) {
  long long cur = atomic_load(m);
  while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
    ;
}

static void note_success(load *l, int64_t now) {
  long long back = atomic_load(&l->back_ms), zero = 0;
  if (back > 0 && now >= back)
    atomic_compare_exchange_strong(&l->first_ok_ms, &zero, now);
  atomic_fetch_add(&l->ok, 1);
}

/* One request: checkout, PING, checkin; records what happened. */
static void one_request(load *l) {
  cpool_conn_t *c = NULL;
  int64_t t0 = tu_now_ms();
  int rc = cpool_checkout(l->pool, &c, TIMEOUT, NULL);
  int64_t t1 = tu_now_ms();

  atomic_max(&l->max_checkout_ms, t1 - t0);
  if (t1 - t0 > TIMEOUT + FH_MARGIN_MS)
    atomic_fetch_add(&l->slow_checkouts, 1);
  if (rc != 0) {
    atomic_fetch_add(&l->codes[(-rc) % NCODES], 1);
    tu_sleep_ms(1); /* the backend is down: do not spin on the lock */
    return;
  }
  int r = tu_io_ping(cpool_conn_fd(c), IO_TIMEOUT);
  int64_t t2 = tu_now_ms();
  atomic_max(&l->max_request_ms, t2 - t1);
  if (t2 - t1 > IO_TIMEOUT + FH_MARGIN_MS)
    atomic_fetch_add(&l->slow_requests, 1);
  cpool_checkin(l->pool, c, r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  if (r == 0) {
    note_success(l, t2);
    return;
  }
  /* In flight at the kill: it failed after the kill began and started
   * before the dead server's sockets were surely closed. */
  long long reap = atomic_load(&l->reap_ms);
  long long kill = atomic_load(&l->kill_ms), back = atomic_load(&l->back_ms);
  if (t2 >= kill && (reap == INT64_MAX || t0 <= reap + GRACE)) {
    atomic_fetch_add(&l->io_inflight, 1);
    return;
  }
  /* Late: it must have failed at once, as a closed socket does, and on a
   * socket of the server killed last (not after that kill's restart). */
  atomic_max(&l->late_max_ms, t2 - t1);
  if (t2 - t1 >= FH_MARGIN_MS)
    atomic_fetch_add(&l->late_slow, 1);
  if (r != TU_IO_EOF && r != ECONNRESET && r != EPIPE)
    atomic_fetch_add(&l->late_kind_odd, 1);
  if (back > kill && t0 >= back)
    atomic_fetch_add(&l->late_after_back, 1);
  if (atomic_fetch_add(&l->io_late, 1) == 0) {
    atomic_store(&l->late_t0_ms, t0);
    atomic_store(&l->late_took_ms, t2 - t1);
    atomic_store(&l->late_kind, r);
    atomic_store(&l->late_kill_ms, atomic_load(&l->kill_ms));
    atomic_store(&l->late_reap_ms, reap);
    atomic_store(&l->late_back_ms, atomic_load(&l->back_ms));
  }
}

static void *load_thread(void *arg) {
  load *l = arg;
  for (int64_t n = 0; !atomic_load(&l->stop) && n < 10000000; n++)
    one_request(l);
  return NULL;
}

/* Kill the server, wait until every slot has failed a connect, restart,
 * and measure how long the pool takes to serve again. */
static int64_t kill_and_restart(load *l, tu_redis *redis, int cycle) {
  cpool_stats_t st, before;

  long long ok0 = atomic_load(&l->ok);
  tu_sleep_ms(200); /* mid-load: the threads keep the slots busy */
  TU_WAIT(atomic_load(&l->ok) >= ok0 + 50, 3000);
  TU_CHECK(atomic_load(&l->ok) >= ok0 + 50, "cycle %d: no load before kill",
           cycle);
  cpool_stats(l->pool, &before);

  atomic_store(&l->reap_ms, INT64_MAX);
  atomic_store(&l->kill_ms, tu_now_ms());
  tu_redis_kill(redis, SIGKILL);
  atomic_store(&l->reap_ms, tu_now_ms());

  TU_WAIT_STATS(l->pool, st,
                st.connect_failures >= before.connect_failures + SIZE &&
                    st.backoff + st.connecting == SIZE,
                3000);
  TU_CHECK(st.connect_failures >= before.connect_failures + SIZE,
           "cycle %d: only %llu connect failures after the kill", cycle,
           (unsigned long long)(st.connect_failures - before.connect_failures));
  tu_sleep_ms(100); /* callers meet a down backend for a while */

  atomic_store(&l->first_ok_ms, 0);
  atomic_store(&l->back_ms, INT64_MAX);
  int spawned = tu_redis_spawn(redis, redis->port) == 0;
  TU_CHECK(spawned, "cycle %d: redis-server did not restart", cycle);
  int64_t back = tu_redis_wait_ready(redis->port, 5000);
  TU_CHECK(back > 0, "cycle %d: redis-server not ready after 5 s", cycle);
  if (back <= 0)
    return -1;
  atomic_store(&l->back_ms, back);
  TU_WAIT(atomic_load(&l->first_ok_ms) != 0, 3000);
  long long first = atomic_load(&l->first_ok_ms);
  TU_CHECK(first != 0, "cycle %d: pool not serving 3 s after the restart",
           cycle);
  return first != 0 ? first - back : -1;
}

static void test_kill_restart(void) {
  int fds0 = tu_count_fds();
  pthread_t th[THREADS];
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  static load l; /* large; zeroed below */
  int64_t worst = -1;
  int started = 0;

  if (!tu_redis_available()) {
    TU_CHECK(0, "redis-server is not on the PATH: install the redis-server "
                "package (tools/run.sh test does) to run this fault test");
    return;
  }
  int port = tu_free_port();
  tu_redis redis;
  int spawned = tu_redis_spawn(&redis, port) == 0;
  TU_CHECK(spawned, "cannot start redis-server on port %d", port);
  if (!spawned)
    return;
  if (tu_redis_wait_ready(port, 5000) < 0) {
    TU_CHECK(0, "redis-server on port %d not ready after 5 s", port);
    tu_redis_kill(&redis, SIGKILL);
    return;
  }

  memset(&l, 0, sizeof l);
  fh_config(&cfg, "127.0.0.1", port, SIZE);
  cfg.backoff_min_ms = cfg.backoff_max_ms = BACKOFF;
  cfg.connect_timeout_ms = 200;
  int rc = cpool_open(&l.pool, &cfg, &err);
  TU_CHECK(rc == 0, "cpool_open: %s", err.message);
  if (rc != 0)
    goto out;
  TU_WAIT_STATS(l.pool, st, st.idle == SIZE, 3000);

  for (; started < THREADS; started++)
    if (pthread_create(&th[started], NULL, load_thread, &l) != 0)
      break;
  for (int cycle = 1; cycle <= CYCLES && redis.pid > 0; cycle++) {
    int64_t rec = kill_and_restart(&l, &redis, cycle);
    if (rec < 0)
      break;
    fh_figure("redis_kill: cycle %d: pool serving again %lld ms after "
              "redis-server was back (bound %d ms)",
              cycle, (long long)rec, RECOVERY_BOUND);
    TU_CHECK(rec <= RECOVERY_BOUND,
             "cycle %d: recovery took %lld ms, bound backoff_min_ms + 100%s "
             "= %d ms",
             cycle, (long long)rec,
             TU_SANITIZED ? " + 150 (sanitizer build)" : "", RECOVERY_BOUND);
    if (rec > worst)
      worst = rec;
  }
  long long ok0 = atomic_load(&l.ok);
  TU_WAIT(atomic_load(&l.ok) >= ok0 + 50, 3000); /* serving after the last */
  atomic_store(&l.stop, 1);
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);

  long long unexpected = 0;
  for (int i = 0; i < NCODES; i++) {
    int code = -i;
    if (code != CPOOL_ECLOSED && code != CPOOL_ETIMEDOUT && l.codes[i] > 0) {
      unexpected += l.codes[i];
      TU_CHECK(0, "checkout returned %s %lld times", cpool_err_name(code),
               (long long)l.codes[i]);
    }
  }
  TU_CHECK(l.late_slow == 0 && l.late_kind_odd == 0 && l.late_after_back == 0,
           "%lld requests failed with an I/O error although they started "
           "after the server was gone: %lld of them slower than %d ms (the "
           "slowest %lld ms), %lld not eof, ECONNRESET or EPIPE, %lld started "
           "after the server was back; the first late: %s after %lld ms, "
           "checkout at %lld ms, that cycle's kill at %lld, reap at %lld, "
           "back at %lld",
           (long long)l.io_late, (long long)l.late_slow, FH_MARGIN_MS,
           (long long)l.late_max_ms, (long long)l.late_kind_odd,
           (long long)l.late_after_back, tu_io_name((int)l.late_kind),
           (long long)l.late_took_ms, (long long)l.late_t0_ms,
           (long long)l.late_kill_ms, (long long)l.late_reap_ms,
           (long long)l.late_back_ms);
  TU_CHECK(l.slow_checkouts == 0,
           "%lld checkouts overran the %d ms timeout + %d ms (slowest %lld "
           "ms)",
           (long long)l.slow_checkouts, TIMEOUT, FH_MARGIN_MS,
           (long long)l.max_checkout_ms);
  TU_CHECK(l.slow_requests == 0,
           "%lld requests overran %d ms + %d ms (slowest %lld ms)",
           (long long)l.slow_requests, IO_TIMEOUT, FH_MARGIN_MS,
           (long long)l.max_request_ms);
  cpool_stats(l.pool, &st);
  fh_figure("redis_kill: %d kill/restart cycles, %d threads on %d slots: %lld "
            "ok, %lld ECLOSED, %lld ETIMEDOUT, %lld I/O errors in flight, "
            "%lld late (slot used within the idle check), %lld unexpected; "
            "slowest checkout %lld ms, slowest request %lld "
            "ms (timeouts %d and %d ms); worst recovery %lld ms; %llu "
            "reconnects",
            CYCLES, THREADS, SIZE, (long long)l.ok,
            (long long)l.codes[-CPOOL_ECLOSED],
            (long long)l.codes[-CPOOL_ETIMEDOUT], (long long)l.io_inflight,
            (long long)l.io_late,
            unexpected + (long long)(l.late_slow + l.late_kind_odd +
                                     l.late_after_back),
            (long long)l.max_checkout_ms,
            (long long)l.max_request_ms, TIMEOUT, IO_TIMEOUT, (long long)worst,
            (unsigned long long)st.connects);
out:
  fh_end_pool(l.pool, "kill_restart");
  tu_redis_kill(&redis, SIGTERM);
  fh_check_fds(fds0, "kill_restart");
}

const fault_test fault_redis_tests[] = {
    {"kill_restart", test_kill_restart},
    {NULL, NULL},
};
