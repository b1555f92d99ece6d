#include "proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MIN_KEY_DIGITS 4
#define CMD_MAX_ELEMS (1L << 20)
#define CMD_MAX_DEPTH 8
#define RECV_CHUNK (64 * 1024) /* the reply buffer holds this much at least */

/* --- requests ----------------------------------------------------------- */

static void fill_value(char *v, size_t size) {
  for (size_t i = 0; i < size; i++)
    v[i] = (char)('a' + (i * 7) % 26);
}

static void write_key(char *at, unsigned k, unsigned digits) {
  for (int i = (int)digits - 1; i >= 0; i--) {
    at[i] = (char)('0' + k % 10);
    k /= 10;
  }
}

/* An appender that only counts once the buffer is full. */
struct sb {
  char *p;
  size_t len, cap;
};

static void sb_add(struct sb *b, const void *s, size_t n) {
  if (b->len + n <= b->cap)
    memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void sb_fmt(struct sb *b, const char *fmt, size_t n) {
  char tmp[32];
  int k = snprintf(tmp, sizeof tmp, fmt, n);
  sb_add(b, tmp, (size_t)k);
}

/* The key "cpool-bench:0000": its digits' offset in b. */
static size_t sb_key(struct sb *b, unsigned digits) {
  sb_add(b, PROTO_KEY_PREFIX, strlen(PROTO_KEY_PREFIX));
  size_t off = b->len;
  for (unsigned i = 0; i < digits; i++)
    sb_add(b, "0", 1);
  return off;
}

static void sb_bulk(struct sb *b, const char *s, size_t n) {
  sb_fmt(b, "$%zu\r\n", n);
  sb_add(b, s, n);
  sb_add(b, "\r\n", 2);
}

static void build_command(const proto_ctx *p, struct sb *b, const char *cmd) {
  char words[4096], *argv[ARGS_MAX_CMD_ARGS], err[128];
  size_t lens[ARGS_MAX_CMD_ARGS];
  int n = args_split_command(cmd, words, sizeof words, argv, lens,
                             ARGS_MAX_CMD_ARGS, err, sizeof err);
  (void)p;
  if (n < 0) {
    b->len = SIZE_MAX / 2; /* over any bound: proto_init fails */
    return;
  }
  sb_fmt(b, "*%zu\r\n", (size_t)n);
  for (int i = 0; i < n; i++)
    sb_bulk(b, argv[i], lens[i]);
}

/* Write the request of kind into b; returns the key digits' offset, 0 for
 * a request without a key. */
static size_t build_one(const proto_ctx *p, proto_kind kind, struct sb *b,
                        const char *cmd) {
  size_t klen = strlen(PROTO_KEY_PREFIX) + p->key_digits, off = 0;
  switch (kind) {
  case PROTO_PING:
    sb_add(b, "PING\r\n", 6);
    return 0;
  case PROTO_ECHO:
    sb_add(b, p->value, p->size);
    return 0;
  case PROTO_COMMAND:
    build_command(p, b, cmd);
    return 0;
  case PROTO_GET:
  case PROTO_SET:
    sb_fmt(b, "*%zu\r\n", kind == PROTO_SET ? 3 : 2);
    sb_bulk(b, kind == PROTO_SET ? "SET" : "GET", 3);
    sb_fmt(b, "$%zu\r\n", klen);
    off = sb_key(b, p->key_digits);
    sb_add(b, "\r\n", 2);
    if (kind == PROTO_SET)
      sb_bulk(b, p->value, p->size);
    return off;
  case PROTO_MC_GET:
  case PROTO_MC_SET:
    sb_add(b, kind == PROTO_MC_SET ? "set " : "get ", 4);
    off = sb_key(b, p->key_digits);
    if (kind == PROTO_MC_SET) {
      sb_fmt(b, " 0 0 %zu\r\n", p->size);
      sb_add(b, p->value, p->size);
    }
    sb_add(b, "\r\n", 2);
    return off;
  }
  return 0;
}

static int make_tmpl(proto_ctx *p, proto_tmpl *t, proto_kind kind,
                     const char *cmd) {
  struct sb b = {NULL, 0, 0};
  build_one(p, kind, &b, cmd); /* the length */
  if (b.len > ARGS_MAX_BATCH_BYTES)
    return -1;
  t->kind = kind;
  t->len = b.len;
  t->buf = malloc(b.len ? b.len : 1);
  if (t->buf == NULL)
    return -1;
  b = (struct sb){t->buf, 0, t->len};
  t->key_off = build_one(p, kind, &b, cmd);
  return 0;
}

/* The template of the next request: the ratio's turn, or the only one. */
static unsigned next_tmpl(proto_ctx *p) {
  if (p->ntmpl == 1)
    return 0;
  unsigned t = p->ratio_pos < p->ratio_set ? 0 : 1;
  if (++p->ratio_pos == p->ratio_set + p->ratio_get)
    p->ratio_pos = 0;
  return t;
}

/* The next batch into req: templates, keys, one after the other. */
static void build_batch(proto_ctx *p) {
  size_t len = 0;
  for (unsigned i = 0; i < p->pipeline; i++) {
    unsigned t = next_tmpl(p);
    const proto_tmpl *tp = &p->tmpl[t];
    if (!p->req_is_tmpl)
      memcpy(p->req + len, tp->buf, tp->len);
    p->ops[i] = (unsigned char)t;
    p->op_keys[i] = p->key;
    if (tp->key_off != 0) {
      write_key(p->req + len + tp->key_off, p->key, p->key_digits);
      p->key = p->key + 1 == p->keys ? 0 : p->key + 1;
    }
    len += tp->len;
  }
  p->req_len = len;
}

/* For proto_reply.c: the next batch after a round trip. */
void proto__next_batch(proto_ctx *p);
void proto__next_batch(proto_ctx *p) {
  bool keyed = p->tmpl[0].key_off != 0 || p->tmpl[1].key_off != 0;
  if (keyed || p->ntmpl == 2)
    build_batch(p);
}

/* --- setting up --------------------------------------------------------- */

/* The longest reply each kind accepts, and the longest RESP bulk. */
static size_t reply_bound(const proto_ctx *p, proto_kind k) {
  switch (k) {
  case PROTO_ECHO:
    return p->size;
  case PROTO_GET:
    return p->size + 32 > RESP_MAX_LINE + 2 ? p->size + 32 : RESP_MAX_LINE + 2;
  case PROTO_MC_GET:
    return RESP_MAX_LINE + 2 + p->size + 2 + 5;
  case PROTO_COMMAND:
    return CMD_MAX_REPLY;
  default:
    return RESP_MAX_LINE + 2;
  }
}

static void set_shape(proto_ctx *p, const proto_opts *o) {
  p->kind = o->kind;
  p->size = o->size;
  p->keys = o->keys ? o->keys : PROTO_KEYS;
  p->key_digits = MIN_KEY_DIGITS;
  for (unsigned n = p->keys - 1; n >= 10000; n /= 10)
    p->key_digits++;
  p->key = o->first_key % p->keys;
  p->pipeline = o->pipeline ? o->pipeline : 1;
  p->ratio_set = o->ratio_set;
  p->ratio_get = o->ratio_get;
  p->ntmpl = o->ratio_set + o->ratio_get ? 2 : 1;
}

static proto_kind set_kind_of(proto_kind get) {
  return get == PROTO_MC_GET || get == PROTO_MC_SET ? PROTO_MC_SET : PROTO_SET;
}

static proto_kind get_kind_of(proto_kind k) {
  return k == PROTO_MC_GET || k == PROTO_MC_SET ? PROTO_MC_GET : PROTO_GET;
}

/* The reply buffer: the longest reply, and room for a pipeline's worth of
 * them up to RECV_CHUNK. */
static size_t reply_cap(proto_ctx *p) {
  size_t one = 0;
  for (int i = 0; i < p->ntmpl; i++) {
    size_t b = reply_bound(p, p->tmpl[i].kind);
    one = b > one ? b : one;
  }
  p->max_reply = one;
  p->max_bulk = p->kind == PROTO_COMMAND ? CMD_MAX_REPLY : p->size;
  size_t all = one * p->pipeline;
  size_t want = all < RECV_CHUNK ? all : RECV_CHUNK;
  return want > one ? want : one;
}

int proto_init_opts(proto_ctx *p, const proto_opts *o) {
  memset(p, 0, sizeof *p);
  set_shape(p, o);
  p->value = malloc(p->size ? p->size : 1);
  if (p->value == NULL)
    goto fail;
  fill_value(p->value, p->size);
  proto_kind k0 = p->ntmpl == 2 ? set_kind_of(o->kind) : o->kind;
  if (make_tmpl(p, &p->tmpl[0], k0, o->command) != 0 ||
      (p->ntmpl == 2 &&
       make_tmpl(p, &p->tmpl[1], get_kind_of(o->kind), o->command) != 0))
    goto fail;
  size_t req_cap = 0;
  for (int i = 0; i < p->ntmpl; i++)
    req_cap = p->tmpl[i].len > req_cap ? p->tmpl[i].len : req_cap;
  p->req_is_tmpl = p->pipeline == 1 && p->ntmpl == 1;
  p->req = p->req_is_tmpl ? p->tmpl[0].buf : malloc(req_cap * p->pipeline);
  p->ops = malloc(p->pipeline);
  p->op_keys = malloc(p->pipeline * sizeof *p->op_keys);
  p->buf_cap = reply_cap(p);
  p->buf = malloc(p->buf_cap);
  if (p->req == NULL || p->ops == NULL || p->op_keys == NULL || !p->buf)
    goto fail;
  build_batch(p);
  return 0;
fail:
  proto_free(p);
  return -1;
}

int proto_init(proto_ctx *p, proto_kind kind, size_t size, unsigned first_key) {
  proto_opts o = {.kind = kind, .size = size, .first_key = first_key};
  return proto_init_opts(p, &o);
}

void proto_free(proto_ctx *p) {
  if (!p->req_is_tmpl)
    free(p->req);
  for (int i = 0; i < 2; i++)
    free(p->tmpl[i].buf);
  free(p->value);
  free(p->buf);
  free(p->ops);
  free(p->op_keys);
  memset(p, 0, sizeof *p);
}
