/*
 * cpool-bench: load-test a server through a cpool pool, or measure the pool
 * itself.  See docs/bench.md for every option and output field.
 *
 * Exit status: 0 when the run completed with at least one request ok; 1 when
 * none succeeded or something failed at run time; 2 for bad arguments or a
 * target that cannot be reached.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "cpool.h"
#include "report.h"
#include "runner.h"
#include "server.h"
#include "target.h"

#define EXIT_USAGE 2
#define SLICE_NS (100 * NS_PER_MS) /* how soon Ctrl-C is seen */
/* After a --chaos run, how long the slots get to come back: the pool's
 * backoff_max_ms and connect_timeout_ms (target.c), and a refusal. */
#define SETTLE_MS 5000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Ctrl-C and SIGTERM end the run early, with its summary; a second one
 * kills as usual.  Only the main thread takes them: the other threads are
 * created with them blocked. */
static void setup_signals(sigset_t *blocked) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(blocked);
  sigaddset(blocked, SIGINT);
  sigaddset(blocked, SIGTERM);
  pthread_sigmask(SIG_BLOCK, blocked, NULL);
}

static int usage_error(const char *msg) {
  fprintf(stderr, "cpool-bench: %s\n", msg);
  args_usage(stderr);
  return EXIT_USAGE;
}

struct bench {
  bench_args a;
  server_t *srv;
  cpool_t *pool;
  target_t target;
  runner_t *runner;
  report_t *report;
  report_end end;
  char err[512];
};

/* Open file descriptors of this process, or -1. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* not the directory's own */
}

/* Once the run is over: with --chaos, stop the faults and give the slots
 * time to come back; then how many are connected and idle.  A slot that
 * never comes back is a lost slot. */
static void settle(struct bench *b) {
  cpool_stats_t st;
  uint64_t t0 = now_ns();
  uint64_t limit = b->a.chaos_ms ? SETTLE_MS * NS_PER_MS : 0;

  server_calm(b->srv);
  for (;;) {
    if (cpool_stats(b->pool, &st) != 0)
      return;
    uint64_t now = now_ns();
    if (st.idle == b->a.pool || now - t0 >= limit || interrupted)
      break;
    sleep_until_ns(now + 10 * NS_PER_MS);
  }
  b->end.slots_idle = st.idle;
  b->end.settle_ms = (int64_t)((now_ns() - t0) / NS_PER_MS);
}

/* Start the built-in server and point the arguments at it. */
static int start_server(struct bench *b) {
  bool implied = b->a.host == NULL && b->a.unix_path == NULL;
  server_opts o = {.echo = b->a.protocol == PROTO_ECHO && !b->a.no_io,
                   .unix_path = b->a.unix_path,
                   .port = b->a.unix_path ? 0 : b->a.port,
                   .chaos_ms = b->a.chaos_ms};
  if (server_start(&b->srv, &o, b->err, sizeof b->err) != 0)
    return -1;
  if (b->a.unix_path == NULL) {
    b->a.host = "127.0.0.1";
    b->a.port = server_port(b->srv);
  }
  target_name(&b->target, &b->a);
  fprintf(stderr, "cpool-bench: %sbuilt-in server (%s, %d threads%s) on %s\n",
          implied ? "no target given; started the " : "started the ",
          o.echo ? "echo" : "redis", server_threads(b->srv),
          b->a.chaos_ms ? ", chaos" : "", b->target.name);
  return 0;
}

/* Connect: the target, then the pool on it, then the keys a get run reads.
 * Returns 0, EXIT_USAGE for a target that is not there, 1 otherwise. */
static int connect_target(struct bench *b) {
  if (target_resolve(&b->target, &b->a, b->err, sizeof b->err) != 0)
    return EXIT_USAGE;
  if (!b->a.connect_per_request) {
    int rc = target_open_pool(&b->pool, &b->a, b->err, sizeof b->err);
    if (rc != 0)
      return rc == CPOOL_ECONNECT || rc == CPOOL_ERESOLVE ||
                     (rc == CPOOL_EINVAL && b->a.endpoints != NULL)
                 ? EXIT_USAGE /* not there, or a bad --endpoints entry */
                 : 1;
  }
  if (!target_needs_keys(&b->a))
    return 0;
  int fd = target_connect(&b->target);
  if (fd < 0) {
    snprintf(b->err, sizeof b->err, "cannot connect to %s: %s", b->target.name,
             strerror(errno));
    return 1;
  }
  int rc = target_fill_keys(fd, &b->a, b->err, sizeof b->err);
  close(fd);
  return rc ? 1 : 0;
}

/* The main thread's part of the run: report once a second until the
 * threads are done, the deadline passes or Ctrl-C. */
