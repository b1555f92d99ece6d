/*
 * The test server: one thread, one poll() loop, every descriptor owned by
 * that thread.  Control functions post one command at a time and wait for
 * the loop to run it, so no descriptor is ever closed under the loop's feet.
 */
#include "testserver.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#define LISTEN_BACKLOG 4096
#define MAX_FILLERS 16

enum { L_TCP4, L_TCP6, L_UNIX, L_COUNT };

typedef enum cmd_type {
  CMD_NONE,
  CMD_MODE,
  CMD_REFUSE,
  CMD_RESUME,
  CMD_DROP,
  CMD_SEND,
  CMD_BLACKHOLE,
  CMD_STOP
} cmd_type;

/* How serve_conn ends a connection. */
enum { CONN_KEEP = 0, CONN_CLOSE = -1, CONN_RESET = -2 };

typedef struct listener {
  int wanted; /* opened at start, so reopened by resume */
  int fd;     /* -1 while refusing */
  int port;
} listener;

struct ts_server {
  pthread_t thread;
  int wake_fd;        /* eventfd: a command is waiting */
  char netns[32];     /* joined by the loop thread; "" for none */
  struct in_addr ip4; /* the TCP4 listener's address */
  int want;           /* the TS_TCP4 | TS_TCP6 | TS_UNIX asked for */

  /* Owned by the loop thread (and by ts_start/ts_stop around it). */
  listener lis[L_COUNT];
  char unix_dir[64];
  char unix_path[108];
  int *conns;
  int nconns, cap;
  ts_mode mode;
  int bh_fd;                /* blackhole listener, -1 if none */
  int fillers[MAX_FILLERS]; /* our own connects that fill its queue */
  int nfillers;

  /* Shared, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cond; /* counters changed, or a command finished */
  int started;         /* 1 listening, -1 failed: set once by the loop thread */
  cmd_type cmd;
  int cmd_arg;
  const char *cmd_text;
  int cmd_result;
  uint64_t cmd_posted, cmd_done;
  ts_counts counts;
};

/* ---- sockets ---------------------------------------------------------- */

