"""Dense retrieval evaluation on BEIR-format folders (SciFact by default), scored as BEIR and MTEB do.

Documents are embedded as ``(title + " " + text).strip()``, queries as their text; cosine similarity; exact
top-k by chunked matrix products; nDCG, MAP, MRR, recall and precision at k as ``pytrec_eval`` computes
them (ties broken as trec_eval does), stored × 100. Modules: :mod:`.loading` (BEIR folders),
:mod:`.searching` (exact top-k), :mod:`.metrics` (trec_eval's measures), :mod:`.evaluate` (end to end, and
the table). What each metric is, which queries count and how ties are broken: docs/retrieval.md.
"""

from smoothcse.evaluation.embedding import EmbedFn
from smoothcse.evaluation.retrieval.evaluate import (
    SCALE,
    TABLE_COLUMNS,
    dense_run,
    evaluate_retrieval,
    evaluate_retrieval_splits,
    format_retrieval_table,
)
from smoothcse.evaluation.retrieval.loading import (
    BEIR_HINT,
    DEFAULT_DATASET,
    RETRIEVAL_SUBDIR,
    BeirDataset,
    Qrels,
    load_beir,
    read_jsonl,
    read_qrels,
    resolve_retrieval_folder,
)
from smoothcse.evaluation.retrieval.metrics import (
    DEFAULT_K_VALUES,
    MAIN_METRIC,
    Run,
    mean_metrics,
    per_query_metrics,
    query_metrics,
    retrieval_metrics,
    trec_ranking,
)
from smoothcse.evaluation.retrieval.searching import (
    TIE_BREAK,
    Backend,
    descending_id_keys,
    merge_topk,
    normalize_rows,
    resolve_backend,
    search,
    topk_rows,
)

__all__ = [
    "BEIR_HINT",
    "DEFAULT_DATASET",
    "DEFAULT_K_VALUES",
    "MAIN_METRIC",
    "RETRIEVAL_SUBDIR",
    "SCALE",
    "TABLE_COLUMNS",
    "TIE_BREAK",
    "Backend",
    "BeirDataset",
    "EmbedFn",
    "Qrels",
    "Run",
    "dense_run",
    "descending_id_keys",
    "evaluate_retrieval",
    "evaluate_retrieval_splits",
    "format_retrieval_table",
    "load_beir",
    "mean_metrics",
    "merge_topk",
    "normalize_rows",
    "per_query_metrics",
    "query_metrics",
    "read_jsonl",
    "read_qrels",
    "resolve_backend",
    "resolve_retrieval_folder",
    "retrieval_metrics",
    "search",
    "topk_rows",
    "trec_ranking",
]
