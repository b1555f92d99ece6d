/*
 * The network side of a slot: resolve (on every connect, so DNS changes
 * are followed), try every address with a non-blocking connect bounded by
 * one deadline, then set the socket options.  One small wrapper per system
 * call; errno is saved before anything can change it; EINTR is retried
 * against the deadline.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

static void format_addr(const struct sockaddr *sa, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN] = "?";

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else {
    snprintf(buf, len, "?");
  }
}

static int set_int_opt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

static int set_blocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0)
    return -1;
  return fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

int cpool__net_io_timeout(int fd, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return -1;
  return 0;
}

/* TCP options; names the failing option in err. */
static int set_tcp_options(const cpool_config *c, int fd, const char *addr,
                           cpool_error_info *err) {
  struct {
    int enabled, level, name, value;
    const char *what;
  } opts[] = {
      {1, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
      {c->keepalive, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
      {c->keepalive && c->keepalive_idle_s > 0, IPPROTO_TCP, TCP_KEEPIDLE,
       c->keepalive_idle_s, "TCP_KEEPIDLE"},
      {c->keepalive && c->keepalive_interval_s > 0, IPPROTO_TCP,
       TCP_KEEPINTVL, c->keepalive_interval_s, "TCP_KEEPINTVL"},
      {c->keepalive && c->keepalive_count > 0, IPPROTO_TCP, TCP_KEEPCNT,
       c->keepalive_count, "TCP_KEEPCNT"},
      {c->tcp_user_timeout_ms > 0, IPPROTO_TCP, TCP_USER_TIMEOUT,
       c->tcp_user_timeout_ms, "TCP_USER_TIMEOUT"},
  };

  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    if (!opts[i].enabled)
      continue;
    if (set_int_opt(fd, opts[i].level, opts[i].name, opts[i].value) < 0) {
      int e = errno;
      cpool__error_set(err, CPOOL_ECONNECT, CPOOL_STEP_CONNECT, e, addr,
                       "setsockopt(%s) %s: %s", opts[i].what, addr,
                       strerror(e));
      return -1;
    }
  }
  return 0;
}

/* Wait for a non-blocking connect to finish, the deadline, or the pool's
 * close.  Returns 0 when connected, else an errno value (ETIMEDOUT on the
 * deadline, ECANCELED on close). */
static int wait_connected(int fd, int wake_fd, int64_t deadline_ms) {
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLOUT},
                          {.fd = wake_fd, .events = POLLIN}};

  for (;;) {
    int64_t left = deadline_ms - cpool__now_ms();
    if (left <= 0)
      return ETIMEDOUT;
    int n = poll(pfd, 2, (int)left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return ETIMEDOUT;
    if (pfd[1].revents)
      return ECANCELED;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
      return errno;
    return soerr;
  }
}

/* One address: returns a connected socket or -1 with *e set. */
static int connect_one(const struct cpool *p, const struct sockaddr *sa,
                       socklen_t salen, int64_t deadline_ms, int *e) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  0);
  if (fd < 0) {
    *e = errno;
    return -1;
  }
  int rc;
  do {
    rc = connect(fd, sa, salen);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    *e = errno;
    if (*e == EINPROGRESS)
      *e = wait_connected(fd, p->wake_fd, deadline_ms);
    if (*e != 0) {
      close(fd);
      return -1;
    }
  }
  if (set_blocking(fd) < 0) {
    *e = errno;
    close(fd);
    return -1;
  }
  return fd;
}

static int connect_unix(const struct cpool *p, const cpool__endpoint *ep,
                        int *fdp, char *addr, size_t addrlen,
                        cpool_error_info *err) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  int e = 0;

  strlcpy(sun.sun_path, ep->unix_path, sizeof sun.sun_path);
  snprintf(addr, addrlen, "unix:%s", ep->unix_path);
  int fd = connect_one(p, (struct sockaddr *)&sun, sizeof sun,
                       cpool__now_ms() + p->cfg.connect_timeout_ms, &e);
  if (fd < 0) {
    if (e == ECANCELED)
      return CPOOL_ESHUTDOWN;
    cpool__error_set(err, CPOOL_ECONNECT, CPOOL_STEP_CONNECT, e, addr,
                     "connect %s: %s", addr, strerror(e));
    return CPOOL_ECONNECT;
  }
  *fdp = fd;
  return 0;
}

static int connect_tcp(const struct cpool *p, const cpool__endpoint *ep,
                       int *fdp, char *addr, size_t addrlen,
                       cpool_error_info *err) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char port[8];
  int64_t deadline = cpool__now_ms() + p->cfg.connect_timeout_ms;
  int e = 0, fd = -1;

  snprintf(port, sizeof port, "%d", ep->port);
  strlcpy(addr, ep->name, addrlen);
  int gai = getaddrinfo(ep->host, port, &hints, &res);
  if (gai != 0) {
    int se = gai == EAI_SYSTEM ? errno : 0;
    cpool__error_set(err, CPOOL_ERESOLVE, CPOOL_STEP_RESOLVE, se, addr,
                     "resolve %s: %s", addr,
                     gai == EAI_SYSTEM ? strerror(se) : gai_strerror(gai));
    err->gai_error = gai;
    return CPOOL_ERESOLVE;
  }
  /* Every address gets a try, each with an even share of the time left,
   * so that one blackholed address (an AAAA record nobody routes) cannot
   * starve the others.  The last failure is the one reported. */
  int left = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
    left++;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    int64_t now = cpool__now_ms();
    int64_t share = now + (deadline - now) / left--;
    format_addr(ai->ai_addr, addr, addrlen);
    fd = connect_one(p, ai->ai_addr, ai->ai_addrlen, share, &e);
    if (fd < 0 && (e == ECANCELED || cpool__now_ms() >= deadline))
      break;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    if (e == ECANCELED)
      return CPOOL_ESHUTDOWN;
    if (e == ETIMEDOUT)
      cpool__error_set(err, CPOOL_ECONNECT, CPOOL_STEP_CONNECT, e, addr,
                       "connect %s: timed out after %d ms", addr,
                       p->cfg.connect_timeout_ms);
    else
      cpool__error_set(err, CPOOL_ECONNECT, CPOOL_STEP_CONNECT, e, addr,
                       "connect %s: %s", addr, strerror(e));
    return CPOOL_ECONNECT;
  }
  if (set_tcp_options(&p->cfg, fd, addr, err) < 0) {
    close(fd);
    return CPOOL_ECONNECT;
  }
  *fdp = fd;
  return 0;
}

int cpool__net_connect(const struct cpool *p, const cpool__endpoint *ep,
                       int *fd, char *addr, size_t addrlen,
                       cpool_error_info *err) {
  if (ep->unix_path != NULL)
    return connect_unix(p, ep, fd, addr, addrlen, err);
  return connect_tcp(p, ep, fd, addr, addrlen, err);
}

/* EOF mode: one poll, which sees a FIN (POLLRDHUP) even behind bytes
 * waiting, and errors (POLLERR, POLLHUP). */
static int alive_eof_only(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
  int n;

  do {
    n = poll(&pfd, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return 0;
  return (pfd.revents & (POLLRDHUP | POLLERR | POLLHUP | POLLNVAL)) == 0;
}

int cpool__net_alive(int fd, int mode) {
  char c;
  ssize_t n;

  if (mode == CPOOL_IDLE_CHECK_EOF)
    return alive_eof_only(fd);
  do {
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK;
  return 0; /* EOF, or bytes nobody asked for: a desync */
}
