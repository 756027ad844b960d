"""Does a training step synchronise the host with the GPU? Run on a CUDA machine (gpu_check.sh does).

For each objective: a few warm-up steps of the benchmark's smoothcse runner (the training loop's own
pieces), then steps under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any call
that waits for the device (``.item()``, ``bool(tensor)``, a pageable copy back, ...). Prints one
line per objective: ``no sync`` or the first synchronising call with its stack. On a CPU it runs the
same steps without the check (a dry run of the plumbing). tests/model/test_encoder_mask.py checks the
same property on the CPU by recording tensor -> Python conversions.

    python benchmarks/device/sync_check.py --model /tmp/bert-base --device cuda
"""

from __future__ import annotations

import argparse
import sys
import traceback

import torch

from smoothcse.bench.config import BenchConfig
from smoothcse.bench.frameworks import SmoothCSERunner
from smoothcse.bench.measure import Work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows-per-forward", type=int, default=0)
    parser.add_argument(
        "--objectives", default="simcse,simcse+gs,simcse+is,simcse+soft-weight,simcse+gs+is+soft-weight"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    amp_dtype = torch.bfloat16 if device.type == "cuda" else None
    failures = 0
    for objective in args.objectives.split(","):
        config = BenchConfig(
            model=args.model,
            device=args.device,
            objective=objective,
            pooler="cls",
            rows_per_forward=args.rows_per_forward,
        )
        runner = SmoothCSERunner(config, device, amp_dtype)
        work = Work()
        try:
            for _ in range(args.steps):  # warm-up: allocator, kernels, the IS bank filling
                runner.train_step(work)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(args.steps):
                    runner.train_step(work)
                print(
                    f"{objective}: no sync in {args.steps} steps"
                    + ("" if device.type == "cuda" else " (not checked: CPU)")
                )
            except RuntimeError as err:
                failures += 1
                print(f"{objective}: SYNC: {err}\n{traceback.format_exc()}")
            finally:
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
                    torch.cuda.synchronize()
        finally:
            runner.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
