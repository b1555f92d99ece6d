/*
 * Checkout: the fast path (this thread's parked slot, one compare-and-
 * swap), else under p->mu a free slot (barging within a turn), else the
 * queue.
 */
#include "self.h"

_Thread_local struct cpool__my_turn cpool__my_turn;
_Thread_local struct cpool__my_parked cpool__my_parked;

int cpool__checkout_fail_locked(struct cpool *p, int code,
                                cpool_error_info *why) {
  switch (code) {
  case CPOOL_ECHECKEDOUT:
    p->st.checked_out_errors++;
    break;
  case CPOOL_ETIMEDOUT:
    p->st.timeouts++;
    break;
  case CPOOL_ECLOSED:
    p->st.closed_errors++;
    cpool__explain_down_locked(p, why);
    break;
  case CPOOL_EOVERLOAD:
    p->st.overloads++;
    break;
  }
  return code;
}

static int64_t wait_deadline_us(const struct cpool *p, const cpool__waiter *w,
                                int64_t deadline_us) {
  int64_t until = deadline_us;
  if (p->cfg.queue_target_ms > 0) {
    /* Wake to re-judge at twice the target and at each window's end. */
    int64_t shed_at = w->since_us + 2000LL * p->cfg.queue_target_ms;
    int64_t roll_at = (p->codel_start_ms + p->cfg.queue_interval_ms) * 1000LL;
    int64_t next = shed_at > cpool__now_us() ? shed_at : roll_at;
    if (until < 0 || next < until)
      until = next;
  }
  return until;
}

/* w joins the queue, with its deadline fixed (see wait_for_slot). */
static void wait_join(struct cpool *p, cpool__waiter *w, int64_t deadline_us) {
  w->since_us = cpool__now_us();
  w->deadline_us = deadline_us;
  w->cut_us = cpool__waiter_cut(&p->policy, w->since_us, w->deadline_us);
  pthread_cond_init(&w->cv, &p->cond_attr);
  cpool__wq_append_locked(p, w);
  /* Now that nwaiters counts us, no checkin parks a slot unseen: take
   * back those parked before (the other half of the pair in
   * cpool_checkin). */
  if (p->nfast > 0)
    cpool__reclaim_all_locked(p, 0);
  /* Our deadline moved the cut earlier: slots parked or held within a
   * turn are the waiters' from then on, and the oldest waiter, which
   * polls for them, must look by then. */
  if (w->cut_us != 0 && p->nfast > 0 && w->cut_us == cpool__cut_now(p))
    cpool__watch_parked_locked(p, w->cut_us);
  p->st.waits++;
  p->sleepers++;
}

/* One look, awake: 1 if the wait is over (*rc, and *out if 0), 0 if w
 * must sleep, -1 if it must look again at once. */
static int wait_try(struct cpool *p, cpool__waiter *w, struct cpool_conn **out,
                    int *rc, cpool_error_info *why) {
  /* A slot handed over wins over everything, even a deadline that passed
   * at the same instant: it must never be lost. */
  if (w->slot != NULL) {
    *out = w->slot;
    return 1;
  }
  if (w->err != 0) {
    *rc = cpool__checkout_fail_locked(p, w->err, why);
    return 1;
  }
  /* Free slots are for the waiters woken for them (the oldest). */
  if (p->nfree > 0 && (w->woken || p->wq_head == w)) {
    cpool__waiter_leave_locked(p, w);
    *out = cpool__take_free_locked(p);
    return 1;
  }
  /* A slot parked by a thread within its turn may be left there: the
   * oldest waiter takes it once its reservation is over. */
  if (p->wq_head == w && p->nfree == 0 && p->nfast > 0 &&
      cpool__reclaim_one_locked(p))
    return -1;
  cpool__clear_woken_locked(p, w);
  int64_t now_us = cpool__now_us();
  int code = 0;
  if (w->deadline_us >= 0 && now_us >= w->deadline_us)
    code = CPOOL_ETIMEDOUT;
  if (code == 0 && p->cfg.queue_target_ms > 0) {
    cpool__codel_roll_locked(p, now_us / 1000);
    if (p->overloaded && now_us - w->since_us > 2000LL * p->cfg.queue_target_ms)
      code = CPOOL_EOVERLOAD;
  }
  if (code == 0)
    return 0;
  cpool__waiter_leave_locked(p, w);
  *rc = cpool__checkout_fail_locked(p, code, why);
  return 1;
}

/* Sleep until something may have changed for w.  The oldest waiter,
 * while a slot may be left parked within a turn, sleeps with a timer:
 * until the first reservation ends, or one poll period for a slot held
 * within a turn (turn_parks_until). */
