/*
 * Configuration: the defaults (cpool_config_init) and their resolution
 * and checks at cpool_open.  Every field's 0 means its default.
 */
#include "internal.h"

#include <string.h>

#define DEFAULT_SIZE 8
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_IDLE_CHECK_MS 500
#define DEFAULT_HANDOFF_AFTER_US 250
#define DEFAULT_HANDOFF_MAX_US 2500
#define DEFAULT_QUEUE_INTERVAL_MS 1000

/* Worker stacks: only touched pages cost memory, and a worker touches a
 * few, but they run the user's on_connect / on_ping (a TLS handshake, say)
 * and getaddrinfo's NSS modules, so leave them room.  Sanitizers need far
 * more. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_WORKER_STACK (1024 * 1024)
#else
#define DEFAULT_WORKER_STACK (256 * 1024)
#endif
#define MIN_WORKER_STACK (64 * 1024)

void cpool__config_defaults(cpool_config *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->size = DEFAULT_SIZE;
  cfg->start = CPOOL_START_ASYNC;
  cfg->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  cfg->backoff_type = CPOOL_BACKOFF_RAND_EXP;
  cfg->backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
  cfg->backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
  cfg->idle_check_ms = DEFAULT_IDLE_CHECK_MS;
  cfg->handoff_after_us = DEFAULT_HANDOFF_AFTER_US;
  cfg->handoff_max_us = DEFAULT_HANDOFF_MAX_US;
}

static int invalid(cpool_error_info *err, const char *what) {
  cpool__error_set(err, CPOOL_EINVAL, CPOOL_STEP_NONE, 0, NULL,
                   "invalid configuration: %s", what);
  return CPOOL_EINVAL;
}

/* Where to connect, how many, how to start and back off. */
static int check_basics(cpool_config *c, cpool_error_info *err) {
  int has_host = c->host != NULL && c->host[0] != '\0';
  int has_unix = c->unix_path != NULL && c->unix_path[0] != '\0';

  if (c->endpoints != NULL && (has_host || has_unix || c->port != 0))
    return invalid(err, "set either endpoints or host/port/unix_path");
  if (c->endpoint_policy != CPOOL_ENDPOINTS_SPREAD &&
      c->endpoint_policy != CPOOL_ENDPOINTS_FAILOVER)
    return invalid(err, "endpoint_policy must be CPOOL_ENDPOINTS_SPREAD or "
                        "_FAILOVER");
  /* With endpoints, each entry is checked as the list is parsed
   * (endpoints.c). */
  if (c->endpoints == NULL && has_host == has_unix)
    return invalid(err, "set exactly one of host (with port) and unix_path");
  if (has_host && (c->port < 1 || c->port > 65535))
    return invalid(err, "port must be in 1..65535");
  if (has_unix && strlen(c->unix_path) >= 108)
    return invalid(err, "unix_path is longer than 107 bytes");
  if (c->size == 0)
    c->size = DEFAULT_SIZE;
  if (c->size < 0 || c->size > CPOOL_MAX_SIZE)
    return invalid(err, "size must be in 1..CPOOL_MAX_SIZE");
  if (c->start != CPOOL_START_ASYNC && c->start != CPOOL_START_SYNC)
    return invalid(err, "start must be CPOOL_START_ASYNC or _SYNC");
  if (c->backoff_type != CPOOL_BACKOFF_RAND_EXP &&
      c->backoff_type != CPOOL_BACKOFF_EXP &&
      c->backoff_type != CPOOL_BACKOFF_RAND)
    return invalid(err, "unknown backoff_type");
  return 0;
}

