/*
 * echo_server: a tiny loopback echo server for echo_client and the example
 * tests.  One thread, poll(), every byte sent back.
 *
 *   echo_server [PORT [PORT_FILE]]
 *
 * Listens on 127.0.0.1:PORT (0 or none: a free port), writes the port it got
 * to PORT_FILE (if given) once it is listening, and runs until SIGINT or
 * SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_FDS = 1024 };

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* Echoes what fd has to say; returns -1 once it is done (EOF or error). */
static int echo_some(int fd) {
  char buf[16384];
  ssize_t got = read(fd, buf, sizeof buf);

  if (got < 0 && errno == EINTR)
    return 0;
  for (ssize_t off = 0; got > 0 && off < got;) {
    ssize_t n = send(fd, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
    if (n < 0 && errno != EINTR)
      return -1;
    off += n > 0 ? n : 0;
  }
  return got > 0 ? 0 : -1;
}

static void serve(int listen_fd) {
  static struct pollfd fds[MAX_FDS];
  nfds_t n = 1;

  fds[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
  while (!stop) {
    /* A bounded wait: a signal landing just before poll() is seen soon. */
    if (poll(fds, n, 200) <= 0)
      continue;
    if ((fds[0].revents & POLLIN) && n < MAX_FDS) {
      int fd = accept(listen_fd, NULL, NULL);
      if (fd >= 0)
        fds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    for (nfds_t i = 1; i < n; i++) {
      if (fds[i].revents == 0 || echo_some(fds[i].fd) == 0)
        continue;
      close(fds[i].fd);
      fds[i--] = fds[--n];
    }
  }
  for (nfds_t i = 1; i < n; i++)
    close(fds[i].fd);
}

int main(int argc, char **argv) {
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
  int port = argc > 1 ? atoi(argv[1]) : 0, fd;

  if (argc > 3 || port < 0 || port > 65535) {
    fprintf(stderr, "usage: echo_server [PORT [PORT_FILE]]\n");
    return 2;
  }
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  fd = listen_loopback(port, &port);
  if (fd < 0)
    return 1;
  if (argc > 2 && write_port_file(argv[2], port) != 0) {
    perror("echo_server: port file");
    close(fd);
    return 1;
  }
  printf("echo_server: listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  serve(fd);
  close(fd);
  return 0;
}
