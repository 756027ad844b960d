"""The benchmark's measures: the work an encoder computed, its model FLOPs (the PaLM appendix-B count, matmuls
only, padding included), the peak it is compared to (MFU = model FLOP/s / peak) and peak memory; docs/performance.md
("Metrics") defines each."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SMOOTHCSE = "smoothcse"
SENTENCE_TRANSFORMERS = "sentence-transformers"
FLOPS_FORMULA = "6*N*sum(rows*T) + 12*L*d*sum(rows*T^2)"
CLS_ONLY_FLOPS_FORMULA = "6*(N-S)*sum(rows*T) + 6*S*sum(rows) + 12*d*((L-1)*sum(rows*T^2) + sum(rows*T))"
"""The count when the last layer is computed for the [CLS] row alone (smoothcse.model.cls_only): S = that
layer's parameters other than its keys' and values', applied to one token per row."""
MEMORY_STEPS = 2
"""Untimed steps per framework, after the timed blocks, over which peak memory is measured. On a CPU
the meter samples the resident set every 2 ms and first hands free heap back to the OS; inside a
timed block that cost about 20% of a step (measured), so memory and time are measured apart."""

CUDA_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # dense (no sparsity) tensor-core peaks from the vendors' datasheets, TFLOP/s
    "H100 SXM": {"bf16": 989.0, "fp16": 989.0},
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0},
    "H200": {"bf16": 989.0, "fp16": 989.0},
    "A100": {"bf16": 312.0, "fp16": 312.0},
    "L4": {"bf16": 121.0, "fp16": 121.0},
    "RTX 3090": {"bf16": 71.0, "fp16": 71.0},
}


@dataclass
class Work:
    """What the encoder computed: sums over its forwards of rows, rows × T and rows × T² (T = padded length)."""

    rows: int = 0
    rows_tokens: int = 0
    rows_tokens_sq: int = 0

    def add(self, rows: int, width: int) -> None:
        self.rows += rows
        self.rows_tokens += rows * width
        self.rows_tokens_sq += rows * width * width


@dataclass
class Block:
    """One timed run of consecutive steps of one framework."""

    framework: str
    steps: int
    seconds: float
    work: Work
    cpu_seconds: float = 0.0
    """CPU time of the whole process over the block (all threads): steadier than wall time when
    other processes compete for the cores."""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


@dataclass
class FrameworkResult:
    name: str
    batch_size: int
    blocks: list[Block] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    """From the untimed memory block after the timed ones."""

    def median_steps_per_s(self) -> float:
        return statistics.median(block.steps_per_s for block in self.blocks)


@dataclass
class ModelShape:
    non_embedding_params: int
    layers: int
    hidden: int

    cls_only_params: int = 0
    """S: parameters of the last layer applied to the [CLS] row alone (0 = the whole last layer is computed)."""

    @property
    def formula(self) -> str:
        return CLS_ONLY_FLOPS_FORMULA if self.cls_only_params else FLOPS_FORMULA

    def flops(self, rows: float, rows_tokens: float, rows_tokens_sq: float) -> float:
        """Model FLOPs (forward + backward) of forwards totalling these rows, rows × T and rows × T²."""
        n, s, d = self.non_embedding_params, self.cls_only_params, self.hidden
        if not s:
            return 6.0 * n * rows_tokens + 12.0 * self.layers * d * rows_tokens_sq
        return (
            6.0 * (n - s) * rows_tokens + 6.0 * s * rows + 12.0 * d * ((self.layers - 1) * rows_tokens_sq + rows_tokens)
        )


def non_embedding_params(module: Any) -> int:
    """Trainable parameters outside embedding tables (word, position and token-type embeddings)."""
    from torch import nn

    embedding = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if p.requires_grad and id(p) not in embedding)


def model_shape(encoder: Any, cls_only: bool | None = None) -> ModelShape:
    """The FLOP-counting shape of ``encoder``; ``cls_only`` (default: whether the encoder computes the
    last layer for [CLS] alone) counts that layer's reduced work."""
    from smoothcse.model.cls_only import cls_only_params

    config = encoder.backbone.config
    cls_only = encoder.computes_cls_only if cls_only is None else cls_only
    return ModelShape(
        non_embedding_params=non_embedding_params(encoder),
        layers=int(getattr(config, "num_hidden_layers", 0)),
        hidden=int(getattr(config, "hidden_size", 0)),
        cls_only_params=cls_only_params(encoder.backbone) if cls_only else 0,
    )


def measure_cpu_peak_flops(size: int = 1024, repeats: int = 5) -> float:
    """Best float32 FLOP/s of a dense ``size``³ matmul with torch's current thread count."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = max(best, 2.0 * size**3 / (time.perf_counter() - start))
    return best


def cuda_peak_flops(device_name: str, precision: str) -> float | None:
    """Datasheet dense peak for a known GPU and bf16/fp16, in FLOP/s; None if not tabulated.

    Names are matched word by word ("NVIDIA A100-SXM4-80GB" is an A100, an "L40S" is not an "L4");
    an H100 that says neither PCIe nor NVL ("NVIDIA H100 80GB HBM3") is the SXM part.
    """
    import re

    words = set(re.split(r"[\s\-_]+", device_name.upper()))
    if "H100" in words and not words & {"PCIE", "NVL"}:
        words.add("SXM")
    for key in sorted(CUDA_PEAK_TFLOPS, key=len, reverse=True):
        if set(key.upper().split()) <= words:
            value = CUDA_PEAK_TFLOPS[key].get(precision)
            return value * 1e12 if value else None
    return None


def _trim_heap() -> None:
    """Hand free heap memory back to the OS (glibc), so RSS at a block's start is live memory only."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: the process's lifetime peak is all there is
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class MemoryMeter:
    """Peak memory above the starting point over a ``with`` block (CUDA allocator, or sampled RSS)."""

    def __init__(self, device: Any, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0
        self._max = 0
        self.samples = 0
        """Resident-set samples taken so far by the sampling thread (CPU)."""

    def __enter__(self) -> MemoryMeter:
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        import gc

        gc.collect()
        _trim_heap()  # else memory the other framework freed but the allocator kept hides this one's peak
        self._start = self._max = _rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, _rss_bytes())
            self.samples += 1

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._start
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self._max, _rss_bytes()) - self._start


def sync(device: Any) -> None:
    """Wait for the device's queued work (CUDA), so that the clock reads finished work."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
