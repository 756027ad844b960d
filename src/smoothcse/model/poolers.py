"""SimCSE's pooler names and their sentence-transformers equivalents (no torch import: the
configuration reads them).

``cls`` applies SimCSE's MLP head to the [CLS] vector during training; ``cls_before_pooler`` is the
[CLS] vector alone; ``avg`` the mean of the last layer; ``avg_first_last`` / ``avg_top2`` the mean of
two layers averaged.
"""

from __future__ import annotations

from smoothcse.errors import ConfigError

POOLERS = ("cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2")
CLS_POOLERS = ("cls", "cls_before_pooler")
"""The poolers that read the [CLS] row of the last layer alone."""
LAYERED_POOLERS = ("avg_first_last", "avg_top2")
"""The poolers that average two layers' states (they need every hidden state)."""

ST_POOLING_MODES = {"cls": "cls", "cls_before_pooler": "cls", "avg": "mean"}
"""The sentence-transformers ``Pooling`` mode of each pooler that reads the last layer alone (the
head of ``cls`` is a separate ``Dense`` module)."""
POOLERS_OF_ST_MODES = {mode: pooler for pooler, mode in ST_POOLING_MODES.items() if pooler != "cls"}
"""The other way round: the pooler of a sentence-transformers folder's ``Pooling`` mode (no SimCSE head)."""


def st_pooling_mode(pooler: str) -> str:
    """The sentence-transformers Pooling mode equal to a smoothcse training pooler."""
    if pooler in ST_POOLING_MODES:
        return ST_POOLING_MODES[pooler]
    raise ConfigError(
        f"--pooler {pooler}: the benchmark builds the sentence-transformers side only for cls, "
        "cls_before_pooler and avg; pick one of those."
    )


__all__ = ["CLS_POOLERS", "LAYERED_POOLERS", "POOLERS", "POOLERS_OF_ST_MODES", "ST_POOLING_MODES", "st_pooling_mode"]
