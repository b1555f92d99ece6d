/*
 * The built-in server's Redis side: a bounded parser for RESP arrays and
 * inline commands, the commands themselves, and the in-memory key-value
 * map they share (sharded, one mutex per shard).
 */
#ifndef BENCH_SRV_REDIS_H
#define BENCH_SRV_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_MAX_ARGS 16
#define SRV_MAX_BULK (8u << 20)     /* one argument */
#define SRV_MAX_INLINE (64u << 10)  /* one inline command line */
#define SRV_OUT_SOFT_MAX (4u << 20) /* stop parsing when replies exceed it */
#define SRV_MAX_KEYS 100000

/* A growable byte buffer. */
typedef struct srvbuf {
  char *p;
  size_t len, cap;
} srvbuf;

/* srvbuf_append: 0, or -1 when out of memory. */
int srvbuf_append(srvbuf *b, const void *data, size_t len);
void srvbuf_free(srvbuf *b);

typedef struct kv_map kv_map;

kv_map *kv_new(void);
void kv_free(kv_map *kv); /* NULL is a no-op */

/* One parsed argument: a span of the input buffer. */
typedef struct srv_arg {
  const char *p;
  size_t len;
} srv_arg;

/* srv_parse_command: parse the command at in[0..len).  Returns the bytes it
 * took (argc may be 0 for an empty inline line), 0 if incomplete, -1 if
 * malformed or over the limits. */
long srv_parse_command(const char *in, size_t len, srv_arg *argv, int *argc);

/*
 * redis_process: run every complete command in in[0..len) and append the
 * replies to out, stopping early once out holds SRV_OUT_SOFT_MAX bytes.
 * Returns the bytes consumed, or -1 when out of memory.  *close_after is
 * set on QUIT or a protocol error (whose reply is appended).
 */
long redis_process(kv_map *kv, const char *in, size_t len, srvbuf *out,
                   bool *close_after);

#endif
