/*
 * Bad input, table-driven: every bad argument is a clear CPOOL_EINVAL that
 * changes nothing, never a crash or a silent default.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

static ts_server *srv;

int config_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4 | TS_UNIX);
  return srv ? 0 : -1;
}

int config_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

/* A sync pool of size slots on the suite's server, or NULL (asserted). */
static cpool_t *open_sync(int size) {
  return tu_open_sync(ts_port(srv), size);
}

static void test_config_init_defaults(void) {
  cpool_config cfg;

  memset(&cfg, 0x5a, sizeof cfg);
  cpool_config_init(&cfg);
  CU_ASSERT_PTR_NULL(cfg.host);
  CU_ASSERT_PTR_NULL(cfg.unix_path);
  TU_ASSERT_EQ(cfg.port, 0);
  CU_ASSERT(cfg.size == 0 || cfg.size == 8);
  TU_ASSERT_EQ(cfg.start, CPOOL_START_ASYNC);
  TU_ASSERT_EQ(cfg.backoff_type, CPOOL_BACKOFF_RAND_EXP);
  CU_ASSERT(cfg.connect_timeout_ms == 0 || cfg.connect_timeout_ms == 5000);
  CU_ASSERT(cfg.backoff_min_ms == 0 || cfg.backoff_min_ms == 500);
  CU_ASSERT(cfg.backoff_max_ms == 0 || cfg.backoff_max_ms == 30000);
  /* 0 would mean the same (see idle_check_zero_is_default). */
  CU_ASSERT(cfg.idle_check_ms == 0 || cfg.idle_check_ms == 500);
  TU_ASSERT_EQ(cfg.keepalive, 0);
  TU_ASSERT_EQ(cfg.ping_interval_ms, 0);
  TU_ASSERT_EQ(cfg.max_lifetime_ms, 0);
  TU_ASSERT_EQ(cfg.queue_max, 0);
  TU_ASSERT_EQ(cfg.queue_target_ms, 0);
  CU_ASSERT(cfg.handoff_after_us == 0 || cfg.handoff_after_us == 250);
  CU_ASSERT(cfg.handoff_max_us == 0 || cfg.handoff_max_us == 2500);
  CU_ASSERT(cfg.on_connect == NULL && cfg.on_disconnect == NULL &&
            cfg.on_ping == NULL && cfg.on_event == NULL);
  CU_ASSERT_PTR_NULL(cfg.cb_arg);
  cpool_config_init(NULL); /* ignored, not a crash */
}

/* ---- the bad-config table -------------------------------------------- */

#define F(field) #field, offsetof(cpool_config, field)

/* One int field set to a bad value; the error message must name it. */
static const struct {
  const char *field;
  size_t off;
  int value;
} bad_ints[] = {
    {F(size), -1},
    {F(size), CPOOL_MAX_SIZE + 1},
    {F(size), INT_MIN},
    {F(port), 0},
    {F(port), -1},
    {F(port), 65536},
    {F(connect_timeout_ms), -1},
    {F(backoff_min_ms), -1},
    {F(backoff_max_ms), -1},
    {F(keepalive_idle_s), -1},
    {F(keepalive_interval_s), -1},
    {F(keepalive_count), -1},
    {F(tcp_user_timeout_ms), -1},
    {F(idle_check_ms), CPOOL_IDLE_CHECK_ALWAYS - 1},
    {F(idle_check_ms), INT_MIN},
    {F(ping_interval_ms), -1},
    {F(max_lifetime_ms), -1},
    {F(lifetime_jitter_ms), -1},
    {F(queue_max), -1},
    {F(queue_target_ms), -1},
    {F(queue_interval_ms), -1},
    {F(handoff_after_us), -2},
    {F(handoff_max_us), -1},
    {F(handoff_max_us), INT_MIN},
    {F(start), 2},
    {F(start), -1},
    {F(backoff_type), 3},
    {F(backoff_type), -1},
};

