#!/usr/bin/env bash
# LiveKit server for tests: built once from the Go module proxy, started on loopback.
#
#   livekit.sh build
#   livekit.sh start --key K --secret S [--webhook URL] [--port N] [--dir DIR]
#   livekit.sh stop  --dir DIR
#
# `build` runs `go install github.com/livekit/livekit-server/cmd/server@v1.13.5` with GOBIN set
# to .tools/livekit/bin (ignored by git) unless that binary is already there (about 3 minutes
# and ~1.3 GB of Go caches the first time). v1.13.5 is the newest release whose modules the Go
# module proxy serves in full.
# `start` builds if needed, writes DIR/livekit.yaml (API key K with secret S, webhooks posted to
# URL and signed with K), starts the server on 127.0.0.1 (signalling on port N or a free one,
# media on one UDP port, loopback candidates only) and prints:
#   LIVEKIT_PORT=<n>
#   LIVEKIT_DIR=<dir>
set -euo pipefail

VERSION=v1.13.5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR="$ROOT/.tools/livekit/bin"
BIN="$BIN_DIR/server"

SCRIPT_NAME=livekit.sh
# shellcheck source=daemon-lib.sh
source "$(dirname "$0")/daemon-lib.sh"

cmd_build() {
  [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "${VERSION#v}" && return 0
  command -v go >/dev/null || die "go is needed to build livekit-server $VERSION (apt-get install -y golang, or Go from go.dev)"
  mkdir -p "$BIN_DIR"
  exec 9>"$ROOT/.tools/livekit/build.lock"
  flock 9
  if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "${VERSION#v}"; then return 0; fi
  log "building livekit-server $VERSION (go install; a few minutes the first time) ..."
  local started=$SECONDS
  GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "github.com/livekit/livekit-server/cmd/server@$VERSION" >&2
  log "built $BIN in $((SECONDS - started)) s"
}


cmd_start() {
  local key="" secret="" webhook="" port="" dir=""
  while (($#)); do
    case "$1" in
      --key) key=$2; shift 2 ;;
      --secret) secret=$2; shift 2 ;;
      --webhook) webhook=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --dir) dir=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ -n "$key" && -n "$secret" ]] || die "--key and --secret are required"
  cmd_build
  [[ -n "$dir" ]] || dir=$(mktemp -d "${TMPDIR:-/tmp}/livekit.XXXXXX")
  mkdir -p "$dir"
  if [[ -z "$port" ]]; then
    for _ in 1 2 3 4 5 6 7 8; do
      port=$((20000 + RANDOM % 10000))
      port_free "$port" && break
    done
  fi
  local udp=$((port + 1))
  {
    echo "port: $port"
    echo "bind_addresses: [\"127.0.0.1\"]"
    echo "rtc:"
    echo "  udp_port: $udp"
    echo "  tcp_port: 0"
    echo "  use_external_ip: false"
    echo "  node_ip: 127.0.0.1"
    echo "  enable_loopback_candidate: true"
    echo "  ips:"
    echo "    includes: [\"127.0.0.1/32\"]"
    echo "keys:"
    echo "  $key: $secret"
    if [[ -n "$webhook" ]]; then
      echo "webhook:"
      echo "  api_key: $key"
      echo "  urls: [\"$webhook\"]"
    fi
    echo "logging:"
    echo "  level: info"
  } >"$dir/livekit.yaml"
  : >"$dir/livekit.log"
  setsid "$BIN" --config "$dir/livekit.yaml" </dev/null >>"$dir/livekit.log" 2>&1 &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$dir/livekit.pid"
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || break
    if ! port_free "$port"; then
      log "livekit-server $VERSION on 127.0.0.1:$port (media udp $udp, dir $dir)"
      printf 'LIVEKIT_PORT=%s\nLIVEKIT_DIR=%s\n' "$port" "$dir"
      return 0
    fi
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  log "livekit-server did not start; last lines of $dir/livekit.log:"
  tail -n 30 "$dir/livekit.log" >&2 || true
  exit 1
}

cmd_stop() {
  local dir
  dir=$(dir_option "$@") || die "usage: livekit.sh stop --dir DIR"
  [[ -n "$dir" && -f "$dir/livekit.pid" ]] || return 0
  stop_pid "$(cat "$dir/livekit.pid")"
}

(($#)) || die "usage: livekit.sh build | start --key K --secret S [--webhook URL] [--port N] [--dir DIR] | stop --dir DIR"
command=$1
shift
case "$command" in
  build) cmd_build ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "unknown command $command" ;;
esac
