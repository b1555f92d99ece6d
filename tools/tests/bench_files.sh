#!/usr/bin/env bash
# bench_files.sh BENCH: what cpool-bench writes besides its summary, from a
# pipelined run with a warmup against the built-in server:
#  --csv: one header line and one line of as many fields, requests_ok > 0;
#  --hdr: HdrHistogram's percentile distribution (the column header, rising
#    percentiles, the 100% line, the #[Mean/#[Max/#[Buckets footer, and a
#    total count within a few batches of the CSV's requests_ok);
#  --plot: an SVG with both plots' paths (tools/tests/check_svg.py).
set -euo pipefail

bench=$1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "bench_files: $*" >&2; exit 1; }

rc=0
"$bench" --duration 2 --warmup 500ms --pipeline 4 --quiet --csv \
  --hdr "$dir/lat.hdr" --plot "$dir/plot.svg" >"$dir/out" 2>"$dir/err" || rc=$?
[ $rc -eq 0 ] || { cat "$dir/err" >&2; fail "exit status $rc"; }

# CSV
[ "$(wc -l <"$dir/out")" -eq 2 ] || fail "CSV is not two lines: $(cat "$dir/out")"
header=$(sed -n 1p "$dir/out") line=$(sed -n 2p "$dir/out")
[[ "$header" == protocol,threads,pool,pipeline,* ]] || fail "CSV header: $header"
nh=$(awk -F, '{print NF}' <<<"$header") nl=$(awk -F, '{print NF}' <<<"$line")
[ "$nh" -eq "$nl" ] || fail "CSV: $nh header fields, $nl values"
col() { awk -F, -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
  NR == 2 { print $c }' "$dir/out"; }
ok=$(col requests_ok)
[ "$ok" -gt 0 ] || fail "CSV requests_ok '$ok'"
[ "$(col pipeline)" = 4 ] || fail "CSV pipeline '$(col pipeline)'"
[ "$(col requests_failed)" = 0 ] || fail "CSV requests_failed"
elapsed=$(col elapsed_s)
awk -v e="$elapsed" 'BEGIN { exit !(e > 1.9 && e < 2.3) }' ||
  fail "elapsed_s $elapsed: the warmup is not left out of the 2 s"

# HdrHistogram text
hdr="$dir/lat.hdr"
[ "$(sed -n 1p "$hdr")" = "       Value     Percentile TotalCount 1/(1-Percentile)" ] ||
  fail "HDR header: $(sed -n 1p "$hdr")"
[ -z "$(sed -n 2p "$hdr")" ] || fail "HDR: no blank line after the header"
awk 'NR > 2 && !/^#/ {
       if (NF != 4 && NF != 3) { print "bad line " NR ": " $0; exit 1 }
       if ($2 < prev || $1 < vprev) { print "not rising at line " NR; exit 1 }
       prev = $2; vprev = $1; last = $0; n++ }
     END { if (n < 10) { print "only " n " lines"; exit 1 }
           split(last, f, " "); if (f[2] != "1.000000000000") { print "last: " last; exit 1 } }' \
  "$hdr" || fail "HDR lines"
grep -q '^#\[Mean    = *[0-9.]*, StdDeviation   = *[0-9.]*\]$' "$hdr" || fail "HDR: no #[Mean"
grep -q '^#\[Buckets = *[0-9]*, SubBuckets     = *[0-9]*\]$' "$hdr" || fail "HDR: no #[Buckets"
total=$(sed -n 's/^#\[Max     = *[0-9.]*, Total count    = *\([0-9]*\)\]$/\1/p' "$hdr")
# The warmup's snapshot is taken while the threads run, and a thread's
# requests at the mark are those its histogram held as it was merged, so
# the two agree exactly.  (When the mark read each thread's count apart
# from its histogram they were up to 328 apart under TSan.)  Without the
# warmup left out they would be a fifth apart.
[ -n "$total" ] && [ "$total" -eq "$ok" ] ||
  fail "HDR total count '$total', CSV requests_ok $ok"

# SVG
python3 "$here/check_svg.py" "$dir/plot.svg" || fail "SVG"
grep -q 'id="warmup-end"' "$dir/plot.svg" || fail "SVG: no warmup line"
echo "bench_files: ok ($ok requests; $(grep -vc '^#' "$hdr") HDR lines)"
