"""The ``smoothcse`` command line."""

from smoothcse.cli.main import main

__all__ = ["main"]
