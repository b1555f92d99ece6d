/*
 * cpool: a fixed pool of persistent, self-healing TCP and Unix-socket
 * connections for multithreaded C programs.
 *
 * Threads check a connection out, do ordinary blocking I/O on its file
 * descriptor, and check it back in.  Every slot of the pool has its own
 * worker thread that owns the socket's life: it resolves, connects (with a
 * timeout), runs the user's handshake, and when the connection breaks it
 * closes it and reconnects, backing off between failed attempts, for as long
 * as the pool lives.
 *
 * This header is the reference.  For each function it says what it does,
 * what it returns, who owns what, whether and how long it blocks, whether it
 * is thread-safe and whether NULL is accepted.
 *
 * Error handling: every function that can fail returns an int, 0 on success
 * or one of the negative CPOOL_E* codes below.  Results come back through
 * out-parameters, never through a shared "last error".
 */
#ifndef CPOOL_H
#define CPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version, defined once here; CMake reads it from these three lines. */
#define CPOOL_VERSION_MAJOR 0
#define CPOOL_VERSION_MINOR 1
#define CPOOL_VERSION_PATCH 0

#define CPOOL_VERSION_HEX                                                      \
  ((CPOOL_VERSION_MAJOR << 16) | (CPOOL_VERSION_MINOR << 8) |                  \
   (CPOOL_VERSION_PATCH))

/* The library is built with -fvisibility=hidden; only what is marked
 * CPOOL_EXTERN leaves it. */
#if defined(CPOOL_BUILDING) && defined(__GNUC__)
#define CPOOL_EXTERN __attribute__((visibility("default")))
#else
#define CPOOL_EXTERN /* nothing */
#endif

/*
 * Error codes.  Negative, stable, never renumbered; new codes are added at
 * the end.  cpool_strerror() and cpool_err_name() are generated from this
 * one table.
 *
 * CPOOL_ESYS means a system call failed; the errno it failed with is in the
 * cpool_error_info the call filled (sys_errno), when the call takes one.
 */
#define CPOOL_ERRNO_MAP(XX)                                                    \
  XX(OK, 0, "success")                                                         \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(ECHECKEDOUT, -3, "no connection is free right now")                       \
  XX(ETIMEDOUT, -4, "timed out waiting for a connection")                      \
  XX(ECLOSED, -5, "backend unreachable: no connection is up or connecting")   \
  XX(ESHUTDOWN, -6, "the pool is shutting down")                               \
  XX(ESYS, -7, "system call failed")                                           \
  XX(ERESOLVE, -8, "host name could not be resolved")                          \
  XX(ECONNECT, -9, "could not connect to the server")                          \
  XX(EHANDSHAKE, -10, "the on_connect handshake failed")                       \
  XX(EOVERLOAD, -11, "pool overloaded: the request was shed from the queue")   \
  XX(EBUSY, -12, "connections are still checked out")                         \
  XX(EFORKED, -13, "pool was opened in another process (fork)")

typedef enum cpool_err {
#define CPOOL_ERR_ENUM_(name, value, text) CPOOL_##name = (value),
  CPOOL_ERRNO_MAP(CPOOL_ERR_ENUM_)
#undef CPOOL_ERR_ENUM_
} cpool_err;

/* Checkout timeouts: CPOOL_NOWAIT never waits; CPOOL_WAIT_FOREVER waits until
 * a connection is free, the backend is found down, or the pool closes. */
#define CPOOL_NOWAIT 0
#define CPOOL_WAIT_FOREVER (-1)

/* Checkin status. */
typedef enum cpool_conn_status {
  CPOOL_CONN_OK = 0,    /* still good: back to the free slots */
  CPOOL_CONN_BROKEN = 1 /* I/O error or desync: close it and reconnect */
} cpool_conn_status;

/* How cpool_open() starts the pool. */
typedef enum cpool_start {
  CPOOL_START_ASYNC = 0, /* return at once; slots connect in the background */
  CPOOL_START_SYNC = 1   /* return once every slot is connected, or fail */
} cpool_start;

/* Backoff between failed connect attempts.  The first reconnect after a
 * disconnect is immediate; backoff starts when that attempt fails. */
typedef enum cpool_backoff_type {
  CPOOL_BACKOFF_RAND_EXP = 0, /* default: random in [min, 3 * previous] */
  CPOOL_BACKOFF_EXP = 1,      /* min, 2*min, 4*min ... capped at max */
  CPOOL_BACKOFF_RAND = 2      /* uniformly random in [min, max] */
} cpool_backoff_type;

