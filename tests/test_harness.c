/*
 * The test harness itself, with plain sockets and no pool: when a pool test
 * fails, this suite says whether the server under it did what it claimed
 * (refuse, resume on the same port, drop with FIN or RST, stall, stay
 * silent, reset mid-reply, send to every connection, listen on a given
 * address, blackhole, PING replies, counters) and whether the helpers count
 * right.
 */
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(int port) {
  return tu_dial("127.0.0.1", port);
}

static void test_ports(void) {
  int lo = 0, hi = 0;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_FATAL(fscanf(f, "%d %d", &lo, &hi) == 2);
  fclose(f);
  for (int i = 0; i < 100; i++) {
    int port = tu_free_port();
    TU_ASSERT_BETWEEN(port, 1024, 65535);
    if (lo > 11024)
      CU_ASSERT(port < lo || port > hi);
  }
}

static void test_fd_count(void) {
  int n0 = tu_count_fds(), fd, n1;

  TU_ASSERT_INT(n0, >, 2);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  n1 = tu_count_fds();
  TU_ASSERT_EQ(n1, n0 + 1);
  close(fd);
  TU_ASSERT_EQ(tu_count_fds(), n0);
}

static void test_echo_and_counts(void) {
  int fds0 = tu_count_fds();
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  int a, b;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  a = dial(ts_port(s));
  b = dial(ts_port(s));
  TU_ASSERT_INT(a, >=, 0);
  TU_ASSERT_INT(b, >=, 0);
  CU_ASSERT(ts_wait_open(s, 2, 5000));
  TU_ASSERT_EQ(tu_echo(a, "one", 2000), 0);
  TU_ASSERT_EQ(tu_echo(b, "two", 2000), 0);
  TU_ASSERT_EQ(ts_get_counts(s).accepted, 2);
  close(a);
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  TU_ASSERT_EQ(ts_get_counts(s).peer_closed, 1);
  TU_ASSERT_EQ(ts_get_counts(s).bytes_in, 6);
  close(b);
  CU_ASSERT(ts_wait_open(s, 0, 5000));
  ts_stop(s);
  /* Stopping joins the thread and closes every descriptor. */
  TU_ASSERT_EQ(tu_count_fds(), fds0);
}

static void test_ping_mode(void) {
  ts_server *s = ts_start(TS_PING, TS_TCP4);
  char buf[14];
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  fd = dial(ts_port(s));
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_ping(fd, 2000), 0);
  /* Two requests in one write: two replies. */
  TU_ASSERT_EQ(tu_send_all(fd, "PING\r\nPING\r\n", 12, 2000), 0);
  TU_ASSERT_EQ(tu_recv_exact(fd, buf, 14, 2000), 0);
  CU_ASSERT(memcmp(buf, "+PONG\r\n+PONG\r\n", 14) == 0);
  close(fd);
  ts_stop(s);
}

static void test_refuse_resume(void) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4 | TS_UNIX);
  int port, fd, kept;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  port = ts_port(s);
  kept = dial(port);
  TU_ASSERT_INT(kept, >=, 0);
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  CU_ASSERT_FATAL(ts_refuse(s) == 0);
  TU_ASSERT_EQ(dial(port), -ECONNREFUSED);
  TU_ASSERT_EQ(tu_dial_unix(ts_unix_path(s)), -ENOENT);
  /* Accepted connections outlive the listener. */
  TU_ASSERT_EQ(tu_echo(kept, "still here", 2000), 0);
  CU_ASSERT_FATAL(ts_resume(s) == 0);
  TU_ASSERT_EQ(ts_port(s), port);
  fd = dial(port);
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_echo(fd, "back", 2000), 0);
  close(fd);
  fd = tu_dial_unix(ts_unix_path(s));
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_echo(fd, "unix back", 2000), 0);
  close(fd);
  close(kept);
  ts_stop(s);
}