/* 0 means the default, for every field that has one. */
static void fill_defaults(cpool_config *c) {
  if (c->connect_timeout_ms == 0)
    c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  if (c->backoff_min_ms == 0)
    c->backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
  if (c->backoff_max_ms == 0)
    c->backoff_max_ms = c->backoff_min_ms > DEFAULT_BACKOFF_MAX_MS
                            ? c->backoff_min_ms
                            : DEFAULT_BACKOFF_MAX_MS;
  if (c->handoff_after_us == 0)
    c->handoff_after_us = DEFAULT_HANDOFF_AFTER_US;
  if (c->handoff_max_us == 0)
    c->handoff_max_us = DEFAULT_HANDOFF_MAX_US;
  /* With CoDel, waits of a turn would look like a standing queue: turns
   * of at most half the target. */
  if (c->queue_target_ms > 0 && c->handoff_max_us > 0 &&
      c->handoff_max_us > (int64_t)c->queue_target_ms * 500)
    c->handoff_max_us = c->queue_target_ms * 500;
  /* The longest turn is never shorter than the first. */
  if (c->handoff_max_us > 0 && c->handoff_max_us < c->handoff_after_us)
    c->handoff_max_us = c->handoff_after_us;
  if (c->queue_target_ms > 0 && c->queue_interval_ms == 0)
    c->queue_interval_ms = DEFAULT_QUEUE_INTERVAL_MS;
  if (c->worker_stack_size == 0)
    c->worker_stack_size = DEFAULT_WORKER_STACK;
  if (c->idle_check_ms == 0)
    c->idle_check_ms = DEFAULT_IDLE_CHECK_MS;
}

static int check_values(const cpool_config *c, cpool_error_info *err) {
  struct {
    int bad;
    const char *what;
  } checks[] = {
      {c->connect_timeout_ms < 0, "connect_timeout_ms is negative"},
      {c->backoff_min_ms < 0, "backoff_min_ms is negative"},
      {c->backoff_max_ms < c->backoff_min_ms,
       "backoff_max_ms is less than backoff_min_ms"},
      {c->keepalive != 0 && c->keepalive != 1, "keepalive must be 0 or 1"},
      {c->keepalive_idle_s < 0, "keepalive_idle_s is negative"},
      {c->keepalive_interval_s < 0, "keepalive_interval_s is negative"},
      {c->keepalive_count < 0, "keepalive_count is negative"},
      {c->tcp_user_timeout_ms < 0, "tcp_user_timeout_ms is negative"},
      {c->idle_check_ms < CPOOL_IDLE_CHECK_ALWAYS,
       "idle_check_ms must be >= 0 (0 = 500), CPOOL_IDLE_CHECK_NEVER (-1) "
       "or CPOOL_IDLE_CHECK_ALWAYS (-2)"},
      {c->ping_interval_ms < 0, "ping_interval_ms is negative"},
      {c->ping_interval_ms > 0 && c->on_ping == NULL,
       "ping_interval_ms is set but on_ping is NULL"},
      {c->max_lifetime_ms < 0, "max_lifetime_ms is negative"},
      {c->lifetime_jitter_ms < 0, "lifetime_jitter_ms is negative"},
      {c->max_lifetime_ms > 0 && c->lifetime_jitter_ms >= c->max_lifetime_ms,
       "lifetime_jitter_ms must be less than max_lifetime_ms"},
      {c->queue_max < 0, "queue_max is negative"},
      {c->queue_target_ms < 0, "queue_target_ms is negative"},
      {c->queue_interval_ms < 0, "queue_interval_ms is negative"},
      {c->handoff_after_us < -1, "handoff_after_us must be >= -1"},
      {c->handoff_max_us < 0, "handoff_max_us is negative"},
      {c->worker_stack_size != 0 && c->worker_stack_size < MIN_WORKER_STACK,
       "worker_stack_size must be 0 or at least 64 KiB"},
      {c->io_timeout_ms < 0, "io_timeout_ms is negative"},
      {c->idle_check_mode != CPOOL_IDLE_CHECK_STRICT &&
           c->idle_check_mode != CPOOL_IDLE_CHECK_EOF,
       "idle_check_mode must be CPOOL_IDLE_CHECK_STRICT (0) or "
       "CPOOL_IDLE_CHECK_EOF (1)"},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
    if (checks[i].bad)
      return invalid(err, checks[i].what);
  return 0;
}

/* Fills c from cfg with the defaults for zero fields; checks everything. */
int cpool__config_resolve(cpool_config *c, const cpool_config *cfg,
                          cpool_error_info *err) {
  *c = *cfg;
  int rc = check_basics(c, err);
  if (rc != 0)
    return rc;
  fill_defaults(c);
  return check_values(c, err);
}
