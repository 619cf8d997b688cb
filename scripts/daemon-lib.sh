# Sourced by the scripts that start and stop throwaway local daemons for tests and benchmarks
# (redis.sh, coturn.sh, livekit.sh). The sourcing script sets SCRIPT_NAME first.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when nothing listens on 127.0.0.1:$1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The value of `--dir DIR` among the arguments (the only option a stop or status takes);
# returns 2 on anything else.
dir_option() {
  local dir=""
  while (($#)); do
    case "$1" in
      --dir) dir=${2:-}; shift 2 || return 2 ;;
      *) return 2 ;;
    esac
  done
  printf '%s' "$dir"
}

# Stops process $1: SIGTERM, then SIGKILL if it is still there after 5 s.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}
