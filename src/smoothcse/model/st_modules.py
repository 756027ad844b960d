"""A smoothcse encoder as sentence-transformers' own modules: the one builder behind the export
(:mod:`smoothcse.model.export`), the benchmark and the ``st-simcse`` and ``st-tsdae`` arms.

``Transformer``, ``Pooling`` in the pooler's mode, the encoder's tail and SimCSE's MLP head as ``Dense``
(Linear + tanh). Poolers that average two layers become ``WeightedLayerPooling`` (equal weights on the two
layers) followed by mean pooling. Importing this module loads neither torch nor sentence-transformers.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from smoothcse.model.capabilities import capabilities
from smoothcse.model.poolers import LAYERED_POOLERS, ST_POOLING_MODES, st_pooling_mode

if TYPE_CHECKING:
    from torch import nn

    from smoothcse.model.encoder import SentenceEncoder


def st_api() -> ModuleType:
    """sentence-transformers' module namespace (``Transformer``, ``Pooling``, ``Dense``, ``WeightedLayerPooling``)."""
    return importlib.import_module("sentence_transformers.sentence_transformer.modules")


def st_loss_class(name: str) -> type:
    """The sentence-transformers loss class ``name``."""
    module = importlib.import_module("sentence_transformers.sentence_transformer.losses")
    return getattr(module, name)  # type: ignore[no-any-return]


def mnrl_class() -> type:
    """sentence-transformers' ``MultipleNegativesRankingLoss``."""
    return st_loss_class("MultipleNegativesRankingLoss")


def st_modules(
    encoder: SentenceEncoder,
    model_path: str,
    max_seq_length: int,
    *,
    pooler: str,
    head: bool,
    model_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
) -> list[nn.Module]:
    """``encoder``'s backbone (loaded from ``model_path``) and ``pooler`` as sentence-transformers
    modules, with its MLP head as a ``Dense`` module when ``head``.

    ``model_kwargs`` / ``config_kwargs`` go to the Transformer's model and config loading.
    """
    import torch
    from torch import nn

    from smoothcse.model.encoder import model_config

    api = st_api()
    layered = pooler in LAYERED_POOLERS
    if layered:  # WeightedLayerPooling reads every layer's states
        config_kwargs = {**(config_kwargs or {}), "output_hidden_states": True}
    loading = {
        name: value for name, value in (("model_kwargs", model_kwargs), ("config_kwargs", config_kwargs)) if value
    }
    modules: list[nn.Module] = [api.Transformer(model_path, max_seq_length=max_seq_length, **loading)]
    hidden = encoder.hidden_size
    if layered:
        layers = int(model_config(encoder.backbone).num_hidden_layers)
        if pooler == "avg_first_last":  # (h_1 + h_L) / 2 over hidden_states[1:]
            weights = torch.zeros(layers, dtype=torch.float)
            weights[0] = weights[-1] = 1.0
            modules.append(
                api.WeightedLayerPooling(
                    hidden, num_hidden_layers=layers, layer_start=1, layer_weights=nn.Parameter(weights)
                )
            )
        else:  # (h_{L-1} + h_L) / 2
            modules.append(api.WeightedLayerPooling(hidden, num_hidden_layers=layers, layer_start=layers - 1))
        modules.append(api.Pooling(hidden, pooling_mode=ST_POOLING_MODES["avg"]))
    else:
        modules.append(api.Pooling(hidden, pooling_mode=st_pooling_mode(pooler)))
    modules.extend(tail_st_modules(encoder, api))
    if head:
        assert encoder.mlp is not None, "only the cls pooler has a head"
        modules.append(st_dense(api, encoder.mlp.dense, nn.Tanh()))
    return modules


def tail_st_modules(encoder: SentenceEncoder, api: ModuleType) -> list[nn.Module]:
    """The encoder's tail (its carried Dense / Normalize modules) as sentence-transformers modules with
    the current weights."""
    from smoothcse.model.st_folder import DenseLayer, NormalizeLayer

    modules: list[nn.Module] = []
    for module in encoder.tail:
        if isinstance(module, NormalizeLayer):
            modules.append(api.Normalize())
        else:  # the loader builds only these two
            assert isinstance(module, DenseLayer)
            residual = {"use_residual": True} if module.residual else {}
            modules.append(st_dense(api, module.linear, type(module.activation)(), **residual))
    return modules


def st_dense(api: ModuleType, linear: nn.Linear, activation: nn.Module, **options: Any) -> nn.Module:
    """A sentence-transformers ``Dense`` module with ``linear``'s current weights."""
    bias = linear.bias
    return api.Dense(  # type: ignore[no-any-return]
        linear.in_features,
        linear.out_features,
        bias=bias is not None,
        activation_function=activation,
        init_weight=linear.weight.detach().cpu().clone(),
        init_bias=bias.detach().cpu().clone() if bias is not None else None,
        **options,
    )


def build_sentence_transformer(
    encoder: SentenceEncoder, model_path: str, max_len: int, device: Any, config_kwargs: dict[str, Any] | None = None
) -> Any:
    """The same weights and pooling (and the same trainable MLP head) as a SentenceTransformer, to train
    side by side with smoothcse (the benchmark, the ``st-simcse`` arm).

    Only the poolers whose sentence-transformers side trains exactly as smoothcse's (``cls``,
    ``cls_before_pooler``, ``avg``; a ``ConfigError`` otherwise). ``config_kwargs`` override the
    model's config as smoothcse's ``--hidden-dropout`` does."""
    from sentence_transformers import SentenceTransformer

    from smoothcse.model.encoder import model_config, resolve_model_path

    st_pooling_mode(encoder.pooler)  # refuses the layered poolers: their layer weights would train
    model_kwargs: dict[str, Any] = {}
    takes_flag = capabilities(model_config(encoder.backbone)).add_pooling_layer
    if getattr(encoder.backbone, "pooler", None) is None and takes_flag:
        model_kwargs["add_pooling_layer"] = False  # as smoothcse loads it: no unused pooler weights
    modules = st_modules(
        encoder,
        resolve_model_path(model_path),
        max_len,
        pooler=encoder.pooler,
        head=encoder.mlp is not None,
        model_kwargs=model_kwargs,
        config_kwargs=config_kwargs,
    )
    return SentenceTransformer(modules=modules, device=str(device))


__all__ = ["build_sentence_transformer", "mnrl_class", "st_api", "st_loss_class", "st_modules", "st_pooling_mode"]
