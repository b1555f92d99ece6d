/*
 * A Promela model of the worker's watch (issue 11) against the lock-free
 * fast path: one slot, one caller that checks it out and in (on the fast
 * path once it has parked it, else under the lock; OK or broken), and
 * the slot's worker, which sees the peer close the socket at any moment
 * and hands itself the slot, or marks it while it is checked out.
 * Checked exhaustively by run_model.sh (ctest -L model); docs/model.md.
 *
 * The C it models (src/ at the commit that added it):
 *   worker.c  serve_phase / watch_socket (the poll, woken by the peer's
 *             close or by a hand-back's shutdown), peer_closed_locked
 *             (store the mark, then try to unpark: the lease CAS)
 *   checkout.c fast_take (CAS PARKED -> HELD), fast_fresh (the mark,
 *             relaxed), checkout_locked -> idle_slot_alive (the mark) ->
 *             hand_to_worker
 *   checkin.c  checkin (the mark, relaxed, before the fast path),
 *             fast_checkin (seq_cst store of PARKED, then seq_cst load of
 *             the mark: the Dekker pair with peer_closed_locked),
 *             checkin_locked (a marked slot goes back even if OK)
 *   slots.c   hand_to_worker (reason set under the lock; the shutdown
 *             wakes the poll, modelled as the poll returning once a
 *             reason is set)
 * Each access to lease or gone outside the lock is its own step; what
 * the lock guards is merged with the step that holds it.  Sequential
 * consistency (the relaxed loads are modelled as seq_cst; they are only
 * early exits, re-checked after).  A second thread reclaims the parked
 * slot under the lock (reclaimer, below).  Not modelled: other callers,
 * waiters, turns, close, pings (lease.pml has those).
 *
 * Properties:
 *   exclusivity: the worker never takes the slot while the caller holds
 *     it, and the caller never holds it while its worker does;
 *   no slot lost: the worker never waits for ever for a marked slot to
 *     come back (spin: no invalid end state), so a socket its peer closed
 *     is never left parked;
 *   the locked side never offers a slot it knows dead (IDLE => !gone).
 *
 * MUTANT (spin -DMUTANT): fast_checkin loads the mark BEFORE its store of
 * PARKED; the worker is then left waiting beside a parked dead slot.
 * MUTANT_WORKER (by hand: run_model.sh watch.pml -DMUTANT_WORKER fails):
 * the worker stores its mark after its look at the lease, the other half
 * of the same pair.
 * MUTANT_RECLAIM (by hand, fails): another thread reclaiming the parked
 * slot offers it without looking at the mark (a review found that in the
 * C: handoff.c's reclaim, fixed); the worker is left asleep beside a free
 * slot with a dead socket.
 */

#ifndef R
#define R 3 /* checkouts by the caller */
#endif
#ifndef MAXC
#define MAXC 2 /* peer closes or hand-backs the worker serves */
#endif

#define NONE 0
#define PARKED 1
#define HELD 2

#define CONN 0 /* the worker's (connecting) */
#define IDLE 1
#define BUSY 2

#define NOBODY 0
#define CALLER 1
#define WORKER 2

byte lease = NONE;
bit gone = 0;        /* the mark: s->peer_gone */
bit peerdown = 0;    /* the kernel has seen the peer's close */
byte state = IDLE;   /* [mu] */
byte reason = 0;     /* [mu] 0, or handed back */
byte holder = NOBODY;
bit mu = 0;

inline lock() { atomic { mu == 0 -> mu = 1 } }
inline unlock() { mu = 0 }

/* slots.c: the worker takes it back (with the lock held). */
inline hand_to_worker() {
  assert(holder == NOBODY);
  reason = 1;
  state = CONN
}