static void wait_sleep(struct cpool *p, cpool__waiter *w) {
  int64_t until = wait_deadline_us(p, w, w->deadline_us);
  int64_t parked = p->wq_head == w ? cpool__turn_parks_until_locked(p) : 0;
  uint64_t looks = p->holder_looks;
  w->polling = parked != 0;
  if (w->polling) {
    /* Holders within their turns look at parked (handoff.c,
     * holder_look); its own timer is later while they do. */
    int64_t own =
        cpool__poll_own(&p->policy, parked, cpool__now_us(), p->poll_scale);
    if (until < 0 || own < until)
      until = own;
    w->poll_at_us = until;
    atomic_store_explicit(&p->poll_due_us, parked, memory_order_relaxed);
  }
  cpool__wait_locked(p, &w->cv, until);
  if (w->polling) {
    atomic_store_explicit(&p->poll_due_us, 0, memory_order_relaxed);
    if (cpool__now_us() >= w->poll_at_us) /* its own timer fired */
      p->poll_scale =
          cpool__poll_rescale(p->poll_scale, p->holder_looks != looks);
  }
  w->polling = 0;
}

/* w is off the queue, served (rc 0) or not. */
static void wait_leave(struct cpool *p, cpool__waiter *w, int rc) {
  int64_t now_us = cpool__now_us();
  int64_t waited = now_us > w->since_us ? now_us - w->since_us : 0;
  cpool__hist_add(p->st.wait_hist, &p->st.wait_time_us, (uint64_t)waited);
  if (rc == 0) {
    /* Served: a turn from now, so a caller that holds its slot for
     * longer than the turn queues again instead of barging. */
    self_turn_begin(p, now_us, 1);
    p->st.checkouts++;
    if (p->cfg.queue_target_ms > 0)
      cpool__codel_observe_locked(p, now_us / 1000,
                                  (now_us - w->since_us) / 1000);
  }
  /* We may have been woken for a slot we did not take, been handed one
   * while another sat free for us, or taken one of several free. */
  cpool__wake_one_locked(p);
  pthread_cond_destroy(&w->cv);
  if (--p->sleepers == 0 && p->closing)
    pthread_cond_broadcast(&p->state_cv);
}

/* Queue up and wait, with p->mu held.  Returns 0 with *out set, or an
 * error code (already counted).  *deadline_p is 0 on the call's first
 * wait; the deadline is fixed then and kept for any retry. */
static int wait_for_slot(struct cpool *p, int timeout_ms, int64_t *deadline_p,
                         struct cpool_conn **out, cpool_error_info *why) {
  cpool__waiter w = {0};
  int rc = 0, done;
  if (*deadline_p == 0)
    *deadline_p =
        timeout_ms > 0 ? cpool__now_us() + (int64_t)timeout_ms * 1000 : -1;
  wait_join(p, &w, *deadline_p);
  while ((done = wait_try(p, &w, out, &rc, why)) != 1)
    if (done == 0)
      wait_sleep(p, &w);
  wait_leave(p, &w, rc);
  return rc;
}

/* Would this caller be turned away if anybody waited?  Strict mode turns
 * everyone away; with no turn anywhere one may begin; else only a turn in
 * this pool that is not over lets it go ahead.  A turn that is over stays
 * over until this thread is served from the queue (or finds it empty): a
 * nowait caller, or one turned away by queue_max, does not win a new turn
 * by asking again.  Needs no lock: the turn is this thread's own. */
static int turn_refused(const struct cpool *p) {
  if (cpool__strict(p))
    return 1;
  if (cpool__my_turn.t.start_us == 0)
    return 0;
  int64_t now = cpool__now_us();
  if (!self_turn_is_for(p)) /* over, as long as it could run in its pool */
    return now <= cpool__my_turn.t.cap_us;
  return !self_turn_live(p, now);
}

/* May a caller that is not queued take a free slot now?  Always when
 * nobody waits.  Past waiters, only in non-strict mode and within its
 * turn (from when it was served, or first barged; see turn.h and the
 * top of this file); then it queues like everyone else, and a nowait
 * caller gets CPOOL_ECHECKEDOUT until it finds nobody waiting.  Only
 * contended checkouts read the clock. */
static int may_barge(const struct cpool *p) {
  if (p->wq_head == NULL) {
    self_turn_clear(p);
    return 1;
  }
  if (turn_refused(p))
    return 0;
  if (cpool__my_turn.t.start_us == 0 ||
      !self_turn_is_for(p)) { /* no turn: one begins */
    int64_t now = cpool__now_us();
    self_turn_begin(p, now, 0);
    if (!self_turn_live(p, now)) {
      cpool__my_turn.t.out_us = 0; /* nothing taken */
      return 0; /* past a waiter's cut: over at once, and stays over */
    }
  } else {
    cpool__my_turn.t.end_us = cpool__turn_earned(&cpool__my_turn.t, &p->policy);
    cpool__my_turn.t.out_us = cpool__now_us();
  }
  return 1;
}

