/*
 * Internal definitions shared by the library's modules (listed at the
 * top of pool.c), the slot workers (worker.c) and the network code
 * (net.c).  Never installed.
 *
 * Locking: one mutex per pool, pool->mu, guards every field marked
 * [mu] below: slot states and counts, the free stack, the waiter queue, the
 * counters and the last error.  A slot's fd and data are owned by whoever
 * holds the slot: its worker while CONNECTING / BACKOFF / CHECKING, the
 * caller while BUSY, nobody (read-only) while IDLE.  User callbacks are
 * never called with pool->mu held.
 *
 * The fast path.  A slot checked in while nobody waits is "parked": it
 * stays BUSY for the locked side, on the pool's fast list, and its lease
 * word says PARKED.  The thread that parked it remembers it, and its next
 * checkout takes it back with one compare-and-swap on the lease (PARKED ->
 * HELD), its checkin parks it again with one store: no lock, and no cache
 * line shared with other threads.  Anyone else who needs the slot, under
 * pool->mu, "reclaims" it (PARKED -> NONE) and it is then free like any
 * other.  Waiters reclaim every parked slot as they queue, and a checkin
 * that finds waiters after parking reclaims its own (a Dekker pair on
 * lease and nwaiters, both sequentially consistent), so a parked slot and
 * a sleeping waiter are not left side by side...
 *
 * ...except within a turn (turn.h): a thread served from the queue, or
 * barging past it, may keep using the fast path for its turn; it holds the
 * slot as HELD_TURN (with its turn's end), and parks it again at checkin,
 * if the turn is not over, as PARKED with a reservation: until the earlier
 * of its turn's end and handoff_after_us after the checkin
 * (cpool__turn_reserve).  Nobody else reclaims it before then (or before
 * p->cut_us, for a waiter's deadline), save cpool_close, and anyone while
 * nobody waits.  The oldest waiter collects what is left: while any slot
 * is HELD_TURN, or PARKED with a reservation, it sleeps with a timer
 * ("polling", cpool__turn_parks_until_locked): until the first reservation
 * ends, and for a HELD_TURN slot, whose checkin it cannot see, one poll
 * period (handoff_after_us, at least CPOOL__POLL_MIN_US) at a time, and
 * past that slot's turn end after as long again as the turn has been over
 * (cpool__poll_held): never without a timer.  The holder reads its clock before its
 * store; a waiter that loaded HELD_TURN polls, so a park it did not see
 * is found within a poll period.  (Skipping a HELD_TURN slot whose turn
 * looks over would need the holder's clock read after its store: the
 * model's MUTANT_POLL, docs/model.md.)  A park under the lock within a
 * turn that ends before the head's timer wakes it.
 *
 * The holders' looks.  Polling costs the oldest waiter a wake-up every
 * poll period, and the holders within their turns are running anyway:
 * the head publishes when it would look (p->poll_due_us), and a holder's
 * checkin within its turn that finds that time past takes the lock and
 * looks for it (cpool__holder_look_locked: a slot parked past its
 * reservation is offered, which wakes the head; then the next look is
 * due).  While holders look, the head's own timer is p->poll_scale poll
 * periods (doubling each time it fires and finds that a holder looked,
 * up to CPOOL__POLL_SCALE_MAX; back to 1 when none did), and a park
 * under the lock moves poll_due_us earlier instead of waking it.  So the
 * head still never sleeps without a timer beside a slot held or parked
 * within a turn: with every holder stalled (a server's threads asleep
 * between clients) a park is found within one long timer, after which the
 * head polls every period again.  A look is a reclaim under the lock, as
 * any checkout's; the model (which has no clock) covers it.
 *
 * A slot taken without
 * a turn (HELD), or held past its turn, comes back through the lock when
 * it is checked in (the Dekker pair), so it needs no polling; but between
 * that checkin's store and its lock another thread within its turn may
 * take the slot (PARKED -> HELD_TURN), and then the checkin, finding it
 * gone, wakes the head.  Whoever parks a slot within a turn under the
 * lock, or leaves the head of the queue while such slots exist, also
 * wakes a head that is not polling.  In strict mode there are no turns.
 * The protocol is modelled in tests/model/lease.pml and checked by spin
 * (docs/model.md).
 *
 * Once its store of PARKED is visible, a fast checkin no longer holds the
 * slot: another thread may take it and check it in, and cpool_close may
 * then find nothing checked out.  The checkin still reads nwaiters and
 * closing, and may take the lock.  And once the drain's deadline has
 * passed, cpool_close no longer waits for slots checked out, but their
 * checkins (and any checkout) may be on their way into the pool.  So
 * every call counts itself while it is inside the pool, and cpool_close
 * waits for the counts to be 0 before it frees it: cpool_checkin in the
 * slot's in_checkin, from entry to exit (a count: the next holder's
 * checkin of the same slot may overlap); cpool_checkout in the in_checkin
 * of the slot its thread parked last (the only one its fast path may
 * take), and in the pool's entered around its locked part.  A call that
 * begins once close has seen the counts at 0 is the caller's bug: the
 * pool is being freed (cpool.h, cpool_close).
 *
 * The watch (worker.c).  While its slot is connected and the pool open,
 * the worker sleeps in poll() on the socket (POLLRDHUP, no POLLIN) and on
 * p->wake_fd, with the lock released.  A close it sees takes an idle or
 * parked slot at once; a slot checked out is marked (peer_gone, stored
 * before the worker loads the lease; a fast checkin stores its lease
 * before it loads the mark, so a slot parked meanwhile is not missed),
 * and its checkin hands it back.  A hand-back under the lock shuts the
 * socket for reading, which wakes the poll: checkout and checkin make no
 * system call for the watch.
 *
 * This is HikariCP's ConcurrentBag idea (a thread-local list of recently
 * used connections in front of the shared one), for a fixed pool in C.
 */