proctype caller() {
  byte i = 0;
  bit mine = 0; /* this thread parked the slot last (cpool__my_parked) */
  bit took;
  bit g;

  do
  :: i < R ->
    i++;
    took = 0;
    /* checkout */
    if
    :: mine ->
      atomic { /* fast_take's CAS */
        if
        :: lease == PARKED -> lease = HELD; took = 1
        :: else -> skip
        fi
      }
    :: else -> skip
    fi;
    if
    :: took && !gone -> /* fast_fresh */
      atomic { assert(holder == NOBODY); holder = CALLER }
    :: took && gone -> /* checkout_locked: lease_drop, idle_slot_alive */
      lock();
      lease = NONE;
      hand_to_worker();
      unlock();
      took = 0
    :: !took ->
      lock();
      if
      :: state == IDLE ->
        assert(!gone);
        state = BUSY; took = 1;
        assert(holder == NOBODY); holder = CALLER
      :: state == BUSY && lease == PARKED -> /* reclaim_one, forced */
        lease = NONE;
        if
        :: gone -> hand_to_worker()
        :: else -> took = 1; assert(holder == NOBODY); holder = CALLER
        fi
      :: else -> skip /* none free: a nowait caller goes away */
      fi;
      unlock()
    fi;
    if
    :: !took -> mine = 0
    :: took ->
      assert(state == BUSY && holder == CALLER);
      /* checkin: OK or broken */
      if
      :: lock(); /* broken */
        if
        :: lease == HELD -> lease = NONE
        :: else -> skip
        fi;
        holder = NOBODY;
        hand_to_worker();
        unlock();
        mine = 0
      :: lease == HELD && !gone -> /* fast_checkin */
        holder = NOBODY;
#ifdef MUTANT
        g = gone;
        lease = PARKED;
#else
        lease = PARKED;
        g = gone;
#endif
        mine = 1;
        if
        :: g ->
          lock();
          if
          :: lease == PARKED -> lease = NONE; hand_to_worker()
          :: else -> skip /* taken since: its checkin sees the mark */
          fi;
          unlock()
        :: else -> skip
        fi
      :: lease != HELD || gone -> /* cpool_checkin's locked path */
        lock();
        if
        :: lease == HELD -> lease = NONE
        :: else -> skip
        fi;
        holder = NOBODY;
        if
        :: gone -> hand_to_worker(); mine = 0
        :: else -> lease = PARKED; mine = 1 /* offer: nobody waits */
        fi;
        unlock()
      fi
    fi
  :: i == R -> break
  od
}

proctype worker() {
  byte closes = 0;

end_idle:
  do
  :: closes < MAXC ->
    /* watch_socket: poll returns on the peer's close, or once a
     * hand-back shut the socket for reading */
    if
    :: !peerdown -> peerdown = 1
    :: reason != 0 -> skip
    fi;
    lock();
    if
    :: reason != 0 -> skip
    :: else -> /* peer_closed_locked */
#ifndef MUTANT_WORKER
      gone = 1;
#endif
      if
      :: state == IDLE -> hand_to_worker()
      :: else ->
        atomic { /* unpark's CAS */
          if
          :: lease == PARKED -> lease = NONE; hand_to_worker()
          :: else -> skip
          fi
        }
      fi;
#ifdef MUTANT_WORKER
      gone = 1;
#endif
      if
      :: reason == 0 -> /* checked out: wait for its checkin */
        unlock();
        atomic { reason != 0 && mu == 0 -> mu = 1 }
      :: else -> skip
      fi
    fi;
    /* the slot is the worker's: close, reconnect, offer it */
    assert(holder == NOBODY && state == CONN && lease == NONE);
    holder = WORKER;
    closes++;
    reason = 0;
    gone = 0;
    peerdown = 0;
    holder = NOBODY;
    state = IDLE;
    unlock()
  :: closes == MAXC -> break
  od
}

/* Another thread, under the lock, takes a parked slot back (a waiter's
 * wait_join -> reclaim_all, or take_or_wait -> reclaim_one: handoff.c,
 * reclaim), twice at most: a slot its worker marked goes back to the
 * worker, not onto the free stack. */
proctype reclaimer() {
  byte k = 0;
  bit took;

  do
  :: k < 2 ->
    k++;
    lock();
    atomic { /* unpark's CAS */
      if
      :: lease == PARKED -> lease = NONE; took = 1
      :: else -> took = 0
      fi
    }
    if
    :: took ->
#ifdef MUTANT_RECLAIM
      state = IDLE
#else
      if
      :: gone -> hand_to_worker()
      :: else -> state = IDLE
      fi
#endif
    :: else -> skip
    fi;
    unlock()
  :: k == 2 -> break
  od
}

init {
  atomic { run caller(); run worker(); run reclaimer() }
}
