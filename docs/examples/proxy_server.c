/*
 * proxy_server: a multithreaded TCP front server for a Redis backend.  Each
 * client gets a thread; each request it sends checks out a backend
 * connection from the pool, is forwarded, its reply read back, the
 * connection checked in, and only then the reply written to the client (a
 * slow client never holds a backend connection).
 *
 *   proxy_server --backend-port PORT [--backend-host HOST] [--port PORT]
 *                [--port-file FILE] [--pool N] [--nowait] [--timeout-ms MS]
 *                [--max-clients N]
 *
 * With --nowait a request that finds every backend connection checked out
 * is answered "-BUSY ..." at once (CPOOL_NOWAIT), instead of waiting up to
 * --timeout-ms for one.  A backend that is down is answered "-ERR backend
 * down: <why>" at once in both modes.  Requests are RESP arrays or inline
 * commands ("PING\r\n"), so redis-cli and cpool-bench can drive it.
 *
 * Listens on 127.0.0.1:PORT (0, the default: a free port, written to
 * --port-file once listening).  SIGINT or SIGTERM: stop accepting, end the
 * client threads, close the pool (draining), print the counts, exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "resp.h"
#include "util.h"

#include <cpool.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
  REQUEST_MAX = 64 * 1024, /* one client request */
  REPLY_MAX = 256 * 1024,  /* one backend reply */
  CLIENT_TIMEOUT_MS = 5000 /* to write a reply to a client */
};

typedef struct options {
  const char *backend_host;
  int backend_port;
  int port;
  const char *port_file;
  int pool_size;
  int nowait;
  int timeout_ms;
  int max_clients;
} options;

enum client_state { CLIENT_FREE, CLIENT_RUNNING, CLIENT_DONE };

typedef struct client {
  struct proxy *px;
  pthread_t thread;
  int fd;
  enum client_state state; /* [px->mu] */
} client;

typedef struct proxy {
  options opt;
  cpool_t *pool;
  int listen_fd;
  pthread_mutex_t mu;
  int stopping; /* [mu] */
  client *clients;
  atomic_ulong requests, busy, down, backend_errors;
} proxy;

static int reply_error(int fd, const char *kind, const char *text) {
  char line[512];
  int n = snprintf(line, sizeof line, "-%s %s\r\n", kind, text);

  if (n < 0 || n >= (int)sizeof line)
    n = snprintf(line, sizeof line, "-%s\r\n", kind);
  return resp_write(fd, line, (size_t)n, CLIENT_TIMEOUT_MS);
}

/* Answers a checkout failure: busy and down are different answers. */
static int reply_checkout_error(proxy *px, int fd, int rc,
                                const cpool_error_info *why) {
  char text[400];

  switch (rc) {
  case CPOOL_ECHECKEDOUT:
  case CPOOL_ETIMEDOUT:
  case CPOOL_EOVERLOAD:
    atomic_fetch_add(&px->busy, 1);
    return reply_error(fd, "BUSY", cpool_strerror(rc));
  case CPOOL_ECLOSED:
    atomic_fetch_add(&px->down, 1);
    snprintf(text, sizeof text, "backend down: %s", why->message);
    return reply_error(fd, "ERR", text);
  default:
    return reply_error(fd, "ERR", cpool_strerror(rc));
  }
}

/* Forwards one request and reads the one reply into *back.  Returns the
 * reply's length, or a RESP_E* code (the connection is then broken). */
static long forward(proxy *px, cpool_conn_t *conn, const char *req, size_t len,
                    resp_buf *back) {
  int fd = cpool_conn_fd(conn);
  long n;

  back->len = 0;
  n = resp_write(fd, req, len, px->opt.timeout_ms);
  if (n == 0)
    n = resp_read(fd, back, 0, px->opt.timeout_ms);
  /* Anything after the one reply means the backend and we disagree. */
  if (n > 0 && (size_t)n != back->len)
    n = RESP_EPROTO;
  return n;
}

/* One client request: checkout, forward, checkin, reply.  Returns 0 to go
 * on with the client, -1 to drop it. */
