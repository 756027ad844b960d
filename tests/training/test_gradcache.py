"""Gradient caching (``--mini-batch-size``) is exact: same loss and gradients as the plain path, dropout on.

The reference is the plain full-graph path over the same global batch with the same dropout masks:
each chunk of ``m`` sentences is embedded *with* autograd, in order, starting from the same RNG
state as the cached step (so chunk k draws its masks from the same state the cached path recorded
for it), the embeddings are concatenated, the objective is computed once and backpropagated.
The cached step instead embeds without autograd, backpropagates the loss to the embeddings only and
replays each chunk under its recorded RNG state. Dropout (hidden and attention, 0.1) is on in both.

Tolerances (float32 on CPU): loss and every logged term ``rtol=1e-5, atol=1e-6``; parameter gradients
``rtol=1e-4, atol=1e-6`` (the two paths sum the same per-chunk contributions in a different order).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smoothcse.data.views import encode_views
from smoothcse.model.encoder import SentenceEncoder, load_encoder
from smoothcse.objectives import ObjectiveConfig, build_objective
from smoothcse.training.distributed import DistInfo
from smoothcse.training.steps import contrastive_step
from tests.helpers import assert_same_state

BATCH = 16
LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}
GRAD_TOL = {"rtol": 1e-4, "atol": 1e-6}

SPECS = [
    "simcse",
    "simcse+gs",
    "simcse+is",
    "simcse+soft-weight",
    "simcse+soft-temp",
    "simcse+gs+is+soft-weight",
    "simcse+gs+is+soft-temp",
]


def objective_config(spec: str) -> ObjectiveConfig:
    # a bank of exactly one batch is full at the first call, so the IS term is active;
    # strength 1 makes the SoftCSE adjustments far from neutral
    return ObjectiveConfig(spec=spec, gs_num=8, is_bank_size=BATCH, is_k=4, soft_strength=1.0, seed=7)


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> SentenceEncoder:
    model = load_encoder(str(tiny_bert), pooler="cls", hidden_dropout=0.1, attention_dropout=0.1)
    model.train()
    return model


@pytest.fixture(scope="module")
def batch(encoder: SentenceEncoder, small_corpus: Path) -> tuple[torch.Tensor, torch.Tensor]:
    lines = small_corpus.read_text(encoding="utf-8").splitlines()[:BATCH]
    tokens = encoder.tokenizer(lines, padding=True, truncation=True, max_length=24, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def cached_step(encoder, objective, ids, mask, m: int, seed: int) -> tuple[dict, dict, torch.Tensor]:
    torch.manual_seed(seed)
    terms = contrastive_step(
        encoder, objective, ids, mask, step=0, total_steps=10, info=DistInfo(), amp_dtype=None, mini_batch_size=m
    )
    return terms, gradients(encoder), torch.get_rng_state()


def reference_step(encoder, objective, ids, mask, m: int, seed: int) -> tuple[dict, dict, torch.Tensor]:
    """The plain path (one graph over the whole batch), chunk k drawing its masks from the state the cached
    path recorded."""
    torch.manual_seed(seed)
    views1, views2 = [], []
    for start in range(0, ids.shape[0], m):
        a, b = encode_views(encoder, ids[start : start + m], mask[start : start + m])  # (m, d) each, with grad
        views1.append(a)
        views2.append(b)
    terms = objective(torch.cat(views1), torch.cat(views2), step=0, total_steps=10)
    terms["loss"].backward()
    return {k: v.detach() for k, v in terms.items()}, gradients(encoder), torch.get_rng_state()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("m", [4, 5])  # 4 divides the batch; 5 leaves a last chunk of 1
def test_cached_step_matches_plain_step_with_dropout(encoder, batch, spec: str, m: int) -> None:
    ids, mask = batch
    cached_objective = build_objective(objective_config(spec)).train()
    reference_objective = build_objective(objective_config(spec)).train()

    terms, grads, rng_after = cached_step(encoder, cached_objective, ids, mask, m, seed=123)
    ref_terms, ref_grads, ref_rng_after = reference_step(encoder, reference_objective, ids, mask, m, seed=123)

    assert terms.keys() == ref_terms.keys()
    for name in terms:
        torch.testing.assert_close(terms[name], ref_terms[name], **LOSS_TOL, msg=lambda s: f"{spec}, term {name}: {s}")
    if "is" in spec:
        assert float(terms["is_infonce"]) > 0  # the smoothing term is really active
    assert grads.keys() == ref_grads.keys()
    assert len(grads) == len(list(encoder.parameters()))  # every parameter, the MLP head included
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **GRAD_TOL, msg=lambda s: f"{spec}, {name}: {s}")
    # the RNG continues as after one pass over the chunks, and the objective's state advanced once
    assert torch.equal(rng_after, ref_rng_after)
    assert_same_state(cached_objective.state_dict(), reference_objective.state_dict())


def test_dropout_masks_matter(encoder, batch) -> None:
    """Not a vacuous comparison: the masks change the loss, so matching them is what makes the paths agree."""
    ids, mask = batch
    first, _, _ = cached_step(encoder, build_objective(objective_config("simcse")), ids, mask, 4, seed=123)
    other, _, _ = cached_step(encoder, build_objective(objective_config("simcse")), ids, mask, 4, seed=124)
    assert abs(float(first["loss"]) - float(other["loss"])) > 1e-3


def test_cached_step_without_dropout_matches_the_single_graph_step(encoder, batch, tiny_bert: Path) -> None:
    """With dropout off the chunking is invisible: the cached step equals the plain one-forward step."""
    ids, mask = batch
    plain_encoder = load_encoder(str(tiny_bert), pooler="cls", hidden_dropout=0.0, attention_dropout=0.0)
    plain_encoder.mlp.load_state_dict(encoder.mlp.state_dict())
    plain_encoder.train()
    spec = "simcse+gs+is+soft-weight"
    plain = contrastive_step(
        plain_encoder,
        build_objective(objective_config(spec)).train(),
        ids,
        mask,
        step=0,
        total_steps=10,
        info=DistInfo(),
        amp_dtype=None,
    )
    plain_grads = gradients(plain_encoder)
    cached, cached_grads, _ = cached_step(
        plain_encoder, build_objective(objective_config(spec)).train(), ids, mask, 6, seed=0
    )
    torch.testing.assert_close(cached["loss"], plain["loss"], **LOSS_TOL)
    for name in plain_grads:
        torch.testing.assert_close(cached_grads[name], plain_grads[name], **GRAD_TOL, msg=lambda s: f"{name}: {s}")


def test_batch_size_grid_gives_valid_cached_configs() -> None:
    """The built-in batch-size sweep: 60 valid runs, cached above batch 128, IS bank >= every batch."""
    from smoothcse.config import build_config
    from smoothcse.experiments.grid import expand, load_grid, nested

    grid = load_grid("batch-size")
    runs = expand(grid)
    assert len(runs) == 5 * 4 * 3
    for run in runs:
        config = build_config(grid.base_recipe, overrides=nested({**grid.fixed, **run.values}))
        assert config.batch_size <= config.objective.is_bank_size
        assert config.mini_batch_size == 128  # caching takes effect only for batches above it
    assert {run.values["batch_size"] for run in runs} == {64, 128, 256, 512, 1024}
