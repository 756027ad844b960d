"""STS scoring: hand-computed correlations, the "all"/"wmean" arithmetic, and end-to-end runs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from smoothcse.errors import ConfigError
from smoothcse.evaluation import (
    STS_TASKS,
    cosine_similarities,
    encode_unique,
    evaluate_sts,
    evaluate_sts_dev,
    failed_tasks,
    format_sts_details,
    format_sts_table,
    pearson,
    spearman,
    summarise_subsets,
    write_json,
)
from tests.helpers import hashed_word_counts


class HashedBagOfWords:
    """A deterministic bag-of-words embedding (crc32-hashed word counts); records what it was asked."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def __call__(self, sentences: list[str]) -> np.ndarray:
        self.calls.append(list(sentences))
        return hashed_word_counts(sentences, self.dim)


# --------------------------------------------------------------------------- metrics by hand


def test_spearman_with_ties_by_hand() -> None:
    # ranks x: 1, 2.5, 2.5, 4, 5; ranks y: 2, 1, 3.5, 3.5, 5 -> sum(dx*dy) = 7.25, sum(dx^2) = sum(dy^2) = 9.5
    assert spearman([1, 2, 2, 3, 4], [2, 1, 3, 3, 5]) == pytest.approx(29 / 38)


def test_spearman_is_rank_based_and_signed() -> None:
    x = np.array([0.1, 0.5, 0.2, 0.9])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_pearson_by_hand() -> None:
    # x - mean = -2..2, y - mean = -.8 .2 1.2 1.2 -1.8 -> r = -1 / sqrt(10 * 6.8)
    assert pearson([1, 2, 3, 4, 5], [1, 2, 3, 3, 0]) == pytest.approx(-1 / math.sqrt(68))


def test_cosine_similarities() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    assert cosine_similarities(a, b) == pytest.approx([0.0, 1.0, 0.0])
    assert cosine_similarities([[3.0, 4.0]], [[4.0, 3.0]]) == pytest.approx([24 / 25])


def test_all_mean_and_wmean_arithmetic() -> None:
    """Subset A (3 pairs) is perfectly ranked, B (2 pairs) inverted; "all" concatenates them."""
    scored = {
        "A": (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])),
        "B": (np.array([4.0, 5.0]), np.array([3.0, 0.0])),
    }
    result = summarise_subsets(scored)
    assert result["subsets"]["A"] == {"spearman": pytest.approx(100.0), "pearson": pytest.approx(100.0), "n_pairs": 3}
    assert result["subsets"]["B"]["spearman"] == pytest.approx(-100.0)
    assert result["mean"]["spearman"] == pytest.approx(0.0)
    assert result["wmean"]["spearman"] == pytest.approx(100 * (3 * 1 - 2 * 1) / 5)  # 20
    assert result["wmean"]["pearson"] == pytest.approx(20.0)
    # all: sims 1..5 vs gold 1 2 3 3 0 -> ranks 2 3 4.5 4.5 1; sum(dx*dy) = -0.5, sum dx^2 = 10, sum dy^2 = 9.5
    assert result["all"]["spearman"] == pytest.approx(100 * -0.5 / math.sqrt(95))
    assert result["all"]["pearson"] == pytest.approx(100 * -1 / math.sqrt(68))
    assert result["spearman"] == result["all"]["spearman"]  # the headline is "all"
    assert result["n_pairs"] == 5


def test_encode_unique_embeds_each_sentence_once() -> None:
    embed = HashedBagOfWords()
    vectors, index = encode_unique(embed, ["a b", "c", "a b", "c", "d"])
    assert embed.calls == [["a b", "c", "d"]]
    assert vectors.shape == (3, embed.dim)
    assert index == {"a b": 0, "c": 1, "d": 2}


def test_encode_unique_passes_desc_when_accepted() -> None:
    seen: list[str | None] = []

    def embed(sentences: list[str], desc: str | None = None) -> np.ndarray:
        seen.append(desc)
        return np.ones((len(sentences), 2))

    encode_unique(embed, ["x"], desc="STS12")
    assert seen == ["STS12"]
    with pytest.raises(ValueError, match="shape"):
        encode_unique(lambda s: np.ones(len(s)), ["x", "y"])


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def bow_results(data_dir: Path) -> tuple[dict, HashedBagOfWords]:
    embed = HashedBagOfWords()
    return evaluate_sts(embed, data_dir), embed


