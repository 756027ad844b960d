"""The training loop. It reads top to bottom:

set up (output folder, device, model, corpus, objective, optimizer, dev evaluator, resume) →
for each step: periodic evaluation and checkpoint, learning rate, forward of both dropout views,
the objective, backward, clip, optimizer step (skipped on device when anything is non-finite), log →
final evaluation and export.

No host-device synchronisation happens inside the step loop except every ``log_every`` steps, when
the accumulated loss terms and the non-finite counters are read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from smoothcse.training.checkpoint import list_checkpoints, load_latest_checkpoint, rng_state, save_checkpoint, set_rng_state
from smoothcse.config import TrainConfig
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus, find_corpus
from smoothcse.training.distributed import (
    DistInfo, barrier, gather_with_grad, init_distributed, require_same_config, shutdown, wrap_ddp,
)
from smoothcse.model.encoder import SentenceEncoder, load_encoder
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.files import format_duration
from smoothcse.model.export import holds_model, save_encoder
from smoothcse.data.loader import BatchLoader
from smoothcse.objectives import build_objective
from smoothcse.data.views import ViewLayout, encode_views

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "smoothcse_config.json"


class TrainingInterrupted(SmoothCSEError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the message says how to resume."""


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


# ---------------------------------------------------------------------------------------------
# small pure helpers


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


CPU_ROWS_PER_FORWARD = 32
"""Length-sorted forwards of 32 rows on a CPU: of 16 / 32 / 64 rows per forward, 32 was as fast as 64 or faster
in two A/B runs with 2 threads on the 2-core CPU at batch 64, 16 was slower; with 1 thread 64 was fastest
(docs/performance.md, "Where the CPU gain comes from")."""
COMPILE_PAD_MULTIPLE = 8
"""With --compile, lengths are rounded up to a multiple of 8: at most max_len / 8 static shapes."""
PREFETCH_BATCHES = 2
"""The fast path's loader collates this many steps ahead in a background thread."""


def compile_model(model: nn.Module, max_len: int, mode: str = "default") -> nn.Module:
    """``torch.compile`` with one static graph per input shape (``mode`` as torch.compile's).

    The view layout keeps the shapes few (lengths in multiples of :data:`COMPILE_PAD_MULTIPLE`, a
    few row counts), so static graphs are reused instead of one dynamic graph that fits all; dynamo's
    per-function graph limit is raised to hold them all.
    """
    import torch._dynamo

    shapes = 4 * -(-max_len // COMPILE_PAD_MULTIPLE) + 8  # row counts: full forward, remainder, an epoch's last batch
    limit_name = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit_name, max(getattr(torch._dynamo.config, limit_name), shapes))
    return torch.compile(model, dynamic=False, mode=None if mode == "default" else mode)


def uses_cuda_graphs(config: TrainConfig, device: torch.device) -> bool:
    """Whether the compiled model replays CUDA graphs, so each step must be marked as a new one."""
    return config.compile and device.type == "cuda" and config.compile_mode in ("reduce-overhead", "max-autotune")


def view_layout(config: TrainConfig, device: torch.device) -> ViewLayout:
    """The fast path's forwards for this device (``ViewLayout()``, one padded forward, when it is off).

    ``rows_per_forward`` 0 means auto: length-sorted forwards of 32 rows on a CPU, where less padding
    is less time; all rows in one forward on a GPU, where the benefit of smaller forwards is not
    measured yet.
    """
    if not config.fast_path:
        return ViewLayout()
    rows = config.rows_per_forward or (CPU_ROWS_PER_FORWARD if device.type == "cpu" else 0)
    return ViewLayout(rows_per_forward=rows, pad_multiple=COMPILE_PAD_MULTIPLE if config.compile else 1)


# ---------------------------------------------------------------------------------------------
# set-up


def prepare_output_dir(config: TrainConfig, *, resume: bool, overwrite: bool, info: DistInfo) -> Path:
    out = Path(config.out).expanduser()
    if out.exists() and not out.is_dir():
        raise SmoothCSEError(f"--out {out}: is a file, not a folder.")
    if not resume and not overwrite and out.is_dir() and (holds_model(out) or list_checkpoints(out)):
        raise SmoothCSEError(
            f"--out {out}: already holds a model or checkpoints; pass --overwrite to replace it or --resume to continue."
        )
    if info.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise SmoothCSEError(f"--out {out}: cannot write there ({err.strerror}); choose a writable folder.") from None
        if overwrite and not resume:
            (out / METRICS_FILE).unlink(missing_ok=True)
            for old in list_checkpoints(out):
                old.unlink(missing_ok=True)
                (old.parent / (old.name + ".sha256")).unlink(missing_ok=True)
    return out


