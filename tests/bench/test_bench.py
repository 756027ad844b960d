"""``smoothcse bench``: the side-by-side report, and that the fast path's static shapes and
compilation leave the loss and the gradients unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from smoothcse.bench.config import BenchConfig
from smoothcse.bench.frameworks import SmoothCSERunner
from smoothcse.bench.measure import (
    SENTENCE_TRANSFORMERS,
    SMOOTHCSE,
    MemoryMeter,
    ModelShape,
    Work,
    cuda_peak_flops,
    non_embedding_params,
)
from smoothcse.cli.bench import bench
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus
from smoothcse.errors import ConfigError
from smoothcse.model.cls_only import cls_only_params
from smoothcse.model.encoder import load_encoder
from smoothcse.objectives import ObjectiveConfig
from tests.helpers import COMPILE_TOLERANCE, TIGHT, final_weights, step_terms_and_grads

PAD_TOLERANCE = TIGHT
"""Padding to max_len: fp32, only the order of floating-point sums may differ."""


def _bench_args(model: Path, corpus: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--model",
        str(model),
        "--data",
        str(corpus),
        "--steps",
        "2",
        "--warmup",
        "1",
        "--repeats",
        "2",
        "--batch-size",
        "8",
        "--max-len",
        "16",
        "--threads",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(tmp_path / "bench.json"),
        "--markdown",
        str(tmp_path / "bench.md"),
        *extra,
    ]


def test_bench_reports_both_frameworks_alternating(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(bench, _bench_args(tiny_bert, small_corpus, tmp_path), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    frameworks = report["frameworks"]
    assert set(frameworks) == {SMOOTHCSE, SENTENCE_TRANSFORMERS}
    for row in frameworks.values():
        assert row["steps_per_s"] > 0 and row["sentences_per_s"] == pytest.approx(8 * row["steps_per_s"])
        assert len(row["blocks_steps_per_s"]) == 2
        assert row["encoder_rows_per_step"] == 16  # equal work: both views of all 8 sentences every step
        assert 0 < row["mean_padded_length"] <= 16
        assert row["flops_per_step"] > 0 and row["mfu"] is not None and row["mfu"] > 0
        assert row["peak_memory_mb"] is not None and row["peak_memory_mb"] >= 0  # from the untimed memory blocks
    assert [b["framework"] for b in report["timeline"]] == [SMOOTHCSE, SENTENCE_TRANSFORMERS] * 2
    assert report["ratio"]["sentences_per_s"] == pytest.approx(
        frameworks[SMOOTHCSE]["sentences_per_s"] / frameworks[SENTENCE_TRANSFORMERS]["sentences_per_s"]
    )
    # the tiny model is trained with SimCSE's cls + MLP head on both sides: same trainable parameters
    assert report["model"]["sentence_transformers"]["non_embedding_params"] == report["model"]["non_embedding_params"]
    table = (tmp_path / "bench.md").read_text()
    assert (
        "| smoothcse |" in table
        and "| sentence-transformers |" in table
        and "smoothcse / sentence-transformers" in table
    )
    assert "| smoothcse |" in result.stdout  # the table is printed too


def test_bench_without_sentence_transformers(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        bench, _bench_args(tiny_bert, small_corpus, tmp_path, "--no-st", "--quiet"), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert set(report["frameworks"]) == {SMOOTHCSE} and "ratio" not in report
    assert " --no-st" in report["command"]


@pytest.mark.parametrize(("objective", "fast_path"), [("simcse", True), ("simcse+gs+is", False)])
def test_bench_smoothcse_side_trains_exactly_as_train(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path, objective: str, fast_path: bool
) -> None:
    """The benchmark's smoothcse side is ``train``: same seed and settings, same steps, identical weights."""
    from smoothcse.config import TrainConfig
    from smoothcse.training.loop import train

    steps = 4
    settings = dict(model=str(tiny_bert), data=str(small_corpus), batch_size=8, max_len=16, lr=1e-3, seed=7)
    runner = SmoothCSERunner(
        BenchConfig(**settings, objective=objective, fast_path=fast_path, device="cpu"), total_steps=steps
    )
    try:
        for _ in range(steps):
            runner.train_step(Work())
        benched = {k: v.clone() for k, v in runner.encoder.state_dict().items()}
    finally:
        runner.close()
    assert not runner.out.exists()  # the runner's scratch folder is gone
    config = TrainConfig(
        **settings,
        out=str(tmp_path / "train"),
        max_steps=steps,
        eval_every=0,
        device="cpu",
        fast_path=fast_path,
        objective=ObjectiveConfig(spec=objective),
    )
    train(config, progress=False)
    trained = final_weights(tmp_path / "train")
    assert benched.keys() == trained.keys()
    for key, value in trained.items():
        assert torch.equal(benched[key], value), key
    initial = load_encoder(str(tiny_bert)).state_dict()
    assert not torch.equal(
        initial["backbone.embeddings.word_embeddings.weight"], trained["backbone.embeddings.word_embeddings.weight"]
    )  # both really trained


def _batch(encoder: torch.nn.Module, corpus_path: Path, tmp_path: Path, max_len: int) -> tuple[TokenizedCorpus, object]:
    corpus = TokenizedCorpus.build(
        corpus_path, encoder.tokenizer, max_len, cache_dir=tmp_path / "cache", progress=False
    )
    return corpus, BatchSchedule(len(corpus), 8, seed=0).batch(3)


