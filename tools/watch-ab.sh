#!/usr/bin/env bash
# watch-ab.sh: what the workers' watch on their sockets costs (issue 11),
# against a real redis-server on loopback.  Builds cpool-bench at a base
# revision (default: the last one before the watch) beside this tree's,
# then alternates PING runs of the two, and prints each run's requests/s,
# the medians and their ratio, and, for this tree's runs, how often the
# worker threads woke over the run (cpool-bench's worker_wakeups: their
# voluntary context switches): near 0 if replies do not wake them.
#
# usage: tools/watch-ab.sh [--base REV] [--duration S] [--repeat N]
#                          [--threads N] [--pool N]
# Needs redis-server and redis-cli (Debian: redis-server, redis-tools);
# without them it says so and exits 0.  Exits 1 if a run fails.
set -euo pipefail

prog=watch-ab.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=compare/common.sh
. "$here/tools/compare/common.sh"

base=fc07e6f
duration=10
repeat=3
threads=8
pool=8
build_dir="$here/build"

usage() {
  cat <<'EOF'
usage: tools/watch-ab.sh [--base REV] [--duration S] [--repeat N]
                         [--threads N] [--pool N]
  defaults: --base fc07e6f (before the watch) --duration 10 --repeat 3
            --threads 8 --pool 8
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --base) [ $# -ge 2 ] || die_usage "missing --base value"
      base=$2; shift 2 ;;
    --duration) is_count "${2:-}" || die_usage "bad --duration: ${2:-}"
      duration=$2; shift 2 ;;
    --repeat) is_count "${2:-}" || die_usage "bad --repeat: ${2:-}"
      repeat=$2; shift 2 ;;
    --threads) is_count "${2:-}" || die_usage "bad --threads: ${2:-}"
      threads=$2; shift 2 ;;
    --pool) is_count "${2:-}" || die_usage "bad --pool: ${2:-}"
      pool=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  say "redis-server and redis-cli are needed (Debian: redis-server redis-tools); skipping"
  exit 0
fi

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
  stop_server
  git -C "$here" worktree remove --force "$workdir/base" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

build_target cpool-bench "$build_dir/tools/cpool-bench" ||
  { say "could not build cpool-bench"; exit 1; }
say "building cpool-bench at $base"
git -C "$here" worktree add --detach "$workdir/base" "$base" >/dev/null 2>&1 ||
  { say "no revision $base"; exit 1; }
cmake -S "$workdir/base" -B "$workdir/base-build" -DCPOOL_BUILD_TESTS=OFF \
  -DCPOOL_BUILD_TOOLS=ON >/dev/null 2>&1 &&
  cmake --build "$workdir/base-build" -j "$(nproc)" --target cpool-bench \
    >/dev/null 2>&1 || { say "could not build $base"; exit 1; }

start_server || exit 1

declare -A rps
switches=""
bench_args=(--host 127.0.0.1 --port "$port" --protocol ping --threads "$threads"
  --pool "$pool" --duration "$duration" --json --quiet)
for round in $(seq "$repeat"); do
  for side in base watch; do
    bin="$build_dir/tools/cpool-bench"
    [ $side = base ] && bin="$workdir/base-build/tools/cpool-bench"
    line="$(run_summary "$bin" "${bench_args[@]}")" || exit 1
    r="$(json_num rps "$line")"
    rps[$side]+="$r "
    extra=""
    if [ $side = watch ]; then
      # cpool-bench's own count: the workers' voluntary context switches
      # over the run (tools/bench/wakeups.c)
      w="$(json_num worker_wakeups "$line")"
      switches+="${w:--} "
      extra=", worker wakeups over the run: ${w:--}"
    fi
    say "round $round $side: $r req/s$extra"
  done
done
mb="$(median "${rps[base]}")"
mw="$(median "${rps[watch]}")"
echo "$(machine_line)"
echo "PING, $threads threads on $pool connections, $duration s runs, $repeat alternated rounds:"
echo "  base ($base): median $mb req/s (${rps[base]% })"
echo "  watch (this tree): median $mw req/s (${rps[watch]% })"
echo "  ratio watch/base: $(calc "%.3f" "w / b" w="$mw" b="$mb")"
echo "  worker wakeups per run (all $pool workers' voluntary context switches): ${switches% }"
