"""This process's training batches, step by step, collated ahead of the step that needs them.

:class:`BatchLoader` turns the :class:`~smoothcse.data.corpus.BatchSchedule` into this rank's ids, mask and
token counts for each step, with the second view's own ids (:mod:`smoothcse.data.augment`) and the teacher's
embeddings when the run reads them. With ``prefetch`` > 0 a background thread collates up to that many steps
ahead (into pinned memory on a GPU, copied ``non_blocking``); ``prefetch=0`` yields the same batches
(tests/training/test_fast_path.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, replace

import numpy as np
import torch

from smoothcse.data.augment import ViewNoise, ViewPartners
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus, collate_rows
from smoothcse.data.shards import DistInfo, shard_sizes, shard_slice

SecondView = tuple[torch.Tensor, torch.Tensor, np.ndarray]
"""The second view's own (input ids, attention mask, token counts), when the two views differ in their ids."""


@dataclass
class Batch:
    step: int
    input_ids: torch.Tensor
    """(n, T) on the training device; n = this rank's shard of the global batch."""
    attention_mask: torch.Tensor
    lengths: np.ndarray
    """(n,) token counts on the host."""
    shard_sizes: list[int] | None
    """Every rank's rows when the global batch does not divide evenly; None otherwise."""
    second: SecondView | None = None
    """The second view's ids, mask (n, T) and counts when views come from the document or are cropped or
    thinned; None: the same ids."""
    teacher: torch.Tensor | None = None
    """(n, d_t) the frozen teacher's embeddings of these units, when the objective reads them."""
    teacher_positive: torch.Tensor | None = None
    """(n, d_t) the teacher's embeddings of their positives when these are other texts (a unit of the
    document, its title); None: the units themselves."""


@dataclass(eq=False)  # compared and hashed by identity, as a plain object
class BatchLoader:
    """Batches for steps ``start`` .. ``stop - 1`` (iterate once; ``close()`` stops the thread)."""

    corpus: TokenizedCorpus
    schedule: BatchSchedule
    start: int
    stop: int
    _: KW_ONLY
    device: torch.device
    info: DistInfo = DistInfo()
    pad_to: int | None = None
    prefetch: int = 2
    noise: ViewNoise = ViewNoise()
    pairs: ViewPartners = None
    seed: int = 0
    teacher: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.pin = self.device.type == "cuda"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def host_batch(self, step: int) -> Batch:
        """This rank's shard of step ``step`` in host memory (pinned on a GPU machine)."""
        global_batch = self.schedule.batch(step)  # an epoch's last may be shorter
        indices = global_batch[shard_slice(len(global_batch), self.info)]
        world = self.info.world_size
        sizes = shard_sizes(len(global_batch), world) if len(global_batch) % world else None
        second = None
        # each unit's partner at this step (another unit, or a title; without pairs the unit itself): drawn once,
        # for its token ids and its teacher row
        drawn = self.pairs.partners(indices, self.seed, step, self.info.rank) if self.pairs is not None else indices
        if self.noise.active or self.pairs is not None:  # two views with their own ids, padded to one width
            units = [self.corpus.sentence(int(i)) for i in indices]
            partners = units
            if self.pairs is not None:
                partners = self.pairs.partner_rows(self.corpus, indices, drawn)
            first_rows, second_rows = self.noise.views(units, partners, self.seed, step, self.info.rank)
            width = self.pad_to or max(len(row) for row in first_rows + second_rows)
            input_ids, attention_mask = collate_rows(first_rows, self.corpus.pad_token_id, width)
            lengths = np.array([len(row) for row in first_rows], dtype=np.int64)
            ids2, mask2 = collate_rows(second_rows, self.corpus.pad_token_id, width)
            second = (ids2, mask2, np.array([len(row) for row in second_rows], dtype=np.int64))
        else:
            input_ids, attention_mask = self.corpus.collate(indices, pad_to=self.pad_to)
            lengths = self.corpus.lengths_of(indices)
        teacher = positive = None
        if self.teacher is not None:
            teacher = torch.from_numpy(np.ascontiguousarray(self.teacher[indices]))
            if self.pairs is not None:  # the positives are other texts: the teacher's embeddings of those
                rows = self.pairs.partner_teacher(self.teacher, indices, drawn)
                positive = torch.from_numpy(np.ascontiguousarray(rows))
        batch = Batch(step, input_ids, attention_mask, lengths, sizes, second, teacher, positive)
        return self._move(batch, pin=True) if self.pin else batch

    def _move(self, batch: Batch, *, pin: bool = False) -> Batch:
        """The batch's tensors pinned in host memory, or copied to the device (asynchronously from pinned memory)."""

        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.pin_memory() if pin else tensor.to(self.device, non_blocking=True)

        second = None
        if batch.second is not None:
            second = (move(batch.second[0]), move(batch.second[1]), batch.second[2])
        return replace(
            batch,
            input_ids=move(batch.input_ids),
            attention_mask=move(batch.attention_mask),
            second=second,
            teacher=move(batch.teacher) if batch.teacher is not None else None,
            teacher_positive=move(batch.teacher_positive) if batch.teacher_positive is not None else None,
        )

    def __iter__(self) -> Iterator[Batch]:
        if self.prefetch <= 0:
            for step in range(self.start, self.stop):
                yield self._move(self.host_batch(step))
            return
        ready: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._produce, args=(ready,), name="smoothcse-batches", daemon=True)
        self._thread.start()
        for _ in range(self.start, self.stop):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield self._move(item)

    def _produce(self, ready: queue.Queue[Batch | BaseException]) -> None:
        try:
            for step in range(self.start, self.stop):
                if not self._put(ready, self.host_batch(step)):
                    return
        except BaseException as err:  # handed to the training thread, which raises it
            self._put(ready, err)

    def _put(self, ready: queue.Queue[Batch | BaseException], item: Batch | BaseException) -> bool:
        """Wait for room in the queue; False if the loader was closed meanwhile."""
        while not self._stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the thread and wait for it: it sees the stop within 0.1 s of its current batch. A
        daemon thread still inside torch when the interpreter exits can abort the process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
