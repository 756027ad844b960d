"""The numbers of a sweep's report: the runs read back (:class:`SweepResults`), grouped into methods, and
every number the tables show (:func:`summarise`, written as ``report.json``).

A method is the runs sharing every varying grid key but ``seed``, shown as mean ± std (ddof = 1) over its
seeds; differences from SimCSE, ``st-simcse`` and ``base`` are paired by seed (docs/experiments.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smoothcse.errors import SmoothCSEError
from smoothcse.evaluation.data import DEV_STS_TASKS, STS_TASKS, TRANSFER_TASKS
from smoothcse.experiments.grid import BASE_ARM, format_value, short_key
from smoothcse.experiments.results import RESULT_FILE, RUNS_DIR, RunResult, SweepRecord
from smoothcse.experiments.st_simcse import ARM as ST_ARM
from smoothcse.experiments.st_tsdae import ARM as TSDAE_ARM

STS_COLUMNS: tuple[str, ...] = (*STS_TASKS, "avg")
"""Keys of a result's ``scores`` in the papers' column order."""
DEV_COLUMNS: tuple[str, ...] = (*(f"dev:{t}" for t in DEV_STS_TASKS), "dev_avg")
"""The development-set scores (``eval_tasks`` with ``dev``): the ones to choose settings by."""
TRANSFER_COLUMNS: tuple[str, ...] = (*(f"transfer:{t}" for t in TRANSFER_TASKS), "transfer_avg")
SPEC_KEY = "objective.spec"
SEED_KEY = "seed"
BASELINE = "simcse"
ST_BASELINE = ST_ARM
"""The sentence-transformers arm (see :mod:`smoothcse.experiments.st_simcse`): a second baseline."""
BASE = BASE_ARM
"""The arm of the untouched starting model (evaluated without training): with it, Δ vs base for every method."""
LEADING_SPECS: tuple[str, ...] = (BASE, ST_BASELINE, TSDAE_ARM)
"""With a base arm, the rows these specs head, in this order; then the grid's order."""
DOMAIN_COLUMNS: tuple[str, ...] = ("train_ndcg_at_10", "ndcg_at_10")
"""nDCG@10 × 100 on the BEIR folder's train queries (to choose settings by) and test queries (to report)."""
PER_QUERY_METRIC = "ndcg_at_10"
"""The metric of a result's ``retrieval["per_query"]`` (test queries) counted against base."""
UNCHANGED_TOLERANCE = 1e-6
"""A query's nDCG@10 (× 100) within this of base's is unchanged."""
QUERY_CHANGES: tuple[str, ...] = ("improved", "unchanged", "worsened", "queries")


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof = 1) of the finite values; std is None for fewer than two."""
    data = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return None, None
    return float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else None


def stat(values: Sequence[float | None]) -> dict[str, Any]:
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": sum(1 for v in values if v is not None and math.isfinite(v))}


def paired_difference(method: Mapping[int, float | None], baseline: Mapping[int, float | None]) -> dict[str, Any]:
    """Difference of two groups' scores keyed by seed (see the module docstring)."""
    seeds = sorted(s for s in method if s in baseline and method[s] is not None and baseline[s] is not None)
    if seeds:
        diffs = [float(method[s]) - float(baseline[s]) for s in seeds]  # type: ignore[arg-type]
        mean, std = mean_std(diffs)
        return {"mean": mean, "std": std, "n": len(seeds), "paired": True, "seeds": seeds}
    m_mean, m_std = mean_std([v for v in method.values() if v is not None])
    b_mean, b_std = mean_std([v for v in baseline.values() if v is not None])
    if m_mean is None or b_mean is None:
        return {"mean": None, "std": None, "n": 0, "paired": False, "seeds": []}
    spread = math.sqrt(m_std**2 + b_std**2) if m_std is not None and b_std is not None else None
    return {"mean": m_mean - b_mean, "std": spread, "n": 0, "paired": False, "seeds": []}


def canonical_spec(spec: Any) -> str:
    from smoothcse.objectives.config import parse_spec

    try:
        return "+".join(parse_spec(str(spec)))
    except SmoothCSEError:
        return str(spec)


@dataclass
class Group:
    """One method: the runs sharing every method-key value, one per seed."""

    values: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        labels = [f"{short_key(k)}={format_value(v)}" for k, v in self.values.items() if v is not None]
        return ", ".join(labels) or "all runs"

    def by_seed(self, key: str) -> dict[int, float | None]:
        return {r.seed: r.score(key) for r in self.runs}


