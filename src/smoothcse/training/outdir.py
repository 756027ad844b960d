"""The output folder of a run: checked, made, and with ``--overwrite`` cleared — never of an input.

``--overwrite`` deletes the folder's model, checkpoints and metrics and replaces its config. Before anything
is deleted, every input the run reads (model, corpus, cache and data folders, the ``--config`` file) is
resolved, and one that lies inside what would be deleted is refused by name: ``train --model RUN --out RUN
--overwrite`` must not delete the model it starts from.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from smoothcse.config import TrainConfig
from smoothcse.data.corpus import find_corpus
from smoothcse.errors import SmoothCSEError
from smoothcse.model.encoder import RUN_MODEL_DIR, holds_model, resolve_model_path
from smoothcse.training.checkpoint import checkpoint_dir, list_checkpoints
from smoothcse.training.distributed import DistInfo
from smoothcse.training.metrics import METRICS_FILE

CONFIG_FILE = "smoothcse_config.json"


def overwritten(out: Path) -> list[Path]:
    """What ``--overwrite`` deletes or replaces in ``out``."""
    return [out / RUN_MODEL_DIR, checkpoint_dir(out), out / METRICS_FILE, out / CONFIG_FILE]


def run_inputs(config: TrainConfig) -> dict[str, Path]:
    """Every local path the run reads, resolved (a missing model folder or corpus raises here, before anything
    is deleted); a hub id is not a path and is left out."""
    inputs: dict[str, Path] = {"--data": find_corpus(config.data, config.data_dir)}
    model = Path(resolve_model_path(config.model))
    if model.exists():
        inputs["--model"] = model
    elif os.sep in config.model or config.model.startswith("."):
        raise SmoothCSEError(
            f"--model {config.model}: no such folder. Pass a local model folder or a Hugging Face hub id."
        )
    for option, value in (("--cache-dir", config.cache_dir), ("--data-dir", config.data_dir)):
        if value:
            inputs[option] = Path(value).expanduser()
    return inputs


def refuse_overwritten_inputs(out: Path, inputs: Mapping[str, Path | str | None]) -> None:
    """Raise naming the first input that lies inside what ``--overwrite`` would delete in ``out``."""
    targets = [path.resolve() for path in overwritten(out.expanduser())]
    for option, value in inputs.items():
        if not value:
            continue
        path = Path(value).expanduser().resolve()
        hit = next((t for t in targets if path == t or t in path.parents), None)
        if hit is not None:
            raise SmoothCSEError(
                f"{option} {value}: lies inside {hit}, which --overwrite would delete; nothing was deleted. "
                "Copy it elsewhere first, or write the new run to another --out."
            )


def refuse_foreign_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file or holds a model at its root (checked before the folder is locked, so
    nothing, not even the lock file, is written into someone else's model folder)."""
    if out.exists() and not out.is_dir():
        raise SmoothCSEError(f"--out {out}: is a file, not a folder.")
    if out.is_dir() and holds_model(out):
        raise SmoothCSEError(
            f"--out {out}: holds a model at its root (another model, or a run of an earlier smoothcse that kept "
            f"its checkpoints inside the model); a run writes its model to {out / RUN_MODEL_DIR} with checkpoints "
            "beside it, and would leave that one stale. Choose a new --out."
        )


def prepare_output_dir(config: TrainConfig, *, resume: bool, overwrite: bool, info: DistInfo) -> Path:
    """``config.out`` checked and made (rank 0); with ``overwrite`` (and not ``resume``) cleared of an earlier
    run once every input is resolved and none lies inside what is deleted."""
    out = Path(config.out).expanduser()
    refuse_foreign_out(out)
    if not resume and not overwrite and out.is_dir() and (holds_model(out / RUN_MODEL_DIR) or list_checkpoints(out)):
        raise SmoothCSEError(
            f"--out {out}: already holds a model or checkpoints; "
            "pass --overwrite to replace it or --resume to continue."
        )
    if info.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".write-test{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise SmoothCSEError(
                f"--out {out}: cannot write there ({err.strerror}); choose a writable folder."
            ) from None
        if overwrite and not resume:
            refuse_overwritten_inputs(out, run_inputs(config))
            shutil.rmtree(out / RUN_MODEL_DIR, ignore_errors=True)
            (out / METRICS_FILE).unlink(missing_ok=True)
            for old in list_checkpoints(out):
                old.unlink(missing_ok=True)
                (old.parent / (old.name + ".sha256")).unlink(missing_ok=True)
    return out


__all__ = ["CONFIG_FILE", "prepare_output_dir", "refuse_foreign_out", "refuse_overwritten_inputs"]
