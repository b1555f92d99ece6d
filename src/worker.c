/*
 * A slot's worker thread owns the socket's life, like the seed's
 * Connection process: connect (resolve, TCP or Unix connect, on_connect),
 * offer the slot, wait until a caller hands it back as broken (or it is
 * found dead, fails a ping, or outlives max_lifetime_ms), close it and
 * reconnect at once; after a failed attempt, back off and retry, forever,
 * until the pool closes.
 *
 * Events go to on_event from here, always after pool->mu is released.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <bsd/stdlib.h>

static void emit(const struct cpool *p, const struct cpool_conn *s,
                 cpool_event_type ev, cpool_error_info *info) {
  if (p->cfg.on_event == NULL)
    return;
  info->slot = s->index;
  p->cfg.on_event(s->index, ev, info, p->cfg.cb_arg);
}

static void emit_simple(const struct cpool *p, const struct cpool_conn *s,
                        cpool_event_type ev, int code, cpool_step step,
                        const char *what) {
  cpool_error_info info;
  if (p->cfg.on_event == NULL)
    return;
  cpool__error_set(&info, code, step, 0, s->addr, "%s %s", what, s->addr);
  emit(p, s, ev, &info);
}

/* Runs on_connect with socket timeouts so a stalled server cannot hold the
 * worker past connect_timeout_ms.  Returns 0 or CPOOL_EHANDSHAKE. */
static int handshake(struct cpool *p, struct cpool_conn *s, int fd,
                     cpool_error_info *err) {
  void *data = NULL;

  cpool__io_bound bound;

  if (p->cfg.on_connect == NULL)
    return 0;
  cpool__net_io_bound(fd, p->cfg.connect_timeout_ms, &bound);
  errno = 0;
  int rc = p->cfg.on_connect(fd, &data, p->cfg.cb_arg);
  int e = errno;
  /* What on_connect itself set stays: only our bound is taken off. */
  cpool__net_io_restore(fd, &bound);
  if (rc == 0) {
    s->data = data;
    return 0;
  }
  if (p->cfg.on_disconnect != NULL)
    p->cfg.on_disconnect(fd, data, p->cfg.cb_arg);
  cpool__error_set(err, CPOOL_EHANDSHAKE, CPOOL_STEP_HANDSHAKE, e, s->addr,
                   "handshake %s: on_connect returned %d%s%s", s->addr, rc,
                   e ? ": " : "", e ? strerror(e) : "");
  return CPOOL_EHANDSHAKE;
}

static void close_socket(struct cpool *p, struct cpool_conn *s) {
  if (s->fd < 0)
    return;
  if (p->cfg.on_disconnect != NULL)
    p->cfg.on_disconnect(s->fd, s->data, p->cfg.cb_arg);
  /* -1 before the close: a fork in between must not leave the child a
   * number that another thread may have opened since (fork.c). */
  int fd = s->fd;
  s->fd = -1;
  s->data = NULL;
  close(fd);
}

static int64_t lifetime_deadline(const struct cpool *p) {
  if (p->cfg.max_lifetime_ms <= 0)
    return 0;
  int64_t jitter = p->cfg.lifetime_jitter_ms > 0
                       ? arc4random_uniform(
                             (uint32_t)p->cfg.lifetime_jitter_ms + 1u)
                       : 0;
  return cpool__coarse_ms() + p->cfg.max_lifetime_ms - jitter;
}

/* Sleep out a backoff delay; returns 0 if the pool closed meanwhile. */
static int backoff_sleep(struct cpool *p, struct cpool_conn *s) {
  int open;

  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->closing)
      break;
    int64_t now = cpool__now_ms();
    if (now >= s->retry_at_ms)
      break;
    cpool__wait_locked(p, &s->cv, s->retry_at_ms * 1000);
  }
  open = !p->closing;
  cpool__unlock(p);
  return open;
}

