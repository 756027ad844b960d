"""Writing results: the one JSON writer (atomic, NaN-free), atomic writes of any file, the check that an output
can be written before the work that fills it, folders filled in staging and renamed into place, what a failed
write says, and the one way a duration is printed."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and paths made JSON-native; NaN and inf become ``None``."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike[str], document: Any) -> Path:
    """Write ``document`` (through :func:`to_jsonable`) as indented JSON, atomically: a reader sees the old file
    or the new one, never half."""
    text = json.dumps(to_jsonable(document), indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the file to; renamed over ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left as it was (absent, or the old file):
    a reader never sees a half-written file. The parent folder is created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def staged_folder(folder: Path, *, finished: Callable[[], bool]) -> Iterator[Path]:
    """A staging folder beside ``folder`` to fill; renamed into place when the block ends, removed if it raises.

    When another process renamed its own copy into place first, ``finished()`` says whether that copy is
    complete (kept) or not (the rename's error is raised).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished the same folder first
            if not finished():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


DISK_FULL_SIGNS = ("No space left", "os error 28", "StorageFull", "Disk quota exceeded")
"""How a full disk shows in the messages of errors that are not OSErrors (safetensors')."""
WRITER_SIGNS = ("file write failed", "PytorchStreamWriter", "inline_container")
"""torch.save's RuntimeErrors when its writer fails (on a full disk: "unexpected pos ...")."""


def is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is the file system refusing a write (full disk, read-only, permissions), not a bug."""
    return isinstance(err, OSError) or any(sign in str(err) for sign in DISK_FULL_SIGNS + WRITER_SIGNS)


def describe_write_error(err: BaseException, folder: str | os.PathLike[str] | None = None) -> str:
    """Why a write (into ``folder``) failed, in a few words: ``No space left on device``, ``Read-only file
    system``, ... (a writer's own error on a disk with less than 1 MiB left is a full disk)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    if any(sign in text for sign in DISK_FULL_SIGNS):
        return "No space left on device"
    if folder is not None:
        try:
            if shutil.disk_usage(folder).free < 1 << 20:
                return "No space left on device"
        except OSError:
            pass
    return (text.strip().splitlines() or [type(err).__name__])[0][:200]


def check_output_file(path: str | os.PathLike[str], option: str) -> Path:
    """Before any long work: ``path``'s folder exists or is made, and a file can be written there (a probe
    file is made and removed; nothing else is touched). Raises a one-line ``SmoothCSEError`` naming ``option``."""
    from smoothcse.errors import SmoothCSEError

    target = Path(path).expanduser()
    if target.is_dir():
        raise SmoothCSEError(f"{option} {path}: is a folder; give a file name.")
    probe = target.parent / f".{target.name}.{os.getpid()}.probe"
    blocker = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise SmoothCSEError(
            f"{option} {path}: cannot write there ({blocker} is a file, not a folder). Nothing was run."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SmoothCSEError(
            f"{option} {path}: cannot write there ({target.parent}: {err.strerror}); choose a writable place. "
            "Nothing was run."
        ) from None
    return target


def format_duration(seconds: float) -> str:
    """``1h02m``, ``4m03s`` or ``12.3s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
