"""Each arm's nDCG@10 change against the base arm of the same seed, with a 95% paired bootstrap interval
over the queries: how much of a one-seed difference the choice of queries alone could make.

    python benchmarks/adaptation/query_ci.py docs/adaptation/domain-cpu-200

Reads every run's result.json (``retrieval.per_query`` for test, ``retrieval.splits.<split>.per_query``
for the others). The interval is over queries only; the spread over seeds is the report's ± column.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRIC = "ndcg_at_10"


def per_query(result: dict) -> dict[str, dict[str, float]]:
    """{split: {query id: nDCG@10 × 100}} of one result.json."""
    retrieval = result["retrieval"]
    splits = {retrieval["split"]: retrieval["per_query"][METRIC]}
    for split, scores in retrieval.get("splits", {}).items():
        splits[split] = scores["per_query"][METRIC]
    return splits


def paired_interval(arm: dict[str, float], base: dict[str, float], draws: int, seed: int) -> tuple[float, float, float]:
    """Mean per-query difference arm − base and its 2.5 / 97.5 percentiles over bootstrap resamples of queries."""
    if arm.keys() != base.keys():
        raise SystemExit("the arm and the base were scored on different queries; compare runs of one BEIR folder")
    ids = sorted(base)
    diffs = np.array([arm[q] - base[q] for q in ids])
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(draws, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="a domain sweep folder (runs/*/result.json)")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {p.parent.name: json.loads(p.read_text()) for p in sorted(args.sweep.glob("runs/*/result.json"))}
    bases = {r["values"]["seed"]: per_query(r) for r in results.values() if r["values"].get("objective.spec") == "base"}
    print("| run | split | queries | Δ nDCG@10 vs base | 95% interval over queries |\n|---|---|---:|---:|---|")
    for name, result in results.items():
        base = bases.get(result["values"].get("seed"))
        if base is None or result["values"].get("objective.spec") == "base":
            continue
        for split, scores in per_query(result).items():
            mean, low, high = paired_interval(scores, base[split], args.draws, args.seed)
            print(f"| {name} | {split} | {len(scores)} | {mean:+.2f} | [{low:+.2f}, {high:+.2f}] |")


if __name__ == "__main__":
    main()
