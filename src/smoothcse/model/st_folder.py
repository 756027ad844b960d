"""Reading a sentence-transformers folder: which modules smoothcse carries, and refusing the rest by name.

smoothcse carries the chain ``Transformer`` (at the folder's root or in ``0_Transformer/``) -> ``Pooling`` -> any
number of ``Dense`` and ``Normalize`` modules, which become the encoder's *tail* (:class:`DenseLayer`,
:class:`NormalizeLayer`: trained, and exported as the same modules). Anything else is refused with an error naming
the module or setting, since dropping it would change the embeddings (docs/ecosystem.md). A smoothcse export
lists its tail in ``smoothcse_encoder.json``, so SimCSE's MLP head, saved as a trailing ``Dense``, is not taken
for part of it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smoothcse.errors import SmoothCSEError
from smoothcse.model.poolers import POOLERS_OF_ST_MODES

SMOOTHCSE_FILE = "smoothcse_encoder.json"
"""Written into every export: pooler and head settings and the tail's module folders."""
CARRIED_TYPES = ("Transformer", "Pooling", "Dense", "Normalize")
"""The sentence-transformers module classes smoothcse carries (by class name, in any release's package)."""
DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"
"""sentence-transformers' Dense activation when its config names none."""
LAYER_POOLING = "WeightedLayerPooling"
"""Between Transformer and Pooling in smoothcse's own exports of the two-layer poolers."""


@dataclass(frozen=True)
class TailModule:
    """One carried module after the pooling: ``kind`` is ``dense`` or ``normalize``; ``path`` its folder."""

    kind: str
    path: str


@dataclass(frozen=True)
class STFolder:
    """What smoothcse reads from a sentence-transformers folder."""

    root: Path
    transformer: Path
    """The folder holding the backbone's ``config.json``, weights and tokenizer."""
    pooler: str | None
    """The SimCSE pooler of its Pooling module (a smoothcse export's saved evaluation pooler)."""
    max_seq_length: int | None
    tail: tuple[TailModule, ...]


def _module_class(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def _read_json(path: Path, kind: type = dict, what: str = "a JSON object") -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SmoothCSEError(f"{path}: cannot read it as JSON ({err}).") from None
    if not isinstance(data, kind):
        raise SmoothCSEError(f"{path}: expected {what}.")
    return data


def _pooler_of(config_file: Path) -> str:
    """The SimCSE pooler of a Pooling module's config (cls or mean pooling; the rest is refused)."""
    cfg = _read_json(config_file) if config_file.is_file() else {}
    modes = [key[len("pooling_mode_") :] for key, on in cfg.items() if key.startswith("pooling_mode_") and on is True]
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str):
        modes = [mode]
    modes = ["mean" if m == "mean_tokens" else "cls" if m == "cls_token" else m for m in modes]
    if len(modes) == 1 and modes[0] in POOLERS_OF_ST_MODES:
        return POOLERS_OF_ST_MODES[modes[0]]
    raise SmoothCSEError(
        f"{config_file}: pooling mode {' + '.join(modes) or 'none'} is not carried by smoothcse "
        f"(it carries {' and '.join(POOLERS_OF_ST_MODES)} pooling); evaluate this model with sentence-transformers, "
        "or pass --pooler to train it with a SimCSE pooler instead."
    )


def _check_dense(folder: Path, entry: dict[str, Any]) -> None:
    cfg = _read_json(folder / entry["path"] / "config.json")
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key, "sentence_embedding") not in ("sentence_embedding", None):
            raise SmoothCSEError(
                f"{folder / entry['path']}: its Dense module reads or writes {cfg[key]!r}, not the sentence "
                "embedding; smoothcse does not carry it."
            )
    if cfg.get("use_residual") and cfg.get("in_features") != cfg.get("out_features"):
        raise SmoothCSEError(
            f"{folder / entry['path']}: a residual Dense module that changes the dimension "
            f"({cfg.get('in_features')} -> {cfg.get('out_features')}) is not carried by smoothcse."
        )
    activation_class(str(cfg.get("activation_function", DEFAULT_ACTIVATION)), folder / entry["path"])


def _refuse(folder: Path, entry: dict[str, Any], why: str) -> SmoothCSEError:
    where = entry.get("path") or "the folder's root"
    return SmoothCSEError(
        f"{folder / 'modules.json'}: module {entry.get('idx', '?')} {entry.get('type', '?')!r} ({where}) {why}; "
        f"smoothcse carries {', '.join(CARRIED_TYPES)} and refuses the rest rather than drop it. "
        "Evaluate this model with sentence-transformers itself."
    )


