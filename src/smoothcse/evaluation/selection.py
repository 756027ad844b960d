"""What ``smoothcse eval --tasks`` names: groups (``sts``, ``transfer``, ``retrieval``, ``dev``, ``all``) and
single tasks by the names of the result tables (with the loaders' aliases) or a retrieval dataset's folder
under ``<data dir>/retrieval``, case-insensitive and comma-separated (``--tasks STSb,MR`` runs those two).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from smoothcse.errors import ConfigError, closest
from smoothcse.evaluation.data import STS_TASKS, TRANSFER_TASKS, match_task_name

#: The groups ``--tasks`` accepts besides single tasks.
TASK_GROUPS: tuple[str, ...] = ("sts", "transfer", "retrieval", "all", "dev")
#: What ``all`` stands for.
ALL_GROUPS: tuple[str, ...] = ("sts", "transfer", "retrieval")


@dataclass(frozen=True)
class TaskSelection:
    """The evaluations one ``--tasks`` value asks for."""

    names: tuple[str, ...]
    """What was asked, canonically spelled, in the order given (``all`` expanded to its groups)."""
    sts: tuple[str, ...] = ()
    """STS tasks scored on their test sets, in the papers' order."""
    dev: bool = False
    """STS-B dev and SICK trial."""
    transfer: tuple[str, ...] = ()
    """Transfer tasks, in the papers' order."""
    retrieval: tuple[str | None, ...] = ()
    """Retrieval datasets by folder name under ``<data dir>/retrieval``; ``None``: the ``retrieval`` group's folder."""


def retrieval_datasets(data_dir: str | os.PathLike[str] | None) -> list[str]:
    """The folder names under ``<data_dir>/retrieval`` (the retrieval datasets ``--tasks`` can name), sorted."""
    folder = None if data_dir is None else Path(data_dir) / "retrieval"
    if folder is None or not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def select_tasks(spec: str, retrieval_names: Sequence[str] = (), option: str = "--tasks") -> TaskSelection:
    """Parse a comma-separated list of groups and task names (case-insensitive).

    ``retrieval_names``: the retrieval datasets that may be named (see :func:`retrieval_datasets`).
    Raises :class:`ConfigError` naming ``option``, the valid names and the closest one for an unknown name.
    """
    tokens = [token.strip() for token in spec.split(",") if token.strip()]
    if not tokens:
        raise ConfigError(f"{option} is empty; give a group ({', '.join(TASK_GROUPS)}) or task names.")
    names: list[str] = []
    sts: set[str] = set()
    transfer: set[str] = set()
    retrieval: list[str | None] = []
    dev = False
    retrieval_by_lower = {name.lower(): name for name in retrieval_names}
    for token in tokens:
        lower = token.lower()
        if lower in TASK_GROUPS:
            groups = ALL_GROUPS if lower == "all" else (lower,)
            names.extend(groups)
            sts.update(STS_TASKS if "sts" in groups else ())
            transfer.update(TRANSFER_TASKS if "transfer" in groups else ())
            retrieval.extend([None] if "retrieval" in groups else [])
            dev = dev or lower == "dev"
        elif found := match_task_name(token, STS_TASKS):
            names.append(found)
            sts.add(found)
        elif found := match_task_name(token, TRANSFER_TASKS):
            names.append(found)
            transfer.add(found)
        elif lower in retrieval_by_lower:
            names.append(retrieval_by_lower[lower])
            retrieval.append(retrieval_by_lower[lower])
        else:
            raise ConfigError(_unknown(token, retrieval_names, option))
    return TaskSelection(
        names=tuple(dict.fromkeys(names)),
        sts=tuple(name for name in STS_TASKS if name in sts),
        dev=dev,
        transfer=tuple(name for name in TRANSFER_TASKS if name in transfer),
        retrieval=tuple(dict.fromkeys(retrieval)),
    )


def _unknown(token: str, retrieval_names: Sequence[str], option: str) -> str:
    choices = [*TASK_GROUPS, *STS_TASKS, *TRANSFER_TASKS, *retrieval_names]
    found = ", ".join(retrieval_names) if retrieval_names else "none found under <data dir>/retrieval"
    return (
        f"{option} {token!r} is neither a group nor a task. Groups: {', '.join(TASK_GROUPS)}; STS: "
        f"{', '.join(STS_TASKS)}; transfer: {', '.join(TRANSFER_TASKS)}; retrieval: {found} (a folder elsewhere: "
        f"--retrieval-dir).{closest(token, choices, ignore_case=True)}"
    )
