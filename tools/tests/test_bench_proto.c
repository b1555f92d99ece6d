/*
 * cpool-bench's protocols: the client's bounded RESP parser, its requests,
 * its checks of replies (on a socketpair with canned replies), the built-in
 * server's command parser, and one round trip of each protocol against the
 * built-in server.
 */
#include <CUnit/Basic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "server.h"
#include "srv_redis.h"
#include "target.h"

#define LIT(s) s, sizeof(s) - 1

static void test_resp_complete(void) {
  CU_ASSERT_EQUAL(resp_value_len(LIT("+PONG\r\n"), 16), 7);
  CU_ASSERT_EQUAL(resp_value_len(LIT("-ERR no\r\n"), 16), 9);
  CU_ASSERT_EQUAL(resp_value_len(LIT(":-42\r\n"), 16), 6);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$5\r\nhello\r\n"), 16), 11);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$0\r\n\r\n"), 16), 6);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$-1\r\n"), 16), 5);
  CU_ASSERT_EQUAL(resp_value_len(LIT("*-1\r\n"), 16), 5);
  CU_ASSERT_EQUAL(resp_value_len(LIT("*2\r\n$1\r\na\r\n:5\r\n"), 16), 15);
  /* Complete, with more after it: the length of the first value only. */
  CU_ASSERT_EQUAL(resp_value_len(LIT("+OK\r\n+OK\r\n"), 16), 5);
}

static void test_resp_incomplete(void) {
  CU_ASSERT_EQUAL(resp_value_len(LIT(""), 16), 0);
  CU_ASSERT_EQUAL(resp_value_len(LIT("+"), 16), 0);
  CU_ASSERT_EQUAL(resp_value_len(LIT("+PONG\r"), 16), 0);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$5\r\nhel"), 16), 0);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$5\r\nhello\r"), 16), 0);
  CU_ASSERT_EQUAL(resp_value_len(LIT("*2\r\n$1\r\na\r\n"), 16), 0);
}

