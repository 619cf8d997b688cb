#!/usr/bin/env bash
# Launcher for a real single-node Apache Cassandra 5.0 on loopback, taken from Maven
# Central (org.apache.cassandra:cassandra-all) and run on Java 17. No Docker, no tarball.
#
#   cassandra.sh fetch
#   cassandra.sh start  --dir DIR [--cql-port N] [--storage-port N]
#   cassandra.sh stop   --dir DIR
#   cassandra.sh status --dir DIR
#
# `start` prints exactly one line on stdout when CQL answers: CQL_PORT=<n>.
# Everything else goes to stderr. See README.md beside this file.
#
# Environment overrides:
#   CASSANDRA_HEAP           max heap (-Xmx), default 512M
#   CASSANDRA_JVM_OPTS       extra JVM options (word-split)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL, default 180
#   CASSANDRA_STOP_GRACE     seconds between SIGTERM and SIGKILL, default 30
#   CASSANDRA_CACHE_DIR      jar cache, default <this folder>/.cache
#   CASSANDRA_MAVEN_REPO     Maven local repository for fetch (default: Maven's own, ~/.m2)
#   CASSANDRA_JAVA           java binary to use (must be Java 17 or 11)
#   CASSANDRA_MLOCK=1        let Cassandra mlockall() its memory (default: prevented when root)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CASSANDRA_CACHE_DIR:-$SCRIPT_DIR/.cache}"
LIB_DIR="$CACHE_DIR/lib"
STAMP="$LIB_DIR/.complete"
HEAP="${CASSANDRA_HEAP:-512M}"
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
STOP_GRACE="${CASSANDRA_STOP_GRACE:-30}"
MAIN_CLASS=org.apache.cassandra.service.CassandraDaemon

log() { printf 'cassandra.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: cassandra.sh fetch
       cassandra.sh start  --dir DIR [--cql-port N] [--storage-port N]
       cassandra.sh stop   --dir DIR
       cassandra.sh status --dir DIR
EOF
  exit 2
}

# ---------------------------------------------------------------- fetch

pom_hash() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

fetched() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; }

