#!/usr/bin/env bash
# Runs ON the GPU machine (device tool), after benchmarks/device/prepare.sh ran here: the `domain` grid
# (src/smoothcse/grids/domain.toml: 25 arms on SciFact) with seeds 42,43,44, in fp32 like the CPU runs, as
# SHARDS concurrent sweeps (each its own --out and caches; all-MiniLM-L6-v2 leaves one GPU mostly idle).
# Every 20 s, and at the end, every run's result.json, the sweeps' sweep.json and logs are packed into
# $OUT/domain-runs.tgz, so a call cut short still returns what finished. The model is all-MiniLM-L6-v2 with
# its weights rounded to fp16 for the journey (prepare.sh), widened to fp32 here: its own base row is
# measured. If time is left, benchmarks/device/gpu_check.sh runs in what remains ($OUT/gpu-check.tgz).
# Dry run on a CPU (2 steps, 40 abstracts, STS-B only):
#   SMOKE=1 DEVICE=cpu SHARDS=2 SEEDS=42 OUT=/tmp/domain-smoke bash benchmarks/device/domain_gpu.sh
# Locally: tar xzf domain-runs.tgz, then benchmarks/adaptation/merge.sh (one folder of all shards' runs).
set -u
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}; SHARDS=${SHARDS:-10}; SEEDS=${SEEDS:-42,43,44}; DEADLINE=${DEADLINE:-540}
OUT=${OUT:-/tmp/domain-gpu-out}; mkdir -p "$OUT"; LOG=$OUT/log.txt
WORK=${WORK:-/tmp/domain-gpu}; rm -rf "$WORK"; mkdir -p "$WORK"/logs
export PYTHONPATH=$PWD/src:$PWD/.carry/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  SMOOTHCSE_DATA=$PWD/.carry/data SMOOTHCSE_CODE=$(cat .carry/commit) OMP_NUM_THREADS=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c "import torch, transformers, sentence_transformers as st, blingfire; print('torch', torch.__version__, 'transformers', transformers.__version__, 'st', st.__version__)"
  echo "commit $SMOOTHCSE_CODE, shards $SHARDS, seeds $SEEDS, device $DEVICE"; } >>"$LOG" 2>&1
MODEL=$WORK/all-MiniLM-L6-v2
EXTRA=(); PREP=(--shards "$SHARDS" --grids "$WORK/grids" --model-in .carry/model --model-out "$MODEL")
if [ "${SMOKE:-0}" = 1 ]; then
  EXTRA=(--beir "$WORK/tiny-beir" --max-steps 2 --sts-tasks STSb)
  PREP+=(--tiny-beir "$WORK/tiny-beir" --beir-from .carry/data/retrieval/scifact)
fi
python3 benchmarks/device/domain_shards.py "${PREP[@]}" >>"$LOG" 2>&1 || { echo "preparation failed" | tee -a "$LOG"; exit 1; }

pack() {
  (cd "$WORK" && tar czf "$OUT/domain-runs.tgz.part" logs grids $(ls -d sweeps/*/sweep.json sweeps/*/runs/*/result.json 2>/dev/null)) \
    && mv "$OUT/domain-runs.tgz.part" "$OUT/domain-runs.tgz"
}
limit=$((DEADLINE - SECONDS - 30))
for grid in "$WORK"/grids/shard-*.toml; do
  shard=$(basename "$grid" .toml)
  timeout "$limit" python3 -m smoothcse sweep "$grid" --out "$WORK/sweeps/$shard" --model "$MODEL" --device "$DEVICE" \
    --seeds "$SEEDS" --set precision=fp32 --cache-dir "$WORK/cache/$shard" "${EXTRA[@]}" >"$WORK/logs/$shard.log" 2>&1 &
done
echo "=== $(jobs -p | wc -l) sweeps started $(date +%T), limit ${limit}s" | tee -a "$LOG"
while [ -n "$(jobs -pr)" ]; do
  sleep 20; pack
  echo "$(date +%T) $SECONDS s: $(ls "$WORK"/sweeps/*/runs/*/result.json 2>/dev/null | wc -l) results; $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)" >>"$LOG"
done
wait; pack
echo "=== sweeps done after $SECONDS s" | tee -a "$LOG"
python3 - "$WORK/sweeps" <<'PY' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*/runs/*/result.json")):
    r = json.loads(path.read_text())
    print(path.parent.name[:70].ljust(70), r.get("status"), json.dumps(r.get("scores") or {})[:160])
PY
for f in "$WORK"/logs/*.log; do echo "--- $f"; tail -4 "$f"; done >>"$LOG"
left=$((DEADLINE - SECONDS))
if [ "${SMOKE:-0}" != 1 ] && [ "$left" -gt 150 ]; then
  echo "=== gpu_check in the ${left}s left" | tee -a "$LOG"
  OUT=$WORK/gpu-check DEADLINE=$((left - 15)) bash benchmarks/device/gpu_check.sh >>"$LOG" 2>&1
  tar czf "$OUT/gpu-check.tgz" -C "$WORK" gpu-check
fi
echo "done $(date +%T) after $SECONDS s" | tee -a "$LOG"
