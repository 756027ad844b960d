"""STS scoring as SentEval does it for SimCSE and its successors: cosine similarity, no regressor.

A task's result is the Spearman (and Pearson) correlation × 100 between the pairs' cosines and the gold
scores: STS12-16 over a year's subsets concatenated (the papers' "all"; also ``mean``, ``wmean`` and each
subset), STSb and SICK-R on their test (or dev) split; Avg is the plain mean. A task whose data cannot be
read is reported with an ``error`` and listed in ``results["failed"]``, and then ``avg`` is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from scipy import stats

from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import ConfigError, DataError
from smoothcse.evaluation.data import (
    DEV_STS_TASKS,
    STS_TASKS,
    STS_YEAR_SUBSETS,
    PathLike,
    STSPairs,
    STSTask,
    canonical_task_name,
    load_sts,
)
from smoothcse.evaluation.embedding import EmbedFn, encode_unique, rows

MODES: tuple[str, ...] = ("test", "dev")
Score = dict[str, float | int | None]


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays, in float64; a zero vector has similarity 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return cast(np.ndarray, np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0))


def _is_constant(x: np.ndarray) -> bool:
    return x.size == 0 or bool(np.all(x == x[0]))


def _correlation(test: Any, name: str, x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{name}: inputs differ in length ({len(x)} vs {len(y)})")
    if len(x) < 2 or _is_constant(x) or _is_constant(y):
        return math.nan
    return float(test(x, y).statistic)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation in [-1, 1]; ties get their average rank. NaN if either side is constant."""
    return _correlation(stats.spearmanr, "spearman", x, y)


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's correlation in [-1, 1]. NaN if either side is constant."""
    return _correlation(stats.pearsonr, "pearson", x, y)


def score_pairs(similarities: np.ndarray, gold: np.ndarray) -> Score:
    """Spearman × 100, Pearson × 100 and the pair count of one set of scored pairs."""
    return {
        "spearman": 100.0 * spearman(similarities, gold),
        "pearson": 100.0 * pearson(similarities, gold),
        "n_pairs": int(len(gold)),
    }


def summarise_subsets(scored: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Score a year's subsets from ``{subset: (similarities, gold)}``.

    Returns ``spearman``/``pearson`` (the "all" headline: the subsets concatenated), ``n_pairs``,
    ``all``, ``mean`` (plain mean over subsets), ``wmean`` (weighted by pair counts) and ``subsets``.
    """
    if not scored:
        raise ValueError("summarise_subsets: no subsets to score")
    subsets = {name: score_pairs(sims, gold) for name, (sims, gold) in scored.items()}
    all_sims = np.concatenate([sims for sims, _ in scored.values()])
    all_gold = np.concatenate([gold for _, gold in scored.values()])
    headline = score_pairs(all_sims, all_gold)
    weights = np.array([s["n_pairs"] for s in subsets.values()], dtype=np.float64)
    metrics = ("spearman", "pearson")
    values = {metric: np.array([s[metric] for s in subsets.values()], dtype=np.float64) for metric in metrics}
    mean = {metric: float(np.mean(v)) for metric, v in values.items()}
    wmean = {metric: float(np.average(v, weights=weights)) for metric, v in values.items()}
    all_pairs = {metric: headline[metric] for metric in metrics}
    return {**headline, "all": all_pairs, "mean": mean, "wmean": wmean, "subsets": subsets}


def pair_similarities(vectors: np.ndarray, index: Mapping[str, int], pairs: STSPairs) -> np.ndarray:
    """The cosine similarity of every pair in ``pairs`` from pre-computed embeddings."""
    return cosine_similarities(rows(vectors, index, pairs.sentences1), rows(vectors, index, pairs.sentences2))


def score_sts_task(embed: EmbedFn, task: STSTask) -> dict[str, Any]:
    """Embed a loaded task's distinct sentences once and score it.

    STS12-16 give :func:`summarise_subsets`'s result; a single split (STSb, SICK-R) gives
    ``{"split", "spearman", "pearson", "n_pairs"}``.
    """
    vectors, index = encode_unique(embed, task.sentences(), desc=task.name)
    scored = {name: (pair_similarities(vectors, index, pairs), pairs.scores) for name, pairs in task.subsets.items()}
    if task.name in STS_YEAR_SUBSETS:
        return summarise_subsets(scored)
    split, (sims, gold) = next(iter(scored.items()))
    return {"split": split, **score_pairs(sims, gold)}


def _average(task_results: Mapping[str, dict[str, Any]], metric: str) -> dict[str, Any]:
    """The plain mean of the tasks' headline ``metric``; ``None`` if any task failed."""
    values = [r.get(metric) for r in task_results.values()]
    ok = all(v is not None and "error" not in r for v, r in zip(values, task_results.values()))
    return {metric: float(np.mean(cast(list[float], values))) if ok and values else None, "tasks": list(task_results)}


def evaluate_sts(
    embed: EmbedFn, data_dir: PathLike | None = None, tasks: Sequence[str] | None = None, *, mode: str = "test"
) -> dict[str, Any]:
    """Score ``embed`` on the STS tasks by SentEval's protocol (cosine, Spearman × 100).

    ``tasks``: names (case-insensitive, aliases accepted), default all 7 (``test``) or STSb and SICK-R (``dev``:
    STS-B dev and SICK trial). Returns ``{"mode", "metric", "data_dir", "tasks": {name: result | {"error"}},
    "avg": {"spearman", "tasks"}, "failed": [names]}`` (each result: :func:`score_sts_task`). Raises ConfigError
    for an unknown task or mode, DataError when the data directory itself is missing (a missing or malformed task
    file is reported in the results instead).
    """
    if mode not in MODES:
        raise ConfigError(f"Unknown STS mode '{mode}'; valid modes: {', '.join(MODES)}.")
    default = STS_TASKS if mode == "test" else DEV_STS_TASKS
    names = [canonical_task_name(t, STS_TASKS) for t in (default if tasks is None else tasks)]
    if mode == "dev" and (bad := [n for n in names if n not in DEV_STS_TASKS]):
        raise ConfigError(f"{', '.join(bad)} have no dev split; dev-mode tasks: {', '.join(DEV_STS_TASKS)}.")
    root = resolve_data_dir(data_dir)
    task_results: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names):
        try:
            task = load_sts(name, mode, root)
        except DataError as err:
            task_results[name] = {"error": str(err)}
            continue
        task_results[name] = score_sts_task(embed, task)
    return {
        "mode": mode,
        "metric": "spearman",
        "data_dir": str(root),
        "tasks": task_results,
        "avg": _average(task_results, "spearman"),
        "failed": [name for name, result in task_results.items() if "error" in result],
    }


def evaluate_sts_dev(
    embed: EmbedFn, data_dir: PathLike | None = None, tasks: Sequence[str] = DEV_STS_TASKS
) -> dict[str, Any]:
    """:func:`evaluate_sts` in ``dev`` mode: STS-B dev and SICK-R trial (SentEval's SICK dev)."""
    return evaluate_sts(embed, data_dir, tasks, mode="dev")
