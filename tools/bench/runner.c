#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "proto.h"

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define OP_OK (-1)
#define CLOSED_PAUSE_NS (1 * NS_PER_MS)
#define SLEEP_SLICE_NS (50 * NS_PER_MS)

struct worker {
  runner_t *r;
  int idx;
  bool started;
  pthread_t tid;
  proto_ctx proto;
  thread_stats *st;
  unsigned batch;       /* requests per checkout: --pipeline, 1 */
  unsigned n_ok, n_srv; /* of the last op: requests ok, error replies */
};

/* One request: OP_OK, or the err_kind of its failure; *t_wait is when the
 * connection was in hand (or the checkout failed). */
typedef int (*op_fn)(struct worker *w, uint64_t *t_wait);

struct runner {
  bench_args a;
  cpool_t *pool;
  target_t target;
  int timeout; /* for cpool_checkout */
  int nthreads;
  struct worker *workers;
  thread_stats *stats;
  uint64_t t0, end_ns; /* end_ns 0: no deadline */
  int64_t batch;       /* tickets taken at a time with --requests */

  pthread_mutex_t mu;
  pthread_cond_t go_cv, done_cv;
  bool go;
  int done;
  uint64_t last_done_ns, stop_ns;

  /* Each on a line of its own: stop is read by every request, tickets is
   * written by them. */
  alignas(64) atomic_bool stop;
  alignas(64) _Atomic int64_t tickets;
  alignas(64) _Atomic uint64_t next_due; /* --shared-queue: the schedule */
};

static inline bool stopped(const runner_t *r) {
  return atomic_load_explicit(&((runner_t *)r)->stop, memory_order_relaxed);
}

/* One ticket for the next request: false when --requests are all taken. */
static inline bool take_ticket(runner_t *r, int64_t *left) {
  if (*left == 0) {
    int64_t have = atomic_load_explicit(&r->tickets, memory_order_relaxed);
    int64_t take;
    do {
      if (have <= 0)
        return false;
      take = have < r->batch ? have : r->batch;
    } while (!atomic_compare_exchange_weak_explicit(
        &r->tickets, &have, have - take, memory_order_relaxed,
        memory_order_relaxed));
    *left = take;
  }
  (*left)--;
  return true;
}

static err_kind kind_of(int rc) {
  switch (rc) {
  case CPOOL_ECHECKEDOUT:
    return ERR_CHECKED_OUT;
  case CPOOL_ETIMEDOUT:
    return ERR_TIMED_OUT;
  case CPOOL_ECLOSED:
    return ERR_CLOSED;
  case CPOOL_EOVERLOAD:
    return ERR_OVERLOAD;
  default:
    return ERR_OTHER;
  }
}

static void count_error_n(struct worker *w, int kind, uint64_t n,
                          bool closed_loop) {
  _Atomic uint64_t *c = &w->st->err[kind];
  STORE(c, LOAD(c) + n);
  /* The backend is down and every slot is backing off: trying again at
   * once would only spin and take the CPU the reconnects need. */
  if (kind == ERR_CLOSED && closed_loop)
    sleep_until_ns(now_ns() + CLOSED_PAUSE_NS);
}

/* --- one request -----------------------------------------------------------
 */

static void count_error(struct worker *w, int kind, bool closed_loop) {
  count_error_n(w, kind, 1, closed_loop);
}

static int op_noio(struct worker *w, uint64_t *t_wait) {
  cpool_conn_t *c;
  int rc = cpool_checkout(w->r->pool, &c, w->r->timeout, NULL);
  *t_wait = now_ns();
  w->n_ok = w->n_srv = 0;
  if (rc != 0)
    return (int)kind_of(rc);
  cpool_checkin(w->r->pool, c, CPOOL_CONN_OK);
  w->n_ok = 1;
  return OP_OK;
}

/* The batch's outcome: the counts into the worker, and the kind of the
 * requests that are neither ok nor error replies. */
static int result_kind(struct worker *w, proto_result pr) {
  w->n_ok = w->proto.n_ok;
  w->n_srv = w->proto.n_server;
  return pr == PROTO_OK || pr == PROTO_ESERVER ? OP_OK
         : pr == PROTO_EIO                     ? ERR_IO
                                               : ERR_BAD_REPLY;
}

