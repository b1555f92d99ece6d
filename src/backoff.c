/*
 * Backoff policies, as in the Elixir Connection seed and DBConnection:
 *   exp       min, 2*min, 4*min ... capped at max;
 *   rand      uniform in [min, max];
 *   rand_exp  uniform in [min, 3 * previous], capped at max (decorrelated
 *             jitter: grows like exp but never in lock-step across slots).
 * Randomness comes from libbsd's arc4random_uniform, which needs no seeding
 * and is safe to call from many threads.
 */
#include "backoff.h"

#include <bsd/stdlib.h>

void cpool__backoff_init(cpool__backoff *b, cpool_backoff_type type,
                         int min_ms, int max_ms) {
  b->type = type;
  b->min_ms = min_ms;
  b->max_ms = max_ms;
  b->prev_ms = 0;
}

void cpool__backoff_reset(cpool__backoff *b) { b->prev_ms = 0; }

static int uniform_between(int lo, int hi) {
  if (hi <= lo)
    return lo;
  return lo + (int)arc4random_uniform((uint32_t)(hi - lo) + 1u);
}

static int capped_mul(int v, int by, int cap) {
  return v > cap / by ? cap : v * by;
}

int cpool__backoff_next(cpool__backoff *b) {
  int next;

  switch (b->type) {
  case CPOOL_BACKOFF_EXP:
    next = b->prev_ms == 0 ? b->min_ms : capped_mul(b->prev_ms, 2, b->max_ms);
    break;
  case CPOOL_BACKOFF_RAND:
    next = uniform_between(b->min_ms, b->max_ms);
    break;
  case CPOOL_BACKOFF_RAND_EXP:
  default:
    next = b->prev_ms == 0
               ? b->min_ms
               : uniform_between(b->min_ms,
                                 capped_mul(b->prev_ms, 3, b->max_ms));
    break;
  }
  if (next > b->max_ms)
    next = b->max_ms;
  b->prev_ms = next;
  return next;
}
