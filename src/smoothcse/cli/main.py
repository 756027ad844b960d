"""The ``smoothcse`` command group: every command is added here, in one place.

Every user-correctable problem ends in a one-line ``smoothcse: error: ...`` on stderr and exit code 2
(1 for an evaluation that could not score a task, 130 for an interruption); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
from typing import Any

import click

from smoothcse import __version__
from smoothcse.cli.bench import bench
from smoothcse.cli.common import CONTEXT_SETTINGS, EXIT_INTERRUPTED, EXIT_USER_ERROR, debug_requested, fail
from smoothcse.cli.encode import encode
from smoothcse.cli.evaluate import evaluate
from smoothcse.cli.recipes import recipes
from smoothcse.cli.sweep import report, sweep
from smoothcse.cli.train import train
from smoothcse.errors import SmoothCSEError


class SmoothCSEGroup(click.Group):
    """Turns SmoothCSEError into a clean one-line message (traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SmoothCSEError as err:
            if debug_requested(ctx):
                raise
            from smoothcse.training.loop import TrainingInterrupted

            fail(str(err), EXIT_INTERRUPTED if isinstance(err, TrainingInterrupted) else EXIT_USER_ERROR)
        except KeyboardInterrupt:
            if debug_requested(ctx):
                raise
            fail("interrupted.", EXIT_INTERRUPTED)
        except OSError as err:  # the file system refused (full disk, read-only, permissions): say where and why
            if debug_requested(ctx):
                raise
            where = f"{err.filename}: " if err.filename else ""
            fail(f"{where}{err.strerror or err}.")


@click.group(
    cls=SmoothCSEGroup,
    commands=[train, encode, evaluate, recipes, sweep, report, bench],
    context_settings=CONTEXT_SETTINGS,
)
@click.version_option(__version__, prog_name="smoothcse")
def main() -> None:
    """Train sentence encoders without labels (SimCSE, GS-InfoNCE, IS-CSE, SoftCSE), evaluate them
    as the papers do, and export them to sentence-transformers."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


if __name__ == "__main__":  # pragma: no cover
    main()
