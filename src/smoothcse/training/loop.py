"""The training loop: :func:`train` checks the ``--report-to`` trackers (a missing one fails first), builds the
run (:func:`~smoothcse.training.run.build_run`), takes its steps (batch; forward, objective, backward,
optimizer step; log; evaluate; checkpoint; barrier, numbered in :func:`run_training`) and finishes it
(:meth:`~smoothcse.training.run.Run.finish`: the final checkpoint, the final evaluation or export, the
summary record). SIGTERM and Ctrl-C save a checkpoint and raise :class:`TrainingInterrupted`. The run folder
is held (:mod:`smoothcse.runlock`) from before it is read until the end; every record also goes to the
experiment trackers (rank 0; :mod:`smoothcse.training.trackers`), which are finished last.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig
from smoothcse.errors import SmoothCSEError
from smoothcse.runlock import hold_folder
from smoothcse.training.distributed import DistInfo, barrier, init_distributed, require_same_config
from smoothcse.training.outdir import refuse_foreign_out
from smoothcse.training.run import NumericalFault, TrainResult, build_run
from smoothcse.training.steps import train_step
from smoothcse.training.trackers import Reporter, check_trackers


class TrainingInterrupted(SmoothCSEError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the message says how to resume."""


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train an encoder as ``config`` says and export it to ``config.out``; see the module docstring.

    ``reporter``: experiment trackers the caller keeps open after training (a sweep adds its scores); by
    default the run reports to ``config.report_to`` and finishes the trackers itself.
    """
    config.validate()
    check_trackers(config.report_to)  # a missing tracker fails here, before anything is loaded or written
    info = init_distributed(config.device)
    require_same_config(config.to_dict(), info)
    # one owner per run folder (rank 0 holds it for the job), taken before anything in it is read or deleted
    refuse_foreign_out(Path(config.out).expanduser())  # no lock file in a folder that is not a run's
    with hold_folder(config.out) if info.is_main else contextlib.nullcontext():
        if reporter is not None:  # the caller (a sweep) finishes it after adding its scores
            return run_training(config, info, resume=resume, overwrite=overwrite, progress=progress, reporter=reporter)
        with Reporter(config.report_to) as own:  # finished on leaving, marked failed on an error
            return run_training(config, info, resume=resume, overwrite=overwrite, progress=progress, reporter=own)


def run_training(
    config: TrainConfig, info: DistInfo, *, resume: bool, overwrite: bool, progress: bool, reporter: Reporter
) -> TrainResult:
    """Build the run, take its steps, finish it: the loop of the module docstring."""
    run = build_run(
        config, info=info, resume=resume, overwrite=overwrite, progress=progress and info.is_main, reporter=reporter
    )
    with graceful_interrupts() as signals:
        try:
            while run.step < run.total_steps:
                # 1. batch
                batch = next(run.batches)
                # 2. forward, objective, backward, clip, optimizer step; run.step += 1
                grad_norm = train_step(run, batch)
                run.bar.update(1)
                last = run.step == run.total_steps
                # 3. log (the only host sync)
                if run.step % config.log_every == 0 or last:
                    run.log(grad_norm)
                # 4. evaluate (rank 0), 5. checkpoint
                if run.evaluator is not None and run.step % config.eval_every == 0 and not last:
                    run.evaluate()  # the last step's evaluation follows the final checkpoint (run.finish)
                if config.save_every and run.step % config.save_every == 0 and not last:
                    run.checkpoint()
                # 6. every rank here; stop on SIGTERM / Ctrl-C
                barrier(info)
                if signals["stop"]:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            run.bar.close()
            saved = run.checkpoint()
            where = f" to {saved}" if saved else ""
            raise TrainingInterrupted(
                f"Interrupted at step {run.step}/{run.total_steps}; checkpoint saved{where}. "
                f"Continue with the same command plus --resume."
            ) from None
        finally:
            run.close()
    return run.finish()


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[dict[str, bool]]:
    """Turn SIGTERM into the same path as Ctrl-C: finish the step, save, stop."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["NumericalFault", "TrainResult", "TrainingInterrupted", "train"]
