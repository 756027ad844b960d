"""Training corpora: read once, tokenise once, cache the token ids on disk, memory-map them.

A corpus is one sentence per line (``.txt``, ``.txt.gz``, ``.txt.xz``) or one column of a
``.csv``/``.tsv`` (optionally ``.gz``/``.xz``). It is read as a stream and tokenised in chunks, so
host memory stays bounded whatever the corpus size; the ids go to a flat int32 file plus an offsets
file, keyed by the corpus content, the tokenizer and ``max_len``. A second run with the same key
memory-maps the cache and starts at once.
"""

from __future__ import annotations

import copy
import csv
import gzip
import hashlib
import json
import lzma
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

from smoothcse.data.cache_check import reusable
from smoothcse.data.documents import JSONL_SUFFIXES, document_units, iter_documents
from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import DataError
from smoothcse.files import staged_folder

CACHE_VERSION = 2
"""Part of every cache key: raise it when the cache's files change (2: documents.npy)."""
DOCUMENT_UNITS_VERSION = 1
"""Part of a JSONL corpus's cache key: raise it when the way documents are cut into units changes."""
CHUNK_LINES = 8192
MAX_CHARS_PER_TOKEN = 64
"""Lines are cut to ``max_len * MAX_CHARS_PER_TOKEN`` characters before tokenising (a 1 MB line costs
nothing); that is far more text than ``max_len`` tokens ever cover."""


def find_corpus(data: str, data_dir: str | None = None) -> Path:
    """Resolve ``--data``: a path as given, else relative to the data directory."""
    path = Path(data).expanduser()
    if path.exists():
        if path.is_dir():
            raise DataError(f"--data {data}: is a directory, not a corpus file.")
        if not path.is_file():  # a pipe is read twice (hash, then tokens): it must be saved first
            raise DataError(f"--data {data}: not a regular file (a pipe or device); save the corpus to a file first.")
        return path
    if not path.is_absolute():
        try:
            root = resolve_data_dir(data_dir)
        except DataError:
            root = None
        if root is not None and (root / data).is_file():
            return root / data
        where = f" or under the data directory {root}" if root is not None else ""
        raise DataError(f"--data {data}: no such file (looked in {Path.cwd()}{where}).")
    raise DataError(f"--data {data}: no such file.")


def document_titles(data: str, data_dir: str | None = None) -> dict[int, str]:
    """``{source line: title}`` of the documents of a JSONL corpus with a non-empty ``title`` (BEIR's field);
    empty for any other corpus. The lines were checked when the token cache was built."""
    path = find_corpus(data, data_dir)
    if _inner_suffix(path) not in JSONL_SUFFIXES:
        return {}
    titles = {}
    for number, line in _decoded_lines(path):
        record = json.loads(line) if line.strip() else None
        title = record.get("title") if isinstance(record, dict) else None
        if isinstance(title, str) and title.strip():
            titles[number] = title.strip()
    return titles


def _open_binary(path: Path) -> IO[bytes]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return path.open("rb")


