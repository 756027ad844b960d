"""Training throughput, side by side: smoothcse's own step and sentence-transformers' Trainer.

Both frameworks train the same weights, with the same pooling, batch, maximum length, learning
rate, dropout and precision, on the same sentences, in one process. The measured blocks alternate
(smoothcse, sentence-transformers, smoothcse, ...), each side warmed up first, so both see the same
load on a shared machine; per framework the median over blocks is reported.

- **smoothcse**: the training run itself, built by :func:`~smoothcse.training.run.build_run` as ``smoothcse
  train`` builds it and stepped by the loop's :func:`~smoothcse.training.steps.train_step` — the
  pre-tokenised, memory-mapped corpus (:class:`~smoothcse.data.corpus.TokenizedCorpus`) read by the
  :class:`~smoothcse.data.loader.BatchLoader`, both views through the encoder as the
  :class:`~smoothcse.data.views.ViewLayout` says (on the fast path: the 2B rows in length-sorted forwards,
  each cut to its longest sentence, and with a ``cls`` pooler the last layer for [CLS] alone;
  ``--no-fast-path``: one forward of 2B rows padded to the batch's longest), the objective in
  float32, backward, gradient clipping, fused AdamW and the linear schedule (over 10⁶ steps, so it
  does not decay within a benchmark); no log steps, evaluation or checkpoints.
- **sentence-transformers**: its standard unsupervised SimCSE: ``SentenceTransformerTrainer`` with
  ``MultipleNegativesRankingLoss`` (scale 20 = 1/τ with τ = 0.05, the same InfoNCE) on (anchor,
  positive) = (s, s) pairs, tokenised by its collator at every step, no evaluation, no saving, no
  logging. The Trainer is the outer loop; a callback runs smoothcse's blocks between its blocks, so
  the Trainer is timed in its steady state, data loading and per-step overhead included.

**Model FLOPs** per step (fwd + bwd, matmuls only, the PaLM appendix-B count)::

    6 · N · Σ rows·T  +  12 · L · d · Σ rows·T²

N = non-embedding parameters (embedding tables excluded; the MLP head included), L layers, d hidden
size, summed over the forwards of the step (rows = 2 × batch, T = padded length actually computed).
Padding is computed, so it is counted; the mean padded length per step is reported for each side.
MFU = model FLOP/s ÷ peak: on CUDA a table of dense tensor-core peaks (H100 SXM bf16 989 TFLOP/s); on
the CPU a dense float32 matmul measured on the spot with the same thread count (an achievable peak,
not a datasheet one).

**Peak memory** is measured apart from time, over :data:`MEMORY_STEPS` untimed steps of each
framework after the timed blocks: CUDA, ``torch.cuda.max_memory_allocated`` over those steps minus
what was allocated before them; CPU, the peak resident set size sampled every 2 ms minus the size at
the start (activations, gradients and temporaries; the allocator's reuse makes it approximate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.model.st_modules import build_sentence_transformer, mnrl_class

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


# ---------------------------------------------------------------------------------------------
# configuration and results


@dataclass
class BenchConfig:
    """What to benchmark; defaults are the issue's CPU comparison (all-MiniLM-L6-v2, 64 × 32)."""

    model: str = "all-MiniLM-L6-v2"
    data: str = "corpus/enwiki2015_sample10k.txt"
    steps: int = 10
    """Steps per measured block."""
    warmup: int = 3
    """Unmeasured steps of each framework before its first block."""
    repeats: int = 3
    """Measured blocks per framework (alternating)."""
    batch_size: int = 64
    max_len: int = 32
    lr: float = 3e-5
    objective: str = "simcse"
    pooler: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""
    compile: bool = False
    """smoothcse side: torch.compile the encoder, lengths bucketed to multiples of 8."""
    compile_mode: str = "default"
    """smoothcse side: torch.compile's mode (reduce-overhead: CUDA graphs on a GPU)."""
    fast_path: bool = True
    """smoothcse side: the training loop's fast path (length-sorted forwards, prefetching loader)."""
    rows_per_forward: int = 0
    """smoothcse side: rows per length-sorted forward (0 = the training loop's auto choice)."""
    sentence_transformers: bool = True
    seed: int = 42
    data_dir: str | None = None
    cache_dir: str | None = None

    def validate(self) -> None:
        for name in ("steps", "repeats", "max_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}.")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}.")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 (in-batch negatives), got {self.batch_size}.")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}.")
        if self.threads is not None and self.threads <= 0:
            raise ConfigError(f"--threads must be a positive integer, got {self.threads}.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(
                f"--precision {self.precision!r} is not one of auto, fp32, bf16 (fp16 needs a loss scaler on both "
                "sides and is not benchmarked)."
            )


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


