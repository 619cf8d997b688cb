#!/usr/bin/env bash
# Builds kustomize and kubeconform (pinned versions, from the Go module proxy) into .cache/k8s-tools/bin
# once, and prints that directory. test/deploy/k8s.test.ts runs it; run it yourself to check
# the manifests by hand:
#   PATH="$(bash scripts/k8s-tools.sh):$PATH"
#   kustomize build deploy/k8s | kubeconform -strict -summary \
#     -schema-location 'deploy/k8s/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json' -
# Needs Go (1.24 or newer); about a minute the first time, nothing afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
KUSTOMIZE_VERSION=v5.7.1   # v5.8 needs Go 1.27
KUBECONFORM_VERSION=v0.8.0
BIN="$PWD/.cache/k8s-tools/bin"
STAMP="$BIN/.versions"
WANT="kustomize $KUSTOMIZE_VERSION kubeconform $KUBECONFORM_VERSION"

if [[ -x "$BIN/kustomize" && -x "$BIN/kubeconform" && "$(cat "$STAMP" 2>/dev/null)" == "$WANT" ]]; then
  echo "$BIN"
  exit 0
fi
GO="$(command -v go || true)"
[[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
if [[ -z "$GO" ]]; then
  echo "k8s-tools: Go is needed to build kustomize and kubeconform (apt-get install golang-go, or put go on PATH)" >&2
  exit 1
fi
mkdir -p "$BIN"
export GOBIN="$BIN" GOTOOLCHAIN=local GOFLAGS=-mod=mod
"$GO" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
"$GO" install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
echo "$WANT" > "$STAMP"
echo "$BIN"
