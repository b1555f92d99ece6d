/*
 * Helpers for the fault suites (cpool-fault-tests): the test table, skips
 * and figures, the pool's fast knobs, the end-of-test checks every fault
 * test runs, commands, and network namespaces.
 *
 * What is not fault-specific (clocks, ports, checks, blocking I/O, the test
 * server, redis-server) comes from the shared test library (cpool_testlib:
 * tests/testutil.h, tests/testserver.h).
 *
 * CUnit is not thread-safe: every TU_CHECK runs on the test's own thread.
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

/* The slack every upper timing bound allows for scheduling, in ms: the
 * machine may be busy (parallel builds, ctest -j), and the bounds only need
 * to tell "honoured" from "the kernel's default of minutes".  Sanitizers
 * slow everything down: the margin grows with TU_SANITIZED. */
#define FH_MARGIN_MS (TU_SANITIZED ? 400 : 200)

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

/* Checks: TU_CHECK(cond, fmt, ...) and TU_ASSERT_CODE, and blocking I/O
 * with our own deadline that tells a reset from an EOF: tu_io_send,
 * tu_io_recv, tu_io_ping, tu_io_name (testutil.h).  Clocks (tu_now_ms,
 * tu_sleep_ms), descriptor counts (tu_count_fds) and free ports
 * (tu_free_port) come from there too. */

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

/* A redis-server: tu_redis_* (testutil.h). */

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
