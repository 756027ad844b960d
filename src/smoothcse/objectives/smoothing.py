"""IS-CSE: a FIFO bank of past positives and the smoothed positives built from it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothcse.errors import ConfigError
from smoothcse.objectives.config import ALPHA_SCHEDULES
from smoothcse.objectives.functional import _compute_dtype, cosine_alpha, smooth_positives

IS_CSE_CITATION = """\
@inproceedings{he2023instance,
  title     = {Instance Smoothed Contrastive Learning for Unsupervised Sentence Embedding},
  author    = {He, Hongliang and Zhang, Junlei and Lan, Zhenzhong and Zhang, Yue},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {37},
  number    = {11},
  pages     = {12863--12871},
  year      = {2023},
  doi       = {10.1609/aaai.v37i11.26512},
}
"""


class InstanceSmoothing(nn.Module):
    """IS-CSE's smoothed positives from a FIFO bank of past positives, and the weight alpha.

    He et al., "Instance Smoothed Contrastive Learning for Unsupervised Sentence Embedding",
    AAAI 2023 (arXiv 2305.07424). The objective adds ``alpha * InfoNCE(z1, z2*)`` to SimCSE's loss,
    where ``z2*`` = :func:`~smoothcse.objectives.functional.smooth_positives` of ``z2`` over this
    bank: each positive attends (softmax of dot products / ``scale``) over itself and its ``k``
    nearest bank rows. Authors' settings: bank 1024, k 16, scale 2; alpha constant 0.1
    (BERT-base, RoBERTa-base) or the "cos" schedule 0.005 -> 0.05 (BERT-large, RoBERTa-large).

    The bank holds ``bank_size`` detached, L2-normalised positives (in a distributed run: the
    all-gathered global batch, so it is identical on every rank). Each call pushes the batch
    **before** the search, so every positive finds itself at rank 0, which is dropped. Until the
    bank is full, :meth:`forward` returns None and the smoothing term is 0.

    State: ``bank`` is a persistent buffer (it is training state and belongs in checkpoints); the
    write pointer and the fill count are extra state in :meth:`state_dict`. The bank's width
    ``dim`` may be left to the first call (then the buffer is created on the embeddings' device,
    and ``load_state_dict`` sizes it from the checkpoint). The bank changes only in training mode
    with gradients enabled; in ``eval()`` mode or under ``torch.no_grad()`` the search runs on a
    copy holding the pushed batch, and the module's bank, pointer and fill count stay untouched.

    A batch larger than the bank is an error (:class:`~smoothcse.errors.ConfigError`): pushing it
    would evict some of its own rows before the search, so they could not find themselves at
    rank 0. Use ``is_bank_size`` >= the global batch size (the authors' 1024 covers batch 512).

    Args:
        bank_size: rows in the bank.
        k: neighbours per positive, excluding itself (``k < bank_size``).
        scale: divisor of the attention logits.
        alpha: weight of the smoothing term for the "constant" schedule.
        alpha_schedule: "constant" or "cos" (see :func:`~smoothcse.objectives.functional.cosine_alpha`).
        alpha_start, alpha_end: the "cos" schedule's end points.
        dim: embedding width, if known (else set by the first call).
    """

    bank: Tensor

    def __init__(
        self,
        bank_size: int = 1024,
        *,
        k: int = 16,
        scale: float = 2.0,
        alpha: float = 0.1,
        alpha_schedule: str = "constant",
        alpha_start: float = 0.005,
        alpha_end: float = 0.05,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 < k < bank_size:
            raise ValueError(f"need 0 < k < bank_size, got k={k}, bank_size={bank_size}.")
        if alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(f"alpha_schedule must be one of {ALPHA_SCHEDULES}, got {alpha_schedule!r}.")
        self.bank_size = bank_size
        self.k = k
        self.scale = scale
        self.alpha_constant = alpha
        self.alpha_schedule = alpha_schedule
        self.alpha_start = alpha_start
        self.alpha_end = alpha_end
        shape = (bank_size, dim) if dim is not None else (0, 0)
        self.register_buffer("bank", torch.zeros(shape), persistent=True)  # (B, d)
        self.pointer = 0
        """Row of the bank the next push starts at."""
        self.filled = 0
        """Rows of the bank written so far (at most bank_size)."""

    @property
    def citation(self) -> str:
        """BibTeX of the IS-CSE paper."""
        return IS_CSE_CITATION

    @property
    def is_full(self) -> bool:
        return self.filled >= self.bank_size

    def extra_repr(self) -> str:
        schedule = (
            f"alpha={self.alpha_constant}"
            if self.alpha_schedule == "constant"
            else f"alpha=cos({self.alpha_start}->{self.alpha_end})"
        )
        return f"bank_size={self.bank_size}, k={self.k}, scale={self.scale}, {schedule}"

    def alpha(self, step: int, total_steps: int) -> float:
        """Weight of the smoothing term at optimizer step ``step`` of ``total_steps``."""
        if self.alpha_schedule == "constant":
            return self.alpha_constant
        return cosine_alpha(step, total_steps, start=self.alpha_start, end=self.alpha_end)

    def contents(self) -> Tensor:
        """The rows written so far, oldest first: ``(filled, d)`` (a copy)."""
        if not self.is_full:
            return self.bank[: self.filled].clone()
        return torch.roll(self.bank, shifts=-self.pointer, dims=0)

    def forward(self, positives: Tensor) -> Tensor | None:
        """Push ``positives`` (when training), then return their smoothed versions ``(N, d)``.

        Returns None while the bank (including this batch) is not yet full: the smoothing term is 0.
        """
        rows = positives.detach()
        n, dim = rows.shape
        if n > self.bank_size:
            raise ConfigError(
                f"IS-CSE: a (global) batch of {n} rows does not fit the bank of {self.bank_size} rows; "
                f"set is_bank_size (--is-bank-size) to at least {n}."
            )
        self._materialise(dim, rows)
        rows = F.normalize(rows.to(self.bank.dtype), dim=-1, eps=torch.finfo(self.bank.dtype).eps)  # (N, d)
        if self.training and torch.is_grad_enabled():
            self._write(self.bank, rows)
            self.pointer = (self.pointer + n) % self.bank_size
            self.filled = min(self.filled + n, self.bank_size)
            if not self.is_full:
                return None
            bank = self.bank
        else:  # evaluation: search a copy that holds the batch, leave the state alone
            if self.filled + n < self.bank_size:
                return None
            bank = self.bank.clone()  # (B, d)
            self._write(bank, rows)
        return smooth_positives(positives, bank, k=self.k, scale=self.scale)  # (N, d)

    @torch.no_grad()
    def _write(self, bank: Tensor, rows: Tensor) -> None:
        """Copy ``rows`` into ``bank`` from ``self.pointer`` on, wrapping around the end."""
        n = rows.shape[0]
        head = min(n, self.bank_size - self.pointer)
        bank[self.pointer : self.pointer + head] = rows[:head]
        if head < n:
            bank[: n - head] = rows[head:]

    def _materialise(self, dim: int, like: Tensor) -> None:
        """Create the bank on the embeddings' device at the first call; follow them if they move."""
        if self.bank.numel() == 0:
            self.bank = torch.zeros(self.bank_size, dim, device=like.device, dtype=_compute_dtype(like))
        elif self.bank.shape[1] != dim:
            raise ValueError(f"IS-CSE bank has width {self.bank.shape[1]}, got embeddings of width {dim}.")
        elif self.bank.device != like.device:
            self.bank = self.bank.to(like.device)

    def get_extra_state(self) -> dict[str, Any]:
        return {"pointer": self.pointer, "filled": self.filled}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.pointer = int(state["pointer"])
        self.filled = int(state["filled"])

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # A bank whose width is not known yet (0 x 0) takes the checkpoint's shape, and vice versa.
        incoming = state_dict.get(prefix + "bank")
        if isinstance(incoming, Tensor) and incoming.shape != self.bank.shape:
            if self.bank.numel() == 0 or incoming.numel() == 0:
                self.bank = torch.zeros(incoming.shape, device=self.bank.device, dtype=incoming.dtype)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
