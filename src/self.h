/*
 * This thread's state in the pools it uses, shared by checkout.c and
 * checkin.c: its turn (turn.h) and the slot it parked last (the fast path,
 * internal.h).  No lock: both are the thread's own.
 */
#ifndef CPOOL_SELF_H
#define CPOOL_SELF_H

#include "internal.h"

/* This thread's turn (turn.h): in which pool.  One per thread: a thread
 * that goes from pool to pool while others wait in both queues for its
 * next turn. */
struct cpool__my_turn {
  const struct cpool *pool;
  uint64_t gen;
  cpool__turn t;
};
extern _Thread_local struct cpool__my_turn cpool__my_turn;

/* The fast path (see internal.h): the slot this thread parked last, and
 * which pool it belongs to.  gen tells the pool apart from a later one
 * opened at the same address. */
struct cpool__my_parked {
  const struct cpool *pool;
  uint64_t gen;
  struct cpool_conn *slot;
};
extern _Thread_local struct cpool__my_parked cpool__my_parked;

static inline int self_turn_is_for(const struct cpool *p) {
  return cpool__my_turn.pool == p && cpool__my_turn.gen == p->gen;
}

static inline void self_turn_begin(const struct cpool *p, int64_t now_us,
                                   int earned) {
  cpool__my_turn.pool = p;
  cpool__my_turn.gen = p->gen;
  cpool__turn_begin(&cpool__my_turn.t, &p->policy,
                    atomic_load_explicit(&p->nwaiters, memory_order_relaxed),
                    now_us, earned);
}

/* A turn that would end at end_us, cut for the waiters' deadlines. */
static inline int64_t self_turn_cut(const struct cpool *p, int64_t end_us) {
  return cpool__turn_cut(cpool__cut_now(p),
                         self_turn_is_for(p) ? cpool__my_turn.t.hold_us : 0,
                         end_us);
}

static inline int self_turn_live(const struct cpool *p, int64_t now) {
  return cpool__turn_live(&cpool__my_turn.t, cpool__cut_now(p), now);
}

/* Nobody waits in p: nothing to take turns for. */
static inline void self_turn_clear(const struct cpool *p) {
  if (self_turn_is_for(p))
    cpool__my_turn.t.start_us = cpool__my_turn.t.out_us = 0;
}

/* Is this thread within its turn in p?  Only one that was served from the
 * queue or barged has a turn: a thread that took its slot when nobody
 * waited gives it up at checkin if somebody does now. */
static inline int self_in_turn_at(const struct cpool *p, int64_t now) {
  return self_turn_is_for(p) && cpool__my_turn.t.start_us != 0 &&
         p->cfg.handoff_after_us > 0 && self_turn_live(p, now);
}

static inline void self_remember_parked(const struct cpool *p,
                                        struct cpool_conn *s) {
  cpool__my_parked.pool = p;
  cpool__my_parked.gen = p->gen;
  cpool__my_parked.slot = s;
}

#endif
