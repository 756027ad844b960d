"""``smoothcse sweep`` and ``smoothcse report``; ``sweep`` exits with status 1 when any run failed (after running
all the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from smoothcse.cli.common import CONTEXT_SETTINGS, debug_option
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.files import check_output_file
from smoothcse.runlock import hold_folder

EXIT_RUNS_FAILED = 1


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("grid", required=False)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Sweep folder: runs/<name>/ per run and sweep.json. [default: runs/sweep-<grid name>]",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue unfinished runs from their newest checkpoint (else they start again). "
    "Complete runs are always skipped.",
)
@click.option("--overwrite", is_flag=True, help="Run every run again, complete ones included.")
@click.option(
    "--dry-run", is_flag=True, help="List the runs, their folders and what would be done with each; run nothing."
)
@click.option("--model", help="Model for every run (overrides the grid's base recipe and [fixed]).")
@click.option("--data", help="Training corpus for every run.")
@click.option("--max-steps", type=int, help="Steps per run for every run (e.g. a quick reduced sweep).")
@click.option("--device", help="auto | cpu | cuda | cuda:N for every run.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Where tokenised corpora are cached. [default: ~/.cache/smoothcse]",
)
@click.option("--seeds", help="Comma-separated seeds replacing the grid's seed list, e.g. --seeds 42,43.")
@click.option("--max-sentences", type=int, help="Train every run on the corpus's first N sentences (0 = all).")
@click.option(
    "--set",
    "set_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other config override for every run, e.g. --set objective.gs_num=64 (repeatable; not a grid key).",
)
@click.option(
    "--eval",
    "eval_tasks",
    help="Evaluations, comma-separated: sts (always), dev (STS-B dev and SICK trial, to choose settings by), "
    "transfer, retrieval. [default: the grid's eval_tasks]",
)
@click.option(
    "--sts-tasks",
    help="Quick checks only: score these STS tasks (comma-separated, e.g. STSb) instead of all 7; "
    "Avg is then not the papers'.",
)
@click.option(
    "--keep-checkpoints",
    is_flag=True,
    help="Keep each finished run's training checkpoints (by default only the exported model is kept).",
)
@click.option("--train-progress", is_flag=True, help="Show each run's training progress bar.")
@click.option(
    "--report-to",
    "report_to",
    multiple=True,
    help="Experiment trackers for every run trained: none | tensorboard | wandb | mlflow | trackio (repeat the "
    "flag or separate by commas); one tracker run per sweep run, named after its folder, grouped by the sweep's "
    "folder name. [default: none]",
)
@click.option(
    "--jobs",
    "eval_jobs",
    type=int,
    default=-1,
    show_default=True,
    help="Worker processes for the transfer tasks' classifier fits when --eval includes transfer (-1: every "
    "core, 1: serial); the scores do not depend on it.",
)
@click.option(
    "--beir",
    metavar="DIR",
    help="A BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/) for a domain check: retrieval on its queries "
    "is added to the evaluations, and unless --data is given every run trains on its corpus (e.g. the "
    "'domain' grid on your own documents).",
)
@click.option("--list", "list_grids", is_flag=True, help="List the built-in grids and exit.")
@debug_option
def sweep(
    grid: str | None,
    out: str | None,
    resume: bool,
    overwrite: bool,
    dry_run: bool,
    set_items: tuple[str, ...],
    eval_tasks: str | None,
    sts_tasks: str | None,
    keep_checkpoints: bool,
    train_progress: bool,
    report_to: tuple[str, ...],
    eval_jobs: int,
    list_grids: bool,
    seeds: str | None,
    beir: str | None,
    **flags: Any,
) -> None:
    """Train and evaluate every run of GRID (a TOML file or a built-in grid's name).

    Each run is trained into OUT/runs/<name> and evaluated (7 STS tasks, alignment and uniformity, and what
    the grid asks); its result.json holds config, training summary, scores, status and times. The same
    command again skips complete runs and retries the others (--resume continues unfinished ones from their
    checkpoint); exit status 1 if any run failed. Grid format: docs/experiments.md.

    \b
    Examples:
      smoothcse sweep --list
      smoothcse sweep compare-objectives --out runs/compare --model all-MiniLM-L6-v2 --dry-run
      smoothcse sweep quality --out runs/quality --set steps=250 --seeds 42,43
      smoothcse sweep domain --beir my-beir-folder --out runs/domain
      smoothcse report runs/compare --html
    """
    from smoothcse.experiments.grid import grid_description, grid_names, parse_eval_tasks, parse_sts_tasks
    from smoothcse.experiments.sweep import SweepOptions, describe_plan, plan, refuse_invalid, run_sweep
    from smoothcse.training.trackers import check_trackers

    if list_grids:
        click.echo("\n".join(f"{name:<24}  {grid_description(name)}" for name in grid_names()))
        return
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one.")
    spec, overrides = grid_and_overrides(grid, seeds, beir, flags, report_to, set_items)
    options = SweepOptions(
        out=Path(out) if out else Path("runs") / f"sweep-{spec.name}",
        overrides=overrides,
        resume=resume,
        overwrite=overwrite,
        eval_tasks=parse_eval_tasks(eval_tasks, "--eval") if eval_tasks else None,
        sts_tasks=parse_sts_tasks(sts_tasks, "--sts-tasks") if sts_tasks else None,
        keep_checkpoints=keep_checkpoints,
        train_progress=train_progress,
        eval_jobs=eval_jobs,
        echo=lambda line: click.echo(line),
    )
    planned = plan(spec, options)
    refuse_invalid(planned, spec.source)  # every run's settings are settled before any run starts
    check_trackers(dict.fromkeys(name for p in planned if p.config for name in p.config.report_to))
    if dry_run:
        click.echo(
            "\n".join([f"{spec.source}: {len(planned)} runs into {options.out / 'runs'}", *describe_plan(planned)])
        )
        return
    with hold_folder(options.out, what="sweep"):  # one sweep per folder; each run's folder is held by its training
        summary = run_sweep(spec, options)
    click.echo(
        f"{summary.ok} of {summary.total} runs complete ({summary.skipped} skipped as already complete), "
        f"{summary.failed} failed. Results: {options.out}/runs/*/result.json; table: smoothcse report {options.out}"
    )
    if summary.failed:
        raise click.exceptions.Exit(EXIT_RUNS_FAILED)


def grid_and_overrides(
    grid: str | None,
    seeds: str | None,
    beir: str | None,
    flags: dict[str, Any],
    report_to: tuple[str, ...],
    set_items: tuple[str, ...],
) -> tuple[Any, dict[str, Any]]:
    """The grid as the command line changes it (--seeds, --beir) and the checked overrides for every run
    (the flags given, --report-to, --set)."""
    from smoothcse.experiments.grid import load_grid, parse_overrides, parse_set_option, with_beir, with_seeds

    if not grid:
        raise ConfigError(
            "sweep: missing GRID (a grid TOML file or a built-in grid's name; 'smoothcse sweep --list' lists them)."
        )
    spec = load_grid(grid)
    if seeds is not None:
        spec = with_seeds(spec, seeds)
    raw: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if beir is not None:
        spec, corpus = with_beir(spec, beir, raw.get("data_dir"))
        raw.setdefault("data", corpus)
    if report_to:
        raw["report_to"] = list(report_to)
    for item in set_items:
        key, value = parse_set_option(item)
        if key in raw:
            raise ConfigError(f"--set {item}: '{key}' is already given.")
        raw[key] = value
    return spec, parse_overrides(raw, spec)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Markdown file to write (plots go to <stem>_plots/ beside it). [default: DIR/report.md]",
)
@click.option("--html", "html_report", is_flag=True, help="Also write an HTML version next to the markdown file.")
@debug_option
def report(folder: str, out: str | None, html_report: bool) -> None:
    """Tables and plots of a sweep folder: the papers' STS table per method as mean ± std over seeds,
    the difference from SimCSE (paired by seed), alignment and uniformity, and PNG plots.

    Writes DIR/report.md (or --out), report.json with every number, and with --html report.html.
    """
    from smoothcse.experiments.report import write_report

    if out:
        check_output_file(out, "--out")
    try:
        files = write_report(folder, out, html_report)
    except (KeyError, TypeError, AttributeError, ValueError) as err:  # a result file of an unexpected shape
        raise SmoothCSEError(
            f"DIR {folder}: a result.json or sweep.json there is not in the shape a sweep writes "
            f"({type(err).__name__}: {err}); run the sweep again or remove that file (--debug shows where)."
        ) from None
    click.echo(files.table)
    written = [str(files.markdown), str(files.json)] + ([str(files.html)] if files.html else [])
    click.echo(f"\nreport: {', '.join(written)}; plots: {', '.join(p.name for p in files.plots.values()) or 'none'}")
    for key, reason in files.skipped_plots.items():
        click.echo(f"plot {key}: not drawn ({reason})")
