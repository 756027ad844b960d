"""``smoothcse train``: its options are :class:`~smoothcse.config.TrainConfig`'s fields.

Each field becomes ``--kebab-name`` (a bool ``--name/--no-name``) with the field's type and default, and
help from the field's ``metadata["help"]`` or its attribute docstring; the ``objective`` field's
:class:`~smoothcse.objectives.ObjectiveConfig` fields become options of their own (``spec`` is
``--objective``). A few settings are left to recipes and config files (:data:`FILE_ONLY`).

Precedence: defaults < ``--recipe`` < ``--config`` < the flags given on the command line; a flag not
given leaves the recipe's or the file's value alone.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import os
import textwrap
import typing
from collections.abc import Callable, Iterator
from typing import Any

import click
from click.core import ParameterSource

from smoothcse.cli.common import debug_option
from smoothcse.config import COMPILE_MODES, TrainConfig
from smoothcse.config_checks import value_type
from smoothcse.objectives.config import ALPHA_SCHEDULES, SOFT_WEIGHT_FORMS

FILE_ONLY = frozenset(
    "mlp_only_train eval_batch_size objective.is_scale objective.is_alpha_start objective.is_alpha_end "
    "objective.soft_tau_min objective.soft_tau_max objective.seed".split()
)
"""Settings without a flag: only a recipe or a ``--config`` file sets them."""

FLAG_NAMES = {"objective.spec": "objective"}
"""Flags not named after their field (the others: the field's name, '_' -> '-')."""

CLICK_TYPES: dict[str, click.ParamType[Any]] = {
    "data_dir": click.Path(file_okay=False),
    "cache_dir": click.Path(file_okay=False),
    "compile_mode": click.Choice(COMPILE_MODES),
    "objective.is_alpha_schedule": click.Choice(ALPHA_SCHEDULES),
    "objective.soft_weight_form": click.Choice(SOFT_WEIGHT_FORMS),
}
"""Settings checked by click as they are parsed (the others are checked by ``TrainConfig.validate``)."""


class ConfigOption(click.Option):
    """An option that sets one config key (``"lr"``, ``"objective.temperature"``) when given."""

    def __init__(self, *args: Any, key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a class's attributes, whitespace collapsed ({} without the source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def config_options(cls: type = TrainConfig, prefix: str = "") -> Iterator[tuple[list[str], dict[str, Any]]]:
    """``click.option`` arguments for each field of ``cls`` not in :data:`FILE_ONLY`, nested dataclasses
    expanded, in field order."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    for spec in dataclasses.fields(cls):
        key = prefix + spec.name
        if key in FILE_ONLY:
            continue
        kind = value_type(hints[spec.name])
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            yield from config_options(kind, f"{key}.")
            continue
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        flag = FLAG_NAMES.get(key, spec.name).replace("_", "-")
        settings: dict[str, Any] = {
            "cls": ConfigOption,
            "key": key,
            "default": default,
            "show_default": True,
            "help": spec.metadata.get("help") or docs.get(spec.name, ""),
        }
        if kind is bool:
            yield [f"--{flag}/--no-{flag}", flag.replace("-", "_")], settings
        elif typing.get_origin(kind) is list:  # repeatable; the config parses the items (e.g. comma-separated)
            (item,) = typing.get_args(kind)
            show = ", ".join(map(str, default)) if isinstance(default, list) and default else "none"
            yield (
                [f"--{flag}", flag.replace("-", "_")],
                {**settings, "multiple": True, "type": item, "show_default": show},
            )
        else:
            yield [f"--{flag}", flag.replace("-", "_")], {**settings, "type": CLICK_TYPES.get(key, kind)}


def with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command`` with the options of :func:`config_options`, in field order (flags checked unique)."""
    options = list(config_options())
    names = [decls[-1] for decls, _ in options]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuntimeError(f"two config settings share the flag of {', '.join(duplicates)}; name one in FLAG_NAMES.")
    for decls, settings in reversed(options):  # decorators apply bottom-up
        command = click.option(*decls, **settings)(command)
    return command


def given_settings(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The config keys set by flags on the command line, nested as in a config file (``{"objective": {...}}``)."""
    settings: dict[str, Any] = {}
    for param in ctx.command.params:
        if not isinstance(param, ConfigOption) or param.name not in values:
            continue
        if ctx.get_parameter_source(param.name) in (None, ParameterSource.DEFAULT):
            continue
        parent, _, leaf = param.key.rpartition(".")
        (settings.setdefault(parent, {}) if parent else settings)[leaf] = values[param.name]
    return settings


@click.command()
@click.option("--recipe", help="A built-in recipe (see 'smoothcse recipes'); flags given here override it.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="A TOML file of the same keys as a recipe; overrides the recipe.",
)
@with_config_options
@click.option("--overwrite", is_flag=True, help="Replace a model already in --out.")
@click.option("--resume", is_flag=True, help="Continue from the newest valid checkpoint in --out.")
@click.option(
    "--print-config", is_flag=True, help="Print the resolved configuration as TOML (what --config reads) and exit."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@debug_option
@click.pass_context
def train(
    ctx: click.Context,
    /,
    recipe: str | None,
    config_file: str | None,
    overwrite: bool,
    resume: bool,
    print_config: bool,
    quiet: bool,
    **values: Any,
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

    config = build_config(recipe, config_file, given_settings(ctx, values))
    if print_config:
        click.echo(config.to_toml(), nl=False)
        return
    if overwrite and config_file:  # the other inputs are checked by the run, before it deletes anything
        from pathlib import Path

        from smoothcse.training.outdir import refuse_overwritten_inputs

        refuse_overwritten_inputs(Path(config.out), {"--config": config_file})
    result = run_training(config, resume=resume, overwrite=overwrite, progress=not quiet)
    if os.environ.get("RANK", "0") != "0":
        return
    lines = [f"model saved to {result.model_dir} (checkpoints and metrics in {result.out_dir})"]
    if result.initial_dev is not None:
        lines.append(f"STS-B dev Spearman before training: {result.initial_dev:.2f}")
    if result.best_dev is not None:
        lines.append(f"STS-B dev Spearman after training:  {result.best_dev:.2f} (best, step {result.best_step})")
    if result.skipped_steps:
        lines.append(f"{result.skipped_steps} steps skipped for non-finite values")
    lines.append(f"{result.steps} steps in {result.seconds:.1f} s")
    click.echo("\n".join(lines))
