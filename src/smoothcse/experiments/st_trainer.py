"""What the sentence-transformers arms of a sweep (``st-simcse``, ``st-tsdae``) share: ``SentenceTransformerTrainer``
run in the smoothcse run's own setting, whatever the loss. An arm builds its dataset and loss, and calls
:func:`build_st_model` and :func:`train_ordered`. Importing this module loads neither torch nor
sentence-transformers (the grid imports the arms' names).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothcse.config import TrainConfig
from smoothcse.errors import SmoothCSEError

TRAINER_MODULES: tuple[str, ...] = ("datasets", "accelerate")
"""What ``SentenceTransformerTrainer`` needs beyond sentence-transformers: the ``bench`` extra."""


def require_trainer(arm: str, modules: tuple[str, ...] = TRAINER_MODULES) -> None:
    """Raise a one-line error naming ``arm`` and the ``bench`` extra if any of ``modules`` is missing."""
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise SmoothCSEError(
            f"the {arm} arm needs sentence-transformers' Trainer, which needs {' and '.join(missing)}: "
            "pip install 'smoothcse[bench]' (the other arms do not need it)."
        )


@dataclass
class StModel:
    """A run's model as a ``SentenceTransformer``, and how it trains and is saved."""

    model: Any
    """The ``SentenceTransformer`` (Transformer, pooling, the encoder's tail, SimCSE's MLP head if any)."""
    device: Any
    amp_dtype: Any
    """``torch.bfloat16`` / ``torch.float16`` under mixed precision, else None."""
    eval_len: int
    """The maximum length smoothcse's export evaluates with (whole sentences)."""
    head: bool
    """Whether the last module is SimCSE's MLP head: trained, not saved."""


def build_st_model(config: TrainConfig) -> StModel:
    """``config``'s model as smoothcse loads it (seeded by ``config.seed``), as a ``SentenceTransformer``."""
    import torch

    from smoothcse.model.encoder import eval_max_length, load_encoder
    from smoothcse.model.st_modules import build_sentence_transformer
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.run import autocast_dtype, pick_device

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
    dropout = {"hidden_dropout_prob": config.hidden_dropout, "attention_probs_dropout_prob": config.attention_dropout}
    dropout = {key: value for key, value in dropout.items() if value is not None}
    model = build_sentence_transformer(encoder, config.model, config.max_len, device, config_kwargs=dropout)
    eval_len = eval_max_length(encoder.backbone, encoder.tokenizer)  # what smoothcse's export evaluates with
    head = encoder.mlp is not None and encoder.mlp_only_train  # SimCSE's MLP head: trained, not saved
    return StModel(model=model, device=device, amp_dtype=amp_dtype, eval_len=eval_len, head=head)


@dataclass
class Selection:
    """A run's ``metrics.jsonl`` and model selection: the records written, the best dev score, the save."""

    config: TrainConfig
    st: StModel
    steps: int
    dev: Any = None
    """STS-B dev scorer (``eval_every > 0``), else None: the final model is kept."""
    scores: dict[str, Any] = field(
        default_factory=lambda: {"best_dev": None, "best_step": None, "final_dev": None, "initial_dev": None}
    )

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def start(self) -> None:
        """An empty ``metrics.jsonl`` and the run's ``smoothcse_config.json``; the dev scorer loaded."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "metrics.jsonl").write_text("", encoding="utf-8")
        (self.out / "smoothcse_config.json").write_text(self.config.to_json())  # the summary names the framework
        self.dev = _dev_scorer(self.config, self.st.eval_len) if self.config.eval_every else None

    def save(self) -> None:
        """The model as a sentence-transformers folder at ``OUT/model``, without the MLP head."""
        from sentence_transformers import SentenceTransformer

        from smoothcse.model.encoder import RUN_MODEL_DIR

        model = self.st.model
        keep = list(model)[:-1] if self.st.head else list(model)
        model.max_seq_length = self.st.eval_len  # as smoothcse's export: evaluation reads whole sentences
        try:
            SentenceTransformer(modules=keep, device=str(self.st.device)).save(str(self.out / RUN_MODEL_DIR))
        finally:
            model.max_seq_length = self.config.max_len

    def evaluate(self, step: int) -> None:
        """Score the dev set at ``step`` (0: before training); save the model when it is the best so far."""
        score = self.dev(self.st.model)
        append_record(self.out, {"step": step, "stsb_dev": score})
        if step == 0:
            self.scores["initial_dev"] = score
            return
        self.scores["final_dev"] = score
        if self.scores["best_dev"] is None or score > self.scores["best_dev"]:
            self.scores["best_dev"], self.scores["best_step"] = score, step
            self.save()

    def log(self, step: int, logs: dict[str, Any]) -> None:
        if "loss" in logs:
            record = {"step": step, "loss": float(logs["loss"]), "lr": float(logs.get("learning_rate", 0.0))}
            append_record(self.out, {**record, "grad_norm": float(logs.get("grad_norm", 0.0))})

    def step_end(self, step: int) -> bool:
        """Evaluate when due; whether the Trainer should log this step (the last one always, as smoothcse)."""
        if self.dev is not None and (step % self.config.eval_every == 0 or step == self.steps):
            self.evaluate(step)
        return step == self.steps


def selection_callback(selection: Selection) -> Any:
    """A ``TrainerCallback`` that hands the Trainer's logs and step ends to ``selection``."""
    from transformers import TrainerCallback

    class SelectionCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> Any:
            selection.log(state.global_step, logs or {})
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if selection.step_end(state.global_step):
                control.should_log = True
            return control

    return SelectionCallback()


