"""One training run, built once: :func:`build_run` turns a :class:`~smoothcse.config.TrainConfig` into a :class:`Run`.

A :class:`Run` holds what the loop (:func:`smoothcse.training.loop.train`) and the benchmark's smoothcse side
drive; logging, evaluation, checkpointing and the end of the run are its methods. :func:`build_run` sets
up in the order of its body, which fixes what the seeded RNG draws.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from smoothcse.config import TrainConfig
from smoothcse.data.augment import DocumentPairs, DocumentTitles, ViewNoise, ViewPartners
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus, document_titles, find_corpus, iter_sentences
from smoothcse.data.loader import Batch, BatchLoader
from smoothcse.data.views import ViewLayout
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.files import describe_write_error, format_duration, is_write_error
from smoothcse.model.encoder import RUN_MODEL_DIR, SentenceEncoder, load_encoder
from smoothcse.model.export import save_encoder
from smoothcse.objectives import build_objective
from smoothcse.training.checkpoint import list_checkpoints, rng_state, save_checkpoint
from smoothcse.training.distributed import DistInfo, barrier, wrap_ddp
from smoothcse.training.metrics import METRICS_FILE, MetricsLog, StepCounters
from smoothcse.training.outdir import CONFIG_FILE, prepare_output_dir
from smoothcse.training.resume import corpus_identity, fault_message, restore_checkpoint
from smoothcse.training.trackers import Reporter

CPU_ROWS_PER_FORWARD = 32
"""Length-sorted forwards of 32 rows on a CPU, the fastest of 16 / 32 / 64 with 2 threads (docs/performance.md)."""
COMPILE_PAD_MULTIPLE = 8
"""With --compile, lengths are rounded up to a multiple of 8: at most max_len / 8 static shapes."""
PREFETCH_BATCHES = 2
"""The fast path's loader collates this many steps ahead in a background thread."""
T = TypeVar("T")


class NumericalFault(SmoothCSEError):
    """Too many consecutive non-finite steps."""


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    initial_dev: float | None = None
    best_dev: float | None = None
    best_step: int | None = None
    final_dev: float | None = None
    skipped_steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        """The exported model (``out/model``)."""
        return self.out_dir / RUN_MODEL_DIR


def pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu.")
        return torch.device("cuda", info.local_rank) if info.enabled else torch.device(name)
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the forward pass, or None for plain fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def linear_lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up then linear decay to 0 at ``total_steps`` (HF's linear schedule)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def compile_model(model: nn.Module, max_len: int, mode: str = "default") -> nn.Module:
    """``torch.compile`` with one static graph per input shape (the view layout keeps them few), dynamo's
    per-function graph limit raised to hold them all."""
    import torch._dynamo

    shapes = 4 * -(-max_len // COMPILE_PAD_MULTIPLE) + 8  # row counts: full forward, remainder, an epoch's last batch
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, shapes)
    return cast(nn.Module, torch.compile(model, dynamic=False, mode=None if mode == "default" else mode))


def view_layout(config: TrainConfig, device: torch.device) -> ViewLayout:
    """The fast path's forwards for this device (``ViewLayout()``, one padded forward, when it is off);
    ``rows_per_forward`` 0 is auto: 32 rows on a CPU, all rows in one forward on a GPU (not measured yet)."""
    if not config.fast_path:
        return ViewLayout()
    rows = config.rows_per_forward or (CPU_ROWS_PER_FORWARD if device.type == "cpu" else 0)
    return ViewLayout(rows_per_forward=rows, pad_multiple=COMPILE_PAD_MULTIPLE if config.compile else 1)


def rank0_first(info: DistInfo, build: Callable[[], T]) -> T:
    """``build()`` on rank 0, then on the other ranks (which read the cache rank 0 wrote)."""
    if info.is_main:
        result = build()
    barrier(info)
    return result if info.is_main else build()


def load_training_encoder(config: TrainConfig, device: torch.device) -> SentenceEncoder:
    """The encoder in training mode (its MLP head, if any, drawn from the seeded RNG)."""
    encoder = load_encoder(
        config.model,
        pooler=config.pooler,
        mlp_only_train=config.mlp_only_train,
        hidden_dropout=config.hidden_dropout,
        attention_dropout=config.attention_dropout,
        device=device,
    )
    encoder.cls_only_last_layer = config.fast_path
    positions = getattr(encoder.backbone.config, "max_position_embeddings", None)
    if positions is not None and config.max_len > positions:
        raise ConfigError(
            f"--max-len {config.max_len} exceeds the model's {positions} positions; use at most {positions}."
        )
    encoder.train()
    return encoder


def load_training_corpus(config: TrainConfig, tokenizer: Any, info: DistInfo, *, progress: bool) -> TokenizedCorpus:
    """The tokenised corpus (rank 0 builds the cache, the others then read it), cut to ``max_sentences``."""
    corpus_path = find_corpus(config.data, config.data_dir)

    def build_corpus() -> TokenizedCorpus:
        return TokenizedCorpus.build(
            corpus_path,
            tokenizer,
            config.max_len,
            text_column=config.text_column,
            text_field=config.text_field,
            units=config.units,
            cache_dir=config.cache_dir,
            progress=progress,
        )

    corpus = rank0_first(info, build_corpus)  # rank 0 tokenises; the others then read its cache
    if config.max_sentences:
        if config.max_sentences > len(corpus):
            raise ConfigError(
                f"--max-sentences {config.max_sentences}: {corpus_path} holds only {len(corpus)} sentences; "
                f"use at most {len(corpus)}, or 0 for all."
            )
        corpus = corpus.first(config.max_sentences)
    if config.batch_size % info.world_size:
        raise ConfigError(
            f"--batch-size {config.batch_size} must be divisible by the number of processes ({info.world_size})."
        )
    if len(corpus) < config.batch_size:
        raise SmoothCSEError(
            f"--data {corpus_path}: {len(corpus)} sentences, fewer than one batch of {config.batch_size}; "
            "use a larger corpus or a smaller --batch-size."
        )
    return corpus


def load_teacher(
    config: TrainConfig,
    corpus: TokenizedCorpus,
    tokenizer: Any,
    pairs: ViewPartners,
    info: DistInfo,
    device: torch.device,
    *,
    progress: bool,
) -> tuple[np.ndarray | None, ViewPartners]:
    """The frozen teacher's embeddings of every unit in the token cache, and ``pairs`` with its embeddings of
    the titles when the positives are titles (rank 0 computes the caches, the others then read them); None
    and ``pairs`` as given when the objective reads no teacher."""
    from smoothcse.training.teacher import teacher_embeddings

    if not config.objective.reads_teacher:
        return None, pairs
    path = find_corpus(config.data, config.data_dir)
    options = {"text_field": config.text_field, "units": config.units, "tokenizer": tokenizer}

    def embeddings(key: str, texts: Iterator[str], count: int) -> np.ndarray:
        return teacher_embeddings(
            config.teacher or config.model,
            key,
            texts,
            count,
            max_len=config.max_len,
            cache_dir=corpus.folder.parent,
            device=device,
            batch_size=config.eval_batch_size,
            progress=progress,
        )

    units = (text for _, text in iter_sentences(path, config.text_column, max_len=config.max_len, **options))
    # the whole cache: --max-sentences only cuts the view of it
    teacher = rank0_first(info, lambda: embeddings(corpus.folder.name, units, corpus.stats.sentences))
    if isinstance(pairs, DocumentTitles):  # the titles are no units: embedded on their own, keyed by their texts
        texts = pairs.titles
        key = f"{corpus.folder.name}-titles-{hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]}"
        pairs = replace(pairs, teacher=rank0_first(info, lambda: embeddings(key, iter(texts), len(texts))))
    return teacher, pairs


def build_dev_evaluator(config: TrainConfig, encoder: SentenceEncoder, device: torch.device) -> Any:
    from smoothcse.evaluation.data import load_stsb
    from smoothcse.evaluation.dev import DevEvaluator

    dev = load_stsb("dev", config.data_dir)
    return DevEvaluator(
        encoder, dev.sentences1, dev.sentences2, dev.scores, batch_size=config.eval_batch_size, device=device
    )


def build_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the fused kernel, which can skip a step on device when ``found_inf`` is set."""
    return torch.optim.AdamW(params, lr=config.lr, eps=config.adam_eps, weight_decay=config.weight_decay, fused=True)


@dataclass(eq=False)
class Run:
    """A training run as built by :func:`build_run`; :func:`smoothcse.training.steps.train_step` advances it."""

    config: TrainConfig
    info: DistInfo
    out: Path
    device: torch.device
    amp_dtype: torch.dtype | None
    encoder: SentenceEncoder
    model: nn.Module
    """The encoder as trained: in DDP under torchrun, compiled with --compile; else the encoder itself."""
    objective: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    loader: BatchLoader
    evaluator: Any
    """STS-B dev Spearman (rank 0, with --eval-every); None when off."""
    metrics: MetricsLog
    result: TrainResult
    total_steps: int
    corpus_file: str
    corpus_sentences: int
    """The corpus's file name and the sentences trained on (for the model card)."""
    step: int
    """Steps taken (the next step's index); the resumed step at first."""
    started: float
    bar: Any
    log_lines: bool
    """No terminal: one line on stderr per log interval instead of a live bar."""

    def __post_init__(self) -> None:
        self.layout = view_layout(self.config, self.device)
        graphs = self.config.compile_mode in ("reduce-overhead", "max-autotune")
        self.cuda_graphs = self.config.compile and self.device.type == "cuda" and graphs
        """The compiled model replays CUDA graphs: each step is marked as a new one."""
        self.batches: Iterator[Batch] = iter(self.loader)
        """This rank's batches from ``step`` on (the loader's, collated ahead on the fast path)."""
        self.counters = StepCounters(self.device)  # on the device: no sync inside the loop
        self.last_log_time, self.last_log_step = time.perf_counter(), self.step

    def log(self, grad_norm: Tensor) -> None:
        """Write the interval's mean loss terms, lr, steps/s, grad norm and skipped steps (the loop's only
        host sync); raise :class:`NumericalFault` after ``max_bad_steps`` consecutive skipped steps."""
        now = time.perf_counter()
        count = self.step - self.last_log_step
        record: dict[str, Any] = {"step": self.step, "lr": self.scheduler.get_last_lr()[0]}
        # six significant digits: a pre-trained encoder's loss can be 1e-6, which decimals would round to 0
        record.update({k: float(f"{float(v) / count:.6g}") for k, v in self.counters.running.items()})
        record["steps_per_s"] = round(count / (now - self.last_log_time), 3)
        record["grad_norm"] = float(grad_norm)
        record["nonfinite_steps"] = int(self.counters.nonfinite_total)
        self.metrics.write(record)
        loss = record.get("loss", float("nan"))
        self.bar.set_postfix(loss=f"{loss:.4g}", lr=f"{record['lr']:.2e}", it_s=record["steps_per_s"])
        if self.log_lines:
            eta = (self.total_steps - self.step) / max(record["steps_per_s"], 1e-9)
            print(
                f"step {self.step}/{self.total_steps}  loss {loss:.4g}  lr {record['lr']:.2e}  "
                f"{record['steps_per_s']:.2f} steps/s  ETA {format_duration(eta)}",
                file=sys.stderr,
                flush=True,
            )
        self.counters.running.clear()
        self.last_log_time, self.last_log_step = now, self.step
        worst_run = int(self.counters.worst_run)
        if worst_run >= self.config.max_bad_steps:
            raise NumericalFault(fault_message(self.config, self.step, worst_run, self.out))
        self.counters.worst_run.zero_()

    def evaluate(self) -> float:
        """STS-B dev Spearman now (RNG and train/eval mode untouched); a new best is exported at once."""
        score: float = self.evaluator(self.encoder)
        self.metrics.write({"step": self.step, "stsb_dev": score})
        self.result.history.append({"step": self.step, "stsb_dev": score})
        self.result.final_dev = score
        if self.result.best_dev is None or score > self.result.best_dev:
            self.result.best_dev, self.result.best_step = score, self.step
            self.export(score)
        return score

    def export(self, dev_score: float | None = None) -> None:
        """Export the encoder as it is now to ``out/model`` (rank 0), with a model card naming this step and its
        STS-B dev score."""
        from smoothcse.model.card import training_facts

        config = self.config.to_dict()
        card = training_facts(
            config,
            corpus_file=self.corpus_file,
            corpus_sentences=self.corpus_sentences,
            step=self.step,
            total_steps=self.total_steps,
            dev_score=dev_score,
            pooler=self.encoder.pooler,
        )
        try:
            save_encoder(self.encoder, self.result.model_dir, config, card=card, name=self.out.name)
        except Exception as err:
            if not is_write_error(err):
                raise
            final = self.step == self.total_steps and bool(list_checkpoints(self.out))
            hint = " The final checkpoint is saved: free space and rerun with --resume to finish it." if final else ""
            raise SmoothCSEError(
                f"cannot write the model to {self.result.model_dir}: {describe_write_error(err)}.{hint}"
            ) from None

    def checkpoint(self) -> Path | None:
        """A resumable checkpoint of this step (rank 0; None on the other ranks)."""
        if not self.info.is_main:
            return None
        payload = {
            "step": self.step,
            "config": self.config.to_dict(),
            "corpus": corpus_identity(self.config),  # a resume must train on the same content (training/resume.py)
            "encoder": self.encoder.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(),
            "best_dev": self.result.best_dev,
            "best_step": self.result.best_step,
            "initial_dev": self.result.initial_dev,
            "skipped_steps": self.result.skipped_steps + int(self.counters.nonfinite_total.item()),
        }
        return save_checkpoint(self.out, self.step, payload, keep=self.config.keep_checkpoints)

    def finish(self) -> TrainResult:
        """After the last step: the final checkpoint first (so a failed or killed export or evaluation is
        finished by ``--resume`` without training again), then the final evaluation (a new best is
        exported) or, with evaluation off, the export of the last model, then the ``{"summary": ...}`` record.
        A resumed run that had already taken every step comes straight here."""
        self.bar.close()
        if self.info.is_main:
            try:
                self.checkpoint()  # adds this session's non-finite steps to the count it saves
            except SmoothCSEError as err:  # no room for a checkpoint: keep at least the model, then say so
                try:
                    self.export()
                    note = f" The model itself was exported to {self.result.model_dir}."
                except SmoothCSEError:
                    note = " The model could not be exported either."
                raise SmoothCSEError(f"{err}{note}") from None
            if self.evaluator is not None:
                self.evaluate()
            else:
                self.export()
        self.result.skipped_steps += int(self.counters.nonfinite_total)
        self.result.seconds = time.perf_counter() - self.started
        if self.info.is_main:  # the result's fields from steps to seconds
            summary = {key: value for key, value in asdict(self.result).items() if key not in ("out_dir", "history")}
            self.metrics.write({"summary": summary | {"seconds": round(self.result.seconds, 2)}})
        barrier(self.info)
        return self.result

    def close(self) -> None:
        """Stop the loader's background thread."""
        self.loader.close()


def view_partners(config: TrainConfig, corpus: TokenizedCorpus, tokenizer: Any) -> ViewPartners:
    """Where each unit's second view comes from (``--view-source``); None: the unit itself."""
    if config.view_source == "document":
        return DocumentPairs.of(corpus.documents(), config.data)
    if config.view_source == "title":
        titles = document_titles(config.data, config.data_dir)
        return DocumentTitles.of(corpus.documents(), titles, tokenizer, config.max_len, config.data)
    return None


def build_loader(
    config: TrainConfig,
    corpus: TokenizedCorpus,
    schedule: BatchSchedule,
    start_step: int,
    total_steps: int,
    device: torch.device,
    info: DistInfo,
    pairs: ViewPartners,
    teacher: np.ndarray | None,
) -> BatchLoader:
    """This rank's batches from ``start_step`` on (with their second views and teacher rows when the run
    reads them); the fast path collates them ahead in a thread."""
    return BatchLoader(
        corpus,
        schedule,
        start_step,
        total_steps,
        device=device,
        info=info,
        pad_to=config.max_len if config.compile else None,  # the fast path's layout trims to multiples of 8
        prefetch=PREFETCH_BATCHES if config.fast_path else 0,
        noise=ViewNoise(crop=config.view_crop, delete=config.view_delete),
        pairs=pairs,
        seed=config.seed,
        teacher=teacher,
    )


def build_optimisation(
    config: TrainConfig, encoder: SentenceEncoder, device: torch.device, info: DistInfo, total_steps: int
) -> tuple[nn.Module, nn.Module, list[nn.Parameter], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The objective, the model as trained (DDP, compiled), its parameters, AdamW and the linear schedule."""
    # the noise is seeded with --seed (identical on every rank, so GS columns agree across ranks)
    objective = build_objective(config.objective, seed=config.seed).to(device)
    objective.train()
    params = [p for p in encoder.parameters() if p.requires_grad]
    model: nn.Module = encoder
    if info.enabled:
        model = wrap_ddp(encoder, device)  # rank 0's weights on every rank
    if config.compile:
        model = compile_model(model, config.max_len, config.compile_mode)
    optimizer = build_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_lr_factor(s, total_steps, config.warmup_steps)
    )
    return objective, model, params, optimizer, scheduler


def build_run(
    config: TrainConfig,
    *,
    info: DistInfo,
    resume: bool,
    overwrite: bool,
    progress: bool,
    reporter: Reporter | None = None,
) -> Run:
    """Set up a run of ``config`` (already validated) in this process; see the module docstring for the order.

    ``progress``: tokenising progress and the training bar (False on ranks other than 0). ``reporter``: the
    trackers (``--report-to``), started on rank 0 once the start step is known; the caller finishes it.
    """
    started = time.perf_counter()
    out = prepare_output_dir(config, resume=resume, overwrite=overwrite, info=info)
    device = pick_device(config.device, info)
    amp_dtype = autocast_dtype(config.precision, device)
    torch.manual_seed(config.seed + info.rank)  # dropout masks differ across ranks
    np.random.seed(config.seed)

    # model and data
    encoder = load_training_encoder(config, device)
    corpus = load_training_corpus(config, encoder.tokenizer, info, progress=progress)
    pairs = view_partners(config, corpus, encoder.tokenizer)
    teacher, pairs = load_teacher(config, corpus, encoder.tokenizer, pairs, info, device, progress=progress)
    schedule = BatchSchedule(len(corpus), config.batch_size, config.seed, min_batch=max(2, info.world_size))
    total_steps = config.max_steps or schedule.steps_per_epoch * config.epochs

    objective, model, params, optimizer, scheduler = build_optimisation(config, encoder, device, info, total_steps)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    evaluator = build_dev_evaluator(config, encoder, device) if config.eval_every and info.is_main else None
    metrics = MetricsLog(out / METRICS_FILE, info.is_main, reporter)
    result = TrainResult(out_dir=out, steps=total_steps)

    # resume, or a fresh run's config file and initial dev score
    start_step = 0
    if resume:
        start_step = restore_checkpoint(out, encoder, objective, optimizer, scheduler, scaler, result, info, config)
    elif info.is_main:
        (out / CONFIG_FILE).write_text(config.to_json())
    if reporter is not None and info.is_main:
        reporter.start(config.to_dict(), out, start_step=start_step)
    if evaluator is not None and start_step == 0:
        result.initial_dev = evaluator(encoder)
        metrics.write({"step": 0, "stsb_dev": result.initial_dev})
    barrier(info)
    disable = None if progress else True  # a live bar on a terminal; with no TTY, one line per log interval
    bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", disable=disable, dynamic_ncols=True)
    return Run(
        config=config,
        info=info,
        out=out,
        device=device,
        amp_dtype=amp_dtype,
        encoder=encoder,
        model=model,
        objective=objective,
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        loader=build_loader(config, corpus, schedule, start_step, total_steps, device, info, pairs, teacher),
        evaluator=evaluator,
        metrics=metrics,
        result=result,
        total_steps=total_steps,
        corpus_file=Path(corpus.source).name,
        corpus_sentences=len(corpus),
        step=start_step,
        started=started,
        bar=bar,
        log_lines=progress and bar.disable,
    )


__all__ = [
    "NumericalFault",
    "Run",
    "TrainResult",
    "autocast_dtype",
    "build_optimizer",
    "build_run",
    "compile_model",
    "linear_lr_factor",
    "pick_device",
    "view_layout",
]
