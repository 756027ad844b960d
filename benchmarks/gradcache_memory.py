"""Peak memory of one training step at a large batch, with and without gradient caching.

Each setting runs in a fresh subprocess: build a random-init BERT (BertConfig of the given shape,
bert-base-uncased's vocabulary size), SimCSE's cls + MLP head, AdamW; then one full step
(``smoothcse.training.steps.contrastive_step`` — both dropout views, the objective, backward — and the
optimizer step) on random token ids of full length. Reports the process's peak resident memory
(``getrusage`` ``ru_maxrss``), the resident memory just before the step, and their difference,
which is what the step itself needs (activations, gradients, optimizer state). On a GPU it reports
``torch.cuda.max_memory_allocated`` instead.

    python benchmarks/gradcache_memory.py                                   # the recorded CPU run
    python benchmarks/gradcache_memory.py --layers 12 --hidden 768 --heads 12 --device cuda \
        --mini-batch 0 64 128                                               # BERT-base on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from transformers import BertConfig, BertModel

    from smoothcse.model.encoder import SentenceEncoder
    from smoothcse.objectives import ObjectiveConfig, build_objective
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.steps import contrastive_step

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = BertConfig(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    encoder = (
        SentenceEncoder(BertModel(config, add_pooling_layer=False), tokenizer=None, pooler="cls").to(device).train()
    )
    objective = build_objective(ObjectiveConfig(spec=args.objective)).to(device).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=3e-5)
    input_ids = torch.randint(1000, config.vocab_size, (args.batch, args.max_len), device=device)
    attention_mask = torch.ones_like(input_ids)
    amp = torch.bfloat16 if device.type == "cuda" else None

    before_kib = _current_rss_kib()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before_gpu = torch.cuda.memory_allocated()
    started = time.perf_counter()
    terms = contrastive_step(
        encoder,
        objective,
        input_ids,
        attention_mask,
        step=0,
        total_steps=1,
        info=DistInfo(),
        amp_dtype=amp,
        mini_batch_size=args.mini_batch,
    )
    torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss = float(terms["loss"])
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {
        "mini_batch": args.mini_batch,
        "params_m": sum(p.numel() for p in encoder.parameters()) / 1e6,
        "rss_before_step_gib": before_kib / 2**20,
        "peak_rss_gib": peak_kib / 2**20,
        "step_rss_gib": (peak_kib - before_kib) / 2**20,
        "seconds": seconds,
        "loss": loss,
    }
    if device.type == "cuda":
        result["gpu_before_step_gib"] = before_gpu / 2**30
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def _current_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--max-len", type=int, default=32)
    parser.add_argument("--mini-batch", type=int, nargs="+", default=[0, 64], help="0 = no caching")
    parser.add_argument("--objective", default="simcse")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 on a shared machine (busy-waiting threads on oversubscribed cores slow small ops ~50x)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        args.mini_batch = args.mini_batch[0]
        print(json.dumps(child(args)))
        return

    rows = []
    for mini_batch in args.mini_batch:
        command = [sys.executable, __file__, "--child", "--mini-batch", str(mini_batch)] + [
            f"--{name}={getattr(args, name.replace('-', '_'))}"
            for name in ("layers", "hidden", "heads", "batch", "max-len", "objective", "device", "threads")
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"mini-batch {mini_batch} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    shape = f"BERT {args.layers} layers x {args.hidden} hidden ({rows[0]['params_m']:.1f}M parameters)"
    print(
        f"\n{shape}, batch {args.batch}, max_len {args.max_len}, {args.objective}, {args.device}, "
        f"{args.threads} threads\n"
    )
    gpu = args.device.startswith("cuda")
    header = (
        "| mini-batch | peak RSS (GiB) | RSS before step (GiB) | step's own (GiB) |"
        + (" GPU peak (GiB) |" if gpu else "")
        + " step (s) | loss |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        cells = [
            str(row["mini_batch"] or "off"),
            f"{row['peak_rss_gib']:.2f}",
            f"{row['rss_before_step_gib']:.2f}",
            f"{row['step_rss_gib']:.2f}",
        ]
        if gpu:
            cells.append(f"{row['gpu_peak_gib']:.2f}")
        cells += [f"{row['seconds']:.1f}", f"{row['loss']:.4f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
