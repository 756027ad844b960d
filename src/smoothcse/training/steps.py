"""The training step: both dropout views forward, the objective, backward (:func:`plain_step`, or
:func:`cached_step` with gradient caching); then clip and the optimizer step (:func:`optimizer_step`).
:func:`train_step` is one step of a :class:`~smoothcse.training.run.Run`, as the loop and the benchmark take it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from smoothcse.data.loader import SecondView
from smoothcse.data.views import ViewLayout, encode_views
from smoothcse.training.distributed import DistInfo, gather_with_grad

if TYPE_CHECKING:
    from smoothcse.data.loader import Batch
    from smoothcse.training.run import Run


def contrastive_step(
    model: nn.Module,
    objective: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    mini_batch_size: int = 0,
    **options: Any,
) -> dict[str, Tensor]:
    """:func:`cached_step` (gradient caching) when ``mini_batch_size`` > 0 is smaller than the shard, else
    :func:`plain_step`; ``options`` are theirs. Returns the objective's terms, detached."""
    if not mini_batch_size or mini_batch_size >= input_ids.shape[0]:
        return plain_step(model, objective, input_ids, attention_mask, **options)
    return cached_step(model, objective, input_ids, attention_mask, mini_batch_size=mini_batch_size, **options)


def plain_step(
    model: nn.Module,
    objective: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    step: int,
    total_steps: int,
    info: DistInfo,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None = None,
    shard_sizes: list[int] | None = None,
    lengths: np.ndarray | None = None,
    layout: ViewLayout = ViewLayout(),
    second: SecondView | None = None,
    teacher: Tensor | None = None,
    teacher_positive: Tensor | None = None,
) -> dict[str, Tensor]:
    """Forward both views of this rank's shard, gather across ranks, compute the objective, backpropagate.

    The objective is called exactly once per step, so its state (IS-CSE bank, GS-InfoNCE noise generator)
    advances once, as in a single process.

    Args:
        shard_sizes: rows of every rank's shard when they differ (see
            :func:`smoothcse.data.shards.shard_sizes`); None when all equal this rank's.
        lengths, layout: the sentences' token counts on the host and how to split the 2n rows into
            forwards (:mod:`smoothcse.data.views`); the default is one forward as collated.
        second: the second view's own ids, mask and counts when the views differ in their text
            (:mod:`smoothcse.data.augment`); None: both views are ``input_ids``.
        teacher: ``(n, d_t)`` this rank's rows of the frozen teacher's embeddings, gathered like the views,
            for an objective that reads them; ``teacher_positive``: its embeddings of their positives when
            these are other texts (None: the units themselves).
    """
    with _autocast(input_ids.device, amp_dtype):
        z1, z2 = encode_views(model, input_ids, attention_mask, lengths, layout, second)  # (n, d) each
    teachers = (teacher, teacher_positive)
    terms = _loss_backward(objective, z1.float(), z2.float(), step, total_steps, info, shard_sizes, teachers, scaler)
    return {k: v.detach() for k, v in terms.items()}


