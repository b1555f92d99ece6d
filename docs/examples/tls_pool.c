/*
 * tls_pool: Redis over TLS (OpenSSL) on pooled sockets, the server's
 * certificate verified.
 *
 *   tls_pool --port PORT --ca CA_FILE [--host-name NAME] [--strict]
 *
 * What it shows:
 * - on_connect runs the TLS handshake on the pool's socket (SSL_connect),
 *   verifying the server's certificate against CA_FILE and its name
 *   (SSL_VERIFY_PEER, SSL_set1_host); the SSL object is the connection's
 *   data, freed by on_disconnect; a handshake that fails (a certificate
 *   that does not verify) fails the connect, with the reason printed;
 * - TLS 1.3 session tickets arrive after SSL_connect returns, and sit
 *   unread on an idle socket until the first SSL_read: the default
 *   (strict) idle check would judge every such slot dead once idle past
 *   idle_check_ms, and reconnect it.  CPOOL_IDLE_CHECK_EOF lets bytes
 *   wait and still finds a peer's FIN.  --strict shows the difference;
 * - io_timeout_ms bounds every SSL_read / SSL_write of callers;
 * - on_checkin refuses a connection with bytes buffered unread (here or
 *   in OpenSSL: SSL_pending).
 * Exit status 0 when every reply was the expected one (and, without
 * --strict, no slot was judged dead).
 */
#define _POSIX_C_SOURCE 200809L

#include <cpool.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define TIMEOUT_MS 2000
#define IDLE_CHECK_MS 100

typedef struct tls_conn {
  SSL *ssl;
  char in[1024]; /* read, not yet consumed */
  size_t len;
} tls_conn;

typedef struct tls_setup {
  SSL_CTX *ctx;
  const char *host_name;
} tls_setup;

static int on_connect(int fd, void **data, void *arg) {
  const tls_setup *t = arg;
  tls_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -1;
  *data = c; /* on_disconnect frees it, even if we fail below */
  c->ssl = SSL_new(t->ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
      SSL_set_tlsext_host_name(c->ssl, t->host_name) != 1 ||
      SSL_set1_host(c->ssl, t->host_name) != 1)
    return -1;
  if (SSL_connect(c->ssl) != 1) {
    long v = SSL_get_verify_result(c->ssl);
    fprintf(stderr, "TLS handshake failed: %s%s%s\n",
            ERR_reason_error_string(ERR_get_error()),
            v != X509_V_OK ? ": " : "",
            v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
    return -1;
  }
  return 0;
}

static void on_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  tls_conn *c = data;
  if (c == NULL)
    return;
  if (c->ssl != NULL) {
    SSL_shutdown(c->ssl); /* close_notify; cpool closes the socket */
    SSL_free(c->ssl);
  }
  free(c);
}

static int on_checkin(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  const tls_conn *c = data;
  return c->len != 0 || SSL_pending(c->ssl) > 0;
}

/* One line of the reply, without CRLF, into out.  0, or -1. */
static int read_line(tls_conn *c, char *out, size_t outlen) {
  for (;;) {
    char *nl = memchr(c->in, '\n', c->len);
    if (nl != NULL) {
      size_t n = (size_t)(nl - c->in) + 1;
      snprintf(out, outlen, "%.*s", (int)(n >= 2 ? n - 2 : 0), c->in);
      memmove(c->in, c->in + n, c->len - n);
      c->len -= n;
      return 0;
    }
    if (c->len == sizeof c->in)
      return -1;
    int r = SSL_read(c->ssl, c->in + c->len, (int)(sizeof c->in - c->len));
    if (r <= 0)
      return -1; /* an error, a timeout (io_timeout_ms) or close_notify */
    c->len += (size_t)r;
  }
}

/* Sends a RESP command of argc strings; the first reply line in out. */
static int command(tls_conn *c, char *out, size_t outlen, int argc,
                   const char **argv) {
  char req[512];
  int n = snprintf(req, sizeof req, "*%d\r\n", argc);
  for (int i = 0; i < argc && n > 0 && (size_t)n < sizeof req; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "$%zu\r\n%s\r\n",
                  strlen(argv[i]), argv[i]);
  if (n <= 0 || (size_t)n >= sizeof req || SSL_write(c->ssl, req, n) != n)
    return -1;
  return read_line(c, out, outlen);
}

/* PING, SET, GET on one checked-out connection; 0 if every reply was
 * right, -1 if not (the connection is then broken). */
