/*
 * The turn policy: pure functions of a turn's state, the pool's settings
 * and the time, with no lock, no clock and no pool.  self.h keeps one
 * turn per thread, and checkout.c and checkin.c pass the time in; tests/test_policy.c drives the
 * same functions with a synthetic clock.
 *
 * What a turn is (the mechanism in full: docs/checkout-guide.md,
 * "Fairness").  While callers wait, a thread that is already running may
 * take a free slot before them ("barge") only within its turn:
 *   - A turn begins when the thread is served from the queue (earned), or
 *     first barges past it (not earned: it lasts after_us).
 *   - It ends after_us from its start, and each checkout within it earns
 *     another after_us, up to max_us from its start (cap).  A thread that
 *     comes back faster than after_us on average keeps its connection for
 *     a long turn; one that comes back slower hands it on at once.
 *   - With more than WAIT_TURNS x size waiters the cap shrinks, so that a
 *     waiter waits about WAIT_TURNS longest turns at most.
 *   - The waiters' deadlines cut every turn (cut_us: the earliest waiter's
 *     cut, see waiter_cut), less the longest checkout of the turn so far.
 *   - Between its checkouts a slot is reserved for the thread until the
 *     earlier of its turn's end and after_us after its checkin (reserve):
 *     no slot sits unused beside a waiter for longer than that.
 */
#ifndef CPOOL_TURN_H
#define CPOOL_TURN_H

#include <stdint.h>

/* The policy's constants, in one place. */
#define CPOOL__WAIT_TURNS 4    /* a waiter waits about this many turns */
#define CPOOL__POLL_MIN_US 100 /* the oldest waiter polls no faster */
#define CPOOL__POLL_SCALE_MAX 8 /* and, while holders look for it, sleeps
                                   this many poll periods at most */

typedef struct cpool__turn_policy {
  int64_t after_us; /* handoff_after_us: > 0 turns, < 0 strict FIFO */
  int64_t max_us;   /* handoff_max_us: the longest turn */
  int size;         /* slots in the pool */
} cpool__turn_policy;

/* One thread's turn; start_us 0: none. */
typedef struct cpool__turn {
  int64_t start_us;
  int64_t end_us;  /* earned so far */
  int64_t cap_us;  /* and the most it can earn */
  int64_t out_us;  /* when its current checkout began, 0 if none */
  int64_t hold_us; /* its longest checkout (to checkin) in this turn */
} cpool__turn;

/* A turn begins at now, with nwaiters queued. */
static inline void cpool__turn_begin(cpool__turn *t,
                                     const cpool__turn_policy *c, int nwaiters,
                                     int64_t now, int earned) {
  int64_t len = earned ? c->max_us : c->after_us;
  if (nwaiters > CPOOL__WAIT_TURNS * c->size)
    len = len * CPOOL__WAIT_TURNS * c->size / nwaiters;
  if (len < c->after_us)
    len = c->after_us;
  t->start_us = now;
  t->end_us = now + c->after_us;
  t->cap_us = now + len;
  t->out_us = now;
  t->hold_us = 0;
}

/* Where the turn's end would be after one more checkout. */
static inline int64_t cpool__turn_earned(const cpool__turn *t,
                                         const cpool__turn_policy *c) {
  int64_t end = t->end_us + c->after_us;
  return end < t->cap_us ? end : t->cap_us;
}

/* A turn that would end at end_us, cut for the waiters' deadlines (cut_us,
 * 0 none), early enough for a checkout as long as hold_us. */
static inline int64_t cpool__turn_cut(int64_t cut_us, int64_t hold_us,
                                      int64_t end_us) {
  if (cut_us == 0)
    return end_us;
  int64_t cut = cut_us - hold_us;
  if (cut < 1)
    cut = 1;
  return cut < end_us ? cut : end_us;
}

/* Is the turn not over at now?  A turn cut short stays over. */
static inline int cpool__turn_live(cpool__turn *t, int64_t cut_us,
                                   int64_t now) {
  int64_t end = cpool__turn_cut(cut_us, t->hold_us, t->end_us);
  if (now <= end)
    return 1;
  t->end_us = end;
  return 0;
}

/* A checkout within the turn ends at now. */
static inline void cpool__turn_hold(cpool__turn *t, int64_t now) {
  if (now - t->out_us > t->hold_us)
    t->hold_us = now - t->out_us;
  t->out_us = 0;
}

/* Until when a slot checked in at now within a turn that ends at end_us
 * stays its holder's. */
static inline int64_t cpool__turn_reserve(const cpool__turn_policy *c,
                                          int64_t end_us, int64_t now) {
  int64_t r = now + c->after_us;
  return r < end_us ? r : end_us;
}

/* Until when a slot parked with a reservation to end_us (0: none) is its
 * holder's, with the waiters' cut at cut_us (0: none). */
static inline int64_t cpool__parked_until(int64_t end_us, int64_t cut_us) {
  return cut_us != 0 && cut_us < end_us ? cut_us : end_us;
}

/* When turns must end for a waiter queued at since_us with a deadline
 * (0 or less: none): early enough for the holders' next checkins to serve
 * everyone ahead of it, a quarter of its timeout before the deadline (at
 * least two after_us).  0: no cut. */
static inline int64_t cpool__waiter_cut(const cpool__turn_policy *c,
                                        int64_t since_us, int64_t deadline_us) {
  if (deadline_us <= 0)
    return 0;
  int64_t margin = (deadline_us - since_us) / 4;
  if (margin < 2 * c->after_us)
    margin = 2 * c->after_us;
  int64_t cut = deadline_us - margin;
  return cut > 1 ? cut : 1;
}

/* How often the oldest waiter looks at slots held within a turn. */
static inline int64_t cpool__poll_period(const cpool__turn_policy *c) {
  return c->after_us > CPOOL__POLL_MIN_US ? c->after_us : CPOOL__POLL_MIN_US;
}

/* When the oldest waiter must look again at a slot held within a turn
 * that ends at end_us: one poll period from now; past the turn's end,
 * after as long again as it has been over (doubling), since the holder's
 * checkin then almost surely takes the lock and wakes it: only one that
 * read its clock just before the end parks it without the lock. */
static inline int64_t cpool__poll_held(const cpool__turn_policy *c,
                                       int64_t end_us, int64_t now) {
  int64_t period = cpool__poll_period(c);
  if (now - end_us > period)
    period = now - end_us;
  return now + period;
}

/* The oldest waiter's own timer for a look due at at_us (now: now_us),
 * while the holders' looks have let it sleep scale (1 ..
 * CPOOL__POLL_SCALE_MAX) poll periods where it would sleep one: scale - 1
 * periods later (a look already due stays due).  The holders look in
 * between (internal.h, "The holders' looks"). */
static inline int64_t cpool__poll_own(const cpool__turn_policy *c,
                                      int64_t at_us, int64_t now_us,
                                      int scale) {
  return at_us > now_us ? at_us + (int64_t)(scale - 1) * cpool__poll_period(c)
                        : at_us;
}

/* After the oldest waiter's own timer fired: sleep twice as long next
 * time if a holder looked meanwhile (the holders are running and look for
 * it), else as short as the poll period. */
static inline int cpool__poll_rescale(int scale, int holders_looked) {
  if (!holders_looked)
    return 1;
  return scale * 2 < CPOOL__POLL_SCALE_MAX ? scale * 2 : CPOOL__POLL_SCALE_MAX;
}

#endif
