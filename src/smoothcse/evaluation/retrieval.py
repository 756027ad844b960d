"""Dense retrieval evaluation on BEIR-format folders (SciFact by default), scored as BEIR and MTEB do.

A BEIR folder holds::

    corpus.jsonl or corpus.jsonl.gz   {"_id", "title", "text"} per line
    queries.jsonl                     {"_id", "text"} per line
    qrels/<split>.tsv                 header "query-id<TAB>corpus-id<TAB>score", integer scores

Evaluation takes any embedding function ``EmbedFn = Callable[[list[str]], np.ndarray]`` (an ``(n, d)``
float array per call), so it is decoupled from models: documents are embedded as
``(title + sep + text).strip()`` with ``sep = " "`` (BEIR's ``SentenceBERT.encode_corpus``), queries as
their text; cosine similarity; exact top-k by chunked matrix products (memory bounded by the chunk sizes,
so a 10^6-document corpus fits); metrics from the qrels exactly as ``pytrec_eval`` (trec_eval 9.0.x)
computes them:

- ``ndcg_at_k``  trec_eval ``ndcg_cut.k``: gain = qrels relevance (graded; only rel > 0 gains),
  discount log2(rank + 1), ideal DCG from all the query's qrels. The headline metric is ``ndcg_at_10``.
- ``map_at_k``   trec_eval ``map_cut.k``: sum of precision at each relevant retrieved rank <= k,
  divided by the number of relevant documents in the qrels (not by min(k, R)).
- ``mrr_at_k``   trec_eval ``recip_rank`` on the ranking cut at k (1 / rank of the first relevant).
- ``recall_at_k`` trec_eval ``recall.k``; ``precision_at_k`` trec_eval ``P.k`` (divides by k).

"Relevant" means qrels relevance >= 1 (trec_eval's default ``relevance_level``); 0 and negative
judgments are non-relevant; unjudged retrieved documents are non-relevant.

**Ties** are broken as trec_eval does (``form_res_rels.c``, ``comp_sim_docno``): score descending, then
document id descending (byte-wise ``strcmp``, which for UTF-8 equals Python's ``str`` order). The top-k
selection in :func:`search` uses the same order, so which tied documents make the cut is deterministic and
agrees with the ranking the metrics use.

**Queries**: only queries with qrels in the split are encoded and evaluated (BEIR's loader keeps exactly
those); a run is scored on the queries present in both the run and the qrels and averaged over them, as
``pytrec_eval`` + BEIR do. A query whose judgments are all 0 still counts (it scores 0), as in
pytrec_eval. With ``ignore_identical_ids=True`` (BEIR's default) a document whose id equals the query id
is never returned for that query.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import ConfigError, DataError, closest

EmbedFn = Callable[[list[str]], np.ndarray]
"""Maps a list of texts to an ``(n, d)`` float array (one row per text, in order)."""

Qrels = dict[str, dict[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_DATASET = "scifact"
RETRIEVAL_SUBDIR = "retrieval"
DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)
MAIN_METRIC = "ndcg_at_10"
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("nDCG@10", "ndcg_at_10"),
    ("MAP@10", "map_at_10"),
    ("MRR@10", "mrr_at_10"),
    ("R@100", "recall_at_100"),
)
TIE_BREAK = "score descending, then document id descending (trec_eval comp_sim_docno)"
BEIR_HINT = (
    "A BEIR folder holds corpus.jsonl (or corpus.jsonl.gz), queries.jsonl and qrels/<split>.tsv; "
    "BEIR's sets are at https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/<name>.zip "
    "(unzip it and point --retrieval-dir at the folder). The default is <data dir>/retrieval/scifact "
    "(--data-dir or $SMOOTHCSE_DATA)."
)
Backend = Literal["numpy", "faiss", "auto"]


# --------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR folder: the whole corpus, the queries that have qrels, and the qrels."""

    name: str
    folder: Path
    split: str
    corpus_ids: list[str]
    titles: list[str]
    texts: list[str]
    query_ids: list[str]
    """Queries with at least one qrels row in the split, in qrels order (as BEIR's loader keeps them)."""
    queries: list[str]
    qrels: Qrels
    qrels_rows: int
    corpus_file: Path = field(repr=False)

    def documents(self, sep: str = " ") -> list[str]:
        """Document texts as BEIR's SentenceBERT joins them: ``(title + sep + text).strip()``."""
        return [(title + sep + text).strip() for title, text in zip(self.titles, self.texts)]

    def counts(self) -> dict[str, int]:
        """Sizes for reports: documents, queries, qrels rows, relevant pairs, queries without relevant."""
        relevant = sum(1 for rels in self.qrels.values() for rel in rels.values() if rel >= 1)
        no_relevant = sum(1 for rels in self.qrels.values() if not any(rel >= 1 for rel in rels.values()))
        return {
            "documents": len(self.corpus_ids),
            "queries": len(self.query_ids),
            "qrels_rows": self.qrels_rows,
            "relevant_pairs": relevant,
            "queries_without_relevant": no_relevant,
        }


