"""Harder positives than dropout alone: each view of a unit cropped and/or thinned independently.

An already-trained encoder tells a sentence from the rest of a batch under dropout alone, so the InfoNCE
of two dropout views is nearly zero and teaches nothing. Two views that differ in their text keep the
positive pair informative:

- ``crop`` (Contriever, Izacard et al., TMLR 2022): each view keeps a random contiguous span of the unit's
  tokens, of a fraction uniform in [crop, 1] of its length, starting uniformly;
- ``delete`` (TSDAE's noise, Wang et al., EMNLP Findings 2021): each view deletes every token with this
  probability, keeping at least one.

Both act on the token ids between the first and last token (the tokenizer's [CLS]/<s> and [SEP]/</s>,
which stay), after cropping comes deletion, and each view draws its own. The draws come from a generator
seeded by (run seed, step, rank), so a resumed run sees the views the interrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewNoise:
    """How each view of a unit is made from its token ids (both 0: the two views are the same ids)."""

    crop: float = 0.0
    """Smallest fraction of the unit's inner tokens a view keeps (0 = no cropping)."""
    delete: float = 0.0
    """Probability of deleting each inner token (0 = no deletion)."""

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.delete > 0

    def view(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One view of a unit's ids: the first token, the cropped and thinned inner tokens, the last token."""
        if len(ids) <= 3:  # at most one inner token: nothing to take away
            return ids
        head, body, tail = ids[:1], ids[1:-1], ids[-1:]
        if self.crop > 0:
            keep = max(1, math.ceil(rng.uniform(self.crop, 1.0) * len(body)))
            start = int(rng.integers(0, len(body) - keep + 1))
            body = body[start : start + keep]
        if self.delete > 0:
            kept = rng.random(len(body)) >= self.delete  # (len,)
            if not kept.any():
                kept[int(rng.integers(len(body)))] = True
            body = body[kept]
        return np.concatenate([head, body, tail])

    def views(
        self, units: list[np.ndarray], seed: int, step: int, rank: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Two independent views of each unit, drawn from the generator of (seed, step, rank)."""
        rng = np.random.default_rng([seed, step, rank])
        first = [self.view(ids, rng) for ids in units]
        second = [self.view(ids, rng) for ids in units]
        return first, second


__all__ = ["ViewNoise"]
