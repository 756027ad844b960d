"""``smoothcse encode``: embed the sentences of a text file and save them as a .npy array."""

from __future__ import annotations

import os
from pathlib import Path

import click

from smoothcse.cli.common import debug_option, load_for_eval


@click.command()
@click.argument("model")
@click.option(
    "--input", "input_file", required=True, type=click.Path(dir_okay=False), help="Text file, one sentence per line."
)
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the (n, d) float32 .npy array."
)
@click.option("--pooler", help="Override the pooler (default: the model's own).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default="auto", show_default=True)
@debug_option
def encode(model: str, input_file: str, output: str, pooler: str | None, batch_size: int, device: str) -> None:
    """Embed the sentences of a text file with MODEL and save them as a .npy array."""
    import numpy as np

    from smoothcse.data.corpus import read_text_lines
    from smoothcse.errors import DataError

    path = Path(input_file)
    if not path.is_file():
        raise DataError(f"--input {path}: no such file.")
    sentences = read_text_lines(path)
    if not sentences:
        raise DataError(f"--input {path}: no lines to encode.")
    encoder = load_for_eval(model, pooler, device)
    vectors = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp.npy")
    np.save(temporary, vectors)
    os.replace(temporary, target)
    click.echo(f"{vectors.shape[0]} sentences -> {target} ({vectors.shape[1]} dimensions)")
