"""``smoothcse eval``: evaluate a model as the papers do and print the tables."""

from __future__ import annotations

import time
from typing import Any

import click

from smoothcse.cli.common import debug_option, fail, load_for_eval

EVAL_TASKS = ("sts", "transfer", "retrieval", "all", "dev")


@click.command("eval")
@click.argument("model")
@click.option(
    "--tasks",
    default="sts",
    show_default=True,
    help="sts (7 STS tasks) | transfer (7 SentEval tasks) | retrieval (BEIR) | all | dev (STS-B dev + "
    "SICK-R trial). Comma-separate to combine.",
)
@click.option(
    "--pooler",
    help="cls | cls_before_pooler | avg | avg_first_last | avg_top2 (default: the model's own; "
    "cls for a plain HF model).",
)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data).",
)
@click.option("--retrieval-dir", help="A BEIR folder, or a name under <data-dir>/retrieval. [default: scifact]")
@click.option("--geometry", is_flag=True, help="Also report alignment and uniformity (Wang & Isola 2020) on STS-B.")
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False),
    help="Write every score, with the model and settings, to this JSON file.",
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
    geometry: bool,
    json_file: str | None,
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
    encoder = load_for_eval(model, pooler, device)

    def embed(sentences: list[str], desc: str = "encoding") -> Any:
        return encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True, desc=desc)

    document: dict[str, Any] = {
        "model": model,
        "settings": {
            "tasks": chosen,
            "pooler": encoder.eval_pooler,
            "batch_size": batch_size,
            "device": device,
            "data_dir": str(root),
        },
    }
    failed: list[str] = []
    if "sts" in chosen or "dev" in chosen:
        from smoothcse.evaluation import (
            evaluate_sts,
            evaluate_sts_dev,
            failed_tasks,
            format_sts_details,
            format_sts_table,
        )

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
        fail(f"could not score: {', '.join(failed)} (see the messages above).", 1)
