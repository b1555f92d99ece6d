/* Checks of the examples' RESP framing: lengths, limits, truncation. */
#undef NDEBUG
#include "resp.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static long F(const char *s, int il) {
  return resp_frame(s, strlen(s), il);
}
int main(void) {
  assert(F("+OK\r\n", 0) == 5);
  assert(F("+OK\r", 0) == 0);
  assert(F("+OK\n", 0) == -1);
  assert(F("$3\r\nfoo\r\n", 0) == 9);
  assert(F("$3\r\nfoo\r", 0) == 0);
  assert(F("$3\r\nfooxx", 0) == -1);
  assert(F("$-1\r\n", 0) == 5);
  assert(F("$-2\r\n", 0) == -1);
  assert(F("$99999999999999999999\r\n", 0) == -1);
  assert(F("*2\r\n$1\r\na\r\n:5\r\n", 0) == 15);
  assert(F("*2\r\n$1\r\na\r\n", 0) == 0);
  assert(F("*-1\r\n", 0) == 5);
  assert(F(":12x\r\n", 0) == -1);
  assert(F("PING\r\n", 1) == 6);
  assert(F("PING\r\n", 0) == -1);
  /* RESP_MAX_DEPTH nested arrays are fine; one more is too deep. */
  char nest[4 * (RESP_MAX_DEPTH + 1) + 5];
  size_t used = 0;
  for (int i = 0; i <= RESP_MAX_DEPTH; i++, used += 4)
    memcpy(nest + used, "*1\r\n", 4);
  memcpy(nest + used, ":1\r\n", 4);
  used += 4;
  assert(resp_frame(nest, used, 0) == -1);
  assert(resp_frame(nest + 4, used - 4, 0) == (long)used - 4);
  assert(F("*1\r\n*1\r\n:1\r\n", 0) == 12);
  assert(resp_frame("\0x\r\n", 4, 0) == -1);
  resp_value v;
  assert(resp_parse("$3\r\nfoo\r\n", 9, &v) == 0 && v.type == '$' &&
         v.len == 3 && !memcmp(v.str, "foo", 3));
  assert(resp_parse("-ERR x\r\n", 8, &v) == 0 && v.type == '-' && v.len == 5);
  assert(resp_parse("$-1\r\n", 5, &v) == 0 && v.is_null);
  assert(resp_parse(":-42\r\n", 6, &v) == 0 && v.integer == -42);
  char buf[64];
  const char *argv[] = {"SET", "k", "vv"};
  size_t lens[] = {3, 1, 2};
  long n = resp_format(buf, sizeof buf, 3, argv, lens);
  assert(n == (long)strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n"));
  assert(!memcmp(buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n", n));
  assert(F(buf, 0) == n);
  for (size_t cap = 0; cap < (size_t)n; cap++)
    assert(resp_format(buf, cap, 3, argv, lens) == -1);
  assert(resp_format(buf, n, 3, argv, lens) == n);
  /* every prefix of a valid frame is incomplete */
  const char *fr = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n";
  for (size_t i = 0; i < strlen(fr); i++)
    assert(resp_frame(fr, i, 0) == 0);
  puts("resp ok");
}
