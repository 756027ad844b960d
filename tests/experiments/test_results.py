"""RunResult and SweepRecord: every result.json a sweep wrote reads back the same way (retrieval of the files
written before it was stored × 100 converted), writes back unchanged, and feeds the sweep's headline scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smoothcse.errors import ConfigError
from smoothcse.experiments.grid import check_steps
from smoothcse.experiments.results import RESULT_FORMAT, RunError, RunResult, SweepEntry, SweepRecord
from smoothcse.experiments.sweep import SweepOptions, eval_failures, headline_scores, load_grid, plan

# A result.json exactly as the sweep wrote it before RunResult (format 1: no "format" key), shortened.
CURRENT_FORMAT_1 = {
    "name": "seed=42__spec=st-simcse",
    "values": {"seed": 42, "objective.spec": "st-simcse"},
    "status": "ok",
    "config": {
        "model": "all-MiniLM-L6-v2",
        "seed": 42,
        "batch_size": 64,
        "max_steps": 100,
        "objective": {"spec": "simcse", "temperature": 0.05},
    },
    "grid": "built-in grid quality",
    "framework": "sentence-transformers",
    "started_at": "2026-12-02T18:24:30+00:00",
    "train": {
        "steps": 100,
        "best_dev": None,
        "best_step": None,
        "final_dev": None,
        "initial_dev": None,
        "skipped_steps": 0,
        "seconds": 631.62,
        "framework": "sentence-transformers 6.3.0",
    },
    "dev_curve": [],
    "sts": {
        "mode": "test",
        "metric": "spearman",
        "data_dir": "/data",
        "tasks": {"STSb": {"split": "test", "spearman": 83.05, "pearson": 83.45, "n_pairs": 1379}},
        "avg": {"spearman": 83.05, "tasks": ["STSb"]},
        "failed": [],
    },
    "geometry": {
        "alignment": 0.3073,
        "uniformity": -3.8317,
        "dataset": "STSb",
        "split": "test",
        "threshold": 4.0,
        "alpha": 2.0,
        "t": 2.0,
        "n_positive_pairs": 231,
        "n_sentences": 2551,
    },
    "scores": {"STSb": 83.05, "avg": 83.05},
    "seconds": {"train": 638.0, "eval": 264.72, "total": 903.17},
    "finished_at": "2026-12-02T18:39:33+00:00",
}


def write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_result_written_by_the_previous_code_reads_and_writes_back_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "runs" / "r" / "result.json", CURRENT_FORMAT_1)
    result = RunResult.load(path)
    assert result is not None and result.folder == path.parent
    assert (result.name, result.status, result.framework, result.seed) == (
        "seed=42__spec=st-simcse",
        "ok",
        "sentence-transformers",
        42,
    )
    assert result.ok and result.score("avg") == 83.05 and result.score("transfer_avg") is None
    assert (result.alignment, result.uniformity, result.best_dev) == (0.3073, -3.8317, None)
    assert result.elapsed("train") == 638.0 and result.setting("batch_size") == 64 and result.error is None
    document = result.to_dict()
    assert document.pop("format") == RESULT_FORMAT == 2
    assert document == CURRENT_FORMAT_1 and list(document) == list(CURRENT_FORMAT_1)  # same keys, same order
    result.save(tmp_path / "again.json")
    assert RunResult.load(tmp_path / "again.json") == result
    assert RunResult.load(path.parent) == result  # a run folder works too
    assert RunResult.load(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert RunResult.load(tmp_path / "bad.json") is None


def test_retrieval_of_format_1_is_converted_to_times_100_once(tmp_path: Path) -> None:
    old = {
        **CURRENT_FORMAT_1,
        "retrieval": {
            "task": "retrieval",
            "main_metric": "ndcg_at_10",
            "main_score": 0.6451,
            "metrics": {"ndcg_at_10": 0.6451, "recall_at_100": 0.925},
        },
        "scores": {**CURRENT_FORMAT_1["scores"], "ndcg_at_10": 64.51},
    }
    result = RunResult.load(write(tmp_path / "old.json", old))
    assert result is not None and result.retrieval is not None
    assert result.retrieval["main_score"] == pytest.approx(64.51)
    assert result.retrieval["metrics"] == pytest.approx({"ndcg_at_10": 64.51, "recall_at_100": 92.5})
    assert headline_scores(result)["ndcg_at_10"] == pytest.approx(result.score("ndcg_at_10"))  # one scale
    result.save(tmp_path / "new.json")
    again = RunResult.load(tmp_path / "new.json")
    assert again is not None and again.retrieval == result.retrieval  # format 2: not converted again
    assert old["retrieval"]["main_score"] == 0.6451  # the document read is not modified


def test_a_minimal_or_failed_result_loads(tmp_path: Path) -> None:
    failed = {
        "name": "x",
        "values": {"seed": 1},
        "status": "failed",
        "config": None,
        "error": {"stage": "config", "type": "ConfigError", "message": "bad", "traceback": ""},
        "seconds": {"train": 0.0, "eval": 0.0, "total": 0.01},
        "future_key": [1, 2],
    }
    result = RunResult.load(write(tmp_path / "runs" / "x" / "result.json", failed))
    assert result is not None and not result.ok and result.settings == {}
    assert result.error == RunError("config", "ConfigError", "bad", "")
    assert result.score("avg") is None and result.alignment is None and result.best_dev is None
    assert result.to_dict() == {**failed, "format": RESULT_FORMAT}  # unknown keys are kept
    nameless = RunResult.load(write(tmp_path / "runs" / "y" / "result.json", {"status": "ok"}))
    assert nameless is not None and nameless.name == "y" and not nameless.ok  # ok needs scores


def test_headline_scores_and_failures_from_a_result() -> None:
    result = RunResult(
        name="r",
        sts={"tasks": {"STSb": {"spearman": 80.0}}, "avg": {"spearman": 80.0}, "failed": []},
        dev={
            "tasks": {"STSb": {"spearman": 70.0}, "SICK-R": {"error": "missing"}},
            "avg": {"spearman": None},
            "failed": ["SICK-R"],
        },
        retrieval={"main_score": 52.31, "metrics": {"ndcg_at_10": 52.31}},
    )
    assert headline_scores(result) == {
        "STSb": 80.0,
        "avg": 80.0,
        "dev:STSb": 70.0,
        "dev:SICK-R": None,
        "dev_avg": None,
        "ndcg_at_10": 52.31,
    }
    assert eval_failures(result) == ["dev:SICK-R"]


def test_sweep_record_round_trip(tmp_path: Path) -> None:
    grid = load_grid("quality")
    record = SweepRecord(
        grid=grid,
        keys=list(grid.axes),
        overrides={"steps": 100},
        eval_tasks=["sts"],
        runs=[
            SweepEntry.of("a", {"seed": 42}, None),
            SweepEntry.of("b", {"seed": 43}, RunResult.from_dict(CURRENT_FORMAT_1)),
        ],
        counts={"ok": 1, "failed": 0, "pending": 1},
        updated_at="now",
    )
    record.save(tmp_path)
    document = json.loads((tmp_path / "sweep.json").read_text())
    assert list(document) == ["grid", "keys", "overrides", "eval_tasks", "sts_tasks", "runs", "counts", "updated_at"]
    assert document["grid"] == grid.to_dict()
    assert document["runs"][1] == {
        "name": "b",
        "values": {"seed": 43},
        "status": "ok",
        "sts_avg": 83.05,
        "seconds": 903.17,
        "error": None,
    }
    assert document["runs"][0]["status"] == "pending"
    loaded = SweepRecord.load(tmp_path)
    assert loaded is not None and loaded.to_dict() == document


def test_steps_with_max_steps_is_refused_once_for_every_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'steps' and max_steps, max_sentences are both set"):
        check_steps({"steps": 3, "max_steps": 1, "max_sentences": 2}, "here")
    check_steps({"steps": 3}, "here")
    # the grid fixes steps; an override of max_steps wins, as every flag does, and steps keeps its sentence count
    planned = plan(load_grid("quality"), SweepOptions(out=tmp_path, overrides={"max_steps": 5}))
    assert all(p.config is not None and (p.config.max_steps, p.config.max_sentences) == (5, 64000) for p in planned)


def test_loss_terms_are_each_logged_term_at_the_first_and_last_logged_step() -> None:
    from smoothcse.experiments.results import loss_terms

    records = [
        {"step": 0, "stsb_dev": 70.0},  # a dev record before training: not a log line
        {"step": 25, "lr": 3e-5, "loss": 1.5, "infonce": 1.2, "distill": 0.3, "steps_per_s": 0.1, "grad_norm": 8.0},
        {"step": 50, "lr": 2e-5, "loss": 1.0, "infonce": 0.9, "distill": 0.1, "steps_per_s": 0.2, "grad_norm": 6.0},
        {"step": 75, "lr": 1e-5, "loss": 1e-5, "infonce": 1e-5, "distill": 0.0, "steps_per_s": 0.3, "grad_norm": 1e-4},
        {"step": 75, "stsb_dev": 71.0},
        {"summary": {"steps": 75}},
    ]
    assert loss_terms(records) == {
        "loss": [1.5, 1e-5],
        "infonce": [1.2, 1e-5],
        "distill": [0.3, 0.0],
        "grad_norm": [8.0, 1e-4],
    }
    assert loss_terms([{"summary": {"steps": 0}}]) == {}
