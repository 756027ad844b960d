"""BEIR folders: reading ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv``, with checks.

Only the queries that have qrels in the split are kept (as BEIR's ``GenericDataLoader`` does); every qrels
id must exist in the corpus and the queries. Problems raise :class:`~smoothcse.errors.DataError` naming the
file and line.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import DataError, closest

Qrels = dict[str, dict[str, int]]

DEFAULT_DATASET = "scifact"
RETRIEVAL_SUBDIR = "retrieval"
BEIR_HINT = (
    "A BEIR folder holds corpus.jsonl (or corpus.jsonl.gz), queries.jsonl and qrels/<split>.tsv; "
    "BEIR's sets are at https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/<name>.zip "
    "(unzip it and point --retrieval-dir at the folder). The default is <data dir>/retrieval/scifact "
    "(--data-dir or $SMOOTHCSE_DATA)."
)


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR folder: the whole corpus, the queries that have qrels, and the qrels."""

    name: str
    folder: Path
    split: str
    corpus_ids: list[str]
    titles: list[str]
    texts: list[str]
    query_ids: list[str]
    """Queries with at least one qrels row in the split, in qrels order (as BEIR's loader keeps them)."""
    queries: list[str]
    qrels: Qrels
    qrels_rows: int
    corpus_file: Path = field(repr=False)

    def documents(self, sep: str = " ") -> list[str]:
        """Document texts as BEIR's SentenceBERT joins them: ``(title + sep + text).strip()``."""
        return [(title + sep + text).strip() for title, text in zip(self.titles, self.texts)]

    def counts(self) -> dict[str, int]:
        """Sizes for reports: documents, queries, qrels rows, relevant pairs, queries without relevant."""
        relevant = sum(1 for rels in self.qrels.values() for rel in rels.values() if rel >= 1)
        no_relevant = sum(1 for rels in self.qrels.values() if not any(rel >= 1 for rel in rels.values()))
        return {
            "documents": len(self.corpus_ids),
            "queries": len(self.query_ids),
            "qrels_rows": self.qrels_rows,
            "relevant_pairs": relevant,
            "queries_without_relevant": no_relevant,
        }


def _open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) of a plain or gzipped UTF-8 file; DataError on a broken gzip or bad UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid UTF-8 ({exc.reason}).") from exc
                yield number, line
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"Cannot read {path}: {exc}. {BEIR_HINT}") from exc


def _string_field(record: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    """A string field of a jsonl record; ids may be JSON numbers (BEIR ids are compared as strings)."""
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: the record has no '{key}' field.")
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type(value).__name__}.")
    return value


def read_jsonl(path: Path, fields: Sequence[str], optional: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """Read ``_id`` plus ``fields`` (then ``optional``) from each non-blank line of a BEIR jsonl file; DataError with
    ``file:line`` on malformed JSON, a non-object line, a missing/ill-typed field, or a duplicate ``_id``."""
    rows: list[tuple[str, ...]] = []
    first_line: dict[str, int] = {}
    for number, line in _open_lines(path):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON line ({exc.msg} at column {exc.colno}).") from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}.")
        doc_id = _string_field(record, "_id", where, required=True)
        if doc_id in first_line:
            raise DataError(f"{where}: duplicate _id '{doc_id}' (first on line {first_line[doc_id]}).")
        first_line[doc_id] = number
        values = [_string_field(record, key, where, required=True) for key in fields]
        values += [_string_field(record, key, where, required=False) for key in optional]
        rows.append((doc_id, *values))
    return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_qrels(path: Path) -> tuple[Qrels, dict[tuple[str, str], int], int]:
    """Read a qrels tsv: (qrels, line number of each (query, doc) pair, number of data rows). The first line is
    skipped when it is a header (its third field is not an integer; BEIR always skips it). A repeated (query, doc)
    pair keeps the last score, as BEIR's dict does."""
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    rows = 0
    for number, text in _open_lines(path):
        where = f"{path}:{number}"
        line = text.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if number == 1 and (len(parts) < 3 or not _is_int(parts[2].strip())):
            continue  # header "query-id corpus-id score"
        if len(parts) < 3:
            raise DataError(f"{where}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}.")
        query_id, doc_id, score = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if not _is_int(score):
            raise DataError(f"{where}: relevance score {score!r} is not an integer.")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
        lines[(query_id, doc_id)] = number
        rows += 1
    return qrels, lines, rows


def _corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder} has neither corpus.jsonl nor corpus.jsonl.gz. {BEIR_HINT}")


def _qrels_file(folder: Path, split: str) -> Path:
    path = folder / "qrels" / f"{split}.tsv"
    if path.is_file():
        return path
    splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
    have = f" Available splits: {', '.join(splits)}." if splits else ""
    raise DataError(f"Missing qrels file {path} for split '{split}'.{closest(split, splits)}{have} {BEIR_HINT}")


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Load one split of a BEIR folder, checking that every qrels id exists in the corpus and queries."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"Retrieval folder {root} does not exist. {BEIR_HINT}")
    corpus_path = _corpus_file(root)
    queries_path = root / "queries.jsonl"
    if not queries_path.is_file():
        raise DataError(f"Missing {queries_path}. {BEIR_HINT}")
    qrels_path = _qrels_file(root, split)

    qrels, qrels_lines, qrels_rows = read_qrels(qrels_path)
    if not qrels:
        raise DataError(f"{qrels_path} has no relevance judgments: the '{split}' split is empty.")
    corpus = read_jsonl(corpus_path, ["text"], optional=["title"])
    query_rows = read_jsonl(queries_path, ["text"])
    query_text = {qid: text for qid, text in query_rows}
    doc_ids = {row[0] for row in corpus}
    for (query_id, doc_id), number in qrels_lines.items():
        if query_id not in query_text:
            raise DataError(f"{qrels_path}:{number}: query id '{query_id}' is not in {queries_path}.")
        if doc_id not in doc_ids:
            raise DataError(f"{qrels_path}:{number}: corpus id '{doc_id}' is not in {corpus_path}.")
    return BeirDataset(
        name=root.resolve().name,
        folder=root.resolve(),
        split=split,
        corpus_ids=[row[0] for row in corpus],
        texts=[row[1] for row in corpus],
        titles=[row[2] for row in corpus],
        query_ids=list(qrels),
        queries=[query_text[qid] for qid in qrels],
        qrels=qrels,
        qrels_rows=qrels_rows,
        corpus_file=corpus_path,
    )


def resolve_retrieval_folder(
    folder: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The BEIR folder to evaluate: ``folder`` if it exists, else ``<data dir>/retrieval/<folder>``; with no folder,
    ``<data dir>/retrieval/scifact``."""
    if folder is not None:
        path = Path(folder).expanduser()
        if path.is_dir():
            return path.resolve()
        if not path.is_absolute():
            candidate = resolve_data_dir(data_dir, must_exist=False) / RETRIEVAL_SUBDIR / path
            if candidate.is_dir():
                return candidate.resolve()
        raise DataError(f"Retrieval folder {path} does not exist. {BEIR_HINT}")
    path = resolve_data_dir(data_dir) / RETRIEVAL_SUBDIR / DEFAULT_DATASET
    if not path.is_dir():
        raise DataError(f"The default retrieval set {path} is missing. {BEIR_HINT}")
    return path
