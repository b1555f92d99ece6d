/*
 * The pool's life: open (config, allocation, workers, the sync start),
 * close (waiters failed, the drain, workers joined, memory freed), the
 * accessors and the stats.  How slots reach callers is in the modules
 * below it, each depending only on those before it:
 *   platform.c  clocks, timed waits
 *   config.c    defaults and checks
 *   turn.h      the turn policy: pure functions of state and time
 *   slots.c     slot states, the free stack, the fast list   (p->mu held)
 *   waitq.c     the waiters' FIFO queue and their deadlines  (p->mu held)
 *   codel.c     CoDel's window                               (p->mu held)
 *   handoff.c   a freed or parked slot to a caller           (p->mu held)
 *   self.h      this thread's turn and parked slot
 *   checkout.c, checkin.c   the public calls, composing the above
 * check.c checks their invariants at every unlock in debug builds; the
 * lock-free part is described once, in internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

static _Atomic uint64_t pools_opened;

/* Slots on the fast list at most: each is one more place a caller short of
 * a slot must look (under the lock), and only running threads gain from
 * them. */
#define FAST_MAX 64

/* ------------------------------------------------------------------ */
/* Accessors and stats.                                                */

int cpool_conn_fd(const cpool_conn_t *s) { return s ? s->fd : -1; }
void *cpool_conn_data(const cpool_conn_t *s) { return s ? s->data : NULL; }
int cpool_conn_slot(const cpool_conn_t *s) { return s ? s->index : -1; }

/* What a slot's holders count without the lock (internal.h). */
static void sum_slot(cpool_stats_t *out, const struct cpool_conn *s) {
  out->checkouts +=
      atomic_load_explicit(&s->fast_checkouts, memory_order_relaxed);
  out->hold_time_us +=
      1000 * atomic_load_explicit(&s->hold_ms, memory_order_relaxed);
  for (int b = 0; b < CPOOL_HIST_BUCKETS; b++)
    out->hold_hist[b] +=
        atomic_load_explicit(&s->hold_hist[b], memory_order_relaxed);
}

int cpool__stats(cpool_t *p, cpool_stats_t *out) {
  if (p == NULL || out == NULL)
    return CPOOL_EINVAL;
  if (cpool__forked(p))
    return CPOOL_EFORKED; /* its lock may be held for ever (fork.c) */
  pthread_mutex_lock(&p->mu);
  *out = p->st;
  out->size = p->size;
  out->connecting = p->counts[CPOOL_SLOT_CONNECTING];
  out->idle = p->counts[CPOOL_SLOT_IDLE];
  out->busy = p->counts[CPOOL_SLOT_BUSY];
  out->backoff = p->counts[CPOOL_SLOT_BACKOFF];
  out->closed = p->counts[CPOOL_SLOT_CLOSED];
  out->checking = p->counts[CPOOL_SLOT_CHECKING];
  out->waiters = p->nwaiters;
  out->nendpoints = p->neps;
  /* Parked slots are idle to the user, and the fast path counts its own
   * checkouts. */
  for (int i = 0; i < p->nfast; i++) {
    const struct cpool_conn *s = &p->slots[p->fast_list[i]];
    if (CPOOL__LEASE_STATE(atomic_load(&s->lease)) == CPOOL__LEASE_PARKED) {
      out->busy--;
      out->idle++;
    }
  }
  for (int i = 0; i < p->size; i++)
    sum_slot(out, &p->slots[i]);
  out->checked_out_errors +=
      atomic_load_explicit(&p->nowait_refusals, memory_order_relaxed);
  if (out->last_error.code != 0)
    out->last_error.age_ms = cpool__now_ms() - p->last_error_at_ms;
  cpool__unlock(p);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Open and close.                                                     */

/* The memory alone: all a child process after fork may free (fork.c). */
static void pool_free_memory(struct cpool *p) {
  free(p->slots);
  free(p->free_stack);
  free(p->fast_list);
  free(p->host);
  free(p->unix_path);
  cpool__endpoints_free(p);
  free(p);
}

static void pool_free(struct cpool *p) {
  cpool__fork_unregister(p);
  if (p->wake_fd >= 0)
    close(p->wake_fd);
  for (int i = 0; p->slots != NULL && i < p->size; i++)
    pthread_cond_destroy(&p->slots[i].cv);
  pthread_cond_destroy(&p->state_cv);
  cpool__guard_destroy(&p->guard);
  pthread_condattr_destroy(&p->cond_attr);
  pthread_mutex_destroy(&p->mu);
  pool_free_memory(p);
}

/* Critical sections are a few dozen instructions: spinning briefly
 * before sleeping beats a futex round trip when callers contend. */
static void sync_init(struct cpool *p) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&p->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_init(&p->cond_attr);
  pthread_condattr_setclock(&p->cond_attr, CLOCK_MONOTONIC);
  pthread_cond_init(&p->state_cv, &p->cond_attr);
  cpool__guard_init(&p->guard, &p->cond_attr);
}

