/*
 * The FIFO queue of waiters, every function with p->mu held: joining and
 * leaving, the earliest deadline cut over the queue (p->cut_us), and
 * waking the oldest waiters for free slots.  Knows nothing of leases.
 */
#include "internal.h"

void cpool__clear_woken_locked(struct cpool *p, cpool__waiter *w) {
  if (w->woken) {
    w->woken = 0;
    p->nwoken--;
  }
}

/* p->cut_us: the earliest cut of all waiters.  One waiter joins: O(1);
 * the one with the earliest cut leaves: the queue is walked again. */
static void cut_add(struct cpool *p, const cpool__waiter *w) {
  int64_t cur = atomic_load_explicit(&p->cut_us, memory_order_relaxed);
  if (w->cut_us != 0 && (cur == 0 || w->cut_us < cur))
    atomic_store_explicit(&p->cut_us, w->cut_us, memory_order_relaxed);
}

static void cut_remove(struct cpool *p, const cpool__waiter *w) {
  if (w->cut_us == 0 ||
      w->cut_us != atomic_load_explicit(&p->cut_us, memory_order_relaxed))
    return;
  int64_t first = 0;
  for (const cpool__waiter *q = p->wq_head; q != NULL; q = q->next)
    if (q->cut_us != 0 && (first == 0 || q->cut_us < first))
      first = q->cut_us;
  atomic_store_explicit(&p->cut_us, first, memory_order_relaxed);
}

void cpool__wq_remove_locked(struct cpool *p, cpool__waiter *w) {
  cpool__clear_woken_locked(p, w);
  if (w->prev)
    w->prev->next = w->next;
  else
    p->wq_head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    p->wq_tail = w->prev;
  w->prev = w->next = NULL;
  p->nwaiters--;
  cut_remove(p, w);
}

void cpool__wq_append_locked(struct cpool *p, cpool__waiter *w) {
  w->next = NULL;
  w->prev = p->wq_tail;
  if (p->wq_tail)
    p->wq_tail->next = w;
  else
    p->wq_head = w;
  p->wq_tail = w;
  p->nwaiters++;
  cut_add(p, w);
  /* More slots may be free than waiters woken for them (a caller past its
   * turn queues beside them): then w is the oldest not woken, and takes
   * one at once instead of sleeping until a woken waiter wakes it. */
  cpool__wake_one_locked(p);
}

/* Free slots and sleeping waiters must never be left side by side: wake
 * the oldest waiter not yet told to look at the free stack, unless enough
 * are already on their way (or nothing is free, or nobody waits): every
 * extra wake-up is a system call and, when a running caller takes the slot
 * first, a wasted context switch. */
void cpool__wake_one_locked(struct cpool *p) {
  if (p->wq_head == NULL || p->nwoken >= p->nfree)
    return;
  for (cpool__waiter *w = p->wq_head; w != NULL; w = w->next) {
    if (!w->woken) {
      w->woken = 1;
      p->nwoken++;
      pthread_cond_signal(&w->cv);
      return;
    }
  }
}

void cpool__fail_waiters_locked(struct cpool *p, int code) {
  while (p->wq_head != NULL) {
    cpool__waiter *w = p->wq_head;
    cpool__wq_remove_locked(p, w);
    w->err = code;
    pthread_cond_signal(&w->cv);
  }
}
