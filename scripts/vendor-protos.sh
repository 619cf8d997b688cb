#!/usr/bin/env bash
# Refreshes third_party/proto from the Maven Central jars that publish the upstream .proto
# sources (buf.build's registry is not reachable from our build machines, Maven Central is).
#   buf/validate/validate.proto        build.buf:protovalidate   (matches @bufbuild/protovalidate)
#   grpc/health/v1, grpc/reflection/*  io.grpc:grpc-services
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOVALIDATE_VERSION=1.3.0
GRPC_SERVICES_VERSION=1.85.1
central=https://repo1.maven.org/maven2
out=third_party/proto
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -sSfL -o "$tmp/pv.jar" "$central/build/buf/protovalidate/$PROTOVALIDATE_VERSION/protovalidate-$PROTOVALIDATE_VERSION.jar"
curl -sSfL -o "$tmp/gs.jar" "$central/io/grpc/grpc-services/$GRPC_SERVICES_VERSION/grpc-services-$GRPC_SERVICES_VERSION.jar"
rm -rf "$out"
mkdir -p "$out"
unzip -q -o "$tmp/pv.jar" 'buf/validate/validate.proto' -d "$out"
unzip -q -o "$tmp/gs.jar" 'grpc/health/v1/health.proto' 'grpc/reflection/v1/reflection.proto' \
  'grpc/reflection/v1alpha/reflection.proto' -d "$out"
echo "vendored into $out: protovalidate $PROTOVALIDATE_VERSION, grpc-services $GRPC_SERVICES_VERSION"