static int op_pool(struct worker *w, uint64_t *t_wait) {
  cpool_conn_t *c;
  int rc = cpool_checkout(w->r->pool, &c, w->r->timeout, NULL);
  *t_wait = now_ns();
  w->n_ok = w->n_srv = 0;
  if (rc != 0)
    return (int)kind_of(rc);
  int fd = cpool_conn_fd(c);
  conn_state *cs = cpool_conn_data(c);
  if (cs != NULL && !cs->timeouts_set) {
    /* Once per connection, so that a stalled server cannot hold a thread
     * past the end of the run for more than IO_TIMEOUT_MS. */
    set_io_timeout(fd, IO_TIMEOUT_MS);
    cs->timeouts_set = true;
  }
  int k = result_kind(w, proto_roundtrip(&w->proto, fd));
  cpool_checkin(w->r->pool, c, k == OP_OK ? CPOOL_CONN_OK : CPOOL_CONN_BROKEN);
  return k;
}

static int op_connect_per_request(struct worker *w, uint64_t *t_wait) {
  int fd = target_connect(&w->r->target);
  *t_wait = now_ns();
  w->n_ok = w->n_srv = 0;
  if (fd < 0)
    return ERR_IO;
  int k = result_kind(w, proto_roundtrip(&w->proto, fd));
  close(fd);
  return k;
}

/* --- the loops -------------------------------------------------------------
 */

static inline void record_ok(thread_stats *st, uint64_t *ok, uint64_t lat,
                             uint64_t wait) {
  hist_record(st->lat, lat);
  hist_record(st->wait, wait);
  STORE(&st->ok, ++*ok);
}

/* Count one checkout's batch: the requests ok (each with the batch's
 * latency), the error replies, and the rest as failures of kind k; and
 * the time the connection was held (busy). */
static void account(struct worker *w, int k, uint64_t lat, uint64_t wait,
                    uint64_t busy, uint64_t *ok, bool closed_loop) {
  thread_stats *st = w->st;
  STORE(&st->busy_ns, LOAD(&st->busy_ns) + busy);
  if (w->n_ok != 0) {
    hist_record_n(st->lat, lat, w->n_ok);
    hist_record_n(st->wait, wait, w->n_ok);
    *ok += w->n_ok;
    STORE(&st->ok, *ok);
  }
  if (w->n_srv != 0)
    STORE(&st->err[ERR_SERVER], LOAD(&st->err[ERR_SERVER]) + w->n_srv);
  unsigned rest = w->batch - w->n_ok - w->n_srv;
  if (rest != 0 && k != OP_OK)
    count_error_n(w, k, rest, closed_loop);
}

/* Nothing but checkout, checkin and a counter; one cycle in RUNNER_SAMPLE
 * is timed, the rest are not, so that the clock is not what is measured. */
static void loop_noio(struct worker *w) {
  runner_t *r = w->r;
  cpool_t *pool = r->pool;
  const int timeout = r->timeout;
  const bool counted = r->a.requests != 0;
  thread_stats *st = w->st;
  uint64_t ok = 0;
  int64_t tickets = 0;
  unsigned n = 0;
  while (!stopped(r)) {
    if (counted && !take_ticket(r, &tickets))
      break;
    if (n++ % RUNNER_SAMPLE == 0) {
      uint64_t t0 = now_ns(), tw;
      int k = op_noio(w, &tw);
      if (k == OP_OK)
        record_ok(st, &ok, now_ns() - t0, tw - t0);
      else
        count_error(w, k, true);
      continue;
    }
    cpool_conn_t *c;
    int rc = cpool_checkout(pool, &c, timeout, NULL);
    if (rc == 0) {
      cpool_checkin(pool, c, CPOOL_CONN_OK);
      STORE(&st->ok, ++ok);
    } else {
      count_error(w, (int)kind_of(rc), true);
    }
  }
}

static void loop_closed(struct worker *w, op_fn op) {
  runner_t *r = w->r;
  const bool counted = r->a.requests != 0;
  uint64_t ok = 0;
  int64_t tickets = 0;
  while (!stopped(r)) {
    if (counted && !take_ticket(r, &tickets))
      break;
    uint64_t t0 = now_ns(), tw;
    int k = op(w, &tw);
    uint64_t end = now_ns();
    account(w, k, end - t0, tw - t0, end - tw, &ok, true);
  }
}

