/*
 * hiredis_pool: hiredis on pooled sockets.  cpool owns the connections
 * (connect, reconnect, backoff); hiredis speaks RESP on them.
 *
 *   hiredis_pool --port PORT [--threads N] [--ops N] [--pool N]
 *
 * What it shows:
 * - on_connect wraps the pool's socket with redisConnectFd() and keeps the
 *   redisContext as the connection's data; on_disconnect frees it with
 *   redisFreeKeepFd(), since the socket is cpool's to close;
 * - redisSetTimeout() in on_connect bounds every later call, and stays:
 *   cpool does not touch the socket's timeouts (checked below);
 * - a caller that sees c->err (an I/O error, a timeout, a protocol error)
 *   checks the connection in as CPOOL_CONN_BROKEN: its worker reconnects;
 * - the on_checkin hook refuses a connection whose hiredis reader holds
 *   bytes nobody read, or that has replies still to come: without it, a
 *   caller that left a reply behind would hand it to the next caller (a
 *   GET of a missing key returned the earlier caller's value);
 * - on_ping keeps idle connections honest with PING.
 * Exit status 0 when every reply was the expected one.
 */
#define _POSIX_C_SOURCE 200809L

#include <cpool.h>
#include <hiredis/hiredis.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "util.h"

#define TIMEOUT_MS 2000

/* The connection's data: hiredis' context, and how many replies are owed
 * for commands sent (the reader only holds what has arrived). */
typedef struct hconn {
  redisContext *c;
  int pending;
} hconn;

static int on_connect(int fd, void **data, void *arg) {
  (void)arg;
  hconn *h = calloc(1, sizeof *h);
  if (h == NULL)
    return -1;
  *data = h; /* on_disconnect frees it, even if we fail below */
  h->c = redisConnectFd(fd);
  if (h->c == NULL || h->c->err)
    return -1;
  struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
  if (redisSetTimeout(h->c, tv) != REDIS_OK)
    return -1;
  /* The handshake: name the client (AUTH and SELECT would go here). */
  redisReply *r = redisCommand(h->c, "CLIENT SETNAME cpool-hiredis");
  int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  return ok ? 0 : -1;
}

static void on_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  hconn *h = data;
  if (h == NULL)
    return;
  if (h->c != NULL)
    redisFreeKeepFd(h->c); /* the fd is cpool's: it closes it */
  free(h);
}

static int on_ping(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  redisReply *r = redisCommand(((hconn *)data)->c, "PING");
  int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  return ok ? 0 : -1;
}

/* Validation at checkin: nothing buffered, nothing owed, no error. */
static int on_checkin(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  const hconn *h = data;
  return h->c->err != 0 || h->pending != 0 ||
         h->c->reader->pos < h->c->reader->len || h->c->obuf[0] != '\0';
}

/* One command and its reply; NULL when the connection failed (c->err). */
static redisReply *command(hconn *h, const char *fmt, const char *a,
                           const char *b) {
  redisReply *r = b != NULL ? redisCommand(h->c, fmt, a, b)
                            : redisCommand(h->c, fmt, a);
  if (h->c->err) {
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

typedef struct job {
  cpool_t *pool;
  int id, ops;
  long errors;
  int started;
  pthread_t thread;
} job;

/* SET then GET of the thread's own keys, every reply checked. */
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
    hconn *h = cpool_conn_data(conn);
    char key[64], val[64];
    snprintf(key, sizeof key, "cpool-hiredis:%d:%d", j->id, i);
    snprintf(val, sizeof val, "value %d of thread %d", i, j->id);
    redisReply *r = command(h, "SET %s %s", key, val);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = ok ? command(h, "GET %s", key, NULL) : NULL;
    ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0;
    freeReplyObject(r);
    if (!ok)
      j->errors++;
    /* A Redis error reply is an answer; a dead or confused socket is not. */
    cpool_checkin(j->pool, conn,
                  h->c->err ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
  }
  return NULL;
}

/* The socket's receive timeout, as redisSetTimeout left it. */
static int rcvtimeo_ms(int fd) {
  struct timeval tv;
  socklen_t len = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) != 0)
    return -1;
  return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* A caller pipelines SET and GET, reads one reply, and checks the
 * connection in as good: on_checkin refuses it, so the next caller's GET
 * of a missing key gets nil, not the value left behind.  0 if so. */
static int stale_reply_check(cpool_t *pool) {
  cpool_conn_t *conn;
  redisReply *r = NULL;
  if (cpool_checkout(pool, &conn, TIMEOUT_MS, NULL) != 0)
    return -1;
  hconn *h = cpool_conn_data(conn);
  redisAppendCommand(h->c, "SET %s %s", "cpool-hiredis:left", "stale!");
  redisAppendCommand(h->c, "GET %s", "cpool-hiredis:left");
  h->pending = 2;
  if (redisGetReply(h->c, (void **)&r) == REDIS_OK)
    h->pending--;
  freeReplyObject(r);
  cpool_checkin(pool, conn, h->c->err ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);

  if (cpool_checkout(pool, &conn, TIMEOUT_MS, NULL) != 0)
    return -1;
  h = cpool_conn_data(conn);
  r = command(h, "GET %s", "cpool-hiredis:missing", NULL);
  int nil = r != NULL && r->type == REDIS_REPLY_NIL;
  printf("after a reply left behind: GET missing -> %s\n",
         r == NULL                        ? "(error)"
         : r->type == REDIS_REPLY_NIL     ? "nil"
         : r->type == REDIS_REPLY_STRING ? r->str
                                          : "(other)");
  freeReplyObject(r);
  cpool_checkin(pool, conn, h->c->err ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
  return nil ? 0 : -1;
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
    fprintf(stderr, "usage: hiredis_pool --port PORT [--threads N] "
                    "[--ops N] [--pool N]\n");
    return 2;
  }

  cpool_config cfg;
  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = port;
  cfg.size = size;
  cfg.start = CPOOL_START_SYNC;
  cfg.on_connect = on_connect;
  cfg.on_disconnect = on_disconnect;
  cfg.on_ping = on_ping;
  cfg.ping_interval_ms = 5000;
  cfg.on_checkin = on_checkin;

  cpool_t *pool;
  cpool_error_info err;
  if (cpool_open(&pool, &cfg, &err) != 0) {
    fprintf(stderr, "cpool_open: %s\n", err.message);
    return 1;
  }

  long errors = 0;
  cpool_conn_t *conn;
  if (cpool_checkout(pool, &conn, TIMEOUT_MS, NULL) == 0) {
    int ms = rcvtimeo_ms(cpool_conn_fd(conn));
    printf("SO_RCVTIMEO after checkout: %d ms (redisSetTimeout: %d)\n", ms,
           TIMEOUT_MS);
    errors += ms < TIMEOUT_MS - 10 || ms > TIMEOUT_MS + 10;
    cpool_checkin(pool, conn, CPOOL_CONN_OK);
  }

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

  if (stale_reply_check(pool) != 0)
    errors++;
  cpool_stats_t st;
  cpool_stats(pool, &st);
  printf("%d threads x %d ops: %ld errors; connects %llu, "
         "validation_failures %llu, broken_checkins %llu\n",
         threads, ops, errors, (unsigned long long)st.connects,
         (unsigned long long)st.validation_failures,
         (unsigned long long)st.broken_checkins);
  if (st.validation_failures != 1)
    errors++;
  cpool_close(pool, CPOOL_WAIT_FOREVER);
  return errors == 0 ? 0 : 1;
}
