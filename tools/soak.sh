#!/usr/bin/env bash
# Soak test: cpool-bench against its built-in server with chaos (every 2 s
# the server stops listening, resets every connection, and listens again),
# for a given time, watched from outside.
#
#   tools/soak.sh [SECONDS]          default 60
#
# Environment:
#   CPOOL_BENCH=path     the cpool-bench to run (default build/tools/cpool-bench,
#                        built first if missing; e.g. build-asan/tools/...)
#   SOAK_KEEP=1          keep the run's files (JSON, stderr, fd samples)
#
# Fails (exit 1) on:
#   hang       the bench is still running SECONDS + 30 s after it started
#              (it is killed);
#   crash      a non-zero exit, a signal, or a sanitizer report on stderr;
#   fd leak    fds_end > fds_start when the bench reports them in its
#              summary; otherwise the bench process's descriptor count,
#              sampled every 200 ms from /proc/PID/fd, settles higher at the
#              end of the run than at its start (the most frequent count of
#              the first and of the last third, so that the short dips and
#              peaks of each fault do not count);
#   lost slot  fewer connections up than the pool has, both in the final
#              summary and in every one of the last 3 one-second intervals
#              (each fault takes the slots down for a moment; a lost slot
#              never comes back); or, when the bench reports slots_idle
#              after settling, fewer idle slots than the pool has;
#   errors that chaos does not explain (bad_reply, checked_out, overload,
#              other), no request served, or no fault injected.
# Prints what it survived: faults injected, reconnects, requests ok, errors
# by kind, descriptors and slots.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration="${1:-60}"
case "$duration" in
  ''|*[!0-9]*) echo "usage: tools/soak.sh [SECONDS]" >&2; exit 2 ;;
esac
[ "$duration" -ge 4 ] || { echo "soak: SECONDS must be at least 4" >&2; exit 2; }

pool=8
threads=16
chaos_s=2
grace_s=30

bench="${CPOOL_BENCH:-$here/build/tools/cpool-bench}"
if [ ! -x "$bench" ] && [ -z "${CPOOL_BENCH:-}" ]; then
  echo "soak: building cpool-bench in build/" >&2
  cmake -S "$here" -B "$here/build" -DCPOOL_BUILD_TOOLS=ON >/dev/null &&
    cmake --build "$here/build" -j "$(nproc)" --target cpool-bench >&2 ||
    { echo "soak: FAIL: cannot build cpool-bench" >&2; exit 1; }
