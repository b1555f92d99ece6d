#!/usr/bin/env bash
# Release check (issue 12, items 1 and 7a): the README's commands on a fresh,
# minimal Debian.  Not run by CI (it takes minutes and needs root).
#
#   tools/check-minimal-debian.sh [readme|install|all]      (default: all)
#
# Builds a `debootstrap --variant=minbase bookworm` chroot once and caches it
# as a tarball under /var/tmp/cpool-minbase (CPOOL_CHROOT_CACHE overrides);
# every check unpacks a pristine copy of it, so nothing one run installs is
# seen by the next.  The Debian mirror is the one apt on this machine uses
# (CPOOL_DEBIAN_MIRROR overrides); downloaded .debs are kept in the cache
# and bind-mounted at the chroot's /var/cache/apt/archives, so reruns are
# quick.  The tree checked is `git archive` of HEAD plus uncommitted changes
# to tracked files (`git stash create`); untracked files are not copied.
#
# readme   tools/run.sh bench --duration 1 and tools/run.sh test, as root,
#          with nothing installed beforehand: run.sh must install it all.
# install  only cmake gcc make libc6-dev libbsd-dev pkg-config (no CUnit,
#          no redis), then the README's "Use it from your project" lines:
#          the cmake one-liner into /opt/cpool, and docs/examples/
#          echo_client.c built with `pkg-config --cflags --libs cpool`, with
#          and without --static.
#
# Prints one PASS/FAIL line per check and exits non-zero if any failed.
# /proc, /sys, /dev, /dev/pts and /dev/shm are mounted in the chroot and
# unmounted on exit, whatever happens.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-all}"
suite=bookworm
cache="${CPOOL_CHROOT_CACHE:-/var/tmp/cpool-minbase}"
base="$cache/$suite-minbase.tar"
debs="$cache/apt-archives"

say() { echo "check-minimal-debian: $*" >&2; }
die() { say "$*"; exit 2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mount)"
case "$what" in readme | install | all) ;; *) die "usage: $0 [readme|install|all]" ;; esac

# The first Debian (not security) mirror in apt's sources, deb822 or one-line.
mirror() {
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n' |
      grep -v -e security -e '^$' | grep '/debian/*$' | head -n1 || true)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      2>/dev/null | awk '$1 == "deb" && $2 !~ /security/ && $2 ~ /\/debian\/?$/ \
      { print $2; exit }' || true)
  echo "${CPOOL_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

build_base() {
  [ -s "$base" ] && return 0
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends debootstrap
  local m tmp
  m=$(mirror)
  tmp="$cache/build.$$"
  say "debootstrap --variant=minbase $suite from $m (once; cached in $base)"
  rm -rf "$tmp" && mkdir -p "$tmp"
  debootstrap --variant=minbase "$suite" "$tmp" "$m" >&2
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  tar -C "$tmp" -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp"
}

# The chroot in use, and what is mounted in it (unmounted by cleanup).
root=""
mounts=()
cleanup() {
  local i m
  # What the tests mounted (ip netns: /run/netns and below), deepest first,
  # then ours in reverse order.
  if [ -n "$root" ]; then
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done < <(awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts |
             grep -vxF -f <(printf '%s\n' "${mounts[@]}") | sort -r)
  fi
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true
  done
  mounts=()
  if [ -n "$root" ] && ! grep -qF " $root/" /proc/mounts &&
     ! grep -qF " $root " /proc/mounts; then
    rm -rf "$root"
  fi
  root=""
}
# The chroot's commands run in a process group of their own (setsid), so
# that an interrupted check stops them too, before the unmounting.
child=""
stop_child() {
  [ -n "$child" ] && kill -TERM -- "-$child" 2>/dev/null
  [ -n "$child" ] && wait "$child" 2>/dev/null
  child=""
}
trap 'stop_child; cleanup' EXIT
trap 'exit 130' INT TERM

mnt() { # mnt TARGET mount-args...
  local target=$1
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
}

# A pristine chroot with the tree in /src/cpool.
fresh_root() {
  root="$cache/root.$$"
  rm -rf "$root" && mkdir -p "$root"
  tar -C "$root" -xf "$base"
  mkdir -p "$debs/partial" "$root/src/cpool"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # The root a mount point of its own, as on a real system: `ip -n NS`
  # (the netns fault tests) runs `mount --make-rslave /`, which fails with
  # EINVAL in a chroot whose / is a plain directory.
  mnt "$root" --bind "$root"
  mnt "$root/proc" -t proc proc
  mnt "$root/sys" -t sysfs sysfs
  mnt "$root/dev" --bind /dev
  mnt "$root/dev/pts" --bind /dev/pts
  mnt "$root/dev/shm" -t tmpfs tmpfs
  mnt "$root/var/cache/apt/archives" --bind "$debs"
  local rev
  rev=$(git -C "$here" stash create 2>/dev/null || true)
  git -C "$here" archive --format=tar "${rev:-HEAD}" | tar -C "$root/src/cpool" -xf -
}

in_root() { # in_root SCRIPT: runs bash -c SCRIPT in the chroot, as root
  setsid chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "set -euxo pipefail; cd /src/cpool; $1"
}

results=()
check() { # check NAME SCRIPT
  local name=$1 log="$cache/$1.log" t0=$SECONDS rc=0
  fresh_root
  say "$name: running in $root (log: $log)"
  in_root "$2" >"$log" 2>&1 </dev/null &
  child=$!
  wait "$child" || rc=$?
  child=""
  cleanup
  # Tests that skipped themselves (ctest: "***Skipped") say what the
  # system lacks; listed, not failed.
  local skipped
  skipped=$(sed -n 's/.*Test *#[0-9]*: \([^ ]*\) .*\*\*\*Skipped.*/\1/p' "$log" |
            paste -sd' ')
  [ -z "$skipped" ] || skipped="; skipped: $skipped"
  if [ $rc -eq 0 ]; then
    results+=("PASS $name ($((SECONDS - t0)) s$skipped)")
  else
    results+=("FAIL $name (exit $rc, $((SECONDS - t0)) s$skipped; see $log)")
    say "FAIL $name; the last lines of $log:"
    tail -n 40 "$log" >&2
  fi
}

mkdir -p "$cache"
build_base

if [ "$what" = readme ] || [ "$what" = all ]; then
  check readme '
    tools/run.sh bench --duration 1
    tools/run.sh test'
fi

if [ "$what" = install ] || [ "$what" = all ]; then
  # shellcheck disable=SC2016 # expanded in the chroot
  check install '
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends cmake gcc make libc6-dev libbsd-dev pkg-config
    ! dpkg-query -W -f="\${Status}" libcunit1-dev 2>/dev/null | grep -q "ok installed"
    # The install line as it stands in README.md:
    line=$(grep -m1 "^cmake -S \. -B build .*--prefix /opt/cpool" README.md)
    eval "$line"
    export PKG_CONFIG_PATH=$(dirname "$(find /opt/cpool -name cpool.pc)")
    cc -o /tmp/echo-static docs/examples/echo_client.c $(pkg-config --static --cflags --libs cpool)
    cc -o /tmp/echo-plain docs/examples/echo_client.c $(pkg-config --cflags --libs cpool)
    # Both run: nothing listens on port 1, so each fails cleanly with a message.
    for p in /tmp/echo-static /tmp/echo-plain; do
      out=$($p 1 2>&1) && exit 1
      echo "$p: $out"
      case "$out" in cpool_*) ;; *) exit 1 ;; esac
    done'
fi

printf '%s\n' "${results[@]}"
for r in "${results[@]}"; do
  case "$r" in FAIL*) exit 1 ;; esac
done
