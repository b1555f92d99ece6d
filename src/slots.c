/*
 * Slot bookkeeping, every function with p->mu held: states and their
 * counts, the free stack, the fast list, and slots handed back to their
 * workers.
 */
#include "internal.h"

#include <sys/socket.h>

void cpool__set_state_locked(struct cpool *p, struct cpool_conn *s,
                             cpool_slot_state st) {
  p->counts[s->state]--;
  p->counts[st]++;
  s->state = st;
}

void cpool__free_push_locked(struct cpool *p, struct cpool_conn *s) {
  s->free_pos = p->nfree;
  p->free_stack[p->nfree++] = s->index;
}

static struct cpool_conn *free_pop(struct cpool *p) {
  struct cpool_conn *s = &p->slots[p->free_stack[--p->nfree]];
  s->free_pos = -1;
  return s;
}

void cpool__free_remove_locked(struct cpool *p, struct cpool_conn *s) {
  int last = p->free_stack[--p->nfree];
  p->free_stack[s->free_pos] = last;
  p->slots[last].free_pos = s->free_pos;
  s->free_pos = -1;
}

void cpool__fast_add_locked(struct cpool *p, struct cpool_conn *s) {
  s->fast_pos = p->nfast;
  p->fast_list[p->nfast++] = s->index;
}

void cpool__fast_remove_locked(struct cpool *p, struct cpool_conn *s) {
  int last = p->fast_list[--p->nfast];
  p->fast_list[s->fast_pos] = last;
  p->slots[last].fast_pos = s->fast_pos;
  s->fast_pos = -1;
}

/* A held slot comes back to the locked side (still BUSY there). */
void cpool__lease_drop_locked(struct cpool *p, struct cpool_conn *s) {
  atomic_store_explicit(&s->lease, CPOOL__LEASE_NONE, memory_order_relaxed);
  cpool__fast_remove_locked(p, s);
}

struct cpool_conn *cpool__take_free_locked(struct cpool *p) {
  struct cpool_conn *s = free_pop(p);
  cpool__set_state_locked(p, s, CPOOL_SLOT_BUSY);
  return s;
}

int cpool__backend_down_locked(const struct cpool *p) {
  return p->counts[CPOOL_SLOT_IDLE] + p->counts[CPOOL_SLOT_BUSY] +
             p->counts[CPOOL_SLOT_CHECKING] +
             p->counts[CPOOL_SLOT_CONNECTING] ==
         0;
}

/* A recycled or moved slot is back (offered again, backing off, or
 * closed): the next expired or displaced one may go. */
void cpool__recycle_done_locked(struct cpool *p, struct cpool_conn *s) {
  if (s->recycling) {
    s->recycling = 0;
    p->recycling--;
  }
  if (s->moving) {
    s->moving = 0;
    p->moving--;
  }
}

/* Why the backend is down: the last connect error, and when the soonest
 * retry is due. */
void cpool__explain_down_locked(struct cpool *p, cpool_error_info *why) {
  if (why == NULL)
    return;
  *why = p->st.last_error;
  if (why->code == 0)
    cpool__error_set(why, CPOOL_ECLOSED, CPOOL_STEP_NONE, 0, NULL,
                     "no connection is up or connecting");
  int64_t now = cpool__now_ms(), soonest = -1;
  for (int i = 0; i < p->size; i++) {
    const struct cpool_conn *s = &p->slots[i];
    if (s->state == CPOOL_SLOT_BACKOFF &&
        (soonest < 0 || s->retry_at_ms < soonest))
      soonest = s->retry_at_ms;
  }
  why->retry_in_ms = soonest < 0 ? -1 : (soonest > now ? soonest - now : 0);
  why->age_ms = now - p->last_error_at_ms;
  if (p->neps > 1)
    cpool__ep_explain_locked(p, why);
}

/* The slot's worker takes it back (with p->mu held), to close it.  The
 * worker may be asleep in poll() on the socket (worker.c, watch_socket):
 * shutting it for reading wakes it there (POLLRDHUP), needs no descriptor
 * of its own, and over TCP sends nothing to the peer (over a Unix socket
 * the peer's writes fail from then on; the socket is closed next anyway);
 * on_disconnect may still write, not read (cpool.h); or asleep on
 * its condition variable (with the peer's close already seen, or while
 * the pool closes).  Done under the lock: the worker closes the socket
 * only after it has seen the reason. */
void cpool__hand_to_worker_locked(struct cpool *p, struct cpool_conn *s,
                                  enum cpool__reason why) {
  s->reason = why;
  cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
  if (s->fd >= 0)
    shutdown(s->fd, SHUT_RD);
  pthread_cond_signal(&s->cv);
}

/* A checked-out slot comes back while the pool closes: its worker closes
 * it, and close's drain may be waiting for it (with p->mu held). */
void cpool__release_on_close_locked(struct cpool *p, struct cpool_conn *s) {
  if (p->forced)
    return; /* the drain is over: its worker shuts it (or has) */
  cpool__set_state_locked(p, s, CPOOL_SLOT_IDLE);
  pthread_cond_signal(&s->cv);
  pthread_cond_broadcast(&p->state_cv);
}
