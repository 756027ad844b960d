"""What the commands share: exit codes, the one-line error, the ``--debug`` option.

``--debug`` is remembered on click's context (the root context's ``obj``), where the group's error
handler in :mod:`smoothcse.cli.main` reads it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""The group's context settings; also given to the commands that are invoked on their own (in tests)."""


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    """End with one line ``smoothcse: error: MESSAGE`` on stderr and exit status ``code``."""
    click.echo(f"smoothcse: error: {message}", err=True)
    sys.exit(code)


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().ensure_object(dict)["debug"] = True
    return value


debug_option = click.option(
    "--debug", is_flag=True, is_eager=True, expose_value=False, callback=_remember_debug, help="Show tracebacks."
)
"""``--debug``: show the traceback of an error instead of its one-line message."""


def debug_requested(ctx: click.Context) -> bool:
    """Whether ``--debug`` was given to the command running under ``ctx``'s root."""
    state = ctx.find_root().obj
    return isinstance(state, dict) and bool(state.get("debug"))
