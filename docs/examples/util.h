/*
 * util: small helpers the example programs share, so that each example
 * shows its use of cpool and not the plumbing around it.
 */
#ifndef CPOOL_EXAMPLE_UTIL_H
#define CPOOL_EXAMPLE_UTIL_H

/* The integer value of option --name: exits with status 2 and a message
 * naming the option unless s is a number in [min, max]. */
int int_arg(const char *name, const char *s, int min, int max);

/* A listening TCP socket on 127.0.0.1:port (0: a free port); *bound gets
 * the port.  Returns the fd, or -1 with the reason printed. */
int listen_loopback(int port, int *bound);

/* Writes "port\n" to path under a temporary name and renames it, so that a
 * reader waiting for the file never sees half a number.  0 or -1. */
int write_port_file(const char *path, int port);

#endif
