"""The report's files: ``report.md`` (and ``report.html``), ``report.json`` with every number of the tables,
and the plots in ``<report stem>_plots/`` (:func:`write_report`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothcse.experiments.grid import Grid, short_key
from smoothcse.experiments.report.plots import PLOT_FILES, plot_batch_size, plot_dev_curves, plot_geometry
from smoothcse.experiments.report.summary import load_results, summarise
from smoothcse.experiments.report.tables import Table, build_tables
from smoothcse.files import write_json


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


def _grid(summary: Mapping[str, Any]) -> Grid | None:
    """The sweep's grid, as the summary records it (None without a sweep.json)."""
    record = summary["grid"]
    return Grid.from_dict(record) if record else None


def _title(summary: Mapping[str, Any]) -> str:
    grid = _grid(summary)
    return (grid.name if grid is not None else "") or Path(summary["folder"]).name


def _header_lines(summary: Mapping[str, Any]) -> list[str]:
    grid = _grid(summary)
    lines = []
    if grid is not None and grid.description:
        lines.append(grid.description)
    counts = f"{summary['runs']} runs, {summary['ok']} complete, {len(summary['failed'])} failed or unfinished"
    lines.append(f"Sweep folder `{summary['folder']}`: {counts}.")
    if grid is not None:
        axes = " × ".join(f"{short_key(k)} ({len(v)})" for k, v in grid.axes.items())
        lines.append(f"Grid `{grid.source}`: {axes}; base recipe: {grid.base_recipe or 'defaults'}.")
        fixed = {**grid.fixed, **(summary["overrides"] or {})}
        if fixed:
            lines.append("Fixed for every run: " + ", ".join(f"`{k} = {v}`" for k, v in fixed.items()) + ".")
    setting = summary["setting"]
    if setting:
        lines.append("Runs: " + ", ".join(f"{k} {', '.join(map(str, v))}" for k, v in setting.items()) + ".")
    return lines


def render_markdown(
    summary: Mapping[str, Any],
    tables: Sequence[Table],
    plots: Mapping[str, Path],
    skipped: Mapping[str, str],
    base: Path,
) -> str:
    grid = _grid(summary)
    parts = [f"# Sweep report: {_title(summary)}", ""]
    for line in _header_lines(summary):  # the description as a paragraph, the facts as a list
        parts += [line, ""] if grid is not None and line == grid.description else [f"- {line}"]
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


def render_html(
    summary: Mapping[str, Any],
    tables: Sequence[Table],
    plots: Mapping[str, Path],
    skipped: Mapping[str, str],
    base: Path,
) -> str:
    name = html.escape(_title(summary))
    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sweep report: {name}</title>',
        f"<style>{HTML_STYLE}</style></head><body>",
        f"<h1>Sweep report: {name}</h1>",
    ]
    parts += [f"<p>{html.escape(line).replace('`', '')}</p>" for line in _header_lines(summary)]
    for table in tables:
        parts += [f"<h2>{html.escape(table.title)}</h2>", table.html()]
        if table.note:
            parts.append(f'<p class="note">{html.escape(table.note)}</p>')
    parts.append("<h2>Plots</h2>")
    for key, title in PLOT_TITLES.items():
        if key in plots:
            src = html.escape(plots[key].relative_to(base).as_posix())
            parts.append(f'<h3>{html.escape(title)}</h3><img src="{src}" alt="{html.escape(title)}">')
        else:
            parts.append(f"<p>{html.escape(title)}: not drawn ({html.escape(skipped.get(key, 'no data'))}).</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(folder: str | Path, out: str | Path | None = None, html_report: bool = False) -> ReportFiles:
    """Write ``report.md`` (default ``<folder>/report.md``), ``report.json``, plots, and optionally HTML."""
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
