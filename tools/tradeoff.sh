#!/usr/bin/env bash
# tradeoff.sh: the hand-off trade-off curve against a real redis-server on
# loopback: for each hand-off setting, closed and open loop side by side,
# alternated, medians of --repeat rounds.
#
#   closed  32 threads on a pool of 8, PING, beside 8 threads on 8;
#   open    8 threads on a pool of 4, GET, at 50% and 80% of the
#           closed-loop capacity of 8 threads on 4 (measured first, with
#           the default setting), latency counted from when each request
#           was due (cpool-bench --rate).
#
# Settings (--handoffs): "default" (the library's), -1 (strict FIFO), and
# N/M (turns starting at N us, earned up to M us: cpool-bench --handoff-us N
# --handoff-max-us M).  Prints one Markdown table per load, with rps, p50,
# p99, p99.9 and max per setting, and each one's ratio to strict FIFO.
#
# usage: tools/tradeoff.sh [--duration S] [--repeat N] [--build-dir DIR]
#                          [--handoffs "default -1 250/1000 250/5000 250/25000"]
# Needs redis-server and redis-cli (Debian: redis-server, redis-tools);
# without them it says so and exits 0.  Exits 1 if a run fails.
set -euo pipefail

prog=tradeoff.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=compare/common.sh
. "$here/tools/compare/common.sh"

duration=3
repeat=3
handoffs="default -1 250/1000 250/5000 250/25000"
build_dir="$here/build"

usage() {
  cat <<'EOF'
usage: tools/tradeoff.sh [--duration S] [--repeat N] [--build-dir DIR]
                         [--handoffs "default -1 250/1000 250/5000 250/25000"]
  defaults: --duration 3 --repeat 3 --build-dir build/
  --handoffs: default = the library's, -1 = strict FIFO, N/M = turns of
  N us earned up to M us.  CPOOL_BENCH names the cpool-bench binary.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) is_count "${2:-}" || die_usage "bad --duration: ${2:-}"
      duration=$2; shift 2 ;;
    --repeat) is_count "${2:-}" || die_usage "bad --repeat: ${2:-}"
      repeat=$2; shift 2 ;;
    --handoffs) [ $# -ge 2 ] || die_usage "missing --handoffs value"
      for h in $2; do
        [ "$h" = default ] || [ "$h" = -1 ] ||
          { is_count "${h%%/*}" && is_count "${h#*/}" && [ "$h" != "${h#*/}" ]; } ||
          die_usage "bad --handoffs: $h"
      done
      handoffs=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || die_usage "missing --build-dir value"
      build_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

for tool in redis-server redis-cli; do
  if ! command -v "$tool" >/dev/null; then
    say "$tool is not installed (Debian packages redis-server, redis-tools); skipping"
    exit 0
  fi
done

bench="${CPOOL_BENCH:-$build_dir/tools/cpool-bench}"
build_target cpool-bench "$bench" || { say "cpool-bench could not be built"; exit 1; }

workdir="$(mktemp -d)"
server_pid=""
port=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  stop_server
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server || exit 1

hargs() { # the cpool-bench flags for one setting
  case "$1" in
    default) ;;
    -1) echo "--handoff-us -1" ;;
    *) echo "--handoff-us ${1%%/*} --handoff-max-us ${1#*/}" ;;
  esac
}

declare -A fig
failed=0
# run KEY ARGS...: one run; appends rps p50 p99 p999 max under KEY.
run() {
  local key=$1 line
  shift
  if ! line="$(run_summary "$bench" --host 127.0.0.1 --port "$port" \
    --duration "$duration" --json --quiet "$@")" || [ -z "$line" ]; then
    failed=1
    return 0
  fi
  fig[$key,rps]+="$(json_num rps "$line") "
  for q in p50 p99 p999 max; do
    fig[$key,$q]+="$(json_sub_num latency_us "$q" "$line") "
  done
  fig[$key,err]+="$(json_sub_sum errors "$line") "
  fig[$key,busy]+="$(json_num pool_busy "$line") "
  last_rps=$(json_num rps "$line")
  say "$(printf '%-28s %9.0f req/s  p50 %8.0f  p99 %8.0f  p99.9 %8.0f  max %8.0f us' \
    "$key" "$(json_num rps "$line")" "$(json_sub_num latency_us p50 "$line")" \
    "$(json_sub_num latency_us p99 "$line")" "$(json_sub_num latency_us p999 "$line")" \
    "$(json_sub_num latency_us max "$line")")"
}

