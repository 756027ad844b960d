"""Any sentence-transformers folder in and out exactly: Dense, Normalize and the older ``0_Transformer/``
layout evaluate as ``SentenceTransformer(folder).encode`` does; a Dense model trains, exports and reloads
with its Dense; a module smoothcse cannot carry is refused by name; the export's model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.errors import SmoothCSEError
from smoothcse.model import load_encoder
from smoothcse.model.st_modules import st_api
from tests.helpers import build_tiny_bert, minilm_folder, run, tiny_train_config

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "the cat sat",
    "Three dogs run through a field of tall grass while a child watches them from far away, laughing.",
    "Stocks fell sharply on Monday.",
]


def st_encode(folder: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_numpy=True)


def assert_same_embeddings(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(theirs, axis=1), rtol=1e-4)


def save_st(folder: Path, backbone: Path, *extra: str, pooling: str = "mean", max_seq_length: int = 12) -> Path:
    """A sentence-transformers folder saved by sentence-transformers itself: Transformer + Pooling + ``extra``."""
    from sentence_transformers import SentenceTransformer
    from torch import nn

    api = st_api()
    torch.manual_seed(1)
    modules: list[nn.Module] = [api.Transformer(str(backbone), max_seq_length=max_seq_length)]
    modules.append(api.Pooling(32, pooling_mode=pooling))
    for name in extra:
        if name == "dense":
            modules.append(api.Dense(32, 16, activation_function=nn.Tanh()))
        elif name == "normalize":
            modules.append(api.Normalize())
        elif name == "layernorm":
            modules.append(api.LayerNorm(32))
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def old_layout(folder: Path, backbone: Path) -> Path:
    """The older layout: the Transformer in ``0_Transformer/`` with its own sentence_bert_config.json."""
    shutil.copytree(backbone, folder / "0_Transformer")
    (folder / "0_Transformer" / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 10, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("st-backbone"), positions=64)


@pytest.mark.parametrize(
    "layout", ["dense", "normalize", "0_Transformer", "dense+normalize"], ids=lambda layout: layout
)
def test_a_sentence_transformers_folder_evaluates_as_sentence_transformers(
    backbone: Path, tmp_path: Path, layout: str
) -> None:
    folder = tmp_path / layout
    if layout == "0_Transformer":
        old_layout(folder, backbone)
    elif layout == "normalize":
        save_st(folder, backbone, "normalize", pooling="cls")
    else:
        save_st(folder, backbone, *layout.split("+"))
    encoder = load_encoder(str(folder))
    ours = encoder.encode(SENTENCES)
    assert_same_embeddings(ours, st_encode(folder))
    # the folder's max_seq_length truncates the long sentence as sentence-transformers does
    untruncated = load_encoder(str(folder))
    untruncated.max_length = 64
    assert not np.allclose(untruncated.encode(SENTENCES[2:3]), ours[2:3], atol=1e-4)
    if "normalize" in layout:
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    if "dense" in layout:
        assert ours.shape == (len(SENTENCES), 16) and encoder.embedding_dim == 16


def test_the_packaged_minilm_with_its_normalize_module_encodes_as_sentence_transformers() -> None:
    folder = minilm_folder()
    ours = load_encoder(str(folder)).encode(SENTENCES)
    assert_same_embeddings(ours, st_encode(folder))
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)  # its 2_Normalize is carried


@pytest.mark.parametrize(
    "make,named",
    [
        (lambda f, b: save_st(f, b, "layernorm"), "LayerNorm"),
        (lambda f, b: save_st(f, b, pooling="max"), "pooling mode max"),
    ],
    ids=["layernorm", "max-pooling"],
)
def test_a_module_smoothcse_cannot_carry_is_refused_by_name(backbone: Path, tmp_path: Path, make, named: str) -> None:
    folder = make(tmp_path / "st", backbone)
    with pytest.raises(SmoothCSEError) as err:
        load_encoder(str(folder))
    message = str(err.value)
    assert named in message and "\n" not in message


def test_lower_casing_and_default_prompts_are_refused(backbone: Path, tmp_path: Path) -> None:
    folder = save_st(tmp_path / "st", backbone)
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(json.dumps({**config, "do_lower_case": True}))
    with pytest.raises(SmoothCSEError, match="do_lower_case"):
        load_encoder(str(folder))
    (folder / "sentence_bert_config.json").write_text(json.dumps(config))
    prompts = folder / "config_sentence_transformers.json"
    saved = json.loads(prompts.read_text()) if prompts.is_file() else {}
    prompts.write_text(json.dumps({**saved, "prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    with pytest.raises(SmoothCSEError, match="default_prompt_name"):
        load_encoder(str(folder))


def test_a_dense_model_trains_exports_and_reloads_with_its_dense(
    backbone: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    from safetensors.torch import load_file

    from smoothcse.training.loop import train

    base = save_st(tmp_path / "base", backbone, "dense", "normalize")
    out = tmp_path / "run"
    config = tiny_train_config(base, small_corpus, out, max_steps=4)
    train(config, progress=False)
    model = out / "model"
    kinds = [m["type"].rsplit(".", 1)[-1] for m in json.loads((model / "modules.json").read_text())]
    assert kinds == ["Transformer", "Pooling", "Dense", "Normalize"]
    dense_path = next(m["path"] for m in json.loads((model / "modules.json").read_text()) if "Dense" in m["type"])
    before = load_file(str(base / "2_Dense" / "model.safetensors"))["linear.weight"]
    after = load_file(str(model / dense_path / "model.safetensors"))["linear.weight"]
    assert not torch.allclose(before, after)  # the Dense module was trained, not only kept
    reloaded = load_encoder(str(out))  # a run folder resolves to its model/
    assert reloaded.embedding_dim == 16 and len(reloaded.tail) == 2
    assert_same_embeddings(reloaded.encode(SENTENCES), st_encode(model))
    assert not (model / "checkpoints").exists() and (out / "checkpoints").is_dir()  # the model folder ships alone


def test_the_model_card_names_what_was_trained(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    from smoothcse.model.card import CARD_FILE, add_scores
    from smoothcse.training.loop import train

    out = tmp_path / "run"
    objective = {"spec": "simcse+gs", "gs_num": 5}
    config = tiny_train_config(tiny_bert, small_corpus, out, max_steps=4, eval_every=2, seed=7, objective=objective)
    result = train(config, progress=False)
    card = json.loads((out / "model" / CARD_FILE).read_text())["training"]
    assert card["base_model"] == str(tiny_bert) and card["objective"] == "simcse+gs"
    assert card["objective_settings"] == {"temperature": 0.05, "gs_num": 5, "gs_std": 0.5}
    lines = sum(1 for _ in small_corpus.open())
    assert card["corpus"] == {"file": small_corpus.name, "sentences": lines, "units": "sentences"}
    assert (card["batch_size"], card["seed"], card["step"]) == (16, 7, result.best_step)
    assert card["stsb_dev"] == pytest.approx(result.best_dev)
    readme = (out / "model" / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: sentence-transformers\n")
    gs_paper = "Smoothed Contrastive Learning for Unsupervised Sentence Embedding"  # the objective's BibTeX
    for fact in ("simcse+gs", "gs_num = 5", small_corpus.name, "| Seed | 7 |", f"{result.best_dev:.2f}", gs_paper):
        assert fact in readme, fact
    assert "base_model:" not in readme  # a local folder is named in the text, not claimed as a hub id
    code, output = run("eval", str(out), "--tasks", "STSb,MR", "--json", str(tmp_path / "s.json"), "--update-card")
    assert code == 0, output
    scores = json.loads((tmp_path / "s.json").read_text())
    stsb, mr = scores["sts"]["tasks"]["STSb"]["spearman"], scores["transfer"]["tasks"]["MR"]["accuracy"]
    readme = (out / "model" / "README.md").read_text()
    assert f"| STSb (Spearman) | {stsb:.2f} | smoothcse eval, " in readme
    assert f"| MR (accuracy) | {mr:.2f} | smoothcse eval, " in readme and "model-index:" in readme
    assert "gs_num = 5" in readme  # the training facts stay
    import yaml  # transformers' own dependency

    header = yaml.safe_load(readme.split("---\n")[1])  # the hub's metadata parses as YAML
    assert header["library_name"] == "sentence-transformers" and "simcse+gs" in header["tags"]
    results = {r["dataset"]["name"]: r["metrics"][0] for r in header["model-index"][0]["results"]}
    assert results["STSb"]["type"] == "cosine_spearman" and results["STSb"]["value"] == round(stsb, 2)
    add_scores(out / "model", {"STSb (Spearman)": 1.0}, "a later run")  # a re-measured task is replaced
    readme = (out / "model" / "README.md").read_text()
    assert "| STSb (Spearman) | 1.00 | a later run |" in readme and f"{stsb:.2f}" not in readme.split("## Usage")[0]
    code, output = run("eval", "all-MiniLM-L6-v2", "--tasks", "STSb", "--update-card")
    assert code == 2 and "--update-card" in output  # the packaged model is not the user's folder
