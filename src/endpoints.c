/*
 * Several endpoints (docs/endpoints.md): the list, parsed once at open;
 * which endpoint a slot's worker tries next; what an attempt's outcome
 * does to its endpoint; and the moves back to a recovered endpoint.
 * Every _locked function runs with p->mu held, on the slot's worker.
 *
 * An endpoint is down once an attempt on it failed, until one succeeds.
 * Its own backoff, grown once when it goes down and once per failed
 * probe, says when it may be tried again (retry_at_ms); from then on one
 * slot at a time probes it.  Within one round (the attempts between two
 * back-offs of a slot) a slot tries each endpoint at most once, an up one
 * or a due one first; with none left it backs off, and after that it
 * tries the endpoint due first even if it is not due yet (its own
 * backoff bounds it: with one endpoint this is the single-endpoint
 * behaviour of before).
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

/* How often a worker whose idle slot is away from the endpoint it
 * prefers looks whether it may go back. */
#define REBALANCE_MS 100

static const char oom[] = "out of memory";

static int bad_entry(cpool_error_info *err, int i, const char *e, size_t n,
                     const char *why) {
  int shown = n > 127 ? 127 : (int)n;
  cpool__error_set(err, why == oom ? CPOOL_ENOMEM : CPOOL_EINVAL,
                   CPOOL_STEP_NONE, 0, NULL,
                   "invalid configuration: endpoints: entry %d \"%.*s\": %s",
                   i + 1, shown, e, why);
  return why == oom ? CPOOL_ENOMEM : CPOOL_EINVAL;
}

