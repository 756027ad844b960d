"""MTEB 2 for smoothcse models, offline: an encoder adapter and tasks that read local files.

:class:`SmoothCSEMTEBEncoder` puts a smoothcse encoder behind MTEB 2's encoder protocol;
:class:`LocalBeirRetrieval` and :class:`LocalSTS` read local files through smoothcse's own loaders, so both
evaluations see the same data. mteb is imported only when an adapter or a task is built. Scores are MTEB's own
(fractions in [0, 1]), not smoothcse's × 100. Usage: docs/ecosystem.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from smoothcse.evaluation.data import STSPairs
    from smoothcse.model.encoder import SentenceEncoder

    LocalBeirRetrieval: type  # built on first access by __getattr__ (they subclass mteb's tasks)
    LocalSTS: type

MTEB_REQUIREMENT = "mteb>=2,<3"
"""The mteb versions this module is written for (tested with 2.26)."""
DEFAULT_BATCH_SIZE = 128
"""The batch size used when MTEB passes none (``smoothcse eval``'s default)."""


def _require_mteb() -> Any:
    """Import mteb, or say how to get it (the ``mteb`` extra pins the version)."""
    try:
        import mteb
    except ImportError:
        raise ImportError(f"smoothcse.mteb needs mteb: pip install '{MTEB_REQUIREMENT}'") from None
    return mteb


class SmoothCSEMTEBEncoder:
    """A smoothcse encoder behind MTEB 2's encoder protocol (:class:`mteb.EncoderProtocol`).

    ``model``: anything :func:`smoothcse.model.load_encoder` loads (so with ``smoothcse eval``'s pooler), or a
    loaded :class:`~smoothcse.model.SentenceEncoder`. Embeddings are :meth:`SentenceEncoder.encode`'s, the
    similarity is cosine; smoothcse models take no instructions, so ``prompt_type`` is ignored.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceEncoder,
        revision: str | None = None,
        *,
        device: str | None = None,
        pooler: str | None = None,
        name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **_: Any,
    ) -> None:
        _require_mteb()
        from smoothcse.model.encoder import SentenceEncoder, load_encoder, resolve_model_path

        self.path: str | None = None
        self.pooler = pooler
        if isinstance(model, SentenceEncoder):
            self.encoder = model if device is None else model.to(device)
        else:
            self.path = resolve_model_path(os.fspath(model))
            self.encoder = load_encoder(self.path, pooler=pooler, device=device or "cpu")
        self.batch_size = batch_size
        self.revision = revision
        if name is None:  # the folder's or alias's last part: runs/demo -> smoothcse/demo
            name = ("" if isinstance(model, SentenceEncoder) else Path(os.fspath(model)).name) or "model"
        self.name = name if "/" in name else f"smoothcse/{name}"

    @functools.cached_property
    def mteb_model_meta(self) -> Any:
        """MTEB's :class:`~mteb.models.model_meta.ModelMeta`: name, size, cosine similarity, no instructions."""
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        from smoothcse.model.encoder import eval_max_length

        encoder = self.encoder
        overwrites: dict[str, Any] = {
            "name": self.name,
            "revision": self.revision,
            "framework": ["PyTorch", "Transformers"],
            "similarity_fn_name": ScoringFunction.COSINE,
            "embed_dim": encoder.embedding_dim,
            "n_parameters": sum(p.numel() for p in encoder.parameters()),
            "max_tokens": encoder.max_length or eval_max_length(encoder.backbone, encoder.tokenizer),
            "open_weights": True,
            "use_instructions": False,
            "modalities": ["text"],
            "model_type": ["dense"],
        }
        if self.path is not None and Path(self.path).is_dir():  # so that meta.load_model() rebuilds this adapter
            path = str(Path(self.path).resolve())
            overwrites.update(loader=_load_from_meta, loader_kwargs={"path": path, "pooler": self.pooler})
        return ModelMeta.create_empty(overwrites=overwrites)

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any = None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every text of MTEB's ``DataLoader`` (batches ``{"text": [...]}``) in order: ``(n, d)`` float32,
        each distinct text once, in length-sorted batches of ``kwargs["batch_size"]``.
        """
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise ValueError(f"smoothcse encodes text only; MTEB sent a batch with {sorted(batch)}")
            texts.extend(batch["text"])
        name = getattr(task_metadata, "name", None) or "encoding"
        return self.encoder.encode(
            texts,
            batch_size=int(kwargs.get("batch_size") or self.batch_size),
            show_progress_bar=bool(kwargs.get("show_progress_bar", False)),
            desc=f"{name} {prompt_type.value}" if hasattr(prompt_type, "value") else name,
        )

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Cosine similarity of every row of ``embeddings1`` with every row of ``embeddings2`` (MTEB's ``cos_sim``)."""
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Cosine similarity of each row pair (MTEB's ``pairwise_cos_sim``)."""
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    def __repr__(self) -> str:
        return f"SmoothCSEMTEBEncoder({self.name!r}, pooler={self.encoder.eval_pooler!r})"


def _load_from_meta(model_name: str, revision: str | None = None, *, path: str, **kwargs: Any) -> SmoothCSEMTEBEncoder:
    """The ``loader`` of :attr:`SmoothCSEMTEBEncoder.mteb_model_meta` (``ModelMeta.load_model``)."""
    return SmoothCSEMTEBEncoder(path, revision, name=model_name, **kwargs)


def _metadata(*, name: str, description: str, task_type: Any, main_score: str, split: str, source: str) -> Any:
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=name,
        # never loaded: the tasks' load_data reads local files; path and revision name the source
        dataset={"path": source, "revision": "local"},
        description=description,
        type=task_type,
        category="t2t",
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score=main_score,
        license="not specified",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )


class _LocalTask:
    """What both local tasks share. MTEB's ``AbsTask.unload_data`` drops the instance's metadata after a run,
    expecting a published task's class metadata to take over, and a local task has none: keep it."""

    dataset: Any
    data_loaded: bool

    def unload_data(self) -> None:
        self.dataset = None
        self.data_loaded = False


class _LocalBeirTask(_LocalTask):
    """MTEB retrieval task over a local BEIR folder (a path, or a name under ``<data dir>/retrieval/``; default
    ``scifact``), read by smoothcse's :func:`load_beir`. ``ignore_identical_ids`` defaults to True as in BEIR and
    ``evaluate_retrieval`` (MTEB's own SciFact uses False). The main score is ``ndcg_at_10``; ``k_values`` default
    to MTEB's (1, 3, 5, 10, 20, 100, 1000), so the search keeps the top 1000.
    """

    k_values: Any  # mteb's attribute, set here only when given

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        split: str = "test",
        *,
        data_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        ignore_identical_ids: bool = True,
        k_values: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        from smoothcse.evaluation.retrieval import resolve_retrieval_folder

        self.folder = resolve_retrieval_folder(folder, data_dir)
        self.split = split
        self.metadata = _metadata(
            name=name or f"{self.folder.name}-local",
            description=f"BEIR folder {self.folder}, split {split}, read by smoothcse's load_beir.",
            task_type="Retrieval",
            main_score="ndcg_at_10",
            split=split,
            source=str(self.folder),
        )
        self.ignore_identical_ids = ignore_identical_ids
        if k_values is not None:
            self.k_values = tuple(k_values)
        super().__init__(**kwargs)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        from datasets import Dataset

        from smoothcse.evaluation.retrieval import load_beir

        data = load_beir(self.folder, self.split)
        corpus = Dataset.from_dict({"id": data.corpus_ids, "title": data.titles, "text": data.texts})
        queries = Dataset.from_dict({"id": data.query_ids, "text": data.queries})
        qrels = {qid: dict(docs) for qid, docs in data.qrels.items()}
        self.dataset = {
            "default": {self.split: {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}}
        }
        self.data_loaded = True


class _LocalSTSTask(_LocalTask):
    """MTEB STS task over given :class:`~smoothcse.evaluation.data.STSPairs` (or :meth:`from_data_dir`).

    MTEB rescales the gold scores from [``min_score``, ``max_score``] to [0, 1] (Spearman does not change).
    The main score is ``cosine_spearman``, as in MTEB's STS tasks.
    """

    min_score: Any  # mteb's attributes: annotated int there, used as numbers
    max_score: Any

    def __init__(
        self,
        pairs: STSPairs,
        *,
        name: str = "STS-local",
        min_score: float = 0,
        max_score: float = 5,
        split: str = "test",
        source: str = "local",
        **kwargs: Any,
    ) -> None:
        self.pairs = pairs
        self.split = split
        self.min_score = min_score
        self.max_score = max_score
        self.metadata = _metadata(
            name=name,
            description=f"{len(pairs)} scored sentence pairs from {source}.",
            task_type="STS",
            main_score="cosine_spearman",
            split=split,
            source=source,
        )
        super().__init__(**kwargs)

    @classmethod
    def from_data_dir(
        cls,
        task: str = "STSBenchmark",
        split: str = "test",
        data_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """STS-B, SICK-R or STS12-16 from the data directory, read by smoothcse's own loader
        (:func:`smoothcse.evaluation.data.load_sts`): the pairs ``smoothcse eval`` scores. A year's
        subsets are concatenated (SentEval's "all", the pairs of MTEB's STS12-16)."""
        from smoothcse.datadir import resolve_data_dir
        from smoothcse.evaluation.data import STSPairs, load_sts

        root = resolve_data_dir(data_dir)
        loaded = load_sts(task, split, root)
        parts = list(loaded.subsets.values())
        pairs = STSPairs(
            f"{loaded.name}-{split}",
            [s for p in parts for s in p.sentences1],
            [s for p in parts for s in p.sentences2],
            np.concatenate([p.scores for p in parts]),
        )
        kwargs.setdefault("name", f"{loaded.name}-local")
        kwargs.setdefault("source", f"{root} ({loaded.name}, {split})")
        kwargs.setdefault("split", split)
        return cls(pairs, **kwargs)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        from datasets import Dataset

        data = Dataset.from_dict(
            {
                "sentence1": list(self.pairs.sentences1),
                "sentence2": list(self.pairs.sentences2),
                "score": [float(s) for s in self.pairs.scores],
            }
        )
        self.dataset = {"default": {self.split: data}}
        self.data_loaded = True


@functools.cache
def _task_classes() -> dict[str, type]:
    """Build the task classes on first use: the local tasks above on mteb's (so mteb is imported here)."""
    _require_mteb()
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.sts import AbsTaskSTS

    class LocalBeirRetrieval(_LocalBeirTask, AbsTaskRetrieval):
        __doc__ = _LocalBeirTask.__doc__

    class LocalSTS(_LocalSTSTask, AbsTaskSTS):
        __doc__ = _LocalSTSTask.__doc__

    for cls in (LocalBeirRetrieval, LocalSTS):
        cls.__module__ = __name__
    return {"LocalBeirRetrieval": LocalBeirRetrieval, "LocalSTS": LocalSTS}


def __getattr__(name: str) -> Any:
    if name in ("LocalBeirRetrieval", "LocalSTS"):
        return _task_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_BATCH_SIZE", "MTEB_REQUIREMENT", "LocalBeirRetrieval", "LocalSTS", "SmoothCSEMTEBEncoder"]
