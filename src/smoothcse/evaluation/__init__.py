"""Evaluation by the papers' protocol, decoupled from models.

Everything here takes an *embedding function* (``list[str] -> (n, d) array``), so any encoder can be
scored: a smoothcse model, a sentence-transformers model, or a test's hashed bag of words.

>>> from smoothcse.evaluation import evaluate_sts, format_sts_table
>>> results = evaluate_sts(model.encode)          # doctest: +SKIP
>>> print(format_sts_table(results))              # doctest: +SKIP

See docs/evaluation.md for exactly what is computed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from smoothcse.evaluation.data import (
    DEV_STS_TASKS,
    STS_TASKS,
    TRANSFER_TASKS,
    load_mrpc,
    load_sick_relatedness,
    load_sst2,
    load_sts,
    load_sts_year,
    load_stsb,
    load_transfer,
    load_trec,
)
from smoothcse.evaluation.embedding import EmbedFn, encode_unique
from smoothcse.evaluation.report import failed_tasks, format_sts_details, format_sts_table, format_transfer_table
from smoothcse.files import to_jsonable, write_json  # results are written by smoothcse's one JSON writer

if TYPE_CHECKING:
    from smoothcse.evaluation.sts import (
        cosine_similarities,
        evaluate_sts,
        evaluate_sts_dev,
        pearson,
        score_sts_task,
        spearman,
        summarise_subsets,
    )
    from smoothcse.evaluation.transfer import TransferSettings, evaluate_transfer

# scipy.stats and scikit-learn load on first use: the embedding protocol (and SentenceEncoder.encode) stays light
_TRANSFER_NAMES = ("TransferSettings", "evaluate_transfer")


def __getattr__(name: str) -> Any:
    if name in ("sts", "transfer"):  # the submodules themselves, as when the package imported them
        return importlib.import_module(f"{__name__}.{name}")
    if name in __all__:  # not imported above: a name of the TYPE_CHECKING block
        module = "transfer" if name in _TRANSFER_NAMES else "sts"
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEV_STS_TASKS",
    "STS_TASKS",
    "TRANSFER_TASKS",
    "EmbedFn",
    "TransferSettings",
    "cosine_similarities",
    "encode_unique",
    "evaluate_sts",
    "evaluate_sts_dev",
    "evaluate_transfer",
    "failed_tasks",
    "format_sts_details",
    "format_sts_table",
    "format_transfer_table",
    "load_mrpc",
    "load_sick_relatedness",
    "load_sst2",
    "load_sts",
    "load_sts_year",
    "load_stsb",
    "load_transfer",
    "load_trec",
    "pearson",
    "score_sts_task",
    "spearman",
    "summarise_subsets",
    "to_jsonable",
    "write_json",
]
