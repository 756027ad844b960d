"""The ``st-tsdae`` arm of a sweep: sentence-transformers' own TSDAE (Wang et al., 2021), the usual advice
for adapting an encoder to unlabeled text of one's own domain: ``DenoisingAutoEncoderLoss`` with a decoder tied
to the encoder, built from the same local folder; everything else as in the ``st-simcse`` arm. The noise is
this module's (:func:`delete_words`), from a generator seeded by the run's seed (no NLTK). docs/experiments.md.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smoothcse.config import TrainConfig
from smoothcse.experiments import st_trainer

if TYPE_CHECKING:
    import numpy as np

ARM = "st-tsdae"
"""The value of ``objective.spec`` in a grid that selects this arm."""
TRAINER_MODULES: tuple[str, ...] = st_trainer.TRAINER_MODULES
DELETE_RATIO = 0.6
"""The probability that a word is deleted (TSDAE's and sentence-transformers' default)."""
NOISE_STREAM = 0x75DAE
"""Mixed with the run's seed into the noise's generator: its draws are not those of the batch order."""
WORD = re.compile(r"\w+|[^\w\s]")
"""A word or a punctuation mark, as NLTK's ``word_tokenize`` mostly splits them; joined back with
spaces, which BERT-style tokenizers split the same way."""


def require_trainer() -> None:
    """Raise a one-line error naming the ``bench`` extra if the Trainer's packages are missing."""
    st_trainer.require_trainer(ARM, TRAINER_MODULES)


def delete_words(text: str, rng: np.random.Generator, ratio: float = DELETE_RATIO) -> str:
    """``text`` with each word deleted with probability ``ratio`` (one draw of ``rng`` per word); at least
    one word is kept, so a unit with a word never comes back empty. Text without words comes back as is."""
    words = WORD.findall(text)
    if not words:
        return text
    keep = rng.random(len(words)) >= ratio
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(word for word, kept in zip(words, keep) if kept)


def add_noise(texts: list[str], seed: int, ratio: float = DELETE_RATIO) -> list[str]:
    """Each of ``texts`` through :func:`delete_words`, in order, from one generator seeded by ``seed``:
    the same texts and seed give the same noise, whatever NumPy's or torch's global state."""
    import numpy as np

    rng = np.random.default_rng([seed, NOISE_STREAM])
    return [delete_words(text, rng, ratio) for text in texts]


def training_pairs(config: TrainConfig) -> tuple[list[str], list[str], int]:
    """The noised units, the original units (the corpus's, in smoothcse's order) and the number of steps."""
    from smoothcse.experiments.st_simcse import read_sentences, schedule_order

    units = read_sentences(config)
    order, steps = schedule_order(len(units), config)
    targets = [units[i] for i in order]
    return add_noise(targets, config.seed), targets, steps


def tsdae_loss(model: Any, model_path: str, seed: int) -> Any:
    """``DenoisingAutoEncoderLoss`` on ``model`` with a decoder tied to it, built from ``model_path``.

    With ``tie_encoder_decoder=True`` sentence-transformers builds the decoder from the encoder's own
    ``_name_or_path``; it is set to ``model_path`` (the local folder the encoder was loaded from) so the
    decoder comes from there. The decoder's new weights (cross-attention, LM head) are drawn after
    seeding torch with ``seed``."""
    import torch

    from smoothcse.model.st_modules import st_loss_class

    transformer = model.transformers_model if hasattr(model, "transformers_model") else model[0].auto_model
    transformer.config._name_or_path = model_path
    torch.manual_seed(seed)
    return st_loss_class("DenoisingAutoEncoderLoss")(model, tie_encoder_decoder=True)


def train_st_tsdae(config: TrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Train ``config`` with sentence-transformers' TSDAE into ``config.out``; return the summary."""
    require_trainer()
    from datasets import Dataset

    from smoothcse.model.encoder import resolve_model_path

    started = time.perf_counter()
    Path(config.out).mkdir(parents=True, exist_ok=True)
    st = st_trainer.build_st_model(config)
    noised, targets, steps = training_pairs(config)
    dataset = Dataset.from_dict({"noised": noised, "original": targets})  # the loss's (damaged, original)
    loss = tsdae_loss(st.model, resolve_model_path(config.model), config.seed)
    scores = st_trainer.train_ordered(config, st, dataset, loss, steps, progress=progress, clip_loss=True)
    extra = {"loss": "DenoisingAutoEncoderLoss", "delete_ratio": DELETE_RATIO}
    return st_trainer.finish(config, steps, scores, time.perf_counter() - started, **extra)
