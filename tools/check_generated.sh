#!/usr/bin/env bash
# Fail when the committed generated code differs from a fresh generation of protos/.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
bash tools/generate_protos.sh "$fresh" >/dev/null
if ! diff -r -x __pycache__ "$fresh" service/protocols/kserve_v2/generated; then
    echo "service/protocols/kserve_v2/generated is stale: run 'make generate' and commit the result" >&2
    exit 1
fi
echo "generated code is up to date"
