/* Error codes, names and the version: one table (CPOOL_ERRNO_MAP). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

const char *cpool_strerror(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case value:                                                                  \
    return text;
    CPOOL_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *cpool_err_name(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case value:                                                                  \
    return "CPOOL_" #name;
    CPOOL_ERRNO_MAP(XX)
#undef XX
  }
  return "CPOOL_UNKNOWN";
}

const char *cpool_state_name(int state) {
  static const char *const names[] = {"connecting", "idle",   "busy",
                                      "backoff",    "closed", "checking"};
  if (state < 0 || state >= (int)(sizeof names / sizeof names[0]))
    return "unknown";
  return names[state];
}

const char *cpool_event_name(int event) {
  switch (event) {
  case CPOOL_EVENT_CONNECTED:
    return "connected";
  case CPOOL_EVENT_CONNECT_FAILED:
    return "connect_failed";
  case CPOOL_EVENT_DISCONNECTED:
    return "disconnected";
  case CPOOL_EVENT_BACKOFF:
    return "backoff";
  case CPOOL_EVENT_RECYCLED:
    return "recycled";
  }
  return "unknown";
}

unsigned cpool_version(void) { return CPOOL_VERSION_HEX; }

const char *cpool_version_string(void) {
  return STRINGIFY(CPOOL_VERSION_MAJOR) "." STRINGIFY(
      CPOOL_VERSION_MINOR) "." STRINGIFY(CPOOL_VERSION_PATCH);
}

void cpool__error_set(cpool_error_info *err, int code, cpool_step step,
                      int sys_errno, const char *addr, const char *fmt, ...) {
  va_list ap;

  if (err == NULL)
    return;
  memset(err, 0, sizeof *err);
  err->code = code;
  err->step = step;
  err->sys_errno = sys_errno;
  err->slot = -1;
  err->endpoint = -1;
  err->retry_in_ms = -1;
  if (addr != NULL)
    strlcpy(err->addr, addr, sizeof err->addr);
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}