#ifndef CPOOL_INTERNAL_H
#define CPOOL_INTERNAL_H

#include "backoff.h"
#include "cpool.h"
#include "turn.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/* Why a worker must close its slot's socket. */
enum cpool__reason {
  CPOOL__KEEP = 0,
  CPOOL__BROKEN,    /* checked in as broken */
  CPOOL__DEAD,      /* idle check at checkout found it dead */
  CPOOL__PING_FAIL, /* on_ping failed */
  CPOOL__RECYCLE,   /* older than max_lifetime_ms */
  CPOOL__PEER_CLOSED, /* the server closed or reset it (worker.c) */
  CPOOL__INVALID,   /* checked in OK, but on_checkin said no */
  CPOOL__MOVE       /* idle, to the endpoint it prefers (endpoints.c) */
};

/* A checkin status of cpool's own: CPOOL_CONN_OK that on_checkin failed. */
#define CPOOL__CONN_INVALID 2

/* peer_gone's values: the slot must go back to its worker at checkin,
 * for this reason. */
#define CPOOL__GONE_PEER 1
#define CPOOL__GONE_MOVE 2
static inline enum cpool__reason cpool__gone_reason(int gone) {
  return gone == CPOOL__GONE_MOVE ? CPOOL__MOVE : CPOOL__PEER_CLOSED;
}

/* One endpoint of the pool (endpoints.c).  Name and address are fixed at
 * open; the rest is [mu].  "Down": its last attempt failed, and it is
 * not tried again before retry_at_ms but by a slot with nowhere else to
 * go; from then on one slot at a time probes it (probing). */
