"""Sweeps, their report and the geometry measures: a tiny grid end to end, the table's arithmetic
recomputed from the result files, skipping and failure handling, and hand-worked alignment/uniformity."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from smoothcse.cli.sweep import report, sweep
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.evaluation.data import STS_TASKS
from smoothcse.experiments.geometry import alignment, alignment_uniformity, uniformity
from smoothcse.experiments.grid import expand, load_grid, parse_grid, parse_overrides, run_name
from smoothcse.experiments.report import write_report
from smoothcse.experiments.report.summary import mean_std, paired_difference
from smoothcse.experiments.sweep import SweepOptions, plan
from tests.helpers import hashed_word_counts, hide_package, invoke, read_metrics, tiny_fixed, write_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, path
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


# ------------------------------------------------------------------------------------- geometry


def test_alignment_of_identical_embeddings_is_zero_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 8))
    assert alignment(x, x) == 0.0
    assert alignment(x, 3.5 * x) == pytest.approx(0.0, abs=1e-12)  # normalised first
    assert alignment(x, -x) == pytest.approx(4.0)  # ||u - (-u)||² = 4 for unit u


def test_uniformity_hand_worked_values() -> None:
    t = 2.0
    same = np.ones((5, 3))
    assert uniformity(same, t) == pytest.approx(0.0, abs=1e-12)  # all distances 0: log mean exp(0)
    antipodal = np.array([[1.0, 0.0], [-2.0, 0.0]])
    assert uniformity(antipodal, t) == pytest.approx(-8.0)  # one pair at squared distance 4: log e^-8
    orthogonal = np.eye(4)
    assert uniformity(orthogonal, t) == pytest.approx(-4.0)  # all pairs at squared distance 2
    n = 5  # a regular simplex reaches the lower bound -2t·n/(n-1)
    simplex = np.eye(n) - 1.0 / n
    assert uniformity(simplex, t) == pytest.approx(-2 * t * n / (n - 1))


def test_alignment_and_uniformity_match_naive_loops() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert alignment(x, y) == pytest.approx(np.mean([np.sum((a - b) ** 2) for a, b in zip(xn, yn)]))
    pairs = [np.exp(-2 * np.sum((xn[i] - xn[j]) ** 2)) for i in range(30) for j in range(i + 1, 30)]
    assert uniformity(x) == pytest.approx(math.log(np.mean(pairs)))


def test_alignment_uniformity_on_stsb_uses_the_pairs_above_4(data_dir: Path) -> None:
    def bag_of_words(sentences: list[str]) -> np.ndarray:
        return hashed_word_counts(sentences, 64).astype(np.float64) + 1e-3

    result = alignment_uniformity(bag_of_words, data_dir, "test")
    assert result["n_positive_pairs"] == 231 and result["n_sentences"] == 2551
    assert 0.0 < result["alignment"] < 4.0 and -4.0 - 4.0 / 2550 <= result["uniformity"] < 0.0
    with pytest.raises(ConfigError):
        alignment_uniformity(bag_of_words, data_dir, "validation")


# ------------------------------------------------------------------------------------- statistics


def test_mean_std_and_paired_difference() -> None:
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, float(np.std([1, 2, 4], ddof=1))))
    assert mean_std([5.0]) == (5.0, None)
    paired = paired_difference({1: 3.0, 2: 5.0, 3: 9.0}, {1: 1.0, 2: 2.0})
    assert paired["paired"] and paired["seeds"] == [1, 2] and paired["mean"] == pytest.approx(2.5)
    assert paired["std"] == pytest.approx(float(np.std([2.0, 3.0], ddof=1)))
    unpaired = paired_difference({1: 3.0, 2: 5.0}, {7: 1.0, 8: 2.0})
    assert not unpaired["paired"] and unpaired["mean"] == pytest.approx(2.5)
    assert unpaired["std"] == pytest.approx(math.sqrt(np.var([3, 5], ddof=1) + np.var([1, 2], ddof=1)))


# ------------------------------------------------------------------------------------- grid files


def test_grid_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        parse_grid({"grid": {"batch_sise": [8]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="Did you mean 'objective.gs_num'"):
        parse_grid({"grid": {"objective.gs_nm": [8]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="missing or empty"):
        parse_grid({"fixed": {"seed": 1}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="empty list"):
        parse_grid({"grid": {"seed": []}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="both in \\[fixed\\] and in \\[grid\\]"):
        parse_grid({"fixed": {"seed": 1}, "grid": {"seed": [1, 2]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="cannot be set in a sweep"):
        parse_grid({"grid": {"out": ["a", "b"]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="Did you mean 'description'"):
        parse_grid({"descripton": "x", "grid": {"seed": [1]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="must be an integer"):
        parse_grid({"fixed": {"max_steps": "ten"}, "grid": {"seed": [1]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="no such file, and not a built-in grid. Did you mean 'compare-objectives'"):
        load_grid("compare-objective")
    grid = parse_grid({"grid": {"seed": [1, 2]}}, name="g", source="g.toml")
    with pytest.raises(ConfigError, match="grid key"):
        parse_overrides({"seed": 3}, grid)
    result = invoke(sweep, tmp_path / "missing.toml")
    assert isinstance(result.exception, ConfigError) and "no such file" in str(result.exception)


def test_run_names_are_filesystem_safe_and_follow_the_grid() -> None:
    assert (
        run_name({"objective.spec": "simcse+gs", "batch_size": 64, "seed": 42})
        == "spec=simcse+gs__batch_size=64__seed=42"
    )
    assert run_name({"model": "/a/b c", "lr": 3e-5, "objective.seed": 1}) == "model=-a-b-c__lr=3e-05__objective.seed=1"
    long = run_name({"model": "x" * 400})
    assert len(long) <= 150 and long != run_name({"model": "x" * 399})
    grid = parse_grid({"grid": {"objective": ["simcse", "simcse+is"], "seed": [1, 2]}}, name="g", source="g")
    assert [r.name for r in expand(grid)] == [
        "spec=simcse__seed=1",
        "spec=simcse__seed=2",
        "spec=simcse+is__seed=1",
        "spec=simcse+is__seed=2",
    ]


def test_builtin_compare_objectives_grid(tmp_path: Path) -> None:
    grid = load_grid("compare-objectives")
    assert grid.base_recipe == "simcse-bert-base" and grid.fixed == {"max_steps": 2000}
    assert grid.sts_tasks is None and grid.eval_tasks == ("sts",)  # default: all 7 STS tasks
    assert grid.axes["seed"] == [42, 43, 44]
    assert grid.axes["objective.spec"] == [
        "simcse",
        "simcse+gs",
        "simcse+is",
        "simcse+soft-weight",
        "simcse+soft-temp",
        "simcse+gs+is+soft-weight",
    ]
    planned = plan(grid, SweepOptions(out=tmp_path / "sweep"))
    assert len(planned) == 18 and all(p.status == "pending" for p in planned)
    assert planned[0].config is not None and planned[0].config.max_steps == 2000 and planned[0].config.lr == 3e-5
    assert not (tmp_path / "sweep").exists()  # planning writes nothing


# ------------------------------------------------------------------------------------- report arithmetic


def fake_result(folder: Path, spec: str, batch: int, seed: int, scores: list[float], status: str = "ok") -> dict:
    values = {"objective.spec": spec, "batch_size": batch, "seed": seed}
    name = run_name(values)
    result = {
        "name": name,
        "values": values,
        "status": status,
        "config": {"seed": seed, "batch_size": batch, "objective": {"spec": spec}},
        "train": {"best_dev": 70.0 + seed % 7},
        "seconds": {"train": 10.0, "eval": 2.0, "total": 12.0},
        "dev_curve": [[0, 50.0], [125, 60.0 + seed % 5]],
        "geometry": {"alignment": 0.2 + seed / 1000, "uniformity": -2.0 - seed / 100},
    }
    if status == "ok":
        result["scores"] = {**dict(zip(STS_TASKS, scores)), "avg": float(np.mean(scores))}
    else:
        result["error"] = {"stage": "train", "type": "RuntimeError", "message": "out of memory"}
    run_dir = folder / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps(result))
    return result


def test_report_table_is_mean_and_sample_std_with_paired_differences(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    results = []
    for spec in ("simcse", "simcse+gs"):
        for batch in (64, 128):
            seeds = (1, 2, 3) if not (spec == "simcse+gs" and batch == 128) else (1,)
            for seed in seeds:
                results.append(fake_result(tmp_path, spec, batch, seed, list(rng.uniform(50, 80, size=7))))
    fake_result(tmp_path, "simcse+gs", 128, 2, [], status="failed")
    files = write_report(tmp_path, html_report=True)
    summary = json.loads(files.json.read_text())
    markdown = files.markdown.read_text()
    assert summary["method_keys"] == ["objective.spec", "batch_size"]

    def runs_of(spec: str, batch: int) -> list[dict]:
        return [r for r in results if r["values"]["objective.spec"] == spec and r["values"]["batch_size"] == batch]

    for group in summary["groups"]:
        mine = runs_of(group["values"]["objective.spec"], group["values"]["batch_size"])
        for column in (*STS_TASKS, "avg"):
            values = [r["scores"][column] for r in mine]
            assert group["sts"][column]["mean"] == pytest.approx(np.mean(values))
            if len(values) > 1:
                assert group["sts"][column]["std"] == pytest.approx(np.std(values, ddof=1))
            else:
                assert group["sts"][column]["std"] is None
        row = next(
            line
            for line in markdown.splitlines()
            if line.startswith(f"| {group['values']['objective.spec']} | {group['values']['batch_size']} |")
        )
        avg = [r["scores"]["avg"] for r in mine]
        expected = f"{np.mean(avg):.2f} ± " + (f"{np.std(avg, ddof=1):.2f}" if len(avg) > 1 else "–")
        assert expected in row
        if group["values"]["objective.spec"] == "simcse+gs":
            base = {r["config"]["seed"]: r["scores"]["avg"] for r in runs_of("simcse", group["values"]["batch_size"])}
            diffs = [r["scores"]["avg"] - base[r["config"]["seed"]] for r in mine]
            assert group["delta"]["avg"]["mean"] == pytest.approx(np.mean(diffs))
            assert group["delta"]["avg"]["n"] == len(diffs)
            sign = f"{np.mean(diffs):+.2f} ± " + (f"{np.std(diffs, ddof=1):.2f}" if len(diffs) > 1 else "–")
            assert sign in row
        else:
            assert "baseline" in row
    assert [f["name"] for f in summary["failed"]] == ["spec=simcse+gs__batch_size=128__seed=2"]
    assert "out of memory" in markdown
    assert set(files.plots) == {"batch_size", "geometry", "dev"}
    for path in files.plots.values():
        assert_png(path)
    assert files.html is not None and "<table>" in files.html.read_text()


# ------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_sweep(tiny_bert: Path, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """2 objectives × 2 seeds of a tiny random BERT, 3 steps each, scored on STS-B only; run once."""
    root = tmp_path_factory.mktemp("sweep")
    grid = write_grid(
        root / "tiny.toml",
        f"""
