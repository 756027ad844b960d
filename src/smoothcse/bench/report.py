"""The benchmark's report: per-framework medians, FLOPs and MFU, the environment, and the markdown table."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from smoothcse.bench.config import BenchConfig
from smoothcse.bench.measure import (
    CLS_ONLY_FLOPS_FORMULA,
    SENTENCE_TRANSFORMERS,
    SMOOTHCSE,
    Block,
    FrameworkResult,
    ModelShape,
)


def build_report(
    config: BenchConfig,
    environment: dict[str, Any],
    model: dict[str, Any],
    peak: tuple[float | None, str],
    results: dict[str, FrameworkResult],
    shapes: dict[str, ModelShape],
    timeline: list[Block],
) -> dict[str, Any]:
    """The report :func:`~smoothcse.bench.benchmark.run_benchmark` returns (``peak``: FLOP/s and its source)."""
    report: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "command": "smoothcse bench " + " ".join(command_args(config)),
        "environment": environment,
        "model": model,
        "peak_flops": peak[0],
        "peak_flops_source": peak[1],
        "frameworks": {name: summarise(result, shapes[name], peak[0]) for name, result in results.items()},
        "timeline": [
            {
                "framework": b.framework,
                "steps": b.steps,
                "seconds": round(b.seconds, 4),
                "cpu_seconds": round(b.cpu_seconds, 4),
                "steps_per_s": round(b.steps_per_s, 4),
            }
            for b in timeline
        ],
    }
    if SENTENCE_TRANSFORMERS in report["frameworks"]:
        ours, theirs = report["frameworks"][SMOOTHCSE], report["frameworks"][SENTENCE_TRANSFORMERS]
        report["ratio"] = {
            "steps_per_s": ours["steps_per_s"] / theirs["steps_per_s"],
            "sentences_per_s": ours["sentences_per_s"] / theirs["sentences_per_s"],
        }
    return report


def summarise(result: FrameworkResult, shape: ModelShape, peak: float | None) -> dict[str, Any]:
    steps_per_s = result.median_steps_per_s()
    steps = sum(b.steps for b in result.blocks)
    rows = sum(b.work.rows for b in result.blocks) / steps
    tokens = sum(b.work.rows_tokens for b in result.blocks) / steps
    tokens_sq = sum(b.work.rows_tokens_sq for b in result.blocks) / steps
    flops = shape.flops(rows, tokens, tokens_sq)
    return {
        "steps_per_s": steps_per_s,
        "sentences_per_s": steps_per_s * result.batch_size,
        "blocks_steps_per_s": [round(b.steps_per_s, 4) for b in result.blocks],
        "cpu_seconds_per_step": statistics.median(b.cpu_seconds / b.steps for b in result.blocks),
        "blocks_cpu_seconds_per_step": [round(b.cpu_seconds / b.steps, 4) for b in result.blocks],
        "encoder_rows_per_step": rows,
        "padded_tokens_per_step": tokens,
        "mean_padded_length": tokens / rows if rows else 0.0,
        "flops_per_step": flops,
        "flops_formula": shape.formula,
        "tflops_per_s": flops * steps_per_s / 1e12,
        "mfu": flops * steps_per_s / peak if peak else None,
        "peak_memory_mb": result.peak_memory_bytes / 2**20 if result.peak_memory_bytes is not None else None,
    }


def describe_environment(device: Any, precision: str, load_before: tuple[float, ...] | None) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    from smoothcse import __version__

    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "smoothcse": __version__,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def command_args(config: BenchConfig) -> list[str]:
    """The ``smoothcse bench`` flags that give ``config`` (the settings that are not the defaults)."""
    switches = {"sentence_transformers": "--no-st", "compile": "--compile", "fast_path": "--no-fast-path"}
    args: list[str] = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if value == getattr(BenchConfig, item.name):
            continue
        if item.name in switches:
            args.append(switches[item.name])
        else:
            args.extend([f"--{item.name.replace('_', '-')}", str(value)])
    return args


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table plus the settings a reader needs to interpret it."""
    env, cfg = report["environment"], report["config"]
    lines = [
        f"`{report['command']}`",
        "",
        f"{env['device_name']} ({env['device']}, {env['torch_threads']} torch threads, {env['precision']}), "
        f"model {cfg['model']}, batch {cfg['batch_size']}, max length {cfg['max_len']}, objective {cfg['objective']}, "
        f"{cfg['repeats']} alternating blocks of {cfg['steps']} steps after {cfg['warmup']} warm-up steps; medians.",
        "",
        "| framework | steps/s | sentences/s | CPU-s/step | padded tokens/step | GFLOP/step | TFLOP/s | MFU "
        "| peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["frameworks"].items():
        mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"
        memory = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] is not None else "n/a"
        lines.append(
            f"| {name} | {row['steps_per_s']:.3f} | {row['sentences_per_s']:.1f} | {row['cpu_seconds_per_step']:.3f} "
            f"| {row['padded_tokens_per_step']:.0f} "
            f"| {row['flops_per_step'] / 1e9:.1f} | {row['tflops_per_s']:.3f} | {mfu} | {memory} |"
        )
    if "ratio" in report:
        lines += [
            "",
            f"**smoothcse / sentence-transformers: {report['ratio']['sentences_per_s']:.2f}× sentences/s** "
            f"(per-block steps/s: "
            + "; ".join(
                f"{name} {', '.join(f'{v:.3f}' for v in row['blocks_steps_per_s'])}"
                for name, row in report["frameworks"].items()
            )
            + ").",
        ]
    model = report["model"]
    peak = report["peak_flops"]
    lines += [
        "",
        f"Model FLOPs per step = {model['flops_formula']} with N = {model['non_embedding_params']:,} non-embedding "
        f"parameters, L = {model['layers']}, d = {model['hidden']}, rows = 2 × batch, T = padded length. "
        f"Peak: {report['peak_flops_source']}" + (f" = {peak / 1e9:.1f} GFLOP/s." if peak else "."),
    ]
    if model.get("cls_only_last_layer"):
        lines += [
            "",
            f"smoothcse computes the last layer for the [CLS] row alone: its FLOPs are "
            f"{CLS_ONLY_FLOPS_FORMULA} with S = {model['cls_only_params']:,} (that layer's parameters "
            "other than its keys' and values').",
        ]
    return "\n".join(lines) + "\n"