def build_dev_evaluator(config: TrainConfig, encoder: SentenceEncoder, device: torch.device) -> Any:
    from smoothcse.evaluation.dev import DevEvaluator
    from smoothcse.evaluation.data import load_stsb

    dev = load_stsb("dev", config.data_dir)
    return DevEvaluator(
        encoder, dev.sentences1, dev.sentences2, dev.scores, batch_size=config.eval_batch_size, device=device
    )


def build_optimizer(params: list[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel, which can skip a step on device when ``found_inf`` is set."""
    return torch.optim.AdamW(
        params, lr=config.lr, eps=config.adam_eps, weight_decay=config.weight_decay, fused=True
    )


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[dict[str, bool]]:
    """Turn SIGTERM into the same path as Ctrl-C: finish the step, save, stop."""
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class MetricsLog:
    """JSON lines in the output folder (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------------------------------
# the step


def contrastive_step(
    model: nn.Module,
    objective: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    step: int,
    total_steps: int,
    info: DistInfo,
    amp_dtype: torch.dtype | None,
    mini_batch_size: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    shard_sizes: list[int] | None = None,
    lengths: np.ndarray | None = None,
    layout: ViewLayout = ViewLayout(),
) -> dict[str, Tensor]:
    """Forward both views of this rank's shard, gather across ranks, compute the objective, backpropagate.

    Every rank computes the same global loss from the all-gathered embeddings (gradients reach only
    its own shard); the loss is multiplied by the world size because DDP averages the gradients.
    The objective is called exactly once per step, so its state (IS-CSE bank, GS-InfoNCE noise
    generator) advances once, as in a single process.

    With ``mini_batch_size`` > 0 (and smaller than the shard) this is gradient caching (Gao et al.,
    2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"):

    1. embed the shard in chunks of ``mini_batch_size`` without autograd, recording the RNG state
       before each chunk;
    2. gather, compute the objective and backpropagate it to the embeddings only;
    3. re-embed each chunk with autograd under its recorded RNG state (the same dropout masks, so
       the same embeddings) and backpropagate the cached embedding gradient through it; under DDP
       all chunks but the last run in ``no_sync()``, so gradients are all-reduced once;
    4. leave the RNG where step 1 left it, as if each chunk had run once.

    Loss and parameter gradients equal those of the plain path run chunk by chunk under the same
    RNG states (tests/test_gradcache.py); memory holds one chunk's activations plus ``(B, d)``
    embeddings.

    Args:
        shard_sizes: rows of every rank's shard when they differ (see
            :func:`smoothcse.training.distributed.shard_sizes`); None when all equal this rank's.
        lengths, layout: the sentences' token counts on the host and how to split the 2n rows into
            forwards (:mod:`smoothcse.data.views`); the default is one forward as collated.

    Returns the objective's terms, detached.
    """
    device = input_ids.device
    rows = input_ids.shape[0]

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()

    def backward(loss: Tensor) -> None:
        loss = loss * info.world_size  # DDP averages over ranks; each rank holds the gradient of its own shard
        (scaler.scale(loss) if scaler is not None else loss).backward()

    if not mini_batch_size or mini_batch_size >= rows:
        with autocast():
            z1, z2 = encode_views(model, input_ids, attention_mask, lengths, layout)  # (n, d) each
        z1 = gather_with_grad(z1.float(), info, shard_sizes)  # (B, d)
        z2 = gather_with_grad(z2.float(), info, shard_sizes)  # (B, d)
        terms = objective(z1, z2, step=step, total_steps=total_steps)
        backward(terms["loss"])
        return {k: v.detach() for k, v in terms.items()}

    chunks = [slice(start, start + mini_batch_size) for start in range(0, rows, mini_batch_size)]
    chunk_lengths = [lengths[chunk] if lengths is not None else None for chunk in chunks]
    # 1. embeddings without a graph, and the RNG state each chunk started from
    states, views1, views2 = [], [], []
    with torch.no_grad():
        for chunk, chunk_length in zip(chunks, chunk_lengths):
            states.append(_device_rng_state(device))
            with autocast():
                a, b = encode_views(model, input_ids[chunk], attention_mask[chunk], chunk_length, layout)  # (m, d) each
            views1.append(a.float())
            views2.append(b.float())
    end_state = _device_rng_state(device)
    # 2. the loss and its gradient with respect to the (local) embeddings
    z1 = torch.cat(views1).requires_grad_()  # (n, d)
    z2 = torch.cat(views2).requires_grad_()  # (n, d)
    terms = objective(
        gather_with_grad(z1, info, shard_sizes), gather_with_grad(z2, info, shard_sizes),
        step=step, total_steps=total_steps,
    )
    backward(terms["loss"])
    # (n, d) each, scaled by the GradScaler if any; None only if the loss ignores a view
    grad1 = z1.grad if z1.grad is not None else torch.zeros_like(z1)
    grad2 = z2.grad if z2.grad is not None else torch.zeros_like(z2)
    # 3. replay each chunk with a graph and push the cached gradient through it
    for k, chunk in enumerate(chunks):
        _set_device_rng_state(device, states[k])
        last = k == len(chunks) - 1
        sync = model.no_sync() if not last and hasattr(model, "no_sync") else contextlib.nullcontext()
        with sync:
            with autocast():
                a, b = encode_views(model, input_ids[chunk], attention_mask[chunk], chunk_lengths[k], layout)  # (m, d) each
            torch.autograd.backward([a.float(), b.float()], [grad1[chunk], grad2[chunk]])
    # 4. continue the RNG stream after the first pass, not the replay
    _set_device_rng_state(device, end_state)
    return {k: v.detach() for k, v in terms.items()}


def optimizer_step(
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: Tensor,
    max_grad_norm: float,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[Tensor, Tensor]:
    """Clip, step, advance the schedule, zero the gradients; returns (grad norm, skipped) on device.

    When the loss or the gradient norm is not finite the fused AdamW kernel skips the update on the
    device (``found_inf``), so no host sync is needed to decide.
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf"), foreach=True)
    bad = ~(torch.isfinite(grad_norm) & torch.isfinite(loss))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.found_inf = bad.float()  # type: ignore[attr-defined]  # shape () like the step counters
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, bad


def _device_rng_state(device: torch.device) -> Tensor:
    """The state of the generator that draws ``device``'s dropout masks."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_device_rng_state(device: torch.device, state: Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


# ---------------------------------------------------------------------------------------------
# the loop


def train(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> TrainResult:
    """Train an encoder as ``config`` says and export it to ``config.out``; see the module docstring."""
    config.validate()
    info = init_distributed(config.device)
    try:
        require_same_config(config.to_dict(), info)
        return _train(config, info, resume=resume, overwrite=overwrite, progress=progress and info.is_main)
    finally:
        shutdown(info)


def _train(config: TrainConfig, info: DistInfo, *, resume: bool, overwrite: bool, progress: bool) -> TrainResult:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out = prepare_output_dir(config, resume=resume, overwrite=overwrite, info=info)
    device = pick_device(config.device, info)
    amp_dtype = autocast_dtype(config.precision, device)
    torch.manual_seed(config.seed + info.rank)  # dropout masks differ across ranks
    np.random.seed(config.seed)

    # model
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
        raise ConfigError(f"--max-len {config.max_len} exceeds the model's {positions} positions; use at most {positions}.")
    encoder.train()

    # data
    corpus_path = find_corpus(config.data, config.data_dir)
    def build_corpus() -> TokenizedCorpus:
        return TokenizedCorpus.build(
            corpus_path, encoder.tokenizer, config.max_len, text_column=config.text_column,
            cache_dir=config.cache_dir, progress=progress,
        )

    if info.is_main:  # rank 0 tokenises; the others then read its cache
        corpus = build_corpus()
    barrier(info)
    if not info.is_main:
        corpus = build_corpus()
    if config.max_sentences:
        if config.max_sentences > len(corpus):
            raise ConfigError(
                f"--max-sentences {config.max_sentences}: {corpus_path} holds only {len(corpus)} sentences; "
                f"use at most {len(corpus)}, or 0 for all."
            )
        corpus = corpus.first(config.max_sentences)
    if len(corpus) < config.batch_size:
        raise SmoothCSEError(
            f"--data {corpus_path}: {len(corpus)} sentences, fewer than one batch of {config.batch_size}; "
            "use a larger corpus or a smaller --batch-size."
        )
    if config.batch_size % info.world_size:
        raise ConfigError(f"--batch-size {config.batch_size} must be divisible by the number of processes ({info.world_size}).")
    schedule = BatchSchedule(len(corpus), config.batch_size, config.seed, min_batch=max(2, info.world_size))
    total_steps = config.max_steps or schedule.steps_per_epoch * config.epochs
    layout = view_layout(config, device)
    pad_to = config.max_len if config.compile else None  # the fast path's layout trims to multiples of 8

    # objective, optimizer, schedule
    # the noise generator follows --seed (identical on every rank, so GS columns agree across ranks)
    objective = build_objective(dataclasses.replace(config.objective, seed=config.seed)).to(device)
    objective.train()
    params = [p for p in encoder.parameters() if p.requires_grad]
    model: nn.Module = encoder
    if info.enabled:
        model = wrap_ddp(encoder, device)  # rank 0's weights on every rank
    if config.compile:
        model = compile_model(model, config.max_len, config.compile_mode)
    cuda_graphs = uses_cuda_graphs(config, device)
    optimizer = build_optimizer(params, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_lr_factor(s, total_steps, config.warmup_steps)
    )
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    evaluator = build_dev_evaluator(config, encoder, device) if config.eval_every and info.is_main else None
    metrics = MetricsLog(out / METRICS_FILE, info.is_main)
    result = TrainResult(out_dir=out, steps=total_steps)

    # resume
    start_step = 0
    if resume:
        start_step = _restore(out, encoder, objective, optimizer, scheduler, scaler, result, device, info)
    elif info.is_main:
        (out / CONFIG_FILE).write_text(config.to_json())

    if evaluator is not None and start_step == 0:
        result.initial_dev = evaluator(encoder)
        metrics.write({"step": 0, "stsb_dev": result.initial_dev})
    barrier(info)

    # on-device counters: no sync inside the loop
    running = {}
    nonfinite_total = torch.zeros((), device=device)
    consecutive_bad = torch.zeros((), device=device)
    worst_run = torch.zeros((), device=device)
    last_log_time, last_log_step = time.perf_counter(), start_step
    # a live bar on a terminal; in a log file (no TTY) one line per log interval instead
    bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", disable=None if progress else True, dynamic_ncols=True)
    log_lines = progress and bar.disable

    def checkpoint(step: int) -> Path | None:
        if not info.is_main:
            return None
        payload = {
            "step": step,
            "config": config.to_dict(),
            "encoder": encoder.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "best_dev": result.best_dev,
            "best_step": result.best_step,
            "initial_dev": result.initial_dev,
            "skipped_steps": result.skipped_steps + int(nonfinite_total.item()),
        }
        return save_checkpoint(out, step, payload, keep=config.keep_checkpoints)

    # this rank's batches from start_step on; the fast path collates them ahead in a thread
    loader = BatchLoader(
        corpus, schedule, start_step, total_steps, device=device, info=info, pad_to=pad_to,
        prefetch=PREFETCH_BATCHES if config.fast_path else 0,
    )
    batches = iter(loader)

    step = start_step
    with graceful_interrupts() as signals:
        try:
            while step < total_steps:
                # -- learning rate is set by the scheduler; this rank's shard of the global batch
                batch = next(batches)
                if cuda_graphs:  # the previous step's graph outputs are dead: their memory may be reused
                    torch.compiler.cudagraph_mark_step_begin()

                # -- forward, objective, backward
                terms = contrastive_step(
                    model, objective, batch.input_ids, batch.attention_mask, step=step, total_steps=total_steps,
                    info=info, amp_dtype=amp_dtype, mini_batch_size=config.mini_batch_size, scaler=scaler,
                    shard_sizes=batch.shard_sizes, lengths=batch.lengths, layout=layout,
                )

                # -- clip, step (skipped on device if the loss or a gradient is not finite), zero
                grad_norm, bad = optimizer_step(params, optimizer, scheduler, terms["loss"], config.max_grad_norm, scaler)
                nonfinite_total += bad
                consecutive_bad = (consecutive_bad + 1) * bad
                worst_run = torch.maximum(worst_run, consecutive_bad)
                for name, value in terms.items():
                    running[name] = running.get(name, 0.0) + torch.nan_to_num(value.float(), nan=0.0, posinf=0.0)
                step += 1
                bar.update(1)

                # -- log (the only host sync of the loop)
                if step % config.log_every == 0 or step == total_steps:
                    now = time.perf_counter()
                    count = step - last_log_step
                    record = {"step": step, "lr": scheduler.get_last_lr()[0]}
                    # six significant digits: a pre-trained encoder's loss can be 1e-6, which decimals would round to 0
                    record.update({k: float(f"{float(v) / count:.6g}") for k, v in running.items()})
                    record["steps_per_s"] = round(count / (now - last_log_time), 3)
                    record["grad_norm"] = float(grad_norm)
                    record["nonfinite_steps"] = int(nonfinite_total)
                    metrics.write(record)
                    bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4g}", lr=f"{record['lr']:.2e}", it_s=record["steps_per_s"])
                    if log_lines:
                        eta = (total_steps - step) / max(record["steps_per_s"], 1e-9)
                        print(
                            f"step {step}/{total_steps}  loss {record.get('loss', float('nan')):.4g}  lr {record['lr']:.2e}  "
                            f"{record['steps_per_s']:.2f} steps/s  ETA {format_duration(eta)}", file=sys.stderr, flush=True,
                        )
                    running.clear()
                    last_log_time, last_log_step = now, step
                    if int(worst_run) >= config.max_bad_steps:
                        raise NumericalFault(_fault_message(config, step, int(worst_run), out))
                    worst_run.zero_()

                # -- periodic evaluation (rank 0) and checkpoint
                if evaluator is not None and (step % config.eval_every == 0 or step == total_steps):
                    score = evaluator(encoder)
                    metrics.write({"step": step, "stsb_dev": score})
                    result.history.append({"step": step, "stsb_dev": score})
                    result.final_dev = score
                    if result.best_dev is None or score > result.best_dev:
                        result.best_dev, result.best_step = score, step
                        save_encoder(encoder, out, config.to_dict())
                if config.save_every and step % config.save_every == 0 and step < total_steps:
                    checkpoint(step)
                barrier(info)
                if signals["stop"]:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            saved = checkpoint(step)
            where = f" to {saved}" if saved else ""
            raise TrainingInterrupted(
                f"Interrupted at step {step}/{total_steps}; checkpoint saved{where}. "
                f"Continue with the same command plus --resume."
            ) from None
        finally:
            loader.close()
    bar.close()
    result.skipped_steps += int(nonfinite_total)
    if info.is_main:
        if evaluator is None:
            save_encoder(encoder, out, config.to_dict())
        checkpoint(step)
        summary = {
            "steps": total_steps, "initial_dev": result.initial_dev, "best_dev": result.best_dev,
            "best_step": result.best_step, "final_dev": result.final_dev, "skipped_steps": result.skipped_steps,
            "seconds": round(time.perf_counter() - started, 2),
        }
        metrics.write({"summary": summary})
    result.seconds = time.perf_counter() - started
    barrier(info)
    return result


def _fault_message(config: TrainConfig, step: int, run: int, out: Path) -> str:
    causes = []
    if config.precision == "fp16":
        causes.append("fp16 overflow (try --precision bf16 or fp32)")
    if config.lr > 1e-4:
        causes.append(f"a learning rate of {config.lr:g} (SimCSE uses 1e-5 to 5e-5)")
    if config.objective.temperature < 0.01:
        causes.append(f"a temperature of {config.objective.temperature:g} (0.05 is usual)")
    hint = "; likely: " + ", ".join(causes) if causes else "; check --lr, --precision and the temperature"
    ckpts = list_checkpoints(out)
    last = f" The last good checkpoint is {ckpts[-1]}." if ckpts else ""
    return f"{run} consecutive steps had a non-finite loss or gradient (around step {step}){hint}.{last}"


def _restore(
    out: Path,
    encoder: SentenceEncoder,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    result: TrainResult,
    device: torch.device,
    info: DistInfo,
) -> int:
    try:
        path, payload, skipped = load_latest_checkpoint(out, map_location="cpu")
    except FileNotFoundError as err:
        raise SmoothCSEError(f"--resume: no valid checkpoint in {out / 'checkpoints'} ({err}).") from None
    for message in skipped:
        print(f"smoothcse: {message}", file=sys.stderr)
    encoder.load_state_dict(payload["encoder"])
    objective.load_state_dict(payload["objective"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    set_rng_state(payload["rng"])
    if info.enabled:  # each rank continues its own dropout stream from the shared state
        torch.manual_seed(int(torch.get_rng_state()[:8].sum()) + info.rank)
    result.best_dev = payload.get("best_dev")
    result.best_step = payload.get("best_step")
    result.initial_dev = payload.get("initial_dev")
    result.skipped_steps = payload.get("skipped_steps", 0)
    if info.is_main:
        print(f"smoothcse: resumed from {path} (step {payload['step']})", file=sys.stderr)
    return int(payload["step"])


__all__ = ["TrainResult", "TrainingInterrupted", "contrastive_step", "encode_views", "linear_lr_factor", "train"]
