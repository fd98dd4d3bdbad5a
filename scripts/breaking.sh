#!/usr/bin/env bash
# buf breaking of proto/ against a git ref (default main). The reference tree
# is exported with git archive and built with the same googleapis copy, since
# third_party/ is not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-main}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$ref" proto buf.yaml | tar -x -C "$tmp"
mkdir -p "$tmp/third_party"
cp -r third_party/googleapis "$tmp/third_party/"
(cd "$tmp" && buf build proto -o image.binpb)
buf breaking proto --against "$tmp/image.binpb"
