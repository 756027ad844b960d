"""Training configuration: one dataclass, built from defaults < recipe < TOML file < command line.

A recipe is a TOML file shipped in ``smoothcse/recipes``; a config file is the same format anywhere on
disk. Top-level keys are :class:`TrainConfig` fields; the ``[objective]`` table holds
:class:`smoothcse.objectives.ObjectiveConfig` fields. The full resolved config is written as JSON
into every output folder and checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from smoothcse.config_checks import coerce
from smoothcse.errors import ConfigError, closest
from smoothcse.model.poolers import POOLERS as MODEL_POOLERS
from smoothcse.objectives import ObjectiveConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Names SimCSE's and Hugging Face's scripts use for the same settings, for a helpful error.
SIMCSE_NAMES = {
    "learning_rate": "lr",
    "model_name_or_path": "model",
    "train_file": "data",
    "output_dir": "out",
    "max_seq_length": "max_len",
    "per_device_train_batch_size": "batch_size",
    "num_train_epochs": "epochs",
    "pooler_type": "pooler",
    "temp": "temperature",
    "eval_steps": "eval_every",
    "save_steps": "save_every",
    "logging_steps": "log_every",
}

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UNITS = ("sentences", "passages")
"""``--units``: what a JSONL document corpus is cut into (:mod:`smoothcse.data.documents`)."""
VIEW_SOURCES = ("unit", "document", "title")
"""``--view-source``: where a unit's second view comes from (:mod:`smoothcse.data.augment`)."""
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
POOLERS = ("auto", *MODEL_POOLERS)
"""``--pooler``: "auto" (the folder's own pooling, else ``cls``) or one of the model's poolers."""
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
"""``--report-to``: the experiment trackers a run can report to (each an extra: ``smoothcse[<name>]``)."""
SEED_LIMIT = 2**32 - 1
"""NumPy's legacy seeding takes 0 .. 2**32 - 1."""


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults are the SimCSE paper's unsup-BERT-base recipe."""

    model: str = "bert-base-uncased"
    """Hugging Face hub id or local folder (a plain HF model or a sentence-transformers folder)."""
    data: str = "corpus/enwiki2015_1m.txt.xz"
    """Training corpus: one sentence per line (.txt/.gz/.xz) or a csv/tsv column; relative paths are
    looked up in the working directory first, then in the data directory."""
    out: str = "runs/smoothcse"
    """Output folder: the exported model, metrics.jsonl, config and checkpoints."""
    text_column: str | None = None
    """For csv/tsv corpora: the column holding the sentences (header name or 0-based index)."""
    data_dir: str | None = None
    """Data directory in SentEval's layout (else $SMOOTHCSE_DATA, else ../shared/data)."""
    cache_dir: str | None = None
    """Where tokenised corpora are cached (default ~/.cache/smoothcse)."""
    text_field: str | None = None
    """For JSONL document corpora (a BEIR corpus.jsonl[.gz] or any JSONL): the field holding each document's
    text (unset: BEIR's title + ' ' + text)."""
    units: str = "sentences"
    """What a JSONL document corpus is cut into for training: sentences (split by blingfire) or passages
    (consecutive sentences packed up to --max-len tokens). Plain-text corpora are one unit per line."""

    # optimisation
    epochs: int = field(default=1, metadata={"help": "Passes over the corpus."})
    max_steps: int = 0
    """Stop after this many steps (0 = run all epochs)."""
    max_sentences: int = 0
    """Train on the first N sentences of the corpus only (0 = all); the token cache of the whole
    corpus is reused, so another limit costs no re-tokenisation."""
    batch_size: int = field(default=64, metadata={"help": "Sentences per step (global, over all processes)."})
    max_len: int = field(default=32, metadata={"help": "Tokens per training sentence."})
    lr: float = field(default=3e-5, metadata={"help": "Peak learning rate (linear decay to 0)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient-norm clip (0 = off)."})
    seed: int = field(default=42, metadata={"help": "Seed for data order, initialisation, dropout and noise."})

    # views and teacher
    view_crop: float = 0.0
    """Harder positives: each view keeps a random contiguous span of at least this fraction of a unit's tokens
    (uniform in [view_crop, 1], start uniform; Contriever's independent cropping); 0 = off (dropout only)."""
    view_delete: float = 0.0
    """Harder positives: each view deletes each token with this probability (TSDAE's noise, 0.6 there),
    keeping at least one; 0 = off. Applied after cropping, independently per view."""
    view_source: str = "unit"
    """Where a unit's second view comes from: unit (the unit itself), document (another unit of the same
    document of a JSONL corpus, drawn afresh at each step: topical positives, Contriever's two spans of one
    document at sentence grain; a one-unit document pairs with itself) or title (its document's 'title', a
    short query-like text: E5's title-passage pairs; an untitled document's units pair with themselves).
    Crop and deletion apply after."""
    teacher: str | None = None
    """The frozen encoder whose similarities the 'distill' component and soft_similarity = 'teacher' read
    (unset: the starting --model itself). Its embeddings of the training units are computed once and cached."""

    # model
    pooler: str = "auto"
    """cls | cls_before_pooler | avg | avg_first_last | avg_top2 | auto (a sentence-transformers
    folder's own pooling, else cls)."""
    mlp_only_train: bool = True
    """Train with SimCSE's MLP head (Linear + tanh) on [CLS] and drop it at evaluation."""
    hidden_dropout: float | None = None
    """Override the model's hidden dropout (unset: the model's own, 0.1 for BERT)."""
    attention_dropout: float | None = None
    """Override the model's attention dropout (unset: the model's own)."""

    # hardware
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N."})
    precision: str = "auto"
    """auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16 | fp16."""
    compile: bool = False
    """torch.compile the encoder, one static graph per length bucket (lengths rounded up to multiples of 8)."""
    compile_mode: str = "default"
    """torch.compile mode: default | reduce-overhead (CUDA graphs of forward and backward on a GPU) |
    max-autotune | max-autotune-no-cudagraphs."""
    fast_path: bool = True
    """On: length-sorted forwards that cut padding, one shared word-embedding lookup, the last layer computed
    for [CLS] alone with the cls poolers, and batches collated ahead in a background thread (pinned on a GPU).
    Off: the plain eager step, one forward padded to the batch's longest sentence."""
    rows_per_forward: int = 0
    """Fast path: encode the 2 x batch rows in length-sorted forwards of this many rows, each cut to
    its longest sentence (0 = auto: 32 on CPU, all rows in one forward on GPU)."""
    mini_batch_size: int = 0
    """Gradient caching: embed and backpropagate in chunks of this size (0, or not smaller than a
    process's shard of the batch, = the whole shard at once)."""

    # evaluation, logging, checkpoints
    eval_every: int = 125
    """Score STS-B dev every this many steps and keep the best model (0 = off: keep the last)."""
    eval_batch_size: int = 256
    log_every: int = field(default=25, metadata={"help": "Write metrics every this many steps."})
    save_every: int = 0
    """Write a resumable checkpoint every this many steps (0 = only on interruption and at the end)."""
    keep_checkpoints: int = field(default=2, metadata={"help": "How many checkpoints to keep."})
    max_bad_steps: int = 5
    """Stop after this many consecutive steps with a non-finite loss or gradient."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers to report to, as well as metrics.jsonl: none | tensorboard | wandb | mlflow | trackio
    (repeat the flag or separate by commas; files under OUT/trackers/; see docs/ecosystem.md)."""

    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def validate(self) -> None:
        """Raise a ConfigError naming the option for any value that cannot work."""
        for name in ("batch_size", "max_len", "epochs", "max_bad_steps"):
            if (value := getattr(self, name)) <= 0:
                raise ConfigError(f"--{_flag(name)} must be a positive integer, got {value}.")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 (in-batch negatives), got {self.batch_size}.")
        for name in ("lr", "adam_eps", "log_every"):
            if (value := getattr(self, name)) <= 0:
                raise ConfigError(f"--{_flag(name)} must be positive, got {value}.")
        nonnegative = (
            "max_steps max_sentences eval_every save_every warmup_steps mini_batch_size rows_per_forward "
            "weight_decay max_grad_norm keep_checkpoints"
        )
        for name in nonnegative.split():
            if (value := getattr(self, name)) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {value}.")
        if not 0 <= self.seed <= SEED_LIMIT:
            raise ConfigError(f"--seed must be in [0, {SEED_LIMIT}], got {self.seed}.")
        if self.eval_batch_size <= 0:
            raise ConfigError(f"eval_batch_size must be a positive integer, got {self.eval_batch_size}.")
        for name, choices in (("pooler", POOLERS), ("compile_mode", COMPILE_MODES), ("precision", PRECISIONS)):
            if (value := getattr(self, name)) not in choices:
                raise ConfigError(
                    f"--{_flag(name)} {value!r} is not one of {', '.join(choices)}.{closest(value, choices)}"
                )
        for name, allowed in (("units", UNITS), ("view_source", VIEW_SOURCES)):
            if (value := getattr(self, name)) not in allowed:
                raise ConfigError(
                    f"--{_flag(name)} must be one of {', '.join(allowed)}, got {value!r}.{closest(value, allowed)}"
                )
        if self.compile_mode != "default" and not self.compile:
            raise ConfigError(f"--compile-mode {self.compile_mode} has no effect without --compile; add --compile.")
        for name in ("hidden_dropout", "attention_dropout"):
            if (value := getattr(self, name)) is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"--{_flag(name)} must be in [0, 1), got {value}.")
        if not 0.0 <= self.view_crop <= 1.0:
            raise ConfigError(
                f"--view-crop must be in [0, 1] (the smallest fraction of a unit a view keeps), got {self.view_crop}."
            )
        if not 0.0 <= self.view_delete < 1.0:
            raise ConfigError(
                f"--view-delete must be in [0, 1) (the probability of deleting a token), got {self.view_delete}."
            )
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}.")
        if tracker_names(self.report_to, "config") != self.report_to:
            raise ConfigError(f"--report-to must be a list of distinct tracker names, got {self.report_to!r}.")
        self.objective.validate()
        if "is" in self.objective.components and self.batch_size > self.objective.is_bank_size:
            raise ConfigError(
                f"--batch-size {self.batch_size} exceeds the IS-CSE memory bank (is_bank_size = "
                f"{self.objective.is_bank_size}); raise is_bank_size to at least the batch size."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        """The resolved configuration as a TOML file that ``--config`` reads back to the same config
        (unset values, which TOML cannot write, are listed as comments: unset is their default)."""
        values = self.to_dict()
        objective = values.pop("objective")
        lines = ["# smoothcse train --config FILE reads this back; the flags given with it still override it"]
        lines += _toml_lines(values)
        lines += ["", "[objective]", *_toml_lines(objective)]
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    """One TOML value: strings in JSON's escaping (valid TOML basic strings), numbers, booleans, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # nan, inf and -inf included
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_lines(values: dict[str, Any]) -> list[str]:
    return [f"# {key}: not set" if value is None else f"{key} = {_toml_value(value)}" for key, value in values.items()]


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _field_names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def apply_overrides(config: TrainConfig, values: dict[str, Any], *, source: str) -> TrainConfig:
    """Return a copy of ``config`` with ``values`` applied (nested ``objective`` table allowed)."""
    top = _field_names(TrainConfig)
    obj_fields = _field_names(ObjectiveConfig)
    updates: dict[str, Any] = {}
    objective_updates: dict[str, Any] = {}
    for key, value in values.items():
        if key == "objective" and isinstance(value, dict):
            for okey, ovalue in value.items():
                if okey not in obj_fields:
                    raise ConfigError(
                        f"{source}: unknown key 'objective.{okey}'.{closest(okey, obj_fields)} "
                        f"Valid keys: {', '.join(obj_fields)}."
                    )
                objective_updates[okey] = coerce(ovalue, f"objective.{okey}", source)
        elif key == "objective" and isinstance(value, str):
            objective_updates["spec"] = value
        elif key == "report_to":
            updates[key] = tracker_names(value, source)
        elif key in top:
            updates[key] = coerce(value, key, source)
        else:
            hint = f" Did you mean '{SIMCSE_NAMES[key]}'?" if key in SIMCSE_NAMES else closest(key, top + ["objective"])
            raise ConfigError(f"{source}: unknown key '{key}'.{hint} Run 'smoothcse train --help' for the options.")
    objective = dataclasses.replace(config.objective, **objective_updates)
    return dataclasses.replace(config, **updates, objective=objective)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"objective": {"temperature": t}}`` -> ``{"objective.temperature": t}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tracker_names(value: Any, source: str) -> list[str]:
    """``--report-to`` as a list of distinct tracker names: from a string or a list of strings, commas
    separating names too; ``none`` (alone) is no tracker."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{source}: 'report_to' must be a tracker name or a list of them, got {value!r}.")
    names = [name.strip().lower() for item in items for name in item.split(",") if name.strip()]
    where = "" if source == "command line" else f"{source}: "
    for name in names:
        if name != "none" and name not in TRACKERS:
            raise ConfigError(
                f"{where}--report-to {name!r} is not one of none, {', '.join(TRACKERS)}."
                f"{closest(name, ('none', *TRACKERS))}"
            )
    if "none" in names and len(set(names)) > 1:
        raise ConfigError(f"{where}--report-to none cannot be combined with trackers ({', '.join(names)}).")
    return [name for name in dict.fromkeys(names) if name != "none"]


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file.")
    try:
        with path.open("rb") as handle:
            values: dict[str, Any] = tomllib.load(handle)
            return values
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file.") from None


