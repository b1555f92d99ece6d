/*
 * cycle.c: threads, timing and report of the --no-io cycle benchmark
 * shared by the comparison programs.  See cycle.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "cycle.h"

#include <bsd/stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 10000
#define MAX_POOL 65536
#define MAX_DURATION_S 3600
#define WORKER_STACK (256 * 1024)

typedef struct options {
  int threads;
  int pool;
  int duration_s;
  int json;
} options;

/* One per thread, on its own cache line; written once, when the thread
 * ends, so the hot loop touches only its own stack. */
typedef struct worker {
  _Alignas(64) uint64_t ops;
  int failed; /* nonzero: acquire or release returned this code */
  int failed_in_release;
  pthread_t tid;
  struct run *run;
} worker;

typedef struct run {
  const cycle_pool *impl;
  void *pool;
  pthread_barrier_t start;
  atomic_int stop;
  worker *workers;
} run;

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s --threads T --pool P --duration S [--json] [--quiet]\n"
          "  The --no-io checkout/checkin cycle benchmark of cpool-bench,\n"
          "  on another pool: T threads (1..%d) loop acquire/release on a\n"
          "  pool of P resources (1..%d) for S seconds (1..%d).\n"
          "  --json prints one summary line with cpool-bench's field names.\n",
          prog, MAX_THREADS, MAX_POOL, MAX_DURATION_S);
}

static int bad_args(const char *prog, const char *what, const char *arg) {
  fprintf(stderr, "%s: %s%s%s\n", prog, what, arg ? ": " : "", arg ? arg : "");
  usage(stderr, prog);
  return 2;
}

/* Parses "--name value" or "--name=value" at argv[*i]; advances *i.
 * Returns 1 if argv[*i] is this flag, 0 if not, -1 if its value is missing
 * or out of range (the error is printed). */
static int int_flag(int argc, char **argv, int *i, const char *name,
                    long long max, int *out) {
  size_t len = strlen(name);
  const char *arg = argv[*i], *value;
  const char *errstr = NULL;

  if (strncmp(arg, name, len) != 0 || (arg[len] != '\0' && arg[len] != '='))
    return 0;
  if (arg[len] == '=') {
    value = arg + len + 1;
  } else if (*i + 1 < argc) {
    value = argv[++*i];
  } else {
    bad_args(argv[0], "missing value for", name);
    return -1;
  }
  *out = (int)strtonum(value, 1, max, &errstr);
  if (errstr != NULL) {
    char what[96];
    snprintf(what, sizeof what, "%s is %s (1..%lld)", name, errstr, max);
    bad_args(argv[0], what, value);
    return -1;
  }
  return 1;
}

/* Returns 0 and fills opt, 1 after --help, 2 on bad arguments. */
static int parse_args(int argc, char **argv, options *opt) {
  struct {
    const char *name;
    long long max;
    int *out;
  } flags[] = {
      {"--threads", MAX_THREADS, &opt->threads},
      {"--pool", MAX_POOL, &opt->pool},
      {"--duration", MAX_DURATION_S, &opt->duration_s},
  };
  size_t nflags = sizeof flags / sizeof flags[0];

  memset(opt, 0, sizeof *opt);
  for (int i = 1; i < argc; i++) {
    int r = 0;
    for (size_t f = 0; f < nflags && r == 0; f++)
      r = int_flag(argc, argv, &i, flags[f].name, flags[f].max, flags[f].out);
    if (r < 0)
      return 2;
    if (r > 0)
      continue;
    if (strcmp(argv[i], "--json") == 0) {
      opt->json = 1;
    } else if (strcmp(argv[i], "--quiet") == 0 ||
               strcmp(argv[i], "--no-io") == 0) {
      /* Accepted so the scripts can pass cpool-bench's flags unchanged:
       * there is no progress line, and no I/O is all these programs do. */
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 1;
    } else {
      return bad_args(argv[0], "unknown argument", argv[i]);
    }
  }
  /* Every flag's value is at least 1, so 0 means it was not given. */
  if (opt->threads == 0 || opt->pool == 0 || opt->duration_s == 0)
    return bad_args(argv[0], "--threads, --pool and --duration are required",
                    NULL);
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(const struct timespec *deadline) {
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline, NULL) ==
         EINTR)
    ;
}

/* Open file descriptors of this process, or -1 without /proc.  The pools
 * are given dummy resources: if the count changes over a run, the pool
 * opened something (a socket), and the comparison would not be --no-io. */
static int count_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  int n = 0;

  if (dir == NULL)
    return -1;
  while (readdir(dir) != NULL)
    n++;
  closedir(dir);
  return n;
}

/* The hot loop: nothing but the pool's two calls and a local counter. */
static void *worker_main(void *arg) {
  worker *w = arg;
  run *r = w->run;
  const cycle_pool *impl = r->impl;
  void *pool = r->pool;
  uint64_t ops = 0;
  int rc = 0;

  pthread_barrier_wait(&r->start);
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    void *res = NULL;
    if ((rc = impl->acquire(pool, &res)) != 0)
      break;
    if ((rc = impl->release(pool, res)) != 0) {
      w->failed_in_release = 1;
      break;
    }
    ops++;
  }
  w->ops = ops;
  w->failed = rc;
  return NULL;
}

/* Starts the threads; on failure stops and joins the ones started.
 * Returns how many were started (all of them on success). */