static uint64_t drive(struct bench *b) {
  uint64_t t0 = runner_t0(b->runner);
  uint64_t warm = b->a.warmup_ms ? t0 + (uint64_t)b->a.warmup_ms * NS_PER_MS
                                 : 0; /* 0: no warmup, or it is over */
  uint64_t end =
      b->a.duration_ms
          ? t0 + (uint64_t)(b->a.warmup_ms + b->a.duration_ms) * NS_PER_MS
          : 0;
  uint64_t tick = t0 + NS_PER_S;
  report_begin(b->report, t0);
  for (;;) {
    uint64_t now = now_ns(), until = now + SLICE_NS;
    if (until > tick)
      until = tick;
    if (warm != 0 && until > warm)
      until = warm;
    if (end != 0 && until > end)
      until = end;
    if (runner_wait(b->runner, until) || interrupted)
      break;
    now = now_ns();
    if (end != 0 && now >= end)
      break;
    if (now >= tick) {
      report_interval(b->report, now);
      tick += NS_PER_S;
    }
    if (warm != 0 && now >= warm) {
      report_mark(b->report, now); /* the figures start here */
      warm = 0;
    }
  }
  runner_stop(b->runner);
  uint64_t last = runner_join(b->runner);
  if ((b->a.json || b->a.plot_path) && last > tick - NS_PER_S)
    report_interval(b->report, last); /* the rest of the last second */
  return last;
}

/* --metrics: the pool's stats at the end of the run, in the Prometheus
 * text format, on stdout. */
static void print_metrics(struct bench *b) {
  cpool_stats_t st;
  if (!b->a.metrics || b->pool == NULL || cpool_stats(b->pool, &st) != 0)
    return;
  int n = cpool_stats_write_prometheus(&st, NULL, NULL, 0);
  char *text = n > 0 ? malloc((size_t)n + 1) : NULL;
  if (text != NULL &&
      cpool_stats_write_prometheus(&st, NULL, text, (size_t)n + 1) == n)
    fputs(text, stdout);
  free(text);
}

/* The run, up to its figures (report_finish); the summary is printed once
 * the pool and the server are gone, with the descriptors left. */
static int run(struct bench *b, const sigset_t *blocked) {
  if (runner_start(&b->runner, &b->a, b->pool, &b->target, b->err,
                   sizeof b->err) != 0)
    return 1;
  b->report = report_new(&b->a, b->runner, b->pool, b->srv, b->target.name);
  if (b->report == NULL) {
    runner_stop(b->runner);
    runner_join(b->runner);
    snprintf(b->err, sizeof b->err, "out of memory");
    return 1;
  }
  pthread_sigmask(SIG_UNBLOCK, blocked, NULL); /* every thread is started */
  uint64_t end = drive(b);
  if (b->pool != NULL)
    settle(b);
  report_finish(b->report, end);
  print_metrics(b);
  return 0;
}

static void cleanup(struct bench *b) {
  runner_free(b->runner);
  b->runner = NULL;
  if (b->pool != NULL) {
    int rc = cpool_close(b->pool, 1000);
    if (rc != 0)
      fprintf(stderr, "cpool-bench: cpool_close: %s\n", cpool_strerror(rc));
    b->pool = NULL;
  }
  server_stop(b->srv);
  b->srv = NULL;
}

int main(int argc, char **argv) {
  static struct bench b; /* static: zeroed, and off the stack */
  if (args_parse(&b.a, argc, argv, b.err, sizeof b.err) != 0)
    return usage_error(b.err);
  if (b.a.help) {
    args_usage(stdout);
    return 0;
  }
  sigset_t blocked;
  setup_signals(&blocked);
  b.end = (report_end){.slots_idle = -1, .settle_ms = -1, .fds_end = -1};
  b.end.fds_start = count_fds();
  int rc = 0;
  if (b.a.builtin && start_server(&b) != 0)
    rc = 1;
  if (rc == 0)
    rc = connect_target(&b);
  if (rc == 0)
    rc = run(&b, &blocked);
  cleanup(&b);
  if (rc == 0) {
    if (b.end.fds_start >= 0)
      b.end.fds_end = count_fds();
    if (report_summary(b.report, &b.end) == 0) {
      snprintf(b.err, sizeof b.err, "no request succeeded");
      rc = 1;
    } else if (report_files(b.report, b.err, sizeof b.err) != 0) {
      rc = 1;
    }
  }
  report_free(b.report);
  if (rc == EXIT_USAGE)
    usage_error(b.err);
  else if (rc != 0)
    fprintf(stderr, "cpool-bench: %s\n", b.err);
  return rc;
}
