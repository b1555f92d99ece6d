#!/usr/bin/env bash
# Runs one example of docs/examples against the servers it needs, started
# here on free loopback ports, and checks what it does.
#
#   examples_test.sh CASE BIN_DIR WORK_DIR [SANITIZE [CPOOL_BENCH]]
#
# CASE echo_client:  echo_server, then echo_client against it; then against
#                    a port nobody listens on (backend down, not a timeout).
#      redis_client: a redis-server, 8 threads of SET/GET through the pool,
#                    every key checked on the server; then the server gone.
#      proxy_server: a redis-server behind two proxies (waiting and
#                    --nowait), concurrent redis-cli clients, a full pool
#                    answered BUSY at once, the backend down, then load from
#                    cpool-bench --protocol ping when it is built.
#      hiredis_pool: a redis-server, hiredis on pooled fds from 4 threads,
#                    every key checked; a reply left behind refused by the
#                    on_checkin hook (the next GET of a missing key is nil).
#      tls_pool:     a CA and a server certificate made here with openssl,
#                    redis-server on a TLS port; the example verifies the
#                    certificate; EOF idle check keeps idle slots whose
#                    TLS 1.3 tickets sit unread, strict reconnects them; a
#                    certificate from another CA is refused.
#      memcached_pool: memcached on a free port, the text protocol from 4
#                    threads, every key checked on the server.
# SANITIZE is the build's CPOOL_SANITIZE; under "thread" the script runs
# itself without address randomisation (gcc 12's TSan needs that).
set -euo pipefail

