"""``smoothcse eval``: evaluate a model as the papers do and print the tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from smoothcse.cli.common import debug_option, fail
from smoothcse.files import check_output_file


@click.command("eval")
@click.argument("model")
@click.option(
    "--tasks",
    default="sts",
    show_default=True,
    help="Groups: sts (7 STS tasks) | transfer (7 SentEval tasks) | retrieval (BEIR, --retrieval-dir) | all | "
    "dev (STS-B dev + SICK-R trial); or single tasks: STS12..STS16, STSb, SICK-R, MR, CR, SUBJ, MPQA, SST2, TREC, "
    "MRPC, or a dataset under <data-dir>/retrieval (e.g. scifact). Case-insensitive; comma-separate to combine "
    "(e.g. STSb,MR).",
)
@click.option(
    "--pooler",
    help="cls | cls_before_pooler | avg | avg_first_last | avg_top2 (default: the model's own; "
    "cls for a plain HF model).",
)
@click.option(
    "--batch-size", type=int, default=128, show_default=True, help="Sentences per forward pass (sorted by length)."
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data).",
)
@click.option("--retrieval-dir", help="A BEIR folder, or a name under <data-dir>/retrieval. [default: scifact]")
@click.option(
    "--jobs",
    type=int,
    default=-1,
    show_default=True,
    help="Worker processes for the transfer tasks' classifier fits (-1: every core, 1: serial); the scores "
    "do not depend on it.",
)
@click.option("--geometry", is_flag=True, help="Also report alignment and uniformity (Wang & Isola 2020) on STS-B.")
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False),
    help="Write every score, with the model and settings, to this JSON file.",
)
@click.option(
    "--update-card",
    is_flag=True,
    help="Add the test scores to MODEL's model card (its README.md and smoothcse_card.json); MODEL must be a "
    "local folder.",
)
@debug_option
def evaluate(
    model: str,
    tasks: str,
    pooler: str | None,
    batch_size: int,
    device: str,
    data_dir: str | None,
    retrieval_dir: str | None,
    jobs: int,
    geometry: bool,
    json_file: str | None,
    update_card: bool,
) -> None:
    """Evaluate MODEL as the papers do and print the tables.

    MODEL is a smoothcse output, a sentence-transformers folder (its own pooling is used) or any
    Hugging Face model (pooler from --pooler). Exit code 1 if a task could not be scored.
    """
    from smoothcse.datadir import resolve_data_dir
    from smoothcse.errors import ConfigError
    from smoothcse.evaluation import failed_tasks
    from smoothcse.evaluation.run import EvalRequest, encoder_embed, load_for_eval, run_evaluations
    from smoothcse.evaluation.selection import retrieval_datasets, select_tasks
    from smoothcse.evaluation.transfer import check_jobs

    selection = select_tasks(tasks, retrieval_datasets(resolve_data_dir(data_dir, must_exist=False)))
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}.")
    check_jobs(jobs, "--jobs")
    card_folder = local_model_folder(model) if update_card else None
    if json_file:  # every output is checked before the model is loaded
        check_output_file(json_file, "--json")
    if card_folder is not None:
        check_output_file(card_folder / "README.md", "--update-card")
    root = resolve_data_dir(data_dir)
    started = time.perf_counter()
    encoder = load_for_eval(model, pooler, device)
    request = EvalRequest(
        sts=selection.sts,
        dev=selection.dev,
        transfer=selection.transfer,
        retrieval=[retrieval_dir if name is None else name for name in selection.retrieval],
        geometry=geometry,
    )
    embed = encoder_embed(encoder, batch_size, progress=True)
    results = run_evaluations(embed, root, request, n_jobs=jobs, progress=True, show=_show)
    document: dict[str, Any] = {
        "model": model,
        "settings": {
            "tasks": list(selection.names),
            "pooler": encoder.eval_pooler,
            "batch_size": batch_size,
            "jobs": jobs,
            "device": device,
            "data_dir": str(root),
        },
    }
    for key, result in results.items():  # the JSON's names: sts_dev, and one retrieval folder's result alone
        document["sts_dev" if key == "dev" else key] = result[0] if key == "retrieval" and len(result) == 1 else result
    failed = failed_tasks(*(results[key] for key in ("sts", "dev", "transfer") if key in results))
    document["seconds"] = round(time.perf_counter() - started, 2)
    document["failed"] = failed
    click.echo(f"evaluated in {document['seconds']:.1f} s")
    _save(document, json_file, card_folder)
    if failed:
        fail(f"could not score: {', '.join(failed)} (see the messages above).", 1)


def _show(key: str, result: Any) -> None:
    """Print one evaluation's table as it is done."""
    from smoothcse.evaluation import format_sts_details, format_sts_table, format_transfer_table
    from smoothcse.evaluation.retrieval import format_retrieval_table

    if key in ("sts", "dev"):
        click.echo(format_sts_table(result))
        click.echo(format_sts_details(result))
    elif key == "transfer":
        click.echo(format_transfer_table(result))
    elif key == "retrieval":
        click.echo(format_retrieval_table(result))
    else:
        click.echo(f"alignment {result['alignment']:.4f}  uniformity {result['uniformity']:.4f}")


def _save(document: dict[str, Any], json_file: str | None, card_folder: Path | None) -> None:
    """Write the scores to ``--json`` and add them to the model card (``--update-card``)."""
    if json_file:
        from smoothcse.evaluation import write_json

        write_json(json_file, document)
        click.echo(f"scores written to {json_file}")
    if card_folder is not None:
        from smoothcse.model.card import add_scores, eval_card_scores

        scores = eval_card_scores(document)
        add_scores(card_folder, scores, f"smoothcse eval, {time.strftime('%Y-%m-%d')}")
        click.echo(f"{len(scores)} scores added to the model card {card_folder / 'README.md'}")


def local_model_folder(model: str) -> Path:
    """The folder whose card ``--update-card`` updates: a local model folder (a run folder's ``model/``)."""
    from smoothcse.errors import ConfigError
    from smoothcse.model.encoder import PACKAGED_MODELS, resolve_model_path

    folder = Path(resolve_model_path(model))
    if model in PACKAGED_MODELS or not folder.is_dir():
        raise ConfigError(
            f"--update-card: {model} is not a local model folder of yours; copy the model to a folder and "
            "evaluate that folder to give it a card."
        )
    return folder