@dataclass
class SweepResults:
    folder: Path
    keys: list[str]
    axes: dict[str, list[Any]]
    results: list[RunResult]
    sweep: SweepRecord | None

    @property
    def ok(self) -> list[RunResult]:
        return [r for r in self.results if r.ok]


def load_results(folder: str | Path) -> SweepResults:
    """Read every ``runs/*/result.json`` of a sweep folder (and ``sweep.json`` if present)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SmoothCSEError(f"DIR {folder}: no such folder; pass the --out folder of 'smoothcse sweep'.")
    sweep = SweepRecord.load(folder)
    results = []
    for path in sorted((folder / RUNS_DIR).glob(f"*/{RESULT_FILE}")):
        result = RunResult.load(path)
        if result is None:
            raise SmoothCSEError(f"{path}: not a readable JSON result; delete it and run the sweep again.")
        results.append(result)
    if not results:
        raise SmoothCSEError(
            f"DIR {folder}: no {RUNS_DIR}/*/{RESULT_FILE} found; run 'smoothcse sweep GRID --out {folder}' first."
        )
    grid = sweep.grid if sweep is not None else None
    axes: dict[str, list[Any]] = {k: list(v) for k, v in grid.axes.items()} if grid is not None else {}
    keys = list((sweep.keys if sweep is not None else None) or axes)
    inferred: dict[str, list[Any]] = {}
    for result in results:  # values the sweep.json does not list (no sweep.json, or merged folders)
        for key, value in result.values.items():
            if key not in keys:
                keys.append(key)
            if value not in axes.get(key, []) and value not in inferred.setdefault(key, []):
                inferred[key].append(value)
    for key, values in inferred.items():
        axes[key] = axes.get(key, []) + sorted(values, key=lambda v: _natural_order(key, v))
    order = [entry.name for entry in sweep.runs] if sweep is not None else []
    position = {name: i for i, name in enumerate(order)}
    results.sort(key=lambda r: (position.get(r.name, len(position)), r.name))
    return SweepResults(folder=folder, keys=keys, axes=axes, results=results, sweep=sweep)


def _natural_order(key: str, value: Any) -> tuple[Any, ...]:
    """Numbers ascending; objective specs SimCSE first, then by components; other strings alphabetically."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    if key == SPEC_KEY:
        from smoothcse.objectives.config import COMPONENTS

        if value == ST_BASELINE:  # the external baseline first
            return (1, 0, ())
        parts = canonical_spec(value).split("+")
        return (1, len(parts), tuple(COMPONENTS.index(p) if p in COMPONENTS else len(COMPONENTS) for p in parts))
    return (2, 0.0, str(value))


def varying_keys(data: SweepResults) -> list[str]:
    """Grid keys taking more than one value among the runs, in grid order."""
    return [key for key in data.keys if len({json.dumps(r.values.get(key)) for r in data.results}) > 1]


def group_runs(runs: Sequence[RunResult], method_keys: Sequence[str], axes: Mapping[str, list[Any]]) -> list[Group]:
    """Runs grouped by their values of ``method_keys``, ordered as the grid lists the values."""
    groups: dict[str, Group] = {}
    for run in runs:
        values = {k: run.values.get(k) for k in method_keys}
        groups.setdefault(json.dumps(values, sort_keys=True), Group(values)).runs.append(run)

    def order(group: Group) -> tuple[int, ...]:
        return tuple(
            axes.get(k, []).index(v) if v in axes.get(k, []) else len(axes.get(k, [])) for k, v in group.values.items()
        )

    return sorted(groups.values(), key=order)


def find_baseline(group: Group, groups: Sequence[Group], baseline: str = BASELINE) -> Group | None:
    """The group of spec ``baseline`` with the same other method values, or None (also for the
    baseline group itself). A key the baseline's runs do not set (an option of another objective, given by
    that objective's arm) is not compared."""
    if SPEC_KEY not in group.values or canonical_spec(group.values[SPEC_KEY]) == baseline:
        return None
    for other in groups:
        if canonical_spec(other.values.get(SPEC_KEY)) != baseline:
            continue
        compared = [k for k in group.values if k != SPEC_KEY and other.values.get(k) is not None]
        if all(other.values.get(k) == group.values[k] for k in compared):
            return other
    return None


def spec_of(group: Group) -> str:
    """The group's objective spec, canonical (``base``, ``st-simcse`` and such arms as they are)."""
    return canonical_spec(group.values.get(SPEC_KEY))