static void connect_failed(struct cpool *p, struct cpool_conn *s,
                           cpool_error_info *err) {
  int delay = cpool__backoff_next(&s->backoff);

  err->slot = s->index;
  err->retry_in_ms = delay;
  pthread_mutex_lock(&p->mu);
  p->st.connect_failures++;
  p->st.last_error = *err;
  p->last_error_at_ms = cpool__now_ms();
  s->retry_at_ms = p->last_error_at_ms + delay;
  if (p->sync_err == 0) {
    p->sync_err = err->code;
    p->sync_error = *err;
  }
  cpool__set_state_locked(p, s, CPOOL_SLOT_BACKOFF);
  cpool__recycle_done_locked(p, s);
  cpool__backend_check_locked(p);
  pthread_cond_broadcast(&p->state_cv);
  cpool__unlock(p);

  emit(p, s, CPOOL_EVENT_CONNECT_FAILED, err);
  emit(p, s, CPOOL_EVENT_BACKOFF, err);
}

/* One attempt: resolve, connect, on_connect.  0 with s->fd set, or the
 * code, err filled. */
static int connect_once(struct cpool *p, struct cpool_conn *s,
                        cpool_error_info *err) {
  int fd = -1;
  int rc = cpool__net_connect(p, &fd, s->addr, sizeof s->addr, err);
  if (rc == 0) {
    s->fd = fd;
    rc = handshake(p, s, fd, err);
    if (rc != 0) {
      s->fd = -1; /* before the close, as in close_socket */
      close(fd);
    }
  }
  return rc;
}

/* Returns 1 once the slot is connected and offered, 0 if the pool closed. */
static int connect_phase(struct cpool *p, struct cpool_conn *s) {
  int64_t t0;
  for (;;) {
    cpool_error_info err;

    pthread_mutex_lock(&p->mu);
    int closing = p->closing;
    if (!closing && s->state != CPOOL_SLOT_CONNECTING)
      cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
    cpool__unlock(p);
    if (closing)
      return 0;

    t0 = cpool__now_us();
    int rc = connect_once(p, s, &err);
    if (rc == CPOOL_ESHUTDOWN)
      return 0;
    if (rc == 0)
      break;
    connect_failed(p, s, &err);
    if (!backoff_sleep(p, s))
      return 0;
  }

  int64_t took = cpool__now_us() - t0;
  cpool__backoff_reset(&s->backoff);
  s->expires_ms = lifetime_deadline(p);
  pthread_mutex_lock(&p->mu);
  int closing = p->closing;
  cpool__recycle_done_locked(p, s);
  if (!closing) {
    p->st.connects++;
    cpool__hist_add(p->st.connect_hist, &p->st.connect_time_us,
                    took > 0 ? (uint64_t)took : 0);
    cpool__set_last_used(s, cpool__coarse_ms());
    cpool__make_available_locked(p, s);
    pthread_cond_broadcast(&p->state_cv);
  }
  cpool__unlock(p);
  if (closing)
    return 0; /* the exit path closes the socket */
  emit_simple(p, s, CPOOL_EVENT_CONNECTED, 0, CPOOL_STEP_NONE, "connected to");
  return 1;
}

/* on_ping for a slot idle past ping_interval_ms, with p->mu held on entry
 * and on return (released around the callback). */
static void ping_slot(struct cpool *p, struct cpool_conn *s) {
  cpool__free_remove_locked(p, s);
  cpool__set_state_locked(p, s, CPOOL_SLOT_CHECKING);
  cpool__unlock(p);
  /* Bounded like the handshake: a stalled peer fails the ping instead of
   * holding the worker (and cpool_close) forever. */
  cpool__io_bound bound;
  cpool__net_io_bound(s->fd, p->cfg.connect_timeout_ms, &bound);
  int rc = p->cfg.on_ping(s->fd, s->data, p->cfg.cb_arg);
  cpool__net_io_restore(s->fd, &bound);
  pthread_mutex_lock(&p->mu);
  p->st.pings++;
  if (p->closing) {
    cpool__set_state_locked(p, s, CPOOL_SLOT_IDLE); /* not offered: we exit */
  } else if (rc == 0) {
    cpool__set_last_used(s, cpool__coarse_ms());
    cpool__make_available_locked(p, s);
  } else {
    p->st.ping_failures++;
    s->reason = CPOOL__PING_FAIL;
    cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
  }
  /* The slot left CHECKING: whoever waits on the slot counts (a sync
   * open, close's drain) looks again.  Pings are rare; this is cheap. */
  pthread_cond_broadcast(&p->state_cv);
}

