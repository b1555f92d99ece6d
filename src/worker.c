/*
 * A slot's worker thread owns the socket's life, like the seed's
 * Connection process: connect (resolve, TCP or Unix connect, on_connect),
 * offer the slot, watch the socket until the peer closes it (the seed's
 * tcp_closed) or a caller hands it back as broken (or it is found dead,
 * fails a ping, or outlives max_lifetime_ms), close it and reconnect at
 * once; after a failed attempt, back off and retry, forever, until the
 * pool closes.
 *
 * Events go to on_event from here, always after pool->mu is released.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <bsd/stdlib.h>

static void emit(const struct cpool *p, const struct cpool_conn *s,
                 cpool_event_type ev, cpool_error_info *info) {
  if (p->cfg.on_event == NULL)
    return;
  info->slot = s->index;
  /* A failure says its endpoint already: the slot may be on to the next. */
  if (info->endpoint < 0)
    info->endpoint = s->ep;
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

/* io_timeout_ms, after on_connect: what callers' I/O sees. */
static int apply_io_timeout(struct cpool *p, struct cpool_conn *s, int fd,
                            cpool_error_info *err) {
  if (p->cfg.io_timeout_ms <= 0 ||
      cpool__net_io_timeout(fd, p->cfg.io_timeout_ms) == 0)
    return 0;
  int e = errno;
  cpool__error_set(err, CPOOL_ECONNECT, CPOOL_STEP_CONNECT, e, s->addr,
                   "setsockopt(SO_RCVTIMEO/SO_SNDTIMEO) %s: %s", s->addr,
                   strerror(e));
  return CPOOL_ECONNECT;
}

/* Runs on_connect bounded by connect_timeout_ms: the guard shuts the
 * socket down at the deadline (guard.c), so a stalled server cannot hold
 * the worker, and the socket's options stay what on_connect made them.
 * Then io_timeout_ms.  Returns 0, CPOOL_EHANDSHAKE or CPOOL_ECONNECT. */
