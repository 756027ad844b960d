"""Resume is a contract: a checkpoint continues only the run that wrote it.

Every checkpoint holds the run's full config and the identity of its corpus (sha256 of the file's bytes).
``--resume`` compares them with the config it is given: every setting is taken to shape the trajectory
(and must be the same) unless it is in :data:`FREE_ON_RESUME`, so a setting added to the config later is
protected without anyone remembering to list it. A key that an older checkpoint's config lacks compares
equal when the new value is the field's default. The corpus is compared by content, so it may move.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smoothcse.config import TrainConfig, flatten
from smoothcse.data.corpus import file_sha256, find_corpus
from smoothcse.errors import SmoothCSEError
from smoothcse.training.checkpoint import list_checkpoints, load_latest_checkpoint, set_rng_state
from smoothcse.training.distributed import DistInfo

FREE_ON_RESUME = frozenset(
    {
        "out",
        "data_dir",
        "cache_dir",
        "device",
        "eval_every",
        "eval_batch_size",
        "log_every",
        "save_every",
        "keep_checkpoints",
        "max_bad_steps",
        "report_to",
    }
)
"""Config keys a resumed run may change (and ``data`` when the checkpoint records the corpus's hash); every
other key, ``objective.*`` and any key added later included, must keep its saved value."""


@functools.lru_cache(maxsize=8)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def corpus_identity(config: TrainConfig) -> dict[str, Any]:
    """The corpus's file name and sha256 (hashed once per file version in this process)."""
    try:
        path = find_corpus(config.data, config.data_dir).resolve()
        stat = path.stat()
        return {"file": path.name, "sha256": _hash(str(path), stat.st_size, stat.st_mtime_ns)}
    except (SmoothCSEError, OSError):  # the corpus went away during training: the checkpoint matters more
        return {}


def resume_conflict(payload: dict[str, Any], config: TrainConfig, where: Path) -> str | None:
    """The one-line refusal when ``config`` changes a trajectory-shaping setting of the checkpoint
    ``payload`` (read from ``where``), else None."""
    recorded = bool((payload.get("corpus") or {}).get("sha256"))
    saved = flatten(payload.get("config") or {})
    now = flatten(config.to_dict())
    defaults = flatten(TrainConfig().to_dict())
    for key, value in now.items():
        if key in FREE_ON_RESUME or (key == "data" and recorded):  # a recorded corpus is compared by content, below
            continue
        if key == "objective.seed":  # seed's copy (build_config); older checkpoints kept the default beside it
            continue
        before = saved.get(key, defaults.get(key))
        if before != value:
            flag = "--" + ("objective" if key == "objective.spec" else key.rpartition(".")[2]).replace("_", "-")
            return (
                f"--resume: {key} ({flag}) was {before!r} in {where}, and this command gives {value!r}; a resumed "
                f"run keeps every setting that shapes training. Give {before!r} again, or start a new run with "
                "--overwrite or another --out (docs/training.md lists the settings free to change)."
            )
    if recorded:
        saved_corpus, corpus = payload["corpus"], corpus_identity(config)
        now_hash, then_hash = str(corpus.get("sha256")), str(saved_corpus.get("sha256"))
        if now_hash != then_hash:
            return (
                f"--resume: --data {config.data} is not the corpus {where} was trained on "
                f"(sha256 {now_hash[:12]}… now, {then_hash[:12]}… of {saved_corpus.get('file')} then); pass that "
                "corpus, or start a new run with --overwrite or another --out."
            )
    return None


def restore_checkpoint(
    out: Path,
    encoder: nn.Module,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    result: Any,
    info: DistInfo,
    config: TrainConfig,
) -> int:
    """Load the newest checkpoint that verifies into the run's parts; returns its step. A checkpoint of other
    trajectory-shaping settings than ``config``'s is refused (:func:`resume_conflict`) before anything loads."""
    try:
        path, payload, skipped = load_latest_checkpoint(out, map_location="cpu")
    except FileNotFoundError as err:
        raise SmoothCSEError(f"--resume: no valid checkpoint in {out / 'checkpoints'} ({err}).") from None
    for message in skipped:
        print(f"smoothcse: {message}", file=sys.stderr)
    conflict = resume_conflict(payload, config, path)
    if conflict:
        raise SmoothCSEError(conflict)
    encoder.load_state_dict(payload["encoder"])
    objective.load_state_dict(payload["objective"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    set_rng_state(payload["rng"])
    if info.enabled:  # each rank continues its own dropout stream from the shared state
        torch.manual_seed(int(torch.get_rng_state()[:8].sum()) + info.rank)
    result.best_dev = payload.get("best_dev")
    result.best_step = payload.get("best_step")
    result.initial_dev = payload.get("initial_dev")
    result.skipped_steps = payload.get("skipped_steps", 0)
    if info.is_main:
        print(f"smoothcse: resumed from {path} (step {payload['step']})", file=sys.stderr)
    return int(payload["step"])


def fault_message(config: TrainConfig, step: int, run: int, out: Path) -> str:
    """Why a run stopped after ``run`` consecutive non-finite steps, and its last good checkpoint."""
    causes = []
    if config.precision == "fp16":
        causes.append("fp16 overflow (try --precision bf16 or fp32)")
    if config.lr > 1e-4:
        causes.append(f"a learning rate of {config.lr:g} (SimCSE uses 1e-5 to 5e-5)")
    if config.objective.temperature < 0.01:
        causes.append(f"a temperature of {config.objective.temperature:g} (0.05 is usual)")
    hint = "; likely: " + ", ".join(causes) if causes else "; check --lr, --precision and the temperature"
    ckpts = list_checkpoints(out)
    last = f" The last good checkpoint is {ckpts[-1]}." if ckpts else ""
    return f"{run} consecutive steps had a non-finite loss or gradient (around step {step}){hint}.{last}"


__all__ = ["FREE_ON_RESUME", "corpus_identity", "fault_message", "restore_checkpoint", "resume_conflict"]
