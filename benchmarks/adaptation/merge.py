"""Merge the shard sweeps of benchmarks/device/domain_gpu.sh into one sweep folder of the `domain` grid.

    python benchmarks/adaptation/merge.py --out runs/domain-gpu SHARD_DIR [SHARD_DIR ...]

Copies every run's result.json into OUT/runs/ (adding ``train.terms`` from the run's metrics.jsonl to a
result written before results carried them) and writes OUT/sweep.json as one `smoothcse sweep domain`
with the shards' overrides and seeds would have: the runs in the grid's order, each shard's result checked
against the configuration the whole grid gives it (a mismatch stops the merge, naming the run). Then
`smoothcse report OUT` or benchmarks/adaptation/publish.sh OUT NAME.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from smoothcse.experiments.grid import load_grid
from smoothcse.experiments.results import RESULT_FILE, RUNS_DIR, RunResult, SweepRecord, loss_terms, read_metrics
from smoothcse.experiments.sweep import SweepOptions, plan, sweep_record


def add_loss_terms(path: Path, records: list[dict]) -> None:
    """A result written before results carried ``train.terms`` (6f67373) gets them from its run's metrics.jsonl."""
    result = RunResult.load(path)
    if result is None or result.train is None or "terms" in result.train or not loss_terms(records):
        return
    result.train["terms"] = loss_terms(records)
    result.save(path)
    print(f"{path.parent.name}: loss terms added from its metrics.jsonl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("shards", type=Path, nargs="+")
    args = parser.parse_args()
    records = [SweepRecord.load(shard) for shard in args.shards]
    if any(record is None or record.grid is None for record in records):
        sys.exit("every shard folder needs its sweep.json")
    first = records[0]
    grid = load_grid("domain")
    grid.axes["seed"] = list(first.grid.axes["seed"])
    for shard in args.shards:
        for result in sorted((shard / RUNS_DIR).glob(f"*/{RESULT_FILE}")):
            target = args.out / RUNS_DIR / result.parent.name
            if target.exists():
                sys.exit(f"{result.parent.name}: in two shards")
            target.mkdir(parents=True)
            shutil.copy2(result, target / RESULT_FILE)
            add_loss_terms(target / RESULT_FILE, read_metrics(result.parent))
    options = SweepOptions(
        out=args.out,
        overrides={k: v for k, v in (first.overrides or {}).items() if k != "cache_dir"},  # each shard had its own
        eval_tasks=tuple(first.eval_tasks) or None,
        sts_tasks=tuple(first.sts_tasks) if first.sts_tasks else None,
    )
    planned = plan(grid, options)
    sweep_record(grid, options, planned, {}).save(args.out)
    done = sum(item.status == "complete" for item in planned)
    print(f"{args.out}: {done} of {len(planned)} runs of the domain grid complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
