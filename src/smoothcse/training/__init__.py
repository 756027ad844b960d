"""Training: the run builder (run.py), the contrastive step (steps.py), the metrics log (metrics.py), the loop
(loop.py), checkpoints and torch.distributed.

``from smoothcse.training import train`` works; the loop is imported on first use, so importing a submodule
does not load the whole trainer.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "NumericalFault": "loop",
    "TrainResult": "loop",
    "TrainingInterrupted": "loop",
    "train": "loop",
    "Run": "run",
    "build_run": "run",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"smoothcse.training.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'smoothcse.training' has no attribute {name!r}")