static int bind_inet(int family, struct in_addr ip4, int port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1, rc;

  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)port);
    a.sin6_addr = in6addr_loopback;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr = ip4;
    rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  }
  if (rc != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Listen on a fixed port, or on a fresh one outside the ephemeral range
 * when port is 0.  The same port is retried for a while on EADDRINUSE, which
 * only a foreign process can cause once we own the port.  ip4 is the
 * address for AF_INET (AF_INET6 is always ::1). */
static int listen_inet(int family, struct in_addr ip4, int port, int backlog,
                       int *port_out) {
  int tries = port ? 100 : 200;

  for (int i = 0; i < tries; i++) {
    int p = port ? port : tu_random_port();
    int fd = bind_inet(family, ip4, p);
    if (fd >= 0) {
      if (listen(fd, backlog) == 0) {
        *port_out = bound_port(fd);
        return fd;
      }
      close(fd);
    }
    if (errno != EADDRINUSE)
      return -1;
    if (port)
      tu_sleep_ms(10);
  }
  return -1;
}

static int listen_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un a;

  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strlcpy(a.sun_path, path, sizeof a.sun_path);
  unlink(path);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int open_listener(ts_server *s, int which) {
  listener *l = &s->lis[which];

  if (which == L_UNIX)
    l->fd = listen_unix(s->unix_path);
  else
    l->fd = listen_inet(which == L_TCP6 ? AF_INET6 : AF_INET, s->ip4, l->port,
                        LISTEN_BACKLOG, &l->port);
  return l->fd < 0 ? -1 : 0;
}

static void close_listener(ts_server *s, int which) {
  listener *l = &s->lis[which];

  if (l->fd < 0)
    return;
  close(l->fd);
  l->fd = -1;
  if (which == L_UNIX)
    unlink(s->unix_path);
}

/* ---- counters ---------------------------------------------------------- */

static void count_accept(ts_server *s) {
  pthread_mutex_lock(&s->mu);
  s->counts.accepted++;
  s->counts.open++;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

static void count_close(ts_server *s, int n, int dropped) {
  pthread_mutex_lock(&s->mu);
  s->counts.open -= n;
  if (dropped)
    s->counts.dropped += (uint64_t)n;
  else
    s->counts.peer_closed += (uint64_t)n;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

static void count_read(ts_server *s, size_t n, size_t lines) {
  pthread_mutex_lock(&s->mu);
  s->counts.bytes_in += n;
  s->counts.lines += lines;
  pthread_mutex_unlock(&s->mu);
}

/* ---- connections ------------------------------------------------------- */

static void add_conn(ts_server *s, int fd) {
  if (s->nconns == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    int *p = realloc(s->conns, (size_t)cap * sizeof *p);
    if (!p) {
      close(fd);
      return;
    }
    s->conns = p;
    s->cap = cap;
  }
  s->conns[s->nconns++] = fd;
  count_accept(s);
}

static void set_rst(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};

  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* how: CONN_CLOSE (the peer closed or failed) or CONN_RESET (the mode's
 * reset, counted as dropped). */
static void remove_conn(ts_server *s, int i, int how) {
  if (how == CONN_RESET)
    set_rst(s->conns[i]);
  close(s->conns[i]);
  s->conns[i] = s->conns[--s->nconns];
  count_close(s, 1, how == CONN_RESET);
}

static void accept_all(ts_server *s, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return; /* EAGAIN, or an aborted connect: nothing more now */
    if (s->mode == TS_HANGUP) { /* counted as accepted and dropped */
      count_accept(s);
      close(fd);
      count_close(s, 1, 1);
      continue;
    }
    add_conn(s, fd);
  }
}

/* Write all of buf, waiting (briefly) for room: clients of the test server
 * read their replies, so a full buffer only lasts a moment. */
static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w > 0) {
      buf += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 2000) <= 0)
        return -1;
    } else if (w < 0 && errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

/* The request lines in buf that the mode reads: TS_RESET_HALF ends the
 * connection at its first. */
static size_t lines_read(const ts_server *s, const char *buf, size_t n) {
  size_t lines = 0;

  for (size_t i = 0; i < n; i++) {
    if (buf[i] != '\n')
      continue;
    lines++;
    if (s->mode == TS_RESET_HALF)
      break;
  }
  return lines;
}

static int answer(ts_server *s, int fd, const char *buf, size_t n) {
  static const char pong[] = "+PONG\r\n";

  switch (s->mode) {
  case TS_ECHO:
    return write_all(fd, buf, n) == 0 ? CONN_KEEP : CONN_CLOSE;
  case TS_PING: /* one reply per line received */
    for (size_t i = 0; i < n; i++)
      if (buf[i] == '\n' && write_all(fd, pong, sizeof pong - 1) != 0)
        return CONN_CLOSE;
    return CONN_KEEP;
  case TS_RESET_HALF:
    if (!memchr(buf, '\n', n))
      return CONN_KEEP;
    send(fd, "+PO", 3, MSG_NOSIGNAL);
    return CONN_RESET;
  default: /* TS_SILENT */
    return CONN_KEEP;
  }
}

/* Reads what the client sent and answers it; CONN_KEEP, or how to end the
 * connection. */
static int serve_conn(ts_server *s, int fd) {
  char buf[16384];

  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      int rc;
      count_read(s, (size_t)r, lines_read(s, buf, (size_t)r));
      if ((rc = answer(s, fd, buf, (size_t)r)) != CONN_KEEP)
        return rc;
      continue;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN)
      return CONN_KEEP;
    return CONN_CLOSE; /* EOF or a reset */
  }
}

static int drop_all(ts_server *s, int rst) {
  int n = s->nconns;

  for (int i = 0; i < n; i++) {
    if (rst)
      set_rst(s->conns[i]);
    close(s->conns[i]);
  }
  s->nconns = 0;
  if (n > 0)
    count_close(s, n, 1);
  return n;
}

/* Wait (up to 1 s) until every byte written to fd was acknowledged. */
static void wait_acked(int fd) {
  int64_t deadline = tu_now_ms() + 1000;
  int outq = 1;

  while (ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0 && tu_now_ms() < deadline)
    tu_sleep_ms(1);
}

/* text to every accepted connection, acknowledged; how many got it. */
static int send_all(ts_server *s, const char *text) {
  int n = 0;

  for (int i = 0; i < s->nconns; i++)
    n += send(s->conns[i], text, strlen(text), MSG_NOSIGNAL) > 0;
  for (int i = 0; i < s->nconns; i++)
    wait_acked(s->conns[i]);
  return n;
}

/* ---- blackhole --------------------------------------------------------- */

static void end_blackhole(ts_server *s) {
  for (int i = 0; i < s->nfillers; i++)
    close(s->fillers[i]);
  s->nfillers = 0;
  if (s->bh_fd >= 0)
    close(s->bh_fd);
  s->bh_fd = -1;
}

