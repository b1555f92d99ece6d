/*
 * A Promela model of cpool's lock-free lease protocol (issue 10, item 4):
 * lease / park / reclaim / waiter wake-up, with the reservation rule of
 * 14e8a77 (a slot PARKED within a turn is its holder's until the earlier
 * of its turn's end and handoff_after_us after its checkin, and the
 * waiters' cut; then the oldest waiter, which sleeps with a timer while
 * any slot is PARKED or HELD_TURN, reclaims it).  Checked exhaustively by
 * tests/model/run_model.sh (ctest -L model); see docs/model.md.
 *
 * Steps (labels in the caller below) and the C they model (src/, at
 * 98cd385):
 *   F1  checkout.c fast_take: relaxed load of nwaiters, turn_clear /
 *       in_turn_at (HELD if nobody waits, HELD_TURN within a turn)
 *   F2  fast_take: load of the lease and CAS PARKED -> HELD/HELD_TURN
 *   T1  cpool_checkout -> take_or_wait: lock, reclaim_one (handoff.c,
 *       forced when nobody waits), one lease CAS per slot
 *   T2  may_barge / turn_refused / take_free (slots.c)
 *   W1  wait_join -> cpool__wq_append_locked (waitq.c): nwaiters++,
 *       wake_one
 *   W2  wait_join -> cpool__reclaim_all_locked(p, 0): lease loads/CAS
 *   W3  wait_try: free slot for the woken or the head ->
 *       cpool__waiter_leave_locked (nwaiters--), take_free
 *   W4  waiter_leave: turn_parks (lease loads) -> watch_parked
 *   W5  wait_leave: turn_begin (earned), wake_one, unlock
 *   W6  wait_try: the head's reclaim_one (not forced): a PARKED_R slot
 *       only once its reservation is over (cpool__unpark_locked)
 *   W7  clear_woken; wait_sleep: cpool__turn_parks_until_locked (lease
 *       loads: PARKED, PARKED_R or HELD_TURN -> a timer)
 *   W8  cpool__wait_locked: sleep on the condvar, mutex released
 *   W9  woken by a signal or the timer, mutex retaken
 *   C1  checkin.c fast_checkin: the clock (within = turn not over),
 *       read BEFORE the store
 *   C2  fast_checkin: seq_cst store of PARKED / PARKED_UNTIL(reserve)
 *   C3  fast_checkin: seq_cst load of nwaiters (after C2: the Dekker
 *       pair with W1 -> W2)
 *   C4  lock, unpark(s, 1)     C5 checkin_locked -> offer, unlock
 *   C6  "taken within a turn since our store": turn_parks, watch_parked
 *   C7  cpool_checkin's locked path -> checkin_locked -> offer
 *   offer (checkin.c), make_available, wake_one, watch_parked,
 *   unpark, reclaim: inlines below, named after their C functions.
 *
 * Granularity: every access to a variable shared without the lock
 * (lease[], nwaiters) is its own step; accesses to what the mutex
 * guards are merged with it (they commute with other threads' steps).
 * Sequential consistency throughout (the relaxed loads in fast_take are
 * modelled as seq_cst).  Time: sover[s] / tover[t] flip from 0 to 1 at
 * any moment (the clock process); a timer is "armed" (polling[t]) and
 * may fire at any moment.  Not modelled: close, workers, pings, broken
 * or expired checkins, peeks, deadlines (the cut is covered by sover
 * flipping early), strict mode, CoDel, spurious wake-ups.
 *
 * Properties (the monitor process, asserted in every state):
 *   P1 exclusivity: a slot in use is held by exactly that caller, and
 *      no one takes a slot another holds (asserts at each take);
 *   P2 no slot lost: each slot is in exactly one place (free stack,
 *      parked on the fast list, or held by one thread);
 *   P3 no waiter asleep without a timer while a slot is free or parked
 *      for it: once every thread has returned or gone to sleep, a head
 *      waiter with no timer armed means no slot free and none PARKED;
 *   P4 and no slot free while every waiter sleeps, timer or not;
 *   P5 work conservation (src/check.c): with the mutex free, nwoken >=
 *      min(nfree, waiters), so no waiter sleeps beside a free slot that
 *      nobody was woken for (P4 sees only quiet states; this one also
 *      those where a woken waiter has not run yet).
 *   Also invalid end states: a waiter that can never wake.
 *
 * MUTANT (spin -DMUTANT): fast_checkin loads nwaiters BEFORE its store
 * of PARKED, which breaks the Dekker pair; P3 must then fail.
 * MUTANT_POLL (not a test; run_model.sh lease.pml -DMUTANT_POLL fails):
 * turn_parks_until skipping a HELD_TURN slot whose turn end has passed.
 * MUTANT_JOIN (not a test; fails with -DNT=3 -DNS=2 -DR=2): wq_append
 * without its wake_one, as before 52cf7c4; P5 then fails.
 */

