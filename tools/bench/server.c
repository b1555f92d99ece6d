#include "server.h"

#include <bsd/string.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "srv_redis.h"

#define BACKLOG 1024
#define IN_FIRST (16u << 10)
#define IN_MAX (SRV_MAX_BULK + (64u << 10))
#define MSG_DROP (-1) /* worker pipe: reset every connection */
#define MSG_QUIT (-2) /* worker pipe: close everything and exit */

struct conn {
  int fd;
  bool closing; /* close once the output is flushed */
  bool writing; /* waiting for EPOLLOUT; not reading meanwhile */
  struct conn *prev, *next;
  char *in;
  size_t in_len, in_cap;
  srvbuf out;
  size_t out_off;
};

struct worker {
  server_t *srv;
  pthread_t tid;
  int epfd;
  int pipe_r, pipe_w; /* ints: a new fd, MSG_DROP or MSG_QUIT */
  struct conn *conns;
};

struct server {
  server_opts o;
  char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int listen_fd;
  int port;
  int stop_r, stop_w; /* wakes the acceptor to stop */
  bool unix_created;  /* ours to unlink */
  pthread_t acceptor;
  bool acceptor_started;
  int nworkers, started;
  struct worker *workers;
  kv_map *kv;
  _Atomic uint64_t faults;
  atomic_bool calm; /* no more faults (server_calm) */
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  errno = saved;
  return -1;
}

/* --- connections -----------------------------------------------------------
 */

static void conn_close(struct worker *w, struct conn *c, bool reset) {
  if (reset) { /* an RST, as a crashed or firewalled server would give */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(c->fd); /* also removes it from the epoll set */
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c->in);
  srvbuf_free(&c->out);
  free(c);
}

static void conn_add(struct worker *w, int fd) {
  struct conn *c = calloc(1, sizeof *c);
  char *in = malloc(IN_FIRST);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (c == NULL || in == NULL || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev)) {
    free(c);
    free(in);
    close(fd);
    return;
  }
  c->fd = fd;
  c->in = in;
  c->in_cap = IN_FIRST;
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
}

static int conn_watch(struct worker *w, struct conn *c, bool writing) {
  if (c->writing == writing)
    return 0;
  struct epoll_event ev = {.events = writing ? EPOLLOUT : EPOLLIN,
                           .data.ptr = c};
  c->writing = writing;
  return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is pending.  1 when all is sent, 0 when the socket is full
 * (EPOLLOUT armed), -1 on error. */
static int conn_flush(struct worker *w, struct conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return conn_watch(w, c, true) ? -1 : 0;
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out.len = c->out_off = 0;
  return conn_watch(w, c, false) ? -1 : 1;
}

/* Turn buffered input into replies and send them, as far as the socket
 * takes them.  -1 when the connection should be closed. */
static int conn_serve(struct worker *w, struct conn *c) {
  for (;;) {
    long used;
    if (w->srv->o.echo) {
      used = srvbuf_append(&c->out, c->in, c->in_len) ? -1 : (long)c->in_len;
    } else {
      used = redis_process(w->srv->kv, c->in, c->in_len, &c->out, &c->closing);
    }
    if (used < 0)
      return -1;
    memmove(c->in, c->in + used, c->in_len - (size_t)used);
    c->in_len -= (size_t)used;
    int f = conn_flush(w, c);
    if (f <= 0)
      return f;
    if (c->closing)
      return -1;
    if (used == 0 || c->in_len == 0)
      return 0;
  }
}

static int conn_read(struct worker *w, struct conn *c) {
  if (c->in_len == c->in_cap) {
    if (c->in_cap >= IN_MAX)
      return -1; /* the parser would have taken a command this long */
    size_t cap = c->in_cap * 2 > IN_MAX ? IN_MAX : c->in_cap * 2;
    char *in = realloc(c->in, cap);
    if (in == NULL)
      return -1;
    c->in = in;
    c->in_cap = cap;
  }
  ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
  if (n == 0)
    return -1;
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  c->in_len += (size_t)n;
  return conn_serve(w, c);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events) {
  int rc;
  if (c->writing)
    rc = events & (EPOLLERR | EPOLLHUP) ? -1 : conn_serve(w, c);
  else
    rc = conn_read(w, c);
  if (rc < 0)
    conn_close(w, c, false);
}

/* --- workers ---------------------------------------------------------------
 */

/* Read the pipe's messages.  Returns true on MSG_QUIT. */
static bool worker_messages(struct worker *w) {
  int msgs[64];
  for (;;) {
    ssize_t n = read(w->pipe_r, msgs, sizeof msgs);
    if (n <= 0)
      return false; /* EAGAIN: all read */
    for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
      if (msgs[i] == MSG_QUIT)
        return true;
      if (msgs[i] == MSG_DROP) {
        while (w->conns != NULL)
          conn_close(w, w->conns, true);
      } else {
        conn_add(w, msgs[i]);
      }
    }
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct epoll_event evs[128];
  pthread_setname_np(pthread_self(), "bench-server");
  bool quit = false;
  while (!quit) {
    int n = epoll_wait(w->epfd, evs, 128, -1);
    if (n < 0 && errno != EINTR)
      break;
    bool msgs = false;
    /* Connections first: a MSG_DROP frees them, and a later event of the
     * same batch must not find them freed. */
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL)
        msgs = true;
      else
        conn_event(w, evs[i].data.ptr, evs[i].events);
    }
    if (msgs)
      quit = worker_messages(w);
  }
  while (w->conns != NULL)
    conn_close(w, w->conns, false);
  return NULL;
}

