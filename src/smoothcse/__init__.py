"""smoothcse: unsupervised contrastive sentence encoders (SimCSE, GS-InfoNCE, IS-CSE, SoftCSE)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