def trainer_arguments(config: TrainConfig, st: StModel, steps: int, scratch: str, progress: bool) -> Any:
    """``SentenceTransformerTrainingArguments`` with the run's optimisation settings, saving nothing."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=scratch,
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        adam_epsilon=config.adam_eps,
        max_grad_norm=config.max_grad_norm or 0.0,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="linear",
        bf16=st.amp_dtype == torch.bfloat16,
        fp16=st.amp_dtype == torch.float16,
        use_cpu=st.device.type == "cpu",
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


def ordered_trainer(*, clip_loss: bool = False, **kwargs: Any) -> Any:
    """A ``SentenceTransformerTrainer`` that reads the dataset's rows in order (the batches smoothcse's
    schedule made), not shuffled; without the printer callback (``metrics.jsonl`` has its loss lines).

    The Trainer clips the gradients of its model's parameters; with ``clip_loss`` it clips those of the
    loss module instead (the model's and the loss's own, say a decoder's), as smoothcse clips every
    parameter it trains."""
    from sentence_transformers import SentenceTransformerTrainer
    from torch.utils.data import BatchSampler, SequentialSampler
    from transformers.trainer_callback import PrinterCallback

    class OrderedTrainer(SentenceTransformerTrainer):
        def get_batch_sampler(self, dataset: Any, batch_size: int, drop_last: bool, *args: Any, **kw: Any) -> Any:
            return BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)

        def _clip_grad_norm(self, model: Any) -> Any:
            return super()._clip_grad_norm(self.loss if clip_loss else model)  # type: ignore[no-untyped-call]

    with contextlib.redirect_stderr(io.StringIO()):  # the model-card callback's progress bar
        trainer = OrderedTrainer(**kwargs)
    trainer.remove_callback(PrinterCallback)
    return trainer


def train_ordered(
    config: TrainConfig, st: StModel, dataset: Any, loss: Any, steps: int, *, progress: bool, clip_loss: bool = False
) -> dict[str, Any]:
    """Train ``st.model`` on ``dataset``'s rows in order (``steps`` batches) with ``loss``; select and save
    the model into ``config.out``; return the scores (``best_dev``, ``best_step``, ``final_dev``,
    ``initial_dev``). The arm writes the summary record (:func:`finish`); ``clip_loss``: see
    :func:`ordered_trainer`."""
    selection = Selection(config, st, steps)
    selection.start()
    with tempfile.TemporaryDirectory(prefix="smoothcse-st-") as scratch:
        args = trainer_arguments(config, st, steps, scratch, progress)
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        callbacks = [selection_callback(selection)]
        trainer = ordered_trainer(
            model=st.model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks, clip_loss=clip_loss
        )
        if selection.dev is not None:
            selection.evaluate(0)
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its own summary line
            trainer.train()
    if selection.dev is None:
        selection.save()
    return selection.scores


def append_record(out: Path, record: dict[str, Any]) -> None:
    """One line appended to the run's ``metrics.jsonl`` (nothing is held open if the run fails)."""
    with (out / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def finish(config: TrainConfig, steps: int, scores: dict[str, Any], seconds: float, **extra: Any) -> dict[str, Any]:
    """The run's summary (``extra``: the arm's own fields), appended to ``metrics.jsonl``; returned."""
    import sentence_transformers

    summary = {"steps": steps, **scores, "skipped_steps": 0, "seconds": round(seconds, 2)}
    summary.update(framework=f"sentence-transformers {sentence_transformers.__version__}", **extra)
    append_record(Path(config.out), {"summary": summary})
    return summary


def train_st_arm(arm: str, config: TrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Train ``config`` into ``config.out`` with the sentence-transformers arm named ``arm``; its summary."""
    from smoothcse.experiments import st_simcse, st_tsdae

    arms = {st_simcse.ARM: st_simcse.train_st_simcse, st_tsdae.ARM: st_tsdae.train_st_tsdae}
    if arm not in arms:
        raise SmoothCSEError(f"no sentence-transformers arm '{arm}'; the arms are {', '.join(arms)}.")
    return arms[arm](config, progress=progress)


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
