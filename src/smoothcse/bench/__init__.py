"""``smoothcse bench``: training throughput of smoothcse against sentence-transformers' Trainer."""

from smoothcse.bench.benchmark import BenchConfig, run_benchmark

__all__ = ["BenchConfig", "run_benchmark"]
