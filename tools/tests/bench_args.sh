#!/usr/bin/env bash
# bench_args.sh BENCH: cpool-bench's argument handling.  Every bad argument
# line below must exit 2 with one error line and then the usage on stderr,
# and nothing on stdout; the good ones must run and exit 0.
set -uo pipefail

bench=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0

# Port 1 (tcpmux) has no listener on a test machine: an unreachable target.
bad=(
  "--bogus"
  "--threads 0"
  "--threads"
  "--threads abc"
  "--threads 1025"
  "--threads=-3"
  "--pool 0"
  "--pool 65537"
  "--rate -5"
  "--rate 0"
  "--port 0"
  "--port 65536"
  "--port -1"
  "--mode sometimes"
  "--protocol http"
  "--size 0"
  "--size 1048577"
  "--duration 0"
  "--duration 5x"
  "--duration ms"
  "--timeout-ms 0"
  "--requests -1"
  "--chaos 0"
  "--handoff-us -2"
  "--handoff-us 10000001"
  "--handoff-us soon"
  "--handoff-max-us -1"
  "--handoff-max-us 10000001"
  "--handoff-max-us"
  "--quiet=yes"
  "positional"
  "-t 4"
  "--no-io --connect-per-request"
  "--unix $dir/a.sock --port 6379"
  "--chaos 1 --host 127.0.0.1 --port 1"
  "--builtin-server --host 10.0.0.1 --port 7000"
  "--host 127.0.0.1 --port 1 --duration 1"
  "--port 1 --connect-per-request --duration 1"
  "--unix $dir/nothing-here.sock --duration 1"
  # issue 14's options
  "--pipeline 0"
  "--pipeline 1025"
  "--pipeline many"
  "--pipeline"
  "--pipeline 2 --no-io"
  "--pipeline 1024 --size 1048576"
  "--keys 0"
  "--keys 10000001"
  "--keys -5"
  "--keys 200000"
  "--ratio 1"
  "--ratio :1"
  "--ratio 1:"
  "--ratio 0:0"
  "--ratio a:b"
  "--ratio 1:2:3"
  "--ratio 1:1000001"
  "--ratio 1:10 --protocol ping"
  "--ratio 1:10 --protocol echo"
  "--ratio 1:1 --no-io"
  "--command"
  "--command="
  "--command \"unterminated"
  "--command PING --protocol get"
  "--command PING --ratio 1:1"
  "--command PING --no-io"
  "--protocol memcache-get"
  "--protocol memcache-set --builtin-server --port 7000"
  "--protocol memcache"
  "--warmup 0"
  "--warmup 2h"
  "--warmup"
  "--warmup 1 --requests 100"
  "--csv --json"
  "--csv=yes"
  "--hdr"
  "--hdr="
  "--plot="
  "--shared-queue"
  "--shared-queue=yes"
)

for line in "${bad[@]}"; do
  read -r -a args <<<"$line"
  rc=0
  timeout -k 5 20 "$bench" "${args[@]}" >"$dir/out" 2>"$dir/err" || rc=$?
  first=$(head -n1 "$dir/err")
  second=$(sed -n 2p "$dir/err")
  if [ $rc -ne 2 ] || [[ "$first" != "cpool-bench: "* ]] ||
     [[ "$second" != "usage: cpool-bench"* ]] || [ -s "$dir/out" ]; then
    echo "FAIL: '$line': exit $rc, stderr starts:" >&2
    head -n3 "$dir/err" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  else
    echo "ok: '$line' -> $first"
  fi
done

good=(
  "--help"
  "--duration 300ms --quiet --no-io --threads 2 --pool 2"
  "--duration=300ms --threads=2 --pool=2 --mode=nowait --quiet --json"
  "--requests 100 --threads 1 --pool 1 --protocol set --size 1 --quiet"
  "--duration 300ms --quiet --no-io --threads 4 --pool 2 --handoff-us -1"
  "--duration 300ms --quiet --threads 4 --pool 2 --handoff-us 1000"
  "--duration 300ms --quiet --threads 4 --pool 2 --handoff-us 250 --handoff-max-us 250"
  "--duration 300ms --quiet --threads 2 --pool 2 --pipeline 4 --keys 10 --ratio 1:1"
  "--duration 300ms --quiet --rate 1000 --shared-queue --warmup 100ms --csv"
  "--requests 64 --pipeline 16 --threads 1 --pool 1 --quiet"
  "--duration 300ms --quiet --threads 1 --pool 1 --command PING --pipeline 2"
)
for line in "${good[@]}"; do
  read -r -a args <<<"$line"
  rc=0
  timeout -k 5 20 "$bench" "${args[@]}" >"$dir/out" 2>"$dir/err" || rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$dir/out" ]; then
    echo "FAIL: '$line': exit $rc" >&2
    sed 's/^/    /' "$dir/err" >&2
    failures=$((failures + 1))
  else
    echo "ok: '$line' -> exit 0"
  fi
done

# --metrics: the pool's stats in the Prometheus text format after the run.
rc=0
timeout 20 "$bench" --duration 300ms --quiet --no-io --threads 2 --pool 2 \
  --metrics >"$dir/out" 2>"$dir/err" || rc=$?
if [ $rc -ne 0 ] ||
   ! grep -qx '# TYPE cpool_hold_seconds histogram' "$dir/out" ||
   ! grep -Eqx 'cpool_checkouts_total [1-9][0-9]*' "$dir/out" ||
   ! grep -Eqx 'cpool_connect_seconds_count 2' "$dir/out"; then
  echo "FAIL: '--metrics': exit $rc, stdout starts:" >&2
  head -n5 "$dir/out" | sed 's/^/    /' >&2
  failures=$((failures + 1))
else
  echo "ok: '--metrics' -> Prometheus text"
fi

[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
