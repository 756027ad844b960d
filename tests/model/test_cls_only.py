"""The last layer computed for the [CLS] row alone (smoothcse.model.cls_only) against the model's own forward.

With dropout off it must give the model's [CLS] state and the same gradients for every model type it
is used for; with dropout on, its [CLS] row must be drawn from the same distribution (the same dropout
in the same places); elsewhere the model's own forward must run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smoothcse.model.capabilities import model_types
from smoothcse.model.cls_only import _cls_only_layer, cls_state, supports_cls_only
from smoothcse.model.encoder import load_encoder
from tests.helpers import build_tiny_model

CLS_ONLY_MODEL_TYPES = model_types("cls_only_last_layer")

TIGHT = dict(rtol=1e-5, atol=1e-6)


def _batch(encoder, corpus: Path, rows: int = 6):
    lines = corpus.read_text(encoding="utf-8").splitlines()[:rows]
    tokens = encoder.tokenizer(lines, padding=True, truncation=True, max_length=24, return_tensors="pt")
    assert bool((tokens["attention_mask"] == 0).any())  # padded: the mask matters
    return tokens["input_ids"], tokens["attention_mask"]


def _both(encoder, fn):
    """``fn()`` with the [CLS]-only last layer, then with the model's own forward."""
    encoder.cls_only_last_layer = True
    assert encoder.computes_cls_only
    ours = fn()
    encoder.cls_only_last_layer = False
    assert not encoder.computes_cls_only
    return ours, fn()


@pytest.mark.parametrize("model_type", CLS_ONLY_MODEL_TYPES)
def test_cls_only_gives_the_models_own_cls_vector_and_gradients(
    model_type: str, small_corpus: Path, tmp_path: Path
) -> None:
    folder = build_tiny_model(tmp_path / model_type, model_type)
    encoder = load_encoder(str(folder), pooler="cls", hidden_dropout=0.0, attention_dropout=0.0).train()
    ids, mask = _batch(encoder, small_corpus)

    with torch.no_grad():  # training vectors (MLP head), evaluation vectors, from the shared word lookup
        ours, theirs = _both(encoder, lambda: encoder(ids, mask))
        torch.testing.assert_close(ours, theirs, **TIGHT)
        ours, theirs = _both(encoder, lambda: encoder.embed(ids, mask))
        torch.testing.assert_close(ours, theirs, **TIGHT)
        if encoder.takes_word_embeddings:
            ours, theirs = _both(encoder, lambda: encoder(ids, mask, encoder.word_embeddings(ids)))
            torch.testing.assert_close(ours, theirs, **TIGHT)

    def grads() -> dict[str, torch.Tensor]:
        encoder.zero_grad(set_to_none=True)
        z = encoder(ids, mask)
        (z.square().sum() + z[:, 0].sum()).backward()
        return {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}

    ours, theirs = _both(encoder, grads)
    assert set(ours) == set(theirs)  # every parameter the full layer trains, the [CLS]-only one trains
    last = f"encoder.layer.{encoder.backbone.config.num_hidden_layers - 1}."
    assert any(last in name for name in ours)
    for name, grad in theirs.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize(("hidden", "attention"), [(0.0, 0.5), (0.3, 0.0), (0.1, 0.1)])