[ $# -ge 3 ] || { sed -n '2,29p' "$0" >&2; exit 2; }
case_=$1 bin=$2 work=$3 san=${4:-} bench=${5:-}

if [ "$san" = thread ] && [ -z "${CPOOL_EXAMPLES_NO_ASLR:-}" ] &&
   command -v setarch >/dev/null; then
  CPOOL_EXAMPLES_NO_ASLR=1 exec setarch "$(uname -m)" -R bash "$0" "$@"
fi

rm -rf "$work"
mkdir -p "$work"
pids=()

say() { echo "examples_test[$case_]: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
run() { echo "+ $*" >&2; "$@"; }

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Waits for a program started with a port file to write it; prints the port.
wait_port_file() {
  local file=$1 pid=$2
  for _ in $(seq 100); do
    if [ -s "$file" ]; then
      cat "$file"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$file: the server exited"
    sleep 0.1
  done
  die "$file: not written within 10 s"
}

# Stops a background server with SIGTERM; fails if it does not exit 0.
stop_server() {
  local pid=$1 what=$2 rc=0
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || die "$what exited with status $rc after SIGTERM"
}

# Starts redis-server on a free port; sets redis_port and redis_pid.  The
# port is checked free first and, as another process may take it at the
# same instant, the server answering is checked to be ours (its pid).
start_redis() {
  command -v redis-server >/dev/null || die "redis-server is not installed"
  for _ in $(seq 20); do
    redis_port=$((20000 + RANDOM % 40000))
    if ss -Htln "sport = :$redis_port" 2>/dev/null | grep -q .; then
      continue
    fi
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
      --appendonly no --dir "$work" --logfile "$work/redis.log" &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do
      if redis-cli -p "$redis_port" info server 2>/dev/null |
         grep -q "^process_id:$redis_pid"; then
        say "redis-server $redis_pid on port $redis_port"
        return 0
      fi
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  done
  die "could not start redis-server"
}

case_echo_client() {
  "$bin/echo_server" 0 "$work/echo.port" >"$work/echo.log" 2>&1 &
  local echo_pid=$! port out
  pids+=("$echo_pid")
  port=$(wait_port_file "$work/echo.port" "$echo_pid")
  out=$(run "$bin/echo_client" "$port")
  [ "$out" = hello ] || die "echo_client printed '$out', not 'hello'"
  stop_server "$echo_pid" echo_server

  # Nobody listens there now: the slot fails to connect and backs off, and
  # the checkout says "backend unreachable" at once instead of timing out.
  if run "$bin/echo_client" "$port" 2>"$work/down.err"; then
    die "echo_client succeeded with no server"
  fi
  cat "$work/down.err" >&2
  grep -q "backend unreachable" "$work/down.err" ||
    die "echo_client did not report the backend down"
}

case_redis_client() {
  local threads=8 ops=500 keys
  start_redis
  run "$bin/redis_client" --port "$redis_port" --threads "$threads" \
    --ops "$ops" --pool 4 || die "redis_client failed"
  keys=$(redis-cli -p "$redis_port" dbsize)
  [ "$keys" = $((threads * ops)) ] ||
    die "the server holds $keys keys, not $((threads * ops))"
  [ "$(redis-cli -p "$redis_port" get cpool-example:7:499)" = \
    "value 499 of thread 7" ] || die "a value did not reach the server"

  stop_server "$redis_pid" redis-server
  if run "$bin/redis_client" --port "$redis_port" --threads 2 --ops 1 \
      2>"$work/down.err"; then
    die "redis_client succeeded with no server"
  fi
  cat "$work/down.err" >&2
  grep -q "backend down" "$work/down.err" ||
    die "redis_client did not report the backend down"
}

# Starts proxy_server NAME with the given flags in front of redis; sets
# proxy_port and proxy_pid once it answers PING (its pool connects in the
# background, so the first requests could find no connection up yet).
start_proxy() {
  local name=$1 pid port
  shift
  "$bin/proxy_server" --backend-port "$redis_port" \
    --port-file "$work/$name.port" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  port=$(wait_port_file "$work/$name.port" "$pid")
  proxy_pid=$pid proxy_port=$port
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  die "$name does not answer PING"
}

# Waits until redis has N clients blocked (in BLPOP through a proxy), so
# that the proxy's connections are known to be held.
wait_blocked() {
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" info clients |
      grep -q "^blocked_clients:$1" && return 0
    sleep 0.05
  done
  die "redis never had $1 blocked clients"
}

# One redis-cli client doing SET and GET of its own keys through the proxy.
proxy_client() {
  local port=$1 id=$2
  for i in $(seq 20); do
    printf 'SET proxy:%s:%s v%s\nGET proxy:%s:%s\n' "$id" "$i" "$i" "$id" "$i"
  done | redis-cli -p "$port" >"$work/client.$id.out"
  for i in $(seq 20); do printf 'OK\nv%s\n' "$i"; done |
    cmp -s - "$work/client.$id.out"
}

case_proxy_server() {
  local port busy_port waiting_pid nowait_pid out t0 t1 jobs=() failed=0
  start_redis
  start_proxy waiting --pool 2 --timeout-ms 5000
  port=$proxy_port waiting_pid=$proxy_pid
  start_proxy nowait --pool 1 --nowait
  busy_port=$proxy_port nowait_pid=$proxy_pid
  say "waiting proxy on $port, nowait proxy on $busy_port"

  # Concurrent clients, more than the pool has connections: they queue.
  for id in $(seq 8); do
    proxy_client "$port" "$id" &
    jobs+=("$!")
  done
  for j in "${jobs[@]}"; do wait "$j" || failed=$((failed + 1)); done
  [ "$failed" -eq 0 ] || die "$failed of 8 proxy clients got wrong replies"
  [ "$(redis-cli -p "$redis_port" get proxy:8:20)" = v20 ] ||
    die "proxy writes did not reach redis"

  # A blocking command holds the nowait proxy's only connection: the next
  # request is answered BUSY at once, and PONG again once it is free.
  redis-cli -p "$busy_port" blpop cpool:nothing 2 >/dev/null &
  jobs=("$!")
  wait_blocked 1
  t0=$(date +%s%N)
  out=$(redis-cli -p "$busy_port" ping 2>&1)
  t1=$(date +%s%N)
  say "while the pool is held: '$out' in $(((t1 - t0) / 1000000)) ms"
  case "$out" in *BUSY*) ;; *) die "expected BUSY, got '$out'" ;; esac
  wait "${jobs[0]}"
  [ "$(redis-cli -p "$busy_port" ping)" = PONG ] || die "no PONG after BUSY"

  # The waiting proxy queues instead: PING waits for the BLPOPs to end.
  redis-cli -p "$port" blpop cpool:nothing 2 >/dev/null &
  jobs=("$!")
  redis-cli -p "$port" blpop cpool:nothing 2 >/dev/null &
  jobs+=("$!")
  wait_blocked 2
  t0=$(date +%s%N)
  out=$(redis-cli -p "$port" ping)
  t1=$(date +%s%N)
  say "waiting proxy, both connections held: '$out' after $(((t1 - t0) / 1000000)) ms"
  [ "$out" = PONG ] || die "waiting proxy: no PONG"
  # Both connections were held by 2 s BLPOPs: it can only have waited.
  [ $(((t1 - t0) / 1000000)) -ge 100 ] || die "waiting proxy did not wait"
  for j in "${jobs[@]}"; do wait "$j"; done

  if [ -x "$bench" ]; then
    out=$(run "$bench" --host 127.0.0.1 --port "$port" --protocol ping \
      --threads 8 --pool 8 --mode wait --duration 2 --json) ||
      die "cpool-bench against the proxy failed"
    out=$(grep '"type":"summary"' <<<"$out") || die "no cpool-bench summary"
    say "cpool-bench through the proxy: $(grep -o '"requests_ok":[0-9]*' \
      <<<"$out"), $(grep -o '"rps":[0-9.]*' <<<"$out")"
    if ! grep -q '"requests_ok":[1-9]' <<<"$out" ||
       ! grep -q '"requests_failed":0,' <<<"$out"; then
      die "cpool-bench through the proxy: $out"
    fi
  else
    say "SKIP the load step: no cpool-bench at '$bench'"
  fi

  # Backend gone: both proxies say so, in both modes, once their slots have
  # noticed.  Until then a request may meet a socket the server closed (a
  # connection used within idle_check_ms is handed out unchecked: "backend
  # failed", and it goes back broken), or, with --nowait, find the only slot
  # reconnecting after the idle check found it dead ("BUSY").
  stop_server "$redis_pid" redis-server
  for p in "$port" "$busy_port"; do
    for attempt in 1 2 3 4 5; do
      out=$(redis-cli -p "$p" ping 2>&1)
      say "backend down, proxy $p, request $attempt: '$out'"
      case "$out" in
        *"backend down"*) break ;;
        *"backend failed"* | *BUSY*) [ "$attempt" -lt 5 ] || die "never down" ;;
        *) die "expected 'backend down', got '$out'" ;;
      esac
      sleep 0.1
    done
  done

  stop_server "$waiting_pid" "proxy_server (waiting)"
  stop_server "$nowait_pid" "proxy_server (nowait)"
  cat "$work/waiting.log" "$work/nowait.log" >&2
}

