#include "args.h"

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <stdarg.h>
#include <string.h>

#include "cpool.h"

enum opt_id {
  OPT_THREADS,
  OPT_POOL,
  OPT_MODE,
  OPT_TIMEOUT,
  OPT_DURATION,
  OPT_REQUESTS,
  OPT_HOST,
  OPT_PORT,
  OPT_UNIX,
  OPT_ENDPOINTS,
  OPT_PROTOCOL,
  OPT_SIZE,
  OPT_NO_IO,
  OPT_CPR,
  OPT_RATE,
  OPT_CHAOS,
  OPT_HANDOFF,
  OPT_HANDOFF_MAX,
  OPT_BUILTIN,
  OPT_QUIET,
  OPT_JSON,
  OPT_METRICS,
  OPT_HELP,
  OPT_PIPELINE,
  OPT_KEYS,
  OPT_RATIO,
  OPT_COMMAND,
  OPT_WARMUP,
  OPT_CSV,
  OPT_HDR,
  OPT_PLOT,
  OPT_SHARED_QUEUE
};

struct opt {
  const char *name;
  enum opt_id id;
  bool has_value;
};

static const struct opt opts[] = {
    {"threads", OPT_THREADS, true},
    {"pool", OPT_POOL, true},
    {"mode", OPT_MODE, true},
    {"timeout-ms", OPT_TIMEOUT, true},
    {"duration", OPT_DURATION, true},
    {"requests", OPT_REQUESTS, true},
    {"host", OPT_HOST, true},
    {"port", OPT_PORT, true},
    {"unix", OPT_UNIX, true},
    {"endpoints", OPT_ENDPOINTS, true},
    {"protocol", OPT_PROTOCOL, true},
    {"size", OPT_SIZE, true},
    {"no-io", OPT_NO_IO, false},
    {"connect-per-request", OPT_CPR, false},
    {"rate", OPT_RATE, true},
    {"chaos", OPT_CHAOS, true},
    {"handoff-us", OPT_HANDOFF, true},
    {"handoff-max-us", OPT_HANDOFF_MAX, true},
    {"builtin-server", OPT_BUILTIN, false},
    {"quiet", OPT_QUIET, false},
    {"json", OPT_JSON, false},
    {"metrics", OPT_METRICS, false},
    {"help", OPT_HELP, false},
    {"pipeline", OPT_PIPELINE, true},
    {"keys", OPT_KEYS, true},
    {"ratio", OPT_RATIO, true},
    {"command", OPT_COMMAND, true},
    {"warmup", OPT_WARMUP, true},
    {"csv", OPT_CSV, false},
    {"hdr", OPT_HDR, true},
    {"plot", OPT_PLOT, true},
    {"shared-queue", OPT_SHARED_QUEUE, false},
};

static const char *const proto_names[] = {
    "ping", "echo", "get", "set", "memcache-get", "memcache-set", "command"};
#define PROTO_CHOICES 6 /* --protocol's: all but "command" */

const char *proto_name(proto_kind p) {
  return (unsigned)p < sizeof proto_names / sizeof proto_names[0]
             ? proto_names[p]
             : "?";
}

