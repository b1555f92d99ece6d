/*
 * cycle: the --no-io checkout/checkin cycle benchmark, shared by the
 * comparison programs (compare-apr, compare-memcached).
 *
 * It runs the same loop as `cpool-bench --no-io`: --threads threads share
 * one pool of --pool resources; each thread loops acquire, release, count,
 * for --duration seconds.  It prints ops/s and the fewest and most cycles
 * any one thread completed (fairness), as text or as one JSON summary line
 * with cpool-bench's field names.
 *
 * Each program only fills a cycle_pool with its pool's four calls; the
 * threads, timing, argument parsing and report live in cycle.c.
 */
#ifndef CPOOL_COMPARE_CYCLE_H
#define CPOOL_COMPARE_CYCLE_H

#include <stddef.h>

typedef struct cycle_pool {
  const char *name; /* "apr_reslist", printed in the report */

  /* Create a pool of exactly size resources, all created up front.
   * Returns the pool, or NULL with a one-line reason in err. */
  void *(*open)(int size, char *err, size_t errlen);

  /* Take a resource, waiting as long as it takes.  0 on success; on
   * failure a nonzero code and nothing taken. */
  int (*acquire)(void *pool, void **res);

  /* Give res back.  0 on success. */
  int (*release)(void *pool, void *res);

  /* Destroy the pool; every resource has been released. */
  void (*close)(void *pool);
} cycle_pool;

/*
 * cycle_main: parse argv (--threads T --pool P --duration S [--json]
 * [--quiet]), run the benchmark on impl and print the report.
 * Returns the process exit status: 0 ok, 1 on a failure while running
 * (a failed acquire or release, or the pool opened file descriptors,
 * which means it did I/O), 2 on bad arguments (a one-line error and the
 * usage on stderr).
 */
int cycle_main(int argc, char **argv, const cycle_pool *impl);

#endif /* CPOOL_COMPARE_CYCLE_H */
