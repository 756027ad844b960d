"""``smoothcse bench``: the command line of :func:`smoothcse.bench.benchmark.run_benchmark`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from smoothcse.bench.benchmark import run_benchmark
from smoothcse.bench.config import BenchConfig
from smoothcse.bench.report import format_markdown
from smoothcse.cli.common import debug_option
from smoothcse.config import COMPILE_MODES
from smoothcse.files import atomic_path, check_output_file

OPTIONS: tuple[tuple[str, Any, str], ...] = (  # flag (its BenchConfig field), click type, help
    ("--model", str, "Hugging Face hub id or local folder (plain HF or sentence-transformers)."),
    ("--data", str, "Corpus, one sentence per line; relative paths also searched in the data directory."),
    ("--steps", int, "Steps per measured block."),
    ("--warmup", int, "Unmeasured steps of each framework before its first block."),
    ("--repeats", int, "Measured blocks per framework, alternating; medians are reported."),
    ("--batch-size", int, "Sentences per step (both frameworks)."),
    ("--max-len", int, "Tokens per sentence (sentence-transformers' max_seq_length)."),
    ("--lr", float, "Learning rate (both frameworks)."),
    (
        "--objective",
        str,
        "smoothcse's objective spec (e.g. simcse+gs); sentence-transformers always runs MultipleNegativesRankingLoss.",
    ),
    (
        "--pooler",
        str,
        "cls | cls_before_pooler | avg | auto (the model folder's own pooling, else cls); the same on both sides.",
    ),
    ("--device", str, "auto | cpu | cuda | cuda:N."),
    (
        "--precision",
        click.Choice(["auto", "fp32", "bf16"]),
        "auto = bf16 autocast on CUDA, fp32 on CPU; both frameworks.",
    ),
    ("--threads", int, "torch intra-op threads (default: torch's own choice). On a shared CPU 1 can beat 2."),
    (
        "--compile-mode",
        click.Choice(COMPILE_MODES),
        "smoothcse side: torch.compile's mode; reduce-overhead adds CUDA graphs on a GPU.",
    ),
    (
        "--rows-per-forward",
        int,
        "smoothcse side: rows per length-sorted forward (0 = auto: 32 on CPU, one forward on GPU).",
    ),
    ("--seed", int, "Seed for the data order, dropout and the Trainer."),
)


def config_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of :data:`OPTIONS`, each defaulting to its :class:`BenchConfig` field."""
    for flag, kind, text in reversed(OPTIONS):
        default = getattr(BenchConfig, flag[2:].replace("-", "_"))
        command = click.option(flag, default=default, show_default=default is not None, type=kind, help=text)(command)
    return command


@click.command("bench")
@config_options
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="smoothcse side: torch.compile the encoder, one static graph per length bucket (multiples of 8).",
)
@click.option(
    "--no-fast-path",
    is_flag=True,
    help="smoothcse side: the plain eager step (one forward padded to the batch's longest, the whole last "
    "layer, batches collated in the loop).",
)
@click.option(
    "--no-st", is_flag=True, help="Time smoothcse alone (no sentence-transformers side, no datasets/accelerate needed)."
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
    outputs = {
        option: check_output_file(path, option)
        for option, path in (("--json", json_file), ("--markdown", markdown_file))
        if path
    }

    def log(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    report = run_benchmark(config, log)
    table = format_markdown(report)
    texts = {"--json": json.dumps(report, indent=2) + "\n", "--markdown": table}
    for option, path in outputs.items():
        with atomic_path(path) as temporary:
            temporary.write_text(texts[option], encoding="utf-8")
    click.echo(table, nl=False)