void args_usage(FILE *out) {
  fputs("usage: cpool-bench [options]\n"
        "  --threads N            client threads (1..1024, default 8)\n"
        "  --pool N               pool connections (1..65536, default 8)\n"
        "  --mode nowait|wait     checkout mode (default wait)\n"
        "  --timeout-ms N         checkout timeout in wait mode (1..600000, "
        "default 1000)\n"
        "  --duration T           run time: seconds, or with s/ms suffix "
        "(default 5)\n"
        "  --requests N           stop after N requests (attempts) in all\n"
        "  --host H --port P      target server (default port 6379)\n"
        "  --unix PATH            target Unix socket\n"
        "  --endpoints LIST       target servers, one pool over them:\n"
        "                         HOST:PORT,[V6]:PORT,unix:PATH,...\n"
        "  --protocol P           ping|echo|get|set|memcache-get|"
        "memcache-set\n"
        "                         (default ping)\n"
        "  --command 'ARGS...'    any Redis command, sent as RESP\n"
        "  --size N               payload bytes for echo/get/set (1..1048576, "
        "default 16)\n"
        "  --pipeline N           requests in flight per checkout (1..1024, "
        "default 1)\n"
        "  --keys N               key space of get/set (1..10000000, default "
        "1000)\n"
        "  --ratio S:G            a set:get mix, e.g. 1:10 (get/set and "
        "memcache)\n"
        "  --no-io                checkout/checkin only: the pool's overhead\n"
        "  --connect-per-request  no pool: connect, request, close\n"
        "  --rate R               open loop: R requests/s across all threads\n"
        "  --shared-queue         with --rate: one schedule that all threads "
        "take from\n"
        "  --warmup T             run T (s or ms) first, left out of the "
        "figures\n"
        "  --chaos T              built-in server drops every connection every "
        "T (s or ms)\n"
        "  --handoff-us N         the pool's handoff_after_us (-1 = strict FIFO,\n"
        "                         default: the library's)\n"
        "  --handoff-max-us N     the pool's handoff_max_us, the longest turn\n"
        "                         (default: the library's)\n"
        "  --builtin-server       serve the target (--port or --unix) with the "
        "built-in server\n"
        "  --quiet                no progress line\n"
        "  --json                 one JSON object per second and a summary on "
        "stdout\n"
        "  --metrics              the pool's stats in the Prometheus text "
        "format on\n"
        "                         stdout after the run\n"
        "  --csv                  the summary as a CSV header line and one "
        "line\n"
        "  --hdr FILE             the latency histogram, HdrHistogram "
        "percentile text\n"
        "  --plot FILE.svg        an SVG: latency by percentile, requests/s "
        "over time\n"
        "  --help                 this text\n"
        "With no --host, --port or --unix, the built-in server is started on a "
        "free\nloopback port.  See docs/bench.md.\n",
        out);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static int parse_num(const char *name, const char *s, long long min,
                     long long max, long long *out, char *err, size_t errlen) {
  const char *why = NULL;
  long long v = strtonum(s, min, max, &why);
  if (why != NULL)
    return fail(err, errlen, "--%s '%s' is %s (allowed %lld..%lld)", name, s,
                why, min, max);
  *out = v;
  return 0;
}

/* A time: "5" or "5s" (seconds) or "500ms", into milliseconds. */
static int parse_time_ms(const char *name, const char *s, long long max_ms,
                         int64_t *out, char *err, size_t errlen) {
  char num[32];
  size_t len = strlen(s);
  long long scale = 1000;
  if (len > 2 && strcmp(s + len - 2, "ms") == 0) {
    len -= 2;
    scale = 1;
  } else if (len > 1 && s[len - 1] == 's') {
    len -= 1;
  }
  if (len == 0 || len >= sizeof num)
    return fail(err, errlen, "--%s '%s' is not a time (e.g. 5, 5s, 500ms)",
                name, s);
  memcpy(num, s, len);
  num[len] = '\0';
  const char *why = NULL;
  long long v = strtonum(num, 1, max_ms / scale, &why);
  if (why != NULL)
    return fail(err, errlen, "--%s '%s' is %s (allowed 1ms..%llds)", name, s,
                why, max_ms / 1000);
  *out = v * scale;
  return 0;
}

static void set_defaults(bench_args *a) {
  memset(a, 0, sizeof *a);
  a->threads = 8;
  a->pool = 8;
  a->timeout_ms = 1000;
  a->protocol = PROTO_PING;
  a->size = 16;
  a->pipeline = 1;
  a->keys = 1000;
}

static const struct opt *find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

static int set_protocol(bench_args *a, const char *v, char *err,
                        size_t errlen) {
  for (int p = 0; p < PROTO_CHOICES; p++)
    if (strcmp(v, proto_names[p]) == 0) {
      a->protocol = (proto_kind)p;
      a->protocol_given = true;
      return 0;
    }
  return fail(err, errlen,
              "--protocol '%s' is not ping, echo, get, set, memcache-get or "
              "memcache-set",
              v);
}

/* "S:G", two counts 0..ARGS_MAX_RATIO, not both 0. */
static int set_ratio(bench_args *a, const char *v, char *err, size_t errlen) {
  char num[2][16];
  const char *colon = strchr(v, ':');
  size_t n0 = colon ? (size_t)(colon - v) : 0;
  if (colon == NULL || n0 == 0 || n0 >= sizeof num[0] || colon[1] == '\0' ||
      strlen(colon + 1) >= sizeof num[1])
    return fail(err, errlen, "--ratio '%s' is not SETS:GETS (e.g. 1:10)", v);
  memcpy(num[0], v, n0);
  num[0][n0] = '\0';
  strlcpy(num[1], colon + 1, sizeof num[1]);
  long long s = 0, g = 0;
  const char *why = NULL;
  s = strtonum(num[0], 0, ARGS_MAX_RATIO, &why);
  if (why == NULL)
    g = strtonum(num[1], 0, ARGS_MAX_RATIO, &why);
  if (why != NULL)
    return fail(err, errlen, "--ratio '%s': a count is %s (allowed 0..%d)", v,
                why, ARGS_MAX_RATIO);
  if (s == 0 && g == 0)
    return fail(err, errlen, "--ratio '%s' has neither sets nor gets", v);
  a->ratio_set = (int)s;
  a->ratio_get = (int)g;
  return 0;
}

int args_split_command(const char *s, char *buf, size_t cap, char **argv,
                       size_t *lens, int max, char *err, size_t errlen) {
  int n = 0;
  size_t o = 0;
  while (*s != '\0') {
    if (*s == ' ' || *s == '\t') {
      s++;
      continue;
    }
    if (n == max)
      return fail(err, errlen, "--command has more than %d words", max);
    bool quoted = *s == '"';
    s += quoted;
    argv[n] = buf + o;
    while (*s != '\0' && (quoted ? *s != '"' : *s != ' ' && *s != '\t')) {
      if (o + 1 >= cap)
        return fail(err, errlen, "--command is too long");
      buf[o++] = *s++;
    }
    if (quoted && *s++ != '"')
      return fail(err, errlen, "--command has an unterminated quote");
    if (o + 1 >= cap)
      return fail(err, errlen, "--command is too long");
    lens[n] = (size_t)(buf + o - argv[n]);
    buf[o++] = '\0';
    n++;
  }
  if (n == 0)
    return fail(err, errlen, "--command is empty");
  return n;
}

static int set_command(bench_args *a, const char *v, char *err, size_t errlen) {
  static char buf[4096]; /* only checked here; proto.c splits it again */
  char *argv[ARGS_MAX_CMD_ARGS];
  size_t lens[ARGS_MAX_CMD_ARGS];
  if (strlen(v) >= sizeof buf)
    return fail(err, errlen, "--command is longer than %zu bytes",
                sizeof buf - 1);
  if (args_split_command(v, buf, sizeof buf, argv, lens, ARGS_MAX_CMD_ARGS, err,
                         errlen) < 0)
    return -1;
  a->command = v;
  return 0;
}

static int set_path(const char *name, const char **dst, const char *v,
                    char *err, size_t errlen) {
  if (v[0] == '\0')
    return fail(err, errlen, "--%s needs a file name", name);
  *dst = v;
  return 0;
}

/* The options added with issue 14 (pipelining, keys, output files). */
static int apply_more(bench_args *a, const struct opt *o, const char *v,
                      char *err, size_t errlen) {
  long long n = 0;
  switch (o->id) {
  case OPT_PIPELINE:
    if (parse_num(o->name, v, 1, ARGS_MAX_PIPELINE, &n, err, errlen))
      return -1;
    a->pipeline = (int)n;
    return 0;
  case OPT_KEYS:
    if (parse_num(o->name, v, 1, ARGS_MAX_KEYS, &n, err, errlen))
      return -1;
    a->keys = (int)n;
    return 0;
  case OPT_RATIO:
    return set_ratio(a, v, err, errlen);
  case OPT_COMMAND:
    return set_command(a, v, err, errlen);
  case OPT_WARMUP:
    return parse_time_ms(o->name, v, 3600 * 1000, &a->warmup_ms, err, errlen);
  case OPT_CSV:
    a->csv = true;
    return 0;
  case OPT_HDR:
    return set_path(o->name, &a->hdr_path, v, err, errlen);
  case OPT_PLOT:
    return set_path(o->name, &a->plot_path, v, err, errlen);
  case OPT_SHARED_QUEUE:
    a->shared_queue = true;
    return 0;
  default:
    return fail(err, errlen, "internal error: option --%s", o->name);
  }
}

static int apply(bench_args *a, const struct opt *o, const char *v,
                 bool *duration_set, char *err, size_t errlen) {
  long long n = 0;
  switch (o->id) {
  case OPT_THREADS:
    if (parse_num(o->name, v, 1, ARGS_MAX_THREADS, &n, err, errlen))
      return -1;
    a->threads = (int)n;
    return 0;
  case OPT_POOL:
    if (parse_num(o->name, v, 1, CPOOL_MAX_SIZE, &n, err, errlen))
      return -1;
    a->pool = (int)n;
    return 0;
  case OPT_MODE:
    if (strcmp(v, "wait") == 0 || strcmp(v, "nowait") == 0) {
      a->nowait = v[0] == 'n';
      return 0;
    }
    return fail(err, errlen, "--mode '%s' is not nowait or wait", v);
  case OPT_TIMEOUT:
    if (parse_num(o->name, v, 1, ARGS_MAX_TIMEOUT_MS, &n, err, errlen))
      return -1;
    a->timeout_ms = (int)n;
    return 0;
  case OPT_DURATION:
    *duration_set = true;
    return parse_time_ms(o->name, v, ARGS_MAX_DURATION_MS, &a->duration_ms, err,
                         errlen);
  case OPT_REQUESTS:
    if (parse_num(o->name, v, 1, INT64_C(1000000000000), &n, err, errlen))
      return -1;
    a->requests = n;
    return 0;
  case OPT_HOST:
    if (v[0] == '\0')
      return fail(err, errlen, "--host is empty");
    a->host = v;
    return 0;
  case OPT_PORT:
    if (parse_num(o->name, v, 1, 65535, &n, err, errlen))
      return -1;
    a->port = (int)n;
    return 0;
  case OPT_UNIX:
    if (v[0] == '\0' || strlen(v) >= 108)
      return fail(err, errlen, "--unix path is empty or longer than 107 bytes");
    a->unix_path = v;
    return 0;
  case OPT_ENDPOINTS:
    if (v[0] == '\0')
      return fail(err, errlen, "--endpoints is empty");
    a->endpoints = v; /* each entry is checked by cpool_open */
    return 0;
  case OPT_PROTOCOL:
    return set_protocol(a, v, err, errlen);
  case OPT_SIZE:
    if (parse_num(o->name, v, 1, ARGS_MAX_SIZE, &n, err, errlen))
      return -1;
    a->size = (int)n;
    return 0;
  case OPT_RATE:
    if (parse_num(o->name, v, 1, 1000000000, &n, err, errlen))
      return -1;
    a->rate = n;
    return 0;
  case OPT_CHAOS:
    return parse_time_ms(o->name, v, 3600 * 1000, &a->chaos_ms, err, errlen);
  case OPT_HANDOFF:
    if (parse_num(o->name, v, -1, ARGS_MAX_HANDOFF_US, &n, err, errlen))
      return -1;
    a->handoff_us = (int)n; /* 0: the library's default */
    return 0;
  case OPT_HANDOFF_MAX:
    if (parse_num(o->name, v, 0, ARGS_MAX_HANDOFF_US, &n, err, errlen))
      return -1;
    a->handoff_max_us = (int)n; /* 0: the library's default */
    return 0;
  case OPT_NO_IO:
    a->no_io = true;
    return 0;
  case OPT_CPR:
    a->connect_per_request = true;
    return 0;
  case OPT_BUILTIN:
    a->builtin = true;
    return 0;
  case OPT_QUIET:
    a->quiet = true;
    return 0;
  case OPT_JSON:
    a->json = true;
    return 0;
  case OPT_METRICS:
    a->metrics = true;
    return 0;
  case OPT_HELP:
    a->help = true;
    return 0;
  default:
    return apply_more(a, o, v, err, errlen);
  }
}

static bool is_memcache(proto_kind p) {
  return p == PROTO_MC_GET || p == PROTO_MC_SET;
}

/* The rules of --command and --ratio. */
static int check_workload(bench_args *a, char *err, size_t errlen) {
  bool ratio = a->ratio_set || a->ratio_get;
  if (a->command != NULL && (a->protocol_given || ratio || a->no_io))
    return fail(err, errlen,
                "--command cannot be combined with --protocol, --ratio or "
                "--no-io");
  if (a->command != NULL)
    a->protocol = PROTO_COMMAND;
  if (ratio &&
      (a->no_io || a->protocol == PROTO_PING || a->protocol == PROTO_ECHO)) {
    if (a->protocol_given || a->no_io)
      return fail(err, errlen,
                  "--ratio needs --protocol get, set, memcache-get or "
                  "memcache-set");
    a->protocol = PROTO_GET; /* --ratio alone: Redis GET and SET */
  }
  if (is_memcache(a->protocol) && a->builtin)
    return fail(err, errlen,
                "--protocol %s needs a memcached target (--host/--port or "
                "--unix); the built-in server speaks Redis",
                proto_name(a->protocol));
  if (a->builtin && a->keys > 100000)
    return fail(err, errlen,
                "--keys %d: the built-in server holds at most 100000 keys",
                a->keys);
  return 0;
}

/* The rules of the options added with issue 14. */
static int check_more(bench_args *a, char *err, size_t errlen) {
  if (check_workload(a, err, errlen))
    return -1;
  if (a->pipeline > 1 && a->no_io)
    return fail(err, errlen, "--pipeline needs requests, not --no-io");
  if ((int64_t)a->pipeline * (a->size + 128) > ARGS_MAX_BATCH_BYTES)
    return fail(err, errlen,
                "--pipeline %d with --size %d is over %d MiB of requests at "
                "a time",
                a->pipeline, a->size, ARGS_MAX_BATCH_BYTES >> 20);
  if (a->shared_queue && a->rate == 0)
    return fail(err, errlen, "--shared-queue needs --rate");
  if (a->warmup_ms != 0 && a->requests != 0)
    return fail(err, errlen, "--warmup needs a timed run, not --requests");
  if (a->csv && a->json)
    return fail(err, errlen, "--csv and --json cannot be combined");
  return 0;
}

/* --endpoints: a pool over outside servers, instead of one target. */
static int check_endpoints(const bench_args *a, bool tcp, char *err,
                           size_t errlen) {
  if (tcp || a->unix_path != NULL || a->builtin)
    return fail(err, errlen,
                "--endpoints cannot be combined with --host/--port, --unix "
                "or --builtin-server");
  if (a->connect_per_request || a->chaos_ms != 0)
    return fail(err, errlen,
                "--endpoints needs the pool and outside servers (no "
                "--connect-per-request or --chaos)");
  if (a->protocol == PROTO_GET)
    return fail(err, errlen,
                "--endpoints does not fill the keys of --protocol get; use "
                "set, ping or echo");
  return 0;
}

/* Rules that involve more than one option. */
static int check_combinations(bench_args *a, bool duration_set, char *err,
                              size_t errlen) {
  bool tcp = a->host != NULL || a->port != 0;
  if (tcp && a->unix_path != NULL)
    return fail(err, errlen, "--unix cannot be combined with --host/--port");
  if (a->endpoints != NULL && check_endpoints(a, tcp, err, errlen) != 0)
    return -1;
  if (!tcp && a->unix_path == NULL && a->endpoints == NULL)
    a->builtin = true;
  if (a->builtin && a->host != NULL && strcmp(a->host, "127.0.0.1") != 0 &&
      strcmp(a->host, "localhost") != 0)
    return fail(err, errlen,
                "--builtin-server listens on 127.0.0.1 only, not on '%s'",
                a->host);
  if (tcp && a->host == NULL)
    a->host = "127.0.0.1";
  if (tcp && a->port == 0) {
    if (a->builtin)
      return fail(err, errlen, "--builtin-server with --host needs --port");
    a->port = 6379;
  }
  if (a->no_io && a->connect_per_request)
    return fail(err, errlen,
                "--no-io and --connect-per-request cannot be combined");
  if (a->chaos_ms != 0 && !a->builtin)
    return fail(err, errlen,
                "--chaos needs the built-in server (no target, "
                "or --builtin-server)");
  if (a->connect_per_request && a->chaos_ms != 0)
    return fail(err, errlen,
                "--chaos needs the pool, not "
                "--connect-per-request");
  if (!duration_set)
    a->duration_ms = a->requests ? 0 : 5000;
  return check_more(a, err, errlen);
}

int args_parse(bench_args *a, int argc, char **argv, char *err, size_t errlen) {
  bool duration_set = false;
  set_defaults(a);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
      return fail(err, errlen, "unexpected argument '%s'", arg);
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct opt *o = find_opt(name, len);
    if (o == NULL)
      return fail(err, errlen, "unknown option '%.*s'", (int)len + 2, arg);
    const char *v = NULL;
    if (o->has_value) {
      if (eq != NULL)
        v = eq + 1;
      else if (i + 1 < argc)
        v = argv[++i];
      else
        return fail(err, errlen, "option --%s needs a value", o->name);
    } else if (eq != NULL) {
      return fail(err, errlen, "option --%s takes no value", o->name);
    }
    if (apply(a, o, v, &duration_set, err, errlen))
      return -1;
    if (a->help)
      return 0;
  }
  return check_combinations(a, duration_set, err, errlen);
}
