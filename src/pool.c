/*
 * The pool: open and close, checkout and checkin, the FIFO queue of
 * waiters and the hand-off of slots to them.
 *
 * Hand-off policy.  A slot that becomes free while callers wait either goes
 * straight to the oldest waiter (strict FIFO, handoff_after_us -1), or
 * onto the free stack with the oldest waiter woken to take it, where a
 * caller that is already running may take it first ("barging").  Barging
 * keeps throughput high: no connection sits unused while a thread is being
 * scheduled, and a caller that comes straight back does not pay a context
 * switch per request.  What bounds the wait is the caller's turn: one
 * thread may barge past waiters only within its turn, counted from when it
 * was served from the queue (or from its first barge), and then it queues
 * like everyone else.
 *
 * A turn is earned (turn_earn): it starts at handoff_after_us, and each
 * checkout within it adds another handoff_after_us, up to handoff_max_us
 * from its start.  A thread that comes back faster than handoff_after_us
 * on average keeps its connection for a long turn (what it earned early
 * covers a slow request later), one that comes back slower from the start
 * hands it over at its next checkin.  Why: each hand-off costs two context
 * switches (the waiter wakes, the caller sleeps), which on a 2-CPU
 * machine halves throughput when paid per request, and with turns of K
 * checkouts, 1/K of them wait for the others' turns.  Below K of about a
 * hundred that is more than 1% of requests, each waiting several turns:
 * p99 is set by turn ends.  Short turns for fast callers are thus the
 * worst of both; so a fast caller gets a long turn (25 ms by default:
 * about 250 requests of 100 us), a slow one the FIFO it needs anyway.
 * Only a turn that began with the thread served from the queue is earned
 * (turn_begin).  Turns shrink when so many wait that a waiter would wait
 * more than WAIT_TURNS of the longest turns, are at most half of CoDel's
 * target (config_resolve), and end early enough for every waiter's
 * deadline (waiter_cut, turn_cut).
 *
 * (An earlier version also had Go's starvation mode: once a waiter had
 * waited too long, every freed slot went to the oldest waiter.  With turns
 * bounded it only cost: measured against redis-server, 32 threads on 8
 * connections, it cut throughput to 0.55x of 8 threads on 8 and raised the
 * median latency 3-9x, for the same p99 and fairness; see
 * docs/BENCHMARKS.md.)
 *
 * The fast path, which needs no lock while nobody waits (or within a
 * turn), is described in internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#define DEFAULT_SIZE 8
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_IDLE_CHECK_MS 500
#define DEFAULT_HANDOFF_AFTER_US 250
#define DEFAULT_HANDOFF_MAX_US 25000
#define DEFAULT_QUEUE_INTERVAL_MS 1000

/* Worker stacks: only touched pages cost memory, and a worker touches a
 * few, but they run the user's on_connect / on_ping (a TLS handshake, say)
 * and getaddrinfo's NSS modules, so leave them room.  Sanitizers need far
 * more. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_WORKER_STACK (1024 * 1024)
#else
#define DEFAULT_WORKER_STACK (256 * 1024)
#endif
#define MIN_WORKER_STACK (64 * 1024)

/* This thread's turn (see may_barge): in which pool, when it began (when
 * the thread was served from that pool's queue, or first barged past its
 * waiters) and when it ends.  start_us 0: no turn (nobody waited when it
 * last took a slot).  One per thread: a thread that goes from pool to
 * pool while others wait in both queues for its next turn. */
static _Thread_local struct {
  const struct cpool *pool;
  uint64_t gen;
  int64_t start_us;
  int64_t end_us;  /* earned so far (turn_earn) */
  int64_t cap_us;  /* and the most it can earn */
  int64_t out_us;  /* when its current checkout began, 0 if none */
  int64_t hold_us; /* its longest checkout (to checkin) in this turn */
} turn;

static int turn_is_for(const struct cpool *p) {
  return turn.pool == p && turn.gen == p->gen;
}

/* A waiter waits for about waiters/size turns: turns are shorter than
 * handoff_max_us when so many wait that this would be longer than
 * WAIT_TURNS of the longest turns. */
#define WAIT_TURNS 4

/* A turn begins: earned up to handoff_max_us if the thread was served from
 * the queue; one that begins by barging past the queue is not earned (a
 * caller that never waits, with CPOOL_NOWAIT say, would else keep the
 * connection from the waiters turn after turn). */
static void turn_begin(const struct cpool *p, int64_t now_us, int earned) {
  int64_t len = earned ? p->cfg.handoff_max_us : p->cfg.handoff_after_us;
  int n = atomic_load_explicit(&p->nwaiters, memory_order_relaxed);
  if (n > WAIT_TURNS * p->size)
    len = len * WAIT_TURNS * p->size / n;
  if (len < p->cfg.handoff_after_us)
    len = p->cfg.handoff_after_us;
  turn.pool = p;
  turn.gen = p->gen;
  turn.start_us = now_us;
  turn.end_us = now_us + p->cfg.handoff_after_us;
  turn.cap_us = now_us + len;
  turn.out_us = now_us;
  turn.hold_us = 0;
}

/* A checkout within the turn earns it another handoff_after_us, up to
 * handoff_max_us from its start: a thread that comes back faster than
 * that on average keeps its connection for a long turn, which few of its
 * checkouts pay for with a wait; one that comes back slower has a short
 * turn (see the top of this file). */
static int64_t turn_earned(const struct cpool *p) {
  int64_t end = turn.end_us + p->cfg.handoff_after_us;
  return end < turn.cap_us ? end : turn.cap_us;
}

static void turn_earn(const struct cpool *p) { turn.end_us = turn_earned(p); }

/* A turn that would end at end_us, cut short for the waiters' deadlines
 * (p->cut_us, see waiter_cut): turns end then, and the waiters ahead of
 * the one with the deadline are served in order, one checkout each.
 * Needs no lock. */
static int64_t turn_cut(const struct cpool *p, int64_t end_us) {
  int64_t cut = atomic_load_explicit(&p->cut_us, memory_order_relaxed);
  if (cut == 0)
    return end_us;
  /* A checkout begun now should be over by the cut: as long as the
   * longest of this turn, say. */
  if (turn_is_for(p))
    cut -= turn.hold_us;
  if (cut < 1)
    cut = 1;
  return cut < end_us ? cut : end_us;
}

/* Is this thread's turn (in p) not over at now?  A turn cut short stays
 * over, even once the waiter that cut it has gone. */
static int turn_live(const struct cpool *p, int64_t now) {
  int64_t end = turn_cut(p, turn.end_us);
  if (now <= end)
    return 1;
  turn.end_us = end;
  return 0;
}

/* A checkout within the turn ends at now: the longest is what turn_cut
 * allows for. */
static void turn_hold(int64_t now) {
  if (now - turn.out_us > turn.hold_us)
    turn.hold_us = now - turn.out_us;
  turn.out_us = 0;
}

/* Nobody waits in p: nothing to take turns for. */
static void turn_clear(const struct cpool *p) {
  if (turn_is_for(p))
    turn.start_us = turn.out_us = 0;
}

/* Is this thread within its turn in p?  Only one that was served from the
 * queue or barged has a turn: a thread that took its slot when nobody
 * waited gives it up at checkin if somebody does now. */
static int in_turn_at(const struct cpool *p, int64_t now) {
  return turn_is_for(p) && turn.start_us != 0 &&
         p->cfg.handoff_after_us > 0 && turn_live(p, now);
}

