#!/usr/bin/env bash
# bench_servers.sh BENCH redis|memcached: cpool-bench against a real server
# that this script starts on a free loopback port and stops: pipelined,
# with a key space and a set:get mix, --command (redis), the text protocol
# (memcached).  Every run must exit 0 with requests_ok > 0 and no error
# of any kind.  Skipped (exit 77) when the server is not installed.
set -uo pipefail

bench=$1 kind=$2
prog="bench_servers $kind"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
workdir=$(mktemp -d)
server_pid="" port=""
# shellcheck source=../compare/common.sh
. "$here/tools/compare/common.sh"
trap 'stop_server; rm -rf "$workdir"' EXIT

# Is memcached answering "version" on $port, and is it ours?
mc_is_ours() {
  local reply
  kill -0 "$server_pid" 2>/dev/null || return 1
  # (exec with a redirection alone would send the shell's stderr away.)
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'version\r\n' >&3
  IFS= read -r -t 2 reply <&3 || reply=""
  exec 3>&-
  [[ "$reply" == VERSION* ]] &&
    ss -ltnpH "sport = :$port" 2>/dev/null | grep -q "pid=$server_pid,"
}

start_memcached() {
  local user=() attempt
  [ "$(id -u)" -eq 0 ] && user=(-u nobody)
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((10000 + RANDOM % 20000))
    memcached -p "$port" -U 0 -l 127.0.0.1 -m 64 "${user[@]}" \
      2>"$workdir/memcached.log" &
    server_pid=$!
    for _ in $(seq 50); do
      mc_is_ours && { say "memcached on 127.0.0.1:$port"; return 0; }
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  say "could not start memcached"
  return 1
}

failures=0
# run ARGS...: one 1 s run, which must succeed with no error at all.
run() {
  local out rc=0 summary ok failed
  out=$("$bench" --host 127.0.0.1 --port "$port" --duration 1 --quiet --json \
    "$@" 2>"$workdir/err") || rc=$?
  summary=$(grep '^{"type":"summary"' <<<"$out" | tail -n1)
  ok=$(json_num requests_ok "$summary")
  failed=$(json_num requests_failed "$summary")
  if [ $rc -ne 0 ] || [ -z "$ok" ] || [ "$ok" -eq 0 ] || [ "$failed" != 0 ]; then
    echo "FAIL: $*: exit $rc, requests_ok '$ok', requests_failed '$failed'" >&2
    sed 's/^/    /' "$workdir/err" >&2
    [ -n "$summary" ] && echo "    $summary" >&2
    failures=$((failures + 1))
  else
    echo "ok: $* -> $ok requests, 0 errors ($(json_num rps "$summary") /s)"
  fi
}

case $kind in
  redis)
    command -v redis-server >/dev/null || { echo "no redis-server: skipped"; exit 77; }
    start_server || exit 1
    run --pipeline 16 --threads 4 --pool 4
    run --protocol get --size 100 --keys 20000 --pipeline 8
    run --ratio 1:10 --keys 5000 --size 32
    run --protocol set --pipeline 4 --rate 20000 --shared-queue
    run --command 'HSET cpool-bench:h field "a value"' --pipeline 4
    run --command 'LRANGE cpool-bench:none 0 -1' --connect-per-request --threads 2
    ;;
  memcached)
    command -v memcached >/dev/null || { echo "no memcached: skipped"; exit 77; }
    start_memcached || exit 1
    run --protocol memcache-set --size 100
    run --protocol memcache-get --size 100 --keys 5000
    run --protocol memcache-get --pipeline 16 --threads 4 --pool 4
    run --protocol memcache-set --ratio 1:4 --pipeline 8 --keys 2000
    ;;
  *)
    echo "usage: bench_servers.sh BENCH redis|memcached" >&2
    exit 2
    ;;
esac
[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