/* Opening must fail with EINVAL, leave *pool NULL, and fill err. */
static void expect_einval(const cpool_config *cfg, const char *what,
                          const char *must_name) {
  cpool_t *p = (cpool_t *)&p; /* not NULL: open must reset it */
  cpool_error_info err;
  int rc;

  memset(&err, 0, sizeof err);
  rc = cpool_open(&p, cfg, &err);
  if (rc != CPOOL_EINVAL)
    fprintf(stderr, "bad config '%s' gave %s\n", what, cpool_err_name(rc));
  TU_ASSERT_CODE(rc, CPOOL_EINVAL);
  CU_ASSERT_PTR_NULL(p);
  if (rc == 0) {
    cpool_close(p, 0);
    return;
  }
  TU_ASSERT_CODE(err.code, CPOOL_EINVAL);
  CU_ASSERT(err.message[0] != '\0');
  if (must_name && !strstr(err.message, must_name)) {
    fprintf(stderr, "bad config '%s': message '%s' does not name '%s'\n", what,
            err.message, must_name);
    CU_FAIL("error message does not name the field");
  }
  /* err may be NULL. */
  p = (cpool_t *)&p;
  TU_ASSERT_CODE(cpool_open(&p, cfg, NULL), CPOOL_EINVAL);
  CU_ASSERT_PTR_NULL(p);
}

static void test_bad_int_fields(void) {
  for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
    cpool_config cfg;
    char what[64];

    tu_config(&cfg, ts_port(srv), 2);
    /* Enum fields are int-sized; memcpy keeps the store well-defined. */
    memcpy((char *)&cfg + bad_ints[i].off, &bad_ints[i].value, sizeof(int));
    snprintf(what, sizeof what, "%s = %d", bad_ints[i].field,
             bad_ints[i].value);
    expect_einval(&cfg, what, bad_ints[i].field);
  }
}

static void test_bad_endpoints(void) {
  cpool_config cfg;
  char long_path[200];

  tu_config(&cfg, ts_port(srv), 2);
  cfg.unix_path = ts_unix_path(srv);
  expect_einval(&cfg, "host and unix_path", NULL);

  tu_config(&cfg, ts_port(srv), 2);
  cfg.host = NULL;
  expect_einval(&cfg, "no endpoint", NULL);

  /* A path that cannot fit in sockaddr_un is a bad argument too. */
  memset(long_path, 'x', sizeof long_path - 1);
  long_path[0] = '/';
  long_path[sizeof long_path - 1] = '\0';
  tu_config(&cfg, 0, 2);
  cfg.host = NULL;
  cfg.unix_path = long_path;
  expect_einval(&cfg, "unix_path too long", NULL);
}

static void test_backoff_min_above_max(void) {
  cpool_config cfg;

  tu_config(&cfg, ts_port(srv), 2);
  cfg.backoff_min_ms = 200;
  cfg.backoff_max_ms = 100;
  expect_einval(&cfg, "backoff_min_ms > backoff_max_ms", "backoff");
}

/* The idle check's special values and its bad ones: -3 and below is a
 * clear EINVAL that names the field and both constants. */
static void test_idle_check_bad_message(void) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.idle_check_ms = -3;
  expect_einval(&cfg, "idle_check_ms = -3", "idle_check_ms");
  memset(&err, 0, sizeof err);
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_EINVAL);
  if (!strstr(err.message, "CPOOL_IDLE_CHECK_ALWAYS") ||
      !strstr(err.message, "CPOOL_IDLE_CHECK_NEVER")) {
    fprintf(stderr, "idle_check_ms = -3: message '%s'\n", err.message);
    CU_FAIL("the message does not name the valid special values");
  }
  /* The constants themselves are accepted. */
  TU_ASSERT_EQ(CPOOL_IDLE_CHECK_NEVER, -1);
  TU_ASSERT_EQ(CPOOL_IDLE_CHECK_ALWAYS, -2);
  static const int good[] = {CPOOL_IDLE_CHECK_ALWAYS, CPOOL_IDLE_CHECK_NEVER,
                             0, 1, INT_MAX};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    tu_config(&cfg, ts_port(srv), 1);
    cfg.idle_check_ms = good[i];
    p = NULL;
    memset(&err, 0, sizeof err);
    TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), 0);
    if (p == NULL)
      fprintf(stderr, "idle_check_ms = %d: %s\n", good[i], err.message);
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
}

/* 0 is the default, 500 ms (it used to mean "always"): a slot used just
 * now is trusted without a peek, one idle past 500 ms is peeked. */
