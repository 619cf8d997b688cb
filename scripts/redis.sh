#!/usr/bin/env bash
# A throwaway Redis on loopback for tests, benchmarks and local multi-process runs.
#
#   redis.sh start  [--dir DIR] [--port N] [--cluster]
#   redis.sh stop   --dir DIR
#   redis.sh status --dir DIR
#   redis.sh cluster-start [--dir DIR] [--nodes N]
#   redis.sh cluster-stop  --dir DIR
#
# `start` installs Debian's redis-server with apt-get when it is missing (root only), starts
# it in DIR (a new temporary directory by default) on 127.0.0.1, on port N or on a free port
# in 20000-31999 (below the ephemeral range), waits until it answers PING, and prints exactly
# two lines on stdout:
#   REDIS_PORT=<n>
#   REDIS_DIR=<dir>
# Everything else goes to stderr. On failure it prints the tail of DIR/redis.log and exits 1.
# If the server of DIR is already running, `start` prints its lines again and exits 0.
# No persistence (no RDB, no AOF): a restart starts empty, as after a Redis failure.
# `--cluster` starts the server in cluster mode (one node, no slots yet).
#
# `cluster-start` starts N (default 3) cluster-mode servers in DIR/n1 ... DIR/nN, joins them
# into one Redis Cluster with every slot assigned (masters only, no replicas), waits until
# every node reports cluster_state:ok, and prints:
#   REDIS_CLUSTER_NODES=127.0.0.1:<p1>,127.0.0.1:<p2>,...
#   REDIS_DIR=<dir>
# `cluster-stop` stops every node of DIR.
#
# Environment: REDIS_START_TIMEOUT (seconds, default 10).
set -euo pipefail

START_TIMEOUT="${REDIS_START_TIMEOUT:-10}"
# Extra redis-server arguments (cluster mode).
EXTRA_ARGS=()

SCRIPT_NAME=redis.sh
# shellcheck source=daemon-lib.sh
source "$(dirname "$0")/daemon-lib.sh"

usage() {
  cat >&2 <<'EOF'
usage: redis.sh start  [--dir DIR] [--port N] [--cluster]
       redis.sh stop   --dir DIR
       redis.sh status --dir DIR
       redis.sh cluster-start [--dir DIR] [--nodes N]
       redis.sh cluster-stop  --dir DIR
EOF
  exit 2
}

ensure_installed() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || die "redis-server is not installed and installing it needs root (apt-get install -y redis-server)"
  command -v apt-get >/dev/null || die "redis-server is not installed and apt-get is not available"
  # One install at a time, even when several test workers start Redis at once.
  exec 8>/tmp/redis-sh-apt.lock
  flock 8
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "installing redis-server with apt-get ..."
    local out
    out=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; } >"$out" 2>&1; then
      tail -n 30 "$out" >&2
      rm -f "$out"
      die "apt-get install redis-server failed"
    fi
    rm -f "$out"
  fi
  exec 8>&-
}

pid_of() {
  local dir=$1
  [[ -f "$dir/redis.pid" ]] || return 1
  local pid
  pid=$(cat "$dir/redis.pid")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

answers() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }


# Starts redis-server on one port; 0 when it answers PING, 1 when it died or timed out (then
# nothing is left running). It runs in its own session, so signals to the caller's process
# group do not reach it, with its stdio detached, so callers waiting on our output return.
try_start() {
  local dir=$1 port=$2
  : >"$dir/redis.log"
  setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize no \
    --logfile "$dir/redis.log" --save "" --appendonly no --protected-mode yes --databases 1 "${EXTRA_ARGS[@]}" \
    </dev/null >/dev/null 2>>"$dir/redis.log" &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$dir/redis.pid"
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if answers "$port"; then
      echo "$port" >"$dir/redis.port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/redis.pid"; return 1; }
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
  return 1
}

