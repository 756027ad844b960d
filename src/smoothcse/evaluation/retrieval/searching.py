"""Exact top-k search by cosine similarity, in corpus and query chunks (memory bounded by the chunk sizes),
with ties broken by an integer key per document: :func:`descending_id_keys` ranks larger document ids first,
as trec_eval does. ``backend="faiss"`` uses FAISS ``IndexFlatIP`` per chunk (optional).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import numpy as np

from smoothcse.errors import ConfigError

TIE_BREAK = "score descending, then document id descending (trec_eval comp_sim_docno)"
Backend = Literal["numpy", "faiss", "auto"]
Engine = Literal["numpy", "faiss"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; all-zero rows stay zero (cosine 0 with everything)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return cast(np.ndarray, x / np.maximum(norms, np.float32(1e-12)))


def _sorted_by_score_then_key(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per-row column order: score descending, then key ascending. (m, n) -> (m, n) indices."""
    return np.lexsort((keys, -scores), axis=1)


def topk_rows(scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's top ``k`` by (score desc, key asc), sorted; exact under ties.

    ``keys`` broadcasts to ``scores``' shape; lower key wins a tie. Cost O(m n) plus a full sort only
    for rows whose k-th score is tied with an entry outside the candidates.
    """
    keys = np.broadcast_to(keys, scores.shape)
    if scores.shape[1] <= k:
        return _sorted_by_score_then_key(scores, keys)
    cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (m, k), unordered, ties arbitrary
    kth = np.take_along_axis(scores, cand, axis=1).min(axis=1)
    # Rows whose k-th score is shared with a column argpartition left out: fully sort those rows.
    ambiguous = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
    if ambiguous.size:
        cand[ambiguous] = _sorted_by_score_then_key(scores[ambiguous], keys[ambiguous])[:, :k]
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    order = _sorted_by_score_then_key(cand_scores, np.take_along_axis(keys, cand, axis=1))
    return np.take_along_axis(cand, order, axis=1)


def _faiss_block(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of one corpus block with FAISS (``IndexFlatIP``)."""
    import faiss  # optional dependency

    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.ascontiguousarray(docs))
    scores, idx = index.search(np.ascontiguousarray(queries), k)
    return scores.astype(np.float32), idx.astype(np.int64)


def resolve_backend(backend: Backend) -> Engine:
    """``numpy`` or ``faiss``: ``auto`` picks faiss when it imports; ``faiss`` requires it."""
    if backend not in ("numpy", "faiss", "auto"):
        raise ConfigError(f"Unknown search backend '{backend}'; use numpy, faiss or auto.")
    if backend == "numpy":
        return "numpy"
    try:
        import faiss  # noqa: F401
    except ImportError:
        if backend == "faiss":
            raise ConfigError(
                "backend 'faiss' needs the faiss package: pip install 'smoothcse[faiss]' (faiss-cpu; or faiss-gpu)."
            ) from None
        return "numpy"
    return "faiss"


def search(
    query_emb: np.ndarray,
    corpus_emb: np.ndarray,
    top_k: int = 100,
    chunk_size: int = 50_000,
    *,
    query_chunk_size: int = 256,
    tie_keys: np.ndarray | None = None,
    normalize: bool = True,
    backend: Backend = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of every query over the corpus: ``(scores, indices)``, both ``(q, min(top_k, n))``.

    Rows are sorted by score descending, then by ``tie_keys`` ascending (default: corpus order). The corpus is
    scored ``chunk_size`` rows (and ``query_chunk_size`` queries) at a time, bounding the extra memory.
    ``normalize=False`` scores dot products. ``backend``: ``numpy``, ``faiss`` (its own choice among ties at a
    chunk's k-th score) or ``auto`` (faiss when importable).
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}.")
    if chunk_size < 1 or query_chunk_size < 1:
        raise ConfigError("chunk sizes must be >= 1.")
    queries = normalize_rows(query_emb) if normalize else np.asarray(query_emb, dtype=np.float32)
    # The corpus is converted (and normalised) one chunk at a time: no full-size copy (memmaps work).
    docs = corpus_emb if isinstance(corpus_emb, np.ndarray) else np.asarray(corpus_emb, dtype=np.float32)
    if queries.ndim != 2 or docs.ndim != 2 or queries.shape[1] != docs.shape[1]:
        raise ValueError(f"embedding shapes do not match: queries {queries.shape}, corpus {docs.shape}")
    n_docs = docs.shape[0]
    keys = np.arange(n_docs, dtype=np.int64) if tie_keys is None else np.asarray(tie_keys, dtype=np.int64)
    k = min(top_k, n_docs)
    engine = resolve_backend(backend)
    best_scores = np.empty((queries.shape[0], 0), dtype=np.float32)
    best_idx = np.empty((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, n_docs, chunk_size):
        block = docs[start : start + chunk_size]
        block = normalize_rows(block) if normalize else np.asarray(block, dtype=np.float32)
        block_keys = keys[start : start + chunk_size]
        block_scores, block_idx = _search_block(queries, block, k, block_keys, query_chunk_size, engine)
        best_scores, best_idx = merge_topk(best_scores, best_idx, block_scores, block_idx + start, keys, k)
    return best_scores, best_idx


def _search_block(
    queries: np.ndarray, block: np.ndarray, k: int, block_keys: np.ndarray, query_chunk_size: int, engine: Engine
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k within one corpus block (indices local to the block)."""
    kk = min(k, block.shape[0])
    if engine == "faiss":
        return _faiss_block(queries, block, kk)
    out_scores = np.empty((queries.shape[0], kk), dtype=np.float32)
    out_idx = np.empty((queries.shape[0], kk), dtype=np.int64)
    for q0 in range(0, queries.shape[0], query_chunk_size):
        scores = queries[q0 : q0 + query_chunk_size] @ block.T  # (bq, bc)
        scores[np.isnan(scores)] = -np.inf
        idx = topk_rows(scores, block_keys[None, :], kk)
        out_idx[q0 : q0 + len(idx)] = idx
        out_scores[q0 : q0 + len(idx)] = np.take_along_axis(scores, idx, axis=1)
    return out_scores, out_idx


def merge_topk(
    scores_a: np.ndarray, idx_a: np.ndarray, scores_b: np.ndarray, idx_b: np.ndarray, keys: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two per-query top lists (global corpus indices) into the top ``k`` by (score desc, key asc)."""
    scores = np.concatenate([scores_a, scores_b], axis=1)
    idx = np.concatenate([idx_a, idx_b], axis=1)
    order = topk_rows(scores, keys[idx], k)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(idx, order, axis=1)


def descending_id_keys(ids: Sequence[str]) -> np.ndarray:
    """Tie keys that rank larger ids first (trec_eval's docno-descending tie-break): key 0 = largest id."""
    order = sorted(range(len(ids)), key=ids.__getitem__, reverse=True)
    keys = np.empty(len(ids), dtype=np.int64)
    keys[order] = np.arange(len(ids), dtype=np.int64)
    return keys