/* A slot's state, as counted by cpool_stats(). */
typedef enum cpool_slot_state {
  CPOOL_SLOT_CONNECTING = 0, /* resolving, connecting or in on_connect */
  CPOOL_SLOT_IDLE = 1,       /* connected and free */
  CPOOL_SLOT_BUSY = 2,       /* checked out by a caller */
  CPOOL_SLOT_BACKOFF = 3,    /* waiting to retry after a failed connect */
  CPOOL_SLOT_CLOSED = 4,     /* the pool is shutting down */
  CPOOL_SLOT_CHECKING = 5    /* held by its worker for on_ping */
} cpool_slot_state;

/* The step of connecting that failed. */
typedef enum cpool_step {
  CPOOL_STEP_NONE = 0,
  CPOOL_STEP_RESOLVE = 1,   /* getaddrinfo */
  CPOOL_STEP_CONNECT = 2,   /* socket, connect, socket options */
  CPOOL_STEP_HANDSHAKE = 3, /* the user's on_connect */
  CPOOL_STEP_IO = 4         /* a live connection found dead */
} cpool_step;

/*
 * Why something failed, with enough detail to act on.  Filled by
 * cpool_open(), cpool_checkout() (on CPOOL_ECLOSED) and cpool_stats()
 * (last_error), and passed to on_event.  Plain data: copy it freely.
 */
typedef struct cpool_error_info {
  int code;          /* CPOOL_E* code of the failure, 0 if none */
  int sys_errno;     /* errno of the failing system call, 0 if none */
  int gai_error;     /* getaddrinfo() error (EAI_*), 0 if none */
  cpool_step step;   /* which step failed */
  int slot;          /* slot index, -1 if not about one slot */
  char addr[128];    /* "127.0.0.1:6379", "[::1]:6379", "unix:/path" */
  char message[320]; /* "connect 127.0.0.1:6379: Connection refused" */
  int64_t age_ms;    /* how long ago it happened (cpool_stats), else 0 */
  int64_t retry_in_ms; /* ms until the next attempt of that slot; -1 unknown */
  int endpoint; /* index in the pool's endpoint list (see endpoints in
                   cpool_config) the event or failure is about; -1 if none */
} cpool_error_info;

/* Events delivered to on_event, for logging and metrics. */
typedef enum cpool_event_type {
  CPOOL_EVENT_CONNECTED = 1,      /* slot connected (handshake done) */
  CPOOL_EVENT_CONNECT_FAILED = 2, /* err says where and why */
  CPOOL_EVENT_DISCONNECTED = 3,   /* socket closed; err says why if known */
  CPOOL_EVENT_BACKOFF = 4,        /* err->retry_in_ms is the delay */
  CPOOL_EVENT_RECYCLED = 5        /* closed after max_lifetime_ms */
} cpool_event_type;

/*
 * User callbacks.  All are optional (NULL).  They run on the slot's worker
 * thread (on_checkin excepted), never with the pool's lock held, so they may
 * block (on_connect and on_ping bounded as below) and may call
 * cpool_stats(), but they must not call cpool_close() on their own pool.
 *
 * on_connect(fd, &data, arg): run after the TCP connect, before the slot is
 *   offered; may do blocking I/O (AUTH, SELECT, a TLS handshake).  It is
 *   bounded as a whole by connect_timeout_ms: at the deadline cpool shuts
 *   the socket down (shutdown(SHUT_RDWR)), so blocked I/O (recv, send,
 *   poll, SSL_connect) returns at once, and the connect fails even if the
 *   callback then returns 0.  cpool never touches SO_RCVTIMEO /
 *   SO_SNDTIMEO here: what the callback sets (hiredis' redisSetTimeout)
 *   is what callers get, whatever the value, unless io_timeout_ms is set.
 *   Read all the handshake's bytes here: bytes left unread on an idle
 *   socket make the strict idle check judge it dead (TLS 1.3 session
 *   tickets: see idle_check_mode).  It may store a pointer in *data (a TLS
 *   session, a parser buffer); callers get it
 *   back with cpool_conn_data().  Return 0 on success; anything else fails
 *   the connect (the slot backs off), and on_disconnect is still called so
 *   that *data can be released.  Set errno to say why, if you know.
 * on_disconnect(fd, data, arg): called once for every on_connect, just
 *   before the socket is closed, for whatever reason.  A socket handed
 *   back to its worker (broken, found dead, closed by the peer, recycled)
 *   is already shut for reading (shutdown SHUT_RD, which is how the
 *   worker is woken): on_disconnect may still write (QUIT, a TLS
 *   close_notify), not read.
 * on_ping(fd, data, arg): liveness check of a slot idle for
 *   ping_interval_ms (e.g. Redis PING).  The slot is out of the free list
 *   meanwhile, and SO_RCVTIMEO / SO_SNDTIMEO are set to
 *   connect_timeout_ms, so a stalled peer fails the ping.  Return 0 if
 *   alive; anything else reconnects the slot.
 * on_event(slot, event, err, arg): per-slot events; err is never NULL
 *   and is valid only during the call.
 */
