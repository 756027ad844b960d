"""``smoothcse bench``: training throughput of smoothcse against sentence-transformers' Trainer."""

from smoothcse.bench.benchmark import run_benchmark
from smoothcse.bench.config import BenchConfig

__all__ = ["BenchConfig", "run_benchmark"]
