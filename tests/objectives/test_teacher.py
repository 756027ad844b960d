"""The teacher-reading components: similarity distillation and SoftCSE from a teacher's similarities.

Each is checked against a naive fp64 loop over pairs, reduces exactly to SimCSE (loss and gradients) in its
neutral setting, composes with the other components, and takes fp16/bf16 inputs.
"""

from __future__ import annotations

import math

import pytest
import torch

from smoothcse.config import build_config
from smoothcse.errors import ConfigError
from smoothcse.objectives import ObjectiveConfig, build_objective
from smoothcse.objectives.functional import info_nce, similarity_distillation


def _batch(n: int = 6, d: int = 8, dt: int = 12, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.3 * torch.randn(n, d, generator=g, dtype=dtype)
    teacher = torch.randn(n, dt, generator=g, dtype=dtype)
    return z1.requires_grad_(), z2.requires_grad_(), teacher


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def naive_distillation(z1, z2, teacher, t: float, positive=None) -> float:
    """mean_i sum_j p_t(j|i) (log p_t(j|i) - log p_s(j|i)), softmaxes over j of cos / t; the teacher's
    cosines are of anchor i with positive j (``positive``: the teacher's embeddings of the positives)."""
    positive = teacher if positive is None else positive
    n = len(z1)
    total = 0.0
    for i in range(n):
        s = [_cos(z1[i], z2[j]) / t for j in range(n)]
        r = [_cos(teacher[i], positive[j]) / t for j in range(n)]
        ls, lr = math.log(sum(math.exp(x) for x in s)), math.log(sum(math.exp(x) for x in r))
        total += sum(math.exp(r[j] - lr) * ((r[j] - lr) - (s[j] - ls)) for j in range(n))
    return total / n


def naive_teacher_soft_weight(z1, z2, teacher, tau: float, strength: float, positive=None) -> float:
    """InfoNCE whose negative j of anchor i weighs 1 - strength (1 + cos_teacher(i, j)) / 2 (linear, down)."""
    positive = teacher if positive is None else positive
    n = len(z1)
    total = 0.0
    for i in range(n):
        terms = []
        for j in range(n):
            w = 1.0 if i == j else 1.0 - strength * (1.0 + _cos(teacher[i], positive[j])) / 2.0
            terms.append(w * math.exp(_cos(z1[i], z2[j]) / tau))
        total += -math.log(math.exp(_cos(z1[i], z2[i]) / tau) / sum(terms))
    return total / n


def test_distillation_equals_the_naive_fp64_loop() -> None:
    z1, z2, teacher = _batch()
    for t in (0.05, 0.2):
        out = build_objective(ObjectiveConfig(spec="distill", distill_weight=0.7, distill_temperature=t))(
            z1, z2, teacher=teacher
        )
        expected = naive_distillation(z1.detach(), z2.detach(), teacher, t)
        assert float(out["distill_kl"]) == pytest.approx(expected, rel=1e-10)
        infonce = float(info_nce(z1.detach(), z2.detach(), temperature=0.05))
        assert float(out["loss"].detach()) == pytest.approx(infonce + 0.7 * expected, rel=1e-10)


def test_distillation_is_zero_when_student_ranks_as_teacher_and_pushes_toward_it() -> None:
    z1, _, _ = _batch()
    same = similarity_distillation(
        torch.nn.functional.normalize(z1.detach(), dim=1) @ torch.nn.functional.normalize(z1.detach(), dim=1).T,
        torch.nn.functional.normalize(z1.detach(), dim=1) @ torch.nn.functional.normalize(z1.detach(), dim=1).T,
    )
    assert float(same) == pytest.approx(0.0, abs=1e-12)
    # a gradient step on the KL alone moves the student's similarities toward the teacher's
    z1, z2, teacher = _batch(seed=3)
    objective = build_objective(ObjectiveConfig(spec="distill", distill_temperature=0.1))
    before = float(objective(z1, z2, teacher=teacher)["distill_kl"])
    objective(z1, z2, teacher=teacher)["distill_kl"].requires_grad_()
    kl = similarity_distillation(
        torch.nn.functional.normalize(z1, dim=1) @ torch.nn.functional.normalize(z2, dim=1).T,
        torch.nn.functional.normalize(teacher, dim=1) @ torch.nn.functional.normalize(teacher, dim=1).T,
        temperature=0.1,
    )
    g1, g2 = torch.autograd.grad(kl, [z1, z2])
    after = float(objective(z1 - 0.1 * g1, z2 - 0.1 * g2, teacher=teacher)["distill_kl"])
    assert after < before


def test_teacher_soft_weights_equal_the_naive_fp64_loop() -> None:
    z1, z2, teacher = _batch()
    config = ObjectiveConfig(spec="soft-weight", soft_similarity="teacher", soft_strength=0.8)
    out = build_objective(config)(z1, z2, teacher=teacher)
    assert float(out["loss"].detach()) == pytest.approx(
        naive_teacher_soft_weight(z1.detach(), z2.detach(), teacher, 0.05, 0.8)
    )
    # the weights follow the teacher, not the student: another teacher gives another loss
    other = build_objective(config)(z1, z2, teacher=teacher.flip(0))
    assert float(other["loss"].detach()) != pytest.approx(float(out["loss"].detach()))


@pytest.mark.parametrize(
    "config",
    [
        ObjectiveConfig(spec="distill", distill_weight=0.0),
        ObjectiveConfig(spec="soft-weight", soft_similarity="teacher", soft_strength=0.0),
        ObjectiveConfig(spec="soft-temp", soft_similarity="teacher", soft_strength=0.0),
        ObjectiveConfig(spec="soft-weight+distill", soft_similarity="teacher", soft_strength=0.0, distill_weight=0.0),
    ],
    ids=["distill", "soft-weight", "soft-temp", "both"],
)
def test_neutral_settings_are_exactly_simcse(config: ObjectiveConfig) -> None:
    z1, z2, teacher = _batch()
    loss = build_objective(config)(z1, z2, teacher=teacher)["loss"]
    grads = torch.autograd.grad(loss, [z1, z2])
    z1b, z2b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    reference = build_objective(ObjectiveConfig())(z1b, z2b)["loss"]
    ref_grads = torch.autograd.grad(reference, [z1b, z2b])
    torch.testing.assert_close(loss, reference, rtol=0, atol=0)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_composes_with_gaussian_negatives_and_instance_smoothing() -> None:
    z1, z2, teacher = _batch(n=8)
    config = ObjectiveConfig(
        spec="gs+is+soft-temp+distill", soft_similarity="teacher", gs_num=5, is_bank_size=8, is_k=2
    )
    objective = build_objective(config)
    out = objective(z1, z2, teacher=teacher)
    assert {"infonce", "gs_mass", "is_infonce", "soft_temp_min", "distill_kl"} <= set(out)
    assert torch.isfinite(out["loss"]) and out["soft_temp_max"] <= 0.1 and out["soft_temp_min"] >= 0.025
    assert "RankCSE" in objective.citation and "Not All Negatives" in objective.citation
    with pytest.raises(ValueError, match="this objective reads a teacher"):
        objective(z1, z2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_give_a_float32_loss_close_to_fp32(dtype: torch.dtype) -> None:
    z1, z2, teacher = _batch(n=16, d=32, dt=24, dtype=torch.float32)
    config = ObjectiveConfig(spec="soft-weight+distill", soft_similarity="teacher")
    full = build_objective(config)(z1, z2, teacher=teacher)
    low = build_objective(config)(z1.to(dtype), z2.to(dtype), teacher=teacher.to(dtype))
    assert low["loss"].dtype == torch.float32 and torch.isfinite(low["loss"])
    torch.testing.assert_close(low["loss"], full["loss"], rtol=3e-2, atol=3e-2)


def test_options_are_validated_by_name() -> None:
    with pytest.raises(ConfigError, match="'soft_similarity' must be one of student, teacher"):
        build_config(overrides={"objective": {"soft_similarity": "oracle"}})
    with pytest.raises(ConfigError, match="'distill_temperature' must be > 0"):
        build_config(overrides={"objective": {"spec": "simcse+distill", "distill_temperature": 0.0}})
    with pytest.raises(ConfigError, match="'distill_weight' must be >= 0"):
        build_config(overrides={"objective": {"spec": "simcse+distill", "distill_weight": -1.0}})
    used = ObjectiveConfig(spec="simcse+distill").used_settings()
    assert set(used) == {"temperature", "distill_weight", "distill_temperature"}
    assert "soft_similarity" in ObjectiveConfig(spec="simcse+soft-temp").used_settings()


def test_the_teachers_similarities_are_of_the_anchors_with_the_positives_the_student_sees() -> None:
    """With a view of another text (a document's other sentence, its title) the teacher's row i is
    cos(e_i, p_j): of the anchor's embedding with the positives' own, not the anchors' again."""
    z1, z2, teacher = _batch()
    positive = teacher + 0.8 * torch.randn(
        teacher.shape, generator=torch.Generator().manual_seed(5), dtype=teacher.dtype
    )
    distill = build_objective(ObjectiveConfig(spec="distill", distill_temperature=0.1))
    out = distill(z1, z2, teacher=teacher, teacher_positive=positive)
    expected = naive_distillation(z1.detach(), z2.detach(), teacher, 0.1, positive)
    assert float(out["distill_kl"]) == pytest.approx(expected, rel=1e-10)
    assert expected != pytest.approx(naive_distillation(z1.detach(), z2.detach(), teacher, 0.1), rel=1e-3)
    soft = build_objective(ObjectiveConfig(spec="soft-weight", soft_similarity="teacher", soft_strength=0.8))
    loss = soft(z1, z2, teacher=teacher, teacher_positive=positive)["loss"]
    assert float(loss.detach()) == pytest.approx(
        naive_teacher_soft_weight(z1.detach(), z2.detach(), teacher, 0.05, 0.8, positive), rel=1e-10
    )
    with pytest.raises(ValueError, match="teacher_positive must be"):
        distill(z1, z2, teacher=teacher, teacher_positive=positive[:3])


@pytest.mark.parametrize("source", ["document", "title"])
def test_distillation_composes_with_views_of_another_text(source: str) -> None:
    build_config(overrides={"objective": {"spec": "simcse+distill"}, "view_source": source})