typedef struct cpool__endpoint {
  char *host;      /* TCP: name or address (no brackets); else NULL */
  int port;        /* TCP */
  char *unix_path; /* Unix: the path; else NULL */
  char name[128];  /* "host:port", "[v6]:port", "unix:/path" */
  int connected;   /* [mu] slots connected to it (s->ep_on) */
  int down;        /* [mu] its last attempt failed */
  int probing;     /* [mu] a slot is trying it while down (s->probe) */
  int64_t retry_at_ms;     /* [mu] while down: when it may be tried */
  cpool__backoff backoff;  /* [mu] grows once per failed probe */
  uint64_t connects, failures; /* [mu] */
  cpool_error_info last_error; /* [mu] code 0 if none */
  int64_t last_error_at_ms;    /* [mu] */
} cpool__endpoint;

/* A slot's lease word (see the top of this file): the state in its low
 * two bits; with HELD_TURN, the end of the holder's turn above them, in
 * us on CLOCK_MONOTONIC, so that a waiter knows, in the same load, until
 * when the slot may come back parked. */
enum cpool__lease {
  CPOOL__LEASE_NONE = 0,  /* the locked side owns the slot's state */
  CPOOL__LEASE_PARKED,    /* BUSY for the locked side, free to reclaim
                             (within a turn: from the end above on) */
  CPOOL__LEASE_HELD,      /* taken on the fast path: checked out */
  CPOOL__LEASE_HELD_TURN  /* the same, past waiters within a turn: its
                             checkin may park it again beside them */
};
#define CPOOL__LEASE_STATE(v) ((int)((v)&3))
#define CPOOL__LEASE_TURN_END(v) ((v) >> 2)
#define CPOOL__LEASE_TURN(end_us)                                             \
  (((int64_t)(end_us) << 2) | CPOOL__LEASE_HELD_TURN)
/* PARKED within a turn: its holder's until end_us, and nobody else's
 * (bar cpool_close) before. */
#define CPOOL__LEASE_PARKED_UNTIL(end_us)                                     \
  (((int64_t)(end_us) << 2) | CPOOL__LEASE_PARKED)

typedef struct cpool__waiter {
  struct cpool__waiter *prev, *next; /* [mu] FIFO queue links */
  pthread_cond_t cv;
  struct cpool_conn *slot; /* [mu] handed straight to this waiter */
  int err;                 /* [mu] handed an error (ECLOSED, ESHUTDOWN) */
  int woken;               /* [mu] signalled to try the free stack */
  int polling;             /* [mu] the oldest, asleep with a timer to look
                              for slots parked within a turn */
  int64_t since_us;        /* when it joined the queue */
  int64_t deadline_us;     /* when it times out, -1 never */
  int64_t cut_us;          /* when turns must be over for it, 0 never */
  int64_t poll_at_us;      /* while polling: when its timer fires */
} cpool__waiter;

/* A slot: what cpool_conn_t points to.  Each on its own cache lines: the
 * fast path writes lease, last_used_ms and fast_checkouts from the thread
 * holding the slot. */
