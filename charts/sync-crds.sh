#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, from `make crds`) into the chart, under
# files/crds/ (templates/crds.yaml renders them, so helm upgrade applies them).
# The chart's copies are never edited by hand; tests/chart/check.sh fails when
# they differ from crds/.
#   charts/sync-crds.sh          copy
#   charts/sync-crds.sh --check  only compare (exit 1 when they differ)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/crds
dst=$root/charts/pilotlight/files/crds

if [ "${1:-}" = "--check" ]; then
  if diff -r -q "$src" "$dst" >/dev/null 2>&1; then exit 0; fi
  echo "charts/pilotlight/files/crds differs from crds/ (run charts/sync-crds.sh):" >&2
  diff -r -q "$src" "$dst" >&2 || true
  exit 1
fi

mkdir -p "$dst"
# Remove copies of CRDs that are gone from crds/, then copy the current ones.
find "$dst" -maxdepth 1 -type f -name '*.yaml' -delete
cp "$src"/*.yaml "$dst"/
echo "synced $(ls "$dst" | wc -l) CRD file(s) into charts/pilotlight/files/crds"
