"""The objective's configuration: which components, and their hyperparameters.

Pure Python (no torch import), so the CLI can parse and validate options without loading torch.
The field names are the keys of a recipe's ``[objective]`` table and of the ``objective`` entry in
every saved config; :func:`smoothcse.objectives.build_objective` turns a config into a loss module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from smoothcse.errors import ConfigError, closest

COMPONENTS: tuple[str, ...] = ("simcse", "gs", "is", "soft-weight", "soft-temp", "distill")
"""Valid components of an objective spec, joined by '+' (e.g. ``"simcse+gs+is+soft-weight"``).

- ``simcse``: the base InfoNCE of unsup-SimCSE (always present; may be omitted from the spec);
- ``gs``: GS-InfoNCE's Gaussian extra negatives (:class:`~smoothcse.objectives.GaussianNegatives`);
- ``is``: IS-CSE's instance-smoothing term (:class:`~smoothcse.objectives.InstanceSmoothing`);
- ``soft-weight`` / ``soft-temp``: SoftCSE per-pair weights or temperatures
  (:class:`~smoothcse.objectives.SoftNegatives`); at most one of the two;
- ``distill``: a KL term that keeps each row's in-batch similarity distribution close to a frozen
  teacher's (:class:`~smoothcse.objectives.SimilarityDistillation`, RankCSE-style).
"""

ALPHA_SCHEDULES: tuple[str, ...] = ("constant", "cos")
SOFT_DIRECTIONS: tuple[str, ...] = ("down", "up")
SOFT_WEIGHT_FORMS: tuple[str, ...] = ("exp", "linear")
"""SoftCSE weight variant: ``exp`` (smoothcse's, renormalised) or ``linear`` (Dvořák et al.'s restatement)."""
SOFT_SIMILARITIES: tuple[str, ...] = ("student", "teacher")
"""Whose similarities set SoftCSE's weights or temperatures: the model's own, or the frozen teacher's."""


def parse_spec(spec: str) -> tuple[str, ...]:
    """Split an objective spec into its components, in canonical order, ``"simcse"`` first.

    Case and surrounding spaces are ignored: ``"GS + is"`` gives ``("simcse", "gs", "is")``.
    Raises :class:`~smoothcse.errors.ConfigError` for an empty, unknown or repeated component, and
    for ``soft-weight`` together with ``soft-temp`` (two parametrisations of the same idea that
    would share one ``soft_strength``; pick one).
    """
    if not isinstance(spec, str):
        raise ConfigError(f"--objective must be a string such as 'simcse+gs', got {spec!r}.")
    parts = [part.strip().lower() for part in spec.split("+")]
    seen: set[str] = set()
    for part in parts:
        if not part:
            raise ConfigError(
                f"--objective {spec!r} has an empty component; join components with single '+', e.g. 'simcse+gs+is'."
            )
        if part not in COMPONENTS:
            raise ConfigError(
                f"--objective {spec!r}: unknown component {part!r}.{closest(part, COMPONENTS)} "
                f"Valid components: {', '.join(COMPONENTS)}."
            )
        if part in seen:
            raise ConfigError(f"--objective {spec!r}: component {part!r} is given twice.")
        seen.add(part)
    if {"soft-weight", "soft-temp"} <= seen:
        raise ConfigError(
            f"--objective {spec!r}: choose one of 'soft-weight' and 'soft-temp'; they are two "
            "parametrisations of SoftCSE sharing one soft_strength and are not combined."
        )
    seen.add("simcse")
    return tuple(name for name in COMPONENTS if name in seen)


