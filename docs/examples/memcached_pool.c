/*
 * memcached_pool: memcached's text protocol on pooled sockets.
 *
 *   memcached_pool --port PORT [--threads N] [--ops N] [--pool N]
 *
 * libmemcached cannot adopt a descriptor: it has no call that wraps a
 * socket it did not connect itself, so it cannot run on cpool's
 * connections (it keeps its own pool, memcached_pool_st).  The text
 * protocol is simple enough to speak directly, as here.
 *
 * What it shows:
 * - io_timeout_ms bounds every recv / send of callers, with no code;
 * - a reply read whole and checked: anything unexpected (a timeout, EOF,
 *   SERVER_ERROR, a short value) means CPOOL_CONN_BROKEN at checkin, as the
 *   stream may be out of step; a miss ("END" alone) is an answer;
 * - on_ping with "version".
 * Exit status 0 when every reply was the expected one.
 */
#define _POSIX_C_SOURCE 200809L

#include <cpool.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

#define TIMEOUT_MS 2000

static int send_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1; /* an error, or io_timeout_ms passed (EAGAIN) */
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads until the reply ends with end (e.g. "END\r\n" or "\r\n"), or the
 * buffer is full; 0 and NUL-terminated, or -1. */
static int recv_reply(int fd, char *buf, size_t size, const char *end) {
  size_t len = 0, elen = strlen(end);
  while (len + 1 < size) {
    ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
    if (r <= 0)
      return -1; /* EOF, an error, or io_timeout_ms passed */
    len += (size_t)r;
    buf[len] = '\0';
    if (len >= elen && strcmp(buf + len - elen, end) == 0)
      return 0;
  }
  return -1;
}

static int on_ping(int fd, void *data, void *arg) {
  (void)data;
  (void)arg;
  char buf[128];
  if (send_all(fd, "version\r\n", 9) != 0 ||
      recv_reply(fd, buf, sizeof buf, "\r\n") != 0)
    return -1;
  return strncmp(buf, "VERSION ", 8) == 0 ? 0 : -1;
}

/* set, then get: 0 if both replies were right. */
static int set_get(int fd, const char *key, const char *val) {
  char req[512], buf[512], want[512];
  int n = snprintf(req, sizeof req, "set %s 0 0 %zu\r\n%s\r\n", key,
                   strlen(val), val);
  if (send_all(fd, req, (size_t)n) != 0 ||
      recv_reply(fd, buf, sizeof buf, "\r\n") != 0 ||
      strcmp(buf, "STORED\r\n") != 0)
    return -1;
  n = snprintf(req, sizeof req, "get %s\r\n", key);
  snprintf(want, sizeof want, "VALUE %s 0 %zu\r\n%s\r\nEND\r\n", key,
           strlen(val), val);
  if (send_all(fd, req, (size_t)n) != 0 ||
      recv_reply(fd, buf, sizeof buf, "END\r\n") != 0)
    return -1;
  return strcmp(buf, want) == 0 ? 0 : -1;
}

typedef struct job {
  cpool_t *pool;
  int id, ops, started;
  long errors;
  pthread_t thread;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  for (int i = 0; i < j->ops; i++) {
    cpool_conn_t *conn;
    cpool_error_info why;
    int rc = cpool_checkout(j->pool, &conn, TIMEOUT_MS, &why);
    if (rc != 0) {
      fprintf(stderr, "checkout: %s%s%s\n", cpool_strerror(rc),
              rc == CPOOL_ECLOSED ? ": " : "",
              rc == CPOOL_ECLOSED ? why.message : "");
      j->errors++;
      continue;
    }
    char key[64], val[64];
    snprintf(key, sizeof key, "cpool-mc:%d:%d", j->id, i);
    snprintf(val, sizeof val, "value %d of thread %d", i, j->id);
    int bad = set_get(cpool_conn_fd(conn), key, val) != 0;
    j->errors += bad;
    cpool_checkin(j->pool, conn, bad ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int port = 0, threads = 4, ops = 200, size = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = int_arg("--port", argv[i + 1], 1, 65535);
    else if (strcmp(argv[i], "--threads") == 0)
      threads = int_arg("--threads", argv[i + 1], 1, 256);
    else if (strcmp(argv[i], "--ops") == 0)
      ops = int_arg("--ops", argv[i + 1], 1, 1000000);
    else if (strcmp(argv[i], "--pool") == 0)
      size = int_arg("--pool", argv[i + 1], 1, 256);
  }
  if (port == 0) {
    fprintf(stderr, "usage: memcached_pool --port PORT [--threads N] "
                    "[--ops N] [--pool N]\n");
    return 2;
  }

  cpool_config cfg;
  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = port;
  cfg.size = size;
  cfg.start = CPOOL_START_SYNC;
  cfg.io_timeout_ms = TIMEOUT_MS;
  cfg.on_ping = on_ping;
  cfg.ping_interval_ms = 5000;

  cpool_t *pool;
  cpool_error_info err;
  if (cpool_open(&pool, &cfg, &err) != 0) {
    fprintf(stderr, "cpool_open: %s\n", err.message);
    return 1;
  }
  long errors = 0;
  job *jobs = calloc((size_t)threads, sizeof *jobs);
  if (jobs == NULL)
    errors++;
  for (int i = 0; jobs != NULL && i < threads; i++) {
    jobs[i] = (job){.pool = pool, .id = i, .ops = ops};
    jobs[i].started =
        pthread_create(&jobs[i].thread, NULL, run_job, &jobs[i]) == 0;
  }
  for (int i = 0; jobs != NULL && i < threads; i++) {
    if (jobs[i].started)
      pthread_join(jobs[i].thread, NULL);
    errors += jobs[i].started ? jobs[i].errors : 1;
  }
  free(jobs);
  cpool_stats_t st;
  cpool_stats(pool, &st);
  printf("%d threads x %d ops: %ld errors; connects %llu, checkouts %llu\n",
         threads, ops, errors, (unsigned long long)st.connects,
         (unsigned long long)st.checkouts);
  cpool_close(pool, CPOOL_WAIT_FOREVER);
  return errors == 0 ? 0 : 1;
}
