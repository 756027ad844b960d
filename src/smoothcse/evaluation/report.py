"""Readable tables and JSON for evaluation results.

Tables follow the papers' column order (``STS12 STS13 STS14 STS15 STS16 STSb SICK-R Avg`` and
``MR CR SUBJ MPQA SST2 TREC MRPC Avg``), two decimals; a task that could not be scored shows
``n/a`` and its error is printed under the table. JSON keeps every number at full precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from smoothcse.evaluation.data import STS_TASKS, TRANSFER_TASKS

NOT_AVAILABLE = "n/a"


def failed_tasks(*results: Mapping[str, Any]) -> list[str]:
    """The names of every task that could not be scored, over any number of result dicts."""
    return [name for result in results for name in result.get("failed", [])]


def format_number(value: float | None, digits: int = 2) -> str:
    """Two (or ``digits``) decimals, or ``n/a`` for a missing or NaN value."""
    if value is None or not math.isfinite(value):
        return NOT_AVAILABLE
    return f"{value:.{digits}f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], sep: str = "  ", rule: str | None = None) -> str:
    """Right-aligned columns separated by ``sep`` (the first column left-aligned); under the header, when ``rule``
    is given, a line of dashes as wide as each column, joined by ``rule``."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [r[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(r[1:], widths[1:])]
        lines.append(sep.join(cells).rstrip())
    if rule is not None:
        lines.insert(1, rule.join("-" * w for w in widths))
    return "\n".join(lines)


def _ordered(tasks: Mapping[str, Any], order: Sequence[str]) -> list[str]:
    return [name for name in order if name in tasks] + [name for name in tasks if name not in order]


def _headline_table(results: Mapping[str, Any], order: Sequence[str], metric: str, title: str) -> str:
    tasks = results["tasks"]
    names = _ordered(tasks, order)
    values = [format_number(tasks[n].get(metric)) for n in names]
    average = results.get("avg", {}).get(metric)
    text = format_table(["", *names, "Avg"], [[title, *values, format_number(average)]])
    notes = [f"{NOT_AVAILABLE}: {name}: {tasks[name]['error']}" for name in names if "error" in tasks[name]]
    return "\n".join([text, *notes])


def format_sts_table(results: Mapping[str, Any]) -> str:
    """One row of headline Spearman × 100 in the papers' order, then a line per task that failed."""
    title = "Spearman" if results.get("mode", "test") == "test" else "Spearman (dev)"
    return _headline_table(results, STS_TASKS, "spearman", title)


def _score_row(label: str, score: Mapping[str, Any], pairs: str) -> list[str]:
    return [label, format_number(score["spearman"]), format_number(score["pearson"]), pairs]


def format_sts_details(results: Mapping[str, Any]) -> str:
    """Every STS number: per task the headline, all/mean/wmean for STS12-16, and each subset with its size."""
    rows: list[list[str]] = []
    tasks = results["tasks"]
    for name in _ordered(tasks, STS_TASKS):
        result = tasks[name]
        if "error" in result:
            rows.append([name, NOT_AVAILABLE, NOT_AVAILABLE, ""])
            continue
        label = f"{name} ({result['split']})" if "split" in result else f"{name} (all)"
        rows.append(_score_row(label, result, str(result["n_pairs"])))
        if "subsets" in result:
            rows.extend(_score_row(f"  {kind}", result[kind], "") for kind in ("mean", "wmean"))
            rows.extend(_score_row(f"  {name}", s, str(s["n_pairs"])) for name, s in result["subsets"].items())
    return format_table(["task / subset", "Spearman", "Pearson", "pairs"], rows)


def format_transfer_table(results: Mapping[str, Any]) -> str:
    """One row of accuracies × 100 in the papers' order (MRPC: accuracy; its F1 on the line below)."""
    text = _headline_table(results, TRANSFER_TASKS, "accuracy", "Accuracy")
    mrpc = results["tasks"].get("MRPC", {})
    if "f1" in mrpc:
        text += f"\nMRPC F1: {format_number(mrpc['f1'])} (features {mrpc.get('features', '')})"
    return text
