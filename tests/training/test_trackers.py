"""--report-to: the flag, the start-up check, and what TensorBoard and MLflow (offline, local stores) receive,
read back from their own files and compared with metrics.jsonl."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from smoothcse.config import TrainConfig, build_config
from smoothcse.errors import ConfigError, SmoothCSEError
from smoothcse.training import trackers
from smoothcse.training.loop import train
from smoothcse.training.metrics import MetricsLog
from smoothcse.training.trackers import Reporter, TrackedRun, Tracker, check_trackers, flat_hyperparameters
from tests.helpers import REPO_ROOT, read_metrics, tiny_train_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def tiny_config(tiny_bert: Path, corpus: Path, out: Path, **overrides: Any) -> TrainConfig:
    """Four steps, evaluated at 2 and 4."""
    config: TrainConfig = tiny_train_config(tiny_bert, corpus, out, **{"max_steps": 4, "eval_every": 2, **overrides})
    return config


def mlflow_client(store: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.resolve().as_uri())


def tensorboard_events(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalar_series(events: Any, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in events.Scalars(tag)]


@pytest.fixture(autouse=True)
def offline_trackers(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracker may reach a server: local stores only, whatever the environment says."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------------------- the flag


def test_report_to_accepts_repeats_commas_and_none(tmp_path: Path) -> None:
    assert build_config().report_to == []
    assert build_config(overrides={"report_to": "tensorboard, MLflow"}).report_to == ["tensorboard", "mlflow"]
    assert build_config(overrides={"report_to": ["tensorboard", "mlflow,tensorboard"]}).report_to == [
        "tensorboard",
        "mlflow",
    ]
    assert build_config(overrides={"report_to": "none"}).report_to == []
    with pytest.raises(ConfigError, match=r"--report-to 'tensorbord' is not one of .* Did you mean 'tensorboard'\?"):
        build_config(overrides={"report_to": "tensorbord"})
    with pytest.raises(ConfigError, match="none cannot be combined"):
        build_config(overrides={"report_to": "none,wandb"})
    with pytest.raises(ConfigError, match="must be a tracker name or a list"):
        build_config(overrides={"report_to": 3})

    from smoothcse.cli.train import train as train_command

    config_file = tmp_path / "c.toml"
    config_file.write_text('report_to = ["wandb"]\n')
    runner = CliRunner()
    printed = runner.invoke(train_command, ["--report-to", "tensorboard", "--report-to", "mlflow", "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert tomllib.loads(printed.output)["report_to"] == ["tensorboard", "mlflow"]
    printed = runner.invoke(train_command, ["--config", str(config_file), "--print-config"])
    assert tomllib.loads(printed.output)["report_to"] == ["wandb"]  # a config file sets it too
    printed = runner.invoke(train_command, ["--config", str(config_file), "--report-to", "none", "--print-config"])
    assert tomllib.loads(printed.output)["report_to"] == []  # the flag overrides the file
    printed = runner.invoke(train_command, ["--print-config"])
    assert tomllib.loads(printed.output)["report_to"] == []


def test_every_tracker_name_has_an_adapter_and_an_extra() -> None:
    from smoothcse.config import TRACKERS

    assert tuple(trackers.ADAPTERS) == TRACKERS
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for name, adapter in trackers.ADAPTERS.items():
        assert any(spec.startswith(adapter.package) for spec in extras[name]), name


def test_hyperparameters_are_flat_plain_values() -> None:
    flat = flat_hyperparameters(TrainConfig(report_to=["tensorboard", "mlflow"]).to_dict())
    assert flat["objective.temperature"] == 0.05 and flat["batch_size"] == 64 and flat["fast_path"] is True
    assert flat["hidden_dropout"] == "unset" and flat["report_to"] == "tensorboard,mlflow"
    assert all(isinstance(value, (str, int, float, bool)) for value in flat.values())


# ---------------------------------------------------------------------------------------------- start-up check


def test_a_missing_tracker_fails_at_start_up_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_corpus: Path
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importing it raises ImportError
    out = tmp_path / "run"
    # a model that does not exist: the tracker check must come before the model is loaded
    config = build_config(overrides={"model": str(tmp_path / "no-model"), "out": str(out), "report_to": "wandb"})
    with pytest.raises(
        SmoothCSEError, match=r"--report-to wandb: the wandb package is not installed; .*smoothcse\[wandb\]"
    ):
        train(config, progress=False)
    assert not out.exists()  # nothing written

    from smoothcse.cli.main import main

    result = CliRunner().invoke(main, ["train", "--model", "x", "--out", str(out), "--report-to", "tensorboard,wandb"])
    assert result.exit_code != 0 and "pip install 'smoothcse[wandb]'" in result.output
    assert not out.exists()

    from smoothcse.cli.sweep import sweep

    grid = tmp_path / "g.toml"
    grid.write_text(f'[fixed]\nmodel = "x"\ndata = "{small_corpus}"\n[grid]\nseed = [1, 2]\n')
    result = CliRunner().invoke(sweep, [str(grid), "--out", str(tmp_path / "sweep"), "--report-to", "wandb"])
    assert result.exit_code != 0 and "smoothcse[wandb]" in str(result.exception)
    assert not (tmp_path / "sweep").exists()
    with pytest.raises(ConfigError, match="Did you mean 'mlflow'"):
        check_trackers(["mlflw"])


def test_only_an_enabled_log_reports(tmp_path: Path) -> None:
    """Ranks other than 0 have a disabled MetricsLog and an unstarted reporter: nothing reaches a tracker."""
    calls: list[Any] = []

    class Recording(Tracker):
        name = "recording"

        def start(self, config: dict[str, Any], run: TrackedRun) -> str | None:
            calls.append(("start", run.name, run.start_step))
            return None

        def log(self, scalars: dict[str, float], step: int) -> None:
            calls.append(("log", step, scalars))

        def finish(self, final_scores: dict[str, float], *, failed: bool) -> None:
            calls.append(("finish", final_scores, failed))

    record = {"step": 2, "lr": 0.5, "loss": 1.25, "steps_per_s": 3.0, "grad_norm": 0.7, "nonfinite_steps": 0}
    reporter = Reporter([])
    reporter.trackers = [Recording()]
    MetricsLog(tmp_path / "other-rank.jsonl", enabled=False, reporter=reporter).write(record)
    reporter.record(record)  # not started
    assert calls == [] and not (tmp_path / "other-rank.jsonl").exists()

    with reporter:
        reporter.start({"lr": 0.5}, tmp_path / "run-a")
        log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True, reporter=reporter)
        log.write(record)
        log.write({"step": 2, "stsb_dev": 61.5})
        log.write({"summary": {"steps": 2, "best_dev": 61.5, "best_step": 2, "initial_dev": None}})
    assert calls == [
        ("start", "run-a", 0),
        (
            "log",
            2,
            {
                "train/lr": 0.5,
                "train/loss": 1.25,
                "train/steps_per_s": 3.0,
                "train/grad_norm": 0.7,
                "train/nonfinite_steps": 0.0,
            },
        ),
        ("log", 2, {"eval/stsb_dev": 61.5}),
        ("finish", {"final/steps": 2.0, "final/best_dev": 61.5, "final/best_step": 2.0}, False),
    ]
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][0] == record


# ---------------------------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def reported_run(tiny_bert: Path, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 steps of a tiny BERT, logged every 2, STS-B dev every 2, reported to TensorBoard and MLflow."""
    root = tmp_path_factory.mktemp("reported")
    out = root / "tiny-run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMOOTHCSE_CACHE", str(root / "cache"))
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(name, raising=False)
        config = tiny_config(tiny_bert, small_corpus, out, report_to="tensorboard,mlflow")
        train(config, progress=False)
    return out