def order_groups(groups: Sequence[Group], data: SweepResults) -> list[Group]:
    """With a ``base`` arm: base, ``st-simcse``, ``st-tsdae`` first, then the grid's order (the order of the
    runs in ``sweep.json``, which follows a list of arms too; the values' order without one). Without a base
    arm, the groups as they are."""
    if not any(spec_of(g) == BASE for g in groups):
        return list(groups)
    position = {r.name: i for i, r in enumerate(data.results)} if data.sweep is not None else {}

    def order(group: Group) -> tuple[int, int]:
        spec = spec_of(group)
        lead = LEADING_SPECS.index(spec) if spec in LEADING_SPECS else len(LEADING_SPECS)
        return lead, min(position.get(r.name, len(position)) for r in group.runs)

    return sorted(groups, key=order)


def per_query_scores(run: RunResult, metric: str = PER_QUERY_METRIC) -> dict[str, float] | None:
    """The run's per-query test scores (``retrieval["per_query"][metric]``, × 100), or None without them."""
    block = (run.retrieval or {}).get("per_query")
    scores = block.get(metric) if isinstance(block, dict) else None
    if not isinstance(scores, dict) or not scores:
        return None
    return {str(query): float(value) for query, value in scores.items() if value is not None}


def query_changes(scores: Mapping[str, float], base: Mapping[str, float]) -> dict[str, int]:
    """How many of the queries both score a run improved, left unchanged or worsened against base."""
    diffs = [scores[q] - base[q] for q in scores.keys() & base.keys()]
    improved = sum(d > UNCHANGED_TOLERANCE for d in diffs)
    worsened = sum(d < -UNCHANGED_TOLERANCE for d in diffs)
    return {
        "improved": improved,
        "unchanged": len(diffs) - improved - worsened,
        "worsened": worsened,
        "queries": len(diffs),
    }


def per_query_changes(group: Group, base: Group) -> dict[str, Any] | None:
    """:func:`query_changes` of each of the group's runs against base's run of the same seed, and their
    mean ± std over those seeds; None when no seed has per-query scores in both."""
    base_scores = {r.seed: per_query_scores(r) for r in base.runs}
    per_seed: dict[int, dict[str, int]] = {}
    for run in group.runs:
        mine, theirs = per_query_scores(run), base_scores.get(run.seed)
        if mine and theirs:
            per_seed[run.seed] = query_changes(mine, theirs)
    if not per_seed:
        return None
    seeds = sorted(per_seed)
    counts = {key: stat([float(per_seed[s][key]) for s in seeds]) for key in QUERY_CHANGES}
    return {**counts, "seeds": seeds, "per_seed": {str(s): per_seed[s] for s in seeds}}


