/* Helpers shared by the suites; see testutil.h. */
#include "testutil.h"
#include "testserver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

extern char **environ;

/* ---- clocks and the process ------------------------------------------- */

int64_t tu_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tu_now_ms(void) {
  return tu_now_us() / 1000;
}

void tu_sleep_us(int us) {
  struct timespec ts = {.tv_sec = us / 1000000,
                        .tv_nsec = (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

struct timespec tu_deadline_ts(clockid_t clock, int ms) {
  struct timespec dl;

  clock_gettime(clock, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  return dl;
}

int tu_sem_wait_ms(sem_t *s, int ms) {
  struct timespec dl = tu_deadline_ts(CLOCK_REALTIME, ms);

  while (sem_timedwait(s, &dl) != 0)
    if (errno != EINTR)
      return -1;
  return 0;
}

void tu_sleep_ms(int ms) {
  tu_sleep_us(ms * 1000);
}

int tu_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory stream's own descriptor */
}

long tu_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long kib = -1;

  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

int tu_have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a;
  int ok;

  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

int tu_netns_join(const char *name) {
  char path[128];
  int fd, rc, e;

  snprintf(path, sizeof path, "/var/run/netns/%s", name);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  rc = setns(fd, CLONE_NEWNET);
  e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* Ports handed to test servers come from below (or above) the ephemeral
 * range, so no client socket of ours or of the library can be given one as
 * its local port. */
int tu_random_port(void) {
  int lo = 32768, hi = 60999;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

  if (f) {
    if (fscanf(f, "%d %d", &lo, &hi) != 2) {
      lo = 32768;
      hi = 60999;
    }
    fclose(f);
  }
  if (lo > 11024)
    return 10000 + (int)arc4random_uniform((uint32_t)(lo - 10000));
  if (hi < 64535)
    return hi + 1 + (int)arc4random_uniform((uint32_t)(65535 - hi));
  return 0; /* no room outside: let the kernel choose */
}

int tu_free_port(void) {
  for (int i = 0; i < 200; i++) {
    int port = tu_random_port();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    int ok;

    if (fd < 0)
      return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (ok && port == 0) {
      socklen_t len = sizeof a;
      getsockname(fd, (struct sockaddr *)&a, &len);
      port = ntohs(a.sin_port);
    }
    close(fd);
    if (ok)
      return port;
  }
  return -1;
}

/* ---- assertions ---------------------------------------------------------- */

const char *tu_current_test(void) {
  CU_pTest t = CU_get_current_test();

  return t && t->pName ? t->pName : "?";
}

void tu_fail_(int ok, const char *what, const char *file, int line,
              const char *fmt, ...) {
  char msg[768], text[1024];
  va_list ap;

  if (ok) {
    CU_assertImplementation(CU_TRUE, (unsigned)line, what, file, "", CU_FALSE);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(text, sizeof text, "%s (%s)", what, msg);
  fflush(stdout); /* after CUnit's "Test: name ..." */
  fprintf(stderr, "%s:%d: FAILED in %s: %s\n", file, line, tu_current_test(),
          text);
  CU_assertImplementation(CU_FALSE, (unsigned)line, text, file, "", CU_FALSE);
}

/* ---- waiting ------------------------------------------------------------- */

int tu_poll_(int64_t deadline_ms, int64_t round) {
  if (round == 0)
    return 1;
  if (tu_now_ms() >= deadline_ms)
    return 0;
  tu_sleep_ms(1);
  return 1;
}

int tu_poll_stats_(cpool_t *pool, cpool_stats_t *st, int64_t deadline_ms,
                   int64_t round) {
  if (!tu_poll_(deadline_ms, round))
    return 0;
  if (cpool_stats(pool, st) == 0)
    return 1;
  memset(st, 0, sizeof *st); /* defined for the assertion that follows */
  return 0;
}

/* ---- pools --------------------------------------------------------------- */

void tu_config(cpool_config *cfg, int port, int size) {
  cpool_config_init(cfg);
  cfg->host = "127.0.0.1";
  cfg->port = port;
  cfg->size = size;
  cfg->connect_timeout_ms = 500;
  cfg->backoff_min_ms = 10;
  cfg->backoff_max_ms = 100;
}

cpool_t *tu_open_sync(int port, int size) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, port, size);
  cfg.start = CPOOL_START_SYNC;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

void tu_assert_all_slots_free(cpool_t *p, int size) {
  cpool_conn_t *c[64];
  cpool_stats_t st;
  int got = 0;

  TU_WAIT_STATS(p, st, st.idle == size && st.waiters == 0, 5000);
  TU_ASSERT_EQ(st.idle, size);
  TU_ASSERT_EQ(st.busy, 0);
  TU_ASSERT_EQ(st.waiters, 0);
  for (int i = 0; i < size && i < 64; i++)
    if (cpool_checkout(p, &c[got], CPOOL_NOWAIT, NULL) == 0)
      got++;
  TU_ASSERT_EQ(got, size < 64 ? size : 64);
  for (int i = 0; i < got; i++)
    TU_ASSERT_CODE(cpool_checkin(p, c[i], CPOOL_CONN_OK), 0);
}

void tu_idle_check_case(int idle_check_ms, int idle_for_ms, int expect_peek,
                        void (*after_checkin)(cpool_conn_t *c)) {
  ts_server *s = ts_start(TS_ECHO, TS_TCP4);
  cpool_config cfg;
  cpool_conn_t *c = NULL;
  cpool_stats_t before, st;
  cpool_t *p = NULL;
  int io;

  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  tu_config(&cfg, ts_port(s), 1);
  cfg.start = CPOOL_START_SYNC;
  cfg.idle_check_ms = idle_check_ms;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(ts_wait_open(s, 1, 5000));
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "before poke", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  if (after_checkin)
    after_checkin(c);
  TU_ASSERT_CODE(cpool_stats(p, &before), 0);
  TU_ASSERT_EQ(ts_poke(s), 1); /* only a peek sees it */
  if (idle_for_ms > 0)
    tu_sleep_ms(idle_for_ms); /* idle time is what is under test */

  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  io = tu_echo(cpool_conn_fd(c), "after poke", 2000);
  TU_ASSERT_CODE(
      cpool_checkin(p, c, io == 0 ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN), 0);
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  if (expect_peek != (io == 0))
    fprintf(stderr, "idle_check_ms %d, idle %d ms: %s\n", idle_check_ms,
            idle_for_ms,
            expect_peek ? "the dead slot was handed out"
                        : "peeked, though used recently or never to peek");
  if (expect_peek) {
    TU_ASSERT_EQ(io, 0);
    TU_ASSERT_EQ(st.idle_check_failures, before.idle_check_failures + 1);
    TU_ASSERT_EQ(st.connects, before.connects + 1);
    TU_ASSERT_EQ(st.broken_checkins, 0);
  } else {
    TU_ASSERT_INT(io, !=, 0);
    TU_ASSERT_EQ(st.idle_check_failures, before.idle_check_failures);
    TU_ASSERT_EQ(st.broken_checkins, 1);
  }
  TU_ASSERT_EQ(st.checkouts, before.checkouts + 1);
  /* Either way the slot comes back alive. */
  TU_WAIT_STATS(p, st, st.idle == 1 && st.connects == before.connects + 1,
                5000);
  TU_ASSERT_EQ(st.idle, 1);
  c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 2000, NULL), 0);
  if (c) {
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "alive", 2000), 0);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_CODE(cpool_close(p, 0), 0);
  ts_stop(s);
}

static void *waiter_main(void *arg) {
  tu_waiter *w = arg;

  w->t0_ms = tu_now_ms();
  w->rc = cpool_checkout(w->pool, &w->conn, w->timeout_ms, &w->why);
  w->t1_ms = tu_now_ms();
  if (w->rc != 0)
    return NULL;
  w->slot = cpool_conn_slot(w->conn);
  if (w->seq)
    w->order = (*w->seq)++;
  if (w->checkin) {
    w->checkin_rc = cpool_checkin(w->pool, w->conn, CPOOL_CONN_OK);
    w->conn = NULL;
  }
  return NULL;
}

int tu_waiter_start(tu_waiter *w, cpool_t *pool, int timeout_ms, int checkin,
                    _Atomic int *seq) {
  memset(w, 0, sizeof *w);
  w->pool = pool;
  w->timeout_ms = timeout_ms;
  w->checkin = checkin;
  w->seq = seq;
  w->rc = 1; /* not a cpool code: "did not return" */
  w->slot = -1;
  w->order = -1;
  return pthread_create(&w->thread, NULL, waiter_main, w);
}

void tu_waiter_join(tu_waiter *w) {
  struct timespec dl;

  clock_gettime(CLOCK_REALTIME, &dl); /* pthread_timedjoin_np's clock */
  dl.tv_sec += 30;
  if (pthread_timedjoin_np(w->thread, NULL, &dl) != 0) {
    fprintf(stderr,
            "checkout(timeout %d ms) has not returned after 30 s: "
            "a caller is stuck in the pool\n",
            w->timeout_ms);
    abort();
  }
}

/* ---- blocking clients ---------------------------------------------------- */

/* A blocking connect of a new socket of a's family: the fd, or -errno. */
static int dial_addr(const struct sockaddr *a, socklen_t len) {
  int fd = socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  if (connect(fd, a, len) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int tu_dial(const char *ip, int port) {
  struct sockaddr_in a;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
    return -EINVAL;
  return dial_addr((struct sockaddr *)&a, sizeof a);
}

int tu_dial_unix(const char *path) {
  struct sockaddr_un a;

  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strlcpy(a.sun_path, path, sizeof a.sun_path);
  return dial_addr((struct sockaddr *)&a, sizeof a);
}

const char *tu_io_name(int r) {
  static __thread char buf[48];

  switch (r) {
  case 0:
    return "ok";
  case TU_IO_DEADLINE:
    return "our deadline";
  case TU_IO_EOF:
    return "eof";
  case TU_IO_PROTO:
    return "unexpected bytes";
  default:
    snprintf(buf, sizeof buf, "errno %d (%s)", r, strerror(r));
    return buf;
  }
}

/* Wait for events on fd until deadline_ms: 0 when ready, TU_IO_DEADLINE,
 * or poll's errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left = deadline_ms - tu_now_ms();
    int r;

    if (left <= 0)
      return TU_IO_DEADLINE;
    r = poll(&p, 1, (int)left);
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR)
      return errno;
  }
}

static int send_until(int fd, const char *p, size_t n, int64_t deadline_ms) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    int rc;

    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return errno;
    if ((rc = wait_fd(fd, POLLOUT, deadline_ms)) != 0)
      return rc;
  }
  return 0;
}

static int recv_until(int fd, char *p, size_t n, int64_t deadline_ms) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
    int rc;

    if (r > 0) {
      p += r;
      n -= (size_t)r;
      continue;
    }
    if (r == 0)
      return TU_IO_EOF;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return errno;
    if ((rc = wait_fd(fd, POLLIN, deadline_ms)) != 0)
      return rc;
  }
  return 0;
}

int tu_io_send(int fd, const void *buf, size_t n, int timeout_ms) {
  return send_until(fd, buf, n, tu_now_ms() + timeout_ms);
}

int tu_io_recv(int fd, void *buf, size_t n, int timeout_ms) {
  return recv_until(fd, buf, n, tu_now_ms() + timeout_ms);
}

int tu_io_ping(int fd, int timeout_ms) {
  static const char req[] = "PING\r\n", want[] = "+PONG\r\n";
  char got[sizeof want - 1];
  int64_t deadline = tu_now_ms() + timeout_ms;
  int rc = send_until(fd, req, sizeof req - 1, deadline);

  if (rc == 0)
    rc = recv_until(fd, got, sizeof got, deadline);
  if (rc == 0 && memcmp(got, want, sizeof got) != 0)
    rc = TU_IO_PROTO;
  return rc;
}

/* A tu_io_ result in the errno convention: 0, or -1 with errno. */
static int io_errno(int r) {
  if (r == 0)
    return 0;
  if (r == TU_IO_DEADLINE)
    errno = ETIMEDOUT;
  else if (r == TU_IO_EOF)
    errno = ECONNRESET;
  else if (r == TU_IO_PROTO)
    errno = EPROTO;
  else
    errno = r;
  return -1;
}

int tu_send_all(int fd, const void *buf, size_t n, int timeout_ms) {
  return io_errno(tu_io_send(fd, buf, n, timeout_ms));
}

int tu_recv_exact(int fd, void *buf, size_t n, int timeout_ms) {
  return io_errno(tu_io_recv(fd, buf, n, timeout_ms));
}

int tu_echo(int fd, const char *msg, int timeout_ms) {
  size_t n = strlen(msg);
  char buf[512];

  if (n > sizeof buf) {
    errno = EINVAL;
    return -1;
  }
  if (tu_send_all(fd, msg, n, timeout_ms) != 0 ||
      tu_recv_exact(fd, buf, n, timeout_ms) != 0)
    return -1;
  if (memcmp(buf, msg, n) != 0) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

int tu_ping(int fd, int timeout_ms) {
  return io_errno(tu_io_ping(fd, timeout_ms));
}

/* ---- on_event recorder ------------------------------------------------- */

tu_events *tu_events_new(void) {
  tu_events *r = calloc(1, sizeof *r);
  pthread_condattr_t ca;

  if (!r)
    return NULL;
  pthread_mutex_init(&r->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  return r;
}

void tu_events_free(tu_events *r) {
  if (!r)
    return;
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

void tu_events_cb(int slot, cpool_event_type type, const cpool_error_info *err,
                  void *arg) {
  tu_events *r = arg;
  cpool_t *pool = atomic_load(&r->pool);
  int stats_rc = 0;
  cpool_stats_t st;

  /* Would deadlock (and time the test out) if called under the lock. */
  if (pool)
    stats_rc = cpool_stats(pool, &st);
  pthread_mutex_lock(&r->mu);
  if (pool) {
    r->stats_calls++;
    r->stats_failed += stats_rc != 0;
  }
  if (!err)
    r->null_err++;
  else if (err->slot != slot)
    r->bad_slot++;
  if ((int)type < CPOOL_EVENT_CONNECTED || (int)type > CPOOL_EVENT_RECYCLED)
    r->bad_type++;
  if (r->n < TU_MAX_EVENTS) {
    tu_event *e = &r->ev[r->n++];
    e->slot = slot;
    e->type = type;
    e->t_us = tu_now_us();
    e->t_ms = e->t_us / 1000;
    if (err)
      e->err = *err;
  }
  r->total++;
  if ((int)type >= 0 && (int)type < 8)
    r->per_type[type]++;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
}

int tu_events_bad(tu_events *r) {
  int n;

  pthread_mutex_lock(&r->mu);
  n = r->null_err + r->bad_slot + r->bad_type;
  pthread_mutex_unlock(&r->mu);
  return n;
}

void tu_events_stats_calls(tu_events *r, int *calls, int *failed) {
  pthread_mutex_lock(&r->mu);
  *calls = r->stats_calls;
  *failed = r->stats_failed;
  pthread_mutex_unlock(&r->mu);
}

int tu_events_count(tu_events *r, cpool_event_type type) {
  int n;

  pthread_mutex_lock(&r->mu);
  n = r->per_type[type];
  pthread_mutex_unlock(&r->mu);
  return n;
}

int tu_events_wait(tu_events *r, cpool_event_type type, int n, int timeout_ms) {
  struct timespec dl = tu_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
  int ok;

  pthread_mutex_lock(&r->mu);
  while (!(ok = r->per_type[type] >= n))
    if (pthread_cond_timedwait(&r->cond, &r->mu, &dl) == ETIMEDOUT) {
      ok = r->per_type[type] >= n;
      break;
    }
  pthread_mutex_unlock(&r->mu);
  return ok;
}

int tu_events_get(tu_events *r, cpool_event_type type, int i, tu_event *out) {
  int rc = -1;

  pthread_mutex_lock(&r->mu);
  for (int k = 0; k < r->n; k++)
    if (r->ev[k].type == type && i-- == 0) {
      *out = r->ev[k];
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

/* ---- redis-server ------------------------------------------------------- */

int tu_redis_available(void) {
  const char *path = getenv("PATH");
  char dir[4096], file[4200];

  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    if (n > 0 && n < sizeof dir) {
      memcpy(dir, path, n);
      dir[n] = '\0';
      snprintf(file, sizeof file, "%s/redis-server", dir);
      if (access(file, X_OK) == 0)
        return 1;
    }
    path += n;
    if (*path == ':')
      path++;
  }
  return 0;
}

/* One PING on a fresh connection; 0 if +PONG came back, and then
 * *connected_at (if not NULL) is when the connect returned. */
static int redis_ping_once(int port, int timeout_ms, int64_t *connected_at) {
  int fd = tu_dial("127.0.0.1", port);
  int64_t at = tu_now_ms();
  int rc;

  if (fd < 0)
    return -1;
  rc = tu_ping(fd, timeout_ms);
  close(fd);
  if (rc == 0 && connected_at)
    *connected_at = at;
  return rc;
}

int tu_redis_cmd(int port, const char *cmd, char *reply, size_t len,
                 int timeout_ms) {
  size_t n = 0;
  int fd, rc = -1;

  if (len == 0 || (fd = tu_dial("127.0.0.1", port)) < 0)
    return -1;
  if (tu_send_all(fd, cmd, strlen(cmd), timeout_ms) == 0 &&
      tu_send_all(fd, "\r\n", 2, timeout_ms) == 0) {
    while (n + 1 < len && tu_recv_exact(fd, &reply[n], 1, timeout_ms) == 0)
      if (reply[n++] == '\n') {
        rc = 0;
        break;
      }
  }
  reply[n] = '\0';
  close(fd);
  return rc;
}

int64_t tu_redis_wait_ready(int port, int timeout_ms) {
  int64_t dl = tu_now_ms() + timeout_ms, at;

  for (;;) {
    if (redis_ping_once(port, 1000, &at) == 0)
      return at;
    if (tu_now_ms() >= dl)
      return -1;
    tu_sleep_ms(2);
  }
}

/* Run redis-server with its output sent to /dev/null.  posix_spawn, not
 * fork: the test process has many threads (the pool's workers). */
static int spawn_redis(tu_redis *r, const char *const *extra) {
  char port[16];
  char *argv[32] = {"redis-server", "--port",      port, "--bind",
                    "127.0.0.1",    "--save",      "",   "--appendonly",
                    "no",           "--daemonize", "no", "--protected-mode",
                    "no"};
  for (int i = 13; extra != NULL && *extra != NULL && i < 31; i++)
    argv[i] = (char *)*extra++;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none;
  int rc;

  snprintf(port, sizeof port, "%d", r->port);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_init(&attr);
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  rc = posix_spawnp(&r->pid, "redis-server", &fa, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(stderr, "redis-server: spawn: %s\n", strerror(rc));
    r->pid = 0;
    return -1;
  }
  return 0;
}

/* Did the child exit already (port taken, bad option)? */
static int redis_exited(tu_redis *r) {
  int st;

  if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
    fprintf(stderr, "redis-server on port %d exited early (status %d)\n",
            r->port, st);
    r->pid = 0;
    return 1;
  }
  return 0;
}

int tu_redis_spawn(tu_redis *r, int port) {
  r->pid = 0;
  r->port = port;
  return spawn_redis(r, NULL);
}

int tu_redis_start(tu_redis *r, int port, int timeout_ms) {
  return tu_redis_start_with(r, port, timeout_ms, NULL);
}

int tu_redis_start_with(tu_redis *r, int port, int timeout_ms,
                        const char *const *extra) {
  int64_t dl = tu_now_ms() + timeout_ms;

  r->pid = 0;
  r->port = port ? port : tu_free_port();
  if (r->port <= 0 || spawn_redis(r, extra) != 0)
    return -1;
  for (;;) {
    if (redis_ping_once(r->port, 1000, NULL) == 0)
      return 0;
    if (redis_exited(r))
      return -1;
    if (tu_now_ms() >= dl) {
      fprintf(stderr, "redis-server on port %d: no PONG in %d ms\n", r->port,
              timeout_ms);
      tu_redis_stop(r);
      return -1;
    }
    tu_sleep_ms(2);
  }
}

void tu_redis_kill(tu_redis *r, int sig) {
  if (r->pid <= 0)
    return;
  kill(r->pid, sig);
  while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  r->pid = 0;
}

void tu_redis_stop(tu_redis *r) {
  int64_t dl = tu_now_ms() + 2000;

  if (r->pid <= 0)
    return;
  kill(r->pid, SIGTERM);
  while (tu_now_ms() < dl) {
    if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
      r->pid = 0;
      return;
    }
    tu_sleep_ms(5);
  }
  tu_redis_kill(r, SIGKILL);
}
