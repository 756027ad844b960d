"""The frozen teacher: its embedding of every training unit, computed once, cached on disk, memory-mapped.

The ``distill`` component and SoftCSE with ``soft_similarity = "teacher"`` read a frozen encoder's similarities
within a batch. Its embeddings of the corpus's units (each cut at the run's ``max_len``) are stored beside the
token cache as one float32 ``(units, d)`` array, keyed by the token cache and the teacher's own files; the loader
collates a batch's rows with its token ids, so a step pays nothing for the teacher.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from smoothcse.errors import SmoothCSEError
from smoothcse.files import staged_folder

TEACHER_CACHE_VERSION = 1
TEACHER_FILE = "embeddings.npy"
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".json", ".txt", ".model")


def model_fingerprint(folder: Path) -> str:
    """A digest of a model folder's files (weights, configs, vocabulary), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _verified(folder: Path, units: int) -> np.ndarray | None:
    """The cached array if it is whole (its meta and its shape agree), else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        array = np.load(folder / TEACHER_FILE, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.ndim != 2 or array.shape != (units, meta.get("dim")) or array.dtype != np.float32:
        return None
    return np.asarray(array)


def teacher_embeddings(
    teacher: str,
    corpus_key: str,
    units: Iterator[str],
    count: int,
    *,
    max_len: int,
    cache_dir: Path,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """Row i is the teacher's embedding of unit i, ``(count, d)`` float32, memory-mapped from the cache.

    ``units`` yields the corpus's ``count`` unit texts in cache order (read only when the cache is cold).
    A damaged cache entry is rebuilt with one warning line.
    """
    from smoothcse.model.encoder import load_encoder, resolve_model_path

    path = Path(resolve_model_path(teacher))
    fingerprint = model_fingerprint(path) if path.is_dir() else teacher  # a hub id: its name
    key = hashlib.sha256(json.dumps([TEACHER_CACHE_VERSION, corpus_key, fingerprint, max_len]).encode())
    folder = cache_dir / "teacher" / key.hexdigest()[:24]
    if folder.exists():
        cached = _verified(folder, count)
        if cached is not None:
            return cached
        print(f"smoothcse: warning: teacher cache {folder} is damaged; computing it again", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    texts = list(units)
    if len(texts) != count:
        raise SmoothCSEError(f"--teacher {teacher}: read {len(texts)} units but the token cache holds {count}.")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # a cold cache draws nothing
        encoder = load_encoder(teacher, device=device).eval()
        vectors = encoder.encode(
            texts, batch_size=batch_size, max_length=max_len, show_progress_bar=progress, desc="teacher embeddings"
        )
        del encoder
    vectors = vectors.astype(np.float32, copy=False)
    with staged_folder(folder, finished=lambda: _verified(folder, count) is not None) as staging:
        np.save(staging / TEACHER_FILE, vectors)
        meta = {"teacher": teacher, "max_len": max_len, "units": len(vectors), "dim": vectors.shape[1]}
        (staging / "meta.json").write_text(json.dumps(meta))
    result = _verified(folder, count)
    assert result is not None
    return result


__all__ = ["model_fingerprint", "teacher_embeddings"]
