"""The ``st-simcse`` arm of a sweep: sentence-transformers' own unsupervised SimCSE, as its docs run it.

``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss`` (scale ``1/τ``, cosine similarity)
on (anchor, positive) = (s, s) pairs: the two dropout views come from two forwards of the same
sentence. Everything else is the smoothcse run's own configuration, so a sweep compares the
objective and the framework, not the setting:

- the same model and pooling (the pooler smoothcse resolves, and SimCSE's MLP head during training
  when smoothcse would use one), the same dropout overrides and maximum length;
- the same sentences in the same order: the first ``max_sentences`` of the corpus, batched by
  smoothcse's :class:`~smoothcse.data.corpus.BatchSchedule` for the run's seed and fed to the Trainer in
  that order, without its own shuffling;
- the same number of steps, batch size, learning rate, linear schedule and warm-up, AdamW epsilon,
  weight decay, gradient clipping, seed and precision;
- the same model selection: the final model when ``eval_every = 0``; otherwise STS-B dev Spearman
  every ``eval_every`` steps (and at the last step), scored by smoothcse's scorer, keeping the best.

The selected model is saved as a sentence-transformers folder (Transformer + Pooling; the MLP head
is dropped as smoothcse drops it), with ``metrics.jsonl`` and ``smoothcse_config.json`` beside it,
so the sweep evaluates it with smoothcse's own evaluator exactly like the other arms.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig
from smoothcse.errors import SmoothCSEError

ARM = "st-simcse"
"""The value of ``objective.spec`` in a grid that selects this arm."""
TRAINER_MODULES: tuple[str, ...] = ("datasets", "accelerate")
"""What ``SentenceTransformerTrainer`` needs beyond sentence-transformers: the ``bench`` extra."""


def require_trainer() -> None:
    """Raise a one-line error naming the ``bench`` extra if the Trainer's packages are missing."""
    missing = []
    for module in TRAINER_MODULES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise SmoothCSEError(
            f"the {ARM} arm needs sentence-transformers' Trainer, which needs {' and '.join(missing)}: "
            "pip install 'smoothcse[bench]' (the other arms do not need it)."
        )


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
    sentences = []
    for _, text in iter_sentences(path, config.text_column):
        sentences.append(text)
        if config.max_sentences and len(sentences) == config.max_sentences:
            break
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
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from torch.utils.data import BatchSampler, SequentialSampler
    from transformers import TrainerCallback

    from smoothcse.model.encoder import RUN_MODEL_DIR, eval_max_length, load_encoder
    from smoothcse.model.st_modules import build_sentence_transformer, mnrl_class
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.run import autocast_dtype, pick_device

    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device, DistInfo())
    amp_dtype = autocast_dtype(config.precision, device)
    torch.manual_seed(config.seed)
    encoder = load_encoder(
        config.model,
        pooler=config.pooler,
        mlp_only_train=config.mlp_only_train,
        hidden_dropout=config.hidden_dropout,
        attention_dropout=config.attention_dropout,
        device="cpu",
    )
    dropout = {
        k: v
        for k, v in (
            ("hidden_dropout_prob", config.hidden_dropout),
            ("attention_probs_dropout_prob", config.attention_dropout),
        )
        if v is not None
    }
    model = build_sentence_transformer(encoder, config.model, config.max_len, device, config_kwargs=dropout)
    eval_len = eval_max_length(encoder.backbone, encoder.tokenizer)  # what smoothcse's export evaluates with
    head = encoder.mlp is not None and encoder.mlp_only_train  # SimCSE's MLP head: trained, not saved
    del encoder

    sentences = read_sentences(config)
    order, steps = schedule_order(len(sentences), config)
    ordered = [sentences[i] for i in order]
    dataset = Dataset.from_dict({"anchor": ordered, "positive": ordered})

    metrics = out / "metrics.jsonl"
    metrics.write_text("", encoding="utf-8")
    (out / "smoothcse_config.json").write_text(config.to_json())  # the summary says which framework trained it
    dev = _dev_scorer(config, eval_len) if config.eval_every else None
    selection: dict[str, Any] = {"best_dev": None, "best_step": None, "final_dev": None, "initial_dev": None}

    def save() -> None:
        keep = list(model)[:-1] if head else list(model)
        model.max_seq_length = eval_len  # as smoothcse's export: evaluation reads whole sentences
        try:
            SentenceTransformer(modules=keep, device=str(device)).save(str(out / RUN_MODEL_DIR))
        finally:
            model.max_seq_length = config.max_len

    def write(record: dict[str, Any]) -> None:  # one line appended per record: nothing held open on failure
        with metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    class Selection(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> Any:
            logs = logs or {}
            if "loss" in logs:
                write(
                    {
                        "step": state.global_step,
                        "loss": float(logs["loss"]),
                        "lr": float(logs.get("learning_rate", 0.0)),
                        "grad_norm": float(logs.get("grad_norm", 0.0)),
                    }
                )
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            step = state.global_step
            if step == steps:
                control.should_log = True  # as smoothcse's loop: the last step is always logged
            if dev is not None and (step % config.eval_every == 0 or step == steps):
                score = dev(model)
                write({"step": step, "stsb_dev": score})
                selection["final_dev"] = score
                if selection["best_dev"] is None or score > selection["best_dev"]:
                    selection["best_dev"], selection["best_step"] = score, step
                    save()
            return control

    class OrderedTrainer(SentenceTransformerTrainer):
        """Batches in the order given (smoothcse's schedule), not the Trainer's own shuffle."""

        def get_batch_sampler(self, dataset: Any, batch_size: int, drop_last: bool, *args: Any, **kwargs: Any) -> Any:
            return BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)

    with tempfile.TemporaryDirectory(prefix="smoothcse-st-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            max_steps=steps,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.lr,
            weight_decay=config.weight_decay,
            adam_epsilon=config.adam_eps,
            max_grad_norm=config.max_grad_norm or 0.0,
            warmup_steps=config.warmup_steps,
            lr_scheduler_type="linear",
            bf16=amp_dtype == torch.bfloat16,
            fp16=amp_dtype == torch.float16,
            use_cpu=device.type == "cpu",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=config.log_every,
            report_to="none",
            disable_tqdm=not progress,
            seed=config.seed,
            data_seed=config.seed,
            dataloader_num_workers=0,
        )
        loss = mnrl_class()(model, scale=1.0 / config.objective.temperature)
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        with contextlib.redirect_stderr(io.StringIO()):  # the model-card callback's progress bar
            trainer = OrderedTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[Selection()])
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # its loss lines: metrics.jsonl has them
        if dev is not None:
            selection["initial_dev"] = dev(model)
            write({"step": 0, "stsb_dev": selection["initial_dev"]})
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its own summary line
            trainer.train()
    if dev is None:
        save()
    summary = {
        "steps": steps,
        **selection,
        "skipped_steps": 0,
        "seconds": round(time.perf_counter() - started, 2),
        "framework": f"sentence-transformers {_st_version()}",
    }
    write({"summary": summary})
    return summary


def _st_version() -> str:
    import sentence_transformers

    return str(sentence_transformers.__version__)


def _dev_scorer(config: TrainConfig, eval_len: int) -> Any:
    """STS-B dev Spearman × 100 of a SentenceTransformer, by smoothcse's scorer, in eval mode."""
    import numpy as np
    import torch

    from smoothcse.evaluation.data import load_stsb
    from smoothcse.evaluation.sts import spearman

    pairs = load_stsb("dev", config.data_dir)

    def score(model: Any) -> float:
        was_training = model.training
        model.eval()
        model.max_seq_length = eval_len  # as smoothcse's dev evaluator: untruncated dev sentences
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                left = model.encode(list(pairs.sentences1), batch_size=config.eval_batch_size, convert_to_numpy=True)
                right = model.encode(list(pairs.sentences2), batch_size=config.eval_batch_size, convert_to_numpy=True)
        finally:
            model.train(was_training)
            model.max_seq_length = config.max_len
        cosine = (left * right).sum(1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1) + 1e-12)
        return float(spearman(cosine.astype(np.float64), np.asarray(pairs.scores, dtype=np.float64)) * 100.0)

    return score


__all__ = ["ARM", "require_trainer", "train_st_simcse"]