# A free loopback port (not listened on a moment ago).
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return 0; }
  done
  die "no free port"
}

case_hiredis_pool() {
  local out
  start_redis
  out=$(run "$bin/hiredis_pool" --port "$redis_port" --threads 4 --ops 200 \
    --pool 2) || { echo "$out" >&2; die "hiredis_pool failed"; }
  echo "$out" >&2
  grep -q "GET missing -> nil" <<<"$out" || die "a stale reply reached a caller"
  grep -q "validation_failures 1" <<<"$out" || die "on_checkin did not refuse"
  [ "$(redis-cli -p "$redis_port" get cpool-hiredis:3:199)" = \
    "value 199 of thread 3" ] || die "a value did not reach the server"
  [ "$(redis-cli -p "$redis_port" eval "return #redis.call('keys','cpool-hiredis:*:*')" 0)" \
    = 800 ] || die "the server does not hold 800 keys"
  stop_server "$redis_pid" redis-server
}

# A CA, and a certificate for localhost / 127.0.0.1 signed by it, in $1.
make_certs() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cpool test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || die "openssl req (CA)"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null ||
    die "openssl req (server)"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.crt" \
    2>/dev/null || die "openssl x509"
}

case_tls_pool() {
  local tls_port out
  command -v openssl >/dev/null || die "openssl is not installed"
  command -v redis-server >/dev/null || die "redis-server is not installed"
  make_certs "$work/pki"
  make_certs "$work/other" # another CA: its certificate must not verify
  # Another process may take the port first: then try another.
  for _ in $(seq 10); do
    tls_port=$(free_port)
    redis-server --port 0 --tls-port "$tls_port" --bind 127.0.0.1 --save "" \
      --appendonly no --dir "$work" --logfile "$work/redis.log" \
      --tls-cert-file "$work/pki/server.crt" \
      --tls-key-file "$work/pki/server.key" \
      --tls-ca-cert-file "$work/pki/ca.crt" --tls-auth-clients no &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do
      timeout 5 openssl s_client -connect "127.0.0.1:$tls_port" \
        -CAfile "$work/pki/ca.crt" -verify_return_error </dev/null \
        >/dev/null 2>&1 && break 2
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  done
  kill -0 "$redis_pid" 2>/dev/null || die "could not start redis-server (TLS)"
  say "redis-server $redis_pid on TLS port $tls_port"

  out=$(run "$bin/tls_pool" --port "$tls_port" --ca "$work/pki/ca.crt") ||
    { echo "$out" >&2; die "tls_pool failed"; }
  echo "$out" >&2
  grep -q "EOF idle check: 0 errors, connects 2, idle_check_failures 0" \
    <<<"$out" || die "EOF mode: slots reconnected or replies wrong"

  # Strict: the unread session tickets make both idle slots look dead.
  out=$(run "$bin/tls_pool" --port "$tls_port" --ca "$work/pki/ca.crt" \
    --strict) || { echo "$out" >&2; die "tls_pool --strict failed"; }
  echo "$out" >&2
  grep -q "strict idle check: 0 errors, connects 4, idle_check_failures 2" \
    <<<"$out" || die "strict mode: expected both idle slots judged dead"

  # A certificate that does not verify fails the handshake: no connection.
  if run "$bin/tls_pool" --port "$tls_port" --ca "$work/other/ca.crt" \
      2>"$work/badca.err"; then
    die "tls_pool accepted a certificate from another CA"
  fi
  cat "$work/badca.err" >&2
  grep -q "certificate verify failed" "$work/badca.err" ||
    die "tls_pool did not say the certificate failed to verify"
  stop_server "$redis_pid" "redis-server (TLS)"
}

