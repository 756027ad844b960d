"""The fault-injection suite's helpers: the CLI as a real process or in this one, and one finished tiny run.

Every fault is injected for real (processes, files, signals, a full tmpfs), always on the tiny random BERT of
``tests/helpers.py`` and a few CPU steps, so the whole suite stays quick.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.helpers import invoke, run_process, train_args


@pytest.fixture()
def cli(cache_dir: Path) -> Callable[..., Result]:
    """The ``smoothcse`` group invoked in this process (``cache_dir`` set), stderr kept apart."""
    from smoothcse.cli.main import main

    def run_main(*args: str) -> Result:
        result: Result = invoke(main, *args)
        return result

    return run_main


def one_line_error(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The ``smoothcse: error: ...`` line of a failed command, checked to be the whole story (no traceback)."""
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    if isinstance(result, Result):
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in stderr.splitlines() if line.startswith("smoothcse: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, small_corpus: Path) -> Path:
    """A finished 6-step run of the tiny model (no evaluation); copy it with :func:`copy_run` before changing it."""
    root = tmp_path_factory.mktemp("finished")
    result = run_process(train_args(tiny_bert, small_corpus, root / "run"), root / "cache")
    assert result.returncode == 0, result.stderr
    return root / "run"


def copy_run(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def folder_state(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (the lock file aside) and its size."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".smoothcse.lock"
    }