static int handle_request(proxy *px, int client_fd, const char *req, size_t len,
                          resp_buf *back) {
  int timeout = px->opt.nowait ? CPOOL_NOWAIT : px->opt.timeout_ms;
  cpool_conn_t *conn;
  cpool_error_info why;
  long n;
  int rc;

  atomic_fetch_add(&px->requests, 1);
  rc = cpool_checkout(px->pool, &conn, timeout, &why);
  if (rc != 0)
    return reply_checkout_error(px, client_fd, rc, &why) == 0 ? 0 : -1;
  n = forward(px, conn, req, len, back);
  cpool_checkin(px->pool, conn, n > 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  if (n < 0) {
    atomic_fetch_add(&px->backend_errors, 1);
    return reply_error(client_fd, "ERR backend failed:", resp_strerror(n)) == 0
               ? 0
               : -1;
  }
  return resp_write(client_fd, back->data, (size_t)n, CLIENT_TIMEOUT_MS) == 0
             ? 0
             : -1;
}

static void *client_main(void *arg) {
  client *c = arg;
  proxy *px = c->px;
  char *mem = malloc(REQUEST_MAX + REPLY_MAX);
  resp_buf in = {.data = mem, .cap = REQUEST_MAX};
  resp_buf back = {.data = mem + REQUEST_MAX, .cap = REPLY_MAX};

  while (mem != NULL) {
    long n = resp_read(c->fd, &in, 1, -1);
    if (n == RESP_EPROTO || n == RESP_ETOOBIG)
      reply_error(c->fd, "ERR", "protocol error");
    if (n < 0 || handle_request(px, c->fd, in.data, (size_t)n, &back) != 0)
      break;
    resp_consume(&in, (size_t)n);
  }
  free(mem);
  /* The fd stays open until the thread is joined, so that stop() can
   * shut it down without racing a reuse of its number. */
  pthread_mutex_lock(&px->mu);
  c->state = CLIENT_DONE;
  pthread_mutex_unlock(&px->mu);
  return NULL;
}

/* Joins a client thread and frees its entry: with mu held only when the
 * thread is already CLIENT_DONE. */
static void reap(client *c) {
  pthread_join(c->thread, NULL);
  close(c->fd);
  c->state = CLIENT_FREE;
}

/* Takes a free client entry for fd and starts its thread; -1 if none is
 * free or the proxy is stopping. */
static int start_client(proxy *px, int fd) {
  client *c = NULL;
  int rc = -1;

  pthread_mutex_lock(&px->mu);
  for (int i = 0; i < px->opt.max_clients && !px->stopping; i++) {
    if (px->clients[i].state == CLIENT_DONE)
      reap(&px->clients[i]);
    if (c == NULL && px->clients[i].state == CLIENT_FREE)
      c = &px->clients[i];
  }
  if (c != NULL && !px->stopping) {
    *c = (client){.px = px, .fd = fd, .state = CLIENT_RUNNING};
    rc = pthread_create(&c->thread, NULL, client_main, c) == 0 ? 0 : -1;
    if (rc != 0)
      c->state = CLIENT_FREE;
  }
  pthread_mutex_unlock(&px->mu);
  return rc;
}

static void *accept_main(void *arg) {
  proxy *px = arg;

  for (;;) {
    int fd = accept(px->listen_fd, NULL, NULL), stopping;
    pthread_mutex_lock(&px->mu);
    stopping = px->stopping;
    pthread_mutex_unlock(&px->mu);
    if (stopping) {
      if (fd >= 0)
        close(fd);
      return NULL;
    }
    if (fd < 0) {
      /* EINTR, ECONNABORTED, or out of fds: do not spin on the latter. */
      nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
      continue;
    }
    if (start_client(px, fd) != 0) {
      reply_error(fd, "ERR", "too many clients");
      close(fd);
    }
  }
}

/* Stops accepting, ends every client thread, then closes the pool: no
 * thread may use it once cpool_close() begins freeing it. */
static int stop(proxy *px, pthread_t acceptor) {
  pthread_mutex_lock(&px->mu);
  px->stopping = 1;
  shutdown(px->listen_fd, SHUT_RDWR); /* wakes accept() */
  for (int i = 0; i < px->opt.max_clients; i++)
    if (px->clients[i].state == CLIENT_RUNNING)
      shutdown(px->clients[i].fd, SHUT_RDWR); /* wakes its read */
  pthread_mutex_unlock(&px->mu);
  pthread_join(acceptor, NULL);
  /* A client may still be waiting in checkout, for at most timeout_ms; its
   * thread takes mu to say it is done, so join it without holding mu. */
  for (int i = 0; i < px->opt.max_clients; i++) {
    enum client_state state;
    pthread_mutex_lock(&px->mu);
    state = px->clients[i].state;
    pthread_mutex_unlock(&px->mu);
    if (state != CLIENT_FREE)
      reap(&px->clients[i]);
  }
  close(px->listen_fd);
  return cpool_close(px->pool, px->opt.timeout_ms);
}

static void parse_options(int argc, char **argv, options *opt) {
  static const struct option longopts[] = {
      {"backend-host", required_argument, NULL, 'H'},
      {"backend-port", required_argument, NULL, 'P'},
      {"port", required_argument, NULL, 'p'},
      {"port-file", required_argument, NULL, 'f'},
      {"pool", required_argument, NULL, 'c'},
      {"nowait", no_argument, NULL, 'w'},
      {"timeout-ms", required_argument, NULL, 'T'},
      {"max-clients", required_argument, NULL, 'm'},
      {NULL, 0, NULL, 0}};
  int c;

  *opt = (options){.backend_host = "127.0.0.1",
                   .pool_size = 4,
                   .timeout_ms = 1000,
                   .max_clients = 256};
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'H':
      opt->backend_host = optarg;
      break;
    case 'P':
      opt->backend_port = int_arg("backend-port", optarg, 1, 65535);
      break;
    case 'p':
      opt->port = int_arg("port", optarg, 0, 65535);
      break;
    case 'f':
      opt->port_file = optarg;
      break;
    case 'c':
      opt->pool_size = int_arg("pool", optarg, 1, CPOOL_MAX_SIZE);
      break;
    case 'w':
      opt->nowait = 1;
      break;
    case 'T':
      opt->timeout_ms = int_arg("timeout-ms", optarg, 1, 3600000);
      break;
    case 'm':
      opt->max_clients = int_arg("max-clients", optarg, 1, 65536);
      break;
    default:
      exit(2);
    }
  }
  if (opt->backend_port == 0 || optind != argc) {
    fprintf(stderr,
            "usage: proxy_server --backend-port PORT [--backend-host HOST] "
            "[--port PORT] [--port-file FILE] [--pool N] [--nowait] "
            "[--timeout-ms MS] [--max-clients N]\n");
    exit(2);
  }
}