def _open_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line) of a plain or gzipped file; DataError on a broken gzip."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"Cannot read {path}: {exc}. {BEIR_HINT}") from exc


def _string_field(record: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    """A string field of a jsonl record; ids may be JSON numbers (BEIR ids are compared as strings)."""
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: the record has no '{key}' field.")
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type(value).__name__}.")
    return value


def read_jsonl(path: Path, fields: Sequence[str], optional: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """Read ``_id`` plus ``fields`` (then ``optional``) from each non-blank line of a BEIR jsonl file.

    Raises DataError with ``file:line`` on malformed JSON, a non-object line, a missing/ill-typed field,
    or a duplicate ``_id``.
    """
    rows: list[tuple[str, ...]] = []
    first_line: dict[str, int] = {}
    for number, raw in _open_lines(path):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not valid UTF-8 ({exc.reason}).") from exc
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON line ({exc.msg} at column {exc.colno}).") from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}.")
        doc_id = _string_field(record, "_id", where, required=True)
        if doc_id in first_line:
            raise DataError(f"{where}: duplicate _id '{doc_id}' (first on line {first_line[doc_id]}).")
        first_line[doc_id] = number
        values = [_string_field(record, key, where, required=True) for key in fields]
        values += [_string_field(record, key, where, required=False) for key in optional]
        rows.append((doc_id, *values))
    return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_qrels(path: Path) -> tuple[Qrels, dict[tuple[str, str], int], int]:
    """Read a qrels tsv: (qrels, line number of each (query, doc) pair, number of data rows).

    The first line is skipped when it is a header (its third field is not an integer); BEIR always skips
    it. A repeated (query, doc) pair keeps the last score, as BEIR's dict does.
    """
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    rows = 0
    for number, raw in _open_lines(path):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not valid UTF-8 ({exc.reason}).") from exc
        if not line.strip():
            continue
        parts = line.split("\t")
        if number == 1 and (len(parts) < 3 or not _is_int(parts[2].strip())):
            continue  # header "query-id corpus-id score"
        if len(parts) < 3:
            raise DataError(f"{where}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}.")
        query_id, doc_id, score = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if not _is_int(score):
            raise DataError(f"{where}: relevance score {score!r} is not an integer.")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
        lines[(query_id, doc_id)] = number
        rows += 1
    return qrels, lines, rows


def _corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder} has neither corpus.jsonl nor corpus.jsonl.gz. {BEIR_HINT}")