static void test_resp_malformed(void) {
  char line[RESP_MAX_LINE + 10];
  memset(line, 'x', sizeof line);
  line[0] = '+';
  CU_ASSERT_EQUAL(resp_value_len(line, sizeof line, 16), -1); /* too long */
  CU_ASSERT_EQUAL(resp_value_len(LIT("?what\r\n"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("+a\nb\r\n"), 16), -1); /* bare LF */
  CU_ASSERT_EQUAL(resp_value_len(LIT("+a\rb\r\n"), 16), -1); /* bare CR */
  CU_ASSERT_EQUAL(resp_value_len(LIT(":12x\r\n"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$\r\n"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$-2\r\n"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$3\r\nabcXY"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$1234567890123456789\r\n"), 16), -1);
  /* A length over what we expect is refused before any byte of it. */
  CU_ASSERT_EQUAL(resp_value_len(LIT("$17\r\n"), 16), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("$999999999\r\n"), 1 << 20), -1);
  CU_ASSERT_EQUAL(resp_value_len(LIT("*65\r\n"), 16), -1);
  CU_ASSERT_EQUAL(
      resp_value_len(LIT("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), 16),
      -1); /* nested too deep */
}

static void test_requests(void) {
  proto_ctx p;
  CU_ASSERT_EQUAL_FATAL(proto_init(&p, PROTO_GET, 16, 5), 0);
  const char get[] = "*2\r\n$3\r\nGET\r\n$16\r\ncpool-bench:0005\r\n";
  CU_ASSERT_EQUAL(p.req_len, sizeof get - 1);
  CU_ASSERT(memcmp(p.req, get, sizeof get - 1) == 0);
  proto_free(&p);
  CU_ASSERT_EQUAL_FATAL(proto_init(&p, PROTO_SET, 3, 1999), 0);
  const char set[] =
      "*3\r\n$3\r\nSET\r\n$16\r\ncpool-bench:0999\r\n$3\r\naho\r\n";
  CU_ASSERT_EQUAL(p.req_len, sizeof set - 1);
  CU_ASSERT(memcmp(p.req, set, sizeof set - 1) == 0);
  proto_free(&p);
  CU_ASSERT_EQUAL_FATAL(proto_init(&p, PROTO_PING, 16, 0), 0);
  CU_ASSERT_EQUAL(p.req_len, 6);
  CU_ASSERT(memcmp(p.req, "PING\r\n", 6) == 0);
  proto_free(&p);
}

/* proto_roundtrip against a canned reply, written before the request. */
static proto_result canned(proto_kind kind, size_t size, const char *reply,
                           size_t len) {
  int sv[2];
  proto_ctx p;
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_EQUAL_FATAL(proto_init(&p, kind, size, 0), 0);
  set_io_timeout(sv[0], 2000);
  CU_ASSERT_EQUAL(send_all(sv[1], reply, len), 0);
  shutdown(sv[1], SHUT_WR); /* EOF after the canned bytes */
  proto_result r = proto_roundtrip(&p, sv[0]);
  proto_free(&p);
  close(sv[0]);
  close(sv[1]);
  return r;
}

static void test_replies(void) {
  CU_ASSERT_EQUAL(canned(PROTO_PING, 1, LIT("+PONG\r\n")), PROTO_OK);
  CU_ASSERT_EQUAL(canned(PROTO_PING, 1, LIT("+PONG\r\n+PONG\r\n")),
                  PROTO_EBADREPLY); /* out of step */
  CU_ASSERT_EQUAL(canned(PROTO_PING, 1, LIT("-ERR busy\r\n")), PROTO_ESERVER);
  CU_ASSERT_EQUAL(canned(PROTO_PING, 1, LIT("+PON")), PROTO_EIO); /* EOF */
  CU_ASSERT_EQUAL(canned(PROTO_PING, 1, LIT("")), PROTO_EIO);
  CU_ASSERT_EQUAL(canned(PROTO_SET, 4, LIT("+OK\r\n")), PROTO_OK);
  CU_ASSERT_EQUAL(canned(PROTO_GET, 4, LIT("$4\r\nahov\r\n")), PROTO_OK);
  CU_ASSERT_EQUAL(canned(PROTO_GET, 4, LIT("$4\r\nxxxx\r\n")), PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(canned(PROTO_GET, 4, LIT("$-1\r\n")), PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(canned(PROTO_GET, 4, LIT("$3\r\naho\r\n")), PROTO_EBADREPLY);
  /* A huge announced length: refused at once, nothing waited for. */
  CU_ASSERT_EQUAL(canned(PROTO_GET, 4, LIT("$1000000000\r\n")),
                  PROTO_EBADREPLY);
  CU_ASSERT_EQUAL(canned(PROTO_ECHO, 4, LIT("ahov")), PROTO_OK);
  CU_ASSERT_EQUAL(canned(PROTO_ECHO, 4, LIT("ahox")), PROTO_EBADREPLY);
}

static void test_server_parser(void) {
  srv_arg argv[SRV_MAX_ARGS];
  int argc = -1;
  CU_ASSERT_EQUAL(srv_parse_command(LIT("PING\r\n"), argv, &argc), 6);
  CU_ASSERT_EQUAL(argc, 1);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("SET a  bc\n"), argv, &argc), 10);
  CU_ASSERT_EQUAL(argc, 3);
  CU_ASSERT_EQUAL(argv[2].len, 2);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("\r\n"), argv, &argc), 2);
  CU_ASSERT_EQUAL(argc, 0);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("PIN"), argv, &argc), 0);
  const char get[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
  CU_ASSERT_EQUAL(srv_parse_command(LIT(get), argv, &argc),
                  (long)sizeof get - 1);
  CU_ASSERT_EQUAL(argc, 2);
  CU_ASSERT(argv[1].len == 1 && argv[1].p[0] == 'k');
  CU_ASSERT_EQUAL(
      srv_parse_command(LIT("*2\r\n$3\r\nGET\r\n$1\r\n"), argv, &argc), 0);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("*17\r\n"), argv, &argc), -1);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("*0\r\n"), argv, &argc), -1);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("*1\r\n$999999999\r\n"), argv, &argc),
                  -1);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("*1\r\n:1\r\n"), argv, &argc), -1);
  CU_ASSERT_EQUAL(srv_parse_command(LIT("*1\r\n$1\r\nxYZ"), argv, &argc), -1);
}