# memcached's "stats" on 127.0.0.1:$1, CRs removed.
mc_stats() {
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'stats\r\nquit\r\n' >&3
  tr -d '\r' <&3
  exec 3<&-
}

case_memcached_pool() {
  local mc_port mc_pid out user=()
  command -v memcached >/dev/null || die "memcached is not installed"
  [ "$(id -u)" -eq 0 ] && user=(-u nobody)
  # Another process may take the port first: then try another.
  for _ in $(seq 10); do
    mc_port=$(free_port)
    memcached -l 127.0.0.1 -p "$mc_port" -U 0 "${user[@]}" \
      >"$work/memcached.log" 2>&1 &
    mc_pid=$!
    pids+=("$mc_pid")
    for _ in $(seq 50); do
      # Ours answering, not another process on the port: its pid.
      mc_stats "$mc_port" 2>/dev/null | grep -q "^STAT pid $mc_pid" && break 2
      kill -0 "$mc_pid" 2>/dev/null || break
      sleep 0.1
    done
    cat "$work/memcached.log" >&2
    kill "$mc_pid" 2>/dev/null || true
    wait "$mc_pid" 2>/dev/null || true
  done
  kill -0 "$mc_pid" 2>/dev/null || die "could not start memcached"
  say "memcached $mc_pid on port $mc_port"
  out=$(run "$bin/memcached_pool" --port "$mc_port" --threads 4 --ops 200 \
    --pool 2) || { echo "$out" >&2; die "memcached_pool failed"; }
  echo "$out" >&2
  grep -q "4 threads x 200 ops: 0 errors" <<<"$out" || die "wrong replies"
  # The last value, read back from the server itself.
  out=$(exec 3<>"/dev/tcp/127.0.0.1/$mc_port"
        printf 'get cpool-mc:3:199\r\nquit\r\n' >&3
        cat <&3)
  grep -q "value 199 of thread 3" <<<"$out" || die "a value is not on the server"
  stop_server "$mc_pid" memcached
}

case "$case_" in
  echo_client | redis_client | proxy_server | hiredis_pool | tls_pool | \
    memcached_pool) "case_$case_" ;;
  *) die "unknown case '$case_'" ;;
esac
say "passed"
