"""Grid files: what a sweep runs. Parsing and checking a grid, its runs (the cartesian product of its axes,
or of its **arms**: tables of settings that go together), their names, and each run's configuration
(defaults < base recipe < ``[fixed]`` < the run's grid values < command-line overrides, :func:`run_config`).
The grid format: docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig, apply_overrides, build_config, load_toml
from smoothcse.errors import ConfigError, closest
from smoothcse.experiments.st_simcse import ARM as ST_ARM  # its config is SimCSE's, trained by sentence-transformers
from smoothcse.experiments.st_tsdae import ARM as TSDAE_ARM  # the same, its objective settings unused
from smoothcse.objectives import ObjectiveConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GRID_FILE_KEYS: tuple[str, ...] = (
    "description",
    "base_recipe",
    "fixed",
    "grid",
    "eval_tasks",
    "sts_tasks",
    "retrieval_folder",
    "retrieval_splits",
)
EVAL_TASKS: tuple[str, ...] = ("sts", "dev", "transfer", "retrieval")
"""``dev`` scores the saved model on the STS-B dev and SICK trial sets: the sets to choose settings by."""
ST_ARMS: tuple[str, ...] = (ST_ARM, TSDAE_ARM)
"""Values of ``objective.spec`` that select a sentence-transformers arm (trained by its Trainer)."""
RESERVED_KEYS: tuple[str, ...] = ("out",)
"""Config fields a grid may not set: the sweep decides where each run goes."""
MAX_NAME = 150
BASE_ARM = "base"
"""The value of ``objective.spec`` in a grid that selects the starting model itself, evaluated without training
(the reference row of a domain sweep)."""
SPECIAL_ARMS: tuple[str, ...] = (*ST_ARMS, BASE_ARM)
"""Arms that are not smoothcse objectives: their configuration is SimCSE's, run by another framework or not run."""
STEPS_KEY = "steps"
"""A shorthand a grid or ``--set`` may use: ``steps = N`` is one epoch of exactly N batches over the
corpus's first N × batch_size sentences (``max_steps = N``, ``max_sentences = N × batch_size``)."""