typedef int (*cpool_connect_cb)(int fd, void **data, void *arg);
typedef void (*cpool_disconnect_cb)(int fd, void *data, void *arg);
typedef int (*cpool_ping_cb)(int fd, void *data, void *arg);
typedef void (*cpool_event_cb)(int slot, cpool_event_type event,
                               const cpool_error_info *err, void *arg);
typedef int (*cpool_checkin_cb)(int fd, void *data, void *arg);

/* idle_check_ms: peek at every checkout, or never. */
#define CPOOL_IDLE_CHECK_NEVER (-1)
#define CPOOL_IDLE_CHECK_ALWAYS (-2)

/* idle_check_mode: what the idle check's peek calls dead. */
typedef enum cpool_idle_check_mode {
  CPOOL_IDLE_CHECK_STRICT = 0, /* default: EOF, error or any byte waiting */
  CPOOL_IDLE_CHECK_EOF = 1     /* EOF (a FIN, even behind waiting bytes) or
                                  error only; bytes waiting are fine */
} cpool_idle_check_mode;

/*
 * Configuration.  Fill it with cpool_config_init() and then set what you
 * need.  0 means the default in every field: what cpool_config_init()
 * sets, as each field says (for some, such as ping_interval_ms, the
 * default is "off").  New fields are only ever added at the end.
 * cpool_open() copies what it needs (strings included): the struct may be
 * freed after cpool_open() returns.
 */
