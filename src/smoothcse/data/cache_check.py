"""The token cache is verified, not trusted: each entry's files are checked against each other when it is opened.

An entry is ``meta.json`` (the sentence and token counts), ``offsets.npy`` (sentences + 1 int64 offsets, from 0
to the token count, never decreasing), ``ids.bin`` (token count × 4 bytes of int32 ids) and ``documents.npy`` (each
sentence's source line, int64). A file cut short,
lost or rewritten breaks one of these equalities; such an entry is removed with one warning line and built
again, never used. (The ids' values themselves are not hashed: that would read the whole cache at every start.)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np


def cache_problem(folder: Path) -> str | None:
    """What is wrong with the cache entry in ``folder`` (one phrase), or None when its files agree."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        stats = meta["stats"]
        sentences, tokens = int(stats["sentences"]), int(stats["tokens"])
        int(meta["max_len"]), str(meta["source"])
    except FileNotFoundError:
        return "meta.json is missing"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"meta.json is unreadable ({type(err).__name__})"
    offsets = _int64_array(folder / "offsets.npy", sentences + 1)
    if isinstance(offsets, str):
        return offsets
    if int(offsets[0]) != 0 or int(offsets[-1]) != tokens or _decreases(offsets):
        return f"offsets.npy does not run from 0 to meta.json's {tokens} tokens"
    documents = _int64_array(folder / "documents.npy", sentences)
    if isinstance(documents, str):
        return documents
    ids = folder / "ids.bin"
    size = ids.stat().st_size if ids.is_file() else -1
    if tokens and size != tokens * 4:
        return f"ids.bin has {max(size, 0)} bytes, expected {tokens * 4} ({tokens} int32 tokens)"
    return None


def _int64_array(path: Path, length: int) -> np.ndarray | str:
    """The memory-mapped int64 array of ``length`` entries in ``path``, or what is wrong with it (one phrase)."""
    try:
        array: np.ndarray = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError) as err:
        return f"{path.name} is unreadable ({str(err).splitlines()[0][:80] if str(err) else type(err).__name__})"
    if array.dtype != np.int64 or array.shape != (length,):
        return f"{path.name} holds {array.shape} {array.dtype} entries, meta.json says {length} of them"
    return array


def _decreases(offsets: np.ndarray, block: int = 1 << 22) -> bool:
    """Whether the offsets ever decrease, read in blocks (memory stays bounded for any corpus)."""
    return any(bool(np.any(np.diff(offsets[i : i + block + 1]) < 0)) for i in range(0, len(offsets), block))


def reusable(folder: Path) -> bool:
    """Whether the cache entry in ``folder`` can be used as it is; a damaged one is removed (to be built again)
    with one warning line on stderr."""
    if not folder.exists():
        return False
    problem = cache_problem(folder)
    if problem is None:
        return True
    print(f"smoothcse: warning: token cache {folder} is damaged ({problem}); building it again.", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)
    return False
