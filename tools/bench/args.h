/* Command-line options of cpool-bench. */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum proto_kind {
  PROTO_PING = 0,   /* inline PING, +PONG */
  PROTO_ECHO = 1,   /* --size bytes echoed back */
  PROTO_GET = 2,    /* RESP GET of a --size-byte value */
  PROTO_SET = 3,    /* RESP SET of a --size-byte value */
  PROTO_MC_GET = 4, /* memcached text protocol get */
  PROTO_MC_SET = 5, /* memcached text protocol set */
  PROTO_COMMAND = 6 /* --command: any Redis command, any reply */
} proto_kind;

#define ARGS_MAX_THREADS 1024
#define ARGS_MAX_SIZE (1024 * 1024)
#define ARGS_MAX_TIMEOUT_MS 600000
#define ARGS_MAX_DURATION_MS (INT64_C(86400) * 1000)
#define ARGS_MAX_HANDOFF_US 10000000
#define ARGS_MAX_PIPELINE 1024
#define ARGS_MAX_KEYS 10000000
#define ARGS_MAX_RATIO 1000000
#define ARGS_MAX_CMD_ARGS 64
#define ARGS_MAX_BATCH_BYTES (16 * 1024 * 1024) /* --pipeline x --size */

typedef struct bench_args {
  int threads;              /* --threads, default 8 */
  int pool;                 /* --pool, default 8 */
  bool nowait;              /* --mode nowait; default wait */
  int timeout_ms;           /* --timeout-ms, default 1000 (wait mode) */
  int64_t duration_ms;      /* --duration; 0 with --requests = no limit */
  int64_t requests;         /* --requests; 0 = no limit */
  const char *host;         /* --host; NULL with --unix or the built-in */
  int port;                 /* --port */
  const char *unix_path;    /* --unix */
  const char *endpoints;    /* --endpoints, the pool's list; else NULL */
  proto_kind protocol;      /* --protocol, default ping */
  int size;                 /* --size, default 16 */
  bool no_io;               /* --no-io */
  bool connect_per_request; /* --connect-per-request */
  int64_t rate;             /* --rate requests/s; 0 = closed loop */
  int64_t chaos_ms;         /* --chaos period; 0 = off */
  int handoff_us;           /* --handoff-us; 0 = the library's default */
  int handoff_max_us;       /* --handoff-max-us; 0 = the library's */
  bool builtin;             /* run the built-in server (implied, or forced) */
  bool quiet;               /* --quiet */
  bool json;                /* --json */
  bool metrics;             /* --metrics: Prometheus text after the run */
  bool help;                /* --help */
  int pipeline;             /* --pipeline, requests per checkout, default 1 */
  int keys;                 /* --keys, the key space, default 1000 */
  int ratio_set, ratio_get; /* --ratio S:G; both 0 = no mix */
  const char *command;      /* --command 'ARGS...', NULL = none */
  bool protocol_given;      /* --protocol was on the command line */
  int64_t warmup_ms;        /* --warmup; 0 = none */
  bool csv;                 /* --csv */
  const char *hdr_path;     /* --hdr FILE */
  const char *plot_path;    /* --plot FILE.svg */
  bool shared_queue;        /* --shared-queue (with --rate) */
} bench_args;

/*
 * args_parse: fill *a from argv[1..argc-1] (defaults first).  Returns 0, or
 * -1 with a one-line message (no newline) in err.  Reentrant: no globals.
 */
int args_parse(bench_args *a, int argc, char **argv, char *err, size_t errlen);

/* args_usage: the usage text. */
void args_usage(FILE *out);

const char *proto_name(proto_kind p);

/*
 * args_split_command: split a --command line into words at blanks; a word
 * may be "double quoted" to hold blanks (no escapes).  The words are copied,
 * NUL-terminated, into buf (cap bytes); argv[i] and lens[i] point at them.
 * Returns the word count (1..max), or -1 with a message in err.
 */
int args_split_command(const char *s, char *buf, size_t cap, char **argv,
                       size_t *lens, int max, char *err, size_t errlen);

#endif
