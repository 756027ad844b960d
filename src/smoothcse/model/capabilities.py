"""What smoothcse can do with each kind of backbone: one row per Hugging Face ``model_type``.

Model types not in :data:`CAPABILITIES` get :data:`PLAIN` (every shortcut off): the model's own forward
with the 2D attention mask, loaded as its class allows. Each field names the code that relies on it
and the test that checks it against the model's own behaviour. This module imports neither torch nor
transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelCapabilities:
    """One model type's row of the table; every field is off unless the type is known to allow it."""

    shared_word_embeddings: bool = False
    """The forward may be given the word-embedding rows of ``input_ids`` (``inputs_embeds``) instead of
    the ids, so several forwards share one lookup: the embedding layer adds position and token-type
    embeddings to exactly those rows (``SentenceEncoder.takes_word_embeddings``; tests/training/test_fast_path.py)."""
    ready_sdpa_mask: bool = False
    """Under SDPA attention the backbone takes a ready (B, 1, 1, T) boolean mask exactly as the mask it
    builds from the 2D one (``SentenceEncoder._backbone_mask``; tests/model/test_encoder_mask.py). Models that
    build other masks from the 2D one (sliding windows, relative buckets) stay off."""
    cls_only_last_layer: bool = False
    """The layers are the BERT layer (attention.self.{query,key,value}, attention.output, intermediate,
    output), so the last one can be run for the [CLS] row alone (:mod:`smoothcse.model.cls_only`;
    tests/model/test_cls_only.py). Still subject to the structural, version and load-time checks there."""
    add_pooling_layer: bool = False
    """The model class takes ``add_pooling_layer``, and ``False`` leaves out its unused pooler (the
    sentence-transformers side of the benchmark loads it so, as smoothcse does)."""
    position_offset: int = 0
    """Positions start after the padding index: the position table is this much longer than the
    longest input (``eval_max_length``)."""


PLAIN = ModelCapabilities()
"""The row of every model type not in the table."""
_BERT = ModelCapabilities(
    shared_word_embeddings=True, ready_sdpa_mask=True, cls_only_last_layer=True, add_pooling_layer=True
)
_ROBERTA = ModelCapabilities(
    shared_word_embeddings=True,
    ready_sdpa_mask=True,
    cls_only_last_layer=True,
    add_pooling_layer=True,
    position_offset=2,
)

CAPABILITIES: dict[str, ModelCapabilities] = {
    "bert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "camembert": _ROBERTA,
    "distilbert": ModelCapabilities(ready_sdpa_mask=True),
    "electra": ModelCapabilities(ready_sdpa_mask=True, cls_only_last_layer=True),
    "mpnet": ModelCapabilities(add_pooling_layer=True),
}

CAPABILITY_NAMES = tuple(f.name for f in fields(ModelCapabilities))


def capabilities(config: Any) -> ModelCapabilities:
    """The row of a model config's ``model_type`` (:data:`PLAIN` when unknown or absent)."""
    return CAPABILITIES.get(getattr(config, "model_type", "") or "", PLAIN)


def model_types(capability: str) -> tuple[str, ...]:
    """The model types whose row has ``capability`` (a :class:`ModelCapabilities` field) on."""
    if capability not in CAPABILITY_NAMES:
        raise ValueError(f"{capability!r} is not one of {', '.join(CAPABILITY_NAMES)}")
    return tuple(name for name, row in CAPABILITIES.items() if getattr(row, capability))


__all__ = ["CAPABILITIES", "PLAIN", "ModelCapabilities", "capabilities", "model_types"]