struct cpool_conn {
  alignas(64) _Atomic int64_t lease; /* enum cpool__lease, see above */
  _Atomic int in_checkin; /* calls that may still touch the pool: its
                             checkins, and checkouts by the thread that
                             parked it last (several can overlap):
                             cpool_close waits for 0 */
  _Atomic int peer_gone;  /* [mu] to write: the worker saw the peer close
                             the socket (CPOOL__GONE_PEER), or wants the
                             slot back to move it (CPOOL__GONE_MOVE);
                             read by checkins and fast checkouts
                             (worker.c, watch_socket) */
  int fast_pos;           /* [mu] position in pool->fast_list, or -1 */
  _Atomic uint64_t fast_checkouts; /* written by the holder only */
  /* Hold times (coarse ms, checkout to checkin), written at checkin by
   * the holder only, before it lets the slot go; summed by cpool_stats. */
  _Atomic uint64_t hold_ms;
  _Atomic uint64_t hold_hist[CPOOL_HIST_BUCKETS];
  struct cpool *pool;
  int index;
  int fd;     /* -1 when not connected */
  void *data; /* from on_connect */
  cpool_slot_state state; /* [mu] */
  int free_pos;           /* [mu] position in pool->free_stack, or -1 */
  enum cpool__reason reason; /* [mu] set when handed back to the worker */
  int recycling;             /* [mu] counted in pool->recycling until the
                                slot is offered again or backs off */
  _Atomic int64_t last_used_ms; /* coarse clock: connect, checkout (by the
                                   caller holding it) or checkin with
                                   pings; relaxed, read by the worker */
  int64_t expires_ms;     /* when max_lifetime_ms runs out, 0 = never */
  int64_t retry_at_ms;    /* [mu] next attempt while in BACKOFF */
  pthread_cond_t cv;      /* the worker waits here, with pool->mu */
  pthread_t thread;
  int thread_started;
  cpool__backoff backoff; /* worker-only */
  int64_t connected_ms;   /* worker-only: when the socket connected */
  int peer_errno;         /* worker-only: SO_ERROR seen with the close */
  int quick_closes;       /* worker-only: sockets in a row the peer closed
                             within backoff_min_ms of connecting */
  char addr[128];         /* the address connected to (worker-only) */
  int ep;       /* [mu] the endpoint tried or connected to, -1 none;
                   written only by the worker (which may read it bare) */
  int ep_on;    /* [mu] counted in slots' endpoint's connected */
  int probe;    /* [mu] this slot's attempt is its endpoint's probe */
  int moving;   /* [mu] counted in pool->moving until offered again or
                   backing off */
  int tried;    /* worker-only: attempts since the last backoff */
};

/* guard.c: bounds on_connect / on_ping in time (see its top comment). */
typedef struct cpool__guard_entry {
  struct cpool__guard_entry *next; /* [guard mu] */
  int fd;
  int64_t deadline_us;
  int fired; /* [guard mu] the socket was shut down at the deadline */
} cpool__guard_entry;
typedef struct cpool__guard {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  cpool__guard_entry *head; /* [guard mu] armed entries */
  int stop;                 /* [guard mu] */
  int started;
  pthread_t thread;
} cpool__guard;
struct cpool {
  /* Read by every fast checkout and checkin: a line of their own, written
   * only as waiters come and go and when the pool closes. */
  alignas(64) uint64_t gen; /* unique per pool opened: tells a thread's
                               remembered slot from a reused address */
  _Atomic int nwaiters;     /* [mu] to write; waiters queued */
  _Atomic int64_t cut_us; /* [mu] to write; when every turn must be over
                             for the waiters' deadlines, 0 if none */
  _Atomic int closing;      /* [mu] to write; cpool_close has begun */
  _Atomic int forked;       /* set in a child process after fork, by
                               fork.c's handler: every call refused */

  /* Refusals counted without the lock (cpool_checkout), on a line of
   * their own: one caller asking in a loop writes it. */
  alignas(64) _Atomic uint64_t nowait_refusals;

  /* Read by fast checkins within a turn, written as the oldest waiter
   * sleeps and wakes and as holders look for it: a line of its own. */
  alignas(64) _Atomic int64_t poll_due_us; /* [mu] to write; when a holder
                                              should look for the oldest
                                              waiter (0: no look) */

  alignas(64) pthread_mutex_t mu;
  _Atomic int entered; /* checkouts in their locked part, counted before
                          they take mu (on its line, which they write
                          anyway): cpool_close waits for 0 */
  pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC */
  pthread_cond_t state_cv;      /* sync open and close's drain wait here */

  cpool_config cfg; /* copied; host and unix_path point below */
  cpool__turn_policy policy; /* the turn settings from cfg (turn.h) */
  char *host;
  char *unix_path;
  int size;
  int wake_fd; /* eventfd: readable once the pool closes; every worker
                  watching its socket polls it too */

  struct cpool_conn *slots;
  int *free_stack; /* [mu] indices of IDLE slots, LIFO */
  int nfree;       /* [mu] */
  int *fast_list;  /* [mu] indices of slots with a lease (parked or held) */
  int nfast;       /* [mu] */
  int fast_max;    /* how many slots may be parked at once */

