/*
 * The load: --threads threads, each in one of three loops, started
 * together and stopped by a flag, a deadline or a shared count of requests.
 *
 *  - closed loop (default): checkout, request, checkin, again at once;
 *  - open loop (--rate): each request has an intended start time on a fixed
 *    schedule, and its latency counts from then (no coordinated omission);
 *    the schedule is dealt out to the threads in turn, or with
 *    --shared-queue taken from one counter by whichever thread is free;
 *  - with --pipeline N, each checkout carries a batch of N requests, and
 *    each of them counts with the batch's latency;
 *  - the --no-io closed loop: nothing but checkout, checkin and a counter,
 *    with one cycle in RUNNER_SAMPLE timed for the percentiles.
 *
 * The hot loops take no lock and allocate nothing of their own: the counters
 * and histograms are per thread, written with plain relaxed stores, and
 * read by the reporter while the run goes on.
 */
#ifndef BENCH_RUNNER_H
#define BENCH_RUNNER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "args.h"
#include "cpool.h"
#include "hist.h"
#include "target.h"

#define RUNNER_SAMPLE 128 /* --no-io: one cycle in this many is timed */

typedef enum err_kind {
  ERR_CHECKED_OUT = 0, /* CPOOL_ECHECKEDOUT */
  ERR_TIMED_OUT = 1,   /* CPOOL_ETIMEDOUT */
  ERR_CLOSED = 2,      /* CPOOL_ECLOSED */
  ERR_OVERLOAD = 3,    /* CPOOL_EOVERLOAD */
  ERR_IO = 4,          /* send/recv/connect failed or timed out, or EOF */
  ERR_BAD_REPLY = 5,   /* a reply other than the one expected */
  ERR_OTHER = 6,       /* any other checkout error */
  ERR_SERVER = 7,      /* an error reply (-ERR, memcached's ERROR...) */
  ERR_KINDS = 8
} err_kind;

/* One thread's figures, on cache lines of their own. */
typedef struct thread_stats {
  alignas(64) _Atomic uint64_t ok;
  _Atomic uint64_t err[ERR_KINDS];
  hist_t *lat;  /* the whole call, ns */
  hist_t *wait; /* the checkout alone (the connect, per request), ns */
  _Atomic uint64_t busy_ns; /* holding a connection: from checkout's
                               return to the end of the call, ns */
} thread_stats;

typedef struct runner runner_t;

/* runner_start: create the threads and start them together; target is
 * used with --connect-per-request, pool otherwise.  Returns 0, or -1 with a
 * message in err. */
int runner_start(runner_t **out, const bench_args *a, cpool_t *pool,
                 const target_t *target, char *err, size_t errlen);

/* The instant the threads were released (ns, CLOCK_MONOTONIC). */
uint64_t runner_t0(const runner_t *r);

/* runner_wait: block until every thread has finished (true) or until the
 * instant until_ns (false). */
bool runner_wait(runner_t *r, uint64_t until_ns);

/* runner_stop: ask every thread to finish its request and stop. */
void runner_stop(runner_t *r);

/* runner_join: wait for the threads; returns the instant the last one
 * finished, or the stop instant if that was earlier. */
uint64_t runner_join(runner_t *r);

int runner_threads(const runner_t *r);
thread_stats *runner_stats(runner_t *r, int i);

/* runner_free: after runner_join.  NULL is a no-op. */
void runner_free(runner_t *r);

#endif
