"""The capability table per model type, the poolers defined once, and the one sentence-transformers
module builder behind both the export and the benchmark."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from conftest import build_tiny_model
from smoothcse.model.capabilities import CAPABILITIES, PLAIN, ModelCapabilities, capabilities, model_types


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


def test_poolers_are_defined_once_and_config_adds_auto() -> None:
    from smoothcse import config
    from smoothcse.model import encoder, poolers

    assert config.POOLERS == ("auto", *poolers.POOLERS)
    assert encoder.POOLERS is poolers.POOLERS
    assert poolers.POOLERS_OF_ST_MODES == {"cls": "cls_before_pooler", "mean": "avg"}


def test_configuration_cli_and_builder_modules_import_without_torch() -> None:
    code = (
        "import sys; import smoothcse.config, smoothcse.model.st_modules, smoothcse.bench.benchmark, "
        "smoothcse.cli.main; print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_import_paths_still_work() -> None:
    from smoothcse.encoder import load_encoder as shim
    from smoothcse.model import SentenceEncoder, holds_model, load_encoder, resolve_model_path, save_encoder
    from smoothcse.model.encoder import load_encoder as direct

    assert shim is load_encoder is direct and callable(save_encoder) and callable(holds_model)
    assert SentenceEncoder.__name__ == "SentenceEncoder" and callable(resolve_model_path)
    from smoothcse.bench.benchmark import build_sentence_transformer
    from smoothcse.model.st_modules import build_sentence_transformer as moved

    assert build_sentence_transformer is moved


def test_the_builder_loads_electra_which_takes_no_pooling_flag(tmp_path: Path) -> None:
    """The benchmark's old list passed add_pooling_layer=False to ELECTRA, whose class refuses it."""
    from smoothcse.model.encoder import load_encoder
    from smoothcse.model.st_modules import build_sentence_transformer

    folder = build_tiny_model(tmp_path / "electra", "electra")
    encoder = load_encoder(str(folder), pooler="cls")
    model = build_sentence_transformer(encoder, str(folder), 32, "cpu")
    assert type(model[0].auto_model).__name__ == "ElectraModel"


def test_the_builder_passes_loading_arguments_under_either_api(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releases before 5.4 (``sentence_transformers.models``; ``model_args`` / ``config_args``) and after;
    the installed release still accepts the old names, so both branches run here."""
    import importlib

    import smoothcse.model.st_modules as st_modules
    from smoothcse.model.encoder import load_encoder

    encoder = load_encoder(str(tiny_bert), pooler="cls")
    dropout = {"hidden_dropout_prob": 0.0}
    new = st_modules.build_sentence_transformer(encoder, str(tiny_bert), 32, "cpu", config_kwargs=dropout)
    real_import = importlib.import_module
    real_import("sentence_transformers.models")  # the deprecated alias, imported before the patch below

    def old_only(name: str, *args, **kwargs):
        if name == "sentence_transformers.sentence_transformer.modules":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(st_modules.importlib, "import_module", old_only)
    assert st_modules.st_api()[1] == ("model_args", "config_args")
    old = st_modules.build_sentence_transformer(encoder, str(tiny_bert), 32, "cpu", config_kwargs=dropout)
    for model in (new, old):
        assert model[0].auto_model.config.hidden_dropout_prob == 0.0  # the config override arrived
        assert getattr(model[0].auto_model, "pooler", None) is None  # and add_pooling_layer=False
        assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense"]
        assert torch.equal(model[2].linear.weight, encoder.mlp.dense.weight.detach())
