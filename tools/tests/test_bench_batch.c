/*
 * cpool-bench's batches (issue 14): --pipeline, --keys, --ratio, --command
 * and the memcached text protocol, against canned replies on a socketpair
 * and, pipelined, against the built-in server; and the HdrHistogram text
 * output (hdr.c).
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdr.h"
#include "proto.h"
#include "server.h"
#include "target.h"

#define LIT(s) s, sizeof(s) - 1

/* One round trip of o's batch against a canned reply (then EOF). */
static proto_result canned(const proto_opts *o, const char *reply, size_t len,
                           unsigned *n_ok, unsigned *n_server) {
  int sv[2];
  proto_ctx p;
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, o), 0);
  set_io_timeout(sv[0], 2000);
  CU_ASSERT_EQUAL(send_all(sv[1], reply, len), 0);
  shutdown(sv[1], SHUT_WR);
  proto_result r = proto_roundtrip(&p, sv[0]);
  if (n_ok)
    *n_ok = p.n_ok;
  if (n_server)
    *n_server = p.n_server;
  proto_free(&p);
  close(sv[0]);
  close(sv[1]);
  return r;
}

static void test_pipeline_requests(void) {
  proto_ctx p;
  proto_opts o = {
      .kind = PROTO_GET, .size = 4, .first_key = 998, .pipeline = 3};
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, &o), 0);
  const char want[] = "*2\r\n$3\r\nGET\r\n$16\r\ncpool-bench:0998\r\n"
                      "*2\r\n$3\r\nGET\r\n$16\r\ncpool-bench:0999\r\n"
                      "*2\r\n$3\r\nGET\r\n$16\r\ncpool-bench:0000\r\n";
  CU_ASSERT_EQUAL(p.req_len, sizeof want - 1);
  CU_ASSERT(memcmp(p.req, want, sizeof want - 1) == 0);
  proto_free(&p);
  /* A larger key space has wider keys. */
  o = (proto_opts){.kind = PROTO_MC_GET, .keys = 123456, .first_key = 123455};
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, &o), 0);
  CU_ASSERT_EQUAL(p.req_len, sizeof "get cpool-bench:123455\r\n" - 1);
  CU_ASSERT(memcmp(p.req, "get cpool-bench:123455\r\n", p.req_len) == 0);
  proto_free(&p);
}

static void test_ratio_requests(void) {
  proto_ctx p;
  proto_opts o = {.kind = PROTO_MC_GET,
                  .size = 2,
                  .pipeline = 4,
                  .ratio_set = 1,
                  .ratio_get = 2};
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, &o), 0);
  const char want[] = "set cpool-bench:0000 0 0 2\r\nah\r\n"
                      "get cpool-bench:0001\r\nget cpool-bench:0002\r\n"
                      "set cpool-bench:0003 0 0 2\r\nah\r\n";
  CU_ASSERT_EQUAL(p.req_len, sizeof want - 1);
  CU_ASSERT(memcmp(p.req, want, sizeof want - 1) == 0);
  proto_free(&p);
}

static void test_command_requests(void) {
  proto_ctx p;
  proto_opts o = {
      .kind = PROTO_COMMAND, .command = "HSET h \"a b\" 1", .pipeline = 2};
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, &o), 0);
  const char one[] = "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$3\r\na b\r\n$1\r\n1\r\n";
  CU_ASSERT_EQUAL(p.req_len, 2 * (sizeof one - 1));
  CU_ASSERT(memcmp(p.req + sizeof one - 1, one, sizeof one - 1) == 0);
  proto_free(&p);
  o.command = "\"unterminated";
  CU_ASSERT_EQUAL(proto_init_opts(&p, &o), -1);
}