typedef struct cpool_config {
  /* Endpoint: host (name or address) and port, or unix_path. */
  const char *host;      /* resolved on every connect; all addresses tried */
  int port;              /* 1..65535 with host */
  const char *unix_path; /* a Unix socket path; set host to NULL */

  int size;          /* slots, 1..CPOOL_MAX_SIZE; 0 = 8 */
  cpool_start start; /* CPOOL_START_ASYNC (default) or CPOOL_START_SYNC */

  int connect_timeout_ms; /* per attempt, connect + handshake; 0 = 5000 */
  /* Between failed attempts.  A socket the server closes within
   * backoff_min_ms of connecting, twice in a row (a server at its client
   * limit), counts as a failed attempt. */
  cpool_backoff_type backoff_type; /* default CPOOL_BACKOFF_RAND_EXP */
  int backoff_min_ms;              /* 0 = 500 */
  int backoff_max_ms; /* 0 = 30000 (or backoff_min_ms, if larger); else
                        must be >= backoff_min_ms */

  /* TCP options (ignored for Unix sockets).  TCP_NODELAY is always set. */
  int keepalive;             /* 1 = SO_KEEPALIVE on; 0 = off (default) */
  int keepalive_idle_s;      /* TCP_KEEPIDLE; 0 = system default */
  int keepalive_interval_s;  /* TCP_KEEPINTVL; 0 = system default */
  int keepalive_count;       /* TCP_KEEPCNT; 0 = system default */
  int tcp_user_timeout_ms;   /* TCP_USER_TIMEOUT; 0 = off */

  /* Liveness at checkout, for what the worker's watch cannot see (it sees
   * a FIN, a reset, a keepalive timeout at once, not bytes nobody asked
   * for): a slot idle for longer than this is checked with
   * one non-blocking peek (EOF, error or unexpected bytes mean dead, see
   * idle_check_mode for EOF and error only; a
   * protocol whose server may speak first, e.g. RESP3 pushes, wants
   * CPOOL_IDLE_CHECK_NEVER and on_ping instead).  0 = 500;
   * CPOOL_IDLE_CHECK_ALWAYS (-2) peeks at every checkout (no lock-free
   * reuse of a parked slot); CPOOL_IDLE_CHECK_NEVER (-1) never peeks. */
  int idle_check_ms;

  /* Worker-run ping of idle slots: on_ping every ping_interval_ms of idle
   * time.  0 = off (default). */
  int ping_interval_ms;

  /* Recycle a connection older than max_lifetime_ms minus a random jitter
   * in [0, lifetime_jitter_ms], when it is next checked in. */
  int max_lifetime_ms;    /* 0 = off (default): never recycled */
  int lifetime_jitter_ms; /* 0 = none (default); < max_lifetime_ms */

  /* Load shedding in the waiting mode, all off (0) by default.
   * queue_max: at most this many waiters; the next caller gets
   *   CPOOL_ECHECKEDOUT at once.
   * queue_target_ms / queue_interval_ms: CoDel as in DBConnection: when even
   *   the shortest wait seen over an interval exceeded the target, waiters
   *   that have waited over twice the target get CPOOL_EOVERLOAD. */
  int queue_max;         /* 0 = no limit (default) */
  int queue_target_ms;   /* 0 = no CoDel (default) */
  int queue_interval_ms; /* 0 = 1000 (used only with queue_target_ms) */

  /* Fairness while callers wait (how turns work: docs/checkout-guide.md).
   * handoff_after_us: how long, in us, a caller's connection stays its own
   *   between two of its checkouts while others wait, and what each of its
   *   checkouts adds to its turn.  0 = 250; -1 = strict FIFO (every freed
   *   connection to the oldest waiter: fairest, most context switches). */
  int handoff_after_us;
  /* handoff_max_us: the longest turn, in us: how long a caller that keeps
   *   coming back may keep a connection while others wait; a waiter waits
   *   about (waiters / size) turns.  0 = 2500.  Shorter: smaller tails and
   *   more hand-offs; longer: more throughput when oversubscribed. */
  int handoff_max_us;

  cpool_connect_cb on_connect;
  cpool_disconnect_cb on_disconnect;
  cpool_ping_cb on_ping;
  cpool_event_cb on_event;
  void *cb_arg; /* passed to every callback */

  /* Stack of each slot's worker thread, in bytes; it runs on_connect and
   * on_ping.  Only the pages touched cost memory.  0 = 256 KiB; at least
   * 64 KiB. */
  size_t worker_stack_size;

  /* SO_RCVTIMEO and SO_SNDTIMEO, in ms, set on every connection after
   * on_connect (overriding what it set): the bound of callers' blocking
   * I/O.  0 = off (default): cpool leaves both as on_connect left them
   * (0, unbounded, without one).  Negative: CPOOL_EINVAL. */
  int io_timeout_ms;

  /* on_checkin(fd, data, arg): on the caller's thread at every checkin
   * with CPOOL_CONN_OK, before reuse; sees what a library buffered (a reply
   * left in hiredis' reader, SSL_pending()), which the peek cannot.  0
   * keeps it; nonzero: back to its worker like a broken checkin, counted in
   * validation_failures.  No system call of cpool's own.  NULL = none. */
  cpool_checkin_cb on_checkin;

  /* CPOOL_IDLE_CHECK_STRICT (0, default) or CPOOL_IDLE_CHECK_EOF: for TLS
   * 1.3, whose session tickets arrive after SSL_connect returns and sit
   * unread.  Or drain them in on_connect: one round trip (PING) over SSL
   * reads them with its reply; or have none (SSL_CTX_set_num_tickets(ctx,
   * 0) on an OpenSSL server).  Any other value: CPOOL_EINVAL. */
  int idle_check_mode;
  /* Several servers (docs/endpoints.md): "host:port,[v6addr]:port,unix:/p",
   * at most CPOOL_MAX_ENDPOINTS entries, each resolved on every connect;
   * leave host, port and unix_path unset with it.  NULL = host/port or
   * unix_path, a list of one.  Copied at cpool_open(). */
  const char *endpoints;
  /* Which endpoint a slot connects to: CPOOL_ENDPOINTS_SPREAD (0, default:
   * slot i to endpoint i % n, another while that one is down) or
   * CPOOL_ENDPOINTS_FAILOVER (every slot to the first that is up).  Slots
   * go back when an endpoint recovers, a few at a time. */
  int endpoint_policy;
} cpool_config;

#define CPOOL_MAX_SIZE 65536

/* The time histograms of cpool_stats_t: bucket i < 6 counts the times in
 * (10^i us, 10^(i+1) us] (bucket 0 from 0): <= 10 us, <= 100 us, <= 1 ms,
 * <= 10 ms, <= 100 ms, <= 1 s, and the last one every time over 1 s (the
 * upper bounds are Prometheus' le).  Each bucket counts its own range
 * only (not cumulative); their sum is the number of times measured. */
