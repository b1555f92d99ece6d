/*
 * compare-memcached: the --no-io cycle benchmark on libmemcached's
 * memcached_pool (libmemcachedutil, libmemcached-dev), for comparison with
 * `cpool-bench --no-io`.
 *
 * The pooled objects are clones of a memcached_st with no server added:
 * fetching and releasing one never connects (there is nothing to connect
 * to), and cycle.c checks that no file descriptor was opened.  The pool is
 * created full (initial = max = pool size).  memcached_pool_fetch blocks
 * only when given a relative time (NULL means "do not wait"), so it is
 * given one hour: in effect a blocking wait.
 */
#define _POSIX_C_SOURCE 200809L

/* <time.h> first: pool.h names struct timespec in a prototype, which would
 * otherwise declare a different, prototype-scoped struct. */
#include <time.h>

#include "cycle.h"

#include <libmemcached/memcached.h>
#include <libmemcachedutil-1.0/pool.h>
#include <stdio.h>

#define FETCH_WAIT_S 3600

static void *bench_open(int size, char *err, size_t errlen) {
  memcached_st *master = memcached_create(NULL);
  memcached_pool_st *pool;

  if (master == NULL) {
    snprintf(err, errlen, "memcached_create failed");
    return NULL;
  }
  if (memcached_server_count(master) != 0) {
    snprintf(err, errlen, "the dummy memcached_st has servers");
    memcached_free(master);
    return NULL;
  }
  pool = memcached_pool_create(master, (uint32_t)size, (uint32_t)size);
  if (pool == NULL) {
    snprintf(err, errlen, "memcached_pool_create failed");
    memcached_free(master);
    return NULL;
  }
  return pool;
}

static int bench_acquire(void *pool, void **res) {
  struct timespec wait = {FETCH_WAIT_S, 0};
  memcached_return_t rc = MEMCACHED_SUCCESS;
  memcached_st *mc = memcached_pool_fetch(pool, &wait, &rc);

  if (mc == NULL)
    return rc != MEMCACHED_SUCCESS ? (int)rc : -1;
  *res = mc;
  return 0;
}

static int bench_release(void *pool, void *res) {
  return (int)memcached_pool_release(pool, res);
}

static void bench_close(void *pool) {
  /* memcached_pool_destroy frees the clones and gives back the master. */
  memcached_free(memcached_pool_destroy(pool));
}

int main(int argc, char **argv) {
  static const cycle_pool impl = {
      .name = "memcached_pool",
      .open = bench_open,
      .acquire = bench_acquire,
      .release = bench_release,
      .close = bench_close,
  };
  return cycle_main(argc, argv, &impl);
}
