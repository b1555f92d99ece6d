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
