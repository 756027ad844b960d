"""Checks of configuration values that :mod:`smoothcse.config` applies to every key: no value ends in a traceback.

* A number must be finite: ``nan`` and ``inf`` are refused wherever a number is read (TOML writes them, and
  click parses ``--lr nan``).
* Every key has a declared type (``lr: float``, ``hidden_dropout: float | None``): a value of another type is
  refused by name, also for a key whose default is unset.
* Ranges that ``validate`` did not name, each of which would otherwise fail deep inside a library.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from smoothcse.errors import ConfigError

SEED_LIMIT = 2**32 - 1
"""NumPy's legacy seeding takes 0 .. 2**32 - 1."""


def finite(value: float, key: str, source: str) -> float:
    """``value``, or a ConfigError when it is nan or infinite."""
    if not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}.")
    return value


def declared_type(key: str) -> Any:
    """The declared type of config key ``key`` (``objective.x`` for objective options), None left out of
    an optional's union; None for an unknown key."""
    from smoothcse.config import TrainConfig
    from smoothcse.objectives import ObjectiveConfig

    cls: type = TrainConfig
    if key.startswith("objective."):
        cls, key = ObjectiveConfig, key.partition(".")[2]
    hint = typing.get_type_hints(cls).get(key)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    return hint


def coerce(value: Any, key: str, source: str) -> Any:
    """A TOML or command-line value for config key ``key``, checked against the key's declared type."""
    kind = declared_type(key)
    if value is None:
        return value
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}.")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}.")
        return finite(float(value), key, source)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}.")
    if kind is str and not isinstance(value, str):
        quoted = f' (quote it: "{value}")' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}{quoted}.")
    return value


def check_ranges(config: Any) -> None:
    """Ranges of TrainConfig values that would otherwise fail inside numpy, torch or the evaluator."""
    if not 0 <= config.seed <= SEED_LIMIT:
        raise ConfigError(f"--seed must be in [0, {SEED_LIMIT}], got {config.seed}.")
    if config.max_bad_steps <= 0:
        raise ConfigError(f"--max-bad-steps must be a positive integer, got {config.max_bad_steps}.")
    if config.eval_batch_size <= 0:
        raise ConfigError(f"eval_batch_size must be a positive integer, got {config.eval_batch_size}.")
    if config.keep_checkpoints < 0:
        raise ConfigError(f"--keep-checkpoints must be >= 0, got {config.keep_checkpoints}.")
    if config.adam_eps <= 0:
        raise ConfigError(f"--adam-eps must be positive, got {config.adam_eps}.")


__all__ = ["check_ranges", "coerce", "declared_type", "finite"]
