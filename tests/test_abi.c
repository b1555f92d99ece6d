/*
 * The struct-size ABI (include/cpool.h, "Versions and struct layouts"): a
 * caller compiled against an older cpool.h passes the size of its older,
 * shorter cpool_config and cpool_stats_t; the library must read and write
 * only that much, take defaults for the rest, and refuse sizes that are no
 * layout, with CPOOL_EINVAL and a message.  Also a caller compiled against a
 * newer header (a larger struct) whose extra fields are unset.
 *
 * The "old" caller is the 0.1.0 header's structs, copied verbatim below,
 * inside a buffer whose guard bytes after the struct must stay intact.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <stdalign.h>
#include <stddef.h>
#include <string.h>

/* cpool_config and cpool_stats_t of cpool 0.1.0.  Never edit these when
 * fields are appended to the real ones: they are what an old caller has. */
struct config_0_1 {
  const char *host;
  int port;
  const char *unix_path;
  int size;
  cpool_start start;
  int connect_timeout_ms;
  cpool_backoff_type backoff_type;
  int backoff_min_ms;
  int backoff_max_ms;
  int keepalive;
  int keepalive_idle_s;
  int keepalive_interval_s;
  int keepalive_count;
  int tcp_user_timeout_ms;
  int idle_check_ms;
  int ping_interval_ms;
  int max_lifetime_ms;
  int lifetime_jitter_ms;
  int queue_max;
  int queue_target_ms;
  int queue_interval_ms;
  int handoff_after_us;
  int handoff_max_us;
  cpool_connect_cb on_connect;
  cpool_disconnect_cb on_disconnect;
  cpool_ping_cb on_ping;
  cpool_event_cb on_event;
  void *cb_arg;
  size_t worker_stack_size;
};

struct stats_0_1 {
  int size;
  int connecting, idle, busy, backoff, checking, closed;
  int waiters;
  uint64_t checkouts, waits, checked_out_errors, timeouts, closed_errors;
  uint64_t overloads, connects, connect_failures, disconnects;
  uint64_t broken_checkins, idle_check_failures, pings, ping_failures;
  uint64_t recycles;
  cpool_error_info last_error;
};

_Static_assert(sizeof(struct config_0_1) == CPOOL_CONFIG_SIZE_0_1,
               "CPOOL_CONFIG_SIZE_0_1 is not the 0.1.0 layout");
_Static_assert(sizeof(struct stats_0_1) == CPOOL_STATS_SIZE_0_1,
               "CPOOL_STATS_SIZE_0_1 is not the 0.1.0 layout");
_Static_assert(offsetof(cpool_config, worker_stack_size) ==
                   offsetof(struct config_0_1, worker_stack_size),
               "a cpool_config field was moved");
_Static_assert(offsetof(cpool_stats_t, last_error) ==
                   offsetof(struct stats_0_1, last_error),
               "a cpool_stats_t field was moved");

#define GUARD 0xa5
enum { GUARD_LEN = 256 };

/* A struct of some layout followed by guard bytes; aligned for both. */
typedef struct guarded {
  union {
    struct config_0_1 cfg;
    struct stats_0_1 st;
    unsigned char
        bytes[sizeof(cpool_config) + sizeof(cpool_stats_t) + GUARD_LEN];
    max_align_t align;
  } u;
} guarded;

static ts_server *srv;

int abi_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int abi_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

/* 1 if bytes [from, from + GUARD_LEN) of g still hold the guard. */
static int guard_intact(const guarded *g, size_t from) {
  for (size_t i = from; i < from + GUARD_LEN; i++)
    if (g->u.bytes[i] != GUARD) {
      fprintf(stderr, "abi: byte %zu (struct of %zu) was written\n", i, from);
      return 0;
    }
  return 1;
}

static void fill_guard(guarded *g) {
  memset(g, GUARD, sizeof *g);
}

static void fill_guard_after(guarded *g, size_t from) {
  memset(g->u.bytes + from, GUARD, sizeof g->u.bytes - from);
}

