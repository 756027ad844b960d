"""The report's tables, from :func:`~smoothcse.experiments.report.summary.summarise`'s numbers: cells as
``mean ± std`` (``68.40 ± –`` for one seed, ``n/a`` without a value), signed differences (``†`` when not paired
by seed), rendered as markdown or HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smoothcse.evaluation.data import STS_TASKS, TRANSFER_TASKS
from smoothcse.evaluation.report import NOT_AVAILABLE, format_number
from smoothcse.experiments.grid import format_value, short_key
from smoothcse.experiments.report.summary import (
    BASE,
    DEV_COLUMNS,
    SPEC_KEY,
    ST_BASELINE,
    STS_COLUMNS,
    TRANSFER_COLUMNS,
    UNCHANGED_TOLERANCE,
    canonical_spec,
)

COLUMN_TITLES = {"avg": "Avg", "dev:STSb": "STS-B dev", "dev:SICK-R": "SICK-R trial", "dev_avg": "dev Avg"}
NO_STD = "–"


def fmt_stat(entry: Mapping[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """``68.40 ± 0.52``; ``68.40 ± –`` for one seed; ``n/a`` without a value."""
    if not entry or entry.get("mean") is None:
        return NOT_AVAILABLE
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
    return [NO_STD if row["values"].get(k) is None else format_value(row["values"].get(k)) for k in method_keys]


def method_header(method_keys: Sequence[str]) -> list[str]:
    return [short_key(k) for k in method_keys] or ["method"]


STS_TITLES = [COLUMN_TITLES.get(c, c) for c in STS_COLUMNS]


def _own_cell(row: Mapping[str, Any]) -> str:
    """The Δ vs SimCSE cell of a row without that Δ: SimCSE's own row says ``baseline``."""
    return "baseline" if row.get("baseline") == "self" else NOT_AVAILABLE


def _base_cell(row: Mapping[str, Any], field: str, key: str, digits: int = 2, signed: bool = True) -> str:
    """A number the row holds against base (``row[field][key]``): ``baseline`` in base's own row."""
    if field in row:
        entry = row[field][key]
        return fmt_delta(entry) if signed else fmt_stat(entry, digits)
    return "baseline" if row.get("base") == "self" else NOT_AVAILABLE


def _sts_note(summary: Mapping[str, Any], has_retrieval: bool, has_base: bool) -> str:
    note = (
        "Spearman correlation × 100 between cosine similarity and gold scores on the test sets (STS12–16: "
        '"all" setting); mean ± sample std (ddof = 1) over seeds, "–" = one seed. Δ: paired by seed '
        "against SimCSE with the same other settings (mean ± std of the per-seed differences); † = no common "
        "seed, difference of means ± sqrt(s₁² + s₂²)."
    )
    if has_retrieval:
        note += " nDCG@10 × 100 on SciFact."
    if has_base:
        note += f" Δ vs base: paired by seed against the {BASE} arm (the starting model, evaluated without training)."
    tasks = summary["sts_tasks"]
    if len(tasks) != len(STS_TASKS):
        note += f" Only {', '.join(tasks) or 'no task'} evaluated: Avg is over those, not the papers' 7-task average."
    return note


def _sts_table(summary: Mapping[str, Any]) -> Table:
    """The papers' table: one row per method, the 7 tasks and Avg, and the differences from the baselines."""
    keys, groups = summary["method_keys"], summary["groups"]
    has_delta = any("delta" in g for g in groups)
    has_st = any("delta_st" in g for g in groups)
    has_retrieval = any("ndcg_at_10" in g for g in groups)
    has_base = any("delta_base" in g for g in groups)
    header = method_header(keys) + ["seeds"] + STS_TITLES
    header += [f"Δ Avg vs {BASE}"] if has_base else []
    header += ["Δ Avg vs SimCSE"] if has_delta else []
    header += [f"Δ Avg vs {ST_BASELINE}"] if has_st else []
    header += ["nDCG@10"] if has_retrieval else []
    rows = []
    for g in groups:
        cells = method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["sts"][c]) for c in STS_COLUMNS]
        if has_base:
            cells.append(_base_cell(g, "delta_base", "avg"))
        if has_delta:
            cells.append(fmt_delta(g["delta"]["avg"]) if "delta" in g else _own_cell(g))
        if has_st:
            is_st = canonical_spec(g["values"].get(SPEC_KEY)) == ST_BASELINE
            cells.append(
                fmt_delta(g["delta_st"]["avg"]) if "delta_st" in g else ("baseline" if is_st else NOT_AVAILABLE)
            )
        if has_retrieval:
            cells.append(fmt_stat(g["ndcg_at_10"]))
        rows.append(cells)
    return Table("STS (Spearman × 100)", header, rows, _sts_note(summary, has_retrieval, has_base))


