"""Experiments: multi-seed sweeps over a grid of configs, their report, and embedding geometry.

* :mod:`smoothcse.experiments.grid`: grid files (TOML), their runs and each run's config;
* :mod:`smoothcse.experiments.sweep`: train and evaluate every run of a grid, record results;
* :mod:`smoothcse.experiments.results`: what a sweep writes (``RunResult``, ``SweepRecord``), read back
  by the report;
* :mod:`smoothcse.experiments.report`: the papers' table as mean ± std over seeds, differences from
  SimCSE, plots;
* :mod:`smoothcse.experiments.geometry`: alignment and uniformity (Wang & Isola, 2020) on STS-B.

See docs/experiments.md.
"""

from smoothcse.experiments.geometry import alignment, alignment_uniformity, uniformity

__all__ = ["alignment", "alignment_uniformity", "uniformity"]
