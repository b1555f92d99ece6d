/*
 * echo_client: the shortest complete use of cpool.  Open a pool, check a
 * connection out, send and receive on its socket, check it back in, close.
 *
 *   echo_client [PORT]       (an echo server on 127.0.0.1:PORT, default 7)
 */
#define _POSIX_C_SOURCE 200809L /* MSG_NOSIGNAL */
#include <cpool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  cpool_config cfg;
  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = argc > 1 ? atoi(argv[1]) : 7;

  cpool_t *pool;
  cpool_error_info err;
  if (cpool_open(&pool, &cfg, &err) != 0) {
    fprintf(stderr, "cpool_open: %s\n", err.message);
    return 1;
  }

  cpool_conn_t *conn;
  int rc = cpool_checkout(pool, &conn, 2000 /* ms */, NULL);
  if (rc != 0) {
    fprintf(stderr, "cpool_checkout: %s\n", cpool_strerror(rc));
    cpool_close(pool, 0);
    return 1;
  }
  int fd = cpool_conn_fd(conn); /* plain blocking I/O on the pool's socket */
  char buf[6];
  size_t got = 0;
  ssize_t n = send(fd, "hello\n", 6, MSG_NOSIGNAL);
  while (n > 0 && got < sizeof buf) {
    n = recv(fd, buf + got, sizeof buf - got, 0);
    got += n > 0 ? (size_t)n : 0;
  }
  cpool_checkin(pool, conn, got == 6 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);

  printf("%.*s", (int)got, buf);
  cpool_close(pool, CPOOL_WAIT_FOREVER);
  return got == 6 ? 0 : 1;
}