/* Every slot CONNECTING, its worker about to start. */
static void slots_init(struct cpool *p) {
  const cpool_config *c = &p->cfg;
  p->counts[CPOOL_SLOT_CONNECTING] = p->size;
  for (int i = 0; i < p->size; i++) {
    struct cpool_conn *s = &p->slots[i];
    s->pool = p;
    s->index = i;
    s->fd = -1;
    s->free_pos = -1;
    s->fast_pos = -1;
    s->state = CPOOL_SLOT_CONNECTING;
    s->ep = -1;
    pthread_cond_init(&s->cv, &p->cond_attr);
    cpool__backoff_init(&s->backoff, c->backoff_type, c->backoff_min_ms,
                        c->backoff_max_ms);
  }
}

static int pool_alloc(struct cpool **out, const cpool_config *c,
                      cpool_error_info *err) {
  /* Aligned: the fast path's fields and each slot have lines of their
   * own. */
  struct cpool *p = aligned_alloc(alignof(struct cpool), sizeof *p);
  if (p == NULL)
    goto nomem;
  memset(p, 0, sizeof *p);
  p->gen = atomic_fetch_add(&pools_opened, 1) + 1;
  p->wake_fd = -1;
  p->cfg = *c;
  p->size = c->size;
  p->policy = (cpool__turn_policy){.after_us = c->handoff_after_us,
                                   .max_us = c->handoff_max_us,
                                   .size = c->size};
  p->poll_scale = 1;
  sync_init(p);
  p->slots = aligned_alloc(alignof(struct cpool_conn),
                           (size_t)p->size * sizeof *p->slots);
  if (p->slots != NULL)
    memset(p->slots, 0, (size_t)p->size * sizeof *p->slots);
  p->free_stack = calloc((size_t)p->size, sizeof *p->free_stack);
  p->fast_list = calloc((size_t)p->size, sizeof *p->fast_list);
  /* An empty string means "not set", as config_resolve judged it. */
  int has_host = c->host != NULL && c->host[0] != '\0';
  int has_unix = c->unix_path != NULL && c->unix_path[0] != '\0';
  p->host = has_host ? strdup(c->host) : NULL;
  p->unix_path = has_unix ? strdup(c->unix_path) : NULL;
  if (p->slots == NULL || p->free_stack == NULL || p->fast_list == NULL ||
      (has_host && !p->host) ||
      (has_unix && !p->unix_path)) {
    pool_free(p);
    goto nomem;
  }
  p->cfg.host = p->host;
  p->cfg.unix_path = p->unix_path;
  p->cfg.endpoints = NULL; /* the caller's: parsed into p->eps (open) */
  p->codel_min_wait_ms = -1;
  p->codel_start_ms = cpool__now_ms();
  p->fast_max = p->size < FAST_MAX ? p->size : FAST_MAX;
  slots_init(p);
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int e;
  if (p->wake_fd < 0) {
    e = errno;
    pool_free(p);
    cpool__error_set(err, CPOOL_ESYS, CPOOL_STEP_NONE, e, NULL,
                     "eventfd: %s", strerror(e));
    return CPOOL_ESYS;
  }
  if ((e = cpool__fork_register(p)) != 0) {
    pool_free(p);
    cpool__error_set(err, CPOOL_ENOMEM, CPOOL_STEP_NONE, e, NULL,
                     "pthread_atfork: %s", strerror(e));
    return CPOOL_ENOMEM;
  }
  *out = p;
  return 0;
nomem:
  cpool__error_set(err, CPOOL_ENOMEM, CPOOL_STEP_NONE, ENOMEM, NULL,
                   "out of memory for a pool of %d slots", c->size);
  return CPOOL_ENOMEM;
}