@dataclass
class ObjectiveConfig:
    """Which objective to train with, and its hyperparameters (defaults: unsup-SimCSE, BERT-base).

    Only the fields of the components named in ``spec`` are used; the others are ignored (and only
    range-checked). See docs/objectives.md for the formulas.
    """

    spec: str = "simcse"
    """Components joined by '+': simcse, gs, is, soft-weight, soft-temp (e.g. 'simcse+gs+is')."""
    temperature: float = 0.05
    """InfoNCE temperature tau, shared by every term."""

    gs_num: int = 192
    """GS-InfoNCE: number M of Gaussian negatives drawn per step (a count, not a ratio)."""
    gs_std: float = 0.5
    """GS-InfoNCE: standard deviation of the noise (recorded per recipe; with cosine similarity it
    does not change the loss)."""

    is_bank_size: int = 1024
    """IS-CSE: rows in the FIFO bank of past positives; must be >= the (global) batch size."""
    is_k: int = 16
    """IS-CSE: neighbours retrieved per positive (the positive itself excluded)."""
    is_scale: float = 2.0
    """IS-CSE: the attention softmax is taken over dot products divided by this constant."""
    is_alpha: float = 0.1
    """IS-CSE: weight of the smoothing term under the 'constant' schedule."""
    is_alpha_schedule: str = "constant"
    """IS-CSE: 'constant' (is_alpha) or 'cos' (is_alpha_start -> is_alpha_end over the first half)."""
    is_alpha_start: float = 0.005
    is_alpha_end: float = 0.05

    soft_direction: str = "down"
    """SoftCSE: 'down' pushes near negatives less (false-negative view), 'up' pushes them more."""
    soft_strength: float = 1.0
    """SoftCSE: how strongly weights/temperatures depend on similarity; 0 is exactly SimCSE."""
    soft_weight_form: str = "linear"
    """SoftCSE weight variant: 'exp' (w = exp(+-strength s/tau), mean 1 per row) or 'linear'
    (w = 1 - strength (1 -+ s)/2, no renormalisation; 'down' at strength 1 is Dvořák et al.'s (1 - s)/2)."""
    soft_tau_min: float = 0.025
    """SoftCSE temperature variant: lower bound of the per-pair temperatures."""
    soft_tau_max: float = 0.1
    """SoftCSE temperature variant: upper bound of the per-pair temperatures."""
    soft_similarity: str = "student"
    """SoftCSE: whose cosine sets the weights or temperatures: 'student' (the model's own, detached) or
    'teacher' (the frozen teacher's, as Dvořák et al. restate SoftCSE; see --teacher)."""

    distill_weight: float = 1.0
    """distill: weight beta of KL(teacher || student) over each anchor's in-batch similarities; 0 is exactly SimCSE."""
    distill_temperature: float = 0.05
    """distill: temperature of both softmaxes (teacher's and student's similarities) in the KL term."""

    seed: int = 42
    """Seed of the Gaussian-noise generator of an objective built on its own (``build_objective(config)``,
    :mod:`smoothcse.st`'s losses). A training run has one seed: its config sets this field to ``seed``
    (:func:`smoothcse.config.build_config` refuses another value) and passes it to ``build_objective``."""

    @property
    def components(self) -> tuple[str, ...]:
        """The parsed spec, e.g. ``("simcse", "gs", "is")``."""
        return parse_spec(self.spec)

    @property
    def reads_teacher(self) -> bool:
        """Whether a component reads a frozen teacher's similarities: ``distill``, or SoftCSE with
        ``soft_similarity = "teacher"``."""
        components = self.components
        soft = "soft-weight" in components or "soft-temp" in components
        return "distill" in components or (soft and self.soft_similarity == "teacher")

    def used_settings(self) -> dict[str, Any]:
        """The hyper-parameters the spec's components read (the rest are ignored), in field order."""
        components = self.components
        prefixes = {
            "gs": ("gs_",),
            "is": ("is_",),
            "soft-weight": ("soft_direction", "soft_strength", "soft_weight", "soft_similarity"),
            "soft-temp": ("soft_direction", "soft_strength", "soft_tau", "soft_similarity"),
            "distill": ("distill_",),
        }
        wanted = ("temperature",) + tuple(p for c in components for p in prefixes.get(c, ()))
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith(wanted)}

    def validate(self) -> None:
        """Raise :class:`~smoothcse.errors.ConfigError` naming the option for any unusable value."""
        components = self.components
        _positive("temperature", self.temperature)
        _integer("gs_num", self.gs_num, minimum=0)
        _positive("gs_std", self.gs_std)
        _integer("is_bank_size", self.is_bank_size, minimum=1)
        _integer("is_k", self.is_k, minimum=1)
        _positive("is_scale", self.is_scale)
        for name in ("is_alpha", "is_alpha_start", "is_alpha_end", "soft_strength"):
            _non_negative(name, getattr(self, name))
        _choice("is_alpha_schedule", self.is_alpha_schedule, ALPHA_SCHEDULES)
        _choice("soft_direction", self.soft_direction, SOFT_DIRECTIONS)
        _choice("soft_weight_form", self.soft_weight_form, SOFT_WEIGHT_FORMS)
        _choice("soft_similarity", self.soft_similarity, SOFT_SIMILARITIES)
        _non_negative("distill_weight", self.distill_weight)
        _positive("distill_temperature", self.distill_temperature)
        if "soft-weight" in components and self.soft_weight_form == "linear" and self.soft_strength > 1:
            raise ConfigError(
                f"Objective option 'soft_strength' must be in [0, 1] with soft_weight_form 'linear' (a weight "
                f"1 - strength (1 -+ s)/2 must stay >= 0), got {self.soft_strength}."
            )
        _positive("soft_tau_min", self.soft_tau_min)
        _positive("soft_tau_max", self.soft_tau_max)
        _integer("seed", self.seed, minimum=None)
        if "is" in components and self.is_k >= self.is_bank_size:
            raise ConfigError(
                f"Objective option 'is_k' must be smaller than 'is_bank_size' ({self.is_bank_size}), got {self.is_k}."
            )
        if "soft-temp" in components and not self.soft_tau_min <= self.temperature <= self.soft_tau_max:
            raise ConfigError(
                "Objective options 'soft_tau_min' <= 'temperature' <= 'soft_tau_max' must hold for 'soft-temp', "
                f"got {self.soft_tau_min} <= {self.temperature} <= {self.soft_tau_max}."
            )


def _label(name: str) -> str:
    return f"Objective option '{name}'"


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{_label(name)} must be a finite number, got {value!r}.")
    return float(value)


def _positive(name: str, value: object) -> None:
    if _number(name, value) <= 0:
        raise ConfigError(f"{_label(name)} must be > 0, got {value!r}.")


def _non_negative(name: str, value: object) -> None:
    if _number(name, value) < 0:
        raise ConfigError(f"{_label(name)} must be >= 0, got {value!r}.")


def _integer(name: str, value: object, *, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_label(name)} must be an integer, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{_label(name)} must be >= {minimum}, got {value}.")


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = closest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(f"{_label(name)} must be one of {', '.join(choices)}, got {value!r}.{hint}")
