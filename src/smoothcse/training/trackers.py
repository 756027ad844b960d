"""Experiment trackers for ``--report-to``: TensorBoard, Weights & Biases, MLflow and Trackio (docs/ecosystem.md).

A run reports through one :class:`Reporter` (rank 0 only): the config as hyper-parameters at the start, every
``metrics.jsonl`` record as scalars at its step and the final scores at the end; a resumed run continues the
same tracker run where the tracker allows it. The adapters are smoothcse's own: accelerate's write TensorBoard's
hyper-parameters apart from the final scores, open MLflow runs through its global active run, and set up a
distributed state beside smoothcse's own process group.
"""

from __future__ import annotations

import importlib
import json
import netrc
import os
import re
import shutil
import sys
import time
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from smoothcse.config import TRACKERS, flatten
from smoothcse.errors import ConfigError, SmoothCSEError, closest

TRACKERS_DIR = "trackers"
RUN_IDS_FILE = "run_ids.json"
DEFAULT_PROJECT = "smoothcse"
"""The project (wandb, trackio) or experiment (mlflow) of runs outside a sweep."""
EVAL_KEYS = frozenset({"stsb_dev"})
"""``metrics.jsonl`` keys logged as ``eval/...``; the others are ``train/...``."""


# ---------------------------------------------------------------------------------------------- names and values


def check_trackers(names: Iterable[str]) -> None:
    """Import each requested tracker; raise a one-line error naming the extra if one is missing (called
    before anything of a run is loaded or written)."""
    for name in names:
        adapter = ADAPTERS.get(name)
        if adapter is None:
            raise ConfigError(
                f"--report-to {name!r} is not one of none, {', '.join(TRACKERS)}.{closest(name, TRACKERS)}"
            )
        try:
            importlib.import_module(adapter.module)
        except ImportError:
            raise SmoothCSEError(
                f"--report-to {name}: the {adapter.package} package is not installed; pip install 'smoothcse[{name}]'."
            ) from None


