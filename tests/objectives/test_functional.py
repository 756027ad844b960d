"""The objectives' mathematics against naive references, hand-worked values and SimCSE itself."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from smoothcse.objectives.functional import (
    cosine_alpha,
    gaussian_negatives,
    info_nce,
    pair_similarities,
    similarity_distillation,
    smooth_positives,
    soft_negative_linear_log_weights,
    soft_negative_log_weights,
    soft_pair_temperatures,
)

TAU = 0.05


def _inputs(n: int = 5, d: int = 4, m: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    positives = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    extra = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    return anchors, positives, extra


def _naive_info_nce(anchors, positives, extra=None, log_weights=None, temperatures=None, tau=TAU):
    """InfoNCE written pair by pair with scalar operations: the reference."""
    columns = [positives[j] for j in range(positives.shape[0])]
    if extra is not None:
        columns += [extra[k] for k in range(extra.shape[0])]
    total = 0.0
    for i in range(anchors.shape[0]):
        a = anchors[i]
        terms = []
        for j, c in enumerate(columns):
            cos = (a * c).sum() / (a.norm() * c.norm())
            t = tau if temperatures is None else temperatures[i, j]
            logit = cos / t + (0.0 if log_weights is None else log_weights[i, j])
            terms.append(logit)
        denominator = sum(torch.exp(x) for x in terms)
        total = total - torch.log(torch.exp(terms[i]) / denominator)
    return total / anchors.shape[0]


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("variant", ["plain", "extra", "log_weights", "temperatures", "all"])
def test_info_nce_matches_naive_loop_loss_and_gradients(variant):
    anchors, positives, extra = _inputs()
    n, m = anchors.shape[0], extra.shape[0]
    g = torch.Generator().manual_seed(1)
    use_extra = variant in ("extra", "all")
    cols = n + (m if use_extra else 0)
    log_w = torch.randn(n, cols, generator=g, dtype=torch.float64) if variant in ("log_weights", "all") else None
    temps = (
        torch.empty(n, cols, dtype=torch.float64).uniform_(0.03, 0.2, generator=g)
        if variant in ("temperatures", "all")
        else None
    )
    kwargs = {"extra_negatives": extra if use_extra else None, "neg_log_weights": log_w, "pair_temperatures": temps}
    loss = info_nce(anchors, positives, temperature=TAU, **kwargs)
    reference = _naive_info_nce(anchors, positives, extra if use_extra else None, log_w, temps)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-12)
    tensors = [anchors, positives] + ([extra] if use_extra else [])
    for got, want in zip(_grads(loss, tensors), _grads(reference, tensors), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _assert_same_loss_and_grads(loss_a, loss_b, tensors):
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    for got, want in zip(_grads(loss_a, tensors), _grads(loss_b, tensors), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("neutral", ["no_extra_rows", "zero_log_weights", "all_pair_temperatures_tau"])
def test_info_nce_neutral_settings_are_exactly_simcse(neutral):
    anchors, positives, _ = _inputs(n=6, d=8)
    n = anchors.shape[0]
    kwargs = {
        "no_extra_rows": {"extra_negatives": torch.empty(0, 8, dtype=torch.float64)},
        "zero_log_weights": {"neg_log_weights": torch.zeros(n, n, dtype=torch.float64)},
        "all_pair_temperatures_tau": {"pair_temperatures": torch.full((n, n), TAU, dtype=torch.float64)},
    }[neutral]
    simcse = info_nce(anchors, positives, temperature=TAU)
    _assert_same_loss_and_grads(info_nce(anchors, positives, temperature=TAU, **kwargs), simcse, [anchors, positives])


@pytest.mark.parametrize("n", [2, 7, 64])
@pytest.mark.parametrize("m", [0, 5, 192])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_all_equal_embeddings_give_log_of_the_column_count(n, m, tau):
    vector = torch.randn(1, 16, dtype=torch.float64)
    z = vector.expand(n, 16)
    extra = vector.expand(m, 16) * 3.0 if m else None  # any positive multiple: same direction
    loss = info_nce(z, z, temperature=tau, extra_negatives=extra)
    assert loss.item() == pytest.approx(math.log(n + m), rel=1e-12)


def test_gaussian_std_does_not_change_the_loss_for_fixed_directions():
    anchors, positives, _ = _inputs(n=8, d=32)
    draws = [
        gaussian_negatives(50, 32, std=std, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        for std in (1.0, 0.5, 0.1, 7.0)
    ]
    # The same generator state gives the same directions: each draw is std times the std-1 draw.
    for draw, std in zip(draws, (1.0, 0.5, 0.1, 7.0), strict=True):
        torch.testing.assert_close(draw, draws[0] * std)
    losses = [info_nce(anchors, positives, extra_negatives=draw) for draw in draws]
    for loss in losses[1:]:
        torch.testing.assert_close(loss, losses[0], rtol=1e-12, atol=0)
    # ... and the noise matters: without it the loss differs.
    assert not torch.allclose(info_nce(anchors, positives), losses[0])


def test_gaussian_negatives_shape_scale_seed_and_no_grad():
    noise = gaussian_negatives(4000, 64, std=0.5, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (4000, 64) and noise.dtype == torch.float32 and not noise.requires_grad
    assert noise.std().item() == pytest.approx(0.5, rel=0.02)
    assert noise.mean().abs().item() < 0.01
    again = gaussian_negatives(4000, 64, std=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)
    assert gaussian_negatives(0, 64).shape == (0, 64)
    with pytest.raises(ValueError):
        gaussian_negatives(3, 64, std=0.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_inputs_give_finite_float32_results_close_to_float32(dtype):
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(32, 64, generator=g)
    positives = anchors + 0.3 * torch.randn(32, 64, generator=g)
    extra = torch.randn(16, 64, generator=g)
    reference = info_nce(anchors, positives, extra_negatives=extra)

    a16 = anchors.to(dtype).requires_grad_()
    p16 = positives.to(dtype).requires_grad_()
    loss16 = info_nce(a16, p16, extra_negatives=extra.to(dtype))
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    # The computation itself is float32: bf16/fp16 inputs give exactly the loss of their float32 values.
    assert torch.equal(loss16, info_nce(a16.float(), p16.float(), extra_negatives=extra.to(dtype).float()))
    # The only error left is the inputs' rounding: agreement to bf16 precision (fp16 rounds less).
    torch.testing.assert_close(loss16, reference, rtol=2e-2, atol=2e-2)
    loss16.backward()
    assert a16.grad.dtype == dtype and torch.isfinite(a16.grad.float()).all()
    assert torch.isfinite(p16.grad.float()).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_does_not_lower_the_loss_precision(dtype):
    g = torch.Generator().manual_seed(0)
    anchors, positives = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    reference = info_nce(anchors, positives)
    with torch.autocast("cpu", dtype=dtype):
        sim = pair_similarities(anchors, positives)
        loss = info_nce(anchors, positives)
    assert sim.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.equal(loss, reference)


def test_info_nce_rejects_mismatched_shapes():
    anchors, positives, extra = _inputs()
    with pytest.raises(ValueError, match="same number of rows"):
        info_nce(anchors, positives[:3])
    with pytest.raises(ValueError, match="neg_log_weights"):
        info_nce(anchors, positives, neg_log_weights=torch.zeros(5, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="dimension"):
        info_nce(anchors, positives, extra_negatives=torch.zeros(2, 9, dtype=torch.float64))


# --------------------------------------------------------------------------- smooth_positives


def _bank_with(positives: torch.Tensor, others: int, seed: int = 0) -> torch.Tensor:
    """A normalised bank: ``others`` random rows, then this batch's normalised positives."""
    g = torch.Generator().manual_seed(seed)
    past = torch.randn(others, positives.shape[1], generator=g, dtype=positives.dtype)
    past = torch.nn.functional.normalize(past, dim=-1)
    return torch.cat([past, torch.nn.functional.normalize(positives.detach(), dim=-1)])


