"""The [CLS] vector without the rest of the last layer (docs/performance.md, "[CLS]-only last layer").

The [CLS] row of the last layer needs every token's keys and values, but its query, attention output,
feed-forward block and layer norms only for [CLS]: a layer costs 12·d² multiply-adds per token in its matmuls,
the last one then 2·d² per token plus 10·d² once. With dropout off :func:`cls_state` equals the model's own
[CLS] state to float round-off; with dropout on, the [CLS] row draws its dropout from the same distribution.

The layer is re-run through transformers' internal module attributes, so it is guarded twice:
:func:`supports_cls_only` checks the structure on every forward, and :func:`verify_cls_only`, run once
when an encoder is built, compares it with the model's own forward on a probe batch with dropout off.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from smoothcse.model.capabilities import capabilities


class ClsOnlyWarning(UserWarning):
    """The [CLS]-only last layer was turned off for a model; the model's own forward runs instead."""


def supports_cls_only(backbone: nn.Module) -> bool:
    """Whether :func:`cls_state` can stand in for ``backbone(...).last_hidden_state[:, 0]``.

    BERT-layer encoders under SDPA attention (the ready boolean mask is what their layers expect),
    used as encoders (no decoder, no cross-attention).
    """
    config = backbone.config
    if not capabilities(config).cls_only_last_layer:
        return False
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0 or not hasattr(backbone, "embeddings"):
        return False
    last = layers[-1]
    attention = getattr(getattr(last, "attention", None), "self", None)
    parts = [
        (attention, ("query", "key", "value", "dropout", "scaling", "attention_head_size")),
        (last, ("intermediate", "output")),
        (getattr(last, "attention", None), ("output",)),
    ]
    return all(hasattr(module, name) for module, names in parts for name in names)


def cls_state(
    backbone: nn.Module, mask: Tensor, input_ids: Tensor | None = None, inputs_embeds: Tensor | None = None
) -> Tensor:
    """The last layer's [CLS] state (B, d) of right-padded input.

    ``mask`` is the (B, 1, 1, T) boolean attention mask (True = attend); give ``input_ids`` (B, T)
    or their word-embedding rows ``inputs_embeds`` (B, T, d).
    """
    model: Any = backbone  # transformers' internal modules, reached by name (see supports_cls_only)
    hidden: Tensor = model.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)  # (B, T, e)
    if hasattr(model, "embeddings_project"):  # ELECTRA with embedding size != hidden size
        hidden = model.embeddings_project(hidden)  # (B, T, d)
    layers = model.encoder.layer
    for index in range(len(layers) - 1):
        hidden = layers[index](hidden, mask)  # (B, T, d)
    return _cls_only_layer(layers[-1], hidden, mask)


def _cls_only_layer(layer: Any, hidden: Tensor, mask: Tensor) -> Tensor:
    """One BERT layer's output for row 0 only: (B, T, d) -> (B, d)."""
    attention = layer.attention.self
    batch, length, _ = hidden.shape
    size = attention.attention_head_size
    cls = hidden[:, :1]  # (B, 1, d)
    query = attention.query(cls).view(batch, 1, -1, size).transpose(1, 2)  # (B, h, 1, s)
    key = attention.key(hidden).view(batch, length, -1, size).transpose(1, 2)  # (B, h, T, s)
    value = attention.value(hidden).view(batch, length, -1, size).transpose(1, 2)  # (B, h, T, s)
    context = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=mask,
        dropout_p=attention.dropout.p if attention.training else 0.0,
        scale=attention.scaling,
    )  # (B, h, 1, s)
    context = context.transpose(1, 2).reshape(batch, 1, -1)  # (B, 1, d)
    attended = layer.attention.output(context, cls)  # dense, dropout, LayerNorm with the residual
    state: Tensor = layer.output(layer.intermediate(attended), attended)[:, 0]  # (B, d)
    return state


PROBE_LENGTHS = (12, 7)
"""The rows of :func:`probe_batch`: one full, one padded, so the mask matters."""


def probe_batch(vocab_size: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """A fixed right-padded batch for :func:`verify_cls_only`: ids (B, T) spread over the vocabulary (never
    ``pad_id`` where real) and the (B, T) mask. Built without the tokenizer, whose state (truncation,
    padding) a call would change and an export would save; no random numbers are drawn."""
    batch, length = len(PROBE_LENGTHS), max(PROBE_LENGTHS)
    ids = torch.full((batch, length), pad_id, dtype=torch.long)
    mask = torch.zeros(batch, length, dtype=torch.long)
    for row, real in enumerate(PROBE_LENGTHS):
        steps = torch.arange(real) + row * length
        ids[row, :real] = (pad_id + 1 + (steps * 7919) % (vocab_size - 1)) % vocab_size
        mask[row, :real] = 1
    return ids, mask


def verify_cls_only(
    backbone: nn.Module, mask: Tensor, input_ids: Tensor, inputs_embeds: Tensor | None = None
) -> str | None:
    """Why :func:`cls_state` cannot stand in for the model's own forward here (a model that
    :func:`supports_cls_only`), or None when it can: both run on a probe batch (``input_ids`` (B, T), and
    ``inputs_embeds`` (B, T, d) when given) with ``mask`` the (B, 1, 1, T) mask the encoder hands the backbone,
    dropout off, no gradients, no autocast, and must agree to just above float round-off. Every module's
    train/eval mode is restored; no random numbers are drawn."""
    modes = [(module, module.training) for module in backbone.modules()]
    backbone.eval()
    try:
        with torch.no_grad(), torch.autocast(input_ids.device.type, enabled=False):
            probes: list[dict[str, Tensor]] = [{"input_ids": input_ids}]
            if inputs_embeds is not None:
                probes.append({"inputs_embeds": inputs_embeds})
            for inputs in probes:
                full = backbone(**inputs, attention_mask=mask, return_dict=True).last_hidden_state[:, 0]  # (B, d)
                ours = cls_state(backbone, mask, **inputs)  # (B, d)
                if ours.shape != full.shape or ours.dtype != full.dtype:
                    return (
                        f"on a probe batch it gave {tuple(ours.shape)} {ours.dtype}, "
                        f"the model {tuple(full.shape)} {full.dtype}"
                    )
                rtol = max(1e-4, 8 * torch.finfo(full.dtype).eps)
                if not torch.allclose(ours, full, rtol=rtol, atol=rtol / 10):
                    gap = (ours - full).abs().max().item()
                    return (
                        f"on a probe batch ({next(iter(inputs))}) it differs from the model's own [CLS] "
                        f"state by up to {gap:.3g}"
                    )
    except Exception as err:  # anything at all: the model's own forward is the safe choice
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"it failed on a probe batch ({type(err).__name__}: {first})"
    finally:
        for module, training in modes:
            module.training = training
    return None


def cls_only_params(backbone: nn.Module) -> int:
    """Parameters of the last layer that :func:`cls_state` applies to the [CLS] row alone
    (all of its parameters but the keys' and values'), for counting FLOPs."""
    model: Any = backbone  # transformers' internal modules, reached by name
    last = model.encoder.layer[-1]
    kv = {id(p) for module in (last.attention.self.key, last.attention.self.value) for p in module.parameters()}
    return sum(p.numel() for p in last.parameters() if p.requires_grad and id(p) not in kv)


__all__ = ["ClsOnlyWarning", "cls_only_params", "cls_state", "probe_batch", "supports_cls_only", "verify_cls_only"]
