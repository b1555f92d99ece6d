/*
 * redis_client: a small Redis client over a cpool pool.  Many threads share
 * a few connections and do SET then GET of their own keys, checking every
 * reply.
 *
 *   redis_client --port PORT [--host HOST] [--threads N] [--ops N]
 *                [--pool N] [--timeout-ms MS]
 *
 * What it shows:
 * - per-connection state: on_connect allocates the connection's reply
 *   buffer and names the client (a handshake, like AUTH or SELECT);
 *   on_disconnect frees it; callers reach it with cpool_conn_data();
 * - on_ping keeping idle connections honest with PING;
 * - commands sent as RESP arrays, replies parsed with bounds checks
 *   (resp.c), and every I/O bounded by a timeout;
 * - a Redis error reply is an answer, the connection stays good; an I/O
 *   error, a timeout or garbage means CPOOL_CONN_BROKEN at checkin, and the
 *   slot's worker reconnects it;
 * - checkout errors told apart: busy (ETIMEDOUT) vs backend down (ECLOSED,
 *   with the reason and when the next attempt is due).
 * Exit status 0 when every reply was the expected one.
 */
#define _POSIX_C_SOURCE 200809L

#include "resp.h"
#include "util.h"

#include <cpool.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { REPLY_MAX = 64 * 1024, REQUEST_MAX = 1024, MAX_THREADS = 1024 };

typedef struct options {
  const char *host;
  int port;
  int threads;
  int ops;
  int pool_size;
  int timeout_ms;
} options;

typedef struct worker {
  cpool_t *pool;
  const options *opt;
  int id;
  pthread_t thread;
  long errors;
} worker;

/* What on_connect attaches to a connection: its reply buffer. */
typedef struct redis_conn {
  resp_buf in;
  char storage[REPLY_MAX];
} redis_conn;

/* One request on a connection, one reply back.  *reply points into the
 * connection's buffer: use it before checkin.  Returns 0, or a RESP_E* code
 * after which the connection must be checked in as broken. */
static long redis_call(int fd, redis_conn *rc, const char *req, size_t len,
                       int timeout_ms, resp_value *reply) {
  long n;

  rc->in.len = 0; /* a good connection has nothing left over */
  n = resp_write(fd, req, len, timeout_ms);
  if (n == 0)
    n = resp_read(fd, &rc->in, 0, timeout_ms);
  if (n < 0)
    return n;
  /* Bytes after the reply would be a desync: the next reply would be read
   * as this one's. */
  if ((size_t)n != rc->in.len || resp_parse(rc->in.data, (size_t)n, reply))
    return RESP_EPROTO;
  return 0;
}

static long redis_call_argv(int fd, redis_conn *rc, int argc,
                            const char *const *argv, int timeout_ms,
                            resp_value *reply) {
  char req[REQUEST_MAX];
  size_t lens[8];
  long len;

  if (argc > 8)
    return RESP_ETOOBIG;
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  len = resp_format(req, sizeof req, argc, argv, lens);
  if (len < 0)
    return RESP_ETOOBIG;
  return redis_call(fd, rc, req, (size_t)len, timeout_ms, reply);
}

static int reply_is(const resp_value *v, char type, const char *text) {
  size_t len = strlen(text);
  return v->type == type && !v->is_null && v->len == len &&
         memcmp(v->str, text, len) == 0;
}

/* Callbacks: they run on the slot's worker thread. */

static int on_connect(int fd, void **data, void *arg) {
  static const char *const setname[] = {"CLIENT", "SETNAME", "cpool-example"};
  const options *opt = arg;
  redis_conn *rc = malloc(sizeof *rc);
  resp_value reply;

  if (rc == NULL)
    return -1; /* errno is ENOMEM */
  rc->in = (resp_buf){.data = rc->storage, .cap = sizeof rc->storage};
  *data = rc; /* on_disconnect frees it, even if the handshake fails */
  if (redis_call_argv(fd, rc, 3, setname, opt->timeout_ms, &reply) != 0 ||
      !reply_is(&reply, '+', "OK")) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

static void on_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  free(data);
}

static int on_ping(int fd, void *data, void *arg) {
  static const char *const ping[] = {"PING"};
  const options *opt = arg;
  resp_value reply;

  if (redis_call_argv(fd, data, 1, ping, opt->timeout_ms, &reply) != 0)
    return -1;
  return reply_is(&reply, '+', "PONG") ? 0 : -1;
}

static void on_event(int slot, cpool_event_type event,
                     const cpool_error_info *err, void *arg) {
  (void)arg;
  if (event == CPOOL_EVENT_CONNECT_FAILED || event == CPOOL_EVENT_DISCONNECTED)
    fprintf(stderr, "redis_client: slot %d %s: %s\n", slot,
            cpool_event_name(event), err->message[0] ? err->message : "-");
}

/* One command through the pool: checkout, call, check the reply, checkin.
 * Returns 0 when the reply is the expected one. */
