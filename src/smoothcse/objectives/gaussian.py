"""GS-InfoNCE: Gaussian noise vectors as extra negatives."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from smoothcse.objectives.functional import _compute_dtype, gaussian_negatives

GS_INFONCE_CITATION = """\
@inproceedings{wu-etal-2022-smoothed,
  title     = {Smoothed Contrastive Learning for Unsupervised Sentence Embedding},
  author    = {Wu, Xing and Gao, Chaochen and Su, Yipeng and Han, Jizhong and Wang, Zhongyuan and Hu, Songlin},
  booktitle = {Proceedings of the 29th International Conference on Computational Linguistics},
  pages     = {4902--4906},
  year      = {2022},
  address   = {Gyeongju, Republic of Korea},
  publisher = {International Committee on Computational Linguistics},
  url       = {https://aclanthology.org/2022.coling-1.434},
}
"""


class GaussianNegatives(nn.Module):
    """GS-InfoNCE's extra negatives: M fresh vectors from N(0, std^2 I) at every call.

    Wu et al., "Smoothed Contrastive Learning for Unsupervised Sentence Embedding", COLING 2022
    (arXiv 2109.04321). The vectors are appended as extra columns ``cos(z1_i, g_k) / tau`` of the
    InfoNCE logits, label unchanged; they carry no gradient, do not pass through the MLP head and
    have no weight of their own. Authors' settings: M = 192 for every backbone; std 0.5 (BERT-base,
    RoBERTa-large) or 0.1 (BERT-large, RoBERTa-base). With cosine similarity the direction of an
    isotropic Gaussian is uniform on the sphere, so std does not change the loss (it is kept for
    fidelity to the recipes).

    The noise comes from a ``torch.Generator`` owned by this module, seeded with ``seed`` and created
    on the embeddings' device at the first call. Its state is part of :meth:`state_dict` (extra
    state), so a resumed run draws the same noise as an uninterrupted one, and every rank of a
    distributed run (same seed, same number of calls) draws identical noise.

    Args:
        num: number M of vectors per call (0 gives an empty ``(0, d)`` tensor: plain SimCSE).
        std: standard deviation of each coordinate.
        seed: generator seed.

    Example::

        noise = GaussianNegatives(192, std=0.5, seed=42)
        extra = noise(z1)  # (192, d) on z1's device
        loss = info_nce(z1, z2, extra_negatives=extra)
    """

    def __init__(self, num: int = 192, *, std: float = 0.5, seed: int = 42) -> None:
        super().__init__()
        self.num = num
        self.std = std
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._pending_state: Tensor | None = None
        self._pending_device_type: str | None = None

    @property
    def citation(self) -> str:
        """BibTeX of the GS-InfoNCE paper."""
        return GS_INFONCE_CITATION

    def extra_repr(self) -> str:
        return f"num={self.num}, std={self.std}, seed={self.seed}"

    def generator(self, device: torch.device) -> torch.Generator:
        """The module's generator on ``device``, created (seeded, or restored) on first use."""
        device = torch.device(device)
        if self._generator is not None and self._generator.device == device:
            return self._generator
        if self._generator is not None:
            warnings.warn(
                f"GaussianNegatives: embeddings moved from {self._generator.device} to {device}; "
                f"the noise stream restarts from seed {self.seed}.",
                stacklevel=3,
            )
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)
        if self._pending_state is not None:
            if self._pending_device_type == device.type:
                generator.set_state(self._pending_state)
            else:
                warnings.warn(
                    f"GaussianNegatives: the saved noise state is for {self._pending_device_type}, not "
                    f"{device.type}; the noise stream restarts from seed {self.seed}.",
                    stacklevel=3,
                )
            self._pending_state = None
            self._pending_device_type = None
        self._generator = generator
        return generator

    @torch.no_grad()
    def forward(self, reference: Tensor) -> Tensor:
        """Draw ``(num, d)`` noise on ``reference``'s device, ``d = reference.shape[-1]``.

        The dtype is float32 (float64 for a float64 reference): the loss is computed in full
        precision anyway, and the draws do not depend on the model's precision.
        """
        return gaussian_negatives(
            self.num,
            reference.shape[-1],
            std=self.std,
            generator=self.generator(reference.device),
            device=reference.device,
            dtype=_compute_dtype(reference),
        )  # (M, d)

    def get_extra_state(self) -> dict[str, Any]:
        if self._generator is not None:
            state: Tensor | None = self._generator.get_state()
            device_type: str | None = self._generator.device.type
        else:
            state, device_type = self._pending_state, self._pending_device_type
        return {"seed": self.seed, "generator_state": state, "device_type": device_type}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the noise stream; it resumes on the next call, on the embeddings' device."""
        self.seed = int(state["seed"])
        self._generator = None
        self._pending_state = state.get("generator_state")
        self._pending_device_type = state.get("device_type")
