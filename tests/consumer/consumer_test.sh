#!/usr/bin/env bash
# Builds tests/consumer/app the ways a user's project would use cpool, and
# runs it (it brings its own loopback echo listener).
#
#   consumer_test.sh MODE BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER [SANITIZE]
#
# MODE install:          cmake --install BUILD_DIR --prefix WORK_DIR/prefix
#      find_package:     out-of-tree CMake project, find_package(cpool CONFIG)
#                        through CMAKE_PREFIX_PATH=WORK_DIR/prefix
#      pkg_config:       the app's Makefile, cc ... $(pkg-config --static
#                        --cflags --libs cpool) through PKG_CONFIG_PATH, and
#                        again with the plain $(pkg-config --cflags --libs
#                        cpool), which must link a static libcpool.a too
#      shared_object:    consumer.c as a shared object with the installed
#                        libcpool linked in (plain pkg-config form), loaded
#                        by dlopen_host.c with dlopen() and run
#      add_subdirectory: the CMake project again, with add_subdirectory() of
#                        SOURCE_DIR instead of an installed cpool
#
# SANITIZE is the build's CPOOL_SANITIZE ("address,undefined", "thread" or
# empty).  A sanitized libcpool.a needs the sanitizer runtime at link time,
# and cpool does not export its sanitizer flags, so the consumer is built
# with the same -fsanitize flags, as a user testing under sanitizers would.
set -euo pipefail

[ $# -ge 5 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
mode=$1 build=$2 src=$3 work=$4 cc=$5 san=${6:-}
app="$src/tests/consumer/app"
prefix="$work/prefix"
out="$work/$mode"

cflags="-O1 -g" ldflags=""
if [ -n "$san" ]; then
  cflags="$cflags -fsanitize=$san -fno-omit-frame-pointer"
  ldflags="-fsanitize=$san"
fi

say() { echo "consumer_test[$mode]: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
run() { echo "+ $*" >&2; "$@"; }

# The directory holding cpool.pc, and the library directory above it.
pc_dir() {
  local pc
  pc=$(find "$prefix" -name cpool.pc -print -quit)
  [ -n "$pc" ] || die "no cpool.pc under $prefix (did consumer_install run?)"
  dirname "$pc"
}

# ThreadSanitizer (gcc 12) cannot map its shadow under high ASLR entropy.
runner=()
if [ "$san" = thread ] && command -v setarch >/dev/null; then
  runner=(setarch "$(uname -m)" -R)
fi

# Runs the consumer; a shared libcpool (BUILD_SHARED_LIBS=ON) installed in
# the prefix is found through LD_LIBRARY_PATH, as a user would set it.
run_consumer() {
  local libdir
  libdir=$(dirname "$(pc_dir)")
  LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    run "${runner[@]}" "$out/consumer" "$mode"
}

cmake_consumer() {
  rm -rf "$out"
  run cmake -S "$app" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags" \
    "$@"
  run cmake --build "$out" -j 2
}

case "$mode" in
  install)
    rm -rf "$prefix"
    run cmake --install "$build" --prefix "$prefix"
    libdir=$(dirname "$(pc_dir)")
    for f in "$prefix/include/cpool.h" "$libdir/cmake/cpool/cpoolConfig.cmake" \
             "$libdir/cmake/cpool/cpoolConfigVersion.cmake" \
             "$libdir/cmake/cpool/cpoolTargets.cmake"; do
      [ -f "$f" ] || die "$f was not installed"
    done
    cmp "$src/include/cpool.h" "$prefix/include/cpool.h" ||
      die "the installed cpool.h differs from include/cpool.h"
    [ -f "$libdir/libcpool.a" ] || [ -e "$libdir/libcpool.so" ] ||
      die "no libcpool.a or libcpool.so in $libdir"
    (cd "$prefix" && find . -type f -o -type l | sort) >&2
    ;;

  find_package)
    cmake_consumer -DCMAKE_PREFIX_PATH="$prefix"
    found=$(sed -n 's/^cpool_DIR:PATH=//p' "$out/CMakeCache.txt")
    case "$found" in
      "$prefix"/*) say "find_package(cpool) used $found" ;;
      *) die "find_package(cpool) found '$found', not the one in $prefix" ;;
    esac
    run_consumer
    ;;

  pkg_config)
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH="$(pc_dir)"
    flags=$(run pkg-config --static --cflags --libs cpool) ||
      die "pkg-config cannot use cpool.pc"
    say "pkg-config --static --cflags --libs cpool: $flags"
    plain=$(run pkg-config --cflags --libs cpool)
    say "pkg-config --cflags --libs cpool: $plain"
    for want in "-I$prefix/include" -lcpool -lbsd -pthread; do
      case " $flags " in
        *" $want "*) ;;
        *) die "'$want' missing from the pkg-config --static output" ;;
      esac
      # Without --static too, when only libcpool.a is installed: nothing
      # else would bring libbsd and the threads library to the link.
      if [ ! -e "$(dirname "$(pc_dir)")/libcpool.so" ]; then
        case " $plain " in
          *" $want "*) ;;
          *) die "'$want' missing from the plain pkg-config output" ;;
        esac
      fi
    done
    version=$(sed -n 's/^#define CPOOL_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' \
              "$src/include/cpool.h" | paste -sd.)
    [ "$(pkg-config --modversion cpool)" = "$version" ] ||
      die "cpool.pc says version $(pkg-config --modversion cpool), not $version"
    rm -rf "$out" && mkdir -p "$out/plain"
    run make -C "$out" -f "$app/Makefile" srcdir="$app" CC="$cc" \
      CFLAGS="$cflags" LDFLAGS="$ldflags"
    run_consumer
    run make -C "$out/plain" -f "$app/Makefile" srcdir="$app" CC="$cc" \
      CFLAGS="$cflags" LDFLAGS="$ldflags" PKG_CONFIG_STATIC=
    out="$out/plain" run_consumer
    ;;

  shared_object)
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH="$(pc_dir)"
    rm -rf "$out" && mkdir -p "$out"
    # -z defs: the object must carry all of cpool it uses, or name the
    # libraries that do (not under sanitizers: their runtime is the
    # program's).
    defs="-Wl,-z,defs"
    [ -z "$san" ] || defs=""
    # shellcheck disable=SC2046,SC2086 # the flags are words
    run "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags -fPIC -shared \
      -DCONSUMER_PLUGIN -o "$out/libconsumer_plugin.so" "$app/consumer.c" \
      $(pkg-config --cflags --libs cpool) $ldflags $defs ||
      die "cannot link libcpool into a shared object"
    # shellcheck disable=SC2086
    run "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags \
      -o "$out/dlopen_host" "$app/dlopen_host.c" $ldflags -ldl
    libdir=$(dirname "$(pc_dir)")
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      run "${runner[@]}" "$out/dlopen_host" "$out/libconsumer_plugin.so" "$mode"
    ;;

  add_subdirectory)
    cmake_consumer -DCPOOL_SOURCE_DIR="$src"
    # cpool as a subproject builds only the library: no tests, no tools.
    for d in tests tools docs; do
      [ ! -d "$out/cpool/$d" ] || die "the subproject built cpool's $d/"
    done
    # A shared libcpool is found through the build tree's RPATH.
    run "${runner[@]}" "$out/consumer" "$mode"
    ;;

  *) die "unknown mode '$mode'" ;;
esac
say "passed"
