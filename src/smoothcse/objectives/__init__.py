"""Training objectives: unsup-SimCSE's InfoNCE and its refinements, alone or combined.

- :mod:`smoothcse.objectives.functional`: the mathematics as functions of tensors (``info_nce``,
  ``gaussian_negatives``, ``smooth_positives``, the SoftCSE helpers);
- :class:`SimCSE`, :class:`GaussianNegatives` (GS-InfoNCE), :class:`InstanceSmoothing` (IS-CSE),
  :class:`SoftNegatives` (SoftCSE, smoothcse's parametrisation), :class:`SimilarityDistillation` (a frozen
  teacher's in-batch similarities, RankCSE-style) and their composition
  :class:`Objective`;
- :class:`ObjectiveConfig` and :func:`build_objective`, which the trainer, recipes and CLI use.

Example::

    from smoothcse.objectives import ObjectiveConfig, build_objective

    objective = build_objective(ObjectiveConfig(spec="simcse+gs+is"))
    out = objective(z1, z2, step=step, total_steps=total_steps)
    out["loss"].backward()

The torch-dependent names are imported on first use, so reading a config does not load torch.
See docs/objectives.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from smoothcse.objectives.config import COMPONENTS, ObjectiveConfig, parse_spec

if TYPE_CHECKING:
    from smoothcse.objectives.combined import Objective, SimCSE, build_objective
    from smoothcse.objectives.distillation import SimilarityDistillation
    from smoothcse.objectives.gaussian import GaussianNegatives
    from smoothcse.objectives.smoothing import InstanceSmoothing
    from smoothcse.objectives.soft import SoftNegatives

_LAZY = {
    "Objective": "combined",
    "SimCSE": "combined",
    "build_objective": "combined",
    "GaussianNegatives": "gaussian",
    "InstanceSmoothing": "smoothing",
    "SoftNegatives": "soft",
    "SimilarityDistillation": "distillation",
}

__all__ = [
    "COMPONENTS",
    "GaussianNegatives",
    "InstanceSmoothing",
    "Objective",
    "ObjectiveConfig",
    "SimCSE",
    "SimilarityDistillation",
    "SoftNegatives",
    "build_objective",
    "parse_spec",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"smoothcse.objectives.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'smoothcse.objectives' has no attribute {name!r}")