def _qrels_file(folder: Path, split: str) -> Path:
    path = folder / "qrels" / f"{split}.tsv"
    if path.is_file():
        return path
    splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
    have = f" Available splits: {', '.join(splits)}." if splits else ""
    raise DataError(f"Missing qrels file {path} for split '{split}'.{closest(split, splits)}{have} {BEIR_HINT}")


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Load one split of a BEIR folder, checking that every qrels id exists in the corpus and queries."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"Retrieval folder {root} does not exist. {BEIR_HINT}")
    corpus_path = _corpus_file(root)
    queries_path = root / "queries.jsonl"
    if not queries_path.is_file():
        raise DataError(f"Missing {queries_path}. {BEIR_HINT}")
    qrels_path = _qrels_file(root, split)

    qrels, qrels_lines, qrels_rows = read_qrels(qrels_path)
    if not qrels:
        raise DataError(f"{qrels_path} has no relevance judgments: the '{split}' split is empty.")
    corpus = read_jsonl(corpus_path, ["text"], optional=["title"])
    query_rows = read_jsonl(queries_path, ["text"])
    query_text = {qid: text for qid, text in query_rows}
    doc_ids = {row[0] for row in corpus}
    for (query_id, doc_id), number in qrels_lines.items():
        if query_id not in query_text:
            raise DataError(f"{qrels_path}:{number}: query id '{query_id}' is not in {queries_path}.")
        if doc_id not in doc_ids:
            raise DataError(f"{qrels_path}:{number}: corpus id '{doc_id}' is not in {corpus_path}.")
    return BeirDataset(
        name=root.resolve().name,
        folder=root.resolve(),
        split=split,
        corpus_ids=[row[0] for row in corpus],
        texts=[row[1] for row in corpus],
        titles=[row[2] for row in corpus],
        query_ids=list(qrels),
        queries=[query_text[qid] for qid in qrels],
        qrels=qrels,
        qrels_rows=qrels_rows,
        corpus_file=corpus_path,
    )