static int handshake(struct cpool *p, struct cpool_conn *s, int fd,
                     cpool_error_info *err) {
  void *data = NULL;
  cpool__guard_entry guard;

  if (p->cfg.on_connect == NULL)
    return apply_io_timeout(p, s, fd, err);
  cpool__guard_arm(&p->guard, &guard, fd, p->cfg.connect_timeout_ms);
  errno = 0;
  int rc = p->cfg.on_connect(fd, &data, p->cfg.cb_arg);
  int e = errno;
  int late = cpool__guard_disarm(&p->guard, &guard), io = 0;
  if (rc == 0 && !late && (io = apply_io_timeout(p, s, fd, err)) == 0) {
    s->data = data;
    return 0;
  }
  if (p->cfg.on_disconnect != NULL)
    p->cfg.on_disconnect(fd, data, p->cfg.cb_arg);
  if (io != 0)
    return io;
  if (late)
    cpool__error_set(err, CPOOL_EHANDSHAKE, CPOOL_STEP_HANDSHAKE, ETIMEDOUT,
                     s->addr, "handshake %s: timed out after %d ms", s->addr,
                     p->cfg.connect_timeout_ms);
  else
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

/* A failed attempt, counted for the pool and its endpoint. */
static void count_failure_locked(struct cpool *p, struct cpool_conn *s,
                                 cpool_error_info *err) {
  err->slot = s->index;
  p->st.connect_failures++;
  cpool__ep_failed_locked(p, s, err);
  p->st.last_error = *err;
  p->last_error_at_ms = cpool__now_ms();
}

/* Nowhere left to try in this round: BACKOFF until the slot's own delay
 * is over (err->retry_in_ms says it). */
static void back_off_locked(struct cpool *p, struct cpool_conn *s,
                            cpool_error_info *err) {
  int delay = cpool__backoff_next(&s->backoff);

  err->retry_in_ms = delay;
  s->retry_at_ms = cpool__now_ms() + delay;
  if (p->sync_err == 0) {
    p->sync_err = err->code;
    p->sync_error = *err;
  }
  cpool__set_state_locked(p, s, CPOOL_SLOT_BACKOFF);
  cpool__recycle_done_locked(p, s);
  cpool__backend_check_locked(p);
  pthread_cond_broadcast(&p->state_cv);
}

/* A connection the peer closed at once, again (after_close): a failed
 * attempt on its endpoint.  Returns 1 if another endpoint may be tried
 * at once, else 0 with the slot in BACKOFF. */
static int connect_failed(struct cpool *p, struct cpool_conn *s,
                          cpool_error_info *err) {
  pthread_mutex_lock(&p->mu);
  count_failure_locked(p, s, err);
  int elsewhere = cpool__ep_elsewhere_locked(p, s);
  if (elsewhere)
    err->retry_in_ms = 0;
  else
    back_off_locked(p, s, err);
  cpool__unlock(p);
  emit(p, s, CPOOL_EVENT_CONNECT_FAILED, err);
  if (!elsewhere)
    emit(p, s, CPOOL_EVENT_BACKOFF, err);
  return elsewhere;
}

/* One attempt on endpoint e: 0 and s->fd connected and handshaken, or a
 * CPOOL_E* code with err filled. */
static int attempt(struct cpool *p, struct cpool_conn *s, int e,
                   cpool_error_info *err) {
  int fd = -1;
  int rc = cpool__net_connect(p, &p->eps[e], &fd, s->addr, sizeof s->addr,
                              err);
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

/* Which endpoint next (endpoints.c), with p->mu held: -1 if the slot
 * backs off first.  A failure is reported now that its sequel is known:
 * the next attempt at once (retry_in_ms 0), or the back-off. */
static int next_endpoint_locked(struct cpool *p, struct cpool_conn *s,
                                int failed, cpool_error_info *err) {
  int e = cpool__ep_choose_locked(p, s);
  if (e >= 0) {
    err->retry_in_ms = 0;
    if (s->state != CPOOL_SLOT_CONNECTING)
      cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
  } else if (failed) {
    back_off_locked(p, s, err);
  }
  /* The stats' last error says it too, if it is still this slot's. */
  if (failed && p->st.last_error.slot == s->index)
    p->st.last_error.retry_in_ms = err->retry_in_ms;
  return e;
}

/* Attempts until one succeeds: every endpoint that may be tried, once
 * per round; a back-off between rounds.  Returns 0 if the pool closed. */
static int connect_attempts(struct cpool *p, struct cpool_conn *s,
                            int64_t *took_us) {
  cpool_error_info err;
  int failed = 0;

  s->tried = 0;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    int closing = p->closing;
    int e = closing ? -1 : next_endpoint_locked(p, s, failed, &err);
    cpool__unlock(p);
    if (closing)
      return 0;
    if (failed)
      emit(p, s, CPOOL_EVENT_CONNECT_FAILED, &err);
    if (e < 0) { /* (a fresh round always has an endpoint to try) */
      emit(p, s, CPOOL_EVENT_BACKOFF, &err);
      if (!backoff_sleep(p, s))
        return 0;
      s->tried = 0;
      failed = 0;
      continue;
    }
    int64_t t0 = cpool__now_us();
    int rc = attempt(p, s, e, &err);
    if (rc == CPOOL_ESHUTDOWN)
      return 0;
    if (rc == 0) {
      *took_us = cpool__now_us() - t0; /* the metrics' connect time */
      return 1;
    }
    pthread_mutex_lock(&p->mu);
    count_failure_locked(p, s, &err);
    cpool__unlock(p);
    failed = 1;
  }
}

/* Returns 1 once the slot is connected and offered, 0 if the pool closed. */
static int connect_phase(struct cpool *p, struct cpool_conn *s) {
  int64_t took = 0;
  if (!connect_attempts(p, s, &took))
    return 0;
  if (s->quick_closes == 0) /* else it grows: after_close */
    cpool__backoff_reset(&s->backoff);
  s->expires_ms = lifetime_deadline(p);
  s->connected_ms = cpool__now_ms();
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&s->peer_gone, 0, memory_order_relaxed);
  int closing = p->closing;
  cpool__recycle_done_locked(p, s);
  cpool__ep_connected_locked(p, s);
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
  cpool__guard_entry guard;
  cpool__guard_arm(&p->guard, &guard, s->fd, p->cfg.connect_timeout_ms);
  int rc = p->cfg.on_ping(s->fd, s->data, p->cfg.cb_arg);
  if (cpool__guard_disarm(&p->guard, &guard))
    rc = -1; /* shut down at the deadline: the socket is dead */
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

/* The peer closed or reset the socket.  Idle, or parked (its holder's
 * reservation or not): the slot is the worker's now.  Checked out: marked,
 * so that its checkin, or its holder's next fast checkout, hands it back
 * whatever the caller says (a caller may have read a whole reply before
 * the FIN).  The mark is stored before the lease is loaded, and a fast
 * checkin stores its lease before it loads the mark (both sequentially
 * consistent): one of the two sees the other, so a slot parked at that
 * moment is not left on the fast list with a dead socket.  Returns 1 if
 * the worker took the slot. */
static int peer_closed_locked(struct cpool *p, struct cpool_conn *s) {
  atomic_store(&s->peer_gone, CPOOL__GONE_PEER);
  p->st.peer_closes++;
  if (s->state == CPOOL_SLOT_IDLE)
    cpool__free_remove_locked(p, s);
  else if (s->state != CPOOL_SLOT_BUSY || s->fast_pos < 0 ||
           !cpool__unpark_locked(p, s, 1))
    return 0; /* checked out: its checkin hands it back */
  s->reason = CPOOL__PEER_CLOSED;
  cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
  return 1;
}

/* Sleep in poll() with p->mu released, until the peer closes the socket
 * (POLLRDHUP; POLLHUP and POLLERR come anyway), the pool's wake
 * descriptor is readable (close), the slot is handed back (its socket is
 * then shut for reading: hand_to_worker), or wake_at_ms (a ping; 0:
 * none).  No POLLIN: the replies callers read must not wake the worker,
 * and checkouts and checkins make no system call for it.  Returns with
 * p->mu held; 1 if the socket reported a close. */
static int watch_socket(struct cpool *p, struct cpool_conn *s,
                        int64_t wake_at_ms) {
  struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLRDHUP},
                          {.fd = p->wake_fd, .events = POLLIN}};
  int timeout = -1;
  if (wake_at_ms > 0) { /* a little late rather than early, as below; on
                          the coarse clock, ping_due's */
    int64_t left = wake_at_ms + 5 - cpool__coarse_ms();
    timeout = left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
  }
  cpool__unlock(p);
  int n = poll(pfd, 2, timeout);
  int closed = n > 0 && (pfd[0].revents &
                         (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  pthread_mutex_lock(&p->mu);
  if (n < 0 && errno != EINTR) /* (ENOMEM): not in a loop; a hand-back
                                  or close still wakes it */
    cpool__wait_locked(p, &s->cv, cpool__now_us() + 10000);
  return closed;
}

/* While connected: watch the socket (or, once it has nothing more to
 * tell, or while the pool closes, sleep on the slot's condition variable)
 * until the slot is handed back (reason set), the peer closes it, a ping
 * is due, or the pool closes.  Returns the reason the socket must be
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
    if (!p->closing && cpool__ep_should_move_locked(p, s, &wake_at))
      continue; /* reason set: back to the endpoint it prefers */
    if (!p->closing && !atomic_load_explicit(&s->peer_gone,
                                             memory_order_relaxed)) {
      if (watch_socket(p, s, wake_at) && s->reason == CPOOL__KEEP &&
          !p->closing)
        peer_closed_locked(p, s);
      continue;
    }
    /* Wait for a hand-back or close.  Else wake for the ping, a little
     * late rather than early: the coarse clock may lag. */
    cpool__wait_locked(p, &s->cv, wake_at > 0 ? (wake_at + 5) * 1000 : -1);
  }
  if (why != CPOOL__KEEP) {
    cpool__ep_disconnected_locked(p, s);
    p->st.disconnects++;
    if (why == CPOOL__RECYCLE)
      p->st.recycles++;
  }
  cpool__unlock(p);
  return why;
}

