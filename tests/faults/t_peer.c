/*
 * Suite "peer": a peer that resets mid-response, stalls forever, sends
 * bytes nobody asked for, or closes its end while the slot sits idle.
 * The caller gets an I/O error or its own timeout (never a hang), checks
 * the connection in broken, and the slot heals: a new connect, every slot
 * idle, requests work again.  Dead slots idle past the idle check (the
 * default, 500 ms) are caught at checkout and never handed to the caller;
 * a slot used more recently than that is trusted without a system call
 * (the thread's parked slot comes back on the lock-free fast path), so a
 * caller can get one the peer closed meanwhile: its I/O fails at once and
 * it checks the connection in broken.  garbage_check_always runs a fault
 * with CPOOL_IDLE_CHECK_ALWAYS.
 */
#include "fault.h"
#include "testserver.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

enum { SIZE = 2 };

typedef struct fixture {
  int fds0;
  ts_server *peer;
  cpool_t *pool;
} fixture;

/* idle_check_ms 0: the default. */
static int setup(fixture *f, int idle_check_ms) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;

  f->fds0 = tu_count_fds();
  f->pool = NULL;
  f->peer = ts_start(TS_PING, TS_TCP4);
  TU_CHECK(f->peer != NULL, "peer did not start");
  if (f->peer == NULL)
    return -1;
  fh_config(&cfg, "127.0.0.1", ts_port(f->peer), SIZE);
  cfg.idle_check_ms = idle_check_ms;
  int rc = cpool_open(&f->pool, &cfg, &err);
  TU_CHECK(rc == 0, "cpool_open: %s: %s", cpool_err_name(rc), err.message);
  if (rc != 0)
    return -1;
  TU_WAIT_STATS(f->pool, st, st.idle == SIZE, 3000);
  TU_CHECK(st.idle == SIZE, "idle %d of %d after open", st.idle, SIZE);
  /* Connected is not yet accepted: wait for the peer to hold them all. */
  int accepted = ts_wait_open_at_least(f->peer, SIZE, 3000);
  TU_CHECK(accepted, "the peer accepted %d of %d", ts_get_counts(f->peer).open,
           SIZE);
  return st.idle == SIZE && accepted ? 0 : -1;
}

static void teardown(fixture *f, const char *what) {
  fh_end_pool(f->pool, what);
  ts_stop(f->peer);
  fh_check_fds(f->fds0, what);
}