static void worker_send(struct worker *w, int msg) {
  while (write(w->pipe_w, &msg, sizeof msg) < 0 && errno == EINTR)
    ;
}

static int worker_init(struct worker *w, server_t *s) {
  int p[2];
  w->srv = s;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epfd < 0)
    return -1;
  if (pipe2(p, O_CLOEXEC) != 0)
    return -1;
  w->pipe_r = p[0];
  w->pipe_w = p[1];
  /* Only the reader is non-blocking: the acceptor may wait for a slow
   * worker, but a worker never waits for anyone. */
  fcntl(w->pipe_r, F_SETFL, O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  return epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->pipe_r, &ev);
}

/* --- listening -------------------------------------------------------------
 */

static int listen_unix(server_t *s) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strlcpy(a.sun_path, s->unix_path, sizeof a.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fd, BACKLOG) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int tcp_socket_bound(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  return ntohs(a.sin_port);
}

/* A listening socket on 127.0.0.1.  It is bound to an explicit port even
 * when any free one will do: Linux keeps an explicitly bound port across
 * shutdown(SHUT_RD) and listen() again, which is how chaos stops and
 * resumes listening without losing the port. */
static int listen_tcp(server_t *s) {
  for (int attempt = 0; attempt < 20; attempt++) {
    int port = s->o.port;
    if (port == 0) {
      int probe = tcp_socket_bound(0);
      if (probe < 0)
        return -1;
      port = bound_port(probe);
      close(probe);
    }
    int fd = tcp_socket_bound(port);
    if (fd < 0 && errno == EADDRINUSE && s->o.port == 0)
      continue; /* taken in between: pick another */
    if (fd < 0)
      return -1;
    if (listen(fd, BACKLOG) != 0) {
      close(fd);
      return -1;
    }
    s->port = port;
    return fd;
  }
  errno = EADDRINUSE;
  return -1;
}

/* Remove a stale socket file at the path; refuse to touch anything else. */
static int clear_unix_path(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT
               ? 0
               : fail(err, errlen, "stat %s: %s", path, strerror(errno));
  if (!S_ISSOCK(st.st_mode))
    return fail(err, errlen, "%s exists and is not a socket", path);
  if (unlink(path) != 0)
    return fail(err, errlen, "unlink %s: %s", path, strerror(errno));
  return 0;
}

