"""Sweeps: every run of a grid (:mod:`smoothcse.experiments.grid`) trained into ``<out>/runs/<name>``, its
exported model evaluated, everything written to its ``result.json``; ``<out>/sweep.json`` summarises the sweep.
Running the same command again continues it (:func:`plan`: what each run still needs); a run that fails
records its error and the sweep goes on. docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.experiments.evaluation import (
    card_scores,
    eval_failure_details,
    eval_failures,
    evaluate_model,
    free_memory,
    headline_scores,
)
from smoothcse.experiments.grid import (
    Grid,
    RunSpec,
    expand,
    flatten,
    is_base_arm,
    is_st_arm,
    load_grid,  # noqa: F401 - the import path docs/experiments.md gives
    run_config,
)
from smoothcse.experiments.results import (
    EVALUATIONS,
    RESULT_FILE,
    RUNS_DIR,
    TRAIN_CONFIG_FILE,
    RunError,
    RunResult,
    SweepEntry,
    SweepRecord,
    dev_curve,
    loss_terms,
    read_metrics,
    train_summary,
)
from smoothcse.files import format_duration, read_json
from smoothcse.training.trackers import Reporter, check_trackers, score_name

SETUP_KEYS: tuple[str, ...] = (
    "out",
    "device",
    "data_dir",
    "cache_dir",
    "eval_batch_size",
    "log_every",
    "save_every",
    "keep_checkpoints",
    "report_to",
)
"""Config fields that say where and how a run is executed, not what it computes: a complete run is
reused even if these differ."""


def unused_objective_keys(config: dict[str, Any]) -> set[str]:
    """``objective.x`` for the objective options the config's spec does not read (another component's)."""
    from smoothcse.objectives import ObjectiveConfig

    try:
        objective = ObjectiveConfig(**config.get("objective", {}))
        used = set(objective.used_settings()) | {"spec"}
    except (TypeError, SmoothCSEError):  # not a readable objective: compare every key
        return set()
    return {f"objective.{f.name}" for f in dataclasses.fields(objective) if f.name not in used}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys (``objective.x`` for objective fields) whose values differ; setup keys and the options of
    components neither spec uses are ignored (a new default of SoftCSE leaves a SimCSE run as it was)."""
    a, b = flatten(saved), flatten(current)
    defaults = flatten(TrainConfig().to_dict())
    a.update({k: defaults[k] for k in set(b) - set(a) if k in defaults})  # a setting added since, at its default
    ignore = set(SETUP_KEYS) | {"objective.seed"}  # the trainer sets the noise seed to the run's seed
    ignore |= unused_objective_keys(saved) & unused_objective_keys(current)
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def training_finished(run_dir: Path, config: TrainConfig) -> bool:
    """True if ``run_dir`` holds a finished training of this config (summary written, model exported)."""
    from smoothcse.model.encoder import RUN_MODEL_DIR, holds_model

    saved = read_json(run_dir / TRAIN_CONFIG_FILE)
    return (
        saved is not None
        and not config_differences(saved, config.to_dict())
        and holds_model(run_dir / RUN_MODEL_DIR)
        and train_summary(read_metrics(run_dir)) is not None
    )


def missing_evaluations(
    result: RunResult, eval_tasks: Sequence[str], sts_tasks: Sequence[str], retrieval_splits: Sequence[str] = ("test",)
) -> list[str]:
    """Which of sts / geometry / dev / transfer / retrieval a complete result still lacks for this request."""
    missing = []
    sts_results = result.sts.get("tasks", {}) if result.sts else {}
    done_sts = {name for name, r in sts_results.items() if "error" not in r}
    if not set(sts_tasks) <= done_sts:
        missing.append("sts")
    if not result.geometry:
        missing.append("geometry")
    for task in ("dev", "transfer", "retrieval"):
        if task in eval_tasks and not result.evaluation(task):
            missing.append(task)
    retrieval = result.retrieval or {}
    have = {retrieval.get("split"), *retrieval.get("splits", {})}
    if "retrieval" in eval_tasks and "retrieval" not in missing and not set(retrieval_splits) <= have:
        missing.append("retrieval")
    return missing