@pytest.mark.parametrize("pooler", ["cls", "avg"])
def test_padding_to_max_len_changes_neither_loss_nor_gradients(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, pooler: str
) -> None:
    # dropout off: the padded and unpadded batches have different shapes, so their dropout masks would differ
    encoder = load_encoder(str(tiny_bert), pooler=pooler, hidden_dropout=0.0, attention_dropout=0.0).train()
    corpus, indices = _batch(encoder, small_corpus, tmp_path, max_len=48)
    ids, mask = corpus.collate(indices)
    padded_ids, padded_mask = corpus.collate(indices, pad_to=64)  # the tiny model has 128 positions
    assert padded_ids.shape[1] > ids.shape[1]  # the test pads something
    terms, grads = step_terms_and_grads(encoder, encoder, "simcse", ids, mask, cls_only=True)
    padded_terms, padded_grads = step_terms_and_grads(
        encoder, encoder, "simcse", padded_ids, padded_mask, cls_only=True
    )
    torch.testing.assert_close(padded_terms["loss"], terms["loss"], **PAD_TOLERANCE)
    assert set(padded_grads) == set(grads)  # padded positions' embedding rows get exactly zero gradient
    for name, grad in grads.items():
        torch.testing.assert_close(padded_grads[name], grad, **PAD_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="inductor needs a C compiler")
def test_compiled_static_shape_step_matches_eager(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    """The bench's --compile path (pad to max_len, torch.compile) against the eager, unpadded step."""
    encoder = load_encoder(str(tiny_bert), pooler="cls", hidden_dropout=0.0, attention_dropout=0.0).train()
    corpus, indices = _batch(encoder, small_corpus, tmp_path, max_len=32)
    terms, grads = step_terms_and_grads(encoder, encoder, "simcse", *corpus.collate(indices), cls_only=True)
    compiled = torch.compile(encoder)
    padded = corpus.collate(indices, pad_to=32)
    compiled_terms, compiled_grads = step_terms_and_grads(compiled, encoder, "simcse", *padded, cls_only=True)
    torch.testing.assert_close(compiled_terms["loss"], terms["loss"], **COMPILE_TOLERANCE)
    for name, grad in grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, **COMPILE_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_model_flops_of_bert_base_match_the_design_brief() -> None:
    from transformers import BertConfig, BertModel

    with torch.device("meta"):  # shapes only, no memory
        model = BertModel(BertConfig(), add_pooling_layer=False)
    params = non_embedding_params(model)
    assert (
        params == 12 * (4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768) + 2 * 768
    )  # + embedding LayerNorm
    shape = ModelShape(non_embedding_params=params, layers=12, hidden=768)
    rows, width = 2 * 64, 32
    flops = shape.flops(rows, rows * width, rows * width * width)
    assert flops == pytest.approx(6 * params * rows * width + 12 * 12 * 768 * rows * width**2)
    assert 2.0e12 < flops < 2.2e12  # "~2.1 TFLOP per step at length 32" (DESIGN.md §5)

    # the last layer for [CLS] alone: keys and values of every token, everything else for one
    last = model.encoder.layer[-1]
    shared = cls_only_params(model)
    assert shared == sum(p.numel() for p in last.parameters()) - 2 * (768 * 768 + 768)
    cls_only = ModelShape(non_embedding_params=params, layers=12, hidden=768, cls_only_params=shared)
    saved = rows * ((width - 1) * 6 * shared + 12 * 768 * (width**2 - width))
    assert cls_only.flops(rows, rows * width, rows * width * width) == pytest.approx(flops - saved)
    assert 1 - cls_only.flops(rows, rows * width, rows * width**2) / flops == pytest.approx(0.067, abs=0.002)


def test_cuda_peak_table() -> None:
    assert cuda_peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989e12)
    assert cuda_peak_flops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756e12)
    assert cuda_peak_flops("NVIDIA A100-SXM4-80GB", "fp16") == pytest.approx(312e12)
    assert cuda_peak_flops("NVIDIA H100 80GB HBM3", "fp32") is None
    assert cuda_peak_flops("NVIDIA L40S", "bf16") is None  # not an L4
    assert cuda_peak_flops("Some Future GPU", "bf16") is None


def test_memory_meter_sees_a_cpu_allocation() -> None:
    """The sampling thread catches a 64 MiB block that is freed before the meter closes.

    The block is held until the thread has taken two samples after it was touched (the first may have
    begun before), however long that takes on this machine; the peak can then come from the samples only.
    """
    import time

    with MemoryMeter(torch.device("cpu"), interval=0.001) as meter:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        seen = meter.samples
        deadline = time.monotonic() + 120  # only a meter whose thread never samples gets here
        while meter.samples < seen + 2:
            assert time.monotonic() < deadline, "the meter's sampling thread took no sample"
            time.sleep(0.001)
        del block
    assert meter.peak is not None and meter.peak >= 48 * 2**20


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("steps", 0, "--steps"),
        ("batch_size", 1, "--batch-size"),
        ("warmup", -1, "--warmup"),
        ("threads", 0, "--threads"),
    ],
)
def test_bad_settings_name_the_option(field: str, value: int, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        BenchConfig(**{field: value}).validate()


def test_bench_without_warmup(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    args = _bench_args(tiny_bert, small_corpus, tmp_path, "--quiet")
    args[args.index("--warmup") + 1] = "0"
    args[args.index("--repeats") + 1] = "1"
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [b["framework"] for b in report["timeline"]] == [SMOOTHCSE, SENTENCE_TRANSFORMERS]


@pytest.mark.parametrize("option", ["--json", "--markdown"])
def test_an_output_that_cannot_be_written_stops_the_bench_before_it_runs(tmp_path: Path, option: str) -> None:
    """Checked first, like every command's outputs: nothing is loaded or timed for a file it cannot write."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(bench, ["--model", str(tmp_path / "no-such-model"), option, str(blocker / "out")])
    message = f"{result.output}{result.exception}"
    assert result.exit_code != 0
    assert "cannot write there" in message and "Nothing was run" in message, message
