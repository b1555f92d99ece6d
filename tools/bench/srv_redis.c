#include "srv_redis.h"

#include <bsd/string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHARDS 64
#define SHARD_BUCKETS 256

int srvbuf_append(srvbuf *b, const void *data, size_t len) {
  if (b->cap - b->len < len) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < len)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
      return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  return 0;
}

void srvbuf_free(srvbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* --- the map ---------------------------------------------------------------
 */

struct kv_entry {
  struct kv_entry *next;
  char *val;
  size_t vlen, klen;
  char key[];
};

struct shard {
  pthread_mutex_t mu;
  struct kv_entry *buckets[SHARD_BUCKETS];
};

struct kv_map {
  struct shard shards[SHARDS];
  atomic_int keys;
};

kv_map *kv_new(void) {
  kv_map *kv = calloc(1, sizeof *kv);
  if (kv == NULL)
    return NULL;
  for (int i = 0; i < SHARDS; i++)
    pthread_mutex_init(&kv->shards[i].mu, NULL);
  return kv;
}

void kv_free(kv_map *kv) {
  if (kv == NULL)
    return;
  for (int i = 0; i < SHARDS; i++) {
    for (int b = 0; b < SHARD_BUCKETS; b++) {
      struct kv_entry *e = kv->shards[i].buckets[b];
      while (e != NULL) {
        struct kv_entry *next = e->next;
        free(e->val);
        free(e);
        e = next;
      }
    }
    pthread_mutex_destroy(&kv->shards[i].mu);
  }
  free(kv);
}

static uint64_t fnv1a(const char *p, size_t len) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)p[i]) * UINT64_C(1099511628211);
  return h;
}

static struct kv_entry **kv_find(struct shard *s, uint64_t h, srv_arg k) {
  struct kv_entry **pp = &s->buckets[(h >> 8) % SHARD_BUCKETS];
  while (*pp != NULL &&
         ((*pp)->klen != k.len || memcmp((*pp)->key, k.p, k.len) != 0))
    pp = &(*pp)->next;
  return pp;
}

