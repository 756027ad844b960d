"""The one embedding protocol every evaluation takes (:data:`EmbedFn`: STS, transfer, retrieval and the geometry
measures), and the one place sentences are de-duplicated. If an embedding function also accepts a ``desc=``
keyword (or ``**kwargs``), :func:`encode_unique` passes it the task's name (a progress-bar label).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

EmbedFn = Callable[[list[str]], np.ndarray]
"""An embedding function: a list of texts in, an ``(n, d)`` float array out (one row per text, in order)."""


def accepts_desc(embed: EmbedFn) -> bool:
    """Whether ``embed`` takes a ``desc`` keyword (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(embed).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "desc" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def distinct(sentences: Iterable[str]) -> dict[str, int]:
    """Each distinct sentence, in first-seen order, and its row among them."""
    return {sentence: row for row, sentence in enumerate(dict.fromkeys(sentences))}


def encode_unique(
    embed: EmbedFn, sentences: Sequence[str], desc: str | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """Embed each distinct sentence once: the (n_unique, d) embeddings and the row of every distinct sentence.

    ``desc`` is passed on (a progress-bar label) only when ``embed`` accepts a ``desc`` or ``**kwargs``.
    """
    index = distinct(sentences)
    unique = list(index)
    if desc is not None and accepts_desc(embed):
        vectors = np.asarray(embed(unique, desc=desc))  # type: ignore[call-arg]
    else:
        vectors = np.asarray(embed(unique))
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        got = f"shape {vectors.shape} for {len(unique)} sentences"
        raise ValueError(f"embedding function returned {got}; expected (n, d)")
    return vectors, index


def rows(vectors: np.ndarray, index: Mapping[str, int], sentences: Sequence[str]) -> np.ndarray:
    """The embeddings of ``sentences`` (in order) from an :func:`encode_unique` result."""
    return vectors[np.fromiter((index[s] for s in sentences), dtype=np.int64, count=len(sentences))]
