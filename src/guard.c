/*
 * The guard: bounds the user's on_connect and on_ping in time without
 * touching the socket's options.  A callback's slot arms the guard with
 * its socket and a deadline; if the callback has not returned by then,
 * the guard's thread shuts the socket down (shutdown(SHUT_RDWR)), so that
 * whatever I/O the callback is blocked in (recv, send, poll, SSL_read)
 * returns at once, and the callback counts as failed even if it then
 * returns 0.  SO_RCVTIMEO / SO_SNDTIMEO stay the user's: no value the
 * callback sets can be mistaken for cpool's (there is none).
 *
 * One thread per pool, started by cpool_open when on_connect or on_ping
 * is set, stopped after the workers are joined.  Entries live on the
 * arming worker's stack; the guard touches one only under its mutex and
 * only while it is on the list, and disarm takes it off the list.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#define GUARD_STACK (64 * 1024)

/* Shut down every entry past its deadline; returns the earliest deadline
 * left (us), or -1 if none.  With g->mu held. */
static int64_t fire_due(cpool__guard *g, int64_t now_us) {
  int64_t next = -1;
  cpool__guard_entry **pp = &g->head;

  while (*pp != NULL) {
    cpool__guard_entry *e = *pp;
    if (e->deadline_us <= now_us) {
      shutdown(e->fd, SHUT_RDWR);
      e->fired = 1;
      *pp = e->next;
      continue;
    }
    if (next < 0 || e->deadline_us < next)
      next = e->deadline_us;
    pp = &e->next;
  }
  return next;
}

static void *guard_main(void *arg) {
  cpool__guard *g = arg;

  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    int64_t next = fire_due(g, cpool__now_us());
    cpool__timed_wait(&g->cv, &g->mu, next);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

void cpool__guard_init(cpool__guard *g, const pthread_condattr_t *attr) {
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, attr);
}

int cpool__guard_start(cpool__guard *g, cpool_error_info *err) {
  pthread_attr_t attr;
  sigset_t all, old;

  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, GUARD_STACK);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&g->thread, &attr, guard_main, g);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    cpool__error_set(err, CPOOL_ESYS, CPOOL_STEP_NONE, e, NULL,
                     "pthread_create (the callbacks' guard): %s", strerror(e));
    return CPOOL_ESYS;
  }
  g->started = 1;
  return 0;
}

void cpool__guard_stop(cpool__guard *g) {
  if (!g->started)
    return;
  pthread_mutex_lock(&g->mu);
  g->stop = 1;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->thread, NULL);
  g->started = 0;
}

void cpool__guard_destroy(cpool__guard *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

void cpool__guard_arm(cpool__guard *g, cpool__guard_entry *e, int fd,
                      int timeout_ms) {
  e->fd = fd;
  e->deadline_us = cpool__now_us() + (int64_t)timeout_ms * 1000;
  e->fired = 0;
  pthread_mutex_lock(&g->mu);
  e->next = g->head;
  g->head = e;
  pthread_cond_signal(&g->cv); /* it may sleep past our deadline */
  pthread_mutex_unlock(&g->mu);
}

int cpool__guard_disarm(cpool__guard *g, cpool__guard_entry *e) {
  pthread_mutex_lock(&g->mu);
  for (cpool__guard_entry **pp = &g->head; *pp != NULL; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  int fired = e->fired;
  pthread_mutex_unlock(&g->mu);
  return fired;
}