/* One echo round trip through a checkout of p. */
static void round_trip(cpool_t *p) {
  cpool_conn_t *c = NULL;

  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
  if (c == NULL)
    return;
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "old layout\n", 5000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
}

/* The 0.1 caller's stats: written in full, nothing past them. */
static void check_old_stats(cpool_t *p, int by_symbol) {
  guarded g;

  fill_guard(&g);
  cpool_stats_t *st = (cpool_stats_t *)(void *)&g.u.st;
  int rc = by_symbol ? (cpool_stats)(p, st)
                     : cpool_stats_sized(p, st, sizeof(struct stats_0_1));
  TU_ASSERT_CODE(rc, 0);
  CU_ASSERT(guard_intact(&g, sizeof(struct stats_0_1)));
  TU_ASSERT_EQ(g.u.st.size, 2);
  TU_ASSERT_EQ(g.u.st.idle + g.u.st.busy + g.u.st.connecting, 2);
  CU_ASSERT(g.u.st.checkouts >= 1);
  CU_ASSERT(g.u.st.connects >= 2);
  TU_ASSERT_EQ(g.u.st.last_error.code, 0);
}

/* An old caller: init, open, use, stats, all through the 0.1 layouts. */
static void test_old_layout_caller(void) {
  guarded g;
  cpool_error_info err;
  cpool_t *p = NULL;
  cpool_config *cfg = (cpool_config *)(void *)&g.u.cfg;

  fill_guard(&g);
  TU_ASSERT_CODE(cpool_config_init_sized(cfg, sizeof(struct config_0_1)), 0);
  CU_ASSERT(guard_intact(&g, sizeof(struct config_0_1)));
  TU_ASSERT_EQ(g.u.cfg.size, 8);
  TU_ASSERT_EQ(g.u.cfg.connect_timeout_ms, 5000);
  TU_ASSERT_EQ(g.u.cfg.handoff_max_us, 2500);
  CU_ASSERT_PTR_NULL(g.u.cfg.host);
  CU_ASSERT(g.u.cfg.worker_stack_size == 0 && g.u.cfg.on_event == NULL);

  /* The guard stands for what follows the caller's struct in its memory,
   * where this library has fields the caller does not: read as they are,
   * 0xa5 bytes would be bad values.  Init must not have written them, and
   * whatever is there, open must not read them. */
  fill_guard_after(&g, sizeof(struct config_0_1));
  g.u.cfg.host = "127.0.0.1";
  g.u.cfg.port = ts_port(srv);
  g.u.cfg.size = 2;
  g.u.cfg.start = CPOOL_START_SYNC;
  int rc = cpool_open_sized(&p, cfg, sizeof(struct config_0_1), &err);
  if (rc != 0)
    fprintf(stderr, "abi: cpool_open_sized: %s\n", err.message);
  TU_ASSERT_CODE(rc, 0);
  if (p == NULL)
    return;
  round_trip(p);
  check_old_stats(p, 0);
  check_old_stats(p, 1);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);

  /* The plain symbols, as a program compiled against 0.1.0 calls them. */
  fill_guard(&g);
  (cpool_config_init)(cfg);
  CU_ASSERT(guard_intact(&g, sizeof(struct config_0_1)));
  TU_ASSERT_EQ(g.u.cfg.backoff_min_ms, 500);
  fill_guard_after(&g, sizeof(struct config_0_1));
  g.u.cfg.host = "127.0.0.1";
  g.u.cfg.port = ts_port(srv);
  g.u.cfg.size = 2;
  g.u.cfg.start = CPOOL_START_SYNC;
  p = NULL;
  TU_ASSERT_CODE((cpool_open)(&p, cfg, &err), 0);
  if (p != NULL) {
    round_trip(p);
    check_old_stats(p, 1);
    TU_ASSERT_CODE(cpool_close(p, 1000), 0);
  }
}