static int take_or_wait(struct cpool *p, int timeout_ms, int64_t *deadline_us,
                        struct cpool_conn **out, cpool_error_info *why) {
  if (p->closing)
    return CPOOL_ESHUTDOWN;
  if (p->nfree == 0 && p->nfast > 0)
    cpool__reclaim_one_locked(p); /* parked by another thread: as free as any */
  if (p->nfree > 0 && may_barge(p)) {
    *out = cpool__take_free_locked(p);
    p->st.checkouts++;
    if (p->cfg.queue_target_ms > 0)
      cpool__codel_observe_locked(p, cpool__coarse_ms(), 0);
    return 0;
  }
  if (cpool__backend_down_locked(p))
    return cpool__checkout_fail_locked(p, CPOOL_ECLOSED, why);
  if (timeout_ms == CPOOL_NOWAIT)
    return cpool__checkout_fail_locked(p, CPOOL_ECHECKEDOUT, why);
  if (p->cfg.queue_max > 0 && p->nwaiters >= p->cfg.queue_max)
    return cpool__checkout_fail_locked(p, CPOOL_ECHECKEDOUT, why);
  return wait_for_slot(p, timeout_ms, deadline_us, out, why);
}

/* Is a slot that sat idle still alive?  Recently used ones are trusted
 * without a system call; the coarse clock costs none.  The slot's "last
 * used" time is stamped at checkout, and not again at checkin: one clock
 * read per cycle, and a slot held long merely looks idler than it is (one
 * extra peek at worst).  Has it sat idle past idle_check_ms
 * (CPOOL_IDLE_CHECK_ALWAYS: always; config_resolve made 0 the default),
 * so that only a peek can tell? */
static int needs_peek(const struct cpool *p, const struct cpool_conn *s,
                      int64_t now) {
  int check = p->cfg.idle_check_ms;
  return check == CPOOL_IDLE_CHECK_ALWAYS ||
         (check > 0 && now - cpool__last_used(s) > check);
}

/* A slot whose peer closed it (its worker saw it: worker.c) is dead
 * without a peek. */
static int idle_slot_alive(const struct cpool *p, struct cpool_conn *s) {
  int64_t now = cpool__coarse_ms();
  int peek = needs_peek(p, s, now);

  if (atomic_load_explicit(&s->peer_gone, memory_order_relaxed))
    return 0;
  cpool__set_last_used(s, now);
  return !peek || cpool__net_alive(s->fd, p->cfg.idle_check_mode);
}

/* The fast path: this thread's parked slot, taken back with one
 * compare-and-swap, when nobody waits (HELD) or within this thread's turn
 * (HELD_TURN, with the turn's end).  Returns it, or NULL. */
static struct cpool_conn *fast_take(struct cpool *p) {
  if (cpool__my_parked.pool != p || cpool__my_parked.gen != p->gen)
    return NULL;
  int64_t held = CPOOL__LEASE_HELD, end = 0, now = 0;
  if (atomic_load_explicit(&p->nwaiters, memory_order_relaxed) == 0) {
    self_turn_clear(p); /* nobody to take turns with */
  } else if (self_in_turn_at(p, now = cpool__now_us())) {
    end = cpool__turn_earned(&cpool__my_turn.t, &p->policy);
    /* The lease says until when it may be parked. */
    held = CPOOL__LEASE_TURN(self_turn_cut(p, end));
  } else {
    return NULL;
  }
  struct cpool_conn *s = cpool__my_parked.slot;
  int64_t parked = atomic_load_explicit(&s->lease, memory_order_relaxed);
  if (CPOOL__LEASE_STATE(parked) != CPOOL__LEASE_PARKED)
    return NULL;
  if (!atomic_compare_exchange_strong_explicit(
          &s->lease, &parked, held, memory_order_acquire, memory_order_relaxed))
    return NULL;
  if (end != 0) {
    cpool__my_turn.t.end_us = end;
    cpool__my_turn.t.out_us = now;
  }
  return s;
}

/* idle_slot_alive without the peek: 1 if the slot may be used as it is
 * (and its "last used" time is stamped), 0 if it needs the peek. */
static int fast_fresh(const struct cpool *p, struct cpool_conn *s) {
  int64_t now = cpool__coarse_ms();
  if (needs_peek(p, s, now) ||
      atomic_load_explicit(&s->peer_gone, memory_order_relaxed))
    return 0;
  cpool__set_last_used(s, now);
  return 1;
}

/* Without the lock: 1 if the call is answered (*rc), else 0 with *s the
 * slot taken on the fast path that still needs the locked checks, or
 * NULL. */