static int in_turn(const struct cpool *p) {
  return in_turn_at(p, cpool__now_us());
}

/* The fast path (see internal.h): the slot this thread parked last, and
 * which pool it belongs to.  gen tells the pool apart from a later one
 * opened at the same address. */
static _Thread_local struct {
  const struct cpool *pool;
  uint64_t gen;
  struct cpool_conn *slot;
} last_parked;

static void remember_parked(const struct cpool *p, struct cpool_conn *s) {
  last_parked.pool = p;
  last_parked.gen = p->gen;
  last_parked.slot = s;
}

static _Atomic uint64_t pools_opened;

/* Slots on the fast list at most: each is one more place a caller short of
 * a slot must look (under the lock), and only running threads gain from
 * them. */
#define FAST_MAX 64

/* The oldest waiter's poll for slots parked within a turn: every turn,
 * but no more often than this. */
#define POLL_MIN_US 500

void cpool_config_init(cpool_config *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->size = DEFAULT_SIZE;
  cfg->start = CPOOL_START_ASYNC;
  cfg->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  cfg->backoff_type = CPOOL_BACKOFF_RAND_EXP;
  cfg->backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
  cfg->backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
  cfg->idle_check_ms = DEFAULT_IDLE_CHECK_MS;
  cfg->handoff_after_us = DEFAULT_HANDOFF_AFTER_US;
  cfg->handoff_max_us = DEFAULT_HANDOFF_MAX_US;
}

/* ------------------------------------------------------------------ */
/* Configuration checks.                                               */

static int invalid(cpool_error_info *err, const char *what) {
  cpool__error_set(err, CPOOL_EINVAL, CPOOL_STEP_NONE, 0, NULL,
                   "invalid configuration: %s", what);
  return CPOOL_EINVAL;
}

