/* How often the pool's worker threads woke (wakeups.c). */
#ifndef BENCH_WAKEUPS_H
#define BENCH_WAKEUPS_H

/* The sum of the voluntary context switches of this process's threads
 * named cpool-w*, -1 if /proc cannot tell. */
long worker_wakeups(void);

#endif
