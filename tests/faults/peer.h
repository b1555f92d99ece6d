/*
 * A misbehaving peer for the fault suites: a TCP server on one thread that
 * answers each line with "+PONG\r\n" (like Redis PING), and on command
 * resets mid-reply, stalls, sends unsolicited bytes, drops its connections
 * with a FIN or a reset, or stops listening.  It can run inside a network
 * namespace (its thread joins it before it binds).
 *
 * The loop thread owns every descriptor.  Each control call posts one
 * command and waits until the loop has run it, so when it returns the peer
 * is in the new state.
 */
#ifndef CPOOL_FAULT_PEER_H
#define CPOOL_FAULT_PEER_H

#include <stdint.h>

typedef enum fp_mode {
  FP_PONG = 0,       /* "+PONG\r\n" for each line */
  FP_RESET_HALF = 1, /* "+PO", then a reset (SO_LINGER 0) */
  FP_STALL = 2       /* read the request, never answer */
} fp_mode;

typedef struct fp_peer fp_peer;

typedef struct fp_counts {
  uint64_t accepted;    /* since start */
  int open;             /* connections open now */
  uint64_t lines;       /* requests read */
  uint64_t peer_closed; /* connections the client closed */
} fp_counts;

/* Start on ip:port (port 0: a free one outside the ephemeral range), in
 * network namespace netns (NULL: the caller's).  NULL on failure, with the
 * reason on stdout. */
fp_peer *fp_start(const char *netns, const char *ip, int port);
void fp_stop(fp_peer *p); /* closes everything; NULL is a no-op */
int fp_port(const fp_peer *p);

/* Each returns 0 once done, or -1. */
int fp_set_mode(fp_peer *p, fp_mode mode);
int fp_refuse(fp_peer *p); /* close the listener: connects are refused */
int fp_resume(fp_peer *p); /* listen again on the same port */
/* Close every accepted connection (rst: with a reset); returns how many. */
int fp_drop_all(fp_peer *p, int rst);
/* Write text to every open connection and wait until the clients' kernels
 * have acknowledged it; returns how many connections got it. */
int fp_send_all(fp_peer *p, const char *text);

fp_counts fp_get_counts(fp_peer *p);
/* Wait until at least n connections are open; 1 if so. */
int fp_wait_open(fp_peer *p, int n, int timeout_ms);

#endif
