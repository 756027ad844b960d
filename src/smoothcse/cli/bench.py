"""``smoothcse bench``: training throughput of smoothcse vs sentence-transformers' Trainer, side by side.

The measurement itself is :func:`smoothcse.bench.benchmark.run_benchmark`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from smoothcse.bench.benchmark import BenchConfig, format_markdown, run_benchmark
from smoothcse.cli.common import debug_option
from smoothcse.config import COMPILE_MODES
from smoothcse.errors import SmoothCSEError


@click.command("bench")
@click.option(
    "--model",
    default=BenchConfig.model,
    show_default=True,
    help="Hugging Face hub id or local folder (plain HF or sentence-transformers).",
)
@click.option(
    "--data",
    default=BenchConfig.data,
    show_default=True,
    help="Corpus, one sentence per line; relative paths also searched in the data directory.",
)
@click.option("--steps", default=BenchConfig.steps, show_default=True, type=int, help="Steps per measured block.")
@click.option(
    "--warmup",
    default=BenchConfig.warmup,
    show_default=True,
    type=int,
    help="Unmeasured steps of each framework before its first block.",
)
@click.option(
    "--repeats",
    default=BenchConfig.repeats,
    show_default=True,
    type=int,
    help="Measured blocks per framework, alternating; medians are reported.",
)
@click.option(
    "--batch-size",
    default=BenchConfig.batch_size,
    show_default=True,
    type=int,
    help="Sentences per step (both frameworks).",
)
@click.option(
    "--max-len",
    default=BenchConfig.max_len,
    show_default=True,
    type=int,
    help="Tokens per sentence (sentence-transformers' max_seq_length).",
)
@click.option("--lr", default=BenchConfig.lr, show_default=True, type=float, help="Learning rate (both frameworks).")
@click.option(
    "--objective",
    default=BenchConfig.objective,
    show_default=True,
    help="smoothcse's objective spec (e.g. simcse+gs); sentence-transformers always runs MultipleNegativesRankingLoss.",
)
@click.option(
    "--pooler",
    default=BenchConfig.pooler,
    show_default=True,
    help="cls | cls_before_pooler | avg | auto (the model folder's own pooling, else cls); the same on both sides.",
)
@click.option("--device", default=BenchConfig.device, show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option(
    "--precision",
    default=BenchConfig.precision,
    show_default=True,
    type=click.Choice(["auto", "fp32", "bf16"]),
    help="auto = bf16 autocast on CUDA, fp32 on CPU; both frameworks.",
)
@click.option(
    "--threads", type=int, help="torch intra-op threads (default: torch's own choice). On a shared CPU 1 can beat 2."
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="smoothcse side: torch.compile the encoder, one static graph per length bucket (multiples of 8).",
)
@click.option(
    "--compile-mode",
    default=BenchConfig.compile_mode,
    show_default=True,
    type=click.Choice(COMPILE_MODES),
    help="smoothcse side: torch.compile's mode; reduce-overhead adds CUDA graphs on a GPU.",
)
@click.option(
    "--no-fast-path",
    is_flag=True,
    help="smoothcse side: the plain eager step (one forward padded to the batch's longest, the whole last "
    "layer, batches collated in the loop).",
)
@click.option(
    "--rows-per-forward",
    default=BenchConfig.rows_per_forward,
    show_default=True,
    type=int,
    help="smoothcse side: rows per length-sorted forward (0 = auto: 32 on CPU, one forward on GPU).",
)
@click.option(
    "--no-st", is_flag=True, help="Time smoothcse alone (no sentence-transformers side, no datasets/accelerate needed)."
)
@click.option(
    "--seed",
    default=BenchConfig.seed,
    show_default=True,
    type=int,
    help="Seed for the data order, dropout and the Trainer.",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Data directory (else $SMOOTHCSE_DATA, else ../shared/data)."
)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where tokenised corpora are cached.")
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False),
    help="Write the full report (per-block timings, environment) as JSON.",
)
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), help="Write the table as markdown.")
@click.option("--quiet", is_flag=True, help="Print only the table.")
@debug_option
def bench(
    json_file: str | None,
    markdown_file: str | None,
    quiet: bool,
    compile_: bool,
    no_st: bool,
    no_fast_path: bool,
    **options: Any,
) -> None:
    """Training throughput of smoothcse vs sentence-transformers' Trainer, side by side.

    Trains --steps steps of smoothcse's own step (pre-tokenised corpus, contrastive_step, clip,
    fused AdamW) and of SentenceTransformerTrainer + MultipleNegativesRankingLoss on (s, s) pairs of
    the same sentences, same weights, pooling, batch, length, lr and precision, alternating blocks in
    one process. Prints steps/s, sentences/s, MFU, peak memory and the ratio.

    \b
    Examples:
      smoothcse bench --threads 1 --json bench.json --markdown bench.md
      smoothcse bench --model bert-base-uncased --device cuda --steps 50 --repeats 5
    """
    config = BenchConfig(compile=compile_, sentence_transformers=not no_st, fast_path=not no_fast_path, **options)

    def log(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    report = run_benchmark(config, log)
    table = format_markdown(report)
    if json_file:
        _write_text(Path(json_file), json.dumps(report, indent=2) + "\n")
    if markdown_file:
        _write_text(Path(markdown_file), table)
    click.echo(table, nl=False)


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise SmoothCSEError(f"{path}: cannot write ({err.strerror}).") from None
