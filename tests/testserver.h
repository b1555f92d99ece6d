/*
 * An in-process test server on real sockets, driven by the tests at run
 * time: it echoes (or answers "PING" lines with "+PONG"), and on command
 * refuses connections, listens again on the same port, drops every accepted
 * connection, stalls, resets mid-reply, sends bytes nobody asked for, or
 * blackholes connects.  It listens on loopback, or on a given address and
 * port inside a network namespace (its thread joins the namespace before
 * it binds), for both test programs (cpool-tests and cpool-fault-tests).
 *
 * One thread runs a poll() loop and owns every descriptor; the control
 * functions below hand it a command and wait until it is done, so when one
 * returns the server is in the new state.  Counters are kept under a mutex
 * with a condition variable, so tests wait for "N connections open" with a
 * deadline instead of sleeping.
 *
 * Ports are picked outside the kernel's ephemeral range: a client connecting
 * to a closed port in that range can, rarely, be given the same local port
 * and connect to itself, which would then block ts_resume().
 */
#ifndef CPOOL_TESTSERVER_H
#define CPOOL_TESTSERVER_H

#include <stdint.h>

typedef enum ts_mode {
  TS_ECHO = 0,   /* write back every byte read */
  TS_PING = 1,   /* answer each line with "+PONG\r\n", like Redis PING */
  TS_STALL = 2,  /* accept, never read, never answer */
  TS_HANGUP = 3, /* accept and close at once (a server at its client limit) */
  TS_SILENT = 4, /* read every request, never answer */
  TS_RESET_HALF = 5 /* answer a line with "+PO", then reset (SO_LINGER 0) */
} ts_mode;

/* Which listeners to open (or'ed); TS_TCP4 is always opened. */
enum { TS_TCP4 = 1, TS_TCP6 = 2, TS_UNIX = 4 };

typedef struct ts_server ts_server;

typedef struct ts_counts {
  uint64_t accepted;    /* connections accepted since start */
  int open;             /* accepted and not yet closed by the server */
  uint64_t peer_closed; /* closed after EOF or an error from the peer */
  uint64_t dropped;     /* closed by the server: ts_drop(), TS_HANGUP,
                           TS_RESET_HALF */
  uint64_t bytes_in;    /* bytes read from clients */
  uint64_t lines;       /* request lines read ('\n's), in every mode that
                           reads */
} ts_counts;

typedef struct ts_options {
  ts_mode mode;
  int listeners;     /* TS_TCP4 | TS_TCP6 | TS_UNIX; 0 is TS_TCP4 */
  const char *ip;    /* the TCP4 listener's IPv4 address; NULL: 127.0.0.1 */
  int port;          /* its port; 0: a free one outside the ephemeral range */
  const char *netns; /* a named namespace (/var/run/netns/NAME) the server's
                        thread joins before it binds; NULL: the caller's */
} ts_options;

/* Start a server; NULL (with the reason on stderr) on failure.  A TS_TCP6
 * listener that cannot be opened (no IPv6) is left out: ts_port6() is 0. */
ts_server *ts_start_opts(const ts_options *opts);
/* ts_start_opts on 127.0.0.1, a free port, the caller's namespace. */
ts_server *ts_start(ts_mode mode, int listeners);

/* Stop the thread, close every descriptor, remove the socket file, free.
 * NULL is a no-op. */
void ts_stop(ts_server *s);

int ts_port(const ts_server *s);              /* the TCP4 listener's port */
int ts_port6(const ts_server *s);             /* ::1 port, 0 if none */
const char *ts_unix_path(const ts_server *s); /* NULL if none */

/* Each returns 0 when done, -1 (reason on stderr) on failure. */
int ts_set_mode(ts_server *s, ts_mode mode);
/* Close the listeners: connects get ECONNREFUSED (ENOENT for the Unix
 * socket, whose file is removed).  Accepted connections stay open. */
int ts_refuse(ts_server *s);
/* Listen again on the same ports and path; also ends a blackhole. */
int ts_resume(ts_server *s);
/* Close every accepted connection now; with rst, send a reset (SO_LINGER
 * 0) instead of a FIN.  Returns how many were closed. */
int ts_drop(ts_server *s, int rst);
/* Send a few bytes nobody asked for on every accepted connection: a fault
 * the slot's worker cannot see (it does not poll for input) and only the
 * idle check's peek finds.  Returns how many were sent to. */
int ts_poke(ts_server *s);
/* Write text to every accepted connection and wait (up to 1 s each) until
 * the clients' kernels have acknowledged it, so that it has arrived when
 * this returns.  Returns how many connections were sent to. */
int ts_send_all(ts_server *s, const char *text);
/* Replace the TCP4 listener by one whose accept queue is full and that
 * never accepts, so connects to the port hang (SYNs are dropped).  Checks
 * that a connect really hangs; -1 if it could not make one hang. */
int ts_blackhole(ts_server *s);

ts_counts ts_get_counts(ts_server *s);

/* Wait until the condition holds or timeout_ms passes; 1 if it holds. */
int ts_wait_open(ts_server *s, int n, int timeout_ms);          /* open == n */
int ts_wait_open_at_least(ts_server *s, int n, int timeout_ms); /* open >= n */
int ts_wait_accepted(ts_server *s, uint64_t n, int timeout_ms); /* >= n */

#endif