static void test_idle_check_zero_is_default(void) {
  tu_idle_check_case(0, 0, 0, NULL);
  tu_idle_check_case(0, 700, 1, NULL);
}

/* CPOOL_IDLE_CHECK_ALWAYS peeks even a slot used just now;
 * CPOOL_IDLE_CHECK_NEVER does not even after a long idle. */
static void test_idle_check_constants(void) {
  tu_idle_check_case(CPOOL_IDLE_CHECK_ALWAYS, 0, 1, NULL);
  tu_idle_check_case(CPOOL_IDLE_CHECK_NEVER, 700, 0, NULL);
}

/* backoff_max_ms 0 is 30000, or backoff_min_ms when that is larger (not
 * an error about a field the caller left alone); a set max below the min
 * is one. */
static void test_backoff_max_zero(void) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), 1);
  cfg.backoff_min_ms = 40000;
  cfg.backoff_max_ms = 0;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  cfg.backoff_max_ms = 30000;
  expect_einval(&cfg, "backoff_min_ms 40000 > backoff_max_ms 30000",
                "backoff_max_ms");
}

static void test_null_open_args(void) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = (cpool_t *)&p;

  tu_config(&cfg, ts_port(srv), 2);
  TU_ASSERT_CODE(cpool_open(NULL, &cfg, &err), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_open(NULL, &cfg, NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_open(&p, NULL, &err), CPOOL_EINVAL);
  CU_ASSERT_PTR_NULL(p);
  TU_ASSERT_CODE(cpool_open(NULL, NULL, NULL), CPOOL_EINVAL);
}

/* worker_stack_size is a size_t, so it has its own table.  Below 64 KiB
 * (but not 0, the default) is a bad argument that names the field. */
static const size_t bad_stacks[] = {1, 1000, 64 * 1024 - 1};

static void test_bad_worker_stack_size(void) {
  for (size_t i = 0; i < sizeof bad_stacks / sizeof bad_stacks[0]; i++) {
    cpool_config cfg;
    char what[64];

    tu_config(&cfg, ts_port(srv), 2);
    cfg.worker_stack_size = bad_stacks[i];
    snprintf(what, sizeof what, "worker_stack_size = %zu", bad_stacks[i]);
    expect_einval(&cfg, what, "worker_stack_size");
  }
}

/* The stack each worker got, seen from inside on_connect (run by it). */
static int record_stack(int fd, void **data, void *arg) {
  pthread_attr_t attr;
  size_t size = 0;

  (void)fd;
  (void)data;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
  }
  atomic_store((_Atomic size_t *)arg, size);
  return 0;
}

/* Good sizes open a pool that works, and the workers get that stack; 0 is
 * the default, at least 256 KiB (more under sanitizers, and TSan enlarges
 * small thread stacks itself). */
static void test_worker_stack_size_accepted(void) {
  static const struct {
    size_t set, min, max;
  } good[] = {
      {256 * 1024, 256 * 1024, TU_SANITIZED ? 64 << 20 : 256 * 1024},
      {0, 256 * 1024, 64 << 20},
  };

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    _Atomic size_t got = 0;
    cpool_config cfg;
    cpool_error_info err;
    cpool_conn_t *c = NULL;
    cpool_t *p = NULL;

    tu_config(&cfg, ts_port(srv), 2);
    cfg.start = CPOOL_START_SYNC;
    cfg.worker_stack_size = good[i].set;
    cfg.on_connect = record_stack;
    cfg.cb_arg = &got;
    memset(&err, 0, sizeof err);
    TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), 0);
    if (!p) {
      fprintf(stderr, "worker_stack_size = %zu: %s\n", good[i].set,
              err.message);
      continue;
    }
    TU_ASSERT_BETWEEN(atomic_load(&got), good[i].min, good[i].max);
    TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
    if (c) {
      TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "stack", 2000), 0);
      TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    }
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
}

/* An empty string is "not set", in either field: host with unix_path ""
 * is a TCP pool (it once tried a Unix socket named ""), and host "" with
 * a unix_path is a Unix one. */
