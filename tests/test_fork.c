/*
 * fork(): a child process must never be handed the parent's sockets, and
 * cpool_close in the child returns at once without touching the parent's
 * connections (src/fork.c).  Each test forks for real; the child checks
 * what it sees and reports it in its exit status (CUnit lives in the
 * parent only), and the parent waits for it with a deadline, then checks
 * that its own connections still work and that the server saw no
 * disconnect.
 *
 * White-box in one place: the second test locks the pool's mutex from a
 * helper thread (internal.h), so that the fork happens with it held.
 */
#include "internal.h"
#include "suites.h"
#include "testserver.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static ts_server *srv;

int fork_init(void) {
  srv = ts_start(TS_ECHO, TS_TCP4);
  return srv ? 0 : -1;
}

int fork_cleanup(void) {
  ts_stop(srv);
  srv = NULL;
  return 0;
}

/* on_disconnect calls in this process (the child's copy counts its own). */
static _Atomic int disconnects;

static void count_disconnect(int fd, void *data, void *arg) {
  (void)fd, (void)data, (void)arg;
  atomic_fetch_add(&disconnects, 1);
}

static cpool_t *open_pool(int size) {
  cpool_config cfg;
  cpool_t *p = NULL;

  tu_config(&cfg, ts_port(srv), size);
  cfg.start = CPOOL_START_SYNC;
  cfg.on_disconnect = count_disconnect;
  TU_ASSERT_CODE(cpool_open(&p, &cfg, NULL), 0);
  return p;
}

/* What the child found wrong, one bit each: its exit status. */
enum {
  BAD_CHECKOUT = 1,    /* checkout did not return CPOOL_EFORKED */
  BAD_CONN = 2,        /* ... and handed a connection */
  BAD_WAIT = 4,        /* a waiting checkout did not either */
  BAD_STATS = 8,       /* cpool_stats did not */
  BAD_CHECKIN = 16,    /* checkin of the held connection did not */
  BAD_FD_OPEN = 32,    /* the child's copy of a socket is still open */
  BAD_CLOSE = 64,      /* cpool_close did not return 0 at once */
  BAD_DISCONNECT = 128 /* on_disconnect was called in the child */
};

/* The child's side: every call refused, close at once, no callback.
 * held: a connection the forking thread held at the fork (or NULL), fd
 * its socket's number in the parent. */
static int child_checks(cpool_t *p, cpool_conn_t *held, int fd) {
  cpool_conn_t *c = NULL;
  cpool_stats_t st;
  int bad = 0;

  if (cpool_checkout(p, &c, CPOOL_NOWAIT, NULL) != CPOOL_EFORKED)
    bad |= BAD_CHECKOUT;
  if (c != NULL)
    bad |= BAD_CONN;
  if (cpool_checkout(p, &c, 200, NULL) != CPOOL_EFORKED || c != NULL)
    bad |= BAD_WAIT;
  if (cpool_stats(p, &st) != CPOOL_EFORKED)
    bad |= BAD_STATS;
  if (held != NULL && cpool_checkin(p, held, CPOOL_CONN_OK) != CPOOL_EFORKED)
    bad |= BAD_CHECKIN;
  if (fd >= 0 && fcntl(fd, F_GETFD) != -1)
    bad |= BAD_FD_OPEN;
  int64_t t0 = tu_now_ms();
  if (cpool_close(p, CPOOL_WAIT_FOREVER) != 0 || tu_now_ms() - t0 > 1000)
    bad |= BAD_CLOSE;
  if (atomic_load(&disconnects) != 0)
    bad |= BAD_DISCONNECT;
  return bad;
}

/* The parent's side: wait for the child with a deadline (a hang is a
 * failure, and the child is killed); its exit status, or -1. */
static int wait_child(pid_t pid, int timeout_ms) {
  int status = 0;
  pid_t got = 0;

  TU_WAIT((got = waitpid(pid, &status, WNOHANG)) != 0, timeout_ms);
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CU_FAIL("the child did not exit in time: cpool_close hung?");
    return -1;
  }
  TU_ASSERT_EQ(got, pid);
  CU_ASSERT(WIFEXITED(status));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct parker {
  cpool_t *pool;
  int rc;
} parker;

