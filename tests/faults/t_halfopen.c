/*
 * Suite "halfopen": the peer vanishes without a FIN.  In two network
 * namespaces made by the test (the pool in A, the peer in B, a veth pair
 * between them), B's end of the link goes down while the pool holds
 * connections: nothing reaches A, not even a reset.
 *
 *   - the keepalive and TCP_USER_TIMEOUT fields are set on the sockets
 *     (getsockopt on cpool_conn_fd);
 *   - a caller's write + read fails with ETIMEDOUT within
 *     tcp_user_timeout_ms (+ margin), far before its own 5 s deadline, and
 *     after its broken checkin the slot goes to reconnect;
 *   - an idle slot is found dead by keepalive within idle + interval
 *     (+ margin): its worker sees the error the moment the kernel
 *     reports it, with no checkout and no peek;
 *   - when the link comes back, every slot heals.
 *
 * Needs root; otherwise it prints SKIPPED and exits 77 (CTest: skipped).
 */
#include "fault.h"
#include "testserver.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

enum {
  SIZE = 2,
  PORT = 7001,
  USER_TIMEOUT = 300,
  KA_IDLE = 1, /* s */
  KA_INTVL = 1,
  KA_CNT = 3,
  /* The kernel tests TCP_USER_TIMEOUT only when a retransmission timer
   * fires (RTO >= 200 ms): on Linux 6.18 a write on a connection whose
   * peer vanished fails at about tcp_user_timeout_ms + 420 ms, for user
   * timeouts from 100 to 1000 ms (measured by hand, without cpool). */
  KERNEL_SLACK = 500
};

static int get_opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0)
    return -1;
  return v;
}

