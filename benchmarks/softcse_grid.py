"""Choose SoftCSE's defaults by experiment: train each variant over direction x strength, score STS-B dev.

Every run trains the same base on the same data with the same seed; the only difference is the
objective. Selection uses STS-B **dev** (never a test set). Writes a markdown table and JSON.

    python benchmarks/softcse_grid.py --out runs/softcse-grid            # the recorded CPU run
    python benchmarks/softcse_grid.py --model bert-base-uncased --steps 2000 --batch-size 64 \
        --data wiki1m_for_simcse.txt --out runs/softcse-grid-bert          # the real thing, on a GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from smoothcse.config import build_config
from smoothcse.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument(
        "--pooler",
        default="cls",
        help="cls trains SimCSE's MLP head on [CLS] "
        "(a real learning signal even for an already sentence-trained model)",
    )
    parser.add_argument("--data", default="corpus/enwiki2015_sample10k.txt")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--strengths", default="0.5,1.0")
    parser.add_argument("--directions", default="down,up")
    parser.add_argument("--variants", default="soft-weight,soft-temp")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/softcse-grid")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [("simcse", None, 0.0)] + [
        (variant, direction, float(strength))
        for variant, direction, strength in itertools.product(
            args.variants.split(","), args.directions.split(","), args.strengths.split(",")
        )
    ]
    results = []
    for spec, direction, strength in runs:
        name = spec if direction is None else f"{spec}-{direction}-{strength:g}"
        objective = {"spec": "simcse" if spec == "simcse" else f"simcse+{spec}", "soft_strength": strength}
        if direction:
            objective["soft_direction"] = direction
        config = build_config(
            overrides=dict(
                model=args.model,
                pooler=args.pooler,
                data=args.data,
                out=str(out / name),
                max_steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                eval_every=args.steps,
                log_every=args.steps,
                device=args.device,
                objective=objective,
            )
        )
        started = time.perf_counter()
        result = train(config, overwrite=True, progress=False)
        row = {
            "run": name,
            "variant": spec,
            "direction": direction,
            "strength": strength,
            "stsb_dev": result.final_dev,
            "seconds": round(time.perf_counter() - started, 1),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))

    base = results[0]["stsb_dev"]
    lines = [
        f"SoftCSE grid: {args.model} (pooler {args.pooler}), {args.data}, {args.steps} steps, batch {args.batch_size}, "
        f"lr {args.lr:g}, seed {args.seed}; STS-B dev Spearman x 100 after training",
        "",
        "| variant | direction | strength | STS-B dev | vs SimCSE |",
        "|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row['variant']} | {row['direction'] or '-'} | {row['strength']:g} | {row['stsb_dev']:.2f} "
            f"| {row['stsb_dev'] - base:+.2f} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
