/*
 * The pool's worker threads' voluntary context switches (Linux: each
 * thread's /proc/self/task/TID/status), found by their name, "cpool-w"
 * and the slot (src/pool.c): how often the workers woke.  A worker that
 * watches its socket sleeps in poll() until the server closes it, so over
 * a run of ordinary requests this stays near 0.
 */
#include "wakeups.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

static int is_worker(const char *tid) {
  char path[300], name[32];
  snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int yes = fgets(name, sizeof name, f) != NULL &&
            strncmp(name, "cpool-w", 7) == 0;
  fclose(f);
  return yes;
}

static long switches_of(const char *tid) {
  char path[300], line[128];
  long v = 0;
  snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
      break;
  fclose(f);
  return v;
}

long worker_wakeups(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *de;
  long sum = 0;
  if (d == NULL)
    return -1;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.' && is_worker(de->d_name))
      sum += switches_of(de->d_name);
  closedir(d);
  return sum;
}