/* 1 if a non-blocking connect to the port completes within wait_ms. */
static int filler_connects(ts_server *s, int port, int wait_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_in a;
  struct pollfd p;

  if (fd < 0)
    return -1;
  s->fillers[s->nfillers++] = fd;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr = s->ip4;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
    return 1;
  if (errno != EINPROGRESS)
    return -1;
  p.fd = fd;
  p.events = POLLOUT;
  return poll(&p, 1, wait_ms) > 0 ? 1 : 0;
}

/* A listener with backlog 0 holds one connection in its accept queue; once
 * that is full the kernel drops further SYNs and connects hang.  Fill it
 * with our own connects until one of them hangs, which is the proof. */
static int start_blackhole(ts_server *s) {
  int port = s->lis[L_TCP4].port;

  close_listener(s, L_TCP4);
  end_blackhole(s);
  s->bh_fd = listen_inet(AF_INET, s->ip4, port, 0, &port);
  if (s->bh_fd < 0) {
    perror("testserver: blackhole listen");
    return -1;
  }
  while (s->nfillers < MAX_FILLERS) {
    int r = filler_connects(s, port, 100);
    if (r == 0)
      return 0;
    if (r < 0) {
      perror("testserver: blackhole filler");
      return -1;
    }
  }
  fprintf(stderr, "testserver: blackhole: %d connects all completed\n",
          MAX_FILLERS);
  return -1;
}

/* ---- the loop ---------------------------------------------------------- */

static int resume_listeners(ts_server *s) {
  int rc = 0;

  end_blackhole(s);
  for (int i = 0; i < L_COUNT; i++)
    if (s->lis[i].wanted && s->lis[i].fd < 0 && open_listener(s, i) != 0) {
      perror("testserver: resume");
      rc = -1;
    }
  return rc;
}

static int run_command(ts_server *s, cmd_type cmd, int arg, const char *text) {
  switch (cmd) {
  case CMD_MODE:
    s->mode = (ts_mode)arg;
    return 0;
  case CMD_REFUSE:
    end_blackhole(s);
    for (int i = 0; i < L_COUNT; i++)
      close_listener(s, i);
    return 0;
  case CMD_RESUME:
    return resume_listeners(s);
  case CMD_DROP:
    return drop_all(s, arg);
  case CMD_SEND:
    return send_all(s, text);
  case CMD_BLACKHOLE:
    return start_blackhole(s);
  default:
    return 0;
  }
}

