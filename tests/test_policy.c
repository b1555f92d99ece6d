/* The turn policy (src/turn.h), driven by a synthetic clock: no threads,
 * no sockets, no sleeping.  Each table row is one case; a trace replays a
 * thread's checkouts and checkins at given times and says, at each
 * checkout, whether its turn still let it barge past the waiters. */
#include "suites.h"
#include "testutil.h"
#include "turn.h"

static const cpool__turn_policy P = {.after_us = 250, .max_us = 25000,
                                     .size = 8};

static void test_begin(void) {
  static const struct {
    int nwaiters, earned;
    int64_t want_end, want_cap; /* from a start at 1000 */
  } rows[] = {
      {1, 1, 1250, 26000},     /* served from the queue: earned to max */
      {1, 0, 1250, 1250},      /* barged: one after_us, not earned */
      {32, 1, 1250, 26000},    /* 4 x size waiters: no shrink yet */
      {64, 1, 1250, 13500},    /* 8 x size: half the longest turn */
      {100000, 1, 1250, 1250}, /* never shorter than after_us */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    cpool__turn t;
    cpool__turn_begin(&t, &P, rows[i].nwaiters, 1000, rows[i].earned);
    TU_ASSERT_EQ(t.start_us, 1000);
    TU_ASSERT_EQ(t.end_us, rows[i].want_end);
    TU_ASSERT_EQ(t.cap_us, rows[i].want_cap);
    TU_ASSERT_EQ(t.hold_us, 0);
  }
}

