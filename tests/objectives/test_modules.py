"""The objective modules: state (bank, noise generator), reductions to SimCSE, composition, config."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from smoothcse.errors import ConfigError
from smoothcse.objectives import (
    GaussianNegatives,
    InstanceSmoothing,
    Objective,
    ObjectiveConfig,
    SimCSE,
    SoftNegatives,
    build_objective,
    parse_spec,
)
from smoothcse.objectives.functional import (
    info_nce,
    info_nce_from_logits,
    info_nce_logits,
    pair_similarities,
    smooth_positives,
)

TAU = 0.05


def _views(
    n: int = 8, d: int = 16, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    return z1.requires_grad_(), z2.requires_grad_()


def _loss_and_grads(objective, z1, z2, **kwargs):
    out = objective(z1, z2, **kwargs)
    return (out["loss"], *torch.autograd.grad(out["loss"], (z1, z2))), out


def _assert_exactly_simcse(objective, z1, z2, **kwargs):
    got, out = _loss_and_grads(objective, z1, z2, **kwargs)
    want, _ = _loss_and_grads(SimCSE(TAU), z1, z2)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    return out


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --------------------------------------------------------------------------- SimCSE


def test_simcse_module_is_info_nce():
    z1, z2 = _views()
    out = SimCSE(TAU)(z1, z2)
    torch.testing.assert_close(out["loss"], info_nce(z1, z2, temperature=TAU), rtol=0, atol=0)
    assert set(out) == {"loss", "infonce"} and not out["infonce"].requires_grad
    assert "@inproceedings" in SimCSE().citation and "SimCSE" in SimCSE().citation


# --------------------------------------------------------------------------- GaussianNegatives


def test_gaussian_noise_is_fresh_each_step_and_seeded():
    z = torch.zeros(4, 32)
    first, second = GaussianNegatives(192, std=0.5, seed=42), GaussianNegatives(192, std=0.5, seed=42)
    a1, a2 = first(z), first(z)
    assert a1.shape == (192, 32) and not a1.requires_grad
    assert not torch.equal(a1, a2)  # fresh noise every step
    # Same seed, same calls: identical noise (as on every rank of a distributed run).
    assert torch.equal(second(z), a1) and torch.equal(second(z), a2)
    assert not torch.equal(GaussianNegatives(192, seed=7)(z), a1)


def test_gaussian_generator_state_round_trips_through_state_dict():
    z = torch.zeros(4, 32)
    noise = GaussianNegatives(16, std=0.5, seed=3)
    for _ in range(3):
        noise(z)
    state = _roundtrip(noise.state_dict())
    expected = [noise(z) for _ in range(2)]

    restored = GaussianNegatives(16, std=0.5, seed=999)  # the checkpoint's seed and stream win
    restored.load_state_dict(state)
    assert torch.equal(restored(z), expected[0]) and torch.equal(restored(z), expected[1])
    # A module whose generator was never used round-trips to the seeded start.
    fresh = GaussianNegatives(16, seed=5)
    again = GaussianNegatives(16, seed=0)
    again.load_state_dict(fresh.state_dict())
    assert torch.equal(again(z), GaussianNegatives(16, seed=5)(z))


def test_gs_with_no_noise_vectors_is_exactly_simcse():
    z1, z2 = _views()
    out = _assert_exactly_simcse(Objective(TAU, gaussian=GaussianNegatives(0)), z1, z2)
    assert out["gs_mass"].item() == 0.0


def test_gs_objective_equals_info_nce_with_the_same_noise():
    z1, z2 = _views()
    out = Objective(TAU, gaussian=GaussianNegatives(12, std=0.5, seed=1))(z1, z2)
    extra = GaussianNegatives(12, std=0.5, seed=1)(z1)
    torch.testing.assert_close(out["loss"], info_nce(z1, z2, extra_negatives=extra), rtol=0, atol=0)
    assert 0 < out["gs_mass"].item() < 1


# --------------------------------------------------------------------------- InstanceSmoothing: the bank


def _rows(n: int, d: int = 4, start: int = 0) -> torch.Tensor:
    """Distinct unit rows e_0.. along a fixed random basis, recognisable by their index."""
    basis = torch.nn.functional.normalize(torch.randn(64, d, generator=torch.Generator().manual_seed(0)), dim=-1)
    return basis[start : start + n].clone()


def test_bank_is_fifo_and_wraps_around_without_dropping_rows():
    bank = InstanceSmoothing(bank_size=8, k=2)
    bank.train()
    with torch.enable_grad():
        bank(_rows(3, start=0))
        assert (bank.pointer, bank.filled) == (3, 3)
        torch.testing.assert_close(bank.contents(), _rows(3, start=0))
        bank(_rows(3, start=3))
        bank(_rows(3, start=6))  # crosses the end: 2 rows at the tail, 1 at the head
        assert (bank.pointer, bank.filled) == (1, 8)
        torch.testing.assert_close(bank.contents(), _rows(8, start=1))  # oldest (row 0) evicted, order kept
        torch.testing.assert_close(bank.bank[0], _rows(1, start=8)[0])
        bank(_rows(8, start=10))  # a batch the size of the bank replaces it entirely
        torch.testing.assert_close(bank.contents(), _rows(8, start=10))


def test_bank_is_pushed_before_the_search():
    # A bank exactly one batch long is full after the first push, so the very first call smooths,
    # and every row finds itself at rank 0 (it is dropped: the neighbours are the other rows).
    smoothing = InstanceSmoothing(bank_size=6, k=3, scale=2.0)
    positives = torch.randn(6, 8, dtype=torch.float64)
    out = smoothing(positives)
    assert out is not None and smoothing.is_full
    bank = torch.nn.functional.normalize(positives, dim=-1)
    torch.testing.assert_close(out, smooth_positives(positives, bank, k=3, scale=2.0), rtol=0, atol=0)
    assert torch.equal(smoothing.contents(), bank)


def test_bank_batch_larger_than_bank_is_a_config_error():
    with pytest.raises(ConfigError, match="is_bank_size"):
        InstanceSmoothing(bank_size=8, k=2)(torch.randn(9, 4))


def test_evaluation_never_changes_the_bank():
    smoothing = InstanceSmoothing(bank_size=12, k=2)
    for start in (0, 4, 8, 12):
        smoothing(_rows(4, start=start))  # training mode: fills and wraps
    before = (smoothing.bank.clone(), smoothing.pointer, smoothing.filled)
    probe = _rows(4, start=30)
    smoothing.eval()
    out_eval = smoothing(probe)
    smoothing.train()
    with torch.no_grad():
        out_no_grad = smoothing(probe)
    assert torch.equal(smoothing.bank, before[0]) and (smoothing.pointer, smoothing.filled) == before[1:]
    # Evaluation still searches a bank that holds the batch, as training would.
    assert out_eval is not None and torch.equal(out_eval, out_no_grad)
    smoothing(probe)  # now a training push
    assert not torch.equal(smoothing.bank, before[0])


def test_evaluation_with_an_unfilled_bank_gives_no_term_and_no_change():
    objective = build_objective(ObjectiveConfig(spec="is", is_bank_size=32, is_k=2)).eval()
    z1, z2 = _views(n=8)
    out = objective(z1, z2)
    assert out["is_infonce"].item() == 0.0 and objective.smoothing.filled == 0


def test_bank_is_persistent_state_and_round_trips():
    smoothing = InstanceSmoothing(bank_size=10, k=2)
    for start in (0, 4, 8):
        smoothing(_rows(4, start=start))
    state = _roundtrip(smoothing.state_dict())
    assert "bank" in state and state["bank"].shape == (10, 4)

    restored = InstanceSmoothing(bank_size=10, k=2)  # width unknown until loaded
    restored.load_state_dict(state)
    assert torch.equal(restored.bank, smoothing.bank)
    assert (restored.pointer, restored.filled) == (smoothing.pointer, smoothing.filled)
    probe = _rows(4, start=20)
    torch.testing.assert_close(restored(probe), smoothing(probe), rtol=0, atol=0)
    assert torch.equal(restored.bank, smoothing.bank)


# --------------------------------------------------------------------------- InstanceSmoothing in the objective


def test_is_term_is_exactly_zero_until_the_bank_is_full():
    objective = build_objective(ObjectiveConfig(spec="simcse+is", is_bank_size=24, is_k=4))
    for step in range(2):  # 8 + 8 rows < 24: still filling
        z1, z2 = _views(n=8, seed=step)
        out = _assert_exactly_simcse(objective, z1, z2, step=step, total_steps=10)
        assert out["is_infonce"].item() == 0.0
    z1, z2 = _views(n=8, seed=2)
    out = objective(z1, z2, step=2, total_steps=10)  # the push fills the bank: the term starts
    assert out["is_infonce"].item() > 0
    torch.testing.assert_close(out["loss"].detach(), out["infonce"] + 0.1 * out["is_infonce"])


def test_is_with_alpha_zero_is_exactly_simcse_but_keeps_filling_the_bank():
    objective = build_objective(ObjectiveConfig(spec="is", is_bank_size=8, is_k=2, is_alpha=0.0))
    for step in range(3):
        z1, z2 = _views(n=8, seed=step)
        _assert_exactly_simcse(objective, z1, z2, step=step, total_steps=3)
    assert objective.smoothing.is_full


def test_is_cos_schedule_through_the_objective():
    objective = build_objective(ObjectiveConfig(spec="is", is_bank_size=16, is_k=2, is_alpha_schedule="cos"))
    z1, z2 = _views(n=8)
    alphas = [objective(z1, z2, step=t, total_steps=100)["is_alpha"].item() for t in (0, 50, 100)]
    assert alphas == pytest.approx([0.005, 0.05, 0.05])


# --------------------------------------------------------------------------- SoftNegatives


@pytest.mark.parametrize("variant", ["weight", "temperature"])
@pytest.mark.parametrize("direction", ["down", "up"])
def test_soft_strength_zero_is_exactly_simcse(variant, direction):
    soft = SoftNegatives(variant, direction=direction, strength=0.0, temperature=TAU)
    z1, z2 = _views()
    _assert_exactly_simcse(Objective(TAU, soft=soft), z1, z2)


@pytest.mark.parametrize("direction", ["down", "up"])
def test_soft_linear_form_at_strength_zero_is_exactly_simcse_and_built_from_the_config(direction):
    soft = SoftNegatives("weight", direction=direction, strength=0.0, temperature=TAU, weight_form="linear")
    z1, z2 = _views()
    _assert_exactly_simcse(Objective(TAU, soft=soft), z1, z2)
    objective = build_objective(
        ObjectiveConfig(spec="simcse+soft-weight", soft_weight_form="linear", soft_strength=0.5)
    )
    assert objective.soft.weight_form == "linear" and "form=linear" in repr(objective)
    with pytest.raises(ConfigError, match="soft_strength"):
        ObjectiveConfig(spec="simcse+soft-weight", soft_weight_form="linear", soft_strength=2.0).validate()
    with pytest.raises(ConfigError, match="soft_weight_form"):
        ObjectiveConfig(soft_weight_form="cubic").validate()


@pytest.mark.parametrize("variant", ["weight", "temperature", "linear"])
def test_soft_direction_changes_how_hard_near_negatives_are_pushed(variant):
    # Anchor 0 has one near negative (column 1); "up" must push it harder than SimCSE, "down"
    # less: compare d loss / d s_01 (> 0: the loss falls when s_01 falls). The linear form is not
    # renormalised, so there the push on s_01 is compared relative to the farthest negative's.
    z1, z2 = _views(n=6, d=16, seed=3)
    with torch.no_grad():
        z2[1] = z1[0] + 0.1 * z2[1]

    def push(soft: SoftNegatives | None) -> float:
        sim = pair_similarities(z1, z2).detach().requires_grad_()  # (N, N)
        adjust = soft(sim) if soft is not None else {}
        loss = info_nce_from_logits(info_nce_logits(sim, temperature=TAU, **adjust))
        (grad,) = torch.autograd.grad(loss, sim)
        if variant == "linear":  # unnormalised weights scale every negative: compare near with farthest
            far = int(sim[0, 2:].argmin()) + 2
            return grad[0, 1].item() / grad[0, far].item()
        return grad[0, 1].item()

    kind, form = ("weight", "linear") if variant == "linear" else (variant, "exp")
    down, up = (
        push(SoftNegatives(kind, direction=d, strength=1.0, temperature=TAU, weight_form=form)) for d in ("down", "up")
    )
    assert down < push(None) < up


# --------------------------------------------------------------------------- composition


def test_combined_objective_equals_the_functional_composition():
    config = ObjectiveConfig(spec="simcse+gs+is+soft-weight", gs_num=10, is_bank_size=8, is_k=3, seed=4)
    objective = build_objective(config)
    z1, z2 = _views(n=8)
    out = objective(z1, z2, step=0, total_steps=10)  # bank of 8 is full after this push

    extra = GaussianNegatives(10, std=config.gs_std, seed=4)(z1)
    soft = SoftNegatives("weight", direction=config.soft_direction, strength=config.soft_strength, temperature=TAU)
    log_w = soft(pair_similarities(z1, z2, extra))["neg_log_weights"]
    bank = torch.nn.functional.normalize(z2.detach(), dim=-1)
    smoothed = smooth_positives(z2, bank, k=3, scale=2.0)
    first = info_nce(z1, z2, extra_negatives=extra, neg_log_weights=log_w)
    second = info_nce(z1, smoothed, extra_negatives=extra, neg_log_weights=log_w)
    torch.testing.assert_close(out["infonce"], first.detach(), rtol=0, atol=0)
    torch.testing.assert_close(out["is_infonce"], second.detach(), rtol=0, atol=0)
    torch.testing.assert_close(out["loss"], first + 0.1 * second, rtol=1e-15, atol=0)


@pytest.mark.parametrize("spec", ["simcse+gs+is+soft-weight", "gs+is+soft-temp"])
def test_all_components_together_train_with_finite_values_and_named_terms(spec):
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh())
    objective = build_objective(ObjectiveConfig(spec=spec, gs_num=32, is_bank_size=24, is_k=4))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    x = torch.randn(8, 16)
    for step in range(5):
        z1 = head(torch.nn.functional.dropout(x, 0.1))
        z2 = head(torch.nn.functional.dropout(x, 0.1))
        out = objective(z1, z2, step=step, total_steps=5)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in head.parameters())
        optimizer.step()
    soft_terms = {"soft_weight_min", "soft_weight_max"} if "weight" in spec else {"soft_temp_min", "soft_temp_max"}
    assert set(out) == {"loss", "infonce", "gs_mass", "is_infonce", "is_alpha"} | soft_terms
    assert all(torch.isfinite(value).all() for value in out.values())
    assert out["is_infonce"].item() > 0  # the bank of 24 filled at step 2
    assert out["loss"].requires_grad and not out["infonce"].requires_grad


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_combined_objective_in_low_precision_is_finite_and_close_to_float32(dtype):
    z1, z2 = _views(n=16, d=32, dtype=torch.float32)
    config = ObjectiveConfig(spec="gs+is+soft-weight", gs_num=16, is_bank_size=16, is_k=4)
    loss32 = build_objective(config)(z1, z2)["loss"]
    loss16 = build_objective(config)(z1.to(dtype), z2.to(dtype))["loss"]
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    torch.testing.assert_close(loss16, loss32, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize(
    "spec", ["simcse", "simcse+gs+is+soft-weight", "simcse+gs+is+soft-temp", "simcse+is+soft-weight"]
)
def test_every_component_accepts_fp16_and_keeps_float32_state(spec):
    """fp16 embeddings (what a model run under fp16 autocast produces) through each component: a float32 loss and
    terms, all finite, close to the float32 embeddings' loss; finite fp16 gradients; the IS-CSE bank and the
    Gaussian negatives in float32 (the precision the loss is computed in), not fp16."""
    form = {"soft_weight_form": "exp"} if spec.endswith("+is+soft-weight") else {}
    config = ObjectiveConfig(spec=spec, gs_num=16, is_bank_size=16, is_k=4, **form)
    z1, z2 = _views(n=16, d=32, dtype=torch.float32)
    full, half = build_objective(config), build_objective(config)
    h1, h2 = z1.detach().half().requires_grad_(), z2.detach().half().requires_grad_()
    for step in range(2):  # the bank of 16 is full from the first push: the IS term is live at both steps
        reference = full(z1, z2, step=step, total_steps=2)
        out = half(h1, h2, step=step, total_steps=2)
        assert out["loss"].dtype == torch.float32 and set(out) == set(reference)
        assert all(torch.isfinite(value).all() for value in out.values())
        torch.testing.assert_close(out["loss"], reference["loss"], rtol=1e-2, atol=1e-2)
    out["loss"].backward()
    assert h1.grad is not None and h1.grad.dtype == torch.float16 and torch.isfinite(h1.grad).all()
    assert h2.grad is not None and torch.isfinite(h2.grad).all() and h2.grad.abs().sum() > 0
    if "+is" in spec:
        assert half.smoothing.bank.dtype == torch.float32 and out["is_infonce"] > 0
    if "+gs" in spec:
        assert half.gaussian(h1).dtype == torch.float32


def test_fp16_autocast_leaves_the_objective_in_float32():
    """Under fp16 autocast (CPU here; the same code path as CUDA's) the objective gives exactly its float32 result."""
    z1, z2 = _views(n=16, d=32, dtype=torch.float32)
    config = ObjectiveConfig(spec="simcse+gs+is+soft-weight", gs_num=16, is_bank_size=16, is_k=4)
    reference = build_objective(config)(z1, z2)
    with torch.autocast("cpu", dtype=torch.float16):
        out = build_objective(config)(z1, z2)
    assert out["loss"].dtype == torch.float32
    for name, value in reference.items():
        torch.testing.assert_close(out[name], value, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_objective_state_dict_holds_bank_and_noise_stream():
    config = ObjectiveConfig(spec="gs+is", gs_num=8, is_bank_size=16, is_k=2)
    objective = build_objective(config)
    for seed in range(3):
        objective(*_views(n=8, seed=seed))
    state = _roundtrip(objective.state_dict())
    assert {"gaussian._extra_state", "smoothing.bank", "smoothing._extra_state"} <= set(state)
    resumed = build_objective(config)
    resumed.load_state_dict(state)
    z1, z2 = _views(n=8, seed=9)
    torch.testing.assert_close(resumed(z1, z2)["loss"], objective(z1, z2)["loss"], rtol=0, atol=0)


# --------------------------------------------------------------------------- config


def test_config_field_names_and_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(ObjectiveConfig)}
    assert defaults == {
        "spec": "simcse",
        "temperature": 0.05,
        "gs_num": 192,
        "gs_std": 0.5,
        "is_bank_size": 1024,
        "is_k": 16,
        "is_scale": 2.0,
        "is_alpha": 0.1,
        "is_alpha_schedule": "constant",
        "is_alpha_start": 0.005,
        "is_alpha_end": 0.05,
        "soft_direction": "down",
        "soft_strength": 1.0,
        "soft_weight_form": "linear",
        "soft_tau_min": 0.025,
        "soft_tau_max": 0.1,
        "soft_similarity": "student",
        "distill_weight": 1.0,
        "distill_temperature": 0.05,
        "seed": 42,
    }
    assert isinstance(build_objective(ObjectiveConfig()), SimCSE)


def test_spec_parsing():
    assert parse_spec("simcse") == ("simcse",)
    assert parse_spec("IS + gs") == ("simcse", "gs", "is")
    assert parse_spec("soft-temp") == ("simcse", "soft-temp")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("simcse+gss", "Did you mean 'gs'"),
        ("simcse+soft-weigth", "Did you mean 'soft-weight'"),
        ("simcse+mlm", "Valid components: simcse, gs, is, soft-weight, soft-temp"),
        ("gs++is", "empty component"),
        ("gs+gs", "twice"),
        ("soft-weight+soft-temp", "choose one"),
    ],
)
def test_bad_spec_is_a_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(ObjectiveConfig(spec=spec))


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"temperature": -0.05}, "temperature"),
        ({"temperature": 0.0}, "temperature"),
        ({"gs_num": -1}, "gs_num"),
        ({"gs_std": 0.0}, "gs_std"),
        ({"spec": "is", "is_k": 1024}, "is_k"),
        ({"is_scale": 0.0}, "is_scale"),
        ({"is_alpha": -0.1}, "is_alpha"),
        ({"is_alpha_schedule": "cosine"}, "is_alpha_schedule"),
        ({"soft_direction": "sideways"}, "soft_direction"),
        ({"soft_strength": -1.0}, "soft_strength"),
        ({"spec": "soft-temp", "soft_tau_max": 0.04}, "soft_tau_min"),
        ({"gs_num": 1.5}, "gs_num"),
    ],
)
def test_bad_values_are_config_errors_naming_the_option(changes, option):
    with pytest.raises(ConfigError, match=option):
        dataclasses.replace(ObjectiveConfig(), **changes).validate()


def test_citations_cover_every_component():
    objective = build_objective(ObjectiveConfig(spec="gs+is+soft-weight"))
    citation = objective.citation
    for title in ("SimCSE", "Smoothed Contrastive Learning", "Instance Smoothed", "Not All Negatives"):
        assert title in citation
    assert citation.count("@inproceedings") == 4
