"""Document corpora (a BEIR ``corpus.jsonl[.gz]`` or any JSONL of documents), cut into training units.

A document's text is BEIR's ``(title + " " + text).strip()``, or the field ``--text-field`` names. ``--units``
cuts it into sentences, split by blingfire (the splitter that made smoothcse's Wikipedia corpora, its rules
inside the wheel; on SciFact it kept the decimals, percentages and "PBMC." sentence ends that sentencex
merged), or into passages: consecutive sentences packed up to ``max_len`` tokens, an overlong sentence alone.
A BEIR folder's ``queries.jsonl`` is refused: evaluation queries are never training text (docs/adaptation.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from smoothcse.errors import DataError

JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson")


def check_not_queries(path: Path) -> None:
    """Refuse a BEIR folder's queries file (its qrels/ beside it) as training data."""
    if path.name.lower().startswith("queries.") and (path.parent / "qrels").is_dir():
        raise DataError(
            f"--data {path}: is a BEIR folder's queries file; smoothcse never trains on evaluation queries. "
            f"Train on the folder's documents: --data {path.parent / 'corpus.jsonl.gz'} (or corpus.jsonl)."
        )


def _document_text(record: Any, path: Path, number: int, text_field: str | None) -> str:
    where = f"{path}:{number}"
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object per line (a document), got {type(record).__name__}.")
    if text_field is not None:
        value = record.get(text_field)
        if not isinstance(value, str):
            found = "missing" if value is None else f"a {type(value).__name__}"
            raise DataError(
                f"{where}: field {text_field!r} (--text-field) is {found}, not a string; "
                f"the fields here are {', '.join(sorted(record)[:8])}."
            )
        return value.strip()
    text, title = record.get("text"), record.get("title", "")
    if not isinstance(text, str) or not isinstance(title, str):
        raise DataError(
            f"{where}: no string 'text' (and optional 'title') as in BEIR's corpus.jsonl; "
            f"the fields here are {', '.join(sorted(record)[:8])}: name the text's field with --text-field."
        )
    return (title + " " + text).strip()


def iter_documents(path: Path, lines: Iterator[tuple[int, str]], text_field: str | None) -> Iterator[tuple[int, str]]:
    """(line number, document text) for every non-empty document of a JSONL file's decoded ``lines``."""
    check_not_queries(path)
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{number}: not valid JSON ({err.msg}, column {err.colno}); "
                "a document corpus holds one JSON object per line."
            ) from None
        text = _document_text(record, path, number, text_field)
        if text:
            yield number, text


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (blingfire), stripped, empty ones dropped."""
    from blingfire import text_to_sentences

    return [s.strip() for s in text_to_sentences(text).split("\n") if s.strip()]


def pack_passages(sentences: Sequence[str], token_counts: Sequence[int], budget: int) -> list[str]:
    """Consecutive sentences joined by spaces while their token counts fit ``budget``; an overlong sentence
    stands alone."""
    passages: list[str] = []
    current: list[str] = []
    used = 0
    for sentence, count in zip(sentences, token_counts):
        if current and used + count > budget:
            passages.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += count
    if current:
        passages.append(" ".join(current))
    return passages


def document_units(
    documents: Iterator[tuple[int, str]], units: str, *, tokenizer: Any = None, max_len: int = 0
) -> Iterator[tuple[int, str]]:
    """(line number, unit) for each unit of each document: its sentences, or its passages of <= ``max_len``
    tokens (``units="passages"``, counted by the ``tokenizer``)."""
    for number, document in documents:
        sentences = split_sentences(document)
        if units == "sentences" or not sentences:
            for sentence in sentences:
                yield number, sentence
            continue
        counts = [len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]]
        budget = max(1, max_len - tokenizer.num_special_tokens_to_add())
        for passage in pack_passages(sentences, counts, budget):
            yield number, passage
