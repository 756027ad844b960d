"""Class 6: every output is checked before the long work (before the model is even loaded)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import one_line_error


@pytest.fixture()
def read_only_folder(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A read-only file system (root ignores permission bits, so a plain chmod would not do)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only folder is made with a read-only tmpfs, which needs root")
    folder = tmp_path / "ro"
    folder.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    except (subprocess.CalledProcessError, OSError) as err:
        pytest.skip(f"cannot mount a tmpfs here ({err})")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_eval_json_under_a_file_stops_before_evaluating(finished_run: Path, tmp_path: Path, cli: Callable) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("eval", finished_run, "--tasks", "STSb", "--device", "cpu", "--json", blocker / "scores.json")
    assert result.exit_code == 2
    assert "--json" in one_line_error(result)
    assert "Spearman" not in result.stdout


def test_encode_output_in_a_read_only_folder_stops_before_encoding(
    finished_run: Path, tmp_path: Path, cli: Callable, read_only_folder: Path
) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("one sentence\nanother one\n")
    result = cli("encode", finished_run, "--input", sentences, "--output", read_only_folder / "vectors.npy")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--output" in line and "Read-only file system" in line


def test_encode_output_under_a_file_stops_before_encoding(finished_run: Path, tmp_path: Path, cli: Callable) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("one sentence\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("encode", finished_run, "--input", sentences, "--output", blocker / "vectors.jsonl")
    assert result.exit_code == 2
    assert "--output" in one_line_error(result)
