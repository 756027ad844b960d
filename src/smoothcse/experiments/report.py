"""The report of a sweep: the papers' STS table as mean ± std over seeds, differences from SimCSE, plots.

Input: a sweep folder (``<dir>/runs/*/result.json``, and ``<dir>/sweep.json`` for the grid's key order).
Output: ``report.md`` (and ``report.html``), ``report.json`` with every number of the tables, and PNG
plots in ``<report stem>_plots/``.

**Methods.** Runs are grouped by every grid key that takes more than one value among the runs, except
``seed``: each group is one method (e.g. ``spec=simcse+gs``, or ``spec=simcse+gs, batch_size=256``).
Only runs whose status is ``ok`` enter the tables; failed runs are listed with their errors.

**Mean ± std.** For each method and column, the mean over its seeds and the sample standard deviation
(``ddof = 1``, the unbiased variance's square root); with a single seed the std is shown as ``–``.

**Difference from SimCSE.** For a method whose objective spec is not plain ``simcse``, the baseline is
the group with ``spec == "simcse"`` and the same values of every other method key (same batch size,
say). The difference is computed **paired by seed**: d_s = score(method, seed s) − score(SimCSE, seed s)
over the seeds both have, reported as mean(d) ± std(d) (ddof = 1). Pairing removes what a seed does to
both runs alike (data order, initialisation of the head, dropout masks), so the spread is that of the
difference itself. If the two groups share no seed, the difference of the means is reported with the
spread sqrt(s_m² + s_b²) (the std of a difference of two independent runs; ``–`` unless both groups
have at least two seeds), marked ``†``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smoothcse.errors import SmoothCSEError
from smoothcse.evaluation.data import DEV_STS_TASKS, STS_TASKS, TRANSFER_TASKS
from smoothcse.experiments.st_simcse import ARM as ST_ARM
from smoothcse.experiments.sweep import RESULT_FILE, RUNS_DIR, SWEEP_FILE, short_key
from smoothcse.files import read_json

STS_COLUMNS: tuple[str, ...] = (*STS_TASKS, "avg")
"""Keys of ``result["scores"]`` in the papers' column order."""
DEV_COLUMNS: tuple[str, ...] = (*(f"dev:{t}" for t in DEV_STS_TASKS), "dev_avg")
"""The development-set scores (``eval_tasks`` with ``dev``): the ones to choose settings by."""
COLUMN_TITLES = {"avg": "Avg", "dev:STSb": "STS-B dev", "dev:SICK-R": "SICK-R trial", "dev_avg": "dev Avg"}
SPEC_KEY = "objective.spec"
SEED_KEY = "seed"
NO_STD = "–"
NA = "n/a"
BASELINE = "simcse"
ST_BASELINE = ST_ARM
"""The sentence-transformers arm (see :mod:`smoothcse.experiments.st_simcse`): a second baseline."""
PLOT_FILES = {
    "batch_size": "sts_avg_vs_batch_size.png",
    "geometry": "alignment_uniformity.png",
    "dev": "dev_spearman.png",
}


# ---------------------------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof = 1) of the finite values; std is None for fewer than two."""
    data = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return None, None
    return float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else None


def stat(values: Sequence[float]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------- loading


@dataclass
class Group:
    """One method: the runs sharing every method-key value, one per seed."""

    values: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{short_key(k)}={_fmt_value(v)}" for k, v in self.values.items() if v is not None) or "all runs"

    def by_seed(self, key: str) -> dict[int, float | None]:
        return {int(r["config"]["seed"]): (r.get("scores") or {}).get(key) for r in self.runs}


def _fmt_value(value: Any) -> str:
    from smoothcse.experiments.sweep import format_value

    return format_value(value)


@dataclass
class SweepResults:
    folder: Path
    keys: list[str]
    axes: dict[str, list[Any]]
    results: list[dict[str, Any]]
    sweep: dict[str, Any] | None

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") == "ok" and r.get("scores")]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") != "ok" or not r.get("scores")]


