"""Checks of configuration values that :mod:`smoothcse.config` applies to every key: no value ends in a traceback.

* A number must be finite: ``nan`` and ``inf`` are refused wherever a number is read (TOML writes them, and
  click parses ``--lr nan``).
* Every key has a declared type (``lr: float``, ``hidden_dropout: float | None``): a value of another type is
  refused by name, also for a key whose default is unset.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from smoothcse.errors import ConfigError


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
    return value_type(typing.get_type_hints(cls).get(key))


def value_type(hint: Any) -> Any:
    """``int`` for ``int``, ``float`` for ``float | None``; None for a union of several types."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else None
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