cmd_start() {
  local dir="" port="" created=""
  while (($#)); do
    case "$1" in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --cluster) EXTRA_ARGS=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000); shift ;;
      *) usage ;;
    esac
  done
  ensure_installed
  if [[ -z "$dir" ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/redis.XXXXXX")
    created=1
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if pid_of "$dir" >/dev/null && [[ -f "$dir/redis.port" ]] && answers "$(cat "$dir/redis.port")"; then
    printf 'REDIS_PORT=%s\nREDIS_DIR=%s\n' "$(cat "$dir/redis.port")" "$dir"
    return 0
  fi
  local -a candidates
  if [[ -n "$port" ]]; then
    candidates=("$port")
  else
    candidates=()
    for _ in 1 2 3 4 5 6 7 8; do
      local p=$((20000 + RANDOM % 12000))
      port_free "$p" && candidates+=("$p")
    done
  fi
  local p
  for p in "${candidates[@]}"; do
    if try_start "$dir" "$p"; then
      log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$p (dir $dir)"
      printf 'REDIS_PORT=%s\nREDIS_DIR=%s\n' "$p" "$dir"
      return 0
    fi
  done
  log "redis-server did not start; last lines of $dir/redis.log:"
  tail -n 20 "$dir/redis.log" >&2 || true
  [[ -n "$created" ]] && rm -rf "$dir"
  exit 1
}

cmd_stop() {
  local dir
  dir=$(dir_option "$@") || usage
  [[ -n "$dir" ]] || usage
  local pid
  pid=$(pid_of "$dir") || return 0
  stop_pid "$pid"
}

cmd_status() {
  local dir
  dir=$(dir_option "$@") || usage
  [[ -n "$dir" ]] || usage
  if pid_of "$dir" >/dev/null; then
    echo "running (pid $(pid_of "$dir"), port $(cat "$dir/redis.port" 2>/dev/null || echo '?'))" >&2
    return 0
  fi
  echo "stopped" >&2
  return 3
}

cmd_cluster_start() {
  local dir="" nodes=3
  while (($#)); do
    case "$1" in
      --dir) dir=$2; shift 2 ;;
      --nodes) nodes=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  ensure_installed
  [[ -n "$dir" ]] || dir=$(mktemp -d "${TMPDIR:-/tmp}/redis-cluster.XXXXXX")
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local -a addresses=()
  local i out port
  for i in $(seq 1 "$nodes"); do
    out=$(cmd_start --dir "$dir/n$i" --cluster) || die "cluster node $i did not start"
    port=$(sed -n 's/^REDIS_PORT=//p' <<<"$out")
    addresses+=("127.0.0.1:$port")
  done
  if ! redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1; then
    tail -n 20 "$dir/create.log" >&2
    die "redis-cli --cluster create failed"
  fi
  local deadline=$((SECONDS + START_TIMEOUT)) address ok
  while ((SECONDS < deadline)); do
    ok=1
    for address in "${addresses[@]}"; do
      redis-cli -h 127.0.0.1 -p "${address##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    if ((ok)); then
      log "redis cluster of $nodes nodes: ${addresses[*]} (dir $dir)"
      printf 'REDIS_CLUSTER_NODES=%s\nREDIS_DIR=%s\n' "$(IFS=,; echo "${addresses[*]}")" "$dir"
      return 0
    fi
    sleep 0.1
  done
  die "the cluster did not reach cluster_state:ok within ${START_TIMEOUT}s"
}

cmd_cluster_stop() {
  local dir
  dir=$(dir_option "$@") || usage
  [[ -n "$dir" ]] || usage
  local node
  for node in "$dir"/n*; do
    [[ -d "$node" ]] && cmd_stop --dir "$node"
  done
}

(($#)) || usage
command=$1
shift
case "$command" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  cluster-start) cmd_cluster_start "$@" ;;
  cluster-stop) cmd_cluster_stop "$@" ;;
  *) usage ;;
esac
