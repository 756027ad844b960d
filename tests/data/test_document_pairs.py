"""--view-source document / title: the second view is another unit of the same document (topical positives),
or the document's title."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.config import build_config
from smoothcse.data.augment import DocumentPairs, DocumentTitles, ViewNoise
from smoothcse.data.cache_check import cache_problem
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus, document_titles, iter_sentences
from smoothcse.data.loader import BatchLoader
from smoothcse.errors import ConfigError
from smoothcse.training.loop import train
from tests.helpers import minilm_folder, tiny_train_config

DOCUMENTS = np.array([3, 3, 3, 5, 8, 8, 9, 9, 9, 9])  # units 0-2 one document, unit 3 alone, ...


def test_partners_are_other_units_of_the_same_document_and_cover_them_all() -> None:
    pairs = DocumentPairs(DOCUMENTS)
    indices = np.arange(len(DOCUMENTS))
    seen: dict[int, set[int]] = {i: set() for i in indices}
    for step in range(200):
        for i, j in zip(indices, pairs.partners(indices, seed=1, step=step, rank=0)):
            seen[int(i)].add(int(j))
    for i in indices:
        same = set(np.flatnonzero(DOCUMENTS == DOCUMENTS[i]).tolist())
        expected = same - {int(i)} or {int(i)}  # a one-unit document pairs with itself
        assert seen[int(i)] == expected, i
    assert pairs.paired == 9


def test_partners_are_reproducible_from_seed_step_rank() -> None:
    pairs = DocumentPairs(DOCUMENTS)
    indices = np.array([6, 0, 7, 1, 8, 2, 9])
    first = pairs.partners(indices, seed=42, step=3, rank=1)
    assert np.array_equal(first, pairs.partners(indices, seed=42, step=3, rank=1))
    draws = {tuple(pairs.partners(indices, seed=42, step=s, rank=1)) for s in range(20)}
    assert len(draws) > 1  # drawn afresh at each step


def test_no_document_with_two_units_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="--view-source document: no document of --data lines.txt holds two units"):
        DocumentPairs.of(np.arange(5), "lines.txt")
    with pytest.raises(ConfigError, match="--view-source must be one of unit, document, title"):
        build_config(overrides={"view_source": "sentence"})


def _write_documents(path: Path) -> Path:
    docs = [
        {
            "_id": "a",
            "title": "",
            "text": "Aspirin lowers the risk of heart attack. It blocks platelets. It can bleed.",
        },
        {"_id": "b", "title": "", "text": "Vitamin D is made in the skin."},
        {"_id": "c", "title": "Sleep", "text": "Sleep clears the brain. Poor sleep raises blood pressure."},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def test_token_cache_records_each_units_document(tmp_path: Path, cache_dir: Path) -> None:
    from transformers import AutoTokenizer

    path = _write_documents(tmp_path / "corpus.jsonl")
    corpus = TokenizedCorpus.build(path, AutoTokenizer.from_pretrained(str(minilm_folder())), 32, progress=False)
    lines = [number for number, _ in iter_sentences(path)]
    assert lines == [1, 1, 1, 2, 3, 3]
    assert corpus.documents().tolist() == lines
    assert corpus.first(4).documents().tolist() == lines[:4]
    (corpus.folder / "documents.npy").unlink()
    assert cache_problem(corpus.folder) == "documents.npy is missing"


def test_loader_second_view_is_the_partner_unit(tmp_path: Path, cache_dir: Path) -> None:
    from transformers import AutoTokenizer

    path = _write_documents(tmp_path / "corpus.jsonl")
    corpus = TokenizedCorpus.build(path, AutoTokenizer.from_pretrained(str(minilm_folder())), 32, progress=False)
    pairs = DocumentPairs(corpus.documents())
    schedule = BatchSchedule(len(corpus), 6, seed=0)
    loader = BatchLoader(corpus, schedule, 0, 1, device=torch.device("cpu"), pairs=pairs, prefetch=0, seed=7)
    batch = next(iter(loader))
    indices = schedule.batch(0)
    partners = pairs.partners(indices, seed=7, step=0, rank=0)
    assert batch.second is not None
    for row, (i, j) in enumerate(zip(indices, partners)):
        assert batch.input_ids[row, : len(corpus.sentence(int(i)))].tolist() == corpus.sentence(int(i)).tolist()
        assert batch.second[0][row, : len(corpus.sentence(int(j)))].tolist() == corpus.sentence(int(j)).tolist()
    assert sum(int(i) != int(j) for i, j in zip(indices, partners)) == 5  # all but the one-sentence document
    teacher = np.random.default_rng(0).standard_normal((len(corpus), 4)).astype(np.float32)
    taught = BatchLoader(
        corpus, schedule, 0, 1, device=torch.device("cpu"), pairs=pairs, prefetch=0, seed=7, teacher=teacher
    )
    rows = next(iter(taught))
    assert rows.teacher is not None and rows.teacher_positive is not None
    np.testing.assert_array_equal(rows.teacher.numpy(), teacher[indices])
    np.testing.assert_array_equal(rows.teacher_positive.numpy(), teacher[partners])  # the partners' own rows
    alone = BatchLoader(corpus, schedule, 0, 1, device=torch.device("cpu"), prefetch=0, teacher=teacher)
    assert next(iter(alone)).teacher_positive is None  # dropout views: the positive is the unit itself
    noisy = BatchLoader(
        corpus, schedule, 0, 1, device=torch.device("cpu"), pairs=pairs, noise=ViewNoise(crop=0.5), prefetch=0, seed=7
    )
    cropped = next(iter(noisy)).second
    assert cropped is not None
    for row, j in enumerate(partners):  # crop applies to the partner: each view is [CLS] + a span of it + [SEP]
        whole = corpus.sentence(int(j)).tolist()
        view = cropped[0][row, : int(cropped[2][row])].tolist()
        inner = view[1:-1]
        assert view[0] == whole[0] and view[-1] == whole[-1]
        assert any(whole[1 + k : 1 + k + len(inner)] == inner for k in range(len(whole) - len(inner) - 1))
    assert (cropped[2] < batch.second[2]).any()


def test_training_with_document_views(tmp_path: Path, tiny_bert: Path, cache_dir: Path) -> None:
    path = _write_documents(tmp_path / "corpus.jsonl")
    config = tiny_train_config(tiny_bert, path, tmp_path / "run", batch_size=6, max_steps=3, view_source="document")
    summary = train(config)
    assert summary.steps == 3
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "| View source | document |" in card
    lines = tmp_path / "lines.txt"
    lines.write_text("one sentence\nanother sentence\na third\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--view-source document: no document"):
        train(tiny_train_config(tiny_bert, lines, tmp_path / "lines", batch_size=2, view_source="document"))


def test_title_partners_are_the_documents_titles_tokenised_as_the_units(tmp_path: Path, cache_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    path = _write_documents(tmp_path / "corpus.jsonl")
    corpus = TokenizedCorpus.build(path, tokenizer, 32, progress=False)
    titles = document_titles(str(path))
    assert titles == {3: "Sleep"}  # documents a and b have empty titles
    views = DocumentTitles.of(corpus.documents(), titles, tokenizer, 32, str(path))
    assert views.paired == 2  # the two sentences of document c
    sleep = tokenizer("Sleep")["input_ids"]
    schedule = BatchSchedule(len(corpus), 6, seed=0)
    loader = BatchLoader(corpus, schedule, 0, 2, device=torch.device("cpu"), pairs=views, prefetch=0, seed=7)
    for step, batch in enumerate(loader):
        assert batch.second is not None
        for row, i in enumerate(schedule.batch(step)):
            expected = sleep if corpus.documents()[i] == 3 else corpus.sentence(int(i)).tolist()
            assert batch.second[0][row, : int(batch.second[2][row])].tolist() == expected
            assert batch.input_ids[row, : len(corpus.sentence(int(i)))].tolist() == corpus.sentence(int(i)).tolist()
    assert views.titles == ("Sleep",)
    teacher = np.random.default_rng(0).standard_normal((len(corpus), 4)).astype(np.float32)
    title_teacher = np.full((1, 4), 9.0, dtype=np.float32)
    with pytest.raises(ValueError, match="embed the titles with the teacher first"):
        next(iter(BatchLoader(corpus, schedule, 0, 1, device=torch.device("cpu"), pairs=views, teacher=teacher)))
    taught = BatchLoader(
        corpus,
        schedule,
        0,
        2,
        device=torch.device("cpu"),
        pairs=replace(views, teacher=title_teacher),
        prefetch=0,
        seed=7,
        teacher=teacher,
    )
    for step, batch in enumerate(taught):
        assert batch.teacher_positive is not None
        for row, i in enumerate(schedule.batch(step)):  # the title's row, or the untitled unit's own
            expected = title_teacher[0] if corpus.documents()[i] == 3 else teacher[i]
            np.testing.assert_array_equal(batch.teacher_positive[row].numpy(), expected)
    with pytest.raises(ConfigError, match="--view-source title: no document of --data c.jsonl has a 'title'"):
        DocumentTitles.of(corpus.documents(), {}, tokenizer, 32, "c.jsonl")
    long_title = DocumentTitles.of(corpus.documents(), {3: "sleep " * 100}, tokenizer, 32, "c.jsonl")
    assert len(long_title.title_ids[3]) == 32  # truncated to --max-len like the units


def test_training_with_title_views(tmp_path: Path, tiny_bert: Path, cache_dir: Path) -> None:
    path = _write_documents(tmp_path / "corpus.jsonl")
    config = tiny_train_config(tiny_bert, path, tmp_path / "run", batch_size=6, max_steps=2, view_source="title")
    assert train(config).steps == 2
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "| View source | title |" in card
    untitled = tmp_path / "untitled.jsonl"
    untitled.write_text(json.dumps({"_id": "a", "text": "One sentence. And another."}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--view-source title: no document of --data .*untitled.jsonl has a 'title'"):
        train(tiny_train_config(tiny_bert, untitled, tmp_path / "untitled", batch_size=2, view_source="title"))