/* Runs the posted command, if any; returns 1 when told to stop. */
static int take_command(ts_server *s) {
  cmd_type cmd;
  int arg, rc;
  const char *text;
  uint64_t seq;
  uint64_t v;

  if (read(s->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
    return 0;
  pthread_mutex_lock(&s->mu);
  cmd = s->cmd;
  arg = s->cmd_arg;
  text = s->cmd_text;
  seq = s->cmd_posted;
  pthread_mutex_unlock(&s->mu);
  if (cmd == CMD_NONE || cmd == CMD_STOP)
    return cmd == CMD_STOP;
  rc = run_command(s, cmd, arg, text);
  pthread_mutex_lock(&s->mu);
  s->cmd = CMD_NONE;
  s->cmd_result = rc;
  s->cmd_done = seq;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static short conn_events(const ts_server *s) {
  /* Stalling: never read, but still notice the peer closing. */
  return s->mode == TS_STALL ? POLLRDHUP : POLLIN;
}

static int open_listeners(ts_server *s);

/* In the server's namespace, if any: then binds and accepts happen there. */
static int join_netns(const ts_server *s) {
  if (s->netns[0] == '\0')
    return 0;
  if (tu_netns_join(s->netns) != 0) {
    fprintf(stderr, "testserver: cannot join netns %s: %s\n", s->netns,
            strerror(errno));
    return -1;
  }
  return 0;
}

static void *loop(void *arg) {
  ts_server *s = arg;
  struct pollfd *pf = NULL;
  int pcap = 0;
  int ok = join_netns(s) == 0 && open_listeners(s) == 0;

  pthread_mutex_lock(&s->mu);
  s->started = ok ? 1 : -1;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  if (!ok)
    return NULL;

  for (;;) {
    int n = 0, nl;

    if (pcap < s->nconns + L_COUNT + 1) {
      pcap = 2 * (s->nconns + L_COUNT + 1);
      free(pf);
      pf = malloc((size_t)pcap * sizeof *pf);
      if (!pf)
        abort(); /* a test server out of memory cannot go on */
    }
    pf[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
    for (int i = 0; i < L_COUNT; i++)
      pf[n++] = (struct pollfd){.fd = s->lis[i].fd, .events = POLLIN};
    nl = n;
    for (int i = 0; i < s->nconns; i++)
      pf[n++] = (struct pollfd){.fd = s->conns[i], .events = conn_events(s)};

    if (poll(pf, (nfds_t)n, -1) < 0) {
      if (errno == EINTR)
        continue;
      perror("testserver: poll");
      abort();
    }
    /* Connections first, from the end, so removals keep indexes valid;
     * commands last, since they may close what pf still lists. */
    for (int i = n - 1; i >= nl; i--) {
      short ev = pf[i].revents;
      if (!ev)
        continue;
      if (s->mode == TS_STALL) {
        if (ev & (POLLRDHUP | POLLHUP | POLLERR))
          remove_conn(s, i - nl, CONN_CLOSE);
      } else {
        int how = serve_conn(s, s->conns[i - nl]);
        if (how != CONN_KEEP)
          remove_conn(s, i - nl, how);
      }
    }
    for (int i = 1; i < nl; i++)
      if (pf[i].fd >= 0 && (pf[i].revents & POLLIN))
        accept_all(s, pf[i].fd);
    if ((pf[0].revents & POLLIN) && take_command(s))
      break;
  }
  free(pf);
  return NULL;
}

/* ---- public ------------------------------------------------------------ */

static int post(ts_server *s, cmd_type cmd, int arg, const char *text) {
  uint64_t seq, one = 1;
  int rc;

  pthread_mutex_lock(&s->mu);
  while (s->cmd != CMD_NONE)
    pthread_cond_wait(&s->cond, &s->mu);
  s->cmd = cmd;
  s->cmd_arg = arg;
  s->cmd_text = text;
  seq = ++s->cmd_posted;
  if (write(s->wake_fd, &one, sizeof one) != sizeof one)
    abort(); /* an eventfd write only fails on overflow */
  if (cmd == CMD_STOP) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  while (s->cmd_done < seq)
    pthread_cond_wait(&s->cond, &s->mu);
  rc = s->cmd_result;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int init_sync(ts_server *s) {
  pthread_condattr_t ca;

  if (pthread_mutex_init(&s->mu, NULL) != 0)
    return -1;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (pthread_cond_init(&s->cond, &ca) != 0) {
    pthread_condattr_destroy(&ca);
    pthread_mutex_destroy(&s->mu);
    return -1;
  }
  pthread_condattr_destroy(&ca);
  return 0;
}

static int make_unix_path(ts_server *s) {
  strlcpy(s->unix_dir, "/tmp/cpool-ts-XXXXXX", sizeof s->unix_dir);
  if (!mkdtemp(s->unix_dir))
    return -1;
  snprintf(s->unix_path, sizeof s->unix_path, "%s/sock", s->unix_dir);
  return 0;
}

static void free_server(ts_server *s) {
  drop_all(s, 0);
  end_blackhole(s);
  for (int i = 0; i < L_COUNT; i++)
    close_listener(s, i);
  if (s->unix_dir[0])
    rmdir(s->unix_dir);
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  free(s->conns);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static int open_listeners(ts_server *s) {
  s->lis[L_TCP4].wanted = 1;
  if (open_listener(s, L_TCP4) != 0) {
    char ip[INET_ADDRSTRLEN];
    fprintf(stderr, "testserver: listen %s:%d: %s\n",
            inet_ntop(AF_INET, &s->ip4, ip, sizeof ip), s->lis[L_TCP4].port,
            strerror(errno));
    return -1;
  }
  if ((s->want & TS_TCP6) && open_listener(s, L_TCP6) == 0)
    s->lis[L_TCP6].wanted = 1;
  else
    s->lis[L_TCP6].port = 0; /* no IPv6 here: ts_port6() says so */
  if (s->want & TS_UNIX) {
    if (make_unix_path(s) != 0 || open_listener(s, L_UNIX) != 0) {
      perror("testserver: unix socket");
      return -1;
    }
    s->lis[L_UNIX].wanted = 1;
  }
  return 0;
}

/* The options into the server, before its thread starts. */
static int take_options(ts_server *s, const ts_options *o) {
  s->mode = o->mode;
  s->want = o->listeners;
  s->lis[L_TCP4].port = o->port;
  s->ip4.s_addr = htonl(INADDR_LOOPBACK);
  if (o->ip && inet_pton(AF_INET, o->ip, &s->ip4) != 1) {
    fprintf(stderr, "testserver: not an IPv4 address: %s\n", o->ip);
    return -1;
  }
  if (o->netns &&
      strlcpy(s->netns, o->netns, sizeof s->netns) >= sizeof s->netns) {
    fprintf(stderr, "testserver: netns name too long: %s\n", o->netns);
    return -1;
  }
  return 0;
}

/* Wait for the loop thread to listen (1) or give up (-1). */
static int wait_started(ts_server *s) {
  int started;

  pthread_mutex_lock(&s->mu);
  while (s->started == 0)
    pthread_cond_wait(&s->cond, &s->mu);
  started = s->started;
  pthread_mutex_unlock(&s->mu);
  return started;
}

ts_server *ts_start_opts(const ts_options *opts) {
  ts_server *s = calloc(1, sizeof *s);

  if (!s)
    return NULL;
  s->bh_fd = -1;
  for (int i = 0; i < L_COUNT; i++)
    s->lis[i].fd = -1;
  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (init_sync(s) != 0) {
    if (s->wake_fd >= 0)
      close(s->wake_fd);
    free(s);
    return NULL;
  }
  if (s->wake_fd < 0 || take_options(s, opts) != 0 ||
      pthread_create(&s->thread, NULL, loop, s) != 0) {
    free_server(s);
    return NULL;
  }
  if (wait_started(s) < 0) {
    pthread_join(s->thread, NULL);
    free_server(s);
    return NULL;
  }
  return s;
}

ts_server *ts_start(ts_mode mode, int listeners) {
  ts_options o = {.mode = mode, .listeners = listeners};

  return ts_start_opts(&o);
}

void ts_stop(ts_server *s) {
  if (!s)
    return;
  post(s, CMD_STOP, 0, NULL);
  pthread_join(s->thread, NULL);
  free_server(s);
}

int ts_port(const ts_server *s) {
  return s->lis[L_TCP4].port;
}
int ts_port6(const ts_server *s) {
  return s->lis[L_TCP6].port;
}

const char *ts_unix_path(const ts_server *s) {
  return s->lis[L_UNIX].wanted ? s->unix_path : NULL;
}

int ts_set_mode(ts_server *s, ts_mode mode) {
  return post(s, CMD_MODE, (int)mode, NULL);
}
int ts_refuse(ts_server *s) {
  return post(s, CMD_REFUSE, 0, NULL);
}
int ts_resume(ts_server *s) {
  return post(s, CMD_RESUME, 0, NULL);
}
int ts_drop(ts_server *s, int rst) {
  return post(s, CMD_DROP, rst, NULL);
}

int ts_poke(ts_server *s) {
  return ts_send_all(s, "+unsolicited\r\n");
}
int ts_send_all(ts_server *s, const char *text) {
  return post(s, CMD_SEND, 0, text);
}
int ts_blackhole(ts_server *s) {
  return post(s, CMD_BLACKHOLE, 0, NULL);
}

ts_counts ts_get_counts(ts_server *s) {
  ts_counts c;

  pthread_mutex_lock(&s->mu);
  c = s->counts;
  pthread_mutex_unlock(&s->mu);
  return c;
}

typedef int (*counts_pred)(const ts_counts *c, int64_t n);

static int wait_counts(ts_server *s, counts_pred pred, int64_t n,
                       int timeout_ms) {
  struct timespec dl = tu_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
  int ok;

  pthread_mutex_lock(&s->mu);
  while (!(ok = pred(&s->counts, n)))
    if (pthread_cond_timedwait(&s->cond, &s->mu, &dl) == ETIMEDOUT) {
      ok = pred(&s->counts, n);
      break;
    }
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static int open_eq(const ts_counts *c, int64_t n) {
  return c->open == n;
}
static int open_ge(const ts_counts *c, int64_t n) {
  return c->open >= n;
}
static int accepted_ge(const ts_counts *c, int64_t n) {
  return c->accepted >= (uint64_t)n;
}

int ts_wait_open(ts_server *s, int n, int timeout_ms) {
  return wait_counts(s, open_eq, n, timeout_ms);
}
int ts_wait_open_at_least(ts_server *s, int n, int timeout_ms) {
  return wait_counts(s, open_ge, n, timeout_ms);
}
int ts_wait_accepted(ts_server *s, uint64_t n, int timeout_ms) {
  return wait_counts(s, accepted_ge, (int64_t)n, timeout_ms);
}
