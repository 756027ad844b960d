"""The fast path's loss curve against the plain eager path's: same model, data, seed and batches.

Trains the same random-initialised BERT twice with ``smoothcse.training.loop.train``: once on the fast path
(length-sorted forwards, prefetching loader; with ``--compile`` also torch.compile on bucketed
lengths) and once with ``fast_path=False`` (one padded forward per step, batches collated in the
loop). Both runs see the same batches in the same order; dropout is on, as in real training, so the
two runs draw different dropout masks (forwards of other shapes consume the random stream
differently): the curves agree only up to that noise. The script measures how far apart they are
against that noise: per window of steps, the mean of the per-step difference (fast - eager) and its
standard error. With ``--reference-rows R`` a third run takes the fast path with R rows per forward: the same
distribution again, other dropout draws, so the gap between the two fast runs is the yardstick for
the gap between fast and eager. Writes curves.json, curves.png and summary.md into --out.

    python benchmarks/loss_curves.py --out runs/loss-curves                       # CPU: 4 x 256 BERT, 300 steps
    python benchmarks/loss_curves.py --layers 12 --hidden 768 --device cuda --compile --out runs/loss-curves-gpu
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np


def build_random_bert(folder: Path, layers: int, hidden: int, seed: int) -> Path:
    """A random-init BERT (bert-base when layers=12, hidden=768) with the real uncased WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from smoothcse.model.encoder import resolve_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def run(args: argparse.Namespace, model: str, out: Path, fast: bool, rows_per_forward: int = 0) -> dict:
    from smoothcse.config import build_config
    from smoothcse.training.loop import train

    config = build_config(
        overrides=dict(
            model=model,
            data=args.data,
            out=str(out),
            batch_size=args.batch_size,
            max_len=args.max_len,
            max_steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            eval_every=0,
            log_every=1,
            device=args.device,
            fast_path=fast,
            compile=args.compile and fast,
            rows_per_forward=rows_per_forward,
            pooler="cls",
            objective={"spec": args.objective},
        )
    )
    started = time.perf_counter()
    train(config, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    return {
        "fast_path": fast,
        "compile": config.compile,
        "rows_per_forward": rows_per_forward,
        "seconds": seconds,
        "loss": losses,
    }


def windows(fast: list[float], eager: list[float], size: int) -> list[dict]:
    """Per window: both means, the mean per-step difference and its standard error."""
    rows = []
    for start in range(0, len(fast), size):
        a, b = np.asarray(fast[start : start + size]), np.asarray(eager[start : start + size])
        diff = a - b
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        rows.append(
            {
                "steps": f"{start + 1}-{start + len(diff)}",
                "fast": float(a.mean()),
                "eager": float(b.mean()),
                "diff": float(diff.mean()),
                "se": float(se),
                "z": float(diff.mean() / se) if se > 0 else float("nan"),
            }
        )
    return rows


def plot(
    fast: list[float],
    eager: list[float],
    path: Path,
    title: str,
    reference: list[float] | None = None,
    reference_rows: int = 0,
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    steps = np.arange(1, len(fast) + 1)
    axis.plot(steps, eager, label="eager (--no-fast-path)", color="tab:blue", alpha=0.8, linewidth=1.0)
    axis.plot(steps, fast, label="fast path", color="tab:orange", alpha=0.8, linewidth=1.0)
    if reference is not None:
        axis.plot(
            steps,
            reference,
            label=f"fast path, {reference_rows} rows per forward",
            color="tab:green",
            alpha=0.6,
            linewidth=1.0,
        )
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (InfoNCE)")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A model folder or hub id; default: a random-init BERT of --layers x --hidden")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--data", default="corpus/enwiki2015_sample10k.txt")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--objective", default="simcse")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="the fast-path run also uses --compile")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=0,
        help="also train the fast path with this many rows per forward: a noise reference (other dropout draws)",
    )
    parser.add_argument("--out", default="runs/loss-curves")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model or str(build_random_bert(out / "random-bert", args.layers, args.hidden, args.seed))
    eager = run(args, model, out / "eager", fast=False)
    fast = run(args, model, out / "fast", fast=True)
    rows = windows(fast["loss"], eager["loss"], args.window)
    reference = None
    if args.reference_rows:  # same model, data and seed, other forwards: how far dropout draws alone move the curve
        reference = run(args, model, out / "reference", fast=True, rows_per_forward=args.reference_rows)
        reference_rows = windows(reference["loss"], fast["loss"], args.window)
    described = args.model or f"random-init BERT {args.layers} x {args.hidden}"
    title = (
        f"{described}, {args.objective}, batch {args.batch_size}, len {args.max_len}, lr {args.lr:g}, "
        f"seed {args.seed}, {args.device}"
    )
    plot(
        fast["loss"],
        eager["loss"],
        out / "curves.png",
        title,
        reference["loss"] if reference else None,
        args.reference_rows,
    )
    record = {"args": vars(args), "eager": eager, "fast": fast, "windows": rows}
    if reference:
        record.update(reference=reference, reference_windows=reference_rows)
    (out / "curves.json").write_text(json.dumps(record, indent=1))
    lines = [
        f"`python benchmarks/loss_curves.py {' '.join(_given(args))}`".replace("  ", " "),
        "",
        title + ".",
        f"Wall time: eager {eager['seconds']:.1f} s, fast path {fast['seconds']:.1f} s "
        f"({eager['seconds'] / fast['seconds']:.2f}x; both include loading and tokenising).",
        "",
        "The standard error treats the steps of a window as independent; once two runs' trajectories",
        "drift apart their differences are correlated and it understates the uncertainty, so compare",
        "with the reference (two fast-path runs that differ only in their dropout draws) when there is one.",
        "",
        "| steps | eager mean loss | fast mean loss | mean(fast - eager) | standard error | z |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['steps']} | {row['eager']:.4f} | {row['fast']:.4f} | {row['diff']:+.4f} "
            f"| {row['se']:.4f} | {row['z']:+.2f} |"
        )
    if reference:
        lines += [
            "",
            f"Reference: the fast path with --rows-per-forward {args.reference_rows} against the fast path "
            f"(auto): the same distribution, other dropout draws ({reference['seconds']:.1f} s).",
            "",
            "| steps | fast mean loss | reference mean loss | mean(reference - fast) | standard error | z |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in reference_rows:
            lines.append(
                f"| {row['steps']} | {row['eager']:.4f} | {row['fast']:.4f} | {row['diff']:+.4f} "
                f"| {row['se']:.4f} | {row['z']:+.2f} |"
            )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _given(args: argparse.Namespace) -> list[str]:
    defaults = {
        "layers": 4,
        "hidden": 256,
        "data": "corpus/enwiki2015_sample10k.txt",
        "steps": 300,
        "batch_size": 64,
        "max_len": 32,
        "lr": 3e-5,
        "seed": 42,
        "objective": "simcse",
        "device": "auto",
        "compile": False,
        "window": 50,
        "out": "runs/loss-curves",
        "model": None,
        "reference_rows": 0,
    }
    given = []
    for key, value in vars(args).items():
        if value != defaults.get(key):
            given.append(f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}"))
    return given


if __name__ == "__main__":
    main()
