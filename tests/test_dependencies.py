"""Every third-party package that smoothcse's code imports is declared in pyproject.toml.

The imports are read from the source with ``ast`` (so a lazy import inside a function counts too), mapped to
their distributions with ``importlib.metadata.packages_distributions()`` (a small table for optional packages
that are not installed here), and compared with the requirements of ``[project] dependencies`` and the
optional extras (not ``test``: a user never installs it). An import at module level, outside ``try`` and
``if TYPE_CHECKING``, runs whenever the module is imported, so it must name a base dependency.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "smoothcse"
#: Import name -> distributions, for optional packages whose import name is not the distribution's name and
#: that may not be installed where the tests run (installed ones are found by packages_distributions()).
KNOWN_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "faiss": ("faiss-cpu", "faiss-gpu"),
    "mlflow": ("mlflow-skinny", "mlflow"),
    "sklearn": ("scikit-learn",),
    "yaml": ("pyyaml",),
}
#: Extras that are not an installable feature of smoothcse.
NOT_FEATURES = ("test",)


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """The canonical names of the base requirements, and of each feature extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    extras = project.get("optional-dependencies", {})
    return names(project["dependencies"]), {k: names(v) for k, v in extras.items() if k not in NOT_FEATURES}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(top-level module name, line) of every absolute import anywhere in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def imported_at_load(body: list[ast.stmt]) -> Iterator[tuple[str, int]]:
    """The imports that run when the module is imported: module level, also inside ``if``/``with`` blocks, not
    inside functions, classes, ``try`` (a guarded import) or ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from imported(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from imported_at_load(node.body + node.orelse)
        elif isinstance(node, ast.With):
            yield from imported_at_load(node.body)


def third_party(module: str) -> bool:
    return module not in sys.stdlib_module_names and module not in ("smoothcse", "__future__")


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def distributions(module: str) -> set[str]:
    found = installed_distributions().get(module, []) + list(KNOWN_DISTRIBUTIONS.get(module, ()))
    return {canonicalize_name(name) for name in found or [module]}


def problems(source: str, filename: str) -> list[str]:
    """Every undeclared third-party import of ``source``, and every load-time import of an optional one."""
    base, extras = declared()
    optional = set().union(*extras.values())
    tree = ast.parse(source, filename)
    found = []
    for module, line in imported(tree):
        if third_party(module) and not distributions(module) & (base | optional):
            found.append(f"{filename}:{line}: imports {module!r}, which pyproject.toml does not declare")
    for module, line in imported_at_load(tree.body):
        if third_party(module) and not distributions(module) & base and distributions(module) & optional:
            found.append(f"{filename}:{line}: imports optional {module!r} at module level (import it where used)")
    return found


def test_every_imported_package_is_declared() -> None:
    found = [
        p for path in sorted(SOURCE.rglob("*.py")) for p in problems(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_check_catches_an_undeclared_or_unguarded_import() -> None:
    assert problems("import numpy\nfrom sklearn.linear_model import LogisticRegression\n", "ok.py") == []
    assert problems("def f():\n    import yaml\n", "lazy.py") == [
        "lazy.py:2: imports 'yaml', which pyproject.toml does not declare"
    ]
    assert problems("import pyarrow\n", "eager.py") == [
        "eager.py:1: imports optional 'pyarrow' at module level (import it where used)"
    ]
    guarded = "try:\n    import pyarrow\nexcept ImportError:\n    pyarrow = None\nif TYPE_CHECKING:\n    import mteb\n"
    assert problems(guarded, "guarded.py") == []
