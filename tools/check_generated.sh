#!/usr/bin/env bash
# Fail when the committed generated code differs from a fresh generation of protos/.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
bash tools/generate_protos.sh "$fresh/v2" "$fresh/cli" >/dev/null
for pair in "v2 service/protocols/kserve_v2/generated" "cli service/tfserving_cli/generated"; do
    set -- $pair
    if ! diff -r -x __pycache__ "$fresh/$1" "$2"; then
        echo "$2 is stale: run 'make generate' and commit the result" >&2
        exit 1
    fi
done
echo "generated code is up to date"