#ifndef NT
#define NT 2            /* caller threads */
#endif
#ifndef NS
#define NS 1            /* slots */
#endif
#ifndef R
#define R 3             /* checkouts per caller, at most */
#endif

#define NOBODY 255

/* The lease word's states; PARKED_R is PARKED with a reservation
 * (CPOOL__LEASE_PARKED_UNTIL(end), end != 0). */
#define L_NONE      0
#define L_PARKED    1
#define L_PARKED_R  2
#define L_HELD      3
#define L_HELD_TURN 4
#define IS_PARKED(x) (lease[x] == L_PARKED || lease[x] == L_PARKED_R)

/* ---- shared without the lock ---- */
byte lease[NS];
byte nwaiters;

/* ---- time, abstracted: set by the clock process, monotonic ---- */
bool sover[NS];  /* HELD_TURN: the turn end in the lease has passed;
                    PARKED_R: the reservation (parked_until) has passed */
bool tover[NT];  /* the thread's own turn is over */

/* ---- guarded by the pool's mutex ---- */
byte mu = NOBODY;
bool onfree[NS]; byte nfree;   /* IDLE on the free stack */
bool onfast[NS]; byte nfast;   /* on the fast list (fast_pos >= 0) */
byte wq[NT]; byte wqn;         /* the FIFO, wq[0] the head */
bool woken[NT]; byte nwoken;
bool polling[NT];              /* asleep with a timer armed */
bool sleeping[NT];             /* waiting on its condvar */
bool sig[NT];                  /* signalled while waiting */

/* ---- thread-local ---- */
bool has_turn[NT];             /* turn.start_us != 0 */
byte lp[NT];                   /* last_parked slot */

/* ---- ghosts, for the properties ---- */
byte own[NS];                  /* thread that holds the slot */
byte in_use[NS];               /* caller using it (between checkout and checkin) */
bool outside[NT];              /* not inside a pool call */

/* ================= helpers (all with the mutex held) ================= */

inline signal(t) {
  if
  :: sleeping[t] -> sig[t] = 1
  :: else -> skip /* not waiting: lost */
  fi
}

/* wake_one (waitq.c) */
inline wake_one() {
  if
  :: wqn > 0 && nwoken < nfree ->
     j = 0;
     do
     :: j < wqn && woken[wq[j]] -> j++
     :: j < wqn && !woken[wq[j]] ->
        woken[wq[j]] = 1; nwoken++; signal(wq[j]); break
     :: j >= wqn -> break
     od;
     j = 0
  :: else -> skip
  fi
}

/* cpool__watch_parked_locked (handoff.c).  A head that polls is left to
 * its timer: a signal would only wake it sooner, which the timer may do
 * at any moment in the model anyway. */
inline watch_parked() {
  if
  :: wqn > 0 && !woken[wq[0]] && !polling[wq[0]] -> signal(wq[0])
  :: else -> skip
  fi
}

/* cpool__unpark_locked (handoff.c): load, clock, CAS to NONE, then
 * fast_remove: one step. */