static void drop(int rst) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  char c;
  ssize_t r;
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  fd = dial(ts_port(s));
  TU_ASSERT_INT(fd, >=, 0);
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  TU_ASSERT_EQ(ts_drop(s, rst), 1);
  TU_ASSERT_EQ(ts_get_counts(s).open, 0);
  TU_ASSERT_EQ(ts_get_counts(s).dropped, 1);
  r = recv(fd, &c, 1, 0);
  if (rst) {
    TU_ASSERT_EQ(r, -1);
    TU_ASSERT_EQ(errno, ECONNRESET);
  } else {
    TU_ASSERT_EQ(r, 0);
  }
  close(fd);
  ts_stop(s);
}

static void test_drop_fin(void) {
  drop(0);
}
static void test_drop_rst(void) {
  drop(1);
}

/* ts_poke: bytes nobody asked for reach the client; the connection stays
 * open. */
static void test_poke(void) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  char buf[32] = {0};
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  fd = dial(ts_port(s));
  TU_ASSERT_INT(fd, >=, 0);
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  TU_ASSERT_EQ(ts_poke(s), 1);
  TU_ASSERT_EQ(tu_recv_exact(fd, buf, 14, 2000), 0);
  CU_ASSERT_STRING_EQUAL(buf, "+unsolicited\r\n");
  TU_ASSERT_EQ(ts_get_counts(s).open, 1);
  close(fd);
  ts_stop(s);
}

/* TS_STALL never reads, TS_SILENT reads (and counts) every request line:
 * neither answers, and either closes a connection when its peer goes. */
static void never_answers(ts_mode mode) {
  ts_server *s = ts_start(mode, TS_TCP4);
  uint64_t lines = mode == TS_SILENT ? 2 : 0;
  struct pollfd p;
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  fd = dial(ts_port(s));
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_send_all(fd, "PING\r\nPING\r\n", 12, 2000), 0);
  TU_WAIT(ts_get_counts(s).lines == lines, 5000);
  p.fd = fd;
  p.events = POLLIN;
  TU_ASSERT_EQ(poll(&p, 1, 200), 0); /* no answer */
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  TU_ASSERT_EQ(ts_get_counts(s).lines, lines);
  TU_ASSERT_EQ(ts_get_counts(s).bytes_in, lines ? 12 : 0);
  close(fd);
  CU_ASSERT(ts_wait_open(s, 0, 5000));
  TU_ASSERT_EQ(ts_get_counts(s).peer_closed, 1);
  ts_stop(s);
}

static void test_stall(void) {
  never_answers(TS_STALL);
}
static void test_silent(void) {
  never_answers(TS_SILENT);
}

/* TS_RESET_HALF: "+PO" for the first line, then a reset. */
static void test_reset_half(void) {
  ts_server *s = ts_start(TS_RESET_HALF, TS_TCP4);
  char buf[8] = {0};
  ssize_t r;
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  fd = dial(ts_port(s));
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_send_all(fd, "PING\r\nPING\r\n", 12, 2000), 0);
  TU_ASSERT_EQ(tu_recv_exact(fd, buf, 3, 2000), 0);
  CU_ASSERT_STRING_EQUAL(buf, "+PO");
  r = recv(fd, buf, sizeof buf, 0);
  TU_ASSERT_EQ(r, -1);
  TU_ASSERT_EQ(errno, ECONNRESET);
  /* The server counts after its close, which the reset may outrun. */
  CU_ASSERT(ts_wait_open(s, 0, 5000));
  TU_ASSERT_EQ(ts_get_counts(s).dropped, 1);
  TU_ASSERT_EQ(ts_get_counts(s).lines, 1); /* the reset ends the reading */
  close(fd);
  ts_stop(s);
}