description = "tiny test grid"
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, root / "cache", eval_every=3)}
[grid]
"objective.spec" = ["simcse", "simcse+gs"]
seed = [42, 43]
""",
    )
    out = root / "out"
    result = invoke(sweep, grid, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    return grid, out, result.output


def test_sweep_writes_a_result_per_run(tiny_sweep: tuple[Path, Path, str]) -> None:
    _, out, output = tiny_sweep
    lines = [line for line in output.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and re.match(r"\[1/4\] spec=simcse seed=42 \.\.\. done \(STS avg -?\d+\.\d\d", lines[0])
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == [
        "spec=simcse+gs__seed=42",
        "spec=simcse+gs__seed=43",
        "spec=simcse__seed=42",
        "spec=simcse__seed=43",
    ]
    for name in names:
        result = json.loads((out / "runs" / name / "result.json").read_text())
        assert result["status"] == "ok"
        assert result["config"]["max_steps"] == 3 and result["config"]["seed"] == result["values"]["seed"]
        assert result["train"]["steps"] == 3 and [p[0] for p in result["dev_curve"]] == [0, 3]
        logged = [r for r in map(json.loads, (out / "runs" / name / "metrics.jsonl").open()) if "loss" in r]
        assert result["train"]["terms"]["infonce"] == [logged[0]["infonce"], logged[-1]["infonce"]]
        assert result["train"]["terms"]["grad_norm"] == [logged[0]["grad_norm"], logged[-1]["grad_norm"]]
        assert list(result["sts"]["tasks"]) == ["STSb"] and result["scores"]["avg"] == result["scores"]["STSb"]
        assert result["geometry"]["n_positive_pairs"] == 231
        assert result["seconds"]["total"] >= result["seconds"]["train"] > 0
        assert not (out / "runs" / name / "checkpoints").exists()  # pruned; the exported model stays
        assert (out / "runs" / name / "model" / "model.safetensors").is_file()
    sweep_doc = json.loads((out / "sweep.json").read_text())
    assert sweep_doc["counts"] == {"ok": 4, "failed": 0, "pending": 0}


def test_report_of_the_tiny_sweep(tiny_sweep: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, out, _ = tiny_sweep
    target = tmp_path / "rep" / "tiny.md"
    result = invoke(report, out, "--out", target, "--html")
    assert result.exit_code == 0, (result.output, result.exception)
    markdown = target.read_text()
    results = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    by = {(r["values"]["objective.spec"], r["values"]["seed"]): r["scores"]["avg"] for r in results}
    for spec in ("simcse", "simcse+gs"):
        avg = [by[(spec, 42)], by[(spec, 43)]]
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {spec} | 2 |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[9] == f"{np.mean(avg):.2f} ± {np.std(avg, ddof=1):.2f}"  # Avg column
        assert cells[7] == cells[9] and cells[2] == "n/a"  # STSb only: Avg = STSb; STS12 not scored
    diffs = [by[("simcse+gs", s)] - by[("simcse", s)] for s in (42, 43)]
    assert f"{np.mean(diffs):+.2f} ± {np.std(diffs, ddof=1):.2f}" in markdown
    assert "Only STSb evaluated" in markdown
    terms = [json.loads(p.read_text())["train"]["terms"] for p in (out / "runs").glob("spec=simcse__*/result.json")]
    first, last = (np.mean([t["infonce"][i] for t in terms]) for i in (0, 1))
    training = next(line for line in markdown.splitlines() if line.startswith("| simcse | 2 |") and "→" in line)
    assert f"infonce {first:.3g} → {last:.3g}" in training, training
    plots = sorted((tmp_path / "rep" / "tiny_plots").glob("*.png"))
    assert [p.name for p in plots] == ["alignment_uniformity.png", "dev_spearman.png"]  # batch size does not vary
    for path in plots:
        assert_png(path)
    assert (tmp_path / "rep" / "tiny.html").is_file() and (tmp_path / "rep" / "tiny.json").is_file()


def test_second_sweep_skips_complete_runs_and_refuses_changed_settings(tiny_sweep: tuple[Path, Path, str]) -> None:
    grid, out, _ = tiny_sweep
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    result = invoke(sweep, grid, "--out", out)
    assert result.exit_code == 0 and result.output.count("skipped (complete") == 4
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")} == before
    changed = invoke(sweep, grid, "--out", out, "--max-steps", "5")
    assert isinstance(changed.exception, SmoothCSEError) and "max_steps" in str(changed.exception)
    dry = invoke(sweep, grid, "--out", out, "--dry-run")
    assert dry.exit_code == 0 and dry.output.count("complete: skip") == 4


def test_failed_runs_are_recorded_and_the_sweep_goes_on(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smoothcse.evaluation.sts as sts_module

    asked: list[list[str]] = []

    def fake_evaluate_sts(embed, data_dir=None, tasks=None, **_):  # full STS costs ~20 s on this tiny model
        asked.append(list(tasks))
        embed(["a sentence", "another sentence"])
        return {
            "tasks": {t: {"spearman": 10.0 + i} for i, t in enumerate(tasks)},
            "avg": {"spearman": 13.0},
            "failed": [],
        }

    monkeypatch.setattr(sts_module, "evaluate_sts", fake_evaluate_sts)
    grid = write_grid(
        tmp_path / "fail.toml",
        f"""
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", seed=42, max_len=None)}
[grid]
max_len = [16, 512]                       # 512 > the tiny model's 128 positions: fails in training
"objective.spec" = ["simcse", "simcse+nope"]  # an unknown component: fails when the config is built
""",
    )
    out = tmp_path / "out"
    refused = invoke(sweep, grid, "--out", out)  # a config that cannot be built stops the sweep before any run
    assert refused.exit_code != 0 and "nope" in str(refused.exception) and not (out / "runs").exists()
    grid.write_text(grid.read_text().replace('"simcse", "simcse+nope"', '"simcse"'))
    result = invoke(sweep, grid, "--out", out)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert asked == [list(STS_TASKS)]  # by default all 7 STS tasks are scored
    statuses = {p.parent.name: json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")}
    assert statuses["max_len=16__spec=simcse"]["status"] == "ok"
    bad_len = statuses["max_len=512__spec=simcse"]
    assert bad_len["status"] == "failed" and bad_len["error"]["stage"] == "train"
    assert "max-len 512" in bad_len["error"]["message"]
    assert "FAILED at train" in result.output and "1 failed" in result.output
    # the next invocation skips the complete run and retries the failed one
    again = invoke(sweep, grid, "--out", out)
    assert again.exit_code == 1 and again.output.count("skipped (complete") == 1 and again.output.count("FAILED") == 1
    # a trained run whose result was lost is evaluated again, not retrained
    (out / "runs" / "max_len=16__spec=simcse" / "result.json").unlink()
    third = invoke(sweep, grid, "--out", out)
    assert "max_len=16 spec=simcse ... evaluated" in third.output
    files = write_report(out)
    summary = json.loads(files.json.read_text())
    assert summary["ok"] == 1 and len(summary["failed"]) == 1


# ------------------------------------------------------------------------------------- st-simcse


def test_st_simcse_arm_trains_with_sentence_transformers_and_the_report_pairs_against_it(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path
) -> None:
    grid = write_grid(
        tmp_path / "st.toml",
        f"""
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", max_steps=None, eval_every=1, steps=2)}
[grid]
seed = [42]
"objective.spec" = ["st-simcse", "simcse"]
""",
    )
    out = tmp_path / "out"
    result = invoke(sweep, grid, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    st_dir, simcse_dir = out / "runs" / "seed=42__spec=st-simcse", out / "runs" / "seed=42__spec=simcse"
    st, ours = (json.loads((d / "result.json").read_text()) for d in (st_dir, simcse_dir))
    assert st["status"] == ours["status"] == "ok"
    assert st["framework"] == "sentence-transformers" and ours["framework"] == "smoothcse"
    for run in (st, ours):  # the `steps` shorthand: one epoch of exactly 2 batches of the first 16 sentences
        assert run["config"]["max_steps"] == 2 and run["config"]["max_sentences"] == 16
        assert run["train"]["steps"] == 2 and [p[0] for p in run["dev_curve"]] == [0, 1, 2]
        assert math.isfinite(run["scores"]["STSb"])
    assert st["train"]["best_step"] in (1, 2) and st["train"]["framework"].startswith("sentence-transformers")
    # trained (the weights moved), saved without the training-only MLP head, loadable by sentence-transformers
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    before, after = (
        load_file(str(tiny_bert / "model.safetensors")),
        load_file(str(st_dir / "model" / "model.safetensors")),
    )
    shared = [k for k in after if k in before]
    assert shared and any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in shared)
    modules = json.loads((st_dir / "model" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"]
    assert SentenceTransformer(str(st_dir / "model"), device="cpu").encode(["a sentence"]).shape == (1, 32)
    losses = read_metrics(st_dir)
    assert [r["step"] for r in losses if "loss" in r] == [2]  # log_every 25: the last step, as smoothcse logs it

    rep = invoke(report, out)
    assert rep.exit_code == 0, (rep.output, rep.exception)
    lines = rep.output.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[-2:] == ["Δ Avg vs SimCSE", "Δ Avg vs st-simcse"]
    st_row = [c.strip() for c in next(x for x in lines if x.startswith("| st-simcse |")).strip("|").split("|")]
    our_row = [c.strip() for c in next(x for x in lines if x.startswith("| simcse |")).strip("|").split("|")]
    assert st_row[-1] == "baseline" and our_row[-2] == "baseline"
    expected = ours["scores"]["avg"] - st["scores"]["avg"]
    assert our_row[-1] == f"{expected:+.2f} ± –"
    assert st_row[-2] == f"{-expected:+.2f} ± –"


def test_st_simcse_feeds_the_trainer_smoothcse_s_first_sentences_in_smoothcse_s_order(small_corpus: Path) -> None:
    from smoothcse.config import TrainConfig
    from smoothcse.data.corpus import BatchSchedule
    from smoothcse.experiments.st_simcse import read_sentences, schedule_order

    config = TrainConfig(data=str(small_corpus), batch_size=8, max_sentences=40, seed=7)
    sentences = read_sentences(config)
    lines = [line.strip() for line in small_corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert sentences == lines[:40]
    order, steps = schedule_order(len(sentences), config)
    schedule = BatchSchedule(40, 8, 7)
    assert steps == 5 and order == [int(i) for s in range(5) for i in schedule.batch(s)]
    assert sorted(order) == list(range(40))  # one epoch: each of the first 40 sentences once


def test_st_simcse_without_the_bench_extra_fails_in_one_line_and_the_other_arms_run(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smoothcse.experiments import st_simcse

    with monkeypatch.context() as patch:
        hide_package(patch, "datasets")
        with pytest.raises(SmoothCSEError) as err:
            st_simcse.require_trainer()
    assert "needs datasets: pip install 'smoothcse[bench]'" in str(err.value) and "\n" not in str(err.value)
    # In a sweep: hiding a package in-process also breaks sentence-transformers' own import-time checks
    # (a real install without the extra imports sentence-transformers fine), so the sweep sees a trainer
    # module that is genuinely not installed instead.
    monkeypatch.setattr(st_simcse, "TRAINER_MODULES", ("datasets", "smoothcse_test_no_such_module"))
    grid = write_grid(
        tmp_path / "st.toml",
        f"""
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", max_steps=1)}
[grid]
"objective.spec" = ["st-simcse", "simcse"]
""",
    )
    result = invoke(sweep, grid, "--out", tmp_path / "out")
    assert result.exit_code == 1  # a run failed; the others ran
    line = next(x for x in result.output.splitlines() if "spec=st-simcse" in x)
    assert "FAILED at train" in line and "pip install 'smoothcse[bench]'" in line
    assert re.search(r"spec=simcse \.\.\. done", result.output)


def test_grid_steps_shorthand_and_seeds_option(tmp_path: Path) -> None:
    from smoothcse.experiments.grid import with_seeds

    grid = load_grid("quality")
    assert grid.axes["objective.spec"][:2] == ["st-simcse", "simcse"] and grid.fixed["steps"] == 1000
    overrides = parse_overrides({"steps": 250}, grid)
    planned = plan(with_seeds(grid, "42,43"), SweepOptions(out=tmp_path, overrides=overrides))
    assert len(planned) == 2 * len(grid.axes["objective.spec"])
    assert [p.spec.values["seed"] for p in planned[:9]] == [42] * 8 + [43]  # every arm's first seed first
    config = planned[0].config
    assert config is not None and (config.max_steps, config.max_sentences, config.epochs) == (250, 16000, 1)
    assert config.objective.spec == "simcse" and config.model == "all-MiniLM-L6-v2"
    with pytest.raises(ConfigError, match="max_sentences"):
        parse_overrides({"steps": 10, "max_sentences": 5}, grid)
    with pytest.raises(ConfigError, match="positive integer"):
        parse_overrides({"steps": 0}, grid)
    with pytest.raises(ConfigError, match="--seeds"):
        with_seeds(grid, "42,x")


# ------------------------------------------------------------------------------------- arms and dev sets


def test_arms_bundle_settings_and_are_checked() -> None:
    grid = parse_grid(
        {
            "grid": {
                "seed": [1, 2],
                "arm": [
                    {"objective.spec": "simcse"},
                    {"objective": {"spec": "simcse+soft-weight", "soft_direction": "down"}},
                ],
            }
        },
        name="g",
        source="g.toml",
    )
    runs = expand(grid)
    assert [r.values for r in runs[:2]] == [
        {"seed": 1, "objective.spec": "simcse"},
        {"seed": 1, "objective.spec": "simcse+soft-weight", "objective.soft_direction": "down"},
    ]
    assert [r.name for r in runs[:2]] == ["seed=1__spec=simcse", "seed=1__spec=simcse+soft-weight__soft_direction=down"]
    with pytest.raises(ConfigError, match="arm 2: unknown key 'objective.soft_directon'"):
        parse_grid(
            {"grid": {"arm": [{"objective.spec": "simcse"}, {"objective.soft_directon": "up"}]}}, name="g", source="g"
        )
    with pytest.raises(ConfigError, match="'seed' is both a grid key and set by an arm"):
        parse_grid({"grid": {"seed": [1], "arm": [{"seed": 3}, {"seed": 4}]}}, name="g", source="g")
    with pytest.raises(ConfigError, match="two arms have the same settings"):
        parse_grid({"grid": {"arm": [{"seed": 3}, {"seed": 3}]}}, name="g", source="g")
    with pytest.raises(ConfigError, match="is a config key"):
        parse_grid({"grid": {"lr": [{"seed": 3}]}}, name="g", source="g")
    with pytest.raises(ConfigError, match="arm 1: 'seed' is also in \\[fixed\\]"):
        parse_grid({"fixed": {"seed": 1}, "grid": {"arm": [{"seed": 3}]}}, name="g", source="g")


def test_builtin_softcse_grid_crosses_no_setting_with_an_objective_it_does_not_belong_to() -> None:
    grid = load_grid("softcse")
    runs = expand(grid)
    assert len(runs) == 21 and grid.eval_tasks == ("sts", "dev")
    simcse = [r for r in runs if r.values["objective.spec"] == "simcse"]
    assert [r.values for r in simcse] == [{"seed": s, "objective.spec": "simcse"} for s in (42, 43, 44)]
    linear_down = [
        r
        for r in runs
        if r.values.get("objective.soft_weight_form") == "linear" and r.values["objective.soft_direction"] == "down"
    ]
    assert len(linear_down) == 3 and all(r.values["objective.soft_strength"] == 1.0 for r in linear_down)


def test_a_sweep_with_arms_and_dev_sets_reports_the_dev_table(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path
) -> None:
    soft_arm = (
        '{ "objective.spec" = "simcse+soft-weight", "objective.soft_weight_form" = "linear", '
        '"objective.soft_direction" = "down" }'
    )
    grid = write_grid(
        tmp_path / "arms.toml",
        f"""