/* Appends the GET reply to out.  -1 when out of memory. */
static int kv_get(kv_map *kv, srv_arg k, srvbuf *out) {
  uint64_t h = fnv1a(k.p, k.len);
  struct shard *s = &kv->shards[h % SHARDS];
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  struct kv_entry *e = *kv_find(s, h, k);
  if (e == NULL) {
    rc = srvbuf_append(out, "$-1\r\n", 5);
  } else {
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "$%zu\r\n", e->vlen);
    if (srvbuf_append(out, hdr, (size_t)n) ||
        srvbuf_append(out, e->val, e->vlen) || srvbuf_append(out, "\r\n", 2))
      rc = -1;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* 0, -1 out of memory, -2 too many keys. */
static int kv_set(kv_map *kv, srv_arg k, srv_arg v) {
  uint64_t h = fnv1a(k.p, k.len);
  struct shard *s = &kv->shards[h % SHARDS];
  char *val = malloc(v.len ? v.len : 1);
  if (val == NULL)
    return -1;
  memcpy(val, v.p, v.len);
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  struct kv_entry **pp = kv_find(s, h, k);
  if (*pp != NULL) {
    free((*pp)->val);
    (*pp)->val = val;
    (*pp)->vlen = v.len;
    val = NULL;
  } else if (atomic_fetch_add(&kv->keys, 1) >= SRV_MAX_KEYS) {
    atomic_fetch_sub(&kv->keys, 1);
    rc = -2;
  } else {
    struct kv_entry *e = malloc(sizeof *e + k.len);
    if (e == NULL) {
      atomic_fetch_sub(&kv->keys, 1);
      rc = -1;
    } else {
      memcpy(e->key, k.p, k.len);
      e->klen = k.len;
      e->val = val;
      e->vlen = v.len;
      e->next = NULL;
      *pp = e;
      val = NULL;
    }
  }
  pthread_mutex_unlock(&s->mu);
  free(val);
  return rc;
}

/* --- parsing ---------------------------------------------------------------
 */

/* A non-negative decimal of at most 9 digits in p[0..len). */
static long small_uint(const char *p, size_t len) {
  if (len == 0 || len > 9)
    return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

/* The line at in[pos..): its "\r\n" offset, 0 if not there yet, -1 if over
 * max bytes. */
static long find_crlf(const char *in, size_t len, size_t pos, size_t max) {
  size_t limit = len < pos + max ? len : pos + max;
  for (size_t i = pos; i + 1 < limit; i++)
    if (in[i] == '\r' && in[i + 1] == '\n')
      return (long)i;
  return len - pos >= max ? -1 : 0;
}

static long parse_array(const char *in, size_t len, srv_arg *argv, int *argc) {
  long end = find_crlf(in, len, 1, 16);
  if (end <= 0)
    return end;
  long n = small_uint(in + 1, (size_t)end - 1);
  if (n < 1 || n > SRV_MAX_ARGS)
    return -1;
  size_t pos = (size_t)end + 2;
  for (long i = 0; i < n; i++) {
    if (pos >= len)
      return 0;
    if (in[pos] != '$')
      return -1;
    end = find_crlf(in, len, pos + 1, 16);
    if (end <= 0)
      return end;
    long blen = small_uint(in + pos + 1, (size_t)end - pos - 1);
    if (blen < 0 || (unsigned long)blen > SRV_MAX_BULK)
      return -1;
    pos = (size_t)end + 2;
    if (len - pos < (size_t)blen + 2)
      return 0;
    if (in[pos + blen] != '\r' || in[pos + blen + 1] != '\n')
      return -1;
    argv[i].p = in + pos;
    argv[i].len = (size_t)blen;
    pos += (size_t)blen + 2;
  }
  *argc = (int)n;
  return (long)pos;
}

static long parse_inline(const char *in, size_t len, srv_arg *argv, int *argc) {
  const char *nl =
      memchr(in, '\n', len < SRV_MAX_INLINE ? len : SRV_MAX_INLINE);
  if (nl == NULL)
    return len >= SRV_MAX_INLINE ? -1 : 0;
  size_t end = (size_t)(nl - in);
  if (end > 0 && in[end - 1] == '\r')
    end--;
  int n = 0;
  size_t i = 0;
  while (i < end) {
    while (i < end && (in[i] == ' ' || in[i] == '\t'))
      i++;
    if (i == end)
      break;
    if (n == SRV_MAX_ARGS)
      return -1;
    size_t start = i;
    while (i < end && in[i] != ' ' && in[i] != '\t')
      i++;
    argv[n].p = in + start;
    argv[n].len = i - start;
    n++;
  }
  *argc = n;
  return (long)(nl - in) + 1;
}

long srv_parse_command(const char *in, size_t len, srv_arg *argv, int *argc) {
  *argc = 0;
  if (len == 0)
    return 0;
  return in[0] == '*' ? parse_array(in, len, argv, argc)
                      : parse_inline(in, len, argv, argc);
}

/* --- commands --------------------------------------------------------------
 */

static bool is_cmd(srv_arg a, const char *name) {
  return a.len == strlen(name) && strncasecmp(a.p, name, a.len) == 0;
}

static int reply_bulk(srvbuf *out, srv_arg a) {
  char hdr[32];
  int n = snprintf(hdr, sizeof hdr, "$%zu\r\n", a.len);
  return srvbuf_append(out, hdr, (size_t)n) || srvbuf_append(out, a.p, a.len) ||
                 srvbuf_append(out, "\r\n", 2)
             ? -1
             : 0;
}

static int reply_str(srvbuf *out, const char *s) {
  return srvbuf_append(out, s, strlen(s));
}

static int reply_unknown(srvbuf *out, srv_arg name) {
  char msg[96], shown[33];
  size_t n = name.len < 32 ? name.len : 32;
  for (size_t i = 0; i < n; i++) /* keep the reply one clean line */
    shown[i] = name.p[i] >= 0x20 && name.p[i] < 0x7f ? name.p[i] : '?';
  shown[n] = '\0';
  snprintf(msg, sizeof msg, "-ERR unknown command '%s'\r\n", shown);
  return reply_str(out, msg);
}

static int wrong_args(srvbuf *out) {
  return reply_str(out, "-ERR wrong number of arguments\r\n");
}

/* One command.  -1 when out of memory. */
static int run_command(kv_map *kv, srv_arg *argv, int argc, srvbuf *out,
                       bool *close_after) {
  if (is_cmd(argv[0], "PING"))
    return argc == 1   ? reply_str(out, "+PONG\r\n")
           : argc == 2 ? reply_bulk(out, argv[1])
                       : wrong_args(out);
  if (is_cmd(argv[0], "GET"))
    return argc == 2 ? kv_get(kv, argv[1], out) : wrong_args(out);
  if (is_cmd(argv[0], "SET")) {
    if (argc != 3)
      return wrong_args(out);
    int rc = kv_set(kv, argv[1], argv[2]);
    return rc == 0    ? reply_str(out, "+OK\r\n")
           : rc == -2 ? reply_str(out, "-ERR too many keys\r\n")
                      : -1;
  }
  if (is_cmd(argv[0], "ECHO"))
    return argc == 2 ? reply_bulk(out, argv[1]) : wrong_args(out);
  if (is_cmd(argv[0], "COMMAND"))
    return reply_str(out, "*0\r\n");
  if (is_cmd(argv[0], "QUIT")) {
    *close_after = true;
    return reply_str(out, "+OK\r\n");
  }
  return reply_unknown(out, argv[0]);
}

long redis_process(kv_map *kv, const char *in, size_t len, srvbuf *out,
                   bool *close_after) {
  size_t pos = 0;
  srv_arg argv[SRV_MAX_ARGS];
  while (pos < len && out->len < SRV_OUT_SOFT_MAX && !*close_after) {
    int argc = 0;
    long n = srv_parse_command(in + pos, len - pos, argv, &argc);
    if (n == 0)
      break;
    if (n < 0) {
      *close_after = true;
      if (reply_str(out, "-ERR Protocol error\r\n"))
        return -1;
      return (long)len;
    }
    pos += (size_t)n;
    if (argc > 0 && run_command(kv, argv, argc, out, close_after))
      return -1;
  }
  return (long)pos;
}
