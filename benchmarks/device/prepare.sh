#!/usr/bin/env bash
# Run HERE (the machine with ../shared), before a script of benchmarks/device/ runs on a GPU machine.
# Fills the git-ignored .carry/ and .whl/ (packages the GPU image lacks: datasets for sentence-transformers'
# Trainer and what it needs; in .carry/site, blingfire's library alone for the domain grid's sentence splitting):
# - gpu_check.sh: .carry/tokenizer, .carry/data/{corpus,downstream}                       (~10 MB)
# - domain_gpu.sh: also .carry/model (all-MiniLM-L6-v2 with its weights rounded to fp16: the fp32 file is
#   91 MB and a call carries at most 64 MiB; domain_gpu.sh widens them back to fp32 there), SciFact, and
#   .carry/commit (the commit the results will name: the device gets a copy without .git)      (~60 MB)
# Then: device run, carry [".carry", ".whl"], command "bash benchmarks/device/<script>.sh", timeout_s 570.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=$(python -c "from smoothcse.datadir import resolve_data_dir; print(resolve_data_dir())")
model=$(python -c "from smoothcse.model.encoder import resolve_model_path; print(resolve_model_path('all-MiniLM-L6-v2'))")
rm -rf .carry && mkdir -p .carry/tokenizer .carry/data/corpus .carry/data/downstream .carry/data/retrieval .carry/model
cp "$model"/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} .carry/tokenizer/
cp "$data/corpus/enwiki2015_sample10k.txt" .carry/data/corpus/
cp -r "$data/downstream/STS" "$data/downstream/SICK" .carry/data/downstream/
cp -r "$data/retrieval/scifact" .carry/data/retrieval/ && chmod -R u+w .carry/data
(cd "$model" && cp -r --parents $(ls | grep -v '^model.safetensors$') "$OLDPWD/.carry/model/")
python - "$model/model.safetensors" .carry/model/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({name: w.half().contiguous() for name, w in weights.items()}, sys.argv[2], metadata={"format": "pt"})
PY
git rev-parse HEAD > .carry/commit
git diff --quiet HEAD -- src || echo "warning: src/ has uncommitted changes; results will name $(cat .carry/commit)" >&2
rm -rf .whl && mkdir .whl
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 blingfire==0.1.8
# blingfire's wheel is 42 MB of tokenizer models; sentence splitting needs only its library: carry that
mkdir -p .carry/site && unzip -q -o .whl/blingfire-*.whl 'blingfire/*.py' 'blingfire/*.so' -d .carry/site
rm .whl/blingfire-*.whl
du -sh .carry .whl
