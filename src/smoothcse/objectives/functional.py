"""The mathematics of the objectives: functions of tensors alone, no model, no state.

Everything here works on sentence embeddings already produced by a model (for SimCSE training:
the MLP-head outputs ``z1``, ``z2`` of two dropout views of the same N sentences). Conventions:

- similarity is cosine; a row of the logit matrix is one anchor, its columns are first the N
  in-batch candidates (column i is anchor i's positive, the others its negatives), then the M extra
  negatives, if any: shape ``(N, N+M)``;
- similarities, logits and the softmax are computed in float32 whatever the input dtype (bf16/fp16
  inputs are upcast, autocast is switched off inside), or in float64 for float64 inputs;
- soft adjustments (weights, per-pair temperatures) are computed from detached similarities: they
  shape the gradient but receive none.

See docs/objectives.md for the formulas and the papers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cosine_alpha",
    "gaussian_negatives",
    "similarity_distillation",
    "info_nce",
    "info_nce_from_logits",
    "info_nce_logits",
    "pair_similarities",
    "smooth_positives",
    "soft_negative_linear_log_weights",
    "soft_negative_log_weights",
    "soft_pair_temperatures",
]


# --------------------------------------------------------------------------- helpers


def _compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float32, or float64 if any input is float64: the precision the loss is computed in."""
    dtype = torch.float32
    for tensor in tensors:
        if tensor is not None:
            dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


@contextlib.contextmanager
def _full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off, so matmuls and softmax run in the dtype the tensors have."""
    if device.type in ("cpu", "cuda", "xpu", "mps"):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:  # pragma: no cover - devices without autocast
        yield


def _normalize(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm; rows shorter than the dtype's eps are left (near) zero."""
    return F.normalize(x, dim=-1, eps=torch.finfo(x.dtype).eps)


def _check_matrix(name: str, tensor: Tensor, *, dim: int | None = None) -> None:
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, dim) tensor, got shape {tuple(tensor.shape)}.")
    if dim is not None and tensor.shape[1] != dim:
        raise ValueError(f"{name} has dimension {tensor.shape[1]}, expected {dim}.")


def _direction_sign(direction: str) -> float:
    """+1 for 'up' (push near negatives more), -1 for 'down' (push them less)."""
    if direction == "up":
        return 1.0
    if direction == "down":
        return -1.0
    raise ValueError(f"direction must be 'down' or 'up', got {direction!r}.")


# --------------------------------------------------------------------------- InfoNCE


def pair_similarities(anchors: Tensor, positives: Tensor, extra_negatives: Tensor | None = None) -> Tensor:
    """Cosine similarity of every anchor with every candidate: ``(N, N+M)``, float32 (or float64).

    Args:
        anchors: ``(N, d)``, e.g. ``z1``.
        positives: ``(N, d)``; row i is anchor i's positive and a negative for every other anchor.
        extra_negatives: optional ``(M, d)`` negatives shared by all anchors (appended as columns).
    """
    _check_matrix("anchors", anchors)
    _check_matrix("positives", positives, dim=anchors.shape[1])
    if positives.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"anchors and positives must have the same number of rows, got {anchors.shape[0]} and {positives.shape[0]}."
        )
    if extra_negatives is not None:
        _check_matrix("extra_negatives", extra_negatives, dim=anchors.shape[1])
    dtype = _compute_dtype(anchors, positives, extra_negatives)
    with _full_precision(anchors.device):
        columns = positives.to(dtype)  # (N, d)
        if extra_negatives is not None:
            columns = torch.cat([columns, extra_negatives.to(device=columns.device, dtype=dtype)])  # (N+M, d)
        return _normalize(anchors.to(dtype)) @ _normalize(columns).T  # (N, N+M)