/* A second thread's checkout and checkin: its slot stays parked for it. */
static void *park_main(void *arg) {
  parker *k = arg;
  cpool_conn_t *c = NULL;
  k->rc = cpool_checkout(k->pool, &c, CPOOL_NOWAIT, NULL);
  if (k->rc == 0)
    k->rc = cpool_checkin(k->pool, c, CPOOL_CONN_OK);
  return NULL;
}

/* Slots parked by this thread and by another, one held: the child gets
 * none of them, closes at once and calls no callback; the parent's held
 * connection and parked slot still work, and the server saw no close. */
static void test_child_refused(void) {
  cpool_t *p = open_pool(3);
  cpool_conn_t *mine = NULL, *held = NULL;
  parker k = {.pool = p, .rc = 1};
  pthread_t t;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_EQ(pthread_create(&t, NULL, park_main, &k), 0);
  pthread_join(t, NULL);
  TU_ASSERT_CODE(k.rc, 0);
  /* Parked for this thread: its next checkout is the fast path's. */
  TU_ASSERT_CODE(cpool_checkout(p, &mine, CPOOL_NOWAIT, NULL), 0);
  TU_ASSERT_CODE(cpool_checkin(p, mine, CPOOL_CONN_OK), 0);
  TU_ASSERT_CODE(cpool_checkout(p, &held, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(held);
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(held), "before", 2000), 0);
  ts_counts before = ts_get_counts(srv);
  int fd = cpool_conn_fd(held);

  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(child_checks(p, held, fd));
  TU_ASSERT_INT(pid, >, 0);
  TU_ASSERT_EQ(wait_child(pid, 10000), 0);

  /* The parent's connections: the held one, and the parked ones. */
  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(held), "after", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, held, CPOOL_CONN_OK), 0);
  cpool_conn_t *c[3] = {0};
  for (int i = 0; i < 3; i++) {
    TU_ASSERT_CODE(cpool_checkout(p, &c[i], CPOOL_NOWAIT, NULL), 0);
    if (c[i] != NULL)
      TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c[i]), "again", 2000), 0);
  }
  for (int i = 0; i < 3; i++)
    if (c[i] != NULL)
      TU_ASSERT_CODE(cpool_checkin(p, c[i], CPOOL_CONN_OK), 0);
  ts_counts after = ts_get_counts(srv);
  TU_ASSERT_EQ(after.accepted, before.accepted);
  TU_ASSERT_EQ(after.peer_closed, before.peer_closed);
  TU_ASSERT_EQ(after.open, 3);
  cpool_stats_t st;
  TU_ASSERT_CODE(cpool_stats(p, &st), 0);
  TU_ASSERT_EQ(st.disconnects, 0);
  TU_ASSERT_EQ(st.connects, 3);
  TU_ASSERT_EQ(atomic_load(&disconnects), 0);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
  TU_ASSERT_EQ(atomic_load(&disconnects), 3);
  atomic_store(&disconnects, 0);
  TU_WAIT(ts_get_counts(srv).open == 0, 5000);
}

typedef struct locker {
  cpool_t *pool;
  sem_t locked, release;
} locker;

/* Holds the pool's mutex across the fork, as a parent thread inside a
 * checkout or checkin may. */
static void *lock_main(void *arg) {
  locker *l = arg;
  pthread_mutex_lock(&l->pool->mu);
  sem_post(&l->locked);
  sem_wait(&l->release);
  pthread_mutex_unlock(&l->pool->mu);
  return NULL;
}

/* The fork happens while a parent thread waits in cpool_checkout (on a
 * condition variable of the pool) and another holds the pool's mutex: in
 * the child, checkout is refused and cpool_close returns at once all the
 * same; in the parent, the waiter is served once the slot comes back. */
