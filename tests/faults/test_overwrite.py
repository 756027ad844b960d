"""Class 2: --overwrite never deletes an input; nothing is deleted before every input is resolved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import train_args

from .conftest import copy_run, folder_state, one_line_error


@pytest.mark.parametrize("model_in", ["run", "run/model"])
def test_model_inside_the_folder_to_overwrite_is_refused_and_kept(
    finished_run: Path, small_corpus: Path, tmp_path: Path, cli: Callable, model_in: str
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = folder_state(run)
    result = cli(*train_args(tmp_path / model_in, small_corpus, run, "--overwrite"))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--model" in line and "--overwrite would delete" in line
    assert folder_state(run) == before  # nothing touched


def test_config_file_inside_the_folder_to_overwrite_is_refused(
    finished_run: Path, tiny_bert: Path, small_corpus: Path, tmp_path: Path, cli: Callable
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    config = run / "model" / "settings.toml"
    config.write_text("seed = 7\n")
    before = folder_state(run)
    result = cli(*train_args(tiny_bert, small_corpus, run, "--overwrite", "--config", str(config)))
    assert result.exit_code == 2
    assert "--config" in one_line_error(result)
    assert folder_state(run) == before


def test_a_missing_corpus_is_found_out_before_anything_is_deleted(
    finished_run: Path, tiny_bert: Path, tmp_path: Path, cli: Callable
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = folder_state(run)
    result = cli(*train_args(tiny_bert, tmp_path / "missing.txt", run, "--overwrite"))
    assert result.exit_code == 2
    assert "--data" in one_line_error(result)
    assert folder_state(run) == before