def recipe_names() -> list[str]:
    """Names of the built-in recipes (TOML files in smoothcse/recipes)."""
    folder = resources.files("smoothcse") / "recipes"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def recipe_text(name: str) -> str:
    names = recipe_names()
    if name not in names:
        raise ConfigError(
            f"--recipe {name!r} is not a built-in recipe.{closest(name, names)} Run 'smoothcse recipes' to list them."
        )
    return (resources.files("smoothcse") / "recipes" / f"{name}.toml").read_text(encoding="utf-8")


def load_recipe(name: str) -> dict[str, Any]:
    values: dict[str, Any] = tomllib.loads(recipe_text(name))
    values.pop("description", None)
    return values


def recipe_description(name: str) -> str:
    return str(tomllib.loads(recipe_text(name)).get("description", ""))


def build_config(
    recipe: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """defaults < recipe < config file < explicit overrides (the CLI flags that were given)."""
    config = TrainConfig()
    sources = []
    if recipe:
        sources.append((f"recipe {recipe}", load_recipe(recipe)))
    if config_file:
        sources.append((str(config_file), load_toml(config_file)))
    if overrides:
        sources.append(("command line", overrides))
    for source, values in sources:
        config = apply_overrides(config, values, source=source)
    config = one_seed(config, [source for source, values in sources if "seed" in (values.get("objective") or {})])
    config.validate()
    return config


def one_seed(config: TrainConfig, objective_seed_sources: list[str]) -> TrainConfig:
    """A training run has one seed: ``objective.seed`` (the objective's noise) is ``seed``, shown as such in the
    saved config; one set explicitly to another value is refused, naming where it came from."""
    if objective_seed_sources and config.objective.seed != config.seed:
        raise ConfigError(
            f"{objective_seed_sources[-1]}: objective.seed = {config.objective.seed} differs from seed = "
            f"{config.seed}; a training run has one seed, which also seeds the objective's noise. Set seed "
            "(--seed) and drop objective.seed."
        )
    return dataclasses.replace(config, objective=dataclasses.replace(config.objective, seed=config.seed))