#define CPOOL_HIST_BUCKETS 7
/* endpoint_policy values, and the longest endpoint list. */
#define CPOOL_ENDPOINTS_SPREAD 0
#define CPOOL_ENDPOINTS_FAILOVER 1
#define CPOOL_MAX_ENDPOINTS 16

typedef struct cpool cpool_t;
typedef struct cpool_conn cpool_conn_t;

/*
 * A snapshot of the pool.  Slot counts are per state at one instant; the
 * counters only grow, from the pool's open.  New fields go at the end.
 */
typedef struct cpool_stats {
  int size;
  int connecting, idle, busy, backoff, checking, closed; /* slots */
  int waiters;                 /* callers queued now */
  uint64_t checkouts;          /* successful checkouts */
  uint64_t waits;              /* checkouts that had to queue */
  uint64_t checked_out_errors; /* CPOOL_ECHECKEDOUT returned */
  uint64_t timeouts;           /* CPOOL_ETIMEDOUT returned */
  uint64_t closed_errors;      /* CPOOL_ECLOSED returned */
  uint64_t overloads;          /* CPOOL_EOVERLOAD returned */
  uint64_t connects;           /* successful connects (handshake done) */
  uint64_t connect_failures;   /* failed connect attempts */
  uint64_t disconnects;        /* connected sockets closed by workers, for
                                  any reason, cpool_close included (a
                                  failed handshake is a connect failure) */
  uint64_t broken_checkins;    /* checkins with CPOOL_CONN_BROKEN */
  uint64_t idle_check_failures; /* dead slots found at checkout */
  uint64_t pings, ping_failures;
  uint64_t recycles;           /* closed after max_lifetime_ms */
  cpool_error_info last_error; /* last connect failure; code 0 if none */
  uint64_t peer_closes; /* closes (FIN) and resets (RST) by the server, seen
                           by the slot's worker the moment they arrive */
  uint64_t validation_failures; /* checkins on_checkin failed */
  /* Times, in microseconds: a total and a histogram (CPOOL_HIST_BUCKETS)
   * of each. */
  uint64_t wait_time_us; /* queued in cpool_checkout, every checkout that
                            queued (the waits, served or not) */
  uint64_t wait_hist[CPOOL_HIST_BUCKETS];
  uint64_t hold_time_us; /* checkout to checkin, every checkin of a
                            connection checked out; on the coarse clock
                            (no system call on the fast path): a hold
                            shorter than its tick (1 to 4 ms) may count
                            as 0, and each is off by up to a tick */
  uint64_t hold_hist[CPOOL_HIST_BUCKETS];
  uint64_t connect_time_us; /* resolve, connect and on_connect, every
                               successful connect (connects) */
  uint64_t connect_hist[CPOOL_HIST_BUCKETS];
  int nendpoints; /* endpoints configured: cpool_endpoint_stats 0..n-1 */
  uint64_t endpoint_moves; /* idle slots moved back to the endpoint they
                              prefer once it recovered (docs/endpoints.md) */
} cpool_stats_t;

/* One endpoint's figures (cpool_endpoint_stats). */
typedef struct cpool_endpoint_stats {
  char addr[128];        /* as configured: "127.0.0.1:6379", "unix:/p" */
  int connected;         /* slots connected to it now */
  int down;              /* 1 if its last attempt failed */
  int64_t retry_in_ms;   /* while down: ms until it may be tried again */
  uint64_t connects;     /* successful connects to it */
  uint64_t failures;     /* failed connect attempts on it */
  cpool_error_info last_error; /* its last failure; code 0 if none */
} cpool_endpoint_stats_t;

/*
 * Versions and struct layouts (the ABI policy; docs/api.md, "Versions").
 *
 * cpool_config and cpool_stats_t grow: new fields are only ever appended,
 * never removed, reordered or retyped, and a new field's 0 means what the
 * library did before it existed.  So that a program compiled against an
 * older cpool.h keeps working with a newer library, cpool_config_init(),
 * cpool_open() and cpool_stats() are macros that pass the size of the
 * caller's struct, sizeof as this header defines it, to the *_sized
 * functions below.  The library reads and writes only that many bytes: it
 * takes defaults for the fields beyond them, and does not write past them.
 * A size larger than the library's own struct (a newer header with an
 * older shared library) is accepted if the bytes the library does not
 * know are all 0 (unset), as Linux does for openat2() and clone3().
 * A size below the first release's layout (CPOOL_CONFIG_SIZE_0_1,
 * CPOOL_STATS_SIZE_0_1) or not a multiple of the struct's alignment (no
 * struct can end there) is refused: CPOOL_EINVAL, with a message for
 * cpool_open_sized.  Callers that fill a config field by field (not with
 * memcpy of a struct of another size) need nothing of this: the macros do
 * it.  The plain functions cpool_open, cpool_config_init and cpool_stats
 * also exist as symbols, taking the 0.1 layouts: what a program compiled
 * against cpool 0.1.0, before these macros, calls.
 *
 * Versions: CPOOL_VERSION_* above and cpool_version() below.  Before 1.0,
 * a minor version (0.x) may change the API or the ABI in other ways, said
 * in its release notes, and the shared library's soname is then
 * libcpool.so.0.x; appending fields is never such a change.  From 1.0, only
 * a major version may.
 */
