"""The report of a sweep: the papers' STS table as mean ± std over seeds, differences from SimCSE, plots; with a
``base`` arm (the untouched starting model) it comes first and every method gets its difference from it, and
retrieval scores (a ``domain`` sweep) add the domain table.

Input: a sweep folder (``<dir>/runs/*/result.json``, and ``<dir>/sweep.json`` for the grid's key order), read
as :class:`~smoothcse.experiments.results.RunResult` and :class:`~smoothcse.experiments.results.SweepRecord`.
Output: ``report.md`` (and ``report.html``), ``report.json`` with every number of the tables, and PNG
plots in ``<report stem>_plots/``.

* :mod:`.summary`: the runs grouped into methods, mean ± std over seeds, paired differences (how they are
  computed is in its docstring); every number, as ``report.json`` holds it;
* :mod:`.tables`: the tables, as markdown or HTML;
* :mod:`.plots`: STS Avg against batch size, alignment against uniformity, dev Spearman during training;
* :mod:`.document`: the files (:func:`write_report`).
"""

from smoothcse.experiments.report.document import ReportFiles, render_html, render_markdown, write_report
from smoothcse.experiments.report.plots import PLOT_FILES, plot_batch_size, plot_dev_curves, plot_geometry
from smoothcse.experiments.report.summary import (
    Group,
    SweepResults,
    find_baseline,
    group_runs,
    load_results,
    mean_std,
    order_groups,
    paired_difference,
    per_query_changes,
    summarise,
    varying_keys,
)
from smoothcse.experiments.report.tables import Table, build_tables, fmt_delta, fmt_stat

__all__ = [
    "PLOT_FILES",
    "Group",
    "ReportFiles",
    "SweepResults",
    "Table",
    "build_tables",
    "find_baseline",
    "fmt_delta",
    "fmt_stat",
    "group_runs",
    "load_results",
    "mean_std",
    "order_groups",
    "paired_difference",
    "per_query_changes",
    "plot_batch_size",
    "plot_dev_curves",
    "plot_geometry",
    "render_html",
    "render_markdown",
    "summarise",
    "varying_keys",
    "write_report",
]