inline unpark(x, force) {
  if
  :: IS_PARKED(x) && (force || lease[x] == L_PARKED || sover[x]) ->
     assert(own[x] == NOBODY);
     lease[x] = L_NONE; sover[x] = 0; own[x] = me;
     onfast[x] = 0; nfast--;
     ok = 1
  :: else -> ok = 0
  fi
}

/* cpool__make_available_locked, not strict: IDLE on the free stack. */
inline make_available(x) {
  assert(own[x] == me && lease[x] == L_NONE);
  own[x] = NOBODY; onfree[x] = 1; nfree++;
  wake_one()
}

/* cpool__take_free_locked (slots.c): the stack is LIFO; here any. */
inline take_free() {
  assert(nfree > 0);
  if
  :: onfree[0] -> s = 0
#if NS > 1
  :: onfree[1] -> s = 1
#endif
  fi;
  assert(own[s] == NOBODY && lease[s] == L_NONE);
  onfree[s] = 0; nfree--; own[s] = me
}

/* One slot of reclaim_one / reclaim_all (handoff.c, reclaim): one step,
 * as the lease is loaded and CASed in it. */
inline reclaim(x, force) {
  if
  :: onfast[x] ->
     unpark(x, force);
     if
     :: ok -> make_available(x)
     :: else -> skip
     fi
  :: else -> ok = 0
  fi
}

/* cpool__wq_remove_locked (waitq.c) of me, but not the nwaiters--. */
inline wq_remove_me() {
  if
  :: woken[me] -> woken[me] = 0; nwoken--
  :: else -> skip
  fi;
  j = 0;
  do
  :: j < wqn && wq[j] != me -> j++
  :: j < wqn && wq[j] == me -> break
  od;
  do
  :: j + 1 < wqn -> wq[j] = wq[j + 1]; j++
  :: else -> break
  od;
  wqn--; wq[wqn] = 0; j = 0
}

/* offer (checkin.c) of slot x by me, with the mutex held: parked for me
 * if nobody waits (PARKED) or I am within my turn (PARKED_R, reserved),
 * else free.  The store of the lease is the one shared access. */
inline offer(x) {
  if
  :: nwaiters == 0 || (has_turn[me] && !tover[me]) ->
     onfast[x] = 1; nfast++;
     watch_parked();
     if
     :: nwaiters == 0 -> lease[x] = L_PARKED
     :: else -> lease[x] = L_PARKED_R
     fi;
     sover[x] = 0; own[x] = NOBODY; lp[me] = x
  :: else -> make_available(x)
  fi
}

/* One load of turn_parks_until (handoff.c): a slot on the fast list,
 * PARKED (with or without a reservation) or HELD_TURN. */
#ifdef MUTANT_POLL
/* MUTANT_POLL: the rule before 14e8a77, a HELD_TURN slot past its turn
 * end needs no poll; wrong now that fast_checkin reads its clock before
 * its store. */
#define TURN_PARKS(x) (onfast[x] && (IS_PARKED(x) || \
                       (lease[x] == L_HELD_TURN && !sover[x])))
#else
#define TURN_PARKS(x) (onfast[x] && (IS_PARKED(x) || lease[x] == L_HELD_TURN))
#endif

#define UNLOCK  assert(mu == me); mu = NOBODY

/* ============================ a caller ============================ */

