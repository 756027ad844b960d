"""The capability table per model type, the poolers, the import paths the documentation names, and the one
sentence-transformers module builder behind both the export and the benchmark."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from smoothcse.model.capabilities import CAPABILITIES, PLAIN, ModelCapabilities, capabilities, model_types
from tests.helpers import build_tiny_model


def test_the_table_answers_per_model_type_and_plain_elsewhere() -> None:
    assert capabilities(types.SimpleNamespace(model_type="bert")).cls_only_last_layer
    assert capabilities(types.SimpleNamespace(model_type="gpt2")) is PLAIN
    assert capabilities(object()) is PLAIN
    assert PLAIN == ModelCapabilities() and not any(vars(PLAIN).values())
    with pytest.raises(ValueError, match="shared_word_embeddings"):
        model_types("word_embeddings")
    with pytest.raises(dataclasses.FrozenInstanceError):
        CAPABILITIES["bert"].cls_only_last_layer = False  # type: ignore[misc]


@pytest.mark.parametrize("model_type", sorted(CAPABILITIES))
def test_add_pooling_layer_is_what_the_model_class_takes(model_type: str) -> None:
    from transformers import AutoConfig

    from smoothcse.model.encoder import _takes_pooling_flag

    assert capabilities(AutoConfig.for_model(model_type)).add_pooling_layer == _takes_pooling_flag(
        AutoConfig.for_model(model_type)
    )


@pytest.mark.parametrize(("model_type", "limit"), [("bert", 130), ("roberta", 128), ("electra", 130)])
def test_eval_max_length_leaves_room_for_positions_after_the_padding_index(model_type: str, limit: int) -> None:
    from transformers import AutoConfig

    from smoothcse.model.encoder import eval_max_length

    backbone = types.SimpleNamespace(config=AutoConfig.for_model(model_type, max_position_embeddings=130))
    assert eval_max_length(backbone, types.SimpleNamespace(model_max_length=10**6)) == limit


def test_every_pooler_the_config_offers_is_computed_as_defined() -> None:
    """``--pooler``'s choices are the poolers ``pool`` computes, each equal to a row-by-row definition."""
    from smoothcse import config
    from smoothcse.errors import ConfigError
    from smoothcse.model.encoder import pool
    from smoothcse.model.poolers import POOLERS, POOLERS_OF_ST_MODES, ST_POOLING_MODES

    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    states = [torch.randn(3, 4, 5) for _ in range(3)]  # embeddings, layer 1, layer 2 (the last)

    def mean(layer: torch.Tensor) -> torch.Tensor:  # over each row's real tokens only
        return torch.stack([layer[row, : int(mask[row].sum())].mean(0) for row in range(3)])

    expected = {
        "cls": states[-1][:, 0],
        "cls_before_pooler": states[-1][:, 0],
        "avg": mean(states[-1]),
        "avg_first_last": mean((states[1] + states[-1]) / 2),
        "avg_top2": mean((states[-2] + states[-1]) / 2),
    }
    assert config.POOLERS == ("auto", *expected)
    for name in POOLERS:
        torch.testing.assert_close(pool(name, mask, states[-1], states), expected[name], msg=name)
    with pytest.raises(ConfigError, match="not one of cls, cls_before_pooler, avg, avg_first_last, avg_top2"):
        pool("mean", mask, states[-1], states)
    # a sentence-transformers folder's pooling mode loads as the pooler that exports as that mode
    assert POOLERS_OF_ST_MODES == {"cls": "cls_before_pooler", "mean": "avg"}
    assert all(ST_POOLING_MODES[pooler] == mode for mode, pooler in POOLERS_OF_ST_MODES.items())


def test_configuration_cli_and_builder_modules_import_without_torch() -> None:
    code = (
        "import sys; import smoothcse.config, smoothcse.model.st_modules, smoothcse.bench.benchmark, "
        "smoothcse.cli.main; print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _documented_paths() -> set[str]:
    """Every ``from smoothcse... import name`` and every `smoothcse.a.b` path in README.md and docs/."""
    root = Path(__file__).resolve().parent
    while not (root / "pyproject.toml").is_file():
        root = root.parent
    paths: set[str] = set()
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for module, names in re.findall(r"^from (smoothcse[\w.]*) import (\([^)]*\)|[^\n]*)", text, re.M):
            paths |= {f"{module}.{name.strip()}" for name in names.strip("()").split(",") if name.strip()}
        paths |= set(re.findall(r"`(smoothcse(?:\.\w+)+)", text))
    return paths


def _resolve(path: str) -> object:
    """The object a dotted path names: its longest importable module prefix, then attributes."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for name in parts[end:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(path)


def test_the_import_paths_the_docs_name_resolve() -> None:
    paths = _documented_paths()
    assert {"smoothcse.mteb.LocalSTS", "smoothcse.objectives.build_objective"} <= paths  # the scan finds them
    broken = []
    for path in sorted(paths):
        try:
            _resolve(path)
        except (ImportError, AttributeError) as err:
            broken.append(f"{path}: {err}")
    assert not broken, "\n".join(broken)


def test_the_builder_loads_electra_which_takes_no_pooling_flag(tmp_path: Path) -> None:
    """The benchmark's old list passed add_pooling_layer=False to ELECTRA, whose class refuses it."""
    from smoothcse.model.encoder import load_encoder
    from smoothcse.model.st_modules import build_sentence_transformer

    folder = build_tiny_model(tmp_path / "electra", "electra")
    encoder = load_encoder(str(folder), pooler="cls")
    model = build_sentence_transformer(encoder, str(folder), 32, "cpu")
    assert type(model[0].auto_model).__name__ == "ElectraModel"


def test_the_builder_passes_loading_arguments(tiny_bert: Path) -> None:
    import smoothcse.model.st_modules as st_modules
    from smoothcse.model.encoder import load_encoder

    encoder = load_encoder(str(tiny_bert), pooler="cls")
    dropout = {"hidden_dropout_prob": 0.0}
    model = st_modules.build_sentence_transformer(encoder, str(tiny_bert), 32, "cpu", config_kwargs=dropout)
    assert model[0].auto_model.config.hidden_dropout_prob == 0.0  # the config override arrived
    assert getattr(model[0].auto_model, "pooler", None) is None  # and add_pooling_layer=False
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense"]
    assert torch.equal(model[2].linear.weight, encoder.mlp.dense.weight.detach())