@dataclass
class Grid:
    """A parsed grid file. ``axes`` maps canonical keys (``seed``, ``objective.spec``) to their values."""

    name: str
    source: str
    description: str = ""
    base_recipe: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    eval_tasks: tuple[str, ...] = ("sts",)
    sts_tasks: tuple[str, ...] | None = None
    retrieval_folder: str | None = None
    """The BEIR folder the ``retrieval`` evaluation scores (a path, or a name under <data dir>/retrieval;
    unset: scifact)."""
    retrieval_splits: tuple[str, ...] = ("test",)
    """Its qrels splits, scored from one encoding of the corpus; the last is the one the report headlines."""

    def to_dict(self) -> dict[str, Any]:
        """The grid as ``sweep.json`` records it (its axes under ``grid``)."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "base_recipe": self.base_recipe,
            "fixed": self.fixed,
            "grid": self.axes,
            "eval_tasks": list(self.eval_tasks),
            "sts_tasks": list(self.sts_tasks) if self.sts_tasks else None,
            "retrieval_folder": self.retrieval_folder,
            "retrieval_splits": list(self.retrieval_splits),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Grid:
        """The inverse of :meth:`to_dict` (as read back from ``sweep.json``; nothing is checked)."""
        sts_tasks = record.get("sts_tasks")
        return cls(
            name=str(record.get("name") or ""),
            source=str(record.get("source") or ""),
            description=str(record.get("description") or ""),
            base_recipe=record.get("base_recipe"),
            fixed=dict(record.get("fixed") or {}),
            axes={k: list(v) for k, v in (record.get("grid") or {}).items()},
            eval_tasks=tuple(record.get("eval_tasks") or ("sts",)),
            sts_tasks=tuple(sts_tasks) if sts_tasks else None,
            retrieval_folder=record.get("retrieval_folder"),
            retrieval_splits=tuple(record.get("retrieval_splits") or ("test",)),
        )


def grid_names() -> list[str]:
    """Names of the built-in grids (TOML files in ``smoothcse/grids``)."""
    folder = resources.files("smoothcse") / "grids"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _builtin(name: str) -> dict[str, Any]:
    text = (resources.files("smoothcse") / "grids" / f"{name}.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text))


def grid_description(name: str) -> str:
    return str(_builtin(name).get("description", ""))


def load_grid(path_or_name: str | os.PathLike[str]) -> Grid:
    """Read a grid from a TOML path, or from a built-in grid's name; check its structure.

    Raises :class:`ConfigError` for a missing file, an unknown key (with a suggestion), an empty grid, a
    key both fixed and varied, or a value of the wrong kind. Values that only fail when a run's config is
    validated (say, ``batch_size = 1``) are not errors here: that run is recorded as failed.
    """
    text = str(path_or_name)
    path = Path(text).expanduser()
    if path.is_file():
        return parse_grid(load_toml(path), name=path.stem, source=str(path))
    names = grid_names()
    if text in names:
        return parse_grid(_builtin(text), name=text, source=f"built-in grid {text}")
    hint = closest(text, names)
    builtin = f" Built-in grids: {', '.join(names)}." if names else ""
    raise ConfigError(f"GRID {text}: no such file, and not a built-in grid.{hint}{builtin}")


def valid_keys() -> list[str]:
    """Every key a grid may vary or a command line may set: TrainConfig fields and ``objective.<field>``."""
    top = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "objective" and f.name not in RESERVED_KEYS]
    return top + [STEPS_KEY] + [f"objective.{f.name}" for f in dataclasses.fields(ObjectiveConfig)]


def check_steps(flat: dict[str, Any], source: str) -> None:
    """``steps`` sets max_steps and max_sentences, so it may not come together with either of them."""
    given = [k for k in ("max_steps", "max_sentences") if k in flat]
    if STEPS_KEY in flat and given:
        raise ConfigError(
            f"{source}: '{STEPS_KEY}' and {', '.join(given)} are both set; '{STEPS_KEY}' sets both "
            "max_steps and max_sentences, so give one or the other."
        )


def check_values(flat: dict[str, Any], source: str) -> None:
    """Type-check flat settings against TrainConfig (``steps`` and the sentence-transformers arms understood)."""
    steps = flat.get(STEPS_KEY)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise ConfigError(f"{source}: '{STEPS_KEY}' must be a positive integer (steps of one epoch), got {steps!r}.")
    check_steps(flat, source)
    rest = {k: v for k, v in flat.items() if k != STEPS_KEY}
    if rest.get("objective.spec") in SPECIAL_ARMS:
        rest["objective.spec"] = "simcse"
    apply_overrides(TrainConfig(), nested(rest), source=source)


def canonical_key(key: str, source: str) -> str:
    """``objective`` -> ``objective.spec``; check that ``key`` names a config field."""
    key = key.strip()
    if key == "objective":
        key = "objective.spec"
    if key in RESERVED_KEYS:
        raise ConfigError(
            f"{source}: '{key}' cannot be set in a sweep; each run goes to <out>/runs/<name> (use --out)."
        )
    keys = valid_keys()
    if key not in keys:
        raise ConfigError(
            f"{source}: unknown key '{key}'.{closest(key, keys)} Keys are TrainConfig fields (see 'smoothcse train "
            "--help') or 'objective.<field>'."
        )
    return key


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"objective.spec": v, "seed": 1}`` -> ``{"objective": {"spec": v}, "seed": 1}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("objective."):
            out.setdefault("objective", {})[key[len("objective.") :]] = value
        else:
            out[key] = value
    return out


def flatten(values: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`nested`; an ``objective = "spec"`` string becomes ``objective.spec``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "objective" and isinstance(value, dict):
            out.update({f"objective.{k}": v for k, v in value.items()})
        elif key == "objective":
            out["objective.spec"] = value
        else:
            out[key] = value
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def parse_grid(values: dict[str, Any], *, name: str, source: str) -> Grid:
    """Check and normalise the contents of a grid file (see the module docstring for the format)."""
    for key in values:
        if key not in GRID_FILE_KEYS:
            raise ConfigError(
                f"{source}: unknown top-level key '{key}'.{closest(key, GRID_FILE_KEYS)} "
                f"Valid keys: {', '.join(GRID_FILE_KEYS)}."
            )
    base = values.get("base_recipe")
    if base is not None:
        from smoothcse.config import load_recipe

        if not isinstance(base, str):
            raise ConfigError(f"{source}: 'base_recipe' must be a recipe name (a string), got {base!r}.")
        load_recipe(base)  # raises with a suggestion for an unknown name
    fixed_table = values.get("fixed", {})
    if not isinstance(fixed_table, dict):
        raise ConfigError(f"{source}: [fixed] must be a table of config overrides.")
    fixed = {canonical_key(k, f"{source} [fixed]"): v for k, v in flatten(fixed_table).items()}
    check_values(fixed, f"{source} [fixed]")  # unknown keys, wrong types

    table = values.get("grid")
    if not isinstance(table, dict) or not table:
        raise ConfigError(
            f"{source}: the [grid] table is missing or empty; list at least one key with the values "
            "to sweep, e.g. seed = [42, 43, 44] (a single run is 'smoothcse train')."
        )
    axes: dict[str, list[Any]] = {}
    for raw, options in flatten(table).items():
        if isinstance(options, list) and _is_arms(options):
            axes[raw] = parse_arms(raw, options, fixed, source)
            continue
        key = canonical_key(raw, f"{source} [grid]")
        if key in axes:
            raise ConfigError(f"{source} [grid]: '{key}' is given twice.")
        if key in fixed:
            raise ConfigError(f"{source}: '{key}' is both in [fixed] and in [grid]; keep it in one of them.")
        if not isinstance(options, list):
            raise ConfigError(f"{source} [grid]: '{raw}' must be a list of values, e.g. {raw} = [{options!r}].")
        if not options:
            raise ConfigError(
                f"{source} [grid]: '{raw}' is an empty list, which gives no runs; give at least one value."
            )
        for value in options:
            if not _scalar(value):
                raise ConfigError(
                    f"{source} [grid]: '{raw}' holds {value!r}; values must be strings, numbers or booleans."
                )
        if len({json.dumps(v) for v in options}) != len(options):
            raise ConfigError(f"{source} [grid]: '{raw}' lists a value twice.")
        axes[key] = list(options)

    arm_keys = [k for axis in axes.values() if _is_arms(axis) for arm in axis for k in arm]
    for key in dict.fromkeys(arm_keys):
        if key in axes:
            raise ConfigError(f"{source} [grid]: '{key}' is both a grid key and set by an arm; keep it in one of them.")
    eval_tasks = parse_eval_tasks(values.get("eval_tasks", ["sts"]), source)
    sts = values.get("sts_tasks")
    sts_tasks = parse_sts_tasks(sts, source) if sts is not None else None
    description = values.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: 'description' must be a string.")
    folder = values.get("retrieval_folder")
    if folder is not None and not isinstance(folder, str):
        raise ConfigError(f"{source}: 'retrieval_folder' must be a BEIR folder's path or name, got {folder!r}.")
    splits = values.get("retrieval_splits", ["test"])
    if not isinstance(splits, list) or not splits or not all(isinstance(x, str) and x for x in splits):
        raise ConfigError(f'{source}: \'retrieval_splits\' must be a list of qrels splits such as ["train", "test"].')
    return Grid(
        name=name,
        source=source,
        description=description,
        base_recipe=base,
        fixed=fixed,
        axes=axes,
        eval_tasks=eval_tasks,
        sts_tasks=sts_tasks,
        retrieval_folder=folder,
        retrieval_splits=tuple(dict.fromkeys(splits)),
    )


def with_beir(grid: Grid, folder: str, data_dir: str | None = None) -> tuple[Grid, str]:
    """``--beir DIR``: the grid scoring that BEIR folder (with retrieval among its evaluations), and the folder's
    corpus file (``corpus.jsonl`` or ``corpus.jsonl.gz``) to train on."""
    from smoothcse.evaluation.retrieval.loading import resolve_retrieval_folder

    root = resolve_retrieval_folder(folder, data_dir)
    corpus = next((root / name for name in ("corpus.jsonl", "corpus.jsonl.gz") if (root / name).is_file()), None)
    if corpus is None:
        raise ConfigError(f"--beir {folder}: {root} holds no corpus.jsonl or corpus.jsonl.gz to train on.")
    tasks = grid.eval_tasks if "retrieval" in grid.eval_tasks else (*grid.eval_tasks, "retrieval")
    return dataclasses.replace(grid, retrieval_folder=str(root), eval_tasks=tasks), str(corpus)


def parse_arms(name: str, arms: list[dict[str, Any]], fixed: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Check a list of arms (tables of settings that go together) and canonicalise their keys."""
    where = f"{source} [grid] {name}"
    if name in valid_keys() or name == "objective":
        raise ConfigError(
            f"{where}: a list of tables is a list of arms, and its key names them; '{name}' is a config "
            "key, so call the list something else, e.g. arm = [...]."
        )
    out: list[dict[str, Any]] = []
    for number, arm in enumerate(arms, 1):
        if not arm:
            raise ConfigError(f"{where}: arm {number} is empty; give each arm at least one setting.")
        settings = {canonical_key(k, f"{where} arm {number}"): v for k, v in flatten(arm).items()}
        for key, value in settings.items():
            if not _scalar(value):
                raise ConfigError(
                    f"{where} arm {number}: '{key}' holds {value!r}; values must be strings, numbers or booleans."
                )
            if key in fixed:
                raise ConfigError(f"{where} arm {number}: '{key}' is also in [fixed]; keep it in one of them.")
        check_values(settings, f"{where} arm {number}")
        out.append(settings)
    if len({json.dumps(a, sort_keys=True) for a in out}) != len(out):
        raise ConfigError(f"{where}: two arms have the same settings.")
    return out


