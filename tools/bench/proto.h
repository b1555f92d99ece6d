/*
 * The client side of the protocols: one request and its reply on a
 * blocking socket, with every buffer allocated up front (proto_init), so
 * that proto_roundtrip neither allocates nor locks.
 *
 * Replies are parsed as RESP (ping, get, set) or compared byte for byte
 * (echo).  The parser is bounded: a line longer than RESP_MAX_LINE, a bulk
 * length other than the one expected, or any byte after the reply is a bad
 * reply; a length the server announces is never used to size anything.
 */
#ifndef BENCH_PROTO_H
#define BENCH_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"

#define PROTO_KEYS 1000 /* keys cpool-bench:0000 .. cpool-bench:0999 */
#define PROTO_KEY_PREFIX "cpool-bench:"
#define RESP_MAX_LINE 1024

typedef enum proto_result {
  PROTO_OK = 0,
  PROTO_EIO = 1,      /* send/recv failed, timed out, or EOF */
  PROTO_EBADREPLY = 2 /* the reply was not the one expected */
} proto_result;

typedef struct proto_ctx {
  proto_kind kind;
  size_t size;
  char *req; /* the request, its key rewritten for each call */
  size_t req_len;
  size_t key_off; /* offset of the 4 key digits in req, 0 if none */
  unsigned key;   /* next key number */
  char *value;    /* the --size-byte payload/value */
  char *buf;      /* the reply */
  size_t buf_cap;
  int err; /* errno of the last PROTO_EIO, 0 for EOF */
} proto_ctx;

/* proto_init: build the request for kind and size; first_key spreads the
 * threads over the keys.  Returns 0 or -1 (out of memory). */
int proto_init(proto_ctx *p, proto_kind kind, size_t size, unsigned first_key);
void proto_free(proto_ctx *p);

/* proto_roundtrip: send one request on fd and read and check its reply. */
proto_result proto_roundtrip(proto_ctx *p, int fd);

/* proto_set_key: send "SET key value" for key number k (used to fill the
 * keys before a get run).  Same results as proto_roundtrip. */
proto_result proto_set_key(proto_ctx *p, int fd, unsigned k);

/* Helpers shared with the tests: a complete RESP value at buf[0..len)?
 * Returns its length, 0 if incomplete, -1 if malformed or over the limits
 * (lines of RESP_MAX_LINE, bulks of max_bulk, 64 elements, depth 4). */
long resp_value_len(const char *buf, size_t len, size_t max_bulk);

/* Send all of buf (MSG_NOSIGNAL, EINTR retried).  0 or -1 with errno. */
int send_all(int fd, const char *buf, size_t len);

/* Set SO_RCVTIMEO and SO_SNDTIMEO on fd.  0 or -1 with errno. */
int set_io_timeout(int fd, int ms);

#endif
