"""The commit a sweep's result.json names (``code``): git's, or SMOOTHCSE_CODE for a copy without .git."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import smoothcse
from smoothcse.experiments.sweep import code_version

SOURCE = Path(smoothcse.__file__).resolve().parent


def test_a_checkout_names_its_commit(monkeypatch):
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(SOURCE), "rev-parse"]).returncode:
        pytest.skip("the source is not a git checkout here")
    monkeypatch.setenv("SMOOTHCSE_CODE", "not-this")
    head = subprocess.run(
        ["git", "-C", str(SOURCE), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert code_version().removesuffix("+dirty") == head


def test_a_copy_without_git_names_smoothcse_code(tmp_path, monkeypatch):
    """The device machine gets a copy of the tree without .git: the commit comes from SMOOTHCSE_CODE."""
    copy = tmp_path / "src"
    shutil.copytree(SOURCE, copy / "smoothcse", ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from smoothcse.experiments.sweep import code_version; print(code_version())"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(copy),
        "HOME": str(tmp_path),
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }
    named = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "SMOOTHCSE_CODE": "abc123"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert named.stdout.strip() == "abc123", named.stderr
    unnamed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert unnamed.stdout.strip() == "None", unnamed.stderr
