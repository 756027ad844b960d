"""Which rows of a global batch each process takes: the process's rank and the shard arithmetic.

Pure Python, below both the data loader and :mod:`smoothcse.training.distributed` (which re-exports these
names): a global batch is split into contiguous per-rank shards whose sizes differ by at most one, so a final
batch that does not divide by the number of processes is still covered exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def shard_sizes(total: int, world_size: int) -> list[int]:
    """Rows of each rank's shard of a global batch of ``total`` rows: ``total // world_size`` each,
    one more for the first ``total % world_size`` ranks (sums to ``total``)."""
    base, extra = divmod(total, world_size)
    return [base + (1 if rank < extra else 0) for rank in range(world_size)]


def shard_slice(total: int, info: DistInfo) -> slice:
    """This rank's contiguous rows of a global batch of ``total`` rows (see :func:`shard_sizes`).

    Concatenating the shards in rank order gives the global batch back in its own order, which is
    the order :func:`~smoothcse.training.distributed.gather_with_grad` puts the embeddings in.
    """
    sizes = shard_sizes(total, info.world_size)
    start = sum(sizes[: info.rank])
    return slice(start, start + sizes[info.rank])
