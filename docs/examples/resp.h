/*
 * resp: just enough of the Redis protocol (RESP2) for the examples.
 *
 * Nothing here trusts the peer: every length is checked against the bytes
 * actually buffered and against fixed limits before it is used, nesting is
 * bounded, and a reply that does not fit the caller's buffer is an error,
 * not an overflow.  The socket I/O takes a deadline, so a stalled server
 * costs a bounded wait and the caller checks the connection in as broken.
 */
#ifndef CPOOL_EXAMPLE_RESP_H
#define CPOOL_EXAMPLE_RESP_H

#include <stddef.h>

enum {
  RESP_MAX_DEPTH = 32, /* nested arrays (COMMAND DOCS needs about 10) */
  RESP_MAX_ELEMENTS = 1024 * 1024,
  RESP_MAX_LINE = 64 * 1024 /* a status line or an inline command */
};

/* Results of resp_read() and resp_write(), all negative. */
enum {
  RESP_EIO = -1,       /* recv/send/poll failed (errno says why) */
  RESP_EOF = -2,       /* the peer closed the connection */
  RESP_ETIMEDOUT = -3, /* the deadline passed */
  RESP_EPROTO = -4,    /* not RESP, or beyond the limits above */
  RESP_ETOOBIG = -5    /* a value larger than the buffer */
};

/* A receive buffer: data[0..len) holds bytes read and not yet consumed. */
typedef struct resp_buf {
  char *data;
  size_t cap;
  size_t len;
} resp_buf;

/* A top-level reply, pointing into the frame it was parsed from. */
typedef struct resp_value {
  char type;         /* '+', '-', ':', '$' or '*' */
  int is_null;       /* "$-1" or "*-1" */
  const char *str;   /* text of '+', '-', '$' (not NUL-terminated) */
  size_t len;        /* its length */
  long long integer; /* ':' value, or the element count of '*' */
} resp_value;

/* Formats argv as a RESP array of bulk strings into buf.  Returns the
 * length, or -1 if it does not fit in cap bytes. */
long resp_format(char *buf, size_t cap, int argc, const char *const *argv,
                 const size_t *lens);

/* The length of the complete RESP value at the start of buf[0..len): > 0
 * when complete, 0 when more bytes are needed, -1 when malformed.  With
 * inline_ok, a line not starting with a RESP type byte is an inline
 * command ("PING\r\n"), as clients such as redis-cli and cpool-bench send. */
long resp_frame(const char *buf, size_t len, int inline_ok);

/* Parses the complete top-level value of frame[0..len) (from resp_frame).
 * Returns 0, or -1 if it is not a reply (an inline command). */
int resp_parse(const char *frame, size_t len, resp_value *v);

/* Reads from fd into b until b starts with a complete value, waiting at most
 * timeout_ms in all (-1: no limit).  Returns the value's length, or a
 * negative RESP_E* code.  Drop the value with resp_consume() once used. */
long resp_read(int fd, resp_buf *b, int inline_ok, int timeout_ms);

/* Drops the first n bytes of b. */
void resp_consume(resp_buf *b, size_t n);

/* Sends all of p[0..n) (MSG_NOSIGNAL), waiting at most timeout_ms in all.
 * Returns 0 or a negative RESP_E* code. */
int resp_write(int fd, const char *p, size_t n, int timeout_ms);

/* "timed out", "connection closed" ...; never NULL. */
const char *resp_strerror(long err);

#endif
