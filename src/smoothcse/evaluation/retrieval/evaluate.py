"""Dense retrieval end to end: embed queries and corpus (documents as BEIR's ``SentenceBERT.encode_corpus`` joins
them), search, score (× 100, like every smoothcse score); and the table of results."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from smoothcse.errors import ConfigError
from smoothcse.evaluation.embedding import EmbedFn
from smoothcse.evaluation.report import format_table
from smoothcse.evaluation.retrieval.loading import BeirDataset, load_beir, resolve_retrieval_folder
from smoothcse.evaluation.retrieval.metrics import DEFAULT_K_VALUES, MAIN_METRIC, mean_metrics, per_query_metrics
from smoothcse.evaluation.retrieval.searching import (
    TIE_BREAK,
    Backend,
    descending_id_keys,
    merge_topk,
    normalize_rows,
    resolve_backend,
    search,
)

SCALE = 100.0
"""Stored metrics are trec_eval's fractions × SCALE: the scale of every smoothcse score (STS, transfer)."""
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("nDCG@10", "ndcg_at_10"),
    ("MAP@10", "map_at_10"),
    ("MRR@10", "mrr_at_10"),
    ("R@100", "recall_at_100"),
)


def _embed(embed: EmbedFn, texts: list[str], what: str) -> np.ndarray:
    """Call the embedding function and check its output shape and values."""
    emb = np.asarray(embed(texts), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"embed returned shape {emb.shape} for {len(texts)} {what}; expected (n, d)")
    bad = int((~np.isfinite(emb)).any(axis=1).sum())
    if bad:
        raise ValueError(f"embed returned non-finite values for {bad} of {len(texts)} {what}")
    return emb