/* Fills c from cfg with the defaults for zero fields; checks everything. */
static int config_resolve(cpool_config *c, const cpool_config *cfg,
                          cpool_error_info *err) {
  *c = *cfg;
  int has_host = c->host != NULL && c->host[0] != '\0';
  int has_unix = c->unix_path != NULL && c->unix_path[0] != '\0';

  if (has_host == has_unix)
    return invalid(err, "set exactly one of host (with port) and unix_path");
  if (has_host && (c->port < 1 || c->port > 65535))
    return invalid(err, "port must be in 1..65535");
  if (has_unix && strlen(c->unix_path) >= 108)
    return invalid(err, "unix_path is longer than 107 bytes");
  if (c->size == 0)
    c->size = DEFAULT_SIZE;
  if (c->size < 0 || c->size > CPOOL_MAX_SIZE)
    return invalid(err, "size must be in 1..CPOOL_MAX_SIZE");
  if (c->start != CPOOL_START_ASYNC && c->start != CPOOL_START_SYNC)
    return invalid(err, "start must be CPOOL_START_ASYNC or _SYNC");
  if (c->backoff_type != CPOOL_BACKOFF_RAND_EXP &&
      c->backoff_type != CPOOL_BACKOFF_EXP &&
      c->backoff_type != CPOOL_BACKOFF_RAND)
    return invalid(err, "unknown backoff_type");
  if (c->connect_timeout_ms == 0)
    c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  if (c->backoff_min_ms == 0)
    c->backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
  if (c->backoff_max_ms == 0)
    c->backoff_max_ms = c->backoff_min_ms > DEFAULT_BACKOFF_MAX_MS
                            ? c->backoff_min_ms
                            : DEFAULT_BACKOFF_MAX_MS;
  if (c->handoff_after_us == 0)
    c->handoff_after_us = DEFAULT_HANDOFF_AFTER_US;
  if (c->handoff_max_us == 0)
    c->handoff_max_us = DEFAULT_HANDOFF_MAX_US;
  /* With CoDel, waits of a turn would look like a standing queue: turns
   * of at most half the target. */
  if (c->queue_target_ms > 0 && c->handoff_max_us > 0 &&
      c->handoff_max_us > (int64_t)c->queue_target_ms * 500)
    c->handoff_max_us = c->queue_target_ms * 500;
  /* The longest turn is never shorter than the first. */
  if (c->handoff_max_us > 0 && c->handoff_max_us < c->handoff_after_us)
    c->handoff_max_us = c->handoff_after_us;
  if (c->queue_target_ms > 0 && c->queue_interval_ms == 0)
    c->queue_interval_ms = DEFAULT_QUEUE_INTERVAL_MS;

  struct {
    int bad;
    const char *what;
  } checks[] = {
      {c->connect_timeout_ms < 0, "connect_timeout_ms is negative"},
      {c->backoff_min_ms < 0, "backoff_min_ms is negative"},
      {c->backoff_max_ms < c->backoff_min_ms,
       "backoff_max_ms is less than backoff_min_ms"},
      {c->keepalive != 0 && c->keepalive != 1, "keepalive must be 0 or 1"},
      {c->keepalive_idle_s < 0, "keepalive_idle_s is negative"},
      {c->keepalive_interval_s < 0, "keepalive_interval_s is negative"},
      {c->keepalive_count < 0, "keepalive_count is negative"},
      {c->tcp_user_timeout_ms < 0, "tcp_user_timeout_ms is negative"},
      {c->idle_check_ms < -1, "idle_check_ms must be >= -1"},
      {c->ping_interval_ms < 0, "ping_interval_ms is negative"},
      {c->ping_interval_ms > 0 && c->on_ping == NULL,
       "ping_interval_ms is set but on_ping is NULL"},
      {c->max_lifetime_ms < 0, "max_lifetime_ms is negative"},
      {c->lifetime_jitter_ms < 0, "lifetime_jitter_ms is negative"},
      {c->max_lifetime_ms > 0 && c->lifetime_jitter_ms >= c->max_lifetime_ms,
       "lifetime_jitter_ms must be less than max_lifetime_ms"},
      {c->queue_max < 0, "queue_max is negative"},
      {c->queue_target_ms < 0, "queue_target_ms is negative"},
      {c->queue_interval_ms < 0, "queue_interval_ms is negative"},
      {c->handoff_after_us < -1, "handoff_after_us must be >= -1"},
      {c->handoff_max_us < 0, "handoff_max_us is negative"},
      {c->worker_stack_size != 0 && c->worker_stack_size < MIN_WORKER_STACK,
       "worker_stack_size must be 0 or at least 64 KiB"},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
    if (checks[i].bad)
      return invalid(err, checks[i].what);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Slot bookkeeping, with p->mu held.                                  */

void cpool__set_state(struct cpool *p, struct cpool_conn *s,
                      cpool_slot_state st) {
  p->counts[s->state]--;
  p->counts[st]++;
  s->state = st;
}

static void free_push(struct cpool *p, struct cpool_conn *s) {
  s->free_pos = p->nfree;
  p->free_stack[p->nfree++] = s->index;
}

static struct cpool_conn *free_pop(struct cpool *p) {
  struct cpool_conn *s = &p->slots[p->free_stack[--p->nfree]];
  s->free_pos = -1;
  return s;
}

void cpool__free_remove(struct cpool *p, struct cpool_conn *s) {
  int last = p->free_stack[--p->nfree];
  p->free_stack[s->free_pos] = last;
  p->slots[last].free_pos = s->free_pos;
  s->free_pos = -1;
}

static void fast_add(struct cpool *p, struct cpool_conn *s) {
  s->fast_pos = p->nfast;
  p->fast_list[p->nfast++] = s->index;
}

static void fast_remove(struct cpool *p, struct cpool_conn *s) {
  int last = p->fast_list[--p->nfast];
  p->fast_list[s->fast_pos] = last;
  p->slots[last].fast_pos = s->fast_pos;
  s->fast_pos = -1;
}

/* A held slot comes back to the locked side (still BUSY there). */
static void lease_drop(struct cpool *p, struct cpool_conn *s) {
  atomic_store_explicit(&s->lease, CPOOL__LEASE_NONE, memory_order_relaxed);
  fast_remove(p, s);
}

/* Until when a slot whose lease is v, PARKED, is its holder's: the end of
 * the turn it was parked within, or sooner if a waiter's deadline cuts
 * turns (the holder may have stopped calling); 0 if it was not parked
 * within a turn. */
static int64_t parked_until(const struct cpool *p, int64_t v) {
  int64_t end = CPOOL__LEASE_TURN_END(v);
  int64_t cut = atomic_load_explicit(&p->cut_us, memory_order_relaxed);
  return cut != 0 && cut < end ? cut : end;
}

/* Take a parked slot from whoever parked it: 1 if it is now ours (BUSY,
 * lease NONE), 0 if its holder took it back first, or (unless forced: its
 * holder, or close) it is parked within a turn that is not over. */
static int unpark(struct cpool *p, struct cpool_conn *s, int force) {
  int64_t v = atomic_load(&s->lease);
  if (CPOOL__LEASE_STATE(v) != CPOOL__LEASE_PARKED)
    return 0;
  if (!force && parked_until(p, v) > cpool__now_us())
    return 0;
  if (!atomic_compare_exchange_strong(&s->lease, &v, CPOOL__LEASE_NONE))
    return 0;
  fast_remove(p, s);
  return 1;
}

static void clear_woken(struct cpool *p, cpool__waiter *w) {
  if (w->woken) {
    w->woken = 0;
    p->nwoken--;
  }
}

/* Might a slot be left parked beside the waiters?  Only one parked within
 * a turn: PARKED now, or HELD_TURN with its turn not over (its checkin
 * will park it again).  The oldest waiter then polls (wait_for_slot).
 * Returns 0 if none, else the earliest time (us) at which such a slot is
 * sure to be the waiters': now for one PARKED, else the first turn's
 * end. */
static int64_t turn_parks_until(const struct cpool *p) {
  if (p->cfg.handoff_after_us <= 0)
    return 0;
  /* The clock first: a holder that checks in after our load of its
   * lease reads the clock after this, so a turn we find over, it finds
   * over too, and it checks in under the lock. */
  int64_t now = cpool__now_us(), first = 0;
  for (int i = 0; i < p->nfast; i++) {
    int64_t v = atomic_load(&p->slots[p->fast_list[i]].lease);
    int st = CPOOL__LEASE_STATE(v);
    if (st != CPOOL__LEASE_PARKED && st != CPOOL__LEASE_HELD_TURN)
      continue;
    /* HELD_TURN with its turn over: its checkin takes the lock.  Else
     * when the turn it is held or parked within ends, or sooner when a
     * waiter's deadline cuts it (then its checkin may still park it
     * without the lock: poll); PARKED without a turn: now. */
    if (st == CPOOL__LEASE_HELD_TURN && CPOOL__LEASE_TURN_END(v) < now)
      continue;
    int64_t end = parked_until(p, v);
    if (end < now)
      end = now;
    if (first == 0 || end < first)
      first = end;
  }
  return first;
}

static int turn_parks(const struct cpool *p) {
  return turn_parks_until(p) != 0;
}

/* A slot is parked within a turn while callers wait: the oldest waiter
 * must be awake or asleep with a timer to take it once the turn is over
 * (wait_for_slot), at until_us (INT64_MAX: unknown).  Wake it if it is
 * neither, or if its timer fires later than that. */
static void watch_parked(struct cpool *p, int64_t until_us) {
  cpool__waiter *h = p->wq_head;
  if (h != NULL && !h->woken && (!h->polling || until_us < h->poll_at_us))
    pthread_cond_signal(&h->cv);
}

/* When turns must end for w's deadline: early enough for the holders'
 * next checkins to serve everyone ahead of it, with a margin of a quarter
 * of its timeout (at least two handoff_after_us) for a request under way.
 * 0: no deadline. */
static int64_t waiter_cut(const struct cpool *p, const cpool__waiter *w) {
  if (w->deadline_us <= 0)
    return 0;
  int64_t margin = (w->deadline_us - w->since_us) / 4;
  if (margin < 2 * (int64_t)p->cfg.handoff_after_us)
    margin = 2 * (int64_t)p->cfg.handoff_after_us;
  int64_t cut = w->deadline_us - margin;
  return cut > 1 ? cut : 1;
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

static void wq_remove(struct cpool *p, cpool__waiter *w) {
  clear_woken(p, w);
  int was_head = w->prev == NULL;
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
  /* The oldest waiter watches slots parked within a turn; the next one
   * takes over. */
  if (was_head && p->nfast > 0 && turn_parks(p))
    watch_parked(p, INT64_MAX);
}

static void wq_append(struct cpool *p, cpool__waiter *w) {
  w->next = NULL;
  w->prev = p->wq_tail;
  if (p->wq_tail)
    p->wq_tail->next = w;
  else
    p->wq_head = w;
  p->wq_tail = w;
  p->nwaiters++;
  cut_add(p, w);
}

/* Free slots and sleeping waiters must never be left side by side: wake
 * the oldest waiter not yet told to look at the free stack, unless enough
 * are already on their way (or nothing is free, or nobody waits): every
 * extra wake-up is a system call and, when a running caller takes the slot
 * first, a wasted context switch. */
static void wake_one(struct cpool *p) {
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

/* Must a free slot go straight to the oldest waiter?  In strict mode. */
static int must_hand_off(const struct cpool *p) {
  return p->cfg.handoff_after_us < 0;
}

/* A connected slot is free: to the oldest waiter, or onto the stack. */
void cpool__make_available(struct cpool *p, struct cpool_conn *s) {
  if (p->wq_head != NULL && must_hand_off(p)) {
    cpool__waiter *w = p->wq_head;
    wq_remove(p, w);
    cpool__set_state(p, s, CPOOL_SLOT_BUSY);
    w->slot = s;
    pthread_cond_signal(&w->cv);
    wake_one(p); /* a slot w was woken for may still be free */
    return;
  }
  cpool__set_state(p, s, CPOOL_SLOT_IDLE);
  free_push(p, s);
  wake_one(p);
}

static int reclaim(struct cpool *p, struct cpool_conn *s, int force) {
  if (s->fast_pos < 0 || !unpark(p, s, force))
    return 0;
  cpool__make_available(p, s);
  return 1;
}

/* The worker's, for a ping: parked within a turn, the slot is left to its
 * holder while others wait. */
int cpool__reclaim(struct cpool *p, struct cpool_conn *s) {
  return reclaim(p, s, p->wq_head == NULL);
}

/* A caller needs a slot and none is on the free stack: take one parked
 * slot back; one parked within a turn only if nobody waits (then there
 * are no turns to keep).  Returns 1 if one was offered. */
static int reclaim_one(struct cpool *p) {
  for (int i = p->nfast - 1; i >= 0; i--)
    if (reclaim(p, &p->slots[p->fast_list[i]], p->wq_head == NULL))
      return 1;
  return 0;
}

/* Every parked slot back to the locked side (a waiter queues, or, forced,
 * the pool closes); those still held, or parked within a turn, stay on
 * the list.  Walking down, a slot moved into place i by a removal was
 * already seen. */
static void reclaim_all(struct cpool *p, int force) {
  for (int i = p->nfast - 1; i >= 0; i--)
    reclaim(p, &p->slots[p->fast_list[i]], force);
}

static int backend_down(const struct cpool *p) {
  return p->counts[CPOOL_SLOT_IDLE] + p->counts[CPOOL_SLOT_BUSY] +
             p->counts[CPOOL_SLOT_CHECKING] +
             p->counts[CPOOL_SLOT_CONNECTING] ==
         0;
}

static void fail_waiters(struct cpool *p, int code) {
  while (p->wq_head != NULL) {
    cpool__waiter *w = p->wq_head;
    wq_remove(p, w);
    w->err = code;
    pthread_cond_signal(&w->cv);
  }
}

/* A recycled slot is back (offered again, backing off, or closed): the
 * next expired one may go. */
void cpool__recycle_done(struct cpool *p, struct cpool_conn *s) {
  if (s->recycling) {
    s->recycling = 0;
    p->recycling--;
  }
}

/* After a slot went to BACKOFF: if none is up or coming up, the backend is
 * down and nobody should wait for it. */
void cpool__backend_check(struct cpool *p) {
  if (backend_down(p))
    fail_waiters(p, CPOOL_ECLOSED);
}

/* Why the backend is down: the last connect error, and when the soonest
 * retry is due. */
static void explain_down(struct cpool *p, cpool_error_info *why) {
  if (why == NULL)
    return;
  *why = p->st.last_error;
  if (why->code == 0)
    cpool__error_set(why, CPOOL_ECLOSED, CPOOL_STEP_NONE, 0, NULL,
                     "no connection is up or connecting");
  int64_t now = cpool__now_ms(), soonest = -1;
  for (int i = 0; i < p->size; i++) {
    const struct cpool_conn *s = &p->slots[i];
    if (s->state == CPOOL_SLOT_BACKOFF &&
        (soonest < 0 || s->retry_at_ms < soonest))
      soonest = s->retry_at_ms;
  }
  why->retry_in_ms = soonest < 0 ? -1 : (soonest > now ? soonest - now : 0);
  why->age_ms = now - p->last_error_at_ms;
}

/* ------------------------------------------------------------------ */
/* CoDel load shedding (queue_target_ms), with p->mu held.             */

static void codel_roll(struct cpool *p, int64_t now) {
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

static void codel_observe(struct cpool *p, int64_t now, int64_t waited_ms) {
  codel_roll(p, now);
  if (p->codel_min_wait_ms < 0 || waited_ms < p->codel_min_wait_ms)
    p->codel_min_wait_ms = waited_ms;
}

/* ------------------------------------------------------------------ */
/* Checkout.                                                           */

static int checkout_fail(struct cpool *p, int code, cpool_error_info *why) {
  switch (code) {
  case CPOOL_ECHECKEDOUT:
    p->st.checked_out_errors++;
    break;
  case CPOOL_ETIMEDOUT:
    p->st.timeouts++;
    break;
  case CPOOL_ECLOSED:
    p->st.closed_errors++;
    explain_down(p, why);
    break;
  case CPOOL_EOVERLOAD:
    p->st.overloads++;
    break;
  }
  return code;
}

static struct cpool_conn *take_free(struct cpool *p) {
  struct cpool_conn *s = free_pop(p);
  cpool__set_state(p, s, CPOOL_SLOT_BUSY);
  return s;
}

static int64_t wait_deadline_us(const struct cpool *p, const cpool__waiter *w,
                                int64_t deadline_us) {
  int64_t until = deadline_us;
  if (p->cfg.queue_target_ms > 0) {
    /* Wake to re-judge at twice the target and at each window's end. */
    int64_t shed_at = w->since_us + 2000LL * p->cfg.queue_target_ms;
    int64_t roll_at =
        (p->codel_start_ms + p->cfg.queue_interval_ms) * 1000LL;
    int64_t next = shed_at > cpool__now_us() ? shed_at : roll_at;
    if (until < 0 || next < until)
      until = next;
  }
  return until;
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

/* Queue up and wait, with p->mu held.  Returns 0 with *out set, or an
 * error code (already counted).  *deadline_p is 0 on the call's first
 * wait; the deadline is fixed then and kept for any retry. */
static int wait_for_slot(struct cpool *p, int timeout_ms, int64_t *deadline_p,
                         struct cpool_conn **out, cpool_error_info *why) {
  cpool__waiter w = {0};
  int rc = 0;
  /* The oldest waiter's poll for slots parked within a turn (see below). */
  int64_t poll_us = p->cfg.handoff_after_us > POLL_MIN_US
                        ? p->cfg.handoff_after_us
                        : POLL_MIN_US;

  w.since_us = cpool__now_us();
  if (*deadline_p == 0)
    *deadline_p = timeout_ms > 0 ? w.since_us + (int64_t)timeout_ms * 1000
                                 : -1;
  int64_t deadline_us = *deadline_p;
  w.deadline_us = deadline_us;
  w.cut_us = waiter_cut(p, &w);
  pthread_cond_init(&w.cv, &p->cond_attr);
  wq_append(p, &w);
  /* Now that nwaiters counts us, no checkin parks a slot unseen: take
   * back those parked before (the other half of the pair in
   * cpool_checkin). */
  if (p->nfast > 0)
    reclaim_all(p, 0);
  /* Our deadline moved the cut earlier: slots parked or held within a
   * turn are the waiters' from then on, and the oldest waiter, which
   * polls for them, must look by then. */
  if (w.cut_us != 0 && p->nfast > 0 &&
      w.cut_us == atomic_load_explicit(&p->cut_us, memory_order_relaxed))
    watch_parked(p, w.cut_us);
  p->st.waits++;
  p->sleepers++;

  for (;;) {
    /* A slot handed over wins over everything, even a deadline that
     * passed at the same instant: it must never be lost. */
    if (w.slot != NULL) {
      *out = w.slot;
      break;
    }
    if (w.err != 0) {
      rc = checkout_fail(p, w.err, why);
      break;
    }
    /* Free slots are for the waiters woken for them (the oldest). */
    if (p->nfree > 0 && (w.woken || p->wq_head == &w)) {
      wq_remove(p, &w);
      *out = take_free(p);
      break;
    }
    /* A slot parked by a thread within its turn may be left there: the
     * oldest waiter takes it once the turn is over. */
    if (p->wq_head == &w && p->nfree == 0 && p->nfast > 0 &&
        reclaim_one(p))
      continue;
    clear_woken(p, &w);
    int64_t now_us = cpool__now_us();
    if (deadline_us >= 0 && now_us >= deadline_us) {
      wq_remove(p, &w);
      rc = checkout_fail(p, CPOOL_ETIMEDOUT, why);
      break;
    }
    if (p->cfg.queue_target_ms > 0) {
      codel_roll(p, now_us / 1000);
      if (p->overloaded &&
          now_us - w.since_us > 2000LL * p->cfg.queue_target_ms) {
        wq_remove(p, &w);
        rc = checkout_fail(p, CPOOL_EOVERLOAD, why);
        break;
      }
    }
    int64_t until = wait_deadline_us(p, &w, deadline_us);
    /* The oldest waiter, while a slot may be left parked within a turn,
     * sleeps with a timer: until the first such turn ends, but sooner at
     * first (a thread that stops calling leaves its slot parked well
     * before its turn is over), backing off from one short turn. */
    int64_t parked_until = p->wq_head == &w ? turn_parks_until(p) : 0;
    w.polling = parked_until != 0;
    if (w.polling) {
      int64_t at = now_us + poll_us;
      if (parked_until < at)
        at = parked_until;
      if (at < now_us + POLL_MIN_US)
        at = now_us + POLL_MIN_US;
      if (until < 0 || at < until)
        until = at;
      w.poll_at_us = until;
      poll_us = 2 * poll_us < p->cfg.handoff_max_us ? 2 * poll_us
                                                    : p->cfg.handoff_max_us;
    }
    cpool__timed_wait(&w.cv, &p->mu, until);
    w.polling = 0;
  }

  if (rc == 0) {
    /* Served: a turn from now, so a caller that holds its slot for
     * longer than the turn queues again instead of barging. */
    turn_begin(p, cpool__now_us(), 1);
    p->st.checkouts++;
    if (p->cfg.queue_target_ms > 0) {
      int64_t now_us = cpool__now_us();
      codel_observe(p, now_us / 1000, (now_us - w.since_us) / 1000);
    }
  }
  /* We may have been woken for a slot we did not take, been handed one
   * while another sat free for us, or taken one of several free. */
  wake_one(p);
  pthread_cond_destroy(&w.cv);
  if (--p->sleepers == 0 && p->closing)
    pthread_cond_broadcast(&p->state_cv);
  return rc;
}

/* Would this caller be turned away if anybody waited?  Strict mode turns
 * everyone away; with no turn anywhere one may begin; else only a turn in
 * this pool that is not over lets it go ahead.  A turn that is over stays
 * over until this thread is served from the queue (or finds it empty): a
 * nowait caller, or one turned away by queue_max, does not win a new turn
 * by asking again.  Needs no lock: the turn is this thread's own. */
static int turn_refused(const struct cpool *p) {
  if (must_hand_off(p))
    return 1;
  if (turn.start_us == 0)
    return 0;
  int64_t now = cpool__now_us();
  if (!turn_is_for(p)) /* over, as long as it could run in its pool */
    return now <= turn.cap_us;
  return !turn_live(p, now);
}

/* May a caller that is not queued take a free slot now?  Always when
 * nobody waits.  Past waiters, only in non-strict mode and within its
 * turn (from when it was served, or first barged; see turn_earn and the
 * top of this file); then it queues like everyone else, and a nowait
 * caller gets CPOOL_ECHECKEDOUT until it finds nobody waiting.  Only
 * contended checkouts read the clock. */
static int may_barge(const struct cpool *p) {
  if (p->wq_head == NULL) {
    turn_clear(p);
    return 1;
  }
  if (turn_refused(p))
    return 0;
  if (turn.start_us == 0 || !turn_is_for(p)) { /* no turn: one begins */
    int64_t now = cpool__now_us();
    turn_begin(p, now, 0);
    if (!turn_live(p, now)) {
      turn.out_us = 0; /* nothing taken */
      return 0; /* past a waiter's cut: over at once, and stays over */
    }
  } else {
    turn_earn(p);
    turn.out_us = cpool__now_us();
  }
  return 1;
}

static int take_or_wait(struct cpool *p, int timeout_ms, int64_t *deadline_us,
                        struct cpool_conn **out, cpool_error_info *why) {
  if (p->closing)
    return CPOOL_ESHUTDOWN;
  if (p->nfree == 0 && p->nfast > 0)
    reclaim_one(p); /* parked by another thread: as free as any */
  if (p->nfree > 0 && may_barge(p)) {
    *out = take_free(p);
    p->st.checkouts++;
    if (p->cfg.queue_target_ms > 0)
      codel_observe(p, cpool__coarse_ms(), 0);
    return 0;
  }
  if (backend_down(p))
    return checkout_fail(p, CPOOL_ECLOSED, why);
  if (timeout_ms == CPOOL_NOWAIT)
    return checkout_fail(p, CPOOL_ECHECKEDOUT, why);
  if (p->cfg.queue_max > 0 && p->nwaiters >= p->cfg.queue_max)
    return checkout_fail(p, CPOOL_ECHECKEDOUT, why);
  return wait_for_slot(p, timeout_ms, deadline_us, out, why);
}

/* A checked-out slot comes back while the pool closes: its worker closes
 * it, and close's drain may be waiting for it (with p->mu held). */
static void release_on_close(struct cpool *p, struct cpool_conn *s) {
  if (p->forced)
    return; /* the drain is over: its worker shuts it (or has) */
  cpool__set_state(p, s, CPOOL_SLOT_IDLE);
  pthread_cond_signal(&s->cv);
  pthread_cond_broadcast(&p->state_cv);
}

/* The slot's worker takes it back (with p->mu held). */
static void hand_to_worker(struct cpool *p, struct cpool_conn *s,
                           enum cpool__reason why) {
  s->reason = why;
  cpool__set_state(p, s, CPOOL_SLOT_CONNECTING);
  pthread_cond_signal(&s->cv);
}

/* Is a slot that sat idle still alive?  Recently used ones are trusted
 * without a system call; the coarse clock costs none.  The slot's "last
 * used" time is stamped here, at checkout, and not again at checkin: one
 * clock read per cycle, and a slot held long merely looks idler than it
 * is (one extra peek at worst).  With p->mu held. */
/* Has the slot sat idle past idle_check_ms (0: always), so that only a
 * peek can tell whether it is alive? */
static int needs_peek(const struct cpool *p, const struct cpool_conn *s,
                      int64_t now) {
  int check = p->cfg.idle_check_ms;
  return check == 0 || (check > 0 && now - cpool__last_used(s) > check);
}

static int idle_slot_alive(const struct cpool *p, struct cpool_conn *s) {
  int64_t now = cpool__coarse_ms();
  int peek = needs_peek(p, s, now);

  cpool__set_last_used(s, now);
  return !peek || cpool__net_alive(s->fd);
}

/* The fast path: this thread's parked slot, taken back with one
 * compare-and-swap, when nobody waits (HELD) or within this thread's turn
 * (HELD_TURN, with the turn's end).  Returns it, or NULL. */
static struct cpool_conn *fast_take(struct cpool *p) {
  if (last_parked.pool != p || last_parked.gen != p->gen)
    return NULL;
  int64_t held = CPOOL__LEASE_HELD, end = 0, now = 0;
  if (atomic_load_explicit(&p->nwaiters, memory_order_relaxed) == 0) {
    turn_clear(p); /* nobody to take turns with */
  } else if (in_turn_at(p, now = cpool__now_us())) {
    end = turn_earned(p);
    /* The lease says until when it may be parked. */
    held = CPOOL__LEASE_TURN(turn_cut(p, end));
  } else {
    return NULL;
  }
  struct cpool_conn *s = last_parked.slot;
  int64_t parked = atomic_load_explicit(&s->lease, memory_order_relaxed);
  if (CPOOL__LEASE_STATE(parked) != CPOOL__LEASE_PARKED)
    return NULL;
  if (!atomic_compare_exchange_strong_explicit(&s->lease, &parked, held,
                                               memory_order_acquire,
                                               memory_order_relaxed))
    return NULL;
  if (end != 0) {
    turn.end_us = end;
    turn.out_us = now;
  }
  return s;
}

/* idle_slot_alive without the peek: 1 if the slot may be used as it is
 * (and its "last used" time is stamped), 0 if it needs the peek. */
static int fast_fresh(const struct cpool *p, struct cpool_conn *s) {
  int64_t now = cpool__coarse_ms();
  if (needs_peek(p, s, now))
    return 0;
  cpool__set_last_used(s, now);
  return 1;
}

static int checkout(struct cpool *p, cpool_conn_t **conn, int timeout_ms,
                    cpool_error_info *why) {
  struct cpool_conn *s = NULL;
  int64_t deadline_us = 0;

  /* A nowait caller past its turn, while others wait, would only be
   * turned away under the lock: turn it away without, so that one asking
   * in a loop cannot keep the waiter woken for a free slot from taking the
   * lock (which is not fair).  (While the pool closes or the backend is
   * down nobody waits: fail_waiters emptied the queue.) */
  if (timeout_ms == CPOOL_NOWAIT &&
      atomic_load_explicit(&p->nwaiters, memory_order_relaxed) > 0 &&
      !atomic_load_explicit(&p->closing, memory_order_relaxed) &&
      turn_refused(p)) {
    atomic_fetch_add_explicit(&p->nowait_refusals, 1, memory_order_relaxed);
    return CPOOL_ECHECKEDOUT;
  }

  s = fast_take(p);
  if (s != NULL) {
    if (!atomic_load_explicit(&p->closing, memory_order_relaxed) &&
        fast_fresh(p, s)) {
      atomic_store_explicit(
          &s->fast_checkouts,
          atomic_load_explicit(&s->fast_checkouts, memory_order_relaxed) + 1,
          memory_order_relaxed);
      *conn = s;
      return 0;
    }
  }

  /* Everything, the peek included (one non-blocking recv, and only for a
   * slot idle past idle_check_ms), happens in one lock hold: once the
   * lock is released this call touches no pool memory but p->entered,
   * which cpool_close waits for before it frees the pool. */
  atomic_fetch_add_explicit(&p->entered, 1, memory_order_seq_cst);
  pthread_mutex_lock(&p->mu);
  int rc = 0;
  if (s != NULL) {
    /* Ours, but idle too long to trust without a peek, or the pool is
     * closing: on to the checks below as if just taken. */
    lease_drop(p, s);
    p->st.checkouts++;
  } else {
    rc = take_or_wait(p, timeout_ms, &deadline_us, &s, why);
  }
  while (rc == 0 && !p->closing && !idle_slot_alive(p, s)) {
    /* Dead: its worker reconnects it; the next one, same deadline. */
    p->st.checkouts--;
    p->st.idle_check_failures++;
    hand_to_worker(p, s, CPOOL__DEAD);
    rc = take_or_wait(p, timeout_ms, &deadline_us, &s, why);
  }
  if (rc == 0 && p->closing) {
    /* Handed over just before close began: close is waiting for it. */
    p->st.checkouts--;
    release_on_close(p, s);
    rc = CPOOL_ESHUTDOWN;
  }
  pthread_mutex_unlock(&p->mu);
  atomic_fetch_sub_explicit(&p->entered, 1, memory_order_release);
  if (rc == 0)
    *conn = s;
  return rc;
}

/* cpool_close does not free the pool while a checkout is inside it (see
 * internal.h): the locked part counts itself in p->entered, and the fast
 * path, which may only take the slot this thread parked last, in that
 * slot's in_checkin (a line of its own: no lock, no shared line). */
int cpool_checkout(cpool_t *p, cpool_conn_t **conn, int timeout_ms,
                   cpool_error_info *why) {
  if (p == NULL || conn == NULL || timeout_ms < CPOOL_WAIT_FOREVER)
    return CPOOL_EINVAL;
  *conn = NULL;
  struct cpool_conn *pin = NULL;
  if (last_parked.pool == p && last_parked.gen == p->gen) {
    pin = last_parked.slot;
    atomic_fetch_add_explicit(&pin->in_checkin, 1, memory_order_seq_cst);
  }
  int rc = checkout(p, conn, timeout_ms, why);
  if (pin != NULL)
    atomic_fetch_sub_explicit(&pin->in_checkin, 1, memory_order_release);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Checkin.                                                            */

static int conn_of_pool(const struct cpool *p, const struct cpool_conn *s) {
  uintptr_t base = (uintptr_t)p->slots, at = (uintptr_t)s;
  return at >= base && at < base + (uintptr_t)p->size * sizeof *s &&
         (at - base) % sizeof *s == 0;
}

static int lifetime_over(struct cpool *p, const struct cpool_conn *s) {
  if (s->expires_ms == 0 || cpool__coarse_ms() < s->expires_ms)
    return 0;
  /* Never recycle too many at once: a recycle counts until its slot is back,
 * and the rest wait for a later checkin. */
  int cap = p->size / 4 > 1 ? p->size / 4 : 1;
  return p->recycling < cap;
}

/* A slot checked in OK while the pool is open: parked for this thread if
 * nobody waits or within its turn (see internal.h), else free for the
 * next caller. */
static void offer(struct cpool *p, struct cpool_conn *s) {
  /* Within a turn it stays this thread's until the turn ends (one clock
   * read decides both). */
  int64_t end = p->nwaiters != 0 && in_turn(p) ? turn_cut(p, turn.end_us) : 0;
  if ((p->nwaiters == 0 || end != 0) && p->nfast < p->fast_max) {
    fast_add(p, s);
    watch_parked(p, end != 0 ? end : INT64_MAX);
    atomic_store_explicit(&s->lease,
                          end != 0 ? CPOOL__LEASE_PARKED_UNTIL(end)
                                   : CPOOL__LEASE_PARKED,
                          memory_order_release);
    remember_parked(p, s);
    return;
  }
  cpool__make_available(p, s);
}

/* The checkin proper, with p->mu held and the slot BUSY with no lease. */
static void checkin_locked(struct cpool *p, struct cpool_conn *s,
                           int status) {
  if (p->cfg.ping_interval_ms > 0) /* pings count idle time from here */
    cpool__set_last_used(s, cpool__coarse_ms());
  if (p->closing) {
    release_on_close(p, s);
  } else if (status == CPOOL_CONN_BROKEN) {
    p->st.broken_checkins++;
    hand_to_worker(p, s, CPOOL__BROKEN);
  } else if (lifetime_over(p, s)) {
    p->recycling++;
    s->recycling = 1;
    hand_to_worker(p, s, CPOOL__RECYCLE);
  } else {
    offer(p, s);
  }
}

/* The fast checkin of a slot taken on the fast path: park it again with
 * one store.  Then, if close began, or somebody waits and this is not a
 * slot held within a turn, take it back and check it in under the lock.
 * (Waiters and close reclaim parked slots, so one of the two sides sees
 * the other: both the store and the loads are sequentially consistent.)
 * From the store on the slot may be someone else's and the pool might be
 * closed: cpool_checkin's count in in_checkin keeps cpool_close from
 * freeing it until the end. */
static void fast_checkin(struct cpool *p, struct cpool_conn *s,
                         int64_t held, int timed) {
  if (p->cfg.ping_interval_ms > 0)
    cpool__set_last_used(s, cpool__coarse_ms());
  /* Taken within a turn: parked as this thread's until the turn ends. */
  atomic_store(&s->lease, CPOOL__LEASE_STATE(held) == CPOOL__LEASE_HELD_TURN
                              ? CPOOL__LEASE_PARKED_UNTIL(
                                    CPOOL__LEASE_TURN_END(held))
                              : CPOOL__LEASE_PARKED);
  remember_parked(p, s);
  /* The clock only after the store: a waiter that found the turn over
   * read its clock before, and reclaims the slot (turn_parks_until).  One
   * read serves the turn's timing too. */
  int64_t now = timed ? cpool__now_us() : 0;
  if (timed)
    turn_hold(now);
  /* Within a turn: the one written in the lease at checkout, which is
   * what waiters looked at. */
  if (atomic_load(&p->closing) ||
      (atomic_load(&p->nwaiters) != 0 &&
       !(CPOOL__LEASE_STATE(held) == CPOOL__LEASE_HELD_TURN &&
         (now != 0 ? now : cpool__now_us()) <=
             CPOOL__LEASE_TURN_END(held)))) {
    pthread_mutex_lock(&p->mu);
    if (s->fast_pos >= 0 && unpark(p, s, 1))
      checkin_locked(p, s, CPOOL_CONN_OK);
    else if (s->fast_pos >= 0 && p->wq_head != NULL && turn_parks(p))
      /* taken within a turn since our store: see internal.h */
      watch_parked(p, INT64_MAX);
    pthread_mutex_unlock(&p->mu);
  }
}

static int checkin(struct cpool *p, struct cpool_conn *s, int status) {
  int rc = 0;

  /* Checked out within a turn: its hold is timed (turn_hold). */
  int timed = turn.out_us != 0 && turn_is_for(p);

  int64_t v = atomic_load_explicit(&s->lease, memory_order_relaxed);
  int lease = CPOOL__LEASE_STATE(v);
  int held = lease == CPOOL__LEASE_HELD || lease == CPOOL__LEASE_HELD_TURN;
  if (held && status == CPOOL_CONN_OK &&
      (s->expires_ms == 0 || cpool__coarse_ms() < s->expires_ms)) {
    fast_checkin(p, s, v, timed);
    return 0;
  }

  pthread_mutex_lock(&p->mu);
  lease =
      CPOOL__LEASE_STATE(atomic_load_explicit(&s->lease, memory_order_relaxed));
  if (p->forced) {
    /* The drain is over: the pool has shut the connection down (its
     * worker closes it, if it has not yet). */
    rc = CPOOL_ESHUTDOWN;
  } else if (lease == CPOOL__LEASE_PARKED || s->state != CPOOL_SLOT_BUSY) {
    rc = CPOOL_EINVAL; /* a second checkin, or never checked out */
  } else {
    if (lease == CPOOL__LEASE_HELD || lease == CPOOL__LEASE_HELD_TURN)
      lease_drop(p, s); /* broken or expired */
    if (timed)
      turn_hold(cpool__now_us());
    checkin_locked(p, s, status);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* The slot's in_checkin counts this call from here to its end, both
 * paths: cpool_close does not free the pool while it is inside (see
 * internal.h). */
int cpool_checkin(cpool_t *p, cpool_conn_t *s, int status) {
  if (p == NULL || s == NULL || !conn_of_pool(p, s) ||
      (status != CPOOL_CONN_OK && status != CPOOL_CONN_BROKEN))
    return CPOOL_EINVAL;
  atomic_fetch_add_explicit(&s->in_checkin, 1, memory_order_seq_cst);
  int rc = checkin(p, s, status);
  atomic_fetch_sub_explicit(&s->in_checkin, 1, memory_order_release);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Accessors and stats.                                                */

int cpool_conn_fd(const cpool_conn_t *s) { return s ? s->fd : -1; }
void *cpool_conn_data(const cpool_conn_t *s) { return s ? s->data : NULL; }
int cpool_conn_slot(const cpool_conn_t *s) { return s ? s->index : -1; }

int cpool_stats(cpool_t *p, cpool_stats_t *out) {
  if (p == NULL || out == NULL)
    return CPOOL_EINVAL;
  pthread_mutex_lock(&p->mu);
  *out = p->st;
  out->size = p->size;
  out->connecting = p->counts[CPOOL_SLOT_CONNECTING];
  out->idle = p->counts[CPOOL_SLOT_IDLE];
  out->busy = p->counts[CPOOL_SLOT_BUSY];
  out->backoff = p->counts[CPOOL_SLOT_BACKOFF];
  out->closed = p->counts[CPOOL_SLOT_CLOSED];
  out->checking = p->counts[CPOOL_SLOT_CHECKING];
  out->waiters = p->nwaiters;
  /* Parked slots are idle to the user, and the fast path counts its own
   * checkouts. */
  for (int i = 0; i < p->nfast; i++) {
    const struct cpool_conn *s = &p->slots[p->fast_list[i]];
    if (CPOOL__LEASE_STATE(atomic_load(&s->lease)) == CPOOL__LEASE_PARKED) {
      out->busy--;
      out->idle++;
    }
  }
  for (int i = 0; i < p->size; i++)
    out->checkouts += atomic_load_explicit(&p->slots[i].fast_checkouts,
                                           memory_order_relaxed);
  out->checked_out_errors +=
      atomic_load_explicit(&p->nowait_refusals, memory_order_relaxed);
  if (out->last_error.code != 0)
    out->last_error.age_ms = cpool__now_ms() - p->last_error_at_ms;
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Open and close.                                                     */

static void pool_free(struct cpool *p) {
  if (p->wake_fd >= 0)
    close(p->wake_fd);
  for (int i = 0; p->slots != NULL && i < p->size; i++)
    pthread_cond_destroy(&p->slots[i].cv);
  pthread_cond_destroy(&p->state_cv);
  pthread_condattr_destroy(&p->cond_attr);
  pthread_mutex_destroy(&p->mu);
  free(p->slots);
  free(p->free_stack);
  free(p->fast_list);
  free(p->host);
  free(p->unix_path);
  free(p);
}

static int pool_alloc(struct cpool **out, const cpool_config *c,
                      cpool_error_info *err) {
  /* Aligned: the fast path's fields and each slot have lines of their
   * own. */
  struct cpool *p = aligned_alloc(alignof(struct cpool), sizeof *p);
  if (p == NULL)
    goto nomem;
  memset(p, 0, sizeof *p);
  p->gen = atomic_fetch_add(&pools_opened, 1) + 1;
  p->wake_fd = -1;
  p->cfg = *c;
  p->size = c->size;
  /* Critical sections are a few dozen instructions: spinning briefly
   * before sleeping beats a futex round trip when callers contend. */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&p->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_init(&p->cond_attr);
  pthread_condattr_setclock(&p->cond_attr, CLOCK_MONOTONIC);
  pthread_cond_init(&p->state_cv, &p->cond_attr);
  p->slots = aligned_alloc(alignof(struct cpool_conn),
                           (size_t)p->size * sizeof *p->slots);
  if (p->slots != NULL)
    memset(p->slots, 0, (size_t)p->size * sizeof *p->slots);
  p->free_stack = calloc((size_t)p->size, sizeof *p->free_stack);
  p->fast_list = calloc((size_t)p->size, sizeof *p->fast_list);
  /* An empty string means "not set", as config_resolve judged it. */
  int has_host = c->host != NULL && c->host[0] != '\0';
  int has_unix = c->unix_path != NULL && c->unix_path[0] != '\0';
  p->host = has_host ? strdup(c->host) : NULL;
  p->unix_path = has_unix ? strdup(c->unix_path) : NULL;
  if (p->slots == NULL || p->free_stack == NULL || p->fast_list == NULL ||
      (has_host && !p->host) ||
      (has_unix && !p->unix_path)) {
    pool_free(p);
    goto nomem;
  }
  p->cfg.host = p->host;
  p->cfg.unix_path = p->unix_path;
  p->codel_min_wait_ms = -1;
  p->codel_start_ms = cpool__now_ms();
  p->counts[CPOOL_SLOT_CONNECTING] = p->size;
  p->fast_max = p->size < FAST_MAX ? p->size : FAST_MAX;
  for (int i = 0; i < p->size; i++) {
    struct cpool_conn *s = &p->slots[i];
    s->pool = p;
    s->index = i;
    s->fd = -1;
    s->free_pos = -1;
    s->fast_pos = -1;
    s->state = CPOOL_SLOT_CONNECTING;
    pthread_cond_init(&s->cv, &p->cond_attr);
    cpool__backoff_init(&s->backoff, c->backoff_type, c->backoff_min_ms,
                        c->backoff_max_ms);
  }
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd < 0) {
    int e = errno;
    pool_free(p);
    cpool__error_set(err, CPOOL_ESYS, CPOOL_STEP_NONE, e, NULL,
                     "eventfd: %s", strerror(e));
    return CPOOL_ESYS;
  }
  *out = p;
  return 0;
nomem:
  cpool__error_set(err, CPOOL_ENOMEM, CPOOL_STEP_NONE, ENOMEM, NULL,
                   "out of memory for a pool of %d slots", c->size);
  return CPOOL_ENOMEM;
}

/* Workers run with every signal blocked: signals are the program's. */
static int start_workers(struct cpool *p, cpool_error_info *err) {
  pthread_attr_t attr;
  sigset_t all, old;
  int rc = 0;

  pthread_attr_init(&attr);
  size_t stack = p->cfg.worker_stack_size;
  if (stack == 0)
    stack = DEFAULT_WORKER_STACK;
  pthread_attr_setstacksize(&attr, stack);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (int i = 0; i < p->size; i++) {
    struct cpool_conn *s = &p->slots[i];
    int e = pthread_create(&s->thread, &attr, cpool__worker_main, s);
    if (e != 0) {
      cpool__error_set(err, CPOOL_ESYS, CPOOL_STEP_NONE, e, NULL,
                       "pthread_create (worker %d of %d): %s", i, p->size,
                       strerror(e));
      rc = CPOOL_ESYS;
      break;
    }
    s->thread_started = 1;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc;
}

static void wake_workers(struct cpool *p) {
  uint64_t one = 1;
  ssize_t n = write(p->wake_fd, &one, sizeof one);
  (void)n; /* an eventfd counter cannot overflow from one write */
  for (int i = 0; i < p->size; i++)
    pthread_cond_signal(&p->slots[i].cv);
}

static int64_t deadline_of(int64_t timeout_ms) {
  return timeout_ms < 0 ? -1 : cpool__now_us() + timeout_ms * 1000;
}

/* Stop everything; returns how many slots were still checked out. */
static int shutdown_pool(struct cpool *p, int drain_timeout_ms) {
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  fail_waiters(p, CPOOL_ESHUTDOWN);
  /* Parked slots are idle: back to the locked side before the workers
   * look; a checkin parking one from now on sees closing and takes it
   * back itself, unless another caller's checkout takes it first (and
   * gets CPOOL_ESHUTDOWN and gives it back). */
  reclaim_all(p, 1);
  wake_workers(p);
  /* Woken waiters still need the lock to leave, and one handed a slot
   * just now gives it back: the pool must outlive them, and what the
   * drain counts as out must be what callers really hold. */
  while (p->sleepers > 0)
    pthread_cond_wait(&p->state_cv, &p->mu);
  int64_t until = deadline_of(drain_timeout_ms);
  while (p->counts[CPOOL_SLOT_BUSY] > 0 &&
         (until < 0 || cpool__now_us() < until))
    cpool__timed_wait(&p->state_cv, &p->mu, until);
  int busy = p->counts[CPOOL_SLOT_BUSY];
  p->forced = 1;
  /* Slots still out: shut their sockets down so that a caller blocked in
   * recv() or send() on one wakes up with an error instead of hanging. */
  for (int i = 0; busy > 0 && i < p->size; i++)
    if (p->slots[i].state == CPOOL_SLOT_BUSY && p->slots[i].fd >= 0)
      shutdown(p->slots[i].fd, SHUT_RDWR);
  wake_workers(p);
  pthread_mutex_unlock(&p->mu);

  for (int i = 0; i < p->size; i++)
    if (p->slots[i].thread_started)
      pthread_join(p->slots[i].thread, NULL);
  /* Checkins and checkouts still inside the pool (see internal.h): a
   * fast checkin that parked its slot, which was taken and given back
   * since; a checkin after the drain's deadline, or a checkout, waiting
   * for the lock.  A few instructions, unless a thread was preempted. */
  for (int i = 0; i < p->size; i++)
    while (atomic_load_explicit(&p->slots[i].in_checkin,
                                memory_order_seq_cst))
      sched_yield();
  while (atomic_load_explicit(&p->entered, memory_order_seq_cst))
    sched_yield();
  return busy;
}

/* Slots connected: offered (IDLE), being pinged (CHECKING) or checked
 * out (BUSY).  A ping moves a slot out of IDLE and back without it ever
 * being disconnected. */
static int connected_slots(const struct cpool *p) {
  return p->counts[CPOOL_SLOT_IDLE] + p->counts[CPOOL_SLOT_CHECKING] +
         p->counts[CPOOL_SLOT_BUSY];
}

/* Sync start: wait until every slot is up, one fails, or time runs out.
 * Workers broadcast state_cv whenever connected_slots may have changed. */
static int wait_all_connected(struct cpool *p, cpool_error_info *err) {
  int64_t until = deadline_of(2 * (int64_t)p->cfg.connect_timeout_ms + 1000);
  int rc = 0;

  pthread_mutex_lock(&p->mu);
  while (connected_slots(p) < p->size && p->sync_err == 0 &&
         cpool__now_us() < until)
    cpool__timed_wait(&p->state_cv, &p->mu, until);
  if (p->sync_err != 0) {
    rc = p->sync_err;
    if (err != NULL)
      *err = p->sync_error;
  } else if (connected_slots(p) < p->size) {
    rc = CPOOL_ETIMEDOUT;
    cpool__error_set(err, rc, CPOOL_STEP_CONNECT, ETIMEDOUT, NULL,
                     "%d of %d slots connected before the deadline",
                     connected_slots(p), p->size);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int cpool_open(cpool_t **out, const cpool_config *cfg, cpool_error_info *err) {
  cpool_config c;
  struct cpool *p = NULL;
  int rc;

  if (err != NULL)
    memset(err, 0, sizeof *err);
  if (out != NULL)
    *out = NULL;
  if (out == NULL || cfg == NULL)
    return invalid(err, out == NULL ? "pool is NULL" : "cfg is NULL");
  if ((rc = config_resolve(&c, cfg, err)) != 0)
    return rc;
  if ((rc = pool_alloc(&p, &c, err)) != 0)
    return rc;
  rc = start_workers(p, err);
  if (rc == 0 && c.start == CPOOL_START_SYNC)
    rc = wait_all_connected(p, err);
  if (rc != 0) {
    shutdown_pool(p, 0);
    pool_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int cpool_close(cpool_t *p, int drain_timeout_ms) {
  if (p == NULL)
    return 0;
  if (drain_timeout_ms < CPOOL_WAIT_FOREVER)
    return CPOOL_EINVAL;
  int busy = shutdown_pool(p, drain_timeout_ms);
  pool_free(p);
  return busy > 0 ? CPOOL_EBUSY : 0;
}
