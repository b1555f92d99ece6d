/* Backoff between failed connect attempts (internal). */
#ifndef CPOOL_BACKOFF_H
#define CPOOL_BACKOFF_H

#include "cpool.h"

typedef struct cpool__backoff {
  cpool_backoff_type type;
  int min_ms;
  int max_ms;
  int prev_ms; /* the last delay handed out; 0 after a reset */
} cpool__backoff;

/* min_ms >= 1 and max_ms >= min_ms are the caller's to check. */
void cpool__backoff_init(cpool__backoff *b, cpool_backoff_type type,
                         int min_ms, int max_ms);

/* The delay before the next attempt, in [min_ms, max_ms]. */
int cpool__backoff_next(cpool__backoff *b);

/* After a successful connect: the next failure starts from min_ms again. */
void cpool__backoff_reset(cpool__backoff *b);

#endif
