#!/usr/bin/env bash
# bench_smoke.sh BENCH NAME [ARGS...]: one short cpool-bench run against its
# built-in server, "--duration 1 --quiet --json ARGS" (no --duration when
# ARGS has --requests).  @DIR@ in ARGS becomes a private temporary
# directory.  Passes when cpool-bench exits 0, prints JSON lines only, says
# on stderr that it started the built-in server, and its summary has
# requests_ok > 0 (and more, per NAME: see the checks at the end).
set -euo pipefail

bench=$1 name=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

args=() duration=(--duration 1) requests=""
while [ $# -gt 0 ]; do
  args+=("${1//@DIR@/$dir}")
  if [ "$1" = --requests ]; then
    duration=()
    requests=$2
  fi
  shift
done

fail() {
  echo "bench_smoke $name: $*" >&2
  echo "--- stdout" >&2
  cat "$dir/out" >&2
  echo "--- stderr" >&2
  cat "$dir/err" >&2
  exit 1
}

rc=0
"$bench" "${duration[@]}" --quiet --json "${args[@]}" >"$dir/out" 2>"$dir/err" ||
  rc=$?
[ $rc -eq 0 ] || fail "exit status $rc"

# A number from the summary line: field KEY.
summary=$(grep '^{"type":"summary",' "$dir/out" | tail -n1) ||
  fail "no summary line"
field() { sed -n "s/.*\"$1\":\\([0-9][0-9.]*\\).*/\\1/p" <<<"$summary"; }

grep -qv '^{"type":"\(interval\|summary\)",.*}$' "$dir/out" &&
  fail "a stdout line is not a JSON object of cpool-bench"
grep -q '^{"type":"interval",' "$dir/out" || fail "no interval line"
grep -q 'built-in server' "$dir/err" || fail "no word of the built-in server"

ok=$(field requests_ok)
[ -n "$ok" ] && [ "$ok" -gt 0 ] || fail "requests_ok is '$ok'"
for key in rps thread_ops_min thread_ops_max reconnects faults_injected; do
  [ -n "$(field "$key")" ] || fail "no $key"
done
for obj in latency_us wait_us; do
  for p in p50 p90 p99 p999 max; do
    grep -q "\"$obj\":{[^}]*\"$p\":[0-9]" <<<"$summary" || fail "no $obj.$p"
  done
done
for e in checked_out timed_out closed overload io bad_reply server_error; do
  grep -q "\"errors\":{[^}]*\"$e\":[0-9]" <<<"$summary" || fail "no errors.$e"
done

# Nothing left open, and no slot lost: the summary says how many
# descriptors were open before the server and the pool and after both went,
# and (with a pool) how many slots were idle once the run had settled.
fds_start=$(field fds_start) fds_end=$(field fds_end)
[ -n "$fds_start" ] && [ -n "$fds_end" ] || fail "no fds_start/fds_end"
[ "$fds_end" -le "$fds_start" ] ||
  fail "descriptors: $fds_start at the start, $fds_end at the end"
pool=$(field pool)
if [ "$pool" != 0 ]; then
  [ "$(field slots_idle)" = "$pool" ] ||
    fail "slots_idle is '$(field slots_idle)', not the pool's $pool"
  # The workers sleep in poll() on their sockets, not woken by the replies
  # callers read (issue 11): a few wakeups a slot at most, unless the run
  # breaks connections on purpose.
  wakeups=$(field worker_wakeups)
  [ -n "$wakeups" ] || fail "no worker_wakeups"
  case $name in
    chaos) ;;
    *) [ "$wakeups" -le $((2 * pool + 4)) ] ||
         fail "the pool's $pool workers woke $wakeups times" ;;
  esac
fi

# The share of the pool's connection time held by callers: null without a
# pool or with --no-io; else above 0, and no more than the connections'
# time, nor (closed loop, fewer threads than connections) than the threads
# can hold.
busy=$(sed -n 's/.*"pool_busy":\([0-9][0-9.]*\|null\).*/\1/p' <<<"$summary")
[ -n "$busy" ] || fail "no pool_busy"
threads=$(field threads)
case $name in
  noio* | cpr) [ "$busy" = null ] || fail "pool_busy is $busy, not null" ;;
  *)
    awk -v b="$busy" -v t="$threads" -v p="$pool" -v r="$(field rate)" \
      'BEGIN { cap = (r == 0 && t < p) ? t / p : 1
               exit !(b > 0 && b <= cap + 0.02) }' ||
      fail "pool_busy is $busy with $threads threads on $pool connections"
    ;;
esac

# An error count from the summary: errors KIND.
errors() {
  sed -n "s/.*\"errors\":{[^}]*\"$1\":\([0-9]*\).*/\1/p" <<<"$summary"
}

case $name in
  *nowait*)
    # Checked-out errors are what nowait gives when threads outnumber slots.
    for e in timed_out closed io bad_reply other; do
      [ "$(errors $e)" -eq 0 ] || fail "errors.$e is not 0"
    done
    ;;
  chaos)
    [ "$(field faults_injected)" -gt 0 ] || fail "no fault injected"
    [ "$(field reconnects)" -gt 0 ] || fail "no reconnect after the faults"
    ;;
  shared_queue)
    # An open loop never runs ahead of its schedule, shared or not: at
    # most 4000/s over the 300 ms of warmup and the 1 s after it (a loaded
    # machine may fall behind; the late requests still count).
    [ "$(field requests_failed)" -eq 0 ] || fail "requests failed"
    [ "$ok" -le 5200 ] || fail "$ok requests: more than the schedule's 5200"
    grep -q '"shared_queue":true' <<<"$summary" || fail "shared_queue is not true"
    ;;
  requests*)
    failed=$(field requests_failed)
    [ $((ok + failed)) -eq "$requests" ] ||
      fail "$ok ok + $failed failed is not $requests requests"
    ;;
  *)
    [ "$(field requests_failed)" -eq 0 ] || fail "requests failed"
    ;;
esac
echo "bench_smoke $name: ok ($ok requests)"
