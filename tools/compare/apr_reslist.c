/*
 * compare-apr: the --no-io cycle benchmark on APR's apr_reslist
 * (libaprutil1-dev), for comparison with `cpool-bench --no-io`.
 *
 * The resources are dummies (no I/O): the reslist is created with
 * min = smax = hmax = pool size, so every resource exists from the start
 * and none is ever created or destroyed during the run; ttl 0 (never
 * expire); acquire timeout 0, which APR defines as "wait forever".
 */
#include "cycle.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct apr_bench {
  apr_pool_t *mem;
  apr_reslist_t *list;
} apr_bench;

/* A resource is one byte of the pool's memory: only its address matters. */
static apr_status_t make_dummy(void **res, void *params, apr_pool_t *mem) {
  (void)params;
  *res = apr_palloc(mem, 1);
  return *res != NULL ? APR_SUCCESS : APR_ENOMEM;
}

static apr_status_t drop_dummy(void *res, void *params, apr_pool_t *mem) {
  (void)res;
  (void)params;
  (void)mem;
  return APR_SUCCESS;
}

static void apr_error(apr_status_t rv, const char *call, char *err,
                      size_t errlen) {
  char text[160];
  snprintf(err, errlen, "%s: %s", call, apr_strerror(rv, text, sizeof text));
}

static void *bench_open(int size, char *err, size_t errlen) {
  apr_bench *b = calloc(1, sizeof *b);
  apr_status_t rv;

  if (b == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if ((rv = apr_initialize()) != APR_SUCCESS) {
    apr_error(rv, "apr_initialize", err, errlen);
    free(b);
    return NULL;
  }
  if ((rv = apr_pool_create(&b->mem, NULL)) != APR_SUCCESS) {
    apr_error(rv, "apr_pool_create", err, errlen);
    goto fail;
  }
  rv = apr_reslist_create(&b->list, size, size, size, 0, make_dummy, drop_dummy,
                          NULL, b->mem);
  if (rv != APR_SUCCESS) {
    apr_error(rv, "apr_reslist_create", err, errlen);
    goto fail;
  }
  apr_reslist_timeout_set(b->list, 0);
  return b;

fail:
  if (b->mem != NULL)
    apr_pool_destroy(b->mem);
  apr_terminate();
  free(b);
  return NULL;
}

static int bench_acquire(void *pool, void **res) {
  apr_bench *b = pool;
  return (int)apr_reslist_acquire(b->list, res);
}

static int bench_release(void *pool, void *res) {
  apr_bench *b = pool;
  return (int)apr_reslist_release(b->list, res);
}

static void bench_close(void *pool) {
  apr_bench *b = pool;
  apr_reslist_destroy(b->list);
  apr_pool_destroy(b->mem);
  apr_terminate();
  free(b);
}

int main(int argc, char **argv) {
  static const cycle_pool impl = {
      .name = "apr_reslist",
      .open = bench_open,
      .acquire = bench_acquire,
      .release = bench_release,
      .close = bench_close,
  };
  return cycle_main(argc, argv, &impl);
}
