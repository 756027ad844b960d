"""The ``smoothcse`` command line: train, encode, eval, recipes.

Every user-correctable problem ends in a one-line ``smoothcse: error: ...`` on stderr and exit code 2
(1 for an evaluation that could not score a task, 130 for an interruption); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from smoothcse import __version__
from smoothcse.errors import SmoothCSEError
from smoothcse.config import COMPILE_MODES
from smoothcse.objectives.config import SOFT_WEIGHT_FORMS

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    click.echo(f"smoothcse: error: {message}", err=True)
    sys.exit(code)


class SmoothCSEGroup(click.Group):
    """Turns SmoothCSEError into a clean one-line message (traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except SmoothCSEError as err:
            if debug:
                raise
            from smoothcse.training.loop import TrainingInterrupted

            _fail(str(err), EXIT_INTERRUPTED if isinstance(err, TrainingInterrupted) else EXIT_USER_ERROR)
        except KeyboardInterrupt:
            if debug:
                raise
            _fail("interrupted.", EXIT_INTERRUPTED)


@click.group(cls=SmoothCSEGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="smoothcse")
def main() -> None:
    """Train sentence encoders without labels (SimCSE, GS-InfoNCE, IS-CSE, SoftCSE), evaluate them
    as the papers do, and export them to sentence-transformers."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ------------------------------------------------------------------------------------------ train

TRAIN_FLAGS: dict[str, str] = {
    # CLI parameter name -> TrainConfig field
    "model": "model",
    "data": "data",
    "out": "out",
    "text_column": "text_column",
    "data_dir": "data_dir",
    "cache_dir": "cache_dir",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "max_sentences": "max_sentences",
    "batch_size": "batch_size",
    "mini_batch_size": "mini_batch_size",
    "max_len": "max_len",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup_steps",
    "max_grad_norm": "max_grad_norm",
    "seed": "seed",
    "pooler": "pooler",
    "hidden_dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "device": "device",
    "precision": "precision",
    "eval_every": "eval_every",
    "log_every": "log_every",
    "save_every": "save_every",
    "keep_checkpoints": "keep_checkpoints",
    "max_bad_steps": "max_bad_steps",
    "compile": "compile",
    "fast_path": "fast_path",
    "compile_mode": "compile_mode",
    "rows_per_forward": "rows_per_forward",
    "adam_eps": "adam_eps",
}
OBJECTIVE_FLAGS: dict[str, str] = {
    "objective": "spec",
    "temperature": "temperature",
    "gs_num": "gs_num",
    "gs_std": "gs_std",
    "is_alpha": "is_alpha",
    "is_alpha_schedule": "is_alpha_schedule",
    "is_bank_size": "is_bank_size",
    "is_k": "is_k",
    "soft_direction": "soft_direction",
    "soft_strength": "soft_strength",
    "soft_weight_form": "soft_weight_form",
}


@main.command()
@click.option("--model", help="Hugging Face hub id or local folder (plain HF or sentence-transformers). [default: bert-base-uncased]")
@click.option("--data", help="Corpus: one sentence per line (.txt/.gz/.xz) or a csv/tsv column; relative paths also searched in the data directory. [default: corpus/enwiki2015_1m.txt.xz]")
@click.option("--out", help="Output folder: the exported model, metrics.jsonl, config and checkpoints. [default: runs/smoothcse]")
@click.option("--recipe", help="A built-in recipe (see 'smoothcse recipes'); flags given here override it.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file of the same keys as a recipe; overrides the recipe.")
@click.option("--objective", help="Loss: simcse, or components joined by '+': gs, is, soft-weight, soft-temp (e.g. simcse+gs+is).")
@click.option("--max-steps", type=int, help="Stop after N optimizer steps (0 = all epochs).")
@click.option("--max-sentences", type=int, help="Train on the first N sentences of the corpus (0 = all); reuses the corpus's token cache.")
@click.option("--epochs", type=int, help="Passes over the corpus. [default: 1]")
@click.option("--batch-size", type=int, help="Sentences per step (global, over all processes). [default: 64]")
@click.option("--mini-batch-size", type=int, help="Gradient caching: embed in chunks of this size, same result at constant memory (0 = off).")
@click.option("--max-len", type=int, help="Tokens per training sentence. [default: 32]")
@click.option("--lr", type=float, help="Peak learning rate (linear decay to 0). [default: 3e-5]")
@click.option("--weight-decay", type=float, help="AdamW weight decay. [default: 0]")
@click.option("--warmup-steps", type=int, help="Linear warm-up steps. [default: 0]")
@click.option("--max-grad-norm", type=float, help="Gradient-norm clip (0 = off). [default: 1.0]")
@click.option("--seed", type=int, help="Seed for data order, initialisation, dropout and noise. [default: 42]")
@click.option("--temperature", type=float, help="InfoNCE temperature tau. [default: 0.05]")
@click.option("--gs-num", type=int, help="GS-InfoNCE: Gaussian negatives per step (M). [default: 192]")
@click.option("--gs-std", type=float, help="GS-InfoNCE: noise standard deviation sigma. [default: 0.5]")
@click.option("--is-alpha", type=float, help="IS-CSE: weight alpha of the smoothing term. [default: 0.1]")
@click.option("--is-alpha-schedule", type=click.Choice(["constant", "cos"]), help="IS-CSE: alpha schedule. [default: constant]")
@click.option("--is-bank-size", type=int, help="IS-CSE: memory bank rows. [default: 1024]")
@click.option("--is-k", type=int, help="IS-CSE: neighbours per positive. [default: 16]")
@click.option("--soft-direction", help="SoftCSE: 'up' (push near negatives more, the default) or 'down' (push them less).")
@click.option("--soft-strength", type=float, help="SoftCSE: how strongly weights/temperatures depart from SimCSE (0 = SimCSE).")
@click.option("--soft-weight-form", type=click.Choice(SOFT_WEIGHT_FORMS), help="SoftCSE weight variant: 'exp' (renormalised exp(+-strength s/tau)) or 'linear' (1 - strength (1 -+ s)/2; Dvořák et al.'s (1 - s)/2 at 'down', strength 1). [default: exp]")
@click.option("--pooler", help="cls | cls_before_pooler | avg | avg_first_last | avg_top2 | auto. [default: auto]")
@click.option("--hidden-dropout", type=float, help="Override the model's hidden dropout (the views' noise).")
@click.option("--attention-dropout", type=float, help="Override the model's attention dropout.")
@click.option("--device", help="auto | cpu | cuda | cuda:N. [default: auto]")
@click.option("--precision", help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16.")
@click.option("--eval-every", type=int, help="Score STS-B dev every K steps and keep the best model (0 = off). [default: 125]")
@click.option("--log-every", type=int, help="Write metrics every K steps. [default: 25]")
@click.option("--save-every", type=int, help="Write a resumable checkpoint every K steps (0 = only at the end or on Ctrl-C).")
@click.option("--keep-checkpoints", type=int, help="How many checkpoints to keep. [default: 2]")
@click.option("--max-bad-steps", type=int, help="Stop after this many consecutive non-finite steps. [default: 5]")
@click.option("--compile/--no-compile", "compile", default=None, help="torch.compile the encoder, one static graph per length bucket (multiples of 8). [default: off]")
@click.option("--compile-mode", type=click.Choice(COMPILE_MODES), help="torch.compile mode; reduce-overhead adds CUDA graphs of forward and backward on a GPU (not yet measured). [default: default]")
@click.option("--fast-path/--no-fast-path", "fast_path", default=None, help="Length-sorted forwards with less padding (CPU), the last layer computed for [CLS] alone with the cls poolers, and batches collated ahead in a thread, pinned on GPU; --no-fast-path is the plain eager step. [default: on]")
@click.option("--rows-per-forward", type=int, help="Fast path: encode the 2 x batch rows in length-sorted forwards of this many rows, each cut to its longest sentence (0 = auto: 32 on CPU, one forward on GPU).")
@click.option("--adam-eps", type=float, help="AdamW epsilon. [default: 1e-8]")
@click.option("--text-column", help="Column of a csv/tsv corpus (name or 0-based index).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Where tokenised corpora are cached. [default: ~/.cache/smoothcse]")
@click.option("--overwrite", is_flag=True, help="Replace a model already in --out.")
@click.option("--resume", is_flag=True, help="Continue from the newest valid checkpoint in --out.")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as TOML-like JSON and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def train(
    recipe: str | None, config_file: str | None, overwrite: bool, resume: bool, print_config: bool, quiet: bool,
    debug: bool, **flags: Any,
) -> None:
    """Train an encoder with unsupervised contrastive learning and export it.

    \b
    Examples:
      smoothcse train --recipe demo
      smoothcse train --model bert-base-uncased --data wiki1m_for_simcse.txt --out runs/simcse
      smoothcse train --recipe gs-infonce-bert-base --out runs/gs --seed 1
    """
    from smoothcse.config import build_config
    from smoothcse.training.loop import train as run_training

    overrides: dict[str, Any] = {}
    objective: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None:
            continue
        if name in TRAIN_FLAGS:
            overrides[TRAIN_FLAGS[name]] = value
        elif name in OBJECTIVE_FLAGS:
            objective[OBJECTIVE_FLAGS[name]] = value
    if objective:
        overrides["objective"] = objective
    config = build_config(recipe, config_file, overrides)
    if print_config:
        click.echo(config.to_json())
        return
    result = run_training(config, resume=resume, overwrite=overwrite, progress=not quiet)
    if os.environ.get("RANK", "0") != "0":
        return
    lines = [f"model saved to {result.out_dir}"]
    if result.initial_dev is not None:
        lines.append(f"STS-B dev Spearman before training: {result.initial_dev:.2f}")
    if result.best_dev is not None:
        lines.append(f"STS-B dev Spearman after training:  {result.best_dev:.2f} (best, step {result.best_step})")
    if result.skipped_steps:
        lines.append(f"{result.skipped_steps} steps skipped for non-finite values")
    lines.append(f"{result.steps} steps in {result.seconds:.1f} s")
    click.echo("\n".join(lines))


# ------------------------------------------------------------------------------------------ encode


@main.command()
@click.argument("model")
@click.option("--input", "input_file", required=True, type=click.Path(dir_okay=False), help="Text file, one sentence per line.")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="Where to write the (n, d) float32 .npy array.")
@click.option("--pooler", help="Override the pooler (default: the model's own).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def encode(model: str, input_file: str, output: str, pooler: str | None, batch_size: int, device: str, debug: bool) -> None:
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
    encoder = _load_for_eval(model, pooler, device)
    vectors = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp.npy")
    np.save(temporary, vectors)
    os.replace(temporary, target)
    click.echo(f"{vectors.shape[0]} sentences -> {target} ({vectors.shape[1]} dimensions)")


def _load_for_eval(model: str, pooler: str | None, device: str) -> Any:
    import torch

    from smoothcse.model.encoder import load_encoder

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_encoder(model, pooler=pooler, device=device)


# ------------------------------------------------------------------------------------------ eval

EVAL_TASKS = ("sts", "transfer", "retrieval", "all", "dev")


@main.command("eval")
@click.argument("model")
@click.option("--tasks", default="sts", show_default=True, help="sts (7 STS tasks) | transfer (7 SentEval tasks) | retrieval (BEIR) | all | dev (STS-B dev + SICK-R trial). Comma-separate to combine.")
@click.option("--pooler", help="cls | cls_before_pooler | avg | avg_first_last | avg_top2 (default: the model's own; cls for a plain HF model).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data).")
@click.option("--retrieval-dir", help="A BEIR folder, or a name under <data-dir>/retrieval. [default: scifact]")
@click.option("--geometry", is_flag=True, help="Also report alignment and uniformity (Wang & Isola 2020) on STS-B.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write every score, with the model and settings, to this JSON file.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def evaluate(
    model: str, tasks: str, pooler: str | None, batch_size: int, device: str, data_dir: str | None,
    retrieval_dir: str | None, geometry: bool, json_file: str | None, debug: bool,
) -> None:
    """Evaluate MODEL as the papers do and print the tables.

    MODEL is a smoothcse output, a sentence-transformers folder (its own pooling is used) or any
    Hugging Face model (pooler from --pooler). Exit code 1 if a task could not be scored.
    """
    from smoothcse.datadir import resolve_data_dir
    from smoothcse.errors import ConfigError, closest

    chosen = [t.strip() for t in tasks.split(",") if t.strip()]
    for task in chosen:
        if task not in EVAL_TASKS:
            raise ConfigError(f"--tasks {task!r} is not one of {', '.join(EVAL_TASKS)}.{closest(task, EVAL_TASKS)}")
    if "all" in chosen:
        chosen = ["sts", "transfer", "retrieval"]
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}.")
    root = resolve_data_dir(data_dir)
    started = time.perf_counter()
    encoder = _load_for_eval(model, pooler, device)

    def embed(sentences: list[str], desc: str = "encoding") -> Any:
        return encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True, desc=desc)

    document: dict[str, Any] = {
        "model": model,
        "settings": {"tasks": chosen, "pooler": encoder.eval_pooler, "batch_size": batch_size, "device": device, "data_dir": str(root)},
    }
    failed: list[str] = []
    if "sts" in chosen or "dev" in chosen:
        from smoothcse.evaluation import evaluate_sts, evaluate_sts_dev, failed_tasks, format_sts_details, format_sts_table

        key = "sts" if "sts" in chosen else "sts_dev"
        results = evaluate_sts(embed, root) if key == "sts" else evaluate_sts_dev(embed, root)
        document[key] = results
        failed += failed_tasks(results)
        click.echo(format_sts_table(results))
        click.echo(format_sts_details(results))
    if "transfer" in chosen:
        from smoothcse.evaluation import evaluate_transfer, failed_tasks, format_transfer_table

        results = evaluate_transfer(embed, root, progress=True)
        document["transfer"] = results
        failed += failed_tasks(results)
        click.echo(format_transfer_table(results))
    if "retrieval" in chosen:
        from smoothcse.evaluation.retrieval import evaluate_retrieval, format_retrieval_table

        results = evaluate_retrieval(embed, folder=retrieval_dir, data_dir=root)
        document["retrieval"] = results
        click.echo(format_retrieval_table(results))
    if geometry:
        from smoothcse.experiments.geometry import alignment_uniformity

        document["geometry"] = alignment_uniformity(embed, data_dir=root)
        click.echo(
            f"alignment {document['geometry']['alignment']:.4f}  uniformity {document['geometry']['uniformity']:.4f}"
        )
    document["seconds"] = round(time.perf_counter() - started, 2)
    document["failed"] = failed
    click.echo(f"evaluated in {document['seconds']:.1f} s")
    if json_file:
        from smoothcse.evaluation import write_json

        write_json(json_file, document)
        click.echo(f"scores written to {json_file}")
    if failed:
        _fail(f"could not score: {', '.join(failed)} (see the messages above).", 1)


# ------------------------------------------------------------------------------------------ recipes


@main.command()
@click.argument("name", required=False)
def recipes(name: str | None) -> None:
    """List the built-in recipes, or print one (a TOML file you can copy and edit)."""
    from smoothcse.config import recipe_description, recipe_names, recipe_text

    if name:
        click.echo(recipe_text(name), nl=False)
        return
    names = recipe_names()
    width = max(len(n) for n in names)
    for recipe in names:
        click.echo(f"{recipe:<{width}}  {recipe_description(recipe)}")


def _register_experiments() -> None:
    from smoothcse.bench.benchmark import bench
    from smoothcse.cli.sweep import report, sweep

    main.add_command(sweep)
    main.add_command(report)
    main.add_command(bench)


_register_experiments()

if __name__ == "__main__":  # pragma: no cover
    main()