cmd_fetch() {
  fetched && return 0
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$CACHE_DIR"
  # One fetch at a time, even when several nodes start at once.
  exec 9>"$CACHE_DIR/.fetch.lock"
  flock 9
  if fetched; then exec 9>&-; return 0; fi
  log "fetching Cassandra jars from Maven Central into $LIB_DIR ..."
  local tmp="$CACHE_DIR/lib.tmp.$$" start=$SECONDS
  rm -rf "$tmp"
  local -a mvn_args=(-q -B -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies
    "-DoutputDirectory=$tmp" -DincludeScope=runtime)
  [[ -n "${CASSANDRA_MAVEN_REPO:-}" ]] && mvn_args+=("-Dmaven.repo.local=$CASSANDRA_MAVEN_REPO")
  if ! mvn "${mvn_args[@]}" >"$CACHE_DIR/fetch.log" 2>&1; then
    tail -n 40 "$CACHE_DIR/fetch.log" >&2
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (full output: $CACHE_DIR/fetch.log)"
  fi
  ls "$tmp"/cassandra-all-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "cassandra-all jar missing after fetch"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  pom_hash >"$STAMP"
  local -a jars=("$LIB_DIR"/*.jar)
  log "fetched ${#jars[@]} jars ($(du -sh "$LIB_DIR" | cut -f1)) in $((SECONDS - start)) s"
  exec 9>&-
}

# ---------------------------------------------------------------- helpers

DIR="" CQL_PORT="" STORAGE_PORT="" MUST_CREATE_DIR=0

parse_args() {
  while (($#)); do
    case "$1" in
      --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
      --dir=*) DIR="${1#*=}"; shift ;;
      --cql-port) CQL_PORT="${2:?--cql-port needs a value}"; shift 2 ;;
      --cql-port=*) CQL_PORT="${1#*=}"; shift ;;
      --storage-port) STORAGE_PORT="${2:?--storage-port needs a value}"; shift 2 ;;
      --storage-port=*) STORAGE_PORT="${1#*=}"; shift ;;
      -h|--help) usage ;;
      *) log "unknown argument: $1"; usage ;;
    esac
  done
  [[ -n "$DIR" ]] || { log "--dir is required"; usage; }
  for p in "$CQL_PORT" "$STORAGE_PORT"; do
    [[ -z "$p" || "$p" =~ ^[0-9]+$ ]] || die "port must be a number: $p"
  done
  [[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
  if [[ "$MUST_CREATE_DIR" == 1 ]]; then mkdir -p "$DIR"; fi
  if [[ -d "$DIR" ]]; then DIR="$(cd "$DIR" && pwd -P)"; fi
}

# True when something on 127.0.0.1 accepts connections on port $1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# A loopback port nobody listens on, below the ephemeral range (32768+) and not $1.
pick_port() {
  local avoid="${1:-}" p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    [[ "$p" == "$avoid" ]] && continue
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

# PID from DIR/cassandra.pid if that process is alive and is our Cassandra for DIR.
running_pid() {
  local pid
  [[ -f "$DIR/cassandra.pid" ]] || return 1
  pid="$(cat "$DIR/cassandra.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: the command line must name our daemon and our dir.
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *"$MAIN_CLASS"* && "$cmdline" == *"-Dcassandra.storagedir=$DIR "* ]] || return 1
  echo "$pid"
}

find_java() {
  local cand v
  for cand in "${CASSANDRA_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
      /usr/lib/jvm/java-17-openjdk-*/bin/java "$(command -v java || true)"; do
    [[ -n "$cand" && -x "$cand" ]] || continue
    v="$("$cand" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
    if [[ "$v" == 17 || "$v" == 11 ]]; then echo "$cand"; return 0; fi
    [[ "$cand" == "${CASSANDRA_JAVA:-}" ]] && die "CASSANDRA_JAVA=$cand is Java $v; Cassandra 5.0 needs 17 (or 11)"
  done
  die "no Java 17 found (Cassandra 5.0 runs on Java 11 or 17); set CASSANDRA_JAVA"
}

render_yaml() {
  local esc
  esc="$(printf '%s' "$DIR" | sed -e 's/[\\&|]/\\&/g')"
  sed -e "s|@@DIR@@|$esc|g" -e "s|@@CQL_PORT@@|$CQL_PORT|g" -e "s|@@STORAGE_PORT@@|$STORAGE_PORT|g" \
    "$SCRIPT_DIR/cassandra.yaml" >"$DIR/cassandra.yaml.tmp"
  mv "$DIR/cassandra.yaml.tmp" "$DIR/cassandra.yaml"
}

show_log_tail() {
  local f
  f="$DIR/logs/console.log"
  if [[ -s "$f" ]]; then
    log "---- last 30 lines of $f ----"
    tail -n 30 "$f" >&2
  fi
  f="$DIR/logs/system.log"
  if [[ -s "$f" ]]; then
    log "---- last 80 lines of $f ----"
    tail -n 80 "$f" >&2
  fi
}

# Sends SIGTERM, waits up to $2 seconds, then SIGKILL. Returns when $1 is gone.
terminate() {
  local pid="$1" grace="$2" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  log "pid $pid still alive after ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# ---------------------------------------------------------------- start

cmd_start() {
  MUST_CREATE_DIR=1
  parse_args "$@"
  local pid
  if pid="$(running_pid)"; then
    log "already running in $DIR (pid $pid)"
    echo "CQL_PORT=$(cat "$DIR/cql.port")"
    return 0
  fi
  cmd_fetch
  local java
  java="$(find_java)"

  # Reuse the ports of an earlier run in this DIR when free (the node keeps its identity).
  if [[ -z "$CQL_PORT" && -f "$DIR/cql.port" ]]; then
    local old; old="$(cat "$DIR/cql.port")"
    [[ "$old" =~ ^[0-9]+$ ]] && ! port_open "$old" && CQL_PORT="$old"
  fi
  if [[ -z "$STORAGE_PORT" && -f "$DIR/storage.port" ]]; then
    local old; old="$(cat "$DIR/storage.port")"
    [[ "$old" =~ ^[0-9]+$ && "$old" != "$CQL_PORT" ]] && ! port_open "$old" && STORAGE_PORT="$old"
  fi
  [[ -n "$CQL_PORT" ]] || CQL_PORT="$(pick_port "$STORAGE_PORT")"
  [[ -n "$STORAGE_PORT" ]] || STORAGE_PORT="$(pick_port "$CQL_PORT")"
  [[ "$CQL_PORT" != "$STORAGE_PORT" ]] || die "CQL and storage port must differ"
  port_open "$CQL_PORT" && die "CQL port $CQL_PORT is already in use"
  port_open "$STORAGE_PORT" && die "storage port $STORAGE_PORT is already in use"

  mkdir -p "$DIR"/{data,commitlog,saved_caches,hints,cdc_raw,triggers,tmp,logs}
  render_yaml
  echo "$CQL_PORT" >"$DIR/cql.port"
  echo "$STORAGE_PORT" >"$DIR/storage.port"

  local -a jamms=("$LIB_DIR"/jamm-*.jar)
  local jamm="${jamms[0]}"
  [[ -f "$jamm" ]] || die "jamm jar missing in $LIB_DIR (delete $CACHE_DIR and fetch again)"
  local -a jvm=(
    -Xms"$HEAP" -Xmx"$HEAP" -Xss512k
    -XX:+UseG1GC -XX:MaxGCPauseMillis=300 -XX:G1RSetUpdatingPauseTimePercent=5
    -XX:+PerfDisableSharedMem -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$DIR/tmp"
    -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    -Djava.io.tmpdir="$DIR/tmp" -Djna.tmpdir="$DIR/tmp"
    # Java 17 module access, as in Cassandra 5.0's conf/jvm17-server.options
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -javaagent:"$jamm"
    # Cassandra
    -Dcassandra-foreground=yes
    -Dcassandra.storagedir="$DIR"
    -Dcassandra.logdir="$DIR/logs"
    -Dcassandra.triggers_dir="$DIR/triggers"
    -Dcassandra.config="file://$DIR/cassandra.yaml"
    -Dlogback.configurationFile="$SCRIPT_DIR/logback.xml"
    # Fast start for a lone test node; no JMX port properties, so JMX stays off.
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
    -Dcassandra.shutdown_announce_in_ms=0
  )
  # shellcheck disable=SC2206
  [[ -n "${CASSANDRA_JVM_OPTS:-}" ]] && jvm+=(${CASSANDRA_JVM_OPTS})

  # Cassandra always calls mlockall(MCL_CURRENT), which as root faults in and pins the whole
  # committed heap (RSS ~0.9 GiB at 512M). A test node needs no pinning: drop CAP_IPC_LOCK
  # so the call fails (RLIMIT_MEMLOCK) and Cassandra only logs a warning.
  # CASSANDRA_MLOCK=1 keeps Cassandra's default.
  local -a wrap=()
  if [[ "${CASSANDRA_MLOCK:-0}" != 1 && "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
    wrap=(setpriv --bounding-set=-ipc_lock)
  fi

  : >"$DIR/logs/console.log"
  # setsid: own session, so a Ctrl-C aimed at the caller does not reach the node.
  # Not a process-group leader here, so setsid (and setpriv) exec java directly: $! is java.
  setsid "${wrap[@]}" "$java" "${jvm[@]}" -cp "$LIB_DIR/*" "$MAIN_CLASS" \
    </dev/null >>"$DIR/logs/console.log" 2>&1 &
  pid=$!
  echo "$pid" >"$DIR/cassandra.pid"
  log "starting Cassandra (pid $pid, CQL 127.0.0.1:$CQL_PORT, storage $STORAGE_PORT, heap $HEAP, logs $DIR/logs)"

  local t0=$SECONDS
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Cassandra exited during start-up"
      show_log_tail
      rm -f "$DIR/cassandra.pid"
      exit 1
    fi
    if port_open "$CQL_PORT"; then
      break
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      log "CQL port $CQL_PORT not open after ${START_TIMEOUT}s"
      show_log_tail
      terminate "$pid" 10
      rm -f "$DIR/cassandra.pid"
      exit 1
    fi
    sleep 0.5
  done
  # The native transport opens last; give the "Startup complete" line a moment.
  local i
  for ((i = 0; i < 20; i++)); do
    grep -q 'Startup complete' "$DIR/logs/system.log" 2>/dev/null && break
    sleep 0.25
  done
  log "ready after $((SECONDS - t0)) s"
  echo "CQL_PORT=$CQL_PORT"
}

# ---------------------------------------------------------------- stop / status

cmd_stop() {
  parse_args "$@"
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$DIR/cassandra.pid"
    log "not running in $DIR"
    return 0
  fi
  log "stopping pid $pid"
  terminate "$pid" "$STOP_GRACE"
  rm -f "$DIR/cassandra.pid"
  log "stopped"
}

cmd_status() {
  parse_args "$@"
  local pid
  if pid="$(running_pid)"; then
    local cql storage state=starting
    cql="$(cat "$DIR/cql.port" 2>/dev/null || echo '?')"
    storage="$(cat "$DIR/storage.port" 2>/dev/null || echo '?')"
    port_open "$cql" && state=running
    echo "$state pid=$pid cql_port=$cql storage_port=$storage dir=$DIR"
    return 0
  fi
  echo "stopped dir=$DIR"
  return 3
}

(($#)) || usage
cmd="$1"; shift
case "$cmd" in
  fetch) (($# == 0)) || usage; cmd_fetch; fetched && log "jars ready in $LIB_DIR" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  -h|--help|help) usage ;;
  *) log "unknown command: $cmd"; usage ;;
esac
