"""Similarity distillation: keep the student's in-batch similarity distribution close to a frozen teacher's."""

from __future__ import annotations

from torch import Tensor, nn

from smoothcse.objectives.functional import similarity_distillation

RANKCSE_CITATION = """\
@inproceedings{liu-etal-2023-rankcse,
  title     = {{RankCSE}: Unsupervised Sentence Representations Learning via Learning to Rank},
  author    = {Liu, Jiduan and Liu, Jiahao and Wang, Qifan and Wang, Jingang and Wu, Wei and Xian, Yunsen
               and Zhao, Dongyan and Chen, Kai and Yan, Rui},
  booktitle = {Proceedings of the 61st Annual Meeting of the Association for Computational Linguistics},
  year      = {2023},
  publisher = {Association for Computational Linguistics},
}
"""


class SimilarityDistillation(nn.Module):
    """``weight * KL(softmax(T_i / t) || softmax(S_i / t))`` averaged over the anchors i of a batch.

    ``S_ij = cos(z1_i, z2_j)`` are the student's in-batch similarities (the InfoNCE's own, Gaussian columns
    excluded) and ``T_ij = cos(e_i, p_j)`` a frozen teacher's similarities of the same pairs, from its
    cached embeddings (``--teacher``; by default the starting model itself) of the anchors (``e``) and of the
    positives (``p``: ``e`` again for dropout views, the other text's for a view of another text). An
    encoder that is already trained loses what it knew when a contrastive loss reshapes its space; this term
    holds each anchor's ranking of the batch where the teacher had it (the listwise distillation of RankCSE,
    Liu et al., ACL 2023), so the contrastive terms adapt the encoder without erasing it. ``weight = 0`` is
    exactly SimCSE.

    Args:
        weight: beta, the term's weight in the loss (>= 0).
        temperature: t, of both softmaxes (> 0).

    Example::

        distill = SimilarityDistillation(weight=1.0, temperature=0.05)
        term = distill(pair_similarities(z1, z2)[:, :n], pair_similarities(teacher, teacher))
    """

    def __init__(self, weight: float = 1.0, *, temperature: float = 0.05) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}.")
        self.weight = weight
        self.temperature = temperature

    @property
    def citation(self) -> str:
        """BibTeX of RankCSE, whose listwise distillation this term follows."""
        return RANKCSE_CITATION

    def extra_repr(self) -> str:
        return f"weight={self.weight}, temperature={self.temperature}"

    def forward(self, student_sim: Tensor, teacher_sim: Tensor) -> Tensor:
        """The unweighted KL term (a scalar); the objective multiplies it by :attr:`weight`.

        Args:
            student_sim: ``(N, N)`` student similarities.
            teacher_sim: ``(N, N)`` teacher similarities of the same N pairs.
        """
        return similarity_distillation(student_sim, teacher_sim, temperature=self.temperature)
