#!/usr/bin/env bash
# compare-redis.sh: cpool-bench against a real redis-server, side by side
# with redis-benchmark, on loopback only.
#
# It starts a private redis-server on a free loopback port (no persistence),
# then, --repeat times, alternates:
#   - cpool-bench --protocol ping with C threads on a pool of C, and
#     redis-benchmark -t ping_inline -P 1 -c C, for each C in --connections;
#     both send the inline command "PING\r\n" and wait for "+PONG";
#   - cpool-bench with 32 threads on a pool of 8 (oversubscribed), to set
#     beside 8 threads on 8, once per hand-off setting in --handoffs
#     (cpool-bench --handoff-us: "default" is the library's, -1 strict
#     FIFO, N turns of N microseconds earned up to the library's longest
#     turn, N/M turns of N earned up to M: 250/250 is turns of 250 us
#     exactly);
#   - cpool-bench --connect-per-request with 8 threads: connect, PING,
#     close, the way without a pool.
# It prints Markdown tables of medians (requests/s, p50, p99) and the
# ratios, and stops the server on exit.
#
# usage: tools/compare-redis.sh [--duration S] [--repeat N]
#                               [--connections "8 32"] [--build-dir DIR]
#                               [--handoffs "default -1 250/250"]
#
# Needs redis-server and redis-benchmark (Debian: redis-server,
# redis-tools); without them it says so and exits 0.  cpool-bench comes
# from the build directory (default build/, built if missing) or
# $CPOOL_BENCH.  Exits 1 if cpool-bench cannot be built or a run fails.
set -euo pipefail

prog=compare-redis.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=compare/common.sh
. "$here/tools/compare/common.sh"

duration=3
repeat=3
conns_list="8 32"
handoffs="default -1 250/250"
over_threads=32
over_pool=8
build_dir="$here/build"

