#!/usr/bin/env bash
# bench_man.sh BENCH MANPAGE: every long flag that `BENCH --help` names
# appears in the man page, and every flag the man page names is one of
# --help's: the two cannot drift apart.  The page must also be valid roff
# for man(1) when groff is installed.
set -euo pipefail

bench=$1 man=$2
fail() { echo "bench_man: $*" >&2; exit 1; }
flags() { grep -o -- '--[a-z][a-z-]*[a-z]' | sort -u; }

help=$("$bench" --help | flags)
# In roff a flag is written \-\-name, often inside \fB...\fR.
page=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man" | flags)
[ -n "$help" ] || fail "no flags in --help"
missing=$(comm -23 <(echo "$help") <(echo "$page"))
extra=$(comm -13 <(echo "$help") <(echo "$page"))
[ -z "$missing" ] || fail "in --help but not in $man: $(echo $missing)"
[ -z "$extra" ] || fail "in $man but not in --help: $(echo $extra)"
if command -v groff >/dev/null; then
  warnings=$(groff -man -Tutf8 -ww -z "$man" 2>&1) || fail "groff failed"
  [ -z "$warnings" ] || fail "groff: $warnings"
fi
echo "bench_man: ok ($(echo "$help" | wc -l) flags)"