def read_st_folder(folder: Path) -> STFolder | None:
    """The carried pipeline of a sentence-transformers folder; None if ``folder`` has no ``modules.json``.

    Raises :class:`SmoothCSEError` naming the module or setting it cannot carry.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    entries = _read_json(modules_file, list, "a list of modules")
    if not entries or not all(isinstance(e, dict) for e in entries):
        raise SmoothCSEError(f"{modules_file}: expected a list of modules.")
    entries = sorted(entries, key=lambda e: int(e.get("idx", 0)))
    saved = _read_json(folder / SMOOTHCSE_FILE) if (folder / SMOOTHCSE_FILE).is_file() else None

    first = entries[0]
    if _module_class(first) != "Transformer":
        raise _refuse(folder, first, "comes first where smoothcse needs a Hugging Face Transformer")
    transformer = folder / str(first.get("path", ""))
    st_config_file = transformer / "sentence_bert_config.json"
    st_config = _read_json(st_config_file) if st_config_file.is_file() else {}
    if st_config.get("do_lower_case"):
        raise SmoothCSEError(
            f"{st_config_file}: do_lower_case is true (sentence-transformers lower-cases every input); smoothcse "
            "does not lower-case, so its embeddings would differ. Set it to false if the tokenizer lower-cases."
        )
    prompts_file = folder / "config_sentence_transformers.json"
    if prompts_file.is_file() and _read_json(prompts_file).get("default_prompt_name"):
        raise SmoothCSEError(
            f"{prompts_file}: default_prompt_name is set (sentence-transformers prepends that prompt to every "
            "input); smoothcse does not add prompts. Remove default_prompt_name to use the model without it."
        )

    pooler: str | None = None
    tail: list[TailModule] = []
    rest = entries[1:]
    saved_tail = saved.get("tail_modules") if saved is not None else None
    for position, entry in enumerate(rest):
        kind = _module_class(entry)
        if kind == "Pooling" and pooler is None:
            pooler = _pooler_of(folder / str(entry.get("path", "")) / "config.json")
        elif kind == LAYER_POOLING and saved is not None and pooler is None:
            continue  # smoothcse's own two-layer pooler, read from smoothcse_encoder.json below
        elif kind in ("Dense", "Normalize") and pooler is not None:
            if saved is not None and entry.get("path") not in (saved_tail or ()):
                if kind == "Dense" and position == len(rest) - 1:
                    continue  # SimCSE's MLP head, kept at evaluation (loaded from mlp_head.safetensors)
                raise _refuse(folder, entry, f"is not listed in {SMOOTHCSE_FILE}'s tail_modules")
            if kind == "Dense":
                _check_dense(folder, entry)
            tail.append(TailModule(kind.lower(), str(entry.get("path", ""))))
        else:
            where = "before the Pooling module" if pooler is None else "after the Pooling module"
            raise _refuse(folder, entry, f"is not carried {where}")
    if saved is not None:
        pooler = str(saved["eval_pooler"])
    max_len = st_config.get("max_seq_length")
    return STFolder(
        root=folder,
        transformer=transformer,
        pooler=pooler,
        max_seq_length=int(max_len) if max_len else None,
        tail=tuple(tail),
    )


def activation_class(name: str, where: Path) -> type[nn.Module]:
    """A Dense module's activation as a ``torch.nn`` module class (no other code is imported)."""
    module_name, _, class_name = name.rpartition(".")
    cls = None
    if module_name.startswith("torch.nn"):
        with contextlib.suppress(ImportError):
            cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise SmoothCSEError(
            f"{where}: activation_function {name!r} is not a torch.nn module class; smoothcse carries only those."
        )
    return cls


class DenseLayer(nn.Module):
    """sentence-transformers' ``Dense``: ``activation(linear(x))``, plus ``x`` when residual."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool, activation: nn.Module, residual: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = activation
        self.residual = residual

    @property
    def out_features(self) -> int:
        return int(self.linear.out_features)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.activation(self.linear(x))
        return out + x if self.residual else out


class NormalizeLayer(nn.Module):
    """sentence-transformers' ``Normalize``: unit L2 norm."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.normalize(x, p=2, dim=-1)


def build_tail(st_folder: STFolder) -> list[nn.Module]:
    """The carried tail of ``st_folder`` as torch modules with their saved weights."""
    with torch.random.fork_rng(devices=[]):  # building the layers draws init noise the saved weights replace
        return [_build_module(st_folder.root / item.path, item.kind) for item in st_folder.tail]


def _build_module(folder: Path, kind: str) -> nn.Module:
    if kind == "normalize":
        return NormalizeLayer()
    cfg = _read_json(folder / "config.json")
    activation = activation_class(str(cfg.get("activation_function", DEFAULT_ACTIVATION)), folder)
    dense = DenseLayer(
        int(cfg["in_features"]),
        int(cfg["out_features"]),
        bias=bool(cfg.get("bias", True)),
        activation=activation(),
        residual=bool(cfg.get("use_residual", False)),
    )
    dense.load_state_dict(_dense_state(folder), strict=True)
    return dense


def _dense_state(folder: Path) -> dict[str, Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise SmoothCSEError(f"{folder}: the Dense module has no weights (model.safetensors or pytorch_model.bin).")
    return {key: value for key, value in state.items() if key.startswith("linear.")}