static void test_fork_with_lock_held(void) {
  cpool_t *p = open_pool(1);
  cpool_conn_t *held = NULL;
  cpool_stats_t st;
  tu_waiter w;
  locker l = {.pool = p};
  pthread_t t;

  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  TU_ASSERT_CODE(cpool_checkout(p, &held, CPOOL_NOWAIT, NULL), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(held);
  TU_ASSERT_EQ(tu_waiter_start(&w, p, CPOOL_WAIT_FOREVER, 1, NULL), 0);
  TU_WAIT_STATS(p, st, st.waiters == 1, 5000);
  TU_ASSERT_EQ(st.waiters, 1);
  sem_init(&l.locked, 0, 0);
  sem_init(&l.release, 0, 0);
  TU_ASSERT_EQ(pthread_create(&t, NULL, lock_main, &l), 0);
  TU_ASSERT_EQ(tu_sem_wait_ms(&l.locked, 5000), 0);
  ts_counts before = ts_get_counts(srv);

  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(child_checks(p, NULL, -1));
  sem_post(&l.release);
  pthread_join(t, NULL);
  TU_ASSERT_INT(pid, >, 0);
  TU_ASSERT_EQ(wait_child(pid, 10000), 0);

  TU_ASSERT_EQ(tu_echo(cpool_conn_fd(held), "held", 2000), 0);
  TU_ASSERT_CODE(cpool_checkin(p, held, CPOOL_CONN_OK), 0);
  tu_waiter_join(&w);
  TU_ASSERT_CODE(w.rc, 0);
  TU_ASSERT_CODE(w.checkin_rc, 0);
  ts_counts after = ts_get_counts(srv);
  TU_ASSERT_EQ(after.peer_closed, before.peer_closed);
  TU_ASSERT_EQ(after.accepted, before.accepted);
  sem_destroy(&l.locked);
  sem_destroy(&l.release);
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
  atomic_store(&disconnects, 0);
  TU_WAIT(ts_get_counts(srv).open == 0, 5000);
}

/* A pool the child opens itself works as any other.  Not under TSan:
 * it does not support a child that starts threads after a fork of a
 * multithreaded process (it aborts it: die_after_fork). */
static void test_child_opens_its_own(void) {
#if defined(__SANITIZE_THREAD__)
  fprintf(stderr, "child_opens_its_own: skipped under TSan, which aborts a "
                  "child that starts threads after fork\n");
  return;
#endif
  cpool_t *p = open_pool(1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    cpool_t *q = NULL;
    cpool_conn_t *c = NULL;
    cpool_config cfg;
    int bad = cpool_close(p, 0) != 0;
    tu_config(&cfg, ts_port(srv), 1);
    cfg.start = CPOOL_START_SYNC;
    if (cpool_open(&q, &cfg, NULL) != 0)
      _exit(2);
    if (cpool_checkout(q, &c, 1000, NULL) != 0 ||
        tu_echo(cpool_conn_fd(c), "child", 2000) != 0 ||
        cpool_checkin(q, c, CPOOL_CONN_OK) != 0)
      bad |= 4;
    if (cpool_close(q, 1000) != 0)
      bad |= 8;
    _exit(bad);
  }
  TU_ASSERT_INT(pid, >, 0);
  TU_ASSERT_EQ(wait_child(pid, 10000), 0);
  cpool_conn_t *c = NULL;
  TU_ASSERT_CODE(cpool_checkout(p, &c, 1000, NULL), 0);
  if (c != NULL) {
    TU_ASSERT_EQ(tu_echo(cpool_conn_fd(c), "parent", 2000), 0);
    TU_ASSERT_CODE(cpool_checkin(p, c, CPOOL_CONN_OK), 0);
  }
  TU_ASSERT_CODE(cpool_close(p, 1000), 0);
  atomic_store(&disconnects, 0);
  TU_WAIT(ts_get_counts(srv).open == 0, 5000);
}

CU_TestInfo fork_tests[] = {
    {"child_refused", test_child_refused},
    {"fork_with_lock_held", test_fork_with_lock_held},
    {"child_opens_its_own", test_child_opens_its_own},
    CU_TEST_INFO_NULL,
};
