"""Class 4: resume is a contract: a setting that shapes training cannot change on --resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import train_args

from .conftest import copy_run, folder_state, one_line_error


@pytest.mark.parametrize(
    ("flags", "key", "saved", "given"),
    [
        (("--batch-size", "32"), "batch_size", "16", "32"),
        (("--max-steps", "3"), "max_steps", "6", "3"),  # a finished 12-step run resumed as a 6-step one: "12 of 6"
        (("--objective", "simcse+gs"), "objective.spec", "'simcse'", "'simcse+gs'"),  # was a state_dict traceback
        (("--temperature", "0.1"), "objective.temperature", "0.05", "0.1"),
        (("--precision", "bf16"), "precision", "'auto'", "'bf16'"),
    ],
)
def test_resume_with_a_changed_setting_is_refused_naming_it(
    finished_run: Path,
    tiny_bert: Path,
    small_corpus: Path,
    tmp_path: Path,
    cli: Callable,
    flags: tuple[str, ...],
    key: str,
    saved: str,
    given: str,
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = folder_state(run)
    result = cli(*train_args(tiny_bert, small_corpus, run, "--resume", *flags))
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert f"{key} " in line and f"was {saved}" in line and f"gives {given}" in line
    assert folder_state(run) == before


def test_resume_on_another_corpus_is_refused_and_free_settings_may_change(
    finished_run: Path, tiny_bert: Path, small_corpus: Path, tmp_path: Path, cli: Callable
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    other = tmp_path / "other" / small_corpus.name  # the same name, other content
    other.parent.mkdir()
    other.write_text("\n".join(reversed(small_corpus.read_text().splitlines())) + "\n")
    result = cli(*train_args(tiny_bert, other, run, "--resume"))
    assert result.exit_code == 2
    assert "--data" in one_line_error(result) and "sha256" in result.stderr
    # the same corpus elsewhere (compared by content) and every setting free on resume changed: it continues
    moved = tmp_path / "moved.txt"
    moved.write_bytes(small_corpus.read_bytes())
    free = ("--log-every", "1", "--save-every", "3", "--keep-checkpoints", "3", "--max-bad-steps", "9")
    result = cli(*train_args(tiny_bert, moved, run, "--resume", "--eval-every", "0", *free))
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["summary"]
    assert summary["steps"] == 6


def test_a_key_an_older_checkpoint_lacks_compares_equal_at_its_default(tmp_path: Path) -> None:
    from smoothcse.config import TrainConfig
    from smoothcse.training.resume import resume_conflict

    config = TrainConfig(data=str(tmp_path / "none.txt"))
    old = config.to_dict()
    del old["rows_per_forward"], old["objective"]["temperature"]  # fields an older smoothcse did not have
    assert resume_conflict({"config": old}, config, tmp_path) is None
    changed = TrainConfig(data=config.data, rows_per_forward=8)
    assert "rows_per_forward" in (resume_conflict({"config": old}, changed, tmp_path) or "")
