"""TrainConfig assembly: a training run has one seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoothcse.config import build_config
from smoothcse.errors import ConfigError


def test_the_objectives_seed_is_the_runs_seed_in_the_saved_config() -> None:
    config = build_config(overrides={"seed": 7})
    assert config.objective.seed == 7
    assert config.to_dict()["objective"]["seed"] == 7
    assert build_config(overrides={"seed": 7, "objective": {"seed": 7}}).objective.seed == 7


def test_another_objective_seed_is_refused_naming_its_source(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("seed = 42\n[objective]\nseed = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run\.toml: objective\.seed = 3 differs from seed = 42"):
        build_config(config_file=path)
    with pytest.raises(ConfigError, match="command line: objective.seed = 3 differs from seed = 5"):
        build_config(overrides={"seed": 5, "objective": {"seed": 3}})
