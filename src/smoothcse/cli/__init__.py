"""The ``smoothcse`` command line: the click group :func:`main` (the ``smoothcse`` console script).

One module per command (``train``, ``evaluate`` = ``eval``, ``encode``, ``recipes``, ``sweep`` with
``report``, ``bench``); :mod:`smoothcse.cli.main` holds the group and adds them all, and
:mod:`smoothcse.cli.common` what they share (the one-line error, ``--debug``).
"""

from smoothcse.cli.main import main

__all__ = ["main"]
