"""Class 7: no traceback for any input: config values, weights, pipes, result files."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import train_args

from .conftest import one_line_error


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("lr = nan", "'lr' must be a finite number"),
        ("lr = inf", "'lr' must be a finite number"),
        ("max_grad_norm = -inf", "'max_grad_norm' must be a finite number"),
        ("[objective]\ntemperature = nan", "'objective.temperature' must be a finite number"),
        ('hidden_dropout = "big"', "'hidden_dropout' must be a number"),
        ("attention_dropout = nan", "'attention_dropout' must be a finite number"),
        ("text_column = 3", "'text_column' must be a string"),
        ("data_dir = 1", "'data_dir' must be a string"),
        ("max_bad_steps = 0", "--max-bad-steps must be a positive integer"),
        ("seed = -1", "--seed must be in"),
        ("adam_eps = -1.0", "--adam-eps must be positive"),
        ("eval_batch_size = 0", "eval_batch_size must be a positive integer"),
    ],
)
def test_bad_config_value_is_one_line(tmp_path: Path, cli: Callable, toml: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml + "\n")
    result = cli("train", "--config", config, "--print-config")
    assert result.exit_code == 2, result.output
    assert expected in one_line_error(result)


@pytest.mark.parametrize(("flag", "value"), [("--lr", "nan"), ("--weight-decay", "inf"), ("--max-bad-steps", "0")])
def test_bad_flag_value_is_one_line(cli: Callable, flag: str, value: str) -> None:
    result = cli("train", flag, value, "--print-config")
    assert result.exit_code == 2, result.output
    assert flag.strip("-").replace("-", "_") in one_line_error(result).replace("-", "_")


@pytest.mark.parametrize("damage", ["truncated", "not-safetensors"])
def test_damaged_weights_are_one_line_naming_the_model(
    tiny_bert: Path, tmp_path: Path, cli: Callable, damage: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    weights = model / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        weights.write_bytes(b"PK\x03\x04 this is a zip archive, not safetensors" * 100)
    sentences = tmp_path / "in.txt"
    sentences.write_text("a sentence\n")
    result = cli("encode", model, "--input", sentences, "--output", tmp_path / "v.npy", "--device", "cpu")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--model" in line and str(model) in line


def test_a_pipe_as_corpus_is_named_not_called_a_directory(tiny_bert: Path, tmp_path: Path, cli: Callable) -> None:
    pipe = tmp_path / "corpus.fifo"
    os.mkfifo(pipe)
    result = cli(*train_args(tiny_bert, pipe, tmp_path / "run"))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "not a regular file" in line and "directory" not in line


def test_a_pipe_as_encode_input_is_read(finished_run: Path, tmp_path: Path, cli: Callable) -> None:
    pipe = tmp_path / "sentences.fifo"
    os.mkfifo(pipe)

    def feed() -> None:
        with pipe.open("w") as handle:
            handle.write("first sentence\nsecond sentence\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = cli("encode", finished_run, "--input", pipe, "--output", tmp_path / "v.npy", "--device", "cpu")
    writer.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "v.npy").shape[0] == 2


@pytest.mark.parametrize(
    "document",
    [
        {"name": "x", "values": [1, 2], "status": "ok"},
        {"name": "x", "values": {}, "status": "ok", "scores": {"avg": "high"}},
        {"name": "x", "values": {}, "status": "ok", "sts": {"tasks": [1]}, "scores": {}},
        {"name": "x", "values": {}, "status": "ok", "train": "done"},
    ],
)
def test_report_on_a_result_of_the_wrong_shape_is_one_line(
    tmp_path: Path, cli: Callable, document: dict[str, object]
) -> None:
    run = tmp_path / "sweep" / "runs" / "x"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps(document))
    result = cli("report", tmp_path / "sweep")
    assert result.exit_code == 2, result.output
    assert "result.json" in one_line_error(result)