# ---------------------------------------------------------------------------------------------
# measuring helpers


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

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._start
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self._max, _rss_bytes()) - self._start


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# the two frameworks


class SmoothCSERunner:
    """smoothcse's side: the training run itself, built by :func:`~smoothcse.training.run.build_run` from the
    benchmark's settings and driven step by step with the loop's own
    :func:`~smoothcse.training.steps.train_step`, so it times exactly what ``smoothcse train`` runs
    (without its log steps, evaluation and checkpoints)."""

    TOTAL_STEPS = 1_000_000
    """The run's length by default: the linear decay never reaches 0 within a benchmark."""

    def __init__(
        self, config: BenchConfig, device: Any = None, amp_dtype: Any = None, *, total_steps: int = TOTAL_STEPS
    ) -> None:
        """``device`` and ``amp_dtype``, when given, must be what the config resolves to (checked)."""
        import shutil

        from smoothcse.config import TrainConfig
        from smoothcse.data.corpus import find_corpus
        from smoothcse.objectives import ObjectiveConfig
        from smoothcse.training.distributed import DistInfo
        from smoothcse.training.run import build_run

        self.out = Path(tempfile.mkdtemp(prefix="smoothcse-bench-"))  # the run writes only its config file there
        self.train_config = TrainConfig(
            model=config.model,
            data=config.data,
            out=str(self.out),
            data_dir=config.data_dir,
            cache_dir=config.cache_dir,
            max_steps=total_steps,
            batch_size=config.batch_size,
            max_len=config.max_len,
            lr=config.lr,
            seed=config.seed,
            pooler=config.pooler,
            device=config.device,
            precision=config.precision,
            compile=config.compile,
            compile_mode=config.compile_mode,
            fast_path=config.fast_path,
            rows_per_forward=config.rows_per_forward,
            eval_every=0,
            objective=ObjectiveConfig(spec=config.objective),
        )
        try:
            self.train_config.validate()
            self.run = build_run(self.train_config, info=DistInfo(), resume=False, overwrite=True, progress=False)
        except BaseException:
            shutil.rmtree(self.out, ignore_errors=True)
            raise
        if device is not None and (device, amp_dtype) != (self.run.device, self.run.amp_dtype):
            self.close()
            raise ValueError(
                f"SmoothCSERunner: given {device}/{amp_dtype}, the config resolves to "
                f"{self.run.device}/{self.run.amp_dtype}."
            )
        self.device = self.run.device
        self.encoder = self.run.encoder
        self.layout = self.run.layout
        self.corpus_path = find_corpus(config.data, config.data_dir)

    def train_step(self, work: Work) -> None:
        """One optimizer step, as ``smoothcse train`` takes it; adds its forward's shape to ``work``."""
        from smoothcse.training.steps import train_step

        batch = next(self.run.batches)
        train_step(self.run, batch)
        for rows, width in self.layout.forwards(batch.lengths, batch.input_ids.shape[1]):
            work.add(len(rows), width)

    def close(self) -> None:
        import shutil

        self.run.close()
        shutil.rmtree(self.out, ignore_errors=True)

    def block(self, steps: int) -> Block:
        """``steps`` timed steps (no memory meter: its sampling and heap trimming cost time)."""
        _sync(self.device)
        work = Work()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.train_step(work)
        _sync(self.device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        return Block(SMOOTHCSE, steps, seconds, work, cpu_seconds)

    def memory_block(self, steps: int = MEMORY_STEPS) -> int | None:
        """Peak memory above the starting point over ``steps`` untimed steps."""
        with MemoryMeter(self.device) as meter:
            for _ in range(steps):
                self.train_step(Work())
            _sync(self.device)
        return meter.peak


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class Alternation:
    """Drives the alternating schedule from inside the sentence-transformers Trainer.

    At the end of the Trainer's warm-up it warms up smoothcse and runs smoothcse's first block; after
    every ``steps`` further Trainer steps it closes the Trainer's block and runs the next smoothcse
    block, until both have ``repeats`` blocks. Then smoothcse's memory block runs, and the Trainer's
    next :data:`MEMORY_STEPS` steps are its memory block.
    """

    def __init__(
        self,
        config: BenchConfig,
        device: Any,
        smoothcse: SmoothCSERunner,
        st_work: Work,
        on_block: Callable[[Block], None],
    ) -> None:
        self.config = config
        self.device = device
        self.smoothcse = smoothcse
        self.st_work = st_work
        self.st_blocks = 0
        self.on_block = on_block
        self.block_start = 0.0
        self.block_cpu_start = 0.0
        self.meter: MemoryMeter | None = None
        self.memory_start_step: int | None = None
        self.smoothcse_peak: int | None = None
        self.st_peak: int | None = None

    def callback(self) -> Any:
        outer = self

        class _Callback(_trainer_callback_base()):  # type: ignore[misc]
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if outer.config.warmup == 0:  # no warm-up: the first smoothcse block goes first
                    outer.next_pair()
                return control

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                outer.after_trainer_step(state.global_step, control)
                return control

        return _Callback()

    def after_trainer_step(self, global_step: int, control: Any) -> None:
        """Called after every Trainer step (``global_step`` counts from 1)."""
        config = self.config
        if self.memory_start_step is not None:  # inside the Trainer's memory block
            if global_step - self.memory_start_step >= MEMORY_STEPS:
                assert self.meter is not None
                _sync(self.device)
                self.meter.__exit__(None, None, None)
                self.st_peak = self.meter.peak
                control.should_training_stop = True
            return
        done = global_step - config.warmup
        if done < 0 or (done > 0 and done % config.steps):  # warming up, or inside a Trainer block
            return
        if done == 0:  # the Trainer is warm: warm smoothcse up too, then start alternating
            self.smoothcse.block(config.warmup)
        else:  # a Trainer block just ended
            _sync(self.device)
            seconds, cpu_seconds = time.perf_counter() - self.block_start, time.process_time() - self.block_cpu_start
            block = Block(SENTENCE_TRANSFORMERS, config.steps, seconds, dataclasses.replace(self.st_work), cpu_seconds)
            self.on_block(block)
            self.st_blocks += 1
            if self.st_blocks >= config.repeats:  # timing done: memory, smoothcse's then the Trainer's
                self.smoothcse_peak = self.smoothcse.memory_block()
                self.memory_start_step = global_step
                self.meter = MemoryMeter(self.device).__enter__()
                return
        self.next_pair()

    def next_pair(self) -> None:
        """A measured smoothcse block, then start timing the Trainer's next block."""
        self.on_block(self.smoothcse.block(self.config.steps))
        self.st_work.__init__()  # type: ignore[misc]  # count the next Trainer block from zero
        _sync(self.device)
        self.block_start, self.block_cpu_start = time.perf_counter(), time.process_time()


def run_sentence_transformers(
    config: BenchConfig, device: Any, amp_dtype: Any, smoothcse: SmoothCSERunner, on_block: Callable[[Block], None]
) -> tuple[dict[str, Any], int | None, int | None]:
    """Train with SentenceTransformerTrainer + MultipleNegativesRankingLoss, smoothcse's blocks in between.

    Returns facts about the sentence-transformers model, and the peak memory of smoothcse's and of
    the Trainer's memory blocks.
    """
    import logging

    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from smoothcse.data.corpus import iter_sentences

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    sentences = [text for _, text in iter_sentences(smoothcse.corpus_path)]
    dataset = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    model = build_sentence_transformer(smoothcse.encoder, config.model, config.max_len, device)
    work = Work()

    def count(module: Any, args: Any) -> None:  # the Transformer module's input: a features dict
        ids = args[0].get("input_ids") if args and isinstance(args[0], dict) else None
        if ids is not None:
            work.add(int(ids.shape[0]), int(ids.shape[1]))

    backbone = model[0].auto_model
    handle = model[0].register_forward_pre_hook(count)
    alternation = Alternation(config, device, smoothcse, work, on_block)
    with tempfile.TemporaryDirectory(prefix="smoothcse-bench-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            max_steps=config.warmup + config.repeats * config.steps + MEMORY_STEPS + 1,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.lr,
            weight_decay=0.0,
            adam_epsilon=1e-8,
            max_grad_norm=1.0,
            warmup_steps=0,
            lr_scheduler_type="linear",
            bf16=amp_dtype == torch.bfloat16,
            fp16=amp_dtype == torch.float16,
            use_cpu=device.type == "cpu",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=config.seed,
            dataloader_num_workers=0,
        )
        loss = mnrl_class()(model, scale=1.0 / 0.05)
        with contextlib.redirect_stderr(io.StringIO()):  # its model-card callback's progress bar
            trainer = SentenceTransformerTrainer(
                model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[alternation.callback()]
            )
        if config.threads:
            torch.set_num_threads(config.threads)
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its own summary line
            trainer.train()
    handle.remove()
    if alternation.meter is not None and alternation.st_peak is None:  # the Trainer stopped early
        alternation.meter.__exit__(None, None, None)
    info = {
        "non_embedding_params": non_embedding_params(model),
        "attn_implementation": getattr(backbone.config, "_attn_implementation", None),
        "optimizer": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
        "optim": str(args.optim),
    }
    return info, alternation.smoothcse_peak, alternation.st_peak


# ---------------------------------------------------------------------------------------------
# the benchmark


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the alternating benchmark and return the report (see :func:`format_markdown`)."""
    import torch

    from smoothcse.model.encoder import quiet_transformers
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.run import autocast_dtype, pick_device

    config.validate()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device, DistInfo())
    amp_dtype = autocast_dtype(config.precision, device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    torch.manual_seed(config.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    peak, peak_source = _peak_flops(device, precision)
    log(f"peak: {peak_source}")
    smoothcse = SmoothCSERunner(config, device, amp_dtype)
    shapes = {
        SMOOTHCSE: model_shape(smoothcse.encoder),
        SENTENCE_TRANSFORMERS: model_shape(smoothcse.encoder, cls_only=False),
    }
    shape = shapes[SMOOTHCSE]
    results = {SMOOTHCSE: FrameworkResult(SMOOTHCSE, config.batch_size)}
    if config.sentence_transformers:
        results[SENTENCE_TRANSFORMERS] = FrameworkResult(SENTENCE_TRANSFORMERS, config.batch_size)
    timeline: list[Block] = []

    def on_block(block: Block) -> None:
        name = block.framework
        results[name].blocks.append(block)
        timeline.append(block)
        log(
            f"{name:<22} block {len(results[name].blocks)}: {block.steps} steps in {block.seconds:.2f} s "
            f"= {block.steps_per_s:.3f} steps/s ({block.cpu_seconds / block.steps:.3f} CPU-s/step)"
        )

    st_info: dict[str, Any] | None = None
    try:
        if config.sentence_transformers:
            _require_trainer_packages()
            st_info, ours, theirs = run_sentence_transformers(config, device, amp_dtype, smoothcse, on_block)
            results[SMOOTHCSE].peak_memory_bytes = ours
            results[SENTENCE_TRANSFORMERS].peak_memory_bytes = theirs
        else:
            if config.warmup:
                smoothcse.block(config.warmup)
            for _ in range(config.repeats):
                on_block(smoothcse.block(config.steps))
            results[SMOOTHCSE].peak_memory_bytes = smoothcse.memory_block()
    finally:
        smoothcse.close()
    if device.type == "cpu" and peak is not None:  # the machine may have been quieter or busier later on
        later = measure_cpu_peak_flops()
        if later > peak:
            peak = later

    report: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "command": "smoothcse bench " + " ".join(_command_args(config)),
        "environment": _environment(device, precision, load_before),
        "model": {
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
        },
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "frameworks": {name: _summarise(result, shapes[name], peak) for name, result in results.items()},
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


def _summarise(result: FrameworkResult, shape: ModelShape, peak: float | None) -> dict[str, Any]:
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


def _require_trainer_packages() -> None:
    missing = []
    for module, requirement in (("datasets", "datasets>=2.16"), ("accelerate", "accelerate>=1.3")):
        try:
            __import__(module)
        except ImportError:
            missing.append(requirement)
    if missing:
        raise SmoothCSEError(
            "the sentence-transformers side needs its trainer's packages: pip install "
            + " ".join(f"'{m}'" for m in missing)
            + " (or pass --no-st to time smoothcse alone)."
        )


def _environment(device: Any, precision: str, load_before: tuple[float, ...] | None) -> dict[str, Any]:
    import torch
    import transformers

    try:
        import sentence_transformers

        st_version: str | None = sentence_transformers.__version__
    except ImportError:
        st_version = None
    from smoothcse import __version__

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {
        "device": device.type,
        "device_name": name,
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": st_version,
        "smoothcse": __version__,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def _command_args(config: BenchConfig) -> list[str]:
    defaults = BenchConfig()
    args: list[str] = []
    for item in dataclasses.fields(config):
        value, default = getattr(config, item.name), getattr(defaults, item.name)
        if value == default:
            continue
        if item.name == "sentence_transformers":
            args.append("--no-st")
        elif item.name == "compile":
            args.append("--compile")
        elif item.name == "fast_path":
            args.append("--no-fast-path")
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


__all__ = [
    "BenchConfig",
    "Block",
    "FrameworkResult",
    "MemoryMeter",
    "ModelShape",
    "build_sentence_transformer",
    "format_markdown",
    "measure_cpu_peak_flops",
    "model_shape",
    "non_embedding_params",
    "run_benchmark",
]
