/*
 * CoDel load shedding (queue_target_ms), with p->mu held: over each
 * interval, the shortest wait seen; the pool is overloaded while even
 * that exceeded the target.
 */
#include "internal.h"

void cpool__codel_roll_locked(struct cpool *p, int64_t now) {
  if (now - p->codel_start_ms < p->cfg.queue_interval_ms)
    return;
  if (p->codel_min_wait_ms >= 0)
    p->overloaded = p->codel_min_wait_ms > p->cfg.queue_target_ms;
  else /* nobody was served: overloaded if the queue is stuck */
    p->overloaded = p->wq_head != NULL &&
                    now - p->wq_head->since_us / 1000 > p->cfg.queue_target_ms;
  p->codel_start_ms = now;
  p->codel_min_wait_ms = -1;
}

void cpool__codel_observe_locked(struct cpool *p, int64_t now,
                                 int64_t waited_ms) {
  cpool__codel_roll_locked(p, now);
  if (p->codel_min_wait_ms < 0 || waited_ms < p->codel_min_wait_ms)
    p->codel_min_wait_ms = waited_ms;
}