static int pool_command(worker *w, int argc, const char *const *argv,
                        char want_type, const char *want) {
  cpool_conn_t *conn;
  cpool_error_info why;
  resp_value reply;
  long io;
  int rc = cpool_checkout(w->pool, &conn, w->opt->timeout_ms, &why);

  if (rc == CPOOL_ECLOSED) {
    fprintf(stderr, "redis_client: backend down: %s (next try in %lld ms)\n",
            why.message, (long long)why.retry_in_ms);
    return -1;
  }
  if (rc != 0) {
    fprintf(stderr, "redis_client: checkout: %s\n", cpool_err_name(rc));
    return -1;
  }
  io = redis_call_argv(cpool_conn_fd(conn), cpool_conn_data(conn), argc, argv,
                       w->opt->timeout_ms, &reply);
  if (io == 0 && !reply_is(&reply, want_type, want)) {
    fprintf(stderr, "redis_client: %s %s: unexpected reply '%c%.*s'\n", argv[0],
            argv[1], reply.type, (int)(reply.len > 80 ? 80 : reply.len),
            reply.str ? reply.str : "");
    rc = -1;
  }
  /* A Redis error is an answer; an I/O or protocol error breaks the conn. */
  cpool_checkin(w->pool, conn, io == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  if (io != 0) {
    fprintf(stderr, "redis_client: %s: %s\n", argv[0], resp_strerror(io));
    rc = -1;
  }
  return rc;
}

static void *worker_main(void *arg) {
  worker *w = arg;

  for (int i = 0; i < w->opt->ops; i++) {
    char key[64], value[64];
    snprintf(key, sizeof key, "cpool-example:%d:%d", w->id, i);
    snprintf(value, sizeof value, "value %d of thread %d", i, w->id);
    const char *set[] = {"SET", key, value}, *get[] = {"GET", key};
    if (pool_command(w, 3, set, '+', "OK") != 0 ||
        pool_command(w, 2, get, '$', value) != 0)
      w->errors++;
  }
  return NULL;
}

static void parse_options(int argc, char **argv, options *opt) {
  static const struct option longopts[] = {
      {"host", required_argument, NULL, 'h'},
      {"port", required_argument, NULL, 'p'},
      {"threads", required_argument, NULL, 't'},
      {"ops", required_argument, NULL, 'n'},
      {"pool", required_argument, NULL, 'c'},
      {"timeout-ms", required_argument, NULL, 'T'},
      {NULL, 0, NULL, 0}};
  int c;

  *opt = (options){.host = "127.0.0.1",
                   .threads = 8,
                   .ops = 1000,
                   .pool_size = 4,
                   .timeout_ms = 2000};
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      opt->host = optarg;
      break;
    case 'p':
      opt->port = int_arg("port", optarg, 1, 65535);
      break;
    case 't':
      opt->threads = int_arg("threads", optarg, 1, MAX_THREADS);
      break;
    case 'n':
      opt->ops = int_arg("ops", optarg, 0, 100000000);
      break;
    case 'c':
      opt->pool_size = int_arg("pool", optarg, 1, CPOOL_MAX_SIZE);
      break;
    case 'T':
      opt->timeout_ms = int_arg("timeout-ms", optarg, 1, 3600000);
      break;
    default:
      exit(2);
    }
  }
  if (opt->port == 0 || optind != argc) {
    fprintf(stderr, "usage: redis_client --port PORT [--host HOST] "
                    "[--threads N] [--ops N] [--pool N] [--timeout-ms MS]\n");
    exit(2);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  static worker workers[MAX_THREADS];
  options opt;
  cpool_config cfg;
  cpool_error_info err;
  cpool_stats_t st;
  cpool_t *pool;
  long errors = 0;
  double start;
  int rc;

  parse_options(argc, argv, &opt);
  cpool_config_init(&cfg);
  cfg.host = opt.host;
  cfg.port = opt.port;
  cfg.size = opt.pool_size;
  cfg.ping_interval_ms = 5000;
  cfg.on_connect = on_connect;
  cfg.on_disconnect = on_disconnect;
  cfg.on_ping = on_ping;
  cfg.on_event = on_event;
  cfg.cb_arg = &opt;
  /* Async start (the default): the first checkouts wait for the slots to
   * connect, up to their timeout. */
  rc = cpool_open(&pool, &cfg, &err);
  if (rc != 0) {
    fprintf(stderr, "redis_client: cpool_open: %s: %s\n", cpool_err_name(rc),
            err.message);
    return 1;
  }

  start = now_s();
  for (int i = 0; i < opt.threads; i++) {
    workers[i] = (worker){.pool = pool, .opt = &opt, .id = i};
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) {
      fprintf(stderr, "redis_client: pthread_create failed\n");
      exit(1);
    }
  }
  for (int i = 0; i < opt.threads; i++) {
    pthread_join(workers[i].thread, NULL);
    errors += workers[i].errors;
  }
  double elapsed = now_s() - start;
  long commands = 2L * opt.threads * opt.ops;

  cpool_stats(pool, &st);
  printf("redis_client: %d threads x %d SET+GET on %d connections: "
         "%ld commands in %.2f s (%.0f/s), %ld errors\n",
         opt.threads, opt.ops, opt.pool_size, commands, elapsed,
         elapsed > 0 ? commands / elapsed : 0.0, errors);
  printf("redis_client: pool: %llu checkouts, %llu waited, %llu connects, "
         "%llu broken checkins\n",
         (unsigned long long)st.checkouts, (unsigned long long)st.waits,
         (unsigned long long)st.connects,
         (unsigned long long)st.broken_checkins);
  rc = cpool_close(pool, 1000);
  if (rc != 0)
    fprintf(stderr, "redis_client: cpool_close: %s\n", cpool_strerror(rc));
  return errors == 0 && rc == 0 ? 0 : 1;
}