def load_results(folder: str | Path) -> SweepResults:
    """Read every ``runs/*/result.json`` of a sweep folder (and ``sweep.json`` if present)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SmoothCSEError(f"DIR {folder}: no such folder; pass the --out folder of 'smoothcse sweep'.")
    sweep = read_json(folder / SWEEP_FILE)
    results = []
    for path in sorted((folder / RUNS_DIR).glob(f"*/{RESULT_FILE}")):
        result = read_json(path)
        if result is None:
            raise SmoothCSEError(f"{path}: not a readable JSON result; delete it and run the sweep again.")
        result.setdefault("name", path.parent.name)
        result["_dir"] = str(path.parent)
        results.append(result)
    if not results:
        raise SmoothCSEError(f"DIR {folder}: no {RUNS_DIR}/*/{RESULT_FILE} found; run 'smoothcse sweep GRID --out {folder}' first.")
    axes: dict[str, list[Any]] = {k: list(v) for k, v in (sweep or {}).get("grid", {}).get("grid", {}).items()}
    keys = list((sweep or {}).get("keys") or axes)
    inferred: dict[str, list[Any]] = {}
    for result in results:  # values the sweep.json does not list (no sweep.json, or merged folders)
        for key, value in (result.get("values") or {}).items():
            if key not in keys:
                keys.append(key)
            if value not in axes.get(key, []) and value not in inferred.setdefault(key, []):
                inferred[key].append(value)
    for key, values in inferred.items():
        axes[key] = axes.get(key, []) + sorted(values, key=lambda v: _natural_order(key, v))
    position = {name: i for i, name in enumerate(r["name"] for r in (sweep or {}).get("runs", []))}
    results.sort(key=lambda r: (position.get(r["name"], len(position)), r["name"]))
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
    out = []
    for key in data.keys:
        seen = {json.dumps((r.get("values") or {}).get(key)) for r in data.results}
        if len(seen) > 1:
            out.append(key)
    return out


def group_runs(runs: Sequence[dict[str, Any]], method_keys: Sequence[str], axes: Mapping[str, list[Any]]) -> list[Group]:
    """Runs grouped by their values of ``method_keys``, ordered as the grid lists the values."""
    groups: dict[str, Group] = {}
    for run in runs:
        values = {k: (run.get("values") or {}).get(k) for k in method_keys}
        groups.setdefault(json.dumps(values, sort_keys=True), Group(values)).runs.append(run)

    def order(group: Group) -> tuple[int, ...]:
        return tuple(axes.get(k, []).index(v) if v in axes.get(k, []) else len(axes.get(k, [])) for k, v in group.values.items())

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
        if all(other.values.get(k) == v for k, v in group.values.items() if k != SPEC_KEY and other.values.get(k) is not None):
            return other
    return None


# ---------------------------------------------------------------------------------------------- summary


def summarise(data: SweepResults) -> dict[str, Any]:
    """Every number the report shows, as a JSON-ready dict (``report.json``)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    groups = group_runs(data.ok, method_keys, data.axes)
    has_dev = any("dev_avg" in (r.get("scores") or {}) for r in data.ok)
    has_transfer = any("transfer_avg" in (r.get("scores") or {}) for r in data.ok)
    has_retrieval = any("ndcg_at_10" in (r.get("scores") or {}) for r in data.ok)
    sts_tasks_done = sorted(
        {t for r in data.ok for t in STS_TASKS if (r.get("scores") or {}).get(t) is not None}, key=STS_TASKS.index
    )
    rows = []
    for group in groups:
        scores = {key: stat([(r.get("scores") or {}).get(key) for r in group.runs]) for key in STS_COLUMNS}
        row: dict[str, Any] = {
            "label": group.label,
            "values": group.values,
            "n": len(group.runs),
            "seeds": sorted(int(r["config"]["seed"]) for r in group.runs),
            "runs": [r["name"] for r in group.runs],
            "sts": scores,
        }
        baseline = find_baseline(group, groups)
        if SPEC_KEY in group.values:
            row["baseline"] = "self" if canonical_spec(group.values[SPEC_KEY]) == BASELINE else (
                baseline.label if baseline else None)
        if baseline is not None:
            row["delta"] = {key: paired_difference(group.by_seed(key), baseline.by_seed(key)) for key in STS_COLUMNS}
        st_baseline = find_baseline(group, groups, ST_BASELINE)
        if st_baseline is not None:  # the sentence-transformers arm is in the sweep: Δ against it too
            row["delta_st"] = {key: paired_difference(group.by_seed(key), st_baseline.by_seed(key)) for key in STS_COLUMNS}
        if has_dev:
            row["dev"] = {key: stat([(r.get("scores") or {}).get(key) for r in group.runs]) for key in DEV_COLUMNS}
            if baseline is not None:
                row["delta_dev"] = {key: paired_difference(group.by_seed(key), baseline.by_seed(key)) for key in DEV_COLUMNS}
        if has_transfer:
            keys = [f"transfer:{t}" for t in TRANSFER_TASKS] + ["transfer_avg"]
            row["transfer"] = {k: stat([(r.get("scores") or {}).get(k) for r in group.runs]) for k in keys}
        if has_retrieval:
            row["ndcg_at_10"] = stat([(r.get("scores") or {}).get("ndcg_at_10") for r in group.runs])
        geometry = [r.get("geometry") or {} for r in group.runs]
        row["alignment"] = stat([g.get("alignment") for g in geometry])
        row["uniformity"] = stat([g.get("uniformity") for g in geometry])
        row["best_dev"] = stat([(r.get("train") or {}).get("best_dev") for r in group.runs])
        row["train_seconds"] = stat([(r.get("seconds") or {}).get("train") for r in group.runs])
        rows.append(row)
    failed = [
        {"name": r["name"], "values": r.get("values"), "stage": (r.get("error") or {}).get("stage"),
         "error": (r.get("error") or {}).get("message", "no scores recorded"), "type": (r.get("error") or {}).get("type")}
        for r in data.failed
    ]
    sweep = data.sweep or {}
    setting = {}
    for key in ("model", "max_steps", "batch_size", "lr", "max_len"):
        seen = list(dict.fromkeys(str(r["config"].get(key)) for r in data.ok if key in r["config"]))
        if seen:
            setting[key] = seen
    return {
        "setting": setting,
        "folder": str(data.folder),
        "grid": sweep.get("grid"),
        "overrides": sweep.get("overrides"),
        "keys": data.keys,
        "method_keys": method_keys,
        "runs": len(data.results),
        "ok": len(data.ok),
        "sts_tasks": sts_tasks_done,
        "groups": rows,
        "failed": failed,
        "per_run": [
            {"name": r["name"], "values": r.get("values"), "seed": r["config"]["seed"], "scores": r.get("scores"),
             "alignment": (r.get("geometry") or {}).get("alignment"), "uniformity": (r.get("geometry") or {}).get("uniformity"),
             "best_dev": (r.get("train") or {}).get("best_dev"), "seconds": r.get("seconds")}
            for r in data.ok
        ],
    }