def _inner_suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in (".gz", ".xz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return Path(name).suffix


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for every line; binary content and bad UTF-8 raise a DataError."""
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                if b"\x00" in raw:
                    raise DataError(
                        f"{path}:{number}: contains NUL bytes; this looks like a binary file, not text "
                        "(expected one UTF-8 sentence per line)."
                    )
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}:{number}: not valid UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                        "convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8."
                    ) from None
    except (OSError, EOFError, lzma.LZMAError) as err:  # a DataError is none of these: it passes through
        raise DataError(f"{path}: cannot read ({err}).") from None


def iter_sentences(
    path: Path,
    text_column: str | None = None,
    *,
    text_field: str | None = None,
    units: str = "sentences",
    tokenizer: Any = None,
    max_len: int = 0,
) -> Iterator[tuple[int, str]]:
    """Yield (line number, training unit) for each non-empty unit of a corpus file: a line of a text file,
    a cell of a csv/tsv column, or a sentence or passage of a JSONL document (:mod:`smoothcse.data.documents`;
    passages need the ``tokenizer`` and ``max_len``)."""
    suffix = _inner_suffix(path)
    if suffix in JSONL_SUFFIXES:
        if text_column is not None:
            raise DataError(f"--text-column {text_column}: for csv/tsv corpora; name a JSONL field with --text-field.")
        documents = iter_documents(path, _decoded_lines(path), text_field)
        yield from document_units(documents, units, tokenizer=tokenizer, max_len=max_len)
        return
    if text_field is not None:
        raise DataError(f"--text-field {text_field}: only for JSONL document corpora, and {path} is not one.")
    if units != "sentences":
        raise DataError(
            f"--units {units}: only for JSONL document corpora; {path} already holds one training unit per line."
        )
    if suffix in (".csv", ".tsv"):
        yield from _iter_table(path, "\t" if suffix == ".tsv" else ",", text_column)
        return
    if text_column is not None:
        raise DataError(f"--text-column {text_column}: only for .csv/.tsv corpora, and {path} is plain text.")
    for number, line in _decoded_lines(path):
        text = line.strip()
        if text:
            yield number, text


def _iter_table(path: Path, delimiter: str, text_column: str | None) -> Iterator[tuple[int, str]]:
    number = 0  # the line the csv reader read last

    def text_lines() -> Iterator[str]:
        nonlocal number
        for line_number, line in _decoded_lines(path):
            number = line_number
            yield line

    reader = csv.reader(text_lines(), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    if text_column is None:
        if len(header) != 1:
            raise DataError(
                f"{path}: has {len(header)} columns ({', '.join(header[:8])}); pass --text-column NAME or index."
            )
        column = 0
    elif text_column in header:
        column = header.index(text_column)
    elif text_column.isdigit() and int(text_column) < len(header):
        column = int(text_column)
    else:
        raise DataError(f"--text-column {text_column}: not a column of {path} (columns: {', '.join(header)}).")
    for row in reader:
        if not row:
            continue
        if column >= len(row):
            raise DataError(f"{path}:{number}: has {len(row)} columns, expected at least {column + 1}.")
        text = row[column].strip()
        if text:
            yield number, text


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of the tokenizer's full definition (vocabulary, normaliser, special tokens)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)  # call-time settings, changed by every tokenizer() call
        definition.pop("padding", None)
        digest.update(json.dumps(definition, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("SMOOTHCSE_CACHE", Path.home() / ".cache" / "smoothcse")) / "corpus"


@dataclass
class CorpusStats:
    sentences: int
    tokens: int
    empty_lines_skipped: int
    truncated: int
    """Sentences that filled ``max_len`` tokens (longer ones were cut there)."""


class TokenizedCorpus:
    """Token ids of every sentence, memory-mapped: ``ids[offsets[i]:offsets[i+1]]`` is sentence i."""

    def __init__(self, folder: Path, pad_token_id: int) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        self.folder = folder
        self.pad_token_id = pad_token_id
        self.max_len = int(meta["max_len"])
        self.source = meta["source"]
        self.stats = CorpusStats(**meta["stats"])
        self.offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        self.ids = (
            np.memmap(folder / "ids.bin", dtype=np.int32, mode="r") if self.stats.tokens else np.zeros(0, np.int32)
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def first(self, count: int) -> TokenizedCorpus:
        """The same cache seen as its first ``count`` sentences (no copy, no re-tokenisation)."""
        if not 0 < count <= len(self):
            raise ValueError(f"count must be in [1, {len(self)}], got {count}.")
        view = copy.copy(self)
        view.offsets = self.offsets[: count + 1]
        return view

    def documents(self) -> np.ndarray:
        """(n,) int64: each unit's document (its source line), equal and consecutive for one document's units."""
        return np.asarray(np.load(self.folder / "documents.npy", mmap_mode="r")[: len(self)])

    def lengths_of(self, indices: np.ndarray) -> np.ndarray:
        """Token counts of the given sentences (n,), without reading their ids."""
        indices = np.asarray(indices, dtype=np.int64)
        return np.asarray(self.offsets[indices + 1] - self.offsets[indices])

    def sentence(self, index: int) -> np.ndarray:
        return np.asarray(self.ids[self.offsets[index] : self.offsets[index + 1]])

    def collate(self, indices: np.ndarray, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (B, T) input ids and attention mask; T = longest sentence, or ``pad_to``."""
        return collate_rows([self.sentence(int(i)) for i in indices], self.pad_token_id, pad_to)

    @classmethod
    def build(
        cls,
        path: Path,
        tokenizer: Any,
        max_len: int,
        *,
        text_column: str | None = None,
        text_field: str | None = None,
        units: str = "sentences",
        cache_dir: str | Path | None = None,
        progress: bool = True,
    ) -> TokenizedCorpus:
        """Tokenise ``path`` (or reuse its cache). Raises DataError for an empty or unreadable corpus."""
        if tokenizer.pad_token_id is None:
            raise DataError("The tokenizer has no padding token; set tokenizer.pad_token before training.")
        parts: list[Any] = [CACHE_VERSION, file_sha256(path), tokenizer_fingerprint(tokenizer), max_len, text_column]
        if _inner_suffix(path) in JSONL_SUFFIXES:  # documents: how they were cut (text files keep their old keys)
            parts += [text_field, units, DOCUMENT_UNITS_VERSION]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        folder = root / key
        if reusable(folder):  # verified, not trusted: a damaged entry is removed and built again
            return cls(folder, tokenizer.pad_token_id)
        units_of_path = iter_sentences(
            path, text_column, text_field=text_field, units=units, tokenizer=tokenizer, max_len=max_len
        )
        _tokenise_to(folder, path, tokenizer, max_len, units_of_path, progress)
        return cls(folder, tokenizer.pad_token_id)


def _tokenise_to(
    folder: Path,
    path: Path,
    tokenizer: Any,
    max_len: int,
    units: Iterator[tuple[int, str]],
    progress: bool,
) -> None:
    """Stream the corpus's (line number, unit) pairs through the tokenizer into a fresh cache folder, renamed
    into place when complete."""
    from tqdm.auto import tqdm

    total = truncated = skipped = sentences = 0
    max_chars = max_len * MAX_CHARS_PER_TOKEN
    last_number = 0
    with staged_folder(folder, finished=lambda: (folder / "meta.json").is_file()) as staging:
        # ids and per-sentence lengths are appended chunk by chunk: memory stays bounded by one chunk
        with (
            (staging / "ids.bin").open("wb") as out,
            (staging / "lengths.bin").open("wb") as lengths_out,
            (staging / "documents.bin").open("wb") as documents_out,
        ):
            chunk: list[str] = []
            numbers: list[int] = []

            def flush() -> None:
                nonlocal total, truncated, sentences
                encoded = tokenizer(chunk, truncation=True, max_length=max_len, add_special_tokens=True)["input_ids"]
                lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int32, count=len(encoded))
                lengths.tofile(lengths_out)
                np.asarray(numbers, dtype=np.int64).tofile(documents_out)
                np.fromiter((t for ids in encoded for t in ids), dtype=np.int32, count=int(lengths.sum())).tofile(out)
                total += int(lengths.sum())
                truncated += int((lengths >= max_len).sum())
                sentences += len(encoded)
                bar.update(len(chunk))
                chunk.clear()
                numbers.clear()

            bar = tqdm(desc=f"tokenising {path.name}", unit=" lines", disable=None if progress else True, leave=False)
            for number, text in units:
                skipped += max(0, number - last_number - 1)  # a document's units share its line number
                last_number = number
                chunk.append(text[:max_chars])
                numbers.append(number)
                if len(chunk) >= CHUNK_LINES:
                    flush()
            if chunk:
                flush()
            bar.close()
        if sentences == 0:
            raise DataError(f"{path}: no sentences (the file is empty or holds only blank lines).")
        lengths_map = np.memmap(staging / "lengths.bin", dtype=np.int32, mode="r")
        offsets = np.lib.format.open_memmap(staging / "offsets.npy", mode="w+", dtype=np.int64, shape=(sentences + 1,))
        offsets[0] = 0
        np.cumsum(lengths_map, dtype=np.int64, out=offsets[1:])
        offsets.flush()
        del offsets, lengths_map
        (staging / "lengths.bin").unlink()
        documents = np.fromfile(staging / "documents.bin", dtype=np.int64)
        np.save(staging / "documents.npy", documents)  # each unit's source line: a document's units share it
        (staging / "documents.bin").unlink()
        del documents
        stats = CorpusStats(sentences=sentences, tokens=total, empty_lines_skipped=skipped, truncated=truncated)
        meta = {"source": str(path), "max_len": max_len, "stats": stats.__dict__}
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))


