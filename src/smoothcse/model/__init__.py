"""The model: a Hugging Face backbone with a pooler (and SimCSE's training-only MLP head), how it is
loaded from a hub id, a local folder or a sentence-transformers folder, the [CLS]-only last layer, and
the export to a sentence-transformers folder.

The torch-dependent names are imported on first use, so the configuration can read
:mod:`smoothcse.model.poolers` and :mod:`smoothcse.model.capabilities` without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smoothcse.model.encoder import SentenceEncoder, holds_model, load_encoder, resolve_model_path
    from smoothcse.model.export import save_encoder

_LAZY = {
    "SentenceEncoder": "encoder",
    "load_encoder": "encoder",
    "resolve_model_path": "encoder",
    "holds_model": "encoder",
    "save_encoder": "export",
}

__all__ = ["SentenceEncoder", "holds_model", "load_encoder", "resolve_model_path", "save_encoder"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"smoothcse.model.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'smoothcse.model' has no attribute {name!r}")
