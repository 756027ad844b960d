"""The ``st-tsdae`` sweep arm: sentence-transformers' TSDAE in the run's setting. Its noise (seeded word
deletion), its pairs in smoothcse's order, the decoder tied to a tiny random BERT, a tiny sweep end to end,
determinism under a seed, and the one-line error without the ``bench`` extra."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.cli.sweep import sweep
from smoothcse.config import TrainConfig
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.experiments import st_tsdae
from smoothcse.experiments.grid import Grid, RunSpec, is_st_arm, parse_grid, parse_overrides, run_config
from tests.helpers import hide_package, invoke, read_metrics, tiny_fixed, tiny_train_config, write_grid

CORPUS_WORDS_PER_UNIT = 5  # the small corpus's units have more words than this on average


def corpus_units(corpus: Path) -> list[str]:
    return [line.strip() for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]


def safetensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------- the noise


def test_noise_deletes_six_words_in_ten_from_the_seed_alone_and_never_empties_a_unit(small_corpus: Path) -> None:
    texts = corpus_units(small_corpus) + ["word", "two words", "...", "!", "a"]
    np.random.seed(0)
    random.seed(0)
    torch.manual_seed(0)
    noised = st_tsdae.add_noise(texts, seed=42)
    np.random.seed(1)  # other global states: the same noise (the run's seed alone decides)
    random.seed(1)
    torch.manual_seed(1)
    assert st_tsdae.add_noise(texts, seed=42) == noised
    other = st_tsdae.add_noise(texts, seed=43)
    assert sum(a != b for a, b in zip(noised, other)) > len(texts) // 2  # another seed, other deletions

    kept = total = 0
    for text, out in zip(texts, noised):
        words, left = st_tsdae.WORD.findall(text), out.split(" ")
        assert out.strip() and all(left)  # never empty: at least one word is kept
        remaining = iter(words)
        assert all(word in remaining for word in left), (text, out)  # an ordered subsequence of the words
        kept, total = kept + len(left), total + len(words)
    assert total > CORPUS_WORDS_PER_UNIT * len(texts)
    deleted = 1 - kept / total  # Bernoulli(0.6) per word over ~15k words: within ± 0.02 at 5 sigma
    assert st_tsdae.DELETE_RATIO == 0.6 and abs(deleted - 0.6) < 0.02, deleted
    assert noised[-5] == "word" and noised[-2] == "!" and noised[-1] == "a"  # a one-word unit keeps its word
    assert noised[-4] in ("two", "words", "two words") and set(noised[-3].split(" ")) == {"."}


def test_noise_keeps_one_word_when_every_draw_deletes() -> None:
    rng = np.random.default_rng(0)
    assert st_tsdae.delete_words("alpha beta gamma", rng, ratio=1.0) in ("alpha", "beta", "gamma")
    assert st_tsdae.delete_words("alpha beta gamma", rng, ratio=0.0) == "alpha beta gamma"
    assert st_tsdae.delete_words("   ", rng) == "   "  # no word: as it came


def test_pairs_are_the_noised_units_and_the_units_in_smoothcse_s_order(small_corpus: Path) -> None:
    from smoothcse.data.corpus import BatchSchedule

    config = TrainConfig(data=str(small_corpus), batch_size=8, max_sentences=40, seed=7)
    noised, targets, steps = st_tsdae.training_pairs(config)
    units = corpus_units(small_corpus)[:40]
    schedule = BatchSchedule(40, 8, 7)
    assert steps == 5 and targets == [units[int(i)] for s in range(5) for i in schedule.batch(s)]
    assert noised == st_tsdae.add_noise(targets, 7)
    assert sum(n != t for n, t in zip(noised, targets)) > 30  # noised, not copied


# ------------------------------------------------------------------------------------- the loss


def test_decoder_is_tied_to_the_encoder_built_from_its_local_folder_and_clipped_with_it(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from datasets import Dataset

    from smoothcse.experiments.st_trainer import build_st_model, ordered_trainer, trainer_arguments

    config = tiny_train_config(tiny_bert, small_corpus, tmp_path / "out")
    st = build_st_model(config)
    loss = st_tsdae.tsdae_loss(st.model, str(tiny_bert), seed=0)
    decoder = loss.decoder
    assert decoder.config.is_decoder and decoder.config.add_cross_attention
    assert decoder.config._name_or_path == str(tiny_bert)  # the local folder: nothing from a hub
    encoder = dict(st.model.transformers_model.named_parameters())
    shared = dict(decoder.base_model.named_parameters())
    assert encoder and all(encoder[name] is shared[name] for name in encoder)  # one tensor each: tied
    assert any("crossattention" in name for name in shared if name not in encoder)
    features = [st.model.preprocess(["the cat sat"]), st.model.preprocess(["the cat sat on the mat"])]
    value = loss(features, None)
    value.backward()
    # cross-entropy over the 30522-word vocabulary, untrained: about ln 30522 = 10.3
    assert math.isfinite(value.item()) and abs(value.item() - math.log(30522)) < 1.0
    assert encoder["embeddings.word_embeddings.weight"].grad is not None

    # the gradient norm the Trainer clips (and logs) is that of every trained parameter, the decoder's too
    def norm(module: torch.nn.Module) -> float:
        return float(
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None]))
        )

    dataset = Dataset.from_dict({"noised": ["a"], "original": ["a"]})
    args = trainer_arguments(config, st, 1, str(tmp_path / "scratch"), False)
    trainer = ordered_trainer(model=st.model, args=args, train_dataset=dataset, loss=loss, clip_loss=True)
    everything, encoder_only = norm(loss), norm(st.model)
    assert everything > encoder_only * (1 + 1e-3) and everything > config.max_grad_norm
    assert float(trainer._clip_grad_norm(trainer.model)) == pytest.approx(everything, rel=1e-4)  # before clipping
    assert norm(loss) == pytest.approx(config.max_grad_norm, rel=1e-4)  # clipped, all together


# ------------------------------------------------------------------------------------- the arm


def test_st_tsdae_arm_trains_end_to_end_in_a_sweep(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from smoothcse.model.st_modules import st_api

    grid = write_grid(
        tmp_path / "tsdae.toml",
        f"""
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", max_steps=None, eval_every=1, steps=2)}
[grid]
"objective.spec" = ["st-tsdae"]
""",
    )
    result = invoke(sweep, grid, "--out", tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)
    run = tmp_path / "out" / "runs" / "spec=st-tsdae"
    record = json.loads((run / "result.json").read_text())
    assert record["status"] == "ok" and record["framework"] == "sentence-transformers"
    assert record["config"]["max_steps"] == 2 and record["config"]["max_sentences"] == 16
    train = record["train"]
    assert train["steps"] == 2 and train["loss"] == "DenoisingAutoEncoderLoss" and train["delete_ratio"] == 0.6
    assert [p[0] for p in record["dev_curve"]] == [0, 1, 2] and train["best_step"] in (1, 2)
    assert math.isfinite(record["scores"]["STSb"])
    losses = read_metrics(run)
    loss = next(r["loss"] for r in losses if "loss" in r)
    assert loss > 5  # a reconstruction cross-entropy over the vocabulary, not an in-batch InfoNCE (≤ ln 8)
    assert (run / "smoothcse_config.json").is_file()

    modules = json.loads((run / "model" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"]  # no head, no decoder
    before, after = safetensors(tiny_bert), safetensors(run / "model")
    assert sorted(after) == sorted(before)  # the encoder's weights only
    trained = SentenceTransformer(str(run / "model"), device="cpu")
    api = st_api()
    start = SentenceTransformer(
        modules=[api.Transformer(str(tiny_bert)), api.Pooling(32, pooling_mode="cls")], device="cpu"
    )
    sentences = ["A man is playing a guitar.", "The weather is cold today."]
    new, old = trained.encode(sentences), start.encode(sentences)
    assert new.shape == old.shape == (2, 32) and not np.allclose(new, old, atol=1e-4)


def tsdae_run(tiny_bert: Path, corpus: Path, out: Path, seed: int) -> dict[str, np.ndarray]:
    config = tiny_train_config(tiny_bert, corpus, out, batch_size=8, max_len=16, max_steps=2, log_every=1, seed=seed)
    st_tsdae.train_st_tsdae(config)
    return safetensors(out / "model")


def test_st_tsdae_with_the_same_seed_trains_the_same_weights(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path
) -> None:
    first = tsdae_run(tiny_bert, small_corpus, tmp_path / "a", seed=5)
    again = tsdae_run(tiny_bert, small_corpus, tmp_path / "b", seed=5)
    other = tsdae_run(tiny_bert, small_corpus, tmp_path / "c", seed=6)
    start = safetensors(tiny_bert)
    assert sorted(first) == sorted(again) == sorted(start)
    assert all(np.array_equal(first[k], again[k]) for k in first)  # bit for bit
    assert all(not np.array_equal(first[k], start[k]) for k in first)  # every tensor trained
    assert any(not np.array_equal(first[k], other[k]) for k in first)  # and the seed matters
    losses = [(tmp_path / d / "metrics.jsonl").read_text().splitlines()[:2] for d in ("a", "b")]
    assert losses[0] == losses[1]


# ------------------------------------------------------------------------------------- the grid


def test_st_tsdae_is_a_grid_arm_not_an_override(tmp_path: Path) -> None:
    grid = parse_grid({"grid": {"objective.spec": ["st-tsdae", "st-simcse"]}}, name="g", source="g.toml")
    assert all(is_st_arm({"objective.spec": v}) for v in grid.axes["objective.spec"])
    assert not is_st_arm({"objective.spec": "simcse"})
    config = run_config(grid, RunSpec(0, "spec=st-tsdae", {"objective.spec": "st-tsdae"}), {}, tmp_path)
    assert config.objective.spec == "simcse"  # a valid config; the arm does not read its objective
    with pytest.raises(ConfigError, match="'st-tsdae' is an arm of a grid"):
        parse_overrides({"objective.spec": "st-tsdae"}, Grid(name="g", source="g.toml"))


def test_st_tsdae_without_the_bench_extra_fails_in_one_line(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        hide_package(patch, "datasets")
        with pytest.raises(SmoothCSEError) as err:
            st_tsdae.require_trainer()
    message = str(err.value)
    assert message.startswith("the st-tsdae arm needs") and "\n" not in message
    assert "needs datasets: pip install 'smoothcse[bench]'" in message
    # in a sweep (a module genuinely not installed: see the st-simcse test): the run fails, named, in one line
    monkeypatch.setattr(st_tsdae, "TRAINER_MODULES", ("datasets", "smoothcse_test_no_such_module"))
    grid = write_grid(
        tmp_path / "tsdae.toml",
        f"""
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", max_steps=1)}
[grid]
"objective.spec" = ["st-tsdae"]
""",
    )
    result = invoke(sweep, grid, "--out", tmp_path / "out")
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "spec=st-tsdae" in x)
    assert "FAILED at train" in line and "smoothcse_test_no_such_module" in line
    assert "pip install 'smoothcse[bench]'" in line
