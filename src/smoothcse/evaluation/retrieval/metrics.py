"""trec_eval's measures of a ranking against the qrels, as ``pytrec_eval`` computes them, in fractions in [0, 1].

What each metric is, what counts as relevant, how ties are broken and which queries are averaged:
:mod:`smoothcse.evaluation.retrieval`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from smoothcse.errors import ConfigError

Run = Mapping[str, Mapping[str, float]]
DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)
MAIN_METRIC = "ndcg_at_10"


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
    """Mean of :func:`per_query_metrics` over the evaluated queries (BEIR averages the same way): ``ndcg_at_k``,
    ``map_at_k``, ``mrr_at_k``, ``recall_at_k`` and ``precision_at_k`` for each k in ``k_values``, as fractions in
    [0, 1]. Raises ValueError if no run query has qrels."""
    return mean_metrics(per_query_metrics(run, qrels, k_values))


def mean_metrics(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Average per-query metrics over the queries (BEIR divides by the number of evaluated queries)."""
    if not scores:
        raise ValueError("none of the run's queries has relevance judgments in the qrels")
    names = next(iter(scores.values())).keys()
    return {name: sum(s[name] for s in scores.values()) / len(scores) for name in names}