static int exchange(tls_conn *c, int i) {
  char key[32], val[32], line[128];
  snprintf(key, sizeof key, "cpool-tls:%d", i);
  snprintf(val, sizeof val, "value %d", i);
  const char *ping[] = {"PING"}, *set[] = {"SET", key, val},
             *get[] = {"GET", key};
  if (command(c, line, sizeof line, 1, ping) != 0 || strcmp(line, "+PONG"))
    return -1;
  if (command(c, line, sizeof line, 3, set) != 0 || strcmp(line, "+OK"))
    return -1;
  char want[32]; /* "$" and a size_t */
  snprintf(want, sizeof want, "$%zu", strlen(val));
  if (command(c, line, sizeof line, 2, get) != 0 || strcmp(line, want) ||
      read_line(c, line, sizeof line) != 0 || strcmp(line, val))
    return -1;
  return 0;
}

/* OpenSSL 3.0 fills some caches of the trusted certificates lazily, on
 * the first verification, and ThreadSanitizer reports the slots' first
 * handshakes racing on them.  One verification of the CA against its
 * own store, before the pool starts, fills them. */
static void warm_store(SSL_CTX *ctx, const char *ca_file) {
  FILE *f = fopen(ca_file, "r");
  X509 *ca = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  X509_STORE_CTX *v = X509_STORE_CTX_new();
  if (ca != NULL && v != NULL &&
      X509_STORE_CTX_init(v, SSL_CTX_get_cert_store(ctx), ca, NULL) == 1)
    X509_verify_cert(v);
  X509_STORE_CTX_free(v);
  X509_free(ca);
  if (f != NULL)
    fclose(f);
}

static SSL_CTX *client_ctx(const char *ca_file) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
    fprintf(stderr, "cannot load CA file %s\n", ca_file);
    SSL_CTX_free(ctx);
    return NULL;
  }
  warm_store(ctx, ca_file);
  return ctx;
}

int main(int argc, char **argv) {
  int port = 0, strict = 0;
  const char *ca = NULL, *name = "localhost";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--strict") == 0)
      strict = 1;
    else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
      port = int_arg("--port", argv[++i], 1, 65535);
    else if (i + 1 < argc && strcmp(argv[i], "--ca") == 0)
      ca = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--host-name") == 0)
      name = argv[++i];
  }
  if (port == 0 || ca == NULL) {
    fprintf(stderr, "usage: tls_pool --port PORT --ca CA_FILE "
                    "[--host-name NAME] [--strict]\n");
    return 2;
  }
  tls_setup tls = {.ctx = client_ctx(ca), .host_name = name};
  if (tls.ctx == NULL)
    return 1;

  cpool_config cfg;
  cpool_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = port;
  cfg.size = 2;
  cfg.start = CPOOL_START_SYNC;
  cfg.on_connect = on_connect;
  cfg.on_disconnect = on_disconnect;
  cfg.on_checkin = on_checkin;
  cfg.cb_arg = &tls;
  cfg.io_timeout_ms = TIMEOUT_MS;
  cfg.idle_check_ms = IDLE_CHECK_MS;
  cfg.idle_check_mode = strict ? CPOOL_IDLE_CHECK_STRICT : CPOOL_IDLE_CHECK_EOF;

  cpool_t *pool;
  cpool_error_info err;
  if (cpool_open(&pool, &cfg, &err) != 0) {
    fprintf(stderr, "cpool_open: %s\n", err.message);
    SSL_CTX_free(tls.ctx);
    return 1;
  }
  /* Both slots idle past the idle check, their tickets unread: what a
   * quiet service sees between bursts. */
  nanosleep(&(struct timespec){0, 3 * IDLE_CHECK_MS * 1000000L}, NULL);

  int errors = 0;
  for (int round = 0; round < 20; round++) {
    cpool_conn_t *conn[2];
    int got = 0;
    for (; got < 2; got++) {
      int rc = cpool_checkout(pool, &conn[got], TIMEOUT_MS, NULL);
      if (rc != 0) {
        fprintf(stderr, "checkout: %s\n", cpool_strerror(rc));
        errors++;
        break;
      }
    }
    for (int k = 0; k < got; k++) {
      int bad = exchange(cpool_conn_data(conn[k]), round * 2 + k) != 0;
      errors += bad;
      cpool_checkin(pool, conn[k], bad ? CPOOL_CONN_BROKEN : CPOOL_CONN_OK);
    }
  }
  cpool_stats_t st;
  cpool_stats(pool, &st);
  printf("%s idle check: %d errors, connects %llu, idle_check_failures %llu, "
         "validation_failures %llu\n",
         strict ? "strict" : "EOF", errors, (unsigned long long)st.connects,
         (unsigned long long)st.idle_check_failures,
         (unsigned long long)st.validation_failures);
  if (!strict && st.idle_check_failures != 0)
    errors++;
  cpool_close(pool, CPOOL_WAIT_FOREVER);
  SSL_CTX_free(tls.ctx);
  return errors == 0 ? 0 : 1;
}