def dense_run(
    embed: EmbedFn,
    data: BeirDataset,
    top_k: int = 100,
    *,
    sep: str = " ",
    corpus_chunk_size: int = 50_000,
    ignore_identical_ids: bool = True,
    backend: Backend = "numpy",
    timings: dict[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Embed queries and corpus (corpus in chunks of ``corpus_chunk_size``) and return the top-k run.

    Only the current corpus chunk's embeddings are held, so memory stays bounded for large corpora.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    queries = normalize_rows(_embed(embed, data.queries, "queries"))
    timings["encode_queries_s"] = time.perf_counter() - t0
    doc_ids = data.corpus_ids
    docs = data.documents(sep)
    keys = descending_id_keys(doc_ids)
    position = {doc: i for i, doc in enumerate(doc_ids)}
    overlap = ignore_identical_ids and any(qid in position for qid in data.query_ids)
    k = min(top_k + 1 if overlap else top_k, len(doc_ids))
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    best_idx = np.empty((len(queries), 0), dtype=np.int64)
    encode_s = search_s = 0.0
    for start in range(0, len(docs), corpus_chunk_size):
        t0 = time.perf_counter()
        block = normalize_rows(_embed(embed, docs[start : start + corpus_chunk_size], "documents"))
        t1 = time.perf_counter()
        scores, idx = search(
            queries,
            block,
            k,
            chunk_size=corpus_chunk_size,
            normalize=False,
            tie_keys=keys[start : start + len(block)],
            backend=backend,
        )
        best_scores, best_idx = merge_topk(best_scores, best_idx, scores, idx + start, keys, k)
        encode_s += t1 - t0
        search_s += time.perf_counter() - t1
    timings.update(encode_corpus_s=encode_s, search_s=search_s)
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(data.query_ids):
        hits = [(doc_ids[i], float(s)) for i, s in zip(best_idx[row], best_scores[row])]
        if ignore_identical_ids:
            hits = [(doc, s) for doc, s in hits if doc != qid]
        run[qid] = dict(hits[:top_k])
    return run


def evaluate_retrieval(
    embed: EmbedFn,
    folder: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "test",
    top_k: int = 100,
    **options: Any,
) -> dict[str, Any]:
    """Score ``embed`` on one split of one BEIR folder (default ``<data dir>/retrieval/scifact``, test split).

    Returns ``{"task", "dataset", "folder", "split", "main_metric": "ndcg_at_10", "main_score", "metrics" (× 100),
    "per_query": {"ndcg_at_10": {query id: score}}, "counts", "settings", "timings"}``; ``options`` as
    :func:`evaluate_retrieval_splits` takes them.
    """
    return evaluate_retrieval_splits(embed, folder, data_dir, (split,), top_k, **options)[split]


def evaluate_retrieval_splits(
    embed: EmbedFn,
    folder: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    splits: Sequence[str] = ("train", "test"),
    top_k: int = 100,
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    sep: str = " ",
    corpus_chunk_size: int = 50_000,
    ignore_identical_ids: bool = True,
    backend: Backend = "numpy",
) -> dict[str, dict[str, Any]]:
    """Several splits of one BEIR folder from ONE encoding of its corpus and of the union of their queries (a domain
    check's train queries to choose by, its test queries to report): ``{split: the result :func:`evaluate_retrieval`
    gives for it}`` (the shared encoding's timings in each)."""
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}.")
    if corpus_chunk_size < 1:
        raise ConfigError(f"corpus_chunk_size must be >= 1, got {corpus_chunk_size}.")
    start = time.perf_counter()
    root = resolve_retrieval_folder(folder, data_dir)
    datasets = {split: load_beir(root, split) for split in dict.fromkeys(splits)}
    timings = {"load_s": time.perf_counter() - start}
    run = dense_run(
        embed,
        _with_all_queries(list(datasets.values())),
        top_k,
        sep=sep,
        corpus_chunk_size=corpus_chunk_size,
        ignore_identical_ids=ignore_identical_ids,
        backend=backend,
        timings=timings,
    )
    settings = {
        "top_k": top_k,
        "k_values": list(k_values),
        "sep": sep,
        "similarity": "cosine",
        "ignore_identical_ids": ignore_identical_ids,
        "tie_break": TIE_BREAK,
        "corpus_chunk_size": corpus_chunk_size,
        "backend": resolve_backend(backend),
    }
    results = {}
    for split, data in datasets.items():
        t0 = time.perf_counter()
        scores = per_query_metrics({qid: run[qid] for qid in data.query_ids}, data.qrels, k_values)
        metrics = {name: SCALE * value for name, value in mean_metrics(scores).items()}  # × 100, as every score
        split_timings = {**timings, "metrics_s": time.perf_counter() - t0, "total_s": time.perf_counter() - start}
        results[split] = {
            "task": "retrieval",
            "dataset": data.name,
            "folder": str(data.folder),
            "split": split,
            "main_metric": MAIN_METRIC,
            "main_score": metrics.get(MAIN_METRIC),
            "metrics": metrics,
            "per_query": {MAIN_METRIC: {qid: SCALE * s[MAIN_METRIC] for qid, s in scores.items() if MAIN_METRIC in s}},
            "counts": {**data.counts(), "queries_evaluated": len(scores)},
            "settings": settings,
            "timings": {name: round(value, 4) for name, value in split_timings.items()},
        }
    return results


def _with_all_queries(datasets: Sequence[BeirDataset]) -> BeirDataset:
    """The first split's corpus with every split's queries (each query once, in split order)."""
    ids: dict[str, str] = {}
    for data in datasets:
        ids.update((qid, text) for qid, text in zip(data.query_ids, data.queries) if qid not in ids)
    return dataclasses.replace(datasets[0], query_ids=list(ids), queries=list(ids.values()))


def format_retrieval_table(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table (two decimals; the results are × 100) of one or more :func:`evaluate_retrieval` results.

    Columns: dataset, nDCG@10, MAP@10, MRR@10, R@100; an ``Avg`` row when there are several datasets.
    A metric that was not computed (cutoff not in ``k_values``) shows as ``-``.
    """
    rows = [results] if isinstance(results, Mapping) else list(results)
    header = ["dataset"] + [title for title, _ in TABLE_COLUMNS]
    values = [[result.get("metrics", {}).get(key) for _, key in TABLE_COLUMNS] for result in rows]
    body = [[f"{r.get('dataset', '?')} ({r.get('split', '?')})", *map(_cell, vals)] for r, vals in zip(rows, values)]
    if len(rows) > 1:
        body.append(["Avg"] + [_cell(_mean_or_none(column)) for column in zip(*values)])
    return format_table(header, body, sep=" | ", rule="-+-")


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