static void stop_listening(server_t *s) {
  if (s->o.unix_path != NULL) {
    close(s->listen_fd);
    s->listen_fd = -1;
    unlink(s->unix_path);
  } else {
    /* Resets the connections not yet accepted, and refuses new ones. */
    shutdown(s->listen_fd, SHUT_RD);
  }
}

static void resume_listening(server_t *s) {
  if (s->o.unix_path != NULL) {
    s->listen_fd = listen_unix(s);
    if (s->listen_fd < 0)
      fprintf(stderr, "cpool-bench: built-in server: listen again on %s: %s\n",
              s->unix_path, strerror(errno));
  } else if (listen(s->listen_fd, BACKLOG) != 0) {
    fprintf(stderr, "cpool-bench: built-in server: listen again: %s\n",
            strerror(errno));
  }
}

/* --- the acceptor ----------------------------------------------------------
 */

static void accept_some(server_t *s, unsigned *next_worker) {
  for (int i = 0; i < 256; i++) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM)
        poll(NULL, 0, 10); /* let connections close before trying again */
      return;
    }
    if (s->o.unix_path == NULL) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    worker_send(&s->workers[*next_worker % (unsigned)s->nworkers], fd);
    (*next_worker)++;
  }
}

static void inject_fault(server_t *s) {
  atomic_fetch_add_explicit(&s->faults, 1, memory_order_relaxed);
  stop_listening(s);
  for (int i = 0; i < s->nworkers; i++)
    worker_send(&s->workers[i], MSG_DROP);
}

static int poll_timeout_ms(uint64_t until, uint64_t now) {
  if (until == 0)
    return -1;
  if (until <= now)
    return 0;
  return (int)((until - now + NS_PER_MS - 1) / NS_PER_MS);
}

static void *acceptor_main(void *arg) {
  server_t *s = arg;
  unsigned next_worker = 0;
  pthread_setname_np(pthread_self(), "bench-accept");
  uint64_t period = (uint64_t)s->o.chaos_ms * NS_PER_MS;
  uint64_t refuse = (uint64_t)s->o.refuse_ms * NS_PER_MS;
  uint64_t next_fault = period ? now_ns() + period : 0, resume_at = 0;
  for (;;) {
    struct pollfd p[2] = {
        {.fd = s->stop_r, .events = POLLIN},
        {.fd = resume_at ? -1 : s->listen_fd, .events = POLLIN}};
    uint64_t now = now_ns();
    int rc =
        poll(p, 2, poll_timeout_ms(resume_at ? resume_at : next_fault, now));
    if (rc < 0 && errno != EINTR)
      break;
    if (p[0].revents)
      break;
    now = now_ns();
    if (next_fault != 0 && atomic_load(&s->calm))
      next_fault = 0; /* a refusal under way still ends at resume_at */
    if (resume_at == 0 && next_fault != 0 && now >= next_fault) {
      inject_fault(s);
      resume_at = now + refuse;
      next_fault += period;
      if (next_fault <= resume_at)
        next_fault = resume_at + period;
    } else if (resume_at != 0 && now >= resume_at) {
      resume_listening(s);
      resume_at = 0;
    } else if (rc > 0 && p[1].revents && s->listen_fd >= 0) {
      accept_some(s, &next_worker);
    }
  }
  return NULL;
}

/* --- start and stop --------------------------------------------------------
 */

int server_port(const server_t *s) {
  return s->port;
}

int server_threads(const server_t *s) {
  return s->nworkers;
}

void server_calm(server_t *s) {
  if (s == NULL)
    return;
  /* The acceptor looks at it when it wakes for the next fault. */
  atomic_store(&s->calm, true);
}

uint64_t server_faults(const server_t *s) {
  return atomic_load_explicit(&((server_t *)s)->faults, memory_order_relaxed);
}

static int default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 16 ? 16 : (int)n;
}

