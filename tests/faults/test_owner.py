"""Class 1: one owner per run folder (a second trainer or sweep on a held folder stops at once)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.helpers import run_process, spawn, train_args

from .conftest import one_line_error


def wait_for(condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_second_trainer_stops_at_once_and_a_dead_holder_is_taken_over(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "run"
    first = spawn(train_args(tiny_bert, small_corpus, out, "--max-steps", "100000", "--overwrite"), cache_dir)
    try:
        wait_for(lambda: (out / "metrics.jsonl").is_file() or first.poll() is not None)
        assert first.poll() is None, first.communicate()[1]
        second = run_process(train_args(tiny_bert, small_corpus, out, "--overwrite"), cache_dir)
        assert second.returncode == 2
        line = one_line_error(second)
        assert str(out) in line and f"pid {first.pid}" in line
        assert first.poll() is None  # the holder runs on, undisturbed
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
    # the lock died with its holder: the next trainer takes the folder over without any clean-up
    third = run_process(train_args(tiny_bert, small_corpus, out, "--overwrite"), cache_dir)
    assert third.returncode == 0, third.stderr
    summaries = [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"summary"' in line]
    assert len(summaries) == 1


def test_second_sweep_on_a_held_folder_refuses_before_running(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "sweep"
    holder = spawn(
        [],
        cache_dir,
        prelude=(
            "import sys, time\nfrom smoothcse.runlock import hold_folder\n"
            f"with hold_folder({str(out)!r}, what='sweep'):\n    print('held', flush=True)\n    time.sleep(120)\n"
            "sys.exit(0)"
        ),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held", holder.communicate()[1]
        second = run_process(["sweep", "compare-objectives", "--out", str(out), "--max-steps", "2"], cache_dir)
        assert second.returncode == 2
        line = one_line_error(second)
        assert str(out) in line and f"pid {holder.pid}" in line and "sweep" in line
        assert not (out / "runs").exists()  # nothing was run or recorded
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate()