def info_nce_logits(
    sim: Tensor,
    *,
    temperature: float = 0.05,
    neg_log_weights: Tensor | None = None,
    pair_temperatures: Tensor | None = None,
) -> Tensor:
    """Logits ``sim / tau + neg_log_weights`` of the InfoNCE softmax, ``(N, N+M)``, for ``sim`` from
    :func:`pair_similarities`: ``neg_log_weights`` (0 = weight 1; keep the diagonal at 0) multiplies each term
    of the softmax denominator by ``exp(neg_log_weights)``; ``pair_temperatures`` replace tau pair by pair.
    """
    if sim.ndim != 2 or sim.shape[1] < sim.shape[0]:
        raise ValueError(f"sim must have shape (N, N+M), got {tuple(sim.shape)}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    for name, extra in (("neg_log_weights", neg_log_weights), ("pair_temperatures", pair_temperatures)):
        if extra is not None and extra.shape != sim.shape:
            raise ValueError(f"{name} must have the shape of the logits {tuple(sim.shape)}, got {tuple(extra.shape)}.")
    with _full_precision(sim.device):
        if pair_temperatures is None:
            logits = sim / temperature  # (N, N+M)
        else:
            logits = sim / pair_temperatures.to(sim.dtype)  # (N, N+M)
        if neg_log_weights is not None:
            logits = logits + neg_log_weights.to(sim.dtype)  # (N, N+M)
        return logits


def info_nce_from_logits(logits: Tensor) -> Tensor:
    """Mean cross-entropy of ``(N, N+M)`` logits with label i for row i (a scalar)."""
    labels = torch.arange(logits.shape[0], device=logits.device)  # (N,)
    with _full_precision(logits.device):
        return F.cross_entropy(logits.to(_compute_dtype(logits)), labels)


def info_nce(
    anchors: Tensor,
    positives: Tensor,
    *,
    temperature: float = 0.05,
    extra_negatives: Tensor | None = None,
    neg_log_weights: Tensor | None = None,
    pair_temperatures: Tensor | None = None,
) -> Tensor:
    """InfoNCE (SimCSE's loss, one direction anchors -> positives), mean over the N anchors.

    ``l_i = -log( exp(s_ii / t_ii) / sum_j w_ij exp(s_ij / t_ij) )`` with ``s_ij`` the cosine of
    anchor i and column j (columns: the N positives, then the M extra negatives), ``w_ij =
    exp(neg_log_weights[i, j])`` (default 1) and ``t_ij = pair_temperatures[i, j]`` (default
    ``temperature``); the arguments are those of :func:`pair_similarities` and :func:`info_nce_logits`.

    Example::

        z1, z2 = torch.randn(64, 768), torch.randn(64, 768)
        loss = info_nce(z1, z2, temperature=0.05)
    """
    sim = pair_similarities(anchors, positives, extra_negatives)  # (N, N+M)
    logits = info_nce_logits(
        sim, temperature=temperature, neg_log_weights=neg_log_weights, pair_temperatures=pair_temperatures
    )  # (N, N+M)
    return info_nce_from_logits(logits)


# --------------------------------------------------------------------------- GS-InfoNCE


def gaussian_negatives(
    num: int,
    dim: int,
    *,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``num`` vectors drawn from N(0, std^2 I_dim): ``(num, dim)``, no gradient.

    The draw is ``std * randn``, so the same generator state gives the same directions for every
    ``std``. ``device`` defaults to the generator's device (else torch's default device).
    """
    if num < 0 or dim < 1:
        raise ValueError(f"need num >= 0 and dim >= 1, got num={num}, dim={dim}.")
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}.")
    if device is None and generator is not None:
        device = generator.device
    noise = torch.randn(num, dim, generator=generator, device=device, dtype=dtype)  # (M, d)
    return noise if std == 1.0 else noise.mul_(std)


# --------------------------------------------------------------------------- IS-CSE


def smooth_positives(positives: Tensor, bank: Tensor, *, k: int = 16, scale: float = 2.0) -> Tensor:
    """IS-CSE's smoothed positives: each positive averaged with its k nearest bank rows, ``(N, d)``.

    For each row ``p_i`` of ``normalize(positives)``: take the ``k + 1`` rows of ``bank`` with the
    largest dot product and drop rank 0 (the positive itself: the bank must already contain this
    batch), form the group ``G_i = [p_i; n_1 .. n_k]`` and return ``softmax(p_i G_i^T / scale) G_i``
    (not re-normalised). Neighbours are detached: the gradient flows only through ``p_i`` (as the
    attention query and as the first member of its group).

    Args:
        positives: ``(N, d)``, e.g. ``z2`` (any float dtype; computed in float32 or float64).
        bank: ``(B, d)`` L2-normalised rows, ``B >= k + 1``, that include this batch's normalised positives.
        k: neighbours per positive (IS-CSE: 16).
        scale: the fixed divisor inside the attention softmax (IS-CSE: 2).
    """
    _check_matrix("positives", positives)
    _check_matrix("bank", bank, dim=positives.shape[1])
    if k < 0 or bank.shape[0] < k + 1:
        raise ValueError(f"need 0 <= k and k + 1 <= bank rows, got k={k} and {bank.shape[0]} rows.")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    dtype = _compute_dtype(positives, bank)
    with _full_precision(positives.device):
        query = _normalize(positives.to(dtype))  # (N, d)
        memory = bank.detach().to(device=query.device, dtype=dtype)  # (B, d)
        scores = query.detach() @ memory.T  # (N, B)
        nearest = scores.topk(k + 1, dim=1).indices[:, 1:]  # (N, k), rank 0 (itself) dropped
        group = torch.cat([query.unsqueeze(1), memory[nearest]], dim=1)  # (N, k+1, d)
        attention = torch.softmax(torch.einsum("nd,ngd->ng", query, group) / scale, dim=-1)  # (N, k+1)
        return torch.einsum("ng,ngd->nd", attention, group)  # (N, d)


def cosine_alpha(step: int, total_steps: int, *, start: float = 0.005, end: float = 0.05) -> float:
    """IS-CSE's "cos" weight schedule: ``cos(pi t / T) (start - end) + end``, clipped at ``end``.

    Moves from ``start`` at ``t = 0`` to ``end`` at ``t = T/2`` and stays at ``end`` afterwards
    (a cosine warm-up over the first half of training). ``t`` is clamped to ``[0, T]``.
    """
    if total_steps <= 0:
        raise ValueError(f"the 'cos' schedule needs total_steps > 0, got {total_steps}.")
    t = min(max(step, 0), total_steps)
    alpha = math.cos(math.pi * t / total_steps) * (start - end) + end
    return min(alpha, end) if start <= end else max(alpha, end)


# --------------------------------------------------------------------------- SoftCSE (smoothcse's parametrisation)


def _negatives_mask(n: int, device: torch.device) -> Tensor:
    return ~torch.eye(n, dtype=torch.bool, device=device)  # (N, N), False on the positives


def soft_negative_log_weights(
    sim: Tensor, *, temperature: float = 0.05, strength: float = 0.5, direction: str = "down"
) -> Tensor:
    """SoftCSE weight variant (smoothcse's parametrisation): log-weights for :func:`info_nce`, ``(N, N+M)``.

    For the in-batch negatives (j != i, j < N) of row i::

        r_ij = sign * strength * s_ij / temperature      sign = +1 for "up", -1 for "down"
        w_ij = exp(r_ij) / mean_{k != i, k < N} exp(r_ik)  (mean 1 over each row's negatives)

    computed from ``sim.detach()``. The positive (diagonal) and the extra-negative columns
    (j >= N) keep weight 1 (log-weight 0). ``strength = 0`` gives all zeros (exactly InfoNCE);
    "down" with strength 1 flattens the softmax over the negatives to uniform, strength > 1
    pushes the nearest negatives least.

    Args:
        sim: ``(N, N+M)`` cosine similarities (the first N columns are the in-batch candidates).
    """
    sim = sim.detach()
    n = sim.shape[0]
    log_weights = torch.zeros_like(sim)  # (N, N+M)
    if strength == 0 or n < 2:
        return log_weights
    sign = _direction_sign(direction)
    negatives = _negatives_mask(n, sim.device)  # (N, N)
    raw = (sign * strength / temperature) * sim[:, :n]  # (N, N)
    raw = raw.masked_fill(~negatives, torch.finfo(raw.dtype).min)  # (N, N), positives out of the mean
    log_mean = torch.logsumexp(raw, dim=1, keepdim=True) - math.log(n - 1)  # (N, 1)
    log_weights[:, :n] = (raw - log_mean).masked_fill(~negatives, 0.0)  # (N, N)
    return log_weights


def soft_negative_linear_log_weights(sim: Tensor, *, strength: float = 1.0, direction: str = "down") -> Tensor:
    """SoftCSE weight variant, the linear form: log-weights for :func:`info_nce`, ``(N, N+M)``.

    The form Dvořák et al. restate for SoftCSE ("Size Matters: Foundation Model for Czech HTML
    documents"): ``w_ij = (1 - s_ij) / 2`` for the in-batch negatives, the positive keeping weight 1,
    no renormalisation, so negatives similar to the anchor "are penalized less". smoothcse blends it
    with SimCSE by ``strength`` (lambda, in [0, 1]) and lets ``direction`` mirror it::

        down: w_ij = 1 - lambda * (1 + s_ij) / 2      (lambda = 1: (1 - s_ij) / 2, the paper's form)
        up:   w_ij = 1 - lambda * (1 - s_ij) / 2      (lambda = 1: (1 + s_ij) / 2, near negatives pushed more)

    from ``sim.detach()``; ``w`` lies in [1 - lambda, 1]. The positive (diagonal) and the
    extra-negative columns (j >= N) keep weight 1. ``strength = 0`` is exactly InfoNCE. A weight of
    exactly 0 (lambda = 1 and a cosine of exactly +-1) gives log-weight -inf: that term leaves the
    softmax, as in the formula.

    Args:
        sim: ``(N, N+M)`` cosine similarities (the first N columns are the in-batch candidates).
        strength: lambda in [0, 1].
        direction: "down" or "up".
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength of the linear weight form must be in [0, 1], got {strength}.")
    sim = sim.detach()
    n = sim.shape[0]
    log_weights = torch.zeros_like(sim)  # (N, N+M)
    if strength == 0 or n < 2:
        return log_weights
    sign = _direction_sign(direction)  # -1 down, +1 up
    negatives = _negatives_mask(n, sim.device)  # (N, N)
    weights = 1.0 - strength * (1.0 - sign * sim[:, :n]) / 2.0  # (N, N)
    log_weights[:, :n] = torch.log(weights.clamp_min(0.0)).masked_fill(~negatives, 0.0)  # (N, N)
    return log_weights


def soft_pair_temperatures(
    sim: Tensor,
    *,
    temperature: float = 0.05,
    strength: float = 0.5,
    direction: str = "down",
    tau_min: float = 0.025,
    tau_max: float = 0.1,
) -> Tensor:
    """SoftCSE temperature variant (smoothcse's parametrisation): per-pair temperatures, ``(N, N+M)``.

    For the in-batch negatives (j != i, j < N) of row i, with ``m_i`` the mean of ``s_ik`` over
    row i's in-batch negatives::

        t_ij = clamp(temperature * exp(-sign * strength * (s_ij - m_i)), tau_min, tau_max)

    with ``sign = -1`` for "down" (a negative nearer than average gets a higher temperature: it is
    pushed less) and ``+1`` for "up" (lower temperature: pushed more). Computed from
    ``sim.detach()``; the positive and the extra-negative columns keep ``temperature``.
    ``strength = 0`` gives ``temperature`` everywhere (exactly InfoNCE).

    Args:
        sim: ``(N, N+M)`` cosine similarities (the first N columns are the in-batch candidates).
        tau_min, tau_max: bounds, ``tau_min <= temperature <= tau_max``.
    """
    if not 0 < tau_min <= temperature <= tau_max:
        raise ValueError(f"need 0 < tau_min <= temperature <= tau_max, got {tau_min}, {temperature}, {tau_max}.")
    sim = sim.detach()
    n = sim.shape[0]
    temperatures = torch.full_like(sim, temperature)  # (N, N+M)
    if strength == 0 or n < 2:
        return temperatures
    sign = _direction_sign(direction)
    negatives = _negatives_mask(n, sim.device)  # (N, N)
    block = sim[:, :n]  # (N, N)
    row_mean = (block * negatives).sum(dim=1, keepdim=True) / (n - 1)  # (N, 1)
    pair = temperature * torch.exp((-sign * strength) * (block - row_mean))  # (N, N)
    temperatures[:, :n] = pair.clamp(tau_min, tau_max).masked_fill(~negatives, temperature)  # (N, N)
    return temperatures


# --------------------------------------------------------------------------- similarity distillation (RankCSE-style)


def similarity_distillation(student_sim: Tensor, teacher_sim: Tensor, *, temperature: float = 0.05) -> Tensor:
    """Mean over rows of ``KL(softmax(teacher_sim_i / t) || softmax(student_sim_i / t))``, a scalar.

    ``student_sim``: ``(N, N)``, the in-batch block of :func:`pair_similarities`; ``teacher_sim``: ``(N, N)``
    a frozen teacher's similarities of the same sentences (no gradient). See
    :class:`~smoothcse.objectives.SimilarityDistillation`.
    """
    if student_sim.ndim != 2 or student_sim.shape != teacher_sim.shape:
        raise ValueError(
            f"student_sim and teacher_sim must be (N, N) of one shape, got {tuple(student_sim.shape)} "
            f"and {tuple(teacher_sim.shape)}."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    dtype = _compute_dtype(student_sim, teacher_sim)
    with _full_precision(student_sim.device):
        log_student = torch.log_softmax(student_sim.to(dtype) / temperature, dim=-1)  # (N, N)
        log_teacher = torch.log_softmax(teacher_sim.detach().to(dtype) / temperature, dim=-1)  # (N, N)
        return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
