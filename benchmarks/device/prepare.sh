#!/usr/bin/env bash
# Run HERE (the machine with ../shared), before benchmarks/device/gpu_check.sh runs on a GPU machine.
# Fills the git-ignored .carry/ (tokenizer, evaluation data, corpus sample) and .whl/ (packages the GPU
# image lacks: datasets for sentence-transformers' Trainer, and what it needs). ~10 MB in all.
# Then: device run, carry [".carry", ".whl"], command "bash benchmarks/device/gpu_check.sh", timeout_s 560.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=$(python -c "from smoothcse.datadir import resolve_data_dir; print(resolve_data_dir())")
model=$(python -c "from smoothcse.model.encoder import resolve_model_path; print(resolve_model_path('all-MiniLM-L6-v2'))")
rm -rf .carry && mkdir -p .carry/tokenizer .carry/data/corpus .carry/data/downstream
cp "$model"/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} .carry/tokenizer/
cp "$data/corpus/enwiki2015_sample10k.txt" .carry/data/corpus/
cp -r "$data/downstream/STS" "$data/downstream/SICK" .carry/data/downstream/
rm -rf .whl && mkdir .whl
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
du -sh .carry .whl
