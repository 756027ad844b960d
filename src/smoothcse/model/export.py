"""Save an encoder as a Hugging Face model that is also a sentence-transformers folder.

The backbone and tokenizer at the root, the sentence-transformers modules (built by
:func:`smoothcse.model.st_modules.st_modules` and saved by sentence-transformers itself, so the layout is the one
it reads) and ``smoothcse_encoder.json`` with the pooler settings: ``SentenceTransformer(folder)`` and
``smoothcse encode folder`` give the same embeddings.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from smoothcse.files import write_json
from smoothcse.model.card import write_card
from smoothcse.model.encoder import SentenceEncoder, eval_max_length
from smoothcse.model.st_folder import SMOOTHCSE_FILE
from smoothcse.model.st_modules import st_modules


def save_encoder(
    encoder: SentenceEncoder,
    folder: str | os.PathLike[str],
    config: dict[str, Any] | None = None,
    *,
    card: dict[str, Any] | None = None,
    name: str | None = None,
) -> Path:
    """Write the export into ``folder`` atomically: a staging folder first, then file by file renames.

    ``config``: the run's resolved config, saved as ``smoothcse_config.json``; ``card``: the training
    facts of the model card (:func:`smoothcse.model.card.training_facts`; without them the card says
    the training is not recorded); ``name``: the card's title (the folder's name by default)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / ".export-staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        with torch.random.fork_rng(devices=[]):  # building the sentence-transformers pipeline draws init noise
            _write_export(encoder, staging, config, card, name or folder.name)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = folder / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def tail_paths(folder: Path, count: int) -> list[str]:
    """The folders sentence-transformers saved the encoder's tail in: the ``count`` modules after Pooling."""
    entries = sorted(json.loads((folder / "modules.json").read_text(encoding="utf-8")), key=lambda e: int(e["idx"]))
    pooling = next(i for i, entry in enumerate(entries) if str(entry["type"]).endswith(".Pooling"))
    return [str(entry["path"]) for entry in entries[pooling + 1 : pooling + 1 + count]]


def _write_export(
    encoder: SentenceEncoder, folder: Path, config: dict[str, Any] | None, card: dict[str, Any] | None, name: str
) -> None:
    """Build the sentence-transformers pipeline from its own module classes and save it."""
    from sentence_transformers import SentenceTransformer

    from smoothcse.model.encoder import quiet_transformers

    quiet_transformers()
    backbone: Any = encoder.backbone  # a transformers PreTrainedModel
    backbone.save_pretrained(str(folder), safe_serialization=True)
    encoder.tokenizer.save_pretrained(str(folder))
    eval_pooler = encoder.eval_pooler
    max_len = eval_max_length(backbone, encoder.tokenizer)
    modules = st_modules(
        encoder, str(folder), max_len, pooler=eval_pooler, head=encoder.mlp is not None and not encoder.mlp_only_train
    )
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    write_json(
        folder / SMOOTHCSE_FILE,
        {
            "train_pooler": encoder.pooler,
            "eval_pooler": eval_pooler,
            "mlp_only_train": encoder.mlp_only_train,
            "tail_modules": tail_paths(folder, len(encoder.tail)),
        },
    )
    if encoder.mlp is not None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in encoder.mlp.state_dict().items()}
        save_file(state, str(folder / "mlp_head.safetensors"))
    if config is not None:
        write_json(folder / "smoothcse_config.json", config)
    write_card(folder, card, name=name, embedding_dim=encoder.embedding_dim, max_seq_length=max_len)
