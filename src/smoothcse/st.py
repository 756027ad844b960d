"""smoothcse's objectives as losses for sentence-transformers' own ``SentenceTransformerTrainer``.

Each class plugs in where ``MultipleNegativesRankingLoss`` does, on (anchor, positive) pairs (for unsupervised
SimCSE the pairs (s, s), so that the two forwards differ only by their dropout masks). The mathematics is
smoothcse's own objective (:mod:`smoothcse.objectives`), held by the loss with its state (the IS-CSE memory bank,
the GS-InfoNCE noise generator) as submodules. With their neutral settings each equals
``MultipleNegativesRankingLoss(model, scale=1 / temperature)``; each process sees only its own batch. The table of
losses and an example are in docs/ecosystem.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from smoothcse.errors import ConfigError
from smoothcse.objectives import ObjectiveConfig, build_objective

OBJECTIVE_OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ObjectiveConfig) if f.name != "spec")


class SmoothCSELoss(nn.Module):
    """Any smoothcse objective as a sentence-transformers loss.

    Args:
        model: the ``SentenceTransformer`` being trained.
        objective: an objective spec such as ``"simcse+gs+is"`` (see ``smoothcse train --help``), or an
            :class:`~smoothcse.objectives.ObjectiveConfig`.
        total_steps: the run's planned optimizer steps; needed only by IS-CSE's ``"cos"`` α schedule
            (``trainer.state.max_steps`` once known, or steps per epoch × epochs).
        **options: :class:`~smoothcse.objectives.ObjectiveConfig` fields (``temperature``, ``gs_num``,
            ``is_alpha``, ``soft_direction``, ...) overriding their defaults.

    Inputs: (anchor, positive) pairs (z1, z2); the step counter advances once per forward in training mode.
    Returns the loss; with IS-CSE a dict of the terms whose sum is the loss, ``{"infonce": ...,
    "is_term": α·InfoNCE(z1, z2*)}``, so the trainer logs each.
    """

    def __init__(
        self, model: nn.Module, objective: str | ObjectiveConfig = "simcse", *, total_steps: int = 0, **options: Any
    ) -> None:
        super().__init__()
        unknown = sorted(set(options) - set(OBJECTIVE_OPTIONS))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown option(s) {', '.join(unknown)}; the options are "
                f"ObjectiveConfig's fields: {', '.join(OBJECTIVE_OPTIONS)}."
            )
        config = objective if isinstance(objective, ObjectiveConfig) else ObjectiveConfig(spec=objective)
        config = dataclasses.replace(config, **options)
        self.objective = build_objective(config)  # validates the config
        if "is" in config.components and config.is_alpha_schedule == "cos" and total_steps <= 0:
            raise ConfigError(
                f"{type(self).__name__}: is_alpha_schedule 'cos' needs total_steps (the run's planned "
                "optimizer steps); pass total_steps=... or use the 'constant' schedule."
            )
        self.model = model
        self.config = config
        self.total_steps = total_steps
        self.steps_done = 0

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor | dict[str, Tensor]:
        features = list(sentence_features)
        if len(features) != 2:
            raise ValueError(
                f"{type(self).__name__} takes (anchor, positive) pairs, got {len(features)} columns; "
                "for unsupervised training give each sentence twice: (s, s)."
            )
        z1, z2 = (self.model(f)["sentence_embedding"] for f in features)  # (N, d) each
        return self.compute_loss_from_embeddings([z1, z2], labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None = None
    ) -> Tensor | dict[str, Tensor]:
        """The objective on ``[anchors, positives]`` (``(N, d)`` each); advances the step in training mode."""
        z1, z2 = embeddings
        self.objective.train(self.model.training)  # the IS bank is filled while training only
        terms: dict[str, Tensor] = self.objective(
            z1.float(), z2.float(), step=self.steps_done, total_steps=self.total_steps
        )
        if self.model.training:
            self.steps_done += 1
        if self.objective.smoothing is None:
            return terms["loss"]
        # the trainer logs each term and backpropagates their sum, which is the loss (the gradient rides on is_term)
        return {"infonce": terms["infonce"], "is_term": terms["loss"] - terms["infonce"]}

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers writes into the model card."""
        settings = dataclasses.asdict(self.config)
        return {"objective": settings.pop("spec"), **settings}

    @property
    def citation(self) -> str:
        """BibTeX of SimCSE and of each refinement this loss uses."""
        return self.objective.citation


class GaussianNegativesLoss(SmoothCSELoss):
    """GS-InfoNCE (:class:`~smoothcse.objectives.GaussianNegatives`) as a sentence-transformers loss:
    ``num_negatives`` Gaussian vectors (σ = ``std``) as extra negatives at every step, the noise seeded with
    ``seed``.
    """

    def __init__(
        self, model: nn.Module, num_negatives: int = 192, std: float = 0.5, temperature: float = 0.05, seed: int = 42
    ) -> None:
        super().__init__(model, "simcse+gs", gs_num=num_negatives, gs_std=std, temperature=temperature, seed=seed)


class InstanceSmoothingLoss(SmoothCSELoss):
    """IS-CSE (:class:`~smoothcse.objectives.InstanceSmoothing`) as a sentence-transformers loss:
    InfoNCE(z1, z2) + α·InfoNCE(z1, z2*), z2* from the ``k`` nearest rows of a bank of ``bank_size`` past
    positives (saved with the loss's state dict). ``alpha_schedule="cos"`` needs ``total_steps``.
    """

    def __init__(
        self,
        model: nn.Module,
        bank_size: int = 1024,
        k: int = 16,
        alpha: float = 0.1,
        *,
        alpha_schedule: str = "constant",
        alpha_start: float = 0.005,
        alpha_end: float = 0.05,
        scale: float = 2.0,
        temperature: float = 0.05,
        total_steps: int = 0,
    ) -> None:
        super().__init__(
            model,
            "simcse+is",
            total_steps=total_steps,
            is_bank_size=bank_size,
            is_k=k,
            is_alpha=alpha,
            is_alpha_schedule=alpha_schedule,
            is_alpha_start=alpha_start,
            is_alpha_end=alpha_end,
            is_scale=scale,
            temperature=temperature,
        )


class SoftNegativesLoss(SmoothCSELoss):
    """SoftCSE (:class:`~smoothcse.objectives.SoftNegatives`, smoothcse's parametrisation) as a
    sentence-transformers loss: a weight (``variant="weight"``) or a temperature (``"temperature"``) for each
    negative pair. ``direction``, ``strength`` and ``weight_form`` left None keep smoothcse's defaults.
    """

    def __init__(
        self,
        model: nn.Module,
        variant: str = "weight",
        *,
        direction: str | None = None,
        strength: float | None = None,
        weight_form: str | None = None,
        temperature: float = 0.05,
        tau_min: float = 0.025,
        tau_max: float = 0.1,
    ) -> None:
        specs = {"weight": "simcse+soft-weight", "temperature": "simcse+soft-temp"}
        if variant not in specs:
            raise ConfigError(f"SoftNegativesLoss: variant must be one of {', '.join(specs)}, got {variant!r}.")
        given: dict[str, Any] = {
            "soft_direction": direction,
            "soft_strength": strength,
            "soft_weight_form": weight_form,
        }
        super().__init__(
            model,
            specs[variant],
            temperature=temperature,
            soft_tau_min=tau_min,
            soft_tau_max=tau_max,
            **{k: v for k, v in given.items() if v is not None},
        )


__all__ = ["GaussianNegativesLoss", "InstanceSmoothingLoss", "SmoothCSELoss", "SoftNegativesLoss"]
