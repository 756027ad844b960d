"""The model: a Hugging Face backbone with a pooler (and SimCSE's training-only MLP head), how it is
loaded from a hub id, a local folder or a sentence-transformers folder, the [CLS]-only last layer, and
the export to a sentence-transformers folder."""

from smoothcse.model.encoder import SentenceEncoder, load_encoder, resolve_model_path
from smoothcse.model.export import holds_model, save_encoder

__all__ = ["SentenceEncoder", "holds_model", "load_encoder", "resolve_model_path", "save_encoder"]