@dataclass
class SweepOptions:
    """How to execute a sweep (what to compute is the grid's business)."""

    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    """Flat config overrides for every run (``--model``, ``--max-steps``, ``--set``...); never a grid key."""
    resume: bool = False
    """Continue unfinished runs from their newest checkpoint (else they start again)."""
    overwrite: bool = False
    """Run everything again, complete runs included."""
    eval_tasks: tuple[str, ...] | None = None
    sts_tasks: tuple[str, ...] | None = None
    keep_checkpoints: bool = False
    """Keep each finished run's training checkpoints (by default they are deleted; the model stays)."""
    train_progress: bool = False
    """Show each run's own training progress bar."""
    eval_jobs: int = -1
    """Worker processes for the transfer tasks' folds (-1: every core; 1: serial); the scores do not depend on it."""
    echo: Callable[[str], None] = print

    def __post_init__(self) -> None:
        from smoothcse.evaluation.transfer import check_jobs

        check_jobs(self.eval_jobs, "--jobs")

    def tasks(self, grid: Grid) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The evaluations and STS tasks to score: the command line's, else the grid's (STS: all 7 by default)."""
        from smoothcse.evaluation.data import STS_TASKS

        return self.eval_tasks or grid.eval_tasks, self.sts_tasks or grid.sts_tasks or STS_TASKS


@dataclass
class PlannedRun:
    spec: RunSpec
    run_dir: Path
    config: TrainConfig | None
    error: str | None
    status: str
    """complete | evaluate (trained, evaluation missing) | resume | pending | failed-before | invalid."""
    previous: RunResult | None = None


def plan(grid: Grid, options: SweepOptions) -> list[PlannedRun]:
    """What each run needs, without running anything (``--dry-run`` prints this); raises :class:`SmoothCSEError`
    naming the runs and keys if a complete run was made with other settings (unless ``overwrite``)."""
    from smoothcse.training.checkpoint import list_checkpoints

    eval_tasks, sts_tasks = options.tasks(grid)
    planned = []
    stale = []
    for spec in expand(grid):
        run_dir = options.out / RUNS_DIR / spec.name
        try:
            config = run_config(grid, spec, options.overrides, run_dir)
            error = None
        except SmoothCSEError as err:
            config, error = None, str(err)
        previous = RunResult.load(run_dir / RESULT_FILE)
        if config is None:
            status = "invalid"
        elif options.overwrite:
            status = "pending"
        elif previous is not None and previous.status == "ok":
            diffs = config_differences(previous.settings, config.to_dict())
            if diffs:
                stale.append(f"{spec.name} ({', '.join(diffs[:4])}{', ...' if len(diffs) > 4 else ''})")
                status = "stale"
            else:
                missing = missing_evaluations(previous, eval_tasks, sts_tasks, grid.retrieval_splits)
                status = "evaluate" if missing else "complete"
        elif training_finished(run_dir, config):
            status = "evaluate"
        elif options.resume and list_checkpoints(run_dir):
            status = "resume"
        else:
            status = "failed-before" if previous is not None else "pending"
        planned.append(PlannedRun(spec, run_dir, config, error, status, previous))
    if stale:
        raise SmoothCSEError(
            f"{len(stale)} complete run(s) in {options.out} were made with other settings than the grid now gives: "
            f"{'; '.join(stale[:3])}{f' and {len(stale) - 3} more' if len(stale) > 3 else ''}. "
            "Pass --overwrite to run them again, or choose another --out."
        )
    return planned


def refuse_invalid(planned: Sequence[PlannedRun], source: str) -> None:
    """One message, before any run (``--dry-run`` too), when a planned run's configuration cannot be built
    (a conflict, an unknown arm or axis value)."""
    invalid = [item for item in planned if item.status == "invalid"]
    if invalid:
        first = invalid[0]
        more = f" ({len(invalid) - 1} more run(s) likewise)" if len(invalid) > 1 else ""
        raise ConfigError(f"{source}: run {first.spec.name}: {first.error}{more}; nothing was run.")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def execute_run(item: PlannedRun, grid: Grid, options: SweepOptions) -> RunResult:
    """Train (unless already trained) and evaluate one run; write and return its result (never raises
    for a failure of the run itself, only for an interruption)."""
    from smoothcse.training.loop import TrainingInterrupted

    started = time.perf_counter()
    # one tracker run per sweep run trained here, named after its folder, grouped by the sweep's folder name
    reporter = Reporter(
        item.config.report_to if item.config else [], run_name=item.spec.name, group=options.out.name, store=options.out
    )
    result = RunResult(
        name=item.spec.name,
        values=item.spec.values,
        status="running",
        config=item.config.to_dict() if item.config else None,
        grid=grid.source,
        framework=_framework(item.spec.values),
        started_at=_now(),
    )
    result.extra["code"] = code_version()
    seconds = {"train": 0.0, "eval": 0.0}
    stage = "config"
    try:
        if item.config is None:
            raise ConfigError(item.error or "invalid configuration")
        stage = "train"
        seconds["train"] = train_or_reuse(item, result, options, reporter)
        stage = "eval"
        t0 = time.perf_counter()
        evaluate_run(item, item.config, grid, options, result)
        seconds["eval"] = time.perf_counter() - t0
        result.status = "ok"
    except (KeyboardInterrupt, TrainingInterrupted):
        reporter.finish(failed=True)
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one run is recorded, and the sweep goes on
        result.status = "failed"
        result.error = RunError(
            stage=stage,
            type=type(err).__name__,
            message=str(err) or type(err).__name__,
            traceback="" if isinstance(err, SmoothCSEError) else traceback.format_exc(),
        )
        if result.sts is not None:
            result.scores = headline_scores(result)
    seconds["total"] = time.perf_counter() - started
    result.seconds = {k: round(v, 2) for k, v in seconds.items()}
    result.finished_at = _now()
    result.save(item.run_dir / RESULT_FILE)
    finish_reporter(reporter, result, options)
    return result


def _framework(values: dict[str, Any]) -> str:
    if is_base_arm(values):
        return "none"
    return "sentence-transformers" if is_st_arm(values) else "smoothcse"


def code_version() -> str | None:
    """The git commit of the smoothcse source that runs (``+dirty`` with uncommitted changes), if it is a
    checkout; else ``$SMOOTHCSE_CODE`` (what a copy without .git, say on a GPU machine, says it is), else None."""
    import os
    import subprocess

    def git(*args: str) -> str:
        command = ["git", "-C", str(Path(__file__).resolve().parent), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("SMOOTHCSE_CODE") or None
    return commit + ("+dirty" if dirty else "")


def train_or_reuse(item: PlannedRun, result: RunResult, options: SweepOptions, reporter: Reporter) -> float:
    """Train the run (or take what an earlier invocation trained); returns the training seconds. The base
    arm trains nothing."""
    from smoothcse.training.loop import train

    assert item.config is not None
    config = item.config
    if item.status == "evaluate" and item.previous and item.previous.status == "ok":
        # complete run that lacks an evaluation: keep what it has, add the missing ones
        for name in (*EVALUATIONS, "train"):
            setattr(result, name, getattr(item.previous, name))
        return float(item.previous.elapsed("train") or 0.0)
    if item.status == "evaluate":
        summary = train_summary(read_metrics(item.run_dir))
        seconds = float(summary.get("seconds", 0.0) if summary else 0.0)
    else:
        (item.run_dir / RESULT_FILE).unlink(missing_ok=True)
        if is_base_arm(item.spec.values):  # the starting model as it is: nothing to train
            item.run_dir.mkdir(parents=True, exist_ok=True)
            return 0.0
        resume = item.status == "resume"
        t0 = time.perf_counter()
        try:
            if is_st_arm(item.spec.values):
                from smoothcse.experiments.st_trainer import train_st_arm

                if item.run_dir.exists():
                    shutil.rmtree(item.run_dir)  # no resume for the Trainer's arm: it starts again
                train_st_arm(item.spec.values["objective.spec"], config, progress=options.train_progress)
                reporter.start(config.to_dict(), item.run_dir)  # its metrics.jsonl, replayed
                for record in read_metrics(item.run_dir):
                    reporter.record(record)
            else:
                train(config, resume=resume, overwrite=not resume, progress=options.train_progress, reporter=reporter)
        finally:
            seconds = time.perf_counter() - t0
            free_memory()
    records = read_metrics(item.run_dir)
    result.train = train_summary(records) or result.train
    terms = loss_terms(records)
    if result.train is not None and terms:
        result.train["terms"] = terms
    result.dev_curve = dev_curve(records)
    if not options.keep_checkpoints:
        shutil.rmtree(item.run_dir / "checkpoints", ignore_errors=True)
    return seconds


def evaluate_run(item: PlannedRun, config: TrainConfig, grid: Grid, options: SweepOptions, result: RunResult) -> None:
    """Add the evaluations the run still lacks to ``result`` and its headline scores; raise if a task failed."""
    eval_tasks, sts_tasks = options.tasks(grid)
    if is_base_arm(item.spec.values) and not any((result.sts, result.retrieval)):
        _take_base_evaluation(result, config, options)
    wanted = missing_evaluations(result, eval_tasks, sts_tasks, grid.retrieval_splits)
    if wanted:
        evaluations = evaluate_model(
            Path(config.model) if is_base_arm(item.spec.values) else item.run_dir,
            wanted,
            sts_tasks=sts_tasks,
            data_dir=config.data_dir,
            device=config.device,
            batch_size=config.eval_batch_size,
            n_jobs=options.eval_jobs,
            retrieval_folder=grid.retrieval_folder,
            retrieval_splits=grid.retrieval_splits,
        )
        for name, document in evaluations.items():
            setattr(result, name, document)
    result.scores = headline_scores(result)
    failed = eval_failures(result)
    if failed:
        raise SmoothCSEError(f"could not score {', '.join(failed)} ({eval_failure_details(result, failed)})")
    if result.framework == "smoothcse":  # the adapted model's card records its domain and STS scores
        from smoothcse.model.card import add_scores
        from smoothcse.model.encoder import RUN_MODEL_DIR

        add_scores(item.run_dir / RUN_MODEL_DIR, card_scores(result), source="smoothcse sweep")


def _take_base_evaluation(result: RunResult, config: TrainConfig, options: SweepOptions) -> None:
    """The base arm trains nothing and no evaluation reads the run's seed (the transfer tasks' folds use
    SentEval's own seed), so a complete base run of another seed with the same settings has this run's
    scores: take its evaluations (``evaluation_of`` names it) rather than evaluate the same model again."""
    for path in sorted((options.out / RUNS_DIR).glob(f"*/{RESULT_FILE}")):
        other = RunResult.load(path)
        if other is None or other.name == result.name or not other.ok or not is_base_arm(other.values):
            continue
        if [key for key in config_differences(other.settings, config.to_dict()) if key != "seed"]:
            continue
        for name in EVALUATIONS:
            setattr(result, name, getattr(other, name))
        result.extra["evaluation_of"] = other.name
        return


def tracker_scores(result: RunResult) -> dict[str, float]:
    """A run's evaluation as final scores for its trackers: ``scores/STSb``, ``scores/dev/SICK-R``, ...,
    ``scores/alignment``, ``scores/uniformity``."""
    scores = dict(result.scores or {})
    scores.update({key: (result.geometry or {}).get(key) for key in ("alignment", "uniformity")})
    return {
        f"scores/{score_name(key)}": float(value)
        for key, value in scores.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def finish_reporter(reporter: Reporter, result: RunResult, options: SweepOptions) -> None:
    """Close the run's tracker runs with its evaluation scores; a tracker that fails to is reported, not fatal."""
    reporter.add_final_scores(tracker_scores(result))
    try:
        reporter.finish(failed=result.status != "ok")
    except Exception as err:  # noqa: BLE001 - the run's result is saved; the sweep goes on
        options.echo(f"warning: --report-to: could not finish the tracker runs of {result.name}: {err}")