usage() {
  cat <<'EOF'
usage: tools/compare-redis.sh [--duration S] [--repeat N]
                              [--connections "8 32"] [--build-dir DIR]
                              [--handoffs "default -1 250/250"]
  defaults: --duration 3 --repeat 3 --connections "8 32" --build-dir build/
  --handoffs: the oversubscribed run's hand-off settings (default = the
  library's, -1 = strict FIFO, N = turns of N microseconds earned up to
  the library's longest turn, N/M = turns of N earned up to M).
  CPOOL_BENCH, when set, names the cpool-bench binary to use.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) is_count "${2:-}" || die_usage "bad --duration: ${2:-}"
      duration=$2; shift 2 ;;
    --repeat) is_count "${2:-}" || die_usage "bad --repeat: ${2:-}"
      repeat=$2; shift 2 ;;
    --connections) [ $# -ge 2 ] || die_usage "missing --connections value"
      for c in $2; do is_count "$c" || die_usage "bad --connections: $c"; done
      conns_list=$2; shift 2 ;;
    --handoffs) [ $# -ge 2 ] || die_usage "missing --handoffs value"
      for h in $2; do
        [ "$h" = default ] || [ "$h" = -1 ] || is_count "$h" ||
          { is_count "${h%%/*}" && is_count "${h#*/}"; } ||
          die_usage "bad --handoffs: $h"
      done
      handoffs=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || die_usage "missing --build-dir value"
      build_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

for tool in redis-server redis-benchmark redis-cli; do
  if ! command -v "$tool" >/dev/null; then
    say "$tool is not installed (Debian packages redis-server, redis-tools); skipping"
    exit 0
  fi
done

bench="${CPOOL_BENCH:-$build_dir/tools/cpool-bench}"
if ! build_target cpool-bench "$bench"; then
  say "cpool-bench could not be built"
  exit 1
fi

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

# Figures per run, stored as space-separated lists under "what,C".
declare -A rps p50 p99 p999 fair errs
failed=0

record() { # record KEY RPS P50 P99 ERRORS [P999 FAIRNESS]
  rps[$1]+="$2 "
  p50[$1]+="$3 "
  p99[$1]+="$4 "
  errs[$1]+="$5 "
  [ $# -ge 7 ] && p999[$1]+="$6 " && fair[$1]+="$7 "
  return 0
}

# cpool_run KEY LABEL ARGS...: one cpool-bench run against the server.
cpool_run() {
  local key=$1 label=$2 line r a b e
  shift 2
  if ! line="$(run_summary "$bench" --protocol ping --host 127.0.0.1 \
    --port "$port" --duration "$duration" --json --quiet "$@")" ||
    [ -z "$line" ]; then
    failed=1
    return 0
  fi
  r=$(json_num rps "$line")
  a=$(json_sub_num latency_us p50 "$line")
  b=$(json_sub_num latency_us p99 "$line")
  e=$(json_sub_sum errors "$line")
  record "$key" "$r" "$a" "$b" "$e" "$(json_sub_num latency_us p999 "$line")" \
    "$(calc "%.2f" "a / b" a="$(json_num thread_ops_min "$line")" \
      b="$(json_num thread_ops_max "$line")")"
  say "$(printf '%-44s %9.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %s' \
    "$label" "$r" "$a" "$b" "$e")"
}

# redis-benchmark's CSV line for PING_INLINE: rps, then latencies in ms
# (avg, min, p50, p95, p99, max).
rb_csv() { # rb_csv C N
  redis-benchmark -h 127.0.0.1 -p "$port" -t ping_inline -P 1 -c "$1" \
    -n "$2" --csv 2>/dev/null | tr -d '"' | grep '^PING_INLINE,'
}

declare -A rb_requests
# A short first run per C warms up and sizes -n to last about --duration.
calibrate_rb() {
  local c=$1 line r
  line="$(rb_csv "$c" 20000)" || { failed=1; rb_requests[$c]=20000; return 0; }
  r=$(cut -d, -f2 <<<"$line")
  rb_requests[$c]=$(awk -v r="$r" -v d="$duration" \
    'BEGIN { n = int(r * d); print (n < 20000 ? 20000 : n) }')
}

rb_run() { # rb_run C
  local c=$1 line r a b
  if ! line="$(rb_csv "$c" "${rb_requests[$c]}")"; then
    say "redis-benchmark -c $c failed"
    failed=1
    return 0
  fi
  r=$(cut -d, -f2 <<<"$line")
  a=$(calc "%.0f" "v * 1000" v="$(cut -d, -f5 <<<"$line")")
  b=$(calc "%.0f" "v * 1000" v="$(cut -d, -f7 <<<"$line")")
  record "rb,$c" "$r" "$a" "$b" 0
  say "$(printf '%-44s %9.0f req/s  p50 %6s us  p99 %6s us' \
    "redis-benchmark -c $c (n ${rb_requests[$c]})" "$r" "$a" "$b")"
}

for c in $conns_list; do calibrate_rb "$c"; done

# The baseline for the oversubscribed and connect-per-request runs is
# $over_pool threads on a pool of $over_pool: the C = 8 run when there is
# one, else a run of its own.
base_key="cpool,$over_pool"
base_in_list=0
for c in $conns_list; do [ "$c" = "$over_pool" ] && base_in_list=1; done

for ((r = 1; r <= repeat; r++)); do
  say "round $r of $repeat"
  for c in $conns_list; do
    cpool_run "cpool,$c" "cpool-bench $c threads, pool $c" \
      --threads "$c" --pool "$c"
    rb_run "$c"
  done
  if [ $base_in_list = 0 ]; then
    cpool_run "$base_key" "cpool-bench $over_pool threads, pool $over_pool" \
      --threads "$over_pool" --pool "$over_pool"
  fi
  for h in $handoffs; do
    hflag=()
    case "$h" in
      default) ;;
      */*) hflag=(--handoff-us "${h%%/*}" --handoff-max-us "${h#*/}") ;;
      *) hflag=(--handoff-us "$h") ;;
    esac
    cpool_run "over,$h" "cpool-bench $over_threads threads, pool $over_pool, handoff $h" \
      --threads "$over_threads" --pool "$over_pool" "${hflag[@]}"
  done
  cpool_run cpr "cpool-bench --connect-per-request, $over_pool threads" \
    --connect-per-request --threads "$over_pool" --pool "$over_pool"
