"""Alignment and uniformity of an embedding space (Wang & Isola, ICML 2020), as SimCSE measures them.

On L2-normalised embeddings, lower is better for both: alignment (α = 2) over the STS-B pairs scored above
4.0, uniformity (t = 2) over every distinct sentence of the same split (all pairs i < j, as ``torch.pdist``).
Default split: STS-B test. The definitions and their bounds: docs/experiments.md.

>>> geometry = alignment_uniformity(encoder.encode)          # doctest: +SKIP
>>> geometry["alignment"], geometry["uniformity"]             # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.special import logsumexp

from smoothcse.errors import ConfigError, DataError

if TYPE_CHECKING:  # the evaluation package is imported when measuring, not when this module is
    from smoothcse.evaluation.embedding import EmbedFn

POSITIVE_THRESHOLD = 4.0
"""STS-B pairs with a gold score strictly above this are the positive pairs (SimCSE's choice)."""
ALPHA = 2.0
T = 2.0


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, in float64 (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an (n, d) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return cast(np.ndarray, np.divide(x, norms, out=np.zeros_like(x), where=norms > 0))


def alignment(x: np.ndarray, y: np.ndarray, alpha: float = ALPHA) -> float:
    """E_i ||x̂_i - ŷ_i||^α over row-aligned positive pairs (x̂, ŷ: the L2-normalised rows)."""
    x, y = normalise(x), normalise(y)
    if x.shape != y.shape:
        raise ValueError(f"alignment: the two sides differ in shape ({x.shape} vs {y.shape})")
    if x.shape[0] == 0:
        raise ValueError("alignment: no positive pairs")
    distances = np.linalg.norm(x - y, axis=1)  # (n,)
    return float(np.mean(distances**alpha))


def uniformity(x: np.ndarray, t: float = T) -> float:
    """log of the mean over all pairs i < j of exp(-t ||x̂_i - x̂_j||²) (x̂: the L2-normalised rows).

    Uses ||u - v||² = 2 - 2 u·v for unit vectors and a log-sum-exp, so it is exact and stable for
    thousands of rows (an (n, n) Gram matrix, no (n, n, d) tensor).
    """
    x = normalise(x)
    n = x.shape[0]
    if n < 2:
        raise ValueError("uniformity: needs at least two embeddings")
    gram = x @ x.T  # (n, n)
    i, j = np.triu_indices(n, k=1)
    squared = np.clip(2.0 - 2.0 * gram[i, j], 0.0, 4.0)  # (n(n-1)/2,)
    return float(logsumexp(-t * squared) - math.log(squared.size))


def alignment_uniformity(
    embed: EmbedFn,
    data_dir: Any = None,
    split: str = "test",
    *,
    threshold: float = POSITIVE_THRESHOLD,
    alpha: float = ALPHA,
    t: float = T,
) -> dict[str, Any]:
    """Alignment and uniformity of ``embed`` on one STS-B split (``test``, ``dev`` or ``train``).

    Returns ``{"alignment", "uniformity", "dataset": "STSb", "split", "threshold", "alpha", "t",
    "n_positive_pairs", "n_sentences"}``. Raises DataError when the file is missing or no pair scores above
    ``threshold``, ConfigError for an unknown split or a non-positive ``alpha`` or ``t``.
    """
    from smoothcse.evaluation.data import load_stsb
    from smoothcse.evaluation.embedding import encode_unique, rows

    pairs = load_stsb(split, data_dir)
    positive = pairs.scores > threshold
    if not positive.any():
        raise DataError(f"STS-B {split}: no pair has a gold score above {threshold}; cannot measure alignment.")
    if t <= 0 or alpha <= 0:
        raise ConfigError(f"alignment_uniformity: alpha and t must be positive, got alpha={alpha}, t={t}.")
    vectors, index = encode_unique(embed, pairs.sentences1 + pairs.sentences2, desc=f"STSb {split} (geometry)")
    left = [s for s, keep in zip(pairs.sentences1, positive) if keep]
    right = [s for s, keep in zip(pairs.sentences2, positive) if keep]
    return {
        "alignment": alignment(rows(vectors, index, left), rows(vectors, index, right), alpha),
        "uniformity": uniformity(vectors, t),
        "dataset": "STSb",
        "split": split,
        "threshold": threshold,
        "alpha": alpha,
        "t": t,
        "n_positive_pairs": int(positive.sum()),
        "n_sentences": len(index),
    }
