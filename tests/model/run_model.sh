#!/usr/bin/env bash
# Verify a model in tests/model (lease.pml by default, or watch.pml)
# exhaustively with spin (see docs/model.md).
#   run_model.sh [--mutant] [path/to/lease.pml] [-DNT=3 ...]
# Exits 0 if the model verifies; with --mutant, 0 only if spin finds a
# violation in the mutant (so that the check is known to be able to fail).
set -uo pipefail

mutant=0
if [ "${1:-}" = "--mutant" ]; then mutant=1; shift; fi
pml="${1:-$(dirname "$0")/lease.pml}"
[ $# -gt 0 ] && shift
defs=("$@")

if ! command -v spin >/dev/null 2>&1; then
  echo "run_model: FAIL: spin not found (tools/run.sh installs the Debian package spin)" >&2
  exit 1
fi
[ -r "$pml" ] || { echo "run_model: FAIL: cannot read $pml" >&2; exit 1; }
pml="$(cd "$(dirname "$pml")" && pwd)/$(basename "$pml")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$pml" "$tmp/lease.pml" || exit 1
cd "$tmp" || exit 1
pml=lease.pml
[ $mutant -eq 1 ] && defs+=(-DMUTANT)

if ! spin "${defs[@]}" -a "$pml" >spin.log 2>&1; then
  echo "run_model: FAIL: spin -a failed:" >&2; cat spin.log >&2; exit 1
fi
if ! cc -O2 -DSAFETY -w -o pan pan.c >cc.log 2>&1; then
  echo "run_model: FAIL: cc pan.c failed:" >&2; cat cc.log >&2; exit 1
fi
start=$(date +%s.%N)
./pan -m1000000 >pan.log 2>&1
end=$(date +%s.%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
states=$(awk '/states, stored/ { print $1; exit }' pan.log)
errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -1)

if [ $mutant -eq 1 ]; then
  if [ "${errors:-0}" != "0" ]; then
    why=$(spin -t "${defs[@]}" "$pml" 2>/dev/null | grep -m1 -o "violated: .*")
    [ -n "$why" ] || why=$(grep -m1 -oE "assertion violated|invalid end state" pan.log)
    echo "run_model: OK: the mutant fails as it must (${why}; $states states, ${secs}s)"
    exit 0
  fi
  echo "run_model: FAIL: the mutant verified: the model cannot catch the bad ordering" >&2
  cat pan.log >&2
  exit 1
fi

if [ "$errors" != "0" ]; then
  echo "run_model: FAIL: spin found $errors error(s); counterexample:" >&2
  grep -m3 -oE "assertion violated|invalid end state|errors: [0-9]+" pan.log >&2
  spin -t -p "${defs[@]}" "$pml" 2>&1 | grep -E "violated|proc +[0-9]+ \(caller" | tail -40 >&2
  exit 1
fi
if grep -q "max search depth too small" pan.log; then
  echo "run_model: FAIL: search truncated by depth (raise -m)" >&2
  exit 1
fi
if ! grep -q "Full statespace search" pan.log; then
  echo "run_model: FAIL: not a full state-space search:" >&2; cat pan.log >&2
  exit 1
fi
echo "run_model: OK: verified, errors: 0, $states states, ${secs}s (${defs[*]:-defaults})"
exit 0
