/*
 * Checkin: the fast path (park the slot again with one store), else under
 * p->mu back to the worker, or offered.
 */
#include "self.h"

static int conn_of_pool(const struct cpool *p, const struct cpool_conn *s) {
  uintptr_t base = (uintptr_t)p->slots, at = (uintptr_t)s;
  return at >= base && at < base + (uintptr_t)p->size * sizeof *s &&
         (at - base) % sizeof *s == 0;
}

static int lifetime_over(struct cpool *p, const struct cpool_conn *s) {
  if (s->expires_ms == 0 || cpool__coarse_ms() < s->expires_ms)
    return 0;
  /* Never recycle too many at once: a recycle counts until its slot is back,
   * and the rest wait for a later checkin. */
  int cap = p->size / 4 > 1 ? p->size / 4 : 1;
  return p->recycling < cap;
}

/* Is a holder's look for the oldest waiter due at now (handoff.c,
 * holder_look)?  One relaxed load. */
static int look_due(const struct cpool *p, int64_t now) {
  int64_t due = atomic_load_explicit(&p->poll_due_us, memory_order_relaxed);
  return due != 0 && now >= due;
}

/* A slot checked in OK while the pool is open: parked for this thread if
 * nobody waits or within its turn (see internal.h), else free for the
 * next caller. */
static void offer(struct cpool *p, struct cpool_conn *s) {
  /* Within a turn it is reserved for this thread (one clock read decides
   * both). */
  int64_t now = p->nwaiters != 0 ? cpool__now_us() : 0;
  int64_t end =
      now != 0 && self_in_turn_at(p, now)
          ? cpool__turn_reserve(&p->policy,
                                self_turn_cut(p, cpool__my_turn.t.end_us), now)
          : 0;
  if ((p->nwaiters == 0 || end != 0) && p->nfast < p->fast_max) {
    cpool__fast_add_locked(p, s);
    cpool__watch_parked_locked(p, end != 0 ? end : INT64_MAX);
    atomic_store_explicit(&s->lease,
                          end != 0 ? CPOOL__LEASE_PARKED_UNTIL(end)
                                   : CPOOL__LEASE_PARKED,
                          memory_order_release);
    self_remember_parked(p, s);
    if (end != 0 && look_due(p, now))
      cpool__holder_look_locked(p); /* as fast_checkin's holder_look */
    return;
  }
  cpool__make_available_locked(p, s);
}

/* The hold just ended, from the checkout's stamp of last_used (checkout.c:
 * every checkout stamps it, on the coarse clock, and nothing else does
 * while the slot is out) to now, on the same clock: no system call.
 * Only the holder writes these, before it lets the slot go (internal.h).
 * Inlined: it is on the fast path. */
static inline __attribute__((always_inline)) void
count_hold(struct cpool_conn *s) {
  int64_t ms = cpool__coarse_ms() - cpool__last_used(s);
  uint64_t us = ms > 0 ? (uint64_t)ms * 1000 : 0;
  cpool__own_add(&s->hold_ms, us / 1000);
  cpool__own_add(&s->hold_hist[cpool__hist_bucket(us)], 1);
}

/* The checkin proper, with p->mu held and the slot BUSY with no lease. */
static void checkin_locked(struct cpool *p, struct cpool_conn *s, int status) {
  if (p->cfg.ping_interval_ms > 0) /* pings count idle time from here */
    cpool__set_last_used(s, cpool__coarse_ms());
  if (p->closing) {
    cpool__release_on_close_locked(p, s);
  } else if (status == CPOOL_CONN_OK &&
             atomic_load_explicit(&s->peer_gone, memory_order_relaxed)) {
    /* its worker saw the peer close it while it was out, or wants it
     * back to move it to another endpoint */
    cpool__hand_to_worker_locked(
        p, s,
        cpool__gone_reason(
            atomic_load_explicit(&s->peer_gone, memory_order_relaxed)));
  } else if (status == CPOOL_CONN_BROKEN) {
    p->st.broken_checkins++;
    cpool__hand_to_worker_locked(p, s, CPOOL__BROKEN);
  } else if (status == CPOOL__CONN_INVALID) {
    p->st.validation_failures++;
    cpool__hand_to_worker_locked(p, s, CPOOL__INVALID);
  } else if (lifetime_over(p, s)) {
    p->recycling++;
    s->recycling = 1;
    cpool__hand_to_worker_locked(p, s, CPOOL__RECYCLE);
  } else {
    offer(p, s);
  }
}

/* Past poll_due_us, a look for the oldest waiter (handoff.c): one relaxed
 * load otherwise. */
static void holder_look(struct cpool *p, int64_t now) {
  if (!look_due(p, now))
    return;
  pthread_mutex_lock(&p->mu);
  if (look_due(p, now))
    cpool__holder_look_locked(p);
  cpool__unlock(p);
}

/* The fast checkin of a slot taken on the fast path: park it again with
 * one store.  Then, if close began, or somebody waits and this is not a
 * slot held within a turn that is not over, take it back and check it in
 * under the lock.  (Waiters and close reclaim parked slots, so one of the
 * two sides sees the other: both the store and the loads are sequentially
 * consistent.  A slot held within a turn the oldest waiter polls for,
 * whatever this thread's clock says: turn_parks_until.)  From the store
 * on the slot may be someone else's and the pool might be closed:
 * cpool_checkin's count in in_checkin keeps cpool_close from freeing it
 * until the end. */