fi
[ -x "$bench" ] || { echo "soak: FAIL: no cpool-bench at $bench" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/cpool-soak.XXXXXX")"
cleanup() {
  if [ -n "${bench_pid:-}" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -KILL "$bench_pid" 2>/dev/null
  fi
  if [ "${SOAK_KEEP:-0}" = 1 ]; then
    echo "soak: files kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

failures=()
fail() { failures+=("$*"); }

# ---- run, with a watchdog and an fd sampler --------------------------------

"$bench" --chaos "$chaos_s" --duration "$duration" --threads "$threads" \
  --pool "$pool" --mode wait --timeout-ms 1000 --json --quiet \
  >"$work/out.json" 2>"$work/err.txt" &
bench_pid=$!

start=$SECONDS
deadline=$((start + duration + grace_s))
hung=0
: >"$work/fds.txt"
# One sample every 200 ms; bounded by the deadline.
while kill -0 "$bench_pid" 2>/dev/null; do
  if [ $SECONDS -ge $deadline ]; then
    hung=1
    kill -KILL "$bench_pid" 2>/dev/null
    break
  fi
  n=$(ls "/proc/$bench_pid/fd" 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] && echo "$((SECONDS - start)) $n" >>"$work/fds.txt"
  sleep 0.2
done
wait "$bench_pid"
rc=$?
bench_pid=
elapsed=$((SECONDS - start))

# ---- verdicts ----------------------------------------------------------------

if [ $hung = 1 ]; then
  fail "hang: cpool-bench still running after $((duration + grace_s)) s (killed)"
elif [ $rc -ge 128 ]; then
  fail "crash: cpool-bench killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"
elif [ $rc -ne 0 ]; then
  fail "crash: cpool-bench exited with status $rc"
fi
if grep -qE 'Sanitizer|runtime error:|LeakSanitizer' "$work/err.txt"; then
  fail "crash: a sanitizer report on stderr (first lines below)"
  grep -m 5 -E 'Sanitizer|runtime error:' "$work/err.txt" | sed 's/^/    /' >&2
fi

summary="$(grep '"type":"summary"' "$work/out.json" | tail -1)"
# A number field of the summary (names are unique in it, "io" included:
# "no_io" has no quote before "io").
field() { sed -n 's/.*"'"$1"'":\(-\{0,1\}[0-9][0-9.]*\).*/\1/p' <<<"$summary" | head -1; }

if [ -z "$summary" ]; then
  fail "no summary from cpool-bench"
  ok=0 failed=0 faults=0 reconnects=0 slots=-1 rps=0
  declare -A err=()
else
  ok=$(field requests_ok)
  failed=$(field requests_failed)
  rps=$(field rps)
  faults=$(field faults_injected)
  reconnects=$(field reconnects)
  disconnects=$(field disconnects)
  connect_failures=$(field connect_failures)
  slots=$(field slots_connected)
  declare -A err=()
  for k in closed timed_out io bad_reply checked_out overload other; do
    err[$k]=$(field "$k")
    err[$k]=${err[$k]:-0}
  done
  [ "${ok:-0}" -gt 0 ] || fail "no request succeeded"
  expected_faults=$((duration / chaos_s - 1))
  [ "${faults:-0}" -ge "$expected_faults" ] ||
    fail "only ${faults:-0} faults injected in $duration s (expected >= $expected_faults): is --chaos working?"
  for k in bad_reply checked_out overload other; do
    [ "${err[$k]}" -eq 0 ] || fail "errors that chaos does not explain: $k=${err[$k]}"
  done
  # Lost slot: not all up at the end, nor in any of the last 3 intervals.
  best=$(grep '"type":"interval"' "$work/out.json" | tail -3 |
    sed -n 's/.*"slots_connected":\(-\{0,1\}[0-9]*\).*/\1/p' | sort -n | tail -1)
  if [ "${slots:--1}" -lt "$pool" ] && [ "${best:--1}" -lt "$pool" ]; then
    fail "lost slot: $slots of $pool connections up at the end, at most ${best:-?} in the last 3 s"
  fi
  # If the bench reports its slots idle after settling, all must be.
  slots_idle=$(field slots_idle)
  if [ -n "$slots_idle" ] && [ "$slots_idle" -ne "$pool" ]; then
    fail "lost slot: $slots_idle of $pool slots idle after the run settled"
  fi
fi

# Descriptors: the bench may report them itself (fds_start, fds_end);
# otherwise compare the settled counts of the first and last thirds.
fds_start=$(field fds_start)
fds_end=$(field fds_end)
fd_note=""
if [ -n "$fds_start" ] && [ -n "$fds_end" ]; then
  fd_note="fds $fds_start at start, $fds_end at end (reported by cpool-bench)"
  [ "$fds_end" -le "$fds_start" ] ||
    fail "fd leak: $fds_start descriptors at start, $fds_end at end"
else
  nsamples=$(wc -l <"$work/fds.txt")
  if [ "$nsamples" -lt 6 ]; then
    fail "too few descriptor samples ($nsamples)"
  else
    # The most frequent count among samples taken after the first second.
    settled() { awk -v from="$1" -v to="$2" 'NR > from && NR <= to { c[$2]++ }
      END { best = -1; for (v in c) if (c[v] > best || (c[v] == best && v + 0 < pick)) { best = c[v]; pick = v + 0 } print pick }' "$work/fds.txt"; }
    third=$((nsamples / 3))
    first=$(settled 5 $((third > 5 ? third : 6)))
    last=$(settled $((nsamples - third)) "$nsamples")
    min=$(awk '{print $2}' "$work/fds.txt" | sort -n | head -1)
    max=$(awk '{print $2}' "$work/fds.txt" | sort -n | tail -1)
    fd_note="fds settled at $first early, $last late (range $min..$max over $nsamples samples)"
    [ "$last" -le "$first" ] ||
      fail "fd leak: the descriptor count settled at $first early in the run, at $last at its end"
  fi
fi

# ---- report ---------------------------------------------------------------------

echo "soak: ${elapsed} s of cpool-bench --chaos ${chaos_s} (${threads} threads, pool ${pool}, wait 1000 ms)"
if [ -n "$summary" ]; then
  echo "  faults injected   $faults"
  echo "  reconnects        $reconnects (disconnects $disconnects, failed connects $connect_failures)"
  echo "  requests ok       $ok (${rps} /s), failed $failed"
  echo "  errors by kind    closed ${err[closed]}, timed_out ${err[timed_out]}, io ${err[io]}, bad_reply ${err[bad_reply]}, checked_out ${err[checked_out]}, overload ${err[overload]}, other ${err[other]}"
  echo "  slots             $slots of $pool up at the end, at best ${best:-?} in the last 3 s"
fi
[ -n "$fd_note" ] && echo "  descriptors       $fd_note"
if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do echo "soak: FAIL: $f"; done
  if [ -s "$work/err.txt" ]; then
    echo "  cpool-bench stderr (last lines):"
    tail -5 "$work/err.txt" | sed 's/^/    /'
  fi
  exit 1
fi
echo "soak: PASS"
