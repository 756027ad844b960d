"""The report's PNG plots (matplotlib on the Agg canvas, no display, no pyplot state). A plot without data
is not drawn: its function returns the reason instead of a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from smoothcse.experiments.report.summary import SEED_KEY, SweepResults, group_runs, mean_std, varying_keys
from smoothcse.experiments.results import RunResult, dev_curve, read_metrics

PLOT_FILES = {
    "batch_size": "sts_avg_vs_batch_size.png",
    "geometry": "alignment_uniformity.png",
    "dev": "dev_spearman.png",
}


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
            avg = run.score("avg")
            if avg is not None:
                by_size.setdefault(int(run.setting("batch_size")), []).append(avg)
        sizes = sorted(by_size)
        stats = [mean_std(by_size[s]) for s in sizes]
        axis.errorbar(
            sizes,
            [m for m, _ in stats],
            yerr=[s or 0.0 for _, s in stats],
            marker="o",
            capsize=3,
            color=colour,
            label=group.label,
        )
    axis.set_xscale("log", base=2)
    sizes_all = sorted({int(r.setting("batch_size")) for r in data.ok})
    axis.set_xticks(sizes_all, [str(s) for s in sizes_all])
    axis.set(xlabel="batch size", ylabel="STS Avg (Spearman × 100)")
    return _finish(
        figure, axis, folder / PLOT_FILES["batch_size"], "STS Avg against batch size (mean ± std over seeds)"
    )


def _finish(figure: Any, axis: Any, path: Path, title: str) -> Path:
    """Title, grid and legend a plot, and save it as PNG."""
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, bbox_inches="tight")
    return path


def plot_geometry(data: SweepResults, folder: Path) -> Path | str:
    """Alignment (y) against uniformity (x) of every model, coloured by method (SimCSE's Figure 2)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    groups = group_runs([r for r in data.ok if r.geometry], method_keys, data.axes)
    if not groups:
        return "no run has alignment and uniformity"
    figure = _figure()
    axis = figure.add_subplot()
    for colour, group in zip(_colours(len(groups)), groups):
        x = [r.uniformity for r in group.runs]
        y = [r.alignment for r in group.runs]
        axis.scatter(x, y, color=colour, label=group.label, s=36, alpha=0.85, edgecolors="none")
    axis.set(xlabel="uniformity  (lower is better)", ylabel="alignment  (lower is better)")
    return _finish(
        figure, axis, folder / PLOT_FILES["geometry"], "Alignment and uniformity on STS-B test (one point per run)"
    )


def plot_dev_curves(data: SweepResults, folder: Path) -> Path | str:
    """STS-B dev Spearman against training step for every run (colour: method; line style: seed)."""
    method_keys = [k for k in varying_keys(data) if k != SEED_KEY]
    runs = [r for r in data.results if _curve(r)]
    if not runs:
        return "no dev evaluations were recorded (eval_every = 0)"
    groups = group_runs(runs, method_keys, data.axes)
    seeds = sorted({r.seed for r in runs})
    styles = ["-", "--", ":", "-."]
    figure = _figure(7.0, 4.6)
    axis = figure.add_subplot()
    for colour, group in zip(_colours(len(groups)), groups):
        for k, run in enumerate(group.runs):
            curve = np.array(_curve(run), dtype=np.float64)
            style = styles[seeds.index(run.seed) % len(styles)]
            axis.plot(
                curve[:, 0],
                curve[:, 1],
                style,
                marker="o",
                markersize=3,
                color=colour,
                label=group.label if k == 0 else None,
            )
    axis.set(xlabel="training step", ylabel="STS-B dev Spearman × 100")
    return _finish(figure, axis, folder / PLOT_FILES["dev"], "Dev Spearman during training (line style: seed)")


def _curve(run: RunResult) -> list[list[float]]:
    """The run's dev curve: from its metrics.jsonl if present, else from result.json."""
    if run.folder is not None:
        curve = dev_curve(read_metrics(run.folder))
        if curve:
            return curve
    return run.dev_curve or []