def cached_step(
    model: nn.Module,
    objective: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    mini_batch_size: int,
    step: int,
    total_steps: int,
    info: DistInfo,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None = None,
    shard_sizes: list[int] | None = None,
    lengths: np.ndarray | None = None,
    layout: ViewLayout = ViewLayout(),
    second: SecondView | None = None,
    teacher: Tensor | None = None,
    teacher_positive: Tensor | None = None,
) -> dict[str, Tensor]:
    """:func:`plain_step` by gradient caching (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch
    Size under Memory Limited Setup"), in chunks of ``mini_batch_size`` rows, in the four steps commented
    below: each chunk is replayed under its recorded RNG state (the same dropout masks, so the same
    embeddings), and under DDP all chunks but the last run in ``no_sync()``.

    Loss and parameter gradients equal the plain path's run chunk by chunk under the same RNG states
    (tests/training/test_gradcache.py); memory holds one chunk's activations plus ``(B, d)`` embeddings.
    """
    device = input_ids.device
    rows = input_ids.shape[0]
    chunks = [slice(start, start + mini_batch_size) for start in range(0, rows, mini_batch_size)]

    def encode_chunk(chunk: slice) -> tuple[Tensor, Tensor]:  # (m, d) each
        counts = lengths[chunk] if lengths is not None else None
        second_rows = None if second is None else (second[0][chunk], second[1][chunk], second[2][chunk])
        with _autocast(device, amp_dtype):
            return encode_views(model, input_ids[chunk], attention_mask[chunk], counts, layout, second_rows)

    # 1. embeddings without a graph, and the RNG state each chunk started from
    states, views1, views2 = [], [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_device_rng_state(device))
            a, b = encode_chunk(chunk)
            views1.append(a.float())
            views2.append(b.float())
    end_state = _device_rng_state(device)
    # 2. the loss and its gradient with respect to the (local) embeddings
    z1 = torch.cat(views1).requires_grad_()  # (n, d)
    z2 = torch.cat(views2).requires_grad_()  # (n, d)
    teachers = (teacher, teacher_positive)
    terms = _loss_backward(objective, z1, z2, step, total_steps, info, shard_sizes, teachers, scaler)
    # (n, d) each, scaled by the GradScaler if any; None only if the loss ignores a view
    grad1, grad2 = (z.grad if z.grad is not None else torch.zeros_like(z) for z in (z1, z2))
    # 3. replay each chunk with a graph and push the cached gradient through it
    for k, chunk in enumerate(chunks):
        _set_device_rng_state(device, states[k])
        no_sync = k < len(chunks) - 1 and hasattr(model, "no_sync")  # DDP reduces the gradients after the last chunk
        with cast(nn.parallel.DistributedDataParallel, model).no_sync() if no_sync else contextlib.nullcontext():
            a, b = encode_chunk(chunk)
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


def train_step(run: Run, batch: Batch) -> Tensor:
    """One step of ``run`` on ``batch``: forward, objective, backward, clip, optimizer step (skipped on the
    device if the loss or a gradient is not finite), zero the gradients; counts it on the device and
    advances ``run.step``. No host sync. Returns the gradient norm (on the device)."""
    if run.cuda_graphs:  # the previous step's graph outputs are dead: their memory may be reused
        torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
    terms = contrastive_step(
        run.model,
        run.objective,
        batch.input_ids,
        batch.attention_mask,
        step=run.step,
        total_steps=run.total_steps,
        info=run.info,
        amp_dtype=run.amp_dtype,
        mini_batch_size=run.config.mini_batch_size,
        scaler=run.scaler,
        shard_sizes=batch.shard_sizes,
        lengths=batch.lengths,
        layout=run.layout,
        second=batch.second,
        teacher=batch.teacher,
        teacher_positive=batch.teacher_positive,
    )
    grad_norm, bad = optimizer_step(
        run.params, run.optimizer, run.scheduler, terms["loss"], run.config.max_grad_norm, run.scaler
    )
    run.counters.add(terms, bad)
    run.step += 1
    return grad_norm


def _loss_backward(
    objective: nn.Module,
    z1: Tensor,
    z2: Tensor,
    step: int,
    total_steps: int,
    info: DistInfo,
    shard_sizes: list[int] | None,
    teacher: tuple[Tensor | None, Tensor | None],
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Tensor]:
    """The objective on this rank's ``(n, d)`` views gathered across ranks into ``(B, d)`` (with the teacher's
    rows of the units and of their positives, gathered alike, for an objective that reads them), backpropagated."""
    z1 = gather_with_grad(z1, info, shard_sizes)  # (B, d)
    z2 = gather_with_grad(z2, info, shard_sizes)  # (B, d)
    named = zip(("teacher", "teacher_positive"), teacher)
    rows = {name: gather_with_grad(t.float(), info, shard_sizes) for name, t in named if t is not None}
    terms: dict[str, Tensor] = objective(z1, z2, step=step, total_steps=total_steps, **rows)
    loss = terms["loss"] * info.world_size  # DDP averages over ranks; each rank holds the gradient of its own shard
    (scaler.scale(loss) if scaler is not None else loss).backward()  # type: ignore[no-untyped-call]
    return terms


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


def _device_rng_state(device: torch.device) -> Tensor:
    """The state of the generator that draws ``device``'s dropout masks."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_device_rng_state(device: torch.device, state: Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


__all__ = ["cached_step", "contrastive_step", "optimizer_step", "plain_step", "train_step"]