def _naive_smooth(positives, bank, k, scale, own_rows):
    """Per row: exclude the row's own bank entry by index, take the k best others, attend."""
    out = []
    for i in range(positives.shape[0]):
        p = positives[i] / positives[i].norm()
        scores = [(float((p.detach() * bank[r]).sum()), r) for r in range(bank.shape[0]) if r != own_rows[i]]
        nearest = [r for _, r in sorted(scores, reverse=True)[:k]]
        group = [p] + [bank[r].detach() for r in nearest]
        logits = torch.stack([(p * member).sum() / scale for member in group])
        weights = torch.softmax(logits, dim=0)
        out.append(sum(w * member for w, member in zip(weights, group, strict=True)))
    return torch.stack(out)


@pytest.mark.parametrize("k, scale", [(4, 2.0), (1, 0.5), (10, 2.0)])
def test_smooth_positives_matches_naive_loop_and_skips_itself(k, scale):
    g = torch.Generator().manual_seed(5)
    positives = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    bank = _bank_with(positives, others=20)
    own_rows = [20 + i for i in range(6)]  # where each positive sits in the bank
    got = smooth_positives(positives, bank, k=k, scale=scale)
    want = _naive_smooth(positives, bank, k, scale, own_rows)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    probe = torch.randn(6, 8, generator=g, dtype=torch.float64)
    (grad_got,) = torch.autograd.grad((got * probe).sum(), positives)
    (grad_want,) = torch.autograd.grad((want * probe).sum(), positives)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-10, atol=1e-12)


