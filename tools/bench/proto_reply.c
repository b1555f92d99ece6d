/* The replies of a batch: read, framed and checked one after the other. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "proto.h"

enum verdict { V_OK, V_SERVER, V_WRONG };

#define LIT_IS(b, n, s) ((n) == sizeof(s) - 1 && memcmp((b), (s), (n)) == 0)

static bool starts(const char *b, size_t n, const char *s) {
  size_t k = strlen(s);
  return n >= k && memcmp(b, s, k) == 0;
}

/* A Redis reply of kind k at b: its length (0 incomplete, -1 malformed),
 * the verdict in *v. */
static long redis_reply(const proto_ctx *p, proto_kind k, const char *b,
                        size_t len, enum verdict *v) {
  long n = k == PROTO_COMMAND
               ? resp_value_len_ex(b, len, p->max_bulk, 1L << 20, 8)
               : resp_value_len(b, len, p->max_bulk);
  if (n <= 0)
    return n;
  size_t m = (size_t)n;
  *v = V_WRONG;
  if (b[0] == '-' || b[0] == '!')
    *v = V_SERVER;
  else if (k == PROTO_COMMAND)
    *v = V_OK;
  else if (k == PROTO_PING)
    *v = LIT_IS(b, m, "+PONG\r\n") ? V_OK : V_WRONG;
  else if (k == PROTO_SET)
    *v = LIT_IS(b, m, "+OK\r\n") ? V_OK : V_WRONG;
  else if (b[0] == '$' && m >= p->size + 4) { /* GET: "$<size>\r\n<value>" */
    size_t hdr = m - p->size - 2;
    long long got = 0;
    if (resp_parse_int(b, 1, hdr - 2, &got) == 0 && got == (long long)p->size &&
        memcmp(b + hdr, p->value, p->size) == 0)
      *v = V_OK;
  }
  return n;
}

/* "VALUE cpool-bench:<key> 0 <size>" as the get of key must announce. */
static bool mc_header_ok(const proto_ctx *p, unsigned key, const char *b,
                         size_t n) {
  char want[96], digits[16];
  snprintf(digits, sizeof digits, "%0*u", (int)p->key_digits, key);
  int k = snprintf(want, sizeof want, "VALUE %s%s 0 %zu", PROTO_KEY_PREFIX,
                   digits, p->size);
  return k > 0 && (size_t)k == n && memcmp(b, want, n) == 0;
}

/* A memcached reply to the request of kind k (key key) at b. */
static long mc_reply(const proto_ctx *p, proto_kind k, unsigned key,
                     const char *b, size_t len, enum verdict *v) {
  long end = resp_line_end(b, len, 0);
  if (end <= 0)
    return end;
  size_t line = (size_t)end, next = line + 2;
  if (starts(b, line, "ERROR") || starts(b, line, "CLIENT_ERROR ") ||
      starts(b, line, "SERVER_ERROR ")) {
    *v = V_SERVER;
    return (long)next;
  }
  if (k == PROTO_MC_SET) {
    if (LIT_IS(b, line, "STORED"))
      *v = V_OK;
    else if (LIT_IS(b, line, "NOT_STORED") || LIT_IS(b, line, "EXISTS") ||
             LIT_IS(b, line, "NOT_FOUND"))
      *v = V_SERVER;
    else
      return -1;
    return (long)next;
  }
  if (LIT_IS(b, line, "END")) { /* a miss */
    *v = V_WRONG;
    return (long)next;
  }
  if (!mc_header_ok(p, key, b, line))
    return -1; /* another key or size: out of step, or not memcached */
  size_t total = next + p->size + 2 + 5;
  if (len < total)
    return 0;
  if (memcmp(b + next + p->size, "\r\nEND\r\n", 7) != 0)
    return -1;
  *v = memcmp(b + next, p->value, p->size) == 0 ? V_OK : V_WRONG;
  return (long)total;
}

/* Reply i of the batch at b. */
static long one_reply(const proto_ctx *p, unsigned i, const char *b, size_t len,
                      enum verdict *v) {
  const proto_tmpl *t = &p->tmpl[p->ops[i]];
  switch (t->kind) {
  case PROTO_ECHO:
    if (len < p->size)
      return 0;
    *v = memcmp(b, p->value, p->size) == 0 ? V_OK : V_WRONG;
    return (long)p->size;
  case PROTO_MC_GET:
  case PROTO_MC_SET:
    return mc_reply(p, t->kind, p->op_keys[i], b, len, v);
  default:
    return redis_reply(p, t->kind, b, len, v);
  }
}

static proto_result io_error(proto_ctx *p, ssize_t n) {
  p->err = n == 0 ? 0 : errno;
  return PROTO_EIO;
}

/* Parse what has come, from *pos: replies *i.. of the batch.  -1 when one
 * is malformed, else 0. */
static int parse_some(proto_ctx *p, size_t have, size_t *pos, unsigned *i,
                      bool *wrong) {
  while (*i < p->pipeline) {
    enum verdict v = V_WRONG;
    long n = one_reply(p, *i, p->buf + *pos, have - *pos, &v);
    if (n < 0)
      return -1;
    if (n == 0)
      return 0;
    *pos += (size_t)n;
    (*i)++;
    p->n_ok += v == V_OK;
    p->n_server += v == V_SERVER;
    *wrong |= v == V_WRONG;
  }
  return 0;
}

static proto_result read_replies(proto_ctx *p, int fd) {
  size_t have = 0, pos = 0;
  unsigned i = 0;
  bool wrong = false;
  for (;;) {
    if (parse_some(p, have, &pos, &i, &wrong) != 0)
      return PROTO_EBADREPLY;
    if (i == p->pipeline)
      break;
    if (p->buf_cap - have < p->max_reply && pos > 0) {
      memmove(p->buf, p->buf + pos, have - pos); /* room for the next */
      have -= pos;
      pos = 0;
    }
    if (have == p->buf_cap)
      return PROTO_EBADREPLY; /* longer than any reply accepted */
    ssize_t n = recv(fd, p->buf + have, p->buf_cap - have, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return io_error(p, n);
    }
    have += (size_t)n;
  }
  /* Bytes after the last reply mean the stream is out of step. */
  if (have != pos || wrong)
    return PROTO_EBADREPLY;
  return p->n_server ? PROTO_ESERVER : PROTO_OK;
}

void proto__next_batch(proto_ctx *p);

proto_result proto_roundtrip(proto_ctx *p, int fd) {
  p->n_ok = p->n_server = 0;
  proto_result r = send_all(fd, p->req, p->req_len) != 0 ? io_error(p, -1)
                                                         : read_replies(p, fd);
  proto__next_batch(p);
  return r;
}
