"""The ``smoothcse`` command line: the click group :func:`main` (the ``smoothcse`` console script), one module
per command, the group in :mod:`smoothcse.cli.main` and what the commands share in :mod:`smoothcse.cli.common`."""

from smoothcse.cli.main import main

__all__ = ["main"]
