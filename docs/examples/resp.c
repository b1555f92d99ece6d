/* resp: see resp.h. */
#define _POSIX_C_SOURCE 200809L

#include "resp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static int is_type(char c) {
  return c != '\0' && strchr("+-:$*", c) != NULL;
}

long resp_format(char *buf, size_t cap, int argc, const char *const *argv,
                 const size_t *lens) {
  size_t used;
  int n = snprintf(buf, cap, "*%d\r\n", argc);

  if (argc < 1 || n < 0 || (size_t)n >= cap)
    return -1;
  used = (size_t)n;
  for (int i = 0; i < argc; i++) {
    n = snprintf(buf + used, cap - used, "$%zu\r\n", lens[i]);
    if (n < 0 || (size_t)n >= cap - used || lens[i] + 2 > cap - used - n)
      return -1;
    used += (size_t)n;
    memcpy(buf + used, argv[i], lens[i]);
    memcpy(buf + used + lens[i], "\r\n", 2);
    used += lens[i] + 2;
  }
  return (long)used;
}

/* The index of the "\r\n" ending the line that starts at pos; -2 when the
 * line is not complete yet, -1 when it is malformed or too long. */
static long line_end(const char *buf, size_t len, size_t pos) {
  const char *nl = memchr(buf + pos, '\n', len - pos);

  if (nl == NULL)
    return len - pos > RESP_MAX_LINE ? -1 : -2;
  if (nl == buf + pos || nl[-1] != '\r' || nl - (buf + pos) > RESP_MAX_LINE)
    return -1;
  return (long)(nl - 1 - buf);
}

/* A decimal integer filling s[0..n): at most 18 digits, so it cannot
 * overflow a long long. */
static int parse_integer(const char *s, size_t n, long long *out) {
  int neg = n > 0 && s[0] == '-';
  long long v = 0;

  if (n == (size_t)neg || n - neg > 18)
    return -1;
  for (size_t i = (size_t)neg; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

/* The end of the value at buf[pos], as resp_frame() but as an index; -2
 * when incomplete. */
static long frame_at(const char *buf, size_t len, size_t pos, int depth) {
  long eol, end;
  long long n;

  if (pos >= len)
    return -2;
  eol = line_end(buf, len, pos + 1);
  if (eol < 0)
    return eol;
  switch (buf[pos]) {
  case '+':
  case '-':
    return eol + 2;
  case ':':
    return parse_integer(buf + pos + 1, eol - pos - 1, &n) ? -1 : eol + 2;
  case '$':
    if (parse_integer(buf + pos + 1, eol - pos - 1, &n) || n < -1)
      return -1;
    if (n == -1)
      return eol + 2;
    if ((unsigned long long)n > len - (size_t)(eol + 2) ||
        len - (size_t)(eol + 2) - (size_t)n < 2)
      return -2;
    end = eol + 2 + (long)n;
    return buf[end] == '\r' && buf[end + 1] == '\n' ? end + 2 : -1;
  case '*':
    if (parse_integer(buf + pos + 1, eol - pos - 1, &n) || n < -1 ||
        n > RESP_MAX_ELEMENTS || depth >= RESP_MAX_DEPTH)
      return -1;
    end = eol + 2;
    for (long long i = 0; i < n && end >= 0; i++)
      end = frame_at(buf, len, (size_t)end, depth + 1);
    return end;
  default:
    return -1;
  }
}

long resp_frame(const char *buf, size_t len, int inline_ok) {
  long end;

  if (len == 0)
    return 0;
  if (inline_ok && !is_type(buf[0])) {
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL)
      return len > RESP_MAX_LINE ? -1 : 0;
    return nl - buf > RESP_MAX_LINE ? -1 : (long)(nl - buf) + 1;
  }
  end = frame_at(buf, len, 0, 0);
  return end == -2 ? 0 : end;
}

int resp_parse(const char *frame, size_t len, resp_value *v) {
  long eol;

  memset(v, 0, sizeof *v);
  if (len < 3 || !is_type(frame[0]))
    return -1;
  eol = line_end(frame, len, 1);
  if (eol < 0)
    return -1;
  v->type = frame[0];
  v->str = frame + 1;
  v->len = (size_t)eol - 1;
  if (v->type == '+' || v->type == '-')
    return 0;
  if (parse_integer(frame + 1, (size_t)eol - 1, &v->integer))
    return -1;
  v->str = NULL;
  v->len = 0;
  if ((v->type == '$' || v->type == '*') && v->integer == -1)
    v->is_null = 1;
  else if (v->type == '$') {
    /* resp_frame() has checked that the payload and its CRLF are there. */
    if ((size_t)v->integer > len - (size_t)eol - 2)
      return -1;
    v->str = frame + eol + 2;
    v->len = (size_t)v->integer;
  }
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events, or the deadline (-1: none) passes. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    struct pollfd p = {.fd = fd, .events = events};
    long long left = deadline < 0 ? -1 : deadline - now_ms();
    int rc;

    if (deadline >= 0 && left <= 0)
      return RESP_ETIMEDOUT;
    rc = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
    if (rc > 0)
      return 0;
    if (rc < 0 && errno != EINTR)
      return RESP_EIO;
  }
}

long resp_read(int fd, resp_buf *b, int inline_ok, int timeout_ms) {
  long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

  for (;;) {
    long n = resp_frame(b->data, b->len, inline_ok);
    ssize_t got;
    int rc;

    if (n != 0)
      return n > 0 ? n : RESP_EPROTO;
    if (b->len == b->cap)
      return RESP_ETOOBIG;
    rc = wait_fd(fd, POLLIN, deadline);
    if (rc != 0)
      return rc;
    got = recv(fd, b->data + b->len, b->cap - b->len, 0);
    if (got == 0)
      return RESP_EOF;
    if (got < 0 && errno != EINTR && errno != EAGAIN)
      return RESP_EIO;
    if (got > 0)
      b->len += (size_t)got;
  }
}

void resp_consume(resp_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

int resp_write(int fd, const char *p, size_t n, int timeout_ms) {
  long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

  while (n > 0) {
    ssize_t sent;
    int rc = wait_fd(fd, POLLOUT, deadline);

    if (rc != 0)
      return rc;
    sent = send(fd, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno != EINTR && errno != EAGAIN)
      return RESP_EIO;
    if (sent > 0) {
      p += sent;
      n -= (size_t)sent;
    }
  }
  return 0;
}

const char *resp_strerror(long err) {
  switch (err) {
  case RESP_EIO:
    return "I/O error";
  case RESP_EOF:
    return "connection closed by the peer";
  case RESP_ETIMEDOUT:
    return "timed out";
  case RESP_EPROTO:
    return "protocol error";
  case RESP_ETOOBIG:
    return "reply too large";
  default:
    return "unknown error";
  }
}