def _stats(runs: Sequence[RunResult], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`stat` of each score key over the runs."""
    return {key: stat([r.score(key) for r in runs]) for key in keys}


def _deltas(group: Group, baseline: Group, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`paired_difference` of each score key against a baseline group."""
    return {key: paired_difference(group.by_seed(key), baseline.by_seed(key)) for key in keys}


def _simcse_comparisons(group: Group, groups: Sequence[Group], baseline: Group | None) -> dict[str, Any]:
    """The row's baseline (``self`` for SimCSE) and its paired differences from SimCSE and st-simcse (none
    for the base arm: it is the reference the others are measured from)."""
    row: dict[str, Any] = {}
    if SPEC_KEY in group.values:
        is_simcse = canonical_spec(group.values[SPEC_KEY]) == BASELINE
        row["baseline"] = "self" if is_simcse else (baseline.label if baseline else None)
    if baseline is not None:
        row["delta"] = _deltas(group, baseline, STS_COLUMNS)
    st_baseline = None if spec_of(group) == BASE else find_baseline(group, groups, ST_BASELINE)
    if st_baseline is not None:  # the sentence-transformers arm is in the sweep: Δ against it too
        row["delta_st"] = _deltas(group, st_baseline, STS_COLUMNS)
    return row


def _base_comparison(group: Group, groups: Sequence[Group], domain: Sequence[str]) -> dict[str, Any]:
    """``base``: ``self`` for the base arm's row, else the base group's label; the paired differences from it
    (STS and retrieval scores) and the per-query changes. Empty without a base arm in the sweep."""
    if spec_of(group) == BASE:
        return {"base": "self"}
    base = find_baseline(group, groups, BASE)
    if base is None:
        return {}
    row: dict[str, Any] = {"base": base.label, "delta_base": _deltas(group, base, (*STS_COLUMNS, *domain))}
    changes = per_query_changes(group, base)
    if changes is not None:
        row["per_query_vs_base"] = changes
    return row


def _group_row(group: Group, groups: Sequence[Group], held: set[str]) -> dict[str, Any]:
    """Every number of one method's rows (``held``: the score keys any complete run holds: a table or column each)."""
    row: dict[str, Any] = {
        "label": group.label,
        "values": group.values,
        "n": len(group.runs),
        "seeds": sorted(r.seed for r in group.runs),
        "runs": [r.name for r in group.runs],
        "sts": _stats(group.runs, STS_COLUMNS),
    }
    baseline = None if spec_of(group) == BASE else find_baseline(group, groups)  # base is the reference itself
    row.update(_simcse_comparisons(group, groups, baseline))
    if "dev_avg" in held:
        row["dev"] = _stats(group.runs, DEV_COLUMNS)
        if baseline is not None:
            row["delta_dev"] = _deltas(group, baseline, DEV_COLUMNS)
    if "transfer_avg" in held:
        row["transfer"] = _stats(group.runs, TRANSFER_COLUMNS)
    domain = [key for key in DOMAIN_COLUMNS if key in held]
    for key in domain:
        row[key] = stat([r.score(key) for r in group.runs])
    row.update(_base_comparison(group, groups, domain))
    row["alignment"] = stat([r.alignment for r in group.runs])
    row["uniformity"] = stat([r.uniformity for r in group.runs])
    row["best_dev"] = stat([r.best_dev for r in group.runs])
    row["train_seconds"] = stat([r.elapsed("train") for r in group.runs])
    row["loss_terms"] = _loss_terms(group.runs)
    return row


def _loss_terms(runs: Sequence[RunResult]) -> dict[str, dict[str, Any]]:
    """Each logged loss term (and the gradient norm) at the first and the last logged step, over the seeds."""
    terms = [(r.train or {}).get("terms") or {} for r in runs]
    names = list(dict.fromkeys(name for per_run in terms for name in per_run))
    return {
        name: {
            "first": stat([t[name][0] if name in t else None for t in terms]),
            "last": stat([t[name][1] if name in t else None for t in terms]),
        }
        for name in names
    }


def _failed(data: SweepResults) -> list[dict[str, Any]]:
    """The runs that did not complete, with the stage and error of each."""
    return [
        {
            "name": r.name,
            "values": r.values,
            "stage": r.error.stage if r.error else None,
            "error": r.error.message if r.error else "no scores recorded",
            "type": r.error.type if r.error else None,
        }
        for r in data.results
        if not r.ok
    ]


def _setting(data: SweepResults) -> dict[str, list[str]]:
    """The values of the main training settings among the complete runs (for the report's header)."""
    setting = {}
    for key in ("model", "max_steps", "batch_size", "lr", "max_len"):
        seen = list(dict.fromkeys(str(r.settings.get(key)) for r in data.ok if key in r.settings))
        if seen:
            setting[key] = seen
    return setting


def _per_run(data: SweepResults) -> list[dict[str, Any]]:
    """Every complete run's own numbers (the Runs table)."""
    return [
        {
            "name": r.name,
            "values": r.values,
            "seed": r.setting("seed"),
            "scores": r.scores,
            "alignment": r.alignment,
            "uniformity": r.uniformity,
            "best_dev": r.best_dev,
            "seconds": r.seconds,
        }
        for r in data.ok
    ]


def summarise(data: SweepResults) -> dict[str, Any]:
    """Every number the report shows, as a JSON-ready dict (``report.json``)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    groups = order_groups(group_runs(data.ok, method_keys, data.axes), data)
    held = {key for r in data.ok for key in r.scores or {}}
    sts_tasks_done = sorted({t for r in data.ok for t in STS_TASKS if r.score(t) is not None}, key=STS_TASKS.index)
    sweep = data.sweep
    return {
        "setting": _setting(data),
        "folder": str(data.folder),
        "grid": sweep.grid.to_dict() if sweep is not None and sweep.grid is not None else None,
        "overrides": sweep.overrides if sweep is not None else None,
        "keys": data.keys,
        "method_keys": method_keys,
        "runs": len(data.results),
        "ok": len(data.ok),
        "sts_tasks": sts_tasks_done,
        "base": [g.label for g in groups if spec_of(g) == BASE] or None,
        "groups": [_group_row(group, groups, held) for group in groups],
        "failed": _failed(data),
        "per_run": _per_run(data),
    }