static int checkout_unlocked(struct cpool *p, int timeout_ms,
                             struct cpool_conn **s, int *rc) {
  /* A nowait caller past its turn, while others wait, would only be
   * turned away under the lock: turn it away without, so that one asking
   * in a loop cannot keep the waiter woken for a free slot from taking the
   * lock (which is not fair).  (While the pool closes or the backend is
   * down nobody waits: fail_waiters emptied the queue.) */
  if (timeout_ms == CPOOL_NOWAIT &&
      atomic_load_explicit(&p->nwaiters, memory_order_relaxed) > 0 &&
      !atomic_load_explicit(&p->closing, memory_order_relaxed) &&
      turn_refused(p)) {
    atomic_fetch_add_explicit(&p->nowait_refusals, 1, memory_order_relaxed);
    *rc = CPOOL_ECHECKEDOUT;
    return 1;
  }
  *s = fast_take(p);
  if (*s != NULL && !atomic_load_explicit(&p->closing, memory_order_relaxed) &&
      fast_fresh(p, *s)) {
    cpool__own_add(&(*s)->fast_checkouts, 1);
    *rc = 0;
    return 1;
  }
  return 0;
}

/* Everything, the peek included (one non-blocking recv, and only for a
 * slot idle past idle_check_ms), happens in one lock hold: once the lock
 * is released the call touches no pool memory, so cpool_close can never
 * free the pool under it.  s: taken on the fast path, or NULL. */
static int checkout_locked(struct cpool *p, struct cpool_conn **sp,
                           int timeout_ms, cpool_error_info *why) {
  struct cpool_conn *s = *sp;
  int64_t deadline_us = 0;
  int rc = 0;
  if (s != NULL) {
    /* Ours, but idle too long to trust without a peek, or the pool is
     * closing: on to the checks below as if just taken. */
    cpool__lease_drop_locked(p, s);
    p->st.checkouts++;
  } else {
    rc = take_or_wait(p, timeout_ms, &deadline_us, &s, why);
  }
  while (rc == 0 && !p->closing && !idle_slot_alive(p, s)) {
    /* Dead: its worker reconnects it; the next one, same deadline. */
    int gone = atomic_load_explicit(&s->peer_gone, memory_order_relaxed);
    p->st.checkouts--;
    p->st.idle_check_failures += !gone; /* found by the peek */
    cpool__hand_to_worker_locked(p, s,
                                 gone ? cpool__gone_reason(gone) : CPOOL__DEAD);
    rc = take_or_wait(p, timeout_ms, &deadline_us, &s, why);
  }
  if (rc == 0 && p->closing) {
    /* Handed over just before close began: close is waiting for it. */
    p->st.checkouts--;
    cpool__release_on_close_locked(p, s);
    rc = CPOOL_ESHUTDOWN;
  }
  *sp = s;
  return rc;
}

static int checkout(struct cpool *p, cpool_conn_t **conn, int timeout_ms,
                    cpool_error_info *why) {
  struct cpool_conn *s = NULL;
  int rc;
  if (checkout_unlocked(p, timeout_ms, &s, &rc)) {
    if (rc == 0)
      *conn = s;
    return rc;
  }
  /* Once the lock is released this call touches no pool memory but
   * p->entered, which cpool_close waits for before it frees the pool. */
  atomic_fetch_add_explicit(&p->entered, 1, memory_order_seq_cst);
  pthread_mutex_lock(&p->mu);
  rc = checkout_locked(p, &s, timeout_ms, why);
  cpool__unlock(p);
  atomic_fetch_sub_explicit(&p->entered, 1, memory_order_release);
  if (rc == 0)
    *conn = s;
  return rc;
}

/* cpool_close does not free the pool while a checkout is inside it (see
 * internal.h): the call counts itself from its start in the in_checkin of
 * the slot this thread parked last (the only one its fast path may take:
 * a line of its own, no lock, no shared line), or, with no such slot, in
 * p->entered (on the lock's line, which it takes anyway unless a nowait
 * refusal turns it away first); and its locked part counts itself in
 * p->entered too. */
int cpool_checkout(cpool_t *p, cpool_conn_t **conn, int timeout_ms,
                   cpool_error_info *why) {
  if (p == NULL || conn == NULL || timeout_ms < CPOOL_WAIT_FOREVER)
    return CPOOL_EINVAL;
  *conn = NULL;
  if (cpool__forked(p)) /* never the parent's sockets (fork.c) */
    return CPOOL_EFORKED;
  struct cpool_conn *pin = NULL;
  _Atomic int *count = &p->entered; /* no fast path: it takes the lock,
                                       or is turned away at once */
  if (cpool__my_parked.pool == p && cpool__my_parked.gen == p->gen) {
    pin = cpool__my_parked.slot;
    count = &pin->in_checkin;
  }
  atomic_fetch_add_explicit(count, 1, memory_order_seq_cst);
  int rc = checkout(p, conn, timeout_ms, why);
  atomic_fetch_sub_explicit(count, 1, memory_order_release);
  return rc;
}
