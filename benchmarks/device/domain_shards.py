"""Prepare the domain grid for concurrent sweeps on one GPU machine (benchmarks/device/domain_gpu.sh).

    python3 benchmarks/device/domain_shards.py --shards 10 --grids DIR [--model-in .carry/model --model-out DIR]
    python3 benchmarks/device/domain_shards.py --split "8,10;3,4" --grids DIR    # chosen arms per shard
        [--tiny-beir DIR --beir-from .carry/data/retrieval/scifact]

- Splits the arms of ``src/smoothcse/grids/domain.toml`` round-robin into ``--shards`` grid files (same
  [fixed], evaluations and description; each keeps the grid's seed axis first), so that each can run as
  its own ``smoothcse sweep`` with its own --out: all-MiniLM-L6-v2 leaves one GPU mostly idle, and on a
  CPU one core trains as fast as two, so two one-core sweeps finish twice the arms. ``--split`` chooses
  the arms of each shard instead (indices into the grid's arm list, from 0).
- Widens the fp16 weights that prepare.sh carried back to fp32 (exactly: every fp16 value is an fp32 one).
- ``--tiny-beir``: writes a BEIR folder of the first 40 abstracts and the queries judged on them, for a dry
  run on a CPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

import tomllib

GRID = Path(__file__).resolve().parents[2] / "src" / "smoothcse" / "grids" / "domain.toml"


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_shards(shards: int, folder: Path, split: str | None = None) -> None:
    """``split``: the arms of each shard by their index in the grid, e.g. ``"9,10;3,4"`` (else round-robin)."""
    grid = tomllib.loads(GRID.read_text(encoding="utf-8"))
    arms = grid["grid"]["arm"]
    folder.mkdir(parents=True, exist_ok=True)
    top = {k: v for k, v in grid.items() if k not in ("fixed", "grid")}
    chosen = [[arms[int(i)] for i in part.split(",")] for part in split.split(";")] if split else None
    for index in range(len(chosen) if chosen else shards):
        mine = chosen[index] if chosen else arms[index::shards]
        if not mine:
            continue
        lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
        lines += ["", "[fixed]", *(f"{k} = {toml_value(v)}" for k, v in grid["fixed"].items())]
        lines += ["", "[grid]", f"seed = {toml_value(grid['grid']['seed'])}", "arm = ["]
        lines += [f"    {toml_value(arm)}," for arm in mine]
        lines += ["]", ""]
        (folder / f"shard-{index}.toml").write_text("\n".join(lines), encoding="utf-8")
        print(f"shard-{index}: {len(mine)} arms")


def widen_model(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"), dirs_exist_ok=True)
    weights = load_file(str(source / "model.safetensors"))
    save_file(
        {k: w.float().contiguous() for k, w in weights.items()}, str(target / "model.safetensors"), {"format": "pt"}
    )


def tiny_beir(source: Path, target: Path, documents: int = 40) -> None:
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines:
        corpus = [next(lines) for _ in range(documents)]
    ids = {json.loads(line)["_id"] for line in corpus}
    with gzip.open(target / "corpus.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(corpus)
    queries: set[str] = set()
    for split in ("train", "test"):
        rows = (source / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        kept = [row for row in rows[1:] if row.split("\t")[1] in ids]
        queries |= {row.split("\t")[0] for row in kept}
        (target / "qrels" / f"{split}.tsv").write_text("\n".join([rows[0], *kept]) + "\n", encoding="utf-8")
    with open(source / "queries.jsonl", encoding="utf-8") as lines, open(target / "queries.jsonl", "w") as out:
        out.writelines(line for line in lines if json.loads(line)["_id"] in queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--split", help="arms per shard by index in the grid: '9,10;3,4' (else round-robin)")
    parser.add_argument("--grids", type=Path, required=True)
    parser.add_argument("--model-in", type=Path)
    parser.add_argument("--model-out", type=Path)
    parser.add_argument("--tiny-beir", type=Path)
    parser.add_argument("--beir-from", type=Path)
    args = parser.parse_args()
    write_shards(args.shards, args.grids, args.split)
    if args.model_in and args.model_out:
        widen_model(args.model_in, args.model_out)
    if args.tiny_beir and args.beir_from:
        tiny_beir(args.beir_from, args.tiny_beir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
