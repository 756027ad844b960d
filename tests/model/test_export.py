"""Encoder poolers, the training-only MLP head, and the sentence-transformers export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.model.encoder import SentenceEncoder, holds_model, load_encoder, pool, resolve_model_path
from smoothcse.model.export import save_encoder
from smoothcse.model.poolers import POOLERS

SENTENCES = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "the cat sat on the mat and looked around for a very long while before sleeping",
    "A man is playing a guitar.",  # duplicate on purpose
    "Hi",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_pool_matches_hand_computation() -> None:
    torch.manual_seed(0)
    hidden = [torch.randn(2, 4, 3) for _ in range(4)]  # embeddings + 3 layers
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    last = hidden[-1]
    assert torch.equal(pool("cls", mask, last, hidden), last[:, 0])
    expected_avg = torch.stack([last[0, :2].mean(0), last[1].mean(0)])
    assert torch.allclose(pool("avg", mask, last, hidden), expected_avg)
    first_last = (hidden[1] + hidden[-1]) / 2
    expected = torch.stack([first_last[0, :2].mean(0), first_last[1].mean(0)])
    assert torch.allclose(pool("avg_first_last", mask, last, hidden), expected)
    top2 = (hidden[-2] + hidden[-1]) / 2
    expected = torch.stack([top2[0, :2].mean(0), top2[1].mean(0)])
    assert torch.allclose(pool("avg_top2", mask, last, hidden), expected)
    with pytest.raises(ConfigError, match="avg"):
        pool("average", mask, last, hidden)


def test_mlp_head_is_training_only(tiny_bert: Path) -> None:
    encoder = load_encoder(str(tiny_bert), pooler="cls", mlp_only_train=True).eval()
    batch = encoder.tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        train_view = encoder(batch["input_ids"], batch["attention_mask"])
        eval_view = encoder.embed(batch["input_ids"], batch["attention_mask"])
        cls = encoder.backbone(**batch).last_hidden_state[:, 0]
    assert encoder.eval_pooler == "cls_before_pooler"
    assert torch.allclose(eval_view, cls)
    assert torch.allclose(train_view, torch.tanh(encoder.mlp.dense(cls)))
    kept = load_encoder(str(tiny_bert), pooler="cls", mlp_only_train=False)
    assert kept.eval_pooler == "cls"


def test_encode_dedupes_and_preserves_order(tiny_bert: Path) -> None:
    encoder = load_encoder(str(tiny_bert), pooler="avg")
    vectors = encoder.encode(SENTENCES, batch_size=2)
    assert vectors.shape == (len(SENTENCES), encoder.hidden_size)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[0], vectors[3])
    one_by_one = np.stack([encoder.encode([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert encoder.training  # encode restores the mode it found


def test_encode_puts_every_flushed_batch_in_its_rows(
    tiny_bert: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors wait on the device and are copied back a few batches at a time: each lands in its row."""
    import smoothcse.model.encoder as encoder_module

    encoder = load_encoder(str(tiny_bert), pooler="avg")
    lines = small_corpus.read_text(encoding="utf-8").splitlines()[:11]
    whole = encoder.encode(lines, batch_size=64)  # one batch, one flush
    monkeypatch.setattr(encoder_module, "ENCODE_FLUSH_BATCHES", 2)
    flushed = encoder.encode(lines, batch_size=2)  # 6 batches: 3 flushes, the last of one batch
    np.testing.assert_allclose(flushed, whole, atol=1e-5)
    assert len({row.tobytes() for row in flushed}) == len(set(lines))  # no row left empty or written twice


def test_dropout_makes_two_views_differ(tiny_bert: Path) -> None:
    encoder = load_encoder(str(tiny_bert), pooler="cls", hidden_dropout=0.2).train()
    batch = encoder.tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    a = encoder(batch["input_ids"], batch["attention_mask"])
    b = encoder(batch["input_ids"], batch["attention_mask"])
    assert not torch.allclose(a, b)
    assert encoder.backbone.config.hidden_dropout_prob == 0.2


@pytest.mark.parametrize(
    "pooler,mlp_only_train",
    [("cls", True), ("cls", False), ("avg", True), ("avg_first_last", True), ("avg_top2", True)],
)
def test_export_round_trip_through_sentence_transformers(
    tiny_bert: Path, tmp_path: Path, pooler: str, mlp_only_train: bool
) -> None:
    from sentence_transformers import SentenceTransformer

    encoder = load_encoder(str(tiny_bert), pooler=pooler, mlp_only_train=mlp_only_train)
    if encoder.mlp is not None:  # make the head matter
        torch.nn.init.normal_(encoder.mlp.dense.weight)
    out = tmp_path / "export"
    save_encoder(encoder, out, {"note": "test"})
    assert holds_model(out)
    assert not (out / ".export-staging").exists()
    ours = encoder.encode(SENTENCES)
    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES)
    assert cosines(ours, theirs).min() >= 0.9999
    reloaded = load_encoder(str(out)).encode(SENTENCES)
    assert cosines(ours, reloaded).min() >= 0.9999
    saved = json.loads((out / "smoothcse_encoder.json").read_text())
    assert saved["eval_pooler"] == encoder.eval_pooler


def test_sentence_transformers_folder_uses_its_own_pooling(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from tests.helpers import minilm_folder

    encoder = load_encoder(str(minilm_folder()))
    assert encoder.pooler == "avg" and encoder.mlp is None
    ours = encoder.encode(SENTENCES[:3])
    theirs = SentenceTransformer(str(minilm_folder()), device="cpu").encode(SENTENCES[:3])
    assert cosines(ours, theirs).min() >= 0.9999


def test_packaged_alias_resolves_offline() -> None:
    assert Path(resolve_model_path("all-MiniLM-L6-v2"), "config.json").is_file()
    assert resolve_model_path("bert-base-uncased") == "bert-base-uncased"


def test_bad_model_paths(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(SmoothCSEError, match="no such folder"):
        load_encoder(str(tmp_path / "missing" / "model"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SmoothCSEError, match="config.json"):
        load_encoder(str(empty))
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_bert / "config.json").read_text())
    with pytest.raises(SmoothCSEError, match="no weights"):
        load_encoder(str(no_weights))


def test_mismatched_tokenizer_is_refused(tmp_path: Path, tiny_bert: Path) -> None:
    import shutil

    from transformers import BertConfig, BertModel

    small = tmp_path / "small-vocab"
    BertModel(
        BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(str(small))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_bert / name, small / name)
    with pytest.raises(SmoothCSEError, match="do not belong together"):
        load_encoder(str(small))


def test_unknown_pooler_lists_choices(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'avg'"):
        load_encoder(str(tiny_bert), pooler="avgg")
    assert set(POOLERS) == {"cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2"}
    assert isinstance(load_encoder(str(tiny_bert), pooler="cls"), SentenceEncoder)


def test_sentence_transformers_max_seq_length_is_respected() -> None:
    from tests.helpers import minilm_folder

    encoder = load_encoder(str(minilm_folder()))
    assert encoder.max_length == 256  # all-MiniLM-L6-v2's sentence_bert_config.json
    long_text = "word " * 600
    ids = encoder.tokenizer([long_text], truncation=True, max_length=encoder.max_length)["input_ids"][0]
    np.testing.assert_allclose(
        encoder.encode([long_text]), encoder.encode([encoder.tokenizer.decode(ids[1:-1])]), atol=1e-4
    )
