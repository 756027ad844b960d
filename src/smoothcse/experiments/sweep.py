"""Sweeps: a grid of training runs (objectives × seeds × any config field), each trained and evaluated.

A grid is a TOML file (or the name of a built-in one in ``smoothcse/grids``)::

    description = "SimCSE against its refinements, 3 seeds"
    base_recipe = "simcse-bert-base"        # optional: a built-in recipe to start from
    eval_tasks = ["sts"]                    # "sts" (required), optionally "dev", "transfer", "retrieval"
    # sts_tasks = ["STSb"]                  # optional, for quick checks only: default all 7 STS tasks

    [fixed]                                 # TrainConfig overrides for every run
    max_steps = 2000
    [fixed.objective]
    temperature = 0.05

    [grid]                                  # the runs are the cartesian product of these lists
    seed = [42, 43, 44]
    "objective.spec" = ["simcse", "simcse+gs"]

A grid key's list may hold **arms** instead of values: tables of settings that go together, so that a
setting which only means something for one objective is not crossed with the others::

    [grid]
    seed = [42, 43, 44]
    arm = [
        { "objective.spec" = "simcse" },
        { "objective.spec" = "simcse+soft-weight", "objective.soft_direction" = "down" },
    ]

(the key of such a list, here ``arm``, is only a name; each run gets the settings of its arm).

Configs are built as defaults < base recipe < ``[fixed]`` < the run's grid values < command-line
overrides (which may not name a grid key). Each run is trained into ``<out>/runs/<name>`` with
:func:`smoothcse.training.loop.train`, then its exported model is evaluated (7 STS tasks, alignment and
uniformity on STS-B test, and transfer/retrieval if asked) and everything is written to
``<out>/runs/<name>/result.json``; ``<out>/sweep.json`` summarises the sweep.

Re-running the same command continues a sweep: a run whose ``result.json`` says ``"ok"`` with the same
configuration is skipped (by default, not only with ``--resume``); a run that failed or never finished
is started again from scratch, or with ``--resume`` continued from its newest checkpoint; a run that
finished training but not its evaluation is only evaluated. A complete run whose recorded configuration
differs from the one the grid now gives stops the sweep before anything runs (pass ``--overwrite`` or
choose another ``--out``), so one sweep folder never mixes settings. A run that fails records its error
in ``result.json`` (``"status": "failed"``) and the sweep goes on.
"""

from __future__ import annotations

import functools

import dataclasses
import datetime as _dt
import gc
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig, apply_overrides, build_config, load_toml
from smoothcse.errors import ConfigError, SmoothCSEError, closest
from smoothcse.files import format_duration, read_json, write_json
from smoothcse.experiments.st_simcse import ARM as ST_ARM  # its config is SimCSE's, trained by sentence-transformers
from smoothcse.objectives import ObjectiveConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUNS_DIR = "runs"
RESULT_FILE = "result.json"
SWEEP_FILE = "sweep.json"
METRICS_FILE = "metrics.jsonl"
TRAIN_CONFIG_FILE = "smoothcse_config.json"

GRID_FILE_KEYS: tuple[str, ...] = ("description", "base_recipe", "fixed", "grid", "eval_tasks", "sts_tasks")
EVAL_TASKS: tuple[str, ...] = ("sts", "dev", "transfer", "retrieval")
"""``dev`` scores the saved model on the STS-B dev and SICK trial sets: the sets to choose settings by."""
RESERVED_KEYS: tuple[str, ...] = ("out",)
"""Config fields a grid may not set: the sweep decides where each run goes."""
SETUP_KEYS: tuple[str, ...] = (
    "out", "device", "data_dir", "cache_dir", "eval_batch_size", "log_every", "save_every", "keep_checkpoints",
)
"""Config fields that say where and how a run is executed, not what it computes: a complete run is
reused even if these differ."""
MAX_NAME = 150
STEPS_KEY = "steps"
"""A shorthand a grid or ``--set`` may use: ``steps = N`` is one epoch of exactly N batches over the
corpus's first N × batch_size sentences (``max_steps = N``, ``max_sentences = N × batch_size``)."""


