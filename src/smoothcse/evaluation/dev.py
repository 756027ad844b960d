"""Fast STS-B dev scoring inside the training loop.

The dev sentences are tokenised once, deduplicated and grouped into length-sorted batches that stay
on the device; each call embeds them without gradients (bf16 on GPU) and returns Spearman x 100.
It leaves the training state as it found it: the module's train/eval mode is restored and the RNG
streams (CPU and CUDA) are forked, so a run with evaluation takes the same steps as one without.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from smoothcse.evaluation.embedding import distinct
from smoothcse.evaluation.sts import spearman
from smoothcse.model.encoder import SentenceEncoder


class DevEvaluator:
    """Spearman x 100 of cosine similarity against gold scores for fixed sentence pairs."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        gold: Sequence[float] | np.ndarray,
        *,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        max_length: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        position = distinct([*sentences1, *sentences2])
        unique = list(position)
        self.left = torch.tensor([position[s] for s in sentences1], device=self.device)
        self.right = torch.tensor([position[s] for s in sentences2], device=self.device)
        self.gold = np.asarray(gold, dtype=np.float64)
        self.num_sentences = len(unique)
        tokenized = encoder.tokenizer(unique, truncation=True, max_length=max_length or 512)["input_ids"]
        order = np.argsort([len(t) for t in tokenized], kind="stable")
        self.batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        pad = encoder.tokenizer.pad_token_id or 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(tokenized[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(tokenized[i])] = torch.tensor(tokenized[i])
                mask[row, : len(tokenized[i])] = 1
            self.batches.append((ids.to(self.device), mask.to(self.device), torch.as_tensor(idx, device=self.device)))

    @torch.no_grad()
    def __call__(self, encoder: SentenceEncoder) -> float:
        was_training = encoder.training
        encoder.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        use_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        try:
            with torch.random.fork_rng(devices=devices):
                vectors = torch.empty((self.num_sentences, encoder.embedding_dim), device=self.device)
                for ids, mask, idx in self.batches:
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        vectors[idx] = encoder.embed(ids, mask).float()
                cosine = torch.nn.functional.cosine_similarity(vectors[self.left], vectors[self.right], dim=-1)
                predicted = cosine.double().cpu().numpy()
        finally:
            encoder.train(was_training)
        return spearman(predicted, self.gold) * 100.0  # the same scorer as `smoothcse eval`
