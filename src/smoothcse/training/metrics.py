"""What a run records: ``metrics.jsonl`` (:class:`MetricsLog`, each record also sent to the run's experiment
trackers) and the on-device counters it is read from.

:class:`StepCounters` sums the loss terms and counts non-finite steps on the device, so a step never
waits for the device; the run reads them (the loop's only host sync) every ``log_every`` steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from smoothcse.training.trackers import Reporter

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """JSON lines in the output folder (rank 0 only), each record also given to ``reporter`` (``--report-to``)."""

    def __init__(self, path: Path, enabled: bool, reporter: Reporter | None = None) -> None:
        self.path = path
        self.enabled = enabled
        self.reporter = reporter

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.reporter is not None:
                self.reporter.record(record)


class StepCounters:
    """Loss terms summed and non-finite steps counted on the device since the last log step."""

    def __init__(self, device: torch.device) -> None:
        self.running: dict[str, Tensor] = {}
        """Sum of each loss term over the steps since the last log (non-finite values count as 0)."""
        self.nonfinite_total = torch.zeros((), device=device)
        """Steps skipped for a non-finite loss or gradient, in this process's run so far."""
        self.consecutive_bad = torch.zeros((), device=device)
        self.worst_run = torch.zeros((), device=device)
        """The longest run of consecutive skipped steps since the last log."""

    def add(self, terms: dict[str, Tensor], bad: Tensor) -> None:
        """Count one step: its loss terms and whether it was skipped (``bad``, a bool on the device)."""
        self.nonfinite_total += bad
        self.consecutive_bad = (self.consecutive_bad + 1) * bad
        self.worst_run = torch.maximum(self.worst_run, self.consecutive_bad)
        for name, value in terms.items():
            self.running[name] = self.running.get(name, 0.0) + torch.nan_to_num(value.float(), nan=0.0, posinf=0.0)


__all__ = ["METRICS_FILE", "MetricsLog", "StepCounters"]
