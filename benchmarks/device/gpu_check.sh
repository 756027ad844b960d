#!/usr/bin/env bash
# Runs ON the GPU machine (device tool), after benchmarks/device/prepare.sh ran here. Every stage has its
# own time limit, cut to what is left before DEADLINE (seconds from the start, default 530: the device
# call's 560 less the hand-back); a stage that fails does not stop the others. Results are written
# straight into $OUT (log.txt, results/*.json|md|png), so what finished comes back even if the call is
# cut short. Most important stages first.
#
# Model: a random-init BertConfig() (exactly bert-base's FLOPs) with the uncased WordPiece vocabulary,
# built on the spot: no hub there. Batch 64, length 32, bf16 (the bench's CUDA default).
# A dry run of the plumbing on a CPU (tiny model, few steps): DEVICE=cpu SMOKE=1 bash benchmarks/device/gpu_check.sh
set -u
DEVICE=${DEVICE:-cuda}
if [ "${SMOKE:-0}" = 1 ]; then SIZE="hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64"; N=2; CURVE=6; EPOCHS="--max-steps 4"
else SIZE=""; N=50; CURVE=300; EPOCHS="--epochs 3"; fi
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check-out}; mkdir -p "$OUT"
R=$OUT/results; rm -rf $R; mkdir -p $R
DEADLINE=${DEADLINE:-530}
LOG=$OUT/log.txt
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false SMOOTHCSE_DATA=$PWD/.carry/data
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 30 ]; then echo "=== $name: skipped, ${left}s left before the deadline" | tee -a "$LOG"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name ($(date +%T), limit ${limit}s): $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$LOG"
}
light() {  # drop weights and checkpoints of a run folder: only its metrics and summaries come back
  rm -rf "$1"/checkpoints "$1"/*.safetensors "$1"/*/checkpoints "$1"/*/*.safetensors 2>/dev/null
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, transformers, sentence_transformers as st; print(torch.__version__, transformers.__version__, st.__version__)"; } >>"$LOG" 2>&1

BERT=/tmp/bert-base
stage build-model 120 python3 -c "
import torch
from transformers import AutoTokenizer, BertConfig, BertModel
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained('.carry/tokenizer')
BertModel(BertConfig(vocab_size=tok.vocab_size, $SIZE), add_pooling_layer=False).save_pretrained('$BERT')
tok.save_pretrained('$BERT')"
B="python3 -m smoothcse bench --model $BERT --device $DEVICE --steps $N --warmup $((N / 5 + 1)) --repeats 3 --pooler cls --quiet"
stage st-vs-fast 150 $B --json $R/st-vs-fast.json --markdown $R/st-vs-fast.md
stage sync-check 90 python3 benchmarks/device/sync_check.py --model $BERT --device $DEVICE --steps 3
stage compile-cudagraphs 200 $B --no-st --compile --compile-mode reduce-overhead --json $R/compile-cg.json --markdown $R/compile-cg.md
stage compile 200 $B --no-st --compile --json $R/compile.json --markdown $R/compile.md
for objective in simcse+gs simcse+is simcse+soft-weight; do
  stage "$objective" 90 $B --no-st --objective $objective --json $R/$objective.json --markdown $R/$objective.md
done
stage eval-sts 120 python3 -m smoothcse eval $BERT --tasks sts --device $DEVICE --json $R/eval-sts.json
T="python3 -m smoothcse train --model $BERT --data corpus/enwiki2015_sample10k.txt $EPOCHS --device $DEVICE --quiet --overwrite"
stage train-eval0 120 $T --eval-every 0 --out $R/train-eval0; light $R/train-eval0
stage train-eval125 120 $T --eval-every 125 --out $R/train-eval125; light $R/train-eval125
stage loss-curves 150 python3 benchmarks/loss_curves.py --model $BERT --device $DEVICE --steps $CURVE --window $((CURVE / 6)) --out $R/loss-curves
light $R/loss-curves
stage eager 90 $B --no-st --no-fast-path --json $R/eager.json --markdown $R/eager.md
stage rows64 90 $B --no-st --rows-per-forward 64 --json $R/rows64.json --markdown $R/rows64.md
stage avg 90 $B --no-st --pooler avg --json $R/avg.json --markdown $R/avg.md
echo "done $(date +%T) after $SECONDS s" | tee -a "$LOG"
