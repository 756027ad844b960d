"""The fast path computes what the plain eager step computes.

- Length-sorted forwards (:class:`~smoothcse.data.views.ViewLayout`): same embeddings, loss and
  gradients as one padded forward, for several poolers and objectives. Dropout is off in these
  comparisons: forwards of other shapes draw other dropout masks, so with dropout on only the
  distribution is the same (benchmarks/loss_curves.py compares the two curves over training).
- Bucketed lengths under ``torch.compile``: same results, and the graphs are reused.
- The prefetching loader yields the batches the loop would collate itself, in order.

Tolerances (float32): the layout only reorders sums, ``rtol 1e-5, atol 1e-6``; inductor also fuses
and reorders reductions, ``rtol 1e-4, atol 1e-5``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcse.config import TrainConfig
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus
from smoothcse.data.loader import BatchLoader
from smoothcse.data.views import ViewLayout, encode_views
from smoothcse.model.encoder import load_encoder
from smoothcse.objectives import ObjectiveConfig, build_objective
from smoothcse.training.distributed import DistInfo
from smoothcse.training.loop import train
from smoothcse.training.run import COMPILE_PAD_MULTIPLE, compile_model, view_layout
from smoothcse.training.steps import contrastive_step
from tests.helpers import (
    COMPILE_TOLERANCE,
    TIGHT,
    build_tiny_model,
    read_metrics,
    step_terms_and_grads,
    tiny_train_config,
)

LAYOUT_TOLERANCE = TIGHT


def _corpus(encoder, corpus_path: Path, tmp_path: Path, max_len: int = 32) -> TokenizedCorpus:
    return TokenizedCorpus.build(corpus_path, encoder.tokenizer, max_len, cache_dir=tmp_path / "cache", progress=False)


def _no_dropout_encoder(tiny_bert: Path, pooler: str):
    return load_encoder(str(tiny_bert), pooler=pooler, hidden_dropout=0.0, attention_dropout=0.0).train()


# ------------------------------------------------------------------------------------- the layout


@pytest.mark.parametrize("rows_per_forward", [1, 5, 16, 31])
@pytest.mark.parametrize("pad_multiple", [1, 8])
def test_every_row_is_encoded_once_in_length_sorted_forwards(rows_per_forward: int, pad_multiple: int) -> None:
    lengths = np.random.default_rng(0).integers(3, 30, size=23)
    plan = ViewLayout(rows_per_forward, pad_multiple).forwards(lengths, width=29)
    rows = np.concatenate([rows for rows, _ in plan])
    assert sorted(rows.tolist()) == list(range(46))  # [x; x]: both views of every sentence, once each
    assert all(len(r) <= rows_per_forward for r, _ in plan)
    doubled = np.concatenate([lengths, lengths])
    assert np.all(np.diff(doubled[rows]) <= 0)  # longest first
    for rows, width in plan:
        longest = doubled[rows].max()
        assert longest <= width <= 29  # never cuts a sentence, never wider than the batch
        assert width == 29 or width % pad_multiple == 0
        assert width - longest < pad_multiple


def test_the_default_layout_is_one_forward_as_collated() -> None:
    lengths = np.array([5, 9, 7])
    assert ViewLayout().plain
    assert [(r.tolist(), w) for r, w in ViewLayout().forwards(lengths, width=12)] == [([0, 1, 2, 3, 4, 5], 9)]
    assert len(ViewLayout(rows_per_forward=6).forwards(lengths, width=12)) == 1


def test_auto_layout_per_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert view_layout(TrainConfig(), cpu) == ViewLayout(32, 1)
    assert view_layout(TrainConfig(), cuda) == ViewLayout(0, 1)
    assert view_layout(TrainConfig(rows_per_forward=32, compile=True), cuda) == ViewLayout(32, COMPILE_PAD_MULTIPLE)
    assert view_layout(TrainConfig(fast_path=False, rows_per_forward=32), cpu).plain


@pytest.mark.parametrize("pooler", ["cls", "avg", "avg_first_last"])
def test_length_sorted_forwards_give_the_same_embeddings(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, pooler: str
) -> None:
    encoder = _no_dropout_encoder(tiny_bert, pooler)
    corpus = _corpus(encoder, small_corpus, tmp_path)
    indices = BatchSchedule(len(corpus), 24, seed=1).batch(0)
    ids, mask = corpus.collate(indices)
    lengths = corpus.lengths_of(indices)
    assert len(set(lengths.tolist())) > 3  # the batch really has different lengths to sort
    np.testing.assert_array_equal(lengths, mask.sum(1).numpy())
    with torch.no_grad():
        plain = encode_views(encoder, ids, mask)
        for layout in (ViewLayout(16), ViewLayout(7, 8), ViewLayout(1)):
            sorted_views = encode_views(encoder, ids, mask, lengths, layout)
            for a, b in zip(sorted_views, plain):
                torch.testing.assert_close(a, b, **LAYOUT_TOLERANCE)
        # a CPU batch without host lengths: read from the mask, same result
        for a, b in zip(encode_views(encoder, ids, mask, None, ViewLayout(16)), plain):
            torch.testing.assert_close(a, b, **LAYOUT_TOLERANCE)


@pytest.mark.parametrize(("model_type", "shares_lookup"), [("roberta", True), ("distilbert", False)])
def test_other_architectures_on_the_fast_path(
    small_corpus: Path, tmp_path: Path, model_type: str, shares_lookup: bool
) -> None:
    """RoBERTa numbers positions from the ids' padding: a shared word-embedding lookup must not change
    real tokens' positions. DistilBERT is not given word embeddings (its own lookup per forward)."""
    folder = build_tiny_model(tmp_path / model_type, model_type)
    encoder = load_encoder(str(folder), pooler="avg", hidden_dropout=None).train()
    for module in encoder.modules():  # dropout off, whatever the config calls it
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if hasattr(encoder.backbone.config, "attention_dropout"):
        encoder.backbone.config.attention_dropout = 0.0
    if hasattr(encoder.backbone.config, "attention_probs_dropout_prob"):
        encoder.backbone.config.attention_probs_dropout_prob = 0.0
    assert encoder.takes_word_embeddings == shares_lookup
    corpus = _corpus(encoder, small_corpus, tmp_path)
    indices = BatchSchedule(len(corpus), 24, seed=1).batch(0)
    ids, mask = corpus.collate(indices)
    with torch.no_grad():
        plain = encode_views(encoder, ids, mask)
        for a, b in zip(encode_views(encoder, ids, mask, corpus.lengths_of(indices), ViewLayout(8)), plain):
            torch.testing.assert_close(a, b, **LAYOUT_TOLERANCE)


