"""The one path from an encoder to its scores, taken by ``smoothcse eval`` and by every sweep run."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smoothcse.evaluation.embedding import EmbedFn

Folder = str | os.PathLike[str] | None


@dataclass(frozen=True)
class EvalRequest:
    """The evaluations to run, run in this order: STS, dev, transfer, retrieval, geometry."""

    sts: Sequence[str] = ()
    dev: bool = False
    """STS-B dev and SICK trial."""
    transfer: Sequence[str] = ()
    retrieval: Sequence[Folder] = ()
    """BEIR folders, or names under ``<data dir>/retrieval`` (None: SciFact); each scored once."""
    retrieval_splits: Sequence[str] = ("test",)
    """Scored from one encoding of the corpus; a folder's result is the last split's, the others under ``splits``."""
    geometry: bool = False
    """Alignment and uniformity on STS-B test."""


class CachedEmbedding:
    """An embedding function that encodes each sentence once across calls (STS, dev and geometry share it)."""

    def __init__(self, embed: EmbedFn) -> None:
        self.embed = embed
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, sentences: list[str]) -> np.ndarray:
        todo = [s for s in sentences if s not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.embed(todo)))
        return np.stack([self.cache[s] for s in sentences]) if sentences else np.asarray(self.embed([]))


def load_for_eval(model: str, pooler: str | None, device: str) -> Any:
    """The encoder of ``model`` on ``device`` (``auto``: CUDA when available, else the CPU)."""
    import torch

    from smoothcse.model.encoder import load_encoder

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_encoder(model, pooler=pooler, device=device)


def encoder_embed(encoder: Any, batch_size: int, progress: bool = False) -> EmbedFn:
    """``encoder.encode`` as an embedding function (progress bars labelled by task when ``progress``)."""
    return functools.partial(encoder.encode, batch_size=batch_size, show_progress_bar=progress)


def run_evaluations(
    embed: EmbedFn,
    data_dir: Folder,
    request: EvalRequest,
    *,
    n_jobs: int = -1,
    progress: bool = False,
    cache: bool = False,
    show: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """Run what ``request`` asks: ``{"sts", "dev", "transfer", "retrieval" (one result per folder), "geometry"}``,
    each present if asked, each handed to ``show`` as it is done.

    ``cache``: STS, dev and geometry embed each sentence once between them (a sweep's runs).
    """
    from smoothcse.evaluation import sts  # looked up at call time: tests replace sts.evaluate_sts
    from smoothcse.evaluation.data import DEV_STS_TASKS

    scored = CachedEmbedding(embed) if cache else embed
    out: dict[str, Any] = {}

    def record(key: str, result: Any) -> None:
        out[key] = result
        if show is not None:
            show(key, result)

    if request.sts:
        record("sts", sts.evaluate_sts(scored, data_dir, list(request.sts)))
    if request.dev:
        record("dev", sts.evaluate_sts(scored, data_dir, list(DEV_STS_TASKS), mode="dev"))
    if request.transfer:
        from smoothcse.evaluation.transfer import evaluate_transfer

        record("transfer", evaluate_transfer(embed, data_dir, request.transfer, progress=progress, n_jobs=n_jobs))
    if request.retrieval:
        record("retrieval", _retrieval(embed, data_dir, request.retrieval, request.retrieval_splits))
    if request.geometry:
        from smoothcse.experiments.geometry import alignment_uniformity

        record("geometry", alignment_uniformity(scored, data_dir, "test"))
    return out


def _retrieval(embed: EmbedFn, data_dir: Folder, folders: Sequence[Folder], splits: Sequence[str]) -> list[Any]:
    from smoothcse.evaluation.retrieval import evaluate_retrieval_splits, resolve_retrieval_folder

    results = []
    for folder in dict.fromkeys(resolve_retrieval_folder(name, data_dir) for name in folders):
        *others, headline = evaluate_retrieval_splits(embed, folder, data_dir, splits).values()
        results.append({**headline, "splits": {other["split"]: other for other in others}} if others else headline)
    return results
