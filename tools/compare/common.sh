# tools/compare/common.sh: helpers shared by tools/compare-pools.sh,
# tools/compare-redis.sh, tools/compare-pipeline.sh and the bench tests.  Sourced, not run.  The caller sets:
#   prog       its name, for messages ("compare-pools.sh")
#   here       the repository's root
#   build_dir  the CMake build directory
# Only bash, sed, awk, sort and cmake are used: no jq or python, so the
# scripts run on a fresh machine with just the build dependencies.
# The redis-server and memcached helpers below also use the caller's
# workdir (a temporary directory) and set its port and server_pid.
# shellcheck shell=bash disable=SC2154 # prog, here, build_dir, workdir: the caller's

say() { echo "$prog: $*" >&2; }

# A bad argument: say so, print the calling script's usage, exit 2.
die_usage() {
  say "$1"
  usage >&2
  exit 2
}

# A whole number from 1 to 999999 (durations, counts, thread lists).
is_count() { [[ "$1" =~ ^[1-9][0-9]{0,5}$ ]]; }

# A number from a one-line JSON object: json_num KEY LINE.  The keys asked
# for are unique in cpool-bench's and the comparison programs' summaries.
json_num() {
  printf '%s\n' "$2" | sed -n "s/.*\"$1\":\\([-0-9.eE+]*\\).*/\\1/p" | head -n1
}

# A number inside a flat nested object: json_sub_num OBJECT KEY LINE,
# e.g. json_sub_num latency_us p99 "$line".
json_sub_num() {
  printf '%s\n' "$3" |
    sed -n "s/.*\"$1\":{[^}]*\"$2\":\\([-0-9.eE+]*\\).*/\\1/p" | head -n1
}

# The sum of the numbers in a flat nested object ("errors":{...}), 0 if
# the object is absent.
json_sub_sum() {
  printf '%s\n' "$2" | sed -n "s/.*\"$1\":{\\([^}]*\\)}.*/\\1/p" | awk '
    { n = split($0, kv, ","); for (i = 1; i <= n; i++) { split(kv[i], p, ":"); s += p[2] } }
    END { print s + 0 }'
}

# The median of the space-separated numbers in $1 (nothing if none).
median() {
  tr ' ' '\n' <<<"$1" | { grep . || true; } | sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) exit
      if (NR % 2) print v[(NR + 1) / 2]
      else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# calc FORMAT EXPR [name=value...]: printf FORMAT of an awk expression of
# the named values; "-" if a value is empty or a division would be by 0.
calc() {
  local fmt=$1 expr=$2 args=() v
  shift 2
  for v in "$@"; do
    [ -n "${v#*=}" ] || { echo "-"; return 0; }
    args+=(-v "$v")
  done
  awk "${args[@]}" "BEGIN { r = ($expr); if (r != r) print \"-\"; else printf \"$fmt\", r }" 2>/dev/null ||
    echo "-"
}

# Runs one benchmark; prints its "type":"summary" line, or fails with its
# stderr shown.
run_summary() {
  local out err rc=0
  err="$(mktemp)"
  out="$("$@" 2>"$err")" || rc=$?
  if [ $rc -ne 0 ]; then
    say "failed (exit $rc): $*"
    sed 's/^/  /' "$err" >&2
    rm -f "$err"
    return 1
  fi
  rm -f "$err"
  printf '%s\n' "$out" | grep '"type":"summary"' | tail -n1
}

# (Re)configures the build once, with the tools on (a build directory
# configured without them would otherwise keep them off), keeping CMake's
# output: its "cpool compare:" lines say whether the comparison programs
# are built.
configured=0
configure_log=""
configure() {
  [ $configured = 1 ] && return 0
  configured=1
  say "configuring $build_dir"
  configure_log="$(cmake -S "$here" -B "$build_dir" -DCPOOL_BUILD_TOOLS=ON 2>&1)" ||
    printf '%s\n' "$configure_log" | tail -n 20 >&2
}

# build_target TARGET BINARY: builds TARGET if BINARY is missing; quiet
# unless it fails.  Succeeds if BINARY then exists.
build_target() {
  local target=$1 binary=$2 log
  [ -x "$binary" ] && return 0
  configure
  say "building $target"
  if ! log="$(cmake --build "$build_dir" -j "$(nproc)" --target "$target" 2>&1)"; then
    printf '%s\n' "$log" | grep -E "error|No rule|unknown target" | head -n 5 >&2 || true
  fi
  [ -x "$binary" ]
}

# One line about the machine, for the tables' headings, with the load
# average at the end of the runs: on a shared machine it says how much
# else was running.
machine_line() {
  local cpu load
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)"
  load="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
  echo "Machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC')${load:+; load average $load}"
}

# ---- a private redis-server on loopback ----

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

# Is the redis-server answering on $port ours (not another one that held
# the port first)?
server_is_ours() {
  local pid
  pid="$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
    sed -n 's/^process_id:\([0-9]*\).*/\1/p')"
  [ "$pid" = "$server_pid" ]
}

# Starts redis-server on a free loopback port; sets port and server_pid.
# Ports are picked below the ephemeral range, so the client sockets of
# --connect-per-request cannot collide with the server's.
start_server() {
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((10000 + RANDOM % 20000))
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$workdir" --logfile "$workdir/redis-$port.log" &
    server_pid=$!
    for _ in $(seq 50); do
      if ! kill -0 "$server_pid" 2>/dev/null; then
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        break # the port was taken: try another
      fi
      if server_is_ours; then
        say "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port (attempt $attempt)"
        return 0
      fi
      sleep 0.1
    done
    stop_server
  done
  say "could not start redis-server on a loopback port"
  [ -n "$port" ] && tail -n 5 "$workdir/redis-$port.log" >&2 2>/dev/null
  return 1
}

# ---- a private memcached on loopback ----

# Is memcached answering "version" on $port, and is it ours?
mc_is_ours() {
  local reply
  kill -0 "$server_pid" 2>/dev/null || return 1
  # (exec with a redirection alone would send the shell's stderr away.)
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'version\r\n' >&3
  IFS= read -r -t 2 reply <&3 || reply=""
  exec 3>&-
  [[ "$reply" == VERSION* ]] &&
    ss -ltnpH "sport = :$port" 2>/dev/null | grep -q "pid=$server_pid,"
}

# Starts memcached on a free loopback port (UDP off; as nobody when run as
# root, which memcached refuses); sets port and server_pid.  stop_server
# stops it.
start_memcached() {
  local user=() attempt
  [ "$(id -u)" -eq 0 ] && user=(-u nobody)
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((10000 + RANDOM % 20000))
    memcached -p "$port" -U 0 -l 127.0.0.1 -m 64 "${user[@]}" \
      2>"$workdir/memcached.log" &
    server_pid=$!
    for _ in $(seq 50); do
      mc_is_ours && { say "memcached on 127.0.0.1:$port"; return 0; }
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  say "could not start memcached on a loopback port"
  tail -n 5 "$workdir/memcached.log" >&2 2>/dev/null
  return 1
}
