"""MTEB 2 run for real on local data: smoothcse's adapter and local tasks through ``mteb.evaluate``.

A tiny BEIR folder and a tiny STS-B file are written here, a random-init BERT (mean pooling) is the
model, and MTEB's scores are checked against smoothcse's own evaluators on the same data:

- retrieval: MTEB's nDCG@10 (pytrec_eval, rounded by MTEB to 5 decimals) equals
  ``evaluate_retrieval``'s nDCG@10 to within 5e-6 on MTEB's fraction scale, i.e. MTEB's rounding.
  smoothcse's scale (fractions or × 100) is read off its own recall@100, which is exactly 1 here
  (every document of the 12 is retrieved), so the comparison holds on either scale.
- STS: MTEB's ``cosine_spearman`` / ``cosine_pearson`` (scipy, unrounded) equal ``evaluate_sts``'s
  Spearman / Pearson to within 1e-6 on the fraction scale: the same scipy functions on the same ranks;
  only the cosines differ in float rounding (MTEB float32 via scikit-learn, smoothcse float64), which
  cannot reorder pairs whose cosines are more than 1e-5 apart, as the test checks first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")  # a guard only: mteb is in the test extras, so CI runs this file

from smoothcse.evaluation.retrieval import evaluate_retrieval, load_beir  # noqa: E402
from smoothcse.evaluation.sts import evaluate_sts, score_pairs  # noqa: E402
from smoothcse.mteb import LocalBeirRetrieval, LocalSTS, SmoothCSEMTEBEncoder  # noqa: E402
from tests.helpers import write_beir  # noqa: E402

WORDS = ["apple", "banana", "cherry", "durian", "elder", "fig", "grape", "hazel", "iris", "juniper", "kale", "lemon"]
NEAR_TIE = 1e-5
"""Scores closer than this could be ordered differently by MTEB's float32 and smoothcse's cosine."""


def write_tiny_beir(root: Path) -> Path:
    """12 documents (one's id equals a query id), 9 queries (one without qrels), graded qrels."""
    corpus = [
        {"_id": f"d{i}", "title": word if i % 3 else "", "text": f"a short text about {word} and {WORDS[(i + 4) % 12]}"}
        for i, word in enumerate(WORDS)
    ]
    corpus[11]["_id"] = "q2"  # retrieved for q2 but never returned for it (ignore_identical_ids, BEIR's default)
    queries = [{"_id": f"q{i}", "text": f"tell me something of the {word}"} for i, word in enumerate(WORDS[:8])]
    queries.append({"_id": "q-unjudged", "text": "a query without qrels is dropped by both"})
    rows = [(f"q{i}", f"d{i}", 1) for i in range(8)] + [(f"q{i}", f"d{(i + 5) % 11}", 2) for i in range(0, 8, 2)]
    return write_beir(root, corpus, queries, rows)


def write_tiny_stsb(data_dir: Path) -> Path:
    """A data directory whose STS-B test file holds 16 pairs in SentEval's layout (7 tab-separated columns)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(16):
        a, b = WORDS[i % 12], WORDS[(i * 5 + 1 + i // 12) % 12]  # 16 distinct pairs
        score = float(rng.integers(0, 26)) / 5.0  # 0.0 .. 5.0 with ties, as STS-B has
        pair = f"a {a} is on the table .\tthe {b} is here ."
        lines.append(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{score:.3f}\t{pair}")
    folder = data_dir / "downstream" / "STS" / "STSBenchmark"
    folder.mkdir(parents=True)
    (folder / "sts-test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


def min_gap(values: np.ndarray) -> float:
    """The smallest difference between two distinct positions of a sorted 1-D array."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    return float(np.diff(ordered).min())


@pytest.fixture(scope="module")
def model(tiny_bert: Path) -> SmoothCSEMTEBEncoder:
    # mean pooling: a random-init BERT's [CLS] vectors are nearly parallel (cosines tie in float32)
    return SmoothCSEMTEBEncoder(tiny_bert, pooler="avg", name="tests/tiny-bert")


@pytest.fixture(scope="module")
def mteb_run(model: SmoothCSEMTEBEncoder, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``mteb.evaluate`` call over both local tasks, as docs/ecosystem.md shows it."""
    root = tmp_path_factory.mktemp("mteb")
    beir = write_tiny_beir(root / "tiny-beir")
    data_dir = write_tiny_stsb(root / "data")
    tasks = [LocalBeirRetrieval(beir), LocalSTS.from_data_dir("STSBenchmark", data_dir=data_dir)]
    result = mteb.evaluate(
        model, tasks, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 4, "show_progress_bar": False}
    )
    scores = {r.task_name: r.scores["test"][0] for r in result.task_results}
    return {"beir": beir, "data_dir": data_dir, "tasks": tasks, "scores": scores, "result": result}


def test_adapter_is_an_mteb_2_encoder(model: SmoothCSEMTEBEncoder) -> None:
    assert isinstance(model, mteb.EncoderProtocol)
    meta = model.mteb_model_meta
    assert meta.name == "tests/tiny-bert"
    assert meta.embed_dim == 32 and meta.similarity_fn_name.value == "cosine" and meta.use_instructions is False
    a = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    assert np.allclose(np.asarray(model.similarity(a, a)), [[1.0, 2**-0.5], [2**-0.5, 1.0]], atol=1e-6)
    b = np.array([[1.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    assert np.allclose(np.asarray(model.similarity_pairwise(a, b)), [2**-0.5, 2**-0.5], atol=1e-6)
    reloaded = meta.load_model()  # the meta's loader rebuilds the adapter from the folder
    texts = ["one sentence .", "and another , longer sentence ."]
    assert np.allclose(reloaded.encoder.encode(texts), model.encoder.encode(texts), atol=1e-6)


def test_retrieval_ndcg_equals_smoothcse(model: SmoothCSEMTEBEncoder, mteb_run: dict[str, Any]) -> None:
    beir = mteb_run["beir"]
    data = load_beir(beir)
    queries = model.encoder.encode(data.queries)
    docs = model.encoder.encode(data.documents())
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    assert min(min_gap(row) for row in queries @ docs.T) > NEAR_TIE  # no near-ties: rankings are well defined

    ours = evaluate_retrieval(lambda texts: model.encoder.encode(texts), folder=beir)
    scale = ours["metrics"]["recall_at_100"]  # exactly 1 as a fraction: smoothcse's scale, 1 or 100
    assert scale in (1.0, 100.0)
    theirs = mteb_run["scores"]["tiny-beir-local"]
    assert theirs["recall_at_100"] == 1.0
    assert ours["counts"]["queries_evaluated"] == 8
    assert 0.05 < theirs["ndcg_at_10"] < 0.95  # an informative value, not a trivial 0 or 1
    assert theirs["main_score"] == theirs["ndcg_at_10"]
    # MTEB rounds to 5 decimals: agreement to half a unit of the 5th decimal
    for key in ("ndcg_at_10", "ndcg_at_3", "map_at_10", "recall_at_3", "precision_at_5"):
        assert abs(theirs[key] - ours["metrics"][key] / scale) <= 5e-6 + 1e-12, key


def test_sts_spearman_equals_smoothcse(model: SmoothCSEMTEBEncoder, mteb_run: dict[str, Any]) -> None:
    task = mteb_run["tasks"][1]
    left = model.encoder.encode(task.pairs.sentences1)
    right = model.encoder.encode(task.pairs.sentences2)
    cosines = (left * right).sum(1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)
    assert min_gap(cosines) > NEAR_TIE

    ours = evaluate_sts(lambda texts: model.encoder.encode(texts), data_dir=mteb_run["data_dir"], tasks=["STSb"])
    stsb = ours["tasks"]["STSb"]
    assert stsb["n_pairs"] == len(task.pairs) == 16
    scale = score_pairs(np.arange(3.0), np.arange(3.0))["spearman"]  # a perfect correlation: 1 or 100
    theirs = mteb_run["scores"]["STSb-local"]
    assert theirs["main_score"] == theirs["cosine_spearman"]
    assert abs(theirs["cosine_spearman"]) > 0.05
    assert abs(theirs["cosine_spearman"] - stsb["spearman"] / scale) <= 1e-6
    assert abs(theirs["cosine_pearson"] - stsb["pearson"] / scale) <= 1e-6
    assert theirs["spearman"] == pytest.approx(theirs["cosine_spearman"], abs=1e-6)  # the adapter's similarity


def test_tasks_can_run_twice(model: SmoothCSEMTEBEncoder, mteb_run: dict[str, Any]) -> None:
    """MTEB unloads a task's data after a run; a local task keeps its name and reloads its files."""
    task = mteb_run["tasks"][0]
    again = mteb.evaluate(
        model, task, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 4, "show_progress_bar": False}
    )
    scores = again.task_results[0].scores["test"][0]
    assert again.task_results[0].task_name == "tiny-beir-local"
    assert scores["ndcg_at_10"] == mteb_run["scores"]["tiny-beir-local"]["ndcg_at_10"]


def test_module_imports_without_mteb() -> None:
    code = (
        "import sys; sys.modules['mteb'] = None\n"
        "import smoothcse.mteb as m\n"
        "try:\n    m.SmoothCSEMTEBEncoder('x')\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'mteb>=2,<3'" in out
