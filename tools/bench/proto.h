/*
 * The client side of the protocols: a batch of --pipeline requests written
 * at once and their replies read on a blocking socket, with every buffer
 * allocated up front (proto_init), so that proto_roundtrip neither
 * allocates nor locks.
 *
 * Replies are parsed as RESP (ping, get, set, --command), as memcached's
 * text protocol (memcache-get, memcache-set) or compared byte for byte
 * (echo).  The parsers are bounded: a line longer than RESP_MAX_LINE, a
 * bulk or value length other than the one expected, or any byte after the
 * batch's last reply is a bad reply; a length the server announces is
 * never used to size anything.
 */
#ifndef BENCH_PROTO_H
#define BENCH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "args.h"

#define PROTO_KEYS 1000 /* default key space: cpool-bench:0000 .. :0999 */
#define PROTO_KEY_PREFIX "cpool-bench:"
#define RESP_MAX_LINE 1024
#define CMD_MAX_REPLY (1024 * 1024) /* --command: one reply's bound */

typedef enum proto_result {
  PROTO_OK = 0,
  PROTO_EIO = 1,       /* send/recv failed, timed out, or EOF */
  PROTO_EBADREPLY = 2, /* a reply was not the one expected */
  PROTO_ESERVER = 3    /* an error reply (RESP -ERR, memcached ERROR...) */
} proto_result;

/* A request with a key: its bytes, and where the key's digits are. */
typedef struct proto_tmpl {
  proto_kind kind;
  char *buf;
  size_t len;
  size_t key_off; /* 0: no key */
} proto_tmpl;

typedef struct proto_opts {
  proto_kind kind;    /* with a ratio: the get kind (get or memcache-get) */
  size_t size;        /* value/payload bytes */
  unsigned first_key; /* spreads the threads over the keys */
  unsigned keys;      /* key space; 0 = PROTO_KEYS */
  unsigned pipeline;  /* requests per batch; 0 = 1 */
  unsigned ratio_set; /* --ratio S:G, both 0 = kind alone */
  unsigned ratio_get;
  const char *command; /* PROTO_COMMAND: the words, as --command takes */
} proto_opts;

typedef struct proto_ctx {
  proto_kind kind;
  size_t size;
  unsigned keys, key_digits, key; /* key: the next key number */
  unsigned pipeline;
  unsigned ratio_set, ratio_get, ratio_pos;
  proto_tmpl tmpl[2]; /* [0]: the kind (with a ratio: the set), [1]: get */
  int ntmpl;
  unsigned char *ops; /* the template of each request of the batch */
  unsigned *op_keys;  /* and its key */
  char *req;          /* the batch, rebuilt after each call */
  size_t req_len;
  bool req_is_tmpl; /* one request: req is tmpl[0].buf, key rewritten */
  char *value;      /* the --size-byte payload/value */
  char *buf;        /* the replies */
  size_t buf_cap;
  size_t max_reply;  /* the longest reply accepted */
  size_t max_bulk;   /* the longest RESP bulk accepted */
  unsigned n_ok;     /* of the last batch: replies as expected */
  unsigned n_server; /* and error replies */
  int err;           /* errno of the last PROTO_EIO, 0 for EOF */
} proto_ctx;

/* proto_init_opts: build the templates and the first batch.  Returns 0, or
 * -1 (out of memory, or a --command that does not split). */
int proto_init_opts(proto_ctx *p, const proto_opts *o);

/* proto_init: one request of kind a batch, PROTO_KEYS keys. */
int proto_init(proto_ctx *p, proto_kind kind, size_t size, unsigned first_key);
void proto_free(proto_ctx *p);

/* proto_roundtrip: send the batch on fd and read and check its replies.
 * PROTO_OK when every reply came in step (n_ok of them as expected,
 * n_server error replies); else the first failure, the counts saying how
 * many replies before it were fine. */
proto_result proto_roundtrip(proto_ctx *p, int fd);

/* Helpers shared with the tests: a complete RESP value at buf[0..len)?
 * Returns its length, 0 if incomplete, -1 if malformed or over the limits
 * (lines of RESP_MAX_LINE, bulks of max_bulk, 64 elements, depth 4).
 * resp_value_len_ex: the same with other element and depth bounds; RESP3
 * types are understood by both. */
long resp_value_len(const char *buf, size_t len, size_t max_bulk);
long resp_value_len_ex(const char *buf, size_t len, size_t max_bulk,
                       long max_elems, int max_depth);

/* The "\r\n" ending the line that starts at pos: its offset, 0 if not
 * there yet, -1 if the line is too long or holds a bare CR or LF. */
long resp_line_end(const char *buf, size_t len, size_t pos);

/* A decimal integer, optionally negative, at most 18 digits, filling
 * buf[from..to) exactly.  0 or -1. */
int resp_parse_int(const char *buf, size_t from, size_t to, long long *out);

/* Send all of buf (MSG_NOSIGNAL, EINTR retried).  0 or -1 with errno. */
int send_all(int fd, const char *buf, size_t len);

/* Set SO_RCVTIMEO and SO_SNDTIMEO on fd.  0 or -1 with errno. */
int set_io_timeout(int fd, int ms);

#endif