# ---------------------------------------------------------------------------------------------- formatting


def fmt_stat(entry: Mapping[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """``68.40 ± 0.52``; ``68.40 ± –`` for one seed; ``n/a`` without a value."""
    if not entry or entry.get("mean") is None:
        return NA
    sign = "+" if signed else ""
    mean = f"{entry['mean']:{sign}.{digits}f}"
    std = NO_STD if entry.get("std") is None else f"{entry['std']:.{digits}f}"
    return f"{mean} ± {std}"


def fmt_delta(entry: Mapping[str, Any] | None) -> str:
    text = fmt_stat(entry, signed=True)
    return text + ("†" if entry and entry.get("mean") is not None and not entry.get("paired") else "")


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        align = ["---"] + ["---:"] * (len(self.header) - 1)
        lines = [f"| {' | '.join(self.header)} |", f"| {' | '.join(align)} |"]
        lines += [f"| {' | '.join(c.replace('|', '/') for c in row)} |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def method_cells(row: Mapping[str, Any], method_keys: Sequence[str]) -> list[str]:
    if not method_keys:
        return [row["label"]]
    return [NO_STD if row["values"].get(k) is None else _fmt_value(row["values"].get(k)) for k in method_keys]


def method_header(method_keys: Sequence[str]) -> list[str]:
    return [short_key(k) for k in method_keys] or ["method"]


def build_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The report's tables, in order."""
    keys = summary["method_keys"]
    groups = summary["groups"]
    tables = []
    has_delta = any("delta" in g for g in groups)
    has_st = any("delta_st" in g for g in groups)
    has_retrieval = any("ndcg_at_10" in g for g in groups)
    header = method_header(keys) + ["seeds"] + [COLUMN_TITLES.get(c, c) for c in STS_COLUMNS]
    if has_delta:
        header.append("Δ Avg vs SimCSE")
    if has_st:
        header.append(f"Δ Avg vs {ST_BASELINE}")
    if has_retrieval:
        header.append("nDCG@10")
    rows = []
    for g in groups:
        cells = method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["sts"][c]) for c in STS_COLUMNS]
        if has_delta:
            cells.append(fmt_delta(g["delta"]["avg"]) if "delta" in g else ("baseline" if g.get("baseline") == "self" else NA))
        if has_st:
            is_st = canonical_spec(g["values"].get(SPEC_KEY)) == ST_BASELINE
            cells.append(fmt_delta(g["delta_st"]["avg"]) if "delta_st" in g else ("baseline" if is_st else NA))
        if has_retrieval:
            cells.append(fmt_stat(g.get("ndcg_at_10")))
        rows.append(cells)
    tasks = summary["sts_tasks"]
    avg_note = "" if len(tasks) == len(STS_TASKS) else (
        f" Only {', '.join(tasks) or 'no task'} evaluated: Avg is over those, not the papers' 7-task average.")
    tables.append(Table(
        "STS (Spearman × 100)", header, rows,
        "Spearman correlation × 100 between cosine similarity and gold scores on the test sets (STS12–16: "
        "\"all\" setting); mean ± sample std (ddof = 1) over seeds, \"–\" = one seed. Δ: paired by seed "
        "against SimCSE with the same other settings (mean ± std of the per-seed differences); † = no common "
        "seed, difference of means ± sqrt(s₁² + s₂²)." + (" nDCG@10 × 100 on SciFact." if has_retrieval else "")
        + avg_note,
    ))
    if has_delta:
        drows = [method_cells(g, keys) + [str(g["delta"]["avg"]["n"])] + [fmt_delta(g["delta"][c]) for c in STS_COLUMNS]
                 for g in groups if "delta" in g]
        tables.append(Table(
            "Difference from SimCSE per task", method_header(keys) + ["paired seeds"]
            + [COLUMN_TITLES.get(c, c) for c in STS_COLUMNS], drows,
            "Per-seed differences from the SimCSE run with the same seed and other settings: mean ± std (ddof = 1).",
        ))
    if has_st:
        srows = [method_cells(g, keys) + [str(g["delta_st"]["avg"]["n"])] + [fmt_delta(g["delta_st"][c]) for c in STS_COLUMNS]
                 for g in groups if "delta_st" in g]
        tables.append(Table(
            f"Difference from {ST_BASELINE} (sentence-transformers' SimCSE) per task", method_header(keys)
            + ["paired seeds"] + [COLUMN_TITLES.get(c, c) for c in STS_COLUMNS], srows,
            f"Per-seed differences from the {ST_BASELINE} run (SentenceTransformerTrainer + "
            "MultipleNegativesRankingLoss on the same sentences, order, steps and settings) with the same seed: "
            "mean ± std (ddof = 1).",
        ))
    if any("dev" in g for g in groups):
        dev_header = method_header(keys) + ["seeds"] + [COLUMN_TITLES[c] for c in DEV_COLUMNS]
        dev_rows = [method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["dev"][c]) for c in DEV_COLUMNS] for g in groups]
        if any("delta_dev" in g for g in groups):
            dev_header += [f"Δ {COLUMN_TITLES[c]} vs SimCSE" for c in DEV_COLUMNS]
            for g, cells in zip(groups, dev_rows):
                cells += ([fmt_delta(g["delta_dev"][c]) for c in DEV_COLUMNS] if "delta_dev" in g
                          else ["baseline" if g.get("baseline") == "self" else NA] * len(DEV_COLUMNS))
        tables.append(Table(
            "Development sets (Spearman × 100)", dev_header, dev_rows,
            "STS-B dev and SICK-R trial (SentEval's dev split) of the saved model: the sets to choose settings by, "
            "never the test sets. Mean ± std over seeds; Δ paired by seed against SimCSE as above.",
        ))
    if any("transfer" in g for g in groups):
        tkeys = [f"transfer:{t}" for t in TRANSFER_TASKS] + ["transfer_avg"]
        trows = [method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["transfer"][k]) for k in tkeys] for g in groups]
        tables.append(Table("Transfer (accuracy × 100)", method_header(keys) + ["seeds", *TRANSFER_TASKS, "Avg"], trows,
                            "SentEval transfer tasks, logistic regression on frozen embeddings; mean ± std over seeds."))
    grows = [method_cells(g, keys) + [str(g["n"]), fmt_stat(g["alignment"], 3), fmt_stat(g["uniformity"], 3)] for g in groups]
    tables.append(Table(
        "Alignment and uniformity (STS-B test)", method_header(keys) + ["seeds", "alignment ↓", "uniformity ↓"], grows,
        "Wang & Isola (2020) on L2-normalised embeddings: alignment = mean ‖f(x) − f(y)‖² over STS-B test pairs "
        "with gold score > 4; uniformity = log mean exp(−2‖f(x) − f(y)‖²) over all pairs of distinct STS-B test "
        "sentences. Lower is better for both.",
    ))
    trows = [method_cells(g, keys) + [str(g["n"]), fmt_stat(g["best_dev"]), fmt_stat(g["train_seconds"], 1)] for g in groups]
    tables.append(Table("Training", method_header(keys) + ["seeds", "best STS-B dev", "train seconds"], trows,
                        "Best STS-B dev Spearman × 100 during training (n/a when dev evaluation was off); wall time."))
    run_rows = []
    for r in summary["per_run"]:
        scores = r.get("scores") or {}
        run_rows.append([r["name"], *[_num(scores.get(c)) for c in STS_COLUMNS],
                         _num(r.get("alignment"), 3), _num(r.get("uniformity"), 3)])
    tables.append(Table("Runs", ["run", *[COLUMN_TITLES.get(c, c) for c in STS_COLUMNS], "align", "uniform"], run_rows))
    if summary["failed"]:
        frows = [[f["name"], str(f.get("stage") or ""), f"{f.get('type') or ''}: {f['error']}".strip(": ")]
                 for f in summary["failed"]]
        tables.append(Table("Failed runs", ["run", "stage", "error"], frows,
                            "Not in the tables above. Run the same sweep command again to retry them."))
    return tables


