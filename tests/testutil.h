/*
 * Helpers shared by the suites: clocks, descriptor and memory counts,
 * waiting for a pool condition with a deadline, small blocking clients,
 * an on_event recorder, and a real redis-server run by the test.
 *
 * CUnit is not thread-safe: assert only on the thread running the test.
 * Helper threads record what they saw and the test asserts on it after.
 */
#ifndef CPOOL_TESTUTIL_H
#define CPOOL_TESTUTIL_H

#include "cpool.h"

#include <semaphore.h>

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* Sanitizers slow everything down; timing bounds and loop counts use this. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#else
#define TU_SANITIZED 0
#endif

/* ---- clocks and the process ------------------------------------------- */

int64_t tu_now_ms(void); /* CLOCK_MONOTONIC */
int64_t tu_now_us(void);
void tu_sleep_ms(int ms);
void tu_sleep_us(int us);
/* Now on clock plus ms, for sem_timedwait and pthread_cond_timedwait (a
 * condition variable's clock is CLOCK_REALTIME unless set otherwise). */
struct timespec tu_deadline_ts(clockid_t clock, int ms);
/* sem_wait bounded to ms: 0 once posted, -1 on timeout. */
int tu_sem_wait_ms(sem_t *s, int ms);
int tu_count_fds(void); /* entries of /proc/self/fd, -1 on error */
long tu_rss_kib(void);  /* VmRSS from /proc/self/status, -1 on error */
int tu_have_ipv6(void); /* ::1 can be bound here */
/* Move the calling thread into the named network namespace
 * (/var/run/netns/NAME, as `ip netns` makes them).  0, or -1 with errno. */
int tu_netns_join(const char *name);

/* A port number outside the kernel's ephemeral range, not checked. */
int tu_random_port(void);
/* A port outside the ephemeral range that was free a moment ago. */
int tu_free_port(void);

/* ---- assertions that say what the values were --------------------------- */

/* The name of the CUnit test running now, "?" outside one. */
const char *tu_current_test(void);

/* Every check below: on failure, "file:line: FAILED in TEST: what (values)"
 * on stderr, and the same "what (values)" in CUnit's failure record. */