/* Sleep until t, in slices, so that a stop is seen.  False if stopped. */
static bool wait_until(const runner_t *r, uint64_t t) {
  for (uint64_t now = now_ns(); now < t; now = now_ns()) {
    if (stopped(r))
      return false;
    sleep_until_ns(t - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : t);
  }
  return !stopped(r);
}

/* The next request (batch) of an open loop that this thread takes: of
 * its own schedule (thread i takes k = i, i + threads ...), or of the
 * shared one (whichever thread is free takes the next k). */
static inline uint64_t next_k(struct worker *w, uint64_t *k) {
  if (w->r->a.shared_queue)
    return atomic_fetch_add_explicit(&w->r->next_due, 1, memory_order_relaxed);
  uint64_t mine = *k;
  *k += (uint64_t)w->r->nthreads;
  return mine;
}

/* Open loop: request (batch) k of the run is due at t0 + k / rate (times
 * --pipeline).  A late request starts at once, and its latency still
 * counts from when it was due. */
static void loop_rate(struct worker *w, op_fn op) {
  runner_t *r = w->r;
  const bool counted = r->a.requests != 0;
  const double ns_per_req = 1e9 * (double)w->batch / (double)r->a.rate;
  uint64_t ok = 0, own = (uint64_t)w->idx;
  int64_t tickets = 0;
  /* Wake on time: the default 50 us of timer slack would count as
   * latency. */
  prctl(PR_SET_TIMERSLACK, 1000UL);
  for (;;) {
    uint64_t k = next_k(w, &own);
    uint64_t due = r->t0 + (uint64_t)((double)k * ns_per_req);
    if (r->end_ns != 0 && due >= r->end_ns)
      break;
    if (!wait_until(r, due) || (counted && !take_ticket(r, &tickets)))
      break;
    uint64_t start = now_ns(), tw;
    int kind = op(w, &tw);
    uint64_t end = now_ns();
    account(w, kind, end - due, tw - start, end - tw, &ok, false);
  }
}

static void run(struct worker *w) {
  const bench_args *a = &w->r->a;
  op_fn op = a->no_io                 ? op_noio
             : a->connect_per_request ? op_connect_per_request
                                      : op_pool;
  if (a->rate != 0)
    loop_rate(w, op);
  else if (a->no_io)
    loop_noio(w);
  else
    loop_closed(w, op);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  runner_t *r = w->r;
  pthread_setname_np(pthread_self(), "bench-client");
  pthread_mutex_lock(&r->mu);
  while (!r->go)
    pthread_cond_wait(&r->go_cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  if (!stopped(r))
    run(w);
  uint64_t t = now_ns();
  pthread_mutex_lock(&r->mu);
  r->done++;
  if (t > r->last_done_ns)
    r->last_done_ns = t;
  pthread_cond_signal(&r->done_cv);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* --- start and stop --------------------------------------------------------
 */

static void init_sync(runner_t *r) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* as runner_wait's */
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->go_cv, NULL);
  pthread_cond_init(&r->done_cv, &ca);
  pthread_condattr_destroy(&ca);
}

static int init_workers(runner_t *r, char *err, size_t errlen) {
  size_t n = (size_t)r->nthreads;
  r->workers = calloc(n, sizeof *r->workers);
  r->stats = aligned_alloc(64, n * sizeof *r->stats);
  if (r->workers == NULL || r->stats == NULL)
    goto oom;
  memset(r->stats, 0, n * sizeof *r->stats);
  for (int i = 0; i < r->nthreads; i++) {
    struct worker *w = &r->workers[i];
    w->r = r;
    w->idx = i;
    w->st = &r->stats[i];
    w->batch = r->a.no_io ? 1 : (unsigned)r->a.pipeline;
    w->st->lat = hist_new();
    w->st->wait = hist_new();
    if (w->st->lat == NULL || w->st->wait == NULL)
      goto oom;
    proto_opts po = {.kind = r->a.protocol,
                     .size = (size_t)r->a.size,
                     .first_key = (unsigned)i * 37u,
                     .keys = (unsigned)r->a.keys,
                     .pipeline = w->batch,
                     .ratio_set = (unsigned)r->a.ratio_set,
                     .ratio_get = (unsigned)r->a.ratio_get,
                     .command = r->a.command};
    if (!r->a.no_io && proto_init_opts(&w->proto, &po) != 0)
      goto oom;
  }
  return 0;
oom:
  snprintf(err, errlen, "out of memory for %d threads", r->nthreads);
  return -1;
}