#define CPOOL_CONFIG_SIZE_0_1                                                  \
  (offsetof(cpool_config, worker_stack_size) + sizeof(size_t))
#define CPOOL_STATS_SIZE_0_1                                                   \
  (offsetof(cpool_stats_t, last_error) + sizeof(cpool_error_info))

/*
 * cpool_config_init: fill cfg with the defaults (host NULL, port 0).
 * Thread-safe; cfg must not be NULL (a NULL cfg is ignored).
 * cpool_config_init_sized(cfg, size): the same for a struct of size bytes;
 * returns 0, or CPOOL_EINVAL (and writes nothing) for a size refused as
 * above or a NULL cfg.
 */
CPOOL_EXTERN int cpool_config_init_sized(cpool_config *cfg, size_t size);
CPOOL_EXTERN void cpool_config_init(cpool_config *cfg);
#define cpool_config_init(cfg)                                                 \
  ((void)cpool_config_init_sized((cfg), sizeof(cpool_config)))

/*
 * cpool_open: create a pool and start its slot workers.
 *
 * With CPOOL_START_ASYNC (the default) it returns as soon as the pool exists:
 * the manager is available, not yet any connection.  With CPOOL_START_SYNC
 * it blocks until every slot is connected and returns 0, or returns the
 * first connect failure (CPOOL_ERESOLVE, CPOOL_ECONNECT, CPOOL_EHANDSHAKE),
 * or CPOOL_ETIMEDOUT after connect_timeout_ms plus a margin.
 *
 * Returns 0 and sets *pool, or:
 *   CPOOL_EINVAL  pool or cfg NULL, no endpoint or both, port out of range,
 *                 size out of range, a negative or inconsistent timeout
 *                 (err->message names the field), a bad endpoints list
 *                 (the message names the entry: "endpoints: entry 2
 *                 \"foo\": no port");
 *   CPOOL_ENOMEM, CPOOL_ESYS (err->sys_errno) when resources run out;
 *   the connect errors above with CPOOL_START_SYNC.
 * On failure *pool is set to NULL and nothing is left behind.
 * err may be NULL; when given, it is filled on failure.
 * Thread-safe.
 *
 * fork(): a pool belongs to the process that opened it.  In a child
 * process after fork() (pthread_atfork), the child's copies of the pool's
 * sockets are closed at once (the parent's connections stay up: nothing
 * is sent, no on_disconnect is called), and every call on the pool, in
 * any thread of the child, returns CPOOL_EFORKED: the child is never
 * handed the parent's connections.  cpool_close() in the child frees the
 * child's copy of the memory and returns 0 at once (it neither waits nor
 * takes the pool's lock, which a parent thread may have held at the fork).
 * cpool_conn_fd() of a connection the child inherited checked out returns
 * -1.  A child that needs a pool opens its own.  (exec() needs nothing:
 * every descriptor is close-on-exec.)
 */
CPOOL_EXTERN int cpool_open(cpool_t **pool, const cpool_config *cfg,
                            cpool_error_info *err);
/* cpool_open_sized: cpool_open for a cfg of cfg_size bytes (see "Versions
 * and struct layouts"); a refused size is CPOOL_EINVAL, and err->message
 * gives the size and what is accepted. */
CPOOL_EXTERN int cpool_open_sized(cpool_t **pool, const cpool_config *cfg,
                                  size_t cfg_size, cpool_error_info *err);
#define cpool_open(pool, cfg, err)                                             \
  cpool_open_sized((pool), (cfg), sizeof(cpool_config), (err))

