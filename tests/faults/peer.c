/* The misbehaving peer; see peer.h. */
#include "peer.h"
#include "fault.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#define MAX_CONNS 64

typedef enum cmd {
  CMD_NONE,
  CMD_MODE,
  CMD_REFUSE,
  CMD_RESUME,
  CMD_DROP,
  CMD_SEND,
  CMD_STOP
} cmd;

struct fp_peer {
  pthread_t thread;
  int wake_fd;
  char netns[32];
  char ip[16];
  int port;

  /* Owned by the loop thread. */
  int lfd;
  int conns[MAX_CONNS];
  int nconns;
  fp_mode mode;

  /* Shared, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int started; /* 1 ok, -1 failed */
  cmd cmd;
  int arg;
  const char *text;
  int result;
  int done;
  fp_counts counts;
};

/* ---- sockets (loop thread) ---------------------------------------------- */

static int listen_on(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};

  if (fd < 0)
    return -1;
  inet_pton(AF_INET, ip, &a.sin_addr);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Bind the requested port, or a free one outside the ephemeral range. */
static int open_listener(fp_peer *p) {
  if (p->port != 0)
    return p->lfd = listen_on(p->ip, p->port);
  for (int tries = 0; tries < 200; tries++) {
    int port = tu_random_port(); /* reads ip_local_port_range */
    if (port <= 0)
      return -1;
    p->lfd = listen_on(p->ip, port);
    if (p->lfd >= 0) {
      p->port = port;
      return p->lfd;
    }
  }
  return -1;
}

static void close_conn(fp_peer *p, int i, int rst) {
  if (rst) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(p->conns[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(p->conns[i]);
  p->conns[i] = p->conns[--p->nconns];
  pthread_mutex_lock(&p->mu);
  p->counts.open = p->nconns;
  pthread_mutex_unlock(&p->mu);
}

static void accept_all(fp_peer *p) {
  for (;;) {
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      return;
    if (p->nconns == MAX_CONNS) {
      close(fd);
      continue;
    }
    p->conns[p->nconns++] = fd;
    pthread_mutex_lock(&p->mu);
    p->counts.accepted++;
    p->counts.open = p->nconns;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
  }
}

/* Answer one request line by the mode; 0 keeps the connection, else it was
 * closed. */
static int answer(fp_peer *p, int i) {
  int fd = p->conns[i];
  switch (p->mode) {
  case FP_PONG:
    return send(fd, "+PONG\r\n", 7, MSG_NOSIGNAL) == 7 ? 0 : -1;
  case FP_RESET_HALF:
    send(fd, "+PO", 3, MSG_NOSIGNAL);
    close_conn(p, i, 1);
    return 1;
  case FP_STALL:
  default:
    return 0;
  }
}

/* Read what the client sent; answer each line.  Returns 1 if connection i
 * was closed (so i now holds another one). */
static int serve(fp_peer *p, int i) {
  char buf[512];
  ssize_t n = recv(p->conns[i], buf, sizeof buf, 0);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n <= 0) {
    close_conn(p, i, 0);
    pthread_mutex_lock(&p->mu);
    p->counts.peer_closed++;
    pthread_mutex_unlock(&p->mu);
    return 1;
  }
  for (ssize_t k = 0; k < n; k++) {
    if (buf[k] != '\n')
      continue;
    pthread_mutex_lock(&p->mu);
    p->counts.lines++;
    pthread_mutex_unlock(&p->mu);
    int rc = answer(p, i);
    if (rc > 0)
      return 1;
    if (rc < 0) {
      close_conn(p, i, 0);
      return 1;
    }
  }
  return 0;
}

/* Wait (bounded) until every byte written to fd was acknowledged. */
static void wait_acked(int fd) {
  int64_t deadline = tu_now_ms() + 1000;
  int outq = 1;
  while (ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0 && tu_now_ms() < deadline)
    tu_sleep_ms(1);
}

static int run_cmd(fp_peer *p, cmd c, int arg, const char *text) {
  switch (c) {
  case CMD_MODE:
    p->mode = (fp_mode)arg;
    return 0;
  case CMD_REFUSE:
    if (p->lfd >= 0)
      close(p->lfd);
    p->lfd = -1;
    return 0;
  case CMD_RESUME:
    if (p->lfd < 0)
      p->lfd = listen_on(p->ip, p->port);
    return p->lfd >= 0 ? 0 : -1;
  case CMD_DROP: {
    int n = p->nconns;
    while (p->nconns > 0)
      close_conn(p, p->nconns - 1, arg);
    return n;
  }
  case CMD_SEND: {
    int n = 0;
    for (int i = 0; i < p->nconns; i++)
      if (send(p->conns[i], text, strlen(text), MSG_NOSIGNAL) > 0)
        n++;
    for (int i = 0; i < p->nconns; i++)
      wait_acked(p->conns[i]);
    return n;
  }
  default:
    return 0;
  }
}

static int join_netns(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/var/run/netns/%s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = setns(fd, CLONE_NEWNET);
  close(fd);
  return rc;
}

static void *loop(void *arg) {
  fp_peer *p = arg;
  int ok = (p->netns[0] == '\0' || join_netns(p->netns) == 0) &&
           open_listener(p) >= 0;

  pthread_mutex_lock(&p->mu);
  p->started = ok ? 1 : -1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  if (!ok)
    return NULL;

  for (int running = 1; running;) {
    struct pollfd pfd[MAX_CONNS + 2];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN}; /* -1 ok */
    for (int i = 0; i < p->nconns; i++)
      pfd[n++] = (struct pollfd){.fd = p->conns[i], .events = POLLIN};
    if (poll(pfd, (nfds_t)n, -1) < 0)
      continue;

    if (pfd[0].revents) {
      uint64_t v;
      if (read(p->wake_fd, &v, sizeof v) < 0)
        v = 0;
      pthread_mutex_lock(&p->mu);
      cmd c = p->cmd;
      int a = p->arg;
      const char *text = p->text;
      pthread_mutex_unlock(&p->mu);
      if (c == CMD_STOP) {
        running = 0;
      } else if (c != CMD_NONE) {
        int r = run_cmd(p, c, a, text);
        pthread_mutex_lock(&p->mu);
        p->result = r;
        p->cmd = CMD_NONE;
        p->done = 1;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
      }
      continue; /* the connection list may have changed */
    }
    if (pfd[1].revents && p->lfd >= 0)
      accept_all(p);
    /* Walk from the end: serve() may move the last connection into i. */
    for (int k = n - 1; k >= 2; k--)
      if (pfd[k].revents && k - 2 < p->nconns && p->conns[k - 2] == pfd[k].fd)
        serve(p, k - 2);
  }

  while (p->nconns > 0)
    close_conn(p, p->nconns - 1, 0);
  if (p->lfd >= 0)
    close(p->lfd);
  p->lfd = -1;
  pthread_mutex_lock(&p->mu);
  p->done = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ---- control (any thread) --------------------------------------------- */

static int post(fp_peer *p, cmd c, int arg, const char *text) {
  uint64_t one = 1;

  pthread_mutex_lock(&p->mu);
  p->cmd = c;
  p->arg = arg;
  p->text = text;
  p->done = 0;
  if (write(p->wake_fd, &one, sizeof one) < 0)
    p->done = 1, p->result = -1;
  while (!p->done)
    pthread_cond_wait(&p->cond, &p->mu);
  int r = p->result;
  pthread_mutex_unlock(&p->mu);
  return r;
}

fp_peer *fp_start(const char *netns, const char *ip, int port) {
  fp_peer *p = calloc(1, sizeof *p);

  if (p == NULL)
    return NULL;
  p->lfd = -1;
  p->port = port;
  strlcpy(p->ip, ip != NULL ? ip : "127.0.0.1", sizeof p->ip);
  if (netns != NULL)
    strlcpy(p->netns, netns, sizeof p->netns);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd < 0 || pthread_create(&p->thread, NULL, loop, p) != 0) {
    printf("fp_start: %s\n", strerror(errno));
    if (p->wake_fd >= 0)
      close(p->wake_fd);
    free(p);
    return NULL;
  }
  pthread_mutex_lock(&p->mu);
  while (p->started == 0)
    pthread_cond_wait(&p->cond, &p->mu);
  int ok = p->started > 0;
  pthread_mutex_unlock(&p->mu);
  if (!ok) {
    printf("fp_start: cannot listen on %s:%d%s%s\n", p->ip, port,
           netns ? " in netns " : "", netns ? netns : "");
    pthread_join(p->thread, NULL);
    close(p->wake_fd);
    free(p);
    return NULL;
  }
  return p;
}