static void test_server_commands(void) {
  kv_map *kv = kv_new();
  srvbuf out = {0};
  bool close_after = false;
  const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\nGET k\r\n"
                    "GET nope\r\nPING\r\nFLY\r\n";
  CU_ASSERT_PTR_NOT_NULL_FATAL(kv);
  CU_ASSERT_EQUAL(redis_process(kv, LIT(in), &out, &close_after),
                  (long)sizeof in - 1);
  const char want[] = "+OK\r\n$2\r\nvv\r\n$-1\r\n+PONG\r\n"
                      "-ERR unknown command 'FLY'\r\n";
  CU_ASSERT_EQUAL(out.len, sizeof want - 1);
  CU_ASSERT(out.p && memcmp(out.p, want, sizeof want - 1) == 0);
  CU_ASSERT(!close_after);
  out.len = 0;
  CU_ASSERT_EQUAL(redis_process(kv, LIT("*x\r\n"), &out, &close_after), 4);
  CU_ASSERT(close_after);
  CU_ASSERT(out.len > 4 && memcmp(out.p, "-ERR Protocol error", 19) == 0);
  srvbuf_free(&out);
  kv_free(kv);
}

/* Each protocol, through the built-in server, one round trip at a time. */
static void roundtrips(bool echo, proto_kind kind, size_t size, int n) {
  server_t *s = NULL;
  char err[256];
  server_opts o = {.echo = echo, .threads = 2};
  CU_ASSERT_EQUAL_FATAL(server_start(&s, &o, err, sizeof err), 0);
  bench_args a = {.host = "127.0.0.1",
                  .port = server_port(s),
                  .protocol = kind,
                  .size = (int)size,
                  .keys = 1000,
                  .pipeline = 1};
  target_t t;
  CU_ASSERT_EQUAL_FATAL(target_resolve(&t, &a, err, sizeof err), 0);
  int fd = target_connect(&t);
  CU_ASSERT_FATAL(fd >= 0);
  if (kind == PROTO_GET)
    CU_ASSERT_EQUAL(target_fill_keys(fd, &a, err, sizeof err), 0);
  proto_ctx p;
  CU_ASSERT_EQUAL_FATAL(proto_init(&p, kind, size, 0), 0);
  for (int i = 0; i < n; i++)
    CU_ASSERT_EQUAL(proto_roundtrip(&p, fd), PROTO_OK);
  proto_free(&p);
  close(fd);
  server_stop(s);
}

static void test_server_roundtrips(void) {
  roundtrips(false, PROTO_PING, 1, 100);
  roundtrips(false, PROTO_SET, 100, 1100); /* wraps around the keys */
  roundtrips(false, PROTO_GET, 100, 1100);
  roundtrips(false, PROTO_GET, 200000, 20); /* several reads per reply */
  roundtrips(true, PROTO_ECHO, 1, 100);
  roundtrips(true, PROTO_ECHO, 300000, 20);
}

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite("bench_proto", NULL, NULL);
  CU_add_test(s, "RESP: complete values", test_resp_complete);
  CU_add_test(s, "RESP: incomplete values", test_resp_incomplete);
  CU_add_test(s, "RESP: malformed or over the bounds", test_resp_malformed);
  CU_add_test(s, "requests", test_requests);
  CU_add_test(s, "reply checks", test_replies);
  CU_add_test(s, "server: command parser", test_server_parser);
  CU_add_test(s, "server: commands", test_server_commands);
  CU_add_test(s, "server: round trips", test_server_roundtrips);
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}