proctype caller(byte me) {
  byte s = NOBODY;   /* the slot this call holds */
  byte ht = L_NONE;  /* its lease at checkout: HELD, HELD_TURN, or NONE */
  byte i, j, n;
  bool ok, within, found, washead;
  byte rounds = 0;

  do
  :: rounds < R ->
     rounds++;

     /* ---------------- cpool_checkout ---------------- */
     /* F1 fast_take: the relaxed load of nwaiters, and the turn. */
     d_step {
       outside[me] = 0;
       if
       :: lp[me] == NOBODY -> ht = L_NONE
       :: lp[me] != NOBODY && nwaiters == 0 ->
          has_turn[me] = 0; tover[me] = 0;      /* turn_clear */
          ht = L_HELD
       :: lp[me] != NOBODY && nwaiters != 0 && has_turn[me] && !tover[me] ->
          ht = L_HELD_TURN                      /* in_turn_at */
       :: else -> ht = L_NONE
       fi
     }
     /* F2 fast_take: load the lease, CAS PARKED -> HELD / HELD_TURN. */
     if
     :: ht != L_NONE ->
        d_step {
          if
          :: IS_PARKED(lp[me]) ->
             s = lp[me];
             assert(own[s] == NOBODY);
             lease[s] = ht; sover[s] = 0; own[s] = me
          :: else -> ht = L_NONE
          fi
        }
     :: else -> skip
     fi;

     if
     :: s != NOBODY -> goto use   /* fast_fresh: trusted */
     :: else -> skip
     fi;

     /* T1 cpool_checkout -> checkout_locked -> take_or_wait: lock;
      * reclaim_one (force: nobody waits) if nothing is free. */
     i = 0;
     atomic {
       mu == NOBODY -> mu = me;
       if
       :: nfree == 0 && nfast > 0 -> ok = 0
       :: else -> i = NS; ok = 1
       fi
     }
     do
     :: i < NS && !ok -> d_step { reclaim(i, wqn == 0); i++ }
     :: else -> break
     od;
     i = 0;
     /* T2 may_barge, take_free. */
     atomic {
       if
       :: nfree > 0 ->
          if
          :: wqn == 0 -> has_turn[me] = 0; tover[me] = 0; ok = 1
          :: wqn > 0 && has_turn[me] && tover[me] -> ok = 0  /* turn_refused */
          :: wqn > 0 && !has_turn[me] ->
             has_turn[me] = 1; tover[me] = 0; ok = 1      /* turn_begin */
          :: wqn > 0 && has_turn[me] && !tover[me] -> ok = 1 /* turn_earn */
          fi
       :: else -> ok = 0
       fi;
       if
       :: ok -> take_free(); UNLOCK; goto use
       :: else -> skip
       fi
     }

     /* W1 wait_for_slot -> wait_join -> wq_append: nwaiters++ (seq_cst),
      * the waiter's half of the Dekker pair; wake_one, for a free slot
      * beyond those the woken waiters will take (refused by its turn, a
      * caller may queue beside one; MUTANT_JOIN: no wake, P5 fails). */
#ifdef MUTANT_JOIN
     d_step { wq[wqn] = me; wqn++; nwaiters++ }
#else
     d_step { wq[wqn] = me; wqn++; nwaiters++; wake_one() }
#endif
     /* W2 reclaim_all(p, 0): load every lease after counting myself. */
     i = 0;
     do
     :: i < NS -> d_step { reclaim(i, 0); i++ }
     :: else -> break
     od;
     i = 0;

wait_try:
     /* W3 wait_try: a free slot for me (woken, or the head): leave the
      * queue (nwaiters--) and take it. */
     atomic {
       if
       :: nfree > 0 && (woken[me] || wq[0] == me) ->
          washead = (wq[0] == me);
          wq_remove_me();
          nwaiters--;
          take_free();
          ok = 1
       :: else -> ok = 0
       fi
     }
     if
     :: ok ->
        /* W4 cpool__waiter_leave_locked: the old head hands the watch
         * over: loads of the leases (turn_parks), then watch_parked. */
        found = 0;
        if
        :: washead && nfast > 0 ->
           i = 0;
           do
           :: i < NS -> d_step { found = found || TURN_PARKS(i); i++ }
           :: else -> break
           od;
           i = 0
        :: else -> skip
        fi;
        /* W5 wait_leave: served, a turn begins (earned); wake_one;
         * unlock. */
        d_step {
          if
          :: found -> watch_parked()
          :: else -> skip
          fi;
          found = 0; washead = 0;
          has_turn[me] = 1; tover[me] = 0;
          wake_one();
          UNLOCK
        }
        goto use
     :: else -> skip
     fi;
     /* W6 wait_try: the head reclaims a slot parked within a turn once
      * its reservation is over (reclaim_one, not forced: I wait). */
     if
     :: wq[0] == me && nfree == 0 && nfast > 0 ->
        i = 0; ok = 0;
        do
        :: i < NS && !ok -> d_step { reclaim(i, 0); i++ }
        :: else -> break
        od;
        i = 0;
        if
        :: ok -> ok = 0; goto wait_try
        :: else -> skip
        fi
     :: else -> skip
     fi;
     /* W7 wait_try: clear_woken; no deadline.  wait_sleep: the head
      * loads the leases (turn_parks_until) ... */
     d_step {
       if
       :: woken[me] -> woken[me] = 0; nwoken--
       :: else -> skip
       fi;
       found = 0
     }
     if
     :: wq[0] == me ->
        i = 0;
        do
        :: i < NS -> d_step { found = found || TURN_PARKS(i); i++ }
        :: else -> break
        od;
        i = 0
     :: else -> skip
     fi;
     /* W8 ... and sleeps on its condvar, with a timer iff polling: the
      * wait releases the mutex atomically. */
     d_step {
       polling[me] = found; found = 0;
       sleeping[me] = 1; sig[me] = 0;
       UNLOCK
     }
     /* W9 woken by a signal, or by its timer, and the mutex again. */
     atomic {
       (sig[me] || polling[me]) && mu == NOBODY ->
       mu = me; sleeping[me] = 0; sig[me] = 0; polling[me] = 0
     }
     goto wait_try;

use:
     /* U the caller holds the slot, outside the pool. */
     atomic {
       assert(own[s] == me && in_use[s] == NOBODY);
       in_use[s] = me; outside[me] = 1
     }
     d_step {
       assert(own[s] == me && in_use[s] == me);
       in_use[s] = NOBODY; outside[me] = 0
     }

     /* ---------------- cpool_checkin ---------------- */
     if
     :: ht == L_HELD || ht == L_HELD_TURN ->
        /* C1 fast_checkin: the clock, before the store. */
        within = (ht == L_HELD_TURN && !sover[s]);
#ifdef MUTANT
        /* MUTANT: nwaiters loaded before the store of PARKED. */
        n = nwaiters;
#endif
        /* C2 the seq_cst store of PARKED (reserved, within the turn):
         * from here on the slot is not mine. */
        d_step {
          assert(lease[s] == ht);
          if
          :: within -> lease[s] = L_PARKED_R
          :: else -> lease[s] = L_PARKED
          fi;
          sover[s] = 0; own[s] = NOBODY; lp[me] = s
        }
#ifndef MUTANT
        /* C3 the seq_cst load of nwaiters, after the store. */
        n = nwaiters;
#endif
        if
        :: n != 0 && !within ->
           /* C4 lock; unpark(s, 1) if it is still on the fast list. */
           atomic {
             mu == NOBODY -> mu = me;
             if
             :: onfast[s] -> unpark(s, 1)
             :: else -> ok = 0
             fi
           }
           if
           :: ok ->
              /* C5 checkin_locked -> offer; unlock. */
              d_step { offer(s); ok = 0; UNLOCK }
           :: else ->
              /* C6 taken within a turn since the store: turn_parks,
               * watch_parked; unlock. */
              found = 0;
              if
              :: onfast[s] && wqn > 0 ->
                 i = 0;
                 do
                 :: i < NS -> d_step { found = found || TURN_PARKS(i); i++ }
                 :: else -> break
                 od;
                 i = 0
              :: else -> skip
              fi;
              d_step {
                if
                :: found -> watch_parked()
                :: else -> skip
                fi;
                found = 0;
                UNLOCK
              }
           fi
        :: else -> skip
        fi
     :: else ->
        /* C7 cpool_checkin, locked: the lease is NONE; offer; unlock. */
        atomic {
          mu == NOBODY -> mu = me;
          assert(lease[s] == L_NONE && own[s] == me);
          offer(s);
          UNLOCK
        }
     fi;
     d_step { outside[me] = 1; s = NOBODY; ht = L_NONE; n = 0; within = 0 }
  :: break   /* the caller stops calling */
  od
}