/* 1..65535, digits only. */
static int parse_port(const char *s, size_t n) {
  int v = 0;
  if (n == 0 || n > 5)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/* "host:port" or "[v6addr]:port" (n > 0 bytes at e): NULL, or why not. */
static const char *parse_tcp(cpool__endpoint *ep, const char *e, size_t n) {
  const char *host = e, *colon = NULL, *end = e + n;
  if (e[0] == '[') {
    const char *close = memchr(e, ']', n);
    if (close == NULL)
      return "no closing ']'";
    host = e + 1;
    colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
    if (colon == NULL)
      return close + 1 == end ? "no port" : "expected ':' after ']'";
    if (close == host)
      return "no host";
  } else {
    for (const char *c = e; c < end; c++)
      if (*c == ':') {
        if (colon != NULL)
          return "an IPv6 address needs brackets: \"[addr]:port\"";
        colon = c;
      }
    if (colon == NULL)
      return "no port";
    if (colon == host)
      return "no host";
  }
  size_t hlen = (size_t)(colon - host) - (e[0] == '[' ? 1 : 0);
  if (colon + 1 == end)
    return "no port";
  if ((ep->port = parse_port(colon + 1, (size_t)(end - colon - 1))) < 0)
    return "port must be a number in 1..65535";
  ep->host = strndup(host, hlen);
  return ep->host != NULL ? NULL : oom;
}

/* One entry, trimmed, n bytes at e: NULL, or why not. */
static const char *parse_one(cpool__endpoint *ep, const char *e, size_t n) {
  if (n == 0)
    return "empty entry";
  if (n >= sizeof ep->name)
    return "longer than 127 bytes";
  memcpy(ep->name, e, n);
  ep->name[n] = '\0';
  if (n >= 5 && strncmp(e, "unix:", 5) == 0) {
    if (n == 5)
      return "no path after \"unix:\"";
    if (n - 5 >= 108)
      return "the path is longer than 107 bytes";
    ep->unix_path = strndup(e + 5, n - 5);
    return ep->unix_path != NULL ? NULL : oom;
  }
  return parse_tcp(ep, e, n);
}

static int same_endpoint(const cpool__endpoint *a, const cpool__endpoint *b) {
  if (a->unix_path != NULL || b->unix_path != NULL)
    return a->unix_path != NULL && b->unix_path != NULL &&
           strcmp(a->unix_path, b->unix_path) == 0;
  return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* The entries of list into p->eps (allocated for CPOOL_MAX_ENDPOINTS). */
static int parse_list(struct cpool *p, const char *list,
                      cpool_error_info *err) {
  const char *at = list;
  for (int i = 0;; i++) {
    const char *comma = strchr(at, ',');
    const char *end = comma != NULL ? comma : at + strlen(at);
    const char *b = at, *e = end;
    while (b < e && isspace((unsigned char)*b))
      b++;
    while (e > b && isspace((unsigned char)e[-1]))
      e--;
    if (i == CPOOL_MAX_ENDPOINTS)
      return bad_entry(err, i, b, (size_t)(e - b),
                       "more than CPOOL_MAX_ENDPOINTS (16) entries");
    cpool__endpoint *ep = &p->eps[p->neps++];
    const char *why = parse_one(ep, b, (size_t)(e - b));
    if (why != NULL)
      return bad_entry(err, i, b, (size_t)(e - b), why);
    for (int j = 0; j < i; j++)
      if (same_endpoint(&p->eps[j], ep)) {
        char dup[40];
        snprintf(dup, sizeof dup, "the same as entry %d", j + 1);
        return bad_entry(err, i, b, (size_t)(e - b), dup);
      }
    if (comma == NULL)
      return 0;
    at = comma + 1;
  }
}

/* host/port or unix_path: a list of one, named as before. */
static int single(struct cpool *p, const cpool_config *c) {
  cpool__endpoint *ep = &p->eps[p->neps++];
  if (c->unix_path != NULL && c->unix_path[0] != '\0') {
    snprintf(ep->name, sizeof ep->name, "unix:%s", c->unix_path);
    ep->unix_path = strdup(c->unix_path);
    return ep->unix_path != NULL ? 0 : CPOOL_ENOMEM;
  }
  snprintf(ep->name, sizeof ep->name, "%s:%d", c->host, c->port);
  ep->port = c->port;
  ep->host = strdup(c->host);
  return ep->host != NULL ? 0 : CPOOL_ENOMEM;
}

int cpool__endpoints_init(struct cpool *p, const cpool_config *c,
                          cpool_error_info *err) {
  int rc;
  p->eps = calloc(CPOOL_MAX_ENDPOINTS, sizeof *p->eps);
  if (p->eps == NULL) {
    cpool__error_set(err, CPOOL_ENOMEM, CPOOL_STEP_NONE, 0, NULL,
                     "out of memory for the endpoints");
    return CPOOL_ENOMEM;
  }
  if (c->endpoints == NULL) {
    if ((rc = single(p, c)) != 0)
      cpool__error_set(err, rc, CPOOL_STEP_NONE, 0, NULL,
                       "out of memory for the endpoint");
  } else {
    const char *s = c->endpoints;
    while (isspace((unsigned char)*s))
      s++;
    if (*s == '\0') {
      cpool__error_set(err, CPOOL_EINVAL, CPOOL_STEP_NONE, 0, NULL,
                       "invalid configuration: endpoints: the list is "
                       "empty");
      return CPOOL_EINVAL;
    }
    rc = parse_list(p, c->endpoints, err);
  }
  for (int i = 0; i < p->neps; i++)
    cpool__backoff_init(&p->eps[i].backoff, c->backoff_type, c->backoff_min_ms,
                        c->backoff_max_ms);
  return rc;
}

void cpool__endpoints_free(struct cpool *p) {
  for (int i = 0; p->eps != NULL && i < p->neps; i++) {
    free(p->eps[i].host);
    free(p->eps[i].unix_path);
  }
  free(p->eps);
  p->eps = NULL;
}

/* ------------------------------------------------------------------ */
/* Choosing.                                                           */

static int failover(const struct cpool *p) {
  return p->cfg.endpoint_policy == CPOOL_ENDPOINTS_FAILOVER;
}

static int home_of(const struct cpool *p, const struct cpool_conn *s) {
  return failover(p) ? 0 : s->index % p->neps;
}

/* Up, or down and due with nobody probing it. */
static int usable(const cpool__endpoint *ep, int64_t now) {
  return !ep->down || (!ep->probing && now >= ep->retry_at_ms);
}

static int may_try(const struct cpool *p, const struct cpool_conn *s, int e,
                   int64_t now) {
  return !(s->tried & (1u << e)) && usable(&p->eps[e], now);
}

/* Spread: the slot's home, else one of the others, picked by the slot's
 * rank among those of its home so that they spread over the rest. */
static int pick_spread(const struct cpool *p, const struct cpool_conn *s,
                       int64_t now) {
  int n = p->neps, home = home_of(p, s), cand[CPOOL_MAX_ENDPOINTS], nc = 0;
  if (may_try(p, s, home, now))
    return home;
  for (int k = 1; k < n; k++)
    if (may_try(p, s, (home + k) % n, now))
      cand[nc++] = (home + k) % n;
  return nc == 0 ? -1 : cand[(s->index / n) % nc];
}

static int pick_failover(const struct cpool *p, const struct cpool_conn *s,
                         int64_t now) {
  for (int e = 0; e < p->neps; e++)
    if (may_try(p, s, e, now))
      return e;
  return -1;
}

/* The endpoint due first (the home on a tie, then list order). */
static int due_first(const struct cpool *p, const struct cpool_conn *s) {
  int best = home_of(p, s);
  for (int e = 0; e < p->neps; e++)
    if (p->eps[e].retry_at_ms < p->eps[best].retry_at_ms)
      best = e;
  return best;
}

int cpool__ep_choose_locked(struct cpool *p, struct cpool_conn *s) {
  int64_t now = cpool__now_ms();
  int e = failover(p) ? pick_failover(p, s, now) : pick_spread(p, s, now);
  if (e < 0 && s->tried == 0)
    e = due_first(p, s);
  if (e < 0)
    return -1;
  cpool__endpoint *ep = &p->eps[e];
  if (ep->down && !ep->probing && now >= ep->retry_at_ms) {
    ep->probing = 1;
    s->probe = 1;
  }
  s->ep = e;
  s->tried |= 1u << e;
  return e;
}

/* May another endpoint than the slot's last be tried now? */
int cpool__ep_elsewhere_locked(const struct cpool *p,
                               const struct cpool_conn *s) {
  int64_t now = cpool__now_ms();
  for (int e = 0; e < p->neps; e++)
    if (e != s->ep && usable(&p->eps[e], now))
      return 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Outcomes.                                                           */

static void end_probe(struct cpool *p, struct cpool_conn *s) {
  if (s->probe) {
    p->eps[s->ep].probing = 0;
    s->probe = 0;
  }
}

void cpool__ep_failed_locked(struct cpool *p, struct cpool_conn *s,
                             cpool_error_info *err) {
  cpool__endpoint *ep = &p->eps[s->ep];
  int64_t now = cpool__now_ms();

  err->endpoint = s->ep;
  ep->failures++;
  ep->last_error = *err;
  ep->last_error_at_ms = now;
  /* Other slots' attempts that were under way when it went down fail
   * too: they do not grow its backoff. */
  if (!ep->down || s->probe) {
    ep->down = 1;
    ep->retry_at_ms = now + cpool__backoff_next(&ep->backoff);
  }
  end_probe(p, s);
}

void cpool__ep_connected_locked(struct cpool *p, struct cpool_conn *s) {
  cpool__endpoint *ep = &p->eps[s->ep];
  ep->connects++;
  ep->connected++;
  s->ep_on = 1;
  if (ep->down) {
    ep->down = 0;
    ep->retry_at_ms = 0;
    cpool__backoff_reset(&ep->backoff);
  }
  end_probe(p, s);
}

/* The slot's socket is being closed, or its attempt abandoned (close). */
void cpool__ep_disconnected_locked(struct cpool *p, struct cpool_conn *s) {
  if (s->ep_on) {
    p->eps[s->ep].connected--;
    s->ep_on = 0;
  }
  end_probe(p, s);
}

/* ------------------------------------------------------------------ */
/* Going back.                                                         */

/* Where the connected slot s would rather be now, or -1 if where it is. */
static int better_endpoint(const struct cpool *p, const struct cpool_conn *s,
                           int64_t now) {
  if (failover(p)) {
    for (int e = 0; e < s->ep; e++)
      if (usable(&p->eps[e], now))
        return e;
    return -1;
  }
  int home = home_of(p, s);
  return usable(&p->eps[home], now) ? home : -1;
}

/* Take the slot from the callers for its move: 1 if it is the worker's
 * now (idle, or parked and reclaimable), else 0 with the slot marked, so
 * that its checkin (or its holder's next fast checkout) hands it back.
 * The mark is stored before the lease is loaded, as for a peer's close
 * (worker.c, peer_closed_locked): a slot parked meanwhile is not
 * missed. */
static int take_for_move(struct cpool *p, struct cpool_conn *s) {
  if (s->state == CPOOL_SLOT_IDLE && s->free_pos >= 0) {
    cpool__free_remove_locked(p, s);
    return 1;
  }
  if (s->state != CPOOL_SLOT_BUSY)
    return -1; /* being pinged: later */
  atomic_store(&s->peer_gone, CPOOL__GONE_MOVE);
  /* Not past a reservation within a turn while others wait (as a ping,
   * cpool__reclaim_locked): the holder's next checkout or the waiter that
   * reclaims it later hands it back, marked. */
  return s->fast_pos >= 0 && cpool__unpark_locked(p, s, p->wq_head == NULL);
}

int cpool__ep_should_move_locked(struct cpool *p, struct cpool_conn *s,
                                 int64_t *wake_at_ms) {
  if (p->neps < 2 || !s->ep_on || s->ep == home_of(p, s) ||
      atomic_load_explicit(&s->peer_gone, memory_order_relaxed))
    return 0; /* home, or already on its way back to the worker */
  int64_t now = cpool__now_ms();
  int cap = p->size / 8 > 1 ? p->size / 8 : 1, took;
  if (better_endpoint(p, s, now) >= 0 && p->moving < cap &&
      (took = take_for_move(p, s)) >= 0) {
    s->moving = 1;
    p->moving++;
    p->st.endpoint_moves++;
    if (!took)
      return 0; /* marked: its checkin hands it back */
    cpool__set_state_locked(p, s, CPOOL_SLOT_CONNECTING);
    s->reason = CPOOL__MOVE;
    return 1;
  }
  /* Displaced: look again soon, whatever else the worker waits for. */
  if (*wake_at_ms == 0 || *wake_at_ms > now + REBALANCE_MS)
    *wake_at_ms = now + REBALANCE_MS;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Reporting.                                                          */

/* Every endpoint and its last error, as much as fits. */
void cpool__ep_explain_locked(struct cpool *p, cpool_error_info *why) {
  char *m = why->message;
  size_t cap = sizeof why->message, at;
  at = (size_t)snprintf(m, cap, "no endpoint is up:");
  for (int i = 0; i < p->neps && at < cap; i++) {
    const cpool__endpoint *ep = &p->eps[i];
    at += (size_t)snprintf(
        m + at, cap - at, "%s %s: %s", i ? ";" : "", ep->name,
        ep->last_error.code != 0 ? ep->last_error.message : "not tried yet");
  }
  if (at >= cap) /* cut short: say so */
    strlcpy(m + cap - 4, "...", 4);
}

int cpool_endpoint_stats(cpool_t *p, int i, cpool_endpoint_stats_t *out) {
  if (p == NULL || out == NULL || i < 0 || i >= p->neps)
    return CPOOL_EINVAL;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->mu);
  const cpool__endpoint *ep = &p->eps[i];
  int64_t now = cpool__now_ms();
  strlcpy(out->addr, ep->name, sizeof out->addr);
  out->connected = ep->connected;
  out->down = ep->down;
  out->retry_in_ms = !ep->down               ? 0
                     : ep->retry_at_ms > now ? ep->retry_at_ms - now
                                             : 0;
  out->connects = ep->connects;
  out->failures = ep->failures;
  out->last_error = ep->last_error;
  if (out->last_error.code != 0)
    out->last_error.age_ms = now - ep->last_error_at_ms;
  cpool__unlock(p);
  return 0;
}
