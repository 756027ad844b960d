"""User-facing errors.

Every problem a user can fix (a bad path, a bad option, a malformed file) is raised as a
:class:`SmoothCSEError` with a one-line message that names the file, line or option and says
what to do. The CLI prints it without a traceback (unless ``--debug``) and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SmoothCSEError(Exception):
    """An error caused by input the user can correct; its message is shown as is."""


class DataError(SmoothCSEError):
    """A data file or directory is missing or malformed."""


class ConfigError(SmoothCSEError):
    """An option or configuration value is invalid."""


def closest(name: str, choices: Iterable[str], *, ignore_case: bool = False) -> str:
    """A ' Did you mean X?' suffix naming the closest valid choice, or '' if none is close.

    ``ignore_case``: compare lower-cased, and name the choice in its own spelling.
    """
    if ignore_case:
        by_lower = {choice.lower(): choice for choice in choices}
        match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
        return f" Did you mean '{by_lower[match[0]]}'?" if match else ""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""