static void test_pipeline_replies(void) {
  proto_opts o = {.kind = PROTO_PING, .pipeline = 3};
  unsigned ok = 0, srv = 0;
  CU_ASSERT_EQUAL(canned(&o, LIT("+PONG\r\n+PONG\r\n+PONG\r\n"), &ok, &srv),
                  PROTO_OK);
  CU_ASSERT_EQUAL(ok, 3);
  CU_ASSERT_EQUAL(canned(&o, LIT("+PONG\r\n-ERR x\r\n+PONG\r\n"), &ok, &srv),
                  PROTO_ESERVER);
  CU_ASSERT(ok == 2 && srv == 1);
  CU_ASSERT_EQUAL(canned(&o, LIT("+PONG\r\n+PONG\r\n"), &ok, NULL), PROTO_EIO);
  CU_ASSERT_EQUAL(ok, 2); /* two came before the EOF */
  CU_ASSERT_EQUAL(
      canned(&o, LIT("+PONG\r\n+PONG\r\n+PONG\r\n+PONG\r\n"), &ok, NULL),
      PROTO_EBADREPLY); /* one too many: out of step */
  o = (proto_opts){.kind = PROTO_ECHO, .size = 3, .pipeline = 2};
  CU_ASSERT_EQUAL(canned(&o, LIT("ahoaho"), &ok, NULL), PROTO_OK);
  CU_ASSERT_EQUAL(canned(&o, LIT("ahoahx"), &ok, NULL), PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(ok, 1);
}

static void test_command_replies(void) {
  proto_opts o = {.kind = PROTO_COMMAND, .command = "X", .pipeline = 6};
  unsigned ok = 0, srv = 0;
  const char any[] = ":1\r\n$-1\r\n*2\r\n$1\r\na\r\n*0\r\n"
                     "%1\r\n+k\r\n#t\r\n_\r\n-WRONGTYPE no\r\n";
  CU_ASSERT_EQUAL(canned(&o, LIT(any), &ok, &srv), PROTO_ESERVER);
  CU_ASSERT(ok == 5 && srv == 1);
  o.pipeline = 1;
  CU_ASSERT_EQUAL(canned(&o, LIT("!3\r\nerr\r\n"), &ok, &srv), PROTO_ESERVER);
  CU_ASSERT_EQUAL(canned(&o, LIT("?what\r\n"), &ok, &srv), PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(resp_value_len(LIT("~2\r\n,1.5\r\n(12345\r\n"), 16), 18);
  CU_ASSERT_EQUAL(resp_value_len(LIT("#x\r\n"), 16), -1);
}

static void test_memcache_replies(void) {
  proto_opts o = {.kind = PROTO_MC_GET, .size = 2, .first_key = 7};
  unsigned ok = 0, srv = 0;
  CU_ASSERT_EQUAL(
      canned(&o, LIT("VALUE cpool-bench:0007 0 2\r\nah\r\nEND\r\n"), &ok, NULL),
      PROTO_OK);
  CU_ASSERT_EQUAL(ok, 1);
  CU_ASSERT_EQUAL(canned(&o, LIT("VALUE cpool-bench:0008 0 2\r\nah\r\nEND\r\n"),
                         NULL, NULL),
                  PROTO_EBADREPLY); /* another key */
  CU_ASSERT_EQUAL(canned(&o, LIT("VALUE cpool-bench:0007 0 2\r\nxx\r\nEND\r\n"),
                         NULL, NULL),
                  PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(canned(&o, LIT("END\r\n"), NULL, NULL), PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(canned(&o, LIT("SERVER_ERROR out of memory\r\n"), &ok, &srv),
                  PROTO_ESERVER);
  CU_ASSERT(ok == 0 && srv == 1);
  CU_ASSERT_EQUAL(
      canned(&o, LIT("VALUE cpool-bench:0007 0 2\r\nah"), NULL, NULL),
      PROTO_EIO);
  o = (proto_opts){.kind = PROTO_MC_SET, .size = 2, .pipeline = 2};
  CU_ASSERT_EQUAL(canned(&o, LIT("STORED\r\nSTORED\r\n"), &ok, NULL), PROTO_OK);
  CU_ASSERT_EQUAL(ok, 2);
  CU_ASSERT_EQUAL(canned(&o, LIT("STORED\r\nERROR\r\n"), &ok, &srv),
                  PROTO_ESERVER);
  CU_ASSERT_EQUAL(canned(&o, LIT("STORED\r\n+OK\r\n"), NULL, NULL),
                  PROTO_EBADREPLY);
}

/* Pipelined batches and a ratio through the built-in server. */
static void test_server_batches(void) {
  server_t *s = NULL;
  char err[256];
  server_opts so = {.threads = 2};
  CU_ASSERT_EQUAL_FATAL(server_start(&s, &so, err, sizeof err), 0);
  bench_args a = {.host = "127.0.0.1",
                  .port = server_port(s),
                  .protocol = PROTO_GET,
                  .size = 300,
                  .keys = 5000,
                  .pipeline = 64};
  target_t t;
  CU_ASSERT_EQUAL_FATAL(target_resolve(&t, &a, err, sizeof err), 0);
  int fd = target_connect(&t);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL(target_fill_keys(fd, &a, err, sizeof err), 0);
  proto_ctx p;
  proto_opts o = {.kind = PROTO_GET,
                  .size = 300,
                  .keys = 5000,
                  .pipeline = 64,
                  .ratio_set = 1,
                  .ratio_get = 9};
  CU_ASSERT_EQUAL_FATAL(proto_init_opts(&p, &o), 0);
  for (int i = 0; i < 200; i++) { /* 12800 requests: every key, twice */
    CU_ASSERT_EQUAL(proto_roundtrip(&p, fd), PROTO_OK);
    CU_ASSERT_EQUAL(p.n_ok, 64);
  }
  proto_free(&p);
  close(fd);
  server_stop(s);
}

struct steps {
  unsigned n;
  double level[512];
  uint64_t value[512], count[512];
};

static void keep(const hdr_point *pt, void *arg) {
  struct steps *s = arg;
  if (s->n < 512) {
    s->level[s->n] = pt->level;
    s->value[s->n] = pt->value;
    s->count[s->n++] = pt->count;
  }
}

static void test_hdr(void) {
  hist_t *h = hist_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  for (uint64_t v = 1; v <= 10000; v++)
    hist_record(h, v * 1000); /* 1 us .. 10 ms */
  struct steps s = {0};
  unsigned n = hdr_iterate(h, keep, &s);
  CU_ASSERT(n == s.n && n > 30 && n < 300);
  if (n != s.n || n <= 30 || n >= 300)
    printf("\nhdr: %u steps\n", n);
  CU_ASSERT_DOUBLE_EQUAL(s.level[0], 0.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(s.level[1], 0.1, 1e-12); /* 5 steps to 50% */
  CU_ASSERT_DOUBLE_EQUAL(s.level[5], 0.5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(s.level[10], 0.75, 1e-12); /* then 5 to 75% */
  CU_ASSERT_DOUBLE_EQUAL(s.level[n - 1], 1.0, 0);
  CU_ASSERT_EQUAL(s.value[n - 1], 10000000);
  CU_ASSERT_EQUAL(s.count[n - 1], 10000);
  for (unsigned i = 1; i < n; i++) {
    CU_ASSERT(s.level[i] > s.level[i - 1]);
    CU_ASSERT(s.value[i] >= s.value[i - 1]);
    CU_ASSERT((double)s.count[i] >= s.level[i] * 10000 - 1e-6);
  }
  /* The median: within the histogram's 0.4%. */
  CU_ASSERT(s.value[5] > 4980000 && s.value[5] < 5020000);
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  hdr_write(out, h);
  fclose(out);
  CU_ASSERT(strncmp(text,
                    "       Value     Percentile TotalCount "
                    "1/(1-Percentile)\n\n",
                    57) == 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "#[Mean    =     5000.500, "));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "#[Max     =    10000.000, Total count"
                                      "    =        10000]\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "#[Buckets = "));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "    5000.000 0.500000000000       "
                                      "5000           2.00\n") != NULL ||
                         strstr(text, " 0.500000000000 ") != NULL);
  free(text);
  hist_free(h);
}

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite("bench_batch", NULL, NULL);
  CU_add_test(s, "pipelined requests and wider keys", test_pipeline_requests);
  CU_add_test(s, "a set:get ratio", test_ratio_requests);
  CU_add_test(s, "--command requests", test_command_requests);
  CU_add_test(s, "pipelined replies", test_pipeline_replies);
  CU_add_test(s, "--command replies, RESP3", test_command_replies);
  CU_add_test(s, "memcached replies", test_memcache_replies);
  CU_add_test(s, "batches through the built-in server", test_server_batches);
  CU_add_test(s, "HdrHistogram percentile output", test_hdr);
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}
