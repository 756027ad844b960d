"""Shared fixtures: a tiny random-initialised BERT built at test time, real corpora and data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import build_tiny_bert, minilm_folder

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from smoothcse.datadir import resolve_data_dir

    return resolve_data_dir()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The first 600 sentences of the real 10k Wikipedia sample."""
    lines = (data_dir / "corpus" / "enwiki2015_sample10k.txt").read_text(encoding="utf-8").splitlines()[:600]
    path = tmp_path_factory.mktemp("corpus") / "wiki600.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """The real uncased WordPiece tokenizer of all-MiniLM-L6-v2 (the tiny models' vocabulary)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder()))


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SMOOTHCSE_CACHE", str(folder))
    return folder


def pytest_configure(config: pytest.Config) -> None:
    # The tests use tiny models, for which one thread is faster than two (and steadier on a shared CI box).
    import torch

    torch.set_num_threads(1)
