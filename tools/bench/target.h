/*
 * The target server: its address, single connections to it (for
 * --connect-per-request and for filling the keys of a get run), and the
 * pool opened on it.
 */
#ifndef BENCH_TARGET_H
#define BENCH_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "args.h"
#include "cpool.h"

#define IO_TIMEOUT_MS 5000 /* send/recv on a connection, and connect */

typedef struct target {
  struct sockaddr_storage addr;
  socklen_t addrlen;
  bool tcp;
  char name[160]; /* "127.0.0.1:6379" or "unix:/path" */
} target_t;

/* Per-connection state the pool keeps for us (cpool_conn_data): whether
 * the I/O timeouts are set yet.  Touched only by the thread that holds the
 * connection. */
typedef struct conn_state {
  bool timeouts_set;
} conn_state;

/* target_name: fill t->name from the arguments (no resolving). */
void target_name(target_t *t, const bench_args *a);

/* target_resolve: resolve the address and connect once to check that the
 * server is there.  Returns 0, or -1 with a one-line message in err. */
int target_resolve(target_t *t, const bench_args *a, char *err, size_t errlen);

/* target_connect: a new blocking connection with TCP_NODELAY and the I/O
 * timeouts set.  Returns the fd, or -1 with errno. */
int target_connect(const target_t *t);

/* target_open_pool: open a pool of a->pool connections on the target, all
 * connected before it returns.  Returns 0, or a CPOOL_E* code with a
 * one-line message in err. */
int target_open_pool(cpool_t **pool, const bench_args *a, char *err,
                     size_t errlen);

/* target_needs_keys: does the run read keys (get, memcache-get, a ratio
 * with gets) that must be stored first? */
bool target_needs_keys(const bench_args *a);

/* target_fill_keys: store every key of the key space that the run reads
 * (SET, or memcached set), pipelined, on fd.  0 or -1 with a message in
 * err. */
int target_fill_keys(int fd, const bench_args *a, char *err, size_t errlen);

#endif
