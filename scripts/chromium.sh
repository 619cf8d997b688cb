#!/usr/bin/env bash
# Prints the path of Debian's chromium, installing it with apt-get when missing (root only).
# The browser tests drive it with playwright-core; no browser is downloaded any other way.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  [[ "$(id -u)" == 0 ]] || { echo "chromium.sh: chromium is not installed and installing it needs root (apt-get install -y chromium)" >&2; exit 1; }
  exec 8>/tmp/chromium-sh-apt.lock
  flock 8
  if ! command -v chromium >/dev/null; then
    echo "chromium.sh: installing chromium with apt-get ..." >&2
    out=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >"$out" 2>&1; then
      tail -n 30 "$out" >&2
      rm -f "$out"
      echo "chromium.sh: apt-get install chromium failed" >&2
      exit 1
    fi
    rm -f "$out"
  fi
fi
command -v chromium
