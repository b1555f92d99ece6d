/*
 * How a freed or parked slot reaches a caller, every function with p->mu
 * held: to the oldest waiter or onto the free stack, parked slots taken
 * back from their holders, and the oldest waiter's watch over slots held
 * within a turn (internal.h, "The fast path").
 */
#include "internal.h"

/* w leaves the queue (served, failed or timed out).  The oldest waiter
 * watches slots held within a turn: if w was it, the next one takes
 * over. */
void cpool__waiter_leave_locked(struct cpool *p, cpool__waiter *w) {
  int was_head = w->prev == NULL;
  cpool__wq_remove_locked(p, w);
  if (was_head && p->nfast > 0 && cpool__turn_parks_locked(p))
    cpool__watch_parked_locked(p, INT64_MAX);
}

/* Until when a slot whose lease is v, PARKED, is its holder's (turn.h);
 * 0 if it was not parked within a turn. */
static int64_t parked_until(const struct cpool *p, int64_t v) {
  return cpool__parked_until(CPOOL__LEASE_TURN_END(v), cpool__cut_now(p));
}

/* Take a parked slot from whoever parked it: 1 if it is now ours (BUSY,
 * lease NONE), 0 if its holder took it back first, or (unless forced: its
 * holder, or close) it is parked within a turn that is not over. */
int cpool__unpark_locked(struct cpool *p, struct cpool_conn *s, int force) {
  int64_t v = atomic_load(&s->lease);
  if (CPOOL__LEASE_STATE(v) != CPOOL__LEASE_PARKED)
    return 0;
  if (!force && parked_until(p, v) > cpool__now_us())
    return 0;
  if (!atomic_compare_exchange_strong(&s->lease, &v, CPOOL__LEASE_NONE))
    return 0;
  cpool__fast_remove_locked(p, s);
  return 1;
}

/* Might a slot be left parked beside the waiters?  Only one parked within
 * a turn: PARKED with a reservation (its holder's for handoff_after_us
 * after its checkin at most), or HELD_TURN (its checkin may park it so).
 * The oldest waiter then polls (wait_for_slot).  Returns 0 if none, else
 * when it must look next: when the first reservation ends, and for a
 * held slot, whose checkin it cannot see, one poll period from now. */
int64_t cpool__turn_parks_until_locked(const struct cpool *p) {
  if (p->cfg.handoff_after_us <= 0)
    return 0;
  int64_t now = cpool__now_us(), first = 0;
  for (int i = 0; i < p->nfast; i++) {
    int64_t v = atomic_load(&p->slots[p->fast_list[i]].lease);
    int st = CPOOL__LEASE_STATE(v);
    int64_t at;
    if (st == CPOOL__LEASE_HELD_TURN) {
      at = cpool__poll_held(&p->policy, CPOOL__LEASE_TURN_END(v), now);
    } else if (st == CPOOL__LEASE_PARKED) {
      at = parked_until(p, v); /* now, if it is already the waiters' */
      if (at < now)
        at = now;
    } else {
      continue;
    }
    if (first == 0 || at < first)
      first = at;
  }
  return first;
}

int cpool__turn_parks_locked(const struct cpool *p) {
  return cpool__turn_parks_until_locked(p) != 0;
}

/* A slot is parked within a turn while callers wait: the oldest waiter
 * must be awake or asleep with a timer to take it once the turn is over
 * (wait_for_slot), at until_us (INT64_MAX: unknown).  Wake it if it is
 * neither, or if its timer fires later than that. */
void cpool__watch_parked_locked(struct cpool *p, int64_t until_us) {
  cpool__waiter *h = p->wq_head;
  if (h == NULL || h->woken || (h->polling && until_us >= h->poll_at_us))
    return;
  if (h->polling && p->poll_scale > 1) {
    /* It sleeps long because holders look for it: one will by then. */
    int64_t due = atomic_load_explicit(&p->poll_due_us, memory_order_relaxed);
    if (due == 0 || until_us < due)
      atomic_store_explicit(&p->poll_due_us, until_us, memory_order_relaxed);
    return;
  }
  pthread_cond_signal(&h->cv);
}