# Capacity of 8 threads on 4 (GET), default setting: sets the open-loop rates.
run cap --protocol get --threads 8 --pool 4
cap="$(median "${fig[cap,rps]}")"
[ -n "$cap" ] || { say "capacity run failed"; exit 1; }
r50=$(calc "%.0f" "c * 0.5" c="$cap")
r80=$(calc "%.0f" "c * 0.8" c="$cap")
say "8 on 4 GET capacity $cap req/s: open loop at $r50 and $r80 req/s"

for round in $(seq "$repeat"); do
  say "round $round of $repeat"
  run "8on8" --protocol ping --threads 8 --pool 8
  base_rps=$last_rps
  for h in $handoffs; do
    # shellcheck disable=SC2046 # hargs' words are flags
    run "closed,$h" --protocol ping --threads 32 --pool 8 $(hargs "$h")
    # this round's ratio, to the 8 on 8 run just before it: a drift in the
    # machine's load between rounds moves both
    fig[closed,$h,ratio]+="$(calc "%.3f" "a / b" a="$last_rps" b="$base_rps") "
    # shellcheck disable=SC2046
    run "open50,$h" --protocol get --threads 8 --pool 4 --rate "$r50" $(hargs "$h")
    # shellcheck disable=SC2046
    run "open80,$h" --protocol get --threads 8 --pool 4 --rate "$r80" $(hargs "$h")
  done
done

m() { median "${fig[$1]:-}"; }
machine_line
echo
echo "${duration} s per run, median of $repeat alternated rounds; latencies in us."
echo "Closed loop: \"vs 8 on 8\" is the median of each round's ratio to the 8 on 8"
echo "run just before it; \"pool busy\" the share of the connections' time held"
echo "(cpool-bench's pool_busy: below 1, connections sat idle between holders)."
for load in closed open50 open80; do
  echo
  case $load in
    closed) echo "### Closed loop: 32 threads on 8 connections, PING (8 on 8: $(m 8on8,rps) req/s)" ;;
    open50) echo "### Open loop: 8 threads on 4 connections, GET at $r50 req/s (50% of $cap)" ;;
    open80) echo "### Open loop: 8 threads on 4 connections, GET at $r80 req/s (80% of $cap)" ;;
  esac
  echo
  if [ $load = closed ]; then
    echo "| setting | req/s | vs 8 on 8 | pool busy | p50 | p99 | p99.9 | max | p99.9 vs strict | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
  else
    echo "| setting | req/s | p50 | p99 | p99.9 | max | p50 vs strict | p99 vs strict | errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
  fi
  for h in $handoffs; do
    k="$load,$h" s="$load,-1"
    if [ $load = closed ]; then
      printf '| %s | %.0f | %.2f× | %.3f | %.0f | %.0f | %.0f | %.0f | %s× | %s |\n' "$h" \
        "$(m "$k,rps")" "$(m "$k,ratio")" "$(m "$k,busy")" \
        "$(m "$k,p50")" "$(m "$k,p99")" "$(m "$k,p999")" "$(m "$k,max")" \
        "$(calc "%.2f" "a / b" a="$(m "$k,p999")" b="$(m "$s,p999")")" "$(m "$k,err")"
    else
      printf '| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s× | %s× | %s |\n' "$h" \
        "$(m "$k,rps")" "$(m "$k,p50")" "$(m "$k,p99")" "$(m "$k,p999")" "$(m "$k,max")" \
        "$(calc "%.2f" "a / b" a="$(m "$k,p50")" b="$(m "$s,p50")")" \
        "$(calc "%.2f" "a / b" a="$(m "$k,p99")" b="$(m "$s,p99")")" "$(m "$k,err")"
    fi
  done
done
exit $failed
