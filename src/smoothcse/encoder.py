"""A stable import path: ``from smoothcse.encoder import load_encoder``. The code lives in :mod:`smoothcse.model`."""

from smoothcse.model import SentenceEncoder, load_encoder, resolve_model_path

__all__ = ["SentenceEncoder", "load_encoder", "resolve_model_path"]