void tu_fail_(int ok, const char *what, const char *file, int line,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define TU_ASSERT_INT(actual, op, expected)                                    \
  do {                                                                         \
    long long a_ = (long long)(actual), e_ = (long long)(expected);            \
    tu_fail_(a_ op e_, #actual " " #op " " #expected, __FILE__, __LINE__,      \
             "%lld vs %lld", a_, e_);                                          \
  } while (0)
#define TU_ASSERT_EQ(actual, expected) TU_ASSERT_INT(actual, ==, expected)

/* CU_ASSERT with the values: TU_CHECK(x == 3, "x=%d", x). */
#define TU_CHECK(cond, ...)                                                    \
  tu_fail_(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

/* A cpool return code, printed by name when it is not the expected one. */
#define TU_ASSERT_CODE(actual, expected)                                       \
  do {                                                                         \
    int a_ = (actual), e_ = (expected);                                        \
    tu_fail_(a_ == e_, #actual " == " #expected, __FILE__, __LINE__,           \
             "got %s (%d), expected %s", cpool_err_name(a_), a_,               \
             cpool_err_name(e_));                                              \
  } while (0)

#define TU_ASSERT_BETWEEN(v, lo, hi)                                           \
  do {                                                                         \
    long long v_ = (long long)(v), l_ = (long long)(lo), h_ = (long long)(hi); \
    tu_fail_(v_ >= l_ && v_ <= h_, #v " in [" #lo ", " #hi "]", __FILE__,      \
             __LINE__, "%lld not in [%lld, %lld]", v_, l_, h_);                \
  } while (0)

/* ---- waiting for a condition ------------------------------------------- */

/* One step of TU_WAIT_STATS: the first call takes a snapshot at once;
 * later calls sleep a little first; returns 0 once the deadline is past
 * (st keeps the last snapshot, for the assertion that follows) or when
 * cpool_stats fails (st is then all zeros). */
int tu_poll_stats_(cpool_t *pool, cpool_stats_t *st, int64_t deadline_ms,
                   int64_t round);
int tu_poll_(int64_t deadline_ms, int64_t round);

/* Snapshot pool's stats into st until cond (an expression on st) holds or
 * timeout_ms passes.  Afterwards st is the last snapshot: assert on it. */
#define TU_WAIT_STATS(pool, st, cond, timeout_ms)                              \
  for (int64_t tu_dl_ = tu_now_ms() + (timeout_ms), tu_n_ = 0;                 \
       tu_poll_stats_((pool), &(st), tu_dl_, tu_n_++) && !(cond);)

/* Poll any condition (atomics, the server's counters) until it holds or
 * timeout_ms passes; assert on the condition afterwards. */
#define TU_WAIT(cond, timeout_ms)                                              \
  for (int64_t tu_dl_ = tu_now_ms() + (timeout_ms), tu_n_ = 0;                 \
       !(cond) && tu_poll_(tu_dl_, tu_n_++);)

/* ---- pools --------------------------------------------------------------- */

/* Defaults for the tests: 127.0.0.1:port, fast knobs (connect timeout
 * 500 ms, backoff 10..100 ms), size slots, async. */
void tu_config(cpool_config *cfg, int port, int size);
/* A pool of tu_config's, opened with CPOOL_START_SYNC (asserted): NULL if
 * it did not open. */
cpool_t *tu_open_sync(int port, int size);

/* Every slot of a pool of size is idle (waits up to 5 s for it), none is
 * lost, and each one can be checked out at once (and is checked back in). */
void tu_assert_all_slots_free(cpool_t *p, int size);

/* The idle check at checkout, on a pool of one slot (START_SYNC) on a
 * test server of its own: the slot is used, checked in (after_checkin, if
 * not NULL, then looks at the connection), sent bytes nobody asked for
 * (ts_poke, a fault only a peek finds), left idle for idle_for_ms and
 * checked out again.  With expect_peek the checkout peeks: a new
 * connection, the dead one counted in idle_check_failures; without, the
 * dead one is handed out, its I/O fails and it is checked in broken.
 * Either way the slot then comes back alive. */
void tu_idle_check_case(int idle_check_ms, int idle_for_ms, int expect_peek,
                        void (*after_checkin)(cpool_conn_t *c));

/* A checkout on its own thread, for tests that need waiters. */
typedef struct tu_waiter {
  cpool_t *pool;
  int timeout_ms;
  int checkin;      /* check the connection back in (OK) at once */
  _Atomic int *seq; /* if set: order = (*seq)++ right after checkout */
  pthread_t thread;
  /* Results, valid after tu_waiter_join(). */
  int rc;
  cpool_conn_t *conn; /* NULL if checked in (or none) */
  int slot;
  int order;
  int checkin_rc;
  cpool_error_info why;
  int64_t t0_ms, t1_ms; /* call began, call returned */
} tu_waiter;

/* 0 if the thread started.  seq may be NULL. */
int tu_waiter_start(tu_waiter *w, cpool_t *pool, int timeout_ms, int checkin,
                    _Atomic int *seq);
/* Join; a checkout that has not returned within 30 s is a hang: report it
 * and abort, since the pool cannot be closed under a blocked caller. */
void tu_waiter_join(tu_waiter *w);

/* ---- blocking clients on a checked-out fd ------------------------------ */

/* A blocking connect to ip:port (an IPv4 address) or to a Unix socket:
 * the fd, or -errno. */
int tu_dial(const char *ip, int port);
int tu_dial_unix(const char *path);

/* One implementation, two conventions for its results.  The tu_io_ calls
 * return 0, a positive errno from the socket, or a TU_IO_ code: for tests
 * that must tell a reset from an orderly EOF, or our own deadline from the
 * socket's (the fault suites).  tu_send_all and the calls after it return
 * 0, or -1 with errno, for tests that compare errno: our deadline is
 * ETIMEDOUT, an early EOF ECONNRESET, unexpected bytes EPROTO. */
enum {
  TU_IO_DEADLINE = -1, /* our own deadline passed (the peer is silent) */
  TU_IO_EOF = -2,      /* orderly end of stream before all bytes came */
  TU_IO_PROTO = -3     /* bytes that are not the expected reply */
};
const char *tu_io_name(int r); /* "our deadline", "eof", "errno 104 (...)" */
int tu_io_send(int fd, const void *buf, size_t n, int timeout_ms);
int tu_io_recv(int fd, void *buf, size_t n, int timeout_ms);
/* "PING\r\n" out, "+PONG\r\n" back, both within timeout_ms. */
int tu_io_ping(int fd, int timeout_ms);

int tu_send_all(int fd, const void *buf, size_t n, int timeout_ms);
int tu_recv_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Send msg and expect it back (echo server). */
int tu_echo(int fd, const char *msg, int timeout_ms);
/* Send "PING\r\n" and expect "+PONG\r\n" (Redis or the test server), both
 * within timeout_ms. */
int tu_ping(int fd, int timeout_ms);

/* ---- on_event recorder ------------------------------------------------- */

typedef struct tu_event {
  int slot;
  cpool_event_type type;
  int64_t t_ms;
  int64_t t_us; /* tu_now_us() when delivered, for finer timing */
  cpool_error_info err;
} tu_event;

#define TU_MAX_EVENTS 4096

typedef struct tu_events {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int n;        /* recorded (at most TU_MAX_EVENTS kept) */
  int total;    /* delivered, kept or not */
  int bad_slot; /* events whose slot argument disagreed with err->slot */
  int null_err; /* events with err NULL (the header says never) */
  int bad_type; /* events whose type is not a cpool_event_type */
  int per_type[8];
  /* Set once the pool is open: the callback then calls cpool_stats() on
   * it, which the header allows (callbacks run without the pool lock). */
  cpool_t *_Atomic pool;
  int stats_calls, stats_failed;
  tu_event ev[TU_MAX_EVENTS];
} tu_events;

tu_events *tu_events_new(void);
void tu_events_free(tu_events *r);
/* The on_event callback; cb_arg must be the recorder. */
void tu_events_cb(int slot, cpool_event_type type, const cpool_error_info *err,
                  void *arg);
int tu_events_count(tu_events *r, cpool_event_type type);
/* Malformed events so far: err NULL, slot mismatch or a bad type. */
int tu_events_bad(tu_events *r);
/* cpool_stats() calls the callback made on the open pool, and how many of
 * them failed (read under the recorder's lock). */
void tu_events_stats_calls(tu_events *r, int *calls, int *failed);
/* Wait until at least n events of type were delivered; 1 if so. */
int tu_events_wait(tu_events *r, cpool_event_type type, int n, int timeout_ms);
/* Copy of the i-th event of type (0-based); 0 if found. */
int tu_events_get(tu_events *r, cpool_event_type type, int i, tu_event *out);

/* ---- a real redis-server ----------------------------------------------- */

typedef struct tu_redis {
  pid_t pid; /* 0 when not running */
  int port;
} tu_redis;

/* 1 if redis-server is on the PATH. */
int tu_redis_available(void);
/* Start redis-server on 127.0.0.1:port (a free port if port is 0) and wait
 * until it answers PING; 0, or -1 with the reason on stderr. */
int tu_redis_start(tu_redis *r, int port, int timeout_ms);
/* The same with more arguments for redis-server (NULL-terminated, at most
 * 18), e.g. {"--tcp-backlog", "4096", NULL}. */
int tu_redis_start_with(tu_redis *r, int port, int timeout_ms,
                        const char *const *extra);
/* One inline command (e.g. "CONFIG SET timeout 1") on a connection of
 * its own; the first line of the reply in reply ("+OK\r\n"); 0 if a whole
 * line came back. */
int tu_redis_cmd(int port, const char *cmd, char *reply, size_t len,
                 int timeout_ms);
/* Start redis-server on 127.0.0.1:port without waiting for it: 0, or -1
 * with the reason on stderr. */
int tu_redis_spawn(tu_redis *r, int port);
/* Wait until the port answers PING; the time (tu_now_ms) of the connect
 * that was answered, or -1 if none was within timeout_ms. */
int64_t tu_redis_wait_ready(int port, int timeout_ms);
/* Send sig and reap the process. */
void tu_redis_kill(tu_redis *r, int sig);
/* SIGTERM, then SIGKILL if it does not exit within 2 s. */
void tu_redis_stop(tu_redis *r);

#endif
