"""``smoothcse encode``: embed the sentences of a text file and save them as .npy, .jsonl or .parquet.

The output file's suffix picks the format (docs/ecosystem.md). Every format is written to a temporary file
beside the output and renamed over it at the end: an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from smoothcse.cli.common import debug_option
from smoothcse.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


def write_npy(path: Path, sentences: list[str], vectors: np.ndarray) -> None:
    """The (n, d) float32 array (``numpy.load`` reads it)."""
    import numpy as np

    with path.open("wb") as handle:
        np.save(handle, vectors)


def write_jsonl(path: Path, sentences: list[str], vectors: np.ndarray) -> None:
    """One ``{"text": ..., "embedding": [...]}`` object per line, UTF-8."""
    with path.open("w", encoding="utf-8") as handle:
        for text, vector in zip(sentences, vectors):
            handle.write(json.dumps({"text": text, "embedding": vector.tolist()}, ensure_ascii=False) + "\n")


def write_parquet(path: Path, sentences: list[str], vectors: np.ndarray) -> None:
    """Columns ``text`` (string) and ``embedding`` (list<float32>)."""
    import numpy as np

    pa, pq = import_pyarrow()
    n, d = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    embedding = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), type=pa.float32()))
    table = pa.table({"text": pa.array(sentences, type=pa.string()), "embedding": embedding})
    pq.write_table(table, path)


#: Output suffix -> writer(path, sentences, vectors).
FORMATS: dict[str, Callable[[Path, list[str], np.ndarray], None]] = {
    ".npy": write_npy,
    ".jsonl": write_jsonl,
    ".parquet": write_parquet,
}


def import_pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or a ConfigError naming the extra that installs them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "--output *.parquet needs pyarrow: pip install 'smoothcse[parquet]' (or write .npy or .jsonl)."
        ) from None
    return pa, pq


def output_writer(output: str) -> Callable[[Path, list[str], np.ndarray], None]:
    """The writer for ``--output``'s suffix (checked before any model is loaded), or a ConfigError."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"--output {output}: unknown suffix {suffix or '(none)'!r}; the format follows the suffix, one of "
            f"{', '.join(FORMATS)}."
        )
    if suffix == ".parquet":
        import_pyarrow()
    return FORMATS[suffix]


@click.command()
@click.argument("model")
@click.option(
    "--input", "input_file", required=True, type=click.Path(dir_okay=False), help="Text file, one sentence per line."
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help='Where to write; the suffix picks the format: .npy ((n, d) float32 array), .jsonl ({"text", '
    '"embedding"} per line) or .parquet (text, embedding columns; needs smoothcse[parquet]).',
)
@click.option("--pooler", help="Override the pooler (default: the model's own).")
@click.option(
    "--batch-size", type=int, default=128, show_default=True, help="Sentences per forward pass (sorted by length)."
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--normalize", is_flag=True, help="Scale every embedding to unit L2 norm (dot product = cosine).")
@debug_option
def encode(
    model: str, input_file: str, output: str, pooler: str | None, batch_size: int, device: str, normalize: bool
) -> None:
    """Embed the sentences of a text file with MODEL (one per line) and save them as .npy, .jsonl or .parquet."""
    from smoothcse.data.corpus import read_text_lines
    from smoothcse.errors import DataError
    from smoothcse.evaluation.run import load_for_eval
    from smoothcse.files import atomic_path, check_output_file

    write = output_writer(output)
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}.")
    path = Path(input_file)
    if not path.exists() or path.is_dir():  # a pipe (--input <(...)) is read like a file
        raise DataError(f"--input {path}: no such file.")
    sentences = read_text_lines(path)
    if not sentences:
        raise DataError(f"--input {path}: no lines to encode.")
    check_output_file(output, "--output")  # before the model is loaded and the sentences encoded
    encoder = load_for_eval(model, pooler, device)
    vectors = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True)
    if normalize:
        from smoothcse.evaluation.retrieval.searching import normalize_rows

        vectors = normalize_rows(vectors)
    target = Path(output)
    with atomic_path(target) as temporary:
        write(temporary, sentences, vectors)
    note = ", L2-normalised" if normalize else ""
    click.echo(f"{vectors.shape[0]} sentences -> {target} ({vectors.shape[1]} dimensions{note})")