def test_tensorboard_holds_every_logged_scalar_the_hparams_and_the_final_scores(reported_run: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    records = read_metrics(reported_run)
    train_records = [r for r in records if "loss" in r]
    dev_records = [r for r in records if "stsb_dev" in r]
    summary = records[-1]["summary"]
    assert [r["step"] for r in train_records] == [2, 4] and [r["step"] for r in dev_records] == [0, 2, 4]

    events = tensorboard_events(reported_run / "trackers" / "tensorboard")
    for key in ("loss", "lr", "grad_norm", "steps_per_s", "nonfinite_steps"):
        logged = scalar_series(events, f"train/{key}")
        assert [step for step, _ in logged] == [2, 4], key
        assert [value for _, value in logged] == pytest.approx([r[key] for r in train_records], rel=1e-6), key
    dev = scalar_series(events, "eval/stsb_dev")
    assert dev == [(r["step"], pytest.approx(r["stsb_dev"], rel=1e-6)) for r in dev_records]
    assert scalar_series(events, "final/best_dev") == [(4, pytest.approx(summary["best_dev"], rel=1e-6))]
    assert scalar_series(events, "final/steps") == [(4, 4.0)]

    hparams = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(1e-3)
    assert hparams["batch_size"].number_value == 16
    assert hparams["objective.spec"].string_value == "simcse"
    assert hparams["report_to"].string_value == "tensorboard,mlflow"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"final/best_dev", "final/initial_dev", "final/steps"}
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"objective"' in config_text and '"max_steps": 4' in config_text


