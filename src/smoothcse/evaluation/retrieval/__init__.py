"""Dense retrieval evaluation on BEIR-format folders (SciFact by default), scored as BEIR and MTEB do.

A BEIR folder holds::

    corpus.jsonl or corpus.jsonl.gz   {"_id", "title", "text"} per line
    queries.jsonl                     {"_id", "text"} per line
    qrels/<split>.tsv                 header "query-id<TAB>corpus-id<TAB>score", integer scores

Evaluation takes any embedding function (:data:`smoothcse.evaluation.embedding.EmbedFn`: a list of texts
in, an ``(n, d)`` float array out), so it is decoupled from models: documents are embedded as
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

:func:`evaluate_retrieval` stores every metric × 100 (``main_score`` 64.51, not 0.6451), the scale of every
smoothcse score (STS, transfer); the metric functions themselves return trec_eval's fractions.

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

Modules: :mod:`.loading` (BEIR folders), :mod:`.searching` (exact top-k), :mod:`.metrics` (trec_eval's
measures), :mod:`.evaluate` (end to end, and the table).
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
