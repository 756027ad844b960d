"""Training: the run builder, the contrastive step, the loop, checkpoints and torch.distributed.

``from smoothcse.training import train`` works; the loop is imported on first use, so that
:mod:`smoothcse.data` can use :mod:`smoothcse.training.distributed` without importing the loop.
"""

from typing import Any

__all__ = ["NumericalFault", "TrainResult", "TrainingInterrupted", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from smoothcse.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'smoothcse.training' has no attribute {name!r}")
