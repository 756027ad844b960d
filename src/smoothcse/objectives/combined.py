"""One InfoNCE with any of its refinements: the loss module the trainer calls."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from smoothcse.objectives import functional
from smoothcse.objectives.config import ObjectiveConfig
from smoothcse.objectives.distillation import SimilarityDistillation
from smoothcse.objectives.gaussian import GaussianNegatives
from smoothcse.objectives.smoothing import InstanceSmoothing
from smoothcse.objectives.soft import SoftNegatives

SIMCSE_CITATION = """\
@inproceedings{gao-etal-2021-simcse,
  title     = {{SimCSE}: Simple Contrastive Learning of Sentence Embeddings},
  author    = {Gao, Tianyu and Yao, Xingcheng and Chen, Danqi},
  booktitle = {Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing},
  pages     = {6894--6910},
  year      = {2021},
  address   = {Online and Punta Cana, Dominican Republic},
  publisher = {Association for Computational Linguistics},
  doi       = {10.18653/v1/2021.emnlp-main.552},
}
"""


class Objective(nn.Module):
    """SimCSE's InfoNCE, optionally with Gaussian negatives, instance smoothing and soft negatives.

    With ``s = cos`` and the label of anchor i at column i::

        loss = InfoNCE(z1, z2 | extra, soft) + alpha(t) * InfoNCE(z1, z2* | extra, soft)

    - ``gaussian`` (GS-InfoNCE) appends M noise columns, drawn once per step, to the logits;
    - ``soft`` (SoftCSE) sets per-pair log-weights or temperatures from the detached similarities
      of the first term; the in-batch negatives are adjusted, the positive and the Gaussian columns
      keep weight 1 and temperature tau;
    - ``smoothing`` (IS-CSE) adds the second term, with ``z2*`` the smoothed positives; it uses the
      same Gaussian columns and the same soft adjustments as the first term (pair (i, j) is the
      same pair of sentences in both), and it is 0 until the bank is full or while alpha is 0;
    - ``distillation`` adds ``beta * KL(teacher || student)`` over each anchor's in-batch similarities;
      it and ``soft`` with ``similarity="teacher"`` read the frozen teacher's similarities of the same pairs
      as the student's: ``cos(e_i, p_j)`` of its embeddings of the anchors (``teacher``) and of the
      positives (``teacher_positive``, when these are other texts; else the anchors' again).

    Each part left out (or in its neutral setting: M = 0, strength 0, alpha 0, bank not full,
    beta 0) gives exactly SimCSE's loss and gradients.

    :meth:`forward` returns a dict: ``"loss"`` (to backpropagate) and detached named terms for the
    logs: ``"infonce"`` always; ``"gs_mass"`` (mean softmax probability on the noise columns) with
    GS; ``"is_infonce"`` (the unweighted smoothing term, 0 while off) and ``"is_alpha"`` (a CPU
    scalar) with IS; ``"soft_weight_min"``/``"soft_weight_max"`` or
    ``"soft_temp_min"``/``"soft_temp_max"`` (over the in-batch negatives) with SoftCSE;
    ``"distill_kl"`` (the unweighted KL) with distillation.

    Use :func:`build_objective` to make one from an :class:`ObjectiveConfig`.
    """

    def __init__(
        self,
        temperature: float = 0.05,
        *,
        gaussian: GaussianNegatives | None = None,
        smoothing: InstanceSmoothing | None = None,
        soft: SoftNegatives | None = None,
        distillation: SimilarityDistillation | None = None,
    ) -> None:
        super().__init__()
        if soft is not None and soft.temperature != temperature:
            raise ValueError(f"soft.temperature ({soft.temperature}) must equal the objective's ({temperature}).")
        self.temperature = temperature
        self.gaussian = gaussian
        self.smoothing = smoothing
        self.soft = soft
        self.distillation = distillation

    @property
    def citation(self) -> str:
        """BibTeX of SimCSE and of every paper whose component this objective uses."""
        modules = (self.gaussian, self.smoothing, self.soft, self.distillation)
        parts = [SIMCSE_CITATION] + [part.citation for part in modules if part]
        return "\n".join(parts)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    @property
    def needs_teacher(self) -> bool:
        """Whether :meth:`forward` needs the teacher's embeddings of the batch."""
        return self.distillation is not None or (self.soft is not None and self.soft.similarity == "teacher")

    def forward(
        self,
        z1: Tensor,
        z2: Tensor,
        *,
        step: int = 0,
        total_steps: int = 0,
        teacher: Tensor | None = None,
        teacher_positive: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The loss for one batch and its named terms.

        Args:
            z1: ``(N, d)`` anchors: the first dropout view (MLP-head output); in distributed training
                the all-gathered global batch.
            z2: ``(N, d)`` positives: the second view, same rows.
            step: optimizer steps done so far (IS-CSE's "cos" alpha schedule).
            total_steps: planned optimizer steps of the run (needed by the "cos" schedule).
            teacher: ``(N, d_t)`` the frozen teacher's embeddings of the same N sentences (any width), when
                :attr:`needs_teacher`.
            teacher_positive: ``(N, d_t)`` its embeddings of the positives when these are other texts than
                the anchors (another sentence of the document, its title); None: the anchors themselves.
        """
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"z1 and z2 must be (N, d) of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}.")
        n = z1.shape[0]
        teacher_sim = self._teacher_similarities(teacher, teacher_positive, n)  # (N, N) or None
        extra = self.gaussian(z1) if self.gaussian is not None else None  # (M, d)
        sim = functional.pair_similarities(z1, z2, extra)  # (N, N+M)
        adjust: dict[str, Tensor] = {}
        if self.soft is not None:
            decides = sim
            if self.soft.similarity == "teacher":  # its in-batch block replaces the student's; extra columns stay
                assert teacher_sim is not None
                decides = torch.cat([teacher_sim.to(sim.dtype), sim[:, n:]], dim=1)  # (N, N+M)
            adjust = self.soft(decides)
        logits = functional.info_nce_logits(sim, temperature=self.temperature, **adjust)  # (N, N+M)
        infonce = functional.info_nce_from_logits(logits)
        loss = infonce
        terms: dict[str, Tensor] = {"infonce": infonce}
        if self.distillation is not None:
            assert teacher_sim is not None
            kl = self.distillation(sim[:, :n], teacher_sim)
            loss = loss + self.distillation.weight * kl
            terms["distill_kl"] = kl

        if self.smoothing is not None:
            alpha = self.smoothing.alpha(step, total_steps)
            smoothed = self.smoothing(z2)  # (N, d), or None while the bank fills; pushes z2 when training
            smoothing_term = infonce.new_zeros(())
            if smoothed is not None and alpha > 0:
                sim_smoothed = functional.pair_similarities(z1, smoothed, extra)  # (N, N+M)
                smoothing_term = functional.info_nce_from_logits(
                    functional.info_nce_logits(sim_smoothed, temperature=self.temperature, **adjust)
                )
                loss = loss + alpha * smoothing_term
            terms["is_infonce"] = smoothing_term
            terms["is_alpha"] = torch.tensor(alpha, dtype=torch.float32)

        with torch.no_grad():
            if extra is not None:
                probabilities = torch.softmax(logits, dim=-1)  # (N, N+M)
                terms["gs_mass"] = probabilities[:, n:].sum(dim=-1).mean()
            for key, values in adjust.items():  # the soft weights or temperatures, over the negatives
                if n < 2:
                    break
                block = values[:, :n]  # (N, N)
                positives = torch.eye(n, dtype=torch.bool, device=block.device)  # (N, N)
                low = block.masked_fill(positives, torch.inf).min()
                high = block.masked_fill(positives, -torch.inf).max()
                if key == "neg_log_weights":
                    terms["soft_weight_min"], terms["soft_weight_max"] = low.exp(), high.exp()
                else:
                    terms["soft_temp_min"], terms["soft_temp_max"] = low, high

        return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}

    def _teacher_similarities(self, teacher: Tensor | None, positive: Tensor | None, n: int) -> Tensor | None:
        """``(N, N)`` the teacher's cosines of each anchor with each positive, or None when no component reads them."""
        if not self.needs_teacher:
            return None
        if teacher is None or teacher.ndim != 2 or teacher.shape[0] != n:
            shape = None if teacher is None else tuple(teacher.shape)
            raise ValueError(f"this objective reads a teacher: pass teacher=(N={n}, d_t) embeddings, got {shape}.")
        if positive is not None and positive.shape != teacher.shape:
            raise ValueError(
                f"teacher_positive must be {tuple(teacher.shape)} like teacher, got {tuple(positive.shape)}."
            )
        return functional.pair_similarities(teacher, teacher if positive is None else positive)  # (N, N)


class SimCSE(Objective):
    """Unsupervised SimCSE's InfoNCE: ``l_i = -log( e^{s_ii/tau} / sum_j e^{s_ij/tau} )``, mean over i.

    Gao, Yao and Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021
    (arXiv 2104.08821). ``s_ij = cos(z1_i, z2_j)`` over the two dropout views of a batch, so each
    anchor has one positive and N - 1 in-batch negatives; tau = 0.05. One direction (z1 -> z2), as
    in the paper's code. Logits and softmax in float32 under any precision.

    Example::

        loss = SimCSE()(z1, z2)["loss"]
    """

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__(temperature)


def build_objective(config: ObjectiveConfig, *, seed: int | None = None) -> Objective:
    """The loss module for ``config`` (validated first): :class:`SimCSE` or a composed :class:`Objective`.

    ``seed``: the Gaussian-noise seed; None uses ``config.seed``. A training run passes its own ``--seed``
    here, so the run's seed is the noise's seed. Raises :class:`~smoothcse.errors.ConfigError` for an
    invalid config.
    """
    config.validate()
    components = config.components
    if components == ("simcse",):
        return SimCSE(config.temperature)
    gaussian = smoothing = soft = None
    if "gs" in components:
        gaussian = GaussianNegatives(config.gs_num, std=config.gs_std, seed=config.seed if seed is None else seed)
    if "is" in components:
        smoothing = InstanceSmoothing(
            config.is_bank_size,
            k=config.is_k,
            scale=config.is_scale,
            alpha=config.is_alpha,
            alpha_schedule=config.is_alpha_schedule,
            alpha_start=config.is_alpha_start,
            alpha_end=config.is_alpha_end,
        )
    distillation = None
    if "distill" in components:
        distillation = SimilarityDistillation(config.distill_weight, temperature=config.distill_temperature)
    if "soft-weight" in components or "soft-temp" in components:
        soft = SoftNegatives(
            "weight" if "soft-weight" in components else "temperature",
            direction=config.soft_direction,
            strength=config.soft_strength,
            temperature=config.temperature,
            tau_min=config.soft_tau_min,
            tau_max=config.soft_tau_max,
            weight_form=config.soft_weight_form,
            similarity=config.soft_similarity,
        )
    return Objective(config.temperature, gaussian=gaussian, smoothing=smoothing, soft=soft, distillation=distillation)
