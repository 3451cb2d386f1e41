# Shell pieces bench/run.sh, durability.sh and leases.sh share: building
# bench/, starting FUSE daemons in a private directory, running a step with a
# time limit, and cleaning up on any exit.
# Sourced with $here set to bench/; the caller makes $work (the directory the
# mount points go in) with make_work, which also sets the traps that clean up.

root=$(dirname "$here")
build=$root/build-bench    # where bench/ is built
results=$here/results      # the reports
mqfs_bin=$root/build/mqfs  # the mqfs measured unless another is given

mounts=()    # mount points we made
pids=()      # the daemons we started
services=()  # other processes we started (Redis), stopped at once by pid
bench_pid=   # the benchmark program, while it runs
pass_args=() # --OPTION VALUE pairs for the benchmark program

# make_work NAME [PARENT]: a fresh directory $work for mount points and
# scratch files, in PARENT (without one: /dev/shm, a tmpfs, else $TMPDIR),
# and `cleanup` on any exit.
make_work() {
  local parent=${2:-}
  if [ -z "$parent" ]; then
    parent=/dev/shm
    [ -d "$parent" ] && [ -w "$parent" ] || parent=${TMPDIR:-/tmp}
  fi
  work=$(mktemp -d "$parent/mqfs-$1.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# common_arg ARGS...: takes the first of ARGS as every script does: -h or
# --help prints the script's header comment and exits; --OPTION VALUE goes to
# $pass_args; any other word is the mqfs binary. Sets $taken, the words used.
common_arg() {
  taken=1
  case $1 in
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --*)
      [ $# -ge 2 ] || { echo "${0##*/}: $1 needs a value" >&2; exit 2; }
      pass_args+=("$1" "$2"); taken=2 ;;
    *) mqfs_bin=$1 ;;
  esac
}

# build_bench HERE BUILD: builds bench/ (Release) into BUILD.
build_bench() {
  echo "Building bench/ into $2"
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$2" -j "$(nproc)" >/dev/null
}

# require_root_and_mqfs WHY: exits unless run as root (WHY: what needs it)
# and $mqfs_bin is an executable; then makes $mqfs_bin an absolute path.
require_root_and_mqfs() {
  [ "$(id -u)" -eq 0 ] || { echo "${0##*/}: run as root ($1)" >&2; exit 1; }
  [ -x "$mqfs_bin" ] || { echo "${0##*/}: no mqfs binary at $mqfs_bin (build it first)" >&2; exit 1; }
  mqfs_bin=$(realpath "$mqfs_bin")
}

# report_about: a report's first lines: when, on what machine, which mqfs
# binary, and the source's commit (when $root is a git checkout).
report_about() {
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); mqfs: $mqfs_bin ($("$mqfs_bin" --version 2>/dev/null | grep -m1 '^mqfs' || echo '?'))"
  if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "- source: commit $(git -C "$root" rev-parse --short HEAD)"
  fi
}

# scheduling: the script's scheduling policy, priority and nice value, which
# its daemons and workers inherit.
scheduling() {
  printf '%s, nice %s' "$(chrt -p $$ | awk -F': ' 'NR == 1 { p = $2 } NR == 2 { print p " priority " $2 }')" "$(nice)"
}

# require_tools TOOL...: exits unless every TOOL is on the PATH.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "${0##*/}: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
  done
}

# run_step LIMIT COMMAND...: a step that cannot hang the script: past LIMIT
# seconds it exits 124 (cleanup ends the step and, if a call into them hangs,
# the daemons). Returns COMMAND's status.
run_step() {
  local seconds=$1
  shift
  "$@" &
  bench_pid=$!
  local deadline=$((SECONDS + seconds))
  while kill -0 "$bench_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$bench_pid" 2>/dev/null; then
    echo "${0##*/}: $1 $2 did not finish within $seconds s" >&2
    exit 124
  fi
  local status=0
  wait "$bench_pid" || status=$?
  bench_pid=
  return "$status"
}

# Reads the mount table only: never touches the mount itself, which may hang.
is_mounted() { awk -v dir="$1" '$5 == dir { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# A call stuck in a mount whose daemon stopped answering survives even
# SIGKILL; killing the daemon aborts the connection and ends it.
kill_daemons() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

# end_pids PID...: waits 5 s for each to end, then terminates it, then kills it.
end_pids() {
  local pid i
  for pid in "$@"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$pid" 2>/dev/null && sleep 0.5 || true
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Lazy unmounts never block on a hung daemon; the daemons are ours, by pid.
cleanup() {
  local m pid busy=0
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    sleep 1
    kill_daemons
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  for m in "${mounts[@]}"; do
    is_mounted "$m" && { fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
  done
  # The daemons end before the services: a mount of Redis may need it to end.
  end_pids "${pids[@]}"
  for pid in "${services[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  end_pids "${services[@]}"
  for m in "${mounts[@]}"; do is_mounted "$m" && busy=1; done
  if [ "$busy" = 0 ]; then
    rm -rf -- "$work"
  else
    echo "${0##*/}: a mount under $work is still there; left it" >&2
  fi
}

# start_daemon NAME COMMAND...: runs COMMAND MOUNTPOINT (a daemon in the
# foreground) in the background and waits, 10 s at most, until it is mounted.
# Sets $mounted to MOUNTPOINT:PID, as mqfs_bench takes it. NAME may be
# started again after stop_daemon.
start_daemon() {
  local name=$1 dir=$work/$1 pid
  shift
  mkdir -p "$dir"
  "$@" "$dir" >>"$work/$name.log" 2>&1 &
  pid=$!
  disown "$pid"  # cleanup() ends it; no job notices
  pids+=("$pid")
  mounts+=("$dir")
  for _ in $(seq 1000); do
    if is_mounted "$dir"; then
      mounted=$dir:$pid
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "${0##*/}: $name did not mount:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

# stop_daemon MOUNTPOINT:PID: unmounts and waits, 30 s at most, for the
# daemon to end (then kills it).
stop_daemon() {
  local dir=${1%:*} pid=${1##*:}
  fusermount3 -u "$dir" 2>/dev/null || fusermount3 -u -z "$dir" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "${0##*/}: the daemon of $dir did not end; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