/* Sizes that are no layout: EINVAL, nothing written, a message. */
static void test_bad_sizes(void) {
  const size_t min = CPOOL_CONFIG_SIZE_0_1;
  const size_t bad[] = {0, 1, min - alignof(cpool_config), min + 1,
                        sizeof(cpool_config) + 4};
  cpool_config cfg;

  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = ts_port(srv);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    guarded g;
    cpool_error_info err;
    cpool_t *p = (cpool_t *)&p;

    fill_guard(&g);
    TU_ASSERT_CODE(
        cpool_config_init_sized((cpool_config *)(void *)&g.u.cfg, bad[i]),
        CPOOL_EINVAL);
    CU_ASSERT(guard_intact(&g, 0));

    memset(&err, 0, sizeof err);
    TU_ASSERT_CODE(cpool_open_sized(&p, &cfg, bad[i], &err), CPOOL_EINVAL);
    CU_ASSERT_PTR_NULL(p);
    TU_ASSERT_CODE(err.code, CPOOL_EINVAL);
    if (!strstr(err.message, "cpool_config size")) {
      fprintf(stderr, "abi: size %zu: message '%s'\n", bad[i], err.message);
      CU_FAIL("the message does not say it is the size");
    }
    TU_ASSERT_CODE(cpool_open_sized(&p, &cfg, bad[i], NULL), CPOOL_EINVAL);
  }

  cpool_t *p = NULL;
  cfg.start = CPOOL_START_SYNC;
  cfg.size = 1;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  if (p == NULL)
    return;
  const size_t smin = CPOOL_STATS_SIZE_0_1;
  const size_t sbad[] = {0, 8, smin - alignof(cpool_stats_t), smin + 4};
  for (size_t i = 0; i < sizeof sbad / sizeof sbad[0]; i++) {
    guarded g;
    fill_guard(&g);
    TU_ASSERT_CODE(
        cpool_stats_sized(p, (cpool_stats_t *)(void *)&g.u.st, sbad[i]),
        CPOOL_EINVAL);
    CU_ASSERT(guard_intact(&g, 0));
  }
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
}

/* A caller compiled against a newer header: its fields this library does
 * not know are 0 after init, accepted while 0 and refused when set, and
 * cleared by stats. */
static void test_newer_caller(void) {
  struct newer {
    cpool_config cfg;
    uint64_t future[2];
  } n;
  struct newer_stats {
    cpool_stats_t st;
    uint64_t future[2];
  } ns;
  cpool_error_info err;
  cpool_t *p = NULL;

  memset(&n, GUARD, sizeof n);
  TU_ASSERT_CODE(cpool_config_init_sized(&n.cfg, sizeof n), 0);
  CU_ASSERT(n.future[0] == 0 && n.future[1] == 0);
  TU_ASSERT_EQ(n.cfg.size, 8);
  n.cfg.host = "127.0.0.1";
  n.cfg.port = ts_port(srv);
  n.cfg.size = 1;
  n.cfg.start = CPOOL_START_SYNC;
  n.future[1] = 1;
  TU_ASSERT_CODE(cpool_open_sized(&p, &n.cfg, sizeof n, &err), CPOOL_EINVAL);
  CU_ASSERT(strstr(err.message, "does not know") != NULL);
  n.future[1] = 0;
  TU_ASSERT_CODE(cpool_open_sized(&p, &n.cfg, sizeof n, &err), 0);
  if (p == NULL)
    return;
  memset(&ns, GUARD, sizeof ns);
  TU_ASSERT_CODE(cpool_stats_sized(p, &ns.st, sizeof ns), 0);
  CU_ASSERT(ns.future[0] == 0 && ns.future[1] == 0);
  TU_ASSERT_EQ(ns.st.size, 1);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
}

CU_TestInfo abi_tests[] = {
    {"old_layout_caller", test_old_layout_caller},
    {"bad_sizes", test_bad_sizes},
    {"newer_caller", test_newer_caller},
    CU_TEST_INFO_NULL,
};