/* ============================ the clock ============================ */
/* Time passes: any turn or reservation may end at any moment, and stays
 * ended (until a new lease or turn is written). */
active proctype clock() {
end_clock:
  do
  :: atomic { (lease[0] == L_PARKED_R || lease[0] == L_HELD_TURN) && !sover[0] -> sover[0] = 1 }
#if NS > 1
  :: atomic { (lease[1] == L_PARKED_R || lease[1] == L_HELD_TURN) && !sover[1] -> sover[1] = 1 }
#endif
  :: atomic { has_turn[0] && !tover[0] -> tover[0] = 1 }
  :: atomic { has_turn[1] && !tover[1] -> tover[1] = 1 }
#if NT > 2
  :: atomic { has_turn[2] && !tover[2] -> tover[2] = 1 }
#endif
  od
}

/* =========================== properties =========================== */

/* P1 exclusivity and P2 no slot lost: every slot is in exactly one
 * place, free (IDLE on the free stack), parked (lease PARKED, on the
 * fast list) or held by one thread; a slot in use is held by its user. */
#define ONE(x) ((onfree[x] + IS_PARKED(x) + (own[x] != NOBODY)) == 1 && \
                (!IS_PARKED(x) || onfast[x]) && \
                (!onfree[x] || lease[x] == L_NONE) && \
                (in_use[x] == NOBODY || own[x] == in_use[x]))