/* Is a ping due?  A parked slot (see internal.h) is idle too, though the
 * locked side counts it as BUSY: once its idle time is up it is reclaimed
 * (made IDLE, or handed to a waiter) and pinged on the next round.  Its
 * holder parks it again without telling the worker, so while the slot is
 * BUSY the worker looks again every ping_interval_ms. */
static int ping_due(struct cpool *p, struct cpool_conn *s,
                    int64_t *wake_at_ms) {
  int interval = p->cfg.ping_interval_ms;
  if (interval <= 0)
    return 0;
  int64_t now = cpool__coarse_ms();
  int64_t due = cpool__last_used(s) + interval;
  if (s->state == CPOOL_SLOT_BUSY) {
    /* Reclaimed, it may have gone straight to a waiter: look again. */
    if (now >= due && cpool__reclaim_locked(p, s) && s->state == CPOOL_SLOT_IDLE)
      return 1;
    *wake_at_ms = now >= due ? now + interval : due;
    return 0;
  }
  if (s->state != CPOOL_SLOT_IDLE)
    return 0;
  if (now >= due)
    return 1;
  *wake_at_ms = due;
  return 0;
}

/* While connected: sleep until the slot is handed back (reason set), a
 * ping is due, or the pool closes.  Returns the reason the socket must be
 * closed, or CPOOL__KEEP if the pool is closing. */
static enum cpool__reason serve_phase(struct cpool *p, struct cpool_conn *s) {
  enum cpool__reason why = CPOOL__KEEP;

  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->closing && (s->state != CPOOL_SLOT_BUSY || p->forced))
      break;
    if (s->reason != CPOOL__KEEP) {
      why = s->reason;
      s->reason = CPOOL__KEEP;
      break;
    }
    int64_t wake_at = 0;
    if (!p->closing && ping_due(p, s, &wake_at)) {
      ping_slot(p, s);
      continue;
    }
    /* No ping due: wait for a hand-back or close.  Else wake for the ping,
     * a little late rather than early: the coarse clock may lag. */
    cpool__wait_locked(p, &s->cv, wake_at > 0 ? (wake_at + 5) * 1000 : -1);
  }
  if (why != CPOOL__KEEP) {
    p->st.disconnects++;
    if (why == CPOOL__RECYCLE)
      p->st.recycles++;
  }
  cpool__unlock(p);
  return why;
}

static const char *reason_text(enum cpool__reason why) {
  switch (why) {
  case CPOOL__BROKEN:
    return "checked in broken:";
  case CPOOL__DEAD:
    return "found dead at checkout:";
  case CPOOL__PING_FAIL:
    return "ping failed:";
  case CPOOL__RECYCLE:
    return "max_lifetime_ms reached:";
  default:
    return "closed:";
  }
}

void *cpool__worker_main(void *arg) {
  struct cpool_conn *s = arg;
  struct cpool *p = s->pool;

  while (connect_phase(p, s)) {
    enum cpool__reason why = serve_phase(p, s);
    if (why == CPOOL__KEEP)
      break;
    close_socket(p, s);
    emit_simple(p, s,
                why == CPOOL__RECYCLE ? CPOOL_EVENT_RECYCLED
                                      : CPOOL_EVENT_DISCONNECTED,
                0, CPOOL_STEP_IO, reason_text(why));
  }
  int had_socket = s->fd >= 0;
  close_socket(p, s);
  pthread_mutex_lock(&p->mu);
  if (had_socket)
    p->st.disconnects++;
  cpool__recycle_done_locked(p, s);
  if (s->free_pos >= 0) /* closed: free no more (check.c) */
    cpool__free_remove_locked(p, s);
  cpool__set_state_locked(p, s, CPOOL_SLOT_CLOSED);
  pthread_cond_broadcast(&p->state_cv);
  cpool__unlock(p);
  return NULL;
}