static const char *reason_text(enum cpool__reason why, int sys_errno) {
  switch (why) {
  case CPOOL__BROKEN:
    return "checked in broken:";
  case CPOOL__DEAD:
    return "found dead at checkout:";
  case CPOOL__PING_FAIL:
    return "ping failed:";
  case CPOOL__RECYCLE:
    return "max_lifetime_ms reached:";
  case CPOOL__MOVE:
    return "moving to the endpoint it prefers, from";
  case CPOOL__PEER_CLOSED:
    return sys_errno == ECONNRESET ? "reset by peer:"
           : sys_errno != 0        ? "connection lost:"
                                   : "closed by peer:";
  case CPOOL__INVALID:
    return "failed validation:";
  default:
    return "closed:";
  }
}

/* The socket is closed (why): the event, and, if the peer closed it soon
 * after it connected a second time in a row (a server at its client
 * limit, say, or a proxy with no backend, that accepts and hangs up), a
 * back-off before the next attempt, growing while that goes on; otherwise
 * the next attempt is at once.  Returns 0 if the pool closed meanwhile. */
static int after_close(struct cpool *p, struct cpool_conn *s,
                       enum cpool__reason why) {
  cpool_error_info info;
  int e = why == CPOOL__PEER_CLOSED ? s->peer_errno : 0;
  int64_t lived = cpool__now_ms() - s->connected_ms;

  cpool__error_set(&info, 0, CPOOL_STEP_IO, e, s->addr, "%s %s%s%s",
                   reason_text(why, e), s->addr, e ? ": " : "",
                   e ? strerror(e) : "");
  emit(p, s,
       why == CPOOL__RECYCLE ? CPOOL_EVENT_RECYCLED : CPOOL_EVENT_DISCONNECTED,
       &info);
  if (why == CPOOL__PEER_CLOSED && lived < p->cfg.backoff_min_ms)
    s->quick_closes++;
  else
    s->quick_closes = 0;
  if (s->quick_closes < 2)
    return 1;
  cpool__error_set(&info, CPOOL_ECONNECT, CPOOL_STEP_IO, e, s->addr,
                   "%s %s %lld ms after connecting, %d times in a row",
                   reason_text(why, e), s->addr, (long long)lived,
                   s->quick_closes);
  return connect_failed(p, s, &info) || backoff_sleep(p, s);
}

