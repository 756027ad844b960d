"""The backbone's attention mask, and what a training step reads back from the device.

transformers, given a 2D mask, checks on the host whether it has padding (``bool(mask.all())``) on
every forward: on a GPU a host-device synchronisation inside the step. SentenceEncoder hands SDPA
encoders a ready (B, 1, 1, T) mask instead. These tests check that this gives the embeddings
transformers' own mask gives, for every model type it is used for, and that a whole training step
(forward, every objective, backward, clipping, AdamW) then converts no tensor to a Python value.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from smoothcse.config import TrainConfig
from smoothcse.data.corpus import BatchSchedule, TokenizedCorpus
from smoothcse.model.capabilities import model_types
from smoothcse.model.encoder import load_encoder
from smoothcse.objectives import ObjectiveConfig, build_objective
from smoothcse.training.distributed import DistInfo
from smoothcse.training.run import build_optimizer, view_layout
from smoothcse.training.steps import contrastive_step, optimizer_step
from tests.helpers import build_tiny_model

TIGHT = dict(rtol=1e-5, atol=1e-6)
READY_MASK_MODEL_TYPES = model_types("ready_sdpa_mask")


def _batch(encoder: Any, lines: list[str], padded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = encoder.tokenizer(lines, padding=True, truncation=True, max_length=24, return_tensors="pt")
    if not padded:  # every row as long as the longest: no padding at all
        tokens = encoder.tokenizer([lines[0]] * len(lines), truncation=True, max_length=24, return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]


@pytest.mark.parametrize("model_type", READY_MASK_MODEL_TYPES)
def test_the_ready_mask_gives_transformers_own_result(model_type: str, small_corpus: Path, tmp_path: Path) -> None:
    encoder = load_encoder(str(build_tiny_model(tmp_path / model_type, model_type)), pooler="avg").eval()
    assert encoder.backbone.config._attn_implementation == "sdpa"
    lines = small_corpus.read_text(encoding="utf-8").splitlines()[:6]
    for padded in (True, False):
        ids, mask = _batch(encoder, lines, padded)
        assert bool((mask == 0).any()) == padded
        ready = encoder._backbone_mask(mask)
        assert ready.shape == (ids.shape[0], 1, 1, ids.shape[1]) and ready.dtype == torch.bool
        with torch.no_grad():
            ours = encoder.backbone(input_ids=ids, attention_mask=ready).last_hidden_state
            theirs = encoder.backbone(input_ids=ids, attention_mask=mask).last_hidden_state  # transformers builds it
        real = mask.bool()
        torch.testing.assert_close(ours[real], theirs[real], **TIGHT)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_the_encoder_masks_padding_under_either_attention(
    implementation: str, tiny_bert: Path, small_corpus: Path
) -> None:
    """The encoder's vectors of a padded batch are transformers' own (2D mask) under SDPA and under eager
    attention, where a ready boolean mask would be added to the scores (True as +1) and mask nothing."""
    encoder = load_encoder(str(tiny_bert), pooler="avg").eval()
    encoder.backbone.set_attn_implementation(implementation)
    assert encoder.backbone.config._attn_implementation == implementation
    ids, mask = _batch(encoder, small_corpus.read_text(encoding="utf-8").splitlines()[:6], padded=True)
    assert bool((mask == 0).any())
    with torch.no_grad():
        ours = encoder.embed(ids, mask)
        states = encoder.backbone(input_ids=ids, attention_mask=mask).last_hidden_state  # transformers builds it
    weights = mask.unsqueeze(-1).float()
    torch.testing.assert_close(ours, (states * weights).sum(1) / weights.sum(1), **TIGHT)


class HostReads(TorchFunctionMode):
    """Records every tensor -> Python conversion (each one a host-device synchronisation on a GPU)."""

    READS = {"__bool__", "item", "tolist", "__int__", "__float__", "__index__", "numpy", "cpu", "nonzero"}

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", str(func))
        if name in self.READS:
            where = traceback.extract_stack(limit=4)[0]
            self.reads.append(f"{name} at {where.filename}:{where.lineno}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("spec", ["simcse", "simcse+gs+is+soft-weight", "simcse+soft-temp"])
@pytest.mark.parametrize("rows_per_forward", [0, 8])
def test_a_training_step_reads_nothing_back_from_the_device(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, spec: str, rows_per_forward: int
) -> None:
    config = TrainConfig(model=str(tiny_bert), rows_per_forward=rows_per_forward, max_len=32)
    encoder = load_encoder(str(tiny_bert), pooler="cls").train()
    corpus = TokenizedCorpus.build(small_corpus, encoder.tokenizer, 32, cache_dir=str(tmp_path), progress=False)
    schedule = BatchSchedule(len(corpus), 16, seed=0)
    objective = build_objective(ObjectiveConfig(spec=spec, is_bank_size=32, is_k=4, gs_num=16, seed=0)).train()
    params = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    layout = view_layout(config, torch.device("cpu"))
    for step in range(3):  # the IS-CSE bank is empty at step 0 and full after it
        indices = schedule.batch(step)
        ids, mask = corpus.collate(indices)
        with HostReads() as spy:
            terms = contrastive_step(
                encoder,
                objective,
                ids,
                mask,
                step=step,
                total_steps=3,
                info=DistInfo(),
                amp_dtype=None,
                lengths=corpus.lengths_of(indices),
                layout=layout,
            )
            optimizer_step(params, optimizer, scheduler, terms["loss"], config.max_grad_norm)
        assert spy.reads == [], f"step {step} read tensors back to the host: {spy.reads}"
