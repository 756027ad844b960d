"""Class 5: disk full and killed writes lose nothing: the final checkpoint comes before the export, a failed
write leaves no temporary file, and --resume finishes the export without training again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import run_process, spawn, train_args

from .conftest import one_line_error

HOLD_EXPORT = """
import pathlib, sys, time
import smoothcse.model.export as export
marker = pathlib.Path(sys.argv.pop())
def held(*args, **kwargs):
    marker.touch()
    time.sleep(600)
export._write_export = held
"""
"""A prelude that stops the process inside the model export (after touching the marker named by the last
argument), where the test kills it."""


def step_records(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if "loss" in record]


def test_sigkill_during_the_final_export_then_resume_leaves_a_complete_model(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    from smoothcse.model.encoder import holds_model, load_encoder

    out, marker = tmp_path / "run", tmp_path / "in-export"
    process = spawn([*train_args(tiny_bert, small_corpus, out), str(marker)], cache_dir, prelude=HOLD_EXPORT)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # no --save-every: only the final checkpoint can save the run
    process.communicate()
    trained = step_records(out)
    resumed = run_process(train_args(tiny_bert, small_corpus, out, "--resume"), cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "(step 6)" in resumed.stderr
    assert step_records(out) == trained  # finished without training again
    assert holds_model(out / "model") and not (out / "model" / ".export-staging").exists()
    encoder = load_encoder(str(out), device="cpu")
    assert encoder.encode(["a complete model"]).shape == (1, encoder.embedding_dim)


def mount_tmpfs(folder: Path, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)


@pytest.fixture()
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A folder on a tmpfs of a chosen size (``mount(size)``), unmounted afterwards; root only."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root (CI runs the tests as root)")
    folder = tmp_path / "disk"
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        try:
            mount_tmpfs(folder, size)
        except (subprocess.CalledProcessError, OSError) as err:
            pytest.skip(f"cannot mount a tmpfs here ({err})")
        mounted.append(folder)
        return folder

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def temporary_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name == ".export-staging"]


def test_full_disk_at_the_export_keeps_the_checkpoint_and_resume_finishes_it(
    finished_run: Path, tiny_bert: Path, small_corpus: Path, cache_dir: Path, small_disk
) -> None:  # type: ignore[no-untyped-def]
    checkpoint = tree_size(finished_run / "checkpoints")
    model = tree_size(finished_run / "model")
    disk = small_disk(checkpoint + model // 3 + 64 * 1024)  # room for the checkpoint, not for the model too
    out = disk / "run"
    full = run_process(train_args(tiny_bert, small_corpus, out), cache_dir)
    assert full.returncode == 2
    line = one_line_error(full)
    assert str(out / "model") in line and "No space left on device" in line and "--resume" in line
    assert temporary_files(out) == []
    subprocess.run(["mount", "-o", f"remount,size={4 * (checkpoint + model)}", str(disk)], check=True)
    resumed = run_process(train_args(tiny_bert, small_corpus, out, "--resume"), cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "(step 6)" in resumed.stderr and step_records(out) == step_records(finished_run)


def test_full_disk_at_the_checkpoint_names_it_and_leaves_no_temporary_file(
    finished_run: Path, tiny_bert: Path, small_corpus: Path, cache_dir: Path, small_disk
) -> None:  # type: ignore[no-untyped-def]
    disk = small_disk(tree_size(finished_run / "checkpoints") // 2)
    out = disk / "run"
    full = run_process(train_args(tiny_bert, small_corpus, out), cache_dir)
    assert full.returncode == 2
    line = one_line_error(full)
    assert "checkpoint" in line and str(out / "checkpoints") in line and "No space left on device" in line
    assert temporary_files(out) == []