  cpool__waiter *wq_head, *wq_tail; /* [mu] */
  int sleepers; /* [mu] callers inside wait_for_slot: close waits for 0 */
  int nwoken;   /* [mu] waiters signalled to look at the free stack */
  int poll_scale;        /* [mu] the oldest waiter sleeps this many poll
                            periods while holders look (turn.h) */
  uint64_t holder_looks; /* [mu] looks by holders, to tell it they do */

  int counts[CPOOL_SLOT_CHECKING + 1]; /* [mu] slots per state */
  int forced;                          /* [mu] drain is over */
  int recycling;                       /* [mu] recycles under way */
  int sync_err;                        /* [mu] first failure, sync open */
  cpool_error_info sync_error;         /* [mu] and its details */

  /* CoDel window [mu]. */
  int64_t codel_start_ms;
  int64_t codel_min_wait_ms; /* -1: no wait seen in this window */
  int overloaded;

  cpool__endpoint *eps; /* the endpoint list, fixed at open */
  int neps;
  int moving;           /* [mu] idle slots moving to another endpoint */

  cpool_stats_t st;             /* [mu] counters; slot counts unused */
  int64_t last_error_at_ms;   /* [mu] */
  cpool__guard guard;         /* bounds on_connect and on_ping (guard.c) */

  /* fork.c's list of the pools open in this process [its own lock]. */
  struct cpool *reg_prev, *reg_next;
  int registered;
};

/* Clocks, in ms or us on CLOCK_MONOTONIC; coarse is a few ms granular
 * but costs no system call. */
int64_t cpool__now_ms(void);
int64_t cpool__now_us(void);
int64_t cpool__coarse_ms(void);

/* Wait on cv until until_us (CLOCK_MONOTONIC, the clock of every cpool
 * condition variable), or without limit when until_us < 0. */
void cpool__timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu,
                       int64_t until_us);

/* The modules, in dependency order (pool.c's top comment).  A name that
 * ends in _locked must be called with p->mu held. */

/* config.c: fills c from cfg, the defaults for zero fields; checks it.
 * cpool__config_defaults: what cpool_config_init sets, in a whole struct. */
int cpool__config_resolve(cpool_config *c, const cpool_config *cfg,
                          cpool_error_info *err);
void cpool__config_defaults(cpool_config *cfg);

/* pool.c: cpool_open and cpool_stats for this library's own layouts
 * (abi.c checks and converts the caller's sizes). */
int cpool__open(cpool_t **out, const cpool_config *cfg, cpool_error_info *err);
int cpool__stats(cpool_t *p, cpool_stats_t *out);

/* endpoints.c: the list (parsed at open, freed with the pool), which
 * endpoint a slot tries next, attempts' outcomes, the moves back. */
int cpool__endpoints_init(struct cpool *p, const cpool_config *c,
                          cpool_error_info *err);
void cpool__endpoints_free(struct cpool *p);
/* The endpoint to try now, or -1: back off first.  Marks a probe. */
int cpool__ep_choose_locked(struct cpool *p, struct cpool_conn *s);
int cpool__ep_elsewhere_locked(const struct cpool *p,
                               const struct cpool_conn *s);
void cpool__ep_failed_locked(struct cpool *p, struct cpool_conn *s,
                             cpool_error_info *err);
void cpool__ep_connected_locked(struct cpool *p, struct cpool_conn *s);
void cpool__ep_disconnected_locked(struct cpool *p, struct cpool_conn *s);
/* Is the connected slot s on another endpoint than it prefers, and may
 * it go back now (counted in p->moving)?  1: it is the worker's, with
 * reason CPOOL__MOVE; 0, and if it is checked out it may have been
 * marked (CPOOL__GONE_MOVE) for its checkin to hand it back.
 * *wake_at_ms is brought forward to the next look while displaced. */
