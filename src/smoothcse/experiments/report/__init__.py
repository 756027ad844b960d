"""The report of a sweep folder (:func:`write_report`): :mod:`.summary` (every number, ``report.json``),
:mod:`.tables`, :mod:`.plots`, :mod:`.document` (the files); docs/experiments.md.
"""

from smoothcse.experiments.report.document import ReportFiles, write_report

__all__ = ["ReportFiles", "write_report"]
