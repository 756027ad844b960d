"""Resumable checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is one ``torch.save`` file ``checkpoints/step-XXXXXXXX.pt`` plus a ``.sha256`` sidecar.
It is written to a temporary name, fsynced, renamed, and only then gets its checksum, so a crash at
any moment leaves either a complete, verifiable checkpoint or none. Loading walks the checkpoints from
newest to oldest and skips (and reports) any whose checksum does not match.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smoothcse.data.corpus import file_sha256
from smoothcse.errors import SmoothCSEError
from smoothcse.files import describe_write_error, is_write_error

CHECKPOINT_DIR = "checkpoints"


def checkpoint_dir(out_dir: Path) -> Path:
    return out_dir / CHECKPOINT_DIR


def rng_state() -> dict[str, Any]:
    """Every RNG stream a run draws from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(out_dir: Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    """Write ``payload`` atomically as the checkpoint of ``step`` and keep only the newest ``keep``."""
    folder = checkpoint_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}.pt"
    temporary = folder / f".step-{step:08d}.pt.tmp{os.getpid()}"
    checksum = folder / (final.name + ".sha256")
    checksum_tmp = folder / f".{checksum.name}.tmp{os.getpid()}"
    if _verifies(final, checksum):  # a step's state is fixed by the run: a resumed run at its end keeps it as it is
        return final
    try:
        with temporary.open("wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        checksum_tmp.write_text(file_sha256(final) + "\n")
        os.replace(checksum_tmp, checksum)
        _fsync_dir(folder)
    except BaseException as err:  # a failed write leaves no temporary file behind (they fill a full disk)
        reason = describe_write_error(err, folder) if isinstance(err, Exception) and is_write_error(err) else None
        temporary.unlink(missing_ok=True)
        checksum_tmp.unlink(missing_ok=True)
        if reason is not None:
            raise SmoothCSEError(
                f"cannot write the checkpoint {final}: {reason}; free space, then continue with "
                "the same command plus --resume (from the last checkpoint that was written)."
            ) from None
        raise
    for old in list_checkpoints(out_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        (old.parent / (old.name + ".sha256")).unlink(missing_ok=True)
    return final


def _verifies(path: Path, checksum: Path) -> bool:
    try:
        return checksum.read_text().strip() == file_sha256(path)
    except OSError:
        return False


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    folder = checkpoint_dir(out_dir)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("step-*.pt"))


def load_latest_checkpoint(
    out_dir: Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest checkpoint whose checksum verifies, and a list of messages about any skipped.

    Raises FileNotFoundError if none is valid.
    """
    skipped: list[str] = []
    for path in reversed(list_checkpoints(out_dir)):
        checksum = path.parent / (path.name + ".sha256")
        if not checksum.is_file():
            skipped.append(f"{path}: no checksum file (the write did not finish); skipped")
            continue
        if checksum.read_text().strip() != file_sha256(path):
            skipped.append(f"{path}: checksum mismatch (truncated or corrupt); skipped")
            continue
        try:
            payload = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped
            skipped.append(f"{path}: unreadable ({type(err).__name__}); skipped")
            continue
        return path, payload, skipped
    raise FileNotFoundError("; ".join(skipped) if skipped else f"no checkpoint in {checkpoint_dir(out_dir)}")