def _is_arms(axis: list[Any]) -> bool:
    return bool(axis) and all(isinstance(v, dict) for v in axis)


def with_seeds(grid: Grid, text: str) -> Grid:
    """The grid with its ``seed`` axis replaced by the comma-separated seeds of ``--seeds``."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. --seeds 42,43,44.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: give at least one seed, each once.")
    if "seed" in grid.fixed:
        raise ConfigError(f"--seeds: {grid.source} fixes 'seed' in [fixed]; edit the grid instead.")
    axes = dict(grid.axes)
    axes["seed"] = seeds
    return dataclasses.replace(grid, axes=axes)


def parse_eval_tasks(value: Any, source: str) -> tuple[str, ...]:
    """Check an ``eval_tasks`` list (``sts`` required; ``dev``, ``transfer``, ``retrieval`` optional)."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{source}: \'eval_tasks\' must be a list such as ["sts", "transfer"].')
    tasks = [v.strip().lower() for v in value]
    for task in tasks:
        if task not in EVAL_TASKS:
            raise ConfigError(
                f"{source}: unknown evaluation '{task}' in eval_tasks.{closest(task, EVAL_TASKS)} "
                f"Valid: {', '.join(EVAL_TASKS)}."
            )
    if "sts" not in tasks:
        raise ConfigError(f'{source}: eval_tasks must include "sts" (the report\'s main table).')
    return tuple(t for t in EVAL_TASKS if t in tasks)