eval_tasks = ["sts", "dev"]
sts_tasks = ["STSb"]
[fixed]
{tiny_fixed(tiny_bert, small_corpus, tmp_path / "cache", max_steps=2)}
[grid]
seed = [42, 43]
arm = [
    {{ "objective.spec" = "simcse" }},
    {soft_arm},
]
""",
    )
    out = tmp_path / "out"
    result = invoke(sweep, grid, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    results = {
        (r["values"]["objective.spec"], r["values"]["seed"]): r
        for r in (json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json"))
    }
    assert len(results) == 4
    for r in results.values():
        assert r["status"] == "ok" and set(r["dev"]["tasks"]) == {"STSb", "SICK-R"} and r["dev"]["mode"] == "dev"
        assert r["scores"]["dev_avg"] == pytest.approx((r["scores"]["dev:STSb"] + r["scores"]["dev:SICK-R"]) / 2)
    soft = results[("simcse+soft-weight", 42)]
    assert (
        soft["config"]["objective"]["soft_weight_form"] == "linear"
        and soft["config"]["objective"]["soft_direction"] == "down"
    )
    target = tmp_path / "report.md"
    assert invoke(report, out, "--out", target).exit_code == 0
    markdown = target.read_text()
    assert "## Development sets (Spearman × 100)" in markdown
    diffs = [
        results[("simcse+soft-weight", s)]["scores"]["dev:STSb"] - results[("simcse", s)]["scores"]["dev:STSb"]
        for s in (42, 43)
    ]
    row = next(
        line
        for line in markdown.split("## Development sets")[1].splitlines()
        if line.startswith("| simcse+soft-weight |")
    )
    assert f"{np.mean(diffs):+.2f} ± {np.std(diffs, ddof=1):.2f}" in row  # paired against SimCSE despite its arm's keys
    simcse_row = next(line for line in markdown.splitlines() if line.startswith("| simcse | – | – | 2 |"))
    assert "baseline" in simcse_row
    again = invoke(sweep, grid, "--out", out)
    assert again.exit_code == 0 and again.output.count("skipped (complete") == 4


def test_a_changed_option_of_an_unused_component_leaves_a_complete_run_reusable() -> None:
    from smoothcse.config import build_config
    from smoothcse.experiments.sweep import config_differences

    def config(spec: str, **objective: object) -> dict:
        return build_config(overrides={"objective": {"spec": spec, **objective}}).to_dict()

    # a SoftCSE default that moved does not touch a SimCSE or GS run ...
    assert config_differences(config("simcse", soft_direction="up"), config("simcse")) == []
    assert config_differences(config("simcse+gs", soft_direction="up"), config("simcse+gs")) == []
    # ... but it is a different run for the arms that use it, and a used option always counts
    assert config_differences(config("simcse+soft-weight", soft_direction="up"), config("simcse+soft-weight")) == [
        "objective.soft_direction"
    ]
    assert config_differences(config("simcse+gs", gs_num=8), config("simcse+gs")) == ["objective.gs_num"]
    assert config_differences(config("simcse"), config("simcse+gs")) == ["objective.spec"]


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (Path(__file__).parents[2] / "src/smoothcse/grids").glob("*.toml"))
)
def test_every_run_of_a_builtin_grid_is_a_config_smoothcse_accepts(name: str, tmp_path: Path) -> None:
    """A refused combination in a built-in grid would only show as a failed run hours into a sweep."""
    planned = plan(load_grid(name), SweepOptions(out=tmp_path / name))
    assert planned and [(p.spec.name, p.error) for p in planned if p.config is None] == []