def test_cls_only_draws_dropout_like_the_full_layer(tmp_path: Path, hidden: float, attention: float) -> None:
    """Many dropout draws of the last layer's [CLS] row, computed alone and by the model's own layer,
    on the same input: the same per-coordinate mean and spread. Measured: a spread 1-3% apart
    between the two, and 18-100% apart once any one of the layer's three dropouts is left out of
    the [CLS]-only layer."""
    folder = build_tiny_model(tmp_path / "model", "bert", layers=1)
    encoder = load_encoder(str(folder), pooler="cls", hidden_dropout=hidden, attention_dropout=attention).train()
    layer = encoder.backbone.encoder.layer[-1]
    torch.manual_seed(2)
    for module in layer.modules():  # weights of unit gain, so each dropout visibly moves the output
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=module.in_features**-0.5)
    states = torch.randn(3, 10, 32)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = mask[2, 3:] = False
    draws = 2000
    states, mask = states.repeat(draws, 1, 1), mask[:, None, None, :].repeat(draws, 1, 1, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = layer(states, mask)[:, 0].view(draws, 3, -1)
        ours = _cls_only_layer(layer, states, mask).view(draws, 3, -1)
    spread = theirs.std(0)  # (3, d)
    assert spread.mean() > 0.1  # dropout is on
    assert ((ours.std(0) / spread) - 1).abs().mean() < 0.08
    mean_gap = (ours.mean(0) - theirs.mean(0)).abs() / (spread / draws**0.5)  # in standard errors of one mean
    assert mean_gap.mean() < 1.5  # 1.1-1.2 measured when equal in law (|z| of a difference of two means)


def test_other_settings_run_the_models_own_forward(tiny_bert: Path, tmp_path: Path) -> None:
    encoder = load_encoder(str(tiny_bert), pooler="cls")
    assert encoder.computes_cls_only
    for pooler in ("avg", "avg_first_last", "avg_top2"):  # they read every token
        assert not load_encoder(str(tiny_bert), pooler=pooler).computes_cls_only
    encoder.cls_only_last_layer = False  # what --no-fast-path sets
    assert not encoder.computes_cls_only
    encoder.cls_only_last_layer = True
    encoder.backbone.config._attn_implementation = "eager"  # its layers expect an additive float mask
    assert not encoder.computes_cls_only
    distilbert = load_encoder(str(build_tiny_model(tmp_path / "distilbert", "distilbert")), pooler="cls")
    assert not supports_cls_only(distilbert.backbone) and not distilbert.computes_cls_only


def test_cls_state_is_the_last_layers_first_row(tiny_bert: Path, small_corpus: Path) -> None:
    """The function itself, called as the encoder calls it, on the backbone's own output."""
    encoder = load_encoder(str(tiny_bert), pooler="cls").eval()
    ids, mask = _batch(encoder, small_corpus)
    with torch.no_grad():
        full = encoder.backbone(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        torch.testing.assert_close(
            cls_state(encoder.backbone, mask[:, None, None, :].bool(), input_ids=ids), full, **TIGHT
        )


# --- the one-time check when an encoder is built, and the tested transformers range ---------------------------


def _record(fn):
    """``fn()`` and the ClsOnlyWarnings it raised (every one, not once per place)."""
    import warnings

    from smoothcse.model.cls_only import ClsOnlyWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught if issubclass(w.category, ClsOnlyWarning)]


@pytest.mark.parametrize("model_type", CLS_ONLY_MODEL_TYPES)
def test_the_check_passes_on_every_model_type_it_is_used_for(model_type: str, tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / model_type, model_type)
    encoder, warned = _record(lambda: load_encoder(str(folder), pooler="cls"))
    assert warned == []
    assert encoder.cls_only_verified and encoder.cls_only_problem is None and encoder.computes_cls_only


def test_the_check_draws_no_random_numbers_and_leaves_modes_and_tokenizer_alone(tiny_bert: Path) -> None:
    from smoothcse.model.encoder import SentenceEncoder

    plain = load_encoder(str(tiny_bert), pooler="avg")  # no check for a pooler that reads every token
    assert not plain.cls_only_verified
    backbone, tokenizer = plain.backbone.train(), plain.tokenizer
    backbone.encoder.layer[0].eval()  # mixed modes must come back as they were
    modes = [m.training for m in backbone.modules()]
    state = (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding)
    rng = torch.get_rng_state()
    encoder = SentenceEncoder(backbone, tokenizer, pooler="cls_before_pooler")  # no head: nothing to initialise
    assert encoder.cls_only_verified
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in backbone.modules()] == modes
    assert (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding) == state


@pytest.mark.parametrize("broken", ["wrong", "raises"])
def test_a_layer_that_disagrees_turns_the_shortcut_off_with_a_warning(
    tiny_bert: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    import smoothcse.model.cls_only as cls_only
    import smoothcse.model.encoder as encoder_module

    def wrong(layer, hidden, mask):  # the last layer's input row: what a changed layer API could give
        return hidden[:, 0]

    def raises(layer, hidden, mask):
        raise RuntimeError("attention.self has no attribute 'query'")

    monkeypatch.setattr(cls_only, "_cls_only_layer", wrong if broken == "wrong" else raises)
    encoder, warned = _record(lambda: load_encoder(str(tiny_bert), pooler="cls", hidden_dropout=0.0))
    assert len(warned) == 1 and "[CLS]-only last layer is off" in warned[0]
    assert ("differs from the model's own [CLS] state" if broken == "wrong" else "RuntimeError") in warned[0]
    assert not encoder.cls_only_verified and encoder.cls_only_problem
    assert encoder.cls_only_last_layer and not encoder.computes_cls_only

    def refuse(*args, **kwargs):
        raise AssertionError("the [CLS]-only layer ran after its check failed")

    monkeypatch.setattr(encoder_module, "cls_state", refuse)
    ids, mask = _batch(encoder, small_corpus)
    encoder.eval()
    with torch.no_grad():  # evaluation and training vectors: the model's own forward
        own = encoder.backbone(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        torch.testing.assert_close(encoder.embed(ids, mask), own, **TIGHT)
        torch.testing.assert_close(encoder(ids, mask), encoder.mlp(own), **TIGHT)
    assert encoder.encode(["a sentence", "another one"]).shape == (2, encoder.hidden_size)