DIFFERENCES: tuple[tuple[str, str, str], ...] = (
    (
        "delta_base",
        f"Difference from {BASE} (the starting model, untrained) per task",
        "Per-seed differences from the base run with the same seed (the starting model evaluated without "
        "training): mean ± std (ddof = 1). What general ability training on the domain gained or lost.",
    ),
    (
        "delta",
        "Difference from SimCSE per task",
        "Per-seed differences from the SimCSE run with the same seed and other settings: mean ± std (ddof = 1).",
    ),
    (
        "delta_st",
        f"Difference from {ST_BASELINE} (sentence-transformers' SimCSE) per task",
        f"Per-seed differences from the {ST_BASELINE} run (SentenceTransformerTrainer + "
        "MultipleNegativesRankingLoss on the same sentences, order, steps and settings) with the same seed: "
        "mean ± std (ddof = 1).",
    ),
)
"""The per-task difference tables: the row's field holding the differences, the title, the note."""


def _difference_table(summary: Mapping[str, Any], field: str, title: str, note: str) -> Table | None:
    """The per-task paired differences a row holds under ``field`` (None when no row has them)."""
    keys = summary["method_keys"]
    rows = [
        method_cells(g, keys) + [str(g[field]["avg"]["n"])] + [fmt_delta(g[field][c]) for c in STS_COLUMNS]
        for g in summary["groups"]
        if field in g
    ]
    if not rows:
        return None
    return Table(title, method_header(keys) + ["paired seeds"] + STS_TITLES, rows, note)


def _dev_table(summary: Mapping[str, Any]) -> Table | None:
    keys, groups = summary["method_keys"], summary["groups"]
    if not any("dev" in g for g in groups):
        return None
    header = method_header(keys) + ["seeds"] + [COLUMN_TITLES[c] for c in DEV_COLUMNS]
    rows = [method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["dev"][c]) for c in DEV_COLUMNS] for g in groups]
    if any("delta_dev" in g for g in groups):
        header += [f"Δ {COLUMN_TITLES[c]} vs SimCSE" for c in DEV_COLUMNS]
        for g, cells in zip(groups, rows):
            own = [_own_cell(g)] * len(DEV_COLUMNS)
            cells += [fmt_delta(g["delta_dev"][c]) for c in DEV_COLUMNS] if "delta_dev" in g else own
    return Table(
        "Development sets (Spearman × 100)",
        header,
        rows,
        "STS-B dev and SICK-R trial (SentEval's dev split) of the saved model: the sets to choose settings by, "
        "never the test sets. Mean ± std over seeds; Δ paired by seed against SimCSE as above.",
    )


def _transfer_table(summary: Mapping[str, Any]) -> Table | None:
    keys, groups = summary["method_keys"], summary["groups"]
    if not any("transfer" in g for g in groups):
        return None
    rows = [
        method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g["transfer"][k]) for k in TRANSFER_COLUMNS] for g in groups
    ]
    return Table(
        "Transfer (accuracy × 100)",
        method_header(keys) + ["seeds", *TRANSFER_TASKS, "Avg"],
        rows,
        "SentEval transfer tasks, logistic regression on frozen embeddings; mean ± std over seeds.",
    )


def _geometry_table(summary: Mapping[str, Any]) -> Table:
    keys, groups = summary["method_keys"], summary["groups"]
    rows = [
        method_cells(g, keys) + [str(g["n"]), fmt_stat(g["alignment"], 3), fmt_stat(g["uniformity"], 3)] for g in groups
    ]
    return Table(
        "Alignment and uniformity (STS-B test)",
        method_header(keys) + ["seeds", "alignment ↓", "uniformity ↓"],
        rows,
        "Wang & Isola (2020) on L2-normalised embeddings: alignment = mean ‖f(x) − f(y)‖² over STS-B test pairs "
        "with gold score > 4; uniformity = log mean exp(−2‖f(x) − f(y)‖²) over all pairs of distinct STS-B test "
        "sentences. Lower is better for both.",
    )


def _training_table(summary: Mapping[str, Any]) -> Table:
    keys, groups = summary["method_keys"], summary["groups"]
    rows = [
        method_cells(g, keys)
        + [str(g["n"]), fmt_stat(g["best_dev"]), fmt_stat(g["train_seconds"], 1), fmt_terms(g.get("loss_terms"))]
        for g in groups
    ]
    return Table(
        "Training",
        method_header(keys) + ["seeds", "best STS-B dev", "train seconds", "loss terms: first → last log"],
        rows,
        "Best STS-B dev Spearman × 100 during training (n/a when dev evaluation was off); wall time; each term of "
        "the objective and the gradient norm at the first and the last logged step (mean over seeds): a term "
        "near 0 from the start had nothing left to teach.",
    )


def fmt_terms(terms: Mapping[str, Any] | None) -> str:
    """``infonce 1.53 → 1.41, grad_norm 8.07 → 9.21`` (3 significant digits); ``n/a`` without a log."""
    if not terms:
        return NOT_AVAILABLE
    return ", ".join(f"{name} {v['first']['mean']:.3g} → {v['last']['mean']:.3g}" for name, v in terms.items())


