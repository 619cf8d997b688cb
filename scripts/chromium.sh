#!/usr/bin/env bash
# Debian's Chromium for the browser tests, benchmarks and screenshots.
#
#   chromium.sh
#
# Installs the `chromium` package with apt-get when no Chromium is on PATH (root only; one
# install at a time, even when several processes ask at once), checks that it starts, and
# prints exactly one line on stdout:
#   CHROMIUM=<path>
# Everything else goes to stderr. No browser is ever downloaded from anywhere else.
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

path=$(find_chromium)
if [[ -z "$path" ]]; then
  [[ "$(id -u)" == 0 ]] || die "chromium is not installed and installing it needs root (apt-get install -y chromium)"
  command -v apt-get >/dev/null || die "chromium is not installed and apt-get is not available"
  exec 8>/tmp/chromium-sh-apt.lock
  flock 8
  path=$(find_chromium)
  if [[ -z "$path" ]]; then
    log "installing chromium with apt-get ..."
    out=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium; } >"$out" 2>&1; then
      tail -n 30 "$out" >&2
      rm -f "$out"
      die "apt-get install chromium failed"
    fi
    rm -f "$out"
    path=$(find_chromium)
  fi
  exec 8>&-
fi
[[ -n "$path" ]] || die "chromium is still not on PATH after installing it"
version=$("$path" --version 2>/dev/null | head -n 1 || true)
[[ "$version" == Chromium* ]] || die "$path --version printed '$version', not a Chromium version"
log "$version at $path"
printf 'CHROMIUM=%s\n' "$path"
