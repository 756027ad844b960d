"""torch.distributed plumbing: the process group from torchrun's environment, and a gather that keeps gradients.

Every anchor sees the whole global batch as negatives: :func:`gather_with_grad` all-gathers the embeddings with
the local tensor (and its autograd history) in its own slot, so every rank computes the same global loss while
gradients flow only into its own shard (docs/distributed.md). The shard arithmetic lives in
:mod:`smoothcse.data.shards` and is re-exported here.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist

from smoothcse.data.shards import DistInfo, shard_sizes, shard_slice
from smoothcse.errors import ConfigError


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for one process).

    Backend: nccl for CUDA devices, gloo for CPU. The group is created once per process and kept
    until the interpreter exits, so several runs in one process (a sweep, tests) reuse it: a group
    destroyed and created again under torchrun's store does not rendezvous again (it hangs).
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
        # nccl: bind the group to this process's GPU (eager init, and barriers know their device);
        # the long timeout lets ranks wait at a barrier while rank 0 evaluates and saves
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=60),
            device_id=torch.device("cuda", local_rank) if use_cuda else None,
        )
        atexit.register(_destroy_process_group)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def gather_with_grad(x: torch.Tensor, info: DistInfo, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """All-gather every rank's ``(n_r, d)`` shard into ``(sum n_r, d)``, in rank order.

    The local slot is ``x`` itself, so it keeps its autograd history; the other ranks' rows are
    detached copies, so a loss computed from the result sends gradients only into the local shard.
    ``sizes``: rows of each rank's shard when they differ (:func:`shard_sizes`; the same on every rank);
    None means all equal to ``x.shape[0]`` (no padding).
    """
    if not info.enabled:
        return x
    local = x.detach().contiguous()
    if sizes is None or len(set(sizes)) == 1:
        shards = [torch.empty_like(local) for _ in range(info.world_size)]
        dist.all_gather(shards, local)
    else:
        if len(sizes) != info.world_size or sizes[info.rank] != x.shape[0]:
            raise ValueError(
                f"gather_with_grad: sizes {list(sizes)} do not match {info.world_size} ranks with "
                f"{x.shape[0]} rows on rank {info.rank}."
            )
        rows = max(sizes)
        padded = local.new_zeros((rows, *local.shape[1:]))  # (max n_r, d)
        padded[: x.shape[0]] = local
        shards = [torch.empty_like(padded) for _ in range(info.world_size)]
        dist.all_gather(shards, padded)
        shards = [shard[:n] for shard, n in zip(shards, sizes)]
    shards[info.rank] = x
    return torch.cat(shards, dim=0)


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    """``module`` in DistributedDataParallel; rank 0's weights are broadcast to every rank, once, here.

    Buffers are not re-broadcast before every forward (a collective per forward): an encoder's
    buffers are constants (position ids), and gradient caching runs several forwards per step,
    possibly a different number on each rank when the shards differ in size.
    """
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False
    )


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op for one process); under nccl on this process's GPU."""
    if not info.enabled:
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


PER_MACHINE_OPTIONS = ("data_dir", "cache_dir")
"""Where a machine finds its files: may differ between machines without changing the run."""


def require_same_config(config: dict[str, object], info: DistInfo) -> None:
    """Stop every rank with one clear message if the ranks were given different configs (but
    :data:`PER_MACHINE_OPTIONS`), which would otherwise hang or abort inside gloo or nccl naming nothing."""
    if not info.enabled:
        return
    config = {key: value for key, value in config.items() if key not in PER_MACHINE_OPTIONS}
    gathered: list[object] = [None] * info.world_size
    dist.all_gather_object(gathered, config)
    first = gathered[0]
    assert isinstance(first, dict)
    for rank, other in enumerate(gathered[1:], start=1):
        assert isinstance(other, dict)
        keys = sorted(key for key in first.keys() | other.keys() if first.get(key) != other.get(key))
        if keys:
            shown = "; ".join(f"{key}: rank 0 has {first.get(key)!r}, rank {rank} {other.get(key)!r}" for key in keys)
            raise ConfigError(
                f"The processes were given different training configs ({shown}). Every process must get the "
                "same options: launch one command (torchrun ... smoothcse train ...) with one --config file."
            )


def _destroy_process_group() -> None:
    """At exit, while the interpreter is whole: free what still holds the group (a DDP model's reducer lives in
    a reference cycle), then destroy it. Left to the interpreter's teardown, a gloo rank sometimes aborted
    after its work was done ("terminate called without an active exception", exit code -6)."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


__all__ = [
    "DistInfo",
    "barrier",
    "gather_with_grad",
    "init_distributed",
    "require_same_config",
    "shard_sizes",
    "shard_slice",
    "wrap_ddp",
]
