"""One owner per folder: an exclusive ``flock`` on ``<folder>/.smoothcse.lock`` for the life of a process.

The kernel's lock dies with its process (even on SIGKILL), so a killed run's folder is taken over without
clean-up. The lock file stays (removing it would race with a process that has just opened it); it holds the
holder's pid and command line, for the message only (docs/training.md).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smoothcse.errors import SmoothCSEError

LOCK_FILE = ".smoothcse.lock"


class FolderBusy(SmoothCSEError):
    """Another live process holds the folder."""


def _holder(handle: int) -> str:
    """What the lock file says about its holder: ``pid 123 (smoothcse train ...)``, or ``another process``."""
    try:
        text = os.pread(handle, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    return f"pid {pid} ({command[:120]})" if pid.isdigit() else "another process"


def _open(folder: Path, option: str) -> int:
    if folder.exists() and not folder.is_dir():
        raise SmoothCSEError(f"{option} {folder}: is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise SmoothCSEError(
            f"{option} {folder}: cannot write there ({err.strerror}); choose a writable folder."
        ) from None


@contextmanager
def hold_folder(folder: str | os.PathLike[str], *, what: str = "run", option: str = "--out") -> Iterator[Path]:
    """Hold ``folder`` (created if needed) exclusively until the block ends; :class:`FolderBusy` at once if a
    live process holds it. ``what`` names the holder's work in the message (run, sweep)."""
    path = Path(folder).expanduser()
    handle = _open(path, option)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise SmoothCSEError(f"{option} {path}: cannot lock {path / LOCK_FILE} ({err.strerror}).") from None
            raise FolderBusy(
                f"{option} {path}: another {what} is writing this folder ({_holder(handle)}); wait for it to finish, "
                "stop it, or choose another folder."
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()} {' '.join(sys.argv)[:200]}\n".encode(), 0)
        yield path
    finally:
        os.close(handle)  # closing the descriptor releases the lock
