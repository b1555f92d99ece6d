#!/usr/bin/env bash
# bench_endpoints.sh BENCH: cpool-bench --endpoints.  Bad values exit 2
# with one error line and the usage on stderr, nothing on stdout; a run
# over a live redis-server and a dead port works (the dead one's slots
# move to the live one) and its text and JSON summaries give each
# endpoint's figures.
set -uo pipefail

bench=$1
prog=bench_endpoints
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir=$(mktemp -d)
workdir=$dir server_pid="" port=""
# shellcheck source=../compare/common.sh
. "$here/tools/compare/common.sh"
failures=0
trap 'stop_server; rm -rf "$dir"' EXIT

# Port 1 (tcpmux) has no listener on a test machine.
bad=(
  "--endpoints"
  "--endpoints="
  "--endpoints 127.0.0.1:1,foo --duration 1"
  "--endpoints 127.0.0.1:1,127.0.0.1:1 --duration 1"
  "--endpoints 127.0.0.1:0 --duration 1"
  "--endpoints 127.0.0.1:1 --port 6379"
  "--endpoints 127.0.0.1:1 --unix $dir/a.sock"
  "--endpoints 127.0.0.1:1 --builtin-server"
  "--endpoints 127.0.0.1:1 --connect-per-request"
  "--endpoints 127.0.0.1:1 --protocol get"
  "--endpoints 127.0.0.1:1 --duration 1"
)
for line in "${bad[@]}"; do
  read -r -a args <<<"$line"
  rc=0
  timeout 20 "$bench" "${args[@]}" >"$dir/out" 2>"$dir/err" || rc=$?
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
# The pool's message names the entry.
timeout 20 "$bench" --endpoints 127.0.0.1:1,foo >/dev/null 2>"$dir/err"
grep -q 'entry 2 "foo": no port' "$dir/err" ||
  { echo "FAIL: the bad entry is not named" >&2; failures=$((failures + 1)); }

if ! command -v redis-server >/dev/null; then
  echo "FAIL: redis-server is not installed" >&2
  exit 1
fi
# On a free port (common.sh: another port if one is taken; a random port
# of our own once collided with another test's server under ctest -j2).
start_server || exit 1
dead=$((port + 1))
# A port nothing listens on (another test's server might).
while (exec 3<>"/dev/tcp/127.0.0.1/$dead") 2>/dev/null; do
  dead=$((dead + 1))
done
list="127.0.0.1:$port,127.0.0.1:$dead"
if ! timeout 30 "$bench" --endpoints "$list" --duration 300ms --threads 2 \
     --pool 4 --quiet >"$dir/text" 2>"$dir/err"; then
  echo "FAIL: text run" >&2; cat "$dir/err" >&2; failures=$((failures + 1))
fi
grep -q "endpoints  *127.0.0.1:$port: 4 slots connected" "$dir/text" &&
  grep -q "127.0.0.1:$dead: 0 slots connected, 0 connects, [1-9]" "$dir/text" ||
  { echo "FAIL: text summary:" >&2; cat "$dir/text" >&2
    failures=$((failures + 1)); }
if ! timeout 30 "$bench" --endpoints "$list" --duration 300ms --threads 2 \
     --pool 4 --quiet --json >"$dir/json" 2>"$dir/err"; then
  echo "FAIL: json run" >&2; cat "$dir/err" >&2; failures=$((failures + 1))
fi
tail -n1 "$dir/json" | grep -q "\"endpoints\":\[{\"addr\":\"127.0.0.1:$port\",\"connected\":4,.*},{\"addr\":\"127.0.0.1:$dead\",\"connected\":0,\"connects\":0,\"failures\":[1-9]" ||
  { echo "FAIL: json summary:" >&2; tail -n1 "$dir/json" >&2
    failures=$((failures + 1)); }
[ $failures -eq 0 ] && echo "ok: runs over $list" 
[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