def test_evaluate_sts_scores_all_seven_tasks(bow_results: tuple[dict, HashedBagOfWords]) -> None:
    results, _ = bow_results
    assert list(results["tasks"]) == list(STS_TASKS)
    assert results["failed"] == []
    counts = {name: r["n_pairs"] for name, r in results["tasks"].items()}
    expected = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186, "STSb": 1379, "SICK-R": 4927}
    assert counts == expected
    headlines = [r["spearman"] for r in results["tasks"].values()]
    assert all(20 < h < 90 for h in headlines)  # a bag of words correlates, but far from perfectly
    assert results["avg"]["spearman"] == pytest.approx(np.mean(headlines))
    sts12 = results["tasks"]["STS12"]
    assert sts12["spearman"] == sts12["all"]["spearman"]
    assert set(sts12["subsets"]) == {"MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"}
    sizes = np.array([s["n_pairs"] for s in sts12["subsets"].values()])
    subset_spearman = np.array([s["spearman"] for s in sts12["subsets"].values()])
    assert sts12["wmean"]["spearman"] == pytest.approx(np.average(subset_spearman, weights=sizes))
    assert results["tasks"]["STSb"]["split"] == "test"


def test_evaluate_sts_encodes_each_task_once_without_duplicates(bow_results: tuple[dict, HashedBagOfWords]) -> None:
    _, embed = bow_results
    assert len(embed.calls) == 7
    for call in embed.calls:
        assert len(call) == len(set(call))


def test_evaluate_sts_is_json_serialisable_and_tabulated(
    bow_results: tuple[dict, HashedBagOfWords], tmp_path: Path
) -> None:
    results, _ = bow_results
    path = write_json(tmp_path / "out" / "sts.json", {"model": "bow", "sts": results})
    loaded = json.loads(path.read_text())
    assert loaded["sts"]["tasks"]["STS15"]["subsets"]["belief"]["n_pairs"] == 375
    table = format_sts_table(results).splitlines()
    assert table[0].split() == ["STS12", "STS13", "STS14", "STS15", "STS16", "STSb", "SICK-R", "Avg"]
    assert table[1].split()[-1] == f"{results['avg']['spearman']:.2f}"
    details = format_sts_details(results)
    assert "wmean" in details and "question-question" in details


def test_dev_mode(data_dir: Path) -> None:
    results = evaluate_sts_dev(HashedBagOfWords(), data_dir)
    assert results["mode"] == "dev"
    splits = {name: (r["split"], r["n_pairs"]) for name, r in results["tasks"].items()}
    assert splits == {"STSb": ("dev", 1500), "SICK-R": ("dev", 500)}
    assert "Spearman (dev)" in format_sts_table(results)
    with pytest.raises(ConfigError, match="no dev split"):
        evaluate_sts(HashedBagOfWords(), data_dir, ["STS12"], mode="dev")


def test_bad_task_or_mode_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="valid tasks: STS12, STS13"):
        evaluate_sts(HashedBagOfWords(), data_dir, ["STS17"])
    with pytest.raises(ConfigError, match="valid modes"):
        evaluate_sts(HashedBagOfWords(), data_dir, mode="train")


def test_missing_task_is_reported_not_skipped(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "downstream/STS/STSBenchmark"
    shutil.copytree(data_dir / "downstream/STS/STSBenchmark", target)
    results = evaluate_sts(HashedBagOfWords(), tmp_path, ["STS13", "STSb"])
    assert results["failed"] == ["STS13"]
    assert failed_tasks(results, {"failed": ["MR"]}) == ["STS13", "MR"]
    error = results["tasks"]["STS13"]["error"]
    assert "STS13-en-test/STS.input.FNWN.txt" in error and str(tmp_path) in error
    assert results["tasks"]["STSb"]["n_pairs"] == 1379
    assert results["avg"]["spearman"] is None
    lines = format_sts_table(results).splitlines()
    assert lines[0].split() == ["STS13", "STSb", "Avg"]
    assert lines[1].split()[1] == "n/a" and lines[1].split()[-1] == "n/a"
    assert lines[2].startswith("n/a: STS13: Missing data file")
    assert "n/a" in format_sts_details(results)
