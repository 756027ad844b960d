"""What a sweep leaves on disk, typed: each run's ``result.json`` (:class:`RunResult`), the sweep's
``sweep.json`` (:class:`SweepRecord`), the file names of a sweep folder, and a run's ``metrics.jsonl``
records. The sweep writes these and the report reads them, through the same classes.

Every score is × 100, retrieval metrics included (nDCG@10 64.51, not 0.6451); results written before
retrieval was (no ``format`` key) are converted when loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothcse.experiments.grid import Grid
from smoothcse.files import read_json, write_json

RUNS_DIR = "runs"
"""``<sweep folder>/runs/<run name>/``: one folder per run (the exported model, its records, its result)."""
RESULT_FILE = "result.json"
SWEEP_FILE = "sweep.json"
METRICS_FILE = "metrics.jsonl"
TRAIN_CONFIG_FILE = "smoothcse_config.json"

RESULT_FORMAT = 2
"""The ``format`` of the ``result.json`` files written now. 2: retrieval metrics × 100. A file without the key
(format 1) stored retrieval metrics as fractions in [0, 1] (its ``scores["ndcg_at_10"]`` was already × 100)."""
EVALUATIONS: tuple[str, ...] = ("sts", "geometry", "dev", "transfer", "retrieval")
"""The evaluation documents a result may hold (each the JSON result of its evaluator)."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a line cut by a crash is skipped); [] without the file."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(record, dict):
            records.append(record)
    return records


def dev_curve(records: Sequence[dict[str, Any]]) -> list[list[float]]:
    """``[[step, stsb_dev], ...]`` from metrics records, one point per step (the latest), sorted."""
    points: dict[int, float] = {}
    for record in records:
        if "stsb_dev" in record and "step" in record and record["stsb_dev"] is not None:
            points[int(record["step"])] = float(record["stsb_dev"])
    return [[step, points[step]] for step in sorted(points)]


NOT_LOSS_TERMS = frozenset({"step", "lr", "steps_per_s", "nonfinite_steps"})
"""Logged numbers that are not the objective's terms (nor the gradient norm)."""


