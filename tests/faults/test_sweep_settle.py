"""Class 8: a sweep settles every run's settings before its first run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import one_line_error


def test_max_steps_flag_overrides_the_grids_steps(tmp_path: Path, cli: Callable) -> None:
    """The README's ``sweep quality ... --max-steps N`` used to fail all 24 runs (steps = 1000 sets max_steps)."""
    from smoothcse.experiments.grid import load_grid, parse_overrides
    from smoothcse.experiments.sweep import SweepOptions, plan

    result = cli("sweep", "quality", "--out", tmp_path / "q", "--max-steps", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "invalid" not in result.stdout and result.stdout.count("to run") == 24
    grid = load_grid("quality")
    planned = plan(grid, SweepOptions(out=tmp_path / "q", overrides=parse_overrides({"max_steps": 2}, grid)))
    assert {(p.config.max_steps, p.config.max_sentences) for p in planned if p.config} == {(2, 1000 * 64)}
    sentences = parse_overrides({"max_sentences": 640}, grid)
    planned = plan(grid, SweepOptions(out=tmp_path / "q", overrides=sentences))
    assert {(p.config.max_steps, p.config.max_sentences) for p in planned if p.config} == {(1000, 640)}


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_unknown_axis_value_stops_the_sweep_before_any_run(tmp_path: Path, cli: Callable, dry_run: bool) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'eval_tasks = ["sts"]\n[fixed]\nmax_steps = 2\n[grid]\n"objective.spec" = ["simcse", "simcse+nope"]\n'
    )
    out = tmp_path / "sweep"
    result = cli("sweep", grid, "--out", out, *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "nope" in line and "nothing was run" in line
    assert not (out / "runs").exists()
