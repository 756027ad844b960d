"""The issue-5 figures from one gpu_check.sh run, as markdown for docs/performance.md and the issue note.

    python benchmarks/device/summarise.py <files_at>/results [--log <files_at>/log.txt]

Reads the stages' JSON (bench reports, eval, training metrics) and prints: every bench stage's
steps/s, sentences/s, MFU and peak memory; the ratio against sentence-transformers; each objective's
cost over plain SimCSE; the 7 STS tasks' evaluation time; the cost of STS-B dev evaluation every 125
steps; and the sync-check lines of the log. Stages that did not finish are listed as missing, never
filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCH_STAGES = [  # file stem, what it is
    ("st-vs-fast", "fast path (default), eager"),
    ("compile-cg", "--compile --compile-mode reduce-overhead"),
    ("compile", "--compile"),
    ("simcse+gs", "GS-InfoNCE"),
    ("simcse+is", "IS-CSE"),
    ("simcse+soft-weight", "SoftCSE (weights)"),
    ("eager", "--no-fast-path"),
    ("rows64", "--rows-per-forward 64"),
    ("avg", "--pooler avg (whole last layer; cls runs it for [CLS] alone)"),
]
OBJECTIVES = ("simcse+gs", "simcse+is", "simcse+soft-weight")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _summary(run: Path) -> dict[str, Any] | None:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return None
    records = [json.loads(line) for line in lines if line.strip()]
    return next((r["summary"] for r in reversed(records) if "summary" in r), None)


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def summarise(results: Path, log: Path | None) -> str:
    out: list[str] = []
    reports = {stem: _load(results / f"{stem}.json") for stem, _ in BENCH_STAGES}
    env = next((r["environment"] for r in reports.values() if r), None)
    if env:
        out.append(
            f"{env['device_name']} ({env['device']}, {env['precision']}), torch {env['torch']}, "
            f"transformers {env['transformers']}, sentence-transformers {env['sentence_transformers']}.\n"
        )
    out += ["| stage | steps/s | sentences/s | MFU | peak memory (MiB) |", "|---|---:|---:|---:|---:|"]
    missing = []
    for stem, what in BENCH_STAGES:
        report = reports[stem]
        if report is None:
            missing.append(stem)
            continue
        ours = report["frameworks"]["smoothcse"]
        mfu = f"{ours['mfu']:.1%}" if ours.get("mfu") is not None else "—"
        out.append(
            f"| {what} (`{stem}`) | {ours['steps_per_s']:.1f} | {ours['sentences_per_s']:,.0f} | {mfu} | "
            f"{_mb(ours.get('peak_memory_mb'))} |"
        )
        st = report["frameworks"].get("sentence-transformers")
        if st:
            st_mfu = f"{st['mfu']:.1%}" if st.get("mfu") is not None else "—"
            out.append(
                f"| sentence-transformers (same run) | {st['steps_per_s']:.1f} | {st['sentences_per_s']:,.0f} | "
                f"{st_mfu} | {_mb(st.get('peak_memory_mb'))} |"
            )
    head = reports["st-vs-fast"]
    if head and head.get("ratio"):
        out.append(
            f"\nsmoothcse / sentence-transformers: **{head['ratio']['sentences_per_s']:.2f}×** sentences/s "
            f"(`{head['command']}`)."
        )
    if head:
        base = head["frameworks"]["smoothcse"]["steps_per_s"]
        costs = []
        for stem in OBJECTIVES:
            if reports[stem]:
                rate = reports[stem]["frameworks"]["smoothcse"]["steps_per_s"]
                costs.append(f"{stem} {100 * (base / rate - 1):+.1f}%")
        if costs:
            out.append(
                "\nObjective cost over simcse (steps/s of separate runs, fast path, eager): " + ", ".join(costs) + "."
            )
    evaluation = _load(results / "eval-sts.json")
    if evaluation:
        average = evaluation["sts"].get("avg", {}).get("spearman")
        out.append(
            f"\n7 STS tasks evaluated in {evaluation['seconds']:.1f} s (from loading the model to the last score; "
            f"avg Spearman {average:.2f} for this random-init model)."
        )
    else:
        missing.append("eval-sts")
    plain, dev = _summary(results / "train-eval0"), _summary(results / "train-eval125")
    if plain and dev:
        cost = 100 * (dev["seconds"] / plain["seconds"] - 1)
        out.append(
            f"\nTraining {plain['steps']} steps: {plain['seconds']:.1f} s without dev evaluation, "
            f"{dev['seconds']:.1f} s with STS-B dev every 125 steps ({cost:+.1f}%; both include loading)."
        )
    else:
        missing += [name for name, s in (("train-eval0", plain), ("train-eval125", dev)) if s is None]
    curves = results / "loss-curves" / "summary.md"
    if curves.is_file():
        out.append(f"\nLoss curves: see {curves} and curves.png beside it.")
    else:
        missing.append("loss-curves")
    if log is not None and log.is_file():
        sync = [line for line in log.read_text().splitlines() if ": no sync in " in line or ": SYNC: " in line]
        if sync:
            out.append("\nSync check:\n" + "\n".join(f"- {line}" for line in sync))
        skipped = [
            line.strip("= ") for line in log.read_text().splitlines() if line.startswith("===") and "skipped" in line
        ]
        if skipped:
            out.append("\nSkipped for time: " + "; ".join(skipped))
    if missing:
        out.append("\nNo result (stage failed, skipped or cut short; see log.txt): " + ", ".join(missing))
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    if not args.results.is_dir():
        print(f"{args.results}: no such folder (pass the results/ folder gpu_check.sh wrote)", file=sys.stderr)
        return 2
    sys.stdout.write(summarise(args.results, args.log or args.results.parent / "log.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
