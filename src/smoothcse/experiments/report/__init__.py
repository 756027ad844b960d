"""The report of a sweep folder: the papers' STS table as mean ± std over seeds, differences from SimCSE (and
from a ``base`` arm), the domain table when runs hold retrieval scores, and plots. Modules: :mod:`.summary`
(every number, ``report.json``), :mod:`.tables`, :mod:`.plots`, :mod:`.document` (:func:`write_report`, the
files); docs/experiments.md.
"""

from smoothcse.experiments.report.document import ReportFiles, write_report

__all__ = ["ReportFiles", "write_report"]
