/*
 * Clocks and timed waits: the few calls that touch the platform's time.
 * Every cpool condition variable waits on CLOCK_MONOTONIC.
 */
#include "internal.h"

#include <time.h>

int64_t cpool__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cpool__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cpool__coarse_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cpool__timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu,
                       int64_t until_us) {
  if (until_us < 0) {
    pthread_cond_wait(cv, mu);
    return;
  }
  struct timespec ts = {.tv_sec = until_us / 1000000,
                        .tv_nsec = (until_us % 1000000) * 1000};
  pthread_cond_timedwait(cv, mu, &ts);
}
