"""The report of a domain sweep (issue 25): the untouched base model first, every other arm's difference from
it paired by seed, the domain table (train and test nDCG@10, STS Avg, Δ vs base, per-query changes), all
recomputed by hand from fabricated ``result.json`` files; and a sweep without base keeps its old tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smoothcse.evaluation.data import STS_TASKS
from smoothcse.experiments.grid import run_name
from smoothcse.experiments.report import ReportFiles, write_report
from smoothcse.experiments.report.summary import query_changes
from smoothcse.experiments.results import SweepEntry, SweepRecord

OFFSETS = (-1.0, 1.0, -2.0, 2.0, 0.0, 0.5, -0.5)  # per-task spread around a chosen Avg (sums to 0)
QUERIES = ("q1", "q2", "q3", "q4", "q5")
BASE_QUERIES = (50.0, 100.0, 0.0, 30.0, 70.0)

# arm -> seed -> (STS Avg, train nDCG@10, test nDCG@10, per-query test nDCG@10 or None)
ARMS: dict[str, dict[int, tuple[float, float, float, tuple[float, ...] | None]]] = {
    "base": {1: (78.87, 60.00, 64.51, BASE_QUERIES), 2: (78.87, 60.00, 64.51, BASE_QUERIES)},
    "st-simcse": {1: (78.20, 57.00, 60.00, (50.0, 100.0, 0.0, 30.0, 70.0)), 2: (78.40, 58.00, 61.00, None)},
    "st-tsdae": {1: (77.00, 61.00, 65.00, None), 2: (77.50, 62.50, 66.00, None)},
    "simcse": {
        1: (78.00, 55.00, 58.32, (40.0, 100.0, 10.0, 30.0, 60.0)),  # 1 up, 2 same, 2 down
        2: (77.50, 56.50, 59.00, (60.0, 100.0, 0.0, 20.0, 70.0 + 1e-9)),  # 1 up, 3 same (within tolerance), 1 down
    },
    "simcse+distill": {
        1: (78.70, 63.00, 66.00, (60.0, 100.0, 10.0, 40.0, 60.0)),  # 3 up, 1 same, 1 down
        2: (78.90, 62.00, 67.10, (60.0, 100.0, 10.0, 40.0, 80.0)),  # 4 up, 1 same
        3: (70.00, 10.00, 90.00, (100.0, 100.0, 100.0, 100.0, 100.0)),  # base has no seed 3: never paired
    },
}
EXTRA = {"simcse+distill": {"objective.temperature": 0.1}}  # an arm that sets more than its spec
GRID_ORDER = ("simcse+distill", "simcse", "st-tsdae", "base", "st-simcse")  # the arms as the grid lists them
Report = tuple[ReportFiles, dict[str, Any], str]
"""The files, report.json and report.md of the domain sweep."""


def domain_result(folder: Path, spec: str, seed: int) -> dict[str, Any]:
    avg, train, test, per_query = ARMS[spec][seed]
    values = {"seed": seed, "objective.spec": spec, **EXTRA.get(spec, {})}
    name = run_name(values)
    sts = [avg + o for o in OFFSETS]
    result: dict[str, Any] = {
        "name": name,
        "values": values,
        "status": "ok",
        "config": {"seed": seed, "model": "all-MiniLM-L6-v2", "objective": {"spec": spec}},
        "geometry": {"alignment": 0.3, "uniformity": -3.0},
        "scores": {**dict(zip(STS_TASKS, sts)), "avg": avg, "train_ndcg_at_10": train, "ndcg_at_10": test},
        "retrieval": {"task": "SciFact", "main_metric": "ndcg_at_10", "metrics": {"ndcg_at_10": test}},
        "format": 2,
    }
    if per_query is not None:
        result["retrieval"]["per_query"] = {"ndcg_at_10": dict(zip(QUERIES, per_query))}
    if spec != "base":  # the base model is not trained: no training summary, no training time
        result["train"] = {"steps": 200, "best_dev": None}
        result["seconds"] = {"train": 10.0, "eval": 2.0, "total": 12.0}
    run_dir = folder / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps(result))
    return result


@pytest.fixture(scope="module")
def domain_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportFiles, dict[str, Any], str]:
    """A domain sweep's folder (base + 4 arms, seeds first in the grid, so sweep.json lists the arms in grid
    order) and its report: the files, report.json and report.md."""
    folder = tmp_path_factory.mktemp("domain")
    entries = []
    for seed in (1, 2, 3):
        for spec in GRID_ORDER:
            if seed in ARMS[spec]:
                result = domain_result(folder, spec, seed)
                entries.append(SweepEntry(result["name"], result["values"], "ok", result["scores"]["avg"]))
    SweepRecord(keys=["seed", "arm"], runs=entries).save(folder)
    files = write_report(folder, html_report=True)
    return files, json.loads(files.json.read_text()), files.markdown.read_text()


def cells_of(markdown: str, title: str, first: str) -> list[str]:
    """The cells of the row starting with ``first`` in the table under ``## title``."""
    section = markdown.split(f"## {title}\n")[1].split("\n## ")[0]
    line = next(x for x in section.splitlines() if x.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def paired(spec: str, index: int) -> tuple[float, float]:
    """Hand-computed mean and sample std of spec − base over the seeds both have."""
    diffs = [ARMS[spec][s][index] - ARMS["base"][s][index] for s in ARMS[spec] if s in ARMS["base"]]
    return float(np.mean(diffs)), float(np.std(diffs, ddof=1))


def test_domain_report_puts_base_first_and_pairs_every_arm_with_it_by_seed(domain_report: Report) -> None:
    _, summary, _ = domain_report
    groups = {g["values"]["objective.spec"]: g for g in summary["groups"]}
    # base, st-simcse, st-tsdae, then the grid's order (not the specs' natural order: simcse+distill first)
    assert [g["values"]["objective.spec"] for g in summary["groups"]] == [
        "base",
        "st-simcse",
        "st-tsdae",
        "simcse+distill",
        "simcse",
    ]
    assert summary["base"] == ["spec=base"] and groups["base"]["base"] == "self" and "delta_base" not in groups["base"]
    for spec in ("st-simcse", "st-tsdae", "simcse", "simcse+distill"):
        delta = groups[spec]["delta_base"]
        for key, index in (("avg", 0), ("train_ndcg_at_10", 1), ("ndcg_at_10", 2)):
            mean, std = paired(spec, index)
            assert delta[key]["paired"] and delta[key]["seeds"] == [1, 2] and delta[key]["n"] == 2
            assert delta[key]["mean"] == pytest.approx(mean) and delta[key]["std"] == pytest.approx(std)
    # simcse's test nDCG: (58.32 − 64.51, 59.00 − 64.51) = (−6.19, −5.51)
    assert groups["simcse"]["delta_base"]["ndcg_at_10"]["mean"] == pytest.approx(-5.85)
    assert groups["simcse"]["delta_base"]["ndcg_at_10"]["std"] == pytest.approx(0.68 / np.sqrt(2))
    # the seed base lacks counts in the arm's own mean, not in its difference
    assert groups["simcse+distill"]["ndcg_at_10"]["mean"] == pytest.approx(np.mean([66.0, 67.1, 90.0]))


def test_the_domain_table_leads_with_every_difference_from_base(domain_report: Report) -> None:
    """The domain table leads the report (and is the printed table); every Δ as the hand-computed pairs give it."""
    files, _, markdown = domain_report
    title = "Domain: retrieval and general ability"
    assert markdown.index(f"## {title}") < markdown.index("## STS (Spearman × 100)")
    assert files.table.splitlines()[0].split("|")[1:-1] == [
        f" {h} "
        for h in (
            "spec",
            "temperature",
            "seeds",
            "train nDCG@10",
            "test nDCG@10",
            "STS Avg",
            "Δ train vs base",
            "Δ test vs base",
            "Δ STS Avg vs base",
            "queries improved",
            "unchanged",
            "worsened",
        )
    ]
    base_row = cells_of(markdown, title, "base")
    assert base_row[:6] == ["base", "–", "2", "60.00 ± 0.00", "64.51 ± 0.00", "78.87 ± 0.00"]
    assert base_row[6:] == ["baseline"] * 6
    simcse = cells_of(markdown, title, "simcse")
    expected = [f"{m:+.2f} ± {s:.2f}" for m, s in (paired("simcse", 1), paired("simcse", 2), paired("simcse", 0))]
    assert simcse[6:9] == expected and simcse[7] == "-5.85 ± 0.48"
    distill = cells_of(markdown, title, "simcse+distill")
    assert distill[:3] == ["simcse+distill", "0.1", "3"]
    assert distill[7] == f"{paired('simcse+distill', 2)[0]:+.2f} ± {paired('simcse+distill', 2)[1]:.2f}"


def test_the_domain_table_counts_the_test_queries_each_seed_changed_against_base(domain_report: Report) -> None:
    _, summary, markdown = domain_report
    groups = {g["values"]["objective.spec"]: g for g in summary["groups"]}
    title = "Domain: retrieval and general ability"
    simcse = cells_of(markdown, title, "simcse")
    changes = groups["simcse"]["per_query_vs_base"]
    assert changes["per_seed"] == {
        "1": {"improved": 1, "unchanged": 2, "worsened": 2, "queries": 5},
        "2": {"improved": 1, "unchanged": 3, "worsened": 1, "queries": 5},
    }
    assert changes["improved"]["mean"] == 1.0 and changes["unchanged"]["mean"] == 2.5
    assert simcse[9:] == ["1.0 ± 0.0", "2.5 ± 0.7", "1.5 ± 0.7"]
    assert cells_of(markdown, title, "simcse+distill")[9:] == ["3.5 ± 0.7", "1.0 ± 0.0", "0.5 ± 0.7"]
    assert groups["simcse+distill"]["per_query_vs_base"]["seeds"] == [1, 2]  # seed 3 has no base to compare
    assert cells_of(markdown, title, "st-simcse")[9:] == ["0.0 ± –", "5.0 ± –", "0.0 ± –"]  # seed 2 has none
    assert cells_of(markdown, title, "st-tsdae")[9:] == ["n/a"] * 3 and "per_query_vs_base" not in groups["st-tsdae"]
    assert "of 5" in markdown.split(f"## {title}")[1].split("## ")[0]


def test_the_sts_tables_give_the_difference_from_base_and_html_matches(domain_report: Report) -> None:
    """The STS table: Δ Avg vs base beside the old columns, and a per-task table against base."""
    files, summary, markdown = domain_report
    groups = {g["values"]["objective.spec"]: g for g in summary["groups"]}
    expected_avg = f"{paired('simcse', 0)[0]:+.2f} ± {paired('simcse', 0)[1]:.2f}"
    sts_header = markdown.split("## STS (Spearman × 100)\n\n")[1].splitlines()[0]
    assert "| Δ Avg vs base | Δ Avg vs SimCSE | Δ Avg vs st-simcse | nDCG@10 |" in sts_header
    assert cells_of(markdown, "STS (Spearman × 100)", "base")[11:14] == ["baseline", "n/a", "n/a"]
    assert "delta" not in groups["base"] and "delta_st" not in groups["base"]  # base is no method to compare
    assert cells_of(markdown, "STS (Spearman × 100)", "simcse")[11] == expected_avg
    per_task = cells_of(markdown, "Difference from base (the starting model, untrained) per task", "simcse")
    stsb = [ARMS["simcse"][s][0] + OFFSETS[5] - (ARMS["base"][s][0] + OFFSETS[5]) for s in (1, 2)]
    assert per_task[2] == "2" and per_task[3 + 5] == f"{np.mean(stsb):+.2f} ± {np.std(stsb, ddof=1):.2f}"
    assert cells_of(markdown, "Runs", "seed=1__spec=base")[9:11] == ["60.00", "64.51"]

    # markdown and HTML in step: the same domain table
    title = "Domain: retrieval and general ability"
    page = files.html.read_text() if files.html else ""
    assert f"<h2>{title}</h2>" in page and "<td>-5.85 ± 0.48</td>" in page and "<td>2.5 ± 0.7</td>" in page


def test_query_changes_counts_the_queries_both_runs_score() -> None:
    base = {"a": 10.0, "b": 20.0, "c": 30.0, "only-base": 5.0}
    run = {"a": 11.0, "b": 20.0 + 1e-9, "c": 29.0, "only-run": 1.0}
    assert query_changes(run, base) == {"improved": 1, "unchanged": 1, "worsened": 1, "queries": 3}


def test_a_retrieval_sweep_without_base_keeps_its_tables_and_gets_no_difference_from_base(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    for spec in ("simcse", "st-simcse"):  # the same files as a domain sweep's arms, without base or train queries
        for seed in (1, 2):
            domain_result(folder, spec, seed)
    for path in (folder / "runs").glob("*/result.json"):
        document = json.loads(path.read_text())
        del document["scores"]["train_ndcg_at_10"]
        path.write_text(json.dumps(document))
    files = write_report(folder)
    summary = json.loads(files.json.read_text())
    markdown = files.markdown.read_text()
    assert summary["base"] is None and not any("delta_base" in g or "base" in g for g in summary["groups"])
    assert [g["values"]["objective.spec"] for g in summary["groups"]] == ["st-simcse", "simcse"]  # natural order
    assert markdown.index("## STS (Spearman × 100)") < markdown.index("## Domain: retrieval and general ability")
    assert files.table.startswith("| spec | seeds | STS12 |") and "vs base" not in markdown
    header = markdown.split("## Domain: retrieval and general ability\n\n")[1].splitlines()[0]
    assert header == "| spec | seeds | test nDCG@10 | STS Avg |"
    assert "train nDCG" not in markdown and "Difference from base" not in markdown
