#!/usr/bin/env bash
# One entry point for people and CI.  On a fresh Debian machine:
#   tools/run.sh bench [cpool-bench flags...]   build, then run cpool-bench
#                                               against its built-in server
#   tools/run.sh test                           build, then run every test
# CPOOL_SANITIZE=asan|tsan selects a sanitizer build (build-asan/, build-tsan/).
# Missing Debian packages are installed with apt-get (as root, or via sudo).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"
[ $# -gt 0 ] && shift

packages=(cmake gcc make pkg-config libbsd-dev libcunit1-dev redis-server
          redis-tools memcached iproute2 procps spin)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "run.sh: installing ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
}

build() {
  local san="${CPOOL_SANITIZE:-}" dir="$here/build" flags=""
  case "$san" in
    "") ;;
    asan) dir="$here/build-asan"; flags="address,undefined" ;;
    tsan) dir="$here/build-tsan"; flags="thread" ;;
    *) echo "run.sh: CPOOL_SANITIZE must be asan or tsan" >&2; exit 2 ;;
  esac
  cmake -S "$here" -B "$dir" -DCPOOL_WERROR=ON -DCPOOL_SANITIZE="$flags" \
    -DCPOOL_BUILD_TESTS=ON -DCPOOL_BUILD_TOOLS=ON -DCPOOL_BUILD_EXAMPLES=ON \
    ${CPOOL_CMAKE_ARGS:-} >/dev/null
  cmake --build "$dir" -j "$(nproc)" >&2
  BUILD_DIR="$dir"
}

case "$cmd" in
  bench)
    install_missing
    build
    exec "$BUILD_DIR/tools/cpool-bench" "$@"
    ;;
  test)
    install_missing
    build
    # ThreadSanitizer in gcc 12 cannot map its shadow with the kernel's
    # high ASLR entropy; run the suite without randomisation under it.
    runner=()
    if [ "${CPOOL_SANITIZE:-}" = tsan ] && command -v setarch >/dev/null; then
      runner=(setarch "$(uname -m)" -R)
    fi
    cd "$BUILD_DIR"
    "${runner[@]}" ctest --output-on-failure -j "${CPOOL_TEST_JOBS:-2}" \
      --timeout "${CPOOL_TEST_TIMEOUT:-600}" "$@"
    ;;
  *)
    echo "usage: tools/run.sh bench [cpool-bench flags] | tools/run.sh test [ctest flags]" >&2
    exit 2
    ;;
esac
