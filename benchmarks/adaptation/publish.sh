#!/usr/bin/env bash
# Copy a domain sweep's results (sweep.json, every run's result.json; no models) into docs/adaptation/<name>
# and render its report there. Usage: benchmarks/adaptation/publish.sh SWEEP_DIR [NAME]
# The runs' own result.json files record the commit that produced each ("code").
set -euo pipefail
sweep=${1:?usage: publish.sh SWEEP_DIR [NAME]}
name=${2:-domain-cpu-200}
here=$(cd "$(dirname "$0")/../.." && pwd)
dest="$here/docs/adaptation/$name"
mkdir -p "$dest/runs"
cp "$sweep/sweep.json" "$dest/"
for run in "$sweep"/runs/*/; do
  [ -f "$run/result.json" ] || continue
  mkdir -p "$dest/runs/$(basename "$run")"
  cp "$run/result.json" "$dest/runs/$(basename "$run")/"
done
(cd "$here" && smoothcse report "docs/adaptation/$name" --out "docs/adaptation/$name/report.md")  # a relative folder in the report
echo "published $(ls "$dest/runs" | wc -l) runs into $dest"
