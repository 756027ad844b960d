"""This process's training batches, step by step, collated ahead of the step that needs them.

:class:`BatchLoader` turns the deterministic :class:`~smoothcse.data.corpus.BatchSchedule` into this
rank's (input ids, attention mask) for each step, together with the sentences' token counts (for
:class:`~smoothcse.data.views.ViewLayout`) and the shard sizes of an uneven final batch. With
``prefetch`` > 0 a background thread collates up to that many steps ahead, into pinned host memory
when the device is a GPU, so the copy to the device is asynchronous (``non_blocking``) and overlaps
the running step; with ``prefetch=0`` every batch is collated when it is asked for. Both yield the
same batches in the same order (tests/test_fast_path.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus
from smoothcse.training.distributed import DistInfo, shard_sizes, shard_slice

# a batch as the producer thread hands it over: (input_ids, attention_mask, lengths, shard sizes), on the host
HostBatch = tuple[torch.Tensor, torch.Tensor, np.ndarray, list[int] | None]


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


class BatchLoader:
    """Batches for steps ``start`` .. ``stop - 1`` (iterate once; ``close()`` stops the thread)."""

    def __init__(
        self,
        corpus: TokenizedCorpus,
        schedule: BatchSchedule,
        start: int,
        stop: int,
        *,
        device: torch.device,
        info: DistInfo = DistInfo(),
        pad_to: int | None = None,
        prefetch: int = 2,
    ) -> None:
        self.corpus = corpus
        self.schedule = schedule
        self.start, self.stop = start, stop
        self.device = device
        self.info = info
        self.pad_to = pad_to
        self.prefetch = prefetch
        self.pin = device.type == "cuda"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def host_batch(self, step: int) -> HostBatch:
        """This rank's shard of step ``step`` in host memory (pinned on a GPU machine)."""
        batch = self.schedule.batch(step)  # the global batch; an epoch's last may be shorter
        indices = batch[shard_slice(len(batch), self.info)]
        sizes = shard_sizes(len(batch), self.info.world_size) if len(batch) % self.info.world_size else None
        input_ids, attention_mask = self.corpus.collate(indices, pad_to=self.pad_to)
        if self.pin:
            input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
        return input_ids, attention_mask, self.corpus.lengths_of(indices), sizes

    def _to_device(self, step: int, host: HostBatch) -> Batch:
        input_ids, attention_mask, lengths, sizes = host
        return Batch(
            step,
            input_ids.to(self.device, non_blocking=True),
            attention_mask.to(self.device, non_blocking=True),
            lengths,
            sizes,
        )

    def __iter__(self) -> Iterator[Batch]:
        if self.prefetch <= 0:
            for step in range(self.start, self.stop):
                yield self._to_device(step, self.host_batch(step))
            return
        ready: queue.Queue[HostBatch | BaseException] = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._produce, args=(ready,), name="smoothcse-batches", daemon=True)
        self._thread.start()
        for step in range(self.start, self.stop):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield self._to_device(step, item)

    def _produce(self, ready: queue.Queue[HostBatch | BaseException]) -> None:
        try:
            for step in range(self.start, self.stop):
                if not self._put(ready, self.host_batch(step)):
                    return
        except BaseException as err:  # handed to the training thread, which raises it
            self._put(ready, err)

    def _put(self, ready: queue.Queue[HostBatch | BaseException], item: HostBatch | BaseException) -> bool:
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


__all__ = ["Batch", "BatchLoader"]
