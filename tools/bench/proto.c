#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define RESP_MAX_ELEMS 64
#define RESP_MAX_DEPTH 4
#define KEY_DIGITS 4

int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

int set_io_timeout(int fd, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return -1;
  return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* --- the bounded RESP parser ------------------------------------------ */

/* The "\r\n" ending the line that starts at pos: its offset, 0 if not there
 * yet, -1 if the line is too long or holds a bare CR or LF. */
static long line_end(const char *buf, size_t len, size_t pos) {
  size_t limit = len < pos + RESP_MAX_LINE ? len : pos + RESP_MAX_LINE;
  for (size_t i = pos; i < limit; i++) {
    if (buf[i] == '\r') {
      if (i + 1 >= len)
        return 0;
      return buf[i + 1] == '\n' ? (long)i : -1;
    }
    if (buf[i] == '\n')
      return -1;
  }
  return len - pos >= RESP_MAX_LINE ? -1 : 0;
}

/* A decimal integer, optionally negative, at most 18 digits, filling
 * buf[from..to) exactly. */
static int parse_int(const char *buf, size_t from, size_t to, long long *out) {
  bool neg = from < to && buf[from] == '-';
  size_t i = from + (neg ? 1 : 0);
  if (i >= to || to - i > 18)
    return -1;
  long long v = 0;
  for (; i < to; i++) {
    if (buf[i] < '0' || buf[i] > '9')
      return -1;
    v = v * 10 + (buf[i] - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

/* Parse the value at pos: returns the offset just past it, 0 if
 * incomplete, -1 if malformed or over a limit. */
static long parse_value(const char *buf, size_t len, size_t pos,
                        size_t max_bulk, int depth) {
  if (pos >= len)
    return 0;
  long end = line_end(buf, len, pos + 1);
  if (end <= 0)
    return end;
  size_t next = (size_t)end + 2;
  long long n = 0;
  switch (buf[pos]) {
  case '+':
  case '-':
    return (long)next;
  case ':':
    return parse_int(buf, pos + 1, (size_t)end, &n) ? -1 : (long)next;
  case '$':
    if (parse_int(buf, pos + 1, (size_t)end, &n) || n < -1 ||
        n > (long long)max_bulk)
      return -1;
    if (n == -1)
      return (long)next;
    if (len < next + (size_t)n + 2)
      return 0;
    if (buf[next + n] != '\r' || buf[next + n + 1] != '\n')
      return -1;
    return (long)(next + (size_t)n + 2);
  case '*':
    if (parse_int(buf, pos + 1, (size_t)end, &n) || n < -1 ||
        n > RESP_MAX_ELEMS || depth >= RESP_MAX_DEPTH)
      return -1;
    for (long long i = 0; i < n; i++) {
      long r = parse_value(buf, len, next, max_bulk, depth + 1);
      if (r <= 0)
        return r;
      next = (size_t)r;
    }
    return (long)next;
  default:
    return -1;
  }
}

long resp_value_len(const char *buf, size_t len, size_t max_bulk) {
  return parse_value(buf, len, 0, max_bulk, 0);
}

/* --- requests ----------------------------------------------------------- */

static void fill_value(char *v, size_t size) {
  for (size_t i = 0; i < size; i++)
    v[i] = (char)('a' + (i * 7) % 26);
}

static void write_key(proto_ctx *p) {
  unsigned k = p->key;
  for (int i = KEY_DIGITS - 1; i >= 0; i--) {
    p->req[p->key_off + (size_t)i] = (char)('0' + k % 10);
    k /= 10;
  }
}

/* Build "*N\r\n$3\r\nCMD\r\n$16\r\ncpool-bench:0000\r\n" and, for SET, the
 * value.  Returns the request length, or 0 when it does not fit. */
static size_t build_resp(proto_ctx *p, size_t cap) {
  bool set = p->kind == PROTO_SET;
  size_t klen = strlen(PROTO_KEY_PREFIX) + KEY_DIGITS;
  int n = snprintf(p->req, cap, "*%d\r\n$3\r\n%s\r\n$%zu\r\n%s", set ? 3 : 2,
                   set ? "SET" : "GET", klen, PROTO_KEY_PREFIX);
  if (n < 0 || (size_t)n + KEY_DIGITS + 2 >= cap)
    return 0;
  p->key_off = (size_t)n;
  size_t len = (size_t)n + KEY_DIGITS;
  memcpy(p->req + len, "\r\n", 2);
  len += 2;
  if (set) {
    n = snprintf(p->req + len, cap - len, "$%zu\r\n", p->size);
    if (n < 0 || len + (size_t)n + p->size + 2 > cap)
      return 0;
    len += (size_t)n;
    memcpy(p->req + len, p->value, p->size);
    len += p->size;
    memcpy(p->req + len, "\r\n", 2);
    len += 2;
  }
  return len;
}

int proto_init(proto_ctx *p, proto_kind kind, size_t size, unsigned first_key) {
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->size = size;
  p->key = first_key % PROTO_KEYS;
  size_t req_cap = size + 128;
  p->buf_cap = kind == PROTO_ECHO  ? size
               : kind == PROTO_GET ? size + 64
                                   : RESP_MAX_LINE + 64;
  p->value = malloc(size);
  p->req = malloc(req_cap);
  p->buf = malloc(p->buf_cap);
  if (p->value == NULL || p->req == NULL || p->buf == NULL) {
    proto_free(p);
    return -1;
  }
  fill_value(p->value, size);
  if (kind == PROTO_PING) {
    memcpy(p->req, "PING\r\n", 6);
    p->req_len = 6;
  } else if (kind == PROTO_ECHO) {
    memcpy(p->req, p->value, size);
    p->req_len = size;
  } else {
    p->req_len = build_resp(p, req_cap);
    if (p->req_len == 0) {
      proto_free(p);
      return -1;
    }
    write_key(p);
  }
  return 0;
}

void proto_free(proto_ctx *p) {
  free(p->value);
  free(p->req);
  free(p->buf);
  p->value = p->req = p->buf = NULL;
}

/* --- replies ------------------------------------------------------------ */

static proto_result io_error(proto_ctx *p, ssize_t n) {
  p->err = n == 0 ? 0 : errno;
  return PROTO_EIO;
}

static proto_result read_echo(proto_ctx *p, int fd) {
  size_t have = 0;
  while (have < p->size) {
    ssize_t n = recv(fd, p->buf + have, p->size - have, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return io_error(p, n);
    }
    have += (size_t)n;
  }
  return memcmp(p->buf, p->value, p->size) == 0 ? PROTO_OK : PROTO_EBADREPLY;
}

/* The reply is exactly what was expected? */
static proto_result check_resp(const proto_ctx *p, size_t len) {
  const char *b = p->buf;
  if (p->kind == PROTO_PING)
    return len == 7 && memcmp(b, "+PONG\r\n", 7) == 0 ? PROTO_OK
                                                      : PROTO_EBADREPLY;
  if (p->kind == PROTO_SET)
    return len == 5 && memcmp(b, "+OK\r\n", 5) == 0 ? PROTO_OK
                                                    : PROTO_EBADREPLY;
  /* GET: "$<size>\r\n<value>\r\n"; the parser has checked the framing. */
  if (b[0] != '$' || len < p->size + 4)
    return PROTO_EBADREPLY;
  size_t hdr = len - p->size - 2;
  long long n = 0;
  if (parse_int(b, 1, hdr - 2, &n) || n != (long long)p->size)
    return PROTO_EBADREPLY;
  return memcmp(b + hdr, p->value, p->size) == 0 ? PROTO_OK : PROTO_EBADREPLY;
}

static proto_result read_resp(proto_ctx *p, int fd) {
  size_t have = 0;
  for (;;) {
    ssize_t n = recv(fd, p->buf + have, p->buf_cap - have, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return io_error(p, n);
    }
    have += (size_t)n;
    long v = resp_value_len(p->buf, have, p->size);
    if (v < 0)
      return PROTO_EBADREPLY;
    if (v > 0) /* bytes after the reply mean the stream is out of step */
      return (size_t)v == have ? check_resp(p, have) : PROTO_EBADREPLY;
    if (have == p->buf_cap)
      return PROTO_EBADREPLY;
  }
}

proto_result proto_roundtrip(proto_ctx *p, int fd) {
  if (send_all(fd, p->req, p->req_len) != 0)
    return io_error(p, -1);
  proto_result r = p->kind == PROTO_ECHO ? read_echo(p, fd) : read_resp(p, fd);
  if (p->key_off != 0) {
    p->key = p->key + 1 == PROTO_KEYS ? 0 : p->key + 1;
    write_key(p);
  }
  return r;
}

proto_result proto_set_key(proto_ctx *p, int fd, unsigned k) {
  p->key = k % PROTO_KEYS;
  write_key(p);
  return proto_roundtrip(p, fd);
}