/* ts_send_all: every connection has the text when it returns. */
static void test_send_all(void) {
  ts_server *s = ts_start(TS_PING, TS_TCP4);
  char buf[8];
  int fd[2];

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  for (int i = 0; i < 2; i++) {
    fd[i] = dial(ts_port(s));
    TU_ASSERT_INT(fd[i], >=, 0);
  }
  CU_ASSERT_FATAL(ts_wait_open(s, 2, 5000));
  TU_ASSERT_EQ(ts_send_all(s, "-ERR x\r\n"), 2);
  for (int i = 0; i < 2; i++) {
    /* Acknowledged means already in our receive queue: no waiting. */
    TU_ASSERT_EQ(recv(fd[i], buf, sizeof buf, MSG_DONTWAIT), 8);
    CU_ASSERT(memcmp(buf, "-ERR x\r\n", 8) == 0);
    close(fd[i]);
  }
  ts_stop(s);
}

/* ts_start_opts: the address and port asked for, and no server where the
 * namespace does not exist. */
static void test_start_opts(void) {
  ts_options o = {.mode = TS_PING, .ip = "127.0.0.2", .port = tu_free_port()};
  ts_server *s = ts_start_opts(&o);
  int fd;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  TU_ASSERT_EQ(ts_port(s), o.port);
  TU_ASSERT_EQ(dial(o.port), -ECONNREFUSED); /* not on 127.0.0.1 */
  fd = tu_dial("127.0.0.2", o.port);
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_ping(fd, 2000), 0);
  CU_ASSERT(ts_wait_open_at_least(s, 1, 5000));
  close(fd);
  ts_stop(s);
  o.netns = "cpool-no-such-netns";
  o.port = 0;
  CU_ASSERT_PTR_NULL(ts_start_opts(&o));
}

static void test_blackhole(void) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  struct sockaddr_in a;
  struct pollfd p;
  int fd, port;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  port = ts_port(s);
  CU_ASSERT_FATAL(ts_blackhole(s) == 0);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  TU_ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), -1);
  TU_ASSERT_EQ(errno, EINPROGRESS);
  p.fd = fd;
  p.events = POLLOUT;
  TU_ASSERT_EQ(poll(&p, 1, 300), 0); /* the SYN went unanswered */
  close(fd);
  CU_ASSERT_FATAL(ts_resume(s) == 0);
  fd = dial(port);
  TU_ASSERT_INT(fd, >=, 0);
  TU_ASSERT_EQ(tu_echo(fd, "no more hole", 2000), 0);
  close(fd);
  ts_stop(s);
}

static void test_redis_helper(void) {
  tu_redis r;
  int port;

  if (!tu_redis_available()) {
    CU_FAIL("redis-server not installed (the redis suite needs it)");
    return;
  }
  CU_ASSERT_FATAL(tu_redis_start(&r, 0, 5000) == 0);
  port = r.port;
  TU_ASSERT_INT(tu_redis_wait_ready(port, 1000), >=, 0);
  tu_redis_kill(&r, SIGKILL);
  TU_ASSERT_EQ(r.pid, 0);
  TU_ASSERT_EQ(dial(port), -ECONNREFUSED);
  /* Same port again at once. */
  CU_ASSERT_FATAL(tu_redis_start(&r, port, 5000) == 0);
  TU_ASSERT_EQ(r.port, port);
  tu_redis_stop(&r);
  TU_ASSERT_EQ(r.pid, 0);
}

CU_TestInfo harness_tests[] = {
    {"ports", test_ports},
    {"fd_count", test_fd_count},
    {"echo_and_counts", test_echo_and_counts},
    {"ping_mode", test_ping_mode},
    {"refuse_resume", test_refuse_resume},
    {"drop_fin", test_drop_fin},
    {"drop_rst", test_drop_rst},
    {"poke", test_poke},
    {"stall", test_stall},
    {"silent", test_silent},
    {"reset_half", test_reset_half},
    {"send_all", test_send_all},
    {"start_opts", test_start_opts},
    {"blackhole", test_blackhole},
    {"redis_helper", test_redis_helper},
    CU_TEST_INFO_NULL,
};
