#!/usr/bin/env bash
# Copies google/api and google/rpc protos into third_party/googleapis from the
# grpc-gateway v1 Go module (the only offline source of them), so buf can
# resolve the HTTP annotations and google.rpc.Status.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.16.0
dir=$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "github.com/grpc-ecosystem/grpc-gateway@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "googleapis.sh: could not download grpc-gateway ${version}" >&2; exit 1; }
rm -rf third_party/googleapis
mkdir -p third_party/googleapis/google/api third_party/googleapis/google/rpc
cp "$dir"/third_party/googleapis/google/api/{annotations,http}.proto third_party/googleapis/google/api/
cp "$dir"/third_party/googleapis/google/rpc/{status,code,error_details}.proto third_party/googleapis/google/rpc/
cp "$dir"/third_party/googleapis/LICENSE third_party/googleapis/
chmod -R u+w third_party/googleapis