def resolve_retrieval_folder(
    folder: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The BEIR folder to evaluate: ``folder`` if it exists, else ``<data dir>/retrieval/<folder>``.

    With no folder, ``<data dir>/retrieval/scifact``.
    """
    if folder is not None:
        path = Path(folder).expanduser()
        if path.is_dir():
            return path.resolve()
        if not path.is_absolute():
            candidate = resolve_data_dir(data_dir, must_exist=False) / RETRIEVAL_SUBDIR / path
            if candidate.is_dir():
                return candidate.resolve()
        raise DataError(f"Retrieval folder {path} does not exist. {BEIR_HINT}")
    path = resolve_data_dir(data_dir) / RETRIEVAL_SUBDIR / DEFAULT_DATASET
    if not path.is_dir():
        raise DataError(f"The default retrieval set {path} is missing. {BEIR_HINT}")
    return path


# --------------------------------------------------------------------------------------------------
# Exact search


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; all-zero rows stay zero (cosine 0 with everything)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


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


def _resolve_backend(backend: Backend) -> Literal["numpy", "faiss"]:
    """``numpy`` or ``faiss``: ``auto`` picks faiss when it imports; ``faiss`` requires it."""
    if backend not in ("numpy", "faiss", "auto"):
        raise ConfigError(f"Unknown search backend '{backend}'; use numpy, faiss or auto.")
    if backend == "numpy":
        return "numpy"
    try:
        import faiss  # noqa: F401
    except ImportError:
        if backend == "faiss":
            raise ConfigError("backend 'faiss' needs the faiss package (pip install faiss-cpu).") from None
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
    """Exact cosine top-k of every query over the corpus, in corpus chunks of ``chunk_size`` rows.

    Args:
        query_emb: ``(q, d)`` query embeddings.
        corpus_emb: ``(n, d)`` document embeddings.
        top_k: how many documents per query (at most ``n``).
        chunk_size: corpus rows scored at once; peak extra memory is about
            ``query_chunk_size * chunk_size * 4`` bytes plus the running top-k.
        query_chunk_size: query rows scored at once.
        tie_keys: ``(n,)`` integers; among equal scores the lower key ranks first (default: corpus
            order). :func:`evaluate_retrieval` passes keys that rank larger document ids first, as
            trec_eval does.
        normalize: L2-normalise both sides first (cosine). With False, scores are dot products.
        backend: ``numpy`` (default), ``faiss`` (``IndexFlatIP`` per chunk; needs faiss, and its own
            choice among ties at a chunk's k-th score), or ``auto`` (faiss when importable).

    Returns:
        ``(scores, indices)``, both ``(q, min(top_k, n))``, each row sorted by score descending, then key.
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
    engine = _resolve_backend(backend)
    best_scores = np.empty((queries.shape[0], 0), dtype=np.float32)
    best_idx = np.empty((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, n_docs, chunk_size):
        block = docs[start : start + chunk_size]
        block = normalize_rows(block) if normalize else np.asarray(block, dtype=np.float32)
        block_scores, block_idx = _search_block(queries, block, k, keys[start : start + chunk_size],
                                                query_chunk_size, engine)
        best_scores, best_idx = merge_topk(best_scores, best_idx, block_scores, block_idx + start, keys, k)
    return best_scores, best_idx


def _search_block(
    queries: np.ndarray, block: np.ndarray, k: int, block_keys: np.ndarray, query_chunk_size: int,
    engine: Literal["numpy", "faiss"],
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
    scores_a: np.ndarray, idx_a: np.ndarray, scores_b: np.ndarray, idx_b: np.ndarray,
    keys: np.ndarray, k: int,
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


# --------------------------------------------------------------------------------------------------
# Metrics


def trec_ranking(doc_scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval's order: score descending, ties by document id descending."""
    by_id = sorted(doc_scores, reverse=True)
    return sorted(by_id, key=lambda doc: doc_scores[doc], reverse=True)  # stable: keeps id order in ties


def _dcg(gains: Sequence[float], k: int) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:k]) if g > 0)


def query_metrics(
    ranking: Sequence[str], judgments: Mapping[str, int], k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, float]:
    """trec_eval's ndcg_cut, map_cut, recip_rank (cut at k), recall and P at each k for one query.

    ``ranking``: retrieved document ids in rank order (see :func:`trec_ranking`).
    ``judgments``: this query's qrels, doc id -> integer relevance.
    """
    rels = [judgments.get(doc, 0) for doc in ranking]
    hits = [rel >= 1 for rel in rels]
    num_rel = sum(1 for rel in judgments.values() if rel >= 1)
    ideal = sorted((rel for rel in judgments.values() if rel > 0), reverse=True)
    first_hit = next((rank for rank, hit in enumerate(hits, start=1) if hit), None)
    out: dict[str, float] = {}
    for k in k_values:
        idcg = _dcg(ideal, k)
        out[f"ndcg_at_{k}"] = _dcg(rels, k) / idcg if idcg > 0 else 0.0
        precision_sum, found = 0.0, 0
        for rank, hit in enumerate(hits[:k], start=1):
            if hit:
                found += 1
                precision_sum += found / rank
        out[f"map_at_{k}"] = precision_sum / num_rel if num_rel else 0.0
        out[f"recall_at_{k}"] = found / num_rel if num_rel else 0.0
        out[f"precision_at_{k}"] = found / k
        out[f"mrr_at_{k}"] = 1.0 / first_hit if first_hit is not None and first_hit <= k else 0.0
    return out


def per_query_metrics(
    run: Run, qrels: Mapping[str, Mapping[str, int]], k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, dict[str, float]]:
    """Metrics of every query present in both the run and the qrels (pytrec_eval's rule)."""
    if any(k < 1 for k in k_values):
        raise ConfigError(f"cutoffs must be >= 1, got {list(k_values)}.")
    return {
        qid: query_metrics(trec_ranking(doc_scores), qrels[qid], k_values)
        for qid, doc_scores in run.items()
        if qid in qrels
    }


def retrieval_metrics(
    run: Run, qrels: Mapping[str, Mapping[str, int]], k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, float]:
    """Mean of :func:`per_query_metrics` over the evaluated queries (BEIR averages the same way).

    Returns ``{"ndcg_at_k", "map_at_k", "mrr_at_k", "recall_at_k", "precision_at_k"}`` for each k in
    ``k_values``, as fractions in [0, 1]. Raises ValueError if no run query has qrels.
    """
    return mean_metrics(per_query_metrics(run, qrels, k_values))


def mean_metrics(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Average per-query metrics over the queries (BEIR divides by the number of evaluated queries)."""
    if not scores:
        raise ValueError("none of the run's queries has relevance judgments in the qrels")
    names = next(iter(scores.values())).keys()
    return {name: sum(s[name] for s in scores.values()) / len(scores) for name in names}


# --------------------------------------------------------------------------------------------------
# End to end


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
        scores, idx = search(queries, block, k, chunk_size=corpus_chunk_size, normalize=False,
                             tie_keys=keys[start : start + len(block)], backend=backend)
        best_scores, best_idx = merge_topk(best_scores, best_idx, scores, idx + start, keys, k)
        encode_s += t1 - t0
        search_s += time.perf_counter() - t1
    timings["encode_corpus_s"] = encode_s
    timings["search_s"] = search_s
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
    *,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    sep: str = " ",
    corpus_chunk_size: int = 50_000,
    ignore_identical_ids: bool = True,
    backend: Backend = "numpy",
) -> dict[str, Any]:
    """Score ``embed`` on one BEIR folder (default ``<data dir>/retrieval/scifact``, test split).

    Returns a JSON-serialisable dict::

        {"task": "retrieval", "dataset": "scifact", "folder": "/abs/path", "split": "test",
         "main_metric": "ndcg_at_10", "main_score": 0.61,
         "metrics": {"ndcg_at_10": ..., "map_at_10": ..., "mrr_at_10": ..., "recall_at_100": ...,
                     "precision_at_10": ..., ... for k in k_values},   # fractions in [0, 1]
         "counts": {"documents", "queries", "qrels_rows", "relevant_pairs",
                    "queries_without_relevant", "queries_evaluated"},
         "settings": {"top_k", "k_values", "sep", "similarity", "ignore_identical_ids", "tie_break",
                      "corpus_chunk_size", "backend"},
         "timings": {"load_s", "encode_queries_s", "encode_corpus_s", "search_s", "metrics_s", "total_s"}}
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}.")
    if corpus_chunk_size < 1:
        raise ConfigError(f"corpus_chunk_size must be >= 1, got {corpus_chunk_size}.")
    start = time.perf_counter()
    data = load_beir(resolve_retrieval_folder(folder, data_dir), split)
    timings = {"load_s": time.perf_counter() - start}
    run = dense_run(embed, data, top_k, sep=sep, corpus_chunk_size=corpus_chunk_size,
                    ignore_identical_ids=ignore_identical_ids, backend=backend, timings=timings)
    t0 = time.perf_counter()
    scores = per_query_metrics(run, data.qrels, k_values)
    metrics = mean_metrics(scores)
    timings["metrics_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    return {
        "task": "retrieval",
        "dataset": data.name,
        "folder": str(data.folder),
        "split": split,
        "main_metric": MAIN_METRIC,
        "main_score": metrics.get(MAIN_METRIC),
        "metrics": metrics,
        "counts": {**data.counts(), "queries_evaluated": len(scores)},
        "settings": {
            "top_k": top_k,
            "k_values": list(k_values),
            "sep": sep,
            "similarity": "cosine",
            "ignore_identical_ids": ignore_identical_ids,
            "tie_break": TIE_BREAK,
            "corpus_chunk_size": corpus_chunk_size,
            "backend": _resolve_backend(backend),
        },
        "timings": {name: round(value, 4) for name, value in timings.items()},
    }


def format_retrieval_table(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table (×100, two decimals) of one or more :func:`evaluate_retrieval` results.

    Columns: dataset, nDCG@10, MAP@10, MRR@10, R@100; an ``Avg`` row when there are several datasets.
    A metric that was not computed (cutoff not in ``k_values``) shows as ``-``.
    """
    rows = [results] if isinstance(results, Mapping) else list(results)
    header = ["dataset"] + [title for title, _ in TABLE_COLUMNS]
    body: list[list[str]] = []
    columns: list[list[float | None]] = [[] for _ in TABLE_COLUMNS]
    for result in rows:
        metrics = result.get("metrics", {})
        vals = [metrics.get(key) for _, key in TABLE_COLUMNS]
        for column, value in zip(columns, vals):
            column.append(value)
        body.append([f"{result.get('dataset', '?')} ({result.get('split', '?')})"] + [_cell(v) for v in vals])
    if len(rows) > 1:
        body.append(["Avg"] + [_cell(_mean_or_none(column)) for column in columns])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"
