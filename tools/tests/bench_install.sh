#!/usr/bin/env bash
# bench_install.sh BUILD_DIR BINDIR MANDIR: `cmake --install BUILD_DIR
# --prefix P` into a fresh P puts an executable P/BINDIR/cpool-bench that
# runs (--help) and the man page P/MANDIR/man1/cpool-bench.1.
set -euo pipefail

build=$1 bindir=$2 mandir=$3
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "bench_install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 ||
  { cat "$prefix.log" >&2; rm -f "$prefix.log"; fail "cmake --install failed"; }
rm -f "$prefix.log"
bin="$prefix/$bindir/cpool-bench" man="$prefix/$mandir/man1/cpool-bench.1"
[ -x "$bin" ] || fail "no executable $bin"
"$bin" --help | grep -q '^usage: cpool-bench' || fail "$bin --help"
[ -s "$man" ] || fail "no man page $man"
grep -q '^\.TH CPOOL-BENCH 1' "$man" || fail "$man has no .TH CPOOL-BENCH 1"
echo "bench_install: ok ($bin, $man)"