def _num(value: float | None, digits: int = 2) -> str:
    return NA if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------- plots


def _figure(width: float = 6.4, height: float = 4.4) -> Any:
    """A matplotlib Figure on the Agg canvas, without pyplot (no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_batch_size(data: SweepResults, folder: Path) -> Path | str:
    """STS Avg (mean ± std over seeds) against batch size, one line per method."""
    keys = varying_keys(data)
    if "batch_size" not in keys:
        return "batch_size does not vary in this sweep"
    line_keys = [k for k in keys if k not in (SEED_KEY, "batch_size")]
    groups = group_runs(data.ok, line_keys, data.axes)
    if not groups:
        return "no complete runs"
    figure = _figure()
    axis = figure.add_subplot()
    for colour, group in zip(_colours(len(groups)), groups):
        by_size: dict[int, list[float]] = {}
        for run in group.runs:
            avg = (run.get("scores") or {}).get("avg")
            if avg is not None:
                by_size.setdefault(int(run["config"]["batch_size"]), []).append(avg)
        sizes = sorted(by_size)
        stats = [mean_std(by_size[s]) for s in sizes]
        axis.errorbar(sizes, [m for m, _ in stats], yerr=[s or 0.0 for _, s in stats], marker="o", capsize=3,
                      color=colour, label=group.label)
    axis.set_xscale("log", base=2)
    sizes_all = sorted({int(r["config"]["batch_size"]) for r in data.ok})
    axis.set_xticks(sizes_all, [str(s) for s in sizes_all])
    return _finish(figure, axis, folder / PLOT_FILES["batch_size"], "batch size", "STS Avg (Spearman × 100)", "STS Avg against batch size (mean ± std over seeds)")


def _finish(figure: Any, axis: Any, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Label, grid and legend a plot, and save it as PNG."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, bbox_inches="tight")
    return path


def plot_geometry(data: SweepResults, folder: Path) -> Path | str:
    """Alignment (y) against uniformity (x) of every model, coloured by method (SimCSE's Figure 2)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    groups = group_runs([r for r in data.ok if r.get("geometry")], method_keys, data.axes)
    if not groups:
        return "no run has alignment and uniformity"
    figure = _figure()
    axis = figure.add_subplot()
    for colour, group in zip(_colours(len(groups)), groups):
        x = [r["geometry"]["uniformity"] for r in group.runs]
        y = [r["geometry"]["alignment"] for r in group.runs]
        axis.scatter(x, y, color=colour, label=group.label, s=36, alpha=0.85, edgecolors="none")
    return _finish(figure, axis, folder / PLOT_FILES["geometry"], "uniformity  (lower is better)", "alignment  (lower is better)", "Alignment and uniformity on STS-B test (one point per run)")


def plot_dev_curves(data: SweepResults, folder: Path) -> Path | str:
    """STS-B dev Spearman against training step for every run (colour: method; line style: seed)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    runs = [r for r in data.results if _curve(r)]
    if not runs:
        return "no dev evaluations were recorded (eval_every = 0)"
    groups = group_runs(runs, method_keys, data.axes)
    seeds = sorted({int(r["config"]["seed"]) for r in runs})
    styles = ["-", "--", ":", "-."]
    figure = _figure(7.0, 4.6)
    axis = figure.add_subplot()
    for colour, group in zip(_colours(len(groups)), groups):
        for k, run in enumerate(group.runs):
            curve = np.array(_curve(run), dtype=np.float64)
            style = styles[seeds.index(int(run["config"]["seed"])) % len(styles)]
            axis.plot(curve[:, 0], curve[:, 1], style, marker="o", markersize=3, color=colour,
                      label=group.label if k == 0 else None)
    return _finish(figure, axis, folder / PLOT_FILES["dev"], "training step", "STS-B dev Spearman × 100", "Dev Spearman during training (line style: seed)")


def _curve(run: Mapping[str, Any]) -> list[list[float]]:
    """The run's dev curve: from its metrics.jsonl if present, else from result.json."""
    from smoothcse.experiments.sweep import dev_curve, read_metrics

    if run.get("_dir"):
        curve = dev_curve(read_metrics(Path(run["_dir"])))
        if curve:
            return curve
    return run.get("dev_curve") or []


# ---------------------------------------------------------------------------------------------- documents


@dataclass
class ReportFiles:
    markdown: Path
    json: Path
    html: Path | None
    plots: dict[str, Path]
    skipped_plots: dict[str, str]
    table: str
    """The main table as markdown (for printing)."""


PLOT_TITLES = {
    "batch_size": "STS Avg against batch size",
    "geometry": "Alignment and uniformity",
    "dev": "Dev Spearman during training",
}


def _header_lines(summary: Mapping[str, Any]) -> list[str]:
    grid = summary.get("grid") or {}
    lines = []
    if grid.get("description"):
        lines.append(grid["description"])
    counts = f"{summary['runs']} runs, {summary['ok']} complete, {len(summary['failed'])} failed or unfinished"
    lines.append(f"Sweep folder `{summary['folder']}`: {counts}.")
    if grid:
        axes = " × ".join(f"{short_key(k)} ({len(v)})" for k, v in (grid.get("grid") or {}).items())
        lines.append(f"Grid `{grid.get('source', '')}`: {axes}; base recipe: {grid.get('base_recipe') or 'defaults'}.")
        fixed = {**(grid.get("fixed") or {}), **(summary.get("overrides") or {})}
        if fixed:
            lines.append("Fixed for every run: " + ", ".join(f"`{k} = {v}`" for k, v in fixed.items()) + ".")
    setting = summary.get("setting") or {}
    if setting:
        lines.append("Runs: " + ", ".join(f"{k} {', '.join(map(str, v))}" for k, v in setting.items()) + ".")
    return lines


def render_markdown(summary: Mapping[str, Any], tables: Sequence[Table], plots: Mapping[str, Path],
                    skipped: Mapping[str, str], base: Path) -> str:
    name = (summary.get("grid") or {}).get("name") or Path(summary["folder"]).name
    parts = [f"# Sweep report: {name}", ""]
    for line in _header_lines(summary):  # the description as a paragraph, the facts as a list
        parts += [line, ""] if line == (summary.get("grid") or {}).get("description") else [f"- {line}"]
    parts.append("")
    for table in tables:
        parts += [f"## {table.title}", "", table.markdown(), ""]
        if table.note:
            parts += [table.note, ""]
    parts += ["## Plots", ""]
    for key, title in PLOT_TITLES.items():
        if key in plots:
            parts += [f"### {title}", "", f"![{title}]({plots[key].relative_to(base).as_posix()})", ""]
        else:
            parts += [f"- {title}: not drawn ({skipped.get(key, 'no data')}).", ""]
    return "\n".join(parts).rstrip() + "\n"


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f3f3f3; }
p.note { color: #555; font-size: 0.85em; max-width: 60em; }
img { max-width: 100%; }
"""


def render_html(summary: Mapping[str, Any], tables: Sequence[Table], plots: Mapping[str, Path],
                skipped: Mapping[str, str], base: Path) -> str:
    name = html.escape(str((summary.get("grid") or {}).get("name") or Path(summary["folder"]).name))
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sweep report: {name}</title>",
             f"<style>{HTML_STYLE}</style></head><body>", f"<h1>Sweep report: {name}</h1>"]
    parts += [f"<p>{html.escape(line).replace('`', '')}</p>" for line in _header_lines(summary)]
    for table in tables:
        parts += [f"<h2>{html.escape(table.title)}</h2>", table.html()]
        if table.note:
            parts.append(f"<p class=\"note\">{html.escape(table.note)}</p>")
    parts.append("<h2>Plots</h2>")
    for key, title in PLOT_TITLES.items():
        if key in plots:
            src = html.escape(plots[key].relative_to(base).as_posix())
            parts.append(f"<h3>{html.escape(title)}</h3><img src=\"{src}\" alt=\"{html.escape(title)}\">")
        else:
            parts.append(f"<p>{html.escape(title)}: not drawn ({html.escape(skipped.get(key, 'no data'))}).</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(folder: str | Path, out: str | Path | None = None, html_report: bool = False) -> ReportFiles:
    """Write ``report.md`` (default ``<folder>/report.md``), ``report.json``, plots, and optionally HTML."""
    from smoothcse.files import write_json

    data = load_results(folder)
    markdown_path = Path(out) if out else Path(folder) / "report.md"
    if markdown_path.suffix.lower() in (".html", ".htm"):
        markdown_path, html_report = markdown_path.with_suffix(".md"), True
    base = markdown_path.parent
    base.mkdir(parents=True, exist_ok=True)
    plot_dir = base / f"{markdown_path.stem}_plots"
    plot_dir.mkdir(exist_ok=True)
    summary = summarise(data)
    plots: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for key, draw in (("batch_size", plot_batch_size), ("geometry", plot_geometry), ("dev", plot_dev_curves)):
        (plot_dir / PLOT_FILES[key]).unlink(missing_ok=True)
        made = draw(data, plot_dir)
        if isinstance(made, Path):
            plots[key] = made
        else:
            skipped[key] = made
    summary["plots"] = {k: str(v) for k, v in plots.items()}
    tables = build_tables(summary)
    markdown_path.write_text(render_markdown(summary, tables, plots, skipped, base), encoding="utf-8")
    json_path = markdown_path.with_suffix(".json")
    write_json(json_path, summary)
    html_path = None
    if html_report:
        html_path = markdown_path.with_suffix(".html")
        html_path.write_text(render_html(summary, tables, plots, skipped, base), encoding="utf-8")
    return ReportFiles(markdown_path, json_path, html_path, plots, skipped, tables[0].markdown())


__all__ = [
    "Group", "ReportFiles", "SweepResults", "build_tables", "load_results", "mean_std", "paired_difference",
    "summarise", "write_report",
]
