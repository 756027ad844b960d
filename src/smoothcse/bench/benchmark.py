"""Training throughput, side by side: smoothcse's own step and sentence-transformers' Trainer.

Both frameworks train the same weights with the same settings on the same sentences, in one process, in
alternating measured blocks (each side warmed up first), so both see the same load on a shared machine; per
framework the median over blocks is reported. Model FLOPs, MFU and peak memory are defined in
:mod:`smoothcse.bench.measure`; what each side runs, the metrics and the measured figures are in
docs/performance.md.
"""

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from smoothcse.bench.config import BenchConfig
from smoothcse.bench.frameworks import SmoothCSERunner, run_sentence_transformers
from smoothcse.bench.measure import (
    FLOPS_FORMULA,
    SENTENCE_TRANSFORMERS,
    SMOOTHCSE,
    Block,
    FrameworkResult,
    ModelShape,
    cuda_peak_flops,
    measure_cpu_peak_flops,
    model_shape,
)
from smoothcse.bench.report import build_report, describe_environment
from smoothcse.errors import SmoothCSEError


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the alternating benchmark and return the report (see :func:`format_markdown`)."""
    config.validate()
    device, amp_dtype, precision = _prepare(config)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    peak, peak_source = _peak_flops(device, precision)
    log(f"peak: {peak_source}")
    smoothcse = SmoothCSERunner(config, device, amp_dtype)
    shapes = {
        SMOOTHCSE: model_shape(smoothcse.encoder),
        SENTENCE_TRANSFORMERS: model_shape(smoothcse.encoder, cls_only=False),
    }
    results = {SMOOTHCSE: FrameworkResult(SMOOTHCSE, config.batch_size)}
    if config.sentence_transformers:
        results[SENTENCE_TRANSFORMERS] = FrameworkResult(SENTENCE_TRANSFORMERS, config.batch_size)
    timeline: list[Block] = []
    try:
        st_info = _run_blocks(config, device, amp_dtype, smoothcse, results, _recorder(results, timeline, log))
    finally:
        smoothcse.close()
    if device.type == "cpu" and peak is not None:  # the machine may have been quieter or busier later on
        peak = max(peak, measure_cpu_peak_flops())
    environment = describe_environment(device, precision, load_before)
    model = _model_facts(smoothcse, shapes[SMOOTHCSE], st_info)
    return build_report(config, environment, model, (peak, peak_source), results, shapes, timeline)


def _prepare(config: BenchConfig) -> tuple[Any, Any, str]:
    """Threads, quiet logs and the seed; the device, the autocast dtype and the precision's name."""
    import torch

    from smoothcse.model.encoder import quiet_transformers
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.run import autocast_dtype, pick_device

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device, DistInfo())
    amp_dtype = autocast_dtype(config.precision, device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    torch.manual_seed(config.seed)
    return device, amp_dtype, precision


def _recorder(
    results: dict[str, FrameworkResult], timeline: list[Block], log: Callable[[str], None]
) -> Callable[[Block], None]:
    """What is done with each timed block: kept in its framework's results and the timeline, and logged."""

    def on_block(block: Block) -> None:
        name = block.framework
        results[name].blocks.append(block)
        timeline.append(block)
        log(
            f"{name:<22} block {len(results[name].blocks)}: {block.steps} steps in {block.seconds:.2f} s "
            f"= {block.steps_per_s:.3f} steps/s ({block.cpu_seconds / block.steps:.3f} CPU-s/step)"
        )

    return on_block


def _run_blocks(
    config: BenchConfig,
    device: Any,
    amp_dtype: Any,
    smoothcse: SmoothCSERunner,
    results: dict[str, FrameworkResult],
    on_block: Callable[[Block], None],
) -> dict[str, Any] | None:
    """The timed blocks and the memory blocks; facts about the sentence-transformers model (None without it)."""
    if config.sentence_transformers:
        _require_trainer_packages()
        st_info, ours, theirs = run_sentence_transformers(config, device, amp_dtype, smoothcse, on_block)
        results[SMOOTHCSE].peak_memory_bytes = ours
        results[SENTENCE_TRANSFORMERS].peak_memory_bytes = theirs
        return st_info
    if config.warmup:
        smoothcse.block(config.warmup)
    for _ in range(config.repeats):
        on_block(smoothcse.block(config.steps))
    results[SMOOTHCSE].peak_memory_bytes = smoothcse.memory_block()
    return None


def _model_facts(smoothcse: SmoothCSERunner, shape: ModelShape, st_info: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "non_embedding_params": shape.non_embedding_params,
        "layers": shape.layers,
        "hidden": shape.hidden,
        "pooler": smoothcse.encoder.pooler,
        "rows_per_forward": smoothcse.layout.rows_per_forward,
        "pad_multiple": smoothcse.layout.pad_multiple,
        "attn_implementation": getattr(smoothcse.encoder.backbone.config, "_attn_implementation", None),
        "flops_formula": FLOPS_FORMULA,
        "cls_only_last_layer": bool(shape.cls_only_params),
        "cls_only_params": shape.cls_only_params,
        "sentence_transformers": st_info,
    }


def _peak_flops(device: Any, precision: str) -> tuple[float | None, str]:
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        value = cuda_peak_flops(name, precision)
        if value is None:
            return None, f"n/a (no datasheet peak tabulated for {name} {precision})"
        return value, f"datasheet dense {precision} peak of {name}: {value / 1e12:.0f} TFLOP/s"
    if precision != "fp32":
        return None, f"n/a (CPU peak is measured for fp32 only, not {precision})"
    value = measure_cpu_peak_flops()
    return value, (
        f"measured: best float32 1024^3 matmul with {torch.get_num_threads()} threads, at the start and end of the run"
    )


def _require_trainer_packages() -> None:
    requirements = {"datasets": "datasets>=2.16", "accelerate": "accelerate>=1.3"}
    missing = [requirement for module, requirement in requirements.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SmoothCSEError(
            "the sentence-transformers side needs its trainer's packages: pip install "
            + " ".join(f"'{m}'" for m in missing)
            + " (or pass --no-st to time smoothcse alone)."
        )