int cpool__ep_should_move_locked(struct cpool *p, struct cpool_conn *s,
                                 int64_t *wake_at_ms);
void cpool__ep_explain_locked(struct cpool *p, cpool_error_info *why);

/* slots.c */
void cpool__set_state_locked(struct cpool *p, struct cpool_conn *s,
                             cpool_slot_state st);
void cpool__free_push_locked(struct cpool *p, struct cpool_conn *s);
void cpool__free_remove_locked(struct cpool *p, struct cpool_conn *s);
struct cpool_conn *cpool__take_free_locked(struct cpool *p);
void cpool__fast_add_locked(struct cpool *p, struct cpool_conn *s);
void cpool__fast_remove_locked(struct cpool *p, struct cpool_conn *s);
void cpool__lease_drop_locked(struct cpool *p, struct cpool_conn *s);
int cpool__backend_down_locked(const struct cpool *p);
void cpool__explain_down_locked(struct cpool *p, cpool_error_info *why);
void cpool__recycle_done_locked(struct cpool *p, struct cpool_conn *s);
void cpool__hand_to_worker_locked(struct cpool *p, struct cpool_conn *s,
                                  enum cpool__reason why);
void cpool__release_on_close_locked(struct cpool *p, struct cpool_conn *s);

/* waitq.c */
void cpool__wq_append_locked(struct cpool *p, cpool__waiter *w);
void cpool__wq_remove_locked(struct cpool *p, cpool__waiter *w);
void cpool__clear_woken_locked(struct cpool *p, cpool__waiter *w);
void cpool__wake_one_locked(struct cpool *p);
void cpool__fail_waiters_locked(struct cpool *p, int code);

/* codel.c */
void cpool__codel_roll_locked(struct cpool *p, int64_t now_ms);
void cpool__codel_observe_locked(struct cpool *p, int64_t now_ms,
                                 int64_t waited_ms);

/* handoff.c */
static inline int64_t cpool__cut_now(const struct cpool *p) {
  return atomic_load_explicit(&p->cut_us, memory_order_relaxed);
}
/* Strict FIFO: every freed slot to the oldest waiter, no turns. */
static inline int cpool__strict(const struct cpool *p) {
  return p->cfg.handoff_after_us < 0;
}
void cpool__waiter_leave_locked(struct cpool *p, cpool__waiter *w);
void cpool__make_available_locked(struct cpool *p, struct cpool_conn *s);
int cpool__unpark_locked(struct cpool *p, struct cpool_conn *s, int force);
/* A parked slot is wanted by the locked side (a ping): 1 if it was
 * reclaimed and offered (free again, or handed to a waiter). */
int cpool__reclaim_locked(struct cpool *p, struct cpool_conn *s);
int cpool__reclaim_one_locked(struct cpool *p);
void cpool__reclaim_all_locked(struct cpool *p, int force);
int64_t cpool__turn_parks_until_locked(const struct cpool *p);
int cpool__turn_parks_locked(const struct cpool *p);
void cpool__watch_parked_locked(struct cpool *p, int64_t until_us);
void cpool__holder_look_locked(struct cpool *p);
void cpool__backend_check_locked(struct cpool *p);

/* checkout.c */
int cpool__checkout_fail_locked(struct cpool *p, int code,
                                cpool_error_info *why);

static inline int64_t cpool__last_used(const struct cpool_conn *s) {
  return atomic_load_explicit(&s->last_used_ms, memory_order_relaxed);
}
static inline void cpool__set_last_used(struct cpool_conn *s, int64_t ms) {
  atomic_store_explicit(&s->last_used_ms, ms, memory_order_relaxed);
}

/* The histogram bucket of a time (cpool.h, CPOOL_HIST_BUCKETS). */
static inline int cpool__hist_bucket(uint64_t us) {
  int i = 0;
  for (uint64_t limit = 10; i < CPOOL_HIST_BUCKETS - 1 && us > limit;
       limit *= 10)
    i++;
  return i;
}

