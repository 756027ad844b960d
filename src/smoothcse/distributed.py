"""torch.distributed plumbing: process group from torchrun's environment, and a gather that keeps gradients.

Contrastive losses need every anchor to see the whole global batch as negatives. Each rank encodes
its shard, :func:`gather_with_grad` all-gathers the embeddings and puts the local tensor (with its
autograd history) back in its own slot, so every rank computes the same global loss while gradients
flow only into its own shard. DDP then averages the parameter gradients over ranks, so the loss is
multiplied by the world size to give exactly the single-process gradient of the global batch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for one process).

    Backend: nccl for CUDA devices, gloo for CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=60)
        )
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All-gather (n, d) shards into (world*n, d); the local slot keeps its autograd history."""
    if not info.enabled:
        return x
    shards = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(shards, x.detach().contiguous())
    shards[info.rank] = x
    return torch.cat(shards, dim=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(value: object, info: DistInfo) -> object:
    """Rank 0's value on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