/*
 * cpool_checkout: take a connected, free connection.
 *
 * timeout_ms: CPOOL_NOWAIT (0) returns CPOOL_ECHECKEDOUT at once when no
 * connected slot is free.  A positive value, or CPOOL_WAIT_FOREVER (-1),
 * queues the caller FIFO; a slot checked in or newly connected goes to the
 * oldest waiter (see handoff_after_us).  The deadline counts the whole call,
 * on CLOCK_MONOTONIC.
 *
 * Returns 0 and sets *conn, or:
 *   CPOOL_ECHECKEDOUT  nowait and no connected slot free (all checked out,
 *                      or some reconnecting, or the free ones due to
 *                      callers that waited, once this caller's turn is
 *                      over: see handoff_after_us), or queue_max waiters
 *                      already;
 *   CPOOL_ETIMEDOUT    the timeout passed; a slot handed over at that
 *                      instant is returned instead, never lost;
 *   CPOOL_ECLOSED      no slot is connected and none is connecting (every
 *                      slot backing off): at once, in both modes, waiters
 *                      included; why (if not NULL) gets the last connect
 *                      error and when the next attempt is due (with
 *                      several endpoints: every endpoint's last error);
 *   CPOOL_EOVERLOAD    shed by the queue_target_ms policy;
 *   CPOOL_ESHUTDOWN    cpool_close() has begun;
 *   CPOOL_EINVAL       pool or conn NULL, timeout_ms < -1;
 *   CPOOL_EFORKED      in a child process after fork(): the pool is the
 *                      parent's (see cpool_open).
 * why may be NULL.  Thread-safe.  Blocks only when timeout_ms != 0.
 * A slot idle for longer than idle_check_ms is peeked first; a dead one goes
 * to its worker and the call moves on to the next free slot.
 */
CPOOL_EXTERN int cpool_checkout(cpool_t *pool, cpool_conn_t **conn,
                                int timeout_ms, cpool_error_info *why);

/*
 * cpool_conn_fd: the connection's socket, for blocking I/O by the caller
 * that checked it out.  The fd belongs to the pool: never close it, never
 * keep it after checkin.  Do not change its O_NONBLOCK flag unless you set it
 * back.  Returns -1 if conn is NULL.
 */
CPOOL_EXTERN int cpool_conn_fd(const cpool_conn_t *conn);

/* cpool_conn_data: the pointer on_connect stored for this connection (NULL
 * if none, or conn NULL).  Owned by the user's callbacks. */
CPOOL_EXTERN void *cpool_conn_data(const cpool_conn_t *conn);

/* cpool_conn_slot: the slot index (0..size-1), -1 if conn is NULL. */
CPOOL_EXTERN int cpool_conn_slot(const cpool_conn_t *conn);

/*
 * cpool_checkin: give a checked-out connection back.
 * status CPOOL_CONN_OK puts it back (or hands it to the oldest waiter);
 * CPOOL_CONN_BROKEN (an I/O error, a timeout mid-reply, a protocol desync)
 * hands it to its worker, which closes it and reconnects at once.  So does
 * CPOOL_CONN_OK for a connection its peer closed while it was out (the
 * worker saw the FIN or reset; stats peer_closes).
 *
 * Returns 0, or CPOOL_EINVAL (and changes nothing) when pool or conn is NULL,
 * conn belongs to another pool, conn is not checked out (a second checkin),
 * or status is neither value; CPOOL_EFORKED in a child process after
 * fork() (see cpool_open).  While cpool_close() drains, 0.  Once its
 * drain is over (timed out), a checkin of a connection still out returns
 * CPOOL_ESHUTDOWN (or 0 for one taken on the lock-free path, whose checkin
 * may not tell):
 * either way the pool has shut the connection down, the call is safe, and
 * cpool_close() waits for it to return before it frees the pool.
 * Thread-safe; never blocks on I/O (on_checkin, if set, runs first, on
 * this thread).  Any thread may check
 * in a connection, not only the one that took it.
 */
CPOOL_EXTERN int cpool_checkin(cpool_t *pool, cpool_conn_t *conn, int status);

/*
 * cpool_stats: fill *out with a snapshot.  Returns 0, or CPOOL_EINVAL if
 * pool or out is NULL, or CPOOL_EFORKED in a child process after fork()
 * (see cpool_open).  Thread-safe; takes the pool lock briefly.
 * cpool_stats_sized(pool, out, size): the same for a struct of size bytes;
 * writes exactly size bytes (0 in fields this library does not know), or
 * nothing and CPOOL_EINVAL for a size refused as above.
 */