/* Every slot answers PING: take all of them at once, ping, give back. */
static void check_all_slots_work(cpool_t *pool, const char *what) {
  cpool_conn_t *c[SIZE] = {0};
  for (int i = 0; i < SIZE; i++) {
    int rc = cpool_checkout(pool, &c[i], 2000, NULL);
    TU_CHECK(rc == 0, "%s: checkout %d: %s", what, i, cpool_err_name(rc));
  }
  for (int i = 0; i < SIZE; i++) {
    if (c[i] == NULL)
      continue;
    int r = tu_io_ping(cpool_conn_fd(c[i]), 1000);
    TU_CHECK(r == 0, "%s: slot %d after healing: %s", what,
             cpool_conn_slot(c[i]), tu_io_name(r));
    cpool_checkin(pool, c[i], r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  }
}

/* After `broken` broken checkins: that many new connects, all idle. */
static void check_healed(fixture *f, const cpool_stats_t *before, int broken,
                         const char *what) {
  cpool_stats_t st;
  TU_WAIT_STATS(f->pool, st,
                st.connects >= before->connects + (uint64_t)broken &&
                    st.idle == SIZE,
                3000);
  TU_CHECK(st.connects >= before->connects + (uint64_t)broken,
           "%s: connects %llu -> %llu, expected %d more", what,
           (unsigned long long)before->connects,
           (unsigned long long)st.connects, broken);
  TU_CHECK(st.idle == SIZE, "%s: idle %d of %d", what, st.idle, SIZE);
  TU_CHECK(st.broken_checkins == before->broken_checkins + (uint64_t)broken,
           "%s: broken_checkins %llu -> %llu", what,
           (unsigned long long)before->broken_checkins,
           (unsigned long long)st.broken_checkins);
  TU_CHECK(st.disconnects >= before->disconnects + (uint64_t)broken,
           "%s: disconnects %llu -> %llu", what,
           (unsigned long long)before->disconnects,
           (unsigned long long)st.disconnects);
  check_all_slots_work(f->pool, what);
}

/* "+PO" and then a reset: the caller sees ECONNRESET (or the end of the
 * stream), at once. */
static void test_reset_mid_response(void) {
  fixture f;
  cpool_stats_t before;
  cpool_conn_t *c = NULL;

  if (setup(&f, 0) != 0)
    goto out;
  cpool_stats(f.pool, &before);
  ts_set_mode(f.peer, TS_RESET_HALF);
  int rc = cpool_checkout(f.pool, &c, 1000, NULL);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  int64_t t0 = tu_now_ms();
  int r = tu_io_ping(cpool_conn_fd(c), 2000);
  int64_t took = tu_now_ms() - t0;
  TU_CHECK(r == ECONNRESET || r == TU_IO_EOF,
           "a reset mid-reply gave %s, expected ECONNRESET or eof",
           tu_io_name(r));
  TU_CHECK(took < FH_MARGIN_MS, "the reset took %lld ms to show",
           (long long)took);
  cpool_checkin(f.pool, c, CPOOL_CONN_BROKEN);
  ts_set_mode(f.peer, TS_PING);
  check_healed(&f, &before, 1, "reset_mid_response");
out:
  teardown(&f, "reset_mid_response");
}

/* The peer reads the request and never answers: the caller's own timeout
 * ends the wait, by poll() or by SO_RCVTIMEO on a blocking recv. */
static void test_stall_forever(void) {
  enum { TIMEOUT = 300 };
  fixture f;
  cpool_stats_t before;
  cpool_conn_t *c[SIZE] = {0};

  if (setup(&f, 0) != 0)
    goto out;
  cpool_stats(f.pool, &before);
  ts_set_mode(f.peer, TS_SILENT);
  for (int i = 0; i < SIZE; i++) {
    int rc = cpool_checkout(f.pool, &c[i], 1000, NULL);
    TU_ASSERT_CODE(rc, 0);
    if (rc != 0)
      goto out;
  }

  /* Slot 0: poll() with our deadline. */
  int64_t t0 = tu_now_ms();
  int r = tu_io_ping(cpool_conn_fd(c[0]), TIMEOUT);
  int64_t took = tu_now_ms() - t0;
  TU_CHECK(r == TU_IO_DEADLINE, "stalled peer (poll): %s", tu_io_name(r));
  TU_CHECK(took >= TIMEOUT - 5 && took <= TIMEOUT + FH_MARGIN_MS,
           "poll deadline of %d ms ended after %lld ms", TIMEOUT,
           (long long)took);

  /* Slot 1: a blocking recv with SO_RCVTIMEO. */
  int fd = cpool_conn_fd(c[1]);
  struct timeval tv = {.tv_sec = 0, .tv_usec = TIMEOUT * 1000};
  TU_CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0,
           "SO_RCVTIMEO: %s", strerror(errno));
  TU_CHECK(send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6, "send: %s",
           strerror(errno));
  char buf[16];
  t0 = tu_now_ms();
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  int e = errno;
  took = tu_now_ms() - t0;
  TU_CHECK(n < 0 && (e == EAGAIN || e == EWOULDBLOCK),
           "stalled peer (SO_RCVTIMEO): recv returned %zd, %s", n, strerror(e));
  TU_CHECK(took >= TIMEOUT - 5 && took <= TIMEOUT + FH_MARGIN_MS,
           "SO_RCVTIMEO of %d ms ended after %lld ms", TIMEOUT,
           (long long)took);

  uint64_t closed0 = ts_get_counts(f.peer).peer_closed;
  for (int i = 0; i < SIZE; i++)
    cpool_checkin(f.pool, c[i], CPOOL_CONN_BROKEN);
  ts_set_mode(f.peer, TS_PING);
  check_healed(&f, &before, SIZE, "stall_forever");
  /* The stalled connections were closed by the pool, not leaked. */
  TU_WAIT(ts_get_counts(f.peer).peer_closed >= closed0 + SIZE, 2000);
  TU_CHECK(ts_get_counts(f.peer).peer_closed >= closed0 + SIZE,
           "the peer saw %llu of %d stalled connections closed",
           (unsigned long long)(ts_get_counts(f.peer).peer_closed - closed0),
           SIZE);
out:
  teardown(&f, "stall_forever");
}

/* Unsolicited bytes on idle slots: the idle check at checkout finds them,
 * the caller never gets those slots but a fresh connection, at once. */
