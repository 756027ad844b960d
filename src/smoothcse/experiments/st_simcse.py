"""The ``st-simcse`` arm of a sweep: sentence-transformers' own unsupervised SimCSE, as its docs run it
(``MultipleNegativesRankingLoss``, scale ``1/τ``, on (s, s) pairs), in the smoothcse run's own setting
(:mod:`smoothcse.experiments.st_trainer`), so a sweep compares the objective and the framework, not the
setting. This module holds the corpus's sentences in smoothcse's order and the loss; docs/experiments.md.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig
from smoothcse.errors import SmoothCSEError
from smoothcse.experiments import st_trainer

ARM = "st-simcse"
"""The value of ``objective.spec`` in a grid that selects this arm."""
TRAINER_MODULES: tuple[str, ...] = st_trainer.TRAINER_MODULES


def require_trainer() -> None:
    """Raise a one-line error naming the ``bench`` extra if the Trainer's packages are missing."""
    st_trainer.require_trainer(ARM, TRAINER_MODULES)


def schedule_order(num_sentences: int, config: TrainConfig) -> tuple[list[int], int]:
    """Sentence indices in the order smoothcse's loop reads them, and the number of steps."""
    from smoothcse.data.corpus import BatchSchedule

    schedule = BatchSchedule(num_sentences, config.batch_size, config.seed)
    steps = config.max_steps or schedule.steps_per_epoch * config.epochs
    order: list[int] = []
    for step in range(steps):
        order.extend(int(i) for i in schedule.batch(step))
    return order, steps


def read_sentences(config: TrainConfig) -> list[str]:
    """The corpus's sentences as smoothcse's token cache holds them (the first ``max_sentences``)."""
    from smoothcse.data.corpus import find_corpus, iter_sentences

    path = find_corpus(config.data, config.data_dir)
    tokenizer = None
    if config.units == "passages":  # passages are packed by the model's own token count
        from smoothcse.model.encoder import load_backbone

        tokenizer = load_backbone(config.model)[1]
    units: dict[str, Any] = {"text_field": config.text_field, "units": config.units, "max_len": config.max_len}
    texts = (text for _, text in iter_sentences(path, config.text_column, tokenizer=tokenizer, **units))
    sentences = list(itertools.islice(texts, config.max_sentences or None))
    if config.max_sentences and len(sentences) < config.max_sentences:
        raise SmoothCSEError(
            f"--max-sentences {config.max_sentences}: {path} holds only {len(sentences)} sentences; "
            f"use at most {len(sentences)}, or 0 for all."
        )
    if len(sentences) < config.batch_size:
        raise SmoothCSEError(f"--data {path}: {len(sentences)} sentences, fewer than one batch of {config.batch_size}.")
    return sentences


def train_st_simcse(config: TrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Train ``config`` with sentence-transformers' SimCSE into ``config.out``; return the summary."""
    require_trainer()
    from datasets import Dataset

    from smoothcse.model.st_modules import mnrl_class

    started = time.perf_counter()
    Path(config.out).mkdir(parents=True, exist_ok=True)
    st = st_trainer.build_st_model(config)
    sentences = read_sentences(config)
    order, steps = schedule_order(len(sentences), config)
    ordered = [sentences[i] for i in order]
    dataset = Dataset.from_dict({"anchor": ordered, "positive": ordered})
    loss = mnrl_class()(st.model, scale=1.0 / config.objective.temperature)
    scores = st_trainer.train_ordered(config, st, dataset, loss, steps, progress=progress)
    return st_trainer.finish(config, steps, scores, time.perf_counter() - started)