# ---------------------------------------------------------------------------------------------- grid


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "description": self.description,
            "base_recipe": self.base_recipe, "fixed": self.fixed, "grid": self.axes,
            "eval_tasks": list(self.eval_tasks), "sts_tasks": list(self.sts_tasks) if self.sts_tasks else None,
        }


def grid_names() -> list[str]:
    """Names of the built-in grids (TOML files in ``smoothcse/grids``)."""
    folder = resources.files("smoothcse") / "grids"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def grid_description(name: str) -> str:
    text = (resources.files("smoothcse") / "grids" / f"{name}.toml").read_text(encoding="utf-8")
    return str(tomllib.loads(text).get("description", ""))


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
        source = resources.files("smoothcse") / "grids" / f"{text}.toml"
        return parse_grid(tomllib.loads(source.read_text(encoding="utf-8")), name=text, source=f"built-in grid {text}")
    hint = closest(text, names)
    builtin = f" Built-in grids: {', '.join(names)}." if names else ""
    raise ConfigError(f"GRID {text}: no such file, and not a built-in grid.{hint}{builtin}")


def valid_keys() -> list[str]:
    """Every key a grid may vary or a command line may set: TrainConfig fields and ``objective.<field>``."""
    top = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "objective" and f.name not in RESERVED_KEYS]
    return top + [STEPS_KEY] + [f"objective.{f.name}" for f in dataclasses.fields(ObjectiveConfig)]


def check_values(flat: dict[str, Any], source: str) -> None:
    """Type-check flat settings against TrainConfig (``steps`` and the ``st-simcse`` arm understood)."""
    steps = flat.get(STEPS_KEY)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise ConfigError(f"{source}: '{STEPS_KEY}' must be a positive integer (steps of one epoch), got {steps!r}.")
    if STEPS_KEY in flat and ("max_steps" in flat or "max_sentences" in flat):
        raise ConfigError(f"{source}: '{STEPS_KEY}' sets max_steps and max_sentences; do not give them as well.")
    rest = {k: v for k, v in flat.items() if k != STEPS_KEY}
    if rest.get("objective.spec") == ST_ARM:
        rest["objective.spec"] = "simcse"
    apply_overrides(TrainConfig(), nested(rest), source=source)


def canonical_key(key: str, source: str) -> str:
    """``objective`` -> ``objective.spec``; check that ``key`` names a config field."""
    key = key.strip()
    if key == "objective":
        key = "objective.spec"
    if key in RESERVED_KEYS:
        raise ConfigError(f"{source}: '{key}' cannot be set in a sweep; each run goes to <out>/runs/<name> (use --out).")
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
            out.setdefault("objective", {})[key[len("objective."):]] = value
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
            raise ConfigError(f"{source}: unknown top-level key '{key}'.{closest(key, GRID_FILE_KEYS)} "
                              f"Valid keys: {', '.join(GRID_FILE_KEYS)}.")
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
        raise ConfigError(f"{source}: the [grid] table is missing or empty; list at least one key with the values "
                          "to sweep, e.g. seed = [42, 43, 44] (a single run is 'smoothcse train').")
    axes: dict[str, list[Any]] = {}
    for raw, options in flatten(table).items():
        if isinstance(options, list) and options and all(isinstance(o, dict) for o in options):
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
            raise ConfigError(f"{source} [grid]: '{raw}' is an empty list, which gives no runs; give at least one value.")
        for value in options:
            if not _scalar(value):
                raise ConfigError(f"{source} [grid]: '{raw}' holds {value!r}; values must be strings, numbers or booleans.")
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
    return Grid(name=name, source=source, description=description, base_recipe=base, fixed=fixed, axes=axes,
                eval_tasks=eval_tasks, sts_tasks=sts_tasks)