def flat_hyperparameters(config: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """The config as flat ``{"lr": 3e-05, "objective.temperature": 0.05, ...}`` of plain values (None is
    ``"unset"``, a list its items joined by commas), as every tracker accepts them."""
    return {key: _plain(value) for key, value in flatten(config).items()}


def _plain(value: Any) -> str | int | float | bool:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or "none"
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` step record's numbers under tracker names: ``eval/stsb_dev``, ``train/<key>``."""
    return {
        f"{'eval' if key in EVAL_KEYS else 'train'}/{key}": float(value)
        for key, value in record.items()
        if key != "step" and _is_number(value)
    }


def summary_scores(summary: Mapping[str, Any]) -> dict[str, float]:
    """The ``{"summary": ...}`` record's numbers as final scores: ``final/best_dev``, ``final/steps``, ..."""
    return {f"final/{key}": float(value) for key, value in summary.items() if _is_number(value)}


def score_name(key: str) -> str:
    """A score's key as a tracker name that every tracker accepts (``dev:STSb`` -> ``dev/STSb``)."""
    return re.sub(r"[^\w./ -]", "_", key.replace(":", "/"))


# ---------------------------------------------------------------------------------------------- the trackers


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker needs to know of the run it reports."""

    name: str
    folder: Path
    """``OUT/trackers/``: where the tracker writes its local files."""
    store: Path
    """Where mlflow keeps its store of many runs: ``<run or sweep folder>/trackers``."""
    group: str | None = None
    """The sweep's name."""
    start_step: int = 0
    resume_id: str | None = None
    """This tracker's id of the run being resumed, if it saved one."""


class Tracker:
    """One tracker's adapter: started once, fed scalars at their steps, finished with the final scores."""

    name: ClassVar[str]
    module: ClassVar[str]
    """What :func:`check_trackers` imports; ``package`` is the ``smoothcse[<name>]`` extra's pip package."""
    package: ClassVar[str]

    def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
        """Open the tracker's run with ``config`` as hyper-parameters; return an id to resume it by, or None."""
        raise NotImplementedError

    def log(self, scalars: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
        """Record the final scores and close the tracker's run (marked failed if the run failed)."""
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """Event files in ``OUT/trackers/tensorboard``: scalars, the config as text, hyper-parameters and final scores."""

    name = "tensorboard"
    module = "torch.utils.tensorboard"
    package = "tensorboard"

    def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = run.folder / "tensorboard"
        if run.start_step == 0 and log_dir.is_dir():  # a run started again from scratch replaces its events
            shutil.rmtree(log_dir)
        # resumed: TensorBoard discards what was logged after the resumed step (those steps are done again)
        self.writer = SummaryWriter(str(log_dir), purge_step=run.start_step + 1 if run.start_step else None)
        self.hyperparameters = flat_hyperparameters(config)
        self.last_step = run.start_step
        self.writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", run.start_step)
        return None

    def log(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.last_step = max(self.last_step, step)

    def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
        from torch.utils.tensorboard.summary import hparams

        # the HPARAMS tab: this run's hyper-parameters, and the final scores as its metrics (scalars of those tags)
        experiment, session_start, session_end = hparams(self.hyperparameters, final_scores)  # type: ignore[no-untyped-call]
        file_writer = self.writer.file_writer
        assert file_writer is not None
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary, self.last_step)
        for tag, value in final_scores.items():
            self.writer.add_scalar(tag, value, self.last_step)
        self.writer.close()


def wandb_mode() -> str:
    """``$WANDB_MODE`` if set; else online when credentials are found (``$WANDB_API_KEY``, or the W&B host in
    ``~/.netrc`` as ``wandb login`` writes it), else offline (``wandb sync`` uploads the run later)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = re.sub(r"^https?://", "", os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).split("/")[0]
    try:
        return "online" if netrc.netrc().authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


class WandbTracker(Tracker):
    """A W&B run in project ``$WANDB_PROJECT`` (else ``smoothcse``) grouped by sweep, files in OUT/trackers/wandb."""

    name = "wandb"
    module = "wandb"
    package = "wandb"

    def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
        import wandb

        mode = wandb_mode()
        run.folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
            name=run.name,
            group=run.group,
            tags=[run.group] if run.group else None,
            config=flat_hyperparameters(config),
            dir=str(run.folder),
            mode=mode,
            id=run.resume_id,
            resume="allow" if run.resume_id else None,
        )
        if mode == "offline":
            print(
                f"smoothcse: wandb is offline (no WANDB_MODE, WANDB_API_KEY or login found); "
                f"upload later with: wandb sync {run.folder / 'wandb'}/offline-run-*",
                file=sys.stderr,
            )
        return str(self.run.id)

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
        self.run.summary.update(final_scores)
        self.run.finish(exit_code=1 if failed else 0)


class MLflowTracker(Tracker):
    """An MLflow run through ``MlflowClient`` (no global active run): params, metric history, final metrics."""

    name = "mlflow"
    module = "mlflow"
    package = "mlflow-skinny"

    def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            store = run.store / "mlruns"
            store.mkdir(parents=True, exist_ok=True)
            uri = store.resolve().as_uri()
            # MLflow 3 keeps its file store only on request; it needs nothing beyond mlflow-skinny
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or run.group or DEFAULT_PROJECT
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        if run.resume_id:
            self.run_id = run.resume_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags = {"smoothcse.sweep": run.group} if run.group else {}
            self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
            params = [Param(key, str(value)) for key, value in flat_hyperparameters(config).items()]
            for first in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[first : first + 100])
        self.last_step = run.start_step
        return self.run_id

    def log(self, scalars: dict[str, float], step: int) -> None:
        self._log_metrics(scalars, step)
        self.last_step = max(self.last_step, step)

    def _log_metrics(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in scalars.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
        self._log_metrics(final_scores, self.last_step)
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class TrackioTracker(Tracker):
    """A Trackio run (local database) in project ``smoothcse``, grouped by sweep."""

    name = "trackio"
    module = "trackio"
    package = "trackio"

    def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
        import inspect

        import trackio

        options: dict[str, Any] = {"name": run.name, "config": flat_hyperparameters(config)}
        accepted = inspect.signature(trackio.init).parameters
        if run.group and "group" in accepted:  # older trackio has no groups
            options["group"] = run.group
        if run.start_step and "resume" in accepted:
            options["resume"] = "allow"  # trackio resumes a run by its name
        self.run = trackio.init(project=DEFAULT_PROJECT, **options)
        self.last_step = run.start_step
        return None

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)
        self.last_step = max(self.last_step, step)

    def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
        if final_scores:
            self.run.log(final_scores, step=self.last_step)
        self.run.finish()


ADAPTERS: dict[str, type[Tracker]] = {
    cls.name: cls for cls in (TensorBoardTracker, WandbTracker, MLflowTracker, TrackioTracker)
}


# ---------------------------------------------------------------------------------------------- one run's trackers


class Reporter:
    """The trackers of one run: :meth:`start` once (rank 0), :meth:`record` per ``metrics.jsonl`` record,
    :meth:`finish` at the end. Without trackers, or before :meth:`start`, every method does nothing.

    ``with Reporter(...) as reporter:`` finishes it on leaving (as failed on an exception). A sweep keeps one
    open across training and evaluation, so that the evaluation's scores join the run's final scores.
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        run_name: str | None = None,
        group: str | None = None,
        store: Path | None = None,
    ) -> None:
        self.trackers = [ADAPTERS[name]() for name in names]
        self.run_name = run_name
        """Default: the output folder's name."""
        self.group = group
        self.store = store
        """Where mlflow's local store goes (``<store>/trackers/mlruns``); default: the output folder."""
        self.final_scores: dict[str, float] = {}
        self.started = False

    def start(self, config: dict[str, Any], out: Path, *, start_step: int = 0) -> None:
        """Open every tracker's run for the run in ``out`` (from ``start_step`` when resumed)."""
        if not self.trackers:
            return
        folder = out / TRACKERS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        ids_file = folder / RUN_IDS_FILE
        saved: dict[str, str] = json.loads(ids_file.read_text()) if start_step and ids_file.is_file() else {}
        ids: dict[str, str] = {}
        for tracker in self.trackers:
            run = TrackedRun(
                name=self.run_name or out.resolve().name,
                folder=folder,
                store=(self.store / TRACKERS_DIR) if self.store is not None else folder,
                group=self.group,
                start_step=start_step,
                resume_id=saved.get(tracker.name),
            )
            run_id = tracker.start(config, run)
            if run_id is not None:
                ids[tracker.name] = run_id
        ids_file.write_text(json.dumps(ids, indent=2))
        self.started = True

    def record(self, record: Mapping[str, Any]) -> None:
        """A ``metrics.jsonl`` record: scalars at its step, or the summary's numbers as final scores."""
        if not self.started:
            return
        if isinstance(record.get("summary"), Mapping):
            self.add_final_scores(summary_scores(record["summary"]))
        elif "step" in record:
            self.log(record_scalars(record), int(record["step"]))

    def log(self, scalars: dict[str, float], step: int) -> None:
        if self.started and scalars:
            for tracker in self.trackers:
                tracker.log(scalars, step)

    def add_final_scores(self, scores: Mapping[str, float]) -> None:
        """Scores to record when the run finishes (later ones of the same name replace earlier ones)."""
        self.final_scores.update(scores)

    def finish(self, *, failed: bool = False) -> None:
        """Record the final scores and close every tracker's run (once)."""
        if not self.started:
            return
        self.started = False
        errors = []
        for tracker in self.trackers:  # every tracker closes its run, even if another one fails to
            try:
                tracker.finish(dict(self.final_scores), failed=failed)
            except Exception as err:  # noqa: BLE001 - raised below, after the others are closed
                errors.append(err)
        if errors:
            raise errors[0]

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: types.TracebackType | None
    ) -> None:
        self.finish(failed=kind is not None)