static void test_empty_string_endpoints(void) {
  const struct {
    const char *what, *host, *unix_path;
    int port, family;
  } good[] = {
      {"host, unix_path \"\"", "127.0.0.1", "", ts_port(srv), AF_INET},
      {"host \"\", unix_path", "", ts_unix_path(srv), 0, AF_UNIX},
  };

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cpool_config cfg;
    cpool_error_info err;
    cpool_conn_t *c = NULL;
    cpool_t *p = NULL;
    int rc;

    tu_config(&cfg, good[i].port, 1);
    cfg.host = good[i].host;
    cfg.unix_path = good[i].unix_path;
    cfg.start = CPOOL_START_SYNC;
    memset(&err, 0, sizeof err);
    rc = cpool_open(&p, &cfg, &err);
    if (rc != 0)
      fprintf(stderr, "%s: %s: %s\n", good[i].what, cpool_err_name(rc),
              err.message);
    TU_ASSERT_CODE(rc, 0);
    if (!p)
      continue;
    TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
    if (c) {
      TU_ASSERT_EQ(getpeername(cpool_conn_fd(c), (struct sockaddr *)&ss, &len),
                   0);
      TU_ASSERT_EQ(ss.ss_family, good[i].family);
      TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "empty string", 2000), 0);
      TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    }
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
}

/* size 0 is the default, 8; the smallest and a large size are fine. */
static void test_sizes_accepted(void) {
  static const struct { int size, want; } sizes[] = {{0, 8}, {1, 1}, {64, 64}};

  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    cpool_config cfg;
    cpool_stats_t st;
    cpool_t *p = NULL;

    tu_config(&cfg, ts_port(srv), sizes[i].size);
    TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    TU_ASSERT_CODE(cpool_stats(p, &st), 0);
    TU_ASSERT_EQ(st.size, sizes[i].want);
    TU_WAIT_STATS(p, st, st.idle == sizes[i].want, 5000);
    TU_ASSERT_EQ(st.idle, sizes[i].want);
    TU_ASSERT_CODE(cpool_close(p, 0), 0);
  }
}

