/* util: see util.h. */
#define _POSIX_C_SOURCE 200809L

#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int int_arg(const char *name, const char *s, int min, int max) {
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) {
    fprintf(stderr, "--%s must be %d..%d, not '%s'\n", name, min, max, s);
    exit(2);
  }
  return (int)v;
}

int listen_loopback(int port, int *bound) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((unsigned short)port);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 128) ||
      getsockname(fd, (struct sockaddr *)&sa, &len)) {
    perror("listen on 127.0.0.1");
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *bound = ntohs(sa.sin_port);
  return fd;
}

int write_port_file(const char *path, int port) {
  char tmp[4096];
  FILE *f;

  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return -1;
  f = fopen(tmp, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, path);
}
