"""Transfer tasks: fold logic, the L2 grid, pair features, and an end-to-end run on a hashed bag of words."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from smoothcse.errors import ConfigError
from smoothcse.evaluation import TRANSFER_TASKS, evaluate_transfer, format_transfer_table, to_jsonable
from smoothcse.evaluation.transfer import (
    TransferSettings,
    fit_at,
    fit_l2_path,
    map_folds,
    nested_cv,
    pair_features,
    select_l2,
    stratified_folds,
    subsample,
)
from tests.helpers import hashed_word_counts


def hashed_bag_of_words(sentences: list[str], dim: int = 1024) -> np.ndarray:
    """Word counts hashed (crc32, deterministic) into ``dim`` buckets, rows L2-normalised."""
    out = hashed_word_counts(sentences, dim)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def blobs(n: int, dim: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes whose means differ by ``separation`` along the first axis."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    features = rng.normal(size=(n, dim))
    features[:, 0] += separation * labels
    return features, labels


# --------------------------------------------------------------------------- folds and classifier


def test_stratified_folds_partition_and_balance() -> None:
    labels = np.array([0] * 70 + [1] * 30)
    folds = list(stratified_folds(labels, 10, seed=1111))
    assert len(folds) == 10
    held_out = np.concatenate([test for _, test in folds])
    assert sorted(held_out.tolist()) == list(range(100))  # every sample held out exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert len(train) + len(test) == 100
        assert np.bincount(labels[test]).tolist() == [7, 3]  # class ratio kept in every fold
    again = [test.tolist() for _, test in stratified_folds(labels, 10, seed=1111)]
    assert again == [test.tolist() for _, test in folds]  # fixed by the seed
    other = [test.tolist() for _, test in stratified_folds(labels, 10, seed=7)]
    assert other != again
    assert sorted(folds[0][1].tolist()) != list(range(7)) + list(range(70, 73))  # shuffled, not contiguous


def test_l2_path_maps_strength_to_c_and_warm_starts_consistently() -> None:
    features, labels = blobs(200, 5, 1.0)
    settings = TransferSettings(l2_grid=(1e-3, 1e-1, 1e-2))
    assert settings.l2_grid == (1e-1, 1e-2, 1e-3)  # strongest first
    path = fit_l2_path(features, labels, settings.l2_grid, settings)
    assert [clf.l2 for clf in path] == [1e-1, 1e-2, 1e-3]
    assert [clf.model.C for clf in path] == pytest.approx([1 / (l2 * 200) for l2 in (1e-1, 1e-2, 1e-3)])
    norms = [np.linalg.norm(clf.model.coef_) for clf in path]
    assert norms[0] < norms[1] < norms[2]  # weaker penalty, larger weights
    cold = fit_l2_path(features, labels, [1e-3], settings)[0]
    assert np.allclose(cold.model.coef_, path[-1].model.coef_, atol=1e-3)
    assert fit_at(features, labels, 1e-2, settings).model.C == pytest.approx(path[1].model.C)


def test_standardisation_uses_training_statistics() -> None:
    features, labels = blobs(100, 3, 2.0)
    features = features * 1000 + 50
    clf = fit_l2_path(features, labels, [1e-2], TransferSettings())[0]
    assert clf.mean == pytest.approx(features.mean(axis=0))
    assert clf.scale == pytest.approx(features.std(axis=0))
    raw = fit_l2_path(features, labels, [1e-2], TransferSettings(standardize=False))[0]
    assert np.all(raw.mean == 0) and np.all(raw.scale == 1)


def test_select_l2_averages_folds_and_breaks_ties_towards_the_strongest_penalty() -> None:
    settings = TransferSettings(l2_grid=(1.0, 1e-2, 1e-5))
    features, labels = blobs(60, 30, 1.0, seed=1)
    manual = np.zeros(3)
    for train, test in stratified_folds(labels, 4, settings.seed):
        path = fit_l2_path(features[train], labels[train], settings.l2_grid, settings)
        manual += [clf.accuracy(features[test], labels[test]) for clf in path]
    manual /= 4
    l2, accuracy = select_l2(features, labels, 4, settings)
    assert accuracy == pytest.approx(manual.max())
    assert l2 == settings.l2_grid[int(np.argmax(manual))]
    separable, separable_labels = blobs(60, 2, 50.0)
    tie = TransferSettings(l2_grid=(1e-1, 1.0))
    assert select_l2(separable, separable_labels, 4, tie) == (1.0, 1.0)  # both perfect: the stronger wins


def test_nested_cv_separable_vs_random_labels() -> None:
    settings = TransferSettings(folds=5, inner_folds=3, l2_grid=(1e-1, 1e-2))
    features, labels = blobs(300, 4, 6.0)
    result = nested_cv(features, labels, settings)
    assert result["accuracy"] > 98
    assert len(result["fold_accuracies"]) == 5 and len(result["l2"]) == 5
    assert result["accuracy"] == pytest.approx(np.mean(result["fold_accuracies"]))
    shuffled = np.random.default_rng(3).permutation(labels)
    assert 30 < nested_cv(features, shuffled, settings)["accuracy"] < 70


def test_subsample_is_stratified_and_seeded() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    keep = subsample(labels, 200, seed=5)
    assert len(keep) == 200 and np.all(np.diff(keep) > 0)
    assert np.bincount(labels[keep]).tolist() == [180, 20]
    assert subsample(labels, 200, seed=5).tolist() == keep.tolist()
    assert subsample(labels, None, seed=5).tolist() == list(range(1000))


def test_pair_features() -> None:
    u, v = np.array([[1.0, -2.0]]), np.array([[3.0, 1.0]])
    assert pair_features(u, v).tolist() == [[2.0, 3.0, 3.0, -2.0]]  # [|u-v|, u*v] as SentEval
    assert pair_features(u, v, "full").tolist() == [[1.0, -2.0, 3.0, 1.0, 2.0, 3.0, 3.0, -2.0]]
    with pytest.raises(ConfigError, match="valid: senteval, full"):
        pair_features(u, v, "concat")


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        TransferSettings(folds=1)
    with pytest.raises(ConfigError, match="positive"):
        TransferSettings(l2_grid=(0.0,))
    with pytest.raises(ConfigError, match="mrpc_features"):
        TransferSettings(mrpc_features="both")


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def bow_results(data_dir: Path) -> dict:
    return evaluate_transfer(hashed_bag_of_words, data_dir, max_samples=3000, folds=3, inner_folds=2)


def test_bag_of_words_beats_chance_on_every_task(bow_results: dict) -> None:
    tasks = bow_results["tasks"]
    assert list(tasks) == list(TRANSFER_TASKS) and bow_results["failed"] == []
    accuracy = {name: r["accuracy"] for name, r in tasks.items()}
    assert accuracy["MR"] > 60 and accuracy["SST2"] > 58  # sentiment from words alone
    assert accuracy["SUBJ"] > 75
    assert accuracy["TREC"] > 50  # 6 classes; the largest is 28% of the test set
    assert accuracy["CR"] > 100 * 2407 / 3775  # majority class
    assert accuracy["MPQA"] > 100 * 7294 / 10606
    assert accuracy["MRPC"] > 100 * 1147 / 1725
    assert 0 < tasks["MRPC"]["f1"] <= 100 and tasks["MRPC"]["features"] == "[|u-v|, u*v]"
    assert bow_results["avg"]["accuracy"] == pytest.approx(np.mean(list(accuracy.values())))


def test_results_record_protocol_and_sizes(bow_results: dict) -> None:
    tasks = bow_results["tasks"]
    assert tasks["MR"]["n_samples"] == 3000 and len(tasks["MR"]["fold_accuracies"]) == 3
    assert (tasks["SST2"]["n_train"], tasks["SST2"]["n_dev"], tasks["SST2"]["n_test"]) == (3000, 872, 1821)
    assert (tasks["TREC"]["n_train"], tasks["TREC"]["n_test"]) == (3000, 500)
    assert (tasks["MRPC"]["n_train"], tasks["MRPC"]["n_test"]) == (3000, 1725)
    assert bow_results["settings"]["max_samples"] == 3000 and bow_results["settings"]["folds"] == 3
    json.dumps(to_jsonable(bow_results), allow_nan=False)
    lines = format_transfer_table(bow_results).splitlines()
    assert lines[0].split() == ["MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC", "Avg"]
    assert lines[1].split()[1] == f"{tasks['MR']['accuracy']:.2f}"
    assert lines[2].startswith("MRPC F1:")


def test_missing_transfer_task_is_reported(tmp_path: Path, data_dir: Path) -> None:
    shutil.copytree(data_dir / "downstream/TREC", tmp_path / "downstream/TREC")
    results = evaluate_transfer(hashed_bag_of_words, tmp_path, ["TREC", "cr"], max_samples=600, folds=3, inner_folds=2)
    assert results["failed"] == ["CR"]
    assert "downstream/CR/custrev.pos" in results["tasks"]["CR"]["error"]
    assert results["tasks"]["TREC"]["accuracy"] > 30
    assert results["avg"]["accuracy"] is None
    lines = format_transfer_table(results).splitlines()
    assert lines[0].split() == ["CR", "TREC", "Avg"]  # the papers' order, not the order asked
    assert lines[1].split() == ["Accuracy", "n/a", f"{results['tasks']['TREC']['accuracy']:.2f}", "n/a"]
    assert lines[2].startswith("n/a: CR: Missing data file")


def test_parallel_folds_equal_the_serial_run(data_dir: Path) -> None:
    """n_jobs=2 fits the folds in worker processes and gives the serial run's numbers bit for bit; the sentences
    are embedded once per task, in this process."""
    calls: list[int] = []

    def embed(sentences: list[str]) -> np.ndarray:
        calls.append(os.getpid())
        return hashed_bag_of_words(sentences, 256)

    # MR: nested CV (outer folds in parallel); TREC and MRPC: CV on train (folds in parallel); SST2: serial path
    tasks, quick = ["MR", "TREC", "MRPC", "SST2"], {"max_samples": 600, "folds": 3, "inner_folds": 2}
    serial = evaluate_transfer(embed, data_dir, tasks, n_jobs=1, **quick)
    parallel = evaluate_transfer(embed, data_dir, tasks, n_jobs=2, **quick)
    assert calls == [os.getpid()] * 8  # one call per task and run, never in a worker
    assert parallel == serial  # every accuracy, fold accuracy, chosen L2 and F1 exactly
    assert len(serial["tasks"]["MR"]["fold_accuracies"]) == 3 and serial["failed"] == []
    assert map_folds(os.getpid, [(), ()], 1) == [os.getpid()] * 2  # n_jobs=1: in this process
    assert os.getpid() not in map_folds(os.getpid, [(), (), ()], 2)  # n_jobs=2: in worker processes
    with pytest.raises(ConfigError, match="n_jobs must be a non-zero integer"):
        evaluate_transfer(embed, data_dir, ["MR"], n_jobs=0)


def test_unknown_transfer_task(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'SUBJ'"):
        evaluate_transfer(hashed_bag_of_words, data_dir, ["SUBJJ"])