DOMAIN_TITLES = {"train_ndcg_at_10": "train nDCG@10", "ndcg_at_10": "test nDCG@10"}
QUERY_TITLES = {"improved": "queries improved", "unchanged": "unchanged", "worsened": "worsened"}


def _domain_columns(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The retrieval scores the rows hold: train and/or test nDCG@10."""
    return [c for c in DOMAIN_TITLES if any(c in g for g in groups)]


def _domain_note(groups: Sequence[Mapping[str, Any]], has_base: bool, has_queries: bool) -> str:
    changes = [g["per_query_vs_base"]["per_seed"] for g in groups if "per_query_vs_base" in g]
    queries = sorted({int(counts["queries"]) for per_seed in changes for counts in per_seed.values()})
    train = "train queries (to choose settings by) and " if "train_ndcg_at_10" in _domain_columns(groups) else ""
    note = (
        f"nDCG@10 × 100 of the BEIR folder's {train}test queries (to report), and the STS table's Avg (general "
        "ability); mean ± std over seeds."
    )
    if has_base:
        note += f" Δ: paired by seed against the {BASE} arm (the starting model, evaluated without training)."
    if has_queries:
        note += (
            " Queries: the test queries whose nDCG@10 the run raised, left unchanged (within "
            f"{UNCHANGED_TOLERANCE:g}) or lowered against base's run of the same seed, of "
            f"{' or '.join(map(str, queries))}; mean ± std over the seeds."
        )
    return note


def _domain_row(
    g: Mapping[str, Any], keys: Sequence[str], columns: Sequence[str], has_base: bool, has_queries: bool
) -> list[str]:
    cells = method_cells(g, keys) + [str(g["n"])] + [fmt_stat(g[c]) for c in columns] + [fmt_stat(g["sts"]["avg"])]
    if has_base:
        cells += [_base_cell(g, "delta_base", c) for c in (*columns, "avg")]
    if has_queries:
        cells += [_base_cell(g, "per_query_vs_base", k, digits=1, signed=False) for k in QUERY_TITLES]
    return cells


def _domain_table(summary: Mapping[str, Any]) -> Table | None:
    """The user's task against general ability: train and test nDCG@10, STS Avg, their Δ vs base, and the
    test queries each method improved or worsened against base (when the runs hold per-query scores)."""
    keys, groups = summary["method_keys"], summary["groups"]
    columns = _domain_columns(groups)
    if not columns:
        return None
    has_base = any("delta_base" in g for g in groups)
    has_queries = any("per_query_vs_base" in g for g in groups)
    header = method_header(keys) + ["seeds"] + [DOMAIN_TITLES[c] for c in columns] + ["STS Avg"]
    if has_base:
        header += [f"Δ {DOMAIN_TITLES[c].split()[0]} vs {BASE}" for c in columns] + [f"Δ STS Avg vs {BASE}"]
    if has_queries:
        header += list(QUERY_TITLES.values())
    rows = [_domain_row(g, keys, columns, has_base, has_queries) for g in groups]
    return Table("Domain: retrieval and general ability", header, rows, _domain_note(groups, has_base, has_queries))


def _runs_table(summary: Mapping[str, Any]) -> Table:
    """Every complete run's scores, to check any number by hand (with its retrieval scores in a domain sweep)."""
    domain = _domain_columns(summary["groups"]) if _domain_first(summary) else []
    rows = [
        [
            r["name"],
            *[format_number(r["scores"].get(c)) for c in STS_COLUMNS],
            *[format_number(r["scores"].get(c)) for c in domain],
            format_number(r["alignment"], 3),
            format_number(r["uniformity"], 3),
        ]
        for r in summary["per_run"]
    ]
    return Table("Runs", ["run", *STS_TITLES, *[DOMAIN_TITLES[c] for c in domain], "align", "uniform"], rows)


def _failed_table(summary: Mapping[str, Any]) -> Table | None:
    if not summary["failed"]:
        return None
    rows = [
        [f["name"], str(f["stage"] or ""), f"{f['type'] or ''}: {f['error']}".strip(": ")] for f in summary["failed"]
    ]
    return Table(
        "Failed runs",
        ["run", "stage", "error"],
        rows,
        "Not in the tables above. Run the same sweep command again to retry them.",
    )


def _domain_first(summary: Mapping[str, Any]) -> bool:
    """A domain sweep (its runs scored on the train queries too): the domain table leads the report."""
    return any("train_ndcg_at_10" in g for g in summary["groups"])


def build_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The report's tables, in order (a table without data is left out). The domain table comes first in a
    domain sweep, after the differences otherwise."""
    domain = _domain_table(summary)
    first = _domain_first(summary)
    tables = [
        domain if first else None,
        _sts_table(summary),
        *(_difference_table(summary, *difference) for difference in DIFFERENCES),
        None if first else domain,
        _dev_table(summary),
        _transfer_table(summary),
        _geometry_table(summary),
        _training_table(summary),
        _runs_table(summary),
        _failed_table(summary),
    ]
    return [table for table in tables if table is not None]