CPOOL_EXTERN int cpool_stats_sized(cpool_t *pool, cpool_stats_t *out,
                                   size_t size);
CPOOL_EXTERN int cpool_stats(cpool_t *pool, cpool_stats_t *out);
#define cpool_stats(pool, out)                                                 \
  cpool_stats_sized((pool), (out), sizeof(cpool_stats_t))

/*
 * cpool_stats_write_prometheus: st in the Prometheus text exposition
 * format (version 0.0.4), into buf: "# HELP" and "# TYPE" lines, gauges
 * for the slots per state (<prefix>_slots{state="idle"}), the size and
 * the waiters, a counter <prefix>_<name>_total for every counter of st,
 * and the three histograms <prefix>_checkout_wait_seconds,
 * <prefix>_hold_seconds and <prefix>_connect_seconds (_bucket{le="..."}
 * cumulative, _sum in seconds, _count).  prefix: the metrics' name
 * prefix, [a-zA-Z_:][a-zA-Z0-9_:]* and at most 64 bytes; NULL means
 * "cpool".
 * Returns, as snprintf, the length of the whole text (without the
 * terminating NUL): if it is len or more, the text was cut short (and is
 * still NUL-terminated when len > 0), so a call with buf NULL and len 0
 * measures it.  CPOOL_EINVAL if st is NULL, buf is NULL with len > 0, or
 * prefix is not a valid name.  Pure function of its arguments:
 * thread-safe, never blocks, takes no pool (print a cpool_stats() copy).
 */
CPOOL_EXTERN int cpool_stats_write_prometheus(const cpool_stats_t *st,
                                              const char *prefix, char *buf,
                                              size_t len);

/*
 * cpool_endpoint_stats: fill *out with endpoint i's figures (0 <= i <
 * stats.nendpoints, in list order).  Returns 0, or CPOOL_EINVAL if pool or
 * out is NULL or i is out of range.  Thread-safe; takes the lock briefly.
 */
CPOOL_EXTERN int cpool_endpoint_stats(cpool_t *pool, int i,
                                      cpool_endpoint_stats_t *out);

/*
 * cpool_close: shut the pool down and free it.
 * New checkouts fail with CPOOL_ESHUTDOWN and waiters are woken with it.
 * Checked-out connections are waited for up to drain_timeout_ms (0: not at
 * all; CPOOL_WAIT_FOREVER: as long as it takes); then every socket is
 * closed (on_disconnect called), every worker joined, all memory freed.
 * Returns 0, or CPOOL_EBUSY if connections were still checked out when the
 * drain timed out: their sockets are shut down first (a caller blocked in
 * recv or send on one wakes with an error), then closed, and they must no
 * longer be used; checking one in while cpool_close() runs is safe and
 * returns CPOOL_ESHUTDOWN.  CPOOL_EINVAL for drain_timeout_ms < -1 (nothing
 * is done).  Closing NULL is a no-op that returns 0.  Call it once, from a
 * thread that holds no connection of this pool, never from a callback.
 * cpool_close() frees the pool only once no cpool_checkout() or
 * cpool_checkin() call is inside it; threads blocked in cpool_checkout()
 * when it begins are woken and leave safely.  Any call into the pool that
 * begins after cpool_close() has returned is a use after free of the pool
 * handle: the caller must make sure its threads are done with the pool,
 * or have begun their last call, by then.
 * In a child process after fork(): frees the child's copy and returns 0
 * at once (see cpool_open).
 * A worker inside on_connect() or on_ping() can delay it by up to
 * connect_timeout_ms; one inside getaddrinfo() by the resolver's own
 * timeouts (resolv.conf), which cpool cannot cut short.
 */
CPOOL_EXTERN int cpool_close(cpool_t *pool, int drain_timeout_ms);

/* cpool_strerror: text for a code; never NULL ("unknown error" for unknown
 * codes).  cpool_err_name: "CPOOL_ETIMEDOUT" etc.; never NULL. */
CPOOL_EXTERN const char *cpool_strerror(int err);
CPOOL_EXTERN const char *cpool_err_name(int err);

/* Name of a slot state or event ("idle", "connected"); never NULL. */
CPOOL_EXTERN const char *cpool_state_name(int state);
CPOOL_EXTERN const char *cpool_event_name(int event);

/* cpool_version: CPOOL_VERSION_HEX of the library linked in;
 * cpool_version_string: "0.1.0". */
CPOOL_EXTERN unsigned cpool_version(void);
CPOOL_EXTERN const char *cpool_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* CPOOL_H */
