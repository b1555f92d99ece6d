/*
 * A program that uses cpool the way a user's program does, built out of
 * tree against an installed cpool (find_package or pkg-config) or against
 * its sources (add_subdirectory).  It is self-contained: it starts its own
 * loopback echo listener on a free port, opens a pool against it, and has a
 * few threads do round trips through the pool.
 *
 * Exit status 0 when every round trip came back intact and the library's
 * version matches the header it was compiled with.
 *
 * Built with -DCONSUMER_PLUGIN (and -shared -fPIC, libcpool linked in), it
 * is a shared object whose consumer_plugin_main() does the same, for
 * dlopen_host.c: libcpool.a inside a plugin.
 */
#define _POSIX_C_SOURCE 200809L

#include <cpool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { POOL_SIZE = 4, THREADS = 4, ROUNDS = 100, MAX_FDS = 64 };

typedef struct echo_server {
  int listen_fd;
  int stop_pipe[2];
  pthread_t thread;
} echo_server;

static void fail(const char *what, int rc) {
  fprintf(stderr, "consumer: %s: %s (%s)\n", what, cpool_strerror(rc),
          cpool_err_name(rc));
}

/* Echo everything back; one thread serves every connection with poll(). */
static void *echo_main(void *arg) {
  echo_server *srv = arg;
  struct pollfd fds[MAX_FDS];
  nfds_t n = 2;

  fds[0] = (struct pollfd){.fd = srv->stop_pipe[0], .events = POLLIN};
  fds[1] = (struct pollfd){.fd = srv->listen_fd, .events = POLLIN};
  for (;;) {
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[0].revents)
      break;
    if ((fds[1].revents & POLLIN) && n < MAX_FDS) {
      int fd = accept(srv->listen_fd, NULL, NULL);
      if (fd >= 0)
        fds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    for (nfds_t i = 2; i < n; i++) {
      char buf[4096];
      ssize_t got;
      if (!fds[i].revents)
        continue;
      got = read(fds[i].fd, buf, sizeof buf);
      if (got <= 0 || write(fds[i].fd, buf, (size_t)got) != got) {
        close(fds[i].fd);
        fds[i--] = fds[--n];
      }
    }
  }
  for (nfds_t i = 2; i < n; i++)
    close(fds[i].fd);
  return NULL;
}

static int echo_start(echo_server *srv, int *port) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;

  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  srv->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (srv->listen_fd < 0 || bind(srv->listen_fd, (void *)&sa, sizeof sa) ||
      listen(srv->listen_fd, 64) ||
      getsockname(srv->listen_fd, (void *)&sa, &len) || pipe(srv->stop_pipe)) {
    perror("consumer: echo listener");
    return -1;
  }
  *port = ntohs(sa.sin_port);
  if (pthread_create(&srv->thread, NULL, echo_main, srv)) {
    fprintf(stderr, "consumer: pthread_create failed\n");
    return -1;
  }
  return 0;
}

static void echo_stop(echo_server *srv) {
  if (write(srv->stop_pipe[1], "x", 1) != 1)
    perror("consumer: stop echo listener");
  pthread_join(srv->thread, NULL);
  close(srv->listen_fd);
  close(srv->stop_pipe[0]);
  close(srv->stop_pipe[1]);
}

/* One request/reply through a checked-out connection. */
static int round_trip(int fd, const char *msg, size_t len) {
  char reply[128];
  size_t got = 0;

  if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
    return -1;
  while (got < len) {
    ssize_t n = recv(fd, reply + got, len - got, 0);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return memcmp(reply, msg, len) == 0 ? 0 : -1;
}

static void *client_main(void *arg) {
  cpool_t *pool = arg;

  for (int i = 0; i < ROUNDS; i++) {
    cpool_conn_t *conn;
    char msg[64];
    int len, rc, ok;

    rc = cpool_checkout(pool, &conn, 5000, NULL);
    if (rc != 0) {
      fail("cpool_checkout", rc);
      return (void *)1;
    }
    len = snprintf(msg, sizeof msg, "hello from slot %d, round %d\n",
                   cpool_conn_slot(conn), i);
    ok = round_trip(cpool_conn_fd(conn), msg, (size_t)len) == 0;
    cpool_checkin(pool, conn, ok ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
    if (!ok) {
      fprintf(stderr, "consumer: echo round trip failed\n");
      return (void *)1;
    }
  }
  return NULL;
}

static int run_clients(cpool_t *pool) {
  pthread_t threads[THREADS];
  int failed = 0;

  for (int i = 0; i < THREADS; i++)
    if (pthread_create(&threads[i], NULL, client_main, pool))
      return -1;
  for (int i = 0; i < THREADS; i++) {
    void *res;
    pthread_join(threads[i], &res);
    failed |= res != NULL;
  }
  return failed ? -1 : 0;
}

#ifdef CONSUMER_PLUGIN
#define CONSUMER_MAIN consumer_plugin_main
int consumer_plugin_main(int argc, char **argv);
#else
#define CONSUMER_MAIN main
#endif

int CONSUMER_MAIN(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "consumer";
  echo_server srv;
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  cpool_t *pool;
  int port, rc, status = 1;

  if (cpool_version() != CPOOL_VERSION_HEX) {
    fprintf(stderr, "consumer: header is %d.%d.%d but library is %s\n",
            CPOOL_VERSION_MAJOR, CPOOL_VERSION_MINOR, CPOOL_VERSION_PATCH,
            cpool_version_string());
    return 1;
  }
  if (echo_start(&srv, &port) != 0)
    return 1;

  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = port;
  cfg.size = POOL_SIZE;
  cfg.start = CPOOL_START_SYNC;
  rc = cpool_open(&pool, &cfg, &err);
  if (rc != 0) {
    fprintf(stderr, "consumer: cpool_open: %s: %s\n", cpool_err_name(rc),
            err.message);
    echo_stop(&srv);
    return 1;
  }

  if (run_clients(pool) == 0 && cpool_stats(pool, &st) == 0) {
    if (st.checkouts == (uint64_t)THREADS * ROUNDS && st.connects >= POOL_SIZE)
      status = 0;
    else
      fprintf(stderr, "consumer: stats: %llu checkouts, %llu connects\n",
              (unsigned long long)st.checkouts,
              (unsigned long long)st.connects);
  }
  rc = cpool_close(pool, 1000);
  if (rc != 0) {
    fail("cpool_close", rc);
    status = 1;
  }
  echo_stop(&srv);
  if (status == 0)
    printf("%s: cpool %s, %d round trips over %d connections: OK\n", how,
           cpool_version_string(), THREADS * ROUNDS, POOL_SIZE);
  return status;
}
