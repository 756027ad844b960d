"""Adapting to one's own documents, end to end on a tiny model: the teacher's cached embeddings, harder
views, train/test retrieval from one encoding, the base arm, and the domain grid."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.data.corpus import iter_sentences
from smoothcse.evaluation.retrieval import evaluate_retrieval, evaluate_retrieval_splits
from smoothcse.experiments.grid import load_grid
from smoothcse.experiments.sweep import SweepOptions, config_differences, run_sweep
from smoothcse.model.encoder import load_encoder
from smoothcse.training.loop import train
from tests.helpers import read_metrics, tiny_train_config, write_scifact_subset


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    return write_scifact_subset(tmp_path_factory.mktemp("beir") / "scifact-mini", data_dir)


def bag_of_words(texts: list[str]) -> np.ndarray:
    """Hashed word counts: an embedding that does not depend on which texts share a batch."""
    import zlib

    out = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, zlib.crc32(word.strip(".,;:()").encode()) % 256] += 1.0
    return out


def test_train_and_test_splits_from_one_encoding_equal_separate_evaluations(beir: Path) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return bag_of_words(texts)

    both = evaluate_retrieval_splits(embed, beir, splits=("train", "test"))
    documents = both["test"]["counts"]["documents"]
    assert calls.count(documents) == 1  # the corpus is encoded once for both splits
    assert both["train"]["counts"]["queries"] > 0 and both["test"]["counts"]["queries"] > 0
    for split in ("train", "test"):
        alone = evaluate_retrieval(bag_of_words, beir, split=split)
        assert both[split]["metrics"] == alone["metrics"]
        assert both[split]["counts"] == alone["counts"]
        per_query = both[split]["per_query"]["ndcg_at_10"]
        assert len(per_query) == alone["counts"]["queries_evaluated"]
        assert np.mean(list(per_query.values())) == pytest.approx(alone["main_score"])
    assert both["test"]["main_score"] > 5  # words shared by claims and abstracts find some of them


def test_teacher_embeddings_are_cached_and_change_nothing_but_the_loss(
    beir: Path, tiny_bert: Path, tmp_path: Path, cache_dir: Path
) -> None:
    corpus = beir / "corpus.jsonl.gz"
    config = tiny_train_config(
        tiny_bert,
        corpus,
        tmp_path / "cold",
        max_steps=4,
        objective={"spec": "simcse+soft-weight+distill", "soft_similarity": "teacher"},
        view_crop=0.5,
        view_delete=0.2,
    )
    cold = train(config)
    teacher_folders = list(cache_dir.rglob("teacher/*/embeddings.npy"))
    assert len(teacher_folders) == 1
    embeddings = np.load(teacher_folders[0])
    start = load_encoder(str(tiny_bert))
    units = [text for _, text in iter_sentences(corpus)]
    assert embeddings.shape == (len(units), start.embedding_dim)
    np.testing.assert_allclose(embeddings[:5], start.encode(units[:5], max_length=config.max_len), atol=1e-5)
    records = read_metrics(tmp_path / "cold")
    assert any("distill_kl" in r and r["distill_kl"] > 0 for r in records)
    # a warm cache: the same run trains to the same weights (the cold cache's teacher drew no random numbers)
    warm = train(tiny_train_config(**{**_args(config), "out": str(tmp_path / "warm")}))
    assert warm.steps == cold.steps
    for name, tensor in _weights(tmp_path / "cold").items():
        torch.testing.assert_close(_weights(tmp_path / "warm")[name], tensor, rtol=0, atol=0)


def _args(config) -> dict:
    values = config.to_dict()
    return {"model": Path(values.pop("model")), "corpus": Path(values.pop("data")), **values}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def test_title_views_read_the_teachers_embeddings_of_the_titles(
    beir: Path, tiny_bert: Path, tmp_path: Path, cache_dir: Path
) -> None:
    """distill against the title view: the teacher embeds the titles (cached beside the units'), so its row i
    is of the anchor with each title, not the anchors' own similarities again (which equal the InfoNCE)."""
    corpus = beir / "corpus.jsonl.gz"
    config = tiny_train_config(
        tiny_bert, corpus, tmp_path / "run", max_steps=3, objective={"spec": "simcse+distill"}, view_source="title"
    )
    assert train(config).steps == 3
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        titles = [doc["title"].strip() for doc in map(json.loads, handle) if doc["title"].strip()]
    cached = {json.loads(meta.read_text())["units"]: meta.parent for meta in cache_dir.rglob("teacher/*/meta.json")}
    assert len(cached) == 2 and len(titles) in cached  # the units' cache and the titles'
    embeddings = np.load(cached[len(titles)] / "embeddings.npy")
    start = load_encoder(str(tiny_bert))
    np.testing.assert_allclose(embeddings, start.encode(titles, max_length=config.max_len), atol=1e-5)
    records = [r for r in read_metrics(tmp_path / "run") if "distill_kl" in r]
    assert records and all(r["distill_kl"] != pytest.approx(r["infonce"], rel=1e-3) for r in records)


def test_damaged_teacher_cache_is_rebuilt(beir: Path, tiny_bert: Path, tmp_path: Path, cache_dir: Path, capsys) -> None:
    config = tiny_train_config(
        tiny_bert, beir / "corpus.jsonl.gz", tmp_path / "a", max_steps=2, objective={"spec": "simcse+distill"}
    )
    train(config)
    (cached,) = cache_dir.rglob("teacher/*/embeddings.npy")
    cached.write_bytes(cached.read_bytes()[:200])  # truncated
    train(tiny_train_config(**{**_args(config), "out": str(tmp_path / "b")}))
    assert "teacher cache" in capsys.readouterr().err
    assert np.load(cached).shape[0] > 0


def test_domain_grid_end_to_end_with_base_first(beir: Path, tiny_bert: Path, tmp_path: Path, cache_dir: Path) -> None:
    grid = load_grid("domain")
    assert grid.axes["arm"][0] == {"objective.spec": "base"}
    assert grid.retrieval_splits == ("train", "test") and "retrieval" in grid.eval_tasks
    from smoothcse.experiments.grid import with_beir

    grid, corpus = with_beir(grid, str(beir))
    assert corpus == str(beir / "corpus.jsonl.gz")
    keep = [{"objective.spec": "base"}, {"objective.spec": "simcse+distill", "view_crop": 0.5}]
    grid.axes["arm"] = keep
    options = SweepOptions(
        out=tmp_path / "domain",
        overrides={"model": str(tiny_bert), "data": corpus, "max_steps": 3, "batch_size": 16, "max_len": 24},
        sts_tasks=("STSb",),
        echo=lambda line: None,
    )
    summary = run_sweep(grid, options)
    assert summary.ok == 2, [r.error for r in summary.runs]
    base, adapted = summary.runs
    assert base.framework == "none" and base.train is None
    for result in (base, adapted):
        assert set(result.scores) >= {"ndcg_at_10", "train_ndcg_at_10", "STSb"}
        assert result.retrieval["split"] == "test" and set(result.retrieval["splits"]) == {"train"}
        assert result.extra.get("code")
    # the base row is the starting model itself, scored directly
    direct = evaluate_retrieval(load_encoder(str(tiny_bert)).encode, beir, split="test")
    assert base.scores["ndcg_at_10"] == pytest.approx(direct["main_score"])
    assert adapted.scores["ndcg_at_10"] != base.scores["ndcg_at_10"]
    # the adapted model's card records its corpus, views, teacher and its domain scores
    card = (tmp_path / "domain" / "runs" / adapted.name / "model" / "README.md").read_text()
    assert "corpus.jsonl.gz" in card and "| View crop | 0.5 |" in card and "Teacher (frozen)" in card
    assert "scifact-mini train queries (nDCG@10)" in card and "scifact-mini (nDCG@10)" in card
    assert "RankCSE" in card and "@inproceedings{gao-etal-2021-simcse" in card  # the objective's own BibTeX
    # a second invocation skips both
    again = run_sweep(grid, options)
    assert again.skipped == 2


def test_the_base_arm_is_evaluated_once_and_its_other_seeds_take_that_evaluation(
    beir: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the base arm depends on the seed: its seeds 2 and 3 take seed 1's evaluation (on a CPU,
    an hour of SciFact each) and say so, and the paired differences against base are unchanged by it."""
    from smoothcse.experiments import sweep as sweep_module
    from smoothcse.experiments.grid import with_beir

    grid, corpus = with_beir(load_grid("domain"), str(beir))
    grid.axes = {"seed": [1, 2, 3], "arm": [{"objective.spec": "base"}]}
    evaluated: list[str] = []
    real = sweep_module.evaluate_model

    def counting(model: Path, wanted: list[str], **kwargs: object) -> dict:
        evaluated.append(str(model))
        return real(model, wanted, **kwargs)

    monkeypatch.setattr(sweep_module, "evaluate_model", counting)
    options = SweepOptions(
        out=tmp_path / "domain", overrides={"model": str(tiny_bert), "data": corpus}, sts_tasks=("STSb",), echo=print
    )
    first, second, third = run_sweep(grid, options).runs
    assert evaluated == [str(tiny_bert)]
    assert second.extra["evaluation_of"] == third.extra["evaluation_of"] == first.name
    assert "evaluation_of" not in first.extra
    for copy in (second, third):
        assert copy.ok and copy.scores == first.scores and copy.retrieval == first.retrieval
    # a base run with other settings is evaluated itself
    options.overrides["max_len"] = 24
    grid.axes["seed"] = [4]
    (other,) = run_sweep(grid, options).runs
    assert "evaluation_of" not in other.extra and len(evaluated) == 2


def test_settings_added_since_a_run_compare_at_their_default() -> None:
    from smoothcse.config import TrainConfig

    current = TrainConfig().to_dict()
    saved = {k: v for k, v in current.items() if k not in ("units", "view_crop", "teacher")}
    saved["objective"] = {k: v for k, v in current["objective"].items() if k != "distill_weight"}
    assert config_differences(saved, current) == []
    current["view_crop"] = 0.5
    assert config_differences(saved, current) == ["view_crop"]


def test_views_are_refused_for_the_sentence_transformers_arms(tmp_path: Path) -> None:
    from smoothcse.errors import ConfigError
    from smoothcse.experiments.grid import RunSpec, run_config

    grid = load_grid("domain")
    for arm in ("st-simcse", "st-tsdae"):
        spec = RunSpec(index=0, name=arm, values={"objective.spec": arm, "view_crop": 0.5})
        with pytest.raises(ConfigError, match=f"the {arm} arm trains sentence-transformers' own loss"):
            run_config(grid, spec, {}, tmp_path / arm)