/* cpool_open copies the strings: the caller's buffers may change after. */
static void test_config_copied(void) {
  char host[32], path[108];
  cpool_config cfg;
  cpool_conn_t *c;
  cpool_stats_t st;
  cpool_t *p = NULL;

  snprintf(host, sizeof host, "127.0.0.1");
  tu_config(&cfg, ts_port(srv), 1);
  cfg.host = host;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  snprintf(host, sizeof host, "garbage.invalid");
  memset(&cfg, 0xff, sizeof cfg);
  /* Force a reconnect, which resolves the host again. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects >= 2 && st.idle == 1, 5000);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.connect_failures, 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);

  snprintf(path, sizeof path, "%s", ts_unix_path(srv));
  tu_config(&cfg, 0, 1);
  cfg.host = NULL;
  cfg.unix_path = path;
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  snprintf(path, sizeof path, "/nonexistent");
  TU_ASSERT_CODE(cpool_checkout(p, &c, 5000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_BROKEN), 0);
  TU_WAIT_STATS(p, st, st.connects >= 2 && st.idle == 1, 5000);
  TU_ASSERT_EQ(st.connects, 2);
  TU_ASSERT_EQ(st.connect_failures, 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* RFC 6761: .invalid never resolves. */
#define BAD_HOST "cpool-test.invalid"

static void test_unresolvable_async(void) {
  cpool_config cfg;
  cpool_error_info why;
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  cpool_t *p = NULL;
  int rc = 0;

  tu_config(&cfg, 6379, 2);
  cfg.host = BAD_HOST;
  /* Long enough that both slots are soon backing off together. */
  cfg.backoff_min_ms = 200;
  cfg.backoff_max_ms = 1000;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_WAIT_STATS(p, st, st.last_error.step == CPOOL_STEP_RESOLVE, 10000);
  TU_ASSERT_EQ(st.last_error.step, CPOOL_STEP_RESOLVE);
  TU_ASSERT_CODE(st.last_error.code, CPOOL_ERESOLVE);
  CU_ASSERT(st.last_error.gai_error != 0);
  CU_ASSERT(st.last_error.message[0] != '\0');
  CU_ASSERT(strstr(st.last_error.addr, BAD_HOST) != NULL ||
            strstr(st.last_error.message, BAD_HOST) != NULL);
  TU_ASSERT_EQ(st.idle + st.busy, 0);
  /* Once every slot is backing off, checkout says so instead of waiting. */
  TU_WAIT_STATS(p, st, st.backoff == 2, 10000);
  TU_WAIT((rc = cpool_checkout(p, &c, 1000, &why)) == CPOOL_ECLOSED, 10000);
  TU_ASSERT_CODE(rc, CPOOL_ECLOSED);
  CU_ASSERT_PTR_NULL(c);
  if (rc == CPOOL_ECLOSED) {
    TU_ASSERT_EQ(why.step, CPOOL_STEP_RESOLVE);
    TU_ASSERT_CODE(why.code, CPOOL_ERESOLVE);
  }
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_unresolvable_sync(void) {
  cpool_config cfg;
  cpool_error_info err;
  cpool_t *p = (cpool_t *)&p;

  tu_config(&cfg, 6379, 2);
  cfg.host = BAD_HOST;
  cfg.start = CPOOL_START_SYNC;
  memset(&err, 0, sizeof err);
  TU_ASSERT_CODE(cpool_open(&p, &cfg, &err), CPOOL_ERESOLVE);
  CU_ASSERT_PTR_NULL(p);
  TU_ASSERT_CODE(err.code, CPOOL_ERESOLVE);
  TU_ASSERT_EQ(err.step, CPOOL_STEP_RESOLVE);
  CU_ASSERT(err.gai_error != 0);
  CU_ASSERT(err.message[0] != '\0');
}

static void test_null_call_args(void) {
  cpool_t *p = open_sync(2);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(NULL, &c, 0, NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkout(NULL, &c, 100, NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkout(p, NULL, 0, NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkout(p, NULL, 100, NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkin(NULL, NULL, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkin(p, NULL, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(NULL, &st), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(p, NULL), CPOOL_EINVAL);
  TU_ASSERT_EQ(cpool_conn_fd(NULL), -1);
  CU_ASSERT_PTR_NULL(cpool_conn_data(NULL));
  TU_ASSERT_EQ(cpool_conn_slot(NULL), -1);

  /* A conn given with a NULL pool changes nothing. */
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(NULL, c, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.busy, 1);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_bad_timeouts(void) {
  static const int bad[] = {-2, -1000, INT_MIN};
  cpool_t *p = open_sync(1);
  cpool_conn_t *c = NULL;
  cpool_stats_t st;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    TU_ASSERT_CODE(cpool_checkout(p, &c, bad[i], NULL), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.checkouts, 0);
  TU_ASSERT_EQ(st.idle, 1);
  /* close: EINVAL for drain < -1, and the pool is still there after. */
  TU_ASSERT_CODE(cpool_close(p, -2), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

/* The fields a refused checkin must leave alone. */
static int same_counts(const cpool_stats_t *a, const cpool_stats_t *b) {
  return a->idle == b->idle && a->busy == b->busy &&
         a->checkouts == b->checkouts && a->disconnects == b->disconnects &&
         a->broken_checkins == b->broken_checkins &&
         a->connects == b->connects && a->waiters == b->waiters;
}

static void test_bad_checkin_status(void) {
  static const int bad[] = {2, -1, 100, INT_MIN};
  cpool_t *p = open_sync(1);
  cpool_conn_t *c = NULL;
  cpool_stats_t before, after;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  TU_ASSERT_CODE(cpool_stats(p, &before), 0);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    TU_ASSERT_CODE(cpool_checkin(p, c, bad[i]), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(p, &after), 0);
  CU_ASSERT(same_counts(&before, &after));
  TU_ASSERT_EQ(after.busy, 1);
  /* Still checked out, still usable. */
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "still mine", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_double_checkin(void) {
  static const int statuses[] = {CPOOL_CONN_OK, CPOOL_CONN_BROKEN};
  cpool_t *p = open_sync(2);
  cpool_conn_t *c = NULL;
  cpool_stats_t before, after;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (size_t i = 0; i < 2; i++)
    for (size_t j = 0; j < 2; j++) {
      TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
      TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
      TU_ASSERT_CODE(cpool_stats(p, &before), 0);
      TU_ASSERT_CODE(cpool_checkin(p, c, statuses[j]), CPOOL_EINVAL);
      TU_ASSERT_CODE(cpool_stats(p, &after), 0);
      CU_ASSERT(same_counts(&before, &after));
      TU_ASSERT_EQ(after.idle, 2);
    }
  /* Checked in twice while another caller holds the same slot again: the
   * stale checkin must not take it away from them. */
  {
    cpool_conn_t *c1, *c2 = NULL;
    int slot;

    TU_ASSERT_CODE(cpool_checkout(p, &c1, 2000, NULL), 0);
    slot = cpool_conn_slot(c1);
    TU_ASSERT_CODE(cpool_checkin(p, c1, CPOOL_CONN_OK), 0);
    /* Take both slots, so the one we had is certainly held again. */
    TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
    TU_ASSERT_CODE(cpool_checkout(p, &c2, 2000, NULL), 0);
    TU_ASSERT_CODE(cpool_stats(p, &before), 0);
    if (cpool_conn_slot(c) != slot && cpool_conn_slot(c2) != slot)
      CU_FAIL("neither checkout got the slot back");
    if (c1 != c && c1 != c2) {
      /* A distinct handle per checkout: the stale one must be refused. */
      TU_ASSERT_CODE(cpool_checkin(p, c1, CPOOL_CONN_OK), CPOOL_EINVAL);
      TU_ASSERT_CODE(cpool_stats(p, &after), 0);
      CU_ASSERT(same_counts(&before, &after));
    }
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
    TU_ASSERT_CODE(cpool_checkin(p, c2, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
}

static void test_checkin_other_pool(void) {
  cpool_t *a = open_sync(1), *b = open_sync(1);
  cpool_conn_t *c = NULL;
  cpool_stats_t a0, a1, b0, b1;

  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  TU_ASSERT_CODE(cpool_checkout(a, &c, 2000, NULL), 0);
  TU_ASSERT_CODE(cpool_stats(a, &a0), 0);
  TU_ASSERT_CODE(cpool_stats(b, &b0), 0);
  TU_ASSERT_CODE(cpool_checkin(b, c, CPOOL_CONN_OK), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_checkin(b, c, CPOOL_CONN_BROKEN), CPOOL_EINVAL);
  TU_ASSERT_CODE(cpool_stats(a, &a1), 0);
  TU_ASSERT_CODE(cpool_stats(b, &b1), 0);
  CU_ASSERT(same_counts(&a0, &a1));
  CU_ASSERT(same_counts(&b0, &b1));
  TU_ASSERT_EQ(a1.busy, 1);
  TU_ASSERT_EQ(b1.idle, 1);
  TU_ASSERT_CODE(cpool_checkin(a, c, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_close(a, 0), 0);
  TU_ASSERT_CODE(cpool_close(b, 0), 0);
}

static void test_close_null(void) {
  TU_ASSERT_CODE(cpool_close(NULL, 0), 0);
  TU_ASSERT_CODE(cpool_close(NULL, CPOOL_WAIT_FOREVER), 0);
  TU_ASSERT_CODE(cpool_close(NULL, 1000), 0);
}

CU_TestInfo config_tests[] = {
    {"config_init_defaults", test_config_init_defaults},
    {"bad_int_fields", test_bad_int_fields},
    {"bad_endpoints", test_bad_endpoints},
    {"backoff_min_above_max", test_backoff_min_above_max},
    {"idle_check_bad_message", test_idle_check_bad_message},
    {"idle_check_zero_is_default", test_idle_check_zero_is_default},
    {"idle_check_constants", test_idle_check_constants},
    {"backoff_max_zero", test_backoff_max_zero},
    {"null_open_args", test_null_open_args},
    {"bad_worker_stack_size", test_bad_worker_stack_size},
    {"worker_stack_size_accepted", test_worker_stack_size_accepted},
    {"empty_string_endpoints", test_empty_string_endpoints},
    {"sizes_accepted", test_sizes_accepted},
    {"config_copied", test_config_copied},
    {"unresolvable_async", test_unresolvable_async},
    {"unresolvable_sync", test_unresolvable_sync},
    {"null_call_args", test_null_call_args},
    {"bad_timeouts", test_bad_timeouts},
    {"bad_checkin_status", test_bad_checkin_status},
    {"double_checkin", test_double_checkin},
    {"checkin_other_pool", test_checkin_other_pool},
    {"close_null", test_close_null},
    CU_TEST_INFO_NULL,
};
