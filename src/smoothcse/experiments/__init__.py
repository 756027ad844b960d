"""Experiments: multi-seed sweeps over a grid of configs (:mod:`.grid`, :mod:`.sweep`, :mod:`.results`), their
report (:mod:`.report`: mean ± std over seeds, differences from SimCSE, plots), and embedding geometry
(:mod:`.geometry`: alignment and uniformity). See docs/experiments.md.
"""
