/*
 * The built-in server: what cpool-bench talks to when no target is given.
 *
 * Loopback or a Unix socket only.  One acceptor thread hands connections
 * round-robin to worker threads, each with its own epoll set, so no lock is
 * taken per request (except the key-value map's shard lock for GET/SET).
 *
 * It speaks either raw echo (every byte back), or Redis: RESP arrays and
 * inline commands, PING, ECHO, GET, SET (an in-memory map), COMMAND, QUIT.
 * Requests are parsed with bounds (16 arguments, 8 MiB per argument); a
 * malformed one gets "-ERR Protocol error" and the connection is closed.
 *
 * Chaos: every chaos_ms the server stops listening (connects are refused),
 * resets every connection, and listens again refuse_ms later.
 */
#ifndef BENCH_SERVER_H
#define BENCH_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct server server_t;

typedef struct server_opts {
  bool echo;             /* raw echo; otherwise Redis */
  const char *unix_path; /* listen on this Unix socket; else TCP */
  int port;              /* TCP port on 127.0.0.1; 0 = a free one */
  int threads;           /* worker threads; 0 = one per CPU, 2..16 */
  int64_t chaos_ms;      /* fault period; 0 = no chaos */
  int refuse_ms;         /* how long to refuse after a fault; 0 = 200 */
} server_opts;

/* server_start: listen and start the threads.  Returns 0 and sets *out, or
 * -1 with a one-line message in err. */
int server_start(server_t **out, const server_opts *o, char *err,
                 size_t errlen);

/* The TCP port listened on (0 for a Unix socket). */
int server_port(const server_t *s);
int server_threads(const server_t *s);

/* server_calm: inject no more faults (chaos); a refusal under way ends as
 * planned.  Thread-safe; NULL is a no-op. */
void server_calm(server_t *s);

/* Faults injected so far (chaos).  Thread-safe. */
uint64_t server_faults(const server_t *s);

/* server_stop: close every connection, join every thread, free it all.
 * NULL is a no-op. */
void server_stop(server_t *s);

#endif