static void release(runner_t *r, bool abort) {
  pthread_mutex_lock(&r->mu);
  if (abort)
    atomic_store(&r->stop, true);
  r->t0 = now_ns();
  r->end_ns =
      r->a.duration_ms
          ? r->t0 + (uint64_t)(r->a.warmup_ms + r->a.duration_ms) * NS_PER_MS
          : 0;
  r->go = true;
  pthread_cond_broadcast(&r->go_cv);
  pthread_mutex_unlock(&r->mu);
}

int runner_start(runner_t **out, const bench_args *a, cpool_t *pool,
                 const target_t *target, char *err, size_t errlen) {
  *out = NULL;
  runner_t *r = aligned_alloc(64, sizeof *r);
  if (r == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memset(r, 0, sizeof *r);
  r->a = *a;
  r->pool = pool;
  if (target != NULL)
    r->target = *target;
  r->timeout = a->nowait ? CPOOL_NOWAIT : a->timeout_ms;
  r->nthreads = a->threads;
  atomic_init(&r->stop, false);
  atomic_init(&r->next_due, 0);
  /* With --pipeline, a ticket is a batch: the requests rounded up. */
  int64_t per = a->no_io ? 1 : a->pipeline;
  int64_t tickets = (a->requests + per - 1) / per;
  atomic_init(&r->tickets, tickets);
  /* Tickets in batches, so that --requests is not one contended atomic per
   * request; one at a time on a schedule, where it costs nothing. */
  int64_t batch = tickets / ((int64_t)a->threads * 16);
  r->batch = a->rate != 0 || batch < 1 ? 1 : batch > 64 ? 64 : batch;
  init_sync(r);
  if (init_workers(r, err, errlen) != 0) {
    runner_free(r);
    return -1;
  }
  for (int i = 0; i < r->nthreads; i++) {
    int e =
        pthread_create(&r->workers[i].tid, NULL, worker_main, &r->workers[i]);
    if (e != 0) {
      snprintf(err, errlen, "pthread_create (thread %d): %s", i, strerror(e));
      release(r, true);
      runner_join(r);
      runner_free(r);
      return -1;
    }
    r->workers[i].started = true;
  }
  release(r, false);
  *out = r;
  return 0;
}

uint64_t runner_t0(const runner_t *r) {
  return r->t0;
}

bool runner_wait(runner_t *r, uint64_t until_ns) {
  struct timespec ts = {.tv_sec = (time_t)(until_ns / NS_PER_S),
                        .tv_nsec = (long)(until_ns % NS_PER_S)};
  pthread_mutex_lock(&r->mu);
  while (r->done < r->nthreads) {
    int e = pthread_cond_timedwait(&r->done_cv, &r->mu, &ts);
    if (e == ETIMEDOUT)
      break;
  }
  bool all = r->done == r->nthreads;
  pthread_mutex_unlock(&r->mu);
  return all;
}

void runner_stop(runner_t *r) {
  pthread_mutex_lock(&r->mu);
  if (r->stop_ns == 0)
    r->stop_ns = now_ns();
  pthread_mutex_unlock(&r->mu);
  atomic_store(&r->stop, true);
}

uint64_t runner_join(runner_t *r) {
  for (int i = 0; i < r->nthreads; i++)
    if (r->workers[i].started) {
      pthread_join(r->workers[i].tid, NULL);
      r->workers[i].started = false;
    }
  pthread_mutex_lock(&r->mu);
  uint64_t end = r->last_done_ns;
  if (r->stop_ns != 0 && r->stop_ns < end)
    end = r->stop_ns;
  pthread_mutex_unlock(&r->mu);
  return end;
}

int runner_threads(const runner_t *r) {
  return r->nthreads;
}

thread_stats *runner_stats(runner_t *r, int i) {
  return &r->stats[i];
}

void runner_free(runner_t *r) {
  if (r == NULL)
    return;
  for (int i = 0; r->workers != NULL && i < r->nthreads; i++) {
    proto_free(&r->workers[i].proto);
    if (r->stats != NULL) {
      hist_free(r->stats[i].lat);
      hist_free(r->stats[i].wait);
    }
  }
  free(r->workers);
  free(r->stats);
  pthread_cond_destroy(&r->go_cv);
  pthread_cond_destroy(&r->done_cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}