/* A holder within its turn, past poll_due_us, looks for the oldest waiter
 * asleep on its longer timer (internal.h, "The holders' looks"): a slot
 * parked past its reservation is offered (and the waiter woken for it),
 * and the next look is due when the oldest waiter's would have been. */
void cpool__holder_look_locked(struct cpool *p) {
  cpool__waiter *h = p->wq_head;
  int64_t due = 0;
  if (h != NULL && h->polling && !h->woken) {
    p->holder_looks++;
    if (p->nfree == 0 && p->nfast > 0)
      cpool__reclaim_one_locked(p);
    if (!h->woken)
      due = cpool__turn_parks_until_locked(p);
  }
  atomic_store_explicit(&p->poll_due_us, due, memory_order_relaxed);
}

/* A connected slot is free: to the oldest waiter, or onto the stack. */
void cpool__make_available_locked(struct cpool *p, struct cpool_conn *s) {
  if (p->wq_head != NULL && cpool__strict(p)) {
    cpool__waiter *w = p->wq_head;
    cpool__waiter_leave_locked(p, w);
    cpool__set_state_locked(p, s, CPOOL_SLOT_BUSY);
    w->slot = s;
    pthread_cond_signal(&w->cv);
    cpool__wake_one_locked(p); /* a slot w was woken for may still be free */
    return;
  }
  cpool__set_state_locked(p, s, CPOOL_SLOT_IDLE);
  cpool__free_push_locked(p, s);
  cpool__wake_one_locked(p);
}

/* A slot taken back from its holder is offered, unless its worker marked
 * it (worker.c, peer_closed_locked; endpoints.c, a move) while it was
 * held: its holder's checkin parked it, saw the mark, and is on its way to
 * the lock to hand it back, but it is ours now, so the hand-back is ours
 * too (the worker waits for it on its condition variable). */
static int reclaim(struct cpool *p, struct cpool_conn *s, int force) {
  if (s->fast_pos < 0 || !cpool__unpark_locked(p, s, force))
    return 0;
  int gone = atomic_load(&s->peer_gone);
  if (gone) {
    cpool__hand_to_worker_locked(p, s, cpool__gone_reason(gone));
    return 0;
  }
  cpool__make_available_locked(p, s);
  return 1;
}

/* The worker's, for a ping: parked within a turn, the slot is left to its
 * holder while others wait. */
int cpool__reclaim_locked(struct cpool *p, struct cpool_conn *s) {
  return reclaim(p, s, p->wq_head == NULL);
}

/* A caller needs a slot and none is on the free stack: take one parked
 * slot back; one parked within a turn only if nobody waits (then there
 * are no turns to keep).  Returns 1 if one was offered. */
int cpool__reclaim_one_locked(struct cpool *p) {
  for (int i = p->nfast - 1; i >= 0; i--)
    if (reclaim(p, &p->slots[p->fast_list[i]], p->wq_head == NULL))
      return 1;
  return 0;
}

/* Every parked slot back to the locked side (a waiter queues, or, forced,
 * the pool closes); those still held, or parked within a turn, stay on
 * the list.  Walking down, a slot moved into place i by a removal was
 * already seen. */
void cpool__reclaim_all_locked(struct cpool *p, int force) {
  for (int i = p->nfast - 1; i >= 0; i--)
    reclaim(p, &p->slots[p->fast_list[i]], force);
}

/* After a slot went to BACKOFF: if none is up or coming up, the backend is
 * down and nobody should wait for it. */
void cpool__backend_check_locked(struct cpool *p) {
  if (cpool__backend_down_locked(p))
    cpool__fail_waiters_locked(p, CPOOL_ECLOSED);
}
