"""What ``smoothcse bench`` runs: :class:`BenchConfig`, its settings and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from smoothcse.errors import ConfigError


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
