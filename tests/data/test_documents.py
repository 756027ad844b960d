"""Document corpora (JSONL, BEIR's corpus.jsonl[.gz]) cut into sentences or passages, and harder views."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from smoothcse.config import build_config
from smoothcse.data.augment import ViewNoise
from smoothcse.data.corpus import TokenizedCorpus, iter_sentences
from smoothcse.data.documents import pack_passages, split_sentences
from smoothcse.errors import ConfigError, DataError

DOCS = [
    {
        "_id": "1",
        "title": "Aspirin and the heart",
        "text": "Aspirin lowers the risk of a first heart attack. "
        "It works by blocking platelets, e.g. in arteries narrowed by 50.5% or more. Bleeding is its main risk.",
    },
    {"_id": "2", "title": "", "text": "Vitamin D is made in the skin. Levels fall in winter."},
    {"_id": "3", "title": "Empty", "text": ""},
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_blingfire_keeps_abbreviations_and_decimals_inside_sentences() -> None:
    sentences = split_sentences(DOCS[0]["text"])
    assert sentences == [
        "Aspirin lowers the risk of a first heart attack.",
        "It works by blocking platelets, e.g. in arteries narrowed by 50.5% or more.",
        "Bleeding is its main risk.",
    ]


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_beir_documents_become_sentences_title_first(tmp_path: Path, name: str) -> None:
    path = write_jsonl(tmp_path / name, DOCS)
    units = list(iter_sentences(path))
    # BEIR joins title + " " + text; the title without a full stop runs into the first sentence
    assert [text for _, text in units] == [
        "Aspirin and the heart Aspirin lowers the risk of a first heart attack.",
        "It works by blocking platelets, e.g. in arteries narrowed by 50.5% or more.",
        "Bleeding is its main risk.",
        "Vitamin D is made in the skin.",
        "Levels fall in winter.",
        "Empty",
    ]
    assert [number for number, _ in units] == [1, 1, 1, 2, 2, 3]  # each unit names its document's line


def test_text_field_reads_another_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "notes.jsonl", [{"body": "One. Two."}, {"body": "Three."}])
    assert [t for _, t in iter_sentences(path, text_field="body")] == ["One.", "Two.", "Three."]
    with pytest.raises(DataError, match=r"notes\.jsonl:1: no string 'text'.*--text-field"):
        list(iter_sentences(path))
    with pytest.raises(DataError, match=r"notes\.jsonl:1: field 'summary' \(--text-field\) is missing"):
        list(iter_sentences(path, text_field="summary"))


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine."}\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"docs\.jsonl:2: not valid JSON"):
        list(iter_sentences(path))
    path.write_text('["a list"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"docs\.jsonl:1: expected a JSON object"):
        list(iter_sentences(path))


def test_evaluation_queries_are_refused_as_training_text(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    path = write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "Does aspirin help?"}])
    with pytest.raises(DataError, match="never trains on evaluation queries"):
        list(iter_sentences(path))


def test_units_and_text_field_are_refused_for_line_corpora(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("one sentence\n", encoding="utf-8")
    with pytest.raises(DataError, match="--units passages: only for JSONL"):
        list(iter_sentences(path, units="passages"))
    with pytest.raises(DataError, match="--text-field body: only for JSONL"):
        list(iter_sentences(path, text_field="body"))
    with pytest.raises(ConfigError, match="--units must be one of sentences, passages"):
        build_config(overrides={"units": "paragraphs"})


def test_pack_passages_is_greedy_and_keeps_overlong_sentences_alone() -> None:
    sentences = ["a", "b", "c", "d", "e"]
    assert pack_passages(sentences, [3, 3, 9, 2, 2], budget=6) == ["a b", "c", "d e"]
    assert pack_passages([], [], budget=6) == []


def test_passages_fit_max_len_and_cover_every_sentence(tmp_path: Path, tokenizer) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    max_len = 24
    passages = [t for _, t in iter_sentences(path, units="passages", tokenizer=tokenizer, max_len=max_len)]
    sentences = [t for _, t in iter_sentences(path)]
    assert " ".join(passages) == " ".join(sentences)  # nothing dropped, order kept
    assert len(passages) < len(sentences)
    for passage in passages:
        pieces = split_sentences(passage)
        assert len(tokenizer(passage)["input_ids"]) <= max_len or len(pieces) == 1


def test_token_cache_is_keyed_by_units(tmp_path: Path, tokenizer) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl.gz", DOCS)
    by_sentence = TokenizedCorpus.build(path, tokenizer, 24, cache_dir=tmp_path / "cache", progress=False)
    by_passage = TokenizedCorpus.build(
        path, tokenizer, 24, units="passages", cache_dir=tmp_path / "cache", progress=False
    )
    assert by_sentence.folder != by_passage.folder
    assert len(by_sentence) == 6 and len(by_passage) < 6
    assert tokenizer.decode(by_sentence.sentence(3), skip_special_tokens=True) == "vitamin d is made in the skin."


# ------------------------------------------------------------------------------------------------ views


def test_views_keep_the_special_tokens_and_crop_within_bounds() -> None:
    ids = np.arange(100, 142)  # [CLS]=100, 40 inner tokens, [SEP]=141
    noise = ViewNoise(crop=0.25)
    rng = np.random.default_rng(0)
    for _ in range(200):
        view = noise.view(ids, rng)
        inner = view[1:-1]
        assert view[0] == 100 and view[-1] == 141
        assert 10 <= len(inner) <= 40  # at least 25% of the 40 inner tokens
        assert np.array_equal(inner, np.arange(inner[0], inner[0] + len(inner)))  # one contiguous span


def test_deletion_thins_at_its_rate_and_never_empties() -> None:
    ids = np.arange(1000)
    kept = [len(ViewNoise(delete=0.6).view(ids, np.random.default_rng(s))) - 2 for s in range(50)]
    assert abs(np.mean(kept) / 998 - 0.4) < 0.02
    short = np.array([101, 7, 8, 102])
    for seed in range(50):
        view = ViewNoise(delete=0.99).view(short, np.random.default_rng(seed))
        assert view[0] == 101 and view[-1] == 102 and len(view) == 3


def test_two_views_differ_and_are_reproducible_from_seed_step_rank() -> None:
    units = [np.arange(100, 130), np.arange(200, 212)]
    noise = ViewNoise(crop=0.3, delete=0.2)
    first, second = noise.views(units, units, seed=42, step=7, rank=0)
    again = noise.views(units, units, seed=42, step=7, rank=0)
    assert all(np.array_equal(a, b) for a, b in zip(first + second, again[0] + again[1]))
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    other = noise.views(units, units, seed=42, step=8, rank=0)[0]
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    with pytest.raises(ConfigError, match="--view-crop must be in"):
        build_config(overrides={"view_crop": 1.5})
    with pytest.raises(ConfigError, match="--view-delete must be in"):
        build_config(overrides={"view_delete": 1.0})