static int start_workers(run *r, int threads) {
  pthread_attr_t attr;
  int started = 0, err = 0;

  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, WORKER_STACK);
  for (; started < threads; started++) {
    worker *w = &r->workers[started];
    w->run = r;
    if ((err = pthread_create(&w->tid, &attr, worker_main, w)) != 0)
      break;
  }
  pthread_attr_destroy(&attr);
  if (err != 0)
    fprintf(stderr, "pthread_create (thread %d): %s\n", started + 1,
            strerror(err));
  return started;
}

typedef struct result {
  double elapsed_s;
  uint64_t ops, ops_min, ops_max;
  int failures;
} result;

static void summarize(const run *r, int threads, result *res) {
  res->ops = 0;
  res->ops_min = UINT64_MAX;
  res->ops_max = 0;
  res->failures = 0;
  for (int i = 0; i < threads; i++) {
    const worker *w = &r->workers[i];
    res->ops += w->ops;
    if (w->ops < res->ops_min)
      res->ops_min = w->ops;
    if (w->ops > res->ops_max)
      res->ops_max = w->ops;
    if (w->failed != 0) {
      res->failures++;
      fprintf(stderr, "thread %d: %s failed with code %d\n", i + 1,
              w->failed_in_release ? "release" : "acquire", w->failed);
    }
  }
}

static void report(const cycle_pool *impl, const options *opt,
                   const result *res) {
  double rps = res->elapsed_s > 0 ? (double)res->ops / res->elapsed_s : 0;
  double fair = res->ops_max > 0 ? (double)res->ops_min / res->ops_max : 0;

  if (opt->json) {
    /* The field names and order of cpool-bench's summary, plus "impl". */
    printf("{\"type\":\"summary\",\"impl\":\"%s\",\"elapsed_s\":%.3f,"
           "\"threads\":%d,\"pool\":%d,\"no_io\":true,"
           "\"requests_ok\":%" PRIu64 ",\"requests_failed\":%d,"
           "\"rps\":%.1f,\"thread_ops_min\":%" PRIu64
           ",\"thread_ops_max\":%" PRIu64 "}\n",
           impl->name, res->elapsed_s, opt->threads, opt->pool, res->ops,
           res->failures, rps, res->ops_min, res->ops_max);
  } else {
    printf("%s --no-io: %d threads, pool %d, %.2f s\n", impl->name,
           opt->threads, opt->pool, res->elapsed_s);
    printf("  cycles ok   %" PRIu64 "\n", res->ops);
    printf("  cycles/s    %.0f\n", rps);
    printf("  per thread  min %" PRIu64 "  max %" PRIu64 "  (min/max %.3f)\n",
           res->ops_min, res->ops_max, fair);
    if (res->failures)
      printf("  failures    %d threads\n", res->failures);
  }
  fflush(stdout);
}

/* Runs the timed part: start, sleep, stop, join.  Returns 0 or 1. */
static int run_benchmark(run *r, const options *opt, result *res) {
  struct timespec deadline;
  double t0;
  int started;

  if (pthread_barrier_init(&r->start, NULL, (unsigned)opt->threads + 1) != 0)
    return 1;
  started = start_workers(r, opt->threads);
  if (started < opt->threads) {
    /* The barrier cannot be released short-handed: those threads would
     * wait forever, so the process exits without joining them. */
    return 1;
  }
  pthread_barrier_wait(&r->start);
  t0 = now_s();
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += opt->duration_s;
  sleep_until(&deadline);
  atomic_store(&r->stop, 1);
  res->elapsed_s = now_s() - t0;
  for (int i = 0; i < opt->threads; i++)
    pthread_join(r->workers[i].tid, NULL);
  pthread_barrier_destroy(&r->start);
  summarize(r, opt->threads, res);
  return res->failures ? 1 : 0;
}

int cycle_main(int argc, char **argv, const cycle_pool *impl) {
  options opt;
  run r;
  result res;
  char err[256] = "";
  int fds_before, fds_after, status;

  if ((status = parse_args(argc, argv, &opt)) != 0)
    return status == 1 ? 0 : status;

  memset(&r, 0, sizeof r);
  memset(&res, 0, sizeof res);
  r.impl = impl;
  atomic_init(&r.stop, 0);
  r.workers = aligned_alloc(_Alignof(worker), sizeof(worker) * opt.threads);
  if (r.workers == NULL) {
    fprintf(stderr, "%s: out of memory\n", argv[0]);
    return 1;
  }
  memset(r.workers, 0, sizeof(worker) * opt.threads);

  fds_before = count_fds();
  r.pool = impl->open(opt.pool, err, sizeof err);
  if (r.pool == NULL) {
    fprintf(stderr, "%s: cannot create the %s: %s\n", argv[0], impl->name, err);
    free(r.workers);
    return 1;
  }
  status = run_benchmark(&r, &opt, &res);
  if (res.elapsed_s > 0)
    report(impl, &opt, &res);
  fds_after = count_fds();
  if (fds_before != fds_after) {
    fprintf(stderr, "%s: the %s opened %d file descriptors: not --no-io\n",
            argv[0], impl->name, fds_after - fds_before);
    status = 1;
  }
  /* Close only after a clean run: both pools abort or hang when closed
   * with resources still out, and a failed thread may hold one. */
  if (status == 0)
    impl->close(r.pool);
  free(r.workers);
  return status;
}
