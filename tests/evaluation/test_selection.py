"""`smoothcse eval --tasks`: groups and single tasks, case-insensitive; a mixed list runs exactly what it names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from smoothcse.errors import ConfigError
from smoothcse.evaluation import STS_TASKS, TRANSFER_TASKS
from smoothcse.evaluation.selection import retrieval_datasets, select_tasks
from tests.helpers import run, tiny_folder


def test_groups_expand_to_their_tasks() -> None:
    every = select_tasks("all")
    assert every.names == ("sts", "transfer", "retrieval")
    assert every.sts == STS_TASKS and every.transfer == TRANSFER_TASKS and every.retrieval == (None,)
    assert not every.dev
    dev = select_tasks("DEV")
    assert dev.dev and dev.sts == () and dev.transfer == () and dev.retrieval == ()
    both = select_tasks("sts, dev")
    assert both.sts == STS_TASKS and both.dev


def test_single_tasks_case_insensitive_with_aliases_in_the_papers_order() -> None:
    selection = select_tasks("mr,stsb,SICK-r,trec,sts12,STSBenchmark,Sst2")
    assert selection.names == ("MR", "STSb", "SICK-R", "TREC", "STS12", "SST2")
    assert selection.sts == ("STS12", "STSb", "SICK-R")
    assert selection.transfer == ("MR", "SST2", "TREC")
    assert selection.retrieval == () and not selection.dev
    assert select_tasks("sts,STSb").sts == STS_TASKS  # a task inside a group is run once
    assert select_tasks("SciFact,retrieval", ["nfcorpus", "scifact"]).retrieval == ("scifact", None)


@pytest.mark.parametrize(
    ("spec", "hint"),
    [("stss", "Did you mean 'sts'"), ("STSbb", "Did you mean 'STSb'"), ("subjj", "Did you mean 'SUBJ'")],
)
def test_unknown_names_are_refused_naming_the_option(spec: str, hint: str) -> None:
    with pytest.raises(ConfigError, match="--tasks") as error:
        select_tasks(f"sts,{spec}", ["scifact"])
    assert hint in str(error.value) and "SICK-R" in str(error.value) and "scifact" in str(error.value)
    with pytest.raises(ConfigError, match="Did you mean 'scifact'"):
        select_tasks("scifac", ["scifact"])
    with pytest.raises(ConfigError, match="neither a group nor a task"):
        select_tasks("scifact", [])  # not in the data directory
    with pytest.raises(ConfigError, match="--tasks is empty"):
        select_tasks(" , ")


def test_retrieval_datasets_are_the_folders_under_retrieval(tmp_path: Path, data_dir: Path) -> None:
    assert "scifact" in retrieval_datasets(data_dir)
    (tmp_path / "retrieval" / "b").mkdir(parents=True)
    (tmp_path / "retrieval" / "a").mkdir()
    (tmp_path / "retrieval" / "MANIFEST.md").write_text("not a dataset")
    assert retrieval_datasets(tmp_path) == ["a", "b"]
    assert retrieval_datasets(tmp_path / "missing") == []


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """STS-B, MR cut to its first 150 sentences per class, and a tiny BEIR folder: all that the tests below need."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(data_dir / "downstream/STS/STSBenchmark", root / "downstream/STS/STSBenchmark")
    (root / "downstream/MR").mkdir(parents=True)
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        lines = (data_dir / "downstream/MR" / name).read_bytes().splitlines(keepends=True)[:150]
        (root / "downstream/MR" / name).write_bytes(b"".join(lines))
    tiny_folder(root / "retrieval" / "tiny")
    return root


def test_eval_runs_exactly_the_tasks_named(tmp_path: Path, tiny_bert: Path, small_data: Path) -> None:
    target = tmp_path / "scores.json"
    args = ("--device", "cpu", "--data-dir", str(small_data), "--json", str(target), "--jobs", "1")
    code, output = run("eval", str(tiny_bert), "--tasks", "STSb,mr,TINY", *args)
    assert code == 0, output
    document = json.loads(target.read_text())
    assert document["settings"]["tasks"] == ["STSb", "MR", "tiny"] and document["settings"]["jobs"] == 1
    assert set(document) >= {"sts", "transfer", "retrieval"} and "sts_dev" not in document
    assert list(document["sts"]["tasks"]) == ["STSb"] and document["sts"]["tasks"]["STSb"]["n_pairs"] == 1379
    assert list(document["transfer"]["tasks"]) == ["MR"] and document["transfer"]["tasks"]["MR"]["n_samples"] == 300
    assert document["retrieval"]["dataset"] == "tiny" and document["failed"] == []
    assert re.search(r"^ +STSb +Avg\nSpearman", output, re.M)  # the STS table has STSb alone
    assert re.search(r" MR +Avg\nAccuracy", output)  # the transfer table MR alone (after the progress bar)
    assert re.search(r"^tiny \(test\) +\|", output, re.M)


def test_eval_retrieval_group_and_the_same_dataset_by_name_run_once(
    tmp_path: Path, tiny_bert: Path, small_data: Path
) -> None:
    target = tmp_path / "scores.json"
    args = ("--device", "cpu", "--data-dir", str(small_data), "--json", str(target))
    code, output = run("eval", str(tiny_bert), "--tasks", "retrieval,tiny", "--retrieval-dir", "tiny", *args)
    assert code == 0, output
    document = json.loads(target.read_text())
    assert document["retrieval"]["dataset"] == "tiny"  # one result, not a list of two
    assert set(document) & {"sts", "sts_dev", "transfer"} == set()


def test_eval_refuses_unknown_task_before_loading_the_model(tmp_path: Path) -> None:
    code, output = run("eval", str(tmp_path / "no-model"), "--tasks", "STSb,MRR")
    assert code == 2
    assert "--tasks 'MRR' is neither a group nor a task" in output and "Did you mean 'MR'" in output
    code, output = run("eval", str(tmp_path / "no-model"), "--tasks", "MR", "--jobs", "0")
    assert code == 2 and "--jobs must be a non-zero integer" in output
    code, output = run("sweep", "quality", "--eval", "sts,transfer", "--jobs", "0", "--dry-run", "--out", str(tmp_path))
    assert code == 2 and "--jobs must be a non-zero integer" in output  # the sweep's transfer evaluation likewise