static void check_sockopts(cpool_conn_t *c) {
  int fd = cpool_conn_fd(c);
  struct {
    int level, name, want;
    const char *what;
  } opts[] = {
      {IPPROTO_TCP, TCP_USER_TIMEOUT, USER_TIMEOUT, "TCP_USER_TIMEOUT"},
      {SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
      {IPPROTO_TCP, TCP_KEEPIDLE, KA_IDLE, "TCP_KEEPIDLE"},
      {IPPROTO_TCP, TCP_KEEPINTVL, KA_INTVL, "TCP_KEEPINTVL"},
      {IPPROTO_TCP, TCP_KEEPCNT, KA_CNT, "TCP_KEEPCNT"},
      {IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    int v = get_opt(fd, opts[i].level, opts[i].name);
    TU_CHECK(v == opts[i].want, "slot %d: %s is %d, configured %d",
             cpool_conn_slot(c), opts[i].what, v, opts[i].want);
  }
}

static fh_netns ns;

static cpool_t *open_in_a(void) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *pool = NULL;
  int saved;

  fh_config(&cfg, ns.ip_b, PORT, SIZE);
  cfg.connect_timeout_ms = 300;
  cfg.backoff_min_ms = cfg.backoff_max_ms = 100;
  cfg.tcp_user_timeout_ms = USER_TIMEOUT;
  cfg.keepalive = 1;
  cfg.keepalive_idle_s = KA_IDLE;
  cfg.keepalive_interval_s = KA_INTVL;
  cfg.keepalive_count = KA_CNT;
  if (fh_netns_enter(ns.a, &saved) != 0) {
    TU_CHECK(0, "cannot enter %s: %s", ns.a, strerror(errno));
    return NULL;
  }
  int rc = cpool_open(&pool, &cfg, &err);
  fh_netns_leave(saved);
  TU_CHECK(rc == 0, "cpool_open: %s", err.message);
  return rc == 0 ? pool : NULL;
}

/* The peer vanishes: A's frames for B go to a MAC nobody has (100% loss
 * on the path, without any error or reset reaching A), or B's end of the
 * link goes down. */
static int peer_gone(int gone, int by_link) {
  if (by_link)
    return fh_run("ip -n %s link set %s %s", ns.b, ns.dev_b,
                  gone ? "down" : "up");
  return fh_netns_blackhole(&ns, gone);
}

/* A caller mid-request when the link dies: TCP_USER_TIMEOUT ends it. */
static void caller_write_read_fails(cpool_t *pool, cpool_conn_t *c,
                                    int slack_ms, const char *what) {
  cpool_stats_t before, st;

  cpool_stats(pool, &before);
  int64_t t0 = tu_now_ms();
  int r = tu_io_ping(cpool_conn_fd(c), 5000);
  int64_t took = tu_now_ms() - t0;
  TU_CHECK(r == ETIMEDOUT,
           "write+read on a half-open connection: %s, expected the socket's "
           "ETIMEDOUT",
           tu_io_name(r));
  TU_CHECK(took >= USER_TIMEOUT - 10 &&
               took <= USER_TIMEOUT + slack_ms + FH_MARGIN_MS,
           "%s: the request failed after %lld ms, tcp_user_timeout_ms %d "
           "(+%d +%d)",
           what, (long long)took, USER_TIMEOUT, slack_ms, FH_MARGIN_MS);
  fh_figure("halfopen: %s: a request on a half-open connection failed after "
            "%lld ms (tcp_user_timeout_ms %d): %s",
            what, (long long)took, USER_TIMEOUT, tu_io_name(r));

  cpool_checkin(pool, c, CPOOL_CONN_BROKEN);
  TU_WAIT_STATS(pool, st,
                st.connect_failures > before.connect_failures &&
                    st.disconnects > before.disconnects,
                3000);
  TU_CHECK(st.disconnects > before.disconnects,
           "the broken slot was not closed (disconnects %llu)",
           (unsigned long long)st.disconnects);
  TU_CHECK(st.connect_failures > before.connect_failures,
           "the broken slot did not try to reconnect (connect_failures "
           "%llu)",
           (unsigned long long)st.connect_failures);
}

/* The slot that sat idle through the outage: keepalive (bounded by
 * TCP_USER_TIMEOUT) kills it, and its worker, which watches the socket,
 * sees the error at once and takes the slot: nobody needs to check it
 * out, and no peek is needed. */
static void idle_slot_found_dead(cpool_t *pool, int64_t down_ms, int slack_ms,
                                 const char *what) {
  cpool_stats_t before, st;
  /* Keepalive timers are coarse (the kernel batches them), and the probe
   * is due from the last activity, a few ms before the link went down. */
  int64_t bound = (KA_IDLE + KA_INTVL) * 1000 + slack_ms + 2 * FH_MARGIN_MS;

  cpool_stats(pool, &before);
  TU_WAIT_STATS(pool, st, st.peer_closes > before.peer_closes,
                (int)(down_ms + bound + 500 - tu_now_ms()));
  int64_t found = tu_now_ms() - down_ms;
  TU_CHECK(st.peer_closes == before.peer_closes + 1,
           "the idle slot's worker did not see it die %lld ms after the link "
           "went down (peer_closes %llu -> %llu)",
           (long long)found, (unsigned long long)before.peer_closes,
           (unsigned long long)st.peer_closes);
  TU_CHECK(st.idle_check_failures == before.idle_check_failures,
           "a peek found it (idle_check_failures %llu -> %llu)",
           (unsigned long long)before.idle_check_failures,
           (unsigned long long)st.idle_check_failures);
  TU_CHECK(found <= bound, "seen dead after %lld ms, keepalive bound %lld ms",
           (long long)found, (long long)bound);
  fh_figure("halfopen: %s: an idle half-open slot was seen dead by its worker "
            "%lld ms after the peer vanished, with no checkout (keepalive %d "
            "s + %d s, tcp_user_timeout_ms %d)",
            what, (long long)found, KA_IDLE, KA_INTVL, USER_TIMEOUT);
}

static void peer_vanishes(int by_link, const char *what) {
  char why[512];
  cpool_t *pool = NULL;
  ts_server *peer = NULL;
  cpool_conn_t *c[SIZE] = {0};
  cpool_stats_t st;
  int fds0 = tu_count_fds();

  if (fh_netns_setup(&ns, why, sizeof why) != 0) {
    fh_skip("network namespaces not available: %s", why);
    return;
  }
  peer = fh_netns_peer(&ns, PORT);
  TU_CHECK(peer != NULL, "peer in %s did not start", ns.b);
  if (peer == NULL || (pool = open_in_a()) == NULL)
    goto out;
  TU_WAIT_STATS(pool, st, st.idle == SIZE, 3000);
  TU_CHECK(st.idle == SIZE, "idle %d of %d", st.idle, SIZE);

  for (int i = 0; i < SIZE; i++) {
    int rc = cpool_checkout(pool, &c[i], 1000, NULL);
    TU_ASSERT_CODE(rc, 0);
    if (rc != 0)
      goto out;
    check_sockopts(c[i]);
    int r = tu_io_ping(cpool_conn_fd(c[i]), 1000);
    TU_CHECK(r == 0, "ping before the outage: %s", tu_io_name(r));
  }
  cpool_checkin(pool, c[1], CPOOL_CONN_OK); /* idle through the outage */

  TU_CHECK(peer_gone(1, by_link) == 0, "cannot cut the path to %s", ns.b);
  int64_t down_ms = tu_now_ms();
  caller_write_read_fails(pool, c[0], KERNEL_SLACK, what);
  /* With the link down, a keepalive probe fails locally and the kernel
   * tries it again after 500 ms (TCP_RESOURCE_PROBE_INTERVAL). */
  idle_slot_found_dead(pool, down_ms, by_link ? 500 : 0, what);

  TU_CHECK(peer_gone(0, by_link) == 0, "cannot restore the path to %s", ns.b);
  TU_WAIT_STATS(pool, st, st.idle == SIZE, 3000);
  TU_CHECK(st.idle == SIZE, "after the link came back: idle %d of %d", st.idle,
           SIZE);
  for (int i = 0; i < SIZE; i++) {
    c[i] = NULL;
    int rc = cpool_checkout(pool, &c[i], 1000, NULL);
    TU_ASSERT_CODE(rc, 0);
  }
  for (int i = 0; i < SIZE; i++) {
    if (c[i] == NULL)
      continue;
    int r = tu_io_ping(cpool_conn_fd(c[i]), 1000);
    TU_CHECK(r == 0, "ping after healing: %s", tu_io_name(r));
    cpool_checkin(pool, c[i], r == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  }
out:
  fh_end_pool(pool, what);
  ts_stop(peer);
  fh_netns_teardown(&ns);
  fh_check_fds(fds0, what);
}

static void test_path_lost(void) {
  peer_vanishes(0, "path_lost");
}
static void test_link_down(void) {
  peer_vanishes(1, "link_down");
}

const fault_test fault_halfopen_tests[] = {
    {"path_lost", test_path_lost},
    {"link_down", test_link_down},
    {NULL, NULL},
};