def collate_rows(
    rows: list[np.ndarray], pad_token_id: int, pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows right-padded into (B, T) input ids and attention mask; T = longest row, or ``pad_to``."""
    width = pad_to or max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for k, row in enumerate(rows):
        ids[k, : len(row)] = row
        mask[k, : len(row)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class BatchSchedule:
    """Which sentences form each global batch: a fresh permutation per epoch from (seed, epoch).

    Deterministic from (seed, epoch, step), so a resumed run continues with exactly the batches the
    interrupted one would have seen. A final batch of fewer than ``min_batch`` sentences is dropped
    (2: it would have no negatives; the trainer passes at least the number of processes, so every
    rank gets a sentence).
    """

    def __init__(self, num_sentences: int, batch_size: int, seed: int, min_batch: int = 2) -> None:
        self.num_sentences = num_sentences
        self.batch_size = batch_size
        self.seed = seed
        full, rest = divmod(num_sentences, batch_size)
        self.steps_per_epoch = full + (1 if rest >= min_batch else 0)
        self._epoch = -1
        self._order = np.zeros(0, dtype=np.int64)

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.num_sentences)
            self._epoch = epoch
        return self._order

    def batch(self, step: int) -> np.ndarray:
        """Sentence indices of global step ``step`` (0-based, counted across epochs)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]


def read_text_lines(path: Path) -> list[str]:
    """Sentences of a plain text file (for ``smoothcse encode``): one per line, blank lines kept as ''."""
    return [line for _, line in _decoded_lines(path)]