@pytest.mark.parametrize(
    ("pooler", "spec"),
    [("cls", "simcse"), ("avg", "simcse"), ("cls", "simcse+gs+is+soft-weight"), ("avg", "simcse+soft-temp")],
)
def test_fast_step_equals_the_eager_step(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, pooler: str, spec: str
) -> None:
    encoder = _no_dropout_encoder(tiny_bert, pooler)
    corpus = _corpus(encoder, small_corpus, tmp_path)
    indices = BatchSchedule(len(corpus), 24, seed=2).batch(4)
    ids, mask = corpus.collate(indices)
    eager_terms, eager_grads = step_terms_and_grads(encoder, encoder, spec, ids, mask)
    fast_terms, fast_grads = step_terms_and_grads(
        encoder, encoder, spec, ids, mask, corpus.lengths_of(indices), view_layout(TrainConfig(), torch.device("cpu"))
    )
    assert set(fast_terms) == set(eager_terms)
    assert encoder.computes_cls_only == (pooler == "cls")
    if "+is" in spec:
        assert eager_terms["is_infonce"] > 0  # the smoothing term is part of what is compared
    for name, value in eager_terms.items():
        torch.testing.assert_close(fast_terms[name], value, **LAYOUT_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")
    assert set(fast_grads) == set(eager_grads)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, **LAYOUT_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_gradient_caching_on_the_fast_path(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    """Chunks of the cached path are laid out on their own; the result is still the plain step's."""
    encoder = _no_dropout_encoder(tiny_bert, "cls")
    corpus = _corpus(encoder, small_corpus, tmp_path)
    indices = BatchSchedule(len(corpus), 24, seed=2).batch(1)
    ids, mask = corpus.collate(indices)
    eager_terms, eager_grads = step_terms_and_grads(encoder, encoder, "simcse", ids, mask)
    objective = build_objective(ObjectiveConfig(spec="simcse")).train()
    encoder.zero_grad(set_to_none=True)
    encoder.cls_only_last_layer = True
    terms = contrastive_step(
        encoder,
        objective,
        ids,
        mask,
        step=0,
        total_steps=10,
        info=DistInfo(),
        amp_dtype=None,
        mini_batch_size=10,
        lengths=corpus.lengths_of(indices),
        layout=ViewLayout(6),
    )
    torch.testing.assert_close(terms["loss"], eager_terms["loss"], **LAYOUT_TOLERANCE)
    for name, p in encoder.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, eager_grads[name], **LAYOUT_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


# ------------------------------------------------------------------------------ compiled buckets


needs_compiler = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="inductor needs a C compiler"
)


@needs_compiler
def test_compiled_bucketed_step_matches_eager(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    """What `--compile` runs (pad to max_len, lengths bucketed to multiples of 8, inductor) against eager."""
    encoder = _no_dropout_encoder(tiny_bert, "cls")
    corpus = _corpus(encoder, small_corpus, tmp_path)
    config = TrainConfig(compile=True, max_len=32)
    layout = view_layout(config, torch.device("cpu"))
    assert layout.pad_multiple == COMPILE_PAD_MULTIPLE
    compiled = compile_model(encoder, config.max_len)
    indices = BatchSchedule(len(corpus), 16, seed=0).batch(3)
    eager_terms, eager_grads = step_terms_and_grads(encoder, encoder, "simcse", *corpus.collate(indices))
    ids, mask = corpus.collate(indices, pad_to=config.max_len)
    terms, grads = step_terms_and_grads(compiled, encoder, "simcse", ids, mask, corpus.lengths_of(indices), layout)
    torch.testing.assert_close(terms["loss"], eager_terms["loss"], **COMPILE_TOLERANCE)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, **COMPILE_TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_bucketed_shapes_reuse_compiled_graphs(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    """Batches whose forwards fall in buckets already seen compile nothing new."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    encoder = _no_dropout_encoder(tiny_bert, "cls")
    corpus = _corpus(encoder, small_corpus, tmp_path)
    counter = CompileCounter()
    model = torch.compile(encoder, backend=counter, dynamic=False)
    layout = ViewLayout(rows_per_forward=8, pad_multiple=8)
    schedule = BatchSchedule(len(corpus), 16, seed=0)
    objective = build_objective(ObjectiveConfig(spec="simcse")).train()
    shapes, reused = set(), 0
    for step in range(8):
        indices = schedule.batch(step)
        ids, mask = corpus.collate(indices, pad_to=32)
        lengths = corpus.lengths_of(indices)
        new = {(len(rows), width) for rows, width in layout.forwards(lengths, 32)}
        assert {width for _, width in new} <= {8, 16, 24, 32}
        before = counter.frame_count
        contrastive_step(
            model,
            objective,
            ids,
            mask,
            step=step,
            total_steps=8,
            info=DistInfo(),
            amp_dtype=None,
            lengths=lengths,
            layout=layout,
        )
        if new <= shapes:
            assert counter.frame_count == before, f"step {step}: recompiled for shapes {new} already seen"
            reused += 1
        shapes |= new
    assert counter.frame_count > 0
    assert reused >= 2  # the check above really ran: later batches fell in buckets already compiled
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------- loader


def _collect(loader: BatchLoader) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, object]]:
    try:
        return [(b.step, b.input_ids.numpy(), b.attention_mask.numpy(), b.lengths, b.shard_sizes) for b in loader]
    finally:
        loader.close()


@pytest.mark.parametrize("info", [DistInfo(), DistInfo(rank=1, world_size=3)])
def test_prefetching_loader_yields_the_collated_batches(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, info: DistInfo
) -> None:
    encoder = load_encoder(str(tiny_bert))
    corpus = _corpus(encoder, small_corpus, tmp_path)
    schedule = BatchSchedule(len(corpus), 64, seed=5, min_batch=3)  # 600 = 9 x 64 + 24: an uneven last batch
    cpu = torch.device("cpu")
    start, stop = 6, 14  # from a resumed step, across the epoch's end
    eager = _collect(BatchLoader(corpus, schedule, start, stop, device=cpu, info=info, prefetch=0))
    ahead = _collect(BatchLoader(corpus, schedule, start, stop, device=cpu, info=info, prefetch=2))
    assert [b[0] for b in ahead] == list(range(start, stop))
    for mine, theirs in zip(ahead, eager):
        for a, b in zip(mine[1:4], theirs[1:4]):
            np.testing.assert_array_equal(a, b)
        assert mine[4] == theirs[4]
        np.testing.assert_array_equal(mine[3], mine[2].sum(1))  # host lengths = the mask's
    shard_sizes = [b[4] for b in ahead]
    assert any(s is not None for s in shard_sizes) == (info.world_size > 1)  # 64 % 3 != 0
    # what the loop collated itself before the loader existed
    from smoothcse.training.distributed import shard_slice

    for step, ids, *_ in eager:
        batch = schedule.batch(step)
        np.testing.assert_array_equal(ids, corpus.collate(batch[shard_slice(len(batch), info)])[0].numpy())


def test_a_loader_error_reaches_the_training_thread(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    encoder = load_encoder(str(tiny_bert))
    corpus = _corpus(encoder, small_corpus, tmp_path)
    schedule = BatchSchedule(len(corpus), 16, seed=0)
    loader = BatchLoader(corpus, schedule, 0, 10, device=torch.device("cpu"), prefetch=2)
    real = corpus.collate
    calls = {"n": 0}

    def failing(indices, pad_to=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk went away")
        return real(indices, pad_to=pad_to)

    corpus.collate = failing  # type: ignore[method-assign]
    seen = []
    with pytest.raises(OSError, match="disk went away"):
        for batch in loader:
            seen.append(batch.step)
    loader.close()
    assert seen == [0, 1, 2]
    assert loader._thread is None


def test_closing_a_loader_mid_epoch_stops_its_thread(tiny_bert: Path, small_corpus: Path, tmp_path: Path) -> None:
    encoder = load_encoder(str(tiny_bert))
    corpus = _corpus(encoder, small_corpus, tmp_path)
    loader = BatchLoader(corpus, BatchSchedule(len(corpus), 8, seed=0), 0, 1000, device=torch.device("cpu"), prefetch=2)
    batches = iter(loader)
    next(batches)
    thread = loader._thread
    assert thread is not None and thread.is_alive()
    loader.close()
    assert not thread.is_alive()


# -------------------------------------------------------------------------------- whole training


def test_training_on_the_fast_path_ends_where_the_eager_path_ends(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    weights, losses = {}, {}
    for fast in (True, False):
        out = tmp_path / f"run-{fast}"
        dropout_off = dict(hidden_dropout=0.0, attention_dropout=0.0)
        config = tiny_train_config(tiny_bert, small_corpus, out, log_every=1, fast_path=fast, **dropout_off)
        train(config, progress=False)
        weights[fast] = load_encoder(str(out)).state_dict()
        losses[fast] = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert len(losses[True]) == 6
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)
    # Adam turns round-off in a near-zero gradient into a step of up to lr (1e-3) per element, so a rare
    # element may differ by up to steps x lr; almost every element must agree to 2e-4 (one element of 1,024
    # in mlp.dense.weight differed by 3.2e-4 on one machine, none elsewhere). A wrong fast path moves most.
    for name, value in weights[False].items():
        difference = (weights[True][name] - value).abs()
        assert float(difference.max()) <= 6 * 1e-3, name
        assert float((difference > 2e-4).float().mean()) <= 0.01, (
            f"{name}: {int((difference > 2e-4).sum())} elements differ"
        )
