/*
 * Invariants of the locked side, checked before each unlock (and each
 * wait on a condition variable) in debug and sanitizer builds
 * (CPOOL_DEBUG_CHECKS): a broken one aborts with the rule it broke, at
 * the unlock that first let another thread see it.  With the checks off,
 * cpool__check_locked is an empty inline function (internal.h).
 *
 * With p->mu held, whatever the fast path does without the lock:
 *   - a slot is IDLE iff it is on the free stack, at its free_pos (but
 *     for one checked in while the pool closes, IDLE and not free), and
 *     a free slot's peer has not closed it (its worker took it);
 *   - a slot has a lease (PARKED or HELD) iff it is on the fast list, at
 *     its fast_pos, and then it is BUSY for the locked side (the fast
 *     path moves a lease between PARKED and HELD, never to or from NONE;
 *     once a timed drain is over, such a slot may be CLOSED);
 *   - the per-state counts match the slots and sum to size;
 *   - the queue's links agree both ways, nwaiters is its length, nwoken
 *     the number of its waiters marked woken, and p->cut_us the earliest
 *     of their cuts (0 if none has one);
 *   - a waiter handed a slot or an error is off the queue;
 *   - only the oldest waiter polls;
 *   - work conservation: nwoken >= min(nfree, nwaiters), at every unlock
 *     and every wait: as many waiters are woken for the free stack (told,
 *     not yet run) as it holds slots, or every waiter is; so no waiter
 *     sleeps beside a free slot that nobody was woken for.  (Slots parked
 *     or held on the fast path, or with their workers, are not on the
 *     free stack: for a slot parked beside the waiters, see internal.h.)
 */
#include "internal.h"

#ifdef CPOOL_DEBUG_CHECKS

#include <stdio.h>
#include <stdlib.h>

void cpool__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "cpool: invariant broken at %s:%d: %s\n", file, line, what);
  abort();
}

#define CHECK(c) CPOOL__ASSERT(c)

static void check_slots(const struct cpool *p) {
  int counts[CPOOL_SLOT_CHECKING + 1] = {0};
  for (int i = 0; i < p->size; i++) {
    const struct cpool_conn *s = &p->slots[i];
    CHECK(s->index == i);
    CHECK(s->state >= CPOOL_SLOT_CONNECTING && s->state <= CPOOL_SLOT_CHECKING);
    counts[s->state]++;
    /* (Once close began, a slot checked in is IDLE for the drain but
     * not free: release_on_close.) */
    CHECK(s->free_pos < 0 || s->state == CPOOL_SLOT_IDLE);
    CHECK(s->state != CPOOL_SLOT_IDLE || s->free_pos >= 0 || p->closing);
    if (s->free_pos >= 0) {
      CHECK(s->free_pos < p->nfree && p->free_stack[s->free_pos] == i);
      CHECK(!atomic_load(&s->peer_gone));
    }
    int leased =
        CPOOL__LEASE_STATE(atomic_load(&s->lease)) != CPOOL__LEASE_NONE;
    CHECK(leased == (s->fast_pos >= 0));
    if (s->fast_pos >= 0) {
      CHECK(s->fast_pos < p->nfast && p->fast_list[s->fast_pos] == i);
      /* (Once a timed drain is over, a worker closes a slot still held
       * on the fast path.) */
      CHECK(s->state == CPOOL_SLOT_BUSY || p->forced);
    }
  }
  int sum = 0;
  for (int st = 0; st <= CPOOL_SLOT_CHECKING; st++) {
    CHECK(counts[st] == p->counts[st]);
    sum += p->counts[st];
  }
  CHECK(sum == p->size);
  CHECK(p->nfree == p->counts[CPOOL_SLOT_IDLE] || p->closing);
  CHECK(p->nfree <= p->counts[CPOOL_SLOT_IDLE]);
  CHECK(p->nfast >= 0 && p->nfast <= p->fast_max);
}

static void check_queue(const struct cpool *p) {
  int n = 0, woken = 0;
  int64_t cut = 0;
  const cpool__waiter *prev = NULL;
  for (const cpool__waiter *w = p->wq_head; w != NULL; w = w->next) {
    CHECK(w->prev == prev);
    CHECK(w->slot == NULL && w->err == 0);
    CHECK(!w->polling || w == p->wq_head); /* only the oldest polls */
    n++;
    woken += w->woken != 0;
    if (w->cut_us != 0 && (cut == 0 || w->cut_us < cut))
      cut = w->cut_us;
    prev = w;
  }
  CHECK(p->wq_tail == prev);
  CHECK(n == atomic_load(&p->nwaiters));
  CHECK(woken == p->nwoken);
  CHECK(cut == atomic_load(&p->cut_us));
  CHECK(n <= p->sleepers);
  CHECK(woken >= (p->nfree < n ? p->nfree : n));
}

/* The endpoints (endpoints.c): each one's connected count is the
 * number of slots counted on it, and only slots with a socket are; at
 * most one probe per endpoint (another slot may bring it up meanwhile); moves
 * counted once each and never more than the cap. */
static void check_endpoints(const struct cpool *p) {
  int connected[CPOOL_MAX_ENDPOINTS] = {0}, probes[CPOOL_MAX_ENDPOINTS] = {0};
  int moving = 0;
  CHECK(p->neps >= 1 && p->neps <= CPOOL_MAX_ENDPOINTS);
  for (int i = 0; i < p->size; i++) {
    const struct cpool_conn *s = &p->slots[i];
    CHECK(s->ep >= -1 && s->ep < p->neps);
    CHECK(!(s->ep_on || s->probe) || s->ep >= 0);
    CHECK(!s->ep_on || s->state != CPOOL_SLOT_BACKOFF);
    /* (A slot marked to move is still out, or back for the drain.) */
    CHECK(!s->moving || s->state != CPOOL_SLOT_BACKOFF);
    connected[s->ep < 0 ? 0 : s->ep] += s->ep_on;
    probes[s->ep < 0 ? 0 : s->ep] += s->probe;
    moving += s->moving;
  }
  for (int e = 0; e < p->neps; e++) {
    const cpool__endpoint *ep = &p->eps[e];
    CHECK(ep->connected == connected[e]);
    CHECK(ep->probing == probes[e]);
  }
  int cap = p->size / 8 > 1 ? p->size / 8 : 1;
  CHECK(moving == p->moving && moving <= cap);
}

void cpool__check_locked(const struct cpool *p) {
  check_slots(p);
  check_queue(p);
  check_endpoints(p);
}

#else
typedef int cpool__check_unused; /* ISO C: no empty translation unit */
#endif
