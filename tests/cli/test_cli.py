"""The command line as a user meets it: help, recipes, encode, and every bad input's message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tomllib

from smoothcse.cli.main import main
from tests.helpers import invoke, module_command, process_env, run


def test_help_explains_every_train_option() -> None:
    code, output = run("train", "--help")
    assert code == 0
    for flag in (
        "--model",
        "--data",
        "--out",
        "--max-steps",
        "--batch-size",
        "--max-len",
        "--lr",
        "--eval-every",
        "--seed",
        "--device",
        "--recipe",
        "--config",
        "--objective",
        "--overwrite",
        "--resume",
    ):
        assert flag in output


def test_recipes_lists_and_prints() -> None:
    code, output = run("recipes")
    assert code == 0 and "demo" in output and "simcse-bert-base" in output
    code, output = run("recipes", "simcse-bert-base")
    assert code == 0 and "lr = 3e-5" in output
    code, output = run("recipes", "simcse-bert-bas")
    assert code == 2 and "Did you mean 'simcse-bert-base'" in output


def test_recipe_values_and_flag_precedence(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text('lr = 5e-5\nbatch_size = 128\n[objective]\nspec = "simcse+gs"\n')
    code, output = run(
        "train", "--recipe", "simcse-bert-base", "--config", str(config_file), "--batch-size", "256", "--print-config"
    )
    assert code == 0, output
    config = tomllib.loads(output)
    assert config["max_len"] == 32  # recipe
    assert config["lr"] == 5e-5  # config file over recipe
    assert config["batch_size"] == 256  # flag over config file
    assert config["objective"]["spec"] == "simcse+gs"


def test_unknown_option_and_config_key_suggest(tmp_path: Path) -> None:
    code, output = run("train", "--batch-sise", "3")
    assert code == 2 and "--batch-size" in output
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = 1e-5\n")
    code, output = run("train", "--config", str(bad), "--print-config")
    assert code == 2 and "unknown key 'learning_rate'. Did you mean 'lr'?" in output
    bad.write_text("[objective]\ntemprature = 0.1\n")
    code, output = run("train", "--config", str(bad), "--print-config")
    assert code == 2 and "Did you mean 'temperature'" in output


@pytest.mark.parametrize(
    "args,expected",
    [
        (("--batch-size", "0"), "--batch-size must be"),
        (("--lr", "-0.001"), "--lr must be positive"),
        (("--pooler", "mean"), "--pooler 'mean' is not one of"),
        (("--device", "tpu"), "--device must be"),
        (("--rows-per-forward", "-1"), "--rows-per-forward must be >= 0"),
        (("--compile-mode", "reduce-overhead"), "has no effect without --compile"),
    ],
)
def test_bad_values_are_named(args: tuple[str, ...], expected: str) -> None:
    code, output = run("train", *args, "--print-config")
    assert code == 2 and expected in output


def test_bad_inputs_end_with_one_line_and_no_traceback(tmp_path: Path, tiny_bert: Path, cache_dir: Path) -> None:
    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n \n")
    out = tmp_path / "out"
    cases = [
        (["--model", str(tmp_path / "nope")], "no such folder"),
        (["--model", str(tiny_bert), "--data", str(corpus)], "no sentences"),
        (["--model", str(tiny_bert), "--data", str(tmp_path / "missing.txt")], "no such file"),
    ]
    for extra, message in cases:
        proc = subprocess.run(
            module_command("train", "--out", str(out), "--device", "cpu", "--eval-every", "0", *extra),
            capture_output=True,
            text=True,
            env=process_env(cache_dir),
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line
        assert not out.exists() or not any(out.rglob("*.safetensors"))


def test_read_only_output_folder(tmp_path: Path, tiny_bert: Path, small_corpus: Path, cache_dir: Path) -> None:
    if os.geteuid() == 0:
        target = "/proc/smoothcse-out"  # even root cannot create folders there
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = str(locked / "out")
    code, output = run(
        "train",
        "--model",
        str(tiny_bert),
        "--data",
        str(small_corpus),
        "--out",
        target,
        "--device",
        "cpu",
        "--eval-every",
        "0",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
    )
    assert code == 2 and "cannot write there" in output, output


def test_encode_matches_model_embeddings(tmp_path: Path, tiny_bert: Path) -> None:
    from smoothcse.model.encoder import load_encoder

    sentences = ["first line", "second, longer line of text", "first line"]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(sentences) + "\n")
    target = tmp_path / "vectors" / "out.npy"
    code, output = run("encode", str(tiny_bert), "--input", str(text), "--output", str(target), "--device", "cpu")
    assert code == 0, output
    vectors = np.load(target)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(vectors, load_encoder(str(tiny_bert)).encode(sentences), atol=1e-5)
    code, output = run("encode", str(tiny_bert), "--input", str(tmp_path / "none.txt"), "--output", str(target))
    assert code == 2 and "no such file" in output


def test_eval_dev_prints_table_and_writes_json(tmp_path: Path, tiny_bert: Path) -> None:
    import json

    target = tmp_path / "scores.json"
    code, output = run("eval", str(tiny_bert), "--tasks", "dev", "--device", "cpu", "--json", str(target))
    assert code == 0, output
    assert "STSb" in output and "SICK-R" in output
    document = json.loads(target.read_text())
    assert document["settings"]["pooler"] == "cls_before_pooler"
    assert document["sts_dev"]["tasks"]["STSb"]["n_pairs"] == 1500
    assert document["failed"] == []


def test_eval_reports_a_task_it_cannot_score(tmp_path: Path, tiny_bert: Path, data_dir: Path) -> None:
    import shutil

    partial = tmp_path / "data"
    shutil.copytree(data_dir / "downstream" / "STS" / "STSBenchmark", partial / "downstream" / "STS" / "STSBenchmark")
    code, output = run("eval", str(tiny_bert), "--tasks", "dev", "--device", "cpu", "--data-dir", str(partial))
    assert code == 1
    assert "n/a" in output and "could not score: SICK-R" in output


def test_eval_rejects_unknown_task(tiny_bert: Path) -> None:
    code, output = run("eval", str(tiny_bert), "--tasks", "stss")
    assert code == 2 and "Did you mean 'sts'" in output


# every flag `smoothcse train` had before its options were derived from TrainConfig
ALL_TRAIN_FLAGS = (
    "--model",
    "--data",
    "--out",
    "--recipe",
    "--config",
    "--objective",
    "--max-steps",
    "--max-sentences",
    "--epochs",
    "--batch-size",
    "--mini-batch-size",
    "--max-len",
    "--lr",
    "--weight-decay",
    "--warmup-steps",
    "--max-grad-norm",
    "--seed",
    "--temperature",
    "--gs-num",
    "--gs-std",
    "--is-alpha",
    "--is-alpha-schedule",
    "--is-bank-size",
    "--is-k",
    "--soft-direction",
    "--soft-strength",
    "--soft-weight-form",
    "--pooler",
    "--hidden-dropout",
    "--attention-dropout",
    "--device",
    "--precision",
    "--eval-every",
    "--log-every",
    "--save-every",
    "--keep-checkpoints",
    "--max-bad-steps",
    "--report-to",
    "--compile",
    "--no-compile",
    "--compile-mode",
    "--fast-path",
    "--no-fast-path",
    "--rows-per-forward",
    "--adam-eps",
    "--text-column",
    "--text-field",
    "--units",
    "--view-crop",
    "--view-source",
    "--view-delete",
    "--teacher",
    "--soft-similarity",
    "--distill-weight",
    "--distill-temperature",
    "--data-dir",
    "--cache-dir",
    "--overwrite",
    "--resume",
    "--print-config",
    "--quiet",
    "--debug",
)


def test_train_options_are_the_config_fields_with_help_and_defaults() -> None:
    import dataclasses

    from smoothcse.cli.train import FILE_ONLY, FLAG_NAMES, train
    from smoothcse.config import TrainConfig
    from smoothcse.objectives import ObjectiveConfig

    flags = {opt for param in train.params for opt in (*param.opts, *param.secondary_opts)}
    assert flags == set(ALL_TRAIN_FLAGS)  # every old flag, and no new one
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "objective"]
    keys += [f"objective.{f.name}" for f in dataclasses.fields(ObjectiveConfig)]
    options = {getattr(param, "key", None): param for param in train.params}
    for key in keys:
        if key in FILE_ONLY:
            assert key not in options
            continue
        option = options[key]
        assert option.opts[0] == "--" + FLAG_NAMES.get(key, key.rpartition(".")[2]).replace("_", "-")
        assert option.help, key  # --help explains it
        parent, _, leaf = key.rpartition(".")
        owner = ObjectiveConfig() if parent else TrainConfig()
        assert option.default == getattr(owner, leaf) and option.show_default, key
    code, output = run("train", "--help")
    assert code == 0
    flat = " ".join(output.split()).replace("- ", "-")  # click wraps the help text (at hyphens too)
    assert "[default: 64]" in flat and "[default: 0.05]" in flat and "[default: fast-path]" in flat


@pytest.mark.parametrize(
    "args,recipe,overrides",
    [
        (("--recipe", "simcse-bert-base"), "simcse-bert-base", {}),
        (
            ("--recipe", "demo", "--objective", "simcse+gs+is+soft-weight", "--soft-direction", "down", "--seed", "3"),
            "demo",
            {"objective": {"spec": "simcse+gs+is+soft-weight", "soft_direction": "down"}, "seed": 3},
        ),
        (
            ("--model", "some/model", "--text-column", "text", "--hidden-dropout", "0.0", "--lr", "1e-7"),
            None,
            {"model": "some/model", "text_column": "text", "hidden_dropout": 0.0, "lr": 1e-7},
        ),
    ],
)
def test_print_config_is_toml_that_config_reads_back(
    tmp_path: Path, args: tuple[str, ...], recipe: str | None, overrides: dict
) -> None:
    from smoothcse.config import build_config

    code, printed = run("train", *args, "--print-config")
    assert code == 0, printed
    config_file = tmp_path / "resolved.toml"
    config_file.write_text(printed)
    reread = build_config(config_file=config_file)
    code, again = run("train", "--config", str(config_file), "--print-config")
    assert code == 0 and again == printed  # a fixed point: nothing lost or changed on the way
    assert reread == build_config(recipe, overrides=overrides)  # the very config the flags resolved to
    assert "# data_dir: not set" in printed  # unset values are named, not dropped silently


def test_flags_not_given_leave_the_config_file_alone(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text('fast_path = false\ncompile = true\nseed = 7\n[objective]\nspec = "simcse+gs"\ngs_num = 9\n')
    code, output = run("train", "--config", str(config_file), "--print-config")
    assert code == 0, output
    config = tomllib.loads(output)
    assert (config["fast_path"], config["compile"], config["seed"]) == (False, True, 7)
    assert config["objective"]["spec"] == "simcse+gs" and config["objective"]["gs_num"] == 9
    code, output = run(
        "train",
        "--config",
        str(config_file),
        "--fast-path",
        "--no-compile",
        "--seed",
        "42",
        "--gs-num",
        "192",
        "--objective",
        "simcse",
        "--print-config",
    )
    assert code == 0, output
    config = tomllib.loads(output)
    assert (config["fast_path"], config["compile"], config["seed"]) == (True, False, 42)  # given = default still wins
    assert config["objective"]["spec"] == "simcse" and config["objective"]["gs_num"] == 192


def test_debug_shows_the_traceback_instead_of_one_line() -> None:
    from smoothcse.errors import ConfigError

    result = invoke(main, "train", "--precision", "fp8", "--print-config")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.strip().count("\n") == 0 and "--precision 'fp8'" in result.output
    for args in (
        ["train", "--debug", "--precision", "fp8", "--print-config"],
        ["train", "--precision", "fp8", "--print-config", "--debug"],
    ):
        result = invoke(main, *args)
        assert isinstance(result.exception, ConfigError), result.output
    # "--debug" as an option's value is not the flag
    result = invoke(main, "train", "--text-column", "--debug", "--precision", "fp8", "--print-config")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)


COMMANDS = ["bench", "encode", "eval", "recipes", "report", "sweep", "train"]


def test_the_group_adds_every_command_the_tests_exercise() -> None:
    """Each name is bound to the very command object the other tests run (tests/bench, tests/experiments call
    ``bench``, ``sweep`` and ``report`` directly), so a command that breaks fails those tests as itself."""
    from smoothcse.cli.bench import bench
    from smoothcse.cli.encode import encode
    from smoothcse.cli.evaluate import evaluate
    from smoothcse.cli.recipes import recipes
    from smoothcse.cli.sweep import report, sweep
    from smoothcse.cli.train import train

    assert sorted(main.commands) == COMMANDS
    expected = {"bench": bench, "encode": encode, "eval": evaluate, "recipes": recipes}
    expected.update(report=report, sweep=sweep, train=train)
    assert all(main.commands[name] is command for name, command in expected.items())
    code, output = run("--help")
    assert code == 0 and all(name in output for name in main.commands)
    code, output = run("--version")
    assert code == 0 and output.startswith("smoothcse, version ")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_answers_help_naming_each_of_its_parameters(name: str) -> None:
    """``smoothcse NAME --help`` runs (the command and its options build) and names each option and argument."""
    import click

    code, output = run(name, "--help")
    assert code == 0, output
    usage = output.splitlines()[0]
    assert usage.startswith(f"Usage: main {name} [OPTIONS]"), output
    params = main.commands[name].params
    assert params
    for param in params:
        if isinstance(param, click.Option):
            if not param.hidden:
                assert all(flag in output for flag in (*param.opts, *param.secondary_opts)), (name, param.opts)
                assert param.help, f"smoothcse {name} {param.opts[0]} has no help text"
        else:
            assert param.human_readable_name in usage, (name, param.human_readable_name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "{tmp}"), "DIR {tmp}: no runs/*/result.json found; run 'smoothcse sweep GRID --out {tmp}' first."),
        (("sweep", "{tmp}/grid.toml"), "GRID {tmp}/grid.toml: no such file, and not a built-in grid. Built-in grids:"),
        (("bench", "--steps", "0"), "--steps must be a positive integer, got 0."),
    ],
    ids=["report", "sweep", "bench"],
)
def test_commands_run_through_the_group_to_their_own_checks(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """The commands the other tests call directly, once through ``smoothcse``: a bad input reaches the command's
    own check and ends in its one-line message, exit code 2."""
    code, output = run(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2, output
    assert output.startswith("smoothcse: error: " + message.format(tmp=tmp_path)), output
    assert output.strip().count("\n") == 0, output
