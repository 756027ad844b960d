"""The fault-injection suite's helpers: the CLI as a real process or in this one, and one finished tiny run.

Every fault is injected for real (processes, files, signals, a full tmpfs), always on the tiny random BERT of
``tests/conftest.py`` and a few CPU steps, so the whole suite stays quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

TRAIN_FLAGS = (
    "--batch-size",
    "16",
    "--max-len",
    "24",
    "--lr",
    "1e-3",
    "--device",
    "cpu",
    "--eval-every",
    "0",
    "--log-every",
    "2",
    "--max-steps",
    "6",
    "--quiet",
)


def train_args(model: Path | str, corpus: Path, out: Path, *extra: str) -> list[str]:
    """``smoothcse train`` arguments for 6 steps of the tiny model (extra flags come last and override)."""
    return ["train", "--model", str(model), "--data", str(corpus), "--out", str(out), *TRAIN_FLAGS, *extra]


def process_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a smoothcse child process: this checkout's sources first, one thread, offline."""
    source = str(Path(__file__).resolve().parents[2] / "src")
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "SMOOTHCSE_CACHE": str(cache_dir),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


def spawn(args: list[str], cache_dir: Path, *, prelude: str = "") -> subprocess.Popen[str]:
    """``python -c '<prelude>; smoothcse main' ARGS`` as a real process (``prelude``: code run first, e.g. a
    hook that holds the process at a chosen moment)."""
    code = f"{prelude}\nimport sys\nfrom smoothcse.cli.main import main\nsys.argv[0] = 'smoothcse'\nmain()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=process_env(cache_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_process(args: list[str], cache_dir: Path, *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    process = spawn(args, cache_dir)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture()
def cli(cache_dir: Path) -> Callable[..., Result]:
    """The ``smoothcse`` group invoked in this process (``cache_dir`` set), stderr kept apart."""
    from smoothcse.cli.main import main

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)

    return invoke


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
