"""SoftCSE: per-pair weights or temperatures for the negatives, from their similarity to the anchor."""

from __future__ import annotations

from torch import Tensor, nn

from smoothcse.objectives.config import SOFT_SIMILARITIES, SOFT_WEIGHT_FORMS
from smoothcse.objectives.functional import (
    soft_negative_linear_log_weights,
    soft_negative_log_weights,
    soft_pair_temperatures,
)

SOFTCSE_CITATION = """\
@inproceedings{zhuang2024softcse,
  title     = {Not All Negatives are Equally Negative: Soft Contrastive Learning for
               Unsupervised Sentence Representations},
  author    = {Zhuang, Haojie and Zhang, Wei Emma and Yang, Jian and Chen, Weitong and Sheng, Quan Z.},
  booktitle = {Proceedings of the 33rd ACM International Conference on Information and Knowledge Management},
  series    = {CIKM '24},
  pages     = {3591--3601},
  year      = {2024},
  publisher = {Association for Computing Machinery},
  doi       = {10.1145/3627673.3679745},
}
"""

SOFT_VARIANTS: tuple[str, ...] = ("weight", "temperature")


class SoftNegatives(nn.Module):
    """SoftCSE-style soft negatives: each in-batch negative pair gets its own weight or temperature.

    Idea from Zhuang et al., "Not All Negatives are Equally Negative: Soft Contrastive Learning for
    Unsupervised Sentence Representations", CIKM 2024: set each negative pair's weight, or its
    temperature, from its similarity to the anchor. **The functions below are smoothcse's own
    parametrisation**: the paper's exact functions and its code could not be obtained (only the
    abstract), so this is not a reproduction of the paper's numbers.

    From the detached similarities ``s_ij`` of anchor i with its in-batch negatives j: ``variant="weight"``
    adds log-weights to the logits (``weight_form="exp"``:
    :func:`~smoothcse.objectives.functional.soft_negative_log_weights`; ``"linear"``, the form Dvořák et al.
    restate for SoftCSE: :func:`~smoothcse.objectives.functional.soft_negative_linear_log_weights`);
    ``variant="temperature"`` sets per-pair temperatures
    (:func:`~smoothcse.objectives.functional.soft_pair_temperatures`). The formulas and their ranges are
    there, and each function checks its own arguments when called.

    "down" pushes near negatives less (they may be false negatives: paraphrases in the batch);
    "up" pushes them more (hard negatives). The positive keeps weight 1 and temperature tau, and so
    do extra negative columns (GS-InfoNCE's Gaussian vectors). ``strength = 0`` is exactly SimCSE.

    The defaults and the evidence that chose them are in docs/objectives.md.

    Args:
        variant: "weight" or "temperature".
        direction: "down" or "up".
        strength: >= 0, dimensionless (see the formulas).
        temperature: the objective's tau.
        tau_min, tau_max: bounds of the per-pair temperatures (temperature variant).
        weight_form: "exp" or "linear" (weight variant).
        similarity: whose similarities :class:`~smoothcse.objectives.Objective` passes in: "student" (the
            model's own cosines) or "teacher" (a frozen teacher's, as Dvořák et al. restate SoftCSE).

    Example::

        soft = SoftNegatives("weight", direction="down", strength=0.5)
        sim = pair_similarities(z1, z2)  # (N, N)
        loss = info_nce_from_logits(info_nce_logits(sim, temperature=0.05, **soft(sim)))
    """

    def __init__(
        self,
        variant: str = "weight",
        *,
        direction: str = "down",
        strength: float = 1.0,
        temperature: float = 0.05,
        tau_min: float = 0.025,
        tau_max: float = 0.1,
        weight_form: str = "linear",
        similarity: str = "student",
    ) -> None:
        super().__init__()
        if similarity not in SOFT_SIMILARITIES:
            raise ValueError(f"similarity must be one of {SOFT_SIMILARITIES}, got {similarity!r}.")
        if weight_form not in SOFT_WEIGHT_FORMS:
            raise ValueError(f"weight_form must be one of {SOFT_WEIGHT_FORMS}, got {weight_form!r}.")
        if variant not in SOFT_VARIANTS:
            raise ValueError(f"variant must be one of {SOFT_VARIANTS}, got {variant!r}.")
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}.")
        self.variant = variant
        self.direction = direction
        self.strength = strength
        self.temperature = temperature
        self.tau_min = tau_min
        self.tau_max = tau_max
        self.weight_form = weight_form
        self.similarity = similarity

    @property
    def citation(self) -> str:
        """BibTeX of the SoftCSE paper (whose idea, not exact functions, this module follows)."""
        return SOFTCSE_CITATION

    def extra_repr(self) -> str:
        bounds = (
            f", tau in [{self.tau_min}, {self.tau_max}]"
            if self.variant == "temperature"
            else f", form={self.weight_form}"
        )
        return (
            f"variant={self.variant}, direction={self.direction}, strength={self.strength}{bounds}, "
            f"similarity={self.similarity}"
        )

    def forward(self, sim: Tensor) -> dict[str, Tensor]:
        """Keyword arguments for :func:`~smoothcse.objectives.functional.info_nce_logits`.

        Args:
            sim: ``(N, N+M)`` cosine similarities (detached inside).

        Returns:
            ``{"neg_log_weights": (N, N+M)}`` or ``{"pair_temperatures": (N, N+M)}``.
        """
        if self.variant == "weight" and self.weight_form == "linear":
            return {
                "neg_log_weights": soft_negative_linear_log_weights(
                    sim, strength=self.strength, direction=self.direction
                )
            }
        if self.variant == "weight":
            return {
                "neg_log_weights": soft_negative_log_weights(
                    sim, temperature=self.temperature, strength=self.strength, direction=self.direction
                )
            }
        return {
            "pair_temperatures": soft_pair_temperatures(
                sim,
                temperature=self.temperature,
                strength=self.strength,
                direction=self.direction,
                tau_min=self.tau_min,
                tau_max=self.tau_max,
            )
        }
