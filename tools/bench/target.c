#include "target.h"

#include <bsd/string.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

void target_name(target_t *t, const bench_args *a) {
  if (a->endpoints != NULL)
    snprintf(t->name, sizeof t->name, "%s", a->endpoints);
  else if (a->unix_path != NULL)
    snprintf(t->name, sizeof t->name, "unix:%s", a->unix_path);
  else if (strchr(a->host, ':') != NULL)
    snprintf(t->name, sizeof t->name, "[%s]:%d", a->host, a->port);
  else
    snprintf(t->name, sizeof t->name, "%s:%d", a->host, a->port);
}

int target_connect(const target_t *t) {
  int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  /* SO_SNDTIMEO bounds connect() too, on Linux. */
  if (set_io_timeout(fd, IO_TIMEOUT_MS) != 0 ||
      (t->tcp &&
       setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0))
    goto fail;
  while (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) != 0)
    if (errno != EINTR)
      goto fail;
  return fd;
fail:;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

static int resolve_unix(target_t *t, const char *path) {
  struct sockaddr_un *a = (struct sockaddr_un *)&t->addr;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  strlcpy(a->sun_path, path, sizeof a->sun_path);
  t->addrlen = sizeof *a;
  t->tcp = false;
  return 0;
}

int target_resolve(target_t *t, const bench_args *a, char *err, size_t errlen) {
  target_name(t, a);
  if (a->endpoints != NULL)
    return 0; /* the pool resolves each one, on every connect */
  if (a->unix_path != NULL) {
    resolve_unix(t, a->unix_path);
    int fd = target_connect(t);
    if (fd < 0) {
      snprintf(err, errlen, "cannot connect to %s: %s", t->name,
               strerror(errno));
      return -1;
    }
    close(fd);
    return 0;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM},
                  *res = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", a->port);
  int rc = getaddrinfo(a->host, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", a->host, gai_strerror(rc));
    return -1;
  }
  int saved = 0;
  t->tcp = true;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->addrlen = ai->ai_addrlen;
    int fd = target_connect(t);
    if (fd >= 0) {
      close(fd);
      freeaddrinfo(res);
      return 0;
    }
    saved = errno;
  }
  freeaddrinfo(res);
  snprintf(err, errlen, "cannot connect to %s: %s", t->name, strerror(saved));
  return -1;
}

static int on_connect(int fd, void **data, void *arg) {
  (void)fd;
  (void)arg;
  conn_state *cs = calloc(1, sizeof *cs);
  if (cs == NULL) {
    errno = ENOMEM;
    return -1;
  }
  *data = cs;
  return 0;
}

static void on_disconnect(int fd, void *data, void *arg) {
  (void)fd;
  (void)arg;
  free(data);
}

int target_open_pool(cpool_t **pool, const bench_args *a, char *err,
                     size_t errlen) {
  cpool_config cfg;
  cpool_error_info why;
  cpool_config_init(&cfg);
  cfg.host = a->unix_path ? NULL : a->host;
  cfg.port = a->unix_path ? 0 : a->port;
  cfg.unix_path = a->unix_path;
  if (a->endpoints != NULL) {
    cfg.host = NULL;
    cfg.port = 0;
    cfg.endpoints = a->endpoints;
  }
  cfg.size = a->pool;
  cfg.start = CPOOL_START_SYNC; /* connecting is not part of the run */
  cfg.connect_timeout_ms = 2000;
  cfg.backoff_min_ms = 100; /* reconnects visible within a run */
  cfg.backoff_max_ms = 2000;
  cfg.handoff_after_us = a->handoff_us;
  cfg.handoff_max_us = a->handoff_max_us;
  cfg.on_connect = on_connect;
  cfg.on_disconnect = on_disconnect;
  memset(&why, 0, sizeof why);
  int rc = cpool_open(pool, &cfg, &why);
  if (rc != 0)
    snprintf(err, errlen, "cannot open the pool: %s (%s)",
             why.message[0] ? why.message : cpool_strerror(rc),
             cpool_err_name(rc));
  return rc;
}

/* The kind that stores the keys a run reads, or -1 if it reads none. */
static int fill_kind(const bench_args *a) {
  bool mc = a->protocol == PROTO_MC_GET || a->protocol == PROTO_MC_SET;
  bool reads = a->protocol == PROTO_GET || a->protocol == PROTO_MC_GET ||
               a->ratio_get > 0;
  if (!reads || a->no_io || a->protocol == PROTO_COMMAND)
    return -1;
  return mc ? PROTO_MC_SET : PROTO_SET;
}

bool target_needs_keys(const bench_args *a) {
  return fill_kind(a) >= 0;
}

int target_fill_keys(int fd, const bench_args *a, char *err, size_t errlen) {
  proto_ctx p;
  unsigned keys = (unsigned)a->keys, batch = keys < 256 ? keys : 256;
  proto_opts o = {.kind = (proto_kind)fill_kind(a),
                  .size = (size_t)a->size,
                  .keys = keys,
                  .pipeline = batch};
  if (proto_init_opts(&p, &o) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int rc = 0;
  for (unsigned k = 0; k < keys && rc == 0; k += batch) {
    proto_result r = proto_roundtrip(&p, fd);
    if (r != PROTO_OK) {
      snprintf(err, errlen, "cannot store the %u keys that the run reads: %s",
               keys,
               r == PROTO_EIO ? (p.err ? strerror(p.err) : "connection closed")
               : r == PROTO_ESERVER ? "the server answered with an error"
                                    : "unexpected reply to a set");
      rc = -1;
    }
  }
  proto_free(&p);
  return rc;
}
