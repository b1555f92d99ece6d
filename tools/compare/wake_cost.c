/*
 * wake_cost.c: what one hand-off between two threads costs on this machine.
 *
 * Two threads pass a token back and forth: each waits on a futex until it
 * is its turn, then gives the turn to the other and wakes it.  That is the
 * least a pool's strict FIFO hand-off costs per request (the thread that
 * checks in wakes the oldest waiter and goes to sleep in the queue), and it
 * depends on where the scheduler puts the two threads:
 *
 *   free       no pinning: wherever the scheduler puts them;
 *   same-cpu   both pinned to CPU 0: a wake-up is a switch on one CPU;
 *   cross-cpu  pinned to CPUs 0 and 1: every wake-up is an interrupt to the
 *              other CPU, which on a VM may have to be scheduled by the
 *              host first.
 *
 * usage: compare-wake [--rounds N] [--repeat R] [--json]
 * Prints, per placement, the median of R runs of N round trips: the time
 * per hand-off (half a round trip) in microseconds.  Linux only.
 */
#define _GNU_SOURCE

#include <bsd/stdlib.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPEAT 99

enum placement { FREE, SAME_CPU, CROSS_CPU };
static const char *const placement_name[] = {"free", "same-cpu", "cross-cpu"};

struct game {
  _Atomic int turn; /* whose turn: 0 or 1 */
  long rounds;
  enum placement where;
  int pin_failed;
};

struct player {
  struct game *g;
  int me;
};

static void futex_wait(_Atomic int *word, int val) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *word) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *play(void *arg) {
  struct player *pl = arg;
  struct game *g = pl->g;
  if (g->where != FREE) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(g->where == SAME_CPU ? 0 : pl->me, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
      g->pin_failed = 1;
  }
  for (long i = 0; i < g->rounds; i++) {
    int t;
    while ((t = atomic_load(&g->turn)) != pl->me)
      futex_wait(&g->turn, t);
    atomic_store(&g->turn, 1 - pl->me);
    futex_wake(&g->turn);
  }
  return NULL;
}

/* One run: microseconds per hand-off, or -1. */
static double run(enum placement where, long rounds) {
  struct game g = {.rounds = rounds, .where = where};
  struct player pl[2] = {{&g, 0}, {&g, 1}};
  pthread_t th[2];
  struct timespec a, b;

  atomic_init(&g.turn, 0);
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 2; i++)
    if (pthread_create(&th[i], NULL, play, &pl[i]) != 0) {
      perror("compare-wake: pthread_create");
      exit(1);
    }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (g.pin_failed)
    return -1;
  double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
  return ns / 1e3 / (2.0 * (double)rounds);
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static void usage(FILE *out) {
  fputs("usage: compare-wake [--rounds N] [--repeat R] [--json]\n"
        "  Two threads hand a token back and forth through a futex, N round\n"
        "  trips (1..10000000, default 100000), R runs (1..99, default 5) per\n"
        "  placement (free, same-cpu, cross-cpu); prints the median time per\n"
        "  hand-off in microseconds.\n",
        out);
}

int main(int argc, char **argv) {
  long long rounds = 100000, repeat = 5;
  int json = 0;

  for (int i = 1; i < argc; i++) {
    const char *why = NULL;
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = strtonum(argv[++i], 1, 10000000, &why);
    } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = strtonum(argv[++i], 1, MAX_REPEAT, &why);
    } else {
      why = "an unknown argument";
    }
    if (why != NULL) {
      fprintf(stderr, "compare-wake: '%s' is %s\n", argv[i], why);
      usage(stderr);
      return 2;
    }
  }

  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (json)
    printf("{\"type\":\"summary\",\"cpus\":%ld,\"rounds\":%lld", cpus, rounds);
  else
    printf("futex hand-off between two threads, %lld round trips, median of "
           "%lld runs (%ld CPUs):\n",
           rounds, repeat, cpus);
  for (int w = FREE; w <= CROSS_CPU; w++) {
    double t[MAX_REPEAT];
    int ok = !(w == CROSS_CPU && cpus < 2);
    for (int r = 0; ok && r < repeat; r++)
      ok = (t[r] = run((enum placement)w, rounds)) >= 0;
    double med = -1;
    if (ok) {
      qsort(t, (size_t)repeat, sizeof t[0], cmp_double);
      med = t[repeat / 2];
    }
    if (json)
      printf(",\"%s_us\":%.2f", placement_name[w], med);
    else if (ok)
      printf("  %-10s %8.2f us per hand-off\n", placement_name[w], med);
    else
      printf("  %-10s (could not pin the threads)\n", placement_name[w]);
  }
  if (json)
    puts("}");
  return 0;
}
