"""Dense retrieval evaluation on BEIR-format folders (SciFact by default), scored as BEIR and MTEB do.

Documents are embedded as ``(title + " " + text).strip()``, queries as their text; cosine similarity; exact
top-k by chunked matrix products; nDCG, MAP, MRR, recall and precision at k as ``pytrec_eval`` computes
them (ties broken as trec_eval does), stored × 100. Modules: :mod:`.loading` (BEIR folders),
:mod:`.searching` (exact top-k), :mod:`.metrics` (trec_eval's measures), :mod:`.evaluate` (end to end, and
the table). What each metric is, which queries count and how ties are broken: docs/retrieval.md.
"""

from smoothcse.evaluation.retrieval.evaluate import (
    dense_run,
    evaluate_retrieval,
    evaluate_retrieval_splits,
    format_retrieval_table,
)
from smoothcse.evaluation.retrieval.loading import BeirDataset, load_beir, resolve_retrieval_folder
from smoothcse.evaluation.retrieval.metrics import per_query_metrics, retrieval_metrics, trec_ranking
from smoothcse.evaluation.retrieval.searching import descending_id_keys, search, topk_rows

__all__ = [
    "BeirDataset",
    "dense_run",
    "descending_id_keys",
    "evaluate_retrieval",
    "evaluate_retrieval_splits",
    "format_retrieval_table",
    "load_beir",
    "per_query_metrics",
    "resolve_retrieval_folder",
    "retrieval_metrics",
    "search",
    "topk_rows",
    "trec_ranking",
]