def parse_sts_tasks(value: Any, source: str) -> tuple[str, ...]:
    """Check an ``sts_tasks`` list of STS task names (case-insensitive); returns canonical names."""
    from smoothcse.evaluation.data import STS_TASKS, canonical_task_name

    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: 'sts_tasks' must be a non-empty list of STS task names ({', '.join(STS_TASKS)}).")
    try:
        names = [canonical_task_name(v, STS_TASKS) for v in value]
    except ConfigError as err:
        raise ConfigError(f"{source}: sts_tasks: {err}") from None
    return tuple(t for t in STS_TASKS if t in names)


@dataclass
class RunSpec:
    """One point of the grid."""

    index: int
    name: str
    values: dict[str, Any]

    @property
    def label(self) -> str:
        """``spec=simcse+gs seed=43``: the run's grid values, for progress lines."""
        return " ".join(f"{short_key(k)}={format_value(v)}" for k, v in self.values.items())


def short_key(key: str) -> str:
    """The key as run names show it: ``objective.spec`` -> ``spec``; ``objective.gs_num`` -> ``gs_num``
    (``objective.seed`` keeps its prefix, since ``seed`` is also a top-level field)."""
    if key.startswith("objective."):
        rest = key[len("objective.") :]
        top = {f.name for f in dataclasses.fields(TrainConfig)}
        return rest if rest not in top else key
    return key


