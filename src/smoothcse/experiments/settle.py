"""A sweep settles every run's settings before its first run.

* A flag on the command line overrides the grid's value for that setting, as every flag does: the grid's
  ``steps`` shorthand sets ``max_steps`` and ``max_sentences``, so ``--max-steps 2`` with a grid's
  ``steps = 1000`` runs 2 steps and ``steps`` keeps only its sentence count (and ``--set steps=N`` replaces
  a grid's own ``max_steps`` / ``max_sentences``).
* Any run whose configuration still cannot be built (a conflict, an unknown arm or axis value) stops the
  sweep before anything runs, with one message; ``--dry-run`` makes the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smoothcse.errors import ConfigError

STEPS = "steps"
"""The grid's shorthand (:data:`smoothcse.experiments.grid.STEPS_KEY`)."""
SET_BY_STEPS = ("max_steps", "max_sentences")


def settle_steps(grid_values: dict[str, Any], overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's values with the flags' ``overrides`` applied over the grid's, and the flags' ``max_steps`` /
    ``max_sentences`` to apply after the grid's ``steps`` has set them (empty when there is nothing to settle)."""
    values = {**grid_values, **overrides}
    if STEPS in overrides:  # the flag's steps replaces what the grid set
        for key in SET_BY_STEPS:
            if key not in overrides:
                values.pop(key, None)
        return values, {}
    if STEPS not in values:
        return values, {}
    return values, {key: values.pop(key) for key in SET_BY_STEPS if key in overrides}


def refuse_invalid(planned: Sequence[Any], source: str) -> None:
    """One message, before any run, when a planned run's configuration cannot be built."""
    invalid = [item for item in planned if item.status == "invalid"]
    if invalid:
        first = invalid[0]
        more = f" ({len(invalid) - 1} more run(s) likewise)" if len(invalid) > 1 else ""
        raise ConfigError(f"{source}: run {first.spec.name}: {first.error}{more}; nothing was run.")