def loss_terms(records: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Each loss term the training log holds, and the gradient norm, at the first and the last logged step:
    ``{"loss": [1.53, 1.41], "infonce": [1.53, 1.41], "grad_norm": [8.07, 9.21]}``. What a run's objective
    did: a term near 0 from the first step had nothing left to teach ({} without a training log)."""
    logged = [r for r in records if "step" in r and "loss" in r]
    if not logged:
        return {}
    first, last = logged[0], logged[-1]
    return {
        key: [float(first[key]), float(value)]
        for key, value in last.items()
        if key not in NOT_LOSS_TERMS
        and "dev" not in key
        and isinstance(value, (int, float))
        and isinstance(first.get(key), (int, float))
    }


def train_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``{"summary": ...}`` record (written when training finished), or None."""
    summaries = [r["summary"] for r in records if isinstance(r.get("summary"), dict)]
    return summaries[-1] if summaries else None


@dataclass
class RunError:
    """Why a run failed: the stage (``config``, ``train`` or ``eval``), the exception's type and message, and
    its traceback (empty for smoothcse's own one-line errors)."""

    stage: str | None
    type: str | None
    message: str | None
    traceback: str = ""

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RunError:
        return cls(record.get("stage"), record.get("type"), record.get("message"), str(record.get("traceback") or ""))


@dataclass
class RunResult:
    """One run of a sweep, as its ``result.json`` holds it (docs/experiments.md): the evaluation documents
    (:data:`EVALUATIONS`) are the evaluators' own JSON results; ``scores`` the flat headline numbers the report
    tabulates (:func:`~smoothcse.experiments.evaluation.headline_scores`), all × 100."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    """The run's grid values (``{"seed": 42, "objective.spec": "simcse"}``)."""
    status: str = "running"
    """``running`` (while it runs, never on disk after it ended), ``ok`` or ``failed``."""
    config: dict[str, Any] | None = None
    """The full resolved TrainConfig as a dict; None when the run's configuration was invalid."""
    grid: str | None = None
    """The grid's source (a path, or ``built-in grid NAME``)."""
    framework: str | None = None
    """``smoothcse``, or ``sentence-transformers`` for the st-simcse arm."""
    started_at: str | None = None
    train: dict[str, Any] | None = None
    """The training summary (steps, initial/best/final dev Spearman, skipped steps, seconds)."""
    dev_curve: list[list[float]] | None = None
    """``[[step, STS-B dev Spearman], ...]``."""
    sts: dict[str, Any] | None = None
    geometry: dict[str, Any] | None = None
    dev: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    retrieval: dict[str, Any] | None = None
    scores: dict[str, float | None] | None = None
    error: RunError | None = None
    seconds: dict[str, float] | None = None
    """``{"train", "eval", "total"}`` wall times."""
    finished_at: str | None = None
    format: int = RESULT_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of the file this class does not know: kept, and written back."""
    folder: Path | None = field(default=None, compare=False)
    """The run folder it was loaded from (not written)."""

    @property
    def ok(self) -> bool:
        """Complete: status ``ok`` and scores recorded (only such runs enter the report's tables)."""
        return self.status == "ok" and bool(self.scores)

    @property
    def seed(self) -> int:
        """The run's seed (from its config)."""
        return int(self.setting("seed"))

    @property
    def settings(self) -> dict[str, Any]:
        """The run's config; {} when it had none (an invalid configuration)."""
        return self.config if self.config is not None else {}

    def setting(self, key: str) -> Any:
        """A config field's value; KeyError if the config does not hold it."""
        return self.settings[key]

    def score(self, key: str) -> float | None:
        """A headline score (``avg``, ``STSb``, ``dev_avg``, ``ndcg_at_10``...), or None."""
        return (self.scores if self.scores is not None else {}).get(key)

    @property
    def alignment(self) -> float | None:
        return self.geometry.get("alignment") if self.geometry else None

    @property
    def uniformity(self) -> float | None:
        return self.geometry.get("uniformity") if self.geometry else None

    @property
    def best_dev(self) -> float | None:
        """The best STS-B dev Spearman during training (None when dev evaluation was off)."""
        return self.train.get("best_dev") if self.train else None

    def elapsed(self, phase: str) -> float | None:
        """Wall time of ``train``, ``eval`` or ``total``, or None."""
        return self.seconds.get(phase) if self.seconds else None

    def evaluation(self, name: str) -> dict[str, Any] | None:
        """One of the evaluation documents by name (``sts``, ``geometry``, ``dev``, ``transfer``, ``retrieval``)."""
        if name not in EVALUATIONS:
            raise KeyError(f"unknown evaluation {name!r}; one of {', '.join(EVALUATIONS)}")
        value: dict[str, Any] | None = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` document: the fields in their order, None fields left out (``config`` is
        always written: null for an invalid configuration)."""
        document = {
            key: getattr(self, key)
            for key in self.__dataclass_fields__
            if key not in ("extra", "folder") and (key == "config" or getattr(self, key) is not None)
        }
        if self.error is not None:
            document["error"] = dataclasses.asdict(self.error)
        document.update({k: v for k, v in self.extra.items() if k not in document})
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any], folder: Path | None = None) -> RunResult:
        """A result from its JSON document (any format a sweep wrote; see :data:`RESULT_FORMAT`)."""
        known = {f for f in cls.__dataclass_fields__ if f not in ("extra", "folder")}
        fields = {key: document[key] for key in known if document.get(key) is not None}
        error = document.get("error")
        fields.update(
            name=str(document.get("name") or (folder.name if folder is not None else "")),
            values=dict(document.get("values") or {}),
            status=str(document.get("status") or "running"),
            error=RunError.from_dict(error) if isinstance(error, dict) else None,
            format=int(document.get("format") or 1),
        )
        result = cls(**fields, extra={k: v for k, v in document.items() if k not in known}, folder=folder)
        if result.format < 2 and result.retrieval:
            result.retrieval = _retrieval_times_100(result.retrieval)
        result.format = RESULT_FORMAT
        return result

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunResult | None:
        """The result in ``path`` (a ``result.json``, or a run folder holding one); None when the file is
        missing, unreadable or not a JSON object."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULT_FILE
        document = read_json(path)
        if document is None or shape_problem(document):
            return None
        try:
            return cls.from_dict(document, folder=path.parent)
        except (TypeError, ValueError, AttributeError, KeyError):  # valid JSON of another shape
            return None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result atomically (to ``path``, or to ``path/result.json`` for a folder)."""
        target = Path(path)
        if target.is_dir():
            target = target / RESULT_FILE
        return write_json(target, self.to_dict())


RESULT_SHAPE: dict[str, type] = {"name": str, "status": str, "dev_curve": list, "format": int}
"""The JSON type of each ``result.json`` field a reader relies on (null allowed for every one)."""
RESULT_SHAPE.update(dict.fromkeys(("values", "config", "train", *EVALUATIONS, "scores", "error", "seconds"), dict))


def shape_problem(document: dict[str, Any]) -> str | None:
    """Why a JSON object is not a ``result.json`` a reader can use (a field of the wrong type, a score that
    is not a number, an evaluation without its tasks), or None."""
    for key, kind in RESULT_SHAPE.items():
        value = document.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"'{key}' is {type(value).__name__}, expected {kind.__name__}"
    for key, value in (document.get("scores") or {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"score '{key}' is not a number"
    for key in ("sts", "dev", "transfer"):
        evaluation = document.get(key)
        if evaluation is not None and not (
            isinstance(evaluation.get("tasks"), dict) and all(isinstance(t, dict) for t in evaluation["tasks"].values())
        ):
            return f"'{key}' has no table of tasks"
    return None


def _retrieval_times_100(retrieval: dict[str, Any]) -> dict[str, Any]:
    """A format-1 retrieval document (metrics as fractions) on the × 100 scale."""
    converted = dict(retrieval)
    if isinstance(retrieval.get("metrics"), dict):
        converted["metrics"] = {k: _times_100(v) for k, v in retrieval["metrics"].items()}
    if "main_score" in retrieval:
        converted["main_score"] = _times_100(retrieval["main_score"])
    return converted


def _times_100(value: Any) -> Any:
    return 100.0 * value if isinstance(value, (int, float)) and not isinstance(value, bool) else value


@dataclass
class SweepEntry:
    """One run's line in ``sweep.json``."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    sts_avg: float | None = None
    seconds: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, name: str, values: dict[str, Any], result: RunResult | None) -> SweepEntry:
        """The entry of a run from its result (``pending`` without one)."""
        if result is None:
            return cls(name, values)
        return cls(
            name,
            values,
            result.status,
            result.score("avg"),
            result.elapsed("total"),
            result.error.message if result.error else None,
        )


@dataclass
class SweepRecord:
    """``<out>/sweep.json``: the grid, the overrides, every run's status (rewritten after each run)."""

    grid: Grid | None = None
    keys: list[str] = field(default_factory=list)
    overrides: dict[str, Any] | None = None
    eval_tasks: list[str] = field(default_factory=list)
    sts_tasks: list[str] | None = None
    runs: list[SweepEntry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "grid": self.grid.to_dict() if self.grid is not None else None}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> SweepRecord:
        grid = document.get("grid")
        runs = [
            SweepEntry(
                name=str(r["name"]),
                values=dict(r.get("values") or {}),
                status=str(r.get("status")),
                sts_avg=r.get("sts_avg"),
                seconds=r.get("seconds"),
                error=r.get("error"),
            )
            for r in document.get("runs") or []
            if isinstance(r, dict) and "name" in r
        ]
        return cls(
            grid=Grid.from_dict(grid) if isinstance(grid, dict) else None,
            keys=list(document.get("keys") or []),
            overrides=document.get("overrides"),
            eval_tasks=list(document.get("eval_tasks") or []),
            sts_tasks=document.get("sts_tasks"),
            runs=runs,
            counts=dict(document.get("counts") or {}),
            updated_at=document.get("updated_at"),
        )

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> SweepRecord | None:
        """The ``sweep.json`` of a sweep folder; None without a readable one."""
        document = read_json(Path(folder) / SWEEP_FILE)
        try:
            return None if document is None else cls.from_dict(document)
        except (TypeError, ValueError, AttributeError, KeyError):  # valid JSON of another shape: not a record
            return None

    def save(self, folder: str | os.PathLike[str]) -> Path:
        return write_json(Path(folder) / SWEEP_FILE, self.to_dict())
