"""Corpus reading, the token-id cache, and the per-epoch batch schedule."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus, find_corpus, iter_sentences
from smoothcse.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_gz_xz_read_the_same(tmp_path: Path) -> None:
    text = "first sentence\n\n  second one  \nthird\n"
    plain = write(tmp_path / "c.txt", text)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "c.txt.xz").write_bytes(lzma.compress(text.encode()))
    expected = [(1, "first sentence"), (3, "second one"), (4, "third")]
    for path in (plain, tmp_path / "c.txt.gz", tmp_path / "c.txt.xz"):
        assert list(iter_sentences(path)) == expected


def test_csv_and_tsv_columns(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "c.csv", 'id,text\n1,"Hello, world"\n2,Second\n')
    assert [s for _, s in iter_sentences(csv_path, "text")] == ["Hello, world", "Second"]
    assert [s for _, s in iter_sentences(csv_path, "1")] == ["Hello, world", "Second"]
    tsv_path = write(tmp_path / "c.tsv", "sentence\nOne\nTwo\n")
    assert [s for _, s in iter_sentences(tsv_path)] == ["One", "Two"]
    with pytest.raises(DataError, match="--text-column"):
        list(iter_sentences(csv_path))
    with pytest.raises(DataError, match="not a column"):
        list(iter_sentences(csv_path, "body"))


def test_bad_bytes_are_reported_with_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine line\nanother\ncaf\xe9 au lait\n")
    with pytest.raises(DataError, match=r"latin1.txt:3: not valid UTF-8"):
        list(iter_sentences(bad))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"text\n\x00\x01\x02\x03")
    with pytest.raises(DataError, match=r"binary.txt:2: contains NUL bytes"):
        list(iter_sentences(binary))


def test_cache_is_built_once_and_matches_tokenizer(tmp_path: Path, tokenizer, cache_dir: Path) -> None:
    lines = ["The quick brown fox jumps over the lazy dog.", "", "Hello world", "word " * 500]
    path = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    corpus = TokenizedCorpus.build(path, tokenizer, max_len=16, cache_dir=cache_dir, progress=False)
    assert len(corpus) == 3
    assert corpus.stats.empty_lines_skipped == 1
    assert corpus.stats.truncated == 1
    for i, sentence in enumerate([lines[0], lines[2], lines[3]]):
        expected = tokenizer(sentence, truncation=True, max_length=16)["input_ids"]
        assert corpus.sentence(i).tolist() == expected
    folders = list(cache_dir.iterdir())
    assert len(folders) == 1
    stamp = (folders[0] / "ids.bin").stat().st_mtime_ns
    again = TokenizedCorpus.build(path, tokenizer, max_len=16, cache_dir=cache_dir, progress=False)
    assert (folders[0] / "ids.bin").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert again.sentence(1).tolist() == corpus.sentence(1).tolist()
    # another max_len or changed content -> another cache entry
    TokenizedCorpus.build(path, tokenizer, max_len=8, cache_dir=cache_dir, progress=False)
    write(path, "changed content\n")
    changed = TokenizedCorpus.build(path, tokenizer, max_len=16, cache_dir=cache_dir, progress=False)
    assert len(changed) == 1 and len(list(cache_dir.iterdir())) == 3


def test_collate_pads_and_masks(tmp_path: Path, tokenizer, cache_dir: Path) -> None:
    path = write(tmp_path / "c.txt", "a b c d e f\nhi\n")
    corpus = TokenizedCorpus.build(path, tokenizer, max_len=32, cache_dir=cache_dir, progress=False)
    ids, mask = corpus.collate(np.array([1, 0]))
    assert ids.shape == mask.shape == (2, len(corpus.sentence(0)))
    assert mask[0].sum() == len(corpus.sentence(1)) and mask[1].all()
    assert (ids[0][mask[0] == 0] == tokenizer.pad_token_id).all()
    ids, _ = corpus.collate(np.array([0]), pad_to=32)
    assert ids.shape == (1, 32)


def test_empty_corpus_is_refused_and_leaves_no_cache(tmp_path: Path, tokenizer, cache_dir: Path) -> None:
    path = write(tmp_path / "blank.txt", "\n   \n\t\n")
    with pytest.raises(DataError, match="no sentences"):
        TokenizedCorpus.build(path, tokenizer, max_len=16, cache_dir=cache_dir, progress=False)
    assert not any(cache_dir.iterdir())


def test_find_corpus_searches_data_dir(data_dir: Path) -> None:
    assert find_corpus("corpus/enwiki2015_sample10k.txt") == data_dir / "corpus" / "enwiki2015_sample10k.txt"
    with pytest.raises(DataError, match="no such file"):
        find_corpus("corpus/nope.txt")


def test_batch_schedule_is_a_seeded_permutation_per_epoch() -> None:
    schedule = BatchSchedule(10, 4, seed=3)
    assert schedule.steps_per_epoch == 3  # 4 + 4 + 2
    epoch0 = np.concatenate([schedule.batch(s) for s in range(3)])
    epoch1 = np.concatenate([schedule.batch(s) for s in range(3, 6)])
    assert sorted(epoch0.tolist()) == list(range(10)) == sorted(epoch1.tolist())
    assert epoch0.tolist() != epoch1.tolist()
    again = BatchSchedule(10, 4, seed=3)
    assert again.batch(4).tolist() == schedule.batch(4).tolist()  # resumable from the step alone
    assert BatchSchedule(9, 4, seed=3).steps_per_epoch == 2  # a last batch of 1 is dropped


def test_megabyte_line_is_truncated_and_counted(tmp_path: Path, tokenizer, cache_dir: Path) -> None:
    path = write(tmp_path / "long.txt", "short one\n" + "word " * 200_000 + "\nlast\n")
    corpus = TokenizedCorpus.build(path, tokenizer, max_len=16, cache_dir=cache_dir, progress=False)
    assert len(corpus) == 3
    assert len(corpus.sentence(1)) == 16
    assert corpus.stats.truncated == 1
