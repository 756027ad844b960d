"""Save an encoder as a Hugging Face model that is also a sentence-transformers folder.

The folder holds the backbone and tokenizer (``save_pretrained``, safetensors) at its root, the
sentence-transformers module files (``modules.json``, ``sentence_bert_config.json``,
``1_Pooling/config.json``, and ``2_Dense`` when the MLP head is kept at evaluation), and
``smoothcse_encoder.json`` with the pooler settings, so ``SentenceTransformer(folder)`` and
``smoothcse encode folder`` give the same embeddings.

The pipeline is built from sentence-transformers' own module classes and saved with its own
``save``, so the layout is the one the installed sentence-transformers reads. Poolers that average two
layers (``avg_first_last``, ``avg_top2``) become ``WeightedLayerPooling`` (equal weights on the two
layers, zero elsewhere) followed by mean pooling.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from smoothcse.files import write_json
from smoothcse.model.encoder import SMOOTHCSE_FILE, SentenceEncoder, eval_max_length

MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "modules.json")


def holds_model(folder: Path) -> bool:
    """True if the folder already holds an exported model (so writing there would overwrite it)."""
    return any((folder / name).exists() for name in MODEL_FILES)


def save_encoder(encoder: SentenceEncoder, folder: str | os.PathLike[str], config: dict[str, Any] | None = None) -> Path:
    """Write the export into ``folder`` atomically: a staging folder first, then file by file renames."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / ".export-staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        with torch.random.fork_rng(devices=[]):  # building the sentence-transformers pipeline draws init noise
            _write_export(encoder, staging, config)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = folder / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_export(encoder: SentenceEncoder, folder: Path, config: dict[str, Any] | None) -> None:
    """Build the sentence-transformers pipeline from its own module classes and save it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer, WeightedLayerPooling

    from smoothcse.model.encoder import quiet_transformers

    quiet_transformers()
    backbone = encoder.backbone
    backbone.save_pretrained(str(folder), safe_serialization=True)
    encoder.tokenizer.save_pretrained(str(folder))
    hidden = encoder.hidden_size
    eval_pooler = encoder.eval_pooler
    max_len = eval_max_length(backbone, encoder.tokenizer)
    layered = eval_pooler in ("avg_first_last", "avg_top2")
    transformer = Transformer(
        str(folder), max_seq_length=max_len, config_kwargs={"output_hidden_states": True} if layered else None
    )
    modules: list[torch.nn.Module] = [transformer]
    if layered:
        layers = int(backbone.config.num_hidden_layers)
        if eval_pooler == "avg_first_last":  # (h_1 + h_L) / 2 over hidden_states[1:]
            weights = torch.zeros(layers, dtype=torch.float)
            weights[0] = weights[-1] = 1.0
            modules.append(WeightedLayerPooling(hidden, num_hidden_layers=layers, layer_start=1, layer_weights=torch.nn.Parameter(weights)))
        else:  # (h_{L-1} + h_L) / 2
            modules.append(WeightedLayerPooling(hidden, num_hidden_layers=layers, layer_start=layers - 1))
        modules.append(Pooling(hidden, pooling_mode="mean"))
    else:
        modules.append(Pooling(hidden, pooling_mode="cls" if eval_pooler in ("cls", "cls_before_pooler") else "mean"))
    if encoder.mlp is not None and not encoder.mlp_only_train:
        dense = encoder.mlp.dense
        modules.append(
            Dense(hidden, hidden, activation_function=torch.nn.Tanh(),
                  init_weight=dense.weight.detach().cpu().clone(), init_bias=dense.bias.detach().cpu().clone())
        )
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    write_json(
        folder / SMOOTHCSE_FILE,
        {"train_pooler": encoder.pooler, "eval_pooler": eval_pooler, "mlp_only_train": encoder.mlp_only_train},
    )
    if encoder.mlp is not None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in encoder.mlp.state_dict().items()}
        save_file(state, str(folder / "mlp_head.safetensors"))
    if config is not None:
        write_json(folder / "smoothcse_config.json", config)


def _version() -> str:
    from smoothcse import __version__

    return __version__