static int server_listen(server_t *s, char *err, size_t errlen) {
  if (s->o.unix_path != NULL) {
    if (strlcpy(s->unix_path, s->o.unix_path, sizeof s->unix_path) >=
        sizeof s->unix_path)
      return fail(err, errlen, "unix path too long: %s", s->o.unix_path);
    s->o.unix_path = s->unix_path;
    if (clear_unix_path(s->unix_path, err, errlen))
      return -1;
    s->listen_fd = listen_unix(s);
    if (s->listen_fd < 0)
      return fail(err, errlen, "listen on unix:%s: %s", s->unix_path,
                  strerror(errno));
    s->unix_created = true;
    return 0;
  }
  s->listen_fd = listen_tcp(s);
  if (s->listen_fd < 0)
    return fail(err, errlen, "listen on 127.0.0.1:%d: %s", s->o.port,
                strerror(errno));
  return 0;
}

static int server_threads_start(server_t *s, char *err, size_t errlen) {
  for (int i = 0; i < s->nworkers; i++) {
    if (worker_init(&s->workers[i], s) != 0)
      return fail(err, errlen, "built-in server: %s", strerror(errno));
    int e =
        pthread_create(&s->workers[i].tid, NULL, worker_main, &s->workers[i]);
    if (e != 0)
      return fail(err, errlen, "pthread_create: %s", strerror(e));
    s->started++;
  }
  int e = pthread_create(&s->acceptor, NULL, acceptor_main, s);
  if (e != 0)
    return fail(err, errlen, "pthread_create: %s", strerror(e));
  s->acceptor_started = true;
  return 0;
}

int server_start(server_t **out, const server_opts *o, char *err,
                 size_t errlen) {
  *out = NULL;
  server_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return fail(err, errlen, "out of memory");
  s->o = *o;
  s->listen_fd = s->stop_r = s->stop_w = -1;
  if (s->o.refuse_ms == 0)
    s->o.refuse_ms = 200;
  if (s->o.chaos_ms > 0 && s->o.refuse_ms > s->o.chaos_ms / 2)
    s->o.refuse_ms = (int)(s->o.chaos_ms / 2);
  s->nworkers = o->threads > 0 ? o->threads : default_threads();
  s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
  s->kv = kv_new();
  int p[2];
  if (s->workers == NULL || s->kv == NULL || pipe2(p, O_CLOEXEC) != 0) {
    fail(err, errlen, "built-in server: out of memory or descriptors");
    server_stop(s);
    return -1;
  }
  for (int i = 0; i < s->nworkers; i++)
    s->workers[i].epfd = s->workers[i].pipe_r = s->workers[i].pipe_w = -1;
  s->stop_r = p[0];
  s->stop_w = p[1];
  if (server_listen(s, err, errlen) || server_threads_start(s, err, errlen)) {
    server_stop(s);
    return -1;
  }
  *out = s;
  return 0;
}

void server_stop(server_t *s) {
  if (s == NULL)
    return;
  if (s->acceptor_started) {
    char b = 1;
    while (write(s->stop_w, &b, 1) < 0 && errno == EINTR)
      ;
    pthread_join(s->acceptor, NULL);
  }
  for (int i = 0; i < s->started; i++) {
    worker_send(&s->workers[i], MSG_QUIT);
    pthread_join(s->workers[i].tid, NULL);
  }
  for (int i = 0; s->workers != NULL && i < s->nworkers; i++) {
    struct worker *w = &s->workers[i];
    if (w->epfd >= 0)
      close(w->epfd);
    if (w->pipe_r >= 0)
      close(w->pipe_r);
    if (w->pipe_w >= 0)
      close(w->pipe_w);
  }
  if (s->listen_fd >= 0)
    close(s->listen_fd);
  if (s->unix_created)
    unlink(s->unix_path);
  if (s->stop_r >= 0)
    close(s->stop_r);
  if (s->stop_w >= 0)
    close(s->stop_w);
  free(s->workers);
  kv_free(s->kv);
  free(s);
}