/* One more time of us in a histogram and its total, under p->mu. */
static inline void cpool__hist_add(uint64_t *hist, uint64_t *total,
                                   uint64_t us) {
  hist[cpool__hist_bucket(us)]++;
  *total += us;
}

/* An add by the only thread that writes the counter (relaxed load and
 * store, no read-modify-write), read by cpool_stats. */
static inline void cpool__own_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

/* check.c: debug assertions and the locked side's invariants (see
 * there), on in debug and sanitizer builds (CPOOL_DEBUG_CHECKS). */
#ifdef CPOOL_DEBUG_CHECKS
void cpool__assert_fail(const char *what, const char *file, int line)
    __attribute__((noreturn));
#define CPOOL__ASSERT(c)                                                      \
  ((c) ? (void)0 : cpool__assert_fail(#c, __FILE__, __LINE__))
void cpool__check_locked(const struct cpool *p);
#else
#define CPOOL__ASSERT(c) ((void)0)
static inline void cpool__check_locked(const struct cpool *p) { (void)p; }
#endif

/* Unlock p->mu, the invariants checked first. */
static inline void cpool__unlock(struct cpool *p) {
  cpool__check_locked(p);
  pthread_mutex_unlock(&p->mu);
}

/* Wait on cv (with p->mu) until until_us, as cpool__timed_wait, the
 * invariants checked first: the wait lets other threads in. */
static inline void cpool__wait_locked(struct cpool *p, pthread_cond_t *cv,
                                      int64_t until_us) {
  cpool__check_locked(p);
  cpool__timed_wait(cv, &p->mu, until_us);
}

/* fork.c: the pool is listed from its open to its close, so that a child
 * process after fork marks it forked (and closes its copies of the
 * descriptors).  cpool__fork_register returns 0 or an errno value. */
int cpool__fork_register(struct cpool *p);
void cpool__fork_unregister(struct cpool *p);
/* Was the pool opened by the parent of this process?  One relaxed load,
 * no system call: the fast path's check. */
static inline int cpool__forked(const struct cpool *p) {
  return atomic_load_explicit(&p->forked, memory_order_relaxed);
}

/* worker.c */
void *cpool__worker_main(void *arg);

/* net.c: resolve, connect with a deadline, set the socket options.
 * Returns 0 and a connected, blocking socket in *fd, or a CPOOL_E* code
 * with err filled.  Gives up early with CPOOL_ESHUTDOWN once wake_fd is
 * readable. */
int cpool__net_connect(const struct cpool *p, const cpool__endpoint *ep,
                       int *fd, char *addr, size_t addrlen,
                       cpool_error_info *err);

/* One non-blocking peek: 1 if the socket looks alive, 0 if it is at EOF,
 * in error, or (mode CPOOL_IDLE_CHECK_STRICT) has unexpected bytes
 * waiting. */
int cpool__net_alive(int fd, int mode);

/* Apply io_timeout_ms (> 0) as SO_RCVTIMEO and SO_SNDTIMEO; 0, or -1
 * with errno. */
int cpool__net_io_timeout(int fd, int ms);

/* guard.c (the types are above struct cpool). */
void cpool__guard_init(cpool__guard *g, const pthread_condattr_t *attr);
int cpool__guard_start(cpool__guard *g, cpool_error_info *err);
void cpool__guard_stop(cpool__guard *g); /* joins; a no-op if not started */
void cpool__guard_destroy(cpool__guard *g);
void cpool__guard_arm(cpool__guard *g, cpool__guard_entry *e, int fd,
                      int timeout_ms);
/* Takes e off; returns 1 if the guard fired (the socket is shut down). */
int cpool__guard_disarm(cpool__guard *g, cpool__guard_entry *e);

void cpool__error_set(cpool_error_info *err, int code, cpool_step step,
                      int sys_errno, const char *addr, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