static void test_cut(void) {
  static const struct {
    int64_t cut, hold, end, want;
  } rows[] = {
      {0, 0, 5000, 5000},    /* no deadline: the turn's own end */
      {9000, 0, 5000, 5000}, /* a cut after the end changes nothing */
      {3000, 0, 5000, 3000}, /* a cut before it ends it there */
      {3000, 500, 5000, 2500}, /* less the longest checkout so far */
      {300, 500, 5000, 1},   /* never 0 (0 means "no turn") */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    TU_ASSERT_EQ(cpool__turn_cut(rows[i].cut, rows[i].hold, rows[i].end),
                 rows[i].want);
}

static void test_reserve(void) {
  static const struct {
    int64_t end, now, want;
  } rows[] = {
      {25000, 1000, 1250},  /* a long turn: after_us from the checkin */
      {1100, 1000, 1100},   /* the turn ends first */
      {1000, 1000, 1000},   /* checked in at its last instant */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    TU_ASSERT_EQ(cpool__turn_reserve(&P, rows[i].end, rows[i].now),
                 rows[i].want);
  /* And what a waiter sees of it, with and without a cut. */
  TU_ASSERT_EQ(cpool__parked_until(1250, 0), 1250);
  TU_ASSERT_EQ(cpool__parked_until(1250, 1100), 1100);
  TU_ASSERT_EQ(cpool__parked_until(1250, 2000), 1250);
  TU_ASSERT_EQ(cpool__parked_until(0, 0), 0); /* parked without a turn */
}

static void test_waiter_cut(void) {
  static const struct {
    int64_t since, deadline, want;
  } rows[] = {
      {0, -1, 0},               /* waits forever: no cut */
      {0, 0, 0},                /* (no deadline) */
      {1000, 1001000, 751000},  /* 1 s: a quarter before the deadline */
      {1000, 2000, 1500},       /* 1 ms: margin at least 2 x after_us */
      {0, 400, 1},              /* and never 0 (0 means no cut) */
      {100000, 101600, 101100}, /* 1.6 ms: margin 500 = 2 x after_us */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    TU_ASSERT_EQ(cpool__waiter_cut(&P, rows[i].since, rows[i].deadline),
                 rows[i].want);
  cpool__turn_policy fast = P;
  fast.after_us = 20;
  TU_ASSERT_EQ(cpool__poll_period(&P), 250);
  TU_ASSERT_EQ(cpool__poll_period(&fast), CPOOL__POLL_MIN_US);
  /* A slot held within its turn: every poll period; past the turn's
   * end, doubling with the time since (a 1 s hold: some 12 looks, not
   * 4000). */
  TU_ASSERT_EQ(cpool__poll_held(&P, 5000, 1000), 1250);
  TU_ASSERT_EQ(cpool__poll_held(&P, 5000, 5100), 5350);
  TU_ASSERT_EQ(cpool__poll_held(&P, 5000, 6000), 7000);
  int looks = 0;
  for (int64_t t = 5000; t < 1005000; t = cpool__poll_held(&P, 5000, t))
    looks++;
  TU_ASSERT_BETWEEN(looks, 10, 16);
  /* While holders look for it, the oldest waiter's own timer is scale - 1
   * poll periods later (a look already due stays due). */
  TU_ASSERT_EQ(cpool__poll_own(&P, 1250, 1000, 1), 1250);
  TU_ASSERT_EQ(cpool__poll_own(&P, 1250, 1000, 8), 3000);
  TU_ASSERT_EQ(cpool__poll_own(&P, 900, 1000, 8), 900);
  /* A look far off (a slot held 1 s past its turn's end) is not put off
   * 8 times as far: 7 periods more. */
  TU_ASSERT_EQ(cpool__poll_own(&P, 1001000, 1000, 8), 1002750);
  /* Doubling while holders look, to the cap; back to 1 when none did. */
  int scale = 1, fires = 0;
  while (scale < CPOOL__POLL_SCALE_MAX && fires < 10) {
    scale = cpool__poll_rescale(scale, 1);
    fires++;
  }
  TU_ASSERT_EQ(scale, CPOOL__POLL_SCALE_MAX);
  TU_ASSERT_EQ(fires, 3);
  TU_ASSERT_EQ(cpool__poll_rescale(scale, 1), CPOOL__POLL_SCALE_MAX);
  TU_ASSERT_EQ(cpool__poll_rescale(scale, 0), 1);
}

/* A trace: a thread served from the queue at 0, then checkouts at the
 * given times (each held hold_us), against a cut that may come.  Returns
 * how many checkouts its turn covered before it was over, and leaves the
 * turn's final end in *end. */
static int replay(const int64_t *at, int n, int64_t hold_us, int64_t cut_us,
                  int64_t *end) {
  cpool__turn t;
  cpool__turn_begin(&t, &P, 1, 0, 1);
  cpool__turn_hold(&t, hold_us);
  int covered = 0;
  for (int i = 0; i < n; i++) {
    if (!cpool__turn_live(&t, cut_us, at[i]))
      break;
    t.end_us = cpool__turn_earned(&t, &P); /* the checkout earns */
    t.out_us = at[i];
    cpool__turn_hold(&t, at[i] + hold_us);
    covered++;
  }
  *end = t.end_us;
  return covered;
}

static void test_trace_fast_caller_earns(void) {
  /* Back every 100 us: each checkout earns 250 us, so the turn runs to
   * its cap, 25 ms, and not a checkout past it. */
  int64_t at[400], end;
  for (int i = 0; i < 400; i++)
    at[i] = 100 * (i + 1);
  int covered = replay(at, 400, 20, 0, &end);
  TU_ASSERT_EQ(covered, 250);
  TU_ASSERT_EQ(end, 25000);
}

static void test_trace_slow_caller_hands_on(void) {
  /* Back after 300 us, past the first 250 us: over at once. */
  int64_t at[] = {300, 600, 900}, end;
  TU_ASSERT_EQ(replay(at, 3, 20, 0, &end), 0);
  /* Back after 200 us, then 400 us later: the first checkout earned
   * 250 us more (to 500), and 600 is past it. */
  int64_t at2[] = {200, 600}, end2;
  TU_ASSERT_EQ(replay(at2, 2, 20, 0, &end2), 1);
  TU_ASSERT_EQ(end2, 500);
}

static void test_trace_cut_ends_turn(void) {
  /* A waiter whose deadline cuts turns at 5000: a fast caller's turn ends
   * 5000 less its longest checkout (100), and stays over even if the cut
   * goes away. */
  int64_t at[100], end;
  for (int i = 0; i < 100; i++)
    at[i] = 100 * (i + 1);
  int covered = replay(at, 100, 100, 5000, &end);
  TU_ASSERT_EQ(covered, 49); /* checkouts at 100..4900 */
  TU_ASSERT_EQ(end, 4900);
  cpool__turn t = {.start_us = 1, .end_us = 4900, .cap_us = 25000};
  TU_ASSERT_EQ(cpool__turn_live(&t, 0, 5000), 0);
}

CU_TestInfo policy_tests[] = {
    {"begin", test_begin},
    {"cut", test_cut},
    {"reserve", test_reserve},
    {"waiter_cut", test_waiter_cut},
    {"trace_fast_caller_earns", test_trace_fast_caller_earns},
    {"trace_slow_caller_hands_on", test_trace_slow_caller_hands_on},
    {"trace_cut_ends_turn", test_trace_cut_ends_turn},
    CU_TEST_INFO_NULL,
};
