/* Helpers for the fault suites; see fault.h. */
#include "fault.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

extern char **environ;

/* ---- skips and figures --------------------------------------------------- */

static int skips;

/* "\nTAG: text" on stdout, at once (the runner's stdout is line-buffered,
 * and CUnit's own lines go there). */
static void say(const char *tag, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void say(const char *tag, const char *fmt, va_list ap) {
  char text[512];

  vsnprintf(text, sizeof text, fmt, ap);
  printf("\n%s: %s\n", tag, text);
  fflush(stdout);
}

void fh_skip(const char *fmt, ...) {
  char tag[160];
  va_list ap;

  skips++;
  snprintf(tag, sizeof tag, "SKIPPED: %s", tu_current_test());
  va_start(ap, fmt);
  say(tag, fmt, ap);
  va_end(ap);
}

int fh_skipped(void) {
  return skips;
}

void fh_figure(const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  say("FIGURE", fmt, ap);
  va_end(ap);
}

/* ---- the pool
 * ------------------------------------------------------------------ */

void fh_config(cpool_config *cfg, const char *host, int port, int size) {
  tu_config(cfg, port, size); /* connect timeout 500 ms */
  cfg->host = host;
  cfg->backoff_type = CPOOL_BACKOFF_RAND;
  cfg->backoff_min_ms = 50;
  cfg->backoff_max_ms = 50;
}

static void close_timed(cpool_t *pool, const char *what) {
  int64_t t0 = tu_now_ms();
  int rc = cpool_close(pool, 1000);
  int64_t took = tu_now_ms() - t0;
  TU_CHECK(rc == 0, "%s: cpool_close returned %s", what, cpool_err_name(rc));
  TU_CHECK(took < 1000, "%s: cpool_close took %lld ms", what, (long long)took);
}

void fh_end_pool(cpool_t *pool, const char *what) {
  cpool_stats_t st;

  if (pool == NULL)
    return;
  TU_WAIT_STATS(pool, st, st.idle == st.size, 5000);
  TU_CHECK(st.idle == st.size,
           "%s: slots not all idle after 5 s: idle %d connecting %d busy %d "
           "backoff %d checking %d of %d",
           what, st.idle, st.connecting, st.busy, st.backoff, st.checking,
           st.size);
  close_timed(pool, what);
}

void fh_close_pool(cpool_t *pool, const char *what) {
  if (pool != NULL)
    close_timed(pool, what);
}

void fh_check_fds(int fds0, const char *what) {
  int n = -1;
  TU_WAIT((n = tu_count_fds()) == fds0, 2000);
  TU_CHECK(n == fds0, "%s: %d descriptors open, %d at the start", what, n,
           fds0);
}

/* ---- processes
 * ------------------------------------------------------------------ */

/* Split cmd (modified) on spaces into argv; returns argc. */
static int split_args(char *cmd, char **argv, int max) {
  int argc = 0;
  for (char *save = NULL, *t = strtok_r(cmd, " ", &save);
       t != NULL && argc < max - 1; t = strtok_r(NULL, " ", &save))
    argv[argc++] = t;
  argv[argc] = NULL;
  return argc;
}

static int verbose(void) {
  return getenv("FAULT_VERBOSE") != NULL;
}

/* Spawn argv with stdin and stdout on /dev/null, stderr to err_fd (or
 * /dev/null when -1); returns the pid or -1. */
static pid_t spawn(char **argv, int err_fd) {
  posix_spawn_file_actions_t fa;
  pid_t pid;

  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!verbose())
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (err_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  else if (!verbose())
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

static int reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_v(char *err, size_t errlen, const char *fmt, va_list ap) {
  char cmd[512];
  char *argv[32];
  int pfd[2] = {-1, -1};

  vsnprintf(cmd, sizeof cmd, fmt, ap);
  if (verbose())
    printf("  + %s\n", cmd);
  split_args(cmd, argv, 32);
  if (err != NULL) {
    err[0] = '\0';
    if (pipe2(pfd, O_CLOEXEC) != 0)
      return -1;
  }
  pid_t pid = spawn(argv, pfd[1]);
  if (pfd[1] >= 0)
    close(pfd[1]);
  if (err != NULL && pid > 0) {
    size_t used = 0;
    for (ssize_t r; (r = read(pfd[0], err + used, errlen - 1 - used)) > 0 &&
                    used + (size_t)r < errlen - 1;)
      used += (size_t)r;
    err[used] = '\0';
    err[strcspn(err, "\n")] = '\0';
  }
  if (pfd[0] >= 0)
    close(pfd[0]);
  return pid < 0 ? -1 : reap(pid);
}

int fh_run(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = run_v(NULL, 0, fmt, ap);
  va_end(ap);
  return rc;
}

int fh_run_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = run_v(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- network namespaces
 * ------------------------------------------------------------ */

#define NETNS_DIR "/var/run/netns"

/* Namespaces "cpf<pid>a|b" whose process is gone: left by a run that was
 * killed (a CTest timeout) before it could clean up. */
static void remove_stale_netns(void) {
  DIR *d = opendir(NETNS_DIR);
  if (d == NULL)
    return;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    char *end;
    if (strncmp(e->d_name, "cpf", 3) != 0)
      continue;
    long pid = strtol(e->d_name + 3, &end, 10);
    if (pid <= 0 || end == e->d_name + 3 || (end[0] != 'a' && end[0] != 'b') ||
        end[1] != '\0')
      continue;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
      fh_run("ip netns del %s", e->d_name);
  }
  closedir(d);
}

/* Run one setup command; on failure put it and its error in why. */
static int netns_step(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int netns_step(char *why, size_t whylen, const char *fmt, ...) {
  char cmd[256], err[256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (fh_run_err(err, sizeof err, "%s", cmd) == 0)
    return 0;
  snprintf(why, whylen, "`%s` failed: %s", cmd, err);
  return -1;
}

int fh_netns_setup(fh_netns *ns, char *why, size_t whylen) {
  char err[256];
  int pid = (int)getpid();

  memset(ns, 0, sizeof *ns);
  if (geteuid() != 0) {
    snprintf(why, whylen, "network namespaces need root (euid %d)",
             (int)geteuid());
    return -1;
  }
  remove_stale_netns();
  snprintf(ns->a, sizeof ns->a, "cpf%da", pid);
  snprintf(ns->b, sizeof ns->b, "cpf%db", pid);
  snprintf(ns->dev_a, sizeof ns->dev_a, "cpfa%d", pid % 100000);
  snprintf(ns->dev_b, sizeof ns->dev_b, "cpfb%d", pid % 100000);
  /* A private /30 that only exists inside our two namespaces. */
  strlcpy(ns->ip_a, "10.211.77.1", sizeof ns->ip_a);
  strlcpy(ns->ip_b, "10.211.77.2", sizeof ns->ip_b);

  if (fh_run_err(err, sizeof err, "ip netns add %s", ns->a) != 0) {
    snprintf(why, whylen, "`ip netns add` failed: %s",
             err[0] ? err : "is iproute2 installed?");
    return -1;
  }
  ns->up = 1; /* from here on, teardown removes what exists */
  if (netns_step(why, whylen, "ip netns add %s", ns->b) ||
      netns_step(why, whylen,
                 "ip -n %s link add %s type veth peer name %s netns %s", ns->a,
                 ns->dev_a, ns->dev_b, ns->b) ||
      netns_step(why, whylen, "ip -n %s addr add %s/30 dev %s", ns->a, ns->ip_a,
                 ns->dev_a) ||
      netns_step(why, whylen, "ip -n %s addr add %s/30 dev %s", ns->b, ns->ip_b,
                 ns->dev_b) ||
      netns_step(why, whylen, "ip -n %s link set lo up", ns->a) ||
      netns_step(why, whylen, "ip -n %s link set lo up", ns->b) ||
      netns_step(why, whylen, "ip -n %s link set %s up", ns->a, ns->dev_a) ||
      netns_step(why, whylen, "ip -n %s link set %s up", ns->b, ns->dev_b)) {
    fh_netns_teardown(ns);
    return -1;
  }
  return 0;
}

void fh_netns_teardown(fh_netns *ns) {
  if (!ns->up)
    return;
  /* Deleting a namespace deletes its end of the veth pair, and the pair. */
  fh_run("ip netns del %s", ns->a);
  fh_run("ip netns del %s", ns->b);
  ns->up = 0;
}

int fh_netns_enter(const char *name, int *saved) {
  *saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*saved < 0)
    return -1;
  if (tu_netns_join(name) != 0) {
    close(*saved);
    *saved = -1;
    return -1;
  }
  return 0;
}

int fh_netns_leave(int saved) {
  if (saved < 0)
    return -1;
  int rc = setns(saved, CLONE_NEWNET);
  close(saved);
  return rc;
}

int fh_netns_blackhole(fh_netns *ns, int on) {
  if (on)
    return fh_run("ip -n %s neigh replace %s lladdr 02:00:00:00:0f:99 dev %s "
                  "nud permanent",
                  ns->a, ns->ip_b, ns->dev_a) == 0
               ? 0
               : -1;
  return fh_run("ip -n %s neigh del %s dev %s", ns->a, ns->ip_b, ns->dev_a) == 0
             ? 0
             : -1;
}

ts_server *fh_netns_peer(const fh_netns *ns, int port) {
  ts_options o = {
      .mode = TS_PING, .ip = ns->ip_b, .port = port, .netns = ns->b};

  return ts_start_opts(&o);
}
