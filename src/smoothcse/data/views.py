"""How a step's two dropout views reach the encoder: which rows go into which forward, at what length.

A step encodes 2n rows, every sentence twice ([x; x]), each under its own dropout mask. :class:`ViewLayout`
cuts the padding without changing the result: ``rows_per_forward`` > 0 encodes the rows sorted by length in
forwards of that many rows, each cut to its own longest (right padding never changes a row's embedding, so
with dropout off the embeddings are the single padded forward's up to round-off: tests/training/test_fast_path.py);
``pad_multiple`` > 1 rounds each forward's length up to a multiple of it, so ``torch.compile`` sees a few static
shapes. Everything is decided on the host from the token counts: no host-device synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from smoothcse.model.encoder import SentenceEncoder


@dataclass(frozen=True)
class ViewLayout:
    """The forwards of one step. The default, ``ViewLayout()``, is one forward of all 2n rows as collated."""

    rows_per_forward: int = 0
    """Length-sorted forwards of at most this many rows, each cut to its longest row (0 = one forward)."""
    pad_multiple: int = 1
    """Round each forward's length up to a multiple of this, capped at the batch's width (1 = exact)."""

    @property
    def plain(self) -> bool:
        return self.rows_per_forward == 0 and self.pad_multiple == 1

    def forwards(self, lengths: np.ndarray, width: int) -> list[tuple[np.ndarray, int]]:
        """(rows of [x; x], padded length) for each forward of a step, from the n sentences' token counts.

        Row r < n is sentence r's first view, row n + r its second; every row appears exactly once.
        """
        return self.forwards_of_rows(np.concatenate([lengths, lengths]), width)

    def forwards_of_rows(self, row_lengths: np.ndarray, width: int) -> list[tuple[np.ndarray, int]]:
        """(rows, padded length) for each forward, from the token counts of all the step's rows (2n)."""
        row_lengths = np.asarray(row_lengths, dtype=np.int64)  # (2n,)
        rows_total = len(row_lengths)
        if self.rows_per_forward <= 0 or self.rows_per_forward >= rows_total:
            groups = [np.arange(rows_total)]
        else:  # longest first, ties in row order: deterministic, so a replayed step (GradCache) matches
            order = np.argsort(-row_lengths, kind="stable")
            groups = [
                order[start : start + self.rows_per_forward] for start in range(0, rows_total, self.rows_per_forward)
            ]
        plan = []
        for rows in groups:
            longest = int(row_lengths[rows].max())
            plan.append((rows, min(width, -(-longest // self.pad_multiple) * self.pad_multiple)))
        return plan


def encode_views(
    encoder: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    lengths: np.ndarray | None = None,
    layout: ViewLayout = ViewLayout(),
    second: tuple[Tensor, Tensor, np.ndarray | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Two views of each sentence -> z1, z2 (each (n, d)), each row under its own dropout mask.

    ``input_ids`` and ``attention_mask`` are (n, T), right-padded. Without ``second`` both views are these
    ids (rows [x; x], SimCSE); with it the second view has its own ids, mask and counts of the same width
    (cropped or thinned views, :mod:`smoothcse.data.augment`). ``lengths`` are the token counts on the host;
    without them the layout can only be applied to a CPU batch (reading a GPU mask would synchronise), so a
    GPU batch is then encoded in one forward as collated.
    """
    n = input_ids.shape[0]
    if second is None:  # row r of [x; x] reads sentence r % n
        source_ids, source_mask, period = input_ids, attention_mask, n
        counts = None if lengths is None else np.concatenate([lengths, lengths])
    else:  # row r reads row r of [x; x']
        source_ids, source_mask = torch.cat([input_ids, second[0]]), torch.cat([attention_mask, second[1]])
        period = 2 * n
        counts = None if lengths is None or second[2] is None else np.concatenate([lengths, second[2]])
    if counts is None and not layout.plain and source_mask.device.type == "cpu":
        counts = np.resize(source_mask.sum(1).numpy(), 2 * n)
    if layout.plain or counts is None:
        if period == n:
            source_ids, source_mask = torch.cat([input_ids, input_ids]), torch.cat([attention_mask, attention_mask])
        z = encoder(source_ids, source_mask)  # (2n, d)
        return z[:n], z[n:]
    plan = layout.forwards_of_rows(counts, input_ids.shape[1])
    device = input_ids.device
    # several forwards share one word-embedding lookup: one backward into the (vocab, d) table, not one each
    module = getattr(encoder, "module", encoder)  # DDP wraps the encoder
    module = getattr(module, "_orig_mod", module)  # so does torch.compile
    words = None  # (period, T, d) when the encoder takes word-embedding rows (SentenceEncoder.forward)
    if len(plan) > 1 and getattr(module, "takes_word_embeddings", False):
        words = cast("SentenceEncoder", module).word_embeddings(source_ids)
    outputs = []
    for rows, width in plan:
        sources = torch.from_numpy(rows % period).to(device, non_blocking=True)  # (r,)
        ids = source_ids[:, :width].index_select(0, sources)  # (r, width)
        mask = source_mask[:, :width].index_select(0, sources)  # (r, width)
        if words is None:
            outputs.append(encoder(ids, mask))  # (r, d)
        else:
            outputs.append(encoder(ids, mask, words[:, :width].index_select(0, sources)))  # (r, d)
    rows = np.concatenate([rows for rows, _ in plan])
    if np.array_equal(rows, np.arange(2 * n)):
        z = torch.cat(outputs)
    else:
        back = torch.from_numpy(np.argsort(rows)).to(device, non_blocking=True)  # row of [x; x] -> its place in z
        z = torch.cat(outputs).index_select(0, back)  # (2n, d)
    return z[:n], z[n:]
