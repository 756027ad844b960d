"""A sweep run's evaluation: the exported model (or, for the base arm, the starting model) scored on the
7 STS tasks, alignment and uniformity, and the dev, transfer and retrieval evaluations a grid asks for, with
the flat headline scores the report tabulates."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smoothcse.experiments.results import RunResult


def sts_scores(sts: dict[str, Any]) -> dict[str, float | None]:
    """Flat headline scores of an :func:`evaluate_sts` result: ``{"STS12": ..., ..., "avg": ...}``."""
    scores: dict[str, float | None] = {name: r.get("spearman") for name, r in sts["tasks"].items()}
    scores["avg"] = sts["avg"]["spearman"]
    return scores


def evaluate_model(
    model_dir: Path,
    evaluations: Sequence[str],
    *,
    sts_tasks: Sequence[str],
    data_dir: str | None,
    device: str,
    batch_size: int,
    n_jobs: int = -1,
    retrieval_folder: str | None = None,
    retrieval_splits: Sequence[str] = ("test",),
) -> dict[str, Any]:
    """Load a model (an exported run, or any model name or folder) and run the named evaluations (sts,
    geometry, dev, transfer, retrieval) by :func:`~smoothcse.evaluation.run.run_evaluations`."""
    from smoothcse.evaluation.data import TRANSFER_TASKS
    from smoothcse.evaluation.run import EvalRequest, encoder_embed, load_for_eval, run_evaluations

    request = EvalRequest(
        sts=sts_tasks if "sts" in evaluations else (),
        dev="dev" in evaluations,
        transfer=TRANSFER_TASKS if "transfer" in evaluations else (),
        retrieval=[retrieval_folder] if "retrieval" in evaluations else [],
        retrieval_splits=retrieval_splits,
        geometry="geometry" in evaluations,
    )
    encoder = load_for_eval(str(model_dir), None, device)
    try:
        out = run_evaluations(encoder_embed(encoder, batch_size), data_dir, request, n_jobs=n_jobs, cache=True)
    finally:
        del encoder
        free_memory()
    if "retrieval" in out:
        out["retrieval"] = out["retrieval"][0]
    return out


def headline_scores(result: RunResult) -> dict[str, float | None]:
    """The numbers the report tabulates, flat, all × 100: STS tasks and ``avg``, ``dev:STSb``, ``dev:SICK-R`` and
    ``dev_avg``, ``transfer:<task>`` and ``transfer_avg``, ``ndcg_at_10`` (the retrieval result's main score)."""
    scores: dict[str, float | None] = {}
    if result.sts:
        scores.update(sts_scores(result.sts))
    if result.dev:
        dev = sts_scores(result.dev)
        scores.update({f"dev:{n}": v for n, v in dev.items() if n != "avg"})
        scores["dev_avg"] = dev["avg"]
    if result.transfer:
        scores.update({f"transfer:{n}": r.get("accuracy") for n, r in result.transfer["tasks"].items()})
        scores["transfer_avg"] = result.transfer["avg"]["accuracy"]
    if result.retrieval:
        scores["ndcg_at_10"] = result.retrieval.get("main_score")  # stored × 100 like the others
        for split, other in (result.retrieval.get("splits") or {}).items():  # e.g. train_ndcg_at_10
            scores[f"{split}_ndcg_at_10"] = other.get("main_score")
    return scores


def card_scores(result: RunResult) -> dict[str, float]:
    """A run's test scores as its model card labels them: ``STSb (Spearman)`` ... ``STS Avg (Spearman)``,
    ``scifact (nDCG@10)`` (test queries), ``scifact train queries (nDCG@10)``."""
    from smoothcse.model.card import eval_card_scores

    scores = eval_card_scores({"sts": result.sts, "retrieval": result.retrieval})
    for split, other in ((result.retrieval or {}).get("splits") or {}).items():
        if other.get("main_score") is not None:
            scores[f"{other['dataset']} {split} queries (nDCG@10)"] = other["main_score"]
    return scores


def eval_failures(result: RunResult) -> list[str]:
    """Tasks an evaluation could not score (missing data): they make the run 'failed'."""
    from smoothcse.evaluation.report import failed_tasks

    return [
        f"{task}:{name}" for task in ("sts", "dev", "transfer") for name in failed_tasks(result.evaluation(task) or {})
    ]


def eval_failure_details(result: RunResult, failed: Sequence[str]) -> str:
    """``task: error`` of the first two failed tasks, for the run's error message."""
    details = []
    for entry in failed[:2]:
        evaluation, task = entry.split(":", 1)
        document = result.evaluation(evaluation) or {}
        details.append(f"{entry}: {document['tasks'][task]['error']}")
    return "; ".join(details)


def free_memory() -> None:
    """Release what a run's model held (torch is a dependency: no import guard)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
