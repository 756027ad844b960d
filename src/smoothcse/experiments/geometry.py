"""Alignment and uniformity of an embedding space (Wang & Isola, ICML 2020), as SimCSE measures them.

Both are computed on L2-normalised embeddings f(x) (so every squared distance lies in [0, 4]); lower is
better for both:

* **alignment** = E_{(x, y) ~ p_pos} ||f(x) - f(y)||^α with α = 2: how close the two sides of a positive
  pair are. As in SimCSE's analysis (Gao et al. 2021, §5), the positive pairs are the STS-B pairs whose
  gold score is **greater than 4.0** (on the 0-5 scale).
* **uniformity** = log E_{x, y ~ p_data} exp(-t ||f(x) - f(y)||²) with t = 2: how evenly the embeddings
  spread over the sphere. p_data is every distinct sentence of the same STS-B split (both sides of all
  pairs, duplicates removed), and the expectation runs over all unordered pairs of distinct sentences
  (i < j), as Wang & Isola's reference code does with ``torch.pdist``. It is 0 when every embedding
  coincides and at least -2t·n/(n-1) for n embeddings (by Jensen, since the mean cosine over pairs is at
  least -1/(n-1)); the bound is reached by a regular simplex, e.g. -8 for two antipodal points at t = 2.
  Embeddings spread at random over a high-dimensional sphere give about -2t = -4.

The split defaults to STS-B **test** (1,379 pairs, 231 with a score > 4.0, 2,551 distinct sentences);
``split="dev"`` gives STS-B dev (1,500 pairs, 208 positives, 2,909 sentences). Only the evaluation data are
read; nothing here depends on a model, only on an embedding function ``list[str] -> (n, d) array``.

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
    """Alignment and uniformity of ``embed`` on one STS-B split (see the module docstring).

    Args:
        embed: sentences -> (n, d) embeddings (e.g. ``encoder.encode``).
        data_dir: the data directory (default: :func:`smoothcse.datadir.resolve_data_dir`).
        split: ``"test"`` (default) or ``"dev"``; ``"train"`` is accepted too.
        threshold: pairs with a gold score strictly above it are positive pairs (SimCSE: 4.0).
        alpha, t: the exponents of Wang & Isola's losses (2 and 2, as SimCSE reports).

    Returns:
        ``{"alignment", "uniformity", "dataset": "STSb", "split", "threshold", "alpha", "t",
        "n_positive_pairs", "n_sentences"}``.

    Raises:
        DataError: the STS-B file is missing, or the split has no pair above ``threshold``.
        ConfigError: an unknown split.
    """
    from smoothcse.evaluation.data import load_stsb
    from smoothcse.evaluation.embedding import encode_unique, rows

    pairs = load_stsb(split, data_dir)
    positive = pairs.scores > threshold
    if not positive.any():
        raise DataError(f"STS-B {split}: no pair has a gold score above {threshold}; cannot measure alignment.")
    if t <= 0 or alpha <= 0:
        raise ConfigError(f"alignment_uniformity: alpha and t must be positive, got alpha={alpha}, t={t}.")
    sentences = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))
    vectors, index = encode_unique(embed, sentences, desc=f"STSb {split} (geometry)")
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
        "n_sentences": len(sentences),
    }


__all__ = ["ALPHA", "POSITIVE_THRESHOLD", "T", "alignment", "alignment_uniformity", "normalise", "uniformity"]
