"""smoothcse's objectives inside sentence-transformers: the loss classes of :mod:`smoothcse.st` against
smoothcse's own training step (loss and gradients, dropout off, same batch), their reduction to
MultipleNegativesRankingLoss at scale 1/τ, their state, and a short run of SentenceTransformerTrainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smoothcse.errors import ConfigError
from smoothcse.objectives import ObjectiveConfig, build_objective
from smoothcse.st import GaussianNegativesLoss, InstanceSmoothingLoss, SmoothCSELoss, SoftNegativesLoss
from tests.helpers import build_tiny_bert

SENTENCES = [
    "a man is playing a guitar .",
    "a woman is slicing an onion .",
    "two dogs run across a field .",
    "the stock market fell sharply today .",
    "a child is reading a book in the park .",
    "it is raining in paris .",
]

PARAPHRASES = [
    "someone plays the guitar .",
    "an onion is being cut by a woman .",
    "dogs are running on the grass .",
    "shares dropped a lot on the exchange .",
    "a kid reads in a park .",
    "paris is rainy .",
]


@pytest.fixture(scope="module")
def still_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT whose dropout is 0, so two forwards of a batch are equal."""
    return build_tiny_bert(
        tmp_path_factory.mktemp("still-bert"), positions=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


def st_model(folder: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    transformer = Transformer(str(folder), max_seq_length=32)
    return SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean")], device="cpu")


def st_loss_and_grads(
    loss_fn, model, anchors: list[str] = SENTENCES, positives: list[str] = SENTENCES
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    features = [model.tokenize(anchors), model.tokenize(positives)]  # (s, s) pairs by default
    out = loss_fn(features, None)
    loss = torch.stack(list(out.values())).sum() if isinstance(out, dict) else out  # as the trainer sums a dict
    loss.backward()
    backbone = model[0].auto_model
    return loss.detach(), {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}


def smoothcse_loss_and_grads(folder: Path, config: ObjectiveConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from smoothcse.model import load_encoder
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.steps import contrastive_step

    encoder = load_encoder(str(folder), pooler="avg", device="cpu")
    encoder.train()
    batch = encoder.tokenizer(SENTENCES, padding=True, truncation=True, max_length=32, return_tensors="pt")
    objective = build_objective(config)
    objective.train()
    terms = contrastive_step(
        encoder,
        objective,
        batch["input_ids"],
        batch["attention_mask"],
        step=0,
        total_steps=10,
        info=DistInfo(),
        amp_dtype=None,
    )
    grads = {n: p.grad.clone() for n, p in encoder.backbone.named_parameters() if p.grad is not None}
    return terms["loss"], grads


@pytest.mark.parametrize(
    "spec, options",
    [
        ("simcse", {}),
        ("simcse+gs", {"gs_num": 16}),
        ("simcse+is", {"is_bank_size": 6, "is_k": 3, "is_alpha": 0.5}),  # bank = batch: full, so smoothing is on
        ("simcse+soft-weight", {"soft_direction": "down", "soft_weight_form": "linear"}),
        ("simcse+gs+is+soft-temp", {"gs_num": 8, "is_bank_size": 6, "is_k": 2, "soft_strength": 0.5}),
    ],
)
def test_the_loss_and_gradients_equal_smoothcse_step(still_bert: Path, spec: str, options: dict) -> None:
    config = ObjectiveConfig(spec=spec, **options)
    ours_loss, ours_grads = smoothcse_loss_and_grads(still_bert, config)
    model = st_model(still_bert)
    model.train()
    theirs_loss, theirs_grads = st_loss_and_grads(SmoothCSELoss(model, config, total_steps=10), model)
    torch.testing.assert_close(theirs_loss, ours_loss, rtol=1e-5, atol=1e-6)
    assert set(theirs_grads) == set(ours_grads) and len(ours_grads) > 10
    for name, grad in ours_grads.items():
        torch.testing.assert_close(theirs_grads[name], grad, rtol=1e-4, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


def test_neutral_settings_equal_multiple_negatives_ranking_loss(still_bert: Path) -> None:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    model = st_model(still_bert)
    model.train()
    reference, reference_grads = st_loss_and_grads(MultipleNegativesRankingLoss(model, scale=20.0), model)
    neutral = [
        SmoothCSELoss(
            model, "simcse+gs+is+soft-weight", gs_num=0, is_alpha=0.0, is_bank_size=6, is_k=2, soft_strength=0.0
        ),
        GaussianNegativesLoss(model, num_negatives=0),
        InstanceSmoothingLoss(model, bank_size=6, k=2, alpha=0.0),
        SoftNegativesLoss(model, variant="temperature", strength=0.0),
        SoftNegativesLoss(model, variant="weight", weight_form="linear", strength=0.0),
    ]
    for loss_fn in neutral:
        loss, grads = st_loss_and_grads(loss_fn, model)
        torch.testing.assert_close(
            loss, reference, rtol=1e-6, atol=1e-6, msg=lambda m, f=loss_fn: f"{type(f).__name__}: {m}"
        )
        for name, grad in reference_grads.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6)
    # and a non-neutral setting does differ from it
    assert not torch.allclose(st_loss_and_grads(GaussianNegativesLoss(model, num_negatives=64), model)[0], reference)
    # on (anchor, positive) pairs of different sentences, where the two orders give different losses, each
    # loss keeps MNRL's order: anchors are the rows, positives the columns
    mnrl = MultipleNegativesRankingLoss(model, scale=20.0)
    pairs = (SENTENCES, PARAPHRASES)
    reference = st_loss_and_grads(mnrl, model, *pairs)[0]
    assert not torch.allclose(reference, st_loss_and_grads(mnrl, model, PARAPHRASES, SENTENCES)[0], rtol=1e-4)
    for loss_fn in neutral:
        torch.testing.assert_close(st_loss_and_grads(loss_fn, model, *pairs)[0], reference, rtol=1e-6, atol=1e-6)


def test_losses_hold_their_state_and_cite_their_papers(still_bert: Path) -> None:
    model = st_model(still_bert)
    model.train()
    loss_fn = InstanceSmoothingLoss(model, bank_size=6, k=2, alpha=0.1)
    out = loss_fn([model.tokenize(SENTENCES), model.tokenize(SENTENCES)], None)
    assert set(out) == {"infonce", "is_term"} and float(out["is_term"].detach()) > 0  # the bank is full after one batch
    bank = loss_fn.state_dict()["objective.smoothing.bank"]
    assert bank.shape == (6, 32) and bool(bank.abs().sum() > 0)
    assert loss_fn.steps_done == 1
    model.eval()
    loss_fn([model.tokenize(SENTENCES[:3]), model.tokenize(SENTENCES[:3])], None)
    torch.testing.assert_close(loss_fn.state_dict()["objective.smoothing.bank"], bank)  # evaluation never moves it
    assert loss_fn.steps_done == 1
    assert "he2023instance" in loss_fn.citation.replace("-", "").lower() or "Instance Smoothing" in loss_fn.citation
    assert (
        "SimCSE" in GaussianNegativesLoss(model).citation
        and "Smoothed Contrastive" in GaussianNegativesLoss(model).citation
    )
    assert SoftNegativesLoss(model).get_config_dict()["objective"] == "simcse+soft-weight"


def test_bad_options_are_refused_by_name(still_bert: Path) -> None:
    model = st_model(still_bert)
    with pytest.raises(ConfigError, match="unknown option\\(s\\) gs_nun"):
        SmoothCSELoss(model, "simcse+gs", gs_nun=3)
    with pytest.raises(ConfigError, match="needs total_steps"):
        InstanceSmoothingLoss(model, alpha_schedule="cos")
    with pytest.raises(ConfigError, match="variant must be one of weight, temperature"):
        SoftNegativesLoss(model, variant="temp")
    with pytest.raises(ValueError, match="takes \\(anchor, positive\\) pairs, got 3 columns"):
        SmoothCSELoss(model)([model.tokenize(SENTENCES)] * 3, None)


def test_sentence_transformers_trainer_trains_with_a_smoothcse_loss(still_bert: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = st_model(still_bert)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sentences = SENTENCES * 4
    data = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    loss_fn = SmoothCSELoss(model, "simcse+gs+is", gs_num=8, is_bank_size=12, is_k=2)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=6,
        num_train_epochs=1,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss_fn)
    trainer.train()
    assert loss_fn.steps_done == 4
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all("infonce" in entry and "is_term" in entry for entry in logged)
    assert any(entry["is_term"] > 0 for entry in logged)  # the bank filled after two batches of 6
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(moved) > 10