def parse_arms(name: str, arms: list[dict[str, Any]], fixed: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Check a list of arms (tables of settings that go together) and canonicalise their keys."""
    where = f"{source} [grid] {name}"
    if name in valid_keys() or name == "objective":
        raise ConfigError(f"{where}: a list of tables is a list of arms, and its key names them; '{name}' is a config "
                          "key, so call the list something else, e.g. arm = [...].")
    out: list[dict[str, Any]] = []
    for number, arm in enumerate(arms, 1):
        if not arm:
            raise ConfigError(f"{where}: arm {number} is empty; give each arm at least one setting.")
        settings = {canonical_key(k, f"{where} arm {number}"): v for k, v in flatten(arm).items()}
        for key, value in settings.items():
            if not _scalar(value):
                raise ConfigError(f"{where} arm {number}: '{key}' holds {value!r}; values must be strings, numbers or booleans.")
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
        raise ConfigError(f"{source}: 'eval_tasks' must be a list such as [\"sts\", \"transfer\"].")
    tasks = [v.strip().lower() for v in value]
    for task in tasks:
        if task not in EVAL_TASKS:
            raise ConfigError(f"{source}: unknown evaluation '{task}' in eval_tasks.{closest(task, EVAL_TASKS)} "
                              f"Valid: {', '.join(EVAL_TASKS)}.")
    if "sts" not in tasks:
        raise ConfigError(f"{source}: eval_tasks must include \"sts\" (the report's main table).")
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


# ---------------------------------------------------------------------------------------------- runs


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
        rest = key[len("objective."):]
        top = {f.name for f in dataclasses.fields(TrainConfig)}
        return rest if rest not in top else key
    return key


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
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
        raise ConfigError(f"{grid.source}: two runs would share the folder name '{dup}'; make the grid values distinct.")
    return runs


def run_config(grid: Grid, run: RunSpec, overrides: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The run's validated TrainConfig: base recipe < [fixed] < grid values < overrides; ``out`` = run_dir."""
    values = {**grid.fixed, **run.values, **overrides, "out": str(run_dir)}
    if STEPS_KEY in values and ("max_steps" in values or "max_sentences" in values):
        given = [k for k in ("max_steps", "max_sentences") if k in values]
        raise ConfigError(f"'{STEPS_KEY}' and {', '.join(given)} are both set for run {run.name}; '{STEPS_KEY}' "
                          "sets both max_steps and max_sentences, so give one or the other.")
    steps = values.pop(STEPS_KEY, None)
    if values.get("objective.spec") == ST_ARM:
        values["objective.spec"] = "simcse"  # the same InfoNCE, run by sentence-transformers
    config = build_config(recipe=grid.base_recipe, overrides=nested(values))
    if steps is not None:
        config = dataclasses.replace(config, epochs=1, max_steps=steps, max_sentences=steps * config.batch_size)
        config.validate()
    return config


def is_st_arm(values: dict[str, Any]) -> bool:
    """Whether a run's grid values select the sentence-transformers baseline."""
    return values.get("objective.spec") == ST_ARM


def parse_overrides(pairs: dict[str, Any], grid: Grid, source: str = "command line") -> dict[str, Any]:
    """Check command-line overrides (flat keys): known keys, no grid key, right types."""
    out: dict[str, Any] = {}
    for raw, value in pairs.items():
        key = canonical_key(raw, source)
        if key in grid.axes:
            raise ConfigError(f"{source}: '{key}' is a grid key of {grid.source} (it varies per run); "
                              "edit the grid instead of overriding it.")
        out[key] = value
    if out.get("objective.spec") == ST_ARM:
        raise ConfigError(f"{source}: '{ST_ARM}' is an arm of a grid (a value of objective.spec in [grid]), not an override.")
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


# ---------------------------------------------------------------------------------------------- state of a run


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys (``objective.x`` for objective fields) whose values differ, setup keys ignored."""
    a, b = flatten(saved), flatten(current)
    ignore = set(SETUP_KEYS) | {"objective.seed"}  # the trainer sets the noise seed to the run's seed
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(record, dict):
            records.append(record)
    return records


def dev_curve(records: Sequence[dict[str, Any]]) -> list[list[float]]:
    """``[[step, stsb_dev], ...]`` from metrics records, one point per step (the latest), sorted."""
    points: dict[int, float] = {}
    for record in records:
        if "stsb_dev" in record and "step" in record and record["stsb_dev"] is not None:
            points[int(record["step"])] = float(record["stsb_dev"])
    return [[step, points[step]] for step in sorted(points)]


def train_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``{"summary": ...}`` record (written when training finished), or None."""
    summaries = [r["summary"] for r in records if isinstance(r.get("summary"), dict)]
    return summaries[-1] if summaries else None


def training_finished(run_dir: Path, config: TrainConfig) -> bool:
    """True if ``run_dir`` holds a finished training of this config (summary written, model exported)."""
    from smoothcse.model.export import holds_model

    saved = read_json(run_dir / TRAIN_CONFIG_FILE)
    return (
        saved is not None
        and not config_differences(saved, config.to_dict())
        and holds_model(run_dir)
        and train_summary(read_metrics(run_dir)) is not None
    )


def missing_evaluations(result: dict[str, Any], eval_tasks: Sequence[str], sts_tasks: Sequence[str]) -> list[str]:
    """Which of sts / geometry / dev / transfer / retrieval a complete result still lacks for this request."""
    missing = []
    done_sts = {name for name, r in (result.get("sts") or {}).get("tasks", {}).items() if "error" not in r}
    if not set(sts_tasks) <= done_sts:
        missing.append("sts")
    if not result.get("geometry"):
        missing.append("geometry")
    for task in ("dev", "transfer", "retrieval"):
        if task in eval_tasks and not result.get(task):
            missing.append(task)
    return missing


# ---------------------------------------------------------------------------------------------- evaluation


class CachedEmbedding:
    """An embedding function that encodes each distinct sentence once across calls (STS + geometry)."""

    def __init__(self, encoder: Any, batch_size: int) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.cache: dict[str, Any] = {}

    def __call__(self, sentences: list[str], desc: str | None = None) -> Any:
        import numpy as np

        todo = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if todo:
            vectors = self.encoder.encode(todo, batch_size=self.batch_size)
            self.cache.update(zip(todo, vectors))
        if not sentences:
            return np.zeros((0, self.encoder.hidden_size), dtype=np.float32)
        return np.stack([self.cache[s] for s in sentences])


def sts_scores(sts: dict[str, Any]) -> dict[str, float | None]:
    """Flat headline scores of an :func:`evaluate_sts` result: ``{"STS12": ..., ..., "avg": ...}``."""
    scores: dict[str, float | None] = {name: r.get("spearman") for name, r in sts["tasks"].items()}
    scores["avg"] = sts["avg"]["spearman"]
    return scores


def evaluate_model(
    model_dir: Path,
    evaluations: Sequence[str],
    *,
    sts_tasks: Sequence[str],
    data_dir: str | None,
    device: str,
    batch_size: int,
) -> dict[str, Any]:
    """Load an exported model and run the named evaluations (sts, geometry, dev, transfer, retrieval)."""
    import torch

    from smoothcse.model.encoder import load_encoder
    from smoothcse.evaluation.data import DEV_STS_TASKS
    from smoothcse.evaluation.sts import evaluate_sts
    from smoothcse.experiments.geometry import alignment_uniformity

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = load_encoder(str(model_dir), device=device)
    cached = CachedEmbedding(encoder, batch_size)
    embed = functools.partial(encoder.encode, batch_size=batch_size)
    out: dict[str, Any] = {}
    try:
        if "sts" in evaluations:
            out["sts"] = evaluate_sts(cached, data_dir, list(sts_tasks))
        if "geometry" in evaluations:
            out["geometry"] = alignment_uniformity(cached, data_dir, "test")
        if "dev" in evaluations:
            out["dev"] = evaluate_sts(cached, data_dir, list(DEV_STS_TASKS), mode="dev")
        cached.cache.clear()
        if "transfer" in evaluations:
            from smoothcse.evaluation.transfer import evaluate_transfer

            out["transfer"] = evaluate_transfer(embed, data_dir)
        if "retrieval" in evaluations:
            from smoothcse.evaluation.retrieval import evaluate_retrieval

            out["retrieval"] = evaluate_retrieval(embed, data_dir=data_dir)
    finally:
        del encoder, cached, embed
        _free_memory()
    return out


def headline_scores(result: dict[str, Any]) -> dict[str, float | None]:
    """The numbers the report tabulates, flat: STS tasks and ``avg``, ``dev:STSb``, ``dev:SICK-R`` and ``dev_avg``,
    ``transfer_avg``, ``ndcg_at_10`` (×100)."""
    scores: dict[str, float | None] = {}
    if result.get("sts"):
        scores.update(sts_scores(result["sts"]))
    if result.get("dev"):
        dev = sts_scores(result["dev"])
        scores.update({f"dev:{n}": v for n, v in dev.items() if n != "avg"})
        scores["dev_avg"] = dev["avg"]
    if result.get("transfer"):
        scores.update({f"transfer:{n}": r.get("accuracy") for n, r in result["transfer"]["tasks"].items()})
        scores["transfer_avg"] = result["transfer"]["avg"]["accuracy"]
    if result.get("retrieval"):
        score = result["retrieval"].get("main_score")
        scores["ndcg_at_10"] = None if score is None else 100.0 * score
    return scores


def eval_failures(result: dict[str, Any]) -> list[str]:
    """Tasks an evaluation could not score (missing data): they make the run 'failed'."""
    failed = []
    for task in ("sts", "dev", "transfer"):
        failed += [f"{task}:{n}" for n in (result.get(task) or {}).get("failed", [])]
    return failed


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


# ---------------------------------------------------------------------------------------------- the sweep


@dataclass
class SweepOptions:
    """How to execute a sweep (what to compute is the grid's business)."""

    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    """Flat config overrides for every run (``--model``, ``--max-steps``, ``--set``...); never a grid key."""
    resume: bool = False
    """Continue unfinished runs from their newest checkpoint (else they start again)."""
    overwrite: bool = False
    """Run everything again, complete runs included."""
    eval_tasks: tuple[str, ...] | None = None
    sts_tasks: tuple[str, ...] | None = None
    keep_checkpoints: bool = False
    """Keep each finished run's training checkpoints (by default they are deleted; the model stays)."""
    train_progress: bool = False
    """Show each run's own training progress bar."""
    echo: Callable[[str], None] = print


@dataclass
class PlannedRun:
    spec: RunSpec
    run_dir: Path
    config: TrainConfig | None
    error: str | None
    status: str
    """complete | evaluate (trained, evaluation missing) | resume | pending | failed-before | invalid."""
    previous: dict[str, Any] | None = None


def plan(grid: Grid, options: SweepOptions) -> list[PlannedRun]:
    """What each run needs, without running anything (``--dry-run`` prints this).

    Raises :class:`SmoothCSEError` if a complete run was made with a different configuration (unless
    ``overwrite``), naming the run and the keys.
    """
    from smoothcse.training.checkpoint import list_checkpoints
    from smoothcse.evaluation.data import STS_TASKS

    eval_tasks = options.eval_tasks or grid.eval_tasks
    sts_tasks = options.sts_tasks or grid.sts_tasks or STS_TASKS
    planned = []
    stale = []
    for spec in expand(grid):
        run_dir = options.out / RUNS_DIR / spec.name
        try:
            config = run_config(grid, spec, options.overrides, run_dir)
            error = None
        except SmoothCSEError as err:
            config, error = None, str(err)
        previous = read_json(run_dir / RESULT_FILE)
        if config is None:
            status = "invalid"
        elif options.overwrite:
            status = "pending"
        elif previous is not None and previous.get("status") == "ok":
            diffs = config_differences(previous.get("config", {}), config.to_dict())
            if diffs:
                stale.append(f"{spec.name} ({', '.join(diffs[:4])}{', ...' if len(diffs) > 4 else ''})")
                status = "stale"
            else:
                status = "evaluate" if missing_evaluations(previous, eval_tasks, sts_tasks) else "complete"
        elif training_finished(run_dir, config):
            status = "evaluate"
        elif options.resume and list_checkpoints(run_dir):
            status = "resume"
        else:
            status = "failed-before" if previous is not None else "pending"
        planned.append(PlannedRun(spec, run_dir, config, error, status, previous))
    if stale:
        raise SmoothCSEError(
            f"{len(stale)} complete run(s) in {options.out} were made with other settings than the grid now gives: "
            f"{'; '.join(stale[:3])}{f' and {len(stale) - 3} more' if len(stale) > 3 else ''}. Pass --overwrite to run them again, or "
            "choose another --out."
        )
    return planned


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def execute_run(item: PlannedRun, grid: Grid, options: SweepOptions) -> dict[str, Any]:
    """Train (unless already trained) and evaluate one run; return its result document (never raises
    for a failure of the run itself, only for an interruption)."""
    from smoothcse.evaluation.data import STS_TASKS
    from smoothcse.training.loop import TrainingInterrupted, train

    eval_tasks = options.eval_tasks or grid.eval_tasks
    sts_tasks = options.sts_tasks or grid.sts_tasks or STS_TASKS
    started = time.perf_counter()
    result: dict[str, Any] = {
        "name": item.spec.name,
        "values": item.spec.values,
        "status": "running",
        "config": item.config.to_dict() if item.config else None,
        "grid": grid.source,
        "framework": "sentence-transformers" if is_st_arm(item.spec.values) else "smoothcse",
        "started_at": _now(),
    }
    seconds = {"train": 0.0, "eval": 0.0}
    stage = "config"
    try:
        if item.config is None:
            raise ConfigError(item.error or "invalid configuration")
        config = item.config
        stage = "train"
        if item.status == "evaluate" and item.previous and item.previous.get("status") == "ok":
            # complete run that lacks an evaluation: keep what it has, add the missing ones
            result.update({k: item.previous[k] for k in ("sts", "geometry", "dev", "transfer", "retrieval", "train") if k in item.previous})
            seconds["train"] = float((item.previous.get("seconds") or {}).get("train", 0.0))
        elif item.status == "evaluate":
            seconds["train"] = float((train_summary(read_metrics(item.run_dir)) or {}).get("seconds", 0.0))
        else:
            (item.run_dir / RESULT_FILE).unlink(missing_ok=True)
            resume = item.status == "resume"
            t0 = time.perf_counter()
            try:
                if is_st_arm(item.spec.values):
                    from smoothcse.experiments.st_simcse import train_st_simcse

                    if item.run_dir.exists():
                        shutil.rmtree(item.run_dir)  # no resume for the Trainer's arm: it starts again
                    train_st_simcse(config, progress=options.train_progress)
                else:
                    train(config, resume=resume, overwrite=not resume, progress=options.train_progress)
            except TrainingInterrupted:
                raise
            finally:
                seconds["train"] = time.perf_counter() - t0
                _free_memory()
        records = read_metrics(item.run_dir)
        result["train"] = train_summary(records) or result.get("train")
        result["dev_curve"] = dev_curve(records)
        if not options.keep_checkpoints:
            shutil.rmtree(item.run_dir / "checkpoints", ignore_errors=True)

        stage = "eval"
        wanted = missing_evaluations(result, eval_tasks, sts_tasks)
        t0 = time.perf_counter()
        result.update(evaluate_model(
            item.run_dir, wanted, sts_tasks=sts_tasks, data_dir=config.data_dir, device=config.device,
            batch_size=config.eval_batch_size,
        ))
        seconds["eval"] = time.perf_counter() - t0
        result["scores"] = headline_scores(result)
        failed = eval_failures(result)
        if failed:
            details = "; ".join(
                f"{t}: {result[t.split(':')[0]]['tasks'][t.split(':')[1]]['error']}" for t in failed[:2]
            )
            raise SmoothCSEError(f"could not score {', '.join(failed)} ({details})")
        result["status"] = "ok"
    except (KeyboardInterrupt, TrainingInterrupted):
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one run is recorded, and the sweep goes on
        result["status"] = "failed"
        result["error"] = {
            "stage": stage,
            "type": type(err).__name__,
            "message": str(err) or type(err).__name__,
            "traceback": "" if isinstance(err, SmoothCSEError) else traceback.format_exc(),
        }
        if "sts" in result:
            result["scores"] = headline_scores(result)
    seconds["total"] = time.perf_counter() - started
    result["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    result["finished_at"] = _now()
    write_json(item.run_dir / RESULT_FILE, result)
    return result


@dataclass
class SweepSummary:
    out: Path
    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)


def _sweep_document(grid: Grid, options: SweepOptions, planned: list[PlannedRun], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    runs = []
    for item in planned:
        result = results.get(item.spec.name) or read_json(item.run_dir / RESULT_FILE) or {}
        runs.append({
            "name": item.spec.name,
            "values": item.spec.values,
            "status": result.get("status", "pending"),
            "sts_avg": (result.get("scores") or {}).get("avg"),
            "seconds": (result.get("seconds") or {}).get("total"),
            "error": (result.get("error") or {}).get("message"),
        })
    counts = {s: sum(r["status"] == s for r in runs) for s in ("ok", "failed", "pending")}
    return {
        "grid": grid.to_dict(),
        "keys": list(grid.axes),
        "overrides": options.overrides,
        "eval_tasks": list(options.eval_tasks or grid.eval_tasks),
        "sts_tasks": list(options.sts_tasks or grid.sts_tasks or []) or None,
        "runs": runs,
        "counts": counts,
        "updated_at": _now(),
    }


def run_sweep(grid: Grid, options: SweepOptions) -> SweepSummary:
    """Plan, then train and evaluate every run that is not complete, writing results as it goes."""
    from smoothcse.training.loop import TrainingInterrupted

    planned = plan(grid, options)
    options.echo(f"{grid.source}: {len(planned)} runs into {options.out}")
    options.out.mkdir(parents=True, exist_ok=True)
    summary = SweepSummary(out=options.out, total=len(planned))
    results: dict[str, dict[str, Any]] = {}
    write_json(options.out / SWEEP_FILE, _sweep_document(grid, options, planned, results))
    todo = [p for p in planned if p.status != "complete"]
    invalid = [p for p in planned if p.status == "invalid"]
    if invalid:
        options.echo(f"note: {len(invalid)} run(s) have an invalid configuration and will be recorded as failed "
                     f"(first: {invalid[0].spec.label}: {invalid[0].error})")
    done_seconds: list[float] = []
    width = len(str(len(planned)))
    for item in planned:
        prefix = f"[{item.spec.index + 1:>{width}}/{len(planned)}] {item.spec.label} ..."
        if item.status == "complete":
            avg = ((item.previous or {}).get("scores") or {}).get("avg")
            options.echo(f"{prefix} skipped (complete{_avg_text(avg)})")
            summary.skipped += 1
            summary.ok += 1
            summary.runs.append(item.previous or {})
            continue
        try:
            result = execute_run(item, grid, options)
        except (KeyboardInterrupt, TrainingInterrupted):
            write_json(options.out / SWEEP_FILE, _sweep_document(grid, options, planned, results))
            raise TrainingInterrupted(
                f"Sweep interrupted during run {item.spec.name}. Run the same command again to continue; add --resume "
                "to continue an unfinished training from its checkpoint instead of restarting it."
            ) from None
        results[item.spec.name] = result
        summary.runs.append(result)
        if item.status != "invalid":
            done_seconds.append(result["seconds"]["total"])
        remaining = sum(1 for p in todo if p.spec.index > item.spec.index and p.status != "invalid")
        eta = f"; ETA {format_duration(remaining * sum(done_seconds) / len(done_seconds))}" if remaining and done_seconds else ""
        if result["status"] == "ok":
            summary.ok += 1
            what = "evaluated" if item.status == "evaluate" else "done"
            options.echo(f"{prefix} {what} (STS avg {result['scores']['avg']:.2f}; {format_duration(result['seconds']['total'])}{eta})")
        else:
            summary.failed += 1
            message = result["error"]["message"].splitlines()[0]
            options.echo(f"{prefix} FAILED at {result['error']['stage']}: {result['error']['type']}: {message}{eta}")
        write_json(options.out / SWEEP_FILE, _sweep_document(grid, options, planned, results))
    return summary


def _avg_text(avg: float | None) -> str:
    return f": STS avg {avg:.2f}" if isinstance(avg, (int, float)) else ""


def describe_plan(planned: Sequence[PlannedRun]) -> list[str]:
    """Lines for ``--dry-run``: each run's folder and what the sweep would do with it."""
    meaning = {
        "complete": "complete: skip",
        "evaluate": "trained: evaluate only",
        "resume": "unfinished: resume from checkpoint",
        "pending": "to run",
        "failed-before": "failed before: run again",
        "invalid": "invalid config: will be recorded as failed",
    }
    width = len(str(len(planned)))
    lines = []
    for item in planned:
        line = f"[{item.spec.index + 1:>{width}}/{len(planned)}] {item.spec.name}  -> {meaning[item.status]}"
        if item.error:
            line += f" ({item.error})"
        lines.append(line)
    return lines


__all__ = [
    "Grid", "PlannedRun", "RunSpec", "SweepOptions", "SweepSummary", "describe_plan", "dev_curve", "evaluate_model",
    "execute_run", "expand", "grid_names", "headline_scores", "load_grid", "parse_grid", "plan", "run_config",
    "run_name", "run_sweep",
]
