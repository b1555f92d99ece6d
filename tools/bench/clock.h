/* Monotonic time in nanoseconds, the only clock the benchmark uses. */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Sleep until the monotonic instant t (ns); returns early on a signal. */
static inline void sleep_until_ns(uint64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / NS_PER_S),
                        .tv_nsec = (long)(t % NS_PER_S)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

#endif
