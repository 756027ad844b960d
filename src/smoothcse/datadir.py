"""Where the evaluation sets and training corpora live.

The data stay outside the repository, in SentEval's ``data/downstream`` layout. The directory is
resolved, in order, from an explicit ``--data-dir``, the ``SMOOTHCSE_DATA`` environment variable,
then the default locations (``../shared/data`` next to the working directory or next to the
checkout, and ``~/.cache/smoothcse/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

from smoothcse.errors import DataError

ENV_VAR = "SMOOTHCSE_DATA"
GET_DATA_HINT = (
    "Point --data-dir or $SMOOTHCSE_DATA at a folder in SentEval's layout (downstream/STS/..., "
    "downstream/SICK, ...); SentEval's data/downstream/get_transfer_data.bash fetches the evaluation sets "
    "and SimCSE's data/download_wiki.sh the wiki1m corpus."
)


def default_candidates() -> list[Path]:
    """The default places searched, most specific first."""
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / ".." / "shared" / "data", Path.cwd() / "shared" / "data"]
    # A source checkout: <checkout>/src/smoothcse/datadir.py -> <checkout>/../shared/data
    if len(here.parents) > 3:
        candidates.append(here.parents[3] / "shared" / "data")
    candidates.append(Path.home() / ".cache" / "smoothcse" / "data")
    return candidates


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Path:
    """Return the data directory, or raise a :class:`DataError` saying where it looked."""
    given = data_dir if data_dir is not None else (os.environ.get(ENV_VAR) or None)
    if given is not None:
        path = Path(given).expanduser()
        if must_exist and not path.is_dir():
            named = f"--data-dir {path}" if data_dir is not None else f"${ENV_VAR}={given}"
            raise DataError(f"{named} is not a directory. {GET_DATA_HINT}")
        return path.resolve()
    tried = default_candidates()
    for path in tried:
        if path.is_dir():
            return path.resolve()
    if not must_exist:
        return tried[-1]
    looked = ", ".join(str(p) for p in tried)
    raise DataError(f"No data directory found (looked in --data-dir, ${ENV_VAR}, {looked}). {GET_DATA_HINT}")


def data_file(relative: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The path of one file under the data directory, or a DataError naming it and the directory."""
    root = resolve_data_dir(data_dir)
    path = root / relative
    if not path.exists():
        raise DataError(f"Missing data file {relative} under the data directory {root}. {GET_DATA_HINT}")
    return path