done

m() { median "${!1:-}"; } # m 'array[key]': the median of a stored list
mi() { calc "%.0f" v v="$(m "$1")"; } # the same, rounded

echo
echo "## Redis PING on loopback: cpool-bench and redis-benchmark (${duration} s per run, median of $repeat)"
echo
machine_line
echo
echo "cpool-bench: C threads on a pool of C connections; redis-benchmark: -c C -P 1 -t ping_inline."
echo
echo "| connections | cpool-bench req/s | redis-benchmark req/s | ratio | cpool p50 µs | redis-benchmark p50 µs | cpool p99 µs | redis-benchmark p99 µs | cpool errors |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for c in $conns_list; do
  cr=$(m "rps[cpool,$c]") rr=$(m "rps[rb,$c]")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" \
    "$(mi "rps[cpool,$c]")" "$(mi "rps[rb,$c]")" \
    "$(calc "%.2f×" "a / b" a="$cr" b="$rr")" \
    "$(mi "p50[cpool,$c]")" "$(mi "p50[rb,$c]")" \
    "$(mi "p99[cpool,$c]")" "$(mi "p99[rb,$c]")" "$(mi "errs[cpool,$c]")"
done

echo
echo "## Oversubscribed: $over_threads threads on a pool of $over_pool"
echo
echo "Hand-off: \`--handoff-us\` of cpool-bench (the pool's \`handoff_after_us\`): \"default\" is the library's"
echo "default, -1 strict FIFO, N turns of N µs earned up to the library's longest turn, N/M turns of N µs earned"
echo "up to M (\`--handoff-max-us\`; 250/250 is turns of 250 µs exactly). Fairness: the fewest ÷ the most requests any one thread completed."
echo
echo "| threads on pool | hand-off | req/s | ÷ $over_pool on $over_pool | p50 µs | p99 µs | p99 ÷ p50 | p99.9 µs | fairness | errors |"
echo "|--:|--|--:|--:|--:|--:|--:|--:|--:|--:|"
a=$(m "p50[$base_key]") b=$(m "p99[$base_key]")
printf '| %s on %s | default | %s | 1.00× | %s | %s | %s | %s | %s | %s |\n' "$over_pool" \
  "$over_pool" "$(mi "rps[$base_key]")" "$(mi "p50[$base_key]")" \
  "$(mi "p99[$base_key]")" "$(calc "%.1f" "b / a" a="$a" b="$b")" \
  "$(mi "p999[$base_key]")" "$(m "fair[$base_key]")" "$(mi "errs[$base_key]")"
for h in $handoffs; do
  key="over,$h"
  a=$(m "p50[$key]") b=$(m "p99[$key]")
  printf '| %s on %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$over_threads" "$over_pool" "$h" "$(mi "rps[$key]")" \
    "$(calc "%.2f×" "x / y" x="$(m "rps[$key]")" y="$(m "rps[$base_key]")")" \
    "$(mi "p50[$key]")" "$(mi "p99[$key]")" "$(calc "%.1f" "b / a" a="$a" b="$b")" \
    "$(mi "p999[$key]")" "$(m "fair[$key]")" "$(mi "errs[$key]")"
done
echo
echo "## Connect per request: the same PING without a pool, $over_pool threads"
echo
echo "| mode | req/s | p50 µs | p99 µs | errors |"
echo "|--|--:|--:|--:|--:|"
printf '| pool of %s | %s | %s | %s | %s |\n' "$over_pool" \
  "$(mi "rps[$base_key]")" "$(mi "p50[$base_key]")" "$(mi "p99[$base_key]")" \
  "$(mi "errs[$base_key]")"
printf '| --connect-per-request | %s | %s | %s | %s |\n' \
  "$(mi "rps[cpr]")" "$(mi "p50[cpr]")" "$(mi "p99[cpr]")" "$(mi "errs[cpr]")"
echo
echo "pool ÷ connect-per-request, req/s: $(calc "%.1f×" "a / b" \
  a="$(m "rps[$base_key]")" b="$(m "rps[cpr]")")"

exit $failed
