#!/usr/bin/env bash
# compare-pools.sh: the pool's own overhead beside two other C pools.
#
# Runs the --no-io checkout/checkin cycle benchmark (no request, only the
# pool) of `cpool-bench --no-io`, of apr_reslist (tools/compare/compare-apr)
# and of libmemcached's memcached_pool (tools/compare/compare-memcached),
# with the same threads and pool size, alternating the three so that a
# noisy machine hurts them alike.  Each configuration runs --repeat times;
# the table shows medians: ops/s, cpool's ratio to the better of the other
# two, and fairness (the fewest / the most cycles any one thread did, per
# run; 1.0 is perfectly fair).
#
# usage: tools/compare-pools.sh [--duration S] [--repeat N] [--pool P]
#                               [--threads "1 8 64 256"] [--build-dir DIR]
#
# It uses the binaries in the build directory (default build/), building
# them first if they are missing (or those named by $CPOOL_BENCH,
# $COMPARE_APR, $COMPARE_MEMCACHED).  The comparison programs need the Debian
# packages libaprutil1-dev and libmemcached-dev; without them they are
# skipped with a message and the script still exits 0.  It exits 1 if
# cpool-bench itself cannot be built or a run fails.
set -euo pipefail

prog=compare-pools.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=compare/common.sh
. "$here/tools/compare/common.sh"
duration=3
repeat=3
pool=8
threads_list="1 8 64 256"
build_dir="$here/build"

usage() {
  cat <<'EOF'
usage: tools/compare-pools.sh [--duration S] [--repeat N] [--pool P]
                              [--threads "1 8 64 256"] [--build-dir DIR]
  defaults: --duration 3 --repeat 3 --pool 8 --threads "1 8 64 256"
  --build-dir build/.  CPOOL_BENCH, COMPARE_APR and COMPARE_MEMCACHED,
  when set, name the binaries to use instead of those in the build dir.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) is_count "${2:-}" || die_usage "bad --duration: ${2:-}"
      duration=$2; shift 2 ;;
    --repeat) is_count "${2:-}" || die_usage "bad --repeat: ${2:-}"
      repeat=$2; shift 2 ;;
    --pool) is_count "${2:-}" || die_usage "bad --pool: ${2:-}"
      pool=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die_usage "missing --threads value"
      for t in $2; do is_count "$t" || die_usage "bad --threads: $t"; done
      threads_list=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || die_usage "missing --build-dir value"
      build_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

bench="${CPOOL_BENCH:-$build_dir/tools/cpool-bench}"
apr="${COMPARE_APR:-$build_dir/tools/compare/compare-apr}"
memcached="${COMPARE_MEMCACHED:-$build_dir/tools/compare/compare-memcached}"

# Why a comparison program is missing, from the configure messages.
explain_missing() {
  if grep -q "cpool compare:" <<<"$configure_log"; then
    grep "cpool compare:" <<<"$configure_log" | sed "s/^-- /$prog: /" >&2
  elif [ $configured = 1 ]; then
    say "tools/compare is not part of the build (tools/CMakeLists.txt has no add_subdirectory(compare))"
  fi
}

have_apr=1 have_memcached=1 have_bench=1
build_target compare-apr "$apr" || have_apr=0
build_target compare-memcached "$memcached" || have_memcached=0
build_target cpool-bench "$bench" || have_bench=0
if [ $have_apr = 0 ] || [ $have_memcached = 0 ]; then
  explain_missing
  [ $have_apr = 0 ] && say "compare-apr not built; apr_reslist skipped"
  [ $have_memcached = 0 ] &&
    say "compare-memcached not built; memcached_pool skipped"
  if [ $have_apr = 0 ] && [ $have_memcached = 0 ]; then
    say "nothing to compare cpool with; skipping"
    exit 0
  fi
fi
if [ $have_bench = 0 ]; then
  say "cpool-bench could not be built; its column is empty"
fi

declare -A rps fair errs
tools=()
[ $have_bench = 1 ] && tools+=(cpool)
[ $have_apr = 1 ] && tools+=(apr)
[ $have_memcached = 1 ] && tools+=(memcached)

# Sets cmd to the command line of one run.
set_cmd() {
  local tool=$1 t=$2
  local common=(--threads "$t" --pool "$pool" --duration "$duration" --json)
  case "$tool" in
    cpool) cmd=("$bench" --no-io "${common[@]}" --quiet) ;;
    apr) cmd=("$apr" "${common[@]}") ;;
    memcached) cmd=("$memcached" "${common[@]}") ;;
  esac
}

failed=0
nthreads=$(wc -w <<<"$threads_list")
total=$((nthreads * repeat * ${#tools[@]}))
n=0
for t in $threads_list; do
  for ((r = 1; r <= repeat; r++)); do
    for tool in "${tools[@]}"; do
      n=$((n + 1))
      set_cmd "$tool" "$t"
      if ! line="$(run_summary "${cmd[@]}")" || [ -z "$line" ]; then
        failed=1
        continue
      fi
      ops=$(json_num rps "$line")
      min=$(json_num thread_ops_min "$line")
      max=$(json_num thread_ops_max "$line")
      ratio=$(calc "%.3f" "a / b" a="$min" b="$max")
      rps[$tool,$t]+="$ops "
      fair[$tool,$t]+="$ratio "
      e=$(json_num requests_failed "$line")
      errs[$tool,$t]+="${e:-0} "
      printf '%s: [%d/%d] %-9s threads %-4s run %d: %.0f ops/s, min/max %s\n' \
        "$prog" "$n" "$total" "$tool" "$t" "$r" "$ops" "$ratio" >&2
    done
  done
done

# Millions, two decimals; "-" when there is no figure.
mega() { calc "%.2f M" "v / 1e6" v="$1"; }
or_dash() { [ -n "$1" ] && echo "$1" || echo "-"; }

echo
echo "## --no-io checkout/checkin cycles: pool $pool, ${duration} s per run, median of $repeat"
echo
machine_line
echo
echo "| threads | cpool ops/s | apr_reslist ops/s | memcached_pool ops/s | cpool ÷ best other | fairness cpool | fairness apr | fairness memcached | cpool errors |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for t in $threads_list; do
  c=$(median "${rps[cpool,$t]:-}")
  a=$(median "${rps[apr,$t]:-}")
  m=$(median "${rps[memcached,$t]:-}")
  best=$(awk -v a="$a" -v m="$m" \
    'BEGIN { if (a != "" || m != "") print (a + 0 > m + 0 ? a : m) }')
  ratio=$(calc "%.2f×" "c / b" c="$c" b="$best")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" \
    "$(mega "$c")" "$(mega "$a")" "$(mega "$m")" "$ratio" \
    "$(or_dash "$(median "${fair[cpool,$t]:-}")")" \
    "$(or_dash "$(median "${fair[apr,$t]:-}")")" \
    "$(or_dash "$(median "${fair[memcached,$t]:-}")")" \
    "$(or_dash "$(median "${errs[cpool,$t]:-}")")"
done
echo
echo "fairness = fewest ÷ most cycles completed by one thread (median over runs);"
echo "cpool errors = failed checkouts per run (median), with cpool-bench's default"
echo "wait mode; the other two pools wait without a time limit."

if [ $have_bench = 0 ]; then
  exit 1
fi
exit $failed
