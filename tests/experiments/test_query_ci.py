"""benchmarks/adaptation/query_ci.py: the paired bootstrap interval over queries that docs/adaptation.md quotes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "adaptation" / "query_ci.py"


def load_script():
    spec = importlib.util.spec_from_file_location("query_ci", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_constant_shift_has_a_point_interval_and_noise_widens_it() -> None:
    query_ci = load_script()
    base = {str(q): float(q % 7) * 10 for q in range(200)}
    assert query_ci.paired_interval({q: s + 2.0 for q, s in base.items()}, base, 500, 0) == pytest.approx((2, 2, 2))
    noise = np.random.default_rng(1).normal(0.0, 20.0, size=len(base))
    mean, low, high = query_ci.paired_interval(
        {q: s + 2.0 + e for (q, s), e in zip(base.items(), noise)}, base, 2000, 0
    )
    assert low < mean < high
    assert mean == pytest.approx(2.0 + noise.mean())
    assert 2 * 1.5 * 20.0 / np.sqrt(len(base)) < high - low < 2 * 2.5 * 20.0 / np.sqrt(len(base))  # ≈ 2·1.96·σ/√n


def test_runs_scored_on_different_queries_are_refused() -> None:
    query_ci = load_script()
    with pytest.raises(SystemExit, match="different queries"):
        query_ci.paired_interval({"1": 1.0}, {"2": 1.0}, 10, 0)


def test_per_query_reads_the_test_split_and_every_other(tmp_path: Path) -> None:
    query_ci = load_script()
    result = {
        "retrieval": {
            "split": "test",
            "per_query": {"ndcg_at_10": {"1": 50.0}},
            "splits": {"train": {"per_query": {"ndcg_at_10": {"9": 10.0}}}},
        }
    }
    assert query_ci.per_query(result) == {"test": {"1": 50.0}, "train": {"9": 10.0}}
