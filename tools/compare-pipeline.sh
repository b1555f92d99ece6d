#!/usr/bin/env bash
# compare-pipeline.sh: pipelined cpool-bench against a real redis-server,
# side by side with redis-benchmark -P, and against a real memcached; on
# loopback only, with servers of its own on free ports.
#
# --repeat times, alternating:
#   - cpool-bench --pipeline P --threads C --pool C --protocol ping (inline
#     "PING\r\n", as redis-benchmark's PING_INLINE) and --command PING (a
#     RESP array, as PING_MBULK), and
#     redis-benchmark -P P -c C -t ping (both PING_INLINE and PING_MBULK);
#   - cpool-bench --protocol memcache-get and memcache-set (--pipeline P)
#     against memcached, when it is installed.
# It prints a Markdown table of medians and the ratios to redis-benchmark.
#
# usage: tools/compare-pipeline.sh [--duration S] [--repeat N]
#          [--connections C] [--pipeline P] [--build-dir DIR]
# Needs redis-server, redis-benchmark and redis-cli (without them it says
# so and exits 0); memcached is optional.  Exits 1 if a run fails.
set -euo pipefail

prog=compare-pipeline.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=compare/common.sh
. "$here/tools/compare/common.sh"

duration=3 repeat=3 conns=4 pipeline=16 build_dir="$here/build"

usage() {
  cat <<'EOF2'
usage: tools/compare-pipeline.sh [--duration S] [--repeat N]
         [--connections C] [--pipeline P] [--build-dir DIR]
  defaults: --duration 3 --repeat 3 --connections 4 --pipeline 16
  CPOOL_BENCH, when set, names the cpool-bench binary to use.
EOF2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration | --repeat | --connections | --pipeline)
      is_count "${2:-}" || die_usage "bad $1: ${2:-}"
      case "$1" in
        --duration) duration=$2 ;;
        --repeat) repeat=$2 ;;
        --connections) conns=$2 ;;
        --pipeline) pipeline=$2 ;;
      esac
      shift 2 ;;
    --build-dir) [ -n "${2:-}" ] || die_usage "--build-dir needs a directory"
      build_dir=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || {
    say "$tool is not installed (Debian packages redis-server, redis-tools); skipping"
    exit 0
  }
done
bench="${CPOOL_BENCH:-$build_dir/tools/cpool-bench}"
build_target cpool-bench "$bench" || { say "cpool-bench could not be built"; exit 1; }

workdir="$(mktemp -d)"
server_pid="" port="" redis_port="" mc_pid="" mc_port=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  stop_server
  if [ -n "$mc_pid" ]; then server_pid=$mc_pid; stop_server; fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# memcached first (its pid is kept aside), then redis-server, which
# start_server/stop_server look after.
if command -v memcached >/dev/null && start_memcached; then
  mc_pid=$server_pid mc_port=$port
  server_pid=""
else
  say "memcached is not installed or did not start: no memcached rows"
fi
start_server || exit 1
redis_port=$port

declare -A rps errs
failed=0

# bench KEY PORT ARGS...: one cpool-bench run.
bench_run() {
  local key=$1 p=$2 line r e
  shift 2
  if ! line="$(run_summary "$bench" --host 127.0.0.1 --port "$p" \
    --duration "$duration" --json --quiet --threads "$conns" --pool "$conns" \
    --pipeline "$pipeline" "$@")" || [ -z "$line" ]; then
    failed=1
    return 0
  fi
  r=$(json_num rps "$line") e=$(json_sub_sum errors "$line")
  rps[$key]+="$r " errs[$key]+="$e "
  say "$(printf '%-34s %10.0f req/s  errors %s' "$key" "$r" "$e")"
}

# redis-benchmark -t ping: one line per test, rps in field 2.
rb_n=200000
rb_run() {
  local out inl mb
  if ! out="$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping \
    -P "$pipeline" -c "$conns" -n "$rb_n" --csv 2>/dev/null | tr -d '"')"; then
    failed=1
    return 0
  fi
  inl=$(sed -n 's/^PING_INLINE,\([0-9.]*\),.*/\1/p' <<<"$out")
  mb=$(sed -n 's/^PING_MBULK,\([0-9.]*\),.*/\1/p' <<<"$out")
  rps[rb_inline]+="$inl " rps[rb_mbulk]+="$mb "
  say "$(printf '%-34s %10.0f req/s (inline), %.0f (mbulk)' \
    "redis-benchmark -P $pipeline -c $conns" "$inl" "$mb")"
}

# Size -n so that redis-benchmark runs about --duration per test.
first=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping_inline \
  -P "$pipeline" -c "$conns" -n 200000 --csv 2>/dev/null | tr -d '"' |
  sed -n 's/^PING_INLINE,\([0-9.]*\),.*/\1/p')
[ -n "$first" ] && rb_n=$(awk -v r="$first" -v d="$duration" \
  'BEGIN { n = int(r * d); print (n < 200000 ? 200000 : n) }')

for ((i = 1; i <= repeat; i++)); do
  say "round $i of $repeat"
  bench_run "cpool_inline" "$redis_port" --protocol ping
  rb_run
  bench_run "cpool_mbulk" "$redis_port" --command PING
  if [ -n "$mc_port" ]; then
    bench_run "mc_set" "$mc_port" --protocol memcache-set --size 32 --keys 10000
    bench_run "mc_get" "$mc_port" --protocol memcache-get --size 32 --keys 10000
  fi
done

med() { median "${rps[$1]:-}"; }
maxerr() { tr ' ' '\n' <<<"${errs[$1]:-}" | sort -n | tail -n1; }
echo
echo "## Pipelined requests on loopback (${duration} s per run, median of $repeat)"
echo
machine_line
echo
echo "$conns connections, $pipeline requests in flight on each."
echo
echo "| run | requests/s | vs redis-benchmark | errors (worst run) |"
echo "|---|---:|---:|---:|"
printf '| redis-benchmark -P %s -c %s, PING_INLINE | %.0f | | |\n' "$pipeline" "$conns" "$(med rb_inline)"
printf '| cpool-bench --pipeline %s, ping (inline) | %.0f | %s | %s |\n' "$pipeline" \
  "$(med cpool_inline)" "$(calc "%.2f×" "a / b" a="$(med cpool_inline)" b="$(med rb_inline)")" "$(maxerr cpool_inline)"
printf '| redis-benchmark -P %s -c %s, PING_MBULK | %.0f | | |\n' "$pipeline" "$conns" "$(med rb_mbulk)"
printf '| cpool-bench --pipeline %s, --command PING | %.0f | %s | %s |\n' "$pipeline" \
  "$(med cpool_mbulk)" "$(calc "%.2f×" "a / b" a="$(med cpool_mbulk)" b="$(med rb_mbulk)")" "$(maxerr cpool_mbulk)"
if [ -n "$mc_port" ]; then
  printf '| cpool-bench --pipeline %s, memcache-set 32 B | %.0f | | %s |\n' "$pipeline" "$(med mc_set)" "$(maxerr mc_set)"
  printf '| cpool-bench --pipeline %s, memcache-get 32 B | %.0f | | %s |\n' "$pipeline" "$(med mc_get)" "$(maxerr mc_get)"
fi
exit $failed