@dataclass
class SweepSummary:
    out: Path
    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    runs: list[RunResult] = field(default_factory=list)
    """The result of every run, complete ones (skipped) included, in the grid's order."""


def sweep_record(
    grid: Grid, options: SweepOptions, planned: list[PlannedRun], results: dict[str, RunResult]
) -> SweepRecord:
    """The ``sweep.json`` of the sweep now: the runs of this invocation, or else their result files."""
    runs = []
    for item in planned:
        result = results.get(item.spec.name) or RunResult.load(item.run_dir / RESULT_FILE)
        runs.append(SweepEntry.of(item.spec.name, item.spec.values, result))
    counts = {s: sum(r.status == s for r in runs) for s in ("ok", "failed", "pending")}
    return SweepRecord(
        grid=grid,
        keys=list(grid.axes),
        overrides=options.overrides,
        eval_tasks=list(options.eval_tasks or grid.eval_tasks),
        sts_tasks=list(options.sts_tasks or grid.sts_tasks or []) or None,
        runs=runs,
        counts=counts,
        updated_at=_now(),
    )


def run_sweep(grid: Grid, options: SweepOptions) -> SweepSummary:
    """Plan, then train and evaluate every run that is not complete, writing results as it goes."""
    from smoothcse.training.loop import TrainingInterrupted

    planned = plan(grid, options)
    # a missing tracker fails before anything runs or is written
    check_trackers(dict.fromkeys(name for p in planned if p.config for name in p.config.report_to))
    options.echo(f"{grid.source}: {len(planned)} runs into {options.out}")
    options.out.mkdir(parents=True, exist_ok=True)
    summary = SweepSummary(out=options.out, total=len(planned))
    results: dict[str, RunResult] = {}
    sweep_record(grid, options, planned, results).save(options.out)
    invalid = [p for p in planned if p.status == "invalid"]
    if invalid:
        options.echo(
            f"note: {len(invalid)} run(s) have an invalid configuration and will be recorded as failed "
            f"(first: {invalid[0].spec.label}: {invalid[0].error})"
        )
    done_seconds: list[float] = []
    width = len(str(len(planned)))
    for item in planned:
        prefix = f"[{item.spec.index + 1:>{width}}/{len(planned)}] {item.spec.label} ..."
        if item.status == "complete":
            previous = item.previous
            assert previous is not None  # complete: its result.json says ok
            options.echo(f"{prefix} skipped (complete{_avg_text(previous.score('avg'))})")
            summary.skipped += 1
            summary.ok += 1
            summary.runs.append(previous)
            continue
        try:
            result = execute_run(item, grid, options)
        except (KeyboardInterrupt, TrainingInterrupted):
            sweep_record(grid, options, planned, results).save(options.out)
            raise TrainingInterrupted(
                f"Sweep interrupted during run {item.spec.name}. Run the same command again to continue; "
                "add --resume to continue an unfinished training from its checkpoint instead of restarting it."
            ) from None
        results[item.spec.name] = result
        summary.runs.append(result)
        total = float(result.elapsed("total") or 0.0)
        if item.status != "invalid":
            done_seconds.append(total)
        remaining = sum(p.spec.index > item.spec.index and p.status not in ("complete", "invalid") for p in planned)
        eta = ""
        if remaining and done_seconds:
            eta = f"; ETA {format_duration(remaining * sum(done_seconds) / len(done_seconds))}"
        if result.status == "ok":
            summary.ok += 1
            what = "evaluated" if item.status == "evaluate" else "done"
            options.echo(f"{prefix} {what} (STS avg {result.score('avg'):.2f}; {format_duration(total)}{eta})")
        else:
            summary.failed += 1
            error = result.error or RunError(None, None, None)
            message = next(iter((error.message or "").splitlines()), "")
            options.echo(f"{prefix} FAILED at {error.stage}: {error.type}: {message}{eta}")
        sweep_record(grid, options, planned, results).save(options.out)
    return summary


def _avg_text(avg: float | None) -> str:
    return f": STS avg {avg:.2f}" if isinstance(avg, (int, float)) else ""


def describe_plan(planned: Sequence[PlannedRun]) -> list[str]:
    """Lines for ``--dry-run``: each run's folder and what the sweep would do with it."""
    meaning = {
        "complete": "complete: skip",
        "evaluate": "trained: evaluate only",
        "resume": "unfinished: resume from checkpoint",
        "pending": "to run",
        "failed-before": "failed before: run again",
        "invalid": "invalid config: will be recorded as failed",
    }
    width = len(str(len(planned)))
    return [
        f"[{item.spec.index + 1:>{width}}/{len(planned)}] {item.spec.name}  -> {meaning[item.status]}"
        + (f" ({item.error})" if item.error else "")
        for item in planned
    ]