def test_mlflow_offline_run_holds_params_metric_history_and_final_scores(reported_run: Path) -> None:
    records = read_metrics(reported_run)
    train_records = [r for r in records if "loss" in r]
    summary = records[-1]["summary"]
    client = mlflow_client(reported_run / "trackers" / "mlruns")
    experiment = client.get_experiment_by_name("smoothcse")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.001" and run.data.params["objective.temperature"] == "0.05"
    assert run.data.params["max_steps"] == "4"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["loss"]) for r in train_records]
    dev = client.get_metric_history(run.info.run_id, "eval/stsb_dev")
    assert [(m.step, m.value) for m in dev] == [(r["step"], r["stsb_dev"]) for r in records if "stsb_dev" in r]
    assert run.data.metrics["final/best_dev"] == summary["best_dev"]
    assert run.data.metrics["final/best_step"] == summary["best_step"]
    assert run.data.metrics["train/nonfinite_steps"] == 0
    ids = json.loads((reported_run / "trackers" / "run_ids.json").read_text())
    assert ids == {"mlflow": run.info.run_id}


def test_a_resumed_run_continues_its_tracker_runs(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "resumed"
    config = tiny_config(
        tiny_bert, small_corpus, out, max_steps=2, log_every=1, eval_every=0, report_to="mlflow,tensorboard"
    )
    train(config, progress=False)
    first_ids = json.loads((out / "trackers" / "run_ids.json").read_text())
    train(config, resume=True, progress=False)  # from the final checkpoint: no step left, the summary again
    client = mlflow_client(out / "trackers" / "mlruns")
    (run,) = client.search_runs([client.get_experiment_by_name("smoothcse").experiment_id])
    assert run.info.run_id == first_ids["mlflow"] and run.info.status == "FINISHED"
    assert json.loads((out / "trackers" / "run_ids.json").read_text()) == first_ids
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    events = tensorboard_events(out / "trackers" / "tensorboard")
    assert scalar_series(events, "train/loss") == [(1, pytest.approx(losses[0])), (2, pytest.approx(losses[1]))]


# ---------------------------------------------------------------------------------------------- sweeps


def test_each_sweep_run_reports_its_training_and_scores(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smoothcse.evaluation.sts as sts_module
    from smoothcse.cli.sweep import sweep

    def fake_evaluate_sts(embed: Any, data_dir: Any = None, tasks: Any = None, **_: Any) -> dict[str, Any]:
        embed(["a sentence", "another sentence"])  # full STS scoring is not what this test is about
        return {"tasks": {t: {"spearman": 40.0 + i} for i, t in enumerate(tasks)}, "avg": {"spearman": 42.5}}

    monkeypatch.setattr(sts_module, "evaluate_sts", fake_evaluate_sts)
    grid = tmp_path / "two.toml"
    fixed = {
        "model": str(tiny_bert),
        "data": str(small_corpus),
        "batch_size": 8,
        "max_len": 16,
        "max_steps": 2,
        "log_every": 1,
        "eval_every": 0,
        "lr": 1e-3,
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
    }
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fixed.items())
    grid.write_text(f'sts_tasks = ["STSb"]\n[fixed]\n{body}\n[grid]\nseed = [1, 2]\n')
    out = tmp_path / "my-sweep"
    result = CliRunner().invoke(
        sweep, [str(grid), "--out", str(out), "--report-to", "mlflow", "--report-to", "tensorboard"]
    )
    assert result.exit_code == 0, (result.output, result.exception)

    client = mlflow_client(out / "trackers" / "mlruns")  # one store for the sweep
    experiment = client.get_experiment_by_name("my-sweep")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["seed=1", "seed=2"]
    for name, run in runs.items():
        saved = json.loads((out / "runs" / name / "result.json").read_text())
        assert saved["status"] == "ok" and run.info.status == "FINISHED"
        assert run.data.tags["smoothcse.sweep"] == "my-sweep" and run.data.params["seed"] == name[-1]
        assert run.data.metrics["scores/STSb"] == saved["scores"]["STSb"] == 40.0
        assert run.data.metrics["scores/avg"] == 42.5
        assert run.data.metrics["scores/alignment"] == pytest.approx(saved["geometry"]["alignment"])
        assert run.data.metrics["final/steps"] == 2
        losses = [r["loss"] for r in read_metrics(out / "runs" / name) if "loss" in r]
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [(m.step, m.value) for m in history] == [(1, losses[0]), (2, losses[1])]
        events = tensorboard_events(out / "runs" / name / "trackers" / "tensorboard")
        assert scalar_series(events, "scores/STSb") == [(2, 40.0)]