void fp_stop(fp_peer *p) {
  if (p == NULL)
    return;
  uint64_t one = 1;
  pthread_mutex_lock(&p->mu);
  p->cmd = CMD_STOP;
  pthread_mutex_unlock(&p->mu);
  if (write(p->wake_fd, &one, sizeof one) < 0)
    perror("fp_stop: write");
  pthread_join(p->thread, NULL);
  close(p->wake_fd);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int fp_port(const fp_peer *p) {
  return p->port;
}
int fp_set_mode(fp_peer *p, fp_mode mode) {
  return post(p, CMD_MODE, (int)mode, NULL);
}
int fp_refuse(fp_peer *p) {
  return post(p, CMD_REFUSE, 0, NULL);
}
int fp_resume(fp_peer *p) {
  return post(p, CMD_RESUME, 0, NULL);
}
int fp_drop_all(fp_peer *p, int rst) {
  return post(p, CMD_DROP, rst, NULL);
}
int fp_send_all(fp_peer *p, const char *text) {
  return post(p, CMD_SEND, 0, text);
}

fp_counts fp_get_counts(fp_peer *p) {
  pthread_mutex_lock(&p->mu);
  fp_counts c = p->counts;
  pthread_mutex_unlock(&p->mu);
  return c;
}

int fp_wait_open(fp_peer *p, int n, int timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  int ok;
  pthread_mutex_lock(&p->mu);
  while (!(ok = p->counts.open >= n)) {
    int64_t left = deadline - tu_now_ms();
    if (left <= 0)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&p->cond, &p->mu, &ts);
  }
  pthread_mutex_unlock(&p->mu);
  return ok;
}