static void fast_checkin(struct cpool *p, struct cpool_conn *s, int64_t held,
                         int timed) {
  int in_turn = CPOOL__LEASE_STATE(held) == CPOOL__LEASE_HELD_TURN;
  int64_t now = timed || in_turn ? cpool__now_us() : 0;
  int64_t end = in_turn ? CPOOL__LEASE_TURN_END(held) : 0;
  int within = in_turn && now <= end;

  if (p->cfg.ping_interval_ms > 0)
    cpool__set_last_used(s, cpool__coarse_ms());
  /* Within a turn: reserved for this thread (turn_reserve). */
  atomic_store(&s->lease, within
                              ? CPOOL__LEASE_PARKED_UNTIL(
                                    cpool__turn_reserve(&p->policy, end, now))
                              : CPOOL__LEASE_PARKED);
  self_remember_parked(p, s);
  if (timed)
    cpool__turn_hold(&cpool__my_turn.t, now);
  /* The third load pairs with the worker's mark (worker.c,
   * peer_closed_locked): a slot whose peer closed is not left parked. */
  if (atomic_load(&p->closing) ||
      (atomic_load(&p->nwaiters) != 0 && !within) ||
      atomic_load(&s->peer_gone)) {
    pthread_mutex_lock(&p->mu);
    if (s->fast_pos >= 0 && cpool__unpark_locked(p, s, 1))
      checkin_locked(p, s, CPOOL_CONN_OK);
    else if (s->fast_pos >= 0 && p->wq_head != NULL &&
             cpool__turn_parks_locked(p))
      /* taken within a turn since our store: see internal.h */
      cpool__watch_parked_locked(p, INT64_MAX);
    cpool__unlock(p);
  } else if (within) {
    holder_look(p, now);
  }
}

/* on_checkin (cpool.h), for a checkin OK of a slot the caller holds:
 * taken on the fast path (its lease says so), or BUSY under the lock (a
 * second checkin, of a slot back with its worker, is not shown to the
 * hook: checkin_locked refuses it).  Called before any store can give the
 * slot to another thread.  A slot it fails goes the locked way, as
 * CPOOL__CONN_INVALID, like a broken one. */
static int validate(struct cpool *p, struct cpool_conn *s, int status,
                    int held) {
  if (status != CPOOL_CONN_OK || p->cfg.on_checkin == NULL)
    return status;
  if (!held) {
    pthread_mutex_lock(&p->mu);
    int64_t v = atomic_load_explicit(&s->lease, memory_order_relaxed);
    int busy = CPOOL__LEASE_STATE(v) == CPOOL__LEASE_NONE &&
               s->state == CPOOL_SLOT_BUSY && !p->forced;
    cpool__unlock(p);
    if (!busy)
      return status;
  }
  if (p->cfg.on_checkin(s->fd, s->data, p->cfg.cb_arg) == 0)
    return status;
  return CPOOL__CONN_INVALID;
}

static int checkin(struct cpool *p, struct cpool_conn *s, int status) {
  int rc = 0;

  /* Checked out within a turn: its hold is timed (turn_hold). */
  int timed = cpool__my_turn.t.out_us != 0 && self_turn_is_for(p);

  int64_t v = atomic_load_explicit(&s->lease, memory_order_relaxed);
  int lease = CPOOL__LEASE_STATE(v);
  int held = lease == CPOOL__LEASE_HELD || lease == CPOOL__LEASE_HELD_TURN;
  status = validate(p, s, status, held);
  if (held && status == CPOOL_CONN_OK &&
      !atomic_load_explicit(&s->peer_gone, memory_order_relaxed) &&
      (s->expires_ms == 0 || cpool__coarse_ms() < s->expires_ms)) {
    count_hold(s);
    fast_checkin(p, s, v, timed);
    return 0;
  }

  pthread_mutex_lock(&p->mu);
  lease =
      CPOOL__LEASE_STATE(atomic_load_explicit(&s->lease, memory_order_relaxed));
  if (p->forced) {
    /* The drain is over: the pool has shut the connection down (its
     * worker closes it, if it has not yet). */
    rc = CPOOL_ESHUTDOWN;
  } else if (lease == CPOOL__LEASE_PARKED || s->state != CPOOL_SLOT_BUSY) {
    rc = CPOOL_EINVAL; /* a second checkin, or never checked out */
  } else {
    count_hold(s);
    if (lease == CPOOL__LEASE_HELD || lease == CPOOL__LEASE_HELD_TURN)
      cpool__lease_drop_locked(p, s); /* broken or expired */
    if (timed)
      cpool__turn_hold(&cpool__my_turn.t, cpool__now_us());
    checkin_locked(p, s, status);
  }
  cpool__unlock(p);
  return rc;
}

/* The slot's in_checkin counts this call from here to its end, both
 * paths: cpool_close does not free the pool while it is inside (see
 * internal.h). */
int cpool_checkin(cpool_t *p, cpool_conn_t *s, int status) {
  if (p == NULL || s == NULL || !conn_of_pool(p, s) ||
      (status != CPOOL_CONN_OK && status != CPOOL_CONN_BROKEN))
    return CPOOL_EINVAL;
  if (cpool__forked(p)) /* the slot is the parent's (fork.c) */
    return CPOOL_EFORKED;
  atomic_fetch_add_explicit(&s->in_checkin, 1, memory_order_seq_cst);
  int rc = checkin(p, s, status);
  atomic_fetch_sub_explicit(&s->in_checkin, 1, memory_order_release);
  return rc;
}
