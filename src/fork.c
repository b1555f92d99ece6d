/*
 * fork(): a child must never use a pool its parent opened.  The child has
 * a copy of the pool's memory and descriptors but none of its worker
 * threads, its lock may have been held by a parent thread at the fork
 * (and stays locked in the child for ever), and its sockets are the
 * parent's connections: a reply read by one process is lost to the other.
 *
 * So every pool is listed here from its open to its close, and a
 * pthread_atfork child handler, at the fork's instant and before the
 * child's own code runs, marks each listed pool forked and closes the
 * child's copies of its descriptors.  Closing a copy sends nothing to the
 * peer (the parent's descriptor keeps the connection open), never calls a
 * user callback, and means the child does not keep the parent's
 * connections alive after the parent closes them; never shutdown(), which
 * would cut the parent's connection.  From then on every call on such a
 * pool in the child returns CPOOL_EFORKED, and cpool_close frees the
 * child's copy of the memory without touching the lock, the condition
 * variables or the threads (pool.c).
 *
 * The check costs one relaxed load of p->forked, on the line the fast path
 * reads anyway: no system call, no shared write.
 */
#include "internal.h"

#include <unistd.h>

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_err; /* pthread_atfork's result, set once */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cpool *reg_head; /* [reg_mu] pools open in this process */

/* The list stays whole across the fork: the forking thread holds reg_mu
 * from before the fork until after it, in both processes. */
static void before_fork(void) {
  pthread_mutex_lock(&reg_mu);
}
static void after_fork_parent(void) {
  pthread_mutex_unlock(&reg_mu);
}

/* The child's copy of a slot's descriptor.  A worker sets s->fd to -1
 * before it closes a socket (worker.c), so a number here was open at the
 * fork, and is the parent's socket. */
static void forget_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* In the child, single-threaded: nothing else runs, and reg_mu is ours.
 * The parent's pools are not the child's: the list starts empty, so a
 * pool the child opens later is the only one a grandchild sees. */
static void after_fork_child(void) {
  struct cpool *next;
  for (struct cpool *p = reg_head; p != NULL; p = next) {
    next = p->reg_next;
    atomic_store_explicit(&p->forked, 1, memory_order_relaxed);
    for (int i = 0; i < p->size; i++)
      forget_fd(&p->slots[i].fd);
    forget_fd(&p->wake_fd);
    p->reg_prev = p->reg_next = NULL;
    p->registered = 0;
  }
  reg_head = NULL;
  pthread_mutex_init(&reg_mu, NULL);
}

static void atfork_register(void) {
  atfork_err = pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

int cpool__fork_register(struct cpool *p) {
  pthread_once(&atfork_once, atfork_register);
  if (atfork_err != 0)
    return atfork_err;
  pthread_mutex_lock(&reg_mu);
  p->reg_prev = NULL;
  p->reg_next = reg_head;
  if (reg_head != NULL)
    reg_head->reg_prev = p;
  reg_head = p;
  p->registered = 1;
  pthread_mutex_unlock(&reg_mu);
  return 0;
}

void cpool__fork_unregister(struct cpool *p) {
  if (!p->registered)
    return;
  pthread_mutex_lock(&reg_mu);
  if (p->reg_prev != NULL)
    p->reg_prev->reg_next = p->reg_next;
  else
    reg_head = p->reg_next;
  if (p->reg_next != NULL)
    p->reg_next->reg_prev = p->reg_prev;
  p->registered = 0;
  pthread_mutex_unlock(&reg_mu);
}