def format_value(value: Any) -> str:
    """A grid value as run names and tables show it (booleans as TOML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_name(values: dict[str, Any]) -> str:
    """A filesystem-safe folder name from a run's grid values: ``spec=simcse+gs__seed=42``.

    Characters other than letters, digits and ``. _ + = -`` become ``-``; a name longer than 150
    characters is cut and ends in a hash of the full name, so it stays unique.
    """
    raw = "__".join(f"{short_key(k)}={format_value(v)}" for k, v in values.items())
    safe = re.sub(r"[^A-Za-z0-9._+=-]", "-", raw).lstrip(".") or "run"
    if len(safe) > MAX_NAME:
        import hashlib

        safe = f"{safe[: MAX_NAME - 13]}--{hashlib.sha1(raw.encode()).hexdigest()[:11]}"
    return safe


def expand(grid: Grid) -> list[RunSpec]:
    """The cartesian product of the grid's axes, in file order (the last key varies fastest)."""
    keys = list(grid.axes)
    runs = []
    for index, combo in enumerate(itertools.product(*(grid.axes[k] for k in keys))):
        values: dict[str, Any] = {}
        for key, value in zip(keys, combo):
            values.update(value if isinstance(value, dict) else {key: value})  # an arm brings its settings
        runs.append(RunSpec(index=index, name=run_name(values), values=values))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(
            f"{grid.source}: two runs would share the folder name '{dup}'; make the grid values distinct."
        )
    return runs


SET_BY_STEPS = ("max_steps", "max_sentences")


def settle_steps(grid_values: dict[str, Any], overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's values with the flags' ``overrides`` applied over the grid's, and the flags' ``max_steps`` /
    ``max_sentences`` to apply after the grid's ``steps`` has set them (empty when there is nothing to settle).
    A flag overrides what the grid's ``steps`` sets, as every flag does (docs/experiments.md)."""
    values = {**grid_values, **overrides}
    if STEPS_KEY in overrides:  # the flag's steps replaces what the grid set
        for key in SET_BY_STEPS:
            if key not in overrides:
                values.pop(key, None)
        return values, {}
    if STEPS_KEY not in values:
        return values, {}
    return values, {key: values.pop(key) for key in SET_BY_STEPS if key in overrides}


def run_config(grid: Grid, run: RunSpec, overrides: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The run's validated TrainConfig: base recipe < [fixed] < grid values < overrides; ``out`` = run_dir."""
    values, flagged = settle_steps({**grid.fixed, **run.values}, overrides)  # a flag overrides the grid's steps
    values["out"] = str(run_dir)
    check_steps(values, f"run {run.name}")  # the three sources together (each was checked alone)
    steps = values.pop(STEPS_KEY, None)
    arm = values.get("objective.spec")
    views = [key for key in ("view_crop", "view_delete") if values.get(key)]
    views += ["view_source"] if values.get("view_source", "unit") != "unit" else []
    if arm in ST_ARMS and views:
        raise ConfigError(
            f"run {run.name}: the {arm} arm trains sentence-transformers' own loss on the units as they are; "
            f"{' and '.join(views)} are smoothcse's views and would be ignored, so drop them from this arm."
        )
    if arm in SPECIAL_ARMS:
        values["objective.spec"] = "simcse"  # the same InfoNCE, run by sentence-transformers, or no training
    config = build_config(recipe=grid.base_recipe, overrides=nested(values))
    if steps is not None:
        settled = {"max_steps": steps, "max_sentences": steps * config.batch_size, **flagged}
        config = dataclasses.replace(config, epochs=1, **settled)
        config.validate()
    return config


def is_st_arm(values: dict[str, Any]) -> bool:
    """Whether a run's grid values select a sentence-transformers arm (:data:`ST_ARMS`)."""
    return values.get("objective.spec") in ST_ARMS


def is_base_arm(values: dict[str, Any]) -> bool:
    """Whether a run's grid values select the untrained starting model."""
    return values.get("objective.spec") == BASE_ARM


def parse_overrides(pairs: dict[str, Any], grid: Grid, source: str = "command line") -> dict[str, Any]:
    """Check command-line overrides (flat keys): known keys, no grid key, right types."""
    out: dict[str, Any] = {}
    for raw, value in pairs.items():
        key = canonical_key(raw, source)
        if key in grid.axes:
            raise ConfigError(
                f"{source}: '{key}' is a grid key of {grid.source} (it varies per run); "
                "edit the grid instead of overriding it."
            )
        out[key] = value
    if out.get("objective.spec") in SPECIAL_ARMS:
        raise ConfigError(
            f"{source}: '{out['objective.spec']}' is an arm of a grid (a value of objective.spec in [grid]), "
            "not an override."
        )
    check_values(out, source)
    return out


def parse_set_option(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--set``; VALUE is read as a TOML value (``3e-5``, ``true``, ``"x"``), else a string."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set objective.gs_num=64.")
    key, text = (part.strip() for part in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value
