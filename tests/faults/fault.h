/*
 * Helpers for the fault suites (cpool-fault-tests): clocks, descriptor
 * counts, ports, blocking I/O with a deadline, waiting for a pool condition,
 * checks that print what the values were, the end-of-test checks every
 * fault test runs, a real redis-server, and network namespaces.
 *
 * What is not fault-specific comes from the shared test library
 * (cpool_testlib, tests/testutil.h).
 *
 * CUnit is not thread-safe: every FH_CHECK runs on the test's own thread.
 * Helper threads record what they saw; the test checks it afterwards.
 */
#ifndef CPOOL_FAULT_H
#define CPOOL_FAULT_H

#include "cpool.h"
#include "testserver.h"
#include "testutil.h"

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sanitizers slow everything down: timing margins grow with this. */
#define FH_SANITIZED TU_SANITIZED

/* The slack every upper timing bound allows for scheduling, in ms: the
 * machine may be busy (parallel builds, ctest -j), and the bounds only need
 * to tell "honoured" from "the kernel's default of minutes". */
#define FH_MARGIN_MS (FH_SANITIZED ? 400 : 200)

/* ---- the test table ---------------------------------------------------- */

typedef struct fault_test {
  const char *name;
  void (*fn)(void);
} fault_test;

typedef struct fault_suite {
  const char *name;
  const fault_test *tests; /* ended by {NULL, NULL} */
} fault_suite;

/* Every suite's test table, from the one list (faults/suites.def). */
#define SUITE(name, init, cleanup, tests, labels, timeout)                     \
  extern const fault_test tests[];
#include "suites.def"
#undef SUITE

/* Record that the running test could not run (printed as "SKIPPED: ..." on
 * stdout; the runner exits 77, which CTest shows as skipped, when a suite
 * had skips and no failures). */
void fh_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fh_skipped(void);

/* A measured figure, printed as "FIGURE: ..." on stdout. */
void fh_figure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- checks -------------------------------------------------------------- */

void fh_check_(int ok, const char *file, int line, const char *cond,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* CU_ASSERT with the values: FH_CHECK(x == 3, "x=%d", x). */
#define FH_CHECK(cond, ...)                                                    \
  fh_check_(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/* A cpool return code, by name. */
#define FH_CHECK_CODE(actual, expected)                                        \
  do {                                                                         \
    int a_ = (actual), e_ = (expected);                                        \
    fh_check_(a_ == e_, __FILE__, __LINE__, #actual " == " #expected,          \
              "got %s (%d), expected %s", cpool_err_name(a_), a_,              \
              cpool_err_name(e_));                                             \
  } while (0)

/* Clocks (tu_now_ms, tu_now_us, tu_sleep_ms), descriptor counts
 * (tu_count_fds) and free ports (tu_free_port) come from the shared test
 * library, testutil.h. */

/* ---- blocking I/O on a checked-out fd, with our own deadline ------------ */

/* Results of the I/O helpers: 0, a positive errno from the socket, or one
 * of these. */
enum {
  FH_IO_DEADLINE = -1, /* our own deadline passed (the peer is silent) */
  FH_IO_EOF = -2,      /* orderly end of stream before the reply */
  FH_IO_PROTO = -3     /* bytes that are not the expected reply */
};
const char *fh_io_name(int r); /* "deadline", "eof", "ECONNRESET" ... */

int fh_send_all(int fd, const void *buf, size_t n, int timeout_ms);
int fh_recv_exact(int fd, void *buf, size_t n, int timeout_ms);
/* "PING\r\n" out, "+PONG\r\n" back, both within timeout_ms. */
int fh_ping(int fd, int timeout_ms);

/* ---- the pool -------------------------------------------------------------
 */

/* Fast knobs for a pool on 127.0.0.1:port: connect timeout 500 ms, backoff
 * RAND 50..50 ms.  The idle check is the default (idle_check_ms 0: peek a
 * slot idle past FH_IDLE_CHECK_MS), so that a thread's parked slot is taken
 * back on the lock-free fast path under every fault, as in production. */
void fh_config(cpool_config *cfg, const char *host, int port, int size);

/* The library's default idle_check_ms (cpool.h), and a sleep that leaves a
 * slot idle past it, for a busy machine's coarse clock. */
#define FH_IDLE_CHECK_MS 500
#define FH_IDLE_PAST_CHECK_MS (FH_IDLE_CHECK_MS + 100)

/* Waiting for a pool's stats or any condition with a deadline:
 * TU_WAIT_STATS and TU_WAIT (testutil.h). */

/* The end of every fault test, on a pool that should heal: every slot is
 * idle (waited for, up to 5 s), cpool_close returns 0 in under 1 s.  The
 * pool is closed in any case.  NULL is a no-op. */
void fh_end_pool(cpool_t *pool, const char *what);
/* Close without the idle check (the backend was left down on purpose);
 * still checks that close is prompt. */
void fh_close_pool(cpool_t *pool, const char *what);
/* The descriptor count is back to fds0 (waited for, up to 2 s). */
void fh_check_fds(int fds0, const char *what);

/* The on_event recorder is tu_events (testutil.h): set its pool once
 * cpool_open returns, and the callback calls cpool_stats() from inside
 * on_event, which must not deadlock (callbacks run without the lock). */

/* ---- processes --------------------------------------------------------------
 */

/* Run a command (argv split on spaces; no quoting), output to /dev/null
 * unless FAULT_VERBOSE is set.  Returns its exit status, or -1. */
int fh_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, with the command's stderr kept in err (one line). */
int fh_run_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A redis-server on 127.0.0.1:port: NULL path if none on the PATH. */
const char *fh_redis_path(void);
pid_t fh_redis_spawn(int port); /* -1 on failure */
/* Wait until the port answers PING; returns the time (tu_now_ms) of the
 * first successful connect, or -1 on timeout. */
int64_t fh_redis_wait_ready(int port, int timeout_ms);
void fh_redis_kill(pid_t pid, int sig); /* signal and reap */

/* ---- network namespaces -----------------------------------------------------
 */

/* Two namespaces made by the test, "cpf<pid>a" (where the pool runs) and
 * "cpf<pid>b" (the peer), joined by a veth pair on a private /30. */
typedef struct fh_netns {
  int up;
  char a[32], b[32]; /* namespace names */
  char dev_a[16], dev_b[16];
  char ip_a[16], ip_b[16];
} fh_netns;

/* 0 when set up; -1 with the reason in why (not root, no `ip`, or netns not
 * allowed here).  Removes namespaces left by dead runs first. */
int fh_netns_setup(fh_netns *ns, char *why, size_t whylen);
void fh_netns_teardown(fh_netns *ns); /* idempotent */
/* Move the calling thread into namespace name; *saved gets a descriptor
 * of the old one for fh_netns_leave.  0 or -1. */
int fh_netns_enter(const char *name, int *saved);
int fh_netns_leave(int saved);
/* Make ns->ip_b unreachable from A without any error: A sends its frames
 * to a MAC address nobody has, so B drops them (SYNs and data vanish).
 * on = 0 restores normal neighbour resolution.  0 or -1. */
int fh_netns_blackhole(fh_netns *ns, int on);
/* The test server (testserver.h) in namespace B, answering PING on
 * ns->ip_b:port; NULL on failure (the reason on stderr). */
ts_server *fh_netns_peer(const fh_netns *ns, int port);

#endif