#if NS > 1
#define ACCOUNTED (ONE(0) && ONE(1) && nfree == onfree[0] + onfree[1] && \
                   nfast == onfast[0] + onfast[1])
#define ANY_PARKED (IS_PARKED(0) || IS_PARKED(1))
#else
#define ACCOUNTED (ONE(0) && nfree == onfree[0] && nfast == onfast[0])
#define ANY_PARKED (IS_PARKED(0))
#endif

/* Every thread is outside the pool, or blocked on its condvar. */
#define QT(t) (outside[t] || (sleeping[t] && !sig[t]))
#if NT > 2
#define QUIET (QT(0) && QT(1) && QT(2))
#else
#define QUIET (QT(0) && QT(1))
#endif

/* P3 no waiter asleep without a timer while a slot is free or parked:
 * once the calls under way have returned or gone to sleep, if the head
 * waiter sleeps with no timer armed, no slot is free and none parked.
 * P4 (stronger, also checked): nor is any slot free with a timer. */
#define P3 (!(QUIET && wqn > 0 && !polling[wq[0]]) || (nfree == 0 && !ANY_PARKED))
#define P4 (!(QUIET && wqn > 0) || nfree == 0)
/* P5 work conservation, src/check.c's: whenever the mutex is free, as
 * many waiters are woken as slots are free, or every waiter is. */
#define P5 (mu != NOBODY || nwoken >= (nfree < wqn -> nfree : wqn))

active proctype monitor() {
end_monitor:
  if
  :: atomic { !(ACCOUNTED) ->
       printf("violated: P1/P2 exclusivity or a slot lost\n"); assert(ACCOUNTED) }
  :: atomic { !(P3) ->
       printf("violated: P3 waiter asleep without a timer beside a free or parked slot\n"); assert(P3) }
  :: atomic { !(P4) ->
       printf("violated: P4 slot free while every waiter sleeps\n"); assert(P4) }
  :: atomic { !(nwaiters == wqn) ->
       printf("violated: nwaiters differs from the queue\n"); assert(nwaiters == wqn) }
  :: atomic { !(P5) ->
       printf("violated: P5 a free slot beside a waiter nobody woke for it\n"); assert(P5) }
  fi
}

init {
  atomic {
    byte k = 0;
    do
    :: k < NS -> onfree[k] = 1; own[k] = NOBODY; in_use[k] = NOBODY; k++
    :: else -> break
    od;
    nfree = NS;
    k = 0;
    do
    :: k < NT -> lp[k] = NOBODY; outside[k] = 1; k++
    :: else -> break
    od;
    k = 0;
    do
    :: k < NT -> run caller(k); k++
    :: else -> break
    od
  }
}
