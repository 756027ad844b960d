"""The report of a sweep folder: the papers' STS table as mean ± std over seeds, differences from SimCSE (and
from a ``base`` arm), the domain table when runs hold retrieval scores, and plots. Modules: :mod:`.summary`
(every number, ``report.json``), :mod:`.tables`, :mod:`.plots`, :mod:`.document` (:func:`write_report`, the
files); docs/experiments.md.
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
