#!/usr/bin/env bash
# A throwaway coturn (STUN/TURN) on loopback for tests and benchmarks.
#
#   coturn.sh start --secret S [--dir DIR]
#   coturn.sh stop  --dir DIR
#
# `start` installs Debian's coturn with apt-get when it is missing (root only), starts
# turnserver in DIR (a new temporary directory by default) on 127.0.0.1 with TURN REST
# credentials (use-auth-secret, static-auth-secret=S), relaying on 127.0.0.1 only, and prints:
#   TURN_PORT=<n>
#   TURN_DIR=<dir>
# Everything else goes to stderr.
#
# TESTS ONLY: --allow-loopback-peers lets it relay to 127.0.0.1, which is where the test peers
# are. A production coturn must not allow loopback peers and should deny private ranges
# (denied-peer-ip=10.0.0.0-10.255.255.255, 172.16.0.0-172.31.255.255,
# 192.168.0.0-192.168.255.255, 127.0.0.0-127.255.255.255, ...): otherwise any user with
# credentials can reach services inside the network through the relay.
set -euo pipefail

SCRIPT_NAME=coturn.sh
# shellcheck source=daemon-lib.sh
source "$(dirname "$0")/daemon-lib.sh"

ensure_installed() {
  command -v turnserver >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || die "coturn is not installed and installing it needs root (apt-get install -y coturn)"
  command -v apt-get >/dev/null || die "coturn is not installed and apt-get is not available"
  exec 8>/tmp/coturn-sh-apt.lock
  flock 8
  if ! command -v turnserver >/dev/null; then
    log "installing coturn with apt-get ..."
    local out
    out=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends coturn; } >"$out" 2>&1; then
      tail -n 30 "$out" >&2
      rm -f "$out"
      die "apt-get install coturn failed"
    fi
    rm -f "$out"
  fi
  exec 8>&-
}


cmd_start() {
  local dir="" secret=""
  while (($#)); do
    case "$1" in
      --dir) dir=$2; shift 2 ;;
      --secret) secret=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ -n "$secret" ]] || die "--secret is required"
  ensure_installed
  [[ -n "$dir" ]] || dir=$(mktemp -d "${TMPDIR:-/tmp}/coturn.XXXXXX")
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local attempt
  for attempt in 1 2 3 4 5 6; do
    # Below the ephemeral range (32768+), so relay ports do not collide with clients' ports.
    local port=$((20000 + RANDOM % 10000))
    local min=$((port + 1)) max=$((port + 200))
    port_free "$port" || continue
    : >"$dir/turn.log"
    setsid turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$port" \
      --min-port="$min" --max-port="$max" --use-auth-secret --static-auth-secret="$secret" \
      --realm=microchat.test --fingerprint --allow-loopback-peers --no-cli --no-tls --no-dtls \
      --no-software-attribute --log-file="$dir/turn.log" --simple-log --no-stdout-log \
      --pidfile="$dir/turn.pid" </dev/null >/dev/null 2>>"$dir/turn.log" &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$dir/turn.pid.main"
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
      kill -0 "$pid" 2>/dev/null || break
      if ! port_free "$port"; then
        echo "$port" >"$dir/turn.port"
        log "turnserver on 127.0.0.1:$port (relay ports $min-$max, dir $dir)"
        printf 'TURN_PORT=%s\nTURN_DIR=%s\n' "$port" "$dir"
        return 0
      fi
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  log "turnserver did not start; last lines of $dir/turn.log:"
  tail -n 20 "$dir/turn.log" >&2 || true
  exit 1
}

cmd_stop() {
  local dir
  dir=$(dir_option "$@") || die "usage: coturn.sh stop --dir DIR"
  [[ -n "$dir" && -f "$dir/turn.pid.main" ]] || return 0
  stop_pid "$(cat "$dir/turn.pid.main")"
}

(($#)) || die "usage: coturn.sh start --secret S [--dir DIR] | stop --dir DIR"
command=$1
shift
case "$command" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown command $command" ;;
esac