int main(int argc, char **argv) {
  static proxy px;
  cpool_config cfg;
  cpool_error_info err;
  pthread_t acceptor;
  sigset_t stop_signals;
  int sig, port, rc;

  parse_options(argc, argv, &px.opt);
  /* Every thread inherits the blocked set; main takes the signals with
   * sigwait(), so no code runs in a signal handler. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  cpool_config_init(&cfg);
  cfg.host = px.opt.backend_host;
  cfg.port = px.opt.backend_port;
  cfg.size = px.opt.pool_size;
  rc = cpool_open(&px.pool, &cfg, &err);
  if (rc != 0) {
    fprintf(stderr, "proxy_server: cpool_open: %s\n", err.message);
    return 1;
  }
  px.clients = calloc((size_t)px.opt.max_clients, sizeof *px.clients);
  px.listen_fd = listen_loopback(px.opt.port, &port);
  if (px.clients == NULL || px.listen_fd < 0 ||
      (px.opt.port_file && write_port_file(px.opt.port_file, port) != 0)) {
    fprintf(stderr, "proxy_server: cannot start\n");
    return 1;
  }
  pthread_mutex_init(&px.mu, NULL);
  if (pthread_create(&acceptor, NULL, accept_main, &px) != 0)
    return 1;
  printf("proxy_server: 127.0.0.1:%d -> %s:%d, %d connections, %s\n", port,
         px.opt.backend_host, px.opt.backend_port, px.opt.pool_size,
         px.opt.nowait ? "nowait" : "waiting");
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  rc = stop(&px, acceptor);
  printf("proxy_server: %lu requests, %lu busy, %lu backend down, "
         "%lu backend errors\n",
         atomic_load(&px.requests), atomic_load(&px.busy),
         atomic_load(&px.down), atomic_load(&px.backend_errors));
  if (rc != 0)
    fprintf(stderr, "proxy_server: cpool_close: %s\n", cpool_strerror(rc));
  free(px.clients);
  pthread_mutex_destroy(&px.mu);
  return rc == 0 ? 0 : 1;
}