/* The error the kernel reports with a close (ECONNRESET for a reset,
 * ETIMEDOUT once keepalive or TCP_USER_TIMEOUT gave up), read (and
 * cleared) only once the socket is the worker's: a caller holding it must
 * see the error itself. */
static int socket_error(int fd) {
  int e = 0;
  socklen_t len = sizeof e;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 ? e : 0;
}

void *cpool__worker_main(void *arg) {
  struct cpool_conn *s = arg;
  struct cpool *p = s->pool;

  while (connect_phase(p, s)) {
    enum cpool__reason why = serve_phase(p, s);
    if (why == CPOOL__KEEP)
      break;
    s->peer_errno = why == CPOOL__PEER_CLOSED ? socket_error(s->fd) : 0;
    close_socket(p, s);
    if (!after_close(p, s, why))
      break;
  }
  int had_socket = s->fd >= 0;
  close_socket(p, s);
  pthread_mutex_lock(&p->mu);
  if (had_socket)
    p->st.disconnects++;
  cpool__ep_disconnected_locked(p, s);
  cpool__recycle_done_locked(p, s);
  if (s->free_pos >= 0) /* closed: free no more (check.c) */
    cpool__free_remove_locked(p, s);
  cpool__set_state_locked(p, s, CPOOL_SLOT_CLOSED);
  pthread_cond_broadcast(&p->state_cv);
  cpool__unlock(p);
  return NULL;
}