/* Workers run with every signal blocked: signals are the program's. */
static int start_workers(struct cpool *p, cpool_error_info *err) {
  pthread_attr_t attr;
  sigset_t all, old;
  int rc = 0;

  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, p->cfg.worker_stack_size);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (int i = 0; i < p->size; i++) {
    struct cpool_conn *s = &p->slots[i];
    int e = pthread_create(&s->thread, &attr, cpool__worker_main, s);
    if (e != 0) {
      cpool__error_set(err, CPOOL_ESYS, CPOOL_STEP_NONE, e, NULL,
                       "pthread_create (worker %d of %d): %s", i, p->size,
                       strerror(e));
      rc = CPOOL_ESYS;
      break;
    }
    s->thread_started = 1;
    char name[24]; /* as top -H and gdb show it: "cpool-w12" (16 at most) */
    snprintf(name, sizeof name, "cpool-w%d", i % 100000000);
    pthread_setname_np(s->thread, name);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc;
}

static void wake_workers(struct cpool *p) {
  uint64_t one = 1;
  ssize_t n = write(p->wake_fd, &one, sizeof one);
  (void)n; /* an eventfd counter cannot overflow from one write */
  for (int i = 0; i < p->size; i++)
    pthread_cond_signal(&p->slots[i].cv);
}

static int64_t deadline_of(int64_t timeout_ms) {
  return timeout_ms < 0 ? -1 : cpool__now_us() + timeout_ms * 1000;
}

/* Stop everything; returns how many slots were still checked out. */
static int shutdown_pool(struct cpool *p, int drain_timeout_ms) {
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  cpool__fail_waiters_locked(p, CPOOL_ESHUTDOWN);
  /* Parked slots are idle: back to the locked side before the workers
   * look; a checkin parking one from now on sees closing and takes it
   * back itself, unless another caller's checkout takes it first (and
   * gets CPOOL_ESHUTDOWN and gives it back). */
  cpool__reclaim_all_locked(p, 1);
  wake_workers(p);
  /* Woken waiters still need the lock to leave, and one handed a slot
   * just now gives it back: the pool must outlive them, and what the
   * drain counts as out must be what callers really hold. */
  while (p->sleepers > 0)
    cpool__wait_locked(p, &p->state_cv, -1);
  int64_t until = deadline_of(drain_timeout_ms);
  while (p->counts[CPOOL_SLOT_BUSY] > 0 &&
         (until < 0 || cpool__now_us() < until))
    cpool__wait_locked(p, &p->state_cv, until);
  int busy = p->counts[CPOOL_SLOT_BUSY];
  p->forced = 1;
  /* Slots still out: shut their sockets down so that a caller blocked in
   * recv() or send() on one wakes up with an error instead of hanging. */
  for (int i = 0; busy > 0 && i < p->size; i++)
    if (p->slots[i].state == CPOOL_SLOT_BUSY && p->slots[i].fd >= 0)
      shutdown(p->slots[i].fd, SHUT_RDWR);
  wake_workers(p);
  cpool__unlock(p);

  for (int i = 0; i < p->size; i++)
    if (p->slots[i].thread_started)
      pthread_join(p->slots[i].thread, NULL);
  cpool__guard_stop(&p->guard); /* no callback runs any more */
  /* Checkins and checkouts still inside the pool (see internal.h): a
   * fast checkin that parked its slot, which was taken and given back
   * since; a checkin after the drain's deadline, or a checkout, waiting
   * for the lock.  A few instructions, unless a thread was preempted. */
  for (int i = 0; i < p->size; i++)
    while (atomic_load_explicit(&p->slots[i].in_checkin,
                                memory_order_seq_cst))
      sched_yield();
  while (atomic_load_explicit(&p->entered, memory_order_seq_cst))
    sched_yield();
  return busy;
}

