/* The bounded RESP parser (RESP2 and RESP3) and the socket helpers. */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "proto.h"

#define RESP_MAX_ELEMS 64
#define RESP_MAX_DEPTH 4

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

long resp_line_end(const char *buf, size_t len, size_t pos) {
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

int resp_parse_int(const char *buf, size_t from, size_t to, long long *out) {
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

struct limits {
  size_t max_bulk;
  long max_elems;
  int max_depth;
};

static long parse_value(const char *buf, size_t len, size_t pos,
                        const struct limits *lim, int depth);

/* A bulk ($ ! =) whose length line ends at end. */
static long parse_bulk(const char *buf, size_t len, size_t pos, long end,
                       const struct limits *lim) {
  size_t next = (size_t)end + 2;
  long long n = 0;
  if (resp_parse_int(buf, pos + 1, (size_t)end, &n) || n < -1 ||
      n > (long long)lim->max_bulk)
    return -1;
  if (n == -1)
    return (long)next;
  if (len < next + (size_t)n + 2)
    return 0;
  if (buf[next + n] != '\r' || buf[next + n + 1] != '\n')
    return -1;
  return (long)(next + (size_t)n + 2);
}

/* An aggregate (* ~ > %) of per times its count of values. */
static long parse_aggregate(const char *buf, size_t len, size_t pos, long end,
                            const struct limits *lim, int depth, int per) {
  size_t next = (size_t)end + 2;
  long long n = 0;
  if (resp_parse_int(buf, pos + 1, (size_t)end, &n) || n < -1 ||
      n > lim->max_elems / per || depth >= lim->max_depth)
    return -1;
  for (long long i = 0; i < n * per; i++) {
    long r = parse_value(buf, len, next, lim, depth + 1);
    if (r <= 0)
      return r;
    next = (size_t)r;
  }
  return (long)next;
}

/* The value at pos: the offset just past it, 0 if incomplete, -1 if
 * malformed or over a limit. */
static long parse_value(const char *buf, size_t len, size_t pos,
                        const struct limits *lim, int depth) {
  if (pos >= len)
    return 0;
  long end = resp_line_end(buf, len, pos + 1);
  if (end <= 0)
    return end;
  long long n = 0;
  switch (buf[pos]) {
  case '+': /* simple string */
  case '-': /* error */
  case ',': /* RESP3 double */
  case '(': /* RESP3 big number */
    return end + 2;
  case '_': /* RESP3 null */
    return end == (long)pos + 1 ? end + 2 : -1;
  case '#': /* RESP3 boolean */
    return end == (long)pos + 2 && (buf[pos + 1] == 't' || buf[pos + 1] == 'f')
               ? end + 2
               : -1;
  case ':':
    return resp_parse_int(buf, pos + 1, (size_t)end, &n) ? -1 : end + 2;
  case '$': /* bulk string */
  case '!': /* RESP3 bulk error */
  case '=': /* RESP3 verbatim string */
    return parse_bulk(buf, len, pos, end, lim);
  case '*': /* array */
  case '~': /* RESP3 set */
  case '>': /* RESP3 push */
    return parse_aggregate(buf, len, pos, end, lim, depth, 1);
  case '%': /* RESP3 map: key, value */
    return parse_aggregate(buf, len, pos, end, lim, depth, 2);
  default:
    return -1;
  }
}

long resp_value_len(const char *buf, size_t len, size_t max_bulk) {
  struct limits lim = {max_bulk, RESP_MAX_ELEMS, RESP_MAX_DEPTH};
  return parse_value(buf, len, 0, &lim, 0);
}

long resp_value_len_ex(const char *buf, size_t len, size_t max_bulk,
                       long max_elems, int max_depth) {
  struct limits lim = {max_bulk, max_elems, max_depth};
  return parse_value(buf, len, 0, &lim, 0);
}