static void garbage_case(int idle_check_ms, const char *what) {
  fixture f;
  cpool_stats_t before, st;
  cpool_conn_t *c = NULL;

  if (setup(&f, idle_check_ms) != 0)
    goto out;
  cpool_stats(f.pool, &before);
  int got = ts_send_all(f.peer, "-ERR unsolicited\r\n");
  TU_CHECK(got == SIZE, "%s: garbage reached %d of %d connections", what, got,
           SIZE);
  if (idle_check_ms > 0) /* the check runs only past idle_check_ms */
    tu_sleep_ms(idle_check_ms + 30);
  else if (idle_check_ms == 0)
    tu_sleep_ms(FH_IDLE_PAST_CHECK_MS);

  int64_t t0 = tu_now_ms();
  int rc = cpool_checkout(f.pool, &c, 2000, NULL);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  TU_CHECK(took < FH_MARGIN_MS, "%s: checkout past two dead slots took %lld ms",
           what, (long long)took);
  int r = tu_io_ping(cpool_conn_fd(c), 1000);
  TU_CHECK(r == 0, "%s: the caller got a desynced slot: %s", what,
           tu_io_name(r));
  cpool_checkin(f.pool, c, r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  cpool_stats(f.pool, &st);
  TU_CHECK(st.idle_check_failures == before.idle_check_failures + SIZE,
           "%s: idle_check_failures %llu -> %llu, expected +%d", what,
           (unsigned long long)before.idle_check_failures,
           (unsigned long long)st.idle_check_failures, SIZE);
  TU_WAIT_STATS(f.pool, st,
                st.connects >= before.connects + SIZE && st.idle == SIZE, 3000);
  TU_CHECK(st.connects >= before.connects + SIZE && st.idle == SIZE,
           "%s: not healed: connects %llu -> %llu, idle %d", what,
           (unsigned long long)before.connects, (unsigned long long)st.connects,
           st.idle);
  TU_CHECK(st.broken_checkins == before.broken_checkins,
           "%s: broken_checkins %llu: the caller never saw a dead slot", what,
           (unsigned long long)st.broken_checkins);
  check_all_slots_work(f.pool, what);
out:
  teardown(&f, what);
}

/* Peeked at once, though connected just now. */
static void test_garbage_check_always(void) {
  garbage_case(CPOOL_IDLE_CHECK_ALWAYS, "garbage_check_always");
}

static void test_garbage_check_default(void) {
  garbage_case(0, "garbage_check_default");
}

static void test_garbage_check_after_idle(void) {
  garbage_case(50, "garbage_check_after_idle");
}

/* The peer closes idle connections (FIN or reset): each slot's worker
 * sees it at once and reconnects, with no caller, no peek and no failed
 * request. */
static void dropped_case(int rst, const char *what) {
  fixture f;
  cpool_stats_t before, st;
  cpool_conn_t *c = NULL;

  if (setup(&f, 0) != 0)
    goto out;
  cpool_stats(f.pool, &before);
  int64_t t0 = tu_now_ms();
  int n = ts_drop(f.peer, rst);
  TU_CHECK(n == SIZE, "%s: dropped %d of %d", what, n, SIZE);
  TU_WAIT_STATS(f.pool, st,
                st.connects >= before.connects + SIZE && st.idle == SIZE,
                2000);
  int64_t took = tu_now_ms() - t0;
  TU_CHECK(st.connects == before.connects + SIZE && st.idle == SIZE,
           "%s: not reconnected by the workers: connects %llu -> %llu, idle %d",
           what, (unsigned long long)before.connects,
           (unsigned long long)st.connects, st.idle);
  TU_CHECK(st.peer_closes == before.peer_closes + SIZE,
           "%s: peer_closes %llu -> %llu, expected +%d", what,
           (unsigned long long)before.peer_closes,
           (unsigned long long)st.peer_closes, SIZE);
  TU_CHECK(took < FH_MARGIN_MS, "%s: reconnected after %lld ms", what,
           (long long)took);
  fh_figure("peer: %s: %d idle slots closed by the peer were connected again "
            "after %lld ms, with no caller",
            what, SIZE, (long long)took);
  tu_sleep_ms(FH_IDLE_PAST_CHECK_MS); /* the next checkout peeks */
  int rc = cpool_checkout(f.pool, &c, 2000, NULL);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  int r = tu_io_ping(cpool_conn_fd(c), 1000);
  TU_CHECK(r == 0, "%s: the caller got a dead slot: %s", what, tu_io_name(r));
  cpool_checkin(f.pool, c, r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  cpool_stats(f.pool, &st);
  TU_CHECK(st.idle_check_failures == before.idle_check_failures,
           "%s: idle_check_failures %llu -> %llu: a dead slot was left for "
           "the peek",
           what, (unsigned long long)before.idle_check_failures,
           (unsigned long long)st.idle_check_failures);
  check_all_slots_work(f.pool, what);
out:
  teardown(&f, what);
}

/* The peer closes the connections (FIN or reset) right after the caller
 * used one, within the idle check.  Its parked slot's worker sees the
 * close and takes the slot back; if the caller's next checkout is first
 * (it takes its parked slot on the fast path, unchecked), it gets the dead
 * socket: its I/O fails at once (EOF, ECONNRESET or EPIPE, never a hang);
 * it checks the connection in broken and tries again, as an application
 * does, and gets a working slot after at most one failure per slot.  Then
 * every slot heals. */
static void dropped_after_use_case(int rst, const char *what) {
  fixture f;
  cpool_stats_t before;
  cpool_conn_t *c = NULL;
  int failures = 0, r = -1;

  if (setup(&f, 0) != 0)
    goto out;
  int rc = cpool_checkout(f.pool, &c, 1000, NULL);
  TU_ASSERT_CODE(rc, 0);
  if (rc != 0)
    goto out;
  r = tu_io_ping(cpool_conn_fd(c), 1000);
  TU_CHECK(r == 0, "%s: ping before the drop: %s", what, tu_io_name(r));
  cpool_checkin(f.pool, c, r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  cpool_stats(f.pool, &before);
  int n = ts_drop(f.peer, rst);
  TU_CHECK(n == SIZE, "%s: dropped %d of %d", what, n, SIZE);

  r = -1;
  for (int attempt = 0; attempt <= SIZE && r != 0; attempt++) {
    c = NULL;
    rc = cpool_checkout(f.pool, &c, 2000, NULL);
    TU_CHECK(rc == 0, "%s: checkout %d: %s", what, attempt, cpool_err_name(rc));
    if (rc != 0)
      goto out;
    int64_t t0 = tu_now_ms();
    r = tu_io_ping(cpool_conn_fd(c), 1000);
    int64_t took = tu_now_ms() - t0;
    if (r != 0) {
      failures++;
      TU_CHECK(r == TU_IO_EOF || r == ECONNRESET || r == EPIPE,
               "%s: I/O on the dropped connection gave %s, expected eof, "
               "ECONNRESET or EPIPE",
               what, tu_io_name(r));
      TU_CHECK(took < FH_MARGIN_MS, "%s: the dead socket took %lld ms to show",
               what, (long long)took);
    }
    cpool_checkin(f.pool, c, r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  }
  TU_CHECK(r == 0, "%s: no working slot after %d broken checkins", what,
           failures);
  TU_CHECK(failures <= SIZE,
           "%s: %d failed requests, expected 0..%d (at most once per slot)",
           what, failures, SIZE);
  fh_figure("peer: %s: %d of %d requests right after the drop failed", what,
            failures, failures + 1);
  tu_sleep_ms(FH_IDLE_PAST_CHECK_MS);
  check_healed(&f, &before, failures, what);
out:
  teardown(&f, what);
}

static void test_fin_after_use(void) {
  dropped_after_use_case(0, "fin_after_use");
}
static void test_rst_after_use(void) {
  dropped_after_use_case(1, "rst_after_use");
}

static void test_fin_while_idle(void) {
  dropped_case(0, "fin_while_idle");
}
static void test_rst_while_idle(void) {
  dropped_case(1, "rst_while_idle");
}

const fault_test fault_peer_tests[] = {
    {"reset_mid_response", test_reset_mid_response},
    {"stall_forever", test_stall_forever},
    {"garbage_check_always", test_garbage_check_always},
    {"garbage_check_after_idle", test_garbage_check_after_idle},
    {"garbage_check_default", test_garbage_check_default},
    {"fin_while_idle", test_fin_while_idle},
    {"rst_while_idle", test_rst_while_idle},
    {"fin_after_use", test_fin_after_use},
    {"rst_after_use", test_rst_after_use},
    {NULL, NULL},
};