/* Slots connected: offered (IDLE), being pinged (CHECKING) or checked
 * out (BUSY).  A ping moves a slot out of IDLE and back without it ever
 * being disconnected. */
static int connected_slots(const struct cpool *p) {
  return p->counts[CPOOL_SLOT_IDLE] + p->counts[CPOOL_SLOT_CHECKING] +
         p->counts[CPOOL_SLOT_BUSY];
}

/* Sync start: wait until every slot is up, one fails, or time runs out.
 * Workers broadcast state_cv whenever connected_slots may have changed. */
static int wait_all_connected(struct cpool *p, cpool_error_info *err) {
  int64_t until = deadline_of(2 * (int64_t)p->cfg.connect_timeout_ms + 1000);
  int rc = 0;

  pthread_mutex_lock(&p->mu);
  while (connected_slots(p) < p->size && p->sync_err == 0 &&
         cpool__now_us() < until)
    cpool__wait_locked(p, &p->state_cv, until);
  if (p->sync_err != 0) {
    rc = p->sync_err;
    if (err != NULL)
      *err = p->sync_error;
  } else if (connected_slots(p) < p->size) {
    rc = CPOOL_ETIMEDOUT;
    cpool__error_set(err, rc, CPOOL_STEP_CONNECT, ETIMEDOUT, NULL,
                     "%d of %d slots connected before the deadline",
                     connected_slots(p), p->size);
  }
  cpool__unlock(p);
  return rc;
}

int cpool__open(cpool_t **out, const cpool_config *cfg, cpool_error_info *err) {
  cpool_config c;
  struct cpool *p = NULL;
  int rc;

  if (err != NULL)
    memset(err, 0, sizeof *err);
  if (out != NULL)
    *out = NULL;
  if (out == NULL || cfg == NULL) {
    cpool__error_set(err, CPOOL_EINVAL, CPOOL_STEP_NONE, 0, NULL,
                     "invalid configuration: %s",
                     out == NULL ? "pool is NULL" : "cfg is NULL");
    return CPOOL_EINVAL;
  }
  if ((rc = cpool__config_resolve(&c, cfg, err)) != 0)
    return rc;
  if ((rc = pool_alloc(&p, &c, err)) != 0)
    return rc;
  if ((rc = cpool__endpoints_init(p, &c, err)) != 0) {
    pool_free(p);
    return rc;
  }
  /* The guard bounds the callbacks (guard.c); before the workers. */
  rc = c.on_connect != NULL || c.on_ping != NULL
           ? cpool__guard_start(&p->guard, err)
           : 0;
  if (rc == 0)
    rc = start_workers(p, err);
  if (rc == 0 && c.start == CPOOL_START_SYNC)
    rc = wait_all_connected(p, err);
  if (rc != 0) {
    shutdown_pool(p, 0);
    pool_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* In a child process after fork: the workers are the parent's and its
 * lock or condition variables may be held or waited on there (a destroy
 * could block for ever), so only the memory is freed; fork.c closed the
 * child's copies of the descriptors at the fork.  No on_disconnect: the
 * connections, and what the callbacks attached to them, are the
 * parent's. */
int cpool_close(cpool_t *p, int drain_timeout_ms) {
  if (p == NULL)
    return 0;
  if (drain_timeout_ms < CPOOL_WAIT_FOREVER)
    return CPOOL_EINVAL;
  if (cpool__forked(p)) {
    pool_free_memory(p);
    return 0;
  }
  int busy = shutdown_pool(p, drain_timeout_ms);
  pool_free(p);
  return busy > 0 ? CPOOL_EBUSY : 0;
}