def test_smooth_positives_gradient_flows_only_through_the_positive():
    g = torch.Generator().manual_seed(6)
    positives = torch.randn(4, 8, generator=g, dtype=torch.float64, requires_grad=True)
    bank = _bank_with(positives, others=12).requires_grad_()
    out = smooth_positives(positives, bank, k=5)
    out.sum().backward()
    assert bank.grad is None  # the neighbours are detached
    assert positives.grad is not None and positives.grad.abs().sum() > 0
    # The output is not re-normalised (a convex combination of unit vectors is shorter).
    assert (out.norm(dim=-1) < 1).all()


def test_smooth_positives_with_k_zero_is_the_normalised_positive():
    positives = torch.randn(3, 8, dtype=torch.float64)
    bank = _bank_with(positives, others=4)
    torch.testing.assert_close(smooth_positives(positives, bank, k=0), torch.nn.functional.normalize(positives, dim=-1))
    with pytest.raises(ValueError):
        smooth_positives(positives, bank, k=7)  # needs k + 1 <= 7 bank rows


# --------------------------------------------------------------------------- IS-CSE alpha schedule


def test_cosine_alpha_schedule_values():
    start, end, total = 0.005, 0.05, 1000
    assert cosine_alpha(0, total, start=start, end=end) == pytest.approx(start)
    assert cosine_alpha(total // 2, total, start=start, end=end) == pytest.approx(end)
    assert cosine_alpha(total, total, start=start, end=end) == pytest.approx(end)  # clipped, not 0.095
    quarter = math.cos(math.pi / 4) * (start - end) + end
    assert cosine_alpha(total // 4, total, start=start, end=end) == pytest.approx(quarter)
    values = [cosine_alpha(t, total, start=start, end=end) for t in range(total + 1)]
    assert all(b >= a for a, b in itertools.pairwise(values))  # rises, then stays
    assert max(values) == pytest.approx(end)
    with pytest.raises(ValueError):
        cosine_alpha(0, 0)


# --------------------------------------------------------------------------- SoftCSE helpers


def _sim(n: int = 8, m: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return pair_similarities(
        torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g), torch.randn(m, 16, generator=g)
    )


def test_soft_weights_are_neutral_at_strength_zero():
    sim = _sim()
    assert torch.equal(soft_negative_log_weights(sim, strength=0.0), torch.zeros_like(sim))
    assert torch.equal(soft_pair_temperatures(sim, strength=0.0, temperature=TAU), torch.full_like(sim, TAU))


@pytest.mark.parametrize("direction", ["down", "up"])
def test_soft_weights_mean_one_over_negatives_and_follow_direction(direction):
    sim = _sim(n=8, m=3).requires_grad_()
    log_w = soft_negative_log_weights(sim, strength=0.5, direction=direction)
    assert not log_w.requires_grad  # computed from detached similarities
    n = sim.shape[0]
    negatives = ~torch.eye(n, dtype=torch.bool)
    weights = log_w[:, :n].exp()
    torch.testing.assert_close(weights[negatives].view(n, n - 1).mean(dim=1), torch.ones(n))
    assert torch.equal(log_w.diagonal(), torch.zeros(n))  # the positive keeps weight 1
    assert torch.equal(log_w[:, n:], torch.zeros(n, 3))  # Gaussian columns keep weight 1
    # Nearer negatives weigh less ("down") or more ("up"): weights are monotone in similarity.
    for i in range(n):
        s, w = sim[i, :n][negatives[i]].detach(), weights[i][negatives[i]]
        order = s.argsort()
        steps = w[order].diff()
        assert (steps <= 1e-6).all() if direction == "down" else (steps >= -1e-6).all()


@pytest.mark.parametrize("direction", ["down", "up"])
def test_soft_temperatures_bounded_and_follow_direction(direction):
    sim = _sim(n=8, m=3)
    temps = soft_pair_temperatures(sim, strength=3.0, direction=direction, temperature=TAU, tau_min=0.03, tau_max=0.08)
    n = sim.shape[0]
    negatives = ~torch.eye(n, dtype=torch.bool)
    assert ((temps >= 0.03) & (temps <= 0.08)).all()
    assert torch.equal(temps.diagonal(), torch.full((n,), TAU))
    assert torch.equal(temps[:, n:], torch.full((n, 3), TAU))
    for i in range(n):
        s, t = sim[i, :n][negatives[i]], temps[i, :n][negatives[i]]
        steps = t[s.argsort()].diff()
        # "down": nearer negatives get higher temperatures (pushed less); "up": lower.
        assert (steps >= 0).all() if direction == "down" else (steps <= 0).all()
    with pytest.raises(ValueError):
        soft_pair_temperatures(sim, temperature=0.2, tau_min=0.03, tau_max=0.1)


def _naive_linear_soft_info_nce(anchors, positives, extra, strength, direction, tau=TAU):
    """InfoNCE with Dvořák et al.'s SoftCSE weights, pair by pair in float64: the denominator is
    e^{s_ii/τ} + Σ_{j≠i} w_ij e^{s_ij/τ} (+ the extra columns at weight 1), w_ij from a detached s_ij."""
    n = anchors.shape[0]
    columns = [positives[j] for j in range(n)] + [extra[k] for k in range(extra.shape[0])]
    total = 0.0
    for i in range(n):
        a = anchors[i]
        numerator = None
        denominator = 0.0
        for j, c in enumerate(columns):
            cos = (a * c).sum() / (a.norm() * c.norm())
            weight = 1.0
            if j < n and j != i:
                s = float(cos.detach())
                near = (1.0 + s) / 2.0 if direction == "down" else (1.0 - s) / 2.0
                weight = 1.0 - strength * near
            term = weight * torch.exp(cos / tau)
            denominator = denominator + term
            if j == i:
                numerator = term
        total = total - torch.log(numerator / denominator)
    return total / n


@pytest.mark.parametrize("direction", ["down", "up"])
@pytest.mark.parametrize("strength", [1.0, 0.4])
def test_linear_soft_weights_match_naive_fp64_loop_loss_and_gradients(direction, strength):
    anchors, positives, extra = _inputs(n=6, d=5, m=3, seed=3)
    sim = pair_similarities(anchors, positives, extra)
    log_w = soft_negative_linear_log_weights(sim, strength=strength, direction=direction)
    assert not log_w.requires_grad  # from detached similarities
    loss = info_nce(anchors, positives, temperature=TAU, extra_negatives=extra, neg_log_weights=log_w)
    reference = _naive_linear_soft_info_nce(anchors, positives, extra, strength, direction)
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-12)
    tensors = [anchors, positives, extra]
    for got, want in zip(_grads(loss, tensors), _grads(reference, tensors), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    if strength == 1.0 and direction == "down":  # the paper's own form: w = (1 - s) / 2, no renormalisation
        n = anchors.shape[0]
        negatives = ~torch.eye(n, dtype=torch.bool)
        torch.testing.assert_close(log_w[:, :n].exp()[negatives], ((1 - sim[:, :n].detach()) / 2)[negatives])


def test_linear_soft_weights_reduce_to_simcse_and_keep_the_positive():
    sim = _sim(n=8, m=3)
    assert torch.equal(soft_negative_linear_log_weights(sim, strength=0.0), torch.zeros_like(sim))
    log_w = soft_negative_linear_log_weights(sim, strength=0.7, direction="down")
    n = sim.shape[0]
    assert torch.equal(log_w.diagonal(), torch.zeros(n)) and torch.equal(log_w[:, n:], torch.zeros(n, 3))
    negatives = ~torch.eye(n, dtype=torch.bool)
    weights = log_w[:, :n].exp()[negatives]
    assert (weights <= 1).all() and (weights >= 0.3 - 1e-6).all()  # w in [1 - lambda, 1]
    with pytest.raises(ValueError, match="strength"):
        soft_negative_linear_log_weights(sim, strength=1.5)


def _naive_exp_soft_info_nce(anchors, positives, extra, strength, direction, tau=TAU):
    """InfoNCE with smoothcse's exp-form SoftCSE weights, pair by pair in float64. For the in-batch negatives
    j != i of anchor i, from detached cosines s_ij: r_ij = sign * strength * s_ij / tau (sign +1 "up", -1 "down")
    and w_ij = e^{r_ij} / mean_{k != i} e^{r_ik}; the denominator is e^{s_ii/tau} + sum_{j != i} w_ij e^{s_ij/tau}
    (+ the extra columns at weight 1)."""
    n = anchors.shape[0]
    sign = 1.0 if direction == "up" else -1.0
    columns = [positives[j] for j in range(n)] + [extra[k] for k in range(extra.shape[0])]
    total = 0.0
    for i in range(n):
        a = anchors[i]
        cosines = [(a * c).sum() / (a.norm() * c.norm()) for c in columns]
        raw = {j: sign * strength * float(cosines[j].detach()) / tau for j in range(n) if j != i}
        mean = sum(math.exp(r) for r in raw.values()) / (n - 1)
        denominator = 0.0
        for j, cos in enumerate(cosines):
            weight = math.exp(raw[j]) / mean if j in raw else 1.0
            denominator = denominator + weight * torch.exp(cos / tau)
        total = total - torch.log(torch.exp(cosines[i] / tau) / denominator)
    return total / n


@pytest.mark.parametrize("direction", ["down", "up"])
@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_exp_soft_weights_match_naive_fp64_loop_loss_and_gradients(direction, strength):
    """The exp weight form (``soft_weight_form = "exp"``), functional and through the objective built from its
    config, against the plain loop: loss and gradients in float64."""
    from smoothcse.objectives import ObjectiveConfig, build_objective

    anchors, positives, extra = _inputs(n=6, d=5, m=3, seed=4)
    sim = pair_similarities(anchors, positives, extra)
    log_w = soft_negative_log_weights(sim, temperature=TAU, strength=strength, direction=direction)
    assert not log_w.requires_grad  # from detached similarities
    loss = info_nce(anchors, positives, temperature=TAU, extra_negatives=extra, neg_log_weights=log_w)
    reference = _naive_exp_soft_info_nce(anchors, positives, extra, strength, direction)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-12)
    tensors = [anchors, positives, extra]
    for got, want in zip(_grads(loss, tensors), _grads(reference, tensors), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # the same loss from the objective a run builds (in-batch columns only: no Gaussian noise)
    config = ObjectiveConfig(
        spec="simcse+soft-weight", soft_weight_form="exp", soft_strength=strength, soft_direction=direction
    )
    out = build_objective(config)(anchors, positives)
    in_batch = _naive_exp_soft_info_nce(anchors, positives, extra[:0], strength, direction)
    torch.testing.assert_close(out["loss"], in_batch, rtol=1e-10, atol=1e-12)
    for got, want in zip(
        _grads(out["loss"], [anchors, positives]), _grads(in_batch, [anchors, positives]), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- fp16 inputs


def _fp32_inputs(n: int = 16, d: int = 32, m: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(n, d, generator=g)
    positives = anchors + 0.3 * torch.randn(n, d, generator=g)
    return anchors, positives, torch.randn(m, d, generator=g)


FP16_LOSSES = {
    "info_nce": lambda a, p, e: info_nce(a, p, extra_negatives=e),
    "exp soft weights": lambda a, p, e: info_nce(
        a, p, extra_negatives=e, neg_log_weights=soft_negative_log_weights(pair_similarities(a, p, e), strength=1.0)
    ),
    "linear soft weights": lambda a, p, e: info_nce(
        a,
        p,
        extra_negatives=e,
        neg_log_weights=soft_negative_linear_log_weights(pair_similarities(a, p, e), strength=1.0),
    ),
    "soft temperatures": lambda a, p, e: info_nce(
        a, p, extra_negatives=e, pair_temperatures=soft_pair_temperatures(pair_similarities(a, p, e), strength=1.0)
    ),
    "smooth_positives": lambda a, p, e: info_nce(
        a,
        smooth_positives(
            p,
            torch.cat(
                [
                    torch.nn.functional.normalize(e.float(), dim=-1),
                    torch.nn.functional.normalize(p.detach().float(), dim=-1),
                ]
            ),
            k=4,
        ),
    ),
    "distillation": lambda a, p, e: similarity_distillation(
        pair_similarities(a, p), pair_similarities(p.detach(), p.detach()), temperature=0.1
    ),
}


@pytest.mark.parametrize("name", list(FP16_LOSSES))
def test_fp16_inputs_give_the_float32_result_of_their_values(name):
    """Every functional loss upcasts fp16 inputs: a float32 result, finite, exactly the result of the same values
    in float32, close to the float32 inputs' (only the inputs' rounding differs), finite fp16 gradients."""
    loss_fn = FP16_LOSSES[name]
    anchors, positives, extra = _fp32_inputs()
    reference = loss_fn(anchors, positives, extra)
    a16 = anchors.half().requires_grad_()
    p16 = positives.half().requires_grad_()
    loss16 = loss_fn(a16, p16, extra.half())
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert torch.equal(loss16, loss_fn(a16.detach().float(), p16.detach().float(), extra.half().float()))
    torch.testing.assert_close(loss16, reference, rtol=1e-2, atol=1e-2)
    loss16.backward()
    assert a16.grad is not None and a16.grad.dtype == torch.float16 and torch.isfinite(a16.grad).all()
    assert p16.grad is not None and torch.isfinite(p16.grad).all() and p16.grad.abs().sum() > 0


def test_fp16_inputs_whose_squares_overflow_fp16_stay_finite():
    """Norms are taken after the upcast: rows of size ~300 (squares sum past fp16's 65504) give the loss of the
    same directions at size 1, not inf/NaN."""
    anchors, positives, extra = _fp32_inputs()
    big = [(300 * x).half() for x in (anchors, positives, extra)]
    assert torch.isinf((big[0] * big[0]).sum(dim=1)).all()  # in fp16 the squared norm itself overflows
    loss = info_nce(big[0], big[1], extra_negatives=big[2])
    assert torch.isfinite(loss)
    small = [x.float() / 300 for x in big]
    torch.testing.assert_close(loss, info_nce(small[0], small[1], extra_negatives=small[2]), rtol=1e-5, atol=1e-6)
